/* Prefill (context-phase) attention over the paged KV cache of attn_params.h: kernels and
 * launchers. Self-contained (CUDA headers and attn_params.h only) so that the workbench
 * dev/cuda/attention_prefill.cu includes exactly the code the backend runs; the checked public
 * entry is sk_attn_prefill (attn_prefill.cu).
 *
 * Semantics (attn_params.h): sequence b has q_len_b = qo_indptr[b+1] - qo_indptr[b] query rows,
 * the last q_len_b of its kv_len_b cached tokens (its own K/V were written to the pages before
 * the call), so query row i of b sits at position kv_off_b + i, kv_off_b = kv_len_b - q_len_b,
 * and attends to KV positions 0 .. kv_off_b + i. Query head h reads KV head h / (H / KVH).
 * A row that attends to nothing (only possible when q_len_b > kv_len_b, outside the contract)
 * gets zeros.
 *
 * Grids are persistent (blocks = SMs x resident blocks per SM): the host knows only the batch
 * size, not the lengths (they live in device memory, so that a step can be captured in a CUDA
 * graph), and every block walks the work list it derives from qo_indptr on the device.
 *
 * version 1 (sk_attn_prefill_kernel1): one warp per (query row, head); lanes take 32 KV positions
 *   at a time (dot products in fp32), online softmax with expf, lanes then own output dims
 *   lane + 32i. The reference on the GPU side: simple, any alignment, slow.
 * version 2 (sk_attn_prefill_kernel2<D, BM>): FlashAttention-2 style on mma.sync.m16n8k16 bf16.
 *   A block takes a tile of BM = 64|128 query rows of one head (BM/16 warps, 16 rows per warp),
 *   keeps Q fragments in registers and walks the KV tiles of BN = 64 positions it needs (causal:
 *   tiles above the diagonal are never visited, the mask is applied only on the tiles that cross
 *   it). K/V tiles are gathered from the pages with cp.async (16 bytes a thread, zero-fill
 *   beyond kv_len) into a double buffer, so tile j+1 loads while tile j is computed. S = Q K^T
 *   and O += P V on mma.sync with ldmatrix (.trans for V) operands; softmax in fp32 with exp2
 *   (sm_scale * log2 e folded into one FFMA); P stays in registers, re-packed to bf16 as the A
 *   operand of P V. Shared rows are padded to D + 8 elements (an odd number of 16-byte chunks),
 *   which makes every ldmatrix phase (8 rows, same chunk column) hit 8 distinct bank groups for
 *   D = 64, 80 and 128 alike (an XOR swizzle needs 8 chunks a row, which D = 80 does not have).
 *   Work order: heavy first -- bucket r holds the r-th query tile counted from the end of every
 *   sequence (the longest causal tiles first), then sequence, then head fastest (query heads
 *   that share a KV head run side by side and share K/V through L2).
 * version 3 (sk_attn_prefill_kernel3<D>, D = 64 or 128, sm_90a): FlashAttention-3 style on
 *   wgmma. 2 warpgroups x 64 query rows (BM = 128), KV tiles of BN = 128, tiles in 128-byte-
 *   swizzled shared memory read by wgmma through descriptors (S = Q K^T: both operands from
 *   shared memory; O += P V: P from registers, V N-major), K and V gathered from the pages by
 *   cp.async into 2+2 stages, S_j overlapped with P_{j-1} V_{j-1} and the softmax of S_j
 *   (intra-warpgroup pipelining). Same schedule as version 2. See its section for the layouts.
 * Tiles are powers of two and so are pages: a KV tile is always whole pages (page_size <= BN)
 * or a contiguous run inside one page (page_size > BN); rows are gathered one 16-byte chunk per
 * thread with the page id looked up per row (L1-resident). */
#ifndef SK_CUDA_ATTN_PREFILL_CUH
#define SK_CUDA_ATTN_PREFILL_CUH

#include <cuda.h>
#include <cudaTypedefs.h>
#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>

#include "attn_params.h"
#include "wgmma.cuh"
#include "mbar.cuh"

/* ---- small device helpers (inline PTX) ---------------------------------------------------- */

static __device__ __forceinline__ uint32_t sk_ap_smem_u32(const void *p) {
    return (uint32_t)__cvta_generic_to_shared(p);
}

/* 16-byte global -> shared copy; when !valid nothing is read and the 16 bytes are zeroed. */
static __device__ __forceinline__ void sk_ap_cp_async16(uint32_t dst, const void *src, bool valid) {
    const int n = valid ? 16 : 0;
    asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(dst), "l"(src), "r"(n)
                 : "memory");
}
static __device__ __forceinline__ void sk_ap_cp_commit() {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N>
static __device__ __forceinline__ void sk_ap_cp_wait() {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

static __device__ __forceinline__ void sk_ap_ldsm_x4(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}
static __device__ __forceinline__ void sk_ap_ldsm_x4_t(uint32_t r[4], uint32_t addr) {
    asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [%4];\n"
                 : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
                 : "r"(addr));
}

/* d[4] += a[4] (16x16 bf16, row) * {b0, b1} (16x8 bf16, col), fp32 accumulate. Fragments
 * (g = lane / 4, t = lane % 4; pairs hold the lower column in the low half):
 *   a0 (g, 2t..2t+1)  a1 (g+8, 2t..)  a2 (g, 2t+8..)  a3 (g+8, 2t+8..)
 *   b0 (k 2t..2t+1, n g)  b1 (k 2t+8.., n g)
 *   d0,d1 (g, 2t..2t+1)  d2,d3 (g+8, 2t..2t+1) */
static __device__ __forceinline__ void sk_ap_mma(float d[4], const uint32_t a[4], uint32_t b0,
                                                 uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
}

static __device__ __forceinline__ float sk_ap_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* Two floats to a bf16 pair, lo in the low half (the lower column of a fragment pair). */
static __device__ __forceinline__ uint32_t sk_ap_pack_bf16(float lo, float hi) {
    __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<uint32_t *>(&v);
}

/* ldmatrix lane addresses (element offsets inside a tile stored row-major with row stride ld).
 * The lane's matrix is i = lane / 8, its row in that matrix r = lane % 8.
 * A operand (Q, 16 rows x 16 cols at (row0, col0)): matrices (rows 0-7, cols 0-7), (rows 8-15,
 *   cols 0-7), (rows 0-7, cols 8-15), (rows 8-15, cols 8-15) give a0..a3. */
static __device__ __forceinline__ int sk_ap_lane_off_a(int lane, int ld) {
    return (lane & 15) * ld + (lane >> 4) * 8;
}
/* B operand from a [n][k] tile (K: n = KV position, k = head dim), 16 n x 16 k: matrices
 * (n 0-7, k 0-7), (n 0-7, k 8-15), (n 8-15, k 0-7), (n 8-15, k 8-15) give b0, b1 of n-tile 0
 * and b0, b1 of n-tile 1. */
static __device__ __forceinline__ int sk_ap_lane_off_bk(int lane, int ld) {
    return ((lane >> 4) * 8 + (lane & 7)) * ld + ((lane >> 3) & 1) * 8;
}
/* B operand from a [k][n] tile (V: k = KV position, n = head dim) with ldmatrix.trans, 16 k x
 * 16 n: matrices (k 0-7, n 0-7), (k 8-15, n 0-7), (k 0-7, n 8-15), (k 8-15, n 8-15) give b0, b1
 * of n-tile 0 and b0, b1 of n-tile 1. */
static __device__ __forceinline__ int sk_ap_lane_off_bv(int lane, int ld) {
    return (((lane >> 3) & 1) * 8 + (lane & 7)) * ld + (lane >> 4) * 8;
}

/* Element offset of token n's row (head dim 0) of KV head kvh in a K or V pool; pages_b points
 * at the sequence's page ids. ps_shift = log2(page_size). */
static __device__ __forceinline__ size_t sk_ap_kv_row(const int32_t *pages_b, int n, int ps_shift,
                                                      int n_kv_heads, int kvh, int D) {
    const int page = __ldg(pages_b + (n >> ps_shift));
    const int ps = 1 << ps_shift;
    return (((size_t)page * (size_t)n_kv_heads + (size_t)kvh) * (size_t)ps +
            (size_t)(n & (ps - 1))) *
           (size_t)D;
}

/* ---- work list ---------------------------------------------------------------------------- */

/* Sequences whose query-tile counts a block caches in shared memory; beyond that it reads
 * qo_indptr for each item (correct, slower). */
#define SK_AP_SCHED_CAP 1024

/* Per-block view of the work: items w = (r * batch + b) * n_heads + h for r < max over b of
 * n_tiles_b (query tiles of BM rows), skipping (r, b) with r >= n_tiles_b; item (r, b, h) is
 * query tile n_tiles_b - 1 - r of sequence b, head h. Must be called by all threads. */
struct sk_ap_sched {
    long long total; /* max_tiles * batch * n_heads */
};

template <int BM>
static __device__ __forceinline__ int sk_ap_tiles_of(const int32_t *qo_indptr, int b) {
    const int ql = qo_indptr[b + 1] - qo_indptr[b];
    return ql > 0 ? (ql + BM - 1) / BM : 0;
}

template <int BM>
static __device__ sk_ap_sched sk_ap_sched_init(const sk_attn_params &p, int *s_tiles,
                                               int *s_max) {
    if (threadIdx.x == 0) *s_max = 0;
    __syncthreads();
    int mx = 0;
    for (int b = threadIdx.x; b < p.batch; b += blockDim.x) {
        const int n = sk_ap_tiles_of<BM>(p.qo_indptr, b);
        if (b < SK_AP_SCHED_CAP) s_tiles[b] = n;
        mx = max(mx, n);
    }
    atomicMax(s_max, mx);
    __syncthreads();
    sk_ap_sched s;
    s.total = (long long)*s_max * p.batch * p.n_heads;
    return s;
}

/* ---- version 1: warp per (row, head) ------------------------------------------------------ */

#define SK_AP1_WARPS 4

template <int D>
static __global__ void __launch_bounds__(SK_AP1_WARPS * 32)
    sk_attn_prefill_kernel1(const __grid_constant__ sk_attn_params p) {
    constexpr int NO = (D + 31) / 32; /* output dims per lane */
    __shared__ float q_s[SK_AP1_WARPS][D];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int H = p.n_heads, KVH = p.kv.n_kv_heads, group = H / KVH;
    const int ps_shift = __ffs(p.kv.page_size) - 1;
    const long long total = (long long)p.qo_indptr[p.batch] * H;
    const float scale = p.sm_scale;
    const __nv_bfloat16 *kp = (const __nv_bfloat16 *)p.kv.k;
    const __nv_bfloat16 *vp = (const __nv_bfloat16 *)p.kv.v;
    float *qs = q_s[warp];

    for (long long w = (long long)blockIdx.x * SK_AP1_WARPS + warp; w < total;
         w += (long long)gridDim.x * SK_AP1_WARPS) {
        const int t = (int)(w / H), h = (int)(w % H), kvh = h / group;
        /* Sequence of row t: the last b with qo_indptr[b] <= t. */
        int lo = 0, hi = p.batch - 1;
        while (lo < hi) {
            const int mid = (lo + hi + 1) >> 1;
            if (p.qo_indptr[mid] <= t) lo = mid; else hi = mid - 1;
        }
        const int b = lo;
        const int q_len = p.qo_indptr[b + 1] - p.qo_indptr[b];
        const int pos = p.kv.kv_len[b] - q_len + (t - p.qo_indptr[b]);
        const int32_t *pages = p.kv.indices + p.kv.indptr[b];

        const __nv_bfloat16 *qr =
            (const __nv_bfloat16 *)p.q + (size_t)t * p.q_stride + (size_t)h * D;
        __syncwarp();
        for (int d = lane; d < D; d += 32) qs[d] = __bfloat162float(qr[d]);
        __syncwarp();

        float m = -INFINITY, l = 0.0f, acc[NO];
#pragma unroll
        for (int i = 0; i < NO; i++) acc[i] = 0.0f;
        for (int j0 = 0; j0 <= pos; j0 += 32) {
            const int j = j0 + lane;
            float s = -INFINITY;
            if (j <= pos) {
                const __nv_bfloat162 *kr =
                    (const __nv_bfloat162 *)(kp + sk_ap_kv_row(pages, j, ps_shift, KVH, kvh, D));
                float dot = 0.0f;
#pragma unroll 8
                for (int d = 0; d < D / 2; d++) {
                    const float2 kf = __bfloat1622float2(kr[d]);
                    dot = fmaf(qs[2 * d], kf.x, dot);
                    dot = fmaf(qs[2 * d + 1], kf.y, dot);
                }
                s = dot * scale;
            }
            float cm = s;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) cm = fmaxf(cm, __shfl_xor_sync(0xffffffffu, cm, o));
            const float m_new = fmaxf(m, cm); /* finite: position j0 <= pos is in the chunk */
            const float alpha = expf(m - m_new);
            const float pj = j <= pos ? expf(s - m_new) : 0.0f;
            float ps = pj;
#pragma unroll
            for (int o = 16; o > 0; o >>= 1) ps += __shfl_xor_sync(0xffffffffu, ps, o);
            l = l * alpha + ps;
            m = m_new;
#pragma unroll
            for (int i = 0; i < NO; i++) acc[i] *= alpha;
            const int n = min(32, pos + 1 - j0);
            for (int jj = 0; jj < n; jj++) {
                const float pw = __shfl_sync(0xffffffffu, pj, jj);
                const __nv_bfloat16 *vr = vp + sk_ap_kv_row(pages, j0 + jj, ps_shift, KVH, kvh, D);
#pragma unroll
                for (int i = 0; i < NO; i++) {
                    const int d = lane + 32 * i;
                    if (d < D) acc[i] = fmaf(pw, __bfloat162float(vr[d]), acc[i]);
                }
            }
        }
        const float inv = l > 0.0f ? 1.0f / l : 0.0f;
        __nv_bfloat16 *orow = (__nv_bfloat16 *)p.out + ((size_t)t * H + h) * D;
#pragma unroll
        for (int i = 0; i < NO; i++) {
            const int d = lane + 32 * i;
            if (d < D) orow[d] = __float2bfloat16_rn(acc[i] * inv);
        }
    }
}

