/* sk_w4_tm_kernel: the INT4 decode GEMV at 3..16 rows of x (session 16; up to 32 in the
 * workbench). Included by w4_tm.cu (the backend's entry, its own translation unit) and by the
 * workbench dev/cuda/gemv_w4.cu.
 * Needs w4.cuh (the layout, the loads and the ZC3 arithmetic it shares with sk_w4_tq_kernel).
 *
 * Why: below 3 rows the decode GEMVs (w4.cuh: tq, ts) read their weights at 66-92% of the copy
 * rate, but 5..16 rows (a decode step of 5..16 sequences) went through the mma 128x16 tile
 * kernel of w4_mma.cuh at 28-40% of it (70B qkv at 8 rows 38 us, T = 1 15 us; gate/up 138-147
 * against 64): that kernel stages weights through shared memory with few warps and is bound by
 * latency (awq-speed.md, session 3). The bytes are the same as at one row, so a GEMV that keeps
 * T = 1's structure should take about T = 1's time.
 *
 * What: sk_w4_tq_kernel's RS1 form (NW warps a block splitting the K steps of the block's rows,
 * a per-warp ring of D steps in dynamic shared memory filled by per-lane cp.async, scale words
 * in registers; w4.cuh's ZC3 arithmetic) with three changes for many rows:
 *   1. x as one fp16 part: ZC3 splits fp32 x into fp16 hi + lo, two B columns a row and
 *      group; with TP rows that doubles the MMAs and the x bytes for a precision no other path
 *      at these rows has (the mma tile kernel rounds x to bf16). Here the B column of (row tau,
 *      group gi) is fp16 x / 16 (low nibbles) or x / 256 (high nibbles), rounded once: a
 *      relative error of 2^-11 an element, 8 times finer than bf16. B has TP GP columns (NB =
 *      TP GP / 8 MMAs a k16 and tile), and each C column is one (tau, group).
 *   2. a prepass (sk_w4tm_prep_kernel, a block per 2,048 elements and row) writes that fp16 x
 *      once, times the norm's gamma, with partial sums of squares for the norm's 1 / rms; the
 *      GEMV copies each step's TP x 256 bytes of it straight into the ring as its B buffer (no
 *      per-warp conversion, half the bytes of fp32).
 *   3. the row count is a template bound TP (8 or 16; 32 only in the workbench: at 24-32 rows
 *      it ran even with the tile kernels, awq-speed.md), the real count Tr a run-time one: rows
 *      tau >= Tr read zeros and store nothing, so 3..16 rows take two instances, not fourteen.
 * and SwiGLU (gate rows n, up rows N_out + n: two tiles a 16-row slot, out = silu(gate) * up),
 * which tq lacks. Outputs: TP x 16 MT a block, ceil(that / (32 NW)) a thread.
 *
 * Grid: ceil(N_out / (16 MT)) blocks of 32 NW threads; dynamic shared memory sk_w4tm_shape::SMEM.
 * Row offsets are 32-bit chunk offsets (the launcher checks (SwiGLU: 2) N_out x K / 32 fits).
 * Rows past N_out read the last row and store nothing. K % 32 == 0 (a partial last step reads
 * its last chunk again against zero x, as tq). */
#ifndef SK_CUDA_W4_TM_CUH
#define SK_CUDA_W4_TM_CUH

#include "backend/cuda/w4.cuh"

/* Per (TP, GP) with x as one part: n8 MMAs a k16 (columns (tau, group), 8 at a time), words of
 * one warp's x buffer ([tau][chunk][SK_W4TC_XW]), and chunks per group = 1 << GSH. */
template <int TP, int GP>
struct sk_w4tm_dims {
    static_assert(TP >= 1 && TP <= 32 && (GP == 1 || GP == 2 || GP == 4) && TP * GP <= 32,
                  "at most 4 n8 blocks (32 B columns)");
    static constexpr int NB = (TP * GP + 7) / 8;
    static constexpr int XB = TP * 4 * SK_W4TC_XW;
    static constexpr int GSH = GP == 4 ? 0 : (GP == 2 ? 1 : 2);
};

