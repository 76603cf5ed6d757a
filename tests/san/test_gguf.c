/* GGUF reader and loader: the real files (stories260K, SmolLM2), a cross-check of every
 * stories260K.gguf tensor against the llama2.c checkpoint it was converted from, and malformed
 * files built here (every truncation, patched counts, lengths, dims, types, offsets). */
#define _POSIX_C_SOURCE 200809L
#include "io/gguf.h"
#include "model/model_file.h"
#include "testlib.h"

#include <stdint.h>
#include <unistd.h>

/* ---- a small GGUF writer ------------------------------------------------------------------ */
typedef struct buf {
    uint8_t *p;
    size_t n, cap;
} buf;

static void put(buf *b, const void *d, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, d, n);
    b->n += n;
}
static void put_u8(buf *b, uint8_t v) { put(b, &v, 1); }
static void put_u32(buf *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(buf *b, uint64_t v) { put(b, &v, 8); }
static void put_str(buf *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}
static void patch_u32(uint8_t *p, size_t off, uint32_t v) { memcpy(p + off, &v, 4); }
static void patch_u64(uint8_t *p, size_t off, uint64_t v) { memcpy(p + off, &v, 8); }

typedef struct opts {
    const char *arch;      /* general.architecture */
    const char *tok_model; /* tokenizer.ggml.model; NULL: none */
    const char *skip;      /* tensor left out */
    const char *bad_shape; /* tensor whose outer dim is one too large */
    uint32_t alignment;    /* 0: no general.alignment key (32) */
    int n_scores;          /* entries in tokenizer.ggml.scores (normally 5) */
    uint32_t bos;
    bool dup_key, dup_tensor;
    int nest;   /* depth of the nested-array key */
    int falcon; /* 0: llama; 1: Falcon-7B style (one LayerNorm, no biases); 2: two LayerNorms and
                   Linear biases */
    float eps;  /* the arch's norm epsilon key; 0: absent */
    const char *rope_scaling; /* <arch>.rope.scaling.type; NULL: absent */
    uint32_t vocab_size;      /* <arch>.vocab_size; 0: absent */
    uint32_t value_length;    /* <arch>.attention.value_length; 0: absent */
    bool rope_freqs;          /* add a rope_freqs.weight tensor (llama) */
} opts;

static opts default_opts(void) {
    opts o = {.arch = "llama", .tok_model = "llama", .n_scores = 5, .bos = 1, .nest = 3};
    return o;
}

#define MAX_T 20
#define SPM_SPACE "\xe2\x96\x81" /* U+2581 */
typedef struct built {
    uint8_t *p;
    size_t n;
    int n_t;
    struct {
        char name[64];
        size_t off_ndims, off_ne, off_type, off_offset; /* file offsets of the info fields */
        uint64_t ne[2];
        int nd;
        size_t data_off; /* file offset of the data */
    } t[MAX_T];
    size_t off_first_key; /* file offset of the first key's length */
    size_t off_tok_str;   /* file offset of the length of token 3's string */
    float emb[16];        /* token_embd.weight values [4 vocab][4 dim] */
} built;

static int kv_count;
static void kv_head(buf *b, const char *key, uint32_t type) {
    put_str(b, key);
    put_u32(b, type);
    kv_count++;
}

/* A complete one-layer llama: dim 4, 2 heads of 2 (1 KV head), ffn 8, vocab 5 (tied), plus an
 * extra [256] tensor and metadata of every value type. */
static built build(const opts *o) {
    built r;
    memset(&r, 0, sizeof r);
    buf kv = {0}, inf = {0}, dat = {0};
    kv_count = 0;
    kv_head(&kv, "general.architecture", SK_GGUF_STRING);
    put_str(&kv, o->arch);
    if (o->alignment) {
        kv_head(&kv, "general.alignment", SK_GGUF_U32);
        put_u32(&kv, o->alignment);
    }
    char key[128];
    const struct {
        const char *k;
        uint32_t v;
    } ints[] = {{"block_count", 1},          {"context_length", 16},
                {"embedding_length", 4},     {"feed_forward_length", 8},
                {"attention.head_count", 2}, {"attention.head_count_kv", 1}};
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        snprintf(key, sizeof key, "%s.%s", o->arch, ints[i].k);
        kv_head(&kv, key, SK_GGUF_U32);
        put_u32(&kv, ints[i].v);
    }
    if (o->eps != 0) {
        snprintf(key, sizeof key, "%s.attention.layer_norm%s_epsilon", o->arch,
                 o->falcon ? "" : "_rms");
        kv_head(&kv, key, SK_GGUF_F32);
        put(&kv, &o->eps, 4);
    }
    if (o->rope_scaling) {
        snprintf(key, sizeof key, "%s.rope.scaling.type", o->arch);
        kv_head(&kv, key, SK_GGUF_STRING);
        put_str(&kv, o->rope_scaling);
    }
    if (o->vocab_size) {
        snprintf(key, sizeof key, "%s.vocab_size", o->arch);
        kv_head(&kv, key, SK_GGUF_U32);
        put_u32(&kv, o->vocab_size);
    }
    if (o->value_length) {
        snprintf(key, sizeof key, "%s.attention.value_length", o->arch);
        kv_head(&kv, key, SK_GGUF_U32);
        put_u32(&kv, o->value_length);
    }
    snprintf(key, sizeof key, "%s.rope.freq_base", o->arch);
    kv_head(&kv, key, SK_GGUF_F32);
    float theta = 500000.0f;
    put(&kv, &theta, 4);
    /* One of each other scalar type. */
    kv_head(&kv, "test.u8", SK_GGUF_U8);
    put_u8(&kv, 200);
    kv_head(&kv, "test.i8", SK_GGUF_I8);
    put_u8(&kv, (uint8_t)-5);
    kv_head(&kv, "test.u16", SK_GGUF_U16);
    uint16_t u16 = 60000;
    put(&kv, &u16, 2);
    kv_head(&kv, "test.i16", SK_GGUF_I16);
    int16_t i16 = -30000;
    put(&kv, &i16, 2);
    kv_head(&kv, "test.i32", SK_GGUF_I32);
    put_u32(&kv, (uint32_t)-7);
    kv_head(&kv, "test.u64", SK_GGUF_U64);
    put_u64(&kv, 1ull << 40);
    kv_head(&kv, "test.i64", SK_GGUF_I64);
    put_u64(&kv, (uint64_t)(-(1ll << 40)));
    kv_head(&kv, "test.f64", SK_GGUF_F64);
    double f64 = 0.125;
    put(&kv, &f64, 8);
    kv_head(&kv, "test.bool", SK_GGUF_BOOL);
    put_u8(&kv, 1);
    /* Nested arrays: o->nest levels of [array of 2], innermost 3 u16. */
    kv_head(&kv, "test.nested", SK_GGUF_ARRAY);
    for (int d = 0; d < o->nest; d++) {
        put_u32(&kv, d + 1 < o->nest ? SK_GGUF_ARRAY : SK_GGUF_U16);
        put_u64(&kv, d + 1 < o->nest ? 1 : 3);
    }
    put(&kv, "\1\0\2\0\3\0", 6);
    if (o->dup_key) {
        kv_head(&kv, "test.u8", SK_GGUF_U8);
        put_u8(&kv, 1);
    }
    /* Vocabulary. */
    static const char *toks[5] = {"<unk>", "<s>", "</s>", SPM_SPACE "a", "b"};
    if (o->tok_model) {
        kv_head(&kv, "tokenizer.ggml.model", SK_GGUF_STRING);
        put_str(&kv, o->tok_model);
        kv_head(&kv, "tokenizer.ggml.tokens", SK_GGUF_ARRAY);
        put_u32(&kv, SK_GGUF_STRING);
        put_u64(&kv, 5);
        for (int i = 0; i < 5; i++) {
            if (i == 3) r.off_tok_str = 24 + kv.n;
            put_str(&kv, toks[i]);
        }
        kv_head(&kv, "tokenizer.ggml.scores", SK_GGUF_ARRAY);
        put_u32(&kv, SK_GGUF_F32);
        put_u64(&kv, (uint64_t)o->n_scores);
        for (int i = 0; i < o->n_scores; i++) {
            float s = -(float)i;
            put(&kv, &s, 4);
        }
        kv_head(&kv, "tokenizer.ggml.token_type", SK_GGUF_ARRAY);
        put_u32(&kv, SK_GGUF_I32);
        put_u64(&kv, 5);
        const int32_t tt[5] = {2, 3, 3, 1, 1};
        put(&kv, tt, sizeof tt);
        kv_head(&kv, "tokenizer.ggml.bos_token_id", SK_GGUF_U32);
        put_u32(&kv, o->bos);
        kv_head(&kv, "tokenizer.ggml.eos_token_id", SK_GGUF_U32);
        put_u32(&kv, 2);
        kv_head(&kv, "tokenizer.ggml.padding_token_id", SK_GGUF_U32);
        put_u32(&kv, 0xFFFFFFFFu);
        kv_head(&kv, "tokenizer.chat_template", SK_GGUF_STRING);
        put_str(&kv, "{{ x }}");
    }

    uint32_t al = o->alignment ? o->alignment : 32;
    typedef struct {
        const char *name;
        int nd;
        uint64_t ne0, ne1;
    } tdesc;
    static const tdesc llama_ts[] = {
        {"token_embd.weight", 2, 4, 5},        {"output_norm.weight", 1, 4, 0},
        {"blk.0.attn_norm.weight", 1, 4, 0},   {"blk.0.attn_q.weight", 2, 4, 4},
        {"blk.0.attn_k.weight", 2, 4, 2},      {"blk.0.attn_v.weight", 2, 4, 2},
        {"blk.0.attn_output.weight", 2, 4, 4}, {"blk.0.ffn_norm.weight", 1, 4, 0},
        {"blk.0.ffn_gate.weight", 2, 4, 8},    {"blk.0.ffn_up.weight", 2, 4, 8},
        {"blk.0.ffn_down.weight", 2, 8, 4},    {"test.extra", 1, 256, 0},
        {"rope_freqs.weight", 1, 1, 0},
    };
    /* Falcon: qkv rows (2 + 2*1) heads * 2; output.weight present (untied). */
    static const tdesc falcon_ts[] = {
        {"token_embd.weight", 2, 4, 5},        {"output_norm.weight", 1, 4, 0},
        {"output_norm.bias", 1, 4, 0},         {"output.weight", 2, 4, 5},
        {"blk.0.attn_norm.weight", 1, 4, 0},   {"blk.0.attn_norm.bias", 1, 4, 0},
        {"blk.0.attn_qkv.weight", 2, 4, 8},    {"blk.0.attn_output.weight", 2, 4, 4},
        {"blk.0.ffn_up.weight", 2, 4, 8},      {"blk.0.ffn_down.weight", 2, 8, 4},
        {"blk.0.attn_norm_2.weight", 1, 4, 0}, {"blk.0.attn_norm_2.bias", 1, 4, 0},
        {"blk.0.attn_qkv.bias", 1, 8, 0},      {"blk.0.attn_output.bias", 1, 4, 0},
        {"blk.0.ffn_up.bias", 1, 8, 0},        {"blk.0.ffn_down.bias", 1, 4, 0},
    };
    const tdesc *ts = o->falcon ? falcon_ts : llama_ts;
    size_t n_ts = o->falcon == 1 ? 10 : o->falcon == 2 ? 16 : o->rope_freqs ? 13 : 12;
    unsigned long long rng = 12345;
    int nt = 0;
    for (size_t i = 0; i < n_ts; i++) {
        if (o->skip && strcmp(o->skip, ts[i].name) == 0) continue;
        int reps = o->dup_tensor && i == 2 ? 2 : 1;
        for (int rep = 0; rep < reps; rep++) {
            uint64_t ne1 = ts[i].ne1 + (o->bad_shape && strcmp(o->bad_shape, ts[i].name) == 0);
            while (dat.n % al) put_u8(&dat, 0);
            snprintf(r.t[nt].name, sizeof r.t[nt].name, "%s", ts[i].name);
            r.t[nt].nd = ts[i].nd;
            r.t[nt].ne[0] = ts[i].ne0;
            r.t[nt].ne[1] = ne1;
            put_str(&inf, ts[i].name);
            r.t[nt].off_ndims = inf.n;
            put_u32(&inf, (uint32_t)ts[i].nd);
            r.t[nt].off_ne = inf.n;
            put_u64(&inf, ts[i].ne0);
            if (ts[i].nd == 2) put_u64(&inf, ne1);
            r.t[nt].off_type = inf.n;
            put_u32(&inf, 0);
            r.t[nt].off_offset = inf.n;
            put_u64(&inf, dat.n);
            r.t[nt].data_off = dat.n;
            uint64_t nel = ts[i].ne0 * (ts[i].nd == 2 ? ne1 : 1);
            float v[256 * 2];
            sk_test_rand(v, (long)nel, -1, 1, &rng);
            if (i == 0) memcpy(r.emb, v, sizeof r.emb);
            put(&dat, v, nel * 4);
            nt++;
        }
    }
    r.n_t = nt;
    buf f = {0};
    put(&f, "GGUF", 4);
    put_u32(&f, 3);
    put_u64(&f, (uint64_t)nt);
    put_u64(&f, (uint64_t)kv_count);
    r.off_first_key = f.n;
    put(&f, kv.p, kv.n);
    size_t inf_base = f.n;
    put(&f, inf.p, inf.n);
    while (f.n % al) put_u8(&f, 0);
    size_t dat_base = f.n;
    put(&f, dat.p, dat.n);
    for (int i = 0; i < nt; i++) {
        r.t[i].off_ndims += inf_base;
        r.t[i].off_ne += inf_base;
        r.t[i].off_type += inf_base;
        r.t[i].off_offset += inf_base;
        r.t[i].data_off += dat_base;
    }
    free(kv.p);
    free(inf.p);
    free(dat.p);
    r.p = f.p;
    r.n = f.n;
    return r;
}

