/* W4A16: INT4 weights (group-quantized, asymmetric, integer zero points: AWQ and RTN) for the
 * CUDA backend. Included by matmul.cu / backend.cu and by the workbench dev/cuda/gemv_w4.cu.
 *
 * Device layout of an N x K weight with group size G (32, 64 or 128), repacked on load from the
 * file's Q4G blocks (core/dtype.h) or drawn directly for synthetic models:
 *   q4  uint32 [N][K/8]: word j of row n holds elements 8j..8j+7, nibble order
 *       e0 e2 e4 e6 in bits 0-15 (4 bits each, low first) and e1 e3 e5 e7 in bits 16-31, so that
 *       (word >> 4p) & 0x000f000f holds (e_2p, e_2p+1) in the two 16-bit halves: OR-ing
 *       0x64006400 makes the half2 (1024 + e_2p, 1024 + e_2p+1) with one LOP3.
 *   q4s half2 [N][K/G]: (d, 1024 + z) per group: value = ((1024 + q) - (1024 + z)) * d, the
 *       subtraction exact in fp16 (integers below 2048).
 * Bytes per weight: 0.5 + 4/G (0.53 at G = 128).
 *
 * Kernels:
 *   sk_w4_gemv_kernel   decode (T <= 4 rows of x): memory-bound; one warp owns R rows, its lanes
 *                       take 16-byte chunks (32 weights) of each row; dequantized in registers
 *                       (LOP3 to half2, one HSUB2, then fp32), fp32 FMAs with x read in fp32
 *                       (shared across the R rows), fp32 accumulation; epilogues as gemv.cuh
 *                       (store, residual add, SwiGLU over [Wg; Wu]).
 *   sk_w4_dequant_kernel  INT4 -> half rows for larger T (then cuBLASLt on the half copy).
 *   sk_w4_embed_kernel  rows of an INT4 table to fp32 (an INT4 token embedding).
 *   sk_w4_random_kernel synthetic INT4 weights: random nibbles, z alternating 7/8 per group
 *                       (mean (q - z) ~ 0), d = std / 4.6 (the std of q - z). */
#ifndef SK_CUDA_W4_CUH
#define SK_CUDA_W4_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#include "backend/cuda/pdl.cuh"

#define SK_W4_WARPS 4
#ifndef SK_W4_KS
#define SK_W4_KS 4 /* warps of a block that split K for the same rows (1: none) */
#endif
#define SK_W4_MAX_T 4

/* (e_2p, e_2p+1) of word w as floats (exact small integers minus the zero point). */
static __device__ __forceinline__ float2 sk_w4_pair(uint32_t w, int p, __half2 zb) {
    const uint32_t h = ((w >> (4 * p)) & 0x000f000fu) | 0x64006400u;
    const __half2 v = __hsub2(*reinterpret_cast<const __half2 *>(&h), zb);
    return __half22float2(v);
}

/* grid: ceil(ceil(N_out / R) / SK_W4_WARPS) blocks of 32 * SK_W4_WARPS threads. G: group size
 * (a multiple of 32: one group per 16-byte chunk). SWIGLU: rows n (gate) and N_out + n (up). */
