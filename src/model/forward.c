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

sk_status sk_fwd_buffers_new(const sk_model *m, int max_T, sk_fwd_buffers *buf) {
    memset(buf, 0, sizeof *buf);
    SK_ASSERT(max_T > 0);
    const sk_hparams *hp = &m->hp;
    const size_t T = (size_t)max_T, D = (size_t)hp->dim, F = (size_t)hp->ffn_dim;
    const size_t hd = (size_t)hp->head_dim, H = (size_t)hp->n_heads, KV = (size_t)hp->n_kv_heads;
    const size_t ab = m->be->act_bytes;
    struct {
        void **p;
        size_t n;
    } want[] = {
        {&buf->x, T * D},
        {&buf->h, T * D},
        {&buf->h2, T * D},
        {&buf->a, T * D},
        {&buf->qkv, T * (H + 2 * KV) * hd},
        {&buf->att, T * H * hd},
        {&buf->f1, T * F},
        {&buf->f2, T * F},
        {&buf->onorm, SK_FWD_LOGIT_ROWS * D},
        {&buf->logits, SK_FWD_LOGIT_ROWS * (size_t)hp->n_vocab},
    };
    buf->max_T = max_T;
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
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

/* Llama layer l on the T rows of buf->x. */
static void llama_layer(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv, int l, int T) {
    sk_backend *be = m->be;
    const sk_backend_ops *op = be->ops;
    const sk_hparams *hp = &m->hp;
    const sk_layer_weights *L = &m->layers[l];
    const int D = hp->dim, hd = hp->head_dim, H = hp->n_heads, KV = hp->n_kv_heads;
    const sk_rope_params rp = {hd, hp->rope_dim, hp->rope_theta, hp->rope_pairing};

    op->rmsnorm(be, buf->x, L->attn_norm, hp->norm_eps, T, D, buf->h);
    if (L->wqkv) {
        /* Fused rows [q heads | k heads | v heads]; q and k heads are adjacent, so one rope
         * call rotates both. */
        const int W = (H + 2 * KV) * hd;
        void *q = buf->qkv, *k = act_at(m, q, (size_t)H * hd), *v = act_at(m, k, (size_t)KV * hd);
        op->matmul(be, buf->h, T, L->wqkv, NULL, buf->qkv);
        op->rope(be, q, T, H + KV, W, &rp);
        op->attention(be, kv, l, q, W, k, v, W, H, buf->att);
    } else {
        void *q = buf->qkv;
        void *k = act_at(m, q, (size_t)T * H * hd);
        void *v = act_at(m, k, (size_t)T * KV * hd);
        op->matmul(be, buf->h, T, L->wq, L->bq, q);
        op->matmul(be, buf->h, T, L->wk, L->bk, k);
        op->matmul(be, buf->h, T, L->wv, L->bv, v);
        op->rope(be, q, T, H, H * hd, &rp);
        op->rope(be, k, T, KV, KV * hd, &rp);
        op->attention(be, kv, l, q, H * hd, k, v, KV * hd, H, buf->att);
    }
    matmul_residual(m, buf, buf->att, T, L->wo, L->bo, D);

    op->rmsnorm(be, buf->x, L->ffn_norm, hp->norm_eps, T, D, buf->h);
    if (L->ffn_gate_up) {
        op->matmul_swiglu(be, buf->h, T, L->ffn_gate_up, buf->f1);
    } else {
        op->matmul(be, buf->h, T, L->ffn_gate, NULL, buf->f1);
        op->matmul(be, buf->h, T, L->ffn_up, L->b_up, buf->f2);
        op->swiglu(be, buf->f1, buf->f2, (size_t)T * hp->ffn_dim, buf->f1);
    }
    matmul_residual(m, buf, buf->f1, T, L->ffn_down, L->b_down, D);
}

/* x += Wdown(gelu(in Wup + b)) + b (uses f1, and a when matmul_add is missing). */
static void falcon_mlp(const sk_model *m, sk_fwd_buffers *buf, const sk_layer_weights *L,
                       const void *in, int T) {
    sk_backend *be = m->be;
    be->ops->matmul(be, in, T, L->ffn_up, L->b_up, buf->f1);
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
    op->rope(be, q, T, H + KV, W, &rp); /* q and k heads are adjacent */
    op->attention(be, kv, l, q, W, k, v, W, H, buf->att);

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

/* Final norm and vocabulary projection of rows [first, first + n) (n <= SK_FWD_LOGIT_ROWS) into
 * buf->logits; norms are per row, so a row range normalises on its own. */
static void forward_head(const sk_model *m, sk_fwd_buffers *buf, int first, int n) {
    sk_backend *be = m->be;
    const sk_hparams *hp = &m->hp;
    const void *xr = act_at(m, buf->x, (size_t)first * hp->dim);
    if (hp->arch == SK_ARCH_FALCON)
        be->ops->layernorm(be, xr, m->output_norm, m->output_norm_b, hp->norm_eps, n, hp->dim,
                           buf->onorm);
    else
        be->ops->rmsnorm(be, xr, m->output_norm, hp->norm_eps, n, hp->dim, buf->onorm);
    be->ops->matmul(be, buf->onorm, n, m->output, NULL, buf->logits);
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
    float *host = NULL; /* argmax without the backend op: logits through the host */
    if (!logits && n_out > 0 && !be->ops->argmax) {
        host = malloc(sizeof(float) * (size_t)SK_FWD_LOGIT_ROWS * (size_t)V);
        if (!host) return sk_fail(SK_ERR_NOMEM, "out of memory for logits");
    }
    for (int r = 0; r < n_out;) {
        /* A run of consecutive rows, at most SK_FWD_LOGIT_ROWS. */
        int n = 1;
        while (r + n < n_out && n < SK_FWD_LOGIT_ROWS && out_rows[r + n] == out_rows[r] + n) n++;
        forward_head(m, buf, out_rows[r], n);
        if (logits) {
            be->ops->download_f32(be, buf->logits, logits + (size_t)r * V, (size_t)n * V);
        } else if (be->ops->argmax) {
            be->ops->argmax(be, buf->logits, n, V, argmax + r);
        } else {
            be->ops->download_f32(be, buf->logits, host, (size_t)n * V);
            for (int i = 0; i < n; i++) {
                const float *row = host + (size_t)i * V;
                int32_t best = 0;
                for (int j = 1; j < V; j++)
                    if (row[j] > row[best]) best = j;
                argmax[r + i] = best;
            }
        }
        r += n;
    }
    free(host);
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

sk_status sk_forward_step(const sk_model *m, sk_fwd_buffers *buf, sk_kv_cache *kv,
                          const sk_batch *b, float *logits, sk_fwd_graph *g) {
    sk_backend *be = m->be;
    const sk_backend_ops *op = be->ops;
    SK_ASSERT(b->n_tokens == 1 && logits != NULL);
    if (!op->capture_begin || g->state < 0) return sk_forward(m, buf, kv, b, 0, 1, logits);
    SK_TRY(op->begin(be, b));
    if (g->graph && g->epoch != be->addr_epoch) {
        /* The backend moved a buffer the graph refers to: warm up and capture again. */
        op->graph_free(be, g->graph);
        g->graph = NULL;
        g->state = 0;
    }
    if (!g->graph) {
        if (g->state == 0) { /* first step eager: plans and tables are made outside a capture */
            forward_body(m, buf, kv, 1);
            forward_head(m, buf, 0, 1);
            g->state = 1;
        } else {
            SK_TRY(op->capture_begin(be));
            g->epoch = be->addr_epoch;
            forward_body(m, buf, kv, 1);
            forward_head(m, buf, 0, 1);
            g->graph = op->capture_end(be);
            /* Nothing may move during a capture (it would have been recorded at an old
             * address); the ops never grow buffers after the eager step, asserted here. */
            SK_ASSERT(!g->graph || g->epoch == be->addr_epoch);
            if (!g->graph) {
                /* Nothing ran: log, fall back to eager steps for good, and run this one. */
                SK_LOGW("decode graph capture failed (%s); running steps without graphs",
                        sk_last_error());
                g->state = -1;
                forward_body(m, buf, kv, 1);
                forward_head(m, buf, 0, 1);
            }
        }
    }
    if (g->graph) op->graph_launch(be, g->graph);
    op->download_f32(be, buf->logits, logits, (size_t)m->hp.n_vocab);
    return SK_OK;
}

void sk_fwd_graph_free(const sk_model *m, sk_fwd_graph *g) {
    if (g->graph) m->be->ops->graph_free(m->be, g->graph);
    g->graph = NULL;
    g->state = 0;
}
