/* Decode attention over a bf16 KV cache (one new token per sequence, causal over its whole
 * cache): kernel workbench in llm.c's dev/cuda style.
 *
 * Build and run from the repository root:
 *   nvcc -O3 -gencode=arch=compute_90a,code=sm_90a -Isrc -o /tmp/attention_contig \
 *        dev/cuda/attention_contig.cu && /tmp/attention_contig [version] [check]
 * (version: run only that one, 0 or omitted: all; check: stop after the correctness checks, e.g.
 * under compute-sanitizer).
 *
 * version 1: sk_attn_kernel1 (src/backend/cuda/attention.cuh, the backend's kernel, included
 *            as is): one block of 128 threads per (query head, token); online softmax in fp32
 *            over chunks of 128 positions; thread-per-position scores with 16-byte K loads;
 *            row groups of head_dim/2 threads accumulate V. Reads each KV head once per query
 *            head of its group (L2 absorbs most of the repeats).
 *
 * main: draws random inputs (never zeros; q scaled so the softmax is far from uniform), checks
 * every version at every shape against attention_cpu (double accumulation) by normalised error
 * max|gpu - cpu| / max|cpu| <= 4.5e-3 (bf16 output rounding is 2^-8 = 3.9e-3 at most), then
 * times each version: L2 flushed before every run, CUDA events, median of 50 after 5 warm-ups.
 * Prints the time and the GB/s of KV read (each sequence's K and V once: the unique bytes), next
 * to the device-to-device copy bandwidth measured in the same run as the ceiling. */
#include "backend/cuda/attention.cuh"

#include <cuda_runtime.h>
#include <math.h>
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

/* ---- host bf16 -------------------------------------------------------------------------- */

