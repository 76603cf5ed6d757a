/* Decode attention over the paged KV cache (attn_params.h): kernel workbench (STYLE.md 1).
 *
 * Build and run from the repository root (one nvcc line; no other flags needed):
 *   nvcc -O3 -std=c++17 -gencode=arch=compute_90a,code=sm_90a -lineinfo \
 *        -o /tmp/attention_decode dev/cuda/attention_decode.cu
 *   /tmp/attention_decode [all|check|time]      (default all)
 *     check: self-test + correctness checks only (e.g. under compute-sanitizer)
 *     time:  self-test + the timing shapes (each timed configuration is also checked against the
 *            CPU on three sampled sequences of that very shape before it is timed)
 * Exit status: 0 when every check passed, 1 otherwise (timing runs only after all checks pass).
 *
 * version 1: attention_decode_kernel1 (here): one block of 128 threads per (sequence, query
 *            head); chunks of 128 tokens, one thread per token for the score (16-byte K loads,
 *            fp32 FMAs), block max/sum, online softmax in fp32, then head_dim/8 threads per V row
 *            accumulate p * v (16-byte V loads). Reads each KV head once per query head of its
 *            group (the heads of a group are adjacent blocks, so L2 absorbs part of it).
 * version 2: sk_attn_decode_kernel2 (src/backend/cuda/attn_decode.cuh, included through
 *            attn_decode.cu exactly as the backend builds it): one block per (sequence, KV head,
 *            split, query block); K/V streamed once per group into registers, S^T = K Q^T and
 *            O^T += V^T P^T on tensor cores (mma.sync m16n8k16), online softmax, split-KV with a
 *            combine kernel. Configurations: qtiles (8-query tiles per warp), wq (warps side by
 *            side on the query tiles), warps per block, prefetch (double register set), l2pf
 *            (bulk prefetch of each warp's chunk i + l2pf into L2; 2026-11-29 session 4),
 *            ring (chunks streamed through a per-warp shared-memory ring by cp.async, 2 or 4
 *            slots; session 4), splits.
 * version 4: sk_attn_decode_mq_st (src/backend/cuda/attn_decode_mq.cuh, session 5, first run
 *            in session 6; the backend's kernel for groups of 9 and more): head_dim 64/128; the
 *            group's query heads as the M side, 64-token tiles shared by the block in shared
 *            memory (2..4 pipeline stages), ldmatrix; checked at stages 2/3/4 x splits
 *            1/2/3/7/64 and its plan, timed at stages x splits {plan, 1, 2, 4, 2 x plan};
 *            AD_NO_MQ=1 leaves it out.
 *
 * main:
 *   1. self-test of the mma.m16n8k16 fragment layout, kernel 4's ldmatrix reads,
 *      movmatrix.trans (and the shuffle fallback) and the bf16x2 packing order, before
 *      anything else; names what is wrong.
 *   2. correctness: small random problems (Q, K, V uniform in [-1, 1] or wider for Q; never
 *      zeros), page ids a random permutation of the pool with unused pages, tail rows of partial
 *      pages and the q row padding filled with NaN (any read of them shows as NaN); group sizes
 *      1, 3, 4, 8, 16, 20, 29, 64, 71; head dims 64/80/128; page sizes 16/32/64/128; kv lengths
 *      1, 7, 17, 33, 100, 129, 257, 1000, 4097 and random mixes; every version, every
 *      instantiated configuration, splits 1/2/3/7/64 and the planner's choice. Output poisoned
 *      with NaN before each run, guard bytes around the output and the split scratch.
 *      Error: max|gpu - ref| / max|ref| against attention_decode_cpu (double). Tolerance: the
 *      output is bf16, whose rounding alone is up to 2^-9 = 1.95e-3 of max|ref|; the kernel also
 *      rounds P to bf16 for the PV product, as a naive bf16 kernel does. So pass when
 *      err <= max(4e-3, 3 * err_naive), where err_naive is the error of a naive bf16 reference
 *      (P and the output rounded to bf16, fp32 sums) on the same inputs (STYLE.md 4); and never
 *      above 1e-2. NaN never passes.
 *   3. timing (only when everything passed): D2D copy bandwidth of a 2 GB buffer in the same run
 *      (bytes read + written / time) as the ceiling; per shape and configuration: CUDA events
 *      around each launch (+ combine), 5 warm-ups, median of 30, KV pools rotated over enough
 *      copies to exceed 3 x L2. KV bytes = sum over sequences of kv_len * n_kv_heads *
 *      head_dim * 2 (bf16) * 2 (K and V). */
#include "../../src/backend/cuda/attn_decode.cu"
#include "../../src/backend/cuda/attn_decode_mq.cuh"

#include <cuda_bf16.h>
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CUDA_CHECK(call)                                                                           \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "CUDA error %s: %s at %s:%d\n", cudaGetErrorString(e_), #call,         \
                    __FILE__, __LINE__);                                                           \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

typedef __nv_bfloat16 bf16;

/* ---- host bf16 and random numbers --------------------------------------------------------- */

static uint16_t f2bf_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return 0x7fc0; /* NaN */
    u += 0x7fff + ((u >> 16) & 1);                        /* round to nearest even */
    return (uint16_t)(u >> 16);
}
static float bf2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}
static float round_bf(float f) { return bf2f(f2bf_bits(f)); }
static const uint16_t BF_NAN = 0x7fc0;

static uint64_t g_rng = 0x853c49e6748fea9bull;
static uint64_t rng_next(void) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static float rng_uniform(float lo, float hi) {
    return lo + (hi - lo) * (float)((rng_next() >> 40) & 0xffffff) / 16777216.0f;
}
static int rng_int(int n) { return (int)(rng_next() % (uint64_t)n); }

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + 1e-9 * ts.tv_nsec;
}

/* AD_NO_MQ=1 leaves version 4 (not yet run on a GPU when written) out of the self-test, the
 * checks and the timing. */
static int g_mq = 1;
/* AD_CASES=S: only the check cases whose name contains S; AD_ONLY_V4=1: the checks run v1, the
 * entry and version 4 only (both for compute-sanitizer runs, which are slow). */
static const char *g_cases = NULL;
static int g_only_v4 = 0;
/* Timing sweep of kernel 2 (session 6, for the group-8 and MHA shapes where torch SDPA is 1-3%
 * ahead): AD_NS=1,2,3,4,6,8 times every configuration at those split counts (and its plan's)
 * instead of {plan, 1, 2 x plan, plan / 2}; AD_NO_L2PF=1 leaves the l2pf configurations out
 * (slower at every shape so far). */
static const char *g_ns_list = NULL;
/* Timing only: AD_SHAPES (comma-separated substrings of the shapes' names), AD_PS (page size of every timed shape:
 * 16, 32, 64 or 128), AD_ORDERED (pages in pool order; make_page_table). */
static const char *g_shapes = NULL;
static int g_ps = 0, g_ordered = 0;
/* Whether name contains one of the comma-separated parts of list. */
static int name_in_list(const char *name, const char *list) {
    char part[64];
    for (const char *e = list; *e;) {
        size_t n = 0;
        while (e[n] && e[n] != ',') n++;
        if (n > 0 && n < sizeof(part)) {
            memcpy(part, e, n);
            part[n] = 0;
            if (strstr(name, part)) return 1;
        }
        e += n;
        if (*e) e++;
    }
    return 0;
}
static int g_no_l2pf = 0;
/* AD_TRACE=1 (a binary built with -DSAKER_TRACE; session 22): after each timed configuration,
 * one more launch with pdl.cuh's per-block trace on, summarised as the spread of the blocks'
 * starts and ends (where a launch's fixed cost goes: ramp, tail). */
static int g_trace = 0;
/* Runs whose cluster-merged output was compared with the combine's (check_run). */
static long g_cluster_cmp = 0, g_cluster_used = 0, g_push_used = 0;
/* The cluster merge's mode (sk_attn_decode_set_cluster): 2 (wherever clusters fit) during the
 * checks, so that every 2..16-split run takes it where it can; AD_CLUSTER (default 1, the
 * backend's) during the timing. */
static int g_cluster = 2;
#ifdef SAKER_TRACE
static unsigned long long *g_trace_ring;
unsigned long long *sk_trace_buffer(void) {
    if (!g_trace_ring) {
        const size_t bytes = (4 + 4 * (size_t)SK_TRACE_CAP) * sizeof(unsigned long long);
        CUDA_CHECK(cudaMalloc((void **)&g_trace_ring, bytes));
        CUDA_CHECK(cudaMemset(g_trace_ring, 0, bytes));
        CUDA_CHECK(cudaDeviceSynchronize());
    }
    return g_trace_ring;
}
#endif

/* ---- 1. self-test of the fragment mapping ------------------------------------------------- */

/* One warp. A [16][16], B [16][8], M [8][8] fp32 (exact in bf16). D [16][8] = A B through one
 * mma with the PTX ISA fragment layout; tm / ts: movmatrix / shuffle transposes of M; pk: the
 * bf16x2 packing of (lane, lane + 100). */
