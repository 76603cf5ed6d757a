/* Synthetic models: the published configurations of models we benchmark without a checkpoint.
 * The tensors carry shapes and no data; backends draw the weights (weight_random). */
#include "model/shapes.h"

#include <string.h>

typedef struct sk_shape {
    const char *name;
    const char *source; /* where the numbers come from */
    sk_hparams hp;
} sk_shape;

#define LLAMA(n_vocab_, dim_, layers_, heads_, kv_, ffn_, ctx_, theta_, eps_, tied_)                \
    {.arch = SK_ARCH_LLAMA, .n_vocab = n_vocab_, .dim = dim_, .n_layers = layers_,               \
     .n_heads = heads_, .n_kv_heads = kv_, .head_dim = (dim_) / (heads_), .ffn_dim = ffn_,        \
     .n_ctx_train = ctx_, .norm_eps = eps_, .rope_theta = theta_, .rope_dim = (dim_) / (heads_),  \
     .rope_pairing = SK_ROPE_HALVES, .tied_output = tied_, .n_ln_per_layer = 2}
#define FALCON(dim_, layers_, heads_, kv_, n_ln_, ctx_)                                            \
    {.arch = SK_ARCH_FALCON, .n_vocab = 65024, .dim = dim_, .n_layers = layers_,                 \
     .n_heads = heads_, .n_kv_heads = kv_, .head_dim = 64, .ffn_dim = 4 * (dim_),                 \
     .n_ctx_train = ctx_, .norm_eps = 1e-5f, .rope_theta = 10000.0f, .rope_dim = 64,              \
     .rope_pairing = SK_ROPE_HALVES, .tied_output = true, .parallel_attn = true,                  \
     .n_ln_per_layer = n_ln_}

static const sk_shape k_shapes[] = {
    {"llama2-7b", "meta-llama/Llama-2-7b-hf config.json",
     LLAMA(32000, 4096, 32, 32, 32, 11008, 4096, 10000.0f, 1e-5f, false)},
    {"llama2-13b", "meta-llama/Llama-2-13b-hf config.json",
     LLAMA(32000, 5120, 40, 40, 40, 13824, 4096, 10000.0f, 1e-5f, false)},
    {"llama2-70b", "meta-llama/Llama-2-70b-hf config.json",
     LLAMA(32000, 8192, 80, 64, 8, 28672, 4096, 10000.0f, 1e-5f, false)},
    {"falcon-7b", "tiiuae/falcon-7b config.json (multi-query, parallel attention, one LayerNorm)",
     FALCON(4544, 32, 71, 1, 1, 2048)},
    {"falcon-40b", "tiiuae/falcon-40b config.json (new_decoder_architecture, 8 KV groups)",
     FALCON(8192, 60, 128, 8, 2, 2048)},
    {"falcon-180b", "tiiuae/falcon-180B config.json (new_decoder_architecture, 8 KV groups)",
     FALCON(14848, 80, 232, 8, 2, 2048)},
    {"smollm2-135m", "HuggingFaceTB/SmolLM2-135M-Instruct config.json",
     LLAMA(49152, 576, 30, 9, 3, 1536, 8192, 100000.0f, 1e-5f, true)},
    /* Small shapes for tests. */
    {"test-llama", "test shape (GQA 4/2)", LLAMA(256, 64, 2, 4, 2, 96, 512, 10000.0f, 1e-5f, false)},
    {"test-falcon", "test shape (Falcon-40B style, 4/2 heads of 64)",
     {.arch = SK_ARCH_FALCON, .n_vocab = 256, .dim = 256, .n_layers = 2, .n_heads = 4,
      .n_kv_heads = 2, .head_dim = 64, .ffn_dim = 1024, .n_ctx_train = 512, .norm_eps = 1e-5f,
      .rope_theta = 10000.0f, .rope_dim = 64, .rope_pairing = SK_ROPE_HALVES, .tied_output = true,
      .parallel_attn = true, .n_ln_per_layer = 2}},
};
#define N_SHAPES ((int)(sizeof k_shapes / sizeof k_shapes[0]))

const char *sk_shape_names(void) {
    static char buf[512];
    if (!buf[0])
        for (int i = 0; i < N_SHAPES; i++) {
            if (i) strcat(buf, ", ");
            strcat(buf, k_shapes[i].name);
        }
    return buf;
}

static void add(sk_model_file *mf, sk_dtype type, int n_dims, int64_t a, int64_t b,
                const char *fmt, int l) {
    sk_tensor t = {0};
    snprintf(t.name, sizeof t.name, fmt, l);
    t.type = type;
    t.n_dims = n_dims;
    t.shape[0] = a;
    t.shape[1] = b;
    t.data = NULL;
    t.nbytes = (size_t)sk_dtype_row_bytes(type, n_dims == 1 ? a : b) * (size_t)(n_dims == 1 ? 1 : a);
    sk_mf_add_tensor(mf, &t);
}