static uint16_t f2bf_bits(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u += 0x7fff + ((u >> 16) & 1); /* round to nearest even (inputs are finite) */
    return (uint16_t)(u >> 16);
}
static float bf_bits2f(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

static unsigned long long g_rng = 0x853c49e6748fea9bull;
/* Uniform in [lo, hi), as bf16 bits. */
static uint16_t rnd_bf(float lo, float hi) {
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    float u = (float)((g_rng >> 40) & 0xffffff) / 16777216.0f;
    return f2bf_bits(lo + (hi - lo) * u);
}

/* ---- CPU reference ---------------------------------------------------------------------- */

/* out[t, h*hd + d] for t < T: softmax over positions 0..pos[t] of sequence seq[t] of
 * q.k * scale, times v; cache layout [n_seq][n_ctx][KVH][hd]; double accumulation. */
static void attention_cpu(const uint16_t *q, int q_stride, const uint16_t *kc, const uint16_t *vc,
                          const int32_t *pos, const int32_t *seq, int T, int H, int KVH, int hd,
                          int n_ctx, float *out) {
    const int group = H / KVH;
    const double scale = 1.0 / sqrt((double)hd);
    double *s = (double *)malloc(sizeof(double) * (size_t)n_ctx);
    double *o = (double *)malloc(sizeof(double) * (size_t)hd);
    for (int t = 0; t < T; t++) {
        for (int h = 0; h < H; h++) {
            const uint16_t *qh = q + (size_t)t * q_stride + (size_t)h * hd;
            const int P = pos[t] + 1;
            double mx = -INFINITY;
            for (int p = 0; p < P; p++) {
                const uint16_t *kr =
                    kc + (((size_t)seq[t] * n_ctx + p) * KVH + h / group) * (size_t)hd;
                double d = 0;
                for (int i = 0; i < hd; i++) d += (double)bf_bits2f(qh[i]) * bf_bits2f(kr[i]);
                s[p] = d * scale;
                if (s[p] > mx) mx = s[p];
            }
            double sum = 0;
            for (int p = 0; p < P; p++) sum += (s[p] = exp(s[p] - mx));
            for (int i = 0; i < hd; i++) o[i] = 0;
            for (int p = 0; p < P; p++) {
                const uint16_t *vr =
                    vc + (((size_t)seq[t] * n_ctx + p) * KVH + h / group) * (size_t)hd;
                for (int i = 0; i < hd; i++) o[i] += s[p] * bf_bits2f(vr[i]);
            }
            for (int i = 0; i < hd; i++)
                out[(size_t)t * H * hd + (size_t)h * hd + i] = (float)(o[i] / sum);
        }
    }
    free(s);
    free(o);
}

/* ---- versions --------------------------------------------------------------------------- */

static void attention_decode1(const sk_attn1_params *p, cudaStream_t s) {
    sk_attn_kernel1<<<dim3((unsigned)p->n_heads, (unsigned)p->T), SK_ATTN1_THREADS, 0, s>>>(*p);
    CUDA_CHECK(cudaGetLastError());
}

typedef void (*attn_fn)(const sk_attn1_params *p, cudaStream_t s);
static const struct {
    const char *name;
    attn_fn fn;
} k_versions[] = {
    {"kernel1 (block per query head, online softmax)", attention_decode1},
};
#define N_VERSIONS ((int)(sizeof k_versions / sizeof k_versions[0]))

/* ---- shapes ------------------------------------------------------------------------------- */

typedef struct shape {
    const char *what;
    int B, L, H, KVH, hd; /* B sequences; sequence b has length L - 3b (its token at L - 3b - 1) */
} shape;

static const shape k_shapes[] = {
    {"group 1 (MHA), hd 128", 4, 1000, 32, 32, 128},
    {"group 4, hd 128 (Llama-3-8B)", 8, 4099, 32, 8, 128},
    {"group 8, hd 128 (Llama-3-70B)", 4, 2051, 64, 8, 128},
    {"group 29, hd 64 (Falcon-180B)", 2, 1501, 232, 8, 64},
    {"MQA 71 heads, hd 64 (Falcon-7B)", 4, 2003, 71, 1, 64},
    {"group 1, hd 80", 2, 777, 32, 32, 80},
    {"group 3, hd 64 (SmolLM2-135M)", 1, 9, 9, 3, 64},
    {"group 4, hd 128, length 1", 3, 7, 8, 2, 128},
};
#define N_SHAPES ((int)(sizeof k_shapes / sizeof k_shapes[0]))

typedef struct problem {
    shape sh;
    int n_ctx, q_stride;
    uint16_t *hq, *hk, *hv; /* host: q [B, H*hd]; caches [B][n_ctx][KVH][hd] */
    int32_t hpos[64], hseq[64];
    bf16 *dq, *dk, *dv, *dout;
    int32_t *dpos, *dseq;
    double kv_bytes; /* unique K and V bytes read */
} problem;

static void problem_make(problem *pr, const shape *sh) {
    memset(pr, 0, sizeof *pr);
    pr->sh = *sh;
    const int B = sh->B, H = sh->H, KVH = sh->KVH, hd = sh->hd;
    pr->n_ctx = sh->L;
    pr->q_stride = H * hd;
    const size_t nq = (size_t)B * H * hd, nkv = (size_t)B * pr->n_ctx * KVH * hd;
    pr->hq = (uint16_t *)malloc(nq * 2);
    pr->hk = (uint16_t *)malloc(nkv * 2);
    pr->hv = (uint16_t *)malloc(nkv * 2);
    for (size_t i = 0; i < nq; i++) pr->hq[i] = rnd_bf(-6.0f, 6.0f);
    for (size_t i = 0; i < nkv; i++) pr->hk[i] = rnd_bf(-1.0f, 1.0f);
    for (size_t i = 0; i < nkv; i++) pr->hv[i] = rnd_bf(-1.0f, 1.0f);
    pr->kv_bytes = 0;
    for (int b = 0; b < B; b++) {
        int len = sh->L - 3 * b;
        if (len < 1) len = 1;
        pr->hpos[b] = len - 1;
        pr->hseq[b] = b;
        pr->kv_bytes += 2.0 * len * KVH * hd * 2;
    }
    CUDA_CHECK(cudaMalloc(&pr->dq, nq * 2));
    CUDA_CHECK(cudaMalloc(&pr->dout, nq * 2));
    CUDA_CHECK(cudaMalloc(&pr->dk, nkv * 2));
    CUDA_CHECK(cudaMalloc(&pr->dv, nkv * 2));
    CUDA_CHECK(cudaMalloc(&pr->dpos, sizeof(int32_t) * B));
    CUDA_CHECK(cudaMalloc(&pr->dseq, sizeof(int32_t) * B));
    CUDA_CHECK(cudaMemcpy(pr->dq, pr->hq, nq * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pr->dk, pr->hk, nkv * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pr->dv, pr->hv, nkv * 2, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pr->dpos, pr->hpos, sizeof(int32_t) * B, cudaMemcpyHostToDevice));
    CUDA_CHECK(cudaMemcpy(pr->dseq, pr->hseq, sizeof(int32_t) * B, cudaMemcpyHostToDevice));
}

static void problem_free(problem *pr) {
    free(pr->hq);
    free(pr->hk);
    free(pr->hv);
    CUDA_CHECK(cudaFree(pr->dq));
    CUDA_CHECK(cudaFree(pr->dout));
    CUDA_CHECK(cudaFree(pr->dk));
    CUDA_CHECK(cudaFree(pr->dv));
    CUDA_CHECK(cudaFree(pr->dpos));
    CUDA_CHECK(cudaFree(pr->dseq));
}

static sk_attn1_params problem_params(const problem *pr) {
    sk_attn1_params p;
    memset(&p, 0, sizeof p);
    p.q = pr->dq;
    p.out = pr->dout;
    p.k_cache = pr->dk;
    p.v_cache = pr->dv;
    p.pos = pr->dpos;
    p.seq = pr->dseq;
    p.T = pr->sh.B;
    p.q_stride = pr->q_stride;
    p.n_heads = pr->sh.H;
    p.n_kv_heads = pr->sh.KVH;
    p.head_dim = pr->sh.hd;
    p.n_ctx = pr->n_ctx;
    /* Pages of one token: the paged offset reduces to this workbench's [B][n_ctx][KVH][hd]. */
    p.page_size = 1;
    p.pages_per_seq = pr->n_ctx;
    p.scale = 1.0f / sqrtf((float)pr->sh.hd);
    return p;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

/* Median ms of `reps` runs, each after an L2 flush (a write of flush_bytes). */
static float time_version(attn_fn fn, const sk_attn1_params *p, void *flush, size_t flush_bytes,
                          int warmup, int reps) {
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    for (int i = 0; i < warmup; i++) fn(p, 0);
    float *ms = (float *)malloc(sizeof(float) * (size_t)reps);
    for (int i = 0; i < reps; i++) {
        CUDA_CHECK(cudaMemsetAsync(flush, i & 0xff, flush_bytes, 0));
        CUDA_CHECK(cudaEventRecord(e0, 0));
        fn(p, 0);
        CUDA_CHECK(cudaEventRecord(e1, 0));
        CUDA_CHECK(cudaEventSynchronize(e1));
        CUDA_CHECK(cudaEventElapsedTime(&ms[i], e0, e1));
    }
    qsort(ms, (size_t)reps, sizeof(float), cmp_float);
    float med = ms[reps / 2];
    free(ms);
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    return med;
}

/* Device-to-device copy bandwidth (bytes read + written per second), the ceiling for a
 * bandwidth-bound kernel, measured here with the same method. */
static double copy_ceiling_gbs(void) {
    const size_t bytes = (size_t)1 << 30;
    void *a, *b;
    CUDA_CHECK(cudaMalloc(&a, bytes));
    CUDA_CHECK(cudaMalloc(&b, bytes));
    CUDA_CHECK(cudaMemset(a, 1, bytes));
    cudaEvent_t e0, e1;
    CUDA_CHECK(cudaEventCreate(&e0));
    CUDA_CHECK(cudaEventCreate(&e1));
    float ms[11];
    for (int i = 0; i < 13; i++) {
        CUDA_CHECK(cudaEventRecord(e0, 0));
        CUDA_CHECK(cudaMemcpyAsync(b, a, bytes, cudaMemcpyDeviceToDevice, 0));
        CUDA_CHECK(cudaEventRecord(e1, 0));
        CUDA_CHECK(cudaEventSynchronize(e1));
        if (i >= 2) CUDA_CHECK(cudaEventElapsedTime(&ms[i - 2], e0, e1));
    }
    qsort(ms, 11, sizeof(float), cmp_float);
    CUDA_CHECK(cudaFree(a));
    CUDA_CHECK(cudaFree(b));
    CUDA_CHECK(cudaEventDestroy(e0));
    CUDA_CHECK(cudaEventDestroy(e1));
    return 2.0 * (double)bytes / (ms[5] * 1e-3) / 1e9;
}

int main(int argc, char **argv) {
    const int only = argc > 1 ? atoi(argv[1]) : 0;
    const int check_only = argc > 2 && strcmp(argv[2], "check") == 0;
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    printf("device: %s, %d SMs, L2 %d MB\n", prop.name, prop.multiProcessorCount,
           prop.l2CacheSize >> 20);

    /* Check every version at every shape. */
    int failures = 0;
    problem *prs = (problem *)calloc(N_SHAPES, sizeof(problem));
    for (int si = 0; si < N_SHAPES; si++) {
        problem *pr = &prs[si];
        problem_make(pr, &k_shapes[si]);
        const shape *sh = &pr->sh;
        const size_t nout = (size_t)sh->B * sh->H * sh->hd;
        float *ref = (float *)malloc(sizeof(float) * nout);
        float *got = (float *)malloc(sizeof(float) * nout);
        uint16_t *gb = (uint16_t *)malloc(2 * nout);
        attention_cpu(pr->hq, pr->q_stride, pr->hk, pr->hv, pr->hpos, pr->hseq, sh->B, sh->H,
                      sh->KVH, sh->hd, pr->n_ctx, ref);
        double rmax = 0;
        for (size_t i = 0; i < nout; i++) rmax = fmax(rmax, fabs(ref[i]));
        for (int v = 0; v < N_VERSIONS; v++) {
            if (only && only != v + 1) continue;
            const sk_attn1_params p = problem_params(pr);
            CUDA_CHECK(cudaMemset(pr->dout, 0xff, 2 * nout)); /* NaN: unwritten outputs show */
            k_versions[v].fn(&p, 0);
            CUDA_CHECK(cudaDeviceSynchronize());
            CUDA_CHECK(cudaMemcpy(gb, pr->dout, 2 * nout, cudaMemcpyDeviceToHost));
            double dmax = 0;
            for (size_t i = 0; i < nout; i++) {
                got[i] = bf_bits2f(gb[i]);
                double d = fabs((double)got[i] - ref[i]);
                if (!(d <= dmax)) dmax = d != d ? INFINITY : d;
            }
            const double err = dmax / (rmax > 1e-30 ? rmax : 1e-30);
            const int ok = err <= 4.5e-3;
            failures += !ok;
            printf("%s v%d  %-34s B=%d L=%d H=%d KVH=%d hd=%d  err %.2e\n", ok ? "ok  " : "FAIL",
                   v + 1, sh->what, sh->B, sh->L, sh->H, sh->KVH, sh->hd, err);
        }
        free(ref);
        free(got);
        free(gb);
    }
    if (failures) {
        printf("%d check(s) failed: not timing\n", failures);
        return 1;
    }
    if (check_only) {
        for (int si = 0; si < N_SHAPES; si++) problem_free(&prs[si]);
        free(prs);
        return 0;
    }

    /* Time. */
    const double ceiling = copy_ceiling_gbs();
    printf("device-to-device copy: %.0f GB/s (read + write), the ceiling below\n", ceiling);
    const size_t flush_bytes = (size_t)2 * prop.l2CacheSize;
    void *flush;
    CUDA_CHECK(cudaMalloc(&flush, flush_bytes));
    for (int si = 0; si < N_SHAPES; si++) {
        problem *pr = &prs[si];
        const sk_attn1_params p = problem_params(pr);
        for (int v = 0; v < N_VERSIONS; v++) {
            if (only && only != v + 1) continue;
            const float ms = time_version(k_versions[v].fn, &p, flush, flush_bytes, 5, 50);
            const double gbs = pr->kv_bytes / (ms * 1e-3) / 1e9;
            printf("v%d  %-34s B=%d L=%d  %9.1f us  %7.1f GB/s of KV  (%4.1f%% of copy)\n", v + 1,
                   pr->sh.what, pr->sh.B, pr->sh.L, ms * 1e3, gbs, 100.0 * gbs / ceiling);
        }
        problem_free(pr);
    }
    CUDA_CHECK(cudaFree(flush));
    free(prs);
    return 0;
}
