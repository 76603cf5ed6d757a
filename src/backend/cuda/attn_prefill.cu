/* Prefill attention entry: argument checks and version selection for the kernels of
 * attn_prefill.cuh (see there for what each version does). */
#include "backend/cuda/attn_prefill.cuh"
#include "backend/cuda/common.cuh"

/* Version 4 (wgmma, TMA producer warpgroup) for head dims 64 and 128: it passed every workbench
 * check on the H200 and runs at 527-577 TFLOP/s at 8192 tokens, d128 (version 3: 251-262;
 * bench/results/attention.md, 2026-11-29 session 3); version 3 remains the fallback should the
 * tensor maps not be available; version 2 with 128-row tiles for dim 80. SK_ATTN_PREFILL_V4=0 at
 * build time selects version 3. */
#ifndef SK_ATTN_PREFILL_V3
#define SK_ATTN_PREFILL_V3 1
#endif
#ifndef SK_ATTN_PREFILL_V4
#define SK_ATTN_PREFILL_V4 1
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
    static int v4_off = 0; /* set once version 4 could not launch (no tensor maps) */
    if (fast && SK_ATTN_PREFILL_V4 && !v4_off && (D == 64 || D == 128)) {
        const cudaError_t e = sk_attn_prefill_launch4<false>(p, s);
        if (e == cudaSuccess) {
            if (sk_cuda_sync_debug) CUDA_CHECK(cudaStreamSynchronize(s));
            return;
        }
        if (e != cudaErrorNotSupported && e != cudaErrorInvalidValue) CUDA_CHECK(e);
        SK_LOGW("cuda: prefill attention version 4 unavailable (%s); using version 3",
                cudaGetErrorString(e));
        v4_off = 1;
    }
    if (fast && SK_ATTN_PREFILL_V3 && (D == 64 || D == 128))
        CUDA_CHECK(sk_attn_prefill_launch3(p, s));
    else if (fast)
        CUDA_CHECK(sk_attn_prefill_launch2<128>(p, s));
    else
        CUDA_CHECK(sk_attn_prefill_launch1(p, s));
    if (sk_cuda_sync_debug) CUDA_CHECK(cudaStreamSynchronize(s));
}

/* ---- the backend's prefill path ------------------------------------------------------------ */

#include "backend/cuda/attention.cuh"
#include "backend/cuda/profile.cuh"

#include <math.h>
#include <string.h>

/* Growable device/host buffers of the prefill path (one set per backend; prefill steps are never
 * graph-captured, so they may grow between steps), and the tables of the current batch: built
 * once per batch (c->batch_gen) and row range, reused by every layer of the step. */
struct sk_cuda_pf {
    void *q, *out;     /* bf16 [T][n_heads*head_dim] */
    size_t q_bytes;    /* capacity of q and out each */
    int32_t *d_tab;    /* [4 * tab_cap]: qo_indptr, indptr, indices, kv_len */
    int32_t *h_tab;
    size_t tab_cap;
    int *starts;       /* [starts_cap] segment starts (host) */
    int starts_cap;
    int32_t *mark;     /* [mark_cap] per sequence: segment count + 1 / rows (host scratch) */
    int mark_cap;
    /* The tables on the device describe rows [tab_first, T) of batch tab_gen for cache tab_kv
     * in tab_B segments (tab_B < 0: that batch cannot take the prefill path). */
    bool tab_valid;
    unsigned tab_gen;
    int tab_first, tab_B;
    const sk_kv_cache *tab_kv;
    /* Leading rows of batch lead_gen that are each the only row of their sequence. */
    bool lead_valid;
    unsigned lead_gen;
    int lead;
};

void sk_cuda_pf_free(struct sk_cuda_pf *pf) {
    if (!pf) return;
    void *d[] = {pf->q, pf->out, pf->d_tab};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        if (d[i]) CUDA_CHECK(cudaFree(d[i]));
    free(pf->h_tab);
    free(pf->starts);
    free(pf->mark);
    free(pf);
}

static struct sk_cuda_pf *pf_get(cuda_ctx *c) {
    if (!c->pf) c->pf = (struct sk_cuda_pf *)sk_xcalloc(1, sizeof *c->pf);
    return c->pf;
}

/* pf->mark zeroed for sequences 0..max_seq of rows [first, T). */
static int32_t *pf_marks(struct sk_cuda_pf *pf, const int32_t *seq, int first, int T) {
    int max_seq = 0;
    for (int t = first; t < T; t++)
        if (seq[t] > max_seq) max_seq = seq[t];
    if (max_seq + 1 > pf->mark_cap) {
        pf->mark_cap = 2 * (max_seq + 1);
        free(pf->mark);
        pf->mark = (int32_t *)sk_xmalloc(sizeof(int32_t) * (size_t)pf->mark_cap);
    }
    memset(pf->mark, 0, sizeof(int32_t) * (size_t)(max_seq + 1));
    return pf->mark;
}

