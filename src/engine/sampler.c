/* Token sampler (saker.h sk_sampler_*).
 *
 * Order: repetition penalty over the last repeat_last_n accepted tokens (llama.cpp semantics: a
 * penalised token's logit is divided by the penalty when positive, multiplied when negative;
 * once per distinct token). Then temp <= 0: argmax, ties to the lowest id. Otherwise: top-k on
 * the logits, softmax with temperature, top-p (the smallest prefix of the sorted candidates
 * whose probability reaches p), min-p (drop candidates below min_p * the top probability),
 * renormalise, and draw with xoshiro256** seeded through splitmix64 (same seed, same draws). */
#include "core/status.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

typedef struct cand {
    float v; /* logit, then probability */
    int32_t id;
} cand;

struct sk_sampler {
    sk_sampler_params p;
    int n_vocab;
    uint64_t rng[4];
    int32_t *hist; /* accepted tokens, the newest last; trimmed to the last repeat_last_n */
    int n_hist, cap_hist;
    uint8_t *seen; /* [n_vocab] scratch for the penalty: 1 once a token is penalised */
    cand *cands; /* [n_vocab] candidates: logits, then probabilities */
};

void sk_sampler_params_default(sk_sampler_params *p) {
    p->temp = 0.8f;
    p->top_k = 40;
    p->top_p = 0.95f;
    p->min_p = 0.05f;
    p->repeat_penalty = 1.0f;
    p->repeat_last_n = 64;
    p->seed = 0;
}

static uint64_t splitmix64(uint64_t *x) {
    uint64_t z = (*x += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

static inline uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static uint64_t xoshiro_next(uint64_t s[4]) {
    const uint64_t result = rotl(s[1] * 5, 7) * 9;
    const uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4]) { return (double)(xoshiro_next(s) >> 11) * 0x1.0p-53; }

sk_sampler *sk_sampler_new(const sk_sampler_params *p, int n_vocab) {
    if (n_vocab <= 0) {
        sk_fail(SK_ERR_ARG, "sk_sampler_new: n_vocab %d must be positive", n_vocab);
        return NULL;
    }
    sk_sampler *s = sk_xcalloc(1, sizeof *s);
    if (p)
        s->p = *p;
    else
        sk_sampler_params_default(&s->p);
    s->n_vocab = n_vocab;
    uint64_t x = s->p.seed;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    s->seen = sk_xcalloc((size_t)n_vocab, 1);
    s->cands = sk_xmalloc(sizeof(cand) * (size_t)n_vocab);
    return s;
}

void sk_sampler_free(sk_sampler *s) {
    if (!s) return;
    free(s->hist);
    free(s->seen);
    free(s->cands);
    free(s);
}

void sk_sampler_accept(sk_sampler *s, int32_t token) {
    const int keep = s->p.repeat_last_n;
    if (keep <= 0) return;
    if (s->n_hist == s->cap_hist) {
        if (s->n_hist >= keep) {
            /* drop all but the last keep-1, making room for this one */
            memmove(s->hist, s->hist + s->n_hist - (keep - 1),
                    sizeof(int32_t) * (size_t)(keep - 1));
            s->n_hist = keep - 1;
        } else {
            s->cap_hist = s->cap_hist ? 2 * s->cap_hist : 64;
            if (s->cap_hist > 2 * keep) s->cap_hist = 2 * keep;
            if (s->cap_hist < s->n_hist + 1) s->cap_hist = s->n_hist + 1;
            s->hist = sk_xrealloc(s->hist, sizeof(int32_t) * (size_t)s->cap_hist);
        }
    }
    s->hist[s->n_hist++] = token;
}

static void apply_penalty(sk_sampler *s, float *logits) {
    const float pen = s->p.repeat_penalty;
    const int n = s->n_hist < s->p.repeat_last_n ? s->n_hist : s->p.repeat_last_n;
    if (pen == 1.0f || n <= 0) return;
    const int32_t *last = s->hist + s->n_hist - n;
    for (int i = 0; i < n; i++) {
        const int32_t t = last[i];
        if (t < 0 || t >= s->n_vocab || s->seen[t]) continue;
        s->seen[t] = 1;
        logits[t] = logits[t] > 0.0f ? logits[t] / pen : logits[t] * pen;
    }
    for (int i = 0; i < n; i++)
        if (last[i] >= 0 && last[i] < s->n_vocab) s->seen[last[i]] = 0;
}

/* Candidate order: larger logit first, then lower id (deterministic under ties). */
static inline bool before(const cand *a, const cand *b) {
    return a->v > b->v || (a->v == b->v && a->id < b->id);
}

/* Sift-down in a heap whose root is the worst kept candidate. */
static void heap_down(cand *h, int n, int i) {
    for (;;) {
        int l = 2 * i + 1, r = l + 1, w = i;
        if (l < n && before(&h[w], &h[l])) w = l;
        if (r < n && before(&h[w], &h[r])) w = r;
        if (w == i) return;
        cand t = h[i];
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

int32_t sk_sampler_sample(sk_sampler *s, float *logits) {
    const int V = s->n_vocab;
    apply_penalty(s, logits);

    if (!(s->p.temp > 0.0f)) {
        int32_t best = 0;
        for (int32_t i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    /* top-k: keep the k best in a heap rooted at the worst of them, then sort best first */
    cand *c = s->cands;
    int n = V;
    const int k = s->p.top_k;
    if (k > 0 && k < V) {
        n = k;
        for (int32_t i = 0; i < k; i++) c[i] = (cand){logits[i], i};
        for (int i = k / 2 - 1; i >= 0; i--) heap_down(c, k, i);
        for (int32_t i = k; i < V; i++) {
            const cand x = {logits[i], i};
            if (before(&x, &c[0])) {
                c[0] = x;
                heap_down(c, k, 0);
            }
        }
    } else {
        for (int32_t i = 0; i < V; i++) c[i] = (cand){logits[i], i};
    }
    qsort(c, (size_t)n, sizeof(cand), cand_cmp);

    /* softmax with temperature (c[0] holds the largest logit) */
    const double inv_t = 1.0 / (double)s->p.temp, max = c[0].v;
    double sum = 0.0;
    for (int i = 0; i < n; i++) {
        c[i].v = (float)exp(((double)c[i].v - max) * inv_t);
        sum += c[i].v;
    }
    for (int i = 0; i < n; i++) c[i].v = (float)(c[i].v / sum);

    /* top-p: the smallest prefix whose mass reaches p */
    if (s->p.top_p < 1.0f) {
        double cum = 0.0;
        int keep = n;
        for (int i = 0; i < n; i++) {
            cum += c[i].v;
            if (cum >= (double)s->p.top_p) {
                keep = i + 1;
                break;
            }
        }
        n = keep;
    }
    /* min-p: relative to the top probability (unchanged by renormalisation) */
    if (s->p.min_p > 0.0f) {
        const float thr = s->p.min_p * c[0].v;
        int keep = 1;
        while (keep < n && c[keep].v >= thr) keep++;
        n = keep;
    }

    double total = 0.0;
    for (int i = 0; i < n; i++) total += c[i].v;
    const double r = rng_uniform(s->rng) * total;
    double cum = 0.0;
    int32_t pick = c[n - 1].id;
    for (int i = 0; i < n; i++) {
        cum += c[i].v;
        if (r < cum) {
            pick = c[i].id;
            break;
        }
    }
    return pick;
}
