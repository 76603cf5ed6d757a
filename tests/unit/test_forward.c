/* The forward pass and sessions.
 * - stories260K (llama2.c .bin + tok512.bin, and GGUF): greedy decoding from BOS for 256 steps
 *   reproduces llama2.c's published text exactly; a prompt evaluated as one batch gives the
 *   logits of token-by-token evaluation.
 * - Small random models built in memory (Llama GQA/MHA with both RoPE pairings; Falcon parallel
 *   with one or two LayerNorms, sequential with biases, MQA, partial rotary) against a naive
 *   double-precision forward written here.
 * - Session limits: context overflow, bad token ids, chunking of long prompts. */
#include "model/model.h"
#include "testlib.h"

#include <stdint.h>

static unsigned long long g_rng = 0x1234567887654321ull;

/* ---- stories260K ------------------------------------------------------------------------ */

static int argmax(const float *l, int n) {
    int b = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[b]) b = i;
    return b;
}

/* Greedy from BOS for 256 steps (each step evaluates one token and appends the argmax); the
 * generated text must equal the expected file (minus its trailing newline). Writes the 257
 * tokens (BOS first) to seq_out. */
static void check_golden(const char *model_path, const char *tok_path, int32_t *seq_out) {
    sk_model_params p;
    sk_model_params_default(&p);
    p.tokenizer_path = tok_path;
    sk_model *m = NULL;
    sk_status s = sk_model_open(model_path, &p, &m);
    CHECKF(s == SK_OK, "open %s: %s", model_path, sk_last_error());
    if (s != SK_OK) return;
    CHECK(sk_model_n_vocab(m) == 512);
    CHECK(sk_model_bos(m) == 1);
    sk_session *se = NULL;
    s = sk_session_new(m, 0, &se);
    CHECKF(s == SK_OK, "session: %s", sk_last_error());
    if (s != SK_OK) {
        sk_model_close(m);
        return;
    }
    char *expected = NULL;
    size_t elen = 0;
    CHECK(sk_file_read_all(sk_test_path("SK_DATA", "stories260K/expected_greedy_t0_256steps.txt"),
                           &expected, &elen) == SK_OK);
    if (elen && expected[elen - 1] == '\n') expected[--elen] = 0;

    const int V = sk_model_n_vocab(m);
    float *logits = malloc(sizeof(float) * (size_t)V);
    char text[8192];
    size_t tl = 0;
    int32_t tok = sk_model_bos(m);
    seq_out[0] = tok;
    for (int step = 0; step < 256; step++) {
        s = sk_session_eval(se, &tok, 1, logits, false);
        CHECKF(s == SK_OK, "eval step %d: %s", step, sk_last_error());
        if (s != SK_OK) break;
        tok = argmax(logits, V);
        seq_out[step + 1] = tok;
        char piece[64];
        int n = sk_token_to_bytes(m, tok, piece, sizeof piece);
        CHECK(n >= 0 && n < (int)sizeof piece);
        if (n < 0 || n >= (int)sizeof piece) break;
        const char *pp = piece;
        if (step == 0 && n > 0 && piece[0] == ' ') pp++, n--;
        if (tl + (size_t)n < sizeof text) memcpy(text + tl, pp, (size_t)n), tl += (size_t)n;
    }
    text[tl] = 0;
    CHECK(sk_session_n_past(se) == 256);
    CHECKF(tl == elen && memcmp(text, expected, elen) == 0,
           "%s: greedy text differs:\n--- got\n%s\n--- expected\n%s", model_path, text,
           expected ? expected : "");
    free(expected);
    free(logits);
    sk_session_free(se);
    sk_model_close(m);
}

/* Logits of a prompt evaluated as one batch (all rows) equal token-by-token evaluation. */
static void check_batch_vs_steps(sk_model *m, const int32_t *tokens, int n, int n_ctx,
                                 double tol, const char *what) {
    const int V = sk_model_n_vocab(m);
    sk_session *a = NULL, *b = NULL;
    CHECK(sk_session_new(m, n_ctx, &a) == SK_OK);
    CHECK(sk_session_new(m, n_ctx, &b) == SK_OK);
    if (!a || !b) return;
    float *all = malloc(sizeof(float) * (size_t)n * V), *one = malloc(sizeof(float) * (size_t)V);
    float *last = malloc(sizeof(float) * (size_t)V);
    CHECKF(sk_session_eval(a, tokens, n, all, true) == SK_OK, "%s: %s", what, sk_last_error());
    double worst = 0;
    for (int t = 0; t < n; t++) {
        CHECK(sk_session_eval(b, tokens + t, 1, one, false) == SK_OK);
        double e = sk_test_rel_err(all + (size_t)t * V, one, V);
        if (e > worst) worst = e;
    }
    CHECKF(worst < tol, "%s: batch logits differ from token-by-token by %.3g", what, worst);
    /* last-row-only logits of a batch equal the last row of all_logits */
    sk_session_reset(a);
    CHECK(sk_session_n_past(a) == 0);
    CHECK(sk_session_eval(a, tokens, n, last, false) == SK_OK);
    CHECKF(sk_test_rel_err(last, all + (size_t)(n - 1) * V, V) < 1e-6, "%s: last row", what);
    CHECK(sk_session_n_past(a) == n && sk_session_n_past(b) == n);
    free(all);
    free(one);
    free(last);
    sk_session_free(a);
    sk_session_free(b);
}

