/* The attention op: stores the batch's K/V rows (fp32) in the half cache, then runs
 * sk_attn_kernel1 (attention.cuh) over every (query head, row): fp32 q, scores, softmax and
 * accumulation, fp32 output. */
#include "backend/cuda/attention.cuh"
#include "backend/cuda/common.cuh"

#include <math.h>

template <typename H>
static void launch_attn1(const sk_attn1_params_t<float, H> *p, const float *k, const float *v,
                         int kv_stride, cudaStream_t s) {
    const int w = p->n_kv_heads * p->head_dim;
    const int threads = w >= 256 ? 256 : (w + 31) / 32 * 32;
    sk_attn1_store_kernel<<<p->T, threads, 0, s>>>(*p, k, v, kv_stride);
    CUDA_CHECK_LAUNCH();
    sk_attn_kernel1<<<dim3((unsigned)p->n_heads, (unsigned)p->T), SK_ATTN1_THREADS, 0, s>>>(*p);
    CUDA_CHECK_LAUNCH();
}

/* Fills the params for cache type H and launches. */
template <typename H>
static void attention_h(cuda_ctx *c, sk_kv_cache *kv, int layer, const float *q, int q_stride,
                        const float *k, const float *v, int kv_stride, int n_heads, float *out) {
    sk_attn1_params_t<float, H> p;
    p.q = q;
    p.out = out;
    p.k_cache = (H *)kv->k + (size_t)layer * kv->layer_elems;
    p.v_cache = (H *)kv->v + (size_t)layer * kv->layer_elems;
    p.pos = sk_cuda_d_pos(c);
    p.seq = sk_cuda_d_seq(c);
    p.T = c->T;
    p.q_stride = q_stride;
    p.n_heads = n_heads;
    p.n_kv_heads = kv->n_kv_heads;
    p.head_dim = kv->head_dim;
    p.n_ctx = kv->n_ctx;
    p.scale = 1.0f / sqrtf((float)kv->head_dim);
    launch_attn1(&p, k, v, kv_stride, c->stream);
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
    const size_t out_bytes = (size_t)T * (size_t)n_heads * (size_t)hd * sizeof(float);
    SK_ASSERT(!sk_cuda_overlap(out, out_bytes, q, (size_t)T * (size_t)q_stride * sizeof(float)));
    if (c->dtype == SK_CUDA_F16)
        attention_h<f16>(c, kv, layer, (const float *)q, q_stride, (const float *)k,
                         (const float *)v, kv_stride, n_heads, (float *)out);
    else
        attention_h<bf16>(c, kv, layer, (const float *)q, q_stride, (const float *)k,
                          (const float *)v, kv_stride, n_heads, (float *)out);
}
