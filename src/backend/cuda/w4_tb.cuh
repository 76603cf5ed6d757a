/* sk_w4_tb_kernel (SwiGLU: gate/up) and sk_w4_tba_kernel (ADD: o, down): the INT4 decode GEMVs
 * at T <= 2 with their weights brought by the tensor-memory accelerator in wide boxes (session
 * 23). Included by w4.cuh (after what they share with sk_w4_ts_kernel: the x split, the tile
 * epilogue, the persistent grid); the arithmetic is ZC3's sk_w4tc_mma unchanged.
 *
 * Why: at one row the 70B gate/up (ts, register ring, 16-20 warps an SM) took ~64 us where its
 * loads alone took ~58 and its arithmetic alone (weights from L2) ~57 (awq-speed.md session
 * 19): the warps that wait for their ring are the warps that would compute. Five ways of
 * feeding the same arithmetic had been measured and none beat the coupled register ring; the
 * nearest to this one, session 19's TMA ring, copied one 16-row x 64-byte box (1 KB) per
 * consumer warp and step, from one thread that waited on each warp's slot in turn: ~12 GB/s an
 * SM. Session 13's read probe streams the same bytes at 4.5 TB/s with 16 KB bulk copies.
 *
 * What: a block = NW consumer warps + one producer warp. sk_w4_tb_kernel is persistent over
 * tiles of 16 gate + 16 up rows (tile b, b + grid, ...); sk_w4_tba_kernel takes one tile of 32
 * rows (two 16-row tiles) and all of K. K is cut into stages of SB = NW steps of 128 k; a stage
 * of a 16-row tile is SB / 8 3-D tensor copies of 16 rows x 8 steps (8 KB, contiguous in the
 * tile-major q4 since session 30: w4_layout.h; a row-major q4 took 16 rows x 512 bytes at the
 * row pitch, with the 128-byte swizzle against bank conflicts) and one 2-D
 * copy of its scale words (16 rows x SB words); tba's stage also carries its x (T rows x SB x 128
 * floats, one bulk copy a row, issued after the producer's griddepcontrol.wait). Consumer warp w
 * takes step w of every stage, then arrives on the stage's empty barrier; the producer (one
 * thread) refills a stage once all NW warps have read it, NS stages ahead, and issues the
 * weights before griddepcontrol.wait (they never depend on the kernel before), so that they
 * stream during the previous product's tail. Bank conflicts: lane (g, t) reads 16 bytes of rows
 * g and g + 8 at step w; a box is [8 steps][16 rows][64 bytes], so a read phase's 8 lanes (rows
 * g..g + 7 or chunks) cover 128 contiguous bytes: none.
 * Session 30 (tile-major q4): the workbench's probe of this layout had 70B gate/up at one row
 * 61.2 -> 59.2 us, two rows 62.4 -> 60.2 (session 22).
 *
 * H200 (awq-speed.md session 23): 70B gate/up at one row 62.9 -> 61.2 us (97% of copy), two rows
 * 74.1 -> 62.4; down 32.2 -> 31.4; Llama-2-70B INT4 batch 1 ITL -3.9..-5.7%, batch 2 -7%.
 *
 * Needs G = 128, K % 512 == 0 (the scale map's row pitch a multiple of 16 bytes; the weight map's
 * rows whole 128-byte pieces), 16-byte aligned q4 / q4s (tba also K % (128 NW) == 0 and x
 * aligned); sk_w4_tb_ok / sk_w4_tba_ok say. Rows past N_out read garbage (the up rows or zeros)
 * and are never stored. Outputs as sk_w4_ts_kernel / sk_w4_tq_kernel's ADD. */
#ifndef SK_CUDA_W4_TB_CUH
#define SK_CUDA_W4_TB_CUH

#include <cuda.h>
#include <cudaTypedefs.h>

#include "backend/cuda/mbar.cuh"

/* Shared-memory layout of one configuration (bytes): NS stages of weights (2 boxes of 16 rows x
 * SB x 64 bytes, 1024-aligned), then NS stages of scale words (2 x 16 x SB
 * words), then the split x (S steps x XB words). */
template <int T, int NW, int NS>
struct sk_w4tb_shape {
    static constexpr int SB = NW;                    /* steps a stage: one a consumer warp */
    static constexpr int BX = SB / 8;                /* weight boxes of 8 steps a tile and stage */
    static constexpr int WBOX = 16 * 8 * 64;         /* bytes of one weight box (8 KB) */
    static constexpr int SBOX = 16 * SB * 4;         /* bytes of one scale box */
    static constexpr int WSTAGE = 2 * BX * WBOX, SSTAGE = 2 * SBOX;
    static constexpr int XB = sk_w4tc_dims<T, 1>::XB;
    static_assert(SB % 8 == 0 && SB <= 32, "whole boxes of 8 steps");
    static size_t smem(int K) { return (size_t)NS * (WSTAGE + SSTAGE) + (size_t)(K / 128) * XB * 4 + 1024; }
};

/* What sk_w4_tb_kernel and sk_w4_tba_kernel share. The dynamic shared memory's base rounded up
 * to 1024 bytes (the swizzled boxes'), as a shared-window address and a pointer. */
static __device__ __forceinline__ uint32_t sk_w4tb_base(unsigned char *raw_p, unsigned char **base) {
    const uint32_t raw = (uint32_t)__cvta_generic_to_shared(raw_p);
    const uint32_t wbase = (raw + 1023u) & ~1023u;
    *base = raw_p + (wbase - raw);
    return wbase;
}
/* xzero and the NS stages' barriers (full: the producer's one arrival and the copies' bytes;
 * empty: the NW consumer warps), then a barrier of the whole block. */
template <int NS, int NW>
static __device__ __forceinline__ void sk_w4tb_init(uint32_t *xzero, uint64_t *mb_full, uint64_t *mb_empty) {
    if (threadIdx.x < 16) xzero[threadIdx.x] = 0u;
    if (threadIdx.x < NS) {
        sk_mb_init((uint32_t)__cvta_generic_to_shared(&mb_full[threadIdx.x]), 1);
        sk_mb_init((uint32_t)__cvta_generic_to_shared(&mb_empty[threadIdx.x]), NW);
    }
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
    __syncthreads();
}
/* This lane's byte offsets in a stage: 16 bytes (chunk t) of rows g and g + 8 at step `warp`
 * (box warp / 8, in it [8 steps][16 rows][64 bytes]), and the scale words of those rows at that
 * step ([16 rows][SB words]). */
