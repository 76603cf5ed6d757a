/* RTN and AWQ quantization of a model file, on the CPU in fp32 (the reference).
 *
 * AWQ (Lin et al. 2023; the procedure of AutoAWQ's quantizer, re-derived from its description):
 * layer by layer, the calibration tokens' layer inputs X (fp32, [T, D]) are run through the
 * layer with its original weights, keeping the input of every Linear and the outputs of the
 * blocks the search inspects; X for the next layer is that layer's output (so memory stays one
 * layer's activations). Then, per group of Linears that read one input:
 *   Llama:  q/k/v after attn_norm (inspect: the attention block's output, o included);
 *           o after v (only when v's rows match o's columns, i.e. no GQA; inspect: o's output);
 *           gate/up after ffn_norm (inspect: the MLP's output); down after up (inspect: down).
 *   Falcon: one LayerNorm feeding both (7B): qkv and up (inspect: attention + MLP output);
 *           two (40B/180B, or sequential): qkv after attn_norm, up after attn_norm_2 (inspect:
 *           the Linear's own output). o and down are not scaled (GELU is not linear, and MQA/GQA
 *           v rows do not match o's columns), as in AutoAWQ.
 * the scale s = mean|x|^alpha per input channel, normalised by sqrt(max(s) min(s)), is searched
 * over alpha = i / n_grid, i < n_grid, minimising the mean squared error of the inspected output
 * with the group's weights W diag(s) quantized (and divided by s back); alpha = 0 is RTN. The best
 * s is folded: W <- W diag(s), the preceding norm's weight (and bias) or Linear's rows (and bias)
 * <- / s, and the cached inputs <- / s. Then, for every Linear except those producing q and k
 * (their error is not measured by scores, as AutoAWQ skips them), a clipping threshold per
 * (output row, group) is searched among max|w| (1 - i/20), i < 10, minimising the squared error
 * of the group's partial dot products over up to 512 of the cached inputs. Last, every Linear is
 * quantized with its clip. The next layer's input comes from the original-weight forward.
 *
 * Devices. The search runs where p->device says: on the CPU backend (the fp32 reference) or on
 * CUDA. Either way the large arrays (activations, the fp32 Linears, fake-quantized copies,
 * clipping thresholds) live in the backend's memory and are touched only through backend ops
 * (norms, RoPE, attention, add, SwiGLU, GELU) and the quantizer's op table (qdev.h: fp32
 * matmul, fake quantization, reductions, scale folds, the clipping search); the host keeps the
 * norm weights, the scale vectors and the search's bookkeeping, and packs each layer's
 * Linears (downloaded) after its search. CUDA runs the backend in fp16 (the KV cache of the
 * attention op, whose arithmetic is fp32) and the matmuls in fp32 (or TF32 with p->tf32). */
#include "quant/quant.h"

#include "backend/backend.h"
#include "core/status.h"
#include "quant/qdev.h"

#include <math.h>
#include <omp.h>
#include <string.h>

#define CLIP_TOKENS SK_QCLIP_TOKENS
#define CLIP_GRID SK_QCLIP_GRID
#define CLIP_STEPS SK_QCLIP_STEPS /* max_shrink 0.5 of CLIP_GRID */
#define MM_CHUNK 256  /* rows per matmul call: the x chunk stays in cache */

static sk_quant_stats g_stats;
const sk_quant_stats *sk_quant_last_stats(void) { return &g_stats; }

void sk_quant_params_default(sk_quant_params *p) {
    memset(p, 0, sizeof *p);
    p->method = SK_QUANT_AWQ;
    p->bits = 4;
    p->group = 128;
    p->calib_samples = 32;
    p->calib_len = 256;
    p->n_grid = 20;
    p->device = SK_QUANT_DEV_CPU;
}

/* A Linear in fp32: w [N, K], b [N] or NULL; clip [N, K/g] after the search (or NULL). All three
 * in the search's memory (dalloc) during AWQ, host memory for RTN. */
typedef struct lin {
    float *w, *b, *clip;
    int64_t N, K;
    bool quant; /* K is a multiple of the group: quantized; else kept f16 */
} lin;

/* One layer in fp32 (see model_file.h for names and shapes). Norm weights and biases: host. */
typedef struct layer32 {
    float *attn_norm, *attn_norm_b, *attn_norm_2, *attn_norm_2_b, *ffn_norm;
    lin q, k, v, qkv, o, gate, up, down;
} layer32;

typedef struct qctx {
    const sk_quant_params *p;
    const sk_model_file *src;
    sk_hparams hp;
    int g;
    sk_backend *be;
    const sk_backend_ops *op;
    sk_kv_cache *kv;
    int T; /* calibration tokens: n_samples x len */
    sk_qdev *qd;  /* the search's array ops on be */
    bool on_dev;  /* the search's arrays are backend memory (AWQ); else plain host arrays (RTN) */
    int layer;    /* the layer being searched, and its scale searches so far (stats) */
    int n_search;
} qctx;

/* ---- fp32 tensors -------------------------------------------------------------------------- */

static float *falloc(size_t n) { return malloc((n ? n : 1) * sizeof(float)); }

/* n floats in the search's memory (backend memory for AWQ); NULL when out of memory. */
static float *dalloc(qctx *c, size_t n) {
    return c->on_dev ? c->op->alloc(c->be, (n ? n : 1) * sizeof(float)) : falloc(n);
}

static void dfree(qctx *c, void *p) {
    if (!p) return;
    if (c->on_dev) c->op->free(c->be, p);
    else free(p);
}

/* Moves host array *p (n floats from falloc) into the search's memory; on failure frees it and
 * sets *p to NULL. */
static sk_status to_dev(qctx *c, float **p, size_t n) {
    if (!c->on_dev || !*p) return SK_OK;
    float *d = c->op->alloc(c->be, (n ? n : 1) * sizeof(float));
    if (!d) {
        free(*p);
        *p = NULL;
        return SK_ERR_NOMEM;
    }
    c->op->upload_f32(c->be, d, *p, n);
    free(*p);
    *p = d;
    return SK_OK;
}

/* Array p (n floats of the search's memory) readable on the host: p itself, or a copy put in
 * *own (free it) when p is backend memory. */
static const float *host_view(qctx *c, const float *p, size_t n, float **own) {
    *own = NULL;
    if (!c->on_dev || !p) return p;
    *own = falloc(n);
    SK_ASSERT(*own != NULL);
    c->op->download_f32(c->be, p, *own, n);
    return *own;
}

/* A host vector s[n] copied into the search's memory (or s itself on the host). */
static float *vec_dev(qctx *c, const float *s, size_t n) {
    if (!c->on_dev) return (float *)s;
    float *d = dalloc(c, n);
    SK_ASSERT(d != NULL);
    c->op->upload_f32(c->be, d, s, n);
    return d;
}

static void vec_dev_free(qctx *c, const float *s, float *d) {
    if (d != s) dfree(c, d);
}

/* The tensor `name` as a new fp32 array of n elements; NULL with the error set when missing or
 * of another size. */
