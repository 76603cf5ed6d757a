/* W4A16 GEMM on tensor cores for T >= 5 rows of x (prefill and batched decode): out[T, N_out]
 * (fp32) = x[T, K] (half: bf16 or fp16, cast once per call) @ dequant(W)[N, K]^T, with the
 * epilogues of gemv.cuh (SK_GEMV_STORE + bias, SK_GEMV_ADD + bias, SK_GEMV_SWIGLU over
 * W = [Wg; Wu]). Included by matmul.cu (the backend) and dev/cuda/gemm_w4.cu (the workbench).
 * The INT4 layout is w4.cuh's (q4 uint32 tile-major since session 30, w4_layout.h: a 16-byte
 * chunk of a row at sk_w4_widx; nibbles e0 e2 e4 e6 | e1 e3 e5 e7; q4s half2 (d, 1024 + z) per
 * group of G = 32, 64 or 128), unchanged.
 *
 * sk_w4m_kernel: mma.sync m16n8k16 (fp32 accumulation) with the weights as the M operand ("swap
 * AB": 16 weight rows x 8 tokens per MMA, so few tokens waste little). A block owns BM weight
 * rows x BN tokens and walks K in blocks of 128 through a STAGES-deep cp.async pipeline: per
 * stage the raw INT4 words (BM x 64 bytes), their scales and the x tile (BN x 256 bytes) go to
 * shared memory; the weights are dequantized in registers right before the MMAs.
 *   Fragments without ldmatrix: the dot product may take K in any order as long as both
 *   operands use the same one. Lane (g = lane / 4, q = lane % 4) loads one 16-byte chunk of rows
 *   g and g + 8 of its 16-row tile: elements 32q .. 32q + 31 of the K block (4 words, all in one
 *   group since G >= 32). Word i gives the pairs (e0,e1) (e2,e3) (e4,e5) (e6,e7); MMA step
 *   2i + s takes (e4s, e4s+1) as the A columns 2q, 2q+1 and (e4s+2, e4s+3) as the columns 2q + 8,
 *   2q + 9. The B fragment must hold x at the same K positions: x[t][32q + 8i .. 8i + 7], one
 *   16-byte load (b0, b1 of step 0 and of step 1). x's rows are XOR-swizzled by 16-byte unit in
 *   shared memory so that those loads are free of bank conflicts.
 *   Dequantization (exact integers, then one rounding): fp16: the 0x6400 exponent trick on
 *   nibbles in place ((w & 0x000f000f) and (w & 0x00f000f0), the latter scaled back by 1/16 in an
 *   HFMA2 with -(64 + z)), one HSUB2/HFMA2 for q - z, one HMUL2 by d. bf16: the 0x4300 trick
 *   (128 + q), HSUB2 (128 + z), HMUL2 by d rounded to bf16.
 *   Split-K (grid.z = splits, when the tiles alone leave SMs idle): each split writes its fp32
 *   partial tile to a workspace, the last block of a tile to arrive (atomic counter, reset by
 *   it) sums the partials in split order (deterministic) and runs the epilogue.
 *   SWIGLU: a block's BM rows are BM/2 gate rows and the matching up rows; each warp's m-tiles
 *   come in pairs (gate, up) so the lane holding silu(g) also holds u.
 * Measured (bench/results/awq-speed.md): 1.3-1.7x cuBLAS bf16 at 8-16 rows, ~1x at 32, below it
 * from 64 rows on; the backend uses it for 5 <= T <= 32 (and up to 128 where K % 128 != 0), the
 * wgmma kernel below (sk_w4g_kernel) from 33 to 64 rows, the warp-specialized wgmma kernel with a
 * TMA producer (sk_w4ws_kernel) from 65 to SK_W4M_WT_MAX_T rows (session 8; SAKER_W4_TMA=0: the
 * sk_w4g_kernel tiles to SK_W4M_MAX_T rows, as before), and the dequantize + cuBLASLt path above. Where the time goes (ncu):
 * at 16 rows DRAM at 40% and L2 at 66% of peak with half the issue slots busy and 3 warps per
 * scheduler (shared memory limits the blocks per SM); at 1024 rows the tensor pipe at 40% with 2
 * warps per scheduler, 65% of cycles with no eligible warp: latency-bound (not yet broken down
 * by stall reason; the per-stage barrier keeps a block's warps in step, so a scheduler's two warps
 * tend to wait on the same things at once). */
#ifndef SK_CUDA_W4_MMA_CUH
#define SK_CUDA_W4_MMA_CUH

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stdint.h>
#include <string.h>

#include "backend/cuda/act.cuh"
#include "backend/cuda/mbar.cuh"
#include "backend/cuda/pdl.cuh"
#include "backend/cuda/w4_sk.h"
#include "backend/cuda/wgmma.cuh"

#define SK_W4M_BK 128 /* K per pipeline stage */

/* One launch. x: [T][K] half (the kernel's H); out: [T][N_out] fp32; N_out = rows of W (STORE,
 * ADD) or half of them (SWIGLU). ws/cnt: split-K partials and per-tile counters (zeroed once;
 * each launch leaves them zero). */
typedef struct sk_w4m_params {
    const void *x;
    const uint32_t *q4;
    const __half2 *q4s;
    const float *bias; /* [N_out] or NULL (STORE, ADD) */
    float *out;
    float *ws;
    int *cnt;
    int G, T, N_out, K, splits;
} sk_w4m_params;

static __device__ __forceinline__ uint32_t sk_w4m_smem(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}
/* 16 / 4 bytes global -> shared; ok false: zero-fill (src is then only a valid address). */
static __device__ __forceinline__ void sk_w4m_cp16(uint32_t dst, const void *src, bool ok) {
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(ok ? 16 : 0));
}
/* The same, asking L2 to fetch the whole 256-byte block around src from DRAM: a stage reads
 * only 64 bytes of each weight row, so the next three stages of the row then hit L2 (70% L2 hit
 * rate at 16 rows). Measured against plain 16-byte copies (128x16np in the workbench): 3-5%
 * faster on the gate/up and down shapes, 0-3% slower on o and qkv at T <= 16. */
static __device__ __forceinline__ void sk_w4m_cp16_pf(uint32_t dst, const void *src, bool ok) {
    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                 "r"(ok ? 16 : 0));
}
static __device__ __forceinline__ void sk_w4m_cp4(uint32_t dst, const void *src, bool ok) {
    asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src),
                 "r"(ok ? 4 : 0));
}
static __device__ __forceinline__ void sk_w4m_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::);
}
template <int N>
static __device__ __forceinline__ void sk_w4m_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

static __device__ __forceinline__ uint32_t sk_w4m_u32(__half2 h) {
    return *reinterpret_cast<uint32_t *>(&h);
}
static __device__ __forceinline__ uint32_t sk_w4m_u32(__nv_bfloat162 h) {
    return *reinterpret_cast<uint32_t *>(&h);
}
static __device__ __forceinline__ __half2 sk_w4m_h2(uint32_t u) {
    return *reinterpret_cast<__half2 *>(&u);
}
static __device__ __forceinline__ __nv_bfloat162 sk_w4m_b2(uint32_t u) {
    return *reinterpret_cast<__nv_bfloat162 *>(&u);
}

/* Per (row, group) constants from the scale (d, 1024 + z): fp16 {d, 1024 + z, -(64 + z)}, bf16
 * {d, 128 + z} (half2 / bf16x2 bit patterns, both lanes equal). */
static __device__ __forceinline__ void sk_w4m_prep(uint32_t sbits, uint32_t (&c)[3],
                                                   const __half *) {
    const __half2 s = sk_w4m_h2(sbits);
    const __half2 zb = __high2half2(s);
    c[0] = sk_w4m_u32(__low2half2(s));
    c[1] = sk_w4m_u32(zb);
    c[2] = sk_w4m_u32(__hsub2(__float2half2_rn(960.0f), zb));
}
static __device__ __forceinline__ void sk_w4m_prep(uint32_t sbits, uint32_t (&c)[3],
                                                   const __nv_bfloat16 *) {
    const __half2 s = sk_w4m_h2(sbits);
    const float d = __low2float(s), zb = __high2float(s) - 896.0f; /* 128 + z, exact */
    c[0] = sk_w4m_u32(__floats2bfloat162_rn(d, d));
    c[1] = sk_w4m_u32(__floats2bfloat162_rn(zb, zb));
    c[2] = 0;
}

/* (w & M) | C in one LOP3 (the compiler otherwise emits an AND and an OR). */
template <uint32_t M, uint32_t C>
static __device__ __forceinline__ uint32_t sk_w4m_lop(uint32_t w) {
    uint32_t r;
    asm("lop3.b32 %0, %1, %2, %3, 0xea;\n" : "=r"(r) : "r"(w), "n"(M), "n"(C));
    return r;
}

/* Word w (8 elements, w4.cuh's nibble order) -> a[p] = ((e_2p, e_2p+1) - z) * d, p = 0..3. */
static __device__ __forceinline__ void sk_w4m_deq(uint32_t w, const uint32_t (&c)[3],
                                                  uint32_t (&a)[4], const __half *) {
    const uint32_t w8 = w >> 8;
    const __half2 d = sk_w4m_h2(c[0]), zb = sk_w4m_h2(c[1]), z64 = sk_w4m_h2(c[2]);
    const __half2 r16 = __float2half2_rn(0.0625f);
    const __half2 v0 = __hsub2(sk_w4m_h2(sk_w4m_lop<0x000f000fu, 0x64006400u>(w)), zb);
    const __half2 v1 = __hfma2(sk_w4m_h2(sk_w4m_lop<0x00f000f0u, 0x64006400u>(w)), r16, z64);
    const __half2 v2 = __hsub2(sk_w4m_h2(sk_w4m_lop<0x000f000fu, 0x64006400u>(w8)), zb);
    const __half2 v3 = __hfma2(sk_w4m_h2(sk_w4m_lop<0x00f000f0u, 0x64006400u>(w8)), r16, z64);
    a[0] = sk_w4m_u32(__hmul2(v0, d));
    a[1] = sk_w4m_u32(__hmul2(v1, d));
    a[2] = sk_w4m_u32(__hmul2(v2, d));
    a[3] = sk_w4m_u32(__hmul2(v3, d));
}
static __device__ __forceinline__ void sk_w4m_deq(uint32_t w, const uint32_t (&c)[3],
                                                  uint32_t (&a)[4], const __nv_bfloat16 *) {
    const __nv_bfloat162 d = sk_w4m_b2(c[0]), zb = sk_w4m_b2(c[1]);
#pragma unroll
    for (int p = 0; p < 4; p++) {
        const uint32_t h = sk_w4m_lop<0x000f000fu, 0x43004300u>(w >> (4 * p));
        const __nv_bfloat162 v = __hsub2(sk_w4m_b2(h), zb);
        a[p] = sk_w4m_u32(__hmul2(v, d));
    }
}

static __device__ __forceinline__ void sk_w4m_mma(float (&d)[4], uint32_t a0, uint32_t a1,
                                                  uint32_t a2, uint32_t a3, uint32_t b0,
                                                  uint32_t b1, const __half *) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}
