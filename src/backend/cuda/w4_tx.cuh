/* sk_w4_tx_kernel: the INT4 decode GEMV at 9..32 rows of x with x resident in shared memory
 * (session 17). Included by w4_tm.cu (the backend's entry) and by the workbench
 * dev/cuda/gemv_w4.cu. Needs w4_tm.cuh (its prepass, fp16 x layout and MMA step).
 *
 * Why: sk_w4_tm_kernel (w4_tm.cuh) gives every block one tile of 16 MT rows and all of K, so
 * every block reads all of x: T x K x 2 bytes of x from L2 against 16 MT x K / 2 bytes of
 * weights from DRAM, i.e. T / (4 MT) times the weight bytes (MT = 2: 2x at 16 rows, 4x at 32).
 * At 12..16 rows its products ran at 36-64% of the copy rate (70B layer 198.9 us at 16 rows
 * against 141.9 at 8, awq-speed.md session 16), and from 17 rows the tile kernels took over at
 * 1.8x the 16-row step. The weights at these rows are still what must stream; x must not.
 * sk_w4_tk_kernel (session 16, not kept) shared one x stage a step between a block's warps with
 * a barrier a step and lost (23-48% of copy): a stalled warp stalled the block each step.
 *
 * What: the K steps are cut into ksplit ranges of spb steps; a block = (RB output rows, one
 * range). The block copies its range's x (spb x TP rows x 128 fp16, the prepass's layout, padded
 * as the MMA step reads it) into shared memory ONCE, with one barrier; then each of its NW warps
 * walks its own rows (RL row loops of 16 MT rows: rows rb0 + rl NW 16 MT + warp 16 MT ..) over
 * the range's steps with its own weights-only cp.async ring (D slots; no barrier), the MMA step
 * of sk_w4_tm_kernel (ZC3 arithmetic, x as one fp16 part). x read from L2 is then RB / (4 T)
 * times smaller than the weights' bytes (RB = 256, T = 16: 1/4). At the end of each row loop
 * the warp stores its partial sums (fp32, 2^28 ZC3 scale undone) into ws [ksplit][TP][(SwiGLU: 2)
 * N_out]; the last block of a row block (a counter in cnt, reset by it) adds the ranges' partials
 * in range order (the result does not depend on which block ends last) and runs the epilogue
 * (1 / rms of the fused norm from the prepass's sums, bias, residual, SwiGLU).
 *
 * Grid (ceil(N_out / RB), ksplit) of 32 NW threads; dynamic shared memory NW D WSLOT x 16 + spb
 * x XSTEP x 16 bytes. As sk_w4_tm_kernel: rows past N_out read the last row and store nothing,
 * rows tau >= Tr read zero x and store nothing, K % 32 == 0. */
#ifndef SK_CUDA_W4_TX_CUH
#define SK_CUDA_W4_TX_CUH

#include <stdlib.h>
#include <string.h>

#include "backend/cuda/w4_tm.cuh"

template <int TP, int MT, int D, int GP, int MODE, int NW, int RL>
struct sk_w4tx_shape {
    static constexpr int NT = (MODE == SK_GEMV_SWIGLU ? 2 : 1) * MT;
    static constexpr int WSLOT = 2 * NT * 32;                  /* uint4 a warp and ring slot */
    static constexpr int XSTEP = sk_w4tm_dims<TP, GP>::XB / 4; /* uint4 of x a step */
    static constexpr size_t RING = (size_t)NW * D * WSLOT * 16;
    static constexpr int RW = NW * MT * 16; /* rows a row loop */
    static constexpr int RB = RW * RL;      /* rows a block */
    static constexpr int SGS = 8 * sk_w4tm_dims<TP, GP>::NB * 4; /* bytes of column sums a step */
};

