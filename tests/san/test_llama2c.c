/* llama2.c checkpoint + tok*.bin loader: the two real checkpoints, the layout with and without the
 * legacy RoPE tables and with a separate classifier, and malformed headers, sizes and tokenizers.
 * (The byte-for-byte cross-check of stories260K.bin against stories260K.gguf is in test_gguf.) */
#define _POSIX_C_SOURCE 200809L
#include "model/model_file.h"
#include "testlib.h"

#include <stdint.h>
#include <unistd.h>

static char g_dir[64];

static const char *tmp_path(const char *name) {
    static char path[8][256];
    static int k = 0;
    char *p = path[k++ & 7];
    snprintf(p, 256, "%s/%s", g_dir, name);
    return p;
}

static const char *write_tmp(const char *name, const void *p, size_t n) {
    const char *path = tmp_path(name);
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        fprintf(stderr, "cannot write %s\n", path);
        exit(1);
    }
    if (n) fwrite(p, 1, n, fp);
    fclose(fp);
    return path;
}

static uint8_t *read_file(const char *path, size_t *n) {
    FILE *fp = fopen(path, "rb");
    if (!fp) {
        fprintf(stderr, "FAIL: cannot read %s\n", path);
        exit(1);
    }
    fseek(fp, 0, SEEK_END);
    *n = (size_t)ftell(fp);
    fseek(fp, 0, SEEK_SET);
    uint8_t *p = malloc(*n + 1);
    if (fread(p, 1, *n, fp) != *n) exit(1);
    fclose(fp);
    return p;
}

static int32_t get_i32(const uint8_t *p) {
    int32_t v;
    memcpy(&v, p, 4);
    return v;
}
static void set_i32(uint8_t *p, int32_t v) { memcpy(p, &v, 4); }

/* Loads model/tokenizer and expects status want with a message that names name_in_msg and
 * contains frag (when not NULL). */
static void expect_fail(const char *label, const char *model, const char *tok, sk_status want,
                        const char *name_in_msg, const char *frag) {
    sk_model_file mf;
    sk_status s = sk_llama2c_load(model, tok, &mf);
    const char *e = sk_last_error();
    if (getenv("SK_TEST_VERBOSE")) fprintf(stderr, "%-16s %s\n", label, e);
    CHECKF(s == want, "%s: status %s, want %s (%s)", label, sk_status_name(s), sk_status_name(want),
           e);
    CHECKF(strstr(e, name_in_msg) != NULL, "%s: message does not name %s: %s", label, name_in_msg,
           e);
    CHECKF(!frag || strstr(e, frag) != NULL, "%s: message lacks '%s': %s", label, frag, e);
    CHECK(mf.n_tensors == 0 && mf.path == NULL && mf.n_maps == 0 && mf.n_allocs == 0);
    if (s == SK_OK) sk_mf_free(&mf);
}

/* Checks the description loaded from a checkpoint against its header h[7] and the tokenizer file
 * tok[ntok] (read independently here), and the weights against the file bytes. */
