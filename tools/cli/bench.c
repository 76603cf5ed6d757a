#define _POSIX_C_SOURCE 200809L
/* saker bench: offline throughput through the engine (in-flight batching), the way the seed
 * system's numbers are measured.
 *
 * For each (input length, output length) pair: `requests` fixed-length synthetic prompts (random
 * token ids from a fixed seed) submitted at once to an engine running `batch` sequences at a
 * time, greedy generation forced to the output length (EOS ignored). Reports the batch, output
 * tokens/s (= osl x requests / total latency, the seed's definition: osl x batch / latency when
 * requests == batch), total tokens/s ((isl + osl) x requests / latency), time to first token and
 * inter-token latency percentiles over all requests, the device memory split (weights, KV pool,
 * step buffers), and a speed-of-light estimate: prefill at --flops, each decode step reading the
 * weights once plus the batch's KV at --bw (or --flops when compute bound), against which the
 * measured time is given as a fraction. --batch max: the largest batch whose KV (isl + osl
 * tokens each) fits the pool. Progress on stderr, a markdown table on stdout, --json for all,
 * --plot for a PNG chart of output tokens/s against output length, one line per input length. */
#include "cli.h"
#include "core/chart.h"
#include "saker/engine.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const char k_help[] =
    "usage: saker bench (-m MODEL | --shape NAME) [options]\n"
    "\n" SK_CLI_COMMON_HELP
    "      --isl LIST         input lengths, comma-separated (default 128)\n"
    "      --osl LIST         output lengths, comma-separated (default 128)\n"
    "      --batch N|max      sequences in flight (default 1); max: the most whose KV fits\n"
    "      --requests N       requests per run (default: the batch)\n"
    "      --kv-memory F      KV pool: a fraction (<= 1) of free device memory, or bytes (default 0.9)\n"
    "      --ctx-beyond-train allow isl + osl past the model's training context (a speed\n"
    "                         measurement, as TensorRT-LLM's 128/4096 runs of Llama-2)\n"
    "      --max-num-tokens N tokens per engine step (default: the batch's prompts in about 8\n"
    "                         steps, batch x isl / 8 rounded up to 2048, within 2048..16384)\n"
    "      --bw B             memory bandwidth for the speed of light, bytes/s (default 4.23e12)\n"
    "      --flops F          dense half FLOP/s for the speed of light (default 989e12, H200)\n"
    "      --json FILE        also write every figure as JSON\n"
    "      --plot FILE        also draw output tok/s against output length, one line per input\n"
    "                         length, as a PNG chart (written after the last run)\n";

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

static double pct(const double *sorted, long n, double p) {
    if (n <= 0) return 0;
    long i = (long)ceil(p / 100.0 * (double)n) - 1;
    return sorted[i < 0 ? 0 : i >= n ? n - 1 : i];
}

typedef struct run_req {
    uint64_t id;
    double t_first, t_last;
    long n;
} run_req;

typedef struct bench_opts {
    long batch; /* 0: max */
    long requests, max_tokens;
    double kv_memory, bw, flops;
    bool ctx_beyond; /* --ctx-beyond-train: runs longer than the training context allowed */
} bench_opts;

/* The default token budget per step: the batch's prompts in about 8 steps, so that a large
 * batch's prefill runs in few, large GEMMs (7B at 128/128, batch ~900 on the H200: 11,489 output
 * tok/s at 2048, 11,578 at 4096, 11,527 at 8192, 11,818 at 16384), while small batches keep
 * 2048 (the step buffers grow with the budget, ~230 KB a row for 7B, taken from the KV pool). */
static long auto_tokens(long batch, long isl) {
    long t = (batch * isl / 8 + 2047) / 2048 * 2048;
    return t < 2048 ? 2048 : t > 16384 ? 16384 : t;
}

static sk_engine *make_engine(sk_model *m, const bench_opts *o, long max_tokens, int max_batch,
                              int n_ctx) {
    sk_engine_params p;
    sk_engine_params_default(&p);
    p.max_batch = max_batch;
    p.max_num_tokens = (int)max_tokens;
    p.kv_memory = o->kv_memory;
    p.n_ctx = n_ctx;
    p.ctx_beyond_train = o->ctx_beyond;
    p.prefix_caching = false; /* random prompts share nothing; keep the pool for the batch */
    sk_engine *e = NULL;
    if (sk_engine_new(m, &p, &e) != SK_OK) return NULL;
    return e;
}

