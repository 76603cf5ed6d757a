/* The CPU backend's ops against naive double-precision re-implementations written here: random
 * inputs (never zeros), many shapes including odd ones, every weight dtype (blocks built here and
 * decoded here from the format in dtype.h), guard values around every output. */
#include "backend/backend.h"
#include "testlib.h"

#include <stdint.h>

#define GUARD 16
#define SENTINEL 1234.5f

static unsigned long long g_rng = 0x9e3779b97f4a7c15ull;

static float *rnd(long n, float lo, float hi) {
    float *x = malloc(sizeof(float) * (size_t)(n ? n : 1));
    sk_test_rand(x, n, lo, hi, &g_rng);
    return x;
}

/* An output buffer of n floats with GUARD sentinels on both sides; returns the usable part. */
static float *guarded(long n) {
    float *b = malloc(sizeof(float) * (size_t)(n + 2 * GUARD));
    for (long i = 0; i < n + 2 * GUARD; i++) b[i] = SENTINEL;
    return b + GUARD;
}
static int guards_ok(const float *p, long n) {
    for (long i = 1; i <= GUARD; i++)
        if (p[-i] != SENTINEL || p[n + i - 1] != SENTINEL) return 0;
    return 1;
}
static void guarded_free(float *p) { free(p - GUARD); }

/* max |a - ref| / max |ref| with a double reference. */
static double err_vs(const float *a, const double *ref, long n) {
    double md = 0, mr = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - ref[i]);
        if (d != d) return INFINITY;
        if (d > md) md = d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    return md / (mr > 1e-30 ? mr : 1e-30);
}

/* ---- weight blocks, built and decoded here ------------------------------------------------ */

static void put16(uint8_t *p, uint16_t v) {
    p[0] = (uint8_t)(v & 0xff);
    p[1] = (uint8_t)(v >> 8);
}
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