static void check_model(const sk_model_file *mf, const uint8_t *bin, size_t bin_n,
                        const uint8_t *tok, size_t ntok, bool rope_tables) {
    const int32_t dim = get_i32(bin), hid = get_i32(bin + 4), L = get_i32(bin + 8);
    const int32_t H = get_i32(bin + 12), KV = get_i32(bin + 16), V0 = get_i32(bin + 20);
    const int32_t seq = get_i32(bin + 24);
    const int32_t V = V0 < 0 ? -V0 : V0, hs = dim / H;
    const sk_hparams *hp = &mf->hp;
    CHECK(strcmp(mf->format, "llama2c") == 0);
    CHECK(hp->arch == SK_ARCH_LLAMA && hp->dim == dim && hp->ffn_dim == hid && hp->n_layers == L);
    CHECK(hp->n_heads == H && hp->n_kv_heads == KV && hp->n_vocab == V && hp->n_ctx_train == seq);
    CHECK(hp->head_dim == hs && hp->rope_dim == hs && hp->rope_theta == 10000.0f);
    CHECK(fabsf(hp->norm_eps - 1e-5f) < 1e-10f && hp->rope_pairing == SK_ROPE_ADJACENT);
    CHECK(hp->tied_output == (V0 > 0) && !hp->parallel_attn && !hp->linear_bias);
    CHECK(mf->n_tensors == 2 + 9 * L + (V0 < 0));

    /* Weights: offsets computed here from the documented layout. */
    const float *w = (const float *)(bin + 28);
    int64_t D = dim, F = hid, Q = (int64_t)H * hs, K = (int64_t)KV * hs;
    int64_t o_rms_att = V * D, o_wq = o_rms_att + L * D, o_wk = o_wq + L * Q * D;
    int64_t o_wv = o_wk + L * K * D, o_wo = o_wv + L * K * D, o_rms_ffn = o_wo + L * D * Q;
    int64_t o_w1 = o_rms_ffn + L * D, o_w2 = o_w1 + L * F * D, o_w3 = o_w2 + L * D * F;
    int64_t o_fin = o_w3 + L * F * D, o_end = o_fin + D;
    if (rope_tables) o_end += (int64_t)seq * hs;
    CHECK(28 + 4 * (o_end + (V0 < 0 ? V * D : 0)) == (int64_t)bin_n);
    struct {
        const char *name;
        int64_t off, a, b;
    } want[] = {
        {"token_embd.weight", 0, V, D},
        {"blk.0.attn_norm.weight", o_rms_att, D, 0},
        {"blk.%d.attn_norm.weight", o_rms_att + (L - 1) * D, D, 0},
        {"blk.0.attn_q.weight", o_wq, Q, D},
        {"blk.%d.attn_q.weight", o_wq + (L - 1) * Q * D, Q, D},
        {"blk.0.attn_k.weight", o_wk, K, D},
        {"blk.%d.attn_v.weight", o_wv + (L - 1) * K * D, K, D},
        {"blk.%d.attn_output.weight", o_wo + (L - 1) * D * Q, D, Q},
        {"blk.%d.ffn_norm.weight", o_rms_ffn + (L - 1) * D, D, 0},
        {"blk.%d.ffn_gate.weight", o_w1 + (L - 1) * F * D, F, D},
        {"blk.0.ffn_down.weight", o_w2, D, F},
        {"blk.%d.ffn_up.weight", o_w3 + (L - 1) * F * D, F, D},
        {"output_norm.weight", o_fin, D, 0},
        {"output.weight", o_end, V, D},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        char name[SK_NAME_MAX];
        snprintf(name, sizeof name, want[i].name, L - 1);
        const sk_tensor *t = sk_mf_find(mf, name);
        if (strcmp(name, "output.weight") == 0 && V0 > 0) {
            CHECK(t == NULL);
            continue;
        }
        int nd = want[i].b ? 2 : 1;
        CHECKF(t && t->type == SK_F32 && t->n_dims == nd && t->shape[0] == want[i].a &&
                   (nd == 1 || t->shape[1] == want[i].b),
               "%s", name);
        size_t nb = (size_t)(want[i].a * (nd == 2 ? want[i].b : 1)) * 4;
        CHECKF(t && mf->n_maps == 1 && t->nbytes == nb &&
                   t->data == (const void *)(mf->maps[0].data + 28 + 4 * want[i].off),
               "%s is not at its place in the file", name);
        CHECKF(t && memcmp(t->data, w + want[i].off, nb) == 0, "%s: wrong bytes", name);
    }

    /* Vocabulary: the tokenizer file's texts with ' ' -> U+2581. */
    const sk_vocab_data *v = &mf->vocab;
    CHECK(v->type == SK_VOCAB_SPM && v->n_tokens == V && v->bos == 1 && v->eos == 2 && v->unk == 0);
    CHECK(v->pad == -1 && v->eot == -1 && v->add_bos && !v->add_eos && v->add_space_prefix);
    CHECK(v->n_merges == 0 && v->pre == NULL && v->chat_template == NULL);
    size_t off = 4;
    int bad = 0, n_byte = 0, n_space = 0;
    for (int i = 0; i < V && v->n_tokens == V && off + 8 <= ntok; i++) {
        float score;
        memcpy(&score, tok + off, 4);
        int32_t len = get_i32(tok + off + 4);
        off += 8;
        char exp[256];
        int n = 0;
        for (int k = 0; k < len && n < 250; k++) {
            if (tok[off + k] == ' ') {
                memcpy(exp + n, "\xe2\x96\x81", 3);
                n += 3;
                n_space++;
            } else {
                exp[n++] = (char)tok[off + k];
            }
        }
        exp[n] = 0;
        bool is_byte = len == 6 && memcmp(tok + off, "<0x", 3) == 0;
        n_byte += is_byte;
        int type = i == 0    ? SK_TOKT_UNKNOWN
                   : i <= 2  ? SK_TOKT_CONTROL
                   : is_byte ? SK_TOKT_BYTE
                             : SK_TOKT_NORMAL;
        bool ok = v->scores[i] == score && v->token_len[i] == n && strcmp(v->tokens[i], exp) == 0 &&
                  v->token_type[i] == type;
        if (!ok && bad++ < 5) fprintf(stderr, "token %d: '%s' vs '%s'\n", i, v->tokens[i], exp);
        off += (size_t)len;
    }
    CHECKF(bad == 0, "%d tokens differ", bad);
    CHECK(off == ntok && n_byte == 256 && n_space > 0);
    CHECK(v->n_tokens > 3 && strcmp(v->tokens[0], "<unk>") == 0 &&
          strcmp(v->tokens[1], "\n<s>\n") == 0);
    CHECK(v->n_tokens > 3 && strcmp(v->tokens[3], "<0x00>") == 0);
}