template <int T, int R, int U, int MODE, int KS>
__global__ void __launch_bounds__(32 * SK_W4_WARPS)
    sk_w4_gemv_kernel(const float *__restrict__ x, const uint32_t *__restrict__ q4,
                      const __half2 *__restrict__ q4s, int G, const float *__restrict__ bias,
                      int N_out, int K, float *__restrict__ out, int pf_bytes) {
    constexpr int NR = MODE == SK_GEMV_SWIGLU ? 2 * R : R;
    static_assert(SK_W4_WARPS % KS == 0, "KS divides the block's warps");
    __shared__ float red[KS > 1 ? SK_W4_WARPS : 1][T][NR];
    const int lane = threadIdx.x & 31, wib = threadIdx.x >> 5;
    /* KS warps share one group of R rows, each taking every KS-th chunk of 32 lanes (split-K
     * inside the block: KS times more warps in flight for the same rows), summed through shared
     * memory at the end. */
    const int slice = wib % KS;
    const int n0 = (blockIdx.x * (SK_W4_WARPS / KS) + wib / KS) * R;
    if (n0 >= N_out && KS == 1) return;
    const int K8 = K >> 3, KG = K / G, C = K >> 5; /* words per row, groups per row, chunks */
    const int gshift = G == 32 ? 0 : (G == 64 ? 1 : 2); /* chunks per group = 1 << gshift */
    int rows[NR];
#pragma unroll
    for (int r = 0; r < NR; r++) {
        int n = n0 + (r % R);
        if (n >= N_out) n = N_out - 1;
        if (MODE == SK_GEMV_SWIGLU && r >= R) n += N_out;
        rows[r] = n;
    }
    const bool live = n0 < N_out; /* a dead warp (KS > 1, past the last rows) still syncs */
    sk_pdl_trigger();
    if (live && pf_bytes > 0)
#pragma unroll
        for (int r = 0; r < NR; r++)
            sk_prefetch_l2(q4 + (size_t)rows[r] * K8, (size_t)pf_bytes, lane + 32 * slice, 32 * KS);
    sk_pdl_wait();
    float acc[T][NR];
#pragma unroll
    for (int t = 0; t < T; t++)
#pragma unroll
        for (int r = 0; r < NR; r++) acc[t][r] = 0.0f;

    for (int c0 = lane + 32 * U * slice; live && c0 < C; c0 += 32 * U * KS) {
        uint4 wv[U][NR];
        __half2 sc[U][NR];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + 32 * u;
#pragma unroll
            for (int r = 0; r < NR; r++) {
                if (c < C) {
                    wv[u][r] = __ldg(reinterpret_cast<const uint4 *>(q4 + (size_t)rows[r] * K8) + c);
                    sc[u][r] = q4s[(size_t)rows[r] * KG + (c >> gshift)];
                } else {
                    wv[u][r] = make_uint4(0, 0, 0, 0);
                    sc[u][r] = __floats2half2_rn(0.0f, 1024.0f);
                }
            }
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int c = c0 + 32 * u;
            if (c >= C) break;
#pragma unroll
            for (int t = 0; t < T; t++) {
                /* 32 x values of this chunk, shared by the R rows. */
                const float4 *xp = reinterpret_cast<const float4 *>(x + (size_t)t * K + (size_t)c * 32);
                float part[NR];
#pragma unroll
                for (int r = 0; r < NR; r++) part[r] = 0.0f;
#pragma unroll
                for (int i = 0; i < 4; i++) { /* word i: elements 8i..8i+7 */
                    const float4 xa = __ldg(xp + 2 * i), xb = __ldg(xp + 2 * i + 1);
                    const float xv[8] = {xa.x, xa.y, xa.z, xa.w, xb.x, xb.y, xb.z, xb.w};
#pragma unroll
                    for (int r = 0; r < NR; r++) {
                        const uint32_t w = i == 0 ? wv[u][r].x : i == 1 ? wv[u][r].y : i == 2 ? wv[u][r].z : wv[u][r].w;
                        const __half2 zb = __half2half2(__high2half(sc[u][r]));
#pragma unroll
                        for (int p = 0; p < 4; p++) {
                            const float2 q = sk_w4_pair(w, p, zb);
                            part[r] = fmaf(q.x, xv[2 * p], part[r]);
                            part[r] = fmaf(q.y, xv[2 * p + 1], part[r]);
                        }
                    }
                }
#pragma unroll
                for (int r = 0; r < NR; r++)
                    acc[t][r] = fmaf(part[r], __low2float(sc[u][r]), acc[t][r]);
            }
        }
    }
    sk_gemv_finish<T, R, NR, MODE, KS>(acc, red, lane, wib, slice, live, n0, N_out, bias, out);
}

