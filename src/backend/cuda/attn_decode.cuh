/* Decode attention over the paged KV cache (attn_params.h): one query row per sequence, bf16
 * Q/K/V/out, fp32 softmax and accumulation, any group size (MHA, GQA, MQA).
 *
 * Kernel 2 (the backend's; kernel 1, the per-query-head baseline, lives in the workbench
 * dev/cuda/attention_decode.cu): one block per (sequence, KV head, split, query block). Each warp
 * streams 16-token chunks of its KV head straight from global memory into registers (16-byte
 * loads, no shared memory staging) and computes, on tensor cores (mma.sync m16n8k16 bf16, fp32
 * accumulate), with the query heads of the group as the N = 8 side of the mma:
 *     S^T[16 tokens][8 queries]  = K_chunk[16][hd] . Q^T[hd][8]       (A = K, B = Q^T)
 *     O^T[hd][8 queries]        += V_chunk^T[hd][16] . P^T[16][8]      (A = V^T, B = P^T)
 * so each K/V byte is loaded once for all query heads of its group, and a group of 8 fills the
 * mma exactly (smaller groups pad the N side with zero queries). Larger groups take `qtiles`
 * 8-query tiles per warp, `wq` warps side by side on the same tokens (their loads of the same
 * lines meet in L1) and, beyond that, several query blocks in the grid.
 *
 * Fragment mapping (PTX ISA, "Matrix Fragments for mma.m16n8k16", lane = 4 r + t):
 *   A regs: {A[r][2t,2t+1], A[r+8][2t,2t+1], A[r][2t+8,2t+9], A[r+8][2t+8,2t+9]}
 *   B regs: {B[2t,2t+1][r], B[2t+8,2t+9][r]};  C: {C[r][2t], C[r][2t+1], C[r+8][2t], C[r+8][2t+1]}
 * The contraction index of each mma may be permuted freely as long as A and B agree, and the
 * M index of the second mma may be permuted if the output is un-permuted; both are used so that
 * every lane reads whole 16-byte vectors:
 *   QK: lane (r, t) loads 16 B of K rows r and r+8 and of Q row r at dims 32c + 8t .. +7; the
 *       four words are k-step 2c {a0/b0 = word 0, a2/b1 = word 1} and k-step 2c+1 {words 2, 3}.
 *       (hd % 32 == 16: the last 16 dims are one k-step from 8 B at dims 32 KC + 4t.)
 *   PV: lane (r, t) loads 16 B of V rows 2t, 2t+1, 2t+8, 2t+9 at dims 64 j + 8 r .. +7; O^T row m
 *       of m-tile 4 j + i is dim D = 64 j + 8 (m % 8) + 4 (m / 8) + i, so the A fragment is two
 *       bf16 of two token rows picked with one byte permute. (hd % 64 == 16: the last m-tile is
 *       dim 64 VC + 2 (m % 8) + m / 8, from 4 B at 64 VC + 2 r.)
 *   P: the S^T accumulator holds tokens x queries; the PV B operand needs queries x tokens, an
 *       8x8 transpose per register done by movmatrix.trans.
 * Online softmax per query over the chunks (reference max in registers, exp2 with the scale folded
 * in; the running sum is a per-lane partial reduced once at the end). The reference max is raised
 * lazily, only when a chunk holds a score more than 2^SK_AD_LAZY above it (FlashAttention-4's
 * trick): most chunks then skip the max shuffles and the output rescale, which at large groups
 * (Falcon-180B's 29, MQA) cost more issue slots than the tensor-core work. Masking: rows at or past
 * kv_len are never loaded (zeros) and their scores are -inf, so garbage in a page's tail rows never
 * reaches the arithmetic. The warps of a block split the block's chunks into contiguous ranges and
 * merge (max, sum, output) through shared memory in a fixed order (deterministic).
 *
 * Split-KV (flash decoding): with n_splits > 1 each sequence's chunks are cut into n_splits
 * ranges, one block each; blocks write normalised partial outputs and their log2-sum-exp to
 * p->part_out [batch][n_heads][n_splits][head_dim] and p->part_lse [batch][n_heads][n_splits]
 * (fp32), and sk_ad_combine_kernel merges them. Empty ranges write lse = -inf and zeros.
 * Cluster merge (session 22, sk_attn_decode_set_cluster): with 2..16 splits whose launch fits in
 * one wave, the n_splits blocks of a (sequence, KV head, query block) run as one thread-block
 * cluster and merge through distributed shared memory at the end, in the combine's arithmetic
 * (bitwise its output), with no combine launch and no partials in global memory (H200: 70B INT4
 * batch 1 -0.8..-1.0% a step, 7B -2..-3%; bench/results/decode.md session 22).
 *
 * New token in fp32 (session 25, sk_attn_params.nt; ring configurations): q is rotated (RoPE) as
 * it is loaded and the step's K/V row is rotated, written into its page and patched into the ring
 * slot that holds it, so that no rope/store launch runs before this kernel (attention.cu takes it
 * where measured faster; bench/results/decode.md session 25).
 *
 * Page table reads: each warp keeps 64 page ids in two registers per lane (the current and next
 * window of 32) and takes the chunk's id with one shuffle, so the page-id load is off the critical
 * path except at the block's start. */
#ifndef SK_CUDA_ATTN_DECODE_CUH
#define SK_CUDA_ATTN_DECODE_CUH

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "attn_params.h"
#include "pdl.cuh"

#ifdef __cplusplus
extern "C" {
#endif

/* Most splits per sequence (bounds the scratch and the combine kernel's shared memory). */
#define SK_ATTN_DECODE_MAX_SPLITS 128

/* Launch configuration of kernel 2.
 *   qtiles: 8-query tiles per warp: 1, 2 or 4 (4 only for head_dim 64 and 80: registers)
 *   warps:  warps per block: 1, 2, 4 or 8
 *   wq:     warps side by side on the same tokens with different query tiles: 1, 2 or 4
 *           (divides warps); the other warps / wq warps split the chunks
 *   prefetch: 1 = load chunk i+1 into a second register set while computing chunk i
 *   l2pf:   0 = off; d > 0 = each warp has the K and V rows of its chunk i + d brought into L2
 *           by one bulk prefetch each (cp.async.bulk.prefetch.L2) while it works on chunk i, so
 *           that its register loads mostly hit L2 (prefetch 0 only; 1..8)
 *   ring:   0 = chunks loaded into registers; 2 or 4 = each warp streams its chunks through a
 *           ring of that many chunk slots in shared memory with cp.async (16-byte copies, rows
 *           swizzled so that the fragment reads are free of bank conflicts), ring - 1 chunks
 *           ahead of the one it computes: bytes in flight no longer bounded by registers
 *           (head_dim 64 and 128; prefetch 0 and l2pf 0 only) */
typedef struct sk_attn_decode_cfg {
    int qtiles;
    int warps;
    int wq;
    int prefetch;
    int l2pf;
    int ring;
} sk_attn_decode_cfg;

/* A plan for one decode step shape: the configuration sk_attn_decode uses, the split count to put
 * in p->n_splits and the scratch (floats) p->part_out / p->part_lse must hold when n_splits > 1. */
typedef struct sk_attn_decode_plan {
    sk_attn_decode_cfg cfg;
    int n_splits;
    int n_qblk;            /* query blocks per KV head */
    int blocks_per_sm;     /* occupancy of cfg's kernel, from the CUDA occupancy calculator */
    size_t part_out_floats; /* batch * n_heads * n_splits * head_dim, 0 when n_splits == 1 */
    size_t part_lse_floats; /* batch * n_heads * n_splits, 0 when n_splits == 1 */
} sk_attn_decode_plan;

/* 1 when kernel 2 handles this shape: head_dim 64, 80 or 128; n_heads a positive multiple of
 * n_kv_heads. page_size must further be 16, 32, 64 or 128 (checked by sk_attn_decode). */
int sk_attn_decode_supported(int head_dim, int n_heads, int n_kv_heads, int page_size);

/* The default configuration for a head dim and group size (n_heads / n_kv_heads). */
sk_attn_decode_cfg sk_attn_decode_default_cfg(int head_dim, int group);

/* Plans a decode step on the current device: batch sequences, the longest of max_kv_len tokens,
 * n_sm multiprocessors. Chooses n_splits with a wave model (see attn_decode.cu). Runs no device
 * work (the occupancy query is host-side), so it can be called outside a graph capture and the
 * launches inside. The shape must be supported (asserted). */
void sk_attn_decode_make_plan(int batch, int n_heads, int n_kv_heads, int head_dim, int max_kv_len,
                              int n_sm, sk_attn_decode_plan *plan);
/* Same with an explicit configuration (workbench tuning). */
void sk_attn_decode_make_plan_cfg(int batch, int n_heads, int n_kv_heads, int head_dim,
                                  int max_kv_len, int n_sm, const sk_attn_decode_cfg *cfg,
                                  sk_attn_decode_plan *plan);

/* out = decode attention of p (attn_params.h; one query row per sequence, row b of q and out),
 * with the default configuration and p->n_splits splits (1 when not planned: p->part_* unused).
 * Enqueues one kernel (two when n_splits > 1) on stream s; no allocation, no synchronisation.
 * Bad parameters (unsupported shape, misaligned pointers or stride, missing scratch) are bugs of
 * the caller: printed with the field and aborted. */
void sk_attn_decode(const sk_attn_params *p, cudaStream_t s);
/* 1 when sk_attn_decode's configuration for this step takes the new token in fp32
 * (sk_attn_params.nt: a ring configuration, head_dim 64 or 128). */
int sk_attn_decode_takes_newtok(int batch, int n_heads, int n_kv_heads, int head_dim,
                                int n_splits);
/* The split merge by clusters of the n_splits blocks (no combine kernel; bitwise the same
 * output): 0 off, 1 (the default) where the launch's clusters fit in one wave, 2 wherever they
 * fit; SAKER_ATTN_CLUSTER, or this call (tests), sets it. */
void sk_attn_decode_set_cluster(int on);
/* 1 when the last launch merged its splits by clusters (tests). */
int sk_attn_decode_cluster_used(void);
/* Whether the last sk_attn_decode launch merged its splits by pushing (session 28). */
int sk_attn_decode_push_used(void);
/* Same with an explicit configuration (which must be valid for the shape; asserted). */
void sk_attn_decode_cfg_launch(const sk_attn_params *p, const sk_attn_decode_cfg *cfg,
                               cudaStream_t s);

#ifdef __cplusplus
}
#endif

/* ---- device code ---------------------------------------------------------------------------- */
#ifdef __CUDACC__