static float *deq(const sk_model_file *mf, const char *name, int64_t n, sk_status *s) {
    const sk_tensor *t = sk_mf_find(mf, name);
    if (!t) {
        *s = sk_fail(SK_ERR_FORMAT, "%s: tensor '%s' is missing", mf->path, name);
        return NULL;
    }
    if (sk_tensor_nelem(t) != n || t->type == SK_I32 || (unsigned)t->type >= SK_DTYPE_COUNT) {
        *s = sk_fail(SK_ERR_FORMAT, "%s: tensor '%s' has %lld elements of %s, expected %lld fp values",
                     mf->path, name, (long long)sk_tensor_nelem(t), sk_dtype_name(t->type),
                     (long long)n);
        return NULL;
    }
    float *d = falloc((size_t)n);
    if (!d) {
        *s = sk_fail(SK_ERR_NOMEM, "out of memory for tensor '%s'", name);
        return NULL;
    }
    const int64_t cols = t->shape[t->n_dims - 1], rows = n / cols;
    const size_t rb = sk_dtype_row_bytes(t->type, cols);
    for (int64_t r = 0; r < rows; r++)
        sk_dequant_row(t->type, (const uint8_t *)t->data + (size_t)r * rb, d + r * cols, cols);
    return d;
}

static sk_status load_lin(const sk_model_file *mf, int l, const char *nm, int64_t N, int64_t K,
                          bool bias, lin *L) {
    char name[SK_NAME_MAX];
    sk_status s = SK_OK;
    L->N = N;
    L->K = K;
    snprintf(name, sizeof name, "blk.%d.%s.weight", l, nm);
    if (!(L->w = deq(mf, name, N * K, &s))) return s;
    snprintf(name, sizeof name, "blk.%d.%s.bias", l, nm);
    if (bias && sk_mf_find(mf, name) && !(L->b = deq(mf, name, N, &s))) return s;
    return SK_OK;
}

static void lin_free(qctx *c, lin *L) {
    dfree(c, L->w);
    dfree(c, L->b);
    dfree(c, L->clip);
    memset(L, 0, sizeof *L);
}

static void layer_free(qctx *c, layer32 *y) {
    free(y->attn_norm), free(y->attn_norm_b), free(y->attn_norm_2), free(y->attn_norm_2_b);
    free(y->ffn_norm);
    lin *all[] = {&y->q, &y->k, &y->v, &y->qkv, &y->o, &y->gate, &y->up, &y->down};
    for (size_t i = 0; i < sizeof all / sizeof *all; i++) lin_free(c, all[i]);
    memset(y, 0, sizeof *y);
}

/* GGUF / llama2.c Llama q and k rows rotate adjacent pairs (2i, 2i+1); HF's rotate halves
 * (i, i + hd/2). Row 2i + j of a head moves to row j hd/2 + i: the same scores with HALVES. */
static void permute_halves(float *w, int64_t rows, int64_t cols, int hd) {
    float *tmp = falloc((size_t)hd * (size_t)cols);
    SK_ASSERT(tmp != NULL);
    for (int64_t h = 0; h < rows / hd; h++) {
        float *head = w + h * hd * cols;
        for (int r = 0; r < hd; r++) {
            int i = r / 2, j = r % 2;
            memcpy(tmp + (size_t)(j * (hd / 2) + i) * cols, head + (size_t)r * cols,
                   sizeof(float) * (size_t)cols);
        }
        memcpy(head, tmp, sizeof(float) * (size_t)hd * (size_t)cols);
    }
    free(tmp);
}

/* Layer l of the source in fp32 host arrays (q/k rows in HALVES order). */
static sk_status load_layer_host(qctx *c, int l, layer32 *y) {
    const sk_model_file *mf = c->src;
    const sk_hparams *hp = &c->hp;
    const int64_t D = hp->dim, F = hp->ffn_dim, hd = hp->head_dim;
    const int64_t qd = hp->n_heads * hd, kvd = hp->n_kv_heads * hd;
    char name[SK_NAME_MAX];
    sk_status s = SK_OK;
    memset(y, 0, sizeof *y);
#define VEC(field, fmt)                                                                            \
    do {                                                                                           \
        snprintf(name, sizeof name, fmt, l);                                                       \
        if (!(y->field = deq(mf, name, D, &s))) return s;                                          \
    } while (0)
    VEC(attn_norm, "blk.%d.attn_norm.weight");
    const bool bias = hp->linear_bias;
    if (hp->arch == SK_ARCH_FALCON) {
        VEC(attn_norm_b, "blk.%d.attn_norm.bias");
        snprintf(name, sizeof name, "blk.%d.attn_norm_2.weight", l);
        if (sk_mf_find(mf, name)) {
            VEC(attn_norm_2, "blk.%d.attn_norm_2.weight");
            VEC(attn_norm_2_b, "blk.%d.attn_norm_2.bias");
        }
        SK_TRY(load_lin(mf, l, "attn_qkv", qd + 2 * kvd, D, bias, &y->qkv));
    } else {
        VEC(ffn_norm, "blk.%d.ffn_norm.weight");
        SK_TRY(load_lin(mf, l, "attn_q", qd, D, true, &y->q));
        SK_TRY(load_lin(mf, l, "attn_k", kvd, D, true, &y->k));
        SK_TRY(load_lin(mf, l, "attn_v", kvd, D, true, &y->v));
        SK_TRY(load_lin(mf, l, "ffn_gate", F, D, true, &y->gate));
        if (c->src->hp.rope_pairing == SK_ROPE_ADJACENT) {
            permute_halves(y->q.w, qd, D, (int)hd);
            permute_halves(y->k.w, kvd, D, (int)hd);
            if (y->q.b) permute_halves(y->q.b, qd, 1, (int)hd);
            if (y->k.b) permute_halves(y->k.b, kvd, 1, (int)hd);
        }
    }
#undef VEC
    SK_TRY(load_lin(mf, l, "attn_output", D, qd, bias || hp->arch == SK_ARCH_LLAMA, &y->o));
    SK_TRY(load_lin(mf, l, "ffn_up", F, D, bias || hp->arch == SK_ARCH_LLAMA, &y->up));
    SK_TRY(load_lin(mf, l, "ffn_down", D, F, bias || hp->arch == SK_ARCH_LLAMA, &y->down));
    return SK_OK;
}

/* Layer l with its Linears in the search's memory. On failure y holds nothing (layer_free is
 * still fine). */
static sk_status load_layer(qctx *c, int l, layer32 *y) {
    lin *all[] = {&y->q, &y->k, &y->v, &y->qkv, &y->o, &y->gate, &y->up, &y->down};
    const size_t n_all = sizeof all / sizeof *all;
    sk_status s = load_layer_host(c, l, y);
    if (s != SK_OK) { /* everything still on the host */
        free(y->attn_norm), free(y->attn_norm_b), free(y->attn_norm_2), free(y->attn_norm_2_b);
        free(y->ffn_norm);
        for (size_t i = 0; i < n_all; i++) free(all[i]->w), free(all[i]->b);
        memset(y, 0, sizeof *y);
        return s;
    }
    for (size_t i = 0; i < n_all; i++) {
        lin *L = all[i];
        L->quant = L->w && L->K % c->g == 0 && L->N % 8 == 0;
        if (to_dev(c, &L->w, (size_t)(L->N * L->K)) != SK_OK) s = SK_ERR_NOMEM;
        if (to_dev(c, &L->b, (size_t)L->N) != SK_OK) s = SK_ERR_NOMEM;
    }
    if (s != SK_OK) { /* every pointer is now NULL or backend memory */
        layer_free(c, y);
        return sk_fail(SK_ERR_NOMEM, "quantize: out of %s memory for layer %d", c->be->name, l);
    }
    return SK_OK;
}

