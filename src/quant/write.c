/* The AutoAWQ GEMM HF directory writer and the `saker quantize` driver. */
#include "quant/quant.h"

#include "io/json_util.h"
#include "io/safetensors.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#define PATH_MAX_Q 4096

static sk_status join(char *buf, const char *dir, const char *name) {
    int n = snprintf(buf, PATH_MAX_Q, "%s/%s", dir, name);
    if (n < 0 || n >= PATH_MAX_Q) return sk_fail(SK_ERR_ARG, "%s: path too long", dir);
    return SK_OK;
}

/* mkdir -p. */
static int mkdir_p(const char *dir) {
    char buf[PATH_MAX_Q];
    if (snprintf(buf, sizeof buf, "%s", dir) >= (int)sizeof buf) return -1;
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/') continue;
        *p = 0;
        if (mkdir(buf, 0755) != 0 && errno != EEXIST) return -1;
        *p = '/';
    }
    return mkdir(buf, 0755) != 0 && errno != EEXIST ? -1 : 0;
}

/* HF name of canonical tensor name c (hp's architecture); false when unknown. */
static bool hf_name(const sk_hparams *hp, const char *c, char *out, size_t n) {
    static const char *const llama_g[][2] = {
        {"token_embd", "model.embed_tokens"}, {"output_norm", "model.norm"}, {"output", "lm_head"}};
    static const char *const falcon_g[][2] = {{"token_embd", "transformer.word_embeddings"},
                                              {"output_norm", "transformer.ln_f"},
                                              {"output", "lm_head"}};
    static const char *const llama_l[][2] = {
        {"attn_norm", "input_layernorm"},    {"attn_q", "self_attn.q_proj"},
        {"attn_k", "self_attn.k_proj"},      {"attn_v", "self_attn.v_proj"},
        {"attn_output", "self_attn.o_proj"}, {"ffn_norm", "post_attention_layernorm"},
        {"ffn_gate", "mlp.gate_proj"},       {"ffn_up", "mlp.up_proj"},
        {"ffn_down", "mlp.down_proj"}};
    const bool two = hp->n_ln_per_layer == 2;
    const char *const falcon_l[][2] = {{"attn_norm", two ? "ln_attn" : "input_layernorm"},
                                       {"attn_norm_2", two ? "ln_mlp" : "post_attention_layernorm"},
                                       {"attn_qkv", "self_attention.query_key_value"},
                                       {"attn_output", "self_attention.dense"},
                                       {"ffn_up", "mlp.dense_h_to_4h"},
                                       {"ffn_down", "mlp.dense_4h_to_h"}};
    const bool falcon = hp->arch == SK_ARCH_FALCON;
    const char *dot = strrchr(c, '.');
    if (!dot) return false;
    const size_t stem = (size_t)(dot - c);
    for (int i = 0; i < 3; i++) {
        const char *const *m = falcon ? falcon_g[i] : llama_g[i];
        if (strlen(m[0]) == stem && !strncmp(c, m[0], stem)) {
            snprintf(out, n, "%s%s", m[1], dot);
            return true;
        }
    }
    int l, off = 0;
    if (sscanf(c, "blk.%d.%n", &l, &off) != 1 || off == 0) return false;
    const char *rest = c + off;
    const size_t rl = (size_t)(dot - rest);
    const int nl = falcon ? 6 : 9;
    for (int i = 0; i < nl; i++) {
        const char *k = falcon ? falcon_l[i][0] : llama_l[i][0];
        const char *v = falcon ? falcon_l[i][1] : llama_l[i][1];
        if (strlen(k) == rl && !strncmp(rest, k, rl)) {
            snprintf(out, n, "%s%d.%s%s", falcon ? "transformer.h." : "model.layers.", l, v, dot);
            return true;
        }
    }
    return false;
}

/* Falcon's canonical [Q heads, K heads, V heads] rows back to transformers' grouped layout
 * [KV groups][H/KV Q heads, K, V] (the inverse of hf.c's reorder); rb bytes per row. */
