/* matmul through cuBLASLt: out[T, N] = x[T, K] @ W[N, K]^T (+ bias[N]). x and out fp32, W in
 * the backend's half type (bf16 or fp16). x is first cast to the half type into the context's
 * scratch (in chunks of rows that fit it); cuBLASLt then runs with A/B half, C/D fp32,
 * CUBLAS_COMPUTE_32F and an fp32 scale (a supported combination for both CUDA_R_16BF and
 * CUDA_R_16F), the fp32 bias in the epilogue (the bias type defaults to D's, fp32).
 *
 * cuBLAS is column-major. A row-major [R, C] matrix is a column-major C x R one, so in its terms
 *   D (N x T, ld N) = op(A) (N x K) * B (K x T),  A = W stored K x N (ld K) with op = transpose,
 *   B = x stored K x T (ld K), bias (length N = rows of D) broadcast along T.
 * A plan (descriptors, layouts and the heuristic's algorithm) is made once per (T, N, K, bias,
 * pointer alignments) and cached; the workspace is allocated once. The alignments are part of
 * the key because model code passes pointers into the middle of buffers (q/k/v inside the qkv
 * buffer) and the heuristic must not pick a kernel that needs more alignment than they have.
 * When the heuristic offers no algorithm, a plain warp-per-output kernel (fp32 accumulation)
 * does the product instead. */
#include "backend/cuda/common.cuh"
#include "backend/cuda/gemv.cuh"
#include "backend/cuda/profile.cuh"
#include "backend/cuda/w4.cuh"
#include "backend/cuda/w4_mma.cuh"
#include "backend/cuda/w4_tm.h"

#include <cublasLt.h>
#include <string.h>

#define CUBLAS_CHECK(call)                                                                         \
    do {                                                                                           \
        cublasStatus_t sk_cublas_s_ = (call);                                                      \
        if (sk_cublas_s_ != CUBLAS_STATUS_SUCCESS) {                                               \
            fprintf(stderr, "saker: cuBLASLt error %s (%s): %s in %s at %s:%d\n",                  \
                    cublasLtGetStatusName(sk_cublas_s_), cublasLtGetStatusString(sk_cublas_s_),    \
                    #call, __func__, __FILE__, __LINE__);                                          \
            abort();                                                                               \
        }                                                                                          \
    } while (0)

#define MM_WORKSPACE_BYTES ((size_t)32 << 20) /* cuBLAS's recommendation for Hopper */
#define MM_PLANS 64
#define MM_NAIVE_WARPS 8

typedef struct mm_plan {
    bool used;
    int T, N, K;
    bool bias;
    uint32_t al_a, al_b, al_d; /* byte alignment of W, the cast x, out (capped at 256) */
    bool naive;                /* no cuBLASLt algorithm: use mm_naive_kernel */
    cublasLtMatmulDesc_t op;
    cublasLtMatrixLayout_t la, lb, ld;
    cublasLtMatmulAlgo_t algo;
} mm_plan;

struct sk_cuda_mm {
    sk_cuda_dtype dtype; /* of A and B */
    cublasLtHandle_t lt;
    void *workspace;
    mm_plan plans[MM_PLANS];
    int next; /* slot replaced when the cache is full (round robin) */
    sk_w4m_scratch w4m; /* split-K partials and tile counters of the W4 MMA kernel (fixed size) */
};

/* ---- fallback kernel ---------------------------------------------------------------------- */

/* grid (ceil(N / MM_NAIVE_WARPS), T), block 32 * MM_NAIVE_WARPS: one warp per output. x and w
 * half (the cast input and the weight, as cuBLASLt gets them), fp32 accumulation and output. */
template <typename H>
static __global__ void mm_naive_kernel(const H *x, const H *w, const float *bias, int N, int K,
                                       bool accumulate, float *out) {
    const int n = blockIdx.x * MM_NAIVE_WARPS + (threadIdx.x >> 5), t = blockIdx.y;
    const int lane = threadIdx.x & 31;
    if (n >= N) return;
    const H *xr = x + (size_t)t * K, *wr = w + (size_t)n * K;
    float s = 0.0f;
    for (int k = lane; k < K; k += 32) s = fmaf(sk_h2f(xr[k]), sk_h2f(wr[k]), s);
    s = sk_warp_sum(s);
    if (bias) s += bias[n];
    if (lane == 0) out[(size_t)t * N + n] = accumulate ? out[(size_t)t * N + n] + s : s;
}

template <typename H>
static void launch_mm_naive(const H *x, const H *w, const float *bias, int T, int N, int K,
                            float *out, bool accumulate, cudaStream_t s) {
    dim3 grid((unsigned)((N + MM_NAIVE_WARPS - 1) / MM_NAIVE_WARPS), (unsigned)T);
    mm_naive_kernel<<<grid, 32 * MM_NAIVE_WARPS, 0, s>>>(x, w, bias, N, K, accumulate, out);
    CUDA_CHECK_LAUNCH();
}

/* ---- plans -------------------------------------------------------------------------------- */

static uint32_t align_of(const void *p) {
    uintptr_t a = (uintptr_t)p;
    uint32_t al = 1;
    while (al < 256 && (a & al) == 0) al <<= 1;
    return al;
}

static void plan_release(mm_plan *pl) {
    if (!pl->used) return;
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(pl->la));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(pl->lb));
    CUBLAS_CHECK(cublasLtMatrixLayoutDestroy(pl->ld));
    CUBLAS_CHECK(cublasLtMatmulDescDestroy(pl->op));
    memset(pl, 0, sizeof *pl);
}

/* Fills pl for the key (descriptors, layouts, heuristic). bias_ptr: a bias vector of the kind
 * every call will pass (cudaMalloc'd, so 256-byte aligned), or NULL. */
