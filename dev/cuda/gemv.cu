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
 * main: 1. checks every (T, R, U, mode) on random data (x, W uniform in [-1, 1] and never
 *          zero; out pre-filled with random values for the ADD mode; a NaN guard after out)
 *          against a double-precision CPU reference over the same bf16 weights: pass when the
 *          max |err| / (sum over k of |x W|) <= 1e-5 (fp32 accumulation order only).
 *       2. times each on the linear shapes of Llama-2-7B and 70B (CUDA events, median of 50,
 *          weights rotated over >= 256 MB of copies so that L2 (60 MB) holds none of them), and
 *          prints the weight GB/s next to a device-to-device copy measured in the same run. */
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

/* CPU reference: out (and the error scale) for the mode. */
static void gemv_cpu(const float *x, const uint16_t *w, const float *bias, const float *out0, int T,
                     int N_out, int K, int mode, double *ref, double *scale) {
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N_out; n++) {
            double s = 0, a = 0, s2 = 0, a2 = 0;
            for (int k = 0; k < K; k++) {
                double p = (double)x[(size_t)t * K + k] * bf2f(w[(size_t)n * K + k]);
                s += p, a += fabs(p);
                if (mode == SK_GEMV_SWIGLU) {
                    double p2 = (double)x[(size_t)t * K + k] * bf2f(w[(size_t)(n + N_out) * K + k]);
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

typedef void (*launch_fn)(const float *, const __nv_bfloat16 *, const float *, int, int, float *,
                          cudaStream_t);
template <int T, int R, int U, int MODE, int KS = 1>
static void launch_ru(const float *x, const __nv_bfloat16 *w, const float *bias, int N_out, int K,
                      float *out, cudaStream_t s) {
    const int groups = (N_out + R - 1) / R, per = SK_GEMV_WARPS / KS;
    sk_gemv_kernel<__nv_bfloat16, T, R, U, MODE, KS>
        <<<(groups + per - 1) / per, 32 * SK_GEMV_WARPS, 0, s>>>(x, w, bias, N_out, K, out, 0);
}
/* The backend's launcher (its own R, U, KS choice). */
template <int T, int MODE>
static void launch_be(const float *x, const __nv_bfloat16 *w, const float *bias, int N_out, int K,
                      float *out, cudaStream_t s) {
    sk_gemv_launch<__nv_bfloat16, MODE>(x, T, w, bias, N_out, K, out, s);
}

typedef struct variant {
    int T, R, U, mode;
    launch_fn fn;
    bool is_default;
} variant;

#define V(T, R, U, M, D) {T, R, U, M, launch_ru<T, R, U, M>, false}
#define VK(T, R, U, M) {T, R, U + 100, M, launch_ru<T, R, U, M, 4>, false}
#define VB(T, M) {T, 0, 0, M, launch_be<T, M>, true}
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
};
#define N_VARIANTS (int)(sizeof g_variants / sizeof g_variants[0])

static int check_all(void) {
    const int shapes[][2] = {{8, 8}, {1, 8}, {37, 264}, {576, 576}, {1536, 576}, {100, 4104},
                             {4096, 4096}, {33, 11008}};
    int fails = 0, runs = 0;
    for (int si = 0; si < (int)(sizeof shapes / sizeof shapes[0]); si++)
        for (int vi = 0; vi < N_VARIANTS; vi++) {
            const variant *v = &g_variants[vi];
            const int N = shapes[si][0] * (v->mode == SK_GEMV_SWIGLU ? 2 : 1), K = shapes[si][1];
            const int N_out = shapes[si][0], T = v->T;
            std::vector<float> x((size_t)T * K), bias(N_out), out0((size_t)T * N_out + 8);
            std::vector<uint16_t> w((size_t)N * K);
            for (auto &e : x) e = frand();
            for (auto &e : w) e = f2bf(frand());
            for (auto &e : bias) e = frand();
            for (auto &e : out0) e = frand();
            for (int g = 0; g < 8; g++) out0[(size_t)T * N_out + g] = NAN;
            const bool use_bias = v->mode != SK_GEMV_SWIGLU && (si & 1);
            float *dx, *db, *dout;
            __nv_bfloat16 *dw;
            CK(cudaMalloc(&dx, x.size() * 4));
            CK(cudaMalloc(&db, bias.size() * 4));
            CK(cudaMalloc(&dout, out0.size() * 4));
            CK(cudaMalloc(&dw, w.size() * 2));
            CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(db, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dout, out0.data(), out0.size() * 4, cudaMemcpyHostToDevice));
            CK(cudaMemcpy(dw, w.data(), w.size() * 2, cudaMemcpyHostToDevice));
            v->fn(dx, dw, use_bias ? db : NULL, N_out, K, dout, 0);
            CK(cudaGetLastError());
            std::vector<float> got(out0.size());
            CK(cudaMemcpy(got.data(), dout, got.size() * 4, cudaMemcpyDeviceToHost));
            std::vector<double> ref((size_t)T * N_out), scale((size_t)T * N_out);
            gemv_cpu(x.data(), w.data(), use_bias ? bias.data() : NULL, out0.data(), T, N_out, K,
                     v->mode, ref.data(), scale.data());
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
                printf("FAIL N=%d K=%d T=%d R=%d U=%d mode=%d: worst rel %.3g%s\n", N_out, K, T,
                       v->R, v->U, v->mode, worst, bad ? " (non-finite or guard)" : "");
            }
            cudaFree(dx), cudaFree(db), cudaFree(dout), cudaFree(dw);
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

static float median(std::vector<float> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

static void time_all(void) {
    lt_ctx lc;
    CKB(cublasLtCreate(&lc.lt));
    CK(cudaMalloc(&lc.ws, 32 << 20));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    const int iters = 50;
    /* Copy ceiling: 1 GB device-to-device, median of 20. */
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
        printf("copy ceiling: %.3f TB/s (bytes read + written, 1 GiB D2D, median of 20)\n",
               2.0 * bytes / (median(ts) * 1e-3) / 1e12);
        cudaFree(a), cudaFree(b);
    }
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
                if (v->T != T || v->mode != sh.mode) continue;
                std::vector<float> ts;
                for (int i = 0; i < iters + 5; i++) {
                    CK(cudaEventRecord(e0));
                    v->fn(dx, ws[i % ncopy], NULL, sh.N, K, dout, 0);
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

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    int fails = check_all();
    if (fails) return 1;
    if (strcmp(mode, "check") != 0) time_all();
    return 0;
}
