/* The CPU backend: the fp32 reference every other backend is checked against.
 *
 * Activations are fp32 (act_bytes = 4) in plain host memory. Weights stay as the model file gives
 * them (mmap'd F32/F16/BF16/Q8_0/Q4_0/Q4_1); matmul dequantizes one weight row at a time into a
 * per-thread fp32 buffer (sk_dequant_row) and dots it against every input row of the batch, so a
 * prompt of T tokens dequantizes each row once. F32 rows are used in place. 1-D tensors (norm
 * weights, biases) are converted to fp32 copies at load time.
 *
 * Threads: OpenMP over output rows (matmul), (token, head) pairs (attention) and tokens (norms,
 * RoPE), with num_threads fixed at creation. */
#include "backend/backend.h"

#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <string.h>
#include <unistd.h>

typedef struct cpu_ctx {
    int n_threads;
    /* The current batch (begin): rows, and the page tables (n_seqs sequences; slot mode when
     * slots is set: the tables are made per cache in attention). */
    int T, cap;
    int32_t *tokens, *pos, *seq;
    int n_seqs, seq_cap, ids_cap;
    bool slots;
    int32_t *indptr, *ids; /* [n_seqs + 1], [indptr[n_seqs]] */
    int32_t *slot_ids;     /* identity tables of slot mode, [slot_ids_n] */
    int slot_ids_n;
    /* Per-thread fp32 scratch: n_threads slices of scratch_per floats. */
    float *scratch;
    size_t scratch_per;
} cpu_ctx;

/* A weight: rows x cols elements of type `type`, row r at data + r * row_bytes.
 * 1-D tensors are one row; tensors of more dims are [prod(outer dims), last dim]. */
struct sk_weight {
    sk_dtype type;
    int64_t rows, cols;
    size_t row_bytes;
    const void *data;
    float *owned; /* fp32 copy this weight owns (1-D tensors), or NULL */
};

/* A paged pool. Per layer: k and v of [n_pages][page_size][n_kv_heads][head_dim] fp32 (a
 * position's heads together, as the K/V rows arrive). Slot caches (kv_new) have n_slots slots
 * of pages_per_slot pages and n_ctx positions each; pools (kv_pool_new) have n_slots 0. */
struct sk_kv_cache {
    int n_layers, n_kv_heads, head_dim, page_size, n_pages;
    int n_slots, pages_per_slot, n_ctx;
    size_t layer_elems;
    float *k, *v; /* [n_layers * layer_elems] */
};

/* Tokens per page of the CPU's pools: small, so that prefix sharing and page exhaustion show up
 * in tests with short sequences. */
#define CPU_PAGE_SIZE 16
/* What mem_info reports as free memory (the CPU has no device memory to measure): the engine
 * sizes its default KV pool as a fraction of it. */
#define CPU_MEM_DEFAULT ((size_t)512 << 20)

#define CPU_ALIGN 64
/* Work below these sizes runs on the calling thread: a parallel region costs microseconds on an
 * idle machine, and far more when the cores are shared and an OpenMP thread spin-waits for a
 * descheduled one. Elements for elementwise ops, norms and RoPE; multiply-adds for matmul and
 * attention. */
#define CPU_PAR_MIN 32768
#define CPU_PAR_MIN_MACS 65536

static cpu_ctx *ctx_of(sk_backend *be) { return be->ctx; }

/* Makes every thread's scratch slice hold at least n floats. Called on the host thread before a
 * parallel region. */
static float *scratch_reserve(cpu_ctx *c, size_t n) {
    if (n > c->scratch_per) {
        n = (n + 15) & ~(size_t)15; /* keep every slice 64-byte aligned */
        free(c->scratch);
        c->scratch = aligned_alloc(CPU_ALIGN, n * (size_t)c->n_threads * sizeof(float));
        SK_ASSERT(c->scratch != NULL);
        c->scratch_per = n;
    }
    return c->scratch;
}

/* ---- kernels ---------------------------------------------------------------------------- */

/* sum_i a[i] * b[i] (attention's dots). 32 independent partial sums (4 AVX2 registers of 8) let
 * gcc vectorize the loop without -ffast-math and hide the FMA latency; fmaf becomes vfmadd with
 * -march=x86-64-v3. */
