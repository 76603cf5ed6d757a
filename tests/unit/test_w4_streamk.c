/* The stream-K partition of the W4 wgmma GEMM (src/backend/cuda/w4_sk.h), checked without a GPU
 * over many shapes: every (tile, K block) iteration is covered exactly once and in order, each
 * block's range is contiguous and non-empty, the segments of a tile are numbered 0 .. nseg - 1
 * by consecutive blocks with one nseg, and the workspace slots of split tiles are distinct, below
 * 2 B, and the ones the fixup (the last segment to finish) reads back. */
#include <stdlib.h>
#include <string.h>

#include "backend/cuda/w4_sk.h"
#include "testlib.h"

static unsigned long long rng = 0x9e3779b97f4a7c15ull;
static unsigned rnd(unsigned n) {
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* One shape: tiles x nkb iterations over B blocks (B <= I, as the launcher ensures). Returns
 * the number of failed properties. */
static int check_shape(int tiles, int nkb, long long B) {
    const long long I = (long long)tiles * nkb;
    int bad = 0;
    unsigned char *seen = calloc((size_t)I, 1);
    int *nseg_of = malloc(sizeof(int) * (size_t)tiles);
    int *segs_seen = calloc((size_t)tiles, sizeof(int));
    long long *slot_tile = malloc(sizeof(long long) * (size_t)(2 * B));
    int *slot_seg = malloc(sizeof(int) * (size_t)(2 * B));
    for (int t = 0; t < tiles; t++) nseg_of[t] = -1;
    for (long long s = 0; s < 2 * B; s++) slot_tile[s] = -1;
    long long prev_end = 0;
    for (long long b = 0; b < B; b++) {
        const long long begin = sk_w4sk_begin(I, B, b), end = sk_w4sk_end(I, B, b);
        if (begin != prev_end || end <= begin) bad++; /* contiguous, non-empty */
        prev_end = end;
        for (long long it = begin; it < end;) {
            const sk_w4sk_seg s = sk_w4sk_segment(I, B, nkb, b, it);
            if (s.tile < 0 || s.tile >= tiles || s.kb0 < 0 || s.kb1 <= s.kb0 || s.kb1 > nkb ||
                (long long)s.tile * nkb + s.kb0 != it) {
                bad++;
                break;
            }
            for (int k = s.kb0; k < s.kb1; k++) {
                const long long i = (long long)s.tile * nkb + k;
                if (seen[i]) bad++;
                seen[i] = 1;
            }
            if (s.seg < 0 || s.seg >= s.nseg || s.bfirst + s.seg != b) bad++;
            if (nseg_of[s.tile] >= 0 && nseg_of[s.tile] != s.nseg) bad++;
            nseg_of[s.tile] = s.nseg;
            segs_seen[s.tile]++;
            if (s.nseg > 1) {
                const long long slot = sk_w4sk_slot(s.bfirst, s.seg);
                if (slot < 0 || slot >= 2 * B) {
                    bad++;
                } else {
                    if (slot_tile[slot] >= 0) bad++; /* two partials in one slot */
                    slot_tile[slot] = s.tile;
                    slot_seg[slot] = s.seg;
                }
            }
            it += s.kb1 - s.kb0;
        }
    }
    if (prev_end != I) bad++;
    for (long long i = 0; i < I; i++)
        if (!seen[i]) bad++;
    /* the fixup of each split tile reads slots sk_w4sk_slot(bfirst, z), z < nseg: they must be
     * the ones its segments wrote */
    for (int t = 0; t < tiles; t++) {
        if (segs_seen[t] != nseg_of[t]) bad++;
        if (nseg_of[t] <= 1) continue;
        const int bfirst = (int)((((long long)t * nkb + 1) * B - 1) / I);
        for (int z = 0; z < nseg_of[t]; z++) {
            const long long slot = sk_w4sk_slot(bfirst, z);
            if (slot < 0 || slot >= 2 * B || slot_tile[slot] != t || slot_seg[slot] != z) bad++;
        }
    }
    free(seen), free(nseg_of), free(segs_seen), free(slot_tile), free(slot_seg);
    return bad;
}

int main(void) {
    /* the launcher's shapes: B = resident slots, at most I / 4 */
    const int tiles_fixed[] = {1, 2, 64, 80, 128, 131, 132, 133, 448};
    const int nkb_fixed[] = {1, 2, 4, 7, 64, 86, 224};
    const long long b_fixed[] = {1, 2, 132, 264, 396};
    for (size_t a = 0; a < sizeof tiles_fixed / sizeof tiles_fixed[0]; a++)
        for (size_t c = 0; c < sizeof nkb_fixed / sizeof nkb_fixed[0]; c++)
            for (size_t d = 0; d < sizeof b_fixed / sizeof b_fixed[0]; d++) {
                const long long I = (long long)tiles_fixed[a] * nkb_fixed[c];
                long long B = b_fixed[d];
                if (B > I) B = I;
                const int bad = check_shape(tiles_fixed[a], nkb_fixed[c], B);
                CHECKF(bad == 0, "tiles %d nkb %d B %lld: %d violations", tiles_fixed[a],
                       nkb_fixed[c], B, bad);
            }
    for (int r = 0; r < 3000; r++) {
        const int tiles = 1 + (int)rnd(500), nkb = 1 + (int)rnd(240);
        const long long I = (long long)tiles * nkb;
        long long B = 1 + (long long)rnd(600);
        if (B > I) B = I;
        const int bad = check_shape(tiles, nkb, B);
        CHECKF(bad == 0, "tiles %d nkb %d B %lld: %d violations", tiles, nkb, B, bad);
    }
    /* the slot rule as documented: first segment in its block's second slot, the others in
     * their blocks' first */
    CHECK(sk_w4sk_slot(5, 0) == 11 && sk_w4sk_slot(5, 1) == 12 && sk_w4sk_slot(5, 2) == 14);
    return sk_test_done("w4_streamk");
}
