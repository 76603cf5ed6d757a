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
 *
 * Layout: one warp owns R output rows (SWIGLU: R gate rows n.. and the matching up rows F + n..),
 * its 32 lanes stride along K with 16-byte loads of W (8 halves) and two float4 loads of each x
 * row; U k-steps of loads are issued before their FMAs (bytes in flight per lane: 16 R U). Partial
 * sums stay in registers (T x R per lane, T x 2R for SWIGLU) and are reduced with shuffles at the
 * end. Needs K % 8 == 0, W 16-byte aligned (rows are then too) and x 16-byte aligned; the entry
 * (sk_cuda_gemv_ok) checks, and matmul falls back to cuBLASLt otherwise. */
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

/* grid: ceil(n_groups / SK_GEMV_WARPS) blocks of 32 * SK_GEMV_WARPS threads, n_groups =
 * ceil(N_out / R) where N_out = N (STORE/ADD) or F = N / 2 (SWIGLU). */
template <typename H, int T, int R, int U, int MODE, int KS = 1>
__global__ void __launch_bounds__(32 * SK_GEMV_WARPS)
    sk_gemv_kernel(const float *__restrict__ x, const H *__restrict__ w,
                   const float *__restrict__ bias, int N_out, int K, float *__restrict__ out,
                   int pf_bytes) {
    constexpr int NR = MODE == SK_GEMV_SWIGLU ? 2 * R : R; /* weight rows per warp */
    static_assert(SK_GEMV_WARPS % KS == 0, "KS divides the block's warps");
    __shared__ float red[KS > 1 ? SK_GEMV_WARPS : 1][T][NR];
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
    if (live && pf_bytes > 0)
#pragma unroll
        for (int r = 0; r < NR; r++) sk_prefetch_l2(wr[r], (size_t)pf_bytes, lane + 32 * slice, 32 * KS);
    sk_pdl_wait();
    float acc[T][NR];
#pragma unroll
    for (int t = 0; t < T; t++)
#pragma unroll
        for (int r = 0; r < NR; r++) acc[t][r] = 0.0f;

    const int K8 = K >> 3; /* 16-byte chunks per row */
    for (int c0 = lane + 32 * U * slice; live && c0 < K8; c0 += 32 * U * KS) {
        uint4 wv[U][NR];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + 32 * u;
#pragma unroll
            for (int r = 0; r < NR; r++)
                wv[u][r] = c < K8 ? __ldg(wr[r] + c) : make_uint4(0, 0, 0, 0);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + 32 * u;
            if (c >= K8) break;
#pragma unroll
            for (int t = 0; t < T; t++) {
                const float4 *xp = reinterpret_cast<const float4 *>(x + (size_t)t * K) + 2 * c;
                const float4 a = __ldg(xp), b = __ldg(xp + 1);
                const float xv[8] = {a.x, a.y, a.z, a.w, b.x, b.y, b.z, b.w};
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
    sk_gemv_finish<T, R, NR, MODE, KS>(acc, red, lane, wib, slice, live, n0, N_out, bias, out);
}

/* Rows up to which the backend uses the kernel: measured on the H200 (dev/cuda/gemv.cu,
 * bench/results/decode.md), it beats cast + cuBLASLt at T = 1 and 2 (R2 U2: 3.5-3.7 TB/s on 7B/70B
 * qkv against 2.7-3.0), but not from T = 4 on, where the fp32 x loads (32 bytes per 16 bytes of a
 * W row, per row of x) outgrow L1. */
#define SK_GEMV_BACKEND_MAX_T 2

/* Whether the backend's kernel can take this product (rows, shape, alignment); otherwise use
 * cuBLASLt. */
static inline bool sk_gemv_ok(int T, int K, const void *x, const void *w) {
    return T >= 1 && T <= SK_GEMV_BACKEND_MAX_T && K % 8 == 0 && ((uintptr_t)x & 15) == 0 &&
           ((uintptr_t)w & 15) == 0;
}

/* R (rows per warp) and U (k-steps in flight) by T: more rows per warp as T grows, so that each
 * x value loaded is used for more weights (x is fp32: 32 bytes per 16 bytes of one W row).
 * Chosen with dev/cuda/gemv.cu on the H200 (bench/results/decode.md): R2 U2 at T = 1, 2. */
template <typename H, int T, int MODE>
static void sk_gemv_launch_t(const float *x, const H *w, const float *bias, int N_out, int K,
                             float *out, cudaStream_t s) {
    constexpr int R = T <= 2 ? 2 : 4;
    constexpr int U = 2;
    const int groups = (N_out + R - 1) / R;
    /* Split K over the block's warps when the rows alone would leave SMs short of warps. */
    const size_t rows = (size_t)N_out * (MODE == SK_GEMV_SWIGLU ? 2 : 1), rb = (size_t)K * sizeof(H);
    size_t pf = SK_GEMV_PREFETCH_BYTES / rows;
    pf = pf > rb ? rb : pf & ~(size_t)127;
    if (!sk_pdl_enabled()) pf = 0;
    if (groups < 132 * 32) {
        constexpr int KS = SK_GEMV_WARPS;
        sk_launch_pdl(sk_gemv_kernel<H, T, R, U, MODE, KS>, (unsigned)groups, 32 * SK_GEMV_WARPS, s,
                      x, w, bias, N_out, K, out, (int)pf);
        return;
    }
    const unsigned blocks = (unsigned)((groups + SK_GEMV_WARPS - 1) / SK_GEMV_WARPS);
    sk_launch_pdl(sk_gemv_kernel<H, T, R, U, MODE, 1>, blocks, 32 * SK_GEMV_WARPS, s, x, w, bias,
                  N_out, K, out, (int)pf);
}

/* out = x W^T in mode MODE; N_out = rows of W (STORE/ADD) or half of them (SWIGLU). */
template <typename H, int MODE>
static void sk_gemv_launch(const float *x, int T, const H *w, const float *bias, int N_out, int K,
                           float *out, cudaStream_t s) {
    switch (T) {
    case 1: sk_gemv_launch_t<H, 1, MODE>(x, w, bias, N_out, K, out, s); break;
    case 2: sk_gemv_launch_t<H, 2, MODE>(x, w, bias, N_out, K, out, s); break;
    case 3: sk_gemv_launch_t<H, 3, MODE>(x, w, bias, N_out, K, out, s); break;
    case 4: sk_gemv_launch_t<H, 4, MODE>(x, w, bias, N_out, K, out, s); break;
    case 5: sk_gemv_launch_t<H, 5, MODE>(x, w, bias, N_out, K, out, s); break;
    case 6: sk_gemv_launch_t<H, 6, MODE>(x, w, bias, N_out, K, out, s); break;
    case 7: sk_gemv_launch_t<H, 7, MODE>(x, w, bias, N_out, K, out, s); break;
    default: sk_gemv_launch_t<H, 8, MODE>(x, w, bias, N_out, K, out, s); break;
    }
}

#endif