/* ---- version 2: FlashAttention-2 on mma.sync ---------------------------------------------- */

template <int D, int BM>
struct sk_ap2_cfg {
    static constexpr int BN = 64;        /* KV positions per tile */
    static constexpr int NW = BM / 16;   /* warps, 16 query rows each */
    static constexpr int NT = NW * 32;   /* threads */
    static constexpr int LD = D + 8;     /* shared row stride (elements): odd 16-byte chunks */
    static constexpr int CH = D / 8;     /* 16-byte chunks per row */
    /* sQ[BM][LD], then sK[2][BN][LD], sV[2][BN][LD] (bf16) */
    static constexpr int SMEM = (BM + 4 * BN) * LD * 2;
    static_assert(D % 16 == 0, "head dim must be a multiple of 16");
    static_assert(BM == 64 || BM == 128, "BM is 64 or 128");
};

/* Issue the cp.async copies of KV tile [n0, n0 + BN) of (sequence, KV head) into sk / sv
 * (row-major, stride LD); rows at or beyond kv_len are zero-filled. */
template <int D, int BM>
static __device__ __forceinline__ void sk_ap2_load_kv(const sk_attn_params &p,
                                                      const int32_t *pages, int kv_len, int kvh,
                                                      int n0, int ps_shift, uint32_t sk,
                                                      uint32_t sv) {
    typedef sk_ap2_cfg<D, BM> C;
    const __nv_bfloat16 *kp = (const __nv_bfloat16 *)p.kv.k;
    const __nv_bfloat16 *vp = (const __nv_bfloat16 *)p.kv.v;
#pragma unroll
    for (int idx = threadIdx.x; idx < C::BN * C::CH; idx += C::NT) {
        const int r = idx / C::CH, c = idx % C::CH;
        const int n = n0 + r;
        const bool valid = n < kv_len;
        const size_t off =
            valid ? sk_ap_kv_row(pages, n, ps_shift, p.kv.n_kv_heads, kvh, D) + (size_t)c * 8 : 0;
        const uint32_t so = (uint32_t)((r * C::LD + c * 8) * 2);
        sk_ap_cp_async16(sk + so, kp + off, valid);
        sk_ap_cp_async16(sv + so, vp + off, valid);
    }
}