static inline float dot_f32(const float *restrict a, const float *restrict b, int64_t n) {
    float acc[32] = {0};
    int64_t i = 0;
    for (; i + 32 <= n; i += 32)
        for (int j = 0; j < 32; j++) acc[j] = fmaf(a[i + j], b[i + j], acc[j]);
    float tail = 0.0f;
    for (; i < n; i++) tail = fmaf(a[i], b[i], tail);
    for (int j = 0; j < 16; j++) acc[j] += acc[j + 16];
    for (int j = 0; j < 8; j++) acc[j] += acc[j + 8];
    float s = tail;
    for (int j = 0; j < 8; j++) s += acc[j];
    return s;
}

/* Matmul's dots, four b rows at once (x loaded once for the four; four independent register
 * chains hide the FMA latency). Each row sums in the order of dot1_f32 below, and matmul uses
 * only these two, whatever T: a row's result does not depend on the batch it is computed in (a
 * prompt's rows equal token-by-token steps exactly, and a request batched with others gives the
 * same greedy tokens as alone). */
static inline void dot4_f32(const float *restrict x, const float *restrict b0,
                            const float *restrict b1, const float *restrict b2,
                            const float *restrict b3, int64_t n, float out[4]) {
    float a0[8] = {0}, a1[8] = {0}, a2[8] = {0}, a3[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        for (int j = 0; j < 8; j++) {
            a0[j] = fmaf(x[i + j], b0[i + j], a0[j]);
            a1[j] = fmaf(x[i + j], b1[i + j], a1[j]);
            a2[j] = fmaf(x[i + j], b2[i + j], a2[j]);
            a3[j] = fmaf(x[i + j], b3[i + j], a3[j]);
        }
    }
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    for (; i < n; i++) {
        s0 = fmaf(x[i], b0[i], s0);
        s1 = fmaf(x[i], b1[i], s1);
        s2 = fmaf(x[i], b2[i], s2);
        s3 = fmaf(x[i], b3[i], s3);
    }
    for (int j = 0; j < 8; j++) {
        s0 += a0[j];
        s1 += a1[j];
        s2 += a2[j];
        s3 += a3[j];
    }
    out[0] = s0, out[1] = s1, out[2] = s2, out[3] = s3;
}

/* One row of dot4_f32, in its order (the last N % 4 rows of a matmul). */
static inline float dot1_f32(const float *restrict x, const float *restrict b0, int64_t n) {
    float a0[8] = {0};
    int64_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int j = 0; j < 8; j++) a0[j] = fmaf(x[i + j], b0[i + j], a0[j]);
    float s0 = 0;
    for (; i < n; i++) s0 = fmaf(x[i], b0[i], s0);
    for (int j = 0; j < 8; j++) s0 += a0[j];
    return s0;
}

/* Row r of w as fp32: the mapped row itself for aligned F32, else dequantized into buf. */
static inline const float *weight_row(const sk_weight *w, int64_t r, float *buf) {
    const uint8_t *src = (const uint8_t *)w->data + (size_t)r * w->row_bytes;
    if (w->type == SK_F32 && ((uintptr_t)src % sizeof(float)) == 0) return (const float *)src;
    sk_dequant_row(w->type, src, buf, w->cols);
    return buf;
}

/* ---- memory, weights, KV ---------------------------------------------------------------- */

static void *cpu_alloc(sk_backend *be, size_t bytes) {
    size_t n = (bytes + CPU_ALIGN - 1) & ~(size_t)(CPU_ALIGN - 1);
    if (n < bytes) {
        sk_fail(SK_ERR_NOMEM, "cpu: allocation of %zu bytes is too large", bytes);
        return NULL;
    }
    void *p = aligned_alloc(CPU_ALIGN, n ? n : CPU_ALIGN);
    if (!p) sk_fail(SK_ERR_NOMEM, "cpu: cannot allocate %zu bytes", bytes);
    return p;
}

static void cpu_free(sk_backend *be, void *p) { free(p); }

static void cpu_download_f32(sk_backend *be, const void *src, float *dst, size_t n) {
    memcpy(dst, src, n * sizeof(float));
}

static void cpu_upload_f32(sk_backend *be, void *dst, const float *src, size_t n) {
    memcpy(dst, src, n * sizeof(float));
}

