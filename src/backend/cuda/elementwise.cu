/* Elementwise ops, row gathers and row reductions: embed, add, swiglu, gelu on fp32
 * activations; argmax of rows; fp32 -> half conversion; random weights.
 *
 * Each kernel is a grid-stride loop over single fp32 elements (coalesced 4-byte accesses, any
 * alignment). Arithmetic in fp32, the CPU reference's formulas. */
#include "backend/cuda/act.cuh"
#include "backend/cuda/common.cuh"
#include "backend/cuda/w4.cuh"

#include <limits.h>
#include <math.h>
#include <string.h>

#define EW_THREADS 256

/* ---- kernels ------------------------------------------------------------------------------ */

/* x[i] += y[i] */
static __global__ void add_kernel(float *x, const float *y, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] += y[i];
}

static __device__ __forceinline__ float silu_mul(float g, float u) {
    return g / (1.0f + expf(-g)) * u;
}

/* out[i] = silu(gate[i]) * up[i]; out may equal gate or up. */
static __global__ void swiglu_kernel(const float *gate, const float *up, float *out, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        out[i] = silu_mul(gate[i], up[i]);
}

/* x[i] = gelu(x[i]), exact (erf) form. */
static __global__ void gelu_kernel(float *x, size_t n) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] = sk_gelu_erf(x[i]);
}

template <typename H>
static __global__ void f32_to_half_kernel(const float *src, H *dst, size_t n, bool gelu) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        sk_hst(dst + i, gelu ? sk_gelu_erf(src[i]) : src[i]);
}

/* sk_rand_uniform (backend.h) on the device: the same integer hash, the same conversion. */
static __device__ __forceinline__ float rand_uniform(uint64_t seed, uint64_t i) {
    uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return (float)(int32_t)(uint32_t)(z >> 32) * (1.0f / 2147483648.0f);
}

/* h[i] (and f32[i] when f32 != NULL) = mean + a * u(seed, i). Explicit round-to-nearest
 * multiply and add: no FMA contraction, so the fp32 value equals the CPU backend's. */
template <typename H>
static __global__ void random_kernel(H *h, float *f32, size_t n, float mean, float a,
                                     uint64_t seed) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float x = __fadd_rn(mean, __fmul_rn(a, rand_uniform(seed, i)));
        sk_hst(h + i, x);
        if (f32) f32[i] = x;
    }
}

/* Block t widens row tokens[t] of table [V, D] (half) to row t of out [T, D] (fp32). */
template <typename H>
static __global__ void embed_kernel(const H *table, const int32_t *tokens, int D, float *out) {
    const int t = blockIdx.x;
    const H *src = table + (size_t)tokens[t] * D;
    float *dst = out + (size_t)t * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) dst[i] = sk_h2f(src[i]);
}

/* Block t: out[t] = the index of the largest of row t of x [T, N], the lowest among equals, as
 * the CPU reference's scan (best = 0; i replaces best when x[i] > x[best]) decides it: NaNs never
 * win (every comparison with them is false), and a NaN at 0 wins outright. Each thread keeps the
 * first maximum of its strided elements; (value, index) pairs then combine by value, ties by the
 * lower index, over the warp and the block. */
#define ARGMAX_THREADS 512
static __device__ __forceinline__ bool argmax_better(float v, int i, float bv, int bi) {
    return v > bv || (v == bv && i < bi);
}

static __global__ void argmax_kernel(const float *x, int N, int32_t *out) {
    const float *r = x + (size_t)blockIdx.x * (size_t)N;
    float bv = -INFINITY;
    int bi = INT_MAX; /* nothing yet: any non-NaN value (-inf included) beats it */
    for (int i = threadIdx.x; i < N; i += blockDim.x) {
        const float v = r[i];
        if (argmax_better(v, i, bv, bi)) bv = v, bi = i;
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, bv, o);
        const int oi = __shfl_xor_sync(0xffffffffu, bi, o);
        if (argmax_better(ov, oi, bv, bi)) bv = ov, bi = oi;
    }
    __shared__ float sv[32];
    __shared__ int si[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) sv[warp] = bv, si[warp] = bi;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < (int)(blockDim.x >> 5); w++)
            if (argmax_better(sv[w], si[w], bv, bi)) bv = sv[w], bi = si[w];
        const float x0 = r[0];
        if (bi == INT_MAX || x0 != x0) bi = 0;
        out[blockIdx.x] = bi;
    }
}

/* ---- launchers ---------------------------------------------------------------------------- */

static void launch_add(float *x, const float *y, size_t n, cudaStream_t s) {
    add_kernel<<<sk_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, s>>>(x, y, n);
    CUDA_CHECK_LAUNCH();
}

static void launch_swiglu(const float *g, const float *u, float *o, size_t n, cudaStream_t s) {
    swiglu_kernel<<<sk_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, s>>>(g, u, o, n);
    CUDA_CHECK_LAUNCH();
}

static void launch_gelu(float *x, size_t n, cudaStream_t s) {
    gelu_kernel<<<sk_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, s>>>(x, n);
    CUDA_CHECK_LAUNCH();
}

template <typename H>
static void launch_f32_to_half(const float *src, H *dst, size_t n, bool gelu, cudaStream_t s) {
    f32_to_half_kernel<<<sk_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, s>>>(src, dst, n, gelu);
    CUDA_CHECK_LAUNCH();
}

