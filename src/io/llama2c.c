/* llama2.c checkpoints (legacy "version 0" export of Karpathy's llama2.c) and tok*.bin
 * tokenizers.
 *
 * Checkpoint: 7 little-endian int32 (dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size,
 * seq_len); vocab_size < 0 means a separate classifier at the end of the file. Then fp32 weights,
 * each row-major with the last dim contiguous (hs = dim / n_heads, L = n_layers):
 *   token_embedding [vocab][dim]
 *   rms_att [L][dim]
 *   wq [L][n_heads*hs][dim]; wk [L][n_kv*hs][dim]; wv [L][n_kv*hs][dim]; wo [L][dim][n_heads*hs]
 *   rms_ffn [L][dim]
 *   w1 [L][hidden][dim] (gate); w2 [L][dim][hidden] (down); w3 [L][hidden][dim] (up)
 *   rms_final [dim]
 *   freq_cis_real [seq_len][hs/2], freq_cis_imag [seq_len][hs/2]  (legacy RoPE tables; some
 *                                                                  exports omit them)
 *   wcls [vocab][dim]  (only when vocab_size < 0)
 * Later llama2.c exports (version 1, 2) start with the magic "ak42" and are not supported.
 *
 * Tokenizer: int32 max_token_length, then for each of the model's vocab_size tokens: f32 score,
 * int32 len, len bytes of text. */
#include "model/model_file.h"

#include <inttypes.h>
#include <stdarg.h>
#include <string.h>

#define L2C_MAGIC 0x616b3432u /* "ak42" read as a little-endian u32 */
#define L2C_HEADER_BYTES 28

static int32_t rd_i32(const uint8_t *p) {
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    int32_t v;
    memcpy(&v, &u, 4);
    return v;
}

typedef struct l2c_header {
    int32_t dim, hidden_dim, n_layers, n_heads, n_kv_heads, vocab_size, seq_len;
} l2c_header;

static sk_status check_field(const char *path, const char *name, int64_t v, int64_t lo,
                             int64_t hi) {
    if (v < lo || v > hi)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: llama2.c header field %s = %" PRId64 " is out of range [%" PRId64
                       ", %" PRId64 "]",
                       path, name, v, lo, hi);
    return SK_OK;
}

/* Checks the header values; the limits match sk_model_file_validate's, which also keeps every
 * size below computable in int64 without overflow. */
static sk_status check_header(const char *path, const l2c_header *h) {
    SK_TRY(check_field(path, "dim", h->dim, 1, 1 << 16));
    SK_TRY(check_field(path, "hidden_dim", h->hidden_dim, 1, 1 << 20));
    SK_TRY(check_field(path, "n_layers", h->n_layers, 1, 1024));
    SK_TRY(check_field(path, "n_heads", h->n_heads, 1, 1024));
    SK_TRY(check_field(path, "n_kv_heads", h->n_kv_heads, 1, h->n_heads));
    if (h->vocab_size == 0 || h->vocab_size < -(1 << 22) || h->vocab_size > (1 << 22))
        return sk_fail(SK_ERR_FORMAT,
                       "%s: llama2.c header field vocab_size = %d is out of range (1 to %d, "
                       "negative for a separate classifier)",
                       path, h->vocab_size, 1 << 22);
    SK_TRY(check_field(path, "seq_len", h->seq_len, 1, 1 << 24));
    if (h->dim % h->n_heads != 0)
        return sk_fail(SK_ERR_FORMAT, "%s: llama2.c header: dim %d is not a multiple of n_heads %d",
                       path, h->dim, h->n_heads);
    if (h->n_heads % h->n_kv_heads != 0)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: llama2.c header: n_heads %d is not a multiple of n_kv_heads %d", path,
                       h->n_heads, h->n_kv_heads);
    if ((h->dim / h->n_heads) % 2 != 0)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: llama2.c header: head size dim/n_heads = %d/%d = %d is odd", path,
                       h->dim, h->n_heads, h->dim / h->n_heads);
    return SK_OK;
}

