/* Stage 0 of dev/notes/b1_persistent_decode.md (section 6): the two numbers a persistent batch-1
 * decode kernel hinges on, measured before anything else is built. Kernel workbench (STYLE.md 1);
 * the GEMV step code (sk_w4tc_xsplit, sk_w4tc_mma, sk_w4tc_bsrc, sk_w4_ld_stream) and the per-op
 * launchers come from src/backend/cuda/w4.cuh, included as they are.
 *
 * Build and run from the repository root:
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -lineinfo -Xptxas -v \
 *        -Isrc -o /tmp/b1_stage0 dev/cuda/b1_stage0.cu && /tmp/b1_stage0 [flag|arrive|dep|all]
 * (CMake: target dev_b1_stage0.) Exit status 0 only if every check passed and no spin timed out.
 *
 * Subcommands:
 *   flag    latency of a release/acquire flag between two CTAs on two given SMs: the pinger does
 *           red.release.gpu.add on `ping`, the ponger spins ld.acquire.gpu on it and answers with
 *           red.release.gpu.add on `pong`, on which the pinger spins; one round trip = two one-way
 *           flag latencies, timed by the pinger with %globaltimer (and clock64). SM pairs (0, 1)
 *           and (0, nSM / 2); each idle (all other CTAs exit) and loaded (all other CTAs, 2 an SM,
 *           stream a 2 GiB buffer with 16-byte no-L1 loads until the pinger says stop; their
 *           achieved read bandwidth is printed next to it). Median / p90 of single round trips in
 *           ns, the mean over all of them, and the globaltimer's step (its resolution).
 *   arrive  264-way arrival (2 CTAs an SM, 8 warps each, all resident: cooperative launch after
 *           an occupancy check): CTA 0 releases all CTAs with a go flag (st.release.gpu), each
 *           CTA's thread 0 does red.release.gpu.add on one counter (or on 8 sub-counters, CTA % 8,
 *           that the waiter sums), CTA 0 spins ld.acquire.gpu until it sees all of them. Per
 *           iteration: go -> last CTA saw go, go -> waiter saw all arrivals, and last go seen ->
 *           all arrivals seen; median / p90 in ns.
 *   dep     the note's key measurement: a persistent kernel (264 workers = 2 CTAs of 8 warps an SM,
 *           cooperative launch) streams product A, o-shaped (8192 x 8192 INT4, G = 128, ADD into
 *           the fp32 vector y), then product B, gate/up-shaped (2 x 28672 x 8192, SwiGLU into f,
 *           x = y: B needs all of A's output; no fused norm) with ONE counter dependency: A's
 *           workers, after writing a tile's rows, red.release.gpu.add a counter; B's workers issue
 *           their first weight loads (the register ring, D steps a warp, runs across the product
 *           boundary) and only then spin on the counter (ld.acquire.gpu) before splitting y into
 *           shared memory (XS1, as sk_w4_ts_kernel) and computing. Tiles: A 32 rows (MT2 ADD),
 *           B 16 gate + 16 up rows (MT1 SwiGLU), both two 16-row tiles a warp (NT = 2, ZC3 step),
 *           each tile's 64 K-steps split over the 8 warps (sk_w4_ts_kernel's layout), tile b of a
 *           product to worker b % 264 (round robin; no stream-K cut). Versions: the same kernel
 *           with the dependency (dep) and without the spin (nodep: B may read y early, its output
 *           unchecked: the upper bound), ring depth D = 2 and 3; against the per-op path: A then B
 *           as the backend launches them today (sk_w4_gemv_launch: tc ZC3 MT2 for o, sk_w4_ts
 *           configuration 2 for gate/up), with PDL. Checks first: y of both paths against a double
 *           reference (max |err| / sum |x w| <= 1e-5), then f of the persistent dep versions
 *           against the per-op f (max |err| / (sum|y wg| |u| + |g| sum|y wu|) <= 1e-5, the
 *           gemv_w4.cu SwiGLU measure, the magnitudes from a double host pass). Timing: batches of
 *           10 back-to-back calls between CUDA events, 2 warm-up batches, median of 20, weights
 *           rotated over 3 sets (855 MB) so L2 holds none; weight GB/s = (A + B INT4 bytes with
 *           scales) / time; b = t(dep) - t(nodep). Then one traced call each (globaltimer per
 *           worker: start, A done, wait done, y split, end) for where the time goes.
 * Every spin is bounded (B1_SPIN_MAX polls and B1_SPIN_NS of globaltimer): on timeout it writes
 * an error word, the kernel runs on without waiting, and the host prints TIMEOUT and fails. */
#include "backend/cuda/w4.cuh"
#include "bench_util.cuh"

#include <algorithm>
#include <cmath>
#include <vector>

#define B1_SPIN_MAX (1ll << 24)              /* polls before a spin gives up */
#define B1_SPIN_NS (2000ull * 1000ull * 1000ull) /* or 2 s of globaltimer */
#define B1_LINE 32                           /* words a 128-byte line: one counter a line */

/* ---- Flags ------------------------------------------------------------------------------- */

