/* W4A16 GEMM on tensor cores (INT4 weights, x cast to bf16/fp16, fp32 out) for T >= 5 rows:
 * kernel workbench (STYLE.md 1). Kernels from src/backend/cuda/w4_mma.cuh, included as they are.
 *
 * Build and run from the repository root:
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -lineinfo -lcublasLt \
 *        -Isrc -o /tmp/gemm_w4 dev/cuda/gemm_w4.cu && /tmp/gemm_w4 [check|time|all|prof]
 *   (or the CMake target dev_gemm_w4; prof: a few launches for ncu)
 *
 * versions:
 *   mma CFG      sk_w4m_kernel, tile configuration CFG (BM weight rows x BN tokens), split-K
 *                chosen by the launcher (the backend's pick per T marked "*"); 128x128,
 *                128x64w8 (8 warps of 32 x 32), 128x16np (no L2 prefetch), 128x16s6 (6 stages)
 *                for comparison only; ws128x64 / ws128x128: sk_w4ws_kernel (warp-specialized:
 *                a cp.async producer warpgroup, two dequantize + wgmma consumer warpgroups,
 *                mbarriers per stage; session 8: correct, slower than g128x*); wt128xBN: the
 *                same with a TMA producer warp (session 8: the backend's tiles at 65-1024 rows);
 *                wc192xBN / wr192xBN: the same with three consumer warpgroups (192 weight rows a
 *                block; wc: 416 threads, the producer warp last; wr: 512, setmaxnreg 40 / 152;
 *                session 9); wn64xBN: the TMA kernel with one consumer warpgroup (64 rows, 160
 *                threads, the producer warp last), two blocks an SM; wr128x256 / wr128x192:
 *                two consumer warpgroups with setmaxnreg 40 / 232, 384 threads, 3 stages (the
 *                design note's 128 x 256 tile; m64n256k16 at BN = 256; not yet run on a GPU)
 *   deq+lt old   w4.cuh's sk_w4_dequant_kernel to bf16, then cuBLASLt bf16 (the backend's path
 *                above 4 rows before this kernel, and still above SK_W4M_MAX_T rows; the
 *                dequantization is timed with it)
 *   deq+lt new   the same with sk_w4m_dequant_kernel below (one word per thread, no divisions)
 *   bf16 lt      the peer: x cast to bf16 + cuBLASLt bf16 on a bf16 weight of the same shape
 *   gemv         w4.cuh's GEMV at T = 1 (the backend's path for T <= 4), for reference
 * main: 1. checks (random Q4G-style data: nibbles, scales in [0.001, 0.02], zero points 0..15;
 *          x uniform in [-1, 1], never zero) against a double CPU reference dequantizing the
 *          same words, at odd shapes (T 5..255, N and K not powers of two, K not a multiple of
 *          the 128-element stage), groups 32/64/128, bf16 and fp16, STORE (+bias), ADD (+bias)
 *          and SWIGLU, every configuration, split-K as chosen and forced to 1 and 3; each launch
 *          twice (bit-identical: the split-K counters must reset); error max |got - ref| /
 *          sum |x w| per output <= 8e-3 (bf16: x, d and the product each rounded, <= 2^-9
 *          each) or 1.5e-3 (fp16, <= 2^-11 each); guard values after the output. The new
 *          dequantization kernel must equal the old one bit for bit.
 *       2. the issue's table: Llama-2-70B linear shapes at T = 1 .. 4096, group 128, CUDA events
 *          around cast + product, a spin kernel queued first so that host launch overhead is
 *          not timed, median of 30, weights rotated over >= 256 MB so L2 holds none; INT4 GB/s
 *          = (K N / 2 + 4 N K / G) / time.
 * environment (check and time): GW4_CFGS=name,name,... only these configurations (names as
 * in sk_w4m_cfg_name, e.g. ws128x64,g128x64; default all); GW4_TRACE=1 prints each checked
 * launch before it runs (flushed), so that a kernel that hangs is named. */
#define SK_W4M_ALL_CONFIGS /* time the comparison configurations too */
#include "backend/cuda/common.cuh"
#include "backend/cuda/half.cuh"
#include "backend/cuda/w4.cuh"
#include "backend/cuda/w4_mma.cuh"
#include "bench_util.cuh"

#include <cublasLt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <algorithm>
#include <string>
#include <type_traits>
#include <vector>

static uint64_t g_rng = 0x1234567887654321ull;
static uint64_t next_rng(void) {
    g_rng ^= g_rng << 13, g_rng ^= g_rng >> 7, g_rng ^= g_rng << 17;
    return g_rng;
}
static float frand(void) { /* uniform in [-1, 1), never exactly 0 */
    const float v = (float)((next_rng() >> 40) & 0xffffff) / 8388608.0f - 1.0f;
    return v == 0.0f ? 0.5f : v;
}
static float hbits2f(uint16_t h) {
    const uint32_t s = (h >> 15) & 1, e = (h >> 10) & 0x1f, m = h & 0x3ff;
    float v = e == 0 ? ldexpf((float)m, -24) : ldexpf((float)(m | 0x400), (int)e - 25);
    return s ? -v : v;
}
static uint16_t f2h(float f) { /* positive normal values only (scales) */
    int e;
    float m = frexpf(f, &e);
    uint32_t mant = (uint32_t)lrintf((m * 2.0f - 1.0f) * 1024.0f);
    int ex = e - 1 + 15;
    if (mant == 1024) mant = 0, ex++;
    return (uint16_t)((ex << 10) | mant);
}