/* ---- backend ops on fp32 host arrays ---------------------------------------------------- */

static sk_weight *wt(qctx *c, const float *data, int64_t rows, int64_t cols) {
    sk_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "quant");
    t.type = SK_F32;
    t.n_dims = rows > 0 ? 2 : 1;
    t.shape[0] = rows > 0 ? rows : cols;
    t.shape[1] = cols;
    t.data = data;
    t.nbytes = sizeof(float) * (size_t)(rows > 0 ? rows : 1) * (size_t)cols;
    sk_weight *w = NULL;
    SK_ASSERT(c->op->weight_load(c->be, &t, &w) == SK_OK);
    return w;
}

static void mm_lin(qctx *c, const float *x, const lin *L, float *out) {
    c->qd->ops->matmul(c->qd, x, c->T, L->w, L->b, L->N, L->K, out);
}

static void norm(qctx *c, const float *x, const float *w, const float *b, float *out) {
    const int T = c->T, D = c->hp.dim;
    sk_weight *W = wt(c, w, 0, D);
    if (c->hp.arch == SK_ARCH_FALCON) {
        sk_weight *B = wt(c, b, 0, D);
        c->op->layernorm(c->be, x, W, B, c->hp.norm_eps, T, D, out);
        c->op->weight_free(c->be, B);
    } else {
        c->op->rmsnorm(c->be, x, W, c->hp.norm_eps, T, D, out);
    }
    c->op->weight_free(c->be, W);
}

/* Scratch of one layer's forward. */
typedef struct acts {
    float *qkv;  /* [T, (H + 2KV) hd] */
    float *f1;   /* [T, F] */
    float *tmp;  /* [T, max(D, F)] */
} acts;

/* att [T, H hd] = attention of the normed input h with the given q/k/v (or fused qkv) weights. */
static void attn(qctx *c, const layer32 *y, const lin *q, const lin *k, const lin *v,
                 const lin *qkv, const float *h, acts *a, float *att) {
    const sk_hparams *hp = &c->hp;
    const int T = c->T, H = hp->n_heads, KV = hp->n_kv_heads, hd = hp->head_dim;
    const sk_rope_params rp = {hd, hp->rope_dim, hp->rope_theta, SK_ROPE_HALVES};
    if (hp->arch == SK_ARCH_FALCON) {
        const int W = (H + 2 * KV) * hd;
        mm_lin(c, h, qkv, a->qkv);
        c->op->rope(c->be, a->qkv, T, H, W, &rp);
        c->op->rope(c->be, a->qkv + (size_t)H * hd, T, KV, W, &rp);
        c->op->attention(c->be, c->kv, 0, a->qkv, W, a->qkv + (size_t)H * hd,
                         a->qkv + (size_t)(H + KV) * hd, W, H, att);
    } else {
        float *qb = a->qkv, *kb = qb + (size_t)T * H * hd, *vb = kb + (size_t)T * KV * hd;
        mm_lin(c, h, q, qb);
        mm_lin(c, h, k, kb);
        mm_lin(c, h, v, vb);
        c->op->rope(c->be, qb, T, H, H * hd, &rp);
        c->op->rope(c->be, kb, T, KV, KV * hd, &rp);
        c->op->attention(c->be, c->kv, 0, qb, H * hd, kb, vb, KV * hd, H, att);
    }
    (void)y;
}

/* MLP output m [T, D] of input in [T, D] with the given gate (Llama) / up / down. f: the down
 * input [T, F] (filled). */
static void mlp(qctx *c, const lin *gate, const lin *up, const lin *down, const float *in,
                acts *a, float *f, float *m) {
    const size_t n = (size_t)c->T * (size_t)c->hp.ffn_dim;
    if (c->hp.arch == SK_ARCH_FALCON) {
        mm_lin(c, in, up, f);
        c->op->gelu(c->be, f, n);
    } else {
        mm_lin(c, in, gate, a->f1);
        mm_lin(c, in, up, f);
        c->op->swiglu(c->be, a->f1, f, n, f);
    }
    mm_lin(c, f, down, m);
}

/* The inputs of every Linear and the block outputs of one layer's forward. */
typedef struct feats {
    float *h;     /* [T, D] attention input (normed) */
    float *att;   /* [T, H hd] o's input */
    float *h2;    /* [T, D] MLP input (normed; Falcon with one LayerNorm: == h, not allocated) */
    float *f;     /* [T, F] down's input */
    float *a_out; /* [T, D] attention block output (after o) */
    float *m_out; /* [T, D] MLP output (after down) */
} feats;

/* Runs layer y on x [T, D] into out [T, D] (may not alias x), filling fe. */
static void layer_fwd(qctx *c, const layer32 *y, const float *x, feats *fe, acts *a, float *out) {
    const sk_hparams *hp = &c->hp;
    const size_t TD = (size_t)c->T * (size_t)hp->dim;
    norm(c, x, y->attn_norm, y->attn_norm_b, fe->h);
    attn(c, y, &y->q, &y->k, &y->v, &y->qkv, fe->h, a, fe->att);
    mm_lin(c, fe->att, &y->o, fe->a_out);
    c->qd->ops->copy(c->qd, out, x, TD);
    c->op->add(c->be, out, fe->a_out, TD);
    const float *in;
    if (hp->arch == SK_ARCH_LLAMA) {
        norm(c, out, y->ffn_norm, NULL, fe->h2);
        in = fe->h2;
    } else if (hp->parallel_attn) {
        if (y->attn_norm_2) norm(c, x, y->attn_norm_2, y->attn_norm_2_b, fe->h2);
        in = y->attn_norm_2 ? fe->h2 : fe->h;
    } else {
        norm(c, out, y->attn_norm_2, y->attn_norm_2_b, fe->h2);
        in = fe->h2;
    }
    mlp(c, &y->gate, &y->up, &y->down, in, a, fe->f, fe->m_out);
    c->op->add(c->be, out, fe->m_out, TD);
}

/* ---- the CPU's qdev ops (qdev.h): the fp32 reference, OpenMP over rows -------------------- */

/* out[T, N] = x[T, K] w^T (+ b), w [N, K], through the backend's matmul on fp32 weights. */
static void cpu_matmul(sk_qdev *d, const float *x, int T, const float *w, const float *b,
                       int64_t N, int64_t K, float *out) {
    qctx tmp = {.be = d->be, .op = d->be->ops};
    sk_weight *W = wt(&tmp, w, N, K), *B = b ? wt(&tmp, b, 0, N) : NULL;
    for (int r = 0; r < T; r += MM_CHUNK) {
        const int n = T - r < MM_CHUNK ? T - r : MM_CHUNK;
        tmp.op->matmul(d->be, x + (size_t)r * K, n, W, B, out + (size_t)r * N);
    }
    tmp.op->weight_free(d->be, W);
    if (B) tmp.op->weight_free(d->be, B);
}

static double cpu_mse(sk_qdev *d, const float *a, const float *b, size_t n) {
    double s = 0;
#pragma omp parallel for reduction(+ : s) if (n > 65536)
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        s += e * e;
    }
    return s / (double)n;
}

/* mean |x| per column of x [T, K]. */
static void cpu_col_absmean(sk_qdev *d, const float *x, int T, int64_t K, float *out) {
#pragma omp parallel for if ((int64_t)T * K > 65536)
    for (int64_t k = 0; k < K; k++) {
        double s = 0;
        for (int t = 0; t < T; t++) s += fabsf(x[(size_t)t * K + k]);
        out[k] = (float)(s / T);
    }
}

