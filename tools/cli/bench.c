#define _POSIX_C_SOURCE 200809L
/* saker bench: offline latency/throughput of one sequence at a time (batch 1).
 *
 * For each (input length, output length) pair: a fixed-length synthetic prompt (random token ids
 * from a fixed seed), prefilled as one batch (time to first token), then greedy decoding forced
 * to the output length. Reports prefill tokens/s, output tokens/s (= osl x batch / total latency,
 * the seed system's definition), inter-token latency percentiles, and the decode speed of light:
 * the weight bytes the device holds are read once per decode step, so weight bytes / step time is
 * compared with the memory bandwidth given by --bw (default: the H200's measured device copy
 * rate, 4.23e12 B/s, ../shared/docs/GPU.md).
 *
 * Batched serving (in-flight batching, --batch N > 1) comes with the engine (issue 4). */
#include "cli.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char k_help[] =
    "usage: saker bench (-m MODEL | --shape NAME) [options]\n"
    "\n" SK_CLI_COMMON_HELP
    "      --isl LIST         input lengths, comma-separated (default 128)\n"
    "      --osl LIST         output lengths, comma-separated (default 128)\n"
    "      --batch N          sequences per step (only 1 until the batching engine lands)\n"
    "      --bw B             memory bandwidth for the speed-of-light line, bytes/s (default 4.23e12)\n"
    "      --warmup N         untimed decode steps first (default 8)\n"
    "      --json FILE        also write every figure as JSON\n";

