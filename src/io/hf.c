/* Hugging Face model directories: config.json + model.safetensors (or sharded with
 * model.safetensors.index.json) + tokenizer.json (+ tokenizer_config.json,
 * generation_config.json, chat_template.jinja) -> sk_model_file (see model_file.h for the
 * canonical names and shapes).
 *
 * Supported: model_type "llama", "mistral" (no sliding window), "falcon" (and its legacy
 * "RefinedWeb" / "RefinedWebModel"). Keys missing from config.json take the defaults of
 * transformers' LlamaConfig / MistralConfig / FalconConfig. Tensors keep the file's dtype (F32,
 * F16, BF16) and point into the mappings, except Falcon's fused QKV, whose rows are reordered
 * into a heap copy. Tokenizers: BPE models only, byte-level (GPT-2 style: SK_VOCAB_BPE with the
 * pre-tokenizer's regexes) or byte-fallback SentencePiece-style (SK_VOCAB_SPM with scores
 * synthesised from merge ranks). */
#include "model/model_file.h"

#include "io/json_util.h"
#include "io/safetensors.h"
#include "quant/quant.h"

#include <limits.h>
#include <strings.h>
#include <stdint.h>
#include <string.h>

#define HF_PATH_MAX 4096
#define HF_MAX_VOCAB (1 << 22) /* sk_model_file_validate's limit on n_vocab */

static sk_status join(char *buf, const char *dir, const char *name) {
    int n = snprintf(buf, HF_PATH_MAX, "%s/%s", dir, name);
    if (n < 0 || n >= HF_PATH_MAX) return sk_fail(SK_ERR_ARG, "%s: path too long", dir);
    return SK_OK;
}

static bool file_exists(const char *path) { return sk_path_is_dir(path) == 0; }

/* ------------------------------------------------------------------------------------------ */
/* config.json                                                                                */

/* Accepts no RoPE variant but the default one: `what` is "rope_scaling" or "rope_parameters". */
static sk_status check_rope_type(const json_t *o, const char *path, const char *what) {
    if (!json_is_object(o)) return sk_fail(SK_ERR_FORMAT, "%s: '%s' must be an object", path, what);
    const char *ty = NULL;
    SK_TRY(sk_json_str(o, "rope_type", NULL, path, &ty));
    if (!ty) SK_TRY(sk_json_str(o, "type", NULL, path, &ty));
    if (ty && strcmp(ty, "default") != 0)
        return sk_fail(SK_ERR_UNSUPPORTED, "%s: %s type '%s' is not supported (only default RoPE)",
                       path, what, ty);
    if (!ty && strcmp(what, "rope_scaling") == 0)
        return sk_fail(SK_ERR_UNSUPPORTED, "%s: rope_scaling without a type is not supported",
                       path);
    return SK_OK;
}

/* rope_theta from "rope_theta" or transformers v5's "rope_parameters": {"rope_theta": ...};
 * rejects rope scaling. */
static sk_status cfg_rope(const json_t *c, const char *path, float *theta) {
    double t;
    SK_TRY(sk_json_num(c, "rope_theta", 10000.0, path, &t));
    const json_t *rp = sk_json_opt(c, "rope_parameters");
    if (rp) {
        SK_TRY(check_rope_type(rp, path, "rope_parameters"));
        SK_TRY(sk_json_num(rp, "rope_theta", t, path, &t));
    }
    const json_t *rs = sk_json_opt(c, "rope_scaling");
    if (rs) SK_TRY(check_rope_type(rs, path, "rope_scaling"));
    *theta = (float)t;
    return SK_OK;
}

/* An int config value: key, else (when alias is non-NULL) alias, else def; in [lo, INT_MAX]. */
static sk_status cfg_int(const json_t *c, const char *path, const char *key, const char *alias,
                         int64_t def, int64_t lo, int *out) {
    int64_t v;
    if (alias && !sk_json_opt(c, key)) key = alias;
    SK_TRY(sk_json_int(c, key, def, lo, INT_MAX, path, &v));
    *out = (int)v;
    return SK_OK;
}

static sk_status cfg_false(const json_t *c, const char *path, const char *key, const char *what) {
    bool b;
    SK_TRY(sk_json_bool(c, key, false, path, &b));
    if (b)
        return sk_fail(SK_ERR_UNSUPPORTED, "%s: '%s' = true (%s) is not supported", path, key,
                       what);
    return SK_OK;
}

/* LlamaConfig / MistralConfig -> hp. */
static sk_status cfg_llama(const json_t *c, const char *path, bool mistral, sk_hparams *hp) {
    hp->arch = SK_ARCH_LLAMA;
    SK_TRY(cfg_int(c, path, "vocab_size", NULL, 32000, 1, &hp->n_vocab));
    SK_TRY(cfg_int(c, path, "hidden_size", NULL, 4096, 1, &hp->dim));
    SK_TRY(cfg_int(c, path, "intermediate_size", NULL, mistral ? 14336 : 11008, 1, &hp->ffn_dim));
    SK_TRY(cfg_int(c, path, "num_hidden_layers", NULL, 32, 1, &hp->n_layers));
    SK_TRY(cfg_int(c, path, "num_attention_heads", NULL, 32, 1, &hp->n_heads));
    SK_TRY(cfg_int(c, path, "num_key_value_heads", NULL, mistral ? 8 : hp->n_heads, 1,
                   &hp->n_kv_heads));
    SK_TRY(cfg_int(c, path, "head_dim", NULL, hp->dim / hp->n_heads, 1, &hp->head_dim));
    SK_TRY(cfg_int(c, path, "max_position_embeddings", NULL, mistral ? 4096 * 32 : 2048, 1,
                   &hp->n_ctx_train));
    double eps;
    SK_TRY(sk_json_num(c, "rms_norm_eps", 1e-6, path, &eps));
    hp->norm_eps = (float)eps;
    SK_TRY(cfg_rope(c, path, &hp->rope_theta));
    bool tie;
    SK_TRY(sk_json_bool(c, "tie_word_embeddings", false, path, &tie));
    hp->tied_output = tie;
    const char *act;
    SK_TRY(sk_json_str(c, "hidden_act", "silu", path, &act));
    if (strcmp(act, "silu") != 0 && strcmp(act, "swish") != 0)
        return sk_fail(SK_ERR_UNSUPPORTED, "%s: hidden_act '%s' is not supported (only silu)", path,
                       act);
    SK_TRY(cfg_false(c, path, "attention_bias", "biases on q/k/v/o projections"));
    SK_TRY(cfg_false(c, path, "mlp_bias", "biases on the MLP projections"));
    if (mistral) {
        /* MistralConfig's sliding_window defaults to 4096; null turns it off. A window at least
         * as long as the trained context never masks anything. */
        int64_t sw = 4096;
        const json_t *jsw = json_object_get(c, "sliding_window");
        if (jsw) SK_TRY(sk_json_int(c, "sliding_window", -1, 0, INT64_MAX, path, &sw));
        if (sw >= 0 && sw < hp->n_ctx_train)
            return sk_fail(
                SK_ERR_UNSUPPORTED,
                "%s: sliding_window = %lld (< max_position_embeddings %d) is not supported", path,
                (long long)sw, hp->n_ctx_train);
    }
    hp->rope_dim = hp->head_dim;
    hp->rope_pairing = SK_ROPE_HALVES;
    hp->parallel_attn = false;
    hp->n_ln_per_layer = 2; /* attn_norm before attention, ffn_norm before the MLP */
    hp->linear_bias = false;
    return SK_OK;
}

/* FalconConfig -> hp. legacy_rw: model_type "RefinedWeb" (Falcon-40B's original code, which
 * always used the grouped "new decoder architecture" and named the KV head count n_head_kv). */
