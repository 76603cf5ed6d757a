/* Prefill attention entry: argument checks and version selection for the kernels of
 * attn_prefill.cuh (see there for what each version does). */
#include "backend/cuda/attn_prefill.cuh"
#include "backend/cuda/common.cuh"

/* Version 3 (wgmma) for head dims 64 and 128 once the workbench (dev/cuda/attention_prefill.cu)
 * has passed it on the GPU; until then version 2 with 128-row query tiles everywhere. */
#ifndef SK_ATTN_PREFILL_V3
#define SK_ATTN_PREFILL_V3 0
#endif

/* q, out and the pools 16-byte aligned with q_stride % 8 == 0 take versions 2/3; anything else
 * falls back to version 1 (correct, slow). */
void sk_attn_prefill(const sk_attn_params *p, cudaStream_t s) {
    SK_ASSERT(p && p->q && p->out && p->qo_indptr && p->batch >= 1);
    SK_ASSERT(p->kv.k && p->kv.v && p->kv.indptr && p->kv.indices && p->kv.kv_len);
    const int D = p->kv.head_dim, ps = p->kv.page_size;
    SK_ASSERT(D == 64 || D == 80 || D == 128);
    SK_ASSERT(ps == 16 || ps == 32 || ps == 64 || ps == 128);
    SK_ASSERT(p->n_heads >= 1 && p->kv.n_kv_heads >= 1 && p->n_heads % p->kv.n_kv_heads == 0);
    SK_ASSERT(p->q_stride >= (int64_t)p->n_heads * D);
    SK_ASSERT(isfinite(p->sm_scale));
    SK_ASSERT(sk_cuda_aligned(p->q, 4) && sk_cuda_aligned(p->kv.k, 4) &&
              sk_cuda_aligned(p->kv.v, 4) && sk_cuda_aligned(p->out, 2));
    const bool fast = sk_cuda_aligned(p->q, 16) && sk_cuda_aligned(p->out, 16) &&
                      sk_cuda_aligned(p->kv.k, 16) && sk_cuda_aligned(p->kv.v, 16) &&
                      p->q_stride % 8 == 0;
    if (fast && SK_ATTN_PREFILL_V3 && (D == 64 || D == 128))
        CUDA_CHECK(sk_attn_prefill_launch3(p, s));
    else if (fast)
        CUDA_CHECK(sk_attn_prefill_launch2<128>(p, s));
    else
        CUDA_CHECK(sk_attn_prefill_launch1(p, s));
    if (sk_cuda_sync_debug) CUDA_CHECK(cudaStreamSynchronize(s));
}
