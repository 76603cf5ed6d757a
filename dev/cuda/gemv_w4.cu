/* W4A16 matmul (INT4 group-quantized weights, fp32 activations in/out) for the CUDA backend:
 * kernel workbench (STYLE.md 1). Kernels from src/backend/cuda/w4.cuh, included as they are.
 *
 * Build and run from the repository root:
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -lineinfo -lcublasLt \
 *        -Isrc -o /tmp/gemv_w4 dev/cuda/gemv_w4.cu && /tmp/gemv_w4 [check|gemv|all]
 *
 * versions:
 *   v1 R/U        sk_w4_gemv_kernel (CUDA cores), T <= 4 rows; "v1 *" = its launch as the backend
 *                 had it (R8 U1 at T <= 2, R2 U2 above, 4 warps splitting K; SAKER_W4_GEMV=1)
 *   tc MT/D/ZC/KS sk_w4_tc_kernel (mma.sync on bf16 q - z and x = hi + lo), MT tiles of 16 rows
 *                 per warp, D steps of loads in flight, ZC 1: zero point applied after the MMAs,
 *                 KS warps per block; "backend's pick" = sk_w4_gemv_launch (MT1 D2 KS8, MT2 at
 *                 T >= 3 for store/add)
 *   w4 deq+lt     sk_w4_dequant_kernel to bf16, then cuBLASLt bf16 (the backend's path above 4
 *                 rows; the dequantization is timed with it)
 *   bf16 lt       the peer: x cast to bf16 + cuBLASLt bf16 on a bf16 weight of the same shape
 * main: 1. checks (random Q4G-style data: nibbles, scales in [0.001, 0.02], zero points 0..15; x
 *          uniform in [-1, 1], never zero) against a double CPU reference dequantizing the same
 *          words: max |err| / sum |x w| <= 1e-5 for the GEMVs, <= 1e-2 for deq+lt (bf16
 *          rounding of the dequantized weight), every mode, group sizes 32/64/128, shapes with
 *          partial steps (K % 128 != 0) and rows that end inside a tile, several KS;
 *       2. (gemv, all) decode timing in the model's modes (qkv store, o += , gate/up SwiGLU,
 *          down +=) on Llama-2-70B and 7B shapes at T = 1, 2, 4: back-to-back launches between
 *          CUDA events (batches of 10, median of 15), weights rotated over >= 256 MB so L2 holds
 *          none; INT4 GB/s = (N K / 2 + scales) / time, against the copy ceiling and cuBLASLt bf16
 *          measured in the same run; then a 70B decode step's GEMVs (80 layers + bf16 lm_head);
 *       3. (all) the 1..4096-row table: GEMV, deq+lt and bf16 cuBLASLt. */
#include "backend/cuda/w4.cuh"
#include "backend/cuda/gemv.cuh"

#include <cublasLt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_), __FILE__,      \
                    __LINE__, #call);                                                              \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)
#define CKB(call)                                                                                  \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            fprintf(stderr, "cuBLASLt error %d at %s:%d\n", (int)s_, __FILE__, __LINE__);          \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t g_rng = 0x1234567887654321ull;
static float frand(void) { /* uniform in [-1, 1), never exactly 0 */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    float v = (float)((g_rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
    return v == 0.0f ? 0.5f : v;
}
static float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}


static float hbits2f(uint16_t h) {
    const uint32_t s = (h >> 15) & 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 0x400), (int)e - 25);
    return s ? -v : v;
}
static uint16_t f2h(float f) { /* positive normal values only (scales) */
    int e;
    float m = frexpf(f, &e); /* f = m 2^e, m in [0.5, 1) */
    uint32_t mant = (uint32_t)lrintf((m * 2.0f - 1.0f) * 1024.0f);
    int ex = e - 1 + 15;
    if (mant == 1024) mant = 0, ex++;
    return (uint16_t)((ex << 10) | mant);
}
/* Host reference of element (n, k) from the device layout. */
static double w_at(const std::vector<uint32_t> &q4, const std::vector<uint16_t> &sc, int G, int K,
                   long n, int k) {
    const uint32_t w = q4[(size_t)n * (K / 8) + k / 8];
    const int e = k & 7, sh = (e & 1) ? 16 + 4 * (e >> 1) : 4 * (e >> 1);
    const int q = (int)((w >> sh) & 0xf);
    const size_t g = (size_t)n * (K / G) + k / G;
    const int z = (int)(sc[2 * g + 1] & 0xf);
    return (double)(q - z) * hbits2f(sc[2 * g]);
}

typedef void (*w4_fn)(const float *, const uint32_t *, const __half2 *, int, const float *, int, int,
                      float *, cudaStream_t);
typedef void (*tc_fn)(int, const float *, const uint32_t *, const __half2 *, int, const float *, int,
                      int, float *, cudaStream_t);
