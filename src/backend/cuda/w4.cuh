/* W4A16: INT4 weights (group-quantized, asymmetric, integer zero points: AWQ and RTN) for the
 * CUDA backend. Included by matmul.cu / backend.cu and by the workbench dev/cuda/gemv_w4.cu.
 *
 * Device layout of an N x K weight with group size G (32, 64 or 128), repacked on load from the
 * file's Q4G blocks (core/dtype.h) or drawn directly for synthetic models:
 *   q4  uint32, tile-major (w4_layout.h, session 30): [ceil(N/16) tiles][ceil(K/128) steps]
 *       [16 rows][16 words], word j of row n at sk_w4_widx(n, j, K) (SK_W4_WO / SK_W4_WC in
 *       16-byte units); word j of row n holds elements 8j..8j+7, nibble order
 *       e0 e2 e4 e6 in bits 0-15 (4 bits each, low first) and e1 e3 e5 e7 in bits 16-31, so that
 *       (word >> 4p) & 0x000f000f holds (e_2p, e_2p+1) in the two 16-bit halves: OR-ing
 *       0x64006400 makes the half2 (1024 + e_2p, 1024 + e_2p+1) with one LOP3.
 *   q4s half2 [N][K/G]: (d, 1024 + z) per group: value = ((1024 + q) - (1024 + z)) * d, the
 *       subtraction exact in fp16 (integers below 2048).
 * Bytes per weight: 0.5 + 4/G (0.53 at G = 128).
 *
 * Kernels:
 *   sk_w4_tc_kernel     decode (T <= 4 rows of x), the backend's: dequantized to bf16 (q - z)
 *                       in registers and multiplied on the tensor cores (mma.sync) with x split
 *                       into bf16 hi + lo, scaled per group in fp32; epilogues as gemv.cuh
 *                       (store, residual add, SwiGLU over [Wg; Wu]). Its comment says more.
 *   sk_w4_tq_kernel     (session 9: one wave, a deeper ring; session 14: RS1, the ring and
 *                       each step's x and gamma in shared memory; the default for qkv-sized
 *                       STORE and for ADD products at T <= 2, SAKER_W4_TQ_*)
 *                       sk_w4_tc_kernel's ZC3 step for STORE / ADD with compile-time warps a
 *                       block and ring depth (one wave, more bytes in flight), bias and
 *                       residual read early, an optional L2 prefetch. Its comment says why.
 *   sk_w4_ts_kernel     (session 10: SwiGLU at T <= 2 on persistent blocks, one ring across a
 *                       block's tiles, x split once per block; the default for gate/up at
 *                       T <= 2, SAKER_W4_TQ_SW=0..8)
 *   sk_w4_gemv_kernel   decode on CUDA cores (the first version, SAKER_W4_GEMV=1): one warp owns
 *                       R rows, its lanes take 16-byte chunks (32 weights) of each row;
 *                       dequantized in registers (LOP3 to half2, one HSUB2, then fp32), fp32 FMAs
 *                       with x read in fp32 (shared across the R rows), fp32 accumulation.
 *   sk_w4_dequant_kernel  INT4 -> half rows for larger T (then cuBLASLt on the half copy).
 *   sk_w4_embed_kernel  rows of an INT4 table to fp32 (an INT4 token embedding).
 *   sk_w4_random_kernel synthetic INT4 weights: random nibbles, z alternating 7/8 per group
 *                       (mean (q - z) ~ 0), d = std / 4.6 (the std of q - z). */
#ifndef SK_CUDA_W4_CUH
#define SK_CUDA_W4_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <limits.h>
#include <stdint.h>

#include "backend/cuda/pdl.cuh"
#include "backend/cuda/w4_layout.h"

#define SK_W4_WARPS 4
#ifndef SK_W4_KS
#define SK_W4_KS 4 /* warps of a block that split K for the same rows (1: none) */
#endif
#define SK_W4_MAX_T 4
/* SK_W4_PROBE (build-time, workbench only; 0 in every product build): 1 = the decode GEMVs' MMA
 * steps (sk_w4tc_mma, sk_w4tm_mma) reduced to an XOR of their weight and scale words, so a
 * kernel does its loads, rings, x prologue and epilogue but no dequantization or MMA ("loads
 * only"); 2 = every weight load (sk_w4_ld_stream, sk_w4_cp_stream) redirected into the first
 * 4 KB of its 64 KB-aligned window, so the weights come from L2 ("math only"). Outputs are
 * meaningless; what it answers is where a product's time goes (session 19). */
#ifndef SK_W4_PROBE
#define SK_W4_PROBE 0
#endif
#if SK_W4_PROBE == 2
#define SK_W4_PROBE_ADDR(p) \
    (reinterpret_cast<const uint4 *>((reinterpret_cast<uintptr_t>(p) & ~(uintptr_t)0xffff) | \
                                     (reinterpret_cast<uintptr_t>(p) & (uintptr_t)0xfff)))
#else
#define SK_W4_PROBE_ADDR(p) (p)
#endif
/* The decode GEMVs' weight addressing in 16-byte units (uint4): row n's first chunk SK_W4_WO(n,
 * C) (C = K / 32 chunks a row) plus chunk c's SK_W4_WC(c), for the tile-major q4 (w4_layout.h:
 * a tile's step 64 chunks, 1 KB; row n & 15 at 4 chunks a row in it). Session 20 timed this
 * layout with the per-lane loads (a warp load is then 512 contiguous bytes): no change; the
 * TMA-fed kernels (w4_tb.cuh) are what gain from it. */
#define SK_W4_WO(n, C) (((n) >> 4) * ((((C) + 3) >> 2) << 6) + ((n) & 15) * 4)
#define SK_W4_WC(c) ((((c) >> 2) << 6) + ((c) & 3))
/* SK_W4_PROBE 1: the step's weight and scale words folded into acc[0][0][0] (keeps the loads). */
#define SK_W4_PROBE_FOLD(wv, sv, accf)                                                             \
    do {                                                                                           \
        uint32_t h_ = 0u;                                                                          \
        _Pragma("unroll") for (int m_ = 0; m_ < NT; m_++)                                          \
            _Pragma("unroll") for (int r_ = 0; r_ < 2; r_++) h_ ^= wv[m_][r_].x ^ wv[m_][r_].y ^   \
                                                             wv[m_][r_].z ^ wv[m_][r_].w ^ sv[m_][r_]; \
        accf += __uint_as_float((h_ & 0x007fffffu) | 0x30000000u);                                 \
    } while (0)

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
    const int KG = K / G, C = K >> 5; /* groups per row, 16-byte chunks per row */
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
            sk_prefetch_l2(q4 + (size_t)4 * SK_W4_WO((size_t)rows[r], (size_t)C), (size_t)pf_bytes,
                           lane + 32 * slice, 32 * KS); /* the first tile steps (not this row's alone) */
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
                    wv[u][r] = __ldg(reinterpret_cast<const uint4 *>(q4) + SK_W4_WO((size_t)rows[r], (size_t)C) +
                                     SK_W4_WC(c));
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

/* ---- Tensor-core decode GEMV (sk_w4_tc_kernel), T <= 4 rows of x ---------------------------
 *
 * Why: the kernel above spends 4.2 instructions per weight at T = 1 (SASS of R8 U1: 1085 per
 * 256 weights a lane; shift, two LOP3, HSUB2, two conversions, two FFMAs per pair) and T times the
 * FFMAs at T rows (70B o at T = 4: 162 us); in SwiGLU mode it holds 16 rows per warp at 251
 * registers (8 warps per SM: 70B gate/up 123 us, 2.0 TB/s). Here the products go to mma.sync
 * m16n8k16 (bf16 in, fp32 accumulate): the weights are the A operand, and x is the B operand split
 * as x = hi + lo (two bf16 columns per row of x; |x - hi - lo| <= 2^-18 |x|, so the result is
 * about as accurate as fp32 FMAs: worst max|err| / sum|x w| 1.9e-6 in the workbench). Per weight
 * that leaves the dequantization (3/8 shift, 1/2 LOP3, and with ZC = 0 1/2 bf16 subtraction) and
 * 1/64 MMA, whatever T <= 4 is: 2.7 instructions per weight at T = 1 (171 per step of 64 weights
 * a lane), 0.73 per weight and row of x at T = 4 (MT 2).
 *
 * Measured on the H200 (2026-11-29, bench/results/awq-speed.md): 70B shapes at T = 1 in 15.9-86 us
 * (2.1-2.9 TB/s of INT4 bytes, 50-69% of copy; v1 1.9-2.5), T = 4 within 20% of T = 1 (v1: 5-8x
 * slower). The 64-register D = 2 version in 8-warp blocks, all resident at once on 8192-row
 * matrices, beats D = 4 at 80 registers (a second wave) by 20-30%. What bounds it (session 4, ncu
 * and SASS): instruction issue, not bytes in flight. It issues ~0.58 warp-instructions per
 * scheduler-cycle (7 warps a scheduler, 1.2 eligible) and spends 180 per step of 1 KB of INT4
 * (T = 1: 88 dequantizing, 8 HMMA, the rest x split, B fragments, scales, addresses, loop), which
 * caps it near 2.9-3.0 TB/s; a shared-memory ring filled by cp.async.bulk or cp.async (kept in
 * dev/cuda/gemv_w4.cu) did not move with its depth and was slower, having more instructions. ZC = 1
 * saves ~20 a step but takes 74 registers (a block less an SM) unless capped (MINB).
 *
 * ZC = 2 (session 5): fp16 A and B. LOP3 with 0x6400 gives fp16 1024 + q from bits 0-3 of each
 * half and 1024 + 16 q from bits 4-7 (so only every other word needs a shift, by 8); HSUB2 of
 * 1024 + z and of 1024 + 16 z (one HFMA2 a scale word) leaves exact q - z and 16 (q - z), against
 * x / 16 and x / 256 (fp16 hi + lo; the 1/16 keeps |x| up to 2^20 in range), and the result is
 * multiplied by 16 at the end. Measured no faster than ZC = 0 (bench/results/awq-speed.md).
 *
 * ZC = 3 and ZC = 4 (session 8, dev/notes/w4_gemv_research.md 4.1; compiled, NOT yet run on a
 * GPU): ZC = 2's x, and as A the nibbles' bits themselves, one AND a pair: w & 0x000f000f read as
 * fp16 is the subnormal pair q 2^-24 and w & 0x00f000f0 is 16 q 2^-24 (exact: mantissas below
 * 1024), no HSUB2. mma.sync keeps fp16 subnormal A operands exactly on the H200 (dev_gemv_w4
 * probe, session 8: 0 of 128 outputs differ from a double reference, as with normal operands).
 * The MMAs then sum x q 2^-28, and the zero point goes
 *   ZC = 3: after them, acc += d (v - z S) per step, group and row, S = 2^-28 sum(x) over the
 *     group, from 4 MMAs a step shared by the warp's tiles (sk_w4tc_mma says how);
 *   ZC = 4: into them, one more MMA per k16 and tile with A = -z 2^-24 and -16 z 2^-24 per row (a
 *     PRMT and an HMUL2 a scale word, as ZC = 2's zero preparation), same accumulators;
 * the result times 2^28 at the end. SASS of the loop (two steps; T = 1, G = 128; ZC 2 / 3 / 4):
 * MT1 ADD 334 / 293 / 291 (ZC 3 and 4 capped at 80 registers as launched: 73 and 67 registers
 * against ZC 2's 77), qkv's MT1 STORE + norm 356 / 314 / 311, MT2 ADD 557 / 450 / 457 (117 / 114
 * / 106 registers), gate/up's MT1 SwiGLU + norm 571 / 464 / 471 (118 / 114 / 106): -12% a KB at
 * one tile a warp, -18..-19% at two. Numerics: B (the x split, whose lo parts are what bounds
 * ZC = 2's error) is ZC = 2's; ZC = 4's partial sums are ZC = 2's x (q - z), ZC = 3's are x q
 * (about twice as large) before the correction.
 *
 * A operand: 0x4300 | q is bf16 128 + q. ZC = 0 subtracts (128 + z) per pair (HSUB2, exact
 * q - z); ZC = 1 leaves 128 + q and subtracts (128 + z) * sum(x) per group and row of x after the
 * MMAs (the sums from 8 more MMAs with A = 1 per step): one instruction per pair less, at the
 * price of fp32 rounding on partial sums about 25 times larger (still ~1e-6 relative).
 *
 * Layout: a warp owns NT tiles of 16 weight rows (MT tiles of output rows; SWIGLU: MT gate tiles
 * and the MT matching up tiles) and walks K in steps of 128 (4 chunks of 32 weights: lane (g, t),
 * g = lane / 4, t = lane % 4, loads 16 bytes of rows g and g + 8 at chunk 4 s + t). The KS warps
 * of a block split the steps (warp w takes steps w, w + KS, ...) and add up through shared memory
 * at the end. MMA j (0..7) of a step takes elements 4j..4j+3 of each lane's chunk: the 16 k of
 * the MMA are 4 from each of the 4 chunks, so B's columns keep the chunks' groups apart: column
 * n = 2 idx + hl, idx = tau * GP + gi (row tau of x, group gi of the GP = 128 / G groups in a
 * step, hl: hi or lo part), zero unless lane t's chunk is in group gi. Each step's partial sums
 * (per group) are scaled by d in fp32. Loads run D steps ahead (a ring of registers); the step's
 * x (T x 128 floats) is split into hi/lo by the whole warp into shared memory (two buffers, one
 * __syncwarp per step), then read as B fragments. */
#define SK_W4TC_MAXW 8 /* warps per block at most (KS) */
#define SK_W4TC_XW 20  /* shared words per 32-element chunk of split x (16 + 4 against conflicts) */

/* 16 bytes of streamed weights: not kept in L1 (x and the scales stay there). */
/* SK_W4_L2HINT: the weight loads' L2 prefetch size, 256 (default), 128 or 0 (none): a build-time
 * experiment (session 13: the decode attention's register loads gained 2-3% from 128 over none,
 * and 256 was slower there). */
#ifndef SK_W4_L2HINT
#define SK_W4_L2HINT 256
#endif
/* SK_W4_EF (session 28, build time; default 1): the weights streamed by the products of at most
 * SK_W4_EF_ROWS rows (each weight byte read once a step) carry an L2 evict-first policy
 * (createpolicy), so that a step's streaming (~450 MB a 70B layer through the 60 MB L2) evicts
 * them before what the latency-bound kernels reread: code, page tables, activations. H200,
 * 128/256, ITL p50 (bench/results/decode.md session 28): 70B INT4 batch 1 -0.6%, batch 2 -1.0%,
 * 7B batch 1 -1.4%; at 16 rows (weights reread from L2 by the x split) +8.6%, hence the rows. */
