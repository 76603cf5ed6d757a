/* Tokenizers (SPM and byte-level BPE), single-token decoding and the streaming detokenizer.
 *
 * Expected ids come from independent sources only: hand-worked examples on small hand-built
 * vocabularies, a Python port of llama2.c's run.c encode() for stories260K's tok512, and
 * Hugging Face tokenizers for SmolLM2 (tests/fixtures/smollm2_tokens.json); the rest are
 * properties (round trips, no mergeable pair left, whole characters from the detokenizer). */
#include "testlib.h"

#include "core/file.h"
#include "model/model_file.h"
#include "tokenizer/detok.h"
#include "tokenizer/tokenizer.h"

#include <jansson.h>
#include <stdint.h>
#include <string.h>

#define SP "\xE2\x96\x81" /* U+2581 */

/* ---- helpers -------------------------------------------------------------------------------- */

static int enc(const sk_tokenizer *t, const char *s, bool bos, bool special, int32_t *out,
               int cap) {
    return sk_tokenizer_encode(t, s, strlen(s), bos, special, out, cap);
}

static bool ids_eq(const int32_t *a, int na, const int32_t *b, int nb) {
    if (na != nb) return false;
    for (int i = 0; i < na; i++)
        if (a[i] != b[i]) return false;
    return true;
}

static void print_ids(const char *what, const int32_t *a, int n) {
    fprintf(stderr, "  %s:", what);
    for (int i = 0; i < n; i++) fprintf(stderr, " %d", a[i]);
    fputc('\n', stderr);
}

/* Concatenated token bytes (malloc'd, NUL-terminated); *len gets the length. */
static char *decode_all(const sk_tokenizer *t, const int32_t *ids, int n, size_t *len) {
    size_t cap = 64, k = 0;
    char *s = malloc(cap);
    for (int i = 0; i < n; i++) {
        int m = sk_tokenizer_token_bytes(t, ids[i], NULL, 0);
        if (k + (size_t)m + 1 > cap) {
            while (k + (size_t)m + 1 > cap) cap *= 2;
            s = realloc(s, cap);
        }
        sk_tokenizer_token_bytes(t, ids[i], s + k, m);
        k += (size_t)m;
    }
    s[k] = 0;
    *len = k;
    return s;
}

