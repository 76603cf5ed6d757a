/* GPT-2 byte-level BPE: pre-tokenizer regexes (PCRE2, UTF + UCP) applied in sequence, each
 * splitting every piece into its matches and the gaps between them (HF Split "isolated"); each
 * piece's bytes become GPT-2 bytes_to_unicode characters, which merge by rank (index in the
 * merge list) until no merge applies (HF tokenizers' Word::merge_all: lowest rank first, then
 * leftmost). */
#include "tokenizer/tok_internal.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <string.h>

/* ---- GPT-2 bytes_to_unicode ----------------------------------------------------------------- */

/* Bytes '!'..'~', 0xA1..0xAC and 0xAE..0xFF stand for themselves; the other 68 bytes, in
 * increasing order, for U+0100 onwards. */
static bool byte_printable(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
}

uint32_t sk_bpe_byte_to_cp(uint8_t b) {
    if (byte_printable(b)) return b;
    if (b <= 0x20) return 0x100 + b;
    if (b >= 0x7F && b <= 0xA0) return 0x100 + 33 + (b - 0x7F);
    return 0x100 + 67; /* 0xAD */
}

int sk_bpe_cp_to_byte(uint32_t cp) {
    if (cp <= 0xFF) return byte_printable(cp) ? (int)cp : -1;
    if (cp <= 0x100 + 32) return (int)(cp - 0x100);
    if (cp <= 0x100 + 66) return (int)(cp - 0x100 - 33 + 0x7F);
    if (cp == 0x100 + 67) return 0xAD;
    return -1;
}

/* ---- pre-tokenizer regexes by GGUF tokenizer.ggml.pre name (llama.cpp's llm_tokenizer_bpe) -- */

#define RE_GPT2 "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
/* The tokenizer.json originals (PCRE2 takes the (?i:...) group that llama.cpp had to expand). */
#define RE_LLAMA3                                                                                  \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| "                     \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_QWEN2                                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| "                          \
    "?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define RE_PORO                                                                                    \
    " ?[^(\\s|.,!?\xE2\x80\xA6\xE3\x80\x82\xEF\xBC\x8C\xE3\x80\x81\xE0\xA5\xA4\xDB\x94\xD8\x8C)]+"
#define RE_CJK "[\xE4\xB8\x80-\xE9\xBE\xA5\xE0\xA0\x80-\xE4\xB8\x80\xEA\xB0\x80-\xED\x9F\xBF]+"

typedef struct pre_def {
    const char *names; /* '|'-separated */
    bool ignore_merges;
    const char *re[7];
} pre_def;