/* dst = fake_quant(w diag(s)) diag(1/s) (s NULL: plain RTN), rows in parallel. */
static void cpu_fake_quant(sk_qdev *d, const float *w, int64_t N, int64_t K, int g, const float *s,
                           const float *clip, float *dst) {
#pragma omp parallel
    {
        float *row = falloc((size_t)K);
        SK_ASSERT(row != NULL);
#pragma omp for
        for (int64_t n = 0; n < N; n++) {
            const float *wr = w + n * K;
            for (int64_t k = 0; k < K; k++) row[k] = s ? wr[k] * s[k] : wr[k];
            sk_q4g_fake_quant_row(row, K, g, clip ? clip + n * (K / g) : NULL, row);
            for (int64_t k = 0; k < K; k++) dst[n * K + k] = s ? row[k] / s[k] : row[k];
        }
        free(row);
    }
}

static void cpu_scale_cols(sk_qdev *d, float *x, int64_t rows, int64_t K, const float *s, bool div) {
#pragma omp parallel for if (rows * K > 65536)
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < K; k++) {
            if (div) x[r * K + k] /= s[k];
            else x[r * K + k] *= s[k];
        }
}

static void cpu_div_rows(sk_qdev *d, float *x, int64_t rows, int64_t K, const float *s) {
    for (int64_t r = 0; r < rows; r++)
        for (int64_t k = 0; k < K; k++) x[r * K + k] /= s[r];
}

static void cpu_copy(sk_qdev *d, float *dst, const float *src, size_t n) {
    if (dst != src) memcpy(dst, src, n * sizeof(float));
}

/* Clipping search of w [N, K] on inputs x [T, K] (up to CLIP_TOKENS of them, evenly spaced). */
static void cpu_search_clip(sk_qdev *d, const float *w, int64_t N, int64_t K, int g64,
                            const float *x, int T, float *clip) {
    const int64_t g = g64, ng = K / g;
    const int step = T > CLIP_TOKENS ? T / CLIP_TOKENS : 1;
    const int S = (T + step - 1) / step;
    float *xt = falloc((size_t)K * (size_t)S); /* [K, S] transposed sample */
    SK_ASSERT(xt);
    for (int si = 0; si < S; si++)
        for (int64_t k = 0; k < K; k++) xt[(size_t)k * S + si] = x[(size_t)si * step * K + k];
#pragma omp parallel
    {
        float *org = falloc((size_t)S), *cur = falloc((size_t)S), *wq = falloc((size_t)g);
        SK_ASSERT(org && cur && wq);
#pragma omp for schedule(dynamic, 4)
        for (int64_t n = 0; n < N; n++) {
            for (int64_t b = 0; b < ng; b++) {
                const float *wg = w + n * K + b * g;
                const float *xb = xt + (size_t)(b * g) * S;
                float amax = 0;
                for (int64_t j = 0; j < g; j++) amax = fabsf(wg[j]) > amax ? fabsf(wg[j]) : amax;
                memset(org, 0, sizeof(float) * (size_t)S);
                for (int64_t j = 0; j < g; j++)
                    for (int si = 0; si < S; si++) org[si] += wg[j] * xb[(size_t)j * S + si];
                double best = INFINITY;
                float best_c = amax;
                for (int i = 0; i < CLIP_STEPS; i++) {
                    const float cl = amax * (1.0f - (float)i / CLIP_GRID);
                    if (!(cl > 0)) break;
                    sk_q4g_fake_quant_row(wg, g, (int)g, &cl, wq);
                    memset(cur, 0, sizeof(float) * (size_t)S);
                    for (int64_t j = 0; j < g; j++)
                        for (int si = 0; si < S; si++) cur[si] += wq[j] * xb[(size_t)j * S + si];
                    double e = 0;
                    for (int si = 0; si < S; si++) e += (double)(cur[si] - org[si]) * (cur[si] - org[si]);
                    if (e < best) best = e, best_c = cl;
                }
                clip[n * ng + b] = best_c;
            }
        }
        free(org), free(cur), free(wq);
    }
    free(xt);
}

static void cpu_qdev_destroy(sk_qdev *d) { free(d); }

static const sk_qdev_ops k_qdev_cpu = {
    .destroy = cpu_qdev_destroy,
    .matmul = cpu_matmul,
    .fake_quant = cpu_fake_quant,
    .mse = cpu_mse,
    .col_absmean = cpu_col_absmean,
    .scale_cols = cpu_scale_cols,
    .div_rows = cpu_div_rows,
    .copy = cpu_copy,
    .search_clip = cpu_search_clip,
};

sk_status sk_qdev_cpu_new(sk_backend *be, sk_qdev **out) {
    *out = NULL;
    if (!be || strcmp(be->name, "cpu") != 0)
        return sk_fail(SK_ERR_ARG, "quantize: the CPU quantizer needs the CPU backend");
    sk_qdev *d = calloc(1, sizeof *d);
    if (!d) return sk_fail(SK_ERR_NOMEM, "quantize: out of memory");
    d->ops = &k_qdev_cpu;
    d->be = be;
    *out = d;
    return SK_OK;
}

/* ---- search ------------------------------------------------------------------------------- */

static double mse(qctx *c, const float *a, const float *b, size_t n) {
    return c->qd->ops->mse(c->qd, a, b, n);
}

/* dst = fake_quant(L diag(s), L's clip) diag(1/s) (s NULL: plain RTN); s in the search's memory. */
static void fq_scaled(qctx *c, const lin *L, const float *s, float *dst) {
    c->qd->ops->fake_quant(c->qd, L->w, L->N, L->K, c->g, s, L->clip, dst);
}

/* A group of Linears that read one input, and how to measure the output the search watches. */
typedef enum inspect_kind {
    INSPECT_ATTN,      /* Llama q/k/v: attention block output (o applied) */
    INSPECT_MLP,       /* Llama gate/up: MLP output */
    INSPECT_LAYER,     /* Falcon qkv + up on one LayerNorm: attention + MLP output */
    INSPECT_SELF,      /* the single Linear's own output */
} inspect_kind;

typedef struct group {
    lin *l[3];
    int n;
    inspect_kind kind;
    const float *x;   /* the group's input [T, K] */
    const float *ref; /* reference output of the inspected block */
    int64_t ref_n;    /* its element count */
} group;

/* The inspected output with the group's Linears replaced by wq[i] (same shapes). */
static void inspect(qctx *c, const layer32 *y, const group *gr, float **wq, acts *a, float *out,
                    float *att, float *f) {
    lin ql[3];
    for (int i = 0; i < gr->n; i++) ql[i] = *gr->l[i], ql[i].w = wq[i];
    switch (gr->kind) {
    case INSPECT_ATTN:
        attn(c, y, &ql[0], &ql[1], &ql[2], NULL, gr->x, a, att);
        mm_lin(c, att, &y->o, out);
        break;
    case INSPECT_MLP: mlp(c, &ql[0], &ql[1], &y->down, gr->x, a, f, out); break;
    case INSPECT_LAYER: {
        attn(c, y, NULL, NULL, NULL, &ql[0], gr->x, a, att);
        mm_lin(c, att, &y->o, out);
        mlp(c, NULL, &ql[1], &y->down, gr->x, a, f, a->tmp);
        c->op->add(c->be, out, a->tmp, (size_t)c->T * (size_t)c->hp.dim);
        break;
    }
    case INSPECT_SELF: mm_lin(c, gr->x, &ql[0], out); break;
    }
}