static void falcon_unorder(const sk_hparams *hp, const uint8_t *src, uint8_t *dst, size_t rb) {
    const int64_t H = hp->n_heads, KV = hp->n_kv_heads, hd = hp->head_dim, qpk = H / KV;
    const size_t head = rb * (size_t)hd;
    if (KV == 1) {
        memcpy(dst, src, head * (size_t)(H + 2));
        return;
    }
    for (int64_t g = 0; g < KV; g++) {
        uint8_t *grp = dst + (size_t)(g * (qpk + 2)) * head;
        for (int64_t j = 0; j < qpk; j++)
            memcpy(grp + (size_t)j * head, src + (size_t)(g * qpk + j) * head, head);
        memcpy(grp + (size_t)qpk * head, src + (size_t)(H + g) * head, head);
        memcpy(grp + (size_t)(qpk + 1) * head, src + (size_t)(H + KV + g) * head, head);
    }
}

/* ---- tokenizer.json from a vocabulary --------------------------------------------------- */

static bool one_char(const char *s, int n) {
    if (n <= 0) return false;
    const unsigned char c = (unsigned char)s[0];
    const int len = c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4;
    return len == n;
}

static json_t *jstrn(const char *s, int n) { return json_stringn(s, (size_t)n); }

typedef struct id_score {
    int id;
    float score;
} id_score;

static int by_score_desc(const void *a, const void *b) {
    const id_score *x = a, *y = b;
    if (x->score != y->score) return x->score > y->score ? -1 : 1;
    return x->id - y->id;
}

/* Writes tokenizer.json and tokenizer_config.json for v (SPM or byte-level BPE) into dir.
 * SPM: merges are synthesised so that their ranks follow the scores (the loader turns ranks back
 * into scores; Saker's SentencePiece-style encoder only compares scores), each merge splitting
 * its token into the first two vocabulary tokens that concatenate to it. */
