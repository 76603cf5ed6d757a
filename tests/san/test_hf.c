/* Hugging Face directory loader (src/io/hf.c, src/io/safetensors.c) under ASan + UBSan.
 * Tiny model directories are written from here: config.json, tokenizer files and safetensors
 * files serialised by hand (an independent writer), then loaded and compared tensor by tensor.
 * Values are multiples of 1/64 below 2 in magnitude, or small integers, so they are exact in F32,
 * F16 and BF16 and comparisons can be exact. Falcon's fused QKV is built here from separate Q, K,
 * V matrices in each of transformers' three layouts, and the loaded tensor must be [Q; K; V]. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp */
#endif
#include "io/safetensors.h"
#include "model/model_file.h"
#include "testlib.h"

#include <dirent.h>
#include <jansson.h>
#include <stdint.h>
#include <sys/stat.h>
#include <unistd.h>

/* ------------------------------------------------------------------------------------------ */
/* Writing files                                                                              */

static void write_bytes(const char *dir, const char *name, const void *data, size_t n) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    FILE *f = fopen(p, "wb");
    if (!f) {
        fprintf(stderr, "cannot write %s\n", p);
        exit(1);
    }
    if (n) fwrite(data, 1, n, f);
    fclose(f);
}

static void write_text(const char *dir, const char *name, const char *text) {
    write_bytes(dir, name, text, strlen(text));
}

static void rm_file(const char *dir, const char *name) {
    char p[4096];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    unlink(p);
}

static char *new_dir(void) {
    char tmpl[] = "/tmp/sk_test_hf_XXXXXX";
    char *d = mkdtemp(tmpl);
    if (!d) {
        fprintf(stderr, "mkdtemp failed\n");
        exit(1);
    }
    return strdup(d);
}

static void rm_dir(char *dir) {
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d)))
        if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) rm_file(dir, e->d_name);
    if (d) closedir(d);
    rmdir(dir);
    free(dir);
}

/* One tensor to write: HF name, dtype, shape, file values; canon is the name the loader must
 * give it (NULL: must be ignored); expect the values it must have once loaded (NULL: vals). */
typedef struct wt {
    char name[128];
    const char *dtype;
    int nd;
    int64_t shape[5];
    float *vals;
    const char *canon_p;
    char canon[96];
    float *expect;
    int64_t n;
} wt;

#define MAX_WT 64
typedef struct builder {
    wt t[MAX_WT];
    int n;
    unsigned long long rng;
} builder;

static void b_free(builder *b) {
    for (int i = 0; i < b->n; i++) {
        free(b->t[i].vals);
        free(b->t[i].expect);
    }
    b->n = 0;
}

static int dtype_size(const char *dt) {
    return strcmp(dt, "F32") == 0                                ? 4
           : (strcmp(dt, "F16") == 0 || strcmp(dt, "BF16") == 0) ? 2
           : strcmp(dt, "I64") == 0 || strcmp(dt, "F64") == 0    ? 8
                                                                 : 1;
}

static sk_dtype dtype_of(const char *dt) {
    return strcmp(dt, "F32") == 0 ? SK_F32 : strcmp(dt, "F16") == 0 ? SK_F16 : SK_BF16;
}

/* Adds a tensor with random values k/64, |k| <= 127 (exact in all three float types). */
static wt *b_add(builder *b, const char *name, const char *canon, const char *dtype, int nd,
                 int64_t d0, int64_t d1) {
    if (b->n == MAX_WT) {
        fprintf(stderr, "builder full\n");
        exit(1);
    }
    wt *t = &b->t[b->n++];
    memset(t, 0, sizeof *t);
    snprintf(t->name, sizeof t->name, "%s", name);
    if (canon) {
        snprintf(t->canon, sizeof t->canon, "%s", canon);
        t->canon_p = t->canon;
    }
    t->dtype = dtype;
    t->nd = nd;
    t->shape[0] = d0;
    t->shape[1] = d1;
    t->n = nd == 1 ? d0 : d0 * d1;
    t->vals = calloc((size_t)t->n, sizeof(float));
    float *r = calloc((size_t)t->n, sizeof(float));
    sk_test_rand(r, t->n, -127.0f, 128.0f, &b->rng);
    for (int64_t i = 0; i < t->n; i++) t->vals[i] = floorf(r[i]) / 64.0f;
    free(r);
    return t;
}

static void encode(const wt *t, uint8_t *out) {
    for (int64_t i = 0; i < t->n; i++) {
        if (strcmp(t->dtype, "F32") == 0) {
            memcpy(out + 4 * i, &t->vals[i], 4);
        } else {
            uint32_t u;
            memcpy(&u, &t->vals[i], 4);
            /* vals are exact in the target type: truncation is exact */
            uint16_t h;
            if (strcmp(t->dtype, "BF16") == 0) {
                h = (uint16_t)(u >> 16);
            } else {
                /* f32 -> f16 for normal numbers, zero and powers of two >= 2^-14 */
                uint32_t sign = (u >> 16) & 0x8000, au = u & 0x7fffffffu;
                if (au == 0)
                    h = (uint16_t)sign;
                else
                    h = (uint16_t)(sign | ((((au >> 23) - 112) << 10) | ((au & 0x7fffff) >> 13)));
            }
            out[2 * i] = (uint8_t)h;
            out[2 * i + 1] = (uint8_t)(h >> 8);
        }
    }
}

/* Writes a safetensors file of b's tensors [from, to). misalign: a 1-byte U8 tensor first, so
 * every following tensor sits at an odd offset. */
static void write_st(const char *dir, const char *file, const builder *b, int from, int to,
                     bool misalign) {
    size_t cap = 1 << 16, hn = 0, off = 0;
    char *h = malloc(cap);
    hn += (size_t)snprintf(h + hn, cap - hn, "{\"__metadata__\":{\"format\":\"pt\"}");
    if (misalign) {
        hn +=
            (size_t)snprintf(h + hn, cap - hn,
                             ",\"zz.pad\":{\"dtype\":\"U8\",\"shape\":[1],\"data_offsets\":[0,1]}");
        off = 1;
    }
    for (int i = from; i < to; i++) {
        const wt *t = &b->t[i];
        size_t nb = (size_t)t->n * (size_t)dtype_size(t->dtype);
        hn += (size_t)snprintf(h + hn, cap - hn, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name,
                               t->dtype);
        for (int d = 0; d < t->nd; d++)
            hn +=
                (size_t)snprintf(h + hn, cap - hn, "%s%lld", d ? "," : "", (long long)t->shape[d]);
        hn += (size_t)snprintf(h + hn, cap - hn, "],\"data_offsets\":[%zu,%zu]}", off, off + nb);
        off += nb;
    }
    hn += (size_t)snprintf(h + hn, cap - hn, "}");
    while (hn % 8) h[hn++] = ' ';
    uint8_t *img = calloc(8 + hn + off, 1);
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)((uint64_t)hn >> (8 * i));
    memcpy(img + 8, h, hn);
    size_t o = 8 + hn + (misalign ? 1 : 0);
    if (misalign) img[8 + hn] = 0x5a;
    for (int i = from; i < to; i++) {
        const wt *t = &b->t[i];
        if (strcmp(t->dtype, "F32") && strcmp(t->dtype, "F16") && strcmp(t->dtype, "BF16")) {
            memset(img + o, 0x11, (size_t)t->n * (size_t)dtype_size(t->dtype));
        } else {
            encode(t, img + o);
        }
        o += (size_t)t->n * (size_t)dtype_size(t->dtype);
    }
    write_bytes(dir, file, img, o);
    free(img);
    free(h);
}

/* ------------------------------------------------------------------------------------------ */
/* Checking                                                                                   */

/* Every tensor of b with a canonical name is in mf with that name, shape, dtype and values;
 * nothing else is. */
