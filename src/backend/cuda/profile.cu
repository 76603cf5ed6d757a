/* SAKER_PROFILE=1 (profile.cuh): per-op GPU time from CUDA events.
 *
 * Each timed call records an event pair on the backend's stream; the pairs wait in a pending list
 * until the next begin (the previous step's work is then done or nearly), the backend's destroy,
 * a full list or exit, and are then summed per key. One thread drives a backend (as everywhere in
 * the backend); the tables here are process-wide, so several backends' ops add up together. */
#include "backend/cuda/profile.cuh"

#include <stdarg.h>
#include <string.h>

bool sk_cuda_prof_on = false;

#define PROF_KEYS 1024
#define PROF_KEY_LEN 80
#define PROF_PENDING 16384
#define PROF_DEPTH 8

typedef struct prof_key {
    char name[PROF_KEY_LEN];
    int depth; /* 0: an op; > 0: a span inside one */
    long calls;
    double ms;
} prof_key;

typedef struct prof_rec {
    int key;
    cudaEvent_t a, b;
} prof_rec;

static sk_backend_ops g_real;
static prof_key g_keys[PROF_KEYS];
static int g_n_keys;
static prof_rec g_pend[PROF_PENDING];
static int g_n_pend;
static cudaEvent_t g_free_ev[2 * PROF_PENDING + 2 * PROF_DEPTH];
static int g_n_free;
static struct {
    int key;
    cudaEvent_t a;
} g_stack[PROF_DEPTH];
static int g_depth;
static long g_steps[2]; /* begins of dec / mix batches */
static bool g_dropped;  /* a key did not fit the table */

static cudaEvent_t ev_get(void) {
    if (g_n_free > 0) return g_free_ev[--g_n_free];
    cudaEvent_t e;
    CUDA_CHECK(cudaEventCreate(&e));
    return e;
}

static void ev_put(cudaEvent_t e) {
    if (g_n_free < (int)(sizeof g_free_ev / sizeof g_free_ev[0]))
        g_free_ev[g_n_free++] = e;
    else
        (void)cudaEventDestroy(e);
}

/* Sums every pending pair (waits for the last). tolerant: at exit, ignore CUDA errors. */
static void resolve(bool tolerant) {
    for (int i = 0; i < g_n_pend; i++) {
        prof_rec *r = &g_pend[i];
        float ms = 0.0f;
        cudaError_t e = cudaEventSynchronize(r->b);
        if (e == cudaSuccess) e = cudaEventElapsedTime(&ms, r->a, r->b);
        if (e != cudaSuccess) {
            if (!tolerant) CUDA_CHECK(e);
            (void)cudaGetLastError();
        } else {
            g_keys[r->key].ms += ms;
        }
        ev_put(r->a);
        ev_put(r->b);
    }
    g_n_pend = 0;
}

/* The key's index (made on first use); -1 when the table is full. */
static int key_of(int depth, const char *fmt, ...) {
    char name[PROF_KEY_LEN];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    unsigned h = 5381;
    for (const char *p = name; *p; p++) h = h * 33u + (unsigned char)*p;
    for (int i = 0; i < PROF_KEYS; i++) {
        const int k = (int)((h + (unsigned)i) % PROF_KEYS);
        prof_key *pk = &g_keys[k];
        if (!pk->name[0]) {
            memcpy(pk->name, name, sizeof name);
            pk->depth = depth;
            g_n_keys++;
            return k;
        }
        if (strcmp(pk->name, name) == 0) return k;
    }
    g_dropped = true;
    return -1;
}

static const char *cls(cuda_ctx *c) { return c->rows_distinct ? "dec" : "mix"; }

static bool capturing(cuda_ctx *c) {
    cudaStreamCaptureStatus st = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(c->stream, &st));
    return st != cudaStreamCaptureStatusNone;
}

static void push_key(cuda_ctx *c, int key) {
    SK_ASSERT(g_depth < PROF_DEPTH);
    g_stack[g_depth].key = key;
    g_stack[g_depth].a = ev_get();
    CUDA_CHECK(cudaEventRecord(g_stack[g_depth].a, c->stream));
    g_depth++;
}

static void pop_key(cuda_ctx *c) {
    SK_ASSERT(g_depth > 0);
    g_depth--;
    cudaEvent_t b = ev_get();
    CUDA_CHECK(cudaEventRecord(b, c->stream));
    const int key = g_stack[g_depth].key;
    if (key < 0) {
        ev_put(g_stack[g_depth].a);
        ev_put(b);
        return;
    }
    g_keys[key].calls++;
    if (g_n_pend == PROF_PENDING) resolve(false);
    g_pend[g_n_pend].key = key;
    g_pend[g_n_pend].a = g_stack[g_depth].a;
    g_pend[g_n_pend].b = b;
    g_n_pend++;
}

