/* FP8 (e4m3) wgmma and cuBLASLt FP8 on the H200: step 0 of dev/notes/w4a8_design.md (section 5),
 * kernel workbench (STYLE.md 1). Measures the hardware facts the W4A8 plan depends on; no engine
 * code changes.
 *
 * Build and run from the repository root (or the CMake target dev_fp8_probe):
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -lineinfo -lcublasLt \
 *        -Isrc -o /tmp/fp8_probe dev/cuda/fp8_probe.cu
 *   /tmp/fp8_probe exact | acc | rate [seconds=20] [warpgroups=2] | lt [f32|bf16]
 * SASS check: cuobjdump -sass /tmp/fp8_probe | grep -c QGMMA (fp8 wgmma; HGMMA for the bf16 one).
 *
 * Shared-memory layout of every wgmma operand here (A in the SS form, B always): K-major, one
 * 128-byte row per M (A) or N (B) index holding 128 consecutive e4m3 K values (64 bf16 in `rate`),
 * the 16-byte chunk c of row r stored at chunk c ^ (r & 7) (128-byte swizzle), tiles 1024-byte
 * aligned, 8-row atoms 1024 bytes apart: descriptor sk_wg_desc(tile + 32 s, 16, 1024) for k32
 * slice s (k16 for bf16), exactly the x tile of w4_mma.cuh's sk_w4g_kernel (a k32 e4m3 slice is 32
 * bytes a row, as a k16 bf16 one). A in registers (RS form): the m16n8k32 8-bit A fragment per
 * warp w of the warpgroup, lane g = lane / 4, q = lane % 4: a0 = row 16w+g, K 4q..4q+3 (lowest
 * byte = lowest K), a1 = row 16w+g+8 same K, a2 = row 16w+g K 16+4q.., a3 = row 16w+g+8 K 16+4q...
 * Accumulator d[4 jn + e]: row 16w + g + 8 (e >> 1), column 8 jn + 2q + (e & 1).
 *
 * subcommands:
 *   exact  CPU e4m3 decode self-check (all 256 codes against cuda_fp8.h on host and device, NaN =
 *          0x7F/0xFF); then one warpgroup, m64n64k32 e4m3 x e4m3 -> f32, K = 128 (4 chained
 *          wgmmas), RS and SS: (1) one-hot products (every output one product a * b; A rows:
 *          the INT4 nibble bytes 0x00-0x0F = q 2^-9 and their negatives, random normal bytes; B
 *          columns normal, subnormal, large, any) checked exactly per class; (2) random dots (A
 *          nibbles or normal, B 3/4 normal 1/4 subnormal) against double with subnormals kept
 *          and with A / B / both subnormals flushed: the closest model tells what the chip does.
 *   acc    accumulator width: (1) big + small probe: a product 2^16 and a product 2^(16-d)
 *          (significand 1 or 1.75, +/-) in one wgmma ("within") or in the next one of the
 *          chain ("across": added to the fp32 accumulator), the fraction of the small term kept
 *          per d; (2) random e4m3 dots, K = 128 .. 28,672: one accumulator over all the chain vs
 *          a partial promoted into fp32 registers every 128 of K, error vs double normalised by
 *          sum |a b|, next to a plain fp32 sequential sum on the CPU (the naive peer).
 *   rate   persistent SS loops of m64n256k32 e4m3 and m64n256k16 bf16 (same 40 KB of random
 *          shared-memory operands, `warpgroups` per block, one block per SM), ~100 ms launches
 *          for `seconds` each; TFLOP/s from the issued instruction count over CUDA-event time,
 *          per second and overall, with wall-clock marks to join nvidia-smi samples.
 *   lt     cuBLASLt FP8 e4m3 TN GEMM (CUBLAS_COMPUTE_32F, D fp32 or bf16) against cuBLASLt bf16 on
 *          the Llama-2-70B shapes at M = 1152, 2048, 16384 rows: per-tensor scales (fast
 *          accumulation off and on), OUTER_VEC_32F row/column scales, VEC128_32F, and
 *          BLK128x128_32F weights with VEC128_32F activations; each mode checked against the bf16
 *          result of the same (exactly representable) data, "unsupported" where cuBLASLt refuses;
 *          medians of >= 10 runs. */
#include "backend/cuda/wgmma.cuh"
#include "bench_util.cuh"

#include <cublasLt.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <algorithm>
#include <vector>

static uint64_t g_rng = 0x9E3779B97F4A7C15ull;
static uint64_t next_rng(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}
static int rnd(int n) { return (int)((next_rng() >> 33) % (uint64_t)n); }

/* ---- e4m3 on the CPU ------------------------------------------------------------------------- */

/* e4m3 (OCP "fn": no infinities) byte -> value: S EEEE MMM, bias 7; E = 0 subnormal m 2^-9; S 1111
 * 111 NaN (the only NaNs); max 0x7E = 448. */
static double e4m3_val(uint8_t b) {
    const int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7) return NAN;
    const double v = e == 0 ? ldexp((double)m, -9) : ldexp((double)(8 + m), e - 10);
    return s ? -v : v;
}
enum { E4_ZERO, E4_SUB, E4_NORMAL, E4_NAN };
static int e4m3_class(uint8_t b) {
    const int e = (b >> 3) & 15, m = b & 7;
    if (e == 15 && m == 7) return E4_NAN;
    if (e == 0) return m ? E4_SUB : E4_ZERO;
    return E4_NORMAL;
}
/* Random normal code, exponent field in [elo, ehi], random sign and mantissa, never NaN. */
static uint8_t rnd_normal(int elo, int ehi) {
    for (;;) {
        const uint8_t b = (uint8_t)((rnd(2) << 7) | ((elo + rnd(ehi - elo + 1)) << 3) | rnd(8));
        if (e4m3_class(b) == E4_NORMAL) return b;
    }
}
static uint8_t rnd_sub(void) { return (uint8_t)((rnd(2) << 7) | (1 + rnd(7))); }
/* The code of (1 + m3 / 8) 2^e (normal) or 2^e (subnormal, e in -9..-7, m3 = 0); exits if none. */
static uint8_t e4m3_code(int e, int m3) {
    if (e >= -6 && e <= 8 && !(e == 8 && m3 == 7)) return (uint8_t)(((e + 7) << 3) | m3);
    if (e >= -9 && e <= -7 && m3 == 0) return (uint8_t)(1 << (e + 9));
    fprintf(stderr, "FAIL: (1 + %d/8) 2^%d is not an e4m3 value\n", m3, e);
    exit(2);
}
static double flush_sub(uint8_t b, bool flush) {
    return flush && e4m3_class(b) == E4_SUB ? 0.0 : e4m3_val(b);
}

static __global__ void decode_all_kernel(float *out) {
    const int i = threadIdx.x;
    __half_raw h = __nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)i, __NV_E4M3);
    out[i] = __half2float(__half(h));
}

