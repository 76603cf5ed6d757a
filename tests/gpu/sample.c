/* On the GPU: the CUDA backend's sample op against the reference sk_sample_core (the CPU
 * backend's op), draw for draw: the same logits and parameters with the same uniform u must
 * give the same token. The device computes its exponentials with the GPU's double exp, the host
 * with the C library's, which may differ by an ulp and, rarely, round a probability to the other
 * float; a difference is therefore accepted only where u sits at a boundary of the reference
 * (moving u by 1e-6 relative gives the device's token) and must stay rare (<= 0.5% of draws).
 * Shapes: vocabularies 1,000 to 151,936; top_k 1, 2, 40, 100, 1000, 1024; temperatures 0.3 to
 * 1.5; top_p and min_p on and off; logits random normal (scaled like a model's), quantised to
 * few values (long runs of ties at the k-th value, where the lowest ids must win), with -inf
 * entries, or all negative but for a few -0.0 and +0.0 (equal: the lower id first, as the argmax
 * ops do); 1 to 64 rows per call. Also: the sampled frequencies of one row follow the
 * reference's probabilities (chi-square), and a request for top_k above the op's limit is left
 * to the host (checked by the engine's sampler, not here). */
#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "testlib.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long long g_rng = 0x9e3779b97f4a7c15ull;
static double urand(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (double)(g_rng >> 11) * 0x1.0p-53;
}
static float nrand(void) {
    const double a = urand() + 1e-12, b = urand();
    return (float)(sqrt(-2.0 * log(a)) * cos(6.283185307179586 * b));
}

static sk_backend *g_cpu, *g_gpu;

static void run_case(int V, int T, int kind, const sk_sample_row *proto, int *n_draws, int *n_exact,
                     int *n_boundary) {
    float *x = malloc(sizeof(float) * (size_t)T * V);
    SK_ASSERT(x);
    for (long i = 0; i < (long)T * V; i++) {
        float v = 2.5f * nrand();
        if (kind == 1) v = roundf(v * 2.0f) / 2.0f; /* few distinct values: ties everywhere */
        if (kind == 2 && urand() < 0.01) v = -INFINITY;
        if (kind == 3) /* all <= 0, the largest a mix of -0.0 and +0.0: equal, lower id first */
            v = urand() < 0.002 ? (urand() < 0.5 ? -0.0f : 0.0f) : -fabsf(v) - 0.01f;
        x[i] = v;
    }
    sk_sample_row *rows = malloc(sizeof(sk_sample_row) * (size_t)T);
    SK_ASSERT(rows);
    for (int t = 0; t < T; t++) {
        rows[t] = *proto;
        rows[t].u = urand();
    }
    void *xg = g_gpu->ops->alloc(g_gpu, sizeof(float) * (size_t)T * V);
    SK_ASSERT(xg);
    g_gpu->ops->upload_f32(g_gpu, xg, x, (size_t)T * V);
    int32_t *got = malloc(sizeof(int32_t) * (size_t)T), *want = malloc(sizeof(int32_t) * (size_t)T);
    SK_ASSERT(got && want);
    for (int t = 0; t < T; t++) got[t] = -7;
    g_gpu->ops->sample(g_gpu, xg, T, V, rows, got);
    g_cpu->ops->sample(g_cpu, x, T, V, rows, want);
    int exact = 0, boundary = 0, bad = 0;
    for (int t = 0; t < T; t++) {
        if (got[t] == want[t]) {
            exact++;
            continue;
        }
        /* the reference's token for u moved by 1e-6 relative either way */
        int32_t alt[2];
        sk_sample_row r2[2] = {rows[t], rows[t]};
        r2[0].u = rows[t].u * (1.0 - 1e-6);
        r2[1].u = fmin(rows[t].u * (1.0 + 1e-6) + 1e-12, 0.999999999999);
        g_cpu->ops->sample(g_cpu, x + (size_t)t * V, 1, V, &r2[0], &alt[0]);
        g_cpu->ops->sample(g_cpu, x + (size_t)t * V, 1, V, &r2[1], &alt[1]);
        if (got[t] == alt[0] || got[t] == alt[1])
            boundary++;
        else
            bad++, printf("  row %d: gpu %d, reference %d (u %.17g)\n", t, got[t], want[t], rows[t].u);
    }
    printf("%s sample V=%-6d T=%-3d kind %d temp %.2f top_k %-4d top_p %.2f min_p %.2f: %d/%d exact, "
           "%d at a boundary\n",
           bad ? "FAIL" : "ok  ", V, T, kind, proto->temp, proto->top_k, proto->top_p, proto->min_p,
           exact, T, boundary);
    CHECKF(bad == 0, "sample V=%d top_k %d: %d draws differ from the reference", V, proto->top_k,
           bad);
    *n_draws += T;
    *n_exact += exact;
    *n_boundary += boundary;
    g_gpu->ops->free(g_gpu, xg);
    free(x);
    free(rows);
    free(got);
    free(want);
}

