/* Tokenizers built from sk_vocab_data: SentencePiece-style BPE with byte fallback, and GPT-2
 * byte-level BPE with the model's pre-tokenizer regexes run by PCRE2 (UTF + UCP). */
#ifndef SK_TOKENIZER_H
#define SK_TOKENIZER_H

#include "model/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct sk_tokenizer sk_tokenizer;

/* Builds the tokenizer; the vocab data must outlive it. n_vocab_model: ids at or above it are
 * never produced. Errors (bad merges, unknown pre-tokenizer name, regex that fails to compile)
 * name what is wrong. */
sk_status sk_tokenizer_new(const sk_vocab_data *v, int n_vocab_model, sk_tokenizer **out);
void sk_tokenizer_free(sk_tokenizer *t);
/* The pre-tokenizer regexes applied for GGUF tokenizer.ggml.pre name `pre` (llama.cpp's table;
 * unknown or NULL: GPT-2's), for writers of tokenizer.json. Returns how many were stored in out
 * (at most cap); the strings are static. */
int sk_bpe_pre_regexes(const char *pre, const char **out, int cap);

/* See sk_tokenize in saker.h. */
int sk_tokenizer_encode(const sk_tokenizer *t, const char *text, size_t len, bool add_bos,
                        bool parse_special, int32_t *out, int cap);
/* Decoded bytes of one token (see sk_token_to_bytes). For SPM, a leading-space marker U+2581
 * becomes ' '; <0xXX> becomes the byte. For byte-level BPE, the GPT-2 unicode-to-byte map is
 * inverted. Control tokens render as their text. */
int sk_tokenizer_token_bytes(const sk_tokenizer *t, int32_t id, char *buf, int cap);
bool sk_tokenizer_is_eog(const sk_tokenizer *t, int32_t id);
int sk_tokenizer_bos(const sk_tokenizer *t);
int sk_tokenizer_eos(const sk_tokenizer *t);

/* Chat template. */
typedef struct sk_chat_msg {
    const char *role; /* "system", "user", "assistant" */
    const char *content;
} sk_chat_msg;
/* Renders the vocabulary's Jinja chat template (a subset of Jinja2 large enough for the
 * templates of Llama 2, ChatML models such as SmolLM2, Falcon, Zephyr...) for the messages,
 * with add_generation_prompt. With no template in the file, ChatML is used. Returns a malloc'd
 * string, or NULL with the error set (naming the construct it cannot render). */
char *sk_chat_apply(const sk_tokenizer *t, const sk_chat_msg *msgs, int n_msgs,
                    bool add_generation_prompt);

#ifdef __cplusplus
}
#endif

#endif
