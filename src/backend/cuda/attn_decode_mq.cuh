/* Decode attention for large groups (MQA, Falcon's 29 query heads a KV head): kernel 4, a
 * FlashAttention-2 style kernel with the query heads of a group as the M side.
 *
 * Status (2026-11-29, session 5): written after the device time of the session was spent; it
 * compiles (CI) and the workbench dev/cuda/attention_decode.cu checks and times it as "v4 mq",
 * but it has NOT run on a GPU yet. Nothing in the backend calls it.
 *
 * Why: kernel 2 (attn_decode.cuh) puts the queries on the N = 8 side of mma.m16n8k16 and streams
 * 16-token chunks per warp; at MQA (64 query heads, 1 KV head) it is latency-bound: ~560
 * instructions per 16-token chunk, 32 of them MMAs, and a warp's chain (copy wait, 8 dependent
 * QK MMAs, softmax, movmatrix, PV) is serial (session 5's helper: 81 us at 64 x 4096 against torch
 * SDPA's 60). Here a block of QW warps takes 16 QW query heads of one KV head (each warp 16 heads
 * = the M = 16 rows of its MMAs) and walks the sequence in tiles of 64 tokens that the whole block
 * copies into shared memory once (cp.async, 16-byte chunks, XOR-swizzled rows) and all warps read
 * with ldmatrix; per warp and tile 8 x hd/16 MMAs for S = Q K^T (Q in registers for the whole
 * kernel), one online-softmax update of 16 x 64 scores, and 4 x hd/8 MMAs for O += P V (P from
 * the S registers, V fragments by ldmatrix.trans). Two tile stages: the next tile's copy runs
 * under this tile's arithmetic.
 *
 * Split-KV as kernel 2: grid.x = n_splits ranges of each sequence's tiles (balanced on its own
 * length), partial outputs normalised, log2-sum-exp in part_lse (scores in log2 units, scaled by
 * sm_scale log2(e)), merged by sk_ad_combine_kernel. Empty ranges write zeros and -inf.
 *
 * Fragment mapping (PTX ISA, mma.m16n8k16, lane = 4 g + t):
 *   A (Q, and P): {A[g][2t..2t+1], A[g+8][2t..], A[g][2t+8..], A[g+8][2t+8..]}
 *   B (K^T: B[k = dim][n = key]; V: B[k = key][n = dim]): {B[2t..2t+1][g], B[2t+8..2t+9][g]}
 *   C: {C[g][2t], C[g][2t+1], C[g+8][2t], C[g+8][2t+1]}
 *   ldmatrix.x4 of K rows (keys 8 nt + i, 16-byte chunks 4 kp + m) gives B of k-steps 2 kp and
 *   2 kp + 1; ldmatrix.x4.trans of V rows (keys 16 kk + 8 (m & 1) + i, chunk dc + (m >> 1))
 *   gives B of dim tiles dc and dc + 1. */
#ifndef SK_CUDA_ATTN_DECODE_MQ_CUH
#define SK_CUDA_ATTN_DECODE_MQ_CUH

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "attn_decode.cuh"

#define SK_ADMQ_BN 64 /* tokens per tile */

/* 1 when kernel 4 takes the shape: head_dim 64 or 128, groups of 9 and more, page size a power
 * of two from 16 on (a 64-token tile may span pages). */
static inline int sk_attn_decode_mq_supported(int head_dim, int group) {
    return (head_dim == 64 || head_dim == 128) && group >= 9;
}
/* Query warps per block for a group: 16 heads a warp, 2 or 4 warps. */
static inline int sk_attn_decode_mq_warps(int group) { return group <= 32 ? 2 : 4; }

