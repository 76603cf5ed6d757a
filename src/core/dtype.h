/* Element types of weights and activations, with conversions and block dequantization.
 * Quantized types are GGML's block formats (32 elements per block, little-endian). */
#ifndef SK_DTYPE_H
#define SK_DTYPE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum sk_dtype {
    SK_F32 = 0,
    SK_F16,
    SK_BF16,
    SK_Q8_0, /* block: f16 d; int8 q[32];            x = q*d        (34 bytes) */
    SK_Q4_0, /* block: f16 d; u8 q[16];   lo nibbles elems 0..15, hi 16..31; x = (q-8)*d (18 bytes) */
    SK_Q4_1, /* block: f16 d, m; u8 q[16]; same nibble order;      x = q*d + m    (20 bytes) */
    SK_I32,
    SK_DTYPE_COUNT
} sk_dtype;

const char *sk_dtype_name(sk_dtype t);
/* Elements per block (1 for plain types) and bytes per block. */
int sk_dtype_block(sk_dtype t);
size_t sk_dtype_block_bytes(sk_dtype t);
/* Bytes for n elements; n must be a multiple of the block size (checked by callers). */
size_t sk_dtype_row_bytes(sk_dtype t, int64_t n);
bool sk_dtype_is_quant(sk_dtype t);

float sk_f16_to_f32(uint16_t h);
uint16_t sk_f32_to_f16(float f); /* round to nearest even */
float sk_bf16_to_f32(uint16_t h);
uint16_t sk_f32_to_bf16(float f); /* round to nearest even */

/* Converts n elements of src (of type t, n a multiple of the block size) to fp32. */
void sk_dequant_row(sk_dtype t, const void *src, float *dst, int64_t n);

#ifdef __cplusplus
}
#endif

#endif