static __device__ __forceinline__ unsigned b1_ld_acquire(const unsigned *p) {
    unsigned v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
static __device__ __forceinline__ unsigned b1_ld_relaxed(const unsigned *p) {
    unsigned v;
    asm volatile("ld.relaxed.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(p) : "memory");
    return v;
}
static __device__ __forceinline__ void b1_red_release(unsigned *p, unsigned v) {
    asm volatile("red.release.gpu.global.add.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
static __device__ __forceinline__ void b1_st_release(unsigned *p, unsigned v) {
    asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(p), "r"(v) : "memory");
}
static __device__ __forceinline__ unsigned long long b1_gtime(void) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
static __device__ __forceinline__ unsigned b1_smid(void) {
    unsigned s;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(s));
    return s;
}
/* 16 bytes of data written in this kernel by other CTAs: L2 only (never a stale L1 line). */
static __device__ __forceinline__ float4 b1_ld_cg_f4(const float *p) {
    float4 v;
    asm volatile("ld.global.cg.v4.f32 {%0, %1, %2, %3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
                 : "l"(p)
                 : "memory");
    return v;
}
/* Spins (ld.acquire.gpu) until the sum of the n counters p[0], p[B1_LINE], ... reaches target
 * (wrapping compare: counters are monotonic across launches). Returns false on timeout (after
 * writing code to *err) or when *err is already set. */
static __device__ bool b1_spin_ge(const unsigned *p, int n, unsigned target, unsigned *err,
                                  unsigned code) {
    const unsigned long long t0 = b1_gtime();
    for (long long i = 0; i < B1_SPIN_MAX; i++) {
        unsigned v = 0;
        for (int k = 0; k < n; k++) v += b1_ld_acquire(p + k * B1_LINE);
        if ((int)(v - target) >= 0) return true;
        if ((i & 255) == 255) {
            if (b1_ld_relaxed(err)) return false;
            if (b1_gtime() - t0 > B1_SPIN_NS) break;
        }
    }
    atomicCAS(err, 0u, code);
    return false;
}

/* Control words, one a line: */
enum { B1_PING = 0, B1_PONG, B1_CLAIM0, B1_CLAIM1, B1_READY, B1_STOP, B1_ERR, B1_GO, B1_SIDX, B1_CNT, B1_NCTL = B1_CNT + 8 };
#define B1_CTL(c, i) ((c) + (i) * B1_LINE)

/* ---- flag ---------------------------------------------------------------------------------- */

/* grid: 2 CTAs an SM (cooperative). The first CTA on SM sm_a pings, the first on sm_b pongs;
 * the rest stream buf (stream != 0) or exit. out: [nsamp] round trips in ns, [nsamp] in clock64
 * cycles, then [4]: globaltimer step, loop span ns, streamed bytes, stream span ns. span[2 x grid]:
 * each streaming CTA's first and last globaltimer. */
static __global__ void __launch_bounds__(256) b1_flag_kernel(unsigned *ctl, int sm_a, int sm_b,
                                                            int stream, const uint4 *buf, size_t n16,
                                                            int nsamp, int warm,
                                                            unsigned long long *out,
                                                            unsigned long long *span) {
    __shared__ int role;
    __shared__ int stop;
    unsigned *err = B1_CTL(ctl, B1_ERR);
    if (threadIdx.x == 0) {
        const int sm = (int)b1_smid();
        role = -1;
        if (sm == sm_a && atomicCAS(B1_CTL(ctl, B1_CLAIM0), 0u, 1u) == 0u) role = 0;
        else if (sm == sm_b && atomicCAS(B1_CTL(ctl, B1_CLAIM1), 0u, 1u) == 0u) role = 1;
        stop = 0;
    }
    __syncthreads();
    if (role == 1) {
        if (threadIdx.x != 0) return;
        b1_red_release(B1_CTL(ctl, B1_READY), 1u);
        for (int i = 0; i < warm + nsamp; i++) {
            if (!b1_spin_ge(B1_CTL(ctl, B1_PING), 1, (unsigned)i + 1u, err, 2u)) return;
            b1_red_release(B1_CTL(ctl, B1_PONG), 1u);
        }
        return;
    }
    if (role == 0) {
        if (threadIdx.x != 0) return;
        /* the globaltimer's step: the smallest nonzero difference of consecutive reads */
        unsigned long long step = ~0ull, prev = b1_gtime();
        for (int i = 0; i < 4096; i++) {
            const unsigned long long t = b1_gtime();
            if (t != prev && t - prev < step) step = t - prev;
            prev = t;
        }
        const unsigned expect = 1u + (stream ? gridDim.x - 2u : 0u);
        if (b1_spin_ge(B1_CTL(ctl, B1_READY), 1, expect, err, 1u)) {
            unsigned long long tl0 = 0;
            for (int i = 0; i < warm + nsamp; i++) {
                if (i == warm) tl0 = b1_gtime();
                const unsigned long long t0 = b1_gtime();
                const long long c0 = clock64();
                b1_red_release(B1_CTL(ctl, B1_PING), 1u);
                if (!b1_spin_ge(B1_CTL(ctl, B1_PONG), 1, (unsigned)i + 1u, err, 3u)) break;
                const long long c1 = clock64();
                const unsigned long long t1 = b1_gtime();
                if (i >= warm) {
                    out[i - warm] = t1 - t0;
                    out[nsamp + i - warm] = (unsigned long long)(c1 - c0);
                }
            }
            out[2 * nsamp + 1] = b1_gtime() - tl0;
        }
        out[2 * nsamp] = step;
        b1_st_release(B1_CTL(ctl, B1_STOP), 1u);
        return;
    }
    if (!stream) return;
    /* streaming: this CTA's index among the streaming ones (the flag CTAs can be any), then
     * grid-stride 16-byte loads, four in flight a thread, the same trip count for every thread of
     * the CTA (the tail of buf is skipped), until stop (bounded: at most 4096 passes over buf) */
    __shared__ unsigned sidx;
    const unsigned nstream = gridDim.x - 2;
    if (threadIdx.x == 0) {
        sidx = atomicAdd(B1_CTL(ctl, B1_SIDX), 1u);
        span[2 * blockIdx.x] = b1_gtime();
        if (sidx < nstream) b1_red_release(B1_CTL(ctl, B1_READY), 1u);
    }
    __syncthreads();
    if (sidx >= nstream) return; /* a flag SM without its flag CTA: the pinger times out */
    const size_t stride = (size_t)nstream * blockDim.x, niter = n16 / (4 * stride);
    const size_t i0 = (size_t)sidx * blockDim.x + threadIdx.x;
    uint32_t acc = 0;
    unsigned long long bytes = 0;
    bool quit = false;
    for (int pass = 0; pass < 4096 && !quit; pass++) {
        for (size_t it = 0; it < niter; it++) {
            const size_t i = i0 + it * 4 * stride;
            const uint4 v0 = sk_w4_ld_stream(buf + i), v1 = sk_w4_ld_stream(buf + i + stride);
            const uint4 v2 = sk_w4_ld_stream(buf + i + 2 * stride), v3 = sk_w4_ld_stream(buf + i + 3 * stride);
            acc ^= v0.x ^ v0.y ^ v0.z ^ v0.w ^ v1.x ^ v1.y ^ v1.z ^ v1.w;
            acc ^= v2.x ^ v2.y ^ v2.z ^ v2.w ^ v3.x ^ v3.y ^ v3.z ^ v3.w;
            bytes += 64;
            if ((it & 15) == 15 || it + 1 == niter) {
                if (threadIdx.x == 0)
                    stop = b1_ld_relaxed(B1_CTL(ctl, B1_STOP)) != 0u || b1_ld_relaxed(err) != 0u;
                __syncthreads();
                quit = stop != 0;
                __syncthreads(); /* every thread read stop before thread 0 writes it again */
                if (quit) break;
            }
        }
    }
    if (acc == 0x9e3779b9u) out[2 * nsamp + 3] = acc; /* keeps the loads; practically never */
    atomicAdd(out + 2 * nsamp + 2, bytes);
    __syncthreads();
    if (threadIdx.x == 0) span[2 * blockIdx.x + 1] = b1_gtime();
}

/* ---- arrive -------------------------------------------------------------------------------- */

/* grid: 2 CTAs an SM (cooperative), thread 0 of each acts. nsub counters (1 or 8). Per iteration
 * it (1-based): CTA 0 stamps t0 and releases go = it; every CTA spins on go, stamps, arrives on
 * counter (blockIdx % nsub); CTA 0 spins until the counters sum to it x grid and stamps t1.
 * tw: [iters] t1 - t0; tg: [iters][grid] go seen - t0. */
static __global__ void __launch_bounds__(256) b1_arrive_kernel(unsigned *ctl, int iters, int nsub,
                                                              unsigned long long *tw,
                                                              unsigned long long *tg) {
    if (threadIdx.x != 0) return;
    unsigned *err = B1_CTL(ctl, B1_ERR), *go = B1_CTL(ctl, B1_GO);
    const unsigned n = gridDim.x;
    /* everyone resident and here before the first go */
    b1_red_release(B1_CTL(ctl, B1_READY), 1u);
    if (!b1_spin_ge(B1_CTL(ctl, B1_READY), 1, n, err, 4u)) return;
    unsigned long long t0s = 0;
    for (int it = 1; it <= iters; it++) {
        if (blockIdx.x == 0) {
            t0s = b1_gtime();
            b1_st_release(go, (unsigned)it);
        }
        if (!b1_spin_ge(go, 1, (unsigned)it, err, 5u)) return;
        const unsigned long long tgo = b1_gtime();
        b1_red_release(B1_CTL(ctl, B1_CNT) + (blockIdx.x % nsub) * B1_LINE, 1u);
        if (blockIdx.x == 0) {
            if (!b1_spin_ge(B1_CTL(ctl, B1_CNT), nsub, (unsigned)it * n, err, 6u)) return;
            tw[it - 1] = b1_gtime() - t0s;
        }
        /* t0 of this iteration is only known on CTA 0: store the absolute time, the host
         * subtracts */
        tg[(size_t)(it - 1) * n + blockIdx.x] = tgo;
        if (blockIdx.x == 0) tw[iters + it - 1] = t0s;
    }
}

/* ---- dep: the persistent two-product kernel ------------------------------------------------ */

#define B1_NW 8                   /* warps a worker */
#define B1_SMEM_MIN (80 * 1024)   /* dynamic shared memory asked at least: 2 workers an SM, not 3 */

typedef struct b1_dep_params {
    const float *xa;                      /* [K] A's input */
    const uint32_t *qa;                   /* A: NA x K INT4 (w4.cuh layout) */
    const __half2 *sa;
    float *y;                             /* [NA] A's output (+=), B's input (K = NA) */
    const uint32_t *qb;                   /* B: 2 NB x K (gate rows, then up rows) */
    const __half2 *sb;
    float *f;                             /* [NB] silu(gate) * up */
    unsigned *cnt;                        /* A tiles written (monotonic across launches) */
    unsigned target;                      /* cnt once this launch's A tiles are all written */
    unsigned *err;
    unsigned long long *trace;            /* NULL or [grid][5]: start, A done, wait done, y split, end */
    int NA, NB, K;
} b1_dep_params;

/* All of x (K floats, K % 128 == 0) split into ZC3's fp16 hi / lo B fragments, step s at xs + s
 * XB: warp w takes steps w, w + NW, ..., four loads in flight. Reads through L2 (x may have been
 * written in this kernel by other CTAs). */
static __device__ __forceinline__ void b1_split_x(const float *x, int S, uint32_t *xs, int warp,
                                                  int lane, int xoff) {
    constexpr int XB = sk_w4tc_dims<1, 1>::XB;
    for (int s0 = warp; s0 < S; s0 += 4 * B1_NW) {
        float4 xq[4][1];
#pragma unroll
        for (int u = 0; u < 4; u++)
            xq[u][0] = s0 + u * B1_NW < S ? b1_ld_cg_f4(x + 128 * (s0 + u * B1_NW) + 4 * lane)
                                          : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
#pragma unroll
        for (int u = 0; u < 4; u++)
            if (s0 + u * B1_NW < S) sk_w4tc_xsplit<1, 1>(xq[u], xs + (s0 + u * B1_NW) * XB, xoff);
    }
}

/* grid: 2 x SMs workers (cooperative), 32 B1_NW threads, dynamic shared memory >= S XB words.
 * T = 1, G = 128. Worker b: A tiles b, b + grid, ... (32 rows each), then B tiles b, b + grid, ...
 * (16 gate + 16 up rows); each warp walks nsw = ceil(S / NW) step slots a tile, one sequence over
 * both products, the load cursor D slots ahead of the compute cursor. DEP: spin on cnt before
 * B's x split. */
template <int D, int DEP>
__global__ void __launch_bounds__(32 * B1_NW, 2) b1_dep_kernel(const b1_dep_params p) {
    constexpr int T = 1, GP = 1, NT = 2, ZC = 3, KS = B1_NW;
    constexpr int NB = sk_w4tc_dims<T, GP>::NB, XB = sk_w4tc_dims<T, GP>::XB;
    constexpr int GSH = sk_w4tc_dims<T, GP>::GSH;
    extern __shared__ __align__(16) uint32_t b1_xs[]; /* split x [S][XB] */
    __shared__ __align__(16) float red[2][KS][NT][4 * NB][16];
    __shared__ __align__(16) uint32_t xzero[16];
    const unsigned long long tr0 = b1_gtime();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int K = p.K, C = K >> 5, S = C >> 2, KG = C >> GSH;
    const int NA = p.NA, NB_ = p.NB;
    const int nsw = (S + KS - 1) / KS;
    const int bid = (int)blockIdx.x, grid = (int)gridDim.x;
    const int ntA = (NA + 31) / 32, ntB = (NB_ + 15) / 16;
    const int ntbA = bid < ntA ? (ntA - 1 - bid) / grid + 1 : 0;
    const int ntbB = bid < ntB ? (ntB - 1 - bid) / grid + 1 : 0;
    const int JA = ntbA * nsw, J = JA + ntbB * nsw;

    /* The load cursor: slot l_i of tile l_t of product l_p (rows from l_n0). */
    int l_i = 0, l_t = 0, l_p = ntbA > 0 ? 0 : 1;
    int l_n0 = l_p ? 16 * bid : 32 * bid;
    const uint4 *l_wq = reinterpret_cast<const uint4 *>(l_p ? p.qb : p.qa);
    const uint32_t *l_sq = reinterpret_cast<const uint32_t *>(l_p ? p.sb : p.sa);
    int wo[NT][2], so[NT][2];
#define B1_ROWS()                                                                                  \
    do {                                                                                           \
        _Pragma("unroll") for (int m_ = 0; m_ < NT; m_++)                                          \
            _Pragma("unroll") for (int r_ = 0; r_ < 2; r_++) {                                     \
            int n_;                                                                                \
            if (l_p == 0) {                                                                        \
                n_ = min(l_n0 + 16 * m_ + g + 8 * r_, NA - 1);                                     \
            } else {                                                                               \
                n_ = min(l_n0 + g + 8 * r_, NB_ - 1);                                              \
                if (m_) n_ += NB_;                                                                 \
            }                                                                                      \
            wo[m_][r_] = SK_W4_WO(n_, C);                                                          \
            so[m_][r_] = n_ * KG;                                                                  \
        }                                                                                          \
    } while (0)
    B1_ROWS();
    uint4 wb[D][NT][2];
    uint32_t sb[D][NT][2];
#define B1_LOAD(d_)                                                                                \
    do {                                                                                           \
        const int st_ = warp + KS * l_i;                                                           \
        if (st_ < S) {                                                                             \
            const int c_ = 4 * st_ + t;                                                            \
            _Pragma("unroll") for (int m_ = 0; m_ < NT; m_++)                                      \
                _Pragma("unroll") for (int r_ = 0; r_ < 2; r_++) {                                 \
                wb[d_][m_][r_] = sk_w4_ld_stream(l_wq + (wo[m_][r_] + SK_W4_WC(c_)));              \
                sb[d_][m_][r_] = __ldg(l_sq + (so[m_][r_] + (c_ >> GSH)));                         \
            }                                                                                      \
        }                                                                                          \
        if (++l_i == nsw) {                                                                        \
            l_i = 0;                                                                               \
            if (l_p == 0 && ++l_t == ntbA) {                                                       \
                l_p = 1, l_t = 0, l_n0 = 16 * bid;                                                 \
                l_wq = reinterpret_cast<const uint4 *>(p.qb);                                      \
                l_sq = reinterpret_cast<const uint32_t *>(p.sb);                                   \
            } else {                                                                               \
                l_n0 += l_p ? 16 * grid : 32 * grid;                                               \
            }                                                                                      \
            B1_ROWS();                                                                             \
        }                                                                                          \
    } while (0)
    /* Weights never depend on anything: the ring fills first, whichever product it starts in. */
#pragma unroll
    for (int d = 0; d < D; d++)
        if (d < J) B1_LOAD(d);

    const int xoff = (lane >> 3) * SK_W4TC_XW + (lane & 7) * 2;
    if (JA > 0) b1_split_x(p.xa, S, b1_xs, warp, lane, xoff);
    if (threadIdx.x < 16) xzero[threadIdx.x] = 0u;
    __syncthreads(); /* xzero, A's split x */

    int bsrc[NB];
    sk_w4tc_bsrc<T, GP>(bsrc, g, t);
    float acc[NT][NB][2];
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++) acc[m][b][0] = acc[m][b][1] = 0.0f;

    unsigned long long trA = tr0, trW = tr0, trS = tr0;
    int c_i = 0, c_p = ntbA > 0 ? 0 : 1, c_n0 = c_p ? 16 * bid : 32 * bid, c_tile = 0;
    for (int i = 0; i < J; i += D) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            const int j = i + d;
            if (j >= J) break;
            if (j == JA) { /* entering B: its first D slots are in flight */
                if (threadIdx.x == 0) {
                    trA = b1_gtime();
                    if (DEP) b1_spin_ge(p.cnt, 1, p.target, p.err, 7u);
                    trW = b1_gtime();
                }
                __syncthreads(); /* the wait; every warp done with A's split x (the last A
                                    tile's barrier) */
                b1_split_x(p.y, S, b1_xs, warp, lane, xoff);
                __syncthreads();
                if (threadIdx.x == 0) trS = b1_gtime();
                c_p = 1, c_n0 = 16 * bid;
            }
            const int st = warp + KS * c_i;
            if (st < S) sk_w4tc_mma<T, NT, GP, ZC>(wb[d], sb[d], b1_xs + st * XB, bsrc, xzero, lane, t, acc);
            if (j + D < J) B1_LOAD(d);
            if (++c_i == nsw) { /* the tile's epilogue; the ring's next loads stay in flight */
                c_i = 0;
                float(*rd)[NT][4 * NB][16] = red[c_tile & 1];
#pragma unroll
                for (int m = 0; m < NT; m++)
#pragma unroll
                    for (int b = 0; b < NB; b++) {
                        rd[warp][m][t + 4 * b][g] = acc[m][b][0] * 268435456.0f; /* 2^28 (ZC3) */
                        rd[warp][m][t + 4 * b][g + 8] = acc[m][b][1] * 268435456.0f;
                        acc[m][b][0] = acc[m][b][1] = 0.0f;
                    }
                __syncthreads();
                if (c_p == 0) { /* A: 32 rows, warp 0 writes them and signals */
                    if (warp == 0) {
                        const int n = c_n0 + lane, m = lane >> 4, row = lane & 15;
                        if (n < NA) {
                            float v = 0.0f;
#pragma unroll
                            for (int w = 0; w < KS; w++) v += rd[w][m][0][row];
                            p.y[n] = v + p.y[n];
                        }
                        __syncwarp();
                        if (lane == 0) {
                            __threadfence();
                            b1_red_release(p.cnt, 1u);
                        }
                    }
                    c_n0 += 32 * grid;
                } else { /* B: 16 rows of silu(gate) * up */
                    const int n = c_n0 + (int)threadIdx.x;
                    if (threadIdx.x < 16 && n < NB_) {
                        float v = 0.0f, u = 0.0f;
#pragma unroll
                        for (int w = 0; w < KS; w++) v += rd[w][0][0][threadIdx.x], u += rd[w][1][0][threadIdx.x];
                        p.f[n] = v / (1.0f + __expf(-v)) * u;
                    }
                    c_n0 += 16 * grid;
                }
                c_tile++;
            }
        }
    }
