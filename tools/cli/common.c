#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

int sk_cli_usage_error(const char *cmd, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "saker%s%s: ", cmd ? " " : "", cmd ? cmd : "");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " (see 'saker %s--help')\n", cmd ? cmd : "");
    return SK_EXIT_USAGE;
}

int sk_cli_runtime_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "saker: error: ");
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return SK_EXIT_RUNTIME;
}

const char *sk_cli_value(int argc, char **argv, int *i) {
    if (*i + 1 >= argc) {
        fprintf(stderr, "saker: option %s needs a value\n", argv[*i]);
        return NULL;
    }
    return argv[++*i];
}

bool sk_cli_int(const char *opt, const char *v, long lo, long hi, long *out) {
    char *end;
    errno = 0;
    long x = strtol(v, &end, 10);
    if (errno || end == v || *end || x < lo || x > hi) {
        fprintf(stderr, "saker: %s: '%s' is not an integer in [%ld, %ld]\n", opt, v, lo, hi);
        return false;
    }
    *out = x;
    return true;
}

bool sk_cli_float(const char *opt, const char *v, double lo, double hi, double *out) {
    char *end;
    errno = 0;
    double x = strtod(v, &end);
    if (errno || end == v || *end || !(x >= lo && x <= hi)) {
        fprintf(stderr, "saker: %s: '%s' is not a number in [%g, %g]\n", opt, v, lo, hi);
        return false;
    }
    *out = x;
    return true;
}

int sk_cli_common_opt(sk_cli_common *c, int argc, char **argv, int *i) {
    const char *a = argv[*i], *v;
    long n;
    if (!strcmp(a, "-m") || !strcmp(a, "--model")) {
        if (!(v = sk_cli_value(argc, argv, i))) return -1;
        c->model = v;
    } else if (!strcmp(a, "--shape")) {
        if (!(v = sk_cli_value(argc, argv, i))) return -1;
        c->shape = v;
    } else if (!strcmp(a, "--tokenizer")) {
        if (!(v = sk_cli_value(argc, argv, i))) return -1;
        c->tokenizer = v;
    } else if (!strcmp(a, "--device")) {
        if (!(v = sk_cli_value(argc, argv, i))) return -1;
        if (!strcmp(v, "auto")) c->device = SK_DEVICE_AUTO;
        else if (!strcmp(v, "cpu")) c->device = SK_DEVICE_CPU;
        else if (!strcmp(v, "cuda")) c->device = SK_DEVICE_CUDA;
        else {
            fprintf(stderr, "saker: --device: '%s' is not one of auto, cpu, cuda\n", v);
            return -1;
        }
    } else if (!strcmp(a, "--dtype")) {
        if (!(v = sk_cli_value(argc, argv, i))) return -1;
        if (strcmp(v, "bf16") != 0 && strcmp(v, "fp16") != 0) {
            fprintf(stderr, "saker: --dtype: '%s' is not one of bf16, fp16\n", v);
            return -1;
        }
        c->dtype = v;
    } else if (!strcmp(a, "--weights")) {
        if (!(v = sk_cli_value(argc, argv, i))) return -1;
        if (strcmp(v, "int4") != 0 && strcmp(v, "half") != 0) {
            fprintf(stderr, "saker: --weights: '%s' is not one of half, int4\n", v);
            return -1;
        }
        c->weights = v;
    } else if (!strcmp(a, "-t") || !strcmp(a, "--threads")) {
        if (!(v = sk_cli_value(argc, argv, i)) || !sk_cli_int(a, v, 0, 4096, &n)) return -1;
        c->threads = (int)n;
    } else {
        return 0;
    }
    return 1;
}

sk_model *sk_cli_open_model(const sk_cli_common *c) {
    if (c->model && c->shape) {
        sk_cli_usage_error(NULL, "give -m MODEL or --shape NAME, not both");
        return NULL;
    }
    sk_model_params p;
    sk_model_params_default(&p);
    p.tokenizer_path = c->tokenizer;
    p.device = c->device;
    p.n_threads = c->threads;
    p.cuda_dtype = c->dtype;
    p.shape_weights = c->weights;
    sk_model *m = NULL;
    double t0 = sk_time_now();
    sk_status s = c->shape ? sk_model_open_shape(c->shape, &p, &m) : sk_model_open(c->model, &p, &m);
    if (s != SK_OK) {
        sk_cli_runtime_error("%s", sk_last_error()[0] ? sk_last_error() : sk_status_name(s));
        return NULL;
    }
    fprintf(stderr, "saker: loaded %s in %.2f s\n", c->shape ? c->shape : c->model, sk_time_now() - t0);
    return m;
}