/* IEEE half to double, written from the format (independent of src/core). */
static double half_to_double(uint16_t h) {
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    double v = e == 0 ? ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : ldexp(1024 + m, e - 25);
    return s ? -v : v;
}
static double bf16_to_double(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* Encodes n values of x (n a multiple of the block) as type t into out; returns bytes. */
static size_t encode(sk_dtype t, const float *x, long n, uint8_t *out) {
    uint8_t *p = out;
    switch (t) {
    case SK_F32: memcpy(out, x, (size_t)n * 4); return (size_t)n * 4;
    case SK_F16:
        for (long i = 0; i < n; i++) put16(out + 2 * i, sk_f32_to_f16(x[i]));
        return (size_t)n * 2;
    case SK_BF16:
        for (long i = 0; i < n; i++) put16(out + 2 * i, sk_f32_to_bf16(x[i]));
        return (size_t)n * 2;
    case SK_Q8_0:
        for (long b = 0; b < n / 32; b++, p += 34) {
            const float *xb = x + 32 * b;
            float amax = 0;
            for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
            uint16_t dh = sk_f32_to_f16(amax / 127.0f);
            double d = half_to_double(dh);
            put16(p, dh);
            for (int j = 0; j < 32; j++) {
                long q = lround(xb[j] / d);
                p[2 + j] = (uint8_t)(int8_t)(q > 127 ? 127 : q < -127 ? -127 : q);
            }
        }
        return (size_t)(p - out);
    case SK_Q4_0:
        for (long b = 0; b < n / 32; b++, p += 18) {
            const float *xb = x + 32 * b;
            float amax = 0, mx = 0;
            for (int j = 0; j < 32; j++)
                if (fabsf(xb[j]) > amax) amax = fabsf(xb[j]), mx = xb[j];
            uint16_t dh = sk_f32_to_f16(mx / -8.0f);
            double d = half_to_double(dh);
            put16(p, dh);
            for (int j = 0; j < 16; j++) {
                long lo = lround(xb[j] / d + 8), hi = lround(xb[j + 16] / d + 8);
                lo = lo < 0 ? 0 : lo > 15 ? 15 : lo;
                hi = hi < 0 ? 0 : hi > 15 ? 15 : hi;
                p[2 + j] = (uint8_t)(lo | (hi << 4));
            }
        }
        return (size_t)(p - out);
    case SK_Q4_1:
        for (long b = 0; b < n / 32; b++, p += 20) {
            const float *xb = x + 32 * b;
            float mn = xb[0], mx = xb[0];
            for (int j = 0; j < 32; j++) mn = fminf(mn, xb[j]), mx = fmaxf(mx, xb[j]);
            uint16_t dh = sk_f32_to_f16((mx - mn) / 15.0f), mh = sk_f32_to_f16(mn);
            double d = half_to_double(dh), m = half_to_double(mh);
            put16(p, dh);
            put16(p + 2, mh);
            for (int j = 0; j < 16; j++) {
                long lo = lround((xb[j] - m) / d), hi = lround((xb[j + 16] - m) / d);
                lo = lo < 0 ? 0 : lo > 15 ? 15 : lo;
                hi = hi < 0 ? 0 : hi > 15 ? 15 : hi;
                p[4 + j] = (uint8_t)(lo | (hi << 4));
            }
        }
        return (size_t)(p - out);
    default: break;
    }
    abort();
}

/* Decodes n values of type t at src into double dst. */
static void decode(sk_dtype t, const uint8_t *src, long n, double *dst) {
    const uint8_t *p = src;
    switch (t) {
    case SK_F32:
        for (long i = 0; i < n; i++) {
            float f;
            memcpy(&f, src + 4 * i, 4);
            dst[i] = f;
        }
        return;
    case SK_F16:
        for (long i = 0; i < n; i++) dst[i] = half_to_double(get16(src + 2 * i));
        return;
    case SK_BF16:
        for (long i = 0; i < n; i++) dst[i] = bf16_to_double(get16(src + 2 * i));
        return;
    case SK_Q8_0:
        for (long b = 0; b < n / 32; b++, p += 34)
            for (int j = 0; j < 32; j++)
                dst[32 * b + j] = (int8_t)p[2 + j] * half_to_double(get16(p));
        return;
    case SK_Q4_0:
        for (long b = 0; b < n / 32; b++, p += 18)
            for (int j = 0; j < 16; j++) {
                double d = half_to_double(get16(p));
                dst[32 * b + j] = ((p[2 + j] & 15) - 8) * d;
                dst[32 * b + j + 16] = ((p[2 + j] >> 4) - 8) * d;
            }
        return;
    case SK_Q4_1:
        for (long b = 0; b < n / 32; b++, p += 20)
            for (int j = 0; j < 16; j++) {
                double d = half_to_double(get16(p)), m = half_to_double(get16(p + 2));
                dst[32 * b + j] = (p[4 + j] & 15) * d + m;
                dst[32 * b + j + 16] = (p[4 + j] >> 4) * d + m;
            }
        return;
    default: break;
    }
    abort();
}

/* A test weight: its encoded bytes (owned), the tensor over them, and its decoded values. */
typedef struct tw {
    uint8_t *mem;
    sk_tensor t;
    double *ref; /* [rows * cols] */
} tw;

/* rows x cols of type t from random values in [-1, 1); misalign shifts the data by 2 bytes. */
static tw make_weight(sk_dtype t, long rows, long cols, int misalign) {
    tw w;
    memset(&w, 0, sizeof w);
    float *x = rnd(rows * cols, -1.0f, 1.0f);
    size_t nbytes = sk_dtype_row_bytes(t, cols) * (size_t)rows;
    w.mem = malloc(nbytes + 8);
    uint8_t *data = w.mem + (misalign ? 2 : 0);
    size_t got = encode(t, x, rows * cols, data);
    CHECK(got == nbytes);
    snprintf(w.t.name, sizeof w.t.name, "w_%s_%ldx%ld", sk_dtype_name(t), rows, cols);
    w.t.type = t;
    w.t.n_dims = rows == 1 ? 1 : 2;
    if (rows == 1) {
        w.t.shape[0] = cols;
    } else {
        w.t.shape[0] = rows;
        w.t.shape[1] = cols;
    }
    w.t.data = data;
    w.t.nbytes = nbytes;
    w.ref = malloc(sizeof(double) * (size_t)(rows * cols));
    decode(t, data, rows * cols, w.ref);
    free(x);
    return w;
}
static void free_weight(tw *w) {
    free(w->mem);
    free(w->ref);
}

static sk_weight *load(sk_backend *be, const tw *w) {
    sk_weight *h = NULL;
    sk_status s = be->ops->weight_load(be, &w->t, &h);
    CHECKF(s == SK_OK, "weight_load %s: %s", w->t.name, sk_last_error());
    return h;
}

/* begin() with T tokens (ids given), positions pos and sequence slots seq (NULL: all 0). */
static void begin(sk_backend *be, int T, const int32_t *tokens, const int32_t *pos,
                  const int32_t *seq) {
    int32_t *tk = calloc((size_t)T, 4), *ps = calloc((size_t)T, 4), *sq = calloc((size_t)T, 4);
    for (int i = 0; i < T; i++) {
        tk[i] = tokens ? tokens[i] : 0;
        ps[i] = pos ? pos[i] : i;
        sq[i] = seq ? seq[i] : 0;
    }
    sk_batch b = {T, tk, ps, sq};
    CHECK(be->ops->begin(be, &b) == SK_OK);
    free(tk);
    free(ps);
    free(sq);
}

/* ---- tests ------------------------------------------------------------------------------ */

static const sk_dtype k_types[] = {SK_F32, SK_F16, SK_BF16, SK_Q8_0, SK_Q4_0, SK_Q4_1};
#define N_TYPES (int)(sizeof k_types / sizeof k_types[0])

static void test_matmul(sk_backend *be, sk_backend *be1) {
    static const struct {
        int T, N, K;
    } shapes[] = {{1, 1, 32},   {1, 7, 64},   {2, 5, 32},    {3, 4, 96},    {4, 13, 160},
                  {17, 9, 64},  {5, 64, 256}, {1, 33, 1024}, {8, 131, 96},  {33, 6, 32},
                  {1, 3, 7},    {3, 5, 33},   {6, 11, 100},  {2, 3, 1},     {1, 100, 1024}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int T = shapes[si].T, N = shapes[si].N, K = shapes[si].K;
        for (int ti = 0; ti < N_TYPES; ti++) {
            const sk_dtype t = k_types[ti];
            if (K % sk_dtype_block(t)) continue;
            for (int variant = 0; variant < 3; variant++) {
                /* 0: plain; 1: with bias; 2: misaligned data (F32 then takes the copy path) */
                tw w = make_weight(t, N, K, variant == 2);
                tw bias = make_weight(SK_F32, 1, N, 0);
                sk_weight *hw = load(be, &w), *hb = variant == 1 ? load(be, &bias) : NULL;
                float *x = rnd((long)T * K, -1.0f, 1.0f);
                float *out = guarded((long)T * N), *out1 = guarded((long)T * N);
                be->ops->matmul(be, x, T, hw, hb, out);
                double *ref = malloc(sizeof(double) * (size_t)T * N);
                for (int i = 0; i < T; i++)
                    for (int n = 0; n < N; n++) {
                        double s = variant == 1 ? bias.ref[n] : 0.0;
                        for (int k = 0; k < K; k++)
                            s += (double)x[i * K + k] * w.ref[(long)n * K + k];
                        ref[i * N + n] = s;
                    }
                double e = err_vs(out, ref, (long)T * N);
                CHECKF(e < 2e-6 * sqrt((double)K), "matmul %s T=%d N=%d K=%d v%d: err %.3g",
                       sk_dtype_name(t), T, N, K, variant, e);
                CHECKF(guards_ok(out, (long)T * N), "matmul %s T=%d N=%d K=%d: guard overwritten",
                       sk_dtype_name(t), T, N, K);
                /* one thread gives the same numbers (each output is one thread's dot) */
                sk_weight *hw1 = load(be1, &w), *hb1 = variant == 1 ? load(be1, &bias) : NULL;
                be1->ops->matmul(be1, x, T, hw1, hb1, out1);
                CHECKF(sk_test_rel_err(out1, out, (long)T * N) < 1e-7,
                       "matmul %s T=%d N=%d K=%d: 1 thread differs from 2", sk_dtype_name(t), T,
                       N, K);
                be1->ops->weight_free(be1, hw1);
                be1->ops->weight_free(be1, hb1);
                be->ops->weight_free(be, hw);
                be->ops->weight_free(be, hb);
                free_weight(&w);
                free_weight(&bias);
                free(x);
                free(ref);
                guarded_free(out);
                guarded_free(out1);
            }
        }
    }
}

/* Each output row of a prompt batch must equal the same row computed alone (T = 1 path). */
static void test_matmul_batch_vs_single(sk_backend *be) {
    const int T = 9, N = 21, K = 128;
    for (int ti = 0; ti < N_TYPES; ti++) {
        tw w = make_weight(k_types[ti], N, K, 0);
        sk_weight *hw = load(be, &w);
        float *x = rnd((long)T * K, -1, 1), *out = guarded((long)T * N), *one = guarded(N);
        be->ops->matmul(be, x, T, hw, NULL, out);
        double worst = 0;
        for (int t = 0; t < T; t++) {
            be->ops->matmul(be, x + (long)t * K, 1, hw, NULL, one);
            double e = sk_test_rel_err(out + (long)t * N, one, N);
            if (e > worst) worst = e;
        }
        CHECKF(worst < 1e-6, "matmul %s: batch rows differ from single rows by %.3g",
               sk_dtype_name(k_types[ti]), worst);
        be->ops->weight_free(be, hw);
        free_weight(&w);
        free(x);
        guarded_free(out);
        guarded_free(one);
    }
}

static void test_embed(sk_backend *be) {
    const int V = 37, D = 96, T = 11;
    const int32_t tokens[11] = {0, 36, 5, 5, 17, 1, 30, 2, 36, 9, 0};
    for (int ti = 0; ti < N_TYPES; ti++) {
        tw w = make_weight(k_types[ti], V, D, 0);
        sk_weight *hw = load(be, &w);
        begin(be, T, tokens, NULL, NULL);
        float *out = guarded((long)T * D);
        be->ops->embed(be, hw, out);
        double *ref = malloc(sizeof(double) * T * D);
        for (int t = 0; t < T; t++)
            for (int d = 0; d < D; d++) ref[t * D + d] = w.ref[(long)tokens[t] * D + d];
        CHECKF(err_vs(out, ref, (long)T * D) < 1e-7, "embed %s", sk_dtype_name(k_types[ti]));
        CHECK(guards_ok(out, (long)T * D));
        be->ops->weight_free(be, hw);
        free_weight(&w);
        guarded_free(out);
        free(ref);
    }
}

static void test_norms(sk_backend *be) {
    static const int shapes[][2] = {{1, 1}, {1, 7}, {3, 64}, {5, 33}, {2, 288}, {67, 576}};
    const float eps = 1e-5f;
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        const int T = shapes[si][0], D = shapes[si][1];
        for (int wt = 0; wt < 3; wt++) { /* norm weights as F32, F16, BF16 (converted at load) */
            const sk_dtype t = wt == 0 ? SK_F32 : wt == 1 ? SK_F16 : SK_BF16;
            tw w = make_weight(t, 1, D, 0), b = make_weight(t, 1, D, 0);
            sk_weight *hw = load(be, &w), *hb = load(be, &b);
            float *x = rnd((long)T * D, -2.0f, 3.0f);
            float *out = guarded((long)T * D);
            double *ref = malloc(sizeof(double) * T * D), *refl = malloc(sizeof(double) * T * D),
                   *refl0 = malloc(sizeof(double) * T * D);
            for (int i = 0; i < T; i++) {
                const float *r = x + (long)i * D;
                double ss = 0, mean = 0, var = 0;
                for (int d = 0; d < D; d++) ss += (double)r[d] * r[d], mean += r[d];
                mean /= D;
                for (int d = 0; d < D; d++) var += (r[d] - mean) * (r[d] - mean);
                var /= D;
                for (int d = 0; d < D; d++) {
                    ref[i * D + d] = r[d] / sqrt(ss / D + eps) * w.ref[d];
                    refl0[i * D + d] = (r[d] - mean) / sqrt(var + eps) * w.ref[d];
                    refl[i * D + d] = refl0[i * D + d] + b.ref[d];
                }
            }
            be->ops->rmsnorm(be, x, hw, eps, T, D, out);
            CHECKF(err_vs(out, ref, (long)T * D) < 1e-6, "rmsnorm T=%d D=%d %s", T, D,
                   sk_dtype_name(t));
            CHECK(guards_ok(out, (long)T * D));
            be->ops->layernorm(be, x, hw, hb, eps, T, D, out);
            CHECKF(err_vs(out, refl, (long)T * D) < 1e-6, "layernorm T=%d D=%d %s", T, D,
                   sk_dtype_name(t));
            be->ops->layernorm(be, x, hw, NULL, eps, T, D, out);
            CHECKF(err_vs(out, refl0, (long)T * D) < 1e-6, "layernorm (no bias) T=%d D=%d", T, D);
            CHECK(guards_ok(out, (long)T * D));
            /* in place (out == x) */
            float *y = guarded((long)T * D);
            memcpy(y, x, sizeof(float) * (size_t)T * D);
            be->ops->rmsnorm(be, y, hw, eps, T, D, y);
            CHECKF(err_vs(y, ref, (long)T * D) < 1e-6, "rmsnorm in place T=%d D=%d", T, D);
            memcpy(y, x, sizeof(float) * (size_t)T * D);
            be->ops->layernorm(be, y, hw, hb, eps, T, D, y);
            CHECKF(err_vs(y, refl, (long)T * D) < 1e-6, "layernorm in place T=%d D=%d", T, D);
            CHECK(guards_ok(y, (long)T * D));
            be->ops->weight_free(be, hw);
            be->ops->weight_free(be, hb);
            free_weight(&w);
            free_weight(&b);
            free(x);
            free(ref);
            free(refl);
            free(refl0);
            guarded_free(out);
            guarded_free(y);
        }
    }
}