static const pre_def k_pre[] = {
    {"default|gpt2|gpt-2|phi-2|jina-es|jina-de|gigachat|jina-v1-en|jina-v2-es|jina-v2-de|"
     "jina-v2-code|roberta-bpe|mpt|olmo|jais|trillion|a.x-4.0|mellum",
     false,
     {RE_GPT2}},
    {"llama3|llama-v3|llama-bpe|falcon3|falcon-h1|pixtral|midm-2.0|lfm2", true, {RE_LLAMA3}},
    {"dbrx|smaug-bpe|chatglm-bpe", false, {RE_LLAMA3}},
    {"falcon", false, {"[\\p{P}\\$\\+<=>\\^~\\|`]+", RE_GPT2, "[0-9][0-9][0-9]"}},
    {"starcoder|refact|command-r|smollm|codeshell|exaone|minerva-7b", false, {"\\p{N}", RE_GPT2}},
    {"qwen2|deepseek-r1-qwen|stablelm2|megrez|hunyuan", false, {RE_QWEN2}},
    {"deepseek-llm",
     false,
     {"[\r\n]",
      "\\s?[A-Za-z\xC2\xB5\xC3\x80-\xC3\x96\xC3\x98-\xC3\xB6\xC3\xB8-\xC6\xBA\xC6\xBC-\xC6\xBF"
      "\xC7\x84-\xCA\x93\xCA\x95-\xCA\xAF\xCD\xB0-\xCD\xB3\xCD\xB6\xCD\xB7\xCD\xBB-\xCD\xBD"
      "\xCD\xBF\xCE\x86\xCE\x88-\xCE\x8A\xCE\x8C\xCE\x8E-\xCE\xA1\xCE\xA3-\xCF\xB5\xCF\xB7-"
      "\xD2\x81\xD2\x8A-\xD4\xAF\xD4\xB1-\xD5\x96\xE1\x82\xA0-\xE1\x83\x85\xE1\x8E\xA0-\xE1\x8F"
      "\xB5\xE1\x8F\xB8-\xE1\x8F\xBD\xE1\xB2\x90-\xE1\xB2\xBA\xE1\xB2\xBD-\xE1\xB2\xBF\xE1\xB4"
      "\x80-\xE1\xB4\xAB\xE1\xB5\xAB-\xE1\xB5\xB7\xE1\xB5\xB9-\xE1\xB6\x9A\xE1\xB8\x80-\xE1\xBC"
      "\x95\xE1\xBC\x98-\xE1\xBC\x9D\xE1\xBC\xA0-\xE1\xBD\x85\xE1\xBD\x88-\xE1\xBD\x8D\xE1\xBD"
      "\x90-\xE1\xBD\x97\xE1\xBD\x99\xE1\xBD\x9B\xE1\xBD\x9D\xE1\xBD\x9F-\xE1\xBD\xBD\xE1\xBE"
      "\x80-\xE1\xBE\xB4\xE1\xBE\xB6-\xE1\xBE\xBC\xE1\xBE\xBE\xE1\xBF\x82-\xE1\xBF\x84\xE1\xBF"
      "\x86-\xE1\xBF\x8C\xE1\xBF\x90-\xE1\xBF\x93\xE1\xBF\x96-\xE1\xBF\x9B\xE1\xBF\xA0-\xE1\xBF"
      "\xAC\xE1\xBF\xB2-\xE1\xBF\xB4\xE1\xBF\xB6-\xE1\xBF\xBC\xE2\x84\x82\xE2\x84\x87\xE2\x84"
      "\x8A-\xE2\x84\x93\xE2\x84\x95\xE2\x84\x99-\xE2\x84\x9D\xE2\x84\xA4\xE2\x84\xA6\xE2\x84"
      "\xA8\xE2\x84\xAA-\xE2\x84\xAD\xE2\x84\xAF-\xE2\x84\xB4\xE2\x84\xB9\xE2\x84\xBC-\xE2\x84"
      "\xBF\xE2\x85\x85-\xE2\x85\x89\xE2\x85\x8E\xE2\x86\x83\xE2\x86\x84\xE2\xB0\x80-\xE2\xB1"
      "\xBB\xE2\xB1\xBE-\xE2\xB3\xA4\xE2\xB3\xAB-\xE2\xB3\xAE\xE2\xB3\xB2\xE2\xB3\xB3\xEA\x99"
      "\x80-\xEA\x99\xAD\xEA\x9A\x80-\xEA\x9A\x9B\xEA\x9C\xA2-\xEA\x9D\xAF\xEA\x9D\xB1-\xEA\x9E"
      "\x87\xEA\x9E\x8B-\xEA\x9E\x8E\xEA\xAD\xB0-\xEA\xAE\xBF\xEF\xAC\x80-\xEF\xAC\x86\xEF\xAC"
      "\x93-\xEF\xAC\x97\xEF\xBC\xA1-\xEF\xBC\xBA\xEF\xBD\x81-\xEF\xBD\x9A\xF0\x90\x90\x80-\xF0"
      "\x90\x91\x8F\xF0\x90\x92\xB0-\xF0\x90\x93\x93\xF0\x90\x93\x98-\xF0\x90\x93\xBB\xF0\x90"
      "\xB2\x80-\xF0\x90\xB2\xB2\xF0\x90\xB3\x80-\xF0\x90\xB3\xB2\xF0\x91\xA2\xA0-\xF0\x91\xA3"
      "\x9F\xF0\x9E\xA4\x80-\xF0\x9E\xA5\x83]+",
      "\\s?[!-/:-~\xEF\xBC\x81-\xEF\xBC\x8F\xEF\xBC\x9A-\xEF\xBD\x9E\xE2\x80\x98-\xE2\x80\x9F"
      "\xE3\x80\x80-\xE3\x80\x82]+",
      "\\s+$", RE_CJK, "\\p{N}+"}},
    {"deepseek-coder", false, {"[\r\n]", "\\s?\\p{L}+", "\\s?\\p{P}+", RE_CJK, "\\p{N}"}},
    {"deepseek-v3",
     false,
     {"\\p{N}{1,3}",
      "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
      "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"}},
    {"poro-chat|bloom|gpt3-finnish",
     false,
     {RE_PORO}},
    {"viking",
     false,
     {RE_PORO,
      "\\p{N}"}},
    {"tekken",
     true,
     {"[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]*[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]+|"
      "[^\\r\\n\\p{L}\\p{N}]?[\\p{Lu}\\p{Lt}\\p{Lm}\\p{Lo}\\p{M}]+[\\p{Ll}\\p{Lm}\\p{Lo}\\p{M}]*|"
      "\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n/]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}},
    {"chameleon",
     false,
     {"<sentinel:[0-9]+>", "(IMGIMG)((A|B|C|D|E|F|G|H|I){1,4})Z", "([\\t\\n]|    |  )", "\\p{N}",
      "[\\p{P}!-/:-@\\[-`{-~]", RE_GPT2}},
};

static bool name_in(const char *names, const char *name) {
    size_t n = strlen(name);
    for (const char *p = names; *p;) {
        const char *e = strchr(p, '|');
        size_t l = e ? (size_t)(e - p) : strlen(p);
        if (l == n && memcmp(p, name, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

static sk_status compile_re(sk_tokenizer *t, const char *pat) {
    if (t->n_re >= SK_TOK_MAX_RE)
        return sk_fail(SK_ERR_UNSUPPORTED, "tokenizer: more than %d pre-tokenizer regexes",
                       SK_TOK_MAX_RE);
    int err = 0;
    PCRE2_SIZE erroff = 0;
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pat, PCRE2_ZERO_TERMINATED, PCRE2_UTF | PCRE2_UCP,
                                   &err, &erroff, NULL);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        return sk_fail(SK_ERR_FORMAT,
                       "tokenizer: pre-tokenizer regex %d '%.200s' does not compile at offset "
                       "%zu: %s",
                       t->n_re, pat, (size_t)erroff, (const char *)msg);
    }
    t->re_jit[t->n_re] = pcre2_jit_compile(re, PCRE2_JIT_COMPLETE) == 0;
    t->re[t->n_re++] = re;
    return SK_OK;
}

int sk_bpe_pre_regexes(const char *pre, const char **out, int cap) {
    const pre_def *def = &k_pre[0];
    for (size_t i = 0; pre && pre[0] && i < sizeof k_pre / sizeof *k_pre; i++)
        if (name_in(k_pre[i].names, pre)) {
            def = &k_pre[i];
            break;
        }
    int n = 0;
    for (int i = 0; i < 7 && def->re[i] && n < cap; i++) out[n++] = def->re[i];
    return n;
}

sk_status sk_bpe_init(sk_tokenizer *t) {
    const sk_vocab_data *v = t->v;
    const pre_def *def = NULL;
    const char *pre = v->pre && v->pre[0] ? v->pre : "default";
    for (size_t i = 0; i < sizeof k_pre / sizeof *k_pre && !def; i++)
        if (name_in(k_pre[i].names, pre)) def = &k_pre[i];
    if (v->n_pre_regex > 0) {
        if (!v->pre_regex)
            return sk_fail(SK_ERR_FORMAT, "tokenizer: pre-tokenizer regexes missing");
        for (int i = 0; i < v->n_pre_regex; i++) {
            if (!v->pre_regex[i])
                return sk_fail(SK_ERR_FORMAT, "tokenizer: pre-tokenizer regex %d is missing", i);
            SK_TRY(compile_re(t, v->pre_regex[i]));
        }
    } else {
        if (!def) {
            SK_LOGW("tokenizer: unknown pre-tokenizer '%s'; using the GPT-2 pattern (the "
                    "tokenization may differ from the model's)",
                    pre);
            def = &k_pre[0];
        }
        for (int i = 0; i < 7 && def->re[i]; i++) SK_TRY(compile_re(t, def->re[i]));
    }
    t->ignore_merges = def && def->ignore_merges;

    /* Characters of single bytes. */
    for (int b = 0; b < 256; b++) {
        char u[4];
        int n = sk_utf8_put(sk_bpe_byte_to_cp((uint8_t)b), u);
        t->bpe_byte_tok[b] = sk_strmap_get(&t->vocab, u, (size_t)n, -1);
    }

    /* Merges: "left right" (split at the first space after the first byte, as llama.cpp). */
    if (v->n_merges < 0 || (v->n_merges > 0 && !v->merges))
        return sk_fail(SK_ERR_FORMAT, "tokenizer: bad merge list (%d merges)", v->n_merges);
    sk_pairmap_reserve(&t->merges, (uint32_t)v->n_merges);
    char *buf = NULL;
    size_t bcap = 0;
    int skipped = 0, first_skipped = -1;
    for (int i = 0; i < v->n_merges; i++) {
        const char *m = v->merges[i];
        size_t len = m ? strlen(m) : 0;
        const char *sp = len > 1 ? memchr(m + 1, ' ', len - 1) : NULL;
        if (!sp || sp + 1 == m + len) {
            free(buf);
            return sk_fail(SK_ERR_FORMAT,
                           "tokenizer: merge %d '%.100s' is not of the form "
                           "'left right'",
                           i, m ? m : "(null)");
        }
        size_t ll = (size_t)(sp - m), rl = len - ll - 1;
        if (ll + rl > bcap) {
            bcap = (ll + rl) * 2;
            buf = sk_xrealloc(buf, bcap);
        }
        memcpy(buf, m, ll);
        memcpy(buf + ll, sp + 1, rl);
        int32_t a = sk_strmap_get(&t->vocab, m, ll, -1);
        int32_t b = sk_strmap_get(&t->vocab, sp + 1, rl, -1);
        int32_t c = sk_strmap_get(&t->vocab, buf, ll + rl, -1);
        if (a < 0 || b < 0 || c < 0) {
            if (skipped++ == 0) first_skipped = i;
            continue;
        }
        sk_pairmap_put(&t->merges, a, b, i, c);
    }
    free(buf);
    if (skipped)
        SK_LOGW("tokenizer: %d merges (the first: %d '%.100s') name tokens that are not in the "
                "vocabulary; ignored",
                skipped, first_skipped, v->merges[first_skipped]);
    return SK_OK;
}

void sk_bpe_free(sk_tokenizer *t) {
    for (int i = 0; i < t->n_re; i++) pcre2_code_free((pcre2_code *)t->re[i]);
    t->n_re = 0;
    sk_pairmap_free(&t->merges);
}

/* ---- pre-tokenization ----------------------------------------------------------------------- */

typedef struct piece {
    size_t off, len;
    bool raw; /* ill-formed UTF-8 byte: not split by the regexes */
} piece;

typedef struct piece_vec {
    piece *v;
    size_t n, cap;
} piece_vec;

static void piece_push(piece_vec *a, size_t off, size_t len, bool raw) {
    if (len == 0) return;
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = sk_xrealloc(a->v, sizeof *a->v * a->cap);
    }
    a->v[a->n++] = (piece){off, len, raw};
}

/* Splits every piece of in by regex k into out. */
static sk_status split_re(const sk_tokenizer *t, int k, const char *text, const piece_vec *in,
                          piece_vec *out, pcre2_match_data *md) {
    const pcre2_code *re = t->re[k];
    out->n = 0;
    for (size_t i = 0; i < in->n; i++) {
        piece p = in->v[i];
        if (p.raw) {
            piece_push(out, p.off, p.len, true);
            continue;
        }
        PCRE2_SPTR subj = (PCRE2_SPTR)(text + p.off);
        size_t pos = 0, start = 0;
        uint32_t opts = PCRE2_NO_UTF_CHECK;
        while (start < p.len) {
            int rc = pcre2_match(re, subj, p.len, start, opts, md, NULL);
            if (rc == PCRE2_ERROR_NOMATCH) break;
            if (rc < 0 && !(opts & PCRE2_NO_JIT) && t->re_jit[k]) {
                opts |= PCRE2_NO_JIT; /* e.g. the JIT stack ran out: the interpreter may not */
                continue;
            }
            if (rc < 0) {
                PCRE2_UCHAR msg[256];
                pcre2_get_error_message(rc, msg, sizeof msg);
                return sk_fail(
                    SK_ERR_ARG,
                    "tokenize: pre-tokenizer regex %d failed on a piece of %zu bytes: %s", k, p.len,
                    (const char *)msg);
            }
            PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
            size_t ms = ov[0], me = ov[1];
            if (me <= ms) { /* empty match: step one character */
                uint32_t cp;
                int L = sk_utf8_seq(subj + start, p.len - start, &cp);
                start += L > 0 ? (size_t)L : 1;
                continue;
            }
            if (ms > pos) piece_push(out, p.off + pos, ms - pos, false);
            piece_push(out, p.off + ms, me - ms, false);
            pos = start = me;
        }
        if (p.len > pos) piece_push(out, p.off + pos, p.len - pos, false);
    }
    return SK_OK;
}

/* ---- merges --------------------------------------------------------------------------------- */

typedef struct bsym {
    int32_t id; /* -1: byte without a token */
    int prev, next;
    bool gone;
} bsym;

typedef struct bmerge {
    int32_t rank, pos, id;
} bmerge;

static bool merge_before(const bmerge *a, const bmerge *b) {
    return a->rank < b->rank || (a->rank == b->rank && a->pos < b->pos);
}

typedef struct bscratch {
    bsym *sym;
    size_t sym_cap;
    bmerge *heap;
    size_t heap_n, heap_cap;
    char *str;
    size_t str_cap;
} bscratch;

static void mheap_push(bscratch *s, bmerge x) {
    if (s->heap_n == s->heap_cap) {
        s->heap_cap = s->heap_cap ? s->heap_cap * 2 : 64;
        s->heap = sk_xrealloc(s->heap, sizeof *s->heap * s->heap_cap);
    }
    size_t i = s->heap_n++;
    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (!merge_before(&x, &s->heap[p])) break;
        s->heap[i] = s->heap[p];
        i = p;
    }
    s->heap[i] = x;
}

static bmerge mheap_pop(bscratch *s) {
    bmerge top = s->heap[0];
    bmerge x = s->heap[--s->heap_n];
    size_t i = 0, n = s->heap_n;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && merge_before(&s->heap[c + 1], &s->heap[c])) c++;
        if (!merge_before(&s->heap[c], &x)) break;
        s->heap[i] = s->heap[c];
        i = c;
    }
    if (n > 0) s->heap[i] = x;
    return top;
}

