/* KV page manager: allocation, sharing, prefix caching with eviction, checked against a plain
 * model of what each page holds, over random operation sequences. */
#include "engine/kv_pages.h"
#include "testlib.h"

#define NP 24
#define PS 4

static unsigned long long rng = 88172645463325252ull;
static unsigned rnd(unsigned n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

int main(void) {
    sk_kv_pages *p = NULL;
    CHECK(sk_kv_pages_new(0, 16, &p) == SK_ERR_ARG);
    CHECK(sk_kv_pages_new(NP, PS, &p) == SK_OK);
    CHECK(sk_kv_pages_total(p) == NP && sk_kv_pages_available(p) == NP && sk_kv_pages_in_use(p) == 0);

    /* Exhaustion is all-or-nothing and names the problem. */
    int32_t ids[NP + 1];
    CHECK(sk_kv_pages_alloc(p, NP + 1, ids) == SK_ERR_CONTEXT);
    CHECK(strstr(sk_last_error(), "KV cache full") != NULL);
    CHECK(sk_kv_pages_available(p) == NP);
    CHECK(sk_kv_pages_alloc(p, NP, ids) == SK_OK);
    bool seen[NP] = {0};
    for (int i = 0; i < NP; i++) {
        CHECK(ids[i] >= 0 && ids[i] < NP && !seen[ids[i]]);
        if (ids[i] >= 0 && ids[i] < NP) seen[ids[i]] = true;
    }
    CHECK(sk_kv_pages_available(p) == 0 && sk_kv_pages_in_use(p) == NP);
    CHECK(sk_kv_pages_alloc(p, 1, ids + NP) == SK_ERR_CONTEXT);
    for (int i = 0; i < NP; i++) sk_kv_pages_release(p, ids[i]);
    CHECK(sk_kv_pages_available(p) == NP && sk_kv_pages_in_use(p) == 0);

    /* Prefix caching: a two-page prefix published by one sequence is found by the next. */
    int32_t toks[3 * PS];
    for (int i = 0; i < 3 * PS; i++) toks[i] = 100 + i;
    int32_t a[3];
    CHECK(sk_kv_pages_alloc(p, 3, a) == SK_OK);
    uint64_t h0 = sk_kv_pages_publish(p, a[0], 0, toks);
    uint64_t h1 = sk_kv_pages_publish(p, a[1], h0, toks + PS);
    uint64_t hh;
    CHECK(sk_kv_pages_lookup(p, 0, toks, &hh) == a[0] && hh == h0);
    CHECK(sk_kv_pages_lookup(p, h0, toks + PS, &hh) == a[1] && hh == h1);
    CHECK(sk_kv_pages_lookup(p, h1, toks + 2 * PS, NULL) == -1); /* never published */
    int32_t other[PS] = {1, 2, 3, 4};
    CHECK(sk_kv_pages_lookup(p, 0, other, NULL) == -1);
    CHECK(sk_kv_pages_lookup(p, h1, toks, NULL) == -1); /* same tokens, different prefix */
    /* Both sequences release: the published pages stay cached and can be revived. */
    for (int i = 0; i < 3; i++) sk_kv_pages_release(p, a[i]);
    sk_kv_pages_release(p, a[0]);
    sk_kv_pages_release(p, a[1]);
    CHECK(sk_kv_pages_in_use(p) == 0 && sk_kv_pages_available(p) == NP);
    CHECK(sk_kv_pages_lookup(p, 0, toks, NULL) == a[0]);
    CHECK(sk_kv_pages_in_use(p) == 1);
    sk_kv_pages_release(p, a[0]);
    /* Filling the pool evicts cached pages (the older first): then lookups miss. */
    CHECK(sk_kv_pages_alloc(p, NP, ids) == SK_OK);
    CHECK(sk_kv_pages_lookup(p, 0, toks, NULL) == -1);
    for (int i = 0; i < NP; i++) sk_kv_pages_release(p, ids[i]);
    CHECK(sk_kv_pages_in_use(p) == 0 && sk_kv_pages_available(p) == NP);

    /* Random operations against a model of the reference counts: allocation never hands out a
     * page in use, lookups share pages, and the counts of in-use and available pages agree with
     * the model after every step. */
    int refs[NP] = {0};
    int32_t held[4096];
    int n_held = 0;
    for (int step = 0; step < 20000; step++) {
        unsigned op = rnd(4);
        if (op == 0) {
            int n = (int)rnd(4) + 1;
            int32_t got[4];
            int before = sk_kv_pages_available(p);
            sk_status s = sk_kv_pages_alloc(p, n, got);
            CHECK((s == SK_OK) == (n <= before));
            if (s == SK_OK)
                for (int i = 0; i < n && n_held < 4096; i++) {
                    CHECK(refs[got[i]] == 0);
                    refs[got[i]]++;
                    held[n_held++] = got[i];
                }
        } else if (op == 1 && n_held > 0) {
            int k = (int)rnd((unsigned)n_held);
            sk_kv_pages_release(p, held[k]);
            refs[held[k]]--;
            held[k] = held[--n_held];
        } else if (op == 2 && n_held > 0) {
            int32_t t[PS];
            for (int i = 0; i < PS; i++) t[i] = (int32_t)rnd(3);
            sk_kv_pages_publish(p, held[rnd((unsigned)n_held)], rnd(2), t);
        } else if (op == 3 && n_held < 4096) {
            int32_t t[PS];
            for (int i = 0; i < PS; i++) t[i] = (int32_t)rnd(3);
            uint64_t parent = rnd(2);
            int32_t id = sk_kv_pages_lookup(p, parent, t, NULL);
            if (id >= 0) {
                CHECK(id < NP);
                refs[id]++;
                held[n_held++] = id;
            }
        }
        int in_use = 0;
        for (int i = 0; i < NP; i++) in_use += refs[i] > 0;
        if (sk_kv_pages_in_use(p) != in_use) {
            CHECKF(0, "step %d: in_use %d, model %d", step, sk_kv_pages_in_use(p), in_use);
            break;
        }
        CHECK(sk_kv_pages_available(p) == NP - in_use);
    }
    while (n_held > 0) sk_kv_pages_release(p, held[--n_held]);
    CHECK(sk_kv_pages_in_use(p) == 0 && sk_kv_pages_available(p) == NP);
    sk_kv_pages_free(p);
    return sk_test_done("test_kv_pages");
}