static sk_status cpu_weight_load(sk_backend *be, const sk_tensor *t, sk_weight **out) {
    *out = NULL;
    if ((unsigned)t->type >= SK_DTYPE_COUNT || t->type == SK_I32)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "cpu: tensor '%s' has type %s, which is not a weight type", t->name,
                       sk_dtype_name(t->type));
    if (t->n_dims < 1 || t->n_dims > SK_MAX_DIMS)
        return sk_fail(SK_ERR_FORMAT, "cpu: tensor '%s' has %d dims", t->name, t->n_dims);
    int64_t cols = t->shape[t->n_dims - 1], rows = 1;
    for (int i = 0; i < t->n_dims - 1; i++) rows *= t->shape[i];
    if (cols <= 0 || rows <= 0 || cols % sk_dtype_block(t->type) != 0)
        return sk_fail(SK_ERR_FORMAT, "cpu: tensor '%s': bad shape for %s", t->name,
                       sk_dtype_name(t->type));
    size_t row_bytes = sk_dtype_row_bytes(t->type, cols);
    if ((uint64_t)rows > SIZE_MAX / row_bytes || (size_t)rows * row_bytes > t->nbytes)
        return sk_fail(SK_ERR_FORMAT, "cpu: tensor '%s': %zu bytes of data, too few for its shape",
                       t->name, t->nbytes);
    sk_weight *w = sk_xcalloc(1, sizeof *w);
    w->type = t->type;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = row_bytes;
    w->data = t->data;
    if (t->n_dims == 1 && t->type != SK_F32) {
        w->owned = malloc((size_t)cols * sizeof(float));
        if (!w->owned) {
            free(w);
            return sk_fail(SK_ERR_NOMEM, "cpu: tensor '%s': out of memory", t->name);
        }
        sk_dequant_row(t->type, t->data, w->owned, cols);
        w->type = SK_F32;
        w->row_bytes = (size_t)cols * sizeof(float);
        w->data = w->owned;
    }
    *out = w;
    return SK_OK;
}

static sk_status cpu_weight_random(sk_backend *be, const sk_tensor *t, float mean, float std,
                                   uint64_t seed, sk_weight **out) {
    *out = NULL;
    int64_t cols = t->shape[t->n_dims - 1], rows = sk_tensor_nelem(t) / cols;
    size_t n = (size_t)rows * (size_t)cols;
    /* Refuse what cannot fit instead of letting the OOM killer decide: fp32 on the CPU. */
    long pages = sysconf(_SC_PHYS_PAGES), psize = sysconf(_SC_PAGESIZE);
    if (pages > 0 && psize > 0 && (double)n * 4 > 0.5 * (double)pages * (double)psize)
        return sk_fail(SK_ERR_NOMEM, "cpu: synthetic tensor '%s' (%zu fp32 values) does not fit in "
                       "host memory; use --device cuda for big shapes", t->name, n);
    float *d = malloc(n * sizeof(float));
    if (!d) return sk_fail(SK_ERR_NOMEM, "cpu: tensor '%s': out of memory", t->name);
    const float a = std * 1.7320508f;
    for (size_t i = 0; i < n; i++) d[i] = mean + a * sk_rand_uniform(seed, i);
    sk_weight *w = sk_xcalloc(1, sizeof *w);
    w->type = SK_F32;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = (size_t)cols * sizeof(float);
    w->data = w->owned = d;
    *out = w;
    return SK_OK;
}

static void cpu_weight_free(sk_backend *be, sk_weight *w) {
    if (!w) return;
    free(w->owned);
    free(w);
}

/* A 1-D weight (norm, bias) as an fp32 vector of n. */
static const float *vec_of(const sk_weight *w, int64_t n) {
    SK_ASSERT(w->type == SK_F32 && w->rows * w->cols == n);
    SK_ASSERT(((uintptr_t)w->data % sizeof(float)) == 0);
    return w->data;
}

