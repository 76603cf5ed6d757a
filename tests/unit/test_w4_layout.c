/* The tile-major INT4 device layout (src/backend/cuda/w4_layout.h), checked without a GPU over
 * many shapes, including the padded ones (N not a multiple of 16, K not of 128: SmolLM2's 576,
 * stories260K's 64): sk_w4_widx maps every (row, word) to a distinct index inside
 * sk_w4_words; a tile's step (16 rows x 16 words) is one contiguous 1 KB run, rows at 64 bytes;
 * 8 steps of a tile are 8 KB contiguous (the TMA-fed GEMVs' box); sk_w4_tile_host puts each
 * row-major word at its index and zeroes the padding. */
#include <stdint.h>
#include <stdlib.h>

#include "backend/cuda/w4_layout.h"
#include "testlib.h"

static unsigned long long rng = 0x2545f4914f6cdd1dull;
static uint32_t rnd32(void) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng >> 17);
}

/* Returns the number of violated properties for an N x K weight. */
static int check_shape(int64_t N, int64_t K) {
    const int64_t K8 = K / 8;
    const size_t nw = sk_w4_words(N, K);
    int bad = 0;
    if (nw != (size_t)((N + 15) / 16) * 16 * (size_t)((K + 127) / 128) * 16) bad++;
    uint32_t *rm = malloc((size_t)(N * K8) * sizeof(uint32_t));
    uint32_t *tm = malloc(nw * sizeof(uint32_t));
    unsigned char *hit = calloc(nw, 1);
    for (int64_t i = 0; i < N * K8; i++) rm[i] = rnd32() | 1u; /* never 0: padding is */
    for (size_t i = 0; i < nw; i++) tm[i] = 0xdeadbeefu;       /* to see it zeroed */
    sk_w4_tile_host(rm, N, K, tm);
    const int S = sk_w4_steps(K);
    for (int64_t n = 0; n < N; n++)
        for (int64_t j = 0; j < K8; j++) {
            const size_t i = sk_w4_widx(n, j, K);
            if (i >= nw || hit[i]) {
                bad++;
                continue;
            }
            hit[i] = 1;
            if (tm[i] != rm[n * K8 + j]) bad++;
            /* tile n / 16, step j / 16: a 1 KB run at (tile S + step) KB, row n % 16 at 64 bytes */
            if (i / 256 != (size_t)(n / 16) * (size_t)S + (size_t)(j / 16) ||
                (i % 256) / 16 != (size_t)(n % 16) || i % 16 != (size_t)(j % 16))
                bad++;
        }
    for (size_t i = 0; i < nw; i++)
        if (!hit[i] && tm[i] != 0) bad++; /* padding zeroed */
    /* 8 consecutive steps of a tile are one 8 KB run (K % 1024 == 0 shapes) */
    if (K % 1024 == 0 && N >= 16) {
        const size_t a = sk_w4_widx(0, 0, K), b = sk_w4_widx(15, 8 * 16 - 1, K);
        if (b - a != 8 * 256 - 1) bad++;
    }
    free(rm), free(tm), free(hit);
    return bad;
}

int main(void) {
    /* the models' shapes (Llama-2 7B/70B, SmolLM2 576/1536, stories260K 64/172-ish, Falcon) and
     * odd ones */
    const int64_t ns[] = {1, 15, 16, 17, 48, 64, 192, 576, 1000, 1536, 2048};
    const int64_t ks[] = {32, 64, 96, 128, 160, 576, 1024, 1536, 4096};
    for (size_t a = 0; a < sizeof ns / sizeof ns[0]; a++)
        for (size_t b = 0; b < sizeof ks / sizeof ks[0]; b++) {
            const int bad = check_shape(ns[a], ks[b]);
            CHECKF(bad == 0, "N %lld K %lld: %d violations", (long long)ns[a], (long long)ks[b], bad);
        }
    for (int r = 0; r < 200; r++) {
        const int64_t N = 1 + (int64_t)(rnd32() % 300), K = 32 * (1 + (int64_t)(rnd32() % 40));
        const int bad = check_shape(N, K);
        CHECKF(bad == 0, "N %lld K %lld: %d violations", (long long)N, (long long)K, bad);
    }
    /* the documented offsets: row 17's word 20 of a 4096-wide weight: tile 1, step 1, row 1 */
    CHECK(sk_w4_widx(17, 20, 4096) == (size_t)(1 * 32 + 1) * 256 + 16 + 4);
    return sk_test_done("w4_layout");
}
