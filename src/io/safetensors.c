#include "io/safetensors.h"

#include "io/json_util.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

/* Every dtype of the safetensors format, with its size in bits; type is what Saker computes with
 * (SK_DTYPE_COUNT: known but not supported). */
static const struct {
    const char *name;
    int bits;
    sk_dtype type;
} k_st_dtypes[] = {
    {"F32", 32, SK_F32},
    {"F16", 16, SK_F16},
    {"BF16", 16, SK_BF16},
    {"F64", 64, SK_DTYPE_COUNT},
    {"I64", 64, SK_DTYPE_COUNT},
    {"U64", 64, SK_DTYPE_COUNT},
    {"I32", 32, SK_DTYPE_COUNT},
    {"U32", 32, SK_DTYPE_COUNT},
    {"I16", 16, SK_DTYPE_COUNT},
    {"U16", 16, SK_DTYPE_COUNT},
    {"I8", 8, SK_DTYPE_COUNT},
    {"U8", 8, SK_DTYPE_COUNT},
    {"BOOL", 8, SK_DTYPE_COUNT},
    {"F8_E4M3", 8, SK_DTYPE_COUNT},
    {"F8_E5M2", 8, SK_DTYPE_COUNT},
    {"F8_E8M0", 8, SK_DTYPE_COUNT},
    {"F6_E2M3", 6, SK_DTYPE_COUNT},
    {"F6_E3M2", 6, SK_DTYPE_COUNT},
    {"F4", 4, SK_DTYPE_COUNT},
    {"C64", 64, SK_DTYPE_COUNT},
};

static uint64_t rd_le64(const uint8_t *p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = (v << 8) | p[i];
    return v;
}

const sk_st_tensor *sk_st_find(const sk_st_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

sk_file sk_st_take_map(sk_st_file *f) {
    sk_file m = f->map;
    f->map.data = NULL;
    f->map.size = 0;
    return m;
}

void sk_st_close(sk_st_file *f) {
    for (int i = 0; i < f->n_tensors; i++) free(f->tensors[i].name);
    free(f->tensors);
    free(f->path);
    sk_file_unmap(&f->map);
    memset(f, 0, sizeof *f);
}

/* Reads a JSON integer >= 0 into *out; false when v is not one. */
static bool get_uint(const json_t *v, uint64_t *out) {
    if (!json_is_integer(v) || json_integer_value(v) < 0) return false;
    *out = (uint64_t)json_integer_value(v);
    return true;
}

/* Fills t from the header entry v of tensor `name`; ds = data buffer size. */
static sk_status parse_entry(const char *path, const char *name, const json_t *v,
                             const uint8_t *dbuf, uint64_t ds, sk_st_tensor *t) {
    if (!json_is_object(v))
        return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s': header entry is not an object", path, name);
    const json_t *jd = json_object_get(v, "dtype");
    if (!json_is_string(jd))
        return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s': missing string 'dtype'", path, name);
    const char *dn = json_string_value(jd);
    int bits = 0;
    t->type = SK_DTYPE_COUNT;
    for (size_t i = 0; i < sizeof k_st_dtypes / sizeof k_st_dtypes[0]; i++) {
        if (strcmp(dn, k_st_dtypes[i].name) == 0) {
            bits = k_st_dtypes[i].bits;
            t->type = k_st_dtypes[i].type;
            break;
        }
    }
    if (!bits)
        return sk_fail(SK_ERR_UNSUPPORTED, "%s: tensor '%s': unknown dtype '%.32s'", path, name,
                       dn);
    snprintf(t->dtype_name, sizeof t->dtype_name, "%s", dn);

    const json_t *js = json_object_get(v, "shape");
    if (!json_is_array(js))
        return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s': missing array 'shape'", path, name);
    size_t nd = json_array_size(js);
    if (nd > SK_MAX_DIMS)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: tensor '%s': shape has %zu dims (at most %d supported)", path, name, nd,
                       SK_MAX_DIMS);
    uint64_t nelem = 1;
    t->n_dims = (int)nd;
    for (size_t i = 0; i < nd; i++) {
        uint64_t d;
        if (!get_uint(json_array_get(js, i), &d))
            return sk_fail(SK_ERR_FORMAT,
                           "%s: tensor '%s': shape[%zu] is not a non-negative integer", path, name,
                           i);
        if (__builtin_mul_overflow(nelem, d, &nelem) || nelem > (uint64_t)INT64_MAX)
            return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s': element count overflows", path, name);
        t->shape[i] = (int64_t)d;
    }
    uint64_t nbits;
    if (__builtin_mul_overflow(nelem, (uint64_t)bits, &nbits) || nbits % 8 != 0)
        return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s': byte size overflows or is not whole", path,
                       name);

    const json_t *jo = json_object_get(v, "data_offsets");
    uint64_t b, e;
    if (!json_is_array(jo) || json_array_size(jo) != 2 || !get_uint(json_array_get(jo, 0), &b) ||
        !get_uint(json_array_get(jo, 1), &e))
        return sk_fail(SK_ERR_FORMAT,
                       "%s: tensor '%s': 'data_offsets' must be two non-negative integers", path,
                       name);
    if (b > e || e > ds)
        return sk_fail(
            SK_ERR_FORMAT,
            "%s: tensor '%s': data_offsets [%llu, %llu] outside the data buffer of %llu bytes",
            path, name, (unsigned long long)b, (unsigned long long)e, (unsigned long long)ds);
    if (e - b != nbits / 8)
        return sk_fail(
            SK_ERR_FORMAT,
            "%s: tensor '%s': data_offsets span %llu bytes but %llu elements of %s need %llu", path,
            name, (unsigned long long)(e - b), (unsigned long long)nelem, dn,
            (unsigned long long)(nbits / 8));
    t->data = dbuf + b;
    t->nbytes = (size_t)(e - b);
    return SK_OK;
}

