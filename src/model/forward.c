/* The forward pass, written once for all architectures in backend ops.
 *
 * Llama:  x = embed; per layer: h = rmsnorm(x); q, k, v = h Wq, h Wk, h Wv; rope(q), rope(k);
 *         o = attention; x += o Wo; h = rmsnorm(x, ffn_norm); x += Wdown(silu(h Wgate) * h Wup).
 *         logits = rmsnorm(x) Wout (Wout = token_embd when tied).
 * Falcon: h = layernorm(x); qkv = h Wqkv (+b) as one matmul; rope on its Q and K parts in place;
 *         a = attention Wo (+b). Parallel attention: MLP input = h (one LayerNorm) or
 *         layernorm(x, attn_norm_2) (two), x += a + m. Sequential: x += a, then MLP input =
 *         layernorm(x, attn_norm_2), x += m. m = Wdown(gelu(in Wup (+b))) (+b).
 *         logits = layernorm(x, with bias) Wout. */
#include "model/model.h"

#include <stdlib.h>
#include <string.h>

/* p advanced by n activations. */
static inline void *act_at(const sk_model *m, void *p, size_t n) {
    return (char *)p + n * m->be->act_bytes;
}

sk_status sk_fwd_buffers_new(const sk_model *m, int max_T, int max_out, sk_fwd_buffers *buf) {
    memset(buf, 0, sizeof *buf);
    SK_ASSERT(max_T > 0 && max_out >= 0);
    if (max_out == 0) max_out = SK_FWD_LOGIT_ROWS;
    if (max_out > max_T) max_out = max_T;
    const sk_hparams *hp = &m->hp;
    const size_t T = (size_t)max_T, D = (size_t)hp->dim, F = (size_t)hp->ffn_dim;
    const size_t hd = (size_t)hp->head_dim, H = (size_t)hp->n_heads, KV = (size_t)hp->n_kv_heads;
    const size_t ab = m->be->act_bytes;
    /* h2 serves Falcon's second LayerNorm only, f2 the up projection of Llama layers whose gate
     * and up are not fused (matmul_swiglu): at thousands of rows per step they would otherwise
     * take gigabytes from the KV pool for nothing. */
    bool unfused = false;
    for (int l = 0; l < hp->n_layers; l++)
        if (hp->arch != SK_ARCH_FALCON && !m->layers[l].ffn_gate_up) unfused = true;
    const size_t n_h2 = hp->arch == SK_ARCH_FALCON ? T * D : 0, n_f2 = unfused ? T * F : 0;
    struct {
        void **p;
        size_t n;
    } want[] = {
        {&buf->x, T * D},
        {&buf->h, T * D},
        {&buf->h2, n_h2},
        {&buf->a, T * D},
        {&buf->qkv, T * (H + 2 * KV) * hd},
        {&buf->att, T * H * hd},
        {&buf->f1, T * F},
        {&buf->f2, n_f2},
        {&buf->onorm, (size_t)max_out * D},
        {&buf->logits, (size_t)max_out * (size_t)hp->n_vocab},
    };
    buf->max_T = max_T;
    buf->max_out = max_out;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        if (want[i].n == 0) continue; /* stays NULL */
        *want[i].p = m->be->ops->alloc(m->be, want[i].n * ab);
        buf->bytes += want[i].n * ab;
        if (!*want[i].p) {
            sk_fwd_buffers_free(m, buf);
            return SK_ERR_NOMEM; /* alloc set the message */
        }
    }
    return SK_OK;
}

void sk_fwd_buffers_free(const sk_model *m, sk_fwd_buffers *buf) {
    void *all[] = {buf->x,  buf->h,  buf->h2,    buf->a,     buf->qkv,
                   buf->att, buf->f1, buf->f2, buf->onorm, buf->logits};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++)
        if (all[i]) m->be->ops->free(m->be, all[i]);
    memset(buf, 0, sizeof *buf);
}

