/* What the decode GEMVs (gemv.cuh, w4.cuh) share: their epilogue modes and end
 * (sk_gemv_finish), and programmatic dependent launch helpers. */
#ifndef SK_CUDA_PDL_CUH
#define SK_CUDA_PDL_CUH

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Programmatic dependent launch (Hopper): a kernel launched with the programmatic-serialization
 * attribute (sk_launch_pdl) may start while the kernel before it still runs (once every block of
 * that kernel has executed griddepcontrol.launch_dependents, or finished). It may load what
 * never depends on the previous kernel (weights: the backend's ops that write weights return
 * only once the writes are complete, backend.cu weights_written), then must wait
 * (griddepcontrol.wait: the previous grid complete and its writes visible) before reading
 * anything else and before any global write, and must wait even when it reads nothing of it,
 * so that its own completion still implies its predecessors'. Without the attribute both instructions are no-ops. The
 * kernels that do this: the GEMVs (gemv.cuh, w4.cuh) and the norms (norm.cu), which all trigger
 * at their start. On unless SAKER_PDL=0: measured on the H200 with graph-replayed decode steps
 * (7B bf16 batch 1, bench/results/decode.md 2026-11-29 session 4) it saves ~2% of the step. */
/* SAKER_TRACE (a CMake option, off by default; timing experiments only): the decode kernels'
 * in-graph timeline, since the device machine has no nsys. Each instrumented block's thread 0
 * records its start (SK_TRACE_BEGIN), when griddepcontrol.wait returned (sk_pdl_wait) and its
 * end (SK_TRACE_END), in %globaltimer ns (32 ns steps on the H200), with its SM, into a ring of
 * SK_TRACE_CAP records that the backend writes to $SAKER_TRACE_FILE when it is destroyed
 * (backend.cu). A record: tag << 32 | smid << 24 | block, t0, t_wait (0: none), t_end. The
 * ring's pointer is a per-translation-unit symbol, bound at each unit's first PDL launch
 * (eager: the engine's first decode step of a row count runs outside a capture). */
#define SK_TRACE_CAP (1u << 21)
#ifdef SAKER_TRACE
static __device__ unsigned long long *sk_trace_dev;
static __device__ __forceinline__ unsigned long long sk_gtimer(void) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}
static __device__ __forceinline__ unsigned long long *sk_trace_sh(void) {
    __shared__ unsigned long long s[8];
    return s;
}
#define SK_TRACE_BEGIN()                                                                           \
    do {                                                                                           \
        if (threadIdx.x == 0)                                                                      \
            sk_trace_sh()[0] = sk_gtimer(), sk_trace_sh()[1] = 0ull, sk_trace_sh()[2] = 0ull,      \
            sk_trace_sh()[3] = 0ull, sk_trace_sh()[4] = 0ull;                                      \
    } while (0)
/* Record i of the ring (pdl.cuh's format above), and a record's first word for this block. */
static __device__ __forceinline__ void sk_trace_put(unsigned long long i, unsigned long long w0,
                                                    unsigned long long a, unsigned long long b,
                                                    unsigned long long c) {
    unsigned long long *r_ = sk_trace_dev + 4 + 4 * (i % SK_TRACE_CAP);
    r_[0] = w0, r_[1] = a, r_[2] = b, r_[3] = c;
}
static __device__ __forceinline__ unsigned long long sk_trace_w0(unsigned tag) {
    unsigned smid_;
    asm volatile("mov.u32 %0, %%smid;" : "=r"(smid_));
    return (unsigned long long)tag << 32 | (unsigned long long)smid_ << 24 |
           (blockIdx.x & 0xffffffu);
}
#define SK_TRACE_END(tag)                                                                          \
    do {                                                                                           \
        if (threadIdx.x == 0 && sk_trace_dev)                                                      \
            sk_trace_put(atomicAdd(sk_trace_dev, 1ull), sk_trace_w0(tag), sk_trace_sh()[0],        \
                         sk_trace_sh()[1], sk_gtimer());                                           \
    } while (0)