/* The INT4 type for a linear layer of input width K: group 128, else the largest of 64, 32 that
 * divides K; the half type when none does. */
static sk_dtype lin_type(bool int4, sk_dtype type, int64_t K) {
    if (!int4) return type;
    return K % 128 == 0 ? SK_Q4G128 : K % 64 == 0 ? SK_Q4G64 : K % 32 == 0 ? SK_Q4G32 : type;
}

sk_status sk_shape_model_file(const char *name, sk_dtype type, bool int4, int n_layers,
                              sk_model_file *mf) {
    memset(mf, 0, sizeof *mf);
    if (n_layers < 0) return sk_fail(SK_ERR_ARG, "shape '%s': %d layers", name, n_layers);
    const sk_shape *sh = NULL;
    for (int i = 0; i < N_SHAPES; i++)
        if (!strcmp(k_shapes[i].name, name)) sh = &k_shapes[i];
    if (!sh) return sk_fail(SK_ERR_ARG, "unknown shape '%s' (known: %s)", name, sk_shape_names());
    char path[128];
    snprintf(path, sizeof path, "shape:%s", name);
    mf->path = sk_xstrdup(path);
    mf->format = "synthetic";
    mf->hp = sh->hp;
    if (n_layers > 0 && n_layers < mf->hp.n_layers) mf->hp.n_layers = n_layers;
    const sk_hparams *hp = &mf->hp;
    const int64_t D = hp->dim, V = hp->n_vocab, F = hp->ffn_dim, hd = hp->head_dim;
    const int64_t q = hp->n_heads * hd, kv = hp->n_kv_heads * hd;
    const sk_dtype f32 = SK_F32;
    bool falcon = hp->arch == SK_ARCH_FALCON;
    add(mf, type, 2, V, D, "token_embd.weight", 0);
    add(mf, f32, 1, D, 0, "output_norm.weight", 0);
    if (falcon) add(mf, f32, 1, D, 0, "output_norm.bias", 0);
    if (!hp->tied_output) add(mf, type, 2, V, D, "output.weight", 0);
    for (int l = 0; l < hp->n_layers; l++) {
        add(mf, f32, 1, D, 0, "blk.%d.attn_norm.weight", l);
        add(mf, lin_type(int4, type, q), 2, D, q, "blk.%d.attn_output.weight", l);
        add(mf, lin_type(int4, type, D), 2, F, D, "blk.%d.ffn_up.weight", l);
        add(mf, lin_type(int4, type, F), 2, D, F, "blk.%d.ffn_down.weight", l);
        if (falcon) {
            add(mf, f32, 1, D, 0, "blk.%d.attn_norm.bias", l);
            if (hp->n_ln_per_layer == 2) {
                add(mf, f32, 1, D, 0, "blk.%d.attn_norm_2.weight", l);
                add(mf, f32, 1, D, 0, "blk.%d.attn_norm_2.bias", l);
            }
            add(mf, lin_type(int4, type, D), 2, q + 2 * kv, D, "blk.%d.attn_qkv.weight", l);
        } else {
            add(mf, lin_type(int4, type, D), 2, q, D, "blk.%d.attn_q.weight", l);
            add(mf, lin_type(int4, type, D), 2, kv, D, "blk.%d.attn_k.weight", l);
            add(mf, lin_type(int4, type, D), 2, kv, D, "blk.%d.attn_v.weight", l);
            add(mf, f32, 1, D, 0, "blk.%d.ffn_norm.weight", l);
            add(mf, lin_type(int4, type, D), 2, F, D, "blk.%d.ffn_gate.weight", l);
        }
    }
    sk_status s = sk_model_file_validate(mf);
    if (s != SK_OK) sk_mf_free(mf);
    return s;
}

void sk_shape_init_params(const sk_tensor *t, float *mean, float *std) {
    size_t n = strlen(t->name);
    bool bias = n > 5 && !strcmp(t->name + n - 5, ".bias");
    if (t->n_dims == 1) {
        /* Norm gains near 1, biases near 0: the scale of trained values. */
        *mean = bias ? 0.0f : 1.0f;
        *std = bias ? 0.02f : 0.05f;
    } else if (!strncmp(t->name, "token_embd", 10) || !strncmp(t->name, "output.", 7)) {
        *mean = 0.0f;
        *std = 0.02f;
    } else {
        /* Linear layers: variance 1/in keeps activations O(1) through the residual stream. */
        *mean = 0.0f;
        *std = 1.0f / sqrtf((float)t->shape[t->n_dims - 1]);
    }
}
