/* Sampling on the device: the backend's sample op, draw for draw the reference sk_sample_core
 * (src/backend/sample.c) for rows with 1 <= top_k <= SK_SAMPLE_MAX_K, top_k < N.
 *
 * One block of 512 threads per row:
 *  1. the k-th largest logit by radix selection on order-preserving 32-bit keys (four passes of
 *     8 bits, a 256-bin histogram in shared memory): threshold key T and how many of the
 *     elements equal to T are kept (`rem`);
 *  2. the candidates: every element above T (any order), and the `rem` elements equal to T with
 *     the lowest ids (a pass over contiguous id ranges with a block prefix sum), which is the
 *     reference's order under ties;
 *  3. a bitonic sort of the candidates by (logit descending, id ascending) in shared memory;
 *  4. the exponentials in double in parallel (rounded to float as the reference does), then one
 *     thread runs the reference's sums, top-p, min-p and the draw in double, in the same order,
 *     so the results agree except where the device's double exp and the host's differ by an ulp
 *     at a float rounding boundary (rare; the test counts such near-ties).
 * Logits are finite or infinite; a NaN is keyed below everything (see smp_key). */
#include "backend/cuda/common.cuh"

#include <limits.h>
#include <math.h>
#include <string.h>

#define SMP_THREADS 512

/* Larger float, larger key. -0.0 is keyed as +0.0 (they compare equal, so the lower id must
 * win, as in the reference and the argmax ops) and NaN below everything (never drawn while a
 * number remains; the reference and the argmax ops ignore NaNs too). */
static __device__ __forceinline__ uint32_t smp_key(float v) {
    if (v != v) return 0u;
    const uint32_t b = __float_as_uint(v == 0.0f ? 0.0f : v);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}

/* Block-wide exclusive prefix sum of one int per thread (SMP_THREADS threads); returns the
 * thread's prefix, *total the sum. Uses ws[32 + 1]. */
static __device__ int smp_scan(int v, int *ws, int *total) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int x = v;
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        const int y = __shfl_up_sync(0xffffffffu, x, o);
        if (lane >= o) x += y;
    }
    if (lane == 31) ws[warp] = x;
    __syncthreads();
    if (warp == 0) {
        int w = lane < SMP_THREADS / 32 ? ws[lane] : 0;
#pragma unroll
        for (int o = 1; o < 32; o <<= 1) {
            const int y = __shfl_up_sync(0xffffffffu, w, o);
            if (lane >= o) w += y;
        }
        if (lane < SMP_THREADS / 32) ws[lane] = w; /* inclusive over warps */
        if (lane == SMP_THREADS / 32 - 1) ws[32] = w;
    }
    __syncthreads();
    const int before = (warp > 0 ? ws[warp - 1] : 0) + x - v;
    *total = ws[32];
    __syncthreads();
    return before;
}

static __device__ __forceinline__ bool smp_before(float av, int ai, float bv, int bi) {
    return av > bv || (av == bv && ai < bi);
}