static void check_tensors(const sk_model_file *mf, const builder *b, const char *what) {
    int expected = 0;
    for (int i = 0; i < b->n; i++) {
        const wt *w = &b->t[i];
        if (!w->canon_p) continue;
        expected++;
        const sk_tensor *t = sk_mf_find(mf, w->canon);
        CHECKF(t != NULL, "%s: %s (from %s) missing", what, w->canon, w->name);
        if (!t) continue;
        CHECKF(t->type == dtype_of(w->dtype), "%s: %s type %d", what, w->canon, t->type);
        CHECKF(t->n_dims == w->nd, "%s: %s n_dims %d", what, w->canon, t->n_dims);
        bool shape_ok = t->n_dims == w->nd;
        for (int d = 0; shape_ok && d < w->nd; d++) shape_ok = t->shape[d] == w->shape[d];
        CHECKF(shape_ok, "%s: %s shape", what, w->canon);
        CHECKF(t->nbytes == (size_t)w->n * (size_t)dtype_size(w->dtype), "%s: %s nbytes %zu", what,
               w->canon, t->nbytes);
        CHECKF((uintptr_t)t->data % (uintptr_t)dtype_size(w->dtype) == 0, "%s: %s misaligned", what,
               w->canon);
        if (!shape_ok) continue;
        float *got = malloc((size_t)w->n * sizeof(float));
        sk_dequant_row(t->type, t->data, got, w->n);
        const float *exp = w->expect ? w->expect : w->vals;
        int64_t bad = -1;
        for (int64_t k = 0; k < w->n && bad < 0; k++)
            if (memcmp(&got[k], &exp[k], 4) != 0) bad = k;
        CHECKF(bad < 0, "%s: %s element %lld: got %g, expected %g", what, w->canon, (long long)bad,
               bad < 0 ? 0.0 : (double)got[bad], bad < 0 ? 0.0 : (double)exp[bad]);
        free(got);
    }
    CHECKF(mf->n_tensors == expected, "%s: %d tensors loaded, expected %d", what, mf->n_tensors,
           expected);
}

static bool mf_is_empty(const sk_model_file *mf) {
    return mf->n_tensors == 0 && mf->tensors == NULL && mf->path == NULL && mf->n_maps == 0 &&
           mf->n_allocs == 0 && mf->vocab.tokens == NULL;
}

/* Loading dir must fail with status code and a message containing every string of needles. */
static void expect_fail(const char *dir, sk_status code, const char *what, const char *n1,
                        const char *n2) {
    sk_model_file mf;
    sk_status s = sk_hf_load(dir, &mf);
    const char *msg = sk_last_error();
    CHECKF(s == code, "%s: status %s, expected %s (%s)", what, sk_status_name(s),
           sk_status_name(code), msg);
    CHECKF(n1 == NULL || strstr(msg, n1), "%s: message '%s' lacks '%s'", what, msg, n1);
    CHECKF(n2 == NULL || strstr(msg, n2), "%s: message '%s' lacks '%s'", what, msg, n2);
    CHECKF(mf_is_empty(&mf), "%s: mf not empty after failure", what);
    if (s == SK_OK) sk_mf_free(&mf);
}

static sk_status load(const char *dir, sk_model_file *mf, const char *what) {
    sk_status s = sk_hf_load(dir, mf);
    CHECKF(s == SK_OK, "%s: load failed: %s", what, sk_last_error());
    return s;
}

/* ------------------------------------------------------------------------------------------ */
/* Models                                                                                     */

typedef struct llama_dims {
    int V, D, H, KV, hd, F, L;
} llama_dims;

static const char *k_dts[] = {"F32", "F16", "BF16"};

/* All Llama tensors; dtypes cycle through F32/F16/BF16. lm_head: write lm_head.weight; tied:
 * it must then be ignored. */
static void build_llama(builder *b, llama_dims d, bool lm_head, bool tied) {
    int k = 0;
    b_add(b, "model.embed_tokens.weight", "token_embd.weight", k_dts[k++ % 3], 2, d.V, d.D);
    for (int l = 0; l < d.L; l++) {
        char hn[128], cn[96];
#define LT(hf, cc, nd, a, c)                                                                       \
    snprintf(hn, sizeof hn, "model.layers.%d.%s", l, hf);                                          \
    snprintf(cn, sizeof cn, "blk.%d.%s", l, cc);                                                   \
    b_add(b, hn, cn, k_dts[k++ % 3], nd, a, c)
        LT("input_layernorm.weight", "attn_norm.weight", 1, d.D, 0);
        LT("self_attn.q_proj.weight", "attn_q.weight", 2, d.H * d.hd, d.D);
        LT("self_attn.k_proj.weight", "attn_k.weight", 2, d.KV * d.hd, d.D);
        LT("self_attn.v_proj.weight", "attn_v.weight", 2, d.KV * d.hd, d.D);
        LT("self_attn.o_proj.weight", "attn_output.weight", 2, d.D, d.H * d.hd);
        LT("post_attention_layernorm.weight", "ffn_norm.weight", 1, d.D, 0);
        LT("mlp.gate_proj.weight", "ffn_gate.weight", 2, d.F, d.D);
        LT("mlp.up_proj.weight", "ffn_up.weight", 2, d.F, d.D);
        LT("mlp.down_proj.weight", "ffn_down.weight", 2, d.D, d.F);
#undef LT
        /* unused buffers that real checkpoints carry */
        snprintf(hn, sizeof hn, "model.layers.%d.self_attn.rotary_emb.inv_freq", l);
        b_add(b, hn, NULL, "F32", 1, d.hd / 2, 0);
    }
    b_add(b, "model.norm.weight", "output_norm.weight", k_dts[k++ % 3], 1, d.D, 0);
    if (lm_head)
        b_add(b, "lm_head.weight", tied ? NULL : "output.weight", k_dts[k++ % 3], 2, d.V, d.D);
}

/* Byte-level BPE tokenizer: 10 vocab entries + 4 added (ids 10..13). */
static const char k_tok_bytelevel[] =
    "{\"version\":\"1.0\",\"added_tokens\":["
    "{\"id\":10,\"content\":\"<|endoftext|>\",\"special\":true},"
    "{\"id\":11,\"content\":\"<|im_start|>\",\"special\":true},"
    "{\"id\":12,\"content\":\"<|im_end|>\",\"special\":true},"
    "{\"id\":13,\"content\":\"<tool>\",\"special\":false}],"
    "\"normalizer\":null,"
    "\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
    "{\"type\":\"Split\",\"pattern\":{\"Regex\":\"\\\\p{N}{1,3}\"},\"behavior\":\"Isolated\","
    "\"invert\":false},"
    "{\"type\":\"Digits\",\"individual_digits\":true},"
    "{\"type\":\"Split\",\"pattern\":{\"String\":\"a.b\"},\"behavior\":\"Isolated\",\"invert\":"
    "false},"
    "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"trim_offsets\":true,\"use_regex\":true}]}"
    ","
    "\"post_processor\":{\"type\":\"TemplateProcessing\",\"single\":["
    "{\"SpecialToken\":{\"id\":\"<|im_start|>\",\"type_id\":0}},{\"Sequence\":{\"id\":\"A\","
    "\"type_id\":0}}],\"pair\":[],\"special_tokens\":{}},"
    "\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"dropout\":null,\"unk_token\":null,\"byte_fallback\":false,"
    "\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4,\"\xc4\xa0\":5,\"\xc4\xa0"
    "a\":6,"
    "\"1\":7,\"2\":8,\"12\":9,\"<|endoftext|>\":10},"
    "\"merges\":[\"a b\",\"ab c\",\"\xc4\xa0 a\",\"1 2\"]}}";

/* Same vocabulary, merges as pairs, a plain ByteLevel pre-tokenizer with a prefix space. */
static const char k_tok_bytelevel_pairs[] =
    "{\"added_tokens\":[{\"id\":10,\"content\":\"<|endoftext|>\",\"special\":true}],"
    "\"pre_tokenizer\":{\"type\":\"ByteLevel\",\"add_prefix_space\":true},"
    "\"decoder\":{\"type\":\"ByteLevel\"},"
    "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"abc\":4,"
    "\"\xc4\xa0\":5,\"\xc4\xa0"
    "a\":6,\"1\":7,\"2\":8,\"12\":9,\"<|endoftext|>\":10},"
    "\"merges\":[[\"a\",\"b\"],[\"ab\",\"c\"],[\"\xc4\xa0\",\"a\"],[\"1\",\"2\"]]}}";

#define SPM_SP "\xe2\x96\x81" /* U+2581 */
/* Llama-2 style: byte_fallback, normalizer Prepend + Replace, no pre-tokenizer. */
#define SPM_NORM                                                                                   \
    "{\"type\":\"Sequence\",\"normalizers\":[{\"type\":\"Prepend\",\"prepend\":\"" SPM_SP          \
    "\"},{\"type\":\"Replace\",\"pattern\":{\"String\":\" \"},\"content\":\"" SPM_SP "\"}]}"
