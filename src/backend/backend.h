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
 * sequence, positions are consecutive and follow what is already in its cache. */
typedef struct sk_batch {
    int n_tokens;
    const int32_t *tokens; /* host; [n_tokens] */
    const int32_t *pos;    /* host; [n_tokens] */
    const int32_t *seq;    /* host; [n_tokens] slot of the sequence in the KV cache */
} sk_batch;

/* RoPE parameters for one model. */
typedef struct sk_rope_params {
    int head_dim;
    int rope_dim; /* rotated dims (<= head_dim); the rest pass through */
    float theta;
    sk_rope_pairing pairing;
} sk_rope_params;

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

    /* KV cache for n_seq sequences of up to n_ctx positions each. */
    sk_status (*kv_new)(sk_backend *be, int n_layers, int n_kv_heads, int head_dim, int n_ctx,
                        int n_seq, sk_kv_cache **out);
    void (*kv_free)(sk_backend *be, sk_kv_cache *kv);

    /* Makes batch b the current one (copies tokens/positions/sequence slots to the device). */
    sk_status (*begin)(sk_backend *be, const sk_batch *b);

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
    /* x[n] += y[n]. */
    void (*add)(sk_backend *be, void *x, const void *y, size_t n);
    /* out[n] = silu(gate[n]) * up[n]. */
    void (*swiglu)(sk_backend *be, const void *gate, const void *up, size_t n, void *out);
    /* x[n] = gelu(x[n]) (exact, erf form). */
    void (*gelu)(sk_backend *be, void *x, size_t n);
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
