/* RMSNorm and LayerNorm over fp32 rows: one block per row, fp32 statistics, fp32 weights.
 *
 * Every thread reads and writes the same elements in every pass, and the statistics are
 * complete (block barrier) before the first write, so out may equal x. Same formulas as the CPU
 * reference: rmsnorm out = w * (x * 1/sqrt(mean(x^2) + eps)); layernorm
 * out = (x - mean) * 1/sqrt(var + eps) * w + b with the two-pass variance. */
#include "backend/cuda/common.cuh"
#include "backend/cuda/pdl.cuh"

/* ---- kernels ------------------------------------------------------------------------------ */

/* Both kernels are launched with PDL (pdl.cuh) when it is on: they let the next kernel launch at
 * once (it waits for this grid to complete before it reads out: a GEMV prefetches its weights
 * meanwhile), and wait for the previous grid before reading x. */
static __global__ void rmsnorm_kernel(const float *x, const float *w, float eps, int D,
                                      float *out) {
    __shared__ float red[32];
    sk_pdl_trigger();
    sk_pdl_wait();
    const float *xr = x + (size_t)blockIdx.x * D;
    float *o = out + (size_t)blockIdx.x * D;
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float v = xr[i];
        ss = fmaf(v, v, ss);
    }
    ss = sk_block_sum(ss, red);
    const float scale = 1.0f / sqrtf(ss / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) o[i] = w[i] * (scale * xr[i]);
}

/* b may be NULL. */
static __global__ void layernorm_kernel(const float *x, const float *w, const float *b, float eps,
                                        int D, float *out) {
    __shared__ float red[32];
    sk_pdl_trigger();
    sk_pdl_wait();
    const float *xr = x + (size_t)blockIdx.x * D;
    float *o = out + (size_t)blockIdx.x * D;
    float s = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) s += xr[i];
    const float mean = sk_block_sum(s, red) / (float)D;
    float v = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float d = xr[i] - mean;
        v = fmaf(d, d, v);
    }
    const float rstd = 1.0f / sqrtf(sk_block_sum(v, red) / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        float y = (xr[i] - mean) * rstd * w[i];
        o[i] = b ? y + b[i] : y;
    }
}

/* ---- launchers ---------------------------------------------------------------------------- */

/* Threads per row: enough for ~4 elements each, a multiple of 32 in [32, 1024]. */
static int norm_threads(int D) {
    int t = (D / 4 + 31) / 32 * 32;
    return t < 32 ? 32 : t > 1024 ? 1024 : t;
}

static void launch_rmsnorm(const float *x, const float *w, float eps, int T, int D, float *out,
                           cudaStream_t s) {
    sk_launch_pdl(rmsnorm_kernel, (unsigned)T, (unsigned)norm_threads(D), s, x, w, eps, D, out);
    CUDA_CHECK_LAUNCH();
}

static void launch_layernorm(const float *x, const float *w, const float *b, float eps, int T,
                             int D, float *out, cudaStream_t s) {
    sk_launch_pdl(layernorm_kernel, (unsigned)T, (unsigned)norm_threads(D), s, x, w, b, eps, D,
                  out);
    CUDA_CHECK_LAUNCH();
}

/* ---- entries ------------------------------------------------------------------------------ */

/* A 1-D weight of n elements, as fp32. */
static const float *norm_vec(const sk_weight *w, int n) {
    SK_ASSERT(w && w->f32 && w->rows == 1 && w->cols == n);
    return w->f32;
}

/* out either equals x or does not overlap it. */
static void check_rows(const void *x, int T, int D, const void *out) {
    SK_ASSERT(x && out && T > 0 && D > 0);
    const size_t bytes = (size_t)T * (size_t)D * sizeof(float);
    SK_ASSERT(out == x || !sk_cuda_overlap(x, bytes, out, bytes));
}

void sk_cuda_rmsnorm(sk_backend *be, const void *x, const sk_weight *w, float eps, int T, int D,
                     void *out) {
    check_rows(x, T, D, out);
    launch_rmsnorm((const float *)x, norm_vec(w, D), eps, T, D, (float *)out,
                   sk_cuda_ctx(be)->stream);
}

void sk_cuda_layernorm(sk_backend *be, const void *x, const sk_weight *w, const sk_weight *b,
                       float eps, int T, int D, void *out) {
    check_rows(x, T, D, out);
    launch_layernorm((const float *)x, norm_vec(w, D), b ? norm_vec(b, D) : NULL, eps, T, D,
                     (float *)out, sk_cuda_ctx(be)->stream);
}