static int tensor_idx(const built *b, const char *name) {
    for (int i = 0; i < b->n_t; i++)
        if (strcmp(b->t[i].name, name) == 0) return i;
    return -1;
}

/* ---- helpers ------------------------------------------------------------------------------ */
static char g_dir[64];

static const char *write_tmp(const char *name, const void *p, size_t n) {
    static char path[8][256];
    static int k = 0;
    char *pp = path[k++ & 7];
    snprintf(pp, 256, "%s/%s", g_dir, name);
    FILE *fp = fopen(pp, "wb");
    if (!fp) {
        fprintf(stderr, "cannot write %s\n", pp);
        exit(1);
    }
    if (n) fwrite(p, 1, n, fp);
    fclose(fp);
    return pp;
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
    uint8_t *p = malloc(*n ? *n : 1);
    if (fread(p, 1, *n, fp) != *n) exit(1);
    fclose(fp);
    return p;
}

/* Loads image p[n] from a temp file and expects status want with a message naming the file and
 * containing frag (if not NULL). */
static void expect_fail(const char *label, const uint8_t *p, size_t n, sk_status want,
                        const char *frag) {
    const char *path = write_tmp(label, p, n);
    sk_model_file mf;
    sk_status s = sk_gguf_load(path, &mf);
    const char *e = sk_last_error();
    if (getenv("SK_TEST_VERBOSE")) fprintf(stderr, "%-18s %s\n", label, e);
    CHECKF(s == want, "%s: status %s, want %s (%s)", label, sk_status_name(s), sk_status_name(want),
           e);
    CHECKF(strstr(e, path) != NULL, "%s: message does not name the file: %s", label, e);
    CHECKF(!frag || strstr(e, frag) != NULL, "%s: message lacks '%s': %s", label, frag, e);
    CHECK(mf.n_tensors == 0 && mf.path == NULL && mf.n_maps == 0);
    if (s == SK_OK) sk_mf_free(&mf);
    unlink(path);
}

