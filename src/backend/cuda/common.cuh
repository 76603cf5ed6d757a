/* Private to src/backend/cuda: the backend's context, weight and KV structs, error macros and the
 * small device helpers every op file uses. Compiled as CUDA C++ but written C-style (templates
 * only to instantiate a kernel for both half types).
 *
 * Activations are fp32 (act_bytes 4), row-major. The backend's half type (c->dtype: bf16, the
 * default, or fp16) is the type of the weights and of the KV cache; matmul casts its fp32
 * input to it (cuBLASLt: half A/B, fp32 compute and output), attention rounds the K/V rows it
 * stores. Each
 * op comes in three levels (STYLE.md 5): a __global__ kernel, a static launcher taking pointers,
 * sizes, strides and the stream, and one entry (sk_cuda_<op>) that checks its arguments and is
 * put in the op table by backend.cu. */
#ifndef SK_CUDA_COMMON_CUH
#define SK_CUDA_COMMON_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

extern "C" {
#include "backend/backend.h"
#include "core/status.h"
}

/* CUDA failures are bugs (bad launch, illegal address, driver gone mid-run): print the statement,
 * function, file and line and abort. Allocation failures are not checked with this: they return
 * SK_ERR_NOMEM. */
#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t sk_cuda_e_ = (call);                                                           \
        if (sk_cuda_e_ != cudaSuccess) {                                                           \
            fprintf(stderr, "saker: CUDA error %s (%s): %s in %s at %s:%d\n",                      \
                    cudaGetErrorName(sk_cuda_e_), cudaGetErrorString(sk_cuda_e_), #call, __func__, \
                    __FILE__, __LINE__);                                                           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* After every launch. With SAKER_CUDA_SYNC=1 in the environment it also waits for the kernel, so
 * that an asynchronous fault is reported at the launch that caused it. */
extern int sk_cuda_sync_debug;
#define CUDA_CHECK_LAUNCH()                                                                        \
    do {                                                                                           \
        CUDA_CHECK(cudaGetLastError());                                                            \
        if (sk_cuda_sync_debug) CUDA_CHECK(cudaDeviceSynchronize());                               \
    } while (0)

#include "backend/cuda/half.cuh"

typedef __nv_bfloat16 bf16;
typedef __half f16;

/* The backend's half type. */
typedef enum sk_cuda_dtype { SK_CUDA_BF16 = 0, SK_CUDA_F16 = 1 } sk_cuda_dtype;

struct sk_cuda_pf; /* prefill attention buffers (attn_prefill.cu) */
struct sk_cuda_mm; /* matmul state (matmul.cu): plan cache, cuBLASLt handle, workspace */

/* Device scratch (SK_CUDA_SCRATCH_FLOATS * 4 bytes) holding matmul's input cast to the half
 * type, allocated once (no growth, so the void ops never meet an allocation failure): matmul
 * works in row chunks that fit it. */
/* 64 MB: a step of 2048 rows at K = 11008 (Llama-2-7B's down projection) is cast and multiplied
 * at once (16 MB split it into 762 + 762 + 524 rows; a decode step of 960 into 762 + 198). */
#define SK_CUDA_SCRATCH_FLOATS ((size_t)16 << 20)
/* rope_dim / 2 at most (head_dim <= 1024 by sk_hparams validation). */
#define SK_CUDA_ROPE_MAX_HALF 512
/* Weight upload: elements per chunk (a multiple of every block size); pinned staging holds two
 * chunks of half values, the host fp32 buffer one chunk. */
#define SK_CUDA_UPLOAD_CHUNK ((size_t)4 << 20)

typedef struct cuda_ctx {
    int device;
    sk_cuda_dtype dtype; /* weights and KV cache */
    cudaStream_t stream;
    struct sk_cuda_mm *mm;

    /* The current batch (begin/begin_paged): pinned host copy and device copy, each
     * [5][cap] + [ids_cap] int32: tokens, positions, sequences (slots, or indices into the page
     * tables), then for page tables each row's first page-id index (indptr of its sequence) and
     * kv_len (position + 1), then the page ids. One H2D copy per step, at addresses that move
     * only when a batch outgrows cap or ids_cap (be->addr_epoch is then bumped). The host copy
     * stays valid until the next begin and is what the entries check indices against; h_indptr
     * keeps the tables' indptr [n_seqs + 1] (host only). */
    int T, cap, ids_cap;
    int32_t *h_batch, *d_batch;
    cudaEvent_t batch_copied; /* recorded after the H2D copy of h_batch */
    bool paged;          /* the current batch has page tables */
    bool rows_distinct;  /* every row of the current batch is the only one of its sequence */
    unsigned batch_gen;  /* bumped by every begin: host tables derived from a batch are reused
                            by the layers of one step while it is unchanged */
    int n_seqs, indptr_cap;
    int32_t *h_indptr;

    float *d_scratch; /* [SK_CUDA_SCRATCH_FLOATS] (matmul's half input) */
    struct sk_cuda_pf *pf; /* prefill attention path (NULL until first used) */
    void *w4_tmp;     /* an INT4 weight dequantized to half for T > SK_W4_MAX_T (grown on demand) */
    size_t w4_tmp_bytes;
    void *mm_tmp;     /* matmul_swiglu's [T, 2F] product on the cuBLASLt path (grown on demand) */
    size_t mm_tmp_bytes;
    /* mm_tmp and w4_tmp as the last begin saw them: ops grow those without bumping addr_epoch,
     * so begin bumps it when they moved (graphs recorded the old addresses). */
    void *seen_mm_tmp, *seen_w4_tmp;
    /* argmax: device and pinned host results [argmax_cap] (grown on demand; never captured). */
    int32_t *d_argmax, *h_argmax;
    int argmax_cap;
    /* sample: device and pinned host staging of [sample_cap] rows' parameters and tokens. */
    void *d_sample, *h_sample;
    int sample_cap;

    /* RoPE inverse frequencies [SK_CUDA_ROPE_MAX_HALF], computed on the host with the CPU
     * reference's float expression (bit-identical angles), for (rope_theta, rope_dim). */
    float *d_rope_freq;
    float rope_theta;
    int rope_dim; /* 0: table not filled yet */

    /* The RMSNorm carried from a W4 ADD GEMV to the STORE GEMV after it (session 15, w4.cuh's
     * sk_w4_pn; matmul.cu): norm_next's gamma while pending; after an ADD that took it, the x it
     * wrote, the gamma, its rows and its blocks' count of sums of squares. pn_xg [SK_CUDA_PN_XG]
     * and pn_ssq [SK_CUDA_PN_SSQ] floats, allocated once outside a capture. begin clears it. */
    const float *pn_hint;
    long pn_hint_n;  /* its length */
    int pn_hint_sw;  /* its consumer is the SwiGLU product */
    const void *pn_x;
    const float *pn_gamma;
    int pn_T, pn_n, pn_nssq;
    float *pn_xg, *pn_ssq;

    /* Weight upload staging (weight_load). */
    uint16_t *h_stage[2]; /* pinned, [SK_CUDA_UPLOAD_CHUNK] half bits each */
    cudaEvent_t stage_done[2];
    float *h_f32;         /* [SK_CUDA_UPLOAD_CHUNK] */
} cuda_ctx;

static inline cuda_ctx *sk_cuda_ctx(sk_backend *be) { return (cuda_ctx *)be->ctx; }
static inline const int32_t *sk_cuda_d_tokens(const cuda_ctx *c) { return c->d_batch; }
static inline const int32_t *sk_cuda_d_pos(const cuda_ctx *c) { return c->d_batch + c->cap; }
static inline const int32_t *sk_cuda_d_seq(const cuda_ctx *c) { return c->d_batch + 2 * c->cap; }
static inline const int32_t *sk_cuda_h_tokens(const cuda_ctx *c) { return c->h_batch; }
static inline const int32_t *sk_cuda_h_pos(const cuda_ctx *c) { return c->h_batch + c->cap; }
static inline const int32_t *sk_cuda_h_seq(const cuda_ctx *c) { return c->h_batch + 2 * c->cap; }
/* Page tables of the current batch (c->paged): per row, the index of its sequence's first page
 * id and its kv_len; the ids. */
static inline const int32_t *sk_cuda_d_row_pages(const cuda_ctx *c) { return c->d_batch + 3 * c->cap; }
static inline const int32_t *sk_cuda_d_kv_len(const cuda_ctx *c) { return c->d_batch + 4 * c->cap; }
static inline const int32_t *sk_cuda_d_ids(const cuda_ctx *c) { return c->d_batch + 5 * c->cap; }
static inline const int32_t *sk_cuda_h_ids(const cuda_ctx *c) { return c->h_batch + 5 * c->cap; }

/* A weight: rows x cols (1-D tensors are one row; more dims are [prod(outer), last]).
 * h: [rows, cols] of the backend's half type (bf16 or f16), always present (matmul, embed).
 * f32: [cols] fp32, 1-D weights only (norm weights and biases, the matmul bias epilogue), NULL
 * otherwise. */
struct sk_weight {
    int64_t rows, cols;
    void *h;
    float *f32;
    /* INT4 weights (w4.cuh; h is NULL): q4 uint32 [rows][cols/8], q4s half2 [rows][cols/q4_group]
     * (scale, 1024 + zero point). q4_group 0 for half weights. */
    int q4_group;
    uint32_t *q4;
    __half2 *q4s;
};

/* Paged pool per layer (attention.cuh, attn_params.h): [n_pages][n_kv_heads][page_size]
 * [head_dim] half; slot s owns pages s*pages_per_seq.. in order. The decode kernel's page tables
 * and scratch are filled on the device each step (attention.cu). */
#define SK_CUDA_PAGE_SIZE 64
struct sk_kv_cache {
    int n_layers, n_kv_heads, head_dim, n_ctx, n_seq;
    int page_size, pages_per_seq; /* n_ctx = page_size * pages_per_seq (rounded up) */
    /* Every cache is a pool of n_pages pages: slot caches (kv_new) have n_seq slots of
     * pages_per_seq pages; pools (kv_pool_new) have n_seq = pages_per_seq = 0, n_ctx =
     * max_seq_len (what the decode plan is made for) and are addressed through page tables. */
    int n_pages;
    /* Decode buffers below are sized for dec_rows rows (grown with T; slot caches: n_seq);
     * part_* hold part_cap floats of output and part_cap / head_dim of lse. */
    int dec_rows, dec_T;
    size_t part_cap;
    size_t layer_elems;
    void *k, *v;
    /* Decode path (sk_attn_decode): [n_seq + 1] indptr, [n_seq * pages_per_seq] indices,
     * [n_seq] kv_len; q in the half type [n_seq][n_heads*head_dim] (the kernel writes its fp32
     * output straight into the op's out); split scratch. */
    int32_t *d_indptr, *d_indices, *d_kv_len;
    void *q_half;
    float *part_out, *part_lse;
    int dec_heads;   /* n_heads the decode buffers were sized for (0: not yet) */
    int dec_splits;  /* planned splits */
    int dec_mq;      /* 1: the step runs decode kernel 4 (attn_decode_mq.cuh; SAKER_ATTN_MQ=0: off) */
};

/* Page j of sequence s of the current batch: its page table, or in slot mode slot s's own. */
static inline int32_t sk_cuda_seq_page(const cuda_ctx *c, const sk_kv_cache *kv, int s, int j) {
    return c->paged ? sk_cuda_h_ids(c)[c->h_indptr[s] + j] : s * kv->pages_per_seq + j;
}

/* ---- device helpers ----------------------------------------------------------------------- */

static __device__ __forceinline__ float sk_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}
static __device__ __forceinline__ float sk_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum / max over the block (blockDim.x a multiple of 32, at most 1024), returned to every
 * thread. red: __shared__ float[32]. Ends with a barrier, so red can be reused at once. */