template <int D, int BM>
static __global__ void __launch_bounds__(sk_ap2_cfg<D, BM>::NT, 1)
    sk_attn_prefill_kernel2(const __grid_constant__ sk_attn_params p) {
    typedef sk_ap2_cfg<D, BM> C;
    constexpr int BN = C::BN, LD = C::LD, CH = C::CH;
    constexpr int KD = D / 16;  /* k-steps of Q K^T; 16-column blocks of V */
    constexpr int NS = BN / 8;  /* 8-column tiles of S */
    constexpr int NO = D / 8;   /* 8-column tiles of O */

    /* (128-byte base, session 21: cp.async destinations on their sources' sector alignment;
     * see sk_w4_tq_kernel in w4.cuh) */
    extern __shared__ __align__(128) unsigned char sk_ap_smem[];
    __nv_bfloat16 *sQ = (__nv_bfloat16 *)sk_ap_smem;
    const uint32_t sQa = sk_ap_smem_u32(sQ);
    const uint32_t sKa = sQa + BM * LD * 2;              /* stage s at + s * BN * LD * 2 */
    const uint32_t sVa = sKa + 2 * BN * LD * 2;
    __shared__ int s_tiles[SK_AP_SCHED_CAP];
    __shared__ int s_max;

    const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
    const int g = lane >> 2, t4 = lane & 3;
    const int H = p.n_heads, group = H / p.kv.n_kv_heads;
    const int ps_shift = __ffs(p.kv.page_size) - 1;
    const float sl2 = p.sm_scale * 1.4426950408889634f; /* scores -> log2 units */

    const sk_ap_sched sch = sk_ap_sched_init<BM>(p, s_tiles, &s_max);
    const long long per_r = (long long)p.batch * H;

    for (long long w = blockIdx.x; w < sch.total; w += gridDim.x) {
        const int r = (int)(w / per_r);
        const int rem = (int)(w % per_r);
        const int b = rem / H, h = rem % H;
        const int n_tiles = b < SK_AP_SCHED_CAP ? s_tiles[b] : sk_ap_tiles_of<BM>(p.qo_indptr, b);
        if (r >= n_tiles) continue; /* block-uniform */
        const int qt = n_tiles - 1 - r;
        const int kvh = h / group;
        const int q0 = p.qo_indptr[b], q_len = p.qo_indptr[b + 1] - q0;
        const int kv_len = p.kv.kv_len[b];
        const int m0 = qt * BM;
        const int p_lo = kv_len - q_len + m0;                 /* position of the tile's row 0 */
        const int p_hi = p_lo + min(BM, q_len - m0) - 1;      /* of its last real row */
        const int n_kv = p_hi >= 0 ? p_hi / BN + 1 : 0;       /* KV tiles to visit */
        const int j_mask = p_lo >= 0 ? (p_lo + 1) / BN : 0;   /* first tile crossing the diagonal */
        const int32_t *pages = p.kv.indices + p.kv.indptr[b];

        /* Q tile (rows beyond q_len zero-filled) and KV tile 0. */
        {
            const __nv_bfloat16 *qb = (const __nv_bfloat16 *)p.q + (size_t)h * D;
#pragma unroll
            for (int idx = tid; idx < BM * CH; idx += C::NT) {
                const int rr = idx / CH, c = idx % CH;
                const bool valid = m0 + rr < q_len;
                const __nv_bfloat16 *src =
                    valid ? qb + (size_t)(q0 + m0 + rr) * p.q_stride + c * 8 : qb;
                sk_ap_cp_async16(sQa + (uint32_t)((rr * LD + c * 8) * 2), src, valid);
            }
            if (n_kv > 0) sk_ap2_load_kv<D, BM>(p, pages, kv_len, kvh, 0, ps_shift, sKa, sVa);
            sk_ap_cp_commit();
            sk_ap_cp_wait<0>();
            __syncthreads();
        }
        uint32_t qf[KD][4];
#pragma unroll
        for (int kk = 0; kk < KD; kk++)
            sk_ap_ldsm_x4(qf[kk], sQa + (uint32_t)(((warp * 16) * LD + kk * 16 +
                                                    sk_ap_lane_off_a(lane, LD)) * 2));

        float o[NO][4];
#pragma unroll
        for (int i = 0; i < NO; i++) o[i][0] = o[i][1] = o[i][2] = o[i][3] = 0.0f;
        float mrow[2] = {-INFINITY, -INFINITY}, lrow[2] = {0.0f, 0.0f};
        const int row_pos0 = p_lo + warp * 16 + g; /* position of this thread's row g */

        for (int j = 0; j < n_kv; j++) {
            if (j + 1 < n_kv) {
                const uint32_t st = (uint32_t)(((j + 1) & 1) * BN * LD * 2);
                sk_ap2_load_kv<D, BM>(p, pages, kv_len, kvh, (j + 1) * BN, ps_shift, sKa + st,
                                      sVa + st);
            }
            sk_ap_cp_commit();
            sk_ap_cp_wait<1>();
            __syncthreads();
            const uint32_t st = (uint32_t)((j & 1) * BN * LD * 2);
            const uint32_t sK = sKa + st, sV = sVa + st;

            /* S = Q K^T (16 x BN per warp) */
            float s[NS][4];
#pragma unroll
            for (int i = 0; i < NS; i++) s[i][0] = s[i][1] = s[i][2] = s[i][3] = 0.0f;
#pragma unroll
            for (int kk = 0; kk < KD; kk++) {
#pragma unroll
                for (int np = 0; np < BN / 16; np++) {
                    uint32_t kb[4];
                    sk_ap_ldsm_x4(kb, sK + (uint32_t)((np * 16 * LD + kk * 16 +
                                                       sk_ap_lane_off_bk(lane, LD)) * 2));
                    sk_ap_mma(s[2 * np], qf[kk], kb[0], kb[1]);
                    sk_ap_mma(s[2 * np + 1], qf[kk], kb[2], kb[3]);
                }
            }
            /* causal mask on tiles that cross the diagonal */
            if (j >= j_mask) {
                const int n0 = j * BN;
#pragma unroll
                for (int nt = 0; nt < NS; nt++) {
#pragma unroll
                    for (int e = 0; e < 4; e++) {
                        const int col = n0 + nt * 8 + 2 * t4 + (e & 1);
                        const int rp = row_pos0 + (e >> 1) * 8;
                        if (col > rp) s[nt][e] = -INFINITY;
                    }
                }
            }
            /* online softmax: rows g (e = 0, 1) and g + 8 (e = 2, 3) */
            float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
            for (int nt = 0; nt < NS; nt++) {
                mx[0] = fmaxf(mx[0], fmaxf(s[nt][0], s[nt][1]));
                mx[1] = fmaxf(mx[1], fmaxf(s[nt][2], s[nt][3]));
            }
            float msc[2], alpha[2];
#pragma unroll
            for (int rr = 0; rr < 2; rr++) {
                mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 1));
                mx[rr] = fmaxf(mx[rr], __shfl_xor_sync(0xffffffffu, mx[rr], 2));
                const float m_new = fmaxf(mrow[rr], mx[rr]);
                /* all masked so far: subtract 0 so that exp2(-inf - m) stays 0, never NaN */
                msc[rr] = m_new == -INFINITY ? 0.0f : m_new * sl2;
                alpha[rr] = sk_ap_exp2(mrow[rr] * sl2 - msc[rr]);
                mrow[rr] = m_new;
            }
            float ls[2] = {0.0f, 0.0f};
#pragma unroll
            for (int nt = 0; nt < NS; nt++) {
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    s[nt][e] = sk_ap_exp2(fmaf(s[nt][e], sl2, -msc[e >> 1]));
                    ls[e >> 1] += s[nt][e];
                }
            }
            lrow[0] = lrow[0] * alpha[0] + ls[0];
            lrow[1] = lrow[1] * alpha[1] + ls[1];
#pragma unroll
            for (int i = 0; i < NO; i++) {
                o[i][0] *= alpha[0];
                o[i][1] *= alpha[0];
                o[i][2] *= alpha[1];
                o[i][3] *= alpha[1];
            }
            /* O += P V: P's accumulator pairs become the A fragments of k-block kb */
#pragma unroll
            for (int kb = 0; kb < BN / 16; kb++) {
                uint32_t pa[4];
                pa[0] = sk_ap_pack_bf16(s[2 * kb][0], s[2 * kb][1]);
                pa[1] = sk_ap_pack_bf16(s[2 * kb][2], s[2 * kb][3]);
                pa[2] = sk_ap_pack_bf16(s[2 * kb + 1][0], s[2 * kb + 1][1]);
                pa[3] = sk_ap_pack_bf16(s[2 * kb + 1][2], s[2 * kb + 1][3]);
#pragma unroll
                for (int dp = 0; dp < KD; dp++) {
                    uint32_t vb[4];
                    sk_ap_ldsm_x4_t(vb, sV + (uint32_t)((kb * 16 * LD + dp * 16 +
                                                         sk_ap_lane_off_bv(lane, LD)) * 2));
                    sk_ap_mma(o[2 * dp], pa, vb[0], vb[1]);
                    sk_ap_mma(o[2 * dp + 1], pa, vb[2], vb[3]);
                }
            }
            __syncthreads(); /* stage j & 1 is refilled by the next iteration */
        }

        /* normalise, stage the warp's 16 rows in its own rows of sQ, store 16-byte chunks */
        float inv[2];
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            float l = lrow[rr];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            inv[rr] = l > 0.0f ? 1.0f / l : 0.0f;
        }
        uint32_t *sQw = (uint32_t *)(sQ + (warp * 16) * LD);
#pragma unroll
        for (int i = 0; i < NO; i++) {
            sQw[(g * LD + i * 8 + 2 * t4) / 2] =
                sk_ap_pack_bf16(o[i][0] * inv[0], o[i][1] * inv[0]);
            sQw[((g + 8) * LD + i * 8 + 2 * t4) / 2] =
                sk_ap_pack_bf16(o[i][2] * inv[1], o[i][3] * inv[1]);
        }
        __syncwarp();
        __nv_bfloat16 *ob = (__nv_bfloat16 *)p.out + (size_t)h * D;
#pragma unroll
        for (int idx = lane; idx < 16 * CH; idx += 32) {
            const int rr = idx / CH, c = idx % CH;
            const int row = m0 + warp * 16 + rr;
            if (row < q_len)
                *(uint4 *)(ob + (size_t)(q0 + row) * H * D + c * 8) =
                    *(const uint4 *)(sQ + (warp * 16 + rr) * LD + c * 8);
        }
        __syncthreads(); /* sQ is refilled by the next item */
    }
}

/* ---- version 3: FlashAttention-3 style on wgmma (sm_90a) ---------------------------------- */

/* Block: 2 warpgroups (256 threads), BM = 128 query rows (64 per warpgroup), BN = 128 KV
 * positions per tile, head dim D = 64 or 128. Shared tiles are stored as D/64 column halves of
 * [rows][64] bf16 (128-byte rows) with the 128-byte swizzle (16-byte chunk c of row r at chunk
 * c ^ (r % 8)), the canonical layout wgmma reads with a descriptor:
 *   Q (A of S = Q K^T) and K (B of S): K-major, SBO = 1024 bytes (next 8 rows), LBO unused;
 *     a k16 step inside a 64-column half advances the start address by 32 bytes.
 *   V (B of O += P V): N-major (d contiguous; imm-trans-b = 1), LBO = BN * 128 bytes (next 64
 *     columns of d, i.e. the next half), SBO = 1024 bytes (next 8 KV rows); a k16 step advances
 *     16 rows = 2048 bytes.
 * Every tile starts on a 1024-byte boundary (the swizzle pattern's period), so the descriptors'
 * base offset is 0. cp.async writes the tiles (generic proxy); each thread fences
 * (fence.proxy.async) after its copies land and before the barrier that publishes them to wgmma
 * (async proxy).
 * Per warpgroup and KV tile j (FlashAttention-3's intra-warpgroup overlap): issue S_j = Q K_j^T
 * and O += P_{j-1} V_{j-1} back to back, wait for S_j only, run the softmax of S_j while the
 * tensor cores do P V, then wait for P V and rescale O. K runs one tile ahead of V, so two K
 * stages and two V stages suffice: at the top of iteration j the block waits for K_j and V_{j-1}
 * (one barrier), issues the two products, then gathers K_{j+1} and V_j into the other stages while
 * the tensor cores work. */