static void expect_opts_fail(const char *label, const opts *o, sk_status want, const char *frag) {
    built b = build(o);
    expect_fail(label, b.p, b.n, want, frag);
    free(b.p);
}

/* ---- tests -------------------------------------------------------------------------------- */
static void test_small_valid(void) {
    opts o = default_opts();
    built b = build(&o);
    const char *path = write_tmp("small.gguf", b.p, b.n);

    /* The reader: every value type. */
    sk_gguf_file g;
    sk_status s = sk_gguf_open(path, &g);
    CHECKF(s == SK_OK, "%s", sk_last_error());
    if (s == SK_OK) {
        int64_t v;
        double d;
        bool bv, found;
        CHECK(g.version == 3 && g.alignment == 32 && g.n_tensors == 12);
        CHECK(g.data_offset % 32 == 0 && g.data_offset == b.t[0].data_off);
        CHECK(sk_gguf_get_int(&g, "test.u8", 0, 0, 1000, &v, &found) == SK_OK && v == 200 && found);
        CHECK(sk_gguf_get_int(&g, "test.i8", 0, -10, 10, &v, NULL) == SK_OK && v == -5);
        CHECK(sk_gguf_get_int(&g, "test.u16", 0, 0, 100000, &v, NULL) == SK_OK && v == 60000);
        CHECK(sk_gguf_get_int(&g, "test.i16", 0, -40000, 0, &v, NULL) == SK_OK && v == -30000);
        CHECK(sk_gguf_get_int(&g, "test.i32", 0, -10, 0, &v, NULL) == SK_OK && v == -7);
        CHECK(sk_gguf_get_int(&g, "test.u64", 0, 0, INT64_MAX, &v, NULL) == SK_OK &&
              v == 1ll << 40);
        CHECK(sk_gguf_get_int(&g, "test.i64", 0, INT64_MIN, 0, &v, NULL) == SK_OK &&
              v == -(1ll << 40));
        CHECK(sk_gguf_get_int(&g, "absent.key", 42, 0, 100, &v, &found) == SK_OK && v == 42 &&
              !found);
        /* Out of range and wrong type name the key. */
        CHECK(sk_gguf_get_int(&g, "test.u8", 0, 0, 100, &v, NULL) == SK_ERR_FORMAT &&
              strstr(sk_last_error(), "test.u8") && strstr(sk_last_error(), path));
        CHECK(sk_gguf_get_int(&g, "test.f64", 0, 0, 100, &v, NULL) == SK_ERR_FORMAT &&
              strstr(sk_last_error(), "test.f64"));
        CHECK(sk_gguf_get_float(&g, "test.f64", 0, &d, NULL) == SK_OK && d == 0.125);
        CHECK(sk_gguf_get_float(&g, "llama.rope.freq_base", 0, &d, NULL) == SK_OK && d == 500000.0);
        CHECK(sk_gguf_get_bool(&g, "test.bool", false, &bv, NULL) == SK_OK && bv);
        CHECK(sk_gguf_get_bool(&g, "test.u8", false, &bv, NULL) == SK_ERR_FORMAT);
        sk_gguf_str str;
        CHECK(sk_gguf_get_str(&g, "general.architecture", &str) == SK_OK && str.len == 5 &&
              memcmp(str.ptr, "llama", 5) == 0);
        const sk_gguf_kv *kv;
        CHECK(sk_gguf_get_array(&g, "test.nested", SK_GGUF_ARRAY, &kv) == SK_OK && kv &&
              kv->arr_n == 1);
        CHECK(sk_gguf_get_array(&g, "tokenizer.ggml.scores", SK_GGUF_STRING, &kv) == SK_ERR_FORMAT);
        CHECK(sk_gguf_get_array(&g, "tokenizer.ggml.token_type", SK_GGUF_I64, &kv) == SK_OK && kv &&
              kv->arr_n == 5 && sk_gguf_arr_int(kv, 0) == 2 && sk_gguf_arr_int(kv, 4) == 1);
        CHECK(sk_gguf_get_array(&g, "tokenizer.ggml.tokens", SK_GGUF_STRING, &kv) == SK_OK && kv);
        if (kv) {
            sk_gguf_str ss[5];
            sk_gguf_str_array(kv, ss);
            CHECK(ss[0].len == 5 && memcmp(ss[0].ptr, "<unk>", 5) == 0);
            CHECK(ss[4].len == 1 && ss[4].ptr[0] == 'b');
        }
        const sk_gguf_tensor *t = sk_gguf_find_tensor(&g, "blk.0.ffn_down.weight");
        CHECK(t && t->n_dims == 2 && t->ne[0] == 8 && t->ne[1] == 4 && t->nbytes == 128 &&
              t->type == SK_F32 && t->ggml_type == 0);
        CHECK(sk_gguf_type_name(12) && strcmp(sk_gguf_type_name(12), "Q4_K") == 0);
        CHECK(sk_gguf_type_name(77) == NULL);
        sk_gguf_close(&g);
    }

    /* The loader. */
    sk_model_file mf;
    s = sk_gguf_load(path, &mf);
    CHECKF(s == SK_OK, "%s", sk_last_error());
    if (s == SK_OK) {
        const sk_hparams *hp = &mf.hp;
        CHECK(strcmp(mf.format, "gguf") == 0);
        CHECK(hp->arch == SK_ARCH_LLAMA && hp->n_layers == 1 && hp->dim == 4 && hp->n_heads == 2);
        CHECK(hp->n_kv_heads == 1 && hp->head_dim == 2 && hp->ffn_dim == 8 && hp->n_vocab == 5);
        CHECK(hp->n_ctx_train == 16 && hp->rope_theta == 500000.0f && hp->rope_dim == 2);
        CHECK(fabsf(hp->norm_eps - 1e-5f) < 1e-10f && hp->rope_pairing == SK_ROPE_ADJACENT);
        CHECK(hp->tied_output && !hp->parallel_attn);
        CHECK(mf.n_tensors == 12);
        const sk_tensor *t = sk_mf_find(&mf, "blk.0.ffn_gate.weight");
        CHECK(t && t->n_dims == 2 && t->shape[0] == 8 && t->shape[1] == 4 && t->nbytes == 128);
        t = sk_mf_find(&mf, "token_embd.weight");
        CHECK(t && t->shape[0] == 5 && t->shape[1] == 4 && t->data &&
              memcmp(t->data, b.emb, sizeof b.emb) == 0);
        CHECK(t && (const uint8_t *)t->data - mf.maps[0].data == (ptrdiff_t)b.t[0].data_off);
        const sk_vocab_data *v = &mf.vocab;
        CHECK(v->type == SK_VOCAB_SPM && v->n_tokens == 5 && v->bos == 1 && v->eos == 2);
        CHECK(v->unk == -1 && v->pad == -1 && v->eot == -1 && v->add_bos && !v->add_eos);
        CHECK(v->add_space_prefix && v->n_merges == 0 && v->pre == NULL);
        CHECK(v->tokens && strcmp(v->tokens[3], SPM_SPACE "a") == 0 && v->token_len[3] == 4);
        CHECK(v->scores && v->scores[4] == -4.0f && v->token_type && v->token_type[0] == 2);
        CHECK(v->chat_template && strcmp(v->chat_template, "{{ x }}") == 0);
        sk_mf_free(&mf);
    }

    /* Variants that load: version 2, alignment 64, no vocabulary, bos absent. */
    uint8_t *c = malloc(b.n);
    memcpy(c, b.p, b.n);
    patch_u32(c, 4, 2);
    path = write_tmp("v2.gguf", c, b.n);
    s = sk_gguf_load(path, &mf);
    CHECKF(s == SK_OK, "v2: %s", sk_last_error());
    if (s == SK_OK) sk_mf_free(&mf);
    free(c);

    opts o2 = default_opts();
    o2.alignment = 64;
    built b2 = build(&o2);
    path = write_tmp("al64.gguf", b2.p, b2.n);
    s = sk_gguf_load(path, &mf);
    CHECKF(s == SK_OK, "al64: %s", sk_last_error());
    if (s == SK_OK) {
        const sk_tensor *t = sk_mf_find(&mf, "token_embd.weight");
        CHECK(t && memcmp(t->data, b2.emb, sizeof b2.emb) == 0);
        CHECK(t && ((const uint8_t *)t->data - mf.maps[0].data) % 64 == 0);
        sk_mf_free(&mf);
    }
    free(b2.p);

    o2 = default_opts();
    o2.tok_model = NULL;
    b2 = build(&o2);
    path = write_tmp("novocab.gguf", b2.p, b2.n);
    s = sk_gguf_load(path, &mf);
    CHECKF(s == SK_OK, "novocab: %s", sk_last_error());
    if (s == SK_OK) {
        CHECK(mf.vocab.type == SK_VOCAB_NONE && mf.vocab.n_tokens == 0 && mf.vocab.bos == -1);
        sk_mf_free(&mf);
    }
    free(b2.p);

    o2 = default_opts();
    o2.bos = 0xFFFFFFFFu;
    b2 = build(&o2);
    path = write_tmp("nobos.gguf", b2.p, b2.n);
    s = sk_gguf_load(path, &mf);
    CHECKF(s == SK_OK, "nobos: %s", sk_last_error());
    if (s == SK_OK) {
        CHECK(mf.vocab.bos == -1 && mf.vocab.eos == 2);
        sk_mf_free(&mf);
    }
    free(b2.p);
    free(b.p);
}

