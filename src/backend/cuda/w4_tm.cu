/* The backend's entry to the INT4 decode GEMVs at 3..32 rows (w4_tm.cuh, w4_tx.cuh say why and
 * how). */
#include "backend/cuda/w4_tm.h"

#include "backend/cuda/w4_tm.cuh"
#include "backend/cuda/w4_tx.cuh"

static int tm_env(const char *name, int dflt) {
    const char *e = getenv(name);
    return e && *e ? atoi(e) : dflt;
}

/* The configuration per mode, row bound and shape (sk_w4_tm_launch_cfg's index), from dev_gemv_w4 tm
 * on the H200 (bench/results/awq-speed.md, session 16: the 70B and 7B products at 4..16 rows,
 * two calls): qkv (STORE) MT2 NW4 D3; o and down (ADD) MT2 NW8 D2, at 16 rows MT2 NW4 D3 for
 * 8192 rows and more (70B o 19.3 against 22.2 us, down 55.1 against 56.7; 7B o 9.0 against
 * 10.0); gate/up (SwiGLU) MT2 NW4 D2. SAKER_W4_TM_CFG=n forces one for every product. (A
 * register cut and two more configurations measured faster on some 7B products in the
 * workbench, and 4-8% slower through the engine: not kept, awq-speed.md.) */
static int tm_pick(int mode, int TP, int N_out) {
    static int forced = -2;
    if (forced == -2) forced = tm_env("SAKER_W4_TM_CFG", 0);
    if (forced >= 1 && forced <= SK_W4TM_NCFG) return forced;
    if (mode == SK_GEMV_SWIGLU) return 4;
    if (mode == SK_GEMV_ADD) return TP > 8 && N_out >= 8192 ? 1 : 2;
    return 1;
}

/* sk_w4_tx_kernel (x resident in shared memory, K in ranges) from SAKER_W4_TX_MIN rows (default
 * 9; 0: never) to 32, configuration SAKER_W4_TX_CFG (default: tx_pick's). */
static int tx_min(void) {
    static int e = -2;
    if (e == -2) e = tm_env("SAKER_W4_TX_MIN", 9);
    return e;
}
/* Its configuration (sk_w4_tx_launch_cfg's index), or 0 for sk_w4_tm_kernel (9..16 rows only),
 * from dev_gemv_w4 tm on the H200 (awq-speed.md, session 18: the 70B and 7B products at 12..32
 * rows after the instruction diet and the 12-16 warp configurations; us at 16 / 32 rows):
 *   9..16 rows: STORE 1 from K 8192 (70B qkv + norm 22.4 against tm's 29.5; 7B, K 4096, 17.8
 *     against 18.3 here but tm faster through the engine: batch 16 3.095 against 3.138 ms); ADD 6 from
 *     K 16384 (70B down 51.4 / 55.4) and 1 from N_out 8192 (70B o 19.3 / 20.0), else tm (7B o
 *     8.9 against tx's 9.x, 7B down 14.9 / 16.4); SwiGLU 7 from N_out 16384 (70B gate/up 89.9 /
 *     95.2), else 6 (7B 24.1 / 25.7) -- since session 21 tm below N_out 16384 (7B gate/up: the
 *     engine at batch 16, ITL ms, 3.155 on tx against 3.136 on tm, 128-byte smem base both).
 *   17..32 rows (tx against tm at bound 32; which modes: tx_wanted): STORE 3 from K 8192 (70B
 *     qkv 37.8), else 6 (7B 24.8 against 3's 27.1); ADD 4, 3 from K 16384 (70B o 30.5, down
 *     91.7); SwiGLU 7 from N_out 16384 (70B gate/up 147.3 against session 17's 165.5), else 1
 *     (7B 36.3).
 * SAKER_W4_TX_CFG=n forces one for every product it takes. */
