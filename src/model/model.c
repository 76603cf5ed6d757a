/* The public model and session API (saker.h): opening a model file, loading its weights onto a
 * backend, sessions with a KV cache, and thin wrappers over the tokenizer. */
#include "model/model.h"
#include "model/shapes.h"
#include "tokenizer/detok.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A session processes at most this many tokens per forward pass. */
#define SK_SESSION_CHUNK 512
/* Default context when the caller asks for the model's (n_ctx <= 0). */
#define SK_SESSION_DEFAULT_CTX 4096

void sk_model_params_default(sk_model_params *p) {
    memset(p, 0, sizeof *p);
    p->tokenizer_path = NULL;
    p->device = SK_DEVICE_AUTO;
    p->n_threads = 0;
    p->cuda_dtype = NULL;
    p->shape_weights = NULL;
}

/* ---- loading ---------------------------------------------------------------------------- */

/* Loads tensor `name` onto the backend and records the handle in m->weights. A missing tensor
 * is an error when required, else *out = NULL. */
static sk_status load_w(sk_model *m, const char *name, bool required, sk_weight **out) {
    *out = NULL;
    const sk_tensor *t = sk_mf_find(&m->mf, name);
    if (!t) {
        if (!required) return SK_OK;
        return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s' is missing", m->mf.path, name);
    }
    sk_weight *w = NULL;
    sk_status s;
    if (t->data == NULL) { /* synthetic model: drawn on the backend */
        float mean, std;
        sk_shape_init_params(t, &mean, &std);
        /* Seeded by the tensor's name, not by load order: backends that fuse weights after
         * loading (weight_concat) change how many handles are recorded, and the CPU and CUDA
         * backends must draw the same model. */
        uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a */
        for (const char *c = t->name; *c; c++) h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
        s = m->be->ops->weight_random(m->be, t, mean, std, 0x5a4b3c2d1e0full ^ h, &w);
    } else {
        s = m->be->ops->weight_load(m->be, t, &w);
    }
    if (s != SK_OK) {
        sk_error_prefix("%s", m->mf.path);
        return s;
    }
    m->weights = sk_xrealloc(m->weights, sizeof(sk_weight *) * (size_t)(m->n_weights + 1));
    m->weights[m->n_weights++] = w;
    *out = w;
    return SK_OK;
}

/* An optional 1-D tensor of n elements (a bias): loaded if present, after checking its shape. */
static sk_status load_opt_vec(sk_model *m, const char *name, int64_t n, sk_weight **out) {
    *out = NULL;
    if (!sk_mf_find(&m->mf, name)) return SK_OK;
    SK_TRY(sk_mf_require(&m->mf, name, 1, &n, NULL));
    return load_w(m, name, true, out);
}

/* Writes the layer tensor name "blk.<l>.<suffix>" to buf [SK_NAME_MAX] and returns buf. */
static const char *lname(char *buf, int l, const char *suffix) {
    snprintf(buf, SK_NAME_MAX, "blk.%d.%s", l, suffix);
    return buf;
}

/* Replaces the n weights in parts (already loaded and recorded) by one weight of their rows in
 * order (backend weight_concat), recorded in their place; the parts are freed and set to NULL. */
static sk_status fuse_w(sk_model *m, sk_weight **parts[], int n, sk_weight **out) {
    sk_weight *ws[4];
    SK_ASSERT(n <= 4);
    for (int i = 0; i < n; i++) ws[i] = *parts[i];
    sk_weight *f = NULL;
    SK_TRY(m->be->ops->weight_concat(m->be, ws, n, &f));
    int kept = 0;
    for (int i = 0; i < m->n_weights; i++) {
        bool part = false;
        for (int j = 0; j < n; j++) part |= m->weights[i] == ws[j];
        if (!part) m->weights[kept++] = m->weights[i];
    }
    m->n_weights = kept;
    for (int i = 0; i < n; i++) {
        m->be->ops->weight_free(m->be, ws[i]);
        *parts[i] = NULL;
    }
    m->weights = sk_xrealloc(m->weights, sizeof(sk_weight *) * (size_t)(m->n_weights + 1));
    m->weights[m->n_weights++] = f;
    *out = f;
    return SK_OK;
}