#ifndef SK_W4_EF
#define SK_W4_EF 1
#endif
#define SK_W4_EF_ROWS 2
static __device__ __forceinline__ uint64_t sk_w4_ef_policy(void) {
    uint64_t pol;
    asm("createpolicy.fractional.L2::evict_first.b64 %0, 1.0;" : "=l"(pol));
    return pol;
}
template <bool EF = false> static __device__ __forceinline__ uint4 sk_w4_ld_stream(const uint4 *p) {
    uint4 v;
    p = SK_W4_PROBE_ADDR(p);
#if SK_W4_L2HINT == 256
    if constexpr (EF && SK_W4_EF) {
        asm("ld.global.nc.L1::no_allocate.L2::cache_hint.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4], %5;"
            : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
            : "l"(p), "l"(sk_w4_ef_policy()));
        return v;
    }
    asm("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
#elif SK_W4_L2HINT == 128
    asm("ld.global.nc.L1::no_allocate.L2::128B.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
#else
    asm("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
        : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
        : "l"(p));
#endif
    return v;
}
/* The same 16 bytes copied into shared memory (cp.async, L1 bypassed, the same L2 hint), for the
 * rings that live there (sk_w4_ts_kernel RS = 1): completes by cp.async.wait_group. */
template <bool EF = false>
static __device__ __forceinline__ void sk_w4_cp_stream(void *dst, const uint4 *p) {
    p = SK_W4_PROBE_ADDR(p);
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
#if SK_W4_L2HINT == 256
    if constexpr (EF && SK_W4_EF) {
        asm volatile("cp.async.cg.shared.global.L2::cache_hint.L2::256B [%0], [%1], 16, %2;" ::"r"(d),
                     "l"(p), "l"(sk_w4_ef_policy())
                     : "memory");
        return;
    }
    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;" ::"r"(d), "l"(p) : "memory");
#elif SK_W4_L2HINT == 128
    asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;" ::"r"(d), "l"(p) : "memory");
#else
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(d), "l"(p) : "memory");
#endif
}
/* 16 bytes of x (or gamma) into shared memory, cached in L1 (the blocks of an SM share x);
 * zeros when !valid (src-size 0; src must still be a valid address). */
static __device__ __forceinline__ void sk_w4_cp_x(void *dst, const void *p, bool valid) {
    const unsigned d = (unsigned)__cvta_generic_to_shared(dst);
    asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;" ::"r"(d), "l"(p), "r"(valid ? 16 : 0)
                 : "memory");
}
static __device__ __forceinline__ void sk_w4_cp_commit(void) {
    asm volatile("cp.async.commit_group;" ::: "memory");
}
template <int N>
static __device__ __forceinline__ void sk_w4_cp_wait(void) {
    asm volatile("cp.async.wait_group %0;" ::"n"(N) : "memory");
}
/* (a & b) | c in one LOP3 (the compiler splits it in two when b and c are both immediates). */
static __device__ __forceinline__ uint32_t sk_w4_andor(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
static __device__ __forceinline__ uint32_t sk_w4_hsub_bf2(uint32_t a, uint32_t b) {
    uint32_t r;
    asm("sub.rn.bf16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
/* (128 + z, 128 + z) as bf16x2 from a scale word (fp16 d low, fp16 1024 + z = 0x6400 | z high). */
static __device__ __forceinline__ uint32_t sk_w4_zb(uint32_t s) {
    return sk_w4_andor(__byte_perm(s, 0, 0x3232), 0x000f000fu, 0x43004300u);
}
static __device__ __forceinline__ float sk_w4_d(uint32_t s) {
    return __half2float(__ushort_as_half((unsigned short)(s & 0xffffu)));
}
/* (d, z) as floats from a scale word (fp16 d low, fp16 1024 + z high): (1024 + z) - 1024 in
 * fp16 is exact. */
static __device__ __forceinline__ float2 sk_w4_dz(uint32_t s) {
    const __half2 h = *reinterpret_cast<const __half2 *>(&s);
    return make_float2(__low2float(h), __high2float(h) - 1024.0f);
}
static __device__ __forceinline__ uint32_t sk_w4_hmul_h2(uint32_t a, uint32_t b) {
    uint32_t r;
    asm("mul.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
/* 128 + z as a float (the high half is fp16 1024 + z). */
static __device__ __forceinline__ float sk_w4_zf(uint32_t s) {
    return __half2float(__ushort_as_half((unsigned short)(s >> 16))) - 896.0f;
}
static __device__ __forceinline__ uint32_t sk_w4_word(const uint4 &v, int i) {
    return i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
}
static __device__ __forceinline__ void sk_w4_mma(float (&c)[4], uint32_t a0, uint32_t a1,
                                                 uint32_t a2, uint32_t a3, uint32_t b0,
                                                 uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
static __device__ __forceinline__ void sk_w4_mma_h(float (&c)[4], uint32_t a0, uint32_t a1,
                                                   uint32_t a2, uint32_t a3, uint32_t b0,
                                                   uint32_t b1) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, "
        "{%4, %5, %6, %7}, {%8, %9}, {%0, %1, %2, %3};"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
static __device__ __forceinline__ uint32_t sk_w4_hsub_h2(uint32_t a, uint32_t b) {
    uint32_t r;
    asm("sub.rn.f16x2 %0, %1, %2;" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
static __device__ __forceinline__ uint32_t sk_w4_hfma_h2(uint32_t a, uint32_t b, uint32_t c) {
    uint32_t r;
    asm("fma.rn.f16x2 %0, %1, %2, %3;" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
}
static __device__ __forceinline__ uint32_t sk_w4_h2(float a, float b) {
    const __half2 h = __floats2half2_rn(a, b); /* a in the low half */
    return *reinterpret_cast<const uint32_t *>(&h);
}
static __device__ __forceinline__ uint32_t sk_w4_bf16x2(float a, float b) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(a, b); /* a in the low half */
    return *reinterpret_cast<const uint32_t *>(&h);
}

/* Per (T, GP): n8 MMAs per k16 (columns (tau, group, hi/lo), 8 at a time), words of one x
 * buffer, and chunks per group = 1 << GSH. */
template <int T, int GP>
struct sk_w4tc_dims {
    static_assert(T >= 1 && T <= 4 && (GP == 1 || GP == 2 || GP == 4), "T <= 4, G 32/64/128");
    static constexpr int NB = (2 * T * GP + 7) / 8;
    static constexpr int XB = 2 * T * 4 * SK_W4TC_XW;
    static constexpr int GSH = GP == 4 ? 0 : (GP == 2 ? 1 : 2);
};

/* This lane's B sources in an x buffer: column n = g + 8 b -> (tau, gi, hl); a word offset into
 * the buffer, or -1: zeros. */
template <int T, int GP>
static __device__ __forceinline__ void sk_w4tc_bsrc(int (&bsrc)[sk_w4tc_dims<T, GP>::NB], int g,
                                                    int t) {
#pragma unroll
    for (int b = 0; b < sk_w4tc_dims<T, GP>::NB; b++) {
        const int n = g + 8 * b, idx = n >> 1, hl = n & 1, tau = idx / GP, gi = idx % GP;
        bsrc[b] = tau < T && gi == (t * GP) / 4 ? (hl * T + tau) * 4 * SK_W4TC_XW + t * SK_W4TC_XW : -1;
    }
}

/* One step, part 1: the step's x (this lane: elements 4 lane .. 4 lane + 3 of each row tau) into
 * the warp's x buffer xw as bf16 hi / lo pairs, at word xoff = (lane / 8) XW + (lane % 8) 2. */
template <int T, int H = 0>
static __device__ __forceinline__ void sk_w4tc_xsplit(const float4 (&xn)[T], uint32_t *xw, int xoff) {
#pragma unroll
    for (int tau = 0; tau < T; tau++) {
        const float4 v = xn[tau];
        if (H) { /* ZC = 2: fp16 hi/lo of x / 16 (elements 4j, 4j + 1) and x / 256 (4j + 2, 4j + 3) */
            const float4 u = make_float4(v.x * 0.0625f, v.y * 0.0625f, v.z * 0.00390625f,
                                         v.w * 0.00390625f);
            const __half2 hh0 = __floats2half2_rn(u.x, u.y), hh1 = __floats2half2_rn(u.z, u.w);
            const float2 f0 = __half22float2(hh0), f1 = __half22float2(hh1);
            const uint32_t h0 = *reinterpret_cast<const uint32_t *>(&hh0);
            const uint32_t h1 = *reinterpret_cast<const uint32_t *>(&hh1);
            const uint32_t l0 = sk_w4_h2(u.x - f0.x, u.y - f0.y), l1 = sk_w4_h2(u.z - f1.x, u.w - f1.y);
            *reinterpret_cast<uint2 *>(&xw[tau * 4 * SK_W4TC_XW + xoff]) = make_uint2(h0, h1);
            *reinterpret_cast<uint2 *>(&xw[(T + tau) * 4 * SK_W4TC_XW + xoff]) = make_uint2(l0, l1);
            continue;
        }
        const uint32_t h0 = sk_w4_bf16x2(v.x, v.y), h1 = sk_w4_bf16x2(v.z, v.w);
        const float hx = __uint_as_float(h0 << 16), hy = __uint_as_float(h0 & 0xffff0000u);
        const float hz = __uint_as_float(h1 << 16), hw = __uint_as_float(h1 & 0xffff0000u);
        const uint32_t l0 = sk_w4_bf16x2(v.x - hx, v.y - hy);
        const uint32_t l1 = sk_w4_bf16x2(v.z - hz, v.w - hw);
        *reinterpret_cast<uint2 *>(&xw[tau * 4 * SK_W4TC_XW + xoff]) = make_uint2(h0, h1);
        *reinterpret_cast<uint2 *>(&xw[(T + tau) * 4 * SK_W4TC_XW + xoff]) = make_uint2(l0, l1);
    }
}

/* One step, part 2 (after part 1, whose stores the __syncwarp here publishes): lane (g, t)'s
 * weights wv[m][r] (16 bytes of row 16 m + g + 8 r at chunk t of the step) and scale words
 * sv[m][r] times the step's x, on the tensor cores, added to acc per (tile, MMA column pair). */
template <int T, int NT, int GP, int ZC>
static __device__ __forceinline__ void
sk_w4tc_mma(const uint4 (&wv)[NT][2], const uint32_t (&sv)[NT][2], const uint32_t *xw,
            const int (&bsrc)[sk_w4tc_dims<T, GP>::NB], const uint32_t *xzero, int lane, int t,
            float (&acc)[NT][sk_w4tc_dims<T, GP>::NB][2]) {
    constexpr int NB = sk_w4tc_dims<T, GP>::NB;
    __syncwarp();
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
    /* ZC: per column, the step's sum of B over each group (A = 1.0). */
    float sx[NB][4];
    if (ZC == 1) {
        const uint32_t one = 0x3f803f80u;
#pragma unroll
        for (int b = 0; b < NB; b++) {
            sx[b][0] = sx[b][1] = sx[b][2] = sx[b][3] = 0.0f;
#pragma unroll
            for (int j = 0; j < 8; j++)
                sk_w4_mma(sx[b], one, one, one, one, bf[b][2 * j], bf[b][2 * j + 1]);
        }
    }
    if constexpr (ZC == 2) {
#pragma unroll
        for (int m = 0; m < NT; m++) {
            const uint32_t s0 = sv[m][0], s1 = sv[m][1];
            /* (1024 + z) in both halves (the scale word's high half) for the low nibbles, and
             * 1024 + 16 z = 16 (1024 + z) - 15360 (exact in fp16) for the high ones */
            const uint32_t z0 = __byte_perm(s0, 0, 0x3232), z1 = __byte_perm(s1, 0, 0x3232);
            const uint32_t h0 = sk_w4_hfma_h2(z0, 0x4c004c00u, 0xf380f380u);
            const uint32_t h1 = sk_w4_hfma_h2(z1, 0x4c004c00u, 0xf380f380u);
            const uint32_t mlo = 0x000f000fu, mhi = 0x00f000f0u, magic = 0x64006400u;
            float cc[NB][4], ce[NB][4];
#pragma unroll
            for (int b = 0; b < NB; b++)
#pragma unroll
                for (int q = 0; q < 4; q++) cc[b][q] = ce[b][q] = 0.0f;
#pragma unroll
            for (int j = 0; j < 8; j++) {
                const uint32_t w0 = sk_w4_word(wv[m][0], j >> 1) >> (8 * (j & 1));
                const uint32_t w1 = sk_w4_word(wv[m][1], j >> 1) >> (8 * (j & 1));
                /* fp16 q - z (low nibbles: 1024 + q minus 1024 + z) and 16 (q - z) (high nibbles,
                 * no shift: 1024 + 16 q minus 1024 + 16 z; their x is 16 times smaller), exact */
                const uint32_t a0 = sk_w4_hsub_h2(sk_w4_andor(w0, mlo, magic), z0);
                const uint32_t a1 = sk_w4_hsub_h2(sk_w4_andor(w1, mlo, magic), z1);
                const uint32_t a2 = sk_w4_hsub_h2(sk_w4_andor(w0, mhi, magic), h0);
                const uint32_t a3 = sk_w4_hsub_h2(sk_w4_andor(w1, mhi, magic), h1);
#pragma unroll
                for (int b = 0; b < NB; b++)
                    sk_w4_mma_h(j & 1 ? ce[b] : cc[b], a0, a1, a2, a3, bf[b][2 * j], bf[b][2 * j + 1]);
            }
#pragma unroll
            for (int b = 0; b < NB; b++) {
                uint32_t e0 = s0, e1 = s1;
                if (GP > 1) {
                    const int gi = (t + 4 * b) % GP, src = (lane & ~3) | (gi * 4 / GP);
                    e0 = __shfl_sync(0xffffffffu, s0, src);
                    e1 = __shfl_sync(0xffffffffu, s1, src);
                }
                const float v0 = (cc[b][0] + ce[b][0]) + (cc[b][1] + ce[b][1]);
                const float v1 = (cc[b][2] + ce[b][2]) + (cc[b][3] + ce[b][3]);
                acc[m][b][0] = fmaf(sk_w4_d(e0), v0, acc[m][b][0]);
                acc[m][b][1] = fmaf(sk_w4_d(e1), v1, acc[m][b][1]);
            }
        }
    } else if constexpr (ZC == 3 || ZC == 4) {
        /* A: the nibbles' bits as fp16 subnormals, q 2^-24 (low nibbles) and 16 q 2^-24 (high
         * nibbles, no shift: their B is x / 256 against the low ones' x / 16), exact, one AND a
         * pair; the zero point after (ZC 3) or in (ZC 4) the MMAs, on the same 2^-28 scale. */
        const uint32_t mlo = 0x000f000fu, mhi = 0x00f000f0u;
        float sg[NB]; /* ZC 3: the step's sum of x per column pair idx = t + 4 b, times 2^-28 */
        if constexpr (ZC == 3) {
#pragma unroll
            for (int b = 0; b < NB; b++) {
                /* This lane's B words as an A operand against B = 2^-24: row g of the product
                 * sums column g's x / 16 words (even: a0, a2), row g + 8 its x / 256 words (odd:
                 * a1, a3); 4 MMAs a step instead of 8 with A = ones. Column 2 t (hi) and 2 t + 1
                 * (lo) sit in rows 2 t and 2 t + 1, i.e. with lanes 8 t and 8 t + 4. */
                float sx[4] = {0.0f, 0.0f, 0.0f, 0.0f};
#pragma unroll
                for (int q = 0; q < 4; q++)
                    sk_w4_mma_h(sx, bf[b][4 * q], bf[b][4 * q + 1], bf[b][4 * q + 2],
                                bf[b][4 * q + 3], 0x00010001u, 0x00010001u);
                const float sc = fmaf(16.0f, sx[2], sx[0]);
                sg[b] = __shfl_sync(0xffffffffu, sc, 8 * t) +
                        __shfl_sync(0xffffffffu, sc, 8 * t + 4);
            }
        }
#pragma unroll
        for (int m = 0; m < NT; m++) {
            const uint32_t s0 = sv[m][0], s1 = sv[m][1];
            /* ZC 4: -z 2^-24 (fp16 0x8000 | z: the scale word's byte 2 is z) and -16 z 2^-24
             * (exact) for rows g and g + 8 of the lane's chunk's group: one more MMA a j with
             * this A adds -z sum(x) into the same accumulators */
            uint32_t zl0 = 0u, zl1 = 0u, zh0 = 0u, zh1 = 0u;
            if constexpr (ZC == 4) {
                zl0 = __byte_perm(s0, 0x8000u, 0x5252), zl1 = __byte_perm(s1, 0x8000u, 0x5252);
                zh0 = sk_w4_hmul_h2(zl0, 0x4c004c00u), zh1 = sk_w4_hmul_h2(zl1, 0x4c004c00u);
            }
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
                for (int b = 0; b < NB; b++) {
                    sk_w4_mma_h(j & 1 ? ce[b] : cc[b], a0, a1, a2, a3, bf[b][2 * j],
                                bf[b][2 * j + 1]);
                    if (ZC == 4)
                        sk_w4_mma_h(j & 1 ? ce[b] : cc[b], zl0, zl1, zh0, zh1, bf[b][2 * j],
                                    bf[b][2 * j + 1]);
                }
            }
#pragma unroll
            for (int b = 0; b < NB; b++) {
                uint32_t e0 = s0, e1 = s1;
                if (GP > 1) {
                    const int gi = (t + 4 * b) % GP, src = (lane & ~3) | (gi * 4 / GP);
                    e0 = __shfl_sync(0xffffffffu, s0, src);
                    e1 = __shfl_sync(0xffffffffu, s1, src);
                }
                const float v0 = (cc[b][0] + ce[b][0]) + (cc[b][1] + ce[b][1]);
                const float v1 = (cc[b][2] + ce[b][2]) + (cc[b][3] + ce[b][3]);
                if constexpr (ZC == 3) { /* d (v - z S) */
                    const float2 dz0 = sk_w4_dz(e0), dz1 = sk_w4_dz(e1);
                    acc[m][b][0] = fmaf(dz0.x, fmaf(-dz0.y, sg[b], v0), acc[m][b][0]);
                    acc[m][b][1] = fmaf(dz1.x, fmaf(-dz1.y, sg[b], v1), acc[m][b][1]);
                } else {
                    acc[m][b][0] = fmaf(sk_w4_d(e0), v0, acc[m][b][0]);
                    acc[m][b][1] = fmaf(sk_w4_d(e1), v1, acc[m][b][1]);
                }
            }
        }
    } else {
#pragma unroll
    for (int m = 0; m < NT; m++) {
        const uint32_t s0 = sv[m][0], s1 = sv[m][1];
        const uint32_t z0 = ZC ? 0u : sk_w4_zb(s0), z1 = ZC ? 0u : sk_w4_zb(s1);
        const uint32_t mask = 0x000f000fu, magic = 0x43004300u;
        /* two accumulators (even and odd j): half the chain of dependent MMAs */
        float cc[NB][4], ce[NB][4];
#pragma unroll
        for (int b = 0; b < NB; b++)
#pragma unroll
            for (int q = 0; q < 4; q++) cc[b][q] = ce[b][q] = 0.0f;
#pragma unroll
        for (int j = 0; j < 8; j++) {
            const uint32_t w0 = sk_w4_word(wv[m][0], j >> 1);
            const uint32_t w1 = sk_w4_word(wv[m][1], j >> 1);
            const int p = 2 * (j & 1);
            uint32_t a0 = sk_w4_andor(w0 >> (4 * p), mask, magic);
            uint32_t a1 = sk_w4_andor(w1 >> (4 * p), mask, magic);
            uint32_t a2 = sk_w4_andor(w0 >> (4 * p + 4), mask, magic);
            uint32_t a3 = sk_w4_andor(w1 >> (4 * p + 4), mask, magic);
            if (!ZC) {
                a0 = sk_w4_hsub_bf2(a0, z0), a1 = sk_w4_hsub_bf2(a1, z1);
                a2 = sk_w4_hsub_bf2(a2, z0), a3 = sk_w4_hsub_bf2(a3, z1);
            }
#pragma unroll
            for (int b = 0; b < NB; b++)
                sk_w4_mma(j & 1 ? ce[b] : cc[b], a0, a1, a2, a3, bf[b][2 * j], bf[b][2 * j + 1]);
        }
#pragma unroll
        for (int b = 0; b < NB; b++)
#pragma unroll
            for (int q = 0; q < 4; q++) cc[b][q] += ce[b][q];
#pragma unroll
        for (int b = 0; b < NB; b++) {
            uint32_t e0 = s0, e1 = s1;
            if (GP > 1) { /* the scale of group gi sits with chunk lane gi * 4 / GP */
                const int gi = (t + 4 * b) % GP, src = (lane & ~3) | (gi * 4 / GP);
                e0 = __shfl_sync(0xffffffffu, s0, src);
                e1 = __shfl_sync(0xffffffffu, s1, src);
            }
            float v0 = cc[b][0] + cc[b][1], v1 = cc[b][2] + cc[b][3];
            if (ZC) {
                const float sxb = sx[b][0] + sx[b][1];
                v0 = fmaf(-sk_w4_zf(e0), sxb, v0);
                v1 = fmaf(-sk_w4_zf(e1), sxb, v1);
            }
            acc[m][b][0] = fmaf(sk_w4_d(e0), v0, acc[m][b][0]);
            acc[m][b][1] = fmaf(sk_w4_d(e1), v1, acc[m][b][1]);
        }
    }
    }
#endif
}

/* The end of both tensor-core kernels: the KS warps' partial sums (acc of warps < KS; lane
 * (g, t) holds, per tile m and MMA b, column pair idx = t + 4 b of rows g and g + 8) added up
 * through red ([KS][NT][4 NB][16] floats, which may overlay the buffers of the loop: the first
 * barrier waits for every warp to leave it), then the epilogue. Every thread of the block calls
 * this. */
template <int T, int MT, int GP, int MODE>
static __device__ __forceinline__ void
sk_w4tc_finish(const float (&acc)[MODE == SK_GEMV_SWIGLU ? 2 * MT : MT][sk_w4tc_dims<T, GP>::NB][2],
               float *redp, int warp, int KS, int lane, int n0, int N_out,
               const float *__restrict__ bias, float *__restrict__ out,
               const float *rstd = nullptr) {
    constexpr int NT = MODE == SK_GEMV_SWIGLU ? 2 * MT : MT, NB = sk_w4tc_dims<T, GP>::NB;
    float(*red)[NT][4 * NB][16] = reinterpret_cast<float(*)[NT][4 * NB][16]>(redp);
    const int g = lane >> 2, t = lane & 3;
    __syncthreads();
    if (warp < KS)
#pragma unroll
        for (int m = 0; m < NT; m++)
#pragma unroll
            for (int b = 0; b < NB; b++) {
                red[warp][m][t + 4 * b][g] = acc[m][b][0];
                red[warp][m][t + 4 * b][g + 8] = acc[m][b][1];
            }
    __syncthreads();
    for (int o = threadIdx.x; o < MT * 16 * T; o += blockDim.x) {
        const int m = o / (16 * T), tau = (o / 16) % T, row = o % 16, n = n0 + 16 * m + row;
        if (n >= N_out) continue;
        float v = 0.0f, u = 0.0f;
        for (int w = 0; w < KS; w++)
#pragma unroll
            for (int gi = 0; gi < GP; gi++) {
                v += red[w][m][tau * GP + gi][row];
                if (MODE == SK_GEMV_SWIGLU) u += red[w][MT + m][tau * GP + gi][row];
            }
        if (rstd) v *= rstd[tau], u *= rstd[tau]; /* the fused RMSNorm's 1 / rms */
        float *po = out + (size_t)tau * N_out + n;
        if (MODE == SK_GEMV_SWIGLU) {
            *po = v / (1.0f + __expf(-v)) * u;
        } else {
            if (bias) v += bias[n];
            if (MODE == SK_GEMV_ADD) v += *po;
            *po = v;
        }
    }
}

/* grid: ceil(N_out / (16 MT)) blocks of 32 KS threads (KS <= SK_W4TC_MAXW). GP = 128 / G. */
template <int T, int MT, int D, int GP, int ZC, int MODE, int MINB = 1, int NORM = 0>
__global__ void __launch_bounds__(32 * SK_W4TC_MAXW, MINB)
    sk_w4_tc_kernel(const float *__restrict__ x, const uint32_t *__restrict__ q4,
                    const __half2 *__restrict__ q4s, const float *__restrict__ bias, int N_out,
                    int K, float *__restrict__ out, const float *__restrict__ gamma, float eps) {
    constexpr int NT = MODE == SK_GEMV_SWIGLU ? 2 * MT : MT; /* 16-row tiles per warp */
    constexpr int NB = sk_w4tc_dims<T, GP>::NB, XB = sk_w4tc_dims<T, GP>::XB;
    constexpr int GSH = sk_w4tc_dims<T, GP>::GSH;
    static_assert(D % 2 == 0, "steps alternate between two x buffers");
    /* x buffers [warp][2][hl][tau][chunk] during the loop, then the partial sums
     * red[warp][tile][idx][row] of the final reduction. */
    constexpr int XWORDS = SK_W4TC_MAXW * 2 * XB, RWORDS = SK_W4TC_MAXW * NT * 4 * NB * 16;
    __shared__ __align__(128) uint32_t smem[XWORDS > RWORDS ? XWORDS : RWORDS]; /* 128: see sk_w4_tq_kernel */
    __shared__ __align__(16) uint32_t xzero[16];
    uint32_t(*xs)[2][XB] = reinterpret_cast<uint32_t(*)[2][XB]>(smem);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, KS = blockDim.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int C = K >> 5, S = (C + 3) >> 2, KG = C >> GSH;
    const int n0 = blockIdx.x * 16 * MT;
    sk_pdl_trigger();
    if (threadIdx.x < 16) xzero[threadIdx.x] = 0u;

    /* Offsets (in 16-byte chunks and in scale words) of rows g and g + 8 of each tile; rows past
     * the end read the last row (loaded, never stored). */
    int wo[NT][2], so[NT][2];
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int n = n0 + 16 * (m % MT) + g + 8 * r;
            if (n >= N_out) n = N_out - 1;
            if (MODE == SK_GEMV_SWIGLU && m >= MT) n += N_out;
            wo[m][r] = SK_W4_WO(n, C);
            so[m][r] = n * KG;
        }
    const uint4 *wq = reinterpret_cast<const uint4 *>(q4);
    const uint32_t *sq = reinterpret_cast<const uint32_t *>(q4s);

    /* The ring: weights and scale words of D steps in flight. Chunks past the row's end (a
     * partial last step) load the last chunk again; their x is zero. */
    uint4 wb[D][NT][2];
    uint32_t sb[D][NT][2];
#define SK_W4TC_LOAD(d_, s_)                                                                       \
    do {                                                                                           \
        const int c_ = min(4 * (s_) + t, C - 1);                                                   \
        _Pragma("unroll") for (int m_ = 0; m_ < NT; m_++)                                          \
            _Pragma("unroll") for (int r_ = 0; r_ < 2; r_++) {                                     \
            wb[d_][m_][r_] = sk_w4_ld_stream(wq + (wo[m_][r_] + SK_W4_WC(c_)));                              \
            sb[d_][m_][r_] = __ldg(sq + (so[m_][r_] + (c_ >> GSH)));                               \
        }                                                                                          \
    } while (0)
    /* Weights never depend on the kernel before (PDL): the ring fills before the wait. */
#pragma unroll
    for (int d = 0; d < D; d++)
        if (warp + KS * d < S) SK_W4TC_LOAD(d, warp + KS * d);
    sk_pdl_wait();
    __syncthreads(); /* xzero */

    int bsrc[NB];
    sk_w4tc_bsrc<T, GP>(bsrc, g, t);
    /* x of a step: lane l splits elements 4l..4l+3 of each row tau. */
    float4 xn[T];
    /* NORM: the fused RMSNorm. Every element of x is loaded exactly once per block (the KS warps
     * share out the steps), so the block sums x^2 as it loads x, multiplies x by gamma, and
     * scales the results by 1 / rms at the end (the product is linear in x). */
    float ssq[T];
#pragma unroll
    for (int tau = 0; tau < T; tau++) ssq[tau] = 0.0f;
#define SK_W4TC_LOADX(s_)                                                                          \
    do {                                                                                           \
        const int k_ = 128 * (s_) + 4 * lane;                                                      \
        _Pragma("unroll") for (int tau_ = 0; tau_ < T; tau_++) xn[tau_] =                          \
            k_ < K ? __ldg(reinterpret_cast<const float4 *>(x + (size_t)tau_ * K + k_))          \
                   : make_float4(0.0f, 0.0f, 0.0f, 0.0f);                                          \
        if (NORM && k_ < K) {                                                                      \
            const float4 g_ = __ldg(reinterpret_cast<const float4 *>(gamma + k_));                 \
            _Pragma("unroll") for (int tau_ = 0; tau_ < T; tau_++) {                              \
                float4 &v_ = xn[tau_];                                                             \
                ssq[tau_] = fmaf(v_.x, v_.x, fmaf(v_.y, v_.y, fmaf(v_.z, v_.z, fmaf(v_.w, v_.w, ssq[tau_])))); \
                v_.x *= g_.x, v_.y *= g_.y, v_.z *= g_.z, v_.w *= g_.w;                            \
            }                                                                                      \
        }                                                                                          \
    } while (0)
    if (warp < S) SK_W4TC_LOADX(warp);
    const int xoff = (lane >> 3) * SK_W4TC_XW + (lane & 7) * 2;

    float acc[NT][NB][2];
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++) acc[m][b][0] = acc[m][b][1] = 0.0f;

    const int ns = S > warp ? (S - 1 - warp) / KS + 1 : 0; /* steps of this warp */
    for (int i = 0; i < ns; i += D) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            if (i + d >= ns) break;
            const int st = warp + KS * (i + d);
            uint32_t *xw = xs[warp][d & 1]; /* steps alternate buffers (D is even) */
            /* x of this step into shared memory as hi/lo bf16 pairs; the next step's x loads. */
            sk_w4tc_xsplit<T, ZC >= 2>(xn, xw, xoff);
            if (st + KS < S) SK_W4TC_LOADX(st + KS);
            sk_w4tc_mma<T, NT, GP, ZC>(wb[d], sb[d], xw, bsrc, xzero, lane, t, acc);
            if (st + KS * D < S) SK_W4TC_LOAD(d, st + KS * D);
        }
    }
#undef SK_W4TC_LOAD
#undef SK_W4TC_LOADX
    if (ZC >= 2) { /* x went in as x / 16 and x / 256 against the high nibbles' 16 q; ZC 3 and 4's
                     * A operands were q 2^-24 and 16 q 2^-24 */
        const float sc = ZC >= 3 ? 268435456.0f /* 2^28 */ : 16.0f;
#pragma unroll
        for (int m = 0; m < NT; m++)
#pragma unroll
            for (int b = 0; b < NB; b++) acc[m][b][0] *= sc, acc[m][b][1] *= sc;
    }

    __shared__ float s_ssq[SK_W4TC_MAXW][4], s_rstd[4];
    if (NORM) {
#pragma unroll
        for (int tau = 0; tau < T; tau++) {
            float v = ssq[tau];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            if (lane == 0) s_ssq[warp][tau] = v;
        }
        __syncthreads();
        if (threadIdx.x < T) {
            float a = 0.0f;
            for (int w = 0; w < KS; w++) a += s_ssq[w][threadIdx.x];
            s_rstd[threadIdx.x] = 1.0f / sqrtf(a / (float)K + eps); /* the CPU's formula */
        }
        /* published by the barrier at the start of sk_w4tc_finish */
    }
    sk_w4tc_finish<T, MT, GP, MODE>(acc, reinterpret_cast<float *>(smem), warp, KS, lane, n0,
                                    N_out, bias, out, NORM ? s_rstd : nullptr);
}

/* One launch of the tensor-core GEMV with KS (1..SK_W4TC_MAXW) warps per block (GP from G);
 * MINB: blocks of 8 warps the compiler must fit on an SM (a register cap: 4 -> 64, 3 -> 80), for
 * the kernels with one block of B columns (NB = 1: T = 1, and T = 2 at G >= 64); those with two
 * (T = 2 at G = 32: ZC3 and ZC4 spill 48-72 bytes under the cap of 80) run uncapped. */
template <int T, int MT, int D, int ZC, int MODE, int MINB = 1, int NORM = 0>
static void sk_w4_tc_launch_n(int KS, const float *x, const uint32_t *q4, const __half2 *q4s,
                              int G, const float *bias, int N_out, int K, float *out,
                              const float *gamma, float eps, cudaStream_t s) {
    constexpr int MB4 = sk_w4tc_dims<T, 4>::NB > 1 ? 1 : MINB;
    constexpr int MB2 = sk_w4tc_dims<T, 2>::NB > 1 ? 1 : MINB;
    const unsigned blocks = (unsigned)((N_out + 16 * MT - 1) / (16 * MT));
    void (*k)(const float *, const uint32_t *, const __half2 *, const float *, int, int, float *,
              const float *, float) = G == 32 ? sk_w4_tc_kernel<T, MT, D, 4, ZC, MODE, MB4, NORM>
                                      : G == 64 ? sk_w4_tc_kernel<T, MT, D, 2, ZC, MODE, MB2, NORM>
                                                : sk_w4_tc_kernel<T, MT, D, 1, ZC, MODE, MINB, NORM>;
    sk_launch_pdl(k, blocks, 32u * (unsigned)KS, s, x, q4, q4s, bias, N_out, K, out, gamma, eps);
}
/* Without the fused norm (the workbench's function-pointer type). */
template <int T, int MT, int D, int ZC, int MODE, int MINB = 1>
static void sk_w4_tc_launch(int KS, const float *x, const uint32_t *q4, const __half2 *q4s, int G,
                            const float *bias, int N_out, int K, float *out, cudaStream_t s) {
    sk_w4_tc_launch_n<T, MT, D, ZC, MODE, MINB, 0>(KS, x, q4, q4s, G, bias, N_out, K, out, nullptr,
                                                   0.0f, s);
}

/* ZC 2, 3 or 4 at T <= 2 with MT (1 or 2) picked at run time and D = 2, with the fused RMSNorm
 * when gamma != NULL (not for ADD). ZC 3 and 4 at MT1 outside SwiGLU are capped at 80 registers
 * (MINB 3): 3 blocks of 8 warps an SM, as ZC2's 77-80 registers get (uncapped ZC3 takes 82-92,
 * ZC4 72-84; capped 67-80, no spills; ZC3's loop then has 7 more instructions a step pair). ZC 2
 * here launches the very kernels of the default path in sk_w4_gemv_launch_t. */
template <int T, int ZC, int MODE>
static void sk_w4_tc_launch_z(int mt, int KS, const float *x, const uint32_t *q4,
                              const __half2 *q4s, int G, const float *bias, int N_out, int K,
                              float *out, const float *gamma, float eps, cudaStream_t s) {
    static_assert(T <= 2 && ZC >= 2, "the fp16 operands' kernels at T <= 2");
    constexpr int MB1 = ZC >= 3 && MODE != SK_GEMV_SWIGLU ? 3 : 1;
    if constexpr (MODE != SK_GEMV_ADD) {
        if (gamma) {
            if (mt == 2)
                sk_w4_tc_launch_n<T, 2, 2, ZC, MODE, 1, 1>(KS, x, q4, q4s, G, bias, N_out, K, out,
                                                           gamma, eps, s);
            else
                sk_w4_tc_launch_n<T, 1, 2, ZC, MODE, MB1, 1>(KS, x, q4, q4s, G, bias, N_out, K, out,
                                                             gamma, eps, s);
            return;
        }
    }
    if (mt == 2)
        sk_w4_tc_launch_n<T, 2, 2, ZC, MODE, 1, 0>(KS, x, q4, q4s, G, bias, N_out, K, out,
                                                   nullptr, 0.0f, s);
    else
        sk_w4_tc_launch_n<T, 1, 2, ZC, MODE, MB1, 0>(KS, x, q4, q4s, G, bias, N_out, K, out,
                                                     nullptr, 0.0f, s);
}

/* The RMSNorm carried from an ADD product to the STORE product after it (session 15): the ADD
 * launch writes x * gnext (xg) and per-block sums of squares (ssq_out); the STORE launch takes
 * xg as its x with no gamma and 1 / rms from those sums (ssq_in, nssq blocks). Measured on the
 * H200 (dev_gemv_w4 tail): the fused norm costs the 70B qkv product 1.65 of its 16.55 us at one
 * row. */
typedef struct sk_w4_pn {
    const float *gnext; /* ADD: the next norm's gamma (NULL: none of this) */
    float *xg, *ssq_out;
    const float *ssq_in; /* STORE: the sums from the ADD launch (NULL: none of this) */
    int nssq;
} sk_w4_pn;
/* The carried sums of squares of row tau: lane l of a warp loads sums l, l + 32, ... (up to
 * SK_W4_PN_PRE of them at once, so that their latency is one L2 round trip, not one each) and
 * sk_w4_pn_finish adds them (the rest past 32 x SK_W4_PN_PRE in a loop) and the lanes' totals
 * in a fixed order, returning 1 / rms (the CPU's formula) to every lane. Split so that a kernel
 * can issue the loads before its main loop and add them after it. */
#define SK_W4_PN_PRE 8
static __device__ __forceinline__ void sk_w4_pn_issue(const float *ssq_in, int nssq, int T, int tau,
                                                      int lane, float (&pre)[SK_W4_PN_PRE]) {
#pragma unroll
    for (int i = 0; i < SK_W4_PN_PRE; i++) {
        const int b = lane + 32 * i;
        pre[i] = b < nssq ? __ldcg(ssq_in + (size_t)b * T + tau) : 0.0f;
    }
}
static __device__ __forceinline__ float sk_w4_pn_finish(const float *ssq_in, int nssq, int T, int tau,
                                                        int lane, const float (&pre)[SK_W4_PN_PRE],
                                                        int K, float eps) {
    float a = 0.0f;
#pragma unroll
    for (int i = 0; i < SK_W4_PN_PRE; i++) a += pre[i];
    for (int b = lane + 32 * SK_W4_PN_PRE; b < nssq; b += 32) a += __ldcg(ssq_in + (size_t)b * T + tau);
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) a += __shfl_xor_sync(0xffffffffu, a, o);
    return 1.0f / sqrtf(a / (float)K + eps);
}
/* A request for the next sk_w4_tq_kernel launch of mode `mode` (host side, one thread: the
 * backend sets it right before its launch; the launch clears `on` and says how many blocks it
 * ran, so the caller knows it was taken). */
static struct {
    bool on;
    int mode, blocks;
    sk_w4_pn pn;
} sk_w4_pn_req;

/* The pending side request of a launch of mode `mode` and `blocks` blocks (none: all NULL). */
static inline sk_w4_pn sk_w4_pn_take(int mode, int blocks) {
    sk_w4_pn pn = {nullptr, nullptr, nullptr, nullptr, 0};
    if (sk_w4_pn_req.on && sk_w4_pn_req.mode == mode) {
        pn = sk_w4_pn_req.pn;
        sk_w4_pn_req.on = false;
        sk_w4_pn_req.blocks = blocks;
    }
    return pn;
}

/* ---- sk_w4_tq_kernel: one wave and a deeper ring for the small decode products (session 9,
 * written without a GPU: compiled, NOT yet run) ------------------------------------------------
 *
 * Why: at T = 1 the 70B products run (session 8, % of the 4.23 TB/s copy in weight bytes) gate/up
 * 79%, down 79%, o 67%, qkv 52%. Read from sk_w4_tc_kernel and its launch:
 *   - qkv (MT1, 8 warps, ZC3 + norm, capped at 80 registers: 3 blocks an SM) is 640 blocks on
 *     396 slots: 1.62 waves, the second at 62% of the slots; a block's time does not fall when
 *     fewer blocks share the machine (session 7: per-block time per K block is flat; the probe's
 *     MT1 STORE fit, 2.58 us + bytes / 2.43 TB/s, is 512 blocks on 396 slots at every K: the
 *     same two waves), so qkv costs about two blocks' time. One tile a warp also spends ~157
 *     instructions a KB (SASS 314 per two steps) against 112-116 at two tiles (o, down, gate/up).
 *   - o and down (MT2, 8 warps, ~114 registers: 2 blocks an SM, 256 blocks: one wave) hold 2
 *     steps x 2 KB in flight a warp, 64 KB an SM; o's 8 steps a warp are 4 round trips of the
 *     ring, and its epilogue reads the residual after the last barrier (one more L2 trip).
 *   - Not the cause: the fused norm has no prologue (x^2 is summed as each step loads x, the
 *     weights of the ring are issued before griddepcontrol.wait); it costs a gamma load and 8
 *     FP ops a lane and step (~6% of MT1's instructions) and one barrier at the end.
 * What this kernel changes (the step's arithmetic is sk_w4tc_xsplit / sk_w4tc_mma, ZC3):
 *   1. NW warps a block at compile time, __launch_bounds__(32 NW, MINB): a product's blocks fit
 *      the SMs at once (qkv as 320 MT2 blocks of 4 warps: 3 an SM at <= 170 registers);
 *   2. any ring depth D (x buffers alternate by the warp's step parity), so that with 4 warps a
 *      block the registers freed by the fewer warps hold more steps in flight (o MT2, 4 warps,
 *      D 6: 12 KB a warp, ~93 KB an SM at 2 blocks an SM, against 64 KB);
 *   3. bias and the residual (ADD) read into registers right after griddepcontrol.wait, not
 *      after the loop (one L2 round trip less at the end of every block);
 *   4. pf > 0: prefetch.global.L2 of the warp's step pf steps past the ring (no registers;
 *      bytes in flight beyond the ring). pf = 0: off.
 * Grid: ceil(N_out / (16 MT)) blocks of 32 NW threads; outputs T x 16 MT a block, one a thread.
 * STORE and ADD only (SwiGLU keeps sk_w4_tc_kernel). NORM: the fused RMSNorm as sk_w4_tc_kernel. */
static __device__ __forceinline__ void sk_w4_prefetch_l2(const void *p) {
    asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}
template <int T, int MT, int D, int GP, int ZC, int MODE, int NW, int MINB, int NORM, int RS = 0>
__global__ void __launch_bounds__(32 * NW, MINB)
    sk_w4_tq_kernel(const float *__restrict__ x, const uint32_t *__restrict__ q4,
                    const __half2 *__restrict__ q4s, const float *__restrict__ bias, int N_out,
                    int K, float *__restrict__ out, const float *__restrict__ gamma, float eps,
                    int pf, sk_w4_pn pn) {
    static_assert(MODE != SK_GEMV_SWIGLU, "STORE and ADD only");
    static_assert(D >= 1 && NW >= 1 && NW <= SK_W4TC_MAXW && 16 * MT * T <= 32 * NW,
                  "one output a thread");
    constexpr int NB = sk_w4tc_dims<T, GP>::NB, XB = sk_w4tc_dims<T, GP>::XB;
    constexpr int GSH = sk_w4tc_dims<T, GP>::GSH, KS = NW, NOUT = 16 * MT * T;
    /* x buffers [warp][2][XB] during the loop, then red[warp][tile][idx][row] */
    constexpr int XWORDS = NW * 2 * XB, RWORDS = NW * MT * 4 * NB * 16;
    __shared__ __align__(128) uint32_t smem[XWORDS > RWORDS ? XWORDS : RWORDS]; /* 128: see sk_w4_tq_kernel */
    __shared__ __align__(16) uint32_t xzero[16];
    __shared__ float s_ssq[NW][T], s_rstd[T];
    uint32_t(*xs)[2][XB] = reinterpret_cast<uint32_t(*)[2][XB]>(smem);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int C = K >> 5, S = (C + 3) >> 2, KG = C >> GSH;
    const int n0 = blockIdx.x * 16 * MT;
    sk_pdl_trigger();
    SK_TRACE_BEGIN();
    if (threadIdx.x < 16) xzero[threadIdx.x] = 0u;

    int wo[MT][2], so[MT][2];
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            int n = n0 + 16 * m + g + 8 * r;
            if (n >= N_out) n = N_out - 1;
            wo[m][r] = SK_W4_WO(n, C);
            so[m][r] = n * KG;
        }
    const uint4 *wq = reinterpret_cast<const uint4 *>(q4);
    const uint32_t *sq = reinterpret_cast<const uint32_t *>(q4s);
    /* RS 1 (session 14): the ring in dynamic shared memory, [NW][D][SW][32] uint4 (SW: the
     * step's weights [MT][2], then x [T] and, with the norm, gamma: this lane's 16 bytes of each,
     * elements 4 lane .. 4 lane + 3 of the step), each lane copying (cp.async) and reading back
     * its own 16-byte chunks, so that the bytes in flight cost no registers. The x and gamma of
     * a step travel with its weights, D steps ahead: ncu's source counters (session 14) had the
     * RS0 kernels waiting on x (the per-step load of SK_W4TQ_LOADX, one step ahead; with the
     * norm, used at once) for 30-45% of their stall samples. The scale words stay in registers. */
    constexpr int SW = MT * 2 + T + (NORM ? 1 : 0);
    /* 128-byte base (session 21): with __align__(16) the base followed the kernel's static shared
     * memory, 16 mod 32 bytes in the product's build, and every cp.async 16-byte destination sat
     * 16 bytes off its source's 32-byte sector: each sector was requested twice (ncu
     * SourceCounters, awq-speed.md session 21). */
    extern __shared__ __align__(128) uint4 sk_w4tq_ring[];
    uint4 *const ring = sk_w4tq_ring + (size_t)warp * D * SW * 32 + lane;
    uint4 wb[RS ? 1 : D][MT][2];
    uint32_t sb[D][MT][2];
#define SK_W4TQ_LOAD(d_, s_)                                                                       \
    do {                                                                                           \
        const int c_ = min(4 * (s_) + t, C - 1);                                                   \
        _Pragma("unroll") for (int m_ = 0; m_ < MT; m_++)                                          \
            _Pragma("unroll") for (int r_ = 0; r_ < 2; r_++) {                                     \
            if constexpr (RS)                                                                      \
                sk_w4_cp_stream<(T <= SK_W4_EF_ROWS)>(ring + ((d_) * SW + m_ * 2 + r_) * 32,          \
                                                       wq + (wo[m_][r_] + SK_W4_WC(c_)));          \
            else                                                                                   \
                wb[(d_) % (RS ? 1 : D)][m_][r_] =                                                  \
                    sk_w4_ld_stream<(T <= SK_W4_EF_ROWS)>(wq + (wo[m_][r_] + SK_W4_WC(c_)));       \
            sb[d_][m_][r_] = __ldg(sq + (so[m_][r_] + (c_ >> GSH)));                               \
        }                                                                                          \
    } while (0)
    /* RS 1: x (and gamma) of step s_ into slot d_ (only after griddepcontrol.wait: x is the
     * kernel before's output) */
#define SK_W4TQ_LOADXR(d_, s_)                                                                     \
    do {                                                                                           \
        const int k_ = 128 * (s_) + 4 * lane;                                                      \
        _Pragma("unroll") for (int tau_ = 0; tau_ < T; tau_++)                                    \
            sk_w4_cp_x(ring + ((d_) * SW + 2 * MT + tau_) * 32,                                    \
                       x + (k_ < K ? (size_t)tau_ * K + k_ : 0), k_ < K);                          \
        if (NORM) sk_w4_cp_x(ring + ((d_) * SW + 2 * MT + T) * 32, gamma + (k_ < K ? k_ : 0), k_ < K); \
    } while (0)
    /* Weights never depend on the kernel before (PDL): the ring fills before the wait. */
#pragma unroll
    for (int d = 0; d < D; d++) {
        if (warp + KS * d < S) SK_W4TQ_LOAD(d, warp + KS * d);
        if (RS) sk_w4_cp_commit(); /* one group a slot, empty or not */
    }
    sk_pdl_wait();
    /* pn.ssq_in (STORE, session 15): x was already multiplied by gamma by the ADD product
     * before (pn.gnext there); 1 / rms of row tau from that launch's per-block sums of squares
     * (pn.nssq of them): warp tau issues their loads now and adds them after the loop (a first
     * version added them here and delayed warp 0's loop by the round trip: the 70B batch-1 step
     * was 0.5% slower with this carry than without). */
    float pn_pre[SK_W4_PN_PRE];
    if (MODE != SK_GEMV_ADD && pn.ssq_in && warp < T) sk_w4_pn_issue(pn.ssq_in, pn.nssq, T, warp, lane, pn_pre);
    /* RS 1: the first D slots' x, a group each (groups D .. 2D - 1). Step j then needs group j
     * (its weights) and D + j (its x) for j < D, the loop's group j - D after that: in every
     * case all but the newest D - 1 groups, so wait_group D - 1 before every step. */
    if constexpr (RS) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            if (warp + KS * d < S) SK_W4TQ_LOADXR(d, warp + KS * d);
            sk_w4_cp_commit();
        }
    }
    /* 3. This thread's output (o < NOUT: row tau, block row r): bias and residual now, so that
     * their loads are in flight during the loop, not after it. Nothing else writes out[n]. */
    const int o_tau = threadIdx.x / (16 * MT), o_r = threadIdx.x % (16 * MT), o_n = n0 + o_r;
    const bool o_live = threadIdx.x < NOUT && o_n < N_out;
    float o_bias = 0.0f, o_res = 0.0f, o_g = 0.0f;
    if (o_live) {
        if (bias) o_bias = __ldg(bias + o_n);
        if (MODE == SK_GEMV_ADD) o_res = out[(size_t)o_tau * N_out + o_n];
        if (MODE == SK_GEMV_ADD && pn.gnext) o_g = __ldg(pn.gnext + o_n);
    }
    __syncthreads(); /* xzero */

    int bsrc[NB];
    sk_w4tc_bsrc<T, GP>(bsrc, g, t);
    float4 xn[T];
    float ssq[T];