static void test_falcon(void) {
    for (int variant = 1; variant <= 2; variant++) {
        opts o = default_opts();
        o.arch = "falcon";
        o.falcon = variant;
        o.eps = 1e-3f;
        built b = build(&o);
        const char *path = write_tmp("falcon.gguf", b.p, b.n);
        sk_model_file mf;
        sk_status s = sk_gguf_load(path, &mf);
        CHECKF(s == SK_OK, "falcon %d: %s", variant, sk_last_error());
        if (s == SK_OK) {
            const sk_hparams *hp = &mf.hp;
            CHECK(hp->arch == SK_ARCH_FALCON && hp->rope_pairing == SK_ROPE_HALVES);
            CHECK(hp->parallel_attn && !hp->tied_output && hp->norm_eps == 1e-3f);
            CHECK(hp->n_ln_per_layer == variant && hp->linear_bias == (variant == 2));
            CHECK(hp->n_heads == 2 && hp->n_kv_heads == 1 && hp->head_dim == 2);
            const sk_tensor *t = sk_mf_find(&mf, "blk.0.attn_qkv.weight");
            CHECK(t && t->shape[0] == 8 && t->shape[1] == 4);
            sk_mf_free(&mf);
        }
        free(b.p);
    }
    /* The falcon tensors under a llama architecture: llama tensors are missing. */
    opts o = default_opts();
    o.falcon = 1;
    built b = build(&o);
    expect_fail("falcon-as-llama.gguf", b.p, b.n, SK_ERR_FORMAT, "blk.0.attn_q.weight");
    free(b.p);
    /* Falcon without its output_norm.bias. */
    o = default_opts();
    o.arch = "falcon";
    o.falcon = 1;
    o.skip = "output_norm.bias";
    expect_opts_fail("falcon-nobias.gguf", &o, SK_ERR_FORMAT, "output_norm.bias");
}

