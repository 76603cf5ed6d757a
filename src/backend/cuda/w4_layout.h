/* The device layout of INT4 weights (q4, w4.cuh), shared by the CUDA kernels, the backend's
 * upload (host C++ in backend.cu) and the workbenches.
 *
 * Tile-major (session 30): q4 of an N x K weight is uint32
 *     [ceil(N / 16) tiles][ceil(K / 128) steps][16 rows][16 words]
 * so that one tile's step (16 rows x 128 k, 1 KB) is contiguous, and so are 8 steps of a tile
 * (the 8 KB box that the TMA-fed GEMVs copy in one request). A word holds 8 elements in w4.cuh's
 * nibble order; word j of row n is at sk_w4_widx(n, j, K). Rows past N in the last tile and
 * words past K / 8 in the last step are padding (allocated, never used for an output).
 * Why: the TMA-fed decode GEMVs read 8 KB contiguous boxes instead of 16 rows x 512 bytes at the
 * row pitch; the workbench's probe timed 70B gate/up at one row 61.2 -> 59.2 us (session 22). */
#ifndef SK_CUDA_W4_LAYOUT_H
#define SK_CUDA_W4_LAYOUT_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define SK_W4L_FN static __host__ __device__ __forceinline__
#else
#define SK_W4L_FN static inline
#endif

/* steps of 128 k (16 words) a row, padded */
SK_W4L_FN int sk_w4_steps(int64_t K) { return (int)((K + 127) / 128); }
/* words of the whole padded buffer */
SK_W4L_FN size_t sk_w4_words(int64_t N, int64_t K) {
    return (size_t)((N + 15) / 16) * 16u * (size_t)sk_w4_steps(K) * 16u;
}
/* word j (0 <= j < K / 8) of row n */
SK_W4L_FN size_t sk_w4_widx(int64_t n, int64_t j, int64_t K) {
    return ((size_t)(n >> 4) * (size_t)sk_w4_steps(K) + (size_t)(j >> 4)) * 256u +
           (size_t)(n & 15) * 16u + (size_t)(j & 15);
}

/* Host: rows [0, m) of a row-major [m][K / 8] block of words into the tile-major layout at dst
 * (ceil(m / 16) tiles: sk_w4_words(m, K) words; padding zeroed). The block's first row must
 * be a tile's first row where dst points into a larger buffer. */
static inline void sk_w4_tile_host(const uint32_t *rm, int64_t m, int64_t K, uint32_t *dst) {
    const int64_t K8 = K / 8;
    memset(dst, 0, sk_w4_words(m, K) * sizeof(uint32_t));
    for (int64_t n = 0; n < m; n++)
        for (int64_t j = 0; j < K8; j++) dst[sk_w4_widx(n, j, K)] = rm[n * K8 + j];
}

#endif