/* The SentencePiece-style tokenizer.json with the given normalizer and pre_tokenizer JSON. */
static void spm_json(char *buf, size_t cap, const char *normalizer, const char *pre) {
    snprintf(buf, cap,
             "{\"added_tokens\":[{\"id\":0,\"content\":\"<unk>\",\"special\":true},"
             "{\"id\":1,\"content\":\"<s>\",\"special\":true},{\"id\":2,\"content\":\"</s>\","
             "\"special\":true}],\"normalizer\":%s,\"pre_tokenizer\":%s,"
             "\"decoder\":{\"type\":\"Sequence\",\"decoders\":[{\"type\":\"ByteFallback\"},"
             "{\"type\":\"Fuse\"}]},"
             "\"model\":{\"type\":\"BPE\",\"unk_token\":\"<unk>\",\"byte_fallback\":true,"
             "\"fuse_unk\":true,"
             "\"vocab\":{\"<unk>\":0,\"<s>\":1,\"</s>\":2,\"<0x0A>\":3,\"<0xFF>\":4,\"" SPM_SP
             "\":5,\"t\":6,\"h\":7,\"e\":8,\"" SPM_SP "t\":9,\"he\":10,\"" SPM_SP
             "the\":11,\"th\":12,\"xyz\":13,\"x\":14,\"y\":15},"
             "\"merges\":[\"" SPM_SP " t\",\"h e\",\"" SPM_SP "t he\",\"t h\"]}}",
             normalizer, pre);
}

