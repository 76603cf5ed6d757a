/* The attention op: stores the batch's K/V rows (fp32) in the half cache, then computes every
 * row's attention over its sequence's positions 0..pos with one of three paths:
 *   decode: bf16 cache, every row the only one of its sequence (attn_decode.cuh);
 *   prefill: bf16 cache, the rows as segments of consecutive positions (attn_prefill.cuh);
 *   simple: sk_attn_kernel1 (attention.cuh), anything else (fp16 cache, odd head dims).
 * A mixed paged batch (the engine's steps: decode rows first, then prompt chunks) is split: its
 * leading rows that are alone in their sequence take the decode kernel, the rest the prefill
 * kernel (SAKER_ATTN_SPLIT=0: every row through the prefill kernel, as before). */
#include "backend/cuda/attention.cuh"
#include "backend/cuda/attn_decode.cuh"
#include "backend/cuda/attn_decode_mq.cuh"
#include "backend/cuda/common.cuh"
#include "backend/cuda/profile.cuh"

#include <math.h>
#include <stdlib.h>
#include <string.h>

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
    memset(&p, 0, sizeof p);
    p.q = q;
    p.out = out;
    p.k_cache = (H *)kv->k + (size_t)layer * kv->layer_elems;
    p.v_cache = (H *)kv->v + (size_t)layer * kv->layer_elems;
    p.pos = sk_cuda_d_pos(c);
    p.seq = sk_cuda_d_seq(c);
    p.row_pages = c->paged ? sk_cuda_d_row_pages(c) : NULL;
    p.page_ids = c->paged ? sk_cuda_d_ids(c) : NULL;
    p.T = c->T;
    p.q_stride = q_stride;
    p.n_heads = n_heads;
    p.n_kv_heads = kv->n_kv_heads;
    p.head_dim = kv->head_dim;
    p.n_ctx = kv->n_ctx;
    p.page_size = kv->page_size;
    p.pages_per_seq = kv->pages_per_seq;
    p.scale = 1.0f / sqrtf((float)kv->head_dim);
    launch_attn1(&p, k, v, kv_stride, c->stream);
}

/* ---- decode rows through the paged group-aware kernel (attn_decode.cuh) ---------------- */

/* Row b (one query row per sequence): page table CSR over the slot's own pages, kv_len = pos+1. */
static __global__ void sk_dec_tables_kernel(const int32_t *pos, const int32_t *seq, int pps,
                                            int32_t *indptr, int32_t *indices, int32_t *kv_len,
                                            int T) {
    const int b = blockIdx.x;
    if (threadIdx.x == 0) {
        kv_len[b] = pos[b] + 1;
        indptr[b] = b * pps;
        if (b == T - 1) indptr[T] = T * pps;
    }
    for (int j = threadIdx.x; j < pps; j += blockDim.x) indices[b * pps + j] = seq[b] * pps + j;
}

/* dst[t][i] = bf16(src[t * stride + i]) for i < w: attention's q rows for the tensor-core
 * kernels. */
static __global__ void sk_dec_cast_in_kernel(const float *src, int stride, int w, __nv_bfloat16 *dst) {
    const int t = blockIdx.y;
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < w; i += gridDim.x * blockDim.x)
        dst[(size_t)t * w + i] = __float2bfloat16_rn(src[(size_t)t * stride + i]);
}

static __global__ void sk_dec_cast_out_kernel(const __nv_bfloat16 *src, size_t n, float *dst) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        dst[i] = __bfloat162float(src[i]);
}

/* RoPE, K/V store and q cast of a decode step in one launch (the rope op, the store kernel and
 * the q cast of the unfused path). The pairs of a row: per query head, then per KV head of k,
 * hd/2 pairs each, (i, i + rope_dim/2) (halves) or (2i, 2i + 1) (adjacent) for i < rope_dim/2
 * and two neighbouring pass-through dims past rope_dim; then per KV head of v, hd/2 pairs of
 * neighbouring dims to copy. Thread j of block (t, y) takes pair y * blockDim.x + j of row t, with
 * the rope op's angle expression (sincosf of pos * freq[i]), so many blocks share a row (one block
 * per row left a single SM to do a 7B row's 6,144 pairs: 17 us). q goes out as bf16
 * [T][n_heads][head_dim] for the decode kernel, K (rotated) and V as bf16 into the row's page.
 * q and k are read, never written. */
