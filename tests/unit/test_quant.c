/* INT4 group quantization (src/quant, the Q4G dtypes) and the AutoAWQ checkpoint layout:
 * - Q4G rows quantized by sk_q4g_quantize_row dequantize (sk_dequant_row) to what a naive
 *   reference written here from the formula in quant.h gives, at group sizes 32/64/128, and
 *   stay within the RTN error bound d/2 of the input;
 * - sk_awq_pack puts every nibble where AutoAWQ's formula says (order 0,2,4,6,1,3,5,7) and
 *   sk_awq_unpack inverts it exactly;
 * - RTN of every tiny HF fixture (Llama GQA/MQA/MHA, Falcon 7B/180B style, sequential with
 *   biases: Falcon's fused QKV rows are reordered on write and on load) written as an AutoAWQ
 *   directory loads back bit for bit;
 * - AWQ on stories260K and aidreams260K (real weights, GQA and MHA, TinyStories calibration)
 *   gives a lower layer-output error than RTN in every layer, and on the random Falcon fixtures
 *   (one LayerNorm, two, sequential) a lower total. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* mkdtemp */
#endif
#include "quant/quant.h"
#include "testlib.h"
#include "tokenizer/tokenizer.h"

#include <stdint.h>
#include <unistd.h>

/* Independent reference of one group: returns the dequantized values and d. */
static float ref_group(const float *x, int g, float *out) {
    float mx = x[0], mn = x[0];
    for (int j = 1; j < g; j++) mx = x[j] > mx ? x[j] : mx, mn = x[j] < mn ? x[j] : mn;
    float range = mx - mn < 1e-5f ? 1e-5f : mx - mn;
    float d = sk_f16_to_f32(sk_f32_to_f16(range / 15.0f));
    float z = -rintf(mn / d);
    z = z < 0 ? 0 : z > 15 ? 15 : z;
    for (int j = 0; j < g; j++) {
        float q = rintf(x[j] / d) + z;
        q = q < 0 ? 0 : q > 15 ? 15 : q;
        out[j] = (q - z) * d;
    }
    return d;
}

static void test_rows(void) {
    unsigned long long st = 0x1234567ull;
    const int gs[3] = {32, 64, 128};
    for (int gi = 0; gi < 3; gi++) {
        const int g = gs[gi], n = g * 7;
        float *x = malloc(sizeof(float) * n), *y = malloc(sizeof(float) * n);
        float *r = malloc(sizeof(float) * n), *fq = malloc(sizeof(float) * n);
        const sk_dtype t = sk_dtype_q4g(g);
        CHECK(t != SK_DTYPE_COUNT && sk_dtype_q4g_group(t) == g);
        CHECK(sk_dtype_block_bytes(t) == (size_t)(4 + g / 2));
        uint8_t *q = malloc(sk_dtype_row_bytes(t, n));
        sk_test_rand(x, n, -1.5f, 0.7f, &st);
        for (int j = 0; j < g; j++) x[3 * g + j] *= 40.0f; /* one group with a much wider range */
        sk_q4g_quantize_row(x, n, g, NULL, q);
        sk_dequant_row(t, q, y, n);
        sk_q4g_fake_quant_row(x, n, g, NULL, fq);
        double worst_ref = 0, worst_bound = 0, sum_err = 0;
        for (int b = 0; b < n / g; b++) {
            const float d = ref_group(x + b * g, g, r + b * g);
            CHECK(q[b * (4 + g / 2) + 3] == 0);
            for (int j = 0; j < g; j++) {
                const int i = b * g + j;
                double e = fabs((double)y[i] - r[i]) / d;
                worst_ref = e > worst_ref ? e : worst_ref;
                double eb = fabs((double)y[i] - x[i]) / d;
                worst_bound = eb > worst_bound ? eb : worst_bound;
                sum_err += fabs((double)y[i] - x[i]);
                if (fabs((double)fq[i] - y[i]) > 1e-6 * d) worst_ref = INFINITY;
            }
        }
        CHECKF(worst_ref < 1e-5, "g %d: dequant differs from the reference by %g d", g, worst_ref);
        /* d is rounded to f16 (relative 2^-11), and 15 d then spans the range only to 15/2^11 d */
        CHECKF(worst_bound <= 0.5 + 0.01, "g %d: RTN error %g d > d/2", g, worst_bound);
        CHECKF(sum_err > 0, "g %d: no error at all (is it quantizing?)", g);
        /* clipping: a clip below max|x| never gives a value beyond it */
        float *clip = malloc(sizeof(float) * (n / g));
        for (int b = 0; b < n / g; b++) clip[b] = 0.3f;
        sk_q4g_fake_quant_row(x, n, g, clip, fq);
        float m = 0;
        for (int i = 0; i < n; i++) m = fabsf(fq[i]) > m ? fabsf(fq[i]) : m;
        CHECKF(m <= 0.3f * 1.01f, "g %d: clipped max %g", g, m);
        free(clip), free(x), free(y), free(r), free(fq), free(q);
    }
}

