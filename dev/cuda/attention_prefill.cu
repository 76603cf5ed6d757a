/* Prefill (context-phase) causal attention over the paged bf16 KV cache of
 * src/backend/cuda/attn_params.h: kernel workbench in llm.c's dev/cuda style. The kernels are
 * those of src/backend/cuda/attn_prefill.cuh, included as they are.
 *
 * Build and run from the repository root (one nvcc line, no other flags needed):
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -lineinfo -lcublas \
 *        -o /tmp/attention_prefill dev/cuda/attention_prefill.cu && /tmp/attention_prefill
 * Arguments: [check|time|all] [version substring]   (default all: self-test, checks, timing;
 * "check" stops after the checks, e.g. under compute-sanitizer; "time" skips the small checks
 * but still checks every timed shape on a subset of rows.)
 *
 * versions (all in attn_prefill.cuh):
 *   v1       one warp per (query row, head), fp32 dot products, expf; the GPU-side reference.
 *   v2/64    FlashAttention-2 on mma.sync.m16n8k16 bf16: 64-row Q tile, 4 warps x 16 rows,
 *            64-position KV tiles gathered from the pages by cp.async (double buffer),
 *            ldmatrix(.trans) operands, exp2 softmax, P kept in registers; heavy-first
 *            persistent schedule.
 *   v2/128   the same with a 128-row Q tile, 8 warps (the backend's default).
 *   v3       FlashAttention-3 style on wgmma (sm_90a), head dims 64 and 128: 2 warpgroups x 64
 *            query rows, 128-position KV tiles in 128-byte-swizzled shared memory (cp.async
 *            gather, 2 K + 2 V stages), S_j = Q K_j^T and P_{j-1} V_{j-1} in flight together,
 *            the softmax of S_j under P V (intra-warpgroup overlap).
 *
 * main:
 *   0. self-tests of the fragment mappings the kernels rely on (exact small integers): mma.sync /
 *      ldmatrix / P repack for v2; wgmma descriptors (K-major Q/K, N-major V), register A
 *      fragments and the accumulator layout for v3. A failure names the piece that is wrong.
 *   1. checks: random inputs (never zeros; q in [-6, 6] so the softmax is far from uniform,
 *      k, v in [-1, 1]), randomly permuted page ids, unused pages and the tail rows of each last
 *      page filled with NaN (a read of anything outside the sequence shows), a q row stride with
 *      NaN padding, output poisoned with NaN and followed by a NaN guard. Every version at head
 *      dims 64/80/128, group sizes 1/4/8/MQA, lengths 1/17/100/1000/4097, a ragged batch, a
 *      chunked-prefill batch (q_len < kv_len), page sizes 16/32/64/128. Reference:
 *      attention_cpu (double accumulation over the bf16 inputs) on every (row, head) when cheap,
 *      else on the first and last row of each sequence plus random (row, head) pairs (~64+ for
 *      N = 8192). Pass: every output row written and finite, guard intact, and
 *        rel_l2 = ||out - ref|| / ||ref|| over the checked rows <= max(3 x naive, 1e-3),
 *        worst per-row ||out - ref|| / ||ref||               <= max(4 x naive worst, 1e-2),
 *      where "naive" is the same measure for a CPU emulation of a plain bf16 kernel (P rounded to
 *      bf16 before P V, output rounded to bf16): the two roundings any bf16 flash kernel makes,
 *      each ~2^-9 relative, about 2e-3 in total. A wrong mask column or row moves a row by
 *      several percent, far outside.
 *   2. timing (only versions that passed every check): causal, bf16, page size 64 unless noted:
 *      1 x 8192 dim 128 32/32 and 64/8 heads, 2 x 4096, 16 x 1024, dim 64 232/8 heads at 8192.
 *      CUDA events, 3 warm-ups, median of 15. FLOPs = 4 * L^2 * D * H / 2 per sequence of L
 *      tokens (Q K^T and P V, 2 flops a MAC, half of the square under the causal mask); the
 *      ceiling is a cuBLAS bf16 GEMM 8192^3 (fp32 accumulate) timed in the same run.
 * Exit status: 0 when every check passed, 1 otherwise (2: a CUDA error, printed).
 * Order: phase 0 = fragment self-test, checks and timing of v1/v2 (table printed); phase 1 =
 * wgmma self-test, checks and timing of v3 (table printed again, complete). A fault in v3 ends
 * the program after phase 0's results are out. A version that fails a check is not run again.
 *
 * The two numbers (1 x 8192, D 128, 32 heads, causal): 4 * 8192^2 * 128 * 32 / 2 = 550 GFLOP,
 * 0.70 ms at the 787 TFLOP/s cuBLAS bf16 rate measured on this workplace's H200; unique bytes
 * Q + K + V + O = 4 * 64 MiB = 268 MB, 0.06 ms at 4.2 TB/s: compute-bound by 11x. K/V re-reads
 * (each 128-row query tile reads its KV prefix) come from L2: 32 KB per 4.2 MFLOP of mma.sync
 * tile work (v2) = 128 FLOP/byte, about 3 TB/s of L2 traffic at 400 TFLOP/s.
 * Predictions, before any GPU run: v2 (mma.sync, 16 query rows per warp: every K/V fragment
 * loaded by ldmatrix feeds 16 rows, so shared-memory bandwidth caps it near 2048 FLOP/clk/SM,
 * ~470 TFLOP/s, before softmax) 250-330 TFLOP/s at 1 x 8192 D128, like FlashAttention-2 on H100;
 * v3 (wgmma, B from shared memory without register traffic, softmax overlapped with P V)
 * 450-600 TFLOP/s if its layouts are right; 16 x 1024 lower (fewer tiles per item, more
 * prologue/epilogue per FLOP). */
#include "../../src/backend/cuda/attn_prefill.cuh"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "CUDA error %s: %s at %s:%d\n", cudaGetErrorString(e_), #call,         \
                    __FILE__, __LINE__);                                                           \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)
#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            fprintf(stderr, "cuBLAS error %d: %s at %s:%d\n", (int)s_, #call, __FILE__, __LINE__); \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

typedef __nv_bfloat16 bf16;

/* ---- host bf16 and random numbers --------------------------------------------------------- */

static uint16_t f2bf_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1); /* round to nearest even (inputs are finite) */
    return (uint16_t)(u >> 16);
}
static float bf_bits2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static float bf_round(float f) { return bf_bits2f(f2bf_bits(f)); }
#define BF_NAN ((uint16_t)0x7fc0)

static unsigned long long g_rng = 0x853c49e6748fea9bull;
static uint32_t rnd_u32(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (uint32_t)(g_rng >> 32);
}
static float rnd_unit(void) { return (float)(rnd_u32() >> 8) / 16777216.0f; }
/* Uniform in [lo, hi), as bf16 bits; never exactly zero. */
static uint16_t rnd_bf(float lo, float hi) {
    for (;;) {
        const uint16_t b = f2bf_bits(lo + (hi - lo) * rnd_unit());
        if ((b & 0x7fff) != 0) return b;
    }
}
static int rnd_int(int n) { return (int)(rnd_u32() % (uint32_t)n); }

