/* saker quantize: INT4 weight quantization (AWQ or RTN) of a model into an AutoAWQ GEMM
 * Hugging Face directory (see src/quant/quant.h). */
#include "cli.h"

#include "quant/quant.h"

#include <string.h>

static const char k_help[] =
    "usage: saker quantize -m MODEL --method awq|rtn -o OUTDIR [options]\n"
    "\n"
    "Quantizes every Linear of every layer to 4-bit groups with zero points (asymmetric) and\n"
    "writes an AutoAWQ GEMM checkpoint (qweight/qzeros/scales, quantization_config in\n"
    "config.json) that `saker` and AutoAWQ-compatible loaders read. The AWQ search runs on the\n"
    "GPU when there is one (activations and weights in device memory, fp32 matmuls), else on\n"
    "the CPU (the fp32 reference); RTN runs on the CPU. Progress: one line per layer.\n"
    "\n"
    "  -m, --model PATH       .gguf, llama2.c .bin (with --tokenizer) or HF directory\n"
    "      --tokenizer FILE   llama2.c tokenizer (tok*.bin)\n"
    "      --method M         awq (default) or rtn (round to nearest)\n"
    "      --bits N           4 (the only width supported)\n"
    "      --group N          128 (default), 64 or 32; the largest of these that divides every\n"
    "                         Linear's input width is used (Linears whose width is not a\n"
    "                         multiple of 32 stay f16)\n"
    "      --calib FILE       AWQ calibration text (default: ../shared/data/tinystories/\n"
    "                         tinystories_val.txt); its last samples x len tokens are used\n"
    "      --calib-samples N  calibration sequences (default 32)\n"
    "      --calib-len N      tokens per sequence (default 256)\n"
    "      --grid N           AWQ scale-exponent grid points in [0, 1) (default 20)\n"
    "      --duo              AWQ scales mean|x|^a / mean|w|^(1-a) (AutoAWQ's duo_scaling)\n"
    "                         instead of the paper's mean|x|^a\n"
    "      --device D         auto (default: cuda when usable), cpu or cuda\n"
    "      --tf32             CUDA: the search's matmuls on TF32 tensor cores (faster, inputs\n"
    "                         rounded to 10 mantissa bits) instead of fp32\n"
    "  -t, --threads N        CPU threads (default: all cores)\n"
    "  -o, --output DIR       the directory to write (created)\n";

#define DEFAULT_CALIB "../shared/data/tinystories/tinystories_val.txt"

int sk_cmd_quantize(int argc, char **argv) {
    sk_quant_params p;
    sk_quant_params_default(&p);
    p.progress = true;
    p.device = SK_QUANT_DEV_AUTO;
    const char *method = "awq";
    long v;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *val;
        if (!strcmp(a, "-h") || !strcmp(a, "--help")) {
            fputs(k_help, stdout);
            return SK_EXIT_OK;
        }
        if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
            if (!(p.model = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--tokenizer")) {
            if (!(p.tokenizer = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--method")) {
            if (!(method = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "-o") || !strcmp(a, "--output")) {
            if (!(p.out_dir = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--duo")) {
            p.duo = true;
        } else if (!strcmp(a, "--tf32")) {
            p.tf32 = true;
        } else if (!strcmp(a, "--device")) {
            if (!(val = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
            if (!strcmp(val, "auto")) p.device = SK_QUANT_DEV_AUTO;
            else if (!strcmp(val, "cpu")) p.device = SK_QUANT_DEV_CPU;
            else if (!strcmp(val, "cuda")) p.device = SK_QUANT_DEV_CUDA;
            else return sk_cli_usage_error("quantize", "--device: '%s' is not one of auto, cpu, cuda", val);
        } else if (!strcmp(a, "--calib")) {
            if (!(p.calib = sk_cli_value(argc, argv, &i))) return SK_EXIT_USAGE;
        } else if (!strcmp(a, "--bits") || !strcmp(a, "--group") || !strcmp(a, "--calib-samples") ||
                   !strcmp(a, "--calib-len") || !strcmp(a, "--grid") || !strcmp(a, "-t") ||
                   !strcmp(a, "--threads")) {
            if (!(val = sk_cli_value(argc, argv, &i)) || !sk_cli_int(a, val, 0, 1 << 20, &v))
                return SK_EXIT_USAGE;
            if (!strcmp(a, "--bits")) p.bits = (int)v;
            else if (!strcmp(a, "--group")) p.group = (int)v;
            else if (!strcmp(a, "--calib-samples")) p.calib_samples = (int)v;
            else if (!strcmp(a, "--calib-len")) p.calib_len = (int)v;
            else if (!strcmp(a, "--grid")) p.n_grid = (int)v;
            else p.n_threads = (int)v;
        } else {
            return sk_cli_usage_error("quantize", "unknown option '%s'", a);
        }
    }
    if (!p.model) return sk_cli_usage_error("quantize", "-m MODEL is required");
    if (!p.out_dir) return sk_cli_usage_error("quantize", "-o OUTDIR is required");
    if (!strcmp(method, "awq")) p.method = SK_QUANT_AWQ;
    else if (!strcmp(method, "rtn")) p.method = SK_QUANT_RTN;
    else return sk_cli_usage_error("quantize", "--method: '%s' is not awq or rtn", method);
    if (p.bits != 4) return sk_cli_usage_error("quantize", "--bits %d: only 4 is supported", p.bits);
    if (p.group != 32 && p.group != 64 && p.group != 128)
        return sk_cli_usage_error("quantize", "--group %d: not 32, 64 or 128", p.group);
    if (p.calib_samples < 1 || p.calib_len < 2 || p.n_grid < 1)
        return sk_cli_usage_error("quantize", "--calib-samples, --calib-len and --grid must be positive");
    if (p.method == SK_QUANT_AWQ && !p.calib) p.calib = DEFAULT_CALIB;
    double t0 = sk_time_now();
    sk_status s = sk_quantize(&p);
    if (s != SK_OK) return sk_cli_runtime_error("%s", sk_last_error()[0] ? sk_last_error() : sk_status_name(s));
    fprintf(stderr, "saker: wrote %s (%s on %s) in %.1f s\n", p.out_dir, method,
            sk_quant_last_stats()->device, sk_time_now() - t0);
    return SK_EXIT_OK;
}
