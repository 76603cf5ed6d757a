/* saker generate: prompt in, completion streamed to stdout. */
#include "cli.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char k_help[] =
    "usage: saker generate -m MODEL -p PROMPT [options]\n"
    "\n"
    "Prints the prompt, then the completion as it is generated. Timings go to stderr.\n"
    "\n" SK_CLI_COMMON_HELP
    "  -p, --prompt TEXT      prompt (\"\" starts from BOS alone)\n"
    "  -n, --n-predict N      new tokens to generate (default 256)\n"
    "      --chat             wrap the prompt in the model's chat template\n"
    "      --temp T           temperature (default 0.8; 0 is greedy)\n"
    "      --top-k K          (default 40; 0 off)\n"
    "      --top-p P          (default 0.95; 1 off)\n"
    "      --min-p P          (default 0.05; 0 off)\n"
    "      --repeat-penalty R (default 1.0: off)\n"
    "      --repeat-last-n N  (default 64)\n"
    "      --seed S           sampling seed (default: from the clock, printed on stderr)\n"
    "      --ctx N            context length (default: the model's, at most 4096)\n"
    "      --ignore-eos       keep generating past end-of-generation tokens\n";

static void emit(const char *s, int n) {
    if (n > 0) {
        fwrite(s, 1, (size_t)n, stdout);
        fflush(stdout);
    }
}