/* Strict UTF-8 check written independently of the tokenizer's. */
static bool utf8_ok(const char *s, size_t n) {
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        unsigned c = u[i];
        int L = c < 0x80                   ? 1
                : (c >= 0xC2 && c <= 0xDF) ? 2
                : (c >= 0xE0 && c <= 0xEF) ? 3
                : (c >= 0xF0 && c <= 0xF4) ? 4
                                           : 0;
        if (!L || i + (size_t)L > n) return false;
        uint32_t cp = L == 1 ? c : c & (0x7F >> L);
        for (int k = 1; k < L; k++) {
            if ((u[i + k] & 0xC0) != 0x80) return false;
            cp = (cp << 6) | (u[i + k] & 0x3F);
        }
        if ((L == 3 && cp < 0x800) || (L == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return false;
        i += (size_t)L;
    }
    return true;
}

/* Round trip through sk_tokenizer_token_bytes. */
static void check_roundtrip(const sk_tokenizer *t, const char *s, size_t n, bool special,
                            const char *name) {
    int cap = (int)n + 8;
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
    int m = sk_tokenizer_encode(t, s, n, false, special, ids, cap);
    CHECKF(m >= 0 && m <= cap, "%s: encode returned %d", name, m);
    if (m >= 0 && m <= cap) {
        size_t len;
        char *d = decode_all(t, ids, m, &len);
        CHECKF(len == n && memcmp(d, s, n) == 0, "%s: decode(encode(s)) != s (%zu vs %zu bytes)",
               name, len, n);
        free(d);
    }
    free(ids);
}

/* ---- a hand-built SentencePiece vocabulary -------------------------------------------------- */

typedef struct toyvocab {
    sk_vocab_data v;
    char *tok[400];
    int len[400];
    float score[400];
    int type[400];
    char *merge[64];
} toyvocab;

static int toy_add(toyvocab *tv, const char *s, float score, int type) {
    int i = tv->v.n_tokens++;
    tv->tok[i] = sk_xstrdup(s);
    tv->len[i] = (int)strlen(s);
    tv->score[i] = score;
    tv->type[i] = type;
    return i;
}

static void toy_init(toyvocab *tv, sk_vocab_type type) {
    memset(tv, 0, sizeof *tv);
    tv->v.type = type;
    tv->v.tokens = tv->tok;
    tv->v.token_len = tv->len;
    tv->v.scores = tv->score;
    tv->v.token_type = tv->type;
    tv->v.merges = tv->merge;
    tv->v.bos = tv->v.eos = tv->v.unk = tv->v.pad = tv->v.eot = -1;
}

static void toy_free(toyvocab *tv) {
    for (int i = 0; i < tv->v.n_tokens; i++) free(tv->tok[i]);
    for (int i = 0; i < tv->v.n_merges; i++) free(tv->merge[i]);
}

static void test_spm_toy(void) {
    toyvocab tv;
    toy_init(&tv, SK_VOCAB_SPM);
    tv.v.unk = toy_add(&tv, "<unk>", 0, SK_TOKT_UNKNOWN);
    tv.v.bos = toy_add(&tv, "<s>", 0, SK_TOKT_CONTROL);
    tv.v.eos = toy_add(&tv, "</s>", 0, SK_TOKT_CONTROL);
    int byte0 = tv.v.n_tokens;
    for (int b = 0; b < 256; b++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", b);
        toy_add(&tv, s, 0, SK_TOKT_BYTE);
    }
    int a = toy_add(&tv, "a", -10, SK_TOKT_NORMAL);
    int b = toy_add(&tv, "b", -10, SK_TOKT_NORMAL);
    int c = toy_add(&tv, "c", -10, SK_TOKT_NORMAL);
    int sp = toy_add(&tv, SP, -10, SK_TOKT_NORMAL);
    int ab = toy_add(&tv, "ab", -1, SK_TOKT_NORMAL);
    int bc = toy_add(&tv, "bc", -2, SK_TOKT_NORMAL);
    int aa = toy_add(&tv, "aa", -3, SK_TOKT_NORMAL);
    int spa = toy_add(&tv, SP "a", -4, SK_TOKT_NORMAL);
    int tag = toy_add(&tv, "<tag>", 0, SK_TOKT_USER_DEFINED);
    tv.v.add_bos = true;
    tv.v.add_space_prefix = false;

    sk_tokenizer *t = NULL;
    CHECK(sk_tokenizer_new(&tv.v, 0, &t) == SK_OK && t);
    if (!t) return;
    int32_t out[64];
    int n;
    /* Highest score first: "ab" (-1) beats "bc" (-2). */
    n = enc(t, "abc", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){ab, c}, 2));
    n = enc(t, "bca", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){bc, a}, 2));
    /* Ties: the leftmost pair merges first. */
    n = enc(t, "aaa", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){aa, a}, 2));
    n = enc(t, "aaaaa", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){aa, aa, a}, 3));
    /* Spaces become U+2581; "ab" outranks U+2581 "a". */
    n = enc(t, " ab c", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){sp, ab, sp, c}, 4));
    n = enc(t, " a", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){spa}, 1));
    /* Byte fallback for characters not in the vocabulary. */
    n = enc(t, "a\xC3\xA9", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){a, byte0 + 0xC3, byte0 + 0xA9}, 3));
    /* Invalid UTF-8 bytes fall back to bytes too. */
    n = enc(t,
            "\xFF"
            "a\xC3",
            false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){byte0 + 0xFF, a, byte0 + 0xC3}, 3));
    /* BOS; empty text. */
    n = enc(t, "ab", true, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){tv.v.bos, ab}, 2));
    CHECK(enc(t, "", true, false, out, 64) == 1 && out[0] == tv.v.bos);
    CHECK(enc(t, "", false, false, out, 64) == 0);
    /* Control tokens only with parse_special; user-defined ones always. */
    n = enc(t, "a<s>b", false, true, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){a, tv.v.bos, b}, 3));
    n = enc(t, "a<s>b", false, false, out, 64);
    CHECK(n == 5 && out[1] == byte0 + '<' && out[2] == byte0 + 's' && out[3] == byte0 + '>');
    n = enc(t, "a<tag>b", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){a, tag, b}, 3));
    /* A too small buffer: the full count comes back, nothing beyond cap is written. */
    out[1] = -7;
    CHECK(enc(t, "aaaaa", false, false, out, 1) == 3 && out[0] == aa && out[1] == -7);
    /* Decoding. */
    char buf[16];
    CHECK(sk_tokenizer_token_bytes(t, spa, buf, 16) == 2 && memcmp(buf, " a", 2) == 0);
    CHECK(sk_tokenizer_token_bytes(t, byte0 + 0x0A, buf, 16) == 1 && buf[0] == '\n');
    CHECK(sk_tokenizer_token_bytes(t, tv.v.bos, buf, 16) == 3 && memcmp(buf, "<s>", 3) == 0);
    CHECK(sk_tokenizer_token_bytes(t, 99999, buf, 16) == 0);
    CHECK(sk_tokenizer_token_bytes(t, -1, buf, 16) == 0);
    CHECK(sk_tokenizer_is_eog(t, tv.v.eos) && !sk_tokenizer_is_eog(t, a));
    CHECK(sk_tokenizer_bos(t) == tv.v.bos && sk_tokenizer_eos(t) == tv.v.eos);
    sk_tokenizer_free(t);

    /* With the space prefix (llama.cpp: also for text after a special token). */
    tv.v.add_space_prefix = true;
    CHECK(sk_tokenizer_new(&tv.v, 0, &t) == SK_OK);
    n = enc(t, "a<tag>b", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){spa, tag, sp, b}, 4));
    n = enc(t, "", true, false, out, 64);
    CHECK(n == 1);
    /* n_vocab_model: ids at or above it are never produced ("<tag>" and "U+2581a" are). */
    sk_tokenizer_free(t);
    CHECK(sk_tokenizer_new(&tv.v, spa, &t) == SK_OK);
    n = enc(t, " a<tag>", false, false, out, 64);
    bool below = n > 0;
    for (int i = 0; i < n; i++) below &= out[i] < spa;
    CHECKF(below, "n_vocab_model not honoured");
    sk_tokenizer_free(t);

    /* Detokenizer: the dummy-prefix space goes on the first piece after BOS only. */
    CHECK(sk_tokenizer_new(&tv.v, 0, &t) == SK_OK);
    sk_detok *d = sk_detok_new_tok(t, false);
    const char *o;
    int k = sk_detok_push(d, spa, &o);
    CHECK(k == 2 && memcmp(o, " a", 2) == 0);
    CHECK(sk_detok_push(d, tv.v.bos, &o) == 0);
    k = sk_detok_push(d, spa, &o);
    CHECK(k == 1 && o[0] == 'a');
    k = sk_detok_push(d, spa, &o);
    CHECK(k == 2 && memcmp(o, " a", 2) == 0);
    sk_detok_reset(d, true);
    k = sk_detok_push(d, byte0 + ' ', &o); /* a byte piece keeps its space (sentencepiece) */
    CHECK(k == 1 && o[0] == ' ');
    sk_detok_free(d);
    sk_tokenizer_free(t);
    toy_free(&tv);
}

