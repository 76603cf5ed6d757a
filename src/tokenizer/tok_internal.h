/* Private to src/tokenizer: the tokenizer object, hash maps and UTF-8 helpers shared by the SPM
 * and byte-level BPE encoders, the detokenizer and the chat template renderer. */
#ifndef SK_TOK_INTERNAL_H
#define SK_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"

#include <stdint.h>

/* ---- hash maps ---------------------------------------------------------------------------- */

/* Open-addressing (linear probing) map from byte strings to int32 values. Keys are NOT copied:
 * the bytes must outlive the map. */
typedef struct sk_strmap_slot {
    const char *key; /* NULL: empty slot */
    uint32_t len;
    uint32_t hash;
    int32_t val;
} sk_strmap_slot;

typedef struct sk_strmap {
    uint32_t cap; /* power of two (0 before the first put) */
    uint32_t n;
    sk_strmap_slot *slots;
} sk_strmap;

uint32_t sk_strmap_hash(const char *s, size_t len);
/* Sizes the map for about `expected` keys (optional; maps grow on demand). */
void sk_strmap_reserve(sk_strmap *m, uint32_t expected);
void sk_strmap_free(sk_strmap *m);
void sk_strmap_clear(sk_strmap *m);
/* Inserts or overwrites key -> val. */
void sk_strmap_put(sk_strmap *m, const char *key, size_t len, int32_t val);
/* Returns the value, or `missing`. */
int32_t sk_strmap_get(const sk_strmap *m, const char *key, size_t len, int32_t missing);

/* Map from a pair of token ids to (merge rank, merged token id). */
typedef struct sk_pairmap_slot {
    uint64_t key; /* (left << 32) | right; UINT64_MAX: empty */
    int32_t rank;
    int32_t id;
} sk_pairmap_slot;

typedef struct sk_pairmap {
    uint32_t cap;
    uint32_t n;
    sk_pairmap_slot *slots;
} sk_pairmap;

void sk_pairmap_reserve(sk_pairmap *m, uint32_t expected);
void sk_pairmap_free(sk_pairmap *m);
/* Inserts key -> (rank, id) unless the key is present (the first, lowest rank wins). */
void sk_pairmap_put(sk_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t id);
/* Returns the slot or NULL. */
const sk_pairmap_slot *sk_pairmap_get(const sk_pairmap *m, int32_t left, int32_t right);

/* ---- growable int32 vector ------------------------------------------------------------------ */

typedef struct sk_ivec {
    int32_t *v;
    size_t n, cap;
} sk_ivec;

void sk_ivec_push(sk_ivec *a, int32_t x);
void sk_ivec_free(sk_ivec *a);

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

/* Length of the well-formed UTF-8 sequence at s[0..n) (1..4), or 0 if the bytes there are not a
 * complete well-formed sequence (bad lead byte, bad continuation, overlong, surrogate, above
 * U+10FFFF, or truncated). *cp receives the code point when the result is > 0. */
int sk_utf8_seq(const uint8_t *s, size_t n, uint32_t *cp);
/* Length of the maximal prefix of an ill-formed sequence to replace by one U+FFFD (Unicode's
 * "maximal subpart" practice, as in WHATWG decoders): >= 1. Returns 0 if s[0..n) is a proper
 * prefix of a well-formed sequence that more bytes could complete. */
int sk_utf8_bad_len(const uint8_t *s, size_t n);
/* Encodes cp; returns the length (1..4). */
int sk_utf8_put(uint32_t cp, char *out);

/* ---- the tokenizer ------------------------------------------------------------------------ */

#define SK_TOK_MAX_RE 8

struct sk_tokenizer {
    const sk_vocab_data *v;
    sk_vocab_type type;
    int n_all; /* v->n_tokens: ids that decode */
    int n_enc; /* min(n_all, n_vocab_model): ids that encoding may produce */
    int bos, eos, unk, eot;
    bool add_bos, add_eos, add_space_prefix;
    uint8_t *ttype; /* [n_all] effective SK_TOKT_* of each token */
    bool *eog;      /* [n_all] end of generation */

    /* Decoded bytes of each token: dec[dec_off[i] .. dec_off[i+1]). */
    char *dec;
    uint32_t *dec_off; /* [n_all + 1] */

    /* Text -> id of the tokens that encoding may produce from text (see tokenizer.c). */
    sk_strmap vocab;
    /* Tokens matched as whole strings before the text is split: ids sorted by text length
     * (longest first, then by id). Control and unknown ones only with parse_special. */
    int n_special;
    int32_t *special;

    /* SPM: <0xXX> token of each byte (or -1). */
    int32_t byte_tok[256];

    /* BPE */
    sk_pairmap merges;
    int32_t bpe_byte_tok[256]; /* token of the GPT-2 unicode character of each byte, or -1 */
    bool ignore_merges;        /* a piece that is a token is taken whole (llama3) */
    int n_re;
    void *re[SK_TOK_MAX_RE]; /* pcre2_code* */
    bool re_jit[SK_TOK_MAX_RE];
};

/* Byte-level BPE (bpe.c). */
sk_status sk_bpe_init(sk_tokenizer *t);
void sk_bpe_free(sk_tokenizer *t);
/* Encodes one raw-text fragment (no special tokens in it) and appends the ids. Returns SK_OK or
 * a status with the error set. */
sk_status sk_bpe_encode(const sk_tokenizer *t, const char *text, size_t len, sk_ivec *out);
/* GPT-2 bytes_to_unicode: the code point that stands for byte b. */
uint32_t sk_bpe_byte_to_cp(uint8_t b);
/* Inverse: the byte for code point cp, or -1 when cp stands for no byte. */
int sk_bpe_cp_to_byte(uint32_t cp);

#endif