template <typename H>
static void launch_random(H *h, float *f32, size_t n, float mean, float a, uint64_t seed,
                          cudaStream_t s) {
    random_kernel<<<sk_cuda_blocks(n, EW_THREADS), EW_THREADS, 0, s>>>(h, f32, n, mean, a, seed);
    CUDA_CHECK_LAUNCH();
}

template <typename H>
static void launch_embed(const H *table, const int32_t *tokens, int T, int D, float *out,
                         cudaStream_t s) {
    const int threads = D >= 256 ? 256 : (D + 31) / 32 * 32;
    embed_kernel<<<T, threads, 0, s>>>(table, tokens, D, out);
    CUDA_CHECK_LAUNCH();
}

static void launch_argmax(const float *x, int T, int N, int32_t *out, cudaStream_t s) {
    argmax_kernel<<<T, ARGMAX_THREADS, 0, s>>>(x, N, out);
    CUDA_CHECK_LAUNCH();
}

/* ---- entries ------------------------------------------------------------------------------ */

void sk_cuda_f32_to_half(cuda_ctx *c, const float *src, void *dst, size_t n) {
    sk_cuda_f32_gelu_to_half(c, src, dst, n, false);
}

void sk_cuda_f32_gelu_to_half(cuda_ctx *c, const float *src, void *dst, size_t n, bool gelu) {
    if (n == 0) return;
    if (c->dtype == SK_CUDA_F16)
        launch_f32_to_half(src, (f16 *)dst, n, gelu, c->stream);
    else
        launch_f32_to_half(src, (bf16 *)dst, n, gelu, c->stream);
}

void sk_cuda_fill_random(cuda_ctx *c, void *h, float *f32, size_t n, float mean, float a,
                         uint64_t seed) {
    if (n == 0) return;
    if (c->dtype == SK_CUDA_F16)
        launch_random((f16 *)h, f32, n, mean, a, seed, c->stream);
    else
        launch_random((bf16 *)h, f32, n, mean, a, seed, c->stream);
}

void sk_cuda_embed(sk_backend *be, const sk_weight *table, void *out) {
    cuda_ctx *c = sk_cuda_ctx(be);
    SK_ASSERT(table && (table->h || table->q4) && out && c->T > 0);
    SK_ASSERT(table->cols <= INT32_MAX);
    const int D = (int)table->cols;
    const int32_t *tok = sk_cuda_h_tokens(c);
    for (int t = 0; t < c->T; t++) SK_ASSERT(tok[t] >= 0 && tok[t] < table->rows);
    if (table->q4) { /* an INT4 table (w4.cuh) */
        sk_w4_embed_kernel<<<c->T, 256, 0, c->stream>>>(table->q4, table->q4s, table->q4_group, D,
                                                       sk_cuda_d_tokens(c), (float *)out);
        CUDA_CHECK_LAUNCH();
        return;
    }
    if (c->dtype == SK_CUDA_F16)
        launch_embed((const f16 *)table->h, sk_cuda_d_tokens(c), c->T, D, (float *)out,
                     c->stream);
    else
        launch_embed((const bf16 *)table->h, sk_cuda_d_tokens(c), c->T, D, (float *)out,
                     c->stream);
}

void sk_cuda_add(sk_backend *be, void *x, const void *y, size_t n) {
    if (n == 0) return;
    SK_ASSERT(x && y);
    launch_add((float *)x, (const float *)y, n, sk_cuda_ctx(be)->stream);
}

void sk_cuda_swiglu(sk_backend *be, const void *gate, const void *up, size_t n, void *out) {
    if (n == 0) return;
    SK_ASSERT(gate && up && out);
    launch_swiglu((const float *)gate, (const float *)up, (float *)out, n,
                  sk_cuda_ctx(be)->stream);
}

void sk_cuda_gelu(sk_backend *be, void *x, size_t n) {
    if (n == 0) return;
    SK_ASSERT(x);
    launch_gelu((float *)x, n, sk_cuda_ctx(be)->stream);
}

void sk_cuda_argmax(sk_backend *be, const void *x, int T, int N, int32_t *out_host) {
    cuda_ctx *c = sk_cuda_ctx(be);
    if (T <= 0) return;
    SK_ASSERT(x && out_host && N > 0);
    if (T > c->argmax_cap) {
        /* A few bytes per row: grown (not preallocated) so no batch size is assumed. */
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        if (c->d_argmax) CUDA_CHECK(cudaFree(c->d_argmax));
        if (c->h_argmax) CUDA_CHECK(cudaFreeHost(c->h_argmax));
        const int cap = T > 2 * c->argmax_cap ? T : 2 * c->argmax_cap;
        CUDA_CHECK(cudaMalloc((void **)&c->d_argmax, sizeof(int32_t) * (size_t)cap));
        CUDA_CHECK(cudaMallocHost((void **)&c->h_argmax, sizeof(int32_t) * (size_t)cap));
        c->argmax_cap = cap;
    }
    launch_argmax((const float *)x, T, N, c->d_argmax, c->stream);
    CUDA_CHECK(cudaMemcpyAsync(c->h_argmax, c->d_argmax, sizeof(int32_t) * (size_t)T,
                               cudaMemcpyDeviceToHost, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    memcpy(out_host, c->h_argmax, sizeof(int32_t) * (size_t)T);
}
