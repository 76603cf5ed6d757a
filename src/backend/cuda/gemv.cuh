/* Skinny matmul (GEMV) for decode: out[T, N] (fp32) = x[T, K] (fp32) @ W[N, K]^T (half) with
 * T <= 8 rows, memory-bound on W. Included by matmul.cu (the backend) and dev/cuda/gemv.cu (the
 * workbench), so both build the very same kernels.
 *
 * Why a kernel of our own: at T = 1..8 a step reads every weight once and does 2T FLOPs per
 * weight, so only W's bytes per second matter. cuBLASLt needs its input in the half type (a cast
 * kernel before every matmul) and adds a launch per residual add and per SwiGLU; at batch 1 those
 * extra launches, not the bytes, are what keeps a 7B model far from the copy rate. This kernel
 * reads x in fp32 directly (the rows are tiny and stay in L1/L2) and fuses the epilogues:
 *   SK_GEMV_STORE   out  = x W^T (+ bias)
 *   SK_GEMV_ADD     out += x W^T (+ bias)            (the residual add of o_proj / down_proj)
 *   SK_GEMV_SWIGLU  out  = silu(x Wg^T) * (x Wu^T)   (W = [Wg; Wu], [2F, K]; out [T, F])
 * and, with gamma != NULL (NORM), the RMSNorm before the product: x is replaced by
 * rmsnorm(x) = x * gamma / sqrt(mean(x^2) + eps). Since 1/rms is one scalar per row of x, each
 * warp multiplies x by gamma as it loads it, sums x^2 over the same K-chunks as the products, and
 * scales its partial sums by 1/rms at the end; the norm costs no launch and no pass of its own
 * (the norm kernel it replaces was 2 of 13 launches per layer at batch 1).
 *
 * Layout: one warp owns R output rows (SWIGLU: R gate rows n.. and the matching up rows F + n..),
 * its 32 lanes stride along K with 16-byte loads of W (8 halves) and two float4 loads of each x
 * row; U k-steps of loads are issued before their FMAs (bytes in flight per lane: 16 R U; PIPE:
 * the next U steps are issued before the current ones' FMAs). KS warps of a block may split K
 * for the same rows (many short blocks: a short tail). Partial sums stay in registers (T x R per
 * lane, T x 2R for SWIGLU) and are reduced with shuffles at the end. The backend picks (R, U,
 * PIPE, KS) per product from a few measured configurations (sk_gemv_pick). Needs K % 8 == 0, W
 * 16-byte aligned (rows are then too) and x 16-byte aligned; the entry (sk_gemv_ok) checks, and
 * matmul falls back to cuBLASLt otherwise. All kernels are launched with PDL (pdl.cuh). */
#ifndef SK_CUDA_GEMV_CUH
#define SK_CUDA_GEMV_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "backend/cuda/pdl.cuh"

#define SK_GEMV_MAX_T 8
#define SK_GEMV_WARPS 4 /* warps per block */

/* 8 halves packed in a uint4 -> 8 floats. */
static __device__ __forceinline__ void sk_gemv_unpack8(uint4 u, float *f, const __nv_bfloat16 *) {
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        /* bf16 -> fp32 is a 16-bit shift. */
        f[2 * i] = __uint_as_float(w[i] << 16);
        f[2 * i + 1] = __uint_as_float(w[i] & 0xffff0000u);
    }
}
static __device__ __forceinline__ void sk_gemv_unpack8(uint4 u, float *f, const __half *) {
    const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
    for (int i = 0; i < 4; i++) {
        __half2 h = *reinterpret_cast<const __half2 *>(&w[i]);
        float2 v = __half22float2(h);
        f[2 * i] = v.x;
        f[2 * i + 1] = v.y;
    }
}

/* U k-steps of the NR rows' 16-byte chunks from chunk c0 on (lane stride 32; zeros past K8). */
template <int U, int NR>
static __device__ __forceinline__ void sk_gemv_load(uint4 (&wv)[U][NR], const uint4 *const (&wr)[NR],
                                                    int c0, int K8) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int c = c0 + 32 * u;
#pragma unroll
        for (int r = 0; r < NR; r++) wv[u][r] = c < K8 ? __ldg(wr[r] + c) : make_uint4(0, 0, 0, 0);
    }
}

/* acc[t][r] += x[t, chunk] . W[r, chunk] for the U chunks loaded from c0 (NORM: x * gamma, and
 * ss[t] += x^2). */