#define SK_AD_CHUNK 16 /* tokens per warp step (the M side of the QK mma) */
#define SK_AD_FULL 0xffffffffu
#ifndef SK_AD_LAZY
#define SK_AD_LAZY 8.0f /* lazy rescale threshold, log2 units (see sk_ad_compute_chunk) */
#endif

/* Kernel 2 arguments: the params plus derived values, passed by value (__grid_constant__). */
typedef struct sk_ad_args {
    sk_attn_params p;
    int group;    /* n_heads / n_kv_heads */
    int lg_page;  /* log2(page_size) */
    int n_qblk;   /* query blocks per KV head */
    int wq;       /* warps side by side on the query tiles */
    int l2pf;     /* chunks ahead of the L2 bulk prefetch, 0: off (sk_attn_decode_cfg) */
    float sl2;    /* sm_scale * log2(e) */
    int pdl_early; /* trigger the next launch at the start (sk_attn_pdl_mode 2) */
    int pdl_loop;  /* trigger the next launch after the chunk loop (attn_decode.cu: grids of at
                    * most one block an SM; SAKER_ATTN_TRIG_LOOP) */
    int clus;      /* 1: the launch is clusters of the n_splits blocks of one (sequence, KV head,
                    * query block), merged through distributed shared memory (no combine) */
    int prewait;   /* 1: page table and the K/V of all but each sequence's last token into L2
                    * before griddepcontrol.wait (sk_attn_params.kv_prewait) */
    int push;      /* > 0 (with clus, one warp a block, head_dim 64j): the push merge (session
                    * 28); its receive area's byte offset in dynamic shared memory */
    int push_staged; /* with push: stage the partial in this block's shared memory and push it
                      * with one coalesced store a lane and peer (session 29), else from the
                      * fragments (session 28) */
} sk_ad_args;
/* Chunks a warp brings into L2 before its wait (a.prewait). */
#define SK_AD_PREWAIT_CHUNKS 4

/* Distributed shared memory of a cluster (sm_90): the address of this block's shared variable p
 * in the block of cluster rank `rank`, loads from it, and the cluster-wide barrier (every thread
 * of every block; release / acquire orders the shared memory writes before it with the reads
 * after it). */
static __device__ __forceinline__ uint32_t sk_ad_mapa(const void *p, unsigned rank) {
    uint32_t r;
    asm volatile("mapa.shared::cluster.u32 %0, %1, %2;"
                 : "=r"(r)
                 : "r"((uint32_t)__cvta_generic_to_shared(p)), "r"(rank));
    return r;
}
static __device__ __forceinline__ float sk_ad_ld_cl(uint32_t addr) {
    float v;
    asm volatile("ld.shared::cluster.f32 %0, [%1];" : "=f"(v) : "r"(addr) : "memory");
    return v;
}
static __device__ __forceinline__ float4 sk_ad_ld_cl4(uint32_t addr) {
    float4 v;
    asm volatile("ld.shared::cluster.v4.f32 {%0, %1, %2, %3}, [%4];"
                 : "=f"(v.x), "=f"(v.y), "=f"(v.z), "=f"(v.w)
                 : "r"(addr)
                 : "memory");
    return v;
}
static __device__ __forceinline__ void sk_ad_cluster_sync(void) {
    asm volatile("barrier.cluster.arrive.release.aligned;\n\t"
                 "barrier.cluster.wait.acquire.aligned;" ::: "memory");
}
/* Most splits a cluster merge takes (clusters of up to 16 blocks, non-portable above 8). */
#define SK_AD_CLUSTER_MAX 16
/* The push merge's helpers: a posted store of a float4 / float2 into a peer's shared memory (an
 * address from sk_ad_mapa), and the two halves of a cluster barrier. */
static __device__ __forceinline__ void sk_ad_st_cl4(uint32_t addr, float4 v) {
    asm volatile("st.shared::cluster.v4.f32 [%0], {%1, %2, %3, %4};" ::"r"(addr), "f"(v.x),
                 "f"(v.y), "f"(v.z), "f"(v.w)
                 : "memory");
}
static __device__ __forceinline__ void sk_ad_st_cl2(uint32_t addr, float x, float y) {
    asm volatile("st.shared::cluster.v2.f32 [%0], {%1, %2};" ::"r"(addr), "f"(x), "f"(y)
                 : "memory");
}
static __device__ __forceinline__ void sk_ad_cluster_arrive_relaxed(void) {
    asm volatile("barrier.cluster.arrive.relaxed.aligned;" ::: "memory");
}
static __device__ __forceinline__ void sk_ad_cluster_wait(void) {
    asm volatile("barrier.cluster.wait.aligned;" ::: "memory");
}

/* SAKER_TRACE (session 28): thread 0's %globaltimer into phase slot i (pdl.cuh SK_TRACE_MARK),
 * read only once dep is known (a predicate on it guards the read), so that the scheduler cannot
 * move the mark ahead of the phase it closes. Session 29: marks 3 and 4 also read clock64 under
 * the same guard (the SM's cycles across the merge: is the clock or the warp what is slow), and
 * the push merge has three finer marks (5: its arithmetic done, 6: the first barrier's wait
 * passed, 7: the pushes issued), written by sk_ad_trace_end_push as two more records. */
#ifdef SAKER_TRACE
#define SK_TRACE_PH2 8 /* pdl.cuh's trace kinds, continued: marks 5, 6, 7 (push merge) */
#define SK_TRACE_PH3 9 /* clock64 at marks 3 and 4 */
static __device__ __forceinline__ unsigned long long *sk_ad_clk_sh(void) {
    __shared__ unsigned long long s[2];
    return s;
}
#endif
static __device__ __forceinline__ void sk_ad_mark(int i, float dep) {
#ifdef SAKER_TRACE
    if (threadIdx.x == 0) {
        unsigned long long t, c;
        asm volatile("{\n\t.reg .pred p;\n\tsetp.neu.f32 p, %2, 0f7F7FFFFF;\n\t"
                     "mov.u64 %0, 1;\n\tmov.u64 %1, 1;\n\t@p mov.u64 %0, %%globaltimer;\n\t"
                     "@p mov.u64 %1, %%clock64;\n\t}"
                     : "=l"(t), "=l"(c)
                     : "f"(dep)
                     : "memory");
        sk_trace_sh()[i] = t;
        if (i == 3 || i == 4) sk_ad_clk_sh()[i - 3] = c;
    }
#else
    (void)i, (void)dep;
#endif
}
/* The push merge's end under SAKER_TRACE: the block's record, its phase record (marks 2, 3, 4),
 * then marks 5, 6, 7 (SK_TRACE_PH2) and the clocks at marks 3 and 4 (SK_TRACE_PH3). */
static __device__ __forceinline__ void sk_ad_trace_end_push(void) {
#ifdef SAKER_TRACE
    if (threadIdx.x == 0 && sk_trace_dev) {
        const unsigned long long i = atomicAdd(sk_trace_dev, 4ull), *s = sk_trace_sh();
        sk_trace_put(i, sk_trace_w0(SK_TRACE_DEC << 24), s[0], s[1], sk_gtimer());
        sk_trace_put(i + 1, sk_trace_w0(SK_TRACE_PH << 24), s[2], s[3], s[4]);
        sk_trace_put(i + 2, sk_trace_w0(SK_TRACE_PH2 << 24), s[5], s[6], s[7]);
        sk_trace_put(i + 3, sk_trace_w0(SK_TRACE_PH3 << 24), sk_ad_clk_sh()[0], sk_ad_clk_sh()[1], 0ull);
    }
#endif
}

/* D += A . B, m16n8k16, bf16 inputs, fp32 accumulators. */
static __device__ __forceinline__ void sk_ad_mma(float (&d)[4], uint32_t a0, uint32_t a1,
                                                 uint32_t a2, uint32_t a3, uint32_t b0,
                                                 uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
        : "r"(a0), "r"(a1), "r"(a2), "r"(a3), "r"(b0), "r"(b1));
}

/* Transpose of an 8x8 b16 matrix held in the mma accumulator/A layout (lane 4r+t holds row r,
 * columns 2t, 2t+1; low half first): returns {M[2t][r], M[2t+1][r]}. movmatrix by default;
 * -DSK_AD_SHFL_TRANSPOSE selects the two-shuffle version (same result). */
static __device__ __forceinline__ uint32_t sk_ad_trans_movmatrix(uint32_t x) {
    uint32_t y;
    asm volatile("movmatrix.sync.aligned.m8n8.trans.b16 %0, %1;\n" : "=r"(y) : "r"(x));
    return y;
}
static __device__ __forceinline__ uint32_t sk_ad_trans_shfl(uint32_t x) {
    const int lane = threadIdx.x & 31, r = lane >> 2, t = lane & 3;
    const uint32_t x0 = __shfl_sync(SK_AD_FULL, x, 8 * t + (r >> 1));
    const uint32_t x1 = __shfl_sync(SK_AD_FULL, x, 8 * t + 4 + (r >> 1));
    return __byte_perm(x0, x1, (r & 1) ? 0x7632 : 0x5410);
}
static __device__ __forceinline__ uint32_t sk_ad_trans(uint32_t x) {
#ifdef SK_AD_SHFL_TRANSPOSE
    return sk_ad_trans_shfl(x);
#else
    return sk_ad_trans_movmatrix(x);
#endif
}

/* 2^x (ex2.approx: 2 ulp; -inf gives +0). */
static __device__ __forceinline__ float sk_ad_exp2(float x) {
    float y;
    asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
    return y;
}

/* Two floats to bf16x2 (round to nearest even), lo in the low half. */
static __device__ __forceinline__ uint32_t sk_ad_pack_bf16(float lo, float hi) {
    const __nv_bfloat162 v = __floats2bfloat162_rn(lo, hi);
    uint32_t u;
    memcpy(&u, &v, 4);
    return u;
}

static __device__ __forceinline__ uint32_t sk_ad_word(const uint4 &u, int i) {
    return i == 0 ? u.x : i == 1 ? u.y : i == 2 ? u.z : u.w; /* i is a compile-time constant */
}

/* One warp's registers for one 16-token chunk (see the fragment mapping above). */
template <int HD> struct sk_ad_chunk {
    uint4 k[2][HD / 32];                     /* K rows r, r+8: dims 32c + 8t .. +7 */
    uint2 kr[2];                             /* hd % 32 == 16: dims 32 KC + 4t .. +3 */
    uint4 v[4][HD / 64 > 0 ? HD / 64 : 1];   /* V rows 2t, 2t+1, 2t+8, 2t+9: dims 64j + 8r .. +7 */
    uint32_t vr[4];                          /* hd % 64 == 16: dims 64 VC + 2r, +1 */
};

