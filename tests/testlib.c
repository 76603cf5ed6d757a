#include "testlib.h"

int sk_test_failures = 0;
int sk_test_checks = 0;

const char *sk_test_env(const char *name) {
    const char *v = getenv(name);
    if (!v || !*v) {
        fprintf(stderr, "FAIL: environment variable %s is not set (run through ctest)\n", name);
        exit(1);
    }
    return v;
}

const char *sk_test_path(const char *env, const char *rel) {
    static char bufs[8][4096];
    static int i = 0;
    char *b = bufs[i++ & 7];
    snprintf(b, sizeof bufs[0], "%s/%s", sk_test_env(env), rel);
    return b;
}

void sk_test_rand(float *x, long n, float lo, float hi, unsigned long long *state) {
    for (long i = 0; i < n; i++) {
        *state ^= *state << 13;
        *state ^= *state >> 7;
        *state ^= *state << 17;
        float u = (float)((*state >> 40) & 0xffffff) / 16777216.0f;
        x[i] = lo + (hi - lo) * u;
    }
}

double sk_test_rel_err(const float *a, const float *b, long n) {
    double maxd = 0, maxb = 0;
    for (long i = 0; i < n; i++) {
        double d = fabs((double)a[i] - (double)b[i]);
        if (d > maxd || d != d) maxd = d != d ? INFINITY : d;
        if (fabs(b[i]) > maxb) maxb = fabs(b[i]);
    }
    return maxd / (maxb > 1e-30 ? maxb : 1e-30);
}

int sk_test_done(const char *name) {
    printf("%s: %d checks, %d failures\n", name, sk_test_checks, sk_test_failures);
    return sk_test_failures ? 1 : 0;
}
