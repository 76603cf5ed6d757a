#include "cli.h"

#include <string.h>

static const char k_usage[] =
    "usage: saker COMMAND [options]\n"
    "\n"
    "commands:\n"
    "  generate   generate text from a prompt\n"
    "  logits     write the logits of one forward pass over given token ids\n"
    "  tokenize   print the token ids of a text\n"
    "  info       validate a model file and describe it\n"
    "  perplexity perplexity of a model on a text file\n"
    "  bench      prefill/decode latency and throughput on synthetic prompts\n"
    "  quantize   INT4 AWQ / RTN quantization into an AutoAWQ checkpoint\n"
    "\n"
    "'saker COMMAND --help' describes each command's options.\n";

int main(int argc, char **argv) {
    if (argc < 2) {
        fputs(k_usage, stderr);
        return SK_EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(k_usage, stdout);
        return SK_EXIT_OK;
    }
    if (!strcmp(cmd, "generate")) return sk_cmd_generate(argc - 1, argv + 1);
    if (!strcmp(cmd, "logits")) return sk_cmd_logits(argc - 1, argv + 1);
    if (!strcmp(cmd, "tokenize")) return sk_cmd_tokenize(argc - 1, argv + 1);
    if (!strcmp(cmd, "info")) return sk_cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "perplexity")) return sk_cmd_perplexity(argc - 1, argv + 1);
    if (!strcmp(cmd, "bench")) return sk_cmd_bench(argc - 1, argv + 1);
    if (!strcmp(cmd, "quantize")) return sk_cmd_quantize(argc - 1, argv + 1);
    fprintf(stderr, "saker: unknown command '%s'\n\n%s", cmd, k_usage);
    return SK_EXIT_USAGE;
}