/* Page-id window of a warp: lane i holds the id of page base + i (cur) and base + 32 + i (nxt). */
struct sk_ad_pwin {
    int base, cur, nxt;
};

static __device__ __forceinline__ int sk_ad_ld_pid(const int32_t *ids, int i, int n) {
    return i < n ? __ldg(ids + i) : 0;
}

/* K/V loads and ring copies with an L2 prefetch-size hint: SK_AD_L2HINT 256 or 128 makes L2
 * fetch that many bytes around each miss; 0 is a plain ld.global.nc / cp.async.cg. H200, session
 * 13 (bench/results/decode.md): 128 takes 2-3% off the register-load configurations (g8 d128
 * 256 x 1024 without the ring 255.5 / 254.7 -> 249.4 us; MHA 64 x 4096 1,981 -> 1,927) and
 * leaves the cp.async ring as it was; 256 is 1-3% slower. Default 128. */
#ifndef SK_AD_L2HINT
#define SK_AD_L2HINT 128
#endif
#define SK_AD_STR2(x) #x
#define SK_AD_STR(x) SK_AD_STR2(x)
#define SK_AD_L2HINT_S SK_AD_STR(SK_AD_L2HINT)
static __device__ __forceinline__ uint4 sk_ad_ldkv(const uint4 *p) {
#if SK_AD_L2HINT == 256 || SK_AD_L2HINT == 128
    uint4 v;
    asm volatile("ld.global.nc.L2::" SK_AD_L2HINT_S "B.v4.u32 {%0, %1, %2, %3}, [%4];"
                 : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                 : "l"(p));
    return v;
#else
    return __ldg(p);
#endif
}

/* Loads chunk c (warp-uniform) of the warp's KV head into ch. ids: the sequence's page ids,
 * npg of them. Rows at or past len are zero. */
template <int HD>
static __device__ __forceinline__ void sk_ad_load_chunk(sk_ad_chunk<HD> &ch, const sk_ad_args &a,
                                                        const int32_t *ids, int npg,
                                                        sk_ad_pwin &w, int c, int kvh, int len) {
    constexpr int KC = HD / 32, VC = HD / 64;
    const int lane = threadIdx.x & 31, r = lane >> 2, t = lane & 3;
    const int tok0 = c * SK_AD_CHUNK;
    const int pg = tok0 >> a.lg_page;
    if (pg >= w.base + 32) { /* chunks advance by at most one page */
        w.base += 32;
        w.cur = w.nxt;
        w.nxt = sk_ad_ld_pid(ids, w.base + 32 + lane, npg);
    }
    const int pid = __shfl_sync(SK_AD_FULL, w.cur, pg - w.base);
    const int row0 = tok0 & ((1 << a.lg_page) - 1);
    const size_t base =
        (((size_t)pid * (size_t)a.p.kv.n_kv_heads + (size_t)kvh) << a.lg_page) + (size_t)row0;
    const __nv_bfloat16 *kb = (const __nv_bfloat16 *)a.p.kv.k + base * HD;
    const __nv_bfloat16 *vb = (const __nv_bfloat16 *)a.p.kv.v + base * HD;
    const uint4 z4 = make_uint4(0u, 0u, 0u, 0u);

#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int row = r + 8 * h;
        const bool ok = tok0 + row < len;
        const __nv_bfloat16 *kp = kb + row * HD;
#pragma unroll
        for (int cc = 0; cc < KC; cc++)
            ch.k[h][cc] = ok ? sk_ad_ldkv((const uint4 *)(kp + 32 * cc + 8 * t)) : z4;
        if constexpr (HD % 32 != 0)
            ch.kr[h] = ok ? __ldg((const uint2 *)(kp + 32 * KC + 4 * t)) : make_uint2(0u, 0u);
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int row = 2 * t + (i & 1) + 8 * (i >> 1);
        const bool ok = tok0 + row < len;
        const __nv_bfloat16 *vp = vb + row * HD;
#pragma unroll
        for (int j = 0; j < VC; j++) ch.v[i][j] = ok ? sk_ad_ldkv((const uint4 *)(vp + 64 * j + 8 * r)) : z4;
        if constexpr (HD % 64 != 0)
            ch.vr[i] = ok ? __ldg((const unsigned int *)(vp + 64 * VC + 2 * r)) : 0u;
    }
}

/* Brings the K and V rows of chunk c (warp-uniform; nothing when c >= c_end or its page is
 * outside the warp's page-id window) of KV head kvh into L2: one bulk prefetch each, issued by
 * lane 0. A chunk's 16 rows are contiguous (chunks never straddle pages). */
template <int HD>
static __device__ __forceinline__ void sk_ad_prefetch_chunk(const sk_ad_args &a,
                                                            const sk_ad_pwin &w, int c, int c_end,
                                                            int kvh) {
    if (c >= c_end) return;
    const int tok0 = c * SK_AD_CHUNK;
    const int d = (tok0 >> a.lg_page) - w.base;
    if (d < 0 || d >= 64) return;
    const int pid = __shfl_sync(SK_AD_FULL, d < 32 ? w.cur : w.nxt, d & 31);
    if ((threadIdx.x & 31) != 0) return;
    const size_t base = (((size_t)pid * (size_t)a.p.kv.n_kv_heads + (size_t)kvh) << a.lg_page) +
                        (size_t)(tok0 & ((1 << a.lg_page) - 1));
    const unsigned bytes = SK_AD_CHUNK * HD * 2;
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n"
                 ::"l"((const __nv_bfloat16 *)a.p.kv.k + base * HD), "r"(bytes) : "memory");
    asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n"
                 ::"l"((const __nv_bfloat16 *)a.p.kv.v + base * HD), "r"(bytes) : "memory");
}

/* ---- the shared-memory ring (cfg.ring) ---- */

/* A ring slot holds one chunk: K rows [16][HD] then V rows [16][HD], bf16, each row's 16-byte
 * units permuted by sk_ad_swz(row) (an XOR of the unit index's low 3 bits). The fragment reads of
 * sk_ad_ring_read then touch 8 distinct 16-byte bank groups per 8 lanes: K reads (rows r, r + 8h
 * of lanes (r, t), units 4cc + t) see lanes of rows 2k and 2k + 1 in one wavefront, told apart by
 * bit 2 (row & 1); V reads (rows 2t + c, units 8j + r) see four rows, told apart by bits 1-2
 * ((row >> 1) & 3). The cp.async writes (8 consecutive units of one row per 8 lanes) stay
 * conflict-free under any XOR of the low bits. */
static __device__ __forceinline__ int sk_ad_swz(int row) {
    return ((row & 1) << 2) ^ (((row >> 1) & 3) << 1);
}

/* Issues the 16-byte cp.async copies of chunk c (warp-uniform; nothing when c >= c_end) of KV
 * head kvh into slot (bf16 [32][HD], swizzled), lane by lane; the caller commits the group. w is
 * the issuing side's own page-id window (advanced here as sk_ad_load_chunk advances its own). */
template <int HD>
static __device__ __forceinline__ void sk_ad_ring_issue(__nv_bfloat16 *slot, const sk_ad_args &a,
                                                        const int32_t *ids, int npg,
                                                        sk_ad_pwin &w, int c, int c_end,
                                                        int kvh) {
    constexpr int UPR = HD / 8;            /* 16-byte units per row */
    constexpr int UNITS = 2 * SK_AD_CHUNK * UPR; /* K and V */
    if (c >= c_end) return;
    const int lane = threadIdx.x & 31;
    const int tok0 = c * SK_AD_CHUNK;
    const int pg = tok0 >> a.lg_page;
    if (pg >= w.base + 32) {
        w.base += 32;
        w.cur = w.nxt;
        w.nxt = sk_ad_ld_pid(ids, w.base + 32 + lane, npg);
    }
    const int pid = __shfl_sync(SK_AD_FULL, w.cur, pg - w.base);
    const size_t base = (((size_t)pid * (size_t)a.p.kv.n_kv_heads + (size_t)kvh) << a.lg_page) +
                        (size_t)(tok0 & ((1 << a.lg_page) - 1));
    const __nv_bfloat16 *kb = (const __nv_bfloat16 *)a.p.kv.k + base * HD;
    const __nv_bfloat16 *vb = (const __nv_bfloat16 *)a.p.kv.v + base * HD;
    const uint32_t s0 = (uint32_t)__cvta_generic_to_shared(slot);
#pragma unroll
    for (int i = 0; i < UNITS / 32; i++) {
        const int u = lane + 32 * i;
        const int which = u / (SK_AD_CHUNK * UPR), rem = u % (SK_AD_CHUNK * UPR);
        const int row = rem / UPR, col = rem % UPR;
        const __nv_bfloat16 *src = (which ? vb : kb) + (size_t)row * HD + 8 * col;
        const uint32_t dst =
            s0 + 2u * (uint32_t)((which * SK_AD_CHUNK + row) * HD + 8 * (col ^ sk_ad_swz(row)));
#if SK_AD_L2HINT == 256 || SK_AD_L2HINT == 128
        asm volatile("cp.async.cg.shared.global.L2::" SK_AD_L2HINT_S "B [%0], [%1], 16;\n" ::"r"(dst), "l"(src)
                     : "memory");
#else
        asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(dst), "l"(src)
                     : "memory");
#endif
    }
}

static __device__ __forceinline__ void sk_ad_cp_commit(void) {
    asm volatile("cp.async.commit_group;\n" ::: "memory");
}
template <int N> static __device__ __forceinline__ void sk_ad_cp_wait(void) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(N) : "memory");
}

/* The fragments of sk_ad_load_chunk, read from a ring slot; rows at or past len are zero (the
 * copies took whatever the page held there). */
template <int HD>
static __device__ __forceinline__ void sk_ad_ring_read(sk_ad_chunk<HD> &ch,
                                                       const __nv_bfloat16 *slot, int c, int len) {
    static_assert(HD % 64 == 0, "the ring needs head_dim 64 or 128");
    constexpr int KC = HD / 32, VC = HD / 64;
    const int lane = threadIdx.x & 31, r = lane >> 2, t = lane & 3;
    const int tok0 = c * SK_AD_CHUNK;
    const uint4 z4 = make_uint4(0u, 0u, 0u, 0u);
#pragma unroll
    for (int h = 0; h < 2; h++) {
        const int row = r + 8 * h;
        const bool ok = tok0 + row < len;
        const __nv_bfloat16 *kp = slot + row * HD;
#pragma unroll
        for (int cc = 0; cc < KC; cc++)
            ch.k[h][cc] = ok ? *(const uint4 *)(kp + 8 * ((4 * cc + t) ^ sk_ad_swz(row))) : z4;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        const int row = 2 * t + (i & 1) + 8 * (i >> 1);
        const bool ok = tok0 + row < len;
        const __nv_bfloat16 *vp = slot + (SK_AD_CHUNK + row) * HD;
#pragma unroll
        for (int j = 0; j < VC; j++)
            ch.v[i][j] = ok ? *(const uint4 *)(vp + 8 * ((8 * j + r) ^ sk_ad_swz(row))) : z4;
    }
}