static void test_pack(void) {
    static const int order[8] = {0, 2, 4, 6, 1, 3, 5, 7};
    unsigned long long st = 99;
    const int gs[3] = {32, 64, 128};
    for (int gi = 0; gi < 3; gi++) {
        const int g = gs[gi], N = 24, K = g * 3;
        const sk_dtype t = sk_dtype_q4g(g);
        const size_t rb = sk_dtype_row_bytes(t, K), bb = sk_dtype_block_bytes(t);
        float *w = malloc(sizeof(float) * N * K);
        sk_test_rand(w, (long)N * K, -2, 2, &st);
        uint8_t *q = malloc(rb * N), *q2 = malloc(rb * N);
        for (int n = 0; n < N; n++) sk_q4g_quantize_row(w + n * K, K, g, NULL, q + rb * n);
        int32_t *qw = malloc(4 * K * N / 8), *qz = malloc(4 * (K / g) * N / 8);
        uint16_t *sc = malloc(2 * (K / g) * N);
        sk_awq_pack(q, N, K, g, qw, qz, sc);
        int bad = 0;
        for (int k = 0; k < K; k++)
            for (int c = 0; c < N / 8; c++)
                for (int i = 0; i < 8; i++) {
                    const int n = 8 * c + order[i];
                    const uint8_t *blk = q + rb * n + bb * (k / g);
                    const int want = (blk[4 + (k % g) / 2] >> (4 * (k & 1))) & 0xf;
                    bad += (((uint32_t)qw[k * (N / 8) + c] >> (4 * i)) & 0xf) != (uint32_t)want;
                    if (k % g == 0) {
                        bad += (((uint32_t)qz[(k / g) * (N / 8) + c] >> (4 * i)) & 0xf) != blk[2];
                        bad += sc[(k / g) * N + n] != (uint16_t)(blk[0] | blk[1] << 8);
                    }
                }
        CHECKF(bad == 0, "g %d: %d packed values not where AutoAWQ puts them", g, bad);
        memset(q2, 0xee, rb * N);
        sk_awq_unpack(qw, qz, sc, N, K, g, q2);
        CHECKF(memcmp(q, q2, rb * N) == 0, "g %d: unpack(pack(x)) != x", g);
        free(w), free(q), free(q2), free(qw), free(qz), free(sc);
    }
}

static void test_roundtrip(const char *fixture, const char *tmp) {
    sk_model_file mf, q, back;
    const char *src = sk_test_path("SK_FIXTURES", fixture);
    if (sk_model_file_load(src, NULL, &mf) != SK_OK) {
        CHECKF(0, "%s: %s", fixture, sk_last_error());
        return;
    }
    sk_quant_params p;
    sk_quant_params_default(&p);
    p.method = SK_QUANT_RTN;
    p.group = 32;
    int g = 0;
    sk_status s = sk_quantize_model(&mf, &p, NULL, 0, 0, &q, &g);
    CHECKF(s == SK_OK, "%s: quantize: %s", fixture, sk_last_error());
    if (s != SK_OK) goto out;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s/%s", tmp, fixture);
    s = sk_awq_write_hf(&q, g, src, dir);
    CHECKF(s == SK_OK, "%s: write: %s", fixture, sk_last_error());
    s = s == SK_OK ? sk_hf_load(dir, &back) : s;
    CHECKF(s == SK_OK, "%s: load: %s", fixture, sk_last_error());
    if (s == SK_OK) {
        int n_q4 = 0;
        CHECK(back.n_tensors == q.n_tensors);
        for (int i = 0; i < q.n_tensors; i++) {
            const sk_tensor *a = &q.tensors[i], *b = sk_mf_find(&back, a->name);
            CHECKF(b != NULL, "%s: '%s' not loaded", fixture, a->name);
            if (!b) continue;
            n_q4 += sk_dtype_q4g_group(a->type) != 0;
            CHECKF(a->type == b->type && a->nbytes == b->nbytes && a->shape[0] == b->shape[0] &&
                       memcmp(a->data, b->data, a->nbytes) == 0,
                   "%s: '%s' (%s) differs after write + load", fixture, a->name, sk_dtype_name(a->type));
        }
        CHECKF(n_q4 > 0, "%s: nothing was quantized", fixture);
        sk_mf_free(&back);
    }
    q.vocab = (sk_vocab_data){0};
    sk_mf_free(&q);
out:
    sk_mf_free(&mf);
}