static __device__ __forceinline__ void sk_w4m_mma(float (&d)[4], uint32_t a0, uint32_t a1,
                                                  uint32_t a2, uint32_t a3, uint32_t b0,
                                                  uint32_t b1, const __nv_bfloat16 *) {
    asm("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* 16-byte unit u (0..15) of x row r of a stage is stored at unit sk_w4m_swz(u, r): the lanes
 * (g, q) of a quarter warp read units 4q + i of rows g = 0, 1, which would share banks
 * (q = 0 and 2, q = 1 and 3; rows 256 bytes apart) without it. */
static __device__ __forceinline__ int sk_w4m_swz(int u, int r) {
    return u ^ (((u >> 3) & 1) << 1) ^ (r & 1);
}

/* Shared memory per stage, in 16-byte units: weights BM x 4, x BN x 16, scales BM x 1 (up to
 * four half2 per row: 128 / G groups). */
#define SK_W4M_STAGE_UNITS(BM, BN) (5 * (BM) + 16 * (BN))

/* Issues the cp.async copies of K block kb into stage slot `slot` of sk_w4m_kernel (its
 * per-thread copy plan, fixed for the kernel's life: weight units tid + j NTH of rows wn_[j],
 * valid when wok[j], scale slot wu; x units of rows xr0 + j NTH / 16 from xsrc to the swizzled
 * xdst; only the K offset moves from stage to stage). */
template <typename H, int BM, int BN, int NTH, int NWU, int NXU, int PF>
static __device__ __forceinline__ void sk_w4m_load(int slot, int kb, int tid, int K, int KG,
                                                   int spb, int T, int t0, int wu, int xu, int xr0,
                                                   int xdst, const int (&wn_)[NWU],
                                                   const bool (&wok)[NWU], const uint32_t *q4,
                                                   const uint32_t *q4s, const H *x,
                                                   const H *xsrc) {
    constexpr int SU = SK_W4M_STAGE_UNITS(BM, BN);
    extern __shared__ __align__(128) uint4 sk_w4m_sm[]; /* 128: see sk_w4_tq_kernel (w4.cuh) */
    uint4 *sw = sk_w4m_sm + slot * SU, *sx = sw + 4 * BM;
    uint32_t *ss = reinterpret_cast<uint32_t *>(sx + 16 * BN);
    const int k0 = kb * SK_W4M_BK;
    const bool wk = k0 + 32 * wu < K, sk = wu < spb && kb * spb + wu < KG;
#pragma unroll
    for (int j = 0; j < NWU; j++)
        if ((4 * BM) % NTH == 0 || tid + j * NTH < 4 * BM) {
            const int i = tid + j * NTH;
            const bool ok = wok[j] && wk, oks = wok[j] && sk;
            const uint32_t *src = ok ? q4 + sk_w4_widx(wn_[j], (k0 >> 3) + 4 * wu, K) : q4;
            if (PF)
                sk_w4m_cp16_pf(sk_w4m_smem(sw + i), src, ok);
            else
                sk_w4m_cp16(sk_w4m_smem(sw + i), src, ok);
            if (wu < spb)
                sk_w4m_cp4(sk_w4m_smem(ss + i),
                           oks ? q4s + (size_t)wn_[j] * KG + kb * spb + wu : q4s, oks);
        }
    const bool xk = k0 + 8 * xu < K;
#pragma unroll
    for (int j = 0; j < NXU; j++) {
        const int r = xr0 + j * (NTH / 16);
        if ((16 * BN) % NTH == 0 || r < BN) {
            const bool ok = xk && t0 + r < T;
            sk_w4m_cp16(sk_w4m_smem(sx + xdst + 16 * j * (NTH / 16)),
                        ok ? xsrc + (size_t)j * (NTH / 16) * K + k0 : x, ok);
        }
    }
}

/* First shared row of m-tile mi of warp row wm (SWIGLU: the gate tiles, then the up tiles). */
template <int BM, int WM, int MT, bool SW>
static __device__ __forceinline__ int sk_w4m_rowbase(int wm, int mi) {
    constexpr int WTM = BM / WM;
    if (SW) return (mi < MT / 2 ? 0 : BM / 2) + wm * (WTM / 2) + 16 * (mi % (SW ? MT / 2 : 1));
    return wm * WTM + 16 * mi;
}

/* grid (ceil(T / BN), ceil(N_out / RT), splits), RT = BM (STORE, ADD) or BM / 2 (SWIGLU);
 * 32 * WM * WN threads; dynamic shared memory STAGES * SK_W4M_STAGE_UNITS * 16 bytes. Warp
 * (wm, wn) owns a (BM / WM) x (BN / WN) tile: MT m16 tiles x NT n8 tiles. */
template <typename H, int BM, int BN, int WM, int WN, int STAGES, int PF, int MODE>
__global__ void __launch_bounds__(32 * WM * WN) sk_w4m_kernel(const sk_w4m_params p) {
    constexpr int NTH = 32 * WM * WN, WTM = BM / WM, WTN = BN / WN;
    constexpr int MT = WTM / 16, NT = WTN / 8, SU = SK_W4M_STAGE_UNITS(BM, BN);
    constexpr bool SW = MODE == SK_GEMV_SWIGLU;
    static_assert(WTM % 16 == 0 && WTN % 8 == 0 && STAGES >= 2, "tile shape");
    static_assert(!SW || MT % 2 == 0, "SWIGLU pairs gate and up m-tiles in each warp");
    /* 128-byte base (session 21): s_last put the base at 16 bytes, so that every cp.async
     * destination sat 16 bytes off its source's 32-byte sectors (see sk_w4_tq_kernel, w4.cuh) */
    extern __shared__ __align__(128) uint4 sk_w4m_sm[];
    __shared__ int s_last;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int wm = warp % WM, wn = warp / WM, g = lane >> 2, q = lane & 3;
    const int K = p.K, G = p.G, T = p.T, N_out = p.N_out;
    const int KG = K / G, spb = SK_W4M_BK / G; /* scales per row and stage */
    const int sshift = G == 32 ? 0 : (G == 64 ? 1 : 2);     /* lane q's scale: q >> sshift */
    const int RT = SW ? BM / 2 : BM;
    const int t0 = blockIdx.x * BN, n0 = blockIdx.y * RT;
    const int nkb = (K + SK_W4M_BK - 1) / SK_W4M_BK;
    const int kb0 = (int)((long long)blockIdx.z * nkb / p.splits);
    const int kb1 = (int)((long long)(blockIdx.z + 1) * nkb / p.splits);
    const H *x = static_cast<const H *>(p.x);
    const uint32_t *q4 = p.q4;
    const uint32_t *q4s = reinterpret_cast<const uint32_t *>(p.q4s);

    /* The units a thread copies per stage are the same every stage: weight units tid + j NTH
     * (row r = tid / 4 + j NTH / 4, 16-byte unit tid % 4), x units tid + j NTH (row tid / 16 +
     * j NTH / 16, unit tid % 16; NTH / 16 is even, so the swizzle is fixed too). Row pointers and
     * validity once, here; per stage only the K offset moves. */
    constexpr int NWU = (4 * BM + NTH - 1) / NTH, NXU = (16 * BN + NTH - 1) / NTH;
    const int wu = tid & 3; /* also the scale slot this thread copies (when wu < 128 / G) */
    int wn_[NWU];
    bool wok[NWU];
#pragma unroll
    for (int j = 0; j < NWU; j++) {
        const int r = (tid >> 2) + j * (NTH / 4);
        int n = n0 + r, lim = n;
        if (SW) lim = n0 + (r < BM / 2 ? r : r - BM / 2), n = lim + (r < BM / 2 ? 0 : N_out);
        wok[j] = r < BM && lim < N_out;
        wn_[j] = wok[j] ? n : 0;
    }
    const int xu = tid & 15, xr0 = tid >> 4;
    const H *xsrc = x + (size_t)(t0 + xr0) * K + 8 * xu;
    const int xdst = 16 * xr0 + sk_w4m_swz(xu, xr0);
    float acc[MT][NT][4];
#pragma unroll
    for (int mi = 0; mi < MT; mi++)
#pragma unroll
        for (int nj = 0; nj < NT; nj++)
#pragma unroll
            for (int e = 0; e < 4; e++) acc[mi][nj][e] = 0.0f;

#pragma unroll
    for (int s = 0; s < STAGES - 1; s++) {
        if (kb0 + s < kb1)
            sk_w4m_load<H, BM, BN, NTH, NWU, NXU, PF>(s, kb0 + s, tid, K, KG, spb, T, t0, wu,
                                                      xu, xr0, xdst, wn_, wok, q4, q4s, x, xsrc);
        sk_w4m_commit();
    }
    int slot = 0, lslot = STAGES - 1;
    for (int kb = kb0; kb < kb1; kb++) {
        sk_w4m_wait<STAGES - 2>();
        __syncthreads();
        if (kb + STAGES - 1 < kb1)
            sk_w4m_load<H, BM, BN, NTH, NWU, NXU, PF>(lslot, kb + STAGES - 1, tid, K, KG, spb,
                                                      T, t0, wu, xu, xr0, xdst, wn_, wok, q4, q4s,
                                                      x, xsrc);
        sk_w4m_commit();
        lslot = lslot == STAGES - 1 ? 0 : lslot + 1;

        const uint4 *sw = sk_w4m_sm + slot * SU, *sx = sw + 4 * BM;
        const uint32_t *ss = reinterpret_cast<const uint32_t *>(sx + 16 * BN);
        slot = slot == STAGES - 1 ? 0 : slot + 1;
        uint4 wv[MT][2];
        uint32_t sc[MT][2][3];
#pragma unroll
        for (int mi = 0; mi < MT; mi++) {
            const int r = sk_w4m_rowbase<BM, WM, MT, SW>(wm, mi) + g;
            wv[mi][0] = sw[4 * r + q];
            wv[mi][1] = sw[4 * (r + 8) + q];
            sk_w4m_prep(ss[4 * r + (q >> sshift)], sc[mi][0], (const H *)nullptr);
            sk_w4m_prep(ss[4 * (r + 8) + (q >> sshift)], sc[mi][1], (const H *)nullptr);
        }
#pragma unroll
        for (int i = 0; i < 4; i++) {
            uint4 xf[NT];
#pragma unroll
            for (int nj = 0; nj < NT; nj++) {
                const int r = wn * WTN + 8 * nj + g;
                xf[nj] = sx[16 * r + sk_w4m_swz(4 * q + i, r)];
            }
            /* a[mi][0]: row g's pairs, a[mi][1]: row g + 8's; step s takes pairs 2s, 2s + 1.
             * The MMAs go s, mi, nj so that consecutive ones feed different accumulators. */
            uint32_t a[MT][2][4];
#pragma unroll
            for (int mi = 0; mi < MT; mi++)
#pragma unroll
                for (int h = 0; h < 2; h++) {
                    const uint4 &v = wv[mi][h];
                    const uint32_t w = i == 0 ? v.x : i == 1 ? v.y : i == 2 ? v.z : v.w;
                    sk_w4m_deq(w, sc[mi][h], a[mi][h], (const H *)nullptr);
                }
#pragma unroll
            for (int s = 0; s < 2; s++)
#pragma unroll
                for (int mi = 0; mi < MT; mi++)
#pragma unroll
                    for (int nj = 0; nj < NT; nj++)
                        sk_w4m_mma(acc[mi][nj], a[mi][0][2 * s], a[mi][1][2 * s], a[mi][0][2 * s + 1],
                                   a[mi][1][2 * s + 1], s ? xf[nj].z : xf[nj].x,
                                   s ? xf[nj].w : xf[nj].y, (const H *)nullptr);
        }
    }
    sk_w4m_wait<0>();

    if (p.splits > 1) {
        /* Partial tile to the workspace ([tile][split][element][thread], coalesced), then the
         * last block of the tile to arrive sums all partials in split order. */
        const int tile = blockIdx.y * gridDim.x + blockIdx.x;
        constexpr int NE = MT * NT * 4;
        float *wp = p.ws + ((size_t)tile * p.splits + blockIdx.z) * NE * NTH + tid;
#pragma unroll
        for (int mi = 0; mi < MT; mi++)
#pragma unroll
            for (int nj = 0; nj < NT; nj++)
#pragma unroll
                for (int e = 0; e < 4; e++)
                    __stcg(wp + ((mi * NT + nj) * 4 + e) * NTH, acc[mi][nj][e]);
        __threadfence();
        __syncthreads();
        if (tid == 0) s_last = atomicAdd(p.cnt + tile, 1) == p.splits - 1;
        __syncthreads();
        if (!s_last) return;
        __threadfence();
#pragma unroll
        for (int mi = 0; mi < MT; mi++)
#pragma unroll
            for (int nj = 0; nj < NT; nj++)
#pragma unroll
                for (int e = 0; e < 4; e++) acc[mi][nj][e] = 0.0f;
        for (int z = 0; z < p.splits; z++) {
            const float *rp = p.ws + ((size_t)tile * p.splits + z) * NE * NTH + tid;
#pragma unroll
            for (int mi = 0; mi < MT; mi++)
#pragma unroll
                for (int nj = 0; nj < NT; nj++)
#pragma unroll
                    for (int e = 0; e < 4; e++)
                        acc[mi][nj][e] += __ldcg(rp + ((mi * NT + nj) * 4 + e) * NTH);
        }
        if (tid == 0) p.cnt[tile] = 0;
    }

    /* Epilogue: acc[mi][nj] = D rows (g, g + 8) x tokens (2q, 2q + 1) of the m16n8 tile. STORE
     * and ADD: the bias and every old output are loaded (into acc) before any output is stored,
     * so the loads overlap instead of waiting a memory latency each behind the previous store
     * (the compiler cannot move a load above a store that may alias it). */
    /* output row n and token t of accumulator (mi, nj, e); outside the product: skip it */
#define SK_W4M_EPI_POS(mi_, nj_, e_)                                                               \
    const int n = n0 + sk_w4m_rowbase<BM, WM, MT, SW>(wm, mi_) + g + 8 * ((e_) >> 1);             \
    const int t = t0 + wn * WTN + 8 * (nj_) + 2 * q + ((e_) & 1);                                  \
    if (n >= N_out || t >= T) continue
    if (!SW) { /* bias, then (ADD) the old output: (acc + bias) + old, as before */
#pragma unroll
        for (int mi = 0; mi < MT; mi++)
#pragma unroll
            for (int nj = 0; nj < NT; nj++)
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    SK_W4M_EPI_POS(mi, nj, e);
                    if (p.bias) acc[mi][nj][e] += p.bias[n];
                    if (MODE == SK_GEMV_ADD) acc[mi][nj][e] += p.out[(size_t)t * N_out + n];
                }
    }
#pragma unroll
    for (int mi = 0; mi < (SW ? MT / 2 : MT); mi++)
#pragma unroll
        for (int nj = 0; nj < NT; nj++)
#pragma unroll
            for (int e = 0; e < 4; e++) {
                SK_W4M_EPI_POS(mi, nj, e);
                float v = acc[mi][nj][e];
                float *o = p.out + (size_t)t * N_out + n;
                if (SW) {
                    const float u = acc[mi + MT / 2][nj][e];
                    *o = v / (1.0f + __expf(-v)) * u;
                } else {
                    *o = v; /* bias and (ADD) the old value are already in v */
                }
            }
#undef SK_W4M_EPI_POS
}

/* ---- sk_w4g_kernel: the same product on wgmma (sm_90a), for 64..256 rows of x -----------------
 *
 * Why: at 64-128 rows sk_w4m_kernel is latency-bound on mma.sync (200-260 TFLOP/s against
 * cuBLAS's 380-470 on the bf16 weight). Here a warpgroup issues wgmma.mma_async m64nBNk16 with
 * the dequantized weights as the register A operand (each warp's 16 rows: the m16n8k16 A
 * fragment, built exactly as above) and x as the B operand, read by the tensor cores from a
 * 128-byte-swizzled shared tile through a descriptor: no B fragments in registers, no ldmatrix,
 * one instruction per 64 x BN x 16 product.
 *   K order: a lane's A columns (2q, 2q + 1, 2q + 8, 2q + 9) of k16 slice j = 2i + s of a
 *   128-wide K block hold elements 32q + 8i + 4s + (0, 1, 2, 3) (the nibble order above), while
 *   wgmma reads B's columns in order. So x goes in permuted: sk_w4g_cast_kernel writes
 *   xp[t][128b + 16j + c] = x[t][128b + e(j, c)] (cast to half on the way, one pass, instead of
 *   the plain cast); needs K % 128 == 0.
 *   Block: BM = 128 weight rows (two warpgroups of 64; SWIGLU: 64 gate rows, then the 64 up
 *   rows of the same outputs) x BN tokens; K in blocks of 128 through a STAGES-slot cp.async
 *   ring (x tile, raw INT4 words, scales), loads STAGES - 2 blocks ahead so that the slot being
 *   refilled was last read by wgmmas already waited for. Per block, each warpgroup dequantizes
 *   words 0-1 into one register set, fences, issues 4 wgmmas and commits; then words 2-3 into a
 *   second set while the first 4 run (wgmma.wait_group 1 before a set is overwritten).
 *   Epilogue through shared memory ([BN][BM + 4] fp32, coalesced stores along N_out), split-K as
 *   sk_w4m_kernel (workspace partials, the last block of a tile sums them in split order).
 * Measured (session 5, H200, Llama-2-70B shapes, bench/results/awq-speed.md): at 64 rows 48.7-237
 * us (sk_w4m_kernel 50.4-279, cuBLAS bf16 43-242), at 128 rows 72.6-421 (81-485; cuBLAS 45-266),
 * i.e. 180-290 TFLOP/s: faster than mma.sync, still slower than cuBLAS from 64 rows on. Not L2-
 * bound on the re-read x tiles: 4 warpgroups (256 rows a block, half the x traffic per FLOP) are
 * no faster. Next: deeper overlap (a producer warp filling the ring with TMA and mbarriers, so no
 * block barrier per 128-wide K block; more than one dequantized block in flight per warpgroup). */

template <typename H> static __device__ __forceinline__ H sk_w4g_from_float(float f);
template <> __device__ __forceinline__ __half sk_w4g_from_float<__half>(float f) {
    return __float2half_rn(f);
}
template <> __device__ __forceinline__ __nv_bfloat16 sk_w4g_from_float<__nv_bfloat16>(float f) {
    return __float2bfloat16_rn(f);
}

/* x [T][K] fp32 -> xp [T][K] half, each 128-wide block of K permuted as above (GELU: of
 * gelu(x), the activation of gelu_matmul_add's input applied on the way). One thread per 8
 * outputs (a 16-byte store). */
template <typename H, bool GELU>
__global__ void sk_w4g_cast_kernel(const float *__restrict__ x, H *__restrict__ xp, int T, int K) {
    sk_pdl_trigger(); /* the W4 kernel that reads xp may launch (it waits for this grid) */
    sk_pdl_wait();
    const size_t n8 = (size_t)T * K / 8;
    for (size_t u = blockIdx.x * (size_t)blockDim.x + threadIdx.x; u < n8;
         u += (size_t)gridDim.x * blockDim.x) {
        const size_t o = 8 * u;             /* first output element */
        const size_t b = o & ~(size_t)127;  /* its 128-block (rows of x are K long, K % 128 == 0) */
        const int p = (int)(o & 127), j = p >> 4, hi = (p >> 3) & 1;
        const int base = 8 * (j >> 1) + 4 * (j & 1) + 2 * hi; /* + 32 q + r for c = 8 hi + 2 q + r */
        H v[8];
#pragma unroll
        for (int qq = 0; qq < 4; qq++) {
            const float2 f = *reinterpret_cast<const float2 *>(x + b + 32 * qq + base);
            v[2 * qq] = sk_w4g_from_float<H>(GELU ? sk_gelu_erf(f.x) : f.x);
            v[2 * qq + 1] = sk_w4g_from_float<H>(GELU ? sk_gelu_erf(f.y) : f.y);
        }
        *reinterpret_cast<uint4 *>(xp + o) = *reinterpret_cast<const uint4 *>(v);
    }
}

/* d += A (registers: the warp's m16n8k16 A fragment) . B (descriptor, K-major), m64nNk16, fp32
 * accumulate, scale-d 1 (the accumulators start at zero); N = 16, 32, 64, 128, 256, bf16 or fp16
 * (the last argument only picks the type). Operands: the N/2 accumulators, then a[0..3], the
 * descriptor and the scale-d predicate's source. */
#define SK_W4G_MMA_DEF(N, TY, HT, ACC, REGS, AOPS, PRED)                                           \
    static __device__ __forceinline__ void sk_w4g_mma##N(float(&d)[N / 2], const uint32_t(&a)[4], \
                                                         uint64_t db, const HT *) {               \
        asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, " PRED ", 0;\n"                             \
                     "wgmma.mma_async.sync.aligned.m64n" #N "k16.f32." TY "." TY " {" REGS "}, "   \
                     AOPS ", p, 1, 1, 0;\n}\n"                                                     \
                     : ACC(d)                                                                      \
                     : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(1));               \
    }
#define SK_W4G_ACC8(d) SK_WG_ACC8(d, 0)
SK_W4G_MMA_DEF(16, "bf16", __nv_bfloat16, SK_W4G_ACC8, SK_WG_REGS8, "{%8,%9,%10,%11}, %12", "%13")
SK_W4G_MMA_DEF(16, "f16", __half, SK_W4G_ACC8, SK_WG_REGS8, "{%8,%9,%10,%11}, %12", "%13")
SK_W4G_MMA_DEF(32, "bf16", __nv_bfloat16, SK_WG_ACC16, SK_WG_REGS16, "{%16,%17,%18,%19}, %20",
               "%21")
SK_W4G_MMA_DEF(32, "f16", __half, SK_WG_ACC16, SK_WG_REGS16, "{%16,%17,%18,%19}, %20", "%21")
SK_W4G_MMA_DEF(64, "bf16", __nv_bfloat16, SK_WG_ACC32, SK_WG_REGS32, "{%32,%33,%34,%35}, %36",
               "%37")
SK_W4G_MMA_DEF(64, "f16", __half, SK_WG_ACC32, SK_WG_REGS32, "{%32,%33,%34,%35}, %36", "%37")
SK_W4G_MMA_DEF(128, "bf16", __nv_bfloat16, SK_WG_ACC64, SK_WG_REGS64, "{%64,%65,%66,%67}, %68",
               "%69")
SK_W4G_MMA_DEF(128, "f16", __half, SK_WG_ACC64, SK_WG_REGS64, "{%64,%65,%66,%67}, %68", "%69")
SK_W4G_MMA_DEF(256, "bf16", __nv_bfloat16, SK_WG_ACC128, SK_WG_REGS128,
               "{%128,%129,%130,%131}, %132", "%133")
SK_W4G_MMA_DEF(256, "f16", __half, SK_WG_ACC128, SK_WG_REGS128, "{%128,%129,%130,%131}, %132",
               "%133")
#undef SK_W4G_ACC8
#undef SK_W4G_MMA_DEF

/* The x tile widths (tokens) sk_w4g_kernel takes: one wgmma of N0 = 64 or 128 columns plus at
 * most one of R = 16, 32 or 64 more (so that few rows of a batch are padding: 139 rows run as one
 * 144-wide tile instead of two of 128); or 256, one m64n256k16 (sk_w4ws_kernel's wr128x256: 256
 * is also the TMA box's row limit, the x tile's two halves being boxes of 64 columns x BN rows). */
#define SK_W4G_BN_OK(BN)                                                                           \
    ((BN) == 64 || (BN) == 80 || (BN) == 96 || (BN) == 128 || (BN) == 144 || (BN) == 160 ||        \
     (BN) == 192 || (BN) == 256)

/* d[BN/2] += A . x tile columns 0 .. BN - 1 of the k16 slice at shared address addr (128-byte
 * swizzled rows of 128 bytes, one per token): the first N0 columns, then the remaining R from
 * row N0 on (N0 x 128 bytes further: a whole number of 1024-byte swizzle atoms); the second
 * wgmma's accumulators are d[N0/2 ..], the fragment layout continuing column-block by block. */
template <int BN, typename H>
static __device__ __forceinline__ void sk_w4g_mma(float (&d)[BN / 2], const uint32_t (&a)[4],
                                                  uint32_t addr) {
    static_assert(SK_W4G_BN_OK(BN), "x tile width");
    constexpr int N0 = BN == 256 ? 256 : BN >= 128 ? 128 : 64, R = BN - N0;
    if constexpr (N0 == 256)
        sk_w4g_mma256(d, a, sk_wg_desc(addr, 16, 1024), (const H *)nullptr);
    else if constexpr (N0 == 128)
        sk_w4g_mma128(reinterpret_cast<float(&)[64]>(d[0]), a, sk_wg_desc(addr, 16, 1024),
                      (const H *)nullptr);
    else
        sk_w4g_mma64(reinterpret_cast<float(&)[32]>(d[0]), a, sk_wg_desc(addr, 16, 1024),
                     (const H *)nullptr);
    const uint64_t d2 = sk_wg_desc(addr + (uint32_t)(N0 * 128), 16, 1024);
    if constexpr (R == 64)
        sk_w4g_mma64(reinterpret_cast<float(&)[32]>(d[N0 / 2]), a, d2, (const H *)nullptr);
    else if constexpr (R == 32)
        sk_w4g_mma32(reinterpret_cast<float(&)[16]>(d[N0 / 2]), a, d2, (const H *)nullptr);
    else if constexpr (R == 16)
        sk_w4g_mma16(reinterpret_cast<float(&)[8]>(d[N0 / 2]), a, d2, (const H *)nullptr);
}