/* Padded decode steps (sk_forward_decode, the engine's path) against unpadded ones on the CPU:
 * every step runs unpadded first, then padded to its bucket (rows writing a scratch page) on
 * the same positions (idempotent: a step rewrites its own K/V before attending); the CPU's
 * matmul and attention are batch-invariant, so the logits must be equal bit for bit, and the
 * argmax output must be their argmax. Later steps read what the padded ones stored. */
static void check_decode_padded(sk_model *m) {
    const sk_hparams *hp = &m->hp;
    const int V = hp->n_vocab, NS = 6, ps = m->be->kv_page_size, max_len = 64;
    const int pps = (max_len + ps - 1) / ps, n_pages = NS * pps + 1, scratch = NS * pps;
    const sk_kv_desc d = {hp->n_layers, hp->n_kv_heads, hp->head_dim, ps, n_pages, max_len};
    sk_kv_cache *kv = NULL;
    CHECK(m->be->ops->kv_pool_new(m->be, &d, &kv) == SK_OK);
    sk_fwd_buffers buf;
    CHECK(sk_fwd_buffers_new(m, 64, 8, &buf) == SK_OK);
    sk_fwd_decode dec;
    sk_fwd_decode_init(&dec, scratch);
    int32_t indptr[7], ids[64], tok[64], pos[64], seq[64], rows[8], am[8], last[6], len[6];
    for (int q = 0; q <= NS; q++) indptr[q] = q * pps;
    for (int i = 0; i < NS * pps; i++) ids[i] = NS * pps - 1 - i; /* pages in reverse */
    for (int q = 0; q < NS; q++) {
        len[q] = 3 + 5 * q;
        for (int i = 0; i < len[q]; i++) tok[i] = (7 * i + 13 * q + 1) % V, pos[i] = i, seq[i] = 0;
        last[q] = tok[len[q] - 1];
        const int32_t ip1[2] = {0, pps};
        const sk_page_tables pt1 = {1, ip1, ids + indptr[q]};
        const sk_batch b = {len[q], tok, pos, seq};
        CHECK(sk_forward_paged(m, &buf, kv, &b, &pt1, NULL, 0, NULL, NULL) == SK_OK);
    }
    static const int sizes[] = {6, 6, 3, 5, 1, 6};
    float *a = malloc(sizeof(float) * 8 * (size_t)V), *p = malloc(sizeof(float) * 8 * (size_t)V);
    SK_ASSERT(a && p);
    for (size_t it = 0; it < sizeof sizes / sizeof sizes[0]; it++) {
        const int n = sizes[it];
        int32_t sp[7], sid[6], sids[64];
        sp[0] = 0;
        for (int i = 0; i < n; i++) {
            sid[i] = (int)(it + (size_t)(n - 1 - i)) % NS;
            for (int j = 0; j < pps; j++) sids[sp[i] + j] = ids[indptr[sid[i]] + j];
            sp[i + 1] = sp[i] + pps;
            tok[i] = last[sid[i]], pos[i] = len[sid[i]], seq[i] = i, rows[i] = i;
        }
        const sk_page_tables pt = {n, sp, sids};
        const sk_batch b = {n, tok, pos, seq};
        CHECK(sk_forward_paged(m, &buf, kv, &b, &pt, rows, n, a, NULL) == SK_OK);
        CHECK(sk_forward_decode(m, &buf, kv, &dec, &b, &pt, p, NULL) == SK_OK);
        CHECKF(memcmp(a, p, sizeof(float) * (size_t)n * V) == 0,
               "padded decode step %zu (%d rows, bucket %d): logits differ from unpadded", it, n,
               sk_fwd_decode_bucket(n, NULL));
        CHECK(sk_forward_decode(m, &buf, kv, &dec, &b, &pt, NULL, am) == SK_OK);
        for (int i = 0; i < n; i++) {
            const float *r = p + (size_t)i * V;
            int best = 0;
            for (int j = 1; j < V; j++)
                if (r[j] > r[best]) best = j;
            CHECKF(am[i] == best, "padded decode step %zu row %d: argmax %d, logits say %d", it,
                   i, am[i], best);
            last[sid[i]] = best;
            len[sid[i]]++;
        }
    }
    int idx = 0;
    CHECK(sk_fwd_decode_bucket(1, &idx) == 1 && idx == 0);
    CHECK(sk_fwd_decode_bucket(3, &idx) == 4 && idx == 2);
    CHECK(sk_fwd_decode_bucket(16, &idx) == 16 && idx == 4);
    CHECK(sk_fwd_decode_bucket(17, &idx) == 24 && idx == 5);
    CHECK(sk_fwd_decode_bucket(24, &idx) == 24 && idx == 5);
    CHECK(sk_fwd_decode_bucket(25, &idx) == 32 && idx == 6);
    CHECK(sk_fwd_decode_bucket(32, &idx) == 32 && idx == 6);
    CHECK(sk_fwd_decode_bucket(33, &idx) == 48 && idx == 7);
    CHECK(sk_fwd_decode_bucket(139, &idx) == 144 && idx == 13);
    CHECK(sk_fwd_decode_bucket(512, &idx) == 512 && idx == 36);
    CHECK(sk_fwd_decode_bucket(513, &idx) == 528 && idx == 37);
    CHECK(sk_fwd_decode_bucket(909, &idx) == 912 && idx == 61);
    CHECK(sk_fwd_decode_bucket(1024, &idx) == 1024 && idx == 68);
    CHECK(sk_fwd_decode_bucket(1025, &idx) == 1088 && idx == 69);
    CHECK(sk_fwd_decode_bucket(1146, &idx) == 1152 && idx == 70);
    CHECK(sk_fwd_decode_bucket(4864, &idx) == 4864 && idx == 128);
    CHECK(sk_fwd_decode_bucket(4865, &idx) == 4928 && idx == -1);
    CHECK(sk_fwd_decode_bucket(100000, &idx) == 100032 && idx == -1);
    /* every slot taken by exactly one size, in order */
    {
        int prev = -1, prev_b = 0;
        for (int n = 1; n <= 4864; n++) {
            const int b = sk_fwd_decode_bucket(n, &idx);
            CHECKF(b >= n && idx >= 0 && (b == prev_b ? idx == prev : idx == prev + 1),
                   "bucket of %d rows: %d, slot %d (previous %d, slot %d)", n, b, idx, prev_b, prev);
            prev = idx, prev_b = b;
        }
    }
    free(a);
    free(p);
    sk_fwd_decode_free(m, &dec);
    sk_fwd_buffers_free(m, &buf);
    m->be->ops->kv_free(m->be, kv);
}