static sk_status cfg_falcon(const json_t *c, const char *path, bool legacy_rw, sk_hparams *hp) {
    hp->arch = SK_ARCH_FALCON;
    SK_TRY(cfg_int(c, path, "vocab_size", NULL, 65024, 1, &hp->n_vocab));
    /* FalconConfig lets the legacy "n_embed" override hidden_size. */
    SK_TRY(cfg_int(c, path, "hidden_size", NULL, 4544, 1, &hp->dim));
    SK_TRY(cfg_int(c, path, "n_embed", NULL, hp->dim, 1, &hp->dim));
    SK_TRY(cfg_int(c, path, "num_hidden_layers", "n_layer", 32, 1, &hp->n_layers));
    SK_TRY(cfg_int(c, path, "num_attention_heads", "n_head", 71, 1, &hp->n_heads));
    bool new_dec, multi_query, parallel, bias;
    SK_TRY(sk_json_bool(c, "new_decoder_architecture", legacy_rw, path, &new_dec));
    SK_TRY(sk_json_bool(c, "multi_query", true, path, &multi_query));
    SK_TRY(sk_json_bool(c, "parallel_attn", true, path, &parallel));
    SK_TRY(sk_json_bool(c, "bias", false, path, &bias));
    SK_TRY(cfg_false(c, path, "alibi", "ALiBi position biases"));
    SK_TRY(cfg_false(c, path, "apply_residual_connection_post_layernorm",
                     "residual taken after the LayerNorm"));
    int n_kv;
    SK_TRY(cfg_int(c, path, "num_kv_heads", "n_head_kv", legacy_rw ? 1 : hp->n_heads, 1, &n_kv));
    hp->n_kv_heads = new_dec ? n_kv : multi_query ? 1 : hp->n_heads;
    hp->head_dim = hp->dim / hp->n_heads;
    int64_t ffn_def = 4 * (int64_t)hp->dim;
    SK_TRY(cfg_int(c, path, "ffn_hidden_size", NULL, ffn_def > INT_MAX ? INT_MAX : ffn_def, 1,
                   &hp->ffn_dim));
    SK_TRY(cfg_int(c, path, "max_position_embeddings", NULL, 2048, 1, &hp->n_ctx_train));
    double eps;
    SK_TRY(sk_json_num(c, "layer_norm_epsilon", 1e-5, path, &eps));
    hp->norm_eps = (float)eps;
    SK_TRY(cfg_rope(c, path, &hp->rope_theta));
    bool tie;
    SK_TRY(sk_json_bool(c, "tie_word_embeddings", true, path, &tie));
    hp->tied_output = tie;
    const char *act;
    SK_TRY(sk_json_str(c, "activation", "gelu", path, &act));
    if (strcmp(act, "gelu") != 0)
        return sk_fail(SK_ERR_UNSUPPORTED, "%s: activation '%s' is not supported (only gelu)", path,
                       act);
    if (new_dec) {
        /* transformers' FalconDecoderLayer adds the MLP output to the attention output whenever
         * new_decoder_architecture is set: it is always parallel. */
        if (!parallel)
            return sk_fail(
                SK_ERR_UNSUPPORTED,
                "%s: new_decoder_architecture with parallel_attn = false is not supported", path);
        SK_TRY(cfg_int(c, path, "num_ln_in_parallel_attn", NULL, 2, 1, &hp->n_ln_per_layer));
        if (hp->n_ln_per_layer > 2)
            return sk_fail(SK_ERR_FORMAT, "%s: num_ln_in_parallel_attn = %d (must be 1 or 2)", path,
                           hp->n_ln_per_layer);
        hp->parallel_attn = true;
    } else {
        hp->parallel_attn = parallel;
        hp->n_ln_per_layer = parallel ? 1 : 2;
    }
    hp->linear_bias = bias;
    hp->rope_dim = hp->head_dim;
    hp->rope_pairing = SK_ROPE_HALVES;
    return SK_OK;
}

static sk_status parse_config(const json_t *c, const char *path, sk_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    const char *mt;
    SK_TRY(sk_json_str(c, "model_type", NULL, path, &mt));
    if (!mt) {
        /* Old configs without model_type: go by the class name. */
        const json_t *ar = sk_json_opt(c, "architectures");
        const char *a0 = json_string_value(json_array_get(ar, 0));
        if (a0 && strcmp(a0, "LlamaForCausalLM") == 0)
            mt = "llama";
        else if (a0 && strcmp(a0, "MistralForCausalLM") == 0)
            mt = "mistral";
        else if (a0 && (strcmp(a0, "FalconForCausalLM") == 0 || strcmp(a0, "RWForCausalLM") == 0))
            mt = "falcon";
        else
            return sk_fail(SK_ERR_FORMAT, "%s: no 'model_type' (and no known 'architectures')",
                           path);
    }
    if (strcmp(mt, "llama") == 0) return cfg_llama(c, path, false, hp);
    if (strcmp(mt, "mistral") == 0) return cfg_llama(c, path, true, hp);
    if (strcmp(mt, "falcon") == 0 || strcmp(mt, "RefinedWebModel") == 0)
        return cfg_falcon(c, path, false, hp);
    if (strcmp(mt, "RefinedWeb") == 0) return cfg_falcon(c, path, true, hp);
    return sk_fail(SK_ERR_UNSUPPORTED,
                   "%s: model_type '%s' is not supported (llama, mistral, falcon)", path, mt);
}

/* ------------------------------------------------------------------------------------------ */
/* Tensors                                                                                    */

typedef struct name_map {
    const char *hf, *canon;
} name_map;

static const name_map k_llama_global[] = {
    {"model.embed_tokens", "token_embd"}, {"model.norm", "output_norm"}, {"lm_head", "output"}};
static const name_map k_llama_layer[] = {
    {"input_layernorm", "attn_norm"},    {"self_attn.q_proj", "attn_q"},
    {"self_attn.k_proj", "attn_k"},      {"self_attn.v_proj", "attn_v"},
    {"self_attn.o_proj", "attn_output"}, {"post_attention_layernorm", "ffn_norm"},
    {"mlp.gate_proj", "ffn_gate"},       {"mlp.up_proj", "ffn_up"},
    {"mlp.down_proj", "ffn_down"}};
static const name_map k_falcon_global[] = {{"transformer.word_embeddings", "token_embd"},
                                           {"transformer.ln_f", "output_norm"},
                                           {"lm_head", "output"}};
static const name_map k_falcon_layer[] = {{"input_layernorm", "attn_norm"},
                                          {"ln_attn", "attn_norm"},
                                          {"ln_mlp", "attn_norm_2"},
                                          {"post_attention_layernorm", "attn_norm_2"},
                                          {"self_attention.query_key_value", "attn_qkv"},
                                          {"self_attention.dense", "attn_output"},
                                          {"mlp.dense_h_to_4h", "ffn_up"},
                                          {"mlp.dense_4h_to_h", "ffn_down"}};

static const char *lookup(const name_map *m, size_t n, const char *stem, size_t len) {
    for (size_t i = 0; i < n; i++)
        if (strlen(m[i].hf) == len && memcmp(m[i].hf, stem, len) == 0) return m[i].canon;
    return NULL;
}

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* Canonical name of HF tensor `hf` into out, or false when the tensor is not used. */
static bool map_name(const sk_hparams *hp, const char *hf, char out[SK_NAME_MAX]) {
    const char *dot = strrchr(hf, '.');
    if (!dot) return false;
    const char *suffix = dot + 1;
    bool falcon = hp->arch == SK_ARCH_FALCON;
    if (strcmp(suffix, "weight") != 0 && !(falcon && strcmp(suffix, "bias") == 0)) return false;
    size_t stem_len = (size_t)(dot - hf);
    const char *canon = falcon ? lookup(k_falcon_global, COUNT(k_falcon_global), hf, stem_len)
                               : lookup(k_llama_global, COUNT(k_llama_global), hf, stem_len);
    if (canon) {
        if (hp->tied_output && strcmp(canon, "output") == 0) {
            SK_LOGD("ignoring '%s': the output head is tied to the embeddings", hf);
            return false;
        }
        snprintf(out, SK_NAME_MAX, "%s.%s", canon, suffix);
        return true;
    }
    const char *prefix = falcon ? "transformer.h." : "model.layers.";
    size_t pl = strlen(prefix);
    if (strncmp(hf, prefix, pl) != 0) return false;
    const char *p = hf + pl;
    long layer = 0;
    int nd = 0;
    while (*p >= '0' && *p <= '9' && nd < 9) layer = layer * 10 + (*p++ - '0'), nd++;
    if (nd == 0 || *p != '.' || p >= dot) return false;
    p++;
    if (layer >= hp->n_layers) {
        SK_LOGW("ignoring '%s': layer %ld is past num_hidden_layers %d", hf, layer, hp->n_layers);
        return false;
    }
    size_t rest_len = (size_t)(dot - p);
    canon = falcon ? lookup(k_falcon_layer, COUNT(k_falcon_layer), p, rest_len)
                   : lookup(k_llama_layer, COUNT(k_llama_layer), p, rest_len);
    if (!canon) return false;
    snprintf(out, SK_NAME_MAX, "blk.%ld.%s.%s", layer, canon, suffix);
    return true;
}

static sk_tensor *find_mut(sk_model_file *mf, const char *name) {
    for (int i = 0; i < mf->n_tensors; i++)
        if (strcmp(mf->tensors[i].name, name) == 0) return &mf->tensors[i];
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* AutoAWQ checkpoints: config.json's quantization_config {quant_method "awq", bits 4,
 * group_size, zero_point true, version "gemm"} and, per quantized Linear "<stem>", the tensors
 * <stem>.qweight (I32 [K, N/8]), <stem>.qzeros (I32 [K/g, N/8]) and <stem>.scales (F16 [K/g, N])
 * in the layout of quant.h, repacked on load into a Q4G tensor "<canonical>.weight" [N, K]. */