static void test_elementwise(sk_backend *be) {
    static const long sizes[] = {1, 7, 64, 1000, 40001};
    for (size_t si = 0; si < sizeof sizes / sizeof sizes[0]; si++) {
        const long n = sizes[si];
        float *a = rnd(n, -6.0f, 6.0f), *b = rnd(n, -3.0f, 3.0f);
        double *ref = malloc(sizeof(double) * (size_t)n);
        float *x = guarded(n), *out = guarded(n);

        memcpy(x, a, sizeof(float) * (size_t)n);
        be->ops->add(be, x, b, (size_t)n);
        for (long i = 0; i < n; i++) ref[i] = (double)a[i] + b[i];
        CHECKF(err_vs(x, ref, n) < 1e-7, "add n=%ld", n);
        CHECK(guards_ok(x, n));

        be->ops->swiglu(be, a, b, (size_t)n, out);
        for (long i = 0; i < n; i++) ref[i] = a[i] / (1.0 + exp(-(double)a[i])) * b[i];
        CHECKF(err_vs(out, ref, n) < 1e-6, "swiglu n=%ld", n);
        CHECK(guards_ok(out, n));
        /* in place into gate */
        memcpy(x, a, sizeof(float) * (size_t)n);
        be->ops->swiglu(be, x, b, (size_t)n, x);
        CHECKF(err_vs(x, ref, n) < 1e-6, "swiglu in place n=%ld", n);

        memcpy(x, a, sizeof(float) * (size_t)n);
        be->ops->gelu(be, x, (size_t)n);
        for (long i = 0; i < n; i++) ref[i] = 0.5 * a[i] * (1.0 + erf(a[i] / sqrt(2.0)));
        CHECKF(err_vs(x, ref, n) < 1e-6, "gelu n=%ld", n);
        CHECK(guards_ok(x, n));

        free(a);
        free(b);
        free(ref);
        guarded_free(x);
        guarded_free(out);
    }
}