template <int D>
struct sk_ap3_cfg {
    static constexpr int BM = 128, BN = 128, NT = 256;
    static constexpr int Q_BYTES = BM * D * 2;
    static constexpr int KV_BYTES = BN * D * 2; /* one stage of K or of V */
    /* Q | K stage 0 | K stage 1 | V stage 0 | V stage 1, + slack to align the base to 1024 */
    static constexpr int SMEM = Q_BYTES + 4 * KV_BYTES + 1024;
    static_assert(D == 64 || D == 128, "v3: head dim 64 or 128");
};

/* Byte offset of 16-byte chunk c (of D/8) of row r in a [rows][D] tile stored as 128-byte-swizzled
 * 64-column halves. */
static __device__ __forceinline__ uint32_t sk_ap3_swz(int r, int c, int rows) {
    return (uint32_t)((c >> 3) * rows * 128 + r * 128 + (((c & 7) ^ (r & 7)) << 4));
}

/* K-major operand (Q, K): k16 step s of a tile with `rows` rows starting at `tile`, from row
 * `row0` (a multiple of 8). */
static __device__ __forceinline__ uint64_t sk_ap3_desc_k(uint32_t tile, int rows, int row0, int s) {
    return sk_wg_desc(tile + (uint32_t)((s >> 2) * rows * 128 + row0 * 128 + (s & 3) * 32), 16,
                      1024);
}
/* N-major V: k16 step s (KV rows 16s..16s+15) of a [rows][D] tile. */
static __device__ __forceinline__ uint64_t sk_ap3_desc_v(uint32_t tile, int rows, int s) {
    return sk_wg_desc(tile + (uint32_t)(s * 16 * 128), (uint32_t)(rows * 128), 1024);
}

/* wgmma.mma_async m64nNk16, bf16 in, fp32 accumulate (d: N/2 registers, the m16n8 C layout
 * repeated over N/8 column tiles for the warp's 16 rows); ss: A and B by descriptor; rs: A from
 * registers (the m16n8k16 A fragment of the warp's 16 rows); _t1: B N-major (imm-trans-b = 1).
 * scale_d = 0 overwrites d. Generated (mechanical operand lists). */
static __device__ __forceinline__ void sk_ap_wgmma_ss_n128_t0(float d[64], uint64_t da, uint64_t db,
                                                          int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" SK_WG_REGS64 "}, %64, "
                 "%65, p, 1, 1, 0, 0;\n}\n"
                 : SK_WG_ACC64(d)
                 : "l"(da), "l"(db), "r"(scale_d));
}
static __device__ __forceinline__ void sk_ap_wgmma_ss_n128_t1(float d[64], uint64_t da, uint64_t db,
                                                          int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" SK_WG_REGS64 "}, %64, "
                 "%65, p, 1, 1, 0, 1;\n}\n"
                 : SK_WG_ACC64(d)
                 : "l"(da), "l"(db), "r"(scale_d));
}
static __device__ __forceinline__ void sk_ap_wgmma_ss_n64_t0(float d[32], uint64_t da, uint64_t db,
                                                          int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" SK_WG_REGS32 "}, %32, "
                 "%33, p, 1, 1, 0, 0;\n}\n"
                 : SK_WG_ACC32(d)
                 : "l"(da), "l"(db), "r"(scale_d));
}
static __device__ __forceinline__ void sk_ap_wgmma_rs_n128_t1(float d[64], const uint32_t a[4],
                                                          uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" SK_WG_REGS64 "}, "
                 "{%64,%65,%66,%67}, %68, p, 1, 1, 1;\n}\n"
                 : SK_WG_ACC64(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
static __device__ __forceinline__ void sk_ap_wgmma_rs_n64_t1(float d[32], const uint32_t a[4],
                                                          uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %37, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 {" SK_WG_REGS32 "}, "
                 "{%32,%33,%34,%35}, %36, p, 1, 1, 1;\n}\n"
                 : SK_WG_ACC32(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}
static __device__ __forceinline__ void sk_ap_wgmma_rs_n128_t0(float d[64], const uint32_t a[4],
                                                          uint64_t db, int scale_d) {
    asm volatile("{\n.reg .pred p;\nsetp.ne.b32 p, %69, 0;\n"
                 "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 {" SK_WG_REGS64 "}, "
                 "{%64,%65,%66,%67}, %68, p, 1, 1, 0;\n}\n"
                 : SK_WG_ACC64(d)
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(db), "r"(scale_d));
}


/* Copy KV rows [n0, n0 + ROWS) of (sequence, KV head) from a pool into a swizzled tile; rows at
 * or beyond kv_len are zero-filled. All 256 threads. */
template <int D, int ROWS>
static __device__ __forceinline__ void sk_ap3_load_kv(const __nv_bfloat16 *pool,
                                                      const int32_t *pages, int kv_len,
                                                      int n_kv_heads, int kvh, int n0,
                                                      int ps_shift, uint32_t dst) {
    constexpr int CH = D / 8;
#pragma unroll 4
    for (int idx = threadIdx.x; idx < ROWS * CH; idx += 256) {
        const int r = idx / CH, c = idx % CH, n = n0 + r;
        const bool valid = n < kv_len;
        const size_t off =
            valid ? sk_ap_kv_row(pages, n, ps_shift, n_kv_heads, kvh, D) + (size_t)c * 8 : 0;
        sk_ap_cp_async16(dst + sk_ap3_swz(r, c, ROWS), pool + off, valid);
    }
}

/* Online-softmax step on a warpgroup's S tile (BN/2 fp32 registers: rows g and g + 8 of the
 * warp's 16): masks columns above each row's position when `mask`, turns S into
 * p = exp2(S * sl2 - m * sl2) in place, updates m and l, returns the rescale factors alpha. */
template <int NS>
static __device__ __forceinline__ void sk_ap3_softmax(float (&s)[NS], float (&m)[2], float (&l)[2],
                                                      float (&alpha)[2], bool mask, int n0,
                                                      int row_pos, int t4, float sl2) {
    if (mask) {
#pragma unroll
        for (int i = 0; i < NS; i++) {
            const int col = n0 + (i >> 2) * 8 + 2 * t4 + (i & 1);
            if (col > row_pos + ((i >> 1) & 1) * 8) s[i] = -INFINITY;
        }
    }
    float mx[2] = {-INFINITY, -INFINITY};
#pragma unroll
    for (int i = 0; i < NS; i++) mx[(i >> 1) & 1] = fmaxf(mx[(i >> 1) & 1], s[i]);
    float msc[2];
#pragma unroll
    for (int r = 0; r < 2; r++) {
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 1));
        mx[r] = fmaxf(mx[r], __shfl_xor_sync(0xffffffffu, mx[r], 2));
        const float m_new = fmaxf(m[r], mx[r]);
        msc[r] = m_new == -INFINITY ? 0.0f : m_new * sl2;
        alpha[r] = sk_ap_exp2(m[r] * sl2 - msc[r]);
        m[r] = m_new;
    }
    float ls[2] = {0.0f, 0.0f};
#pragma unroll
    for (int i = 0; i < NS; i++) {
        s[i] = sk_ap_exp2(fmaf(s[i], sl2, -msc[(i >> 1) & 1]));
        ls[(i >> 1) & 1] += s[i];
    }
    l[0] = l[0] * alpha[0] + ls[0];
    l[1] = l[1] * alpha[1] + ls[1];
}

/* P (bf16 A fragments, 4 per k16 step) from the exponentiated S accumulators. */
template <int NS>
static __device__ __forceinline__ void sk_ap3_pack_p(const float (&s)[NS], uint32_t (&pa)[NS / 2]) {
#pragma unroll
    for (int k = 0; k < NS / 8; k++) {
        pa[4 * k + 0] = sk_ap_pack_bf16(s[8 * k + 0], s[8 * k + 1]);
        pa[4 * k + 1] = sk_ap_pack_bf16(s[8 * k + 2], s[8 * k + 3]);
        pa[4 * k + 2] = sk_ap_pack_bf16(s[8 * k + 4], s[8 * k + 5]);
        pa[4 * k + 3] = sk_ap_pack_bf16(s[8 * k + 6], s[8 * k + 7]);
    }
}

template <int D>
static __device__ __forceinline__ void sk_ap3_wgmma_pv(float (&o)[D / 2], const uint32_t *pa,
                                                       uint64_t db) {
    if constexpr (D == 128)
        sk_ap_wgmma_rs_n128_t1(o, pa, db, 1);
    else
        sk_ap_wgmma_rs_n64_t1(o, pa, db, 1);
}