static const char k_gpt2_re[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static void write_llama_config(const char *dir, llama_dims d, const char *extra) {
    char cfg[2048];
    snprintf(
        cfg, sizeof cfg,
        "{\"architectures\":[\"LlamaForCausalLM\"],\"model_type\":\"llama\",\"vocab_size\":%d,"
        "\"hidden_size\":%d,\"num_attention_heads\":%d,\"num_key_value_heads\":%d,"
        "\"head_dim\":%d,\"intermediate_size\":%d,\"num_hidden_layers\":%d,"
        "\"max_position_embeddings\":64,\"rms_norm_eps\":1e-05,\"torch_dtype\":\"bfloat16\"%s}",
        d.V, d.D, d.H, d.KV, d.hd, d.F, d.L, extra);
    write_text(dir, "config.json", cfg);
}

/* Llama GQA, untied, mixed dtypes, misaligned tensors; byte-level tokenizer with every side file.
 */
static void test_llama_untied(void) {
    char *dir = new_dir();
    builder b = {.rng = 11};
    llama_dims d = {.V = 16, .D = 8, .H = 4, .KV = 2, .hd = 4, .F = 12, .L = 2};
    build_llama(&b, d, true, false);
    b_add(&b, "model.position_ids", NULL, "I64", 1, 8, 0); /* unused, unsupported dtype: ignored */
    write_st(dir, "model.safetensors", &b, 0, b.n, true);
    write_llama_config(dir, d,
                       ",\"rope_theta\":500000.0,\"tie_word_embeddings\":false,"
                       "\"rope_scaling\":null,\"hidden_act\":\"silu\"");
    write_text(dir, "tokenizer.json", k_tok_bytelevel);
    write_text(dir, "tokenizer_config.json",
               "{\"bos_token\":{\"content\":\"<|im_start|>\",\"lstrip\":false},"
               "\"eos_token\":\"<|im_end|>\",\"pad_token\":null,"
               "\"chat_template\":[{\"name\":\"default\",\"template\":\"DEFAULT-T\"},"
               "{\"name\":\"rag\",\"template\":\"RAG-T\"}]}");
    write_text(dir, "generation_config.json", "{\"bos_token_id\":11,\"eos_token_id\":[12,10]}");

    sk_model_file mf;
    if (load(dir, &mf, "llama untied") == SK_OK) {
        const sk_hparams *hp = &mf.hp;
        CHECK(strcmp(mf.format, "hf") == 0);
        CHECK(hp->arch == SK_ARCH_LLAMA);
        CHECK(hp->n_vocab == 16 && hp->dim == 8 && hp->n_layers == 2 && hp->n_heads == 4);
        CHECK(hp->n_kv_heads == 2 && hp->head_dim == 4 && hp->ffn_dim == 12);
        CHECK(hp->n_ctx_train == 64);
        CHECK(fabsf(hp->norm_eps - 1e-5f) < 1e-12f);
        CHECK(hp->rope_theta == 500000.0f);
        CHECK(hp->rope_dim == 4 && hp->rope_pairing == SK_ROPE_HALVES);
        CHECK(!hp->tied_output && !hp->linear_bias && !hp->parallel_attn);
        check_tensors(&mf, &b, "llama untied");

        const sk_vocab_data *v = &mf.vocab;
        CHECK(v->type == SK_VOCAB_BPE);
        CHECK(v->n_tokens == 14);
        CHECK(v->n_tokens == 14 &&
              strcmp(v->tokens[6], "\xc4\xa0"
                                   "a") == 0 &&
              v->token_len[6] == 3);
        CHECK(v->n_tokens == 14 && strcmp(v->tokens[13], "<tool>") == 0);
        CHECK(v->token_type && v->token_type[0] == SK_TOKT_NORMAL);
        CHECK(v->token_type && v->token_type[10] == SK_TOKT_CONTROL);
        CHECK(v->token_type && v->token_type[12] == SK_TOKT_CONTROL);
        CHECK(v->token_type && v->token_type[13] == SK_TOKT_USER_DEFINED);
        CHECK(v->scores == NULL);
        CHECK(v->n_merges == 4);
        CHECK(v->n_merges == 4 && strcmp(v->merges[1], "ab c") == 0);
        CHECK(v->n_merges == 4 && strcmp(v->merges[2], "\xc4\xa0 a") == 0);
        CHECK(v->n_pre_regex == 4);
        if (v->n_pre_regex == 4) {
            CHECK(strcmp(v->pre_regex[0], "\\p{N}{1,3}") == 0);
            CHECK(strcmp(v->pre_regex[1], "\\p{N}") == 0);
            CHECK(strcmp(v->pre_regex[2], "a\\.b") == 0);
            CHECK(strcmp(v->pre_regex[3], k_gpt2_re) == 0);
        }
        CHECK(!v->add_space_prefix);
        CHECKF(v->bos == 11, "bos %d", v->bos);
        CHECKF(v->eos == 12, "eos %d", v->eos);
        CHECKF(v->eot == 10, "eot %d", v->eot);
        CHECK(v->unk == -1 && v->pad == -1);
        CHECK(v->add_bos); /* TemplateProcessing puts <|im_start|> first in "single" */
        CHECK(!v->add_eos);
        CHECK(v->chat_template && strcmp(v->chat_template, "DEFAULT-T") == 0);
        sk_mf_free(&mf);
    }
    b_free(&b);
    rm_dir(dir);
}

/* Llama tied with lm_head present (ignored), rope_parameters, HF defaults for missing keys,
 * merges as pairs, chat_template.jinja, bos/eos from config.json. */
static void test_llama_tied_defaults(void) {
    char *dir = new_dir();
    builder b = {.rng = 12};
    llama_dims d = {.V = 11, .D = 8, .H = 4, .KV = 4, .hd = 2, .F = 6, .L = 1};
    build_llama(&b, d, true, true);
    write_st(dir, "model.safetensors", &b, 0, b.n, false);
    write_text(dir, "config.json",
               "{\"model_type\":\"llama\",\"vocab_size\":11,\"hidden_size\":8,"
               "\"num_attention_heads\":4,\"intermediate_size\":6,\"num_hidden_layers\":1,"
               "\"num_key_value_heads\":null,\"tie_word_embeddings\":true,\"bos_token_id\":0,"
               "\"eos_token_id\":1,\"rope_parameters\":{\"rope_type\":\"default\","
               "\"rope_theta\":1234.0},\"dtype\":\"float32\"}");
    write_text(dir, "tokenizer.json", k_tok_bytelevel_pairs);
    write_text(dir, "chat_template.jinja", "JINJA-T {{ messages }}");
    sk_model_file mf;
    if (load(dir, &mf, "llama tied") == SK_OK) {
        const sk_hparams *hp = &mf.hp;
        CHECK(hp->tied_output);
        CHECK(sk_mf_find(&mf, "output.weight") == NULL);
        CHECK(hp->n_kv_heads == 4);       /* = num_attention_heads */
        CHECK(hp->head_dim == 2);         /* hidden_size / num_attention_heads */
        CHECK(hp->n_ctx_train == 2048);   /* LlamaConfig default */
        CHECK(hp->norm_eps == 1e-6f);     /* LlamaConfig default */
        CHECK(hp->rope_theta == 1234.0f); /* from rope_parameters */
        check_tensors(&mf, &b, "llama tied");
        const sk_vocab_data *v = &mf.vocab;
        CHECK(v->type == SK_VOCAB_BPE && v->n_tokens == 11);
        CHECK(v->n_merges == 4 && strcmp(v->merges[2], "\xc4\xa0 a") == 0);
        CHECK(v->n_pre_regex == 1 && strcmp(v->pre_regex[0], k_gpt2_re) == 0);
        CHECK(v->add_space_prefix);
        CHECK(v->bos == 0 && v->eos == 1 && v->eot == -1);
        CHECK(!v->add_bos && !v->add_eos);
        CHECK(v->chat_template && strcmp(v->chat_template, "JINJA-T {{ messages }}") == 0);
        sk_mf_free(&mf);
    }
    /* Defaults of a config with only model_type: LlamaConfig's sizes (4096 ...) do not match the
     * tensors, and the error names the expected shape. */
    write_text(dir, "config.json", "{\"model_type\":\"llama\"}");
    expect_fail(dir, SK_ERR_FORMAT, "llama all defaults", "token_embd.weight", "[32000, 4096]");
    b_free(&b);
    rm_dir(dir);
}

/* Sharded checkpoint, SentencePiece-style tokenizer. */
static void test_llama_sharded_spm(void) {
    char *dir = new_dir();
    builder b = {.rng = 13};
    llama_dims d = {.V = 16, .D = 8, .H = 2, .KV = 1, .hd = 4, .F = 8, .L = 3};
    build_llama(&b, d, true, false);
    b_add(&b, "model.extra.weight", NULL, "F32", 1, 4, 0); /* in a shard but not in weight_map */
    int half = b.n / 2;
    write_st(dir, "model-00001-of-00002.safetensors", &b, 0, half, false);
    write_st(dir, "model-00002-of-00002.safetensors", &b, half, b.n, false);
    size_t cap = 1 << 14, n = 0;
    char *idx = malloc(cap);
    n += (size_t)snprintf(idx + n, cap - n, "{\"metadata\":{\"total_size\":0},\"weight_map\":{");
    for (int i = 0; i < b.n - 1; i++)
        n += (size_t)snprintf(idx + n, cap - n, "%s\"%s\":\"model-0000%d-of-00002.safetensors\"",
                              i ? "," : "", b.t[i].name, i < half ? 1 : 2);
    snprintf(idx + n, cap - n, "}}");
    write_text(dir, "model.safetensors.index.json", idx);
    write_llama_config(dir, d, "");
    char tok[4096];
    spm_json(tok, sizeof tok, SPM_NORM, "null");
    write_text(dir, "tokenizer.json", tok);
    sk_model_file mf;
    if (load(dir, &mf, "llama sharded") == SK_OK) {
        CHECK(mf.n_maps == 2);
        check_tensors(&mf, &b, "llama sharded");
        const sk_vocab_data *v = &mf.vocab;
        CHECK(v->type == SK_VOCAB_SPM);
        CHECK(v->n_tokens == 16);
        CHECK(v->add_space_prefix);
        CHECK(v->add_bos && !v->add_eos);
        CHECK(v->bos == 1 && v->eos == 2 && v->unk == 0);
        CHECK(v->n_merges == 0 && v->n_pre_regex == 0);
        CHECK(v->token_type[0] == SK_TOKT_CONTROL || v->token_type[0] == SK_TOKT_UNKNOWN);
        CHECK(v->token_type[1] == SK_TOKT_CONTROL && v->token_type[2] == SK_TOKT_CONTROL);
        CHECK(v->token_type[3] == SK_TOKT_BYTE && v->token_type[4] == SK_TOKT_BYTE);
        CHECK(v->token_type[6] == SK_TOKT_NORMAL);
        CHECK(v->scores != NULL);
        if (v->scores) {
            const float *s = v->scores;
            /* merge order: "_t" (0) > "he" (1) > "_the" (2) > "th" (3) > never merged "xyz" */
            CHECK(s[9] > s[10] && s[10] > s[11] && s[11] > s[12] && s[12] > s[13]);
            /* single characters and bytes are never merge results: at least every merge's score */
            CHECK(s[6] >= s[9] && s[5] >= s[9] && s[3] >= s[9] && s[14] >= s[9]);
        }
        sk_mf_free(&mf);
    }
    /* Metaspace pre-tokenizer instead of the normalizer: the prepend scheme decides. */
    const char *schemes[][2] = {{"first", "1"}, {"always", "1"}, {"never", "0"}};
    for (int i = 0; i < 3; i++) {
        char pre[256];
        snprintf(pre, sizeof pre,
                 "{\"type\":\"Metaspace\",\"replacement\":\"" SPM_SP "\",\"prepend_scheme\":"
                 "\"%s\",\"split\":false}",
                 schemes[i][0]);
        spm_json(tok, sizeof tok, "null", pre);
        write_text(dir, "tokenizer.json", tok);
        if (load(dir, &mf, "metaspace") == SK_OK) {
            CHECKF(mf.vocab.type == SK_VOCAB_SPM, "metaspace %s", schemes[i][0]);
            CHECKF(mf.vocab.add_space_prefix == (schemes[i][1][0] == '1'), "metaspace %s",
                   schemes[i][0]);
            sk_mf_free(&mf);
        }
    }
    /* A SentencePiece-style tokenizer with a pre-tokenizer that it cannot honour. */
    spm_json(tok, sizeof tok, SPM_NORM, "{\"type\":\"Whitespace\"}");
    write_text(dir, "tokenizer.json", tok);
    expect_fail(dir, SK_ERR_UNSUPPORTED, "spm + Whitespace", "tokenizer.json", "Whitespace");

    /* A tensor the index names missing from its shard. */
    char *bad = strstr(idx, "model.norm.weight");
    if (bad) {
        memcpy(bad, "model.nurm", 10);
        write_text(dir, "model.safetensors.index.json", idx);
        expect_fail(dir, SK_ERR_FORMAT, "tensor missing from shard", "model.nurm.weight",
                    "safetensors");
        memcpy(bad, "model.norm", 10);
    }
    /* A missing shard file. */
    write_text(dir, "model.safetensors.index.json", idx);
    rm_file(dir, "model-00002-of-00002.safetensors");
    expect_fail(dir, SK_ERR_IO, "missing shard", "model-00002-of-00002.safetensors", NULL);
    /* A shard name escaping the directory. */
    write_text(dir, "model.safetensors.index.json",
               "{\"weight_map\":{\"model.norm.weight\":\"../x.safetensors\"}}");
    expect_fail(dir, SK_ERR_FORMAT, "shard path", "model.norm.weight", "index.json");
    free(idx);
    b_free(&b);
    rm_dir(dir);
}

/* ------------------------------------------------------------------------------------------ */
/* Falcon                                                                                     */

typedef enum { QKV_MQ, QKV_GROUPED, QKV_MHA } qkv_layout;

/* Builds the fused QKV as transformers stores it from separate Q [H*hd, cols], K and V
 * [KV*hd, cols] (cols = dim for the weight, 1 for the bias); sets t->vals (file) and t->expect
 * (= [Q; K; V]). */
static void fuse_qkv(wt *t, qkv_layout lay, int H, int KV, int hd, int cols, float base) {
    int64_t rows = (int64_t)(H + 2 * KV) * hd;
    float *q = malloc(sizeof(float) * (size_t)(H * hd * cols));
    float *k = malloc(sizeof(float) * (size_t)(KV * hd * cols));
    float *v = malloc(sizeof(float) * (size_t)(KV * hd * cols));
    /* distinct small integers (exact in F16/BF16 up to 256) */
    float x = base;
    for (int i = 0; i < H * hd * cols; i++) q[i] = x++;
    for (int i = 0; i < KV * hd * cols; i++) k[i] = x++;
    for (int i = 0; i < KV * hd * cols; i++) v[i] = x++;
    float *exp = malloc(sizeof(float) * (size_t)(rows * cols));
    memcpy(exp, q, sizeof(float) * (size_t)(H * hd * cols));
    memcpy(exp + H * hd * cols, k, sizeof(float) * (size_t)(KV * hd * cols));
    memcpy(exp + (H + KV) * hd * cols, v, sizeof(float) * (size_t)(KV * hd * cols));
    float *f = t->vals;
    size_t rowb = sizeof(float) * (size_t)cols;
    int64_t r = 0; /* next fused row */
    if (lay == QKV_MQ) {
        /* view(H + 2, hd): [:-2] queries, [-2] key, [-1] value */
        for (int i = 0; i < H * hd; i++, r++) memcpy(f + r * cols, q + i * cols, rowb);
        for (int i = 0; i < hd; i++, r++) memcpy(f + r * cols, k + i * cols, rowb);
        for (int i = 0; i < hd; i++, r++) memcpy(f + r * cols, v + i * cols, rowb);
    } else if (lay == QKV_MHA) {
        /* view(H, 3, hd): per head q, k, v */
        for (int h = 0; h < H; h++) {
            for (int i = 0; i < hd; i++, r++) memcpy(f + r * cols, q + (h * hd + i) * cols, rowb);
            for (int i = 0; i < hd; i++, r++) memcpy(f + r * cols, k + (h * hd + i) * cols, rowb);
            for (int i = 0; i < hd; i++, r++) memcpy(f + r * cols, v + (h * hd + i) * cols, rowb);
        }
    } else {
        /* view(KV, H/KV + 2, hd): per group its H/KV queries, then its key, then its value */
        int qpk = H / KV;
        for (int g = 0; g < KV; g++) {
            for (int j = 0; j < qpk; j++)
                for (int i = 0; i < hd; i++, r++)
                    memcpy(f + r * cols, q + ((g * qpk + j) * hd + i) * cols, rowb);
            for (int i = 0; i < hd; i++, r++) memcpy(f + r * cols, k + (g * hd + i) * cols, rowb);
            for (int i = 0; i < hd; i++, r++) memcpy(f + r * cols, v + (g * hd + i) * cols, rowb);
        }
    }
    if (r != rows) {
        fprintf(stderr, "fuse_qkv: bad row count\n");
        exit(1);
    }
    t->expect = exp;
    free(q);
    free(k);
    free(v);
}

typedef struct falcon_case {
    const char *what;
    const char *config;
    qkv_layout lay;
    int H, KV, hd, D, F, L, V;
    bool bias, two_ln, ln_new_names;
    const char *dtype;
} falcon_case;

/* Adds "transformer.h.<l>.<hf>.<sfx>" -> "blk.<l>.<cc>.<sfx>"; a bias is 1-D [rows]. */
static wt *falcon_t(builder *b, const falcon_case *c, int l, const char *hf, const char *cc,
                    bool bias, int64_t rows, int64_t cols) {
    char hn[128], cn[96];
    const char *sfx = bias ? "bias" : "weight";
    snprintf(hn, sizeof hn, "transformer.h.%d.%s.%s", l, hf, sfx);
    snprintf(cn, sizeof cn, "blk.%d.%s.%s", l, cc, sfx);
    return b_add(b, hn, cn, c->dtype, bias || cols == 0 ? 1 : 2, rows, bias ? 0 : cols);
}

static void build_falcon(builder *b, const falcon_case *c) {
    b_add(b, "transformer.word_embeddings.weight", "token_embd.weight", c->dtype, 2, c->V, c->D);
    const char *ln1 = c->ln_new_names ? "ln_attn" : "input_layernorm";
    const char *ln2 = c->ln_new_names ? "ln_mlp" : "post_attention_layernorm";
    for (int l = 0; l < c->L; l++) {
        for (int bi = 0; bi < 2; bi++) {
            falcon_t(b, c, l, ln1, "attn_norm", bi, c->D, 0);
            if (c->two_ln) falcon_t(b, c, l, ln2, "attn_norm_2", bi, c->D, 0);
            if (bi && !c->bias) continue;
            int rows = (c->H + 2 * c->KV) * c->hd;
            wt *q = falcon_t(b, c, l, "self_attention.query_key_value", "attn_qkv", bi, rows, c->D);
            fuse_qkv(q, c->lay, c->H, c->KV, c->hd, bi ? 1 : c->D, bi ? -100.0f : -120.0f);
            falcon_t(b, c, l, "self_attention.dense", "attn_output", bi, c->D, c->H * c->hd);
            falcon_t(b, c, l, "mlp.dense_h_to_4h", "ffn_up", bi, c->F, c->D);
            falcon_t(b, c, l, "mlp.dense_4h_to_h", "ffn_down", bi, c->D, c->F);
        }
    }
    b_add(b, "transformer.ln_f.weight", "output_norm.weight", c->dtype, 1, c->D, 0);
    b_add(b, "transformer.ln_f.bias", "output_norm.bias", c->dtype, 1, c->D, 0);
    /* tied (FalconConfig default): a stored lm_head is ignored */
    b_add(b, "lm_head.weight", NULL, c->dtype, 2, c->V, c->D);
}

static void test_falcon(const falcon_case *c, int exp_nln, bool exp_parallel) {
    char *dir = new_dir();
    builder b = {.rng = 21};
    build_falcon(&b, c);
    write_st(dir, "model.safetensors", &b, 0, b.n, false);
    write_text(dir, "config.json", c->config);
    sk_model_file mf;
    if (load(dir, &mf, c->what) == SK_OK) {
        const sk_hparams *hp = &mf.hp;
        CHECKF(hp->arch == SK_ARCH_FALCON, "%s", c->what);
        CHECKF(hp->n_heads == c->H && hp->n_kv_heads == c->KV && hp->head_dim == c->hd,
               "%s: heads %d kv %d hd %d", c->what, hp->n_heads, hp->n_kv_heads, hp->head_dim);
        CHECKF(hp->dim == c->D && hp->ffn_dim == c->F && hp->n_layers == c->L &&
                   hp->n_vocab == c->V,
               "%s: sizes", c->what);
        CHECKF(hp->n_ln_per_layer == exp_nln, "%s: n_ln %d", c->what, hp->n_ln_per_layer);
        CHECKF(hp->parallel_attn == exp_parallel, "%s: parallel", c->what);
        CHECKF(hp->linear_bias == c->bias, "%s: bias", c->what);
        CHECKF(hp->tied_output, "%s: tied", c->what);
        CHECKF(hp->rope_pairing == SK_ROPE_HALVES && hp->rope_dim == c->hd, "%s: rope", c->what);
        CHECKF(mf.vocab.type == SK_VOCAB_NONE, "%s: no tokenizer", c->what);
        check_tensors(&mf, &b, c->what);
        sk_mf_free(&mf);
    }
    b_free(&b);
    rm_dir(dir);
}

static void test_falcons(void) {
    /* Falcon-7B style: multi_query, parallel, one LayerNorm; FalconConfig defaults for
     * ffn_hidden_size (4*hidden), multi_query, parallel_attn, bias, tie_word_embeddings. */
    falcon_case mq = {.what = "falcon multi_query",
                      .config = "{\"model_type\":\"falcon\",\"vocab_size\":12,\"hidden_size\":8,"
                                "\"num_attention_heads\":4,\"num_hidden_layers\":2,"
                                "\"num_kv_heads\":4,\"new_decoder_architecture\":false}",
                      .lay = QKV_MQ,
                      .H = 4,
                      .KV = 1,
                      .hd = 2,
                      .D = 8,
                      .F = 32,
                      .L = 2,
                      .V = 12,
                      .dtype = "F32"};
    test_falcon(&mq, 1, true);
    /* Falcon-40B/180B style: grouped QKV, ln_attn/ln_mlp, biases. */
    falcon_case nd = {.what = "falcon new_decoder_architecture",
                      .config = "{\"model_type\":\"falcon\",\"vocab_size\":12,\"hidden_size\":16,"
                                "\"num_attention_heads\":8,\"num_hidden_layers\":2,"
                                "\"num_kv_heads\":2,\"new_decoder_architecture\":true,"
                                "\"ffn_hidden_size\":24,\"bias\":true,\"parallel_attn\":true,"
                                "\"rope_theta\":10000}",
                      .lay = QKV_GROUPED,
                      .H = 8,
                      .KV = 2,
                      .hd = 2,
                      .D = 16,
                      .F = 24,
                      .L = 2,
                      .V = 12,
                      .bias = true,
                      .two_ln = true,
                      .ln_new_names = true,
                      .dtype = "F16"};
    test_falcon(&nd, 2, true);
    /* Old MHA (multi_query false): per-head q,k,v interleave; sequential with two LayerNorms. */
    falcon_case mha = {.what = "falcon MHA sequential",
                       .config = "{\"model_type\":\"falcon\",\"vocab_size\":12,\"hidden_size\":8,"
                                 "\"num_attention_heads\":4,\"num_hidden_layers\":1,"
                                 "\"multi_query\":false,\"parallel_attn\":false,\"bias\":true,"
                                 "\"ffn_hidden_size\":16}",
                       .lay = QKV_MHA,
                       .H = 4,
                       .KV = 4,
                       .hd = 2,
                       .D = 8,
                       .F = 16,
                       .L = 1,
                       .V = 12,
                       .bias = true,
                       .two_ln = true,
                       .dtype = "BF16"};
    test_falcon(&mha, 2, false);
    /* Legacy RefinedWeb config (Falcon-40B's original keys): grouped layout implied. */
    falcon_case rw = {.what = "falcon RefinedWeb",
                      .config =
                          "{\"model_type\":\"RefinedWeb\",\"vocab_size\":12,\"n_embed\":16,"
                          "\"n_head\":8,\"n_head_kv\":4,\"n_layer\":1,\"ffn_hidden_size\":24}",
                      .lay = QKV_GROUPED,
                      .H = 8,
                      .KV = 4,
                      .hd = 2,
                      .D = 16,
                      .F = 24,
                      .L = 1,
                      .V = 12,
                      .two_ln = true,
                      .ln_new_names = true,
                      .dtype = "F32"};
    test_falcon(&rw, 2, true);
}

/* ------------------------------------------------------------------------------------------ */
/* Malformed inputs                                                                           */

/* A valid tiny Llama directory; returns the builder-written model. */
static char *good_llama_dir(builder *b) {
    char *dir = new_dir();
    llama_dims d = {.V = 11, .D = 8, .H = 2, .KV = 1, .hd = 4, .F = 8, .L = 1};
    build_llama(b, d, true, false);
    write_st(dir, "model.safetensors", b, 0, b->n, false);
    write_llama_config(dir, d, "");
    write_text(dir, "tokenizer.json", k_tok_bytelevel_pairs);
    return dir;
}

/* A safetensors file: u64 header length, header text, data of ndata bytes. */
static void write_raw_st(const char *dir, uint64_t hlen, const char *hdr, size_t ndata) {
    size_t hn = strlen(hdr);
    uint8_t *img = calloc(8 + hn + ndata + 1, 1);
    for (int i = 0; i < 8; i++) img[i] = (uint8_t)(hlen >> (8 * i));
    memcpy(img + 8, hdr, hn);
    write_bytes(dir, "model.safetensors", img, 8 + hn + ndata);
    free(img);
}

static void test_malformed_safetensors(void) {
    builder b = {.rng = 31};
    char *dir = good_llama_dir(&b);
    sk_model_file mf;
    if (load(dir, &mf, "good llama") == SK_OK) sk_mf_free(&mf);

    const char *hdr = "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    write_raw_st(dir, strlen(hdr) + 100, hdr, 8);
    expect_fail(dir, SK_ERR_FORMAT, "header past EOF", "model.safetensors", "past the end");
    write_raw_st(dir, 1ull << 40, hdr, 8);
    expect_fail(dir, SK_ERR_FORMAT, "huge header", "model.safetensors", "exceeds");
    write_raw_st(dir, 0xffffffffffffffffull, hdr, 8);
    expect_fail(dir, SK_ERR_FORMAT, "header length 2^64-1", "model.safetensors", "exceeds");
    write_bytes(dir, "model.safetensors", "\x10\0\0", 3);
    expect_fail(dir, SK_ERR_FORMAT, "3-byte file", "model.safetensors", "too short");
    write_raw_st(dir, 12, "not json at all", 0);
    expect_fail(dir, SK_ERR_FORMAT, "header not JSON", "model.safetensors", "invalid JSON");
    write_raw_st(dir, 2, "[]", 0);
    expect_fail(dir, SK_ERR_FORMAT, "header an array", "model.safetensors", "not a JSON object");
    write_raw_st(dir, strlen(hdr), hdr, 4);
    expect_fail(dir, SK_ERR_FORMAT, "data past end", "model.safetensors", "'x'");
    const char *wrong = "{\"x\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}";
    write_raw_st(dir, strlen(wrong), wrong, 16);
    expect_fail(dir, SK_ERR_FORMAT, "wrong size", "model.safetensors", "'x'");
    const char *rev = "{\"x\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,0]}}";
    write_raw_st(dir, strlen(rev), rev, 16);
    expect_fail(dir, SK_ERR_FORMAT, "begin > end", "model.safetensors", "'x'");
    const char *neg = "{\"x\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}";
    write_raw_st(dir, strlen(neg), neg, 16);
    expect_fail(dir, SK_ERR_FORMAT, "negative dim", "model.safetensors", "'x'");
    const char *big = "{\"x\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],"
                      "\"data_offsets\":[0,8]}}";
    write_raw_st(dir, strlen(big), big, 16);
    expect_fail(dir, SK_ERR_FORMAT, "overflowing shape", "model.safetensors", "overflow");
    const char *dims5 = "{\"x\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}";
    write_raw_st(dir, strlen(dims5), dims5, 8);
    expect_fail(dir, SK_ERR_UNSUPPORTED, "5 dims", "model.safetensors", "'x'");
    const char *unk = "{\"x\":{\"dtype\":\"Q9\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    write_raw_st(dir, strlen(unk), unk, 8);
    expect_fail(dir, SK_ERR_UNSUPPORTED, "unknown dtype", "'x'", "Q9");

    /* Used tensors with dtypes Saker does not compute with: the message names tensor and dtype. */
    for (int i = 0; i < b.n; i++)
        if (strstr(b.t[i].name, "q_proj")) b.t[i].dtype = "F8_E4M3";
    write_st(dir, "model.safetensors", &b, 0, b.n, false);
    expect_fail(dir, SK_ERR_UNSUPPORTED, "F8_E4M3", "model.layers.0.self_attn.q_proj.weight",
                "F8_E4M3");
    for (int i = 0; i < b.n; i++)
        if (strstr(b.t[i].name, "q_proj")) b.t[i].dtype = "F32";
    for (int i = 0; i < b.n; i++)
        if (strstr(b.t[i].name, "embed_tokens")) b.t[i].dtype = "I64";
    write_st(dir, "model.safetensors", &b, 0, b.n, false);
    expect_fail(dir, SK_ERR_UNSUPPORTED, "I64", "model.embed_tokens.weight", "I64");
    for (int i = 0; i < b.n; i++)
        if (strstr(b.t[i].name, "embed_tokens")) b.t[i].dtype = "BF16";

    /* Untied without lm_head. */
    write_st(dir, "model.safetensors", &b, 0, b.n - 1, false);
    expect_fail(dir, SK_ERR_FORMAT, "no lm_head", "lm_head.weight", "tie_word_embeddings");
    /* A weight of the wrong shape. */
    b.t[0].shape[1] = 4;
    b.t[0].n = b.t[0].shape[0] * 4;
    write_st(dir, "model.safetensors", &b, 0, b.n, false);
    expect_fail(dir, SK_ERR_FORMAT, "embedding shape", "token_embd.weight", "[11, 8]");
    rm_file(dir, "model.safetensors");
    expect_fail(dir, SK_ERR_IO, "no weights", "model.safetensors", NULL);

    /* sk_st_parse directly: every truncation of a valid file fails cleanly. */
    builder b2 = {.rng = 32};
    b_add(&b2, "a", "a", "F16", 2, 3, 5);
    b_add(&b2, "b", "b", "BF16", 1, 7, 0);
    write_st(dir, "one.safetensors", &b2, 0, b2.n, false);
    char p[4096];
    snprintf(p, sizeof p, "%s/one.safetensors", dir);
    FILE *f = fopen(p, "rb");
    uint8_t img[4096];
    size_t n = f ? fread(img, 1, sizeof img, f) : 0;
    if (f) fclose(f);
    sk_st_file st;
    CHECK(sk_st_parse(p, img, n, &st) == SK_OK);
    if (st.n_tensors == 2) {
        CHECK(strcmp(st.tensors[0].name, "a") == 0 && st.tensors[0].type == SK_F16);
        CHECK(st.tensors[0].nbytes == 30 && st.tensors[1].nbytes == 14);
        CHECK(sk_st_find(&st, "b") == &st.tensors[1] && sk_st_find(&st, "c") == NULL);
    }
    sk_st_close(&st);
    int ok_truncations = 0;
    for (size_t len = 0; len < n; len++) {
        uint8_t *cp = malloc(len ? len : 1); /* exact size: ASan sees any overread */
        memcpy(cp, img, len);
        if (sk_st_parse(p, cp, len, &st) == SK_OK) ok_truncations++;
        sk_st_close(&st);
        free(cp);
    }
    CHECKF(ok_truncations == 0, "%d truncations parsed", ok_truncations);
    b_free(&b2);
    b_free(&b);
    rm_dir(dir);
}

static void test_malformed_json(void) {
    builder b = {.rng = 41};
    char *dir = good_llama_dir(&b);
    llama_dims d = {.V = 11, .D = 8, .H = 2, .KV = 1, .hd = 4, .F = 8, .L = 1};

    write_text(dir, "config.json", "{\"model_type\": \"llama\",\n \"hidden_size\": 8,,}");
    expect_fail(dir, SK_ERR_FORMAT, "config broken", "config.json", "line 2");
    write_text(dir, "config.json", "{\"model_type\":\"gpt2\"}");
    expect_fail(dir, SK_ERR_UNSUPPORTED, "model_type", "config.json", "gpt2");
    write_text(dir, "config.json", "{\"model_type\":\"llama\",\"hidden_size\":\"8\"}");
    expect_fail(dir, SK_ERR_FORMAT, "string hidden_size", "config.json", "hidden_size");
    write_text(dir, "config.json", "{\"model_type\":\"llama\",\"hidden_size\":-8}");
    expect_fail(dir, SK_ERR_FORMAT, "negative hidden_size", "config.json", "hidden_size");
    write_llama_config(dir, d, ",\"rope_scaling\":{\"rope_type\":\"llama3\",\"factor\":8.0}");
    expect_fail(dir, SK_ERR_UNSUPPORTED, "rope_scaling", "config.json", "llama3");
    write_llama_config(dir, d, ",\"rope_parameters\":{\"rope_type\":\"yarn\",\"rope_theta\":1e4}");
    expect_fail(dir, SK_ERR_UNSUPPORTED, "rope_parameters yarn", "config.json", "yarn");
    write_llama_config(dir, d, ",\"attention_bias\":true");
    expect_fail(dir, SK_ERR_UNSUPPORTED, "attention_bias", "config.json", "attention_bias");
    write_llama_config(dir, d, ",\"hidden_act\":\"gelu\"");
    expect_fail(dir, SK_ERR_UNSUPPORTED, "hidden_act", "config.json", "gelu");
    write_text(dir, "config.json", "{\"model_type\":\"falcon\",\"alibi\":true}");
    expect_fail(dir, SK_ERR_UNSUPPORTED, "falcon alibi", "config.json", "alibi");
    write_text(dir, "config.json", "{\"model_type\":\"mistral\",\"hidden_size\":8}");
    expect_fail(dir, SK_ERR_UNSUPPORTED, "mistral window", "config.json", "sliding_window");
    rm_file(dir, "config.json");
    expect_fail(dir, SK_ERR_IO, "no config", "config.json", NULL);
    write_llama_config(dir, d, "");

    /* Mistral without a sliding window loads as Llama. */
    char cfg[1024];
    snprintf(cfg, sizeof cfg,
             "{\"model_type\":\"mistral\",\"vocab_size\":11,\"hidden_size\":8,"
             "\"num_attention_heads\":2,\"num_key_value_heads\":1,\"intermediate_size\":8,"
             "\"num_hidden_layers\":1,\"sliding_window\":null,\"rope_theta\":1000000.0}");
    write_text(dir, "config.json", cfg);
    sk_model_file mf;
    if (load(dir, &mf, "mistral") == SK_OK) {
        CHECK(mf.hp.arch == SK_ARCH_LLAMA && mf.hp.rope_theta == 1e6f);
        CHECK(mf.hp.n_ctx_train == 131072); /* MistralConfig default */
        sk_mf_free(&mf);
    }
    write_llama_config(dir, d, "");

    write_text(dir, "tokenizer.json", "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}");
    expect_fail(dir, SK_ERR_FORMAT, "tokenizer broken", "tokenizer.json", "invalid JSON");
    write_text(dir, "tokenizer.json", "{\"model\":{\"type\":\"WordPiece\",\"vocab\":{\"a\":0}}}");
    expect_fail(dir, SK_ERR_UNSUPPORTED, "WordPiece", "tokenizer.json", "WordPiece");
    write_text(dir, "tokenizer.json",
               "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\","
               "\"vocab\":{\"a\":0,\"b\":2},\"merges\":[]}}");
    expect_fail(dir, SK_ERR_FORMAT, "id hole", "tokenizer.json", "1");
    write_text(dir, "tokenizer.json",
               "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\","
               "\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a c\"]}}");
    expect_fail(dir, SK_ERR_FORMAT, "merge of unknown token", "tokenizer.json", "merges[0]");
    write_text(dir, "tokenizer.json",
               "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\","
               "\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b c\"]}}");
    expect_fail(dir, SK_ERR_FORMAT, "merge with two spaces", "tokenizer.json", "merges[0]");
    write_text(dir, "tokenizer.json",
               "{\"pre_tokenizer\":{\"type\":\"ByteLevel\"},\"model\":{\"type\":\"BPE\","
               "\"vocab\":{\"a\":0,\"b\":-1}}}");
    expect_fail(dir, SK_ERR_FORMAT, "negative id", "tokenizer.json", "vocab");
    write_text(dir, "tokenizer.json", k_tok_bytelevel_pairs);
    write_text(dir, "tokenizer_config.json", "{\"bos_token\": }");
    expect_fail(dir, SK_ERR_FORMAT, "tokenizer_config broken", "tokenizer_config.json", NULL);
    rm_file(dir, "tokenizer_config.json");
    write_text(dir, "generation_config.json", "[1, 2");
    expect_fail(dir, SK_ERR_FORMAT, "generation_config broken", "generation_config.json", NULL);
    rm_file(dir, "generation_config.json");
    write_text(dir, "model.safetensors.index.json", "{\"weight_map\": {\"a\": 1}");
    expect_fail(dir, SK_ERR_FORMAT, "index broken", "model.safetensors.index.json", NULL);
    rm_file(dir, "model.safetensors.index.json");

    /* Punctuation pre-tokenizer; ByteLevel without its regex. */
    write_text(dir, "tokenizer.json",
               "{\"pre_tokenizer\":{\"type\":\"Sequence\",\"pretokenizers\":["
               "{\"type\":\"Punctuation\",\"behavior\":\"Contiguous\"},"
               "{\"type\":\"ByteLevel\",\"add_prefix_space\":false,\"use_regex\":false}]},"
               "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},"
               "\"merges\":[\"a b\"]}}");
    if (load(dir, &mf, "punctuation") == SK_OK) {
        const sk_vocab_data *v = &mf.vocab;
        CHECK(v->type == SK_VOCAB_BPE && v->n_tokens == 3 && !v->add_space_prefix);
        CHECK(v->n_pre_regex == 1 && strcmp(v->pre_regex[0], "[\\p{P}\\$\\+<=>\\^~\\|`]+") == 0);
        CHECK(v->bos == -1 && !v->add_bos);
        sk_mf_free(&mf);
    }
    /* Split with a behaviour other than Isolated. */
    write_text(dir, "tokenizer.json",
               "{\"pre_tokenizer\":{\"type\":\"Split\",\"pattern\":{\"Regex\":\"x\"},"
               "\"behavior\":\"Removed\"},\"decoder\":{\"type\":\"ByteLevel\"},"
               "\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}");
    expect_fail(dir, SK_ERR_UNSUPPORTED, "Split Removed", "tokenizer.json", "Removed");

    /* Without tokenizer.json the model still loads, with no vocabulary. */
    rm_file(dir, "tokenizer.json");
    if (load(dir, &mf, "no tokenizer") == SK_OK) {
        CHECK(mf.vocab.type == SK_VOCAB_NONE && mf.vocab.n_tokens == 0);
        CHECK(mf.vocab.bos == -1 && mf.vocab.eos == -1);
        sk_mf_free(&mf);
    }
    b_free(&b);
    rm_dir(dir);
}

/* ------------------------------------------------------------------------------------------ */
/* Fixtures written by transformers (tests/fixtures/hf-*): hp must match config.json as read
 * here, every tensor must equal the safetensors bytes (Falcon QKV: rows permuted). */

static void test_fixtures(void) {
    const char *names[] = {"hf-llama-gqa-tied",  "hf-llama-mha-f16",     "hf-llama-mqa-bf16",
                           "hf-falcon-7b-style", "hf-falcon-180b-style", "hf-falcon-seq-bias"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *dir = sk_test_path("SK_FIXTURES", names[i]);
        char p[4200];
        snprintf(p, sizeof p, "%s/config.json", dir);
        json_error_t err;
        json_t *cfg = json_load_file(p, 0, &err);
        CHECKF(cfg != NULL, "%s: cannot read", p);
        if (!cfg) continue;
        sk_model_file mf;
        if (load(dir, &mf, names[i]) != SK_OK) {
            json_decref(cfg);
            continue;
        }
        const sk_hparams *hp = &mf.hp;
        bool falcon = strstr(names[i], "falcon") != NULL;
        CHECKF(hp->arch == (falcon ? SK_ARCH_FALCON : SK_ARCH_LLAMA), "%s", names[i]);
        CHECKF(hp->n_vocab == json_integer_value(json_object_get(cfg, "vocab_size")), "%s",
               names[i]);
        CHECKF(hp->dim == json_integer_value(json_object_get(cfg, "hidden_size")), "%s", names[i]);
        CHECKF(hp->n_layers == json_integer_value(json_object_get(cfg, "num_hidden_layers")), "%s",
               names[i]);
        CHECKF(hp->n_heads == json_integer_value(json_object_get(cfg, "num_attention_heads")), "%s",
               names[i]);
        CHECKF(hp->tied_output == json_is_true(json_object_get(cfg, "tie_word_embeddings")), "%s",
               names[i]);
        double theta = json_number_value(
            json_object_get(json_object_get(cfg, "rope_parameters"), "rope_theta"));
        CHECKF(hp->rope_theta == (float)theta, "%s: theta", names[i]);
        if (falcon) {
            bool nd = json_is_true(json_object_get(cfg, "new_decoder_architecture"));
            bool mq = json_is_true(json_object_get(cfg, "multi_query"));
            int kv = nd   ? (int)json_integer_value(json_object_get(cfg, "num_kv_heads"))
                     : mq ? 1
                          : hp->n_heads;
            CHECKF(hp->n_kv_heads == kv, "%s: kv %d", names[i], hp->n_kv_heads);
            CHECKF(hp->ffn_dim == json_integer_value(json_object_get(cfg, "ffn_hidden_size")), "%s",
                   names[i]);
            CHECKF(hp->linear_bias == json_is_true(json_object_get(cfg, "bias")), "%s", names[i]);
            bool par = json_is_true(json_object_get(cfg, "parallel_attn"));
            CHECKF(hp->n_ln_per_layer == (nd || !par ? 2 : 1), "%s: n_ln", names[i]);
            CHECKF(hp->parallel_attn == par, "%s: parallel", names[i]);
        } else {
            CHECKF(hp->n_kv_heads ==
                       json_integer_value(json_object_get(cfg, "num_key_value_heads")),
                   "%s", names[i]);
            CHECKF(hp->head_dim == json_integer_value(json_object_get(cfg, "head_dim")), "%s",
                   names[i]);
            CHECKF(hp->ffn_dim == json_integer_value(json_object_get(cfg, "intermediate_size")),
                   "%s", names[i]);
            CHECKF(fabsf(hp->norm_eps -
                         (float)json_number_value(json_object_get(cfg, "rms_norm_eps"))) < 1e-12f,
                   "%s", names[i]);
        }
        /* Tensors against the raw file. */
        snprintf(p, sizeof p, "%s/model.safetensors", dir);
        sk_st_file st;
        CHECK(sk_st_open(p, &st) == SK_OK);
        int matched = 0;
        for (int t = 0; t < st.n_tensors; t++) {
            const sk_st_tensor *s = &st.tensors[t];
            const char *nm = s->name;
            char canon[160] = "";
            int layer;
            char rest[96];
            if (strcmp(nm, "model.embed_tokens.weight") == 0 ||
                strcmp(nm, "transformer.word_embeddings.weight") == 0)
                snprintf(canon, sizeof canon, "token_embd.weight");
            else if (sscanf(nm, "model.layers.%d.mlp.down_proj.%95s", &layer, rest) == 2)
                snprintf(canon, sizeof canon, "blk.%d.ffn_down.%s", layer, rest);
            else if (sscanf(nm, "transformer.h.%d.mlp.dense_4h_to_h.%95s", &layer, rest) == 2)
                snprintf(canon, sizeof canon, "blk.%d.ffn_down.%s", layer, rest);
            else if (sscanf(nm, "model.layers.%d.self_attn.k_proj.%95s", &layer, rest) == 2)
                snprintf(canon, sizeof canon, "blk.%d.attn_k.%s", layer, rest);
            if (!canon[0]) continue;
            const sk_tensor *lt = sk_mf_find(&mf, canon);
            CHECKF(lt && lt->nbytes == s->nbytes && memcmp(lt->data, s->data, s->nbytes) == 0,
                   "%s: %s differs from %s", names[i], canon, nm);
            matched++;
        }
        CHECKF(matched >= 3, "%s: %d tensors compared", names[i], matched);
        /* QKV: every loaded row is one of the file's rows, and the multiset is the same. */
        if (falcon) {
            for (int l = 0; l < hp->n_layers; l++) {
                char hn[128], cn[96];
                snprintf(hn, sizeof hn, "transformer.h.%d.self_attention.query_key_value.weight",
                         l);
                snprintf(cn, sizeof cn, "blk.%d.attn_qkv.weight", l);
                const sk_st_tensor *s = sk_st_find(&st, hn);
                const sk_tensor *lt = sk_mf_find(&mf, cn);
                CHECKF(s && lt, "%s: %s", names[i], cn);
                if (!s || !lt) continue;
                int64_t rows = s->shape[0];
                size_t rb = s->nbytes / (size_t)rows;
                int hd = hp->head_dim, H = hp->n_heads, KV = hp->n_kv_heads, qpk = H / KV;
                int bad = 0;
                for (int64_t r = 0; r < rows; r++) {
                    /* loaded row r = head (r / hd) of [Q heads, K heads, V heads] */
                    int head = (int)(r / hd), within = (int)(r % hd), src_head;
                    if (head < H)
                        src_head = (head / qpk) * (qpk + 2) + head % qpk;
                    else if (head < H + KV)
                        src_head = (head - H) * (qpk + 2) + qpk;
                    else
                        src_head = (head - H - KV) * (qpk + 2) + qpk + 1;
                    const uint8_t *src =
                        (const uint8_t *)s->data + (size_t)(src_head * hd + within) * rb;
                    if (memcmp((const uint8_t *)lt->data + (size_t)r * rb, src, rb) != 0) bad++;
                }
                CHECKF(bad == 0, "%s: %s: %d rows misplaced", names[i], cn, bad);
            }
        }
        sk_st_close(&st);
        const sk_vocab_data *v = &mf.vocab;
        CHECKF(v->type == SK_VOCAB_BPE && v->n_tokens == 300, "%s: vocab", names[i]);
        CHECKF(v->bos == 0 && v->eos == 2 && !v->add_bos, "%s: bos %d eos %d", names[i], v->bos,
               v->eos);
        CHECKF(v->eot == -1, "%s: eot %d (config.json's eos_token_id must not add one)", names[i],
               v->eot);
        CHECKF(v->n_pre_regex == 2 && strcmp(v->pre_regex[0], "\\p{N}") == 0, "%s: regex",
               names[i]);
        CHECKF(v->chat_template && strstr(v->chat_template, "<|im_start|>"), "%s: template",
               names[i]);
        sk_mf_free(&mf);
        json_decref(cfg);
    }
}

int main(void) {
    sk_log_set_level(0);
    test_llama_untied();
    test_llama_tied_defaults();
    test_llama_sharded_spm();
    test_falcons();
    test_malformed_safetensors();
    test_malformed_json();
    test_fixtures();
    return sk_test_done("test_hf");
}
