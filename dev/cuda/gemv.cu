/* Skinny matmul (decode GEMV) out[T, N] = x[T, K] W[N, K]^T, fp32 x/out, bf16 W: kernel
 * workbench (STYLE.md 1). The kernels are those of src/backend/cuda/gemv.cuh, included as they are.
 *
 * Build and run from the repository root:
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -lineinfo -lcublasLt \
 *        -Isrc -o /tmp/gemv dev/cuda/gemv.cu && /tmp/gemv [check|all]
 *
 * versions:
 *   cublasLt   x cast to bf16 (one kernel), then cuBLASLt bf16 x bf16 -> fp32 (the backend's
 *              path before gemv.cuh; the cast is timed with it).
 *   gemv R/U   sk_gemv_kernel with R rows per warp and U k-steps in flight (the backend picks
 *              one (R, U) per T: marked "*").
 *   norm       the same with the RMSNorm of x fused (gemv.cuh NORM; checked, not timed alone).
 * main: 1. checks every (T, R, U, mode, norm) on random data (x, W uniform in [-1, 1] and never
 *          zero; out pre-filled with random values for the ADD mode; a NaN guard after out)
 *          against a double-precision CPU reference over the same bf16 weights: pass when the
 *          max |err| / (sum over k of |x W|) <= 1e-5 (fp32 accumulation order only).
 *       2. times each on the linear shapes of Llama-2-7B and 70B (CUDA events, median of 50,
 *          weights rotated over >= 256 MB of copies so that L2 (60 MB) holds none of them), and
 *          prints the weight GB/s next to a device-to-device copy measured in the same run.
 *   `tune` (alone, no checks): 3. each product of a Llama-2-7B decode step (T = 1) 32 times back
 *          to back in one CUDA graph through every backend configuration (gemv.cuh
 *          sk_gemv_launch_cfg), the fastest picked per product;
 *       4. the GEMVs of a whole 7B decode step as the model runs them (32 layers of distinct
 *          weights, 12.9 GB: norm, qkv, a stand-in for attention, o +=, norm, gate/up SwiGLU,
 *          down +=), captured in one graph and replayed (median of 20): norms as kernels or
 *          fused (NORM), PDL off or on, the backend's rule or the picks of 3. What the step's
 *          GEMVs and norms cost together, launch gaps included, against the copy rate; last a
 *          SAKER_GEMV_CFG line that makes the backend use the picks. */
#include "backend/cuda/gemv.cuh"
#include "bench_util.cuh"

#include <cublasLt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <vector>

static uint64_t g_rng = 0x1234567887654321ull;
static float frand(void) { /* uniform in [-1, 1), never exactly 0 */
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    float v = (float)((g_rng >> 40) & 0xffffff) / 8388608.0f - 1.0f;
    return v == 0.0f ? 0.5f : v;
}
static uint16_t f2bf(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1);
    return (uint16_t)(u >> 16);
}
static float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* CPU reference: out (and the error scale) for the mode; gamma != NULL: x RMS-normalised with
 * weight gamma and eps first (in double). */
static void gemv_cpu(const float *x0, const uint16_t *w, const float *bias, const float *out0,
                     int T, int N_out, int K, int mode, const float *gamma, float eps, double *ref,
                     double *scale) {
    std::vector<double> x((size_t)T * K);
    for (int t = 0; t < T; t++) {
        double ss = 0;
        for (int k = 0; k < K; k++) ss += (double)x0[(size_t)t * K + k] * x0[(size_t)t * K + k];
        const double inv = gamma ? 1.0 / sqrt(ss / K + eps) : 1.0;
        for (int k = 0; k < K; k++)
            x[(size_t)t * K + k] = x0[(size_t)t * K + k] * (gamma ? inv * gamma[k] : 1.0);
    }
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N_out; n++) {
            double s = 0, a = 0, s2 = 0, a2 = 0;
            for (int k = 0; k < K; k++) {
                double p = x[(size_t)t * K + k] * bf2f(w[(size_t)n * K + k]);
                s += p, a += fabs(p);
                if (mode == SK_GEMV_SWIGLU) {
                    double p2 = x[(size_t)t * K + k] * bf2f(w[(size_t)(n + N_out) * K + k]);
                    s2 += p2, a2 += fabs(p2);
                }
            }
            double v;
            if (mode == SK_GEMV_SWIGLU) {
                v = s / (1.0 + exp(-s)) * s2;
                a = a * fabs(s2) + fabs(s) * a2 + 1e-30;
            } else {
                v = s + (bias ? bias[n] : 0.0);
                if (mode == SK_GEMV_ADD) v += out0[(size_t)t * N_out + n];
            }
            ref[(size_t)t * N_out + n] = v;
            scale[(size_t)t * N_out + n] = a + 1e-30;
        }
}