#define SK_ROPE_STORE_THREADS 128
static __global__ void __launch_bounds__(SK_ROPE_STORE_THREADS)
    sk_dec_rope_store_kernel(const __grid_constant__ sk_attn1_params_t<float, bf16> p,
                             const float *q, int q_stride, const float *k, const float *v,
                             int kv_stride, int n_heads, const float *freq, int rope_dim,
                             int halves, bf16 *q_out, int pdl_early) {
    /* PDL (session 9, sk_attn_pdl_mode): the decode kernel may launch now (modes 1, 2); q, k, v
     * wait for the qkv GEMV. pdl_early 2 (session 22, SAKER_ATTN_PREWAIT): the trigger right
     * after the wait, so that the decode kernel launches while this one runs (its pre-wait
     * prefetch overlapping it) but is not resident during the qkv GEMV (session 21: that cost). */
    SK_TRACE_BEGIN();
    if (pdl_early == 1) sk_pdl_trigger();
    sk_pdl_wait();
    if (pdl_early == 2) sk_pdl_trigger();
    const int t = blockIdx.x, hd = p.head_dim, half = rope_dim / 2, hp = hd / 2;
    const int KVH = p.n_kv_heads;
    const int j = blockIdx.y * SK_ROPE_STORE_THREADS + threadIdx.x;
    if (j >= (n_heads + 2 * KVH) * hp) return;
    const int h = j / hp, i = j % hp;
    const int s = p.seq[t], ps = p.pos[t];
    int ia, ib;
    float a, b;
    if (h >= n_heads + KVH) { /* v: a copy */
        const int kvh = h - n_heads - KVH;
        const float *src = v + (size_t)t * kv_stride + (size_t)kvh * hd;
        ia = 2 * i;
        ib = ia + 1;
        bf16 *o = p.v_cache + sk_attn1_kv_offset(&p, t, s, ps, kvh);
        o[ia] = __float2bfloat16_rn(src[ia]);
        o[ib] = __float2bfloat16_rn(src[ib]);
        SK_TRACE_END(SK_TRACE_ROPE << 24);
        return;
    }
    const bool is_q = h < n_heads;
    const float *src = is_q ? q + (size_t)t * q_stride + (size_t)h * hd
                            : k + (size_t)t * kv_stride + (size_t)(h - n_heads) * hd;
    if (i < half) {
        ia = halves ? i : 2 * i;
        ib = halves ? i + half : 2 * i + 1;
        float sn, cs;
        sincosf((float)ps * freq[i], &sn, &cs);
        const float x0 = src[ia], x1 = src[ib];
        a = x0 * cs - x1 * sn;
        b = x0 * sn + x1 * cs;
    } else {
        ia = rope_dim + 2 * (i - half);
        ib = ia + 1;
        a = src[ia];
        b = src[ib];
    }
    bf16 *o = is_q ? q_out + (size_t)t * (size_t)n_heads * hd + (size_t)h * hd
                   : p.k_cache + sk_attn1_kv_offset(&p, t, s, ps, h - n_heads);
    o[ia] = __float2bfloat16_rn(a);
    o[ib] = __float2bfloat16_rn(b);
    SK_TRACE_END(SK_TRACE_ROPE << 24);
}

void sk_cuda_q_to_bf16(cuda_ctx *c, const float *q, int q_stride, int w, int T, void *dst) {
    sk_dec_cast_in_kernel<<<dim3((unsigned)((w + 255) / 256), (unsigned)T), 256, 0, c->stream>>>(
        q, q_stride, w, (bf16 *)dst);
    CUDA_CHECK_LAUNCH();
}

void sk_cuda_bf16_to_f32(cuda_ctx *c, const void *src, size_t n, float *dst) {
    sk_dec_cast_out_kernel<<<(unsigned)((n + 255) / 256 < 4096 ? (n + 255) / 256 : 4096), 256, 0,
                             c->stream>>>((const bf16 *)src, n, dst);
    CUDA_CHECK_LAUNCH();
}