/* Rotation of (a, b) by pos * theta^(-2i/rope_dim), computed in double from the definition. */
static void test_rope(sk_backend *be) {
    static const struct {
        int T, n_heads, head_dim, rope_dim, extra; /* extra: row stride beyond the heads */
    } cases[] = {{1, 1, 2, 2, 0},   {3, 4, 8, 8, 0},    {5, 3, 16, 8, 0}, {4, 2, 64, 64, 7},
                 {2, 9, 64, 32, 64}, {6, 5, 32, 2, 3},  {1, 8, 128, 128, 0},
                 {40, 8, 128, 96, 5}};
    static const int32_t positions[] = {0, 1, 7, 100, 511, 2047, 4095, 3};
    int32_t pos[64];
    for (size_t ci = 0; ci < sizeof cases / sizeof cases[0]; ci++) {
        const int T = cases[ci].T, H = cases[ci].n_heads, hd = cases[ci].head_dim;
        const int rd = cases[ci].rope_dim, stride = H * hd + cases[ci].extra;
        for (int pairing = 0; pairing < 2; pairing++) {
            for (int theta_i = 0; theta_i < 2; theta_i++) {
                const float theta = theta_i ? 500000.0f : 10000.0f;
                for (int t = 0; t < T; t++) pos[t] = positions[(t + (int)ci) % 8];
                begin(be, T, NULL, pos, NULL);
                float *x0 = rnd((long)T * stride, -1.0f, 1.0f);
                float *x = guarded((long)T * stride);
                memcpy(x, x0, sizeof(float) * (size_t)T * stride);
                const sk_rope_params rp = {hd, rd, theta, (sk_rope_pairing)pairing};
                be->ops->rope(be, x, T, H, stride, &rp);
                for (int t = 0; t < T; t++) {
                    double *ref = malloc(sizeof(double) * (size_t)stride);
                    for (int j = 0; j < stride; j++) ref[j] = x0[(long)t * stride + j];
                    for (int h = 0; h < H; h++)
                        for (int i = 0; i < rd / 2; i++) {
                            int ia = pairing == SK_ROPE_ADJACENT ? 2 * i : i;
                            int ib = pairing == SK_ROPE_ADJACENT ? 2 * i + 1 : i + rd / 2;
                            double ang = pos[t] * pow((double)theta, -2.0 * i / rd);
                            double a = x0[(long)t * stride + h * hd + ia];
                            double b = x0[(long)t * stride + h * hd + ib];
                            ref[h * hd + ia] = a * cos(ang) - b * sin(ang);
                            ref[h * hd + ib] = a * sin(ang) + b * cos(ang);
                        }
                    /* fp32 angles: error grows with the position (about 1 ulp of pos*freq) */
                    double tol = 2e-6 + 3e-7 * pos[t];
                    double e = err_vs(x + (long)t * stride, ref, stride);
                    CHECKF(e < tol, "rope %s T=%d H=%d hd=%d rd=%d pos=%d theta=%g: err %.3g",
                           pairing ? "halves" : "adjacent", T, H, hd, rd, pos[t], (double)theta, e);
                    free(ref);
                }
                CHECK(guards_ok(x, (long)T * stride));
                free(x0);
                guarded_free(x);
            }
        }
    }
}

