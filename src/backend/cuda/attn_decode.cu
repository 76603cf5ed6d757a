/* Decode attention over the paged KV cache: the launcher (explicit dispatch switches over
 * head_dim, query tiles, warps and prefetch: STYLE.md 7), the planner and the public entry.
 * Kernels and contracts: attn_decode.cuh. Self-contained (CUDA headers and attn_params.h only) so
 * that the workbench dev/cuda/attention_decode.cu includes this file as is and times exactly the
 * code the backend runs. */
#include "attn_decode.cuh"

#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>

/* Caller bugs and CUDA failures: print what and where, abort (STYLE.md 8, first tier). */
#define SK_AD_CHECK(cond, what)                                                                    \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "saker: sk_attn_decode: %s (%s) in %s at %s:%d\n", what, #cond,        \
                    __func__, __FILE__, __LINE__);                                                 \
            abort();                                                                               \
        }                                                                                          \
    } while (0)
#define SK_AD_CUDA(call)                                                                           \
    do {                                                                                           \
        cudaError_t sk_ad_e_ = (call);                                                             \
        if (sk_ad_e_ != cudaSuccess) {                                                             \
            fprintf(stderr, "saker: CUDA error %s (%s): %s in %s at %s:%d\n",                      \
                    cudaGetErrorName(sk_ad_e_), cudaGetErrorString(sk_ad_e_), #call, __func__,     \
                    __FILE__, __LINE__);                                                           \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

typedef void (*sk_ad_kfn)(sk_ad_args);

/* ---- dispatch ------------------------------------------------------------------------------ */

/* One warp count: the register prefetch, or a ring of 0, 2 or 4 slots (head_dim 64/128). */
template <int HD, int NQT, int W> static sk_ad_kfn sk_ad_kernel_r(int prefetch, int ring) {
    if (prefetch) return ring ? NULL : sk_attn_decode_kernel2<HD, NQT, W, true, 0>;
    switch (ring) {
    case 0:
        return sk_attn_decode_kernel2<HD, NQT, W, false, 0>;
    case 2:
        if constexpr (HD % 64 == 0) return sk_attn_decode_kernel2<HD, NQT, W, false, 2>;
        return NULL;
    case 4:
        if constexpr (HD % 64 == 0) return sk_attn_decode_kernel2<HD, NQT, W, false, 4>;
        return NULL;
    default:
        return NULL;
    }
}

template <int HD, int NQT> static sk_ad_kfn sk_ad_kernel_w(int warps, int prefetch, int ring) {
    switch (warps) {
    case 1: /* no merge between warps (measured in the workbench; the defaults take 2 warps:
             * see sk_attn_decode_default_cfg) */
        return sk_ad_kernel_r<HD, NQT, 1>(prefetch, ring);
    case 2:
        return sk_ad_kernel_r<HD, NQT, 2>(prefetch, ring);
    case 4:
        return sk_ad_kernel_r<HD, NQT, 4>(prefetch, ring);
    case 8:
        return sk_ad_kernel_r<HD, NQT, 8>(prefetch, ring);
    default:
        return NULL;
    }
}

template <int HD> static sk_ad_kfn sk_ad_kernel_q(int qtiles, int warps, int prefetch, int ring) {
    switch (qtiles) {
    case 1:
        return sk_ad_kernel_w<HD, 1>(warps, prefetch, ring);
    case 2:
        return sk_ad_kernel_w<HD, 2>(warps, prefetch, ring);
    case 4:
        /* 4 query tiles at head_dim 128 would need 128 accumulator + 64 query registers. */
        if constexpr (HD != 128) return sk_ad_kernel_w<HD, 4>(warps, prefetch, ring);
        return NULL;
    default:
        return NULL;
    }
}

/* Dynamic shared memory a configuration may use (the H200 allows 227 KB a block). */
#define SK_AD_MAX_SMEM ((size_t)200 << 10)

/* Lets fn use smem bytes of dynamic shared memory (above the default 48 KB). The planner does
 * this before a step is captured in a graph; the launcher's call then finds the kernel in the
 * table and makes no CUDA call (one device per process, one thread launching). */
static void sk_ad_allow_smem(sk_ad_kfn fn, size_t smem) {
    static struct {
        sk_ad_kfn fn;
        size_t smem;
    } done[64];
    static int n_done = 0;
    if (smem <= ((size_t)48 << 10)) return;
    for (int i = 0; i < n_done; i++)
        if (done[i].fn == fn && done[i].smem >= smem) return;
    SK_AD_CUDA(cudaFuncSetAttribute((const void *)fn, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)smem));
    if (n_done < 64) done[n_done].fn = fn, done[n_done].smem = smem, n_done++;
}

/* The kernel for a configuration, NULL when the configuration is not instantiated. */
static sk_ad_kfn sk_ad_kernel(int head_dim, const sk_attn_decode_cfg *cfg) {
    if (cfg->prefetch != 0 && cfg->prefetch != 1) return NULL;
    if (cfg->l2pf < 0 || cfg->l2pf > 8 || (cfg->prefetch && cfg->l2pf)) return NULL;
    if (cfg->ring && (cfg->prefetch || cfg->l2pf)) return NULL;
    if (sk_ad_smem_bytes(head_dim, cfg->qtiles, cfg->warps, cfg->wq, cfg->ring) > SK_AD_MAX_SMEM)
        return NULL;
    if (cfg->wq != 1 && cfg->wq != 2 && cfg->wq != 4) return NULL;
    if (cfg->wq > cfg->warps || cfg->warps % cfg->wq != 0) return NULL;
    switch (head_dim) {
    case 64:
        return sk_ad_kernel_q<64>(cfg->qtiles, cfg->warps, cfg->prefetch, cfg->ring);
    case 80:
        return sk_ad_kernel_q<80>(cfg->qtiles, cfg->warps, cfg->prefetch, cfg->ring);
    case 128:
        return sk_ad_kernel_q<128>(cfg->qtiles, cfg->warps, cfg->prefetch, cfg->ring);
    default:
        return NULL;
    }
}

/* ---- planning ------------------------------------------------------------------------------ */

int sk_attn_decode_supported(int head_dim, int n_heads, int n_kv_heads, int page_size) {
    const bool hd_ok = head_dim == 64 || head_dim == 80 || head_dim == 128;
    const bool ps_ok = page_size == 16 || page_size == 32 || page_size == 64 || page_size == 128;
    return hd_ok && ps_ok && n_kv_heads > 0 && n_heads > 0 && n_heads % n_kv_heads == 0;
}

sk_attn_decode_cfg sk_attn_decode_default_cfg(int head_dim, int group) {
    /* Tuned on the H200 with the workbench (dev/cuda/attention_decode.cu; bench/results/decode.md,
     * 2026-11-29 session 4, the shared-memory ring): every configuration at 64 x 4096,
     * 256 x 1024 and the engine's short contexts (896 x 192, 116 x 192), worst case against the
     * best configuration of each shape:
     *   one 8-query tile (group <= 8): 1 warp per block with a ring of 2: within 5.7% everywhere
     *     (g8 64 x 4096 258.7 us, MHA 1916, 896 x 192 643, 116 x 192 30.8); 2 warps without the
     *     ring lost up to 6.2%, 4 warps 14-28% at the short contexts;
     *   groups over 16 at head_dim 64/80: 4 tiles per warp, 2 warps, a ring of 2 (Falcon-180B g29
     *     64 x 4096: 143.6 us, 88% of copy, against 160.5 with the L2 prefetch and no ring; head
     *     dim 80 has no ring: the L2 prefetch instead);
     *   groups over 16 at 128: 2 x 2 tiles side by side, 4 warps, a ring of 2 (MQA g64: within
     *     5.5-7.3% of the best; 84.7 us against 105 before);
     *   groups of 9..16: 2 tiles per warp, 4 warps (not re-measured: no such shape in the set).
     * The register prefetch stays off (it lowers occupancy more than it hides). */
    const int need = (group + 7) / 8;
    sk_attn_decode_cfg c;
    c.prefetch = 0;
    c.l2pf = 0;
    c.ring = 0;
    if (need <= 1) {
        /* head_dim 80 has no ring: 2 warps, the rule measured without it (8e26153) */
        c.qtiles = 1, c.wq = 1;
        c.warps = head_dim % 64 == 0 ? 1 : 2;
        c.ring = head_dim % 64 == 0 ? 2 : 0;
        /* SAKER_ATTN_G8CFG=warps,ring,prefetch (experiment, session 12): another one-tile
         * configuration for groups <= 8 at head_dim 64 / 128 (warps 1/2/4/8, ring 0/2/4,
         * prefetch 0/1: every one is instantiated) */
        static int ew = -1, er = 0, ep = 0;
        if (ew < 0) {
            const char *e = getenv("SAKER_ATTN_G8CFG");
            int w = 0, r = 0, pf = 0;
            ew = 0;
            if (e && sscanf(e, "%d,%d,%d", &w, &r, &pf) == 3 &&
                (w == 1 || w == 2 || w == 4 || w == 8) && (r == 0 || r == 2 || r == 4) &&
                (pf == 0 || pf == 1) && !(pf && r))
                ew = w, er = r, ep = pf;
        }
        if (ew > 0 && head_dim % 64 == 0) c.warps = ew, c.ring = er, c.prefetch = ep;
    } else if (need == 2) {
        c.qtiles = 2, c.wq = 1, c.warps = 4;
    } else if (head_dim != 128) {
        c.qtiles = 4, c.wq = 1, c.warps = 2;
        if (head_dim % 64 == 0)
            c.ring = 2;
        else
            c.l2pf = 1;
    } else {
        c.qtiles = 2, c.wq = 2, c.warps = 4, c.ring = 2;
    }
    return c;
}

/* The split merge by clusters (session 22, attn_decode.cuh kernel 2's a.clus), for 2..
 * SK_AD_CLUSTER_MAX splits. SAKER_ATTN_CLUSTER (or sk_attn_decode_set_cluster): 0 off; 1 (the
 * default) where the launch's clusters all fit at once (one wave: the occupancy API's active
 * clusters); 2 wherever clusters of that size fit at all. Why one wave: H200, engine, ITL p50,
 * merged wherever they fit against the combine: 70B INT4 batch 1 11.31 / 11.32 against 11.42 /
 * 11.43 ms, 7B batch 1 1.784 / 1.782 against 1.821 / 1.825, but 70B batch 16 (2,048 blocks,
 * more than a wave) 16.75 against 16.53, batch 64 even (bench/results/decode.md, session 22).
 * The occupancy is asked once per kernel and split count; the planner asks first, outside any
 * graph capture. */
/* The push merge (session 28, attn_decode.cuh kernel 2's a.push) where the cluster merge runs
 * with one warp a block at head_dim 64 / 128. SAKER_ATTN_PUSH: 2 (default, session 29) the staged
 * pushes (each block's partial staged in its own shared memory, then one coalesced store a lane
 * and peer); 1 session 28's scattered pushes (from the MMA fragments, each store to 4 peers);
 * 0 the pull merge (comparisons). */
static int sk_ad_push_mode(void) {
    static int mode = -1;
    if (mode < 0) {
        const char *e = getenv("SAKER_ATTN_PUSH");
        mode = e && *e ? atoi(e) : 2;
        if (mode < 0 || mode > 2) mode = 2;
    }
    return mode;
}
static bool sk_ad_push_on(void) { return sk_ad_push_mode() > 0; }
static int sk_ad_cluster_on = -1, sk_ad_cluster_last = 0;
void sk_attn_decode_set_cluster(int on) { sk_ad_cluster_on = on < 0 ? 0 : on > 2 ? 2 : on; }
int sk_attn_decode_cluster_used(void) { return sk_ad_cluster_last; }
static int sk_ad_push_last = 0;
int sk_attn_decode_push_used(void) { return sk_ad_push_last; }
static bool sk_ad_cluster_fits(sk_ad_kfn fn, int ns, unsigned threads, size_t smem, long long blocks) {
    if (sk_ad_cluster_on < 0) {
        const char *e = getenv("SAKER_ATTN_CLUSTER");
        sk_ad_cluster_on = e && *e ? atoi(e) : 1;
        if (sk_ad_cluster_on < 0 || sk_ad_cluster_on > 2) sk_ad_cluster_on = 1;
    }
    if (!sk_ad_cluster_on || ns < 2 || ns > SK_AD_CLUSTER_MAX) return false;
    static struct {
        sk_ad_kfn fn;
        int ns, ok;
    } seen[128];
    static int n_seen = 0;
    for (int i = 0; i < n_seen; i++)
        if (seen[i].fn == fn && seen[i].ns == ns)
            return seen[i].ok > 0 && (sk_ad_cluster_on == 2 || blocks <= (long long)seen[i].ok * ns);
    int ok = 1, n = 0;
    if (ns > 8 && cudaFuncSetAttribute((const void *)fn, cudaFuncAttributeNonPortableClusterSizeAllowed,
                                       1) != cudaSuccess)
        ok = 0;
    if (ok) {
        cudaLaunchConfig_t cfg = {};
        cfg.gridDim = dim3((unsigned)ns);
        cfg.blockDim = dim3(threads);
        cfg.dynamicSmemBytes = smem;
        cudaLaunchAttribute attr[1];
        attr[0].id = cudaLaunchAttributeClusterDimension;
        attr[0].val.clusterDim.x = (unsigned)ns;
        attr[0].val.clusterDim.y = 1;
        attr[0].val.clusterDim.z = 1;
        cfg.attrs = attr;
        cfg.numAttrs = 1;
        ok = cudaOccupancyMaxActiveClusters(&n, fn, &cfg) == cudaSuccess && n > 0;
    }
    (void)cudaGetLastError(); /* a refusal is an answer, not an error to keep */
    const int act = ok ? n : 0; /* clusters resident at once, 0: none fits */
    if (n_seen < 128) seen[n_seen].fn = fn, seen[n_seen].ns = ns, seen[n_seen].ok = act, n_seen++;
    return act > 0 && (sk_ad_cluster_on == 2 || blocks <= (long long)act * ns);
}

/* Split count: flash-decoding style wave efficiency. With base = blocks without splitting and
 * slots = SMs x resident blocks per SM, no split when base already fills 80% of the slots;
 * otherwise the smallest n_splits whose last wave is at least 85% as full as the best one,
 * keeping every warp of a split busy (>= warps/wq chunks per split). The "already fills" test
 * counts at most max(2, 4 / warps) blocks per SM: with blocks of 1-2 warps the occupancy counts
 * many slots, and splitting sequences whose warps already stream enough bytes only adds the
 * combine (H200, 1 warp + ring of 2: g8 64 x 4096 one split 252.8 us against 268.4 for the 5
 * the uncapped test chose; 116 x 192: 30.7 against 45.4 for 4); the split count itself is
 * planned on all the slots (a lone long sequence wants many). */
#define SK_AD_SPLIT_FILL 0.8
#define SK_AD_SPLIT_EFF 0.85
#define SK_AD_SPLIT_CAP 8
#define SK_AD_SPLIT_TOK 256

void sk_attn_decode_make_plan_cfg(int batch, int n_heads, int n_kv_heads, int head_dim,
                                  int max_kv_len, int n_sm, const sk_attn_decode_cfg *cfg,
                                  sk_attn_decode_plan *plan) {
    SK_AD_CHECK(sk_attn_decode_supported(head_dim, n_heads, n_kv_heads, 16),
                "unsupported head_dim or head counts");
    SK_AD_CHECK(batch >= 0 && max_kv_len >= 0 && n_sm > 0, "bad batch, max_kv_len or n_sm");
    const sk_ad_kfn fn = sk_ad_kernel(head_dim, cfg);
    SK_AD_CHECK(fn != NULL, "configuration not instantiated");
    const int group = n_heads / n_kv_heads;
    const int qb = cfg->wq * cfg->qtiles * 8;
    plan->cfg = *cfg;
    plan->n_qblk = (group + qb - 1) / qb;

    int occ = 0;
    const size_t smem = sk_ad_smem_bytes(head_dim, cfg->qtiles, cfg->warps, cfg->wq, cfg->ring);
    sk_ad_allow_smem(fn, smem);
    SK_AD_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, fn, cfg->warps * 32, smem));
    if (occ < 1) occ = 1;
    plan->blocks_per_sm = occ;

    const double base = (double)batch * n_kv_heads * plan->n_qblk;
    const int cap = 4 / cfg->warps > 2 ? 4 / cfg->warps : 2;
    const double fill_slots = (double)n_sm * (occ < cap ? occ : cap);
    const double slots = (double)n_sm * occ;
    const int n_chunks = (max_kv_len + SK_AD_CHUNK - 1) / SK_AD_CHUNK;
    const int wt = cfg->warps / cfg->wq;
    int max_ns = n_chunks / wt;
    if (max_ns > SK_ATTN_DECODE_MAX_SPLITS) max_ns = SK_ATTN_DECODE_MAX_SPLITS;
    int ns = 1;
    if (base > 0 && base < SK_AD_SPLIT_FILL * fill_slots && max_ns > 1) {
        double best = 0.0;
        for (int s = 1; s <= max_ns; s++) {
            const double w = base * s / slots;
            const double e = w / ceil(w);
            if (e > best) best = e;
        }
        for (int s = 1; s <= max_ns; s++) {
            const double w = base * s / slots;
            if (w / ceil(w) >= SK_AD_SPLIT_EFF * best) {
                ns = s;
                break;
            }
        }
    }
    /* The cap (session 7, Llama-2-70B INT4 at batch 1 through the engine, SAKER_ATTN_NS forcing
     * the count: ITL 14.82 ms with the rule's count at a 2,176-token context, 14.30 with 8,
     * 15.40 with 4, 21.6 with 1; 13.38 / 13.26 / 13.32 at 256 tokens): past 8 splits the rule's
     * extra blocks and partials cost more than they spread. A cap of 8 alone was 2.6% slower at
     * 3,968 tokens and 1% on 7B at 2,048, so it is max(8, one split per 256 tokens of context):
     * measured no slower anywhere (bench/results/decode.md, session 7). SAKER_ATTN_SPLIT_CAP=N
     * sets the 8 (0: no cap, the rule alone). */
    static int cap_env = -1;
    if (cap_env < 0) {
        const char *e = getenv("SAKER_ATTN_SPLIT_CAP");
        cap_env = e && *e ? atoi(e) : SK_AD_SPLIT_CAP;
        if (cap_env < 0) cap_env = SK_AD_SPLIT_CAP;
    }
    if (cap_env > 0) {
        const int tok_cap = (max_kv_len + SK_AD_SPLIT_TOK - 1) / SK_AD_SPLIT_TOK;
        const int c = cap_env > tok_cap ? cap_env : tok_cap;
        if (ns > c) ns = c;
    }
    plan->n_splits = ns;
    if (ns > 1) { /* the cluster merge's feasibility, asked here (outside any capture) */
        const size_t pb = sk_ad_push_on() ? sk_ad_push_bytes(head_dim, cfg->qtiles, cfg->warps, ns) : 0;
        sk_ad_allow_smem(fn, smem + pb);
        (void)sk_ad_cluster_fits(fn, ns, (unsigned)(cfg->warps * 32), smem + pb,
                                 (long long)base * ns);
    }
    const size_t rows = (size_t)batch * (size_t)n_heads * (size_t)ns;
    plan->part_out_floats = ns > 1 ? rows * (size_t)head_dim : 0;
    plan->part_lse_floats = ns > 1 ? rows : 0;
}