static void test_real(const char *dir, int32_t want_L, int32_t want_H, int32_t want_KV,
                      int32_t want_seq) {
    char bin_rel[128], tok_rel[128];
    snprintf(bin_rel, sizeof bin_rel, "%s/%s.bin", dir, dir);
    snprintf(tok_rel, sizeof tok_rel, "%s/tok512.bin", dir);
    const char *bp = sk_test_path("SK_DATA", bin_rel);
    const char *tp = sk_test_path("SK_DATA", tok_rel);
    size_t bn, tn;
    uint8_t *bin = read_file(bp, &bn), *tok = read_file(tp, &tn);
    sk_model_file mf;
    sk_status s = sk_llama2c_load(bp, tp, &mf);
    CHECKF(s == SK_OK, "%s", sk_last_error());
    if (s == SK_OK) {
        /* Values from the READMEs. */
        const sk_hparams *hp = &mf.hp;
        CHECK(hp->dim == 64 && hp->ffn_dim == 172 && hp->n_layers == want_L);
        CHECK(hp->n_heads == want_H && hp->n_kv_heads == want_KV && hp->n_vocab == 512);
        CHECK(hp->n_ctx_train == want_seq && hp->tied_output);
        check_model(&mf, bin, bn, tok, tn, true);
        sk_mf_free(&mf);
    }
    free(bin);
    free(tok);
}

/* Layout variants built from stories260K.bin: without RoPE tables, with a separate classifier
 * (with and without the tables). */