/* Searches the group's scale; returns it in best (K values, host) and sets *err_rtn /
 * *err_best. */
static void search_scale(qctx *c, const layer32 *y, const group *gr, acts *a, float *out,
                         float *att, float *f, float *best, double *err_rtn, double *err_best) {
    const int64_t K = gr->l[0]->K;
    float *xm = falloc((size_t)K), *s = falloc((size_t)K), *ds = dalloc(c, (size_t)K);
    float *wq[3];
    for (int i = 0; i < gr->n; i++) wq[i] = dalloc(c, (size_t)(gr->l[i]->N * K));
    SK_ASSERT(xm && s && ds && wq[0]);
    c->qd->ops->col_absmean(c->qd, gr->x, c->T, K, xm);
    float *wm = NULL;
    if (c->p->duo) {
        /* AutoAWQ's duo scaling: the mean over output rows of |w| / max|w| of its group */
        wm = calloc((size_t)K, sizeof(float));
        int64_t rows = 0;
        for (int i = 0; i < gr->n; i++) {
            const lin *L = gr->l[i];
            float *own;
            const float *lw = host_view(c, L->w, (size_t)(L->N * K), &own);
            for (int64_t n = 0; n < L->N; n++, rows++)
                for (int64_t b = 0; b < K / c->g; b++) {
                    const float *w = lw + n * K + b * c->g;
                    float m = 0;
                    for (int j = 0; j < c->g; j++) m = fabsf(w[j]) > m ? fabsf(w[j]) : m;
                    for (int j = 0; j < c->g; j++) wm[b * c->g + j] += fabsf(w[j]) / (m + 1e-6f);
                }
            free(own);
        }
        for (int64_t k = 0; k < K; k++) wm[k] /= (float)rows;
    }
    int best_i = -1;
    *err_best = INFINITY;
    for (int i = 0; i < c->p->n_grid; i++) {
        const double ratio = (double)i / c->p->n_grid;
        float mx = 0, mn = INFINITY;
        for (int64_t k = 0; k < K; k++) {
            float v = powf(xm[k], (float)ratio);
            if (wm) v /= powf(wm[k], (float)(1.0 - ratio)) + 1e-4f;
            s[k] = v < 1e-4f ? 1e-4f : v;
            mx = s[k] > mx ? s[k] : mx;
            mn = s[k] < mn ? s[k] : mn;
        }
        const float norm_f = sqrtf(mx * mn);
        for (int64_t k = 0; k < K; k++) s[k] /= norm_f;
        c->op->upload_f32(c->be, ds, s, (size_t)K);
        for (int j = 0; j < gr->n; j++) fq_scaled(c, gr->l[j], ds, wq[j]);
        inspect(c, y, gr, wq, a, out, att, f);
        const double e = mse(c, out, gr->ref, (size_t)gr->ref_n);
        if (i == 0) *err_rtn = e;
        if (e < *err_best) {
            *err_best = e;
            best_i = i;
            memcpy(best, s, sizeof(float) * (size_t)K);
        }
    }
    if (c->layer < 1024 && c->n_search < 4) g_stats.grid_best[c->layer][c->n_search] = best_i;
    if (c->layer < 1024) g_stats.n_search[c->layer] = ++c->n_search;
    for (int i = 0; i < gr->n; i++) dfree(c, wq[i]);
    dfree(c, ds);
    free(wm);
    free(xm);
    free(s);
}

/* Columns of each Linear *= s; x[T, K] /= s (s: host). */
static void fold_in(qctx *c, const group *gr, const float *s, float *x) {
    const int64_t K = gr->l[0]->K;
    float *ds = vec_dev(c, s, (size_t)K);
    for (int i = 0; i < gr->n; i++) c->qd->ops->scale_cols(c->qd, gr->l[i]->w, gr->l[i]->N, K, ds, false);
    c->qd->ops->scale_cols(c->qd, x, c->T, K, ds, true);
    vec_dev_free(c, s, ds);
}

/* L's rows (and bias) /= s (s: host, L->N values): the scale of the Linear that reads L's
 * output, folded into L. */
static void fold_rows(qctx *c, lin *L, const float *s) {
    float *ds = vec_dev(c, s, (size_t)L->N);
    c->qd->ops->div_rows(c->qd, L->w, L->N, L->K, ds);
    if (L->b) c->qd->ops->div_rows(c->qd, L->b, L->N, 1, ds);
    vec_dev_free(c, s, ds);
}

/* Clipping search for L with inputs x [T, K]: L->clip [N, K/g]. */
static void search_clip(qctx *c, lin *L, const float *x) {
    L->clip = dalloc(c, (size_t)(L->N * (L->K / c->g)));
    SK_ASSERT(L->clip);
    c->qd->ops->search_clip(c->qd, L->w, L->N, L->K, c->g, x, c->T, L->clip);
}

/* ---- output ------------------------------------------------------------------------------- */

static sk_status add_f16(sk_model_file *out, const char *name, const float *x, int nd, int64_t a,
                         int64_t b) {
    const size_t n = (size_t)a * (size_t)(nd == 2 ? b : 1);
    uint16_t *h = malloc(n * 2 + 2);
    if (!h) return sk_fail(SK_ERR_NOMEM, "out of memory for '%s'", name);
    for (size_t i = 0; i < n; i++) h[i] = sk_f32_to_f16(x[i]);
    sk_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.type = SK_F16;
    t.n_dims = nd;
    t.shape[0] = a;
    t.shape[1] = b;
    t.data = sk_mf_own(out, h);
    t.nbytes = n * 2;
    sk_mf_add_tensor(out, &t);
    return SK_OK;
}

static sk_status add_lin(qctx *c, sk_model_file *out, int l, const char *nm, const lin *L) {
    char name[SK_NAME_MAX];
    float *own_b, *own_w, *own_c;
    const int64_t ng = L->K / c->g;
    const float *b = host_view(c, L->b, (size_t)L->N, &own_b);
    const float *w = host_view(c, L->w, (size_t)(L->N * L->K), &own_w);
    const float *clip = host_view(c, L->clip, (size_t)(L->N * ng), &own_c);
    sk_status s = SK_OK;
    snprintf(name, sizeof name, "blk.%d.%s.bias", l, nm);
    if (b && (s = add_f16(out, name, b, 1, L->N, 0)) != SK_OK) goto done;
    snprintf(name, sizeof name, "blk.%d.%s.weight", l, nm);
    if (!L->quant) {
        s = add_f16(out, name, w, 2, L->N, L->K);
        goto done;
    }
    const sk_dtype dt = sk_dtype_q4g(c->g);
    const size_t rb = sk_dtype_row_bytes(dt, L->K);
    uint8_t *q = malloc(rb * (size_t)L->N);
    if (!q) {
        s = sk_fail(SK_ERR_NOMEM, "out of memory for '%s'", name);
        goto done;
    }
#pragma omp parallel for
    for (int64_t n = 0; n < L->N; n++)
        sk_q4g_quantize_row(w + n * L->K, L->K, c->g, clip ? clip + n * ng : NULL,
                            q + rb * (size_t)n);
    sk_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "%s", name);
    t.type = dt;
    t.n_dims = 2;
    t.shape[0] = L->N;
    t.shape[1] = L->K;
    t.data = sk_mf_own(out, q);
    t.nbytes = rb * (size_t)L->N;
    sk_mf_add_tensor(out, &t);
