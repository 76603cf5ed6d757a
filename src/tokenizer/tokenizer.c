/* Tokenizer construction, special-token splitting, the SentencePiece-style encoder and decoding
 * of single tokens.
 *
 * Encoding follows llama.cpp's llama_vocab::tokenize:
 * 1. the text is cut into fragments around special-token texts (tokenizer_st_partition: special
 *    tokens are tried longest first, each splitting every raw fragment at all its occurrences;
 *    user-defined tokens always, control and unknown ones only with parse_special);
 * 2. each raw fragment is encoded alone: SPM (llm_tokenizer_spm) or byte-level BPE (bpe.c);
 * 3. BOS in front when asked for and the vocabulary wants it (add_bos: the loaders default it to
 *    true for SentencePiece vocabularies), EOS at the end when asked for (add_bos doubles as
 *    llama.cpp's add_special) and the vocabulary's add_eos says so. */
#include "tokenizer/tok_internal.h"

#include <math.h>
#include <string.h>

#define SPACE_MARK "\xE2\x96\x81" /* U+2581, SentencePiece's whitespace symbol */

static int tok_len(const sk_vocab_data *v, int i) {
    if (!v->tokens[i]) return 0;
    return v->token_len ? v->token_len[i] : (int)strlen(v->tokens[i]);
}