static sk_status load_weights(sk_model *m) {
    const sk_hparams *hp = &m->hp;
    const bool falcon = hp->arch == SK_ARCH_FALCON;
    const int64_t D = hp->dim, hd = hp->head_dim;
    const int64_t q = (int64_t)hp->n_heads * hd, kv = (int64_t)hp->n_kv_heads * hd;
    char nm[SK_NAME_MAX];

    SK_TRY(load_w(m, "token_embd.weight", true, &m->tok_embd));
    SK_TRY(load_w(m, "output_norm.weight", true, &m->output_norm));
    if (falcon) SK_TRY(load_w(m, "output_norm.bias", true, &m->output_norm_b));
    if (hp->tied_output)
        m->output = m->tok_embd;
    else
        SK_TRY(load_w(m, "output.weight", true, &m->output));

    m->layers = sk_xcalloc((size_t)hp->n_layers, sizeof *m->layers);
    for (int l = 0; l < hp->n_layers; l++) {
        sk_layer_weights *L = &m->layers[l];
        SK_TRY(load_w(m, lname(nm, l, "attn_norm.weight"), true, &L->attn_norm));
        SK_TRY(load_w(m, lname(nm, l, "attn_output.weight"), true, &L->wo));
        SK_TRY(load_w(m, lname(nm, l, "ffn_up.weight"), true, &L->ffn_up));
        SK_TRY(load_w(m, lname(nm, l, "ffn_down.weight"), true, &L->ffn_down));
        if (falcon) {
            SK_TRY(load_w(m, lname(nm, l, "attn_norm.bias"), true, &L->attn_norm_b));
            /* The MLP has its own LayerNorm with two per layer, and always when attention and
             * MLP run one after the other. */
            const bool ln2 = hp->n_ln_per_layer == 2 || !hp->parallel_attn;
            SK_TRY(load_w(m, lname(nm, l, "attn_norm_2.weight"), ln2, &L->attn_norm_2));
            SK_TRY(load_w(m, lname(nm, l, "attn_norm_2.bias"), ln2, &L->attn_norm_2_b));
            SK_TRY(load_w(m, lname(nm, l, "attn_qkv.weight"), true, &L->wqkv));
            const bool b = hp->linear_bias;
            SK_TRY(load_w(m, lname(nm, l, "attn_qkv.bias"), b, &L->bqkv));
            SK_TRY(load_w(m, lname(nm, l, "attn_output.bias"), b, &L->bo));
            SK_TRY(load_w(m, lname(nm, l, "ffn_up.bias"), b, &L->b_up));
            SK_TRY(load_w(m, lname(nm, l, "ffn_down.bias"), b, &L->b_down));
        } else {
            SK_TRY(load_w(m, lname(nm, l, "attn_q.weight"), true, &L->wq));
            SK_TRY(load_w(m, lname(nm, l, "attn_k.weight"), true, &L->wk));
            SK_TRY(load_w(m, lname(nm, l, "attn_v.weight"), true, &L->wv));
            SK_TRY(load_w(m, lname(nm, l, "ffn_norm.weight"), true, &L->ffn_norm));
            SK_TRY(load_w(m, lname(nm, l, "ffn_gate.weight"), true, &L->ffn_gate));
            /* Optional projection biases (Qwen-style checkpoints carry q/k/v biases). */
            SK_TRY(load_opt_vec(m, lname(nm, l, "attn_q.bias"), q, &L->bq));
            SK_TRY(load_opt_vec(m, lname(nm, l, "attn_k.bias"), kv, &L->bk));
            SK_TRY(load_opt_vec(m, lname(nm, l, "attn_v.bias"), kv, &L->bv));
            SK_TRY(load_opt_vec(m, lname(nm, l, "attn_output.bias"), D, &L->bo));
            /* One matmul for q/k/v and one for gate/up (with the SwiGLU fused) where the backend
             * can: the same products, fewer launches and reads of h per layer. */
            if (m->be->ops->weight_concat && !L->bq && !L->bk && !L->bv) {
                sk_weight **qkv[] = {&L->wq, &L->wk, &L->wv};
                SK_TRY(fuse_w(m, qkv, 3, &L->wqkv));
            }
            if (m->be->ops->weight_concat && m->be->ops->matmul_swiglu && !L->b_up) {
                sk_weight **gu[] = {&L->ffn_gate, &L->ffn_up};
                SK_TRY(fuse_w(m, gu, 2, &L->ffn_gate_up));
            }
        }
        /* validate checks attn_norm_2 only when n_ln_per_layer == 2; the sequential case uses it
         * too. */
        if (L->attn_norm_2) {
            SK_TRY(sk_mf_require(&m->mf, lname(nm, l, "attn_norm_2.weight"), 1, &D, NULL));
            SK_TRY(sk_mf_require(&m->mf, lname(nm, l, "attn_norm_2.bias"), 1, &D, NULL));
        }
    }
    return SK_OK;
}