typedef struct w4mat {
    int N, K, G;
    std::vector<uint32_t> q4;
    std::vector<uint16_t> sc; /* [N][K/G][2]: d, 1024 + z (fp16 bits) */
    uint32_t *dq;
    __half2 *ds;
} w4mat;

static void w4_make(w4mat *m, int N, int K, int G) {
    m->N = N, m->K = K, m->G = G;
    m->q4.resize((size_t)N * K / 8);
    m->sc.resize((size_t)N * (K / G) * 2);
    for (auto &w : m->q4) w = (uint32_t)(next_rng() >> 17);
    for (size_t g = 0; g < m->sc.size() / 2; g++) {
        m->sc[2 * g] = f2h(0.001f + 0.019f * (0.5f + 0.5f * frand()));
        m->sc[2 * g + 1] = (uint16_t)(0x6400 | (next_rng() >> 60));
    }
    /* the device's q4 is tile-major (w4_layout.h); m->q4 stays row-major for the references */
    std::vector<uint32_t> tiles(sk_w4_words(N, K));
    sk_w4_tile_host(m->q4.data(), N, K, tiles.data());
    CK(cudaMalloc(&m->dq, tiles.size() * 4));
    CK(cudaMalloc(&m->ds, m->sc.size() * 2));
    CK(cudaMemcpy(m->dq, tiles.data(), tiles.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(m->ds, m->sc.data(), m->sc.size() * 2, cudaMemcpyHostToDevice));
}
static void w4_free(w4mat *m) { cudaFree(m->dq), cudaFree(m->ds); }

/* Host reference: the dequantized weight [N][K] in double, from the device layout. */
static std::vector<double> w_ref(const w4mat *m) {
    const int K = m->K, G = m->G;
    std::vector<double> w((size_t)m->N * K);
    for (long n = 0; n < m->N; n++)
        for (int k = 0; k < K; k++) {
            const uint32_t wd = m->q4[(size_t)n * (K / 8) + k / 8];
            const int e = k & 7, sh = (e & 1) ? 16 + 4 * (e >> 1) : 4 * (e >> 1);
            const int q = (int)((wd >> sh) & 0xf);
            const size_t g = (size_t)n * (K / G) + k / G;
            const int z = (int)(m->sc[2 * g + 1] & 0xf);
            w[(size_t)n * K + k] = (double)(q - z) * hbits2f(m->sc[2 * g]);
        }
    return w;
}

/* x fp32 -> H (round to nearest; fp16 saturating, as the backend's cast). */
template <typename H>
static __global__ void cast_kernel(const float *x, H *y, size_t n) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        sk_hst(y + i, x[i]);
}
template <typename H>
static void cast_x(const float *x, H *y, size_t n, cudaStream_t s) {
    const unsigned b = (unsigned)std::min<size_t>(4096, (n + 255) / 256);
    cast_kernel<H><<<b, 256, 0, s>>>(x, y, n);
}
static const char *fmt_us(float t, char *buf, const char *suffix) {
    if (t < 0) return "-";
    snprintf(buf, 48, "%.1f%s", t, suffix);
    return buf;
}

/* The dequantization of the cuBLASLt path, one word (8 elements, one 16-byte store) per thread
 * and no 64-bit divisions, value (q - z) * d in fp32 rounded once as w4.cuh's
 * sk_w4_dequant_kernel (checked bit-identical below). grid (ceil(K / 8 / 256), min(N, 65535)).
 * Measured: deq+lt 3-4% faster than with w4.cuh's kernel at 8-256 rows, but 1-4% slower at 4096
 * rows in one of two runs, so the backend keeps w4.cuh's; also used to fill the bf16 peer's
 * weights. */
template <typename H>
static __global__ void __launch_bounds__(256)
    sk_w4m_dequant_kernel(const uint32_t *__restrict__ q4, const __half2 *__restrict__ q4s, int G,
                          int N, int K, H *__restrict__ out) {
    const int K8 = K >> 3, KG = K / G;
    const int j = blockIdx.x * blockDim.x + threadIdx.x;
    if (j >= K8) return;
    for (int n = blockIdx.y; n < N; n += gridDim.y) {
        const uint32_t w = __ldg(q4 + sk_w4_widx(n, j, K));
        const __half2 s = q4s[(size_t)n * KG + (8 * j) / G];
        const __half2 zb = __half2half2(__high2half(s));
        const float d = __low2float(s);
        union {
            H h[8];
            uint4 u;
        } pk;
#pragma unroll
        for (int p = 0; p < 4; p++) {
            const uint32_t hb = ((w >> (4 * p)) & 0x000f000fu) | 0x64006400u;
            const float2 v = __half22float2(__hsub2(sk_w4m_h2(hb), zb));
            pk.h[2 * p] = (H)(v.x * d);
            pk.h[2 * p + 1] = (H)(v.y * d);
        }
        *reinterpret_cast<uint4 *>(out + (size_t)n * K + 8 * (size_t)j) = pk.u;
    }
}
template <typename H>
static void sk_w4m_dequant(const uint32_t *q4, const __half2 *q4s, int G, int N, int K, H *out,
                           cudaStream_t s) {
    const unsigned bx = (unsigned)((K / 8 + 255) / 256), by = (unsigned)(N < 65535 ? N : 65535);
    sk_w4m_dequant_kernel<H><<<dim3(bx, by), 256, 0, s>>>(q4, q4s, G, N, K, out);
}