static void test_stories(void) {
    const char *bin = sk_test_path("SK_DATA", "stories260K/stories260K.bin");
    const char *tok = sk_test_path("SK_DATA", "stories260K/tok512.bin");
    const char *gguf = sk_test_path("SK_DATA", "stories260K/stories260K.gguf");
    int32_t seq_bin[257] = {0}, seq_gguf[257] = {0};
    check_golden(bin, tok, seq_bin);
    check_golden(gguf, NULL, seq_gguf);
    CHECK(memcmp(seq_bin, seq_gguf, sizeof seq_bin) == 0);

    sk_model_params p;
    sk_model_params_default(&p);
    p.tokenizer_path = tok;
    sk_model *m = NULL;
    CHECKF(sk_model_open(bin, &p, &m) == SK_OK, "%s", sk_last_error());
    if (!m) return;
    /* a real prompt: the first 100 tokens of the greedy story */
    check_batch_vs_steps(m, seq_bin, 100, 0, 1e-5, "stories260K");
    check_decode_padded(m);

    /* the session's context is the model's (512 for the .bin), so 512 fit and 513 do not */
    sk_session *se = NULL;
    CHECK(sk_session_new(m, 0, &se) == SK_OK);
    int32_t *many = malloc(sizeof(int32_t) * 600);
    for (int i = 0; i < 600; i++) many[i] = seq_bin[i % 257];
    CHECK(sk_session_eval(se, many, 513, NULL, false) == SK_ERR_CONTEXT);
    CHECKF(strstr(sk_last_error(), "prompt of 513 tokens + 0 past exceeds the context of 512"),
           "message: %s", sk_last_error());
    CHECK(sk_session_eval(se, many, 512, NULL, false) == SK_OK);
    CHECK(sk_session_n_past(se) == 512);
    CHECK(sk_session_eval(se, many, 1, NULL, false) == SK_ERR_CONTEXT);
    sk_session_free(se);
    /* asking for more than n_ctx_train clamps to it */
    CHECK(sk_session_new(m, 100000, &se) == SK_OK);
    CHECK(sk_session_eval(se, many, 513, NULL, false) == SK_ERR_CONTEXT);
    sk_session_free(se);
    free(many);

    /* print_info describes the model */
    FILE *f = tmpfile();
    CHECK(f != NULL);
    if (f) {
        sk_model_print_info(m, f);
        rewind(f);
        char info[4096];
        size_t n = fread(info, 1, sizeof info - 1, f);
        info[n] = 0;
        fclose(f);
        CHECKF(strstr(info, "architecture: llama") && strstr(info, "n_kv_heads: 4") &&
                   strstr(info, "parameters: 260032"),
               "info:\n%s", info);
    }
    sk_model_close(m);

    /* errors on open */
    m = NULL;
    CHECK(sk_model_open(sk_test_path("SK_DATA", "stories260K/no-such-file.bin"), &p, &m) ==
              SK_ERR_IO &&
          m == NULL);
#ifndef SAKER_HAVE_CUDA
    p.device = SK_DEVICE_CUDA;
    CHECK(sk_model_open(bin, &p, &m) == SK_ERR_DEVICE && m == NULL);
    CHECKF(strstr(sk_last_error(), "CUDA") != NULL, "message: %s", sk_last_error());
#endif
}