/* SK_TRACE_MARK(i), i in 2..4 (session 28): thread 0's time at a phase boundary of its block;
 * SK_TRACE_END_PH writes the block's record and, in the slot after it, a phase record (kind
 * SK_TRACE_PH: marks 2, 3, 4 in place of t0, t_wait, t_end; 0 where a mark was not reached). */
#define SK_TRACE_MARK(i)                                                                           \
    do {                                                                                           \
        if (threadIdx.x == 0) sk_trace_sh()[i] = sk_gtimer();                                      \
    } while (0)
#define SK_TRACE_END_PH(tag)                                                                       \
    do {                                                                                           \
        if (threadIdx.x == 0 && sk_trace_dev) {                                                    \
            const unsigned long long i_ = atomicAdd(sk_trace_dev, 2ull);                           \
            sk_trace_put(i_, sk_trace_w0(tag), sk_trace_sh()[0], sk_trace_sh()[1], sk_gtimer());   \
            sk_trace_put(i_ + 1, sk_trace_w0(SK_TRACE_PH << 24), sk_trace_sh()[2],                 \
                         sk_trace_sh()[3], sk_trace_sh()[4]);                                      \
        }                                                                                          \
    } while (0)
/* The ring (backend.cu: allocated and zeroed on first use). */
unsigned long long *sk_trace_buffer(void);
static inline void sk_trace_bind(void) {
    static bool bound = false;
    if (bound) return;
    unsigned long long *p = sk_trace_buffer();
    if (cudaMemcpyToSymbol(sk_trace_dev, &p, sizeof p) != cudaSuccess)
        fprintf(stderr, "saker: trace: binding the ring failed\n");
    bound = true;
}
#else
#define SK_TRACE_BEGIN() ((void)0)
#define SK_TRACE_END(tag) ((void)0)
#define SK_TRACE_MARK(i) ((void)0)
#define SK_TRACE_END_PH(tag) ((void)0)
static inline void sk_trace_bind(void) {}
#endif
/* Trace tags: kind << 24 | K / 32 (the GEMVs), kind alone (the attention's kernels). */
enum {
    SK_TRACE_TQ_STORE = 1,
    SK_TRACE_TQ_ADD = 2,
    SK_TRACE_TS = 3,
    SK_TRACE_DEC = 4,
    SK_TRACE_COMB = 5,
    SK_TRACE_PH = 6,   /* a phase record: follows its block's record (SK_TRACE_END_PH) */
    SK_TRACE_ROPE = 7, /* the decode step's RoPE + K/V store (attention.cu) */
};

static __device__ __forceinline__ void sk_pdl_wait(void) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
#ifdef SAKER_TRACE
    if (threadIdx.x == 0) sk_trace_sh()[1] = sk_gtimer();
#endif
}
static __device__ __forceinline__ void sk_pdl_trigger(void) {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}
/* Prefetches bytes [0, n) of p into L2, lines split over `workers` threads (index i). */
static __device__ __forceinline__ void sk_prefetch_l2(const void *p, size_t n, int i, int workers) {
    for (size_t off = (size_t)i * 128; off < n; off += (size_t)workers * 128)
        asm volatile("prefetch.global.L2 [%0];" ::"l"((const char *)p + off));
}
/* L2 bytes a GEMV prefetches in all before its wait (a part of H200's 60 MB, leaving room for x
 * and out). w4.cuh's; the bf16 GEMV prefetches none by default (gemv.cuh sk_gemv_pf_budget:
 * 24 MB measured 4% slower than none on the 7B step's GEMVs). */
#define SK_GEMV_PREFETCH_BYTES ((size_t)24 << 20)
static inline int *sk_pdl_flag(void) {
    static int on = -1; /* -1: not read from the environment yet */
    return &on;
}
static inline bool sk_pdl_enabled(void) {
    int *on = sk_pdl_flag();
    if (*on < 0) {
        const char *e = getenv("SAKER_PDL");
        *on = !(e && strcmp(e, "0") == 0);
    }
    return *on != 0;
}
/* Overrides SAKER_PDL for the launches that follow in this translation unit (workbenches). */
static inline void sk_pdl_set(bool on) { *sk_pdl_flag() = on ? 1 : 0; }