template <int TP, int MT, int D, int GP, int MODE, int NW, int RL>
__global__ void __launch_bounds__(32 * NW, 1)
    sk_w4_tx_kernel(const __half *__restrict__ x16, const float *__restrict__ ssq, float eps,
                    const uint32_t *__restrict__ q4, const __half2 *__restrict__ q4s,
                    const float *__restrict__ bias, int N_out, int K, int Tr,
                    float *__restrict__ out, int spb, float *__restrict__ ws, int *__restrict__ cnt) {
    using SH = sk_w4tx_shape<TP, MT, D, GP, MODE, NW, RL>;
    constexpr int NT = SH::NT, WSLOT = SH::WSLOT, XSTEP = SH::XSTEP, RW = SH::RW, RB = SH::RB;
    constexpr int NB = sk_w4tm_dims<TP, GP>::NB, GSH = sk_w4tm_dims<TP, GP>::GSH;
    static_assert(D >= 1 && NW >= 1 && RL >= 1 && TP % 2 == 0, "ring, warps, loops, rows");
    /* (128-byte base: see sk_w4_tq_kernel, w4.cuh: the cause of this kernel's engine-only
     * loss, sessions 18-20) */
    extern __shared__ __align__(128) uint4 sk_w4tx_dyn[];
    __shared__ __align__(16) uint32_t xzero[16];
    __shared__ float s_part[TP * SK_W4TM_NKB_MAX], s_rstd[TP];
    __shared__ int s_last;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    const int C = K >> 5, S = (C + 3) >> 2, KG = C >> GSH;
    const int ks = blockIdx.y, ksplit = gridDim.y;
    const int s0 = ks * spb, ns = max(0, min(S, s0 + spb) - s0); /* this block's steps */
    const int nst = RL * ns;                                      /* this warp's (loop, step)s */
    const int rb0 = blockIdx.x * RB;
    const size_t wsn = (size_t)N_out * (MODE == SK_GEMV_SWIGLU ? 2 : 1);
    sk_pdl_trigger();
    if (threadIdx.x < 16) xzero[threadIdx.x] = 0u;
    const int nl = N_out - 1;
    const uint4 *wq = reinterpret_cast<const uint4 *>(q4);
    const uint32_t *sq = reinterpret_cast<const uint32_t *>(q4s);
    uint4 *const wring = sk_w4tx_dyn + (size_t)warp * D * WSLOT + lane;
    uint32_t *const xs = reinterpret_cast<uint32_t *>(sk_w4tx_dyn + (size_t)NW * D * WSLOT);
    uint32_t sb[D][NT][2];
    /* The loads walk this warp's (row loop, step)s in order, D ahead of the MMAs: (lrl, lst) is
     * the next one's, wo / so its rows' chunk and scale-word offsets (set again only when the row
     * loop changes). A first version divided j by ns twice a step (j / ns for the row loop):
     * ~60 of the step's ~295 instructions at 16 rows (SASS, session 18). */
    int lrl = 0, lst = 0, wo[NT][2], so[NT][2];
#define SK_W4TX_ROWS(rl_)                                                                          \
    do {                                                                                           \
        const int nb_ = rb0 + (rl_) * RW + warp * MT * 16;                                         \
        _Pragma("unroll") for (int m_ = 0; m_ < NT; m_++)                                          \
            _Pragma("unroll") for (int r_ = 0; r_ < 2; r_++) {                                     \
            const int n_ = min(nb_ + 16 * (m_ % MT) + g + 8 * r_, nl) + (m_ >= MT ? N_out : 0);    \
            wo[m_][r_] = SK_W4_WO(n_, C), so[m_][r_] = n_ * KG;                                             \
        }                                                                                          \
    } while (0)
    /* the next (row loop, step)'s weights into ring slot d_, then advance */
#define SK_W4TX_LOAD(d_)                                                                           \
    do {                                                                                           \
        const int c_ = min(4 * (s0 + lst) + t, C - 1);                                             \
        _Pragma("unroll") for (int m_ = 0; m_ < NT; m_++)                                          \
            _Pragma("unroll") for (int r_ = 0; r_ < 2; r_++) {                                     \
            sk_w4_cp_stream(wring + (d_) * WSLOT + (m_ * 2 + r_) * 32, wq + (wo[m_][r_] + SK_W4_WC(c_)));    \
            sb[d_][m_][r_] = __ldg(sq + (so[m_][r_] + (c_ >> GSH)));                               \
        }                                                                                          \
        if (++lst == ns) {                                                                         \
            lst = 0;                                                                               \
            if (++lrl < RL) SK_W4TX_ROWS(lrl);                                                     \
        }                                                                                          \
    } while (0)
    SK_W4TX_ROWS(0);
    /* Weights never depend on the kernel before (PDL): the rings fill before the wait. */
#pragma unroll
    for (int d = 0; d < D; d++) {
        if (d < nst) SK_W4TX_LOAD(d);
        sk_w4_cp_commit();
    }
    sk_pdl_wait();
    const int nkb = (K + SK_W4TM_PREP_K - 1) / SK_W4TM_PREP_K;
    if (ssq && warp == 0)
        for (int i = lane; i < Tr * nkb; i += 32) sk_w4tm_cp4(s_part + i, ssq + i);
    /* the range's x, once: unit u = (step, tau, chunk, quarter) of 8 halves */
    for (int u = threadIdx.x; u < ns * TP * 16; u += 32 * NW) {
        const int st = u / (TP * 16), w = u - st * (TP * 16);
        const int tau = w >> 4, ch = (w >> 2) & 3, q = w & 3, s = s0 + st;
        const bool v = tau < Tr && 128 * s + 32 * ch < K;
        sk_w4_cp_x(xs + (size_t)st * XSTEP * 4 + (tau * 4 + ch) * SK_W4TC_XW + 4 * q,
                   x16 + (v ? ((size_t)s * TP + tau) * 128 + 32 * ch + 8 * q : 0), v);
    }
    sk_w4_cp_commit();
    sk_w4_cp_wait<0>(); /* (the D weight slots too: they were issued first) */
    __syncthreads();    /* every thread's x, xzero, s_part */

    int bsrc[NB];
    sk_w4tm_bsrc<TP, GP>(bsrc, g, t);
    /* each step's column sums of x (ZC3's zero-point term) once for the block, not once a warp,
     * row loop and step: sgs [ns][8 NB] after the x slice */
    constexpr int NI = 8 * NB;
    float *const sgs = reinterpret_cast<float *>(xs + (size_t)spb * XSTEP * 4);
    for (int st = warp; st < ns; st += NW) {
        const uint32_t *xw = xs + (size_t)st * XSTEP * 4;
#pragma unroll
        for (int b = 0; b < NB; b++) {
            const uint32_t *src = bsrc[b] >= 0 ? xw + bsrc[b] : xzero;
            uint32_t bfb[16];
#pragma unroll
            for (int q = 0; q < 4; q++) {
                const uint4 u = *reinterpret_cast<const uint4 *>(src + 4 * q);
                bfb[4 * q] = u.x, bfb[4 * q + 1] = u.y, bfb[4 * q + 2] = u.z, bfb[4 * q + 3] = u.w;
            }
            const float sc = sk_w4tm_xsum<TP, GP>(bfb);
            if (t == 0) sgs[st * NI + 8 * b + g] = sc;
        }
    }
    __syncthreads();
    float acc[NT][NB][4];
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++) acc[m][b][0] = acc[m][b][1] = acc[m][b][2] = acc[m][b][3] = 0.0f;

    int rl = 0, st = 0; /* the MMAs' (row loop, step) */
    for (int i = 0; i < nst; i += D) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            const int j = i + d;
            if (j >= nst) break;
            sk_w4_cp_wait<D - 1>(); /* slot d's group (lane-private chunks: no barrier) */
            uint4 wr[NT][2];