template <int D>
static __global__ void __launch_bounds__(256, 1)
    sk_attn_prefill_kernel3(const __grid_constant__ sk_attn_params p) {
    typedef sk_ap3_cfg<D> C;
    constexpr int BM = C::BM, BN = C::BN;
    constexpr int NS = BN / 2; /* S registers */
    constexpr int NO = D / 2;  /* O registers */
    constexpr int KS = D / 16; /* k16 steps of Q K^T */
    constexpr int VS = BN / 16; /* k16 steps of P V */

    /* (128-byte base: see sk_attn_prefill_kernel2) */
    extern __shared__ __align__(128) unsigned char sk_ap3_smem[];
    const uint32_t base = (sk_ap_smem_u32(sk_ap3_smem) + 1023u) & ~1023u;
    const uint32_t sQ = base, sK = base + C::Q_BYTES, sV = sK + 2 * C::KV_BYTES;
    __shared__ int s_tiles[SK_AP_SCHED_CAP];
    __shared__ int s_max;

    const int tid = threadIdx.x, wg = tid >> 7, wiw = (tid >> 5) & 3, lane = tid & 31;
    const int g = lane >> 2, t4 = lane & 3;
    const int H = p.n_heads, KVH = p.kv.n_kv_heads, group = H / KVH;
    const int ps_shift = __ffs(p.kv.page_size) - 1;
    const float sl2 = p.sm_scale * 1.4426950408889634f;
    const __nv_bfloat16 *kpool = (const __nv_bfloat16 *)p.kv.k;
    const __nv_bfloat16 *vpool = (const __nv_bfloat16 *)p.kv.v;

    const sk_ap_sched sch = sk_ap_sched_init<BM>(p, s_tiles, &s_max);
    const long long per_r = (long long)p.batch * H;

    for (long long w = blockIdx.x; w < sch.total; w += gridDim.x) {
        const int r = (int)(w / per_r);
        const int rem = (int)(w % per_r);
        const int b = rem / H, h = rem % H;
        const int n_tiles = b < SK_AP_SCHED_CAP ? s_tiles[b] : sk_ap_tiles_of<BM>(p.qo_indptr, b);
        if (r >= n_tiles) continue; /* block-uniform */
        const int qt = n_tiles - 1 - r, kvh = h / group;
        const int q0 = p.qo_indptr[b], q_len = p.qo_indptr[b + 1] - q0;
        const int kv_len = p.kv.kv_len[b];
        const int m0 = qt * BM;
        const int p_lo = kv_len - q_len + m0;
        const int p_hi = p_lo + min(BM, q_len - m0) - 1;
        const int n_kv = p_hi >= 0 ? p_hi / BN + 1 : 0;
        const int wg_lo = p_lo + wg * 64; /* position of this warpgroup's first row */
        const int j_mask = wg_lo >= 0 ? (wg_lo + 1) / BN : 0;
        const int row_pos = wg_lo + wiw * 16 + g; /* this thread's row g (row g + 8: +8) */
        const int32_t *pages = p.kv.indices + p.kv.indptr[b];
        __nv_bfloat16 *ob = (__nv_bfloat16 *)p.out + (size_t)h * D;
        const int row_a = m0 + wg * 64 + wiw * 16 + g; /* output rows row_a, row_a + 8 */

        float o[NO];
#pragma unroll
        for (int i = 0; i < NO; i++) o[i] = 0.0f;
        float lrow[2] = {0.0f, 0.0f};

        if (n_kv > 0) {
            /* prologue: Q and K_0, then K_1 and V_0 in flight while S_0 is computed */
            {
                const __nv_bfloat16 *qb = (const __nv_bfloat16 *)p.q + (size_t)h * D;
#pragma unroll 4
                for (int idx = tid; idx < BM * (D / 8); idx += 256) {
                    const int rr = idx / (D / 8), c = idx % (D / 8);
                    const bool valid = m0 + rr < q_len;
                    const __nv_bfloat16 *src =
                        valid ? qb + (size_t)(q0 + m0 + rr) * p.q_stride + c * 8 : qb;
                    sk_ap_cp_async16(sQ + sk_ap3_swz(rr, c, BM), src, valid);
                }
            }
            sk_ap3_load_kv<D, BN>(kpool, pages, kv_len, KVH, kvh, 0, ps_shift, sK);
            sk_ap_cp_commit();
            sk_ap_cp_wait<0>();
            sk_wg_fence_proxy_async();
            __syncthreads();

            float s[NS]; /* the first wgmma overwrites it (scale-d 0); zeroed to keep it defined */
            uint32_t pa[NS / 2];
#pragma unroll
            for (int i = 0; i < NS; i++) s[i] = 0.0f;
            float mrow[2] = {-INFINITY, -INFINITY}, alpha[2];
            sk_wg_fence();
#pragma unroll
            for (int k = 0; k < KS; k++)
                sk_ap_wgmma_ss_n128_t0(s, sk_ap3_desc_k(sQ, BM, wg * 64, k),
                                       sk_ap3_desc_k(sK, BN, 0, k), k > 0);
            sk_wg_commit();
            /* K_1 and V_0 (other stages than the one S_0 reads) while S_0 runs */
            if (n_kv > 1)
                sk_ap3_load_kv<D, BN>(kpool, pages, kv_len, KVH, kvh, BN, ps_shift,
                                      sK + C::KV_BYTES);
            sk_ap3_load_kv<D, BN>(vpool, pages, kv_len, KVH, kvh, 0, ps_shift, sV);
            sk_ap_cp_commit();
            sk_wg_wait<0>();
            sk_wg_pin(s);
            sk_ap3_softmax<NS>(s, mrow, lrow, alpha, 0 >= j_mask, 0, row_pos, t4, sl2);

            for (int j = 1; j < n_kv; j++) {
                sk_ap_cp_wait<0>(); /* K_j, V_{j-1} */
                sk_wg_fence_proxy_async();
                __syncthreads();    /* ... and K_{j-1}, V_{j-2} are no longer read */

                sk_ap3_pack_p<NS>(s, pa); /* P_{j-1} */
                sk_wg_pin(pa);
                sk_wg_pin(o);
                sk_wg_fence();
                const uint32_t kt = sK + (j & 1) * C::KV_BYTES;
#pragma unroll
                for (int k = 0; k < KS; k++)
                    sk_ap_wgmma_ss_n128_t0(s, sk_ap3_desc_k(sQ, BM, wg * 64, k),
                                           sk_ap3_desc_k(kt, BN, 0, k), k > 0);
                sk_wg_commit();
                const uint32_t vt = sV + ((j - 1) & 1) * C::KV_BYTES;
#pragma unroll
                for (int k = 0; k < VS; k++)
                    sk_ap3_wgmma_pv<D>(o, pa + 4 * k, sk_ap3_desc_v(vt, BN, k));
                sk_wg_commit();
                /* gather K_{j+1} and V_j into the stages not read by the two products in flight */
                if (j + 1 < n_kv)
                    sk_ap3_load_kv<D, BN>(kpool, pages, kv_len, KVH, kvh, (j + 1) * BN, ps_shift,
                                          sK + ((j + 1) & 1) * C::KV_BYTES);
                sk_ap3_load_kv<D, BN>(vpool, pages, kv_len, KVH, kvh, j * BN, ps_shift,
                                      sV + (j & 1) * C::KV_BYTES);
                sk_ap_cp_commit();
                sk_wg_wait<1>(); /* S_j */
                sk_wg_pin(s);
                sk_ap3_softmax<NS>(s, mrow, lrow, alpha, j >= j_mask, j * BN, row_pos, t4, sl2);
                sk_wg_wait<0>(); /* P_{j-1} V_{j-1} */
                sk_wg_pin(o);
                sk_wg_pin(pa);
#pragma unroll
                for (int i = 0; i < NO; i++) o[i] *= alpha[(i >> 1) & 1];
            }

            /* epilogue: O += P_{n-1} V_{n-1} */
            sk_ap3_pack_p<NS>(s, pa);
            sk_ap_cp_wait<0>();
            sk_wg_fence_proxy_async();
            __syncthreads();
            sk_wg_pin(pa);
            sk_wg_pin(o);
            sk_wg_fence();
            const uint32_t vt = sV + ((n_kv - 1) & 1) * C::KV_BYTES;
#pragma unroll
            for (int k = 0; k < VS; k++)
                sk_ap3_wgmma_pv<D>(o, pa + 4 * k, sk_ap3_desc_v(vt, BN, k));
            sk_wg_commit();
            sk_wg_wait<0>();
            sk_wg_pin(o);
            sk_wg_pin(pa);
        }

        /* normalise and store (rows beyond q_len are not written) */
        float inv[2];
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            float l = lrow[rr];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            inv[rr] = l > 0.0f ? 1.0f / l : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < NO; i += 4) {
            const int col = (i >> 2) * 8 + 2 * t4;
            if (row_a < q_len)
                *(uint32_t *)(ob + (size_t)(q0 + row_a) * H * D + col) =
                    sk_ap_pack_bf16(o[i] * inv[0], o[i + 1] * inv[0]);
            if (row_a + 8 < q_len)
                *(uint32_t *)(ob + (size_t)(q0 + row_a + 8) * H * D + col) =
                    sk_ap_pack_bf16(o[i + 2] * inv[1], o[i + 3] * inv[1]);
        }
        __syncthreads(); /* the next item refills Q, K and V */
    }
}

/* ---- version 4: version 3 with a producer warpgroup (sm_90a) ------------------------------ */

