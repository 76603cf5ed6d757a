/* Hopper wgmma helpers shared by the kernels that use wgmma.mma_async (attn_prefill.cuh's
 * FlashAttention-3 style kernels, w4_mma.cuh's W4A16 GEMM): the shared-memory matrix descriptor
 * for 128-byte-swizzled tiles, the fence / commit / wait instructions, the async-proxy fence for
 * tiles written by generic-proxy stores or cp.async, a register pin, and the operand-list macros
 * of the fp32 accumulators (the wrappers themselves stay with their kernels: each needs its own
 * shape, types and operand numbering). sm_90a only. */
#ifndef SK_CUDA_WGMMA_CUH
#define SK_CUDA_WGMMA_CUH

#include <stdint.h>

/* wgmma shared-memory descriptor, 128-byte swizzle, base offset 0 (tiles 1024-byte aligned):
 * start address, leading and stride byte offsets. */
static __device__ __forceinline__ uint64_t sk_wg_desc(uint32_t saddr, uint32_t lbo, uint32_t sbo) {
    return (uint64_t)((saddr & 0x3FFFF) >> 4) | ((uint64_t)((lbo & 0x3FFFF) >> 4) << 16) |
           ((uint64_t)((sbo & 0x3FFFF) >> 4) << 32) | (1ull << 62);
}

static __device__ __forceinline__ void sk_wg_fence() {
    asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
static __device__ __forceinline__ void sk_wg_commit() {
    asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
template <int N>
static __device__ __forceinline__ void sk_wg_wait() {
    asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
/* After generic-proxy writes (stores, cp.async) to a tile and before the barrier that hands it
 * to wgmma (async proxy). */
static __device__ __forceinline__ void sk_wg_fence_proxy_async() {
    asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}
/* Pin registers that wgmma reads or writes asynchronously: nothing the compiler emits may move
 * an access to them across this point (cf. CUTLASS's warpgroup_fence_operand). */
template <int N>
static __device__ __forceinline__ void sk_wg_pin(float (&x)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+f"(x[i])::"memory");
}
template <int N>
static __device__ __forceinline__ void sk_wg_pin(uint32_t (&x)[N]) {
#pragma unroll
    for (int i = 0; i < N; i++) asm volatile("" : "+r"(x[i])::"memory");
}

/* Operand lists of wgmma wrappers: the N/2 fp32 accumulators as read-write operands
 * %0..%(N/2 - 1), and their names in the instruction text. */
#define SK_WG_ACC8(d, i)                                                                           \
    "+f"(d[(i)]), "+f"(d[(i) + 1]), "+f"(d[(i) + 2]), "+f"(d[(i) + 3]), "+f"(d[(i) + 4]),          \
        "+f"(d[(i) + 5]), "+f"(d[(i) + 6]), "+f"(d[(i) + 7])
#define SK_WG_ACC16(d) SK_WG_ACC8(d, 0), SK_WG_ACC8(d, 8)
#define SK_WG_ACC32(d) SK_WG_ACC8(d, 0), SK_WG_ACC8(d, 8), SK_WG_ACC8(d, 16), SK_WG_ACC8(d, 24)
#define SK_WG_ACC64(d)                                                                             \
    SK_WG_ACC32(d), SK_WG_ACC8(d, 32), SK_WG_ACC8(d, 40), SK_WG_ACC8(d, 48), SK_WG_ACC8(d, 56)
#define SK_WG_ACC128(d)                                                                            \
    SK_WG_ACC64(d), SK_WG_ACC8(d, 64), SK_WG_ACC8(d, 72), SK_WG_ACC8(d, 80), SK_WG_ACC8(d, 88),    \
        SK_WG_ACC8(d, 96), SK_WG_ACC8(d, 104), SK_WG_ACC8(d, 112), SK_WG_ACC8(d, 120)
#define SK_WG_REGS8 "%0,%1,%2,%3,%4,%5,%6,%7"
#define SK_WG_REGS16 SK_WG_REGS8 ",%8,%9,%10,%11,%12,%13,%14,%15"
#define SK_WG_REGS32 SK_WG_REGS16 ",%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
#define SK_WG_REGS64                                                                               \
    SK_WG_REGS32 ","                                                                               \
    "%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,"                             \
    "%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
#define SK_WG_REGS128                                                                              \
    SK_WG_REGS64 ","                                                                               \
    "%64,%65,%66,%67,%68,%69,%70,%71,%72,%73,%74,%75,%76,%77,%78,%79,"                             \
    "%80,%81,%82,%83,%84,%85,%86,%87,%88,%89,%90,%91,%92,%93,%94,%95,"                             \
    "%96,%97,%98,%99,%100,%101,%102,%103,%104,%105,%106,%107,%108,%109,%110,%111,"                 \
    "%112,%113,%114,%115,%116,%117,%118,%119,%120,%121,%122,%123,%124,%125,%126,%127"

#endif