#undef B1_ROWS
#undef B1_LOAD
    if (p.trace && threadIdx.x == 0) {
        unsigned long long *o = p.trace + 5 * (size_t)bid;
        o[0] = tr0, o[1] = trA, o[2] = trW, o[3] = trS, o[4] = b1_gtime();
    }
}

/* ---- Host ---------------------------------------------------------------------------------- */

static int g_sms = 0;

static double pct(std::vector<double> v, double q) {
    if (v.empty()) return 0.0;
    std::sort(v.begin(), v.end());
    size_t i = (size_t)(q * (double)(v.size() - 1) + 0.5);
    return v[std::min(i, v.size() - 1)];
}

/* A cooperative launch of k (grid x block, smem bytes): every CTA resident or an error. */
template <typename... KA, typename... A>
static cudaError_t b1_coop(void (*k)(KA...), int grid, int block, size_t smem, cudaStream_t s,
                           A... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3((unsigned)grid);
    cfg.blockDim = dim3((unsigned)block);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute a[1];
    a[0].id = cudaLaunchAttributeCooperative;
    a[0].val.cooperative = 1;
    cfg.attrs = a;
    cfg.numAttrs = 1;
    return cudaLaunchKernelEx(&cfg, k, args...);
}
/* Aborts unless at least `want` CTAs of k (block threads, smem) fit an SM. Returns the count. */
template <typename... KA>
static int b1_need_occ(void (*k)(KA...), const char *name, int block, size_t smem, int want) {
    int occ = 0;
    CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, k, block, smem));
    if (occ < want) {
        fprintf(stderr, "FAIL: %s: only %d CTAs of %d threads with %zu bytes of dynamic shared memory "
                        "fit an SM, %d needed for all to be resident (spinning CTAs would wait for "
                        "CTAs that never start): not run\n", name, occ, block, smem, want);
        exit(3);
    }
    return occ;
}
static unsigned read_err(const unsigned *ctl_err) {
    unsigned e = 0;
    CK(cudaMemcpy(&e, ctl_err, 4, cudaMemcpyDeviceToHost));
    return e;
}