/* Block: 3 warpgroups (384 threads). Warpgroup 0 is the producer; warpgroups 1 and 2 are the
 * consumers, 64 query rows each, with version 3's per-warpgroup pipeline (S_j = Q K_j^T issued with
 * P_{j-1} V_{j-1}, softmax of S_j under the P V product) and the same tile layouts and descriptors.
 * Version 3 spends most of its issue slots on the gather's address arithmetic (ncu on the H200:
 * ~1,400 instructions per warp per KV tile, 36% issue-slot use, the integer pipe the busiest); here
 * one producer thread moves K and V with the tensor memory accelerator: a 2-D tensor map per pool
 * ([rows][head_dim], row = (page * n_kv_heads + kv_head) * page_size + slot; 64-column boxes of
 * min(page_size, 128) rows, 128-byte swizzle, which is the layout wgmma's descriptors read), one
 * bulk copy per (page, 64-column half), completion counted in bytes on the stage's "full"
 * mbarrier. Q (once per item) is gathered by the whole producer warpgroup with cp.async, each
 * thread arriving on Q's barrier when its copies land (cp.async.mbarrier.arrive.noinc; the
 * consumers fence.proxy.async after waiting so that wgmma sees those generic-proxy writes).
 * Consumers release a stage through its "empty" mbarrier when the wgmma that read it completed.
 * The copies never read past the sequence's last page, but the last page's tail rows hold whatever
 * the pool holds there (NaN in the workbench): their scores are always masked (every tail
 * column lies past every row's position) and each consumer warpgroup zeroes the tail rows of the
 * last V tile in shared memory before its P V, so 0 * garbage cannot reach O.
 * Load order per item: Q, K_0, K_1, V_0, K_2, V_1, ..., V_{n-1}. Phases: the u-th use of a stage
 * waits for parity u & 1 on "full" and (u & 1) ^ 1 on "empty". The producer gives registers to the
 * consumers (setmaxnreg 72 / 216: 72 + 2 x 216 = 3 x 168, the entry count of a 384-thread
 * block). PP: FlashAttention-3's ping-pong of the two consumer warpgroups. */
template <int D>
struct sk_ap4_cfg {
    static constexpr int BM = 128, BN = 128, NT = 384;
    static constexpr int Q_BYTES = BM * D * 2;
    static constexpr int KV_BYTES = BN * D * 2;
    /* K and V stages each: 2 at head dim 128 (Q 32 KB + 4 x 32 KB), 4 at 64 (16 + 8 x 16 KB) */
    static constexpr int NST = D == 64 ? 4 : 2;
    /* Q | K stages | V stages, + slack to align the base to 1024 */
    static constexpr int SMEM = Q_BYTES + 2 * NST * KV_BYTES + 1024;
    static_assert(D == 64 || D == 128, "v4: head dim 64 or 128");
};

/* (the mbarrier / TMA helpers: mbar.cuh) */

/* Version 4's tensor maps (built per launch by sk_attn_prefill_launch4). */
typedef struct sk_ap4_maps {
    CUtensorMap k, v;
} sk_ap4_maps;

/* One KV tile [n0, n0 + BN) by TMA (one thread): the pages it covers that hold tokens below
 * kv_len, each 64-column half of each; returns nothing, arms `full` with the byte count first. */
template <int D, int BN>
static __device__ __forceinline__ void sk_ap4_tma_tile(const CUtensorMap *map,
                                                       const int32_t *pages, int kv_len, int KVH,
                                                       int kvh, int n0, int ps_shift, uint32_t dst,
                                                       uint32_t full) {
    const int ps = 1 << ps_shift;
    const int rows = ps < BN ? ps : BN; /* box rows */
    const int npg = (kv_len + ps - 1) >> ps_shift;
    const int pg_lo = n0 >> ps_shift;
    int pg_hi = (n0 + BN + ps - 1) >> ps_shift; /* exclusive */
    if (pg_hi > npg) pg_hi = npg;
    const uint32_t bytes = (uint32_t)((pg_hi - pg_lo) * (D / 64) * rows * 128);
    sk_mb_expect_tx(full, bytes);
    for (int pg = pg_lo; pg < pg_hi; pg++) {
        const int pid = __ldg(pages + pg);
        const int row0 = (pid * KVH + kvh) * ps;
        const int r = pg * ps - n0; /* first tile row of this page (0 when ps >= BN) */
#pragma unroll
        for (int hh = 0; hh < D / 64; hh++)
            sk_tma_load_2d(dst + (uint32_t)(hh * BN * 128 + r * 128), map, hh * 64, row0, full);
    }
}

/* Zero rows [r_lo, ROWS) of a swizzled [ROWS][D] tile (one consumer warpgroup, ctid 0..127),
 * then make the zeros visible to the warpgroup's wgmma (fence, warpgroup barrier 3 + cw). */
template <int D, int ROWS>
static __device__ __forceinline__ void sk_ap4_zero_tail(uint32_t tile, int r_lo, int ctid, int cw) {
    constexpr int CH = D / 8;
    for (int idx = r_lo * CH + ctid; idx < ROWS * CH; idx += 128) {
        const int r = idx / CH, c = idx % CH;
        asm volatile("st.shared.v4.u32 [%0], {%1, %1, %1, %1};\n" ::"r"(tile + sk_ap3_swz(r, c, ROWS)),
                     "r"(0)
                     : "memory");
    }
    sk_wg_fence_proxy_async();
    asm volatile("bar.sync %0, 128;\n" ::"r"(3 + cw) : "memory");
}

/* Producer side of one load: the thread's cp.async copies issued so far arrive on `full` when
 * they have landed (noinc: this asynchronous arrival is the thread's one arrival of the phase), so
 * the producer never waits for its own loads, only for free stages. */
static __device__ __forceinline__ void sk_ap4_publish(uint32_t full) {
    asm volatile("cp.async.mbarrier.arrive.noinc.shared::cta.b64 [%0];\n" ::"r"(full) : "memory");
}

/* Ping-pong of the two consumer warpgroups (FlashAttention-3's warp scheduler barriers, PP):
 * each issues its products only in its turn (named barrier 1 + cw, 256 threads) and hands the
 * turn to the other after committing them, so one warpgroup's softmax runs under the other's
 * tensor-core work. Both warpgroups pass the same number of issue points per item. */
template <bool PP>
static __device__ __forceinline__ void sk_ap4_turn_wait(int cw) {
    if (PP) asm volatile("bar.sync %0, 256;\n" ::"r"(1 + cw) : "memory");
}
template <bool PP>
static __device__ __forceinline__ void sk_ap4_turn_pass(int cw) {
    if (PP) asm volatile("bar.arrive %0, 256;\n" ::"r"(2 - cw) : "memory");
}

/* One work item's geometry, computed identically by the producer and the consumers. */
struct sk_ap4_item {
    int b, h, kvh, q0, q_len, kv_len, m0, p_lo, n_kv;
};

template <int BM, int BN>
static __device__ __forceinline__ bool sk_ap4_item_of(const sk_attn_params &p, long long w,
                                                      long long per_r, const int *s_tiles,
                                                      sk_ap4_item &it) {
    const int r = (int)(w / per_r);
    const int rem = (int)(w % per_r);
    const int H = p.n_heads;
    it.b = rem / H;
    it.h = rem % H;
    const int n_tiles =
        it.b < SK_AP_SCHED_CAP ? s_tiles[it.b] : sk_ap_tiles_of<BM>(p.qo_indptr, it.b);
    if (r >= n_tiles) return false;
    const int qt = n_tiles - 1 - r;
    it.kvh = it.h / (H / p.kv.n_kv_heads);
    it.q0 = p.qo_indptr[it.b];
    it.q_len = p.qo_indptr[it.b + 1] - it.q0;
    it.kv_len = p.kv.kv_len[it.b];
    it.m0 = qt * BM;
    it.p_lo = it.kv_len - it.q_len + it.m0;
    const int p_hi = it.p_lo + min(BM, it.q_len - it.m0) - 1;
    it.n_kv = p_hi >= 0 ? p_hi / BN + 1 : 0;
    return true;
}