typedef struct awq_part {
    char stem[SK_NAME_MAX];  /* HF name without the suffix */
    char canon[SK_NAME_MAX]; /* canonical "....weight" */
    sk_st_tensor t[3];       /* name not owned; data into a mapping mf owns */
    bool have[3];
} awq_part;

typedef struct awq_ctx {
    bool on;
    int group;
    int n_parts;
    awq_part *parts;
} awq_ctx;

static const char *const k_awq_suffix[3] = {"qweight", "qzeros", "scales"};

/* The AWQ settings of quantization_config object q (path names it in messages). */
static sk_status awq_parse(const json_t *q, const char *path, awq_ctx *a) {
    if (!json_is_object(q))
        return sk_fail(SK_ERR_FORMAT, "%s: quantization_config is not an object", path);
    const char *method, *version;
    int64_t bits, group;
    bool zp;
    SK_TRY(sk_json_str(q, "quant_method", NULL, path, &method));
    if (!method || strcmp(method, "awq") != 0)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: quantization_config.quant_method '%s' is not supported (only awq)",
                       path, method ? method : "(missing)");
    SK_TRY(sk_json_int(q, "bits", 4, 1, 64, path, &bits));
    if (!json_object_get(q, "bits")) SK_TRY(sk_json_int(q, "w_bit", 4, 1, 64, path, &bits));
    SK_TRY(sk_json_int(q, "group_size", -1, -1, 1 << 20, path, &group));
    if (!json_object_get(q, "group_size"))
        SK_TRY(sk_json_int(q, "q_group_size", -1, -1, 1 << 20, path, &group));
    SK_TRY(sk_json_bool(q, "zero_point", true, path, &zp));
    SK_TRY(sk_json_str(q, "version", "gemm", path, &version));
    if (bits != 4)
        return sk_fail(SK_ERR_UNSUPPORTED, "%s: AWQ with %d bits is not supported (only 4)", path,
                       (int)bits);
    if (sk_dtype_q4g((int)group) == SK_DTYPE_COUNT)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: AWQ group_size %d is not supported (32, 64 or 128)", path, (int)group);
    if (!zp)
        return sk_fail(SK_ERR_UNSUPPORTED, "%s: AWQ without zero points is not supported", path);
    if (strcasecmp(version, "gemm") != 0)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: AWQ version '%s' is not supported (only the GEMM layout)", path,
                       version);
    a->on = true;
    a->group = (int)group;
    return SK_OK;
}

/* Reads quantization_config (absent: a plain checkpoint), or, when config.json has none, the
 * quant_config.json that older AutoAWQ versions wrote beside it ({w_bit, q_group_size,
 * zero_point, version}, no quant_method). */
static sk_status awq_config(const json_t *cfg, const char *path, const char *dir, awq_ctx *a) {
    memset(a, 0, sizeof *a);
    const json_t *q = sk_json_opt(cfg, "quantization_config");
    json_t *old = NULL;
    char qpath[HF_PATH_MAX];
    if (!q) {
        SK_TRY(join(qpath, dir, "quant_config.json"));
        if (!file_exists(qpath)) return SK_OK;
        SK_TRY(sk_json_load_file(qpath, 0, &old));
        if (!json_object_get(old, "quant_method")) json_object_set_new(old, "quant_method", json_string("awq"));
        q = old;
        path = qpath;
    }
    sk_status s = awq_parse(q, path, a);
    json_decref(old);
    return s;
}

static void awq_free(awq_ctx *a) {
    free(a->parts);
    memset(a, 0, sizeof *a);
}

/* Records hf (a .qweight/.qzeros/.scales tensor) when it belongs to a used Linear; *taken is
 * false when hf is not an AWQ part. */
static sk_status awq_add(awq_ctx *a, const sk_hparams *hp, const char *file, const char *hf,
                         const sk_st_tensor *t, bool *taken) {
    *taken = false;
    const char *dot = strrchr(hf, '.');
    if (!a->on || !dot) return SK_OK;
    int which = -1;
    for (int i = 0; i < 3; i++)
        if (strcmp(dot + 1, k_awq_suffix[i]) == 0) which = i;
    if (which < 0) return SK_OK;
    *taken = true;
    size_t sl = (size_t)(dot - hf);
    if (sl + 8 >= SK_NAME_MAX) return SK_OK; /* too long to be a tensor we use */
    char wname[SK_NAME_MAX], canon[SK_NAME_MAX];
    snprintf(wname, sizeof wname, "%.*s.weight", (int)sl, hf);
    if (!map_name(hp, wname, canon)) {
        SK_LOGD("%s: ignoring tensor '%s'", file, hf);
        return SK_OK;
    }
    awq_part *p = NULL;
    for (int i = 0; i < a->n_parts && !p; i++)
        if (strcmp(a->parts[i].canon, canon) == 0) p = &a->parts[i];
    if (!p) {
        a->parts = sk_xrealloc(a->parts, sizeof *a->parts * (size_t)(a->n_parts + 1));
        p = &a->parts[a->n_parts++];
        memset(p, 0, sizeof *p);
        snprintf(p->stem, sizeof p->stem, "%.*s", (int)sl, hf);
        snprintf(p->canon, sizeof p->canon, "%s", canon);
    }
    if (p->have[which])
        return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s' appears twice", file, hf);
    p->have[which] = true;
    p->t[which] = *t;
    return SK_OK;
}

/* int32 data of an I32 tensor, copied when misaligned (into *copy, freed by the caller). */
static const int32_t *i32_data(const sk_st_tensor *t, void **copy) {
    *copy = NULL;
    if ((uintptr_t)t->data % 4 == 0) return t->data;
    *copy = malloc(t->nbytes ? t->nbytes : 1);
    if (*copy) memcpy(*copy, t->data, t->nbytes);
    return *copy;
}

/* Checks every recorded Linear's three tensors and repacks them into Q4G tensors of mf. */
static sk_status awq_finish(awq_ctx *a, sk_model_file *mf) {
    const int g = a->group;
    for (int i = 0; i < a->n_parts; i++) {
        awq_part *p = &a->parts[i];
        for (int k = 0; k < 3; k++)
            if (!p->have[k])
                return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s.%s' is missing (AWQ Linear '%s')",
                               mf->path, p->stem, k_awq_suffix[k], p->stem);
        const sk_st_tensor *qw = &p->t[0], *qz = &p->t[1], *sc = &p->t[2];
        for (int k = 0; k < 2; k++)
            if (strcmp(p->t[k].dtype_name, "I32") != 0)
                return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s.%s' has dtype %s, expected I32",
                               mf->path, p->stem, k_awq_suffix[k], p->t[k].dtype_name);
        if (sc->type != SK_F16)
            return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s.scales' has dtype %s, expected F16",
                           mf->path, p->stem, sc->dtype_name);
        if (qw->n_dims != 2 || qz->n_dims != 2 || sc->n_dims != 2)
            return sk_fail(SK_ERR_FORMAT, "%s: AWQ Linear '%s': qweight, qzeros and scales must be "
                           "2-D", mf->path, p->stem);
        const int64_t K = qw->shape[0], N = sc->shape[1];
        if (K <= 0 || N <= 0 || N % 8 != 0 || K % g != 0)
            return sk_fail(SK_ERR_FORMAT,
                           "%s: AWQ Linear '%s': in_features %lld must be a positive multiple of "
                           "group_size %d and out_features %lld of 8",
                           mf->path, p->stem, (long long)K, g, (long long)N);
        if (qw->shape[1] != N / 8 || qz->shape[0] != K / g || qz->shape[1] != N / 8 ||
            sc->shape[0] != K / g)
            return sk_fail(SK_ERR_FORMAT,
                           "%s: AWQ Linear '%s': qweight [%lld, %lld], qzeros [%lld, %lld], "
                           "scales [%lld, %lld] do not fit [K, N/8], [K/%d, N/8], [K/%d, N]",
                           mf->path, p->stem, (long long)qw->shape[0], (long long)qw->shape[1],
                           (long long)qz->shape[0], (long long)qz->shape[1],
                           (long long)sc->shape[0], (long long)sc->shape[1], g, g);
        if (find_mut(mf, p->canon))
            return sk_fail(SK_ERR_FORMAT, "%s: '%s' has both a weight and AWQ tensors", mf->path,
                           p->stem);
        const sk_dtype dt = sk_dtype_q4g(g);
        const size_t nbytes = (size_t)N * sk_dtype_row_bytes(dt, K);
        uint8_t *dst = malloc(nbytes);
        void *c0 = NULL, *c1 = NULL, *c2 = NULL;
        const int32_t *w32 = i32_data(qw, &c0), *z32 = i32_data(qz, &c1);
        const uint16_t *s16 = sc->data;
        if ((uintptr_t)s16 % 2) {
            c2 = malloc(sc->nbytes);
            if (c2) memcpy(c2, sc->data, sc->nbytes);
            s16 = c2;
        }
        if (!dst || !w32 || !z32 || !s16) {
            free(dst), free(c0), free(c1), free(c2);
            return sk_fail(SK_ERR_NOMEM, "%s: out of memory repacking '%s'", mf->path, p->stem);
        }
        sk_awq_unpack(w32, z32, s16, N, K, g, dst);
        free(c0), free(c1), free(c2);
        sk_tensor nt;
        memset(&nt, 0, sizeof nt);
        snprintf(nt.name, sizeof nt.name, "%s", p->canon);
        nt.type = dt;
        nt.n_dims = 2;
        nt.shape[0] = N;
        nt.shape[1] = K;
        nt.data = sk_mf_own(mf, dst);
        nt.nbytes = nbytes;
        sk_mf_add_tensor(mf, &nt);
    }
    return SK_OK;
}