void sk_cuda_prof_push_(cuda_ctx *c, const char *name) {
    if (capturing(c)) return;
    push_key(c, key_of(g_depth, "%s   %*s%s", cls(c), 2 * g_depth, "", name));
}

void sk_cuda_prof_pop_(cuda_ctx *c) {
    if (g_depth > 0 && !capturing(c)) pop_key(c);
}

/* ---- wrapped entries ---------------------------------------------------------------------- */

/* The op's name and shape formatted first, then prefixed with the batch's kind. */
#define OP_BEGIN(be, ...)                                                                          \
    cuda_ctx *c_ = sk_cuda_ctx(be);                                                                \
    const bool t_ = !capturing(c_);                                                                \
    if (t_) {                                                                                      \
        char op_[PROF_KEY_LEN - 8];                                                                \
        snprintf(op_, sizeof op_, __VA_ARGS__);                                                    \
        push_key(c_, key_of(g_depth, "%s %s", cls(c_), op_));                                      \
    }
#define OP_END()                                                                                   \
    if (t_) pop_key(c_)

static void w_destroy(sk_backend *be) {
    resolve(false);
    g_real.destroy(be);
}

static sk_status w_begin_paged(sk_backend *be, const sk_batch *b, const sk_page_tables *pt) {
    cuda_ctx *c = sk_cuda_ctx(be);
    resolve(false);
    cudaEvent_t a = ev_get();
    CUDA_CHECK(cudaEventRecord(a, c->stream));
    const sk_status s = g_real.begin_paged(be, b, pt);
    if (s != SK_OK) {
        ev_put(a);
        return s;
    }
    g_steps[c->rows_distinct ? 0 : 1]++;
    g_stack[g_depth].key = key_of(g_depth, "%s begin (batch to the device)", cls(c));
    g_stack[g_depth].a = a;
    g_depth++;
    pop_key(c);
    return s;
}

static sk_status w_begin(sk_backend *be, const sk_batch *b) { return w_begin_paged(be, b, NULL); }

static void w_embed(sk_backend *be, const sk_weight *table, void *out) {
    OP_BEGIN(be, "embed");
    g_real.embed(be, table, out);
    OP_END();
}

static void w_rmsnorm(sk_backend *be, const void *x, const sk_weight *w, float eps, int T, int D,
                      void *out) {
    OP_BEGIN(be, "rmsnorm");
    g_real.rmsnorm(be, x, w, eps, T, D, out);
    OP_END();
}

static void w_layernorm(sk_backend *be, const void *x, const sk_weight *w, const sk_weight *b,
                        float eps, int T, int D, void *out) {
    OP_BEGIN(be, "layernorm");
    g_real.layernorm(be, x, w, b, eps, T, D, out);
    OP_END();
}

static void w_matmul(sk_backend *be, const void *x, int T, const sk_weight *w,
                     const sk_weight *bias, void *out) {
    OP_BEGIN(be, "matmul T=%d N=%lld K=%lld%s", T, (long long)w->rows, (long long)w->cols,
             w->q4 ? " int4" : "");
    g_real.matmul(be, x, T, w, bias, out);
    OP_END();
}

static void w_matmul_add(sk_backend *be, const void *x, int T, const sk_weight *w,
                         const sk_weight *bias, void *out) {
    OP_BEGIN(be, "matmul_add T=%d N=%lld K=%lld%s", T, (long long)w->rows, (long long)w->cols,
             w->q4 ? " int4" : "");
    g_real.matmul_add(be, x, T, w, bias, out);
    OP_END();
}

static void w_gelu_matmul_add(sk_backend *be, void *x, int T, const sk_weight *w,
                              const sk_weight *bias, void *out) {
    OP_BEGIN(be, "gelu_matmul_add T=%d N=%lld K=%lld%s", T, (long long)w->rows,
             (long long)w->cols, w->q4 ? " int4" : "");
    g_real.gelu_matmul_add(be, x, T, w, bias, out);
    OP_END();
}

static void w_matmul_swiglu(sk_backend *be, const void *x, int T, const sk_weight *w, void *out) {
    OP_BEGIN(be, "matmul_swiglu T=%d N=%lld K=%lld%s", T, (long long)w->rows, (long long)w->cols,
             w->q4 ? " int4" : "");
    g_real.matmul_swiglu(be, x, T, w, out);
    OP_END();
}

