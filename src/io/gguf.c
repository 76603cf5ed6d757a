#include "io/gguf.h"

#include <inttypes.h>
#include <math.h>
#include <string.h>

/* ---------------------------------------------------------------------------------------------
 * ggml types: every type id GGML has used, with its block (elements) and block size in bytes;
 * block 0 marks ids GGML has removed (their size is unknown to us). dtype: what Saker computes
 * with, SK_DTYPE_COUNT for the rest. */
static const struct {
    const char *name;
    int block;
    int bytes;
    sk_dtype dtype;
} k_ggml_types[] = {
    [0] = {"F32", 1, 4, SK_F32},
    [1] = {"F16", 1, 2, SK_F16},
    [2] = {"Q4_0", 32, 18, SK_Q4_0},
    [3] = {"Q4_1", 32, 20, SK_Q4_1},
    [4] = {"Q4_2", 0, 0, SK_DTYPE_COUNT},
    [5] = {"Q4_3", 0, 0, SK_DTYPE_COUNT},
    [6] = {"Q5_0", 32, 22, SK_DTYPE_COUNT},
    [7] = {"Q5_1", 32, 24, SK_DTYPE_COUNT},
    [8] = {"Q8_0", 32, 34, SK_Q8_0},
    [9] = {"Q8_1", 32, 36, SK_DTYPE_COUNT},
    [10] = {"Q2_K", 256, 84, SK_DTYPE_COUNT},
    [11] = {"Q3_K", 256, 110, SK_DTYPE_COUNT},
    [12] = {"Q4_K", 256, 144, SK_DTYPE_COUNT},
    [13] = {"Q5_K", 256, 176, SK_DTYPE_COUNT},
    [14] = {"Q6_K", 256, 210, SK_DTYPE_COUNT},
    [15] = {"Q8_K", 256, 292, SK_DTYPE_COUNT},
    [16] = {"IQ2_XXS", 256, 66, SK_DTYPE_COUNT},
    [17] = {"IQ2_XS", 256, 74, SK_DTYPE_COUNT},
    [18] = {"IQ3_XXS", 256, 98, SK_DTYPE_COUNT},
    [19] = {"IQ1_S", 256, 50, SK_DTYPE_COUNT},
    [20] = {"IQ4_NL", 32, 18, SK_DTYPE_COUNT},
    [21] = {"IQ3_S", 256, 110, SK_DTYPE_COUNT},
    [22] = {"IQ2_S", 256, 82, SK_DTYPE_COUNT},
    [23] = {"IQ4_XS", 256, 136, SK_DTYPE_COUNT},
    [24] = {"I8", 1, 1, SK_DTYPE_COUNT},
    [25] = {"I16", 1, 2, SK_DTYPE_COUNT},
    [26] = {"I32", 1, 4, SK_I32},
    [27] = {"I64", 1, 8, SK_DTYPE_COUNT},
    [28] = {"F64", 1, 8, SK_DTYPE_COUNT},
    [29] = {"IQ1_M", 256, 56, SK_DTYPE_COUNT},
    [30] = {"BF16", 1, 2, SK_BF16},
    [31] = {"Q4_0_4_4", 0, 0, SK_DTYPE_COUNT},
    [32] = {"Q4_0_4_8", 0, 0, SK_DTYPE_COUNT},
    [33] = {"Q4_0_8_8", 0, 0, SK_DTYPE_COUNT},
    [34] = {"TQ1_0", 256, 54, SK_DTYPE_COUNT},
    [35] = {"TQ2_0", 256, 66, SK_DTYPE_COUNT},
    [36] = {"IQ4_NL_4_4", 0, 0, SK_DTYPE_COUNT},
    [37] = {"IQ4_NL_4_8", 0, 0, SK_DTYPE_COUNT},
    [38] = {"IQ4_NL_8_8", 0, 0, SK_DTYPE_COUNT},
    [39] = {"MXFP4", 32, 17, SK_DTYPE_COUNT},
    [40] = {"NVFP4", 64, 36, SK_DTYPE_COUNT},
    [41] = {"Q1_0", 128, 18, SK_DTYPE_COUNT},
};
#define N_GGML_TYPES (sizeof k_ggml_types / sizeof k_ggml_types[0])

const char *sk_gguf_type_name(uint32_t t) { return t < N_GGML_TYPES ? k_ggml_types[t].name : NULL; }

static const char *const k_vtype_names[SK_GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};
static const uint8_t k_vtype_size[SK_GGUF_VTYPE_COUNT] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *sk_gguf_vtype_name(sk_gguf_vtype t) {
    return (unsigned)t < SK_GGUF_VTYPE_COUNT ? k_vtype_names[t] : "?";
}
size_t sk_gguf_vtype_size(sk_gguf_vtype t) {
    return (unsigned)t < SK_GGUF_VTYPE_COUNT ? k_vtype_size[t] : 0;
}

static bool is_int_vtype(sk_gguf_vtype t) {
    return t <= SK_GGUF_I32 || t == SK_GGUF_U64 || t == SK_GGUF_I64;
}

static uint32_t rd32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t rd64(const uint8_t *p) { return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32; }