/* Shared-memory carveouts (session 32; bench/results/awq-speed.md). An SM's 256 KB hold L1 and
 * shared memory in one of the steps 0, 8, 16, 32, 64, 100, 132, 164, 196, 228 KB of shared
 * memory; by default the driver picks one per kernel. Measured on the H200 (128/256, ITL p50):
 *   - the 16-row down product's block growing past 196 KB by a few hundred unused bytes (the
 *     228 KB step: L1 60 -> 28 KB) cost 70B INT4 batch 16 3.5%; every kernel at 228 KB 7%;
 *   - every kernel preferring 196 KB (85%): 7B INT4 batch 1 / 16 / 32 -1..-2 / -0.6 / -1%, 70B
 *     batch 1-32 even to -0.8%, but 70B batch 64 +23% (the MMA GEMM's blocks) and, with the MMA
 *     GEMM left out, 7B batch 64 still +4%;
 *   - only the decode GEMVs preferring it: no gain: what gains is the rest (norms, RoPE / cache
 *     store, attention) matching the GEMVs' step.
 * So the preference is set per launch, and only in steps of at most 32 rows (the decode GEMVs'
 * range; larger steps run the MMA GEMM, which wants the driver's choice): SAKER_CARVEOUT=P in
 * percent of 228 KB (85: the driver rounds it up to the 196 KB step), for every kernel launched
 * here while sk_carveout_rows() (the backend's current step rows; 0 outside a step: the
 * workbenches) is 1..32. A kernel needing more than its preference gets what it needs.
 * At 85 against the driver's choice: Llama INT4 7B batch 1 / 16 / 32 -1.0 / -1.2 / -0.9%, 70B
 * batch 1 -0.4%, even above 32 rows; but half-precision weights: Falcon-7B batch 1 +5% (4.26 ->
 * 4.47 ms), Llama-2-7B batch 1 / 16 +0.2 / +0.4%. Until the kernel behind Falcon's loss is
 * known (and Falcon in INT4 measured), the default is -1 (off: the driver's choice, as before). */
inline int &sk_carveout_rows(void) { /* (one object across translation units) */
    static int rows = 0;
    return rows;
}
static inline int sk_carveout_pct(void) {
    static int pct = -2;
    if (pct == -2) {
        const char *e = getenv("SAKER_CARVEOUT");
        pct = e && *e ? atoi(e) : -1;
        if (pct > 100) pct = 100;
        if (pct < 0) pct = -1;
    }
    const int r = sk_carveout_rows();
    return r >= 1 && r <= 32 ? pct : -1;
}
/* Launches kernel k (grid, block, smem bytes of dynamic shared memory) on s, with the PDL
 * attribute when enabled, and as clusters of cluster_x blocks along x when cluster_x > 1 (grid.x
 * a multiple of it), with the carveout preference above where it applies. */