static __device__ __forceinline__ float sk_block_sum(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = sk_warp_sum(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float r = 0.0f;
    for (int i = 0; i < nw; i++) r += red[i];
    __syncthreads();
    return r;
}
static __device__ __forceinline__ float sk_block_max(float v, float *red) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nw = blockDim.x >> 5;
    v = sk_warp_max(v);
    if (lane == 0) red[warp] = v;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < nw; i++) r = fmaxf(r, red[i]);
    __syncthreads();
    return r;
}

/* ---- host helpers ------------------------------------------------------------------------- */

static inline bool sk_cuda_aligned(const void *p, size_t bytes) {
    return ((uintptr_t)p % bytes) == 0;
}
/* Blocks for a grid-stride loop over n units at `threads` per block. */
static inline unsigned sk_cuda_blocks(size_t n, int threads) {
    size_t b = (n + (size_t)threads - 1) / (size_t)threads;
    if (b < 1) b = 1;
    if (b > 4096) b = 4096;
    return (unsigned)b;
}
/* True when [a, a + na) and [b, b + nb) (bytes) overlap. */
static inline bool sk_cuda_overlap(const void *a, size_t na, const void *b, size_t nb) {
    uintptr_t x = (uintptr_t)a, y = (uintptr_t)b;
    return x < y + nb && y < x + na;
}

