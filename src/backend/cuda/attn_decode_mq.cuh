/* Decode attention for large groups (MQA, Falcon's 29 query heads a KV head): kernel 4, a
 * FlashAttention-2 style kernel with the query heads of a group as the M side.
 *
 * Status: written in session 5 without a GPU; first run in session 6 (2026-11-29), where it
 * passed the workbench's checks and gpu_backend_ops and beat kernel 2 at every large-group shape,
 * so the backend takes it for groups of 9 and more (SAKER_ATTN_MQ=0: kernel 2). Session 6 also
 * gave it ST pipeline stages (2..4) with one block barrier per tile, page ids staged a tile ahead
 * in shared memory (the first form loaded each copy's page id from global memory right before
 * its cp.async), the output rescale skipped when no row max rose, and an occupancy-based split
 * count (sk_attn_decode_mq_plan).
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
 * the S registers, V fragments by ldmatrix.trans). ST tile stages: the copies of the next ST - 1
 * tiles run under this tile's arithmetic.
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

/* Pipeline stages of 64-token tiles in shared memory (K and V: 16 KB a stage at head_dim 64,
 * 32 KB at 128) when the caller does not choose: 2 (session 6's sweep: 2 was the fastest at
 * every workbench shape, 3 within 1-4%, 4 up to 40% slower: more stages mean fewer blocks an SM,
 * and the kernel is bound by its warps' latency, not by bytes in flight). */
static inline int sk_attn_decode_mq_default_stages(int head_dim) {
    (void)head_dim;
    return 2;
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
 * addresses); tokens at or past `lim` are zero-filled. pid: the page ids of the tile's four
 * 16-token groups (shared memory, written a tile ahead). All threads. */
template <int HD, int NTH>
static __device__ __forceinline__ void sk_admq_load(const sk_admq_args &a, const int *pid, int kvh,
                                                    int tile, int lim, uint32_t sK, uint32_t sV) {
    constexpr int CPR = HD / 8; /* 16-byte chunks a row */
    const __nv_bfloat16 *kp = (const __nv_bfloat16 *)a.p.kv.k;
    const __nv_bfloat16 *vp = (const __nv_bfloat16 *)a.p.kv.v;
    const int ps_mask = (1 << a.lg_page) - 1;
#pragma unroll
    for (int j = 0; j < SK_ADMQ_BN * CPR / NTH; j++) {
        const int i = (int)threadIdx.x + NTH * j, r = i / CPR, c = i % CPR;
        const int tok = tile * SK_ADMQ_BN + r;
        const bool ok = tok < lim;
        size_t off = 0;
        if (ok) {
            off = (((size_t)pid[r >> 4] * (size_t)a.p.kv.n_kv_heads + (size_t)kvh) << a.lg_page) +
                  (size_t)(tok & ps_mask);
            off = off * HD + 8 * c;
        }
        const uint32_t d = sk_admq_off<HD>(r, c);
        sk_admq_cp16(sK + d, kp + off, ok);
        sk_admq_cp16(sV + d, vp + off, ok);
    }
}

/* Page id of 16-token group q (0..3) of a tile, 0 past lim (never used: those rows are zeros). */
static __device__ __forceinline__ int sk_admq_pid(const sk_admq_args &a, const int32_t *ids,
                                                  int tile, int q, int lim) {
    const int tok = tile * SK_ADMQ_BN + 16 * q;
    return tok < lim ? __ldg(ids + (tok >> a.lg_page)) : 0;
}