/* 0..255 if text is exactly "<0xXX>" (hex digits of either case), else -1. */
static int byte_token_value(const char *s, int len) {
    if (len != 6 || s[0] != '<' || s[1] != '0' || s[2] != 'x' || s[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = s[i];
        int d = c >= '0' && c <= '9'   ? c - '0'
                : c >= 'A' && c <= 'F' ? c - 'A' + 10
                : c >= 'a' && c <= 'f' ? c - 'a' + 10
                                       : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

/* Appends the decoded bytes of token i to *buf (size *n, capacity *cap). */
static void decode_token(const sk_tokenizer *t, int i, char **buf, size_t *n, size_t *cap) {
    const char *s = t->v->tokens[i] ? t->v->tokens[i] : "";
    int len = tok_len(t->v, i);
    if (*n + (size_t)len + 8 > *cap) {
        while (*n + (size_t)len + 8 > *cap) *cap *= 2;
        *buf = sk_xrealloc(*buf, *cap);
    }
    char *o = *buf + *n;
    int ty = t->ttype[i];
    if (ty == SK_TOKT_UNUSED) return;
    if (ty == SK_TOKT_CONTROL || ty == SK_TOKT_UNKNOWN || ty == SK_TOKT_USER_DEFINED) {
        memcpy(o, s, (size_t)len);
        *n += (size_t)len;
        return;
    }
    if (t->type == SK_VOCAB_SPM) {
        if (ty == SK_TOKT_BYTE) {
            int b = byte_token_value(s, len);
            if (b >= 0) {
                o[0] = (char)b;
                *n += 1;
            } else {
                memcpy(o, s, (size_t)len);
                *n += (size_t)len;
            }
            return;
        }
        size_t k = 0;
        for (int j = 0; j < len;) {
            if (j + 3 <= len && memcmp(s + j, SPACE_MARK, 3) == 0) {
                o[k++] = ' ';
                j += 3;
            } else {
                o[k++] = s[j++];
            }
        }
        *n += k;
        return;
    }
    /* Byte-level BPE: every character of the token stands for one byte. */
    if (ty == SK_TOKT_BYTE) return;
    size_t k = 0;
    for (int j = 0; j < len;) {
        uint32_t cp;
        int L = sk_utf8_seq((const uint8_t *)s + j, (size_t)(len - j), &cp);
        int b = L > 0 ? sk_bpe_cp_to_byte(cp) : -1;
        if (b >= 0) {
            o[k++] = (char)b;
            j += L;
        } else if (L > 0) {
            memcpy(o + k, s + j, (size_t)L);
            k += (size_t)L;
            j += L;
        } else {
            o[k++] = s[j++];
        }
    }
    *n += k;
}

typedef struct len_id {
    int len;
    int32_t id;
} len_id;

/* Longest first, then by id. */
static int cmp_len_id(const void *a, const void *b) {
    const len_id *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static void sort_special(sk_tokenizer *t) {
    len_id *li = sk_xmalloc(sizeof *li * (size_t)(t->n_special ? t->n_special : 1));
    for (int i = 0; i < t->n_special; i++)
        li[i] = (len_id){tok_len(t->v, t->special[i]), t->special[i]};
    qsort(li, (size_t)t->n_special, sizeof *li, cmp_len_id);
    for (int i = 0; i < t->n_special; i++) t->special[i] = li[i].id;
    free(li);
}

static int check_id(const sk_vocab_data *v, int id, const char *what) {
    if (id < -1 || id >= v->n_tokens) {
        SK_LOGW("tokenizer: %s token id %d is outside the vocabulary of %d; ignored", what, id,
                v->n_tokens);
        return -1;
    }
    return id;
}

/* Texts that llama.cpp treats as end of generation wherever they appear in a vocabulary. */
static const char *const k_eog_texts[] = {
    "<|eot_id|>",
    "<|im_end|>",
    "<|end|>",
    "<end_of_turn>",
    "<|endoftext|>",
    "<|eom_id|>",
    "<EOT>",
    "_<EOT>",
    "<|end_of_text|>",
    "<end_of_utterance>",
    "<|return|>",
    "<|call|>",
    "<\xEF\xBD\x9C"
    "end\xE2\x96\x81"
    "of\xE2\x96\x81"
    "sentence\xEF\xBD\x9C>",
};

sk_status sk_tokenizer_new(const sk_vocab_data *v, int n_vocab_model, sk_tokenizer **out) {
    *out = NULL;
    if (!v || (v->type != SK_VOCAB_SPM && v->type != SK_VOCAB_BPE))
        return sk_fail(SK_ERR_UNSUPPORTED, "tokenizer: vocabulary type %d is not supported",
                       v ? (int)v->type : -1);
    if (v->n_tokens <= 0 || !v->tokens)
        return sk_fail(SK_ERR_FORMAT, "tokenizer: the vocabulary has no tokens");
    if (v->n_tokens > (1 << 24))
        return sk_fail(SK_ERR_FORMAT, "tokenizer: vocabulary of %d tokens is too large",
                       v->n_tokens);
    for (int i = 0; i < v->n_tokens; i++)
        if (tok_len(v, i) < 0)
            return sk_fail(SK_ERR_FORMAT, "tokenizer: token %d has a negative length", i);

    sk_tokenizer *t = sk_xcalloc(1, sizeof *t);
    t->v = v;
    t->type = v->type;
    t->n_all = v->n_tokens;
    t->n_enc = n_vocab_model > 0 && n_vocab_model < v->n_tokens ? n_vocab_model : v->n_tokens;
    t->bos = check_id(v, v->bos, "BOS");
    t->eos = check_id(v, v->eos, "EOS");
    t->unk = check_id(v, v->unk, "unknown");
    t->eot = check_id(v, v->eot, "end-of-turn");
    int pad = check_id(v, v->pad, "padding");
    t->add_bos = v->add_bos;
    t->add_eos = v->add_eos;
    t->add_space_prefix = v->type == SK_VOCAB_SPM && v->add_space_prefix;

    /* Effective token types. Without types in the file, the declared special ids are control
     * tokens and SPM's <0xXX> pieces are byte tokens. */
    t->ttype = sk_xmalloc((size_t)t->n_all);
    for (int i = 0; i < t->n_all; i++) {
        int ty = v->token_type ? v->token_type[i] : SK_TOKT_NORMAL;
        if (ty < SK_TOKT_NORMAL || ty > SK_TOKT_BYTE) ty = SK_TOKT_NORMAL;
        if (!v->token_type && t->type == SK_VOCAB_SPM &&
            byte_token_value(v->tokens[i] ? v->tokens[i] : "", tok_len(v, i)) >= 0)
            ty = SK_TOKT_BYTE;
        t->ttype[i] = (uint8_t)ty;
    }
    if (!v->token_type) {
        const int ctl[] = {t->bos, t->eos, t->eot, pad};
        for (int k = 0; k < 4; k++)
            if (ctl[k] >= 0) t->ttype[ctl[k]] = SK_TOKT_CONTROL;
        if (t->unk >= 0) t->ttype[t->unk] = SK_TOKT_UNKNOWN;
    }

    /* Decoded bytes. */
    size_t cap = 4096, n = 0;
    char *dec = sk_xmalloc(cap);
    t->dec_off = sk_xmalloc(sizeof *t->dec_off * ((size_t)t->n_all + 1));
    for (int i = 0; i < t->n_all; i++) {
        t->dec_off[i] = (uint32_t)n;
        decode_token(t, i, &dec, &n, &cap);
        if (n > UINT32_MAX / 2) {
            free(dec);
            sk_tokenizer_free(t);
            return sk_fail(SK_ERR_FORMAT, "tokenizer: token texts are too large");
        }
    }
    t->dec_off[t->n_all] = (uint32_t)n;
    t->dec = dec;

    /* Text -> id for encoding. SPM merges only form normal, user-defined and unused pieces
     * (sentencepiece keeps control, unknown and byte pieces out of its piece table); byte-level
     * BPE looks texts up in the whole vocabulary, as llama.cpp does. Later duplicates win, as
     * in llama.cpp's token_to_id. */
    sk_strmap_reserve(&t->vocab, (uint32_t)t->n_enc);
    for (int i = 0; i < 256; i++) t->byte_tok[i] = -1;
    for (int i = 0; i < t->n_enc; i++) {
        int len = tok_len(v, i);
        if (len == 0) continue;
        int ty = t->ttype[i];
        if (t->type == SK_VOCAB_SPM && ty == SK_TOKT_BYTE) {
            int b = byte_token_value(v->tokens[i], len);
            if (b >= 0 && t->byte_tok[b] < 0) t->byte_tok[b] = i;
            continue;
        }
        if (t->type == SK_VOCAB_SPM && (ty == SK_TOKT_CONTROL || ty == SK_TOKT_UNKNOWN)) continue;
        sk_strmap_put(&t->vocab, v->tokens[i], (size_t)len, i);
    }

    /* Special tokens matched as whole strings. */
    t->special = sk_xmalloc(sizeof(int32_t) * (size_t)t->n_enc);
    for (int i = 0; i < t->n_enc; i++) {
        int ty = t->ttype[i];
        if ((ty == SK_TOKT_CONTROL || ty == SK_TOKT_USER_DEFINED || ty == SK_TOKT_UNKNOWN) &&
            tok_len(v, i) > 0)
            t->special[t->n_special++] = i;
    }
    sort_special(t);

    /* End of generation. */
    t->eog = sk_xcalloc((size_t)t->n_all, 1);
    if (t->eos >= 0) t->eog[t->eos] = true;
    if (t->eot >= 0) t->eog[t->eot] = true;
    for (size_t k = 0; k < sizeof k_eog_texts / sizeof *k_eog_texts; k++) {
        const char *s = k_eog_texts[k];
        size_t sl = strlen(s);
        for (int i = 0; i < t->n_all; i++)
            if ((size_t)tok_len(v, i) == sl && memcmp(v->tokens[i], s, sl) == 0) t->eog[i] = true;
    }

    if (t->type == SK_VOCAB_BPE) {
        sk_status s = sk_bpe_init(t);
        if (s != SK_OK) {
            sk_tokenizer_free(t);
            return s;
        }
    } else if (t->byte_tok['\n'] < 0 && t->byte_tok[' '] < 0) {
        SK_LOGW("tokenizer: SentencePiece vocabulary without <0xXX> byte pieces: characters that "
                "are not in the vocabulary become the unknown token");
    }
    *out = t;
    return SK_OK;
}

void sk_tokenizer_free(sk_tokenizer *t) {
    if (!t) return;
    sk_bpe_free(t);
    sk_strmap_free(&t->vocab);
    free(t->ttype);
    free(t->eog);
    free(t->dec);
    free(t->dec_off);
    free(t->special);
    free(t);
}

/* ---- special-token partition ---------------------------------------------------------------- */

typedef struct frag {
    int32_t tok; /* -1: raw text */
    size_t off, len;
} frag;

typedef struct frag_vec {
    frag *v;
    size_t n, cap;
} frag_vec;

static void frag_push(frag_vec *a, int32_t tok, size_t off, size_t len) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 16;
        a->v = sk_xrealloc(a->v, sizeof *a->v * a->cap);
    }
    a->v[a->n++] = (frag){tok, off, len};
}

static const char *find_bytes(const char *h, size_t hn, const char *nd, size_t nn) {
    if (nn == 0 || nn > hn) return NULL;
    const char *end = h + (hn - nn);
    for (const char *p = h; p <= end;) {
        const char *q = memchr(p, nd[0], (size_t)(end - p) + 1);
        if (!q) return NULL;
        if (memcmp(q, nd, nn) == 0) return q;
        p = q + 1;
    }
    return NULL;
}

/* Splits text into raw and special-token fragments. Result in *out (caller frees out->v). */
static void partition(const sk_tokenizer *t, const char *text, size_t len, bool parse_special,
                      frag_vec *out) {
    frag_vec cur = {0}, nxt = {0};
    if (len > 0) frag_push(&cur, -1, 0, len);
    for (int k = 0; k < t->n_special && cur.n > 0; k++) {
        int32_t id = t->special[k];
        int ty = t->ttype[id];
        if (!parse_special && (ty == SK_TOKT_CONTROL || ty == SK_TOKT_UNKNOWN)) continue;
        const char *s = t->v->tokens[id];
        size_t sl = (size_t)tok_len(t->v, id);
        bool any = false;
        for (size_t f = 0; f < cur.n && !any; f++)
            if (cur.v[f].tok < 0 && find_bytes(text + cur.v[f].off, cur.v[f].len, s, sl))
                any = true;
        if (!any) continue;
        nxt.n = 0;
        for (size_t f = 0; f < cur.n; f++) {
            frag fr = cur.v[f];
            if (fr.tok >= 0) {
                frag_push(&nxt, fr.tok, fr.off, fr.len);
                continue;
            }
            size_t pos = fr.off, end = fr.off + fr.len;
            for (;;) {
                const char *hit = find_bytes(text + pos, end - pos, s, sl);
                if (!hit) break;
                size_t at = (size_t)(hit - text);
                if (at > pos) frag_push(&nxt, -1, pos, at - pos);
                frag_push(&nxt, id, at, sl);
                pos = at + sl;
            }
            if (end > pos) frag_push(&nxt, -1, pos, end - pos);
        }
        frag_vec tmp = cur;
        cur = nxt;
        nxt = tmp;
    }
    free(nxt.v);
    *out = cur;
}

/* ---- SentencePiece-style BPE (llama.cpp's llm_tokenizer_spm) ------------------------------- */

typedef struct spm_sym {
    int prev, next;
    size_t off, n; /* into the escaped text; n == 0 once merged away */
} spm_sym;

typedef struct spm_bigram {
    float score;
    int left, right;
    size_t size;
} spm_bigram;

/* Max-heap order: higher score first, then the leftmost pair. */
static bool bigram_before(const spm_bigram *a, const spm_bigram *b) {
    return a->score > b->score || (a->score == b->score && a->left < b->left);
}

typedef struct spm_heap {
    spm_bigram *v;
    size_t n, cap;
} spm_heap;

static void heap_push(spm_heap *h, spm_bigram x) {
    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = sk_xrealloc(h->v, sizeof *h->v * h->cap);
    }
    size_t i = h->n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!bigram_before(&x, &h->v[p])) break;
        h->v[i] = h->v[p];
        i = p;
    }
    h->v[i] = x;
}