/* x[T, N] += in @ W^T (+ bias): fused when the backend has matmul_add (buf->a otherwise). */
static void matmul_residual(const sk_model *m, sk_fwd_buffers *buf, const void *in, int T,
                            const sk_weight *w, const sk_weight *b, int N) {
    sk_backend *be = m->be;
    if (be->ops->matmul_add) {
        be->ops->matmul_add(be, in, T, w, b, buf->x);
    } else {
        be->ops->matmul(be, in, T, w, b, buf->a);
        be->ops->add(be, buf->x, buf->a, (size_t)T * N);
    }
}

/* RoPE on q (n_heads heads) and k (the cache's KV heads), then attention of layer l: in one
 * backend call where the backend fuses them, else as rope calls (one when q and k are adjacent
 * heads of one row) and the attention op. */
static void rope_attend(const sk_model *m, sk_kv_cache *kv, int l, int T, void *q, int q_stride,
                        void *k, const void *v, int kv_stride, const sk_rope_params *rp,
                        void *out) {
    sk_backend *be = m->be;
    const sk_backend_ops *op = be->ops;
    const int H = m->hp.n_heads, KV = m->hp.n_kv_heads;
    if (op->rope_attention) {
        op->rope_attention(be, kv, l, q, q_stride, k, v, kv_stride, H, rp, out);
        return;
    }
    if ((char *)k == (char *)q + (size_t)H * (size_t)rp->head_dim * be->act_bytes &&
        kv_stride == q_stride) {
        op->rope(be, q, T, H + KV, q_stride, rp);
    } else {
        op->rope(be, q, T, H, q_stride, rp);
        op->rope(be, k, T, KV, kv_stride, rp);
    }
    op->attention(be, kv, l, q, q_stride, k, v, kv_stride, H, out);
}

/* SAKER_SKIP=part,... (timing experiments only: the outputs are garbage): the Llama layer's
 * parts left out of every step, so that a captured step's time without a part, against the full
 * step's, gives what the part costs inside the graph (launch gaps included), which the eager
 * per-op profile (SAKER_PROFILE) cannot. Parts: qkv (norm + the QKV product), attn (RoPE, the
 * cache store and the attention), o, mlp (norm + gate/up + SwiGLU), down. */