/* This lane's B source in the x buffer for each n8 block b: column n = g + 8 b is (tau = n / GP,
 * group gi = n % GP); the lane's chunk t feeds it only when t lies in group gi (else zeros,
 * -1); a word offset into the buffer. */
template <int TP, int GP>
static __device__ __forceinline__ void sk_w4tm_bsrc(int (&bsrc)[sk_w4tm_dims<TP, GP>::NB], int g,
                                                    int t) {
#pragma unroll
    for (int b = 0; b < sk_w4tm_dims<TP, GP>::NB; b++) {
        const int n = g + 8 * b, tau = n / GP, gi = n % GP;
        bsrc[b] = tau < TP && gi == (t * GP) / 4 ? (tau * 4 + t) * SK_W4TC_XW : -1;
    }
}

/* One step on the tensor cores (after the x buffer is written; the __syncwarp here publishes
 * it): lane (g, t)'s weights wv[m][r] (16 bytes of row 16 m + g + 8 r at chunk t of the step)
 * and scale words sv[m][r], times the step's x, added to acc[m][b][{row g col 2t, row g col
 * 2t + 1, row g + 8 col 2t, row g + 8 col 2t + 1}] on the 2^-28 scale of ZC3 (sk_w4tc_mma:
 * A = the nibbles as fp16 subnormals, the zero point after the MMAs from the step's sums of x
 * per column). */
/* The step's sum of x per column (2^-28 scale, ZC3's zero-point term) as sk_w4tm_mma computes
 * it: lane (g, t) gets sc = column 8 b + g's sum for each n8 block b (rows g and g + 8 of the
 * MMAs of B's words as A against B = 2^-24). */