static void test_variants(void) {
    const char *bp = sk_test_path("SK_DATA", "stories260K/stories260K.bin");
    const char *tp = sk_test_path("SK_DATA", "stories260K/tok512.bin");
    size_t n, tn;
    uint8_t *bin = read_file(bp, &n), *tok = read_file(tp, &tn);
    const int32_t V = 512, D = 64, seq = 512, hs = 8;
    const size_t rope = (size_t)seq * hs * 4, cls = (size_t)V * D * 4;
    uint8_t *c = malloc(n + cls);
    sk_model_file mf;
    sk_status s;

    /* No RoPE tables. */
    const char *p = write_tmp("norope.bin", bin, n - rope);
    s = sk_llama2c_load(p, tp, &mf);
    CHECKF(s == SK_OK, "norope: %s", sk_last_error());
    if (s == SK_OK) {
        check_model(&mf, bin, n - rope, tok, tn, false);
        sk_mf_free(&mf);
    }
    /* Separate classifier after the tables: vocab_size negative, wcls = the embedding reversed
     * byte-wise so that it differs from it. */
    for (int with_rope = 0; with_rope < 2; with_rope++) {
        size_t base = with_rope ? n : n - rope;
        memcpy(c, bin, base);
        set_i32(c + 20, -V);
        for (size_t i = 0; i < cls; i++) c[base + i] = (uint8_t)(i * 7 + 3);
        p = write_tmp("cls.bin", c, base + cls);
        s = sk_llama2c_load(p, tp, &mf);
        CHECKF(s == SK_OK, "cls (rope %d): %s", with_rope, sk_last_error());
        if (s == SK_OK) {
            check_model(&mf, c, base + cls, tok, tn, with_rope);
            const sk_tensor *t = sk_mf_find(&mf, "output.weight");
            CHECK(t && memcmp(t->data, c + base, cls) == 0);
            sk_mf_free(&mf);
        }
    }

    /* Sizes that match neither layout. */
    const struct {
        const char *label;
        size_t len;
    } sizes[] = {{"minus1.bin", n - 1},
                 {"minus4.bin", n - 4},
                 {"plus4.bin", n + 4},
                 {"header.bin", 28},
                 {"short.bin", 10},
                 {"empty.bin", 0},
                 {"rope-half.bin", n - rope / 2}};
    memcpy(c, bin, n);
    memset(c + n, 0, cls);
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        p = write_tmp(sizes[i].label, c, sizes[i].len);
        expect_fail(sizes[i].label, p, tp, SK_ERR_FORMAT, p, "bytes");
        unlink(p);
    }
    /* The "expected vs actual" message states both sizes. */
    p = write_tmp("minus1.bin", c, n - 1);
    char frag[64];
    snprintf(frag, sizeof frag, "implies %zu bytes", n - rope);
    expect_fail("size-msg", p, tp, SK_ERR_FORMAT, p, frag);
    snprintf(frag, sizeof frag, "%zu with the legacy RoPE tables", n);
    expect_fail("size-msg2", p, tp, SK_ERR_FORMAT, p, frag);
    unlink(p);

    /* Bad header values. */
    const struct {
        const char *label;
        int field;
        int32_t value;
        const char *frag;
    } hdr[] = {
        {"dim0", 0, 0, "dim"},
        {"dimneg", 0, -64, "dim"},
        {"hidden0", 1, 0, "hidden_dim"},
        {"layersneg", 2, -1, "n_layers"},
        {"heads0", 3, 0, "n_heads"},
        {"heads7", 3, 7, "not a multiple of n_heads"},
        {"kv0", 4, 0, "n_kv_heads"},
        {"kv3", 4, 3, "not a multiple of n_kv_heads"},
        {"kv16", 4, 16, "n_kv_heads"},
        {"vocab0", 5, 0, "vocab_size"},
        {"vocabmin", 5, INT32_MIN, "vocab_size"},
        {"seq0", 6, 0, "seq_len"},
        {"seqneg", 6, -512, "seq_len"},
        {"hugedim", 0, INT32_MAX, "dim"},
        {"hugelayers", 2, 1 << 30, "n_layers"},
        {"hugehidden", 1, INT32_MAX, "hidden_dim"},
        {"vocabbig", 5, 2000, "bytes"}, /* well-formed header, but the size does not match */
    };
    for (size_t i = 0; i < sizeof hdr / sizeof hdr[0]; i++) {
        memcpy(c, bin, n);
        set_i32(c + 4 * hdr[i].field, hdr[i].value);
        p = write_tmp("hdr.bin", c, n);
        expect_fail(hdr[i].label, p, tp, SK_ERR_FORMAT, p, hdr[i].frag);
    }
    /* Odd head size: dim 64, 64 heads of 1. */
    memcpy(c, bin, n);
    set_i32(c + 12, 64);
    set_i32(c + 16, 64);
    p = write_tmp("hdr.bin", c, n);
    expect_fail("oddhead", p, tp, SK_ERR_FORMAT, p, "odd");
    /* A newer export version. */
    memcpy(c, bin, n);
    set_i32(c, 0x616b3432);
    set_i32(c + 4, 2);
    p = write_tmp("hdr.bin", c, n);
    expect_fail("ak42", p, tp, SK_ERR_UNSUPPORTED, p, "version 2 is not supported");
    unlink(p);

    free(c);
    free(bin);
    free(tok);
}