done:
    free(own_b), free(own_w), free(own_c);
    return s;
}

static sk_status emit_layer(qctx *c, sk_model_file *out, int l, const layer32 *y) {
    char name[SK_NAME_MAX];
    const int D = c->hp.dim;
#define V(field, fmt)                                                                              \
    do {                                                                                           \
        if (y->field) {                                                                            \
            snprintf(name, sizeof name, fmt, l);                                                   \
            SK_TRY(add_f16(out, name, y->field, 1, D, 0));                                         \
        }                                                                                          \
    } while (0)
    V(attn_norm, "blk.%d.attn_norm.weight");
    V(attn_norm_b, "blk.%d.attn_norm.bias");
    V(attn_norm_2, "blk.%d.attn_norm_2.weight");
    V(attn_norm_2_b, "blk.%d.attn_norm_2.bias");
    V(ffn_norm, "blk.%d.ffn_norm.weight");
#undef V
    if (c->hp.arch == SK_ARCH_FALCON) {
        SK_TRY(add_lin(c, out, l, "attn_qkv", &y->qkv));
    } else {
        SK_TRY(add_lin(c, out, l, "attn_q", &y->q));
        SK_TRY(add_lin(c, out, l, "attn_k", &y->k));
        SK_TRY(add_lin(c, out, l, "attn_v", &y->v));
        SK_TRY(add_lin(c, out, l, "ffn_gate", &y->gate));
    }
    SK_TRY(add_lin(c, out, l, "attn_output", &y->o));
    SK_TRY(add_lin(c, out, l, "ffn_up", &y->up));
    SK_TRY(add_lin(c, out, l, "ffn_down", &y->down));
    return SK_OK;
}

static sk_status emit_global(qctx *c, sk_model_file *out) {
    const sk_model_file *mf = c->src;
    const int64_t V = c->hp.n_vocab, D = c->hp.dim;
    const char *names[] = {"token_embd.weight", "output.weight", "output_norm.weight",
                           "output_norm.bias"};
    for (int i = 0; i < 4; i++) {
        if (!sk_mf_find(mf, names[i])) continue;
        const bool mat = i < 2;
        sk_status s = SK_OK;
        float *x = deq(mf, names[i], mat ? V * D : D, &s);
        if (!x) return s;
        s = add_f16(out, names[i], x, mat ? 2 : 1, mat ? V : D, mat ? D : 0);
        free(x);
        SK_TRY(s);
    }
    return SK_OK;
}

/* ---- driver ------------------------------------------------------------------------------- */

/* AWQ searches of layer y on its inputs x; fills the stats of layer l. */
static void awq_layer(qctx *c, layer32 *y, const float *x, feats *fe, acts *a, float *xnext,
                      int l) {
    const sk_hparams *hp = &c->hp;
    const int64_t D = hp->dim, F = hp->ffn_dim, T = c->T;
    const bool falcon = hp->arch == SK_ARCH_FALCON;
    layer_fwd(c, y, x, fe, a, xnext);
    const int64_t qkvw = (int64_t)(hp->n_heads + 2 * hp->n_kv_heads) * hp->head_dim;
    const int64_t wmax = D > F ? (D > qkvw ? D : qkvw) : (F > qkvw ? F : qkvw);
    float *out = dalloc(c, (size_t)(T * wmax)), *att = dalloc(c, (size_t)T * hp->n_heads * hp->head_dim);
    float *f = dalloc(c, (size_t)(T * F)), *s = falloc((size_t)(D > F ? D : F));
    float *ref = dalloc(c, (size_t)(T * D));
    SK_ASSERT(out && att && f && s && ref);
    double e_rtn = 0, e_best = 0;
    group gr;

    if (!falcon) {
        /* q/k/v after attn_norm */
        gr = (group){{&y->q, &y->k, &y->v}, 3, INSPECT_ATTN, fe->h, fe->a_out, T * D};
        if (y->q.quant) {
            search_scale(c, y, &gr, a, out, att, f, s, &e_rtn, &e_best);
            for (int64_t k = 0; k < D; k++) y->attn_norm[k] /= s[k];
            fold_in(c, &gr, s, fe->h);
        }
        /* v -> o when v's rows are o's columns */
        if (y->v.N == y->o.K && y->o.quant) {
            mm_lin(c, fe->att, &y->o, ref);
            gr = (group){{&y->o}, 1, INSPECT_SELF, fe->att, ref, T * D};
            double r0, r1;
            search_scale(c, y, &gr, a, out, att, f, s, &r0, &r1);
            fold_rows(c, &y->v, s);
            fold_in(c, &gr, s, fe->att);
        }
        /* gate/up after ffn_norm */
        if (y->up.quant) {
            gr = (group){{&y->gate, &y->up}, 2, INSPECT_MLP, fe->h2, fe->m_out, T * D};
            search_scale(c, y, &gr, a, out, att, f, s, &e_rtn, &e_best);
            for (int64_t k = 0; k < D; k++) y->ffn_norm[k] /= s[k];
            fold_in(c, &gr, s, fe->h2);
        }
        /* down after up */
        if (y->down.quant) {
            gr = (group){{&y->down}, 1, INSPECT_SELF, fe->f, fe->m_out, T * D};
            double r0, r1;
            search_scale(c, y, &gr, a, out, att, f, s, &r0, &r1);
            fold_rows(c, &y->up, s);
            fold_in(c, &gr, s, fe->f);
        }
    } else if (hp->parallel_attn && !y->attn_norm_2) {
        /* one LayerNorm feeds qkv and up: inspect the whole layer's added output */
        c->qd->ops->copy(c->qd, ref, fe->a_out, (size_t)(T * D));
        c->op->add(c->be, ref, fe->m_out, (size_t)(T * D));
        gr = (group){{&y->qkv, &y->up}, 2, INSPECT_LAYER, fe->h, ref, T * D};
        if (y->qkv.quant) {
            search_scale(c, y, &gr, a, out, att, f, s, &e_rtn, &e_best);
            for (int64_t k = 0; k < D; k++) y->attn_norm[k] /= s[k], y->attn_norm_b[k] /= s[k];
            fold_in(c, &gr, s, fe->h);
        }
    } else {
        if (y->qkv.quant) {
            float *r = dalloc(c, (size_t)(T * y->qkv.N));
            SK_ASSERT(r);
            mm_lin(c, fe->h, &y->qkv, r);
            gr = (group){{&y->qkv}, 1, INSPECT_SELF, fe->h, r, T * y->qkv.N};
            search_scale(c, y, &gr, a, out, att, f, s, &e_rtn, &e_best);
            for (int64_t k = 0; k < D; k++) y->attn_norm[k] /= s[k], y->attn_norm_b[k] /= s[k];
            fold_in(c, &gr, s, fe->h);
            dfree(c, r);
        }
        if (y->up.quant) {
            float *r = dalloc(c, (size_t)(T * F)), *o2 = dalloc(c, (size_t)(T * F));
            SK_ASSERT(r && o2);
            mm_lin(c, fe->h2, &y->up, r);
            gr = (group){{&y->up}, 1, INSPECT_SELF, fe->h2, r, T * F};
            search_scale(c, y, &gr, a, o2, att, f, s, &e_rtn, &e_best);
            for (int64_t k = 0; k < D; k++) y->attn_norm_2[k] /= s[k], y->attn_norm_2_b[k] /= s[k];
            fold_in(c, &gr, s, fe->h2);
            dfree(c, r), dfree(c, o2);
        }
    }
    (void)e_rtn, (void)e_best;
    /* clipping: every Linear but the ones that make q and k */
    if (!falcon && y->v.quant) search_clip(c, &y->v, fe->h);
    if (y->o.quant) search_clip(c, &y->o, fe->att);
    if (!falcon && y->gate.quant) search_clip(c, &y->gate, fe->h2);
    if (y->up.quant) search_clip(c, &y->up, falcon && !y->attn_norm_2 ? fe->h : fe->h2);
    if (y->down.quant) search_clip(c, &y->down, fe->f);
    (void)l;
    dfree(c, out), dfree(c, att), dfree(c, f), free(s), dfree(c, ref);
}

