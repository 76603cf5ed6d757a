/* The quantizer's device ops on CUDA (src/quant/qdev.h): the AWQ search of src/quant/awq.c with
 * every array in device memory, on the backend's stream.
 *
 * - matmul: cuBLAS on fp32 arrays, fp32 FMA (CUBLAS_COMPUTE_32F) or TF32 tensor cores
 *   (CUBLAS_COMPUTE_32F_FAST_TF32, inputs rounded to 10 mantissa bits), then a bias kernel. The
 *   backend's own matmul takes weights loaded as bf16/fp16; the search compares output errors
 *   between scale candidates, so it keeps full fp32 weights here.
 * - fake_quant: one warp per group of g (32/64/128) values, the CPU's formula bit for bit (IEEE
 *   division, rintf = nearbyintf in round-to-nearest, the scale rounded to f16 with
 *   __float2half_rn, which is sk_f32_to_f16's round to nearest even including subnormals).
 * - mse, col_absmean: grid-stride / column-block reductions in double; the block partials are
 *   added in a fixed order (host, or a second kernel), not by atomics, so runs are reproducible.
 * - search_clip: one block per (group b, QC_R output rows); each of its QC_R x 10 (row, shrink
 *   step) pairs gets dq = fq(w, c_i) - w of the group in shared memory, then the sample rows
 *   stream through shared memory QC_SC at a time and warp w computes the partial dot products
 *   x_t . dq of its 5 pairs for lane = sample, squared and summed in double: a batched
 *   [40 x g] x [g x S] product per block on the FMA pipes (the error is the difference of the
 *   CPU's two partial sums, x . fq(w) - x . w, in one product).
 * Three levels as elsewhere (kernel, static launcher, entry in the op table). */
#include "backend/cuda/common.cuh"

#include <cublas_v2.h>
#include <math.h>
#include <string.h>

extern "C" {
#include "quant/qdev.h"
}

#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t sk_cb_s_ = (call);                                                          \
        if (sk_cb_s_ != CUBLAS_STATUS_SUCCESS) {                                                   \
            fprintf(stderr, "saker: cuBLAS error %s in %s at %s:%d\n",                             \
                    cublasGetStatusString(sk_cb_s_), #call, __FILE__, __LINE__);                   \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define Q_THREADS 256

typedef struct qcuda {
    cublasHandle_t blas;
    bool tf32;
    cudaStream_t stream;
    double *d_acc; /* [acc_cap] reduction accumulators (mse: [0]; col_absmean: [K]) */
    size_t acc_cap;
    double *h_acc; /* host copy [acc_cap] */
} qcuda;

static qcuda *qc(sk_qdev *d) { return (qcuda *)d->ctx; }

/* ---- kernels ------------------------------------------------------------------------------ */

/* out[t, n] += b[n], out [T, N]. */
static __global__ void q_bias_kernel(float *out, const float *b, size_t n_all, int64_t N) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n_all; i += stride)
        out[i] += b[(int64_t)i % N];
}

/* One warp's group of g = 32 E values (lane holds v[e] = element lane + 32 e), already scaled
 * and clamped: max/min over the warp, the f16-rounded step d and zero point z, as quant_group
 * (pack.c). */
template <int E>
static __device__ __forceinline__ void q_group_params(const float *v, float *d_out, int *z_out) {
    float mx = -INFINITY, mn = INFINITY;
#pragma unroll
    for (int e = 0; e < E; e++) {
        mx = v[e] > mx ? v[e] : mx;
        mn = v[e] < mn ? v[e] : mn;
    }
    mx = sk_warp_max(mx);
    mn = -sk_warp_max(-mn);
    float range = mx - mn;
    if (!(range >= 1e-5f)) range = 1e-5f;
    const float d = __half2float(__float2half_rn(range / 15.0f));
    int z = 0;
    if (isfinite(d) && d > 0.0f) {
        const float zf = -rintf(mn / d);
        z = zf < 0.0f ? 0 : zf > 15.0f ? 15 : (int)zf;
    }
    *d_out = d;
    *z_out = z;
}

/* The dequantized value of v with step d and zero point z (quant_group's code, then (q - z) d). */
static __device__ __forceinline__ float q_fq_value(float v, float d, int z) {
    const float c = (isfinite(d) && d > 0.0f) ? rintf(v / d) + (float)z : (float)z;
    const int q = c < 0.0f ? 0 : c > 15.0f ? 15 : (int)c;
    return (float)(q - z) * d;
}