/* Shared memory of one stage (bytes): the x tile first (two [BN][64] 128-byte-swizzled halves,
 * 1024-byte aligned), then the INT4 words [BM][64 bytes], then the scales [BM][4 words]. */
#define SK_W4G_STAGE_BYTES(BM, BN) ((BN) * 256 + (BM) * 64 + (BM) * 16)

/* One output tile (T tile tx, row tile ty) over K blocks [kb0, kb1). With stream-K (SKM) the
 * tile's index, this segment's index, the tile's segment count and the block holding its first
 * segment are in shared memory (sarg[0..3]), read where the epilogue needs them: values held
 * across the K loop cost registers (a first form passing them as arguments took 148-157 at
 * BN = 64, one block an SM instead of two). Without stream-K all of them come from blockIdx /
 * gridDim / p.splits, as in the kernel before stream-K existed. nseg > 1: the segment's fp32
 * partial goes to a workspace slot (split-K: tile * splits + seg; stream-K: see
 * sk_w4g_ws_slot) and the last segment to finish sums them in segment order and runs the
 * epilogue. */
static __device__ __forceinline__ size_t sk_w4g_ws_slot(bool skm, int tile, int nseg, int bfirst,
                                                        int z) {
    return skm ? (size_t)sk_w4sk_slot(bfirst, z) : (size_t)tile * nseg + z; /* w4_sk.h */
}

template <typename H, int BN, int NWG, int STAGES, int MODE, bool SKM>
static __device__ __forceinline__ void sk_w4g_tile(const sk_w4m_params &p, int tx_, int ty_,
                                                   int kb0_, int kb1_,
                                                   const volatile int *sarg) {
    constexpr int BM = 64 * NWG, NTH = 128 * NWG, SB = SK_W4G_STAGE_BYTES(BM, BN);
    static_assert(NWG == 1 || NWG == 2 || NWG == 4, "warpgroups");
    constexpr bool SW = MODE == SK_GEMV_SWIGLU;
    static_assert(SK_W4G_BN_OK(BN), "x tile width");
    static_assert(STAGES >= 3, "loads run STAGES - 2 blocks ahead");
    static_assert(SB % 1024 == 0, "stages keep the x tiles 1024-byte aligned");
    extern __shared__ uint8_t sk_w4g_raw[];
    __shared__ int s_last;
    const uint32_t raw = sk_w4m_smem(sk_w4g_raw);
    const uint32_t pad = (1024u - (raw & 1023u)) & 1023u;
    uint8_t *sm = sk_w4g_raw + pad;
    const uint32_t sm_a = raw + pad;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5, wg = warp >> 2;
    const int g = lane >> 2, q = lane & 3;
    const int K = p.K, G = p.G, T = p.T, N_out = p.N_out;
    const int KG = K / G, spb = SK_W4M_BK / G;
    const int sshift = G == 32 ? 0 : (G == 64 ? 1 : 2);
    const int RT = SW ? BM / 2 : BM;
    const int t0 = (SKM ? tx_ : (int)blockIdx.x) * BN, n0 = (SKM ? ty_ : (int)blockIdx.y) * RT;
    const int nkb = K / SK_W4M_BK;
    const int kb0 = SKM ? kb0_ : (int)((long long)blockIdx.z * nkb / p.splits);
    const int kb1 = SKM ? kb1_ : (int)((long long)(blockIdx.z + 1) * nkb / p.splits);
    const H *x = static_cast<const H *>(p.x);
    const uint32_t *q4 = p.q4;
    const uint32_t *q4s = reinterpret_cast<const uint32_t *>(p.q4s);

    /* Copy plan (fixed): weight units tid, tid + NTH (rows tid / 4 and + BM / 2, unit tid % 4;
     * that unit's scale word when tid % 4 < 128 / G); x units tid + NTH j (row (tid + NTH j) / 16,
     * unit tid % 16 -> half tid % 16 / 8, chunk tid % 8, swizzled by the row). */
    const int wu = tid & 3;
    int wrow[2];
    bool wok[2];
#pragma unroll
    for (int j = 0; j < 2; j++) {
        const int r = (tid >> 2) + (BM / 2) * j;
        int n = n0 + r, lim = n;
        if (SW) lim = n0 + (r < BM / 2 ? r : r - BM / 2), n = lim + (r < BM / 2 ? 0 : N_out);
        wok[j] = lim < N_out;
        wrow[j] = wok[j] ? n : 0;
    }
    static_assert(BN * 16 % NTH == 0, "whole x copies per thread");
    constexpr int NXU = BN * 16 / NTH;
    const int xu = tid & 15, xhalf = xu >> 3, xc = xu & 7;

#define SK_W4G_LOAD(slot_, kb_)                                                                    \
    do {                                                                                           \
        const uint32_t st_ = sm_a + (uint32_t)((slot_) * SB);                                      \
        const int k0_ = (kb_) * SK_W4M_BK;                                                         \
        _Pragma("unroll") for (int j_ = 0; j_ < NXU; j_++) {                                      \
            const int r_ = (tid >> 4) + j_ * (NTH / 16);                                           \
            const bool ok_ = t0 + r_ < T;                                                          \
            const uint32_t d_ = st_ + (uint32_t)(xhalf * BN * 128 + r_ * 128 + ((xc ^ (r_ & 7)) << 4)); \
            sk_w4m_cp16(d_, ok_ ? x + (size_t)(t0 + r_) * K + k0_ + 8 * xu : x, ok_);             \
        }                                                                                          \
        _Pragma("unroll") for (int j_ = 0; j_ < 2; j_++) {                                        \
            const int i_ = tid + NTH * j_;                                                         \
            const uint32_t dw_ = st_ + (uint32_t)(BN * 256 + 16 * i_);                             \
            sk_w4m_cp16_pf(dw_, wok[j_] ? q4 + sk_w4_widx(wrow[j_], (k0_ >> 3) + 4 * wu, K) : q4,  \
                           wok[j_]);                                                               \
            if (wu < spb) {                                                                        \
                const uint32_t ds_ = st_ + (uint32_t)(BN * 256 + BM * 64 + 4 * i_);                \
                sk_w4m_cp4(ds_, wok[j_] ? q4s + (size_t)wrow[j_] * KG + (kb_) * spb + wu : q4s,    \
                           wok[j_]);                                                               \
            }                                                                                      \
        }                                                                                          \
    } while (0)

    float acc[BN / 2];
#pragma unroll
    for (int e = 0; e < BN / 2; e++) acc[e] = 0.0f;

#pragma unroll
    for (int s = 0; s < STAGES - 2; s++) {
        if (kb0 + s < kb1) SK_W4G_LOAD(s, kb0 + s);
        sk_w4m_commit();
    }
    uint32_t aset[2][4][4];
#pragma unroll
    for (int hf = 0; hf < 2; hf++)
#pragma unroll
        for (int m = 0; m < 4; m++)
#pragma unroll
            for (int e = 0; e < 4; e++) aset[hf][m][e] = 0u;
    /* this warp's rows in a stage's weight block: 64 wg + 16 (warp % 4) + g (+ 8) */
    const int r0 = 64 * wg + 16 * (warp & 3) + g;
    int slot = 0;
    for (int kb = kb0; kb < kb1; kb++) {
        sk_w4m_wait<STAGES - 3>();
        sk_wg_fence_proxy_async();
        __syncthreads();
        {
            const int kl = kb + STAGES - 2;
            int ls = slot + STAGES - 2;
            if (ls >= STAGES) ls -= STAGES;
            if (kl < kb1) SK_W4G_LOAD(ls, kl);
            sk_w4m_commit();
        }
        const uint8_t *st = sm + slot * SB;
        const uint32_t xt = sm_a + (uint32_t)(slot * SB);
        const uint4 *sw = reinterpret_cast<const uint4 *>(st + BN * 256);
        const uint32_t *ss = reinterpret_cast<const uint32_t *>(st + BN * 256 + BM * 64);
        if (++slot == STAGES) slot = 0;
        const uint4 wv0 = sw[4 * r0 + q], wv1 = sw[4 * (r0 + 8) + q];
        uint32_t sc[2][3];
        sk_w4m_prep(ss[4 * r0 + (q >> sshift)], sc[0], (const H *)nullptr);
        sk_w4m_prep(ss[4 * (r0 + 8) + (q >> sshift)], sc[1], (const H *)nullptr);
#pragma unroll
        for (int hf = 0; hf < 2; hf++) {
            /* words 2 hf, 2 hf + 1 -> k16 slices 4 hf .. 4 hf + 3, into register set aset[hf]:
             * the wgmmas that read it last time (one commit group back) must be done first, and
             * the pin there keeps the two sets in distinct registers (the compiler does not see
             * the asynchronous reads). */
            uint32_t(&a)[4][4] = aset[hf];
            sk_wg_wait<1>();
#pragma unroll
            for (int m = 0; m < 4; m++) sk_wg_pin(a[m]);
#pragma unroll
            for (int ii = 0; ii < 2; ii++) {
                const int i = 2 * hf + ii;
                const uint32_t w0 = i == 0 ? wv0.x : i == 1 ? wv0.y : i == 2 ? wv0.z : wv0.w;
                const uint32_t w1 = i == 0 ? wv1.x : i == 1 ? wv1.y : i == 2 ? wv1.z : wv1.w;
                uint32_t d0[4], d1[4];
                sk_w4m_deq(w0, sc[0], d0, (const H *)nullptr);
                sk_w4m_deq(w1, sc[1], d1, (const H *)nullptr);
#pragma unroll
                for (int s2 = 0; s2 < 2; s2++) {
                    a[2 * ii + s2][0] = d0[2 * s2];
                    a[2 * ii + s2][1] = d1[2 * s2];
                    a[2 * ii + s2][2] = d0[2 * s2 + 1];
                    a[2 * ii + s2][3] = d1[2 * s2 + 1];
                }
            }
#pragma unroll
            for (int m = 0; m < 4; m++) sk_wg_pin(a[m]);
            sk_wg_pin(acc);
            sk_wg_fence();
#pragma unroll
            for (int m = 0; m < 4; m++) {
                const int j = 4 * hf + m; /* k16 slice: half j / 4 of the tile, 32 bytes a step */
                sk_w4g_mma<BN, H>(acc, a[m], xt + (uint32_t)((j >> 2) * BN * 128 + (j & 3) * 32));
            }
            sk_wg_commit();
            sk_wg_pin(acc);
        }
    }
#undef SK_W4G_LOAD
    sk_wg_wait<0>();
    sk_wg_pin(acc);
    sk_w4m_wait<0>();
    __syncthreads();

    /* Accumulators -> red [BN][BM + 4]: d[4 jn + e] is row r0 (+ 8 for e >= 2) of the block,
     * token 8 jn + 2 q + (e & 1). */
    constexpr int LD = BM + 4;
    float *red = reinterpret_cast<float *>(sm);
#pragma unroll
    for (int jn = 0; jn < BN / 8; jn++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            red[(8 * jn + 2 * q + (e & 1)) * LD + r0 + 8 * (e >> 1)] = acc[4 * jn + e];
    __syncthreads();

    const int nseg = SKM ? sarg[2] : p.splits;
    if (nseg > 1) {
        const int tile = SKM ? sarg[0] : blockIdx.y * gridDim.x + blockIdx.x;
        const int seg = SKM ? sarg[1] : (int)blockIdx.z, bf = SKM ? sarg[3] : 0;
        float *wp = p.ws + sk_w4g_ws_slot(SKM, tile, nseg, bf, seg) * (BM * BN);
        for (int i = tid; i < BM * BN; i += NTH) __stcg(wp + i, red[(i / BM) * LD + i % BM]);
        __threadfence();
        __syncthreads();
        if (tid == 0) s_last = atomicAdd(p.cnt + tile, 1) == nseg - 1;
        __syncthreads();
        if (!s_last) return;
        __threadfence();
        for (int i = tid; i < BM * BN; i += NTH) {
            float v = 0.0f;
            for (int z = 0; z < nseg; z++)
                v += __ldcg(p.ws + sk_w4g_ws_slot(SKM, tile, nseg, bf, z) * (BM * BN) + i);
            red[(i / BM) * LD + i % BM] = v;
        }
        if (tid == 0) p.cnt[tile] = 0;
        __syncthreads();
    }

    /* U outputs a thread per pass; with ADD their old values are all loaded before any store
     * (one round trip per pass instead of one per output: the compiler cannot move a load of
     * out above a store to out, so a load-add-store loop waits a full memory latency per
     * output, BN / 2 of them a thread) */
    constexpr int U = 8;
    for (int i0 = tid; i0 < BN * RT; i0 += U * NTH) {
        float bv[U], prev[U]; /* bias and (ADD) old outputs, loaded before any store */
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = i0 + u * NTH, t = i / RT, n = n0 + i % RT;
            const bool ok = !SW && i < BN * RT && t0 + t < T && n < N_out;
            bv[u] = ok && p.bias ? p.bias[n] : 0.0f;
            prev[u] = ok && MODE == SK_GEMV_ADD ? p.out[(size_t)(t0 + t) * N_out + n] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = i0 + u * NTH, t = i / RT, r = i % RT, n = n0 + r;
            if (i >= BN * RT || t0 + t >= T || n >= N_out) continue;
            float v = red[t * LD + r];
            float *o = p.out + (size_t)(t0 + t) * N_out + n;
            if (SW) {
                const float uu = red[t * LD + r + BM / 2];
                *o = v / (1.0f + __expf(-v)) * uu;
            } else {
                if (p.bias) v += bv[u]; /* (acc + bias) + old, as before */
                if (MODE == SK_GEMV_ADD) v += prev[u];
                *o = v;
            }
        }
    }
}

/* grid (ceil(T / BN), ceil(N_out / RT), splits), RT = BM = 64 NWG (STORE, ADD) or BM / 2
 * (SWIGLU), or with SKM (stream-K) a 1-D grid of B blocks (ws: 2 B partial tiles); 128 NWG
 * threads (NWG warpgroups of 64 weight rows); dynamic shared memory STAGES *
 * SK_W4G_STAGE_BYTES(BM, BN) + 1024 (alignment). x: the permuted half copy (sk_w4g_cast_kernel).
 * Stream-K (session 6, opt-in; session 7 on the H200: correct, and slower at every 70B shape
 * that takes it, e.g. o at 64 rows 69.7 against 55.4 us, engine batch 139 ITL 78.1 against 69.6
 * ms; bench/results/awq-speed.md): the tiles x K-blocks iterations (T tiles
 * fastest) cut into one contiguous range per block (w4_sk.h: the partition, the segments and
 * their workspace slots), so that every SM works when the tiles alone are fewer than the SMs
 * (qkv's 80 and o's 64 row tiles: 52-61% of the 132 SMs). Used only where the tiles are fewer
 * than the tiles' kernel's resident slots (sk_w4g_run). */
template <typename H, int BN, int NWG, int STAGES, int MODE, bool SKM>
__global__ void __launch_bounds__(128 * NWG) sk_w4g_kernel(const sk_w4m_params p) {
    if constexpr (!SKM) { /* the tiles: one block each (per split) */
        sk_w4g_tile<H, BN, NWG, STAGES, MODE, false>(p, 0, 0, 0, 0, nullptr);
    } else { /* stream-K: a separate instance, so the loop costs the tiles' kernel nothing; the
              * loop's state lives in shared memory (see sk_w4g_tile) */
        __shared__ long long s_it;
        __shared__ int s_arg[4];
        constexpr int BM = 64 * NWG, RT = MODE == SK_GEMV_SWIGLU ? BM / 2 : BM;
        if (threadIdx.x == 0) {
            const int nkb = p.K / SK_W4M_BK;
            const long long I = (long long)((p.T + BN - 1) / BN) * ((p.N_out + RT - 1) / RT) * nkb;
            s_it = sk_w4sk_begin(I, gridDim.x, blockIdx.x);
        }
        __syncthreads();
        for (;;) { /* the partition: w4_sk.h */
            const int nkb = p.K / SK_W4M_BK, tt = (p.T + BN - 1) / BN;
            const long long I = (long long)tt * ((p.N_out + RT - 1) / RT) * nkb, B = gridDim.x;
            const long long it = *(volatile long long *)&s_it;
            if (it >= sk_w4sk_end(I, B, blockIdx.x)) break;
            const sk_w4sk_seg sg = sk_w4sk_segment(I, B, nkb, blockIdx.x, it);
            __syncthreads(); /* every thread has read s_it */
            if (threadIdx.x == 0) {
                s_it = it + (sg.kb1 - sg.kb0);
                s_arg[0] = sg.tile;
                s_arg[1] = sg.seg;
                s_arg[2] = sg.nseg;
                s_arg[3] = sg.bfirst;
            }
            __syncthreads();
            sk_w4g_tile<H, BN, NWG, STAGES, MODE, true>(p, sg.tile % tt, sg.tile / tt, sg.kb0,
                                                        sg.kb1, s_arg);
            __syncthreads(); /* the epilogue's shared memory and s_arg: the next segment's */
        }
    }
}

/* mbarrier helpers of sk_w4ws_kernel beyond mbar.cuh's (shared addresses) */
/* An arrival on the barrier at a when p, as a predicated instruction: a branch around the arrival
 * between wgmmas and their wait made ptxas serialize the wgmmas (C7513). */
static __device__ __forceinline__ void sk_w4ws_arrive_if(uint32_t a, bool p) {
    asm volatile("{\n.reg .pred q;\nsetp.ne.b32 q, %1, 0;\n"
                 "@q mbarrier.arrive.shared::cta.b64 _, [%0];\n}\n" ::"r"(a), "r"((int)p)
                 : "memory");
}
/* An arrival on the barrier at a once every cp.async this thread issued so far has landed (noinc:
 * the barrier's count includes this arrival). */
static __device__ __forceinline__ void sk_w4ws_cp_arrive(uint32_t a) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(a) : "memory");
}

/* cp.async of 4, 8 or 16 bytes (nb, warp-uniform) with zero fill when !ok */
static __device__ __forceinline__ void sk_w4ws_cpn(uint32_t dst, const void *src, int nb, bool ok) {
    if (nb == 16)
        asm volatile("cp.async.ca.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src),
                     "r"(ok ? 16 : 0));
    else if (nb == 8)
        asm volatile("cp.async.ca.shared.global [%0], [%1], 8, %2;\n" ::"r"(dst), "l"(src),
                     "r"(ok ? 8 : 0));
    else
        asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(dst), "l"(src),
                     "r"(ok ? 4 : 0));
}