static int run_flag(void) {
    const size_t smem = 100 * 1024; /* 2 CTAs an SM, no more */
    CK(cudaFuncSetAttribute(b1_flag_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    const int occ = b1_need_occ(b1_flag_kernel, "flag", 256, smem, 2);
    if (occ != 2) printf("note: %d flag CTAs fit an SM (2 asked)\n", occ);
    const int grid = 2 * g_sms, nsamp = 2000, warm = 100;
    const size_t bytes = (size_t)2 << 30, n16 = bytes / 16;
    int clk_khz = 0, dev = 0;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&clk_khz, cudaDevAttrClockRate, dev));
    uint4 *buf;
    unsigned *ctl;
    unsigned long long *out, *span;
    CK(cudaMalloc(&buf, bytes));
    CK(cudaMemset(buf, 0x5a, bytes));
    CK(cudaMalloc(&ctl, B1_NCTL * B1_LINE * 4));
    CK(cudaMalloc(&out, (2 * nsamp + 4) * 8));
    CK(cudaMalloc(&span, (size_t)2 * grid * 8));
    int fails = 0;
    const int pairs[2][2] = {{0, 1}, {0, g_sms / 2}};
    printf("\n| SMs | load | round trip median ns | p90 | mean | one-way median | clock64 median cyc (ns at %d MHz) | globaltimer step ns | stream TB/s |\n",
           clk_khz / 1000);
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (auto &pr : pairs)
        for (int stream = 0; stream < 2; stream++) {
            CK(cudaMemset(ctl, 0, B1_NCTL * B1_LINE * 4));
            CK(cudaMemset(out, 0, (2 * nsamp + 4) * 8));
            CK(cudaMemset(span, 0, (size_t)2 * grid * 8));
            CK(b1_coop(b1_flag_kernel, grid, 256, smem, 0, ctl, pr[0], pr[1], stream,
                       (const uint4 *)buf, n16, nsamp, warm, out, span));
            CK(cudaDeviceSynchronize());
            const unsigned e = read_err(B1_CTL(ctl, B1_ERR));
            std::vector<unsigned long long> o(2 * nsamp + 4), sp((size_t)2 * grid);
            CK(cudaMemcpy(o.data(), out, o.size() * 8, cudaMemcpyDeviceToHost));
            CK(cudaMemcpy(sp.data(), span, sp.size() * 8, cudaMemcpyDeviceToHost));
            if (e) {
                printf("| %d, %d | %s | TIMEOUT (error %u: 1 ponger or streamers never ready, 2/3 a "
                       "flag never came) | | | | | | |\n", pr[0], pr[1], stream ? "stream" : "idle", e);
                fails++;
                continue;
            }
            std::vector<double> rt(nsamp), cy(nsamp);
            for (int i = 0; i < nsamp; i++) rt[i] = (double)o[i], cy[i] = (double)o[nsamp + i];
            double tbs = 0.0;
            if (stream) {
                unsigned long long lo = ~0ull, hi = 0;
                for (int b = 0; b < grid; b++)
                    if (sp[2 * b]) lo = std::min(lo, sp[2 * b]), hi = std::max(hi, sp[2 * b + 1]);
                tbs = hi > lo ? (double)o[2 * nsamp + 2] / (double)(hi - lo) / 1e3 : 0.0;
            }
            const double cmed = pct(cy, 0.5);
            printf("| %d, %d | %s | %.0f | %.0f | %.1f | %.0f | %.0f (%.0f) | %llu | %.2f |\n", pr[0],
                   pr[1], stream ? "stream" : "idle", pct(rt, 0.5), pct(rt, 0.9),
                   (double)o[2 * nsamp + 1] / nsamp, pct(rt, 0.5) / 2, cmed,
                   clk_khz ? cmed / (clk_khz * 1e-6) : 0.0, o[2 * nsamp],
                   tbs);
        }
    printf("(round trip: red.release.gpu + ld.acquire.gpu spin each way; mean = loop span / samples, "
           "not quantised by the globaltimer step)\n");
    cudaFree(buf), cudaFree(ctl), cudaFree(out), cudaFree(span);
    return fails;
}

