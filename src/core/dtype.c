#include "core/dtype.h"
#include "core/status.h"

#include <string.h>

static const struct {
    const char *name;
    int block;
    size_t bytes;
} k_types[SK_DTYPE_COUNT] = {
    [SK_F32] = {"F32", 1, 4},    [SK_F16] = {"F16", 1, 2},    [SK_BF16] = {"BF16", 1, 2},
    [SK_Q8_0] = {"Q8_0", 32, 34}, [SK_Q4_0] = {"Q4_0", 32, 18}, [SK_Q4_1] = {"Q4_1", 32, 20},
    [SK_I32] = {"I32", 1, 4},    [SK_Q4G32] = {"Q4G32", 32, 20}, [SK_Q4G64] = {"Q4G64", 64, 36},
    [SK_Q4G128] = {"Q4G128", 128, 68},
};

const char *sk_dtype_name(sk_dtype t) { return (unsigned)t < SK_DTYPE_COUNT ? k_types[t].name : "?"; }
int sk_dtype_block(sk_dtype t) { return k_types[t].block; }
size_t sk_dtype_block_bytes(sk_dtype t) { return k_types[t].bytes; }
size_t sk_dtype_row_bytes(sk_dtype t, int64_t n) {
    return (size_t)(n / k_types[t].block) * k_types[t].bytes;
}
bool sk_dtype_is_quant(sk_dtype t) { return k_types[t].block > 1; }

sk_dtype sk_dtype_q4g(int g) {
    return g == 32 ? SK_Q4G32 : g == 64 ? SK_Q4G64 : g == 128 ? SK_Q4G128 : SK_DTYPE_COUNT;
}

int sk_dtype_q4g_group(sk_dtype t) {
    return t == SK_Q4G32 || t == SK_Q4G64 || t == SK_Q4G128 ? k_types[t].block : 0;
}

static inline uint32_t f2u(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    return u;
}
static inline float u2f(uint32_t u) {
    float f;
    memcpy(&f, &u, 4);
    return f;
}

float sk_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) {
        /* zero or subnormal: man * 2^-24 */
        float v = (float)man * u2f(0x33800000u);
        return u2f(f2u(v) | sign);
    }
    if (exp == 31) return u2f(sign | 0x7f800000u | (man << 13));
    return u2f(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t sk_f32_to_f16(float f) {
    uint32_t u = f2u(f);
    uint32_t sign = (u >> 16) & 0x8000;
    uint32_t au = u & 0x7fffffffu;
    if (au >= 0x7f800000u) return (uint16_t)(sign | 0x7c00 | (au > 0x7f800000u ? 0x200 : 0));
    if (au >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (au < 0x38800000u) {                                  /* subnormal or zero in f16 */
        float v = u2f(au) * u2f(0x4b800000u);                /* * 2^24 */
        uint32_t m = (uint32_t)v;
        float r = v - (float)m;
        if (r > 0.5f || (r == 0.5f && (m & 1))) m++;
        return (uint16_t)(sign | m);
    }
    uint32_t mant = au & 0x7fffff, exp = (au >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rem = mant & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1))) h++;
    return (uint16_t)(sign | h);
}

float sk_bf16_to_f32(uint16_t h) { return u2f((uint32_t)h << 16); }

uint16_t sk_f32_to_bf16(float f) {
    uint32_t u = f2u(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}

static inline uint16_t rd16(const uint8_t *p) { return (uint16_t)(p[0] | (p[1] << 8)); }

void sk_dequant_row(sk_dtype t, const void *src, float *dst, int64_t n) {
    const uint8_t *p = src;
    switch (t) {
    case SK_F32: memcpy(dst, src, (size_t)n * 4); return;
    case SK_F16:
        for (int64_t i = 0; i < n; i++) dst[i] = sk_f16_to_f32(rd16(p + 2 * i));
        return;
    case SK_BF16:
        for (int64_t i = 0; i < n; i++) dst[i] = sk_bf16_to_f32(rd16(p + 2 * i));
        return;
    case SK_Q8_0:
        for (int64_t b = 0; b < n / 32; b++, p += 34, dst += 32) {
            float d = sk_f16_to_f32(rd16(p));
            const int8_t *q = (const int8_t *)(p + 2);
            for (int j = 0; j < 32; j++) dst[j] = (float)q[j] * d;
        }
        return;
    case SK_Q4_0:
        for (int64_t b = 0; b < n / 32; b++, p += 18, dst += 32) {
            float d = sk_f16_to_f32(rd16(p));
            const uint8_t *q = p + 2;
            for (int j = 0; j < 16; j++) {
                dst[j] = (float)((q[j] & 0xf) - 8) * d;
                dst[j + 16] = (float)((q[j] >> 4) - 8) * d;
            }
        }
        return;
    case SK_Q4_1:
        for (int64_t b = 0; b < n / 32; b++, p += 20, dst += 32) {
            float d = sk_f16_to_f32(rd16(p)), m = sk_f16_to_f32(rd16(p + 2));
            const uint8_t *q = p + 4;
            for (int j = 0; j < 16; j++) {
                dst[j] = (float)(q[j] & 0xf) * d + m;
                dst[j + 16] = (float)(q[j] >> 4) * d + m;
            }
        }
        return;
    case SK_Q4G32:
    case SK_Q4G64:
    case SK_Q4G128: {
        const int g = k_types[t].block;
        const size_t bb = k_types[t].bytes;
        for (int64_t b = 0; b < n / g; b++, p += bb, dst += g) {
            const float d = sk_f16_to_f32(rd16(p));
            const int z = p[2];
            const uint8_t *q = p + 4;
            for (int j = 0; j < g / 2; j++) {
                dst[2 * j] = (float)((q[j] & 0xf) - z) * d;
                dst[2 * j + 1] = (float)((q[j] >> 4) - z) * d;
            }
        }
        return;
    }
    case SK_I32:
    case SK_DTYPE_COUNT: break;
    }
    SK_ASSERT(!"sk_dequant_row: type cannot be dequantized");
}