template <typename... KA, typename... A>
static void sk_launch_pdl_ex(void (*k)(KA...), dim3 grid, unsigned block, size_t smem,
                             unsigned cluster_x, cudaStream_t s, A... args) {
    sk_trace_bind();
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = grid;
    cfg.blockDim = dim3(block);
    cfg.dynamicSmemBytes = smem;
    cfg.stream = s;
    cudaLaunchAttribute attr[3];
    unsigned n = 0;
    const int carve = sk_carveout_pct();
    if (carve >= 0) {
        attr[n].id = cudaLaunchAttributePreferredSharedMemoryCarveout;
        attr[n].val.sharedMemCarveout = (unsigned)carve;
        n++;
    }
    if (cluster_x > 1) {
        attr[n].id = cudaLaunchAttributeClusterDimension;
        attr[n].val.clusterDim.x = cluster_x;
        attr[n].val.clusterDim.y = 1;
        attr[n].val.clusterDim.z = 1;
        n++;
    }
    if (sk_pdl_enabled()) {
        attr[n].id = cudaLaunchAttributeProgrammaticStreamSerialization;
        attr[n].val.programmaticStreamSerializationAllowed = 1;
        n++;
    }
    cfg.attrs = attr;
    cfg.numAttrs = n;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, k, args...);
    if (e != cudaSuccess) { /* a bad launch is a bug (common.cuh's CUDA_CHECK policy) */
        fprintf(stderr, "saker: CUDA error %s: cudaLaunchKernelEx (clusters of %u) in %s at %s:%d\n",
                cudaGetErrorString(e), cluster_x, __func__, __FILE__, __LINE__);
        abort();
    }
}
template <typename... KA, typename... A>
static void sk_launch_pdl_smem(void (*k)(KA...), dim3 grid, unsigned block, size_t smem,
                               cudaStream_t s, A... args) {
    sk_launch_pdl_ex(k, grid, block, smem, 0u, s, args...);
}
template <typename... KA, typename... A>
static void sk_launch_pdl_cluster(void (*k)(KA...), dim3 grid, unsigned block, size_t smem,
                                  unsigned cluster_x, cudaStream_t s, A... args) {
    sk_launch_pdl_ex(k, grid, block, smem, cluster_x, s, args...);
}
/* The decode attention's kernels (rope/store, decode, combine) and PDL, SAKER_ATTN_PDL: 0 launched
 * without the attribute; 1 with it, the rope/store kernel triggering the next launch at its
 * start, the decode and combine kernels only by ending; 2 all triggering at their start; 3 (the
 * default) none triggering early. All wait at their start. Session 9 on the H200 (128/256, ITL
 * p50 ms, same binary, two runs each): 70B INT4 batch 1: mode 0 12.88 / 12.81, 1 12.97 / 12.96,
 * 3 12.78 / 12.78, and 2 (the first version) 17.0: the o GEMV, then its successors (each
 * triggering at its start) launch while the attention runs and hold the SMs and the L2 with
 * their weight prefetches. 7B batch 1: 0 2.056 / 2.065, 1 2.097 / 2.114, 3 2.033 / 2.047; 70B
 * batch 64 even (32.52-32.58). Checks with each: gpu_backend_ops rope, attention, paged, decode,
 * fused and gpu_engine_batch, 0 failures. */
static inline int sk_attn_pdl_mode(void) {
    static int m = -1;
    if (m < 0) {
        const char *e = getenv("SAKER_ATTN_PDL");
        m = e && *e ? atoi(e) : 3;
        if (m < 0 || m > 3) m = 3;
        if (!sk_pdl_enabled()) m = 0;
    }
    return m;
}
static inline bool sk_attn_pdl_enabled(void) { return sk_attn_pdl_mode() != 0; }
/* The decode kernel's pre-wait prologue (session 22): the fused rope/store triggers right after
 * its wait and the decode kernel reads the page table and brings the older K/V into L2 before
 * its own (sk_attn_params.kv_prewait), at decode steps of up to sk_attn_prewait_rows() rows.
 * SAKER_ATTN_PREWAIT: 0 off, N > 0 up to N rows; default 1. H200, engine ITL p50 (128/256, two
 * rounds): 70B INT4 batch 1 11.25 / 11.27 -> 11.17 / 11.20 ms, 7B batch 1 1.795 / 1.780 ->
 * 1.743 / 1.745; but 70B batch 8 / 16 / 64 +0.6 / +0.5 / +1.0% and 7B batch 16 +4.5% (one run
 * each: the decode blocks launched early hold SM slots while a larger rope/store runs). */