/* One (isl, osl) run; returns 0 and its output tokens/s in *tps, or -1 with the error printed. */
static int run(sk_model *m, const bench_opts *o, long isl, long osl, uint64_t *rng, FILE *jf,
               bool first, double *tps) {
    const int V = sk_model_n_vocab(m), n_ctx = (int)(isl + osl);
    if (n_ctx > sk_model_n_ctx_train(m)) {
        if (!o->ctx_beyond) {
            sk_cli_runtime_error("isl %ld + osl %ld exceed the model's context of %d (add "
                                 "--ctx-beyond-train to measure speed there anyway)",
                                 isl, osl, sk_model_n_ctx_train(m));
            return -1;
        }
        fprintf(stderr, "saker bench: isl %ld + osl %ld go past the model's training context of "
                        "%d (--ctx-beyond-train): a speed measurement only\n",
                isl, osl, sk_model_n_ctx_train(m));
    }
    sk_engine_stats st;
    long batch = o->batch;
    long max_tokens = o->max_tokens > 0 ? o->max_tokens : auto_tokens(batch > 0 ? batch : 1, isl);
    /* --batch max: the pool's capacity in sequences of isl + osl tokens, probed until it holds:
     * the step buffers grow with the budget (which follows the batch) and with the batch itself
     * (logit rows of a padded decode step), and the pool gets what they leave. Each probe is
     * built like the real engine, with the batch found so far (1 at first). */
    long probe_batch = 1;
    for (int probe_i = 0; o->batch == 0 && probe_i < 3; probe_i++) {
        sk_engine *probe = make_engine(m, o, max_tokens, (int)probe_batch, n_ctx);
        if (!probe) return sk_cli_runtime_error("%s", sk_last_error()), -1;
        sk_engine_get_stats(probe, &st);
        sk_engine_free(probe);
        const long pps = (isl + osl - 1 + st.kv_page_size - 1) / st.kv_page_size;
        batch = st.kv_pages_total / pps;
        if (batch < 1) return sk_cli_runtime_error("no sequence of %ld tokens fits the KV pool", isl + osl), -1;
        const long next_tokens = o->max_tokens > 0 ? max_tokens : auto_tokens(batch, isl);
        if (batch <= probe_batch && next_tokens == max_tokens) break; /* the probe's own shape */
        max_tokens = next_tokens;
        probe_batch = batch;
    }
    const long R = o->requests > 0 ? o->requests : batch;
    sk_engine *e = make_engine(m, o, max_tokens, (int)batch, n_ctx);
    if (!e) return sk_cli_runtime_error("%s", sk_last_error()), -1;
    int rc = -1;
    int32_t *toks = malloc(sizeof(int32_t) * (size_t)isl);
    run_req *rq = calloc((size_t)R, sizeof *rq);
    double *itl = malloc(sizeof(double) * (size_t)(R * osl + 1));
    double *ttft = malloc(sizeof(double) * (size_t)R);
    sk_engine_event ev[256];
    long n_itl = 0, done = 0, got = 0;

    /* Warm-up: a short request (allocations, plans, clocks). */
    sk_request_params r;
    sk_request_params_default(&r);
    for (long i = 0; i < 16 && i < isl; i++) toks[i] = (int32_t)(i % V);
    r.tokens = toks;
    r.n_tokens = isl < 16 ? (int)isl : 16;
    r.max_new_tokens = osl < 4 ? (int)osl : 4; /* n_ctx = isl + osl: fits whatever they are */
    r.ignore_eos = true;
    int n_w = 0;
    if (sk_engine_generate(e, &r, NULL, 0, &n_w, NULL) != SK_OK) goto fail;

    r.n_tokens = (int)isl;
    r.max_new_tokens = (int)osl;
    const double t0 = sk_time_now();
    for (long q = 0; q < R; q++) {
        for (long i = 0; i < isl; i++) {
            *rng = *rng * 6364136223846793005ull + 1442695040888963407ull;
            toks[i] = (int32_t)((*rng >> 33) % (uint64_t)V);
        }
        if (sk_engine_submit(e, &r, &rq[q].id) != SK_OK) goto fail;
    }
    const long total_tokens = R * osl;
    int last_pct = -1;
    while (done < R) {
        int n = sk_engine_poll(e, ev, 256, 1.0);
        for (int i = 0; i < n; i++) {
            long q = (long)(ev[i].id - rq[0].id);
            if (q < 0 || q >= R || rq[q].id != ev[i].id) continue;
            run_req *x = &rq[q];
            if (ev[i].token >= 0) {
                if (x->n == 0) x->t_first = ev[i].time;
                else itl[n_itl++] = ev[i].time - x->t_last;
                x->t_last = ev[i].time;
                x->n++;
                got++;
            }
            if (ev[i].finish != SK_FINISH_NONE) {
                done++;
                if (ev[i].finish != SK_FINISH_LENGTH) {
                    sk_cli_runtime_error("request %ld ended early: %s", q, sk_finish_name(ev[i].finish));
                    goto fail;
                }
            }
        }
        const int pc = (int)(100 * got / (total_tokens ? total_tokens : 1));
        if (pc / 5 != last_pct / 5 || last_pct < 0) { /* redraw every 5% */
            char bar[41];
            for (int i = 0; i < 40; i++) bar[i] = i < pc * 40 / 100 ? '#' : '.';
            bar[40] = 0;
            fprintf(stderr, "\rbench isl %ld osl %ld batch %ld (%ld tokens/step): [%s] %3d%%", isl,
                    osl, batch, max_tokens, bar, pc);
            last_pct = pc;
        }
    }
    fprintf(stderr, "\n");
    double t_end = t0;
    for (long q = 0; q < R; q++) {
        ttft[q] = rq[q].t_first - t0;
        if (rq[q].t_last > t_end) t_end = rq[q].t_last;
    }
    const double total = t_end - t0;
    qsort(ttft, (size_t)R, sizeof(double), cmp_d);
    qsort(itl, (size_t)n_itl, sizeof(double), cmp_d);
    sk_engine_get_stats(e, &st);
    const double out_tps = (double)(R * osl) / total, tot_tps = (double)(R * (isl + osl)) / total;

    /* Speed of light: prefill FLOPs at --flops; decode steps (osl - 1 per wave of `batch`) each
     * read the weights once and the batch's KV (mean length isl + osl/2), at --bw, or their
     * FLOPs at --flops when that is longer. */
    const double P = (double)sk_model_n_params(m), W = (double)st.weight_bytes;
    const double kv_tok = (double)st.kv_bytes / ((double)st.kv_pages_total * st.kv_page_size);
    const long waves = (R + batch - 1) / batch;
    const double t_pf = 2.0 * P * (double)isl * (double)R / o->flops;
    const double step_b = W + (double)batch * ((double)isl + (double)osl / 2.0) * kv_tok;
    const double step_t = fmax(step_b / o->bw, 2.0 * P * (double)batch / o->flops);
    const double sol = t_pf + (double)waves * (double)(osl - 1) * step_t;

    printf("| %ld | %ld | %ld | %ld | %.1f | %.1f | %.2f | %.2f | %.2f | %.3f | %.3f | %.3f | %.2f / %.2f / %.2f | %.1f%% | %llu |\n",
           isl, osl, batch, R, out_tps, tot_tps, pct(ttft, R, 50) * 1e3, pct(ttft, R, 90) * 1e3,
           pct(ttft, R, 99) * 1e3, pct(itl, n_itl, 50) * 1e3, pct(itl, n_itl, 90) * 1e3,
           pct(itl, n_itl, 99) * 1e3, W / 1e9, (double)st.kv_bytes / 1e9,
           (double)st.workspace_bytes / 1e9, 100.0 * sol / total,
           (unsigned long long)st.n_preemptions);
    fflush(stdout);
    if (jf)
        fprintf(jf,
                "%s{\"isl\": %ld, \"osl\": %ld, \"batch\": %ld, \"requests\": %ld, \"total_s\": %.6g, "
                "\"output_tps\": %.6g, \"total_tps\": %.6g, \"ttft_p50_s\": %.6g, \"ttft_p90_s\": %.6g, "
                "\"ttft_p99_s\": %.6g, \"itl_p50_s\": %.6g, \"itl_p90_s\": %.6g, \"itl_p99_s\": %.6g, "
                "\"weight_bytes\": %.0f, \"kv_bytes\": %llu, \"workspace_bytes\": %llu, "
                "\"kv_pages\": %d, \"kv_page_size\": %d, \"max_num_tokens\": %ld, \"steps\": %llu, \"preemptions\": %llu, "
                "\"sol_s\": %.6g, \"sol_fraction\": %.6g}",
                first ? "" : ", ", isl, osl, batch, R, total, out_tps, tot_tps, pct(ttft, R, 50),
                pct(ttft, R, 90), pct(ttft, R, 99), pct(itl, n_itl, 50), pct(itl, n_itl, 90),
                pct(itl, n_itl, 99), W, (unsigned long long)st.kv_bytes,
                (unsigned long long)st.workspace_bytes, st.kv_pages_total, st.kv_page_size, max_tokens,
                (unsigned long long)st.n_steps, (unsigned long long)st.n_preemptions, sol,
                sol / total);
    *tps = out_tps;
    rc = 0;
    goto done;
fail:
    sk_cli_runtime_error("%s", sk_last_error());
done:
    sk_engine_free(e);
    free(toks);
    free(rq);
    free(itl);
    free(ttft);
    return rc;
}