/* Warp per group (gi = n * (K/g) + b) of g = 32 E: dst = fq(w diag(s), clip) diag(1/s). */
template <int E>
static __global__ void q_fake_quant_kernel(const float *w, int64_t n_groups, int64_t K,
                                           const float *s, const float *clip, float *dst) {
    const int lane = threadIdx.x & 31, g = 32 * E;
    const int64_t ng = K / g;
    const int64_t wstride = (int64_t)gridDim.x * (blockDim.x / 32);
    for (int64_t gi = ((int64_t)blockIdx.x * blockDim.x + threadIdx.x) / 32; gi < n_groups;
         gi += wstride) {
        const int64_t k0 = (gi % ng) * g;
        const float *wr = w + gi * g;
        const float cl = clip ? clip[gi] : 0.0f;
        float v[E];
#pragma unroll
        for (int e = 0; e < E; e++) {
            float x = wr[lane + 32 * e];
            if (s) x = x * s[k0 + lane + 32 * e];
            if (cl > 0.0f) x = x > cl ? cl : x < -cl ? -cl : x;
            v[e] = x;
        }
        float d;
        int z;
        q_group_params<E>(v, &d, &z);
#pragma unroll
        for (int e = 0; e < E; e++) {
            float o = q_fq_value(v[e], d, z);
            if (s) o = o / s[k0 + lane + 32 * e];
            dst[gi * g + lane + 32 * e] = o;
        }
    }
}

static __device__ __forceinline__ double q_warp_sum_d(double v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

/* part[block] = this block's sum of (a[i] - b[i])^2 (double); the host adds the blocks in order,
 * so the result does not depend on the blocks' timing (no atomics: reproducible run to run). */
static __global__ void q_mse_kernel(const float *a, const float *b, size_t n, double *part) {
    __shared__ double red[Q_THREADS / 32];
    double acc = 0.0;
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const double d = (double)a[i] - b[i];
        acc += d * d;
    }
    acc = q_warp_sum_d(acc);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        double t = 0.0;
        for (int i = 0; i < Q_THREADS / 32; i++) t += red[i];
        part[blockIdx.x] = t;
    }
}

/* block (32, 8): column k = blockIdx.x * 32 + threadIdx.x, rows threadIdx.y + 8 blockIdx.y,
 * step 8 gridDim.y; part[blockIdx.y][k] = that row block's sum of |x[t, k]| (double), added
 * over the row blocks in order by q_sum_parts_kernel (no atomics: reproducible). */
static __global__ void q_col_absmean_kernel(const float *x, int T, int64_t K, double *part) {
    __shared__ double red[8][33];
    const int64_t k = (int64_t)blockIdx.x * 32 + threadIdx.x;
    double acc = 0.0;
    if (k < K)
        for (int t = threadIdx.y + 8 * blockIdx.y; t < T; t += 8 * gridDim.y)
            acc += fabsf(x[(size_t)t * K + k]);
    red[threadIdx.y][threadIdx.x] = acc;
    __syncthreads();
    if (threadIdx.y == 0 && k < K) {
        double t = 0.0;
        for (int i = 0; i < 8; i++) t += red[i][threadIdx.x];
        part[(size_t)blockIdx.y * (size_t)K + (size_t)k] = t;
    }
}

/* sum[k] = sum over y < ny of part[y][k], in order of y. */
static __global__ void q_sum_parts_kernel(const double *part, int ny, int64_t K, double *sum) {
    const int64_t k = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (k >= K) return;
    double t = 0.0;
    for (int y = 0; y < ny; y++) t += part[(size_t)y * (size_t)K + (size_t)k];
    sum[k] = t;
}

static __global__ void q_scale_cols_kernel(float *x, size_t n, int64_t K, const float *s, bool div) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride) {
        const float v = s[(int64_t)i % K];
        x[i] = div ? x[i] / v : x[i] * v;
    }
}

static __global__ void q_div_rows_kernel(float *x, size_t n, int64_t K, const float *s) {
    const size_t stride = (size_t)gridDim.x * blockDim.x;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += stride)
        x[i] = x[i] / s[(int64_t)i / K];
}

/* Clipping search (qdev.h). Block (b, rows n0 .. n0 + QC_R). */
#define QC_R 4
#define QC_SC 32
#define QC_NP (QC_R * SK_QCLIP_STEPS)
#define QC_WARPS (Q_THREADS / 32)
#define QC_PPW (QC_NP / QC_WARPS) /* pairs per warp */
static_assert(QC_NP % QC_WARPS == 0, "pairs must split evenly over the warps");