#pragma unroll
    for (int tau = 0; tau < T; tau++) ssq[tau] = 0.0f;
#define SK_W4TQ_LOADX(s_)                                                                          \
    do {                                                                                           \
        const int k_ = 128 * (s_) + 4 * lane;                                                      \
        _Pragma("unroll") for (int tau_ = 0; tau_ < T; tau_++) xn[tau_] =                          \
            k_ < K ? __ldg(reinterpret_cast<const float4 *>(x + (size_t)tau_ * K + k_))          \
                   : make_float4(0.0f, 0.0f, 0.0f, 0.0f);                                          \
        if (NORM && k_ < K) {                                                                      \
            const float4 g_ = __ldg(reinterpret_cast<const float4 *>(gamma + k_));                 \
            _Pragma("unroll") for (int tau_ = 0; tau_ < T; tau_++) {                              \
                float4 &v_ = xn[tau_];                                                             \
                ssq[tau_] = fmaf(v_.x, v_.x, fmaf(v_.y, v_.y, fmaf(v_.z, v_.z, fmaf(v_.w, v_.w, ssq[tau_])))); \
                v_.x *= g_.x, v_.y *= g_.y, v_.z *= g_.z, v_.w *= g_.w;                            \
            }                                                                                      \
        }                                                                                          \
    } while (0)
    if (!RS && warp < S) SK_W4TQ_LOADX(warp);
    const int xoff = (lane >> 3) * SK_W4TC_XW + (lane & 7) * 2;

    float acc[MT][NB][2];
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++) acc[m][b][0] = acc[m][b][1] = 0.0f;

    /* 4. the L2 prefetch runs pf steps past the ring; lanes t = 0 and 3 take the first and last
     * 16 bytes of each row's 64 (one 128-byte line, or the two it straddles) */
    const int pfd = pf > 0 ? KS * (D + pf) : INT_MAX / 2;
    const int ns = S > warp ? (S - 1 - warp) / KS + 1 : 0; /* steps of this warp */
    for (int i = 0; i < ns; i += D) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            if (i + d >= ns) break;
            const int st = warp + KS * (i + d);
            uint32_t *xw = xs[warp][(i + d) & 1]; /* by step parity: D may be odd */
            if constexpr (RS) { /* this step's slot: x (and gamma) from it, the norm's work here */
                sk_w4_cp_wait<D - 1>(); /* the slot's group, the oldest of the D in flight */
#pragma unroll
                for (int tau = 0; tau < T; tau++)
                    xn[tau] = *reinterpret_cast<const float4 *>(ring + (d * SW + 2 * MT + tau) * 32);
                if (NORM) {
                    const float4 g_ = *reinterpret_cast<const float4 *>(ring + (d * SW + 2 * MT + T) * 32);
#pragma unroll
                    for (int tau = 0; tau < T; tau++) {
                        float4 &v_ = xn[tau];
                        ssq[tau] = fmaf(v_.x, v_.x, fmaf(v_.y, v_.y, fmaf(v_.z, v_.z, fmaf(v_.w, v_.w, ssq[tau]))));
                        v_.x *= g_.x, v_.y *= g_.y, v_.z *= g_.z, v_.w *= g_.w;
                    }
                }
            }
            sk_w4tc_xsplit<T, ZC >= 2>(xn, xw, xoff);
            if (!RS && st + KS < S) SK_W4TQ_LOADX(st + KS);
            if (st + pfd < S && (t == 0 || t == 3)) {
                const int c_ = min(4 * (st + pfd) + t, C - 1); /* a partial last step */
#pragma unroll
                for (int m = 0; m < MT; m++)
#pragma unroll
                    for (int r = 0; r < 2; r++) sk_w4_prefetch_l2(wq + (wo[m][r] + SK_W4_WC(c_)));
            }
            if constexpr (RS) { /* (waited for above) */
                uint4 wr[MT][2];
#pragma unroll
                for (int m = 0; m < MT; m++)
#pragma unroll
                    for (int r = 0; r < 2; r++) wr[m][r] = ring[(d * SW + m * 2 + r) * 32];
                sk_w4tc_mma<T, MT, GP, ZC>(wr, sb[d], xw, bsrc, xzero, lane, t, acc);
            } else {
                sk_w4tc_mma<T, MT, GP, ZC>(wb[d], sb[d], xw, bsrc, xzero, lane, t, acc);
            }
            if (st + KS * D < S) {
                SK_W4TQ_LOAD(d, st + KS * D);
                if (RS) SK_W4TQ_LOADXR(d, st + KS * D);
            }
            if (RS) sk_w4_cp_commit();
        }
    }
