/* Causal attention over a half (bf16 or fp16) KV cache: the params struct, the KV addressing
 * function and the kernels. Self-contained (CUDA headers and half.cuh only) so that the workbench
 * dev/cuda/attention_contig.cu includes exactly the kernels the backend runs.
 *
 * Templates over TQ, the type of q, out and the k/v rows stored (the backend: float; the
 * workbench: bf16), and TKV, the cache's type (bf16 or fp16); kernels are launched with the
 * types deduced from the params. Every value is converted to fp32 on load; the cache store
 * rounds to TKV (fp16 saturating, half.cuh), the output store to TQ.
 *
 * Cache layout, per layer: the paged pool of attn_params.h, [n_pages][n_kv_heads][page_size]
 * [head_dim] TKV, K and V alike. With page tables (page_ids != NULL), row t's sequence has
 * pages page_ids[row_pages[t] + j], j = 0, 1, ...; without (slot mode, page_ids NULL: the
 * workbench), sequence slot s owns pages s*pages_per_seq .. (s+1)*pages_per_seq - 1 in order.
 * Every KV access goes through sk_attn1_kv_offset.
 *
 * kernel1: one block of SK_ATTN1_THREADS threads per (query head, token); query head h reads KV
 * head h / group. The block walks its sequence's positions 0..pos in chunks of
 * SK_ATTN1_THREADS with an online softmax in fp32:
 *   scores: thread j of the chunk computes q . k[j] * scale (16-byte K loads when head_dim % 8
 *           == 0, else 4-byte), into shared memory;
 *   softmax: block max -> new running max m; p_j = exp(s_j - m); running sum and the
 *           accumulators are rescaled by exp(m_old - m);
 *   values: the threads form n_rg = SK_ATTN1_THREADS / (head_dim/2) row groups of head_dim/2
 *           threads; each thread owns 2 output dims and accumulates p_j v_j[d] over the chunk
 *           positions of its row group; the groups' partial sums are added once at the end.
 * Heads are the fastest grid index, so the query heads that share a KV head run side by side
 * and their K/V reads mostly hit L2. Any head_dim (even) up to SK_ATTN1_MAX_HEAD_DIM, any group
 * size, any length. */
#ifndef SK_CUDA_ATTENTION1_CUH
#define SK_CUDA_ATTENTION1_CUH

#include <cuda_bf16.h>
#include <stdint.h>

#include "backend/cuda/half.cuh"

#define SK_ATTN1_MAX_HEAD_DIM 256
#define SK_ATTN1_THREADS 128

template <typename TQ, typename TKV> struct sk_attn1_params_t {
    const TQ *q;        /* [T, q_stride]; head h at h * head_dim */
    TQ *out;            /* [T, n_heads * head_dim] contiguous */
    TKV *k_cache;       /* this layer's K pool: [n_pages][n_kv_heads][page_size][head_dim] */
    TKV *v_cache;       /* this layer's V, same layout */
    const int32_t *pos; /* [T] device: position of each row in its sequence */
    const int32_t *seq; /* [T] device: sequence slot of each row */
    const int32_t *row_pages; /* [T] device: row t's pages start at page_ids[row_pages[t]] */
    const int32_t *page_ids;  /* device page ids; NULL: slot mode */
    int T, q_stride, n_heads, n_kv_heads, head_dim, n_ctx;
    int page_size, pages_per_seq; /* slot mode: n_ctx = page_size * pages_per_seq */
    float scale; /* 1/sqrt(head_dim) */
};
/* The workbench's instance: bf16 everywhere. */
typedef sk_attn1_params_t<__nv_bfloat16, __nv_bfloat16> sk_attn1_params;

/* Element offset of (row t's sequence (slot seq), pos, kv_head, 0) in a layer's K or V. */
template <typename TQ, typename TKV>
static __device__ __forceinline__ size_t sk_attn1_kv_offset(const sk_attn1_params_t<TQ, TKV> *p,
                                                           int t, int seq, int pos, int kvh) {
    const size_t page =
        p->page_ids ? (size_t)p->page_ids[p->row_pages[t] + pos / p->page_size]
                    : (size_t)seq * (size_t)p->pages_per_seq + (size_t)(pos / p->page_size);
    return ((page * (size_t)p->n_kv_heads + (size_t)kvh) * (size_t)p->page_size +
            (size_t)(pos % p->page_size)) *
           (size_t)p->head_dim;
}

/* Block t stores row t of k and v ([T, kv_stride], n_kv_heads*head_dim used), rounded to TKV,
 * into the cache at (seq[t], pos[t]). */
template <typename TQ, typename TKV>
static __global__ void sk_attn1_store_kernel(const __grid_constant__ sk_attn1_params_t<TQ, TKV> p,
                                            const TQ *k, const TQ *v, int kv_stride) {
    const int t = blockIdx.x;
    const int s = p.seq[t], ps = p.pos[t], w = p.n_kv_heads * p.head_dim;
    const TQ *ks = k + (size_t)t * kv_stride, *vs = v + (size_t)t * kv_stride;
    for (int i = threadIdx.x; i < w; i += blockDim.x) {
        /* A position's KV heads are page_size rows apart in the pool. */
        const size_t o = sk_attn1_kv_offset(&p, t, s, ps, i / p.head_dim) + (size_t)(i % p.head_dim);
        sk_hst(p.k_cache + o, sk_h2f(ks[i]));
        sk_hst(p.v_cache + o, sk_h2f(vs[i]));
    }
}

static __device__ __forceinline__ float sk_attn1_warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}
static __device__ __forceinline__ float sk_attn1_warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* Block-wide max / sum over SK_ATTN1_THREADS threads; red: __shared__ float[32]. Ends with a
 * barrier so red is free again on return. */