/* ---- 0. fragment self-test ---------------------------------------------------------------- */

/* One warp. A (16x16, "Q"), Kt (16 rows = KV positions x 16 = head dim, "K"), V (16 positions x
 * 16 dims). flags[lane]: bit 0 ldmatrix A != documented A fragment, bit 1 ldmatrix K (B, non-trans)
 * != documented B fragments, bit 2 ldmatrix.trans V != documented B fragments.
 * c_out[16][16] = A Kt^T through mma with documented fragments, stored by the documented C layout.
 * o_out[16][16] = bf16(c) V through the P repack + ldmatrix.trans path of kernel 2. */
static __global__ void selftest_kernel(const bf16 *A, const bf16 *Kt, const bf16 *V, int *flags,
                                       float *c_out, float *o_out) {
    constexpr int LD = 24; /* 16 + 8, like the kernels' padded rows */
    __shared__ __align__(16) bf16 sA[16 * LD], sK[16 * LD], sV[16 * LD];
    const int lane = threadIdx.x, g = lane >> 2, t = lane & 3;
    for (int i = lane; i < 256; i += 32) {
        sA[(i / 16) * LD + i % 16] = A[i];
        sK[(i / 16) * LD + i % 16] = Kt[i];
        sV[(i / 16) * LD + i % 16] = V[i];
    }
    __syncwarp();
    auto pair = [](const bf16 *m, int r, int c) -> uint32_t { /* m[r][c], m[r][c+1] */
        return (uint32_t)__bfloat16_as_ushort(m[r * 16 + c]) |
               ((uint32_t)__bfloat16_as_ushort(m[r * 16 + c + 1]) << 16);
    };
    auto tpair = [](const bf16 *m, int r, int c) -> uint32_t { /* m[r][c], m[r+1][c] */
        return (uint32_t)__bfloat16_as_ushort(m[r * 16 + c]) |
               ((uint32_t)__bfloat16_as_ushort(m[(r + 1) * 16 + c]) << 16);
    };
    /* documented fragments */
    uint32_t ad[4] = {pair(A, g, 2 * t), pair(A, g + 8, 2 * t), pair(A, g, 2 * t + 8),
                      pair(A, g + 8, 2 * t + 8)};
    /* B[k][n] = Kt[n][k]: b0 (k 2t..2t+1, n g) = Kt[g][2t..]; n-tile 1 uses rows 8..15 */
    uint32_t kd[4] = {pair(Kt, g, 2 * t), pair(Kt, g, 2 * t + 8), pair(Kt, g + 8, 2 * t),
                      pair(Kt, g + 8, 2 * t + 8)};
    /* B[k][n] = V[k][n]: b0 = V[2t][g], V[2t+1][g]; b1 rows 2t+8..; n-tile 1 cols 8.. */
    uint32_t vd[4] = {tpair(V, 2 * t, g), tpair(V, 2 * t + 8, g), tpair(V, 2 * t, g + 8),
                      tpair(V, 2 * t + 8, g + 8)};
    uint32_t al[4], kl[4], vl[4];
    sk_ap_ldsm_x4(al, sk_ap_smem_u32(sA + sk_ap_lane_off_a(lane, LD)));
    sk_ap_ldsm_x4(kl, sk_ap_smem_u32(sK + sk_ap_lane_off_bk(lane, LD)));
    sk_ap_ldsm_x4_t(vl, sk_ap_smem_u32(sV + sk_ap_lane_off_bv(lane, LD)));
    int f = 0;
    for (int i = 0; i < 4; i++) {
        if (al[i] != ad[i]) f |= 1;
        if (kl[i] != kd[i]) f |= 2;
        if (vl[i] != vd[i]) f |= 4;
    }
    flags[lane] = f;
    /* C = A Kt^T with documented fragments */
    float c[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
    sk_ap_mma(c[0], ad, kd[0], kd[1]);
    sk_ap_mma(c[1], ad, kd[2], kd[3]);
    for (int nt = 0; nt < 2; nt++) {
        c_out[g * 16 + nt * 8 + 2 * t] = c[nt][0];
        c_out[g * 16 + nt * 8 + 2 * t + 1] = c[nt][1];
        c_out[(g + 8) * 16 + nt * 8 + 2 * t] = c[nt][2];
        c_out[(g + 8) * 16 + nt * 8 + 2 * t + 1] = c[nt][3];
    }
    /* O = C V: kernel 2's repack of accumulators to A fragments, V by ldmatrix.trans */
    uint32_t pa[4] = {sk_ap_pack_bf16(c[0][0], c[0][1]), sk_ap_pack_bf16(c[0][2], c[0][3]),
                      sk_ap_pack_bf16(c[1][0], c[1][1]), sk_ap_pack_bf16(c[1][2], c[1][3])};
    float o[2][4] = {{0, 0, 0, 0}, {0, 0, 0, 0}};
    sk_ap_mma(o[0], pa, vl[0], vl[1]);
    sk_ap_mma(o[1], pa, vl[2], vl[3]);
    for (int nt = 0; nt < 2; nt++) {
        o_out[g * 16 + nt * 8 + 2 * t] = o[nt][0];
        o_out[g * 16 + nt * 8 + 2 * t + 1] = o[nt][1];
        o_out[(g + 8) * 16 + nt * 8 + 2 * t] = o[nt][2];
        o_out[(g + 8) * 16 + nt * 8 + 2 * t + 1] = o[nt][3];
    }
}

/* Returns the number of failed pieces (0: the mapping the kernels use is right). */
static int selftest(void) {
    uint16_t hA[256], hK[256], hV[256];
    float fA[256], fK[256], fV[256];
    for (int i = 0; i < 256; i++) { /* small nonzero integers: every product and sum exact */
        int a = rnd_int(4) + 1, k = rnd_int(4) + 1, v = rnd_int(4) + 1;
        fA[i] = (float)(rnd_int(2) ? a : -a) * 0.5f;
        fK[i] = (float)(rnd_int(2) ? k : -k) * 0.5f;
        fV[i] = (float)(rnd_int(2) ? v : -v);
        hA[i] = f2bf_bits(fA[i]);
        hK[i] = f2bf_bits(fK[i]);
        hV[i] = f2bf_bits(fV[i]);
    }
    bf16 *dA, *dK, *dV;
    int *dflags;
    float *dc, *dout;
    CUDA_CHECK(cudaMalloc(&dA, 512));
    CUDA_CHECK(cudaMalloc(&dK, 512));
    CUDA_CHECK(cudaMalloc(&dV, 512));
    CUDA_CHECK(cudaMalloc(&dflags, 32 * sizeof(int)));
    CUDA_CHECK(cudaMalloc(&dc, 256 * sizeof(float)));
    CUDA_CHECK(cudaMalloc(&dout, 256 * sizeof(float)));
    CUDA_CHECK(cudaMemcpy(dA, hA, 512, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dK, hK, 512, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dV, hV, 512, cudaMemcpyHostToDevice));
    selftest_kernel<<<1, 32>>>(dA, dK, dV, dflags, dc, dout);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    int flags[32];
    float c[256], o[256];
    CUDA_CHECK(cudaMemcpy(flags, dflags, sizeof flags, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(c, dc, sizeof c, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(o, dout, sizeof o, cudaMemcpyDeviceToHost));
    int fl = 0;
    for (int i = 0; i < 32; i++) fl |= flags[i];
    int bad_c = 0, bad_o = 0;
    float cr[256];
    for (int m = 0; m < 16; m++)
        for (int n = 0; n < 16; n++) {
            float s = 0;
            for (int k = 0; k < 16; k++) s += fA[m * 16 + k] * fK[n * 16 + k];
            cr[m * 16 + n] = bf_round(s);
            if (c[m * 16 + n] != s) bad_c++;
        }
    for (int m = 0; m < 16; m++)
        for (int d = 0; d < 16; d++) {
            float s = 0;
            for (int k = 0; k < 16; k++) s += cr[m * 16 + k] * fV[k * 16 + d];
            if (o[m * 16 + d] != s) bad_o++;
        }
    int fails = 0;
    if (fl & 1) {
        printf("SELFTEST FAIL: ldmatrix A (Q) lane addresses (sk_ap_lane_off_a) do not give the "
               "documented m16n8k16 A fragment\n");
        fails++;
    }
    if (fl & 2) {
        printf("SELFTEST FAIL: ldmatrix B from [n][k] rows (K, sk_ap_lane_off_bk) does not give "
               "the "
               "documented B fragments\n");
        fails++;
    }
    if (fl & 4) {
        printf("SELFTEST FAIL: ldmatrix.trans B from [k][n] rows (V, sk_ap_lane_off_bv) does not "
               "give the documented B fragments\n");
        fails++;
    }
    if (bad_c) {
        printf("SELFTEST FAIL: mma.m16n8k16 with documented fragments: %d/256 of C wrong (fragment "
               "layout of A/B/C as written in sk_ap_mma's comment is wrong)\n", bad_c);
        fails++;
    }
    if (bad_o) {
        printf("SELFTEST FAIL: P repack (accumulators -> A fragment, sk_ap_pack_bf16 order) and/or "
               "ldmatrix.trans V: %d/256 of P V wrong\n", bad_o);
        fails++;
    }
    if (!fails) printf("self-test: ldmatrix A/K/V.trans, mma C layout, P repack: ok\n");
    CUDA_CHECK(cudaFree(dA));
    CUDA_CHECK(cudaFree(dK));
    CUDA_CHECK(cudaFree(dV));
    CUDA_CHECK(cudaFree(dflags));
    CUDA_CHECK(cudaFree(dc));
    CUDA_CHECK(cudaFree(dout));
    return fails;
}

/* One product of the wgmma self-test (TEST as listed below), stored by the accumulator layout. */
template <int TEST>
static __device__ void selftest_wgmma_one(uint32_t sA, uint32_t sK, uint32_t sV, uint32_t sP,
                                          uint32_t (&pa)[32], float *out) {
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    float d[64];
    sk_wg_pin(pa);
    sk_wg_fence();
#pragma unroll
    for (int k = 0; k < 8; k++) {
        if constexpr (TEST == 0)
            sk_ap_wgmma_ss_n128_t0(d, sk_ap3_desc_k(sA, 64, 0, k), sk_ap3_desc_k(sK, 128, 0, k),
                                   k > 0);
        else if constexpr (TEST == 1)
            sk_ap_wgmma_rs_n128_t0(d, pa + 4 * k, sk_ap3_desc_k(sK, 128, 0, k), k > 0);
        else if constexpr (TEST == 2)
            sk_ap_wgmma_ss_n128_t1(d, sk_ap3_desc_k(sP, 64, 0, k), sk_ap3_desc_v(sV, 128, k),
                                   k > 0);
        else if constexpr (TEST == 3)
            sk_ap_wgmma_ss_n128_t1(d, sk_ap3_desc_k(sP, 64, 0, k),
                                   sk_wg_desc(sV + k * 2048, 1024, 128 * 128), k > 0);
        else
            sk_ap_wgmma_rs_n128_t1(d, pa + 4 * k, sk_ap3_desc_v(sV, 128, k), k > 0);
    }
    sk_wg_commit();
    sk_wg_wait<0>();
    sk_wg_pin(d);
    sk_wg_pin(pa);
    float *o = out + TEST * 64 * 128;
#pragma unroll
    for (int i = 0; i < 64; i++) {
        const int row = warp * 16 + g + ((i >> 1) & 1) * 8, col = (i >> 2) * 8 + 2 * t + (i & 1);
        o[row * 128 + col] = d[i];
    }
}

/* wgmma self-test, one warpgroup. A, P: 64 x 128; Kt: 128 (n) x 128 (k); V: 128 (k) x 128 (n).
 * Tiles are written into kernel 3's swizzled layout with plain stores (then fence.proxy.async and
 * a barrier, as in the kernel). out[5][64][128], by the documented accumulator layout:
 *   0: A Kt^T     ss, K-major A and B (kernel 3's S = Q K^T descriptors)
 *   1: P Kt^T     rs, A from registers (m16n8k16 A fragment per warp), B K-major
 *   2: P V        ss, A K-major, B N-major with kernel 3's V descriptor (LBO = rows*128, SBO 1024)
 *   3: P V        ss, as 2 with LBO and SBO swapped (diagnostic only)
 *   4: P V        rs, B N-major: exactly kernel 3's O += P V */
static __global__ void selftest_wgmma_kernel(const bf16 *A, const bf16 *Kt, const bf16 *V,
                                             const bf16 *P, float *out) {
    extern __shared__ __align__(16) unsigned char st_smem[];
    const uint32_t base = (sk_ap_smem_u32(st_smem) + 1023u) & ~1023u;
    unsigned char *gbase = st_smem + (base - sk_ap_smem_u32(st_smem));
    const uint32_t sA = base, sK = base + 16384, sV = base + 49152, sP = base + 81920;
    const int tid = threadIdx.x, warp = tid >> 5, lane = tid & 31, g = lane >> 2, t = lane & 3;
    for (int idx = tid; idx < 128 * 16; idx += 128) {
        const int r = idx / 16, c = idx % 16;
        const int e = r * 128 + c * 8;
        if (r < 64) {
            *(uint4 *)(gbase + (sA - base) + sk_ap3_swz(r, c, 64)) = *(const uint4 *)(A + e);
            *(uint4 *)(gbase + (sP - base) + sk_ap3_swz(r, c, 64)) = *(const uint4 *)(P + e);
        }
        *(uint4 *)(gbase + (sK - base) + sk_ap3_swz(r, c, 128)) = *(const uint4 *)(Kt + e);
        *(uint4 *)(gbase + (sV - base) + sk_ap3_swz(r, c, 128)) = *(const uint4 *)(V + e);
    }
    sk_wg_fence_proxy_async();
    __syncthreads();
    uint32_t pa[32];
    auto pr = [&](int row, int col) -> uint32_t {
        return (uint32_t)__bfloat16_as_ushort(P[row * 128 + col]) |
               ((uint32_t)__bfloat16_as_ushort(P[row * 128 + col + 1]) << 16);
    };
#pragma unroll
    for (int k = 0; k < 8; k++) {
        const int r0 = warp * 16 + g;
        pa[4 * k + 0] = pr(r0, 16 * k + 2 * t);
        pa[4 * k + 1] = pr(r0 + 8, 16 * k + 2 * t);
        pa[4 * k + 2] = pr(r0, 16 * k + 8 + 2 * t);
        pa[4 * k + 3] = pr(r0 + 8, 16 * k + 8 + 2 * t);
    }
    selftest_wgmma_one<0>(sA, sK, sV, sP, pa, out);
    selftest_wgmma_one<1>(sA, sK, sV, sP, pa, out);
    selftest_wgmma_one<2>(sA, sK, sV, sP, pa, out);
    selftest_wgmma_one<3>(sA, sK, sV, sP, pa, out);
    selftest_wgmma_one<4>(sA, sK, sV, sP, pa, out);
}

/* Returns 0 when kernel 3's wgmma descriptors, layouts and fragments are right. */
static int selftest_wgmma(void) {
    const int nA = 64 * 128, nK = 128 * 128;
    uint16_t *hA = (uint16_t *)malloc(2 * nA), *hP = (uint16_t *)malloc(2 * nA);
    uint16_t *hK = (uint16_t *)malloc(2 * nK), *hV = (uint16_t *)malloc(2 * nK);
    float *fA = (float *)malloc(4 * nA), *fP = (float *)malloc(4 * nA);
    float *fK = (float *)malloc(4 * nK), *fV = (float *)malloc(4 * nK);
    auto small = [](void) -> float { /* +-0.5, 1, 1.5, 2: every sum of 128 products is exact */
        const int v = rnd_int(4) + 1;
        return (rnd_int(2) ? v : -v) * 0.5f;
    };
    for (int i = 0; i < nA; i++) {
        fA[i] = small();
        fP[i] = small();
        hA[i] = f2bf_bits(fA[i]);
        hP[i] = f2bf_bits(fP[i]);
    }
    for (int i = 0; i < nK; i++) {
        fK[i] = small();
        fV[i] = small();
        hK[i] = f2bf_bits(fK[i]);
        hV[i] = f2bf_bits(fV[i]);
    }
    bf16 *dA, *dP, *dK, *dV;
    float *dout;
    CUDA_CHECK(cudaMalloc(&dA, 2 * nA));
    CUDA_CHECK(cudaMalloc(&dP, 2 * nA));
    CUDA_CHECK(cudaMalloc(&dK, 2 * nK));
    CUDA_CHECK(cudaMalloc(&dV, 2 * nK));
    CUDA_CHECK(cudaMalloc(&dout, sizeof(float) * 5 * nA));
    CUDA_CHECK(cudaMemcpy(dA, hA, 2 * nA, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dP, hP, 2 * nA, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dK, hK, 2 * nK, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dV, hV, 2 * nK, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemset(dout, 0xff, sizeof(float) * 5 * nA));
    const int smem = 98304 + 1024;
    CUDA_CHECK(cudaFuncSetAttribute(selftest_wgmma_kernel,
                                    cudaFuncAttributeMaxDynamicSharedMemorySize, smem));
    selftest_wgmma_kernel<<<1, 128, smem>>>(dA, dK, dV, dP, dout);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaDeviceSynchronize());
    float *got = (float *)malloc(sizeof(float) * 5 * nA);
    CUDA_CHECK(cudaMemcpy(got, dout, sizeof(float) * 5 * nA, cudaMemcpyDeviceToHost));
    int bad[5] = {0, 0, 0, 0, 0};
    for (int m = 0; m < 64; m++)
        for (int n = 0; n < 128; n++) {
            float akt = 0, pkt = 0, pv = 0;
            for (int k = 0; k < 128; k++) {
                akt += fA[m * 128 + k] * fK[n * 128 + k];
                pkt += fP[m * 128 + k] * fK[n * 128 + k];
                pv += fP[m * 128 + k] * fV[k * 128 + n];
            }
            const float *o = got + m * 128 + n;
            bad[0] += o[0] != akt;
            bad[1] += o[nA] != pkt;
            bad[2] += o[2 * nA] != pv;
            bad[3] += o[3 * nA] != pv;
            bad[4] += o[4 * nA] != pv;
        }
    int fails = 0;
    if (bad[0]) {
        printf("SELFTEST FAIL wgmma: S = Q K^T (ss, K-major 128B-swizzle descriptors of "
               "sk_ap3_desc_k, "
               "or the accumulator layout): %d/8192 wrong\n", bad[0]);
        fails++;
    }
    if (bad[1]) {
        printf("SELFTEST FAIL wgmma: A from registers (rs; m16n8k16 A fragment per warp): %d/8192 "
               "wrong\n", bad[1]);
        fails++;
    }
    if (bad[2]) {
        printf("SELFTEST FAIL wgmma: V as N-major B (sk_ap3_desc_v: LBO = rows*128, SBO = 1024, "
               "imm-trans-b 1): %d/8192 wrong%s\n", bad[2],
               bad[3] ? "" : "; with LBO and SBO SWAPPED it is right: swap them in sk_ap3_desc_v");
        fails++;
    }
    if (bad[4]) {
        printf("SELFTEST FAIL wgmma: P (registers) x V (N-major), kernel 3's O += P V: %d/8192 "
               "wrong\n", bad[4]);
        fails++;
    }
    if (!fails) printf("self-test: wgmma ss K-major, rs A fragments, N-major V: ok\n");
    free(hA); free(hP); free(hK); free(hV); free(fA); free(fP); free(fK); free(fV); free(got);
    CUDA_CHECK(cudaFree(dA));
    CUDA_CHECK(cudaFree(dP));
    CUDA_CHECK(cudaFree(dK));
    CUDA_CHECK(cudaFree(dV));
    CUDA_CHECK(cudaFree(dout));
    return fails;
}

/* ---- versions ----------------------------------------------------------------------------- */

typedef cudaError_t (*attn_fn)(const sk_attn_params *p, cudaStream_t s);
typedef struct version {
    const char *name;
    attn_fn fn;
    int dims_mask; /* bit 0: D 64, bit 1: D 80, bit 2: D 128 */
    int failed;
} version;

static version g_versions[] = {
    {"v1", sk_attn_prefill_launch1, 7, 0},
    {"v2/64", sk_attn_prefill_launch2<64>, 7, 0},
    {"v2/128", sk_attn_prefill_launch2<128>, 7, 0},
    {"v3", sk_attn_prefill_launch3, 5, 0},
    {"v4", sk_attn_prefill_launch4<false>, 5, 0},
    {"v4pp", sk_attn_prefill_launch4<true>, 5, 0},
};
#define N_VERSIONS ((int)(sizeof g_versions / sizeof g_versions[0]))
static int dim_bit(int D) { return D == 64 ? 1 : D == 80 ? 2 : 4; }

/* ---- problems ----------------------------------------------------------------------------- */

#define MAX_B 32
typedef struct problem {
    const char *what;
    int B, H, KVH, D, ps;
    int q_len[MAX_B], kv_len[MAX_B];
    /* derived */
    int T, q_stride, n_pages;
    int32_t qo_indptr[MAX_B + 1], kv_indptr[MAX_B + 1];
    int32_t *indices; /* host */
    uint16_t *hq, *hk, *hv;
    size_t pool_elems, out_elems, guard_elems;
    bf16 *dq, *dk, *dv, *dout;
    int32_t *d_qo, *d_kvp, *d_idx, *d_kvl;
} problem;

/* Host data and device copies. q_pad: extra NaN columns in each q row (q_stride = H*D + q_pad). */
static void problem_make(problem *pr, int q_pad) {
    const int H = pr->H, KVH = pr->KVH, D = pr->D, ps = pr->ps, B = pr->B;
    pr->T = 0;
    pr->qo_indptr[0] = 0;
    pr->kv_indptr[0] = 0;
    for (int b = 0; b < B; b++) {
        pr->T += pr->q_len[b];
        pr->qo_indptr[b + 1] = pr->T;
        pr->kv_indptr[b + 1] = pr->kv_indptr[b] + (pr->kv_len[b] + ps - 1) / ps;
    }
    const int used = pr->kv_indptr[B];
    pr->n_pages = used + 3; /* spare pages, NaN */
    int *perm = (int *)malloc(sizeof(int) * pr->n_pages);
    for (int i = 0; i < pr->n_pages; i++) perm[i] = i;
    for (int i = pr->n_pages - 1; i > 0; i--) {
        const int j = rnd_int(i + 1), x = perm[i];
        perm[i] = perm[j];
        perm[j] = x;
    }
    pr->indices = (int32_t *)malloc(sizeof(int32_t) * (used > 0 ? used : 1));
    for (int i = 0; i < used; i++) pr->indices[i] = perm[i];
    free(perm);

    pr->q_stride = H * D + q_pad;
    const size_t nq = (size_t)pr->T * pr->q_stride;
    pr->pool_elems = (size_t)pr->n_pages * KVH * ps * D;
    pr->out_elems = (size_t)pr->T * H * D;
    pr->guard_elems = 4096;
    pr->hq = (uint16_t *)malloc(2 * (nq > 0 ? nq : 1));
    pr->hk = (uint16_t *)malloc(2 * pr->pool_elems);
    pr->hv = (uint16_t *)malloc(2 * pr->pool_elems);
    for (int t = 0; t < pr->T; t++) {
        uint16_t *row = pr->hq + (size_t)t * pr->q_stride;
        for (int i = 0; i < H * D; i++) row[i] = rnd_bf(-6.0f, 6.0f);
        for (int i = H * D; i < pr->q_stride; i++) row[i] = BF_NAN;
    }
    for (size_t i = 0; i < pr->pool_elems; i++) pr->hk[i] = pr->hv[i] = BF_NAN;
    for (int b = 0; b < B; b++)
        for (int n = 0; n < pr->kv_len[b]; n++) {
            const int page = pr->indices[pr->kv_indptr[b] + n / ps];
            for (int kh = 0; kh < KVH; kh++) {
                const size_t off = (((size_t)page * KVH + kh) * ps + n % ps) * D;
                for (int d = 0; d < D; d++) {
                    pr->hk[off + d] = rnd_bf(-1.0f, 1.0f);
                    pr->hv[off + d] = rnd_bf(-1.0f, 1.0f);
                }
            }
        }
    CUDA_CHECK(cudaMalloc(&pr->dq, 2 * (nq > 0 ? nq : 1)));
    CUDA_CHECK(cudaMalloc(&pr->dk, 2 * pr->pool_elems));
    CUDA_CHECK(cudaMalloc(&pr->dv, 2 * pr->pool_elems));
    CUDA_CHECK(cudaMalloc(&pr->dout, 2 * (pr->out_elems + pr->guard_elems)));
    CUDA_CHECK(cudaMalloc(&pr->d_qo, sizeof(int32_t) * (B + 1)));
    CUDA_CHECK(cudaMalloc(&pr->d_kvp, sizeof(int32_t) * (B + 1)));
    CUDA_CHECK(cudaMalloc(&pr->d_idx, sizeof(int32_t) * (used > 0 ? used : 1)));
    CUDA_CHECK(cudaMalloc(&pr->d_kvl, sizeof(int32_t) * B));
    CUDA_CHECK(cudaMemcpy(pr->dq, pr->hq, 2 * nq, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pr->dk, pr->hk, 2 * pr->pool_elems, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pr->dv, pr->hv, 2 * pr->pool_elems, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pr->d_qo, pr->qo_indptr, sizeof(int32_t) * (B + 1),
                          cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pr->d_kvp, pr->kv_indptr, sizeof(int32_t) * (B + 1),
                          cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pr->d_idx, pr->indices, sizeof(int32_t) * used, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pr->d_kvl, pr->kv_len, sizeof(int32_t) * B, cudaMemcpyHostToDevice));
}

static void problem_free(problem *pr) {
    free(pr->indices);
    free(pr->hq);
    free(pr->hk);
    free(pr->hv);
    CUDA_CHECK(cudaFree(pr->dq));
    CUDA_CHECK(cudaFree(pr->dk));
    CUDA_CHECK(cudaFree(pr->dv));
    CUDA_CHECK(cudaFree(pr->dout));
    CUDA_CHECK(cudaFree(pr->d_qo));
    CUDA_CHECK(cudaFree(pr->d_kvp));
    CUDA_CHECK(cudaFree(pr->d_idx));
    CUDA_CHECK(cudaFree(pr->d_kvl));
}

static sk_attn_params problem_params(const problem *pr) {
    sk_attn_params p;
    memset(&p, 0, sizeof p);
    p.kv.k = pr->dk;
    p.kv.v = pr->dv;
    p.kv.indptr = pr->d_kvp;
    p.kv.indices = pr->d_idx;
    p.kv.kv_len = pr->d_kvl;
    p.kv.page_size = pr->ps;
    p.kv.n_kv_heads = pr->KVH;
    p.kv.head_dim = pr->D;
    p.q = pr->dq;
    p.q_stride = pr->q_stride;
    p.out = pr->dout;
    p.qo_indptr = pr->d_qo;
    p.batch = pr->B;
    p.n_heads = pr->H;
    p.sm_scale = 1.0f / sqrtf((float)pr->D);
    return p;
}

/* ---- CPU reference ------------------------------------------------------------------------ */

typedef struct pair {
    int t, h; /* query row (global), head */
} pair;

/* ref[D]: softmax(q.k * scale) v over positions 0..pos in double. naive[D]: the same with p
 * rounded to bf16 before P V and the output rounded to bf16 (a plain bf16 kernel's roundings). */
static void attention_cpu(const problem *pr, int t, int h, double *s, float *ref, float *naive) {
    const int D = pr->D, KVH = pr->KVH, ps = pr->ps, kvh = h / (pr->H / KVH);
    int b = 0;
    while (pr->qo_indptr[b + 1] <= t) b++;
    const int pos = pr->kv_len[b] - pr->q_len[b] + (t - pr->qo_indptr[b]);
    const uint16_t *q = pr->hq + (size_t)t * pr->q_stride + (size_t)h * D;
    const double scale = 1.0 / sqrt((double)D);
    float qf[128];
    for (int d = 0; d < D; d++) qf[d] = bf_bits2f(q[d]);
    double mx = -INFINITY;
    for (int n = 0; n <= pos; n++) {
        const int page = pr->indices[pr->kv_indptr[b] + n / ps];
        const uint16_t *k = pr->hk + (((size_t)page * KVH + kvh) * ps + n % ps) * D;
        double dot = 0;
        for (int d = 0; d < D; d++) dot += (double)qf[d] * bf_bits2f(k[d]);
        s[n] = dot * scale;
        if (s[n] > mx) mx = s[n];
    }
    double l = 0, o[128], on[128];
    for (int d = 0; d < D; d++) o[d] = on[d] = 0;
    for (int n = 0; n <= pos; n++) {
        const double pn = exp(s[n] - mx);
        const double pb = bf_round((float)pn);
        l += pn;
        const int page = pr->indices[pr->kv_indptr[b] + n / ps];
        const uint16_t *v = pr->hv + (((size_t)page * KVH + kvh) * ps + n % ps) * D;
        for (int d = 0; d < D; d++) {
            const double vv = bf_bits2f(v[d]);
            o[d] += pn * vv;
            on[d] += pb * vv;
        }
    }
    for (int d = 0; d < D; d++) {
        ref[d] = (float)(o[d] / l);
        naive[d] = bf_round((float)(on[d] / l));
    }
}

/* The (row, head) pairs to check: all of them when the reference costs at most `budget` MACs,
 * else each sequence's first and last row (random head), then random pairs until the budget or
 * max_random is reached. Returns the count; *out malloc'ed. */
static int pick_pairs(const problem *pr, double budget, int max_random, pair **out) {
    double full = 0;
    for (int b = 0; b < pr->B; b++)
        for (int i = 0; i < pr->q_len[b]; i++)
            full += (double)(pr->kv_len[b] - pr->q_len[b] + i + 1) * 2.0 * pr->D * pr->H;
    if (full <= budget) {
        const int n = pr->T * pr->H;
        pair *ps = (pair *)malloc(sizeof(pair) * (n > 0 ? n : 1));
        for (int t = 0; t < pr->T; t++)
            for (int h = 0; h < pr->H; h++) ps[t * pr->H + h] = (pair){t, h};
        *out = ps;
        return n;
    }
    const int cap = 2 * pr->B + max_random;
    pair *ps = (pair *)malloc(sizeof(pair) * cap);
    int n = 0;
    double cost = 0;
    for (int b = 0; b < pr->B; b++) {
        if (pr->q_len[b] == 0) continue;
        ps[n++] = (pair){pr->qo_indptr[b], rnd_int(pr->H)};
        ps[n++] = (pair){pr->qo_indptr[b + 1] - 1, rnd_int(pr->H)};
        cost += (double)pr->kv_len[b] * 2.0 * pr->D;
    }
    for (int i = 0; i < max_random && cost < budget; i++) {
        const int t = rnd_int(pr->T);
        ps[n++] = (pair){t, rnd_int(pr->H)};
        int b = 0;
        while (pr->qo_indptr[b + 1] <= t) b++;
        cost += (double)(pr->kv_len[b] - pr->q_len[b] + t - pr->qo_indptr[b] + 1) * 2.0 * pr->D;
    }
    *out = ps;
    return n;
}

typedef struct refset {
    int n;
    pair *pairs;
    float *ref, *naive;     /* [n][D] */
    double naive_l2, naive_worst;
} refset;

static void refset_make(refset *rs, const problem *pr, double budget, int max_random) {
    rs->n = pick_pairs(pr, budget, max_random, &rs->pairs);
    rs->ref = (float *)malloc(sizeof(float) * (size_t)rs->n * pr->D);
    rs->naive = (float *)malloc(sizeof(float) * (size_t)rs->n * pr->D);
    int max_kv = 1;
    for (int b = 0; b < pr->B; b++) max_kv = pr->kv_len[b] > max_kv ? pr->kv_len[b] : max_kv;
    double *s = (double *)malloc(sizeof(double) * max_kv);
    double e2 = 0, r2 = 0;
    rs->naive_worst = 0;
    for (int i = 0; i < rs->n; i++) {
        float *r = rs->ref + (size_t)i * pr->D, *nv = rs->naive + (size_t)i * pr->D;
        attention_cpu(pr, rs->pairs[i].t, rs->pairs[i].h, s, r, nv);
        double pe = 0, pr2 = 0;
        for (int d = 0; d < pr->D; d++) {
            pe += ((double)nv[d] - r[d]) * ((double)nv[d] - r[d]);
            pr2 += (double)r[d] * r[d];
        }
        e2 += pe;
        r2 += pr2;
        const double w = sqrt(pe / (pr2 > 1e-30 ? pr2 : 1e-30));
        if (w > rs->naive_worst) rs->naive_worst = w;
    }
    rs->naive_l2 = sqrt(e2 / (r2 > 1e-30 ? r2 : 1e-30));
    free(s);
}

static void refset_free(refset *rs) {
    free(rs->pairs);
    free(rs->ref);
    free(rs->naive);
}

/* Runs version v once on poisoned output and checks it. Returns 1 when it passes. */
static int check_version(const problem *pr, const refset *rs, version *v, uint16_t *hout) {
    const sk_attn_params p = problem_params(pr);
    const size_t n_all = pr->out_elems + pr->guard_elems;
    CUDA_CHECK(cudaMemset(pr->dout, 0xff, 2 * n_all)); /* 0xffff: NaN */
    CUDA_CHECK(v->fn(&p, 0));
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(hout, pr->dout, 2 * n_all, cudaMemcpyDeviceToHost));
    size_t unwritten = 0, guard_bad = 0;
    for (size_t i = 0; i < pr->out_elems; i++) {
        const float f = bf_bits2f(hout[i]);
        if (!isfinite(f)) unwritten++;
    }
    for (size_t i = pr->out_elems; i < n_all; i++) guard_bad += hout[i] != 0xffff;
    double e2 = 0, r2 = 0, worst = 0;
    int worst_i = -1;
    for (int i = 0; i < rs->n; i++) {
        const pair pp = rs->pairs[i];
        const uint16_t *o = hout + ((size_t)pp.t * pr->H + pp.h) * pr->D;
        const float *r = rs->ref + (size_t)i * pr->D;
        double pe = 0, pr2 = 0;
        for (int d = 0; d < pr->D; d++) {
            double df = (double)bf_bits2f(o[d]) - r[d];
            if (df != df) df = 1e30;
            pe += df * df;
            pr2 += (double)r[d] * r[d];
        }
        e2 += pe;
        r2 += pr2;
        const double w = sqrt(pe / (pr2 > 1e-30 ? pr2 : 1e-30));
        if (!(w <= worst)) {
            worst = w;
            worst_i = i;
        }
    }
    const double l2 = sqrt(e2 / (r2 > 1e-30 ? r2 : 1e-30));
    const double tol_l2 = fmax(3.0 * rs->naive_l2, 1e-3);
    const double tol_w = fmax(4.0 * rs->naive_worst, 1e-2);
    const int ok = !unwritten && !guard_bad && l2 <= tol_l2 && worst <= tol_w;
    printf("%s %-7s %-44s rel_l2 %.2e (tol %.1e, naive %.1e) worst row %.2e (tol %.1e)",
           ok ? "ok  " : "FAIL", v->name, pr->what, l2, tol_l2, rs->naive_l2, worst, tol_w);
    if (unwritten) printf("  %zu outputs unwritten/NaN", unwritten);
    if (guard_bad) printf("  %zu guard elements overwritten", guard_bad);
    if (!ok && worst_i >= 0)
        printf("  worst at row %d head %d", rs->pairs[worst_i].t, rs->pairs[worst_i].h);
    printf("\n");
    return ok;
}

/* ---- timing ------------------------------------------------------------------------------- */

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

static float time_version(const version *v, const sk_attn_params *p, int warmup, int reps) {
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    for (int i = 0; i < warmup; i++) CUDA_CHECK(v->fn(p, 0));
    float *ms = (float *)malloc(sizeof(float) * (size_t)reps);
    for (int i = 0; i < reps; i++) {
        CUDA_CHECK(cudaEventRecord(e0, 0));
        CUDA_CHECK(v->fn(p, 0));
        CUDA_CHECK(cudaEventRecord(e1, 0));
        CUDA_CHECK(cudaEventSynchronize(e1));
        CUDA_CHECK(cudaEventElapsedTime(&ms[i], e0, e1));
    }
    qsort(ms, (size_t)reps, sizeof(float), cmp_float);
    const float med = ms[reps / 2];
    free(ms);
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    return med;
}

static __global__ void fill_random_bf16(bf16 *x, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 0x9e3779b9u ^ seed;
        h ^= h >> 16;
        h *= 0x85ebca6bu;
        h ^= h >> 13;
        h *= 0xc2b2ae35u;
        h ^= h >> 16;
        x[i] = __float2bfloat16_rn(((float)(h >> 8) / 16777216.0f) * 2.0f - 1.0f + 1e-3f);
    }
}

/* TFLOP/s of a cuBLAS bf16 GEMM 8192^3 (fp32 accumulate, bf16 out) on random data: the dense
 * peak the attention numbers are quoted against. */
static double cublas_peak_tflops(void) {
    const int N = 8192;
    bf16 *a, *b, *c;
    CUDA_CHECK(cudaMalloc(&a, (size_t)N * N * 2));
    CUDA_CHECK(cudaMalloc(&b, (size_t)N * N * 2));
    CUDA_CHECK(cudaMalloc(&c, (size_t)N * N * 2));
    fill_random_bf16<<<1024, 256>>>(a, (size_t)N * N, 1u);
    fill_random_bf16<<<1024, 256>>>(b, (size_t)N * N, 2u);
    CUDA_CHECK(cudaGetLastError());
    cublasHandle_t hdl;
    CUBLAS_CHECK(cublasCreate(&hdl));
    const float one = 1.0f, zero = 0.0f;
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float ms[10];
    for (int i = 0; i < 13; i++) {
        CUDA_CHECK(cudaEventRecord(e0, 0));
        CUBLAS_CHECK(cublasGemmEx(hdl, CUBLAS_OP_N, CUBLAS_OP_N, N, N, N, &one, a, CUDA_R_16BF, N,
                                  b, CUDA_R_16BF, N, &zero, c, CUDA_R_16BF, N, CUBLAS_COMPUTE_32F,
                                  CUBLAS_GEMM_DEFAULT));
        CUDA_CHECK(cudaEventRecord(e1, 0));
        CUDA_CHECK(cudaEventSynchronize(e1));
        if (i >= 3) CUDA_CHECK(cudaEventElapsedTime(&ms[i - 3], e0, e1));
    }
    qsort(ms, 10, sizeof(float), cmp_float);
    CUBLAS_CHECK(cublasDestroy(hdl));
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    CUDA_CHECK(cudaFree(a));
    CUDA_CHECK(cudaFree(b));
    CUDA_CHECK(cudaFree(c));
    return 2.0 * N * (double)N * N / (ms[5] * 1e-3) / 1e12;
}

/* ---- cases -------------------------------------------------------------------------------- */

typedef struct spec {
    const char *what;
    int B, H, KVH, ps;
    int q_len[MAX_B], kv_len[MAX_B]; /* kv_len 0: = q_len */
} spec;

/* Correctness cases, run at each head dim. */
static const spec k_checks[] = {
    {"MHA 4/4 L=1 ps16", 1, 4, 4, 16, {1}, {0}},
    {"GQA 8/2 L=17 ps64", 1, 8, 2, 64, {17}, {0}},
    {"GQA 16/2 (group 8) L=100 ps128", 1, 16, 2, 128, {100}, {0}},
    {"MQA 6/1 L=1000 ps32", 1, 6, 1, 32, {1000}, {0}},
    {"MHA 2/2 L=4097 ps16", 1, 2, 2, 16, {4097}, {0}},
    {"GQA 8/2 L=257 ps128 (tile+1)", 1, 8, 2, 128, {257}, {0}},
    {"ragged x9 GQA 8/2 ps64", 9, 8, 2, 64, {1, 17, 100, 1000, 64, 128, 129, 4097, 63}, {0}},
    {"chunked x4 GQA 4/1 ps128", 4, 4, 1, 128, {100, 17, 1, 1000}, {1000, 4097, 300, 1017}},
    {"chunked x3 MHA 4/4 ps16", 3, 4, 4, 16, {128, 65, 200}, {192, 1000, 200}},
};
#define N_CHECKS ((int)(sizeof k_checks / sizeof k_checks[0]))

typedef struct tspec {
    const char *what;
    int B, L, H, KVH, D, ps;
} tspec;

static const tspec k_times[] = {
    {"1x8192 D128 32/32 (Llama-7B)", 1, 8192, 32, 32, 128, 64},
    {"1x8192 D128 64/8 GQA", 1, 8192, 64, 8, 128, 64},
    {"2x4096 D128 32/32", 2, 4096, 32, 32, 128, 64},
    {"16x1024 D128 32/32", 16, 1024, 32, 32, 128, 64},
    {"1x8192 D64 232/8 (Falcon-180B)", 1, 8192, 232, 8, 64, 64},
    {"1x8192 D128 32/32 ps16", 1, 8192, 32, 32, 128, 16},
};
#define N_TIMES ((int)(sizeof k_times / sizeof k_times[0]))

static int version_selected(const version *v, const char *filter) {
    return !filter || strstr(v->name, filter) != NULL;
}

/* Phase 0: v1 and v2 (mma.sync); phase 1: the wgmma self-test, then v3. Phase 0's results are
 * printed in full before phase 1 starts, so a fault in v3 (a CUDA error ends the program) cannot
 * hide them. */
static int is_phase(const version *v, int phase) {
    return (strncmp(v->name, "v3", 2) == 0 || strncmp(v->name, "v4", 2) == 0) == (phase == 1);
}

static int run_checks(int phase, const char *filter) {
    int failures = 0;
    const int dims[3] = {64, 80, 128};
    for (int di = 0; di < 3; di++) {
        for (int ci = 0; ci < N_CHECKS; ci++) {
            const spec *sp = &k_checks[ci];
            int any = 0;
            for (int v = 0; v < N_VERSIONS; v++)
                any |= is_phase(&g_versions[v], phase) &&
                       version_selected(&g_versions[v], filter) && !g_versions[v].failed &&
                       (g_versions[v].dims_mask & dim_bit(dims[di]));
            if (!any) continue;
            problem pr;
            memset(&pr, 0, sizeof pr);
            char what[96];
            snprintf(what, sizeof what, "D%d %s", dims[di], sp->what);
            pr.what = what;
            pr.B = sp->B;
            pr.H = sp->H;
            pr.KVH = sp->KVH;
            pr.D = dims[di];
            pr.ps = sp->ps;
            for (int b = 0; b < sp->B; b++) {
                pr.q_len[b] = sp->q_len[b];
                pr.kv_len[b] = sp->kv_len[b] ? sp->kv_len[b] : sp->q_len[b];
            }
            problem_make(&pr, 8);
            refset rs;
            refset_make(&rs, &pr, 1e8, 256);
            uint16_t *hout = (uint16_t *)malloc(2 * (pr.out_elems + pr.guard_elems));
            for (int v = 0; v < N_VERSIONS; v++) {
                version *ver = &g_versions[v];
                if (!is_phase(ver, phase) || !version_selected(ver, filter) || ver->failed ||
                    !(ver->dims_mask & dim_bit(pr.D)))
                    continue;
                if (!check_version(&pr, &rs, ver, hout)) {
                    ver->failed = 1; /* not run again: a wrong kernel may also fault */
                    failures++;
                }
            }
            free(hout);
            refset_free(&rs);
            problem_free(&pr);
        }
    }
    return failures;
}

/* Times every passing version of the phase at every timing shape (after checking it there on a
 * subset of rows); appends rows to table. */
static int run_timing(int phase, const char *filter, double peak, char *table, size_t cap,
                      int *tl) {
    int failures = 0;
    for (int si = 0; si < N_TIMES; si++) {
        const tspec *ts = &k_times[si];
        int any = 0;
        for (int v = 0; v < N_VERSIONS; v++)
            any |= is_phase(&g_versions[v], phase) && version_selected(&g_versions[v], filter) &&
                   !g_versions[v].failed && (g_versions[v].dims_mask & dim_bit(ts->D)) &&
                   (v != 0 || ts->B == 16);
        if (!any) continue;
        problem pr;
        memset(&pr, 0, sizeof pr);
        pr.what = ts->what;
        pr.B = ts->B;
        pr.H = ts->H;
        pr.KVH = ts->KVH;
        pr.D = ts->D;
        pr.ps = ts->ps;
        for (int b = 0; b < ts->B; b++) pr.q_len[b] = pr.kv_len[b] = ts->L;
        problem_make(&pr, 0);
        refset rs;
        refset_make(&rs, &pr, 1.5e8, 64);
        uint16_t *hout = (uint16_t *)malloc(2 * (pr.out_elems + pr.guard_elems));
        const double flops = 4.0 * ts->L * (double)ts->L * ts->D * ts->H / 2.0 * ts->B;
        const sk_attn_params p = problem_params(&pr);
        for (int v = 0; v < N_VERSIONS; v++) {
            version *ver = &g_versions[v];
            if (!is_phase(ver, phase) || !version_selected(ver, filter) || ver->failed ||
                !(ver->dims_mask & dim_bit(pr.D)))
                continue;
            if (v == 0 && ts->B != 16) continue; /* v1 is a reference: one shape only */
            if (!check_version(&pr, &rs, ver, hout)) {
                ver->failed = 1;
                failures++;
                continue;
            }
            const float ms = time_version(ver, &p, 3, 15);
            const float ms2 = time_version(ver, &p, 1, 15); /* the same again: the noise */
            const double tf = flops / (ms * 1e-3) / 1e12;
            printf("time %-34s %-8s %9.3f ms (again %.3f) %7.1f TFLOP/s %5.1f%% of cuBLAS\n",
                   ts->what, ver->name, ms, ms2, tf, 100.0 * tf / peak);
            *tl += snprintf(table + *tl, cap - *tl, "%-34s %-8s %10.3f %9.1f %6.1f%%\n", ts->what,
                            ver->name, ms, tf, 100.0 * tf / peak);
        }
        free(hout);
        refset_free(&rs);
        problem_free(&pr);
    }
    return failures;
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    const char *mode = argc > 1 ? argv[1] : "all";
    const char *filter = argc > 2 ? argv[2] : NULL;
    const int do_checks = strcmp(mode, "time") != 0;
    const int do_time = strcmp(mode, "check") != 0;
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s, %d SMs, L2 %d MB, smem/block opt-in %zu KB\n", prop.name,
           prop.multiProcessorCount, prop.l2CacheSize >> 20, prop.sharedMemPerBlockOptin >> 10);

    int failures = 0;
    double peak = 0;
    char table[8192];
    int tl = 0;
    for (int phase = 0; phase < 2; phase++) {
        if (phase == 0) {
            const int f = selftest();
            if (f) {
                printf("fragment self-test failed: version 2 is not run\n");
                for (int v = 0; v < N_VERSIONS; v++)
                    if (strncmp(g_versions[v].name, "v2", 2) == 0) g_versions[v].failed = 1;
                failures += f;
            }
        } else {
            int any = 0;
            for (int v = 0; v < N_VERSIONS; v++)
                any |= is_phase(&g_versions[v], 1) && version_selected(&g_versions[v], filter);
            if (!any) break;
            const int f = selftest_wgmma();
            if (f) {
                printf("wgmma self-test failed: version 3 is not run\n");
                for (int v = 0; v < N_VERSIONS; v++)
                    if (is_phase(&g_versions[v], 1)) g_versions[v].failed = 1;
                failures += f;
            }
        }
        if (do_checks) {
            const int f = run_checks(phase, filter);
            printf("phase %d (%s): %s, %d failure(s)\n", phase, phase ? "v3" : "v1, v2",
                   f ? "CHECKS FAILED" : "checks passed", f);
            failures += f;
        }
        if (do_time) {
            if (phase == 0 || peak == 0) {
                peak = cublas_peak_tflops();
                printf("cuBLAS bf16 GEMM 8192^3 (fp32 accumulate): %.0f TFLOP/s, the peak below\n",
                       peak);
                printf("FLOPs = 4 * L^2 * D * H / 2 per sequence of L tokens (causal)\n");
                tl += snprintf(table + tl, sizeof table - tl, "\n%-34s %-8s %10s %9s %7s\n",
                               "shape", "version", "ms", "TFLOP/s", "%peak");
            }
            failures += run_timing(phase, filter, peak, table, sizeof table, &tl);
            printf("%s", table);
        }
    }
    printf("cuBLAS peak %.0f TFLOP/s; %s\n", peak,
           failures ? "SOME CHECKS FAILED (failed versions were not timed)" : "all checks passed");
    for (int v = 0; v < N_VERSIONS; v++)
        printf("  %-8s %s\n", g_versions[v].name, g_versions[v].failed ? "FAILED" : "ok");
    return failures ? 1 : 0;
}