static spm_bigram heap_pop(spm_heap *h) {
    spm_bigram top = h->v[0];
    spm_bigram x = h->v[--h->n];
    size_t i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= h->n) break;
        if (c + 1 < h->n && bigram_before(&h->v[c + 1], &h->v[c])) c++;
        if (!bigram_before(&h->v[c], &x)) break;
        h->v[i] = h->v[c];
        i = c;
    }
    if (h->n > 0) h->v[i] = x;
    return top;
}

static void spm_try_bigram(const sk_tokenizer *t, const char *s, const spm_sym *sym, int l, int r,
                           spm_heap *h) {
    if (l < 0 || r < 0) return;
    size_t size = sym[l].n + sym[r].n;
    int32_t id = sk_strmap_get(&t->vocab, s + sym[l].off, size, -1);
    if (id < 0) return;
    float sc = t->v->scores ? t->v->scores[id] : 0.0f;
    if (isnan(sc)) sc = -INFINITY;
    heap_push(h, (spm_bigram){sc, l, r, size});
}

/* Encodes one raw fragment: ' ' -> U+2581, optional U+2581 in front, then merges by score. */
static void spm_encode(const sk_tokenizer *t, const char *text, size_t len, bool prefix,
                       sk_ivec *out) {
    size_t n_sp = 0;
    for (size_t i = 0; i < len; i++) n_sp += text[i] == ' ';
    size_t elen = len + 2 * n_sp + (prefix ? 3 : 0);
    char *s = sk_xmalloc(elen + 1);
    size_t o = 0;
    if (prefix) {
        memcpy(s, SPACE_MARK, 3);
        o = 3;
    }
    for (size_t i = 0; i < len; i++) {
        if (text[i] == ' ') {
            memcpy(s + o, SPACE_MARK, 3);
            o += 3;
        } else {
            s[o++] = text[i];
        }
    }
    SK_ASSERT(o == elen);

    spm_sym *sym = sk_xmalloc(sizeof *sym * (elen ? elen : 1));
    int ns = 0;
    for (size_t off = 0; off < elen;) {
        uint32_t cp;
        int L = sk_utf8_seq((const uint8_t *)s + off, elen - off, &cp);
        if (L <= 0) L = 1; /* an ill-formed byte is a symbol of its own */
        sym[ns] = (spm_sym){ns - 1, off + (size_t)L == elen ? -1 : ns + 1, off, (size_t)L};
        off += (size_t)L;
        ns++;
    }

    spm_heap h = {0};
    for (int i = 1; i < ns; i++) spm_try_bigram(t, s, sym, i - 1, i, &h);
    while (h.n > 0) {
        spm_bigram b = heap_pop(&h);
        spm_sym *L = &sym[b.left], *R = &sym[b.right];
        if (L->n == 0 || R->n == 0 || L->n + R->n != b.size) continue;
        L->n += R->n;
        R->n = 0;
        L->next = R->next;
        if (R->next >= 0) sym[R->next].prev = b.left;
        spm_try_bigram(t, s, sym, L->prev, b.left, &h);
        spm_try_bigram(t, s, sym, b.left, L->next, &h);
    }

    for (int i = ns > 0 ? 0 : -1; i != -1; i = sym[i].next) {
        int32_t id = sk_strmap_get(&t->vocab, s + sym[i].off, sym[i].n, -1);
        if (id >= 0) {
            sk_ivec_push(out, id);
            continue;
        }
        for (size_t j = 0; j < sym[i].n; j++) {
            int32_t b = t->byte_tok[(uint8_t)s[sym[i].off + j]];
            if (b < 0) b = t->unk;
            if (b >= 0) sk_ivec_push(out, b);
        }
    }
    free(h.v);
    free(sym);
    free(s);
}