/* ---- random models in memory, against a double-precision reference ----------------------- */

/* The test's own copy of every weight, by name. */
typedef struct bank {
    int n;
    char names[256][SK_NAME_MAX];
    float *data[256];
    long len[256];
} bank;

static const float *W(const bank *b, const char *fmt, int l) {
    char nm[SK_NAME_MAX];
    snprintf(nm, sizeof nm, fmt, l);
    for (int i = 0; i < b->n; i++)
        if (strcmp(b->names[i], nm) == 0) return b->data[i];
    return NULL;
}

/* Adds tensor fmt(l) of shape [a] (b0 == 0) or [a, b0] with values in [lo, hi) to the bank and
 * to mf (as an F32 tensor over a copy owned by mf). */
static void add_tensor(sk_model_file *mf, bank *bk, const char *fmt, int l, long a, long b0,
                       float lo, float hi) {
    const long n = b0 ? a * b0 : a;
    float *x = malloc(sizeof(float) * (size_t)n);
    sk_test_rand(x, n, lo, hi, &g_rng);
    sk_tensor t;
    memset(&t, 0, sizeof t);
    snprintf(t.name, sizeof t.name, fmt, l);
    t.type = SK_F32;
    t.n_dims = b0 ? 2 : 1;
    t.shape[0] = a;
    t.shape[1] = b0;
    float *copy = sk_mf_own(mf, malloc(sizeof(float) * (size_t)n));
    memcpy(copy, x, sizeof(float) * (size_t)n);
    t.data = copy;
    t.nbytes = sizeof(float) * (size_t)n;
    sk_mf_add_tensor(mf, &t);
    snprintf(bk->names[bk->n], SK_NAME_MAX, "%s", t.name);
    bk->data[bk->n] = x;
    bk->len[bk->n++] = n;
}

static void add_linear(sk_model_file *mf, bank *bk, const char *fmt, int l, long out, long in) {
    const float a = sqrtf(3.0f / (float)in);
    add_tensor(mf, bk, fmt, l, out, in, -a, a);
}

/* A random model file for hp: every tensor the architecture uses, F32. extra_norm2: also give
 * Falcon attn_norm_2 when n_ln_per_layer is 1 (sequential attention needs it). llama_bias: add
 * the optional Llama q/k/v/o biases. */
