/* The sampler: greedy, seeds, top-k/top-p/min-p, repetition penalty, and empirical frequencies
 * against the softmax computed here. */
#include "saker/saker.h"
#include "testlib.h"

#include <stdint.h>

#define V 1000

static unsigned long long g_rng = 12345;

static void random_logits(float *l, int n) { sk_test_rand(l, n, -5.0f, 5.0f, &g_rng); }

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

static int32_t sample_copy(sk_sampler *s, const float *logits, int n) {
    float *tmp = malloc(sizeof(float) * (size_t)n);
    memcpy(tmp, logits, sizeof(float) * (size_t)n);
    int32_t t = sk_sampler_sample(s, tmp);
    free(tmp);
    return t;
}

static void test_defaults(void) {
    sk_sampler_params p;
    sk_sampler_params_default(&p);
    CHECK(fabsf(p.temp - 0.8f) < 1e-6f);
    CHECK(p.top_k == 40);
    CHECK(fabsf(p.top_p - 0.95f) < 1e-6f);
    CHECK(fabsf(p.min_p - 0.05f) < 1e-6f);
    CHECK(p.repeat_penalty == 1.0f);
    CHECK(p.repeat_last_n == 64);
    CHECK(p.seed == 0);
    CHECK(sk_sampler_new(&p, 0) == NULL);
}

static void test_greedy(void) {
    sk_sampler_params p;
    sk_sampler_params_default(&p);
    p.temp = 0.0f;
    sk_sampler *s = sk_sampler_new(&p, V);
    float l[V];
    for (int rep = 0; rep < 20; rep++) {
        random_logits(l, V);
        CHECK(sample_copy(s, l, V) == argmax(l, V));
    }
    /* ties go to the lowest id */
    for (int i = 0; i < V; i++) l[i] = -1.0f;
    l[700] = 3.0f, l[12] = 3.0f, l[999] = 3.0f;
    CHECK(sample_copy(s, l, V) == 12);
    sk_sampler_free(s);
}