/* ---- the new token handed over in fp32 (sk_attn_params.nt) ---- */

/* rot[i] = (sin, cos) of pos * freq[i] for i < rope_dim / 2, by the block's threads (the angle
 * expression of sk_dec_rope_store_kernel, attention.cu); the caller syncs the block. */
static __device__ __forceinline__ void sk_ad_rot_table(float2 *rot, const sk_attn_newtok &nt,
                                                       int pos) {
    for (int i = threadIdx.x; i < nt.rope_dim / 2; i += blockDim.x) {
        float sn, cs;
        sincosf((float)pos * nt.freq[i], &sn, &cs);
        rot[i] = make_float2(sn, cs);
    }
}

/* bf16(a) | bf16(b) << 16 (round to nearest even, as __floats2bfloat162_rn). */
static __device__ __forceinline__ uint32_t sk_ad_pack_bf2(float a, float b) {
    return (uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(a)) |
           ((uint32_t)__bfloat16_as_ushort(__float2bfloat16_rn(b)) << 16);
}
static __device__ __forceinline__ uint4 sk_ad_pack8(const float (&y)[8]) {
    return make_uint4(sk_ad_pack_bf2(y[0], y[1]), sk_ad_pack_bf2(y[2], y[3]),
                      sk_ad_pack_bf2(y[4], y[5]), sk_ad_pack_bf2(y[6], y[7]));
}
/* Component c (a constant after unrolling) of v. */
static __device__ __forceinline__ float sk_ad_c(const float4 &v, int c) {
    return c == 0 ? v.x : c == 1 ? v.y : c == 2 ? v.z : v.w;
}
/* One element after RoPE, as the rope/store kernel computes it: the first of a pair x0 cos -
 * x1 sin, the second x0 sin + x1 cos; x is the element, p its partner, r = (sin, cos). */
static __device__ __forceinline__ float sk_ad_rot1(float x, float p, bool second, float2 r) {
    return second ? p * r.x + x * r.y : x * r.y - p * r.x;
}

/* A query row's fragment dims (32 cc + 8 t + e: cc < KC, e < 8) from its raw fp32 values xr
 * (loaded by the caller, all before any arithmetic, so that they are one trip to L2) to rotated
 * bf16. The pairs at halves with rope_dim / 2 = 32 OFF lie in the lane's own values (dims of
 * cc and cc + OFF); adjacent pairs too (e and e ^ 1); any other rotated width reads the
 * partners from src (a slower path no shape here takes). */
template <int KC, int OFF>
static __device__ __forceinline__ void sk_ad_rope_q_off(const float4 (&xr)[KC][2], uint4 (&out)[KC],
                                                        int t, const float2 *rot) {
#pragma unroll
    for (int cc = 0; cc < KC; cc++) {
        float y[8];
#pragma unroll
        for (int e = 0; e < 8; e++) {
            const float x = sk_ad_c(xr[cc][e >> 2], e & 3);
            const int lo = cc < OFF ? cc : cc - OFF, hi = cc < OFF ? cc + OFF : cc;
            const float pa = sk_ad_c(xr[lo < KC ? lo : KC - 1][e >> 2], e & 3);
            const float pb = sk_ad_c(xr[hi < KC ? hi : KC - 1][e >> 2], e & 3);
            if (cc < OFF)
                y[e] = sk_ad_rot1(x, pb, false, rot[32 * cc + 8 * t + e]);
            else if (cc < 2 * OFF)
                y[e] = sk_ad_rot1(x, pa, true, rot[32 * (cc - OFF) + 8 * t + e]);
            else
                y[e] = x;
        }
        out[cc] = sk_ad_pack8(y);
    }
}
template <int KC>
static __device__ __forceinline__ void sk_ad_rope_q(const float4 (&xr)[KC][2], uint4 (&out)[KC],
                                                    const float *src, int t, const float2 *rot,
                                                    int rope_dim, int halves) {
    const int half = rope_dim >> 1;
    if (halves && half == 32 && KC >= 2) {
        sk_ad_rope_q_off<KC, 1>(xr, out, t, rot);
    } else if (halves && half == 64 && KC >= 4) {
        sk_ad_rope_q_off<KC, (KC >= 4 ? 2 : 1)>(xr, out, t, rot);
    } else {
#pragma unroll
        for (int cc = 0; cc < KC; cc++) {
            float y[8];
#pragma unroll
            for (int e = 0; e < 8; e++) {
                const int d = 32 * cc + 8 * t + e;
                const float x = sk_ad_c(xr[cc][e >> 2], e & 3);
                y[e] = x;
                if (d < rope_dim) {
                    if (halves) {
                        const bool second = d >= half;
                        const int i = second ? d - half : d;
                        y[e] = sk_ad_rot1(x, __ldg(src + (second ? i : d + half)), second, rot[i]);
                    } else {
                        y[e] = sk_ad_rot1(x, sk_ad_c(xr[cc][(e ^ 1) >> 2], (e ^ 1) & 3),
                                          (e & 1) != 0, rot[d >> 1]);
                    }
                }
            }
            out[cc] = sk_ad_pack8(y);
        }
    }
}

/* The new token's K or V unit of this lane (lane u < HD / 8: K dims 8u .. 8u + 7, rotated; lane
 * HD / 8 + u: V's) as bf16, from its raw fp32 values xr. Called by the whole warp (the halves
 * partners come from lane ^ (rope_dim / 16) by a shuffle when that is a power of two; else from
 * ksrc, the K row). */
template <int HD>
static __device__ __forceinline__ uint4 sk_ad_newtok_unit(const float4 (&xr)[2],
                                                          const sk_attn_newtok &nt,
                                                          const float2 *rot, const float *ksrc) {
    constexpr int UPR = HD / 8;
    const int lane = threadIdx.x & 31, which = lane / UPR, col = lane % UPR;
    const int rope_dim = nt.rope_dim, half = rope_dim >> 1, hp8 = half >> 3;
    const bool shfl = nt.halves && (half & 7) == 0 && hp8 > 0 && (hp8 & (hp8 - 1)) == 0;
    float y[8];
#pragma unroll
    for (int e = 0; e < 8; e++) {
        const float x = sk_ad_c(xr[e >> 2], e & 3);
        const float p = __shfl_xor_sync(SK_AD_FULL, x, shfl ? hp8 : 0);
        const int d = 8 * col + e;
        y[e] = x;
        if (which == 0 && d < rope_dim) {
            if (nt.halves) {
                const bool second = d >= half;
                const int i = second ? d - half : d;
                y[e] = sk_ad_rot1(x, shfl ? p : __ldg(ksrc + (second ? i : d + half)), second,
                                  rot[i]);
            } else {
                y[e] = sk_ad_rot1(x, sk_ad_c(xr[(e ^ 1) >> 2], (e ^ 1) & 3), (e & 1) != 0,
                                  rot[d >> 1]);
            }
        }
    }
    return sk_ad_pack8(y);
}

/* Online-softmax step over chunk c: scores, running max/sum, rescale, P V. */
template <int HD, int NQT>
static __device__ __forceinline__ void sk_ad_compute_chunk(
    const sk_ad_chunk<HD> &ch, const uint4 (&qf)[NQT][HD / 32], const uint2 (&qr)[NQT],
    float (&o)[HD / 16][NQT][4], float (&m)[NQT][2], float (&l)[NQT][2], float sl2, int c,
    int len) {
    constexpr int KC = HD / 32, VC = HD / 64;
    const int lane = threadIdx.x & 31, r = lane >> 2;
    const int tok0 = c * SK_AD_CHUNK;
    const bool ok0 = tok0 + r < len, ok1 = tok0 + r + 8 < len;

    float s[NQT][4];
#pragma unroll
    for (int nq = 0; nq < NQT; nq++) s[nq][0] = s[nq][1] = s[nq][2] = s[nq][3] = 0.0f;
#pragma unroll
    for (int cc = 0; cc < KC; cc++) {
        const uint4 k0 = ch.k[0][cc], k1 = ch.k[1][cc];
#pragma unroll
        for (int nq = 0; nq < NQT; nq++) {
            sk_ad_mma(s[nq], k0.x, k1.x, k0.y, k1.y, qf[nq][cc].x, qf[nq][cc].y);
            sk_ad_mma(s[nq], k0.z, k1.z, k0.w, k1.w, qf[nq][cc].z, qf[nq][cc].w);
        }
    }
    if constexpr (HD % 32 != 0) {
#pragma unroll
        for (int nq = 0; nq < NQT; nq++)
            sk_ad_mma(s[nq], ch.kr[0].x, ch.kr[1].x, ch.kr[0].y, ch.kr[1].y, qr[nq].x, qr[nq].y);
    }

    uint32_t pb[NQT][2];
#pragma unroll
    for (int nq = 0; nq < NQT; nq++) {
        if (!ok0) s[nq][0] = s[nq][1] = -INFINITY;
        if (!ok1) s[nq][2] = s[nq][3] = -INFINITY;
    }
    /* Lazy rescaling: the exponents are taken against the reference max m, which is raised only
     * when some score of the chunk exceeds it by more than SK_AD_LAZY (log2 units), so p <= 2^8
     * and the output/sum rescale (and the max's shuffles) are skipped on most chunks. Any m gives
     * the same result (o and l share it; the merges and the combine use it consistently); the
     * first chunk always takes the slow path (m = -inf gives x = +inf for the valid token tok0). */
    float x[NQT][4];
    bool big = false;
#pragma unroll
    for (int nq = 0; nq < NQT; nq++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const float mb = m[nq][e] * sl2;
            x[nq][e] = fmaf(s[nq][e], sl2, -mb);
            x[nq][2 + e] = fmaf(s[nq][2 + e], sl2, -mb);
            big |= fmaxf(x[nq][e], x[nq][2 + e]) > SK_AD_LAZY;
        }
    }
    if (__any_sync(SK_AD_FULL, big)) {
#pragma unroll
        for (int nq = 0; nq < NQT; nq++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                /* Max over the chunk's 16 tokens: this lane's two rows, then the 8 lanes of equal
                 * t. Token tok0 is always valid, so mx is finite. */
                float mx = fmaxf(s[nq][e], s[nq][2 + e]);
                mx = fmaxf(mx, __shfl_xor_sync(SK_AD_FULL, mx, 4));
                mx = fmaxf(mx, __shfl_xor_sync(SK_AD_FULL, mx, 8));
                mx = fmaxf(mx, __shfl_xor_sync(SK_AD_FULL, mx, 16));
                const float mn = fmaxf(m[nq][e], mx);
                const float alpha = sk_ad_exp2((m[nq][e] - mn) * sl2); /* 0 on the first chunk */
                m[nq][e] = mn;
                const float mb = mn * sl2;
                x[nq][e] = fmaf(s[nq][e], sl2, -mb);
                x[nq][2 + e] = fmaf(s[nq][2 + e], sl2, -mb);
                l[nq][e] *= alpha;
#pragma unroll
                for (int mt = 0; mt < HD / 16; mt++) {
                    o[mt][nq][e] *= alpha;
                    o[mt][nq][2 + e] *= alpha;
                }
            }
        }
    }