template <int E>
static __global__ void __launch_bounds__(Q_THREADS)
q_clip_kernel(const float *w, int64_t N, int64_t K, const float *x, int step, int S, float *clip) {
    __shared__ float dq[QC_NP][128];          /* fq(w, c_i) - w per (row, step) pair */
    __shared__ float xs[128 * (QC_SC + 1)];   /* sample chunk, [j][s], padded */
    __shared__ double err[QC_NP];
    __shared__ float amax_s[QC_R];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = 32 * E;
    const int64_t b = blockIdx.x, n0 = (int64_t)blockIdx.y * QC_R, ng = K / g;

    /* 1. the candidates' quantization errors */
    for (int p = warp; p < QC_NP; p += QC_WARPS) {
        const int r = p / SK_QCLIP_STEPS, i = p % SK_QCLIP_STEPS;
        const int64_t n = n0 + r;
        if (n >= N) {
#pragma unroll
            for (int e = 0; e < E; e++) dq[p][lane + 32 * e] = 0.0f;
            if (lane == 0) err[p] = -1.0;
            continue;
        }
        const float *wr = w + n * K + b * g;
        float wv[E], v[E], amax = 0.0f;
#pragma unroll
        for (int e = 0; e < E; e++) {
            wv[e] = wr[lane + 32 * e];
            amax = fabsf(wv[e]) > amax ? fabsf(wv[e]) : amax;
        }
        amax = sk_warp_max(amax);
        if (i == 0 && lane == 0) amax_s[r] = amax;
        const float cl = amax * (1.0f - (float)i / SK_QCLIP_GRID);
        if (!(cl > 0.0f)) { /* not a candidate (the CPU stops at the first such step) */
#pragma unroll
            for (int e = 0; e < E; e++) dq[p][lane + 32 * e] = 0.0f;
            if (lane == 0) err[p] = -1.0; /* marker, kept through the sums below */
            continue;
        }
#pragma unroll
        for (int e = 0; e < E; e++) v[e] = wv[e] > cl ? cl : wv[e] < -cl ? -cl : wv[e];
        float d;
        int z;
        q_group_params<E>(v, &d, &z);
#pragma unroll
        for (int e = 0; e < E; e++) dq[p][lane + 32 * e] = q_fq_value(v[e], d, z) - wv[e];
        if (lane == 0) err[p] = 0.0;
    }
    __syncthreads();

    /* 2. sum over the sample of (x_t . dq)^2, QC_SC rows at a time */
    double acc2[QC_PPW];
#pragma unroll
    for (int m = 0; m < QC_PPW; m++) acc2[m] = 0.0;
    for (int c0 = 0; c0 < S; c0 += QC_SC) {
        for (int e = threadIdx.x; e < QC_SC * g; e += Q_THREADS) {
            const int s = e / g, j = e % g;
            xs[j * (QC_SC + 1) + s] =
                c0 + s < S ? x[(size_t)(c0 + s) * (size_t)step * (size_t)K + (size_t)(b * g + j)] : 0.0f;
        }
        __syncthreads();
        float acc[QC_PPW];
#pragma unroll
        for (int m = 0; m < QC_PPW; m++) acc[m] = 0.0f;
#pragma unroll 8
        for (int j = 0; j < g; j++) {
            const float xv = xs[j * (QC_SC + 1) + lane];
#pragma unroll
            for (int m = 0; m < QC_PPW; m++) acc[m] = fmaf(dq[warp + QC_WARPS * m][j], xv, acc[m]);
        }
#pragma unroll
        for (int m = 0; m < QC_PPW; m++) acc2[m] += (double)acc[m] * (double)acc[m];
        __syncthreads();
    }
#pragma unroll
    for (int m = 0; m < QC_PPW; m++) {
        const double t = q_warp_sum_d(acc2[m]);
        const int p = warp + QC_WARPS * m;
        if (lane == 0 && err[p] == 0.0) err[p] = t;
    }
    __syncthreads();

    /* 3. the first smallest error per row */
    if (threadIdx.x < QC_R && n0 + threadIdx.x < N) {
        const int r = threadIdx.x;
        const float amax = amax_s[r];
        double best = INFINITY;
        float best_c = amax;
        for (int i = 0; i < SK_QCLIP_STEPS; i++) {
            const double e = err[r * SK_QCLIP_STEPS + i];
            if (e < 0.0) break;
            if (e < best) best = e, best_c = amax * (1.0f - (float)i / SK_QCLIP_GRID);
        }
        clip[(n0 + r) * ng + b] = best_c;
    }
}

