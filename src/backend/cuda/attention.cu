/* The attention op: stores the batch's K/V rows in the cache, then runs sk_attn_kernel1
 * (attention.cuh) over every (query head, row). */
#include "backend/cuda/attention.cuh"
#include "backend/cuda/common.cuh"

#include <math.h>

static void launch_attn_store(const sk_attn1_params *p, const bf16 *k, const bf16 *v, int kv_stride,
                              cudaStream_t s) {
    const int w = p->n_kv_heads * p->head_dim;
    const int threads = w >= 256 ? 256 : (w + 31) / 32 * 32;
    sk_attn1_store_kernel<<<p->T, threads, 0, s>>>(*p, k, v, kv_stride);
    CUDA_CHECK_LAUNCH();
}

static void launch_attn1(const sk_attn1_params *p, cudaStream_t s) {
    sk_attn_kernel1<<<dim3((unsigned)p->n_heads, (unsigned)p->T), SK_ATTN1_THREADS, 0, s>>>(*p);
    CUDA_CHECK_LAUNCH();
}

void sk_cuda_attention(sk_backend *be, sk_kv_cache *kv, int layer, const void *q, int q_stride,
                       const void *k, const void *v, int kv_stride, int n_heads, void *out) {
    cuda_ctx *c = sk_cuda_ctx(be);
    const int T = c->T, KVH = kv->n_kv_heads, hd = kv->head_dim;
    SK_ASSERT(q && k && v && out && T > 0);
    SK_ASSERT(layer >= 0 && layer < kv->n_layers);
    SK_ASSERT(n_heads > 0 && n_heads % KVH == 0);
    SK_ASSERT(hd % 2 == 0 && hd <= SK_ATTN1_MAX_HEAD_DIM);
    SK_ASSERT(q_stride >= n_heads * hd && kv_stride >= KVH * hd);
    SK_ASSERT(T <= 65535); /* grid.y */
    const int32_t *pos = sk_cuda_h_pos(c), *seq = sk_cuda_h_seq(c);
    for (int t = 0; t < T; t++) SK_ASSERT(pos[t] < kv->n_ctx && seq[t] < kv->n_seq);
    /* The output must not overlap the rows it is computed from. */
    const size_t out_bytes = (size_t)T * (size_t)n_heads * (size_t)hd * sizeof(bf16);
    SK_ASSERT(!sk_cuda_overlap(out, out_bytes, q, (size_t)T * (size_t)q_stride * sizeof(bf16)));

    sk_attn1_params p;
    p.q = (const bf16 *)q;
    p.out = (bf16 *)out;
    p.k_cache = kv->k + (size_t)layer * kv->layer_elems;
    p.v_cache = kv->v + (size_t)layer * kv->layer_elems;
    p.pos = sk_cuda_d_pos(c);
    p.seq = sk_cuda_d_seq(c);
    p.T = T;
    p.q_stride = q_stride;
    p.n_heads = n_heads;
    p.n_kv_heads = KVH;
    p.head_dim = hd;
    p.n_ctx = kv->n_ctx;
    p.scale = 1.0f / sqrtf((float)hd);
    launch_attn_store(&p, (const bf16 *)k, (const bf16 *)v, kv_stride, c->stream);
    launch_attn1(&p, c->stream);
}
