/* saker perplexity: perplexity of a model on a text file.
 *
 * Default protocol (the AWQ / GPTQ papers'): the whole text is tokenized once (with BOS when
 * the model adds one), cut into non-overlapping windows of --ctx tokens (the tail that does not
 * fill a window is dropped), each window evaluated from an empty cache, and every position
 * that has a predecessor in its window scored: perplexity = exp(mean NLL).
 * --llama-cpp: llama.cpp's protocol: ctx 512 by default, each window's first token replaced by
 * BOS, and only the second half of each window scored.
 * --kl-base MODEL: the same windows also run through a reference model (e.g. the full-precision
 * source of a quantized -m), and the mean KL(reference || model) of the next-token
 * distributions over the scored positions is reported with both perplexities. */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char k_help[] =
    "usage: saker perplexity -m MODEL -f TEXT [options]\n"
    "\n" SK_CLI_COMMON_HELP
    "  -f, --file TEXT        text file to score\n"
    "      --ctx N            window length (default 2048; 512 with --llama-cpp)\n"
    "      --llama-cpp        llama.cpp's protocol (BOS first, second half of each window scored)\n"
    "      --max-windows N    stop after N windows (0: all)\n"
    "      --kl-base MODEL    also run MODEL (same vocabulary; --tokenizer applies to it too) and\n"
    "                         report the mean KL(MODEL || -m model) over the scored positions\n";

/* KL(p || q) of the softmax distributions of logit rows p and q, in double. */
static double kl_rows(const float *p, const float *q, int V) {
    float mp = p[0], mq = q[0];
    for (int i = 1; i < V; i++) mp = p[i] > mp ? p[i] : mp, mq = q[i] > mq ? q[i] : mq;
    double sp = 0, sq = 0;
    for (int i = 0; i < V; i++) sp += exp((double)p[i] - mp), sq += exp((double)q[i] - mq);
    const double lp = log(sp) + mp, lq = log(sq) + mq; /* log-normalisers */
    double kl = 0;
    for (int i = 0; i < V; i++) {
        const double a = (double)p[i] - lp;
        kl += exp(a) * (a - ((double)q[i] - lq));
    }
    return kl > 0 ? kl : 0;
}

/* -log softmax(row)[target], computed stably in double. */
static double nll(const float *row, int V, int target) {
    float mx = row[0];
    for (int i = 1; i < V; i++) mx = row[i] > mx ? row[i] : mx;
    double s = 0;
    for (int i = 0; i < V; i++) s += exp((double)row[i] - mx);
    return log(s) + mx - row[target];
}

