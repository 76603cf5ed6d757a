/* Element types of weights and activations, with conversions and block dequantization.
 * Q8_0/Q4_0/Q4_1 are GGML's block formats (32 elements per block, little-endian).
 *
 * Q4G32/Q4G64/Q4G128: group-quantized asymmetric INT4 with an integer zero point (AWQ, RTN; the
 * AutoAWQ GEMM checkpoint layout repacked row-major). One block is one group of G consecutive
 * elements along a row (a Linear weight's input dimension K), 4 + G/2 bytes, little-endian:
 *   byte 0-1  f16 d      scale
 *   byte 2    u8  z      zero point, 0..15
 *   byte 3    u8  0      padding (keeps blocks 4-byte aligned; written as 0)
 *   byte 4+j  u8  q[j]   elements 2j (low nibble) and 2j+1 (high nibble), j < G/2
 *   x = (float)((int)q - (int)z) * d                       (20 / 36 / 68 bytes per block)
 * The integer zero point keeps the AutoAWQ qzeros exact on a write/load round trip. */
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
    SK_Q4G32,  /* see above: f16 d; u8 z; u8 pad; u8 q[16]   (20 bytes) */
    SK_Q4G64,  /*            f16 d; u8 z; u8 pad; u8 q[32]   (36 bytes) */
    SK_Q4G128, /*            f16 d; u8 z; u8 pad; u8 q[64]   (68 bytes) */
    SK_DTYPE_COUNT
} sk_dtype;

const char *sk_dtype_name(sk_dtype t);
/* Elements per block (1 for plain types) and bytes per block. */
int sk_dtype_block(sk_dtype t);
size_t sk_dtype_block_bytes(sk_dtype t);
/* Bytes for n elements; n must be a multiple of the block size (checked by callers). */
size_t sk_dtype_row_bytes(sk_dtype t, int64_t n);
bool sk_dtype_is_quant(sk_dtype t);
/* The Q4G type of group size g (32, 64, 128), or SK_DTYPE_COUNT for any other g. */
sk_dtype sk_dtype_q4g(int g);
/* The group size of a Q4G type, 0 for other types. */
int sk_dtype_q4g_group(sk_dtype t);

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
