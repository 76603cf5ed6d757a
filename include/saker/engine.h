/* Saker engine: in-flight batching of many requests on one model.
 *
 * One engine thread drives the device: every step it runs the decode tokens of the sequences in
 * flight together with chunks of new prompts (under max_num_tokens rows and max_batch
 * sequences), from a paged KV pool sized from the device memory left after the weights. Requests
 * are submitted from any thread, produce their tokens through a callback (on the engine thread)
 * or a queue (sk_engine_poll), and can be cancelled at any time. When the pool runs out, the
 * newest sequences are preempted (pages freed, recomputed later): every request still completes,
 * with the tokens it would have had alone. A request that can never fit (prompt + new tokens over
 * the context, or over the whole pool) is refused by sk_engine_submit.
 *
 * While an engine exists it owns the model's backend: no sessions on the same model meanwhile. */
#ifndef SAKER_ENGINE_H
#define SAKER_ENGINE_H

#include "saker/saker.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_engine sk_engine;

typedef struct sk_engine_params {
    int max_batch;      /* most sequences in flight (default 256) */
    int max_num_tokens; /* most tokens (rows) per step (default 2048) */
    /* KV pool size: in (0, 1], a fraction of the device memory free once the weights and the
     * step's buffers are allocated; > 1, bytes (default 0.9). */
    double kv_memory;
    int kv_pages;        /* > 0: exactly this many pages instead (tests) */
    int n_ctx;           /* longest request, prompt + new tokens; 0: the model's training context */
    /* Let n_ctx exceed the training context (throughput benchmarks that, like TensorRT-LLM's
     * 128/4096 runs of Llama-2, go past it; RoPE positions simply continue). Default false:
     * n_ctx is capped at the training context. */
    bool ctx_beyond_train;
    bool prefix_caching; /* share the KV pages of equal prompt prefixes (default true) */
} sk_engine_params;

void sk_engine_params_default(sk_engine_params *p);

typedef enum sk_finish_reason {
    SK_FINISH_NONE = 0,  /* still generating */
    SK_FINISH_LENGTH,    /* max_new_tokens reached */
    SK_FINISH_EOS,       /* an end-of-generation token (included as the last token) */
    SK_FINISH_STOP,      /* a stop token or stop string (the token completing it included) */
    SK_FINISH_CANCELLED, /* sk_engine_cancel, or the engine was freed */
    SK_FINISH_ERROR,     /* the device step failed (logged) */
} sk_finish_reason;

const char *sk_finish_name(sk_finish_reason r);

/* One produced token, or the end of a request. */
typedef struct sk_engine_event {
    uint64_t id;       /* the request */
    int32_t token;     /* the new token; -1 on an event that only ends the request */
    int n_generated;   /* tokens generated so far, this one included */
    sk_finish_reason finish; /* != SK_FINISH_NONE on the request's last event */
    double time;       /* sk_time_now() when the token was ready */
} sk_engine_event;

/* Called on the engine thread, without engine locks held (it may submit or cancel); it should
 * return quickly, the device waits meanwhile. */
typedef void (*sk_engine_cb)(const sk_engine_event *ev, void *user);

typedef struct sk_request_params {
    /* The prompt: token ids (copied), or text (tokenized with the model's BOS rule and special
     * tokens parsed) when tokens is NULL. */
    const int32_t *tokens;
    int n_tokens;
    const char *text;
    sk_sampler_params sampling;      /* temp 0: greedy */
    int max_new_tokens;              /* > 0; 0: up to the context */
    bool ignore_eos;                 /* generate through end-of-generation tokens */
    const int32_t *stop_tokens;      /* copied */
    int n_stop_tokens;
    const char *const *stop_strings; /* copied; need a tokenizer */
    int n_stop_strings;
    sk_engine_cb on_event; /* NULL: events go to the engine's queue (sk_engine_poll) */
    void *user;
} sk_request_params;

/* Defaults: greedy, max_new_tokens 0, nothing else. */
void sk_request_params_default(sk_request_params *r);

/* Creates the engine on m (which must outlive it) and starts its thread. SK_ERR_NOMEM when the
 * pool or buffers do not fit, SK_ERR_UNSUPPORTED when the backend has no paged KV pool. */
sk_status sk_engine_new(sk_model *m, const sk_engine_params *p, sk_engine **out);
/* Stops the thread (requests in flight end without further events) and frees everything. */
void sk_engine_free(sk_engine *e);

/* Queues a request; *id identifies it in events and sk_engine_cancel. Thread-safe. SK_ERR_ARG
 * for a malformed request (no prompt, token ids out of range, stop strings without a tokenizer),
 * SK_ERR_CONTEXT for one that can never fit (the message gives the sizes). */
sk_status sk_engine_submit(sk_engine *e, const sk_request_params *r, uint64_t *id);
/* Ends a request: its pages are freed at the next step boundary and its last event has
 * SK_FINISH_CANCELLED. SK_ERR_ARG when id is unknown or already finished. Thread-safe. */
sk_status sk_engine_cancel(sk_engine *e, uint64_t id);

/* Takes up to max queued events (of requests without a callback), waiting up to timeout_s
 * seconds for the first (0: do not wait; < 0: wait forever). Returns how many. Thread-safe. */
int sk_engine_poll(sk_engine *e, sk_engine_event *ev, int max, double timeout_s);

/* Submits r (its on_event is ignored) and waits for it to end: out[0..*n_out) receives the
 * generated tokens (up to cap; *n_out may exceed cap: the rest were dropped), *finish the
 * reason. Thread-safe; many callers may wait at once. */
sk_status sk_engine_generate(sk_engine *e, const sk_request_params *r, int32_t *out, int cap,
                             int *n_out, sk_finish_reason *finish);

typedef struct sk_engine_stats {
    int n_ctx, max_batch, max_num_tokens;
    int kv_page_size, kv_pages_total;
    int kv_pages_in_use;    /* referenced by a sequence */
    int kv_pages_available; /* free or cached-unreferenced (an allocation could take them) */
    int n_waiting, n_running;
    uint64_t n_steps, n_submitted, n_finished;
    uint64_t n_tokens_computed; /* rows run (prompt, recomputed and decode tokens) */
    uint64_t n_tokens_generated;
    uint64_t n_preemptions, n_prefix_hit_tokens;
    uint64_t weight_bytes, kv_bytes, workspace_bytes; /* device memory by use */
} sk_engine_stats;

/* A consistent snapshot, taken at the last step boundary. Thread-safe. */
void sk_engine_get_stats(sk_engine *e, sk_engine_stats *st);
/* Waits until no request is queued or running (all events delivered). Thread-safe. */
void sk_engine_wait_idle(sk_engine *e);

#ifdef __cplusplus
}
#endif
#endif