#undef SK_W4TQ_LOAD
#undef SK_W4TQ_LOADXR
#undef SK_W4TQ_LOADX
    if (ZC >= 2) {
        const float sc = ZC >= 3 ? 268435456.0f /* 2^28 */ : 16.0f;
#pragma unroll
        for (int m = 0; m < MT; m++)
#pragma unroll
            for (int b = 0; b < NB; b++) acc[m][b][0] *= sc, acc[m][b][1] *= sc;
    }
    if (NORM) {
#pragma unroll
        for (int tau = 0; tau < T; tau++) {
            float v = ssq[tau];
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
            if (lane == 0) s_ssq[warp][tau] = v;
        }
        __syncthreads();
        if (threadIdx.x < T) {
            float a = 0.0f;
            for (int w = 0; w < KS; w++) a += s_ssq[w][threadIdx.x];
            s_rstd[threadIdx.x] = 1.0f / sqrtf(a / (float)K + eps); /* the CPU's formula */
        }
    }
    if (MODE != SK_GEMV_ADD && pn.ssq_in && warp < T) {
        const float r = sk_w4_pn_finish(pn.ssq_in, pn.nssq, T, warp, lane, pn_pre, K, eps);
        if (lane == 0) s_rstd[warp] = r;
    }
    /* The KS warps' partial sums through red (overlaying the x buffers: the first barrier waits
     * for every warp to leave the loop), as sk_w4tc_finish; the second publishes s_rstd too. */
    float(*red)[MT][4 * NB][16] = reinterpret_cast<float(*)[MT][4 * NB][16]>(smem);
    __syncthreads();
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++) {
            red[warp][m][t + 4 * b][g] = acc[m][b][0];
            red[warp][m][t + 4 * b][g + 8] = acc[m][b][1];
        }
    __syncthreads();
    float o_sq = 0.0f;
    if (o_live) {
        const int m = o_r >> 4, row = o_r & 15;
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < KS; w++)
#pragma unroll
            for (int gi = 0; gi < GP; gi++) v += red[w][m][o_tau * GP + gi][row];
        if (NORM || (MODE != SK_GEMV_ADD && pn.ssq_in)) v *= s_rstd[o_tau];
        v += o_bias; /* the order of sk_w4tc_finish: sum, bias, residual */
        if (MODE == SK_GEMV_ADD) v += o_res;
        out[(size_t)o_tau * N_out + o_n] = v;
        if (MODE == SK_GEMV_ADD && pn.gnext) {
            pn.xg[(size_t)o_tau * N_out + o_n] = v * o_g;
            o_sq = v * v;
        }
    }
    /* pn.gnext (ADD, session 15): the next RMSNorm's input for the STORE product after this one
     * (pn.ssq_in there): x * gamma into pn.xg, and this block's sum of squares of each of its
     * rows' new x into pn.ssq_out[block][tau]. A row's 16 MT outputs are 16 MT consecutive lanes
     * of one warp: a shuffle tree over them (a fixed order; no barrier: a first version's
     * barrier and serial sum at the end of this one-wave kernel cost more than the qkv product
     * after it saved). */
    if (MODE == SK_GEMV_ADD && pn.gnext && warp * 32 < NOUT) {
        constexpr int SEG = 16 * MT;
        static_assert(SEG <= 32, "a row's outputs in one warp");
#pragma unroll
        for (int o = SEG / 2; o > 0; o >>= 1) o_sq += __shfl_xor_sync(0xffffffffu, o_sq, o);
        if (threadIdx.x % SEG == 0 && threadIdx.x < NOUT)
            pn.ssq_out[(size_t)blockIdx.x * T + threadIdx.x / SEG] = o_sq;
    }
    SK_TRACE_END((MODE == SK_GEMV_ADD ? SK_TRACE_TQ_ADD : SK_TRACE_TQ_STORE) << 24 | C);
}

