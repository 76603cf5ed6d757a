/* Streaming detokenizer behind the public sk_detok_* functions of saker.h, built over an
 * sk_tokenizer so that it can be used (and tested) without a model. */
#ifndef SK_DETOK_H
#define SK_DETOK_H

#include "saker/saker.h"
#include "tokenizer/tokenizer.h"

/* Creates a detokenizer over t (t must outlive it). at_start: the tokens begin a text, so for a
 * SentencePiece vocabulary with add_space_prefix the leading space of the first piece is
 * dropped (sentencepiece's decoding of the dummy prefix); false when continuing a prompt that
 * was already printed. Pushing the BOS token of a SentencePiece vocabulary emits nothing and
 * enters the at-start state again. sk_detok_new(m, at_start) is sk_detok_new_tok(model's
 * tokenizer, at_start). Never returns NULL (aborts on out-of-memory like sk_xmalloc). */
sk_detok *sk_detok_new_tok(const sk_tokenizer *t, bool at_start);
/* Drops pending bytes and sets the at-start state. */
void sk_detok_reset(sk_detok *d, bool at_start);

#endif