template <int TP, int GP>
static __device__ __forceinline__ float sk_w4tm_xsum(const uint32_t (&bfb)[16]) {
    float sx[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
    for (int q = 0; q < 4; q++)
        sk_w4_mma_h(sx, bfb[4 * q], bfb[4 * q + 1], bfb[4 * q + 2], bfb[4 * q + 3], 0x00010001u,
                    0x00010001u);
    return fmaf(16.0f, sx[2], sx[0]);
}

/* PS: the step's column sums given in sgp[8 NB] (column n at sgp[n]; sk_w4_tx_kernel computes
 * them once a block and step) instead of computed here, and x already visible to the warp (no
 * __syncwarp). CH: MMA chains a tile and step: 2 (sums of the even and odd k16 slices apart,
 * added after) or 1 (session 18: one chain of 8, 4 NB FADDs a tile and step fewer; the chains
 * of a warp's NT NB tiles are independent already). */
template <int TP, int NT, int GP, bool PS = false, int CH = 2>
static __device__ __forceinline__ void
sk_w4tm_mma(const uint4 (&wv)[NT][2], const uint32_t (&sv)[NT][2], const uint32_t *xw,
            const int (&bsrc)[sk_w4tm_dims<TP, GP>::NB], const uint32_t *xzero, int lane, int t,
            float (&acc)[NT][sk_w4tm_dims<TP, GP>::NB][4], const float *sgp = nullptr) {
    constexpr int NB = sk_w4tm_dims<TP, GP>::NB;
    static_assert(CH == 1 || CH == 2, "chains");
    if (!PS) __syncwarp();
#if SK_W4_PROBE == 1
    SK_W4_PROBE_FOLD(wv, sv, acc[0][0][0]);
    (void)xw, (void)bsrc, (void)xzero, (void)lane, (void)t;
#else
    uint32_t bf[NB][16];
#pragma unroll
    for (int b = 0; b < NB; b++) {
        const uint32_t *src = bsrc[b] >= 0 ? xw + bsrc[b] : xzero;
#pragma unroll
        for (int q = 0; q < 4; q++) {
            const uint4 u = *reinterpret_cast<const uint4 *>(src + 4 * q);
            bf[b][4 * q] = u.x, bf[b][4 * q + 1] = u.y;
            bf[b][4 * q + 2] = u.z, bf[b][4 * q + 3] = u.w;
        }
    }
    /* The step's sum of x of column n (2^-28 scale), as sk_w4tc_mma's ZC3 sums: lane (g, t)'s
     * B words as the A operand against B = 2^-24, so that C row g holds column g's x / 16 sum
     * and row g + 8 its x / 256 sum; this lane's columns 2 t and 2 t + 1 are rows 2 t and 2 t + 1,
     * i.e. at lanes 8 t and 8 t + 4. */
    float sg[NB][2];
#pragma unroll
    for (int b = 0; b < NB; b++) {
        if (PS) {
            const float2 p = *reinterpret_cast<const float2 *>(sgp + 8 * b + 2 * t);
            sg[b][0] = p.x, sg[b][1] = p.y;
        } else {
            const float sc = sk_w4tm_xsum<TP, GP>(bf[b]);
            sg[b][0] = __shfl_sync(0xffffffffu, sc, 8 * t);
            sg[b][1] = __shfl_sync(0xffffffffu, sc, 8 * t + 4);
        }
    }
    const uint32_t mlo = 0x000f000fu, mhi = 0x00f000f0u;
#pragma unroll
    for (int m = 0; m < NT; m++) {
        float cc[NB][4], ce[NB][4];
#pragma unroll
        for (int b = 0; b < NB; b++)
#pragma unroll
            for (int q = 0; q < 4; q++) cc[b][q] = ce[b][q] = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const uint32_t w0 = sk_w4_word(wv[m][0], j >> 1) >> (8 * (j & 1));
            const uint32_t w1 = sk_w4_word(wv[m][1], j >> 1) >> (8 * (j & 1));
            const uint32_t a0 = w0 & mlo, a1 = w1 & mlo, a2 = w0 & mhi, a3 = w1 & mhi;
#pragma unroll
            for (int b = 0; b < NB; b++)
                sk_w4_mma_h(CH == 2 && (j & 1) ? ce[b] : cc[b], a0, a1, a2, a3, bf[b][2 * j], bf[b][2 * j + 1]);
        }
        const uint32_t s0 = sv[m][0], s1 = sv[m][1];
#pragma unroll
        for (int b = 0; b < NB; b++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                uint32_t e0 = s0, e1 = s1;
                if (GP > 1) { /* the scale of group gi sits with chunk lane gi * 4 / GP */
                    const int gi = (8 * b + 2 * t + c) % GP, src = (lane & ~3) | (gi * 4 / GP);
                    e0 = __shfl_sync(0xffffffffu, s0, src);
                    e1 = __shfl_sync(0xffffffffu, s1, src);
                }
                const float v0 = CH == 2 ? cc[b][c] + ce[b][c] : cc[b][c];
                const float v1 = CH == 2 ? cc[b][2 + c] + ce[b][2 + c] : cc[b][2 + c];
                const float2 dz0 = sk_w4_dz(e0), dz1 = sk_w4_dz(e1); /* d (v - z S) */
                acc[m][b][c] = fmaf(dz0.x, fmaf(-dz0.y, sg[b][c], v0), acc[m][b][c]);
                acc[m][b][2 + c] = fmaf(dz1.x, fmaf(-dz1.y, sg[b][c], v1), acc[m][b][2 + c]);
            }
    }
#endif
}


/* ---- the prepass: x to fp16 once per product ----------------------------------------------
 * x16 [S][TP][128] fp16 (step-major: one step's TP rows are one run of TP x 256 bytes), element
 * (tau, k) = x[tau][k] * gamma[k] scaled as ZC3's B: / 16 at k % 4 < 2 (the low nibbles' A),
 * / 256 at k % 4 >= 2 (the high nibbles', 16 q); with gamma also each block's sum of squares of
 * its part of x[tau] into ssq[tau][kb] (fixed order), which the GEMV adds up in order for 1 / rms.
 * Rows tau >= Tr and a partial last step's tail are not written: sk_w4_tm_kernel zero-fills them.
 * Grid: (nkb = ceil(K / SK_W4TM_PREP_K), Tr) blocks of 256 threads, two float4 a thread (a first
 * version, one block a row, walked K = 28,672 in 28 dependent rounds). */