/* A pool of n_pages pages (n_slots slots of pages_per_slot pages when n_slots > 0). */
static sk_status kv_alloc(const sk_kv_desc *d, int n_slots, int pages_per_slot, int n_ctx,
                          sk_kv_cache **out) {
    *out = NULL;
    if (d->n_layers <= 0 || d->n_kv_heads <= 0 || d->head_dim <= 0 || d->page_size <= 0 ||
        d->n_pages <= 0)
        return sk_fail(SK_ERR_ARG, "cpu: KV cache with a non-positive size");
    size_t le = (size_t)d->n_pages, total;
    if (__builtin_mul_overflow(le, (size_t)d->page_size, &le) ||
        __builtin_mul_overflow(le, (size_t)d->n_kv_heads, &le) ||
        __builtin_mul_overflow(le, (size_t)d->head_dim, &le) ||
        __builtin_mul_overflow(le, (size_t)d->n_layers, &total) ||
        __builtin_mul_overflow(total, sizeof(float), &total))
        return sk_fail(SK_ERR_NOMEM, "cpu: KV cache size overflows");
    sk_kv_cache *kv = sk_xcalloc(1, sizeof *kv);
    kv->n_layers = d->n_layers;
    kv->n_kv_heads = d->n_kv_heads;
    kv->head_dim = d->head_dim;
    kv->page_size = d->page_size;
    kv->n_pages = d->n_pages;
    kv->n_slots = n_slots;
    kv->pages_per_slot = pages_per_slot;
    kv->n_ctx = n_ctx;
    kv->layer_elems = le;
    kv->k = calloc(1, total);
    kv->v = calloc(1, total);
    if (!kv->k || !kv->v) {
        free(kv->k);
        free(kv->v);
        free(kv);
        return sk_fail(SK_ERR_NOMEM, "cpu: cannot allocate a KV cache of 2 x %zu bytes", total);
    }
    *out = kv;
    return SK_OK;
}

static sk_status cpu_kv_new(sk_backend *be, int n_layers, int n_kv_heads, int head_dim, int n_ctx,
                            int n_seq, sk_kv_cache **out) {
    *out = NULL;
    if (n_ctx <= 0 || n_seq <= 0) return sk_fail(SK_ERR_ARG, "cpu: KV cache with a non-positive size");
    const int pps = (n_ctx + CPU_PAGE_SIZE - 1) / CPU_PAGE_SIZE;
    if ((int64_t)pps * n_seq > INT32_MAX) return sk_fail(SK_ERR_NOMEM, "cpu: KV cache size overflows");
    const sk_kv_desc d = {n_layers, n_kv_heads, head_dim, CPU_PAGE_SIZE, pps * n_seq, n_ctx};
    return kv_alloc(&d, n_seq, pps, n_ctx, out);
}

/* Any page size works on the CPU. */
static sk_status cpu_kv_pool_new(sk_backend *be, const sk_kv_desc *d, sk_kv_cache **out) {
    *out = NULL;
    if (!d) return sk_fail(SK_ERR_ARG, "cpu: KV pool without a descriptor");
    return kv_alloc(d, 0, 0, 0, out);
}

static void cpu_kv_free(sk_backend *be, sk_kv_cache *kv) {
    if (!kv) return;
    free(kv->k);
    free(kv->v);
    free(kv);
}

static void cpu_mem_info(sk_backend *be, size_t *free_bytes, size_t *total_bytes) {
    if (free_bytes) *free_bytes = CPU_MEM_DEFAULT;
    if (total_bytes) *total_bytes = CPU_MEM_DEFAULT;
}

/* Grows *p (an int32 array of *cap) to hold n. */
static sk_status grow_i32(int32_t **p, int *cap, int n) {
    if (n <= *cap) return SK_OK;
    int32_t *q = realloc(*p, sizeof(int32_t) * (size_t)n);
    if (!q) return sk_fail(SK_ERR_NOMEM, "cpu: out of memory for a batch's tables");
    *p = q;
    *cap = n;
    return SK_OK;
}