template <typename H, int T, int U, int NR, bool NORM>
static __device__ __forceinline__ void sk_gemv_fma(float (&acc)[T][NR], float (&ss)[T],
                                                   const uint4 (&wv)[U][NR], const float *x,
                                                   const float *gamma, int c0, int K, int K8) {
#pragma unroll
    for (int u = 0; u < U; u++) {
        const int c = c0 + 32 * u;
        if (c >= K8) break;
        float gv[8];
        if (NORM) {
            const float4 *gp = reinterpret_cast<const float4 *>(gamma) + 2 * c;
            const float4 a = __ldg(gp), b = __ldg(gp + 1);
            gv[0] = a.x, gv[1] = a.y, gv[2] = a.z, gv[3] = a.w;
            gv[4] = b.x, gv[5] = b.y, gv[6] = b.z, gv[7] = b.w;
        }
#pragma unroll
        for (int t = 0; t < T; t++) {
            const float4 *xp = reinterpret_cast<const float4 *>(x + (size_t)t * K) + 2 * c;
            const float4 a = __ldg(xp), b = __ldg(xp + 1);
            float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
            if (NORM)
#pragma unroll
                for (int i = 0; i < 8; i++) {
                    ss[t] = fmaf(xv[i], xv[i], ss[t]);
                    xv[i] *= gv[i];
                }
#pragma unroll
            for (int r = 0; r < NR; r++) {
                float wf[8];
                sk_gemv_unpack8(wv[u][r], wf, (const H *)nullptr);
#pragma unroll
                for (int i = 0; i < 8; i++) acc[t][r] = fmaf(xv[i], wf[i], acc[t][r]);
            }
        }
    }
}

/* grid: ceil(n_groups * KS / SK_GEMV_WARPS) blocks of 32 * SK_GEMV_WARPS threads, n_groups =
 * ceil(N_out / R) where N_out = N (STORE/ADD) or F = N / 2 (SWIGLU).
 * PIPE: the next U k-steps' loads are issued before the current ones' FMAs (two sets of
 * registers, so a warp always has loads in flight), and the first set before
 * griddepcontrol.wait (weights never depend on the previous kernel: under PDL they stream while
 * it finishes). Without PIPE a step's loads are issued, then used; pf_bytes of each row are
 * prefetched into L2 before the wait instead. */
template <typename H, int T, int R, int U, int MODE, int KS = 1, bool NORM = false,
          bool PIPE = false>
__global__ void __launch_bounds__(32 * SK_GEMV_WARPS)
    sk_gemv_kernel(const float *__restrict__ x, const H *__restrict__ w,
                   const float *__restrict__ bias, int N_out, int K, float *__restrict__ out,
                   int pf_bytes, const float *__restrict__ gamma, float eps) {
    constexpr int NR = MODE == SK_GEMV_SWIGLU ? 2 * R : R; /* weight rows per warp */
    static_assert(SK_GEMV_WARPS % KS == 0, "KS divides the block's warps");
    __shared__ float red[KS > 1 ? SK_GEMV_WARPS : 1][T][NR];
    __shared__ float ssr[NORM && KS > 1 ? SK_GEMV_WARPS : 1][T]; /* NORM: sums of x^2 by warp */
    const int lane = threadIdx.x & 31, wib = threadIdx.x >> 5;
    /* KS warps share one group of R rows and split K (every KS-th step of 32 lanes), summed
     * through shared memory: more warps in flight for matrices with few rows. */
    const int slice = wib % KS;
    const int n0 = (blockIdx.x * (SK_GEMV_WARPS / KS) + wib / KS) * R;
    if (n0 >= N_out && KS == 1) return;
    const bool live = n0 < N_out;
    sk_pdl_trigger();
    /* Row pointers; rows past the end repeat the last valid row (loaded, never stored). */
    const uint4 *wr[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) {
        int n = n0 + (r % R);
        if (n >= N_out) n = N_out - 1;
        if (MODE == SK_GEMV_SWIGLU && r >= R) n += N_out; /* the up half */
        wr[r] = reinterpret_cast<const uint4 *>(w + (size_t)n * K);
    }
    float acc[T][NR], ss[T];
#pragma unroll
    for (int t = 0; t < T; t++) {
        ss[t] = 0.0f;
#pragma unroll
        for (int r = 0; r < NR; r++) acc[t][r] = 0.0f;
    }
    const int K8 = K >> 3; /* 16-byte chunks per row */
    const int step = 32 * U * KS;
    int c0 = lane + 32 * U * slice;
    if (PIPE) {
        uint4 wv[U][NR];
        if (live) sk_gemv_load<U, NR>(wv, wr, c0, K8);
        sk_pdl_wait();
        for (; live && c0 < K8; c0 += step) {
            uint4 nx[U][NR];
            sk_gemv_load<U, NR>(nx, wr, c0 + step, K8);
            sk_gemv_fma<H, T, U, NR, NORM>(acc, ss, wv, x, gamma, c0, K, K8);
#pragma unroll
            for (int u = 0; u < U; u++)
#pragma unroll
                for (int r = 0; r < NR; r++) wv[u][r] = nx[u][r];
        }
    } else {
        if (live && pf_bytes > 0)
#pragma unroll
            for (int r = 0; r < NR; r++)
                sk_prefetch_l2(wr[r], (size_t)pf_bytes, lane + 32 * slice, 32 * KS);
        sk_pdl_wait();
        for (; live && c0 < K8; c0 += step) {
            uint4 wv[U][NR];
            sk_gemv_load<U, NR>(wv, wr, c0, K8);
            sk_gemv_fma<H, T, U, NR, NORM>(acc, ss, wv, x, gamma, c0, K, K8);
        }
    }
    if (NORM) {
        /* The whole row's sum of x^2: over the warp's lanes, then over the KS warps that split
         * K (every warp of the block gets here: the barrier is unconditional). */
#pragma unroll
        for (int t = 0; t < T; t++)
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) ss[t] += __shfl_xor_sync(0xffffffffu, ss[t], o);
        if (KS > 1) {
            if (lane == 0)
#pragma unroll
                for (int t = 0; t < T; t++) ssr[wib][t] = ss[t];
            __syncthreads();
#pragma unroll
            for (int t = 0; t < T; t++) {
                float v = 0.0f;
#pragma unroll
                for (int k = 0; k < KS; k++) v += ssr[wib - slice + k][t];
                ss[t] = v;
            }
        }
        /* The CPU reference's formula: 1 / sqrt(mean + eps). */
#pragma unroll
        for (int t = 0; t < T; t++) {
            const float inv = 1.0f / sqrtf(ss[t] / (float)K + eps);
#pragma unroll
            for (int r = 0; r < NR; r++) acc[t][r] *= inv;
        }
    }
    sk_gemv_finish<T, R, NR, MODE, KS>(acc, red, lane, wib, slice, live, n0, N_out, bias, out);
}

