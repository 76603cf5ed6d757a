#include "io/json_util.h"

#include "core/file.h"

#include <math.h>

sk_status sk_json_parse(const char *name, const char *buf, size_t len, size_t flags, json_t **out) {
    *out = NULL;
    json_error_t err;
    json_t *j = json_loadb(buf, len, flags, &err);
    if (!j)
        return sk_fail(SK_ERR_FORMAT, "%s: invalid JSON at line %d, column %d: %s", name, err.line,
                       err.column, err.text);
    *out = j;
    return SK_OK;
}

sk_status sk_json_load_file(const char *path, size_t flags, json_t **out) {
    *out = NULL;
    char *buf = NULL;
    size_t len = 0;
    SK_TRY(sk_file_read_all(path, &buf, &len));
    json_t *j = NULL;
    sk_status s = sk_json_parse(path, buf, len, flags, &j);
    free(buf);
    if (s != SK_OK) return s;
    if (!json_is_object(j)) {
        json_decref(j);
        return sk_fail(SK_ERR_FORMAT, "%s: the top level is not a JSON object", path);
    }
    *out = j;
    return SK_OK;
}

json_t *sk_json_opt(const json_t *obj, const char *key) {
    if (!json_is_object(obj)) return NULL;
    json_t *v = json_object_get(obj, key);
    return json_is_null(v) ? NULL : v;
}

sk_status sk_json_int(const json_t *obj, const char *key, int64_t def, int64_t lo, int64_t hi,
                      const char *path, int64_t *out) {
    json_t *v = sk_json_opt(obj, key);
    if (!v) {
        *out = def;
        return SK_OK;
    }
    int64_t x;
    if (json_is_integer(v)) {
        x = (int64_t)json_integer_value(v);
    } else if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d >= -9.0e18 && d <= 9.0e18) || d != floor(d))
            return sk_fail(SK_ERR_FORMAT, "%s: '%s' = %g is not an integer", path, key, d);
        x = (int64_t)d;
    } else {
        return sk_fail(SK_ERR_FORMAT, "%s: '%s' must be an integer", path, key);
    }
    if (x < lo || x > hi)
        return sk_fail(SK_ERR_FORMAT, "%s: '%s' = %lld is out of range [%lld, %lld]", path, key,
                       (long long)x, (long long)lo, (long long)hi);
    *out = x;
    return SK_OK;
}

sk_status sk_json_num(const json_t *obj, const char *key, double def, const char *path,
                      double *out) {
    json_t *v = sk_json_opt(obj, key);
    if (!v) {
        *out = def;
        return SK_OK;
    }
    if (!json_is_number(v)) return sk_fail(SK_ERR_FORMAT, "%s: '%s' must be a number", path, key);
    double d = json_number_value(v);
    if (!isfinite(d)) return sk_fail(SK_ERR_FORMAT, "%s: '%s' is not finite", path, key);
    *out = d;
    return SK_OK;
}

sk_status sk_json_bool(const json_t *obj, const char *key, bool def, const char *path, bool *out) {
    json_t *v = sk_json_opt(obj, key);
    if (!v) {
        *out = def;
        return SK_OK;
    }
    if (!json_is_boolean(v))
        return sk_fail(SK_ERR_FORMAT, "%s: '%s' must be true or false", path, key);
    *out = json_is_true(v);
    return SK_OK;
}

sk_status sk_json_str(const json_t *obj, const char *key, const char *def, const char *path,
                      const char **out) {
    json_t *v = sk_json_opt(obj, key);
    if (!v) {
        *out = def;
        return SK_OK;
    }
    if (!json_is_string(v)) return sk_fail(SK_ERR_FORMAT, "%s: '%s' must be a string", path, key);
    *out = json_string_value(v);
    return SK_OK;
}
