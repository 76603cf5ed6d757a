/* Workbench (session 28): what straight-line code costs when it runs cold. Inside the 70B INT4
 * batch-1 step, decode kernel 2's merge code (a few hundred instructions run once a layer) took
 * 3-6 us where the same operations alone take under 1 us (dev/cuda/cluster_sync.cu); the working
 * explanation is instruction fetch: ~450 MB of weight streaming a layer evicts the kernel's code
 * from L2, and other kernels' code evicts it from the SMs' instruction caches.
 *
 * The body: NI x 8 independent FFMA chains, fully unrolled (about 8 NI instructions, 16 bytes
 * each), timed by thread 0's clock64 in 64 blocks of one warp (kernel 2's batch-1 grid). It is
 * timed after four preludes:
 *   warm      the same kernel just ran (code in the SMs' caches and L2)
 *   l2        a kernel streaming 1 GB through L2 ran before (data evicts the code from L2)
 *   code      8 other instances of the body (different constants, so different code) ran before
 *   both      the two
 * Each timing is the median over 20 trials of the median block. The body's output is checked
 * against the same arithmetic on the host.
 *
 * Usage: dev_cold_code   (no GPU: exits 0 after saying so) */
#include <cuda_runtime.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "CUDA error %s at %s:%d: %s\n", cudaGetErrorName(e_), __FILE__,       \
                    __LINE__, cudaGetErrorString(e_));                                             \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

#define BLOCKS 64
#define NI 256 /* steps of 8 FFMAs: ~2,048 instructions, ~32 KB of code */

/* The multiplier of step i of instance S (an immediate in each FFMA, so every instance's code
 * differs). */
static __host__ __device__ __forceinline__ float coef(int s, int i) {
    return 1.0f + (float)((i * 37 + s * 11) % 97) * (1.0f / 4096.0f);
}

template <int S> __global__ void __launch_bounds__(32) k_body(float *out, long long *cyc) {
    float a[8];
#pragma unroll
    for (int k = 0; k < 8; k++) a[k] = (float)(threadIdx.x + k) * (1.0f / 64.0f);
    __syncwarp();
    const long long c0 = clock64();
#pragma unroll
    for (int i = 0; i < NI; i++)
#pragma unroll
        for (int k = 0; k < 8; k++) a[k] = fmaf(a[k], coef(S, i), -0.5f * (1.0f / 64.0f));
    float v = 0.0f;
#pragma unroll
    for (int k = 0; k < 8; k++) v += a[k];
    const long long c1 = clock64();
    out[blockIdx.x * 32 + threadIdx.x] = v;
    if (threadIdx.x == 0) cyc[blockIdx.x] = c1 - c0;
}

/* Streams n floats (reads every one, writes one word a block). */
__global__ void k_stream(const float4 *p, size_t n4, float *sink) {
    float s = 0.0f;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n4;
         i += (size_t)gridDim.x * blockDim.x) {
        const float4 x = p[i];
        s += x.x + x.y + x.z + x.w;
    }
    if (s == 12345.0f) sink[blockIdx.x] = s;
}

typedef void (*kfn)(float *, long long *);
static const kfn k_inst[9] = {k_body<0>, k_body<1>, k_body<2>, k_body<3>, k_body<4>,
                              k_body<5>, k_body<6>, k_body<7>, k_body<8>};

static int cmp_ll(const void *a, const void *b) {
    const long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int main(void) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("dev_cold_code: no GPU\n");
        return 0;
    }
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const size_t n4 = ((size_t)1 << 30) / 16; /* 1 GB */
    float4 *big;
    float *out, *sink;
    long long *cyc;
    CK(cudaMalloc(&big, n4 * 16));
    CK(cudaMemset(big, 0, n4 * 16));
    CK(cudaMalloc(&out, BLOCKS * 32 * sizeof(float)));
    CK(cudaMalloc(&sink, 4096 * sizeof(float)));
    CK(cudaMalloc(&cyc, BLOCKS * sizeof(long long)));
    printf("device: %s; body: %d x 8 FFMA a thread, %d blocks of one warp\n", prop.name, NI,
           BLOCKS);

    /* check instance 0's output against the host */
    int fails = 0;
    k_inst[0]<<<BLOCKS, 32>>>(out, cyc);
    CK(cudaDeviceSynchronize());
    float h[BLOCKS * 32];
    CK(cudaMemcpy(h, out, sizeof h, cudaMemcpyDeviceToHost));
    for (int l = 0; l < 32; l++) {
        float v = 0.0f;
        for (int k = 0; k < 8; k++) {
            float a = (float)(l + k) * (1.0f / 64.0f);
            for (int i = 0; i < NI; i++) a = fmaf(a, coef(0, i), -0.5f * (1.0f / 64.0f));
            v += a;
        }
        for (int b = 0; b < BLOCKS; b++)
            if (h[b * 32 + l] != v) {
                if (fails < 3) printf("FAIL block %d lane %d: %g, want %g\n", b, l, h[b * 32 + l], v);
                fails++;
            }
    }

    static const char *names[] = {"warm", "l2", "code", "both"};
    printf("| prelude | body cycles, median block (median of 20) | p90 block | us at 1.98 GHz |\n"
           "| --- | --- | --- | --- |\n");
    for (int mode = 0; mode < 4; mode++) {
        long long med[20], p90[20];
        for (int trial = 0; trial < 20; trial++) {
            if (mode == 0) k_inst[0]<<<BLOCKS, 32>>>(out, cyc);
            if (mode == 1 || mode == 3) k_stream<<<4 * prop.multiProcessorCount, 512>>>(big, n4, sink);
            if (mode == 2 || mode == 3)
                for (int s = 1; s < 9; s++) k_inst[s]<<<4 * prop.multiProcessorCount, 32>>>(out, cyc);
            k_inst[0]<<<BLOCKS, 32>>>(out, cyc);
            CK(cudaDeviceSynchronize());
            long long c[BLOCKS];
            CK(cudaMemcpy(c, cyc, sizeof c, cudaMemcpyDeviceToHost));
            qsort(c, BLOCKS, sizeof(long long), cmp_ll);
            med[trial] = c[BLOCKS / 2];
            p90[trial] = c[(int)(0.9 * (BLOCKS - 1))];
        }
        qsort(med, 20, sizeof(long long), cmp_ll);
        qsort(p90, 20, sizeof(long long), cmp_ll);
        printf("| %s | %lld | %lld | %.2f |\n", names[mode], med[10], p90[10], med[10] / 1980.0);
    }
    printf("RESULT: %s (%d wrong outputs)\n", fails ? "FAIL" : "PASS", fails);
    CK(cudaFree(big));
    return fails ? 1 : 0;
}