template <int D, bool PP>
static __global__ void __launch_bounds__(384, 1)
    sk_attn_prefill_kernel4(const __grid_constant__ sk_attn_params p,
                            const __grid_constant__ sk_ap4_maps maps) {
    typedef sk_ap4_cfg<D> C;
    constexpr int BM = C::BM, BN = C::BN;
    constexpr int NS = BN / 2;  /* S registers */
    constexpr int NO = D / 2;   /* O registers */
    constexpr int KS = D / 16;  /* k16 steps of Q K^T */
    constexpr int VS = BN / 16; /* k16 steps of P V */

    extern __shared__ __align__(16) unsigned char sk_ap4_smem[];
    const uint32_t base = (sk_ap_smem_u32(sk_ap4_smem) + 1023u) & ~1023u;
    const uint32_t sQ = base, sK = base + C::Q_BYTES, sV = sK + C::NST * C::KV_BYTES;
    __shared__ int s_tiles[SK_AP_SCHED_CAP];
    __shared__ int s_max;
    /* q_full, q_empty, k_full[NS], k_empty[NS], v_full[NS], v_empty[NS] */
    __shared__ __align__(8) uint64_t s_bar[2 + 4 * C::NST];
    const uint32_t bq_full = sk_ap_smem_u32(&s_bar[0]), bq_empty = bq_full + 8;
    const uint32_t bk_full = bq_full + 16, bk_empty = bk_full + 8 * C::NST;
    const uint32_t bv_full = bk_empty + 8 * C::NST, bv_empty = bv_full + 8 * C::NST;

    const int tid = threadIdx.x, wg = tid >> 7;
    if (tid == 0) {
        sk_mb_init(bq_full, 128);
        sk_mb_init(bq_empty, 256);
#pragma unroll
        for (int i = 0; i < C::NST; i++) {
            sk_mb_init(bk_full + 8 * i, 1);
            sk_mb_init(bk_empty + 8 * i, 256);
            sk_mb_init(bv_full + 8 * i, 1);
            sk_mb_init(bv_empty + 8 * i, 256);
        }
    }
    /* its block barriers also publish the mbarrier initialisation */
    const sk_ap_sched sch = sk_ap_sched_init<BM>(p, s_tiles, &s_max);
    const long long per_r = (long long)p.batch * p.n_heads;
    const int ps_shift = __ffs(p.kv.page_size) - 1;
    const int KVH = p.kv.n_kv_heads;

    if (wg == 0) {
        /* ---- producer ---- */
        asm volatile("setmaxnreg.dec.sync.aligned.u32 72;\n" ::: "memory");
        uint32_t kc = 0, vc = 0, qc = 0;
        for (long long w = blockIdx.x; w < sch.total; w += gridDim.x) {
            sk_ap4_item it;
            if (!sk_ap4_item_of<BM, BN>(p, w, per_r, s_tiles, it) || it.n_kv == 0) continue;
            const int32_t *pages = p.kv.indices + p.kv.indptr[it.b];
            sk_mb_wait(bq_empty, (qc & 1) ^ 1);
            {
                const __nv_bfloat16 *qb = (const __nv_bfloat16 *)p.q + (size_t)it.h * D;
#pragma unroll 2
                for (int idx = tid; idx < BM * (D / 8); idx += 128) {
                    const int rr = idx / (D / 8), c = idx % (D / 8);
                    const bool valid = it.m0 + rr < it.q_len;
                    const __nv_bfloat16 *src =
                        valid ? qb + (size_t)(it.q0 + it.m0 + rr) * p.q_stride + c * 8 : qb;
                    sk_ap_cp_async16(sQ + sk_ap3_swz(rr, c, BM), src, valid);
                }
            }
            sk_ap4_publish(bq_full);
            qc++;
            if (tid != 0) continue; /* one thread moves K and V */
            for (int j = 0; j <= it.n_kv; j++) {
                if (j < it.n_kv) {
                    const uint32_t st = kc % C::NST, par = ((kc / C::NST) & 1) ^ 1;
                    sk_mb_wait(bk_empty + 8 * st, par);
                    sk_ap4_tma_tile<D, BN>(&maps.k, pages, it.kv_len, KVH, it.kvh, j * BN,
                                           ps_shift, sK + st * C::KV_BYTES, bk_full + 8 * st);
                    kc++;
                }
                if (j >= 1) {
                    const uint32_t st = vc % C::NST, par = ((vc / C::NST) & 1) ^ 1;
                    sk_mb_wait(bv_empty + 8 * st, par);
                    sk_ap4_tma_tile<D, BN>(&maps.v, pages, it.kv_len, KVH, it.kvh, (j - 1) * BN,
                                           ps_shift, sV + st * C::KV_BYTES, bv_full + 8 * st);
                    vc++;
                }
            }
        }
        sk_ap_cp_wait<0>(); /* nothing of ours may still be in flight when the thread exits */
        return;
    }

    /* ---- consumers ---- */
    asm volatile("setmaxnreg.inc.sync.aligned.u32 216;\n" ::: "memory");
    const int cw = wg - 1, wiw = (tid >> 5) & 3, lane = tid & 31;
    if (PP && cw == 0) asm volatile("bar.arrive 1, 256;\n" ::: "memory"); /* consumer 0 goes first */
    const int g = lane >> 2, t4 = lane & 3;
    const int H = p.n_heads;
    const float sl2 = p.sm_scale * 1.4426950408889634f;
    uint32_t kc = 0, vc = 0, qc = 0;

    for (long long w = blockIdx.x; w < sch.total; w += gridDim.x) {
        sk_ap4_item it;
        if (!sk_ap4_item_of<BM, BN>(p, w, per_r, s_tiles, it)) continue; /* warpgroup-uniform */
        const int n_kv = it.n_kv;
        const int wg_lo = it.p_lo + cw * 64; /* position of this warpgroup's first row */
        const int j_mask = wg_lo >= 0 ? (wg_lo + 1) / BN : 0;
        const int row_pos = wg_lo + wiw * 16 + g; /* this thread's row g (row g + 8: +8) */
        __nv_bfloat16 *ob = (__nv_bfloat16 *)p.out + (size_t)it.h * D;
        const int row_a = it.m0 + cw * 64 + wiw * 16 + g; /* output rows row_a, row_a + 8 */

        float o[NO];
#pragma unroll
        for (int i = 0; i < NO; i++) o[i] = 0.0f;
        float lrow[2] = {0.0f, 0.0f};

        if (n_kv > 0) {
            sk_mb_wait(bq_full, qc & 1);
            sk_wg_fence_proxy_async(); /* cp.async (generic proxy) writes -> wgmma (async proxy) */
            float s[NS]; /* the first wgmma overwrites it (scale-d 0); zeroed to keep it defined */
            uint32_t pa[NS / 2];
#pragma unroll
            for (int i = 0; i < NS; i++) s[i] = 0.0f;
            float mrow[2] = {-INFINITY, -INFINITY}, alpha[2];
            {
                const uint32_t st = kc % C::NST;
                sk_mb_wait(bk_full + 8 * st, (kc / C::NST) & 1);
                sk_wg_fence_proxy_async();
                sk_ap4_turn_wait<PP>(cw);
                sk_wg_fence();
                const uint32_t kt = sK + st * C::KV_BYTES;
#pragma unroll
                for (int k = 0; k < KS; k++)
                    sk_ap_wgmma_ss_n128_t0(s, sk_ap3_desc_k(sQ, BM, cw * 64, k),
                                           sk_ap3_desc_k(kt, BN, 0, k), k > 0);
                sk_wg_commit();
                sk_ap4_turn_pass<PP>(cw);
                sk_wg_wait<0>();
                sk_wg_pin(s);
                sk_mb_arrive(bk_empty + 8 * st);
                kc++;
                if (n_kv == 1) {
                    sk_mb_arrive(bq_empty);
                    qc++;
                }
            }
            sk_ap3_softmax<NS>(s, mrow, lrow, alpha, 0 >= j_mask, 0, row_pos, t4, sl2);

            for (int j = 1; j < n_kv; j++) {
                const uint32_t sk = kc % C::NST, sv = vc % C::NST;
                sk_mb_wait(bk_full + 8 * sk, (kc / C::NST) & 1);
                sk_mb_wait(bv_full + 8 * sv, (vc / C::NST) & 1);
                if (j * BN > it.kv_len) /* V_{j-1} holds the sequence's end: zero its tail rows */
                    sk_ap4_zero_tail<D, BN>(sV + sv * C::KV_BYTES, it.kv_len - (j - 1) * BN,
                                            tid - 128 * wg, cw);
                sk_wg_fence_proxy_async();
                sk_ap3_pack_p<NS>(s, pa); /* P_{j-1} */
                sk_wg_pin(pa);
                sk_wg_pin(o);
                sk_ap4_turn_wait<PP>(cw);
                sk_wg_fence();
                const uint32_t kt = sK + sk * C::KV_BYTES;
#pragma unroll
                for (int k = 0; k < KS; k++)
                    sk_ap_wgmma_ss_n128_t0(s, sk_ap3_desc_k(sQ, BM, cw * 64, k),
                                           sk_ap3_desc_k(kt, BN, 0, k), k > 0);
                sk_wg_commit();
                const uint32_t vt = sV + sv * C::KV_BYTES;
#pragma unroll
                for (int k = 0; k < VS; k++)
                    sk_ap3_wgmma_pv<D>(o, pa + 4 * k, sk_ap3_desc_v(vt, BN, k));
                sk_wg_commit();
                sk_ap4_turn_pass<PP>(cw);
                sk_wg_wait<1>(); /* S_j */
                sk_wg_pin(s);
                sk_mb_arrive(bk_empty + 8 * sk);
                kc++;
                if (j == n_kv - 1) {
                    sk_mb_arrive(bq_empty); /* the item's last read of Q is done */
                    qc++;
                }
                sk_ap3_softmax<NS>(s, mrow, lrow, alpha, j >= j_mask, j * BN, row_pos, t4, sl2);
                sk_wg_wait<0>(); /* P_{j-1} V_{j-1} */
                sk_wg_pin(o);
                sk_wg_pin(pa);
                sk_mb_arrive(bv_empty + 8 * sv);
                vc++;
#pragma unroll
                for (int i = 0; i < NO; i++) o[i] *= alpha[(i >> 1) & 1];
            }

            /* epilogue: O += P_{n-1} V_{n-1} */
            {
                const uint32_t sv = vc % C::NST;
                sk_ap3_pack_p<NS>(s, pa);
                sk_mb_wait(bv_full + 8 * sv, (vc / C::NST) & 1);
                if (n_kv * BN > it.kv_len)
                    sk_ap4_zero_tail<D, BN>(sV + sv * C::KV_BYTES, it.kv_len - (n_kv - 1) * BN,
                                            tid - 128 * wg, cw);
                sk_wg_fence_proxy_async();
                sk_wg_pin(pa);
                sk_wg_pin(o);
                sk_ap4_turn_wait<PP>(cw);
                sk_wg_fence();
                const uint32_t vt = sV + sv * C::KV_BYTES;
#pragma unroll
                for (int k = 0; k < VS; k++)
                    sk_ap3_wgmma_pv<D>(o, pa + 4 * k, sk_ap3_desc_v(vt, BN, k));
                sk_wg_commit();
                sk_ap4_turn_pass<PP>(cw);
                sk_wg_wait<0>();
                sk_wg_pin(o);
                sk_wg_pin(pa);
                sk_mb_arrive(bv_empty + 8 * sv);
                vc++;
            }
        }

        /* normalise and store (rows beyond q_len are not written) */
        float inv[2];
#pragma unroll
        for (int rr = 0; rr < 2; rr++) {
            float l = lrow[rr];
            l += __shfl_xor_sync(0xffffffffu, l, 1);
            l += __shfl_xor_sync(0xffffffffu, l, 2);
            inv[rr] = l > 0.0f ? 1.0f / l : 0.0f;
        }
#pragma unroll
        for (int i = 0; i < NO; i += 4) {
            const int col = (i >> 2) * 8 + 2 * t4;
            if (row_a < it.q_len)
                *(uint32_t *)(ob + (size_t)(it.q0 + row_a) * H * D + col) =
                    sk_ap_pack_bf16(o[i] * inv[0], o[i + 1] * inv[0]);
            if (row_a + 8 < it.q_len)
                *(uint32_t *)(ob + (size_t)(it.q0 + row_a + 8) * H * D + col) =
                    sk_ap_pack_bf16(o[i + 2] * inv[1], o[i + 3] * inv[1]);
        }
    }
}