static __global__ void __launch_bounds__(SMP_THREADS)
    sample_kernel(const float *x, int N, const sk_sample_row *rows, int32_t *out) {
    __shared__ int hist[256];
    __shared__ int ws[33];
    __shared__ uint32_t s_prefix, s_mask;
    __shared__ int s_rem, s_n;
    __shared__ float cv[SK_SAMPLE_MAX_K];
    __shared__ int ci[SK_SAMPLE_MAX_K];
    __shared__ float ce[SK_SAMPLE_MAX_K];
    const float *lg = x + (size_t)blockIdx.x * (size_t)N;
    const sk_sample_row r = rows[blockIdx.x];
    const int k = r.top_k, tid = threadIdx.x;

    /* 1. radix selection of the k-th largest key */
    if (tid == 0) {
        s_prefix = 0;
        s_mask = 0;
        s_rem = k;
    }
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = tid; i < 256; i += SMP_THREADS) hist[i] = 0;
        __syncthreads();
        const uint32_t prefix = s_prefix, mask = s_mask;
        for (int i = tid; i < N; i += SMP_THREADS) {
            const uint32_t key = smp_key(lg[i]);
            if ((key & mask) == prefix) atomicAdd(&hist[(key >> shift) & 255u], 1);
        }
        __syncthreads();
        if (tid == 0) {
            int rem = s_rem, d = 255;
            for (; d > 0; d--) {
                if (hist[d] >= rem) break;
                rem -= hist[d];
            }
            s_rem = rem;
            s_prefix = prefix | ((uint32_t)d << shift);
            s_mask = mask | (255u << shift);
        }
        __syncthreads();
    }
    const uint32_t T = s_prefix;
    const int rem = s_rem; /* elements equal to T to keep: the lowest ids */

    /* 2. candidates: above T anywhere in [0, k - rem), ties in id order after them */
    if (tid == 0) s_n = 0;
    __syncthreads();
    for (int i = tid; i < N; i += SMP_THREADS) {
        const float v = lg[i];
        if (smp_key(v) > T) {
            const int at = atomicAdd(&s_n, 1);
            cv[at] = v;
            ci[at] = i;
        }
    }
    const int chunk = (N + SMP_THREADS - 1) / SMP_THREADS;
    const int lo = tid * chunk, hi = min(N, lo + chunk);
    int mine = 0;
    for (int i = lo; i < hi; i++) mine += smp_key(lg[i]) == T;
    int total;
    int rank = smp_scan(mine, ws, &total); /* syncs: s_n final after it */
    const int base = k - rem;
    for (int i = lo; i < hi && rank < rem; i++) {
        const float v = lg[i];
        if (smp_key(v) == T) {
            cv[base + rank] = v;
            ci[base + rank] = i;
            rank++;
        }
    }
    /* pad to a power of two with entries that sort last */
    int P = 1;
    while (P < k) P <<= 1;
    for (int i = k + tid; i < P; i += SMP_THREADS) {
        cv[i] = -INFINITY;
        ci[i] = INT_MAX;
    }
    __syncthreads();

    /* 3. bitonic sort, best first */
    for (int size = 2; size <= P; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = tid; i < P; i += SMP_THREADS) {
                const int j = i ^ stride;
                if (j > i) {
                    const bool up = (i & size) == 0; /* this run ascends in "best first" order */
                    const bool jb = smp_before(cv[j], ci[j], cv[i], ci[i]);
                    if (jb == up) {
                        const float tv = cv[i];
                        const int ti = ci[i];
                        cv[i] = cv[j];
                        ci[i] = ci[j];
                        cv[j] = tv;
                        ci[j] = ti;
                    }
                }
            }
            __syncthreads();
        }
    }

    /* 4. exponentials in parallel, then the reference's arithmetic in order */
    const double inv_t = 1.0 / (double)r.temp, mx = (double)cv[0];
    for (int i = tid; i < k; i += SMP_THREADS) ce[i] = (float)exp(((double)cv[i] - mx) * inv_t);
    __syncthreads();
    if (tid == 0) {
        int n = k;
        double sum = 0.0;
        for (int i = 0; i < n; i++) sum += ce[i];
        for (int i = 0; i < n; i++) ce[i] = (float)(ce[i] / sum);
        if (r.top_p < 1.0f) {
            double cum = 0.0;
            int keep = n;
            for (int i = 0; i < n; i++) {
                cum += ce[i];
                if (cum >= (double)r.top_p) {
                    keep = i + 1;
                    break;
                }
            }
            n = keep;
        }
        if (r.min_p > 0.0f) {
            const float thr = r.min_p * ce[0];
            int keep = 1;
            while (keep < n && ce[keep] >= thr) keep++;
            n = keep;
        }
        double tot = 0.0;
        for (int i = 0; i < n; i++) tot += ce[i];
        const double xr = r.u * tot;
        double cum = 0.0;
        int pick = ci[n - 1];
        for (int i = 0; i < n; i++) {
            cum += ce[i];
            if (xr < cum) {
                pick = ci[i];
                break;
            }
        }
        out[blockIdx.x] = pick;
    }
}

void sk_cuda_sample(sk_backend *be, const void *x, int T, int N, const sk_sample_row *rows,
                    int32_t *out_host) {
    cuda_ctx *c = sk_cuda_ctx(be);
    if (T <= 0) return;
    SK_ASSERT(x && rows && out_host && N > 0);
    for (int t = 0; t < T; t++)
        SK_ASSERT(rows[t].temp > 0.0f && rows[t].top_k >= 1 &&
                  rows[t].top_k <= SK_SAMPLE_MAX_K && rows[t].top_k < N);
    const size_t row_bytes = sizeof(sk_sample_row) + sizeof(int32_t);
    if (T > c->sample_cap) {
        /* grown on demand (a few dozen bytes per row); never inside a capture */
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        if (c->d_sample) CUDA_CHECK(cudaFree(c->d_sample));
        if (c->h_sample) CUDA_CHECK(cudaFreeHost(c->h_sample));
        const int cap = T > 2 * c->sample_cap ? T : 2 * c->sample_cap;
        CUDA_CHECK(cudaMalloc(&c->d_sample, row_bytes * (size_t)cap));
        CUDA_CHECK(cudaMallocHost(&c->h_sample, row_bytes * (size_t)cap));
        c->sample_cap = cap;
    }
    /* [cap] rows then [cap] tokens */
    sk_sample_row *hr = (sk_sample_row *)c->h_sample;
    sk_sample_row *dr = (sk_sample_row *)c->d_sample;
    int32_t *ht = (int32_t *)(hr + c->sample_cap), *dt = (int32_t *)(dr + c->sample_cap);
    memcpy(hr, rows, sizeof(sk_sample_row) * (size_t)T);
    CUDA_CHECK(cudaMemcpyAsync(dr, hr, sizeof(sk_sample_row) * (size_t)T, cudaMemcpyHostToDevice,
                               c->stream));
    sample_kernel<<<T, SMP_THREADS, 0, c->stream>>>((const float *)x, N, dr, dt);
    CUDA_CHECK_LAUNCH();
    CUDA_CHECK(cudaMemcpyAsync(ht, dt, sizeof(int32_t) * (size_t)T, cudaMemcpyDeviceToHost,
                               c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
    memcpy(out_host, ht, sizeof(int32_t) * (size_t)T);
}
