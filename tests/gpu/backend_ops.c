/* The CUDA backend against the CPU reference, op by op (STYLE.md 2, as ggml's test-backend-ops):
 * one table of cases per op, the same random inputs (never zeros) on both backends, comparison
 * by normalised error max|gpu - cpu| / max|cpu| with a per-op threshold, guard elements around
 * every output (a sentinel that must survive). Prints one line per case; exits non-zero on any
 * failure. Needs a Hopper GPU; run it on the GPU machine.
 *
 * Every case runs twice, on a CUDA backend with bf16 and one with fp16 weights and KV cache.
 * Activations are fp32 on both backends, so the inputs are plain fp32 values and the thresholds
 * measure what the CUDA op adds: the rounding of values it stores in the half type (round to
 * nearest even; relative error at most u = 2^-8 = 3.9e-3 for bf16, 8 significant bits, and
 * u = 2^-11 = 4.9e-4 for fp16, 11 significant bits) and fp32 arithmetic in another order or with
 * other expf/erff/sincosf implementations (a few ulp, ~1e-7 relative). Each threshold below says
 * which of these apply. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* setenv */
#endif
#include "backend/backend.h"
#include "backend/cuda/cuda_backend.h"
#include "model/model.h"
#include "testlib.h"

#include <math.h>

#include <stdbool.h>
#include <stdint.h>

static sk_backend *g_cpu, *g_gpu;
static unsigned long long g_rng = 0x2545f4914f6cdd1dull;

/* Exactly representable in bf16 and fp16 (3 * 2^12) and far outside every input and output
 * range. */
#define SENTINEL 12288.0f
/* Guard elements each side. GUARD keeps the usable part 16-byte aligned, as model buffers are;
 * GUARD_MIS (odd) leaves it only 4-byte aligned on the GPU, so no kernel may assume more. */
#define GUARD 64
#define GUARD_MIS 61

/* The GPU backend's half type under test and its unit roundoff u (see the top). */
static const char *g_dtype;
static double g_u;

/* add: one fp32 addition per element on both backends, correctly rounded on both: exact. */
#define TOL_ADD 0.0
/* swiglu, gelu: fp32 expf/erff of another library (<= 2 ulp) and an fp32 division: 1e-5 of
 * max|cpu| leaves a factor ~30 over the worst case (~4 ulp = 4.8e-7 relative of an element). */
#define TOL_ELEMENTWISE 1e-5
/* gelu: as above, but a lone element (n = 1) makes the normalised error the plain relative error
 * of one output, and for a negative input that output is small and comes from erfcf in its tail,
 * where CUDA's and glibc's erfcf differ by more: 1.09e-5 was measured on the H200 (2026-11-29)
 * against the 1e-5 above. 1e-4 still catches a wrong formula (tanh form: ~1e-3). */
#define TOL_GELU 1e-4
/* Norms: fp32 statistics in another summation order (the CPU sums in double) and the reciprocal
 * square root: ~1e-6 relative; 1e-5. */
#define TOL_NORM 1e-5
/* RoPE: angles bit-identical (host-computed frequencies), sin/cos differ by <= 2 ulp of fp32, an
 * FMA may contract a*c - b*s: a few ulp of the outputs, 1e-5. */
#define TOL_ROPE 1e-5
/* Embed: the table is stored in the half type, each element within u of its value, so of
 * max|cpu|: u. A table of the half type's own format (BF16 on bf16, F16 on fp16) is copied
 * exactly: 0. */
#define TOL_EMBED (g_u)
/* Matmul: x is cast to the half type and W stored in it, each with a relative error uniform in
 * +-u (std u/sqrt(3)); a product of K terms then has an error of std sqrt(2/3) u = 0.82 u of its
 * typical size (independent errors, K changes the typical size, not the ratio), fp32
 * accumulation adds ~1e-7. The largest error over all outputs (~4.5 std for thousands of
 * outputs) over max|cpu| (itself ~4.5 typical sizes) is then ~0.82 u; fewer outputs make both
 * maxima smaller together. The bias is added in fp32. 2 u: 7.8e-3 (bf16), 9.8e-4 (fp16). */
#define TOL_MATMUL (2.0 * g_u)
/* Attention: K and V are stored in the half type (relative error <= u each). A score
 * q.k / sqrt(hd) (std ~2 here: q is scaled up) then moves by ~u/sqrt(3) of its size times
 * sqrt(2) (k's rounding errors add up like the products), at most ~2 u absolute over the
 * positions; the softmax weights move by that relatively, and the output (a weighted mean of V
 * rows in [-1, 1], itself rounded by <= u per element) moves by at most ~2 u of max|v|, while
 * max|cpu| is ~0.3 - 1 of max|v| (peaked softmax). Scores, softmax and accumulation are fp32
 * (~1e-6 even over thousands of positions). 8 u: 3.1e-2 (bf16), 3.9e-3 (fp16). */
#define TOL_ATTN (8.0 * g_u)

/* ---- helpers ------------------------------------------------------------------------------ */

/* n uniform fp32 values in [lo, hi) (never all zeros): activations and weights alike, unrounded
 * (the GPU's rounding to its half type is what is tested). */
static float *rnd(long n, float lo, float hi) {
    float *x = malloc(sizeof(float) * (size_t)(n > 0 ? n : 1));
    SK_ASSERT(x);
    sk_test_rand(x, n, lo, hi, &g_rng);
    return x;
}

static void upload(sk_backend *be, void *dst, const float *src, long n) {
    if (be == g_cpu)
        memcpy(dst, src, sizeof(float) * (size_t)n);
    else
        sk_cuda_upload_f32(be, dst, src, (size_t)n);
}

/* A buffer of n activations on one backend with `guard` sentinel elements on each side. */
typedef struct gbuf {
    sk_backend *be;
    void *base, *p;
    long n, guard;
} gbuf;

static gbuf gb_new(sk_backend *be, long n, long guard) {
    gbuf g = {be, NULL, NULL, n, guard};
    const long tot = n + 2 * guard;
    g.base = be->ops->alloc(be, (size_t)tot * be->act_bytes);
    SK_ASSERT(g.base);
    g.p = (char *)g.base + (size_t)guard * be->act_bytes;
    float *s = malloc(sizeof(float) * (size_t)tot);
    SK_ASSERT(s);
    for (long i = 0; i < tot; i++) s[i] = SENTINEL;
    upload(be, g.base, s, tot);
    free(s);
    return g;
}

static bool gb_guards_ok(const gbuf *g) {
    const long tot = g->n + 2 * g->guard;
    float *s = malloc(sizeof(float) * (size_t)tot);
    SK_ASSERT(s);
    g->be->ops->download_f32(g->be, g->base, s, (size_t)tot);
    bool ok = true;
    for (long i = 0; i < g->guard; i++)
        if (s[i] != SENTINEL || s[g->n + g->guard + i] != SENTINEL) ok = false;
    free(s);
    return ok;
}

/* The same buffer on both backends. */
typedef struct pbuf {
    gbuf c, g;
} pbuf;

/* init: n values for both (or NULL: sentinel everywhere). */
static pbuf pb_new(long n, bool mis, const float *init) {
    pbuf b;
    b.c = gb_new(g_cpu, n, GUARD);
    b.g = gb_new(g_gpu, n, mis ? GUARD_MIS : GUARD);
    if (init) {
        upload(g_cpu, b.c.p, init, n);
        upload(g_gpu, b.g.p, init, n);
    }
    return b;
}

static void pb_free(pbuf *b) {
    g_cpu->ops->free(g_cpu, b->c.base);
    g_gpu->ops->free(g_gpu, b->g.base);
}

/* Compares the GPU's copy of out with the CPU's and checks both buffers' guards; prints one
 * line. Returns the normalised error. */
static double finish(const char *what, const pbuf *out, double tol) {
    const long n = out->c.n;
    float *a = malloc(sizeof(float) * (size_t)n), *b = malloc(sizeof(float) * (size_t)n);
    SK_ASSERT(a && b);
    g_gpu->ops->download_f32(g_gpu, out->g.p, a, (size_t)n);
    g_cpu->ops->download_f32(g_cpu, out->c.p, b, (size_t)n);
    const double err = sk_test_rel_err(a, b, n);
    const bool gok = gb_guards_ok(&out->g), cok = gb_guards_ok(&out->c);
    const bool ok = err <= tol && gok && cok;
    printf("%s %s %-64s err %.2e (max %.1e)%s\n", ok ? "ok  " : "FAIL", g_dtype, what, err, tol,
           gok && cok ? "" : " GUARDS OVERWRITTEN");
    CHECKF(err <= tol, "%s %s: normalised error %.3e > %.1e", g_dtype, what, err, tol);
    CHECKF(gok, "%s %s: GPU guard elements overwritten", g_dtype, what);
    CHECKF(cok, "%s %s: CPU guard elements overwritten", g_dtype, what);
    free(a);
    free(b);
    return err;
}

/* Page tables for the next batches (NULL: slot mode). */
static const sk_page_tables *g_pt;

static void begin_both(int T, const int32_t *tok, const int32_t *pos, const int32_t *seq) {
    int32_t *zeros = NULL;
    if (!tok || !seq) {
        zeros = calloc((size_t)T, sizeof(int32_t));
        SK_ASSERT(zeros);
    }
    sk_batch b = {T, tok ? tok : zeros, pos, seq ? seq : zeros};
    if (g_pt) {
        CHECK(g_cpu->ops->begin_paged(g_cpu, &b, g_pt) == SK_OK);
        CHECK(g_gpu->ops->begin_paged(g_gpu, &b, g_pt) == SK_OK);
    } else {
        CHECK(g_cpu->ops->begin(g_cpu, &b) == SK_OK);
        CHECK(g_gpu->ops->begin(g_gpu, &b) == SK_OK);
    }
    free(zeros);
}

/* ---- weights: blocks built here from the format in dtype.h -------------------------------- */

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}

static int iround(float x) { return (int)lrintf(x); }
static int clampi(int v, int lo, int hi) { return v < lo ? lo : v > hi ? hi : v; }

/* Encodes n values (n a multiple of the block) as type t; returns a malloc'd buffer. */
static uint8_t *encode(sk_dtype t, const float *x, long n, size_t *nbytes) {
    *nbytes = sk_dtype_row_bytes(t, n);
    uint8_t *out = malloc(*nbytes), *p = out;
    SK_ASSERT(out);
    switch (t) {
    case SK_F32: memcpy(out, x, (size_t)n * 4); break;
    case SK_F16:
        for (long i = 0; i < n; i++) put16(out + 2 * i, sk_f32_to_f16(x[i]));
        break;
    case SK_BF16:
        for (long i = 0; i < n; i++) put16(out + 2 * i, sk_f32_to_bf16(x[i]));
        break;
    case SK_Q8_0:
        for (long b = 0; b < n / 32; b++, p += 34) {
            const float *xb = x + 32 * b;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
            const float d = amax / 127.0f, id = d > 0 ? 1.0f / d : 0.0f;
            put16(p, sk_f32_to_f16(d));
            for (int j = 0; j < 32; j++)
                p[2 + j] = (uint8_t)(int8_t)clampi(iround(xb[j] * id), -127, 127);
        }
        break;
    case SK_Q4_0:
        for (long b = 0; b < n / 32; b++, p += 18) {
            const float *xb = x + 32 * b;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
            const float d = amax / 7.0f, id = d > 0 ? 1.0f / d : 0.0f;
            put16(p, sk_f32_to_f16(d));
            for (int j = 0; j < 16; j++) {
                int lo = clampi(iround(xb[j] * id) + 8, 0, 15);
                int hi = clampi(iround(xb[j + 16] * id) + 8, 0, 15);
                p[2 + j] = (uint8_t)(lo | (hi << 4));
            }
        }
        break;
    case SK_Q4_1:
        for (long b = 0; b < n / 32; b++, p += 20) {
            const float *xb = x + 32 * b;
            float mn = xb[0], mx = xb[0];
            for (int j = 1; j < 32; j++) mn = fminf(mn, xb[j]), mx = fmaxf(mx, xb[j]);
            const float d = (mx - mn) / 15.0f, id = d > 0 ? 1.0f / d : 0.0f;
            put16(p, sk_f32_to_f16(d));
            put16(p + 2, sk_f32_to_f16(mn));
            for (int j = 0; j < 16; j++) {
                int lo = clampi(iround((xb[j] - mn) * id), 0, 15);
                int hi = clampi(iround((xb[j + 16] - mn) * id), 0, 15);
                p[4 + j] = (uint8_t)(lo | (hi << 4));
            }
        }
        break;
    case SK_Q4G32:
    case SK_Q4G64:
    case SK_Q4G128: {
        /* Asymmetric min/max per group, integer zero point (dtype.h's layout). */
        const int G = sk_dtype_q4g_group(t), bb = 4 + G / 2;
        for (long b = 0; b < n / G; b++, p += bb) {
            const float *xb = x + (long)G * b;
            float mn = xb[0], mx = xb[0];
            for (int j = 1; j < G; j++) mn = fminf(mn, xb[j]), mx = fmaxf(mx, xb[j]);
            const float d = (mx - mn) / 15.0f, id = d > 0 ? 1.0f / d : 0.0f;
            const int z = clampi(iround(-mn * id), 0, 15);
            put16(p, sk_f32_to_f16(d));
            p[2] = (uint8_t)z;
            p[3] = 0;
            for (int j = 0; j < G / 2; j++) {
                int lo = clampi(iround(xb[2 * j] * id) + z, 0, 15);
                int hi = clampi(iround(xb[2 * j + 1] * id) + z, 0, 15);
                p[4 + j] = (uint8_t)(lo | (hi << 4));
            }
        }
        break;
    }
    default: SK_ASSERT(!"encode: type");
    }
    return out;
}

