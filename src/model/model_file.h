/* What a loader produces from a model file: the description, the tensors under canonical names,
 * and the tokenizer data. Loaders (src/io) check every offset, size, count and shape against the
 * file before filling this; model code trusts it.
 *
 * Canonical tensor names follow GGUF. Shapes are outermost-first (PyTorch order; the last dim is
 * contiguous), so a Linear weight is [out_features, in_features].
 *   token_embd.weight        [n_vocab, dim]
 *   output_norm.weight/.bias [dim]            (.bias: Falcon LayerNorm)
 *   output.weight            [n_vocab, dim]   (absent when tied_output)
 * Llama, per layer N ("blk.N."):
 *   attn_norm.weight [dim]; attn_q.weight [n_heads*head_dim, dim];
 *   attn_k.weight / attn_v.weight [n_kv_heads*head_dim, dim]; attn_output.weight [dim, n_heads*head_dim]
 *   ffn_norm.weight [dim]; ffn_gate.weight / ffn_up.weight [ffn_dim, dim]; ffn_down.weight [dim, ffn_dim]
 *   The Q/K rows are in the order that matches hp.rope_pairing (no permutation is applied).
 * Falcon, per layer N:
 *   attn_norm.weight/.bias [dim]; attn_norm_2.weight/.bias [dim] (only when n_ln_per_layer == 2:
 *   attn_norm feeds attention, attn_norm_2 the MLP)
 *   attn_qkv.weight [(n_heads + 2*n_kv_heads)*head_dim, dim], rows: all Q heads, then all K heads,
 *   then all V heads (HF's grouped new_decoder_architecture layout is reordered by the loader)
 *   attn_output.weight [dim, n_heads*head_dim]; ffn_up.weight [ffn_dim, dim]; ffn_down.weight [dim, ffn_dim]
 *   optional Linear biases "<name>.bias" when hp.linear_bias. */
#ifndef SK_MODEL_FILE_H
#define SK_MODEL_FILE_H

#include "core/dtype.h"
#include "core/file.h"
#include "model/hparams.h"

#ifdef __cplusplus
extern "C" {
#endif

#define SK_MAX_DIMS 4
#define SK_NAME_MAX 96

typedef struct sk_tensor {
    char name[SK_NAME_MAX];
    sk_dtype type;
    int n_dims;
    int64_t shape[SK_MAX_DIMS]; /* outermost first; shape[n_dims-1] is contiguous */
    const void *data;           /* into a mapping or an allocation owned by the sk_model_file */
    size_t nbytes;
} sk_tensor;

int64_t sk_tensor_nelem(const sk_tensor *t);

/* Token types (GGUF tokenizer.ggml.token_type values). */
enum {
    SK_TOKT_NORMAL = 1,
    SK_TOKT_UNKNOWN = 2,
    SK_TOKT_CONTROL = 3,
    SK_TOKT_USER_DEFINED = 4,
    SK_TOKT_UNUSED = 5,
    SK_TOKT_BYTE = 6,
};

typedef enum sk_vocab_type {
    SK_VOCAB_NONE = 0,
    SK_VOCAB_SPM = 1, /* SentencePiece-style BPE by scores with <0xXX> byte fallback (llama2.c, GGUF "llama") */
    SK_VOCAB_BPE = 2, /* GPT-2 byte-level BPE with merges (GGUF "gpt2", HF tokenizer.json) */
} sk_vocab_type;

typedef struct sk_vocab_data {
    sk_vocab_type type;
    int n_tokens;
    char **tokens;     /* [n_tokens] NUL-terminated token text as stored in the file */
    int *token_len;    /* [n_tokens] byte length (tokens may not contain NUL, but be safe) */
    float *scores;     /* [n_tokens] or NULL */
    int *token_type;   /* [n_tokens] SK_TOKT_*, or NULL (all normal) */
    int n_merges;
    char **merges;     /* [n_merges] "left right" (BPE only), rank = index */
    int bos, eos, unk, pad, eot; /* -1 when absent */
    bool add_bos, add_eos;
    bool add_space_prefix; /* SPM: prepend a space to the text (sentencepiece's add_dummy_prefix) */
    char *pre;             /* GGUF tokenizer.ggml.pre name, or NULL */
    int n_pre_regex;       /* explicit pre-tokenizer regexes applied in sequence (HF Split/ByteLevel/Digits) */
    char **pre_regex;
    char *chat_template;   /* Jinja text, or NULL */
} sk_vocab_data;

typedef struct sk_model_file {
    char *path;
    const char *format; /* "gguf", "llama2c", "hf" */
    sk_hparams hp;
    int n_tensors;
    sk_tensor *tensors;
    sk_vocab_data vocab;

    /* Ownership: every mapping and heap block that tensors/vocab point into. */
    int n_maps;
    sk_file *maps;
    int n_allocs;
    void **allocs;
} sk_model_file;

/* Returns the tensor or NULL. */
const sk_tensor *sk_mf_find(const sk_model_file *mf, const char *name);
/* Finds a tensor and checks its type is dequantizable and its shape equals the n_dims values
 * given; returns SK_ERR_FORMAT naming the file and tensor otherwise ("missing", "shape [a,b] but
 * expected [c,d]"). */
sk_status sk_mf_require(const sk_model_file *mf, const char *name, int n_dims, const int64_t *shape,
                        const sk_tensor **out);
/* Registers a mapping / heap block so that sk_mf_free releases it; returns the pointer. */
void *sk_mf_own(sk_model_file *mf, void *block);
void sk_mf_own_map(sk_model_file *mf, sk_file map);
/* Appends a tensor (copied) and returns its slot. */
sk_tensor *sk_mf_add_tensor(sk_model_file *mf, const sk_tensor *t);
void sk_mf_free(sk_model_file *mf);

/* Loaders. Each returns SK_OK with mf filled, or a status with sk_last_error naming the file and
 * what is wrong (mf is then empty). They set hp fully (defaults for what the file omits) and
 * validate it (sk_model_file_validate) before returning. */
sk_status sk_gguf_load(const char *path, sk_model_file *mf);
sk_status sk_llama2c_load(const char *path, const char *tokenizer_path, sk_model_file *mf);
sk_status sk_hf_load(const char *dir, sk_model_file *mf);
/* Dispatches on the path: a directory is HF, "GGUF" magic is GGUF, else llama2.c. */
sk_status sk_model_file_load(const char *path, const char *tokenizer_path, sk_model_file *mf);

/* Checks the description is self-consistent and within sane limits (no zero or absurd sizes,
 * heads divide, head_dim even, rope_dim <= head_dim ...) and that every tensor the architecture
 * needs exists with the right shape and a supported type. */
sk_status sk_model_file_validate(const sk_model_file *mf);

#ifdef __cplusplus
}
#endif

#endif