static sk_status backend_new(const sk_model_params *p, sk_backend **out) {
    *out = NULL;
    switch (p->device) {
    case SK_DEVICE_AUTO:
#ifdef SAKER_HAVE_CUDA
        /* The GPU when there is a usable one, else the CPU. */
        if (sk_backend_cuda_new(p->cuda_dtype, out) == SK_OK) return SK_OK;
        SK_LOGI("%s; using the CPU", sk_last_error());
#endif
        return sk_backend_cpu_new(p->n_threads, out);
    case SK_DEVICE_CPU: return sk_backend_cpu_new(p->n_threads, out);
    case SK_DEVICE_CUDA:
#ifdef SAKER_HAVE_CUDA
        return sk_backend_cuda_new(p->cuda_dtype, out);
#else
        return sk_fail(SK_ERR_DEVICE, "device cuda was requested, but this build of saker has no "
                                      "CUDA backend (rebuild with nvcc available)");
#endif
    }
    return sk_fail(SK_ERR_ARG, "unknown device %d", (int)p->device);
}

sk_status sk_model_from_file(sk_model_file *mf, const sk_model_params *p, sk_model **out) {
    *out = NULL;
    sk_model_params def;
    if (!p) {
        sk_model_params_default(&def);
        p = &def;
    }
    sk_model *m = sk_xcalloc(1, sizeof *m);
    m->mf = *mf; /* the vocabulary's address must be final before the tokenizer keeps it */
    memset(mf, 0, sizeof *mf);
    m->hp = m->mf.hp;
    sk_status s;
    if (p->n_threads < 0) {
        s = sk_fail(SK_ERR_ARG, "n_threads %d is negative", p->n_threads);
        goto fail;
    }
    if ((s = sk_model_file_validate(&m->mf)) != SK_OK) goto fail;
    if (m->mf.vocab.type != SK_VOCAB_NONE) {
        if ((s = sk_tokenizer_new(&m->mf.vocab, m->hp.n_vocab, &m->tok)) != SK_OK) {
            sk_error_prefix("%s: tokenizer", m->mf.path);
            goto fail;
        }
    }
    if ((s = backend_new(p, &m->be)) != SK_OK) goto fail;
    if ((s = load_weights(m)) != SK_OK) goto fail;
    *out = m;
    return SK_OK;
fail:
    sk_model_close(m);
    return s;
}

sk_status sk_model_open(const char *path, const sk_model_params *p, sk_model **out) {
    if (!out) return sk_fail(SK_ERR_ARG, "sk_model_open: out is NULL");
    *out = NULL;
    if (!path) return sk_fail(SK_ERR_ARG, "sk_model_open: path is NULL");
    sk_model_file mf;
    SK_TRY(sk_model_file_load(path, p ? p->tokenizer_path : NULL, &mf));
    return sk_model_from_file(&mf, p, out);
}