#pragma unroll
            for (int m = 0; m < NT; m++)
#pragma unroll
                for (int r = 0; r < 2; r++) wr[m][r] = wring[d * WSLOT + (m * 2 + r) * 32];
            sk_w4tm_mma<TP, NT, GP, true, 1>(wr, sb[d], xs + (size_t)st * XSTEP * 4, bsrc, xzero,
                                             lane, t, acc, sgs + st * NI);
            if (j + D < nst) SK_W4TX_LOAD(d);
            sk_w4_cp_commit();
            if (st == ns - 1) { /* row loop rl done: its partial sums into ws, range ks */
                const int nb = rb0 + rl * RW + warp * MT * 16;
                float *wsk = ws + (size_t)ks * TP * wsn;
#pragma unroll
                for (int m = 0; m < NT; m++)
#pragma unroll
                    for (int b = 0; b < NB; b++)
#pragma unroll
                        for (int h = 0; h < 2; h++) {
                            const int row = nb + 16 * (m % MT) + g + 8 * h;
                            const size_t up = m >= MT ? (size_t)N_out : 0;
                            if (GP == 1) {
#pragma unroll
                                for (int c = 0; c < 2; c++) {
                                    const int tau = 8 * b + 2 * t + c;
                                    if (tau < Tr && row < N_out)
                                        __stcg(wsk + tau * wsn + up + row, acc[m][b][2 * h + c] * 268435456.0f);
                                }
                            } else {
                                /* columns (tau, gi): GP = 2: this lane's two columns are one tau;
                                 * GP = 4: and lane t ^ 1's two */
                                float v = acc[m][b][2 * h] + acc[m][b][2 * h + 1];
                                int tau = 4 * b + t;
                                if (GP == 4) {
                                    v += __shfl_xor_sync(0xffffffffu, v, 1);
                                    tau = 2 * b + (t >> 1);
                                }
                                if ((GP == 2 || (t & 1) == 0) && tau < Tr && row < N_out)
                                    __stcg(wsk + tau * wsn + up + row, v * 268435456.0f);
                            }
                            acc[m][b][2 * h] = acc[m][b][2 * h + 1] = 0.0f;
                        }
            }
            if (++st == ns) st = 0, rl++;
        }
    }