template <int SB, int WBOX>
static __device__ __forceinline__ void sk_w4tb_offsets(int warp, int g, int t, uint32_t (&woff)[2],
                                                       uint32_t (&soff)[2]) {
#pragma unroll
    for (int r = 0; r < 2; r++) {
        const int row = g + 8 * r;
        woff[r] = (uint32_t)((warp >> 3) * WBOX + (warp & 7) * 1024 + row * 64 + t * 16);
        soff[r] = (uint32_t)((row * SB + warp) * 4);
    }
}
/* Waits for stage `slot` (use `use`) and reads this lane's weights and scale words of its NT tiles
 * (tile m's boxes BX WBOX apart, its scale box SBOX); sk_w4tb_release then frees the stage, once
 * every read of it by this warp is done. */
template <int NT, int BX, int WBOX, int SBOX, int WSTAGE, int SSTAGE, int NS>
static __device__ __forceinline__ void sk_w4tb_take(const unsigned char *base, int slot, int use,
                                                    uint64_t *mb_full, const uint32_t (&woff)[2],
                                                    const uint32_t (&soff)[2], uint4 (&wr)[NT][2],
                                                    uint32_t (&sv)[NT][2]) {
    sk_mb_wait((uint32_t)__cvta_generic_to_shared(&mb_full[slot]), (uint32_t)(use & 1));
    const unsigned char *wsl = base + slot * WSTAGE;
    const unsigned char *ssl = base + NS * WSTAGE + slot * SSTAGE;
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int r = 0; r < 2; r++) {
            wr[m][r] = *reinterpret_cast<const uint4 *>(wsl + m * BX * WBOX + woff[r]);
            sv[m][r] = *reinterpret_cast<const uint32_t *>(ssl + m * SBOX + soff[r]);
        }
}
static __device__ __forceinline__ void sk_w4tb_release(uint64_t *mb_empty, int slot, int lane) {
    __syncwarp();
    if (lane == 0) sk_mb_arrive((uint32_t)__cvta_generic_to_shared(&mb_empty[slot]));
}
/* Where the producers' weight boxes come from: the tile-major q4 and its steps a row (S), and
 * how (bulk 1, the default: plain cp.async.bulk of the contiguous 8 KB, as session 22's probe
 * timed; 0: the 3-D tensor map's box). SAKER_W4_TB_BULK=0 takes the map. Session 30, H200, the
 * engine at 128/256, ITL p50 over three rounds: 70B INT4 batch 1 10.43-10.50 ms (row-major,
 * session 29's binary) -> 10.42-10.46 (tile-major, the map) -> 10.30-10.33 (bulk); 7B batch 1
 * 1.636-1.646 -> 1.656-1.661 -> 1.641-1.646; 70B batch 2 10.73-10.75 -> 10.76-10.82 ->
 * 10.70-10.75. The same boxes by the tensor map gained nothing (dev_gemv_w4 sw, 70B gate/up at
 * one row: 61.47 us, 97.2% of copy, against 61.21 row-major in session 23). */
struct sk_w4tb_src {
    const uint32_t *q4;
    int S, bulk;
};
static inline sk_w4tb_src sk_w4tb_src_of(const uint32_t *q4, int K) {
    static int bulk = -1;
    if (bulk < 0) {
        const char *e = getenv("SAKER_W4_TB_BULK");
        bulk = e && *e ? atoi(e) : 1;
    }
    sk_w4tb_src r;
    r.q4 = q4, r.S = K / 128, r.bulk = bulk;
    return r;
}
/* The producer's copies of tile rows [r0, r0 + 16) (r0 % 16 == 0) for stage q into slot's boxes
 * at wd (weights, BX boxes of 8 steps: tile r0 / 16's steps, 8 KB contiguous) and sd (scale
 * words), completing on fb. */
template <int SB, int BX, int WBOX, bool EF>
static __device__ __forceinline__ void sk_w4tb_copy_tile(const CUtensorMap *tmw, const CUtensorMap *tms,
                                                         const sk_w4tb_src &src, uint32_t wd, uint32_t sd,
                                                         int q, int r0, uint32_t fb) {
    /* EF: the evict-first policy (w4.cuh SK_W4_EF) */
    const uint64_t pol = EF && SK_W4_EF ? sk_w4_ef_policy() : 0;
#pragma unroll
    for (int j = 0; j < BX; j++) {
        if (src.bulk) {
            const uint32_t *p = src.q4 + ((size_t)(r0 >> 4) * src.S + q * SB + 8 * j) * 256;
            if constexpr (EF && SK_W4_EF)
                sk_bulk_load_hint(wd + j * WBOX, p, WBOX, fb, pol);
            else
                sk_bulk_load(wd + j * WBOX, p, WBOX, fb);
        } else if constexpr (EF && SK_W4_EF) {
            sk_tma_load_3d_hint(wd + j * WBOX, tmw, 0, q * SB + 8 * j, r0 >> 4, fb, pol);
        } else {
            sk_tma_load_3d(wd + j * WBOX, tmw, 0, q * SB + 8 * j, r0 >> 4, fb);
        }
    }
    if constexpr (EF && SK_W4_EF)
        sk_tma_load_2d_hint(sd, tms, q * SB, r0, fb, pol);
    else
        sk_tma_load_2d(sd, tms, q * SB, r0, fb);
    (void)pol;
}

