/* Private to src/model: the loaded model (weights on a backend) and the forward pass, written once
 * for every architecture in terms of backend ops (backend.h). */
#ifndef SK_MODEL_H
#define SK_MODEL_H

#include "backend/backend.h"
#include "tokenizer/tokenizer.h"

/* One layer's weights (backend handles; NULL when the architecture or file has none).
 * Shapes as in model_file.h: D = dim, F = ffn_dim, hd = head_dim, H = n_heads, KV = n_kv_heads. */
typedef struct sk_layer_weights {
    sk_weight *attn_norm, *attn_norm_b;     /* [D]; the bias only for Falcon's LayerNorm */
    sk_weight *attn_norm_2, *attn_norm_2_b; /* [D]; Falcon's MLP LayerNorm (n_ln_per_layer 2, or
                                               sequential attention) */
    sk_weight *wq, *wk, *wv;                /* Llama: [H*hd, D], [KV*hd, D], [KV*hd, D] */
    sk_weight *bq, *bk, *bv;                /* optional Llama biases [H*hd], [KV*hd], [KV*hd] */
    sk_weight *wqkv, *bqkv;                 /* Falcon: [(H+2KV)*hd, D] rows Q heads, K, V; bias.
                                               Llama: the same, fused from wq/wk/wv when the
                                               backend has weight_concat (they are then NULL) */
    sk_weight *wo, *bo;                     /* [D, H*hd]; bias [D] */
    sk_weight *ffn_norm;                    /* Llama RMSNorm [D] */
    sk_weight *ffn_gate;                    /* Llama [F, D] */
    sk_weight *ffn_gate_up;                 /* Llama [2F, D]: gate rows then up rows, when the
                                               backend fuses them (matmul_swiglu); ffn_gate and
                                               ffn_up are then NULL */
    sk_weight *ffn_up, *b_up;               /* [F, D]; bias [F] */
    sk_weight *ffn_down, *b_down;           /* [D, F]; bias [D] */
} sk_layer_weights;

struct sk_model {
    sk_model_file mf; /* owns the mappings the CPU weights point into */
    sk_hparams hp;
    sk_tokenizer *tok; /* NULL when the file has no vocabulary */
    sk_backend *be;
    sk_weight *tok_embd;                    /* [V, D] */
    sk_weight *output_norm, *output_norm_b; /* [D]; the bias only for Falcon */
    sk_weight *output;                      /* [V, D]; == tok_embd when tied (not owned twice) */
    sk_layer_weights *layers;               /* [n_layers] */
    int n_weights;
    sk_weight **weights; /* every handle loaded, for weight_free */
};

/* Builds a model from a loaded (or hand-made) model file, taking ownership of *mf (it is
 * emptied, and freed on failure). Validates mf, builds the tokenizer when there is a vocabulary,
 * creates the backend asked for in p, and loads every weight. */
sk_status sk_model_from_file(sk_model_file *mf, const sk_model_params *p, sk_model **out);

/* Activation buffers (backend memory) for forward passes of up to max_T tokens. */
typedef struct sk_fwd_buffers {
    int max_T;
    size_t bytes; /* backend memory held, all buffers together */
    void *x;      /* [T, D] residual stream */
    void *h;      /* [T, D] normed input (scratch the backend's rmsnorm_matmul ops may leave
                   * unwritten: nothing reads it after them) */
    void *h2;     /* [T, D] Falcon MLP input (attn_norm_2); NULL for Llama */
    void *a;      /* [T, D] attention projection, then MLP output */
    void *qkv;    /* [T, (H+2KV)*hd]: Falcon's fused rows; Llama keeps q [T, H*hd], k [T, KV*hd],
                     v [T, KV*hd] one after the other in it */
    void *att;    /* [T, H*hd] attention output */
    void *f1, *f2; /* [T, F] MLP hidden; f2 NULL when every layer's gate and up are fused */
    int max_out;  /* rows of onorm and logits: output rows projected together */
    /* Per call (the caller sets and clears it): with an argmax output and a backend sample op,
     * output row i is drawn by the op with sample_rows[i] instead of taken as the argmax, so the
     * logits stay on the device (the engine's non-greedy requests; backend.h sk_sample_row). */
    const sk_sample_row *sample_rows;
    void *onorm;  /* [max_out, D] final-normed rows whose logits are wanted */
    void *logits; /* [max_out, V] */
} sk_fwd_buffers;

/* Output rows projected together by sessions (sk_fwd_buffers_new's max_out when 0). */
#define SK_FWD_LOGIT_ROWS 32