/* Every prefix of the small file fails: parsed from an exact-size heap copy (so that ASan sees
 * any read past the end) and loaded from a file. */
static void test_truncations(void) {
    opts o = default_opts();
    built b = build(&o);
    int bad_parse = 0, bad_load = 0;
    for (size_t n = 0; n < b.n; n++) {
        uint8_t *c = malloc(n ? n : 1);
        memcpy(c, b.p, n);
        sk_gguf_file g;
        sk_status s = sk_gguf_parse("trunc.gguf", c, n, &g);
        if (s == SK_OK) {
            sk_gguf_close(&g);
            bad_parse++;
        } else if (s != SK_ERR_FORMAT || !strstr(sk_last_error(), "trunc.gguf")) {
            if (!bad_parse) fprintf(stderr, "prefix %zu: %s\n", n, sk_last_error());
            bad_parse++;
        }
        free(c);
        const char *path = write_tmp("trunc.gguf", b.p, n);
        sk_model_file mf;
        s = sk_gguf_load(path, &mf);
        if (s == SK_OK) sk_mf_free(&mf);
        if (s != SK_ERR_FORMAT || !strstr(sk_last_error(), path) || mf.n_tensors) bad_load++;
    }
    CHECKF(bad_parse == 0, "%d prefixes of %zu parsed or gave a wrong error", bad_parse, b.n);
    CHECKF(bad_load == 0, "%d prefixes of %zu loaded or gave a wrong error", bad_load, b.n);
    free(b.p);

    /* A sample of stories260K.gguf prefixes: dense in the metadata and tensor infos, sparse in
     * the data. */
    size_t n;
    uint8_t *p = read_file(sk_test_path("SK_DATA", "stories260K/stories260K.gguf"), &n);
    int tried = 0;
    bad_parse = 0;
    for (size_t k = 0; k < n; k = k < 16384 ? k + 97 : k + 40009) {
        size_t len = k == 0 ? 0 : k;
        uint8_t *c = malloc(len ? len : 1);
        memcpy(c, p, len);
        sk_gguf_file g;
        sk_status s = sk_gguf_parse("stories-trunc.gguf", c, len, &g);
        if (s == SK_OK) sk_gguf_close(&g);
        if (s != SK_ERR_FORMAT || !strstr(sk_last_error(), "stories-trunc.gguf")) bad_parse++;
        free(c);
        tried++;
    }
    for (size_t len = n - 64; len < n; len += 7) { /* inside the last tensor */
        const char *path = write_tmp("stories-trunc.gguf", p, len);
        sk_model_file mf;
        sk_status s = sk_gguf_load(path, &mf);
        if (s == SK_OK) sk_mf_free(&mf);
        if (s != SK_ERR_FORMAT || !strstr(sk_last_error(), path)) bad_parse++;
        tried++;
    }
    CHECKF(bad_parse == 0, "%d of %d stories260K prefixes parsed or gave a wrong error", bad_parse,
           tried);
    free(p);
}