template <int T, int R, int U, int MODE, int KS>
static void launch_ru(const float *x, const uint32_t *q4, const __half2 *q4s, int G, const float *bias,
                      int N_out, int K, float *out, cudaStream_t s) {
    const int groups = (N_out + R - 1) / R, per = SK_W4_WARPS / KS;
    sk_w4_gemv_kernel<T, R, U, MODE, KS><<<(groups + per - 1) / per, 32 * SK_W4_WARPS, 0,
                                          s>>>(x, q4, q4s, G, bias, N_out, K, out, 0);
}
template <int T, int MODE>
static void launch_v1(const float *x, const uint32_t *q4, const __half2 *q4s, int G, const float *bias,
                      int N_out, int K, float *out, cudaStream_t s) {
    sk_w4_gemv_v1_launch_t<T, MODE>(x, q4, q4s, G, bias, N_out, K, out, s);
}
template <int MODE>
static void launch_backend(const float *x, int T, const uint32_t *q4, const __half2 *q4s, int G,
                           const float *bias, int N_out, int K, float *out, cudaStream_t s) {
    sk_w4_gemv_launch<MODE>(x, T, q4, q4s, G, bias, N_out, K, out, s);
}
typedef struct variant {
    int T, R, U, mode;
    w4_fn fn;     /* v1 kernels */
    tc_fn tc;     /* tensor-core kernels (R = MT, U = D, zc) */
    int zc;
    bool is_default;
    int version; /* 1 (KS 1), 3 (version 1 with KS = 4 split-K warps), 4: tensor cores */
} variant;
#define V3(T, R, U, M, D) {T, R, U, M, launch_ru<T, R, U, M, 4>, NULL, 0, D, 3}
#define TC(T, MT, D, ZC, M) {T, MT, D, M, NULL, sk_w4_tc_launch<T, MT, D, ZC, M>, ZC, false, 4}
static const variant g_variants[] = {
    /* v1 as the backend had it (R8 U1 at T <= 2, R2 U2 above), every mode */
    V3(1, 8, 1, 0, true), V3(2, 8, 1, 0, true), V3(3, 2, 2, 0, true), V3(4, 2, 2, 0, true),
    V3(1, 8, 1, 1, true), V3(2, 8, 1, 1, true), V3(4, 2, 2, 1, true),
    V3(1, 8, 1, 2, true), V3(2, 8, 1, 2, true), V3(3, 2, 2, 2, true), V3(4, 2, 2, 2, true),
    /* tensor cores: T, MT, D, ZC, mode. The backend's shapes first: MT1 D2 (SwiGLU, and
     * store/add at T <= 2) and MT2 D2 (store/add at T >= 3), every T and mode. */
    TC(1, 1, 2, 0, 0), TC(2, 1, 2, 0, 0), TC(3, 1, 2, 0, 0), TC(4, 1, 2, 0, 0),
    TC(1, 1, 2, 0, 1), TC(2, 1, 2, 0, 1), TC(3, 1, 2, 0, 1), TC(4, 1, 2, 0, 1),
    TC(1, 1, 2, 0, 2), TC(2, 1, 2, 0, 2), TC(3, 1, 2, 0, 2), TC(4, 1, 2, 0, 2),
    TC(1, 2, 2, 0, 0), TC(2, 2, 2, 0, 0), TC(3, 2, 2, 0, 0), TC(4, 2, 2, 0, 0),
    TC(1, 2, 2, 0, 1), TC(2, 2, 2, 0, 1), TC(3, 2, 2, 0, 1), TC(4, 2, 2, 0, 1),
    TC(1, 2, 2, 0, 2), TC(4, 2, 2, 0, 2),
    /* deeper ring (D4) and zero points after the MMAs (ZC1): measured, not picked */
    TC(1, 1, 4, 0, 0), TC(2, 1, 4, 0, 0), TC(4, 1, 4, 0, 0), TC(1, 1, 4, 0, 1), TC(4, 1, 4, 0, 1),
    TC(1, 1, 4, 0, 2),
    TC(1, 1, 4, 1, 0), TC(2, 1, 4, 1, 0), TC(4, 1, 4, 1, 0), TC(1, 1, 4, 1, 1), TC(1, 1, 2, 1, 2),
    TC(4, 1, 2, 1, 2), TC(1, 2, 2, 1, 0), TC(4, 2, 2, 1, 1), TC(1, 2, 2, 1, 2),
};
#define N_VARIANTS (int)(sizeof g_variants / sizeof g_variants[0])

typedef struct w4mat {
    int N, K, G;
    std::vector<uint32_t> q4;
    std::vector<uint16_t> sc;
    uint32_t *dq;
    __half2 *ds;
} w4mat;