static void test_seed(void) {
    sk_sampler_params p;
    sk_sampler_params_default(&p);
    p.temp = 1.5f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    float l[V];
    random_logits(l, V);
    int32_t a[200], b[200], c[200];
    p.seed = 42;
    sk_sampler *s1 = sk_sampler_new(&p, V), *s2 = sk_sampler_new(&p, V);
    p.seed = 43;
    sk_sampler *s3 = sk_sampler_new(&p, V);
    int same13 = 0;
    for (int i = 0; i < 200; i++) {
        a[i] = sample_copy(s1, l, V);
        b[i] = sample_copy(s2, l, V);
        c[i] = sample_copy(s3, l, V);
        same13 += a[i] == c[i];
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECKF(same13 < 100, "seeds 42 and 43 agree on %d of 200 draws", same13);
    sk_sampler_free(s1);
    sk_sampler_free(s2);
    sk_sampler_free(s3);
}

static void test_topk1_and_tiny_topp(void) {
    sk_sampler_params p;
    sk_sampler_params_default(&p);
    p.temp = 5.0f; /* flat: anything but the filters would scatter the draws */
    p.top_k = 1;
    p.min_p = 0.0f;
    p.top_p = 1.0f;
    p.seed = 7;
    sk_sampler *k1 = sk_sampler_new(&p, V);
    p.top_k = 0;
    p.top_p = 1e-6f;
    sk_sampler *tp = sk_sampler_new(&p, V);
    float l[V];
    for (int rep = 0; rep < 50; rep++) {
        random_logits(l, V);
        int best = argmax(l, V);
        CHECK(sample_copy(k1, l, V) == best);
        CHECK(sample_copy(tp, l, V) == best);
    }
    sk_sampler_free(k1);
    sk_sampler_free(tp);
}

/* top-k = 3 at a high temperature: every draw is one of the 3 best logits, and each appears. */
static void test_topk3(void) {
    sk_sampler_params p;
    sk_sampler_params_default(&p);
    p.temp = 50.0f;
    p.top_k = 3;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 5;
    sk_sampler *s = sk_sampler_new(&p, V);
    float l[V];
    random_logits(l, V);
    int top[3];
    for (int j = 0; j < 3; j++) {
        int b = -1;
        for (int i = 0; i < V; i++)
            if ((j < 1 || i != top[0]) && (j < 2 || i != top[1]) && (b < 0 || l[i] > l[b])) b = i;
        top[j] = b;
    }
    int count[3] = {0}, outside = 0;
    for (int i = 0; i < 600; i++) {
        int32_t t = sample_copy(s, l, V);
        int j = t == top[0] ? 0 : t == top[1] ? 1 : t == top[2] ? 2 : -1;
        if (j < 0)
            outside++;
        else
            count[j]++;
    }
    CHECKF(outside == 0, "top-k 3 drew %d tokens outside the top 3", outside);
    CHECKF(count[0] > 100 && count[1] > 100 && count[2] > 100, "top-3 counts %d %d %d", count[0],
           count[1], count[2]);
    sk_sampler_free(s);
}

/* min-p: with probabilities {0.5, 0.3, 0.15, 0.05} (temp 1) and min_p 0.2, the threshold is 0.1:
 * the last token must never be drawn; the others must all appear. */
static void test_min_p(void) {
    sk_sampler_params p;
    sk_sampler_params_default(&p);
    p.temp = 1.0f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.2f;
    p.seed = 99;
    const float probs[4] = {0.5f, 0.3f, 0.15f, 0.05f};
    float l[4];
    for (int i = 0; i < 4; i++) l[i] = logf(probs[i]);
    sk_sampler *s = sk_sampler_new(&p, 4);
    int count[4] = {0};
    for (int i = 0; i < 4000; i++) count[sample_copy(s, l, 4)]++;
    CHECKF(count[3] == 0, "min-p let token 3 through %d times", count[3]);
    CHECK(count[0] > 0 && count[1] > 0 && count[2] > 0);
    /* renormalised over {0,1,2}: 0.5/0.95 */
    CHECKF(fabs(count[0] / 4000.0 - 0.5 / 0.95) < 0.03, "min-p freq of token 0: %d", count[0]);
    sk_sampler_free(s);
}

/* Empirical frequencies of a 4-token distribution at temperature 0.7 against the softmax. */
static void test_frequencies(void) {
    sk_sampler_params p;
    sk_sampler_params_default(&p);
    p.temp = 0.7f;
    p.top_k = 0;
    p.top_p = 1.0f;
    p.min_p = 0.0f;
    p.seed = 2024;
    const float l[4] = {1.3f, 0.2f, -0.5f, 0.6f};
    double pr[4], sum = 0;
    for (int i = 0; i < 4; i++) sum += pr[i] = exp(l[i] / 0.7);
    for (int i = 0; i < 4; i++) pr[i] /= sum;
    sk_sampler *s = sk_sampler_new(&p, 4);
    const int n = 20000;
    int count[4] = {0};
    for (int i = 0; i < n; i++) count[sample_copy(s, l, 4)]++;
    for (int i = 0; i < 4; i++) {
        double f = (double)count[i] / n, sd = sqrt(pr[i] * (1 - pr[i]) / n);
        CHECKF(fabs(f - pr[i]) < 5 * sd, "token %d: frequency %.4f, expected %.4f", i, f, pr[i]);
    }
    /* top-p 0.6 on sorted probabilities: keeps the smallest prefix reaching 0.6 */
    double sorted[4] = {pr[0], pr[3], pr[1], pr[2]}; /* l order: 1.3, 0.6, 0.2, -0.5 */
    int keep = 0;
    double cum = 0;
    while (cum < 0.6) cum += sorted[keep++];
    sk_sampler_free(s);
    p.top_p = 0.6f;
    s = sk_sampler_new(&p, 4);
    memset(count, 0, sizeof count);
    for (int i = 0; i < n; i++) count[sample_copy(s, l, 4)]++;
    const int order[4] = {0, 3, 1, 2};
    for (int r = 0; r < 4; r++) {
        int id = order[r];
        if (r >= keep) {
            CHECKF(count[id] == 0, "top-p kept token %d (rank %d)", id, r);
        } else {
            double pe = sorted[r] / cum, f = (double)count[id] / n;
            CHECKF(fabs(f - pe) < 5 * sqrt(pe * (1 - pe) / n) + 1e-9,
                   "top-p token %d: frequency %.4f, expected %.4f", id, f, pe);
        }
    }
    sk_sampler_free(s);
}

static void test_penalty(void) {
    sk_sampler_params p;
    sk_sampler_params_default(&p);
    p.temp = 0.0f;
    p.repeat_penalty = 2.0f;
    p.repeat_last_n = 3;
    float l[5] = {3.0f, 2.0f, 1.0f, -1.0f, -0.6f};
    sk_sampler *s = sk_sampler_new(&p, 5);
    CHECK(sample_copy(s, l, 5) == 0);
    sk_sampler_accept(s, 0); /* 3.0 -> 1.5 < 2.0 */
    CHECK(sample_copy(s, l, 5) == 1);
    float t[5];
    memcpy(t, l, sizeof l);
    sk_sampler_sample(s, t);
    CHECK(fabsf(t[0] - 1.5f) < 1e-6f && t[1] == 2.0f);
    sk_sampler_accept(s, 1);
    sk_sampler_accept(s, 4); /* negative logits are multiplied: -0.6 -> -1.2 */
    memcpy(t, l, sizeof l); /* {1.5, 1, 1, -1, -1.2}: token 0 is the best again */
    CHECK(sk_sampler_sample(s, t) == 0);
    CHECK(fabsf(t[0] - 1.5f) < 1e-6f && fabsf(t[1] - 1.0f) < 1e-6f && t[2] == 1.0f);
    CHECK(fabsf(t[4] + 1.2f) < 1e-6f && t[3] == -1.0f);
    /* repeated occurrences penalise once */
    sk_sampler_accept(s, 4);
    sk_sampler_accept(s, 4);
    memcpy(t, l, sizeof l);
    sk_sampler_sample(s, t);
    CHECK(fabsf(t[4] + 1.2f) < 1e-6f);
    /* the window is the last 3: token 0 has left it */
    CHECK(t[0] == 3.0f);
    CHECK(sample_copy(s, l, 5) == 0);
    for (int i = 0; i < 300; i++) sk_sampler_accept(s, i % 5);
    memcpy(t, l, sizeof l); /* the window is now {297, 298, 299} % 5 = {2, 3, 4} */
    sk_sampler_sample(s, t);
    CHECK(t[0] == 3.0f && t[1] == 2.0f && fabsf(t[2] - 0.5f) < 1e-6f && fabsf(t[3] + 2.0f) < 1e-6f);
    sk_sampler_free(s);

    /* penalty 1 changes nothing */
    p.repeat_penalty = 1.0f;
    s = sk_sampler_new(&p, 5);
    sk_sampler_accept(s, 0);
    memcpy(t, l, sizeof l);
    CHECK(sk_sampler_sample(s, t) == 0 && t[0] == 3.0f);
    sk_sampler_free(s);
}

int main(void) {
    test_defaults();
    test_greedy();
    test_seed();
    test_topk1_and_tiny_topp();
    test_topk3();
    test_min_p();
    test_frequencies();
    test_penalty();
    return sk_test_done("test_sampler");
}