static void plan_make(struct sk_cuda_mm *mm, mm_plan *pl, int T, int N, int K,
                      const void *bias_ptr, uint32_t al_a, uint32_t al_b, uint32_t al_d) {
    memset(pl, 0, sizeof *pl);
    pl->used = true;
    pl->T = T, pl->N = N, pl->K = K, pl->bias = bias_ptr != NULL;
    pl->al_a = al_a, pl->al_b = al_b, pl->al_d = al_d;

    CUBLAS_CHECK(cublasLtMatmulDescCreate(&pl->op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CUBLAS_CHECK(
        cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (bias_ptr) {
        /* Bias elements have D's type (fp32) by default: the weight's fp32 copy is passed. */
        const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi,
                                                    sizeof epi));
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias_ptr, sizeof bias_ptr));
    }
    const cudaDataType ht = mm->dtype == SK_CUDA_F16 ? CUDA_R_16F : CUDA_R_16BF;
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl->la, ht, (uint64_t)K, (uint64_t)N, K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl->lb, ht, (uint64_t)K, (uint64_t)T, K));
    CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&pl->ld, CUDA_R_32F, (uint64_t)N, (uint64_t)T, N));

    cublasLtMatmulPreference_t pref;
    CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
    const size_t ws = MM_WORKSPACE_BYTES;
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, &al_a, sizeof al_a));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES, &al_b, sizeof al_b));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &al_d, sizeof al_d));
    CUBLAS_CHECK(cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &al_d, sizeof al_d));

    cublasLtMatmulHeuristicResult_t res;
    memset(&res, 0, sizeof res);
    int n_res = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(mm->lt, pl->op, pl->la, pl->lb, pl->ld,
                                                       pl->ld, pref, 1, &res, &n_res);
    CUBLAS_CHECK(cublasLtMatmulPreferenceDestroy(pref));
    if (st == CUBLAS_STATUS_SUCCESS && n_res > 0 && res.state == CUBLAS_STATUS_SUCCESS) {
        pl->algo = res.algo;
    } else {
        pl->naive = true;
        SK_LOGW("cuda: matmul T=%d N=%d K=%d (alignment %u/%u/%u bytes): no cuBLASLt algorithm "
                "(%s), using the fallback kernel",
                T, N, K, al_a, al_b, al_d, cublasLtGetStatusName(st));
    }
}

static mm_plan *plan_get(struct sk_cuda_mm *mm, int T, int N, int K, const void *bias_ptr,
                         const void *a, const void *b, const void *d) {
    const uint32_t al_a = align_of(a), al_b = align_of(b), al_d = align_of(d);
    const bool has_bias = bias_ptr != NULL;
    for (int i = 0; i < MM_PLANS; i++) {
        mm_plan *pl = &mm->plans[i];
        if (pl->used && pl->T == T && pl->N == N && pl->K == K && pl->bias == has_bias &&
            pl->al_a == al_a && pl->al_b == al_b && pl->al_d == al_d)
            return pl;
    }
    mm_plan *pl = NULL;
    for (int i = 0; i < MM_PLANS && !pl; i++)
        if (!mm->plans[i].used) pl = &mm->plans[i];
    if (!pl) {
        pl = &mm->plans[mm->next];
        mm->next = (mm->next + 1) % MM_PLANS;
        plan_release(pl);
    }
    plan_make(mm, pl, T, N, K, bias_ptr, al_a, al_b, al_d);
    return pl;
}

/* ---- launcher and entry ------------------------------------------------------------------- */

/* out[T, N] (fp32) = xh[T, K] (half, cast) @ w[N, K]^T (+ bias). */
template <typename H>
static void launch_matmul(struct sk_cuda_mm *mm, const H *xh, int T, const H *w, int N, int K,
                          const float *bias, float *out, bool accumulate, cudaStream_t s) {
    mm_plan *pl = plan_get(mm, T, N, K, bias, w, xh, out);
    if (pl->naive) {
        launch_mm_naive(xh, w, bias, T, N, K, out, accumulate, s);
        return;
    }
    if (bias)
        CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(pl->op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                    &bias, sizeof bias));
    const float alpha = 1.0f, beta = accumulate ? 1.0f : 0.0f;
    CUBLAS_CHECK(cublasLtMatmul(mm->lt, pl->op, &alpha, w, pl->la, xh, pl->lb, &beta, out, pl->ld,
                                out, pl->ld, &pl->algo, mm->workspace, MM_WORKSPACE_BYTES, s));
    CUDA_CHECK_LAUNCH();
}

/* cuBLASLt path: the rows of x are cast to the half type into c->d_scratch, as many at a time as
 * fit it (2 * SK_CUDA_SCRATCH_FLOATS half values), and multiplied chunk by chunk; the stream
 * orders each chunk's cast after the previous chunk's product has read the scratch. When x does
 * not fit at once, the chunks are of equal size (multiples of 64 rows): a short last chunk would
 * cost nearly a whole wave of the GEMM for few rows. accumulate: out += (beta 1, C = D = out).
 * xgelu: GELU applied to x in the cast (gelu_matmul_add). */
static void matmul_lt(cuda_ctx *c, const float *xf, int T, const sk_weight *w, const float *bias,
                      float *of, bool accumulate, bool xgelu = false) {
    const int N = (int)w->rows, K = (int)w->cols;
    const size_t cap = 2 * SK_CUDA_SCRATCH_FLOATS / (size_t)K; /* rows per chunk */
    SK_ASSERT(cap >= 1);
    size_t rows = (size_t)T;
    if (rows > cap) {
        const size_t n_chunks = (rows + cap - 1) / cap;
        rows = (rows + n_chunks - 1) / n_chunks;
        rows = (rows + 63) / 64 * 64;
        if (rows > cap) rows = cap;
    }
    for (int t0 = 0; t0 < T; t0 += (int)rows) {
        const int m = (size_t)(T - t0) < rows ? T - t0 : (int)rows;
        sk_cuda_prof_push(c, "matmul.cast (fp32 x to half)");
        sk_cuda_f32_gelu_to_half(c, xf + (size_t)t0 * K, c->d_scratch, (size_t)m * K, xgelu);
        sk_cuda_prof_pop(c);
        sk_cuda_prof_push(c, "matmul.gemm (cuBLASLt)");
        if (c->dtype == SK_CUDA_F16)
            launch_matmul(c->mm, (const f16 *)c->d_scratch, m, (const f16 *)w->h, N, K, bias,
                          of + (size_t)t0 * N, accumulate, c->stream);
        else
            launch_matmul(c->mm, (const bf16 *)c->d_scratch, m, (const bf16 *)w->h, N, K, bias,
                          of + (size_t)t0 * N, accumulate, c->stream);
        sk_cuda_prof_pop(c);
    }
}

/* Decode-sized products (T <= SK_GEMV_BACKEND_MAX_T) go through gemv.cuh, which reads fp32 x directly
 * and fuses the epilogue; larger ones (and odd shapes) through cuBLASLt. SAKER_NO_GEMV=1 forces
 * cuBLASLt (comparisons). */
static bool use_gemv(int T, int K, const void *x, const sk_weight *w) {
    static int off = -1;
    if (off < 0) {
        const char *e = getenv("SAKER_NO_GEMV");
        off = e && *e && strcmp(e, "0") != 0;
    }
    return !off && sk_gemv_ok(T, K, x, w->h);
}