/* ---- ops ---------------------------------------------------------------------------------- */

static void q_destroy(sk_qdev *d) {
    if (!d) return;
    qcuda *q = qc(d);
    if (q) {
        CUDA_CHECK(cudaStreamSynchronize(q->stream));
        if (q->blas) CUBLAS_CHECK(cublasDestroy(q->blas));
        if (q->d_acc) CUDA_CHECK(cudaFree(q->d_acc));
        free(q->h_acc);
        free(q);
    }
    free(d);
}

/* d_acc / h_acc hold at least n doubles. */
static void q_acc_reserve(qcuda *q, size_t n) {
    if (n <= q->acc_cap) return;
    CUDA_CHECK(cudaStreamSynchronize(q->stream));
    if (q->d_acc) CUDA_CHECK(cudaFree(q->d_acc));
    free(q->h_acc);
    CUDA_CHECK(cudaMalloc((void **)&q->d_acc, n * sizeof(double)));
    q->h_acc = (double *)sk_xmalloc(n * sizeof(double));
    q->acc_cap = n;
}

static void q_matmul(sk_qdev *d, const float *x, int T, const float *w, const float *b, int64_t N,
                     int64_t K, float *out) {
    qcuda *q = qc(d);
    SK_ASSERT(T > 0 && N > 0 && K > 0 && N <= INT32_MAX && K <= INT32_MAX);
    const float one = 1.0f, zero = 0.0f;
    /* column-major view: out^T [N, T] = (w^T)^T [N, K] x^T [K, T] */
    CUBLAS_CHECK(cublasGemmEx(q->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)N, T, (int)K, &one, w,
                              CUDA_R_32F, (int)K, x, CUDA_R_32F, (int)K, &zero, out, CUDA_R_32F,
                              (int)N,
                              q->tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                              CUBLAS_GEMM_DEFAULT));
    if (b) {
        const size_t n = (size_t)T * (size_t)N;
        q_bias_kernel<<<sk_cuda_blocks(n, Q_THREADS), Q_THREADS, 0, q->stream>>>(out, b, n, N);
        CUDA_CHECK_LAUNCH();
    }
}

static void q_fake_quant(sk_qdev *d, const float *w, int64_t N, int64_t K, int g, const float *s,
                         const float *clip, float *dst) {
    SK_ASSERT((g == 32 || g == 64 || g == 128) && K % g == 0 && w != dst);
    const int64_t n_groups = N * (K / g);
    const unsigned blocks = sk_cuda_blocks((size_t)n_groups * 32, Q_THREADS);
    cudaStream_t st = qc(d)->stream;
    if (g == 32) q_fake_quant_kernel<1><<<blocks, Q_THREADS, 0, st>>>(w, n_groups, K, s, clip, dst);
    else if (g == 64) q_fake_quant_kernel<2><<<blocks, Q_THREADS, 0, st>>>(w, n_groups, K, s, clip, dst);
    else q_fake_quant_kernel<4><<<blocks, Q_THREADS, 0, st>>>(w, n_groups, K, s, clip, dst);
    CUDA_CHECK_LAUNCH();
}

static double q_mse(sk_qdev *d, const float *a, const float *b, size_t n) {
    qcuda *q = qc(d);
    if (n == 0) return 0.0;
    const unsigned nb = sk_cuda_blocks(n, Q_THREADS);
    q_acc_reserve(q, nb);
    q_mse_kernel<<<nb, Q_THREADS, 0, q->stream>>>(a, b, n, q->d_acc);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(q->h_acc, q->d_acc, sizeof(double) * nb, cudaMemcpyDeviceToHost,
                               q->stream));
    CUDA_CHECK(cudaStreamSynchronize(q->stream));
    double t = 0.0;
    for (unsigned i = 0; i < nb; i++) t += q->h_acc[i];
    return t / (double)n;
}

static void q_col_absmean(sk_qdev *d, const float *x, int T, int64_t K, float *out_host) {
    qcuda *q = qc(d);
    SK_ASSERT(T > 0 && K > 0);
    /* about 64 rows per thread, at most 128 row blocks; d_acc: [ry][K] partials, then [K] sums */
    int ry = T / 512;
    ry = ry < 1 ? 1 : ry > 128 ? 128 : ry;
    q_acc_reserve(q, ((size_t)ry + 1) * (size_t)K);
    double *sums = q->d_acc + (size_t)ry * (size_t)K;
    const dim3 grid((unsigned)((K + 31) / 32), (unsigned)ry);
    q_col_absmean_kernel<<<grid, dim3(32, 8), 0, q->stream>>>(x, T, K, q->d_acc);
    CUDA_CHECK_LAUNCH();
    q_sum_parts_kernel<<<(unsigned)((K + 255) / 256), 256, 0, q->stream>>>(q->d_acc, ry, K, sums);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(q->h_acc, sums, sizeof(double) * (size_t)K, cudaMemcpyDeviceToHost,
                               q->stream));
    CUDA_CHECK(cudaStreamSynchronize(q->stream));
    for (int64_t k = 0; k < K; k++) out_host[k] = (float)(q->h_acc[k] / T);
}