/* ---- a hand-built byte-level BPE vocabulary ------------------------------------------------- */

/* GPT-2 bytes_to_unicode, written out here independently of bpe.c. */
static void gpt2_char(int byte, char *out) {
    int n = 0, cp = -1;
    for (int b = 0; b < 256; b++) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
        int this_cp = printable ? b : 256 + n++;
        if (b == byte) cp = this_cp;
    }
    if (cp < 0x80) {
        out[0] = (char)cp;
        out[1] = 0;
    } else {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        out[2] = 0;
    }
}

static void bpe_toy(toyvocab *tv, const char *const *merges, int n_merges) {
    toy_init(tv, SK_VOCAB_BPE);
    tv->v.scores = NULL;
    for (int b = 0; b < 256; b++) {
        char s[4];
        gpt2_char(b, s);
        toy_add(tv, s, 0, SK_TOKT_NORMAL);
    }
    for (int i = 0; i < n_merges; i++) {
        tv->merge[tv->v.n_merges++] = sk_xstrdup(merges[i]);
        char tok[32];
        const char *spc = strchr(merges[i], ' ');
        snprintf(tok, sizeof tok, "%.*s%s", (int)(spc - merges[i]), merges[i], spc + 1);
        toy_add(tv, tok, 0, SK_TOKT_NORMAL);
    }
    tv->v.eos = toy_add(tv, "<|end|>", 0, SK_TOKT_CONTROL);
}