static inline int sk_attn_prewait_rows(void) {
    static int m = -1;
    if (m < 0) {
        const char *e = getenv("SAKER_ATTN_PREWAIT");
        m = e && *e ? atoi(e) : 1;
        if (m < 0) m = 0;
        if (!sk_attn_pdl_enabled()) m = 0;
    }
    return m;
}
static inline bool sk_attn_prewait(void) { return sk_attn_prewait_rows() > 0; }
/* SAKER_ATTN_SKIP=store,decode,combine (timing experiments only: the outputs are garbage): the
 * decode attention's kernels left out of every step, so that a captured step without one, against
 * the full step, gives what that launch costs inside the graph (SAKER_SKIP=attn leaves all out). */
enum { SK_ATTN_SKIP_STORE = 1, SK_ATTN_SKIP_DECODE = 2, SK_ATTN_SKIP_COMBINE = 4 };
static inline int sk_attn_skip(void) {
    static int m = -1;
    if (m < 0) {
        const char *e = getenv("SAKER_ATTN_SKIP");
        m = 0;
        if (e && strstr(e, "store")) m |= SK_ATTN_SKIP_STORE;
        if (e && strstr(e, "decode")) m |= SK_ATTN_SKIP_DECODE;
        if (e && strstr(e, "combine")) m |= SK_ATTN_SKIP_COMBINE;
    }
    return m;
}
/* The same without dynamic shared memory. */
template <typename... KA, typename... A>
static void sk_launch_pdl(void (*k)(KA...), dim3 grid, unsigned block, cudaStream_t s, A... args) {
    sk_launch_pdl_smem(k, grid, block, 0, s, args...);
}

#ifndef SK_GEMV_STORE
#define SK_GEMV_STORE 0
#define SK_GEMV_ADD 1
#define SK_GEMV_SWIGLU 2
#endif

/* The end of a decode GEMV (gemv.cuh, w4.cuh): acc[t][r] holds one lane's partial sums for
 * rows n0 + r (and, SWIGLU, the up rows at r >= R); sums them over the warp, then over the KS
 * warps that split K for these rows (through red, [SK_GEMV_WARPS][T][NR] shared floats, with a
 * block barrier: every warp of the block must call this), and stores the epilogue: out = v
 * (+ bias), out += v (+ bias), or out = silu(gate) * up. Lane j stores output (t, r) = (j / R,
 * j % R), spreading the stores. */
template <int T, int R, int NR, int MODE, int KS>
static __device__ __forceinline__ void sk_gemv_finish(float (&acc)[T][NR], float (*red)[T][NR],
                                                      int lane, int wib, int slice, bool live,
                                                      int n0, int N_out,
                                                      const float *__restrict__ bias,
                                                      float *__restrict__ out) {
#pragma unroll
    for (int t = 0; t < T; t++)
#pragma unroll
        for (int r = 0; r < NR; r++)
#pragma unroll
            for (int o = 16; o > 0; o >>= 1)
                acc[t][r] += __shfl_xor_sync(0xffffffffu, acc[t][r], o);
    if (KS > 1) {
        if (lane == 0)
#pragma unroll
            for (int t = 0; t < T; t++)
#pragma unroll
                for (int r = 0; r < NR; r++) red[wib][t][r] = acc[t][r];
        __syncthreads();
        if (slice != 0 || !live) return;
#pragma unroll
        for (int t = 0; t < T; t++)
#pragma unroll
            for (int r = 0; r < NR; r++) {
                float v = 0.0f;
#pragma unroll
                for (int k = 0; k < KS; k++) v += red[wib + k][t][r];
                acc[t][r] = v;
            }
    }
#pragma unroll
    for (int t = 0; t < T; t++)
#pragma unroll
        for (int r = 0; r < R; r++) {
            const int n = n0 + r;
            if (lane != (t * R + r) % 32 || n >= N_out) continue;
            float v = acc[t][r];
            float *o = out + (size_t)t * N_out + n;
            if (MODE == SK_GEMV_SWIGLU) {
                const float g = v, up = acc[t][R + r];
                *o = g / (1.0f + __expf(-g)) * up;
            } else {
                if (bias) v += bias[n];
                if (MODE == SK_GEMV_ADD) v += *o;
                *o = v;
            }
        }
}

#endif