static void build_model(const sk_hparams *hp, bool llama_bias, sk_model_file *mf, bank *bk) {
    memset(mf, 0, sizeof *mf);
    memset(bk, 0, sizeof *bk);
    mf->path = sk_xstrdup("(random model)");
    mf->format = "test";
    mf->hp = *hp;
    mf->vocab.type = SK_VOCAB_NONE;
    const long D = hp->dim, F = hp->ffn_dim, hd = hp->head_dim, V = hp->n_vocab;
    const long q = hp->n_heads * hd, kv = hp->n_kv_heads * hd;
    const bool falcon = hp->arch == SK_ARCH_FALCON;
    add_tensor(mf, bk, "token_embd.weight", 0, V, D, -1.0f, 1.0f);
    add_tensor(mf, bk, "output_norm.weight", 0, D, 0, 0.5f, 1.5f);
    if (falcon) add_tensor(mf, bk, "output_norm.bias", 0, D, 0, -0.2f, 0.2f);
    if (!hp->tied_output) add_linear(mf, bk, "output.weight", 0, V, D);
    for (int l = 0; l < hp->n_layers; l++) {
        add_tensor(mf, bk, "blk.%d.attn_norm.weight", l, D, 0, 0.5f, 1.5f);
        add_linear(mf, bk, "blk.%d.attn_output.weight", l, D, q);
        add_linear(mf, bk, "blk.%d.ffn_up.weight", l, F, D);
        add_linear(mf, bk, "blk.%d.ffn_down.weight", l, D, F);
        if (falcon) {
            add_tensor(mf, bk, "blk.%d.attn_norm.bias", l, D, 0, -0.2f, 0.2f);
            if (hp->n_ln_per_layer == 2 || !hp->parallel_attn) {
                add_tensor(mf, bk, "blk.%d.attn_norm_2.weight", l, D, 0, 0.5f, 1.5f);
                add_tensor(mf, bk, "blk.%d.attn_norm_2.bias", l, D, 0, -0.2f, 0.2f);
            }
            add_linear(mf, bk, "blk.%d.attn_qkv.weight", l, q + 2 * kv, D);
            if (hp->linear_bias) {
                add_tensor(mf, bk, "blk.%d.attn_qkv.bias", l, q + 2 * kv, 0, -0.3f, 0.3f);
                add_tensor(mf, bk, "blk.%d.attn_output.bias", l, D, 0, -0.3f, 0.3f);
                add_tensor(mf, bk, "blk.%d.ffn_up.bias", l, F, 0, -0.3f, 0.3f);
                add_tensor(mf, bk, "blk.%d.ffn_down.bias", l, D, 0, -0.3f, 0.3f);
            }
        } else {
            add_linear(mf, bk, "blk.%d.attn_q.weight", l, q, D);
            add_linear(mf, bk, "blk.%d.attn_k.weight", l, kv, D);
            add_linear(mf, bk, "blk.%d.attn_v.weight", l, kv, D);
            add_tensor(mf, bk, "blk.%d.ffn_norm.weight", l, D, 0, 0.5f, 1.5f);
            add_linear(mf, bk, "blk.%d.ffn_gate.weight", l, F, D);
            if (llama_bias) {
                add_tensor(mf, bk, "blk.%d.attn_q.bias", l, q, 0, -0.3f, 0.3f);
                add_tensor(mf, bk, "blk.%d.attn_k.bias", l, kv, 0, -0.3f, 0.3f);
                add_tensor(mf, bk, "blk.%d.attn_v.bias", l, kv, 0, -0.3f, 0.3f);
                add_tensor(mf, bk, "blk.%d.attn_output.bias", l, D, 0, -0.3f, 0.3f);
            }
        }
    }
}

static void bank_free(bank *bk) {
    for (int i = 0; i < bk->n; i++) free(bk->data[i]);
}

/* y[T][out] = x[T][in] W^T (+ b) */
static void lin(const double *x, int T, const float *w, const float *b, int out, int in,
                double *y) {
    for (int t = 0; t < T; t++)
        for (int o = 0; o < out; o++) {
            double s = b ? b[o] : 0.0;
            for (int i = 0; i < in; i++) s += x[(long)t * in + i] * w[(long)o * in + i];
            y[(long)t * out + o] = s;
        }
}

static void norm(const double *x, int T, int D, const float *w, const float *b, bool layer,
                 double eps, double *y) {
    for (int t = 0; t < T; t++) {
        const double *r = x + (long)t * D;
        double mean = 0, var = 0;
        if (layer) {
            for (int i = 0; i < D; i++) mean += r[i];
            mean /= D;
        }
        for (int i = 0; i < D; i++) var += (r[i] - mean) * (r[i] - mean);
        var /= D;
        for (int i = 0; i < D; i++)
            y[(long)t * D + i] = (r[i] - mean) / sqrt(var + eps) * w[i] + (b ? b[i] : 0.0);
    }
}

/* Rotates the n_heads heads at the start of row (stride) t by position t. */
static void rope_ref(double *x, int T, int n_heads, int stride, const sk_hparams *hp) {
    const int hd = hp->head_dim, rd = hp->rope_dim;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < n_heads; h++) {
            double *v = x + (long)t * stride + h * hd;
            for (int i = 0; i < rd / 2; i++) {
                int ia = hp->rope_pairing == SK_ROPE_ADJACENT ? 2 * i : i;
                int ib = hp->rope_pairing == SK_ROPE_ADJACENT ? 2 * i + 1 : i + rd / 2;
                double ang = t * pow((double)hp->rope_theta, -2.0 * i / rd);
                double a = v[ia], b = v[ib];
                v[ia] = a * cos(ang) - b * sin(ang);
                v[ib] = a * sin(ang) + b * cos(ang);
            }
        }
}