typedef struct check_shape {
    int T, N_out, K;
} check_shape;

/* Whether configuration cfg is in GW4_CFGS (comma-separated names; unset or empty: all). */
static bool cfg_on(int cfg) {
    const char *e = getenv("GW4_CFGS");
    if (!e || !*e) return true;
    const size_t n = strlen(sk_w4m_cfg_name[cfg]);
    for (const char *c = e; *c;) {
        const char *end = strchr(c, ',');
        const size_t len = end ? (size_t)(end - c) : strlen(c);
        if (len == n && strncmp(c, sk_w4m_cfg_name[cfg], n) == 0) return true;
        if (!end) break;
        c = end + 1;
    }
    return false;
}
static bool g_trace(void) {
    const char *e = getenv("GW4_TRACE");
    return e && *e && strcmp(e, "0") != 0;
}

template <typename H>
static int check_one(const check_shape &sh, int G, int mode, const w4mat &m,
                     const std::vector<double> &wr, const std::vector<float> &x,
                     const std::vector<float> &bias, const std::vector<float> &o0,
                     const sk_w4m_scratch *scr, const char *hname, int *runs) {
    const int T = sh.T, N_out = sh.N_out, K = sh.K;
    const size_t no = (size_t)T * N_out;
    /* reference */
    std::vector<double> ref(no), mag(no);
    for (int t = 0; t < T; t++)
        for (int n = 0; n < N_out; n++) {
            double s = 0, a = 0, s2 = 0, a2 = 0;
            const float *xr = &x[(size_t)t * K];
            const double *w1 = &wr[(size_t)n * K];
            const double *w2 = mode == SK_GEMV_SWIGLU ? &wr[(size_t)(n + N_out) * K] : NULL;
            for (int k = 0; k < K; k++) {
                const double p = xr[k] * w1[k];
                s += p, a += fabs(p);
                if (w2) {
                    const double p2 = xr[k] * w2[k];
                    s2 += p2, a2 += fabs(p2);
                }
            }
            double r;
            if (mode == SK_GEMV_SWIGLU) {
                r = s / (1 + exp(-s)) * s2;
                a = a * fabs(s2) + fabs(s) * a2;
            } else {
                r = s + bias[n] + (mode == SK_GEMV_ADD ? o0[(size_t)t * N_out + n] : 0);
            }
            ref[(size_t)t * N_out + n] = r;
            mag[(size_t)t * N_out + n] = a;
        }
    float *dx, *db, *dout;
    H *dxh;
    CK(cudaMalloc(&dx, x.size() * 4));
    CK(cudaMalloc(&dxh, x.size() * 2));
    CK(cudaMalloc(&db, bias.size() * 4));
    CK(cudaMalloc(&dout, (no + 8) * 4));
    CK(cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice));
    CK(cudaMemcpy(db, bias.data(), bias.size() * 4, cudaMemcpyHostToDevice));
    cast_x<H>(dx, dxh, x.size(), 0);
    const double tol = std::is_same<H, __half>::value ? 1.5e-3 : 8e-3;
    const bool use_bias = mode != SK_GEMV_SWIGLU;
    std::vector<float> init(no + 8), got(no + 8), got2(no + 8);
    for (size_t i = 0; i < no; i++) init[i] = o0[i];
    for (int i = 0; i < 8; i++) init[no + i] = NAN;
    int fails = 0;
    const int split_opts[] = {0, 1, 3, SK_W4M_STREAMK};
    for (int cfg = 0; cfg < SK_W4M_NCFG; cfg++) {
        if (!sk_w4m_cfg_fits(cfg, K) || !sk_w4m_cfg_rows_ok(cfg, N_out, mode == SK_GEMV_SWIGLU) ||
            !cfg_on(cfg))
            continue;
        if (sk_w4m_cfg_permuted(cfg))
            sk_w4g_cast<H>(dx, dxh, T, K, 0);
        else
            cast_x<H>(dx, dxh, x.size(), 0);
        for (int so : split_opts) {
            for (int rep = 0; rep < 2; rep++) {
                if (g_trace()) {
                    printf("launch %s mma %s split %d mode %d T=%d N=%d K=%d G=%d rep %d\n", hname,
                           sk_w4m_cfg_name[cfg], so, mode, T, N_out, K, G, rep);
                    fflush(stdout);
                }
                CK(cudaMemcpy(dout, init.data(), init.size() * 4, cudaMemcpyHostToDevice));
                if (mode == SK_GEMV_STORE)
                    sk_w4m_launch<H, SK_GEMV_STORE>(cfg, dxh, T, m.dq, m.ds, G, use_bias ? db : NULL,
                                                    N_out, K, dout, scr, so, 0);
                else if (mode == SK_GEMV_ADD)
                    sk_w4m_launch<H, SK_GEMV_ADD>(cfg, dxh, T, m.dq, m.ds, G, use_bias ? db : NULL,
                                                  N_out, K, dout, scr, so, 0);
                else
                    sk_w4m_launch<H, SK_GEMV_SWIGLU>(cfg, dxh, T, m.dq, m.ds, G, NULL, N_out, K,
                                                     dout, scr, so, 0);
                CK(cudaGetLastError());
                CK(cudaMemcpy(rep ? got2.data() : got.data(), dout, got.size() * 4,
                              cudaMemcpyDeviceToHost));
            }
            double worst = 0;
            bool bad = false;
            for (size_t i = 0; i < no; i++) {
                if (!std::isfinite(got[i])) bad = true;
                const double e = fabs(got[i] - ref[i]) / (mag[i] + 1e-20);
                if (e > worst) worst = e;
            }
            for (int i = 0; i < 8; i++)
                if (!std::isnan(got[no + i])) bad = true;
            const bool same = memcmp(got.data(), got2.data(), got.size() * 4) == 0;
            /* split-K / stream-K counters must be back at zero after each launch */
            std::vector<int> cnt(SK_W4M_CNT);
            CK(cudaMemcpy(cnt.data(), scr->cnt, SK_W4M_CNT * sizeof(int), cudaMemcpyDeviceToHost));
            for (int c : cnt)
                if (c != 0) bad = true;
            (*runs)++;
            if (bad || !same || !(worst <= tol)) {
                fails++;
                printf("FAIL %s mma %s split %d mode %d T=%d N=%d K=%d G=%d: worst %.3g%s%s\n", hname,
                       sk_w4m_cfg_name[cfg], so, mode, T, N_out, K, G, worst,
                       bad ? " (non-finite/guard/counters)" : "", same ? "" : " (not repeatable)");
            }
        }
    }
    cudaFree(dx), cudaFree(dxh), cudaFree(db), cudaFree(dout);
    return fails;
}