sk_status sk_model_open_shape(const char *name, const sk_model_params *p, sk_model **out) {
    if (!out) return sk_fail(SK_ERR_ARG, "sk_model_open_shape: out is NULL");
    *out = NULL;
    if (!name) return sk_fail(SK_ERR_ARG, "sk_model_open_shape: name is NULL");
    sk_model_file mf;
    const bool int4 = p && p->shape_weights && !strcmp(p->shape_weights, "int4");
    if (p && p->shape_weights && !int4 && strcmp(p->shape_weights, "half") != 0)
        return sk_fail(SK_ERR_ARG, "shape weights '%s' is not one of half, int4", p->shape_weights);
    SK_TRY(sk_shape_model_file(name, SK_BF16, int4, p ? p->shape_layers : 0, &mf));
    return sk_model_from_file(&mf, p, out);
}

const char *sk_model_shape_names(void) { return sk_shape_names(); }

uint64_t sk_model_n_params(const sk_model *m) {
    uint64_t n = 0;
    for (int i = 0; i < m->mf.n_tensors; i++) n += (uint64_t)sk_tensor_nelem(&m->mf.tensors[i]);
    return n;
}

uint64_t sk_model_device_weight_bytes(const sk_model *m) {
    uint64_t b = 0;
    for (int i = 0; i < m->mf.n_tensors; i++) {
        const sk_tensor *t = &m->mf.tensors[i];
        uint64_t n = (uint64_t)sk_tensor_nelem(t);
        const int g = sk_dtype_q4g_group(t->type);
        if (g && t->n_dims > 1 && m->be->weight_elem_bytes) b += n / 2 + n / (uint64_t)g * 4;
        else if (m->be->weight_elem_bytes && t->n_dims > 1) b += n * m->be->weight_elem_bytes;
        else if (t->data == NULL || t->n_dims == 1) b += n * 4; /* fp32 copies */
        else b += t->nbytes;
    }
    return b;
}

const char *sk_model_device_name(const sk_model *m) { return m->be->name; }

void sk_model_close(sk_model *m) {
    if (!m) return;
    if (m->be) {
        for (int i = 0; i < m->n_weights; i++) m->be->ops->weight_free(m->be, m->weights[i]);
        m->be->ops->destroy(m->be);
    }
    free(m->weights);
    free(m->layers);
    if (m->tok) sk_tokenizer_free(m->tok);
    sk_mf_free(&m->mf);
    free(m);
}

/* ---- description ------------------------------------------------------------------------ */