/* One launch of sk_w4_tq_kernel (ZC3, T <= 2): GP from G, NORM when gamma != NULL (not ADD).
 * MINB caps the registers so that MINB blocks of NW warps fit an SM; at T = 2 and G = 32 (two
 * blocks of B columns) uncapped, as sk_w4_tc_launch_n. pf: sk_w4_tq_kernel's item 4. */
template <int T, int MT, int D, int MODE, int NW, int MINB, int RS = 0>
static void sk_w4_tq_launch(int pf, const float *x, const uint32_t *q4, const __half2 *q4s, int G,
                            const float *bias, int N_out, int K, float *out, const float *gamma,
                            float eps, cudaStream_t s) {
    static_assert(T <= 2, "ZC3 at T <= 2");
    constexpr int MB4 = sk_w4tc_dims<T, 4>::NB > 1 ? 1 : MINB;
    constexpr int MB2 = sk_w4tc_dims<T, 2>::NB > 1 ? 1 : MINB;
    const unsigned blocks = (unsigned)((N_out + 16 * MT - 1) / (16 * MT));
    void (*k)(const float *, const uint32_t *, const __half2 *, const float *, int, int, float *,
              const float *, float, int, sk_w4_pn) = nullptr;
    if (MODE != SK_GEMV_ADD && gamma)
        k = G == 32   ? sk_w4_tq_kernel<T, MT, D, 4, 3, MODE, NW, MB4, MODE != SK_GEMV_ADD, RS>
            : G == 64 ? sk_w4_tq_kernel<T, MT, D, 2, 3, MODE, NW, MB2, MODE != SK_GEMV_ADD, RS>
                      : sk_w4_tq_kernel<T, MT, D, 1, 3, MODE, NW, MINB, MODE != SK_GEMV_ADD, RS>;
    else
        k = G == 32   ? sk_w4_tq_kernel<T, MT, D, 4, 3, MODE, NW, MB4, 0, RS>
            : G == 64 ? sk_w4_tq_kernel<T, MT, D, 2, 3, MODE, NW, MB2, 0, RS>
                      : sk_w4_tq_kernel<T, MT, D, 1, 3, MODE, NW, MINB, 0, RS>;
    /* RS 1: the ring's dynamic shared memory, its limit raised once per kernel (the first launch
     * of a shape runs eagerly, outside graph capture: model/forward.c) */
    const size_t smem =
        RS ? (size_t)NW * D * (MT * 2 + T + (MODE != SK_GEMV_ADD && gamma ? 1 : 0)) * 32 * 16 : 0;
    if (RS) {
        static void *set[6] = {nullptr, nullptr, nullptr, nullptr, nullptr, nullptr}; /* G x NORM */
        int i = 0;
        while (i < 6 && set[i] && set[i] != (void *)k) i++;
        if (i < 6 && !set[i]) {
            const cudaError_t e =
                cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)smem);
            if (e != cudaSuccess) {
                fprintf(stderr, "saker: w4 tq: %zu bytes of shared memory: %s\n", smem,
                        cudaGetErrorString(e));
                abort();
            }
            set[i] = (void *)k;
        }
    }
    /* the pending side request (sk_w4_pn_req), for this mode only */
    const sk_w4_pn pn = sk_w4_pn_take(MODE, (int)blocks);
    sk_launch_pdl_smem(k, blocks, 32u * NW, smem, s, x, q4, q4s, bias, N_out, K, out, gamma, eps, pf,
                       pn);
}

/* What sk_w4_ts_kernel and w4_tb.cuh's kernels share (session 23). */
/* XS 1: all of x (times gamma with the norm) split into ZC3's fp16 hi / lo once per block, warp w
 * taking steps w, w + NW, ..., U loads in flight a lane; the squares summed into ssq. */
template <int T, int NW, int NORM, int U>
static __device__ __forceinline__ void sk_w4ts_split_all(const float *__restrict__ x,
                                                         const float *__restrict__ gamma, int K,
                                                         int S, int warp, int lane, uint32_t *xs,
                                                         float (&ssq)[T]) {
    constexpr int XB = sk_w4tc_dims<T, 1>::XB;
    const int xoff = (lane >> 3) * SK_W4TC_XW + (lane & 7) * 2;
    for (int s0 = warp; s0 < S; s0 += U * NW) {
        float4 xq[U][T];
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int k_ = 128 * (s0 + u * NW) + 4 * lane;
#pragma unroll
            for (int tau = 0; tau < T; tau++)
                xq[u][tau] = s0 + u * NW < S && k_ < K
                                 ? __ldg(reinterpret_cast<const float4 *>(x + (size_t)tau * K + k_))
                                 : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int s = s0 + u * NW, k_ = 128 * s + 4 * lane;
            if (s >= S) break;
            if (NORM && k_ < K) {
                const float4 g_ = __ldg(reinterpret_cast<const float4 *>(gamma + k_));
#pragma unroll
                for (int tau = 0; tau < T; tau++) {
                    float4 &v_ = xq[u][tau];
                    ssq[tau] = fmaf(v_.x, v_.x, fmaf(v_.y, v_.y, fmaf(v_.z, v_.z, fmaf(v_.w, v_.w, ssq[tau]))));
                    v_.x *= g_.x, v_.y *= g_.y, v_.z *= g_.z, v_.w *= g_.w;
                }
            }
            sk_w4tc_xsplit<T, 1>(xq[u], xs + s * XB, xoff);
        }
    }
}
/* The warp's sums of squares (lane totals) into row `warp` of s_ssq. */
template <int T>
static __device__ __forceinline__ void sk_w4ts_put_ssq(const float (&ssq)[T], float *s_ssq_w, int lane) {
#pragma unroll
    for (int tau = 0; tau < T; tau++) {
        float v = ssq[tau];
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
        if (lane == 0) s_ssq_w[tau] = v;
    }
}
/* ssq_in (the carried norm): warp tau < T puts 1 / rms of row tau into s_rstd_in[tau]. */
template <int T>
static __device__ __forceinline__ void sk_w4ts_rstd_in(const float *ssq_in, int nssq, int warp, int lane,
                                                       int K, float eps, float *s_rstd_in) {
    if (!ssq_in || warp >= T) return;
    float pre[SK_W4_PN_PRE];
    sk_w4_pn_issue(ssq_in, nssq, T, warp, lane, pre);
    const float r = sk_w4_pn_finish(ssq_in, nssq, T, warp, lane, pre, K, eps);
    if (lane == 0) s_rstd_in[warp] = r;
}
/* A SwiGLU tile's end, part 1: the warp's sums (2^28 ZC3 scale undone) into rd[warp], acc zeroed. */
template <int NT, int NB>
static __device__ __forceinline__ void sk_w4ts_tile_red(float (*rd)[NT][4 * NB][16], int warp, int g,
                                                        int t, float (&acc)[NT][NB][2]) {
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++) {
            rd[warp][m][t + 4 * b][g] = acc[m][b][0] * 268435456.0f; /* 2^28 (ZC3) */
            rd[warp][m][t + 4 * b][g + 8] = acc[m][b][1] * 268435456.0f;
            acc[m][b][0] = acc[m][b][1] = 0.0f;
        }
}
/* Part 2 (after a barrier; a thread with o_r < 16 MT): output (o_tau, n = tile row o_r) =
 * silu(gate) up from the KS warps' sums (sk_w4tc_finish's order: sums, times 1 / rms, SwiGLU). */
template <int T, int MT, int NB, int GP, int KS, int NORM>
static __device__ __forceinline__ void sk_w4ts_tile_out(float (*rd)[2 * MT][4 * NB][16], const float (*s_ssq)[T],
                                                        const float *s_rstd_in, bool rstd_in, int o_tau,
                                                        int o_r, int n, int N_out, int K, float eps,
                                                        float *__restrict__ out) {
    const int m = o_r >> 4, row = o_r & 15;
    float v = 0.0f, u = 0.0f;
#pragma unroll
    for (int w = 0; w < KS; w++)
#pragma unroll
        for (int gi = 0; gi < GP; gi++) {
            v += rd[w][m][o_tau * GP + gi][row];
            u += rd[w][MT + m][o_tau * GP + gi][row];
        }
    if (NORM) {
        float a = 0.0f;
#pragma unroll
        for (int w = 0; w < KS; w++) a += s_ssq[w][o_tau];
        const float rstd = 1.0f / sqrtf(a / (float)K + eps); /* the CPU's formula */
        v *= rstd, u *= rstd;
    } else if (rstd_in) {
        v *= s_rstd_in[o_tau], u *= s_rstd_in[o_tau];
    }
    out[(size_t)o_tau * N_out + n] = v / (1.0f + __expf(-v)) * u;
}
/* A SwiGLU launch of `grid` blocks without a gamma takes the pending side request (sk_w4_pn_req):
 * the sums of squares of the ADD launch before. */
static inline void sk_w4_pn_take_sw(const float *gamma, int grid, const float **ssq_in, int *nssq) {
    if (sk_w4_pn_req.on && sk_w4_pn_req.mode == SK_GEMV_SWIGLU && !gamma) {
        *ssq_in = sk_w4_pn_req.pn.ssq_in;
        *nssq = sk_w4_pn_req.pn.nssq;
        sk_w4_pn_req.on = false;
        sk_w4_pn_req.blocks = grid;
    }
}
/* A persistent launch's grid: the resident slots of kernel k (occupancy at `threads` and smem,
 * asked again when smem changes; the dynamic limit raised to lim once) x SMs, at most ntile.
 * The statics are the caller's (one set per kernel). 0 on failure (printed). */
template <typename KF>
static inline int sk_w4_persist_grid(KF k, int threads, size_t smem, size_t lim, int ntile, bool &set,
                                     size_t &occ_smem, int &occ, int &sms, const char *who) {
    cudaError_t e = cudaSuccess;
    if (!set) {
        e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)lim);
        set = true;
    }
    if (e == cudaSuccess && occ_smem != smem) {
        int dev = 0;
        e = cudaGetDevice(&dev);
        if (e == cudaSuccess) e = cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev);
        if (e == cudaSuccess) e = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, k, threads, smem);
        occ_smem = smem;
    }
    if (e != cudaSuccess || occ < 1) {
        fprintf(stderr, "saker: w4 %s: occupancy of %zu bytes of shared memory: %s (%d blocks)\n", who,
                smem, cudaGetErrorString(e), occ);
        return 0;
    }
    return ntile < occ * sms ? ntile : occ * sms;
}

#include "backend/cuda/w4_tb.cuh"

/* The tq ADD configuration for a product tba does not take (session 24): at two rows, where the
 * product's N_out / 32 blocks fit the SMs at once (one block an SM) and K >= 4096 (the sizes
 * measured), 5 (MT2 NW8 D4: the ring one step deeper), else 6 (MT2 NW8 D3). H200: dev_gemv_w4
 * s9, us, T = 2: 7B down (K = 11008, 128 blocks) 12.68 -> 9.73, 7B o 5.86-5.92 -> 5.76, but 70B o
 * (256 blocks) 12.07 -> 15.25; the engine's 7B INT4 batch 2 ITL 1.844 / 1.844 -> 1.781 / 1.782 ms
 * (-3.4%). At one row ADD 8 (D8, one block an SM) looked 16% faster on 7B down in the workbench
 * and was even in the engine (batch 1 1.687 / 1.688 -> 1.692 / 1.695 ms): not taken. */
static inline int sk_w4_tq_add_base(int T, int N_out, int K) {
    static int sms = 0;
    if (sms == 0) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess)
            sms = -1;
    }
    return T == 2 && K >= 4096 && sms > 0 && (N_out + 31) / 32 <= sms ? 5 : 6;
}

/* sk_w4_tba_kernel <T, NW, NS, MINB> if it can take the product (sk_w4_tba_ok): launched, true. */
template <int T, int NW, int NS, int MINB>
static inline bool sk_w4_tba_try(const float *x, const uint32_t *q4, const __half2 *q4s, int G, const float *bias,
                                 int N_out, int K, float *out, cudaStream_t s) {
    if (!sk_w4_tba_ok<T, NW, NS>(G, K, x, q4, q4s)) return false;
    sk_w4_tba_launch<T, NW, NS, MINB>(x, q4, q4s, bias, N_out, K, out, s);
    return true;
}
/* The configurations timed against the backend's launch (dev_gemv_w4 s9; index 1..4, 0: none).
 * STORE (qkv, with or without the fused norm) and ADD (o, down) have their own lists:
 *   STORE 1: MT1 NW4 D3, 5 blocks an SM (<= 102 registers): 70B qkv's 640 blocks in one wave
 *         2: MT2 NW4 D2, 4 an SM    3: MT2 NW4 D3, 3 an SM    4: MT2 NW4 D4, 3 an SM (<= 170)
 *   ADD   1: MT2 NW8 D2 (the backend's shape: isolates items 3 and 4)
 *         2: MT2 NW4 D4, 3 an SM    3: MT2 NW4 D6, 2 an SM    4: MT2 NW4 D8, 2 an SM
 * Registers (ptxas, T = 1, G = 128, here): STORE 1: 90-91, 2: 114, 3: 137-138, 4: 150-151; ADD
 * 1: 118 (sk_w4_tc_kernel's MT2: 114), 2: 150-152, 3: 212, 4: 255 (2 blocks an SM exactly); no
 * spills but at T = 2, G = 32, ADD 4 (88 bytes). Bytes in flight an SM on the 70B shapes (ring
 * only, blocks spread evenly): qkv now 48 KB in the first of two waves; STORE 1: 58 KB, 2: 39,
 * 3: 58, 4: 77, all in one wave; o now 64 KB; ADD 1: 64, 2: 62 (3 slots an SM: one left for
 * the next launch's PDL prologue), 3: 93, 4: 124.
 * Session 14, RS1 (the ring, x and gamma in shared memory, sk_w4_tq_kernel's RS; a slot is
 * (2 MT + T + norm) x 512 bytes a warp):
 *   STORE 5: MT1 NW4 D4 LB5   6: MT1 NW4 D6 LB4   7: MT2 NW4 D4 LB4   8: MT1 NW8 D3 LB3
 *   ADD   5: MT2 NW8 D4 LB2   6: MT2 NW8 D3 LB2   7: MT2 NW4 D6 LB3   8: MT2 NW8 D8 LB1
 * Returns false for an index it does not know. */