static void try_merge(const sk_tokenizer *t, bscratch *s, int l) {
    if (l < 0) return;
    int r = s->sym[l].next;
    if (r < 0 || s->sym[l].id < 0 || s->sym[r].id < 0) return;
    const sk_pairmap_slot *m = sk_pairmap_get(&t->merges, s->sym[l].id, s->sym[r].id);
    if (m) mheap_push(s, (bmerge){m->rank, l, m->id});
}

/* BPE of one piece's bytes; appends the ids. */
static void bpe_piece(const sk_tokenizer *t, const uint8_t *p, size_t n, bscratch *s,
                      sk_ivec *out) {
    if (t->ignore_merges) {
        if (n * 2 > s->str_cap) {
            s->str_cap = n * 2 + 16;
            s->str = sk_xrealloc(s->str, s->str_cap);
        }
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
            k += (size_t)sk_utf8_put(sk_bpe_byte_to_cp(p[i]), s->str + k);
        int32_t id = sk_strmap_get(&t->vocab, s->str, k, -1);
        if (id >= 0) {
            sk_ivec_push(out, id);
            return;
        }
    }
    if (n > s->sym_cap) {
        s->sym_cap = n + 64;
        s->sym = sk_xrealloc(s->sym, sizeof *s->sym * s->sym_cap);
    }
    for (size_t i = 0; i < n; i++)
        s->sym[i] = (bsym){t->bpe_byte_tok[p[i]], (int)i - 1, i + 1 < n ? (int)i + 1 : -1, false};
    s->heap_n = 0;
    for (size_t i = 0; i + 1 < n; i++) try_merge(t, s, (int)i);
    while (s->heap_n > 0) {
        bmerge m = mheap_pop(s);
        bsym *L = &s->sym[m.pos];
        if (L->gone || L->next < 0) continue;
        bsym *R = &s->sym[L->next];
        const sk_pairmap_slot *cur = sk_pairmap_get(&t->merges, L->id, R->id);
        if (L->id < 0 || R->id < 0 || !cur || cur->id != m.id) continue;
        L->id = m.id;
        R->gone = true;
        L->next = R->next;
        if (R->next >= 0) s->sym[R->next].prev = m.pos;
        try_merge(t, s, L->prev);
        try_merge(t, s, m.pos);
    }
    for (int i = n > 0 ? 0 : -1; i >= 0; i = s->sym[i].next) {
        int32_t id = s->sym[i].id >= 0 ? s->sym[i].id : t->unk;
        if (id >= 0) sk_ivec_push(out, id);
    }
}