static __global__ void selftest_kernel(const float *A, const float *B, const float *M, float *D,
                                       uint32_t *tm, uint32_t *ts, uint32_t *pk) {
    const int lane = threadIdx.x, r = lane >> 2, t = lane & 3;
    const uint32_t a0 = sk_ad_pack_bf16(A[r * 16 + 2 * t], A[r * 16 + 2 * t + 1]);
    const uint32_t a1 = sk_ad_pack_bf16(A[(r + 8) * 16 + 2 * t], A[(r + 8) * 16 + 2 * t + 1]);
    const uint32_t a2 = sk_ad_pack_bf16(A[r * 16 + 2 * t + 8], A[r * 16 + 2 * t + 9]);
    const uint32_t a3 = sk_ad_pack_bf16(A[(r + 8) * 16 + 2 * t + 8], A[(r + 8) * 16 + 2 * t + 9]);
    const uint32_t b0 = sk_ad_pack_bf16(B[(2 * t) * 8 + r], B[(2 * t + 1) * 8 + r]);
    const uint32_t b1 = sk_ad_pack_bf16(B[(2 * t + 8) * 8 + r], B[(2 * t + 9) * 8 + r]);
    float d[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    sk_ad_mma(d, a0, a1, a2, a3, b0, b1);
    D[r * 8 + 2 * t] = d[0];
    D[r * 8 + 2 * t + 1] = d[1];
    D[(r + 8) * 8 + 2 * t] = d[2];
    D[(r + 8) * 8 + 2 * t + 1] = d[3];
    const uint32_t x = sk_ad_pack_bf16(M[r * 8 + 2 * t], M[r * 8 + 2 * t + 1]);
    tm[lane] = sk_ad_trans_movmatrix(x);
    ts[lane] = sk_ad_trans_shfl(x);
    pk[lane] = sk_ad_pack_bf16((float)lane, (float)(lane + 100));
}

static int selftest_mma(const char *what, const float *hA, const float *hB, float *dA, float *dB,
                        float *dM, float *dD, uint32_t *dtm, uint32_t *dts, uint32_t *dpk) {
    float hD[128];
    CUDA_CHECK(cudaMemcpy(dA, hA, 256 * 4, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(dB, hB, 128 * 4, cudaMemcpyHostToDevice));
    selftest_kernel<<<1, 32>>>(dA, dB, dM, dD, dtm, dts, dpk);
    CUDA_CHECK(cudaGetLastError());
    CUDA_CHECK(cudaMemcpy(hD, dD, 128 * 4, cudaMemcpyDeviceToHost));
    int bad = 0;
    for (int i = 0; i < 16; i++)
        for (int j = 0; j < 8; j++) {
            double ref = 0;
            for (int k = 0; k < 16; k++) ref += (double)hA[i * 16 + k] * hB[k * 8 + j];
            if (fabs(hD[i * 8 + j] - ref) > 1e-3) {
                if (bad < 6)
                    printf("  selftest %s: D[%d][%d] = %g, expected %g\n", what, i, j, hD[i * 8 + j],
                           ref);
                bad++;
            }
        }
    return bad;
}

/* Kernel 4's ldmatrix use (attn_decode_mq.cuh): a [64][128] bf16 tile with value f(r, c) =
 * (r * 131 + c * 7) % 251 (exact in bf16) stored through sk_admq_off<128>, read back with the
 * kernel's lane addressing: the K reads (non-transposed) for n-tile nt and k-step pair kp, the V
 * reads (.trans) for k-step kk and dim tiles dc, dc + 1. out: [8][4][32][4] K words, then
 * [4][8][32][4] V words. */
static __host__ __device__ int ldsm_f(int r, int c) { return (r * 131 + c * 7) % 251; }
static __global__ void selftest_ldsm_kernel(uint32_t *out) {
    __shared__ __align__(128) uint8_t tile[64 * 128 * 2];
    const uint32_t base = (uint32_t)__cvta_generic_to_shared(tile);
    const int lane = threadIdx.x;
    for (int i = lane; i < 64 * 128; i += 32) {
        const int r = i / 128, c = i % 128;
        *(__nv_bfloat16 *)(tile + sk_admq_off<128>(r, c / 8) + 2 * (c % 8)) =
            __float2bfloat16_rn((float)ldsm_f(r, c));
    }
    __syncwarp();
    for (int nt = 0; nt < 8; nt++)
        for (int kp = 0; kp < 4; kp++) {
            uint32_t kb[4];
            sk_admq_ldsm4(kb, base + sk_admq_off<128>(8 * nt + (lane & 7), 4 * kp + (lane >> 3)));
            for (int e = 0; e < 4; e++) out[((nt * 4 + kp) * 32 + lane) * 4 + e] = kb[e];
        }
    for (int kk = 0; kk < 4; kk++)
        for (int dc = 0; dc < 16; dc += 2) {
            uint32_t vb[4];
            const int m = lane >> 3;
            sk_admq_ldsm4t(vb, base + sk_admq_off<128>(16 * kk + 8 * (m & 1) + (lane & 7), dc + (m >> 1)));
            for (int e = 0; e < 4; e++) out[4096 + ((kk * 8 + dc / 2) * 32 + lane) * 4 + e] = vb[e];
        }
}
/* Expected: K word e of lane (g, t) for (nt, kp): B[k][n = g] of k-step 2 kp + e / 2, rows
 * 2t + 8 (e % 2), +1 -> K[8 nt + g][16 (2 kp + e / 2) + 8 (e % 2) + 2t, +1]; V word e for (kk,
 * dc): dim tile dc + e / 2, rows (tokens) 16 kk + 8 (e % 2) + 2t, +1 at dim 8 (dc + e / 2) + g. */
static int selftest_ldsm(void) {
    uint32_t *d, h[8192];
    CUDA_CHECK(cudaMalloc(&d, sizeof h));
    selftest_ldsm_kernel<<<1, 32>>>(d);
    CUDA_CHECK(cudaMemcpy(h, d, sizeof h, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaFree(d));
    int bk = 0, bv = 0;
    for (int lane = 0; lane < 32; lane++) {
        const int g = lane >> 2, t = lane & 3;
        for (int nt = 0; nt < 8; nt++)
            for (int kp = 0; kp < 4; kp++)
                for (int e = 0; e < 4; e++) {
                    const uint32_t w = h[((nt * 4 + kp) * 32 + lane) * 4 + e];
                    const int r = 8 * nt + g, c = 16 * (2 * kp + e / 2) + 8 * (e % 2) + 2 * t;
                    if (bf2f((uint16_t)(w & 0xffff)) != (float)ldsm_f(r, c) ||
                        bf2f((uint16_t)(w >> 16)) != (float)ldsm_f(r, c + 1))
                        bk++;
                }
        for (int kk = 0; kk < 4; kk++)
            for (int dc = 0; dc < 16; dc += 2)
                for (int e = 0; e < 4; e++) {
                    const uint32_t w = h[4096 + ((kk * 8 + dc / 2) * 32 + lane) * 4 + e];
                    const int r = 16 * kk + 8 * (e % 2) + 2 * t, c = 8 * (dc + e / 2) + g;
                    if (bf2f((uint16_t)(w & 0xffff)) != (float)ldsm_f(r, c) ||
                        bf2f((uint16_t)(w >> 16)) != (float)ldsm_f(r + 1, c))
                        bv++;
                }
    }
    if (bk || bv)
        printf("SELFTEST FAIL: kernel 4's ldmatrix fragments (attn_decode_mq.cuh): %d K words and "
               "%d V (.trans) words differ from the mma B layout assumed\n", bk, bv);
    return (bk != 0) + (bv != 0);
}

static int selftest(void) {
    float *dA, *dB, *dM, *dD;
    uint32_t *dtm, *dts, *dpk;
    CUDA_CHECK(cudaMalloc(&dA, 256 * 4));
    CUDA_CHECK(cudaMalloc(&dB, 128 * 4));
    CUDA_CHECK(cudaMalloc(&dM, 64 * 4));
    CUDA_CHECK(cudaMalloc(&dD, 128 * 4));
    CUDA_CHECK(cudaMalloc(&dtm, 32 * 4));
    CUDA_CHECK(cudaMalloc(&dts, 32 * 4));
    CUDA_CHECK(cudaMalloc(&dpk, 32 * 4));
    float hA[256], hB[128], hM[64];
    for (int i = 0; i < 64; i++) hM[i] = (float)i;
    CUDA_CHECK(cudaMemcpy(dM, hM, 64 * 4, cudaMemcpyHostToDevice));

    int fails = 0;
    /* (a) A = I: D = B[0..15][..] tests the B and C layouts. */
    for (int i = 0; i < 256; i++) hA[i] = (i / 16 == i % 16) ? 1.0f : 0.0f;
    for (int i = 0; i < 128; i++) hB[i] = (float)(i % 23 - 11);
    const int fa = selftest_mma("A=I (B/C layout)", hA, hB, dA, dB, dM, dD, dtm, dts, dpk);
    /* (b) B = [I8; 0]: D = A[..][0..7] tests the A (rows, first k half) and C layouts. */
    for (int i = 0; i < 256; i++) hA[i] = (float)(i % 29 - 14);
    for (int i = 0; i < 128; i++) hB[i] = (i / 8 == i % 8) ? 1.0f : 0.0f;
    const int fb = selftest_mma("B=[I;0] (A/C layout)", hA, hB, dA, dB, dM, dD, dtm, dts, dpk);
    /* (c) B = [0; I8]: D = A[..][8..15] tests the A second k half. */
    for (int i = 0; i < 128; i++) hB[i] = (i / 8 - 8 == i % 8) ? 1.0f : 0.0f;
    const int fc = selftest_mma("B=[0;I] (A k 8..15)", hA, hB, dA, dB, dM, dD, dtm, dts, dpk);
    /* (d) general small integers. */
    for (int i = 0; i < 256; i++) hA[i] = (float)(rng_int(9) - 4);
    for (int i = 0; i < 128; i++) hB[i] = (float)(rng_int(9) - 4);
    const int fd = selftest_mma("random", hA, hB, dA, dB, dM, dD, dtm, dts, dpk);
    if (fa || fb || fc || fd) {
        printf("SELFTEST FAIL: mma.m16n8k16 fragment layout differs from the one assumed in "
               "attn_decode.cuh (A=I: %d bad, B=[I;0]: %d, B=[0;I]: %d, random: %d)\n",
               fa, fb, fc, fd);
        fails++;
    }

    uint32_t tm[32], ts[32], pk[32];
    CUDA_CHECK(cudaMemcpy(tm, dtm, 128, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(ts, dts, 128, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(pk, dpk, 128, cudaMemcpyDeviceToHost));
    int bm = 0, bs = 0, bp = 0;
    for (int lane = 0; lane < 32; lane++) {
        const int r = lane >> 2, t = lane & 3;
        const float lo = hM[(2 * t) * 8 + r], hi = hM[(2 * t + 1) * 8 + r];
        const float mlo = bf2f((uint16_t)(tm[lane] & 0xffff)), mhi = bf2f((uint16_t)(tm[lane] >> 16));
        const float slo = bf2f((uint16_t)(ts[lane] & 0xffff)), shi = bf2f((uint16_t)(ts[lane] >> 16));
        if (mlo != lo || mhi != hi) {
            if (bm < 4)
                printf("  selftest movmatrix: lane %d got (%g, %g), expected (M[%d][%d], M[%d][%d]) "
                       "= (%g, %g)\n", lane, mlo, mhi, 2 * t, r, 2 * t + 1, r, lo, hi);
            bm++;
        }
        if (slo != lo || shi != hi) {
            if (bs < 4)
                printf("  selftest shfl transpose: lane %d got (%g, %g), expected (%g, %g)\n", lane,
                       slo, shi, lo, hi);
            bs++;
        }
        if (bf2f((uint16_t)(pk[lane] & 0xffff)) != (float)lane ||
            bf2f((uint16_t)(pk[lane] >> 16)) != (float)(lane + 100))
            bp++;
    }
    if (bm) {
        printf("SELFTEST FAIL: movmatrix.trans result layout differs from the assumed one (%d "
               "lanes)%s\n", bm, bs ? "" : "; the shuffle transpose is right: rebuild with "
               "-DSK_AD_SHFL_TRANSPOSE");
        fails++;
    }
    if (bs) {
        printf("SELFTEST FAIL: shuffle transpose wrong (%d lanes)\n", bs);
        fails++;
    }
    if (bp) {
        printf("SELFTEST FAIL: sk_ad_pack_bf16 puts the halves in the wrong order (%d lanes)\n", bp);
        fails++;
    }
    if (g_mq) fails += selftest_ldsm();
    if (!fails) printf("selftest: mma m16n8k16 layout, movmatrix.trans, shuffle transpose, bf16x2 "
                       "packing%s: OK\n", g_mq ? ", kernel 4's ldmatrix fragments" : "");
    cudaFree(dA);
    cudaFree(dB);
    cudaFree(dM);
    cudaFree(dD);
    cudaFree(dtm);
    cudaFree(dts);
    cudaFree(dpk);
    return fails;
}

/* ---- version 1: block per (sequence, query head) ------------------------------------------ */

#define K1_THREADS 128

static __device__ __forceinline__ float k1_block_max(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = red[0];
    for (int i = 1; i < K1_THREADS / 32; i++) r = fmaxf(r, red[i]);
    __syncthreads();
    return r;
}
static __device__ __forceinline__ float k1_block_sum(float v, float *red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = v;
    __syncthreads();
    float r = 0.0f;
    for (int i = 0; i < K1_THREADS / 32; i++) r += red[i];
    __syncthreads();
    return r;
}

/* grid batch * n_heads (head fastest), K1_THREADS threads. Scores in log2 units (x sl2). */
template <int HD>
static __global__ void __launch_bounds__(K1_THREADS)
    attention_decode_kernel1(const __grid_constant__ sk_attn_params p, int lg_page, float sl2) {
    constexpr int TPR = HD / 8, NRG = K1_THREADS / TPR;
    __shared__ __align__(16) float q_s[HD];
    __shared__ float p_s[K1_THREADS];
    __shared__ long long off_s[K1_THREADS];
    __shared__ float red[K1_THREADS / 32];
    __shared__ __align__(16) float acc_s[NRG][HD];

    const int H = p.n_heads, h = blockIdx.x % H, b = blockIdx.x / H, tid = threadIdx.x;
    const int nkv = p.kv.n_kv_heads, kvh = h / (H / nkv);
    const int len = p.kv.kv_len[b], ps = 1 << lg_page;
    const int32_t *ids = p.kv.indices + p.kv.indptr[b];
    const bf16 *K = (const bf16 *)p.kv.k, *V = (const bf16 *)p.kv.v;
    const bf16 *qh = (const bf16 *)p.q + (size_t)b * p.q_stride + (size_t)h * HD;
    for (int d = tid; d < HD; d += K1_THREADS) q_s[d] = __bfloat162float(qh[d]);
    __syncthreads();

    const int rg = tid / TPR, cv = tid % TPR;
    const bool v_on = rg < NRG;
    float m = -INFINITY, l = 0.0f, acc[8];
    for (int i = 0; i < 8; i++) acc[i] = 0.0f;

    for (int c0 = 0; c0 < len; c0 += K1_THREADS) {
        const int j = c0 + tid;
        float s = -INFINITY;
        if (j < len) {
            const long long off =
                ((((long long)ids[j >> lg_page] * nkv + kvh) << lg_page) + (j & (ps - 1))) * HD;
            off_s[tid] = off;
            const uint4 *kr = (const uint4 *)(K + off);
            float dot = 0.0f;
#pragma unroll
            for (int d8 = 0; d8 < HD / 8; d8++) {
                const uint4 u = kr[d8];
                const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    dot = fmaf(q_s[8 * d8 + 2 * e], __uint_as_float(w[e] << 16), dot);
                    dot = fmaf(q_s[8 * d8 + 2 * e + 1], __uint_as_float(w[e] & 0xffff0000u), dot);
                }
            }
            s = dot * sl2;
        }
        const float m_new = fmaxf(m, k1_block_max(s, red));
        const float alpha = exp2f(m - m_new);
        const float pj = j < len ? exp2f(s - m_new) : 0.0f;
        p_s[tid] = pj;
        l = l * alpha + k1_block_sum(pj, red); /* its barriers publish p_s and off_s */
        m = m_new;
        for (int i = 0; i < 8; i++) acc[i] *= alpha;
        if (v_on) {
            const int n = len - c0 < K1_THREADS ? len - c0 : K1_THREADS;
            for (int jj = rg; jj < n; jj += NRG) {
                const uint4 u = *(const uint4 *)(V + off_s[jj] + 8 * cv);
                const float pw = p_s[jj];
                const uint32_t w[4] = {u.x, u.y, u.z, u.w};
#pragma unroll
                for (int e = 0; e < 4; e++) {
                    acc[2 * e] = fmaf(pw, __uint_as_float(w[e] << 16), acc[2 * e]);
                    acc[2 * e + 1] = fmaf(pw, __uint_as_float(w[e] & 0xffff0000u), acc[2 * e + 1]);
                }
            }
        }
        __syncthreads(); /* p_s, off_s are rewritten by the next chunk */
    }
    if (v_on)
        for (int i = 0; i < 8; i++) acc_s[rg][8 * cv + i] = acc[i];
    __syncthreads();
    bf16 *o = (bf16 *)p.out + ((size_t)b * H + h) * HD;
    for (int d = tid; d < HD; d += K1_THREADS) {
        float x = 0.0f;
        for (int g = 0; g < NRG; g++) x += acc_s[g][d];
        o[d] = __float2bfloat16_rn(l > 0.0f ? x / l : 0.0f);
    }
}

static void attention_decode1(const sk_attn_params *p, cudaStream_t s) {
    const int lg = p->kv.page_size == 16 ? 4 : p->kv.page_size == 32 ? 5 : p->kv.page_size == 64 ? 6 : 7;
    const float sl2 = p->sm_scale * 1.4426950408889634f;
    const unsigned grid = (unsigned)(p->batch * p->n_heads);
    switch (p->kv.head_dim) {
    case 64:
        attention_decode_kernel1<64><<<grid, K1_THREADS, 0, s>>>(*p, lg, sl2);
        break;
    case 80:
        attention_decode_kernel1<80><<<grid, K1_THREADS, 0, s>>>(*p, lg, sl2);
        break;
    case 128:
        attention_decode_kernel1<128><<<grid, K1_THREADS, 0, s>>>(*p, lg, sl2);
        break;
    default:
        fprintf(stderr, "kernel1: head_dim %d\n", p->kv.head_dim);
        exit(1);
    }
    CUDA_CHECK(cudaGetLastError());
}

/* ---- GPU random fill (timing shapes) ------------------------------------------------------ */

static __device__ uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}
static __global__ void fill_uniform_kernel(bf16 *x, size_t n, uint64_t seed, float lo, float hi) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        const float u = (float)(splitmix64(seed ^ (i * 0x9e3779b97f4a7c15ull)) >> 40) * (1.0f / 16777216.0f);
        x[i] = __float2bfloat16_rn(lo + (hi - lo) * u);
    }
}
static void fill_uniform(void *x, size_t n, uint64_t seed, float lo, float hi) {
    fill_uniform_kernel<<<2048, 256>>>((bf16 *)x, n, seed, lo, hi);
    CUDA_CHECK(cudaGetLastError());
}

/* ---- problems ----------------------------------------------------------------------------- */

typedef struct problem {
    const char *name;
    int batch, H, KVH, hd, ps;
    int64_t q_stride;
    int *lens;                 /* [batch] host */
    int32_t *indptr, *indices; /* host page table */
    int n_pages;               /* pool pages (>= pages used) */
    size_t pool_elems;         /* n_pages * KVH * ps * hd */
    int n_copies;              /* pool copies for L2 rotation (timing) */
    /* device */
    void *k[8], *v[8];
    int32_t *d_indptr, *d_indices, *d_len;
    void *q;
    /* guarded output: [G][batch*H*hd bf16][G] */
    unsigned char *out_raw;
    size_t out_bytes;
    double kv_bytes; /* K+V bytes read once */
    int max_len;
} problem;

#define GUARD 4096
#define GUARD_BYTE 0xa5

static void *guarded_alloc(size_t bytes, unsigned char **raw) {
    CUDA_CHECK(cudaMalloc(raw, bytes + 2 * GUARD));
    CUDA_CHECK(cudaMemset(*raw, GUARD_BYTE, bytes + 2 * GUARD));
    return *raw + GUARD;
}
/* 0 when both guards are intact. */
static int guards_bad(const unsigned char *raw, size_t bytes) {
    static unsigned char h[2 * GUARD];
    CUDA_CHECK(cudaMemcpy(h, raw, GUARD, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaMemcpy(h + GUARD, raw + GUARD + bytes, GUARD, cudaMemcpyDeviceToHost));
    for (int i = 0; i < 2 * GUARD; i++)
        if (h[i] != GUARD_BYTE) return 1;
    return 0;
}

/* Page table: sequence b gets ceil(len/ps) pages, taken in order from a random permutation of
 * the n_pages pool pages (AD_ORDERED=1: the identity, so that each sequence's pages follow one
 * another in the pool: the contiguous data of the torch comparison, as far as pages go). */
static void make_page_table(problem *P, int extra_pages) {
    int used = 0;
    P->indptr = (int32_t *)malloc(sizeof(int32_t) * (P->batch + 1));
    P->indptr[0] = 0;
    P->max_len = 0;
    P->kv_bytes = 0;
    for (int b = 0; b < P->batch; b++) {
        used += (P->lens[b] + P->ps - 1) / P->ps;
        P->indptr[b + 1] = used;
        if (P->lens[b] > P->max_len) P->max_len = P->lens[b];
        P->kv_bytes += (double)P->lens[b] * P->KVH * P->hd * 2.0 * 2.0;
    }
    P->n_pages = used + extra_pages;
    int *perm = (int *)malloc(sizeof(int) * P->n_pages);
    for (int i = 0; i < P->n_pages; i++) perm[i] = i;
    for (int i = P->n_pages - 1; i > 0 && !g_ordered; i--) {
        const int j = rng_int(i + 1), tmp = perm[i];
        perm[i] = perm[j];
        perm[j] = tmp;
    }
    P->indices = (int32_t *)malloc(sizeof(int32_t) * (used > 0 ? used : 1));
    if (g_ordered == 2) {
        /* AD_ORDERED=2 (session 22): pages dealt round-robin over the sequences (page j of
         * every sequence, then page j + 1, ...), as an engine's decode steps allocate them when
         * all sequences grow together: blocks working at the same relative position of their
         * sequences then read neighbouring pool pages at the same time. */
        int next = 0;
        for (int j = 0; next < used; j++)
            for (int b = 0; b < P->batch; b++)
                if (P->indptr[b] + j < P->indptr[b + 1]) P->indices[P->indptr[b] + j] = next++;
    } else {
        for (int i = 0; i < used; i++) P->indices[i] = perm[i];
    }
    free(perm);
    P->pool_elems = (size_t)P->n_pages * P->KVH * P->ps * P->hd;
    CUDA_CHECK(cudaMalloc(&P->d_indptr, sizeof(int32_t) * (P->batch + 1)));
    CUDA_CHECK(cudaMalloc(&P->d_indices, sizeof(int32_t) * (used > 0 ? used : 1)));
    CUDA_CHECK(cudaMalloc(&P->d_len, sizeof(int32_t) * P->batch));
    CUDA_CHECK(cudaMemcpy(P->d_indptr, P->indptr, sizeof(int32_t) * (P->batch + 1), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(P->d_indices, P->indices, sizeof(int32_t) * (used > 0 ? used : 1), cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(P->d_len, P->lens, sizeof(int32_t) * P->batch, cudaMemcpyHostToDevice));
    P->out_bytes = (size_t)P->batch * P->H * P->hd * 2;
    guarded_alloc(P->out_bytes, &P->out_raw);
}

static void free_problem(problem *P) {
    for (int c = 0; c < P->n_copies; c++) {
        cudaFree(P->k[c]);
        cudaFree(P->v[c]);
    }
    cudaFree(P->d_indptr);
    cudaFree(P->d_indices);
    cudaFree(P->d_len);
    cudaFree(P->q);
    cudaFree(P->out_raw);
    free(P->lens);
    free(P->indptr);
    free(P->indices);
}

/* ---- CPU reference ------------------------------------------------------------------------ */

/* Decode attention of one sequence: q [H][hd] (row of the q matrix), K/V pool (host, bf16 bits)
 * [pages][KVH][ps][hd], its pages, len tokens. ref: double softmax and sums; naive: what a plain
 * bf16 kernel computes (fp32 scores and sums, P rounded to bf16 for P V, bf16 output). Both
 * [H][hd]. */
static void attention_decode_cpu(const uint16_t *q, const uint16_t *k, const uint16_t *v,
                                 const int32_t *pages, int len, int H, int KVH, int hd, int ps,
                                 float *ref, float *naive) {
    const int group = H / KVH;
    const double scale = 1.0 / sqrt((double)hd);
    double *s = (double *)malloc(sizeof(double) * (len > 0 ? len : 1));
    double *o = (double *)malloc(sizeof(double) * hd);
    float *on = (float *)malloc(sizeof(float) * hd);
    for (int h = 0; h < H; h++) {
        const int kvh = h / group;
        const uint16_t *qh = q + (size_t)h * hd;
        double mx = -INFINITY;
        for (int j = 0; j < len; j++) {
            const uint16_t *kr = k + (((size_t)pages[j / ps] * KVH + kvh) * ps + j % ps) * hd;
            double d = 0;
            for (int i = 0; i < hd; i++) d += (double)bf2f(qh[i]) * bf2f(kr[i]);
            s[j] = d * scale;
            if (s[j] > mx) mx = s[j];
        }
        double sum = 0;
        float sumf = 0;
        for (int i = 0; i < hd; i++) {
            o[i] = 0;
            on[i] = 0;
        }
        for (int j = 0; j < len; j++) {
            const double pj = exp(s[j] - mx);
            const float pf = expf((float)(s[j] - mx));
            const float pb = round_bf(pf);
            sum += pj;
            sumf += pf;
            const uint16_t *vr = v + (((size_t)pages[j / ps] * KVH + kvh) * ps + j % ps) * hd;
            for (int i = 0; i < hd; i++) {
                o[i] += pj * bf2f(vr[i]);
                on[i] += pb * bf2f(vr[i]);
            }
        }
        for (int i = 0; i < hd; i++) {
            ref[(size_t)h * hd + i] = len > 0 ? (float)(o[i] / sum) : 0.0f;
            naive[(size_t)h * hd + i] = len > 0 ? round_bf(on[i] / sumf) : 0.0f;
        }
    }
    free(s);
    free(o);
    free(on);
}

/* References of a set of sequences. */
typedef struct refset {
    int n;
    int seqs[16];
    float *ref[16], *naive[16];
    double err_naive, ref_max;
} refset;

/* ---- runs --------------------------------------------------------------------------------- */

typedef struct run_cfg {
    int version; /* 1, 2; 3 = public entry sk_attn_decode with the planner's split; 4 = mq */
    sk_attn_decode_cfg cfg;
    int n_splits; /* version 2 */
    int stages;   /* version 4: pipeline stages (0: the default) */
    char name[64];
} run_cfg;

/* Split scratch for a run (guarded). */
typedef struct scratch {
    unsigned char *raw_o, *raw_l;
    float *o, *l;
    size_t o_bytes, l_bytes;
} scratch;

static void scratch_alloc(scratch *S, const problem *P, int ns) {
    memset(S, 0, sizeof(*S));
    if (ns <= 1) return;
    S->o_bytes = (size_t)P->batch * P->H * ns * P->hd * 4;
    S->l_bytes = (size_t)P->batch * P->H * ns * 4;
    S->o = (float *)guarded_alloc(S->o_bytes, &S->raw_o);
    S->l = (float *)guarded_alloc(S->l_bytes, &S->raw_l);
}
static void scratch_free(scratch *S) {
    if (S->raw_o) cudaFree(S->raw_o);
    if (S->raw_l) cudaFree(S->raw_l);
}

static int g_n_sm = 132;

static void fill_params(sk_attn_params *p, const problem *P, int copy, int ns, const scratch *S) {
    memset(p, 0, sizeof(*p));
    p->kv.k = P->k[copy];
    p->kv.v = P->v[copy];
    p->kv.indptr = P->d_indptr;
    p->kv.indices = P->d_indices;
    p->kv.kv_len = P->d_len;
    p->kv.page_size = P->ps;
    p->kv.n_kv_heads = P->KVH;
    p->kv.head_dim = P->hd;
    p->q = P->q;
    p->q_stride = P->q_stride;
    p->out = P->out_raw + GUARD;
    p->batch = P->batch;
    p->n_heads = P->H;
    p->sm_scale = 1.0f / sqrtf((float)P->hd);
    p->n_splits = ns;
    p->part_out = S ? S->o : NULL;
    p->part_lse = S ? S->l : NULL;
}

/* AD_NT=1 (session 25, timing only): the timed launches of ring configurations take the new
 * token as fp32 rows (sk_attn_params.nt: q rotated as loaded, each sequence's last K/V row
 * rotated and written into its page and ring slot), from random fp32 q / k / v and a RoPE table
 * (theta 10000, all of head_dim rotated, halves). The kernels then overwrite the pools' last rows,
 * so the checks never run with it (time_run only). */
static int g_nt = 0, g_nt_timing = 0;
static float *g_nt_buf = NULL;
static size_t g_nt_floats = 0;
static void nt_fill(sk_attn_params *p, const problem *P, int copy, int ring) {
    if (!g_nt_timing || !ring || P->hd % 64 != 0) return;
    const size_t qn = (size_t)P->batch * P->H * P->hd, kn = (size_t)P->batch * P->KVH * P->hd;
    const size_t need = qn + 2 * kn + (size_t)P->hd / 2;
    if (need > g_nt_floats) {
        if (g_nt_buf) CUDA_CHECK(cudaFree(g_nt_buf));
        CUDA_CHECK(cudaMalloc(&g_nt_buf, need * sizeof(float)));
        float *h = (float *)malloc(need * sizeof(float));
        for (size_t i = 0; i < need - P->hd / 2; i++) h[i] = rng_uniform(-1.0f, 1.0f);
        for (int i = 0; i < P->hd / 2; i++)
            h[need - P->hd / 2 + i] = powf(10000.0f, -2.0f * (float)i / (float)P->hd);
        CUDA_CHECK(cudaMemcpy(g_nt_buf, h, need * sizeof(float), cudaMemcpyHostToDevice));
        free(h);
        g_nt_floats = need;
    }
    p->nt.q = g_nt_buf;
    p->nt.k = g_nt_buf + qn;
    p->nt.v = g_nt_buf + qn + kn;
    p->nt.q_stride = P->H * P->hd;
    p->nt.kv_stride = P->KVH * P->hd;
    p->nt.freq = g_nt_buf + qn + 2 * kn;
    p->nt.rope_dim = P->hd;
    p->nt.halves = 1;
    p->nt.k_pool = P->k[copy];
    p->nt.v_pool = P->v[copy];
}

/* Enqueues one run of rc on copy `copy`. */
static void launch_run(const run_cfg *rc, const problem *P, int copy, const scratch *S,
                       cudaStream_t s) {
    sk_attn_params p;
    if (rc->version == 1) {
        fill_params(&p, P, copy, 1, NULL);
        attention_decode1(&p, s);
    } else {
        fill_params(&p, P, copy, rc->n_splits, S);
        if (rc->version == 3)
            nt_fill(&p, P, copy,
                    sk_attn_decode_takes_newtok(P->batch, P->H, P->KVH, P->hd, rc->n_splits));
        else if (rc->version == 2)
            nt_fill(&p, P, copy, rc->cfg.ring > 0);
        if (rc->version == 3)
            sk_attn_decode(&p, s);
        else if (rc->version == 4)
            sk_attn_decode_mq_st(&p, rc->stages, s);
        else
            sk_attn_decode_cfg_launch(&p, &rc->cfg, s);
    }
}

/* Number of splits a run uses (for its scratch). */
static int run_splits(const run_cfg *rc) { return rc->version == 1 ? 1 : rc->n_splits; }

/* Runs rc once on poisoned output and compares the sequences of R. Returns 0 on pass. */
static int check_run(const run_cfg *rc, const problem *P, const refset *R, double *err_out) {
    scratch S;
    scratch_alloc(&S, P, run_splits(rc));
    CUDA_CHECK(cudaMemset(P->out_raw + GUARD, 0xff, P->out_bytes)); /* bf16 0xffff = NaN */
    launch_run(rc, P, 0, &S, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    uint16_t *h = (uint16_t *)malloc(P->out_bytes);
    CUDA_CHECK(cudaMemcpy(h, P->out_raw + GUARD, P->out_bytes, cudaMemcpyDeviceToHost));
    double err = 0;
    long nan = 0;
    for (int i = 0; i < R->n; i++) {
        const int b = R->seqs[i];
        for (size_t e = 0; e < (size_t)P->H * P->hd; e++) {
            const float g = bf2f(h[(size_t)b * P->H * P->hd + e]);
            if (isnan(g)) continue; /* counted below */
            const double d = fabs((double)g - R->ref[i][e]);
            if (d > err) err = d;
        }
    }
    /* Every row must be written (also the sequences not compared). */
    for (size_t e = 0; e < P->out_bytes / 2; e++)
        if (isnan(bf2f(h[e]))) nan++;
    free(h);
    const int gb = guards_bad(P->out_raw, P->out_bytes) ||
                   (S.raw_o && (guards_bad(S.raw_o, S.o_bytes) || guards_bad(S.raw_l, S.l_bytes)));
    /* Kernel 2 with 2..16 splits merges them by clusters (session 22): the same run through the
     * combine kernel (clusters off) must give bitwise the same output. */
    long ndiff = 0;
    const int ns = run_splits(rc);
    if (g_cluster && (rc->version == 2 || rc->version == 3) && ns >= 2 && ns <= SK_AD_CLUSTER_MAX) {
        g_cluster_used += sk_attn_decode_cluster_used();
        g_push_used += sk_attn_decode_push_used();
        uint16_t *h1 = (uint16_t *)malloc(P->out_bytes), *h2 = (uint16_t *)malloc(P->out_bytes);
        CUDA_CHECK(cudaMemcpy(h1, P->out_raw + GUARD, P->out_bytes, cudaMemcpyDeviceToHost));
        CUDA_CHECK(cudaMemset(P->out_raw + GUARD, 0xff, P->out_bytes));
        sk_attn_decode_set_cluster(0);
        launch_run(rc, P, 0, &S, 0);
        CUDA_CHECK(cudaDeviceSynchronize());
        sk_attn_decode_set_cluster(g_cluster);
        CUDA_CHECK(cudaMemcpy(h2, P->out_raw + GUARD, P->out_bytes, cudaMemcpyDeviceToHost));
        for (size_t e = 0; e < P->out_bytes / 2; e++) ndiff += h1[e] != h2[e];
        free(h1);
        free(h2);
        g_cluster_cmp++;
    }
    scratch_free(&S);
    err /= R->ref_max > 0 ? R->ref_max : 1.0;
    *err_out = err;
    const double tol = fmin(1e-2, fmax(4e-3, 3.0 * R->err_naive));
    const int ok = nan == 0 && !gb && err <= tol && ndiff == 0;
    if (!ok)
        printf("  FAIL %-28s %-34s err %.3e (tol %.1e, naive %.2e) NaN %ld guards %s, %ld "
               "outputs differ between the cluster merge and the combine\n", P->name, rc->name,
               err, tol, R->err_naive, nan, gb ? "OVERWRITTEN" : "ok", ndiff);
    return ok ? 0 : 1;
}

static void make_refset(refset *R, const problem *P, const uint16_t *hq, const uint16_t *hk,
                        const uint16_t *hv, const int32_t *const *pages, const int *seqs, int n) {
    if (n > 16) {
        fprintf(stderr, "make_refset: at most 16 sequences\n");
        exit(1);
    }
    R->n = n;
    R->err_naive = 0;
    R->ref_max = 0;
    for (int i = 0; i < n; i++) {
        const int b = seqs[i];
        R->seqs[i] = b;
        R->ref[i] = (float *)malloc(sizeof(float) * P->H * P->hd);
        R->naive[i] = (float *)malloc(sizeof(float) * P->H * P->hd);
        attention_decode_cpu(hq + (size_t)b * P->q_stride, hk, hv, pages[i], P->lens[b], P->H,
                             P->KVH, P->hd, P->ps, R->ref[i], R->naive[i]);
        for (size_t e = 0; e < (size_t)P->H * P->hd; e++)
            if (fabs(R->ref[i][e]) > R->ref_max) R->ref_max = fabs(R->ref[i][e]);
    }
    for (int i = 0; i < n; i++)
        for (size_t e = 0; e < (size_t)P->H * P->hd; e++) {
            const double d = fabs((double)R->naive[i][e] - R->ref[i][e]);
            if (d > R->err_naive) R->err_naive = d;
        }
    if (R->ref_max > 0) R->err_naive /= R->ref_max;
}
static void free_refset(refset *R) {
    for (int i = 0; i < R->n; i++) {
        free(R->ref[i]);
        free(R->naive[i]);
    }
}

/* Configurations of version 2 instantiated for head_dim hd; `sensible` keeps those whose query
 * tiles per block cover the group without idle tiles (for timing). Each as it is, with the
 * register prefetch, with rings of 2 and 4 slots, and with the L2 bulk prefetch at the distances
 * of l2pfs (n_l2pf of them). */
#define MAX_CFGS 192
static int enum_cfgs(int hd, int group, int sensible, const int *l2pfs, int n_l2pf,
                     sk_attn_decode_cfg *out) {
    int n = 0;
    const int need = (group + 7) / 8;
    int cap = 1;
    while (cap < need) cap *= 2;
    const int qt[3] = {1, 2, 4}, wqs[3] = {1, 2, 4}, ws[4] = {1, 2, 4, 8};
    for (int a = 0; a < 3; a++)
        for (int b = 0; b < 3; b++)
            for (int c = 0; c < 4; c++)
                /* variants: v 0 plain, 1 register prefetch, 2 and 3 rings of 2 and 4 slots,
                 * 4.. the L2 prefetch distances */
                for (int v = 0; v < 4 + n_l2pf; v++) {
                    const int pf = v == 1, ring = v == 2 ? 2 : v == 3 ? 4 : 0;
                    const int l2pf = v >= 4 ? l2pfs[v - 4] : 0;
                    sk_attn_decode_cfg cfg = {qt[a], ws[c], wqs[b], pf, l2pf, ring};
                    if (!sk_ad_kernel(hd, &cfg)) continue;
                    const int prod = qt[a] * wqs[b];
                    if (sensible && !(prod <= cap && 2 * prod >= cap)) continue;
                    if (n == MAX_CFGS) {
                        fprintf(stderr, "enum_cfgs: more than %d configurations\n", MAX_CFGS);
                        exit(1);
                    }
                    out[n++] = cfg;
                }
    return n;
}

static void cfg_name(char *buf, size_t n, int version, const sk_attn_decode_cfg *c, int ns) {
    if (version == 1)
        snprintf(buf, n, "v1 block/query-head");
    else if (version == 4) /* c->ring holds the stage count */
        snprintf(buf, n, "v4 mq st%d ns%d", c->ring, ns);
    else if (version == 3)
        snprintf(buf, n, "v2 entry q%d wq%d w%d pf%d l2pf%d r%d ns%d", c->qtiles, c->wq,
                 c->warps, c->prefetch, c->l2pf, c->ring, ns);
    else
        snprintf(buf, n, "v2 q%d wq%d w%d pf%d l2pf%d r%d ns%d", c->qtiles, c->wq, c->warps,
                 c->prefetch, c->l2pf, c->ring, ns);
}

/* ---- 2. correctness ----------------------------------------------------------------------- */

typedef struct case_def {
    const char *name;
    int H, KVH, hd, ps;
    float q_amp;
    int fused_q; /* q_stride = (H + 2 KVH) hd, as in a fused QKV projection */
    int n;
    int lens[12]; /* n > 0: these; n < 0: -n random lengths in [1, lens[0]] */
} case_def;

static const case_def k_cases[] = {
    {"g1 hd64 ps16", 4, 4, 64, 16, 1.0f, 0, 4, {1, 7, 100, 1000}},
    {"g3 hd64 ps16", 12, 4, 64, 16, 2.0f, 1, 2, {50, 999}},
    {"g4 hd128 ps64", 16, 4, 128, 64, 1.0f, 0, 3, {7, 100, 4097}},
    {"g8 hd128 ps16 sharp", 16, 2, 128, 16, 8.0f, 1, 4, {1000, 1, 4097, 33}},
    {"g8 hd80 ps128", 16, 2, 80, 128, 1.0f, 0, 3, {100, 129, 4097}},
    {"g8 hd64 ps32", 8, 1, 64, 32, 3.0f, 0, 2, {17, 1000}},
    {"g8 hd128 ps16 mixed9", 16, 2, 128, 16, 1.0f, 1, -9, {3000}},
    {"g16 hd128 ps64", 32, 2, 128, 64, 1.0f, 0, 2, {300, 2000}},
    {"g20 hd80 ps64 mqa", 20, 1, 80, 64, 1.0f, 0, 2, {100, 1000}},
    {"g29 hd64 ps64", 58, 2, 64, 64, 1.0f, 1, 3, {1, 7, 1000}},
    {"g29 hd80 ps16", 58, 2, 80, 16, 2.0f, 0, 2, {4097, 100}},
    {"g29 hd128 ps32", 58, 2, 128, 32, 1.0f, 0, 3, {1000, 7, 257}},
    {"g64 hd128 ps16 mqa", 64, 1, 128, 16, 1.0f, 0, 3, {4097, 1, 100}},
    {"g71 hd64 ps128 mqa", 71, 1, 64, 128, 4.0f, 1, 3, {1000, 7, 2000}},
};

static int run_case(const case_def *cd, int *n_runs) {
    problem P;
    memset(&P, 0, sizeof(P));
    P.name = cd->name;
    P.H = cd->H;
    P.KVH = cd->KVH;
    P.hd = cd->hd;
    P.ps = cd->ps;
    P.batch = cd->n > 0 ? cd->n : -cd->n;
    P.lens = (int *)malloc(sizeof(int) * P.batch);
    for (int b = 0; b < P.batch; b++) P.lens[b] = cd->n > 0 ? cd->lens[b] : 1 + rng_int(cd->lens[0]);
    P.q_stride = (int64_t)(cd->fused_q ? P.H + 2 * P.KVH : P.H) * P.hd;
    P.n_copies = 1;
    make_page_table(&P, 3);

    /* Host data: NaN everywhere, then random values in the rows that hold tokens. */
    uint16_t *hk = (uint16_t *)malloc(P.pool_elems * 2), *hv = (uint16_t *)malloc(P.pool_elems * 2);
    for (size_t i = 0; i < P.pool_elems; i++) hk[i] = hv[i] = BF_NAN;
    for (int b = 0; b < P.batch; b++)
        for (int j = 0; j < P.lens[b]; j++) {
            const int pg = P.indices[P.indptr[b] + j / P.ps];
            for (int kh = 0; kh < P.KVH; kh++) {
                const size_t off = (((size_t)pg * P.KVH + kh) * P.ps + j % P.ps) * P.hd;
                for (int d = 0; d < P.hd; d++) {
                    hk[off + d] = f2bf_bits(rng_uniform(-1.0f, 1.0f));
                    hv[off + d] = f2bf_bits(rng_uniform(-1.0f, 1.0f));
                }
            }
        }
    const size_t q_elems = (size_t)P.batch * P.q_stride;
    uint16_t *hq = (uint16_t *)malloc(q_elems * 2);
    for (size_t i = 0; i < q_elems; i++)
        hq[i] = (i % P.q_stride) < (size_t)P.H * P.hd ? f2bf_bits(rng_uniform(-cd->q_amp, cd->q_amp))
                                                     : BF_NAN;
    CUDA_CHECK(cudaMalloc(&P.k[0], P.pool_elems * 2));
    CUDA_CHECK(cudaMalloc(&P.v[0], P.pool_elems * 2));
    CUDA_CHECK(cudaMalloc(&P.q, q_elems * 2));
    CUDA_CHECK(cudaMemcpy(P.k[0], hk, P.pool_elems * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(P.v[0], hv, P.pool_elems * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(P.q, hq, q_elems * 2, cudaMemcpyHostToDevice));

    refset R;
    int seqs[16];
    const int32_t *pages[16];
    for (int b = 0; b < P.batch; b++) {
        seqs[b] = b;
        pages[b] = P.indices + P.indptr[b];
    }
    make_refset(&R, &P, hq, hk, hv, pages, seqs, P.batch);

    int fails = 0, runs = 0;
    double worst = 0, e;
    run_cfg rc;
    memset(&rc, 0, sizeof(rc));
    rc.version = 1;
    cfg_name(rc.name, sizeof(rc.name), 1, NULL, 1);
    fails += check_run(&rc, &P, &R, &e);
    runs++;
    const double e1 = e;

    sk_attn_decode_plan plan;
    sk_attn_decode_make_plan(P.batch, P.H, P.KVH, P.hd, P.max_len, g_n_sm, &plan);
    rc.version = 3;
    rc.cfg = plan.cfg;
    rc.n_splits = plan.n_splits;
    cfg_name(rc.name, sizeof(rc.name), 3, &plan.cfg, plan.n_splits);
    fails += check_run(&rc, &P, &R, &e);
    runs++;
    worst = fmax(worst, e);

    static const int l2pf_check[2] = {1, 3};
    sk_attn_decode_cfg cfgs[MAX_CFGS];
    const int nc = g_only_v4 ? 0 : enum_cfgs(P.hd, P.H / P.KVH, 0, l2pf_check, 2, cfgs);
    const int splits[5] = {1, 2, 3, 7, 64};
    for (int c = 0; c < nc; c++) {
        sk_attn_decode_plan pl;
        sk_attn_decode_make_plan_cfg(P.batch, P.H, P.KVH, P.hd, P.max_len, g_n_sm, &cfgs[c], &pl);
        for (int si = 0; si < 6; si++) {
            const int ns = si < 5 ? splits[si] : pl.n_splits;
            if (si == 5 && (ns == 1 || ns == 2 || ns == 3 || ns == 7 || ns == 64)) continue;
            rc.version = 2;
            rc.cfg = cfgs[c];
            rc.n_splits = ns;
            cfg_name(rc.name, sizeof(rc.name), 2, &cfgs[c], ns);
            fails += check_run(&rc, &P, &R, &e);
            runs++;
            worst = fmax(worst, e);
        }
    }
    if (g_mq && sk_attn_decode_mq_supported(P.hd, P.H / P.KVH)) {
        for (int st = 2; st <= 4; st++) {
            const int mq_pick = sk_attn_decode_mq_plan(P.batch, P.KVH, P.H / P.KVH, P.hd,
                                                       P.max_len, g_n_sm, st);
            const int mq_splits[6] = {1, 2, 3, 7, 64, mq_pick};
            for (int si = 0; si < 6; si++) {
                if (si == 5 && (mq_pick == 1 || mq_pick == 2 || mq_pick == 3 || mq_pick == 7 ||
                                mq_pick == 64))
                    continue;
                rc.version = 4;
                rc.stages = st;
                rc.n_splits = mq_splits[si];
                sk_attn_decode_cfg sc = {0, 0, 0, 0, 0, st};
                cfg_name(rc.name, sizeof(rc.name), 4, &sc, rc.n_splits);
                fails += check_run(&rc, &P, &R, &e);
                runs++;
                worst = fmax(worst, e);
            }
        }
    }
    printf("  %-24s B=%d H=%d KVH=%d hd=%d ps=%d max_len=%d: %d runs, %d failed; err v1 %.2e, "
           "v2/v4 worst %.2e, naive bf16 %.2e\n", cd->name, P.batch, P.H, P.KVH, P.hd, P.ps, P.max_len,
           runs, fails, e1, worst, R.err_naive);
    *n_runs += runs;
    free_refset(&R);
    free(hk);
    free(hv);
    free(hq);
    free_problem(&P);
    return fails;
}

/* ---- 3. timing ---------------------------------------------------------------------------- */

typedef struct shape_def {
    const char *name;
    int H, KVH, hd, ps, batch, len;
    int full; /* 1: all sensible configurations; 0: default configuration only */
} shape_def;

static const shape_def k_shapes[] = {
    {"llama70b g8 b64x4096", 64, 8, 128, 16, 64, 4096, 1},
    {"llama70b g8 b256x1024", 64, 8, 128, 16, 256, 1024, 1},
    /* session 22: the same shape at half and twice the length and batch (the fixed cost a
     * launch against the streaming rate: time = fixed + bytes / rate) */
    {"llama70b g8 b64x2048", 64, 8, 128, 16, 64, 2048, 1},
    {"llama70b g8 b64x8192", 64, 8, 128, 16, 64, 8192, 1},
    {"llama70b g8 b128x4096", 64, 8, 128, 16, 128, 4096, 1},
    {"llama70b g8 b64x4096 ps64", 64, 8, 128, 64, 64, 4096, 0},
    {"falcon180b g29 b64x4096", 232, 8, 64, 16, 64, 4096, 1},
    {"falcon180b g29 b1x32768", 232, 8, 64, 16, 1, 32768, 1},
    {"falcon40b g16 b64x4096", 128, 8, 64, 16, 64, 4096, 1},
    {"llama70b-mha g1 b64x4096", 64, 64, 128, 16, 64, 4096, 1},
    {"llama70b-mha g1 b256x1024", 64, 64, 128, 16, 256, 1024, 1},
    {"llama70b-mqa g64 b64x4096", 64, 1, 128, 16, 64, 4096, 1},
    {"llama70b-mqa g64 b256x1024", 64, 1, 128, 16, 256, 1024, 1},
    /* the engine's short contexts (7B at 128/128, batch ~900, ~192 tokens a sequence on average;
     * 70B at 128/128, batch 116): where the warps' fixed costs weigh most */
    {"llama7b-mha g1 b896x192 ps64", 32, 32, 128, 64, 896, 192, 1},
    {"llama70b g8 b116x192 ps64", 64, 8, 128, 64, 116, 192, 1},
    /* the 70B engine's decode steps (64-token pages; session 12): 128/2048 and 2048/128 at batch
     * 139 (~1,150 and ~2,170 tokens), 128/4096 at 72, 128/128 at 1,146, batch 1 */
    {"llama70b g8 b139x1152 ps64", 64, 8, 128, 64, 139, 1152, 1},
    {"llama70b g8 b139x2176 ps64", 64, 8, 128, 64, 139, 2176, 1},
    {"llama70b g8 b72x4224 ps64", 64, 8, 128, 64, 72, 4224, 1},
    {"llama70b g8 b1146x192 ps64", 64, 8, 128, 64, 1146, 192, 1},
    {"llama70b g8 b1x256 ps64", 64, 8, 128, 64, 1, 256, 1},
};

static int cmp_float(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

#define WARMUP 5
#define REPS 30

/* Median time (us) of rc over REPS runs, rotating over the pool copies. */
static float time_run(const run_cfg *rc, const problem *P) {
    g_nt_timing = g_nt;
    scratch S;
    scratch_alloc(&S, P, run_splits(rc));
    cudaEvent_t ev[2 * REPS];
    for (int i = 0; i < 2 * REPS; i++) CUDA_CHECK(cudaEventCreate(&ev[i]));
    for (int i = 0; i < WARMUP; i++) launch_run(rc, P, i % P->n_copies, &S, 0);
    for (int i = 0; i < REPS; i++) {
        CUDA_CHECK(cudaEventRecord(ev[2 * i], 0));
        launch_run(rc, P, (i + WARMUP) % P->n_copies, &S, 0);
        CUDA_CHECK(cudaEventRecord(ev[2 * i + 1], 0));
    }
    CUDA_CHECK(cudaDeviceSynchronize());
    float t[REPS];
    for (int i = 0; i < REPS; i++) {
        CUDA_CHECK(cudaEventElapsedTime(&t[i], ev[2 * i], ev[2 * i + 1]));
        t[i] *= 1000.0f;
    }
    for (int i = 0; i < 2 * REPS; i++) CUDA_CHECK(cudaEventDestroy(ev[i]));
    scratch_free(&S);
    qsort(t, REPS, sizeof(float), cmp_float);
    g_nt_timing = 0;
    return t[REPS / 2];
}

/* AD_TRACE: one traced launch of rc (after a warm one), its blocks' timeline summarised. */
#ifdef SAKER_TRACE
static int cmp_u64(const void *a, const void *b) {
    const unsigned long long x = *(const unsigned long long *)a, y = *(const unsigned long long *)b;
    return x < y ? -1 : x > y;
}
#endif
#ifdef SAKER_TRACE
/* %globaltimer into *t (one thread): brackets the traced launch. */
static __global__ void trace_stamp_kernel(unsigned long long *t) { *t = sk_gtimer(); }
#endif
static void trace_run(const run_cfg *rc, const problem *P) {
#ifdef SAKER_TRACE
    scratch S;
    scratch_alloc(&S, P, run_splits(rc));
    launch_run(rc, P, 1 % P->n_copies, &S, 0);
    CUDA_CHECK(cudaDeviceSynchronize());
    unsigned long long *ring = sk_trace_buffer();
    CUDA_CHECK(cudaMemset(ring, 0, sizeof(unsigned long long)));
    unsigned long long *d_st, h_st[2];
    CUDA_CHECK(cudaMalloc(&d_st, 2 * sizeof(unsigned long long)));
    trace_stamp_kernel<<<1, 1>>>(d_st);
    launch_run(rc, P, 0, &S, 0);
    trace_stamp_kernel<<<1, 1>>>(d_st + 1);
    CUDA_CHECK(cudaDeviceSynchronize());
    CUDA_CHECK(cudaMemcpy(h_st, d_st, sizeof h_st, cudaMemcpyDeviceToHost));
    CUDA_CHECK(cudaFree(d_st));
    unsigned long long cnt = 0;
    CUDA_CHECK(cudaMemcpy(&cnt, ring, sizeof cnt, cudaMemcpyDeviceToHost));
    const size_t n = cnt < SK_TRACE_CAP ? (size_t)cnt : (size_t)SK_TRACE_CAP;
    unsigned long long *h = (unsigned long long *)malloc((4 * n + 1) * sizeof *h);
    if (n) CUDA_CHECK(cudaMemcpy(h, ring + 4, 4 * n * sizeof *h, cudaMemcpyDeviceToHost));
    for (int tag = SK_TRACE_DEC; tag <= SK_TRACE_COMB; tag++) {
        unsigned long long t_lo = ~0ull, *st = (unsigned long long *)malloc((n + 1) * 8),
                           *en = (unsigned long long *)malloc((n + 1) * 8),
                           *du = (unsigned long long *)malloc((n + 1) * 8);
        size_t m = 0;
        unsigned char sms[256] = {0};
        for (size_t i = 0; i < n; i++) {
            const unsigned long long *r = h + 4 * i;
            if ((int)(r[0] >> 56) != tag) continue; /* tag: kind << 24 */
            st[m] = r[1], en[m] = r[3], du[m] = r[3] - r[1];
            sms[(r[0] >> 24) & 0xff] = 1;
            if (r[1] < t_lo) t_lo = r[1];
            m++;
        }
        if (m) {
            int nsm = 0;
            for (int i = 0; i < 256; i++) nsm += sms[i];
            if (tag == SK_TRACE_DEC)
                printf("    trace: stamp before -> first block start %.2f us; stamp after at %.2f "
                       "us\n", ((double)t_lo - (double)h_st[0]) / 1000.0,
                       ((double)h_st[1] - (double)t_lo) / 1000.0);
            for (size_t i = 0; i < m; i++) st[i] -= t_lo, en[i] -= t_lo;
            qsort(st, m, 8, cmp_u64);
            qsort(en, m, 8, cmp_u64);
            qsort(du, m, 8, cmp_u64);
#define TQ(a, f) ((a)[(size_t)((f) * (double)(m - 1))] / 1000.0)
            printf("    trace %s: %zu blocks on %d SMs; starts p50 %.2f p90 %.2f last %.2f us; "
                   "ends min %.2f p10 %.2f p50 %.2f p90 %.2f p99 %.2f max %.2f us; block time "
                   "p10 %.2f p50 %.2f p90 %.2f us\n",
                   tag == SK_TRACE_DEC ? "kernel" : "combine", m, nsm, TQ(st, 0.5), TQ(st, 0.9),
                   TQ(st, 1.0), TQ(en, 0.0), TQ(en, 0.1), TQ(en, 0.5), TQ(en, 0.9), TQ(en, 0.99),
                   TQ(en, 1.0), TQ(du, 0.1), TQ(du, 0.5), TQ(du, 0.9));
#undef TQ
        }
        free(st);
        free(en);
        free(du);
    }
    free(h);
    scratch_free(&S);
#else
    (void)rc, (void)P;
#endif
}

/* Device-to-device copy bandwidth (bytes read + written per second) of a 2 GB buffer. */
static double copy_bandwidth(void) {
    const size_t n = (size_t)2 << 30;
    void *a, *b;
    CUDA_CHECK(cudaMalloc(&a, n));
    CUDA_CHECK(cudaMalloc(&b, n));
    CUDA_CHECK(cudaMemset(a, 0x3c, n));
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float t[11];
    for (int i = 0; i < 12; i++) {
        CUDA_CHECK(cudaEventRecord(e0, 0));
        CUDA_CHECK(cudaMemcpyAsync(b, a, n, cudaMemcpyDeviceToDevice, 0));
        CUDA_CHECK(cudaEventRecord(e1, 0));
        CUDA_CHECK(cudaEventSynchronize(e1));
        if (i > 0) CUDA_CHECK(cudaEventElapsedTime(&t[i - 1], e0, e1));
    }
    qsort(t, 11, sizeof(float), cmp_float);
    cudaEventDestroy(e0);
    cudaEventDestroy(e1);
    cudaFree(a);
    cudaFree(b);
    return 2.0 * n / (t[5] * 1e-3);
}

typedef struct summary_row {
    char shape[40];
    double v1_us, best_us, best_tbs, plan_us;
    char best[64], plan[64];
    int group;
} summary_row;

/* Sampled references of a timing shape: pages of sequences 0, B/2, B-1 copied back. */
static void sampled_refset(refset *R, const problem *P, uint16_t **hk_out, uint16_t **hv_out,
                           uint16_t **hq_out, int32_t ***pages_out) {
    int seqs[3] = {0, P->batch / 2, P->batch - 1}, n = 0;
    int uniq[3];
    for (int i = 0; i < 3; i++) {
        int dup = 0;
        for (int j = 0; j < n; j++) dup |= uniq[j] == seqs[i];
        if (!dup) uniq[n++] = seqs[i];
    }
    size_t pages = 0;
    for (int i = 0; i < n; i++) pages += P->indptr[uniq[i] + 1] - P->indptr[uniq[i]];
    const size_t page_elems = (size_t)P->KVH * P->ps * P->hd;
    uint16_t *hk = (uint16_t *)malloc(pages * page_elems * 2);
    uint16_t *hv = (uint16_t *)malloc(pages * page_elems * 2);
    int32_t **pg = (int32_t **)malloc(sizeof(int32_t *) * n);
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        const int b = uniq[i], np = P->indptr[b + 1] - P->indptr[b];
        pg[i] = (int32_t *)malloc(sizeof(int32_t) * np);
        for (int j = 0; j < np; j++, at++) {
            const size_t src = (size_t)P->indices[P->indptr[b] + j] * page_elems * 2;
            CUDA_CHECK(cudaMemcpy(hk + at * page_elems, (char *)P->k[0] + src, page_elems * 2, cudaMemcpyDeviceToHost));
            CUDA_CHECK(cudaMemcpy(hv + at * page_elems, (char *)P->v[0] + src, page_elems * 2, cudaMemcpyDeviceToHost));
            pg[i][j] = (int32_t)at;
        }
    }
    const size_t q_elems = (size_t)P->batch * P->q_stride;
    uint16_t *hq = (uint16_t *)malloc(q_elems * 2);
    CUDA_CHECK(cudaMemcpy(hq, P->q, q_elems * 2, cudaMemcpyDeviceToHost));
    make_refset(R, P, hq, hk, hv, (const int32_t *const *)pg, uniq, n);
    *hk_out = hk;
    *hv_out = hv;
    *hq_out = hq;
    *pages_out = pg;
}

static int run_timing(const shape_def *sd, double copy_bw, summary_row *row, double l2_bytes) {
    problem P;
    memset(&P, 0, sizeof(P));
    P.name = sd->name;
    P.H = sd->H;
    P.KVH = sd->KVH;
    P.hd = sd->hd;
    P.ps = g_ps ? g_ps : sd->ps;
    P.batch = sd->batch;
    P.lens = (int *)malloc(sizeof(int) * P.batch);
    for (int b = 0; b < P.batch; b++) P.lens[b] = sd->len;
    P.q_stride = (int64_t)P.H * P.hd;
    make_page_table(&P, 0);
    const double pool_bytes = (double)P.pool_elems * 2 * 2;
    P.n_copies = (int)ceil(3.0 * l2_bytes / pool_bytes);
    if (P.n_copies < 1) P.n_copies = 1;
    if (P.n_copies > 8) P.n_copies = 8;
    for (int c = 0; c < P.n_copies; c++) {
        CUDA_CHECK(cudaMalloc(&P.k[c], P.pool_elems * 2));
        CUDA_CHECK(cudaMalloc(&P.v[c], P.pool_elems * 2));
        fill_uniform(P.k[c], P.pool_elems, 1000 + 2 * c, -1.0f, 1.0f);
        fill_uniform(P.v[c], P.pool_elems, 1001 + 2 * c, -1.0f, 1.0f);
    }
    CUDA_CHECK(cudaMalloc(&P.q, (size_t)P.batch * P.q_stride * 2));
    fill_uniform(P.q, (size_t)P.batch * P.q_stride, 7, -1.0f, 1.0f);
    CUDA_CHECK(cudaDeviceSynchronize());

    refset R;
    uint16_t *hk, *hv, *hq;
    int32_t **pg;
    sampled_refset(&R, &P, &hk, &hv, &hq, &pg);

    const int group = P.H / P.KVH;
    printf("\n%s: H=%d KVH=%d hd=%d ps=%d batch=%d len=%d, KV %.1f MB, %d pool cop%s, sampled "
           "check naive-bf16 err %.2e\n", sd->name, P.H, P.KVH, P.hd, P.ps, P.batch, sd->len,
           P.kv_bytes / 1e6, P.n_copies, P.n_copies > 1 ? "ies" : "y", R.err_naive);

    /* Runs: v1, the entry with its plan, then configurations x splits. */
    static run_cfg runs[9 * MAX_CFGS + 24];
    int nr = 0;
    memset(runs, 0, sizeof(runs));
    runs[nr].version = 1;
    cfg_name(runs[nr].name, sizeof(runs[nr].name), 1, NULL, 1);
    nr++;
    sk_attn_decode_plan plan;
    sk_attn_decode_make_plan(P.batch, P.H, P.KVH, P.hd, P.max_len, g_n_sm, &plan);
    runs[nr].version = 3;
    runs[nr].cfg = plan.cfg;
    runs[nr].n_splits = plan.n_splits;
    cfg_name(runs[nr].name, sizeof(runs[nr].name), 3, &plan.cfg, plan.n_splits);
    const int plan_idx = nr++;
    if (sd->full) {
        static const int l2pf_time[3] = {1, 2, 4};
        sk_attn_decode_cfg cfgs[MAX_CFGS];
        const int nc = enum_cfgs(P.hd, group, 1, l2pf_time, 3, cfgs);
        for (int c = 0; c < nc; c++) {
            sk_attn_decode_plan pl;
            sk_attn_decode_make_plan_cfg(P.batch, P.H, P.KVH, P.hd, P.max_len, g_n_sm, &cfgs[c], &pl);
            if (g_no_l2pf && cfgs[c].l2pf) continue;
            int cand[9] = {pl.n_splits, 1, pl.n_splits * 2, pl.n_splits / 2}, used[9], nu = 0;
            int ncand = 4;
            if (g_ns_list) { /* AD_NS: the plan's split count and the listed ones */
                ncand = 1;
                for (const char *e = g_ns_list; *e && ncand < 9;) {
                    cand[ncand++] = atoi(e);
                    while (*e && *e != ',') e++;
                    if (*e) e++;
                }
            }
            for (int i = 0; i < ncand; i++) {
                int ns = cand[i];
                if (ns < 1 || ns > SK_ATTN_DECODE_MAX_SPLITS) continue;
                int dup = 0;
                for (int j = 0; j < nu; j++) dup |= used[j] == ns;
                if (dup) continue;
                used[nu++] = ns;
                runs[nr].version = 2;
                runs[nr].cfg = cfgs[c];
                runs[nr].n_splits = ns;
                cfg_name(runs[nr].name, sizeof(runs[nr].name), 2, &cfgs[c], ns);
                nr++;
            }
        }
    }

    if (g_mq && sk_attn_decode_mq_supported(P.hd, group)) { /* kernel 4: stages x splits */
        for (int st = 2; st <= 4; st++) {
            const int pick =
                sk_attn_decode_mq_plan(P.batch, P.KVH, group, P.hd, P.max_len, g_n_sm, st);
            const int cand[5] = {pick, 1, 2, 4, 2 * pick};
            int used[5], nu = 0;
            for (int i = 0; i < 5; i++) {
                int dup = 0;
                for (int j = 0; j < nu; j++) dup |= used[j] == cand[i];
                if (dup || cand[i] < 1 || cand[i] > SK_ATTN_DECODE_MAX_SPLITS) continue;
                used[nu++] = cand[i];
                runs[nr].version = 4;
                runs[nr].stages = st;
                runs[nr].n_splits = cand[i];
                sk_attn_decode_cfg sc = {0, 0, 0, 0, 0, st};
                cfg_name(runs[nr].name, sizeof(runs[nr].name), 4, &sc, cand[i]);
                snprintf(runs[nr].name + strlen(runs[nr].name),
                         sizeof(runs[nr].name) - strlen(runs[nr].name), "%s",
                         i == 0 ? " (plan)" : "");
                nr++;
            }
        }
    }

    int fails = 0;
    double best = 1e30, v1 = 0;
    int best_i = -1;
    for (int i = 0; i < nr; i++) {
        double err;
        if (check_run(&runs[i], &P, &R, &err)) {
            fails++;
            continue;
        }
        const float us = time_run(&runs[i], &P);
        const double tbs = P.kv_bytes / (us * 1e-6) / 1e12;
        printf("  %-34s %10.1f us  %6.3f TB/s  %5.1f%% of copy   err %.2e\n", runs[i].name, us,
               tbs, 100.0 * tbs * 1e12 / copy_bw, err);
        if (g_trace && runs[i].version != 1) trace_run(&runs[i], &P);
        if (runs[i].version == 1) v1 = us;
        else if (us < best) {
            best = us;
            best_i = i;
        }
        if (i == plan_idx) row->plan_us = us;
    }
    snprintf(row->shape, sizeof(row->shape), "%s", sd->name);
    row->v1_us = v1;
    row->best_us = best_i >= 0 ? best : 0;
    row->best_tbs = best_i >= 0 ? P.kv_bytes / (best * 1e-6) / 1e12 : 0;
    memcpy(row->best, best_i >= 0 ? runs[best_i].name : "-", best_i >= 0 ? sizeof(row->best) : 2);
    memcpy(row->plan, runs[plan_idx].name, sizeof(row->plan));
    row->group = group;
    if (best_i >= 0)
        printf("  best: %s  %.1f us  %.3f TB/s  %.1f%% of copy;  v1/best = %.2fx\n",
               runs[best_i].name, best, row->best_tbs, 100.0 * row->best_tbs * 1e12 / copy_bw,
               v1 / best);

    free_refset(&R);
    for (int i = 0; i < R.n; i++) free(pg[i]);
    free(pg);
    free(hk);
    free(hv);
    free(hq);
    free_problem(&P);
    return fails;
}

/* ---- main --------------------------------------------------------------------------------- */

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    const int do_check = strcmp(mode, "time") != 0, do_time = strcmp(mode, "check") != 0;
    const char *nomq = getenv("AD_NO_MQ");
    g_mq = !(nomq && *nomq && strcmp(nomq, "0") != 0);
    g_cases = getenv("AD_CASES");
    g_nt = getenv("AD_NT") && atoi(getenv("AD_NT")) != 0;
    if (g_cases && !*g_cases) g_cases = NULL;
    g_ns_list = getenv("AD_NS");
    if (g_ns_list && !*g_ns_list) g_ns_list = NULL;
    const char *nol2 = getenv("AD_NO_L2PF");
    g_no_l2pf = nol2 && *nol2 && strcmp(nol2, "0") != 0;
    g_shapes = getenv("AD_SHAPES");
    if (g_shapes && !*g_shapes) g_shapes = NULL;
    if (getenv("AD_PS")) g_ps = atoi(getenv("AD_PS"));
    if (g_ps && g_ps != 16 && g_ps != 32 && g_ps != 64 && g_ps != 128) {
        fprintf(stderr, "AD_PS=%d: the kernels take pages of 16, 32, 64 or 128 tokens\n", g_ps);
        return 2;
    }
    g_ordered = getenv("AD_ORDERED") ? atoi(getenv("AD_ORDERED")) : 0;
    g_trace = getenv("AD_TRACE") && atoi(getenv("AD_TRACE")) != 0;
    sk_attn_decode_set_cluster(g_cluster);
    const char *only4 = getenv("AD_ONLY_V4");
    g_only_v4 = only4 && *only4 && strcmp(only4, "0") != 0;
    if (strcmp(mode, "all") && strcmp(mode, "check") && strcmp(mode, "time")) {
        fprintf(stderr, "usage: %s [all|check|time]\n", argv[0]);
        return 2;
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    g_n_sm = prop.multiProcessorCount;
    printf("device: %s, %d SMs, L2 %.0f MB, %.1f GB\n", prop.name, prop.multiProcessorCount,
           prop.l2CacheSize / 1e6, prop.totalGlobalMem / 1e9);

    if (selftest()) {
        printf("RESULT: FAIL (selftest)\n");
        return 1;
    }

    int fails = 0;
    if (do_check) {
        const double t0 = now_s();
        int runs = 0;
        printf("correctness (tolerance: err <= max(4e-3, 3 x naive bf16 err), <= 1e-2):\n");
        for (size_t i = 0; i < sizeof(k_cases) / sizeof(k_cases[0]); i++)
            if (!g_cases || strstr(k_cases[i].name, g_cases)) fails += run_case(&k_cases[i], &runs);
        printf("correctness: %d runs, %d failed (%.1f s); %ld of them (%ld merged by clusters, "
               "%ld of those by the push merge) also compared bitwise with clusters off\n", runs,
               fails, now_s() - t0, g_cluster_cmp, g_cluster_used, g_push_used);
        if (fails) {
            printf("RESULT: FAIL (%d correctness failures)\n", fails);
            return 1;
        }
    }
    if (do_time) {
        g_cluster = getenv("AD_CLUSTER") ? atoi(getenv("AD_CLUSTER")) : 1;
        sk_attn_decode_set_cluster(g_cluster);
        const double bw = copy_bandwidth();
        printf("\nD2D copy bandwidth (2 GB, read + write): %.3f TB/s\n", bw / 1e12);
        const int ns = (int)(sizeof(k_shapes) / sizeof(k_shapes[0]));
        summary_row rows[sizeof(k_shapes) / sizeof(k_shapes[0])];
        memset(rows, 0, sizeof(rows));
        for (int i = 0; i < ns; i++)
            if (!g_shapes || name_in_list(k_shapes[i].name, g_shapes))
                fails += run_timing(&k_shapes[i], bw, &rows[i], prop.l2CacheSize);
        printf("\n(timing pages: %s, %s)\n", g_ps ? "AD_PS" : "each shape's size",
               g_ordered == 2   ? "dealt round-robin over the sequences (AD_ORDERED=2)"
               : g_ordered      ? "in pool order (AD_ORDERED)"
                                : "a random permutation of the pool");
        printf("\nSUMMARY (copy %.3f TB/s; KV TB/s = K+V bytes / time)\n", bw / 1e12);
        printf("%-28s %10s %10s %7s %6s %8s  %s | entry(plan) us, cfg\n", "shape", "v1 us",
               "best us", "TB/s", "%copy", "v1/best", "best cfg");
        for (int i = 0; i < ns; i++)
            if (rows[i].shape[0])
            printf("%-28s %10.1f %10.1f %7.3f %5.1f%% %7.2fx  %-30s | %.1f %s\n", rows[i].shape,
                   rows[i].v1_us, rows[i].best_us, rows[i].best_tbs,
                   100.0 * rows[i].best_tbs * 1e12 / bw,
                   rows[i].best_us > 0 ? rows[i].v1_us / rows[i].best_us : 0.0, rows[i].best,
                   rows[i].plan_us, rows[i].plan);
        for (int i = 0; i < ns; i++)
            if (rows[i].group == 8 && rows[i].best_us > 0)
                printf("speedup v2 over v1 at group 8, %s: %.2fx (target >= 4x); %.1f%% of copy "
                       "(target >= 80%%)\n", rows[i].shape, rows[i].v1_us / rows[i].best_us,
                       100.0 * rows[i].best_tbs * 1e12 / bw);
    }
    printf("RESULT: %s\n", fails ? "FAIL" : "PASS");
    return fails ? 1 : 0;
}