/* Decodes a scalar integer value of integer type t. */
static int64_t dec_int(sk_gguf_vtype t, const uint8_t *p, bool *too_big) {
    *too_big = false;
    switch (t) {
    case SK_GGUF_U8: return p[0];
    case SK_GGUF_I8: return (int8_t)p[0];
    case SK_GGUF_U16: return (uint16_t)(p[0] | p[1] << 8);
    case SK_GGUF_I16: return (int16_t)(uint16_t)(p[0] | p[1] << 8);
    case SK_GGUF_U32: return rd32(p);
    case SK_GGUF_I32: return (int32_t)rd32(p);
    case SK_GGUF_U64: {
        uint64_t v = rd64(p);
        if (v > (uint64_t)INT64_MAX) *too_big = true;
        return (int64_t)(v & (uint64_t)INT64_MAX);
    }
    case SK_GGUF_I64: return (int64_t)rd64(p);
    default: SK_ASSERT(!"not an integer type");
    }
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * Parsing. A cursor over the image; every read is checked against the bytes that remain. */
typedef struct cursor {
    const char *path;
    const uint8_t *data;
    size_t size;
    size_t off;
    char what[160]; /* the item being read, for messages: "key 'x'", "tensor #3 'y'" */
} cursor;

static size_t left(const cursor *c) { return c->size - c->off; }

static sk_status truncated(const cursor *c, uint64_t need) {
    return sk_fail(SK_ERR_FORMAT,
                   "%s: %s: file truncated: %" PRIu64 " bytes needed at offset %zu but the file "
                   "has %zu bytes",
                   c->path, c->what, need, c->off, c->size);
}

/* The readers set their output on failure too (to 0), so no caller sees an indeterminate value. */
static sk_status rd_u32(cursor *c, uint32_t *v) {
    *v = 0;
    if (left(c) < 4) return truncated(c, 4);
    *v = rd32(c->data + c->off);
    c->off += 4;
    return SK_OK;
}

static sk_status rd_u64(cursor *c, uint64_t *v) {
    *v = 0;
    if (left(c) < 8) return truncated(c, 8);
    *v = rd64(c->data + c->off);
    c->off += 8;
    return SK_OK;
}

static sk_status rd_str(cursor *c, sk_gguf_str *s) {
    s->ptr = NULL;
    s->len = 0;
    uint64_t n;
    SK_TRY(rd_u64(c, &n));
    if (n > left(c))
        return sk_fail(SK_ERR_FORMAT,
                       "%s: %s: string length %" PRIu64 " at offset %zu runs past the end of the "
                       "file (%zu bytes)",
                       c->path, c->what, n, c->off - 8, c->size);
    s->ptr = (const char *)c->data + c->off;
    s->len = n;
    c->off += (size_t)n;
    return SK_OK;
}

/* Skips a value of type t (validating arrays down to SK_GGUF_MAX_ARRAY_DEPTH). For an array,
 * *et and *n receive its element type and count. */
static sk_status skip_value(cursor *c, sk_gguf_vtype t, int depth, sk_gguf_vtype *et, uint64_t *n) {
    if ((unsigned)t >= SK_GGUF_VTYPE_COUNT)
        return sk_fail(SK_ERR_FORMAT, "%s: %s: unknown value type %u", c->path, c->what,
                       (unsigned)t);
    if (t == SK_GGUF_STRING) {
        sk_gguf_str s;
        return rd_str(c, &s);
    }
    if (t != SK_GGUF_ARRAY) {
        if (left(c) < k_vtype_size[t]) return truncated(c, k_vtype_size[t]);
        c->off += k_vtype_size[t];
        return SK_OK;
    }
    if (depth >= SK_GGUF_MAX_ARRAY_DEPTH)
        return sk_fail(SK_ERR_FORMAT, "%s: %s: arrays nested deeper than %d levels", c->path,
                       c->what, SK_GGUF_MAX_ARRAY_DEPTH);
    uint32_t at;
    uint64_t cnt;
    SK_TRY(rd_u32(c, &at));
    SK_TRY(rd_u64(c, &cnt));
    if (at >= SK_GGUF_VTYPE_COUNT)
        return sk_fail(SK_ERR_FORMAT, "%s: %s: array of unknown value type %u", c->path, c->what,
                       at);
    if (et) *et = (sk_gguf_vtype)at;
    if (n) *n = cnt;
    /* Smallest encoding of one element: its fixed size, a string's length, an array's header. */
    size_t min = at == SK_GGUF_STRING ? 8 : at == SK_GGUF_ARRAY ? 12 : k_vtype_size[at];
    if (cnt > left(c) / min)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: %s: array of %" PRIu64 " %s elements at offset %zu cannot fit in the "
                       "file (%zu bytes)",
                       c->path, c->what, cnt, k_vtype_names[at], c->off - 12, c->size);
    if (at != SK_GGUF_STRING && at != SK_GGUF_ARRAY) {
        c->off += (size_t)cnt * min;
        return SK_OK;
    }
    for (uint64_t i = 0; i < cnt; i++)
        SK_TRY(skip_value(c, (sk_gguf_vtype)at, depth + 1, NULL, NULL));
    return SK_OK;
}

static void set_what_key(cursor *c, sk_gguf_str key) {
    int n = key.len > 100 ? 100 : (int)key.len;
    snprintf(c->what, sizeof c->what, "key '%.*s'", n, key.ptr);
}

static void set_what_tensor(cursor *c, uint64_t i, const char *name) {
    if (name)
        snprintf(c->what, sizeof c->what, "tensor '%s'", name);
    else
        snprintf(c->what, sizeof c->what, "tensor #%" PRIu64, i);
}

static bool key_eq(sk_gguf_str k, const char *s) {
    size_t n = strlen(s);
    return k.len == n && memcmp(k.ptr, s, n) == 0;
}

static int cmp_str(const sk_gguf_str *a, const sk_gguf_str *b) {
    size_t n = a->len < b->len ? (size_t)a->len : (size_t)b->len;
    int r = n ? memcmp(a->ptr, b->ptr, n) : 0;
    if (r) return r;
    return a->len < b->len ? -1 : a->len > b->len;
}
static int cmp_kv_ptr(const void *a, const void *b) {
    return cmp_str(&(*(const sk_gguf_kv *const *)a)->key, &(*(const sk_gguf_kv *const *)b)->key);
}
static int cmp_tensor_ptr(const void *a, const void *b) {
    return strcmp((*(const sk_gguf_tensor *const *)a)->name,
                  (*(const sk_gguf_tensor *const *)b)->name);
}