/* gamma != NULL: the norm fused (NORM). */
typedef void (*launch_fn)(const float *, const __nv_bfloat16 *, const float *, int, int, float *,
                          cudaStream_t, const float *gamma, float eps);
template <int T, int R, int U, int MODE, int KS = 1, bool NORM = false, bool PIPE = false>
static void launch_ru(const float *x, const __nv_bfloat16 *w, const float *bias, int N_out, int K,
                      float *out, cudaStream_t s, const float *gamma, float eps) {
    const int groups = (N_out + R - 1) / R, per = SK_GEMV_WARPS / KS;
    sk_gemv_kernel<__nv_bfloat16, T, R, U, MODE, KS, NORM, PIPE>
        <<<(groups + per - 1) / per, 32 * SK_GEMV_WARPS, 0, s>>>(x, w, bias, N_out, K, out, 0,
                                                                 gamma, eps);
}
/* One of the backend's configurations (gemv.cuh sk_gemv_launch_cfg), id and ks from these. */
static int g_cfg_id, g_cfg_ks;
template <int T, int MODE, bool NORM>
static void launch_cfg(const float *x, const __nv_bfloat16 *w, const float *bias, int N_out, int K,
                       float *out, cudaStream_t s, const float *gamma, float eps) {
    sk_gemv_launch_cfg<__nv_bfloat16, T, MODE, NORM>(g_cfg_id, g_cfg_ks, x, w, bias, N_out, K, out,
                                                     gamma, eps, s);
}
/* The backend's launcher (its own R, U, KS choice). */
template <int T, int MODE>
static void launch_be(const float *x, const __nv_bfloat16 *w, const float *bias, int N_out, int K,
                      float *out, cudaStream_t s, const float *gamma, float eps) {
    sk_gemv_launch<__nv_bfloat16, MODE>(x, T, w, bias, N_out, K, out, s, gamma, eps);
}

typedef struct variant {
    int T, R, U, mode;
    launch_fn fn;
    bool is_default;
    bool norm;
    bool cfgs; /* run once per backend configuration (id, ks) */
} variant;

#define V(T, R, U, M, D) {T, R, U, M, launch_ru<T, R, U, M>, false, false, false}
#define VK(T, R, U, M) {T, R, U + 100, M, launch_ru<T, R, U, M, 4>, false, false, false}
#define VB(T, M) {T, 0, 0, M, launch_be<T, M>, true, false, false}
#define VN(T, R, U, M, KS) {T, R, U + (KS > 1 ? 100 : 0), M, launch_ru<T, R, U, M, KS, true>, false, true, false}
#define VBN(T, M) {T, 0, 0, M, launch_be<T, M>, true, true, false}
#define VC(T, M, N) {T, -1, -1, M, launch_cfg<T, M, N>, false, N, true}
#define VP(T, R, U, M, KS, N) {T, R, U + (KS > 1 ? 100 : 0), M, launch_ru<T, R, U, M, KS, N, true>, false, N, false}
static const variant g_variants[] = {
    V(1, 1, 2, 0, false), V(1, 1, 4, 0, false), V(1, 2, 2, 0, true),  V(1, 2, 4, 0, false),
    V(2, 1, 4, 0, false), V(2, 2, 2, 0, true), V(3, 2, 2, 0, true),  V(4, 2, 2, 0, true),
    V(4, 4, 2, 0, false), V(4, 1, 4, 0, false), V(5, 4, 2, 0, true),  V(6, 4, 2, 0, true),
    V(7, 4, 2, 0, true),  V(8, 4, 2, 0, true),  V(8, 2, 2, 0, false), V(8, 4, 1, 0, false),
    V(8, 8, 1, 0, false), V(1, 1, 4, 1, false), V(1, 2, 2, 1, true),  V(2, 2, 2, 1, true),
    V(8, 4, 2, 1, true),  V(1, 1, 4, 2, false), V(2, 2, 2, 2, true),  V(4, 2, 2, 2, true),
    V(8, 4, 2, 2, true),  V(1, 2, 2, 2, true),
    VK(1, 2, 2, 0), VK(1, 1, 4, 0), VK(2, 2, 2, 0), VK(1, 2, 2, 1), VK(1, 2, 2, 2),
    VB(1, 0), VB(2, 0), VB(1, 1), VB(2, 1), VB(1, 2), VB(2, 2),
    VN(1, 2, 2, 0, 1), VN(1, 2, 2, 0, 4), VN(2, 2, 2, 0, 1), VN(2, 2, 2, 0, 4),
    VN(1, 2, 2, 2, 1), VN(1, 2, 2, 2, 4), VN(2, 2, 2, 2, 4), VN(4, 4, 2, 0, 1),
    VN(8, 4, 2, 0, 4), VN(8, 4, 2, 2, 1), VN(3, 4, 2, 1, 4),
    VBN(1, 0), VBN(2, 0), VBN(1, 2), VBN(2, 2),
    VP(4, 4, 2, 0, 1, false), VP(8, 4, 2, 2, 4, true), VP(3, 2, 4, 1, 4, false),
    VC(1, 0, false), VC(1, 0, true), VC(1, 1, false), VC(1, 2, false), VC(1, 2, true),
    VC(2, 0, false), VC(2, 0, true), VC(2, 1, false), VC(2, 2, true),
};
#define N_VARIANTS (int)(sizeof g_variants / sizeof g_variants[0])