template <int T, int MODE>
static bool sk_w4_tq_launch_cfg(int cfg, int pf, const float *x, const uint32_t *q4,
                                const __half2 *q4s, int G, const float *bias, int N_out, int K,
                                float *out, const float *gamma, float eps, cudaStream_t s) {
    if constexpr (MODE == SK_GEMV_ADD) {
        switch (cfg) {
        case 1: sk_w4_tq_launch<T, 2, 2, MODE, 8, 1>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 2: sk_w4_tq_launch<T, 2, 4, MODE, 4, 3>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 3: sk_w4_tq_launch<T, 2, 6, MODE, 4, 2>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 4: sk_w4_tq_launch<T, 2, 8, MODE, 4, 2>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 5: sk_w4_tq_launch<T, 2, 4, MODE, 8, 2, 1>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 6: sk_w4_tq_launch<T, 2, 3, MODE, 8, 2, 1>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 7: sk_w4_tq_launch<T, 2, 6, MODE, 4, 3, 1>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 8: sk_w4_tq_launch<T, 2, 8, MODE, 8, 1, 1>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        /* session 23: sk_w4_tba_kernel (w4_tb.cuh) */
        case 9: if (sk_w4_tba_try<T, 8, 3, 2>(x, q4, q4s, G, bias, N_out, K, out, s)) return true; break;
        case 10: if (sk_w4_tba_try<T, 8, 2, 2>(x, q4, q4s, G, bias, N_out, K, out, s)) return true; break;
        case 11: if (sk_w4_tba_try<T, 16, 2, 1>(x, q4, q4s, G, bias, N_out, K, out, s)) return true; break;
        default: return false;
        }
        /* (a product tba cannot take: sk_w4_tq_add_base's pick) */
        return sk_w4_tq_launch_cfg<T, MODE>(sk_w4_tq_add_base(T, N_out, K), pf, x, q4, q4s, G, bias, N_out, K,
                                            out, gamma, eps, s);
    } else if constexpr (MODE == SK_GEMV_STORE) {
        switch (cfg) {
        case 1: sk_w4_tq_launch<T, 1, 3, MODE, 4, 5>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 2: sk_w4_tq_launch<T, 2, 2, MODE, 4, 4>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 3: sk_w4_tq_launch<T, 2, 3, MODE, 4, 3>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 4: sk_w4_tq_launch<T, 2, 4, MODE, 4, 3>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 5: sk_w4_tq_launch<T, 1, 4, MODE, 4, 5, 1>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 6: sk_w4_tq_launch<T, 1, 6, MODE, 4, 4, 1>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 7: sk_w4_tq_launch<T, 2, 4, MODE, 4, 4, 1>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        case 8: sk_w4_tq_launch<T, 1, 3, MODE, 8, 3, 1>(pf, x, q4, q4s, G, bias, N_out, K, out, gamma, eps, s); return true;
        /* session 24: sk_w4_tbs_kernel (w4_tb.cuh: tile pairs, stream-K, no gamma / bias), the
         * session-23 pick where it cannot take the product */
        case 9:
            if (!sk_w4_tbs_ok<T, 8, 3>(G, N_out, K, bias, gamma, x, q4, q4s)) break;
            sk_w4_tbs_launch<T, 8, 3, 2>(x, q4, q4s, N_out, K, out, eps, s);
            return true;
        case 10:
            if (!sk_w4_tbs_ok<T, 8, 2>(G, N_out, K, bias, gamma, x, q4, q4s)) break;
            sk_w4_tbs_launch<T, 8, 2, 3>(x, q4, q4s, N_out, K, out, eps, s);
            return true;
        case 11:
            if (!sk_w4_tbs_ok<T, 8, 4>(G, N_out, K, bias, gamma, x, q4, q4s)) break;
            sk_w4_tbs_launch<T, 8, 4, 2>(x, q4, q4s, N_out, K, out, eps, s);
            return true;
        case 12:
            if (!sk_w4_tbs_ok<T, 16, 2>(G, N_out, K, bias, gamma, x, q4, q4s)) break;
            sk_w4_tbs_launch<T, 16, 2, 1>(x, q4, q4s, N_out, K, out, eps, s);
            return true;
        default: return false;
        }
        /* (the product tb cannot take: the session-23 pick) */
        return sk_w4_tq_launch_cfg<T, MODE>(T == 1 && K >= 8192 ? 5 : 7, pf, x, q4, q4s, G, bias, N_out, K,
                                            out, gamma, eps, s);
    }
    return false;
}
/* A short name of configuration cfg of mode (for the workbench's tables). */
static inline const char *sk_w4_tq_name(int mode, int cfg) {
    static const char *st[] = {"-", "tq MT1 NW4 D3 LB5", "tq MT2 NW4 D2 LB4", "tq MT2 NW4 D3 LB3",
                               "tq MT2 NW4 D4 LB3", "tq MT1 NW4 D4 LB5 RS1", "tq MT1 NW4 D6 LB4 RS1",
                               "tq MT2 NW4 D4 LB4 RS1", "tq MT1 NW8 D3 LB3 RS1"};
    static const char *ad[] = {"-", "tq MT2 NW8 D2", "tq MT2 NW4 D4 LB3", "tq MT2 NW4 D6 LB2",
                               "tq MT2 NW4 D8 LB2", "tq MT2 NW8 D4 LB2 RS1", "tq MT2 NW8 D3 LB2 RS1",
                               "tq MT2 NW4 D6 LB3 RS1", "tq MT2 NW8 D8 LB1 RS1", "tba NW8 NS3 LB2",
                               "tba NW8 NS2 LB2", "tba NW16 NS2 LB1"};
    static const char *tbs[] = {"tbs NW8 NS3 LB2", "tbs NW8 NS2 LB3", "tbs NW8 NS4 LB2",
                                "tbs NW16 NS2 LB1"};
    if (mode != SK_GEMV_ADD && cfg >= 9 && cfg <= 12) return tbs[cfg - 9];
    return cfg < 1 || cfg > 11 ? "-" : mode == SK_GEMV_ADD ? ad[cfg] : st[cfg];
}

/* ---- sk_w4_ts_kernel: SwiGLU (gate/up) at T <= 2, persistent blocks with one ring across their
 * tiles (session 10, written without a GPU: compiled, NOT yet run) --------------------------
 *
 * Why: 70B gate/up at T = 1 is 1792 tiles of 16 gate + 16 up rows (MT1), each 8 steps a warp in
 * sk_w4_tc_kernel's 8-warp blocks, 2 blocks an SM: 6.8 waves, and every block starts with an
 * empty ring (D = 2 steps of 2 KB a warp), so ~1 of a warp's 8 steps is an exposed L2/HBM round
 * trip, and each block ends with two barriers and its stores while no load of it is in flight.
 * Measured 79.8 us a layer in the decode graph (72% of copy). What this kernel changes:
 *   1. persistent blocks: a grid of the resident slots (occupancy API x SMs, at most the tiles);
 *      block b takes tiles b, b + grid, ...; a warp's (tile, step) pairs are one sequence, and
 *      the ring runs over it: the next tile's first D steps are in flight while the current
 *      tile's last steps compute and while its epilogue runs (one barrier a tile: the partial
 *      sums go to one of two reduction buffers by tile parity, so no barrier guards their reuse);
 *   2. XS = 1: x (times gamma with the fused norm) is split into ZC3's fp16 hi / lo once per
 *      block for all of K into shared memory (S steps x XB words: 40 KB at K = 8192, T = 1),
 *      the sum of squares with it (1 / rms known before the loop); the loop then does no x
 *      loads, no split, no stores of x and no gamma work: ~30 of ~232 instructions a step of
 *      MT1 SwiGLU + norm (SASS 464 a step pair, session 8), the kernel being issue-bound
 *      (session 4). Falls back to XS = 0 (x split per step, as sk_w4_tq_kernel) where S x XB
 *      words do not fit (K > ~11000 at T = 2; never for a Llama gate/up at T = 1);
 *   3. NW warps a block and the ring depth D at compile time (as sk_w4_tq_kernel).
 * Each warp walks nsw = ceil(S / NW) step slots a tile (the last may be dead, st >= S: nothing
 * loaded or computed, but every warp reaches the tile's barrier at the same slot). Outputs: T x
 * 16 MT a tile, one a thread; out = silu(gate) * up (sk_w4tc_finish's order: sums, times 1 / rms,
 * then the SwiGLU). ZC3 arithmetic (sk_w4tc_xsplit / sk_w4tc_mma). Rows past N_out read the last
 * row (never stored); row offsets are 32-bit chunk offsets (the caller's check). */
template <int T, int MT, int D, int GP, int NW, int MINB, int NORM, int XS, int RS = 0>
__global__ void __launch_bounds__(32 * NW, MINB)
    sk_w4_ts_kernel(const float *__restrict__ x, const uint32_t *__restrict__ q4,
                    const __half2 *__restrict__ q4s, int N_out, int K, float *__restrict__ out,
                    const float *__restrict__ gamma, float eps, const float *__restrict__ ssq_in,
                    int nssq) {
    constexpr int NT = 2 * MT, ZC = 3, KS = NW, NOUT = 16 * MT * T;
    constexpr int NB = sk_w4tc_dims<T, GP>::NB, XB = sk_w4tc_dims<T, GP>::XB;
    constexpr int GSH = sk_w4tc_dims<T, GP>::GSH;
    static_assert(D >= 1 && NW >= 1 && NW <= SK_W4TC_MAXW && NOUT <= 32 * NW, "one output a thread");
    /* dynamic: RS 1: the weight ring [NW][D][NT][2][32] uint4 first; then XS 1: split x [S][XB]
     * words, XS 0: per-warp buffers [NW][2][XB] */
    /* (128-byte base: see sk_w4_tq_kernel) */
    extern __shared__ __align__(128) uint32_t sk_w4ts_smem[];
    uint32_t *const xs = sk_w4ts_smem + (RS ? NW * D * NT * 2 * 32 * 4 : 0);
    __shared__ __align__(16) float red[2][NW][NT][4 * NB][16];
    __shared__ __align__(16) uint32_t xzero[16];
    __shared__ float s_ssq[NW][T];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int C = K >> 5, S = (C + 3) >> 2, KG = C >> GSH;
    const int ntile = (N_out + 16 * MT - 1) / (16 * MT);
    const int nsw = (S + KS - 1) / KS; /* step slots a warp walks per tile */
    const int ntb = (int)blockIdx.x < ntile ? (ntile - 1 - (int)blockIdx.x) / (int)gridDim.x + 1 : 0;
    const int J = ntb * nsw; /* this warp's slots in all */
    const int tstride = (int)gridDim.x * 16 * MT;
    SK_TRACE_BEGIN();
    sk_pdl_trigger();
    if (threadIdx.x < 16) xzero[threadIdx.x] = 0u;

    /* The load cursor: slot l_i of the tile at rows l_n0; wo / so its rows' offsets. */
    int l_i = 0, l_n0 = (int)blockIdx.x * 16 * MT;
    int wo[NT][2], so[NT][2];
#define SK_W4TS_ROWS()                                                                             \
    do {                                                                                           \
        _Pragma("unroll") for (int m_ = 0; m_ < NT; m_++)                                          \
            _Pragma("unroll") for (int r_ = 0; r_ < 2; r_++) {                                     \
            int n_ = l_n0 + 16 * (m_ % MT) + g + 8 * r_;                                           \
            if (n_ >= N_out) n_ = N_out - 1;                                                       \
            if (m_ >= MT) n_ += N_out;                                                             \
            wo[m_][r_] = SK_W4_WO(n_, C);                                                                   \
            so[m_][r_] = n_ * KG;                                                                  \
        }                                                                                          \
    } while (0)
    SK_W4TS_ROWS();
    const uint4 *wq = reinterpret_cast<const uint4 *>(q4);
    const uint32_t *sq = reinterpret_cast<const uint32_t *>(q4s);
    /* RS 1: this warp's ring slots in shared memory, each lane copying and reading back its own
     * 16-byte chunks (no cross-lane sharing: cp.async.wait_group of the lane's own groups is
     * enough); RS 0: the ring in registers. The scale words stay in registers either way. */
    uint4 *const ring = reinterpret_cast<uint4 *>(sk_w4ts_smem) + (size_t)warp * D * NT * 2 * 32 + lane;
    uint4 wb[RS ? 1 : D][NT][2];
    uint32_t sb[D][NT][2];
    /* Loads the cursor's slot into ring slot d_ (nothing for a dead slot or past the block's last
     * tile), then advances the cursor. */
#define SK_W4TS_LOAD(d_)                                                                           \
    do {                                                                                           \
        const int st_ = warp + KS * l_i;                                                           \
        if (st_ < S && l_n0 < N_out) {                                                             \
            const int c_ = min(4 * st_ + t, C - 1);                                                \
            _Pragma("unroll") for (int m_ = 0; m_ < NT; m_++)                                      \
                _Pragma("unroll") for (int r_ = 0; r_ < 2; r_++) {                                 \
                if constexpr (RS)                                                                  \
                    sk_w4_cp_stream<(T <= SK_W4_EF_ROWS)>(ring + (((d_) * NT + m_) * 2 + r_) * 32,    \
                                                           wq + (wo[m_][r_] + SK_W4_WC(c_)));      \
                else                                                                               \
                    wb[(d_) % (RS ? 1 : D)][m_][r_] =                                              \
                        sk_w4_ld_stream<(T <= SK_W4_EF_ROWS)>(wq + (wo[m_][r_] + SK_W4_WC(c_)));   \
                sb[d_][m_][r_] = __ldg(sq + (so[m_][r_] + (c_ >> GSH)));                           \
            }                                                                                      \
        }                                                                                          \
        if (++l_i == nsw) {                                                                        \
            l_i = 0;                                                                               \
            l_n0 += tstride;                                                                       \
            SK_W4TS_ROWS();                                                                        \
        }                                                                                          \
    } while (0)
    /* Weights never depend on the kernel before (PDL): the ring fills before the wait. */
#pragma unroll
    for (int d = 0; d < D; d++) {
        if (d < J) SK_W4TS_LOAD(d);
        if (RS) sk_w4_cp_commit(); /* one group a slot, empty or not: wait_group counts them */
    }
    sk_pdl_wait();

    const int xoff = (lane >> 3) * SK_W4TC_XW + (lane & 7) * 2;
    float4 xn[T];
    float ssq[T];
#pragma unroll
    for (int tau = 0; tau < T; tau++) ssq[tau] = 0.0f;
    /* x of step s_ (this lane: elements 4 lane .. 4 lane + 3 of each row), times gamma with the
     * norm; sq_: add the squares to ssq (each element once per block). */
#define SK_W4TS_LOADX(s_, sq_)                                                                     \
    do {                                                                                           \
        const int k_ = 128 * (s_) + 4 * lane;                                                      \
        _Pragma("unroll") for (int tau_ = 0; tau_ < T; tau_++) xn[tau_] =                          \
            k_ < K ? __ldg(reinterpret_cast<const float4 *>(x + (size_t)tau_ * K + k_))          \
                   : make_float4(0.0f, 0.0f, 0.0f, 0.0f);                                          \
        if (NORM && k_ < K) {                                                                      \
            const float4 g_ = __ldg(reinterpret_cast<const float4 *>(gamma + k_));                 \
            _Pragma("unroll") for (int tau_ = 0; tau_ < T; tau_++) {                              \
                float4 &v_ = xn[tau_];                                                             \
                if (sq_)                                                                           \
                    ssq[tau_] = fmaf(v_.x, v_.x, fmaf(v_.y, v_.y, fmaf(v_.z, v_.z, fmaf(v_.w, v_.w, ssq[tau_])))); \
                v_.x *= g_.x, v_.y *= g_.y, v_.z *= g_.z, v_.w *= g_.w;                            \
            }                                                                                      \
        }                                                                                          \
    } while (0)
    if (XS) { /* 2. all of x, split once: warp w takes steps w, w + NW, ..., four loads at a time */
        sk_w4ts_split_all<T, NW, NORM, 4>(x, gamma, K, S, warp, lane, xs, ssq);
    } else if (warp < S && J > 0) {
        SK_W4TS_LOADX(warp, true);
    }
    /* The sum of squares per warp: XS 1 now; XS 0 at the end of the first tile (each element of
     * x is loaded once in the first tile; later tiles' loads do not add). Both before a barrier
     * that comes before any read of s_ssq. */
    auto put_ssq = [&]() { sk_w4ts_put_ssq<T>(ssq, s_ssq[warp], lane); };
    if (NORM && XS) put_ssq();
    /* ssq_in (session 15, NORM 0): x arrived multiplied by gamma from the ADD GEMV before
     * (w4.cuh's sk_w4_pn); 1 / rms of row tau from that launch's per-block sums of squares
     * (nssq of them), added by warp tau in a fixed order. */
    __shared__ float s_rstd_in[T];
    if (!NORM) sk_w4ts_rstd_in<T>(ssq_in, nssq, warp, lane, K, eps, s_rstd_in);
    __syncthreads(); /* xzero, the split x */

    int bsrc[NB];
    sk_w4tc_bsrc<T, GP>(bsrc, g, t);
    float acc[NT][NB][2];
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++) acc[m][b][0] = acc[m][b][1] = 0.0f;

    const int o_tau = threadIdx.x / (16 * MT), o_r = threadIdx.x % (16 * MT);
    int c_i = 0, c_n0 = (int)blockIdx.x * 16 * MT, c_tile = 0; /* the compute cursor */
    for (int i = 0; i < J; i += D) {
#pragma unroll
        for (int d = 0; d < D; d++) {
            const int j = i + d;
            if (j >= J) break;
            const int st = warp + KS * c_i;
            const bool live = st < S;
            const uint32_t *xw;
            if (XS) {
                xw = xs + (live ? st : 0) * XB;
            } else {
                uint32_t *xb = xs + (size_t)(warp * 2 + (j & 1)) * XB;
                if (live) sk_w4tc_xsplit<T, 1>(xn, xb, xoff);
                /* the next slot's x: the next step of this tile, or the first of the next tile
                 * (its squares only while in the first tile) */
                const bool last = c_i == nsw - 1;
                const int sn = last ? warp : st + KS;
                if (j + 1 < J && sn < S) SK_W4TS_LOADX(sn, c_tile == 0 && !last);
                xw = xb;
            }
            if constexpr (RS) {
                sk_w4_cp_wait<D - 1>(); /* slot j's group (the oldest of the D in flight) */
                uint4 wr[NT][2];
#pragma unroll
                for (int m = 0; m < NT; m++)
#pragma unroll
                    for (int r = 0; r < 2; r++) wr[m][r] = ring[((d * NT + m) * 2 + r) * 32];
                if (live) sk_w4tc_mma<T, NT, GP, ZC>(wr, sb[d], xw, bsrc, xzero, lane, t, acc);
            } else {
                if (live) sk_w4tc_mma<T, NT, GP, ZC>(wb[d], sb[d], xw, bsrc, xzero, lane, t, acc);
            }
            if (j + D < J) SK_W4TS_LOAD(d);
            if (RS) sk_w4_cp_commit();
            if (++c_i == nsw) { /* the tile's epilogue; the ring's next loads stay in flight */
                c_i = 0;
                if (NORM && !XS && c_tile == 0) put_ssq();
                float(*rd)[NT][4 * NB][16] = red[c_tile & 1];
                sk_w4ts_tile_red<NT, NB>(rd, warp, g, t, acc);
                __syncthreads();
                const int n = c_n0 + o_r;
                if (threadIdx.x < NOUT && n < N_out)
                    sk_w4ts_tile_out<T, MT, NB, GP, KS, NORM>(rd, s_ssq, s_rstd_in, ssq_in != nullptr, o_tau,
                                                              o_r, n, N_out, K, eps, out);
                c_n0 += tstride;
                c_tile++;
            }
        }
    }
    SK_TRACE_END(SK_TRACE_TS << 24 | C);