static int check_all(const sk_w4m_scratch *scr) {
    const check_shape shapes[] = {{5, 96, 512},   {7, 264, 576},   {13, 100, 1536}, {16, 256, 4096},
                                  {33, 130, 1600}, {64, 768, 1024}, {100, 200, 2112}, {255, 136, 896},
                                  {300, 72, 640},  {9, 8200, 256}, {130, 384, 2048}, {64, 136, 8192}};
    const int Gs[] = {32, 64, 128};
    int fails = 0, runs = 0;
    for (const auto &sh : shapes)
        for (int G : Gs) {
            if (sh.K % G) continue;
            for (int mode = 0; mode < 3; mode++) {
                const int N = mode == SK_GEMV_SWIGLU ? 2 * sh.N_out : sh.N_out;
                w4mat m;
                w4_make(&m, N, sh.K, G);
                const std::vector<double> wr = w_ref(&m);
                std::vector<float> x((size_t)sh.T * sh.K), bias(sh.N_out), o0((size_t)sh.T * sh.N_out);
                for (auto &e : x) e = frand();
                for (auto &e : bias) e = frand();
                for (auto &e : o0) e = frand();
                fails += check_one<__nv_bfloat16>(sh, G, mode, m, wr, x, bias, o0, scr, "bf16", &runs);
                fails += check_one<__half>(sh, G, mode, m, wr, x, bias, o0, scr, "fp16", &runs);
                w4_free(&m);
            }
        }
    /* the dequantization kernel for the cuBLASLt path: bit-identical to w4.cuh's */
    const int dq[][3] = {{264, 576, 32}, {100, 1536, 64}, {77, 4096, 128}, {3, 8192, 128}};
    for (const auto &d : dq) {
        w4mat m;
        w4_make(&m, d[0], d[1], d[2]);
        const size_t n = (size_t)d[0] * d[1];
        __nv_bfloat16 *a, *b;
        __half *c, *e;
        CK(cudaMalloc(&a, n * 2));
        CK(cudaMalloc(&b, n * 2));
        CK(cudaMalloc(&c, n * 2));
        CK(cudaMalloc(&e, n * 2));
        sk_w4_dequant_kernel<__nv_bfloat16><<<256, 256>>>(m.dq, m.ds, d[2], d[0], d[1], a);
        sk_w4m_dequant<__nv_bfloat16>(m.dq, m.ds, d[2], d[0], d[1], b, 0);
        sk_w4_dequant_kernel<__half><<<256, 256>>>(m.dq, m.ds, d[2], d[0], d[1], c);
        sk_w4m_dequant<__half>(m.dq, m.ds, d[2], d[0], d[1], e, 0);
        CK(cudaGetLastError());
        std::vector<uint16_t> ha(n), hb(n), hc(n), he(n);
        CK(cudaMemcpy(ha.data(), a, n * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hb.data(), b, n * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(hc.data(), c, n * 2, cudaMemcpyDeviceToHost));
        CK(cudaMemcpy(he.data(), e, n * 2, cudaMemcpyDeviceToHost));
        runs++;
        if (ha != hb || hc != he) {
            fails++;
            printf("FAIL dequant N=%d K=%d G=%d: differs from sk_w4_dequant_kernel\n", d[0], d[1], d[2]);
        }
        cudaFree(a), cudaFree(b), cudaFree(c), cudaFree(e);
        w4_free(&m);
    }
    printf("checks: %d runs, %d failed\n", runs, fails);
    return fails;
}

static const char *g_ms = NULL; /* argv[2] of "time": the row counts to time */

/* ---- timing ----------------------------------------------------------------------------------- */

typedef struct lt_ctx {
    cublasLtHandle_t lt;
    void *ws;
} lt_ctx;

static void lt_matmul(lt_ctx *c, const __nv_bfloat16 *xh, int T, const __nv_bfloat16 *w, int N,
                      int K, float *out, cudaStream_t s, cublasLtMatmulAlgo_t *algo, bool *have) {
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
    const float alpha = 1.0f, beta = 0.0f;
    CKB(cublasLtMatmul(c->lt, op, &alpha, w, la, xh, lb, &beta, out, ld, out, ld, algo, c->ws,
                       32 << 20, s));
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb);
    cublasLtMatrixLayoutDestroy(ld), cublasLtMatmulDescDestroy(op);
}

