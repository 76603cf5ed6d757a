/* On the GPU: the engine's in-flight batching against requests generated alone (STYLE.md 3; the
 * CPU version is tests/unit/test_engine.c).
 *
 * Requests with different prompts (1..300 tokens), output lengths (1..90) and arrival times
 * (three waves, the later ones while the first run) go through one engine; their steps mix
 * decode rows with prompt chunks (a small token budget per step), so the attention op's split
 * (decode kernel for the lone rows, prefill kernel for the chunks) and the padded, graph-replayed
 * decode steps both run. Then each request is replayed alone in a session, greedily, feeding the
 * engine's tokens: every engine token must be the session's argmax, except at a near-tie. On the
 * GPU the batched and the lone paths round differently (GEMV vs cuBLASLt, decode vs prefill
 * kernel, other reduction orders), so where the session's top logit and its logit for the
 * engine's token are within TOL of max|logit| the request may legitimately continue differently:
 * it is counted as a near-tie divergence and compared no further. Any other difference fails. A
 * second run submits everything at once with the bench's budget (2048 tokens per step).
 *
 * Usage: engine_batch [shape [dtype [int4]]]   (default smollm2-135m bf16; synthetic weights, no
 * file; int4: INT4 linear layers, whose decode steps of 3..16 rows take w4_tm.cu) */
#include "saker/engine.h"
#include "testlib.h"

#include <stdint.h>

#define NJ 24
#define MAXP 300
#define MAXN 90

static sk_model *g_m;
static int g_V;
static double g_tol; /* of max|logit| */
static unsigned long long g_rng = 0x243f6a8885a308d3ull;

static unsigned rnd(unsigned n) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (unsigned)(g_rng % n);
}

typedef struct job {
    int32_t prompt[MAXP];
    int n_prompt, max_new;
    uint64_t id;
    int32_t got[MAXN];
    int n_got;
    sk_finish_reason fin;
    bool done;
} job;

static void make_jobs(job *jobs) {
    static const int plen[NJ] = {1,  2,  17, 150, 33, 300, 64, 65, 8,   120, 46, 5,
                                 99, 29, 64, 200, 3,  71,  128, 1, 250, 12,  90, 40};
    static const int mnew[NJ] = {40, 90, 60, 7,  90, 33, 50, 80, 20, 80, 64, 1,
                                 45, 70, 30, 12, 88, 64, 16, 90, 25, 2,  77, 55};
    for (int i = 0; i < NJ; i++) {
        memset(&jobs[i], 0, sizeof jobs[i]);
        jobs[i].n_prompt = plen[i];
        jobs[i].max_new = mnew[i];
        for (int t = 0; t < plen[i]; t++) jobs[i].prompt[t] = (int32_t)(3 + rnd((unsigned)g_V - 3));
    }
}

/* Moves queued events to their jobs; returns how many tokens came. */
static int pump(sk_engine *e, job *jobs, double timeout_s) {
    sk_engine_event ev[128];
    const int n = sk_engine_poll(e, ev, 128, timeout_s);
    int toks = 0;
    for (int i = 0; i < n; i++) {
        int k = 0;
        while (k < NJ && jobs[k].id != ev[i].id) k++;
        CHECKF(k < NJ, "event for unknown request %llu", (unsigned long long)ev[i].id);
        if (k == NJ) continue;
        job *j = &jobs[k];
        if (ev[i].token >= 0) {
            if (j->n_got < MAXN) j->got[j->n_got] = ev[i].token;
            j->n_got++;
            toks++;
        }
        if (ev[i].finish != SK_FINISH_NONE) {
            j->fin = ev[i].finish;
            j->done = true;
        }
    }
    return toks;
}

/* Runs the jobs through one engine: waves of `wave` requests (all at once when wave >= NJ),
 * each after at least 30 tokens of the previous came out. */
static void run_engine(job *jobs, int max_batch, int max_tokens, int wave) {
    sk_engine_params p;
    sk_engine_params_default(&p);
    p.max_batch = max_batch;
    p.max_num_tokens = max_tokens;
    p.kv_pages = 400;
    p.n_ctx = 512;
    p.prefix_caching = false;
    sk_engine *e = NULL;
    sk_status s = sk_engine_new(g_m, &p, &e);
    CHECKF(s == SK_OK, "engine: %s", sk_last_error());
    if (!e) return;
    for (int w0 = 0; w0 < NJ; w0 += wave) {
        for (int i = w0; i < w0 + wave && i < NJ; i++) {
            sk_request_params r;
            sk_request_params_default(&r);
            r.tokens = jobs[i].prompt;
            r.n_tokens = jobs[i].n_prompt;
            r.max_new_tokens = jobs[i].max_new;
            r.ignore_eos = true;
            CHECKF(sk_engine_submit(e, &r, &jobs[i].id) == SK_OK, "submit %d: %s", i,
                   sk_last_error());
        }
        const double t0 = sk_time_now();
        int seen = 0;
        while (w0 + wave < NJ && seen < 30 && sk_time_now() - t0 < 60) seen += pump(e, jobs, 0.05);
    }
    const double t0 = sk_time_now();
    for (;;) {
        int left = 0;
        for (int i = 0; i < NJ; i++) left += !jobs[i].done;
        if (!left || sk_time_now() - t0 > 300) break;
        pump(e, jobs, 0.05);
    }
    sk_engine_stats st;
    sk_engine_get_stats(e, &st);
    printf("engine (max_batch %d, %d tokens per step, waves of %d): %llu steps, %llu rows, %llu "
           "tokens generated\n",
           max_batch, max_tokens, wave, (unsigned long long)st.n_steps,
           (unsigned long long)st.n_tokens_computed, (unsigned long long)st.n_tokens_generated);
    sk_engine_free(e);
}

