/* The engine on the CPU with stories260K: in-flight batching against requests generated alone.
 * - A batch of requests with different prompts, lengths, shared prefixes and arrival times
 *   (submitted while others run, from the queue and callbacks and several threads) gives each
 *   request exactly the greedy tokens of a session run alone (the CPU backend is
 *   batch-invariant, so equality is exact).
 * - A deliberately small pool forces preemptions; every request still completes with the same
 *   tokens.
 * - Cancel (running and still waiting) ends requests and frees their pages; stop tokens and stop
 *   strings end requests where the reference text says; sampled requests (temp > 0) give the
 *   same tokens batched as alone.
 * - Requests that can never fit are refused at submission with a message.
 * After every test the pool's accounting is back to empty (no page referenced). */
#include "saker/engine.h"
#include "testlib.h"

#include <pthread.h>
#include <stdint.h>

#define MAXTOK 600

static sk_model *g_m;
static int g_V;
static unsigned long long g_rng = 0x9e3779b97f4a7c15ull;

static unsigned rnd(unsigned n) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return (unsigned)(g_rng % n);
}

/* ---- the reference: one session, greedy (or a sampler), alone ------------------------------ */

typedef struct ref {
    int32_t toks[MAXTOK];
    int n;
    sk_finish_reason fin;
} ref;

static void reference(const int32_t *prompt, int n, int max_new, bool ignore_eos,
                      const sk_sampler_params *sp, ref *out) {
    sk_session *s = NULL;
    out->n = 0;
    out->fin = SK_FINISH_NONE;
    CHECK(sk_session_new(g_m, 0, &s) == SK_OK);
    if (!s) return;
    float *logits = malloc(sizeof(float) * (size_t)g_V);
    sk_sampler *smp = NULL;
    if (sp) {
        smp = sk_sampler_new(sp, g_V);
        for (int i = 0; i < n; i++) sk_sampler_accept(smp, prompt[i]);
    }
    CHECK(sk_session_eval(s, prompt, n, logits, false) == SK_OK);
    for (;;) {
        int32_t tok = 0;
        if (smp) {
            tok = sk_sampler_sample(smp, logits);
            sk_sampler_accept(smp, tok);
        } else {
            for (int i = 1; i < g_V; i++)
                if (logits[i] > logits[tok]) tok = i;
        }
        out->toks[out->n++] = tok;
        if (!ignore_eos && sk_model_is_eog(g_m, tok)) {
            out->fin = SK_FINISH_EOS;
            break;
        }
        if (out->n == max_new) {
            out->fin = SK_FINISH_LENGTH;
            break;
        }
        CHECK(sk_session_eval(s, &tok, 1, logits, false) == SK_OK);
    }
    if (smp) sk_sampler_free(smp);
    free(logits);
    sk_session_free(s);
}

/* ---- requests and their outputs --------------------------------------------------------- */

typedef struct job {
    int32_t prompt[MAXTOK];
    int n_prompt, max_new;
    bool ignore_eos, use_cb, sampled;
    uint64_t id;
    ref want;
    /* Received (callback or queue). */
    int32_t got[MAXTOK];
    int n_got, n_events;
    sk_finish_reason fin;
    bool done, order_ok;
    pthread_mutex_t mu;
} job;

static void job_event(job *j, const sk_engine_event *ev) {
    pthread_mutex_lock(&j->mu);
    j->n_events++;
    if (ev->token >= 0) {
        if (j->n_got < MAXTOK) j->got[j->n_got] = ev->token;
        j->n_got++;
        if (ev->n_generated != j->n_got) j->order_ok = false;
    }
    if (ev->finish != SK_FINISH_NONE) {
        if (j->done) j->order_ok = false; /* two last events */
        j->fin = ev->finish;
        j->done = true;
    }
    pthread_mutex_unlock(&j->mu);
}

static void job_cb(const sk_engine_event *ev, void *user) { job_event(user, ev); }

static void make_job(job *j, int n_prompt, int max_new, const int32_t *shared, int n_shared) {
    memset(j, 0, sizeof *j);
    pthread_mutex_init(&j->mu, NULL);
    j->order_ok = true;
    j->n_prompt = n_prompt;
    j->max_new = max_new;
    j->prompt[0] = sk_model_bos(g_m);
    for (int i = 1; i < n_prompt; i++)
        j->prompt[i] = i < n_shared ? shared[i] : (int32_t)(3 + rnd((unsigned)g_V - 3));
}