/* Blocks of cfg an SM (the occupancy API with the configuration's shared memory), remembered per
 * kernel: the planner asks first, outside any graph capture, and sk_attn_decode's launches
 * inside a capture then find the answer without a CUDA call (one device per process). */
static int sk_ad_occupancy(int head_dim, const sk_attn_decode_cfg *cfg) {
    const sk_ad_kfn fn = sk_ad_kernel(head_dim, cfg);
    SK_AD_CHECK(fn != NULL, "configuration not instantiated");
    static struct {
        sk_ad_kfn fn;
        int occ;
    } seen[32];
    static int n_seen = 0;
    for (int i = 0; i < n_seen; i++)
        if (seen[i].fn == fn) return seen[i].occ;
    const size_t smem = sk_ad_smem_bytes(head_dim, cfg->qtiles, cfg->warps, cfg->wq, cfg->ring);
    sk_ad_allow_smem(fn, smem);
    int occ = 0;
    SK_AD_CUDA(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, fn, cfg->warps * 32, smem));
    if (occ < 1) occ = 1;
    if (n_seen < 32) seen[n_seen].fn = fn, seen[n_seen].occ = occ, n_seen++;
    return occ;
}

/* The configuration the backend's entry runs for a step of batch sequences: the default one, but
 * without the ring where the ring-less blocks make exactly one wave of at least 12 warps an SM
 * (session 13): then every SM has enough warps streaming from registers, and the ring's shared
 * memory (16 KB a one-warp block at head_dim 128) only costs occupancy. H200, g8 d128 256 x 1024
 * (2,048 blocks, 15.5 an SM; 16 fit without the ring), us, two machines: ring 2 285.8-287.6 /
 * 250.0-251.1, no ring (L2::128B loads) 249.4 / 244.8-245.2; bench/results/decode.md session 13.
 * Outside the window the ring stays: fewer blocks (64 x 4096: 418.9 without against 248.0 with;
 * 139 x 1152: 169.9 / 163.4) or several waves (1146 x 192: 236.5 / 228.4; MHA 64 x 4096:
 * 1,874.9 / 1,868.8). Head dim 128 only (64 was not measured). An explicit SAKER_ATTN_G8CFG is
 * left alone. Used by sk_attn_decode_make_plan and sk_attn_decode, so that the plan and the
 * launch agree. */