/* Duplicate keys and tensor names are errors (as in GGML): O(n log n) by sorting pointers. */
static sk_status check_duplicates(const char *path, sk_gguf_file *f) {
    sk_status s = SK_OK;
    size_t n = (size_t)(f->n_kv > f->n_tensors ? f->n_kv : f->n_tensors);
    if (n < 2) return SK_OK;
    void **p = malloc(n * sizeof *p);
    if (!p) return sk_fail(SK_ERR_NOMEM, "%s: out of memory", path);
    for (int i = 0; i < f->n_kv; i++) p[i] = &f->kv[i];
    qsort(p, (size_t)f->n_kv, sizeof *p, cmp_kv_ptr);
    for (int i = 1; i < f->n_kv && !s; i++) {
        const sk_gguf_kv *a = p[i - 1], *b = p[i];
        if (cmp_str(&a->key, &b->key) == 0)
            s = sk_fail(SK_ERR_FORMAT, "%s: key '%.*s' appears more than once", path,
                        (int)(a->key.len > 100 ? 100 : a->key.len), a->key.ptr);
    }
    for (int i = 0; i < f->n_tensors && !s; i++) p[i] = &f->tensors[i];
    if (!s) qsort(p, (size_t)f->n_tensors, sizeof *p, cmp_tensor_ptr);
    for (int i = 1; i < f->n_tensors && !s; i++) {
        const sk_gguf_tensor *a = p[i - 1], *b = p[i];
        if (strcmp(a->name, b->name) == 0)
            s = sk_fail(SK_ERR_FORMAT, "%s: tensor '%s' appears more than once", path, a->name);
    }
    free(p);
    return s;
}

static sk_status parse_header(cursor *c, sk_gguf_file *f, uint64_t *n_tensors, uint64_t *n_kv) {
    snprintf(c->what, sizeof c->what, "header");
    if (c->size < 4 || memcmp(c->data, "GGUF", 4) != 0)
        return sk_fail(SK_ERR_FORMAT, "%s: not a GGUF file (no \"GGUF\" magic)", c->path);
    c->off = 4;
    SK_TRY(rd_u32(c, &f->version));
    if (f->version != 2 && f->version != 3) {
        if (f->version >= 0x10000 && (f->version & 0xffff) == 0)
            return sk_fail(SK_ERR_UNSUPPORTED,
                           "%s: big-endian GGUF (version field 0x%08x) is not supported", c->path,
                           f->version);
        if (f->version == 1)
            return sk_fail(SK_ERR_UNSUPPORTED,
                           "%s: GGUF version 1 is not supported (only versions 2 and 3); "
                           "convert the model again with a current llama.cpp",
                           c->path);
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: GGUF version %u is not supported (only versions 2 and 3)", c->path,
                       f->version);
    }
    SK_TRY(rd_u64(c, n_tensors));
    SK_TRY(rd_u64(c, n_kv));
    /* Smallest encodings: a key/value is 8 (key length) + 4 (type) + 1 bytes; a tensor info is
     * 8 (name length) + 4 (n_dims) + 8 (one dim) + 4 (type) + 8 (offset) bytes. */
    if (*n_kv > left(c) / 13 || *n_kv > INT32_MAX)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: header: %" PRIu64 " key/value pairs cannot fit in a file of %zu bytes",
                       c->path, *n_kv, c->size);
    if (*n_tensors > left(c) / 32 || *n_tensors > INT32_MAX ||
        *n_kv * 13 + *n_tensors * 32 > left(c))
        return sk_fail(SK_ERR_FORMAT,
                       "%s: header: %" PRIu64 " tensors and %" PRIu64
                       " key/value pairs cannot fit in a file of %zu bytes",
                       c->path, *n_tensors, *n_kv, c->size);
    return SK_OK;
}

static sk_status parse_kvs(cursor *c, sk_gguf_file *f, uint64_t n_kv) {
    f->kv = calloc(n_kv ? (size_t)n_kv : 1, sizeof *f->kv);
    if (!f->kv)
        return sk_fail(SK_ERR_NOMEM, "%s: out of memory for %" PRIu64 " keys", c->path, n_kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        sk_gguf_kv *kv = &f->kv[i];
        snprintf(c->what, sizeof c->what, "key/value #%" PRIu64, i);
        SK_TRY(rd_str(c, &kv->key));
        set_what_key(c, kv->key);
        uint32_t t;
        SK_TRY(rd_u32(c, &t));
        kv->type = (sk_gguf_vtype)t;
        size_t start = c->off;
        SK_TRY(skip_value(c, kv->type, 0, &kv->arr_type, &kv->arr_n));
        kv->value = c->data + start + (t == SK_GGUF_ARRAY ? 12 : 0);
        f->n_kv++;
    }
    f->alignment = SK_GGUF_DEFAULT_ALIGNMENT;
    const sk_gguf_kv *a = sk_gguf_find_kv(f, "general.alignment");
    if (a) {
        if (a->type != SK_GGUF_U32)
            return sk_fail(SK_ERR_FORMAT, "%s: key 'general.alignment' has type %s, expected u32",
                           c->path, sk_gguf_vtype_name(a->type));
        uint32_t al = rd32(a->value);
        if (al == 0 || (al & (al - 1)) != 0)
            return sk_fail(SK_ERR_FORMAT, "%s: key 'general.alignment' = %u is not a power of two",
                           c->path, al);
        f->alignment = al;
    }
    return SK_OK;
}