static sk_status submit_job(sk_engine *e, job *j) {
    sk_request_params r;
    sk_request_params_default(&r);
    r.tokens = j->prompt;
    r.n_tokens = j->n_prompt;
    r.max_new_tokens = j->max_new;
    r.ignore_eos = j->ignore_eos;
    if (j->sampled) {
        r.sampling.temp = 0.9f;
        r.sampling.top_k = 40;
        r.sampling.seed = 1234 + (uint64_t)j->n_prompt;
    }
    if (j->use_cb) {
        r.on_event = job_cb;
        r.user = j;
    }
    return sk_engine_submit(e, &r, &j->id);
}

/* Moves queued events to their jobs (waiting up to timeout_s for the first). */
static int pump(sk_engine *e, job *jobs, int n, double timeout_s) {
    sk_engine_event ev[64];
    int got = sk_engine_poll(e, ev, 64, timeout_s);
    for (int i = 0; i < got; i++) {
        int k = 0;
        while (k < n && jobs[k].id != ev[i].id) k++;
        CHECKF(k < n, "event for unknown request %llu", (unsigned long long)ev[i].id);
        if (k < n) job_event(&jobs[k], &ev[i]);
    }
    return got;
}

static int job_tokens(job *j) {
    pthread_mutex_lock(&j->mu);
    const int n = j->n_got;
    pthread_mutex_unlock(&j->mu);
    return n;
}

static bool all_done(job *jobs, int n) {
    for (int i = 0; i < n; i++) {
        pthread_mutex_lock(&jobs[i].mu);
        bool d = jobs[i].done;
        pthread_mutex_unlock(&jobs[i].mu);
        if (!d) return false;
    }
    return true;
}

static void wait_all(sk_engine *e, job *jobs, int n) {
    double t0 = sk_time_now();
    while (!all_done(jobs, n) && sk_time_now() - t0 < 120) pump(e, jobs, n, 0.05);
    CHECK(all_done(jobs, n));
}

static void check_job(const job *j, const char *what, int k) {
    CHECKF(j->order_ok, "%s job %d: events out of order", what, k);
    int d = 0;
    while (d < j->n_got && d < j->want.n && j->got[d] == j->want.toks[d]) d++;
    bool same = j->n_got == j->want.n && j->fin == j->want.fin && d == j->n_got;
    CHECKF(same, "%s job %d (prompt %d, max %d%s): %d tokens (%s), alone %d (%s), first diff at %d",
           what, k, j->n_prompt, j->max_new, j->sampled ? ", sampled" : "", j->n_got,
           sk_finish_name(j->fin), j->want.n, sk_finish_name(j->want.fin), d);
}

static void check_empty(sk_engine *e, const char *what) {
    sk_engine_wait_idle(e);
    sk_engine_stats st;
    sk_engine_get_stats(e, &st);
    CHECKF(st.kv_pages_in_use == 0 && st.kv_pages_available == st.kv_pages_total &&
               st.n_waiting == 0 && st.n_running == 0,
           "%s: after the test %d pages in use, %d of %d available, %d waiting, %d running", what,
           st.kv_pages_in_use, st.kv_pages_available, st.kv_pages_total, st.n_waiting,
           st.n_running);
}