/* One weight loaded on both backends from the same tensor (rows x cols; 1-D when rows == 0).
 * data: the encoded tensor, kept until pw_free (the CPU backend points into it). */
typedef struct pweight {
    sk_weight *c, *g;
    uint8_t *data;
} pweight;

static pweight pw_new(sk_dtype t, long rows, long cols, float lo, float hi) {
    const long n = (rows ? rows : 1) * cols;
    float *x = rnd(n, lo, hi);
    sk_tensor te;
    memset(&te, 0, sizeof te);
    snprintf(te.name, sizeof te.name, "test.%s", sk_dtype_name(t));
    te.type = t;
    te.n_dims = rows ? 2 : 1;
    if (rows) {
        te.shape[0] = rows;
        te.shape[1] = cols;
    } else {
        te.shape[0] = cols;
    }
    pweight w = {NULL, NULL, NULL};
    w.data = encode(t, x, n, &te.nbytes);
    te.data = w.data;
    free(x);
    CHECK(g_cpu->ops->weight_load(g_cpu, &te, &w.c) == SK_OK);
    CHECK(g_gpu->ops->weight_load(g_gpu, &te, &w.g) == SK_OK);
    SK_ASSERT(w.c && w.g);
    return w;
}

static void pw_free(pweight *w) {
    g_cpu->ops->weight_free(g_cpu, w->c);
    g_gpu->ops->weight_free(g_gpu, w->g);
    free(w->data);
}

/* Element off of a buffer (pointer arithmetic in the backend's activation size). */
static void *at(const gbuf *g, long off) { return (char *)g->p + (size_t)off * g->be->act_bytes; }

static const sk_dtype k_types[] = {SK_F32, SK_F16, SK_BF16, SK_Q8_0, SK_Q4_0, SK_Q4_1};
#define N_TYPES ((int)(sizeof k_types / sizeof k_types[0]))

/* ---- embed -------------------------------------------------------------------------------- */

static void test_embed(void) {
    static const struct {
        int V, D;
        bool mis;
    } cs[] = {{1000, 576, false}, {50, 100, true}, {7, 64, true}};
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        for (int ti = 0; ti < N_TYPES; ti++) {
            const sk_dtype t = k_types[ti];
            const int V = cs[ci].V, D = cs[ci].D, T = 9;
            if (D % sk_dtype_block(t) != 0) continue;
            pweight w = pw_new(t, V, D, -1.0f, 1.0f);
            int32_t tok[9], pos[9];
            for (int i = 0; i < T; i++) {
                tok[i] = (int32_t)((g_rng >> 11) % (unsigned long long)V);
                g_rng = g_rng * 6364136223846793005ull + 1442695040888963407ull;
                pos[i] = i;
            }
            tok[0] = 0;
            tok[T - 1] = V - 1;
            begin_both(T, tok, pos, NULL);
            pbuf out = pb_new((long)T * D, cs[ci].mis, NULL);
            g_cpu->ops->embed(g_cpu, w.c, out.c.p);
            g_gpu->ops->embed(g_gpu, w.g, out.g.p);
            char what[160];
            snprintf(what, sizeof what, "embed %s V=%d D=%d T=%d%s", sk_dtype_name(t), V, D, T,
                     cs[ci].mis ? " unaligned" : "");
            const bool own = (t == SK_BF16 && !strcmp(g_dtype, "bf16")) ||
                             (t == SK_F16 && !strcmp(g_dtype, "fp16"));
            finish(what, &out, own ? 0.0 : TOL_EMBED);
            pb_free(&out);
            pw_free(&w);
        }
    }
}

/* ---- rmsnorm, layernorm ------------------------------------------------------------------- */

static void test_norms(void) {
    static const struct {
        int T, D;
        bool inplace, mis;
        sk_dtype wt;
    } cs[] = {
        {1, 576, false, false, SK_F32}, {7, 4096, true, false, SK_F32},
        {3, 100, false, true, SK_BF16}, {2, 8192, true, true, SK_F16},
        {33, 64, false, false, SK_F32},
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        const int T = cs[ci].T, D = cs[ci].D;
        const long n = (long)T * D;
        const bool inplace = cs[ci].inplace, mis = cs[ci].mis;
        float *x = rnd(n, -1.0f, 3.0f); /* non-zero mean, so LayerNorm's centring matters */
        pweight w = pw_new(cs[ci].wt, 0, D, 0.5f, 1.5f);
        pweight b = pw_new(cs[ci].wt, 0, D, -0.5f, 0.5f);
        for (int kind = 0; kind < 3; kind++) { /* rmsnorm, layernorm + bias, layernorm */
            pbuf xb = pb_new(n, mis, x);
            pbuf ob = inplace ? xb : pb_new(n, mis, NULL);
            const float eps = 1e-5f;
            if (kind == 0) {
                g_cpu->ops->rmsnorm(g_cpu, xb.c.p, w.c, eps, T, D, ob.c.p);
                g_gpu->ops->rmsnorm(g_gpu, xb.g.p, w.g, eps, T, D, ob.g.p);
            } else {
                g_cpu->ops->layernorm(g_cpu, xb.c.p, w.c, kind == 1 ? b.c : NULL, eps, T, D,
                                      ob.c.p);
                g_gpu->ops->layernorm(g_gpu, xb.g.p, w.g, kind == 1 ? b.g : NULL, eps, T, D,
                                      ob.g.p);
            }
            char what[160];
            snprintf(what, sizeof what, "%s T=%d D=%d w=%s%s%s",
                     kind == 0 ? "rmsnorm" : kind == 1 ? "layernorm+bias" : "layernorm", T, D,
                     sk_dtype_name(cs[ci].wt), inplace ? " in-place" : "",
                     mis ? " unaligned" : "");
            finish(what, &ob, TOL_NORM);
            if (!inplace) pb_free(&ob);
            pb_free(&xb);
        }
        pw_free(&w);
        pw_free(&b);
        free(x);
    }
}

/* ---- add, swiglu, gelu -------------------------------------------------------------------- */

static void test_elementwise(void) {
    static const struct {
        long n;
        bool mis;
    } cs[] = {{1, false}, {7, true}, {12293, false}, {12293, true}, {1L << 20, false}};
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        const long n = cs[ci].n;
        const bool mis = cs[ci].mis;
        float *a = rnd(n, -4.0f, 4.0f), *b = rnd(n, -4.0f, 4.0f);
        char what[160];
        const char *al = mis ? " unaligned" : "";

        pbuf xb = pb_new(n, mis, a), yb = pb_new(n, mis, b);
        g_cpu->ops->add(g_cpu, xb.c.p, yb.c.p, (size_t)n);
        g_gpu->ops->add(g_gpu, xb.g.p, yb.g.p, (size_t)n);
        snprintf(what, sizeof what, "add n=%ld%s", n, al);
        finish(what, &xb, TOL_ADD);
        pb_free(&xb);
        pb_free(&yb);

        pbuf gb = pb_new(n, mis, a), ub = pb_new(n, mis, b), ob = pb_new(n, mis, NULL);
        g_cpu->ops->swiglu(g_cpu, gb.c.p, ub.c.p, (size_t)n, ob.c.p);
        g_gpu->ops->swiglu(g_gpu, gb.g.p, ub.g.p, (size_t)n, ob.g.p);
        snprintf(what, sizeof what, "swiglu n=%ld%s", n, al);
        finish(what, &ob, TOL_ELEMENTWISE);
        g_cpu->ops->swiglu(g_cpu, gb.c.p, ub.c.p, (size_t)n, gb.c.p);
        g_gpu->ops->swiglu(g_gpu, gb.g.p, ub.g.p, (size_t)n, gb.g.p);
        snprintf(what, sizeof what, "swiglu n=%ld out=gate%s", n, al);
        finish(what, &gb, TOL_ELEMENTWISE);
        pb_free(&gb);
        pb_free(&ub);
        pb_free(&ob);

        pbuf eb = pb_new(n, mis, a);
        g_cpu->ops->gelu(g_cpu, eb.c.p, (size_t)n);
        g_gpu->ops->gelu(g_gpu, eb.g.p, (size_t)n);
        snprintf(what, sizeof what, "gelu n=%ld%s", n, al);
        finish(what, &eb, TOL_GELU);
        pb_free(&eb);
        free(a);
        free(b);
    }
}

/* ---- rope --------------------------------------------------------------------------------- */

static void test_rope(void) {
    static const struct {
        int T, H, hd, rope_dim;
        sk_rope_pairing pairing;
        int row_stride, pos0;
        float theta;
        bool mis;
    } cs[] = {
        {5, 4, 64, 64, SK_ROPE_ADJACENT, 256, 0, 10000.0f, false},
        {5, 4, 64, 64, SK_ROPE_HALVES, 256, 0, 10000.0f, false},
        {3, 8, 80, 32, SK_ROPE_HALVES, 8 * 80 + 2 * 80, 4093, 10000.0f, true},
        {3, 8, 80, 32, SK_ROPE_ADJACENT, 8 * 80, 4093, 1e6f, false},
        {17, 2, 128, 128, SK_ROPE_HALVES, 3 * 128 + 5, 2500, 500000.0f, true},
        {1, 71, 64, 64, SK_ROPE_HALVES, 73 * 64, 7000, 10000.0f, false},
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        const int T = cs[ci].T;
        const long n = (long)T * cs[ci].row_stride;
        int32_t pos[32];
        SK_ASSERT(T <= 32);
        for (int t = 0; t < T; t++) pos[t] = cs[ci].pos0 + t;
        begin_both(T, NULL, pos, NULL);
        float *x = rnd(n, -1.0f, 1.0f);
        pbuf xb = pb_new(n, cs[ci].mis, x);
        const sk_rope_params rp = {cs[ci].hd, cs[ci].rope_dim, cs[ci].theta, cs[ci].pairing};
        g_cpu->ops->rope(g_cpu, xb.c.p, T, cs[ci].H, cs[ci].row_stride, &rp);
        g_gpu->ops->rope(g_gpu, xb.g.p, T, cs[ci].H, cs[ci].row_stride, &rp);
        char what[160];
        snprintf(what, sizeof what,
                 "rope %s T=%d H=%d hd=%d rope_dim=%d stride=%d pos=%d.. theta=%g%s",
                 cs[ci].pairing == SK_ROPE_HALVES ? "halves" : "adjacent", T, cs[ci].H,
                 cs[ci].hd, cs[ci].rope_dim, cs[ci].row_stride, cs[ci].pos0, cs[ci].theta,
                 cs[ci].mis ? " unaligned" : "");
        finish(what, &xb, TOL_ROPE);
        pb_free(&xb);
        free(x);
    }
}