static int parse_list(const char *opt, const char *s, long *v, int cap) {
    int n = 0;
    char *dup = strdup(s), *save = NULL;
    for (char *t = strtok_r(dup, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (n == cap || !sk_cli_int(opt, t, 1, 1 << 20, &v[n])) {
            free(dup);
            return -1;
        }
        n++;
    }
    free(dup);
    return n;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double pct(const double *sorted, int n, double p) {
    if (n <= 0) return 0;
    int i = (int)ceil(p / 100.0 * n) - 1;
    return sorted[i < 0 ? 0 : i >= n ? n - 1 : i];
}

static int32_t argmax(const float *x, int n) {
    int32_t best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}

int sk_cmd_bench(int argc, char **argv) {
    sk_cli_common c = {0};
    long isl[16] = {128}, osl[16] = {128}, batch = 1, warmup = 8;
    int n_isl = 1, n_osl = 1;
    double bw = 4.23e12;
    const char *json = NULL;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        int r = sk_cli_common_opt(&c, argc, argv, &i);
        if (r < 0) return SK_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(k_help, stdout);
            return SK_EXIT_OK;
        } else if (!strcmp(a, "--isl")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || (n_isl = parse_list(a, v, isl, 16)) < 1)
                return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--osl")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || (n_osl = parse_list(a, v, osl, 16)) < 1)
                return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--batch")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_int(a, v, 1, 1 << 16, &batch)) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--warmup")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_int(a, v, 0, 1 << 16, &warmup)) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--bw")) {
            double x;
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_float(a, v, 1e6, 1e15, &x)) return SK_EXIT_USAGE;
            bw = x;
        } else if (!strcmp(a, "--json")) {
            if (!(json = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else {
            return sk_cli_usage_error("bench", "unknown option '%s'", a);
        }
    }
    if (!c.model && !c.shape) return sk_cli_usage_error("bench", "-m MODEL (or --shape NAME) is required");
    if (batch != 1)
        return sk_cli_usage_error("bench", "--batch %ld: only batch 1 is supported until the batching engine lands", batch);

    sk_model *m = sk_cli_open_model(&c);
    if (!m) return SK_EXIT_RUNTIME;
    int rc = SK_EXIT_RUNTIME;
    const int V = sk_model_n_vocab(m);
    float *logits = malloc(sizeof(float) * (size_t)V);
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (json && !jf) {
        sk_cli_runtime_error("%s: cannot open for writing", json);
        goto done;
    }
    const double wbytes = (double)sk_model_device_weight_bytes(m);
    printf("model %s on %s: %.2f B parameters, %.2f GB of weights on the device\n\n",
           c.shape ? c.shape : c.model, sk_model_device_name(m), sk_model_n_params(m) / 1e9, wbytes / 1e9);
    printf("| isl | osl | batch | prefill tok/s | TTFT ms | ITL p50 ms | ITL p90 ms | ITL p99 ms | output tok/s | weight GB/s (decode) | of --bw |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    if (jf) fprintf(jf, "{\"model\": \"%s\", \"device\": \"%s\", \"weight_bytes\": %.0f, \"bw\": %.6g, \"runs\": [",
                    c.shape ? c.shape : c.model, sk_model_device_name(m), wbytes, bw);
    uint64_t rng = 0x853c49e6748fea9bull;
    for (int a = 0; a < n_isl; a++)
        for (int b = 0; b < n_osl; b++) {
            long n_in = isl[a], n_out = osl[b];
            sk_session *s = NULL;
            int32_t *toks = malloc(sizeof(int32_t) * (size_t)n_in);
            double *itl = malloc(sizeof(double) * (size_t)(n_out + 1));
            for (long i = 0; i < n_in; i++) {
                rng = rng * 6364136223846793005ull + 1442695040888963407ull;
                toks[i] = (int32_t)((rng >> 33) % (uint64_t)V);
            }
            if (sk_session_new(m, (int)(n_in + n_out + warmup), &s) != SK_OK) {
                sk_cli_runtime_error("%s", sk_last_error());
                free(toks);
                free(itl);
                goto done;
            }
            /* Warm-up: a short prefill and some decode steps (allocations, plans, clocks). */
            int32_t t0tok = toks[0];
            if (sk_session_eval(s, toks, (int)(n_in < 16 ? n_in : 16), logits, false) != SK_OK) goto fail_run;
            for (long i = 0; i < warmup; i++)
                if (sk_session_eval(s, &t0tok, 1, logits, false) != SK_OK) goto fail_run;
            sk_session_reset(s);

            double t0 = sk_time_now();
            if (sk_session_eval(s, toks, (int)n_in, logits, false) != SK_OK) goto fail_run;
            int32_t tok = argmax(logits, V);
            double t1 = sk_time_now(), tprev = t1;
            for (long i = 1; i < n_out; i++) {
                if (sk_session_eval(s, &tok, 1, logits, false) != SK_OK) goto fail_run;
                tok = argmax(logits, V);
                double tn = sk_time_now();
                itl[i - 1] = tn - tprev;
                tprev = tn;
            }
            double total = tprev - t0, ttft = t1 - t0;
            int n_itl = (int)(n_out - 1);
            double sum_itl = 0;
            for (int i = 0; i < n_itl; i++) sum_itl += itl[i];
            qsort(itl, (size_t)n_itl, sizeof(double), cmp_d);
            double mean_itl = n_itl ? sum_itl / n_itl : 0;
            double out_tps = (double)n_out * (double)batch / total;
            double wbps = mean_itl > 0 ? wbytes / mean_itl : 0;
            printf("| %ld | %ld | %ld | %.0f | %.2f | %.3f | %.3f | %.3f | %.1f | %.0f | %.1f%% |\n", n_in, n_out,
                   batch, n_in / ttft, ttft * 1e3, pct(itl, n_itl, 50) * 1e3, pct(itl, n_itl, 90) * 1e3,
                   pct(itl, n_itl, 99) * 1e3, out_tps, wbps / 1e9, 100.0 * wbps / bw);
            fflush(stdout);
            if (jf)
                fprintf(jf, "%s{\"isl\": %ld, \"osl\": %ld, \"batch\": %ld, \"ttft_s\": %.6g, \"prefill_tps\": %.6g, "
                            "\"itl_p50_s\": %.6g, \"itl_p90_s\": %.6g, \"itl_p99_s\": %.6g, \"itl_mean_s\": %.6g, "
                            "\"total_s\": %.6g, \"output_tps\": %.6g, \"weight_bytes_per_s\": %.6g, \"sol_fraction\": %.6g}",
                        (a || b) ? ", " : "", n_in, n_out, batch, ttft, n_in / ttft, pct(itl, n_itl, 50),
                        pct(itl, n_itl, 90), pct(itl, n_itl, 99), mean_itl, total, out_tps, wbps, wbps / bw);
            sk_session_free(s);
            free(toks);
            free(itl);
            continue;
        fail_run:
            sk_cli_runtime_error("%s", sk_last_error());
            sk_session_free(s);
            free(toks);
            free(itl);
            goto done;
        }
    if (jf) fprintf(jf, "]}\n");
    printf("\nspeed of light at batch 1: one decode step reads %.2f GB of weights: %.2f ms at --bw %.3g B/s\n",
           wbytes / 1e9, wbytes / bw * 1e3, bw);
    rc = SK_EXIT_OK;
done:
    if (jf) fclose(jf);
    free(logits);
    sk_model_close(m);
    return rc;
}