static sk_status parse_tensor_info(cursor *c, uint64_t i, sk_gguf_tensor *t) {
    set_what_tensor(c, i, NULL);
    sk_gguf_str name;
    SK_TRY(rd_str(c, &name));
    if (name.len >= SK_NAME_MAX)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: tensor #%" PRIu64 ": name of %" PRIu64
                       " bytes is too long (at most %d)",
                       c->path, i, name.len, SK_NAME_MAX - 1);
    if (memchr(name.ptr, 0, (size_t)name.len))
        return sk_fail(SK_ERR_FORMAT, "%s: tensor #%" PRIu64 ": name contains a NUL byte", c->path,
                       i);
    memcpy(t->name, name.ptr, (size_t)name.len);
    t->name[name.len] = 0;
    set_what_tensor(c, i, t->name);

    uint32_t nd;
    SK_TRY(rd_u32(c, &nd));
    if (nd < 1 || nd > SK_MAX_DIMS)
        return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s': n_dims = %u (must be 1 to %d)", c->path,
                       t->name, nd, SK_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t nelem = 1;
    for (uint32_t d = 0; d < nd; d++) {
        uint64_t ne;
        SK_TRY(rd_u64(c, &ne));
        if (ne > (uint64_t)INT64_MAX || __builtin_mul_overflow(nelem, ne, &nelem) ||
            nelem > (uint64_t)INT64_MAX)
            return sk_fail(SK_ERR_FORMAT,
                           "%s: tensor '%s': dim %u = %" PRIu64 " makes the element count overflow",
                           c->path, t->name, d, ne);
        t->ne[d] = (int64_t)ne;
    }
    SK_TRY(rd_u32(c, &t->ggml_type));
    SK_TRY(rd_u64(c, &t->offset));

    uint32_t ty = t->ggml_type;
    if (ty >= N_GGML_TYPES)
        return sk_fail(SK_ERR_UNSUPPORTED, "%s: tensor '%s' has unknown ggml type %u", c->path,
                       t->name, ty);
    if (k_ggml_types[ty].block == 0)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: tensor '%s' has type %s (type %u), which GGML no longer supports",
                       c->path, t->name, k_ggml_types[ty].name, ty);
    t->type = k_ggml_types[ty].dtype;
    uint64_t blk = (uint64_t)k_ggml_types[ty].block;
    if ((uint64_t)t->ne[0] % blk != 0)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: tensor '%s': row of %" PRId64 " elements is not a multiple of the %s "
                       "block of %" PRIu64,
                       c->path, t->name, t->ne[0], k_ggml_types[ty].name, blk);
    if (__builtin_mul_overflow(nelem / blk, (uint64_t)k_ggml_types[ty].bytes, &t->nbytes))
        return sk_fail(SK_ERR_FORMAT, "%s: tensor '%s': byte size overflows", c->path, t->name);
    return SK_OK;
}

sk_status sk_gguf_parse(const char *path, const uint8_t *data, size_t size, sk_gguf_file *f) {
    memset(f, 0, sizeof *f);
    cursor c = {.path = path, .data = data, .size = size, .off = 0};
    uint64_t n_tensors = 0, n_kv = 0;
    f->path = sk_xstrdup(path);
    sk_status s = parse_header(&c, f, &n_tensors, &n_kv);
    if (!s) s = parse_kvs(&c, f, n_kv);
    if (!s) {
        f->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *f->tensors);
        if (!f->tensors)
            s = sk_fail(SK_ERR_NOMEM, "%s: out of memory for %" PRIu64 " tensors", path, n_tensors);
    }
    for (uint64_t i = 0; !s && i < n_tensors; i++) {
        s = parse_tensor_info(&c, i, &f->tensors[i]);
        if (!s) f->n_tensors++;
    }
    if (!s) {
        /* The data section starts at the next multiple of the alignment (c.off <= size < 2^63). */
        uint64_t al = f->alignment;
        f->data_offset = ((uint64_t)c.off + al - 1) / al * al;
        for (int i = 0; !s && i < f->n_tensors; i++) {
            sk_gguf_tensor *t = &f->tensors[i];
            if (t->offset % al != 0) {
                s = sk_fail(SK_ERR_FORMAT,
                            "%s: tensor '%s': offset %" PRIu64 " is not a multiple of the "
                            "alignment %" PRIu64,
                            path, t->name, t->offset, al);
            } else if (f->data_offset > size || t->offset > size - f->data_offset ||
                       t->nbytes > size - f->data_offset - t->offset) {
                s = sk_fail(SK_ERR_FORMAT,
                            "%s: tensor '%s': %" PRIu64 " bytes at offset %" PRIu64
                            " of the data section (which starts at file offset %" PRIu64
                            ") run past the end of the file (%zu bytes)",
                            path, t->name, t->nbytes, t->offset, f->data_offset, size);
            } else {
                t->data = data + f->data_offset + t->offset;
            }
        }
    }
    if (!s) s = check_duplicates(path, f);
    if (s) sk_gguf_close(f);
    return s;
}

sk_status sk_gguf_open(const char *path, sk_gguf_file *f) {
    memset(f, 0, sizeof *f);
    sk_file m;
    SK_TRY(sk_file_map(path, &m));
    sk_status s = sk_gguf_parse(path, m.data, m.size, f);
    if (s != SK_OK) {
        sk_file_unmap(&m);
        return s;
    }
    f->map = m;
    return SK_OK;
}

sk_file sk_gguf_take_map(sk_gguf_file *f) {
    sk_file m = f->map;
    f->map.data = NULL;
    f->map.size = 0;
    return m;
}

void sk_gguf_close(sk_gguf_file *f) {
    free(f->kv);
    free(f->tensors);
    free(f->path);
    sk_file_unmap(&f->map);
    memset(f, 0, sizeof *f);
}

/* ---------------------------------------------------------------------------------------------
 * Lookups and typed getters. */
