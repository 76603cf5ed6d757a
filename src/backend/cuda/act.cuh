/* Activation functions shared by the CUDA backend's kernels (the elementwise op and the casts
 * that apply one on the way into a product). CUDA headers only. */
#ifndef SK_CUDA_ACT_CUH
#define SK_CUDA_ACT_CUH

/* GELU, exact (erf) form: the CPU backend's gelu. */
static __device__ __forceinline__ float sk_gelu_erf(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
}

#endif