static __device__ __forceinline__ float sk_attn1_block_max(float v, float *red) {
    v = sk_attn1_warp_max(v);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = red[0];
#pragma unroll
    for (int i = 1; i < SK_ATTN1_THREADS / 32; i++) r = fmaxf(r, red[i]);
    __syncthreads();
    return r;
}
static __device__ __forceinline__ float sk_attn1_block_sum(float v, float *red) {
    v = sk_attn1_warp_sum(v);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = 0.0f;
#pragma unroll
    for (int i = 0; i < SK_ATTN1_THREADS / 32; i++) r += red[i];
    __syncthreads();
    return r;
}

/* grid (n_heads, T), block SK_ATTN1_THREADS. p is __grid_constant__ so that passing &p to
 * sk_attn1_kv_offset reads the parameter in place instead of copying it to local memory. */
template <typename TQ, typename TKV>
static __global__ void __launch_bounds__(SK_ATTN1_THREADS)
    sk_attn_kernel1(const __grid_constant__ sk_attn1_params_t<TQ, TKV> p) {
    __shared__ __align__(16) float q_s[SK_ATTN1_MAX_HEAD_DIM];
    __shared__ float p_s[SK_ATTN1_THREADS];               /* chunk probabilities */
    __shared__ float acc_s[2 * SK_ATTN1_THREADS];         /* row groups' partial outputs */
    __shared__ float red[32];

    const int h = blockIdx.x, t = blockIdx.y, tid = threadIdx.x;
    const int hd = p.head_dim, group = p.n_heads / p.n_kv_heads, kvh = h / group;
    const int n_pos = p.pos[t] + 1, s = p.seq[t];

    const TQ *qh = p.q + (size_t)t * p.q_stride + (size_t)h * hd;
    for (int d = tid; d < hd; d += SK_ATTN1_THREADS) q_s[d] = sk_h2f(qh[d]);
    __syncthreads();

    /* Value-phase roles: row group rg of hd/2 threads, each thread dims 2*c, 2*c+1. */
    const int hd2 = hd / 2, n_rg = SK_ATTN1_THREADS / hd2;
    const int rg = tid / hd2, c = tid % hd2;
    const bool v_active = rg < n_rg;

    float m = -INFINITY, l = 0.0f, acc0 = 0.0f, acc1 = 0.0f;
    const bool vec8 = (hd % 8) == 0;

    for (int c0 = 0; c0 < n_pos; c0 += SK_ATTN1_THREADS) {
        /* Scores. */
        const int j = c0 + tid;
        float sc = -INFINITY;
        if (j < n_pos) {
            const TKV *kr = p.k_cache + sk_attn1_kv_offset(&p, t, s, j, kvh);
            float dot = 0.0f, ka, kb;
            if (vec8) {
                for (int d = 0; d < hd; d += 8) {
                    const uint4 u = *(const uint4 *)(kr + d);
                    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        sk_h2x2(kr, w[e], &ka, &kb);
                        dot = fmaf(q_s[d + 2 * e], ka, dot);
                        dot = fmaf(q_s[d + 2 * e + 1], kb, dot);
                    }
                }
            } else {
                for (int d = 0; d < hd; d += 2) {
                    sk_h2x2(kr, *(const uint32_t *)(kr + d), &ka, &kb);
                    dot = fmaf(q_s[d], ka, dot);
                    dot = fmaf(q_s[d + 1], kb, dot);
                }
            }
            sc = dot * p.scale;
        }

        /* Online softmax. The chunk has at least one valid position (c0 < n_pos), so m_new is
         * finite and alpha = exp(-inf) = 0 on the first chunk. */
        const float m_new = fmaxf(m, sk_attn1_block_max(sc, red));
        const float alpha = expf(m - m_new);
        const float pj = j < n_pos ? expf(sc - m_new) : 0.0f;
        p_s[tid] = pj;
        l = l * alpha + sk_attn1_block_sum(pj, red); /* its barriers publish p_s */
        m = m_new;

        /* Values. */
        acc0 *= alpha;
        acc1 *= alpha;
        if (v_active) {
            const int n = n_pos - c0 < SK_ATTN1_THREADS ? n_pos - c0 : SK_ATTN1_THREADS;
#pragma unroll 4
            for (int jj = rg; jj < n; jj += n_rg) {
                const TKV *vr = p.v_cache + sk_attn1_kv_offset(&p, t, s, c0 + jj, kvh);
                float va, vb;
                sk_h2x2(vr, *(const uint32_t *)(vr + 2 * c), &va, &vb);
                const float pw = p_s[jj];
                acc0 = fmaf(pw, va, acc0);
                acc1 = fmaf(pw, vb, acc1);
            }
        }
        __syncthreads(); /* p_s is rewritten by the next chunk */
    }

    /* Add the row groups' partial sums; group 0 writes. */
    if (v_active) {
        acc_s[2 * tid] = acc0;
        acc_s[2 * tid + 1] = acc1;
    }
    __syncthreads();
    if (rg == 0) {
        float o0 = 0.0f, o1 = 0.0f;
        for (int g = 0; g < n_rg; g++) {
            o0 += acc_s[2 * (g * hd2 + c)];
            o1 += acc_s[2 * (g * hd2 + c) + 1];
        }
        const float inv = 1.0f / l;
        TQ *o = p.out + (size_t)t * p.n_heads * hd + (size_t)h * hd;
        sk_hst(o + 2 * c, o0 * inv);
        sk_hst(o + 2 * c + 1, o1 * inv);
    }
}

#endif