static __global__ void spin_kernel(long long ns) {
    long long t0, t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t0));
    do asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    while (t - t0 < ns);
}
static __global__ void fill_kernel(float *x, size_t n, uint32_t seed) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        x[i] = (float)((sk_w4_hash(seed, i) & 0xffff) + 1) / 32768.0f - 1.0f;
}

/* Median time (us) of fn(i) over `iters` runs after 3 warm-ups, each after a 40 us spin. */
template <typename F>
static float time_us(F fn, int iters, cudaEvent_t e0, cudaEvent_t e1) {
    std::vector<float> ts;
    for (int i = 0; i < iters + 3; i++) {
        spin_kernel<<<1, 1>>>(40000);
        CK(cudaEventRecord(e0));
        fn(i);
        CK(cudaEventRecord(e1));
        CK(cudaEventSynchronize(e1));
        float ms;
        CK(cudaEventElapsedTime(&ms, e0, e1));
        if (i >= 3) ts.push_back(ms * 1e3f);
    }
    CK(cudaGetLastError());
    return median(ts);
}

/* "bn T1,T2,..": the wgmma configurations at split-K auto / 1 / 2 / 3 / 4 on the 70B
 * shapes (gate/up in the backend's SwiGLU mode: 28672 outputs over 57344 weight rows; with
 * GW4_BN_MODEL=7b Llama-2-7B's), medians of 15 runs; for choosing sk_w4m_pick's tile width per
 * shape (session 6). */