/* pt == NULL: slot mode. */
static sk_status cpu_begin_paged(sk_backend *be, const sk_batch *b, const sk_page_tables *pt) {
    cpu_ctx *c = ctx_of(be);
    if (!b || b->n_tokens <= 0 || !b->tokens || !b->pos || !b->seq)
        return sk_fail(SK_ERR_ARG, "cpu: empty batch");
    if (b->n_tokens > c->cap) {
        int cap = b->n_tokens;
        int32_t *tk = malloc(sizeof(int32_t) * (size_t)cap * 3);
        if (!tk) return sk_fail(SK_ERR_NOMEM, "cpu: out of memory for a batch of %d", cap);
        free(c->tokens);
        c->tokens = tk;
        c->pos = tk + cap;
        c->seq = tk + 2 * cap;
        c->cap = cap;
    }
    const int T = b->n_tokens;
    if (pt) {
        if (pt->n_seqs <= 0 || !pt->indptr || !pt->ids || pt->indptr[0] != 0)
            return sk_fail(SK_ERR_ARG, "cpu: batch page tables: %d sequences, indptr[0] %d",
                           pt->n_seqs, pt->indptr ? pt->indptr[0] : -1);
        for (int s = 0; s < pt->n_seqs; s++)
            if (pt->indptr[s + 1] < pt->indptr[s])
                return sk_fail(SK_ERR_ARG, "cpu: batch page tables: indptr decreases at %d", s);
        for (int i = 0; i < T; i++)
            if (b->seq[i] < 0 || b->seq[i] >= pt->n_seqs ||
                pt->indptr[b->seq[i] + 1] == pt->indptr[b->seq[i]])
                return sk_fail(SK_ERR_ARG, "cpu: batch row %d: sequence %d is not in the %d "
                               "sequences of the page tables or has no pages", i, b->seq[i],
                               pt->n_seqs);
        const int n_ids = pt->indptr[pt->n_seqs];
        SK_TRY(grow_i32(&c->indptr, &c->seq_cap, pt->n_seqs + 1));
        SK_TRY(grow_i32(&c->ids, &c->ids_cap, n_ids > 0 ? n_ids : 1));
        memcpy(c->indptr, pt->indptr, sizeof(int32_t) * (size_t)(pt->n_seqs + 1));
        memcpy(c->ids, pt->ids, sizeof(int32_t) * (size_t)n_ids);
        c->n_seqs = pt->n_seqs;
    }
    for (int i = 0; i < T; i++)
        if (b->pos[i] < 0 || b->seq[i] < 0)
            return sk_fail(SK_ERR_ARG, "cpu: batch row %d: position %d, sequence %d", i,
                           b->pos[i], b->seq[i]);
    c->slots = pt == NULL;
    c->T = T;
    memcpy(c->tokens, b->tokens, sizeof(int32_t) * (size_t)T);
    memcpy(c->pos, b->pos, sizeof(int32_t) * (size_t)T);
    memcpy(c->seq, b->seq, sizeof(int32_t) * (size_t)T);
    return SK_OK;
}

static sk_status cpu_begin(sk_backend *be, const sk_batch *b) { return cpu_begin_paged(be, b, NULL); }

/* ---- ops -------------------------------------------------------------------------------- */

static void cpu_embed(sk_backend *be, const sk_weight *table, void *out) {
    cpu_ctx *c = ctx_of(be);
    float *o = out;
    const int64_t D = table->cols;
    for (int t = 0; t < c->T; t++) {
        SK_ASSERT(c->tokens[t] >= 0 && c->tokens[t] < table->rows);
        const uint8_t *src = (const uint8_t *)table->data + (size_t)c->tokens[t] * table->row_bytes;
        sk_dequant_row(table->type, src, o + (size_t)t * D, D);
    }
}

static void cpu_rmsnorm(sk_backend *be, const void *x, const sk_weight *w, float eps, int T, int D,
                        void *out) {
    cpu_ctx *c = ctx_of(be);
    const float *wv = vec_of(w, D);
#pragma omp parallel for num_threads(c->n_threads) if ((int64_t)T * D >= CPU_PAR_MIN)
    for (int t = 0; t < T; t++) {
        const float *xr = (const float *)x + (size_t)t * D;
        float *o = (float *)out + (size_t)t * D;
        double ss = 0.0;
        for (int i = 0; i < D; i++) ss += (double)xr[i] * xr[i];
        float scale = (float)(1.0 / sqrt(ss / D + (double)eps));
        for (int i = 0; i < D; i++) o[i] = wv[i] * (scale * xr[i]);
    }
}

static void cpu_layernorm(sk_backend *be, const void *x, const sk_weight *w, const sk_weight *b,
                          float eps, int T, int D, void *out) {
    cpu_ctx *c = ctx_of(be);
    const float *wv = vec_of(w, D), *bv = b ? vec_of(b, D) : NULL;
#pragma omp parallel for num_threads(c->n_threads) if ((int64_t)T * D >= CPU_PAR_MIN)
    for (int t = 0; t < T; t++) {
        const float *xr = (const float *)x + (size_t)t * D;
        float *o = (float *)out + (size_t)t * D;
        double sum = 0.0;
        for (int i = 0; i < D; i++) sum += xr[i];
        double mean = sum / D, var = 0.0;
        for (int i = 0; i < D; i++) var += ((double)xr[i] - mean) * ((double)xr[i] - mean);
        float rstd = (float)(1.0 / sqrt(var / D + (double)eps)), fmean = (float)mean;
        for (int i = 0; i < D; i++) o[i] = (xr[i] - fmean) * rstd * wv[i] + (bv ? bv[i] : 0.0f);
    }
}

