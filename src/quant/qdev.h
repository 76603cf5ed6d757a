/* The quantizer's device: the array operations of the AWQ search (src/quant/awq.c) on the
 * memory of one backend, as a small op table next to the backend's own (backend.h).
 *
 * awq.c keeps every large array of the search (calibration activations, the fp32 Linears, their
 * fake-quantized copies, clipping thresholds) in the backend's memory (sk_backend_ops.alloc:
 * host memory on the CPU, device memory on CUDA) and runs the model pieces through the backend's
 * ops (norms, RoPE, attention, add, SwiGLU, GELU). What the backend table has no entry for is
 * here: an fp32 matmul of two fp32 arrays (the backend's matmul takes a loaded sk_weight, which
 * CUDA keeps in bf16/fp16), group fake quantization with AWQ scales, the MSE and column mean
 * reductions, the fold of a scale into rows / columns, and the clipping search.
 *
 * Two implementations: the CPU's (awq.c, the fp32 reference; OpenMP) and CUDA's
 * (src/backend/cuda/quant.cu; cuBLAS in fp32 or TF32, kernels of its own). Every pointer is
 * memory of the qdev's backend unless it says host. Every op is ordered after earlier backend
 * ops on the same backend (CUDA: the backend's stream); those returning host values wait. */
#ifndef SK_QUANT_QDEV_H
#define SK_QUANT_QDEV_H

#include "backend/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_qdev sk_qdev;

/* Clipping search constants (AutoAWQ's auto_clip: n_grid 20, max_shrink 0.5, 512 tokens). */
#define SK_QCLIP_TOKENS 512
#define SK_QCLIP_GRID 20
#define SK_QCLIP_STEPS 10

typedef struct sk_qdev_ops {
    void (*destroy)(sk_qdev *d);
    /* out[T, N] = x[T, K] w[N, K]^T (+ b[N] when b != NULL). */
    void (*matmul)(sk_qdev *d, const float *x, int T, const float *w, const float *b, int64_t N,
                   int64_t K, float *out);
    /* dst[N, K] = fq(w diag(s)) diag(1/s): each row's groups of g quantized and dequantized as
     * sk_q4g_fake_quant_row does (bit for bit), after clamping group b of row n to
     * +-clip[n * K/g + b] when clip != NULL. s [K] or NULL (no scaling). dst != w. */
    void (*fake_quant)(sk_qdev *d, const float *w, int64_t N, int64_t K, int g, const float *s,
                       const float *clip, float *dst);
    /* mean of (a[i] - b[i])^2 over n, accumulated in double. */
    double (*mse)(sk_qdev *d, const float *a, const float *b, size_t n);
    /* out_host[k] = mean over the T rows of |x[t, k]| (x [T, K]), accumulated in double. */
    void (*col_absmean)(sk_qdev *d, const float *x, int T, int64_t K, float *out_host);
    /* x[r, k] *= s[k] (div false) or /= s[k] (div true), x [rows, K]. */
    void (*scale_cols)(sk_qdev *d, float *x, int64_t rows, int64_t K, const float *s, bool div);
    /* x[r, k] /= s[r], x [rows, K]. */
    void (*div_rows)(sk_qdev *d, float *x, int64_t rows, int64_t K, const float *s);
    /* dst[n] = src[n]. */
    void (*copy)(sk_qdev *d, float *dst, const float *src, size_t n);
    /* Clipping search of w [N, K] (groups of g along K) on the inputs x [T, K]: the sample is
     * rows t = i * step, i < S (step = T / SK_QCLIP_TOKENS when T > SK_QCLIP_TOKENS, else 1;
     * S = ceil(T / step)). For each (row n, group b) with amax = max |w| of the group, the
     * candidates are c_i = amax * (1 - i / SK_QCLIP_GRID), i < SK_QCLIP_STEPS (none when
     * amax is 0); the one minimising the sum over the sample of (x_t . fq(w, c_i) - x_t . w)^2,
     * dot products over the group's columns (the first on ties), goes to clip[n * K/g + b] (amax
     * when none). The CPU forms the two partial sums and subtracts; CUDA computes
     * x_t . (fq(w, c_i) - w) in one product (equal in exact arithmetic). */
    void (*search_clip)(sk_qdev *d, const float *w, int64_t N, int64_t K, int g, const float *x,
                        int T, float *clip);
} sk_qdev_ops;

struct sk_qdev {
    const sk_qdev_ops *ops;
    sk_backend *be; /* the backend whose memory and stream the ops use (not owned) */
    void *ctx;      /* implementation private */
};

/* The CPU reference on a CPU backend (awq.c). */
sk_status sk_qdev_cpu_new(sk_backend *be, sk_qdev **out);
#ifdef SAKER_HAVE_CUDA
/* CUDA on a backend made by sk_backend_cuda_new (src/backend/cuda/quant.cu). tf32: matmuls on
 * TF32 tensor cores (10-bit mantissa inputs, fp32 accumulation) instead of fp32 FMA. */
sk_status sk_qdev_cuda_new(sk_backend *be, bool tf32, sk_qdev **out);
#endif

#ifdef __cplusplus
}
#endif

#endif