static sk_attn_decode_cfg sk_ad_entry_cfg(int batch, int n_heads, int n_kv_heads, int head_dim,
                                          int n_sm, int n_splits) {
    sk_attn_decode_cfg cfg = sk_attn_decode_default_cfg(head_dim, n_heads / n_kv_heads);
    static int g8_env = -1;
    if (g8_env < 0) g8_env = getenv("SAKER_ATTN_G8CFG") != NULL;
    if (!g8_env && head_dim == 128 && cfg.qtiles == 1 && cfg.wq == 1 && cfg.warps == 1 &&
        cfg.ring == 2 && cfg.prefetch == 0 && n_heads / n_kv_heads <= 8 && batch > 0) {
        sk_attn_decode_cfg c0 = cfg;
        c0.ring = 0;
        const double base = (double)batch * n_kv_heads;
        if (base >= 12.0 * n_sm && base <= (double)n_sm * sk_ad_occupancy(head_dim, &c0))
            cfg = c0;
        /* Two warps a block (the ring of 2 each) where the unsplit blocks are 3.5-5 an SM: g8
         * d128 64 x 4096 (3.9 an SM) 244.7-245.5 us against 247.7-248.4 with one warp; 72 x
         * 4,224 (4.4, 128/4096's last step) 303.5 against 320.2; the engine's 128/4096 at batch
         * 72: 1,623.4 against 1,608.2 output tok/s (session 13). More blocks an SM lose with two
         * warps (139 x 1,152: 172.7 against 163.4). Only for unsplit steps (split > 1 = one-warp
         * splits of a few sequences). */
        else if (n_splits == 1 && base >= 3.5 * n_sm && base <= 5.0 * n_sm)
            cfg.warps = 2;
    }
    return cfg;
}