/* sk_w4ws_kernel's consumers: one 128-wide K block of a warpgroup's product, sk_w4g_tile's loop
 * body copied (a shared function changed the SASS of every sk_w4g_kernel instance a little, so
 * the copy keeps theirs byte for byte; keep the two in step), from the stage at st (generic
 * address) / xt (its shared address): this warp's words and scales (rows r0, r0 + 8) to
 * registers, dequantized into aset[0] (words 0-1), 4 wgmmas, commit, then aset[1] (words 2-3)
 * under them. On return the block's second commit group may still run; the first is retired by
 * the next call's first wait. release: the warp's lane 0 arrives on the mbarrier at rel once the
 * second wait has retired every wgmma of the previous K block (see sk_w4ws_kernel). A flag, not
 * rel == 0: a barrier may sit at shared address 0. */
template <int BN, int BM, typename H>
static __device__ __forceinline__ void sk_w4ws_block(float (&acc)[BN / 2],
                                                    uint32_t (&aset)[2][4][4], const uint8_t *st,
                                                    uint32_t xt, int r0, int q, int sshift,
                                                    bool release, uint32_t rel) {
    const uint4 *sw = reinterpret_cast<const uint4 *>(st + BN * 256);
    const uint32_t *ss = reinterpret_cast<const uint32_t *>(st + BN * 256 + BM * 64);
    const uint4 wv0 = sw[4 * r0 + q], wv1 = sw[4 * (r0 + 8) + q];
    uint32_t sc[2][3];
    sk_w4m_prep(ss[4 * r0 + (q >> sshift)], sc[0], (const H *)nullptr);
    sk_w4m_prep(ss[4 * (r0 + 8) + (q >> sshift)], sc[1], (const H *)nullptr);
#pragma unroll
    for (int hf = 0; hf < 2; hf++) {
        /* words 2 hf, 2 hf + 1 -> k16 slices 4 hf .. 4 hf + 3, into register set aset[hf]:
         * the wgmmas that read it last time (one commit group back) must be done first, and
         * the pin there keeps the two sets in distinct registers (the compiler does not see
         * the asynchronous reads). */
        uint32_t(&a)[4][4] = aset[hf];
        sk_wg_wait<1>();
#pragma unroll
        for (int m = 0; m < 4; m++) sk_wg_pin(a[m]);
        if (hf == 1) { /* the previous K block's wgmmas are done: its stage is free */
            __syncwarp();
            sk_w4ws_arrive_if(rel, release && (threadIdx.x & 31) == 0);
        }
#pragma unroll
        for (int ii = 0; ii < 2; ii++) {
            const int i = 2 * hf + ii;
            const uint32_t w0 = i == 0 ? wv0.x : i == 1 ? wv0.y : i == 2 ? wv0.z : wv0.w;
            const uint32_t w1 = i == 0 ? wv1.x : i == 1 ? wv1.y : i == 2 ? wv1.z : wv1.w;
            uint32_t d0[4], d1[4];
            sk_w4m_deq(w0, sc[0], d0, (const H *)nullptr);
            sk_w4m_deq(w1, sc[1], d1, (const H *)nullptr);
#pragma unroll
            for (int s2 = 0; s2 < 2; s2++) {
                a[2 * ii + s2][0] = d0[2 * s2];
                a[2 * ii + s2][1] = d1[2 * s2];
                a[2 * ii + s2][2] = d0[2 * s2 + 1];
                a[2 * ii + s2][3] = d1[2 * s2 + 1];
            }
        }
#pragma unroll
        for (int m = 0; m < 4; m++) sk_wg_pin(a[m]);
        sk_wg_pin(acc);
        sk_wg_fence();
#pragma unroll
        for (int m = 0; m < 4; m++) {
            const int j = 4 * hf + m; /* k16 slice: half j / 4 of the tile, 32 bytes a step */
            sk_w4g_mma<BN, H>(acc, a[m], xt + (uint32_t)((j >> 2) * BN * 128 + (j & 3) * 32));
        }
        sk_wg_commit();
        sk_wg_pin(acc);
    }
}

/* sk_w4ws_kernel's epilogue: sk_w4g_tile's, copied for the same reason as sk_w4ws_block, over
 * the 128 NCW consumer threads (ctid 0..128 NCW - 1; at NCW = 2 as sk_w4g_tile's 256 at
 * NWG = 2) of the BM = 64 NCW rows, with named barrier 1 of those threads instead of
 * __syncthreads (the producer has left), without stream-K. Entered after the K loop with every
 * wgmma waited for, every copy landed and the consumers past barrier 1, so the stage ring is
 * free: the accumulators (rows r0, r0 + 8 of the block, tokens 8 jn + 2 q + (0, 1)) go through
 * shared memory (red, over the ring at sm) to coalesced stores; split-K partials as
 * sk_w4g_tile. SWIGLU pairs red's rows r and r + BM / 2, whichever warpgroups hold them. */
template <int BN, int MODE, int NCW>
static __device__ __forceinline__ void sk_w4ws_epilogue(const sk_w4m_params &p,
                                                        const float (&acc)[BN / 2], uint8_t *sm,
                                                        int tid, int r0, int q, int t0, int n0,
                                                        int &s_last) {
    constexpr int BM = 64 * NCW, NTH = 128 * NCW;
    constexpr bool SW = MODE == SK_GEMV_SWIGLU;
    const int T = p.T, N_out = p.N_out;
    const int RT = SW ? BM / 2 : BM;
    /* Accumulators -> red [BN][BM + 4]: d[4 jn + e] is row r0 (+ 8 for e >= 2) of the block,
     * token 8 jn + 2 q + (e & 1). */
    constexpr int LD = BM + 4;
    float *red = reinterpret_cast<float *>(sm);
#pragma unroll
    for (int jn = 0; jn < BN / 8; jn++)
#pragma unroll
        for (int e = 0; e < 4; e++)
            red[(8 * jn + 2 * q + (e & 1)) * LD + r0 + 8 * (e >> 1)] = acc[4 * jn + e];
    asm volatile("bar.sync 1, %0;\n" ::"n"(NTH) : "memory");

    /* Split-K: the partial tile to the block's workspace slot, then the last block of the tile
     * to arrive sums the slots in split order. In float4s, NI = BN / 8 a thread, the sum with
     * 8 loads in flight (session 10: the scalar loop before waited an L2 round trip per element,
     * 64-192 of them a thread; dev_gemm_w4 bn had every split launch 20-45 us slower than its
     * blocks' share of the K loop, e.g. 70B o at 128 rows wn64x64 50.0 us unsplit, 70.4 in 2). */
    const int nseg = p.splits;
    if (nseg > 1) {
        constexpr int NV = BM * BN / 4, NI = NV / NTH;
        static_assert(NV % NTH == 0 && LD % 4 == 0 && BM % 4 == 0, "float4 slots");
        const int tile = blockIdx.y * gridDim.x + blockIdx.x;
        float4 *ws4 = reinterpret_cast<float4 *>(p.ws) + (size_t)tile * nseg * NV;
#pragma unroll
        for (int j = 0; j < NI; j++) {
            const int e = 4 * (tid + j * NTH);
            __stcg(ws4 + (size_t)blockIdx.z * NV + tid + j * NTH,
                   *reinterpret_cast<const float4 *>(red + (e / BM) * LD + e % BM));
        }
        __threadfence();
        asm volatile("bar.sync 1, %0;\n" ::"n"(NTH) : "memory");
        if (tid == 0) s_last = atomicAdd(p.cnt + tile, 1) == nseg - 1;
        asm volatile("bar.sync 1, %0;\n" ::"n"(NTH) : "memory");
        if (!s_last) return;
        __threadfence();
#pragma unroll
        for (int j0 = 0; j0 < NI; j0 += 8) {
            float4 sum[8];
#pragma unroll
            for (int u = 0; u < 8; u++) sum[u] = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            for (int z = 0; z < nseg; z++) {
                const float4 *rp = ws4 + (size_t)z * NV + tid;
                float4 a[8];
#pragma unroll
                for (int u = 0; u < 8; u++)
                    if (j0 + u < NI) a[u] = __ldcg(rp + (j0 + u) * NTH);
#pragma unroll
                for (int u = 0; u < 8; u++)
                    if (j0 + u < NI)
                        sum[u].x += a[u].x, sum[u].y += a[u].y, sum[u].z += a[u].z,
                            sum[u].w += a[u].w;
            }
#pragma unroll
            for (int u = 0; u < 8; u++)
                if (j0 + u < NI) {
                    const int e = 4 * (tid + (j0 + u) * NTH);
                    *reinterpret_cast<float4 *>(red + (e / BM) * LD + e % BM) = sum[u];
                }
        }
        if (tid == 0) p.cnt[tile] = 0;
        asm volatile("bar.sync 1, %0;\n" ::"n"(NTH) : "memory");
    }

    /* U outputs a thread per pass; with ADD their old values are all loaded before any store
     * (one round trip per pass instead of one per output: the compiler cannot move a load of
     * out above a store to out, so a load-add-store loop waits a full memory latency per
     * output, BN / 2 of them a thread) */
    constexpr int U = 8;
    for (int i0 = tid; i0 < BN * RT; i0 += U * NTH) {
        float bv[U], prev[U]; /* bias and (ADD) old outputs, loaded before any store */
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = i0 + u * NTH, t = i / RT, n = n0 + i % RT;
            const bool ok = !SW && i < BN * RT && t0 + t < T && n < N_out;
            bv[u] = ok && p.bias ? p.bias[n] : 0.0f;
            prev[u] = ok && MODE == SK_GEMV_ADD ? p.out[(size_t)(t0 + t) * N_out + n] : 0.0f;
        }
#pragma unroll
        for (int u = 0; u < U; u++) {
            const int i = i0 + u * NTH, t = i / RT, r = i % RT, n = n0 + r;
            if (i >= BN * RT || t0 + t >= T || n >= N_out) continue;
            float v = red[t * LD + r];
            float *o = p.out + (size_t)(t0 + t) * N_out + n;
            if (SW) {
                const float uu = red[t * LD + r + BM / 2];
                *o = v / (1.0f + __expf(-v)) * uu;
            } else {
                if (p.bias) v += bv[u]; /* (acc + bias) + old, as before */
                if (MODE == SK_GEMV_ADD) v += prev[u];
                *o = v;
            }
        }
    }
}

/* ---- sk_w4ws_kernel: sk_w4g_kernel warp-specialized (experimental, workbench only) ----------
 *
 * Why (session 7, bench/results/awq-speed.md): sk_w4g_kernel runs at 180-360 TFLOP/s where
 * cuBLAS bf16 runs at 400-470, and neither more stages nor smaller tiles helped; every thread
 * both loads and computes, and each K block passes cp.async.wait_group, a block barrier, the
 * next block's loads, the dequantization and the wgmma chain in step, a second co-resident block
 * hiding part of it. Here (as vLLM's Machete, FlashAttention-3, CUTLASS's warp-specialized
 * kernels) the roles split and the block barrier leaves the K loop:
 *   Block: 384 threads. Warpgroup 0 is the producer: it only issues sk_w4g_tile's cp.async copies
 *   (same stage layout, SK_W4G_STAGE_BYTES: the swizzled x tile, the INT4 words with the L2
 *   256-byte hint, the scales), its 128 threads taking the copy plan sk_w4g_tile gives 256.
 *   Warpgroups 1 and 2 are the consumers, 64 weight rows each (BM = 128; SWIGLU: 64 gate rows
 *   then the matching 64 up rows, as NWG = 2), running sk_w4g_tile's per-block code
 *   (sk_w4ws_block: dequantize into two alternating register sets, 2 x 4 wgmmas) and its
 *   epilogue (sk_w4ws_epilogue over the 256 consumer threads, named barrier 1), both copies.
 *   Synchronisation, per stage s of STAGES (static shared s_bar: full[s], then empty[s]):
 *   - full[s], count 128: each producer thread, after issuing its copies of a K block into s,
 *     executes cp.async.mbarrier.arrive.noinc on it, an arrival that happens when all its
 *     copies have landed; so the phase completes when the whole stage is in shared memory, and
 *     the producer never waits for its own copies.
 *   - empty[s], count 8 (one arrival per consumer warp: lane 0 after __syncwarp, so the warp's
 *     shared loads of the stage are ordered before it; 8 instead of 256 per-thread arrivals to
 *     keep the shared-memory atomics off the consumers' path): a consumer warp arrives once the
 *     wgmmas that read the stage's x tile have completed. Those are the block's two commit
 *     groups; the second is retired by the wait before the next block's second half
 *     (sk_wg_wait<1> with only that block's first group younger), so block j's stage is released
 *     during block j + 1 (one block late: the loads then run STAGES - 1 blocks ahead, against
 *     STAGES - 2 in sk_w4g_tile). The last block's stage is never released: nobody loads after
 *     it (the consumers' wait<0> and named barrier precede the epilogue's reuse of the ring).
 *   - Phases: the u-th use (u = 0, 1, ...) of stage s is K block kb0 + u STAGES + s. The
 *     consumers wait on full[s] for parity u & 1; the producer, for u >= 1, waits on empty[s]
 *     for parity (u - 1) & 1 (the consumers' release of use u - 1; no wait for u = 0). The
 *     consumers keep (slot, parity bit), flipping the bit when the slot wraps; the producer
 *     (slot, u).
 *   - No hang: producer and consumers derive the same K range [kb0, kb1) from blockIdx.z and
 *     p.splits; the producer's wait for block i >= STAGES needs the release of block
 *     i - STAGES, which the consumers give inside their loop (at block i - STAGES + 1 < kb1 -
 *     kb0), after waiting only for blocks the producer issued before i. A phase never receives
 *     arrivals of the next one: the next use of a stage is loaded only after its release, and
 *     released only after its full phase completed.
 *   - wgmma reads the x tile through the async proxy, written by cp.async (generic proxy): the
 *     consumers fence.proxy.async after each full wait, as sk_w4g_tile after its wait_group.
 *   - Barrier set-up: thread 0 inits, fence.mbarrier_init, then __syncthreads (all 384 threads;
 *     the only block-wide barrier). The producer then leaves after cp.async.wait_all (nothing of
 *     its own in flight at exit); the consumers' epilogue uses named barrier 1 of 256 threads,
 *     never barrier 0, so the exited warps cannot matter.
 *   - The release is a predicated arrival (sk_w4ws_arrive_if), not a branch around one: with a
 *     branch between the wgmmas and their wait ptxas serialized every wgmma (C7513, "non wgmma
 *     instructions defining input registers ... between start and end of the pipeline stage").
 *   Registers: no setmaxnreg. MINB blocks an SM (__launch_bounds__): at MINB = 1 the 384 threads
 *   get up to 168 registers each, more than the consumers use (ptxas, session 8: 100-113 at
 *   BN = 64, 150 at BN = 128, no spills); at MINB = 2 (BN = 64 only) the cap is 80 (78-80
 *   used, no spills), the two blocks' four consumer warpgroups an SM matching sk_w4g_kernel's
 *   128 x 64 at two blocks an SM.
 *   Shared memory: STAGES x SB + 1024 (alignment) dynamic: 8 stages at BN = 64 and 5 at
 *   BN = 128 for one block an SM (214016 / 216064 bytes), 4 at BN = 64 for two (107520 each).
 *   Split-K as sk_w4g_tile (workspace, counters); no stream-K.
 *   Measured (session 8, H200, dev_gemm_w4; bench/results/awq-speed.md): correct (1,948
 *   checks), and slower than sk_w4g_kernel at every 70B shape at 64-256 rows (qkv at 128 rows
 *   112.8 against 88.4 us, gate/up 424.9 against 338.1): the producer's copy plan costs as many
 *   issue slots as before, now on the consumers' schedulers. With TMA (below) it is the fastest
 *   kernel from 72 to 1024 rows. */
/* TMA (session 8): the producer is one warp. Lane 0 arms the stage's full barrier with the byte
 * count and issues four 2-D tensor copies: the x tile's two 64-column halves (box 64 x BN,
 * 128-byte swizzle: exactly the layout the cp.async plan writes and wgmma reads; rows past T are
 * zero-filled) and the INT4 words of the two 64-row halves (box 16 words x 64 rows; SWIGLU: the
 * gate rows n0.., then the up rows N_out + n0..; rows past the matrix zero-filled, gate rows past
 * N_out read up rows whose outputs the epilogue never stores). The scales go by cp.async from
 * the 32 lanes (a row's 128 / G words, 4 rows a lane; a tensor map would need K / G % 4 == 0,
 * which 7B's down, K = 11008, is not), each lane then arriving by cp.async.mbarrier.arrive
 * .noinc: full[s] counts 33. The consumers' proxy fence goes (TMA writes through the async proxy
 * that wgmma reads by). Warps 1-3 of warpgroup 0 leave at once. The motive (session 8, the
 * wgmma kernel's ablations in bench/results/awq-speed.md): the cp.async copy plan is ~270 of
 * sk_w4g_tile's 488 instructions a warp and K block, and dropping only the x copies took 35% off
 * g128x128's time. */