/* Splits rows [first, T) into segments: maximal runs of consecutive rows of one sequence with
 * consecutive positions. Each becomes one entry of the kernel's batch (its query rows, the
 * sequence's pages, kv_len = last position + 1). Returns the number of segments (starts[0..n]
 * absolute rows, starts[n] = T), or -1 when a sequence appears in two segments (its later rows
 * would need the earlier ones' K/V in a different order than the kernel's causal rule assumes:
 * the caller falls back). O(T). */
static int pf_segments(struct sk_cuda_pf *pf, const int32_t *seq, const int32_t *pos, int first,
                       int T) {
    if (T - first + 1 > pf->starts_cap) {
        pf->starts_cap = 2 * (T - first + 1);
        free(pf->starts);
        pf->starts = (int *)sk_xmalloc(sizeof(int) * (size_t)pf->starts_cap);
    }
    int32_t *seen = pf_marks(pf, seq, first, T);
    int n = 0;
    for (int t = first; t < T; t++) {
        if (t > first && seq[t] == seq[t - 1] && pos[t] == pos[t - 1] + 1) continue;
        if (seen[seq[t]]) return -1;
        seen[seq[t]] = 1;
        pf->starts[n++] = t;
    }
    pf->starts[n] = T;
    return n;
}

int sk_cuda_attention_lead_rows(cuda_ctx *c) {
    struct sk_cuda_pf *pf = pf_get(c);
    if (pf->lead_valid && pf->lead_gen == c->batch_gen) return pf->lead;
    const int T = c->T;
    const int32_t *seq = sk_cuda_h_seq(c);
    int32_t *cnt = pf_marks(pf, seq, 0, T);
    for (int t = 0; t < T; t++) cnt[seq[t]]++;
    int lead = 0;
    while (lead < T && cnt[seq[lead]] == 1) lead++;
    pf->lead = lead;
    pf->lead_gen = c->batch_gen;
    pf->lead_valid = true;
    return lead;
}

bool sk_cuda_attention_prefill_ok(cuda_ctx *c, sk_kv_cache *kv, int first) {
    const int T = c->T, hd = kv->head_dim, ps = kv->page_size;
    if (c->dtype != SK_CUDA_BF16 || !(hd == 64 || hd == 80 || hd == 128)) return false;
    if (!(ps == 16 || ps == 32 || ps == 64 || ps == 128)) return false;
    SK_ASSERT(first >= 0 && first < T);
    struct sk_cuda_pf *pf = pf_get(c);
    if (pf->tab_valid && pf->tab_gen == c->batch_gen && pf->tab_first == first &&
        pf->tab_kv == kv)
        return pf->tab_B > 0;
    const int32_t *seq = sk_cuda_h_seq(c), *pos = sk_cuda_h_pos(c);
    const int B = pf_segments(pf, seq, pos, first, T);
    pf->tab_valid = true;
    pf->tab_gen = c->batch_gen;
    pf->tab_first = first;
    pf->tab_kv = kv;
    pf->tab_B = B;
    if (B < 0) return false;
    const int *starts = pf->starts;
    /* Tables: qo_indptr [B+1] (relative to row `first`), indptr [B+1], kv_len [B], indices [sum
     * of pages]. */
    size_t n_idx = 0;
    for (int b = 0; b < B; b++) {
        const int last = pos[starts[b + 1] - 1];
        n_idx += (size_t)(last / ps + 1);
    }
    const size_t need = 3 * (size_t)(B + 1) + n_idx;
    if (need > pf->tab_cap) {
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        if (pf->d_tab) CUDA_CHECK(cudaFree(pf->d_tab));
        free(pf->h_tab);
        pf->tab_cap = need * 2;
        CUDA_CHECK(cudaMalloc((void **)&pf->d_tab, pf->tab_cap * sizeof(int32_t)));
        pf->h_tab = (int32_t *)sk_xcalloc(pf->tab_cap, sizeof(int32_t));
    }
    int32_t *qo = pf->h_tab, *ip = qo + (B + 1), *kl = ip + (B + 1), *ix = kl + B;
    qo[0] = ip[0] = 0;
    for (int b = 0; b < B; b++) {
        const int s = seq[starts[b]], last = pos[starts[b + 1] - 1], np = last / ps + 1;
        qo[b + 1] = starts[b + 1] - first;
        kl[b] = last + 1;
        /* The batch's page table, or slot s's own pages (common.cuh). */
        for (int j = 0; j < np; j++) ix[ip[b] + j] = sk_cuda_seq_page(c, kv, s, j);
        ip[b + 1] = ip[b] + np;
    }
    /* Pageable source: the copy is staged before the call returns, so h_tab may be reused. */
    CUDA_CHECK(cudaMemcpyAsync(pf->d_tab, pf->h_tab, need * sizeof(int32_t),
                               cudaMemcpyHostToDevice, c->stream));
    return true;
}