const sk_gguf_kv *sk_gguf_find_kv(const sk_gguf_file *f, const char *key) {
    for (int i = 0; i < f->n_kv; i++)
        if (key_eq(f->kv[i].key, key)) return &f->kv[i];
    return NULL;
}

const sk_gguf_tensor *sk_gguf_find_tensor(const sk_gguf_file *f, const char *name) {
    for (int i = 0; i < f->n_tensors; i++)
        if (strcmp(f->tensors[i].name, name) == 0) return &f->tensors[i];
    return NULL;
}

static sk_status wrong_type(const sk_gguf_file *f, const char *key, const sk_gguf_kv *kv,
                            const char *want) {
    if (kv->type == SK_GGUF_ARRAY)
        return sk_fail(SK_ERR_FORMAT, "%s: key '%s' is an array of %s, expected %s", f->path, key,
                       sk_gguf_vtype_name(kv->arr_type), want);
    return sk_fail(SK_ERR_FORMAT, "%s: key '%s' has type %s, expected %s", f->path, key,
                   sk_gguf_vtype_name(kv->type), want);
}

sk_status sk_gguf_get_int(const sk_gguf_file *f, const char *key, int64_t def, int64_t lo,
                          int64_t hi, int64_t *out, bool *found) {
    const sk_gguf_kv *kv = sk_gguf_find_kv(f, key);
    *out = def;
    if (found) *found = kv != NULL;
    if (!kv) return SK_OK;
    if (!is_int_vtype(kv->type)) return wrong_type(f, key, kv, "an integer");
    bool big;
    int64_t v = dec_int(kv->type, kv->value, &big);
    if (big || v < lo || v > hi) {
        char val[32];
        if (big)
            snprintf(val, sizeof val, "%" PRIu64, rd64(kv->value));
        else
            snprintf(val, sizeof val, "%" PRId64, v);
        return sk_fail(SK_ERR_FORMAT,
                       "%s: key '%s' = %s is out of range [%" PRId64 ", %" PRId64 "]", f->path, key,
                       val, lo, hi);
    }
    *out = v;
    return SK_OK;
}

sk_status sk_gguf_get_float(const sk_gguf_file *f, const char *key, double def, double *out,
                            bool *found) {
    const sk_gguf_kv *kv = sk_gguf_find_kv(f, key);
    *out = def;
    if (found) *found = kv != NULL;
    if (!kv) return SK_OK;
    double v;
    if (kv->type == SK_GGUF_F32) {
        float x;
        uint32_t u = rd32(kv->value);
        memcpy(&x, &u, 4);
        v = x;
    } else if (kv->type == SK_GGUF_F64) {
        uint64_t u = rd64(kv->value);
        memcpy(&v, &u, 8);
    } else if (is_int_vtype(kv->type)) {
        bool big;
        v = (double)dec_int(kv->type, kv->value, &big);
        if (big) v = (double)rd64(kv->value);
    } else {
        return wrong_type(f, key, kv, "a number");
    }
    if (!isfinite(v))
        return sk_fail(SK_ERR_FORMAT, "%s: key '%s' = %g is not finite", f->path, key, v);
    *out = v;
    return SK_OK;
}

sk_status sk_gguf_get_bool(const sk_gguf_file *f, const char *key, bool def, bool *out,
                           bool *found) {
    const sk_gguf_kv *kv = sk_gguf_find_kv(f, key);
    *out = def;
    if (found) *found = kv != NULL;
    if (!kv) return SK_OK;
    if (kv->type != SK_GGUF_BOOL) return wrong_type(f, key, kv, "bool");
    *out = kv->value[0] != 0;
    return SK_OK;
}

sk_status sk_gguf_get_str(const sk_gguf_file *f, const char *key, sk_gguf_str *out) {
    const sk_gguf_kv *kv = sk_gguf_find_kv(f, key);
    out->ptr = NULL;
    out->len = 0;
    if (!kv) return SK_OK;
    if (kv->type != SK_GGUF_STRING) return wrong_type(f, key, kv, "string");
    out->len = rd64(kv->value);
    out->ptr = (const char *)kv->value + 8;
    return SK_OK;
}

sk_status sk_gguf_get_array(const sk_gguf_file *f, const char *key, sk_gguf_vtype elem_type,
                            const sk_gguf_kv **out) {
    const sk_gguf_kv *kv = sk_gguf_find_kv(f, key);
    *out = NULL;
    if (!kv) return SK_OK;
    bool ok = kv->type == SK_GGUF_ARRAY &&
              (elem_type == SK_GGUF_I64 ? is_int_vtype(kv->arr_type) : kv->arr_type == elem_type);
    if (!ok) {
        char want[64];
        snprintf(want, sizeof want, "an array of %s",
                 elem_type == SK_GGUF_I64 ? "integers" : sk_gguf_vtype_name(elem_type));
        return wrong_type(f, key, kv, want);
    }
    *out = kv;
    return SK_OK;
}

int64_t sk_gguf_arr_int(const sk_gguf_kv *kv, uint64_t i) {
    bool big;
    int64_t v = dec_int(kv->arr_type, kv->value + i * k_vtype_size[kv->arr_type], &big);
    return big ? INT64_MAX : v;
}

float sk_gguf_arr_f32(const sk_gguf_kv *kv, uint64_t i) {
    uint32_t u = rd32(kv->value + i * 4);
    float x;
    memcpy(&x, &u, 4);
    return x;
}

void sk_gguf_str_array(const sk_gguf_kv *kv, sk_gguf_str *out) {
    SK_ASSERT(kv->type == SK_GGUF_ARRAY && kv->arr_type == SK_GGUF_STRING);
    const uint8_t *p = kv->value;
    for (uint64_t i = 0; i < kv->arr_n; i++) {
        out[i].len = rd64(p);
        out[i].ptr = (const char *)p + 8;
        p += 8 + out[i].len;
    }
}