/* Splits for a step: enough blocks for about 2 a multiprocessor, each split at least 2 tiles. */
static inline int sk_attn_decode_mq_splits(int batch, int n_kv_heads, int group, int max_kv_len,
                                           int n_sm) {
    const int qw = sk_attn_decode_mq_warps(group), n_qblk = (group + 16 * qw - 1) / (16 * qw);
    const long base = (long)batch * n_kv_heads * n_qblk;
    const int tiles = (max_kv_len + SK_ADMQ_BN - 1) / SK_ADMQ_BN;
    if (base <= 0) return 1;
    long ns = (2L * n_sm + base - 1) / base;
    if (ns > tiles / 2) ns = tiles / 2;
    if (ns > SK_ATTN_DECODE_MAX_SPLITS) ns = SK_ATTN_DECODE_MAX_SPLITS;
    return ns < 1 ? 1 : (int)ns;
}

#ifdef __CUDACC__

typedef struct sk_admq_args {
    sk_attn_params p;
    int group, n_qblk, lg_page;
    float sl2; /* sm_scale * log2(e) */
} sk_admq_args;

static __device__ __forceinline__ void sk_admq_ldsm4(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
static __device__ __forceinline__ void sk_admq_ldsm4t(uint32_t (&r)[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
static __device__ __forceinline__ void sk_admq_cp16(uint32_t dst, const void *src, bool ok) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(ok ? 16 : 0));
}
/* Byte offset of 16-byte chunk c of row r in a [64][HD] bf16 tile, chunks XOR-swizzled by r % 8
 * (ldmatrix's 8 row addresses of one matrix then hit 8 different bank groups). */
template <int HD>
static __device__ __forceinline__ uint32_t sk_admq_off(int r, int c) {
    return (uint32_t)(r * (HD * 2) + ((c ^ (r & 7)) << 4));
}

/* Copies tile `tile` (tokens 64 tile ..) of (sequence, KV head) into stage buffers sK / sV (shared
 * addresses); tokens at or past `lim` are zero-filled. All threads. */
template <int HD, int NTH>
static __device__ __forceinline__ void sk_admq_load(const sk_admq_args &a, const int32_t *ids,
                                                    int kvh, int tile, int lim, uint32_t sK,
                                                    uint32_t sV) {
    constexpr int CPR = HD / 8; /* 16-byte chunks a row */
    const __nv_bfloat16 *kp = (const __nv_bfloat16 *)a.p.kv.k;
    const __nv_bfloat16 *vp = (const __nv_bfloat16 *)a.p.kv.v;
    const int ps_mask = (1 << a.lg_page) - 1;
#pragma unroll 4
    for (int j = 0; j < SK_ADMQ_BN * CPR / NTH; j++) {
        const int i = (int)threadIdx.x + NTH * j, r = i / CPR, c = i % CPR;
        const int tok = tile * SK_ADMQ_BN + r;
        const bool ok = tok < lim;
        size_t off = 0;
        if (ok) {
            const int pid = __ldg(ids + (tok >> a.lg_page));
            off = (((size_t)pid * (size_t)a.p.kv.n_kv_heads + (size_t)kvh) << a.lg_page) +
                  (size_t)(tok & ps_mask);
            off = off * HD + 8 * c;
        }
        const uint32_t d = sk_admq_off<HD>(r, c);
        sk_admq_cp16(sK + d, kp + off, ok);
        sk_admq_cp16(sV + d, vp + off, ok);
    }
}

/* grid (n_splits, n_kv_heads * n_qblk, batch), 32 QW threads, dynamic shared memory
 * 2 stages x (K + V) x 64 x HD x 2 bytes. */
template <int HD, int QW>
__global__ void __launch_bounds__(32 * QW) sk_admq_kernel(const __grid_constant__ sk_admq_args a) {
    constexpr int NTH = 32 * QW, KS = HD / 16, DT = HD / 8, TB = SK_ADMQ_BN * HD * 2;
    extern __shared__ __align__(128) uint8_t sk_admq_sm[];
    const uint32_t sbase = (uint32_t)__cvta_generic_to_shared(sk_admq_sm);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int split = blockIdx.x, kvh = blockIdx.y / a.n_qblk, qb = blockIdx.y % a.n_qblk;
    const int b = blockIdx.z, ns = a.p.n_splits, group = a.group;
    const int len = a.p.kv.kv_len[b];
    const int ntile = (len + SK_ADMQ_BN - 1) / SK_ADMQ_BN;
    const int t0 = (int)((long long)split * ntile / ns), t1 = (int)((long long)(split + 1) * ntile / ns);
    const int32_t *ids = a.p.kv.indices + a.p.kv.indptr[b];

    /* Q fragments of this warp's 16 heads (rows past the group are zero). */
    const int j0 = qb * 16 * QW + 16 * warp;
    uint32_t qf[KS][4];
    {
        const __nv_bfloat16 *q = (const __nv_bfloat16 *)a.p.q + (size_t)b * (size_t)a.p.q_stride;
        const int ja = j0 + g, jb = j0 + g + 8;
        const uint32_t *qa = (const uint32_t *)(q + (size_t)(kvh * group + ja) * HD);
        const uint32_t *qbp = (const uint32_t *)(q + (size_t)(kvh * group + jb) * HD);
#pragma unroll
        for (int ks = 0; ks < KS; ks++) {
            qf[ks][0] = ja < group ? __ldg(qa + 8 * ks + t) : 0u;
            qf[ks][1] = jb < group ? __ldg(qbp + 8 * ks + t) : 0u;
            qf[ks][2] = ja < group ? __ldg(qa + 8 * ks + 4 + t) : 0u;
            qf[ks][3] = jb < group ? __ldg(qbp + 8 * ks + 4 + t) : 0u;
        }
    }

    float o[DT][4];
#pragma unroll
    for (int d = 0; d < DT; d++) o[d][0] = o[d][1] = o[d][2] = o[d][3] = 0.0f;
    float m0 = -INFINITY, m1 = -INFINITY, l0 = 0.0f, l1 = 0.0f; /* rows g, g + 8 */

    /* stage st: K at sbase + 2 st TB, V right after it */
    if (t0 < t1) sk_admq_load<HD, NTH>(a, ids, kvh, t0, len, sbase, sbase + TB);
    asm volatile("cp.async.commit_group;\n" ::: "memory");
    for (int it = t0; it < t1; it++) {
        const uint32_t sK = sbase + (uint32_t)(((it - t0) & 1) * 2 * TB), sV = sK + TB;
        const uint32_t nK = sbase + (uint32_t)((((it - t0) & 1) ^ 1) * 2 * TB);
        if (it + 1 < t1) sk_admq_load<HD, NTH>(a, ids, kvh, it + 1, len, nK, nK + TB);
        asm volatile("cp.async.commit_group;\n" ::: "memory");
        asm volatile("cp.async.wait_group 1;\n" ::: "memory");
        __syncthreads();
        if (j0 < group) { /* warp-uniform: a warp of padding heads only copies */
        /* S = Q K^T: 16 heads x 64 tokens, 8 n-tiles of 8 tokens */
        float s[8][4];
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            s[nt][0] = s[nt][1] = s[nt][2] = s[nt][3] = 0.0f;
#pragma unroll
            for (int kp = 0; kp < KS / 2; kp++) {
                uint32_t kb[4];
                const int r = 8 * nt + (lane & 7), c = 4 * kp + (lane >> 3);
                sk_admq_ldsm4(kb, sK + sk_admq_off<HD>(r, c));
                sk_ad_mma(s[nt], qf[2 * kp][0], qf[2 * kp][1], qf[2 * kp][2], qf[2 * kp][3], kb[0],
                          kb[1]);
                sk_ad_mma(s[nt], qf[2 * kp + 1][0], qf[2 * kp + 1][1], qf[2 * kp + 1][2],
                          qf[2 * kp + 1][3], kb[2], kb[3]);
            }
        }
        /* scale, mask the tokens past the sequence, online softmax per row */
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            const int tok = it * SK_ADMQ_BN + 8 * nt + 2 * t;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const bool in = tok + (e & 1) < len;
                s[nt][e] = in ? s[nt][e] * a.sl2 : -INFINITY;
            }
            mx0 = fmaxf(mx0, fmaxf(s[nt][0], s[nt][1]));
            mx1 = fmaxf(mx1, fmaxf(s[nt][2], s[nt][3]));
        }
#pragma unroll
        for (int off = 1; off <= 2; off <<= 1) {
            mx0 = fmaxf(mx0, __shfl_xor_sync(SK_AD_FULL, mx0, off));
            mx1 = fmaxf(mx1, __shfl_xor_sync(SK_AD_FULL, mx1, off));
        }
        const float n0 = fmaxf(m0, mx0), n1 = fmaxf(m1, mx1);
        /* a row with every score so far masked keeps -inf: its factors are 0, not NaN */
        const float b0 = n0 == -INFINITY ? 0.0f : n0, b1 = n1 == -INFINITY ? 0.0f : n1;
        const float al0 = sk_ad_exp2(m0 - b0), al1 = sk_ad_exp2(m1 - b1);
        m0 = n0, m1 = n1;
        l0 *= al0, l1 *= al1;
#pragma unroll
        for (int d = 0; d < DT; d++) o[d][0] *= al0, o[d][1] *= al0, o[d][2] *= al1, o[d][3] *= al1;
        uint32_t pa[4][4]; /* P as the A operand of the 4 k-steps of 16 tokens */
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            const float p0 = sk_ad_exp2(s[nt][0] - b0), p1 = sk_ad_exp2(s[nt][1] - b0);
            const float p2 = sk_ad_exp2(s[nt][2] - b1), p3 = sk_ad_exp2(s[nt][3] - b1);
            l0 += p0 + p1, l1 += p2 + p3;
            const int kk = nt >> 1, hi = nt & 1;
            pa[kk][2 * hi] = sk_ad_pack_bf16(p0, p1);
            pa[kk][2 * hi + 1] = sk_ad_pack_bf16(p2, p3);
        }
        /* O += P V: 16 heads x HD dims, dim tiles in pairs by ldmatrix.trans */