#undef SK_W4TX_LOAD
#undef SK_W4TX_ROWS
    sk_w4_cp_wait<0>();
    if (ssq && warp == 0 && lane < Tr) { /* 1 / rms of row tau from the partial sums, in order */
        float a = 0.0f;
        for (int kb = 0; kb < nkb; kb++) a += s_part[lane * nkb + kb];
        s_rstd[lane] = 1.0f / sqrtf(a / (float)K + eps); /* the CPU's formula */
    }
    __threadfence();
    __syncthreads();
    if (ksplit > 1) {
        if (threadIdx.x == 0) s_last = atomicAdd(cnt + blockIdx.x, 1) == ksplit - 1;
        __syncthreads();
        if (!s_last) return;
        __threadfence();
    }
    /* The block's outputs from the ranges' partials. A first version walked them one output a
     * thread and iteration (tau x RB / (32 NW) dependent L2 round trips in a row, 16-32 for
     * RB = 256): the kernel ran at half tm's speed. Here rows go in fours (float4, where N_out %
     * 4 == 0) and each thread has U of them in flight, every range's loads issued together. */
    const int nrow = min(RB, N_out - rb0);
    if ((N_out & 3) == 0 && ((uintptr_t)out & 15) == 0 && ((uintptr_t)bias & 15) == 0) {
        constexpr int U = 4;
        const int nq = nrow >> 2, units = Tr * nq;
        for (int o0 = threadIdx.x; o0 < units; o0 += 32 * NW * U) {
            float4 v[U], u[U], pre[U];
            int tau[U], n[U];
#pragma unroll
            for (int e = 0; e < U; e++) {
                const int o = min(o0 + e * 32 * NW, units - 1); /* (past the end: the last, again) */
                tau[e] = o / nq, n[e] = rb0 + 4 * (o - tau[e] * nq);
                v[e] = u[e] = pre[e] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                if (MODE != SK_GEMV_SWIGLU) {
                    if (bias) pre[e] = __ldg(reinterpret_cast<const float4 *>(bias + n[e]));
                    if (MODE == SK_GEMV_ADD) {
                        const float4 r = *reinterpret_cast<const float4 *>(out + (size_t)tau[e] * N_out + n[e]);
                        pre[e].x += r.x, pre[e].y += r.y, pre[e].z += r.z, pre[e].w += r.w;
                    }
                }
            }
#pragma unroll 4
            for (int z = 0; z < ksplit; z++) /* in range order */
#pragma unroll
                for (int e = 0; e < U; e++) {
                    const float *rp = ws + ((size_t)z * TP + tau[e]) * wsn + n[e];
                    const float4 a = __ldcg(reinterpret_cast<const float4 *>(rp));
                    v[e].x += a.x, v[e].y += a.y, v[e].z += a.z, v[e].w += a.w;
                    if (MODE == SK_GEMV_SWIGLU) {
                        const float4 b = __ldcg(reinterpret_cast<const float4 *>(rp + N_out));
                        u[e].x += b.x, u[e].y += b.y, u[e].z += b.z, u[e].w += b.w;
                    }
                }
#pragma unroll
            for (int e = 0; e < U; e++) {
                if (o0 + e * 32 * NW >= units) break;
                float vv[4] = {v[e].x, v[e].y, v[e].z, v[e].w}, uu[4] = {u[e].x, u[e].y, u[e].z, u[e].w};
                const float pp[4] = {pre[e].x, pre[e].y, pre[e].z, pre[e].w};
#pragma unroll
                for (int c = 0; c < 4; c++) {
                    if (ssq) vv[c] *= s_rstd[tau[e]], uu[c] *= s_rstd[tau[e]]; /* the norm's 1 / rms */
                    vv[c] = MODE == SK_GEMV_SWIGLU ? vv[c] / (1.0f + __expf(-vv[c])) * uu[c] : vv[c] + pp[c];
                }
                *reinterpret_cast<float4 *>(out + (size_t)tau[e] * N_out + n[e]) =
                    make_float4(vv[0], vv[1], vv[2], vv[3]);
            }
        }
    } else {
        for (int o = threadIdx.x; o < Tr * nrow; o += 32 * NW) {
            const int tau = o / nrow, n = rb0 + (o - tau * nrow);
            float v = 0.0f, u = 0.0f;
            for (int z = 0; z < ksplit; z++) { /* in range order */
                const float *rp = ws + ((size_t)z * TP + tau) * wsn + n;
                v += __ldcg(rp);
                if (MODE == SK_GEMV_SWIGLU) u += __ldcg(rp + N_out);
            }
            if (ssq) v *= s_rstd[tau], u *= s_rstd[tau]; /* the norm's 1 / rms */
            float *po = out + (size_t)tau * N_out + n;
            if (MODE == SK_GEMV_SWIGLU) {
                *po = v / (1.0f + __expf(-v)) * u;
            } else {
                float pre = bias ? __ldg(bias + n) : 0.0f;
                if (MODE == SK_GEMV_ADD) pre += *po;
                *po = v + pre;
            }
        }
    }
    if (ksplit > 1 && threadIdx.x == 0) cnt[blockIdx.x] = 0;
}