/* ---------------------------------------------------------------------------------------------
 * The model loader: GGUF -> sk_model_file. */

/* Copies s into a NUL-terminated heap block owned by mf; NULL when out of memory. */
static char *own_str(sk_model_file *mf, sk_gguf_str s) {
    char *p = malloc((size_t)s.len + 1);
    if (!p) return NULL;
    memcpy(p, s.ptr, (size_t)s.len);
    p[s.len] = 0;
    return sk_mf_own(mf, p);
}

static sk_status oom(const char *path) { return sk_fail(SK_ERR_NOMEM, "%s: out of memory", path); }

static sk_status load_tensors(const sk_gguf_file *g, sk_model_file *mf) {
    for (int i = 0; i < g->n_tensors; i++) {
        const sk_gguf_tensor *gt = &g->tensors[i];
        if (gt->type == SK_DTYPE_COUNT)
            return sk_fail(SK_ERR_UNSUPPORTED,
                           "%s: tensor '%s' has type %s (type %u), which is not supported "
                           "(supported: F32, F16, BF16, Q8_0, Q4_0, Q4_1, I32)",
                           g->path, gt->name, sk_gguf_type_name(gt->ggml_type), gt->ggml_type);
        /* Plain types are read as arrays of their element type: their data must be aligned. */
        size_t esz = sk_dtype_is_quant(gt->type) ? 2 : sk_dtype_block_bytes(gt->type);
        if ((uintptr_t)gt->data % esz != 0)
            return sk_fail(SK_ERR_FORMAT,
                           "%s: tensor '%s': data at file offset %" PRIu64 " is not aligned to "
                           "%zu bytes (general.alignment = %u)",
                           g->path, gt->name, g->data_offset + gt->offset, esz, g->alignment);
        sk_tensor t;
        memset(&t, 0, sizeof t);
        memcpy(t.name, gt->name, sizeof t.name);
        t.type = gt->type;
        t.n_dims = gt->n_dims;
        for (int d = 0; d < gt->n_dims; d++) t.shape[d] = gt->ne[gt->n_dims - 1 - d];
        t.data = gt->data;
        t.nbytes = (size_t)gt->nbytes;
        sk_mf_add_tensor(mf, &t);
    }
    return SK_OK;
}

/* Reads integer key "<arch>.<suffix>" in [lo, hi] into *out (def when absent; absent and
 * required is an error). */
static sk_status arch_int(const sk_gguf_file *g, const char *arch, const char *suffix,
                          bool required, int64_t def, int64_t lo, int64_t hi, int *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    int64_t v;
    bool found;
    SK_TRY(sk_gguf_get_int(g, key, def, lo, hi, &v, &found));
    if (!found && required)
        return sk_fail(SK_ERR_FORMAT, "%s: required key '%s' is missing", g->path, key);
    *out = (int)v;
    return SK_OK;
}

static sk_status arch_float(const sk_gguf_file *g, const char *arch, const char *suffix, double def,
                            float *out) {
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, suffix);
    double v;
    SK_TRY(sk_gguf_get_float(g, key, def, &v, NULL));
    *out = (float)v;
    return SK_OK;
}