/* The comparison switches below: environment variable `name` set to anything but "" or "0"
 * is on; unset (or "") is dflt. Read once (*cache: -1 until then). */
static bool env_switch(const char *name, bool dflt, int *cache) {
    if (*cache < 0) {
        const char *e = getenv(name);
        *cache = e && *e ? strcmp(e, "0") != 0 : dflt;
    }
    return *cache != 0;
}

/* True when the decode kernel takes this step: bf16 cache, every row the only one of its
 * sequence (one new token per sequence), a supported shape. SAKER_ATTN_V1=1 forces the simple
 * kernel (comparisons). */
static bool sk_attn_force_v1(void) {
    static int force_v1 = -1;
    return env_switch("SAKER_ATTN_V1", false, &force_v1);
}

static bool use_decode_kernel(const cuda_ctx *c, const sk_kv_cache *kv, int n_heads) {
    if (sk_attn_force_v1() || c->dtype != SK_CUDA_BF16 || !c->rows_distinct) return false;
    if (!c->paged && c->T > kv->n_seq) return false; /* slot caches: one row per slot */
    return sk_attn_decode_supported(kv->head_dim, n_heads, kv->n_kv_heads, kv->page_size) != 0;
}

/* SAKER_ATTN_SPLIT=0 turns the split of mixed batches off (comparisons). */
static bool sk_attn_split(void) {
    static int split = -1;
    return env_switch("SAKER_ATTN_SPLIT", true, &split);
}

/* Decode launches that took the new token in fp32 (sk_cuda_attn_newtok). */
static long g_attn_newtok = 0;
extern "C" long sk_cuda_attn_newtok(void) { return g_attn_newtok; }

/* Rows [0, T) through the decode kernel (each the only row of its sequence); the K/V of all
 * c->T rows of the batch stored first (T < c->T: the leading rows of a mixed batch, the rest
 * computed by the prefill path). */