/* Layer output error of the quantized layer (weights as they will be stored) against xref. */
static double layer_err(qctx *c, const layer32 *y, const float *x, const float *xref, feats *fe,
                        acts *a, float *tmp) {
    layer32 q = *y;
    lin *all[] = {&q.q, &q.k, &q.v, &q.qkv, &q.o, &q.gate, &q.up, &q.down};
    float *bufs[8] = {0};
    for (int i = 0; i < 8; i++) {
        if (!all[i]->w || !all[i]->quant) continue;
        bufs[i] = dalloc(c, (size_t)(all[i]->N * all[i]->K));
        SK_ASSERT(bufs[i]);
        fq_scaled(c, all[i], NULL, bufs[i]);
        all[i]->w = bufs[i];
    }
    layer_fwd(c, &q, x, fe, a, tmp);
    for (int i = 0; i < 8; i++) dfree(c, bufs[i]);
    return mse(c, tmp, xref, (size_t)c->T * (size_t)c->hp.dim);
}

static int pick_group(const sk_hparams *hp, int want) {
    const int64_t Ks[] = {hp->dim, (int64_t)hp->n_heads * hp->head_dim, hp->ffn_dim};
    for (int g = want; g >= 32; g /= 2) {
        bool ok = sk_dtype_q4g(g) != SK_DTYPE_COUNT;
        for (int i = 0; i < 3 && ok; i++) ok = Ks[i] % g == 0 || Ks[i] % 32 != 0;
        if (ok) return g;
    }
    return 32;
}

/* The backend and qdev of the search: CUDA for AWQ when asked (or auto and usable), else the
 * CPU. T: calibration tokens (the CUDA attention op takes at most 65535 rows). */
#ifdef SAKER_HAVE_CUDA
/* A generous estimate of the device memory the AWQ search holds at its peak for T calibration
 * tokens: the layer's activations and cached inputs (about 4 D + 6 F + 2 (H + 2 KV) hd floats a
 * token) and three fp32 copies of the layer's Linears (originals, the quantized candidates, the
 * error check's buffers). Checked before the search starts: the search's allocations assume they
 * succeed (a failure there aborts), so a run that cannot fit is refused (or, with --device auto,
 * sent to the CPU) up front. */
static double awq_device_bytes(const sk_hparams *hp, int64_t T) {
    const double D = hp->dim, F = hp->ffn_dim, hd = hp->head_dim;
    const double H = hp->n_heads, KV = hp->n_kv_heads;
    const double per_tok = 4 * D + 6 * F + 2 * (H + 2 * KV) * hd;
    const double lins = D * (H + 2 * KV) * hd + H * hd * D + 3 * D * F;
    return 4.0 * ((double)T * per_tok + 3 * lins);
}
#endif

static sk_status open_device(qctx *c, bool awq, int64_t T) {
    const sk_quant_params *p = c->p;
    bool cuda = awq && p->device != SK_QUANT_DEV_CPU;
    if (cuda && T > 65535) {
        if (p->device == SK_QUANT_DEV_CUDA)
            return sk_fail(SK_ERR_ARG, "quantize: %lld calibration tokens; CUDA takes at most 65535",
                           (long long)T);
        SK_LOGI("quantize: %lld calibration tokens (CUDA: at most 65535); quantizing on the CPU",
                (long long)T);
        cuda = false;
    }
#ifdef SAKER_HAVE_CUDA
    if (cuda) {
        /* fp16: the attention op then keeps its KV cache in fp16 and computes in fp32 (bf16
         * would take the bf16 tensor-core prefill path); the search's matmuls are qdev's. */
        sk_status s = sk_backend_cuda_new("fp16", &c->be);
        if (s == SK_OK && c->be->ops->mem_info) {
            size_t free_b = 0, total_b = 0;
            c->be->ops->mem_info(c->be, &free_b, &total_b);
            const double need = awq_device_bytes(&c->hp, T);
            if (need > 0.9 * (double)free_b)
                s = sk_fail(SK_ERR_NOMEM,
                            "quantize: the AWQ search over %lld calibration tokens needs about "
                            "%.1f GB of device memory, %.1f GB are free (fewer --calib-samples or "
                            "--calib-len, or --device cpu)",
                            (long long)T, need / 1e9, (double)free_b / 1e9);
        }
        if (s == SK_OK) {
            if ((s = sk_qdev_cuda_new(c->be, p->tf32, &c->qd)) == SK_OK) return SK_OK;
        }
        if (c->be) {
            c->be->ops->destroy(c->be);
            c->be = NULL;
        }
        if (p->device == SK_QUANT_DEV_CUDA) return s;
        SK_LOGI("%s; quantizing on the CPU", sk_last_error());
        cuda = false;
    }
#else
    if (cuda && p->device == SK_QUANT_DEV_CUDA)
        return sk_fail(SK_ERR_DEVICE, "quantize: device cuda was requested, but this build of "
                                      "saker has no CUDA backend (rebuild with nvcc available)");
    cuda = false;
#endif
    (void)cuda;
    SK_TRY(sk_backend_cpu_new(p->n_threads, &c->be));
    sk_status s = sk_qdev_cpu_new(c->be, &c->qd);
    if (s != SK_OK) {
        c->be->ops->destroy(c->be);
        c->be = NULL;
    }
    return s;
}

/* "[#####.....]" for done of total into buf[w + 3]. */
static void progress_bar(int done, int total, int w, char *buf) {
    const int n = total > 0 ? (int)((long)done * w / total) : w;
    buf[0] = '[';
    for (int i = 0; i < w; i++) buf[1 + i] = i < n ? '#' : '.';
    buf[w + 1] = ']';
    buf[w + 2] = 0;
}