#define SK_W4TM_PREP_THREADS 256
#define SK_W4TM_PREP_K (8 * SK_W4TM_PREP_THREADS)
#define SK_W4TM_NKB_MAX 32 /* K <= 65,536 */
template <int TP>
__global__ void __launch_bounds__(SK_W4TM_PREP_THREADS)
    sk_w4tm_prep_kernel(const float *__restrict__ x, int K, const float *__restrict__ gamma,
                        __half *__restrict__ x16, float *__restrict__ ssq) {
    __shared__ float s_w[SK_W4TM_PREP_THREADS / 32];
    const int kb = blockIdx.x, tau = blockIdx.y;
    sk_pdl_trigger();
    sk_pdl_wait();
    float4 v[2], gm[2];
    int k[2];
#pragma unroll
    for (int j = 0; j < 2; j++) {
        k[j] = kb * SK_W4TM_PREP_K + 4 * (threadIdx.x + SK_W4TM_PREP_THREADS * j);
        v[j] = k[j] < K ? *reinterpret_cast<const float4 *>(x + (size_t)tau * K + k[j])
                        : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        gm[j] = gamma && k[j] < K ? __ldg(reinterpret_cast<const float4 *>(gamma + k[j]))
                                  : make_float4(1.0f, 1.0f, 1.0f, 1.0f);
    }
    float ss = 0.0f;
#pragma unroll
    for (int j = 0; j < 2; j++) {
        ss = fmaf(v[j].x, v[j].x, fmaf(v[j].y, v[j].y, fmaf(v[j].z, v[j].z, fmaf(v[j].w, v[j].w, ss))));
        if (k[j] >= K) continue;
        const __half2 h0 = __floats2half2_rn(v[j].x * gm[j].x * 0.0625f, v[j].y * gm[j].y * 0.0625f);
        const __half2 h1 = __floats2half2_rn(v[j].z * gm[j].z * 0.00390625f, v[j].w * gm[j].w * 0.00390625f);
        *reinterpret_cast<uint2 *>(x16 + ((size_t)(k[j] >> 7) * TP + tau) * 128 + (k[j] & 127)) =
            make_uint2(*reinterpret_cast<const uint32_t *>(&h0), *reinterpret_cast<const uint32_t *>(&h1));
    }
    if (!gamma) return;
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) s_w[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x == 0) {
        float a = 0.0f;
        for (int w = 0; w < SK_W4TM_PREP_THREADS / 32; w++) a += s_w[w];
        ssq[tau * gridDim.x + kb] = a;
    }
}

/* ---- the GEMV --------------------------------------------------------------------------------
 * A warp's ring slot: the step's weights [2 NT][32] uint4 (lane-private: lane l's two 16-byte
 * chunks of rows g, g + 8 of each tile, as sk_w4_tq_kernel's RS1), then the step's x as the B
 * buffer itself, [TP][4 chunks][SK_W4TC_XW] words (16 used: the padding keeps the fragment
 * reads free of bank conflicts), filled by 16-byte cp.async from x16 (L1-cached: the blocks of
 * an SM walk the same steps). After the loop the reduction red[NW][NT][8 NB][16] floats
 * overlays the rings. */
/* 4 bytes into shared memory (cp.async, L1-cached). */
static __device__ __forceinline__ void sk_w4tm_cp4(void *dst, const void *src) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4;" ::"r"(d), "l"(src) : "memory");
}

template <int TP, int MT, int D, int GP, int MODE, int NW>
struct sk_w4tm_shape {
    static constexpr int NT = (MODE == SK_GEMV_SWIGLU ? 2 : 1) * MT;
    static constexpr int WSLOT = 2 * NT * 32;                     /* uint4 */
    static constexpr int XSLOT = sk_w4tm_dims<TP, GP>::XB / 4;    /* uint4 */
    static constexpr size_t RING = (size_t)NW * D * (WSLOT + XSLOT) * 16;
    static constexpr size_t RED = (size_t)NW * NT * 8 * sk_w4tm_dims<TP, GP>::NB * 16 * 4;
    static constexpr size_t SMEM = RING > RED ? RING : RED;
};