static void q_scale_cols(sk_qdev *d, float *x, int64_t rows, int64_t K, const float *s, bool div) {
    const size_t n = (size_t)rows * (size_t)K;
    if (n == 0) return;
    q_scale_cols_kernel<<<sk_cuda_blocks(n, Q_THREADS), Q_THREADS, 0, qc(d)->stream>>>(x, n, K, s, div);
    CUDA_CHECK_LAUNCH();
}

static void q_div_rows(sk_qdev *d, float *x, int64_t rows, int64_t K, const float *s) {
    const size_t n = (size_t)rows * (size_t)K;
    if (n == 0) return;
    q_div_rows_kernel<<<sk_cuda_blocks(n, Q_THREADS), Q_THREADS, 0, qc(d)->stream>>>(x, n, K, s);
    CUDA_CHECK_LAUNCH();
}

static void q_copy(sk_qdev *d, float *dst, const float *src, size_t n) {
    if (n == 0 || dst == src) return;
    CUDA_CHECK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToDevice, qc(d)->stream));
}

static void q_search_clip(sk_qdev *d, const float *w, int64_t N, int64_t K, int g, const float *x,
                          int T, float *clip) {
    SK_ASSERT((g == 32 || g == 64 || g == 128) && K % g == 0 && T > 0);
    const int step = T > SK_QCLIP_TOKENS ? T / SK_QCLIP_TOKENS : 1;
    const int S = (T + step - 1) / step;
    const int64_t rb = (N + QC_R - 1) / QC_R;
    SK_ASSERT(K / g <= INT32_MAX && rb <= 65535);
    const dim3 grid((unsigned)(K / g), (unsigned)rb);
    cudaStream_t st = qc(d)->stream;
    if (g == 32) q_clip_kernel<1><<<grid, Q_THREADS, 0, st>>>(w, N, K, x, step, S, clip);
    else if (g == 64) q_clip_kernel<2><<<grid, Q_THREADS, 0, st>>>(w, N, K, x, step, S, clip);
    else q_clip_kernel<4><<<grid, Q_THREADS, 0, st>>>(w, N, K, x, step, S, clip);
    CUDA_CHECK_LAUNCH();
}

/* In the order of sk_qdev_ops (C++17: no designated initializers). */
static const sk_qdev_ops k_qdev_cuda = {q_destroy,    q_matmul,   q_fake_quant,
                                        q_mse,        q_col_absmean, q_scale_cols,
                                        q_div_rows,   q_copy,     q_search_clip};

extern "C" sk_status sk_qdev_cuda_new(sk_backend *be, bool tf32, sk_qdev **out) {
    *out = NULL;
    if (!be || strcmp(be->name, "cuda") != 0)
        return sk_fail(SK_ERR_ARG, "quantize: the CUDA quantizer needs a CUDA backend");
    sk_qdev *d = (sk_qdev *)calloc(1, sizeof *d);
    qcuda *q = (qcuda *)calloc(1, sizeof *q);
    if (!d || !q) {
        free(d), free(q);
        return sk_fail(SK_ERR_NOMEM, "quantize: out of memory");
    }
    d->ops = &k_qdev_cuda;
    d->be = be;
    d->ctx = q;
    q->tf32 = tf32;
    q->stream = sk_cuda_ctx(be)->stream;
    if (cublasCreate(&q->blas) != CUBLAS_STATUS_SUCCESS) {
        free(d), free(q);
        return sk_fail(SK_ERR_DEVICE, "quantize: cuBLAS could not be initialised");
    }
    CUBLAS_CHECK(cublasSetStream(q->blas, q->stream));
    /* fp32 FMA unless TF32 is asked for (CUBLAS_COMPUTE_32F above ignores the math mode, but an
     * NVIDIA_TF32_OVERRIDE in the environment would not) */
    CUBLAS_CHECK(cublasSetMathMode(q->blas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH));
    *out = d;
    return SK_OK;
}
