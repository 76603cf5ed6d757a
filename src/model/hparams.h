/* The model description: one struct drives every architecture (STYLE.md: a table entry and the
 * few functions that really differ). Loaders fill it from the file; model code reads it. */
#ifndef SK_HPARAMS_H
#define SK_HPARAMS_H

#include <stdbool.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sk_arch { SK_ARCH_LLAMA = 0, SK_ARCH_FALCON = 1, SK_ARCH_COUNT } sk_arch;

/* Which elements RoPE rotates together inside a head of dim d:
 * ADJACENT: (2i, 2i+1), as llama2.c and GGUF "llama" (GPT-J style, llama.cpp ROPE_TYPE_NORM);
 * HALVES:   (i, i + d/2), as Hugging Face's rotate_half (GPT-NeoX style; GGUF "falcon"). */
typedef enum sk_rope_pairing { SK_ROPE_ADJACENT = 0, SK_ROPE_HALVES = 1 } sk_rope_pairing;

typedef struct sk_hparams {
    sk_arch arch;
    int n_vocab;
    int dim;        /* residual width (hidden_size) */
    int n_layers;
    int n_heads;    /* query heads */
    int n_kv_heads; /* KV heads: == n_heads MHA, 1 MQA, else GQA; n_heads % n_kv_heads == 0 */
    int head_dim;   /* usually dim / n_heads */
    int ffn_dim;    /* MLP hidden width */
    int n_ctx_train;
    float norm_eps;
    float rope_theta;
    int rope_dim;   /* rotated dims per head (<= head_dim, even) */
    sk_rope_pairing rope_pairing;
    bool tied_output; /* output head shares token_embd (no "output.weight" tensor) */

    /* Falcon */
    bool parallel_attn; /* attention and MLP both read the same normed input; x += attn + mlp */
    int n_ln_per_layer; /* 1: one LayerNorm feeds both (Falcon-7B); 2: ln_attn and ln_mlp (40B/180B) */
    bool linear_bias;   /* Linear layers carry biases (".bias" tensors) */
} sk_hparams;

const char *sk_arch_name(sk_arch a);

#ifdef __cplusplus
}
#endif

#endif