/* ---- attention -------------------------------------------------------------------------- */

/* Reference: the test keeps every sequence's K/V history itself. */
typedef struct hist {
    int n_ctx, kvw;    /* kvw = n_kv_heads * head_dim */
    double *k, *v;     /* [n_seq][n_ctx][kvw] */
} hist;

/* out[n_heads*hd] for query q at position pos of sequence seq. */
static void attn_ref(const hist *hs, int seq, int pos, const float *q, int n_heads, int n_kv,
                     int hd, double *out) {
    const int group = n_heads / n_kv;
    double *s = malloc(sizeof(double) * (size_t)(pos + 1));
    for (int h = 0; h < n_heads; h++) {
        const int kh = h / group;
        double mx = -INFINITY, sum = 0;
        for (int p = 0; p <= pos; p++) {
            const double *kp = hs->k + ((size_t)seq * hs->n_ctx + p) * hs->kvw + kh * hd;
            double d = 0;
            for (int i = 0; i < hd; i++) d += q[h * hd + i] * kp[i];
            s[p] = d / sqrt((double)hd);
            if (s[p] > mx) mx = s[p];
        }
        for (int p = 0; p <= pos; p++) sum += (s[p] = exp(s[p] - mx));
        for (int i = 0; i < hd; i++) {
            double o = 0;
            for (int p = 0; p <= pos; p++)
                o += s[p] / sum * hs->v[((size_t)seq * hs->n_ctx + p) * hs->kvw + kh * hd + i];
            out[h * hd + i] = o;
        }
    }
    free(s);
}