static void w4_make(w4mat *m, int N, int K, int G) {
    m->N = N, m->K = K, m->G = G;
    m->q4.resize((size_t)N * K / 8);
    m->sc.resize((size_t)N * (K / G) * 2);
    for (auto &w : m->q4) {
        g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
        w = (uint32_t)(g_rng >> 17);
    }
    for (size_t g = 0; g < m->sc.size() / 2; g++) {
        m->sc[2 * g] = f2h(0.001f + 0.019f * (0.5f + 0.5f * frand()));
        g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
        m->sc[2 * g + 1] = (uint16_t)(0x6400 | (g_rng >> 60));
    }
    CK(cudaMalloc(&m->dq, m->q4.size() * 4));
    CK(cudaMalloc(&m->ds, m->sc.size() * 2));
    CK(cudaMemcpy(m->dq, m->q4.data(), m->q4.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(m->ds, m->sc.data(), m->sc.size() * 2, cudaMemcpyHostToDevice));
}
static void w4_free(w4mat *m) { cudaFree(m->dq), cudaFree(m->ds); }

/* One product checked: out (T x N_out, then 8 NaN guards) from dout against ref (double). */
static bool check_out(const std::vector<float> &got, const std::vector<double> &ref,
                      const std::vector<double> &mag, int T, int N_out, double tol, double *worst) {
    bool bad = false;
    *worst = 0;
    for (size_t i = 0; i < (size_t)T * N_out; i++) {
        if (!std::isfinite(got[i])) bad = true;
        const double e = fabs(got[i] - ref[i]) / (mag[i] + 1e-20);
        if (e > *worst) *worst = e;
    }
    for (int g = 0; g < 8; g++)
        if (!std::isnan(got[(size_t)T * N_out + g])) bad = true;
    return !bad && *worst <= tol;
}

static int check_all(void) {
    /* N_out x K: odd row counts (tiles of 16 and groups of 8 rows end inside), K with partial
     * steps of 128 (K % 128 = 32, 64, 96) and a single chunk (K = 32). */
    const int shapes[][2] = {{8, 128},   {37, 256},  {576, 512}, {100, 4096}, {33, 1536},
                             {64, 8192}, {1, 96},    {300, 160}, {40, 576},   {19, 4160},
                             {17, 32},   {130, 1088}};
    const int Gs[] = {32, 64, 128};
    const int kss[] = {4, 8, 3, 1};
    int fails = 0, runs = 0;
    double worst_tc = 0, worst_v1 = 0;
    for (auto &sh : shapes)
        for (int G : Gs) {
            if (sh[1] % G) continue;
            const int N_out0 = sh[0], K = sh[1];
            /* dequantize + cuBLASLt path: the bf16 weight element-wise */
            {
                w4mat m;
                w4_make(&m, N_out0, K, G);
                __nv_bfloat16 *dh;
                CK(cudaMalloc(&dh, (size_t)N_out0 * K * 2));
                sk_w4_dequant_kernel<__nv_bfloat16><<<256, 256>>>(m.dq, m.ds, G, N_out0, K, dh);
                CK(cudaGetLastError());
                std::vector<uint16_t> h((size_t)N_out0 * K);
                CK(cudaMemcpy(h.data(), dh, h.size() * 2, cudaMemcpyDeviceToHost));
                double worst = 0;
                for (long n = 0; n < N_out0; n++)
                    for (int k = 0; k < K; k++) {
                        const double r = w_at(m.q4, m.sc, G, K, n, k);
                        const double e = fabs(bf2f(h[(size_t)n * K + k]) - r) / (fabs(r) + 1e-3);
                        if (e > worst) worst = e;
                    }
                runs++;
                if (worst > 1.0 / 128) {
                    fails++;
                    printf("FAIL dequant N=%d K=%d G=%d: worst rel %.3g\n", N_out0, K, G, worst);
                }
                cudaFree(dh);
                w4_free(&m);
            }
            for (int mode = 0; mode < 3; mode++)
                for (int T = 1; T <= 4; T++) {
                    const int N_out = N_out0, N = mode == SK_GEMV_SWIGLU ? 2 * N_out : N_out;
                    w4mat m;
                    w4_make(&m, N, K, G);
                    std::vector<float> x((size_t)T * K), bias(N_out), o0((size_t)T * N_out + 8);
                    for (auto &e : x) e = frand();
                    for (auto &e : bias) e = frand();
                    for (auto &e : o0) e = frand();
                    for (int g = 0; g < 8; g++) o0[(size_t)T * N_out + g] = NAN;
                    const bool use_bias = mode != SK_GEMV_SWIGLU && (N_out + K) % 3 != 0;
                    /* double reference and its scale sum |x w| */
                    std::vector<double> ref((size_t)T * N_out), mag((size_t)T * N_out);
                    for (int t = 0; t < T; t++)
                        for (int n = 0; n < N_out; n++) {
                            double s = 0, a = 0, s2 = 0, a2 = 0;
                            for (int k = 0; k < K; k++) {
                                const double p = x[(size_t)t * K + k] * w_at(m.q4, m.sc, G, K, n, k);
                                s += p, a += fabs(p);
                                if (mode == SK_GEMV_SWIGLU) {
                                    const double p2 =
                                        x[(size_t)t * K + k] * w_at(m.q4, m.sc, G, K, n + N_out, k);
                                    s2 += p2, a2 += fabs(p2);
                                }
                            }
                            double r;
                            if (mode == SK_GEMV_SWIGLU) {
                                r = s / (1 + exp(-s)) * s2;
                                a = a * fabs(s2) + fabs(s) * a2;
                            } else {
                                r = s + (use_bias ? bias[n] : 0) +
                                    (mode == SK_GEMV_ADD ? o0[(size_t)t * N_out + n] : 0);
                            }
                            ref[(size_t)t * N_out + n] = r;
                            mag[(size_t)t * N_out + n] = a;
                        }
                    float *dx, *db, *dout;
                    CK(cudaMalloc(&dx, x.size() * 4));
                    CK(cudaMalloc(&db, bias.size() * 4));
                    CK(cudaMalloc(&dout, o0.size() * 4));
                    CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
                    CK(cudaMemcpy(db, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice));
                    std::vector<float> got(o0.size());
                    /* v1 and tensor-core variants of this (T, mode) at several KS, then the
                     * backend's launch (vi == N_VARIANTS) */
                    for (int vi = 0; vi <= N_VARIANTS; vi++) {
                        const variant *v = vi < N_VARIANTS ? &g_variants[vi] : NULL;
                        if (v && (v->T != T || v->mode != mode)) continue;
                        const int nks = v && v->tc ? 4 : 1;
                        for (int ki = 0; ki < nks; ki++) {
                            CK(cudaMemcpy(dout, o0.data(), o0.size() * 4, cudaMemcpyHostToDevice));
                            const float *bp = use_bias ? db : NULL;
                            if (!v) {
                                if (mode == 0) launch_backend<0>(dx, T, m.dq, m.ds, G, bp, N_out, K, dout, 0);
                                if (mode == 1) launch_backend<1>(dx, T, m.dq, m.ds, G, bp, N_out, K, dout, 0);
                                if (mode == 2) launch_backend<2>(dx, T, m.dq, m.ds, G, bp, N_out, K, dout, 0);
                            } else if (v->tc) {
                                v->tc(kss[ki], dx, m.dq, m.ds, G, bp, N_out, K, dout, 0);
                            } else {
                                v->fn(dx, m.dq, m.ds, G, bp, N_out, K, dout, 0);
                            }
                            CK(cudaGetLastError());
                            CK(cudaMemcpy(got.data(), dout, got.size() * 4, cudaMemcpyDeviceToHost));
                            double worst;
                            const bool ok = check_out(got, ref, mag, T, N_out, 1e-5, &worst);
                            runs++;
                            if (v && v->tc && worst > worst_tc) worst_tc = worst;
                            if (v && !v->tc && worst > worst_v1) worst_v1 = worst;
                            if (!ok) {
                                fails++;
                                if (!v)
                                    printf("FAIL backend N=%d K=%d G=%d T=%d mode=%d: worst %.3g\n",
                                           N_out, K, G, T, mode, worst);
                                else if (v->tc)
                                    printf("FAIL tc MT%d D%d ZC%d KS%d N=%d K=%d G=%d T=%d mode=%d: "
                                           "worst %.3g\n", v->R, v->U, v->zc, kss[ki], N_out, K, G,
                                           T, mode, worst);
                                else
                                    printf("FAIL v%d R%d U%d N=%d K=%d G=%d T=%d mode=%d: worst "
                                           "%.3g\n", v->version, v->R, v->U, N_out, K, G, T, mode,
                                           worst);
                            }
                        }
                    }
                    cudaFree(dx), cudaFree(db), cudaFree(dout);
                    w4_free(&m);
                }
        }
    printf("checks: %d runs, %d failed (worst max|err| / sum|x w|: tc %.2e, v1 %.2e; bound 1e-5)\n",
           runs, fails, worst_tc, worst_v1);
    return fails;
}

static __global__ void cast_kernel(const float *x, __nv_bfloat16 *y, int n) {
    int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i < n) y[i] = __float2bfloat16_rn(x[i]);
}

