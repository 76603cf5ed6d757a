#include "model/model_file.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

const char *sk_arch_name(sk_arch a) {
    switch (a) {
    case SK_ARCH_LLAMA: return "llama";
    case SK_ARCH_FALCON: return "falcon";
    case SK_ARCH_COUNT: break;
    }
    return "?";
}

int64_t sk_tensor_nelem(const sk_tensor *t) {
    int64_t n = 1;
    for (int i = 0; i < t->n_dims; i++) n *= t->shape[i];
    return n;
}

const sk_tensor *sk_mf_find(const sk_model_file *mf, const char *name) {
    for (int i = 0; i < mf->n_tensors; i++)
        if (strcmp(mf->tensors[i].name, name) == 0) return &mf->tensors[i];
    return NULL;
}

static void fmt_shape(char *buf, size_t n, int nd, const int64_t *s) {
    size_t o = (size_t)snprintf(buf, n, "[");
    for (int i = 0; i < nd && o < n; i++)
        o += (size_t)snprintf(buf + o, n - o, "%s%" PRId64, i ? ", " : "", s[i]);
    if (o < n) snprintf(buf + o, n - o, "]");
}

sk_status sk_mf_require(const sk_model_file *mf, const char *name, int n_dims, const int64_t *shape,
                        const sk_tensor **out) {
    const sk_tensor *t = sk_mf_find(mf, name);
    if (out) *out = t;
    if (!t) return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s' is missing", mf->path, name);
    if (t->type == SK_I32)
        return sk_fail(SK_ERR_UNSUPPORTED, "%s: tensor '%s' has type %s, not a weight type", mf->path,
                       name, sk_dtype_name(t->type));
    bool ok = t->n_dims == n_dims;
    for (int i = 0; ok && i < n_dims; i++) ok = t->shape[i] == shape[i];
    if (!ok) {
        char got[128], want[128];
        fmt_shape(got, sizeof got, t->n_dims, t->shape);
        fmt_shape(want, sizeof want, n_dims, shape);
        return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s' has shape %s but expected %s", mf->path, name,
                       got, want);
    }
    if (t->shape[n_dims - 1] % sk_dtype_block(t->type) != 0)
        return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s': row of %" PRId64 " not a multiple of the %s block",
                       mf->path, name, t->shape[n_dims - 1], sk_dtype_name(t->type));
    return SK_OK;
}

void *sk_mf_own(sk_model_file *mf, void *block) {
    mf->allocs = sk_xrealloc(mf->allocs, sizeof(void *) * (size_t)(mf->n_allocs + 1));
    mf->allocs[mf->n_allocs++] = block;
    return block;
}

void sk_mf_own_map(sk_model_file *mf, sk_file map) {
    mf->maps = sk_xrealloc(mf->maps, sizeof(sk_file) * (size_t)(mf->n_maps + 1));
    mf->maps[mf->n_maps++] = map;
}

sk_tensor *sk_mf_add_tensor(sk_model_file *mf, const sk_tensor *t) {
    mf->tensors = sk_xrealloc(mf->tensors, sizeof(sk_tensor) * (size_t)(mf->n_tensors + 1));
    mf->tensors[mf->n_tensors] = *t;
    return &mf->tensors[mf->n_tensors++];
}

void sk_mf_free(sk_model_file *mf) {
    for (int i = 0; i < mf->n_maps; i++) sk_file_unmap(&mf->maps[i]);
    for (int i = 0; i < mf->n_allocs; i++) free(mf->allocs[i]);
    free(mf->maps);
    free(mf->allocs);
    free(mf->tensors);
    free(mf->path);
    memset(mf, 0, sizeof *mf);
}

sk_status sk_model_file_load(const char *path, const char *tokenizer_path, sk_model_file *mf) {
    memset(mf, 0, sizeof *mf);
    int d = sk_path_is_dir(path);
    if (d < 0) return sk_fail(SK_ERR_IO, "%s: no such file or directory", path);
    sk_status s;
    if (d == 1) {
        s = sk_hf_load(path, mf);
    } else {
        char magic[4] = {0};
        FILE *fp = fopen(path, "rb");
        if (!fp) return sk_fail(SK_ERR_IO, "%s: cannot open", path);
        size_t n = fread(magic, 1, 4, fp);
        fclose(fp);
        if (n == 4 && memcmp(magic, "GGUF", 4) == 0)
            s = sk_gguf_load(path, mf);
        else
            s = sk_llama2c_load(path, tokenizer_path, mf);
    }
    if (s != SK_OK) sk_mf_free(mf); /* loaders validate before returning */
    return s;
}