template <int T, int NW, int NS, int MINB, int NORM>
__global__ void __launch_bounds__(32 * (NW + 1), MINB)
    sk_w4_tb_kernel(const float *__restrict__ x, const uint32_t *__restrict__ q4, int N_out, int K,
                    float *__restrict__ out,
                    const float *__restrict__ gamma, float eps, const float *__restrict__ ssq_in,
                    int nssq, const __grid_constant__ CUtensorMap tmw,
                    const __grid_constant__ CUtensorMap tms, const sk_w4tb_src wsrc) {
    using SH = sk_w4tb_shape<T, NW, NS>;
    constexpr int SB = SH::SB, NT = 2, GP = 1, ZC = 3, NOUT = 16 * T;
    constexpr int NB = sk_w4tc_dims<T, GP>::NB, XB = SH::XB;
    extern __shared__ __align__(128) unsigned char sk_w4tb_raw[];
    __shared__ __align__(16) float red[2][NW][NT][4 * NB][16];
    __shared__ __align__(16) uint32_t xzero[16];
    __shared__ __align__(8) uint64_t mb_full[NS], mb_empty[NS];
    __shared__ float s_ssq[NW][T], s_rstd_in[T];
    unsigned char *base;
    const uint32_t wbase = sk_w4tb_base(sk_w4tb_raw, &base), sbase = wbase + NS * SH::WSTAGE;
    uint32_t *const xs = reinterpret_cast<uint32_t *>(base + NS * (SH::WSTAGE + SH::SSTAGE));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int S = K >> 7;              /* steps (K % 512 == 0) */
    const int nst = (S + SB - 1) / SB; /* stages a tile */
    const int ntile = (N_out + 15) >> 4;
    const int ntb = (int)blockIdx.x < ntile ? (ntile - 1 - (int)blockIdx.x) / (int)gridDim.x + 1 : 0;
    SK_TRACE_BEGIN();
    sk_pdl_trigger();
    sk_w4tb_init<NS, NW>(xzero, mb_full, mb_empty);

    if (warp == NW) { /* the producer */
        if (lane == 0) {
            int slot = 0, use = 0;
            for (int i = 0; i < ntb; i++) {
                const int n0 = ((int)blockIdx.x + i * (int)gridDim.x) * 16;
                for (int q = 0; q < nst; q++) {
                    const uint32_t fb = (uint32_t)__cvta_generic_to_shared(&mb_full[slot]);
                    if (use > 0)
                        sk_mb_wait((uint32_t)__cvta_generic_to_shared(&mb_empty[slot]), (uint32_t)((use - 1) & 1));
                    sk_mb_expect_tx(fb, (uint32_t)(SH::WSTAGE + SH::SSTAGE));
                    const uint32_t wd = wbase + slot * SH::WSTAGE, sd = sbase + slot * SH::SSTAGE;
                    sk_w4tb_copy_tile<SB, SH::BX, SH::WBOX, (T <= SK_W4_EF_ROWS)>(&tmw, &tms, wsrc, wd, sd, q, n0, fb);
                    sk_w4tb_copy_tile<SB, SH::BX, SH::WBOX, (T <= SK_W4_EF_ROWS)>(&tmw, &tms, wsrc, wd + SH::BX * SH::WBOX,
                                                            sd + SH::SBOX, q, N_out + n0, fb);
                    if (++slot == NS) slot = 0, use++;
                }
            }
        }
        return;
    }

    sk_pdl_wait();
    /* all of x, split once (as sk_w4_ts_kernel's XS 1): warp w takes steps w, w + NW, ..., the
     * steps it computes below (SB = NW), so no block barrier before its loop: the MMA step's
     * __syncwarp publishes the lanes' split. Eight loads in flight a lane (one L2 round trip for
     * the 8 steps of a warp at K = 8192, NW = 8). */
    float ssq[T];
#pragma unroll
    for (int tau = 0; tau < T; tau++) ssq[tau] = 0.0f;
    sk_w4ts_split_all<T, NW, NORM, 8>(x, gamma, K, S, warp, lane, xs, ssq);
    if (NORM) sk_w4ts_put_ssq<T>(ssq, s_ssq[warp], lane);
    if (!NORM) sk_w4ts_rstd_in<T>(ssq_in, nssq, warp, lane, K, eps, s_rstd_in);
    /* (xzero: sk_w4tb_init's barrier; s_ssq and s_rstd_in: read after the first tile's barrier) */

    int bsrc[NB];
    sk_w4tc_bsrc<T, GP>(bsrc, g, t);
    uint32_t woff[2], soff[2];
    sk_w4tb_offsets<SB, SH::WBOX>(warp, g, t, woff, soff);
    float acc[NT][NB][2];
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++) acc[m][b][0] = acc[m][b][1] = 0.0f;
    const int o_tau = threadIdx.x / 16, o_r = threadIdx.x % 16;
    int slot = 0, use = 0;
    for (int i = 0; i < ntb; i++) {
        const int n0 = ((int)blockIdx.x + i * (int)gridDim.x) * 16;
        for (int q = 0; q < nst; q++) {
            const int st = q * SB + warp;
            uint4 wr[NT][2];
            uint32_t sv[NT][2];
            sk_w4tb_take<NT, SH::BX, SH::WBOX, SH::SBOX, SH::WSTAGE, SH::SSTAGE, NS>(
                base, slot, use, mb_full, woff, soff, wr, sv);
            sk_w4tb_release(mb_empty, slot, lane);
            if (++slot == NS) slot = 0, use++;
            if (st < S) sk_w4tc_mma<T, NT, GP, ZC>(wr, sv, xs + st * XB, bsrc, xzero, lane, t, acc);
        }
        /* the tile's epilogue (sk_w4_ts_kernel's), the consumers' barrier only */
        float(*rd)[NT][4 * NB][16] = red[i & 1];
        sk_w4ts_tile_red<NT, NB>(rd, warp, g, t, acc);
        asm volatile("bar.sync 1, %0;" ::"r"(32 * NW) : "memory");
        const int n = n0 + o_r;
        if (threadIdx.x < NOUT && n < N_out)
            sk_w4ts_tile_out<T, 1, NB, GP, NW, NORM>(rd, s_ssq, s_rstd_in, ssq_in != nullptr, o_tau, o_r, n,
                                                     N_out, K, eps, out);
    }
    SK_TRACE_END(SK_TRACE_TS << 24 | (K >> 5));
}

/* Whether sk_w4_tb_kernel can take the product (the shared memory: at most 227 KB a block with
 * ~8 KB of static arrays for the largest NW; the split x grows with K: 40 KB at 8192). */
static inline bool sk_w4_tb_ok(int T, int G, int K, const void *q4, const void *q4s) {
    return T >= 1 && T <= 2 && G == 128 && K % 512 == 0 && ((uintptr_t)q4 & 15) == 0 &&
           ((uintptr_t)q4s & 15) == 0;
}
template <int T, int NW, int NS>
static inline bool sk_w4_tb_fits(int K) {
    constexpr size_t st = 2 * NW * 2 * 4 * sk_w4tc_dims<T, 1>::NB * 16 * 4 + 1024;
    return sk_w4tb_shape<T, NW, NS>::smem(K) + st <= (size_t)227 * 1024;
}