/* Shared memory a block may take (the H200's opt-in limit less the kernel's static part). */
#define SK_W4TX_SMEM_CAP ((size_t)220 << 10)
/* Session 31 probes (awq-speed.md session 31): a block's shared memory, not its speed alone,
 * moves the engine at 16 rows. A bulk-copy weight feed for this kernel (not kept:
 * bench/results/data/s31/tx_bulk_not_kept.diff) added 0.25-0.75 KB of static shared memory (its
 * barriers) and no spills; with the bulk feed off, 70B INT4 batch 16 ran 4% slower in the
 * engine, while dev_gemv_w4 moved the same products by under 3%. With this code
 * (128/256, ITL p50, two rounds, the same call):
 *   SAKER_W4_TX_PAD=768 (768 unused bytes more a block; no product's range length changes):
 *     70B batch 16 16.03-16.11 -> 16.64-16.67 ms (+3.6%); batch 24 and 32 even.
 *   SAKER_W4_TX_SMEM_KB=192 (caps what the range length may take; 220 is the most and the
 *     default): batch 16 +3.5%, 24 even, 32 26.48-26.55 -> 28.34-28.36; 160: +8.5% / +25% /
 *     +13%.
 * Session 32 found the mechanism: the down product alone (its block at ~200 KB) moves, and only
 * when it passes the 196 KB carveout step (L1 60 -> 28 KB); pdl.cuh's carveout note. To find
 * which product, SAKER_W4_TX_PAD and SAKER_W4_TX_SPB (the range length,
 * steps a block, in place of the launch's choice) also take per-product entries
 * "MODE:K:VALUE,..." (MODE 0 STORE, 1 ADD, 2 SwiGLU; K the product's input width), e.g.
 * SAKER_W4_TX_SPB=0:8192:16,1:28672:24; a plain number applies to every product. */
/* The value for (mode, K) in variable v's entries (0 SAKER_W4_TX_PAD, 1 SAKER_W4_TX_SPB; read
 * once), or dflt. */