/* NCW and PREG (written by session 8's helpers without a GPU; session 9 on the H200: dev_gemm_w4
 * check 6,484 runs and gpu_backend_ops w4 3,370 checks, 0 failures; the backend picks them by
 * sk_w4m_pick's cost model). NCW consumer warpgroups own BM = 64 NCW weight rows a block.
 * NCW = 2 is the kernel above; the generalisation leaves its SASS unchanged (every
 * sk_w4ws_kernel instance of dev_gemm_w4 dumped before and after: identical). NCW = 1 ("wn64xBN",
 * TMA only): 64 rows, 160 threads (the consumer warpgroup warps 0-3, the producer warp 4), stages
 * for two blocks an SM (MINB = 2, the largest shared-memory carveout asked for); twice the row
 * tiles of wt128xBN, for the products with few of them (qkv and o at 33-256 rows, the 7B
 * shapes). NCW = 3 (TMA only): BM = 192, 1.5x the weight rows per x tile
 * (the x-tile copies, which every row tile re-reads from L2, were the largest single cost in
 * session 8's ablations), in one of two layouts:
 *   - PREG = 0 ("wc"): 416 threads, the consumers warps 0..11 (warpgroups 0-2, aligned as wgmma
 *     requires), the producer warp 12, last. ptxas caps __launch_bounds__(416, 1) at 128
 *     registers a thread, not 65536 / 416 = 157 (448 and 512 threads: 128 too); presumably
 *     because 13 warps put 4 on one of the SM's four schedulers, whose quarter of the register
 *     file (16384) then holds 4 x 32 x 128. So 416 threads have the registers of 512. At 128
 *     the consumers fit at BN = 64, 96, 128 (ptxas, bf16 / fp16: 110 / 99, 124-126 / 116,
 *     128 / 125; no spills, no serialized wgmma); at BN = 144 and 160 ptxas serializes the
 *     wgmmas (C7512; under a 168 cap they would take 148 and 156): left out.
 *   - PREG > 0 ("wr"): 512 threads as NCW = 2's layout (the producer warpgroup 0, whole, then
 *     the consumers), and setmaxnreg: the producer warpgroup drops to PREG registers (all four
 *     warps, before warps 1-3 leave; setmaxnreg is per warpgroup, which is why the lone
 *     producer warp of the first layout cannot take part), the consumers rise to
 *     CREG = (65536 - 128 PREG) / 384 rounded down to 8 (PREG = 40: 152; each scheduler then
 *     holds one producer warp and three consumer warps, 40 + 3 x 152 = 496 of its 512 a lane).
 *     SASS (bf16): the consumers' code names registers up to R133 / R142 / R149 at BN = 128 /
 *     144 / 160, the producer's (after the decrease) up to R26; no spills, no serialized
 *     wgmma. The pattern is attn_prefill.cuh's setmaxnreg 72 / 216, which runs on the H200.
 * Both: SWIGLU takes 96 gate rows then the matching 96 up rows (warpgroup 1 holds gate rows
 * 64-95 and up rows 0-31; the epilogue pairs shared rows r and r + BM / 2 whichever warpgroup
 * wrote them); the TMA weight boxes are BM / 2 = 96 rows (gate, up; or rows n0 and n0 + 96);
 * BM / 32 = 6 scale rows a producer lane; empty[s] counts 4 NCW = 12 warps, full[s] still 33
 * (one expect_tx arrival, 32 cp.async arrivals); named barrier 1 of the 128 NCW consumers.
 * Stages: SK_W4G_STAGE_BYTES(192, BN) = 256 BN + 15360 (a multiple of 1024 for any BN that
 * is a multiple of 4), as many as fit in 227 KB with the 1024 of alignment (sk_w4m_launch).
 * NCW = 2 with PREG > 0 ("wr128xBN", the design note's step 1, dev/notes/w4_prefill_design.md;
 * session 11: 1,948 workbench checks, 0 failures): NCW = 2's 384 threads and setmaxnreg, the producer
 * warpgroup at PREG = 40, the consumers at CREG = (65536 - 128 PREG) / 256 = 236 -> 232 (CUTLASS's
 * usual 40 / 232; 40 x 128 + 232 x 256 = 64,512 = 384 x 168, exactly what __launch_bounds__(384,
 * 1) lets ptxas give the kernel at launch). For BN = 256 each consumer warpgroup issues one
 * m64n256k16 a k16 slice (128 fp32 accumulators a thread); stages of SK_W4G_STAGE_BYTES(128,
 * 256) = 75,776 bytes, 3 of them (228,352 with the alignment), the epilogue's red (256 x 132
 * floats, 135,168 bytes) inside the ring; BN = 192: 59,392-byte stages, 3 (4 do not fit).
 * SWIGLU as NCW = 2: 64 gate rows (warpgroup 0) then the 64 up rows (warpgroup 1). ptxas
 * (CUDA 13.0, every mode, bf16 / fp16): 168 registers at launch, no stack, no local memory, no
 * C7512 (serialized wgmma); SASS: 8 HGMMA.64x256x16 a K block at BN = 256 (192: 8 x 64x128 +
 * 8 x 64x64), the consumers' code names registers up to R191-R199 at BN = 256 and R155-R159 at
 * 192 (of 232), the producer's (after the decrease) up to R19 (of 40). */
#define SK_W4WS_NTH(NCW, PREG) ((NCW) == 2 || (PREG) ? 128 * ((NCW) + 1) : 128 * (NCW) + 32)
template <typename H, int BN, int STAGES, int MINB, int MODE, bool TMA = false, int NCW = 2,
          int PREG = 0>
__global__ void __launch_bounds__(SK_W4WS_NTH(NCW, PREG), MINB)
    sk_w4ws_kernel(const sk_w4m_params p, const __grid_constant__ CUtensorMap tmx,
                   const __grid_constant__ CUtensorMap tmw) {
    constexpr int BM = 64 * NCW, SB = SK_W4G_STAGE_BYTES(BM, BN);
    /* the layout: the producer's warpgroup PW (NCW = 2 or PREG > 0: warpgroup 0, whole; else
     * warpgroup 3, warp 12 alone) and first thread PB; the consumers' first thread CB */
    constexpr int PW = NCW == 2 || PREG ? 0 : NCW, PB = 128 * PW, CB = PW == 0 ? 128 : 0;
    /* PREG: the consumers' registers after setmaxnreg, what the producer gives up shared by
     * them (a multiple of 8, at most 256) */
    constexpr int CREG0 = PREG ? (65536 - 128 * PREG) / (128 * NCW) / 8 * 8 : 0;
    constexpr int CREG = CREG0 > 256 ? 256 : CREG0;
    constexpr bool SW = MODE == SK_GEMV_SWIGLU;
    static_assert(NCW >= 1 && NCW <= 3, "consumer warpgroups");
    static_assert(PREG == 0 || (TMA && MINB == 1 && PREG >= 24 && PREG % 8 == 0 && CREG > PREG),
                  "setmaxnreg: the TMA producer, one block an SM");
    static_assert(NCW == 2 || TMA, "the cp.async producer plan is a whole warpgroup's, NCW = 2");
    static_assert(SK_W4G_BN_OK(BN), "x tile width");
    static_assert(STAGES >= 2, "a ring");
    static_assert(SB % 1024 == 0, "stages keep the x tiles 1024-byte aligned");
    static_assert(BN * (BM + 4) * 4 <= STAGES * SB, "the epilogue's red fits in the ring");
    extern __shared__ uint8_t sk_w4g_raw[];
    __shared__ __align__(8) uint64_t s_bar[2 * STAGES]; /* full[STAGES], empty[STAGES] */
    __shared__ int s_last;
    const uint32_t raw = sk_w4m_smem(sk_w4g_raw);
    const uint32_t pad = (1024u - (raw & 1023u)) & 1023u;
    uint8_t *sm = sk_w4g_raw + pad;
    const uint32_t sm_a = raw + pad;
    const uint32_t full0 = sk_w4m_smem(s_bar), empty0 = full0 + 8u * STAGES;

    const int tid = threadIdx.x, wg = tid >> 7;
    const int K = p.K, G = p.G, T = p.T, N_out = p.N_out;
    const int RT = SW ? BM / 2 : BM;
    const int t0 = (int)blockIdx.x * BN, n0 = (int)blockIdx.y * RT;
    const int nkb = K / SK_W4M_BK;
    /* the same K range on both sides (the loop counts must agree) */
    const int kb0 = (int)((long long)blockIdx.z * nkb / p.splits);
    const int kb1 = (int)((long long)(blockIdx.z + 1) * nkb / p.splits);
    /* PDL (launched with the attribute after the x cast, session 10): everything above and the
     * barrier setup overlap the cast; nothing global is read or written before this */
    sk_pdl_wait();

    if (tid == 0) {
#pragma unroll
        for (int s = 0; s < STAGES; s++) {
            sk_mb_init(full0 + 8u * s, TMA ? 33 : 128);
            sk_mb_init(empty0 + 8u * s, 4 * NCW); /* one arrival a consumer warp */
        }
        asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    }
    __syncthreads();

    if (wg == PW && TMA) {
        if constexpr (PREG > 0) /* the whole producer warpgroup, before warps 1-3 leave */
            asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(PREG) : "memory");
        if (tid >= PB + 32) return;
        const int lt = tid - PB; /* the producer warp's lane */
        constexpr int SR = BM / 32; /* scale rows a lane */
        const int KG = K / G, spb = SK_W4M_BK / G;
        const uint32_t *q4s = reinterpret_cast<const uint32_t *>(p.q4s);
        const uint32_t *srow[SR];
        bool sok[SR];
#pragma unroll
        for (int j = 0; j < SR; j++) {
            const int r = lt + 32 * j;
            int n = n0 + r, lim = n;
            if (SW) lim = n0 + (r < BM / 2 ? r : r - BM / 2), n = lim + (r < BM / 2 ? 0 : N_out);
            sok[j] = lim < N_out;
            srow[j] = q4s + (size_t)(sok[j] ? n : 0) * KG;
        }
        const int rw1 = SW ? N_out + n0 : n0 + BM / 2;
        int slot = 0, round = 0;
        for (int kb = kb0; kb < kb1; kb++) {
            if (round > 0) sk_mb_wait(empty0 + 8u * slot, (uint32_t)(round - 1) & 1u);
            const uint32_t st = sm_a + (uint32_t)(slot * SB), fb = full0 + 8u * slot;
            if (lt == 0) {
                sk_mb_expect_tx(fb, (uint32_t)(BN * 256 + BM * 64));
                sk_tma_load_2d(st, &tmx, kb * SK_W4M_BK, t0, fb);
                sk_tma_load_2d(st + (uint32_t)(BN * 128), &tmx, kb * SK_W4M_BK + 64, t0, fb);
                sk_tma_load_4d(st + (uint32_t)(BN * 256), &tmw, 0, 0, kb, n0 >> 4, fb);
                sk_tma_load_4d(st + (uint32_t)(BN * 256 + BM * 32), &tmw, 0, 0, kb, rw1 >> 4, fb);
            }
#pragma unroll
            for (int j = 0; j < SR; j++)
                sk_w4ws_cpn(st + (uint32_t)(BN * 256 + BM * 64 + 16 * (lt + 32 * j)),
                            srow[j] + (size_t)kb * spb, 4 * spb, sok[j]);
            sk_w4ws_cp_arrive(fb);
            if (++slot == STAGES) slot = 0, round++;
        }
        asm volatile("cp.async.wait_all;\n" ::: "memory");
        return;
    }
    if (wg == PW) { /* NCW = 2 only (static_assert above) */
        /* ---- producer: sk_w4g_tile's copy plan for 128 threads: weight units tid + 128 j (rows
         * tid / 4 + 32 j, unit tid % 4; its scale word when tid % 4 < 128 / G), j = 0..3; x units
         * tid + 128 j (row tid / 16 + 8 j, unit tid % 16 -> half tid % 16 / 8, chunk tid % 8,
         * swizzled by the row) ---- */
        const int KG = K / G, spb = SK_W4M_BK / G;
        const H *x = static_cast<const H *>(p.x);
        const uint32_t *q4 = p.q4;
        const uint32_t *q4s = reinterpret_cast<const uint32_t *>(p.q4s);
        const int wu = tid & 3;
        int wrow[4];
        bool wok[4];
#pragma unroll
        for (int j = 0; j < 4; j++) {
            const int r = (tid >> 2) + 32 * j;
            int n = n0 + r, lim = n;
            if (SW) lim = n0 + (r < BM / 2 ? r : r - BM / 2), n = lim + (r < BM / 2 ? 0 : N_out);
            wok[j] = lim < N_out;
            wrow[j] = wok[j] ? n : 0;
        }
        constexpr int NXU = BN * 16 / 128;
        const int xu = tid & 15, xhalf = xu >> 3, xc = xu & 7, xr = tid >> 4;
        int slot = 0, round = 0; /* this K block's stage and use of it */
        for (int kb = kb0; kb < kb1; kb++) {
            if (round > 0) sk_mb_wait(empty0 + 8u * slot, (uint32_t)(round - 1) & 1u);
            const uint32_t st = sm_a + (uint32_t)(slot * SB);
            const int k0 = kb * SK_W4M_BK;
#pragma unroll
            for (int j = 0; j < NXU; j++) {
                const int r = xr + 8 * j;
                const bool ok = t0 + r < T;
                const uint32_t d =
                    st + (uint32_t)(xhalf * BN * 128 + r * 128 + ((xc ^ (r & 7)) << 4));
                sk_w4m_cp16(d, ok ? x + (size_t)(t0 + r) * K + k0 + 8 * xu : x, ok);
            }
#pragma unroll
            for (int j = 0; j < 4; j++) {
                const int i = tid + 128 * j;
                sk_w4m_cp16_pf(st + (uint32_t)(BN * 256 + 16 * i),
                               wok[j] ? q4 + sk_w4_widx(wrow[j], (k0 >> 3) + 4 * wu, K) : q4,
                               wok[j]);
                if (wu < spb)
                    sk_w4m_cp4(st + (uint32_t)(BN * 256 + BM * 64 + 4 * i),
                               wok[j] ? q4s + (size_t)wrow[j] * KG + kb * spb + wu : q4s, wok[j]);
            }
            sk_w4ws_cp_arrive(full0 + 8u * slot);
            if (++slot == STAGES) slot = 0, round++;
        }
        asm volatile("cp.async.wait_all;\n" ::: "memory");
        return;
    }

    /* ---- consumers: warpgroup cw = (tid - CB) / 128 owns rows 64 cw .. 64 cw + 63 ---- */
    if constexpr (PREG > 0)
        asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(CREG) : "memory");
    const int ctid = tid - CB, cwarp = ctid >> 5, lane = tid & 31;
    const int g = lane >> 2, q = lane & 3;
    const int sshift = G == 32 ? 0 : (G == 64 ? 1 : 2);
    const int r0 = 64 * (cwarp >> 2) + 16 * (cwarp & 3) + g; /* as sk_w4g_tile's r0 */
    float acc[BN / 2];
#pragma unroll
    for (int e = 0; e < BN / 2; e++) acc[e] = 0.0f;
    uint32_t aset[2][4][4];
#pragma unroll
    for (int hf = 0; hf < 2; hf++)
#pragma unroll
        for (int m = 0; m < 4; m++)
#pragma unroll
            for (int e = 0; e < 4; e++) aset[hf][m][e] = 0u;
    int slot = 0, pslot = 0;
    uint32_t fph = 0; /* parity of the full phase of the slot's current use */
    for (int kb = kb0; kb < kb1; kb++) {
        sk_mb_wait(full0 + 8u * slot, fph);
        if constexpr (!TMA)
            sk_wg_fence_proxy_async(); /* cp.async (generic proxy) writes -> wgmma (async proxy) */
        sk_w4ws_block<BN, BM, H>(acc, aset, sm + slot * SB, sm_a + (uint32_t)(slot * SB), r0, q,
                                 sshift, kb > kb0, empty0 + 8u * pslot);
        pslot = slot;
        if (++slot == STAGES) slot = 0, fph ^= 1u;
    }
    sk_wg_wait<0>();
    sk_wg_pin(acc);
    /* every consumer warpgroup is done with the ring (named barrier 1: the producer has left) */
    asm volatile("bar.sync 1, %0;\n" ::"n"(128 * NCW) : "memory");
    sk_w4ws_epilogue<BN, MODE, NCW>(p, acc, sm, ctid, r0, q, t0, n0, s_last);
}

/* ---- configurations and launcher ------------------------------------------------------------ */

/* Tile configurations (BM x BN block, WM x WN warps, stages); the backend picks one per T
 * (sk_w4m_pick), the workbench times them all. Those after SK_W4M_NCFG_BACKEND were measured
 * for comparison only (dev/cuda/gemm_w4.cu builds them with SK_W4M_ALL_CONFIGS). */