/* ---- matmul ------------------------------------------------------------------------------- */

static void test_matmul(void) {
    static const struct {
        int T, N, K;
        bool bias, mis;
    } cs[] = {
        {1, 576, 576, false, false},  {7, 1536, 576, true, false}, {5, 256, 4096, false, false},
        {33, 100, 96, true, true},    {1, 96, 4096, true, true},   {64, 2048, 4096, true, false},
    };
    for (int ti = 0; ti < N_TYPES; ti++) {
        for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
            const sk_dtype t = k_types[ti];
            const int T = cs[ci].T, N = cs[ci].N, K = cs[ci].K;
            float *x = rnd((long)T * K, -1.0f, 1.0f);
            pweight w = pw_new(t, N, K, -1.0f, 1.0f);
            pweight b = {NULL, NULL, NULL};
            if (cs[ci].bias) b = pw_new(SK_F32, 0, N, -1.0f, 1.0f);
            pbuf xb = pb_new((long)T * K, cs[ci].mis, x);
            pbuf ob = pb_new((long)T * N, cs[ci].mis, NULL);
            g_cpu->ops->matmul(g_cpu, xb.c.p, T, w.c, b.c, ob.c.p);
            g_gpu->ops->matmul(g_gpu, xb.g.p, T, w.g, b.g, ob.g.p);
            char what[160];
            snprintf(what, sizeof what, "matmul %s T=%d N=%d K=%d%s%s", sk_dtype_name(t), T, N,
                     K, cs[ci].bias ? " +bias" : "", cs[ci].mis ? " unaligned" : "");
            finish(what, &ob, TOL_MATMUL);
            pb_free(&xb);
            pb_free(&ob);
            pw_free(&w);
            if (cs[ci].bias) pw_free(&b);
            free(x);
        }
    }
}

/* ---- fused projections: matmul_add, weight_concat + matmul (q/k/v), matmul_swiglu ---------- */

/* gelu_matmul_add on the GPU against the CPU's gelu + matmul + add: out0 + gelu(x) W^T (+ b),
 * on copies of x (the op may apply GELU in place) and out0 (aligned unless mis). */
static void check_gelu_matmul_add(const char *what, const float *x, const float *o0, int T, int N,
                                  int K, const pweight *w, const pweight *b, bool mis) {
    CHECK(g_gpu->ops->gelu_matmul_add != NULL);
    pbuf xg = pb_new((long)T * K, mis, x), og = pb_new((long)T * N, mis, o0);
    pbuf tmp = pb_new((long)T * N, false, NULL);
    g_cpu->ops->gelu(g_cpu, xg.c.p, (size_t)T * K);
    g_cpu->ops->matmul(g_cpu, xg.c.p, T, w->c, b->c, tmp.c.p);
    g_cpu->ops->add(g_cpu, og.c.p, tmp.c.p, (size_t)T * N);
    g_gpu->ops->gelu_matmul_add(g_gpu, xg.g.p, T, w->g, b->g, og.g.p);
    finish(what, &og, TOL_MATMUL);
    pb_free(&xg), pb_free(&og), pb_free(&tmp);
}

/* The GPU's decode path (gemv.cuh, T <= 8) and its cuBLASLt path (T > 8, K % 8 != 0, unaligned
 * x) against the CPU's plain ops composed: matmul + add, three matmuls, matmul x2 + swiglu. */
static void test_fused(void) {
    static const struct {
        int T, N, K;
        bool bias, mis;
    } cs[] = {
        {1, 576, 576, false, false}, {2, 1536, 576, true, false}, {3, 264, 4096, false, false},
        {4, 100, 1000, true, false}, {5, 96, 4104, true, true},   {8, 2048, 4096, false, false},
        {8, 33, 256, true, false},   {9, 256, 512, true, false},  {1, 120, 260, false, false},
        {40, 768, 1536, true, false},
    };
    const sk_dtype types[] = {SK_BF16, SK_F32};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
            const sk_dtype t = types[ti];
            const int T = cs[ci].T, N = cs[ci].N, K = cs[ci].K;
            const bool mis = cs[ci].mis;
            char what[160];
            float *x = rnd((long)T * K, -1.0f, 1.0f);
            pbuf xb = pb_new((long)T * K, mis, x);
            /* matmul_add: out = out0 + x W^T (+ b) */
            {
                pweight w = pw_new(t, N, K, -1.0f, 1.0f);
                pweight b = {NULL, NULL, NULL};
                if (cs[ci].bias) b = pw_new(SK_F32, 0, N, -1.0f, 1.0f);
                float *o0 = rnd((long)T * N, -4.0f, 4.0f);
                pbuf ob = pb_new((long)T * N, mis, o0);
                pbuf tmp = pb_new((long)T * N, false, NULL);
                g_cpu->ops->matmul(g_cpu, xb.c.p, T, w.c, b.c, tmp.c.p);
                g_cpu->ops->add(g_cpu, ob.c.p, tmp.c.p, (size_t)T * N);
                CHECK(g_gpu->ops->matmul_add != NULL);
                g_gpu->ops->matmul_add(g_gpu, xb.g.p, T, w.g, b.g, ob.g.p);
                snprintf(what, sizeof what, "matmul_add %s T=%d N=%d K=%d%s%s", sk_dtype_name(t), T,
                         N, K, cs[ci].bias ? " +bias" : "", mis ? " unaligned" : "");
                finish(what, &ob, TOL_MATMUL);
                snprintf(what, sizeof what, "gelu_matmul_add %s T=%d N=%d K=%d%s%s",
                         sk_dtype_name(t), T, N, K, cs[ci].bias ? " +bias" : "",
                         mis ? " unaligned" : "");
                check_gelu_matmul_add(what, x, o0, T, N, K, &w, &b, mis);
                pb_free(&ob);
                pb_free(&tmp);
                pw_free(&w);
                if (cs[ci].bias) pw_free(&b);
                free(o0);
            }
            /* weight_concat (q, k, v of N, N/2, N/2 rows... at least 1) + one matmul */
            {
                const int Nq = N, Nk = N / 2 > 0 ? N / 2 : 1, W = Nq + 2 * Nk;
                pweight wq = pw_new(t, Nq, K, -1.0f, 1.0f), wk = pw_new(t, Nk, K, -1.0f, 1.0f),
                        wv = pw_new(t, Nk, K, -1.0f, 1.0f);
                sk_weight *parts[3] = {wq.g, wk.g, wv.g}, *fused = NULL;
                CHECK(g_gpu->ops->weight_concat(g_gpu, parts, 3, &fused) == SK_OK && fused);
                pbuf ob = pb_new((long)T * W, false, NULL);
                pbuf q = pb_new((long)T * Nq, false, NULL), k = pb_new((long)T * Nk, false, NULL),
                     v = pb_new((long)T * Nk, false, NULL);
                g_cpu->ops->matmul(g_cpu, xb.c.p, T, wq.c, NULL, q.c.p);
                g_cpu->ops->matmul(g_cpu, xb.c.p, T, wk.c, NULL, k.c.p);
                g_cpu->ops->matmul(g_cpu, xb.c.p, T, wv.c, NULL, v.c.p);
                /* The parts go first: the fused weight must not depend on them. */
                pw_free(&wq);
                pw_free(&wk);
                pw_free(&wv);
                g_gpu->ops->matmul(g_gpu, xb.g.p, T, fused, NULL, ob.g.p);
                float *ref = malloc(sizeof(float) * (size_t)T * W), *cq = malloc(sizeof(float) * (size_t)T * Nq);
                float *ck = malloc(sizeof(float) * (size_t)T * Nk), *cv = malloc(sizeof(float) * (size_t)T * Nk);
                float *got = malloc(sizeof(float) * (size_t)T * W);
                SK_ASSERT(ref && cq && ck && cv && got);
                g_cpu->ops->download_f32(g_cpu, q.c.p, cq, (size_t)T * Nq);
                g_cpu->ops->download_f32(g_cpu, k.c.p, ck, (size_t)T * Nk);
                g_cpu->ops->download_f32(g_cpu, v.c.p, cv, (size_t)T * Nk);
                for (int r = 0; r < T; r++) {
                    memcpy(ref + (size_t)r * W, cq + (size_t)r * Nq, sizeof(float) * (size_t)Nq);
                    memcpy(ref + (size_t)r * W + Nq, ck + (size_t)r * Nk, sizeof(float) * (size_t)Nk);
                    memcpy(ref + (size_t)r * W + Nq + Nk, cv + (size_t)r * Nk, sizeof(float) * (size_t)Nk);
                }
                g_gpu->ops->download_f32(g_gpu, ob.g.p, got, (size_t)T * W);
                const double err = sk_test_rel_err(got, ref, (long)T * W);
                const bool gok = gb_guards_ok(&ob.g);
                snprintf(what, sizeof what, "weight_concat q/k/v %s T=%d N=%d+%d+%d K=%d",
                         sk_dtype_name(t), T, Nq, Nk, Nk, K);
                printf("%s %s %-64s err %.2e (max %.1e)%s\n", err <= TOL_MATMUL && gok ? "ok  " : "FAIL",
                       g_dtype, what, err, TOL_MATMUL, gok ? "" : " GUARDS OVERWRITTEN");
                CHECKF(err <= TOL_MATMUL && gok, "%s %s: error %.3e", g_dtype, what, err);
                free(ref), free(cq), free(ck), free(cv), free(got);
                g_gpu->ops->weight_free(g_gpu, fused);
                pb_free(&ob), pb_free(&q), pb_free(&k), pb_free(&v);
            }
            /* matmul_swiglu over concat(gate, up) */
            {
                pweight wg = pw_new(t, N, K, -1.0f, 1.0f), wu = pw_new(t, N, K, -1.0f, 1.0f);
                sk_weight *parts[2] = {wg.g, wu.g}, *gu = NULL;
                CHECK(g_gpu->ops->weight_concat(g_gpu, parts, 2, &gu) == SK_OK && gu);
                pbuf ob = pb_new((long)T * N, mis, NULL);
                pbuf g = pb_new((long)T * N, false, NULL), u = pb_new((long)T * N, false, NULL);
                g_cpu->ops->matmul(g_cpu, xb.c.p, T, wg.c, NULL, g.c.p);
                g_cpu->ops->matmul(g_cpu, xb.c.p, T, wu.c, NULL, u.c.p);
                g_cpu->ops->swiglu(g_cpu, g.c.p, u.c.p, (size_t)T * N, ob.c.p);
                CHECK(g_gpu->ops->matmul_swiglu != NULL);
                g_gpu->ops->matmul_swiglu(g_gpu, xb.g.p, T, gu, ob.g.p);
                snprintf(what, sizeof what, "matmul_swiglu %s T=%d F=%d K=%d%s", sk_dtype_name(t), T,
                         N, K, mis ? " unaligned" : "");
                finish(what, &ob, TOL_MATMUL);
                g_gpu->ops->weight_free(g_gpu, gu);
                pb_free(&ob), pb_free(&g), pb_free(&u);
                pw_free(&wg), pw_free(&wu);
            }
            pb_free(&xb);
            free(x);
        }
}

/* ---- RMSNorm fused into the projection: rmsnorm_matmul, rmsnorm_matmul_swiglu ------------- */

/* The GPU's fused decode path (gemv.cuh NORM, T <= 2 and aligned, K % 8 == 0) and its composed
 * fallbacks (T > 2, odd K, unaligned x, INT4 weights) against the CPU's rmsnorm then matmul
 * (x2 + swiglu). x has a non-zero mean and a spread of row scales, so the norm matters. */