/* Replays job j alone (greedy session, fed the engine's tokens) and checks each token. Returns
 * the number of tokens equal before the end or a near-tie divergence; *tie: the margin of that
 * divergence in units of max|logit| (-1: none). */
static int check_alone(const job *j, int k, const char *what, double *tie) {
    *tie = -1.0;
    CHECKF(j->done && j->fin == SK_FINISH_LENGTH && j->n_got == j->max_new,
           "%s job %d: finished %d (%s) with %d of %d tokens", what, k, j->done,
           sk_finish_name(j->fin), j->n_got, j->max_new);
    sk_session *s = NULL;
    CHECK(sk_session_new(g_m, 512, &s) == SK_OK);
    if (!s) return 0;
    float *lg = malloc(sizeof(float) * (size_t)g_V);
    if (!lg) abort();
    CHECK(sk_session_eval(s, j->prompt, j->n_prompt, lg, false) == SK_OK);
    const int n = j->n_got < j->max_new ? j->n_got : j->max_new;
    int i = 0;
    for (; i < n; i++) {
        int best = 0;
        float mx = 0.0f;
        for (int v = 0; v < g_V; v++) {
            if (lg[v] > lg[best]) best = v;
            if (fabsf(lg[v]) > mx) mx = fabsf(lg[v]);
        }
        const int32_t t = j->got[i];
        if (t != best) {
            const double margin = (double)(lg[best] - lg[t]) / (double)(mx > 0 ? mx : 1);
            CHECKF(t >= 0 && t < g_V && margin <= g_tol,
                   "%s job %d (prompt %d): token %d is %d, alone %d, %.4f of max|logit| below "
                   "(near-tie tolerance %.4f)",
                   what, k, j->n_prompt, i, t, best, margin, g_tol);
            *tie = margin;
            break;
        }
        if (i + 1 < n) CHECK(sk_session_eval(s, &t, 1, lg, false) == SK_OK);
    }
    free(lg);
    sk_session_free(s);
    return i;
}

static void test(int max_batch, int max_tokens, int wave) {
    static job jobs[NJ];
    make_jobs(jobs);
    run_engine(jobs, max_batch, max_tokens, wave);
    char what[96];
    snprintf(what, sizeof what, "batch %d, budget %d, waves %d", max_batch, max_tokens, wave);
    int full = 0, ties = 0, eq = 0, total = 0;
    double worst = 0.0;
    for (int k = 0; k < NJ; k++) {
        double tie;
        const int m = check_alone(&jobs[k], k, what, &tie);
        eq += m;
        total += jobs[k].max_new;
        if (tie >= 0) {
            ties++;
            if (tie > worst) worst = tie;
        } else {
            full++;
        }
    }
    printf("%s: %d of %d requests equal alone throughout; %d diverged at a near-tie (largest "
           "margin %.4f of max|logit|); %d of %d tokens compared equal\n",
           what, full, NJ, ties, worst, eq, total);
}

int main(int argc, char **argv) {
    const char *shape = argc > 1 ? argv[1] : "smollm2-135m";
    const char *dtype = argc > 2 ? argv[2] : "bf16";
    /* 8 units of the half type's rounding (the decode group's graph-vs-eager threshold). */
    g_tol = 8.0 * (strcmp(dtype, "fp16") == 0 ? 1.0 / 2048.0 : 1.0 / 256.0);
    sk_model_params p;
    sk_model_params_default(&p);
    p.device = SK_DEVICE_CUDA;
    p.cuda_dtype = dtype;
    if (argc > 3 && strcmp(argv[3], "int4") == 0) p.shape_weights = "int4";
    sk_status s = sk_model_open_shape(shape, &p, &g_m);
    CHECKF(s == SK_OK, "open %s: %s", shape, sk_last_error());
    if (s != SK_OK) return sk_test_done("engine_batch");
    g_V = sk_model_n_vocab(g_m);
    test(8, 48, 8);        /* small steps: many mixed steps, chunked prompts, three waves */
    test(24, 2048, NJ);    /* the bench's budget, everything at once */
    sk_model_close(g_m);
    return sk_test_done("engine_batch");
}
