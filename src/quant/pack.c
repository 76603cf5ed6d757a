/* Q4G group quantization (RTN of one row) and the AutoAWQ GEMM packing. See quant.h. */
#include "quant/quant.h"

#include "core/status.h"

#include <math.h>
#include <string.h>

/* Scale, zero point and codes of one group of g values (clamped to +-clip when clip > 0). */
static void quant_group(const float *x, int g, float clip, uint16_t *d16, int *zp, uint8_t *q) {
    float mx = -INFINITY, mn = INFINITY;
    for (int j = 0; j < g; j++) {
        float v = x[j];
        if (clip > 0.0f) v = v > clip ? clip : v < -clip ? -clip : v;
        mx = v > mx ? v : mx;
        mn = v < mn ? v : mn;
    }
    float range = mx - mn;
    if (!(range >= 1e-5f)) range = 1e-5f; /* also catches NaN */
    uint16_t h = sk_f32_to_f16(range / 15.0f);
    float d = sk_f16_to_f32(h);
    /* 1e-5/15 is a normal f16 and range is finite for finite weights; a non-finite weight gives
     * a non-finite d, which the checks below keep away from the codes. */
    int z = 0;
    if (isfinite(d) && d > 0.0f) {
        float zf = -nearbyintf(mn / d);
        z = zf < 0.0f ? 0 : zf > 15.0f ? 15 : (int)zf;
    }
    for (int j = 0; j < g; j++) {
        float v = x[j];
        if (clip > 0.0f) v = v > clip ? clip : v < -clip ? -clip : v;
        float c = (isfinite(d) && d > 0.0f) ? nearbyintf(v / d) + (float)z : (float)z;
        q[j] = (uint8_t)(c < 0.0f ? 0 : c > 15.0f ? 15 : (int)c);
    }
    *d16 = h;
    *zp = z;
}

void sk_q4g_quantize_row(const float *x, int64_t n, int g, const float *clip, void *dst) {
    SK_ASSERT(sk_dtype_q4g(g) != SK_DTYPE_COUNT && n % g == 0);
    uint8_t *p = dst;
    uint8_t q[128];
    for (int64_t b = 0; b < n / g; b++, p += 4 + g / 2) {
        uint16_t d;
        int z;
        quant_group(x + b * g, g, clip ? clip[b] : 0.0f, &d, &z, q);
        p[0] = (uint8_t)(d & 0xff);
        p[1] = (uint8_t)(d >> 8);
        p[2] = (uint8_t)z;
        p[3] = 0;
        for (int j = 0; j < g / 2; j++) p[4 + j] = (uint8_t)(q[2 * j] | (q[2 * j + 1] << 4));
    }
}

void sk_q4g_fake_quant_row(const float *x, int64_t n, int g, const float *clip, float *out) {
    SK_ASSERT(sk_dtype_q4g(g) != SK_DTYPE_COUNT && n % g == 0);
    uint8_t q[128];
    for (int64_t b = 0; b < n / g; b++) {
        uint16_t h;
        int z;
        quant_group(x + b * g, g, clip ? clip[b] : 0.0f, &h, &z, q);
        const float d = sk_f16_to_f32(h);
        for (int j = 0; j < g; j++) out[b * g + j] = (float)((int)q[j] - z) * d;
    }
}

static const int k_order[8] = {0, 2, 4, 6, 1, 3, 5, 7};

void sk_awq_pack(const void *q4g, int64_t N, int64_t K, int g, int32_t *qweight, int32_t *qzeros,
                 uint16_t *scales) {
    SK_ASSERT(sk_dtype_q4g(g) != SK_DTYPE_COUNT && N % 8 == 0 && K % g == 0);
    const size_t bb = (size_t)(4 + g / 2), rb = bb * (size_t)(K / g);
    const uint8_t *src = q4g;
    const int64_t C = N / 8, G = K / g;
    memset(qweight, 0, sizeof(int32_t) * (size_t)(K * C));
    memset(qzeros, 0, sizeof(int32_t) * (size_t)(G * C));
    for (int64_t n = 0; n < N; n++) {
        const int64_t c = n / 8;
        int i = 0; /* nibble slot of n: k_order[i] == n % 8 */
        while (k_order[i] != n % 8) i++;
        const uint8_t *row = src + (size_t)n * rb;
        for (int64_t b = 0; b < G; b++) {
            const uint8_t *blk = row + (size_t)b * bb;
            scales[b * N + n] = (uint16_t)(blk[0] | (blk[1] << 8));
            uint32_t *zw = (uint32_t *)&qzeros[b * C + c];
            *zw |= (uint32_t)(blk[2] & 0xf) << (4 * i);
            for (int j = 0; j < g; j++) {
                const uint32_t v = (blk[4 + j / 2] >> (4 * (j & 1))) & 0xf;
                uint32_t *w = (uint32_t *)&qweight[(b * g + j) * C + c];
                *w |= v << (4 * i);
            }
        }
    }
}

void sk_awq_unpack(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales,
                   int64_t N, int64_t K, int g, void *q4g) {
    SK_ASSERT(sk_dtype_q4g(g) != SK_DTYPE_COUNT && N % 8 == 0 && K % g == 0);
    const size_t bb = (size_t)(4 + g / 2), rb = bb * (size_t)(K / g);
    uint8_t *dst = q4g;
    const int64_t C = N / 8, G = K / g;
    for (int64_t n = 0; n < N; n++) {
        const int64_t c = n / 8;
        int i = 0;
        while (k_order[i] != n % 8) i++;
        uint8_t *row = dst + (size_t)n * rb;
        for (int64_t b = 0; b < G; b++) {
            uint8_t *blk = row + (size_t)b * bb;
            const uint16_t s = scales[b * N + n];
            blk[0] = (uint8_t)(s & 0xff);
            blk[1] = (uint8_t)(s >> 8);
            blk[2] = (uint8_t)(((uint32_t)qzeros[b * C + c] >> (4 * i)) & 0xf);
            blk[3] = 0;
            memset(blk + 4, 0, (size_t)g / 2);
            for (int j = 0; j < g; j++) {
                const uint32_t v = ((uint32_t)qweight[(b * g + j) * C + c] >> (4 * i)) & 0xf;
                blk[4 + j / 2] |= (uint8_t)(v << (4 * (j & 1)));
            }
        }
    }
}