static int run_arrive(void) {
    const size_t smem = 100 * 1024;
    CK(cudaFuncSetAttribute(b1_arrive_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    b1_need_occ(b1_arrive_kernel, "arrive", 256, smem, 2);
    const int grid = 2 * g_sms, iters = 300, skip = 20;
    unsigned *ctl;
    unsigned long long *tw, *tg;
    CK(cudaMalloc(&ctl, B1_NCTL * B1_LINE * 4));
    CK(cudaMalloc(&tw, (size_t)2 * iters * 8));
    CK(cudaMalloc(&tg, (size_t)iters * grid * 8));
    int fails = 0;
    printf("\n| CTAs | counters | go -> last CTA saw go, median ns | p90 | go -> all arrivals seen, median | p90 | last go seen -> all arrivals seen, median | p90 |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int nsub : {1, 8}) {
        CK(cudaMemset(ctl, 0, B1_NCTL * B1_LINE * 4));
        CK(b1_coop(b1_arrive_kernel, grid, 256, smem, 0, ctl, iters, nsub, tw, tg));
        CK(cudaDeviceSynchronize());
        const unsigned e = read_err(B1_CTL(ctl, B1_ERR));
        if (e) {
            printf("| %d | %d | TIMEOUT (error %u) | | | | | |\n", grid, nsub, e);
            fails++;
            continue;
        }
        std::vector<unsigned long long> w((size_t)2 * iters), gg((size_t)iters * grid);
        CK(cudaMemcpy(w.data(), tw, w.size() * 8, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(gg.data(), tg, gg.size() * 8, cudaMemcpyDeviceToHost));
        std::vector<double> spread, total, tail;
        for (int it = skip; it < iters; it++) {
            const unsigned long long t0 = w[iters + it];
            unsigned long long last = 0;
            for (int b = 0; b < grid; b++) last = std::max(last, gg[(size_t)it * grid + b]);
            spread.push_back((double)(last - t0));
            total.push_back((double)w[it]);
            tail.push_back((double)w[it] - (double)(last - t0));
        }
        printf("| %d | %d | %.0f | %.0f | %.0f | %.0f | %.0f | %.0f |\n", grid, nsub, pct(spread, 0.5),
               pct(spread, 0.9), pct(total, 0.5), pct(total, 0.9), pct(tail, 0.5), pct(tail, 0.9));
    }
    printf("(thread 0 of each CTA; %d iterations, the first %d dropped; idle GPU)\n", iters, skip);
    cudaFree(ctl), cudaFree(tw), cudaFree(tg);
    return fails;
}

/* ---- dep host ---- */

static uint64_t g_rng = 0x1234567887654321ull;
static inline uint64_t xs64(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}
static float frand(void) { /* uniform in [-1, 1), never exactly 0 */
    float v = (float)((xs64() >> 40) & 0xffffff) / 8388608.0f - 1.0f;
    return v == 0.0f ? 0.5f : v;
}
static float hbits2f(uint16_t h) {
    const uint32_t s = (h >> 15) & 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 0x400), (int)e - 25);
    return s ? -v : v;
}
static uint16_t f2h(float f) { /* positive normal values only (scales) */
    int e;
    float m = frexpf(f, &e);
    uint32_t mant = (uint32_t)lrintf((m * 2.0f - 1.0f) * 1024.0f);
    int ex = e - 1 + 15;
    if (mant == 1024) mant = 0, ex++;
    return (uint16_t)((ex << 10) | mant);
}
/* A host copy of an N x K INT4 weight (G = 128) as gemv_w4.cu draws it: random nibbles, d in
 * [0.001, 0.02], z in 0..15. */
typedef struct hw4 {
    int N, K;
    std::vector<uint32_t> q4;
    std::vector<uint16_t> sc;
} hw4;
static void hw4_make(hw4 *m, int N, int K) {
    m->N = N, m->K = K;
    m->q4.resize((size_t)N * K / 8);
    m->sc.resize((size_t)N * (K / 128) * 2);
    for (auto &w : m->q4) w = (uint32_t)(xs64() >> 17);
    for (size_t g = 0; g < m->sc.size() / 2; g++) {
        m->sc[2 * g] = f2h(0.001f + 0.019f * (0.5f + 0.5f * frand()));
        m->sc[2 * g + 1] = (uint16_t)(0x6400 | (xs64() >> 60));
    }
}
/* Row n of m times x (double): sum and sum of |terms|. */
static void hw4_dot(const hw4 &m, long n, const float *x, double *s, double *a) {
    const int K = m.K;
    double ss = 0, aa = 0;
    for (int gi = 0; gi < K / 128; gi++) {
        const size_t g = (size_t)n * (K / 128) + gi;
        const double d = hbits2f(m.sc[2 * g]);
        const int z = (int)(m.sc[2 * g + 1] & 0xf);
        for (int j = 0; j < 16; j++) {
            const uint32_t w = m.q4[(size_t)n * (K / 8) + gi * 16 + j];
            for (int e = 0; e < 8; e++) {
                const int sh = (e & 1) ? 16 + 4 * (e >> 1) : 4 * (e >> 1);
                const double v = (double)((int)((w >> sh) & 0xf) - z) * d * x[gi * 128 + 8 * j + e];
                ss += v, aa += fabs(v);
            }
        }
    }
    *s = ss, *a = aa;
}

typedef void (*b1_launch_fn)(const b1_dep_params &, int, size_t);
template <int D, int DEP>
static void b1_dep_launch(const b1_dep_params &p, int grid, size_t smem) {
    CK(b1_coop(b1_dep_kernel<D, DEP>, grid, 32 * B1_NW, smem, 0, p));
}
template <int D, int DEP>
static void b1_dep_prepare(size_t smem) {
    CK(cudaFuncSetAttribute(b1_dep_kernel<D, DEP>, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem));
    char name[64];
    snprintf(name, sizeof name, "dep kernel D%d %s", D, DEP ? "dep" : "nodep");
    b1_need_occ(b1_dep_kernel<D, DEP>, name, 32 * B1_NW, smem, 2);
}

static int run_dep(void) {
    const int NA = 8192, K = 8192, NB = 28672, G = 128, NROT = 3;
    const int grid = 2 * g_sms;
    const int S = K / 128;
    const size_t xs_bytes = (size_t)S * sk_w4tc_dims<1, 1>::XB * 4;
    const size_t smem = std::max<size_t>(xs_bytes, B1_SMEM_MIN);
    b1_dep_prepare<2, 1>(smem);
    b1_dep_prepare<2, 0>(smem);
    b1_dep_prepare<3, 1>(smem);
    b1_dep_prepare<3, 0>(smem);
    const size_t a_bytes = (size_t)NA * K / 2 + (size_t)NA * (K / G) * 4;
    const size_t b_bytes = (size_t)2 * NB * K / 2 + (size_t)2 * NB * (K / G) * 4;
    printf("\ndep: A o-shaped %d x %d INT4 ADD (%.1f MB), B gate/up-shaped 2 x %d x %d SwiGLU, no norm "
           "(%.1f MB); %d workers (2 an SM, %zu B dynamic shared memory each); %d weight sets "
           "(%.0f MB) rotated\n", NA, K, a_bytes / 1e6, NB, K, b_bytes / 1e6, grid, smem, NROT,
           NROT * (a_bytes + b_bytes) / 1e6);

    /* weights: set 0 drawn on the host (the check's), the others on the device */
    hw4 ha, hb;
    hw4_make(&ha, NA, K);
    hw4_make(&hb, 2 * NB, K);
    std::vector<uint32_t *> qa(NROT), qb(NROT);
    std::vector<__half2 *> sa(NROT), sb(NROT);
    for (int r = 0; r < NROT; r++) {
        CK(cudaMalloc(&qa[r], (size_t)NA * K / 2));
        CK(cudaMalloc(&sa[r], (size_t)NA * (K / G) * 4));
        CK(cudaMalloc(&qb[r], (size_t)2 * NB * K / 2));
        CK(cudaMalloc(&sb[r], (size_t)2 * NB * (K / G) * 4));
        if (r == 0) {
            /* the device's q4 is tile-major (w4_layout.h; NA, 2 NB multiples of 16, K of 128) */
            std::vector<uint32_t> ta(sk_w4_words(NA, K)), tb(sk_w4_words(2 * NB, K));
            sk_w4_tile_host(ha.q4.data(), NA, K, ta.data());
            sk_w4_tile_host(hb.q4.data(), 2 * NB, K, tb.data());
            CK(cudaMemcpy(qa[0], ta.data(), ta.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(sa[0], ha.sc.data(), ha.sc.size() * 2, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(qb[0], tb.data(), tb.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(sb[0], hb.sc.data(), hb.sc.size() * 2, cudaMemcpyHostToDevice));
        } else {
            sk_w4_random_kernel<<<4096, 256>>>(qa[r], sa[r], G, NA, K, 0.01f, 100 + r);
            sk_w4_random_kernel<<<4096, 256>>>(qb[r], sb[r], G, 2 * NB, K, 0.01f, 200 + r);
            CK(cudaGetLastError());
        }
    }
    std::vector<float> hx(K), hy0(NA);
    for (auto &v : hx) v = frand();
    for (auto &v : hy0) v = frand();
    float *xa, *y, *f, *y0;
    unsigned *ctl;
    CK(cudaMalloc(&xa, (size_t)K * 4));
    CK(cudaMalloc(&y0, (size_t)NA * 4));
    CK(cudaMalloc(&y, (size_t)NA * 4));
    CK(cudaMalloc(&f, (size_t)NB * 4));
    CK(cudaMalloc(&ctl, B1_NCTL * B1_LINE * 4));
    CK(cudaMemset(ctl, 0, B1_NCTL * B1_LINE * 4));
    CK(cudaMemcpy(xa, hx.data(), (size_t)K * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(y0, hy0.data(), (size_t)NA * 4, cudaMemcpyHostToDevice));
    unsigned long long *trace;
    CK(cudaMalloc(&trace, (size_t)5 * grid * 8));
    const unsigned ntA = (unsigned)((NA + 31) / 32);
    unsigned cnt_base = 0; /* the counter's value before the next persistent launch */
    sk_pdl_set(true);

    struct {
        const char *name;
        b1_launch_fn fn; /* NULL: the per-op path */
        bool checked;
    } vers[] = {{"per-op: sk_w4_gemv_launch o ADD, then gate/up SwiGLU (PDL)", NULL, true},
                {"persistent D2 dep", b1_dep_launch<2, 1>, true},
                {"persistent D2 nodep (upper bound)", b1_dep_launch<2, 0>, false},
                {"persistent D3 dep", b1_dep_launch<3, 1>, true},
                {"persistent D3 nodep (upper bound)", b1_dep_launch<3, 0>, false}};
    const int NV = (int)(sizeof vers / sizeof vers[0]);
    auto call = [&](int v, int r, bool traced) {
        if (!vers[v].fn) {
            sk_w4_gemv_launch<SK_GEMV_ADD>(xa, 1, qa[r], sa[r], G, NULL, NA, K, y, 0);
            sk_w4_gemv_launch<SK_GEMV_SWIGLU>(y, 1, qb[r], sb[r], G, NULL, NB, K, f, 0);
            return;
        }
        b1_dep_params p;
        p.xa = xa, p.qa = qa[r], p.sa = sa[r], p.y = y, p.qb = qb[r], p.sb = sb[r], p.f = f;
        p.cnt = B1_CTL(ctl, B1_CNT), p.target = cnt_base + ntA, p.err = B1_CTL(ctl, B1_ERR);
        p.trace = traced ? trace : NULL;
        p.NA = NA, p.NB = NB, p.K = K;
        vers[v].fn(p, grid, smem);
        cnt_base += ntA;
    };

    /* 1. checks: every version once on set 0 from y = y0 */
    int fails = 0;
    std::vector<std::vector<float>> got_y(NV), got_f(NV);
    for (int v = 0; v < NV; v++) {
        CK(cudaMemcpy(y, y0, (size_t)NA * 4, cudaMemcpyDeviceToDevice));
        CK(cudaMemset(f, 0xff, (size_t)NB * 4)); /* NaN: an unwritten row fails */
        call(v, 0, false);
        CK(cudaGetLastError());
        CK(cudaDeviceSynchronize());
        got_y[v].resize(NA), got_f[v].resize(NB);
        CK(cudaMemcpy(got_y[v].data(), y, (size_t)NA * 4, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(got_f[v].data(), f, (size_t)NB * 4, cudaMemcpyDeviceToHost));
    }
    if (const unsigned e = read_err(B1_CTL(ctl, B1_ERR))) {
        printf("FAIL: TIMEOUT in a persistent check run (error %u: the counter never reached its "
               "target)\n", e);
        return 1;
    }
    printf("\n| check | version | worst err / magnitude | bitwise equal to per-op | result |\n| --- | --- | --- | --- | --- |\n");
    { /* y = y0 + A xa against a double reference */
        std::vector<double> ref(NA), mag(NA);
        for (int n = 0; n < NA; n++) {
            double s, a;
            hw4_dot(ha, n, hx.data(), &s, &a);
            ref[n] = s + hy0[n], mag[n] = a;
        }
        for (int v = 0; v < NV; v++) {
            if (!vers[v].checked) continue;
            double worst = 0;
            bool bad = false;
            int same = 0;
            for (int n = 0; n < NA; n++) {
                if (!std::isfinite(got_y[v][n])) bad = true;
                worst = std::max(worst, fabs(got_y[v][n] - ref[n]) / (mag[n] + 1e-20));
                same += got_y[v][n] == got_y[0][n];
            }
            bad = bad || !(worst <= 1e-5);
            fails += bad;
            printf("| y = y0 + A x vs double | %s | %.2e | %d / %d | %s |\n", vers[v].name, worst, same,
                   NA, bad ? "FAIL" : "ok");
        }
    }
    { /* f: persistent against per-op; magnitudes from a double pass over the per-op y */
        std::vector<double> mag(NB), ref(NB);
        for (int n = 0; n < NB; n++) {
            double s1, a1, s2, a2;
            hw4_dot(hb, n, got_y[0].data(), &s1, &a1);
            hw4_dot(hb, (long)n + NB, got_y[0].data(), &s2, &a2);
            mag[n] = a1 * fabs(s2) + fabs(s1) * a2;
            ref[n] = s1 / (1 + exp(-s1)) * s2;
        }
        for (int v = 0; v < NV; v++) {
            if (!vers[v].checked) continue;
            double worst = 0, worst_ref = 0;
            bool bad = false;
            int same = 0;
            for (int n = 0; n < NB; n++) {
                if (!std::isfinite(got_f[v][n])) bad = true;
                worst = std::max(worst, fabs((double)got_f[v][n] - got_f[0][n]) / (mag[n] + 1e-20));
                worst_ref = std::max(worst_ref, fabs(got_f[v][n] - ref[n]) / (mag[n] + 1e-20));
                same += got_f[v][n] == got_f[0][n];
            }
            bad = bad || !(worst <= 1e-5) || !(worst_ref <= 1e-5);
            fails += bad;
            printf("| f = silu(g) u vs per-op f (vs double: %.2e) | %s | %.2e | %d / %d | %s |\n",
                   worst_ref, vers[v].name, worst, same, NB, bad ? "FAIL" : "ok");
        }
    }

    /* 2. timing */
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    const double copy_tbs = copy_ceiling_tbs();
    std::vector<std::vector<float>> us(NV);
    int it = 0;
    for (int round = 0; round < 2; round++)
        for (int o = 0; o < NV; o++) {
            const int v = round ? NV - 1 - o : o;
            for (int b = 0; b < 12; b++) {
                CK(cudaEventRecord(e0));
                for (int i = 0; i < 10; i++) call(v, it++ % NROT, false);
                CK(cudaEventRecord(e1));
                CK(cudaEventSynchronize(e1));
                float ms;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                if (b >= 2) us[v].push_back(ms * 100.0f); /* us a call */
            }
            CK(cudaGetLastError());
        }
    if (const unsigned e = read_err(B1_CTL(ctl, B1_ERR))) {
        printf("FAIL: TIMEOUT in a timed persistent run (error %u)\n", e);
        fails++;
    }
    const double wb = (double)(a_bytes + b_bytes);
    std::vector<double> med(NV);
    printf("\n| version | us (median of 20 batches of 10) | weight GB/s | of copy | / per-op |\n| --- | --- | --- | --- | --- |\n");
    for (int v = 0; v < NV; v++) med[v] = median(us[v]);
    for (int v = 0; v < NV; v++)
        printf("| %s | %.2f | %.0f | %.1f%% | %.3f |\n", vers[v].name, med[v], wb / (med[v] * 1e-6) / 1e9,
               100.0 * wb / (med[v] * 1e-6) / (copy_tbs * 1e12), med[v] / med[0]);
    printf("RESULT b (bubble of one dependency) = t(dep) - t(nodep): D2 %.2f us, D3 %.2f us; "
           "per-op - dep: D2 %.2f us, D3 %.2f us\n", med[1] - med[2], med[3] - med[4],
           med[0] - med[1], med[0] - med[3]);

    /* 3. one traced call of each persistent version */
    printf("\n| traced | span us | A done (last A worker) us | wait median us | p90 | max | y split median us | B phase GB/s (B bytes / (end - last split)) |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int v = 1; v < NV; v++) {
        call(v, 0, true);
        CK(cudaDeviceSynchronize());
        std::vector<unsigned long long> tr((size_t)5 * grid);
        CK(cudaMemcpy(tr.data(), trace, tr.size() * 8, cudaMemcpyDeviceToHost));
        unsigned long long t0 = ~0ull, tend = 0, ta = 0, ts_last = 0;
        std::vector<double> wait, split;
        for (int b = 0; b < grid; b++) {
            const unsigned long long *r = &tr[(size_t)5 * b];
            t0 = std::min(t0, r[0]), tend = std::max(tend, r[4]);
            if (b < (int)ntA) ta = std::max(ta, r[1]);
            ts_last = std::max(ts_last, r[3]);
            wait.push_back((double)(r[2] - r[1]) * 1e-3);
            split.push_back((double)(r[3] - r[2]) * 1e-3);
        }
        printf("| %s | %.2f | %.2f | %.2f | %.2f | %.2f | %.2f | %.0f |\n", vers[v].name,
               (tend - t0) * 1e-3, (ta - t0) * 1e-3, pct(wait, 0.5), pct(wait, 0.9), pct(wait, 1.0),
               pct(split, 0.5), tend > ts_last ? b_bytes / ((tend - ts_last) * 1e-9) / 1e9 : 0.0);
    }
    printf("(globaltimer per worker; times from the first worker's start; wait = A done -> counter "
           "seen, for the nodep versions the time of no spin)\n");
    if (const unsigned e = read_err(B1_CTL(ctl, B1_ERR))) {
        printf("FAIL: TIMEOUT in a traced run (error %u)\n", e);
        fails++;
    }
    for (int r = 0; r < NROT; r++) cudaFree(qa[r]), cudaFree(sa[r]), cudaFree(qb[r]), cudaFree(sb[r]);
    cudaFree(xa), cudaFree(y0), cudaFree(y), cudaFree(f), cudaFree(ctl), cudaFree(trace);
    return fails;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    int dev = 0, coop = 0;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&g_sms, cudaDevAttrMultiProcessorCount, dev));
    CK(cudaDeviceGetAttribute(&coop, cudaDevAttrCooperativeLaunch, dev));
    if (!coop) {
        fprintf(stderr, "FAIL: the device has no cooperative launch\n");
        return 3;
    }
    printf("b1_stage0 %s: %d SMs\n", mode, g_sms);
    const bool all = strcmp(mode, "all") == 0;
    int fails = 0;
    bool known = all;
    if (all || strcmp(mode, "flag") == 0) fails += run_flag(), known = true;
    if (all || strcmp(mode, "arrive") == 0) fails += run_arrive(), known = true;
    if (all || strcmp(mode, "dep") == 0) fails += run_dep(), known = true;
    if (!known) {
        fprintf(stderr, "usage: %s [flag|arrive|dep|all]\n", argv[0]);
        return 2;
    }
    printf("RESULT: %s (%d failures)\n", fails ? "FAIL" : "PASS", fails);
    return fails ? 1 : 0;
}
