/* W4A16 matmul (INT4 group-quantized weights, fp32 activations in/out) for the CUDA backend:
 * kernel workbench (STYLE.md 1). Kernels from src/backend/cuda/w4.cuh, included as they are.
 *
 * Build and run from the repository root:
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -lineinfo -lcublasLt \
 *        -Isrc -o /tmp/gemv_w4 dev/cuda/gemv_w4.cu && /tmp/gemv_w4 [check|all]
 *
 * versions:
 *   w4 gemv R/U   sk_w4_gemv_kernel, T <= 4 rows (the backend's pick marked "*")
 *   w4 deq+lt     sk_w4_dequant_kernel to bf16, then cuBLASLt bf16 (the backend's path above 4
 *                 rows; the dequantization is timed with it)
 *   bf16 lt       the peer: x cast to bf16 + cuBLASLt bf16 on a bf16 weight of the same shape
 * main: 1. checks (random Q4G-style data: nibbles, scales in [0.001, 0.02], zero points 0..15; x
 *          uniform in [-1, 1], never zero) against a double CPU reference dequantizing the same
 *          words: max |err| / sum |x w| <= 1e-5 for the GEMV (fp32 math), <= 1e-2 for deq+lt
 *          (bf16 rounding of the dequantized weight), every mode, group sizes 32/64/128;
 *       2. the issue's table: Llama-2-70B linear shapes at 1..4096 rows, CUDA events, median of
 *          30, weights rotated over >= 256 MB; INT4 GB/s = (K N / 2 + scales) / time. */