static int check_all(void) {
    const int shapes[][2] = {{8, 8}, {1, 8}, {37, 264}, {576, 576}, {1536, 576}, {100, 4104},
                             {4096, 4096}, {33, 11008}};
    int fails = 0, runs = 0;
    for (int si = 0; si < (int)(sizeof shapes / sizeof shapes[0]); si++)
        for (int vc = 0; vc < N_VARIANTS * 2 * SK_GEMV_NCFG; vc++) {
            /* every variant, those with cfgs once per backend configuration (id, ks) */
            const variant *v = &g_variants[vc / (2 * SK_GEMV_NCFG)];
            const int ci = vc % (2 * SK_GEMV_NCFG);
            if (!v->cfgs && ci > 0) continue;
            g_cfg_id = ci / 2, g_cfg_ks = ci % 2 ? 4 : 1;
            const int N = shapes[si][0] * (v->mode == SK_GEMV_SWIGLU ? 2 : 1), K = shapes[si][1];
            const int N_out = shapes[si][0], T = v->T;
            std::vector<float> x((size_t)T * K), bias(N_out), out0((size_t)T * N_out + 8);
            std::vector<float> gamma(K);
            std::vector<uint16_t> w((size_t)N * K);
            for (auto &e : x) e = frand();
            for (auto &e : gamma) e = 1.0f + 0.5f * frand();
            if (v->norm) /* a non-zero mean and row scales that differ */
                for (int t = 0; t < T; t++)
                    for (int k = 0; k < K; k++) x[(size_t)t * K + k] = (x[(size_t)t * K + k] + 1.0f) * (1 + 2 * t);
            for (auto &e : w) e = f2bf(frand());
            for (auto &e : bias) e = frand();
            for (auto &e : out0) e = frand();
            for (int g = 0; g < 8; g++) out0[(size_t)T * N_out + g] = NAN;
            const bool use_bias = v->mode != SK_GEMV_SWIGLU && (si & 1);
            float *dx, *db, *dout, *dg;
            __nv_bfloat16 *dw;
            CK(cudaMalloc(&dg, gamma.size() * 4));
            CK(cudaMemcpy(dg, gamma.data(), gamma.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMalloc(&dx, x.size() * 4));
            CK(cudaMalloc(&db, bias.size() * 4));
            CK(cudaMalloc(&dout, out0.size() * 4));
            CK(cudaMalloc(&dw, w.size() * 2));
            CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(db, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dout, out0.data(), out0.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dw, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
            const float eps = 1e-5f;
            v->fn(dx, dw, use_bias ? db : NULL, N_out, K, dout, 0, v->norm ? dg : NULL, eps);
            CK(cudaGetLastError());
            std::vector<float> got(out0.size());
            CK(cudaMemcpy(got.data(), dout, got.size() * 4, cudaMemcpyDeviceToHost));
            std::vector<double> ref((size_t)T * N_out), scale((size_t)T * N_out);
            gemv_cpu(x.data(), w.data(), use_bias ? bias.data() : NULL, out0.data(), T, N_out, K,
                     v->mode, v->norm ? gamma.data() : NULL, eps, ref.data(), scale.data());
            double worst = 0;
            bool bad = false;
            for (size_t i = 0; i < ref.size(); i++) {
                if (!isfinite(got[i])) bad = true;
                const double e = fabs(got[i] - ref[i]) / scale[i];
                if (e > worst) worst = e;
            }
            for (int g = 0; g < 8; g++)
                if (!isnan(got[(size_t)T * N_out + g])) bad = true; /* guard overwritten */
            runs++;
            if (bad || worst > 1e-5) {
                fails++;
                printf("FAIL N=%d K=%d T=%d R=%d U=%d mode=%d norm=%d (cfg %d/%d): worst rel "
                       "%.3g%s\n", N_out, K, T, v->R, v->U, v->mode, (int)v->norm, v->cfgs ? g_cfg_id : -1,
                       g_cfg_ks, worst, bad ? " (non-finite or guard)" : "");
            }
            cudaFree(dx), cudaFree(db), cudaFree(dout), cudaFree(dw), cudaFree(dg);
        }
    printf("checks: %d runs, %d failed\n", runs, fails);
    return fails;
}

/* ---- timing -------------------------------------------------------------------------------- */

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

static void time_all(void) {
    lt_ctx lc;
    CKB(cublasLtCreate(&lc.lt));
    CK(cudaMalloc(&lc.ws, 32 << 20));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    const int iters = 50;
    copy_ceiling_tbs();
    /* name, N (output rows; SWIGLU: F), K, mode */
    struct {
        const char *name;
        int N, K, mode;
    } shapes[] = {
        {"7B qkv 12288x4096", 12288, 4096, 0}, {"7B o 4096x4096 (+=)", 4096, 4096, 1},
        {"7B gate/up 2x11008x4096 swiglu", 11008, 4096, 2}, {"7B down 4096x11008 (+=)", 4096, 11008, 1},
        {"70B qkv 10240x8192", 10240, 8192, 0}, {"70B o 8192x8192", 8192, 8192, 1},
        {"70B gate/up 2x28672x8192 swiglu", 28672, 8192, 2}, {"70B down 8192x28672", 8192, 28672, 1},
    };
    printf("\n| shape | T | version | us | weight GB/s | %% of copy-rate reads |\n");
    printf("| --- | --- | --- | --- | --- | --- |\n");
    for (auto &sh : shapes) {
        const int Nw = sh.mode == SK_GEMV_SWIGLU ? 2 * sh.N : sh.N, K = sh.K;
        const size_t wbytes = (size_t)Nw * K * 2;
        const int ncopy = (int)std::max<size_t>(2, ((size_t)256 << 20) / wbytes + 1);
        std::vector<__nv_bfloat16 *> ws(ncopy);
        for (int i = 0; i < ncopy; i++) {
            CK(cudaMalloc(&ws[i], wbytes));
            CK(cudaMemset(ws[i], 0x3c, wbytes)); /* bf16 0x3c3c ~ 0.0115: finite, nonzero */
        }
        float *dx, *dout;
        __nv_bfloat16 *dxh;
        CK(cudaMalloc(&dx, (size_t)8 * K * 4));
        CK(cudaMalloc(&dxh, (size_t)8 * K * 2));
        CK(cudaMalloc(&dout, (size_t)8 * Nw * 4));
        CK(cudaMemset(dx, 0, (size_t)8 * K * 4));
        CK(cudaMemset(dout, 0, (size_t)8 * Nw * 4));
        const int Ts[] = {1, 2, 4, 8};
        for (int T : Ts) {
            /* cuBLASLt (the STORE/ADD product; SWIGLU as one 2F-row product, its combine not
             * counted) */
            {
                cublasLtMatmulAlgo_t algo;
                bool have = false;
                std::vector<float> ts;
                for (int i = 0; i < iters + 5; i++) {
                    CK(cudaEventRecord(e0));
                    cast_kernel<<<(T * K + 255) / 256, 256>>>(dx, dxh, T * K);
                    lt_matmul(&lc, dxh, T, ws[i % ncopy], Nw, K, dout,
                              sh.mode == SK_GEMV_ADD ? 1.0f : 0.0f, 0, &algo, &have);
                    CK(cudaEventRecord(e1));
                    CK(cudaEventSynchronize(e1));
                    float ms;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    if (i >= 5) ts.push_back(ms);
                }
                const float ms = median(ts);
                printf("| %s | %d | cast + cublasLt | %.1f | %.0f | |\n", sh.name, T, ms * 1e3,
                       wbytes / (ms * 1e-3) / 1e9);
            }
            for (int vi = 0; vi < N_VARIANTS; vi++) {
                const variant *v = &g_variants[vi];
                if (v->T != T || v->mode != sh.mode || v->norm || v->cfgs) continue;
                std::vector<float> ts;
                for (int i = 0; i < iters + 5; i++) {
                    CK(cudaEventRecord(e0));
                    v->fn(dx, ws[i % ncopy], NULL, sh.N, K, dout, 0, NULL, 0.0f);
                    CK(cudaEventRecord(e1));
                    CK(cudaEventSynchronize(e1));
                    float ms;
                    CK(cudaEventElapsedTime(&ms, e0, e1));
                    if (i >= 5) ts.push_back(ms);
                }
                CK(cudaGetLastError());
                const float ms = median(ts);
                if (v->is_default)
                    printf("| %s | %d | gemv (backend's choice) * | %.1f | %.0f | |\n", sh.name, T,
                           ms * 1e3, wbytes / (ms * 1e-3) / 1e9);
                else
                    printf("| %s | %d | gemv R%d U%d%s | %.1f | %.0f | |\n", sh.name, T, v->R,
                           v->U % 100, v->U > 100 ? " ks4" : "", ms * 1e3, wbytes / (ms * 1e-3) / 1e9);
            }
        }
        for (auto p : ws) cudaFree(p);
        cudaFree(dx), cudaFree(dxh), cudaFree(dout);
    }
}

/* ---- a decode step's products in graphs (`tune`) ---------------------------------------------- */

/* w[i] = bf16 of a * u(i), u uniform in [-1, 1) from an integer hash (never all zeros). */
static __global__ void fill_kernel(__nv_bfloat16 *w, size_t n, float a, uint64_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint64_t z = seed + 0x9e3779b97f4a7c15ull * (i + 1);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        w[i] = __float2bfloat16_rn(a * ((float)(int32_t)(uint32_t)(z >> 32) * (1.0f / 2147483648.0f)));
    }
}

/* The backend's rmsnorm kernel (src/backend/cuda/norm.cu), one block per row. */
static __global__ void chain_rmsnorm_kernel(const float *x, const float *w, float eps, int D,
                                            float *out) {
    __shared__ float red[32];
    sk_pdl_trigger();
    sk_pdl_wait();
    float ss = 0.0f;
    for (int i = threadIdx.x; i < D; i += blockDim.x) ss = fmaf(x[i], x[i], ss);
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_xor_sync(0xffffffffu, ss, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = ss;
    __syncthreads();
    ss = 0.0f;
    for (int i = 0; i < (int)(blockDim.x >> 5); i++) ss += red[i];
    const float scale = 1.0f / sqrtf(ss / (float)D + eps);
    for (int i = threadIdx.x; i < D; i += blockDim.x) out[i] = w[i] * (scale * x[i]);
}

/* Stand-in for the attention between qkv and o (launched plainly, as the model's are): att =
 * the first D of qkv, scaled. */
static __global__ void chain_attn_kernel(const float *qkv, int D, float *att) {
    sk_pdl_trigger(); /* no-ops unless launched with PDL (the attn_pdl variant) */
    sk_pdl_wait();
    for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < D; i += gridDim.x * blockDim.x)
        att[i] = 0.01f * qkv[i];
}

/* The four products of a 7B and a 70B step (T = 1) and their modes, as the model runs them
 * (shape sh has the mode of sh % 4). */
enum { SH_QKV, SH_O, SH_GU, SH_DOWN, N_SH = 8 };
static const char *const k_sh_name[N_SH] = {
    "7B qkv 12288x4096 (norm fused)", "7B o 4096x4096 (+=)",
    "7B gate/up 2x11008x4096 (norm fused, SwiGLU)", "7B down 4096x11008 (+=)",
    "70B qkv 10240x8192 (norm fused)", "70B o 8192x8192 (+=)",
    "70B gate/up 2x28672x8192 (norm fused, SwiGLU)", "70B down 8192x28672 (+=)"};
static const int k_sh_n[N_SH] = {12288, 4096, 11008, 4096, 10240, 8192, 28672, 8192};
static const int k_sh_k[N_SH] = {4096, 4096, 4096, 11008, 8192, 8192, 8192, 28672};
static const char k_sh_m[N_SH] = {'s', 'a', 'w', 'a', 's', 'a', 'w', 'a'};
typedef struct cfg_pick {
    int id, ks;
} cfg_pick;

/* One product of shape sh through configuration c (gamma: the fused norm, qkv and gate/up). */
static void launch_sh(int sh, cfg_pick c, const float *x, const __nv_bfloat16 *w, float *out,
                      const float *gam, float eps, cudaStream_t s) {
    const int N = k_sh_n[sh], K = k_sh_k[sh];
    switch (sh % 4) {
    case SH_QKV:
        sk_gemv_launch_cfg<__nv_bfloat16, 1, SK_GEMV_STORE, true>(c.id, c.ks, x, w, NULL, N, K, out, gam, eps, s);
        break;
    case SH_GU:
        sk_gemv_launch_cfg<__nv_bfloat16, 1, SK_GEMV_SWIGLU, true>(c.id, c.ks, x, w, NULL, N, K, out, gam, eps, s);
        break;
    default:
        sk_gemv_launch_cfg<__nv_bfloat16, 1, SK_GEMV_ADD, false>(c.id, c.ks, x, w, NULL, N, K, out, NULL, 0.0f, s);
        break;
    }
}

/* Median time (ms) of replays of graph ge on s (3 warm-ups, n timed). */
static float time_graph(cudaGraphExec_t ge, cudaStream_t s, int n) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    std::vector<float> ts;
    for (int i = 0; i < n + 3; i++) {
        CK(cudaEventRecord(e0, s));
        CK(cudaGraphLaunch(ge, s));
        CK(cudaEventRecord(e1, s));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (i >= 3) ts.push_back(ms);
    }
    CK(cudaGetLastError());
    cudaEventDestroy(e0), cudaEventDestroy(e1);
    return median(ts);
}