typedef struct lt_ctx {
    cublasLtHandle_t lt;
    void *ws;
} lt_ctx;

static void lt_matmul(lt_ctx *c, const __nv_bfloat16 *xh, int T, const __nv_bfloat16 *w, int N,
                      int K, float *out, float beta, cudaStream_t s, cublasLtMatmulAlgo_t *algo,
                      bool *have) {
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    CKB(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CKB(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CKB(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    CKB(cublasLtMatrixLayoutCreate(&la, CUDA_R_16BF, K, N, K));
    CKB(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16BF, K, T, K));
    CKB(cublasLtMatrixLayoutCreate(&ld, CUDA_R_32F, N, T, N));
    if (!*have) {
        cublasLtMatmulPreference_t pref;
        CKB(cublasLtMatmulPreferenceCreate(&pref));
        size_t wsb = 32 << 20;
        CKB(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES,
                                                 &wsb, sizeof wsb));
        cublasLtMatmulHeuristicResult_t r;
        int nr = 0;
        CKB(cublasLtMatmulAlgoGetHeuristic(c->lt, op, la, lb, ld, ld, pref, 1, &r, &nr));
        CKB(cublasLtMatmulPreferenceDestroy(pref));
        *algo = r.algo;
        *have = true;
    }
    const float alpha = 1.0f;
    CKB(cublasLtMatmul(c->lt, op, &alpha, w, la, xh, lb, &beta, out, ld, out, ld, algo, c->ws,
                       32 << 20, s));
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld), cublasLtMatmulDescDestroy(op);
}