/* Whether the W4 GEMV can take the product: T <= SK_W4_MAX_T, K % 32 == 0 (whole chunks; G is a
 * multiple of 32), x 16-byte aligned. */
static inline bool sk_w4_gemv_ok(int T, int K, const void *x) {
    return T >= 1 && T <= SK_W4_MAX_T && K % 32 == 0 && ((uintptr_t)x & 15) == 0;
}

/* R (rows per warp), U, and KS = 4 warps splitting K for the same rows. Measured with
 * dev/cuda/gemv_w4.cu on the H200 (bench/results/awq-speed.md): R8 U1 KS4 at T = 1 and 2 (70B
 * shapes at T = 1: 1.7-2.6 TB/s of INT4 bytes, 2.1-2.75x cuBLAS bf16; T = 2: R8 U1 1.1-1.5 TB/s
 * against 0.7-0.85 for R4 U2), R2 U2 above. A variant with the arithmetic in half2 (HFMA2 on
 * x / 16, about 40% fewer instructions) measured the same on 2026-11-29 and was removed: the
 * kernel is not bound by its instruction count alone. */
template <int T, int MODE>
static void sk_w4_gemv_launch_t(const float *x, const uint32_t *q4, const __half2 *q4s, int G,
                                const float *bias, int N_out, int K, float *out, cudaStream_t s) {
    constexpr int R = T <= 2 ? 8 : 2;
    constexpr int U = T <= 2 ? 1 : 2;
    constexpr int KS = SK_W4_KS;
    const int groups = (N_out + R - 1) / R;
    const unsigned blocks = (unsigned)((groups + SK_W4_WARPS / KS - 1) / (SK_W4_WARPS / KS));
    const size_t rows = (size_t)N_out * (MODE == SK_GEMV_SWIGLU ? 2 : 1), rb = (size_t)K / 2;
    size_t pf = SK_GEMV_PREFETCH_BYTES / rows;
    pf = pf > rb ? rb : pf & ~(size_t)127;
    if (!sk_pdl_enabled()) pf = 0;
    sk_launch_pdl(sk_w4_gemv_kernel<T, R, U, MODE, KS>, blocks, 32 * SK_W4_WARPS, s, x, q4, q4s, G,
                  bias, N_out, K, out, (int)pf);
}

template <int MODE>
static void sk_w4_gemv_launch(const float *x, int T, const uint32_t *q4, const __half2 *q4s, int G,
                              const float *bias, int N_out, int K, float *out, cudaStream_t s) {
    switch (T) {
    case 1: sk_w4_gemv_launch_t<1, MODE>(x, q4, q4s, G, bias, N_out, K, out, s); break;
    case 2: sk_w4_gemv_launch_t<2, MODE>(x, q4, q4s, G, bias, N_out, K, out, s); break;
    case 3: sk_w4_gemv_launch_t<3, MODE>(x, q4, q4s, G, bias, N_out, K, out, s); break;
    default: sk_w4_gemv_launch_t<4, MODE>(x, q4, q4s, G, bias, N_out, K, out, s); break;
    }
}

/* Element k of row n, dequantized (the reference every W4 kernel is checked against on the
 * device side too). */
static __device__ __forceinline__ float sk_w4_at(const uint32_t *q4, const __half2 *q4s, int G,
                                                 int K, int64_t n, int k) {
    const uint32_t w = q4[n * (K >> 3) + (k >> 3)];
    const int e = k & 7, sh = (e & 1) ? 16 + 4 * (e >> 1) : 4 * (e >> 1);
    const int q = (int)((w >> sh) & 0xf);
    const __half2 s = q4s[n * (K / G) + k / G];
    return (float)(q + 1024 - (int)__high2float(s)) * __low2float(s);
}