#pragma unroll
        for (int kk = 0; kk < 4; kk++)
#pragma unroll
            for (int dc = 0; dc < DT; dc += 2) {
                uint32_t vb[4];
                const int m = lane >> 3;
                const int r = 16 * kk + 8 * (m & 1) + (lane & 7), c = dc + (m >> 1);
                sk_admq_ldsm4t(vb, sV + sk_admq_off<HD>(r, c));
                sk_ad_mma(o[dc], pa[kk][0], pa[kk][1], pa[kk][2], pa[kk][3], vb[0], vb[1]);
                sk_ad_mma(o[dc + 1], pa[kk][0], pa[kk][1], pa[kk][2], pa[kk][3], vb[2], vb[3]);
            }
        }
        __syncthreads(); /* this stage is refilled two iterations on */
    }
    asm volatile("cp.async.wait_group 0;\n" ::: "memory");

#pragma unroll
    for (int off = 1; off <= 2; off <<= 1) {
        l0 += __shfl_xor_sync(SK_AD_FULL, l0, off);
        l1 += __shfl_xor_sync(SK_AD_FULL, l1, off);
    }
    const float i0 = l0 > 0.0f ? 1.0f / l0 : 0.0f, i1 = l1 > 0.0f ? 1.0f / l1 : 0.0f;
    const int H = a.p.n_heads;