int sk_cmd_generate(int argc, char **argv) {
    sk_cli_common c = {0};
    sk_sampler_params sp;
    sk_sampler_params_default(&sp);
    const char *prompt = NULL;
    long n_predict = 256, ctx = 0;
    bool chat = false, seed_set = false, ignore_eos = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v;
        long n;
        double x;
        int r = sk_cli_common_opt(&c, argc, argv, &i);
        if (r < 0) return SK_EXIT_USAGE;
        if (r > 0) continue;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(k_help, stdout);
            return SK_EXIT_OK;
        } else if (!strcmp(a, "-p") || !strcmp(a, "--prompt")) {
            if (!(prompt = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "-n") || !strcmp(a, "--n-predict")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_int(a, v, 0, 1 << 24, &n_predict))
                return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--chat")) {
            chat = true;
        } else if (!strcmp(a, "--ignore-eos")) {
            ignore_eos = true;
        } else if (!strcmp(a, "--temp")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_float(a, v, 0, 100, &x)) return SK_EXIT_USAGE;
            sp.temp = (float)x;
        } else if (!strcmp(a, "--top-k")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_int(a, v, 0, 1 << 24, &n)) return SK_EXIT_USAGE;
            sp.top_k = (int)n;
        } else if (!strcmp(a, "--top-p")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_float(a, v, 0, 1, &x)) return SK_EXIT_USAGE;
            sp.top_p = (float)x;
        } else if (!strcmp(a, "--min-p")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_float(a, v, 0, 1, &x)) return SK_EXIT_USAGE;
            sp.min_p = (float)x;
        } else if (!strcmp(a, "--repeat-penalty")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_float(a, v, 0.01, 100, &x)) return SK_EXIT_USAGE;
            sp.repeat_penalty = (float)x;
        } else if (!strcmp(a, "--repeat-last-n")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_int(a, v, 0, 1 << 20, &n)) return SK_EXIT_USAGE;
            sp.repeat_last_n = (int)n;
        } else if (!strcmp(a, "--seed")) {
            if (!(v = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
            char *end;
            unsigned long long s = strtoull(v, &end, 10);
            if (end == v || *end) return sk_cli_usage_error("generate", "--seed: '%s' is not an integer", v);
            sp.seed = s;
            seed_set = true;
        } else if (!strcmp(a, "--ctx")) {
            if (!(v = sk_cli_value(argc, argv, &i)) || !sk_cli_int(a, v, 1, 1 << 24, &ctx)) return SK_EXIT_USAGE;
        } else {
            return sk_cli_usage_error("generate", "unknown option '%s'", a);
        }
    }
    if (!c.model && !c.shape) return sk_cli_usage_error("generate", "-m MODEL (or --shape NAME) is required");
    if (!prompt) return sk_cli_usage_error("generate", "-p PROMPT is required (use -p \"\" to start from BOS)");
    if (!seed_set) sp.seed = (uint64_t)time(NULL);
    if (sp.temp > 0) fprintf(stderr, "saker: seed %llu\n", (unsigned long long)sp.seed);

    int rc = SK_EXIT_RUNTIME;
    sk_model *m = sk_cli_open_model(&c);
    if (!m) return SK_EXIT_RUNTIME;
    sk_session *sess = NULL;
    sk_sampler *smp = NULL;
    sk_detok *dt = NULL;
    int32_t *toks = NULL;
    float *logits = NULL;
    char *text = NULL;

    /* Tokenize the prompt. */
    const char *src = prompt;
    bool parse_special = false;
    if (chat) {
        text = sk_chat_format(m, prompt);
        if (!text) {
            sk_cli_runtime_error("chat template: %s", sk_last_error());
            goto done;
        }
        src = text;
        parse_special = true;
    }
    size_t len = strlen(src);
    int cap = (int)(len + 16);
    toks = malloc(sizeof(int32_t) * (size_t)cap);
    int n_prompt = toks ? sk_tokenize(m, src, len, true, parse_special, toks, cap) : -1;
    if (n_prompt > cap) {
        cap = n_prompt;
        int32_t *nt = realloc(toks, sizeof(int32_t) * (size_t)cap);
        n_prompt = nt ? sk_tokenize(m, src, len, true, parse_special, toks = nt, cap) : -1;
    }
    if (n_prompt < 0) {
        sk_cli_runtime_error("tokenizing the prompt: %s", sk_last_error());
        goto done;
    }
    if (n_prompt == 0) {
        int bos = sk_model_bos(m);
        if (bos < 0) {
            sk_cli_runtime_error("the prompt is empty and the model has no BOS token to start from");
            goto done;
        }
        toks[n_prompt++] = bos;
    }

    sk_status s = sk_session_new(m, (int)ctx, &sess);
    if (s != SK_OK) {
        sk_cli_runtime_error("%s", sk_last_error());
        goto done;
    }
    int n_vocab = sk_model_n_vocab(m);
    logits = malloc(sizeof(float) * (size_t)n_vocab);
    smp = sk_sampler_new(&sp, n_vocab);
    if (!logits || !smp) {
        sk_cli_runtime_error("out of memory");
        goto done;
    }

    /* The prompt as given; in chat mode the user's message, not the template around it. */
    bool starts_text = prompt[0] == 0 && !chat;
    if (chat) {
        emit(prompt, (int)strlen(prompt));
        emit("\n", 1);
    } else {
        emit(prompt, (int)strlen(prompt));
    }
    dt = sk_detok_new(m, starts_text || chat);

    double t0 = sk_time_now();
    s = sk_session_eval(sess, toks, n_prompt, logits, false);
    if (s != SK_OK) {
        sk_cli_runtime_error("%s", sk_last_error());
        goto done;
    }
    double t_prompt = sk_time_now() - t0;
    for (int i = 0; i < n_prompt; i++) sk_sampler_accept(smp, toks[i]);

    long n_gen = 0;
    double t1 = sk_time_now();
    const char *out;
    while (n_gen < n_predict) {
        int32_t tok = sk_sampler_sample(smp, logits);
        sk_sampler_accept(smp, tok);
        n_gen++;
        if (!ignore_eos && sk_model_is_eog(m, tok)) break;
        int nb = sk_detok_push(dt, tok, &out);
        emit(out, nb);
        if (n_gen == n_predict) break;
        s = sk_session_eval(sess, &tok, 1, logits, false);
        if (s == SK_ERR_CONTEXT) {
            fprintf(stderr, "\nsaker: context of %d tokens is full; stopping\n", sk_session_n_past(sess));
            break;
        }
        if (s != SK_OK) {
            sk_cli_runtime_error("%s", sk_last_error());
            goto done;
        }
    }
    int nb = sk_detok_flush(dt, &out);
    emit(out, nb);
    emit("\n", 1);
    double t_gen = sk_time_now() - t1;
    fprintf(stderr, "saker: prompt %d tokens in %.3f s (%.1f tokens/s); generated %ld tokens in %.3f s (%.1f tokens/s)\n",
            n_prompt, t_prompt, n_prompt / (t_prompt > 0 ? t_prompt : 1e-9), n_gen, t_gen,
            n_gen / (t_gen > 0 ? t_gen : 1e-9));
    rc = SK_EXIT_OK;
done:
    sk_detok_free(dt);
    sk_sampler_free(smp);
    sk_session_free(sess);
    sk_model_close(m);
    free(logits);
    free(toks);
    free(text);
    return rc;
}