/* `tune` step 1: each of the step's products 32 times back to back (32 weight copies), in one
 * graph, PDL on, through every backend configuration; returns the fastest per product in best. */
static void time_shapes(double copy, cfg_pick *best) {
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    float *x, *out, *gam;
    CK(cudaMalloc(&x, 11008 * 4));
    CK(cudaMalloc(&out, 12288 * 4));
    CK(cudaMalloc(&gam, 11008 * 4));
    {
        std::vector<float> h(11008);
        for (auto &e : h) e = frand() + 0.5f;
        CK(cudaMemcpy(x, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
        for (auto &e : h) e = 1.0f + 0.5f * frand();
        CK(cudaMemcpy(gam, h.data(), h.size() * 4, cudaMemcpyHostToDevice));
        CK(cudaMemset(out, 0, 12288 * 4));
    }
    printf("\nper product, T = 1, up to 32 launches back to back in one graph (weights not in L2), "
           "PDL %s: us per launch (weight GB/s); * the backend's rule\n",
           sk_pdl_enabled() ? "on" : "off");
    printf("| product | MB |");
    for (int id = 0; id < SK_GEMV_NCFG; id++)
        for (int ks = 1; ks <= 4; ks += 3)
            printf(" R%dU%d%s ks%d |", sk_gemv_cfg_r[id], sk_gemv_cfg_u[id],
                   sk_gemv_cfg_pipe[id] ? "P" : "", ks);
    printf(" best |\n| --- | --- |");
    for (int i = 0; i < 2 * SK_GEMV_NCFG + 1; i++) printf(" --- |");
    printf("\n");
    for (int sh = 0; sh < N_SH; sh++) {
        const int Nw = k_sh_n[sh] * (sh % 4 == SH_GU ? 2 : 1), K = k_sh_k[sh];
        const size_t wb = (size_t)Nw * K * 2;
        const int reps = (int)std::min<size_t>(32, ((size_t)16 << 30) / wb);
        int rid, rks; /* the backend's rule */
        sk_gemv_pick(k_sh_m[sh] == 's' ? SK_GEMV_STORE : k_sh_m[sh] == 'w' ? SK_GEMV_SWIGLU : SK_GEMV_ADD,
                     1, k_sh_n[sh], K, &rid, &rks);
        __nv_bfloat16 *w;
        CK(cudaMalloc(&w, wb * reps));
        fill_kernel<<<4096, 256>>>(w, wb / 2 * reps, 0.02f, 11 + sh);
        CK(cudaGetLastError());
        printf("| %s | %.1f |", k_sh_name[sh], wb / 1e6);
        float bt = 1e30f;
        for (int id = 0; id < SK_GEMV_NCFG; id++)
            for (int ks = 1; ks <= 4; ks += 3) {
                cudaGraph_t g;
                cudaGraphExec_t ge;
                CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
                for (int r = 0; r < reps; r++)
                    launch_sh(sh, {id, ks}, x, w + wb / 2 * r, out, gam, 1e-5f, s);
                CK(cudaStreamEndCapture(s, &g));
                CK(cudaGraphInstantiate(&ge, g, 0));
                const float us = time_graph(ge, s, 10) * 1e3f / reps;
                CK(cudaGraphExecDestroy(ge));
                CK(cudaGraphDestroy(g));
                printf(" %.2f (%.0f)%s |", us, wb / (us * 1e-6) / 1e9,
                       id == rid && ks == rks ? " *" : "");
                if (us < bt) bt = us, best[sh] = {id, ks};
            }
        printf(" R%dU%d%s ks%d: %.0f%% of copy |\n", sk_gemv_cfg_r[best[sh].id],
               sk_gemv_cfg_u[best[sh].id], sk_gemv_cfg_pipe[best[sh].id] ? "P" : "", best[sh].ks,
               100.0 * wb / (bt * 1e-6) / copy);
        fflush(stdout);
        cudaFree(w);
    }
    cudaFree(x), cudaFree(out), cudaFree(gam);
    cudaStreamDestroy(s);
}

/* `tune` step 2: the whole 7B step's GEMVs in one graph (see the top), configurations `old` (the
 * rule before this session), `def` (the backend's rule) and `best` (step 1's). */
static void time_chain(double copy, const cfg_pick *old, const cfg_pick *def, const cfg_pick *best) {
    const int L = 32, D = 4096, F = 11008, QKV = 12288;
    const float eps = 1e-5f;
    const size_t per = ((size_t)QKV * D + (size_t)D * D + (size_t)2 * F * D + (size_t)D * F);
    const double wbytes = (double)per * 2 * L;
    __nv_bfloat16 *w;
    CK(cudaMalloc(&w, per * 2 * L));
    fill_kernel<<<4096, 256>>>(w, per * L, 0.02f, 7);
    CK(cudaGetLastError());
    float *x, *h, *qkv, *att, *f1, *gam;
    CK(cudaMalloc(&x, D * 4));
    CK(cudaMalloc(&h, D * 4));
    CK(cudaMalloc(&qkv, QKV * 4));
    CK(cudaMalloc(&att, D * 4));
    CK(cudaMalloc(&f1, F * 4));
    CK(cudaMalloc(&gam, D * 4));
    {
        std::vector<float> hx(D), hg(D);
        for (int i = 0; i < D; i++) hx[i] = frand() + 0.5f, hg[i] = 1.0f + 0.5f * frand();
        CK(cudaMemcpy(x, hx.data(), D * 4, cudaMemcpyHostToDevice));
        CK(cudaMemcpy(gam, hg.data(), D * 4, cudaMemcpyHostToDevice));
    }
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    struct {
        const char *name;
        bool fused, pdl;
        int which;     /* configurations: 0 the rule before this session, 1 the rule, 2 best */
        bool attn_pdl; /* the attention stand-in launched with PDL too (triggers at once) */
    } vs[] = {
        {"norm kernels, PDL off, old rule (the backend before)", false, false, 0, false},
        {"norm fused, PDL off, old rule", true, false, 0, false},
        {"norm kernels, PDL off, rule", false, false, 1, false},
        {"norm fused, PDL off, rule", true, false, 1, false},
        {"norm fused, PDL on, rule (the backend now)", true, true, 1, false},
        {"norm fused, PDL on, best of step 3", true, true, 2, false},
        {"norm fused, PDL on, rule, attention stand-in with PDL", true, true, 1, true},
        {"norm kernels, PDL off, old rule (again)", false, false, 0, false},
        {"norm fused, PDL on, rule (again)", true, true, 1, false},
    };
    printf("\n7B decode-step GEMV chain (32 layers, %.2f GB of weights, one graph; copy %.3f TB/s)\n",
           wbytes / 1e9, copy / 1e12);
    printf("| variant | ms per step | weight GB/s | %% of copy |\n| --- | --- | --- | --- |\n");
    for (auto &v : vs) {
        sk_pdl_set(v.pdl);
        const cfg_pick *c = v.which == 0 ? old : v.which == 1 ? def : best;
        cudaGraph_t g;
        cudaGraphExec_t ge;
        CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
        for (int l = 0; l < L; l++) {
            const __nv_bfloat16 *wq = w + per * l, *wo = wq + (size_t)QKV * D,
                                *wgu = wo + (size_t)D * D, *wd = wgu + (size_t)2 * F * D;
            if (v.fused) {
                launch_sh(SH_QKV, c[SH_QKV], x, wq, qkv, gam, eps, s);
            } else {
                sk_launch_pdl(chain_rmsnorm_kernel, 1, 1024, s, (const float *)x, (const float *)gam,
                              eps, D, h);
                sk_gemv_launch_cfg<__nv_bfloat16, 1, SK_GEMV_STORE, false>(
                    c[SH_QKV].id, c[SH_QKV].ks, h, wq, NULL, QKV, D, qkv, NULL, 0.0f, s);
            }
            if (v.attn_pdl)
                sk_launch_pdl(chain_attn_kernel, 4, 256, s, (const float *)qkv, D, att);
            else
                chain_attn_kernel<<<4, 256, 0, s>>>(qkv, D, att);
            launch_sh(SH_O, c[SH_O], att, wo, x, NULL, 0.0f, s);
            if (v.fused) {
                launch_sh(SH_GU, c[SH_GU], x, wgu, f1, gam, eps, s);
            } else {
                sk_launch_pdl(chain_rmsnorm_kernel, 1, 1024, s, (const float *)x, (const float *)gam,
                              eps, D, h);
                sk_gemv_launch_cfg<__nv_bfloat16, 1, SK_GEMV_SWIGLU, false>(
                    c[SH_GU].id, c[SH_GU].ks, h, wgu, NULL, F, D, f1, NULL, 0.0f, s);
            }
            launch_sh(SH_DOWN, c[SH_DOWN], f1, wd, x, NULL, 0.0f, s);
        }
        CK(cudaStreamEndCapture(s, &g));
        CK(cudaGraphInstantiate(&ge, g, 0));
        const float ms = time_graph(ge, s, 20);
        printf("| %s | %.3f | %.0f | %.1f%% |\n", v.name, ms, wbytes / (ms * 1e-3) / 1e9,
               100.0 * wbytes / (ms * 1e-3) / copy);
        fflush(stdout);
        CK(cudaGraphExecDestroy(ge));
        CK(cudaGraphDestroy(g));
    }
    {
        std::vector<float> hx(D);
        CK(cudaMemcpy(hx.data(), x, D * 4, cudaMemcpyDeviceToHost));
        bool fin = true;
        for (float e : hx) fin = fin && isfinite(e);
        printf("residual after all replays finite: %s\n", fin ? "yes" : "NO");
    }
    cudaFree(w), cudaFree(x), cudaFree(h), cudaFree(qkv), cudaFree(att), cudaFree(f1);
    cudaFree(gam);
    cudaStreamDestroy(s);
}

/* `tune`: steps 1 and 2, then the SAKER_GEMV_CFG line that gives the backend step 1's picks. */
static void tune(void) {
    const double copy = copy_ceiling_tbs() * 1e12;
    cfg_pick old[N_SH], def[N_SH], best[N_SH];
    for (int sh = 0; sh < N_SH; sh++) {
        const int m = sh % 4 == SH_QKV ? SK_GEMV_STORE : sh % 4 == SH_GU ? SK_GEMV_SWIGLU : SK_GEMV_ADD;
        sk_gemv_pick(m, 1, k_sh_n[sh], k_sh_k[sh], &def[sh].id, &def[sh].ks);
        old[sh] = {0, (k_sh_n[sh] + 1) / 2 < 132 * 32 ? 4 : 1}; /* R2 U2, KS 4 below 4224 groups */
    }
    sk_pdl_set(true);
    time_shapes(copy, best);
    time_chain(copy, old, def, best);
    printf("SAKER_GEMV_CFG=");
    for (int sh = 0; sh < N_SH; sh++)
        printf("%s%c:%d:%d=%d/%d", sh ? ";" : "", k_sh_m[sh], k_sh_n[sh], k_sh_k[sh], best[sh].id,
               best[sh].ks);
    printf("\n");
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    if (strcmp(mode, "tune") == 0) { /* the kernels are those `check` checks */
        tune();
        return 0;
    }
    int fails = check_all();
    if (fails) return 1;
    if (strcmp(mode, "check") != 0) time_all();
    return 0;
}