/* ---- entries (one per op family file) ----------------------------------------------------- */

/* elementwise.cu */
void sk_cuda_embed(sk_backend *be, const sk_weight *table, void *out);
void sk_cuda_add(sk_backend *be, void *x, const void *y, size_t n);
void sk_cuda_swiglu(sk_backend *be, const void *gate, const void *up, size_t n, void *out);
void sk_cuda_gelu(sk_backend *be, void *x, size_t n);
/* out_host[t] = the lowest index of the largest of x[t, 0..N) (NaNs ignored; 0 when x[t, 0] is
 * NaN or nothing else compares), as the CPU's scan; waits for the stream. */
void sk_cuda_argmax(sk_backend *be, const void *x, int T, int N, int32_t *out_host);
void sk_cuda_sample(sk_backend *be, const void *x, int T, int N, const sk_sample_row *rows,
                    int32_t *out_host);
/* dst[n] (c->dtype, rounded; fp16 saturating) = src[n] (fp32), both device. */
void sk_cuda_f32_to_half(cuda_ctx *c, const float *src, void *dst, size_t n);
/* The same with GELU (erf) applied to each value first when gelu (gelu_matmul_add's input). */
void sk_cuda_f32_gelu_to_half(cuda_ctx *c, const float *src, void *dst, size_t n, bool gelu);
/* h[n] (c->dtype; and f32[n] unless NULL) = mean + a * sk_rand_uniform(seed, i)
 * (weight_random). */
