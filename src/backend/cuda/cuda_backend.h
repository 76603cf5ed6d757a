/* CUDA backend extras callable from C (tests, tools). The backend itself is created with
 * sk_backend_cuda_new (backend.h) and used through its op table. */
#ifndef SK_CUDA_BACKEND_H
#define SK_CUDA_BACKEND_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "backend/backend.h"

/* Copies n fp32 values from host src to n activations (fp32) at device dst of a CUDA
 * backend. Returns when src may be reused and dst holds the values for every later
 * op. be must be a backend made by sk_backend_cuda_new. */
void sk_cuda_upload_f32(sk_backend *be, void *dst, const float *src, size_t n);

/* How many rmsnorm_matmul calls of this process took the norm carried from the ADD GEMV before
 * them (norm_next; tests check that the path they compare was taken). */
long sk_cuda_norm_carried(void);

/* How many decode attention launches of this process took the step's new tokens as the QKV
 * product's fp32 rows, RoPE and the K/V store inside the decode kernel (sk_attn_params.nt;
 * tests check that the path they compare was taken). */
long sk_cuda_attn_newtok(void);

#ifdef __cplusplus
}
#endif

#endif