/* The two tensor maps of a product: the tile-major q4 as [parts N_out / 16 tiles][K / 128 steps]
 * [256 words], boxes of 256 x 8 x 1 (8 steps of a tile, 8 KB contiguous); q4s as [parts N_out]
 * [K / 128] words, boxes SB x 16. */
static inline bool sk_w4tb_maps(CUtensorMap *tmw, CUtensorMap *tms, const uint32_t *q4,
                                const __half2 *q4s, int N_out, int K, int SB, int parts = 2) {
    static PFN_cuTensorMapEncodeTiled_v12000 encode = NULL;
    if (!encode) {
        cudaDriverEntryPointQueryResult q;
        void *fn = NULL;
        if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000, cudaEnableDefault,
                                             &q) != cudaSuccess ||
            q != cudaDriverEntryPointSuccess || !fn)
            return false;
        encode = (PFN_cuTensorMapEncodeTiled_v12000)fn;
    }
    memset(tmw, 0, sizeof *tmw), memset(tms, 0, sizeof *tms);
    const cuuint32_t e3[3] = {1, 1, 1}, e2[2] = {1, 1};
    const cuuint64_t wd[3] = {256, (cuuint64_t)K / 128, (cuuint64_t)(N_out * parts + 15) / 16};
    const cuuint64_t wst[2] = {1024, (cuuint64_t)K * 8};
    const cuuint32_t wbx[3] = {256, 8, 1};
    const cuuint64_t sd[2] = {(cuuint64_t)K / 128, (cuuint64_t)N_out * parts};
    const cuuint64_t sst[1] = {(cuuint64_t)K / 32};
    const cuuint32_t sbx[2] = {(cuuint32_t)SB, 16};
    return encode(tmw, CU_TENSOR_MAP_DATA_TYPE_UINT32, 3, (void *)q4, wd, wst, wbx, e3,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                  CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS &&
           encode(tms, CU_TENSOR_MAP_DATA_TYPE_UINT32, 2, (void *)q4s, sd, sst, sbx, e2,
                  CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE,
                  CU_TENSOR_MAP_L2_PROMOTION_L2_128B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

/* One launch on a grid of the resident slots (occupancy x SMs, at most the tiles). The caller has
 * checked sk_w4_tb_ok. The side request (sk_w4_pn_req) as sk_w4_ts_launch_k. */
template <int T, int NW, int NS, int MINB, int NORM>
static void sk_w4_tb_launch_k(const float *x, const uint32_t *q4, const __half2 *q4s, int N_out,
                              int K, float *out, const float *gamma, float eps, cudaStream_t s) {
    using SH = sk_w4tb_shape<T, NW, NS>;
    auto k = sk_w4_tb_kernel<T, NW, NS, MINB, NORM>;
    const size_t smem = SH::smem(K);
    static bool set = false;
    static size_t occ_smem = (size_t)-1;
    static int occ = 0, sms = 0;
    cudaFuncAttributes fa;
    const size_t lim = !set && cudaFuncGetAttributes(&fa, k) == cudaSuccess
                           ? (size_t)227 * 1024 - fa.sharedSizeBytes : (size_t)200 * 1024;
    const int grid = sk_w4_persist_grid(k, 32 * (NW + 1), smem, lim, (N_out + 15) / 16, set, occ_smem,
                                        occ, sms, "tb");
    CUtensorMap tmw, tms;
    if (grid < 1 || !sk_w4tb_maps(&tmw, &tms, q4, q4s, N_out, K, SH::SB)) {
        fprintf(stderr, "saker: w4 tb: no grid or no tensor maps (N_out %d, K %d)\n", N_out, K);
        abort();
    }
    const float *ssq_in = nullptr;
    int nssq = 0;
    sk_w4_pn_take_sw(gamma, grid, &ssq_in, &nssq);
    sk_launch_pdl_smem(k, dim3((unsigned)grid), 32u * (NW + 1), smem, s, x, q4, N_out, K, out, gamma, eps,
                       ssq_in, nssq, tmw, tms, sk_w4tb_src_of(q4, K));
}
template <int T, int NW, int NS, int MINB>
static void sk_w4_tb_launch(const float *x, const uint32_t *q4, const __half2 *q4s, int N_out, int K,
                            float *out, const float *gamma, float eps, cudaStream_t s) {
    if (gamma)
        sk_w4_tb_launch_k<T, NW, NS, MINB, 1>(x, q4, q4s, N_out, K, out, gamma, eps, s);
    else
        sk_w4_tb_launch_k<T, NW, NS, MINB, 0>(x, q4, q4s, N_out, K, out, gamma, eps, s);
}

/* ---- sk_w4_tba_kernel: the ADD products (o, down) at T <= 2 with the same feed -------------
 * A block = 32 output rows (two 16-row tiles, as sk_w4_tq_kernel's MT2 ADD picks) and all of K,
 * NW consumer warps + one producer warp. A stage = SB = NW steps: per tile the 8-step weight
 * boxes and the scale words (as sk_w4_tb_kernel) and the stage's x (T rows x SB x 128 floats,
 * one bulk copy a row; x is the kernel before's output, so the producer copies it only after
 * griddepcontrol.wait, the weights of the first NS stages before it). Warp w splits and computes
 * step w of each stage (sk_w4tc_xsplit into its own two alternating buffers, then
 * sk_w4tc_mma), as sk_w4_tq_kernel's warps do per step. The end is sk_w4_tq_kernel's ADD
 * epilogue: the warps' sums, bias, the residual (read right after the wait), and with pn.gnext
 * the next norm's x * gamma and this block's sums of squares (the carried norm, sk_w4_pn).
 * Needs K % (128 SB) == 0 besides sk_w4_tb_ok's conditions (sk_w4_tba_ok). */
template <int T, int NW, int NS>
struct sk_w4tba_shape {
    static constexpr int SB = NW, BX = SB / 8, WBOX = 16 * 8 * 64, SBOX = 16 * SB * 4;
    static constexpr int XST = T * SB * 512; /* bytes of x a stage */
    static constexpr int WSTAGE = 2 * BX * WBOX, SSTAGE = 2 * SBOX;
    static constexpr int XB = sk_w4tc_dims<T, 1>::XB;
    static_assert(SB % 8 == 0 && SB <= 32, "whole boxes of 8 steps");
    static constexpr size_t SMEM = (size_t)NS * (WSTAGE + SSTAGE + XST) + (size_t)NW * 2 * XB * 4 + 1024;
};

/* sk_w4_tbs_kernel's producer and stage step, as sk_w4_tba_kernel's (which keeps its own copy:
 * with these shared, the 70B batch-1 step measured 0.4% slower, session 24). The producer (one
 * thread): units [u0, u1), unit u = stage q = u % nst of the two tiles at rows r0 + 32 (u / nst)
 * and r0 + 32 (u / nst) + 16; the weights of the first NS units before griddepcontrol.wait (they
 * never depend on the kernel before), each stage's x (T rows x SB x 128 floats, one bulk copy a
 * row) after it. */
template <int T, int NW, int NS>
static __device__ __forceinline__ void sk_w4tba_produce(const CUtensorMap *tmw, const CUtensorMap *tms,
                                                        const sk_w4tb_src &wsrc, const float *x, int K, uint32_t wbase, uint32_t sbase,
                                                        uint32_t xbase, uint64_t *mb_full, uint64_t *mb_empty,
                                                        int u0, int u1, int nst, int r0) {
    using SH = sk_w4tba_shape<T, NW, NS>;
    constexpr int SB = SH::SB;
    auto weights = [&](int u, int slot) {
        const int p = u / nst, q = u - p * nst;
        const uint32_t fb = (uint32_t)__cvta_generic_to_shared(&mb_full[slot]);
        sk_mb_expect(fb, (uint32_t)(SH::WSTAGE + SH::SSTAGE));
#pragma unroll
        for (int m = 0; m < 2; m++)
            sk_w4tb_copy_tile<SB, SH::BX, SH::WBOX, (T <= SK_W4_EF_ROWS)>(tmw, tms, wsrc,
                                                    wbase + slot * SH::WSTAGE + m * SH::BX * SH::WBOX,
                                                    sbase + slot * SH::SSTAGE + m * SH::SBOX, q,
                                                    r0 + 32 * p + 16 * m, fb);
    };
    auto xcopy = [&](int u, int slot) {
        const int q = u % nst;
        const uint32_t fb = (uint32_t)__cvta_generic_to_shared(&mb_full[slot]);
        sk_mb_expect_tx(fb, (uint32_t)SH::XST); /* the stage's one arrival */
#pragma unroll
        for (int tau = 0; tau < T; tau++)
            sk_bulk_load(xbase + slot * SH::XST + tau * SB * 512, x + (size_t)tau * K + (size_t)q * SB * 128,
                         SB * 512, fb);
    };
    const int pre = u1 - u0 < NS ? u1 - u0 : NS;
    for (int i = 0; i < pre; i++) weights(u0 + i, i);
    sk_pdl_wait();
    for (int i = 0; i < pre; i++) xcopy(u0 + i, i);
    for (int u = u0 + pre, slot = 0, use = 1; u < u1; u++) {
        sk_mb_wait((uint32_t)__cvta_generic_to_shared(&mb_empty[slot]), (uint32_t)((use - 1) & 1));
        weights(u, slot);
        xcopy(u, slot);
        if (++slot == NS) slot = 0, use++;
    }
}
/* A consumer warp's step of one stage: its weights, scale words and x (step `warp`), the stage
 * released, x split into the warp's buffer xb of two (then toggled), the MMAs into acc. */
template <int T, int NW, int NS>
static __device__ __forceinline__ void sk_w4tba_step(const unsigned char *base, int &slot, int &use, int &xb,
                                                     uint64_t *mb_full, uint64_t *mb_empty,
                                                     const uint32_t (&woff)[2], const uint32_t (&soff)[2],
                                                     uint32_t *xwb, int xoff,
                                                     const int (&bsrc)[sk_w4tc_dims<T, 1>::NB],
                                                     const uint32_t *xzero, int lane, int warp, int t,
                                                     float (&acc)[2][sk_w4tc_dims<T, 1>::NB][2]) {
    using SH = sk_w4tba_shape<T, NW, NS>;
    constexpr int SB = SH::SB;
    const unsigned char *xsl = base + NS * (SH::WSTAGE + SH::SSTAGE) + slot * SH::XST;
    uint4 wr[2][2];
    uint32_t sv[2][2];
    sk_w4tb_take<2, SH::BX, SH::WBOX, SH::SBOX, SH::WSTAGE, SH::SSTAGE, NS>(base, slot, use, mb_full, woff,
                                                                           soff, wr, sv);
    float4 xn[T];
#pragma unroll
    for (int tau = 0; tau < T; tau++)
        xn[tau] = *reinterpret_cast<const float4 *>(xsl + tau * SB * 512 + warp * 512 + lane * 16);
    sk_w4tb_release(mb_empty, slot, lane);
    if (++slot == NS) slot = 0, use++;
    uint32_t *xw = xwb + (warp * 2 + xb) * SH::XB;
    xb ^= 1;
    sk_w4tc_xsplit<T, 1>(xn, xw, xoff);
    sk_w4tc_mma<T, 2, 1, 3>(wr, sv, xw, bsrc, xzero, lane, t, acc);
}

template <int T, int NW, int NS, int MINB>
__global__ void __launch_bounds__(32 * (NW + 1), MINB)
    sk_w4_tba_kernel(const float *__restrict__ x, const float *__restrict__ bias, int N_out, int K,
                     float *__restrict__ out, sk_w4_pn pn, const __grid_constant__ CUtensorMap tmw,
                     const __grid_constant__ CUtensorMap tms, const sk_w4tb_src wsrc) {
    using SH = sk_w4tba_shape<T, NW, NS>;
    constexpr int SB = SH::SB, MT = 2, GP = 1, ZC = 3, NOUT = 32 * T;
    constexpr int NB = sk_w4tc_dims<T, GP>::NB, XB = SH::XB;
    extern __shared__ __align__(128) unsigned char sk_w4tba_raw[];
    __shared__ __align__(16) float red[NW][MT][4 * NB][16];
    __shared__ __align__(16) uint32_t xzero[16];
    __shared__ __align__(8) uint64_t mb_full[NS], mb_empty[NS];
    unsigned char *base;
    const uint32_t wbase = sk_w4tb_base(sk_w4tba_raw, &base);
    const uint32_t sbase = wbase + NS * SH::WSTAGE, xbase = sbase + NS * SH::SSTAGE;
    uint32_t *const xwb = reinterpret_cast<uint32_t *>(base + NS * (SH::WSTAGE + SH::SSTAGE + SH::XST));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int nst = (K >> 7) / SB;
    const int n0 = (int)blockIdx.x * 32;
    SK_TRACE_BEGIN();
    sk_pdl_trigger();
    sk_w4tb_init<NS, NW>(xzero, mb_full, mb_empty);

    if (warp == NW) { /* the producer */
        if (lane == 0) {
            auto weights = [&](int q, int slot) {
                const uint32_t fb = (uint32_t)__cvta_generic_to_shared(&mb_full[slot]);
                sk_mb_expect(fb, (uint32_t)(SH::WSTAGE + SH::SSTAGE));
#pragma unroll
                for (int m = 0; m < MT; m++)
                    sk_w4tb_copy_tile<SB, SH::BX, SH::WBOX, (T <= SK_W4_EF_ROWS)>(&tmw, &tms, wsrc,
                                                            wbase + slot * SH::WSTAGE + m * SH::BX * SH::WBOX,
                                                            sbase + slot * SH::SSTAGE + m * SH::SBOX, q,
                                                            n0 + 16 * m, fb);
            };
            auto xcopy = [&](int q, int slot) {
                const uint32_t fb = (uint32_t)__cvta_generic_to_shared(&mb_full[slot]);
                sk_mb_expect_tx(fb, (uint32_t)SH::XST); /* the stage's one arrival */
#pragma unroll
                for (int tau = 0; tau < T; tau++)
                    sk_bulk_load(xbase + slot * SH::XST + tau * SB * 512,
                                 x + (size_t)tau * K + (size_t)q * SB * 128, SB * 512, fb);
            };
            const int pre = nst < NS ? nst : NS;
            for (int q = 0; q < pre; q++) weights(q, q); /* weights never depend on the kernel before */
            sk_pdl_wait();
            for (int q = 0; q < pre; q++) xcopy(q, q);
            for (int q = pre, slot = 0, use = 1; q < nst; q++) {
                sk_mb_wait((uint32_t)__cvta_generic_to_shared(&mb_empty[slot]), (uint32_t)((use - 1) & 1));
                weights(q, slot);
                xcopy(q, slot);
                if (++slot == NS) slot = 0, use++;
            }
        }
        return;
    }

    sk_pdl_wait();
    /* this thread's output (o < NOUT: row tau, block row r): bias and residual now */
    const int o_tau = threadIdx.x >> 5, o_r = threadIdx.x & 31, o_n = n0 + o_r;
    const bool o_live = threadIdx.x < NOUT && o_n < N_out;
    float o_bias = 0.0f, o_res = 0.0f, o_g = 0.0f;
    if (o_live) {
        if (bias) o_bias = __ldg(bias + o_n);
        o_res = out[(size_t)o_tau * N_out + o_n];
        if (pn.gnext) o_g = __ldg(pn.gnext + o_n);
    }
    int bsrc[NB];
    sk_w4tc_bsrc<T, GP>(bsrc, g, t);
    const int xoff = (lane >> 3) * SK_W4TC_XW + (lane & 7) * 2;
    uint32_t woff[2], soff[2];
    sk_w4tb_offsets<SB, SH::WBOX>(warp, g, t, woff, soff);
    float acc[MT][NB][2];
#pragma unroll
    for (int m = 0; m < MT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++) acc[m][b][0] = acc[m][b][1] = 0.0f;
    int slot = 0, use = 0;
    for (int q = 0; q < nst; q++) {
        const unsigned char *xsl = base + NS * (SH::WSTAGE + SH::SSTAGE) + slot * SH::XST;
        uint4 wr[MT][2];
        uint32_t sv[MT][2];
        sk_w4tb_take<MT, SH::BX, SH::WBOX, SH::SBOX, SH::WSTAGE, SH::SSTAGE, NS>(
            base, slot, use, mb_full, woff, soff, wr, sv);
        float4 xn[T];
#pragma unroll
        for (int tau = 0; tau < T; tau++)
            xn[tau] = *reinterpret_cast<const float4 *>(xsl + tau * SB * 512 + warp * 512 + lane * 16);
        sk_w4tb_release(mb_empty, slot, lane);
        if (++slot == NS) slot = 0, use++;
        uint32_t *xw = xwb + (warp * 2 + (q & 1)) * XB;
        sk_w4tc_xsplit<T, 1>(xn, xw, xoff);
        sk_w4tc_mma<T, MT, GP, ZC>(wr, sv, xw, bsrc, xzero, lane, t, acc);
    }
    sk_w4ts_tile_red<MT, NB>(red, warp, g, t, acc);
    asm volatile("bar.sync 1, %0;" ::"r"(32 * NW) : "memory");
    float o_sq = 0.0f;
    if (o_live) {
        const int m = o_r >> 4, row = o_r & 15;
        float v = 0.0f;
#pragma unroll
        for (int w = 0; w < NW; w++) v += red[w][m][o_tau][row];
        v += o_bias; /* the order of sk_w4_tq_kernel: sum, bias, residual */
        v += o_res;
        out[(size_t)o_tau * N_out + o_n] = v;
        if (pn.gnext) {
            pn.xg[(size_t)o_tau * N_out + o_n] = v * o_g;
            o_sq = v * v;
        }
    }
    if (pn.gnext && warp < T) { /* row tau's 32 outputs are warp tau's lanes */
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) o_sq += __shfl_xor_sync(0xffffffffu, o_sq, o);
        if (lane == 0) pn.ssq_out[(size_t)blockIdx.x * T + warp] = o_sq;
    }
    SK_TRACE_END(SK_TRACE_TQ_ADD << 24 | (K >> 5));
}

template <int T, int NW, int NS>
static inline bool sk_w4_tba_ok(int G, int K, const void *x, const void *q4, const void *q4s) {
    return sk_w4_tb_ok(T, G, K, q4, q4s) && K % (128 * NW) == 0 && ((uintptr_t)x & 15) == 0 &&
           sk_w4tba_shape<T, NW, NS>::SMEM + 8192 <= (size_t)227 * 1024;
}

/* One launch: ceil(N_out / 32) blocks. The caller has checked sk_w4_tba_ok. The pending side
 * request (sk_w4_pn_req) for ADD as sk_w4_tq_launch. */
template <int T, int NW, int NS, int MINB>
static void sk_w4_tba_launch(const float *x, const uint32_t *q4, const __half2 *q4s, const float *bias,
                             int N_out, int K, float *out, cudaStream_t s) {
    using SH = sk_w4tba_shape<T, NW, NS>;
    auto k = sk_w4_tba_kernel<T, NW, NS, MINB>;
    static bool set = false;
    cudaError_t e = cudaSuccess;
    if (!set) {
        e = cudaFuncSetAttribute(k, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)SH::SMEM);
        set = true;
    }
    /* the weight map as sk_w4_tb_kernel's over N_out rows (no up half) */
    CUtensorMap tmw, tms;
    if (e != cudaSuccess || !sk_w4tb_maps(&tmw, &tms, q4, q4s, N_out, K, SH::SB, 1)) {
        fprintf(stderr, "saker: w4 tba: %zu bytes of shared memory: %s, or its tensor maps\n",
                SH::SMEM, cudaGetErrorString(e));
        abort();
    }
    const unsigned blocks = (unsigned)((N_out + 31) / 32);
    const sk_w4_pn pn = sk_w4_pn_take(SK_GEMV_ADD, (int)blocks);
    sk_launch_pdl_smem(k, dim3(blocks), 32u * (NW + 1), SH::SMEM, s, x, bias, N_out, K, out, pn, tmw, tms,
                       sk_w4tb_src_of(q4, K));
}