static sk_status write_tokenizer(const sk_vocab_data *v, const char *dir) {
    if (v->type == SK_VOCAB_NONE) {
        SK_LOGW("quantize: the source has no vocabulary; the output has no tokenizer");
        return SK_OK;
    }
    const bool spm = v->type == SK_VOCAB_SPM;
    json_t *root = json_object(), *model = json_object(), *vocab = json_object();
    json_t *merges = json_array(), *added = json_array();
    sk_status s = SK_OK;
    for (int i = 0; i < v->n_tokens; i++) {
        json_t *key = jstrn(v->tokens[i], v->token_len[i]);
        if (!key) {
            s = sk_fail(SK_ERR_FORMAT, "quantize: token %d is not valid UTF-8", i);
            json_decref(key);
            goto done;
        }
        json_object_set_new(vocab, json_string_value(key), json_integer(i));
        const int tt = v->token_type ? v->token_type[i] : SK_TOKT_NORMAL;
        if (tt == SK_TOKT_CONTROL || tt == SK_TOKT_USER_DEFINED || tt == SK_TOKT_UNKNOWN) {
            json_t *a = json_object();
            json_object_set_new(a, "id", json_integer(i));
            json_object_set(a, "content", key);
            json_object_set_new(a, "single_word", json_false());
            json_object_set_new(a, "lstrip", json_false());
            json_object_set_new(a, "rstrip", json_false());
            json_object_set_new(a, "normalized", json_false());
            json_object_set_new(a, "special", tt == SK_TOKT_USER_DEFINED ? json_false() : json_true());
            json_array_append_new(added, a);
        }
        json_decref(key);
    }
    if (spm) {
        id_score *ord = sk_xmalloc(sizeof *ord * (size_t)v->n_tokens);
        int n = 0;
        for (int i = 0; i < v->n_tokens; i++) {
            const int tt = v->token_type ? v->token_type[i] : SK_TOKT_NORMAL;
            if (tt == SK_TOKT_NORMAL && !one_char(v->tokens[i], v->token_len[i]))
                ord[n++] = (id_score){i, v->scores ? v->scores[i] : -(float)i};
        }
        qsort(ord, (size_t)n, sizeof *ord, by_score_desc);
        char buf[1024];
        for (int i = 0; i < n; i++) {
            const char *t = v->tokens[ord[i].id];
            const int len = v->token_len[ord[i].id];
            bool found = false;
            for (int cut = 1; cut < len && !found && len < (int)sizeof buf; cut++) {
                if (((unsigned char)t[cut] & 0xc0) == 0x80) continue; /* inside a character */
                char a[512], b[512];
                if (cut >= 512 || len - cut >= 512) continue;
                memcpy(a, t, (size_t)cut), a[cut] = 0;
                memcpy(b, t + cut, (size_t)(len - cut)), b[len - cut] = 0;
                if (json_object_get(vocab, a) && json_object_get(vocab, b)) {
                    json_t *m = json_array();
                    json_array_append_new(m, json_string(a));
                    json_array_append_new(m, json_string(b));
                    json_array_append_new(merges, m);
                    found = true;
                }
            }
            if (!found) SK_LOGD("quantize: token %d has no two-token split; no merge", ord[i].id);
        }
        free(ord);
        json_t *norm = json_object(), *ns = json_array(), *pre = json_object(), *rep = json_object();
        json_object_set_new(pre, "type", json_string("Prepend"));
        json_object_set_new(pre, "prepend", json_string("\xE2\x96\x81"));
        json_object_set_new(rep, "type", json_string("Replace"));
        json_t *pat = json_object();
        json_object_set_new(pat, "String", json_string(" "));
        json_object_set_new(rep, "pattern", pat);
        json_object_set_new(rep, "content", json_string("\xE2\x96\x81"));
        if (v->add_space_prefix) json_array_append_new(ns, pre);
        else json_decref(pre);
        json_array_append_new(ns, rep);
        json_object_set_new(norm, "type", json_string("Sequence"));
        json_object_set_new(norm, "normalizers", ns);
        json_object_set_new(root, "normalizer", norm);
        json_object_set_new(root, "pre_tokenizer", json_null());
        json_object_set_new(model, "byte_fallback", json_true());
        json_object_set_new(model, "fuse_unk", json_true());
        if (v->unk >= 0)
            json_object_set_new(model, "unk_token", jstrn(v->tokens[v->unk], v->token_len[v->unk]));
    } else {
        for (int i = 0; i < v->n_merges; i++) {
            const char *m = v->merges[i], *sp = strchr(m + 1, ' ');
            if (!sp) {
                s = sk_fail(SK_ERR_FORMAT, "quantize: merge %d '%s' has no space", i, m);
                goto done;
            }
            json_t *pair = json_array();
            json_array_append_new(pair, json_stringn(m, (size_t)(sp - m)));
            json_array_append_new(pair, json_string(sp + 1));
            json_array_append_new(merges, pair);
        }
        json_t *seq = json_array();
        const char *re[8];
        int nre = v->n_pre_regex;
        const char *const *res = (const char *const *)v->pre_regex;
        if (nre <= 0) {
            nre = sk_bpe_pre_regexes(v->pre, re, 8);
            res = re;
        }
        for (int i = 0; i < nre; i++) {
            json_t *sp = json_object(), *pat = json_object();
            json_object_set_new(sp, "type", json_string("Split"));
            json_object_set_new(pat, "Regex", json_string(res[i]));
            json_object_set_new(sp, "pattern", pat);
            json_object_set_new(sp, "behavior", json_string("Isolated"));
            json_object_set_new(sp, "invert", json_false());
            json_array_append_new(seq, sp);
        }
        json_t *bl = json_object();
        json_object_set_new(bl, "type", json_string("ByteLevel"));
        json_object_set_new(bl, "add_prefix_space", json_boolean(v->add_space_prefix));
        json_object_set_new(bl, "trim_offsets", json_true());
        json_object_set_new(bl, "use_regex", json_false());
        json_array_append_new(seq, bl);
        json_t *pre = json_object();
        json_object_set_new(pre, "type", json_string("Sequence"));
        json_object_set_new(pre, "pretokenizers", seq);
        json_object_set_new(root, "normalizer", json_null());
        json_object_set_new(root, "pre_tokenizer", pre);
        json_t *dec = json_object();
        json_object_set_new(dec, "type", json_string("ByteLevel"));
        json_object_set_new(root, "decoder", dec);
        json_object_set_new(model, "byte_fallback", json_false());
    }
    json_object_set_new(model, "type", json_string("BPE"));
    json_object_set_new(model, "vocab", vocab);
    vocab = NULL;
    json_object_set_new(model, "merges", merges);
    merges = NULL;
    json_object_set_new(root, "version", json_string("1.0"));
    json_object_set_new(root, "added_tokens", added);
    added = NULL;
    json_object_set_new(root, "model", model);
    model = NULL;

    char path[PATH_MAX_Q];
    if ((s = join(path, dir, "tokenizer.json")) != SK_OK) goto done;
    if (json_dump_file(root, path, JSON_INDENT(1) | JSON_ENSURE_ASCII) != 0) {
        s = sk_fail(SK_ERR_IO, "%s: write failed", path);
        goto done;
    }
    json_t *tc = json_object();
#define TOK(key, id)                                                                               \
    if ((id) >= 0 && (id) < v->n_tokens)                                                           \
        json_object_set_new(tc, key, jstrn(v->tokens[id], v->token_len[id]));
    TOK("bos_token", v->bos);
    TOK("eos_token", v->eos);
    TOK("unk_token", v->unk);
    TOK("pad_token", v->pad);
#undef TOK
    json_object_set_new(tc, "add_bos_token", json_boolean(v->add_bos));
    json_object_set_new(tc, "add_eos_token", json_boolean(v->add_eos));
    if (v->chat_template) json_object_set_new(tc, "chat_template", json_string(v->chat_template));
    if ((s = join(path, dir, "tokenizer_config.json")) == SK_OK &&
        json_dump_file(tc, path, JSON_INDENT(2)) != 0)
        s = sk_fail(SK_ERR_IO, "%s: write failed", path);
    json_decref(tc);
    if (s == SK_OK && v->eot >= 0) {
        json_t *gc = json_object(), *e = json_array();
        if (v->eos >= 0) json_array_append_new(e, json_integer(v->eos));
        json_array_append_new(e, json_integer(v->eot));
        json_object_set_new(gc, "eos_token_id", e);
        if ((s = join(path, dir, "generation_config.json")) == SK_OK &&
            json_dump_file(gc, path, JSON_INDENT(2)) != 0)
            s = sk_fail(SK_ERR_IO, "%s: write failed", path);
        json_decref(gc);
    }
done:
    json_decref(root), json_decref(model), json_decref(vocab), json_decref(merges);
    json_decref(added);
    return s;
}