static int tx_pick(int mode, int TP, int N_out, int K) {
    static int forced = -2;
    if (forced == -2) forced = tm_env("SAKER_W4_TX_CFG", 0);
    if (forced >= 1 && forced <= SK_W4TX_NCFG) return forced;
    if (TP <= 16) {
        if (mode == SK_GEMV_STORE) return K >= 8192 ? 1 : 0;
        if (mode == SK_GEMV_ADD) return K >= 16384 ? 6 : N_out >= 8192 ? 1 : 0;
        return N_out >= 16384 ? 7 : 0;
    }
    if (mode == SK_GEMV_STORE) return K >= 8192 ? 3 : 6;
    if (mode == SK_GEMV_ADD) return K >= 16384 ? 3 : 4;
    return N_out >= 16384 ? 7 : 1;
}
static bool tx_wanted(int T, int G, int mode) {
    /* SAKER_W4_TX_MODES: a mask of the modes it takes past 16 rows (1 STORE, 2 ADD, 4 SwiGLU);
     * SAKER_W4_TX_MODES16 the same at 9..16 rows. Past 16 rows the default is 7 since session
     * 18 (70B INT4 batch 24 / 32, one call: 28.03 / 28.46 ms a step with 5, 27.25 / 27.60 with
     * 7; 7B batch 24 4.94 / 4.70; session 17, before the instruction diet, had o and down
     * slower on tx than on the tile kernels in the engine: 5 then). At 9..16 rows the default is
     * 1 (qkv only, K >= 8192: tx_pick), though the workbench has tx faster than tm for 70B o,
     * down and gate/up too: through the engine (one call, ITL ms) 70B batch 16 18.02 with 1,
     * 18.21 with none, 18.31 with 3, 18.54 with 5, 18.91 with 7; batch 12 17.78 / 18.00 / 18.13
     * / 18.44 / 18.68; 7B batch 16 3.10 with none, 3.35 with 5 or 7.
     * Session 21: that engine-only loss was the dynamic shared memory base: static shared memory
     * of 16 mod 32 bytes in the product's build put every cp.async ring destination 16 bytes off
     * its source's 32-byte sectors, and each weight sector was requested twice (ncu
     * SourceCounters: 2x L2 sectors on every weight LDGSTS, nothing else different; the
     * workbench's build happened to be 32-aligned). With the base at 128 bytes (w4.cuh, w4_tm.cuh,
     * w4_tx.cuh) the default at 9..16 rows is 7: 70B INT4 batch 16 16.68 / 16.76 ms all-tx
     * against 17.93 / 17.92 with 1 (and 19.05 / 19.00 all-tx before the fix); 7B takes tm for
     * all four anyway (tx_pick). */
    static int modes = -2, modes16 = -2;
    if (modes == -2) {
        modes = tm_env("SAKER_W4_TX_MODES", 7);
        modes16 = tm_env("SAKER_W4_TX_MODES16", 7);
    }
    const int lo = tx_min();
    return lo > 0 && T >= lo && T >= 9 && T <= 32 && G != 32 && (T <= 16 || G == 128) &&
           ((T <= 16 ? modes16 : modes) >> mode & 1);
}
/* the scratch matmul.cu passes (the W4 tile kernels' split-K workspace, w4_mma.cuh; matmul.cu
 * asserts it is this size) */
#define SK_W4TX_BACKEND_WS ((size_t)16 << 20)
#define SK_W4TX_BACKEND_CNT 8192

/* The row bound (template TP) for T rows: 8, 16, then tx's 24 (session 18: at 17..24 rows the
 * bound of 32 ran a third of its MMAs, B loads and scale FMAs on zero rows; SAKER_W4_TX_TP24=0
 * keeps 32) and 32. */
static int tm_bound(int T) {
    static int tp24 = -2;
    if (tp24 == -2) tp24 = tm_env("SAKER_W4_TX_TP24", 1);
    return T <= 8 ? 8 : T <= 16 ? 16 : T <= 24 && tp24 ? 24 : 32;
}

/* From SAKER_W4_TM_MIN rows (default 3; ADD products from SAKER_W4_TM_ADD_MIN, default 3): at 4
 * rows this kernel beat the T <= 4 one (w4.cuh, sk_w4_tc_kernel) on every 70B product (qkv 18.2
 * against 29.1 us, o 14.4 / 15.0, gate/up 69.3 / 111.7, down 37.8 / 44.7: 139.7 against 200.5
 * a layer) and on 7B's but o (9.1 against 7.3 us; the four 52.9 against 66.0). 17..32 rows only
 * through sk_w4_tx_kernel. */
