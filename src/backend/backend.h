/* The backend op table: everything the model forward needs from a device. Model code
 * (src/model) calls only these; a backend never knows which model it runs.
 *
 * Conventions
 * - Activations live in backend memory (sk_backend_alloc) as row-major matrices of the backend's
 *   activation type (be->act_bytes bytes per element: fp32 on the CPU and on CUDA).
 *   Pointers passed to ops are device pointers; model code does pointer arithmetic only with
 *   act_bytes. "row stride" arguments are in elements.
 * - A forward pass is: begin(batch) then ops. begin() copies the batch's token ids and positions
 *   to the device, so that every later op is a plain launch (a CUDA graph can capture them).
 * - Weights are loaded once (weight_load) from an sk_tensor of any supported dtype; the backend
 *   keeps them in whatever layout its matmul wants (the CPU keeps the mapped file data and
 *   dequantizes rows on the fly in fp32).
 * - Every op is asynchronous with respect to the host on a device backend; download() syncs. */
#ifndef SK_BACKEND_H
#define SK_BACKEND_H

#include "model/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_backend sk_backend;
typedef struct sk_weight sk_weight;     /* backend-resident weight */
typedef struct sk_kv_cache sk_kv_cache; /* backend-resident KV cache */

/* One forward step: n_tokens rows, token i at position pos[i] of sequence seq[i]. Within one
 * sequence, positions are consecutive and follow what is already in its cache; the rows of a
 * sequence need not be adjacent or in order (the K/V of every row is stored before any row
 * attends), so a caller may put the rows whose logits it wants first.
 *
 * KV addressing, two modes:
 * - Slots (begin; the convenience path of sessions and tests): seq[i] is a slot of a cache made
 *   by kv_new, which owns its pages in order (identity tables; sk_kv_slot_tables writes them).
 * - Page tables (begin_paged): seq[i] is an index 0..n_seqs-1 into the tables (sk_page_tables). */
typedef struct sk_batch {
    int n_tokens;
    const int32_t *tokens; /* host; [n_tokens] */
    const int32_t *pos;    /* host; [n_tokens] */
    const int32_t *seq;    /* host; [n_tokens] slot, or sequence index in the page tables */
} sk_batch;

/* Per-sequence page tables of one batch (FlashInfer-style CSR). Sequence s's pages are
 * ids[indptr[s] .. indptr[s+1]) in order: position p of s lives in page ids[indptr[s] + p /
 * page_size], row p % page_size. Every id is < the cache's n_pages, and a table covers every
 * position its rows store or read. Pages may be shared between sequences (a common prefix); a
 * page written by the batch belongs to one sequence only. Sequences without rows are allowed. */
typedef struct sk_page_tables {
    int n_seqs;
    const int32_t *indptr; /* host; [n_seqs + 1], indptr[0] == 0, non-decreasing */
    const int32_t *ids;    /* host; [indptr[n_seqs]] */
} sk_page_tables;

/* A KV pool: n_pages pages of page_size tokens, per layer and for K and V alike. */
typedef struct sk_kv_desc {
    int n_layers, n_kv_heads, head_dim;
    int page_size;   /* tokens per page: the backend's kv_page_size (others may be refused) */
    int n_pages;
    int max_seq_len; /* the longest sequence a batch will attend over (kernels plan for it) */
} sk_kv_desc;

/* The tables of slot mode: slot s of a kv_new cache with pages_per_slot pages per slot owns
 * pages s * pages_per_slot + j. Writes indptr[n_slots + 1] and ids[n_slots * pages_per_slot]. */
static inline void sk_kv_slot_tables(int n_slots, int pages_per_slot, int32_t *indptr,
                                     int32_t *ids) {
    for (int s = 0; s <= n_slots; s++) indptr[s] = s * pages_per_slot;
    for (int i = 0; i < n_slots * pages_per_slot; i++) ids[i] = i;
}

/* RoPE parameters for one model. */
typedef struct sk_rope_params {
    int head_dim;
    int rope_dim; /* rotated dims (<= head_dim); the rest pass through */
    float theta;
    sk_rope_pairing pairing;
} sk_rope_params;