#include "backend/cuda/w4.cuh"

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
template <int T, int R, int U, int MODE, int KS>
static void launch_ru(const float *x, const uint32_t *q4, const __half2 *q4s, int G, const float *bias,
                      int N_out, int K, float *out, cudaStream_t s) {
    const int groups = (N_out + R - 1) / R, per = SK_W4_WARPS / KS;
    sk_w4_gemv_kernel<T, R, U, MODE, KS><<<(groups + per - 1) / per, 32 * SK_W4_WARPS, 0,
                                          s>>>(x, q4, q4s, G, bias, N_out, K, out, 0);
}
typedef struct variant {
    int T, R, U, mode;
    w4_fn fn;
    bool is_default;
    int version; /* 1, 3 (version 1 with KS = 4 split-K warps) */
} variant;
#define V(T, R, U, M, D) {T, R, U, M, launch_ru<T, R, U, M, 1>, false, 1}
#define V3(T, R, U, M, D) {T, R, U, M, launch_ru<T, R, U, M, 4>, D, 3}
static const variant g_variants[] = {
    V(1, 2, 2, 0, false), V(1, 4, 2, 0, false), V(1, 8, 1, 0, true), V(1, 4, 1, 0, false),
    V(1, 16, 1, 0, false), V(2, 8, 1, 0, false),
    V(2, 4, 2, 0, true),  V(2, 2, 2, 0, false), V(3, 2, 2, 0, true), V(4, 2, 2, 0, true),
    V(4, 4, 1, 0, false), V(1, 8, 1, 1, true),  V(2, 4, 2, 1, true), V(4, 2, 2, 1, true),
    V(1, 8, 1, 2, true),  V(2, 4, 2, 2, true),  V(4, 2, 2, 2, true), V(1, 2, 2, 2, false),
    V3(1, 8, 1, 0, true), V3(1, 4, 2, 0, false), V3(1, 8, 2, 0, false), V3(1, 16, 1, 0, false),
    V3(2, 4, 2, 0, false), V3(2, 8, 1, 0, true), V3(3, 2, 2, 0, true), V3(4, 2, 2, 0, true),
    V3(1, 8, 1, 1, true), V3(2, 8, 1, 1, true), V3(4, 2, 2, 1, true), V3(1, 8, 1, 2, true),
    V3(2, 8, 1, 2, true), V3(4, 2, 2, 2, true), V3(3, 2, 2, 2, true),
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

static int check_all(void) {
    const int shapes[][2] = {{8, 128}, {37, 256}, {576, 576 - 64}, {100, 4096}, {33, 1536}, {64, 8192}};
    const int Gs[] = {32, 64, 128};
    int fails = 0, runs = 0;
    for (auto &sh : shapes)
        for (int G : Gs) {
            if (sh[1] % G) continue;
            for (int vi = 0; vi < N_VARIANTS + 1; vi++) {
                const bool deq = vi == N_VARIANTS;
                const variant *v = deq ? NULL : &g_variants[vi];
                const int mode = deq ? 0 : v->mode, T = deq ? 3 : v->T;
                const int N_out = sh[0], K = sh[1], N = mode == SK_GEMV_SWIGLU ? 2 * N_out : N_out;
                w4mat m;
                w4_make(&m, N, K, G);
                std::vector<float> x((size_t)T * K), bias(N_out), o0((size_t)T * N_out + 8);
                for (auto &e : x) e = frand();
                for (auto &e : bias) e = frand();
                for (auto &e : o0) e = frand();
                for (int g = 0; g < 8; g++) o0[(size_t)T * N_out + g] = NAN;
                float *dx, *db, *dout;
                CK(cudaMalloc(&dx, x.size() * 4));
                CK(cudaMalloc(&db, bias.size() * 4));
                CK(cudaMalloc(&dout, o0.size() * 4));
                CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
                CK(cudaMemcpy(db, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice));
                CK(cudaMemcpy(dout, o0.data(), o0.size() * 4, cudaMemcpyHostToDevice));
                std::vector<float> got(o0.size());
                const bool use_bias = mode != SK_GEMV_SWIGLU;
                if (deq) { /* dequantize, then compare element-wise */
                    __nv_bfloat16 *dh;
                    CK(cudaMalloc(&dh, (size_t)N * K * 2));
                    sk_w4_dequant_kernel<__nv_bfloat16><<<256, 256>>>(m.dq, m.ds, G, N, K, dh);
                    CK(cudaGetLastError());
                    std::vector<uint16_t> h((size_t)N * K);
                    CK(cudaMemcpy(h.data(), dh, h.size() * 2, cudaMemcpyDeviceToHost));
                    double worst = 0;
                    for (long n = 0; n < N; n++)
                        for (int k = 0; k < K; k++) {
                            const double r = w_at(m.q4, m.sc, G, K, n, k);
                            const double e = fabs(bf2f(h[(size_t)n * K + k]) - r) / (fabs(r) + 1e-3);
                            if (e > worst) worst = e;
                        }
                    runs++;
                    if (worst > 1.0 / 128) {
                        fails++;
                        printf("FAIL dequant N=%d K=%d G=%d: worst rel %.3g\n", N, K, G, worst);
                    }
                    cudaFree(dh);
                } else {
                    v->fn(dx, m.dq, m.ds, G, use_bias ? db : NULL, N_out, K, dout, 0);
                    CK(cudaGetLastError());
                    CK(cudaMemcpy(got.data(), dout, got.size() * 4, cudaMemcpyDeviceToHost));
                    double worst = 0;
                    bool bad = false;
                    for (int t = 0; t < T; t++)
                        for (int n = 0; n < N_out; n++) {
                            double s = 0, a = 0, s2 = 0, a2 = 0;
                            for (int k = 0; k < K; k++) {
                                const double p = x[(size_t)t * K + k] * w_at(m.q4, m.sc, G, K, n, k);
                                s += p, a += fabs(p);
                                if (mode == SK_GEMV_SWIGLU) {
                                    const double p2 = x[(size_t)t * K + k] * w_at(m.q4, m.sc, G, K, n + N_out, k);
                                    s2 += p2, a2 += fabs(p2);
                                }
                            }
                            double ref;
                            if (mode == SK_GEMV_SWIGLU) {
                                ref = s / (1 + exp(-s)) * s2;
                                a = a * fabs(s2) + fabs(s) * a2;
                            } else {
                                ref = s + bias[n] + (mode == SK_GEMV_ADD ? o0[(size_t)t * N_out + n] : 0);
                            }
                            const float g = got[(size_t)t * N_out + n];
                            if (!std::isfinite(g)) bad = true;
                            const double e = fabs(g - ref) / (a + 1e-20);
                            if (e > worst) worst = e;
                        }
                    for (int g = 0; g < 8; g++)
                        if (!std::isnan(got[(size_t)T * N_out + g])) bad = true;
                    runs++;
                    if (bad || worst > 1e-5) {
                        fails++;
                        printf("FAIL v%d N=%d K=%d G=%d T=%d R=%d U=%d mode=%d: worst %.3g%s\n", v->version, N_out,
                               K, G, T, v->R, v->U, mode, worst, bad ? " (non-finite/guard)" : "");
                    }
                }
                cudaFree(dx), cudaFree(db), cudaFree(dout);
                w4_free(&m);
            }
        }
    printf("checks: %d runs, %d failed\n", runs, fails);
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

static void time_all(void) {
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
        /* GEMV variants at T = 1, 2 for the choice of R/U */
        for (int vi = 0; vi < N_VARIANTS; vi++) {
            const variant *v = &g_variants[vi];
            if (v->mode != 0 || v->T > 2) continue;
            std::vector<float> ts;
            for (int i = 0; i < iters + 3; i++) {
                CK(cudaEventRecord(e0));
                v->fn(x, q4s[i % n4], scs[i % n4], G, NULL, N, K, out, 0);
                CK(cudaEventRecord(e1));
                CK(cudaEventSynchronize(e1));
                float ms;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                if (i >= 3) ts.push_back(ms);
            }
            printf("| %s | %d | | | %.1f | gemv%s R%d U%d%s | %.0f | |\n", sh.name, v->T, median(ts) * 1e3,
                   v->version == 3 ? " ks4" : "", v->R, v->U, v->is_default ? " *" : "",
                   w4b / (median(ts) * 1e-3) / 1e9);
        }
        for (auto p : q4s) cudaFree(p);
        for (auto p : scs) cudaFree(p);
        for (auto p : hs) cudaFree(p);
        cudaFree(deq), cudaFree(x), cudaFree(xh), cudaFree(out);
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    if (check_all()) return 1;
    if (strcmp(mode, "check") != 0) time_all();
    return 0;
}