enum {
    SK_W4M_128x16,   /* 128 x 16,  4 x 1 warps (32 x 16 each), 4 stages */
    SK_W4M_128x32,   /* 128 x 32,  4 x 1 warps (32 x 32),      4 stages */
    SK_W4M_128x64,   /* 128 x 64,  4 x 1 warps (32 x 64),      4 stages */
    SK_W4M_G64,      /* sk_w4g_kernel: 128 x 64 on wgmma, 2 warpgroups, 4 stages (x permuted) */
    SK_W4M_G128,     /* sk_w4g_kernel: 128 x 128 on wgmma, 2 warpgroups, 5 stages (x permuted;
                      * session 7: 4 -> 5, same occupancy, one block an SM; dev_gemm_w4 time,
                      * two runs, as g128x128s5: 70B gate/up 626 -> 583 us at 256 rows, down
                      * 303 -> 294, 1-3% at 128 rows) */
    SK_W4M_G80,      /* sk_w4g_kernel 128 x 80 (session 6: batches a little over a tile) */
    SK_W4M_G96,      /* 128 x 96 */
    SK_W4M_G144,     /* 128 x 144 */
    SK_W4M_G160,     /* 128 x 160 */
    SK_W4M_G192,     /* 128 x 192, 3 stages (4 do not fit in shared memory) */
    SK_W4M_NCFG_BACKEND,
    SK_W4M_128x128 = SK_W4M_NCFG_BACKEND, /* 128 x 128, 4 x 2 warps (32 x 64), 4 stages */
    SK_W4M_128x64W8, /* 128 x 64, 4 x 2 warps (32 x 32), 4 stages */
    SK_W4M_128x16NP, /* 128 x 16 without the L2 256-byte prefetch */
    SK_W4M_128x16S6, /* 128 x 16, 6 stages */
    SK_W4M_G256x64,  /* sk_w4g_kernel: 256 x 64, 4 warpgroups (session 5: no faster than g128x64) */
    /* session 7 experiments (loads run STAGES - 2 K blocks ahead: is the K loop bound by load
     * latency?). No: at 32-256 rows on the 70B shapes (dev_gemm_w4 time, two runs) 6 and 8
     * stages at 128 x 64 are 5-25% slower than 4 (one block an SM instead of two), and one
     * warpgroup (64 x 64, twice the row tiles) 15-35% slower than 128 x 64; only 128 x 128
     * gains from a fifth stage (same occupancy). */
    SK_W4M_G64x64,    /* 64 x 64, 1 warpgroup, 4 stages (twice the row tiles of g128x64) */
    SK_W4M_G64x64S8,  /* 64 x 64, 1 warpgroup, 8 stages */
    SK_W4M_G128x64S6, /* 128 x 64, 6 stages (one block an SM) */
    SK_W4M_G128x64S8, /* 128 x 64, 8 stages */
    SK_W4M_G128x128S5, /* 128 x 128, 5 stages (the backend's g128x128 since session 7) */
    /* session 8: sk_w4ws_kernel, warp-specialized (a cp.async producer warpgroup, two consumer
     * warpgroups, mbarriers); x permuted. Correct, slower than sk_w4g_kernel (comparison only). */
    SK_W4M_WS64,   /* 128 x 64, 8 stages, one block an SM */
    SK_W4M_WS128,  /* 128 x 128, 5 stages, one block an SM */
    SK_W4M_WS64B2, /* 128 x 64, 4 stages, two blocks an SM (80 registers) */
    /* session 8: the same with a TMA producer warp (sk_w4ws_kernel's TMA): the backend's tiles
     * from 65 to 1024 rows (sk_w4m_pick) */
    SK_W4M_WT64,   /* 128 x 64, 8 stages */
    SK_W4M_WT128,  /* 128 x 128, 5 stages */
    SK_W4M_WT144,  /* 128 x 144, 4 stages */
    SK_W4M_WT80,   /* 128 x 80, 6 stages */
    SK_W4M_WT96,   /* 128 x 96, 6 stages */
    SK_W4M_WT160,  /* 128 x 160, 4 stages */
    SK_W4M_WT192,  /* 128 x 192, 3 stages */
    /* session 9: the same with three consumer warpgroups (sk_w4ws_kernel's NCW = 3: 192 weight
     * rows a block, 1.5x the weight rows per x tile; wc64 and wr144 comparison only) */
    SK_W4M_WC64,   /* 192 x 64, 7 stages, 416 threads (the producer warp last) */
    SK_W4M_WC96,   /* 192 x 96, 5 stages, 416 threads */
    SK_W4M_WC128,  /* 192 x 128, 4 stages, 416 threads */
    SK_W4M_WR128,  /* 192 x 128, 4 stages, 512 threads, setmaxnreg 40 / 152 */
    SK_W4M_WR144,  /* 192 x 144, 4 stages, 512 threads, setmaxnreg 40 / 152 */
    SK_W4M_WR160,  /* 192 x 160, 4 stages, 512 threads, setmaxnreg 40 / 152 */
    /* session 8's helper: one consumer warpgroup (NCW = 1: 64 weight rows, 160 threads, the
     * producer warp last), two blocks an SM */
    SK_W4M_WN64,   /* 64 x 64, 5 stages */
    SK_W4M_WN80,   /* 64 x 80, 4 stages */
    SK_W4M_WN96,   /* 64 x 96, 3 stages */
    SK_W4M_WN128,  /* 64 x 128, 3 stages */
    /* the design note's step 1 (dev/notes/w4_prefill_design.md; session 11): two consumer
     * warpgroups (NCW = 2, 128 weight rows) with setmaxnreg, 384 threads (the producer
     * warpgroup 0 at 40 registers, the consumers at 232); in the backend's cost table from 256
     * rows on. dev_gemm_w4 time (H200, session 11), wr128x256 against the session-10 pick:
     * 70B down at 1,024 rows 839 -> 671 us (cuBLAS bf16 664), gate/up 1,625 -> 1,452 (1,357),
     * o at 512 127 -> 106 (108) */
    SK_W4M_WR128x256, /* 128 x 256 (one m64n256k16 a k16 slice), 3 stages */
    SK_W4M_WR128x192, /* 128 x 192, 3 stages (4 do not fit) */
    SK_W4M_NCFG
};
static const char *const sk_w4m_cfg_name[SK_W4M_NCFG] = {
    "128x16", "128x32", "128x64", "g128x64", "g128x128", "g128x80", "g128x96", "g128x144",
    "g128x160", "g128x192", "128x128", "128x64w8", "128x16np", "128x16s6", "g256x64",
    "g64x64", "g64x64s8", "g128x64s6", "g128x64s8", "g128x128s5", "ws128x64", "ws128x128",
    "ws128x64b2", "wt128x64", "wt128x128", "wt128x144", "wt128x80", "wt128x96", "wt128x160",
    "wt128x192", "wc192x64", "wc192x96", "wc192x128", "wr192x128", "wr192x144", "wr192x160",
    "wn64x64", "wn64x80", "wn64x96", "wn64x128", "wr128x256", "wr128x192"};

/* Whether configuration cfg reads x permuted (sk_w4g_cast) and so needs K % 128 == 0. */
static inline bool sk_w4m_cfg_permuted(int cfg) {
    return cfg == SK_W4M_G64 || cfg == SK_W4M_G128 || cfg == SK_W4M_G80 || cfg == SK_W4M_G96 ||
           cfg == SK_W4M_G144 || cfg == SK_W4M_G160 || cfg == SK_W4M_G192 ||
           cfg == SK_W4M_G256x64 || (cfg >= SK_W4M_G64x64 && cfg <= SK_W4M_G128x128S5) ||
           cfg == SK_W4M_WS64 || cfg == SK_W4M_WS128 || cfg == SK_W4M_WS64B2 ||
           (cfg >= SK_W4M_WT64 && cfg <= SK_W4M_WR128x192);
}
static inline bool sk_w4m_cfg_fits(int cfg, int K) {
    return !sk_w4m_cfg_permuted(cfg) || K % SK_W4M_BK == 0;
}
/* Whether configuration cfg takes a product of N_out outputs: the TMA tiles' weight boxes start
 * tiles of the tile-major q4, so SwiGLU's up rows (N_out on) need N_out % 16 == 0. */
static inline bool sk_w4m_cfg_rows_ok(int cfg, int N_out, bool swiglu) {
    return !swiglu || N_out % 16 == 0 || cfg < SK_W4M_WT64 || cfg > SK_W4M_WR128x192;
}
/* Session 10: PDL between the x cast and the TMA tiles that read it (the cast triggers at its
 * start, both wait at theirs), so that the W4 kernel's launch and setup overlap the cast instead
 * of following it (four casts and four W4 launches a layer at mid batches). SAKER_W4M_PDL=0: off
 * (as before); SAKER_PDL=0 also turns it off. */
static inline bool sk_w4m_pdl(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("SAKER_W4M_PDL");
        on = !(e && *e && strcmp(e, "0") == 0);
    }
    return on && sk_pdl_enabled();
}
/* x [T][K] fp32 -> the permuted half copy the wgmma configurations read. */
template <typename H>
static void sk_w4g_cast(const float *x, H *xh, int T, int K, cudaStream_t s, bool gelu = false) {
    const size_t n8 = (size_t)T * K / 8;
    const unsigned blocks = (unsigned)(n8 < 65536 * 256 ? (n8 + 255) / 256 : 65536);
    void (*kern)(const float *, H *, int, int) =
        gelu ? sk_w4g_cast_kernel<H, true> : sk_w4g_cast_kernel<H, false>;
    if (sk_w4m_pdl())
        sk_launch_pdl_smem(kern, dim3(blocks), 256u, 0, s, x, xh, T, K);
    else
        kern<<<blocks, 256, 0, s>>>(x, xh, T, K);
}

/* Split-K scratch the caller preallocates (never grown inside a launch, so launches can be
 * captured in graphs): ws floats and cnt ints, cnt zeroed once. */
typedef struct sk_w4m_scratch {
    float *ws;
    size_t ws_floats;
    int *cnt;
    int cnt_n;
} sk_w4m_scratch;
#define SK_W4M_WS_FLOATS ((size_t)16 << 20) /* 64 MB (g128x128 splits 160 tiles of 16K floats) */
#define SK_W4M_CNT 8192
/* `splits` value asking sk_w4g_kernel's configurations for stream-K (others: as 0, automatic) */
#define SK_W4M_STREAMK (-1)

static inline int sk_w4m_sm_count(void) {
    static int n = 0;
    if (!n) {
        int dev = 0;
        if (cudaGetDevice(&dev) != cudaSuccess ||
            cudaDeviceGetAttribute(&n, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess || n < 1)
            n = 132;
    }
    return n;
}

/* Splits that minimise the makespan ceil(tiles * s / cap) / s (cap: blocks resident at once),
 * each split keeping at least 4 K blocks; ties to fewer splits. */
static inline int sk_w4m_splits(int tiles, int cap, int nkb) {
    int best = 1;
    double bc = 1e30;
    const int smax = nkb / 4 < 16 ? nkb / 4 : 16;
    for (int s = 1; s <= (smax > 1 ? smax : 1); s++) {
        const double c = (double)((tiles * s + cap - 1) / cap) / s * (1.0 + 0.02 * (s - 1));
        if (c < bc - 1e-9) bc = c, best = s;
    }
    return best;
}

/* Split-K for sk_w4g_kernel above 64 rows (session 6, dev_gemm_w4 bn on the 70B shapes at 70..192
 * rows): the makespan rule above split grids that already had more tiles than half the SMs (qkv's
 * 80 tiles in 3: 82.6 us against 75.6 unsplit at 70 rows; gate/up's 448 tiles in 2: 570 against
 * 389 at 139 rows), where the partials and their reduction cost more than the idle SMs. So: no
 * split above n_sm / 2 tiles; below, as many splits as fill the resident slots (o and down's 64
 * tiles: 2 at one block an SM), each at least 4 K blocks, at most 16. */
static inline int sk_w4g_splits(int tiles, int cap, int n_sm, int nkb) {
    if (tiles <= 0 || 2 * tiles > n_sm) return 1;
    int s = cap / tiles;
    if (s > nkb / 4) s = nkb / 4;
    if (s > 16) s = 16;
    return s < 1 ? 1 : s;
}

template <typename H, int BM, int BN, int WM, int WN, int STAGES, int PF, int MODE>
static void sk_w4m_run(const H *x, int T, const uint32_t *q4, const __half2 *q4s, int G,
                       const float *bias, int N_out, int K, float *out,
                       const sk_w4m_scratch *scr, int splits, cudaStream_t s) {
    constexpr int NTH = 32 * WM * WN;
    constexpr size_t SMEM = (size_t)STAGES * SK_W4M_STAGE_UNITS(BM, BN) * 16;
    void (*kern)(const sk_w4m_params) = sk_w4m_kernel<H, BM, BN, WM, WN, STAGES, PF, MODE>;
    static int occ = 0; /* resident blocks per SM */
    if (!occ) {
        if (cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)SMEM) !=
                cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kern, NTH, SMEM) != cudaSuccess ||
            occ < 1) {
            fprintf(stderr, "saker: w4 mma kernel %dx%d: cannot set up %zu bytes of shared memory\n",
                    BM, BN, SMEM);
            abort();
        }
    }
    const int RT = MODE == SK_GEMV_SWIGLU ? BM / 2 : BM;
    const int tn = (N_out + RT - 1) / RT, tt = (T + BN - 1) / BN, tiles = tn * tt;
    const int nkb = (K + SK_W4M_BK - 1) / SK_W4M_BK;
    /* 128 x 32 (17..32 rows), session 8 (dev_gemm_w4 bn at 17, 24, 32 rows, 70B and 7B): 4 splits
     * beat the makespan rule's 2-3 wherever each split keeps >= 16 K blocks (70B qkv 47.8-52.1 ->
     * 42.7-44.7 us, gate/up 187.9-214.0 -> 178.2-202.6; o and down even) or the 4 splits fit the
     * resident slots (7B o 19.0-20.1 -> 16.8-17.2, 7B qkv and down even); elsewhere (7B gate/up:
     * 344 tiles, 32 K blocks) the rule's 2 stay (4: 43.1 -> 48.4). At least 4 K blocks a split. */
    if (splits <= 0 && BN == 32 && nkb >= 16 &&
        (nkb >= 64 || tiles * 4 <= occ * sk_w4m_sm_count()))
        splits = 4;
    if (splits <= 0) splits = sk_w4m_splits(tiles, occ * sk_w4m_sm_count(), nkb);
    if (splits > nkb) splits = nkb;
    while (splits > 1 && (!scr || tiles > scr->cnt_n ||
                          (size_t)tiles * splits * BM * BN > scr->ws_floats))
        splits--;
    sk_w4m_params p;
    p.x = x, p.q4 = q4, p.q4s = q4s, p.bias = bias, p.out = out;
    p.ws = scr ? scr->ws : NULL, p.cnt = scr ? scr->cnt : NULL;
    p.G = G, p.T = T, p.N_out = N_out, p.K = K, p.splits = splits;
    kern<<<dim3((unsigned)tt, (unsigned)tn, (unsigned)splits), NTH, SMEM, s>>>(p);
}

template <typename H, int BN, int NWG, int STAGES, int MODE>
static void sk_w4g_run(const H *x, int T, const uint32_t *q4, const __half2 *q4s, int G,
                       const float *bias, int N_out, int K, float *out,
                       const sk_w4m_scratch *scr, int splits, cudaStream_t s) {
    constexpr int BM = 64 * NWG;
    constexpr size_t SMEM = (size_t)STAGES * SK_W4G_STAGE_BYTES(BM, BN) + 1024;
    void (*kern)(const sk_w4m_params) = sk_w4g_kernel<H, BN, NWG, STAGES, MODE, false>;
    static int occ = 0;
    if (!occ) {
        if (cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)SMEM) !=
                cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kern, 128 * NWG, SMEM) != cudaSuccess ||
            occ < 1) {
            fprintf(stderr, "saker: w4 wgmma kernel %dx%d: cannot set up %zu bytes of shared memory\n",
                    BM, BN, SMEM);
            abort();
        }
    }
    const int RT = MODE == SK_GEMV_SWIGLU ? BM / 2 : BM;
    const int tn = (N_out + RT - 1) / RT, tt = (T + BN - 1) / BN, tiles = tn * tt;
    const int nkb = K / SK_W4M_BK;
    if (splits == SK_W4M_STREAMK) { /* one block a resident slot, >= 4 K blocks each */
        void (*ksk)(const sk_w4m_params) = sk_w4g_kernel<H, BN, NWG, STAGES, MODE, true>;
        static int occ_sk = 0; /* its own occupancy */
        if (!occ_sk) {
            if (cudaFuncSetAttribute(ksk, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)SMEM) !=
                    cudaSuccess ||
                cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ_sk, ksk, 128 * NWG, SMEM) !=
                    cudaSuccess ||
                occ_sk < 1) {
                fprintf(stderr, "saker: w4 wgmma stream-K kernel %dx%d: cannot set up %zu bytes "
                                "of shared memory\n", BM, BN, SMEM);
                abort();
            }
        }
        const long long I = (long long)tiles * nkb;
        long long B = (long long)occ_sk * sk_w4m_sm_count();
        if (B > I / 4) B = I / 4;
        /* only where the tiles leave resident slots of the tiles' kernel idle */
        if (B >= 1 && tiles < occ * sk_w4m_sm_count() && scr && tiles <= scr->cnt_n &&
            (size_t)(2 * B) * BM * BN <= scr->ws_floats) {
            sk_w4m_params p;
            p.x = x, p.q4 = q4, p.q4s = q4s, p.bias = bias, p.out = out;
            p.ws = scr->ws, p.cnt = scr->cnt;
            p.G = G, p.T = T, p.N_out = N_out, p.K = K, p.splits = 1;
            ksk<<<dim3((unsigned)B, 1, 1), 128 * NWG, SMEM, s>>>(p);
            return;
        }
        splits = 0; /* enough tiles, or no room: the tiles */
    }
    /* up to 64 rows the makespan rule measured best (qkv's 80 tiles: 56.1 us in 3 splits against
     * 60.6 unsplit) except with more tiles than SMs (gate/up's 448 at 64 rows: 309 us in 2
     * splits, 231 unsplit; session 6, dev_gemm_w4 bn 33,48,64) */
    const int n_sm = sk_w4m_sm_count();
    if (splits <= 0)
        splits = T > 64        ? sk_w4g_splits(tiles, occ * n_sm, n_sm, nkb)
                 : tiles > n_sm ? 1
                                : sk_w4m_splits(tiles, occ * n_sm, nkb);
    if (splits > nkb) splits = nkb;
    while (splits > 1 && (!scr || tiles > scr->cnt_n ||
                          (size_t)tiles * splits * BM * BN > scr->ws_floats))
        splits--;
    sk_w4m_params p;
    p.x = x, p.q4 = q4, p.q4s = q4s, p.bias = bias, p.out = out;
    p.ws = scr ? scr->ws : NULL, p.cnt = scr ? scr->cnt : NULL;
    p.G = G, p.T = T, p.N_out = N_out, p.K = K, p.splits = splits;
    kern<<<dim3((unsigned)tt, (unsigned)tn, (unsigned)splits), 128 * NWG, SMEM, s>>>(p);
}

/* sk_w4ws_kernel's launcher (sk_w4g_run without stream-K: SK_W4M_STREAMK counts as 0, the
 * automatic split, so that the workbench's split options all run): grid (ceil(T / BN),
 * ceil(N_out / RT), splits), RT = BM = 64 NCW (BM / 2 with SWIGLU), SK_W4WS_NTH(NCW, PREG)
 * threads (384; 416, or 512 with PREG), STAGES * SK_W4G_STAGE_BYTES(BM, BN) + 1024 bytes of
 * dynamic shared memory; the split rule and the scratch limits of sk_w4g_run. The tensor maps
 * (TMA) are built per launch: x in boxes of 64 columns x BN rows, the words in boxes of 16 words
 * x BM / 2 rows. */
static inline CUtensorMapDataType sk_w4ws_dtype(const __half *) {
    return CU_TENSOR_MAP_DATA_TYPE_FLOAT16;
}
static inline CUtensorMapDataType sk_w4ws_dtype(const __nv_bfloat16 *) {
    return CU_TENSOR_MAP_DATA_TYPE_BFLOAT16;
}
template <typename H, int BN, int STAGES, int MINB, int MODE, bool TMA = false, int NCW = 2,
          int PREG = 0>