/* The CPU decode against fixed values, cuda_fp8.h's host conversion and the device's (cvt), all
 * 256 codes. Returns the number of mismatches. */
static int decode_selfcheck(void) {
    int bad = 0;
    const struct {
        uint8_t b;
        double v;
    } fixed[] = {{0x00, 0.0},        {0x01, 1.0 / 512}, {0x07, 7.0 / 512},  {0x08, 1.0 / 64},
                 {0x0F, 15.0 / 512}, {0x38, 1.0},       {0x3E, 1.75},       {0x40, 2.0},
                 {0x78, 256.0},      {0x7E, 448.0},     {0x81, -1.0 / 512}, {0xFE, -448.0}};
    for (auto &f : fixed)
        if (e4m3_val(f.b) != f.v)
            printf("FAIL decode 0x%02X: %g, expected %g\n", f.b, e4m3_val(f.b), f.v), bad++;
    if (!isnan(e4m3_val(0x7F)) || !isnan(e4m3_val(0xFF)) || !signbit(e4m3_val(0x80)))
        printf("FAIL decode: 0x7F / 0xFF not NaN or 0x80 not -0\n"), bad++;
    for (int q = 0; q < 16; q++) /* the nibble trick: byte q is exactly q 2^-9 */
        if (e4m3_val((uint8_t)q) != ldexp((double)q, -9)) printf("FAIL nibble %d\n", q), bad++;
    float *d;
    CK(cudaMalloc(&d, 256 * 4));
    decode_all_kernel<<<1, 256>>>(d);
    CK(cudaGetLastError());
    float dev[256];
    CK(cudaMemcpy(dev, d, sizeof dev, cudaMemcpyDeviceToHost));
    CK(cudaFree(d));
    for (int i = 0; i < 256; i++) {
        const double c = e4m3_val((uint8_t)i);
        const float h =
            __half2float(__half(__nv_cvt_fp8_to_halfraw((__nv_fp8_storage_t)i, __NV_E4M3)));
        const bool ok_h = isnan(c) ? isnan(h) : (double)h == c;
        const bool ok_d = isnan(c) ? isnan(dev[i]) : (double)dev[i] == c;
        if (!ok_h || !ok_d)
            printf("FAIL decode 0x%02X: cpu %g, host cvt %g, device cvt %g\n", i, c, h, dev[i]),
                bad++;
        if (i > 0 && i < 0x7F && !(e4m3_val((uint8_t)i) > e4m3_val((uint8_t)(i - 1))))
            printf("FAIL decode: not increasing at 0x%02X\n", i), bad++;
    }
    printf("e4m3 decode self-check: 256 codes, %d failures (NaN codes: 0x7F 0xFF)\n", bad);
    return bad;
}

/* ---- wgmma wrappers (e4m3 and bf16 variants; fences and descriptors from wgmma.cuh) ---------- */