sk_status sk_st_parse(const char *path, const uint8_t *data, size_t size, sk_st_file *f) {
    memset(f, 0, sizeof *f);
    if (size < 8)
        return sk_fail(SK_ERR_FORMAT, "%s: file of %zu bytes is too short for a safetensors header",
                       path, size);
    uint64_t n = rd_le64(data);
    if (n > SK_ST_MAX_HEADER)
        return sk_fail(SK_ERR_FORMAT, "%s: header length %llu exceeds the limit of %llu bytes",
                       path, (unsigned long long)n, SK_ST_MAX_HEADER);
    if (n > size - 8)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: header length %llu runs past the end of the file (%zu bytes)", path,
                       (unsigned long long)n, size);
    json_t *hdr = NULL;
    char what[512];
    snprintf(what, sizeof what, "%s: safetensors header", path);
    SK_TRY(sk_json_parse(what, (const char *)data + 8, (size_t)n, 0, &hdr));
    if (!json_is_object(hdr)) {
        json_decref(hdr);
        return sk_fail(SK_ERR_FORMAT, "%s: safetensors header is not a JSON object", path);
    }
    const uint8_t *dbuf = data + 8 + n;
    uint64_t ds = (uint64_t)size - 8 - n;
    sk_status s = SK_OK;
    f->path = sk_xstrdup(path);
    f->tensors = sk_xcalloc(json_object_size(hdr), sizeof(sk_st_tensor));
    const char *key;
    json_t *v;
    json_object_foreach(hdr, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        sk_st_tensor *t = &f->tensors[f->n_tensors];
        s = parse_entry(path, key, v, dbuf, ds, t);
        if (s != SK_OK) break;
        t->name = sk_xstrdup(key);
        f->n_tensors++;
    }
    json_decref(hdr);
    if (s != SK_OK) sk_st_close(f);
    return s;
}

sk_status sk_st_open(const char *path, sk_st_file *f) {
    memset(f, 0, sizeof *f);
    sk_file m;
    SK_TRY(sk_file_map(path, &m));
    sk_status s = sk_st_parse(path, m.data, m.size, f);
    if (s != SK_OK) {
        sk_file_unmap(&m);
        return s;
    }
    f->map = m;
    return SK_OK;
}

sk_status sk_st_write(const char *path, const sk_st_out *t, int n) {
    json_t *hdr = json_object();
    json_t *meta = json_object();
    json_object_set_new(meta, "format", json_string("pt"));
    json_object_set_new(hdr, "__metadata__", meta);
    uint64_t off = 0;
    sk_status s = SK_OK;
    for (int i = 0; i < n; i++) {
        int bits = 0;
        for (size_t k = 0; k < sizeof k_st_dtypes / sizeof k_st_dtypes[0]; k++)
            if (strcmp(k_st_dtypes[k].name, t[i].dtype) == 0) bits = k_st_dtypes[k].bits;
        uint64_t ne = 1;
        json_t *shape = json_array();
        for (int d = 0; d < t[i].n_dims; d++) {
            ne *= (uint64_t)t[i].shape[d];
            json_array_append_new(shape, json_integer(t[i].shape[d]));
        }
        if (!bits || t[i].n_dims < 0 || t[i].n_dims > SK_MAX_DIMS || ne * (uint64_t)bits / 8 != t[i].nbytes ||
            json_object_get(hdr, t[i].name)) {
            json_decref(shape);
            s = sk_fail(SK_ERR_ARG, "%s: tensor '%s' (%s, %zu bytes): bad description or duplicate name",
                        path, t[i].name, t[i].dtype, t[i].nbytes);
            goto done;
        }
        json_t *o = json_object();
        json_object_set_new(o, "dtype", json_string(t[i].dtype));
        json_object_set_new(o, "shape", shape);
        json_t *offs = json_array();
        json_array_append_new(offs, json_integer((json_int_t)off));
        json_array_append_new(offs, json_integer((json_int_t)(off + t[i].nbytes)));
        json_object_set_new(o, "data_offsets", offs);
        json_object_set_new(hdr, t[i].name, o);
        off += t[i].nbytes;
    }
    char *text = json_dumps(hdr, JSON_COMPACT | JSON_PRESERVE_ORDER);
    size_t hl = strlen(text), padded = (hl + 7) & ~(size_t)7;
    FILE *fp = fopen(path, "wb");
    if (!fp) {
        free(text);
        s = sk_fail(SK_ERR_IO, "%s: cannot create", path);
        goto done;
    }
    uint8_t len8[8];
    for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)padded >> (8 * i));
    bool ok = fwrite(len8, 1, 8, fp) == 8 && fwrite(text, 1, hl, fp) == hl;
    for (size_t i = hl; ok && i < padded; i++) ok = fputc(' ', fp) != EOF;
    for (int i = 0; ok && i < n; i++)
        ok = t[i].nbytes == 0 || fwrite(t[i].data, 1, t[i].nbytes, fp) == t[i].nbytes;
    if (fclose(fp) != 0) ok = false;
    free(text);
    if (!ok) s = sk_fail(SK_ERR_IO, "%s: write failed", path);
done:
    json_decref(hdr);
    return s;
}