static inline long sk_w4_tx_spec(int v, int mode, int K, long dflt) {
    static const char *ev[2];
    static int read = 0;
    if (!read) {
        ev[0] = getenv("SAKER_W4_TX_PAD"), ev[1] = getenv("SAKER_W4_TX_SPB");
        read = 1;
    }
    const char *e = ev[v & 1];
    if (!e || !*e) return dflt;
    if (!strchr(e, ':')) return atol(e);
    for (const char *p = e; *p;) {
        char *q;
        const long m = strtol(p, &q, 10);
        if (q == p || *q != ':') break;
        const long k = strtol(q + 1, &q, 10);
        if (*q != ':') break;
        const long val = strtol(q + 1, &q, 10);
        if (m == mode && k == K) return val;
        if (*q != ',') break;
        p = q + 1;
    }
    return dflt;
}
static inline size_t sk_w4_tx_cap(void) {
    static long kb = -1;
    if (kb < 0) {
        const char *e = getenv("SAKER_W4_TX_SMEM_KB");
        kb = e && *e ? atol(e) : 220;
        if (kb < 64) kb = 64;
        if (kb > 220) kb = 220;
    }
    return (size_t)kb << 10;
}
static inline size_t sk_w4_tx_pad(int mode, int K) {
    long pad = sk_w4_tx_spec(0, mode, K, 0);
    if (pad < 0 || pad > (16 << 10)) pad = 0;
    return (size_t)((pad + 15) & ~15L);
}

/* The range length (steps a block) for a launch: spb_force where given (the workbench), else the
 * number of ranges k (from the fewest whose x slice fits shared memory) that minimises
 * waves x (steps a block + 4), ceil(rblocks k / slots) (ceil(S / k) + 4) (the 4: a block's x
 * slice, column sums and reduction, in steps), with 5% a range against the
 * partials' traffic (k T N 8 bytes written and read) and the x slices (fitted to the session-17
 * sweep of forced ranges on the 70B / 7B products); ws must hold k ranges. 0 where none fits. */
static inline int sk_w4_tx_spb(int rblocks, int S, int slots, size_t ring, size_t xstep_bytes,
                               size_t ws_per_range, size_t ws_floats, int spb_force, size_t pad) {
    const size_t cap = sk_w4_tx_cap() - pad;
    const int spb_max = cap > ring ? (int)((cap - ring) / xstep_bytes) : 0;
    if (spb_max < 1 || slots < 1) return 0;
    int spb;
    if (spb_force > 0) {
        spb = spb_force < spb_max ? spb_force : spb_max;
        if (spb > S) spb = S;
    } else {
        const int kmin = (S + spb_max - 1) / spb_max;
        double best = 1e30;
        spb = 0;
        for (int k = kmin; k <= kmin + 24 && k <= S; k++) {
            const int sp = (S + k - 1) / k, kk = (S + sp - 1) / sp;
            if (kk != k) continue; /* the same ranges as a smaller k */
            if ((size_t)k * ws_per_range > ws_floats) break;
            const double waves = (double)(((long)rblocks * k + slots - 1) / slots);
            const double cost = waves * (sp + 4) * (1.0 + 0.05 * k);
            if (cost < best) best = cost, spb = sp;
        }
        if (spb < 1) return 0;
    }
    const int ksplit = (S + spb - 1) / spb;
    if ((size_t)ksplit * ws_per_range > ws_floats) return 0;
    return spb;
}

/* Whether a launch at bound TP fits partials of ws_floats and cnt_n counters for every
 * configuration (rings of at most 96 KB, 128-row blocks at least): the backend asks before it
 * routes 17..32 rows here (there is no other GEMV for them). */
static inline bool sk_w4_tx_fits(int TP, int MODE, int N_out, int K, size_t ws_floats, int cnt_n) {
    const size_t xstep = (size_t)TP * 4 * SK_W4TC_XW * 4 + 128; /* (x and column sums) */
    const int spb_max = (int)((sk_w4_tx_cap() - sk_w4_tx_pad(MODE, K) - ((size_t)96 << 10)) / xstep);
    const int S = ((K >> 5) + 3) >> 2, kmin = (S + spb_max - 1) / spb_max;
    const size_t wsr = (size_t)TP * N_out * (MODE == SK_GEMV_SWIGLU ? 2 : 1);
    return spb_max >= 1 && (size_t)kmin * wsr <= ws_floats && (N_out + 127) / 128 <= cnt_n;
}

/* One launch of sk_w4_tx_kernel after the prepass (sk_w4_tm_launch's x16 / ssq). ws: the
 * partials, cnt: zero row-block counters (each launch leaves them zero). Returns false,
 * launching nothing, where it does not fit. */
