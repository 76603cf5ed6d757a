/* JSON helpers (jansson) for the loaders: loading with errors that name the file and jansson's
 * line/column/message, and typed getters for optional keys, where a missing key or a null value
 * means "take the default" and a value of the wrong type or out of range is SK_ERR_FORMAT naming
 * the file and the key. */
#ifndef SK_JSON_UTIL_H
#define SK_JSON_UTIL_H

#include "core/status.h"

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

/* Parses len bytes of buf. name (usually the path) prefixes error messages. flags are jansson's
 * decoding flags (e.g. JSON_ALLOW_NUL). On success *out is a new reference the caller decrefs. */
sk_status sk_json_parse(const char *name, const char *buf, size_t len, size_t flags, json_t **out);
/* Reads and parses a whole file; the top level must be an object. SK_ERR_IO when it cannot be
 * read, SK_ERR_FORMAT when it is not valid JSON (message: "path: invalid JSON at line L, column
 * C: text"). */
sk_status sk_json_load_file(const char *path, size_t flags, json_t **out);

/* obj[key] or NULL when obj is not an object, the key is missing or the value is null. */
json_t *sk_json_opt(const json_t *obj, const char *key);

/* Integer in [lo, hi] (a real with an integral value is accepted: Python writes 1e4 as 10000.0). */
sk_status sk_json_int(const json_t *obj, const char *key, int64_t def, int64_t lo, int64_t hi,
                      const char *path, int64_t *out);
/* Finite number (integer or real). */
sk_status sk_json_num(const json_t *obj, const char *key, double def, const char *path,
                      double *out);
sk_status sk_json_bool(const json_t *obj, const char *key, bool def, const char *path, bool *out);
/* String; *out points into the JSON tree (valid while it lives) or is def. */
sk_status sk_json_str(const json_t *obj, const char *key, const char *def, const char *path,
                      const char **out);

#endif