static void test_norm_matmul(void) {
    static const struct {
        int T, N, K;
        bool bias, mis;
        sk_dtype t;
    } cs[] = {
        {1, 576, 576, false, false, SK_BF16},   {2, 1536, 576, true, false, SK_BF16},
        {1, 12288, 4096, false, false, SK_BF16}, {2, 4096, 4096, false, false, SK_F32},
        {3, 264, 4096, false, false, SK_BF16},  {4, 100, 1000, true, false, SK_BF16},
        {5, 96, 4104, true, true, SK_BF16},     {6, 200, 512, false, false, SK_F32},
        {7, 33, 256, true, false, SK_BF16},     {8, 2048, 4096, false, false, SK_BF16},
        {9, 256, 512, true, false, SK_BF16},    {1, 120, 260, false, false, SK_BF16},
        {2, 77, 257, true, false, SK_F32},      {1, 96, 4096, true, true, SK_BF16},
        {1, 1000, 1032, true, false, SK_BF16},  {2, 4097, 136, false, false, SK_BF16},
        {40, 768, 1536, true, false, SK_BF16},  {1, 512, 4096, false, false, SK_Q4_0},
        {2, 300, 1024, true, false, SK_Q4_0},   {1, 4096, 4096, false, false, SK_BF16},
        /* INT4 (session 5: the W4 GEMV fuses the norm at T <= 4; T = 5 and unaligned x take the
         * separate RMSNorm) */
        {1, 1024, 4096, true, false, SK_Q4G128}, {2, 264, 4096, false, false, SK_Q4G64},
        {3, 100, 1024, true, false, SK_Q4G128},  {4, 768, 1536, false, false, SK_Q4G32},
        {1, 8192, 8192, false, false, SK_Q4G128}, {1, 96, 4096, true, true, SK_Q4G128},
        {5, 300, 2048, false, false, SK_Q4G128}, {2, 4100, 576, true, false, SK_Q4G64},
        /* session 16: 3..16 rows through w4_tm.cu (the norm in its prepass; G = 32 at 9..16 rows
         * and unaligned x still take the separate RMSNorm and the tile kernels) */
        {6, 264, 4096, true, false, SK_Q4G128},  {8, 1000, 2048, false, false, SK_Q4G64},
        {12, 300, 1024, true, false, SK_Q4G128}, {16, 768, 1536, false, false, SK_Q4G32},
        {16, 520, 8192, false, false, SK_Q4G128}, {7, 4100, 576, true, false, SK_Q4G64},
        {9, 130, 4096, false, true, SK_Q4G128},  {8, 40, 4160, true, false, SK_Q4G32},
        /* session 17: 9..32 rows through w4_tx.cuh (G = 128 past 16 rows) */
        {14, 700, 2048, true, false, SK_Q4G128}, {16, 300, 4096, false, false, SK_Q4G64},
        {20, 520, 8192, false, false, SK_Q4G128}, {32, 264, 1024, true, false, SK_Q4G128},
        {25, 1000, 1536, false, false, SK_Q4G64},
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        const int T = cs[ci].T, N = cs[ci].N, K = cs[ci].K;
        const bool mis = cs[ci].mis;
        const sk_dtype t = cs[ci].t;
        const float eps = 1e-5f;
        char what[160];
        float *x = rnd((long)T * K, -1.0f, 3.0f);
        for (int r = 0; r < T; r++) /* rows of different scales: 1/rms differs by row */
            for (int k = 0; k < K; k++) x[(size_t)r * K + k] *= (float)(1 + 3 * r);
        pbuf xb = pb_new((long)T * K, mis, x);
        pweight nw = pw_new(SK_F32, 0, K, 0.5f, 1.5f);
        pbuf hb = pb_new((long)T * K, false, NULL);
        CHECK(g_gpu->ops->rmsnorm_matmul != NULL && g_gpu->ops->rmsnorm_matmul_swiglu != NULL);
        /* rmsnorm_matmul (+ bias) */
        {
            pweight w = pw_new(t, N, K, -1.0f, 1.0f);
            pweight b = {NULL, NULL, NULL};
            if (cs[ci].bias) b = pw_new(SK_F32, 0, N, -1.0f, 1.0f);
            pbuf ob = pb_new((long)T * N, mis, NULL);
            g_cpu->ops->rmsnorm(g_cpu, xb.c.p, nw.c, eps, T, K, hb.c.p);
            g_cpu->ops->matmul(g_cpu, hb.c.p, T, w.c, b.c, ob.c.p);
            g_gpu->ops->rmsnorm_matmul(g_gpu, xb.g.p, nw.g, eps, T, w.g, b.g, hb.g.p, ob.g.p);
            snprintf(what, sizeof what, "rmsnorm_matmul %s T=%d N=%d K=%d%s%s", sk_dtype_name(t),
                     T, N, K, cs[ci].bias ? " +bias" : "", mis ? " unaligned" : "");
            finish(what, &ob, TOL_MATMUL);
            pb_free(&ob);
            pw_free(&w);
            if (cs[ci].bias) pw_free(&b);
        }
        /* rmsnorm_matmul_swiglu over concat(gate, up) */
        {
            pweight wg = pw_new(t, N, K, -1.0f, 1.0f), wu = pw_new(t, N, K, -1.0f, 1.0f);
            sk_weight *parts[2] = {wg.g, wu.g}, *gu = NULL;
            CHECK(g_gpu->ops->weight_concat(g_gpu, parts, 2, &gu) == SK_OK && gu);
            pbuf ob = pb_new((long)T * N, mis, NULL);
            pbuf g = pb_new((long)T * N, false, NULL), u = pb_new((long)T * N, false, NULL);
            g_cpu->ops->rmsnorm(g_cpu, xb.c.p, nw.c, eps, T, K, hb.c.p);
            g_cpu->ops->matmul(g_cpu, hb.c.p, T, wg.c, NULL, g.c.p);
            g_cpu->ops->matmul(g_cpu, hb.c.p, T, wu.c, NULL, u.c.p);
            g_cpu->ops->swiglu(g_cpu, g.c.p, u.c.p, (size_t)T * N, ob.c.p);
            g_gpu->ops->rmsnorm_matmul_swiglu(g_gpu, xb.g.p, nw.g, eps, T, gu, hb.g.p, ob.g.p);
            snprintf(what, sizeof what, "rmsnorm_matmul_swiglu %s T=%d F=%d K=%d%s",
                     sk_dtype_name(t), T, N, K, mis ? " unaligned" : "");
            finish(what, &ob, TOL_MATMUL);
            g_gpu->ops->weight_free(g_gpu, gu);
            pb_free(&ob), pb_free(&g), pb_free(&u);
            pw_free(&wg), pw_free(&wu);
        }
        /* x is only read: still the input (the fused path must not normalise it in place). */
        {
            float *back = malloc(sizeof(float) * (size_t)T * K);
            SK_ASSERT(back);
            g_gpu->ops->download_f32(g_gpu, xb.g.p, back, (size_t)T * K);
            const double e = sk_test_rel_err(back, x, (long)T * K);
            CHECKF(e == 0.0, "%s rmsnorm_matmul T=%d K=%d changed x", g_dtype, T, K);
            free(back);
        }
        pb_free(&hb);
        pw_free(&nw);
        pb_free(&xb);
        free(x);
    }
}

/* The RMSNorm carried from matmul_add to the rmsnorm_matmul after it (norm_next, session 15):
 * x += f Wd^T, then rmsnorm(x) Wq^T, as the forward pass runs the end of one Llama layer and the
 * start of the next, against the CPU's matmul, add, rmsnorm and matmul. Where the carry applies
 * (INT4 weights, 1-2 rows) the test also checks that it was taken; elsewhere that the results are
 * still right with the hint given. */
static void test_carry(void) {
    setenv("SAKER_NORM_CARRY", "all", 1); /* both carries at 1-2 rows (the default takes one each) */
    static const struct {
        int T, D, F, N;
        sk_dtype t;
        bool carried; /* the CUDA backend takes the carry here */
    } cs[] = {
        {1, 4096, 11008, 12288, SK_Q4G128, true}, {2, 4096, 1024, 6144, SK_Q4G128, true},
        {1, 8192, 2048, 10240, SK_Q4G128, true},  {2, 1024, 4096, 3072, SK_Q4G32, true},
        {1, 576, 1536, 960, SK_Q4G64, true},      {1, 2080, 512, 1000, SK_Q4G32, true},
        {3, 1024, 2048, 3072, SK_Q4G128, false},  {1, 1024, 1024, 2048, SK_BF16, false},
    };
    for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
        const int T = cs[ci].T, D = cs[ci].D, F = cs[ci].F, N = cs[ci].N;
        const sk_dtype t = cs[ci].t;
        const float eps = 1e-5f;
        char what[160];
        float *x0 = rnd((long)T * D, -1.0f, 1.0f), *f = rnd((long)T * F, -1.0f, 1.0f);
        for (int r = 0; r < T; r++) /* rows of different scales */
            for (int k = 0; k < D; k++) x0[(size_t)r * D + k] *= (float)(1 + 2 * r);
        pbuf xb = pb_new((long)T * D, false, x0), fb = pb_new((long)T * F, false, f);
        pbuf tmp = pb_new((long)T * D, false, NULL), hb = pb_new((long)T * D, false, NULL);
        pbuf ob = pb_new((long)T * N, false, NULL);
        pweight wd = pw_new(t, D, F, -1.0f, 1.0f), wq = pw_new(t, N, D, -1.0f, 1.0f);
        pweight nw = pw_new(SK_F32, 0, D, 0.5f, 1.5f);
        g_cpu->ops->matmul(g_cpu, fb.c.p, T, wd.c, NULL, tmp.c.p);
        g_cpu->ops->add(g_cpu, xb.c.p, tmp.c.p, (size_t)T * D);
        g_cpu->ops->rmsnorm(g_cpu, xb.c.p, nw.c, eps, T, D, hb.c.p);
        g_cpu->ops->matmul(g_cpu, hb.c.p, T, wq.c, NULL, ob.c.p);
        CHECK(g_gpu->ops->norm_next != NULL && g_gpu->ops->matmul_add && g_gpu->ops->rmsnorm_matmul);
        const long before = sk_cuda_norm_carried();
        g_gpu->ops->norm_next(g_gpu, nw.g, 0);
        g_gpu->ops->matmul_add(g_gpu, fb.g.p, T, wd.g, NULL, xb.g.p);
        g_gpu->ops->rmsnorm_matmul(g_gpu, xb.g.p, nw.g, eps, T, wq.g, NULL, hb.g.p, ob.g.p);
        const long took = sk_cuda_norm_carried() - before;
        snprintf(what, sizeof what, "carry x += f Wd^T %s T=%d D=%d F=%d", sk_dtype_name(t), T, D, F);
        finish(what, &xb, TOL_MATMUL);
        snprintf(what, sizeof what, "carry rmsnorm(x) Wq^T %s T=%d N=%d K=%d (%s)", sk_dtype_name(t), T,
                 N, D, took ? "carried" : "not carried");
        finish(what, &ob, TOL_MATMUL);
        CHECKF(took == (cs[ci].carried ? 1 : 0), "%s carry T=%d D=%d: taken %ld times, expected %d",
               g_dtype, T, D, took, cs[ci].carried ? 1 : 0);
        /* the same into the SwiGLU product (o, then gate/up of the same layer): x += f Wd^T
         * again, then rmsnorm_matmul_swiglu over concat(gate, up) of N rows each */
        {
            pweight wg = pw_new(t, N, D, -1.0f, 1.0f), wu = pw_new(t, N, D, -1.0f, 1.0f);
            sk_weight *parts[2] = {wg.g, wu.g}, *gu = NULL;
            CHECK(g_gpu->ops->weight_concat(g_gpu, parts, 2, &gu) == SK_OK && gu);
            pbuf sb = pb_new((long)T * N, false, NULL);
            pbuf gb = pb_new((long)T * N, false, NULL), ub = pb_new((long)T * N, false, NULL);
            g_cpu->ops->matmul(g_cpu, fb.c.p, T, wd.c, NULL, tmp.c.p);
            g_cpu->ops->add(g_cpu, xb.c.p, tmp.c.p, (size_t)T * D);
            g_cpu->ops->rmsnorm(g_cpu, xb.c.p, nw.c, eps, T, D, hb.c.p);
            g_cpu->ops->matmul(g_cpu, hb.c.p, T, wg.c, NULL, gb.c.p);
            g_cpu->ops->matmul(g_cpu, hb.c.p, T, wu.c, NULL, ub.c.p);
            g_cpu->ops->swiglu(g_cpu, gb.c.p, ub.c.p, (size_t)T * N, sb.c.p);
            const long before2 = sk_cuda_norm_carried();
            g_gpu->ops->norm_next(g_gpu, nw.g, 1);
            g_gpu->ops->matmul_add(g_gpu, fb.g.p, T, wd.g, NULL, xb.g.p);
            g_gpu->ops->rmsnorm_matmul_swiglu(g_gpu, xb.g.p, nw.g, eps, T, gu, hb.g.p, sb.g.p);
            const long took2 = sk_cuda_norm_carried() - before2;
            snprintf(what, sizeof what, "carry x += f Wd^T (2) %s T=%d D=%d F=%d", sk_dtype_name(t), T, D, F);
            finish(what, &xb, TOL_MATMUL);
            snprintf(what, sizeof what, "carry swiglu(rmsnorm(x) Wgu^T) %s T=%d F=%d K=%d (%s)",
                     sk_dtype_name(t), T, N, D, took2 ? "carried" : "not carried");
            finish(what, &sb, TOL_MATMUL);
            CHECKF(took2 == (cs[ci].carried ? 1 : 0), "%s carry swiglu T=%d D=%d: taken %ld times, expected %d",
                   g_dtype, T, D, took2, cs[ci].carried ? 1 : 0);
            g_gpu->ops->weight_free(g_gpu, gu);
            pb_free(&sb), pb_free(&gb), pb_free(&ub);
            pw_free(&wg), pw_free(&wu);
        }
        pb_free(&xb), pb_free(&fb), pb_free(&tmp), pb_free(&hb), pb_free(&ob);
        pw_free(&wd), pw_free(&wq), pw_free(&nw);
        free(x0), free(f);
    }
}