void sk_cuda_fill_random(cuda_ctx *c, void *h, float *f32, size_t n, float mean, float a,
                         uint64_t seed);

/* norm.cu */
void sk_cuda_rmsnorm(sk_backend *be, const void *x, const sk_weight *w, float eps, int T, int D,
                     void *out);
void sk_cuda_layernorm(sk_backend *be, const void *x, const sk_weight *w, const sk_weight *b,
                       float eps, int T, int D, void *out);

/* rope.cu */
void sk_cuda_rope(sk_backend *be, void *x, int T, int n_heads, int row_stride,
                  const sk_rope_params *rp);
/* The device table of rope frequencies for (theta, rope_dim), updated on the stream if needed. */
const float *sk_cuda_rope_freq(cuda_ctx *c, float theta, int rope_dim);

/* attention.cu */
void sk_cuda_attention(sk_backend *be, sk_kv_cache *kv, int layer, const void *q, int q_stride,
                       const void *k, const void *v, int kv_stride, int n_heads, void *out);
void sk_cuda_rope_attention(sk_backend *be, sk_kv_cache *kv, int layer, void *q, int q_stride,
                            void *k, const void *v, int kv_stride, int n_heads,
                            const sk_rope_params *rp, void *out);

/* matmul.cu. mm_new returns SK_ERR_NOMEM (message set) when the workspace cannot be allocated. */
/* The prefill (context-phase) path of the attention op: the batch's rows as segments of
 * consecutive positions per sequence through sk_attn_prefill (tensor cores), reading earlier
 * context from the pages. Returns false, having done nothing, when it cannot take the batch
 * (not bf16, head dim not 64/80/128, a sequence in two segments): the caller falls back. */