/* Sampling of one row of logits (the engine's sampler after its repetition penalty, and the
 * backends' sample op): top-k on the logits (top_k 0: all), softmax with temperature (temp > 0),
 * top-p (the smallest prefix of the sorted candidates whose mass reaches top_p; 1: off), min-p
 * (candidates below min_p x the top probability dropped; 0: off), then the candidate where the
 * running mass first exceeds u x the kept mass (u uniform in [0, 1): the caller's random draw).
 * Candidates are ordered by logit, then by lower id; exponentials and sums in double, as below. */
typedef struct sk_sample_row {
    float temp;
    int top_k;
    float top_p, min_p;
    double u;
} sk_sample_row;
typedef struct sk_sample_cand {
    float v; /* logit, then probability */
    int32_t id;
} sk_sample_cand;
/* The reference: scratch holds n_vocab candidates. */
int32_t sk_sample_core(const float *logits, int n_vocab, const sk_sample_row *r,
                       sk_sample_cand *scratch);
/* Largest top_k the backends' sample op takes (the CUDA kernel sorts the candidates on chip). */
#define SK_SAMPLE_MAX_K 1024

typedef struct sk_backend_ops {
    void (*destroy)(sk_backend *be);

    /* Memory. alloc returns NULL (and sets the error) when out of memory. */
    void *(*alloc)(sk_backend *be, size_t bytes);
    void (*free)(sk_backend *be, void *p);
    /* Copies n activations at src to host fp32 dst (waits for pending work). */
    void (*download_f32)(sk_backend *be, const void *src, float *dst, size_t n);
    /* Copies n host fp32 values to n activations at dst (converted to the activation type). */
    void (*upload_f32)(sk_backend *be, void *dst, const float *src, size_t n);

    sk_status (*weight_load)(sk_backend *be, const sk_tensor *t, sk_weight **out);
    void (*weight_free)(sk_backend *be, sk_weight *w);
    /* A weight of t's shape (t->data is NULL: a synthetic model) drawn on the backend from a
     * deterministic generator: element i = mean + std * sqrt(3) * u(seed, i), u uniform in
     * [-1, 1) (sk_rand_uniform below), so big synthetic models need no host memory. */
    sk_status (*weight_random)(sk_backend *be, const sk_tensor *t, float mean, float std,
                               uint64_t seed, sk_weight **out);

    /* Optional (NULL: the model keeps its projections separate). A new weight holding the rows
     * of parts[0..n-1] (2-D, one column count) in order, so that projections of one input run as
     * one matmul (Llama's q/k/v; gate/up for matmul_swiglu). The parts stay owned by the caller. */
    sk_status (*weight_concat)(sk_backend *be, sk_weight *const *parts, int n, sk_weight **out);

    /* KV cache for n_seq slots of up to n_ctx positions each: a pool of n_seq * ceil(n_ctx /
     * kv_page_size) pages, slot s owning pages s * ceil(n_ctx / kv_page_size) + j (slot mode;
     * batches with page tables may also address its pages). */
    sk_status (*kv_new)(sk_backend *be, int n_layers, int n_kv_heads, int head_dim, int n_ctx,
                        int n_seq, sk_kv_cache **out);
    /* KV pool of d->n_pages pages for batches with page tables (the engine's page manager hands
     * the pages out). SK_ERR_ARG for a bad descriptor or a page size the backend cannot use,
     * SK_ERR_NOMEM when it does not fit. Optional (NULL: the backend has no paged pool). */
    sk_status (*kv_pool_new)(sk_backend *be, const sk_kv_desc *d, sk_kv_cache **out);
    void (*kv_free)(sk_backend *be, sk_kv_cache *kv);
    /* Device memory: free and total bytes now (the KV pool is sized from it). Optional. */
    void (*mem_info)(sk_backend *be, size_t *free_bytes, size_t *total_bytes);

    /* Makes batch b the current one in slot mode (copies tokens, positions and slots to the
     * device). */
    sk_status (*begin)(sk_backend *be, const sk_batch *b);
    /* Makes batch b the current one with page tables pt (tokens, positions, sequence indices
     * and tables go to the device together). SK_ERR_ARG for malformed tables (a row's sequence
     * out of range or without pages, indptr not non-decreasing from 0). Optional (NULL: slot
     * mode only), present whenever kv_pool_new is. */
    sk_status (*begin_paged)(sk_backend *be, const sk_batch *b, const sk_page_tables *pt);

    /* out[T, D] = rows of table [V, D] for the current batch's tokens. */
    void (*embed)(sk_backend *be, const sk_weight *table, void *out);
    /* out[T, D] = x / rms(x) * w. out may equal x. */
    void (*rmsnorm)(sk_backend *be, const void *x, const sk_weight *w, float eps, int T, int D,
                    void *out);
    /* out[T, D] = (x - mean) / std * w + b. out may equal x. */
    void (*layernorm)(sk_backend *be, const void *x, const sk_weight *w, const sk_weight *b,
                      float eps, int T, int D, void *out);
    /* out[T, N] = x[T, K] @ W[N, K]^T (+ bias[N] when bias != NULL). */
    void (*matmul)(sk_backend *be, const void *x, int T, const sk_weight *w, const sk_weight *bias,
                   void *out);
    /* Optional (NULL: matmul then add). out[T, N] += x[T, K] @ W[N, K]^T (+ bias[N]): the
     * residual add fused into the projection. */
    void (*matmul_add)(sk_backend *be, const void *x, int T, const sk_weight *w,
                       const sk_weight *bias, void *out);
    /* Optional (needs weight_concat). out[T, F] = silu(x Wg^T) * (x Wu^T), where w holds the rows
     * of Wg [F, K] then Wu [F, K] (weight_concat of gate and up). */
    void (*matmul_swiglu)(sk_backend *be, const void *x, int T, const sk_weight *w, void *out);
    /* Optional (NULL: rmsnorm into h, then matmul). out[T, N] = rmsnorm(x, norm, eps) @ W^T
     * (+ bias): the norm fused into the projection after it (K = W's columns = norm's length).
     * h [T, K] is scratch the backend may write the normed rows to (when it cannot fuse: the
     * result is the same); nothing reads it afterwards. x, h and out must not overlap. */
    void (*rmsnorm_matmul)(sk_backend *be, const void *x, const sk_weight *norm, float eps, int T,
                           const sk_weight *w, const sk_weight *bias, void *h, void *out);
    /* Optional (NULL: nothing; a hint). The next matmul_add's output is the input of an
     * rmsnorm_matmul (swiglu 0) or rmsnorm_matmul_swiglu (swiglu 1) with this norm right after
     * it, nothing in between: a backend may compute part of that norm in the matmul_add (CUDA:
     * x * gamma and the sums of squares in the INT4 decode GEMV's epilogue). Results are as
     * without the hint. */
    void (*norm_next)(sk_backend *be, const sk_weight *norm, int swiglu);
    /* Optional (NULL: rmsnorm into h, then matmul_swiglu). out[T, F] = matmul_swiglu of
     * rmsnorm(x, norm, eps), h as above. */
    void (*rmsnorm_matmul_swiglu)(sk_backend *be, const void *x, const sk_weight *norm, float eps,
                                  int T, const sk_weight *w, void *h, void *out);
    /* Optional (NULL: download the logits and take the argmax on the host). out_host[t] = the
     * index of the largest of x[t, 0..N) (the lowest index among equals), for T rows; waits for
     * the device like download_f32. */
    void (*argmax)(sk_backend *be, const void *x, int T, int N, int32_t *out_host);
    /* Optional (NULL: download the logits and sample on the host). out_host[t] = sk_sample_core
     * of x[t, 0..N) with rows[t] (each with temp > 0 and 1 <= top_k <= SK_SAMPLE_MAX_K), for T
     * rows; waits for the device like download_f32. */
    void (*sample)(sk_backend *be, const void *x, int T, int N, const sk_sample_row *rows,
                   int32_t *out_host);
    /* x[n] += y[n]. */
    void (*add)(sk_backend *be, void *x, const void *y, size_t n);
    /* out[n] = silu(gate[n]) * up[n]. */
    void (*swiglu)(sk_backend *be, const void *gate, const void *up, size_t n, void *out);
    /* x[n] = gelu(x[n]) (exact, erf form). */
    void (*gelu)(sk_backend *be, void *x, size_t n);
    /* Optional (NULL: gelu, then matmul_add or matmul and add). out[T, N] += gelu(x[T, K]) @
     * W[N, K]^T (+ bias[N]): the MLP's activation fused into the projection after it. x's
     * contents afterwards are unspecified (a backend may apply GELU in place). */
    void (*gelu_matmul_add)(sk_backend *be, void *x, int T, const sk_weight *w,
                            const sk_weight *bias, void *out);
    /* Rotates n_heads heads of head_dim at the start of each of the T rows of x (row stride in
     * elements), each row at the current batch's position. */
    void (*rope)(sk_backend *be, void *x, int T, int n_heads, int row_stride,
                 const sk_rope_params *rp);
    /* Attention for layer `layer` over the current batch: stores the batch's K and V rows
     * (k/v [T, n_kv_heads*head_dim] with row stride kv_stride) in the cache at their positions,
     * then for each row computes causal softmax(q k^T / sqrt(head_dim)) v over its sequence's
     * cache up to and including its position. q [T, n_heads*head_dim] with row stride q_stride;
     * out [T, n_heads*head_dim] contiguous. Query head h reads KV head h / (n_heads/n_kv_heads). */
    void (*attention)(sk_backend *be, sk_kv_cache *kv, int layer, const void *q, int q_stride,
                      const void *k, const void *v, int kv_stride, int n_heads, void *out);
    /* Optional (NULL: rope on q's n_heads heads and on k's n_kv_heads heads, then attention).
     * The same result as those three calls, so that a backend can rotate q and k on their way
     * into the attention (and K into the cache) without a pass of its own; q and k may be left
     * rotated or not afterwards (nothing reads them). */
    void (*rope_attention)(sk_backend *be, sk_kv_cache *kv, int layer, void *q, int q_stride,
                           void *k, const void *v, int kv_stride, int n_heads,
                           const sk_rope_params *rp, void *out);

    /* Graphs (NULL on backends without them). Between capture_begin and capture_end the ops are
     * recorded, not run; begin() and download_f32 stay outside (they touch the host). The ops
     * recorded must not allocate or synchronise (warm them up eagerly first: plans, tables).
     * capture_end returns a replayable graph, or NULL with the error set. */
    sk_status (*capture_begin)(sk_backend *be);
    void *(*capture_end)(sk_backend *be);
    void (*graph_launch)(sk_backend *be, void *graph);
    void (*graph_free)(sk_backend *be, void *graph);
} sk_backend_ops;