/* ---- INT4 weights (w4.cuh): GEMV (T <= 4; w4_tm.cu at 3..32 where it fits, sessions 16-17),
 * tensor-core MMA (w4_mma.cuh, T >= 5 otherwise: tile
 * configurations by T, split-K when tiles are few, K not a multiple of its 128-element stage,
 * rows and tokens past the tiles' ends), fused epilogues, concat, embed; against the CPU's
 * dequantize-on-the-fly ops on the same Q4G blocks. ------------------------------------------ */
static void test_w4(void) {
    static const struct {
        int T, N, K;
        bool bias;
    } cs[] = {
        {1, 576, 576, false}, {2, 1536, 576, true}, {3, 264, 4096, false}, {4, 100, 1024, true},
        {1, 33, 8192, false}, {5, 96, 512, true},   {9, 256, 512, false},  {40, 768, 1536, true},
        {6, 264, 4096, true}, {8, 200, 1024, false}, {16, 1000, 2048, true}, {17, 264, 576, true},
        {33, 130, 1536, false}, {64, 768, 4096, true}, {130, 300, 640, false}, {257, 264, 576, true},
        {200, 520, 1024, true}, {256, 136, 2048, false}, {100, 8200, 512, false},
        /* session 6: the 80, 96, 144, 160 and 192 wide wgmma tiles (two wgmmas a k16 slice) */
        {70, 264, 1024, true}, {90, 136, 512, false}, {139, 300, 2048, true},
        {150, 200, 1024, false}, {180, 136, 1536, true},
        /* session 8: the TMA warp-specialized tiles (65..1024 rows where K % 128 == 0) */
        {300, 264, 1024, true}, {400, 136, 2048, false}, {700, 200, 512, true},
        {1024, 130, 1024, false},
        /* session 11: the 128 x 256 and 128 x 192 tiles with two consumer warpgroups (the cost
         * model picks wr128x256 at 1,024 rows and wr128x192 at 700 for these, plain and SWIGLU) */
        {1024, 4096, 1024, true}, {700, 4096, 1024, false},
        /* session 16: w4_tm.cu's bounds 8 and 16 (rows below the bound, G = 64 at 16 rows, K with
         * a partial last step of 128) */
        {7, 4100, 576, true}, {12, 130, 4096, false}, {13, 1000, 1088, true}, {15, 264, 8192, false},
        /* session 17: w4_tx.cuh at 9..32 rows (bounds 16 and 32; G = 128 only past 16 rows,
         * the tile kernels otherwise) */
        {20, 1000, 2048, true}, {24, 264, 8192, false}, {32, 4100, 1024, true}, {31, 300, 1088, false},
        {11, 2000, 4608, true},
        /* session 30 (tile-major q4): whole tiles at one and two rows (the TMA-fed tb / tba take
         * SwiGLU only where N % 16 == 0), and parts that do not start a tile (N 100, 33 above) */
        {1, 64, 8192, false}, {2, 160, 4096, true}, {1, 48, 1024, true},
    };
    const sk_dtype types[] = {SK_Q4G128, SK_Q4G64, SK_Q4G32};
    for (size_t ti = 0; ti < sizeof types / sizeof types[0]; ti++)
        for (size_t ci = 0; ci < sizeof cs / sizeof cs[0]; ci++) {
            const sk_dtype t = types[ti];
            const int T = cs[ci].T, N = cs[ci].N, K = cs[ci].K;
            if (K % sk_dtype_q4g_group(t)) continue;
            char what[160];
            float *x = rnd((long)T * K, -1.0f, 1.0f);
            pbuf xb = pb_new((long)T * K, false, x);
            pweight w = pw_new(t, N, K, -1.0f, 1.0f);
            pweight b = {NULL, NULL, NULL};
            if (cs[ci].bias) b = pw_new(SK_F32, 0, N, -1.0f, 1.0f);
            /* matmul */
            pbuf ob = pb_new((long)T * N, false, NULL);
            g_cpu->ops->matmul(g_cpu, xb.c.p, T, w.c, b.c, ob.c.p);
            g_gpu->ops->matmul(g_gpu, xb.g.p, T, w.g, b.g, ob.g.p);
            snprintf(what, sizeof what, "w4 matmul %s T=%d N=%d K=%d%s", sk_dtype_name(t), T, N, K,
                     cs[ci].bias ? " +bias" : "");
            finish(what, &ob, TOL_MATMUL);
            /* matmul_add onto random values */
            float *o0 = rnd((long)T * N, -4.0f, 4.0f);
            pbuf oa = pb_new((long)T * N, false, o0);
            pbuf tmp = pb_new((long)T * N, false, NULL);
            g_cpu->ops->matmul(g_cpu, xb.c.p, T, w.c, b.c, tmp.c.p);
            g_cpu->ops->add(g_cpu, oa.c.p, tmp.c.p, (size_t)T * N);
            g_gpu->ops->matmul_add(g_gpu, xb.g.p, T, w.g, b.g, oa.g.p);
            snprintf(what, sizeof what, "w4 matmul_add %s T=%d N=%d K=%d", sk_dtype_name(t), T, N, K);
            finish(what, &oa, TOL_MATMUL);
            /* gelu_matmul_add (Falcon's MLP down): GELU in the cast of x for the W4 tiles and
             * dequantize + cuBLASLt, in place before the GEMV */
            snprintf(what, sizeof what, "w4 gelu_matmul_add %s T=%d N=%d K=%d", sk_dtype_name(t),
                     T, N, K);
            check_gelu_matmul_add(what, x, o0, T, N, K, &w, &b, false);
            /* concat(gate = w, up) + swiglu */
            pweight wu = pw_new(t, N, K, -1.0f, 1.0f);
            sk_weight *parts[2] = {w.g, wu.g}, *gu = NULL;
            CHECK(g_gpu->ops->weight_concat(g_gpu, parts, 2, &gu) == SK_OK && gu);
            pbuf os = pb_new((long)T * N, false, NULL), u = pb_new((long)T * N, false, NULL);
            g_cpu->ops->matmul(g_cpu, xb.c.p, T, w.c, NULL, tmp.c.p);
            g_cpu->ops->matmul(g_cpu, xb.c.p, T, wu.c, NULL, u.c.p);
            g_cpu->ops->swiglu(g_cpu, tmp.c.p, u.c.p, (size_t)T * N, os.c.p);
            g_gpu->ops->matmul_swiglu(g_gpu, xb.g.p, T, gu, os.g.p);
            snprintf(what, sizeof what, "w4 concat + matmul_swiglu %s T=%d F=%d K=%d", sk_dtype_name(t),
                     T, N, K);
            finish(what, &os, TOL_MATMUL);
            g_gpu->ops->weight_free(g_gpu, gu);
            /* embed rows of the INT4 table */
            int32_t *tok = (int32_t *)malloc((size_t)T * sizeof *tok); /* T up to 1024 */
            CHECK(tok != NULL);
            for (int i = 0; i < T; i++) tok[i] = (int32_t)((i * 7919 + 13) % N);
            begin_both(T, tok, tok, NULL);
            pbuf oe = pb_new((long)T * K, false, NULL);
            g_cpu->ops->embed(g_cpu, w.c, oe.c.p);
            g_gpu->ops->embed(g_gpu, w.g, oe.g.p);
            snprintf(what, sizeof what, "w4 embed %s T=%d V=%d D=%d", sk_dtype_name(t), T, N, K);
            finish(what, &oe, 1e-6);
            pb_free(&oe), pb_free(&os), pb_free(&u), pb_free(&tmp), pb_free(&oa), pb_free(&ob);
            pb_free(&xb);
            pw_free(&w), pw_free(&wu);
            if (cs[ci].bias) pw_free(&b);
            free(x), free(o0), free(tok);
        }
}

/* ---- attention ---------------------------------------------------------------------------- */

/* The decode steps' RoPE + K/V store inside the decode kernel (the new token in fp32): taken by
 * the bf16 backend's decode steps with a ring configuration unless SAKER_ATTN_NEWTOK=0; a group
 * that compares it must have run it (and none with it off). */
static void check_newtok_taken(const char *group, long before) {
    const char *e = getenv("SAKER_ATTN_NEWTOK");
    const bool on = !(e && *e && strcmp(e, "0") == 0) && strcmp(g_dtype, "bf16") == 0;
    const long took = sk_cuda_attn_newtok() - before;
    printf("%s (%s): %ld decode launches took the new token in fp32\n", group, g_dtype, took);
    CHECKF(on ? took > 0 : took == 0, "%s: %ld decode launches with the new token in fp32, "
           "expected %s", group, took, on ? "some" : "none");
}

/* Length of the long-sequence cases (a compile-time knob so that slow emulated runs can shorten
 * it). */
#ifndef ATTN_LONG
#define ATTN_LONG 3001
#endif

typedef struct attn_cfg {
    int H, KVH, hd;
    bool fused; /* q, k, v inside one [T, (H + 2 KVH) hd] row, as Falcon's qkv matmul leaves them */
} attn_cfg;