static void test_bpe_toy(void) {
    toyvocab tv;
    int32_t out[64];
    int n;
    sk_tokenizer *t = NULL;

    /* "b c" has the lower rank: "abc" -> a + bc, although "a b" and "ab c" exist. */
    static const char *const m1[] = {"b c", "a b", "ab c", "a a", "\xC4\xA0 a"};
    bpe_toy(&tv, m1, 5);
    int bc = 256, ab = 257, aa = 259, spa = 260; /* 258: "abc" */
    CHECK(sk_tokenizer_new(&tv.v, 0, &t) == SK_OK && t);
    if (!t) return;
    n = enc(t, "abc", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){'a', bc}, 2));
    n = enc(t, "ab", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){ab}, 1));
    n = enc(t, "aaaaa", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){aa, aa, 'a'}, 3));
    /* GPT-2 pre-tokenizer (no name): " a" stays one piece -> the U+0120 "a" merge. */
    n = enc(t, "a a", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){'a', spa}, 2));
    /* Special tokens. */
    n = enc(t, "a<|end|>", false, true, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){'a', tv.v.eos}, 2));
    n = enc(t, "a<|end|>", false, false, out, 64);
    CHECK(n > 2 && out[1] == '<');
    CHECK(sk_tokenizer_is_eog(t, tv.v.eos));
    /* Decoding maps the GPT-2 characters back to bytes; control tokens are their text. */
    char buf[16];
    CHECK(sk_tokenizer_token_bytes(t, spa, buf, 16) == 2 && memcmp(buf, " a", 2) == 0);
    CHECK(sk_tokenizer_token_bytes(t, 0x0A, buf, 16) == 1 && buf[0] == '\n');
    CHECK(sk_tokenizer_token_bytes(t, 0xFF, buf, 16) == 1 && (unsigned char)buf[0] == 0xFF);
    CHECK(sk_tokenizer_token_bytes(t, tv.v.eos, buf, 16) == 7 && memcmp(buf, "<|end|>", 7) == 0);
    /* Invalid UTF-8 never crashes and round-trips byte for byte. */
    static const char bad[] = "\xFF\xFE"
                              "ab\xC3 \xE4\xBD"
                              "c\xF0\x9F\x98"
                              "\x80\xED\xA0\x80 a\xC3";
    check_roundtrip(t, bad, sizeof bad - 1, false, "bpe toy invalid utf-8");
    sk_tokenizer_free(t);
    toy_free(&tv);

    /* Ranks the other way round: "a b" first, then "ab c". */
    static const char *const m2[] = {"a b", "ab c", "b c"};
    bpe_toy(&tv, m2, 3);
    CHECK(sk_tokenizer_new(&tv.v, 0, &t) == SK_OK);
    n = enc(t, "abc", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){257}, 1));
    sk_tokenizer_free(t);

    /* Explicit regexes: digits split one by one, then the GPT-2 pattern. */
    char *re[2] = {
        "\\p{N}",
        "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"};
    tv.v.pre_regex = re;
    tv.v.n_pre_regex = 2;
    CHECK(sk_tokenizer_new(&tv.v, 0, &t) == SK_OK);
    n = enc(t, "ab12", false, false, out, 64);
    CHECK(ids_eq(out, n, (int32_t[]){256, '1', '2'}, 3));
    sk_tokenizer_free(t);
    /* A regex that does not compile is an error naming it. */
    char *bad_re[1] = {"(unclosed"};
    tv.v.pre_regex = bad_re;
    tv.v.n_pre_regex = 1;
    t = NULL;
    CHECK(sk_tokenizer_new(&tv.v, 0, &t) != SK_OK && !t);
    CHECKF(strstr(sk_last_error(), "regex") != NULL, "error: %s", sk_last_error());
    tv.v.pre_regex = NULL;
    tv.v.n_pre_regex = 0;
    /* Unknown pre-tokenizer names fall back to GPT-2 with a warning. */
    tv.v.pre = "no-such-pre";
    CHECK(sk_tokenizer_new(&tv.v, 0, &t) == SK_OK);
    sk_tokenizer_free(t);
    tv.v.pre = NULL;
    /* A malformed merge is an error naming it. */
    free(tv.merge[1]);
    tv.merge[1] = sk_xstrdup("abc");
    t = NULL;
    CHECK(sk_tokenizer_new(&tv.v, 0, &t) != SK_OK && !t);
    CHECKF(strstr(sk_last_error(), "merge 1") != NULL, "error: %s", sk_last_error());
    toy_free(&tv);

    /* Not a vocabulary. */
    sk_vocab_data none = {0};
    CHECK(sk_tokenizer_new(&none, 0, &t) != SK_OK);
}

/* ---- random texts --------------------------------------------------------------------------- */

static unsigned long long g_rng = 0x243F6A8885A308D3ull;
static unsigned rnd(unsigned n) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (unsigned)((g_rng >> 33) % n);
}

/* Valid UTF-8 texts from fragments (letters, digits, whitespace runs, punctuation, accents,
 * CJK, emoji, special-token look-alikes): the tokenizer must round-trip them; then raw random
 * bytes, which must not crash. spm: compare through the detokenizer (dummy prefix). */
static void fuzz(const sk_tokenizer *t, bool spm, const char *name) {
    static const char *const frag[] = {
        "a",
        "The",
        " the",
        "  ",
        "\n",
        "\r\n",
        "\t",
        " ",
        "123",
        "4",
        ",",
        ".",
        "'s",
        "'LL",
        "\xC3\xA9",
        "\xC3\x85",
        "\xE4\xBD\xA0",
        "\xE5\xA5\xBD",
        "\xF0\x9F\x98\x80",
        "\xE2\x96\x81",
        "<|im_start|>",
        "<s>",
        "</s>",
        "<|endoftext|>",
        "{",
        "}()",
        "->",
        "x",
        "Zz",
        "\xD0\x96",
    };
    char text[600];
    int32_t ids[700];
    int fails = 0;
    for (int it = 0; it < 300; it++) {
        size_t n = 0;
        int parts = (int)rnd(40);
        text[0] = 0;
        for (int k = 0; k < parts; k++) {
            const char *f = frag[rnd(sizeof frag / sizeof *frag)];
            if (spm && strcmp(f, "\xE2\x96\x81") == 0) f = "_"; /* SPM decodes U+2581 as ' ' */
            if (n + strlen(f) >= sizeof text) break;
            strcpy(text + n, f);
            n += strlen(f);
        }
        bool special = !spm && rnd(2); /* SPM: "<s>" would be BOS, which prints nothing */
        int m = sk_tokenizer_encode(t, text, n, false, special, ids, 700);
        if (m < 0 || m > 700) {
            fails++;
            continue;
        }
        char back[1400];
        size_t k = 0;
        if (spm) {
            sk_detok *d = sk_detok_new_tok(t, true);
            for (int i = 0; i < m && k < 600; i++) {
                const char *o;
                int b = sk_detok_push(d, ids[i], &o);
                memcpy(back + k, o, (size_t)b);
                k += (size_t)b;
            }
            sk_detok_free(d);
        } else {
            for (int i = 0; i < m && k < 600; i++)
                k += (size_t)sk_tokenizer_token_bytes(t, ids[i], back + k, 64);
        }
        if (k != n || memcmp(back, text, n) != 0) {
            if (fails++ == 0) fprintf(stderr, "  %s: round trip fails for '%s'\n", name, text);
        }
    }
    CHECKF(fails == 0, "%s: %d random texts did not round-trip", name, fails);
    for (int it = 0; it < 300; it++) {
        size_t n = rnd(300);
        for (size_t i = 0; i < n; i++) text[i] = (char)rnd(256);
        int m = sk_tokenizer_encode(t, text, n, true, rnd(2), ids, 700);
        CHECK(m >= 0 && m <= 700);
        for (int i = 0; i < m && i < 700; i++) CHECK(ids[i] >= 0);
    }
}