template <int TP, int MT, int D, int GP, int MODE, int NW, int MINB>
__global__ void __launch_bounds__(32 * NW, MINB)
    sk_w4_tm_kernel(const __half *__restrict__ x16, const float *__restrict__ ssq, float eps,
                    const uint32_t *__restrict__ q4, const __half2 *__restrict__ q4s,
                    const float *__restrict__ bias, int N_out, int K, int Tr,
                    float *__restrict__ out) {
    using SH = sk_w4tm_shape<TP, MT, D, GP, MODE, NW>;
    constexpr int NT = SH::NT, KS = NW, WSLOT = SH::WSLOT, XSLOT = SH::XSLOT;
    constexpr int NB = sk_w4tm_dims<TP, GP>::NB, GSH = sk_w4tm_dims<TP, GP>::GSH, NI = 8 * NB;
    constexpr int NOUT = 16 * MT * TP, OPT = (NOUT + 32 * NW - 1) / (32 * NW);
    constexpr int XU = TP * 16 / 32; /* x's 16-byte units a lane and step */
    static_assert(D >= 1 && NW >= 1 && NW <= SK_W4TC_MAXW && TP % 2 == 0, "ring, warps, rows");
    /* (128-byte base: see sk_w4_tq_kernel, w4.cuh) */
    extern __shared__ __align__(128) uint4 sk_w4tm_dyn[];
    __shared__ __align__(16) uint32_t xzero[16];
    __shared__ float s_part[TP * SK_W4TM_NKB_MAX], s_rstd[TP];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int C = K >> 5, S = (C + 3) >> 2, KG = C >> GSH;
    const int n0 = blockIdx.x * 16 * MT;
    sk_pdl_trigger();
    if (threadIdx.x < 16) xzero[threadIdx.x] = 0u;

    int wo[NT][2], so[NT][2];
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int n = n0 + 16 * (m % MT) + g + 8 * r;
            if (n >= N_out) n = N_out - 1;
            if (m >= MT) n += N_out; /* SwiGLU's up rows */
            wo[m][r] = SK_W4_WO(n, C);
            so[m][r] = n * KG;
        }
    const uint4 *wq = reinterpret_cast<const uint4 *>(q4);
    const uint32_t *sq = reinterpret_cast<const uint32_t *>(q4s);
    uint4 *const ring = sk_w4tm_dyn + (size_t)warp * D * (WSLOT + XSLOT);
    uint32_t sb[D][NT][2];
#define SK_W4TM_LOAD(d_, s_)                                                                       \
    do {                                                                                           \
        const int c_ = min(4 * (s_) + t, C - 1);                                                   \
        uint4 *w_ = ring + (d_) * (WSLOT + XSLOT) + lane;                                          \
        _Pragma("unroll") for (int m_ = 0; m_ < NT; m_++)                                          \
            _Pragma("unroll") for (int r_ = 0; r_ < 2; r_++) {                                     \
            sk_w4_cp_stream(w_ + (m_ * 2 + r_) * 32, wq + (wo[m_][r_] + SK_W4_WC(c_)));                      \
            sb[d_][m_][r_] = __ldg(sq + (so[m_][r_] + (c_ >> GSH)));                               \
        }                                                                                          \
    } while (0)
    /* x16's step s_ (rows < Tr, k < K; zeros otherwise) into slot d_'s B buffer: unit u of the
     * step's TP x 16 is row u / 16, chunk (u / 4) % 4, 8 elements at 8 (u % 4) */
#define SK_W4TM_LOADX(d_, s_)                                                                      \
    do {                                                                                           \
        uint32_t *xb_ = reinterpret_cast<uint32_t *>(ring + (d_) * (WSLOT + XSLOT) + WSLOT);       \
        _Pragma("unroll") for (int i_ = 0; i_ < XU; i_++) {                                        \
            const int u_ = lane + 32 * i_, tau_ = u_ >> 4, ch_ = (u_ >> 2) & 3, q_ = u_ & 3;       \
            const bool v_ = tau_ < Tr && 128 * (s_) + 32 * ch_ < K;                                \
            sk_w4_cp_x(xb_ + (tau_ * 4 + ch_) * SK_W4TC_XW + 4 * q_,                               \
                       x16 + (v_ ? ((size_t)(s_) * TP + tau_) * 128 + 32 * ch_ + 8 * q_ : 0), v_); \
        }                                                                                          \
    } while (0)
    /* Weights never depend on the kernel before (PDL): the ring fills before the wait. */
