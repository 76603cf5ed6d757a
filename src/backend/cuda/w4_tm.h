/* The INT4 decode GEMVs at 3..32 rows (w4_tm.cuh, w4_tx.cuh), the backend's entry: its own translation unit
 * (w4_tm.cu), so that its instances compile beside matmul.cu's. */
#ifndef SK_CUDA_W4_TM_H
#define SK_CUDA_W4_TM_H

#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <stddef.h>
#include <stdint.h>

/* Whether sk_w4_tm_gemv takes a product of T rows in mode (SK_GEMV_*): T from SAKER_W4_TM_MIN
 * (default 3; 0: never; ADD products from SAKER_W4_TM_ADD_MIN, default 3) to 16, to 32 where
 * sk_w4_tx_kernel runs (SAKER_W4_TX_MIN, G = 128 past 16 rows), a shape it fits (w4_tm.cuh's
 * sk_w4_tm_fits). */
bool sk_w4_tm_ok(int T, int mode, int N_out, int K, int G, const void *x, const void *gamma);

/* out = x W^T (+ bias) (STORE), out += ... (ADD) or out = silu(x Wg^T) * (x Wu^T) (SWIGLU, W's
 * rows [gate; up], N_out each), x [T][K] fp32 RMS-normalised with gamma and eps first when gamma
 * != NULL (not ADD). scratch: at least sk_w4_tm_scratch_bytes(K) bytes, 16-byte aligned (the
 * fp16 x and the partial sums of squares). ws / cnt: sk_w4_tx_kernel's partials (ws_floats)
 * and row-block counters (cnt_n, zero; it leaves them zero): the W4 tile kernels' split-K
 * scratch. Two launches on s (prepass, GEMV); no allocation, no synchronisation.
 * Only where sk_w4_tm_ok (asserted). */
void sk_w4_tm_gemv(int mode, const float *x, int T, const uint32_t *q4, const __half2 *q4s, int G,
                   const float *bias, int N_out, int K, float *out, const float *gamma, float eps,
                   void *scratch, float *ws, size_t ws_floats, int *cnt, int cnt_n, cudaStream_t s);
size_t sk_w4_tm_scratch_bytes(int K);

#endif