static void time_bn(const sk_w4m_scratch *scr) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    typedef struct {
        const char *name;
        int N_out, K, mode;
    } bn_shape;
    static const bn_shape s70[] = {{"qkv", 10240, 8192, SK_GEMV_STORE},
                                   {"o", 8192, 8192, SK_GEMV_ADD},
                                   {"gate/up swiglu", 28672, 8192, SK_GEMV_SWIGLU},
                                   {"down", 8192, 28672, SK_GEMV_ADD}};
    /* GW4_BN_MODEL=7b: Llama-2-7B's shapes instead (its picks come from the 70B rows) */
    static const bn_shape s7[] = {{"7B qkv", 12288, 4096, SK_GEMV_STORE},
                                  {"7B o", 4096, 4096, SK_GEMV_ADD},
                                  {"7B gate/up swiglu", 11008, 4096, SK_GEMV_SWIGLU},
                                  {"7B down", 4096, 11008, SK_GEMV_ADD}};
    const char *model = getenv("GW4_BN_MODEL");
    const bool m7 = model && strcmp(model, "7b") == 0;
    const bn_shape *shapes = m7 ? s7 : s70;
    const int n_shapes = 4;
    /* GW4_CFGS set: the x-permuted configurations it names (any of them) instead of session 6's
     * list; GW4_BN_AUTO=1: the launcher's split only (session 9: choosing among the TMA tiles) */
    std::vector<int> cfgs = {SK_W4M_G64, SK_W4M_G80, SK_W4M_G96, SK_W4M_G128, SK_W4M_G144,
                             SK_W4M_G160, SK_W4M_G192};
    const char *ce = getenv("GW4_CFGS");
    if (ce && *ce) {
        cfgs.clear();
        for (int c = 0; c < SK_W4M_NCFG; c++)
            if (sk_w4m_cfg_permuted(c) && cfg_on(c)) cfgs.push_back(c);
    }
    const char *ae = getenv("GW4_BN_AUTO");
    const bool auto_only = ae && *ae && strcmp(ae, "0") != 0;
    /* session 10: 3 splits instead of stream-K (off in the backend since session 7) */
    std::vector<int> splits = {0, 1, 2, 3, 4};
    if (auto_only) splits = {0};
    std::vector<int> Ms;
    for (const char *c = g_ms ? g_ms : "70,96,128,139,160,192"; *c;) {
        Ms.push_back(atoi(c));
        while (*c && *c != ',') c++;
        if (*c) c++;
    }
    int Mmax = 256;
    for (int M : Ms) Mmax = std::max(Mmax, M);
    if (auto_only)
        printf("| shape | T | cfg | auto us |\n| --- | --- | --- | --- |\n");
    else
        printf("| shape | T | cfg | auto us | s1 | s2 | s3 | s4 |\n"
               "| --- | --- | --- | --- | --- | --- | --- | --- |\n");
    for (int si = 0; si < n_shapes; si++) {
        const bn_shape &sh = shapes[si];
        const int G = 128, K = sh.K, Nw = sh.mode == SK_GEMV_SWIGLU ? 2 * sh.N_out : sh.N_out;
        const size_t w4b = (size_t)Nw * K / 2 + (size_t)Nw * (K / G) * 4;
        const int n4 = (int)std::max<size_t>(2, ((size_t)256 << 20) / w4b + 1);
        std::vector<uint32_t *> q4s(n4);
        std::vector<__half2 *> scs(n4);
        for (int i = 0; i < n4; i++) {
            CK(cudaMalloc(&q4s[i], (size_t)Nw * K / 2));
            CK(cudaMalloc(&scs[i], (size_t)Nw * (K / G) * 4));
            sk_w4_random_kernel<<<4096, 256>>>(q4s[i], scs[i], G, Nw, K, 0.01f, 777 + i);
        }
        float *x, *out;
        __nv_bfloat16 *xh, *xn;
        CK(cudaMalloc(&x, (size_t)Mmax * K * 4));
        CK(cudaMalloc(&xh, (size_t)Mmax * K * 2));
        CK(cudaMalloc(&xn, (size_t)Mmax * K * 2));
        CK(cudaMalloc(&out, (size_t)Mmax * sh.N_out * 4));
        fill_kernel<<<4096, 256>>>(x, (size_t)Mmax * K, 78);
        CK(cudaMemset(out, 0, (size_t)Mmax * sh.N_out * 4));
        CK(cudaDeviceSynchronize());
        for (int M : Ms) {
            int psplit;
            const int pick = sk_w4m_pick(M, sh.N_out, K, sh.mode == SK_GEMV_SWIGLU, SK_W4M_WT_MAX_T,
                                         &psplit);
            /* up to 32 rows the mma.sync tiles too (x not permuted: their own copy, xn) */
            std::vector<int> cl;
            if (M <= 32) cl.push_back(SK_W4M_128x16), cl.push_back(SK_W4M_128x32);
            for (int c : cfgs) cl.push_back(c);
            sk_w4g_cast<__nv_bfloat16>(x, xh, M, K, 0);
            if (M <= 32) cast_x<__nv_bfloat16>(x, xn, (size_t)M * K, 0);
            for (int c : cl) {
                __nv_bfloat16 *xc = sk_w4m_cfg_permuted(c) ? xh : xn;
                /* * = the backend's pick (*1: unsplit, the model's choice over the launcher's) */
                printf("| %s | %d | %s%s%s |", sh.name, M, sk_w4m_cfg_name[c], c == pick ? "*" : "",
                       c == pick && psplit ? "1" : "");
                for (int so : splits) {
                    const float us = time_us([&](int i) {
                        if (sh.mode == SK_GEMV_STORE)
                            sk_w4m_launch<__nv_bfloat16, SK_GEMV_STORE>(c, xc, M, q4s[i % n4], scs[i % n4],
                                                                        G, NULL, sh.N_out, K, out, scr, so, 0);
                        else if (sh.mode == SK_GEMV_ADD)
                            sk_w4m_launch<__nv_bfloat16, SK_GEMV_ADD>(c, xc, M, q4s[i % n4], scs[i % n4],
                                                                      G, NULL, sh.N_out, K, out, scr, so, 0);
                        else
                            sk_w4m_launch<__nv_bfloat16, SK_GEMV_SWIGLU>(c, xc, M, q4s[i % n4], scs[i % n4],
                                                                         G, NULL, sh.N_out, K, out, scr, so, 0);
                    }, 15, e0, e1);
                    printf(" %.1f |", us);
                }
                printf("\n");
                fflush(stdout);
            }
        }
        for (int i = 0; i < n4; i++) cudaFree(q4s[i]), cudaFree(scs[i]);
        cudaFree(x), cudaFree(xh), cudaFree(xn), cudaFree(out);
    }
}