void sk_model_print_info(const sk_model *m, void *file) {
    FILE *f = file;
    const sk_hparams *hp = &m->hp;
    const sk_model_file *mf = &m->mf;
    fprintf(f, "path: %s\n", mf->path ? mf->path : "(memory)");
    fprintf(f, "format: %s\n", mf->format ? mf->format : "?");
    fprintf(f, "architecture: %s\n", sk_arch_name(hp->arch));
    fprintf(f, "n_vocab: %d\n", hp->n_vocab);
    fprintf(f, "dim: %d\n", hp->dim);
    fprintf(f, "n_layers: %d\n", hp->n_layers);
    fprintf(f, "n_heads: %d\n", hp->n_heads);
    fprintf(f, "n_kv_heads: %d\n", hp->n_kv_heads);
    fprintf(f, "head_dim: %d\n", hp->head_dim);
    fprintf(f, "ffn_dim: %d\n", hp->ffn_dim);
    fprintf(f, "n_ctx_train: %d\n", hp->n_ctx_train);
    fprintf(f, "norm_eps: %g\n", (double)hp->norm_eps);
    fprintf(f, "rope_theta: %g\n", (double)hp->rope_theta);
    fprintf(f, "rope_dim: %d\n", hp->rope_dim);
    fprintf(f, "rope_pairing: %s\n", hp->rope_pairing == SK_ROPE_HALVES ? "halves" : "adjacent");
    fprintf(f, "tied_output: %s\n", hp->tied_output ? "true" : "false");
    if (hp->arch == SK_ARCH_FALCON) {
        fprintf(f, "parallel_attn: %s\n", hp->parallel_attn ? "true" : "false");
        fprintf(f, "n_ln_per_layer: %d\n", hp->n_ln_per_layer);
        fprintf(f, "linear_bias: %s\n", hp->linear_bias ? "true" : "false");
    }

    int64_t count[SK_DTYPE_COUNT] = {0}, params = 0;
    size_t bytes[SK_DTYPE_COUNT] = {0}, total = 0;
    for (int i = 0; i < mf->n_tensors; i++) {
        const sk_tensor *t = &mf->tensors[i];
        if ((unsigned)t->type >= SK_DTYPE_COUNT) continue;
        count[t->type]++;
        bytes[t->type] += t->nbytes;
        params += sk_tensor_nelem(t);
        total += t->nbytes;
    }
    fprintf(f, "tensors: %d\n", mf->n_tensors);
    for (int t = 0; t < SK_DTYPE_COUNT; t++)
        if (count[t])
            fprintf(f, "tensors %s: %" PRId64 " (%.2f MiB)\n", sk_dtype_name((sk_dtype)t), count[t],
                    (double)bytes[t] / (1024.0 * 1024.0));
    fprintf(f, "parameters: %" PRId64 " (%.2f M)\n", params, (double)params / 1e6);
    fprintf(f, "weight bytes: %zu (%.2f MiB)\n", total, (double)total / (1024.0 * 1024.0));
    const char *vt = mf->vocab.type == SK_VOCAB_SPM   ? "spm"
                     : mf->vocab.type == SK_VOCAB_BPE ? "bpe"
                                                      : "none";
    fprintf(f, "tokenizer: %s, %d tokens, bos %d, eos %d\n", vt, mf->vocab.n_tokens,
            sk_model_bos(m), sk_model_eos(m));
    fprintf(f, "chat template: %s\n", mf->vocab.chat_template ? "yes" : "no (ChatML)");
    fprintf(f, "backend: %s\n", m->be->name);
}

int sk_model_n_vocab(const sk_model *m) { return m->hp.n_vocab; }
int sk_model_n_ctx_train(const sk_model *m) { return m->hp.n_ctx_train; }
int sk_model_bos(const sk_model *m) { return m->tok ? sk_tokenizer_bos(m->tok) : -1; }
int sk_model_eos(const sk_model *m) { return m->tok ? sk_tokenizer_eos(m->tok) : -1; }
bool sk_model_is_eog(const sk_model *m, int32_t token) {
    return m->tok ? sk_tokenizer_is_eog(m->tok, token) : false;
}

/* ---- tokenizer wrappers ----------------------------------------------------------------- */

static bool need_tok(const sk_model *m) {
    if (m->tok) return true;
    sk_fail(SK_ERR_ARG, "%s: the model has no tokenizer (give a tokenizer file)", m->mf.path);
    return false;
}

int sk_tokenize(const sk_model *m, const char *text, size_t len, bool add_bos, bool parse_special,
                int32_t *out, int cap) {
    if (!need_tok(m)) return -1;
    return sk_tokenizer_encode(m->tok, text, len, add_bos, parse_special, out, cap);
}

int sk_token_to_bytes(const sk_model *m, int32_t token, char *buf, int cap) {
    if (!need_tok(m)) return -1;
    return sk_tokenizer_token_bytes(m->tok, token, buf, cap);
}

char *sk_chat_format(const sk_model *m, const char *user_message) {
    if (!need_tok(m)) return NULL;
    const sk_chat_msg msg = {"user", user_message};
    return sk_chat_apply(m->tok, &msg, 1, true);
}

/* NULL (with the error set) when the model has no tokenizer. */
sk_detok *sk_detok_new(const sk_model *m, bool at_start) {
    if (!need_tok(m)) return NULL;
    return sk_detok_new_tok(m->tok, at_start);
}