/* Adds the safetensors tensor t (named hf in file `file`) under its canonical name, or ignores
 * it. Unsupported dtypes are an error only for tensors that are used. */
static sk_status add_tensor(sk_model_file *mf, const char *file, const char *hf,
                            const sk_st_tensor *t, awq_ctx *awq) {
    char canon[SK_NAME_MAX];
    bool taken;
    SK_TRY(awq_add(awq, &mf->hp, file, hf, t, &taken));
    if (taken) return SK_OK;
    if (!map_name(&mf->hp, hf, canon)) {
        SK_LOGD("%s: ignoring tensor '%s'", file, hf);
        return SK_OK;
    }
    if (t->type == SK_DTYPE_COUNT)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: tensor '%s' has dtype %s, which is not supported (F32, F16, BF16)",
                       file, hf, t->dtype_name);
    if (find_mut(mf, canon))
        return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s' maps to '%s', which another tensor provides",
                       file, hf, canon);
    sk_tensor nt;
    memset(&nt, 0, sizeof nt);
    snprintf(nt.name, sizeof nt.name, "%s", canon);
    nt.type = t->type;
    nt.n_dims = t->n_dims;
    memcpy(nt.shape, t->shape, sizeof nt.shape);
    nt.data = t->data;
    nt.nbytes = t->nbytes;
    /* safetensors does not promise aligned tensors; consumers may read whole elements. */
    size_t es = sk_dtype_block_bytes(t->type);
    if (t->nbytes && (uintptr_t)t->data % es != 0) {
        void *copy = malloc(t->nbytes);
        if (!copy) return sk_fail(SK_ERR_NOMEM, "%s: out of memory copying tensor '%s'", file, hf);
        memcpy(copy, t->data, t->nbytes);
        nt.data = sk_mf_own(mf, copy);
        SK_LOGD("%s: tensor '%s' is misaligned; copied", file, hf);
    }
    sk_mf_add_tensor(mf, &nt);
    return SK_OK;
}

/* A shard name from weight_map must be a plain relative path inside the model directory. */
static bool shard_name_ok(const char *s) {
    if (!*s || s[0] == '/') return false;
    for (const char *p = s; *p;) {
        const char *e = strchr(p, '/');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == 0 || (n == 2 && p[0] == '.' && p[1] == '.')) return false;
        p += n + (e ? 1 : 0);
    }
    return true;
}

/* Loads the weights: every tensor of model.safetensors, or every tensor that the index's
 * weight_map names, from its shard. The mappings go to mf. */
static sk_status load_weights(const char *dir, sk_model_file *mf, awq_ctx *awq) {
    char ipath[HF_PATH_MAX], spath[HF_PATH_MAX];
    SK_TRY(join(ipath, dir, "model.safetensors.index.json"));
    SK_TRY(join(spath, dir, "model.safetensors"));
    sk_status s = SK_OK;
    json_t *idx = NULL;
    sk_st_file *shards = NULL;
    const char **shard_names = NULL;
    int n_shards = 0;

    if (file_exists(ipath)) {
        SK_TRY(sk_json_load_file(ipath, 0, &idx));
        const json_t *wm = json_object_get(idx, "weight_map");
        if (!json_is_object(wm) || json_object_size(wm) == 0) {
            s = sk_fail(SK_ERR_FORMAT, "%s: missing or empty object 'weight_map'", ipath);
            goto done;
        }
        size_t nw = json_object_size(wm);
        shards = sk_xcalloc(nw, sizeof *shards);
        shard_names = sk_xcalloc(nw, sizeof *shard_names);
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)wm, key, v) {
            const char *sn = json_string_value(v);
            if (!sn || !shard_name_ok(sn)) {
                s = sk_fail(SK_ERR_FORMAT,
                            "%s: weight_map['%s'] is not a file name in the directory", ipath, key);
                goto done;
            }
            int si = 0;
            while (si < n_shards && strcmp(shard_names[si], sn) != 0) si++;
            if (si == n_shards) {
                char p[HF_PATH_MAX];
                if ((s = join(p, dir, sn)) != SK_OK) goto done;
                if ((s = sk_st_open(p, &shards[si])) != SK_OK) {
                    sk_error_prefix("%s: shard of '%s'", ipath, key);
                    goto done;
                }
                shard_names[n_shards++] = sn;
            }
            const sk_st_tensor *t = sk_st_find(&shards[si], key);
            if (!t) {
                s = sk_fail(SK_ERR_FORMAT, "%s: tensor '%s' is missing (%s puts it there)",
                            shards[si].path, key, ipath);
                goto done;
            }
            if ((s = add_tensor(mf, shards[si].path, key, t, awq)) != SK_OK) goto done;
        }
    } else if (file_exists(spath)) {
        shards = sk_xcalloc(1, sizeof *shards);
        if ((s = sk_st_open(spath, &shards[0])) != SK_OK) goto done;
        n_shards = 1;
        for (int i = 0; i < shards[0].n_tensors; i++) {
            const sk_st_tensor *t = &shards[0].tensors[i];
            if ((s = add_tensor(mf, spath, t->name, t, awq)) != SK_OK) goto done;
        }
    } else {
        char bin[HF_PATH_MAX];
        SK_TRY(join(bin, dir, "pytorch_model.bin"));
        if (file_exists(bin))
            return sk_fail(SK_ERR_UNSUPPORTED,
                           "%s: only pytorch_model.bin, no model.safetensors: PyTorch pickles are "
                           "not supported (convert to safetensors)",
                           dir);
        return sk_fail(SK_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
    }
    for (int i = 0; i < n_shards; i++) sk_mf_own_map(mf, sk_st_take_map(&shards[i]));

done:
    for (int i = 0; i < n_shards; i++) sk_st_close(&shards[i]);
    free(shards);
    free(shard_names);
    json_decref(idx);
    return s;
}

/* Falcon's fused QKV rows (weight [(H + 2*KV) * hd, dim], bias [(H + 2*KV) * hd]) as transformers
 * views them: [KV groups][H/KV Q heads, then 1 K head, then 1 V head][hd]. This covers the three
 * layouts: new_decoder_architecture (KV groups), multi_query (KV = 1: Q..., K, V) and the old
 * MHA (KV = H: q, k, v per head). Rewrites t in place to [all Q heads, all K heads, all V heads]
 * in a heap copy (same dtype). */
static sk_status falcon_reorder_qkv(sk_model_file *mf, sk_tensor *t) {
    const sk_hparams *hp = &mf->hp;
    const int64_t H = hp->n_heads, KV = hp->n_kv_heads, hd = hp->head_dim, qpk = H / KV;
    const int64_t rows = (H + 2 * KV) * hd;
    if (t->n_dims < 1 || t->shape[0] != rows || (t->n_dims == 2 && t->shape[1] != hp->dim) ||
        t->n_dims > 2)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: tensor '%s' has %lld rows / %d dims but expected "
                       "(n_heads + 2*n_kv_heads) * head_dim = %lld rows",
                       mf->path, t->name, (long long)t->shape[0], t->n_dims, (long long)rows);
    if (KV == 1) return SK_OK;                  /* already Q..., K, V */
    const size_t rb = t->nbytes / (size_t)rows; /* bytes per row */
    const size_t head = rb * (size_t)hd;
    const uint8_t *src = t->data;
    uint8_t *dst = malloc(t->nbytes ? t->nbytes : 1);
    if (!dst) return sk_fail(SK_ERR_NOMEM, "%s: out of memory reordering '%s'", mf->path, t->name);
    for (int64_t g = 0; g < KV; g++) {
        const uint8_t *grp = src + (size_t)(g * (qpk + 2)) * head;
        for (int64_t j = 0; j < qpk; j++)
            memcpy(dst + (size_t)(g * qpk + j) * head, grp + (size_t)j * head, head);
        memcpy(dst + (size_t)(H + g) * head, grp + (size_t)qpk * head, head);
        memcpy(dst + (size_t)(H + KV + g) * head, grp + (size_t)(qpk + 1) * head, head);
    }
    t->data = sk_mf_own(mf, dst);
    return SK_OK;
}

