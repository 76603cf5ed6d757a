/* SAKER_PROFILE=1: GPU time per backend op, from CUDA events recorded on the backend's stream
 * around each op call (and around the parts of an op that push their own names: attention's
 * store/decode/prefill kernels, matmul's input cast and GEMM), summed per key and printed to
 * stderr when the process exits. Keys are the op's name, its shape where it matters (matmul T, N,
 * K) and the batch's kind: "dec" when every row is the only one of its sequence (decode steps),
 * "mix" otherwise (prompt chunks, mixed steps). Graphs are off while profiling (the op table has
 * no capture_begin), so every step runs eagerly; events are resolved at each begin (a step
 * boundary) and at exit. Off (the default), the hooks cost one test of a global flag.
 * SAKER_PROFILE=host leaves the ops alone (graphs on): only the engine's host timers run. */
#ifndef SK_CUDA_PROFILE_CUH
#define SK_CUDA_PROFILE_CUH

#include "backend/cuda/common.cuh"

extern bool sk_cuda_prof_on;

/* Called by ops_init (backend.cu): when SAKER_PROFILE is set, wraps the op table's entries with
 * timed ones and removes capture_begin. */
void sk_cuda_prof_init(sk_backend_ops *o);

/* A named span on c's stream, nested inside the op being timed (printed apart from the ops so
 * that totals do not count it twice). name: a string literal. */
void sk_cuda_prof_push_(cuda_ctx *c, const char *name);
void sk_cuda_prof_pop_(cuda_ctx *c);
static inline void sk_cuda_prof_push(cuda_ctx *c, const char *name) {
    if (sk_cuda_prof_on) sk_cuda_prof_push_(c, name);
}
static inline void sk_cuda_prof_pop(cuda_ctx *c) {
    if (sk_cuda_prof_on) sk_cuda_prof_pop_(c);
}

#endif