/* d (+)= A (descriptor) . B (descriptor), m64n64k32 e4m3; scale_d 0: d = A . B. */
static __device__ __forceinline__ void fp8_ss_n64(float (&d)[32], uint64_t da, uint64_t db,
                                                  int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {" SK_WG_REGS32
                 "}, %32, %33, p, 1, 1;\n}\n"
                 : SK_WG_ACC32(d)
                 : "l"(da), "l"(db), "r"(scale_d));
}
/* The same with A from registers (the m16n8k32 fragment of the header comment). */
static __device__ __forceinline__ void fp8_rs_n64(float (&d)[32], const uint32_t (&a)[4],
                                                  uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k32.f32.e4m3.e4m3 {" SK_WG_REGS32 "}, "
                 "{%32,%33,%34,%35}, %36, p, 1, 1;\n}\n"
                 : SK_WG_ACC32(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
static __device__ __forceinline__ void fp8_ss_n256(float (&d)[128], uint64_t da, uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k32.f32.e4m3.e4m3 {" SK_WG_REGS128
                 "}, %128, %129, p, 1, 1;\n}\n"
                 : SK_WG_ACC128(d)
                 : "l"(da), "l"(db), "r"(1));
}
static __device__ __forceinline__ void bf16_ss_n256(float (&d)[128], uint64_t da, uint64_t db) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %130, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n256k16.f32.bf16.bf16 {" SK_WG_REGS128
                 "}, %128, %129, p, 1, 1, 0, 0;\n}\n"
                 : SK_WG_ACC128(d)
                 : "l"(da), "l"(db), "r"(1));
}

/* rows x 128 bytes of src (row stride ld bytes) -> the swizzled tile at dst (header comment). */
static __device__ __forceinline__ void tile_copy(uint8_t *dst, const uint8_t *src, size_t ld,
                                                 int rows) {
    for (int u = threadIdx.x; u < rows * 8; u += blockDim.x) {
        const int r = u >> 3, c = u & 7;
        *reinterpret_cast<uint4 *>(dst + r * 128 + ((c ^ (r & 7)) << 4)) =
            *reinterpret_cast<const uint4 *>(src + (size_t)r * ld + 16 * c);
    }
}

/* One warpgroup per block, one problem per block: A [64][K], B [64][K] e4m3 (row-major, K a
 * multiple of 128) at blockIdx.x * 64 K. dc [64][64] = the whole K chained into one accumulator;
 * dp = the sum in fp32 registers of one partial accumulator per 128 of K (4 wgmmas, the first
 * with scale-d 0). RS: A from registers (loaded from global), else from the swizzled tile. err:
 * set when the static tiles are not 1024-byte aligned (the descriptors assume it). */
template <bool RS>
static __global__ void __launch_bounds__(128)
    fp8_chain_kernel(const uint8_t *__restrict__ A, const uint8_t *__restrict__ B, int K,
                     float *__restrict__ dc, float *__restrict__ dp, int *err) {
    __shared__ __align__(1024) uint8_t sa[64 * 128];
    __shared__ __align__(1024) uint8_t sb[64 * 128];
    const uint32_t sa_u = (uint32_t)__cvta_generic_to_shared(sa),
                   sb_u = (uint32_t)__cvta_generic_to_shared(sb);
    if ((sa_u | sb_u) & 1023) {
        if (threadIdx.x == 0) atomicExch(err, 1);
        return;
    }
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, g = lane >> 2, q = lane & 3;
    const int r0 = 16 * warp + g;
    A += (size_t)blockIdx.x * 64 * K, B += (size_t)blockIdx.x * 64 * K;
    float acc[32], part[32], prom[32];
#pragma unroll
    for (int i = 0; i < 32; i++) acc[i] = part[i] = prom[i] = 0.0f;
    for (int kb = 0; kb < K / 128; kb++) {
        tile_copy(sa, A + kb * 128, K, 64);
        tile_copy(sb, B + kb * 128, K, 64);
        sk_wg_fence_proxy_async(); /* generic-proxy stores -> wgmma's async-proxy reads */
        __syncthreads();
        uint32_t a[4][4];
#pragma unroll
        for (int s = 0; s < 4; s++) {
            const uint8_t *p = A + (size_t)r0 * K + kb * 128 + 32 * s + 4 * q;
            a[s][0] = RS ? *reinterpret_cast<const uint32_t *>(p) : 0u;
            a[s][1] = RS ? *reinterpret_cast<const uint32_t *>(p + 8 * (size_t)K) : 0u;
            a[s][2] = RS ? *reinterpret_cast<const uint32_t *>(p + 16) : 0u;
            a[s][3] = RS ? *reinterpret_cast<const uint32_t *>(p + 8 * (size_t)K + 16) : 0u;
            sk_wg_pin(a[s]);
        }
        sk_wg_pin(acc), sk_wg_pin(part);
        sk_wg_fence();
#pragma unroll
        for (int s = 0; s < 4; s++) {
            const uint64_t db = sk_wg_desc(sb_u + 32 * s, 16, 1024);
            if (RS)
                fp8_rs_n64(acc, a[s], db, 1);
            else
                fp8_ss_n64(acc, sk_wg_desc(sa_u + 32 * s, 16, 1024), db, 1);
        }
#pragma unroll
        for (int s = 0; s < 4; s++) {
            const uint64_t db = sk_wg_desc(sb_u + 32 * s, 16, 1024);
            if (RS)
                fp8_rs_n64(part, a[s], db, s != 0);
            else
                fp8_ss_n64(part, sk_wg_desc(sa_u + 32 * s, 16, 1024), db, s != 0);
        }
        sk_wg_commit();
        sk_wg_wait<0>();
        sk_wg_pin(acc), sk_wg_pin(part);
#pragma unroll
        for (int i = 0; i < 32; i++) prom[i] += part[i];
        __syncthreads(); /* every wgmma of the block done before the tiles are overwritten */
    }
    dc += (size_t)blockIdx.x * 4096, dp += (size_t)blockIdx.x * 4096;
#pragma unroll
    for (int jn = 0; jn < 8; jn++)
#pragma unroll
        for (int e = 0; e < 4; e++) {
            const int o = (r0 + 8 * (e >> 1)) * 64 + 8 * jn + 2 * q + (e & 1);
            dc[o] = acc[4 * jn + e], dp[o] = prom[4 * jn + e];
        }
}

/* Runs fp8_chain_kernel on P problems (host A, B: P x 64 x K bytes); dc, dp: P x 4096. */
static void run_chain(bool rs, const std::vector<uint8_t> &A, const std::vector<uint8_t> &B, int K,
                      int P, std::vector<float> &dc, std::vector<float> &dp) {
    uint8_t *a, *b;
    float *c, *p;
    int *err;
    CK(cudaMalloc(&a, A.size()));
    CK(cudaMalloc(&b, B.size()));
    CK(cudaMalloc(&c, (size_t)P * 4096 * 4));
    CK(cudaMalloc(&p, (size_t)P * 4096 * 4));
    CK(cudaMalloc(&err, 4));
    CK(cudaMemset(err, 0, 4));
    CK(cudaMemcpy(a, A.data(), A.size(), cudaMemcpyHostToDevice));
    CK(cudaMemcpy(b, B.data(), B.size(), cudaMemcpyHostToDevice));
    if (rs)
        fp8_chain_kernel<true><<<P, 128>>>(a, b, K, c, p, err);
    else
        fp8_chain_kernel<false><<<P, 128>>>(a, b, K, c, p, err);
    CK(cudaGetLastError());
    CK(cudaDeviceSynchronize());
    int e;
    CK(cudaMemcpy(&e, err, 4, cudaMemcpyDeviceToHost));
    if (e) {
        fprintf(stderr, "FAIL: shared tiles not 1024-byte aligned\n");
        exit(2);
    }
    dc.resize((size_t)P * 4096), dp.resize((size_t)P * 4096);
    CK(cudaMemcpy(dc.data(), c, dc.size() * 4, cudaMemcpyDeviceToHost));
    CK(cudaMemcpy(dp.data(), p, dp.size() * 4, cudaMemcpyDeviceToHost));
    cudaFree(a), cudaFree(b), cudaFree(c), cudaFree(p), cudaFree(err);
}

/* ---- exact ----------------------------------------------------------------------------------- */

static const char *cls_name[] = {"zero", "subnormal", "normal"};

static int cmd_exact(void) {
    int bad = decode_selfcheck();
    const int K = 128;
    /* (1) one-hot: A[m][2m] and B[n][2m] nonzero (B random at every k), so d[m][n] is one
     * product, exact in fp32 (8 significant bits, |.| in [2^-18, 448^2]). */
    std::vector<uint8_t> A(64 * K, 0), B(64 * K, 0);
    for (int m = 0; m < 64; m++)
        A[m * K + 2 * m] = m < 16   ? (uint8_t)m
                           : m < 32 ? (uint8_t)(0x80 | (m - 16))
                                    : rnd_normal(1, 15);
    for (int n = 0; n < 64; n++)
        for (int k = 0; k < K; k++) {
            uint8_t b;
            if (n < 32)
                b = rnd_normal(4, 10);
            else if (n < 48)
                b = rnd_sub();
            else if (n < 56)
                b = rnd_normal(13, 15);
            else
                do b = (uint8_t)rnd(256);
                while (e4m3_class(b) == E4_NAN);
            B[n * K + k] = b;
        }
    /* (2) random dots: rows 0-31 nibble bytes 0x00-0x0F, rows 32-63 random normal; B 3/4
     * normal, 1/4 subnormal, random sign. */
    std::vector<uint8_t> A2(64 * K), B2(64 * K);
    for (int m = 0; m < 64; m++)
        for (int k = 0; k < K; k++) A2[m * K + k] = m < 32 ? (uint8_t)rnd(16) : rnd_normal(3, 11);
    for (auto &b : B2) b = rnd(4) ? rnd_normal(3, 11) : rnd_sub();

    for (int rs = 1; rs >= 0; rs--) {
        const char *form = rs ? "RS (A in registers)" : "SS (A in shared memory)";
        std::vector<float> dc, dp;
        run_chain(rs, A, B, K, 1, dc, dp);
        /* per (A class, B class): count, exact, flushed to zero, other; max relative error */
        int cnt[3][3] = {}, ex[3][3] = {}, fl[3][3] = {}, ot[3][3] = {};
        double mrel[3][3] = {};
        for (int m = 0; m < 64; m++)
            for (int n = 0; n < 64; n++) {
                const uint8_t a = A[m * K + 2 * m], b = B[n * K + 2 * m];
                const int ca = e4m3_class(a), cb = e4m3_class(b);
                const double ref = e4m3_val(a) * e4m3_val(b), got = dc[m * 64 + n];
                cnt[ca][cb]++;
                if (got == ref)
                    ex[ca][cb]++;
                else if (got == 0.0)
                    fl[ca][cb]++;
                else
                    ot[ca][cb]++;
                if (ref != 0.0)
                    mrel[ca][cb] = std::max(mrel[ca][cb], fabs(got - ref) / fabs(ref));
                else if (got != 0.0)
                    mrel[ca][cb] = INFINITY;
            }
        printf("\n### exact, %s: one-hot products a * b, m64n64k32 e4m3 -> f32\n\n", form);
        printf("| A class | B class | outputs | exact | flushed to 0 | other | max rel err |\n");
        printf("| --- | --- | --- | --- | --- | --- | --- |\n");
        for (int ca = 0; ca < 3; ca++)
            for (int cb = 0; cb < 3; cb++)
                if (cnt[ca][cb]) {
                    printf("| %s | %s | %d | %d | %d | %d | %.3g |\n", cls_name[ca], cls_name[cb],
                           cnt[ca][cb], ex[ca][cb], fl[ca][cb], ot[ca][cb], mrel[ca][cb]);
                    if (ot[ca][cb]) bad++;
                }
        const bool a_kept = ex[1][2] == cnt[1][2], a_flushed = fl[1][2] == cnt[1][2];
        const bool b_kept = ex[2][1] == cnt[2][1], b_flushed = fl[2][1] == cnt[2][1];
        printf("RESULT exact %s: subnormal A (nibbles 0x01-0x07) %s; subnormal B %s\n",
               rs ? "RS" : "SS",
               a_kept      ? "KEPT exactly"
               : a_flushed ? "FLUSHED to zero"
                           : "MIXED (see table)",
               b_kept      ? "KEPT exactly"
               : b_flushed ? "FLUSHED to zero"
                           : "MIXED (see table)");

        run_chain(rs, A2, B2, K, 1, dc, dp);
        double emax[4] = {}, rmax = 0, anib = 0, anor = 0;
        for (int m = 0; m < 64; m++)
            for (int n = 0; n < 64; n++) {
                double ref[4] = {}, l1 = 0;
                for (int k = 0; k < K; k++) {
                    const uint8_t a = A2[m * K + k], b = B2[n * K + k];
                    for (int f = 0; f < 4; f++) ref[f] += flush_sub(a, f & 1) * flush_sub(b, f & 2);
                    l1 += fabs(e4m3_val(a) * e4m3_val(b));
                }
                const double got = dc[m * 64 + n];
                for (int f = 0; f < 4; f++) emax[f] = std::max(emax[f], fabs(got - ref[f]));
                const double en = fabs(got - ref[0]) / l1;
                rmax = std::max(rmax, en);
                if (m < 32)
                    anib = std::max(anib, en);
                else
                    anor = std::max(anor, en);
            }
        const char *model[4] = {"subnormals kept", "A subnormals flushed", "B subnormals flushed",
                                "both flushed"};
        int best = 0;
        for (int f = 1; f < 4; f++)
            if (emax[f] < emax[best]) best = f;
        printf(
            "\nrandom dots, K = 128, %s: max |got - ref| against double with: kept %.3g, A flushed "
            "%.3g, "
            "B flushed %.3g, both flushed %.3g; max |got - ref| / sum|ab| %.3g (nibble rows %.3g, "
            "normal rows %.3g)\n",
            form, emax[0], emax[1], emax[2], emax[3], rmax, anib, anor);
        printf("RESULT exact %s random: closest model \"%s\", max abs err %.3g, max normalised err "
               "%.3g\n",
               rs ? "RS" : "SS", model[best], emax[0], rmax);
    }
    printf("\nexact: %d failures (decode mismatches and one-hot outputs neither exact nor zero)\n",
           bad);
    return bad ? 1 : 0;
}

/* ---- acc ------------------------------------------------------------------------------------- */

static int cmd_acc(void) {
    /* (1) big + small, problem d = 0..28 (products of normal values): d[m][n] = 2^16 (k = 0) +
     * small, small = s 2^(16 - d), s = 1 (rows 0-31) or 1.75 (rows 32-63); columns n % 4 = 0/1:
     * +/- small in the same k32 slice as the big one (k = 1), 2/3: in the next slice (k = 32,
     * the next wgmma of the chain, added to the fp32 accumulator). */
    const int K = 128, big_e = 16; /* big = 256 x 256; one problem (block) per gap d */
    std::vector<float> dc, dp;
    const int P = 29;
    std::vector<uint8_t> AP((size_t)P * 64 * K, 0), BP((size_t)P * 64 * K, 0);
    for (int d = 0; d < P; d++) {
        const int se = big_e - d, eb = std::max(-6, std::min(8, se / 2)), ea = se - eb;
        uint8_t *a = &AP[(size_t)d * 64 * K], *b = &BP[(size_t)d * 64 * K];
        for (int m = 0; m < 64; m++) { /* rows 0-31: small = 2^se, rows 32-63: 1.75 2^se */
            a[m * K + 0] = e4m3_code(8, 0);
            a[m * K + 1] = a[m * K + 32] = e4m3_code(ea, m < 32 ? 0 : 6);
        }
        for (int n = 0; n < 64; n++) {
            b[n * K + 0] = e4m3_code(8, 0);
            const uint8_t s = (uint8_t)(e4m3_code(eb, 0) | ((n & 1) << 7));
            if ((n & 3) < 2)
                b[n * K + 1] = s;
            else
                b[n * K + 32] = s;
        }
    }
    run_chain(false, AP, BP, K, P, dc, dp);
    printf(
        "### acc: big + small (big = 2^%d; small = s 2^(%d - d); fraction of the small term kept, "
        "1 = exact, 0 = lost; fp32 itself holds big + small only to d = 23 (s = 1) / 21 (s = "
        "1.75))\n\n",
        big_e, big_e);
    printf("| d | within +1 | within -1 | across +1 | across -1 | within +1.75 | within -1.75 | "
           "across +1.75 | across -1.75 |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    int lost_within = -1, lost_across = -1;
    for (int d = 0; d < P; d++) {
        printf("| %d |", d);
        for (int sig = 0; sig < 2; sig++)
            for (int c = 0; c < 4; c++) {
                const int m = sig ? 32 : 0;
                const double small = (c & 1 ? -1 : 1) * (sig ? 1.75 : 1.0) * ldexp(1.0, big_e - d);
                const double kept =
                    ((double)dc[(size_t)d * 4096 + m * 64 + c] - ldexp(1.0, big_e)) / small;
                printf(" %.4g |", kept);
                if (sig == 0 && c == 0 && kept != 1.0 && lost_within < 0 && d <= 23)
                    lost_within = d;
                if (sig == 0 && c == 2 && kept != 1.0 && lost_across < 0 && d <= 23)
                    lost_across = d;
            }
        printf("\n");
    }
    printf("RESULT acc probe: +2^(16-d) first not exact at d = %d within one wgmma, d = %d across "
           "wgmmas "
           "(-1: exact to d = 23, fp32's limit)\n",
           lost_within, lost_across);

    /* (2) random dots: A, B random normal e4m3 in [2^-3, 2^3], random signs, P problems. */
    const int Ks[] = {128, 512, 2048, 8192, 28672};
    const int PR = 8;
    printf("\n### acc: random e4m3 dots, %d x 4096 outputs, error vs double / sum|ab|\n\n", PR);
    printf("| K | one acc: max | rms | promoted /128: max | rms | fp32 CPU chain: max | rms | one "
           "acc rms / fp32 rms |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int K2 : Ks) {
        std::vector<uint8_t> RA((size_t)PR * 64 * K2), RB((size_t)PR * 64 * K2);
        for (auto &x : RA) x = rnd_normal(4, 10);
        for (auto &x : RB) x = rnd_normal(4, 10);
        run_chain(false, RA, RB, K2, PR, dc, dp);
        double mx[3] = {}, ss[3] = {};
        std::vector<double> av(K2), lut(256);
        for (int i = 0; i < 256; i++) lut[i] = e4m3_val((uint8_t)i);
        for (int p = 0; p < PR; p++)
            for (int m = 0; m < 64; m++) {
                const uint8_t *ar = &RA[((size_t)p * 64 + m) * K2];
                for (int k = 0; k < K2; k++) av[k] = lut[ar[k]];
                for (int n = 0; n < 64; n++) {
                    const uint8_t *br = &RB[((size_t)p * 64 + n) * K2];
                    double ref = 0, l1 = 0;
                    float f32 = 0.0f;
                    for (int k = 0; k < K2; k++) {
                        const double t = av[k] * lut[br[k]];
                        ref += t, l1 += fabs(t), f32 += (float)t; /* products exact in fp32 */
                    }
                    const double e[3] = {fabs(dc[(size_t)p * 4096 + m * 64 + n] - ref) / l1,
                                         fabs(dp[(size_t)p * 4096 + m * 64 + n] - ref) / l1,
                                         fabs(f32 - ref) / l1};
                    for (int i = 0; i < 3; i++) mx[i] = std::max(mx[i], e[i]), ss[i] += e[i] * e[i];
                }
            }
        double rms[3];
        for (int i = 0; i < 3; i++) rms[i] = sqrt(ss[i] / (PR * 4096.0));
        printf("| %d | %.3g | %.3g | %.3g | %.3g | %.3g | %.3g | %.3g |\n", K2, mx[0], rms[0],
               mx[1], rms[1], mx[2], rms[2], rms[0] / rms[2]);
        printf("RESULT acc K=%d one-acc rms %.3g promoted rms %.3g fp32-chain rms %.3g (~%.1f bits "
               "if fp32 = 24)\n",
               K2, rms[0], rms[1], rms[2], 24.0 - log2(rms[0] / rms[2]));
    }
    return 0;
}

/* ---- rate ------------------------------------------------------------------------------------ */

/* Each warpgroup of each block: iters x (fence, 4 SS wgmmas m64n256 over the 4 K slices of the
 * 40 KB tile pair, commit, wait <= 1 group in flight). Tiles: A 64 x 128 B, B 256 x 128 B,
 * copied from src (random, valid values of the type). sink: one float per thread. */
template <bool FP8>
static __global__ void __launch_bounds__(384, 1)
    rate_kernel(const uint8_t *__restrict__ src, long long iters, float *sink, int *err) {
    __shared__ __align__(1024) uint8_t sa[64 * 128];
    __shared__ __align__(1024) uint8_t sb[256 * 128];
    const uint32_t sa_u = (uint32_t)__cvta_generic_to_shared(sa),
                   sb_u = (uint32_t)__cvta_generic_to_shared(sb);
    if ((sa_u | sb_u) & 1023) {
        if (threadIdx.x == 0) atomicExch(err, 1);
        return;
    }
    tile_copy(sa, src, 128, 64);
    tile_copy(sb, src + 64 * 128, 128, 256);
    sk_wg_fence_proxy_async();
    __syncthreads();
    float acc[128];
#pragma unroll
    for (int i = 0; i < 128; i++) acc[i] = 0.0f;
    const uint64_t da = sk_wg_desc(sa_u, 16, 1024), db = sk_wg_desc(sb_u, 16, 1024);
    for (long long it = 0; it < iters; it++) {
        sk_wg_fence();
#pragma unroll
        /* k32 (bf16: k16) slice s: + 32 bytes = + 2 in the descriptor's address field */
        for (int s = 0; s < 4; s++) {
            if (FP8)
                fp8_ss_n256(acc, da + 2 * s, db + 2 * s);
            else
                bf16_ss_n256(acc, da + 2 * s, db + 2 * s);
        }
        sk_wg_commit();
        sk_wg_wait<1>();
    }
    sk_wg_wait<0>();
    sk_wg_pin(acc);
    float t = 0.0f;
#pragma unroll
    for (int i = 0; i < 128; i++) t += acc[i];
    sink[blockIdx.x * blockDim.x + threadIdx.x] = t;
}

static void wall_mark(const char *what) {
    struct timeval tv;
    gettimeofday(&tv, nullptr);
    struct tm tmv;
    localtime_r(&tv.tv_sec, &tmv);
    char b[64];
    strftime(b, sizeof b, "%Y/%m/%d %H:%M:%S", &tmv);
    printf("mark %s %s.%03d\n", what, b, (int)(tv.tv_usec / 1000));
    fflush(stdout);
}

static double run_rate(bool fp8, double seconds, int wgs, int nsm) {
    std::vector<uint8_t> h(40 * 1024);
    if (fp8) {
        for (auto &b : h) b = rnd_normal(4, 10);
    } else {
        for (size_t i = 0; i < h.size(); i += 2) { /* bf16 of e4m3 values: exact, same magnitudes */
            const float f = (float)e4m3_val(rnd_normal(4, 10));
            uint32_t u;
            memcpy(&u, &f, 4);
            h[i] = (uint8_t)(u >> 16), h[i + 1] = (uint8_t)(u >> 24);
        }
    }
    uint8_t *src;
    float *sink;
    int *err;
    CK(cudaMalloc(&src, h.size()));
    CK(cudaMalloc(&sink, (size_t)nsm * 128 * wgs * 4));
    CK(cudaMalloc(&err, 4));
    CK(cudaMemset(err, 0, 4));
    CK(cudaMemcpy(src, h.data(), h.size(), cudaMemcpyHostToDevice));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    auto launch = [&](long long it) -> float {
        CK(cudaEventRecord(e0));
        if (fp8)
            rate_kernel<true><<<nsm, 128 * wgs>>>(src, it, sink, err);
        else
            rate_kernel<false><<<nsm, 128 * wgs>>>(src, it, sink, err);
        CK(cudaGetLastError());
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        return ms;
    };
    /* one iteration of one warpgroup: 4 wgmmas of 64 x 256 x (32 or 16) */
    const double flop_wg = 2.0 * 64 * 256 * (fp8 ? 32 : 16) * 4;
    const double flop_it = flop_wg * wgs * nsm;
    launch(100);
    const float t0 = launch(2000);
    int e;
    CK(cudaMemcpy(&e, err, 4, cudaMemcpyDeviceToHost));
    if (e) {
        fprintf(stderr, "FAIL: shared tiles not 1024-byte aligned\n");
        exit(2);
    }
    long long iters = (long long)(2000.0 * 100.0 / std::max(t0, 1e-3f)); /* ~100 ms a launch */
    iters = std::max(1000LL, std::min(iters, 200000000LL));
    const char *name = fp8 ? "fp8 e4m3 m64n256k32" : "bf16 m64n256k16";
    printf("\n### rate %s: %d blocks x %d warpgroups, %lld iterations (%.3g TFLOP) a launch, %.0f "
           "s\n\n",
           name, nsm, wgs, iters, flop_it * iters / 1e12, seconds);
    wall_mark(fp8 ? "rate_fp8_start" : "rate_bf16_start");
    std::vector<float> ts;
    double tot = 0, win = 0, win_flop = 0;
    int nwin = 0;
    printf("| second | TFLOP/s |\n| --- | --- |\n");
    const int max_launch = (int)(seconds * 50) + 10; /* bounded: a launch takes >= ~20 ms */
    for (int i = 0; i < max_launch && tot < seconds * 1e3; i++) {
        const float ms = launch(iters);
        ts.push_back(ms);
        tot += ms, win += ms, win_flop += flop_it * iters;
        if (win >= 1000.0) {
            printf("| %d | %.1f |\n", ++nwin, win_flop / (win * 1e-3) / 1e12);
            fflush(stdout);
            win = 0, win_flop = 0;
        }
    }
    wall_mark(fp8 ? "rate_fp8_end" : "rate_bf16_end");
    const double all = flop_it * iters * ts.size() / (tot * 1e-3) / 1e12;
    std::vector<float> last(ts.end() - std::min<size_t>(ts.size(), ts.size() / 4 + 1), ts.end());
    std::sort(last.begin(), last.end());
    const double tail = flop_it * iters / (last[last.size() / 2] * 1e-3) / 1e12;
    std::vector<float> s2 = ts;
    std::sort(s2.begin(), s2.end());
    const double best = flop_it * iters / (s2[0] * 1e-3) / 1e12;
    printf("RESULT rate %s: %.1f TFLOP/s over %.1f s (%zu launches), last quarter median %.1f, "
           "best launch %.1f\n",
           name, all, tot * 1e-3, ts.size(), tail, best);
    cudaFree(src), cudaFree(sink), cudaFree(err);
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return all;
}

static int cmd_rate(double seconds, int wgs) {
    if (wgs < 1 || wgs > 3 || !(seconds > 0) || seconds > 120) {
        fprintf(stderr, "FAIL: rate [seconds in (0, 120]] [warpgroups 1..3]\n");
        return 2;
    }
    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    const double f = run_rate(true, seconds, wgs, pr.multiProcessorCount);
    const double b = run_rate(false, seconds, wgs, pr.multiProcessorCount);
    printf("RESULT rate r = fp8 / bf16 = %.3f (%.1f / %.1f TFLOP/s, sustained over %.0f s each)\n",
           f / b, f, b, seconds);
    return 0;
}

/* ---- lt -------------------------------------------------------------------------------------- */

static __global__ void fill_e4m3_kernel(uint8_t *p, __nv_bfloat16 *h, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t x = (uint32_t)i * 0x9E3779B1u ^ seed ^ (uint32_t)(i >> 32) * 0x85EBCA6Bu;
        x ^= x >> 15, x *= 0x2C1B3C6Du, x ^= x >> 12, x *= 0x297A2D39u, x ^= x >> 15;
        /* random sign and mantissa, exponent field 4..9: |v| in [2^-3, 2^3) */
        const uint8_t b = (uint8_t)((x & 0x87u) | ((4u + (x >> 8) % 6u) << 3));
        p[i] = b;
        const int e = (b >> 3) & 15, m = b & 7;
        const float v = ldexpf((float)(8 + m), e - 10);
        h[i] = __float2bfloat16_rn(b & 0x80 ? -v : v); /* exact */
    }
}
static __global__ void fill_f32_kernel(float *p, size_t n, float lo, float hi, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t x = (uint32_t)i * 0x9E3779B1u ^ seed;
        x ^= x >> 15, x *= 0x2C1B3C6Du, x ^= x >> 12;
        p[i] = lo + (hi - lo) * (float)(x & 0xFFFF) / 65535.0f;
    }
}
/* res[0] = max |got - f ref va[j] vb[t]|, res[1] = max |f ref ...| over [T][N] outputs (fp32 or
 * bf16), as float bits (non-negative: integer order = float order). */