/* ---- sessions --------------------------------------------------------------------------- */

struct sk_session {
    sk_model *m;
    sk_kv_cache *kv;
    sk_fwd_buffers buf;
    int n_ctx, n_past;
    int32_t pos[SK_SESSION_CHUNK], seq[SK_SESSION_CHUNK];
    sk_fwd_graph graph; /* decode steps */
};

sk_status sk_session_new(sk_model *m, int n_ctx, sk_session **out) {
    if (!out) return sk_fail(SK_ERR_ARG, "sk_session_new: out is NULL");
    *out = NULL;
    if (!m) return sk_fail(SK_ERR_ARG, "sk_session_new: model is NULL");
    const sk_hparams *hp = &m->hp;
    if (n_ctx <= 0) n_ctx = SK_SESSION_DEFAULT_CTX;
    if (n_ctx > hp->n_ctx_train) n_ctx = hp->n_ctx_train;
    sk_session *s = sk_xcalloc(1, sizeof *s);
    s->m = m;
    s->n_ctx = n_ctx;
    const char *ng = getenv("SAKER_NO_GRAPHS");
    if (ng && *ng && strcmp(ng, "0") != 0) s->graph.state = -1;
    sk_status st = m->be->ops->kv_new(m->be, hp->n_layers, hp->n_kv_heads, hp->head_dim, n_ctx, 1,
                                      &s->kv);
    if (st == SK_OK)
        st = sk_fwd_buffers_new(m, n_ctx < SK_SESSION_CHUNK ? n_ctx : SK_SESSION_CHUNK, 0, &s->buf);
    if (st != SK_OK) {
        sk_error_prefix("session of %d positions", n_ctx);
        sk_session_free(s);
        return st;
    }
    *out = s;
    return SK_OK;
}

void sk_session_free(sk_session *s) {
    if (!s) return;
    sk_fwd_graph_free(s->m, &s->graph);
    sk_fwd_buffers_free(s->m, &s->buf);
    if (s->kv) s->m->be->ops->kv_free(s->m->be, s->kv);
    free(s);
}

int sk_session_n_past(const sk_session *s) { return s->n_past; }
void sk_session_reset(sk_session *s) { s->n_past = 0; }

sk_status sk_session_eval(sk_session *s, const int32_t *tokens, int n, float *logits,
                          bool all_logits) {
    if (!s) return sk_fail(SK_ERR_ARG, "sk_session_eval: session is NULL");
    if (n <= 0 || !tokens) return sk_fail(SK_ERR_ARG, "sk_session_eval: no tokens (n = %d)", n);
    const int V = s->m->hp.n_vocab;
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= V)
            return sk_fail(SK_ERR_ARG, "token id %" PRId32 " (at %d) is out of range [0, %d)",
                           tokens[i], i, V);
    if (n > s->n_ctx - s->n_past)
        return sk_fail(SK_ERR_CONTEXT, "prompt of %d tokens + %d past exceeds the context of %d", n,
                       s->n_past, s->n_ctx);
    for (int done = 0; done < n;) {
        const int T = n - done < s->buf.max_T ? n - done : s->buf.max_T;
        for (int i = 0; i < T; i++) {
            s->pos[i] = s->n_past + i;
            s->seq[i] = 0;
        }
        const sk_batch b = {T, tokens + done, s->pos, s->seq};
        int out_first = 0, n_out = 0;
        float *dst = NULL;
        if (logits && all_logits) {
            n_out = T;
            dst = logits + (size_t)done * V;
        } else if (logits && done + T == n) {
            out_first = T - 1;
            n_out = 1;
            dst = logits;
        }
        if (T == 1 && n_out == 1)
            SK_TRY(sk_forward_step(s->m, &s->buf, s->kv, &b, dst, &s->graph));
        else
            SK_TRY(sk_forward(s->m, &s->buf, s->kv, &b, out_first, n_out, dst));
        s->n_past += T;
        done += T;
    }
    return SK_OK;
}