template <int TP, int MT, int D, int GP, int MODE, int NW, int RL>
static bool sk_w4_tx_launch_k(const __half *x16, const float *ssq, float eps, const uint32_t *q4,
                              const __half2 *q4s, const float *bias, int N_out, int K, int Tr,
                              float *out, float *ws, size_t ws_floats, int *cnt, int cnt_n,
                              cudaStream_t s, int spb_force) {
    using SH = sk_w4tx_shape<TP, MT, D, GP, MODE, NW, RL>;
    auto k = sk_w4_tx_kernel<TP, MT, D, GP, MODE, NW, RL>;
    static int sms = 0, occ_small = 0;
    if (sms == 0) {
        const cudaError_t e =
            cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)SK_W4TX_SMEM_CAP);
        int dev = 0;
        if (e != cudaSuccess || cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ_small, k, 32 * NW,
                                                          SH::RING + 4 * SH::XSTEP * 16) != cudaSuccess ||
            occ_small < 1) {
            fprintf(stderr, "saker: w4 tx: setup failed (%s)\n", cudaGetErrorString(e));
            abort();
        }
    }
    const int rblocks = (N_out + SH::RB - 1) / SH::RB, S = ((K >> 5) + 3) >> 2;
    if (rblocks > cnt_n) return false;
    /* block slots: one an SM at 8 warps (measured: 256 blocks of 8 warps ran as two waves), at
     * most two at 4 */
    const int occ = NW >= 8 ? 1 : (occ_small > 2 ? 2 : occ_small);
    const size_t wsr = (size_t)TP * N_out * (MODE == SK_GEMV_SWIGLU ? 2 : 1);
    /* (a range length forced by SAKER_W4_TX_SPB that does not fit: the launch's own choice) */
    const int spb_env = spb_force > 0 ? 0 : (int)sk_w4_tx_spec(1, MODE, K, 0);
    const size_t pad = sk_w4_tx_pad(MODE, K);
    int spb = sk_w4_tx_spb(rblocks, S, occ * sms, SH::RING, (size_t)SH::XSTEP * 16 + SH::SGS, wsr,
                           ws_floats, spb_force > 0 ? spb_force : spb_env, pad);
    if (spb < 1 && spb_env > 0)
        spb = sk_w4_tx_spb(rblocks, S, occ * sms, SH::RING, (size_t)SH::XSTEP * 16 + SH::SGS, wsr,
                           ws_floats, 0, pad);
    if (spb < 1) return false;
    const int ksplit = (S + spb - 1) / spb;
    const size_t smem = SH::RING + (size_t)spb * (SH::XSTEP * 16 + SH::SGS) + pad;
    sk_launch_pdl_smem(k, dim3((unsigned)rblocks, (unsigned)ksplit), 32u * NW, smem, s, x16, ssq, eps,
                       q4, q4s, bias, N_out, K, Tr, out, spb, ws, cnt);
    return true;
}

template <int TP, int MT, int D, int MODE, int NW, int RL>
static bool sk_w4_tx_launch(const float *x, int Tr, const uint32_t *q4, const __half2 *q4s, int G,
                            const float *bias, int N_out, int K, float *out, const float *gamma,
                            float eps, __half *x16, float *ssq, float *ws, size_t ws_floats,
                            int *cnt, int cnt_n, cudaStream_t s, int parts = 3, int spb_force = 0) {
    if (!sk_w4_tm_fits(TP, Tr, MODE, N_out, K, G, x, gamma) || G == 32 || !ws || !cnt) return false;
    const float *gm = MODE != SK_GEMV_ADD ? gamma : nullptr;
    const int nkb = (K + SK_W4TM_PREP_K - 1) / SK_W4TM_PREP_K;
    if (parts & 1)
        sk_launch_pdl(sk_w4tm_prep_kernel<TP>, dim3((unsigned)nkb, (unsigned)Tr),
                      (unsigned)SK_W4TM_PREP_THREADS, s, x, K, gm, x16, ssq);
    if (!(parts & 2)) return true;
    const float *sq = gm ? ssq : nullptr;
    if (G == 128)
        return sk_w4_tx_launch_k<TP, MT, D, 1, MODE, NW, RL>(x16, sq, eps, q4, q4s, bias, N_out, K, Tr,
                                                             out, ws, ws_floats, cnt, cnt_n, s, spb_force);
    if constexpr (TP * 2 <= 32)
        return sk_w4_tx_launch_k<TP, MT, D, 2, MODE, NW, RL>(x16, sq, eps, q4, q4s, bias, N_out, K, Tr,
                                                             out, ws, ws_floats, cnt, cnt_n, s, spb_force);
    return false;
}