/* gamma: the fused RMSNorm's weight (NULL: none). */
template <int MODE>
static void gemv(cuda_ctx *c, const float *x, int T, const sk_weight *w, const float *bias,
                 int N_out, float *out, const float *gamma = NULL, float eps = 0.0f) {
    const int K = (int)w->cols;
    if (c->dtype == SK_CUDA_F16)
        sk_gemv_launch<f16, MODE>(x, T, (const f16 *)w->h, bias, N_out, K, out, c->stream, gamma,
                                  eps);
    else
        sk_gemv_launch<bf16, MODE>(x, T, (const bf16 *)w->h, bias, N_out, K, out, c->stream,
                                   gamma, eps);
    CUDA_CHECK_LAUNCH();
}

/* A buffer that must grow (sync + cudaMalloc) while the stream is being captured is a bug of the
 * warm-up order (see w4_as_half): say which, rather than let the capture fail obscurely. */
static void assert_not_capturing(cuda_ctx *c, const char *what) {
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(c->stream, &cs));
    if (cs != cudaStreamCaptureStatusNone) {
        fprintf(stderr, "saker: cuda: %s would grow during a graph capture\n", what);
        abort();
    }
}

/* An INT4 weight as a half weight for the cuBLASLt path: dequantized into c->w4_tmp, grown on
 * demand (with a stream sync and cudaMalloc, which a graph capture cannot hold). Captured decode
 * steps do reach this path (buckets of up to 2752 rows, more than the MMA kernel's 128), but
 * sk_forward_decode runs every bucket eagerly once before capturing it and the buffer only grows,
 * so the capture never grows it (and a move of the buffer bumps addr_epoch: recapture). */
static sk_weight w4_as_half(cuda_ctx *c, const sk_weight *w) {
    const size_t need = (size_t)(w->rows * w->cols) * sizeof(uint16_t);
    if (need > c->w4_tmp_bytes) {
        assert_not_capturing(c, "the INT4 dequantization buffer");
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        if (c->w4_tmp) CUDA_CHECK(cudaFree(c->w4_tmp));
        c->w4_tmp = NULL;
        c->w4_tmp_bytes = 0;
        CUDA_CHECK(cudaMalloc(&c->w4_tmp, need));
        c->w4_tmp_bytes = need;
    }
    if (c->dtype == SK_CUDA_F16)
        sk_w4_dequant_kernel<f16><<<4096, 256, 0, c->stream>>>(w->q4, w->q4s, w->q4_group, w->rows,
                                                              (int)w->cols, (f16 *)c->w4_tmp);
    else
        sk_w4_dequant_kernel<bf16><<<4096, 256, 0, c->stream>>>(w->q4, w->q4s, w->q4_group, w->rows,
                                                               (int)w->cols, (bf16 *)c->w4_tmp);
    CUDA_CHECK_LAUNCH();
    sk_weight h;
    memset(&h, 0, sizeof h);
    h.rows = w->rows;
    h.cols = w->cols;
    h.h = c->w4_tmp;
    return h;
}

/* Whether the INT4 decode GEMVs take a product of T rows: 3..16 rows through w4_tm.cu (session
 * 16: from 3 rows; SAKER_W4_TM_MIN / _ADD_MIN; session 17: 9..32 rows on sk_w4_tx_kernel,
 * SAKER_W4_TX_MIN), else w4.cuh's at 1..4
 * (sk_w4_gemv_ok).
 * The tile kernels (w4_mma) or dequantize + cuBLASLt take the rest. */
static bool w4_tm_ok(int T, int mode, const sk_weight *w, const void *x, const float *gamma) {
    const long N = mode == SK_GEMV_SWIGLU ? w->rows / 2 : w->rows;
    return w->rows <= INT32_MAX && w->cols <= INT32_MAX &&
           sk_w4_tm_ok(T, mode, (int)N, (int)w->cols, w->q4_group, x, gamma);
}
static bool w4_gemv_ok(int T, int mode, const sk_weight *w, const void *x) {
    return w4_tm_ok(T, mode, w, x, nullptr) || sk_w4_gemv_ok(T, (int)w->cols, x);
}

/* SAKER_W4_TM_PROBE=1 (a timing experiment, graphs off: SAKER_NO_GRAPHS=1; the outputs are
 * meaningless after it): the first 3..32-row INT4 product of each (mode, N, K) is launched 20
 * times on the engine's own buffers, then with each kind replaced by a fresh copy (weights,
 * x and out, the scratch / split-K partials / counters, all), and the us a launch printed with
 * the buffers' addresses. Session 20: tx's launches take 13-21 us longer in the engine than
 * in the workbench for the same shapes and launch parameters (awq-speed.md); this says
 * whether it is these buffers or this process. */