bool sk_cuda_attention_prefill(cuda_ctx *c, sk_kv_cache *kv, int layer, const float *q,
                               int q_stride, const float *k, const float *v, int kv_stride,
                               int n_heads, float *out);
/* The same in two parts, for rows [first, T) of the batch (attention.cu's split of mixed
 * batches): _ok plans the segments and uploads the tables (once per batch and first; false when
 * the prefill path cannot take those rows, nothing launched); _rows stores the K/V of every row
 * of the batch when `store`, and computes rows [first, T) of out. */
bool sk_cuda_attention_prefill_ok(cuda_ctx *c, sk_kv_cache *kv, int first);
void sk_cuda_attention_prefill_rows(cuda_ctx *c, sk_kv_cache *kv, int layer, const float *q,
                                    int q_stride, const float *k, const float *v, int kv_stride,
                                    int n_heads, float *out, int first, bool store);
/* How many leading rows of the current batch are each the only row of their sequence (the
 * decode rows the engine puts first); computed once per batch. */
int sk_cuda_attention_lead_rows(cuda_ctx *c);
void sk_cuda_pf_free(struct sk_cuda_pf *pf);
/* Attention's casts around the bf16 tensor-core kernels (attention.cu): q rows [T][w] (row
 * stride q_stride) to a contiguous bf16 [T][w], and n bf16 outputs back to fp32. */
void sk_cuda_q_to_bf16(cuda_ctx *c, const float *q, int q_stride, int w, int T, void *dst);
void sk_cuda_bf16_to_f32(cuda_ctx *c, const void *src, size_t n, float *dst);
sk_status sk_cuda_mm_new(cuda_ctx *c, struct sk_cuda_mm **out);
void sk_cuda_mm_free(struct sk_cuda_mm *mm);
void sk_cuda_matmul_add(sk_backend *be, const void *x, int T, const sk_weight *w,
                        const sk_weight *bias, void *out);
void sk_cuda_gelu_matmul_add(sk_backend *be, void *x, int T, const sk_weight *w,
                             const sk_weight *bias, void *out);
void sk_cuda_matmul_swiglu(sk_backend *be, const void *x, int T, const sk_weight *w, void *out);
void sk_cuda_matmul(sk_backend *be, const void *x, int T, const sk_weight *w,
                    const sk_weight *bias, void *out);
void sk_cuda_rmsnorm_matmul(sk_backend *be, const void *x, const sk_weight *norm, float eps, int T,
                            const sk_weight *w, const sk_weight *bias, void *h, void *out);
void sk_cuda_norm_next(sk_backend *be, const sk_weight *norm, int swiglu);
void sk_cuda_rmsnorm_matmul_swiglu(sk_backend *be, const void *x, const sk_weight *norm, float eps,
                                   int T, const sk_weight *w, void *h, void *out);

#endif