#undef SK_W4TS_ROWS
#undef SK_W4TS_LOAD
#undef SK_W4TS_LOADX
}

/* Dynamic shared memory of sk_w4_ts_kernel (bytes) for K, and the largest it may ask. */
template <int T, int GP, int NW, int XS, int RS = 0, int D = 1, int MT = 1>
static inline size_t sk_w4_ts_smem(int K) {
    const size_t S = (size_t)(((K >> 5) + 3) >> 2), XB = sk_w4tc_dims<T, GP>::XB;
    return 4 * (XS ? S * XB : (size_t)NW * 2 * XB) + (RS ? (size_t)NW * D * 2 * MT * 2 * 32 * 16 : 0);
}
#define SK_W4TS_SMEM_MAX (160 * 1024) /* XS = 1 above this: XS = 0 */
#define SK_W4TS_RS_SMEM_MAX (200 * 1024) /* RS = 1 (ring and x) above this: RS = 0 */

/* One launch of sk_w4_ts_kernel<T, MT, D, GP, NW, MINB, NORM, XS> on a grid of its resident
 * slots (occupancy x SMs, at most the tiles), the dynamic shared-memory limit raised to
 * SK_W4TS_SMEM_MAX the first time (outside a graph capture: the engine's first decode step of a
 * row count runs eagerly, model/forward.c) and the occupancy asked again when K changes. */
template <int T, int MT, int D, int GP, int NW, int MINB, int NORM, int XS, int RS = 0>
static void sk_w4_ts_launch_k(const float *x, const uint32_t *q4, const __half2 *q4s, int N_out,
                              int K, float *out, const float *gamma, float eps, cudaStream_t s) {
    auto k = sk_w4_ts_kernel<T, MT, D, GP, NW, MINB, NORM, XS, RS>;
    const size_t smem = sk_w4_ts_smem<T, GP, NW, XS, RS, D, MT>(K);
    static bool set = false; /* the dynamic limit (by default 48 KB less the static bytes) */
    static size_t occ_smem = (size_t)-1, lim = 0;
    static int occ = 0, sms = 0;
    if (!set) { /* RS 1: all an SM offers a block beside the static bytes */
        cudaFuncAttributes fa;
        lim = RS && cudaFuncGetAttributes(&fa, k) == cudaSuccess ? (size_t)227 * 1024 - fa.sharedSizeBytes
                                                                 : (size_t)SK_W4TS_SMEM_MAX;
    }
    const int ntile = (N_out + 16 * MT - 1) / (16 * MT);
    const int grid = sk_w4_persist_grid(k, 32 * NW, smem, lim, ntile, set, occ_smem, occ, sms, "ts");
    if (grid < 1) abort();
    const float *ssq_in = nullptr; /* the pending side request (sk_w4_pn_req), SwiGLU's */
    int nssq = 0;
    sk_w4_pn_take_sw(gamma, grid, &ssq_in, &nssq);
    sk_launch_pdl_smem(k, dim3((unsigned)grid), 32u * NW, smem, s, x, q4, q4s, N_out, K, out, gamma,
                       eps, ssq_in, nssq);
}
/* GP from G, NORM from gamma, XS = 0 where XS = 1's x does not fit SK_W4TS_SMEM_MAX. */
template <int T, int MT, int D, int NW, int MINB, int XS, int RS = 0>
static void sk_w4_ts_launch(const float *x, const uint32_t *q4, const __half2 *q4s, int G,
                            int N_out, int K, float *out, const float *gamma, float eps,
                            cudaStream_t s) {
    static_assert(T <= 2, "ZC3 at T <= 2");
    if (XS && sk_w4_ts_smem<T, 1, NW, 1>(K) > SK_W4TS_SMEM_MAX) {
        sk_w4_ts_launch<T, MT, D, NW, MINB, 0, RS>(x, q4, q4s, G, N_out, K, out, gamma, eps, s);
        return;
    }
    if (RS && sk_w4_ts_smem<T, 1, NW, XS, RS, D, MT>(K) > SK_W4TS_RS_SMEM_MAX) { /* ring in registers */
        sk_w4_ts_launch<T, MT, D, NW, MINB, XS, 0>(x, q4, q4s, G, N_out, K, out, gamma, eps, s);
        return;
    }
    /* two blocks of B columns (T = 2, G = 32): uncapped, as sk_w4_tc_launch_n */
    constexpr int MB4 = sk_w4tc_dims<T, 4>::NB > 1 ? 1 : MINB;
    constexpr int MB2 = sk_w4tc_dims<T, 2>::NB > 1 ? 1 : MINB;
    if (gamma) {
        if (G == 32) sk_w4_ts_launch_k<T, MT, D, 4, NW, MB4, 1, XS, RS>(x, q4, q4s, N_out, K, out, gamma, eps, s);
        else if (G == 64) sk_w4_ts_launch_k<T, MT, D, 2, NW, MB2, 1, XS, RS>(x, q4, q4s, N_out, K, out, gamma, eps, s);
        else sk_w4_ts_launch_k<T, MT, D, 1, NW, MINB, 1, XS, RS>(x, q4, q4s, N_out, K, out, gamma, eps, s);
    } else {
        if (G == 32) sk_w4_ts_launch_k<T, MT, D, 4, NW, MB4, 0, XS, RS>(x, q4, q4s, N_out, K, out, gamma, eps, s);
        else if (G == 64) sk_w4_ts_launch_k<T, MT, D, 2, NW, MB2, 0, XS, RS>(x, q4, q4s, N_out, K, out, gamma, eps, s);
        else sk_w4_ts_launch_k<T, MT, D, 1, NW, MINB, 0, XS, RS>(x, q4, q4s, N_out, K, out, gamma, eps, s);
    }
}

/* The SwiGLU configurations (SAKER_W4_TQ_SW=1..4, dev_gemv_w4 sw; 0: sk_w4_tc_kernel as before):
 *   1: MT1 NW8 D2 LB2 XS0  sk_w4_tc_kernel's warp and block, persistent (item 1 alone)
 *   2: MT1 NW8 D2 LB2 XS1  the same with x split once per block (items 1 and 2)
 *   3: MT1 NW4 D4 LB3 XS1  a deeper ring (4 KB a warp in flight), 3 blocks of 4 warps an SM
 *   4: MT1 NW8 D3 LB2 XS1  a ring of 3 in 2 blocks of 8 warps (registers at the cap of 128)
 * Session 14, RS1: the ring in shared memory (cp.async per lane; the ring's registers freed):
 *   5: MT1 NW8 D3 LB2 XS1 RS1   6: MT1 NW8 D4 LB2 XS1 RS1   7: MT1 NW8 D6 LB1 XS1 RS1
 *   8: MT1 NW4 D6 LB2 XS1 RS1
 * Returns false for an index it does not know. */
template <int T>
static bool sk_w4_ts_launch_cfg(int cfg, const float *x, const uint32_t *q4, const __half2 *q4s,
                                int G, int N_out, int K, float *out, const float *gamma, float eps,
                                cudaStream_t s) {
    switch (cfg) {
    case 1: sk_w4_ts_launch<T, 1, 2, 8, 2, 0>(x, q4, q4s, G, N_out, K, out, gamma, eps, s); return true;
    case 2: sk_w4_ts_launch<T, 1, 2, 8, 2, 1>(x, q4, q4s, G, N_out, K, out, gamma, eps, s); return true;
    case 3: sk_w4_ts_launch<T, 1, 4, 4, 3, 1>(x, q4, q4s, G, N_out, K, out, gamma, eps, s); return true;
    case 4: sk_w4_ts_launch<T, 1, 3, 8, 2, 1>(x, q4, q4s, G, N_out, K, out, gamma, eps, s); return true;
    case 5: sk_w4_ts_launch<T, 1, 3, 8, 2, 1, 1>(x, q4, q4s, G, N_out, K, out, gamma, eps, s); return true;
    case 6: sk_w4_ts_launch<T, 1, 4, 8, 2, 1, 1>(x, q4, q4s, G, N_out, K, out, gamma, eps, s); return true;
    case 7: sk_w4_ts_launch<T, 1, 6, 8, 1, 1, 1>(x, q4, q4s, G, N_out, K, out, gamma, eps, s); return true;
    case 8: sk_w4_ts_launch<T, 1, 6, 4, 2, 1, 1>(x, q4, q4s, G, N_out, K, out, gamma, eps, s); return true;
    default: break;
    }
    if (cfg < 9 || cfg > 12) return false;
    const bool fits = cfg == 9    ? sk_w4_tb_fits<T, 8, 3>(K)
                      : cfg == 10 ? sk_w4_tb_fits<T, 8, 2>(K)
                      : cfg == 11 ? sk_w4_tb_fits<T, 16, 2>(K)
                                  : sk_w4_tb_fits<T, 16, 3>(K);
    if (!sk_w4_tb_ok(T, G, K, q4, q4s) || N_out % 16 != 0 || !fits) { /* (up rows start a tile) */ /* (a product tb cannot take: ts configuration 2) */
        sk_w4_ts_launch<T, 1, 2, 8, 2, 1>(x, q4, q4s, G, N_out, K, out, gamma, eps, s);
        return true;
    }
    switch (cfg) {
    case 9: sk_w4_tb_launch<T, 8, 3, 2>(x, q4, q4s, N_out, K, out, gamma, eps, s); return true;
    case 10: sk_w4_tb_launch<T, 8, 2, 2>(x, q4, q4s, N_out, K, out, gamma, eps, s); return true;
    case 11: sk_w4_tb_launch<T, 16, 2, 1>(x, q4, q4s, N_out, K, out, gamma, eps, s); return true;
    case 12: sk_w4_tb_launch<T, 16, 3, 1>(x, q4, q4s, N_out, K, out, gamma, eps, s); return true;
    default: return false;
    }
}
static inline const char *sk_w4_ts_name(int cfg) {
    static const char *nm[] = {"-", "ts MT1 NW8 D2 LB2 XS0", "ts MT1 NW8 D2 LB2 XS1",
                               "ts MT1 NW4 D4 LB3 XS1", "ts MT1 NW8 D3 LB2 XS1",
                               "ts MT1 NW8 D3 LB2 XS1 RS1", "ts MT1 NW8 D4 LB2 XS1 RS1",
                               "ts MT1 NW8 D6 LB1 XS1 RS1", "ts MT1 NW4 D6 LB2 XS1 RS1",
                               "tb NW8 NS3 LB2", "tb NW8 NS2 LB2", "tb NW16 NS2 LB1",
                               "tb NW16 NS3 LB1"};
    return cfg < 1 || cfg > 12 ? "-" : nm[cfg];
}

/* Whether the W4 GEMV can take the product: T <= SK_W4_MAX_T, K % 32 == 0 (whole chunks; G is a
 * multiple of 32), x 16-byte aligned. */
static inline bool sk_w4_gemv_ok(int T, int K, const void *x) {
    return T >= 1 && T <= SK_W4_MAX_T && K % 32 == 0 && ((uintptr_t)x & 15) == 0;
}

/* Which decode kernel: SAKER_W4_GEMV=1 takes the CUDA-core kernel above (the pick of
 * 2026-11-29, kept as the measured baseline), anything else the tensor-core one below.
 * SAKER_W4_MT (1 or 2 tiles of 16 rows per warp) and SAKER_W4_KS (warps per block, 1..8)
 * override the tensor-core kernel's shape, for experiments. */
static inline int sk_w4_env_int(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}
static inline int sk_w4_gemv_version(void) {
    static int v = -1;
    if (v < 0) v = sk_w4_env_int("SAKER_W4_GEMV", 2) == 1 ? 1 : 2;
    return v;
}
/* SAKER_W4_TB=0: no sk_w4_tb_kernel / sk_w4_tba_kernel in the picks below (session 23). */
static inline bool sk_w4_tb_on(void) {
    static int on = -1;
    if (on < 0) on = sk_w4_env_int("SAKER_W4_TB", 1) != 0;
    return on != 0;
}
/* The sk_w4_tq_kernel configuration sk_w4_gemv_launch_t takes for a STORE or ADD product at
 * T <= 2 rows (0: another kernel), SAKER_W4_TQ_STORE / SAKER_W4_TQ_ADD overriding (the
 * reasons are at its use below). */
static inline int sk_w4_tq_pick(int T, int mode, int N_out, int K) {
    static int st = -2, add = -2;
    if (st == -2) {
        st = sk_w4_env_int("SAKER_W4_TQ_STORE", -1);
        add = sk_w4_env_int("SAKER_W4_TQ_ADD", -1);
    }
    if (T > 2 || mode == SK_GEMV_SWIGLU || sk_w4_gemv_version() == 1) return 0;
    /* Session 23: sk_w4_tba_kernel (configuration 9: NW8 NS3, 2 blocks an SM; tq ADD 6 where it
     * cannot take the product) for the long-K ADD product (down) at one row and for K >= 8192 at
     * two (dev_gemv_w4 s9, H200, us: 70B down 32.22 -> 31.44 at T = 1, 34.84 -> 33.29 at T = 2;
     * 70B o 12.10 -> 11.79 at T = 2 but 10.78 -> 11.06 at T = 1; 7B o slower at both).
     * SAKER_W4_TB=0: the session-22 picks. */
    if (mode == SK_GEMV_ADD)
        return add >= 0 ? add : sk_w4_tb_on() && K >= (T == 1 ? 16384 : 8192) ? 9 : sk_w4_tq_add_base(T, N_out, K);
    /* Session 24: sk_w4_tbs_kernel (configuration 9: NW8 NS3, tile pairs, stream-K; tq 7 where it
     * cannot take the product) for qkv at two rows, K >= 8192 (dev_gemv_w4 s9 without the norm,
     * H200, us: 70B qkv 16.14-16.20 -> 15.77-15.80 at T = 2; at T = 1 14.68-15.20 against tq 5's
     * 15.00, and the engine's 70B batch 1 even, so tq 5 stays there; 70B batch 2 ITL 11.28-11.31
     * -> 11.18-11.24 ms). */
    if (st < 0 && sk_w4_tb_on() && T == 2 && N_out <= 16384 && K >= 8192) return 9;
    return st >= 0 ? st : N_out <= 16384 ? (T == 1 && K >= 8192 ? 5 : 7) : 0;
}
/* The sk_w4_ts_kernel configuration for a SwiGLU product at T <= 2 rows (0: another kernel),
 * SAKER_W4_TQ_SW overriding (the reasons are at its use below). */
template <int T>
static inline int sk_w4_ts_pick(int K) {
    static int sw = -2;
    if (sw == -2) sw = sk_w4_env_int("SAKER_W4_TQ_SW", -1);
    if (T > 2 || sk_w4_gemv_version() == 1) return 0;
    /* Session 23: sk_w4_tb_kernel where it can take the product (sk_w4_ts_launch_cfg falls back
     * to configuration 2): 10 (NW8 NS2) at one row of K >= 8192, 11 (NW16 NS2) at two, 9 (NW8 NS3)
     * / 10 below (dev_gemv_w4 sw, H200, us without the fused norm, as the engine runs it: 70B
     * 62.91 -> 61.21 at T = 1, 74.08 -> 62.40 at T = 2; 7B 15.68 -> 14.61, 18.34 -> 15.43).
     * Session 30 (the tile-major q4, its boxes by plain bulk copies): 12 (NW16 NS3, one block an
     * SM) at one row of K >= 8192 where it fits; the engine, H200, 128/256, ITL p50: 70B batch 1
     * 10.307 / 10.307 -> 10.188 / 10.159 ms (94.1-94.3 -> 95.3-95.4 output tok/s); 7B (K 4096)
     * slower with it (1.64 -> 1.70), so 9 stays below 8192. */
    if (sw < 0 && sk_w4_tb_on())
        return T == 1 ? (K >= 8192 ? (sk_w4_tb_fits<1, 16, 3>(K) ? 12 : 10) : 9) : (K >= 8192 ? 11 : 10);
    return sw >= 0 ? sw : sk_w4_ts_smem<T, 1, 8, 1>(K) <= SK_W4TS_SMEM_MAX ? 2 : 0;
}

/* CUDA-core kernel: R (rows per warp), U, and KS = 4 warps splitting K for the same rows.
 * Measured with dev/cuda/gemv_w4.cu on the H200 (bench/results/awq-speed.md): R8 U1 KS4 at T = 1
 * and 2, R2 U2 above. */
