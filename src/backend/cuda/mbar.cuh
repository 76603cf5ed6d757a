/* mbarrier and tensor-memory-accelerator helpers shared by the kernels that stage data through
 * shared memory with the TMA (attn_prefill.cuh's version 4, w4_mma.cuh's TMA producer, w4_tb.cuh):
 * shared-window addresses (__cvta_generic_to_shared), one thread issuing each copy. */
#ifndef SK_CUDA_MBAR_CUH
#define SK_CUDA_MBAR_CUH

#include <cuda.h>
#include <stdint.h>

static __device__ __forceinline__ void sk_mb_init(uint32_t a, int count) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(count) : "memory");
}
static __device__ __forceinline__ void sk_mb_arrive(uint32_t a) {
    asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(a) : "memory");
}
static __device__ __forceinline__ bool sk_mb_try_wait(uint32_t a, uint32_t parity) {
    uint32_t ok;
    asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                 "selp.u32 %0, 1, 0, p;\n}\n"
                 : "=r"(ok)
                 : "r"(a), "r"(parity)
                 : "memory");
    return ok != 0;
}
/* Returns once the phase of parity `parity` of the barrier at a has completed. */
static __device__ __forceinline__ void sk_mb_wait(uint32_t a, uint32_t parity) {
    while (!sk_mb_try_wait(a, parity)) {
    }
}
/* An arrival that also expects `bytes` more of asynchronous copies before the phase completes. */
static __device__ __forceinline__ void sk_mb_expect_tx(uint32_t a, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(a), "r"(bytes)
                 : "memory");
}
/* The same expectation without an arrival (the phase's arrival comes later). */
static __device__ __forceinline__ void sk_mb_expect(uint32_t a, uint32_t bytes) {
    asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(a), "r"(bytes)
                 : "memory");
}
/* 2-D / 3-D / 4-D tensor copy global -> shared of the box at (c0, c1[, c2]), completing on mbarrier mb. */
static __device__ __forceinline__ void sk_tma_load_2d(uint32_t dst, const CUtensorMap *map, int c0,
                                                      int c1, uint32_t mb) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes "
                 "[%0], [%1, {%2, %3}], [%4];\n" ::"r"(dst),
                 "l"((uint64_t)map), "r"(c0), "r"(c1), "r"(mb)
                 : "memory");
}
static __device__ __forceinline__ void sk_tma_load_3d(uint32_t dst, const CUtensorMap *map, int c0,
                                                      int c1, int c2, uint32_t mb) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes "
                 "[%0], [%1, {%2, %3, %4}], [%5];\n" ::"r"(dst),
                 "l"((uint64_t)map), "r"(c0), "r"(c1), "r"(c2), "r"(mb)
                 : "memory");
}
static __device__ __forceinline__ void sk_tma_load_4d(uint32_t dst, const CUtensorMap *map, int c0,
                                                      int c1, int c2, int c3, uint32_t mb) {
    asm volatile("cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes "
                 "[%0], [%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(dst),
                 "l"((uint64_t)map), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(mb)
                 : "memory");
}
/* The same with an L2 cache policy (createpolicy; the weight feeds' evict-first, w4.cuh SK_W4_EF). */
static __device__ __forceinline__ void sk_tma_load_2d_hint(uint32_t dst, const CUtensorMap *map, int c0,
                                                           int c1, uint32_t mb, uint64_t pol) {
    asm volatile("cp.async.bulk.tensor.2d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 ".L2::cache_hint [%0], [%1, {%2, %3}], [%4], %5;\n" ::"r"(dst),
                 "l"((uint64_t)map), "r"(c0), "r"(c1), "r"(mb), "l"(pol)
                 : "memory");
}
static __device__ __forceinline__ void sk_tma_load_3d_hint(uint32_t dst, const CUtensorMap *map, int c0,
                                                           int c1, int c2, uint32_t mb, uint64_t pol) {
    asm volatile("cp.async.bulk.tensor.3d.shared::cluster.global.mbarrier::complete_tx::bytes"
                 ".L2::cache_hint [%0], [%1, {%2, %3, %4}], [%5], %6;\n" ::"r"(dst),
                 "l"((uint64_t)map), "r"(c0), "r"(c1), "r"(c2), "r"(mb), "l"(pol)
                 : "memory");
}
/* The same as sk_bulk_load with an L2 cache policy. */
static __device__ __forceinline__ void sk_bulk_load_hint(uint32_t dst, const void *src, uint32_t bytes,
                                                         uint32_t mb, uint64_t pol) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes.L2::cache_hint"
                 " [%0], [%1], %2, [%3], %4;\n"
                 ::"r"(dst), "l"(src), "r"(bytes), "r"(mb), "l"(pol)
                 : "memory");
}
/* A contiguous bulk copy global -> shared (16-byte aligned, bytes % 16 == 0) completing on mb. */
static __device__ __forceinline__ void sk_bulk_load(uint32_t dst, const void *src, uint32_t bytes,
                                                    uint32_t mb) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, [%3];\n"
                 ::"r"(dst), "l"(src), "r"(bytes), "r"(mb)
                 : "memory");
}

#endif