/* Runs one attention step of T rows (seq[t], pos[t]) with fresh random q/k/v laid out in a fused
 * row of stride (n_heads + 2 n_kv) * hd + pad, records k/v in the reference history and checks
 * out against attn_ref. Returns the output (caller frees with guarded_free). */
static float *attn_step(sk_backend *be, sk_kv_cache *kv, int layer, hist *hs, int T,
                        const int32_t *seq, const int32_t *pos, int n_heads, int n_kv, int hd,
                        int pad, const float *given_rows, const char *what) {
    const int stride = (n_heads + 2 * n_kv) * hd + pad, qw = n_heads * hd, kvw = n_kv * hd;
    float *rows = malloc(sizeof(float) * (size_t)T * stride);
    if (given_rows)
        memcpy(rows, given_rows, sizeof(float) * (size_t)T * stride);
    else
        sk_test_rand(rows, (long)T * stride, -1.5f, 1.5f, &g_rng);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < kvw; i++) {
            size_t at = ((size_t)seq[t] * hs->n_ctx + pos[t]) * kvw + i;
            hs->k[at] = rows[(long)t * stride + qw + i];
            hs->v[at] = rows[(long)t * stride + qw + kvw + i];
        }
    begin(be, T, NULL, pos, seq);
    float *out = guarded((long)T * qw);
    be->ops->attention(be, kv, layer, rows, stride, rows + qw, rows + qw + kvw, stride, n_heads,
                       out);
    double *ref = malloc(sizeof(double) * (size_t)qw);
    double worst = 0;
    for (int t = 0; t < T; t++) {
        attn_ref(hs, seq[t], pos[t], rows + (long)t * stride, n_heads, n_kv, hd, ref);
        double e = err_vs(out + (long)t * qw, ref, qw);
        if (e > worst) worst = e;
    }
    CHECKF(worst < 2e-6, "attention %s H=%d KV=%d hd=%d T=%d: err %.3g", what, n_heads, n_kv, hd,
           T, worst);
    CHECKF(guards_ok(out, (long)T * qw), "attention %s: guard overwritten", what);
    free(ref);
    free(rows);
    return out;
}

static void test_attention(sk_backend *be) {
    static const struct {
        int n_heads, n_kv, hd;
    } cfg[] = {{4, 4, 16}, {8, 4, 8}, {8, 2, 32}, {6, 1, 16}, {9, 3, 64}, {3, 3, 2}};
    for (size_t ci = 0; ci < sizeof cfg / sizeof cfg[0]; ci++) {
        const int H = cfg[ci].n_heads, KV = cfg[ci].n_kv, hd = cfg[ci].hd;
        const int n_ctx = 40, n_layers = 2, layer = 1, pad = 3;
        const int stride = (H + 2 * KV) * hd + pad, qw = H * hd;
        sk_kv_cache *kv = NULL, *kv1 = NULL;
        CHECK(be->ops->kv_new(be, n_layers, KV, hd, n_ctx, 2, &kv) == SK_OK);
        CHECK(be->ops->kv_new(be, n_layers, KV, hd, n_ctx, 2, &kv1) == SK_OK);
        hist hs = {n_ctx, KV * hd, calloc((size_t)2 * n_ctx * KV * hd, sizeof(double)),
                   calloc((size_t)2 * n_ctx * KV * hd, sizeof(double))};
        hist hs1 = {n_ctx, KV * hd, calloc((size_t)2 * n_ctx * KV * hd, sizeof(double)),
                    calloc((size_t)2 * n_ctx * KV * hd, sizeof(double))};

        /* A prompt batch of 13 tokens of sequence 0, then 5 single-token steps. */
        const int P = 13;
        int32_t pos[32], seq[32] = {0};
        for (int i = 0; i < P; i++) pos[i] = i;
        float *rows = rnd((long)P * stride, -1.5f, 1.5f);
        float *batch = attn_step(be, kv, layer, &hs, P, seq, pos, H, KV, hd, pad, rows, "prompt");
        /* The same rows one at a time in a second cache must give the same outputs. */
        for (int t = 0; t < P; t++) {
            float *one = attn_step(be, kv1, layer, &hs1, 1, seq, &pos[t], H, KV, hd, pad,
                                   rows + (long)t * stride, "one-by-one");
            CHECKF(sk_test_rel_err(batch + (long)t * qw, one, qw) < 1e-6,
                   "attention H=%d KV=%d: batch row %d differs from the one-token step", H, KV, t);
            guarded_free(one);
        }
        guarded_free(batch);
        free(rows);
        for (int step = 0; step < 5; step++) {
            int32_t p = P + step, s0 = 0;
            guarded_free(attn_step(be, kv, layer, &hs, 1, &s0, &p, H, KV, hd, pad, NULL, "decode"));
        }
        /* Sequence 1 (fresh) as a batch of 6 mixed with 2 more tokens of sequence 0: sequences
         * must not see each other. */
        int32_t mpos[8], mseq[8];
        for (int i = 0; i < 6; i++) mpos[i] = i, mseq[i] = 1;
        mpos[6] = P + 5, mseq[6] = 0;
        mpos[7] = P + 6, mseq[7] = 0;
        guarded_free(
            attn_step(be, kv, layer, &hs, 8, mseq, mpos, H, KV, hd, pad, NULL, "two seqs"));
        /* Up to the last position of the context. */
        int32_t lpos[64], lseq[64];
        int nl = 0;
        for (int p = 6; p < n_ctx; p++) lpos[nl] = p, lseq[nl++] = 1;
        guarded_free(attn_step(be, kv, layer, &hs, nl, lseq, lpos, H, KV, hd, pad, NULL, "fill"));

        be->ops->kv_free(be, kv);
        be->ops->kv_free(be, kv1);
        free(hs.k);
        free(hs.v);
        free(hs1.k);
        free(hs1.v);
    }
}

