/* Hash maps, vectors and UTF-8 helpers for the tokenizers (tok_internal.h). */
#include "tokenizer/tok_internal.h"

#include <string.h>

/* ---- string map ----------------------------------------------------------------------------- */

uint32_t sk_strmap_hash(const char *s, size_t len) {
    /* FNV-1a, then a final avalanche so that the low bits used for the slot index mix well. */
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++) {
        h ^= (uint8_t)s[i];
        h *= 16777619u;
    }
    h ^= h >> 16;
    h *= 0x85ebca6bu;
    h ^= h >> 13;
    return h;
}

static void strmap_rehash(sk_strmap *m, uint32_t cap) {
    sk_strmap_slot *old = m->slots;
    uint32_t ocap = m->cap;
    m->slots = sk_xcalloc(cap, sizeof *m->slots);
    m->cap = cap;
    for (uint32_t i = 0; i < ocap; i++) {
        if (!old[i].key) continue;
        uint32_t j = old[i].hash & (cap - 1);
        while (m->slots[j].key) j = (j + 1) & (cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

void sk_strmap_reserve(sk_strmap *m, uint32_t expected) {
    uint32_t cap = 16;
    while (cap < expected * 2u && cap < (1u << 30)) cap *= 2;
    if (cap > m->cap) strmap_rehash(m, cap);
}

void sk_strmap_free(sk_strmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

void sk_strmap_clear(sk_strmap *m) {
    if (m->slots) memset(m->slots, 0, sizeof *m->slots * m->cap);
    m->n = 0;
}

void sk_strmap_put(sk_strmap *m, const char *key, size_t len, int32_t val) {
    SK_ASSERT(key && len <= UINT32_MAX);
    if ((m->n + 1) * 2 > m->cap) strmap_rehash(m, m->cap ? m->cap * 2 : 16);
    uint32_t h = sk_strmap_hash(key, len);
    uint32_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        sk_strmap_slot *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) {
            s->val = val;
            return;
        }
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (sk_strmap_slot){key, (uint32_t)len, h, val};
    m->n++;
}

int32_t sk_strmap_get(const sk_strmap *m, const char *key, size_t len, int32_t missing) {
    if (!m->cap) return missing;
    uint32_t h = sk_strmap_hash(key, len);
    uint32_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        const sk_strmap_slot *s = &m->slots[j];
        if (s->hash == h && s->len == len && memcmp(s->key, key, len) == 0) return s->val;
        j = (j + 1) & (m->cap - 1);
    }
    return missing;
}

/* ---- pair map ------------------------------------------------------------------------------- */

static uint32_t pair_hash(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return (uint32_t)k;
}

static void pairmap_rehash(sk_pairmap *m, uint32_t cap) {
    sk_pairmap_slot *old = m->slots;
    uint32_t ocap = m->cap;
    m->slots = sk_xmalloc(sizeof *m->slots * cap);
    for (uint32_t i = 0; i < cap; i++) m->slots[i].key = UINT64_MAX;
    m->cap = cap;
    for (uint32_t i = 0; i < ocap; i++) {
        if (old[i].key == UINT64_MAX) continue;
        uint32_t j = pair_hash(old[i].key) & (cap - 1);
        while (m->slots[j].key != UINT64_MAX) j = (j + 1) & (cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

void sk_pairmap_reserve(sk_pairmap *m, uint32_t expected) {
    uint32_t cap = 16;
    while (cap < expected * 2u && cap < (1u << 30)) cap *= 2;
    if (cap > m->cap) pairmap_rehash(m, cap);
}

void sk_pairmap_free(sk_pairmap *m) {
    free(m->slots);
    memset(m, 0, sizeof *m);
}

void sk_pairmap_put(sk_pairmap *m, int32_t left, int32_t right, int32_t rank, int32_t id) {
    if ((m->n + 1) * 2 > m->cap) pairmap_rehash(m, m->cap ? m->cap * 2 : 16);
    uint64_t k = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t j = pair_hash(k) & (m->cap - 1);
    while (m->slots[j].key != UINT64_MAX) {
        if (m->slots[j].key == k) return;
        j = (j + 1) & (m->cap - 1);
    }
    m->slots[j] = (sk_pairmap_slot){k, rank, id};
    m->n++;
}

const sk_pairmap_slot *sk_pairmap_get(const sk_pairmap *m, int32_t left, int32_t right) {
    if (!m->cap) return NULL;
    uint64_t k = ((uint64_t)(uint32_t)left << 32) | (uint32_t)right;
    uint32_t j = pair_hash(k) & (m->cap - 1);
    while (m->slots[j].key != UINT64_MAX) {
        if (m->slots[j].key == k) return &m->slots[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

/* ---- vectors -------------------------------------------------------------------------------- */

void sk_ivec_push(sk_ivec *a, int32_t x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? a->cap * 2 : 64;
        a->v = sk_xrealloc(a->v, sizeof *a->v * a->cap);
    }
    a->v[a->n++] = x;
}

void sk_ivec_free(sk_ivec *a) {
    free(a->v);
    memset(a, 0, sizeof *a);
}

/* ---- UTF-8 ---------------------------------------------------------------------------------- */

/* Expected length for a lead byte (0: not a lead byte) and the allowed range of the second
 * byte (Unicode Table 3-7, well-formed UTF-8 byte sequences). */
static int lead_info(uint8_t b, uint8_t *lo, uint8_t *hi) {
    *lo = 0x80;
    *hi = 0xBF;
    if (b < 0x80) return 1;
    if (b < 0xC2) return 0;
    if (b < 0xE0) return 2;
    if (b < 0xF0) {
        if (b == 0xE0) *lo = 0xA0;
        if (b == 0xED) *hi = 0x9F;
        return 3;
    }
    if (b < 0xF5) {
        if (b == 0xF0) *lo = 0x90;
        if (b == 0xF4) *hi = 0x8F;
        return 4;
    }
    return 0;
}

int sk_utf8_seq(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t lo, hi;
    int L = lead_info(s[0], &lo, &hi);
    if (L == 0 || (size_t)L > n) return 0;
    if (L == 1) {
        *cp = s[0];
        return 1;
    }
    if (s[1] < lo || s[1] > hi) return 0;
    for (int i = 2; i < L; i++)
        if (s[i] < 0x80 || s[i] > 0xBF) return 0;
    uint32_t c = s[0] & (0x7F >> L);
    for (int i = 1; i < L; i++) c = (c << 6) | (s[i] & 0x3F);
    *cp = c;
    return L;
}

int sk_utf8_bad_len(const uint8_t *s, size_t n) {
    if (n == 0) return 0;
    uint8_t lo, hi;
    int L = lead_info(s[0], &lo, &hi);
    if (L == 0) return 1;
    for (int i = 1; i < L; i++) {
        if ((size_t)i >= n) return 0; /* a proper prefix so far */
        uint8_t a = i == 1 ? lo : 0x80, b = i == 1 ? hi : 0xBF;
        if (s[i] < a || s[i] > b) return i;
    }
    return 0; /* well-formed */
}

int sk_utf8_put(uint32_t cp, char *out) {
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}