/* One attention call on both backends for the batch (pos, seq) on fresh random q/k/v. */
static void attn_step(const attn_cfg *cf, sk_kv_cache *kc, sk_kv_cache *kg, int layer, int T,
                      const int32_t *pos, const int32_t *seq, const char *step) {
    const int qw = cf->H * cf->hd, kw = cf->KVH * cf->hd;
    begin_both(T, NULL, pos, seq);
    pbuf out = pb_new((long)T * qw, false, NULL);
    pbuf bufs[3];
    int nb = 0;
    void *qc, *kc_, *vc, *qg, *kg_, *vg;
    int q_stride, kv_stride;
    /* q is scaled up so that the softmax is far from uniform (score std ~2). */
    if (cf->fused) {
        const int W = qw + 2 * kw;
        float *all = rnd((long)T * W, -1.0f, 1.0f);
        for (int t = 0; t < T; t++)
            for (int i = 0; i < qw; i++) all[(long)t * W + i] *= 6.0f;
        bufs[nb++] = pb_new((long)T * W, false, all);
        free(all);
        qc = at(&bufs[0].c, 0), kc_ = at(&bufs[0].c, qw), vc = at(&bufs[0].c, qw + kw);
        qg = at(&bufs[0].g, 0), kg_ = at(&bufs[0].g, qw), vg = at(&bufs[0].g, qw + kw);
        q_stride = kv_stride = W;
    } else {
        float *q = rnd((long)T * qw, -6.0f, 6.0f), *k = rnd((long)T * kw, -1.0f, 1.0f);
        float *v = rnd((long)T * kw, -1.0f, 1.0f);
        bufs[nb++] = pb_new((long)T * qw, false, q);
        bufs[nb++] = pb_new((long)T * kw, false, k);
        bufs[nb++] = pb_new((long)T * kw, false, v);
        free(q);
        free(k);
        free(v);
        qc = bufs[0].c.p, kc_ = bufs[1].c.p, vc = bufs[2].c.p;
        qg = bufs[0].g.p, kg_ = bufs[1].g.p, vg = bufs[2].g.p;
        q_stride = qw;
        kv_stride = kw;
    }
    /* Every other step goes through the GPU's rope_attention (RoPE fused into the decode
     * path's K/V store and q cast), against the CPU's rope, rope and attention, with the pairing
     * and the rotated width alternating (whole head_dim, halves; half of it, adjacent or
     * halves). */
    static const attn_cfg *last_cf = NULL;
    static unsigned n_steps = 0;
    if (cf != last_cf) last_cf = cf, n_steps = 0; /* the same sequence of variants per config */
    const unsigned step_i = n_steps++, variant = step_i % 4;
    const bool halves = variant == 1 || (variant == 3 && (step_i / 4) % 2 == 1);
    const sk_rope_params rp = {cf->hd, variant == 1 ? cf->hd : cf->hd / 2 / 2 * 2, 10000.0f,
                               halves ? SK_ROPE_HALVES : SK_ROPE_ADJACENT};
    if (variant % 2 == 1) {
        CHECK(g_gpu->ops->rope_attention != NULL);
        g_cpu->ops->rope(g_cpu, qc, T, cf->H, q_stride, &rp);
        g_cpu->ops->rope(g_cpu, kc_, T, cf->KVH, kv_stride, &rp);
        g_cpu->ops->attention(g_cpu, kc, layer, qc, q_stride, kc_, vc, kv_stride, cf->H,
                              out.c.p);
        g_gpu->ops->rope_attention(g_gpu, kg, layer, qg, q_stride, kg_, vg, kv_stride, cf->H,
                                   &rp, out.g.p);
    } else {
        g_cpu->ops->attention(g_cpu, kc, layer, qc, q_stride, kc_, vc, kv_stride, cf->H,
                              out.c.p);
        g_gpu->ops->attention(g_gpu, kg, layer, qg, q_stride, kg_, vg, kv_stride, cf->H,
                              out.g.p);
    }
    char what[240];
    snprintf(what, sizeof what, "%s H=%d KVH=%d (group %d) hd=%d%s %s",
             variant == 1   ? "rope_attention (halves)"
             : variant == 3 ? (halves ? "rope_attention (halves, partial)"
                                      : "rope_attention (adjacent, partial)")
                            : "attention",
             cf->H, cf->KVH, cf->H / cf->KVH, cf->hd, cf->fused ? " fused" : "", step);
    finish(what, &out, TOL_ATTN);
    for (int i = 0; i < nb; i++) pb_free(&bufs[i]);
    pb_free(&out);
}

/* A prompt of n positions on sequence s starting at p0, fed in chunks of at most `chunk`. */
static void attn_prompt(const attn_cfg *cf, sk_kv_cache *kc, sk_kv_cache *kg, int layer, int s,
                        int p0, int n, int chunk) {
    int32_t *pos = malloc(sizeof(int32_t) * (size_t)chunk);
    int32_t *seq = malloc(sizeof(int32_t) * (size_t)chunk);
    SK_ASSERT(pos && seq);
    for (int done = 0; done < n; done += chunk) {
        const int T = n - done < chunk ? n - done : chunk;
        for (int t = 0; t < T; t++) pos[t] = p0 + done + t, seq[t] = s;
        char step[96];
        snprintf(step, sizeof step, "prompt seq%d T=%d pos %d..%d", s, T, pos[0], pos[T - 1]);
        attn_step(cf, kc, kg, layer, T, pos, seq, step);
    }
    free(pos);
    free(seq);
}

static void test_attention(void) {
    static const attn_cfg cfgs[] = {
        {4, 4, 64, false},  /* group 1 (MHA) */
        {8, 2, 128, false}, /* group 4 */
        {16, 2, 80, true},  /* group 8, head_dim 80, fused qkv rows */
        {58, 2, 64, true},  /* group 29 (Falcon-180B-like) */
        {12, 1, 128, false}, /* MQA: all heads on one KV head */
        {71, 1, 64, true},  /* MQA, Falcon-7B-like */
        {4, 2, 256, false}, /* head_dim 256 */
        {4, 2, 36, false},  /* head_dim not a multiple of 8 */
        {32, 1, 128, false}, /* MQA, group over 16 at 128: the ring config over 48 KB of smem */
    };
    const int n_layers = 2, layer = 1, n_seq = 2;
    const long nt0 = sk_cuda_attn_newtok();
    for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) {
        const attn_cfg *cf = &cfgs[ci];
        const int n_ctx = 200, L0 = 150;
        sk_kv_cache *kc = NULL, *kg = NULL;
        CHECK(g_cpu->ops->kv_new(g_cpu, n_layers, cf->KVH, cf->hd, n_ctx, n_seq, &kc) == SK_OK);
        CHECK(g_gpu->ops->kv_new(g_gpu, n_layers, cf->KVH, cf->hd, n_ctx, n_seq, &kg) == SK_OK);
        SK_ASSERT(kc && kg);
        /* A prompt of L0 on sequence 0 in chunks of 64 (longer than the kernel's 128-position
         * softmax chunk, so the running max is rescaled), then three single-token steps. */
        attn_prompt(cf, kc, kg, layer, 0, 0, L0, 64);
        for (int p = L0; p < L0 + 3; p++) {
            const int32_t pos[1] = {p}, seq[1] = {0};
            char step[64];
            snprintf(step, sizeof step, "decode seq0 pos %d", p);
            attn_step(cf, kc, kg, layer, 1, pos, seq, step);
        }
        /* Sequence 1's prompt of 21 with sequence 0's next token in the middle of the batch. */
        SK_ASSERT(L0 == 150); /* the step names below */
        int32_t pos[22], seq[22];
        for (int t = 0, j = 0; t < 22; t++) {
            if (t == 10) {
                pos[t] = L0 + 3, seq[t] = 0;
            } else {
                pos[t] = j++, seq[t] = 1;
            }
        }
        attn_step(cf, kc, kg, layer, 22, pos, seq, "mixed: seq1 prompt 0..20 + seq0 pos 153");
        /* Both sequences decoding together, at different lengths. */
        const int32_t pos2[2] = {L0 + 4, 21}, seq2[2] = {0, 1};
        attn_step(cf, kc, kg, layer, 2, pos2, seq2, "decode seq0 pos 154 + seq1 pos 21");
        g_cpu->ops->kv_free(g_cpu, kc);
        g_gpu->ops->kv_free(g_gpu, kg);
    }

    /* Long sequences: a prompt of ATTN_LONG in chunks of 1024, then two decode steps. */
    static const attn_cfg longs[] = {{8, 2, 128, false}, {16, 2, 80, true}};
    for (size_t ci = 0; ci < sizeof longs / sizeof longs[0]; ci++) {
        const attn_cfg *cf = &longs[ci];
        const int n_ctx = ATTN_LONG + 2;
        sk_kv_cache *kc = NULL, *kg = NULL;
        CHECK(g_cpu->ops->kv_new(g_cpu, n_layers, cf->KVH, cf->hd, n_ctx, n_seq, &kc) == SK_OK);
        CHECK(g_gpu->ops->kv_new(g_gpu, n_layers, cf->KVH, cf->hd, n_ctx, n_seq, &kg) == SK_OK);
        SK_ASSERT(kc && kg);
        attn_prompt(cf, kc, kg, layer, 1, 0, ATTN_LONG, 1024);
        for (int p = ATTN_LONG; p < ATTN_LONG + 2; p++) {
            const int32_t pos[1] = {p}, seq[1] = {1};
            char step[64];
            snprintf(step, sizeof step, "decode seq1 pos %d", p);
            attn_step(cf, kc, kg, layer, 1, pos, seq, step);
        }
        g_cpu->ops->kv_free(g_cpu, kc);
        g_gpu->ops->kv_free(g_gpu, kg);
    }
    check_newtok_taken("attention", nt0);
}

/* ---- weight_random ------------------------------------------------------------------------ */

/* Synthetic weights (t->data NULL) drawn on each backend, compared through the ops that read
 * them: embed (the table's values, half on the GPU), rmsnorm (a 1-D weight, fp32 on both) and
 * matmul (half on the GPU). Same thresholds as those ops with stored weights. */
/* Paged pools with page tables (the engine's path): pages shuffled across the pool, sequence 3
 * sharing sequence 0's first two pages (a cached prefix: it computes only from there on), rows
 * of several sequences in one batch in any order. Every step: CPU pool vs GPU pool on the same
 * tables. Covers the decode kernel (one row per sequence, per-row tables), the prefill kernel
 * (segments of several sequences, segments of one row) and the simple kernel (head_dim 36 and
 * fp16), at page sizes 64 (the backend's) and 16. */
