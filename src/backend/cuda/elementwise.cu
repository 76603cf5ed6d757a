/* Elementwise ops and row gathers: embed, add, swiglu, gelu, fp32 <-> bf16 conversion, random
 * weights.
 *
 * Each kernel is a grid-stride loop. When every pointer is 16-byte aligned it first walks the
 * n/8 whole 16-byte vectors (8 bf16) and then the remaining n%8 elements one by one; otherwise
 * (vec = 0) all n one by one. Arithmetic in fp32, one rounding to bf16 per output. */
#include "backend/cuda/common.cuh"

#define EW_THREADS 256

/* ---- kernels ------------------------------------------------------------------------------ */

/* x[i] += y[i] */
static __global__ void add_kernel(bf16 *x, const bf16 *y, size_t n, int vec) {
    const size_t i0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t done = 0;
    if (vec) {
        const size_t n8 = n / 8;
        for (size_t i = i0; i < n8; i += stride) {
            float a[8], b[8];
            sk_unpack8(((const uint4 *)x)[i], a);
            sk_unpack8(((const uint4 *)y)[i], b);
#pragma unroll
            for (int j = 0; j < 8; j++) a[j] += b[j];
            ((uint4 *)x)[i] = sk_pack8(a);
        }
        done = n8 * 8;
    }
    for (size_t i = done + i0; i < n; i += stride) x[i] = sk_f2bf(sk_bf2f(x[i]) + sk_bf2f(y[i]));
}

static __device__ __forceinline__ float silu_mul(float g, float u) {
    return g / (1.0f + expf(-g)) * u;
}

/* out[i] = silu(gate[i]) * up[i]; out may equal gate or up. */
static __global__ void swiglu_kernel(const bf16 *gate, const bf16 *up, bf16 *out, size_t n,
                                     int vec) {
    const size_t i0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t done = 0;
    if (vec) {
        const size_t n8 = n / 8;
        for (size_t i = i0; i < n8; i += stride) {
            float g[8], u[8];
            sk_unpack8(((const uint4 *)gate)[i], g);
            sk_unpack8(((const uint4 *)up)[i], u);
#pragma unroll
            for (int j = 0; j < 8; j++) g[j] = silu_mul(g[j], u[j]);
            ((uint4 *)out)[i] = sk_pack8(g);
        }
        done = n8 * 8;
    }
    for (size_t i = done + i0; i < n; i += stride)
        out[i] = sk_f2bf(silu_mul(sk_bf2f(gate[i]), sk_bf2f(up[i])));
}

static __device__ __forceinline__ float gelu_erf(float x) {
    return 0.5f * x * (1.0f + erff(x * 0.70710678118654752440f));
}

/* x[i] = gelu(x[i]), exact (erf) form. */
static __global__ void gelu_kernel(bf16 *x, size_t n, int vec) {
    const size_t i0 = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    size_t done = 0;
    if (vec) {
        const size_t n8 = n / 8;
        for (size_t i = i0; i < n8; i += stride) {
            float a[8];
            sk_unpack8(((const uint4 *)x)[i], a);
#pragma unroll
            for (int j = 0; j < 8; j++) a[j] = gelu_erf(a[j]);
            ((uint4 *)x)[i] = sk_pack8(a);
        }
        done = n8 * 8;
    }
    for (size_t i = done + i0; i < n; i += stride) x[i] = sk_f2bf(gelu_erf(sk_bf2f(x[i])));
}

static __global__ void f32_to_bf16_kernel(const float *src, bf16 *dst, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = sk_f2bf(src[i]);
}

static __global__ void bf16_to_f32_kernel(const bf16 *src, float *dst, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        dst[i] = sk_bf2f(src[i]);
}

/* sk_rand_uniform (backend.h) on the device: the same integer hash, the same conversion. */
static __device__ __forceinline__ float rand_uniform(uint64_t seed, uint64_t i) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(int32_t)(uint32_t)(z >> 32) * (1.0f / 2147483648.0f);
}

/* bf[i] (and f32[i] when f32 != NULL) = mean + a * u(seed, i). Explicit round-to-nearest
 * multiply and add: no FMA contraction, so the fp32 value equals the CPU backend's. */
static __global__ void random_kernel(bf16 *bf, float *f32, size_t n, float mean, float a,
                                     uint64_t seed) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float x = __fadd_rn(mean, __fmul_rn(a, rand_uniform(seed, i)));
        bf[i] = sk_f2bf(x);
        if (f32) f32[i] = x;
    }
}

/* Block t copies row tokens[t] of table [V, D] to row t of out [T, D]. vec: D % 8 == 0 and
 * table and out 16-byte aligned (so every row is). */