void sk_attn_decode_make_plan(int batch, int n_heads, int n_kv_heads, int head_dim, int max_kv_len,
                              int n_sm, sk_attn_decode_plan *plan) {
    SK_AD_CHECK(n_kv_heads > 0 && n_heads > 0, "bad head counts");
    /* the split count of the one-warp configuration decides the two-warp window */
    sk_attn_decode_plan p1;
    const sk_attn_decode_cfg c1 = sk_ad_entry_cfg(batch, n_heads, n_kv_heads, head_dim, n_sm, 0);
    sk_attn_decode_make_plan_cfg(batch, n_heads, n_kv_heads, head_dim, max_kv_len, n_sm, &c1, &p1);
    const sk_attn_decode_cfg cfg =
        sk_ad_entry_cfg(batch, n_heads, n_kv_heads, head_dim, n_sm, p1.n_splits);
    sk_attn_decode_make_plan_cfg(batch, n_heads, n_kv_heads, head_dim, max_kv_len, n_sm, &cfg,
                                 plan);
}

/* ---- launch -------------------------------------------------------------------------------- */

/* The current device's multiprocessors (one device per process: asked once). */
static int sk_ad_n_sm(void) {
    static int n_sm = 0;
    if (n_sm == 0) {
        int dev = 0;
        SK_AD_CUDA(cudaGetDevice(&dev));
        SK_AD_CUDA(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));
    }
    return n_sm;
}