#pragma unroll
    for (int d = 0; d < D; d++) {
        if (warp + KS * d < S) SK_W4TM_LOAD(d, warp + KS * d);
        sk_w4_cp_commit(); /* one group a slot, empty or not */
    }
    sk_pdl_wait();
    /* with the norm: the prepass's partial sums of squares (Tr x nkb) into s_part, by warp 0's
     * lanes, in the first x group (complete before the epilogue reads them) */
    const int nkb = (K + SK_W4TM_PREP_K - 1) / SK_W4TM_PREP_K;
    if (ssq && warp == 0)
        for (int i = lane; i < Tr * nkb; i += 32) sk_w4tm_cp4(s_part + i, ssq + i);
    /* the first D slots' x, a group each: step j < D then needs groups j and D + j, later steps
     * the loop's group j - D; in every case all but the newest D - 1 (tq's RS1 argument) */
#pragma unroll
    for (int d = 0; d < D; d++) {
        if (warp + KS * d < S) SK_W4TM_LOADX(d, warp + KS * d);
        sk_w4_cp_commit();
    }
    /* bias and residual of this thread's outputs now, in flight during the loop */
    float o_pre[OPT];
#pragma unroll
    for (int i = 0; i < OPT; i++) {
        const int o = threadIdx.x + 32 * NW * i, tau = o / (16 * MT), n = n0 + o % (16 * MT);
        o_pre[i] = 0.0f;
        if (MODE != SK_GEMV_SWIGLU && o < NOUT && tau < Tr && n < N_out) {
            if (bias) o_pre[i] = __ldg(bias + n);
            if (MODE == SK_GEMV_ADD) o_pre[i] += out[(size_t)tau * N_out + n];
        }
    }
    __syncthreads(); /* xzero */

    int bsrc[NB];
    sk_w4tm_bsrc<TP, GP>(bsrc, g, t);
    float acc[NT][NB][4];
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++) acc[m][b][0] = acc[m][b][1] = acc[m][b][2] = acc[m][b][3] = 0.0f;

    const int ns = S > warp ? (S - 1 - warp) / KS + 1 : 0; /* steps of this warp */
    for (int i = 0; i < ns; i += D) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            if (i + d >= ns) break;
            const int st = warp + KS * (i + d);
            sk_w4_cp_wait<D - 1>(); /* this slot's groups; sk_w4tm_mma's __syncwarp then makes
                                       every lane's x copies visible to the others */
            uint4 wr[NT][2];
#pragma unroll
            for (int m = 0; m < NT; m++)
#pragma unroll
                for (int r = 0; r < 2; r++) wr[m][r] = ring[d * (WSLOT + XSLOT) + (m * 2 + r) * 32 + lane];
            const uint32_t *xw = reinterpret_cast<const uint32_t *>(ring + d * (WSLOT + XSLOT) + WSLOT);
            sk_w4tm_mma<TP, NT, GP>(wr, sb[d], xw, bsrc, xzero, lane, t, acc);
            __syncwarp(); /* every lane's B reads of this slot are done before it refills */
            if (st + KS * D < S) {
                SK_W4TM_LOAD(d, st + KS * D);
                SK_W4TM_LOADX(d, st + KS * D);
            }
            sk_w4_cp_commit();
        }
    }
#undef SK_W4TM_LOAD
#undef SK_W4TM_LOADX
    sk_w4_cp_wait<0>(); /* (only empty groups are left) before red overlays the rings */
    if (ssq && warp == 0) { /* 1 / rms of row tau from the partial sums, in order */
        __syncwarp();
        if (lane < Tr) {
            float a = 0.0f;
            for (int kb = 0; kb < nkb; kb++) a += s_part[lane * nkb + kb];
            s_rstd[lane] = 1.0f / sqrtf(a / (float)K + eps); /* the CPU's formula */
        }
    }
    /* the warps' partial sums through red (the first barrier waits for every warp to leave the
     * loop), then the epilogue */
    float(*red)[NT][NI][16] = reinterpret_cast<float(*)[NT][NI][16]>(sk_w4tm_dyn);
    __syncthreads();
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++)
#pragma unroll
            for (int c = 0; c < 2; c++) {
                red[warp][m][8 * b + 2 * t + c][g] = acc[m][b][c] * 268435456.0f; /* 2^28 (ZC3) */
                red[warp][m][8 * b + 2 * t + c][g + 8] = acc[m][b][2 + c] * 268435456.0f;
            }
    __syncthreads();