/* ---- sk_w4_tbs_kernel: the STORE product (qkv) at T <= 2 with the same feed (session 24) ------
 * Why: at one row qkv (tq STORE 5, one 16-row tile a warp) is bound by its per-step instructions
 * (70B 16.5 us, 64% of copy; gate/up on the TMA feed with two tiles a warp's step: 97%). As a
 * persistent product of tile pairs with all of x split at each block's start (sk_w4_tb_kernel's
 * way, measured this session: 70B qkv + norm 17.9-19.5 us; session 23's one tile a stage 18.6-19.1)
 * it loses the kernel's start to the split: every block splits all K before its first MMA.
 * What: tba's stages (8-step boxes of two adjacent 16-row tiles, a pair: rows 32 p .. 32 p + 31,
 * the scale words, the stage's x by one bulk copy a row after the producer's griddepcontrol.wait;
 * warp w splits and computes step w) over stream-K ranges: the P x nst (pair, stage) units cut
 * into grid contiguous ranges (within one unit of each other), the grid at most P, so that a range
 * holds at least nst units and a pair is shared by at most two blocks. The later range's block
 * takes the pair's tail first (the "starter": stores its partial, then releases the pair's flag),
 * the earlier one its head last (the "finisher": acquires the flag, adds its partial to the
 * starter's in that fixed order, resets the flag for the next launch). Deterministic; no zeroing.
 * A finisher waits only at its end, on a block that began its range with that pair (every block
 * of the grid runs: the kernel after this one launches once all of this grid's blocks have begun).
 * No fused norm (gamma) and no bias: the carried norm's 1 / rms (ssq_in) only, as the engine's
 * qkv runs (sk_cuda_rmsnorm_matmul); sk_w4_tbs_ok says.
 * H200 (awq-speed.md session 24; dev_gemv_w4 s9 without the norm, us): 70B qkv at one row 14.68-
 * 15.20 against tq 5's 15.00 (one pair a block in one wave, NW8 NS2 LB3, best: the stream-K grids
 * of 264 blocks were not faster), two rows 15.77-15.80 against tq 7's 16.14-16.20; engine 70B
 * INT4 ITL even at batch 1, -0.7% at batch 2. Predicted was 12.5-13.5 us at one row: the product
 * is held by its start and end (its loads begin only as the kernel before frees the SMs), not by
 * the per-step instructions that bind tq there. The default at two rows only (sk_w4_tq_pick). */