static sk_status finish_tensors(sk_model_file *mf) {
    const sk_hparams *hp = &mf->hp;
    if (!hp->tied_output && !find_mut(mf, "output.weight"))
        return sk_fail(SK_ERR_FORMAT,
                       "%s: tensor 'lm_head.weight' is missing and tie_word_embeddings is false",
                       mf->path);
    if (hp->arch != SK_ARCH_FALCON) return SK_OK;
    /* The reorder needs sane head counts (the full check is sk_model_file_validate's). */
    if (hp->n_heads < 1 || hp->n_heads > (1 << 20) || hp->head_dim < 1 ||
        hp->head_dim > (1 << 20) || hp->n_kv_heads < 1 || hp->n_heads % hp->n_kv_heads != 0)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: n_heads %d, n_kv_heads %d, head_dim %d do not describe attention heads",
                       mf->path, hp->n_heads, hp->n_kv_heads, hp->head_dim);
    for (int l = 0; l < hp->n_layers; l++) {
        char nm[SK_NAME_MAX];
        for (int b = 0; b < 2; b++) {
            snprintf(nm, sizeof nm, "blk.%d.attn_qkv.%s", l, b ? "bias" : "weight");
            sk_tensor *t = find_mut(mf, nm);
            if (t) SK_TRY(falcon_reorder_qkv(mf, t));
        }
    }
    return SK_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Tokenizer                                                                                  */

/* String -> id over the final token strings (open addressing, linear probing). */
typedef struct strmap {
    size_t mask;
    int *slot; /* id, or -1 */
    char *const *keys;
    const int *lens;
} strmap;

static uint64_t hash_bytes(const char *s, size_t n) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++) h = (h ^ (uint8_t)s[i]) * 1099511628211ull;
    return h;
}

static int strmap_get(const strmap *m, const char *s, size_t n) {
    for (size_t i = hash_bytes(s, n) & m->mask;; i = (i + 1) & m->mask) {
        int id = m->slot[i];
        if (id < 0) return -1;
        if ((size_t)m->lens[id] == n && memcmp(m->keys[id], s, n) == 0) return id;
    }
}

/* Builds the map over n tokens; the first id wins for duplicate strings. */
static bool strmap_init(strmap *m, char *const *keys, const int *lens, int n) {
    size_t cap = 16;
    while (cap < 2 * (size_t)n) cap *= 2;
    m->slot = malloc(cap * sizeof(int));
    if (!m->slot) return false;
    memset(m->slot, 0xff, cap * sizeof(int));
    m->mask = cap - 1;
    m->keys = keys;
    m->lens = lens;
    for (int id = 0; id < n; id++) {
        size_t i = hash_bytes(keys[id], (size_t)lens[id]) & m->mask;
        for (;; i = (i + 1) & m->mask) {
            int o = m->slot[i];
            if (o < 0) {
                m->slot[i] = id;
                break;
            }
            if (lens[o] == lens[id] && memcmp(keys[o], keys[id], (size_t)lens[id]) == 0) break;
        }
    }
    return true;
}

static int strmap_get_str(const strmap *m, const char *s) { return strmap_get(m, s, strlen(s)); }

/* malloc owned by mf (released by sk_mf_free); NULL on failure. */
static void *mf_alloc(sk_model_file *mf, size_t n) {
    void *p = malloc(n ? n : 1);
    return p ? sk_mf_own(mf, p) : NULL;
}

typedef struct tok_ctx {
    sk_model_file *mf;
    const char *dir;
    char path[HF_PATH_MAX];    /* tokenizer.json */
    char tc_path[HF_PATH_MAX]; /* tokenizer_config.json */
    json_t *tj, *tc, *gc;      /* tokenizer.json, tokenizer_config.json, generation_config.json */
    const json_t *cfg;         /* config.json */
    strmap map;
    bool byte_level, spm_style;
    int n_regex_cap;
} tok_ctx;

