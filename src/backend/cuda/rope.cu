/* RoPE in place (fp32) on the first n_heads heads of each row, at the current batch's positions.
 *
 * Angle of pair i (0 <= i < rope_dim/2) at position p: p * freq[i], freq[i] =
 * 1 / theta^(2i / rope_dim), in float. freq is computed on the host with the CPU reference's
 * expression (glibc powf) and uploaded when (theta, rope_dim) change: the angles are then
 * bit-identical to the reference's, and only sin/cos (a couple of ulp) differ. A device powf
 * differs by a few ulp, which at position 4096 already moves an angle by ~1e-3 rad.
 * Pairs: ADJACENT (2i, 2i+1), HALVES (i, i + rope_dim/2); dims from rope_dim to head_dim pass
 * through untouched. */
#include "backend/cuda/common.cuh"

#include <math.h>

#define ROPE_THREADS 128

/* Block t rotates row t: first the cos/sin of its half pairs into shared memory, then every
 * (head, pair) of the row. */
static __global__ void rope_kernel(float *x, const int32_t *pos, const float *freq, int n_heads,
                                   int row_stride, int head_dim, int rope_dim, int halves) {
    __shared__ float cs[SK_CUDA_ROPE_MAX_HALF], sn[SK_CUDA_ROPE_MAX_HALF];
    const int t = blockIdx.x, half = rope_dim / 2;
    const float p = (float)pos[t];
    for (int i = threadIdx.x; i < half; i += blockDim.x) sincosf(p * freq[i], &sn[i], &cs[i]);
    __syncthreads();
    float *row = x + (size_t)t * row_stride;
    for (int j = threadIdx.x; j < n_heads * half; j += blockDim.x) {
        const int h = j / half, i = j % half;
        float *v = row + (size_t)h * head_dim;
        const int ia = halves ? i : 2 * i, ib = halves ? i + half : 2 * i + 1;
        const float a = v[ia], b = v[ib];
        v[ia] = a * cs[i] - b * sn[i];
        v[ib] = a * sn[i] + b * cs[i];
    }
}

static void launch_rope(float *x, const int32_t *pos, const float *freq, int T, int n_heads,
                        int row_stride, int head_dim, int rope_dim, int halves, cudaStream_t s) {
    rope_kernel<<<T, ROPE_THREADS, 0, s>>>(x, pos, freq, n_heads, row_stride, head_dim, rope_dim,
                                           halves);
    CUDA_CHECK_LAUNCH();
}

/* Makes c->d_rope_freq hold the frequencies of (theta, rope_dim). The copy from pageable
 * memory is staged before cudaMemcpyAsync returns, so the stack array may go; it is ordered
 * after earlier kernels on the stream that read the previous table. */
static void rope_freq_update(cuda_ctx *c, float theta, int rope_dim) {
    if (c->rope_dim == rope_dim && c->rope_theta == theta) return;
    float f[SK_CUDA_ROPE_MAX_HALF];
    for (int i = 0; i < rope_dim / 2; i++)
        f[i] = 1.0f / powf(theta, (float)(2 * i) / (float)rope_dim);
    CUDA_CHECK(cudaMemcpyAsync(c->d_rope_freq, f, sizeof(float) * (size_t)(rope_dim / 2),
                               cudaMemcpyHostToDevice, c->stream));
    c->rope_theta = theta;
    c->rope_dim = rope_dim;
}

const float *sk_cuda_rope_freq(cuda_ctx *c, float theta, int rope_dim) {
    SK_ASSERT(rope_dim >= 0 && rope_dim % 2 == 0 && rope_dim / 2 <= SK_CUDA_ROPE_MAX_HALF);
    if (rope_dim > 0) rope_freq_update(c, theta, rope_dim);
    return c->d_rope_freq;
}

void sk_cuda_rope(sk_backend *be, void *x, int T, int n_heads, int row_stride,
                  const sk_rope_params *rp) {
    cuda_ctx *c = sk_cuda_ctx(be);
    SK_ASSERT(x && rp && T == c->T && n_heads > 0);
    SK_ASSERT(rp->rope_dim >= 0 && rp->rope_dim % 2 == 0 && rp->rope_dim <= rp->head_dim);
    SK_ASSERT(rp->rope_dim / 2 <= SK_CUDA_ROPE_MAX_HALF);
    SK_ASSERT(row_stride >= n_heads * rp->head_dim);
    SK_ASSERT(rp->pairing == SK_ROPE_ADJACENT || rp->pairing == SK_ROPE_HALVES);
    if (rp->rope_dim == 0) return;
    rope_freq_update(c, rp->theta, rp->rope_dim);
    launch_rope((float *)x, sk_cuda_d_pos(c), c->d_rope_freq, T, n_heads, row_stride,
                rp->head_dim, rp->rope_dim, rp->pairing == SK_ROPE_HALVES, c->stream);
}