#pragma unroll
    for (int rr = 0; rr < 2; rr++) {
        const int j = j0 + g + 8 * rr;
        if (j >= group) continue;
        const size_t bh = (size_t)b * (size_t)H + (size_t)(kvh * group + j);
        const float inv = rr ? i1 : i0;
#pragma unroll
        for (int d = 0; d < DT; d++) {
            const int dim = 8 * d + 2 * t;
            const float v0 = o[d][2 * rr] * inv, v1 = o[d][2 * rr + 1] * inv;
            if (ns > 1) {
                *(float2 *)(a.p.part_out + (bh * (size_t)ns + (size_t)split) * HD + dim) =
                    make_float2(v0, v1);
            } else if (a.p.out_f32) {
                *(float2 *)((float *)a.p.out + bh * HD + dim) = make_float2(v0, v1);
            } else {
                *(uint32_t *)((__nv_bfloat16 *)a.p.out + bh * HD + dim) = sk_ad_pack_bf16(v0, v1);
            }
        }
        if (ns > 1 && t == 0) {
            const float mm = rr ? m1 : m0, ll = rr ? l1 : l0;
            a.p.part_lse[bh * (size_t)ns + (size_t)split] =
                ll > 0.0f ? mm + __log2f(ll) : -INFINITY;
        }
    }
}