/* Appends tensor name (printf-style) of shape [a] or [a, b] at float offset *pos of w, and
 * advances *pos. */
static void add_f32(sk_model_file *mf, const float *w, int64_t *pos, int nd, int64_t a, int64_t b,
                    const char *fmt, ...) SK_PRINTF(7, 8);
static void add_f32(sk_model_file *mf, const float *w, int64_t *pos, int nd, int64_t a, int64_t b,
                    const char *fmt, ...) {
    sk_tensor t;
    memset(&t, 0, sizeof t);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t.name, sizeof t.name, fmt, ap);
    va_end(ap);
    t.type = SK_F32;
    t.n_dims = nd;
    t.shape[0] = a;
    t.shape[1] = nd > 1 ? b : 0;
    int64_t n = nd > 1 ? a * b : a;
    t.data = w + *pos;
    t.nbytes = (size_t)n * sizeof(float);
    *pos += n;
    sk_mf_add_tensor(mf, &t);
}

/* Reads the tokenizer: n tokens, spaces in text replaced by U+2581 so that the vocabulary follows
 * the SentencePiece convention of GGUF "llama" vocabularies. */
static sk_status load_tokenizer(const char *tpath, int n, sk_model_file *mf) {
    if (n < 3)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: vocab_size %d is too small for a llama2.c tokenizer (ids 0-2 are "
                       "<unk>, <s>, </s>)",
                       mf->path, n);
    sk_file m;
    SK_TRY(sk_file_map(tpath, &m));
    sk_status s = SK_OK;
    sk_vocab_data *v = &mf->vocab;
    const uint8_t *p = m.data;
    size_t size = m.size, off = 4;
    int64_t total = 0;
    if (size < 4) {
        s = sk_fail(SK_ERR_FORMAT, "%s: tokenizer file of %zu bytes is too short (no header)",
                    tpath, size);
        goto done;
    }
    int32_t max_len = rd_i32(p);
    if (max_len < 1) {
        s = sk_fail(SK_ERR_FORMAT, "%s: tokenizer max_token_length = %d must be positive", tpath,
                    max_len);
        goto done;
    }
    /* First pass: check every record against the file, size the text block. */
    for (int i = 0; i < n; i++) {
        if (size - off < 8) {
            s = sk_fail(SK_ERR_FORMAT,
                        "%s: tokenizer truncated: token %d of %d starts at offset %zu but the "
                        "file has %zu bytes",
                        tpath, i, n, off, size);
            goto done;
        }
        int32_t len = rd_i32(p + off + 4);
        off += 8;
        if (len < 0) {
            s = sk_fail(SK_ERR_FORMAT,
                        "%s: tokenizer token %d: length %d at offset %zu is negative", tpath, i,
                        len, off - 4);
            goto done;
        }
        if ((uint64_t)len > size - off) {
            s = sk_fail(SK_ERR_FORMAT,
                        "%s: tokenizer token %d: length %d at offset %zu runs past the end of "
                        "the file (%zu bytes)",
                        tpath, i, len, off - 4, size);
            goto done;
        }
        int spaces = 0;
        for (int32_t k = 0; k < len; k++) spaces += p[off + (size_t)k] == ' ';
        total += (int64_t)len + 2 * (int64_t)spaces + 1;
        off += (size_t)len;
    }
    if (off != size) {
        s = sk_fail(SK_ERR_FORMAT,
                    "%s: tokenizer has %zu bytes after the model's %d tokens (a tokenizer for a "
                    "different vocabulary?)",
                    tpath, size - off, n);
        goto done;
    }
    if (total > INT32_MAX) {
        s = sk_fail(SK_ERR_FORMAT, "%s: tokenizer text is too large", tpath);
        goto done;
    }

    v->type = SK_VOCAB_SPM;
    v->n_tokens = n;
    char *blk = malloc((size_t)total);
    v->tokens = malloc((size_t)n * sizeof *v->tokens);
    v->token_len = malloc((size_t)n * sizeof *v->token_len);
    v->scores = malloc((size_t)n * sizeof *v->scores);
    v->token_type = malloc((size_t)n * sizeof *v->token_type);
    /* Owned at once so that sk_mf_free releases whatever was allocated. */
    sk_mf_own(mf, blk);
    sk_mf_own(mf, v->tokens);
    sk_mf_own(mf, v->token_len);
    sk_mf_own(mf, v->scores);
    sk_mf_own(mf, v->token_type);
    if (!blk || !v->tokens || !v->token_len || !v->scores || !v->token_type) {
        s = sk_fail(SK_ERR_NOMEM, "%s: out of memory", tpath);
        goto done;
    }
    off = 4;
    for (int i = 0; i < n; i++) {
        memcpy(&v->scores[i], p + off, 4);
        int32_t len = rd_i32(p + off + 4);
        off += 8;
        const char *src = (const char *)p + off;
        char *dst = blk;
        for (int32_t k = 0; k < len; k++) {
            if (src[k] == ' ') {
                memcpy(dst, "\xe2\x96\x81", 3);
                dst += 3;
            } else {
                *dst++ = src[k];
            }
        }
        *dst = 0;
        v->tokens[i] = blk;
        v->token_len[i] = (int)(dst - blk);
        bool is_byte = len == 6 && memcmp(src, "<0x", 3) == 0 && src[5] == '>' &&
                       strchr("0123456789ABCDEFabcdef", src[3]) && src[3] &&
                       strchr("0123456789ABCDEFabcdef", src[4]) && src[4];
        v->token_type[i] = i == 0    ? SK_TOKT_UNKNOWN
                           : i <= 2  ? SK_TOKT_CONTROL
                           : is_byte ? SK_TOKT_BYTE
                                     : SK_TOKT_NORMAL;
        blk = dst + 1;
        off += (size_t)len;
    }
    v->unk = 0;
    v->bos = 1;
    v->eos = 2;
    v->pad = -1;
    v->eot = -1;
    v->add_bos = true;
    v->add_eos = false;
    v->add_space_prefix = true;
done:
    sk_file_unmap(&m);
    return s;
}

