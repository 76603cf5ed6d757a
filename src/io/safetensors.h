/* safetensors reader: u64 little-endian header length N, N bytes of JSON header
 *   {"__metadata__": {...},
 *    "<name>": {"dtype": "F16", "shape": [d0, ...], "data_offsets": [b, e]}, ...}
 * then the data buffer; a tensor's bytes are data[b, e) (offsets from the buffer start).
 *
 * sk_st_open maps the file and checks everything against it: header length against the file size
 * and SK_ST_MAX_HEADER, the header is a JSON object, each dtype is a known safetensors dtype, the
 * shape has <= SK_MAX_DIMS non-negative dims whose product does not overflow, and the offsets
 * satisfy b <= e <= data size and e - b == nelem * element size. Tensors whose dtype is well
 * formed but not one Saker computes with (F64, I64, F8_E4M3, ...) are kept with type
 * SK_DTYPE_COUNT and their dtype string, so that a loader can ignore them when unused and name
 * them in its error when needed. */
#ifndef SK_SAFETENSORS_H
#define SK_SAFETENSORS_H

#include "core/file.h"
#include "model/model_file.h"

/* The reference implementation's cap on the JSON header size. */
#define SK_ST_MAX_HEADER 100000000ull

typedef struct sk_st_tensor {
    char *name;          /* owned by the sk_st_file */
    sk_dtype type;       /* SK_F32, SK_F16, SK_BF16; SK_DTYPE_COUNT for other dtypes */
    char dtype_name[16]; /* safetensors dtype string as in the header ("BF16", "I64", ...) */
    int n_dims;
    int64_t shape[SK_MAX_DIMS];
    const void *data; /* into the mapping (any alignment) */
    size_t nbytes;
} sk_st_tensor;

typedef struct sk_st_file {
    char *path;
    sk_file map; /* the whole file; empty after sk_st_take_map */
    int n_tensors;
    sk_st_tensor *tensors; /* in header order */
} sk_st_file;

/* Maps and parses path. On failure f is empty and the message names the file (and the tensor). */
sk_status sk_st_open(const char *path, sk_st_file *f);
/* Parses an in-memory file image (used by sk_st_open; tensors point into data). path names the
 * file in messages. f->map is left empty. */
sk_status sk_st_parse(const char *path, const uint8_t *data, size_t size, sk_st_file *f);
/* Returns the tensor named name, or NULL. */
const sk_st_tensor *sk_st_find(const sk_st_file *f, const char *name);
/* Hands the mapping over to the caller (who unmaps it); tensors keep pointing into it. */
sk_file sk_st_take_map(sk_st_file *f);
/* Frees names and tensors and unmaps the file unless taken. */
void sk_st_close(sk_st_file *f);

/* One tensor to write: dtype is a safetensors dtype string ("F16", "I32", ...); nbytes must equal
 * the product of the shape times the dtype's size (checked). */
typedef struct sk_st_out {
    const char *name;
    const char *dtype;
    int n_dims;
    int64_t shape[SK_MAX_DIMS];
    const void *data;
    size_t nbytes;
} sk_st_out;

/* Writes n tensors to path as a safetensors file, data in the given order, the header padded
 * with spaces to a multiple of 8 bytes and {"__metadata__": {"format": "pt"}}. Returns SK_ERR_ARG
 * for a bad tensor description, SK_ERR_IO naming the path when writing fails. */
sk_status sk_st_write(const char *path, const sk_st_out *t, int n);

#endif