/* 20,000 draws of one row (top_k 40, temp 1): frequencies against the reference probabilities. */
static void test_frequencies(void) {
    const int V = 32000, k = 40, n = 20000;
    float *x = malloc(sizeof(float) * V);
    SK_ASSERT(x);
    for (int i = 0; i < V; i++) x[i] = 2.0f * nrand();
    sk_sample_row *rows = malloc(sizeof(sk_sample_row) * n);
    int32_t *tok = malloc(sizeof(int32_t) * n);
    float *xs = malloc(sizeof(float) * (size_t)V * 64);
    SK_ASSERT(rows && tok && xs);
    for (int j = 0; j < 64; j++) memcpy(xs + (size_t)j * V, x, sizeof(float) * V);
    void *xg = g_gpu->ops->alloc(g_gpu, sizeof(float) * (size_t)V * 64);
    SK_ASSERT(xg);
    g_gpu->ops->upload_f32(g_gpu, xg, xs, (size_t)V * 64);
    for (int i = 0; i < n; i++) rows[i] = (sk_sample_row){1.0f, k, 1.0f, 0.0f, urand()};
    for (int i = 0; i < n; i += 64)
        g_gpu->ops->sample(g_gpu, xg, n - i < 64 ? n - i : 64, V, rows + i, tok + i);
    /* reference probabilities: the reference at u on a fine grid gives the CDF's steps */
    double *cnt = calloc((size_t)V, sizeof(double)), *p = calloc((size_t)V, sizeof(double));
    SK_ASSERT(cnt && p);
    for (int i = 0; i < n; i++) cnt[tok[i]] += 1.0;
    const int grid = 200000;
    for (int i = 0; i < grid; i++) {
        sk_sample_row r = {1.0f, k, 1.0f, 0.0f, (i + 0.5) / grid};
        int32_t t;
        g_cpu->ops->sample(g_cpu, x, 1, V, &r, &t);
        p[t] += 1.0 / grid;
    }
    double chi = 0.0;
    int cells = 0, outside = 0;
    for (int i = 0; i < V; i++) {
        if (p[i] > 0.0) {
            const double e = p[i] * n;
            chi += (cnt[i] - e) * (cnt[i] - e) / e;
            cells++;
        } else if (cnt[i] > 0) {
            outside++;
        }
    }
    /* 39 degrees of freedom: p(chi2 > 80) ~ 1e-4 */
    printf("%s sample frequencies: %d draws over %d candidates, chi2 %.1f (df %d), %d outside\n",
           chi < 80.0 && outside == 0 ? "ok  " : "FAIL", n, cells, chi, cells - 1, outside);
    CHECKF(chi < 80.0 && outside == 0, "sample frequencies: chi2 %.1f, %d draws outside top-k", chi,
           outside);
    g_gpu->ops->free(g_gpu, xg);
    free(x);
    free(xs);
    free(rows);
    free(tok);
    free(cnt);
    free(p);
}

int main(void) {
    setvbuf(stdout, NULL, _IOLBF, 0); /* lines reach the log even if a check aborts */
    if (sk_backend_cpu_new(0, &g_cpu) != SK_OK || sk_backend_cuda_new("bf16", &g_gpu) != SK_OK) {
        fprintf(stderr, "FAIL: backends: %s\n", sk_last_error());
        return 1;
    }
    CHECK(g_gpu->ops->sample != NULL && g_cpu->ops->sample != NULL);
    static const int vocab[] = {1000, 32000, 49152, 151936};
    static const int topk[] = {1, 2, 40, 100, 1000, 1024};
    static const float temps[] = {0.3f, 0.8f, 1.5f};
    int draws = 0, exact = 0, boundary = 0, c = 0;
    for (size_t vi = 0; vi < sizeof vocab / sizeof vocab[0]; vi++)
        for (size_t ki = 0; ki < sizeof topk / sizeof topk[0]; ki++) {
            if (topk[ki] >= vocab[vi]) continue;
            for (int kind = 0; kind < 4; kind++, c++) {
                const sk_sample_row proto = {temps[c % 3], topk[ki], (c % 4) == 1 ? 0.9f : 1.0f,
                                             (c % 5) == 2 ? 0.05f : 0.0f, 0.0};
                run_case(vocab[vi], c % 2 ? 64 : 7, kind, &proto, &draws, &exact, &boundary);
            }
        }
    test_frequencies();
    printf("sample: %d draws, %d exact, %d at a boundary (%.3f%%)\n", draws, exact, boundary,
           100.0 * boundary / (draws ? draws : 1));
    CHECKF(boundary * 200 <= draws, "sample: %d of %d draws at a boundary (> 0.5%%)", boundary,
           draws);
    g_gpu->ops->destroy(g_gpu);
    g_cpu->ops->destroy(g_cpu);
    return sk_test_done("sample");
}