#pragma unroll
    for (int nq = 0; nq < NQT; nq++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const float p0 = sk_ad_exp2(x[nq][e]), p1 = sk_ad_exp2(x[nq][2 + e]);
            l[nq][e] += p0 + p1;
            s[nq][e] = p0;
            s[nq][2 + e] = p1;
        }
        pb[nq][0] = sk_ad_trans(sk_ad_pack_bf16(s[nq][0], s[nq][1]));
        pb[nq][1] = sk_ad_trans(sk_ad_pack_bf16(s[nq][2], s[nq][3]));
    }

#pragma unroll
    for (int j = 0; j < VC; j++) {
#pragma unroll
        for (int i = 0; i < 4; i++) {
            const unsigned sel = (i & 1) ? 0x7632u : 0x5410u;
            const int w0 = i >> 1, w1 = 2 + (i >> 1);
            const uint32_t a0 = __byte_perm(sk_ad_word(ch.v[0][j], w0), sk_ad_word(ch.v[1][j], w0), sel);
            const uint32_t a1 = __byte_perm(sk_ad_word(ch.v[0][j], w1), sk_ad_word(ch.v[1][j], w1), sel);
            const uint32_t a2 = __byte_perm(sk_ad_word(ch.v[2][j], w0), sk_ad_word(ch.v[3][j], w0), sel);
            const uint32_t a3 = __byte_perm(sk_ad_word(ch.v[2][j], w1), sk_ad_word(ch.v[3][j], w1), sel);
#pragma unroll
            for (int nq = 0; nq < NQT; nq++)
                sk_ad_mma(o[4 * j + i][nq], a0, a1, a2, a3, pb[nq][0], pb[nq][1]);
        }
    }
    if constexpr (HD % 64 != 0) {
        const uint32_t a0 = __byte_perm(ch.vr[0], ch.vr[1], 0x5410u);
        const uint32_t a1 = __byte_perm(ch.vr[0], ch.vr[1], 0x7632u);
        const uint32_t a2 = __byte_perm(ch.vr[2], ch.vr[3], 0x5410u);
        const uint32_t a3 = __byte_perm(ch.vr[2], ch.vr[3], 0x7632u);
#pragma unroll
        for (int nq = 0; nq < NQT; nq++)
            sk_ad_mma(o[4 * VC][nq], a0, a1, a2, a3, pb[nq][0], pb[nq][1]);
    }
}

/* Output dim of O^T row m (0..15) of m-tile mt (see the fragment mapping). */
template <int HD> static __device__ __forceinline__ int sk_ad_odim(int mt, int m) {
    constexpr int VC = HD / 64;
    return mt < 4 * VC ? 64 * (mt >> 2) + 8 * (m & 7) + 4 * (m >> 3) + (mt & 3)
                       : 64 * VC + 2 * (m & 7) + (m >> 3);
}

/* Shared memory of kernel 2 for a configuration: the merge buffers (floats), then from
 * sk_ad_ring_offset bytes the warps' rings (ring slots of 32 rows x head_dim bf16 each). */
static inline __host__ __device__ size_t sk_ad_ring_offset(int head_dim, int qtiles, int warps,
                                                            int wq) {
    const size_t qpw = 8 * (size_t)qtiles;
    const size_t f = sizeof(float) * (2 * (size_t)warps * qpw + (size_t)wq * qpw *
                                      (size_t)head_dim + 2 * (size_t)wq * qpw);
    return (f + 127) / 128 * 128;
}
static inline size_t sk_ad_smem_bytes(int head_dim, int qtiles, int warps, int wq, int ring) {
    return sk_ad_ring_offset(head_dim, qtiles, warps, wq) +
           (size_t)warps * (size_t)ring * 2 * SK_AD_CHUNK * (size_t)head_dim * 2;
}
/* The push merge's receive area (session 28; kernel 2's a.push), after sk_ad_smem_bytes: the
 * normalised float4 partials of the elements a block owns, then every split's lse of the qpw
 * queries ([split][qpw]). Element e of the query block's qpw x head_dim / 4, slots = e's count / ns
 * rounded up: staged (a.push_staged, session 29) block e / slots owns it, at [split][e % slots]
 * (a sender's values for one owner contiguous); scattered (session 28) block e % ns owns it, at
 * [e / ns][split]. 0 where the push merge does not apply: one warp a block (one query tile
 * group), head_dim 64 / 128, 2..SK_AD_CLUSTER_MAX splits. */
static inline size_t sk_ad_push_bytes(int head_dim, int qtiles, int warps, int ns) {
    if (warps != 1 || head_dim % 64 != 0 || ns < 2 || ns > SK_AD_CLUSTER_MAX) return 0;
    const size_t qpw = 8 * (size_t)qtiles, e = qpw * (size_t)head_dim / 4;
    const size_t slots = (e + (size_t)ns - 1) / (size_t)ns;
    const size_t f = slots * (size_t)ns * 4 + (size_t)ns * qpw;
    return (f * sizeof(float) + 127) / 128 * 128;
}

/* The cluster merges' weights (pull and push, kernel 2): w[u] = 2^(lse_u - max) for the ns splits
 * (0 past them or when every split was empty), summed in the order of the combine's xor-shuffle
 * tree over 32 lanes (lane u holding weight u; lanes 16..31 zero, which adds exactly); returns
 * 1 / sum (0 for an empty sum). */
static __device__ __forceinline__ float sk_ad_merge_weights(const float (&lse_s)[SK_AD_CLUSTER_MAX],
                                                            int ns, float (&w)[SK_AD_CLUSTER_MAX]) {
    float mx = -INFINITY, t[SK_AD_CLUSTER_MAX];
#pragma unroll
    for (int u = 0; u < SK_AD_CLUSTER_MAX; u++) mx = fmaxf(mx, lse_s[u]);
#pragma unroll
    for (int u = 0; u < SK_AD_CLUSTER_MAX; u++)
        t[u] = w[u] = (u < ns && mx != -INFINITY) ? sk_ad_exp2(lse_s[u] - mx) : 0.0f;
#pragma unroll
    for (int off = SK_AD_CLUSTER_MAX / 2; off > 0; off >>= 1)
#pragma unroll
        for (int u = 0; u < off; u++) t[u] = t[u] + t[u + off];
    const float den = t[0];
    return den > 0.0f ? 1.0f / den : 0.0f;
}
/* The merged output's 4 dims d4 of row bh (b * n_heads + head), acc * inv, as fp32 or bf16. */
static __device__ __forceinline__ void sk_ad_store_merged(const sk_attn_params &p, size_t bh, int hd,
                                                          int d4, float4 acc, float inv) {
    if (p.out_f32) {
        *(float4 *)((float *)p.out + bh * hd + 4 * d4) =
            make_float4(acc.x * inv, acc.y * inv, acc.z * inv, acc.w * inv);
    } else {
        uint2 u2;
        u2.x = sk_ad_pack_bf16(acc.x * inv, acc.y * inv);
        u2.y = sk_ad_pack_bf16(acc.z * inv, acc.w * inv);
        *(uint2 *)((__nv_bfloat16 *)p.out + bh * hd + 4 * d4) = u2;
    }
}

/* Grid: batch * n_splits * n_kv_heads * n_qblk blocks (query block fastest, so the blocks that
 * share a KV head run side by side), W * 32 threads, sk_ad_smem_bytes of dynamic shared memory. */