#pragma unroll
    for (int i = 0; i < OPT; i++) {
        const int o = threadIdx.x + 32 * NW * i;
        const int tau = o / (16 * MT), r = o % (16 * MT), n = n0 + r;
        if (o >= NOUT || tau >= Tr || n >= N_out) continue;
        const int m = r >> 4, row = r & 15;
        float v = 0.0f, u = 0.0f;
#pragma unroll
        for (int w = 0; w < KS; w++)
#pragma unroll
            for (int gi = 0; gi < GP; gi++) {
                v += red[w][m][tau * GP + gi][row];
                if (MODE == SK_GEMV_SWIGLU) u += red[w][MT + m][tau * GP + gi][row];
            }
        if (ssq) v *= s_rstd[tau], u *= s_rstd[tau]; /* the norm's 1 / rms */
        float *po = out + (size_t)tau * N_out + n;
        if (MODE == SK_GEMV_SWIGLU)
            *po = v / (1.0f + __expf(-v)) * u;
        else
            *po = v + o_pre[i]; /* sk_w4tc_finish's order: sum, bias, residual */
    }
}

/* One launch of the prepass and one of sk_w4_tm_kernel<TP, MT, D, GP, MODE, NW, MINB>, with GP
 * from G. x16 holds S x TP x 128 halves (S = ceil(K / 128)), ssq TP x SK_W4TM_NKB_MAX floats
 * (the prepass's partial sums of squares, used only with gamma). Returns false, launching nothing, where the instance does not exist (TP GP > 32: G = 32
 * at TP = 16) or the shape does not fit (Tr, K % 32, chunk offsets, alignment). The dynamic
 * shared-memory limit is raised once per instance (the first launch of a shape runs eagerly,
 * outside a graph capture: model/forward.c). */
template <int TP, int MT, int D, int GP, int MODE, int NW, int MINB>
static void sk_w4_tm_launch_k(const __half *x16, const float *ssq, float eps, const uint32_t *q4,
                              const __half2 *q4s, const float *bias, int N_out, int K, int Tr,
                              float *out, cudaStream_t s) {
    auto k = sk_w4_tm_kernel<TP, MT, D, GP, MODE, NW, MINB>;
    constexpr size_t smem = sk_w4tm_shape<TP, MT, D, GP, MODE, NW>::SMEM;
    static_assert(smem <= (size_t)200 << 10, "ring too large");
    static bool set = false;
    if (!set && smem > ((size_t)48 << 10)) {
        const cudaError_t e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
        if (e != cudaSuccess) {
            fprintf(stderr, "saker: w4 tm: %zu bytes of shared memory: %s\n", smem, cudaGetErrorString(e));
            abort();
        }
    }
    set = true;
    const unsigned blocks = (unsigned)((N_out + 16 * MT - 1) / (16 * MT));
    sk_launch_pdl_smem(k, dim3(blocks), 32u * NW, smem, s, x16, ssq, eps, q4, q4s, bias, N_out, K, Tr,
                       out);
}

static inline bool sk_w4_tm_fits(int TP, int Tr, int MODE, int N_out, int K, int G, const void *x,
                                 const void *gamma) {
    const long rows = (long)N_out * (MODE == SK_GEMV_SWIGLU ? 2 : 1);
    return Tr >= 1 && Tr <= TP && K % 32 == 0 && (G == 32 || G == 64 || G == 128) && K % G == 0 &&
           TP * (128 / G) <= 32 && rows * (K >> 5) <= INT32_MAX && K <= SK_W4TM_NKB_MAX * SK_W4TM_PREP_K &&
           ((uintptr_t)x & 15) == 0 &&
           ((uintptr_t)gamma & 15) == 0;
}