static __device__ __forceinline__ unsigned int sk_w4tbs_acquire(const unsigned int *f) {
    unsigned int v;
    asm volatile("ld.acquire.gpu.global.u32 %0, [%1];" : "=r"(v) : "l"(f) : "memory");
    return v;
}
static __device__ __forceinline__ void sk_w4tbs_release(unsigned int *f, unsigned int v) {
    asm volatile("st.release.gpu.global.u32 [%0], %1;" ::"l"(f), "r"(v) : "memory");
}
/* One flag a pair, 0 between launches; internal to each translation unit (its own module). */
#define SK_W4TBS_MAXP 4096
static __device__ unsigned int sk_w4tbs_flags[SK_W4TBS_MAXP];

template <int T, int NW, int NS, int MINB>
__global__ void __launch_bounds__(32 * (NW + 1), MINB)
    sk_w4_tbs_kernel(const float *__restrict__ x, int N_out, int K, float *__restrict__ out, float eps,
                     const float *__restrict__ ssq_in, int nssq, const __grid_constant__ CUtensorMap tmw,
                     const __grid_constant__ CUtensorMap tms, const sk_w4tb_src wsrc) {
    using SH = sk_w4tba_shape<T, NW, NS>;
    constexpr int SB = SH::SB, NT = 2, GP = 1, NOUT = 32 * T;
    constexpr int NB = sk_w4tc_dims<T, GP>::NB;
    extern __shared__ __align__(128) unsigned char sk_w4tbs_raw[];
    __shared__ __align__(16) float red[2][NW][NT][4 * NB][16];
    __shared__ __align__(16) uint32_t xzero[16];
    __shared__ __align__(8) uint64_t mb_full[NS], mb_empty[NS];
    __shared__ float s_rstd_in[T];
    unsigned char *base;
    const uint32_t wbase = sk_w4tb_base(sk_w4tbs_raw, &base);
    const uint32_t sbase = wbase + NS * SH::WSTAGE, xbase = sbase + NS * SH::SSTAGE;
    uint32_t *const xwb = reinterpret_cast<uint32_t *>(base + NS * (SH::WSTAGE + SH::SSTAGE + SH::XST));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int g = lane >> 2, t = lane & 3;
    const int nst = (K >> 7) / SB;
    const long long U = (long long)((N_out + 31) >> 5) * nst;
    const int u0 = (int)(U * blockIdx.x / gridDim.x), u1 = (int)(U * (blockIdx.x + 1) / gridDim.x);
    SK_TRACE_BEGIN();
    sk_pdl_trigger();
    sk_w4tb_init<NS, NW>(xzero, mb_full, mb_empty);

    if (warp == NW) { /* the producer (tba's, over the range's units) */
        if (lane == 0)
            sk_w4tba_produce<T, NW, NS>(&tmw, &tms, wsrc, x, K, wbase, sbase, xbase, mb_full, mb_empty, u0, u1, nst, 0);
        return;
    }

    sk_pdl_wait();
    sk_w4ts_rstd_in<T>(ssq_in, nssq, warp, lane, K, eps, s_rstd_in); /* (read after a barrier below) */
    int bsrc[NB];
    sk_w4tc_bsrc<T, GP>(bsrc, g, t);
    const int xoff = (lane >> 3) * SK_W4TC_XW + (lane & 7) * 2;
    uint32_t woff[2], soff[2];
    sk_w4tb_offsets<SB, SH::WBOX>(warp, g, t, woff, soff);
    float acc[NT][NB][2];
#pragma unroll
    for (int m = 0; m < NT; m++)
#pragma unroll
        for (int b = 0; b < NB; b++) acc[m][b][0] = acc[m][b][1] = 0.0f;
    const int o_tau = threadIdx.x >> 5, o_r = threadIdx.x & 31;
    int slot = 0, use = 0, xb = 0;
    for (int u = u0, i = 0; u < u1; i++) {
        const int p = u / nst, qa = u - p * nst, qb = min(nst, qa + (u1 - u));
        for (int q = qa; q < qb; q++)
            sk_w4tba_step<T, NW, NS>(base, slot, use, xb, mb_full, mb_empty, woff, soff, xwb, xoff, bsrc, xzero,
                                     lane, warp, t, acc);
        u += qb - qa;
        /* 0: the whole pair; 1: its tail, first in this block (starter); 2: its head, last (finisher) */
        const int role = qa == 0 && qb == nst ? 0 : qa > 0 ? 1 : 2;
        float(*rd)[NT][4 * NB][16] = red[i & 1];
        sk_w4ts_tile_red<NT, NB>(rd, warp, g, t, acc);
        asm volatile("bar.sync 1, %0;" ::"r"(32 * NW) : "memory");
        if (role == 2) {
            if (threadIdx.x == 0)
                while (sk_w4tbs_acquire(&sk_w4tbs_flags[p]) == 0u) __nanosleep(32);
            asm volatile("bar.sync 1, %0;" ::"r"(32 * NW) : "memory");
        }
        const int n = 32 * p + o_r;
        if (threadIdx.x < NOUT && n < N_out) {
            float v = 0.0f;
#pragma unroll
            for (int w = 0; w < NW; w++) v += rd[w][o_r >> 4][o_tau][o_r & 15];
            if (ssq_in) v *= s_rstd_in[o_tau];
            float *op = out + (size_t)o_tau * N_out + n;
            if (role == 2) v += __ldcg(op); /* the starter's partial, after this block's */
            *op = v;
        }
        if (role == 1) { /* publish the partial (CUTLASS's semaphore pattern) */
            asm volatile("bar.sync 1, %0;" ::"r"(32 * NW) : "memory");
            if (threadIdx.x == 0) {
                __threadfence();
                sk_w4tbs_release(&sk_w4tbs_flags[p], 1u);
            }
        } else if (role == 2 && threadIdx.x == 0) {
            sk_w4tbs_flags[p] = 0u; /* for the next launch (its starters begin after this grid ends) */
        }
    }
    SK_TRACE_END(SK_TRACE_TQ_STORE << 24 | (K >> 5));
}