static sk_status copy_file(const char *from, const char *to) {
    char *buf;
    size_t len;
    SK_TRY(sk_file_read_all(from, &buf, &len));
    FILE *fp = fopen(to, "wb");
    bool ok = fp && fwrite(buf, 1, len, fp) == len;
    if (fp && fclose(fp) != 0) ok = false;
    free(buf);
    return ok ? SK_OK : sk_fail(SK_ERR_IO, "%s: write failed", to);
}

/* ---- the directory ------------------------------------------------------------------------ */

static json_t *config_from_hp(const sk_model_file *q) {
    const sk_hparams *hp = &q->hp;
    json_t *c = json_object();
    json_t *ar = json_array();
    json_array_append_new(ar, json_string("LlamaForCausalLM"));
    json_object_set_new(c, "architectures", ar);
    json_object_set_new(c, "model_type", json_string("llama"));
    json_object_set_new(c, "hidden_size", json_integer(hp->dim));
    json_object_set_new(c, "intermediate_size", json_integer(hp->ffn_dim));
    json_object_set_new(c, "num_hidden_layers", json_integer(hp->n_layers));
    json_object_set_new(c, "num_attention_heads", json_integer(hp->n_heads));
    json_object_set_new(c, "num_key_value_heads", json_integer(hp->n_kv_heads));
    json_object_set_new(c, "head_dim", json_integer(hp->head_dim));
    json_object_set_new(c, "max_position_embeddings", json_integer(hp->n_ctx_train));
    json_object_set_new(c, "rms_norm_eps", json_real(hp->norm_eps));
    json_object_set_new(c, "rope_theta", json_real(hp->rope_theta));
    json_object_set_new(c, "vocab_size", json_integer(hp->n_vocab));
    json_object_set_new(c, "tie_word_embeddings", json_boolean(hp->tied_output));
    json_object_set_new(c, "hidden_act", json_string("silu"));
    if (q->vocab.bos >= 0) json_object_set_new(c, "bos_token_id", json_integer(q->vocab.bos));
    if (q->vocab.eos >= 0) json_object_set_new(c, "eos_token_id", json_integer(q->vocab.eos));
    return c;
}