static void w_rmsnorm_matmul(sk_backend *be, const void *x, const sk_weight *norm, float eps, int T,
                             const sk_weight *w, const sk_weight *bias, void *h, void *out) {
    OP_BEGIN(be, "rmsnorm_matmul T=%d N=%lld K=%lld%s", T, (long long)w->rows,
             (long long)w->cols, w->q4 ? " int4" : "");
    g_real.rmsnorm_matmul(be, x, norm, eps, T, w, bias, h, out);
    OP_END();
}

static void w_rmsnorm_matmul_swiglu(sk_backend *be, const void *x, const sk_weight *norm,
                                    float eps, int T, const sk_weight *w, void *h, void *out) {
    OP_BEGIN(be, "rmsnorm_matmul_swiglu T=%d N=%lld K=%lld%s", T, (long long)w->rows,
             (long long)w->cols, w->q4 ? " int4" : "");
    g_real.rmsnorm_matmul_swiglu(be, x, norm, eps, T, w, h, out);
    OP_END();
}

static void w_argmax(sk_backend *be, const void *x, int T, int N, int32_t *out_host) {
    OP_BEGIN(be, "argmax (and its download)");
    g_real.argmax(be, x, T, N, out_host);
    OP_END();
}

static void w_sample(sk_backend *be, const void *x, int T, int N, const sk_sample_row *rows,
                     int32_t *out_host) {
    OP_BEGIN(be, "sample (and its download)");
    g_real.sample(be, x, T, N, rows, out_host);
    OP_END();
}

static void w_download(sk_backend *be, const void *src, float *dst, size_t n) {
    OP_BEGIN(be, "download_f32");
    g_real.download_f32(be, src, dst, n);
    OP_END();
}

static void w_add(sk_backend *be, void *x, const void *y, size_t n) {
    OP_BEGIN(be, "add");
    g_real.add(be, x, y, n);
    OP_END();
}

static void w_swiglu(sk_backend *be, const void *gate, const void *up, size_t n, void *out) {
    OP_BEGIN(be, "swiglu");
    g_real.swiglu(be, gate, up, n, out);
    OP_END();
}

static void w_gelu(sk_backend *be, void *x, size_t n) {
    OP_BEGIN(be, "gelu");
    g_real.gelu(be, x, n);
    OP_END();
}

static void w_rope(sk_backend *be, void *x, int T, int n_heads, int row_stride,
                   const sk_rope_params *rp) {
    OP_BEGIN(be, "rope");
    g_real.rope(be, x, T, n_heads, row_stride, rp);
    OP_END();
}

static void w_attention(sk_backend *be, sk_kv_cache *kv, int layer, const void *q, int q_stride,
                        const void *k, const void *v, int kv_stride, int n_heads, void *out) {
    OP_BEGIN(be, "attention");
    g_real.attention(be, kv, layer, q, q_stride, k, v, kv_stride, n_heads, out);
    OP_END();
}

static void w_rope_attention(sk_backend *be, sk_kv_cache *kv, int layer, void *q, int q_stride,
                             void *k, const void *v, int kv_stride, int n_heads,
                             const sk_rope_params *rp, void *out) {
    OP_BEGIN(be, "rope_attention");
    g_real.rope_attention(be, kv, layer, q, q_stride, k, v, kv_stride, n_heads, rp, out);
    OP_END();
}

/* ---- report ------------------------------------------------------------------------------- */

static int cmp_ms(const void *a, const void *b) {
    const prof_key *x = *(prof_key *const *)a, *y = *(prof_key *const *)b;
    return x->ms < y->ms ? 1 : x->ms > y->ms ? -1 : 0;
}