/* Random byte mutations of the small file: each either loads or fails with a message naming the
 * file; never a crash, an out-of-bounds read (exact-size heap copy under ASan) or a leak. */
static void test_mutations(void) {
    opts o = default_opts();
    built b = build(&o);
    uint8_t *c = malloc(b.n);
    unsigned long long rng = 0x9e3779b97f4a7c15ull;
    int bad = 0, loaded = 0;
    const int N = 1500;
    for (int it = 0; it < N; it++) {
        memcpy(c, b.p, b.n);
        int nmut = 1 + (int)(rng % 4);
        for (int k = 0; k < nmut; k++) {
            rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
            /* Mostly the metadata and tensor infos, where the structure is. */
            size_t at = (size_t)(rng >> 20) % (it % 4 ? b.t[0].data_off : b.n);
            uint8_t val = (uint8_t)(rng >> 8);
            c[at] = (rng & 3) == 0 ? 0xff : (rng & 3) == 1 ? 0 : val;
        }
        uint8_t *h = malloc(b.n);
        memcpy(h, c, b.n);
        sk_gguf_file g;
        sk_status s = sk_gguf_parse("mut.gguf", h, b.n, &g);
        if (s == SK_OK)
            sk_gguf_close(&g);
        else if (!strstr(sk_last_error(), "mut.gguf"))
            bad++;
        free(h);
        if (it % 3 == 0) {
            const char *path = write_tmp("mut.gguf", c, b.n);
            sk_model_file mf;
            s = sk_gguf_load(path, &mf);
            if (s == SK_OK) {
                loaded++;
                sk_mf_free(&mf);
            } else if (!strstr(sk_last_error(), path) || mf.n_tensors || mf.n_allocs) {
                bad++;
            }
        }
    }
    CHECKF(bad == 0, "%d mutations gave a message without the file name or left mf filled", bad);
    if (getenv("SK_TEST_VERBOSE")) fprintf(stderr, "mutations: %d of %d loaded\n", loaded, N / 3);
    free(c);
    free(b.p);
}

static void test_malformed(void) {
    opts o = default_opts();
    built b = build(&o);
    uint8_t *c = malloc(b.n);
#define PATCHED(label, code, want, frag)                                                           \
    do {                                                                                           \
        memcpy(c, b.p, b.n);                                                                       \
        code;                                                                                      \
        expect_fail(label, c, b.n, want, frag);                                                    \
    } while (0)
    PATCHED("magic.gguf", c[0] = 'X', SK_ERR_FORMAT, "magic");
    PATCHED("v1.gguf", patch_u32(c, 4, 1), SK_ERR_UNSUPPORTED, "version 1");
    PATCHED("v99.gguf", patch_u32(c, 4, 99), SK_ERR_UNSUPPORTED, "version 99");
    PATCHED("bigendian.gguf", patch_u32(c, 4, 0x03000000u), SK_ERR_UNSUPPORTED, "big-endian");
    PATCHED("ntensors.gguf", patch_u64(c, 8, 1ull << 62), SK_ERR_FORMAT, "tensors");
    PATCHED("nkv.gguf", patch_u64(c, 16, 1ull << 40), SK_ERR_FORMAT, "key/value");
    PATCHED("nkv-max.gguf", patch_u64(c, 16, UINT64_MAX), SK_ERR_FORMAT, "key/value");
    PATCHED("keylen.gguf", patch_u64(c, b.off_first_key, 1ull << 50), SK_ERR_FORMAT,
            "string length");
    PATCHED("keylen-max.gguf", patch_u64(c, b.off_first_key, UINT64_MAX), SK_ERR_FORMAT,
            "string length");
    PATCHED("toklen.gguf", patch_u64(c, b.off_tok_str, 1ull << 60), SK_ERR_FORMAT,
            "tokenizer.ggml.tokens");

    int q = tensor_idx(&b, "blk.0.attn_q.weight");
    int ex = tensor_idx(&b, "test.extra");
    int last = b.n_t - 1;
    PATCHED("ndims5.gguf", patch_u32(c, b.t[q].off_ndims, 5), SK_ERR_FORMAT, "n_dims = 5");
    PATCHED("ndims0.gguf", patch_u32(c, b.t[q].off_ndims, 0), SK_ERR_FORMAT, "blk.0.attn_q.weight");
    PATCHED("dim2e40.gguf", patch_u64(c, b.t[q].off_ne, 1ull << 40), SK_ERR_FORMAT,
            "blk.0.attn_q.weight");
    PATCHED("dimoverflow.gguf",
            (patch_u64(c, b.t[q].off_ne, 1ull << 40), patch_u64(c, b.t[q].off_ne + 8, 1ull << 40)),
            SK_ERR_FORMAT, "overflow");
    PATCHED("dimneg.gguf", patch_u64(c, b.t[q].off_ne, UINT64_MAX), SK_ERR_FORMAT, "overflow");
    PATCHED("type77.gguf", patch_u32(c, b.t[q].off_type, 77), SK_ERR_UNSUPPORTED, "77");
    PATCHED("q4k.gguf", patch_u32(c, b.t[ex].off_type, 12), SK_ERR_UNSUPPORTED, "Q4_K (type 12)");
    PATCHED("q4k-row.gguf", patch_u32(c, b.t[q].off_type, 12), SK_ERR_FORMAT, "Q4_K block");
    PATCHED("removed.gguf", patch_u32(c, b.t[q].off_type, 4), SK_ERR_UNSUPPORTED, "Q4_2");
    PATCHED("offset-end.gguf", patch_u64(c, b.t[last].off_offset, 1ull << 20), SK_ERR_FORMAT,
            "past the end");
    PATCHED("offset-huge.gguf", patch_u64(c, b.t[last].off_offset, UINT64_MAX - 31), SK_ERR_FORMAT,
            "past the end");
    {
        uint64_t off;
        memcpy(&off, b.p + b.t[q].off_offset, 8);
        PATCHED("misaligned.gguf", patch_u64(c, b.t[q].off_offset, off + 4), SK_ERR_FORMAT,
                "alignment");
    }
    free(c);
#undef PATCHED
    free(b.p);

    /* Built wrong. */
    opts x = default_opts();
    x.arch = "gpt2";
    expect_opts_fail("arch.gguf", &x, SK_ERR_UNSUPPORTED, "'gpt2'");
    x = default_opts();
    x.rope_scaling = "linear";
    expect_opts_fail("ropescale.gguf", &x, SK_ERR_UNSUPPORTED, "linear");
    x = default_opts();
    x.rope_freqs = true;
    expect_opts_fail("ropefreqs.gguf", &x, SK_ERR_UNSUPPORTED, "rope_freqs.weight");
    x = default_opts();
    x.value_length = 4;
    expect_opts_fail("vlen.gguf", &x, SK_ERR_UNSUPPORTED, "value_length");
    x = default_opts();
    x.vocab_size = 6;
    expect_opts_fail("vocabsize.gguf", &x, SK_ERR_FORMAT, "llama.vocab_size");
    x = default_opts();
    x.skip = "blk.0.ffn_down.weight";
    expect_opts_fail("missing.gguf", &x, SK_ERR_FORMAT, "blk.0.ffn_down.weight");
    x = default_opts();
    x.skip = "token_embd.weight";
    expect_opts_fail("missing-emb.gguf", &x, SK_ERR_FORMAT, "token_embd.weight");
    x = default_opts();
    x.bad_shape = "blk.0.attn_k.weight";
    expect_opts_fail("shape.gguf", &x, SK_ERR_FORMAT, "blk.0.attn_k.weight");
    x = default_opts();
    x.alignment = 24;
    expect_opts_fail("align24.gguf", &x, SK_ERR_FORMAT, "general.alignment");
    x = default_opts();
    x.n_scores = 4;
    expect_opts_fail("scores.gguf", &x, SK_ERR_FORMAT, "tokenizer.ggml.scores");
    x = default_opts();
    x.bos = 5;
    expect_opts_fail("bos.gguf", &x, SK_ERR_FORMAT, "tokenizer.ggml.bos_token_id");
    x = default_opts();
    x.tok_model = "bert";
    expect_opts_fail("tokmodel.gguf", &x, SK_ERR_UNSUPPORTED, "bert");
    x = default_opts();
    x.tok_model = "gpt2"; /* no merges */
    expect_opts_fail("nomerges.gguf", &x, SK_ERR_FORMAT, "merges");
    x = default_opts();
    x.dup_key = true;
    expect_opts_fail("dupkey.gguf", &x, SK_ERR_FORMAT, "test.u8");
    x = default_opts();
    x.dup_tensor = true;
    expect_opts_fail("duptensor.gguf", &x, SK_ERR_FORMAT, "blk.0.attn_norm.weight");
    x = default_opts();
    x.nest = SK_GGUF_MAX_ARRAY_DEPTH + 1;
    expect_opts_fail("nest.gguf", &x, SK_ERR_FORMAT, "test.nested");
    x = default_opts();
    x.nest = SK_GGUF_MAX_ARRAY_DEPTH;
    {
        built bb = build(&x);
        const char *path = write_tmp("nest-ok.gguf", bb.p, bb.n);
        sk_model_file mf;
        sk_status s = sk_gguf_load(path, &mf);
        CHECKF(s == SK_OK, "nest-ok: %s", sk_last_error());
        if (s == SK_OK) sk_mf_free(&mf);
        free(bb.p);
    }

    expect_fail("empty.gguf", (const uint8_t *)"", 0, SK_ERR_FORMAT, NULL);
    sk_model_file mf;
    const char *nopath = "/nonexistent/dir/model.gguf";
    CHECK(sk_gguf_load(nopath, &mf) == SK_ERR_IO && strstr(sk_last_error(), nopath));
}

