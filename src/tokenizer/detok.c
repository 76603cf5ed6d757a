/* Streaming detokenizer: token bytes accumulate and only whole UTF-8 characters come out; an
 * ill-formed sequence becomes one U+FFFD (per maximal subpart) as soon as it is known to be
 * ill-formed. */
#include "tokenizer/detok.h"
#include "tokenizer/tok_internal.h"

#include <string.h>

struct sk_detok {
    const sk_tokenizer *t;
    bool at_start;
    bool strip_space; /* SPM with add_space_prefix */
    char pend[4];     /* the start of an incomplete character (at most 3 bytes) */
    int n_pend;
    char *out; /* returned to the caller; valid until the next call */
    size_t n_out, cap_out;
    char *work;
    size_t cap_work;
};

sk_detok *sk_detok_new_tok(const sk_tokenizer *t, bool at_start) {
    SK_ASSERT(t);
    sk_detok *d = sk_xcalloc(1, sizeof *d);
    d->t = t;
    d->strip_space = t->type == SK_VOCAB_SPM && t->add_space_prefix;
    d->at_start = at_start;
    return d;
}

void sk_detok_reset(sk_detok *d, bool at_start) {
    d->n_pend = 0;
    d->at_start = at_start;
}

void sk_detok_free(sk_detok *d) {
    if (!d) return;
    free(d->out);
    free(d->work);
    free(d);
}

static void out_reserve(sk_detok *d, size_t n) {
    if (n <= d->cap_out) return;
    d->cap_out = n < 256 ? 256 : n * 2;
    d->out = sk_xrealloc(d->out, d->cap_out);
}

/* Emits the complete characters of s[0..n) into d->out (appending) and keeps an incomplete
 * tail in pend; with final, the tail is emitted as U+FFFD too. */
static void emit(sk_detok *d, const char *s, size_t n, bool final) {
    out_reserve(d, d->n_out + n * 3 + 8); /* each bad byte may grow to 3 bytes */
    const uint8_t *u = (const uint8_t *)s;
    size_t i = 0;
    d->n_pend = 0;
    while (i < n) {
        uint32_t cp;
        int L = sk_utf8_seq(u + i, n - i, &cp);
        if (L > 0) {
            memcpy(d->out + d->n_out, s + i, (size_t)L);
            d->n_out += (size_t)L;
            i += (size_t)L;
            continue;
        }
        int bad = sk_utf8_bad_len(u + i, n - i);
        if (bad == 0) { /* an incomplete character at the end */
            if (!final) {
                SK_ASSERT(n - i < sizeof d->pend);
                memcpy(d->pend, s + i, n - i);
                d->n_pend = (int)(n - i);
                return;
            }
            bad = (int)(n - i);
        }
        memcpy(d->out + d->n_out, "\xEF\xBF\xBD", 3);
        d->n_out += 3;
        i += (size_t)bad;
    }
}

int sk_detok_push(sk_detok *d, int32_t token, const char **out) {
    d->n_out = 0;
    const sk_tokenizer *t = d->t;
    if (t->type == SK_VOCAB_SPM && token >= 0 && token == t->bos) {
        d->at_start = true;
        *out = d->out ? d->out : "";
        return 0;
    }
    int n = sk_tokenizer_token_bytes(t, token, NULL, 0);
    size_t need = (size_t)d->n_pend + (size_t)n;
    if (need > d->cap_work) {
        d->cap_work = need * 2 + 16;
        d->work = sk_xrealloc(d->work, d->cap_work);
    }
    memcpy(d->work, d->pend, (size_t)d->n_pend);
    sk_tokenizer_token_bytes(t, token, d->work + d->n_pend, n);
    const char *s = d->work;
    size_t len = need;
    if (d->at_start && d->strip_space && token >= 0 && token < t->n_all &&
        t->ttype[token] == SK_TOKT_NORMAL && n > 0 && d->work[d->n_pend] == ' ') {
        /* The dummy-prefix space: the first piece of a text loses its leading space. */
        memmove(d->work + d->n_pend, d->work + d->n_pend + 1, (size_t)n - 1);
        len--;
    }
    d->at_start = false;
    emit(d, s, len, false);
    *out = d->out ? d->out : "";
    return (int)d->n_out;
}

int sk_detok_flush(sk_detok *d, const char **out) {
    d->n_out = 0;
    char tail[4];
    size_t n = (size_t)d->n_pend;
    memcpy(tail, d->pend, n);
    emit(d, tail, n, true);
    d->n_pend = 0;
    *out = d->out ? d->out : "";
    return (int)d->n_out;
}