/* Paged pool with page tables (shuffled pages, a prefix shared between two sequences) against
 * the slot cache: the same rows give the same outputs. Sequences 0 and 1 run a 37-token prompt
 * in one batch, then decode steps with both in one batch; sequence 2 has sequence 0's first
 * two pages as its prefix (the same K/V rows) and computes only from there on. */
static void test_attention_paged(sk_backend *be) {
    const int H = 8, KV = 2, hd = 16, n_layers = 2, layer = 1;
    const int ps = be->kv_page_size, n_ctx = 64, P = 37, pre = 2 * ps, steps = 5;
    const int stride = (H + 2 * KV) * hd, qw = H * hd, kvw = KV * hd;
    CHECK(ps > 0 && pre < P);
    sk_kv_cache *slots = NULL, *pool = NULL;
    CHECK(be->ops->kv_new(be, n_layers, KV, hd, n_ctx, 3, &slots) == SK_OK);
    const int pps = (n_ctx + ps - 1) / ps, n_pages = 3 * pps + 5;
    const sk_kv_desc d = {n_layers, KV, hd, ps, n_pages, n_ctx};
    CHECK(be->ops->kv_pool_new(be, &d, &pool) == SK_OK);
    sk_kv_desc bad = d;
    bad.n_pages = 0;
    sk_kv_cache *none = NULL;
    CHECK(be->ops->kv_pool_new(be, &bad, &none) == SK_ERR_ARG && none == NULL);
    /* Tables: a random permutation of the pool's pages; sequence 2 starts with 0's two. */
    int32_t perm[256], indptr[4], ids[256];
    for (int i = 0; i < n_pages; i++) perm[i] = i;
    for (int i = n_pages - 1; i > 0; i--) {
        float u;
        sk_test_rand(&u, 1, 0.0f, 1.0f, &g_rng);
        int j = (int)(u * (float)(i + 1)) % (i + 1), t = perm[i];
        perm[i] = perm[j], perm[j] = t;
    }
    indptr[0] = 0;
    for (int s = 0; s < 3; s++) {
        indptr[s + 1] = indptr[s] + pps;
        for (int j = 0; j < pps; j++) ids[indptr[s] + j] = perm[s * pps + j];
    }
    ids[indptr[2]] = ids[0];
    ids[indptr[2] + 1] = ids[1];
    const sk_page_tables pt = {3, indptr, ids};

    /* Rows: sequence s at positions 0..P+steps-1; sequence 2's prefix rows equal sequence 0's. */
    const int L = P + steps;
    float *rows = rnd((long)3 * L * stride, -1.5f, 1.5f);
    memcpy(rows + (long)2 * L * stride, rows, sizeof(float) * (size_t)pre * stride);
    int32_t pos[256], seq[256], tok[256] = {0};
    float *in = malloc(sizeof(float) * (size_t)256 * stride);
    float *o_slot = malloc(sizeof(float) * (size_t)256 * qw), *o_pool = malloc(sizeof(float) * (size_t)256 * qw);
    double worst = 0;
    /* Step 0: prompts of 0 and 1 (and, in the slot cache, 2's prefix), rows interleaved. Step
     * 1: 2's remaining prompt rows, reversed. Steps 2..: one token of each sequence. */
    for (int step = 0; step < 2 + steps; step++) {
        int T = 0, Tp = 0; /* rows for the slot cache; the pool skips 2's prefix rows */
        int32_t ppos[256], pseq[256];
        float *pin = malloc(sizeof(float) * (size_t)256 * stride);
        int idx[256];
        for (int p = 0; p < L; p++)
            for (int sq = 0; sq < 3; sq++) {
                bool take = step == 0   ? (sq < 2 && p < P) || (sq == 2 && p < pre)
                            : step == 1 ? sq == 2 && p >= pre && p < P
                                        : p == P + step - 2;
                if (!take) continue;
                pos[T] = p, seq[T] = sq;
                memcpy(in + (long)T * stride, rows + ((long)sq * L + p) * stride, sizeof(float) * (size_t)stride);
                if (!(sq == 2 && p < pre)) idx[Tp++] = T;
                T++;
            }
        if (step == 1) /* reverse: rows need not come in position order */
            for (int i = 0; i < Tp / 2; i++) {
                int t = idx[i];
                idx[i] = idx[Tp - 1 - i], idx[Tp - 1 - i] = t;
            }
        for (int i = 0; i < Tp; i++) {
            ppos[i] = pos[idx[i]], pseq[i] = seq[idx[i]];
            memcpy(pin + (long)i * stride, in + (long)idx[i] * stride, sizeof(float) * (size_t)stride);
        }
        sk_batch b = {T, tok, pos, seq};
        CHECK(be->ops->begin(be, &b) == SK_OK);
        be->ops->attention(be, slots, layer, in, stride, in + qw, in + qw + kvw, stride, H, o_slot);
        sk_batch bp = {Tp, tok, ppos, pseq};
        CHECK(be->ops->begin_paged(be, &bp, &pt) == SK_OK);
        be->ops->attention(be, pool, layer, pin, stride, pin + qw, pin + qw + kvw, stride, H, o_pool);
        for (int i = 0; i < Tp; i++) {
            double e = sk_test_rel_err(o_pool + (long)i * qw, o_slot + (long)idx[i] * qw, qw);
            if (e > worst) worst = e;
        }
        free(pin);
    }
    CHECKF(worst < 1e-6, "paged attention differs from the slot cache: %.3g", worst);
    /* Malformed tables are refused. */
    int32_t bad_ip[4] = {0, pps, pps - 1, 3 * pps}, one_pos = 0, one_seq = 3;
    sk_batch b1 = {1, tok, &one_pos, &one_seq};
    CHECK(be->ops->begin_paged(be, &b1, &pt) == SK_ERR_ARG);
    one_seq = 1;
    const sk_page_tables bad_pt = {3, bad_ip, ids};
    CHECK(be->ops->begin_paged(be, &b1, &bad_pt) == SK_ERR_ARG);
    free(in);
    free(o_slot);
    free(o_pool);
    free(rows);
    be->ops->kv_free(be, slots);
    be->ops->kv_free(be, pool);
}