static void test_stories(void) {
    const char *gp = sk_test_path("SK_DATA", "stories260K/stories260K.gguf");
    const char *bp = sk_test_path("SK_DATA", "stories260K/stories260K.bin");
    const char *tp = sk_test_path("SK_DATA", "stories260K/tok512.bin");
    sk_model_file g, l;
    sk_status s = sk_gguf_load(gp, &g);
    CHECKF(s == SK_OK, "%s", sk_last_error());
    if (s != SK_OK) return;
    /* Values from stories260K/README.md. */
    const sk_hparams *hp = &g.hp;
    CHECK(hp->arch == SK_ARCH_LLAMA && hp->dim == 64 && hp->ffn_dim == 172 && hp->n_layers == 5);
    CHECK(hp->n_heads == 8 && hp->n_kv_heads == 4 && hp->head_dim == 8 && hp->n_vocab == 512);
    CHECK(hp->n_ctx_train == 2048 && hp->rope_dim == 8 && hp->rope_theta == 10000.0f);
    CHECK(fabsf(hp->norm_eps - 1e-5f) < 1e-10f && hp->rope_pairing == SK_ROPE_ADJACENT);
    CHECK(!hp->tied_output && g.n_tensors == 48);
    const sk_vocab_data *gv = &g.vocab;
    CHECK(gv->type == SK_VOCAB_SPM && gv->n_tokens == 512 && gv->bos == 1 && gv->eos == 2);
    CHECK(gv->unk == 0 && gv->pad == -1 && gv->add_bos && gv->add_space_prefix);

    s = sk_llama2c_load(bp, tp, &l);
    CHECKF(s == SK_OK, "%s", sk_last_error());
    if (s == SK_OK) {
        /* Every .bin tensor equals the GGUF tensor byte for byte (the shared classifier is the
         * GGUF's output.weight). */
        CHECK(l.hp.tied_output && l.n_tensors == 47);
        int same = 0;
        for (int i = 0; i < l.n_tensors; i++) {
            const sk_tensor *a = &l.tensors[i];
            const sk_tensor *bt = sk_mf_find(&g, a->name);
            bool ok = bt && bt->type == a->type && bt->n_dims == a->n_dims &&
                      bt->nbytes == a->nbytes &&
                      memcmp(bt->shape, a->shape, sizeof a->shape) == 0 &&
                      memcmp(bt->data, a->data, a->nbytes) == 0;
            CHECKF(ok, "tensor %s differs between %s and %s", a->name, bp, gp);
            same += ok;
        }
        CHECK(same == 47);
        const sk_tensor *out = sk_mf_find(&g, "output.weight");
        const sk_tensor *emb = sk_mf_find(&l, "token_embd.weight");
        CHECK(out && emb && out->nbytes == emb->nbytes &&
              memcmp(out->data, emb->data, emb->nbytes) == 0);
        CHECK(l.hp.dim == hp->dim && l.hp.n_layers == hp->n_layers && l.hp.n_heads == hp->n_heads &&
              l.hp.n_kv_heads == hp->n_kv_heads && l.hp.ffn_dim == hp->ffn_dim &&
              l.hp.head_dim == hp->head_dim && l.hp.rope_dim == hp->rope_dim &&
              l.hp.rope_pairing == hp->rope_pairing && l.hp.n_ctx_train == 512);
        /* The two vocabularies agree except for the texts of <s> and </s> (tok512.bin has
         * "\n<s>\n"): same texts (after the space -> U+2581 conversion), scores, types. */
        const sk_vocab_data *lv = &l.vocab;
        CHECK(lv->type == SK_VOCAB_SPM && lv->n_tokens == 512);
        int diff = 0;
        for (int i = 0; i < 512 && lv->n_tokens == 512; i++) {
            bool ok = lv->scores[i] == gv->scores[i] && lv->token_type[i] == gv->token_type[i];
            if (i != 1 && i != 2)
                ok = ok && lv->token_len[i] == gv->token_len[i] &&
                     strcmp(lv->tokens[i], gv->tokens[i]) == 0;
            if (!ok && diff++ < 5)
                fprintf(stderr, "token %d: '%s' %g %d vs '%s' %g %d\n", i, lv->tokens[i],
                        (double)lv->scores[i], lv->token_type[i], gv->tokens[i],
                        (double)gv->scores[i], gv->token_type[i]);
        }
        CHECKF(diff == 0, "%d tokens differ", diff);
        CHECK(lv->bos == gv->bos && lv->eos == gv->eos && lv->unk == gv->unk &&
              lv->add_bos == gv->add_bos && lv->add_space_prefix == gv->add_space_prefix);
        sk_mf_free(&l);
    }
    sk_mf_free(&g);
}