/* grid (n_splits, n_kv_heads * n_qblk, batch), 32 QW threads, dynamic shared memory
 * ST stages x (K + V) x 64 x HD x 2 bytes.
 *
 * Pipeline: tile X of the block's range [t0, t1) lives in stage (X - t0) % ST. Before the loop
 * tiles t0 .. t0 + ST - 2 are in flight; iteration `it` waits for tile it (cp.async.wait_group
 * ST - 2: one commit group per tile, empty ones too), passes the block's one barrier (after which
 * every warp is done with tile it - 1, so its stage is free), issues tile it + ST - 1 into that
 * stage and computes tile it. Page ids: thread q < 4 keeps in a register the id of group q of
 * tile it + ST + 1 (loaded an iteration ahead, so its latency hides under a tile's arithmetic)
 * and writes it to shared slot (it - t0) % ST at iteration it + 1... precisely: iteration it
 * writes the ids of tile it + ST (slot (it - t0) % ST, whose tile it was issued ST - 1 iterations
 * earlier) and loads those of tile it + ST + 1; the barrier of iteration it + 1 publishes them
 * before tile it + ST is issued at iteration it + 1. */
template <int HD, int QW, int ST>
__global__ void __launch_bounds__(32 * QW) sk_admq_kernel(const __grid_constant__ sk_admq_args a) {
    constexpr int NTH = 32 * QW, KS = HD / 16, DT = HD / 8, TB = SK_ADMQ_BN * HD * 2;
    static_assert(ST >= 2 && ST <= 4, "2 to 4 stages");
    extern __shared__ __align__(128) uint8_t sk_admq_sm[];
    __shared__ int sid[ST][4];
    const uint32_t sbase = (uint32_t)__cvta_generic_to_shared(sk_admq_sm);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int split = blockIdx.x, kvh = blockIdx.y / a.n_qblk, qb = blockIdx.y % a.n_qblk;
    const int b = blockIdx.z, ns = a.p.n_splits, group = a.group;
    const int len = a.p.kv.kv_len[b];
    const int ntile = (len + SK_ADMQ_BN - 1) / SK_ADMQ_BN;
    const int t0 = (int)((long long)split * ntile / ns), t1 = (int)((long long)(split + 1) * ntile / ns);
    const int32_t *ids = a.p.kv.indices + a.p.kv.indptr[b];

    /* page ids of tiles t0 .. t0 + ST - 1 into their slots, of tile t0 + ST into a register */
    const int tq = (int)threadIdx.x;
    int pid_next = 0;
    if (tq < 4) {
#pragma unroll
        for (int k = 0; k < ST; k++) sid[k][tq] = sk_admq_pid(a, ids, t0 + k, tq, len);
        pid_next = sk_admq_pid(a, ids, t0 + ST, tq, len);
    }

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

    __syncthreads(); /* the first slots of page ids */
#pragma unroll
    for (int k = 0; k < ST - 1; k++) {
        if (t0 + k < t1) {
            const uint32_t sK = sbase + (uint32_t)(k * 2 * TB);
            sk_admq_load<HD, NTH>(a, sid[k], kvh, t0 + k, len, sK, sK + TB);
        }
        asm volatile("cp.async.commit_group;\n" ::: "memory");
    }
    int slot = 0; /* (it - t0) % ST */
    for (int it = t0; it < t1; it++) {
        asm volatile("cp.async.wait_group %0;\n" ::"n"(ST - 2) : "memory");
        __syncthreads();
        {
            const int ls = slot == 0 ? ST - 1 : slot - 1; /* (it + ST - 1 - t0) % ST */
            if (it + ST - 1 < t1) {
                const uint32_t nK = sbase + (uint32_t)(ls * 2 * TB);
                sk_admq_load<HD, NTH>(a, sid[ls], kvh, it + ST - 1, len, nK, nK + TB);
            }
            asm volatile("cp.async.commit_group;\n" ::: "memory");
            if (tq < 4) { /* ids of tile it + ST into this slot, next tile's into the register */
                sid[slot][tq] = pid_next;
                pid_next = sk_admq_pid(a, ids, it + ST + 1, tq, len);
            }
        }
        const uint32_t sK = sbase + (uint32_t)(slot * 2 * TB), sV = sK + TB;
        slot = slot == ST - 1 ? 0 : slot + 1;
        if (j0 >= group) continue; /* warp-uniform: a warp of padding heads only copies */
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
        /* scale, mask the tokens past the sequence (last tile only), online softmax per row */
        const bool full = (it + 1) * SK_ADMQ_BN <= len;
        float mx0 = -INFINITY, mx1 = -INFINITY;
#pragma unroll
        for (int nt = 0; nt < 8; nt++) {
            const int tok = it * SK_ADMQ_BN + 8 * nt + 2 * t;
#pragma unroll
            for (int e = 0; e < 4; e++) {
                const bool in = full || tok + (e & 1) < len;
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
        /* rescale only when some row's max rose (most tiles after the first few: none does) */
        if (__any_sync(SK_AD_FULL, n0 > m0 || n1 > m1)) {
            const float al0 = sk_ad_exp2(m0 - b0), al1 = sk_ad_exp2(m1 - b1);
            l0 *= al0, l1 *= al1;
#pragma unroll
            for (int d = 0; d < DT; d++)
                o[d][0] *= al0, o[d][1] *= al0, o[d][2] *= al1, o[d][3] *= al1;
            m0 = n0, m1 = n1;
        }
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

typedef void (*sk_admq_kfn)(sk_admq_args);

/* The instance for (head_dim, query warps, stages) and its dynamic shared memory; NULL when not
 * instantiated. Sets the shared-memory attribute once per instance. */
static sk_admq_kfn sk_admq_kernel_for(int hd, int qw, int st, size_t *smem) {
    static int init[2][2][3];
    sk_admq_kfn fn = NULL;
#define SK_ADMQ_PICK(H, Q, S)                                                                      \
    if (hd == H && qw == Q && st == S) fn = sk_admq_kernel<H, Q, S>;
    SK_ADMQ_PICK(64, 2, 2) SK_ADMQ_PICK(64, 2, 3) SK_ADMQ_PICK(64, 2, 4)
    SK_ADMQ_PICK(64, 4, 2) SK_ADMQ_PICK(64, 4, 3) SK_ADMQ_PICK(64, 4, 4)
    SK_ADMQ_PICK(128, 2, 2) SK_ADMQ_PICK(128, 2, 3) SK_ADMQ_PICK(128, 2, 4)
    SK_ADMQ_PICK(128, 4, 2) SK_ADMQ_PICK(128, 4, 3) SK_ADMQ_PICK(128, 4, 4)
#undef SK_ADMQ_PICK
    if (!fn) return NULL;
    *smem = (size_t)st * 2 * SK_ADMQ_BN * (size_t)hd * 2;
    int *done = &init[hd == 128][qw == 4][st - 2];
    if (!*done) {
        if (cudaFuncSetAttribute(fn, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)*smem) !=
            cudaSuccess) {
            fprintf(stderr, "saker: decode attention (mq): cannot set up %zu bytes of shared "
                            "memory\n", *smem);
            abort();
        }
        *done = 1;
    }
    return fn;
}

/* Splits for a step of kernel 4 with `stages` stages (0: the default) on n_sm multiprocessors,
 * by the wave model of kernel 2's planner: blocks = batch x KV heads x query blocks x splits over
 * n_sm x (blocks an SM, from the occupancy calculator). A grid of at least one wave is not split
 * (split partials and the combine cost more than a wave's tail); a smaller one takes the fewest
 * splits whose wave efficiency (blocks / slots over its ceiling) is within 10% of the best, each
 * split at least 2 tiles. Host-side only (no device work): callable outside a graph capture. */
static int sk_attn_decode_mq_plan(int batch, int n_kv_heads, int group, int head_dim,
                                  int max_kv_len, int n_sm, int stages) {
    const int qw = sk_attn_decode_mq_warps(group), n_qblk = (group + 16 * qw - 1) / (16 * qw);
    const int st = stages ? stages : sk_attn_decode_mq_default_stages(head_dim);
    size_t smem = 0;
    const sk_admq_kfn fn = sk_admq_kernel_for(head_dim, qw, st, &smem);
    if (!fn || batch <= 0 || n_sm <= 0) return 1;
    int occ = 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, fn, 32 * qw, smem) != cudaSuccess ||
        occ < 1)
        occ = 1;
    const double base = (double)batch * n_kv_heads * n_qblk, slots = (double)n_sm * occ;
    const int tiles = (max_kv_len + SK_ADMQ_BN - 1) / SK_ADMQ_BN;
    int max_ns = tiles / 2;
    if (max_ns > SK_ATTN_DECODE_MAX_SPLITS) max_ns = SK_ATTN_DECODE_MAX_SPLITS;
    if (base >= slots || max_ns <= 1) return 1;
    double best = 0.0;
    for (int s = 1; s <= max_ns; s++) {
        const double w = base * s / slots, e = w / ceil(w);
        if (e > best) best = e;
    }
    for (int s = 1; s <= max_ns; s++) {
        const double w = base * s / slots;
        if (w / ceil(w) >= 0.9 * best) return s;
    }
    return 1;
}

/* out = decode attention of p (one query row per sequence) by kernel 4 with `stages` pipeline
 * stages (2..4; 0: the default for the head dim) and p->n_splits splits (part_out / part_lse
 * sized as for kernel 2 when n_splits > 1); one or two launches. The shape must be
 * sk_attn_decode_mq_supported, page_size a power of two >= 16. */
static void sk_attn_decode_mq_st(const sk_attn_params *p, int stages, cudaStream_t s) {
    if (p->kv.n_kv_heads < 1 || p->n_heads < 1 || p->batch < 0 || p->batch > 65535 ||
        ((uintptr_t)p->kv.k & 15) || ((uintptr_t)p->kv.v & 15) || ((uintptr_t)p->q & 3) ||
        (p->q_stride & 1) || ((uintptr_t)p->out & (p->out_f32 ? 7 : 3)) ||
        ((uintptr_t)p->part_out & 7) || p->nt.q) {
        fprintf(stderr, "saker: decode attention (mq): bad head counts, batch or alignment (k, v "
                        "16 bytes; q 4 and an even stride; out 8 (fp32) or 4; part_out 8), or nt "
                        "set (the new token in fp32 is kernel 2's only)\n");
        abort();
    }
    const int hd = p->kv.head_dim, group = p->n_heads / p->kv.n_kv_heads;
    if (!sk_attn_decode_mq_supported(hd, group) || p->n_heads % p->kv.n_kv_heads ||
        p->kv.page_size < 16 || (p->kv.page_size & (p->kv.page_size - 1)) || p->n_splits < 1 ||
        p->n_splits > SK_ATTN_DECODE_MAX_SPLITS || stages < 0 || stages > 4 || stages == 1 ||
        (p->n_splits > 1 && (!p->part_out || !p->part_lse))) {
        fprintf(stderr, "saker: decode attention (mq): unsupported parameters (head_dim %d, group "
                        "%d, page_size %d, splits %d, stages %d)\n", hd, group, p->kv.page_size,
                p->n_splits, stages);
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
    size_t smem = 0;
    const sk_admq_kfn fn =
        sk_admq_kernel_for(hd, qw, stages ? stages : sk_attn_decode_mq_default_stages(hd), &smem);
    const dim3 grid((unsigned)p->n_splits, (unsigned)(p->kv.n_kv_heads * a.n_qblk),
                    (unsigned)p->batch);
    fn<<<grid, 32 * qw, smem, s>>>(a);
    if (p->n_splits > 1) {
        sk_ad_comb_args c;
        c.part_out = p->part_out;
        c.part_lse = p->part_lse;
        c.out = p->out;
        c.rows = p->batch * p->n_heads;
        c.n_splits = p->n_splits;
        c.head_dim = hd;
        c.out_f32 = p->out_f32;
        c.pdl_early = 0; /* launched without the PDL attribute */
        sk_ad_combine_kernel<<<(unsigned)((c.rows + 3) / 4), 128, 0, s>>>(c);
    }
}
static inline void sk_attn_decode_mq(const sk_attn_params *p, cudaStream_t s) {
    sk_attn_decode_mq_st(p, 0, s);
}

#endif /* __CUDACC__ */
#endif