/* The configurations (index 1..SK_W4TX_NCFG; MT: 16-row tiles a warp (gate and up each for
 * SwiGLU), NW warps, D weight slots a warp, RL row loops):
 *   STORE / ADD  1: MT2 NW8 D4 RL1   2: MT2 NW4 D4 RL2   3: MT2 NW8 D4 RL2   4: MT1 NW8 D6 RL2
 *   SWIGLU       1: MT1 NW8 D4 RL2   2: MT1 NW4 D4 RL4   3: MT1 NW8 D4 RL4   4: MT2 NW8 D4 RL1
 * Session 18, more warps an SM (ncu, session 17: two warps a scheduler, latency-bound):
 *   STORE / ADD  5: MT1 NW16 D4 RL2 (128 registers at bound 16 and 32, no spill)
 *                6: MT2 NW12 D4 RL1 (156 at bound 16)   7: MT1 NW16 D6 RL1
 *   SWIGLU       5: MT1 NW12 D4 RL2 (168 at bound 16)   6: MT1 NW12 D4 RL1   7: MT1 NW12 D3 RL2 */
#define SK_W4TX_NCFG 7
template <int TP, int MODE>
static bool sk_w4_tx_launch_cfg(int cfg, const float *x, int Tr, const uint32_t *q4,
                                const __half2 *q4s, int G, const float *bias, int N_out, int K,
                                float *out, const float *gamma, float eps, __half *x16, float *ssq,
                                float *ws, size_t ws_floats, int *cnt, int cnt_n, cudaStream_t s,
                                int parts = 3, int spb_force = 0) {
#define SK_W4TX_C(MT_, D_, NW_, RL_)                                                               \
    return sk_w4_tx_launch<TP, MT_, D_, MODE, NW_, RL_>(x, Tr, q4, q4s, G, bias, N_out, K, out,   \
                                                        gamma, eps, x16, ssq, ws, ws_floats, cnt, \
                                                        cnt_n, s, parts, spb_force)
    if constexpr (MODE == SK_GEMV_SWIGLU) {
        switch (cfg) {
        case 1: SK_W4TX_C(1, 4, 8, 2);
        case 2: SK_W4TX_C(1, 4, 4, 4);
        case 3: SK_W4TX_C(1, 4, 8, 4);
        case 4: SK_W4TX_C(2, 4, 8, 1);
        case 5: SK_W4TX_C(1, 4, 12, 2);
        case 6: SK_W4TX_C(1, 4, 12, 1);
        case 7: SK_W4TX_C(1, 3, 12, 2);
        default: return false;
        }
    } else {
        switch (cfg) {
        case 1: SK_W4TX_C(2, 4, 8, 1);
        case 2: SK_W4TX_C(2, 4, 4, 2);
        case 3: SK_W4TX_C(2, 4, 8, 2);
        case 4: SK_W4TX_C(1, 6, 8, 2);
        case 5: SK_W4TX_C(1, 4, 16, 2);
        case 6: SK_W4TX_C(2, 4, 12, 1);
        case 7: SK_W4TX_C(1, 6, 16, 1);
        default: return false;
        }
    }
#undef SK_W4TX_C
}
static inline const char *sk_w4_tx_name(int mode, int cfg) {
    static const char *sa[] = {"-", "tx MT2 NW8 D4 RL1", "tx MT2 NW4 D4 RL2", "tx MT2 NW8 D4 RL2",
                               "tx MT1 NW8 D6 RL2", "tx MT1 NW16 D4 RL2", "tx MT2 NW12 D4 RL1",
                               "tx MT1 NW16 D6 RL1"};
    static const char *sw[] = {"-", "tx MT1 NW8 D4 RL2", "tx MT1 NW4 D4 RL4", "tx MT1 NW8 D4 RL4",
                               "tx MT2 NW8 D4 RL1", "tx MT1 NW12 D4 RL2", "tx MT1 NW12 D4 RL1",
                               "tx MT1 NW12 D3 RL2"};
    return cfg < 1 || cfg > SK_W4TX_NCFG ? "-" : mode == SK_GEMV_SWIGLU ? sw[cfg] : sa[cfg];
}

#endif
