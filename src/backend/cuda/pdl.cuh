/* Programmatic dependent launch helpers for the decode GEMVs (gemv.cuh, w4.cuh). */
#ifndef SK_CUDA_PDL_CUH
#define SK_CUDA_PDL_CUH

#include <cuda_runtime.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Programmatic dependent launch (Hopper): a GEMV launched with the programmatic-serialization
 * attribute may start while the kernel before it still runs (once that kernel has executed
 * griddepcontrol.launch_dependents, or finished). It first prefetches the start of its weight
 * rows into L2 (weights never depend on the previous kernel), then waits (griddepcontrol.wait:
 * the previous grid complete and its writes visible) before touching x or out. Without the
 * attribute both instructions are no-ops. Off unless SAKER_PDL=1: measured on the H200 through
 * the engine's (not yet graph-captured) steps it gained nothing (7B bf16 5.42 vs 5.40 ms, 70B INT4
 * 22.8 vs 21.3 ms per token; bench/results/decode.md); to be measured again with graphs. */
static __device__ __forceinline__ void sk_pdl_wait(void) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
}
static __device__ __forceinline__ void sk_pdl_trigger(void) {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}
/* Prefetches bytes [0, n) of p into L2, lines split over `workers` threads (index i). */
static __device__ __forceinline__ void sk_prefetch_l2(const void *p, size_t n, int i, int workers) {
    for (size_t off = (size_t)i * 128; off < n; off += (size_t)workers * 128)
        asm volatile("prefetch.global.L2 [%0];" ::"l"((const char *)p + off));
}
/* L2 bytes a GEMV prefetches in all (a part of H200's 60 MB, leaving room for x and out). */
#define SK_GEMV_PREFETCH_BYTES ((size_t)24 << 20)
static inline bool sk_pdl_enabled(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("SAKER_PDL");
        on = e && *e && strcmp(e, "0") != 0;
    }
    return on != 0;
}

/* Launches kernel k (grid, block, no dynamic shared memory) on s, with the PDL attribute when
 * enabled. */
template <typename... KA, typename... A>
static void sk_launch_pdl(void (*k)(KA...), unsigned grid, unsigned block, cudaStream_t s, A... args) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(grid);
    cfg.blockDim = dim3(block);
    cfg.dynamicSmemBytes = 0;
    cfg.stream = s;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = attr;
    cfg.numAttrs = sk_pdl_enabled() ? 1 : 0;
    const cudaError_t e = cudaLaunchKernelEx(&cfg, k, args...);
    if (e != cudaSuccess) { /* a bad launch is a bug (common.cuh's CUDA_CHECK policy) */
        fprintf(stderr, "saker: CUDA error %s: cudaLaunchKernelEx in %s at %s:%d\n",
                cudaGetErrorString(e), __func__, __FILE__, __LINE__);
        abort();
    }
}

#endif