static void attention_decode(sk_backend *be, cuda_ctx *c, sk_kv_cache *kv, int layer,
                             const float *q, int q_stride, const float *k, const float *v,
                             int kv_stride, int n_heads, float *out, int T,
                             const sk_rope_params *rp) {
    const int hd = kv->head_dim, w = n_heads * hd;
    SK_ASSERT(T >= 1 && T <= c->T);
    if (kv->dec_heads != n_heads || kv->dec_T != T) {
        /* A new step shape (the first decode step of a session runs eagerly, before any graph
         * capture): the plan for T rows over the cache's longest sequence (n_ctx), so that a
         * captured graph stays valid as the context grows; buffers grown when too small (their
         * move bumps addr_epoch: graphs holding the old addresses are captured again). */
        static int n_sm = 0; /* one device per process (device 0) */
        if (n_sm == 0) {
            int dev = 0;
            CUDA_CHECK(cudaGetDevice(&dev));
            CUDA_CHECK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));
        }
        sk_attn_decode_plan plan;
        sk_attn_decode_make_plan(T, n_heads, kv->n_kv_heads, hd, kv->n_ctx, n_sm, &plan);
        /* Decode kernel 4 (attn_decode_mq.cuh) for groups of 9 and more (Falcon-40B/180B, MQA):
         * faster than kernel 2 at every large-group shape of the workbench (session 6:
         * Falcon-180B g29 64 x 4096 132.9 against 143.6 us, MQA 256 x 1024 53.7 against 86.4).
         * SAKER_ATTN_MQ=0 keeps kernel 2 (comparisons). Same split scratch layout. */
        static int mq_env = -1;
        const int group = n_heads / kv->n_kv_heads;
        kv->dec_mq = env_switch("SAKER_ATTN_MQ", true, &mq_env) &&
                     sk_attn_decode_mq_supported(hd, group) && kv->page_size >= 16 &&
                     (kv->page_size & (kv->page_size - 1)) == 0;
        if (kv->dec_mq) {
            plan.n_splits =
                sk_attn_decode_mq_plan(T, kv->n_kv_heads, group, hd, kv->n_ctx, n_sm, 0);
            plan.part_out_floats =
                plan.n_splits > 1 ? (size_t)T * n_heads * plan.n_splits * (size_t)hd : 0;
        }
        /* SAKER_ATTN_NS=N forces N splits (1..SK_ATTN_DECODE_MAX_SPLITS; experiments: the plan
         * is made for the cache's whole context, n_ctx, so short contexts get its splits) */
        static int ns_env = -1;
        if (ns_env < 0) {
            const char *e = getenv("SAKER_ATTN_NS");
            ns_env = e && *e ? atoi(e) : 0;
            if (ns_env < 0 || ns_env > SK_ATTN_DECODE_MAX_SPLITS) ns_env = 0;
        }
        if (ns_env > 0) {
            plan.n_splits = ns_env;
            plan.part_out_floats =
                ns_env > 1 ? (size_t)T * n_heads * (size_t)ns_env * (size_t)hd : 0;
        }
        const int rows = kv->n_seq > 0 ? (kv->n_seq > T ? kv->n_seq : T) : (T > 64 ? T : 64);
        const bool grow_q = kv->dec_heads != n_heads || rows > kv->dec_rows;
        const bool grow_p = plan.n_splits > 1 && plan.part_out_floats > kv->part_cap;
        if (grow_q || grow_p) {
            CUDA_CHECK(cudaStreamSynchronize(c->stream));
            be->addr_epoch++;
        }
        if (grow_q) {
            if (kv->q_half) CUDA_CHECK(cudaFree(kv->q_half));
            const size_t nq = (size_t)rows * (size_t)w;
            CUDA_CHECK(cudaMalloc(&kv->q_half, nq * 2));
            kv->dec_rows = rows;
        }
        if (grow_p) {
            if (kv->part_out) CUDA_CHECK(cudaFree(kv->part_out));
            if (kv->part_lse) CUDA_CHECK(cudaFree(kv->part_lse));
            const size_t cap = plan.part_out_floats;
            CUDA_CHECK(cudaMalloc((void **)&kv->part_out, cap * sizeof(float)));
            CUDA_CHECK(cudaMalloc((void **)&kv->part_lse, (cap / (size_t)hd) * sizeof(float)));
            kv->part_cap = cap;
        }
        SK_ASSERT(plan.n_splits == 1 || plan.part_out_floats <= kv->part_cap);
        kv->dec_splits = plan.n_splits;
        kv->dec_heads = n_heads;
        kv->dec_T = T;
    }
    /* The decode kernel's pre-wait prologue (session 22, sk_attn_params.kv_prewait, with the
     * rope/store triggering right after its wait): where the batch's page tables came from the
     * host and the rope/store is fused, for steps of at most sk_attn_prewait_rows() rows. */
    const bool prewait = c->paged && sk_attn_prewait() && T <= sk_attn_prewait_rows();
    sk_attn1_params_t<float, bf16> p1;
    memset(&p1, 0, sizeof p1);
    p1.k_cache = (bf16 *)kv->k + (size_t)layer * kv->layer_elems;
    p1.v_cache = (bf16 *)kv->v + (size_t)layer * kv->layer_elems;
    p1.pos = sk_cuda_d_pos(c);
    p1.seq = sk_cuda_d_seq(c);
    p1.row_pages = c->paged ? sk_cuda_d_row_pages(c) : NULL;
    p1.page_ids = c->paged ? sk_cuda_d_ids(c) : NULL;
    p1.T = c->T; /* the store covers the whole batch */
    p1.n_kv_heads = kv->n_kv_heads;
    p1.head_dim = hd;
    p1.page_size = kv->page_size;
    p1.pages_per_seq = kv->pages_per_seq;
    p1.n_ctx = kv->n_ctx;
    const int kw = kv->n_kv_heads * hd;
    /* The RoPE + store folded into the decode kernel itself (sk_attn_params.nt, session 25),
     * where kernel 2 runs a ring configuration. SAKER_ATTN_NEWTOK: 0 the separate rope/store
     * launch always; 2 the fold wherever kernel 2 takes it; 1 (the default) as measured (H200,
     * 128/256, ITL p50, two rounds, bench/results/decode.md session 25): taken at steps of two
     * rows and more (70B INT4 batch 2 / 4 / 8 -1.0 / -0.9 / -0.9%, 7B batch 2 -0.9%) and for
     * single-row steps without grouping (7B batch 1 -3.5%), not for single-row grouped steps
     * (70B batch 1 +1.4%: there the fold loses at every split count, clusters or not, one or
     * two warps a block, with or without PDL; not understood). */
    static int nt_mode = -1;
    if (nt_mode < 0) {
        const char *e = getenv("SAKER_ATTN_NEWTOK");
        nt_mode = e && *e ? atoi(e) : 1;
        if (nt_mode < 0 || nt_mode > 2) nt_mode = 1;
    }
    const bool newtok = rp && nt_mode != 0 && !kv->dec_mq &&
                        (nt_mode == 2 || T >= 2 || n_heads == kv->n_kv_heads) &&
                        sk_attn_decode_takes_newtok(T, n_heads, kv->n_kv_heads, hd,
                                                    kv->dec_splits);
    const float *freq = rp ? sk_cuda_rope_freq(c, rp->theta, rp->rope_dim) : NULL;
    if (newtok) {
        SK_ASSERT(T == c->T);
        g_attn_newtok++;
    } else if (rp) { /* rope + store + q cast fused (every row of the batch is a decode row) */
        SK_ASSERT(T == c->T);
        const int pairs = (n_heads + 2 * kv->n_kv_heads) * (hd / 2);
        const dim3 grid((unsigned)c->T,
                        (unsigned)((pairs + SK_ROPE_STORE_THREADS - 1) / SK_ROPE_STORE_THREADS));
        SK_ASSERT(grid.y <= 65535);
        sk_cuda_prof_push(c, "attn.rope_store");
        if (sk_attn_skip() & SK_ATTN_SKIP_STORE) {
        } else if (sk_attn_pdl_enabled())
            sk_launch_pdl(sk_dec_rope_store_kernel, grid, SK_ROPE_STORE_THREADS, c->stream, p1, q,
                          q_stride, k, v, kv_stride, n_heads, freq, rp->rope_dim,
                          (int)(rp->pairing == SK_ROPE_HALVES), (bf16 *)kv->q_half,
                          prewait ? 2 : (int)(sk_attn_pdl_mode() != 3));
        else
            sk_dec_rope_store_kernel<<<grid, SK_ROPE_STORE_THREADS, 0, c->stream>>>(
                p1, q, q_stride, k, v, kv_stride, n_heads, freq, rp->rope_dim,
                rp->pairing == SK_ROPE_HALVES, (bf16 *)kv->q_half, 0);
        CUDA_CHECK_LAUNCH();
        sk_cuda_prof_pop(c);
    } else {
        sk_cuda_prof_push(c, "attn.store");
        sk_attn1_store_kernel<<<c->T, kw >= 256 ? 256 : (kw + 31) / 32 * 32, 0, c->stream>>>(
            p1, k, v, kv_stride);
        CUDA_CHECK_LAUNCH();
        sk_cuda_prof_pop(c);
    }
    sk_cuda_prof_push(c, "attn.decode");
    /* Page tables: the batch's (begin_paged wrote per-row indptr and kv_len next to the ids), or
     * in slot mode the slots' own, built on the device per layer (one small launch, so that no
     * layer relies on another having run first). The decode kernel reads indptr[b] and
     * kv_len[b] of row b only, so per-row starts into the shared ids work. */
    const int32_t *indptr = sk_cuda_d_row_pages(c), *indices = sk_cuda_d_ids(c),
                  *kv_len = sk_cuda_d_kv_len(c);
    if (!c->paged) {
        sk_dec_tables_kernel<<<T, 128, 0, c->stream>>>(sk_cuda_d_pos(c), sk_cuda_d_seq(c),
                                                        kv->pages_per_seq, kv->d_indptr,
                                                        kv->d_indices, kv->d_kv_len, T);
        CUDA_CHECK_LAUNCH();
        indptr = kv->d_indptr, indices = kv->d_indices, kv_len = kv->d_kv_len;
    }
    if (!rp) sk_cuda_q_to_bf16(c, q, q_stride, w, T, kv->q_half);
    sk_attn_params p;
    memset(&p, 0, sizeof p);
    p.kv.k = p1.k_cache;
    p.kv.v = p1.v_cache;
    p.kv.indptr = indptr;
    p.kv.indices = indices;
    p.kv.kv_len = kv_len;
    p.kv.page_size = kv->page_size;
    p.kv.n_kv_heads = kv->n_kv_heads;
    p.kv.head_dim = hd;
    p.q = kv->q_half;
    p.q_stride = w;
    p.out = out; /* fp32, written by the decode kernel (or its combine) directly */
    p.out_f32 = 1;
    p.batch = T;
    p.n_heads = n_heads;
    p.sm_scale = 1.0f / sqrtf((float)hd);
    p.part_out = kv->part_out;
    p.part_lse = kv->part_lse;
    p.n_splits = kv->dec_splits;
    /* the fused rope/store just before writes only each row's last token; the batch's page
     * tables came from the host (begin_paged), not from a kernel of this step */
    p.kv_prewait = rp && prewait;
    if (newtok) {
        p.nt.q = q;
        p.nt.k = k;
        p.nt.v = v;
        p.nt.q_stride = q_stride;
        p.nt.kv_stride = kv_stride;
        p.nt.freq = freq;
        p.nt.rope_dim = rp->rope_dim;
        p.nt.halves = rp->pairing == SK_ROPE_HALVES;
        p.nt.k_pool = p1.k_cache;
        p.nt.v_pool = p1.v_cache;
    }
    if (kv->dec_mq)
        sk_attn_decode_mq(&p, c->stream);
    else
        sk_attn_decode(&p, c->stream);
    sk_cuda_prof_pop(c);
}

