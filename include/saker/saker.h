/* Saker public C API.
 *
 * Ownership: every open/new function has a matching close/free. Functions that can fail on bad
 * input return an sk_status and leave a one-line message (naming the file/field and what is
 * wrong) retrievable with sk_last_error() on the calling thread. The library never exits. */
#ifndef SAKER_H
#define SAKER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sk_status {
    SK_OK = 0,
    SK_ERR_ARG,         /* bad argument or request */
    SK_ERR_IO,          /* cannot open/read/map a file */
    SK_ERR_FORMAT,      /* malformed file: bad magic, offsets, counts, shapes, JSON */
    SK_ERR_UNSUPPORTED, /* well-formed but not supported (tensor type, architecture) */
    SK_ERR_NOMEM,       /* host or device allocation failed */
    SK_ERR_CONTEXT,     /* prompt or generation does not fit the context / KV memory */
    SK_ERR_DEVICE,      /* device backend not available */
} sk_status;

const char *sk_status_name(sk_status s);
/* Message of the last failing call on this thread ("" if none). */
const char *sk_last_error(void);

/* Monotonic wall clock in seconds. */
double sk_time_now(void);

typedef enum sk_device { SK_DEVICE_AUTO = 0, SK_DEVICE_CPU = 1, SK_DEVICE_CUDA = 2 } sk_device;

typedef struct sk_model sk_model;
typedef struct sk_session sk_session;

typedef struct sk_model_params {
    const char *tokenizer_path; /* llama2.c tok*.bin; NULL for formats that embed a vocabulary */
    sk_device device;
    int n_threads; /* 0: all cores */
    /* The type the CUDA backend keeps weights and the KV cache in: "bf16" or "fp16" (activations
     * are fp32 either way); NULL: bf16. Ignored on the CPU. */
    const char *cuda_dtype;
    /* Synthetic (--shape) models only: "int4" makes every linear layer INT4 (Q4G, group 128, or
     * the largest of 64/32 that divides its input width); NULL or "half": the half type. */
    const char *shape_weights;
    /* Synthetic models only: > 0 keeps the first shape_layers layers of the published
     * configuration (tests under compute-sanitizer, whose cost grows with the launches); 0: all. */
    int shape_layers;
} sk_model_params;

void sk_model_params_default(sk_model_params *p);

/* Opens a .gguf file, a llama2.c .bin, or a Hugging Face model directory. */
sk_status sk_model_open(const char *path, const sk_model_params *p, sk_model **out);
void sk_model_close(sk_model *m);
/* A synthetic model with a published configuration (see sk_model_shape_names) and random
 * weights drawn on the backend (deterministic; scaled like trained weights; never zeros). It
 * has no tokenizer: feed it token ids. */
sk_status sk_model_open_shape(const char *name, const sk_model_params *p, sk_model **out);
const char *sk_model_shape_names(void);

/* Human-readable description of the model (architecture, shapes, dtypes, parameter count,
 * memory), one item per line, written with fputs to f. */
void sk_model_print_info(const sk_model *m, void *file /* FILE* */);

int sk_model_n_vocab(const sk_model *m);
uint64_t sk_model_n_params(const sk_model *m);
/* Bytes of weights as the device holds them (what one decode step reads at batch 1). */
uint64_t sk_model_device_weight_bytes(const sk_model *m);
const char *sk_model_device_name(const sk_model *m);
int sk_model_n_ctx_train(const sk_model *m);
int sk_model_bos(const sk_model *m); /* -1 if none */
int sk_model_eos(const sk_model *m); /* -1 if none */
bool sk_model_is_eog(const sk_model *m, int32_t token); /* end of generation (eos, eot, ...) */

/* Tokenizer. add_bos: prepend BOS when the vocabulary's add_bos says so (it defaults to true for
 * SentencePiece vocabularies), and append EOS when its add_eos does. parse_special: text such as "<|im_start|>" becomes the
 * special token. Returns the number of tokens (> cap means the buffer was too small: nothing
 * beyond cap written), or -1 with sk_last_error set. */
int sk_tokenize(const sk_model *m, const char *text, size_t len, bool add_bos, bool parse_special,
                int32_t *out, int cap);
/* Bytes of one token as the model would print them (byte-fallback and byte-level decoding
 * applied, special tokens rendered as their text). Returns length; writes at most cap bytes. */
int sk_token_to_bytes(const sk_model *m, int32_t token, char *buf, int cap);

/* Applies the model's chat template to one user message (with the template's default system
 * prompt if it has one) and the generation prompt. Returns a malloc'd string or NULL. */
char *sk_chat_format(const sk_model *m, const char *user_message);

/* Streaming detokenizer: emits only whole UTF-8 characters. at_start: the tokens begin a text
 * (after BOS), so a SentencePiece leading space on the first piece is dropped, as sentencepiece
 * decoding does; false when continuing a prompt that was printed already. */
typedef struct sk_detok sk_detok;
sk_detok *sk_detok_new(const sk_model *m, bool at_start);
/* Appends the token; returns the number (a SentencePiece BOS prints nothing and starts a new
 * text, with the at-start space rule again) of complete bytes now ready in *out (valid until the
 * next call). */
int sk_detok_push(sk_detok *d, int32_t token, const char **out);
/* Flushes whatever is pending (an incomplete character at the end is emitted as U+FFFD). */
int sk_detok_flush(sk_detok *d, const char **out);
void sk_detok_free(sk_detok *d);

/* A session: a KV cache of n_ctx positions for one sequence. */
sk_status sk_session_new(sk_model *m, int n_ctx, sk_session **out);
void sk_session_free(sk_session *s);
int sk_session_n_past(const sk_session *s);
void sk_session_reset(sk_session *s);
/* Runs the n tokens at positions n_past..n_past+n-1 as one batch. If logits != NULL it receives
 * [n x vocab] floats when all_logits, else [vocab] for the last token only. */
sk_status sk_session_eval(sk_session *s, const int32_t *tokens, int n, float *logits,
                          bool all_logits);

typedef struct sk_sampler_params {
    float temp;           /* 0: greedy */
    int top_k;            /* 0: off */
    float top_p;          /* 1: off */
    float min_p;          /* 0: off */
    float repeat_penalty; /* 1: off */
    int repeat_last_n;    /* window of previous tokens the penalty looks at */
    uint64_t seed;
} sk_sampler_params;

void sk_sampler_params_default(sk_sampler_params *p);
typedef struct sk_sampler sk_sampler;
sk_sampler *sk_sampler_new(const sk_sampler_params *p, int n_vocab);
void sk_sampler_free(sk_sampler *s);
/* Remembers a token (prompt or generated) for the repetition penalty. */
void sk_sampler_accept(sk_sampler *s, int32_t token);
/* Picks the next token from logits[n_vocab]; logits may be modified. */
int32_t sk_sampler_sample(sk_sampler *s, float *logits);

#ifdef __cplusplus
}
#endif
#endif