/* ---- stories260K: llama2.c tok512.bin and GGUF ---------------------------------------------- */

/* Expected ids from a Python port of llama2.c's run.c encode() (BOS, dummy prefix, merges by
 * score), run on tok512.bin. */
static const struct {
    const char *text;
    int n;
    int32_t ids[24];
} k_l2c[] = {
    {"Once upon a time", 5, {1, 403, 407, 261, 378}},
    {"Lily and Ben went to the park. They saw a big dog!", 20, {1,   317, 269, 368, 302, 263, 377,
                                                                267, 265, 282, 295, 433, 426, 342,
                                                                394, 261, 370, 400, 428, 443}},
    {"Hello  world,\nnew line",
     16,
     {1, 346, 306, 414, 410, 263, 304, 341, 432, 13, 416, 411, 424, 278, 271, 411}},
    {"caf\xC3\xA9 na\xC3\xAFve \xE4\xBD\xA0\xE5\xA5\xBD",
     17,
     {1, 280, 412, 431, 485, 297, 412, 198, 178, 360, 410, 231, 192, 163, 232, 168, 192}},
};

static void test_stories(void) {
    const char *bin = sk_test_path("SK_DATA", "stories260K/stories260K.bin");
    const char *tok = sk_test_path("SK_DATA", "stories260K/tok512.bin");
    const char *gguf = sk_test_path("SK_DATA", "stories260K/stories260K.gguf");
    sk_model_file mb, mg;
    sk_status sb = sk_model_file_load(bin, tok, &mb);
    CHECKF(sb == SK_OK, "llama2.c load: %s", sk_last_error());
    sk_status sg = sk_model_file_load(gguf, NULL, &mg);
    CHECKF(sg == SK_OK, "gguf load: %s", sk_last_error());
    if (sb != SK_OK || sg != SK_OK) return;
    sk_tokenizer *tb = NULL, *tg = NULL;
    CHECKF(sk_tokenizer_new(&mb.vocab, mb.hp.n_vocab, &tb) == SK_OK, "%s", sk_last_error());
    CHECKF(sk_tokenizer_new(&mg.vocab, mg.hp.n_vocab, &tg) == SK_OK, "%s", sk_last_error());
    if (!tb || !tg) return;
    const sk_vocab_data *v = &mg.vocab;

    int32_t a[256], b[256];
    for (size_t i = 0; i < sizeof k_l2c / sizeof *k_l2c; i++) {
        int na = enc(tb, k_l2c[i].text, true, false, a, 256);
        int ng = enc(tg, k_l2c[i].text, true, false, b, 256);
        CHECKF(ids_eq(a, na, k_l2c[i].ids, k_l2c[i].n), "llama2.c vocab: '%s'", k_l2c[i].text);
        CHECKF(ids_eq(b, ng, k_l2c[i].ids, k_l2c[i].n), "gguf vocab: '%s'", k_l2c[i].text);
        if (!ids_eq(b, ng, k_l2c[i].ids, k_l2c[i].n)) print_ids("got", b, ng);
    }

    /* Properties of "Once upon a time": the pieces spell the escaped text, and no adjacent pair
     * of pieces concatenates to a normal vocabulary piece (the merging ran to completion). */
    int n = enc(tg, "Once upon a time", false, false, a, 256);
    char cat[256] = "";
    for (int i = 0; i < n; i++) strncat(cat, v->tokens[a[i]], sizeof cat - strlen(cat) - 1);
    CHECKF(strcmp(cat, SP "Once" SP "upon" SP "a" SP "time") == 0, "pieces: %s", cat);
    for (int i = 0; i + 1 < n; i++) {
        char pair[64];
        snprintf(pair, sizeof pair, "%s%s", v->tokens[a[i]], v->tokens[a[i + 1]]);
        for (int j = 0; j < v->n_tokens; j++)
            CHECKF(!(strcmp(v->tokens[j], pair) == 0 && v->token_type[j] == SK_TOKT_NORMAL),
                   "pieces %d and %d could still merge into '%s'", i, i + 1, pair);
    }

    /* The two files tokenize a real text identically (the first 64 KB of TinyStories). */
    char *txt = NULL;
    size_t len = 0;
    CHECK(sk_file_read_all(sk_test_path("SK_DATA", "tinystories/tinystories_val.txt"), &txt,
                           &len) == SK_OK);
    if (txt) {
        if (len > 65536) len = 65536;
        while (len > 0 && ((unsigned char)txt[len] & 0xC0) == 0x80) len--; /* whole characters */
        int cap = (int)len + 8;
        int32_t *x = malloc(sizeof(int32_t) * (size_t)cap),
                *y = malloc(sizeof(int32_t) * (size_t)cap);
        int nx = sk_tokenizer_encode(tb, txt, len, true, false, x, cap);
        int ny = sk_tokenizer_encode(tg, txt, len, true, false, y, cap);
        CHECKF(nx > 1000 && ids_eq(x, nx, y, ny), "tinystories: %d vs %d tokens", nx, ny);
        /* Round trip through the detokenizer (BOS, then the leading space dropped). */
        sk_detok *d = sk_detok_new_tok(tg, true);
        char *back = malloc(len + 16);
        size_t k = 0;
        bool fits = true;
        for (int i = 0; i < ny && fits; i++) {
            const char *o;
            int m = sk_detok_push(d, y[i], &o);
            fits = k + (size_t)m <= len;
            if (fits) memcpy(back + k, o, (size_t)m), k += (size_t)m;
        }
        const char *o;
        int m = sk_detok_flush(d, &o);
        CHECKF(fits && m == 0 && k == len && memcmp(back, txt, len) == 0,
               "tinystories detok round trip (%zu of %zu bytes)", k, len);
        sk_detok_free(d);
        free(back);
        free(x);
        free(y);
        free(txt);
    }

    /* The published greedy output decodes back to itself after BOS. */
    CHECK(sk_file_read_all(sk_test_path("SK_DATA", "stories260K/expected_greedy_t0_256steps.txt"),
                           &txt, &len) == SK_OK);
    if (txt) {
        while (len > 0 && txt[len - 1] == '\n') len--;
        int cap = (int)len + 8;
        int32_t *x = malloc(sizeof(int32_t) * (size_t)cap);
        int nx = sk_tokenizer_encode(tb, txt, len, true, false, x, cap);
        CHECK(nx > 1 && x[0] == 1);
        sk_detok *d = sk_detok_new_tok(tb, true);
        char *back = calloc(1, len * 2 + 16);
        size_t k = 0;
        for (int i = 0; i < nx && k <= len; i++) {
            const char *o;
            int m = sk_detok_push(d, x[i], &o);
            memcpy(back + k, o, (size_t)m);
            k += (size_t)m;
        }
        CHECKF(k == len && memcmp(back, txt, len) == 0, "golden text round trip:\n%s", back);
        sk_detok_free(d);
        free(back);
        free(x);
        free(txt);
    }

    /* Continuing a printed prompt keeps the space; starting a text drops it. */
    n = enc(tg, "Once upon", true, false, a, 256);
    for (int start = 0; start < 2; start++) {
        sk_detok *d = sk_detok_new_tok(tg, start);
        char s[64] = "";
        for (int i = 1; i < n; i++) {
            const char *o;
            int m = sk_detok_push(d, a[i], &o);
            strncat(s, o, (size_t)m);
        }
        CHECKF(strcmp(s, start ? "Once upon" : " Once upon") == 0, "detok at_start=%d: '%s'", start,
               s);
        sk_detok_free(d);
    }
    /* Byte fallback (emoji, accents) and whitespace survive the round trip. */
    const char *odd = " x  y\n\n\tz \xF0\x9F\x98\x80 \xC3\xA9\xE4\xBD\xA0";
    n = enc(tg, odd, true, false, a, 256);
    sk_detok *d = sk_detok_new_tok(tg, true);
    char s[64] = "";
    for (int i = 0; i < n; i++) {
        const char *o;
        int m = sk_detok_push(d, a[i], &o);
        strncat(s, o, (size_t)m);
    }
    CHECKF(strcmp(s, odd) == 0, "byte fallback round trip: '%s'", s);
    sk_detok_free(d);
    CHECK(sk_tokenizer_is_eog(tg, 2) && !sk_tokenizer_is_eog(tg, 1) &&
          !sk_tokenizer_is_eog(tg, 300));
    fuzz(tg, true, "stories260K");

    sk_tokenizer_free(tb);
    sk_tokenizer_free(tg);
    sk_mf_free(&mb);
    sk_mf_free(&mg);
}