/* ---- encode --------------------------------------------------------------------------------- */

/* Pieces up to this many bytes are cached (per call) with their ids. */
#define CACHE_MAX_PIECE 256

sk_status sk_bpe_encode(const sk_tokenizer *t, const char *text, size_t len, sk_ivec *out) {
    if (len == 0) return SK_OK;
    piece_vec a = {0}, b = {0};
    /* Well-formed UTF-8 runs go to the regexes; each ill-formed byte is a piece of its own. */
    size_t run = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        int L = sk_utf8_seq((const uint8_t *)text + i, len - i, &cp);
        if (L > 0) {
            i += (size_t)L;
            continue;
        }
        piece_push(&a, run, i - run, false);
        piece_push(&a, i, 1, true);
        run = ++i;
    }
    piece_push(&a, run, len - run, false);

    sk_status st = SK_OK;
    pcre2_match_data *md = pcre2_match_data_create(1, NULL);
    if (!md) st = sk_fail(SK_ERR_NOMEM, "tokenize: cannot allocate PCRE2 match data");
    for (int k = 0; k < t->n_re && st == SK_OK; k++) {
        st = split_re(t, k, text, &a, &b, md);
        piece_vec tmp = a;
        a = b;
        b = tmp;
    }
    if (md) pcre2_match_data_free(md);

    bscratch s = {0};
    sk_strmap cache = {0};
    sk_ivec cached = {0}; /* entries: count, then the ids */
    for (size_t i = 0; i < a.n && st == SK_OK; i++) {
        const char *p = text + a.v[i].off;
        size_t n = a.v[i].len;
        if (a.v[i].raw && t->bpe_byte_tok[(uint8_t)*p] < 0) {
            /* An ill-formed byte that the vocabulary cannot spell (HF vocabularies leave out
             * bytes that never occur in UTF-8): U+FFFD, as a UTF-8 decoder would read it. */
            p = "\xEF\xBF\xBD";
            n = 3;
        }
        if (n > CACHE_MAX_PIECE) {
            bpe_piece(t, (const uint8_t *)p, n, &s, out);
            continue;
        }
        int32_t at = sk_strmap_get(&cache, p, n, -1);
        if (at >= 0) {
            for (int32_t j = 0; j < cached.v[at]; j++) sk_ivec_push(out, cached.v[at + 1 + j]);
            continue;
        }
        size_t before = out->n;
        bpe_piece(t, (const uint8_t *)p, n, &s, out);
        if (cached.n > (size_t)INT32_MAX / 2) continue;
        sk_strmap_put(&cache, p, n, (int32_t)cached.n);
        sk_ivec_push(&cached, (int32_t)(out->n - before));
        for (size_t j = before; j < out->n; j++) sk_ivec_push(&cached, out->v[j]);
    }
    sk_strmap_free(&cache);
    sk_ivec_free(&cached);
    free(s.sym);
    free(s.heap);
    free(s.str);
    free(a.v);
    free(b.v);
    return st;
}