bool sk_w4_tm_ok(int T, int mode, int N_out, int K, int G, const void *x, const void *gamma) {
    static int tmin = -1, amin = -1;
    if (tmin < 0) {
        tmin = tm_env("SAKER_W4_TM_MIN", 3);
        amin = tm_env("SAKER_W4_TM_ADD_MIN", 3);
    }
    const int lo = mode == SK_GEMV_ADD ? (amin > tmin ? amin : tmin) : tmin;
    if (tmin <= 0 || T < lo || T < 3 || T > 32) return false;
    if (T > 16 && (!tx_wanted(T, G, mode) || !sk_w4_tx_fits(32, mode, N_out, K, SK_W4TX_BACKEND_WS,
                                                         SK_W4TX_BACKEND_CNT)))
        return false;
    return sk_w4_tm_fits(tm_bound(T), T, mode, N_out, K, G, x, gamma);
}

size_t sk_w4_tm_scratch_bytes(int K) {
    return sk_w4_tm_x16_halves(32, K) * 2 + 32 * SK_W4TM_NKB_MAX * sizeof(float);
}

template <int MODE>
static bool tm_run(int cfg, int TP, const float *x, int T, const uint32_t *q4, const __half2 *q4s,
                   int G, const float *bias, int N_out, int K, float *out, const float *gamma,
                   float eps, __half *x16, float *ssq, float *ws, size_t ws_floats, int *cnt,
                   int cnt_n, cudaStream_t s) {
    const int xc = TP >= 16 && tx_wanted(T, G, MODE) ? tx_pick(MODE, TP, N_out, K) : 0;
    if (xc > 0 || TP > 16) {
        const bool ok = TP == 16 ? sk_w4_tx_launch_cfg<16, MODE>(xc, x, T, q4, q4s, G, bias, N_out, K, out, gamma, eps, x16, ssq, ws, ws_floats, cnt, cnt_n, s)
                        : TP == 24 ? sk_w4_tx_launch_cfg<24, MODE>(xc, x, T, q4, q4s, G, bias, N_out, K, out, gamma, eps, x16, ssq, ws, ws_floats, cnt, cnt_n, s)
                                   : sk_w4_tx_launch_cfg<32, MODE>(xc, x, T, q4, q4s, G, bias, N_out, K, out, gamma, eps, x16, ssq, ws, ws_floats, cnt, cnt_n, s);
        if (ok || TP > 16) return ok;
    }
    if (TP == 8)
        return sk_w4_tm_launch_cfg<8, MODE>(cfg, x, T, q4, q4s, G, bias, N_out, K, out, gamma, eps,
                                            x16, ssq, s);
    return sk_w4_tm_launch_cfg<16, MODE>(cfg, x, T, q4, q4s, G, bias, N_out, K, out, gamma, eps,
                                         x16, ssq, s);
}

void sk_w4_tm_gemv(int mode, const float *x, int T, const uint32_t *q4, const __half2 *q4s, int G,
                   const float *bias, int N_out, int K, float *out, const float *gamma, float eps,
                   void *scratch, float *ws, size_t ws_floats, int *cnt, int cnt_n, cudaStream_t s) {
    const int TP = tm_bound(T), cfg = tm_pick(mode, TP, N_out);
    __half *x16 = (__half *)scratch;
    float *ssq = (float *)((char *)scratch + sk_w4_tm_x16_halves(32, K) * 2);
    bool ok = false;
    if (mode == SK_GEMV_STORE)
        ok = tm_run<SK_GEMV_STORE>(cfg, TP, x, T, q4, q4s, G, bias, N_out, K, out, gamma, eps, x16, ssq, ws, ws_floats, cnt, cnt_n, s);
    else if (mode == SK_GEMV_ADD)
        ok = tm_run<SK_GEMV_ADD>(cfg, TP, x, T, q4, q4s, G, bias, N_out, K, out, nullptr, eps, x16, ssq, ws, ws_floats, cnt, cnt_n, s);
    else if (mode == SK_GEMV_SWIGLU)
        ok = tm_run<SK_GEMV_SWIGLU>(cfg, TP, x, T, q4, q4s, G, nullptr, N_out, K, out, gamma, eps, x16, ssq, ws, ws_floats, cnt, cnt_n, s);
    if (!ok) {
        fprintf(stderr, "saker: w4 tm: mode %d, %d rows, %d x %d, G %d not taken (sk_w4_tm_ok)\n",
                mode, T, N_out, K, G);
        abort();
    }
}