/* out [N][K] half (H = __nv_bfloat16 or __half) = dequantized rows; grid-stride over words. */
template <typename H>
__global__ void sk_w4_dequant_kernel(const uint32_t *__restrict__ q4, const __half2 *__restrict__ q4s,
                                     int G, int64_t N, int K, H *__restrict__ out) {
    const int K8 = K >> 3;
    const int64_t nw = N * K8;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nw;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t n = i / K8;
        const int j = (int)(i % K8);
        const uint32_t w = q4[i];
        const __half2 s = q4s[n * (K / G) + (j * 8) / G];
        const __half2 zb = __half2half2(__high2half(s));
        const float d = __low2float(s);
        /* Eight halves in one 16-byte store. */
        union {
            H h[8];
            uint4 u;
        } pk;
#pragma unroll
        for (int p = 0; p < 4; p++) {
            const float2 q = sk_w4_pair(w, p, zb);
            pk.h[2 * p] = (H)(q.x * d);
            pk.h[2 * p + 1] = (H)(q.y * d);
        }
        *reinterpret_cast<uint4 *>(out + n * K + (int64_t)j * 8) = pk.u;
    }
}

/* out[t][:] = row tokens[t] of the INT4 table, fp32. One block per row. */
static __global__ void sk_w4_embed_kernel(const uint32_t *__restrict__ q4, const __half2 *__restrict__ q4s,
                                   int G, int K, const int32_t *__restrict__ tokens,
                                   float *__restrict__ out) {
    const int t = blockIdx.x;
    const int64_t n = tokens[t];
    for (int k = threadIdx.x; k < K; k += blockDim.x)
        out[(size_t)t * K + k] = sk_w4_at(q4, q4s, G, K, n, k);
}

/* Counter-based hash to 32 random bits (independent of backend.h's generator: synthetic INT4
 * weights are drawn on the device only). */
static __device__ __forceinline__ uint32_t sk_w4_hash(uint64_t seed, uint64_t i) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return (uint32_t)((z ^ (z >> 31)) >> 16);
}

static __global__ void sk_w4_random_kernel(uint32_t *__restrict__ q4, __half2 *__restrict__ q4s, int G,
                                    int64_t N, int K, float d, uint64_t seed) {
    const int64_t nw = N * (K >> 3), ng = N * (K / G);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nw;
         i += (int64_t)gridDim.x * blockDim.x)
        q4[i] = sk_w4_hash(seed, (uint64_t)i);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < ng;
         i += (int64_t)gridDim.x * blockDim.x)
        q4s[i] = __floats2half2_rn(d, 1024.0f + (float)(7 + (i & 1)));
}

/* Host: one Q4G block row (dtype.h: f16 d, u8 z, u8 pad, u8 q[G/2], element 2j low nibble of
 * byte j) of K elements to the device layout: words [K/8] and scales [K/G]. */
static inline void sk_w4_repack_row(const uint8_t *src, int G, int K, uint32_t *words,
                                    uint16_t *scales /* [K/G][2] half bits */) {
    const int bb = 4 + G / 2;
    for (int g = 0; g < K / G; g++) {
        const uint8_t *b = src + (size_t)g * bb;
        scales[2 * g] = (uint16_t)(b[0] | (b[1] << 8)); /* d as stored (fp16 bits) */
        /* 1024 + z as fp16: exponent of 1024 (0x6400) with z in the mantissa's low bits. */
        scales[2 * g + 1] = (uint16_t)(0x6400 | (b[2] & 0xf));
        for (int j = 0; j < G / 8; j++) {
            uint32_t w = 0;
            for (int e = 0; e < 8; e++) {
                const int k = 8 * j + e; /* element within the group */
                const uint32_t q = (b[4 + k / 2] >> ((k & 1) * 4)) & 0xf;
                const int sh = (e & 1) ? 16 + 4 * (e >> 1) : 4 * (e >> 1);
                w |= q << sh;
            }
            words[(size_t)g * (G / 8) + j] = w;
        }
    }
}

#endif