static void time_all(const sk_w4m_scratch *scr) {
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
        const float us = time_us([&](int) { CK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice)); },
                                 20, e0, e1);
        printf("copy ceiling: %.3f TB/s (1 GiB D2D, read + write)\n", 2.0 * bytes / (us * 1e-6) / 1e12);
        cudaFree(a), cudaFree(b);
    }
    struct {
        const char *name;
        int N, K;
    } shapes[] = {{"qkv 10240x8192", 10240, 8192}, {"o 8192x8192", 8192, 8192},
                  {"gate/up 57344x8192", 57344, 8192}, {"down 8192x28672", 8192, 28672}};
    std::vector<int> Ms = {1, 8, 16, 32, 64, 128, 256, 1024, 4096};
    if (g_ms && *g_ms) { /* "time 32,64,128": only those row counts */
        Ms.clear();
        for (const char *c = g_ms; *c;) {
            Ms.push_back(atoi(c));
            while (*c && *c != ',') c++;
            if (*c) c++;
        }
    }
    printf("\nper configuration (us; split-K as the launcher picks; * = backend's pick):\n");
    printf("| shape | T | bf16 lt | deq+lt old | deq+lt new |");
    for (int c = 0; c < SK_W4M_NCFG; c++) printf(" mma %s |", sk_w4m_cfg_name[c]);
    printf("\n| --- | --- | --- | --- | --- |");
    for (int c = 0; c < SK_W4M_NCFG; c++) printf(" --- |");
    printf("\n");
    std::string table;
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
            sk_w4_random_kernel<<<4096, 256>>>(q4s[i], scs[i], G, N, K, 0.01f, 1234 + i);
        }
        for (int i = 0; i < nh; i++) {
            CK(cudaMalloc(&hs[i], hb));
            sk_w4m_dequant<__nv_bfloat16>(q4s[i % n4], scs[i % n4], G, N, K, hs[i], 0);
        }
        __nv_bfloat16 *deq, *xh;
        float *x, *out;
        const int Mmax = 4096;
        CK(cudaMalloc(&deq, hb));
        CK(cudaMalloc(&x, (size_t)Mmax * K * 4));
        CK(cudaMalloc(&xh, (size_t)Mmax * K * 2));
        CK(cudaMalloc(&out, (size_t)Mmax * N * 4));
        fill_kernel<<<4096, 256>>>(x, (size_t)Mmax * K, 77);
        CK(cudaDeviceSynchronize());
        for (int M : Ms) {
            cublasLtMatmulAlgo_t a1, a2, a3;
            bool h1 = false, h2 = false, h3 = false;
            const float tb = time_us([&](int i) {
                cast_x<__nv_bfloat16>(x, xh, (size_t)M * K, 0);
                lt_matmul(&lc, xh, M, hs[i % nh], N, K, out, 0, &a1, &h1);
            }, iters, e0, e1);
            float told = -1, tnew = -1, tgemv = -1;
            if (M <= SK_W4_MAX_T) {
                tgemv = time_us([&](int i) {
                    sk_w4_gemv_launch<SK_GEMV_STORE>(x, M, q4s[i % n4], scs[i % n4], G, NULL, N, K, out, 0);
                }, iters, e0, e1);
            } else {
                told = time_us([&](int i) {
                    sk_w4_dequant_kernel<__nv_bfloat16><<<4096, 256>>>(q4s[i % n4], scs[i % n4], G, N, K, deq);
                    cast_x<__nv_bfloat16>(x, xh, (size_t)M * K, 0);
                    lt_matmul(&lc, xh, M, deq, N, K, out, 0, &a2, &h2);
                }, iters, e0, e1);
            }
            tnew = time_us([&](int i) {
                sk_w4m_dequant<__nv_bfloat16>(q4s[i % n4], scs[i % n4], G, N, K, deq, 0);
                cast_x<__nv_bfloat16>(x, xh, (size_t)M * K, 0);
                lt_matmul(&lc, xh, M, deq, N, K, out, 0, &a3, &h3);
            }, iters, e0, e1);
            float tc[SK_W4M_NCFG];
            int psplit;
            /* the backend's pick, past 1,024 rows too (matmul.cu: the model up to
             * SK_W4M_MODEL_MAX_T rows within one scratch chunk, else dequantize + cuBLASLt) */
            const int mmax = sk_w4m_model_max(K, SK_W4M_MODEL_MAX_T, SK_CUDA_SCRATCH_FLOATS);
            const int pick = sk_w4m_pick(M, N, K, false, mmax, &psplit);
            for (int c = 0; c < SK_W4M_NCFG; c++) {
                tc[c] = -1;
                /* small-BN tiles at long prefills only re-read the weights: skip */
                if (M >= 1024 && (c == SK_W4M_128x16 || c == SK_W4M_128x32 || c == SK_W4M_128x16NP ||
                                  c == SK_W4M_128x16S6))
                    continue;
                /* the wgmma tiles below 32 rows: mostly padding; GW4_CFGS (the pick always:
                 * the issue's table reports it) */
                if ((sk_w4m_cfg_permuted(c) && M < 32) || (!cfg_on(c) && c != pick))
                    continue;
                tc[c] = time_us([&](int i) {
                    if (sk_w4m_cfg_permuted(c))
                        sk_w4g_cast<__nv_bfloat16>(x, xh, M, K, 0);
                    else
                        cast_x<__nv_bfloat16>(x, xh, (size_t)M * K, 0);
                    sk_w4m_launch<__nv_bfloat16, SK_GEMV_STORE>(c, xh, M, q4s[i % n4], scs[i % n4], G,
                                                                NULL, N, K, out, scr,
                                                                c == pick ? psplit : 0, 0);
                }, iters, e0, e1);
            }
            char b1[48], b2[48];
            printf("| %s | %d | %.1f | %s | %.1f |", sh.name, M, tb, fmt_us(told, b1, ""), tnew);
            int best = -1;
            for (int c = 0; c < SK_W4M_NCFG; c++) {
                if (tc[c] < 0) {
                    printf(" - |");
                    continue;
                }
                if (best < 0 || tc[c] < tc[best]) best = c;
                printf(" %.1f%s |", tc[c], c == pick && M > SK_W4_MAX_T ? "*" : "");
            }
            printf("\n");
            /* the issue's table row: the backend's path for this T */
            const double fl = 2.0 * M * (double)N * K;
            float tw;
            const char *path;
            char pbuf[64];
            if (M <= SK_W4_MAX_T) {
                tw = tgemv, path = "gemv";
            } else if (pick >= 0) {
                tw = tc[pick];
                snprintf(pbuf, sizeof pbuf, "mma %s", sk_w4m_cfg_name[pick]);
                path = pbuf;
            } else {
                tw = told, path = "deq+lt";
            }
            char row[512];
            snprintf(row, sizeof row,
                     "| %s | %d | %.1f (%.0f) | %s | %.1f | %.0f | %.0f | %.2fx | %s | mma %s %.1f |\n",
                     sh.name, M, tb, fl / (tb * 1e-6) / 1e12, path, tw, fl / (tw * 1e-6) / 1e12,
                     w4b / (tw * 1e-6) / 1e9, tb / tw,
                     told > 0 ? fmt_us(told, b1, " us") : fmt_us(tgemv, b2, " us (gemv)"),
                     best >= 0 ? sk_w4m_cfg_name[best] : "-", best >= 0 ? tc[best] : 0.0f);
            table += row;
        }
        /* split-K sweep for the picks at T = 16 and 64 */
        for (int M : {16, 64}) {
            const int c = sk_w4m_pick(M, N, K);
            if (c < 0) continue;
            printf("| %s | %d | split sweep mma %s:", sh.name, M, sk_w4m_cfg_name[c]);
            for (int sp : {1, 2, 3, 4, 6, 8}) {
                const float t = time_us([&](int i) {
                    if (sk_w4m_cfg_permuted(c))
                        sk_w4g_cast<__nv_bfloat16>(x, xh, M, K, 0);
                    else
                        cast_x<__nv_bfloat16>(x, xh, (size_t)M * K, 0);
                    sk_w4m_launch<__nv_bfloat16, SK_GEMV_STORE>(c, xh, M, q4s[i % n4], scs[i % n4], G,
                                                                NULL, N, K, out, scr, sp, 0);
                }, iters, e0, e1);
                printf(" s%d %.1f", sp, t);
            }
            const float tx = time_us([&](int) { cast_x<__nv_bfloat16>(x, xh, (size_t)M * K, 0); }, iters, e0, e1);
            printf(" (cast alone %.1f) |\n", tx);
        }
        for (auto p : q4s) cudaFree(p);
        for (auto p : scs) cudaFree(p);
        for (auto p : hs) cudaFree(p);
        cudaFree(deq), cudaFree(x), cudaFree(xh), cudaFree(out);
    }
    printf("\nthe issue's table (backend's path per T; W4 time includes the cast of x):\n");
    printf("| shape | T | bf16 cuBLASLt us (TFLOP/s) | W4 path | W4 us | TFLOP/s | INT4 GB/s | W4 / bf16 speed | "
           "old path (deq+lt / gemv) | fastest mma |\n");
    printf("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    printf("%s", table.c_str());
}

