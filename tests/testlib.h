/* Minimal test harness: CHECK records a failure and continues; tests return sk_test_done(). */
#ifndef SK_TESTLIB_H
#define SK_TESTLIB_H

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern int sk_test_failures;
extern int sk_test_checks;

#define CHECK(cond)                                                                                \
    do {                                                                                           \
        sk_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            sk_test_failures++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);                        \
        }                                                                                          \
    } while (0)

#define CHECKF(cond, ...)                                                                          \
    do {                                                                                           \
        sk_test_checks++;                                                                          \
        if (!(cond)) {                                                                             \
            sk_test_failures++;                                                                    \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);                        \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fputc('\n', stderr);                                                               \
        }                                                                                          \
    } while (0)

/* Returns getenv(name) or aborts the test run with a clear message (missing data is a failure,
 * never a skip). */
const char *sk_test_env(const char *name);
/* path = getenv(env) + "/" + rel, in a static rotating buffer. */
const char *sk_test_path(const char *env, const char *rel);
/* Fills x[n] with uniform values in [lo, hi) from a fixed-seed generator (never all zeros). */
void sk_test_rand(float *x, long n, float lo, float hi, unsigned long long *state);
/* max |a-b| / max(max|b|, tiny) : normalised error. */
double sk_test_rel_err(const float *a, const float *b, long n);
/* Prints a summary and returns the process exit code. */
int sk_test_done(const char *name);

#endif