/* The op's argument checks (both entries). */
static void attention_check(cuda_ctx *c, sk_kv_cache *kv, int layer, const void *q, int q_stride,
                            const void *k, const void *v, int kv_stride, int n_heads,
                            const void *out) {
    const int T = c->T, KVH = kv->n_kv_heads, hd = kv->head_dim;
    SK_ASSERT(q && k && v && out && T > 0);
    SK_ASSERT(layer >= 0 && layer < kv->n_layers);
    SK_ASSERT(n_heads > 0 && n_heads % KVH == 0);
    SK_ASSERT(hd % 2 == 0 && hd <= SK_ATTN1_MAX_HEAD_DIM);
    SK_ASSERT(q_stride >= n_heads * hd && kv_stride >= KVH * hd);
    SK_ASSERT(T <= 65535); /* grid.y */
    const int32_t *pos = sk_cuda_h_pos(c), *seq = sk_cuda_h_seq(c);
    if (c->paged) /* the row's own page exists (begin_paged checked the tables' shape) */
        for (int t = 0; t < T; t++) {
            const int s = seq[t], np = c->h_indptr[s + 1] - c->h_indptr[s];
            SK_ASSERT(pos[t] / kv->page_size < np);
            const int32_t id = sk_cuda_seq_page(c, kv, s, pos[t] / kv->page_size);
            SK_ASSERT(id >= 0 && id < kv->n_pages);
        }
    else
        for (int t = 0; t < T; t++) SK_ASSERT(pos[t] < kv->n_ctx && seq[t] < kv->n_seq);
    /* The output must not overlap the rows it is computed from. */
    const size_t out_bytes = (size_t)T * (size_t)n_heads * (size_t)hd * sizeof(float);
    SK_ASSERT(!sk_cuda_overlap(out, out_bytes, q, (size_t)T * (size_t)q_stride * sizeof(float)));
}