static void sk_w4ws_run(const H *x, int T, const uint32_t *q4, const __half2 *q4s, int G,
                        const float *bias, int N_out, int K, float *out,
                        const sk_w4m_scratch *scr, int splits, cudaStream_t s) {
    constexpr int BM = 64 * NCW, NTH = SK_W4WS_NTH(NCW, PREG);
    constexpr size_t SMEM = (size_t)STAGES * SK_W4G_STAGE_BYTES(BM, BN) + 1024;
    void (*kern)(const sk_w4m_params, const CUtensorMap, const CUtensorMap) =
        sk_w4ws_kernel<H, BN, STAGES, MINB, MODE, TMA, NCW, PREG>;
    static int occ = 0;
    if (!occ) {
        /* MINB > 1 (wn64x128: 2 x 115,776 of the SM's 233,472 bytes) needs the largest shared-
         * memory carveout; ask for it (a preference: the occupancy query below says what came of
         * it). */
        if (MINB > 1)
            (void)cudaFuncSetAttribute(kern, cudaFuncAttributePreferredSharedMemoryCarveout,
                                       (int)cudaSharedmemCarveoutMaxShared);
        if (cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)SMEM) !=
                cudaSuccess ||
            cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, kern, NTH, SMEM) != cudaSuccess ||
            occ < 1) {
            fprintf(stderr, "saker: w4 warp-specialized kernel %dx%d: cannot set up %zu bytes of "
                            "shared memory\n", BM, BN, SMEM);
            abort();
        }
        if (PREG) { /* setmaxnreg's budget (the kernel's CREG) must fit what the launch allocates:
                     * with fewer registers a thread at launch (a -maxrregcount, other launch
                     * bounds) the consumers' setmaxnreg.inc would wait forever. A review's
                     * suggestion (session 8). */
            const int creg0 = PREG ? (65536 - 128 * PREG) / (128 * NCW) / 8 * 8 : 0;
            const int creg = creg0 > 256 ? 256 : creg0;
            cudaFuncAttributes fa;
            fa.numRegs = 0;
            if (cudaFuncGetAttributes(&fa, kern) != cudaSuccess ||
                fa.numRegs * NTH < creg * 128 * NCW + PREG * 128) {
                fprintf(stderr, "saker: w4 warp-specialized kernel %dx%d: %d registers a thread at "
                                "launch cannot fund setmaxnreg %d / %d\n",
                        BM, BN, fa.numRegs, PREG, creg);
                abort();
            }
        }
        if (occ < MINB) /* the stage count was picked for MINB blocks an SM: say so once */
            fprintf(stderr, "saker: w4 warp-specialized kernel %dx%d: %d blocks an SM, not %d\n",
                    BM, BN, occ, MINB);
    }
    const int RT = MODE == SK_GEMV_SWIGLU ? BM / 2 : BM;
    const int tn = (N_out + RT - 1) / RT, tt = (T + BN - 1) / BN, tiles = tn * tt;
    const int nkb = K / SK_W4M_BK;
    const int n_sm = sk_w4m_sm_count();
    if (splits == SK_W4M_STREAMK) splits = 0;
    if (splits <= 0)
        splits = T > 64        ? sk_w4g_splits(tiles, occ * n_sm, n_sm, nkb)
                 : tiles > n_sm ? 1
                                : sk_w4m_splits(tiles, occ * n_sm, nkb);
    if (splits > nkb) splits = nkb; /* every split at least one K block */
    while (splits > 1 && (!scr || tiles > scr->cnt_n ||
                          (size_t)tiles * splits * BM * BN > scr->ws_floats))
        splits--;
    sk_w4m_params p;
    p.x = x, p.q4 = q4, p.q4s = q4s, p.bias = bias, p.out = out;
    p.ws = scr ? scr->ws : NULL, p.cnt = scr ? scr->cnt : NULL;
    p.G = G, p.T = T, p.N_out = N_out, p.K = K, p.splits = splits;
    CUtensorMap tmx, tmw;
    memset(&tmx, 0, sizeof tmx), memset(&tmw, 0, sizeof tmw);
    if (TMA) {
        static PFN_cuTensorMapEncodeTiled_v12000 encode = NULL;
        if (!encode) {
            cudaDriverEntryPointQueryResult q;
            void *fn = NULL;
            if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                                 cudaEnableDefault, &q) != cudaSuccess ||
                q != cudaDriverEntryPointSuccess || !fn) {
                fprintf(stderr, "saker: w4 TMA kernel: no cuTensorMapEncodeTiled\n");
                abort();
            }
            encode = (PFN_cuTensorMapEncodeTiled_v12000)fn;
        }
        const cuuint32_t estr[2] = {1, 1};
        const cuuint64_t xd[2] = {(cuuint64_t)K, (cuuint64_t)T}, xs[1] = {(cuuint64_t)K * 2};
        const cuuint32_t xb[2] = {64, (cuuint32_t)BN};
        /* the tile-major q4 (w4_layout.h) as [tiles][K / 128 steps][16 rows][16 words]; a box of
         * 16 words x 16 rows x 1 step x BM / 32 tiles lands as [BM / 2 rows][16 words], the image
         * a row-major map's 16 x BM / 2 box gave. Box rows start tiles: n0 and N_out + n0 (SwiGLU's
         * up rows, N_out % 16 == 0: sk_w4m_cfg_rows_ok) are multiples of 16. */
        const int64_t rows = (int64_t)N_out * (MODE == SK_GEMV_SWIGLU ? 2 : 1);
        const cuuint32_t e4[4] = {1, 1, 1, 1};
        const cuuint64_t wd[4] = {16, 16, (cuuint64_t)K / 128, (cuuint64_t)(rows + 15) / 16};
        const cuuint64_t ws[3] = {64, 1024, (cuuint64_t)K * 8};
        const cuuint32_t wb[4] = {16, 16, 1, (cuuint32_t)BM / 32};
        if (MODE == SK_GEMV_SWIGLU && N_out % 16 != 0) {
            fprintf(stderr, "saker: w4 TMA kernel: SwiGLU with N_out %d (not a multiple of 16)\n", N_out);
            abort();
        }
        if (encode(&tmx, sk_w4ws_dtype((const H *)nullptr),
                   2, (void *)x, xd, xs, xb, estr, CU_TENSOR_MAP_INTERLEAVE_NONE,
                   CU_TENSOR_MAP_SWIZZLE_128B, CU_TENSOR_MAP_L2_PROMOTION_L2_256B,
                   CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) != CUDA_SUCCESS ||
            encode(&tmw, CU_TENSOR_MAP_DATA_TYPE_UINT32, 4, (void *)q4, wd, ws, wb, e4,
                   CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                   CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) !=
                CUDA_SUCCESS) {
            fprintf(stderr, "saker: w4 TMA kernel: tensor map (T %d, N_out %d, K %d)\n", T, N_out, K);
            abort();
        }
    }
    if (sk_w4m_pdl())
        sk_launch_pdl_smem(kern, dim3((unsigned)tt, (unsigned)tn, (unsigned)splits), NTH, SMEM, s,
                           p, tmx, tmw);
    else
        kern<<<dim3((unsigned)tt, (unsigned)tn, (unsigned)splits), NTH, SMEM, s>>>(p, tmx, tmw);
}

/* out = x W^T in mode MODE with configuration cfg (splits <= 0: chosen here). Needs K % 32 == 0,
 * G in {32, 64, 128}, x and q4 16-byte aligned, ceil(N_out / RT) < 65536. */
template <typename H, int MODE>
static void sk_w4m_launch(int cfg, const H *x, int T, const uint32_t *q4, const __half2 *q4s,
                          int G, const float *bias, int N_out, int K, float *out,
                          const sk_w4m_scratch *scr, int splits, cudaStream_t s) {
#define SK_W4M_CASE(id, BM, BN, WM, WN, ST, PF)                                                    \
    case id:                                                                                       \
        sk_w4m_run<H, BM, BN, WM, WN, ST, PF, MODE>(x, T, q4, q4s, G, bias, N_out, K, out, scr,    \
                                                    splits, s);                                    \
        break;
#define SK_W4G_CASE(id, BN, NWG, ST)                                                               \
    case id:                                                                                       \
        sk_w4g_run<H, BN, NWG, ST, MODE>(x, T, q4, q4s, G, bias, N_out, K, out, scr, splits, s);   \
        break;
    switch (cfg) {
        SK_W4M_CASE(SK_W4M_128x16, 128, 16, 4, 1, 4, 1)
        SK_W4M_CASE(SK_W4M_128x32, 128, 32, 4, 1, 4, 1)
        SK_W4G_CASE(SK_W4M_G64, 64, 2, 4)
        SK_W4G_CASE(SK_W4M_G128, 128, 2, 5)
        SK_W4G_CASE(SK_W4M_G80, 80, 2, 4)
        SK_W4G_CASE(SK_W4M_G96, 96, 2, 4)
        SK_W4G_CASE(SK_W4M_G144, 144, 2, 4)
        SK_W4G_CASE(SK_W4M_G160, 160, 2, 4)
        SK_W4G_CASE(SK_W4M_G192, 192, 2, 3)
        case SK_W4M_WT64:
            sk_w4ws_run<H, 64, 8, 1, MODE, true>(x, T, q4, q4s, G, bias, N_out, K, out, scr, splits, s);
            break;
        case SK_W4M_WT128:
            sk_w4ws_run<H, 128, 5, 1, MODE, true>(x, T, q4, q4s, G, bias, N_out, K, out, scr, splits, s);
            break;
        case SK_W4M_WT144:
            sk_w4ws_run<H, 144, 4, 1, MODE, true>(x, T, q4, q4s, G, bias, N_out, K, out, scr, splits, s);
            break;
        case SK_W4M_WT80:
            sk_w4ws_run<H, 80, 6, 1, MODE, true>(x, T, q4, q4s, G, bias, N_out, K, out, scr, splits, s);
            break;
        case SK_W4M_WT96:
            sk_w4ws_run<H, 96, 6, 1, MODE, true>(x, T, q4, q4s, G, bias, N_out, K, out, scr, splits, s);
            break;
        case SK_W4M_WT160:
            sk_w4ws_run<H, 160, 4, 1, MODE, true>(x, T, q4, q4s, G, bias, N_out, K, out, scr, splits, s);
            break;
        case SK_W4M_WT192:
            sk_w4ws_run<H, 192, 3, 1, MODE, true>(x, T, q4, q4s, G, bias, N_out, K, out, scr, splits, s);
            break;
        case SK_W4M_WC96:
            sk_w4ws_run<H, 96, 5, 1, MODE, true, 3>(x, T, q4, q4s, G, bias, N_out, K, out, scr,
                                                    splits, s);
            break;
        case SK_W4M_WC128:
            sk_w4ws_run<H, 128, 4, 1, MODE, true, 3>(x, T, q4, q4s, G, bias, N_out, K, out, scr,
                                                     splits, s);
            break;
        case SK_W4M_WR128:
            sk_w4ws_run<H, 128, 4, 1, MODE, true, 3, 40>(x, T, q4, q4s, G, bias, N_out, K, out,
                                                         scr, splits, s);
            break;
        case SK_W4M_WN64:
            sk_w4ws_run<H, 64, 5, 2, MODE, true, 1>(x, T, q4, q4s, G, bias, N_out, K, out, scr,
                                                    splits, s);
            break;
        case SK_W4M_WN80:
            sk_w4ws_run<H, 80, 4, 2, MODE, true, 1>(x, T, q4, q4s, G, bias, N_out, K, out, scr,
                                                    splits, s);
            break;
        case SK_W4M_WN96:
            sk_w4ws_run<H, 96, 3, 2, MODE, true, 1>(x, T, q4, q4s, G, bias, N_out, K, out, scr,
                                                    splits, s);
            break;
        case SK_W4M_WN128:
            sk_w4ws_run<H, 128, 3, 2, MODE, true, 1>(x, T, q4, q4s, G, bias, N_out, K, out, scr,
                                                     splits, s);
            break;
        case SK_W4M_WR160:
            sk_w4ws_run<H, 160, 4, 1, MODE, true, 3, 40>(x, T, q4, q4s, G, bias, N_out, K, out,
                                                         scr, splits, s);
            break;
        case SK_W4M_WR128x256:
            sk_w4ws_run<H, 256, 3, 1, MODE, true, 2, 40>(x, T, q4, q4s, G, bias, N_out, K, out,
                                                         scr, splits, s);
            break;
        case SK_W4M_WR128x192:
            sk_w4ws_run<H, 192, 3, 1, MODE, true, 2, 40>(x, T, q4, q4s, G, bias, N_out, K, out,
                                                         scr, splits, s);
            break;
#ifdef SK_W4M_ALL_CONFIGS
        case SK_W4M_WC64:
            sk_w4ws_run<H, 64, 7, 1, MODE, true, 3>(x, T, q4, q4s, G, bias, N_out, K, out, scr,
                                                    splits, s);
            break;
        case SK_W4M_WR144:
            sk_w4ws_run<H, 144, 4, 1, MODE, true, 3, 40>(x, T, q4, q4s, G, bias, N_out, K, out,
                                                         scr, splits, s);
            break;
        SK_W4G_CASE(SK_W4M_G256x64, 64, 4, 4)
        SK_W4G_CASE(SK_W4M_G64x64, 64, 1, 4)
        SK_W4G_CASE(SK_W4M_G64x64S8, 64, 1, 8)
        SK_W4G_CASE(SK_W4M_G128x64S6, 64, 2, 6)
        SK_W4G_CASE(SK_W4M_G128x64S8, 64, 2, 8)
        SK_W4G_CASE(SK_W4M_G128x128S5, 128, 2, 5)
        case SK_W4M_WS64:
            sk_w4ws_run<H, 64, 8, 1, MODE>(x, T, q4, q4s, G, bias, N_out, K, out, scr, splits, s);
            break;
        case SK_W4M_WS128:
            sk_w4ws_run<H, 128, 5, 1, MODE>(x, T, q4, q4s, G, bias, N_out, K, out, scr, splits, s);
            break;
        case SK_W4M_WS64B2:
            sk_w4ws_run<H, 64, 4, 2, MODE>(x, T, q4, q4s, G, bias, N_out, K, out, scr, splits, s);
            break;
        SK_W4M_CASE(SK_W4M_128x128, 128, 128, 4, 2, 4, 1)
        SK_W4M_CASE(SK_W4M_128x64W8, 128, 64, 4, 2, 4, 1)
        SK_W4M_CASE(SK_W4M_128x16NP, 128, 16, 4, 1, 4, 0)
        SK_W4M_CASE(SK_W4M_128x16S6, 128, 16, 4, 1, 6, 1)
#endif
        default:
        SK_W4M_CASE(SK_W4M_128x64, 128, 64, 4, 1, 4, 1)
    }
#undef SK_W4M_CASE
#undef SK_W4G_CASE
}

/* Whether the MMA path can take the product: K % 32 == 0 (whole words per lane; G divides K and
 * is a multiple of 32), a group size it knows, T >= 1. */
static inline bool sk_w4m_ok(int T, int K, int G) {
    return T >= 1 && K % 32 == 0 && (G == 32 || G == 64 || G == 128);
}

/* The configuration for T rows, or -1 where dequantize + cuBLASLt measured faster. From
 * dev/cuda/gemm_w4.cu on the H200 (bench/results/awq-speed.md, Llama-2-70B shapes, 2026-11-29):
 * 128x16 is the fastest tile at T <= 16, 128x32 at 32, 128x64 at 64 and 128 (128x128 loses to it
 * at 128); against w4.cuh's dequantize + cuBLASLt the MMA path wins up to T = 128 (1.15-1.32x
 * there) and loses from T = 256 on (0.59-0.82x; the crossover extrapolates to ~140-180 rows). */
/* Session 5 (same workbench, the 70B shapes at 32..1024 rows, two runs): the wgmma kernel wins
 * from 33 rows on where K % 128 == 0: at 64 rows g128x64 takes 48.8-238 us against 128x64's
 * 50.9-281 (gate/up -15..-28%, down -15%, qkv even), at 128 rows 72.3-422 against 80.7-475;
 * at 256 rows g128x128 beats dequantize + cuBLASLt on o, gate/up and down (94.7 / 620 / 302 us
 * against 112 / 675 / 364) but not on qkv (182-214 against 136: its 160 tiles are 1.2 waves of
 * one block an SM, split-K or not); from 512 rows dequantize + cuBLASLt wins everywhere. So
 * 129..256 rows take g128x128 unless the tiles fill between one and two waves. At 32 rows
 * 128x32 stays (faster on 3 of 4 shapes). */
#define SK_W4M_MAX_T 256
static inline int sk_w4m_pick5(int T, int N_out, int K) {
    if (T <= 16) return SK_W4M_128x16;
    if (T <= 32) return SK_W4M_128x32;
    if (K % SK_W4M_BK == 0) {
        if (T <= 128) return SK_W4M_G64;
        if (T > SK_W4M_MAX_T) return -1;
        const int tiles = (N_out + 127) / 128 * ((T + 127) / 128), n_sm = sk_w4m_sm_count();
        return tiles > n_sm && tiles < 2 * n_sm ? -1 : SK_W4M_G128;
    }
    if (T <= 128) return SK_W4M_128x64;
    return -1;
}
/* Session 6: batches a little over a tile width ran mostly padding (139 rows as two 128-wide
 * tiles: 256 rows of work; 70 rows as two of 64). wgmma's N can be any multiple of 8, so
 * sk_w4g_kernel now also takes x tiles 80, 96, 144, 160 and 192 wide (a second 16/32/64-wide
 * wgmma per k16 slice). Measured (dev_gemm_w4 bn, 70B shapes at 70..192 rows, with
 * sk_w4g_splits): qkv, gate/up and down are fastest as one tile of the smallest width >= T
 * (139 rows: qkv 96.2 us against session 5's 202, gate/up 389 against 573, down 229 against
 * 306), except qkv above 160 rows (3 tiles of 64: 96.6 against 120; a short K with fewer
 * 128-row tiles than SMs); o (8192 x 8192) is fastest
 * in narrow tiles (139 rows: 2 x 80, 88.4 against 107). The rule keeps that split by shape: a
 * product whose K is at most 8192 and at least N_out (o-like: few row tiles, short K) takes
 * 64 / 80 / 96-wide tiles; the others one wide tile. Up to 64 rows and from 193 on: session 5's
 * picks (sk_w4m_pick5). */
static inline int sk_w4m_pick6(int T, int N_out, int K) {
    if (K % SK_W4M_BK != 0 || T <= 64 || T > 192) return sk_w4m_pick5(T, N_out, K);
    if (N_out <= K && K <= 8192) return T <= 128 ? SK_W4M_G64 : T <= 160 ? SK_W4M_G80 : SK_W4M_G96;
    if (T <= 80) return SK_W4M_G80;
    if (T <= 96) return SK_W4M_G96;
    if (T <= 128) return SK_W4M_G128;
    if (T <= 144) return SK_W4M_G144;
    if (T <= 160) return SK_W4M_G160;
    /* 161..192: qkv (80 row tiles, short K) is faster as 3 tiles of 64 (240 blocks) */
    return K <= 8192 && (N_out + 127) / 128 < sk_w4m_sm_count() ? SK_W4M_G64 : SK_W4M_G192;
}