template <int T, int MODE>
static void sk_w4_gemv_v1_launch_t(const float *x, const uint32_t *q4, const __half2 *q4s, int G,
                                   const float *bias, int N_out, int K, float *out,
                                   cudaStream_t s) {
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

/* The tensor-core kernel's tiles per warp by default, per product and T (the measurements are
 * in sk_w4_gemv_launch_t below; the workbench times the same pick). */
static inline int sk_w4_tc_mt(int T, int mode, int N_out) {
    return mode == SK_GEMV_ADD     ? (N_out >= 6144 ? 2 : 1)
           : mode == SK_GEMV_STORE ? (T >= 2 ? 2 : 1)
                                   : 1;
}

/* The tensor-core kernel's shape, from dev/cuda/gemv_w4.cu on the H200 (2026-11-29, Llama-2-70B
 * and 7B shapes at T = 1, 2, 4; bench/results/awq-speed.md): D = 2 steps in flight and KS = 8
 * warps per block everywhere (at 64 registers the 8-warp blocks of a 8192-row matrix all fit on
 * the SMs at once: o 19.5 -> 15.9 us, down 59 -> 44 us against D = 4 at 80 registers); the
 * tiles per warp (MT) and the dequantization (ZC) per product and T, below (session 5). ZC = 1
 * (zero points after the MMAs) measured no faster at 74 registers; capped, an experiment. */
template <int T, int MODE>
static void sk_w4_gemv_launch_t(const float *x, const uint32_t *q4, const __half2 *q4s, int G,
                                const float *bias, int N_out, int K, float *out, cudaStream_t s,
                                const float *gamma, float eps) {
    /* The tensor-core kernel indexes rows with 32-bit chunk offsets. */
    const long chunks = (long)N_out * (MODE == SK_GEMV_SWIGLU ? 2 : 1) * (K >> 5);
    if (gamma && (sk_w4_gemv_version() == 1 || chunks > INT32_MAX)) {
        fprintf(stderr, "saker: w4 gemv: fused RMSNorm asked of a product the tensor-core kernel "
                        "cannot take (see sk_w4_gemv_norm_ok)\n");
        abort();
    }
    if (sk_w4_gemv_version() == 1 || chunks > INT32_MAX) {
        sk_w4_gemv_v1_launch_t<T, MODE>(x, q4, q4s, G, bias, N_out, K, out, s);
        return;
    }
    static int mt_env = -1, mt_add = -1, ks = -1, zc = -1, lb = -1;
    if (ks < 0) {
        mt_env = sk_w4_env_int("SAKER_W4_MT", 0);
        mt_add = sk_w4_env_int("SAKER_W4_MT_ADD", 0);
        ks = sk_w4_env_int("SAKER_W4_KS", 8);
        if (ks < 1 || ks > SK_W4TC_MAXW) ks = 8;
        zc = sk_w4_env_int("SAKER_W4_ZC", -1);
        lb = sk_w4_env_int("SAKER_W4_LB", 0);
    }
    /* Tiles per warp, sk_w4_tc_mt (session 5 on the H200, dev/cuda/gemv_w4.cu at T = 1, 2, 4 on
     * the 70B and 7B shapes, bench/results/awq-speed.md):
     *   ADD (o, down): two once there are enough rows for 1.5 blocks an SM at MT = 2 (N_out >=
     *     6144), at every T: 70B o 17.6 -> 13.6 us, down 54.6 -> 40.3 us at T = 1 (Llama-2-70B
     *     INT4 batch 1: 16.0 -> 14.5 ms a token); at 4096 rows (7B) one is faster at every T (o
     *     6.5 vs 7.0, down 13.5 vs 15.1 us at T = 1; 7.1 vs 7.7 and 13.9 vs 16.4 at T = 4);
     *   STORE (qkv): two from T = 2 (70B 25.1 -> 21.8 us, 7B 14.5 -> 12.9 at T = 2), one at T = 1;
     *   SWIGLU (gate/up): one (MT2 holds four tiles: 12-18% slower at every T).
     * SAKER_W4_MT=1|2 forces it for every product, SAKER_W4_MT_ADD=1|2 for the ADD ones. */
    int mt = sk_w4_tc_mt(T, MODE, N_out);
    if (MODE == SK_GEMV_ADD && (mt_add == 1 || mt_add == 2)) mt = mt_add;
    if (mt_env == 1 || mt_env == 2) mt = mt_env;
    /* sk_w4_tq_kernel (session 9, a helper's, written without a GPU). H200, dev_gemv_w4 check
     * 1,728 tq runs (worst 4.4e-6 of sum|x w|) and dev_gemv_w4 s9, two calls of two rounds
     * (bench/results/awq-speed.md): 70B qkv with the fused norm 20.1 -> 16.7 us at T = 1 (52% ->
     * 63% of copy; configuration 1, MT1 NW4 D3, one wave of 5 blocks an SM), 23.8 -> 20.9 at
     * T = 2; 7B qkv 12.9 -> 11.0 (configuration 3, MT2 NW4 D3; configuration 1 is 25% slower
     * there, its K of 4096 is 32 steps); configuration 3 on 70B 17.4. ADD: 70B o 2-4% faster
     * (12.6 -> 12.3 us), down even, 7B o and down 1-13% slower: left off. The L2 prefetch was
     * 5-12% slower everywhere. So the default: STORE products of qkv size (N_out <= 16384, the
     * sizes measured) at T <= 2 take configuration 1 where K >= 8192, else 3.
     * SAKER_W4_TQ_STORE=0 (off) / 1..12 and SAKER_W4_TQ_ADD=0 (off) / 1..11 force a configuration
     * of sk_w4_tq_launch_cfg, SAKER_W4_TQ_PF=n its L2 prefetch distance (0: off).
     * Session 14: the ring (and each step's x and gamma) in shared memory, RS1 (sk_w4_tq_kernel's
     * comment says why). ADD products (o, down) take configuration 6 (MT2 NW8 D3, 2 blocks an
     * SM) at T <= 2; STORE products of qkv size configuration 5 (MT1 NW4 D4, 5 blocks an SM)
     * at T = 1 where K >= 8192, else 7 (MT2 NW4 D4, 4 an SM). H200, dev_gemv_w4 s9 (two rounds,
     * us at T = 1 / T = 2, the session's first default -> the RS1 pick): 70B o 12.68 / 13.41 ->
     * 10.86 / 12.08 (78% of copy at T = 1), 70B down 36.66 / 38.16 -> 32.62 / 35.31 (91%), 70B
     * qkv + norm 16.75 / 21.06 -> 16.48 / 17.57; 7B o 6.20 / 6.46 -> 5.53 / 5.75, 7B down
     * 12.90 / 12.78 -> 11.77 / 12.87, 7B qkv + norm 11.16 / 12.56 -> 10.94 / 11.11. Llama-2-70B
     * INT4 batch 1 (128/256, ITL p50, one call): 12.07 / 12.02 ms on the old kernels, 11.62
     * with ADD 6 (bench/results/awq-speed.md, session 14). Checks: dev_gemv_w4 check (24,096
     * runs, every RS1 configuration with and without the norm), gpu_backend_ops w4. */
    if constexpr (T <= 2 && MODE != SK_GEMV_SWIGLU) {
        static int s9_pf = -1;
        if (s9_pf < 0) s9_pf = sk_w4_env_int("SAKER_W4_TQ_PF", 0);
        const int cfg = sk_w4_tq_pick(T, MODE, N_out, K);
        if (cfg > 0 && sk_w4_tq_launch_cfg<T, MODE>(cfg, s9_pf, x, q4, q4s, G, bias, N_out, K, out,
                                                    gamma, eps, s))
            return;
    }
    /* sk_w4_ts_kernel (session 10, a helper's): SwiGLU at T <= 2 on persistent blocks, x (and
     * the fused norm) split once per block into shared memory. H200, dev_gemv_w4 sw, two calls'
     * rounds (bench/results/awq-speed.md, session 10): configuration 2 (MT1 NW8 D2 LB2 XS1)
     * 70B gate/up + norm at T = 1 74.8 -> 65.2 us (79% -> 91% of copy), T = 2 90 -> 69; 7B
     * 19.7 -> 16.9 and 21.9 -> 17.2; without the norm 1-5% faster; Llama-2-70B INT4 batch 1
     * ITL 12.78 -> 11.99 ms. The default where its x fits shared memory (XS1; past that its
     * per-step fallback, XS0, was 4-11% slower than sk_w4_tc_kernel). SAKER_W4_TQ_SW=0: off
     * (sk_w4_tc_kernel), 1..4: configuration n of sk_w4_ts_launch_cfg. */
    if constexpr (T <= 2 && MODE == SK_GEMV_SWIGLU) {
        const int cfg = sk_w4_ts_pick<T>(K);
        if (cfg > 0 && sk_w4_ts_launch_cfg<T>(cfg, x, q4, q4s, G, N_out, K, out, gamma, eps, s))
            return;
    }
    /* ZC = 2 (fp16 operands: the high nibbles need no shift) at T <= 2, where it is 2-7% faster
     * than ZC = 0 per product (70B down MT2 40.7 -> 38.5 us, gate/up 80.5 -> 77.8 at T = 1;
     * Llama-2-70B INT4 batch 1 14.57 -> 14.05 ms a token); at T = 4 it is up to 50% slower
     * (70B down MT2 43.8 -> 65.6 us), so ZC = 0 there. SAKER_W4_ZC=0|1|2 overrides.
     * ZC3 / ZC4 at T <= 2 (an AND a pair, the zero point after or in the MMAs), with the fused
     * norm too. Session 8 on the H200 (dev_gemv_w4 zc, the backend's launch of each product, two
     * calls): ZC3 is faster than ZC2 on every 70B product (T = 1: qkv even, o 13.23 -> 12.64 us,
     * gate/up 77.8 -> 74.2, down 38.7 -> 37.2; a decode step's GEMVs 11.99 -> 11.54 ms; T = 2:
     * 13.95 -> 13.27 ms) and on 7B's qkv and gate/up, but slower on 7B's o and down (one tile a
     * warp, ADD: 6.24 -> 6.40 and 12.94 -> 13.19 us at T = 1, +9-14% at T = 2); ZC4 is even with
     * ZC2. Checks: dev_gemv_w4 3,024 ZC3 runs, worst 4.4e-6 of sum|x w| (ZC2 5.2e-6), and
     * gpu_backend_ops w4 / norm_matmul. So ZC3 is the default at T <= 2 except for ADD at one tile
     * a warp (ZC2 there). SAKER_W4_ZC=0..4 overrides. */
    if constexpr (T <= 2) {
        const bool z3 = zc == 3 || (zc < 0 && !(MODE == SK_GEMV_ADD && mt == 1));
        if (z3 || zc == 4) {
            if (z3)
                sk_w4_tc_launch_z<T, 3, MODE>(mt, ks, x, q4, q4s, G, bias, N_out, K, out, gamma,
                                              eps, s);
            else
                sk_w4_tc_launch_z<T, 4, MODE>(mt, ks, x, q4, q4s, G, bias, N_out, K, out, gamma,
                                              eps, s);
            return;
        }
    }
    if constexpr (MODE != SK_GEMV_ADD) { /* no op fuses a norm into an ADD product */
    if (gamma) { /* the fused RMSNorm: the default kernels only (no experiments but ZC3 / ZC4) */
        if constexpr (T <= 2) {
            if (mt == 2)
                sk_w4_tc_launch_n<T, 2, 2, 2, MODE, 1, 1>(ks, x, q4, q4s, G, bias, N_out, K, out,
                                                          gamma, eps, s);
            else
                sk_w4_tc_launch_n<T, 1, 2, 2, MODE, 1, 1>(ks, x, q4, q4s, G, bias, N_out, K, out,
                                                          gamma, eps, s);
        } else {
            if (mt == 2)
                sk_w4_tc_launch_n<T, 2, 2, 0, MODE, 1, 1>(ks, x, q4, q4s, G, bias, N_out, K, out,
                                                          gamma, eps, s);
            else
                sk_w4_tc_launch_n<T, 1, 2, 0, MODE, 1, 1>(ks, x, q4, q4s, G, bias, N_out, K, out,
                                                          gamma, eps, s);
        }
        return;
    }
    }
    if constexpr (T <= 2) {
        if (zc == 2 || zc < 0) {
            if (mt == 2)
                sk_w4_tc_launch<T, 2, 2, 2, MODE>(ks, x, q4, q4s, G, bias, N_out, K, out, s);
            else
                sk_w4_tc_launch<T, 1, 2, 2, MODE>(ks, x, q4, q4s, G, bias, N_out, K, out, s);
            return;
        }
    }
    /* Experiments at T = 1, off by default (measured slower in session 5):
     * SAKER_W4_ZC=1 takes ZC1 (zero points after the MMAs: 11% fewer instructions a step, at 74
     * registers uncapped) capped at 64 registers (80 for SwiGLU); SAKER_W4_LB=1 caps SwiGLU's ZC0
     * kernel at 80 registers (3 blocks of 8 warps an SM instead of 2 at 98). */
    if constexpr (T == 1) {
        if (mt == 1 && zc == 1) {
            sk_w4_tc_launch<T, 1, 2, 1, MODE, MODE == SK_GEMV_SWIGLU ? 3 : 4>(ks, x, q4, q4s, G, bias,
                                                                             N_out, K, out, s);
            return;
        }
        if (mt == 1 && lb && MODE == SK_GEMV_SWIGLU) {
            sk_w4_tc_launch<T, 1, 2, 0, MODE, 3>(ks, x, q4, q4s, G, bias, N_out, K, out, s);
            return;
        }
    }
    if (mt == 2)
        sk_w4_tc_launch<T, 2, 2, 0, MODE>(ks, x, q4, q4s, G, bias, N_out, K, out, s);
    else
        sk_w4_tc_launch<T, 1, 2, 0, MODE>(ks, x, q4, q4s, G, bias, N_out, K, out, s);
}

/* gamma (fp32 [K], 16-byte aligned) != NULL: x is RMS-normalised with weight gamma and eps first,
 * inside the kernel (only where sk_w4_gemv_norm_ok). */
template <int MODE>
static void sk_w4_gemv_launch(const float *x, int T, const uint32_t *q4, const __half2 *q4s, int G,
                              const float *bias, int N_out, int K, float *out, cudaStream_t s,
                              const float *gamma = nullptr, float eps = 0.0f) {
    switch (T) {
    case 1: sk_w4_gemv_launch_t<1, MODE>(x, q4, q4s, G, bias, N_out, K, out, s, gamma, eps); break;
    case 2: sk_w4_gemv_launch_t<2, MODE>(x, q4, q4s, G, bias, N_out, K, out, s, gamma, eps); break;
    case 3: sk_w4_gemv_launch_t<3, MODE>(x, q4, q4s, G, bias, N_out, K, out, s, gamma, eps); break;
    default: sk_w4_gemv_launch_t<4, MODE>(x, q4, q4s, G, bias, N_out, K, out, s, gamma, eps); break;
    }
}

/* Whether the W4 GEMV can fuse the RMSNorm before the product (the tensor-core kernel takes it:
 * rows = weight rows, both halves for SwiGLU). */
static inline bool sk_w4_gemv_norm_ok(int T, long rows, int K, const void *x, const void *gamma) {
    return sk_w4_gemv_ok(T, K, x) && sk_w4_gemv_version() == 2 && rows * (K >> 5) <= INT32_MAX &&
           ((uintptr_t)gamma & 15) == 0;
}

/* Element k of row n, dequantized (the reference every W4 kernel is checked against on the
 * device side too). */
static __device__ __forceinline__ float sk_w4_at(const uint32_t *q4, const __half2 *q4s, int G,
                                                 int K, int64_t n, int k) {
    const uint32_t w = q4[sk_w4_widx(n, k >> 3, K)];
    const int e = k & 7, sh = (e & 1) ? 16 + 4 * (e >> 1) : 4 * (e >> 1);
    const int q = (int)((w >> sh) & 0xf);
    const __half2 s = q4s[n * (K / G) + k / G];
    return (float)(q + 1024 - (int)__high2float(s)) * __low2float(s);
}

/* out [N][K] half (H = __nv_bfloat16 or __half) = dequantized rows; grid-stride over the
 * tile-major words (coalesced reads; a row's 16 words of a step, 256 bytes, per store run). */
template <typename H>
__global__ void sk_w4_dequant_kernel(const uint32_t *__restrict__ q4, const __half2 *__restrict__ q4s,
                                     int G, int64_t N, int K, H *__restrict__ out) {
    const int K8 = K >> 3, S = sk_w4_steps(K);
    const int64_t nw = (int64_t)sk_w4_words(N, K);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nw;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t tile_step = i >> 8;
        const int64_t n = (tile_step / S) * 16 + ((i >> 4) & 15);
        const int j = (int)(tile_step % S) * 16 + (int)(i & 15);
        if (n >= N || j >= K8) continue; /* padding */
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
    const int64_t nw = (int64_t)sk_w4_words(N, K), ng = N * (K / G); /* padding too: any value */
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nw;
         i += (int64_t)gridDim.x * blockDim.x)
        q4[i] = sk_w4_hash(seed, (uint64_t)i);
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < ng;
         i += (int64_t)gridDim.x * blockDim.x)
        q4s[i] = __floats2half2_rn(d, 1024.0f + (float)(7 + (i & 1)));
}

/* dst's rows [r0, r0 + m) = src's rows [0, m) (both tile-major, K columns): weight_concat's
 * copy, for parts that need not start a tile. Grid-stride over src's words. */
static __global__ void sk_w4_rows_copy_kernel(uint32_t *__restrict__ dst, int64_t r0,
                                              const uint32_t *__restrict__ src, int64_t m, int64_t K) {
    const int64_t K8 = K >> 3, nw = m * K8;
    for (int64_t i = blockIdx.x * (int64_t)blockDim.x + threadIdx.x; i < nw;
         i += (int64_t)gridDim.x * blockDim.x) {
        const int64_t n = i / K8, j = i % K8;
        dst[sk_w4_widx(r0 + n, j, K)] = src[sk_w4_widx(n, j, K)];
    }
}

/* Host: one Q4G block row (dtype.h: f16 d, u8 z, u8 pad, u8 q[G/2], element 2j low nibble of
 * byte j) of K elements to the device's words [K/8] (a row-major row: sk_w4_tile_host then
 * tiles the rows) and scales [K/G]. */
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