static void report(void) {
    if (g_depth == 0) resolve(true);
    prof_key *list[PROF_KEYS];
    int n = 0;
    double total[2] = {0, 0};
    for (int i = 0; i < PROF_KEYS; i++)
        if (g_keys[i].name[0] && g_keys[i].calls > 0) {
            list[n++] = &g_keys[i];
            if (g_keys[i].depth == 0) total[g_keys[i].name[0] == 'm'] += g_keys[i].ms;
        }
    if (n == 0) return;
    qsort(list, (size_t)n, sizeof list[0], cmp_ms);
    /* By op (all shapes together). */
    static prof_key agg[PROF_KEYS];
    int n_agg = 0;
    for (int i = 0; i < n; i++) {
        char name[PROF_KEY_LEN];
        const char *p = list[i]->name;
        size_t len = strlen(p);
        if (list[i]->depth == 0) { /* class, space, op name up to its next space */
            const char *sp = strchr(p + 4, ' ');
            if (sp) len = (size_t)(sp - p);
        }
        memcpy(name, p, len);
        name[len] = 0;
        int j = 0;
        while (j < n_agg && strcmp(agg[j].name, name) != 0) j++;
        if (j == n_agg) {
            memset(&agg[j], 0, sizeof agg[j]);
            memcpy(agg[j].name, name, len + 1);
            agg[j].depth = list[i]->depth;
            n_agg++;
        }
        agg[j].calls += list[i]->calls;
        agg[j].ms += list[i]->ms;
    }
    fprintf(stderr,
            "\nsaker profile (SAKER_PROFILE=1, CUDA events around each op, graphs off): steps "
            "begun: %ld dec (every row alone in its sequence), %ld mix; GPU time in ops %.1f ms "
            "dec (%.3f ms per step), %.1f ms mix (%.3f ms per step)\n",
            g_steps[0], g_steps[1], total[0], g_steps[0] ? total[0] / (double)g_steps[0] : 0.0,
            total[1], g_steps[1] ? total[1] / (double)g_steps[1] : 0.0);
    fprintf(stderr, "\n| op (dec/mix; indented: parts of an op) | calls | total ms | mean us | "
                    "ms per step | share of its class |\n| --- | --- | --- | --- | --- | --- |\n");
    for (int pass = 0; pass < 2; pass++)
        for (int i = 0; i < n_agg; i++) {
            const prof_key *k = &agg[i];
            const int m = k->name[0] == 'm';
            if (m != pass) continue;
            fprintf(stderr, "| %s | %ld | %.2f | %.1f | %.3f | %.1f%% |\n", k->name, k->calls,
                    k->ms, 1e3 * k->ms / (double)k->calls,
                    g_steps[m] ? k->ms / (double)g_steps[m] : 0.0,
                    total[m] > 0 ? 100.0 * k->ms / total[m] : 0.0);
        }
    fprintf(stderr, "\n| op by shape (top 60) | calls | total ms | mean us | share of its class "
                    "|\n| --- | --- | --- | --- | --- |\n");
    for (int i = 0; i < n && i < 60; i++) {
        const prof_key *k = list[i];
        const int m = k->name[0] == 'm';
        fprintf(stderr, "| %s | %ld | %.2f | %.1f | %.1f%% |\n", k->name, k->calls, k->ms,
                1e3 * k->ms / (double)k->calls, total[m] > 0 ? 100.0 * k->ms / total[m] : 0.0);
    }
    if (g_dropped) fprintf(stderr, "(more than %d keys: some ops were not counted)\n", PROF_KEYS);
}

void sk_cuda_prof_init(sk_backend_ops *o) {
    static int inited = 0;
    if (!inited) {
        const char *e = getenv("SAKER_PROFILE");
        sk_cuda_prof_on = e && *e && strcmp(e, "0") != 0 && strcmp(e, "host") != 0;
        if (sk_cuda_prof_on) atexit(report);
        inited = 1;
    }
    if (!sk_cuda_prof_on) return;
    g_real = *o;
    o->destroy = w_destroy;
    o->begin = w_begin;
    o->begin_paged = w_begin_paged;
    o->capture_begin = NULL; /* every step eager, so that every op is timed */
    o->embed = w_embed;
    o->rmsnorm = w_rmsnorm;
    o->layernorm = w_layernorm;
    o->matmul = w_matmul;
    o->matmul_add = w_matmul_add;
    o->matmul_swiglu = w_matmul_swiglu;
    if (g_real.rmsnorm_matmul) o->rmsnorm_matmul = w_rmsnorm_matmul;
    if (g_real.rmsnorm_matmul_swiglu) o->rmsnorm_matmul_swiglu = w_rmsnorm_matmul_swiglu;
    o->argmax = w_argmax;
    if (g_real.sample) o->sample = w_sample;
    o->download_f32 = w_download;
    o->add = w_add;
    o->swiglu = w_swiglu;
    o->gelu = w_gelu;
    if (g_real.gelu_matmul_add) o->gelu_matmul_add = w_gelu_matmul_add;
    o->rope = w_rope;
    o->attention = w_attention;
    if (g_real.rope_attention) o->rope_attention = w_rope_attention;
}