static void test_attention_paged(void) {
    static const attn_cfg cfgs[] = {
        {8, 2, 128, false}, {4, 4, 64, false}, {16, 2, 80, true}, {12, 1, 128, false},
        {4, 2, 36, false},
    };
    static const int page_sizes[] = {64, 16};
    const int n_layers = 2, layer = 1, NS = 4, max_len = 300;
    const long nt0 = sk_cuda_attn_newtok();
    CHECK(g_gpu->kv_page_size == 64 && g_gpu->kv_elem_bytes == 2);
    for (size_t pi = 0; pi < sizeof page_sizes / sizeof page_sizes[0]; pi++)
        for (size_t ci = 0; ci < sizeof cfgs / sizeof cfgs[0]; ci++) {
            const attn_cfg *cf = &cfgs[ci];
            const int ps = page_sizes[pi], pps = (max_len + ps - 1) / ps;
            const int n_pages = NS * pps + 7;
            const sk_kv_desc d = {n_layers, cf->KVH, cf->hd, ps, n_pages, max_len};
            sk_kv_cache *kc = NULL, *kg = NULL;
            CHECK(g_cpu->ops->kv_pool_new(g_cpu, &d, &kc) == SK_OK);
            CHECK(g_gpu->ops->kv_pool_new(g_gpu, &d, &kg) == SK_OK);
            SK_ASSERT(kc && kg);
            /* Tables: a random permutation of the pool; sequence 3 starts with 0's two pages. */
            int32_t *perm = malloc(sizeof(int32_t) * (size_t)n_pages);
            int32_t indptr[5], *ids = malloc(sizeof(int32_t) * (size_t)(NS * pps));
            SK_ASSERT(perm && ids);
            for (int i = 0; i < n_pages; i++) perm[i] = i;
            for (int i = n_pages - 1; i > 0; i--) {
                float u;
                sk_test_rand(&u, 1, 0.0f, 1.0f, &g_rng);
                int j = (int)(u * (float)(i + 1)) % (i + 1), t = perm[i];
                perm[i] = perm[j], perm[j] = t;
            }
            indptr[0] = 0;
            for (int q = 0; q < NS; q++) {
                indptr[q + 1] = indptr[q] + pps;
                for (int j = 0; j < pps; j++) ids[indptr[q] + j] = perm[q * pps + j];
            }
            ids[indptr[3]] = ids[0];
            ids[indptr[3] + 1] = ids[1];
            const sk_page_tables pt = {NS, indptr, ids};
            g_pt = &pt;
            const int pre = 2 * ps; /* sequence 3's shared prefix */
            char step[128];
            /* Prompts: 0 alone (150, chunks of 64), then 1 (100) and 2 (37) in one batch, then 3
             * from the end of the shared prefix. */
            attn_prompt(cf, kc, kg, layer, 0, 0, 150, 64);
            {
                int32_t pos[137], seq[137];
                for (int i = 0; i < 100; i++) pos[i] = i, seq[i] = 1;
                for (int i = 0; i < 37; i++) pos[100 + i] = i, seq[100 + i] = 2;
                attn_step(cf, kc, kg, layer, 137, pos, seq, "paged prompts seq1 (100) + seq2 (37)");
            }
            attn_prompt(cf, kc, kg, layer, 3, pre, 40, 64);
            int len[4] = {150, 100, 37, pre + 40};
            /* Decode steps: one row per sequence, rows in the order 2, 0, 3, 1. */
            unsigned epoch = 0;
            for (int it = 0; it < 3; it++) {
                const int order[4] = {2, 0, 3, 1};
                int32_t pos[4], seq[4];
                for (int i = 0; i < 4; i++) seq[i] = order[i], pos[i] = len[order[i]]++;
                snprintf(step, sizeof step, "paged ps=%d decode x4 (shared prefix) step %d", ps, it);
                attn_step(cf, kc, kg, layer, 4, pos, seq, step);
                if (it == 1) epoch = g_gpu->addr_epoch;
            }
            CHECKF(g_gpu->addr_epoch == epoch, "addr_epoch moved between decode steps of one shape");
            {   /* A subset of the sequences (tables for all four). */
                int32_t pos[2] = {len[3]++, len[1]++}, seq[2] = {3, 1};
                snprintf(step, sizeof step, "paged ps=%d decode seq3 + seq1", ps);
                attn_step(cf, kc, kg, layer, 2, pos, seq, step);
            }
            {   /* Mixed: sequence 0's decode row and a chunk of 10 of sequence 2 (the CUDA
                 * backend splits it: the decode kernel for the leading lone row, the prefill
                 * kernel for the chunk). */
                int32_t pos[11], seq[11];
                pos[0] = len[0]++, seq[0] = 0;
                for (int i = 0; i < 10; i++) pos[1 + i] = len[2]++, seq[1 + i] = 2;
                snprintf(step, sizeof step, "paged ps=%d mixed decode seq0 + chunk seq2", ps);
                attn_step(cf, kc, kg, layer, 11, pos, seq, step);
            }
            {   /* The engine's order: three decode rows (3, 1, 0), then a chunk of 70 of
                 * sequence 2 crossing a page boundary; repeated (same tables for every call of
                 * one batch, fresh ones for the next). */
                for (int it = 0; it < 2; it++) {
                    int32_t pos[73], seq[73];
                    const int dec[3] = {3, 1, 0};
                    for (int i = 0; i < 3; i++) seq[i] = dec[i], pos[i] = len[dec[i]]++;
                    for (int i = 0; i < 70; i++) pos[3 + i] = len[2]++, seq[3 + i] = 2;
                    snprintf(step, sizeof step, "paged ps=%d mixed 3 decodes + chunk of 70 (%d)",
                             ps, it);
                    attn_step(cf, kc, kg, layer, 73, pos, seq, step);
                }
            }
            {   /* Two decode rows, then two chunks (seq 0: 5 rows, seq 2: 1 row): two
                 * prefill segments after the split, one of them a single row. */
                int32_t pos[8], seq[8];
                pos[0] = len[3]++, seq[0] = 3;
                pos[1] = len[1]++, seq[1] = 1;
                for (int i = 0; i < 5; i++) pos[2 + i] = len[0]++, seq[2 + i] = 0;
                pos[7] = len[2]++, seq[7] = 2;
                snprintf(step, sizeof step, "paged ps=%d mixed 2 decodes + chunks of 5 and 1", ps);
                attn_step(cf, kc, kg, layer, 8, pos, seq, step);
            }
            {   /* A decode row after a chunk (not leading: no split) and a chunk first. */
                int32_t pos[5], seq[5];
                for (int i = 0; i < 4; i++) pos[i] = len[1]++, seq[i] = 1;
                pos[4] = len[0]++, seq[4] = 0;
                snprintf(step, sizeof step, "paged ps=%d mixed chunk of 4 + trailing decode", ps);
                attn_step(cf, kc, kg, layer, 5, pos, seq, step);
            }
            /* Malformed tables are refused by both. */
            int32_t bp = 0, bs = NS, bt = 0;
            sk_batch bad = {1, &bt, &bp, &bs};
            CHECK(g_gpu->ops->begin_paged(g_gpu, &bad, &pt) == SK_ERR_ARG);
            CHECK(g_cpu->ops->begin_paged(g_cpu, &bad, &pt) == SK_ERR_ARG);
            g_pt = NULL;
            g_cpu->ops->kv_free(g_cpu, kc);
            g_gpu->ops->kv_free(g_gpu, kg);
            free(perm);
            free(ids);
        }
    size_t fr = 0, tot = 0;
    g_gpu->ops->mem_info(g_gpu, &fr, &tot);
    CHECKF(fr > 0 && fr <= tot, "mem_info: %zu free of %zu", fr, tot);
    check_newtok_taken("paged", nt0);
}

static void test_random(void) {
    const int V = 300, D = 576, N = 320, T = 5;
    sk_tensor te;
    memset(&te, 0, sizeof te);
    te.type = SK_BF16;
    pweight tab = {NULL, NULL, NULL}, w1 = {NULL, NULL, NULL}, wm = {NULL, NULL, NULL};
    snprintf(te.name, sizeof te.name, "random.table");
    te.n_dims = 2, te.shape[0] = V, te.shape[1] = D;
    CHECK(g_cpu->ops->weight_random(g_cpu, &te, 0.25f, 0.5f, 1234, &tab.c) == SK_OK);
    CHECK(g_gpu->ops->weight_random(g_gpu, &te, 0.25f, 0.5f, 1234, &tab.g) == SK_OK);
    snprintf(te.name, sizeof te.name, "random.norm");
    te.n_dims = 1, te.shape[0] = D, te.shape[1] = 0;
    CHECK(g_cpu->ops->weight_random(g_cpu, &te, 1.0f, 0.1f, 99, &w1.c) == SK_OK);
    CHECK(g_gpu->ops->weight_random(g_gpu, &te, 1.0f, 0.1f, 99, &w1.g) == SK_OK);
    snprintf(te.name, sizeof te.name, "random.matrix");
    te.n_dims = 2, te.shape[0] = N, te.shape[1] = D;
    CHECK(g_cpu->ops->weight_random(g_cpu, &te, 0.0f, 0.02f, 7, &wm.c) == SK_OK);
    CHECK(g_gpu->ops->weight_random(g_gpu, &te, 0.0f, 0.02f, 7, &wm.g) == SK_OK);
    SK_ASSERT(tab.c && tab.g && w1.c && w1.g && wm.c && wm.g);

    int32_t tok[5] = {0, 17, 299, 150, 3}, pos[5] = {0, 1, 2, 3, 4};
    begin_both(T, tok, pos, NULL);
    pbuf e = pb_new((long)T * D, false, NULL);
    g_cpu->ops->embed(g_cpu, tab.c, e.c.p);
    g_gpu->ops->embed(g_gpu, tab.g, e.g.p);
    finish("weight_random [300, 576] via embed", &e, TOL_EMBED);

    float *x = rnd((long)T * D, -1.0f, 1.0f);
    pbuf xb = pb_new((long)T * D, false, x), nb = pb_new((long)T * D, false, NULL);
    g_cpu->ops->rmsnorm(g_cpu, xb.c.p, w1.c, 1e-5f, T, D, nb.c.p);
    g_gpu->ops->rmsnorm(g_gpu, xb.g.p, w1.g, 1e-5f, T, D, nb.g.p);
    finish("weight_random [576] via rmsnorm", &nb, TOL_NORM);

    pbuf ob = pb_new((long)T * N, false, NULL);
    g_cpu->ops->matmul(g_cpu, xb.c.p, T, wm.c, NULL, ob.c.p);
    g_gpu->ops->matmul(g_gpu, xb.g.p, T, wm.g, NULL, ob.g.p);
    finish("weight_random [320, 576] via matmul", &ob, TOL_MATMUL);

    pb_free(&e);
    pb_free(&xb);
    pb_free(&nb);
    pb_free(&ob);
    pw_free(&tab);
    pw_free(&w1);
    pw_free(&wm);
    free(x);
}

/* argmax: exact equality with the CPU's scan (an index, not a value). Rows with planted ties
 * (the maximum repeated before and after its first place), all equal, all -inf, NaN at 0 (wins)
 * and NaNs elsewhere (never win), over vocabulary sizes from 1 to 151936; T from 1 to 1000 (the
 * result buffers grow). */
static void test_argmax(void) {
    static const int Ns[] = {1, 2, 31, 1000, 32000, 50257, 151936};
    static const int Ts[] = {1, 7, 64, 1000};
    for (size_t ni = 0; ni < sizeof Ns / sizeof Ns[0]; ni++)
        for (size_t ti = 0; ti < sizeof Ts / sizeof Ts[0]; ti++) {
            const int N = Ns[ni], T = Ts[ti];
            if ((long)N * T > 40000000L) continue;
            float *x = rnd((long)T * N, -4.0f, 4.0f);
            for (int t = 0; t < T; t++) {
                float *r = x + (size_t)t * N;
                int best = 0;
                for (int i = 1; i < N; i++)
                    if (r[i] > r[best]) best = i;
                switch (t % 6) {
                case 1: /* ties: the maximum again later, and once more before it */
                    r[N - 1] = r[best];
                    if (best > 0) r[best / 2] = r[best];
                    break;
                case 2: /* all equal */
                    for (int i = 0; i < N; i++) r[i] = 0.5f;
                    break;
                case 3: /* all -inf */
                    for (int i = 0; i < N; i++) r[i] = -INFINITY;
                    break;
                case 4: /* NaN at 0 */
                    r[0] = NAN;
                    break;
                case 5: /* NaNs elsewhere, one right after the maximum */
                    for (int i = 1; i < N; i += 7) r[i] = NAN;
                    if (best + 1 < N) r[best + 1] = NAN;
                    break;
                default: break;
                }
            }
            void *xc = g_cpu->ops->alloc(g_cpu, sizeof(float) * (size_t)T * N);
            void *xg = g_gpu->ops->alloc(g_gpu, sizeof(float) * (size_t)T * N);
            SK_ASSERT(xc && xg);
            upload(g_cpu, xc, x, (long)T * N);
            upload(g_gpu, xg, x, (long)T * N);
            int32_t *ac = malloc(sizeof(int32_t) * (size_t)T);
            int32_t *ag = malloc(sizeof(int32_t) * (size_t)T);
            SK_ASSERT(ac && ag);
            g_cpu->ops->argmax(g_cpu, xc, T, N, ac);
            for (int t = 0; t < T; t++) ag[t] = -7;
            g_gpu->ops->argmax(g_gpu, xg, T, N, ag);
            int bad = 0, first = -1;
            for (int t = 0; t < T; t++)
                if (ac[t] != ag[t]) bad++, first = first < 0 ? t : first;
            printf("%s %s argmax T=%-4d N=%-6d %d rows differ\n", bad ? "FAIL" : "ok  ", g_dtype,
                   T, N, bad);
            CHECKF(bad == 0, "argmax T=%d N=%d: %d rows differ (first row %d: cpu %d gpu %d)", T,
                   N, bad, first, first >= 0 ? ac[first] : 0, first >= 0 ? ag[first] : 0);
            g_cpu->ops->free(g_cpu, xc);
            g_gpu->ops->free(g_gpu, xg);
            free(ac);
            free(ag);
            free(x);
        }
}

/* The engine's decode step (sk_forward_decode): every row one new token of a distinct
 * sequence, padded to its bucket with rows that write a scratch page, replayed from the graph
 * captured for the bucket, on a synthetic SmolLM2-135M (head_dim 64, 9 heads on 3 KV heads: the
 * decode kernel) with a shuffled paged pool. Each step runs twice on the GPU, on the same
 * positions (a decode step is idempotent: it rewrites its own K/V before attending): first
 * unpadded and eager (sk_forward_paged), then padded through the graph; the graph's logits are
 * compared with the eager ones and with the CPU's (unpadded, fp32 weights), and a third run
 * through the graph with argmax output must give the argmax of its own logits exactly. Step
 * sizes 40 (bucket 64: the cuBLASLt path), 13 (16) and 3 (4) interleave, so graphs are warmed
 * up, captured and replayed after other buckets re-planned the attention in between.
 *
 * Tolerances (not yet measured on the GPU when written): graph vs eager differ only where a
 * product's row count changes the cuBLASLt algorithm (fp32 summation order, then a half
 * rounding of the next layer's input now and then): 8 u of max|logit|. GPU vs CPU: bf16/fp16
 * weights and K/V against fp32 through 30 layers of random weights: 32 u (bf16 0.125, fp16
 * 0.016) of max|logit|. */