static float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

static void time_table(void) {
    lt_ctx lc;
    CKB(cublasLtCreate(&lc.lt));
    CK(cudaMalloc(&lc.ws, 32 << 20));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    const int iters = 30;
    {
        const size_t bytes = (size_t)1 << 30;
        void *a, *b;
        CK(cudaMalloc(&a, bytes));
        CK(cudaMalloc(&b, bytes));
        std::vector<float> ts;
        for (int i = 0; i < 21; i++) {
            CK(cudaEventRecord(e0));
            CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
            CK(cudaEventRecord(e1));
            CK(cudaEventSynchronize(e1));
            float ms;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (i) ts.push_back(ms);
        }
        printf("copy ceiling: %.3f TB/s (1 GiB D2D, read + write)\n", 2.0 * bytes / (median(ts) * 1e-3) / 1e12);
        cudaFree(a), cudaFree(b);
    }
    struct {
        const char *name;
        int N, K;
    } shapes[] = {{"70B qkv 10240x8192", 10240, 8192}, {"70B o 8192x8192", 8192, 8192},
                  {"70B gate/up 57344x8192", 57344, 8192}, {"70B down 8192x28672", 8192, 28672}};
    const int Ms[] = {1, 2, 4, 8, 16, 32, 64, 128, 256, 1024, 4096};
    printf("\n| shape | rows | bf16 cuBLASLt us | TFLOP/s | W4 us | W4 path | INT4 GB/s | W4 / bf16 speed |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (auto &sh : shapes) {
        const int N = sh.N, K = sh.K, G = 128;
        const size_t w4b = (size_t)N * K / 2 + (size_t)N * (K / G) * 4, hb = (size_t)N * K * 2;
        const int n4 = (int)std::max<size_t>(2, ((size_t)256 << 20) / w4b + 1);
        const int nh = (int)std::max<size_t>(2, ((size_t)256 << 20) / hb + 1);
        std::vector<uint32_t *> q4s(n4);
        std::vector<__half2 *> scs(n4);
        std::vector<__nv_bfloat16 *> hs(nh);
        for (int i = 0; i < n4; i++) {
            CK(cudaMalloc(&q4s[i], (size_t)N * K / 2));
            CK(cudaMalloc(&scs[i], (size_t)N * (K / G) * 4));
            CK(cudaMemset(q4s[i], 0x5a, (size_t)N * K / 2));
            CK(cudaMemset(scs[i], 0x20, (size_t)N * (K / G) * 4));
        }
        for (int i = 0; i < nh; i++) {
            CK(cudaMalloc(&hs[i], hb));
            CK(cudaMemset(hs[i], 0x3c, hb));
        }
        __nv_bfloat16 *deq, *xh;
        float *x, *out;
        CK(cudaMalloc(&deq, hb));
        CK(cudaMalloc(&x, (size_t)4096 * K * 4));
        CK(cudaMalloc(&xh, (size_t)4096 * K * 2));
        CK(cudaMalloc(&out, (size_t)4096 * N * 4));
        CK(cudaMemset(x, 0, (size_t)4096 * K * 4));
        for (int M : Ms) {
            cublasLtMatmulAlgo_t algo;
            bool have = false;
            std::vector<float> tb, tw;
            for (int i = 0; i < iters + 3; i++) {
                CK(cudaEventRecord(e0));
                cast_kernel<<<(M * K + 255) / 256, 256>>>(x, xh, M * K);
                lt_matmul(&lc, xh, M, hs[i % nh], N, K, out, 0.0f, 0, &algo, &have);
                CK(cudaEventRecord(e1));
                CK(cudaEventSynchronize(e1));
                float ms;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                if (i >= 3) tb.push_back(ms);
            }
            cublasLtMatmulAlgo_t algo2;
            bool have2 = false;
            const bool gemv = M <= SK_W4_MAX_T;
            for (int i = 0; i < iters + 3; i++) {
                CK(cudaEventRecord(e0));
                if (gemv) {
                    sk_w4_gemv_launch<SK_GEMV_STORE>(x, M, q4s[i % n4], scs[i % n4], G, NULL, N, K, out, 0);
                } else {
                    sk_w4_dequant_kernel<__nv_bfloat16><<<4096, 256>>>(q4s[i % n4], scs[i % n4], G, N, K, deq);
                    cast_kernel<<<(M * K + 255) / 256, 256>>>(x, xh, M * K);
                    lt_matmul(&lc, xh, M, deq, N, K, out, 0.0f, 0, &algo2, &have2);
                }
                CK(cudaEventRecord(e1));
                CK(cudaEventSynchronize(e1));
                float ms;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                if (i >= 3) tw.push_back(ms);
            }
            CK(cudaGetLastError());
            const float mb = median(tb), mw = median(tw);
            const double fl = 2.0 * M * (double)N * K;
            printf("| %s | %d | %.1f | %.1f | %.1f | %s | %.0f | %.2fx |\n", sh.name, M, mb * 1e3,
                   fl / (mb * 1e-3) / 1e12, mw * 1e3, gemv ? "gemv" : "deq+lt", w4b / (mw * 1e-3) / 1e9,
                   mb / mw);
        }
        for (auto p : q4s) cudaFree(p);
        for (auto p : scs) cudaFree(p);
        for (auto p : hs) cudaFree(p);
        cudaFree(deq), cudaFree(x), cudaFree(xh), cudaFree(out);
    }
}

