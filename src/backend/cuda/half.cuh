/* The CUDA backend's half types (bf16, fp16: the type of weights and the KV cache) and their
 * fp32 conversions, as overloads so that one template serves both. CUDA headers only (the
 * workbench in dev/cuda includes attention.cuh, which includes this).
 *
 * Stores round to nearest even. An fp16 store saturates at +-65504 (the largest finite fp16)
 * instead of overflowing to infinity; NaN stays NaN. bf16 has fp32's range: no saturation. */
#ifndef SK_CUDA_HALF_CUH
#define SK_CUDA_HALF_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#define SK_F16_MAX 65504.0f

static __device__ __forceinline__ float sk_h2f(__nv_bfloat16 x) { return __bfloat162float(x); }
static __device__ __forceinline__ float sk_h2f(__half x) { return __half2float(x); }
static __device__ __forceinline__ float sk_h2f(float x) { return x; }

/* *p = x rounded to p's type. */
static __device__ __forceinline__ void sk_hst(__nv_bfloat16 *p, float x) {
    *p = __float2bfloat16_rn(x);
}
static __device__ __forceinline__ void sk_hst(__half *p, float x) {
    *p = __float2half_rn(x > SK_F16_MAX ? SK_F16_MAX : x < -SK_F16_MAX ? -SK_F16_MAX : x);
}
static __device__ __forceinline__ void sk_hst(float *p, float x) { *p = x; }

/* The two halves of a 32-bit word holding two elements of p's type (element 0 in the low
 * half) as fp32. p only selects the type. */
static __device__ __forceinline__ void sk_h2x2(const __nv_bfloat16 *p, uint32_t w, float *a,
                                               float *b) {
    *a = __uint_as_float(w << 16);
    *b = __uint_as_float(w & 0xffff0000u);
}
static __device__ __forceinline__ void sk_h2x2(const __half *p, uint32_t w, float *a, float *b) {
    *a = __half2float(__ushort_as_half((unsigned short)(w & 0xffffu)));
    *b = __half2float(__ushort_as_half((unsigned short)(w >> 16)));
}

#endif