static void test_smollm2(void) {
    const char *path = sk_test_env("SK_SMOLLM2");
    sk_model_file mf;
    sk_status s = sk_gguf_load(path, &mf);
    CHECKF(s == SK_OK, "%s", sk_last_error());
    if (s != SK_OK) return;
    const sk_hparams *hp = &mf.hp;
    CHECK(hp->arch == SK_ARCH_LLAMA && hp->n_layers == 30 && hp->dim == 576);
    CHECK(hp->n_heads == 9 && hp->n_kv_heads == 3 && hp->head_dim == 64 && hp->ffn_dim == 1536);
    CHECK(hp->n_vocab == 49152 && hp->rope_theta == 100000.0f && hp->n_ctx_train == 8192);
    CHECK(hp->rope_dim == 64 && hp->tied_output && mf.n_tensors == 272);
    const sk_vocab_data *v = &mf.vocab;
    CHECK(v->type == SK_VOCAB_BPE && v->n_tokens == 49152 && v->n_merges == 48900);
    CHECK(v->bos == 1 && v->eos == 2 && v->unk == 0 && v->pad == 2);
    CHECK(!v->add_bos && !v->add_space_prefix && v->scores == NULL && v->token_type);
    CHECK(v->pre && strcmp(v->pre, "smollm") == 0);
    CHECK(v->chat_template && strstr(v->chat_template, "<|im_start|>"));
    CHECK(v->n_tokens == 49152 && strcmp(v->tokens[1], "<|im_start|>") == 0);
    CHECK(v->n_merges > 0 && strchr(v->merges[0], ' ') != NULL);
    const sk_tensor *t = sk_mf_find(&mf, "token_embd.weight");
    CHECK(t && t->type == SK_Q8_0 && t->shape[0] == 49152 && t->shape[1] == 576);
    CHECK(t && t->nbytes == (size_t)49152 * 576 / 32 * 34);
    t = sk_mf_find(&mf, "blk.0.ffn_down.weight");
    CHECK(t && t->type == SK_Q4_1 && t->shape[0] == 576 && t->shape[1] == 1536);
    t = sk_mf_find(&mf, "token_embd.weight");
    if (t) {
        float row[576];
        sk_dequant_row(t->type, t->data, row, 576);
        int finite = 0, nonzero = 0;
        for (int i = 0; i < 576; i++) {
            finite += isfinite(row[i]) && fabsf(row[i]) < 100.0f;
            nonzero += row[i] != 0.0f;
        }
        CHECK(finite == 576 && nonzero > 0);
    }
    sk_mf_free(&mf);
}

int main(void) {
    snprintf(g_dir, sizeof g_dir, "/tmp/sk_test_gguf_XXXXXX");
    if (!mkdtemp(g_dir)) {
        perror("mkdtemp");
        return 1;
    }
    test_small_valid();
    test_falcon();
    test_truncations();
    test_malformed();
    test_mutations();
    test_stories();
    test_smollm2();
    /* Remove whatever is left in the temp dir. */
    static const char *left[] = {"small.gguf",  "v2.gguf",    "al64.gguf",          "novocab.gguf",
                                 "nobos.gguf",  "trunc.gguf", "stories-trunc.gguf", "nest-ok.gguf",
                                 "falcon.gguf", "mut.gguf"};
    for (size_t i = 0; i < sizeof left / sizeof left[0]; i++) {
        char p[256];
        snprintf(p, sizeof p, "%s/%s", g_dir, left[i]);
        unlink(p);
    }
    if (rmdir(g_dir) != 0) fprintf(stderr, "note: %s not empty\n", g_dir);
    return sk_test_done("test_gguf");
}