template <int HD, int NQT, int W, bool PF, int RS>
__global__ void __launch_bounds__(W * 32) sk_attn_decode_kernel2(const __grid_constant__ sk_ad_args a) {
    static_assert(HD % 64 == 0 || HD % 64 == 16, "head_dim must be 64j or 64j + 16");
    static_assert(RS == 0 || (!PF && HD % 64 == 0), "the ring: head_dim 64/128, no prefetch");
    constexpr int KC = HD / 32, NMT = HD / 16, QPW = 8 * NQT;
    extern __shared__ float sk_ad_smem[];
    /* PDL (session 9, sk_attn_pdl_mode): everything this kernel reads (q, the pages the
     * rope/store kernel just wrote, the page tables) waits for the kernels before it; the next
     * launch may start now only in mode 2 (else at this kernel's end). */
    SK_TRACE_BEGIN();
    /* the push merge's first barrier half: every block has started before any block writes into
     * a peer's shared memory (its wait is taken just before the pushes) */
    if constexpr (W == 1 && HD % 64 == 0)
        if (a.push > 0) sk_ad_cluster_arrive_relaxed();
    if (a.pdl_early) sk_pdl_trigger();
    if (!a.prewait) sk_pdl_wait();

    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, r = lane >> 2, t = lane & 3;
    const int wq = a.wq, wqi = warp % wq, wt = warp / wq, WT = W / wq;
    const int ns = a.p.n_splits, nkv = a.p.kv.n_kv_heads, group = a.group;

    int bid = blockIdx.x, qb, kvh, split, b;
    if (a.clus) { /* split fastest: a cluster is the splits of one (sequence, KV head, query block) */
        split = bid % ns;
        bid /= ns;
        qb = bid % a.n_qblk;
        bid /= a.n_qblk;
        kvh = bid % nkv;
        b = bid / nkv;
    } else {
        qb = bid % a.n_qblk;
        bid /= a.n_qblk;
        kvh = bid % nkv;
        bid /= nkv;
        split = bid % ns;
        b = bid / ns;
    }

    const int len = a.p.kv.kv_len[b];
    const int32_t *ids = a.p.kv.indices + a.p.kv.indptr[b];
    const int npg = (len + (1 << a.lg_page) - 1) >> a.lg_page;
    const int n_chunks = (len + SK_AD_CHUNK - 1) / SK_AD_CHUNK;
    const int cps = (n_chunks + ns - 1) / ns;
    const int c_lo = min(n_chunks, split * cps), c_hi = min(n_chunks, c_lo + cps);
    const int cpw = (c_hi - c_lo + WT - 1) / WT;
    const int qbase = (qb * wq + wqi) * QPW; /* this warp's first query slot in the group */
    const int w_lo = min(c_hi, c_lo + wt * cpw);
    const int w_hi = qbase < group ? min(c_hi, w_lo + cpw) : w_lo; /* idle query tiles skip */

    /* a.p.nt (the new token in fp32, ring configurations only): a table of the rotation at the
     * sequence's position, q rotated as it is loaded, the token's K/V row patched into its ring
     * slot (sk_ad_newtok_unit). */
    constexpr bool NT_OK = RS > 0;
    const bool nt = NT_OK && a.p.nt.q != NULL;
    __shared__ float2 rot[NT_OK ? HD / 2 : 1];
    __nv_bfloat16 *ring = NULL; /* this warp's ring (RS > 0) */
    if constexpr (RS > 0)
        ring = (__nv_bfloat16 *)((char *)sk_ad_smem + sk_ad_ring_offset(HD, NQT, W, wq)) +
               (size_t)warp * RS * 2 * SK_AD_CHUNK * HD;
    sk_ad_pwin wi = {0, 0, 0}; /* the ring's issuing page-id window */
    bool issued = false;       /* the ring's first RS - 1 chunks already issued */
    (void)ring, (void)issued;

    /* a.prewait (session 22): before the wait, only what the kernel before does not write: the
     * page table (the host's) and the chunks wholly before the sequence's last token (the one
     * the RoPE + K/V store writes), brought into L2 so that the loads after the wait hit there.
     * With nt (session 25) nothing before this kernel writes the cache, and the last token's row
     * is patched after the wait: the rotation table and the ring's first RS - 1 chunks (every
     * chunk, that one's too) are started before the wait, into shared memory. */
    if (a.prewait && nt) {
        sk_ad_rot_table(rot, a.p.nt, len - 1);
        if constexpr (RS > 0) {
            if (w_lo < w_hi) {
                wi.base = (w_lo * SK_AD_CHUNK) >> a.lg_page;
                wi.cur = sk_ad_ld_pid(ids, wi.base + lane, npg);
                wi.nxt = sk_ad_ld_pid(ids, wi.base + 32 + lane, npg);
#pragma unroll
                for (int i = 0; i < RS - 1; i++) {
                    sk_ad_ring_issue<HD>(ring + (size_t)((w_lo + i) % RS) * 2 * SK_AD_CHUNK * HD,
                                         a, ids, npg, wi, w_lo + i, w_hi, kvh);
                    sk_ad_cp_commit();
                }
            }
        }
        issued = true;
        sk_pdl_wait();
    } else if (a.prewait) {
        if (w_lo < w_hi) {
            sk_ad_pwin pw;
            pw.base = (w_lo * SK_AD_CHUNK) >> a.lg_page;
            pw.cur = sk_ad_ld_pid(ids, pw.base + lane, npg);
            pw.nxt = sk_ad_ld_pid(ids, pw.base + 32 + lane, npg);
#pragma unroll
            for (int i = 0; i < SK_AD_PREWAIT_CHUNKS; i++) {
                const int c = w_lo + i;
                if ((c + 1) * SK_AD_CHUNK <= len - 1) sk_ad_prefetch_chunk<HD>(a, pw, c, w_hi, kvh);
            }
        }
        sk_pdl_wait();
    }

    /* nt: every raw fp32 value this warp needs (its q rows; the new token's K / V unit where
     * its chunks hold the token, and the token's page id) loaded first, in one trip, then the
     * rotation table (unless made before the wait), then the arithmetic. */
    constexpr int UPR = HD / 8;
    const int c_last = (len - 1) / SK_AD_CHUNK;
    const bool has_last = nt && w_lo <= c_last && c_last < w_hi;
    const bool store_last = has_last && qb == 0 && wqi == 0;
    float4 xq[NT_OK ? NQT : 1][NT_OK ? KC : 1][2];
    float4 xn[2] = {make_float4(0.f, 0.f, 0.f, 0.f), make_float4(0.f, 0.f, 0.f, 0.f)};
    int last_pid = 0;
    uint4 nt_unit = make_uint4(0u, 0u, 0u, 0u);
    const float *nt_krow = NULL;
    if constexpr (NT_OK) {
        if (nt) {
#pragma unroll
            for (int nq = 0; nq < NQT; nq++) {
                const int j = qbase + 8 * nq + r;
                const bool ok = j < group;
                const float *qs = a.p.nt.q + (size_t)b * (size_t)a.p.nt.q_stride +
                                  (size_t)(kvh * group + (ok ? j : 0)) * HD;
#pragma unroll
                for (int cc = 0; cc < KC; cc++)
#pragma unroll
                    for (int h = 0; h < 2; h++)
                        xq[nq][cc][h] = ok ? __ldg((const float4 *)(qs + 32 * cc + 8 * t + 4 * h))
                                           : make_float4(0.f, 0.f, 0.f, 0.f);
            }
            if (has_last) {
                nt_krow = a.p.nt.k + (size_t)b * a.p.nt.kv_stride + (size_t)kvh * HD;
                if (lane < 2 * UPR) {
                    const float *src = (lane < UPR ? nt_krow
                                                   : a.p.nt.v + (size_t)b * a.p.nt.kv_stride +
                                                         (size_t)kvh * HD) +
                                       8 * (lane % UPR);
                    xn[0] = __ldg((const float4 *)src);
                    xn[1] = __ldg((const float4 *)(src + 4));
                }
                if (store_last) last_pid = __ldg(ids + ((len - 1) >> a.lg_page));
            }
            if (!a.prewait) sk_ad_rot_table(rot, a.p.nt, len - 1);
            __syncthreads();
            if (has_last) nt_unit = sk_ad_newtok_unit<HD>(xn, a.p.nt, rot, nt_krow);
        }
    }
    (void)xq, (void)last_pid, (void)nt_unit, (void)store_last;

    /* Q as the B operand (see the mapping); slots past the group are zero queries. */
    uint4 qf[NQT][KC];
    uint2 qr[NQT];
#pragma unroll
    for (int nq = 0; nq < NQT; nq++) {
        const int j = qbase + 8 * nq + r;
        const bool ok = j < group;
        const __nv_bfloat16 *qp = (const __nv_bfloat16 *)a.p.q + (size_t)b * (size_t)a.p.q_stride +
                                  (size_t)(kvh * group + (ok ? j : 0)) * HD;
        if constexpr (NT_OK) {
            if (nt) {
                const float *qs = a.p.nt.q + (size_t)b * (size_t)a.p.nt.q_stride +
                                  (size_t)(kvh * group + (ok ? j : 0)) * HD;
                sk_ad_rope_q<KC>(xq[nq], qf[nq], qs, t, rot, a.p.nt.rope_dim, a.p.nt.halves);
                if (!ok)
#pragma unroll
                    for (int cc = 0; cc < KC; cc++) qf[nq][cc] = make_uint4(0u, 0u, 0u, 0u);
            }
        }
        if (!nt) {
#pragma unroll
            for (int cc = 0; cc < KC; cc++)
                qf[nq][cc] = ok ? __ldg((const uint4 *)(qp + 32 * cc + 8 * t)) : make_uint4(0u, 0u, 0u, 0u);
        }
        qr[nq] = make_uint2(0u, 0u);
        if constexpr (HD % 32 != 0)
            if (ok) qr[nq] = __ldg((const uint2 *)(qp + 32 * KC + 4 * t));
    }

    sk_ad_mark(2, __uint_as_float(qf[0][0].x | qf[NQT - 1][KC - 1].w));
    float o[NMT][NQT][4], m[NQT][2], l[NQT][2];
#pragma unroll
    for (int nq = 0; nq < NQT; nq++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            m[nq][e] = -INFINITY;
            l[nq][e] = 0.0f;
        }
#pragma unroll
        for (int mt = 0; mt < NMT; mt++) o[mt][nq][0] = o[mt][nq][1] = o[mt][nq][2] = o[mt][nq][3] = 0.0f;
    }

    if (w_lo < w_hi) {
        sk_ad_pwin win;
        win.base = (w_lo * SK_AD_CHUNK) >> a.lg_page;
        win.cur = sk_ad_ld_pid(ids, win.base + lane, npg);
        win.nxt = sk_ad_ld_pid(ids, win.base + 32 + lane, npg);
        sk_ad_chunk<HD> ca;
        int c = w_lo;
        if constexpr (PF) {
            /* Two register sets, unrolled by two so that no copies are needed. */
            sk_ad_chunk<HD> cb;
            sk_ad_load_chunk<HD>(ca, a, ids, npg, win, c, kvh, len);
            while (true) {
                if (c + 1 < w_hi) sk_ad_load_chunk<HD>(cb, a, ids, npg, win, c + 1, kvh, len);
                sk_ad_compute_chunk<HD, NQT>(ca, qf, qr, o, m, l, a.sl2, c, len);
                if (++c >= w_hi) break;
                if (c + 1 < w_hi) sk_ad_load_chunk<HD>(ca, a, ids, npg, win, c + 1, kvh, len);
                sk_ad_compute_chunk<HD, NQT>(cb, qf, qr, o, m, l, a.sl2, c, len);
                if (++c >= w_hi) break;
            }
        } else if constexpr (RS > 0) {
            /* This warp's ring, ring - 1 chunks ahead: every iteration issues one chunk's copies
             * (an empty group past the end, so that wait_group counts stay uniform), waits for
             * chunk c's group, reads it into registers and computes. The barrier at the top
             * keeps the slot being refilled (read in the previous iteration) from being
             * overwritten before every lane has read it. */
            if (!issued) {
                wi = win;
#pragma unroll
                for (int i = 0; i < RS - 1; i++) {
                    sk_ad_ring_issue<HD>(ring + (size_t)((c + i) % RS) * 2 * SK_AD_CHUNK * HD, a,
                                         ids, npg, wi, c + i, w_hi, kvh);
                    sk_ad_cp_commit();
                }
            }
            for (; c < w_hi; c++) {
                __syncwarp();
                sk_ad_ring_issue<HD>(ring + (size_t)((c + RS - 1) % RS) * 2 * SK_AD_CHUNK * HD, a,
                                     ids, npg, wi, c + RS - 1, w_hi, kvh);
                sk_ad_cp_commit();
                sk_ad_cp_wait<RS - 1>();
                __syncwarp();
                if (has_last && c == c_last) { /* the new token's row, in place */
                    const int pos = len - 1, row = pos & (SK_AD_CHUNK - 1);
                    if (lane < 2 * UPR) {
                        const int which = lane / UPR, col = lane % UPR;
                        *(uint4 *)(ring + (size_t)(c % RS) * 2 * SK_AD_CHUNK * HD +
                                   (which * SK_AD_CHUNK + row) * HD + 8 * (col ^ sk_ad_swz(row))) =
                            nt_unit;
                        if (store_last) {
                            const size_t base = (((size_t)last_pid * (size_t)nkv + (size_t)kvh)
                                                 << a.lg_page) +
                                                (size_t)(pos & ((1 << a.lg_page) - 1));
                            *(uint4 *)((__nv_bfloat16 *)(which ? a.p.nt.v_pool : a.p.nt.k_pool) +
                                       base * HD + 8 * col) = nt_unit;
                        }
                    }
                    __syncwarp();
                }
                sk_ad_ring_read<HD>(ca, ring + (size_t)(c % RS) * 2 * SK_AD_CHUNK * HD, c, len);
                sk_ad_compute_chunk<HD, NQT>(ca, qf, qr, o, m, l, a.sl2, c, len);
            }
            sk_ad_cp_wait<0>();
        } else {
            const int pd = a.l2pf;
            for (int i = 1; i < pd; i++) sk_ad_prefetch_chunk<HD>(a, win, c + i, w_hi, kvh);
            for (; c < w_hi; c++) {
                if (pd > 0) sk_ad_prefetch_chunk<HD>(a, win, c + pd, w_hi, kvh);
                sk_ad_load_chunk<HD>(ca, a, ids, npg, win, c, kvh, len);
                sk_ad_compute_chunk<HD, NQT>(ca, qf, qr, o, m, l, a.sl2, c, len);
            }
        }
    }

    sk_ad_mark(3, o[NMT - 1][NQT - 1][3] + l[NQT - 1][1]);
    if (a.pdl_loop) sk_pdl_trigger();
    /* Per-lane partial sums -> the query's sum over the warp's tokens. */
