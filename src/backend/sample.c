/* The sampling reference (backend.h sk_sample_core): the host sampler's procedure after its
 * repetition penalty, as a pure function of the logits, the parameters and one uniform draw, so
 * that a device implementation can be checked against it draw for draw. */
#include "backend/backend.h"

#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

/* Candidate order: larger logit first, then lower id (deterministic under ties). */
static inline bool before(const sk_sample_cand *a, const sk_sample_cand *b) {
    return a->v > b->v || (a->v == b->v && a->id < b->id);
}

/* Sift-down in a heap whose root is the worst kept candidate. */
static void heap_down(sk_sample_cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && before(&h[w], &h[l])) w = l;
        if (r < n && before(&h[w], &h[r])) w = r;
        if (w == i) return;
        sk_sample_cand t = h[i];
        h[i] = h[w];
        h[w] = t;
        i = w;
    }
}

static int cand_cmp(const void *a, const void *b) {
    if (before(a, b)) return -1;
    if (before(b, a)) return 1;
    return 0;
}

int32_t sk_sample_core(const float *logits, int V, const sk_sample_row *r, sk_sample_cand *c) {
    /* top-k: keep the k best in a heap rooted at the worst of them, then sort best first */
    int n = V;
    const int k = r->top_k;
    if (k > 0 && k < V) {
        n = k;
        for (int32_t i = 0; i < k; i++) c[i] = (sk_sample_cand){logits[i], i};
        for (int i = k / 2 - 1; i >= 0; i--) heap_down(c, k, i);
        for (int32_t i = k; i < V; i++) {
            const sk_sample_cand x = {logits[i], i};
            if (before(&x, &c[0])) {
                c[0] = x;
                heap_down(c, k, 0);
            }
        }
    } else {
        for (int32_t i = 0; i < V; i++) c[i] = (sk_sample_cand){logits[i], i};
    }
    qsort(c, (size_t)n, sizeof(sk_sample_cand), cand_cmp);

    /* softmax with temperature (c[0] holds the largest logit) */
    const double inv_t = 1.0 / (double)r->temp, max = c[0].v;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        c[i].v = (float)exp(((double)c[i].v - max) * inv_t);
        sum += c[i].v;
    }
    for (int i = 0; i < n; i++) c[i].v = (float)(c[i].v / sum);

    /* top-p: the smallest prefix whose mass reaches p */
    if (r->top_p < 1.0f) {
        double cum = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += c[i].v;
            if (cum >= (double)r->top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    /* min-p: relative to the top probability (unchanged by renormalisation) */
    if (r->min_p > 0.0f) {
        const float thr = r->min_p * c[0].v;
        int keep = 1;
        while (keep < n && c[keep].v >= thr) keep++;
        n = keep;
    }

    double total = 0.0;
    for (int i = 0; i < n; i++) total += c[i].v;
    const double x = r->u * total;
    double cum = 0.0;
    int32_t pick = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        cum += c[i].v;
        if (x < cum) {
            pick = c[i].id;
            break;
        }
    }
    return pick;
}