static __global__ void cmp_kernel(const void *got, const void *ref, int bf16, size_t T, int N,
                                  float f, const float *va, const float *vb, unsigned *res) {
    float md = 0, mr = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < T * N;
         i += (size_t)gridDim.x * blockDim.x) {
        const int j = (int)(i % N);
        const size_t t = i / N;
        const float g =
            bf16 ? __bfloat162float(((const __nv_bfloat16 *)got)[i]) : ((const float *)got)[i];
        float r =
            bf16 ? __bfloat162float(((const __nv_bfloat16 *)ref)[i]) : ((const float *)ref)[i];
        r *= f * (va ? va[j] : 1.0f) * (vb ? vb[t] : 1.0f);
        const float e = fabsf(g - r);
        md = fmaxf(md, e != e ? INFINITY : e), mr = fmaxf(mr, fabsf(r)); /* NaN out: inf error */
    }
    atomicMax(res, __float_as_uint(md));
    atomicMax(res + 1, __float_as_uint(mr));
}

static __global__ void spin_kernel(long long ns) {
    long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    while (t - t0 < ns);
}

enum { LT_BF16, LT_SCALAR, LT_FAST, LT_OUTER, LT_VEC128, LT_BLK_VEC128, LT_NMODE };
static const char *lt_name[] = {"bf16",
                                "fp8 per-tensor",
                                "fp8 per-tensor fast-accum",
                                "fp8 outer-vec (row x col)",
                                "fp8 vec128 x vec128",
                                "fp8 blk128x128 (W) x vec128 (x)"};