#pragma unroll
    for (int nq = 0; nq < NQT; nq++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            float v = l[nq][e];
            v += __shfl_xor_sync(SK_AD_FULL, v, 4);
            v += __shfl_xor_sync(SK_AD_FULL, v, 8);
            v += __shfl_xor_sync(SK_AD_FULL, v, 16);
            l[nq][e] = v;
        }
    }

    /* The push merge (session 28, a.push; one warp a block, so no merge between warps): each
     * lane normalises its outputs in registers (the arithmetic of the shared-memory merge below
     * with one warp: f = 2^0, L = 0 + l f) and stores each float4 of the partial, and its lse,
     * straight into the shared memory of the block that owns the element; one cluster barrier
     * publishes them; each block then merges the splits of its elements from its own shared
     * memory in the cluster merge's arithmetic and order below (bitwise its output). Saves the
     * block's merge through shared memory, the remote loads' round trips and one barrier.
     * a.push_staged (session 29, the default) stages the partial in the block's own shared memory
     * first, so that each remote store goes to one peer, coalesced (sk_ad_push_bytes' layout). */
    if constexpr (W == 1 && HD % 64 == 0) {
        if (a.push > 0) {
            constexpr int D4 = HD / 4, E = QPW * D4, VC = HD / 64;
            const int slots = (E + ns - 1) / ns;
            float *recv = (float *)((char *)sk_ad_smem + a.push);
            float *recv_lse = recv + (size_t)slots * ns * 4;
            float f[NQT][2], inv[NQT][2], lse[NQT][2];
#pragma unroll
            for (int nq = 0; nq < NQT; nq++) {
#pragma unroll
                for (int e = 0; e < 2; e++) {
                    const float M = m[nq][e];
                    float L = 0.0f;
                    if (M != -INFINITY) L += l[nq][e] * sk_ad_exp2((M - M) * a.sl2);
                    inv[nq][e] = L > 0.0f ? 1.0f / L : 0.0f;
                    lse[nq][e] = L > 0.0f ? M * a.sl2 + log2f(L) : -INFINITY;
                    f[nq][e] = M == -INFINITY ? 0.0f : sk_ad_exp2((M - M) * a.sl2);
                }
            }
            sk_ad_mark(5, lse[NQT - 1][1] + inv[0][0] + f[NQT - 1][1]);
            float lastv = 0.0f;
            if (a.push_staged) {
                /* Staged (session 29): the partial [qpw][head_dim] and the lse [qpw] into this
                 * block's own shared memory (the pull merge's sm_o / sm_m, free here), then per
                 * peer u the slots of the elements u owns (e / slots == u), one coalesced float4
                 * store a lane (the scattered stores below reach 4 peers each: inside the 70B
                 * batch-1 step they took 3.3 us against 0.5 for this pattern alone,
                 * dev/cuda/coresident.cu). Elements of query slots past the group are not sent
                 * (their owner skips them). */
                float4 *part4 = (float4 *)(sk_ad_smem + 2 * QPW);
                float *sl = sk_ad_smem;
#pragma unroll
                for (int nq = 0; nq < NQT; nq++) {
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int qq = 8 * nq + 2 * t + e;
#pragma unroll
                        for (int j = 0; j < VC; j++) {
#pragma unroll
                            for (int hh = 0; hh < 2; hh++) {
                                const float fe = f[nq][e], ie = inv[nq][e];
                                float4 v;
                                v.x = (o[4 * j + 0][nq][2 * hh + e] * fe) * ie;
                                v.y = (o[4 * j + 1][nq][2 * hh + e] * fe) * ie;
                                v.z = (o[4 * j + 2][nq][2 * hh + e] * fe) * ie;
                                v.w = (o[4 * j + 3][nq][2 * hh + e] * fe) * ie;
                                part4[qq * D4 + 16 * j + 2 * r + hh] = v;
                            }
                        }
                        if (r == 0) sl[qq] = lse[nq][e];
                    }
                }
                __syncwarp();
                sk_ad_cluster_wait();
                sk_ad_mark(6, *(volatile float *)recv_lse);
                const int nvalid = max(0, min(QPW, group - qb * QPW)) * D4; /* elements worth sending */
                for (int u = 0; u < ns; u++) {
                    for (int sl_i = lane; sl_i < slots; sl_i += 32) {
                        const int ei = u * slots + sl_i;
                        if (ei >= nvalid) break;
                        const float4 v = part4[ei];
                        lastv = v.w;
                        sk_ad_st_cl4(sk_ad_mapa(recv + ((size_t)split * slots + sl_i) * 4, (unsigned)u), v);
                    }
                }
                for (int i = lane; i < ns * (QPW / 4); i += 32) {
                    const int u = i / (QPW / 4), h = i % (QPW / 4);
                    sk_ad_st_cl4(sk_ad_mapa(recv_lse + split * QPW + 4 * h, (unsigned)u),
                                 ((const float4 *)sl)[h]);
                }
            } else {
                sk_ad_cluster_wait();
                sk_ad_mark(6, *(volatile float *)recv_lse);
#pragma unroll
                for (int nq = 0; nq < NQT; nq++) {
#pragma unroll
                    for (int e = 0; e < 2; e++) {
                        const int qq = 8 * nq + 2 * t + e;
#pragma unroll
                        for (int j = 0; j < VC; j++) {
#pragma unroll
                            for (int hh = 0; hh < 2; hh++) {
                                const int ei = qq * D4 + 16 * j + 2 * r + hh;
                                const float fe = f[nq][e], ie = inv[nq][e];
                                float4 v;
                                v.x = (o[4 * j + 0][nq][2 * hh + e] * fe) * ie;
                                v.y = (o[4 * j + 1][nq][2 * hh + e] * fe) * ie;
                                v.z = (o[4 * j + 2][nq][2 * hh + e] * fe) * ie;
                                v.w = (o[4 * j + 3][nq][2 * hh + e] * fe) * ie;
                                lastv = v.w;
                                sk_ad_st_cl4(sk_ad_mapa(recv + ((size_t)(ei / ns) * ns + split) * 4,
                                                        (unsigned)(ei % ns)),
                                             v);
                            }
                        }
                    }
                    if (r == 0)
                        for (int u = 0; u < ns; u++)
                            sk_ad_st_cl2(sk_ad_mapa(recv_lse + split * QPW + 8 * nq + 2 * t, (unsigned)u),
                                         lse[nq][0], lse[nq][1]);
                }
            }
            sk_ad_mark(7, lastv);
            sk_ad_cluster_sync();
            sk_ad_mark(4, recv_lse[0]);
            const int H = a.p.n_heads;
            /* this block's elements: staged e = split * slots + s at [u][s]; scattered
             * e = s * ns + split at [s][u] */
            for (int slot = lane; slot < slots; slot += 32) {
                const int ei = a.push_staged ? split * slots + slot : slot * ns + split;
                if (ei >= E) break;
                const int qq = ei / D4, d4 = ei % D4;
                const int j = qb * QPW + qq;
                if (j >= group) continue;
                float lse_s[SK_AD_CLUSTER_MAX], w[SK_AD_CLUSTER_MAX];
#pragma unroll
                for (int u = 0; u < SK_AD_CLUSTER_MAX; u++)
                    lse_s[u] = u < ns ? recv_lse[u * QPW + qq] : -INFINITY;
                const float dinv = sk_ad_merge_weights(lse_s, ns, w);
                float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
                const float4 *src = (const float4 *)recv + (a.push_staged ? (size_t)slot : (size_t)slot * ns);
                const size_t su = a.push_staged ? (size_t)slots : 1;
#pragma unroll
                for (int u = 0; u < SK_AD_CLUSTER_MAX; u++) {
                    if (u >= ns) break;
                    const float4 x = src[u * su];
                    acc.x = fmaf(w[u], x.x, acc.x);
                    acc.y = fmaf(w[u], x.y, acc.y);
                    acc.z = fmaf(w[u], x.z, acc.z);
                    acc.w = fmaf(w[u], x.w, acc.w);
                }
                sk_ad_store_merged(a.p, (size_t)b * (size_t)H + (size_t)(kvh * group + j), HD, d4,
                                   acc, dinv);
            }
            sk_ad_trace_end_push();
            return;
        }
    }

    /* Merge the WT warps of each query tile group. Shared layout (floats):
     *   sm_m, sm_l [W][QPW]: each warp's max and sum per query slot
     *   sm_o [wq * QPW][HD]: merged unnormalised output
     *   sm_inv, sm_lse [wq * QPW]: 1 / total sum, log2-sum-exp of scaled scores */
    const int QB = wq * QPW;
    float *sm_m = sk_ad_smem, *sm_l = sm_m + W * QPW, *sm_o = sm_l + W * QPW;
    float *sm_inv = sm_o + QB * HD, *sm_lse = sm_inv + QB;
    if (r == 0) {
#pragma unroll
        for (int nq = 0; nq < NQT; nq++) {
#pragma unroll
            for (int e = 0; e < 2; e++) {
                sm_m[warp * QPW + 8 * nq + 2 * t + e] = m[nq][e];
                sm_l[warp * QPW + 8 * nq + 2 * t + e] = l[nq][e];
            }
        }
    }
    __syncthreads();
    for (int qq = threadIdx.x; qq < QB; qq += W * 32) {
        const int g = qq / QPW, q = qq % QPW;
        float M = -INFINITY, L = 0.0f;
        for (int u = 0; u < WT; u++) M = fmaxf(M, sm_m[(u * wq + g) * QPW + q]);
        for (int u = 0; u < WT; u++) {
            const float mu = sm_m[(u * wq + g) * QPW + q];
            if (mu != -INFINITY) L += sm_l[(u * wq + g) * QPW + q] * sk_ad_exp2((mu - M) * a.sl2);
        }
        sm_inv[qq] = L > 0.0f ? 1.0f / L : 0.0f;
        sm_lse[qq] = L > 0.0f ? M * a.sl2 + log2f(L) : -INFINITY;
    }