sk_status sk_awq_write_hf(const sk_model_file *q, int group, const char *src_dir,
                          const char *out_dir) {
    const sk_hparams *hp = &q->hp;
    if (hp->arch == SK_ARCH_LLAMA && hp->rope_pairing != SK_ROPE_HALVES)
        return sk_fail(SK_ERR_ARG, "quantize: Llama q/k rows must be in HF order (rotate halves)");
    if (!src_dir && hp->arch != SK_ARCH_LLAMA)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "quantize: writing a %s config from a non-HF source is not supported",
                       sk_arch_name(hp->arch));
    if (mkdir_p(out_dir) != 0)
        return sk_fail(SK_ERR_IO, "%s: cannot create the directory (%s)", out_dir, strerror(errno));
    sk_status s = SK_OK;
    const int n = q->n_tensors;
    sk_st_out *outs = sk_xcalloc((size_t)n * 3 + 1, sizeof *outs);
    char (*names)[SK_NAME_MAX + 16] = sk_xcalloc((size_t)n * 3 + 1, sizeof *names);
    void **bufs = sk_xcalloc((size_t)n * 3 + 1, sizeof *bufs);
    int no = 0, nb = 0;
    json_t *cfg = NULL, *not_conv = json_array();
    for (int i = 0; i < n; i++) {
        const sk_tensor *t = &q->tensors[i];
        char hf[SK_NAME_MAX + 16];
        if (!hf_name(hp, t->name, hf, sizeof hf)) {
            s = sk_fail(SK_ERR_ARG, "quantize: no HF name for tensor '%s'", t->name);
            goto done;
        }
        const void *data = t->data;
        const bool qkv = hp->arch == SK_ARCH_FALCON && strstr(t->name, ".attn_qkv.");
        if (qkv) {
            uint8_t *d = malloc(t->nbytes ? t->nbytes : 1);
            if (!d) {
                s = sk_fail(SK_ERR_NOMEM, "quantize: out of memory");
                goto done;
            }
            falcon_unorder(hp, t->data, d, t->nbytes / (size_t)t->shape[0]);
            data = bufs[nb++] = d;
        }
        const int g = sk_dtype_q4g_group(t->type);
        if (g == 0) {
            if (t->type != SK_F16) {
                s = sk_fail(SK_ERR_ARG, "quantize: tensor '%s' is %s, expected F16 or Q4G", t->name,
                            sk_dtype_name(t->type));
                goto done;
            }
            snprintf(names[no], sizeof names[no], "%s", hf);
            outs[no] = (sk_st_out){names[no], "F16", t->n_dims, {0}, data, t->nbytes};
            memcpy(outs[no].shape, t->shape, sizeof t->shape);
            no++;
            /* a Linear kept in f16: tell AutoAWQ-style loaders */
            const char *dot = strrchr(hf, '.');
            if (t->n_dims == 2 && strncmp(t->name, "blk.", 4) == 0 && dot && !strcmp(dot, ".weight")) {
                const char *p = dot - 1;
                while (p > hf && *p != '.') p--;
                json_t *nm = json_stringn(p + 1, (size_t)(dot - p - 1));
                bool dup = false;
                for (size_t k = 0; k < json_array_size(not_conv); k++)
                    dup |= json_equal(json_array_get(not_conv, k), nm);
                if (!dup) json_array_append(not_conv, nm);
                json_decref(nm);
            }
            continue;
        }
        if (g != group) {
            s = sk_fail(SK_ERR_ARG, "quantize: tensor '%s' has group %d, the checkpoint %d", t->name,
                        g, group);
            goto done;
        }
        const int64_t N = t->shape[0], K = t->shape[1];
        if (t->n_dims != 2 || N % 8 != 0 || K % g != 0) {
            s = sk_fail(SK_ERR_ARG, "quantize: tensor '%s' [%lld, %lld] cannot be packed", t->name,
                        (long long)N, (long long)K);
            goto done;
        }
        int32_t *qw = malloc(sizeof(int32_t) * (size_t)(K * N / 8));
        int32_t *qz = malloc(sizeof(int32_t) * (size_t)(K / g * N / 8));
        uint16_t *sc = malloc(sizeof(uint16_t) * (size_t)(K / g * N));
        bufs[nb++] = qw, bufs[nb++] = qz, bufs[nb++] = sc;
        if (!qw || !qz || !sc) {
            s = sk_fail(SK_ERR_NOMEM, "quantize: out of memory packing '%s'", t->name);
            goto done;
        }
        sk_awq_pack(data, N, K, g, qw, qz, sc);
        const size_t stem = strlen(hf) - strlen(".weight");
        snprintf(names[no], sizeof names[no], "%.*s.qweight", (int)stem, hf);
        outs[no] = (sk_st_out){names[no], "I32", 2, {K, N / 8}, qw, sizeof(int32_t) * (size_t)(K * N / 8)};
        no++;
        snprintf(names[no], sizeof names[no], "%.*s.qzeros", (int)stem, hf);
        outs[no] = (sk_st_out){names[no], "I32", 2, {K / g, N / 8}, qz,
                               sizeof(int32_t) * (size_t)(K / g * N / 8)};
        no++;
        snprintf(names[no], sizeof names[no], "%.*s.scales", (int)stem, hf);
        outs[no] = (sk_st_out){names[no], "F16", 2, {K / g, N}, sc, sizeof(uint16_t) * (size_t)(K / g * N)};
        no++;
    }
    char path[PATH_MAX_Q], from[PATH_MAX_Q];
    if ((s = join(path, out_dir, "model.safetensors")) != SK_OK) goto done;
    if ((s = sk_st_write(path, outs, no)) != SK_OK) goto done;

    if (src_dir) {
        if ((s = join(from, src_dir, "config.json")) != SK_OK) goto done;
        if ((s = sk_json_load_file(from, 0, &cfg)) != SK_OK) goto done;
    } else {
        cfg = config_from_hp(q);
    }
    json_t *qc = json_object();
    json_object_set_new(qc, "quant_method", json_string("awq"));
    json_object_set_new(qc, "bits", json_integer(4));
    json_object_set_new(qc, "group_size", json_integer(group));
    json_object_set_new(qc, "zero_point", json_true());
    json_object_set_new(qc, "version", json_string("gemm"));
    json_object_set_new(qc, "modules_to_not_convert",
                        json_array_size(not_conv) ? json_incref(not_conv) : json_null());
    json_object_set_new(cfg, "quantization_config", qc);
    json_object_set_new(cfg, "torch_dtype", json_string("float16"));
    if ((s = join(path, out_dir, "config.json")) != SK_OK) goto done;
    if (json_dump_file(cfg, path, JSON_INDENT(2)) != 0) {
        s = sk_fail(SK_ERR_IO, "%s: write failed", path);
        goto done;
    }

    if (src_dir) {
        static const char *const files[] = {"tokenizer.json", "tokenizer_config.json",
                                            "generation_config.json", "special_tokens_map.json",
                                            "chat_template.jinja"};
        for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
            if ((s = join(from, src_dir, files[i])) != SK_OK) goto done;
            if (sk_path_is_dir(from) != 0) continue;
            if ((s = join(path, out_dir, files[i])) != SK_OK) goto done;
            if ((s = copy_file(from, path)) != SK_OK) goto done;
        }
    } else {
        s = write_tokenizer(&q->vocab, out_dir);
    }