typedef struct lt_run {
    cublasLtHandle_t h;
    void *ws;
    size_t ws_bytes;
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, lc;
    cublasLtMatmulAlgo_t algo;
    const void *A, *B;
    void *D;
} lt_run;

/* D [M][N] = x [M][K] . W [N][K]^T through cuBLASLt (column-major: A = W as K x N transposed,
 * B = x as K x M): plan (descriptor, scale modes, heuristic). Returns a status; on failure the
 * mode is unsupported here (the caller prints it), everything created is destroyed. */
static cublasStatus_t lt_plan(lt_run *r, int mode, bool dbf16, int M, int N, int K, const float *sa,
                              const float *sb) {
    const bool fp8 = mode != LT_BF16;
    const cudaDataType_t ab = fp8 ? CUDA_R_8F_E4M3 : CUDA_R_16BF,
                         dt = dbf16 ? CUDA_R_16BF : CUDA_R_32F;
    cublasStatus_t st;
    r->op = nullptr, r->la = r->lb = r->lc = nullptr;
#define LT_TRY(call)                                                                               \
    do {                                                                                           \
        if ((st = (call)) != CUBLAS_STATUS_SUCCESS) goto fail;                                     \
    } while (0)
    {
        LT_TRY(cublasLtMatmulDescCreate(&r->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
        const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
        LT_TRY(cublasLtMatmulDescSetAttribute(r->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
        LT_TRY(cublasLtMatmulDescSetAttribute(r->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
        if (fp8) {
            LT_TRY(cublasLtMatmulDescSetAttribute(r->op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &sa,
                                                  sizeof sa));
            LT_TRY(cublasLtMatmulDescSetAttribute(r->op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &sb,
                                                  sizeof sb));
            const int8_t fast = mode == LT_FAST;
            LT_TRY(cublasLtMatmulDescSetAttribute(r->op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast,
                                                  sizeof fast));
        }
        if (mode >= LT_OUTER) {
#if CUBLAS_VERSION >= 120900 /* the scale-mode enums (cuBLAS 12.9 on, by its release notes [doc]) */
            int32_t ma = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F, mb = ma;
            if (mode == LT_VEC128) ma = mb = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
            if (mode == LT_BLK_VEC128)
                ma = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F,
                mb = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
            LT_TRY(cublasLtMatmulDescSetAttribute(r->op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &ma,
                                                  sizeof ma));
            LT_TRY(cublasLtMatmulDescSetAttribute(r->op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mb,
                                                  sizeof mb));
#else
            st = CUBLAS_STATUS_NOT_SUPPORTED;
            goto fail;
#endif
        }
        LT_TRY(cublasLtMatrixLayoutCreate(&r->la, ab, K, N, K));
        LT_TRY(cublasLtMatrixLayoutCreate(&r->lb, ab, K, M, K));
        LT_TRY(cublasLtMatrixLayoutCreate(&r->lc, dt, N, M, N));
        cublasLtMatmulPreference_t pref;
        LT_TRY(cublasLtMatmulPreferenceCreate(&pref));
        st = cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                  &r->ws_bytes, sizeof r->ws_bytes);
        cublasLtMatmulHeuristicResult_t hr;
        int nr = 0;
        if (st == CUBLAS_STATUS_SUCCESS)
            st = cublasLtMatmulAlgoGetHeuristic(r->h, r->op, r->la, r->lb, r->lc, r->lc, pref, 1,
                                                &hr, &nr);
        cublasLtMatmulPreferenceDestroy(pref);
        if (st == CUBLAS_STATUS_SUCCESS && nr == 0) st = CUBLAS_STATUS_NOT_SUPPORTED;
        if (st != CUBLAS_STATUS_SUCCESS) goto fail;
        r->algo = hr.algo;
        return CUBLAS_STATUS_SUCCESS;
    }
fail:
    if (r->la) cublasLtMatrixLayoutDestroy(r->la);
    if (r->lb) cublasLtMatrixLayoutDestroy(r->lb);
    if (r->lc) cublasLtMatrixLayoutDestroy(r->lc);
    if (r->op) cublasLtMatmulDescDestroy(r->op);
    r->op = nullptr, r->la = r->lb = r->lc = nullptr;
    return st;
#undef LT_TRY
}
static cublasStatus_t lt_exec(lt_run *r) {
    const float alpha = 1.0f, beta = 0.0f;
    return cublasLtMatmul(r->h, r->op, &alpha, r->A, r->la, r->B, r->lb, &beta, r->D, r->lc, r->D,
                          r->lc, &r->algo, r->ws, r->ws_bytes, 0);
}
static void lt_free(lt_run *r) {
    cublasLtMatrixLayoutDestroy(r->la), cublasLtMatrixLayoutDestroy(r->lb),
        cublasLtMatrixLayoutDestroy(r->lc);
    cublasLtMatmulDescDestroy(r->op);
}

static int cmd_lt(bool dbf16) {
    lt_run r;
    CKB(cublasLtCreate(&r.h));
    r.ws_bytes = 32 << 20;
    CK(cudaMalloc(&r.ws, r.ws_bytes));
    printf("cuBLASLt %zu (header %d), D %s, TN, CUBLAS_COMPUTE_32F; inputs e4m3 values in [2^-3, "
           "2^3) (bf16: the "
           "same values), medians of CUDA-event times after 3 warm-ups\n",
           cublasLtGetVersion(), CUBLAS_VERSION, dbf16 ? "bf16" : "fp32");
    const struct {
        const char *name;
        int N, K;
    } shapes[] = {{"qkv 10240x8192", 10240, 8192},
                  {"o 8192x8192", 8192, 8192},
                  {"gate/up 57344x8192", 57344, 8192},
                  {"down 8192x28672", 8192, 28672}};
    const int Ms[] = {1152, 2048, 16384};
    const size_t maxWK = (size_t)57344 * 8192, maxXK = (size_t)16384 * 28672,
                 maxD = (size_t)16384 * 57344;
    const size_t dsz = dbf16 ? 2 : 4, nscale = (size_t)4 << 20;
    uint8_t *w8, *x8;
    __nv_bfloat16 *wh, *xh;
    void *d, *dref;
    float *sa, *sb;
    unsigned *res;
    CK(cudaMalloc(&w8, maxWK));
    CK(cudaMalloc(&wh, maxWK * 2));
    CK(cudaMalloc(&x8, maxXK));
    CK(cudaMalloc(&xh, maxXK * 2));
    CK(cudaMalloc(&d, maxD * dsz));
    CK(cudaMalloc(&dref, maxD * dsz));
    CK(cudaMalloc(&sa, nscale * 4));
    CK(cudaMalloc(&sb, nscale * 4));
    CK(cudaMalloc(&res, 8));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    printf("\n| shape N x K | M | mode | us | TFLOP/s | vs bf16 | check (max err / max ref) |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- |\n");
    int fails = 0;
    for (auto &sh : shapes) {
        const int N = sh.N, K = sh.K;
        fill_e4m3_kernel<<<4096, 256>>>(w8, wh, (size_t)N * K, 11u + N);
        fill_e4m3_kernel<<<4096, 256>>>(x8, xh, (size_t)16384 * K, 7u + K);
        CK(cudaGetLastError());
        for (int M : Ms) {
            float t_bf16 = 0;
            for (int mode = 0; mode < LT_NMODE; mode++) {
                /* scales: bf16 none; per-tensor 2 and 0.25 (product 0.5); outer: random vectors in
                 * [0.5, 2]; vec128 / blk: constants 0.5 and 4 (layout-independent: product 2) */
                float f = 1.0f;
                const float *va = nullptr, *vb = nullptr;
                if (mode == LT_SCALAR || mode == LT_FAST) {
                    fill_f32_kernel<<<1, 1>>>(sa, 1, 2.0f, 2.0f, 0);
                    fill_f32_kernel<<<1, 1>>>(sb, 1, 0.25f, 0.25f, 0);
                    f = 0.5f;
                } else if (mode == LT_OUTER) {
                    fill_f32_kernel<<<256, 256>>>(sa, N, 0.5f, 2.0f, 3u);
                    fill_f32_kernel<<<256, 256>>>(sb, M, 0.5f, 2.0f, 5u);
                    va = sa, vb = sb;
                } else if (mode != LT_BF16) {
                    fill_f32_kernel<<<1024, 256>>>(sa, nscale, 0.5f, 0.5f, 0);
                    fill_f32_kernel<<<1024, 256>>>(sb, nscale, 4.0f, 4.0f, 0);
                    f = 2.0f;
                }
                CK(cudaGetLastError());
                r.A = mode == LT_BF16 ? (const void *)wh : w8;
                r.B = mode == LT_BF16 ? (const void *)xh : x8;
                r.D = mode == LT_BF16 ? dref : d;
                cublasStatus_t st = lt_plan(&r, mode, dbf16, M, N, K, sa, sb);
                if (st == CUBLAS_STATUS_SUCCESS) {
                    st = lt_exec(&r);
                    if (st != CUBLAS_STATUS_SUCCESS) lt_free(&r);
                }
                if (st != CUBLAS_STATUS_SUCCESS) {
                    CK(cudaDeviceSynchronize());
                    printf("| %s | %d | %s | unsupported (status %d) | | | |\n", sh.name, M,
                           lt_name[mode], (int)st);
                    if (mode == LT_BF16 || mode == LT_SCALAR) fails++;
                    continue;
                }
                CK(cudaDeviceSynchronize());
                char chk[64] = "reference";
                if (mode != LT_BF16) {
                    CK(cudaMemset(res, 0, 8));
                    cmp_kernel<<<2048, 256>>>(d, dref, dbf16, (size_t)M, N, f, va, vb, res);
                    CK(cudaGetLastError());
                    unsigned hr[2];
                    CK(cudaMemcpy(hr, res, 8, cudaMemcpyDeviceToHost));
                    float em, rm;
                    memcpy(&em, &hr[0], 4), memcpy(&rm, &hr[1], 4);
                    /* bf16 D: both sides rounded to bf16; fast accumulation: no promotion */
                    const double rel = em / std::max(rm, 1e-30f),
                                 tol = (dbf16 ? 2e-2 : 2e-3) * (mode == LT_FAST ? 5 : 1);
                    snprintf(chk, sizeof chk, "%.2e %s", rel, rel <= tol ? "ok" : "FAIL");
                    if (!(rel <= tol)) fails++;
                }
                /* runs: ~0.3 s of work, 10..100 */
                CK(cudaEventRecord(e0));
                CKB(lt_exec(&r));
                CK(cudaEventRecord(e1));
                CK(cudaEventSynchronize(e1));
                float ms0;
                CK(cudaEventElapsedTime(&ms0, e0, e1));
                const int iters = std::max(10, std::min(100, (int)(300.0f / std::max(ms0, 1e-3f))));
                std::vector<float> ts;
                for (int i = 0; i < iters + 3; i++) {
                    spin_kernel<<<1, 1>>>(40000);
                    CK(cudaEventRecord(e0));
                    CKB(lt_exec(&r));
                    CK(cudaEventRecord(e1));
                    CK(cudaEventSynchronize(e1));
                    float ms;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    if (i >= 3) ts.push_back(ms * 1e3f);
                }
                CK(cudaGetLastError());
                lt_free(&r);
                std::sort(ts.begin(), ts.end());
                const float us = ts[ts.size() / 2];
                if (mode == LT_BF16) t_bf16 = us;
                const double tf = 2.0 * M * N * (double)K / (us * 1e-6) / 1e12;
                printf("| %s | %d | %s | %.1f | %.1f | %.2fx | %s |\n", sh.name, M, lt_name[mode],
                       us, tf, t_bf16 > 0 ? t_bf16 / us : 0.0, chk);
                fflush(stdout);
            }
        }
    }
    printf("RESULT lt: %d failures (bf16 / per-tensor fp8 unsupported, or a supported mode off its "
           "reference)\n",
           fails);
    cudaFree(w8), cudaFree(wh), cudaFree(x8), cudaFree(xh), cudaFree(d), cudaFree(dref);
    cudaFree(sa), cudaFree(sb), cudaFree(res), cudaFree(r.ws);
    cublasLtDestroy(r.h);
    return fails ? 1 : 0;
}

int main(int argc, char **argv) {
    const char *cmd = argc > 1 ? argv[1] : "";
    setvbuf(stdout, nullptr, _IOLBF, 0);
    cudaDeviceProp pr;
    CK(cudaGetDeviceProperties(&pr, 0));
    printf("device: %s, sm_%d%d, %d SMs\n", pr.name, pr.major, pr.minor, pr.multiProcessorCount);
    if (pr.major != 9) {
        fprintf(stderr, "FAIL: needs a Hopper GPU (sm_90a build)\n");
        return 2;
    }
    if (strcmp(cmd, "exact") == 0) return cmd_exact();
    if (strcmp(cmd, "acc") == 0) return cmd_acc();
    if (strcmp(cmd, "rate") == 0)
        return cmd_rate(argc > 2 ? atof(argv[2]) : 20.0, argc > 3 ? atoi(argv[3]) : 2);
    if (strcmp(cmd, "lt") == 0) return cmd_lt(argc > 2 && strcmp(argv[2], "bf16") == 0);
    fprintf(stderr, "usage: %s exact | acc | rate [seconds=20] [warpgroups=2] | lt [f32|bf16]\n",
            argv[0]);
    return 2;
}