/* Rows up to which the backend uses the kernel: measured on the H200 (dev/cuda/gemv.cu,
 * bench/results/decode.md), it beats cast + cuBLASLt at T = 1 and 2 (R2 U2: 3.5-3.7 TB/s on 7B/70B
 * qkv against 2.7-3.0), but not from T = 4 on, where the fp32 x loads (32 bytes per 16 bytes of a
 * W row, per row of x) outgrow L1. */
#define SK_GEMV_BACKEND_MAX_T 2

/* Whether the backend's kernel can take this product (rows, shape, alignment); otherwise use
 * cuBLASLt. gamma (the fused RMSNorm's weight, or NULL) needs 16 bytes too. */
static inline bool sk_gemv_ok(int T, int K, const void *x, const void *w,
                              const void *gamma = nullptr) {
    return T >= 1 && T <= SK_GEMV_BACKEND_MAX_T && K % 8 == 0 && ((uintptr_t)x & 15) == 0 &&
           ((uintptr_t)w & 15) == 0 && ((uintptr_t)gamma & 15) == 0;
}

/* L2 bytes the non-PIPE kernel prefetches before its griddepcontrol.wait (PDL only): none unless
 * SAKER_GEMV_PF_MB says otherwise. Measured on the H200 (dev/cuda/gemv.cu chain, the 7B step's
 * GEMVs in one graph, 2026-11-29): 3.822 ms with none, 3.828 with 8 MB, 3.977 with 24 MB, 4.129
 * with 40 MB: the prefetched lines cost more than they save (read twice, or taken from the
 * kernel still running). */
static inline long long *sk_gemv_pf_mb(void) { /* -2: not read yet; -1: the default */
    static long long mb = -2;
    return &mb;
}
static inline size_t sk_gemv_pf_budget(void) {
    long long *mb = sk_gemv_pf_mb();
    if (*mb == -2) {
        const char *e = getenv("SAKER_GEMV_PF_MB");
        *mb = e && *e ? atoll(e) : -1;
    }
    return *mb < 0 ? 0 : (size_t)*mb << 20;
}

/* Launch configurations at T = 1 and 2 (the backend's rows), by id: R rows per warp, U k-steps
 * in flight, PIPE (see the kernel); each with KS = 1 or 4 warps splitting K. Chosen per product by
 * sk_gemv_pick; T = 2 takes ids 0 and 1 only. */