static sk_engine *engine(int max_batch, int max_tokens, int kv_pages, bool prefix) {
    sk_engine_params p;
    sk_engine_params_default(&p);
    p.max_batch = max_batch;
    p.max_num_tokens = max_tokens;
    p.kv_pages = kv_pages;
    p.prefix_caching = prefix;
    sk_engine *e = NULL;
    sk_status s = sk_engine_new(g_m, &p, &e);
    CHECKF(s == SK_OK, "engine: %s", sk_last_error());
    return e;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* Arrivals in three waves (the later ones while the first run), prompts of 2..150 tokens (some
 * longer than a step's budget: chunked), three sharing a 70-token prefix; a mix of queue and
 * callback delivery, EOS honoured or not, and two sampled requests. */
static void test_batch_equals_alone(bool prefix) {
    enum { N = 14 };
    static job jobs[N];
    int32_t shared[80];
    shared[0] = sk_model_bos(g_m);
    for (int i = 1; i < 80; i++) shared[i] = (int32_t)(3 + rnd((unsigned)g_V - 3));
    static const int plen[N] = {2, 17, 150, 33, 71, 75, 90, 8, 120, 46, 64, 5, 100, 29};
    static const int mnew[N] = {40, 120, 60, 7, 90, 33, 50, 200, 20, 80, 64, 1, 45, 70};
    for (int i = 0; i < N; i++) {
        const bool share = i == 4 || i == 5 || i == 6;
        make_job(&jobs[i], plen[i], mnew[i], shared, share ? 70 : 0);
        jobs[i].ignore_eos = i % 3 != 0;
        jobs[i].use_cb = i % 2 == 1;
        jobs[i].sampled = i == 3 || i == 9;
        sk_sampler_params sp;
        sk_sampler_params_default(&sp);
        sp.temp = 0.9f;
        sp.top_k = 40;
        sp.seed = 1234 + (uint64_t)jobs[i].n_prompt;
        reference(jobs[i].prompt, jobs[i].n_prompt, jobs[i].max_new, jobs[i].ignore_eos,
                  jobs[i].sampled ? &sp : NULL, &jobs[i].want);
    }
    sk_engine *e = engine(6, 64, 400, prefix);
    if (!e) return;
    const int waves[4] = {0, 5, 10, N};
    for (int w = 0; w < 3; w++) {
        for (int i = waves[w]; i < waves[w + 1]; i++)
            CHECKF(submit_job(e, &jobs[i]) == SK_OK, "submit %d: %s", i, sk_last_error());
        /* Let some tokens come out before the next wave arrives, and (after the first wave)
         * request 4's first token: its prompt, whose first 70 tokens requests 5 and 6 share, is
         * then in the prefix cache whatever the machine's load (the check below counts on it). */
        double t0 = sk_time_now();
        int seen = 0;
        while ((seen < 20 || (w == 0 && job_tokens(&jobs[4]) < 1)) && sk_time_now() - t0 < 30)
            seen += pump(e, jobs, N, 0.05);
    }
    wait_all(e, jobs, N);
    for (int i = 0; i < N; i++) check_job(&jobs[i], prefix ? "batch" : "batch (no prefix cache)", i);
    sk_engine_stats st;
    sk_engine_get_stats(e, &st);
    CHECK(st.n_finished == N && st.n_submitted == N);
    if (prefix)
        CHECKF(st.n_prefix_hit_tokens >= 2 * 64,
               "prefix cache: %llu tokens hit, expected the shared prefix twice at least",
               (unsigned long long)st.n_prefix_hit_tokens);
    else
        CHECK(st.n_prefix_hit_tokens == 0);
    check_empty(e, "batch");
    sk_engine_free(e);
    for (int i = 0; i < N; i++) pthread_mutex_destroy(&jobs[i].mu);
}

/* 10 requests of up to 10 pages each on a pool of 14 pages (16 tokens each), 8 at a time. */
static void test_preemption(void) {
    enum { N = 10 };
    static job jobs[N];
    for (int i = 0; i < N; i++) {
        make_job(&jobs[i], 20 + 7 * i, 90 - 3 * i, NULL, 0);
        jobs[i].ignore_eos = true;
        jobs[i].use_cb = i % 2 == 0;
        reference(jobs[i].prompt, jobs[i].n_prompt, jobs[i].max_new, true, NULL, &jobs[i].want);
    }
    sk_engine *e = engine(8, 48, 14, true);
    if (!e) return;
    for (int i = 0; i < N; i++) CHECK(submit_job(e, &jobs[i]) == SK_OK);
    wait_all(e, jobs, N);
    for (int i = 0; i < N; i++) check_job(&jobs[i], "preemption", i);
    sk_engine_stats st;
    sk_engine_get_stats(e, &st);
    CHECKF(st.n_preemptions > 0, "the small pool preempted nothing");
    CHECK(st.n_tokens_generated >= 10);
    check_empty(e, "preemption");
    sk_engine_free(e);
    for (int i = 0; i < N; i++) pthread_mutex_destroy(&jobs[i].mu);
}

/* A running request cancelled mid-way, a waiting one cancelled before it starts. */
static void test_cancel(void) {
    static job a, b;
    make_job(&a, 30, 400, NULL, 0);
    make_job(&b, 30, 50, NULL, 0);
    a.ignore_eos = b.ignore_eos = true;
    sk_engine *e = engine(1, 64, 40, true);
    if (!e) return;
    CHECK(submit_job(e, &a) == SK_OK);
    CHECK(submit_job(e, &b) == SK_OK);
    double t0 = sk_time_now();
    while (a.n_got < 10 && sk_time_now() - t0 < 30) pump(e, &a, 1, 0.05);
    sk_engine_stats st;
    sk_engine_get_stats(e, &st);
    CHECK(st.kv_pages_in_use > 0);
    CHECK(sk_engine_cancel(e, b.id) == SK_OK); /* waiting: max_batch 1 */
    CHECK(sk_engine_cancel(e, a.id) == SK_OK);
    CHECK(sk_engine_cancel(e, a.id) == SK_OK); /* twice is harmless */
    t0 = sk_time_now();
    while ((!a.done || !b.done) && sk_time_now() - t0 < 30) {
        sk_engine_event ev[16];
        int n = sk_engine_poll(e, ev, 16, 0.05);
        for (int i = 0; i < n; i++) job_event(ev[i].id == a.id ? &a : &b, &ev[i]);
    }
    CHECK(a.done && a.fin == SK_FINISH_CANCELLED && a.n_got >= 10 && a.n_got < 400);
    CHECK(b.done && b.fin == SK_FINISH_CANCELLED && b.n_got == 0);
    CHECK(sk_engine_cancel(e, a.id) == SK_ERR_ARG); /* finished */
    CHECK(sk_engine_cancel(e, 987654) == SK_ERR_ARG);
    check_empty(e, "cancel");
    sk_engine_free(e);
    pthread_mutex_destroy(&a.mu);
    pthread_mutex_destroy(&b.mu);
}

/* Requests that can never fit, and malformed ones. */
static void test_refused(void) {
    sk_engine *e = engine(4, 64, 6, true); /* 96 tokens of pool; context 512 */
    if (!e) return;
    int32_t p[600];
    for (int i = 0; i < 600; i++) p[i] = 1 + i % 300;
    sk_request_params r;
    sk_request_params_default(&r);
    r.tokens = p;
    r.n_tokens = 500;
    r.max_new_tokens = 20;
    uint64_t id = 99;
    CHECK(sk_engine_submit(e, &r, &id) == SK_ERR_CONTEXT && id == 0);
    CHECKF(strstr(sk_last_error(), "context of 512") != NULL, "message: %s", sk_last_error());
    r.n_tokens = 60;
    r.max_new_tokens = 60; /* fits the context, not the 6 pages */
    CHECK(sk_engine_submit(e, &r, &id) == SK_ERR_CONTEXT);
    CHECKF(strstr(sk_last_error(), "KV pages") != NULL, "message: %s", sk_last_error());
    r.max_new_tokens = -1;
    CHECK(sk_engine_submit(e, &r, &id) == SK_ERR_ARG);
    r.max_new_tokens = 5;
    r.n_tokens = 0;
    CHECK(sk_engine_submit(e, &r, &id) == SK_ERR_ARG);
    r.n_tokens = 3;
    p[1] = g_V;
    CHECK(sk_engine_submit(e, &r, &id) == SK_ERR_ARG);
    CHECKF(strstr(sk_last_error(), "out of range") != NULL, "message: %s", sk_last_error());
    p[1] = 5;
    r.tokens = NULL;
    CHECK(sk_engine_submit(e, &r, &id) == SK_ERR_ARG); /* no prompt at all */
    /* The largest that fits is accepted and runs. */
    r.tokens = p;
    r.n_tokens = 40;
    r.max_new_tokens = 96 + 1 - 40;
    r.ignore_eos = true;
    int32_t out[128];
    int n = 0;
    sk_finish_reason fin;
    CHECK(sk_engine_generate(e, &r, out, 128, &n, &fin) == SK_OK);
    CHECK(n == 57 && fin == SK_FINISH_LENGTH);
    check_empty(e, "refused");
    sk_engine_free(e);
    /* Bad engine parameters. */
    sk_engine_params ep;
    sk_engine_params_default(&ep);
    ep.max_batch = 0;
    sk_engine *bad = NULL;
    CHECK(sk_engine_new(g_m, &ep, &bad) == SK_ERR_ARG && bad == NULL);
}

/* Stop tokens and stop strings end a request where the reference text says. */
static void test_stops(void) {
    sk_engine *e = engine(4, 64, 100, true);
    if (!e) return;
    static job j;
    make_job(&j, 12, 120, NULL, 0);
    reference(j.prompt, j.n_prompt, j.max_new, true, NULL, &j.want);
    /* Stop token: the token generated at index 30; the request ends at its first occurrence. */
    const int32_t stop_tok = j.want.toks[30];
    int first = 0;
    while (j.want.toks[first] != stop_tok) first++;
    sk_request_params r;
    sk_request_params_default(&r);
    r.tokens = j.prompt;
    r.n_tokens = j.n_prompt;
    r.max_new_tokens = j.max_new;
    r.ignore_eos = true;
    r.stop_tokens = &stop_tok;
    r.n_stop_tokens = 1;
    int32_t out[200];
    int n = 0;
    sk_finish_reason fin;
    CHECK(sk_engine_generate(e, &r, out, 200, &n, &fin) == SK_OK);
    CHECKF(n == first + 1 && fin == SK_FINISH_STOP && memcmp(out, j.want.toks, sizeof(int32_t) * (size_t)n) == 0,
           "stop token: %d tokens (%s), expected %d", n, sk_finish_name(fin), first + 1);
    /* Stop string: 6 bytes of the reference text from token 40's text on; the request ends at
     * the first token whose text completes it. */
    char text[8192];
    int ends[MAXTOK], tl = 0;
    sk_detok *d = sk_detok_new(g_m, false);
    for (int i = 0; i < j.want.n; i++) {
        const char *b;
        int k = sk_detok_push(d, j.want.toks[i], &b);
        if (k > 0 && tl + k < (int)sizeof text) memcpy(text + tl, b, (size_t)k), tl += k;
        ends[i] = tl;
    }
    sk_detok_free(d);
    text[tl] = 0;
    char stop[8];
    CHECK(ends[40] + 6 <= tl);
    memcpy(stop, text + ends[39], 6);
    stop[6] = 0;
    int want = 0;
    const char *hit = strstr(text, stop);
    CHECK(hit != NULL);
    while (want < j.want.n && ends[want] < (int)(hit - text) + 6) want++;
    const char *stops[] = {"this string never comes up", stop};
    r.stop_tokens = NULL;
    r.n_stop_tokens = 0;
    r.stop_strings = stops;
    r.n_stop_strings = 2;
    CHECK(sk_engine_generate(e, &r, out, 200, &n, &fin) == SK_OK);
    CHECKF(n == want + 1 && fin == SK_FINISH_STOP, "stop string '%s': %d tokens (%s), expected %d",
           stop, n, sk_finish_name(fin), want + 1);
    check_empty(e, "stops");
    sk_engine_free(e);
    pthread_mutex_destroy(&j.mu);
}

/* Several threads submit and wait at once (sk_engine_generate). */
typedef struct thr_arg {
    sk_engine *e;
    job *j;
} thr_arg;

static void *thr_main(void *p) {
    thr_arg *a = p;
    sk_request_params r;
    sk_request_params_default(&r);
    r.tokens = a->j->prompt;
    r.n_tokens = a->j->n_prompt;
    r.max_new_tokens = a->j->max_new;
    r.ignore_eos = true;
    sk_status s = sk_engine_generate(a->e, &r, a->j->got, MAXTOK, &a->j->n_got, &a->j->fin);
    a->j->done = s == SK_OK;
    return NULL;
}

static void test_threads(void) {
    enum { N = 6 };
    static job jobs[N];
    for (int i = 0; i < N; i++) {
        make_job(&jobs[i], 10 + 13 * i, 30 + 5 * i, NULL, 0);
        jobs[i].ignore_eos = true;
        reference(jobs[i].prompt, jobs[i].n_prompt, jobs[i].max_new, true, NULL, &jobs[i].want);
    }
    sk_engine *e = engine(4, 32, 200, true);
    if (!e) return;
    pthread_t th[N];
    thr_arg args[N];
    for (int i = 0; i < N; i++) {
        args[i] = (thr_arg){e, &jobs[i]};
        CHECK(pthread_create(&th[i], NULL, thr_main, &args[i]) == 0);
    }
    for (int i = 0; i < N; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < N; i++) {
        CHECK(jobs[i].done);
        check_job(&jobs[i], "threads", i);
    }
    check_empty(e, "threads");
    sk_engine_free(e);
    for (int i = 0; i < N; i++) pthread_mutex_destroy(&jobs[i].mu);
}

int main(void) {
    sk_model_params p;
    sk_model_params_default(&p);
    p.device = SK_DEVICE_CPU;
    p.n_threads = 2;
    p.tokenizer_path = sk_test_path("SK_DATA", "stories260K/tok512.bin");
    sk_status s = sk_model_open(sk_test_path("SK_DATA", "stories260K/stories260K.bin"), &p, &g_m);
    CHECKF(s == SK_OK, "open: %s", sk_last_error());
    if (s != SK_OK) return sk_test_done("test_engine");
    g_V = sk_model_n_vocab(g_m);
    CHECK(sk_model_n_ctx_train(g_m) == 512);
    test_batch_equals_alone(true);
    test_batch_equals_alone(false);
    test_preemption();
    test_cancel();
    test_refused();
    test_stops();
    test_threads();
    sk_model_close(g_m);
    return sk_test_done("test_engine");
}