static const char k_gpt2_regex[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

static const char *jtype(const json_t *o) { return json_string_value(json_object_get(o, "type")); }

/* True if the pre-tokenizer or decoder tree (Sequence nodes flattened) contains a node of type. */
static bool tree_has(const json_t *node, const char *type) {
    if (!json_is_object(node)) return false;
    const char *t = jtype(node);
    if (t && strcmp(t, type) == 0) return true;
    const char *lists[] = {"pretokenizers", "decoders", "normalizers", "processors"};
    for (size_t k = 0; k < COUNT(lists); k++) {
        const json_t *a = json_object_get(node, lists[k]);
        for (size_t i = 0; i < json_array_size(a); i++)
            if (tree_has(json_array_get(a, i), type)) return true;
    }
    return false;
}

static sk_status push_regex(tok_ctx *c, const char *re) {
    sk_vocab_data *v = &c->mf->vocab;
    if (v->n_pre_regex == c->n_regex_cap) {
        c->n_regex_cap = c->n_regex_cap ? 2 * c->n_regex_cap : 4;
        char **na = sk_xcalloc((size_t)c->n_regex_cap, sizeof(char *));
        if (v->n_pre_regex) memcpy(na, v->pre_regex, sizeof(char *) * (size_t)v->n_pre_regex);
        v->pre_regex = sk_mf_own(c->mf, na); /* the old array stays owned; it is small */
    }
    v->pre_regex[v->n_pre_regex++] = sk_mf_own(c->mf, sk_xstrdup(re));
    return SK_OK;
}

/* PCRE2 pattern matching the literal s. */
static char *regex_escape(const char *s) {
    size_t n = strlen(s);
    char *o = sk_xmalloc(2 * n + 1), *p = o;
    for (; *s; s++) {
        if (strchr("\\^$.|?*+()[]{}-#/", *s)) *p++ = '\\';
        *p++ = *s;
    }
    *p = 0;
    return o;
}

static const char k_punct[] = "[\\p{P}\\$\\+<=>\\^~\\|`]";

/* Appends the regexes of a byte-level BPE pre-tokenizer node, in order. */
static sk_status pre_regexes(tok_ctx *c, const json_t *node) {
    if (!node || json_is_null(node)) return SK_OK;
    const char *t = jtype(node);
    if (!t) return sk_fail(SK_ERR_FORMAT, "%s: pre_tokenizer without a 'type'", c->path);
    if (strcmp(t, "Sequence") == 0) {
        const json_t *a = json_object_get(node, "pretokenizers");
        if (!json_is_array(a))
            return sk_fail(SK_ERR_FORMAT, "%s: Sequence pre_tokenizer without 'pretokenizers'",
                           c->path);
        for (size_t i = 0; i < json_array_size(a); i++)
            SK_TRY(pre_regexes(c, json_array_get(a, i)));
        return SK_OK;
    }
    if (strcmp(t, "ByteLevel") == 0) {
        bool use_regex, prefix;
        SK_TRY(sk_json_bool(node, "use_regex", true, c->path, &use_regex));
        SK_TRY(sk_json_bool(node, "add_prefix_space", true, c->path, &prefix));
        if (prefix) c->mf->vocab.add_space_prefix = true;
        return use_regex ? push_regex(c, k_gpt2_regex) : SK_OK;
    }
    if (strcmp(t, "Split") == 0) {
        const char *beh;
        bool invert;
        SK_TRY(sk_json_str(node, "behavior", "Isolated", c->path, &beh));
        SK_TRY(sk_json_bool(node, "invert", false, c->path, &invert));
        if (strcmp(beh, "Isolated") != 0 || invert)
            return sk_fail(SK_ERR_UNSUPPORTED,
                           "%s: Split pre-tokenizer with behavior '%s'%s is not supported "
                           "(only Isolated)",
                           c->path, beh, invert ? " and invert" : "");
        const json_t *pat = json_object_get(node, "pattern");
        const char *re = json_string_value(json_object_get(pat, "Regex"));
        const char *lit = json_string_value(json_object_get(pat, "String"));
        if (re) return push_regex(c, re);
        if (lit) {
            char *e = regex_escape(lit);
            sk_status s = push_regex(c, e);
            free(e);
            return s;
        }
        return sk_fail(SK_ERR_FORMAT, "%s: Split pre-tokenizer without a Regex or String pattern",
                       c->path);
    }
    if (strcmp(t, "Digits") == 0) {
        bool ind;
        SK_TRY(sk_json_bool(node, "individual_digits", false, c->path, &ind));
        return push_regex(c, ind ? "\\p{N}" : "\\p{N}+");
    }
    if (strcmp(t, "Punctuation") == 0) {
        const char *beh;
        SK_TRY(sk_json_str(node, "behavior", "Isolated", c->path, &beh));
        char re[64];
        if (strcmp(beh, "Isolated") == 0)
            snprintf(re, sizeof re, "%s", k_punct);
        else if (strcmp(beh, "Contiguous") == 0)
            snprintf(re, sizeof re, "%s+", k_punct);
        else
            return sk_fail(SK_ERR_UNSUPPORTED,
                           "%s: Punctuation pre-tokenizer with behavior '%s' is not supported",
                           c->path, beh);
        return push_regex(c, re);
    }
    return sk_fail(SK_ERR_UNSUPPORTED, "%s: pre-tokenizer '%s' is not supported", c->path, t);
}

/* SentencePiece-style tokenizers: the pre-tokenizer may only be Metaspace (or absent). Sets
 * add_space_prefix from Metaspace's prepend scheme or a normalizer that prepends U+2581. */
static sk_status spm_pre(tok_ctx *c, const json_t *node) {
    if (!node || json_is_null(node)) return SK_OK;
    const char *t = jtype(node);
    if (t && strcmp(t, "Sequence") == 0) {
        const json_t *a = json_object_get(node, "pretokenizers");
        for (size_t i = 0; i < json_array_size(a); i++) SK_TRY(spm_pre(c, json_array_get(a, i)));
        return SK_OK;
    }
    if (t && strcmp(t, "Metaspace") == 0) {
        const char *scheme;
        bool legacy_prefix;
        SK_TRY(sk_json_str(node, "prepend_scheme", NULL, c->path, &scheme));
        SK_TRY(sk_json_bool(node, "add_prefix_space", true, c->path, &legacy_prefix));
        if (scheme ? strcmp(scheme, "never") != 0 : legacy_prefix)
            c->mf->vocab.add_space_prefix = true;
        return SK_OK;
    }
    return sk_fail(SK_ERR_UNSUPPORTED,
                   "%s: pre-tokenizer '%s' is not supported with a byte-fallback (SentencePiece) "
                   "model",
                   c->path, t ? t : "?");
}

/* Whether the normalizer prepends U+2581 (Llama-2's converted tokenizer). */
static bool normalizer_prepends(const json_t *node) {
    if (!json_is_object(node)) return false;
    const char *t = jtype(node);
    if (t && strcmp(t, "Prepend") == 0) {
        const char *p = json_string_value(json_object_get(node, "prepend"));
        return p && strcmp(p, "\xe2\x96\x81") == 0;
    }
    const json_t *a = json_object_get(node, "normalizers");
    for (size_t i = 0; i < json_array_size(a); i++)
        if (normalizer_prepends(json_array_get(a, i))) return true;
    return false;
}

/* A token string from tokenizer_config.json: "text" or {"content": "text", ...}. */
static const char *special_str(const json_t *v) {
    if (json_is_string(v)) return json_string_value(v);
    return json_string_value(json_object_get(v, "content"));
}

/* Id of a JSON value that is an int or a non-empty list of ints (its first), or -1. n bounds. */
static int json_first_id(const json_t *v, int n) {
    if (json_is_array(v)) v = json_array_get(v, 0);
    if (!json_is_integer(v)) return -1;
    json_int_t x = json_integer_value(v);
    return x >= 0 && x < n ? (int)x : -1;
}

/* First SpecialToken (first = true) or last item of a TemplateProcessing's "single", found in
 * the post_processor tree; its id in the vocabulary or -1. */
static int template_special(const tok_ctx *c, const json_t *pp, bool first) {
    if (!json_is_object(pp)) return -1;
    const char *t = jtype(pp);
    if (t && strcmp(t, "TemplateProcessing") == 0) {
        const json_t *single = json_object_get(pp, "single");
        size_t n = json_array_size(single);
        if (n == 0) return -1;
        const json_t *it = json_array_get(single, first ? 0 : n - 1);
        const json_t *sp = json_object_get(it, "SpecialToken");
        const char *id = json_string_value(json_object_get(sp, "id"));
        return id ? strmap_get_str(&c->map, id) : -1;
    }
    const json_t *a = json_object_get(pp, "processors");
    for (size_t i = 0; i < json_array_size(a); i++) {
        int id = template_special(c, json_array_get(a, i), first);
        if (id >= 0) return id;
    }
    return -1;
}

/* Looks up the token named by tokenizer_config.json's key; -1 when absent; warns when unknown. */
static int config_token(const tok_ctx *c, const char *key) {
    const char *s = special_str(sk_json_opt(c->tc, key));
    if (!s) return -1;
    int id = strmap_get_str(&c->map, s);
    if (id < 0) SK_LOGW("%s: %s '%s' is not in the vocabulary", c->dir, key, s);
    return id;
}

/* Whether s[0..n) is exactly one UTF-8 character (by its lead byte). */
static bool is_one_char(const char *s, int n) {
    if (n <= 0) return false;
    unsigned char b = (unsigned char)s[0];
    int l = b < 0x80 ? 1 : (b >> 5) == 6 ? 2 : (b >> 4) == 14 ? 3 : (b >> 3) == 30 ? 4 : 1;
    return l == n;
}

static bool is_byte_token(const char *s, int n) {
    const char *hex = "0123456789ABCDEF";
    return n == 6 && memcmp(s, "<0x", 3) == 0 && s[5] == '>' && s[3] && strchr(hex, s[3]) && s[4] &&
           strchr(hex, s[4]);
}

/* Splits a merge entry into its two parts: "a b" (exactly one space) or ["a", "b"]. */
static bool merge_parts(const json_t *m, const char **a, size_t *al, const char **b, size_t *bl) {
    if (json_is_string(m)) {
        const char *s = json_string_value(m);
        size_t n = json_string_length(m);
        const char *sp = memchr(s, ' ', n);
        if (!sp || memchr(sp + 1, ' ', n - (size_t)(sp - s) - 1)) return false;
        *a = s, *al = (size_t)(sp - s), *b = sp + 1, *bl = n - *al - 1;
    } else if (json_is_array(m) && json_array_size(m) == 2 &&
               json_is_string(json_array_get(m, 0)) && json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0)),
        *al = json_string_length(json_array_get(m, 0));
        *b = json_string_value(json_array_get(m, 1)),
        *bl = json_string_length(json_array_get(m, 1));
    } else {
        return false;
    }
    return *al > 0 && *bl > 0;
}

/* model.vocab + added_tokens -> tokens, token_len, token_type (ids contiguous from 0). */
static sk_status tok_vocab(tok_ctx *c, const json_t *model) {
    sk_vocab_data *v = &c->mf->vocab;
    const json_t *vocab = json_object_get(model, "vocab");
    const json_t *added = sk_json_opt(c->tj, "added_tokens");
    if (!json_is_object(vocab))
        return sk_fail(SK_ERR_FORMAT, "%s: model.vocab is missing or not an object", c->path);
    if (added && !json_is_array(added))
        return sk_fail(SK_ERR_FORMAT, "%s: added_tokens is not an array", c->path);
    int64_t max_id = -1;
    const char *key;
    size_t klen;
    const json_t *val;
    json_object_keylen_foreach((json_t *)vocab, key, klen, val) {
        if (!json_is_integer(val) || json_integer_value(val) < 0 ||
            json_integer_value(val) >= HF_MAX_VOCAB)
            return sk_fail(SK_ERR_FORMAT, "%s: model.vocab['%.40s'] is not an id in [0, %d)",
                           c->path, key, HF_MAX_VOCAB);
        if (json_integer_value(val) > max_id) max_id = json_integer_value(val);
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i), *id = json_object_get(a, "id");
        if (!json_is_string(json_object_get(a, "content")) || !json_is_integer(id) ||
            json_integer_value(id) < 0 || json_integer_value(id) >= HF_MAX_VOCAB)
            return sk_fail(SK_ERR_FORMAT,
                           "%s: added_tokens[%zu] needs a string 'content' and an id "
                           "in [0, %d)",
                           c->path, i, HF_MAX_VOCAB);
        if (json_integer_value(id) > max_id) max_id = json_integer_value(id);
    }
    if (max_id < 0) return sk_fail(SK_ERR_FORMAT, "%s: the vocabulary is empty", c->path);
    const int n = (int)max_id + 1;
    const char **str = calloc((size_t)n, sizeof *str);
    size_t *len = calloc((size_t)n, sizeof *len);
    v->token_type = mf_alloc(c->mf, (size_t)n * sizeof(int));
    v->tokens = mf_alloc(c->mf, (size_t)n * sizeof(char *));
    v->token_len = mf_alloc(c->mf, (size_t)n * sizeof(int));
    sk_status s = SK_OK;
    if (!str || !len || !v->token_type || !v->tokens || !v->token_len) {
        s = sk_fail(SK_ERR_NOMEM, "%s: out of memory for %d tokens", c->path, n);
        goto done;
    }
    for (int i = 0; i < n; i++) v->token_type[i] = SK_TOKT_NORMAL;
    json_object_keylen_foreach((json_t *)vocab, key, klen, val) {
        int id = (int)json_integer_value(val);
        if (str[id]) {
            s = sk_fail(SK_ERR_FORMAT, "%s: id %d is given to two tokens in model.vocab", c->path,
                        id);
            goto done;
        }
        str[id] = key, len[id] = klen;
    }
    for (size_t i = 0; i < json_array_size(added); i++) {
        const json_t *a = json_array_get(added, i), *ct = json_object_get(a, "content");
        int id = (int)json_integer_value(json_object_get(a, "id"));
        str[id] = json_string_value(ct), len[id] = json_string_length(ct);
        v->token_type[id] =
            json_is_true(json_object_get(a, "special")) ? SK_TOKT_CONTROL : SK_TOKT_USER_DEFINED;
    }
    size_t total = 0;
    for (int i = 0; i < n; i++) {
        if (!str[i]) {
            s = sk_fail(SK_ERR_FORMAT,
                        "%s: token id %d is missing (ids must be 0..%d without holes)", c->path, i,
                        n - 1);
            goto done;
        }
        if (len[i] > INT_MAX / 2) {
            s = sk_fail(SK_ERR_FORMAT, "%s: token %d is too long", c->path, i);
            goto done;
        }
        total += len[i] + 1;
    }
    char *buf = mf_alloc(c->mf, total);
    if (!buf) {
        s = sk_fail(SK_ERR_NOMEM, "%s: out of memory for the token strings", c->path);
        goto done;
    }
    for (int i = 0; i < n; i++) {
        memcpy(buf, str[i], len[i]);
        buf[len[i]] = 0;
        v->tokens[i] = buf;
        v->token_len[i] = (int)len[i];
        buf += len[i] + 1;
    }
    v->n_tokens = n;
    if (!strmap_init(&c->map, v->tokens, v->token_len, n))
        s = sk_fail(SK_ERR_NOMEM, "%s: out of memory", c->path);
