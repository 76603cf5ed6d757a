/* GGUF reader (versions 2 and 3, little-endian).
 *
 * Layout: "GGUF" u32 version, u64 n_tensors, u64 n_kv; n_kv key/value pairs (string key, u32
 * value type, value); n_tensors tensor infos (string name, u32 n_dims, u64 ne[n_dims] innermost
 * first, u32 ggml type, u64 offset); padding to general.alignment (default 32); the data section.
 * A string is u64 length + bytes (no NUL). An array is u32 element type, u64 count, elements.
 *
 * sk_gguf_parse checks everything against the file before anything is used: every count, length
 * and offset against the bytes that remain (overflow-safe), array nesting depth, the alignment
 * (a power of two), n_dims in 1..SK_MAX_DIMS, dims whose element count fits int64, the row size a
 * multiple of the type's block, every ggml type known (its size computable), tensor offsets
 * aligned and data inside the file, no duplicate keys or tensor names. Known ggml types that Saker
 * does not compute with (Q4_K ...) are kept, with type SK_DTYPE_COUNT, so that a loader can name
 * them in its error. Values stay in the mapping; accessors decode them. */
#ifndef SK_GGUF_H
#define SK_GGUF_H

#include "core/file.h"
#include "model/model_file.h"

#define SK_GGUF_DEFAULT_ALIGNMENT 32
#define SK_GGUF_MAX_ARRAY_DEPTH 8

typedef enum sk_gguf_vtype {
    SK_GGUF_U8 = 0,
    SK_GGUF_I8 = 1,
    SK_GGUF_U16 = 2,
    SK_GGUF_I16 = 3,
    SK_GGUF_U32 = 4,
    SK_GGUF_I32 = 5,
    SK_GGUF_F32 = 6,
    SK_GGUF_BOOL = 7,
    SK_GGUF_STRING = 8,
    SK_GGUF_ARRAY = 9,
    SK_GGUF_U64 = 10,
    SK_GGUF_I64 = 11,
    SK_GGUF_F64 = 12,
    SK_GGUF_VTYPE_COUNT
} sk_gguf_vtype;

/* A string inside the mapping: len bytes at ptr, not NUL-terminated. */
typedef struct sk_gguf_str {
    const char *ptr;
    uint64_t len;
} sk_gguf_str;

typedef struct sk_gguf_kv {
    sk_gguf_str key;
    sk_gguf_vtype type;
    const uint8_t *value; /* the encoded value (for arrays: the first element) */
    /* Arrays only: element type and count. Elements of a string array are consecutive encoded
     * strings (use sk_gguf_str_array); nested arrays are validated but not decoded. */
    sk_gguf_vtype arr_type;
    uint64_t arr_n;
} sk_gguf_kv;

typedef struct sk_gguf_tensor {
    char name[SK_NAME_MAX];
    uint32_t ggml_type;
    sk_dtype type; /* SK_DTYPE_COUNT: a ggml type Saker does not compute with */
    int n_dims;
    int64_t ne[SK_MAX_DIMS]; /* GGUF order: ne[0] is the contiguous (innermost) dim */
    uint64_t offset;         /* relative to the data section, a multiple of the alignment */
    const uint8_t *data;     /* into the mapping */
    uint64_t nbytes;
} sk_gguf_tensor;

typedef struct sk_gguf_file {
    char *path;
    sk_file map; /* empty after sk_gguf_take_map or for sk_gguf_parse */
    uint32_t version;
    uint32_t alignment;
    uint64_t data_offset; /* start of the data section in the file */
    int n_kv;
    sk_gguf_kv *kv; /* in file order */
    int n_tensors;
    sk_gguf_tensor *tensors; /* in file order */
} sk_gguf_file;

/* Name of a ggml type ("Q4_K") or NULL when unknown. */
const char *sk_gguf_type_name(uint32_t ggml_type);
/* Name of a metadata value type ("u32", "string", ...). */
const char *sk_gguf_vtype_name(sk_gguf_vtype t);

/* Maps and parses path. On failure f is empty and the message names the file and the key or
 * tensor at fault. SK_ERR_FORMAT for malformed files, SK_ERR_UNSUPPORTED for other versions,
 * big-endian files and unknown ggml types, SK_ERR_NOMEM when tables cannot be allocated. */
sk_status sk_gguf_open(const char *path, sk_gguf_file *f);
/* Parses an in-memory image (tensors and values point into data, which must outlive f). */
sk_status sk_gguf_parse(const char *path, const uint8_t *data, size_t size, sk_gguf_file *f);
/* Hands the mapping to the caller (who unmaps it); pointers into it stay valid. */
sk_file sk_gguf_take_map(sk_gguf_file *f);
void sk_gguf_close(sk_gguf_file *f);

/* Lookups: NULL when absent. */
const sk_gguf_kv *sk_gguf_find_kv(const sk_gguf_file *f, const char *key);
const sk_gguf_tensor *sk_gguf_find_tensor(const sk_gguf_file *f, const char *name);

/* Typed getters for key. A missing key leaves *out = def and returns SK_OK (*found, if not NULL,
 * tells which); a value of the wrong type or out of [lo, hi] is SK_ERR_FORMAT naming the file and
 * the key. Integers accept any integer type; floats accept f32 and f64. */
sk_status sk_gguf_get_int(const sk_gguf_file *f, const char *key, int64_t def, int64_t lo,
                          int64_t hi, int64_t *out, bool *found);
sk_status sk_gguf_get_float(const sk_gguf_file *f, const char *key, double def, double *out,
                            bool *found);
sk_status sk_gguf_get_bool(const sk_gguf_file *f, const char *key, bool def, bool *out,
                           bool *found);
/* String value; out->ptr is NULL when absent. */
sk_status sk_gguf_get_str(const sk_gguf_file *f, const char *key, sk_gguf_str *out);
/* Array of elem_type (any integer type when elem_type is SK_GGUF_I64); *kv is NULL when absent.
 * Wrong type is SK_ERR_FORMAT. */
sk_status sk_gguf_get_array(const sk_gguf_file *f, const char *key, sk_gguf_vtype elem_type,
                            const sk_gguf_kv **kv);

/* Element i of an integer / f32 array (bounds and type checked by the caller). */
int64_t sk_gguf_arr_int(const sk_gguf_kv *kv, uint64_t i);
float sk_gguf_arr_f32(const sk_gguf_kv *kv, uint64_t i);
/* Decodes the kv->arr_n strings of a string array into out[kv->arr_n]. */
void sk_gguf_str_array(const sk_gguf_kv *kv, sk_gguf_str *out);

/* Bytes of an encoded value of type t with element count n (non-array scalar types only; 0 for
 * strings and arrays). */
size_t sk_gguf_vtype_size(sk_gguf_vtype t);

#endif