static bool sk_ad_aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }


void sk_attn_decode_cfg_launch(const sk_attn_params *p, const sk_attn_decode_cfg *cfg,
                               cudaStream_t s) {
    const sk_paged_kv *kv = &p->kv;
    SK_AD_CHECK(sk_attn_decode_supported(kv->head_dim, p->n_heads, kv->n_kv_heads, kv->page_size),
                "unsupported head_dim, page_size or head counts");
    SK_AD_CHECK(p->batch >= 0, "negative batch");
    if (p->batch == 0) return;
    SK_AD_CHECK(kv->k && kv->v && sk_ad_aligned16(kv->k) && sk_ad_aligned16(kv->v),
                "K/V pool missing or not 16-byte aligned");
    SK_AD_CHECK(kv->indptr && kv->indices && kv->kv_len, "page table missing");
    SK_AD_CHECK(p->q && sk_ad_aligned16(p->q) && p->q_stride % 8 == 0 &&
                    p->q_stride >= (int64_t)p->n_heads * kv->head_dim,
                "q missing, not 16-byte aligned, or q_stride not a multiple of 8 covering n_heads");
    SK_AD_CHECK(p->out && sk_ad_aligned16(p->out), "out missing or not 16-byte aligned");
    SK_AD_CHECK(p->sm_scale > 0.0f && isfinite(p->sm_scale), "sm_scale must be positive");
    SK_AD_CHECK(p->n_splits >= 1 && p->n_splits <= SK_ATTN_DECODE_MAX_SPLITS, "n_splits");
    SK_AD_CHECK(p->n_splits == 1 ||
                    (p->part_out && p->part_lse && sk_ad_aligned16(p->part_out)),
                "split scratch missing or part_out not 16-byte aligned");
    const sk_attn_newtok *nt = &p->nt;
    SK_AD_CHECK(!nt->q || (cfg->ring > 0 && kv->head_dim % 64 == 0),
                "nt (the new token in fp32) needs a ring configuration (head_dim 64 or 128)");
    SK_AD_CHECK(!nt->q || (nt->k && nt->v && nt->freq && sk_ad_aligned16(nt->q) &&
                           sk_ad_aligned16(nt->k) && sk_ad_aligned16(nt->v) &&
                           nt->q_stride % 4 == 0 && nt->kv_stride % 4 == 0 &&
                           nt->q_stride >= p->n_heads * kv->head_dim &&
                           nt->kv_stride >= kv->n_kv_heads * kv->head_dim),
                "nt: q/k/v/freq missing, rows not 16-byte aligned, or strides too small");
    SK_AD_CHECK(!nt->q || (nt->rope_dim >= 0 && nt->rope_dim % 2 == 0 &&
                           nt->rope_dim <= kv->head_dim && nt->k_pool == kv->k &&
                           nt->v_pool == kv->v),
                "nt: rope_dim must be even and <= head_dim, k_pool / v_pool must be kv.k / kv.v");
    const sk_ad_kfn fn = sk_ad_kernel(kv->head_dim, cfg);
    SK_AD_CHECK(fn != NULL, "configuration not instantiated");

    sk_ad_args a;
    a.p = *p;
    a.group = p->n_heads / kv->n_kv_heads;
    a.lg_page = kv->page_size == 16 ? 4 : kv->page_size == 32 ? 5 : kv->page_size == 64 ? 6 : 7;
    a.wq = cfg->wq;
    a.l2pf = cfg->l2pf;
    const int qb = cfg->wq * cfg->qtiles * 8;
    a.n_qblk = (a.group + qb - 1) / qb;
    a.sl2 = p->sm_scale * 1.4426950408889634f;
    a.pdl_early = sk_attn_pdl_mode() == 2;
    const long long blocks =
        (long long)p->batch * p->n_splits * kv->n_kv_heads * (long long)a.n_qblk;
    SK_AD_CHECK(blocks <= INT_MAX, "grid too large");
    /* The next launch (the o GEMV) triggered after the chunk loop, before the merge (session
     * 25), so that its blocks start their weight loads while this kernel merges: where this
     * grid leaves SMs free (at most one block an SM). SAKER_ATTN_TRIG_LOOP: 0 never, 1 (the
     * default) that rule, 2 always. H200, 128/256, ITL p50 (bench/results/decode.md session 25):
     * 70B INT4 batch 1 (64 blocks) -0.8%, batch 2 (128) -0.7%; where the grid covers the SMs it
     * loses: 7B batch 1 (256 blocks) +0.8%, 70B batch 8 (512) +6%. */
    static int trig_loop = -1;
    if (trig_loop < 0) {
        const char *e = getenv("SAKER_ATTN_TRIG_LOOP");
        trig_loop = e && *e ? atoi(e) : 1;
        if (trig_loop < 0 || trig_loop > 2) trig_loop = 1;
    }
    a.pdl_loop = sk_attn_pdl_enabled() && !a.pdl_early &&
                 (trig_loop == 2 || (trig_loop == 1 && blocks <= sk_ad_n_sm()));
    const size_t smem0 =
        sk_ad_smem_bytes(kv->head_dim, cfg->qtiles, cfg->warps, cfg->wq, cfg->ring);
    const size_t pb =
        sk_ad_push_on() ? sk_ad_push_bytes(kv->head_dim, cfg->qtiles, cfg->warps, p->n_splits) : 0;
    sk_ad_allow_smem(fn, smem0 + pb);
    a.clus = p->n_splits > 1 && sk_ad_cluster_fits(fn, p->n_splits, (unsigned)(cfg->warps * 32),
                                                   smem0 + pb, blocks);
    a.push = a.clus && pb > 0 ? (int)smem0 : 0;
    a.push_staged = sk_ad_push_mode() == 2;
    const size_t smem = smem0 + (a.push ? pb : 0);
    sk_ad_cluster_last = a.clus;
    sk_ad_push_last = a.push > 0;
    /* the caller's kv_prewait, taken under SAKER_ATTN_PREWAIT=1 (pdl.cuh sk_attn_prewait) */
    a.prewait = p->kv_prewait && sk_attn_prewait();
    /* PDL launches (session 9): both kernels trigger and wait at their start (attn_decode.cuh) */
    if (sk_attn_skip() & SK_ATTN_SKIP_DECODE) {
    } else if (a.clus) {
        sk_launch_pdl_cluster(fn, dim3((unsigned)blocks), (unsigned)(cfg->warps * 32), smem,
                              (unsigned)p->n_splits, s, a);
    } else if (sk_attn_pdl_enabled())
        sk_launch_pdl_smem(fn, dim3((unsigned)blocks), (unsigned)(cfg->warps * 32), smem, s, a);
    else
        fn<<<(unsigned)blocks, cfg->warps * 32, smem, s>>>(a);
    SK_AD_CUDA(cudaGetLastError());
    if (p->n_splits > 1 && !a.clus && !(sk_attn_skip() & SK_ATTN_SKIP_COMBINE)) {
        sk_ad_comb_args c;
        c.part_out = p->part_out;
        c.part_lse = p->part_lse;
        c.out = p->out;
        c.out_f32 = p->out_f32;
        c.rows = p->batch * p->n_heads;
        c.n_splits = p->n_splits;
        c.head_dim = kv->head_dim;
        c.pdl_early = sk_attn_pdl_mode() == 2;
        if (sk_attn_pdl_enabled())
            sk_launch_pdl(sk_ad_combine_kernel, dim3((unsigned)((c.rows + 3) / 4)), 128u, s, c);
        else
            sk_ad_combine_kernel<<<(unsigned)((c.rows + 3) / 4), 128, 0, s>>>(c);
        SK_AD_CUDA(cudaGetLastError());
    }
}

int sk_attn_decode_takes_newtok(int batch, int n_heads, int n_kv_heads, int head_dim,
                                int n_splits) {
    if (n_kv_heads <= 0 || n_heads <= 0 || head_dim % 64 != 0) return 0;
    const sk_attn_decode_cfg cfg =
        sk_ad_entry_cfg(batch, n_heads, n_kv_heads, head_dim, sk_ad_n_sm(), n_splits);
    return cfg.ring > 0;
}

void sk_attn_decode(const sk_attn_params *p, cudaStream_t s) {
    SK_AD_CHECK(p->kv.n_kv_heads > 0 && p->n_heads > 0, "bad head counts");
    const sk_attn_decode_cfg cfg = sk_ad_entry_cfg(p->batch, p->n_heads, p->kv.n_kv_heads,
                                                   p->kv.head_dim, sk_ad_n_sm(), p->n_splits);
    sk_attn_decode_cfg_launch(p, &cfg, s);
}
