#define _POSIX_C_SOURCE 200809L
#include "core/status.h"

#include <stdarg.h>
#include <string.h>
#include <time.h>

static _Thread_local char g_err[1024];
static int g_log_level = -1;

const char *sk_status_name(sk_status s) {
    switch (s) {
    case SK_OK: return "ok";
    case SK_ERR_ARG: return "bad argument";
    case SK_ERR_IO: return "i/o error";
    case SK_ERR_FORMAT: return "malformed file";
    case SK_ERR_UNSUPPORTED: return "unsupported";
    case SK_ERR_NOMEM: return "out of memory";
    case SK_ERR_CONTEXT: return "context full";
    case SK_ERR_DEVICE: return "device unavailable";
    }
    return "unknown status";
}

const char *sk_last_error(void) { return g_err; }
void sk_clear_error(void) { g_err[0] = 0; }

sk_status sk_fail(sk_status code, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return code;
}

void sk_error_prefix(const char *fmt, ...) {
    char pre[512], old[sizeof g_err];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    memcpy(old, g_err, sizeof old);
    if (snprintf(g_err, sizeof g_err, "%s: %s", pre, old) < 0) g_err[0] = 0;
}

static void oom(size_t n) {
    fprintf(stderr, "saker: out of memory allocating %zu bytes\n", n);
    abort();
}
void *sk_xmalloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}
void *sk_xcalloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}
void *sk_xrealloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}
char *sk_xstrdup(const char *s) { return sk_xstrndup(s, strlen(s)); }
char *sk_xstrndup(const char *s, size_t n) {
    char *p = sk_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void sk_log_set_level(int level) { g_log_level = level; }

void sk_log(int level, const char *fmt, ...) {
    if (g_log_level < 0) {
        const char *e = getenv("SAKER_LOG");
        g_log_level = e ? atoi(e) : 1;
    }
    if (level > g_log_level) return;
    static const char *names[] = {"error", "warn", "info", "debug"};
    fprintf(stderr, "saker %s: ", names[level < 0 ? 0 : level > 3 ? 3 : level]);
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

double sk_time(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

double sk_time_now(void) { return sk_time(); }