void sk_cuda_attention_prefill_rows(cuda_ctx *c, sk_kv_cache *kv, int layer, const float *q,
                                    int q_stride, const float *k, const float *v, int kv_stride,
                                    int n_heads, float *out, int first, bool store) {
    struct sk_cuda_pf *pf = c->pf;
    SK_ASSERT(pf && pf->tab_valid && pf->tab_gen == c->batch_gen && pf->tab_first == first &&
              pf->tab_kv == kv && pf->tab_B > 0);
    const int T = c->T, hd = kv->head_dim, ps = kv->page_size, w = n_heads * hd, B = pf->tab_B;
    const int R = T - first; /* rows computed */
    const size_t qb = (size_t)R * (size_t)w * sizeof(bf16);
    if (qb > pf->q_bytes) {
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        if (pf->q) CUDA_CHECK(cudaFree(pf->q));
        if (pf->out) CUDA_CHECK(cudaFree(pf->out));
        pf->q_bytes = qb * 2;
        CUDA_CHECK(cudaMalloc(&pf->q, pf->q_bytes));
        CUDA_CHECK(cudaMalloc(&pf->out, pf->q_bytes));
    }

    sk_attn1_params_t<float, bf16> p1;
    memset(&p1, 0, sizeof p1);
    p1.k_cache = (bf16 *)kv->k + (size_t)layer * kv->layer_elems;
    p1.v_cache = (bf16 *)kv->v + (size_t)layer * kv->layer_elems;
    if (store) { /* K/V rows of the whole batch into the pages (the simple path's store kernel) */
        sk_cuda_prof_push(c, "attn.store");
        p1.pos = sk_cuda_d_pos(c);
        p1.seq = sk_cuda_d_seq(c);
        p1.row_pages = c->paged ? sk_cuda_d_row_pages(c) : NULL;
        p1.page_ids = c->paged ? sk_cuda_d_ids(c) : NULL;
        p1.T = T;
        p1.n_kv_heads = kv->n_kv_heads;
        p1.head_dim = hd;
        p1.page_size = ps;
        p1.pages_per_seq = kv->pages_per_seq;
        p1.n_ctx = kv->n_ctx;
        const int kw = kv->n_kv_heads * hd;
        sk_attn1_store_kernel<<<T, kw >= 256 ? 256 : (kw + 31) / 32 * 32, 0, c->stream>>>(
            p1, k, v, kv_stride);
        CUDA_CHECK_LAUNCH();
        sk_cuda_prof_pop(c);
    }
    sk_cuda_prof_push(c, "attn.prefill (casts + kernel)");
    sk_cuda_q_to_bf16(c, q + (size_t)first * (size_t)q_stride, q_stride, w, R, pf->q);

    sk_attn_params p;
    memset(&p, 0, sizeof p);
    p.kv.k = p1.k_cache;
    p.kv.v = p1.v_cache;
    p.qo_indptr = pf->d_tab;
    p.kv.indptr = pf->d_tab + (B + 1);
    p.kv.kv_len = pf->d_tab + 2 * (B + 1);
    p.kv.indices = pf->d_tab + 2 * (B + 1) + B;
    p.kv.page_size = ps;
    p.kv.n_kv_heads = kv->n_kv_heads;
    p.kv.head_dim = hd;
    p.q = pf->q;
    p.q_stride = w;
    p.out = pf->out;
    p.batch = B;
    p.n_heads = n_heads;
    p.sm_scale = 1.0f / sqrtf((float)hd);
    sk_attn_prefill(&p, c->stream);
    sk_cuda_bf16_to_f32(c, pf->out, (size_t)R * (size_t)w, out + (size_t)first * (size_t)w);
    sk_cuda_prof_pop(c);
}

bool sk_cuda_attention_prefill(cuda_ctx *c, sk_kv_cache *kv, int layer, const float *q,
                               int q_stride, const float *k, const float *v, int kv_stride,
                               int n_heads, float *out) {
    if (!sk_cuda_attention_prefill_ok(c, kv, 0)) return false;
    sk_cuda_attention_prefill_rows(c, kv, layer, q, q_stride, k, v, kv_stride, n_heads, out, 0,
                                   true);
    return true;
}