/* Whether sk_w4_tbs_kernel can take the product: tba's conditions, no gamma, no bias, at most
 * SK_W4TBS_MAXP pairs (its flags). */
template <int T, int NW, int NS>
static inline bool sk_w4_tbs_ok(int G, int N_out, int K, const float *bias, const float *gamma, const void *x,
                                const void *q4, const void *q4s) {
    return !bias && !gamma && sk_w4_tba_ok<T, NW, NS>(G, K, x, q4, q4s) && (N_out + 31) / 32 <= SK_W4TBS_MAXP;
}
/* One launch on the resident slots (occupancy x SMs), at most the pairs. The caller has checked
 * sk_w4_tbs_ok. The carried norm's sums (the side request, sk_w4_pn_take) as sk_w4_tq_kernel's. */
template <int T, int NW, int NS, int MINB>
static void sk_w4_tbs_launch(const float *x, const uint32_t *q4, const __half2 *q4s, int N_out, int K,
                             float *out, float eps, cudaStream_t s) {
    using SH = sk_w4tba_shape<T, NW, NS>;
    auto k = sk_w4_tbs_kernel<T, NW, NS, MINB>;
    static bool set = false;
    static size_t occ_smem = (size_t)-1;
    static int occ = 0, sms = 0;
    const int grid = sk_w4_persist_grid(k, 32 * (NW + 1), SH::SMEM, SH::SMEM, (N_out + 31) / 32, set,
                                        occ_smem, occ, sms, "tbs");
    CUtensorMap tmw, tms;
    if (grid < 1 || !sk_w4tb_maps(&tmw, &tms, q4, q4s, N_out, K, SH::SB, 1)) {
        fprintf(stderr, "saker: w4 tbs: no grid or no tensor maps (N_out %d, K %d)\n", N_out, K);
        abort();
    }
    const sk_w4_pn pn = sk_w4_pn_take(SK_GEMV_STORE, grid);
    sk_launch_pdl_smem(k, dim3((unsigned)grid), 32u * (NW + 1), SH::SMEM, s, x, N_out, K, out, eps, pn.ssq_in,
                       pn.nssq, tmw, tms, sk_w4tb_src_of(q4, K));
}

#endif