/* Causal attention of T rows at positions 0..T-1. */
static void attn_ref(const double *q, int qs, const double *k, const double *v, int kvs, int T,
                     const sk_hparams *hp, double *out) {
    const int H = hp->n_heads, hd = hp->head_dim, group = H / hp->n_kv_heads;
    double *s = malloc(sizeof(double) * (size_t)T);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const int kh = h / group;
            double mx = -INFINITY, sum = 0;
            for (int p = 0; p <= t; p++) {
                double d = 0;
                for (int i = 0; i < hd; i++)
                    d += q[(long)t * qs + h * hd + i] * k[(long)p * kvs + kh * hd + i];
                s[p] = d / sqrt((double)hd);
                if (s[p] > mx) mx = s[p];
            }
            for (int p = 0; p <= t; p++) sum += (s[p] = exp(s[p] - mx));
            for (int i = 0; i < hd; i++) {
                double o = 0;
                for (int p = 0; p <= t; p++) o += s[p] / sum * v[(long)p * kvs + kh * hd + i];
                out[((long)t * H + h) * hd + i] = o;
            }
        }
    free(s);
}

/* logits [T][V] of the reference model for tokens at positions 0..T-1. */
static void forward_ref(const sk_hparams *hp, const bank *bk, const int32_t *tok, int T,
                        double *logits) {
    const int D = hp->dim, F = hp->ffn_dim, hd = hp->head_dim, V = hp->n_vocab;
    const int H = hp->n_heads, KV = hp->n_kv_heads, Wd = (H + 2 * KV) * hd;
    const double eps = hp->norm_eps;
    const bool falcon = hp->arch == SK_ARCH_FALCON;
    double *x = calloc((size_t)T * D, 8), *h = calloc((size_t)T * D, 8),
           *h2 = calloc((size_t)T * D, 8);
    double *qkv = calloc((size_t)T * Wd, 8), *att = calloc((size_t)T * H * hd, 8);
    double *a = calloc((size_t)T * D, 8), *f1 = calloc((size_t)T * F, 8),
           *f2 = calloc((size_t)T * F, 8);
    double *mo = calloc((size_t)T * D, 8);
    const float *emb = W(bk, "token_embd.weight", 0);
    for (int t = 0; t < T; t++)
        for (int i = 0; i < D; i++) x[(long)t * D + i] = emb[(long)tok[t] * D + i];
    for (int l = 0; l < hp->n_layers; l++) {
        if (!falcon) {
            norm(x, T, D, W(bk, "blk.%d.attn_norm.weight", l), NULL, false, eps, h);
            double *q = qkv, *k = qkv + (long)T * H * hd, *v = k + (long)T * KV * hd;
            lin(h, T, W(bk, "blk.%d.attn_q.weight", l), W(bk, "blk.%d.attn_q.bias", l), H * hd, D,
                q);
            lin(h, T, W(bk, "blk.%d.attn_k.weight", l), W(bk, "blk.%d.attn_k.bias", l), KV * hd, D,
                k);
            lin(h, T, W(bk, "blk.%d.attn_v.weight", l), W(bk, "blk.%d.attn_v.bias", l), KV * hd, D,
                v);
            rope_ref(q, T, H, H * hd, hp);
            rope_ref(k, T, KV, KV * hd, hp);
            attn_ref(q, H * hd, k, v, KV * hd, T, hp, att);
            lin(att, T, W(bk, "blk.%d.attn_output.weight", l), W(bk, "blk.%d.attn_output.bias", l),
                D, H * hd, a);
            for (long i = 0; i < (long)T * D; i++) x[i] += a[i];
            norm(x, T, D, W(bk, "blk.%d.ffn_norm.weight", l), NULL, false, eps, h);
            lin(h, T, W(bk, "blk.%d.ffn_gate.weight", l), NULL, F, D, f1);
            lin(h, T, W(bk, "blk.%d.ffn_up.weight", l), NULL, F, D, f2);
            for (long i = 0; i < (long)T * F; i++) f1[i] = f1[i] / (1 + exp(-f1[i])) * f2[i];
            lin(f1, T, W(bk, "blk.%d.ffn_down.weight", l), NULL, D, F, a);
            for (long i = 0; i < (long)T * D; i++) x[i] += a[i];
        } else {
            norm(x, T, D, W(bk, "blk.%d.attn_norm.weight", l), W(bk, "blk.%d.attn_norm.bias", l),
                 true, eps, h);
            lin(h, T, W(bk, "blk.%d.attn_qkv.weight", l), W(bk, "blk.%d.attn_qkv.bias", l), Wd, D,
                qkv);
            rope_ref(qkv, T, H, Wd, hp);
            rope_ref(qkv + H * hd, T, KV, Wd, hp);
            attn_ref(qkv, Wd, qkv + H * hd, qkv + (H + KV) * hd, Wd, T, hp, att);
            lin(att, T, W(bk, "blk.%d.attn_output.weight", l), W(bk, "blk.%d.attn_output.bias", l),
                D, H * hd, a);
            const double *in = h;
            if (hp->parallel_attn) {
                if (hp->n_ln_per_layer == 2) {
                    norm(x, T, D, W(bk, "blk.%d.attn_norm_2.weight", l),
                         W(bk, "blk.%d.attn_norm_2.bias", l), true, eps, h2);
                    in = h2;
                }
            } else {
                for (long i = 0; i < (long)T * D; i++) x[i] += a[i], a[i] = 0;
                norm(x, T, D, W(bk, "blk.%d.attn_norm_2.weight", l),
                     W(bk, "blk.%d.attn_norm_2.bias", l), true, eps, h2);
                in = h2;
            }
            lin(in, T, W(bk, "blk.%d.ffn_up.weight", l), W(bk, "blk.%d.ffn_up.bias", l), F, D, f1);
            for (long i = 0; i < (long)T * F; i++)
                f1[i] = 0.5 * f1[i] * (1 + erf(f1[i] / sqrt(2.0)));
            lin(f1, T, W(bk, "blk.%d.ffn_down.weight", l), W(bk, "blk.%d.ffn_down.bias", l), D, F,
                mo);
            for (long i = 0; i < (long)T * D; i++) x[i] += a[i] + mo[i];
        }
    }
    norm(x, T, D, W(bk, "output_norm.weight", 0), falcon ? W(bk, "output_norm.bias", 0) : NULL,
         falcon, eps, h);
    const float *out = hp->tied_output ? emb : W(bk, "output.weight", 0);
    lin(h, T, out, NULL, V, D, logits);
    free(x), free(h), free(h2), free(qkv), free(att), free(a), free(f1), free(f2), free(mo);
}

