/* The backend's entry to the INT4 decode GEMV at 3..16 rows (w4_tm.cuh says why and how). */
#include "backend/cuda/w4_tm.h"

#include "backend/cuda/w4_tm.cuh"

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

/* From SAKER_W4_TM_MIN rows (default 3; ADD products from SAKER_W4_TM_ADD_MIN, default 3): at 4
 * rows this kernel beat the T <= 4 one (w4.cuh, sk_w4_tc_kernel) on every 70B product (qkv 18.2
 * against 29.1 us, o 14.4 / 15.0, gate/up 69.3 / 111.7, down 37.8 / 44.7: 139.7 against 200.5
 * a layer) and on 7B's but o (9.1 against 7.3 us; the four 52.9 against 66.0). */
bool sk_w4_tm_ok(int T, int mode, int N_out, int K, int G, const void *x, const void *gamma) {
    static int tmin = -1, amin = -1;
    if (tmin < 0) {
        tmin = tm_env("SAKER_W4_TM_MIN", 3);
        amin = tm_env("SAKER_W4_TM_ADD_MIN", 3);
    }
    const int lo = mode == SK_GEMV_ADD ? (amin > tmin ? amin : tmin) : tmin;
    if (tmin <= 0 || T < lo || T < 3 || T > 16) return false;
    return sk_w4_tm_fits(T <= 8 ? 8 : 16, T, mode, N_out, K, G, x, gamma);
}

size_t sk_w4_tm_scratch_bytes(int K) {
    return sk_w4_tm_x16_halves(16, K) * 2 + 16 * SK_W4TM_NKB_MAX * sizeof(float);
}

template <int MODE>
static bool tm_run(int cfg, int TP, const float *x, int T, const uint32_t *q4, const __half2 *q4s,
                   int G, const float *bias, int N_out, int K, float *out, const float *gamma,
                   float eps, __half *x16, float *ssq, cudaStream_t s) {
    if (TP == 8)
        return sk_w4_tm_launch_cfg<8, MODE>(cfg, x, T, q4, q4s, G, bias, N_out, K, out, gamma, eps,
                                            x16, ssq, s);
    return sk_w4_tm_launch_cfg<16, MODE>(cfg, x, T, q4, q4s, G, bias, N_out, K, out, gamma, eps,
                                         x16, ssq, s);
}

void sk_w4_tm_gemv(int mode, const float *x, int T, const uint32_t *q4, const __half2 *q4s, int G,
                   const float *bias, int N_out, int K, float *out, const float *gamma, float eps,
                   void *scratch, cudaStream_t s) {
    const int TP = T <= 8 ? 8 : 16, cfg = tm_pick(mode, TP, N_out);
    __half *x16 = (__half *)scratch;
    float *ssq = (float *)((char *)scratch + sk_w4_tm_x16_halves(16, K) * 2);
    bool ok = false;
    if (mode == SK_GEMV_STORE)
        ok = tm_run<SK_GEMV_STORE>(cfg, TP, x, T, q4, q4s, G, bias, N_out, K, out, gamma, eps, x16, ssq, s);
    else if (mode == SK_GEMV_ADD)
        ok = tm_run<SK_GEMV_ADD>(cfg, TP, x, T, q4, q4s, G, bias, N_out, K, out, nullptr, eps, x16, ssq, s);
    else if (mode == SK_GEMV_SWIGLU)
        ok = tm_run<SK_GEMV_SWIGLU>(cfg, TP, x, T, q4, q4s, G, nullptr, N_out, K, out, gamma, eps, x16, ssq, s);
    if (!ok) {
        fprintf(stderr, "saker: w4 tm: mode %d, %d rows, %d x %d, G %d not taken (sk_w4_tm_ok)\n",
                mode, T, N_out, K, G);
        abort();
    }
}