/* Session 8: the warp-specialized kernel with the TMA producer (sk_w4ws_kernel, wt*) from 65 to
 * 1024 rows. dev_gemm_w4 time on the H200, 70B shapes at 72..1024 rows, two runs (bench/results/
 * awq-speed.md): it beats session 6's picks at every shape from 72 rows (139 rows: qkv 100 ->
 * 67 us, o 89 -> 57, gate/up 385 -> 256, down 214 -> 158) and dequantize + cuBLASLt up to
 * 1024 rows (gate/up 1618 against 1740 us, down 782 against 868). Widths, by the measured best:
 * o-like products (K <= 8192 and N_out <= K: few row tiles) in narrow tiles (64 up to 128 rows,
 * 96 to 192, 128 to 256, 192 to 384, then 128); the others in one tile of the smallest width
 * >= T up to 192 rows (192: down 5% behind two tiles of 96), 128 to 256, then 192 to 384 (qkv,
 * K <= 8192 with fewer row tiles than SMs: 128, 123 against 154 us), then 128. At 64 rows and
 * below session 5's tiles stay (wt128x64 even with g128x64 there). SAKER_W4_TMA=0 in matmul.cu
 * takes sk_w4m_pick6 instead. */
#define SK_W4M_WT_MAX_T 1024
static inline int sk_w4m_pick8(int T, int N_out, int K) {
    if (K % SK_W4M_BK != 0 || T <= 64 || T > SK_W4M_WT_MAX_T) return sk_w4m_pick5(T, N_out, K);
    if (N_out <= K && K <= 8192)
        return T <= 128 ? SK_W4M_WT64 : T <= 192 ? SK_W4M_WT96 : T <= 256 ? SK_W4M_WT128
               : T <= 384 ? SK_W4M_WT192 : SK_W4M_WT128;
    if (T <= 80) return SK_W4M_WT80;
    if (T <= 96) return SK_W4M_WT96;
    if (T <= 128) return SK_W4M_WT128;
    if (T <= 144) return SK_W4M_WT144;
    if (T <= 160) return SK_W4M_WT160;
    if (T <= 192) return SK_W4M_WT192;
    if (T <= 256) return SK_W4M_WT128;
    if (T <= 384)
        return K <= 8192 && (N_out + 127) / 128 < sk_w4m_sm_count() ? SK_W4M_WT128 : SK_W4M_WT192;
    return SK_W4M_WT128;
}

/* Session 9: the TMA kernel in three widths of weight rows (wn64xBN: one consumer warpgroup,
 * two blocks an SM; wt128xBN; wc192xBN / wr192xBN: three consumer warpgroups, wr with setmaxnreg)
 * and a pick from a cost model instead of rules by shape class. dev_gemm_w4 bn on the H200
 * (bench/results/awq-speed.md, session 9: Llama-2-70B and 7B shapes in the backend's modes,
 * 33..1024 rows, 17 configurations) showed the time is set by how the blocks fall on the SMs:
 * qkv at 256 rows: 2 x 80 tiles of wt128x128 are two rounds (116 us), 2 x 54 of wr192x128 one
 * (77 us); 7B o at 320 rows: wt128x192 78 us, wn64x80 31. The model: a configuration (BM weight
 * rows, BN tokens, occ blocks an SM) splits K as its launcher does (s splits of nkb / s K
 * blocks), puts ceil(tiles s / n_sm) blocks on the busiest SM, and costs
 *     us = ceil(tiles s / n_sm) (a nkb / s + b) + (s > 1 ? e : 0)
 * with a, b, e fitted per configuration (least squares on relative error) to those 1,408
 * timings (dev/notes/w4_cost_model.py refits them from bench/results/data/w4_bn_s9_*.log); for the two-an-SM wn tiles the blocks on the busiest SM run as pairs (a, b) and
 * the odd one alone (a1, b1): a lone 64-row block is latency-bound (wn64x64: 0.46 us a K block
 * alone, 0.70 a pair). The first fit (one a, b for wn) picked wn64x80 for 70B down at 72 rows,
 * 7 us slower in the workbench and ~20 us a layer in the engine (batch 72: 39.7 ms ITL against
 * 38.2 with wn excluded for down only). Its pick is within 1.0% of the measured best on average
 * (worst 17%, at 33 rows; session 10's refits: adding the unsplit time of every tile at 33-256
 * rows and choosing the split too, 1.0%, worst 16%; then, with the split reduction vectorized
 * (sk_w4ws_epilogue: e fell from 19-57 to 6-13 us), every tile at 1-4 splits at 33-512 rows from
 * bench/results/data/w4_bn_s10b_*.log: 1.5%, worst 23%, at 33 rows; session 11, with wr128x256
 * and wr128x192 and w4_bn_s11_*.log, 256-2,048 rows: 1.7%, worst 23%),
 * where session 8's rules were 3-53% behind per shape (sums over the row counts: 70B qkv 1.13x,
 * o 1.11x, gate/up 1.03x, down 1.09x; 7B 1.17-1.53x). The coefficients are the H200's (n_sm =
 * 132, the measured clocks); on another GPU the model still ranks by waves, less exactly.
 * nw: the weight rows (SWIGLU: both halves, 2 N_out). */
typedef struct sk_w4m_cost {
    int cfg, bm, bn, occ;
    float a, b, e;
    float a1, b1; /* occ = 2: a block alone on its SM (a, b: two sharing one) */
} sk_w4m_cost;
static const sk_w4m_cost sk_w4m_costs[] = {
    {SK_W4M_WN64, 64, 64, 2, 0.6954f, 3.481f, 5.94f, 0.5078f, 4.561f},
    {SK_W4M_WN80, 64, 80, 2, 0.8069f, 4.217f, 6.69f, 0.5493f, 5.318f},
    {SK_W4M_WN96, 64, 96, 2, 0.9341f, 4.515f, 8.40f, 0.6595f, 5.442f},
    {SK_W4M_WN128, 64, 128, 2, 1.1372f, 4.782f, 11.58f, 0.7764f, 5.137f},
    {SK_W4M_WT64, 128, 64, 1, 0.7034f, 3.614f, 6.37f, 0, 0},
    {SK_W4M_WT80, 128, 80, 1, 0.7503f, 4.440f, 7.16f, 0, 0},
    {SK_W4M_WT96, 128, 96, 1, 0.7673f, 5.026f, 7.73f, 0, 0},
    {SK_W4M_WT128, 128, 128, 1, 0.8465f, 6.170f, 9.57f, 0, 0},
    {SK_W4M_WT144, 128, 144, 1, 0.9265f, 6.953f, 10.44f, 0, 0},
    {SK_W4M_WT160, 128, 160, 1, 0.9759f, 7.412f, 10.96f, 0, 0},
    {SK_W4M_WT192, 128, 192, 1, 1.1449f, 8.680f, 13.45f, 0, 0},
    {SK_W4M_WC96, 192, 96, 1, 1.0287f, 6.569f, 8.86f, 0, 0},
    {SK_W4M_WC128, 192, 128, 1, 1.1519f, 7.690f, 10.60f, 0, 0},
    {SK_W4M_WR128, 192, 128, 1, 1.1053f, 7.808f, 10.84f, 0, 0},
    {SK_W4M_WR160, 192, 160, 1, 1.2811f, 9.367f, 12.68f, 0, 0},
    {SK_W4M_WR128x256, 128, 256, 1, 1.4023f, 10.080f, 20.83f, 0, 0},
    {SK_W4M_WR128x192, 128, 192, 1, 1.1591f, 6.611f, 20.12f, 0, 0},
};
/* Session 11: the same model refitted on 512 rows and more only (dev/notes/w4_cost_model.py,
 * BIG_T; configurations measured at two row counts or more there), whose coefficients replace the
 * table's from SK_W4M_BIG_T rows on. On the bn logs (sessions 9-11) the picks at 512-2,048 rows
 * come within 0.7% of the measured best on average (worst 8%) against 1.3% (worst 10%) with one
 * set; fitted on one model's shapes only, 0.5-0.9% on the other's. At 1,146 rows (the 128/128
 * point's decode batch) it takes wr128x192 for 70B down (766 us measured against the one set's
 * wr192x128, 832) and for qkv (290 against 319). NOT YET MEASURED IN THE ENGINE:
 * SAKER_W4_MODEL_BIG=1 turns it on (default off until an engine A/B). */
#define SK_W4M_BIG_T 512
static const sk_w4m_cost sk_w4m_costs_big[] = {
    {SK_W4M_WN64, 64, 64, 2, 0.6868f, 2.298f, 11.93f, 0.4127f, 3.441f},
    {SK_W4M_WN80, 64, 80, 2, 0.7579f, 3.220f, 14.71f, 0.6196f, -0.800f},
    {SK_W4M_WN96, 64, 96, 2, 0.8893f, 2.985f, 19.80f, 0.8306f, 5.603f},
    {SK_W4M_WN128, 64, 128, 2, 1.0154f, 2.327f, 12.01f, 0.7159f, 3.842f},
    {SK_W4M_WT64, 128, 64, 1, 0.7202f, 2.620f, 15.32f, 0, 0},
    {SK_W4M_WT80, 128, 80, 1, 0.7793f, 3.038f, 16.68f, 0, 0},
    {SK_W4M_WT96, 128, 96, 1, 0.7844f, 4.010f, 17.84f, 0, 0},
    {SK_W4M_WT128, 128, 128, 1, 0.8664f, 5.137f, 18.37f, 0, 0},
    {SK_W4M_WT144, 128, 144, 1, 0.9332f, 5.728f, 14.84f, 0, 0},
    {SK_W4M_WT160, 128, 160, 1, 0.9652f, 6.631f, 16.08f, 0, 0},
    {SK_W4M_WT192, 128, 192, 1, 1.1376f, 6.851f, 19.50f, 0, 0},
    {SK_W4M_WC96, 192, 96, 1, 1.0660f, 4.977f, 14.40f, 0, 0},
    {SK_W4M_WC128, 192, 128, 1, 1.2214f, 5.871f, 18.90f, 0, 0},
    {SK_W4M_WR128, 192, 128, 1, 1.1587f, 6.433f, 18.78f, 0, 0},
    {SK_W4M_WR160, 192, 160, 1, 1.3301f, 8.409f, 20.16f, 0, 0},
    {SK_W4M_WR128x256, 128, 256, 1, 1.4122f, 9.772f, 23.55f, 0, 0},
    {SK_W4M_WR128x192, 128, 192, 1, 1.1591f, 5.932f, 23.66f, 0, 0},
};
/* Entry i of sk_w4m_costs, or its sk_w4m_costs_big twin at SK_W4M_BIG_T rows and more when
 * SAKER_W4_MODEL_BIG=1. */
static inline const sk_w4m_cost *sk_w4m_cost_at(size_t i, int T) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("SAKER_W4_MODEL_BIG");
        on = e && strcmp(e, "1") == 0;
    }
    if (on && T >= SK_W4M_BIG_T)
        for (size_t j = 0; j < sizeof sk_w4m_costs_big / sizeof sk_w4m_costs_big[0]; j++)
            if (sk_w4m_costs_big[j].cfg == sk_w4m_costs[i].cfg) return &sk_w4m_costs_big[j];
    return &sk_w4m_costs[i];
}
/* The model's microseconds for configuration c in s_force splits of K (0: its launcher's split
 * rule, sk_w4ws_run). */
static inline double sk_w4m_cost_us(const sk_w4m_cost *c, int T, int nw, int K, int n_sm,
                                    int s_force = 0) {
    const int tiles = (nw + c->bm - 1) / c->bm * ((T + c->bn - 1) / c->bn), nkb = K / SK_W4M_BK;
    int s = s_force > 0    ? s_force
            : T > 64       ? sk_w4g_splits(tiles, c->occ * n_sm, n_sm, nkb)
            : tiles > n_sm ? 1
                           : sk_w4m_splits(tiles, c->occ * n_sm, nkb);
    if (s > nkb) s = nkb;
    while (s > 1 && (tiles > SK_W4M_CNT || (size_t)tiles * s * c->bm * c->bn > SK_W4M_WS_FLOATS))
        s--; /* the launcher's scratch limits */
    if (s < 1) s = 1;
    const int per_sm = (tiles * s + n_sm - 1) / n_sm;
    const double kb = (double)nkb / s, split = s > 1 ? c->e : 0.0;
    if (c->occ == 2) /* pairs sharing an SM, and the odd one out alone */
        return per_sm / 2 * (c->a * kb + c->b) + per_sm % 2 * (c->a1 * kb + c->b1) + split;
    return per_sm * (c->a * kb + c->b) + split;
}
/* SAKER_W4_EXCL=name[@NWxK],...: configurations the model may not pick, for every product or
 * only for the one of NW weight rows and K columns (engine A/B experiments) */
static inline bool sk_w4m_excluded(int cfg, int nw, int K) {
    static const char *e = getenv("SAKER_W4_EXCL");
    if (!e || !*e) return false;
    const size_t n = strlen(sk_w4m_cfg_name[cfg]);
    for (const char *p = e; p && *p;) {
        const char *end = strchr(p, ',');
        const size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len >= n && strncmp(p, sk_w4m_cfg_name[cfg], n) == 0) {
            if (len == n) return true;
            int a = 0, b = 0;
            if (p[n] == '@' && sscanf(p + n + 1, "%dx%d", &a, &b) == 2 && a == nw && b == K)
                return true;
        }
        p = end ? end + 1 : NULL;
    }
    return false;
}
/* Session 10: the model also weighs K unsplit (and, with SAKER_W4_MSPLIT=n, up to n splits)
 * against the launcher's split (*split: the count where one of those is cheaper, else 0, the
 * launcher's rule). dev_gemm_w4 time, session 10: 70B o at 64 rows, wn64x64 in the launcher's 2
 * splits 45.6 us, unsplit 39.4 (cuBLAS 41.8); the model had it right (44.8 against 36.9) but only
 * ever costed the launcher's split. Forced 2-4 splits (MSPLIT=4) were no better in the engine
 * (70B INT4 128/256 ITL at batch 64 / 96 / 128: 30.77 / 37.44 / 42.07 ms against 30.67 / 37.25
 * / 41.41 with 1; 7B batch 64 6.30 against 6.33), so the default is 1. SAKER_W4_MSPLIT=0: the
 * launcher's split only (session 9). */
static inline int sk_w4m_pick_model(int T, int nw, int K, int *split = nullptr) {
    static int msplit = -1;
    if (msplit < 0) {
        const char *e = getenv("SAKER_W4_MSPLIT");
        msplit = e && *e ? atoi(e) : 1;
        if (msplit < 0) msplit = 0;
    }
    const int n_sm = sk_w4m_sm_count();
    int best = SK_W4M_WT128, bs = 0;
    double bu = 1e300;
    for (size_t i = 0; i < sizeof sk_w4m_costs / sizeof sk_w4m_costs[0]; i++) {
        if (sk_w4m_excluded(sk_w4m_costs[i].cfg, nw, K)) continue;
        for (int s = 0; s <= msplit; s++) {
            const double u = sk_w4m_cost_us(sk_w4m_cost_at(i, T), T, nw, K, n_sm, s);
            if (u < bu - 1e-9) bu = u, best = sk_w4m_costs[i].cfg, bs = s;
        }
    }
    if (split) *split = bs;
    return best;
}
/* Dequantize + cuBLASLt's microseconds for the model past SK_W4M_WT_MAX_T rows: the dequant
 * kernel reads 0.5 and writes 2 bytes a weight at ~3.3 TB/s, cuBLASLt bf16 runs at ~680 TFLOP/s
 * (dev_gemm_w4 time, session 9: 70B gate/up at 1,024 rows 1,781 against 1,784-1,844 measured,
 * qkv 325 against 302-307, down 896 against 880-894; 4,096 rows within 6%). */
static inline double sk_w4m_deqlt_us(int T, int nw, int K) {
    return (double)nw * K * 2.5 / 3.3e6 + 2.0 * T * (double)nw * K / 6.8e8 + 10.0;
}
/* The backend's pick: up to 32 rows session 5's mma.sync tiles, 33..1024 rows (K % 128 == 0)
 * the model above; from 1,025 to model_max rows the model's best tile against dequantize +
 * cuBLASLt (-1 when that is cheaper: session 9, the engine's big decode batches, e.g. 1,146 rows
 * at 128/128); else session 5's rule (dequantize + cuBLASLt above SK_W4M_MAX_T rows).
 * swiglu: N_out is the outputs of a SWIGLU product (2 N_out weight rows). */
#define SK_W4M_MODEL_MAX_T 2048
/* The most rows the model may take past 1,024 for K columns: mmax, and no more than one launch's
 * worth (the backend casts x into its scratch of scratch_floats floats in chunks of 2
 * scratch_floats / K rows, each launched with the configuration picked for all T: past a chunk
 * the model's cost would be wrong). The backend's matmul and the workbench's table use it. */
static inline int sk_w4m_model_max(int K, int mmax, size_t scratch_floats) {
    const size_t cap = 2 * scratch_floats / (size_t)K;
    return (size_t)mmax < cap ? mmax : (int)cap;
}
static inline int sk_w4m_pick(int T, int N_out, int K, bool swiglu = false,
                              int model_max = SK_W4M_WT_MAX_T, int *split = nullptr) {
    const int nw = swiglu ? 2 * N_out : N_out;
    if (split) *split = 0;
    if (K % SK_W4M_BK == 0 && T > SK_W4M_WT_MAX_T && T <= model_max) {
        const int cfg = sk_w4m_pick_model(T, nw, K, split);
        const int n_sm = sk_w4m_sm_count();
        for (size_t i = 0; i < sizeof sk_w4m_costs / sizeof sk_w4m_costs[0]; i++)
            if (sk_w4m_costs[i].cfg == cfg)
                return sk_w4m_cost_us(sk_w4m_cost_at(i, T), T, nw, K, n_sm, split ? *split : 0) <
                               sk_w4m_deqlt_us(T, nw, K)
                           ? cfg
                           : -1;
        return -1;
    }
    if (K % SK_W4M_BK != 0 || T <= 32 || T > SK_W4M_WT_MAX_T) return sk_w4m_pick5(T, N_out, K);
    return sk_w4m_pick_model(T, nw, K, split);
}

#endif