#pragma unroll
    for (int nq = 0; nq < NQT; nq++) {
#pragma unroll
        for (int e = 0; e < 2; e++) {
            const int q = 8 * nq + 2 * t + e;
            float M = -INFINITY;
            for (int u = 0; u < WT; u++) M = fmaxf(M, sm_m[(u * wq + wqi) * QPW + q]);
            const float f = m[nq][e] == -INFINITY ? 0.0f : sk_ad_exp2((m[nq][e] - M) * a.sl2);
#pragma unroll
            for (int mt = 0; mt < NMT; mt++) {
                o[mt][nq][e] *= f;
                o[mt][nq][2 + e] *= f;
            }
        }
    }
    /* Fixed order: token group 0 stores, 1.. add (deterministic). */
    for (int u = 0; u < WT; u++) {
        if (wt == u) {
#pragma unroll
            for (int nq = 0; nq < NQT; nq++) {
                const int q0 = wqi * QPW + 8 * nq + 2 * t;
#pragma unroll
                for (int mt = 0; mt < NMT; mt++) {
#pragma unroll
                    for (int hh = 0; hh < 2; hh++) {
                        const int d = sk_ad_odim<HD>(mt, r + 8 * hh);
                        float *p0 = sm_o + q0 * HD + d, *p1 = p0 + HD;
                        if (u == 0) {
                            *p0 = o[mt][nq][2 * hh];
                            *p1 = o[mt][nq][2 * hh + 1];
                        } else {
                            *p0 += o[mt][nq][2 * hh];
                            *p1 += o[mt][nq][2 * hh + 1];
                        }
                    }
                }
            }
        }
        __syncthreads();
    }

    sk_ad_mark(4, sm_o[threadIdx.x & 7]);
    const int H = a.p.n_heads;
    /* Cluster merge (session 22): the cluster's ns blocks (cluster rank = split) hold their
     * merged unnormalised outputs, 1 / sum and lse in shared memory; after a cluster barrier each
     * block merges a share of the (query, 4 dims) outputs by reading every split's values from
     * its peers (distributed shared memory), in the combine kernel's arithmetic and order (the
     * partial is o * inv, the weights 2^(lse - max) summed in the combine's shuffle-tree order),
     * so the result is bitwise that of the split path with sk_ad_combine_kernel, without its
     * launch and the partials' round trip through global memory. A second barrier keeps every
     * block's shared memory alive until its peers have read it. */
    if (a.clus) {
        sk_ad_cluster_sync();
        for (int e = split * W * 32 + threadIdx.x; e < QB * (HD / 4); e += ns * W * 32) {
            const int qq = e / (HD / 4), d4 = e % (HD / 4);
            const int j = qb * QB + qq;
            if (j >= group) continue;
            float lse_s[SK_AD_CLUSTER_MAX], w[SK_AD_CLUSTER_MAX];
#pragma unroll
            for (int u = 0; u < SK_AD_CLUSTER_MAX; u++)
                lse_s[u] = u < ns ? sk_ad_ld_cl(sk_ad_mapa(sm_lse + qq, u)) : -INFINITY;
            const float inv = sk_ad_merge_weights(lse_s, ns, w);
            float4 acc = make_float4(0.0f, 0.0f, 0.0f, 0.0f);
            for (int u = 0; u < ns; u++) {
                const float iu = sk_ad_ld_cl(sk_ad_mapa(sm_inv + qq, u));
                const float4 x = sk_ad_ld_cl4(sk_ad_mapa(sm_o + qq * HD + 4 * d4, u));
                acc.x = fmaf(w[u], x.x * iu, acc.x);
                acc.y = fmaf(w[u], x.y * iu, acc.y);
                acc.z = fmaf(w[u], x.z * iu, acc.z);
                acc.w = fmaf(w[u], x.w * iu, acc.w);
            }
            sk_ad_store_merged(a.p, (size_t)b * (size_t)H + (size_t)(kvh * group + j), HD, d4, acc,
                               inv);
        }
        sk_ad_cluster_sync();
        SK_TRACE_END_PH(SK_TRACE_DEC << 24);
        return;
    }

    /* Write: the output (bf16, or fp32 when out_f32), or the split's normalised fp32 partial
     * and its lse. */
    for (int idx = threadIdx.x; idx < QB * (HD / 8); idx += W * 32) {
        const int qq = idx / (HD / 8), d8 = idx % (HD / 8);
        const int j = qb * QB + qq;
        if (j >= group) continue;
        const int h = kvh * group + j;
        const float inv = sm_inv[qq];
        const float4 x0 = *(const float4 *)(sm_o + qq * HD + 8 * d8);
        const float4 x1 = *(const float4 *)(sm_o + qq * HD + 8 * d8 + 4);
        const size_t bh = (size_t)b * (size_t)H + (size_t)h;
        if (ns == 1 && a.p.out_f32) {
            float *po = (float *)a.p.out + bh * HD + 8 * d8;
            *(float4 *)po = make_float4(x0.x * inv, x0.y * inv, x0.z * inv, x0.w * inv);
            *(float4 *)(po + 4) = make_float4(x1.x * inv, x1.y * inv, x1.z * inv, x1.w * inv);
        } else if (ns == 1) {
            uint4 u;
            u.x = sk_ad_pack_bf16(x0.x * inv, x0.y * inv);
            u.y = sk_ad_pack_bf16(x0.z * inv, x0.w * inv);
            u.z = sk_ad_pack_bf16(x1.x * inv, x1.y * inv);
            u.w = sk_ad_pack_bf16(x1.z * inv, x1.w * inv);
            *(uint4 *)((__nv_bfloat16 *)a.p.out + bh * HD + 8 * d8) = u;
        } else {
            float *po = a.p.part_out + (bh * (size_t)ns + (size_t)split) * HD + 8 * d8;
            *(float4 *)po = make_float4(x0.x * inv, x0.y * inv, x0.z * inv, x0.w * inv);
            *(float4 *)(po + 4) = make_float4(x1.x * inv, x1.y * inv, x1.z * inv, x1.w * inv);
            if (d8 == 0) a.p.part_lse[bh * (size_t)ns + (size_t)split] = sm_lse[qq];
        }
    }
    SK_TRACE_END_PH(SK_TRACE_DEC << 24);
}

/* Combine of the split partials: one warp per (sequence, head); 4 warps per block.
 * out[bh][:] = sum_s 2^(lse_s - max) part_out[bh][s][:] / sum_s 2^(lse_s - max); zeros when every
 * split was empty. */
typedef struct sk_ad_comb_args {
    const float *part_out, *part_lse;
    void *out; /* bf16, or fp32 when out_f32 */
    int rows;  /* batch * n_heads */
    int n_splits, head_dim, out_f32;
    int pdl_early; /* as sk_ad_args */
} sk_ad_comb_args;

static __global__ void __launch_bounds__(128) sk_ad_combine_kernel(const __grid_constant__ sk_ad_comb_args a) {
    __shared__ float wsm[4][SK_ATTN_DECODE_MAX_SPLITS];
    SK_TRACE_BEGIN();
    if (a.pdl_early) sk_pdl_trigger(); /* (as sk_attn_decode_kernel2) */
    sk_pdl_wait();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const int bh = blockIdx.x * 4 + warp;
    if (bh >= a.rows) return; /* warp-uniform; no block barrier below */
    const int ns = a.n_splits, hd = a.head_dim;
    const float *lse = a.part_lse + (size_t)bh * ns;
    float mx = -INFINITY;
    for (int s = lane; s < ns; s += 32) mx = fmaxf(mx, lse[s]);
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) mx = fmaxf(mx, __shfl_xor_sync(SK_AD_FULL, mx, off));
    float den = 0.0f;
    for (int s = lane; s < ns; s += 32) {
        const float w = mx == -INFINITY ? 0.0f : sk_ad_exp2(lse[s] - mx);
        wsm[warp][s] = w;
        den += w;
    }
#pragma unroll
    for (int off = 16; off > 0; off >>= 1) den += __shfl_xor_sync(SK_AD_FULL, den, off);
    __syncwarp();
    const float inv = den > 0.0f ? 1.0f / den : 0.0f;
    const float *po = a.part_out + (size_t)bh * ns * hd;
    for (int d = 2 * lane; d < hd; d += 64) {
        float a0 = 0.0f, a1 = 0.0f;
        for (int s = 0; s < ns; s++) {
            const float w = wsm[warp][s];
            const float2 v = *(const float2 *)(po + (size_t)s * hd + d);
            a0 = fmaf(w, v.x, a0);
            a1 = fmaf(w, v.y, a1);
        }
        if (a.out_f32)
            *(float2 *)((float *)a.out + (size_t)bh * hd + d) = make_float2(a0 * inv, a1 * inv);
        else
            *(__nv_bfloat162 *)((__nv_bfloat16 *)a.out + (size_t)bh * hd + d) =
                __floats2bfloat162_rn(a0 * inv, a1 * inv);
    }
    SK_TRACE_END(SK_TRACE_COMB << 24);
}

#endif /* __CUDACC__ */

#endif