template <int HD, int QW>
static void sk_admq_launch(const sk_admq_args &a, cudaStream_t s) {
    const size_t smem = (size_t)4 * SK_ADMQ_BN * HD * 2;
    static int init = 0;
    if (!init) {
        if (cudaFuncSetAttribute(sk_admq_kernel<HD, QW>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                 (int)smem) != cudaSuccess) {
            fprintf(stderr, "saker: decode attention (mq): cannot set up %zu bytes of shared "
                            "memory\n", smem);
            abort();
        }
        init = 1;
    }
    const dim3 grid((unsigned)a.p.n_splits, (unsigned)(a.p.kv.n_kv_heads * a.n_qblk),
                    (unsigned)a.p.batch);
    sk_admq_kernel<HD, QW><<<grid, 32 * QW, smem, s>>>(a);
}

/* out = decode attention of p (one query row per sequence) by kernel 4, with p->n_splits splits
 * (part_out / part_lse sized as for kernel 2 when n_splits > 1); one or two launches. The shape
 * must be sk_attn_decode_mq_supported, page_size a power of two >= 16. */
static void sk_attn_decode_mq(const sk_attn_params *p, cudaStream_t s) {
    if (p->kv.n_kv_heads < 1 || p->n_heads < 1 || p->batch < 0 || p->batch > 65535 ||
        ((uintptr_t)p->kv.k & 15) || ((uintptr_t)p->kv.v & 15) || ((uintptr_t)p->q & 3) ||
        (p->q_stride & 1) || ((uintptr_t)p->out & (p->out_f32 ? 7 : 3)) ||
        ((uintptr_t)p->part_out & 7)) {
        fprintf(stderr, "saker: decode attention (mq): bad head counts, batch or alignment (k, v "
                        "16 bytes; q 4 and an even stride; out 8 (fp32) or 4; part_out 8)\n");
        abort();
    }
    const int hd = p->kv.head_dim, group = p->n_heads / p->kv.n_kv_heads;
    if (!sk_attn_decode_mq_supported(hd, group) || p->n_heads % p->kv.n_kv_heads ||
        p->kv.page_size < 16 || (p->kv.page_size & (p->kv.page_size - 1)) || p->n_splits < 1 ||
        p->n_splits > SK_ATTN_DECODE_MAX_SPLITS ||
        (p->n_splits > 1 && (!p->part_out || !p->part_lse))) {
        fprintf(stderr, "saker: decode attention (mq): unsupported parameters (head_dim %d, group "
                        "%d, page_size %d, splits %d)\n", hd, group, p->kv.page_size, p->n_splits);
        abort();
    }
    if (p->batch == 0) return;
    sk_admq_args a;
    a.p = *p;
    a.group = group;
    const int qw = sk_attn_decode_mq_warps(group);
    a.n_qblk = (group + 16 * qw - 1) / (16 * qw);
    a.lg_page = 0;
    while ((1 << a.lg_page) < p->kv.page_size) a.lg_page++;
    a.sl2 = p->sm_scale * 1.4426950408889634f;
    if (hd == 64)
        qw == 2 ? sk_admq_launch<64, 2>(a, s) : sk_admq_launch<64, 4>(a, s);
    else
        qw == 2 ? sk_admq_launch<128, 2>(a, s) : sk_admq_launch<128, 4>(a, s);
    if (p->n_splits > 1) {
        sk_ad_comb_args c;
        c.part_out = p->part_out;
        c.part_lse = p->part_lse;
        c.out = p->out;
        c.rows = p->batch * p->n_heads;
        c.n_splits = p->n_splits;
        c.head_dim = hd;
        c.out_f32 = p->out_f32;
        sk_ad_combine_kernel<<<(unsigned)((c.rows + 3) / 4), 128, 0, s>>>(c);
    }
}

#endif /* __CUDACC__ */
#endif