static sk_status load_hparams(const sk_gguf_file *g, sk_model_file *mf) {
    sk_hparams *hp = &mf->hp;
    memset(hp, 0, sizeof *hp);
    sk_gguf_str as;
    SK_TRY(sk_gguf_get_str(g, "general.architecture", &as));
    if (!as.ptr)
        return sk_fail(SK_ERR_FORMAT, "%s: required key 'general.architecture' is missing",
                       g->path);
    const char *arch;
    if (key_eq(as, "llama")) {
        arch = "llama";
        hp->arch = SK_ARCH_LLAMA;
        hp->rope_pairing = SK_ROPE_ADJACENT;
        hp->n_ln_per_layer = 1;
    } else if (key_eq(as, "falcon")) {
        arch = "falcon";
        hp->arch = SK_ARCH_FALCON;
        /* llama.cpp runs Falcon with NEOX rope: pairs (i, i + d/2). */
        hp->rope_pairing = SK_ROPE_HALVES;
        hp->parallel_attn = true;
        hp->n_ln_per_layer = sk_mf_find(mf, "blk.0.attn_norm_2.weight") ? 2 : 1;
        hp->linear_bias = sk_mf_find(mf, "blk.0.attn_qkv.bias") != NULL;
    } else {
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: architecture '%.*s' is not supported (supported: llama, falcon)",
                       g->path, (int)(as.len > 64 ? 64 : as.len), as.ptr);
    }
    const int64_t IMAX = INT32_MAX;
    SK_TRY(arch_int(g, arch, "block_count", true, 0, 1, IMAX, &hp->n_layers));
    SK_TRY(arch_int(g, arch, "context_length", true, 0, 1, IMAX, &hp->n_ctx_train));
    SK_TRY(arch_int(g, arch, "embedding_length", true, 0, 1, IMAX, &hp->dim));
    SK_TRY(arch_int(g, arch, "feed_forward_length", true, 0, 1, IMAX, &hp->ffn_dim));
    SK_TRY(arch_int(g, arch, "attention.head_count", true, 0, 1, IMAX, &hp->n_heads));
    SK_TRY(
        arch_int(g, arch, "attention.head_count_kv", false, hp->n_heads, 1, IMAX, &hp->n_kv_heads));
    char key[128];
    snprintf(key, sizeof key, "%s.attention.key_length", arch);
    bool has_kl = sk_gguf_find_kv(g, key) != NULL;
    if (!has_kl && hp->dim % hp->n_heads != 0)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: %s.embedding_length %d is not a multiple of "
                       "%s.attention.head_count %d (and %s.attention.key_length is absent)",
                       g->path, arch, hp->dim, arch, hp->n_heads, arch);
    SK_TRY(arch_int(g, arch, "attention.key_length", false, hp->dim / hp->n_heads, 1, IMAX,
                    &hp->head_dim));
    int vlen;
    SK_TRY(arch_int(g, arch, "attention.value_length", false, hp->head_dim, 1, IMAX, &vlen));
    if (vlen != hp->head_dim)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: %s.attention.value_length %d differs from the key length %d, which is "
                       "not supported",
                       g->path, arch, vlen, hp->head_dim);
    SK_TRY(arch_int(g, arch, "rope.dimension_count", false, hp->head_dim, 0, IMAX, &hp->rope_dim));
    /* RoPE frequency scaling changes every position's rotation: refuse rather than run it
     * unscaled. */
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    sk_gguf_str st;
    SK_TRY(sk_gguf_get_str(g, key, &st));
    if (st.ptr && !key_eq(st, "none"))
        return sk_fail(SK_ERR_UNSUPPORTED, "%s: RoPE scaling '%.*s' (key '%s') is not supported",
                       g->path, (int)(st.len > 32 ? 32 : st.len), st.ptr, key);
    if (sk_mf_find(mf, "rope_freqs.weight"))
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: tensor 'rope_freqs.weight' (Llama 3 RoPE frequency scaling) is not "
                       "supported",
                       g->path);
    SK_TRY(arch_float(g, arch, "rope.freq_base", 10000.0, &hp->rope_theta));
    SK_TRY(arch_float(g, arch,
                      hp->arch == SK_ARCH_FALCON ? "attention.layer_norm_epsilon"
                                                 : "attention.layer_norm_rms_epsilon",
                      1e-5, &hp->norm_eps));

    /* n_vocab: the rows of token_embd.weight, which <arch>.vocab_size (optional) must match. */
    const sk_tensor *emb = sk_mf_find(mf, "token_embd.weight");
    if (!emb) return sk_fail(SK_ERR_FORMAT, "%s: tensor 'token_embd.weight' is missing", g->path);
    if (emb->n_dims != 2 || emb->shape[0] > IMAX)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: tensor 'token_embd.weight' has %d dims and %" PRId64 " rows; expected "
                       "[n_vocab, %d]",
                       g->path, emb->n_dims, emb->shape[0], hp->dim);
    hp->n_vocab = (int)emb->shape[0];
    int vocab_key;
    snprintf(key, sizeof key, "%s.vocab_size", arch);
    bool has_vk = sk_gguf_find_kv(g, key) != NULL;
    SK_TRY(arch_int(g, arch, "vocab_size", false, 0, 1, IMAX, &vocab_key));
    if (has_vk && vocab_key != hp->n_vocab)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: key '%s' = %d but tensor 'token_embd.weight' has %d rows", g->path, key,
                       vocab_key, hp->n_vocab);
    hp->tied_output = sk_mf_find(mf, "output.weight") == NULL;
    return SK_OK;
}

/* Copies n strings into one heap block of NUL-terminated texts; fills ptrs[n] and lens[n]. */
static sk_status copy_strings(const sk_gguf_file *g, sk_model_file *mf, const sk_gguf_kv *kv,
                              const char *key, char **ptrs, int *lens) {
    uint64_t n = kv->arr_n;
    sk_gguf_str *ss = malloc((n ? (size_t)n : 1) * sizeof *ss);
    if (!ss) return oom(g->path);
    sk_gguf_str_array(kv, ss);
    uint64_t total = 0;
    for (uint64_t i = 0; i < n; i++) {
        if (ss[i].len > INT32_MAX) {
            free(ss);
            return sk_fail(SK_ERR_FORMAT, "%s: key '%s': string %" PRIu64 " is too long", g->path,
                           key, i);
        }
        total += ss[i].len + 1; /* <= file size + n: no overflow */
    }
    char *blk = malloc((size_t)total ? (size_t)total : 1);
    if (!blk) {
        free(ss);
        return oom(g->path);
    }
    sk_mf_own(mf, blk);
    for (uint64_t i = 0; i < n; i++) {
        memcpy(blk, ss[i].ptr, (size_t)ss[i].len);
        blk[ss[i].len] = 0;
        ptrs[i] = blk;
        if (lens) lens[i] = (int)ss[i].len;
        blk += ss[i].len + 1;
    }
    free(ss);
    return SK_OK;
}

/* Special token id key: -1 when absent or 0xFFFFFFFF; otherwise must be a token id. */
static sk_status token_id(const sk_gguf_file *g, const char *key, int n_tokens, int *out) {
    int64_t v;
    SK_TRY(sk_gguf_get_int(g, key, -1, INT64_MIN, INT64_MAX, &v, NULL));
    if (v == -1 || v == 0xFFFFFFFFll) {
        *out = -1;
        return SK_OK;
    }
    if (v < 0 || v >= n_tokens)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: key '%s' = %" PRId64
                       " is not a token id (the vocabulary has %d tokens)",
                       g->path, key, v, n_tokens);
    *out = (int)v;
    return SK_OK;
}

static void *own_alloc(sk_model_file *mf, size_t n) {
    void *p = calloc(n ? n : 1, 1);
    return p ? sk_mf_own(mf, p) : NULL;
}