done:
    free(str);
    free(len);
    return s;
}

/* merges -> vocab.merges ("a b", BPE) or scores (SPM: the normal token that merge rank r
 * produces scores -(r + 1); single characters and <0xXX> bytes 0; multi-character tokens that no
 * merge produces, special ones included, -(n_merges + 1), below every merge). Greedy merging of the
 * best-scoring adjacent pair then follows BPE's lowest-rank-first order. */
static sk_status tok_merges(tok_ctx *c, const json_t *model) {
    sk_vocab_data *v = &c->mf->vocab;
    const json_t *merges = sk_json_opt(model, "merges");
    if (merges && !json_is_array(merges))
        return sk_fail(SK_ERR_FORMAT, "%s: model.merges is not an array", c->path);
    size_t nm = json_array_size(merges);
    if (nm > (size_t)INT_MAX / 2) return sk_fail(SK_ERR_FORMAT, "%s: too many merges", c->path);
    const int n = v->n_tokens;
    if (c->spm_style) {
        v->scores = mf_alloc(c->mf, (size_t)n * sizeof(float));
        if (!v->scores) return sk_fail(SK_ERR_NOMEM, "%s: out of memory", c->path);
        for (int i = 0; i < n; i++)
            v->scores[i] =
                v->token_type[i] == SK_TOKT_BYTE || is_one_char(v->tokens[i], v->token_len[i])
                    ? 0.0f
                    : -(float)nm - 1.0f;
    } else {
        size_t total = 0;
        for (size_t i = 0; i < nm; i++) {
            const char *a, *b;
            size_t al, bl;
            if (merge_parts(json_array_get(merges, i), &a, &al, &b, &bl)) total += al + bl + 2;
        }
        v->merges = mf_alloc(c->mf, (nm ? nm : 1) * sizeof(char *));
        char *buf = mf_alloc(c->mf, total);
        if (!v->merges || !buf)
            return sk_fail(SK_ERR_NOMEM, "%s: out of memory for merges", c->path);
        for (size_t i = 0; i < nm; i++) {
            const char *a, *b;
            size_t al, bl;
            if (!merge_parts(json_array_get(merges, i), &a, &al, &b, &bl))
                break; /* reported below */
            memcpy(buf, a, al);
            buf[al] = ' ';
            memcpy(buf + al + 1, b, bl);
            buf[al + 1 + bl] = 0;
            v->merges[i] = buf;
            buf += al + bl + 2;
        }
    }
    char *cat = NULL;
    size_t cat_cap = 0;
    sk_status s = SK_OK;
    for (size_t i = 0; i < nm; i++) {
        const char *a, *b;
        size_t al, bl;
        if (!merge_parts(json_array_get(merges, i), &a, &al, &b, &bl)) {
            s = sk_fail(SK_ERR_FORMAT, "%s: merges[%zu] is not \"a b\" or [\"a\", \"b\"]", c->path,
                        i);
            break;
        }
        if (!c->spm_style && (memchr(a, ' ', al) || memchr(b, ' ', bl))) {
            s = sk_fail(SK_ERR_UNSUPPORTED, "%s: merges[%zu] has a token with a space", c->path, i);
            break;
        }
        if (al + bl > cat_cap) {
            cat_cap = 2 * (al + bl);
            cat = sk_xrealloc(cat, cat_cap);
        }
        memcpy(cat, a, al);
        memcpy(cat + al, b, bl);
        int ia = strmap_get(&c->map, a, al), ib = strmap_get(&c->map, b, bl);
        int ic = strmap_get(&c->map, cat, al + bl);
        if (ia < 0 || ib < 0 || ic < 0) {
            s = sk_fail(SK_ERR_FORMAT,
                        "%s: merges[%zu] ('%.*s' + '%.*s') uses a token that is not "
                        "in the vocabulary",
                        c->path, i, (int)(al > 40 ? 40 : al), a, (int)(bl > 40 ? 40 : bl), b);
            break;
        }
        if (c->spm_style) {
            float sc = -(float)i - 1.0f;
            if (v->token_type[ic] == SK_TOKT_NORMAL && v->scores[ic] < sc) v->scores[ic] = sc;
        }
    }
    free(cat);
    if (s != SK_OK) return s;
    if (!c->spm_style) v->n_merges = (int)nm;
    return SK_OK;
}