/* ---- public --------------------------------------------------------------------------------- */

int sk_tokenizer_encode(const sk_tokenizer *t, const char *text, size_t len, bool add_bos,
                        bool parse_special, int32_t *out, int cap) {
    if (!t) {
        sk_fail(SK_ERR_ARG, "tokenize: no tokenizer");
        return -1;
    }
    if ((!text && len > 0) || cap < 0 || (!out && cap > 0)) {
        sk_fail(SK_ERR_ARG, "tokenize: bad arguments (text %p, len %zu, out %p, cap %d)",
                (const void *)text, len, (void *)out, cap);
        return -1;
    }
    if (len > (size_t)INT32_MAX / 2) {
        sk_fail(SK_ERR_ARG, "tokenize: text of %zu bytes is too long", len);
        return -1;
    }
    sk_ivec ids = {0};
    if (add_bos && t->add_bos && t->bos >= 0) sk_ivec_push(&ids, t->bos);

    frag_vec frags = {0};
    partition(t, text, len, parse_special, &frags);
    bool prev_special = true; /* SPM: a raw fragment at the start or after a special token gets
                                 the space prefix (llama.cpp) */
    sk_status st = SK_OK;
    for (size_t f = 0; f < frags.n && st == SK_OK; f++) {
        frag fr = frags.v[f];
        if (fr.tok >= 0) {
            sk_ivec_push(&ids, fr.tok);
            prev_special = true;
            continue;
        }
        if (t->type == SK_VOCAB_SPM) {
            spm_encode(t, text + fr.off, fr.len, t->add_space_prefix && prev_special, &ids);
        } else {
            st = sk_bpe_encode(t, text + fr.off, fr.len, &ids);
        }
        prev_special = false;
    }
    free(frags.v);
    if (st != SK_OK) {
        sk_ivec_free(&ids);
        return -1;
    }
    if (add_bos && t->add_eos && t->eos >= 0) sk_ivec_push(&ids, t->eos);

    if (ids.n > (size_t)INT32_MAX) {
        sk_ivec_free(&ids);
        sk_fail(SK_ERR_ARG, "tokenize: too many tokens");
        return -1;
    }
    int n = (int)ids.n;
    if (n > 0) memcpy(out, ids.v, sizeof(int32_t) * (size_t)(n < cap ? n : cap));
    sk_ivec_free(&ids);
    return n;
}

int sk_tokenizer_token_bytes(const sk_tokenizer *t, int32_t id, char *buf, int cap) {
    if (!t || id < 0 || id >= t->n_all) return 0;
    uint32_t a = t->dec_off[id], b = t->dec_off[id + 1];
    int n = (int)(b - a);
    if (buf && cap > 0) memcpy(buf, t->dec + a, (size_t)(n < cap ? n : cap));
    return n;
}

bool sk_tokenizer_is_eog(const sk_tokenizer *t, int32_t id) {
    return t && id >= 0 && id < t->n_all && t->eog[id];
}

int sk_tokenizer_bos(const sk_tokenizer *t) { return t ? t->bos : -1; }
int sk_tokenizer_eos(const sk_tokenizer *t) { return t ? t->eos : -1; }