static sk_status load_vocab(const sk_gguf_file *g, sk_model_file *mf) {
    sk_vocab_data *v = &mf->vocab;
    memset(v, 0, sizeof *v);
    v->bos = v->eos = v->unk = v->pad = v->eot = -1;
    sk_gguf_str model;
    SK_TRY(sk_gguf_get_str(g, "tokenizer.ggml.model", &model));
    if (!model.ptr || key_eq(model, "none")) {
        v->type = SK_VOCAB_NONE;
        return SK_OK;
    }
    if (key_eq(model, "llama"))
        v->type = SK_VOCAB_SPM;
    else if (key_eq(model, "gpt2"))
        v->type = SK_VOCAB_BPE;
    else
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "%s: tokenizer.ggml.model '%.*s' is not supported (supported: llama, gpt2)",
                       g->path, (int)(model.len > 64 ? 64 : model.len), model.ptr);
    bool spm = v->type == SK_VOCAB_SPM;

    const sk_gguf_kv *toks, *scores, *types, *merges;
    SK_TRY(sk_gguf_get_array(g, "tokenizer.ggml.tokens", SK_GGUF_STRING, &toks));
    if (!toks)
        return sk_fail(SK_ERR_FORMAT, "%s: required key 'tokenizer.ggml.tokens' is missing",
                       g->path);
    if (toks->arr_n == 0 || toks->arr_n > INT32_MAX)
        return sk_fail(SK_ERR_FORMAT, "%s: key 'tokenizer.ggml.tokens' has %" PRIu64 " tokens",
                       g->path, toks->arr_n);
    int n = (int)toks->arr_n;
    SK_TRY(sk_gguf_get_array(g, "tokenizer.ggml.scores", SK_GGUF_F32, &scores));
    SK_TRY(sk_gguf_get_array(g, "tokenizer.ggml.token_type", SK_GGUF_I64, &types));
    SK_TRY(sk_gguf_get_array(g, "tokenizer.ggml.merges", SK_GGUF_STRING, &merges));
    if (scores && scores->arr_n != toks->arr_n)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: key 'tokenizer.ggml.scores' has %" PRIu64 " entries but there are %d "
                       "tokens",
                       g->path, scores->arr_n, n);
    if (types && types->arr_n != toks->arr_n)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: key 'tokenizer.ggml.token_type' has %" PRIu64 " entries but there "
                       "are %d tokens",
                       g->path, types->arr_n, n);
    if (!spm && !merges)
        return sk_fail(SK_ERR_FORMAT,
                       "%s: required key 'tokenizer.ggml.merges' is missing (gpt2 tokenizer)",
                       g->path);
    if (merges && merges->arr_n > INT32_MAX)
        return sk_fail(SK_ERR_FORMAT, "%s: key 'tokenizer.ggml.merges' has too many entries",
                       g->path);

    v->n_tokens = n;
    v->tokens = own_alloc(mf, (size_t)n * sizeof *v->tokens);
    v->token_len = own_alloc(mf, (size_t)n * sizeof *v->token_len);
    if (!v->tokens || !v->token_len) return oom(g->path);
    SK_TRY(copy_strings(g, mf, toks, "tokenizer.ggml.tokens", v->tokens, v->token_len));
    if (scores) {
        v->scores = own_alloc(mf, (size_t)n * sizeof *v->scores);
        if (!v->scores) return oom(g->path);
        for (int i = 0; i < n; i++) v->scores[i] = sk_gguf_arr_f32(scores, (uint64_t)i);
    }
    if (types) {
        v->token_type = own_alloc(mf, (size_t)n * sizeof *v->token_type);
        if (!v->token_type) return oom(g->path);
        for (int i = 0; i < n; i++) {
            int64_t t = sk_gguf_arr_int(types, (uint64_t)i);
            if (t < 0 || t > SK_TOKT_BYTE)
                return sk_fail(SK_ERR_FORMAT,
                               "%s: key 'tokenizer.ggml.token_type': token %d has type %" PRId64
                               " (valid: 0 to %d)",
                               g->path, i, t, SK_TOKT_BYTE);
            v->token_type[i] = (int)t;
        }
    }
    if (merges) {
        v->n_merges = (int)merges->arr_n;
        v->merges = own_alloc(mf, (size_t)v->n_merges * sizeof *v->merges);
        if (!v->merges) return oom(g->path);
        SK_TRY(copy_strings(g, mf, merges, "tokenizer.ggml.merges", v->merges, NULL));
    }
    SK_TRY(token_id(g, "tokenizer.ggml.bos_token_id", n, &v->bos));
    SK_TRY(token_id(g, "tokenizer.ggml.eos_token_id", n, &v->eos));
    SK_TRY(token_id(g, "tokenizer.ggml.unknown_token_id", n, &v->unk));
    SK_TRY(token_id(g, "tokenizer.ggml.padding_token_id", n, &v->pad));
    SK_TRY(token_id(g, "tokenizer.ggml.eot_token_id", n, &v->eot));
    SK_TRY(sk_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", spm, &v->add_bos, NULL));
    SK_TRY(sk_gguf_get_bool(g, "tokenizer.ggml.add_eos_token", false, &v->add_eos, NULL));
    SK_TRY(sk_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", spm, &v->add_space_prefix, NULL));

    sk_gguf_str s;
    SK_TRY(sk_gguf_get_str(g, "tokenizer.ggml.pre", &s));
    if (s.ptr && !(v->pre = own_str(mf, s))) return oom(g->path);
    SK_TRY(sk_gguf_get_str(g, "tokenizer.chat_template", &s));
    if (s.ptr && !(v->chat_template = own_str(mf, s))) return oom(g->path);
    return SK_OK;
}

sk_status sk_gguf_load(const char *path, sk_model_file *mf) {
    memset(mf, 0, sizeof *mf);
    sk_gguf_file g;
    SK_TRY(sk_gguf_open(path, &g));
    mf->path = sk_xstrdup(path);
    mf->format = "gguf";
    sk_status s = load_tensors(&g, mf);
    if (!s) s = load_hparams(&g, mf);
    if (!s) s = load_vocab(&g, mf);
    sk_mf_own_map(mf, sk_gguf_take_map(&g));
    sk_gguf_close(&g);
    if (!s) s = sk_model_file_validate(mf);
    if (s) sk_mf_free(mf);
    return s;
}