#define SK_GEMV_NCFG 5
static const int sk_gemv_cfg_r[SK_GEMV_NCFG] = {2, 2, 2, 1, 4};
static const int sk_gemv_cfg_u[SK_GEMV_NCFG] = {2, 2, 4, 4, 2};
static const int sk_gemv_cfg_pipe[SK_GEMV_NCFG] = {0, 1, 1, 1, 1};

template <typename H, int T, int R, int U, int MODE, int KS, bool NORM, bool PIPE>
static void sk_gemv_go(const float *x, const H *w, const float *bias, int N_out, int K, float *out,
                       const float *gamma, float eps, cudaStream_t s) {
    const int groups = (N_out + R - 1) / R;
    const size_t rows = (size_t)N_out * (MODE == SK_GEMV_SWIGLU ? 2 : 1), rb = (size_t)K * sizeof(H);
    size_t pf = PIPE || !sk_pdl_enabled() ? 0 : sk_gemv_pf_budget() / rows;
    pf = pf > rb ? rb : pf & ~(size_t)127;
    const unsigned blocks =
        (unsigned)(((size_t)groups * KS + SK_GEMV_WARPS - 1) / SK_GEMV_WARPS);
    sk_launch_pdl(sk_gemv_kernel<H, T, R, U, MODE, KS, NORM, PIPE>, blocks, 32 * SK_GEMV_WARPS, s,
                  x, w, bias, N_out, K, out, (int)pf, gamma, eps);
}

/* The kernel of configuration (id, ks) for T rows (T <= 2). */
template <typename H, int T, int MODE, bool NORM>
static void sk_gemv_launch_cfg(int id, int ks, const float *x, const H *w, const float *bias,
                               int N_out, int K, float *out, const float *gamma, float eps,
                               cudaStream_t s) {
    static_assert(T <= 2, "configurations for the backend's rows");
#define SK_GEMV_GO(R, U, P, KS)                                                                    \
    sk_gemv_go<H, T, R, U, MODE, KS, NORM, P>(x, w, bias, N_out, K, out, gamma, eps, s)
    const bool k4 = ks > 1;
    if (T == 2 && id > 1) id = 1;
    switch (id) {
    case 0: k4 ? SK_GEMV_GO(2, 2, false, 4) : SK_GEMV_GO(2, 2, false, 1); break;
    case 1: k4 ? SK_GEMV_GO(2, 2, true, 4) : SK_GEMV_GO(2, 2, true, 1); break;
    case 2:
        if constexpr (T == 1) { k4 ? SK_GEMV_GO(2, 4, true, 4) : SK_GEMV_GO(2, 4, true, 1); }
        break;
    case 3:
        if constexpr (T == 1) { k4 ? SK_GEMV_GO(1, 4, true, 4) : SK_GEMV_GO(1, 4, true, 1); }
        break;
    default:
        if constexpr (T == 1) { k4 ? SK_GEMV_GO(4, 2, true, 4) : SK_GEMV_GO(4, 2, true, 1); }
        break;
    }
#undef SK_GEMV_GO
}

/* SAKER_GEMV_CFG (measurements): "m:N:K=id/ks;..." entries (m: s store, a add, w swiglu; N the
 * output rows N_out; "*" for m:N:K matches every product) override sk_gemv_pick at T = 1. */
typedef struct sk_gemv_override {
    char m;
    int n, k, id, ks;
} sk_gemv_override;
static inline int sk_gemv_overrides(const sk_gemv_override **out) {
    static sk_gemv_override t[16];
    static int n = -1;
    if (n < 0) {
        n = 0;
        const char *e = getenv("SAKER_GEMV_CFG");
        while (e && *e && n < 16) {
            sk_gemv_override o = {'*', 0, 0, 0, 1};
            int used = 0;
            if (e[0] == '*' && sscanf(e, "*=%d/%d%n", &o.id, &o.ks, &used) == 2) {
                t[n++] = o;
            } else if (sscanf(e, "%c:%d:%d=%d/%d%n", &o.m, &o.n, &o.k, &o.id, &o.ks, &used) == 5) {
                t[n++] = o;
            } else {
                fprintf(stderr, "saker: SAKER_GEMV_CFG: cannot parse '%s'\n", e);
                break;
            }
            e += used;
            if (*e == ';') e++;
        }
    }
    *out = t;
    return n;
}