static void cpu_matmul(sk_backend *be, const void *x, int T, const sk_weight *w,
                       const sk_weight *bias, void *out) {
    cpu_ctx *c = ctx_of(be);
    const int64_t N = w->rows, K = w->cols;
    const float *xv = x, *bv = bias ? vec_of(bias, N) : NULL;
    float *o = out;
    /* Four weight rows at a time (dequantized once), each x row dotted against the four. */
    const int tile = 4;
    float *scratch = scratch_reserve(c, (size_t)K * tile);
    const size_t per = c->scratch_per;
    const int64_t n_tiles = (N + tile - 1) / tile;
#pragma omp parallel for num_threads(c->n_threads)                                                 \
    schedule(static) if (N * K * T >= CPU_PAR_MIN_MACS)
    for (int64_t it = 0; it < n_tiles; it++) {
        float *buf = scratch + per * (size_t)omp_get_thread_num();
        const int64_t n0 = it * tile;
        if (n0 + 4 > N) {
            for (int64_t n = n0; n < N; n++) {
                const float *row = weight_row(w, n, buf);
                const float b = bv ? bv[n] : 0.0f;
                for (int t = 0; t < T; t++)
                    o[(size_t)t * N + n] = dot1_f32(xv + (size_t)t * K, row, K) + b;
            }
            continue;
        }
        const float *r0 = weight_row(w, n0, buf), *r1 = weight_row(w, n0 + 1, buf + K);
        const float *r2 = weight_row(w, n0 + 2, buf + 2 * K),
                    *r3 = weight_row(w, n0 + 3, buf + 3 * K);
        for (int t = 0; t < T; t++) {
            float sc[4];
            dot4_f32(xv + (size_t)t * K, r0, r1, r2, r3, K, sc);
            float *orow = o + (size_t)t * N + n0;
            for (int j = 0; j < 4; j++) orow[j] = sc[j] + (bv ? bv[n0 + j] : 0.0f);
        }
    }
}

static void cpu_add(sk_backend *be, void *x, const void *y, size_t n) {
    cpu_ctx *c = ctx_of(be);
    float *xv = x;
    const float *yv = y;
#pragma omp parallel for num_threads(c->n_threads) if (n >= CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) xv[i] += yv[i];
}

static void cpu_swiglu(sk_backend *be, const void *gate, const void *up, size_t n, void *out) {
    cpu_ctx *c = ctx_of(be);
    const float *g = gate, *u = up;
    float *o = out;
#pragma omp parallel for num_threads(c->n_threads) if (n >= CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) o[i] = g[i] / (1.0f + expf(-g[i])) * u[i];
}

static void cpu_gelu(sk_backend *be, void *x, size_t n) {
    cpu_ctx *c = ctx_of(be);
    float *xv = x;
    const float inv_sqrt2 = 0.70710678118654752440f;
    /* 0.5 x (1 + erf(x/sqrt2)) written as 0.5 x erfc(-x/sqrt2): the same function, without the
     * cancellation in 1 + erf for negative x. */
#pragma omp parallel for num_threads(c->n_threads) if (n >= CPU_PAR_MIN)
    for (size_t i = 0; i < n; i++) xv[i] = 0.5f * xv[i] * erfcf(-xv[i] * inv_sqrt2);
}

/* theta_i = pos * base^(-2i/rope_dim), computed in float as llama2.c does
 * (freq = 1 / powf(base, 2i / rope_dim); val = pos * freq) so its greedy outputs match exactly. */
static void cpu_rope(sk_backend *be, void *x, int T, int n_heads, int row_stride,
                     const sk_rope_params *rp) {
    cpu_ctx *c = ctx_of(be);
    SK_ASSERT(T == c->T);
    SK_ASSERT(rp->rope_dim % 2 == 0 && rp->rope_dim <= rp->head_dim);
    const int half = rp->rope_dim / 2, hd = rp->head_dim;
#pragma omp parallel for num_threads(c->n_threads) if ((int64_t)T * n_heads * hd >= CPU_PAR_MIN)
    for (int t = 0; t < T; t++) {
        float cs[512], sn[512]; /* rope_dim/2 <= 512 (head_dim <= 1024, checked by validate) */
        SK_ASSERT(half <= 512);
        for (int i = 0; i < half; i++) {
            float freq = 1.0f / powf(rp->theta, (float)(2 * i) / (float)rp->rope_dim);
            float val = (float)c->pos[t] * freq;
            cs[i] = cosf(val);
            sn[i] = sinf(val);
        }
        float *row = (float *)x + (size_t)t * row_stride;
        for (int h = 0; h < n_heads; h++) {
            float *v = row + (size_t)h * hd;
            for (int i = 0; i < half; i++) {
                int ia = rp->pairing == SK_ROPE_ADJACENT ? 2 * i : i;
                int ib = rp->pairing == SK_ROPE_ADJACENT ? 2 * i + 1 : i + half;
                float a = v[ia], b = v[ib];
                v[ia] = a * cs[i] - b * sn[i];
                v[ib] = a * sn[i] + b * cs[i];
            }
        }
    }
}