int sk_cmd_perplexity(int argc, char **argv) {
    sk_cli_common c = {0};
    const char *file = NULL, *kl_base = NULL;
    long ctx = 0, max_windows = 0;
    bool llama_cpp = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r = sk_cli_common_opt(&c, argc, argv, &i);
        if (r < 0) return SK_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(k_help, stdout);
            return SK_EXIT_OK;
        } else if (!strcmp(a, "-f") || !strcmp(a, "--file")) {
            if (!(file = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--ctx")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_int(a, v, 2, 1 << 20, &ctx)) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--max-windows")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_int(a, v, 0, 1 << 30, &max_windows))
                return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--kl-base")) {
            if (!(kl_base = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--llama-cpp")) {
            llama_cpp = true;
        } else {
            return sk_cli_usage_error("perplexity", "unknown option '%s'", a);
        }
    }
    if (!c.model && !c.shape) return sk_cli_usage_error("perplexity", "-m MODEL (or --shape NAME) is required");
    if (!file) return sk_cli_usage_error("perplexity", "-f TEXT is required");
    if (!ctx) ctx = llama_cpp ? 512 : 2048;

    FILE *fp = fopen(file, "rb");
    if (!fp) return sk_cli_runtime_error("%s: cannot open", file);
    fseek(fp, 0, SEEK_END);
    long flen = ftell(fp);
    fseek(fp, 0, SEEK_SET);
    char *text = malloc((size_t)flen + 1);
    if (!text || fread(text, 1, (size_t)flen, fp) != (size_t)flen) {
        fclose(fp);
        free(text);
        return sk_cli_runtime_error("%s: read failed", file);
    }
    fclose(fp);
    text[flen] = 0;

    int rc = SK_EXIT_RUNTIME;
    int32_t *toks = NULL;
    float *logits = NULL, *blogits = NULL;
    sk_session *sess = NULL, *bsess = NULL;
    sk_model *bm = NULL;
    sk_model *m = sk_cli_open_model(&c);
    if (!m) goto done;
    if (kl_base) {
        sk_cli_common bc = c;
        bc.model = kl_base;
        bc.shape = NULL;
        if (!(bm = sk_cli_open_model(&bc))) goto done;
        if (sk_model_n_vocab(bm) != sk_model_n_vocab(m)) {
            sk_cli_runtime_error("--kl-base %s: vocabulary of %d, the model's is %d", kl_base,
                                 sk_model_n_vocab(bm), sk_model_n_vocab(m));
            goto done;
        }
    }
    int cap = (int)flen + 16;
    toks = malloc(sizeof(int32_t) * (size_t)cap);
    double t0 = sk_time_now();
    int n = toks ? sk_tokenize(m, text, (size_t)flen, true, false, toks, cap) : -1;
    if (n < 0 || n > cap) {
        sk_cli_runtime_error("tokenizing %s: %s", file, sk_last_error());
        goto done;
    }
    fprintf(stderr, "saker: %s: %d tokens (tokenized in %.2f s)\n", file, n, sk_time_now() - t0);
    if (ctx > sk_model_n_ctx_train(m))
        fprintf(stderr, "saker: warning: --ctx %ld exceeds the model's trained context %d\n", ctx,
                sk_model_n_ctx_train(m));
    long n_windows = n / ctx;
    if (max_windows && n_windows > max_windows) n_windows = max_windows;
    if (n_windows < 1) {
        sk_cli_runtime_error("%s: %d tokens do not fill one window of %ld", file, n, ctx);
        goto done;
    }
    const int V = sk_model_n_vocab(m), chunk = 512;
    logits = malloc(sizeof(float) * (size_t)V * chunk);
    if (!logits || sk_session_new(m, (int)ctx, &sess) != SK_OK) {
        sk_cli_runtime_error("%s", logits ? sk_last_error() : "out of memory");
        goto done;
    }
    if (bm && (!(blogits = malloc(sizeof(float) * (size_t)V * chunk)) ||
               sk_session_new(bm, (int)ctx, &bsess) != SK_OK)) {
        sk_cli_runtime_error("%s", blogits ? sk_last_error() : "out of memory");
        goto done;
    }
    double bsum = 0, klsum = 0;
    int bos = sk_model_bos(m);
    double sum = 0;
    long scored = 0;
    t0 = sk_time_now();
    for (long w = 0; w < n_windows; w++) {
        int32_t *win = toks + w * ctx;
        if (llama_cpp && bos >= 0) win[0] = bos;
        sk_session_reset(sess);
        if (bsess) sk_session_reset(bsess);
        long first = llama_cpp ? ctx / 2 : 1; /* first scored target position */
        for (long p = 0; p < ctx; p += chunk) {
            int nc = (int)(ctx - p < chunk ? ctx - p : chunk);
            if (sk_session_eval(sess, win + p, nc, logits, true) != SK_OK ||
                (bsess && sk_session_eval(bsess, win + p, nc, blogits, true) != SK_OK)) {
                sk_cli_runtime_error("%s", sk_last_error());
                goto done;
            }
            /* logits row j predicts the token at p + j + 1. Rows are scored in parallel: the
             * double-precision log-softmax over the vocabulary (49,152 exps a row for SmolLM2)
             * otherwise costs more than the GPU's forward pass. */
#pragma omp parallel for schedule(static) reduction(+ : sum, bsum, klsum, scored)
            for (int j = 0; j < nc; j++) {
                long tgt = p + j + 1;
                if (tgt < first || tgt >= ctx) continue;
                sum += nll(logits + (size_t)j * V, V, win[tgt]);
                if (bsess) {
                    bsum += nll(blogits + (size_t)j * V, V, win[tgt]);
                    klsum += kl_rows(blogits + (size_t)j * V, logits + (size_t)j * V, V);
                }
                scored++;
            }
        }
        double el = sk_time_now() - t0;
        fprintf(stderr, "\r[%ld/%ld] ppl %.4f  %.0f tokens/s", w + 1, n_windows, exp(sum / scored),
                (double)(w + 1) * ctx / (el > 0 ? el : 1e-9));
    }
    fprintf(stderr, "\n");
    printf("perplexity %.4f over %ld scored tokens (%ld windows of %ld, %s protocol)\n",
           exp(sum / scored), scored, n_windows, ctx, llama_cpp ? "llama.cpp" : "AWQ");
    if (bsess)
        printf("kl-base %s: perplexity %.4f, mean KL(base || model) %.6f nats\n", kl_base,
               exp(bsum / scored), klsum / scored);
    rc = SK_EXIT_OK;
done:
    sk_session_free(sess);
    sk_session_free(bsess);
    sk_model_close(m);
    sk_model_close(bm);
    free(logits);
    free(blogits);
    free(toks);
    free(text);
    return rc;
}