/* The configuration for a product (T <= 2): SAKER_GEMV_CFG, else the rule measured on the H200
 * (dev/cuda/gemv.cu tune, bench/results/decode.md 2026-11-29 session 4; us per product, 32 back
 * to back in a graph under PDL, the rule before this session -> this one):
 *   T = 1, 16..48 MB (7B o 4096x4096, 33.6 MB): R2 U2 PIPE, KS 1 (12.12 -> 10.77 us): few blocks
 *          of long rows, each warp always with loads in flight;
 *   T = 1, larger, ADD with >= 4096 groups of 2 rows (70B o 8192x8192, down 8192x28672): the
 *          same (70B o 37.19 -> 34.46 us, down 115.38 -> 114.76; R4 U2 PIPE KS 4: 36.64, 120.93);
 *   T = 1, larger, other ADD (7B down 4096x11008): R4 U2 PIPE, KS 4 (25.86 -> 25.20 us);
 *   T = 1, larger, STORE and SwiGLU (7B qkv, gate/up; 70B qkv, gate/up): R2 U2, KS 4 (31.46 ->
 *          27.15, 48.39 -> 43.74; 70B 41.65 -> 41.63, 220.21 -> 212.86 us): K split over the
 *          block's warps, so many short blocks and a short tail, rather than one wave of long
 *          ones. (R4 U2 PIPE KS 4 ties on 7B qkv alone, 27.15 us, but its 7B step's GEMVs took
 *          3.514 ms in one graph against 3.455 with R2 U2.)
 *   otherwise (T = 2, small matrices): R2 U2, KS 4 when the rows alone leave SMs short of warps
 *          (the rule before, not measured again). */
static inline void sk_gemv_pick(int MODE, int T, int N_out, int K, int *id, int *ks) {
    const int groups = (N_out + 1) / 2;
    const double mb = (double)N_out * (MODE == SK_GEMV_SWIGLU ? 2 : 1) * K * 2 / 1048576.0;
    *id = 0;
    *ks = groups < 132 * 32 ? 4 : 1;
    if (T != 1) return;
    if ((mb >= 16 && mb <= 48) || (mb > 48 && MODE == SK_GEMV_ADD && groups >= 4096))
        *id = 1, *ks = 1;
    else if (mb > 48)
        *id = MODE == SK_GEMV_ADD ? 4 : 0, *ks = 4;
    const sk_gemv_override *o;
    const int n = sk_gemv_overrides(&o);
    const char m = MODE == SK_GEMV_STORE ? 's' : MODE == SK_GEMV_ADD ? 'a' : 'w';
    for (int i = 0; i < n; i++)
        if (o[i].m == '*' || (o[i].m == m && o[i].n == N_out && o[i].k == K)) {
            *id = o[i].id >= 0 && o[i].id < SK_GEMV_NCFG ? o[i].id : 0;
            *ks = o[i].ks > 1 ? 4 : 1;
            return;
        }
}

template <typename H, int MODE, bool NORM>
static void sk_gemv_launch_n(const float *x, int T, const H *w, const float *bias, int N_out,
                             int K, float *out, const float *gamma, float eps, cudaStream_t s) {
    int id, ks;
    sk_gemv_pick(MODE, T, N_out, K, &id, &ks);
    if (T == 1)
        sk_gemv_launch_cfg<H, 1, MODE, NORM>(id, ks, x, w, bias, N_out, K, out, gamma, eps, s);
    else
        sk_gemv_launch_cfg<H, 2, MODE, NORM>(id, ks, x, w, bias, N_out, K, out, gamma, eps, s);
}

/* out = x W^T in mode MODE for T <= SK_GEMV_BACKEND_MAX_T rows; N_out = rows of W (STORE/ADD) or
 * half of them (SWIGLU). With gamma (16-byte aligned fp32 [K]), x is first RMS-normalised with
 * weight gamma and eps (NORM). */
template <typename H, int MODE>
static void sk_gemv_launch(const float *x, int T, const H *w, const float *bias, int N_out, int K,
                           float *out, cudaStream_t s, const float *gamma = nullptr,
                           float eps = 0.0f) {
    if (T < 1 || T > SK_GEMV_BACKEND_MAX_T) {
        fprintf(stderr, "saker: sk_gemv_launch: T = %d outside 1..%d\n", T, SK_GEMV_BACKEND_MAX_T);
        abort();
    }
    if constexpr (MODE == SK_GEMV_ADD) { /* the norm goes before a projection, not a residual */
        if (gamma) {
            fprintf(stderr, "saker: sk_gemv_launch: no fused norm in the ADD mode\n");
            abort();
        }
        sk_gemv_launch_n<H, MODE, false>(x, T, w, bias, N_out, K, out, nullptr, 0.0f, s);
    } else {
        if (gamma)
            sk_gemv_launch_n<H, MODE, true>(x, T, w, bias, N_out, K, out, gamma, eps, s);
        else
            sk_gemv_launch_n<H, MODE, false>(x, T, w, bias, N_out, K, out, nullptr, 0.0f, s);
    }
}

#endif