/* ---- launchers ---------------------------------------------------------------------------- */

/* Blocks of a persistent grid for `kernel` with `threads` threads and `smem` dynamic shared bytes;
 * raises the kernel's dynamic shared-memory limit first. 0 on error (the error is returned by
 * cudaGetLastError). */
template <typename K>
static inline int sk_ap_persistent_blocks(K kernel, int threads, int smem) {
    int dev = 0, sms = 0, per_sm = 0;
    if (cudaGetDevice(&dev) != cudaSuccess) return 0;
    if (cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, dev) != cudaSuccess) return 0;
    /* Always opt in: the kernels also hold static shared memory (the tile schedule), and the
     * 48 KB default limit applies to static + dynamic together. */
    if (smem > 0 &&
        cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem) !=
            cudaSuccess)
        return 0;
    if (cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_sm, kernel, threads, (size_t)smem) !=
        cudaSuccess)
        return 0;
    return sms * (per_sm > 0 ? per_sm : 1);
}

template <int D>
static inline cudaError_t sk_attn_prefill_launch1_d(const sk_attn_params *p, cudaStream_t s) {
    static int blocks = 0; /* per instance; one device per process */
    if (!blocks)
        blocks = 4 * sk_ap_persistent_blocks(sk_attn_prefill_kernel1<D>, SK_AP1_WARPS * 32, 0);
    if (!blocks) return cudaGetLastError();
    sk_attn_prefill_kernel1<D><<<blocks, SK_AP1_WARPS * 32, 0, s>>>(*p);
    return cudaGetLastError();
}

template <int D, int BM>
static inline cudaError_t sk_attn_prefill_launch2_d(const sk_attn_params *p, cudaStream_t s) {
    typedef sk_ap2_cfg<D, BM> C;
    static int blocks = 0;
    if (!blocks) blocks = sk_ap_persistent_blocks(sk_attn_prefill_kernel2<D, BM>, C::NT, C::SMEM);
    if (!blocks) return cudaGetLastError();
    sk_attn_prefill_kernel2<D, BM><<<blocks, C::NT, C::SMEM, s>>>(*p);
    return cudaGetLastError();
}

template <int D>
static inline cudaError_t sk_attn_prefill_launch3_d(const sk_attn_params *p, cudaStream_t s) {
    typedef sk_ap3_cfg<D> C;
    static int blocks = 0;
    if (!blocks) blocks = sk_ap_persistent_blocks(sk_attn_prefill_kernel3<D>, C::NT, C::SMEM);
    if (!blocks) return cudaGetLastError();
    sk_attn_prefill_kernel3<D><<<blocks, C::NT, C::SMEM, s>>>(*p);
    return cudaGetLastError();
}

/* Version 4's tensor map of a K or V pool: [rows][D] bf16 with rows = pages x KV heads x page
 * size; the row count is not known here (page ids are only bounded by the pool), so the map
 * declares 2^31 rows: the kernel only addresses rows of the sequences' own pages. */
static inline cudaError_t sk_ap4_make_map(CUtensorMap *map, const void *pool, int D, int page_size) {
    static PFN_cuTensorMapEncodeTiled_v12000 encode = NULL;
    if (!encode) {
        cudaDriverEntryPointQueryResult q;
        void *fn = NULL;
        const cudaError_t e = cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", &fn, 12000,
                                                               cudaEnableDefault, &q);
        if (e != cudaSuccess) return e;
        if (q != cudaDriverEntryPointSuccess || !fn) return cudaErrorNotSupported;
        encode = (PFN_cuTensorMapEncodeTiled_v12000)fn;
    }
    const cuuint64_t dims[2] = {(cuuint64_t)D, (cuuint64_t)1 << 31};
    const cuuint64_t strides[1] = {(cuuint64_t)D * 2};
    const cuuint32_t box[2] = {64, (cuuint32_t)(page_size < 128 ? page_size : 128)};
    const cuuint32_t estr[2] = {1, 1};
    const CUresult r = encode(map, CU_TENSOR_MAP_DATA_TYPE_BFLOAT16, 2, (void *)pool, dims, strides,
                              box, estr, CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_128B,
                              CU_TENSOR_MAP_L2_PROMOTION_L2_256B, CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE);
    return r == CUDA_SUCCESS ? cudaSuccess : cudaErrorInvalidValue;
}

template <int D, bool PP>
static inline cudaError_t sk_attn_prefill_launch4_d(const sk_attn_params *p, cudaStream_t s) {
    typedef sk_ap4_cfg<D> C;
    static int blocks = 0;
    if (!blocks) blocks = sk_ap_persistent_blocks(sk_attn_prefill_kernel4<D, PP>, C::NT, C::SMEM);
    if (!blocks) return cudaGetLastError();
    sk_ap4_maps maps;
    cudaError_t e = sk_ap4_make_map(&maps.k, p->kv.k, D, p->kv.page_size);
    if (e == cudaSuccess) e = sk_ap4_make_map(&maps.v, p->kv.v, D, p->kv.page_size);
    if (e != cudaSuccess) return e;
    sk_attn_prefill_kernel4<D, PP><<<blocks, C::NT, C::SMEM, s>>>(*p, maps);
    return cudaGetLastError();
}

/* Head-dim dispatch (64, 80, 128; anything else: cudaErrorInvalidValue). Preconditions (checked
 * by sk_attn_prefill): page_size one of 16, 32, 64, 128; n_heads a multiple of n_kv_heads;
 * version 1 needs q and the pools 4-byte aligned; version 2 needs q, out and the pools 16-byte
 * aligned and q_stride % 8 == 0. Returns the launch's error (cudaGetLastError). */
static inline cudaError_t sk_attn_prefill_launch1(const sk_attn_params *p, cudaStream_t s) {
    switch (p->kv.head_dim) {
    case 64: return sk_attn_prefill_launch1_d<64>(p, s);
    case 80: return sk_attn_prefill_launch1_d<80>(p, s);
    case 128: return sk_attn_prefill_launch1_d<128>(p, s);
    default: return cudaErrorInvalidValue;
    }
}

template <int BM>
static inline cudaError_t sk_attn_prefill_launch2(const sk_attn_params *p, cudaStream_t s) {
    switch (p->kv.head_dim) {
    case 64: return sk_attn_prefill_launch2_d<64, BM>(p, s);
    case 80: return sk_attn_prefill_launch2_d<80, BM>(p, s);
    case 128: return sk_attn_prefill_launch2_d<128, BM>(p, s);
    default: return cudaErrorInvalidValue;
    }
}

/* Version 3: head dims 64 and 128 only (cudaErrorInvalidValue otherwise). */
static inline cudaError_t sk_attn_prefill_launch3(const sk_attn_params *p, cudaStream_t s) {
    switch (p->kv.head_dim) {
    case 64: return sk_attn_prefill_launch3_d<64>(p, s);
    case 128: return sk_attn_prefill_launch3_d<128>(p, s);
    default: return cudaErrorInvalidValue;
    }
}

/* Version 4: head dims 64 and 128 only (cudaErrorInvalidValue otherwise); PP: ping-pong. */
template <bool PP>
static inline cudaError_t sk_attn_prefill_launch4(const sk_attn_params *p, cudaStream_t s) {
    switch (p->kv.head_dim) {
    case 64: return sk_attn_prefill_launch4_d<64, PP>(p, s);
    case 128: return sk_attn_prefill_launch4_d<128, PP>(p, s);
    default: return cudaErrorInvalidValue;
    }
}

/* The public entry (attn_prefill.cu): checks p (aborting on a bad argument: a caller bug) and
 * launches the selected version on s. Asynchronous; p is copied into the launch. */
void sk_attn_prefill(const sk_attn_params *p, cudaStream_t s);

#endif