/* A few launches to profile (ncu): the memory-bound and the compute-bound regimes. */
static void prof(const sk_w4m_scratch *scr) {
    /* splits 0: the launcher's; the last two (session 7): o's shape at 64 rows unsplit and in
     * 2 splits, which takes longer with twice the blocks on twice the SMs (dev_gemm_w4 bn:
     * 55.4 against 60.8 us) - for ncu (--kernel-name regex:sk_w4g) */
    const struct {
        int N, K, T, cfg, splits;
    } cs[] = {{57344, 8192, 16, SK_W4M_128x16, 0}, {10240, 8192, 1024, SK_W4M_128x128, 0},
              {10240, 8192, 64, SK_W4M_128x64, 0}, {10240, 8192, 128, SK_W4M_G128, 0},
              {10240, 8192, 128, SK_W4M_128x64, 0}, {8192, 8192, 64, SK_W4M_G64, 1},
              {8192, 8192, 64, SK_W4M_G64, 2}};
    for (const auto &c : cs) {
        const int G = 128;
        uint32_t *q4;
        __half2 *sc;
        __nv_bfloat16 *xh;
        float *x, *out;
        CK(cudaMalloc(&q4, (size_t)c.N * c.K / 2));
        CK(cudaMalloc(&sc, (size_t)c.N * (c.K / G) * 4));
        CK(cudaMalloc(&x, (size_t)c.T * c.K * 4));
        CK(cudaMalloc(&xh, (size_t)c.T * c.K * 2));
        CK(cudaMalloc(&out, (size_t)c.T * c.N * 4));
        sk_w4_random_kernel<<<4096, 256>>>(q4, sc, G, c.N, c.K, 0.01f, 99);
        fill_kernel<<<4096, 256>>>(x, (size_t)c.T * c.K, 5);
        if (sk_w4m_cfg_permuted(c.cfg))
            sk_w4g_cast<__nv_bfloat16>(x, xh, c.T, c.K, 0);
        else
            cast_x<__nv_bfloat16>(x, xh, (size_t)c.T * c.K, 0);
        for (int i = 0; i < 2; i++)
            sk_w4m_launch<__nv_bfloat16, SK_GEMV_STORE>(c.cfg, xh, c.T, q4, sc, G, NULL, c.N, c.K,
                                                        out, scr, c.splits, 0);
        CK(cudaDeviceSynchronize());
        cudaFree(q4), cudaFree(sc), cudaFree(x), cudaFree(xh), cudaFree(out);
    }
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    if (argc > 2) g_ms = argv[2];
    sk_w4m_scratch scr;
    CK(cudaMalloc(&scr.ws, SK_W4M_WS_FLOATS * 4));
    CK(cudaMalloc(&scr.cnt, SK_W4M_CNT * 4));
    CK(cudaMemset(scr.cnt, 0, SK_W4M_CNT * 4));
    scr.ws_floats = SK_W4M_WS_FLOATS, scr.cnt_n = SK_W4M_CNT;
    if (strcmp(mode, "prof") == 0) {
        prof(&scr);
        return 0;
    }
    if (strcmp(mode, "bn") == 0) {
        time_bn(&scr);
        return 0;
    }
    if (strcmp(mode, "time") != 0 && check_all(&scr)) return 1;
    if (strcmp(mode, "check") != 0) time_all(&scr);
    return 0;
}