static void test_tokenizer_errors(void) {
    const char *bp = sk_test_path("SK_DATA", "stories260K/stories260K.bin");
    const char *tp = sk_test_path("SK_DATA", "stories260K/tok512.bin");
    size_t tn;
    uint8_t *tok = read_file(tp, &tn);

    expect_fail("no-tokenizer", bp, NULL, SK_ERR_ARG, bp, "--tokenizer");
    const char *missing = tmp_path("does-not-exist.bin");
    expect_fail("tok-missing", bp, missing, SK_ERR_IO, missing, NULL);

    /* Every truncation of the tokenizer fails with a message naming it. */
    int bad = 0;
    for (size_t len = 0; len < tn; len++) {
        const char *p = write_tmp("tok-trunc.bin", tok, len);
        sk_model_file mf;
        sk_status s = sk_llama2c_load(bp, p, &mf);
        if (s == SK_OK) sk_mf_free(&mf);
        if (s != SK_ERR_FORMAT || !strstr(sk_last_error(), p) || mf.n_tensors || mf.n_allocs) {
            if (bad++ < 3) fprintf(stderr, "prefix %zu: %s\n", len, sk_last_error());
        }
    }
    CHECKF(bad == 0, "%d of %zu tokenizer prefixes loaded or gave a wrong error", bad, tn);
    unlink(tmp_path("tok-trunc.bin"));

    uint8_t *c = malloc(tn + 16);
    const char *p;
    /* Trailing bytes: a tokenizer for another vocabulary. */
    memcpy(c, tok, tn);
    c[tn] = 0;
    p = write_tmp("tok.bin", c, tn + 1);
    expect_fail("tok-extra", bp, p, SK_ERR_FORMAT, p, "after the model's 512 tokens");
    /* Token lengths past the end, negative, and a bad max_token_length. */
    memcpy(c, tok, tn);
    set_i32(c + 8, 1 << 30); /* token 0's length */
    p = write_tmp("tok.bin", c, tn);
    expect_fail("tok-len", bp, p, SK_ERR_FORMAT, p, "token 0");
    set_i32(c + 8, -1);
    p = write_tmp("tok.bin", c, tn);
    expect_fail("tok-neg", bp, p, SK_ERR_FORMAT, p, "length -1");
    memcpy(c, tok, tn);
    set_i32(c + 8, get_i32(tok + 8) + 1); /* shifts every later record: garbage lengths */
    p = write_tmp("tok.bin", c, tn);
    expect_fail("tok-shift", bp, p, SK_ERR_FORMAT, p, NULL);
    memcpy(c, tok, tn);
    set_i32(c, 0);
    p = write_tmp("tok.bin", c, tn);
    expect_fail("tok-max0", bp, p, SK_ERR_FORMAT, p, "max_token_length");
    unlink(p);
    free(c);
    free(tok);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_test_llama2c_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_real("stories260K", 5, 8, 4, 512);
    test_real("aidreams260K", 4, 4, 4, 128);
    test_variants();
    test_tokenizer_errors();
    static const char *left[] = {"norope.bin", "cls.bin", "hdr.bin", "tok.bin"};
    for (size_t i = 0; i < sizeof left / sizeof left[0]; i++) unlink(tmp_path(left[i]));
    if (rmdir(g_dir) != 0) fprintf(stderr, "note: %s not empty\n", g_dir);
    return sk_test_done("test_llama2c");
}