/* ---- Decode timing in the model's modes ---------------------------------------------------- */

static __global__ void rand_f32_kernel(float *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = (float)(sk_w4_hash(seed, i) & 0xffffu) / 32768.0f - 1.0f + 1.0f / 65536.0f;
}
static __global__ void rand_bf16_kernel(__nv_bfloat16 *p, size_t n, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        p[i] = __float2bfloat16_rn(((float)(sk_w4_hash(seed, i) & 0xffffu) / 32768.0f - 1.0f) * 0.02f);
}

typedef struct tcv {
    int MT, D, ZC;
    tc_fn fn;
} tcv;
template <int T, int M>
static int tc_list(tcv *o) {
    int n = 0;
    o[n++] = {1, 4, 0, sk_w4_tc_launch<T, 1, 4, 0, M>};
    o[n++] = {1, 4, 1, sk_w4_tc_launch<T, 1, 4, 1, M>};
    o[n++] = {1, 2, 0, sk_w4_tc_launch<T, 1, 2, 0, M>};
    o[n++] = {2, 2, 0, sk_w4_tc_launch<T, 2, 2, 0, M>};
    o[n++] = {2, 2, 1, sk_w4_tc_launch<T, 2, 2, 1, M>};
    return n;
}
template <int M>
static int tc_list_t(int T, tcv *o) {
    return T == 1 ? tc_list<1, M>(o) : T == 2 ? tc_list<2, M>(o) : tc_list<4, M>(o);
}
static int tc_list_any(int T, int mode, tcv *o) {
    return mode == 0 ? tc_list_t<0>(T, o) : mode == 1 ? tc_list_t<1>(T, o) : tc_list_t<2>(T, o);
}
static void launch_v1_any(int T, int mode, const float *x, const uint32_t *q4, const __half2 *q4s,
                          int G, int N_out, int K, float *out) {
#define L1(TT, MM) if (T == TT && mode == MM) launch_v1<TT, MM>(x, q4, q4s, G, NULL, N_out, K, out, 0)
    L1(1, 0); L1(2, 0); L1(4, 0); L1(1, 1); L1(2, 1); L1(4, 1); L1(1, 2); L1(2, 2); L1(4, 2);
#undef L1
}
static void launch_backend_any(int T, int mode, const float *x, const uint32_t *q4, const __half2 *q4s,
                               int G, int N_out, int K, float *out) {
    if (mode == 0) launch_backend<0>(x, T, q4, q4s, G, NULL, N_out, K, out, 0);
    if (mode == 1) launch_backend<1>(x, T, q4, q4s, G, NULL, N_out, K, out, 0);
    if (mode == 2) launch_backend<2>(x, T, q4, q4s, G, NULL, N_out, K, out, 0);
}

/* Microseconds per launch: batches of 10 back-to-back launches (launch(i) picks rotated
 * weights) between events, 2 warm-up batches, median of 15. */
template <typename F>
static float time_launches(F launch, cudaEvent_t e0, cudaEvent_t e1) {
    std::vector<float> ts;
    int it = 0;
    for (int b = 0; b < 17; b++) {
        CK(cudaEventRecord(e0));
        for (int i = 0; i < 10; i++) launch(it++);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (b >= 2) ts.push_back(ms * 100.0f); /* us per launch */
    }
    CK(cudaGetLastError());
    return median(ts);
}