static sk_status load_weights(const char *path, const uint8_t *data, size_t size,
                              sk_model_file *mf) {
    if (size >= 8 && (uint32_t)rd_i32(data) == L2C_MAGIC)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: llama2.c export version %d is not supported; use the legacy format "
                       "(export.py --version 0)",
                       path, rd_i32(data + 4));
    if (size < L2C_HEADER_BYTES)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: file of %zu bytes is too short for a llama2.c checkpoint (28-byte "
                       "header)",
                       path, size);
    l2c_header h = {rd_i32(data),      rd_i32(data + 4),  rd_i32(data + 8), rd_i32(data + 12),
                    rd_i32(data + 16), rd_i32(data + 20), rd_i32(data + 24)};
    SK_TRY(check_header(path, &h));

    const bool shared = h.vocab_size > 0;
    const int64_t D = h.dim, F = h.hidden_dim, L = h.n_layers,
                  V = shared ? h.vocab_size : -(int64_t)h.vocab_size;
    const int64_t hs = D / h.n_heads, Q = h.n_heads * hs, KV = h.n_kv_heads * hs;
    /* Float counts; each term < 2^50 under check_header's limits. */
    const int64_t n_main =
        V * D + L * D + L * Q * D + 2 * L * KV * D + L * D * Q + L * D + 3 * L * F * D + D;
    const int64_t n_rope = (int64_t)h.seq_len * hs; /* real + imag, seq_len * hs/2 each */
    const int64_t n_cls = shared ? 0 : V * D;
    const int64_t want = L2C_HEADER_BYTES + 4 * (n_main + n_cls);
    const int64_t want_rope = want + 4 * n_rope;
    bool has_rope;
    if ((uint64_t)want_rope == size)
        has_rope = true;
    else if ((uint64_t)want == size)
        has_rope = false;
    else
        return sk_fail(SK_ERR_FORMAT,
                       "%s: llama2.c checkpoint of %zu bytes, but its header (dim=%d hidden_dim=%d "
                       "n_layers=%d n_heads=%d n_kv_heads=%d vocab_size=%d seq_len=%d) implies "
                       "%" PRId64 " bytes (%" PRId64 " with the legacy RoPE tables)",
                       path, size, h.dim, h.hidden_dim, h.n_layers, h.n_heads, h.n_kv_heads,
                       h.vocab_size, h.seq_len, want, want_rope);

    const float *w = (const float *)(const void *)(data + L2C_HEADER_BYTES);
    int64_t pos = 0;
    add_f32(mf, w, &pos, 2, V, D, "token_embd.weight");
    /* Per-layer tensors are interleaved by kind: all layers of one kind, then the next kind. */
    for (int l = 0; l < L; l++) add_f32(mf, w, &pos, 1, D, 0, "blk.%d.attn_norm.weight", l);
    for (int l = 0; l < L; l++) add_f32(mf, w, &pos, 2, Q, D, "blk.%d.attn_q.weight", l);
    for (int l = 0; l < L; l++) add_f32(mf, w, &pos, 2, KV, D, "blk.%d.attn_k.weight", l);
    for (int l = 0; l < L; l++) add_f32(mf, w, &pos, 2, KV, D, "blk.%d.attn_v.weight", l);
    for (int l = 0; l < L; l++) add_f32(mf, w, &pos, 2, D, Q, "blk.%d.attn_output.weight", l);
    for (int l = 0; l < L; l++) add_f32(mf, w, &pos, 1, D, 0, "blk.%d.ffn_norm.weight", l);
    for (int l = 0; l < L; l++) add_f32(mf, w, &pos, 2, F, D, "blk.%d.ffn_gate.weight", l);
    for (int l = 0; l < L; l++) add_f32(mf, w, &pos, 2, D, F, "blk.%d.ffn_down.weight", l);
    for (int l = 0; l < L; l++) add_f32(mf, w, &pos, 2, F, D, "blk.%d.ffn_up.weight", l);
    add_f32(mf, w, &pos, 1, D, 0, "output_norm.weight");
    SK_ASSERT(pos == n_main);
    if (has_rope) pos += n_rope;
    if (!shared) add_f32(mf, w, &pos, 2, V, D, "output.weight");
    SK_ASSERT(L2C_HEADER_BYTES + 4 * pos == (int64_t)size);

    sk_hparams *hp = &mf->hp;
    memset(hp, 0, sizeof *hp);
    hp->arch = SK_ARCH_LLAMA;
    hp->n_vocab = (int)V;
    hp->dim = h.dim;
    hp->n_layers = h.n_layers;
    hp->n_heads = h.n_heads;
    hp->n_kv_heads = h.n_kv_heads;
    hp->head_dim = (int)hs;
    hp->ffn_dim = h.hidden_dim;
    hp->n_ctx_train = h.seq_len;
    hp->norm_eps = 1e-5f;
    hp->rope_theta = 10000.0f;
    hp->rope_dim = (int)hs;
    hp->rope_pairing = SK_ROPE_ADJACENT;
    hp->tied_output = shared;
    hp->parallel_attn = false;
    hp->n_ln_per_layer = 1;
    hp->linear_bias = false;
    return SK_OK;
}

sk_status sk_llama2c_load(const char *path, const char *tokenizer_path, sk_model_file *mf) {
    memset(mf, 0, sizeof *mf);
    sk_file m;
    SK_TRY(sk_file_map(path, &m));
    mf->path = sk_xstrdup(path);
    mf->format = "llama2c";
    sk_mf_own_map(mf, m);
    sk_status s = load_weights(path, m.data, m.size, mf);
    if (!s && !tokenizer_path)
        s = sk_fail(SK_ERR_ARG,
                    "%s: a llama2.c checkpoint has no vocabulary: the tokenizer file (tok*.bin) "
                    "is needed (--tokenizer)",
                    path);
    if (!s) s = load_tokenizer(tokenizer_path, mf->hp.n_vocab, mf);
    if (!s) s = sk_model_file_validate(mf);
    if (s) sk_mf_free(mf);
    return s;
}
