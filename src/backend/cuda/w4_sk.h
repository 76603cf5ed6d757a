/* Stream-K partition of the W4 wgmma GEMM (sk_w4g_kernel in w4_mma.cuh): plain C, shared by the
 * kernel and the unit test tests/unit/test_w4_streamk.c (which checks it on many shapes without a
 * GPU).
 *
 * The I = tiles x nkb iterations (tile-major: iteration i is K block i % nkb of tile i / nkb) are
 * cut into B contiguous ranges, block b taking [b I / B, (b + 1) I / B) (lengths differing by at
 * most one; non-empty when B <= I). The block holding iteration i is b(i) = ((i + 1) B - 1) / I.
 * A tile whose K blocks span several blocks is finished by a split-K fixup: segment z of the
 * tile is the part block bfirst + z holds (bfirst = b(first iteration of the tile)); every
 * segment writes its fp32 partial to a workspace slot, and the last to finish sums them in
 * segment order. Block b writes at most two partials, for the tile it starts inside and the tile
 * it ends inside, so the workspace is 2 B partial tiles: segment z of a tile at slot
 * 2 (bfirst + z) + (z == 0) (the tile is the first tile of block bfirst + z when z > 0, the last
 * tile of block bfirst when z == 0). */
#ifndef SK_CUDA_W4_SK_H
#define SK_CUDA_W4_SK_H

#ifdef __CUDACC__
#define SK_W4SK_FN static __host__ __device__ __forceinline__
#else
#define SK_W4SK_FN static inline
#endif

/* One segment: K blocks [kb0, kb1) of tile `tile`, segment seg of the tile's nseg, whose first
 * segment is held by block bfirst. */
typedef struct sk_w4sk_seg {
    int tile, kb0, kb1, seg, nseg, bfirst;
} sk_w4sk_seg;

/* First iteration of block b, and the end of its range. */
SK_W4SK_FN long long sk_w4sk_begin(long long I, long long B, long long b) { return b * I / B; }
SK_W4SK_FN long long sk_w4sk_end(long long I, long long B, long long b) {
    return (b + 1) * I / B;
}

/* The segment of block b that starts at iteration it (begin <= it < end). */
SK_W4SK_FN sk_w4sk_seg sk_w4sk_segment(long long I, long long B, int nkb, long long b,
                                       long long it) {
    sk_w4sk_seg s;
    const long long end = sk_w4sk_end(I, B, b);
    s.tile = (int)(it / nkb);
    s.kb0 = (int)(it % nkb);
    s.kb1 = end - it < (long long)(nkb - s.kb0) ? (int)(s.kb0 + (end - it)) : nkb;
    s.bfirst = (int)((((long long)s.tile * nkb + 1) * B - 1) / I);
    const int blast = (int)((((long long)s.tile + 1) * nkb * B - 1) / I);
    s.seg = (int)(b - s.bfirst);
    s.nseg = blast - s.bfirst + 1;
    return s;
}

/* Workspace slot (in partial tiles) of segment z of a tile whose first segment block bfirst
 * holds. */
SK_W4SK_FN long long sk_w4sk_slot(int bfirst, int z) { return 2LL * (bfirst + z) + (z == 0); }

#endif