static void test_errors(sk_backend *be) {
    sk_kv_cache *kv = NULL;
    CHECK(be->ops->kv_new(be, 1, 1, 8, 0, 1, &kv) == SK_ERR_ARG && kv == NULL);
    sk_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, "ints");
    int32_t data[4] = {1, 2, 3, 4};
    t.type = SK_I32;
    t.n_dims = 1;
    t.shape[0] = 4;
    t.data = data;
    t.nbytes = sizeof data;
    sk_weight *w = NULL;
    CHECK(be->ops->weight_load(be, &t, &w) == SK_ERR_UNSUPPORTED && w == NULL);
    t.type = SK_F32;
    t.nbytes = 8; /* too few bytes for 4 floats */
    CHECK(be->ops->weight_load(be, &t, &w) == SK_ERR_FORMAT && w == NULL);
    t.type = SK_Q8_0; /* 4 is not a multiple of the block */
    t.nbytes = sizeof data;
    CHECK(be->ops->weight_load(be, &t, &w) == SK_ERR_FORMAT && w == NULL);
    void *p = be->ops->alloc(be, 100);
    CHECK(p != NULL && ((uintptr_t)p % 32) == 0);
    be->ops->free(be, p);
    sk_backend *bad = NULL;
    CHECK(sk_backend_cpu_new(-1, &bad) == SK_ERR_ARG && bad == NULL);
}

int main(void) {
    sk_backend *be = NULL, *be1 = NULL;
    CHECK(sk_backend_cpu_new(2, &be) == SK_OK);
    CHECK(sk_backend_cpu_new(1, &be1) == SK_OK);
    CHECK(be->act_bytes == 4);
    test_matmul(be, be1);
    test_matmul_batch_vs_single(be);
    test_embed(be);
    test_norms(be);
    test_elementwise(be);
    test_rope(be);
    test_attention(be);
    test_attention(be1);
    test_attention_paged(be);
    test_attention_paged(be1);
    test_errors(be);
    be->ops->destroy(be);
    be1->ops->destroy(be1);
    return sk_test_done("test_cpu_ops");
}