template <int TP, int MT, int D, int MODE, int NW, int MINB>
static bool sk_w4_tm_launch(const float *x, int Tr, const uint32_t *q4, const __half2 *q4s, int G,
                            const float *bias, int N_out, int K, float *out, const float *gamma,
                            float eps, __half *x16, float *ssq, cudaStream_t s, int parts = 3) {
    if (!sk_w4_tm_fits(TP, Tr, MODE, N_out, K, G, x, gamma)) return false;
    const float *gm = MODE != SK_GEMV_ADD ? gamma : nullptr;
    const int nkb = (K + SK_W4TM_PREP_K - 1) / SK_W4TM_PREP_K;
    if (parts & 1) /* (parts: the workbench times the two launches apart; 3 = both) */
        sk_launch_pdl(sk_w4tm_prep_kernel<TP>, dim3((unsigned)nkb, (unsigned)Tr),
                      (unsigned)SK_W4TM_PREP_THREADS, s, x, K, gm, x16, ssq);
    if (!(parts & 2)) return true;
    const float *sq = gm ? ssq : nullptr;
    if (G == 128)
        sk_w4_tm_launch_k<TP, MT, D, 1, MODE, NW, MINB>(x16, sq, eps, q4, q4s, bias, N_out, K, Tr, out, s);
    else if constexpr (TP * 2 <= 32) {
        if (G == 64)
            sk_w4_tm_launch_k<TP, MT, D, 2, MODE, NW, MINB>(x16, sq, eps, q4, q4s, bias, N_out, K, Tr, out, s);
        else if constexpr (TP * 4 <= 32)
            sk_w4_tm_launch_k<TP, MT, D, 4, MODE, NW, MINB>(x16, sq, eps, q4, q4s, bias, N_out, K, Tr, out, s);
    }
    return true;
}

/* The configurations (index 1..SK_W4TM_NCFG; the workbench times them all, the backend takes
 * sk_w4_tm_pick's), per mode (MT: 16-row tiles a warp, gate and up each for SwiGLU; NW warps
 * a block splitting the K steps; D ring slots a warp):
 *   STORE / ADD  1: MT2 NW4 D3     2: MT2 NW8 D2     3: MT2 NW4 D2     4: MT4 NW4 D2
 *   SWIGLU       1: MT1 NW4 D3     2: MT1 NW8 D2     3: MT1 NW4 D2     4: MT2 NW4 D2 */
#define SK_W4TM_NCFG 4
template <int TP, int MODE>
static bool sk_w4_tm_launch_cfg(int cfg, const float *x, int Tr, const uint32_t *q4,
                                const __half2 *q4s, int G, const float *bias, int N_out, int K,
                                float *out, const float *gamma, float eps, __half *x16,
                                float *ssq, cudaStream_t s, int parts = 3) {
#define SK_W4TM_C(MT_, D_, NW_)                                                                    \
    return sk_w4_tm_launch<TP, MT_, D_, MODE, NW_, 1>(x, Tr, q4, q4s, G, bias, N_out, K, out,     \
                                                      gamma, eps, x16, ssq, s, parts)
    if constexpr (MODE == SK_GEMV_SWIGLU) {
        switch (cfg) {
        case 1: SK_W4TM_C(1, 3, 4);
        case 2: SK_W4TM_C(1, 2, 8);
        case 3: SK_W4TM_C(1, 2, 4);
        case 4: SK_W4TM_C(2, 2, 4);
        default: return false;
        }
    } else {
        switch (cfg) {
        case 1: SK_W4TM_C(2, 3, 4);
        case 2: SK_W4TM_C(2, 2, 8);
        case 3: SK_W4TM_C(2, 2, 4);
        case 4: SK_W4TM_C(4, 2, 4);
        default: return false;
        }
    }
#undef SK_W4TM_C
}
static inline const char *sk_w4_tm_name(int mode, int cfg) {
    static const char *sa[] = {"-", "tm MT2 NW4 D3", "tm MT2 NW8 D2", "tm MT2 NW4 D2", "tm MT4 NW4 D2"};
    static const char *sw[] = {"-", "tm MT1 NW4 D3", "tm MT1 NW8 D2", "tm MT1 NW4 D2", "tm MT2 NW4 D2"};
    return cfg < 1 || cfg > SK_W4TM_NCFG ? "-" : mode == SK_GEMV_SWIGLU ? sw[cfg] : sa[cfg];
}

/* x16 halves the launches need for K (and SK_W4TM_NKB_MAX x 16 floats of partial sums: the
 * caller's buffers). */
static inline size_t sk_w4_tm_x16_halves(int TP, int K) { return (size_t)((K + 127) / 128) * TP * 128; }

#endif