static void time_gemv(void) {
    lt_ctx lc;
    CKB(cublasLtCreate(&lc.lt));
    CK(cudaMalloc(&lc.ws, 32 << 20));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    double copy_tbs;
    {
        const size_t bytes = (size_t)1 << 30;
        void *a, *b;
        CK(cudaMalloc(&a, bytes));
        CK(cudaMalloc(&b, bytes));
        CK(cudaMemset(a, 1, bytes));
        std::vector<float> ts;
        for (int i = 0; i < 21; i++) {
            CK(cudaEventRecord(e0));
            CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice));
            CK(cudaEventRecord(e1));
            CK(cudaEventSynchronize(e1));
            float ms;
            CK(cudaEventElapsedTime(&ms, e0, e1));
            if (i) ts.push_back(ms);
        }
        copy_tbs = 2.0 * bytes / (median(ts) * 1e-3) / 1e12;
        printf("copy ceiling: %.3f TB/s (1 GiB D2D, read + write, median of 20)\n", copy_tbs);
        cudaFree(a), cudaFree(b);
    }
    struct {
        const char *name;
        int N_out, K, mode, layers;
    } shapes[] = {
        {"70B qkv 10240x8192", 10240, 8192, 0, 80},      {"70B o 8192x8192 +=", 8192, 8192, 1, 80},
        {"70B gate/up 2x28672x8192 swiglu", 28672, 8192, 2, 80},
        {"70B down 8192x28672 +=", 8192, 28672, 1, 80}, {"7B qkv 12288x4096", 12288, 4096, 0, 32},
        {"7B o 4096x4096 +=", 4096, 4096, 1, 32},        {"7B gate/up 2x11008x4096 swiglu", 11008, 4096, 2, 32},
        {"7B down 4096x11008 +=", 4096, 11008, 1, 32},
    };
    const int Ts[] = {1, 2, 4};
    /* per model (0: 70B, 1: 7B) and T: summed us of v1, the backend's pick and the best tc */
    double sum_v1[2][3] = {{0}}, sum_be[2][3] = {{0}}, sum_best[2][3] = {{0}}, sum_lt[2][3] = {{0}};
    printf("\n| shape | T | version | us | INT4 GB/s | of copy | bf16 cuBLASLt us | speed vs bf16 |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (auto &sh : shapes) {
        const int N_out = sh.N_out, K = sh.K, G = 128, mode = sh.mode;
        const int N = mode == SK_GEMV_SWIGLU ? 2 * N_out : N_out;
        const int model = sh.layers == 80 ? 0 : 1;
        const size_t w4b = (size_t)N * K / 2 + (size_t)N * (K / G) * 4, hb = (size_t)N * K * 2;
        const int n4 = (int)std::max<size_t>(2, ((size_t)256 << 20) / w4b + 1);
        const int nh = (int)std::max<size_t>(2, ((size_t)256 << 20) / hb + 1);
        std::vector<uint32_t *> q4s(n4);
        std::vector<__half2 *> scs(n4);
        std::vector<__nv_bfloat16 *> hs(nh);
        for (int i = 0; i < n4; i++) {
            CK(cudaMalloc(&q4s[i], (size_t)N * K / 2));
            CK(cudaMalloc(&scs[i], (size_t)N * (K / G) * 4));
            sk_w4_random_kernel<<<4096, 256>>>(q4s[i], scs[i], G, N, K, 0.01f, 77 + i);
        }
        for (int i = 0; i < nh; i++) {
            CK(cudaMalloc(&hs[i], hb));
            rand_bf16_kernel<<<4096, 256>>>(hs[i], (size_t)N * K, 99 + i);
        }
        __nv_bfloat16 *xh;
        float *x, *out;
        CK(cudaMalloc(&x, (size_t)4 * K * 4));
        CK(cudaMalloc(&xh, (size_t)4 * K * 2));
        CK(cudaMalloc(&out, (size_t)4 * N * 4));
        rand_f32_kernel<<<64, 256>>>(x, (size_t)4 * K, 5);
        rand_f32_kernel<<<256, 256>>>(out, (size_t)4 * N, 6);
        CK(cudaDeviceSynchronize());
        for (int ti = 0; ti < 3; ti++) {
            const int T = Ts[ti];
            cublasLtMatmulAlgo_t algo;
            bool have = false;
            const float t_lt = time_launches(
                [&](int i) {
                    cast_kernel<<<(T * K + 255) / 256, 256>>>(x, xh, T * K);
                    lt_matmul(&lc, xh, T, hs[i % nh], N, K, out, 0.0f, 0, &algo, &have);
                },
                e0, e1);
            auto row = [&](const char *ver, float us) {
                const double gbs = w4b / (us * 1e-6) / 1e9;
                printf("| %s | %d | %s | %.1f | %.0f | %.1f%% | %.1f | %.2fx |\n", sh.name, T, ver, us,
                       gbs, 100.0 * gbs / (copy_tbs * 1e3), t_lt, t_lt / us);
            };
            const float t_v1 = time_launches(
                [&](int i) { launch_v1_any(T, mode, x, q4s[i % n4], scs[i % n4], G, N_out, K, out); }, e0, e1);
            row("v1 * (R8U1 / R2U2, 4 warps)", t_v1);
            tcv vs[8];
            const int nv = tc_list_any(T, mode, vs);
            float best = 1e30f;
            for (int vi = 0; vi < nv; vi++)
                for (int KS : {4, 8}) {
                    const float us = time_launches(
                        [&](int i) { vs[vi].fn(KS, x, q4s[i % n4], scs[i % n4], G, NULL, N_out, K, out, 0); },
                        e0, e1);
                    char name[64];
                    snprintf(name, sizeof name, "tc MT%d D%d ZC%d KS%d", vs[vi].MT, vs[vi].D, vs[vi].ZC, KS);
                    row(name, us);
                    if (us < best) best = us;
                }
            const float t_be = time_launches(
                [&](int i) { launch_backend_any(T, mode, x, q4s[i % n4], scs[i % n4], G, N_out, K, out); },
                e0, e1);
            row("backend's pick *", t_be);
            sum_v1[model][ti] += t_v1 * sh.layers, sum_be[model][ti] += t_be * sh.layers;
            sum_best[model][ti] += best * sh.layers, sum_lt[model][ti] += t_lt * sh.layers;
        }
        for (auto p : q4s) cudaFree(p);
        for (auto p : scs) cudaFree(p);
        for (auto p : hs) cudaFree(p);
        cudaFree(x), cudaFree(xh), cudaFree(out);
    }
    /* The vocabulary projection stays bf16 (gemv.cuh at T <= 2, cuBLASLt above). */
    for (int model = 0; model < 2; model++) {
        const int V = 32000, K = model == 0 ? 8192 : 4096;
        const size_t hb = (size_t)V * K * 2;
        const int nh = (int)std::max<size_t>(2, ((size_t)256 << 20) / hb + 1);
        std::vector<__nv_bfloat16 *> hs(nh);
        for (int i = 0; i < nh; i++) {
            CK(cudaMalloc(&hs[i], hb));
            rand_bf16_kernel<<<4096, 256>>>(hs[i], (size_t)V * K, 199 + i);
        }
        float *x, *out;
        __nv_bfloat16 *xh;
        CK(cudaMalloc(&x, (size_t)4 * K * 4));
        CK(cudaMalloc(&xh, (size_t)4 * K * 2));
        CK(cudaMalloc(&out, (size_t)4 * V * 4));
        rand_f32_kernel<<<64, 256>>>(x, (size_t)4 * K, 7);
        for (int ti = 0; ti < 3; ti++) {
            const int T = Ts[ti];
            cublasLtMatmulAlgo_t algo;
            bool have = false;
            const float us = time_launches(
                [&](int i) {
                    if (T <= SK_GEMV_BACKEND_MAX_T) {
                        sk_gemv_launch<__nv_bfloat16, SK_GEMV_STORE>(x, T, hs[i % nh], NULL, V, K, out, 0);
                    } else {
                        cast_kernel<<<(T * K + 255) / 256, 256>>>(x, xh, T * K);
                        lt_matmul(&lc, xh, T, hs[i % nh], V, K, out, 0.0f, 0, &algo, &have);
                    }
                },
                e0, e1);
            printf("%s lm_head bf16 32000x%d T=%d: %.1f us (%.0f GB/s)\n", model == 0 ? "70B" : "7B", K,
                   T, us, hb / (us * 1e-6) / 1e9);
            sum_v1[model][ti] += us, sum_be[model][ti] += us, sum_best[model][ti] += us;
            sum_lt[model][ti] += us;
        }
        for (auto p : hs) cudaFree(p);
        cudaFree(x), cudaFree(xh), cudaFree(out);
    }
    printf("\nGEMVs of one decode step (4 linear layers x layers + bf16 lm_head), back-to-back:\n");
    printf("| model | T | v1 ms | backend's pick ms | best tc ms | bf16 cuBLASLt ms |\n| --- | --- | --- | --- | --- | --- |\n");
    for (int model = 0; model < 2; model++)
        for (int ti = 0; ti < 3; ti++)
            printf("| %s | %d | %.2f | %.2f | %.2f | %.2f |\n", model == 0 ? "Llama-2-70B" : "Llama-2-7B",
                   Ts[ti], sum_v1[model][ti] * 1e-3, sum_be[model][ti] * 1e-3, sum_best[model][ti] * 1e-3,
                   sum_lt[model][ti] * 1e-3);
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    const int fails = check_all(); /* timing still runs after a failure (its figures then say
                                      nothing about the failed versions) */
    if (strcmp(mode, "gemv") == 0 || strcmp(mode, "all") == 0) time_gemv();
    if (strcmp(mode, "all") == 0) time_table();
    return fails ? 1 : 0;
}
