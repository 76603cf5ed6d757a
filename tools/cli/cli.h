/* saker CLI: one file per subcommand. Text goes to stdout; logs, timings and progress to stderr.
 * Exit codes: 0 success, 1 runtime error (one line on stderr), 2 usage error. */
#ifndef SK_CLI_H
#define SK_CLI_H

#include "saker/saker.h"

#include <stdbool.h>
#include <stdio.h>

enum { SK_EXIT_OK = 0, SK_EXIT_RUNTIME = 1, SK_EXIT_USAGE = 2 };

/* Options every model-taking subcommand accepts. */
typedef struct sk_cli_common {
    const char *model;
    const char *shape; /* --shape NAME: a synthetic model instead of -m */
    const char *tokenizer;
    sk_device device;
    const char *dtype; /* --dtype: "bf16" or "fp16" (CUDA weights and KV cache); NULL: default */
    const char *weights; /* --weights: "int4" or "half" for --shape models; NULL: half */
    int threads;
} sk_cli_common;

/* If argv[*i] is a common option, consumes it (and its value), stores it and returns 1; returns 0
 * if it is not one; returns -1 after printing a usage error. */
int sk_cli_common_opt(sk_cli_common *c, int argc, char **argv, int *i);
/* Opens the model named by c (prints the error and returns NULL on failure). */
sk_model *sk_cli_open_model(const sk_cli_common *c);
/* Value of option argv[*i] (advances *i), or NULL after printing "option X needs a value". */
const char *sk_cli_value(int argc, char **argv, int *i);
bool sk_cli_int(const char *opt, const char *v, long lo, long hi, long *out);
bool sk_cli_float(const char *opt, const char *v, double lo, double hi, double *out);
int sk_cli_usage_error(const char *cmd, const char *fmt, ...);
int sk_cli_runtime_error(const char *fmt, ...);

int sk_cmd_generate(int argc, char **argv);
int sk_cmd_logits(int argc, char **argv);
int sk_cmd_tokenize(int argc, char **argv);
int sk_cmd_info(int argc, char **argv);
int sk_cmd_perplexity(int argc, char **argv);
int sk_cmd_bench(int argc, char **argv);
int sk_cmd_quantize(int argc, char **argv);

#define SK_CLI_COMMON_HELP                                                                         \
    "  -m, --model PATH       .gguf file, llama2.c .bin (with --tokenizer), or HF directory\n"    \
    "      --shape NAME       synthetic model with random weights instead of -m (llama2-7b,\n"   \
    "                         llama2-13b, llama2-70b, falcon-7b, falcon-40b, falcon-180b, ...)\n" \
    "      --tokenizer FILE   llama2.c tokenizer (tok*.bin)\n"                                     \
    "      --device D         auto|cpu|cuda (default auto)\n"                                      \
    "      --dtype T          bf16|fp16: CUDA weights and KV cache (default bf16)\n"              \
    "      --weights W        half|int4: linear layers of a --shape model (int4: group 128)\n"   \
    "  -t, --threads N        CPU threads (default: all cores)\n"

#endif