static __global__ void w4_tm_probe_fill(float *x, size_t n) { /* uniform [-1, 1), a hash */
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x) {
        uint32_t h = (uint32_t)i * 2654435761u ^ 0x9e3779b9u;
        h ^= h >> 15, h *= 2246822519u, h ^= h >> 13;
        x[i] = (float)(h >> 8) * (2.0f / 16777216.0f) - 1.0f;
    }
}
static void w4_tm_probe(cuda_ctx *c, int mode, const float *x, int T, const sk_weight *w,
                        const float *bias, int N_out, float *out, const float *gamma, float eps) {
    static int on = -1, seen[64][3], n_seen;
    if (on < 0) {
        const char *e = getenv("SAKER_W4_TM_PROBE");
        on = e && *e == '1';
    }
    if (!on) return;
    cudaStreamCaptureStatus cs;
    CUDA_CHECK(cudaStreamIsCapturing(c->stream, &cs));
    if (cs != cudaStreamCaptureStatusNone) return;
    for (int i = 0; i < n_seen; i++)
        if (seen[i][0] == mode && seen[i][1] == N_out && seen[i][2] == (int)w->cols) return;
    if (n_seen == 64) return;
    seen[n_seen][0] = mode, seen[n_seen][1] = N_out, seen[n_seen][2] = (int)w->cols, n_seen++;
    const int K = (int)w->cols;
    const size_t qb = sk_w4_words(w->rows, K) * 4, sb = (size_t)w->rows * (size_t)(K / w->q4_group) * 4;
    const size_t xb = (size_t)T * K * 4, ob = (size_t)T * N_out * 4;
    const size_t scb = sk_w4_tm_scratch_bytes(K), wsb = c->mm->w4m.ws_floats * 4,
                 cb = (size_t)c->mm->w4m.cnt_n * 4;
    void *q2, *s2, *x2, *o2, *sc2, *ws2, *cn2;
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    CUDA_CHECK(cudaMalloc(&q2, qb));
    CUDA_CHECK(cudaMalloc(&s2, sb));
    CUDA_CHECK(cudaMalloc(&x2, xb));
    CUDA_CHECK(cudaMalloc(&o2, ob));
    CUDA_CHECK(cudaMalloc(&sc2, scb));
    CUDA_CHECK(cudaMalloc(&ws2, wsb));
    CUDA_CHECK(cudaMalloc(&cn2, cb));
    CUDA_CHECK(cudaMemcpy(q2, w->q4, qb, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaMemcpy(s2, w->q4s, sb, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaMemcpy(x2, x, xb, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaMemcpy(o2, out, ob, cudaMemcpyDeviceToDevice));
    CUDA_CHECK(cudaMemset(cn2, 0, cb));
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    static const char *names[] = {"engine's buffers", "fresh weights", "fresh x and out",
                                  "fresh scratch, ws, cnt", "all fresh", "engine's again",
                                  "engine's, legacy stream", "all fresh, x random"};
    fprintf(stderr, "w4 tm probe: mode %d, T %d, N_out %d, K %d; q4 %p q4s %p x %p out %p scratch %p ws %p cnt %p\n",
            mode, T, N_out, K, (const void *)w->q4, (const void *)w->q4s, (const void *)x, (void *)out,
            (void *)c->d_scratch, (void *)c->mm->w4m.ws, (void *)c->mm->w4m.cnt);
    for (int v = 0; v < 8; v++) {
        const bool fw = v == 1 || v == 4 || v == 7, fx = v == 2 || v == 4 || v == 7,
                   fs = v == 3 || v == 4 || v == 7;
        cudaStream_t st = v == 6 ? cudaStreamLegacy : c->stream;
        if (v == 7) {
            CUDA_CHECK(cudaStreamSynchronize(c->stream));
            w4_tm_probe_fill<<<256, 256, 0, c->stream>>>((float *)x2, xb / 4);
            CUDA_CHECK(cudaStreamSynchronize(c->stream));
        }
        const uint32_t *q = fw ? (const uint32_t *)q2 : w->q4;
        const __half2 *sq = fw ? (const __half2 *)s2 : w->q4s;
        const float *xx = fx ? (const float *)x2 : x;
        float *oo = fx ? (float *)o2 : out;
        void *scr = fs ? sc2 : (void *)c->d_scratch;
        float *ws = fs ? (float *)ws2 : c->mm->w4m.ws;
        int *cn = fs ? (int *)cn2 : c->mm->w4m.cnt;
        float best = 1e30f;
        for (int r = 0; r < 3; r++) {
            for (int i = 0; i < (r == 0 ? 3 : 20); i++) {
                if (i == 0 && r > 0) CUDA_CHECK(cudaEventRecord(e0, st));
                sk_w4_tm_gemv(mode, xx, T, q, sq, w->q4_group, bias, N_out, K, oo, gamma, eps, scr,
                              ws, c->mm->w4m.ws_floats, cn, c->mm->w4m.cnt_n, st);
            }
            if (r == 0) continue;
            CUDA_CHECK(cudaEventRecord(e1, st));
            CUDA_CHECK(cudaEventSynchronize(e1));
            float ms = 0.0f;
            CUDA_CHECK(cudaEventElapsedTime(&ms, e0, e1));
            if (ms * 50.0f < best) best = ms * 50.0f;
        }
        fprintf(stderr, "w4 tm probe: mode %d N_out %d K %d: %-24s %8.2f us a launch\n", mode, N_out,
                K, names[v], best);
        CUDA_CHECK(cudaDeviceSynchronize());
    }
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    void *all[] = {q2, s2, x2, o2, sc2, ws2, cn2};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) CUDA_CHECK(cudaFree(all[i]));
}

template <int MODE>
static void w4_gemv(cuda_ctx *c, const float *x, int T, const sk_weight *w, const float *bias,
                    int N_out, float *out, const float *gamma = nullptr, float eps = 0.0f) {
    if (w4_tm_ok(T, MODE, w, x, gamma)) {
        w4_tm_probe(c, MODE, x, T, w, bias, N_out, out, gamma, eps);
        /* the prepass's fp16 x and 1 / rms in the scratch (nothing else holds it across ops) */
        SK_ASSERT(sk_w4_tm_scratch_bytes((int)w->cols) <= SK_CUDA_SCRATCH_FLOATS * sizeof(float));
        static_assert(SK_W4M_WS_FLOATS == ((size_t)16 << 20) && SK_W4M_CNT == 8192,
                      "w4_tm.cu's SK_W4TX_BACKEND_WS / _CNT");
        sk_w4_tm_gemv(MODE, x, T, w->q4, w->q4s, w->q4_group, bias, N_out, (int)w->cols, out,
                      gamma, eps, c->d_scratch, c->mm->w4m.ws, c->mm->w4m.ws_floats,
                      c->mm->w4m.cnt, c->mm->w4m.cnt_n, c->stream);
        CUDA_CHECK_LAUNCH();
        return;
    }
    SK_ASSERT(sk_w4_gemv_ok(T, (int)w->cols, x)); /* (its callers asked w4_gemv_ok in MODE) */
    sk_w4_gemv_launch<MODE>(x, T, w->q4, w->q4s, w->q4_group, bias, N_out, (int)w->cols, out,
                            c->stream, gamma, eps);
    CUDA_CHECK_LAUNCH();
}

/* The W4 MMA kernel's configuration for this product, or -1 for dequantize + cuBLASLt (odd
 * shapes, the sizes where that measured faster, or SAKER_W4_MMA=0 for comparisons). */
static int w4m_cfg(int T, int N_out, int K, const sk_weight *w, bool swiglu = false,
                   int *split = nullptr) {
    static int off = -1, nowg = -1, nobn = -1, notma = -1, wtmax = -1, rules8 = -1, mmax = -1;
    if (off < 0) {
        const char *e = getenv("SAKER_W4_MMA");
        off = e && *e && strcmp(e, "0") == 0;
        e = getenv("SAKER_W4_WGMMA"); /* 0: the mma.sync tiles only (session 4's picks) */
        nowg = e && *e && strcmp(e, "0") == 0;
        e = getenv("SAKER_W4_BN"); /* 0: wgmma tiles 64 and 128 wide only (session 5's picks) */
        nobn = e && *e && strcmp(e, "0") == 0;
        e = getenv("SAKER_W4_TMA"); /* 0: no TMA warp-specialized tiles (session 6's picks) */
        notma = e && *e && strcmp(e, "0") == 0;
        e = getenv("SAKER_W4_WT_MAX"); /* experiment: the TMA tiles (128 x 128) up to this many rows */
        wtmax = e && *e ? atoi(e) : 0;
        e = getenv("SAKER_W4_PICK"); /* 8: session 8's rules for the TMA tiles, not the model */
        rules8 = e && *e && strcmp(e, "8") == 0;
        e = getenv("SAKER_W4_MODEL_MAX"); /* the model's rows past 1,024 (1024: none) */
        mmax = e && *e ? atoi(e) : SK_W4M_MODEL_MAX_T;
    }
    if (split) *split = 0;
    if (off || !sk_w4m_ok(T, K, w->q4_group) || ((uintptr_t)w->q4 & 15) != 0) return -1;
    if (!nobn && !notma && T > SK_W4M_WT_MAX_T && T <= wtmax && K % SK_W4M_BK == 0 &&
        sk_w4m_cfg_rows_ok(SK_W4M_WT128, N_out, swiglu))
        return SK_W4M_WT128;
    const int cfg = nobn    ? sk_w4m_pick5(T, N_out, K)
                    : notma ? sk_w4m_pick6(T, N_out, K)
                    : rules8 ? (T <= 64 || T > SK_W4M_WT_MAX_T || K % SK_W4M_BK != 0
                                    ? sk_w4m_pick5(T, N_out, K)
                                    : sk_w4m_pick8(T, N_out, K))
                            : sk_w4m_pick(T, N_out, K, swiglu,
                                          sk_w4m_model_max(K, mmax, SK_CUDA_SCRATCH_FLOATS), split);
    if (nowg && sk_w4m_cfg_permuted(cfg)) return T <= 128 ? SK_W4M_128x64 : -1;
    if (cfg >= 0 && !sk_w4m_cfg_rows_ok(cfg, N_out, swiglu)) return sk_w4m_pick6(T, N_out, K);
    return cfg;
}

/* out = x W^T (MODE as gemv.cuh) through the W4 MMA kernel: the rows of x cast to the half type
 * into c->d_scratch in chunks that fit it (as matmul_lt), one launch per chunk; msplit: the
 * pick's split of K (0: the launcher's rule); xgelu: GELU applied to x in the cast
 * (gelu_matmul_add). Allocates nothing (graph capture safe). */
template <int MODE>
static void w4_mma(cuda_ctx *c, int cfg, int msplit, const float *x, int T, const sk_weight *w,
                   const float *bias, int N_out, float *out, bool xgelu = false) {
    const int K = (int)w->cols;
    const size_t cap = 2 * SK_CUDA_SCRATCH_FLOATS / (size_t)K;
    SK_ASSERT(cap >= 1);
    for (int t0 = 0; t0 < T; t0 += (int)cap) {
        const int m = (size_t)(T - t0) < cap ? T - t0 : (int)cap;
        if (!sk_w4m_cfg_permuted(cfg))
            sk_cuda_f32_gelu_to_half(c, x + (size_t)t0 * K, c->d_scratch, (size_t)m * K, xgelu);
        else if (c->dtype == SK_CUDA_F16) /* the wgmma kernels read x in their K order */
            sk_w4g_cast<f16>(x + (size_t)t0 * K, (f16 *)c->d_scratch, m, K, c->stream, xgelu);
        else
            sk_w4g_cast<bf16>(x + (size_t)t0 * K, (bf16 *)c->d_scratch, m, K, c->stream, xgelu);
        float *o = out + (size_t)t0 * N_out;
        /* SAKER_W4_SK=1: stream-K for the wgmma tiles where they are fewer than the resident
         * slots (session 6; session 7 on the H200: checked, and slower than the tiles at every
         * shape that takes it, so off by default) */
        static int sk = -1;
        if (sk < 0) {
            const char *e = getenv("SAKER_W4_SK");
            sk = e && *e && strcmp(e, "0") != 0;
        }
        const int splits = sk ? SK_W4M_STREAMK : msplit;
        if (c->dtype == SK_CUDA_F16)
            sk_w4m_launch<f16, MODE>(cfg, (const f16 *)c->d_scratch, m, w->q4, w->q4s, w->q4_group,
                                     bias, N_out, K, o, &c->mm->w4m, splits, c->stream);
        else
            sk_w4m_launch<bf16, MODE>(cfg, (const bf16 *)c->d_scratch, m, w->q4, w->q4s,
                                      w->q4_group, bias, N_out, K, o, &c->mm->w4m, splits,
                                      c->stream);
        CUDA_CHECK_LAUNCH();
    }
}

static void matmul_common(sk_backend *be, const void *x, int T, const sk_weight *w,
                          const sk_weight *bias, void *out, bool accumulate) {
    cuda_ctx *c = sk_cuda_ctx(be);
    SK_ASSERT(x && out && w && (w->h || w->q4) && T > 0);
    SK_ASSERT(w->rows <= INT32_MAX && w->cols <= INT32_MAX);
    const int N = (int)w->rows, K = (int)w->cols;
    SK_ASSERT(T <= 65535); /* grid.y of the fallback kernel */
    SK_ASSERT(!bias || (bias->rows == 1 && bias->cols == N && bias->f32));
    SK_ASSERT(!sk_cuda_overlap(x, (size_t)T * K * sizeof(float), out,
                               (size_t)T * N * sizeof(float)));
    const float *b = bias ? bias->f32 : NULL;
    if (w->q4) {
        int cfg, msplit;
        if (w4_gemv_ok(T, accumulate ? SK_GEMV_ADD : SK_GEMV_STORE, w, x)) {
            if (accumulate)
                w4_gemv<SK_GEMV_ADD>(c, (const float *)x, T, w, b, N, (float *)out);
            else
                w4_gemv<SK_GEMV_STORE>(c, (const float *)x, T, w, b, N, (float *)out);
        } else if ((cfg = w4m_cfg(T, N, K, w, false, &msplit)) >= 0) {
            if (accumulate)
                w4_mma<SK_GEMV_ADD>(c, cfg, msplit, (const float *)x, T, w, b, N, (float *)out);
            else
                w4_mma<SK_GEMV_STORE>(c, cfg, msplit, (const float *)x, T, w, b, N, (float *)out);
        } else {
            const sk_weight h = w4_as_half(c, w);
            matmul_lt(c, (const float *)x, T, &h, b, (float *)out, accumulate);
        }
        return;
    }
    if (use_gemv(T, K, x, w)) {
        if (accumulate)
            gemv<SK_GEMV_ADD>(c, (const float *)x, T, w, b, N, (float *)out);
        else
            gemv<SK_GEMV_STORE>(c, (const float *)x, T, w, b, N, (float *)out);
        return;
    }
    matmul_lt(c, (const float *)x, T, w, b, (float *)out, accumulate);
}

void sk_cuda_matmul(sk_backend *be, const void *x, int T, const sk_weight *w,
                    const sk_weight *bias, void *out) {
    matmul_common(be, x, T, w, bias, out, false);
}

/* ---- The RMSNorm carried from the ADD GEMV to the STORE GEMV after it (session 15) --------
 * norm_next (a hint from the forward pass: the next op is rmsnorm_matmul of matmul_add's output
 * with this norm) makes an INT4 matmul_add at 1-2 rows through sk_w4_tq_kernel also write
 * x * gamma and its blocks' sums of squares (w4.cuh's sk_w4_pn); the rmsnorm_matmul after it, on
 * that x with that gamma, then runs its INT4 product on x * gamma with no per-step gamma and 1 /
 * rms from those sums. Why: the fused norm costs the 70B qkv product 1.65 of its 16.55 us at one
 * row (dev_gemv_w4 tail, bench/results/awq-speed.md session 15). Anything else (other weights,
 * rows, kernels, a capture before the buffers exist) runs as before; begin forgets it. */
#define SK_CUDA_PN_XG (2 * 32768)
#define SK_CUDA_PN_SSQ (2 * 8192)
static long g_pn_carried;
extern "C" long sk_cuda_norm_carried(void) { return g_pn_carried; }

/* Which carries are taken (SAKER_NORM_CARRY, read at every hint: tests set it): by default the
 * MLP's norm at 1 row and the attention's at 2, as measured (70B / 7B INT4, ITL p50, one call,
 * bench/results/awq-speed.md session 15): at 1 row the MLP's carry -1.3% / -1.8% a step and the
 * attention's even; at 2 rows the attention's -0.9% and the MLP's +2.4%. "all": both at 1-2
 * rows, "qkv" / "mlp": only that one at 1-2 rows, "0": none. */
static bool pn_wanted(int swiglu, int T) {
    const char *e = getenv("SAKER_NORM_CARRY");
    if (!e || !*e || strcmp(e, "1") == 0) return swiglu ? T == 1 : T == 2;
    if (strcmp(e, "all") == 0) return true;
    if (strcmp(e, "qkv") == 0) return !swiglu;
    if (strcmp(e, "mlp") == 0) return swiglu;
    return false;
}

void sk_cuda_norm_next(sk_backend *be, const sk_weight *norm, int swiglu) {
    cuda_ctx *c = sk_cuda_ctx(be);
    c->pn_hint = norm && norm->rows == 1 ? norm->f32 : NULL;
    c->pn_hint_n = norm ? norm->cols : 0;
    c->pn_hint_sw = swiglu;
}

/* The carry's buffers, allocated the first time outside a capture (false: not there). */
static bool pn_buffers(cuda_ctx *c) {
    if (c->pn_xg) return true;
    cudaStreamCaptureStatus cs = cudaStreamCaptureStatusNone;
    CUDA_CHECK(cudaStreamIsCapturing(c->stream, &cs));
    if (cs != cudaStreamCaptureStatusNone) return false;
    CUDA_CHECK(cudaMalloc((void **)&c->pn_xg, SK_CUDA_PN_XG * sizeof(float)));
    CUDA_CHECK(cudaMalloc((void **)&c->pn_ssq, SK_CUDA_PN_SSQ * sizeof(float)));
    return true;
}

void sk_cuda_matmul_add(sk_backend *be, const void *x, int T, const sk_weight *w,
                        const sk_weight *bias, void *out) {
    cuda_ctx *c = sk_cuda_ctx(be);
    const float *g = c->pn_hint;
    c->pn_hint = NULL, c->pn_x = NULL;
    const long N = w->rows;
    /* blocks of at least 16 rows: at most N / 16 + 1 sums a row */
    if (g && c->pn_hint_n == N && w->q4 && T <= 2 && pn_wanted(c->pn_hint_sw, T) &&
        (long)T * N <= SK_CUDA_PN_XG && (long)T * (N / 16 + 1) <= SK_CUDA_PN_SSQ &&
        w->cols <= INT32_MAX && sk_w4_tq_pick(T, SK_GEMV_ADD, (int)N, (int)w->cols) > 0 &&
        sk_w4_gemv_ok(T, (int)w->cols, x) && pn_buffers(c)) {
        sk_w4_pn_req.on = true;
        sk_w4_pn_req.mode = SK_GEMV_ADD;
        sk_w4_pn_req.blocks = 0;
        sk_w4_pn_req.pn = {g, c->pn_xg, c->pn_ssq, nullptr, 0};
        matmul_common(be, x, T, w, bias, out, true);
        if (!sk_w4_pn_req.on && sk_w4_pn_req.blocks > 0) { /* taken by a tq launch */
            c->pn_x = out;
            c->pn_gamma = g;
            c->pn_T = T;
            c->pn_n = (int)N;
            c->pn_nssq = sk_w4_pn_req.blocks;
        }
        sk_w4_pn_req.on = false;
        return;
    }
    matmul_common(be, x, T, w, bias, out, true);
}

/* out += gelu(x) W^T (+ bias) (Falcon's MLP down projection): where x is cast to the half type
 * for the W4 tiles or cuBLASLt, GELU is applied in that cast, so the activation costs no pass of
 * its own over the [T, K] input (Falcon-180B at 256 rows: 61 MB read and written a layer); the
 * GEMV paths (few rows, x read as fp32) take GELU in place first. SAKER_GELU_FUSE=0: always in
 * place first (A/B runs). */
void sk_cuda_gelu_matmul_add(sk_backend *be, void *x, int T, const sk_weight *w,
                             const sk_weight *bias, void *out) {
    cuda_ctx *c = sk_cuda_ctx(be);
    SK_ASSERT(x && out && w && (w->h || w->q4) && T > 0);
    SK_ASSERT(w->rows <= INT32_MAX && w->cols <= INT32_MAX);
    const int N = (int)w->rows, K = (int)w->cols;
    SK_ASSERT(!bias || (bias->rows == 1 && bias->cols == N && bias->f32));
    SK_ASSERT(!sk_cuda_overlap(x, (size_t)T * K * sizeof(float), out,
                               (size_t)T * N * sizeof(float)));
    static int off = -1;
    if (off < 0) {
        const char *e = getenv("SAKER_GELU_FUSE");
        off = e && strcmp(e, "0") == 0;
    }
    const float *b = bias ? bias->f32 : NULL;
    const bool gemv = w->q4 ? w4_gemv_ok(T, SK_GEMV_ADD, w, x) : use_gemv(T, K, x, w);
    if (!off && !gemv) {
        if (!w->q4) {
            matmul_lt(c, (const float *)x, T, w, b, (float *)out, true, true);
            return;
        }
        int msplit;
        const int cfg = w4m_cfg(T, N, K, w, false, &msplit);
        if (cfg >= 0) {
            w4_mma<SK_GEMV_ADD>(c, cfg, msplit, (const float *)x, T, w, b, N, (float *)out, true);
        } else {
            const sk_weight h = w4_as_half(c, w);
            matmul_lt(c, (const float *)x, T, &h, b, (float *)out, true, true);
        }
        return;
    }
    sk_cuda_gelu(be, x, (size_t)T * K);
    matmul_common(be, x, T, w, bias, out, true);
}

/* out[t, i] = silu(gu[t, i]) * gu[t, F + i] (gu row stride 2F). */
static __global__ void swiglu_rows_kernel(const float *gu, int F, int T, float *out) {
    const size_t n = (size_t)T * F;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const size_t t = i / (size_t)F, j = i % (size_t)F;
        const float g = gu[t * 2 * F + j], u = gu[t * 2 * F + F + j];
        out[i] = g / (1.0f + __expf(-g)) * u;
    }
}

void sk_cuda_matmul_swiglu(sk_backend *be, const void *x, int T, const sk_weight *w, void *out) {
    cuda_ctx *c = sk_cuda_ctx(be);
    SK_ASSERT(x && out && w && (w->h || w->q4) && T > 0 && w->rows % 2 == 0);
    SK_ASSERT(w->rows <= INT32_MAX && w->cols <= INT32_MAX);
    const int F = (int)(w->rows / 2), K = (int)w->cols;
    SK_ASSERT(!sk_cuda_overlap(x, (size_t)T * K * sizeof(float), out,
                               (size_t)T * F * sizeof(float)));
    if (w->q4 && w4_gemv_ok(T, SK_GEMV_SWIGLU, w, x)) {
        w4_gemv<SK_GEMV_SWIGLU>(c, (const float *)x, T, w, NULL, F, (float *)out);
        return;
    }
    if (w->q4) {
        int msplit;
        const int cfg = w4m_cfg(T, F, K, w, true, &msplit);
        if (cfg >= 0) {
            w4_mma<SK_GEMV_SWIGLU>(c, cfg, msplit, (const float *)x, T, w, NULL, F, (float *)out);
            return;
        }
    }
    if (!w->q4 && use_gemv(T, K, x, w)) {
        gemv<SK_GEMV_SWIGLU>(c, (const float *)x, T, w, NULL, F, (float *)out);
        return;
    }
    /* [T, 2F] product into the backend's growable buffer, then the combine. Captured decode
     * steps of more rows than the GEMV takes come here too, but each bucket runs eagerly once
     * before its capture and the buffer only grows, so a capture never grows it (checked). */
    const size_t need = (size_t)T * 2 * (size_t)F * sizeof(float);
    if (need > c->mm_tmp_bytes) {
        assert_not_capturing(c, "matmul_swiglu's product buffer");
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        if (c->mm_tmp) CUDA_CHECK(cudaFree(c->mm_tmp));
        c->mm_tmp = NULL;
        c->mm_tmp_bytes = 0;
        CUDA_CHECK(cudaMalloc(&c->mm_tmp, need));
        c->mm_tmp_bytes = need;
    }
    if (w->q4) {
        const sk_weight h = w4_as_half(c, w);
        matmul_lt(c, (const float *)x, T, &h, NULL, (float *)c->mm_tmp, false);
    } else {
        matmul_lt(c, (const float *)x, T, w, NULL, (float *)c->mm_tmp, false);
    }
    const size_t n = (size_t)T * F;
    swiglu_rows_kernel<<<sk_cuda_blocks(n, 256), 256, 0, c->stream>>>((const float *)c->mm_tmp, F,
                                                                     T, (float *)out);
    CUDA_CHECK_LAUNCH();
}

/* ---- RMSNorm fused into the projection after it ------------------------------------------- */

/* The decode GEMV takes the norm (gemv.cuh's NORM: x * gamma * 1/rms on the fly) when it takes
 * the product; otherwise (INT4 weights, T > SK_GEMV_BACKEND_MAX_T, odd shapes, or
 * SAKER_NO_FUSED_NORM=1 for comparisons) the norm kernel writes h and the plain op follows. */
static const float *fused_norm_gamma(int T, const void *x, const sk_weight *norm,
                                     const sk_weight *w, int mode) {
    static int off = -1;
    if (off < 0) {
        const char *e = getenv("SAKER_NO_FUSED_NORM");
        off = e && *e && strcmp(e, "0") != 0;
    }
    const int K = (int)w->cols;
    if (off) return NULL;
    if (w->q4) /* session 5: the W4 GEMV fuses it too (it was a separate RMSNorm launch) */
        /* (in the product's own mode: which kernel takes 17..32 rows depends on it, session 17;
         * asking as STORE sent a SwiGLU product with its gamma to the T <= 4 kernel) */
        return w4_tm_ok(T, mode, w, x, norm->f32) ||
                       sk_w4_gemv_norm_ok(T, (long)w->rows, K, x, norm->f32)
                   ? norm->f32
                   : NULL;
    if (!w->h || !use_gemv(T, K, x, w) || !sk_gemv_ok(T, K, x, w->h, norm->f32)) return NULL;
    return norm->f32;
}

static void check_norm(const void *x, const sk_weight *norm, int T, const sk_weight *w,
                       const void *h, const void *out) {
    SK_ASSERT(x && h && out && w && norm && norm->f32 && T > 0);
    SK_ASSERT(norm->rows == 1 && norm->cols == w->cols && w->cols <= INT32_MAX);
    const size_t xb = (size_t)T * (size_t)w->cols * sizeof(float);
    SK_ASSERT(!sk_cuda_overlap(x, xb, h, xb));
}

void sk_cuda_rmsnorm_matmul(sk_backend *be, const void *x, const sk_weight *norm, float eps, int T,
                            const sk_weight *w, const sk_weight *bias, void *h, void *out) {
    check_norm(x, norm, T, w, h, out);
    cuda_ctx *c = sk_cuda_ctx(be);
    const bool carried = c->pn_x && c->pn_x == x && c->pn_gamma == norm->f32 && c->pn_T == T &&
                         (long)c->pn_n == w->cols;
    c->pn_x = NULL;
    const float *g = fused_norm_gamma(T, x, norm, w, SK_GEMV_STORE);
    int cfg;
    if (carried && g && w->q4 && (cfg = sk_w4_tq_pick(T, SK_GEMV_STORE, (int)w->rows, (int)w->cols)) > 0) {
        /* x * gamma (and the sums of squares) from the ADD GEMV before: the same product with
         * no gamma, scaled by 1 / rms in its epilogue (sk_cuda_matmul_add above) */
        const int N = (int)w->rows, K = (int)w->cols;
        const float *b = bias ? bias->f32 : NULL;
        SK_ASSERT(!bias || (bias->rows == 1 && bias->cols == N && bias->f32));
        sk_w4_pn_req.on = true;
        sk_w4_pn_req.mode = SK_GEMV_STORE;
        sk_w4_pn_req.pn = {nullptr, nullptr, nullptr, c->pn_ssq, c->pn_nssq};
        const bool ok =
            T == 1 ? sk_w4_tq_launch_cfg<1, SK_GEMV_STORE>(cfg, 0, c->pn_xg, w->q4, w->q4s, w->q4_group, b, N,
                                                           K, (float *)out, NULL, eps, c->stream)
                   : sk_w4_tq_launch_cfg<2, SK_GEMV_STORE>(cfg, 0, c->pn_xg, w->q4, w->q4s, w->q4_group, b, N,
                                                           K, (float *)out, NULL, eps, c->stream);
        const bool taken = ok && !sk_w4_pn_req.on;
        sk_w4_pn_req.on = false;
        if (ok) {
            SK_ASSERT(taken);
            CUDA_CHECK_LAUNCH();
            g_pn_carried++;
            return;
        }
    }
    if (!g) {
        sk_cuda_rmsnorm(be, x, norm, eps, T, (int)w->cols, h);
        sk_cuda_matmul(be, h, T, w, bias, out);
        return;
    }
    const int N = (int)w->rows;
    SK_ASSERT(!bias || (bias->rows == 1 && bias->cols == N && bias->f32));
    SK_ASSERT(!sk_cuda_overlap(x, (size_t)T * w->cols * sizeof(float), out,
                               (size_t)T * N * sizeof(float)));
    if (w->q4)
        w4_gemv<SK_GEMV_STORE>(sk_cuda_ctx(be), (const float *)x, T, w, bias ? bias->f32 : NULL, N,
                               (float *)out, g, eps);
    else
        gemv<SK_GEMV_STORE>(sk_cuda_ctx(be), (const float *)x, T, w, bias ? bias->f32 : NULL, N,
                            (float *)out, g, eps);
}

void sk_cuda_rmsnorm_matmul_swiglu(sk_backend *be, const void *x, const sk_weight *norm, float eps,
                                   int T, const sk_weight *w, void *h, void *out) {
    check_norm(x, norm, T, w, h, out);
    cuda_ctx *c = sk_cuda_ctx(be);
    const bool carried = c->pn_x && c->pn_x == x && c->pn_gamma == norm->f32 && c->pn_T == T &&
                         (long)c->pn_n == w->cols;
    c->pn_x = NULL;
    const float *g = fused_norm_gamma(T, x, norm, w, SK_GEMV_SWIGLU);
    int cfg;
    if (carried && g && w->q4 && w->rows % 2 == 0 && T <= 2 &&
        (cfg = T == 1 ? sk_w4_ts_pick<1>((int)w->cols) : sk_w4_ts_pick<2>((int)w->cols)) > 0) {
        /* x * gamma and the sums of squares from the o GEMV before (sk_cuda_matmul_add) */
        const int F = (int)(w->rows / 2), K = (int)w->cols;
        sk_w4_pn_req.on = true;
        sk_w4_pn_req.mode = SK_GEMV_SWIGLU;
        sk_w4_pn_req.pn = {nullptr, nullptr, nullptr, c->pn_ssq, c->pn_nssq};
        const bool ok =
            T == 1 ? sk_w4_ts_launch_cfg<1>(cfg, c->pn_xg, w->q4, w->q4s, w->q4_group, F, K, (float *)out,
                                            NULL, eps, c->stream)
                   : sk_w4_ts_launch_cfg<2>(cfg, c->pn_xg, w->q4, w->q4s, w->q4_group, F, K, (float *)out,
                                            NULL, eps, c->stream);
        const bool taken = ok && !sk_w4_pn_req.on;
        sk_w4_pn_req.on = false;
        if (ok) {
            SK_ASSERT(taken);
            CUDA_CHECK_LAUNCH();
            g_pn_carried++;
            return;
        }
    }
    if (!g) {
        sk_cuda_rmsnorm(be, x, norm, eps, T, (int)w->cols, h);
        sk_cuda_matmul_swiglu(be, h, T, w, out);
        return;
    }
    SK_ASSERT(w->rows % 2 == 0);
    const int F = (int)(w->rows / 2);
    SK_ASSERT(!sk_cuda_overlap(x, (size_t)T * w->cols * sizeof(float), out,
                               (size_t)T * F * sizeof(float)));
    if (w->q4)
        w4_gemv<SK_GEMV_SWIGLU>(sk_cuda_ctx(be), (const float *)x, T, w, NULL, F, (float *)out, g,
                                eps);
    else
        gemv<SK_GEMV_SWIGLU>(sk_cuda_ctx(be), (const float *)x, T, w, NULL, F, (float *)out, g, eps);
}

sk_status sk_cuda_mm_new(cuda_ctx *c, struct sk_cuda_mm **out) {
    *out = NULL;
    struct sk_cuda_mm *mm = (struct sk_cuda_mm *)sk_xcalloc(1, sizeof *mm);
    mm->dtype = c->dtype;
    CUBLAS_CHECK(cublasLtCreate(&mm->lt));
    cudaError_t e = cudaMalloc(&mm->workspace, MM_WORKSPACE_BYTES);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        CUBLAS_CHECK(cublasLtDestroy(mm->lt));
        free(mm);
        return sk_fail(SK_ERR_NOMEM, "cuda: cannot allocate the %zu-byte matmul workspace",
                       MM_WORKSPACE_BYTES);
    }
    CUDA_CHECK(e);
    mm->w4m.ws_floats = SK_W4M_WS_FLOATS;
    mm->w4m.cnt_n = SK_W4M_CNT;
    e = cudaMalloc(&mm->w4m.ws, SK_W4M_WS_FLOATS * sizeof(float));
    if (e == cudaSuccess) e = cudaMalloc(&mm->w4m.cnt, SK_W4M_CNT * sizeof(int));
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        if (mm->w4m.ws) CUDA_CHECK(cudaFree(mm->w4m.ws));
        CUDA_CHECK(cudaFree(mm->workspace));
        CUBLAS_CHECK(cublasLtDestroy(mm->lt));
        free(mm);
        return sk_fail(SK_ERR_NOMEM, "cuda: cannot allocate the W4 split-K workspace");
    }
    CUDA_CHECK(e);
    CUDA_CHECK(cudaMemset(mm->w4m.cnt, 0, SK_W4M_CNT * sizeof(int)));
    /* cudaMemset runs on the legacy default stream, which the backend's non-blocking stream
     * does not wait for: finish it before any split-K launch reads the counters */
    CUDA_CHECK(cudaDeviceSynchronize());
    *out = mm;
    return SK_OK;
}

void sk_cuda_mm_free(struct sk_cuda_mm *mm) {
    if (!mm) return;
    for (int i = 0; i < MM_PLANS; i++) plan_release(&mm->plans[i]);
    CUDA_CHECK(cudaFree(mm->workspace));
    CUDA_CHECK(cudaFree(mm->w4m.ws));
    CUDA_CHECK(cudaFree(mm->w4m.cnt));
    CUBLAS_CHECK(cublasLtDestroy(mm->lt));
    free(mm);
}