sk_status sk_quantize_model(const sk_model_file *src, const sk_quant_params *p,
                            const int32_t *tokens, int n_samples, int len, sk_model_file *out,
                            int *group_used) {
    memset(out, 0, sizeof *out);
    memset(&g_stats, 0, sizeof g_stats);
    if (p->bits != 4) return sk_fail(SK_ERR_UNSUPPORTED, "quantize: %d bits is not supported (only 4)", p->bits);
    if (sk_dtype_q4g(p->group) == SK_DTYPE_COUNT)
        return sk_fail(SK_ERR_ARG, "quantize: group size %d is not one of 32, 64, 128", p->group);
    const bool awq = p->method == SK_QUANT_AWQ;
    if (awq && (!tokens || n_samples < 1 || len < 2 || p->n_grid < 1))
        return sk_fail(SK_ERR_ARG, "quantize: AWQ needs calibration tokens");
    if (src->hp.arch == SK_ARCH_LLAMA && src->hp.rope_pairing == SK_ROPE_ADJACENT &&
        src->hp.rope_dim != src->hp.head_dim)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: partial RoPE (%d of %d dims) with adjacent pairs cannot be written "
                       "as a Hugging Face Llama",
                       src->path, src->hp.rope_dim, src->hp.head_dim);
    qctx c = {.p = p, .src = src, .hp = src->hp};
    c.hp.rope_pairing = SK_ROPE_HALVES;
    c.g = pick_group(&c.hp, p->group);
    *group_used = c.g;
    if (c.g != p->group)
        SK_LOGW("quantize: group size %d does not divide every Linear's input width; using %d",
                p->group, c.g);

    sk_status s = SK_OK;
    const sk_hparams *hp = &c.hp;
    const int64_t D = hp->dim, F = hp->ffn_dim;
    float *x = NULL, *xn = NULL, *tmp = NULL;
    feats fe = {0};
    acts a = {0};
    SK_TRY(open_device(&c, awq, awq ? (int64_t)n_samples * len : 0));
    c.op = c.be->ops;
    c.on_dev = awq;
    snprintf(g_stats.device, sizeof g_stats.device, "%s", c.be->name);
    out->path = sk_xstrdup(src->path);
    out->format = "hf";
    out->hp = c.hp;
    out->vocab = src->vocab; /* shallow: src's memory */
    if (awq) {
        c.T = n_samples * len;
        const int64_t T = c.T, qkvw = (int64_t)(hp->n_heads + 2 * hp->n_kv_heads) * hp->head_dim;
        if ((s = c.op->kv_new(c.be, 1, hp->n_kv_heads, hp->head_dim, len, n_samples, &c.kv)) != SK_OK)
            goto fail;
        x = dalloc(&c, (size_t)(T * D)), xn = dalloc(&c, (size_t)(T * D)), tmp = dalloc(&c, (size_t)(T * D));
        fe.h = dalloc(&c, (size_t)(T * D)), fe.h2 = dalloc(&c, (size_t)(T * D));
        fe.att = dalloc(&c, (size_t)(T * hp->n_heads * hp->head_dim));
        fe.f = dalloc(&c, (size_t)(T * F)), fe.a_out = dalloc(&c, (size_t)(T * D)), fe.m_out = dalloc(&c, (size_t)(T * D));
        a.qkv = dalloc(&c, (size_t)(T * qkvw)), a.f1 = dalloc(&c, (size_t)(T * F));
        a.tmp = dalloc(&c, (size_t)(T * (D > F ? D : F)));
        if (!x || !xn || !tmp || !fe.h || !fe.h2 || !fe.att || !fe.f || !fe.a_out || !fe.m_out ||
            !a.qkv || !a.f1 || !a.tmp) {
            s = sk_fail(SK_ERR_NOMEM, "quantize: out of %s memory for %d calibration tokens",
                        c.be->name, c.T);
            goto fail;
        }
        int32_t *pos = sk_xmalloc(sizeof(int32_t) * (size_t)T * 2);
        for (int t = 0; t < c.T; t++) pos[t] = t % len, pos[c.T + t] = t / len;
        const sk_batch b = {c.T, tokens, pos, pos + c.T};
        s = c.op->begin(c.be, &b);
        free(pos);
        if (s != SK_OK) goto fail;
        float *emb = deq(src, "token_embd.weight", (int64_t)hp->n_vocab * D, &s);
        if (!emb) goto fail;
        float *hx = falloc((size_t)(T * D));
        if (!hx) {
            free(emb);
            s = sk_fail(SK_ERR_NOMEM, "quantize: out of memory for %d calibration tokens", c.T);
            goto fail;
        }
        for (int t = 0; t < c.T; t++)
            memcpy(hx + (size_t)t * D, emb + (size_t)tokens[t] * D, sizeof(float) * (size_t)D);
        free(emb);
        c.op->upload_f32(c.be, x, hx, (size_t)(T * D));
        free(hx);
    }
    g_stats.n_layers = hp->n_layers;
    if (p->progress && awq)
        fprintf(stderr, "quantize: AWQ search on %s (%s matmuls)\n", c.be->name,
                strcmp(c.be->name, "cuda") ? "fp32" : p->tf32 ? "TF32" : "fp32");
    const double t0 = sk_time();
    for (int l = 0; l < hp->n_layers; l++) {
        const double tl = sk_time();
        layer32 y;
        if ((s = load_layer(&c, l, &y)) != SK_OK) {
            layer_free(&c, &y);
            goto fail;
        }
        if (awq) {
            c.layer = l;
            c.n_search = 0;
            if (l < 1024)
                for (int i = 0; i < 4; i++) g_stats.grid_best[l][i] = -1;
            const double ts = sk_time();
            awq_layer(&c, &y, x, &fe, &a, xn, l);
            if (l < 1024) {
                /* wait for the device so that the search's time is its own */
                float one;
                c.op->download_f32(c.be, xn, &one, 1);
                g_stats.search_s[l] = sk_time() - ts;
                /* the same layer with RTN, for the record */
                layer32 r;
                if ((s = load_layer(&c, l, &r)) != SK_OK) {
                    layer_free(&c, &y), layer_free(&c, &r);
                    goto fail;
                }
                g_stats.rtn_err[l] = layer_err(&c, &r, x, xn, &fe, &a, tmp);
                layer_free(&c, &r);
                g_stats.awq_err[l] = layer_err(&c, &y, x, xn, &fe, &a, tmp);
            }
            float *sw = x;
            x = xn, xn = sw;
        }
        s = emit_layer(&c, out, l, &y);
        layer_free(&c, &y);
        if (s != SK_OK) goto fail;
        if (l < 1024) g_stats.layer_s[l] = sk_time() - tl;
        if (p->progress) {
            char bar[32];
            const double el = sk_time() - t0;
            progress_bar(l + 1, hp->n_layers, 20, bar);
            if (awq)
                fprintf(stderr, "quantize: %s layer %d/%d  %.1f s (left ~%.0f s)  layer output MSE: RTN %.3e, AWQ %.3e\n",
                        bar, l + 1, hp->n_layers, el, el / (l + 1) * (hp->n_layers - l - 1),
                        g_stats.rtn_err[l], g_stats.awq_err[l]);
            else
                fprintf(stderr, "quantize: %s layer %d/%d  %.1f s\n", bar, l + 1, hp->n_layers, el);
        }
    }
    if ((s = emit_global(&c, out)) != SK_OK) goto fail;
fail:
    dfree(&c, x), dfree(&c, xn), dfree(&c, tmp);
    dfree(&c, fe.h), dfree(&c, fe.h2), dfree(&c, fe.att), dfree(&c, fe.f), dfree(&c, fe.a_out), dfree(&c, fe.m_out);
    dfree(&c, a.qkv), dfree(&c, a.f1), dfree(&c, a.tmp);
    if (c.kv) c.op->kv_free(c.be, c.kv);
    if (c.qd) c.qd->ops->destroy(c.qd);
    if (c.be) c.op->destroy(c.be);
    if (s != SK_OK) {
        out->vocab = (sk_vocab_data){0};
        sk_mf_free(out);
    }
    return s;
}