static __global__ void embed_kernel(const bf16 *table, const int32_t *tokens, int D, bf16 *out,
                                    int vec) {
    const int t = blockIdx.x;
    const bf16 *src = table + (size_t)tokens[t] * D;
    bf16 *dst = out + (size_t)t * D;
    if (vec) {
        for (int i = threadIdx.x; i < D / 8; i += blockDim.x)
            ((uint4 *)dst)[i] = ((const uint4 *)src)[i];
    } else {
        for (int i = threadIdx.x; i < D; i += blockDim.x) dst[i] = src[i];
    }
}

/* ---- launchers ---------------------------------------------------------------------------- */

static void launch_add(bf16 *x, const bf16 *y, size_t n, int vec, cudaStream_t s) {
    add_kernel<<<sk_cuda_blocks(vec ? n / 8 + 1 : n, EW_THREADS), EW_THREADS, 0, s>>>(x, y, n, vec);
    CUDA_CHECK_LAUNCH();
}

static void launch_swiglu(const bf16 *g, const bf16 *u, bf16 *o, size_t n, int vec,
                          cudaStream_t s) {
    swiglu_kernel<<<sk_cuda_blocks(vec ? n / 8 + 1 : n, EW_THREADS), EW_THREADS, 0, s>>>(g, u, o,
                                                                                         n, vec);
    CUDA_CHECK_LAUNCH();
}

static void launch_gelu(bf16 *x, size_t n, int vec, cudaStream_t s) {
    gelu_kernel<<<sk_cuda_blocks(vec ? n / 8 + 1 : n, EW_THREADS), EW_THREADS, 0, s>>>(x, n, vec);
    CUDA_CHECK_LAUNCH();
}

static void launch_embed(const bf16 *table, const int32_t *tokens, int T, int D, bf16 *out,
                         int vec, cudaStream_t s) {
    int threads = vec ? D / 8 : D;
    threads = threads < 32 ? 32 : threads > 256 ? 256 : (threads + 31) / 32 * 32;
    embed_kernel<<<T, threads, 0, s>>>(table, tokens, D, out, vec);
    CUDA_CHECK_LAUNCH();
}

/* ---- entries ------------------------------------------------------------------------------ */

void sk_cuda_f32_to_bf16(cuda_ctx *c, const float *src, bf16 *dst, size_t n) {
    if (n == 0) return;
    f32_to_bf16_kernel<<<sk_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(src, dst, n);
    CUDA_CHECK_LAUNCH();
}

void sk_cuda_bf16_to_f32(cuda_ctx *c, const bf16 *src, float *dst, size_t n) {
    if (n == 0) return;
    bf16_to_f32_kernel<<<sk_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(src, dst, n);
    CUDA_CHECK_LAUNCH();
}

void sk_cuda_fill_random(cuda_ctx *c, bf16 *bf, float *f32, size_t n, float mean, float a,
                         uint64_t seed) {
    if (n == 0) return;
    random_kernel<<<sk_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, c->stream>>>(bf, f32, n, mean, a,
                                                                              seed);
    CUDA_CHECK_LAUNCH();
}

void sk_cuda_embed(sk_backend *be, const sk_weight *table, void *out) {
    cuda_ctx *c = sk_cuda_ctx(be);
    SK_ASSERT(table && table->bf && out && c->T > 0);
    SK_ASSERT(table->cols <= INT32_MAX);
    const int D = (int)table->cols;
    const int32_t *tok = sk_cuda_h_tokens(c);
    for (int t = 0; t < c->T; t++) SK_ASSERT(tok[t] >= 0 && tok[t] < table->rows);
    const int vec = D % 8 == 0 && sk_cuda_aligned(out, 16) && sk_cuda_aligned(table->bf, 16);
    launch_embed(table->bf, sk_cuda_d_tokens(c), c->T, D, (bf16 *)out, vec, c->stream);
}

void sk_cuda_add(sk_backend *be, void *x, const void *y, size_t n) {
    if (n == 0) return;
    SK_ASSERT(x && y);
    const int vec = sk_cuda_aligned(x, 16) && sk_cuda_aligned(y, 16);
    launch_add((bf16 *)x, (const bf16 *)y, n, vec, sk_cuda_ctx(be)->stream);
}

void sk_cuda_swiglu(sk_backend *be, const void *gate, const void *up, size_t n, void *out) {
    if (n == 0) return;
    SK_ASSERT(gate && up && out);
    const int vec =
        sk_cuda_aligned(gate, 16) && sk_cuda_aligned(up, 16) && sk_cuda_aligned(out, 16);
    launch_swiglu((const bf16 *)gate, (const bf16 *)up, (bf16 *)out, n, vec,
                  sk_cuda_ctx(be)->stream);
}

void sk_cuda_gelu(sk_backend *be, void *x, size_t n) {
    if (n == 0) return;
    SK_ASSERT(x);
    launch_gelu((bf16 *)x, n, sk_cuda_aligned(x, 16), sk_cuda_ctx(be)->stream);
}