/* bos/eos/eot/unk/pad, add_bos/add_eos, chat template. */
static sk_status tok_specials(tok_ctx *c, const json_t *model) {
    sk_vocab_data *v = &c->mf->vocab;
    const int n = v->n_tokens;
    const json_t *pp = sk_json_opt(c->tj, "post_processor");
    const json_t *gc = c->gc;

    v->bos = config_token(c, "bos_token");
    if (v->bos < 0) v->bos = json_first_id(sk_json_opt(gc, "bos_token_id"), n);
    if (v->bos < 0) v->bos = json_first_id(sk_json_opt(c->cfg, "bos_token_id"), n);
    if (v->bos < 0) v->bos = template_special(c, pp, true);
    if (v->bos < 0 && c->spm_style) v->bos = strmap_get_str(&c->map, "<s>");

    v->eos = config_token(c, "eos_token");
    if (v->eos < 0) v->eos = json_first_id(sk_json_opt(gc, "eos_token_id"), n);
    if (v->eos < 0) v->eos = json_first_id(sk_json_opt(c->cfg, "eos_token_id"), n);
    if (v->eos < 0 && c->spm_style) v->eos = strmap_get_str(&c->map, "</s>");

    /* generation_config's eos_token_id (an int or a list) may name more end-of-generation ids
     * (e.g. an instruct model's end-of-turn token): the first one other than eos is eot.
     * config.json's eos_token_id is not used for this: transformers writes its class default
     * there (FalconConfig: 11) whatever the tokenizer is. */
    v->eot = -1;
    const json_t *ge = sk_json_opt(gc, "eos_token_id");
    for (size_t i = 0; i < (json_is_array(ge) ? json_array_size(ge) : 1); i++) {
        int id = json_first_id(json_is_array(ge) ? json_array_get(ge, i) : ge, n);
        if (id >= 0 && id != v->eos) {
            if (v->eot < 0)
                v->eot = id;
            else if (id != v->eot)
                SK_LOGW("%s: end-of-generation id %d beyond eos %d and eot %d is not used", c->dir,
                        id, v->eos, v->eot);
        }
    }

    const char *unk = json_string_value(sk_json_opt(model, "unk_token"));
    v->unk = unk ? strmap_get_str(&c->map, unk) : config_token(c, "unk_token");
    if (v->unk >= 0 && v->token_type[v->unk] == SK_TOKT_NORMAL)
        v->token_type[v->unk] = SK_TOKT_UNKNOWN;
    v->pad = config_token(c, "pad_token");
    if (v->pad < 0) v->pad = json_first_id(sk_json_opt(gc, "pad_token_id"), n);

    bool b;
    const char *tcp = c->tc_path;
    if (sk_json_opt(c->tc, "add_bos_token")) {
        SK_TRY(sk_json_bool(c->tc, "add_bos_token", false, tcp, &b));
        v->add_bos = b;
    } else if (c->spm_style) {
        v->add_bos = true;
    } else {
        v->add_bos = v->bos >= 0 && template_special(c, pp, true) == v->bos;
    }
    if (sk_json_opt(c->tc, "add_eos_token")) {
        SK_TRY(sk_json_bool(c->tc, "add_eos_token", false, tcp, &b));
        v->add_eos = b;
    } else {
        v->add_eos = v->eos >= 0 && template_special(c, pp, false) == v->eos;
    }
    if (v->add_bos && v->bos < 0) {
        SK_LOGW("%s: the tokenizer adds a BOS token but none is known", c->dir);
        v->add_bos = false;
    }

    const json_t *ct = sk_json_opt(c->tc, "chat_template");
    if (json_is_string(ct)) {
        v->chat_template = sk_mf_own(c->mf, sk_xstrdup(json_string_value(ct)));
    } else if (json_is_array(ct)) {
        for (size_t i = 0; i < json_array_size(ct); i++) {
            const json_t *e = json_array_get(ct, i);
            const char *nm = json_string_value(json_object_get(e, "name"));
            const char *tpl = json_string_value(json_object_get(e, "template"));
            if (nm && tpl && strcmp(nm, "default") == 0)
                v->chat_template = sk_mf_own(c->mf, sk_xstrdup(tpl));
        }
        if (!v->chat_template) SK_LOGW("%s: chat_template list has no 'default' entry", c->dir);
    } else if (ct) {
        return sk_fail(SK_ERR_FORMAT,
                       "%s: 'chat_template' must be a string or a list of {name, template}",
                       c->tc_path);
    }
    if (!v->chat_template) {
        char p[HF_PATH_MAX];
        SK_TRY(join(p, c->dir, "chat_template.jinja"));
        if (file_exists(p)) {
            char *txt;
            SK_TRY(sk_file_read_all(p, &txt, NULL));
            v->chat_template = sk_mf_own(c->mf, txt);
        }
    }
    return SK_OK;
}

/* Loads an optional JSON file: *out NULL when it does not exist; an error when it is broken. */
static sk_status load_optional(const char *dir, const char *name, json_t **out) {
    char p[HF_PATH_MAX];
    *out = NULL;
    SK_TRY(join(p, dir, name));
    if (!file_exists(p)) return SK_OK;
    return sk_json_load_file(p, 0, out);
}

static sk_status load_tokenizer(const char *dir, const json_t *cfg, sk_model_file *mf) {
    sk_vocab_data *v = &mf->vocab;
    v->bos = v->eos = v->unk = v->pad = v->eot = -1;
    tok_ctx c;
    memset(&c, 0, sizeof c);
    c.mf = mf;
    c.dir = dir;
    c.cfg = cfg;
    SK_TRY(join(c.path, dir, "tokenizer.json"));
    SK_TRY(join(c.tc_path, dir, "tokenizer_config.json"));
    if (!file_exists(c.path)) {
        SK_LOGW("%s: no tokenizer.json: the model has no vocabulary (logits only)", dir);
        v->type = SK_VOCAB_NONE;
        return SK_OK;
    }
    sk_status s;
    if ((s = sk_json_load_file(c.path, JSON_ALLOW_NUL, &c.tj)) != SK_OK) goto done;
    if ((s = load_optional(dir, "tokenizer_config.json", &c.tc)) != SK_OK) goto done;
    if ((s = load_optional(dir, "generation_config.json", &c.gc)) != SK_OK) goto done;

    const json_t *model = json_object_get(c.tj, "model");
    if (!json_is_object(model)) {
        s = sk_fail(SK_ERR_FORMAT, "%s: 'model' is missing or not an object", c.path);
        goto done;
    }
    const char *mtype = jtype(model);
    if (!mtype && json_object_get(model, "merges")) mtype = "BPE"; /* untagged old files */
    if (!mtype || strcmp(mtype, "BPE") != 0) {
        s = sk_fail(SK_ERR_UNSUPPORTED, "%s: tokenizer model '%s' is not supported (only BPE)",
                    c.path, mtype ? mtype : "?");
        goto done;
    }
    const char *cont = json_string_value(sk_json_opt(model, "continuing_subword_prefix"));
    const char *eow = json_string_value(sk_json_opt(model, "end_of_word_suffix"));
    if ((cont && *cont) || (eow && *eow)) {
        s = sk_fail(SK_ERR_UNSUPPORTED,
                    "%s: BPE with continuing_subword_prefix / end_of_word_suffix is not supported",
                    c.path);
        goto done;
    }
    bool byte_fallback = false;
    if ((s = sk_json_bool(model, "byte_fallback", false, c.path, &byte_fallback)) != SK_OK)
        goto done;
    if (json_is_true(json_object_get(model, "ignore_merges")))
        SK_LOGD("%s: ignore_merges is not applied (whole-word vocabulary hits)", c.path);

    const json_t *pre = sk_json_opt(c.tj, "pre_tokenizer");
    const json_t *dec = sk_json_opt(c.tj, "decoder");
    const json_t *norm = sk_json_opt(c.tj, "normalizer");
    c.byte_level = tree_has(pre, "ByteLevel") || tree_has(dec, "ByteLevel");
    bool metaspace =
        tree_has(pre, "Metaspace") || tree_has(dec, "Metaspace") || normalizer_prepends(norm);
    c.spm_style = !c.byte_level && (byte_fallback || metaspace);
    if (!c.byte_level && !c.spm_style) {
        s = sk_fail(SK_ERR_UNSUPPORTED,
                    "%s: BPE model that is neither byte-level nor SentencePiece-style "
                    "(byte_fallback) is not supported",
                    c.path);
        goto done;
    }
    if (norm && c.byte_level)
        SK_LOGW("%s: the normalizer '%s' is not applied", c.path, jtype(norm) ? jtype(norm) : "?");

    if ((s = tok_vocab(&c, model)) != SK_OK) goto done;
    if (c.spm_style) {
        for (int i = 0; i < v->n_tokens; i++)
            if (v->token_type[i] == SK_TOKT_NORMAL && is_byte_token(v->tokens[i], v->token_len[i]))
                v->token_type[i] = SK_TOKT_BYTE;
    }
    if ((s = tok_merges(&c, model)) != SK_OK) goto done;
    if (c.byte_level) {
        if ((s = pre_regexes(&c, pre)) != SK_OK) goto done;
    } else {
        if ((s = spm_pre(&c, pre)) != SK_OK) goto done;
        if (normalizer_prepends(norm)) v->add_space_prefix = true;
    }
    if ((s = tok_specials(&c, model)) != SK_OK) goto done;
    v->type = c.spm_style ? SK_VOCAB_SPM : SK_VOCAB_BPE;
done:
    free(c.map.slot);
    json_decref(c.tj);
    json_decref(c.tc);
    json_decref(c.gc);
    return s;
}

/* ------------------------------------------------------------------------------------------ */

sk_status sk_hf_load(const char *dir, sk_model_file *mf) {
    memset(mf, 0, sizeof *mf);
    mf->path = sk_xstrdup(dir);
    mf->format = "hf";
    mf->vocab.bos = mf->vocab.eos = mf->vocab.unk = mf->vocab.pad = mf->vocab.eot = -1;
    json_t *cfg = NULL;
    awq_ctx awq = {0};
    char p[HF_PATH_MAX];
    sk_status s;
    if ((s = join(p, dir, "config.json")) != SK_OK) goto fail;
    if ((s = sk_json_load_file(p, 0, &cfg)) != SK_OK) goto fail;
    if ((s = parse_config(cfg, p, &mf->hp)) != SK_OK) goto fail;
    if ((s = awq_config(cfg, p, dir, &awq)) != SK_OK) goto fail;
    if ((s = load_weights(dir, mf, &awq)) != SK_OK) goto fail;
    if ((s = awq_finish(&awq, mf)) != SK_OK) goto fail;
    awq_free(&awq);
    if ((s = finish_tensors(mf)) != SK_OK) goto fail;
    if ((s = load_tokenizer(dir, cfg, mf)) != SK_OK) goto fail;
    json_decref(cfg);
    cfg = NULL;
    if ((s = sk_model_file_validate(mf)) != SK_OK) goto fail;
    return SK_OK;
fail:
    awq_free(&awq);
    json_decref(cfg);
    sk_mf_free(mf);
    return s;
}