#define CHECK_RANGE(field, lo, hi)                                                                 \
    do {                                                                                           \
        if ((int64_t)hp->field < (lo) || (int64_t)hp->field > (hi))                                \
            return sk_fail(SK_ERR_FORMAT, "%s: %s = %" PRId64 " is out of range [%" PRId64         \
                                          ", %" PRId64 "]",                                        \
                           mf->path, #field, (int64_t)hp->field, (int64_t)(lo), (int64_t)(hi));    \
    } while (0)

/* Requires tensor fmt (printf-style name) with nd dims [a] or [a, b]. */
static sk_status req(const sk_model_file *mf, int nd, int64_t a, int64_t b, const char *fmt, ...)
    SK_PRINTF(5, 6);
static sk_status req(const sk_model_file *mf, int nd, int64_t a, int64_t b, const char *fmt, ...) {
    char nm[SK_NAME_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(nm, sizeof nm, fmt, ap);
    va_end(ap);
    const int64_t shape[2] = {a, b};
    return sk_mf_require(mf, nm, nd, shape, NULL);
}

sk_status sk_model_file_validate(const sk_model_file *mf) {
    const sk_hparams *hp = &mf->hp;
    if ((unsigned)hp->arch >= SK_ARCH_COUNT) return sk_fail(SK_ERR_UNSUPPORTED, "%s: unknown architecture", mf->path);
    CHECK_RANGE(n_vocab, 1, 1 << 22);
    CHECK_RANGE(dim, 1, 1 << 16);
    CHECK_RANGE(n_layers, 1, 1024);
    CHECK_RANGE(n_heads, 1, 1024);
    CHECK_RANGE(n_kv_heads, 1, hp->n_heads);
    CHECK_RANGE(head_dim, 2, 1024);
    CHECK_RANGE(ffn_dim, 1, 1 << 20);
    CHECK_RANGE(n_ctx_train, 1, 1 << 24);
    CHECK_RANGE(rope_dim, 0, hp->head_dim);
    if (hp->n_heads % hp->n_kv_heads != 0)
        return sk_fail(SK_ERR_FORMAT, "%s: n_heads %d is not a multiple of n_kv_heads %d", mf->path,
                       hp->n_heads, hp->n_kv_heads);
    if (hp->head_dim % 2 || hp->rope_dim % 2)
        return sk_fail(SK_ERR_FORMAT, "%s: head_dim %d / rope_dim %d must be even", mf->path,
                       hp->head_dim, hp->rope_dim);
    if (!(hp->norm_eps > 0.0f && hp->norm_eps < 1.0f))
        return sk_fail(SK_ERR_FORMAT, "%s: norm epsilon %g is out of range", mf->path, (double)hp->norm_eps);
    if (!(hp->rope_theta > 0.0f))
        return sk_fail(SK_ERR_FORMAT, "%s: rope theta %g is out of range", mf->path, (double)hp->rope_theta);

    const int64_t D = hp->dim, V = hp->n_vocab, F = hp->ffn_dim, hd = hp->head_dim;
    const int64_t q = hp->n_heads * hd, kv = hp->n_kv_heads * hd;
    SK_TRY(req(mf, 2, V, D, "token_embd.weight"));
    SK_TRY(req(mf, 1, D, 0, "output_norm.weight"));
    if (!hp->tied_output) SK_TRY(req(mf, 2, V, D, "output.weight"));
    bool falcon = hp->arch == SK_ARCH_FALCON;
    if (falcon) SK_TRY(req(mf, 1, D, 0, "output_norm.bias"));
    for (int l = 0; l < hp->n_layers; l++) {
        SK_TRY(req(mf, 1, D, 0, "blk.%d.attn_norm.weight", l));
        SK_TRY(req(mf, 2, D, q, "blk.%d.attn_output.weight", l));
        SK_TRY(req(mf, 2, F, D, "blk.%d.ffn_up.weight", l));
        SK_TRY(req(mf, 2, D, F, "blk.%d.ffn_down.weight", l));
        if (falcon) {
            SK_TRY(req(mf, 1, D, 0, "blk.%d.attn_norm.bias", l));
            if (hp->n_ln_per_layer == 2) {
                SK_TRY(req(mf, 1, D, 0, "blk.%d.attn_norm_2.weight", l));
                SK_TRY(req(mf, 1, D, 0, "blk.%d.attn_norm_2.bias", l));
            }
            SK_TRY(req(mf, 2, q + 2 * kv, D, "blk.%d.attn_qkv.weight", l));
            if (hp->linear_bias) {
                SK_TRY(req(mf, 1, q + 2 * kv, 0, "blk.%d.attn_qkv.bias", l));
                SK_TRY(req(mf, 1, D, 0, "blk.%d.attn_output.bias", l));
                SK_TRY(req(mf, 1, F, 0, "blk.%d.ffn_up.bias", l));
                SK_TRY(req(mf, 1, D, 0, "blk.%d.ffn_down.bias", l));
            }
        } else {
            SK_TRY(req(mf, 2, q, D, "blk.%d.attn_q.weight", l));
            SK_TRY(req(mf, 2, kv, D, "blk.%d.attn_k.weight", l));
            SK_TRY(req(mf, 2, kv, D, "blk.%d.attn_v.weight", l));
            SK_TRY(req(mf, 1, D, 0, "blk.%d.ffn_norm.weight", l));
            SK_TRY(req(mf, 2, F, D, "blk.%d.ffn_gate.weight", l));
        }
    }
    if (mf->vocab.type != SK_VOCAB_NONE && mf->vocab.n_tokens != hp->n_vocab)
        SK_LOGW("%s: tokenizer has %d tokens, model vocabulary %d", mf->path, mf->vocab.n_tokens,
                hp->n_vocab);
    return SK_OK;
}