int sk_cmd_bench(int argc, char **argv) {
    sk_cli_common c = {0};
    long isl[16] = {128}, osl[16] = {128};
    int n_isl = 1, n_osl = 1;
    bench_opts o = {1, 0, 0, 0.9, 4.23e12, 989e12, false};
    const char *json = NULL, *plot = NULL;
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
            if (!(v = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
            if (!strcmp(v, "max")) o.batch = 0;
            else if (!sk_cli_int(a, v, 1, 1 << 16, &o.batch)) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--requests")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_int(a, v, 1, 1 << 20, &o.requests)) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--max-num-tokens")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_int(a, v, 1, 1 << 20, &o.max_tokens)) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--ctx-beyond-train")) {
            o.ctx_beyond = true;
        } else if (!strcmp(a, "--kv-memory")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_float(a, v, 1e-6, 1e15, &o.kv_memory)) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--bw")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_float(a, v, 1e6, 1e15, &o.bw)) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--flops")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_float(a, v, 1e6, 1e18, &o.flops)) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--json")) {
            if (!(json = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--plot")) {
            if (!(plot = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else {
            return sk_cli_usage_error("bench", "unknown option '%s'", a);
        }
    }
    if (!c.model && !c.shape) return sk_cli_usage_error("bench", "-m MODEL (or --shape NAME) is required");

    sk_model *m = sk_cli_open_model(&c);
    if (!m) return SK_EXIT_RUNTIME;
    int rc = SK_EXIT_RUNTIME;
    bool plot_made = false; /* --plot's file created empty below: removed again if a run fails */
    FILE *jf = json ? fopen(json, "w") : NULL;
    if (json && !jf) {
        sk_cli_runtime_error("%s: cannot open for writing", json);
        goto done;
    }
    if (plot) { /* find an unwritable path now, not after the runs; an old chart stays till then */
        plot_made = access(plot, F_OK) != 0;
        FILE *pf = fopen(plot, "ab");
        if (!pf) {
            sk_cli_runtime_error("%s: cannot open for writing", plot);
            goto done;
        }
        fclose(pf);
    }
    const double wbytes = (double)sk_model_device_weight_bytes(m);
    printf("model %s on %s: %.2f B parameters, %.2f GB of weights on the device; speed of light at "
           "%.3g B/s and %.3g FLOP/s\n\n",
           c.shape ? c.shape : c.model, sk_model_device_name(m), sk_model_n_params(m) / 1e9,
           wbytes / 1e9, o.bw, o.flops);
    printf("| isl | osl | batch | requests | output tok/s | total tok/s | TTFT p50 ms | TTFT p90 ms "
           "| TTFT p99 ms | ITL p50 ms | ITL p90 ms | ITL p99 ms | GB weights / KV / workspace "
           "| of speed of light | preemptions |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    if (jf)
        fprintf(jf, "{\"model\": \"%s\", \"device\": \"%s\", \"weight_bytes\": %.0f, \"bw\": %.6g, "
                    "\"flops\": %.6g, \"runs\": [",
                c.shape ? c.shape : c.model, sk_model_device_name(m), wbytes, o.bw, o.flops);
    uint64_t rng = 0x853c49e6748fea9bull;
    bool first = true;
    double tps[16][16], x[16][16];
    for (int a = 0; a < n_isl; a++)
        for (int b = 0; b < n_osl; b++) {
            if (run(m, &o, isl[a], osl[b], &rng, jf, first, &tps[a][b]) != 0) {
                /* the runs before stay readable: close the list, mark it incomplete */
                if (jf) fprintf(jf, "], \"incomplete\": true}\n");
                goto done;
            }
            x[a][b] = (double)osl[b];
            first = false;
        }
    if (jf) fprintf(jf, "]}\n");
    if (plot) {
        char labels[16][32], title[512];
        sk_chart_series ser[16];
        for (int a = 0; a < n_isl; a++) {
            snprintf(labels[a], sizeof labels[a], "isl %ld", isl[a]);
            ser[a] = (sk_chart_series){labels[a], x[a], tps[a], n_osl};
        }
        const char *name = c.shape ? c.shape : c.model, *slash = strrchr(name, '/');
        if (slash && slash[1]) name = slash + 1; /* the file name; a path ending in / stays whole */
        snprintf(title, sizeof title, "%s on %s", name, sk_model_device_name(m));
        const sk_chart ch = {title, "output length (tokens)", "output tok/s", ser, n_isl, 0, 0};
        if (sk_chart_write_png(&ch, plot) != SK_OK) {
            sk_cli_runtime_error("%s", sk_last_error());
            goto done;
        }
        fprintf(stderr, "bench: chart written to %s\n", plot);
    }
    rc = SK_EXIT_OK;
done:
    if (jf) fclose(jf);
    if (plot_made && rc != SK_EXIT_OK) remove(plot);
    sk_model_close(m);
    return rc;
}