/* ---- SmolLM2 (GGUF, byte-level BPE, "smollm" pre-tokenizer) --------------------------------- */

/* Exact ids against Hugging Face tokenizers, from the recorded fixture. A missing or malformed
 * fixture is a failure. */
static void test_smollm2_fixture(const sk_tokenizer *t) {
    const char *path = sk_test_path("SK_FIXTURES", "smollm2_tokens.json");
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    CHECKF(j && json_is_array(j) && json_array_size(j) > 0, "%s: cannot read: %s", path,
           j ? "not a list" : je.text);
    if (!j) return;
    size_t i;
    json_t *it;
    json_array_foreach(j, i, it) {
        const char *text = json_string_value(json_object_get(it, "text"));
        json_t *ids = json_object_get(it, "ids");
        CHECKF(text && json_is_array(ids), "%s: entry %zu is malformed", path, i);
        if (!text || !json_is_array(ids)) continue;
        int nw = (int)json_array_size(ids);
        int32_t *want = malloc(sizeof(int32_t) * (size_t)(nw + 1));
        for (int k = 0; k < nw; k++)
            want[k] = (int32_t)json_integer_value(json_array_get(ids, (size_t)k));
        int cap = (int)strlen(text) + 8;
        int32_t *got = malloc(sizeof(int32_t) * (size_t)cap);
        /* HF's encode: added tokens are matched, no BOS (SmolLM2's add_bos_token is false). */
        int n = sk_tokenizer_encode(t, text, strlen(text), true, true, got, cap);
        CHECKF(ids_eq(got, n, want, nw), "HF ids differ for '%s'", text);
        if (!ids_eq(got, n, want, nw)) {
            print_ids("want", want, nw);
            print_ids("got ", got, n);
        }
        free(want);
        free(got);
    }
    json_decref(j);
}