static sk_hparams base_hp(sk_arch arch) {
    sk_hparams hp;
    memset(&hp, 0, sizeof hp);
    hp.arch = arch;
    hp.n_vocab = 97;
    hp.dim = 48;
    hp.n_layers = 2;
    hp.n_heads = 4;
    hp.n_kv_heads = 2;
    hp.head_dim = 12;
    hp.ffn_dim = 80;
    hp.n_ctx_train = 1024;
    hp.norm_eps = 1e-5f;
    hp.rope_theta = 10000.0f;
    hp.rope_dim = 12;
    hp.rope_pairing = SK_ROPE_ADJACENT;
    hp.n_ln_per_layer = 1;
    hp.parallel_attn = true;
    return hp;
}

static void check_random_model(const sk_hparams *hp, bool llama_bias, const char *what) {
    sk_model_file mf;
    bank bk;
    build_model(hp, llama_bias, &mf, &bk);
    sk_model *m = NULL;
    sk_model_params p;
    sk_model_params_default(&p);
    p.n_threads = 2;
    sk_status s = sk_model_from_file(&mf, &p, &m);
    CHECKF(s == SK_OK, "%s: %s", what, sk_last_error());
    if (s != SK_OK) {
        bank_free(&bk);
        return;
    }
    const int T = 23, V = hp->n_vocab;
    int32_t tok[23];
    for (int i = 0; i < T; i++) tok[i] = (int32_t)((i * 37 + 11) % V);
    double *ref = malloc(sizeof(double) * (size_t)T * V);
    forward_ref(hp, &bk, tok, T, ref);
    sk_session *se = NULL;
    CHECK(sk_session_new(m, 64, &se) == SK_OK);
    float *got = malloc(sizeof(float) * (size_t)T * V);
    CHECK(sk_session_eval(se, tok, T, got, true) == SK_OK);
    double mr = 0, md = 0;
    for (long i = 0; i < (long)T * V; i++) {
        double d = fabs(got[i] - ref[i]);
        if (d > md || d != d) md = d != d ? INFINITY : d;
        if (fabs(ref[i]) > mr) mr = fabs(ref[i]);
    }
    const double worst = md / mr;
    CHECKF(worst < 1e-5, "%s: logits differ from the double reference by %.3g", what, worst);
    sk_session_free(se);
    check_batch_vs_steps(m, tok, T, 64, 1e-5, what);
    free(ref);
    free(got);
    sk_model_close(m);
    bank_free(&bk);
}

