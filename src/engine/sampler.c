/* Token sampler (saker.h sk_sampler_*).
 *
 * Order: repetition penalty over the last repeat_last_n accepted tokens (llama.cpp semantics: a
 * penalised token's logit is divided by the penalty when positive, multiplied when negative;
 * once per distinct token). Then temp <= 0: argmax, ties to the lowest id. Otherwise: top-k on
 * the logits, softmax with temperature, top-p (the smallest prefix of the sorted candidates
 * whose probability reaches p), min-p (drop candidates below min_p * the top probability),
 * renormalise, and draw with xoshiro256** seeded through splitmix64 (same seed, same draws). */
#include "engine/sampler.h"

#include "core/status.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

struct sk_sampler {
    sk_sampler_params p;
    int n_vocab;
    uint64_t rng[4];
    int32_t *hist; /* accepted tokens, the newest last; trimmed to the last repeat_last_n */
    int n_hist, cap_hist;
    uint8_t *seen; /* [n_vocab] scratch for the penalty: 1 once a token is penalised */
    sk_sample_cand *cands; /* [n_vocab] candidates (sk_sample_core's scratch) */
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
    s->cands = sk_xmalloc(sizeof(sk_sample_cand) * (size_t)n_vocab);
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

int32_t sk_sampler_sample(sk_sampler *s, float *logits) {
    const int V = s->n_vocab;
    apply_penalty(s, logits);

    if (!(s->p.temp > 0.0f)) {
        int32_t best = 0;
        for (int32_t i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return best;
    }

    const sk_sample_row r = {s->p.temp, s->p.top_k, s->p.top_p, s->p.min_p, rng_uniform(s->rng)};
    return sk_sample_core(logits, V, &r, s->cands);
}

bool sk_sampler_device_ok(const sk_sampler *s) {
    const sk_sampler_params *p = &s->p;
    const bool penalty = p->repeat_penalty != 1.0f && p->repeat_last_n > 0 && s->n_hist > 0;
    return p->temp > 0.0f && !penalty && p->top_k >= 1 && p->top_k <= SK_SAMPLE_MAX_K &&
           p->top_k < s->n_vocab;
}

void sk_sampler_device_row(sk_sampler *s, sk_sample_row *r) {
    const sk_sampler_params *p = &s->p;
    SK_ASSERT(sk_sampler_device_ok(s));
    r->temp = p->temp;
    r->top_k = p->top_k;
    r->top_p = p->top_p;
    r->min_p = p->min_p;
    r->u = rng_uniform(s->rng);
}