static void test_smollm2(void) {
    const char *path = sk_test_env("SK_SMOLLM2");
    sk_model_file mf;
    sk_status st = sk_model_file_load(path, NULL, &mf);
    CHECKF(st == SK_OK, "load %s: %s", path, sk_last_error());
    if (st != SK_OK) return;
    sk_tokenizer *t = NULL;
    CHECKF(sk_tokenizer_new(&mf.vocab, mf.hp.n_vocab, &t) == SK_OK, "%s", sk_last_error());
    if (!t) return;

    test_smollm2_fixture(t);

    static const char *const texts[] = {
        "Hello, world! The quick brown fox.",
        "Caf\xC3\xA9 na\xC3\xAFve r\xC3\xA9sum\xC3\xA9 \xC3\x85ngstr\xC3\xB6m \xC3\xA9l\xC3\xA8ve",
        "\xE4\xBD\xA0\xE5\xA5\xBD\xEF\xBC\x8C\xE4\xB8\x96\xE7\x95\x8C\xEF\xBC\x81 "
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E",
        "emoji \xF0\x9F\x98\x80\xF0\x9F\x91\x8D\xF0\x9F\x8F\xBD\xF0\x9F\x87\xBA\xF0\x9F\x87\xB8 "
        "\xE2\x9D\xA4\xEF\xB8\x8F",
        "   runs   of    spaces\n\n\n\r\n\t\ttabs \t \n  ",
        "Numbers 12345 3.14159 1,000,000 2024-11-28 0x1F",
        "def f(x):\n    return {'a': [x ** 2 for x in range(10)]}  # comment\n",
        "I'm sure they'll say it's fine, don't you think? WE'LL SEE",
        "",
        " ",
        "\n",
    };
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        char name[32];
        snprintf(name, sizeof name, "smollm2 text %zu", i);
        check_roundtrip(t, texts[i], strlen(texts[i]), false, name);
    }
    /* Invalid UTF-8: no crash, no unknown or end-of-generation token, and every byte comes
     * back, except ill-formed bytes that the vocabulary has no token for, which read as U+FFFD
     * (like a UTF-8 decoder's replacement). */
    static const struct {
        const char *s;
        bool valid;
    } parts[] = {{"ok ", true},   {"\xFF", false}, {"\xFE", false}, {"\xC3", false},
                 {"( ", true},    {"\xE4", false}, {"\xBD", false}, {" \xF0\x9F\x98\x80 ", true},
                 {"\x80", false}, {"\xC0", false}, {"\xAF", false}, {"end", true},
                 {"\xED", false}, {"\xA0", false}};
    char bad[64] = "", want[128] = "";
    for (size_t i = 0; i < sizeof parts / sizeof *parts; i++) {
        strcat(bad, parts[i].s);
        bool spelled = true;
        if (!parts[i].valid) { /* is the GPT-2 character of this byte a token? */
            char ch[4];
            gpt2_char((unsigned char)parts[i].s[0], ch);
            spelled = false;
            for (int k = 0; k < mf.vocab.n_tokens && !spelled; k++)
                spelled = strcmp(mf.vocab.tokens[k], ch) == 0;
        }
        strcat(want, spelled ? parts[i].s : "\xEF\xBF\xBD");
    }
    for (int sp = 0; sp < 2; sp++) {
        int32_t ids[64];
        int n = enc(t, bad, false, sp, ids, 64);
        bool clean = n > 0 && n <= 64;
        for (int i = 0; clean && i < n; i++)
            clean = ids[i] != mf.vocab.unk && !sk_tokenizer_is_eog(t, ids[i]);
        CHECKF(clean, "invalid UTF-8 gave %d tokens, or an unknown / end-of-generation token", n);
        if (n > 0 && n <= 64) {
            size_t len;
            char *back = decode_all(t, ids, n, &len);
            CHECKF(strcmp(back, want) == 0, "invalid UTF-8 round trip");
            free(back);
        }
    }

    /* Special tokens. */
    int32_t a[64];
    const char *chat = "<|im_start|>user\nhi<|im_end|>";
    int n = enc(t, chat, false, true, a, 64);
    CHECKF(n >= 4 && a[0] == 1 && a[n - 1] == 2, "special tokens not parsed");
    n = enc(t, chat, false, false, a, 64);
    bool none = n > 4;
    for (int i = 0; i < n; i++) none &= a[i] != 1 && a[i] != 2;
    CHECKF(none, "special tokens parsed without parse_special");
    check_roundtrip(t, chat, strlen(chat), false, "smollm2 special as text");
    check_roundtrip(t, chat, strlen(chat), true, "smollm2 special");
    CHECK(sk_tokenizer_is_eog(t, 2) && sk_tokenizer_is_eog(t, 0) && !sk_tokenizer_is_eog(t, 1));
    CHECK(sk_tokenizer_bos(t) == 1 && sk_tokenizer_eos(t) == 2);
    fuzz(t, false, "SmolLM2");
    /* add_bos_token is false in this GGUF: no BOS even when asked. */
    n = enc(t, "hi", true, false, a, 64);
    CHECK(n >= 1 && a[0] != 1);

    /* Streaming detokenizer: multi-byte characters split across tokens come out whole. */
    const char *u =
        "h\xC3\xA9llo \xE4\xBD\xA0\xE5\xA5\xBD \xF0\x9F\x98\x80\xF0\x9F\x87\xBA\xF0\x9F\x87\xB8 "
        "\xE6\x97\xA5\xE6\x9C\xAC\xE8\xAA\x9E ok";
    n = enc(t, u, false, false, a, 64);
    sk_detok *d = sk_detok_new_tok(t, true);
    char s[256] = "";
    int held = 0;
    bool whole = true;
    for (int i = 0; i < n; i++) {
        const char *o;
        int m = sk_detok_push(d, a[i], &o);
        whole &= utf8_ok(o, (size_t)m);
        if (m == 0 && sk_tokenizer_token_bytes(t, a[i], NULL, 0) > 0) held++;
        strncat(s, o, (size_t)m);
    }
    const char *o;
    CHECK(sk_detok_flush(d, &o) == 0);
    CHECKF(whole, "the detokenizer emitted a partial character");
    CHECKF(held > 0, "no token ended inside a character: the test does not exercise splitting");
    CHECKF(strcmp(s, u) == 0, "detok: '%s'", s);
    /* Ill-formed bytes become U+FFFD as soon as they are known to be ill-formed. */
    int32_t t_ff, t_e4, t_a; /* a lone continuation byte, a lead byte, a letter */
    CHECK(sk_tokenizer_encode(t, "\x80", 1, false, false, &t_ff, 1) == 1);
    CHECK(sk_tokenizer_encode(t, "\xE4", 1, false, false, &t_e4, 1) == 1);
    CHECK(sk_tokenizer_encode(t, "a", 1, false, false, &t_a, 1) == 1);
    sk_detok_reset(d, true);
    int m = sk_detok_push(d, t_ff, &o);
    CHECK(m == 3 && memcmp(o, "\xEF\xBF\xBD", 3) == 0);
    CHECK(sk_detok_push(d, t_e4, &o) == 0);
    m = sk_detok_push(d, t_a, &o);
    CHECK(m == 4 && memcmp(o,
                           "\xEF\xBF\xBD"
                           "a",
                           4) == 0);
    CHECK(sk_detok_push(d, t_e4, &o) == 0);
    m = sk_detok_flush(d, &o);
    CHECK(m == 3 && memcmp(o, "\xEF\xBF\xBD", 3) == 0);
    sk_detok_free(d);

    /* Speed: WikiText-2 test (1.3 MB) in well under a few seconds, even with sanitizers. */
    char *txt = NULL;
    size_t len = 0;
    CHECK(sk_file_read_all(sk_test_path("SK_DATA", "wikitext-2/wiki.test.raw"), &txt, &len) ==
          SK_OK);
    if (txt) {
        int cap = (int)len + 8;
        int32_t *ids = malloc(sizeof(int32_t) * (size_t)cap);
        double t0 = sk_time();
        int nw = sk_tokenizer_encode(t, txt, len, false, false, ids, cap);
        double dt = sk_time() - t0;
        printf("wikitext-2 test: %zu bytes -> %d tokens in %.3f s\n", len, nw, dt);
        CHECKF(nw > 200000 && nw < 600000, "wikitext: %d tokens", nw);
        CHECKF(dt < 5.0, "wikitext took %.2f s", dt);
        if (nw > 0 && nw <= cap) {
            size_t dl;
            char *back = decode_all(t, ids, nw, &dl);
            CHECK(dl == len && memcmp(back, txt, len) == 0);
            free(back);
        }
        /* A 10 KB text: milliseconds. */
        t0 = sk_time();
        nw = sk_tokenizer_encode(t, txt + 100000, 10240, false, false, ids, cap);
        dt = sk_time() - t0;
        CHECKF(nw > 0 && dt < 0.5, "10 KB took %.3f s", dt);
        free(ids);
        free(txt);
    }
    sk_tokenizer_free(t);
    sk_mf_free(&mf);
}

int main(void) {
    test_spm_toy();
    test_bpe_toy();
    test_stories();
    test_smollm2();
    return sk_test_done("test_tokenizer");
}