/* The page list of row t's sequence for cache kv and the number of pages in it: the batch's
 * tables, or in slot mode the identity tables of kv's slot. */
static const int32_t *row_pages(cpu_ctx *c, const sk_kv_cache *kv, int t, int *n) {
    const int s = c->seq[t];
    if (c->slots) {
        SK_ASSERT(kv->n_slots > 0 && s < kv->n_slots && c->pos[t] < kv->n_ctx);
        *n = kv->pages_per_slot;
        return c->slot_ids + (size_t)s * kv->pages_per_slot;
    }
    *n = c->indptr[s + 1] - c->indptr[s];
    return c->ids + c->indptr[s];
}

static void cpu_attention(sk_backend *be, sk_kv_cache *kv, int layer, const void *q, int q_stride,
                          const void *k, const void *v, int kv_stride, int n_heads, void *out) {
    cpu_ctx *c = ctx_of(be);
    const int T = c->T, KVH = kv->n_kv_heads, hd = kv->head_dim, ps = kv->page_size;
    SK_ASSERT(layer >= 0 && layer < kv->n_layers);
    SK_ASSERT(n_heads > 0 && n_heads % KVH == 0);
    const int group = n_heads / KVH;
    const size_t pos_stride = (size_t)KVH * hd; /* floats between consecutive positions */
    float *kc = kv->k + (size_t)layer * kv->layer_elems;
    float *vc = kv->v + (size_t)layer * kv->layer_elems;
    if (c->slots) { /* identity tables covering kv's slots */
        const int n = kv->n_slots * kv->pages_per_slot;
        SK_ASSERT(kv->n_slots > 0); /* slot mode needs a kv_new cache */
        if (n > c->slot_ids_n) {
            free(c->slot_ids);
            c->slot_ids = malloc(sizeof(int32_t) * (size_t)n);
            SK_ASSERT(c->slot_ids != NULL);
            for (int i = 0; i < n; i++) c->slot_ids[i] = i;
            c->slot_ids_n = n;
        }
    }

    /* Every row's K/V first: a row may attend to rows after it in the batch. */
    int max_pos = 0;
    for (int t = 0; t < T; t++) {
        int np;
        const int32_t *pg = row_pages(c, kv, t, &np);
        const int p = c->pos[t];
        SK_ASSERT(p / ps < np && pg[p / ps] >= 0 && pg[p / ps] < kv->n_pages);
        size_t at = ((size_t)pg[p / ps] * ps + (size_t)(p % ps)) * pos_stride;
        memcpy(kc + at, (const float *)k + (size_t)t * kv_stride, pos_stride * sizeof(float));
        memcpy(vc + at, (const float *)v + (size_t)t * kv_stride, pos_stride * sizeof(float));
        if (p > max_pos) max_pos = p;
    }
    /* Pages read (every position up to each row's) must exist too. */
    for (int t = 0; t < T; t++) {
        int np;
        const int32_t *pg = row_pages(c, kv, t, &np);
        for (int j = 0; j <= c->pos[t] / ps; j++) SK_ASSERT(pg[j] >= 0 && pg[j] < kv->n_pages);
    }

    float *scratch = scratch_reserve(c, (size_t)max_pos + 1);
    const size_t per = c->scratch_per;
    const float scale = 1.0f / sqrtf((float)hd);
    const int64_t n_work = (int64_t)T * n_heads;
    int64_t macs = 0;
    for (int t = 0; t < T; t++) macs += (int64_t)(c->pos[t] + 1) * n_heads * hd * 2;
    /* Round-robin (chunk 1): later tokens of a prompt see more positions. */
#pragma omp parallel for num_threads(c->n_threads) schedule(static, 1) if (macs >= CPU_PAR_MIN_MACS)
    for (int64_t wi = 0; wi < n_work; wi++) {
        const int t = (int)(wi / n_heads), h = (int)(wi % n_heads);
        float *att = scratch + per * (size_t)omp_get_thread_num();
        const int P = c->pos[t] + 1;
        int np;
        const int32_t *pg = row_pages(c, kv, t, &np);
        const size_t hoff = (size_t)(h / group) * hd;
        const float *qh = (const float *)q + (size_t)t * q_stride + (size_t)h * hd;
        float mx = -INFINITY;
        for (int p = 0; p < P; p++) {
            const size_t at = ((size_t)pg[p / ps] * ps + (size_t)(p % ps)) * pos_stride + hoff;
            att[p] = dot_f32(qh, kc + at, hd) * scale;
            if (att[p] > mx) mx = att[p];
        }
        float sum = 0.0f;
        for (int p = 0; p < P; p++) {
            att[p] = expf(att[p] - mx);
            sum += att[p];
        }
        const float inv = 1.0f / sum;
        float *oh = (float *)out + (size_t)t * n_heads * hd + (size_t)h * hd;
        for (int d = 0; d < hd; d++) oh[d] = 0.0f;
        for (int p = 0; p < P; p++) {
            const float a = att[p] * inv;
            const size_t at = ((size_t)pg[p / ps] * ps + (size_t)(p % ps)) * pos_stride + hoff;
            const float *vp = vc + at;
            for (int d = 0; d < hd; d++) oh[d] = fmaf(a, vp[d], oh[d]);
        }
    }
}