struct sk_backend {
    const sk_backend_ops *ops;
    const char *name;
    size_t act_bytes; /* bytes per activation element */
    /* Bytes per element of the matrices as the backend stores them; 0: as in the file (the CPU
     * keeps mapped data; its synthetic and 1-D weights are fp32). */
    size_t weight_elem_bytes;
    void *ctx;        /* backend private */
    /* KV pools: the page size the backend wants (kv_pool_new) and bytes per cached element. */
    int kv_page_size;
    size_t kv_elem_bytes;
    /* Incremented whenever the backend moves a buffer that ops recorded in a graph refer to
     * (batch and page-table buffers, attention scratch grown for a larger batch): a graph
     * captured under an older value must be captured again. */
    unsigned addr_epoch;
};

/* Counter-based uniform in [-1, 1): the same draw on every backend (a hash of seed and index). */
static inline float sk_rand_uniform(uint64_t seed, uint64_t i) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(int32_t)(uint32_t)(z >> 32) * (1.0f / 2147483648.0f);
}

/* Creates the CPU backend with n_threads (0: all cores). */
sk_status sk_backend_cpu_new(int n_threads, sk_backend **out);
#ifdef SAKER_HAVE_CUDA
/* Creates the CUDA backend on device 0. dtype: the type its weights and KV cache are kept in,
 * "bf16" (also when NULL) or "fp16" (activations are fp32 either way); anything else is
 * SK_ERR_ARG. */
sk_status sk_backend_cuda_new(const char *dtype, sk_backend **out);
#endif

#ifdef __cplusplus
}
#endif

#endif