void sk_cuda_attention(sk_backend *be, sk_kv_cache *kv, int layer, const void *q, int q_stride,
                       const void *k, const void *v, int kv_stride, int n_heads, void *out) {
    cuda_ctx *c = sk_cuda_ctx(be);
    const int T = c->T, KVH = kv->n_kv_heads, hd = kv->head_dim;
    attention_check(c, kv, layer, q, q_stride, k, v, kv_stride, n_heads, out);
    if (use_decode_kernel(c, kv, n_heads)) {
        attention_decode(be, c, kv, layer, (const float *)q, q_stride, (const float *)k,
                         (const float *)v, kv_stride, n_heads, (float *)out, T, NULL);
        return;
    }
    if (c->paged && c->dtype == SK_CUDA_BF16 && !sk_attn_force_v1() && sk_attn_split() &&
        sk_attn_decode_supported(hd, n_heads, KVH, kv->page_size)) {
        /* Mixed batch: the leading lone rows through the decode kernel (which stores every
         * row's K/V first), the rest through the prefill kernel. */
        const int lead = sk_cuda_attention_lead_rows(c);
        if (lead > 0 && lead < T && sk_cuda_attention_prefill_ok(c, kv, lead)) {
            attention_decode(be, c, kv, layer, (const float *)q, q_stride, (const float *)k,
                             (const float *)v, kv_stride, n_heads, (float *)out, lead, NULL);
            sk_cuda_attention_prefill_rows(c, kv, layer, (const float *)q, q_stride,
                                           (const float *)k, (const float *)v, kv_stride,
                                           n_heads, (float *)out, lead, false);
            return;
        }
    }
    if (!sk_attn_force_v1() &&
        sk_cuda_attention_prefill(c, kv, layer, (const float *)q, q_stride, (const float *)k,
                                  (const float *)v, kv_stride, n_heads, (float *)out))
        return;
    if (c->dtype == SK_CUDA_F16)
        attention_h<f16>(c, kv, layer, (const float *)q, q_stride, (const float *)k,
                         (const float *)v, kv_stride, n_heads, (float *)out);
    else
        attention_h<bf16>(c, kv, layer, (const float *)q, q_stride, (const float *)k,
                          (const float *)v, kv_stride, n_heads, (float *)out);
}

