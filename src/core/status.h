/* Two tiers of errors (STYLE.md 8):
 * - sk_fail(): bad input. Records a message for sk_last_error() and returns the status, so a
 *   function can `return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s': offset past end", path, name);`
 * - SK_ASSERT(): bugs. Prints the statement, function, file and line and aborts. */
#ifndef SK_STATUS_H
#define SK_STATUS_H

#include "saker/saker.h"
#include <stdio.h>
#include <stdlib.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(__GNUC__)
#define SK_PRINTF(a, b) __attribute__((format(printf, a, b)))
#else
#define SK_PRINTF(a, b)
#endif

sk_status sk_fail(sk_status code, const char *fmt, ...) SK_PRINTF(2, 3);
/* Prefixes the current message with "prefix: " (adds context on the way up). */
void sk_error_prefix(const char *fmt, ...) SK_PRINTF(1, 2);
void sk_clear_error(void);

#define SK_ASSERT(x)                                                                               \
    do {                                                                                           \
        if (!(x)) {                                                                                \
            fprintf(stderr, "saker: assertion failed: %s in %s at %s:%d\n", #x, __func__,          \
                    __FILE__, __LINE__);                                                           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

/* Propagates a failing status. */
#define SK_TRY(expr)                                                                               \
    do {                                                                                           \
        sk_status sk_try_s_ = (expr);                                                              \
        if (sk_try_s_ != SK_OK) return sk_try_s_;                                                  \
    } while (0)

/* Allocation that aborts on failure: for small bookkeeping only. Size-from-file allocations must
 * use malloc and return SK_ERR_NOMEM. */
void *sk_xmalloc(size_t n);
void *sk_xcalloc(size_t n, size_t size);
void *sk_xrealloc(void *p, size_t n);
char *sk_xstrdup(const char *s);
char *sk_xstrndup(const char *s, size_t n);

/* Logging to stderr. Level: 0 error, 1 warn, 2 info, 3 debug. Default 1; SAKER_LOG env sets it. */
void sk_log(int level, const char *fmt, ...) SK_PRINTF(2, 3);
void sk_log_set_level(int level);
#define SK_LOGE(...) sk_log(0, __VA_ARGS__)
#define SK_LOGW(...) sk_log(1, __VA_ARGS__)
#define SK_LOGI(...) sk_log(2, __VA_ARGS__)
#define SK_LOGD(...) sk_log(3, __VA_ARGS__)

/* Wall clock in seconds (monotonic). */
double sk_time(void);

#ifdef __cplusplus
}
#endif

#endif