static void test_random_models(void) {
    sk_hparams hp = base_hp(SK_ARCH_LLAMA);
    check_random_model(&hp, false, "llama gqa adjacent");
    hp.n_kv_heads = 4;
    hp.rope_pairing = SK_ROPE_HALVES;
    hp.tied_output = true;
    check_random_model(&hp, true, "llama mha halves tied biases");

    hp = base_hp(SK_ARCH_FALCON);
    hp.n_kv_heads = 1;
    hp.rope_pairing = SK_ROPE_HALVES;
    hp.tied_output = true;
    check_random_model(&hp, false, "falcon-7b style (parallel, 1 LN, MQA)");
    hp.n_kv_heads = 2;
    hp.n_ln_per_layer = 2;
    hp.tied_output = false;
    check_random_model(&hp, false, "falcon-40b style (parallel, 2 LN, GQA)");
    hp.parallel_attn = false;
    hp.n_ln_per_layer = 2;
    hp.linear_bias = true;
    hp.rope_dim = 4;
    check_random_model(&hp, false, "falcon sequential, biases, partial rotary");
    hp.n_ln_per_layer = 1;
    hp.n_kv_heads = 4;
    check_random_model(&hp, false, "falcon sequential, 1 LN field, MHA");
}

/* Session limits on a random model: context, bad ids, long prompts split into chunks. */
static void test_session_limits(void) {
    sk_hparams hp = base_hp(SK_ARCH_LLAMA);
    sk_model_file mf;
    bank bk;
    build_model(&hp, false, &mf, &bk);
    sk_model *m = NULL;
    CHECKF(sk_model_from_file(&mf, NULL, &m) == SK_OK, "%s", sk_last_error());
    if (!m) {
        bank_free(&bk);
        return;
    }
    const int V = hp.n_vocab;
    sk_session *se = NULL;
    CHECK(sk_session_new(m, 16, &se) == SK_OK);
    int32_t tok[600];
    for (int i = 0; i < 600; i++) tok[i] = (int32_t)((i * 13 + 5) % V);
    CHECK(sk_session_eval(se, tok, 10, NULL, false) == SK_OK);
    CHECK(sk_session_eval(se, tok, 7, NULL, false) == SK_ERR_CONTEXT);
    CHECKF(strstr(sk_last_error(), "prompt of 7 tokens + 10 past exceeds the context of 16"),
           "message: %s", sk_last_error());
    CHECK(sk_session_n_past(se) == 10);
    CHECK(sk_session_eval(se, tok, 6, NULL, false) == SK_OK);
    CHECK(sk_session_n_past(se) == 16);
    CHECK(sk_session_eval(se, tok, 1, NULL, false) == SK_ERR_CONTEXT);
    sk_session_reset(se);
    CHECK(sk_session_n_past(se) == 0);
    int32_t bad[3] = {1, V, 2};
    CHECK(sk_session_eval(se, bad, 3, NULL, false) == SK_ERR_ARG);
    CHECKF(strstr(sk_last_error(), "97") != NULL, "message: %s", sk_last_error());
    bad[1] = -1;
    CHECK(sk_session_eval(se, bad, 3, NULL, false) == SK_ERR_ARG);
    CHECK(sk_session_n_past(se) == 0);
    CHECK(sk_session_eval(se, tok, 0, NULL, false) == SK_ERR_ARG);
    sk_session_free(se);
    /* no tokenizer: the wrappers fail cleanly */
    int32_t out[4];
    CHECK(sk_tokenize(m, "hi", 2, true, false, out, 4) == -1);
    CHECK(sk_model_bos(m) == -1 && sk_model_eos(m) == -1 && !sk_model_is_eog(m, 0));

    /* 600 tokens: chunks of 512 + 88 give the same logits as token-by-token */
    check_batch_vs_steps(m, tok, 600, 600, 1e-5, "chunked prompt");
    sk_model_close(m);
    bank_free(&bk);

    /* a model file missing a tensor is refused with its name */
    build_model(&hp, false, &mf, &bk);
    snprintf(mf.tensors[5].name, sizeof mf.tensors[5].name, "renamed");
    m = NULL;
    CHECK(sk_model_from_file(&mf, NULL, &m) == SK_ERR_FORMAT && m == NULL);
    bank_free(&bk);
}

int main(void) {
    test_random_models();
    test_session_limits();
    test_stories();
    return sk_test_done("test_forward");
}