enum { SKIP_QKV = 1, SKIP_ATTN = 2, SKIP_O = 4, SKIP_MLP = 8, SKIP_DOWN = 16 };
static int skip_parts(void) {
    static int mask = -1;
    if (mask < 0) {
        mask = 0;
        const char *e = getenv("SAKER_SKIP");
        static const char *names[] = {"qkv", "attn", "o", "mlp", "down"};
        for (int i = 0; e && i < 5; i++) {
            const size_t n = strlen(names[i]);
            for (const char *p = e; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
                if (strncmp(p, names[i], n) == 0 && (p[n] == ',' || p[n] == 0)) mask |= 1 << i;
        }
    }
    return mask;
}

/* Llama layer l on the T rows of buf->x. */
static void llama_layer(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv, int l, int T) {
    sk_backend *be = m->be;
    const sk_backend_ops *op = be->ops;
    const sk_hparams *hp = &m->hp;
    const sk_layer_weights *L = &m->layers[l];
    const int D = hp->dim, hd = hp->head_dim, H = hp->n_heads, KV = hp->n_kv_heads;
    const sk_rope_params rp = {hd, hp->rope_dim, hp->rope_theta, hp->rope_pairing};
    const int skip = skip_parts();

    if (L->wqkv) {
        /* Fused rows [q heads | k heads | v heads]; q and k heads are adjacent, so one rope
         * call rotates both. */
        const int W = (H + 2 * KV) * hd;
        void *q = buf->qkv, *k = act_at(m, q, (size_t)H * hd), *v = act_at(m, k, (size_t)KV * hd);
        if (skip & SKIP_QKV) {
        } else if (op->rmsnorm_matmul) {
            op->rmsnorm_matmul(be, buf->x, L->attn_norm, hp->norm_eps, T, L->wqkv, NULL, buf->h,
                               buf->qkv);
        } else {
            op->rmsnorm(be, buf->x, L->attn_norm, hp->norm_eps, T, D, buf->h);
            op->matmul(be, buf->h, T, L->wqkv, NULL, buf->qkv);
        }
        if (!(skip & SKIP_ATTN)) rope_attend(m, kv, l, T, q, W, k, v, W, &rp, buf->att);
    } else {
        void *q = buf->qkv;
        void *k = act_at(m, q, (size_t)T * H * hd);
        void *v = act_at(m, k, (size_t)T * KV * hd);
        op->rmsnorm(be, buf->x, L->attn_norm, hp->norm_eps, T, D, buf->h);
        op->matmul(be, buf->h, T, L->wq, L->bq, q);
        op->matmul(be, buf->h, T, L->wk, L->bk, k);
        op->matmul(be, buf->h, T, L->wv, L->bv, v);
        rope_attend(m, kv, l, T, q, H * hd, k, v, KV * hd, &rp, buf->att);
    }
    if (!(skip & SKIP_O)) {
        /* the MLP's RMSNorm of x, fused into gate/up, may start in o's epilogue (norm_next) */
        if (op->norm_next && L->ffn_gate_up && op->rmsnorm_matmul_swiglu && !(skip & SKIP_MLP))
            op->norm_next(be, L->ffn_norm, 1);
        matmul_residual(m, buf, buf->att, T, L->wo, L->bo, D);
    }

    if (skip & SKIP_MLP) {
    } else if (L->ffn_gate_up && op->rmsnorm_matmul_swiglu) {
        op->rmsnorm_matmul_swiglu(be, buf->x, L->ffn_norm, hp->norm_eps, T, L->ffn_gate_up,
                                  buf->h, buf->f1);
    } else if (L->ffn_gate_up) {
        op->rmsnorm(be, buf->x, L->ffn_norm, hp->norm_eps, T, D, buf->h);
        op->matmul_swiglu(be, buf->h, T, L->ffn_gate_up, buf->f1);
    } else {
        op->rmsnorm(be, buf->x, L->ffn_norm, hp->norm_eps, T, D, buf->h);
        op->matmul(be, buf->h, T, L->ffn_gate, NULL, buf->f1);
        op->matmul(be, buf->h, T, L->ffn_up, L->b_up, buf->f2);
        op->swiglu(be, buf->f1, buf->f2, (size_t)T * hp->ffn_dim, buf->f1);
    }
    if (skip & SKIP_DOWN) return;
    /* The next layer's first op is the RMSNorm of x fused into its QKV product: a backend may
     * start that norm in this product's epilogue (norm_next; session 15). */
    if (op->norm_next && op->rmsnorm_matmul && l + 1 < hp->n_layers && m->layers[l + 1].wqkv &&
        !(skip & SKIP_QKV))
        op->norm_next(be, m->layers[l + 1].attn_norm, 0);
    matmul_residual(m, buf, buf->f1, T, L->ffn_down, L->b_down, D);
}

/* x += Wdown(gelu(in Wup + b)) + b (uses f1, and a when matmul_add is missing). */
static void falcon_mlp(const sk_model *m, sk_fwd_buffers *buf, const sk_layer_weights *L,
                       const void *in, int T) {
    sk_backend *be = m->be;
    be->ops->matmul(be, in, T, L->ffn_up, L->b_up, buf->f1);
    if (be->ops->gelu_matmul_add) {
        be->ops->gelu_matmul_add(be, buf->f1, T, L->ffn_down, L->b_down, buf->x);
        return;
    }
    be->ops->gelu(be, buf->f1, (size_t)T * m->hp.ffn_dim);
    matmul_residual(m, buf, buf->f1, T, L->ffn_down, L->b_down, m->hp.dim);
}

static void falcon_layer(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv, int l, int T) {
    sk_backend *be = m->be;
    const sk_backend_ops *op = be->ops;
    const sk_hparams *hp = &m->hp;
    const sk_layer_weights *L = &m->layers[l];
    const int D = hp->dim, hd = hp->head_dim, H = hp->n_heads, KV = hp->n_kv_heads;
    const int W = (H + 2 * KV) * hd; /* fused qkv row width */
    const sk_rope_params rp = {hd, hp->rope_dim, hp->rope_theta, hp->rope_pairing};
    void *q = buf->qkv;
    void *k = act_at(m, q, (size_t)H * hd);
    void *v = act_at(m, k, (size_t)KV * hd);

    op->layernorm(be, buf->x, L->attn_norm, L->attn_norm_b, hp->norm_eps, T, D, buf->h);
    op->matmul(be, buf->h, T, L->wqkv, L->bqkv, buf->qkv);
    rope_attend(m, kv, l, T, q, W, k, v, W, &rp, buf->att);

    if (hp->parallel_attn) {
        /* x += a + m. The MLP input (h or h2) is taken from the layer input first, so x can
         * take a before the MLP. */
        const void *in = buf->h;
        if (hp->n_ln_per_layer == 2) {
            op->layernorm(be, buf->x, L->attn_norm_2, L->attn_norm_2_b, hp->norm_eps, T, D,
                          buf->h2);
            in = buf->h2;
        }
        matmul_residual(m, buf, buf->att, T, L->wo, L->bo, D);
        falcon_mlp(m, buf, L, in, T);
    } else {
        matmul_residual(m, buf, buf->att, T, L->wo, L->bo, D);
        op->layernorm(be, buf->x, L->attn_norm_2, L->attn_norm_2_b, hp->norm_eps, T, D, buf->h2);
        falcon_mlp(m, buf, L, buf->h2, T);
    }
}

/* Device work of a forward pass: embedding and every layer over the current batch's T rows. */
static void forward_body(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv, int T) {
    const sk_hparams *hp = &m->hp;
    m->be->ops->embed(m->be, m->tok_embd, buf->x);
    for (int l = 0; l < hp->n_layers; l++) {
        if (hp->arch == SK_ARCH_FALCON)
            falcon_layer(m, buf, kv, l, T);
        else
            llama_layer(m, buf, kv, l, T);
    }
}

/* Final norm of rows [first, first + n) of x into rows [at, at + n) of onorm (norms are per
 * row, so any rows normalise on their own). */
static void head_norm(const sk_model *m, sk_fwd_buffers *buf, int first, int n, int at) {
    sk_backend *be = m->be;
    const sk_hparams *hp = &m->hp;
    SK_ASSERT(at >= 0 && n > 0 && at + n <= buf->max_out);
    const void *xr = act_at(m, buf->x, (size_t)first * hp->dim);
    void *o = act_at(m, buf->onorm, (size_t)at * hp->dim);
    if (hp->arch == SK_ARCH_FALCON)
        be->ops->layernorm(be, xr, m->output_norm, m->output_norm_b, hp->norm_eps, n, hp->dim, o);
    else
        be->ops->rmsnorm(be, xr, m->output_norm, hp->norm_eps, n, hp->dim, o);
}

/* logits[0, n) = onorm[0, n) Wout^T: one matmul, so the output weight is read once per step
 * rather than once per run of rows. */
static void head_proj(const sk_model *m, sk_fwd_buffers *buf, int n) {
    m->be->ops->matmul(m->be, buf->onorm, n, m->output, NULL, buf->logits);
}

/* Rows [0, n) of buf->logits to the host: their logits (logits != NULL, [n, V]), or tokens
 * (argmax [n]): drawn by the backend's sample op with sr [n] when given, else the argmax
 * (through the backend's op when it has one, else through host). */
static sk_status head_out(const sk_model *m, sk_fwd_buffers *buf, int n, float *logits,
                          int32_t *argmax, const sk_sample_row *sr) {
    sk_backend *be = m->be;
    const int V = m->hp.n_vocab;
    if (logits) {
        be->ops->download_f32(be, buf->logits, logits, (size_t)n * V);
    } else if (sr && be->ops->sample) {
        be->ops->sample(be, buf->logits, n, V, sr, argmax);
    } else if (be->ops->argmax) {
        be->ops->argmax(be, buf->logits, n, V, argmax);
    } else {
        float *host = malloc(sizeof(float) * (size_t)n * (size_t)V);
        if (!host) return sk_fail(SK_ERR_NOMEM, "out of memory for logits");
        be->ops->download_f32(be, buf->logits, host, (size_t)n * V);
        for (int i = 0; i < n; i++) {
            const float *row = host + (size_t)i * V;
            int32_t best = 0;
            for (int j = 1; j < V; j++)
                if (row[j] > row[best]) best = j;
            argmax[i] = best;
        }
        free(host);
    }
    return SK_OK;
}

sk_status sk_forward_paged(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv,
                           const sk_batch *b, const sk_page_tables *pt, const int32_t *out_rows,
                           int n_out, float *logits, int32_t *argmax) {
    sk_backend *be = m->be;
    const int T = b->n_tokens, V = m->hp.n_vocab;
    SK_ASSERT(T > 0 && T <= buf->max_T);
    SK_ASSERT(n_out >= 0 && (n_out == 0 || out_rows != NULL));
    SK_ASSERT(n_out == 0 || logits != NULL || argmax != NULL);
    for (int i = 0; i < n_out; i++) SK_ASSERT(out_rows[i] >= 0 && out_rows[i] < T);

    if (pt) {
        if (!be->ops->begin_paged)
            return sk_fail(SK_ERR_UNSUPPORTED, "%s backend has no paged KV cache", be->name);
        SK_TRY(be->ops->begin_paged(be, b, pt));
    } else {
        SK_TRY(be->ops->begin(be, b));
    }
    forward_body(m, buf, kv, T);
    for (int r = 0; r < n_out;) {
        /* Up to max_out rows: each run of consecutive rows normed into onorm, then one
         * projection for them all. */
        int k = 0;
        while (r + k < n_out && k < buf->max_out) {
            int n = 1;
            while (r + k + n < n_out && k + n < buf->max_out &&
                   out_rows[r + k + n] == out_rows[r + k] + n)
                n++;
            head_norm(m, buf, out_rows[r + k], n, k);
            k += n;
        }
        head_proj(m, buf, k);
        SK_TRY(head_out(m, buf, k, logits ? logits + (size_t)r * V : NULL,
                        logits ? NULL : argmax + r,
                        buf->sample_rows && !logits ? buf->sample_rows + r : NULL));
        r += k;
    }
    return SK_OK;
}

sk_status sk_forward(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv, const sk_batch *b,
                     int out_first, int n_out, float *logits) {
    SK_ASSERT(n_out == 0 || logits != NULL);
    int32_t rows_s[256] = {0}, *rows = n_out <= 256 ? rows_s : malloc(sizeof(int32_t) * (size_t)n_out);
    if (!rows) return sk_fail(SK_ERR_NOMEM, "out of memory for %d output rows", n_out);
    for (int i = 0; i < n_out; i++) rows[i] = out_first + i;
    sk_status s = sk_forward_paged(m, buf, kv, b, NULL, rows, n_out, logits, NULL);
    if (rows != rows_s) free(rows);
    return s;
}

/* Body over T rows and head over rows [0, n_head) of the current batch, eagerly. */
static void run_eager(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv, int T,
                      int n_head) {
    forward_body(m, buf, kv, T);
    head_norm(m, buf, 0, n_head, 0);
    head_proj(m, buf, n_head);
}

/* The same through graph g (g->state >= 0; begin done): eager on its first step (plans, tables
 * and buffers are made outside a capture), captured on the second, replayed after; warmed up
 * and captured again when the backend's addr_epoch moved. A failed capture turns g off for good
 * (state -1) and runs the step eagerly. */
static void run_graphed(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv,
                        sk_fwd_graph *g, int T, int n_head) {
    sk_backend *be = m->be;
    const sk_backend_ops *op = be->ops;
    SK_ASSERT(g->state >= 0);
    if (g->graph && g->epoch != be->addr_epoch) {
        /* The backend moved a buffer the graph refers to. */
        op->graph_free(be, g->graph);
        g->graph = NULL;
        g->state = 0;
    }
    if (!g->graph) {
        if (g->state == 0) {
            run_eager(m, buf, kv, T, n_head);
            g->state = 1;
            return;
        }
        if (op->capture_begin(be) == SK_OK) {
            g->epoch = be->addr_epoch;
            run_eager(m, buf, kv, T, n_head); /* recorded, not run */
            g->graph = op->capture_end(be);
            /* Nothing may move during a capture (it would have been recorded at an old
             * address); the ops never grow buffers after the eager step, asserted here. */
            SK_ASSERT(!g->graph || g->epoch == be->addr_epoch);
        }
        if (!g->graph) {
            /* Nothing ran: log, fall back to eager steps for good, and run this one. */
            SK_LOGW("graph capture of a %d-row step failed (%s); running such steps without "
                    "graphs", T, sk_last_error());
            g->state = -1;
            run_eager(m, buf, kv, T, n_head);
            return;
        }
    }
    op->graph_launch(be, g->graph);
}

sk_status sk_forward_step(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv,
                          const sk_batch *b, float *logits, sk_fwd_graph *g) {
    sk_backend *be = m->be;
    const sk_backend_ops *op = be->ops;
    SK_ASSERT(b->n_tokens == 1 && logits != NULL);
    if (!op->capture_begin || g->state < 0) return sk_forward(m, buf, kv, b, 0, 1, logits);
    SK_TRY(op->begin(be, b));
    run_graphed(m, buf, kv, g, 1, 1);
    op->download_f32(be, buf->logits, logits, (size_t)m->hp.n_vocab);
    return SK_OK;
}

void sk_fwd_graph_free(const sk_model *m, sk_fwd_graph *g) {
    if (g->graph) m->be->ops->graph_free(m->be, g->graph);
    g->graph = NULL;
    g->state = 0;
}

/* ---- batched decode steps ------------------------------------------------------------------ */

void sk_fwd_decode_init(sk_fwd_decode *d, int32_t scratch_page) {
    memset(d, 0, sizeof *d);
    d->scratch_page = scratch_page;
    const char *ng = getenv("SAKER_NO_GRAPHS");
    d->no_graphs = ng && *ng && strcmp(ng, "0") != 0;
}

void sk_fwd_decode_free(const sk_model *m, sk_fwd_decode *d) {
    for (int i = 0; i < SK_FWD_DECODE_BUCKETS; i++) sk_fwd_graph_free(m, &d->g[i]);
    free(d->tok);
    free(d->pos);
    free(d->seq);
    free(d->rows);
    free(d->indptr);
    free(d->ids);
    memset(d, 0, sizeof *d);
}

/* Session 11: multiples of 16 from 33 to 1,024 rows (were 32). Inside the 70B INT4 batch-139 step
 * (the 128/2048 point) the products ran padded to 160 rows, where the W4 tiles cost 3-7% more
 * than at 144 (dev_gemm_w4 bn: gate/up 279 against 261 us, o 51.4 / 49.1, down 129.6 / 125.5).
 * SAKER_BUCKET_STEP=32 restores the old steps (A/B runs). */
static int bucket_step(void) {
    static int g = 0;
    if (!g) {
        const char *e = getenv("SAKER_BUCKET_STEP");
        g = e && strcmp(e, "32") == 0 ? 32 : 16;
    }
    return g;
}

/* Session 18: 24 rows is a bucket (17..24 rows were padded to 32). The INT4 decode GEMV past 16
 * rows (w4_tx.cuh) has a row bound of 24 (its cost follows the bound, not the rows: 70B layer
 * 239 against 290 us at 24 rows, dev_gemv_w4 tm), and with 17..24 rows padded to 32 the engine's
 * 70B step was 27.0 ms at every batch from 17 to 32. SAKER_BUCKET_24=0 restores the powers of two
 * (A/B runs). */
static bool bucket_24(void) {
    static int on = -1;
    if (on < 0) {
        const char *e = getenv("SAKER_BUCKET_24");
        on = !(e && strcmp(e, "0") == 0);
    }
    return on;
}

int sk_fwd_decode_bucket(int n, int *index) {
    SK_ASSERT(n >= 1);
    const int g = bucket_step();
    int b, i;
    if (n <= 16 || (n > 24 && n <= 32) || (n <= 32 && !bucket_24())) {
        /* 1, 2, 4, 8, 16 (slots 0..4), 32 (slot 6) */
        b = 1, i = 0;
        while (b < n) b *= 2, i++;
        if (b == 32) i = 6;
    } else if (n <= 24) { /* 24: slot 5 */
        b = 24, i = 5;
    } else if (n <= 1024) { /* 48, 64, ..., 1024: slots 7..68 (step 32: 64, ..., 1024, 7..37) */
        b = (n + g - 1) / g * g;
        i = 7 + (b - 32) / g - 1;
    } else { /* 1088, 1152, ...: slots from 69 (step 32: 38) to SK_FWD_DECODE_BUCKETS - 1 */
        b = (n + 63) / 64 * 64;
        i = 7 + (1024 - 32) / g + (b - 1088) / 64;
    }
    if (index) *index = i < SK_FWD_DECODE_BUCKETS ? i : -1;
    return b;
}

sk_status sk_forward_decode(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv,
                            sk_fwd_decode *d, const sk_batch *b, const sk_page_tables *pt,
                            float *logits, int32_t *argmax) {
    sk_backend *be = m->be;
    const int n = b->n_tokens;
    SK_ASSERT(n >= 1 && pt && (logits || argmax));
    int idx;
    const int B = sk_fwd_decode_bucket(n, &idx);
    if (B > d->cap) {
        const size_t cap = (size_t)(B > 2 * d->cap ? B : 2 * d->cap);
        d->tok = sk_xrealloc(d->tok, sizeof(int32_t) * cap);
        d->pos = sk_xrealloc(d->pos, sizeof(int32_t) * cap);
        d->seq = sk_xrealloc(d->seq, sizeof(int32_t) * cap);
        d->rows = sk_xrealloc(d->rows, sizeof(int32_t) * cap);
        d->cap = (int)cap;
    }
    for (int i = 0; i < n; i++) d->rows[i] = i;
    if (B > buf->max_T || B > buf->max_out)
        return sk_forward_paged(m, buf, kv, b, pt, d->rows, n, logits, argmax);

    /* The padded batch: rows n..B-1 are sequences n_seqs.. of one page each, the scratch page,
     * at positions j % page_size (distinct slots while the padding fits a page), token 0. */
    const int pad = B - n, S = pt->n_seqs + pad, n_ids = pt->indptr[pt->n_seqs] + pad;
    if (S + 1 > d->seqs_cap) {
        d->seqs_cap = S + 1 > 2 * d->seqs_cap ? S + 1 : 2 * d->seqs_cap;
        d->indptr = sk_xrealloc(d->indptr, sizeof(int32_t) * (size_t)d->seqs_cap);
    }
    if (n_ids > d->ids_cap) {
        d->ids_cap = n_ids > 2 * d->ids_cap ? n_ids : 2 * d->ids_cap;
        d->ids = sk_xrealloc(d->ids, sizeof(int32_t) * (size_t)d->ids_cap);
    }
    memcpy(d->tok, b->tokens, sizeof(int32_t) * (size_t)n);
    memcpy(d->pos, b->pos, sizeof(int32_t) * (size_t)n);
    memcpy(d->seq, b->seq, sizeof(int32_t) * (size_t)n);
    memcpy(d->indptr, pt->indptr, sizeof(int32_t) * (size_t)(pt->n_seqs + 1));
    memcpy(d->ids, pt->ids, sizeof(int32_t) * (size_t)pt->indptr[pt->n_seqs]);
    const int ps = be->kv_page_size > 0 ? be->kv_page_size : 1;
    for (int j = 0; j < pad; j++) {
        d->tok[n + j] = 0;
        d->pos[n + j] = j % ps;
        d->seq[n + j] = pt->n_seqs + j;
        d->indptr[pt->n_seqs + j + 1] = d->indptr[pt->n_seqs + j] + 1;
        d->ids[d->indptr[pt->n_seqs + j]] = d->scratch_page;
    }
    const sk_batch pb = {B, d->tok, d->pos, d->seq};
    const sk_page_tables ppt = {S, d->indptr, d->ids};
    if (!be->ops->begin_paged)
        return sk_fail(SK_ERR_UNSUPPORTED, "%s backend has no paged KV cache", be->name);
    SK_TRY(be->ops->begin_paged(be, &pb, &ppt));
    sk_fwd_graph *g = idx >= 0 ? &d->g[idx] : NULL;
    if (!be->ops->capture_begin || d->no_graphs || !g || g->state < 0)
        run_eager(m, buf, kv, B, B);
    else
        run_graphed(m, buf, kv, g, B, B);
    return head_out(m, buf, n, logits, argmax, logits ? NULL : buf->sample_rows);
}