#define TOL_DECODE_GRAPH (8.0 * g_u)
#define TOL_DECODE_CPU (32.0 * g_u)
static void test_decode(void) {
    /* BOPS_DECODE_SMALL=1: 6 sequences, 7 steps of 1-6 rows and 2 of the shape's 30 layers instead
     * of 40, 17 and 30, for compute-sanitizer racecheck, whose own host memory on the full test
     * passes the GPU machine's 128 GB (session 12: the OOM killer took it at 130 GB, with or
     * without graphs; session 13: killed again at 6 sequences and 30 layers). */
    const char *small_env = getenv("BOPS_DECODE_SMALL");
    const bool small = small_env && *small_env && strcmp(small_env, "0") != 0;
    const long nt0 = sk_cuda_attn_newtok();
    sk_model_params p;
    sk_model_params_default(&p);
    p.shape_layers = small ? 2 : 0;
    p.device = SK_DEVICE_CPU;
    sk_model *mc = NULL, *mg = NULL;
    CHECK(sk_model_open_shape("smollm2-135m", &p, &mc) == SK_OK);
    p.device = SK_DEVICE_CUDA;
    p.cuda_dtype = g_dtype;
    CHECK(sk_model_open_shape("smollm2-135m", &p, &mg) == SK_OK);
    SK_ASSERT(mc && mg);
    const sk_hparams *hp = &mg->hp;
    const int V = hp->n_vocab, NS = small ? 6 : 40, ps = 64, max_len = 200,
              pps = (max_len + ps - 1) / ps;
    const int n_pages = NS * pps + 1, scratch = n_pages - 1;
    const sk_kv_desc d = {hp->n_layers, hp->n_kv_heads, hp->head_dim, ps, n_pages, max_len};
    sk_kv_cache *kc = NULL, *kg = NULL;
    CHECK(mc->be->ops->kv_pool_new(mc->be, &d, &kc) == SK_OK);
    CHECK(mg->be->ops->kv_pool_new(mg->be, &d, &kg) == SK_OK);
    sk_fwd_buffers bc, bg;
    CHECK(sk_fwd_buffers_new(mc, 128, 64, &bc) == SK_OK);
    CHECK(sk_fwd_buffers_new(mg, 128, 64, &bg) == SK_OK);
    sk_fwd_decode dec;
    sk_fwd_decode_init(&dec, scratch);
    /* Tables: the pool but its last page, shuffled. */
    int32_t *perm = malloc(sizeof(int32_t) * (size_t)n_pages), indptr[41];
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(NS * pps));
    SK_ASSERT(perm && ids);
    for (int i = 0; i < scratch; i++) perm[i] = i;
    for (int i = scratch - 1; i > 0; i--) {
        float u;
        sk_test_rand(&u, 1, 0.0f, 1.0f, &g_rng);
        int j = (int)(u * (float)(i + 1)) % (i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    indptr[0] = 0;
    for (int q = 0; q < NS; q++) {
        indptr[q + 1] = indptr[q] + pps;
        for (int j = 0; j < pps; j++) ids[indptr[q] + j] = perm[q * pps + j];
    }
    /* Prompts of 1..61 tokens, each alone (both backends, no outputs). */
    int len[40];
    int32_t last[40], tok[128], pos[128], seq[128];
    for (int q = 0; q < NS; q++) {
        len[q] = 1 + (q * 37) % 61;
        for (int i = 0; i < len[q]; i++) {
            float u;
            sk_test_rand(&u, 1, 0.0f, 1.0f, &g_rng);
            tok[i] = (int32_t)(u * (float)(V - 1)), pos[i] = i, seq[i] = 0;
        }
        last[q] = tok[len[q] - 1];
        const int32_t ip1[2] = {0, pps};
        const sk_page_tables pt1 = {1, ip1, ids + indptr[q]};
        const sk_batch b = {len[q], tok, pos, seq};
        CHECK(sk_forward_paged(mc, &bc, kc, &b, &pt1, NULL, 0, NULL, NULL) == SK_OK);
        CHECK(sk_forward_paged(mg, &bg, kg, &b, &pt1, NULL, 0, NULL, NULL) == SK_OK);
    }
    /* Decode steps. Step sizes interleave the buckets; the rows of a step are sequences
     * 0..n-1 of tables built for them (in reverse pool order, so rows do not follow pages). */
    /* 1 and 2 rows: the GEMV path (fused norm, PDL, the per-product configurations). */
    static const int sizes_full[] = {40, 40, 40, 13, 13, 13, 40, 3, 3, 3, 13, 40, 1, 1, 2, 2, 1};
    static const int sizes_small[] = {6, 6, 3, 3, 1, 2, 1};
    const int *sizes = small ? sizes_small : sizes_full;
    const size_t n_sizes = small ? sizeof sizes_small / sizeof sizes_small[0]
                                 : sizeof sizes_full / sizeof sizes_full[0];
    float *lc = malloc(sizeof(float) * 40 * (size_t)V), *le = malloc(sizeof(float) * 40 * (size_t)V);
    float *lgr = malloc(sizeof(float) * 40 * (size_t)V);
    int32_t *rows = malloc(sizeof(int32_t) * 40), am[40], sid[40], sptr[41];
    int32_t *sids = malloc(sizeof(int32_t) * (size_t)(NS * pps));
    SK_ASSERT(lc && le && lgr && rows && sids);
    for (size_t it = 0; it < n_sizes; it++) {
        const int n = sizes[it];
        sptr[0] = 0;
        for (int i = 0; i < n; i++) {
            const int q = (int)(it * 7 + (size_t)(n - 1 - i)) % NS; /* which sequence row i is */
            sid[i] = q;
            for (int j = 0; j < pps; j++) sids[sptr[i] + j] = ids[indptr[q] + j];
            sptr[i + 1] = sptr[i] + pps;
        }
        /* Distinct sequences per step: q = (it*7 + n-1-i) mod NS for i < n <= NS. */
        for (int i = 0; i < n; i++) {
            tok[i] = last[sid[i]], pos[i] = len[sid[i]], seq[i] = i, rows[i] = i;
        }
        const sk_page_tables pt = {n, sptr, sids};
        const sk_batch b = {n, tok, pos, seq};
        CHECK(sk_forward_paged(mc, &bc, kc, &b, &pt, rows, n, lc, NULL) == SK_OK);
        CHECK(sk_forward_paged(mg, &bg, kg, &b, &pt, rows, n, le, NULL) == SK_OK);
        CHECK(sk_forward_decode(mg, &bg, kg, &dec, &b, &pt, lgr, NULL) == SK_OK);
        char what[128];
        const long nv = (long)n * V;
        const double e1 = sk_test_rel_err(lgr, le, nv), e2 = sk_test_rel_err(lgr, lc, nv);
        const bool ok = e1 <= TOL_DECODE_GRAPH && e2 <= TOL_DECODE_CPU;
        snprintf(what, sizeof what, "decode step %zu: %d rows (bucket %d)", it, n,
                 sk_fwd_decode_bucket(n, NULL));
        printf("%s %s %-40s padded graph vs eager err %.2e (max %.1e), vs cpu %.2e (max %.1e)\n",
               ok ? "ok  " : "FAIL", g_dtype, what, e1, TOL_DECODE_GRAPH, e2, TOL_DECODE_CPU);
        CHECKF(e1 <= TOL_DECODE_GRAPH, "%s %s: graph vs eager %.3e", g_dtype, what, e1);
        CHECKF(e2 <= TOL_DECODE_CPU, "%s %s: vs cpu %.3e", g_dtype, what, e2);
        if (it == n_sizes - 1 || it == 5 || it == 9) {
            CHECK(sk_forward_decode(mg, &bg, kg, &dec, &b, &pt, NULL, am) == SK_OK);
            int bad = 0;
            for (int i = 0; i < n; i++) {
                const float *r = lgr + (size_t)i * V;
                int best = 0;
                for (int j = 1; j < V; j++)
                    if (r[j] > r[best]) best = j;
                bad += best != am[i];
            }
            printf("%s %s %-40s argmax through the graph: %d rows differ\n", bad ? "FAIL" : "ok  ",
                   g_dtype, what, bad);
            CHECKF(bad == 0, "%s %s: argmax through the graph: %d rows differ", g_dtype, what, bad);
        }
        /* Next tokens: the CPU's argmax (both backends feed the same tokens). */
        for (int i = 0; i < n; i++) {
            const float *r = lc + (size_t)i * V;
            int best = 0;
            for (int j = 1; j < V; j++)
                if (r[j] > r[best]) best = j;
            last[sid[i]] = best;
            len[sid[i]]++;
        }
    }
    printf("   %s decode: addr_epoch %u at the end\n", g_dtype, mg->be->addr_epoch);
    sk_fwd_decode_free(mg, &dec);
    sk_fwd_buffers_free(mc, &bc);
    sk_fwd_buffers_free(mg, &bg);
    mc->be->ops->kv_free(mc->be, kc);
    mg->be->ops->kv_free(mg->be, kg);
    sk_model_close(mc);
    sk_model_close(mg);
    free(perm);
    free(ids);
    free(sids);
    free(rows);
    free(lc);
    free(le);
    free(lgr);
    check_newtok_taken("decode", nt0);
}

/* ---- main --------------------------------------------------------------------------------- */

/* Usage: backend_ops [group [dtype]]   (group: embed, norm, elementwise, rope, matmul, fused,
 * norm_matmul, w4, attention, paged, random, argmax, decode, or all; dtype: bf16 or fp16; all groups and
 * both types when omitted). */
int main(int argc, char **argv) {
    const char *only = argc > 1 && strcmp(argv[1], "all") != 0 ? argv[1] : NULL;
    const char *only_dt = argc > 2 ? argv[2] : NULL;
    if (sk_backend_cpu_new(0, &g_cpu) != SK_OK) {
        fprintf(stderr, "FAIL: cpu backend: %s\n", sk_last_error());
        return 1;
    }
    static const struct {
        const char *name;
        void (*fn)(void);
    } groups[] = {
        {"embed", test_embed},   {"norm", test_norms},     {"elementwise", test_elementwise},
        {"rope", test_rope},     {"matmul", test_matmul}, {"fused", test_fused},
        {"norm_matmul", test_norm_matmul},
        {"w4", test_w4},
        {"carry", test_carry},
        {"attention", test_attention},
        {"paged", test_attention_paged},
        {"random", test_random},
        {"argmax", test_argmax},
        {"decode", test_decode},
    };
    static const struct {
        const char *name;
        double u;
    } dtypes[] = {{"bf16", 1.0 / 256.0}, {"fp16", 1.0 / 2048.0}};
    int ran = 0;
    for (size_t d = 0; d < sizeof dtypes / sizeof dtypes[0]; d++) {
        if (only_dt && strcmp(only_dt, dtypes[d].name) != 0) continue;
        g_dtype = dtypes[d].name;
        g_u = dtypes[d].u;
        if (sk_backend_cuda_new(g_dtype, &g_gpu) != SK_OK) {
            fprintf(stderr, "FAIL: cuda backend (%s): %s\n", g_dtype, sk_last_error());
            return 1;
        }
        SK_ASSERT(g_cpu->act_bytes == sizeof(float) && g_gpu->act_bytes == sizeof(float));
        for (size_t i = 0; i < sizeof groups / sizeof groups[0]; i++) {
            if (only && strcmp(only, groups[i].name) != 0) continue;
            const double t0 = sk_time_now();
            groups[i].fn();
            printf("-- %s %s: %.2f s\n", g_dtype, groups[i].name, sk_time_now() - t0);
            ran++;
        }
        g_gpu->ops->destroy(g_gpu);
        g_gpu = NULL;
    }
    sk_backend *bad = NULL;
    CHECK(sk_backend_cuda_new("fp8", &bad) == SK_ERR_ARG && bad == NULL);
    CHECKF(ran > 0, "unknown op group '%s' or dtype '%s'", only ? only : "",
           only_dt ? only_dt : "");
    g_cpu->ops->destroy(g_cpu);
    return sk_test_done("backend_ops");
}