/* AWQ of model (llama2.c .bin + tok, or an HF directory when tok is NULL) calibrated on S x L
 * tokens of TinyStories: every layer's output error (strict: each below 0.95 x RTN's; else the
 * sum below RTN's sum, for random-weight fixtures) against RTN's. */
static void awq_vs_rtn(const char *what, const char *model, const char *tok, int S, int L,
                       bool strict) {
    sk_model_file mf;
    if (sk_model_file_load(model, tok, &mf) != SK_OK) {
        CHECKF(0, "%s: %s", what, sk_last_error());
        return;
    }
    char *text = NULL;
    size_t len = 0;
    CHECK(sk_file_read_all(sk_test_path("SK_DATA", "tinystories/tinystories_val.txt"), &text, &len) == SK_OK);
    sk_tokenizer *t = NULL;
    CHECK(sk_tokenizer_new(&mf.vocab, mf.hp.n_vocab, &t) == SK_OK);
    int32_t *ids = malloc(sizeof(int32_t) * 200000);
    int n = sk_tokenizer_encode(t, text + len / 2, 100000, false, false, ids, 200000);
    CHECK(n > S * L);
    sk_quant_params p;
    sk_quant_params_default(&p);
    p.group = 32;
    sk_model_file q;
    int g = 0;
    sk_status s = sk_quantize_model(&mf, &p, ids, S, L, &q, &g);
    CHECKF(s == SK_OK, "%s: awq: %s", what, sk_last_error());
    if (s == SK_OK) {
        const sk_quant_stats *st = sk_quant_last_stats();
        CHECK(st->n_layers == mf.hp.n_layers && g == 32);
        double sr = 0, sa = 0;
        for (int l = 0; l < st->n_layers; l++) {
            printf("%s layer %d: layer output MSE RTN %.4e AWQ %.4e\n", what, l, st->rtn_err[l],
                   st->awq_err[l]);
            sr += st->rtn_err[l], sa += st->awq_err[l];
            CHECKF(st->awq_err[l] > 0 && (!strict || st->awq_err[l] < 0.95 * st->rtn_err[l]),
                   "%s layer %d: AWQ %g not below RTN %g", what, l, st->awq_err[l], st->rtn_err[l]);
        }
        CHECKF(sa < sr, "%s: AWQ layer errors sum to %g, RTN's to %g", what, sa, sr);
        q.vocab = (sk_vocab_data){0};
        sk_mf_free(&q);
    }
    sk_tokenizer_free(t);
    free(ids);
    free(text);
    sk_mf_free(&mf);
}

static void test_awq_beats_rtn(void) {
    /* real weights: GQA (stories260K) and MHA, where v -> o is scaled too (aidreams260K) */
    awq_vs_rtn("stories260K", sk_test_path("SK_DATA", "stories260K/stories260K.bin"),
               sk_test_path("SK_DATA", "stories260K/tok512.bin"), 8, 128, true);
    awq_vs_rtn("aidreams260K", sk_test_path("SK_DATA", "aidreams260K/aidreams260K.bin"),
               sk_test_path("SK_DATA", "aidreams260K/tok512.bin"), 8, 128, true);
    /* random-weight fixtures: Falcon with one LayerNorm for qkv + up, two, and sequential */
    awq_vs_rtn("falcon-7b-style", sk_test_path("SK_FIXTURES", "hf-falcon-7b-style"), NULL, 4, 64, false);
    awq_vs_rtn("falcon-180b-style", sk_test_path("SK_FIXTURES", "hf-falcon-180b-style"), NULL, 4, 64, false);
    awq_vs_rtn("falcon-seq-bias", sk_test_path("SK_FIXTURES", "hf-falcon-seq-bias"), NULL, 4, 64, false);
}

int main(void) {
    test_rows();
    test_pack();
    char tmp[] = "/tmp/sk_quant_XXXXXX";
    CHECK(mkdtemp(tmp) != NULL);
    const char *fx[] = {"hf-llama-gqa-tied",   "hf-llama-mqa-bf16",   "hf-llama-mha-f16",
                        "hf-falcon-7b-style",  "hf-falcon-180b-style", "hf-falcon-seq-bias"};
    for (size_t i = 0; i < sizeof fx / sizeof *fx; i++) test_roundtrip(fx[i], tmp);
    test_awq_beats_rtn();
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmp);
    CHECK(system(cmd) == 0);
    return sk_test_done("test_quant");
}