done:
    for (int i = 0; i < nb; i++) free(bufs[i]);
    free(bufs);
    free(outs);
    free(names);
    json_decref(cfg);
    json_decref(not_conv);
    return s;
}

/* ---- saker quantize --------------------------------------------------------------------- */

sk_status sk_quantize(const sk_quant_params *p) {
    sk_model_file mf, q;
    memset(&q, 0, sizeof q);
    SK_TRY(sk_model_file_load(p->model, p->tokenizer, &mf));
    sk_status s = SK_OK;
    int32_t *toks = NULL, n_samples = 0;
    char *text = NULL;
    sk_tokenizer *tok = NULL;
    int calib_len = p->calib_len;
    const bool hf = sk_path_is_dir(p->model) == 1;
    if (!hf && mf.hp.arch != SK_ARCH_LLAMA) {
        s = sk_fail(SK_ERR_UNSUPPORTED,
                    "%s: writing a %s checkpoint needs an HF source directory (its config.json)",
                    p->model, sk_arch_name(mf.hp.arch));
        goto done;
    }
    if (p->method == SK_QUANT_AWQ && calib_len > mf.hp.n_ctx_train) {
        SK_LOGW("quantize: --calib-len %d exceeds the model's context %d; using %d", calib_len,
                mf.hp.n_ctx_train, mf.hp.n_ctx_train);
        calib_len = mf.hp.n_ctx_train;
    }
    if (p->method == SK_QUANT_AWQ) {
        if (!p->calib) {
            s = sk_fail(SK_ERR_ARG, "quantize: AWQ needs a calibration text (--calib FILE)");
            goto done;
        }
        if (mf.vocab.type == SK_VOCAB_NONE) {
            s = sk_fail(SK_ERR_ARG, "%s: no vocabulary to tokenize the calibration text with",
                        p->model);
            goto done;
        }
        size_t len;
        if ((s = sk_file_read_all(p->calib, &text, &len)) != SK_OK) goto done;
        if ((s = sk_tokenizer_new(&mf.vocab, mf.hp.n_vocab, &tok)) != SK_OK) goto done;
        const int cap = (int)(len < 0x7ffffff0 ? len : 0x7ffffff0) + 16;
        toks = malloc(sizeof(int32_t) * (size_t)cap);
        int n = toks ? sk_tokenizer_encode(tok, text, len, false, false, toks, cap) : -1;
        if (n < 0) {
            s = toks ? SK_ERR_FORMAT : sk_fail(SK_ERR_NOMEM, "quantize: out of memory");
            goto done;
        }
        /* The samples are the text's last n x len tokens: perplexity runs score a file's first
         * windows, so calibrating on the tail of the same file keeps the two apart. */
        n_samples = n / calib_len < p->calib_samples ? n / calib_len : p->calib_samples;
        if (n_samples < 1) {
            s = sk_fail(SK_ERR_ARG, "%s: %d tokens, fewer than one sample of %d", p->calib, n,
                        calib_len);
            goto done;
        }
        if (n_samples < p->calib_samples)
            SK_LOGW("quantize: %s has %d tokens: %d samples of %d instead of %d", p->calib, n,
                    n_samples, calib_len, p->calib_samples);
        memmove(toks, toks + (n - n_samples * calib_len),
                sizeof(int32_t) * (size_t)n_samples * (size_t)calib_len);
        if (p->progress)
            fprintf(stderr, "quantize: AWQ calibration on %d x %d tokens from the end of %s\n",
                    n_samples, calib_len, p->calib);
    }
    int group = 0;
    if ((s = sk_quantize_model(&mf, p, toks, n_samples, calib_len, &q, &group)) != SK_OK) goto done;
    s = sk_awq_write_hf(&q, group, hf ? p->model : NULL, p->out_dir);
    q.vocab = (sk_vocab_data){0};
    sk_mf_free(&q);
done:
    sk_tokenizer_free(tok);
    free(toks);
    free(text);
    sk_mf_free(&mf);
    return s;
}