static void cpu_argmax(sk_backend *be, const void *x, int T, int N, int32_t *out_host) {
    for (int t = 0; t < T; t++) {
        const float *r = (const float *)x + (size_t)t * N;
        int32_t best = 0;
        for (int i = 1; i < N; i++)
            if (r[i] > r[best]) best = i;
        out_host[t] = best;
    }
}

static void cpu_sample(sk_backend *be, const void *x, int T, int N, const sk_sample_row *rows,
                       int32_t *out_host) {
    (void)be;
    sk_sample_cand *scratch = sk_xmalloc(sizeof(sk_sample_cand) * (size_t)N);
    for (int t = 0; t < T; t++)
        out_host[t] = sk_sample_core((const float *)x + (size_t)t * N, N, &rows[t], scratch);
    free(scratch);
}

static void cpu_destroy(sk_backend *be) {
    if (!be) return;
    cpu_ctx *c = be->ctx;
    if (c) {
        free(c->tokens);
        free(c->indptr);
        free(c->ids);
        free(c->slot_ids);
        free(c->scratch);
        free(c);
    }
    free(be);
}

static const sk_backend_ops k_cpu_ops = {
    .destroy = cpu_destroy,
    .alloc = cpu_alloc,
    .free = cpu_free,
    .download_f32 = cpu_download_f32,
    .weight_load = cpu_weight_load,
    .upload_f32 = cpu_upload_f32,
    .weight_free = cpu_weight_free,
    .weight_random = cpu_weight_random,
    .kv_new = cpu_kv_new,
    .kv_pool_new = cpu_kv_pool_new,
    .kv_free = cpu_kv_free,
    .mem_info = cpu_mem_info,
    .begin = cpu_begin,
    .begin_paged = cpu_begin_paged,
    .embed = cpu_embed,
    .rmsnorm = cpu_rmsnorm,
    .layernorm = cpu_layernorm,
    .matmul = cpu_matmul,
    .add = cpu_add,
    .swiglu = cpu_swiglu,
    .gelu = cpu_gelu,
    .rope = cpu_rope,
    .attention = cpu_attention,
    .argmax = cpu_argmax,
    .sample = cpu_sample,
};

sk_status sk_backend_cpu_new(int n_threads, sk_backend **out) {
    *out = NULL;
    if (n_threads < 0) return sk_fail(SK_ERR_ARG, "cpu: n_threads %d is negative", n_threads);
    cpu_ctx *c = sk_xcalloc(1, sizeof *c);
    c->n_threads = n_threads > 0 ? n_threads : omp_get_max_threads();
    if (c->n_threads < 1) c->n_threads = 1;
    sk_backend *be = sk_xcalloc(1, sizeof *be);
    be->ops = &k_cpu_ops;
    be->name = "cpu";
    be->act_bytes = sizeof(float);
    be->kv_page_size = CPU_PAGE_SIZE;
    be->kv_elem_bytes = sizeof(float);
    be->ctx = c;
    *out = be;
    return SK_OK;
}