/* SAKER_ROPE_FUSE=0 turns the fused rope + store + q cast off (comparisons). */
static bool sk_rope_fuse(void) {
    static int fuse = -1;
    return env_switch("SAKER_ROPE_FUSE", true, &fuse);
}

/* Decode batches (every row alone in its sequence, the decode kernel's case) rotate q and k in
 * the kernel that stores K/V and casts q (sk_dec_rope_store_kernel): one launch instead of rope,
 * store and cast. Other batches: the rope op, then the attention op. */
void sk_cuda_rope_attention(sk_backend *be, sk_kv_cache *kv, int layer, void *q, int q_stride,
                            void *k, const void *v, int kv_stride, int n_heads,
                            const sk_rope_params *rp, void *out) {
    cuda_ctx *c = sk_cuda_ctx(be);
    SK_ASSERT(rp && rp->head_dim == kv->head_dim);
    SK_ASSERT(rp->rope_dim >= 0 && rp->rope_dim % 2 == 0 && rp->rope_dim <= rp->head_dim);
    SK_ASSERT(rp->rope_dim / 2 <= SK_CUDA_ROPE_MAX_HALF);
    SK_ASSERT(rp->pairing == SK_ROPE_ADJACENT || rp->pairing == SK_ROPE_HALVES);
    if (sk_rope_fuse() && use_decode_kernel(c, kv, n_heads)) {
        attention_check(c, kv, layer, q, q_stride, k, v, kv_stride, n_heads, out);
        attention_decode(be, c, kv, layer, (const float *)q, q_stride, (const float *)k,
                         (const float *)v, kv_stride, n_heads, (float *)out, c->T, rp);
        return;
    }
    const int KVH = kv->n_kv_heads, hd = kv->head_dim;
    if ((float *)k == (float *)q + (size_t)n_heads * hd && kv_stride == q_stride) {
        sk_cuda_rope(be, q, c->T, n_heads + KVH, q_stride, rp); /* fused qkv rows: one launch */
    } else {
        sk_cuda_rope(be, q, c->T, n_heads, q_stride, rp);
        sk_cuda_rope(be, k, c->T, KVH, kv_stride, rp);
    }
    sk_cuda_attention(be, kv, layer, q, q_stride, k, v, kv_stride, n_heads, out);
}