/* max_out: output rows that go through the vocabulary projection as one matmul (0:
 * SK_FWD_LOGIT_ROWS; more are done in groups of max_out); at most max_T. */
sk_status sk_fwd_buffers_new(const sk_model *m, int max_T, int max_out, sk_fwd_buffers *buf);
void sk_fwd_buffers_free(const sk_model *m, sk_fwd_buffers *buf);

/* Runs batch b (b->n_tokens <= buf->max_T; positions < the cache's n_ctx and token ids < n_vocab,
 * checked by the caller) through the model, appending its K/V to kv. When n_out > 0, writes the
 * logits of batch rows [out_first, out_first + n_out) to host logits [n_out, n_vocab]. */
sk_status sk_forward(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv, const sk_batch *b,
                     int out_first, int n_out, float *logits);

/* The same with page tables pt (NULL: slot mode, as sk_forward) and output rows out_rows[0..n_out)
 * (any rows; up to buf->max_out of them normed into onorm and projected by one matmul): either
 * their logits (logits != NULL, [n_out, n_vocab]) or only their argmax (logits == NULL, argmax
 * != NULL: argmax[n_out] ids; through the backend's argmax op when it has one, so the logits stay
 * on the device). */
sk_status sk_forward_paged(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv,
                           const sk_batch *b, const sk_page_tables *pt, const int32_t *out_rows,
                           int n_out, float *logits, int32_t *argmax);

/* A replayable decode step (one token, its logits): the backend's graph of forward_body +
 * forward_head, captured on the second step (the first runs eagerly to warm plans up). The graph
 * holds the buffers' and KV cache's addresses: one per (buffers, cache) pair. state: 0 fresh,
 * 1 warmed up, -1 graphs off (capture failed or SAKER_NO_GRAPHS is set). */
typedef struct sk_fwd_graph {
    void *graph;
    int state;
    unsigned epoch; /* the backend's addr_epoch when the graph was captured */
} sk_fwd_graph;

/* One decode step (b->n_tokens == 1) with the logits of its token, through the graph when the
 * backend has them; same contract as sk_forward otherwise. */
sk_status sk_forward_step(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv,
                          const sk_batch *b, float *logits, sk_fwd_graph *g);
void sk_fwd_graph_free(const sk_model *m, sk_fwd_graph *g);

/* Batched decode steps (every row the one new token of a distinct sequence, every row giving
 * logits), as vLLM runs them: the batch is padded to a bucket size (sk_fwd_decode_bucket) with
 * rows that store their K/V in a scratch page no sequence uses and whose outputs are ignored,
 * so that a step of n rows replays the graph captured for its bucket (one per bucket, captured
 * on the second step of that size, again when the backend's addr_epoch moves). Backends without
 * graphs (or SAKER_NO_GRAPHS set) run the padded step eagerly. */
#define SK_FWD_DECODE_BUCKETS 129
typedef struct sk_fwd_decode {
    int32_t scratch_page; /* a page of the pool that no sequence uses */
    bool no_graphs;
    sk_fwd_graph g[SK_FWD_DECODE_BUCKETS];
    /* The padded batch (host). */
    int cap, seqs_cap, ids_cap;
    int32_t *tok, *pos, *seq, *rows; /* [cap] */
    int32_t *indptr;                 /* [seqs_cap] */
    int32_t *ids;                    /* [ids_cap] */
} sk_fwd_decode;

/* d ready for steps on a pool whose page scratch_page is never handed to a sequence. */
void sk_fwd_decode_init(sk_fwd_decode *d, int32_t scratch_page);
void sk_fwd_decode_free(const sk_model *m, sk_fwd_decode *d);
/* The padded size of a decode step of n rows: powers of two to 16, 24, 32, multiples of 16 to 1024
 * (SAKER_BUCKET_STEP=32: of 32), then multiples of 64 (graphs up to 4864 rows); *index: its
 * graph slot (-1 when beyond SK_FWD_DECODE_BUCKETS: no graph). */
int sk_fwd_decode_bucket(int n, int *index);

/* A decode step: b's rows each the only row of their sequence (pt's sequences 0..n-1), their
 * logits (logits != NULL, [n, n_vocab]) or argmax (argmax [n]) for rows 0..n-1 in order. Steps
 * whose bucket exceeds buf->max_T or buf->max_out run unpadded through sk_forward_paged. */
sk_status sk_forward_decode(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv,
                            sk_fwd_decode *d, const sk_batch *b, const sk_page_tables *pt,
                            float *logits, int32_t *argmax);

#endif
