/* Workbench (session 28): what a thread-block cluster's barrier and its distributed-shared-memory
 * traffic cost at decode kernel 2's batch-1 shape, in isolation. Inside the 70B INT4 batch-1 step
 * the trace put 6.2 us between kernel 2's blocks finishing their chunk loops (within 0.26 us of
 * each other) and the cluster barrier after the push merge releasing them (3.5 us at 7B, where
 * nothing else runs), against the ~0.2-0.4 us published for Hopper's cluster barrier.
 *
 * 64 blocks of one warp in clusters of NS (2, 4, 8, 16), like kernel 2 at a 70B batch-1 step.
 * Modes (the timed section, thread 0's clock64 around it, and the whole launch in a graph):
 *   0  nothing (the launch alone)
 *   1  one cluster barrier (arrive.release + wait.acquire)
 *   2  the push merge's pattern: a relaxed arrive at the start, its wait, 8 float4 stores a lane
 *      into the peers' shared memory (st.shared::cluster), one barrier, a local read
 *   3  the pull merge's pattern: a barrier, 8 float4 loads a lane from the peers' shared memory
 *      (ld.shared::cluster), a second barrier
 * The reference is a plain computation of what each mode stores (every block's output is
 * checked), so the modes are correct before they are timed.
 *
 * Usage: dev_cluster_sync [reps]   (prints one table; no GPU: exits 0 after saying so) */
#include "backend/cuda/attn_decode.cuh" /* the cluster helpers kernel 2 uses */

#include <cuda_runtime.h>
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

static __device__ __forceinline__ unsigned cluster_rank(void) {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}

/* out[block][lane]: mode 0: rank; 1: rank + 1; 2: the sum over the peers u of (u * 32 + lane)
 * pushed into this block's slots; 3: the same sum pulled from the peers. */
template <int MODE> __global__ void __launch_bounds__(32) k_clus(float *out, long long *cyc, int ns) {
    __shared__ float4 slot[16][32]; /* [source rank][lane] */
    __shared__ float4 mine[32];
    const int lane = threadIdx.x;
    const unsigned me = cluster_rank();
    if (MODE == 2) sk_ad_cluster_arrive_relaxed();
    mine[lane] = make_float4((float)(me * 32 + lane), 0.f, 0.f, 0.f);
    __syncwarp();
    const long long c0 = clock64();
    float v = (float)me;
    if (MODE == 1) {
        sk_ad_cluster_sync();
        v += 1.0f;
    } else if (MODE == 2) {
        sk_ad_cluster_wait();
        const float4 x = mine[lane];
        for (int u = 0; u < ns; u++) sk_ad_st_cl4(sk_ad_mapa(&slot[me][lane], (unsigned)u), x);
        sk_ad_cluster_sync();
        v = 0.0f;
        for (int u = 0; u < ns; u++) v += slot[u][lane].x;
    } else if (MODE == 3) {
        sk_ad_cluster_sync();
        v = 0.0f;
        for (int u = 0; u < ns; u++) {
            v += sk_ad_ld_cl4(sk_ad_mapa(&mine[lane], (unsigned)u)).x;
        }
        sk_ad_cluster_sync();
    }
    const long long c1 = clock64();
    out[blockIdx.x * 32 + lane] = v;
    if (lane == 0) cyc[blockIdx.x] = c1 - c0;
}

typedef void (*kfn)(float *, long long *, int);
static kfn pick(int mode) {
    switch (mode) {
    case 0: return k_clus<0>;
    case 1: return k_clus<1>;
    case 2: return k_clus<2>;
    default: return k_clus<3>;
    }
}

static void launch(int mode, int ns, float *out, long long *cyc, cudaStream_t s) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(BLOCKS);
    cfg.blockDim = dim3(32);
    cfg.stream = s;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = (unsigned)ns;
    at[0].val.clusterDim.y = 1;
    at[0].val.clusterDim.z = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    CK(cudaLaunchKernelEx(&cfg, pick(mode), out, cyc, ns));
}

static int cmp_ll(const void *a, const void *b) {
    const long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}
static int cmp_f(const void *a, const void *b) {
    const float x = *(const float *)a, y = *(const float *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    int ndev = 0;
    if (cudaGetDeviceCount(&ndev) != cudaSuccess || ndev == 0) {
        printf("dev_cluster_sync: no GPU\n");
        return 0;
    }
    const int reps = argc > 1 ? atoi(argv[1]) : 200;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    int clk_khz = 0;
    CK(cudaDeviceGetAttribute(&clk_khz, cudaDevAttrClockRate, 0));
    printf("device: %s, %d SMs, SM clock attribute %.0f MHz; %d blocks of one warp, %d graph "
           "launches a timing\n", prop.name, prop.multiProcessorCount, clk_khz / 1e3, BLOCKS, reps);
    for (int m = 0; m < 4; m++)
        CK(cudaFuncSetAttribute((const void *)pick(m),
                                cudaFuncAttributeNonPortableClusterSizeAllowed, 1));
    float *out;
    long long *cyc;
    CK(cudaMalloc(&out, BLOCKS * 32 * sizeof(float)));
    CK(cudaMalloc(&cyc, BLOCKS * sizeof(long long)));
    cudaStream_t s;
    CK(cudaStreamCreateWithFlags(&s, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    int fails = 0;
    static const char *names[] = {"launch only", "one barrier", "push 8 + barrier",
                                  "barrier + pull 8 + barrier"};
    printf("| mode | cluster | section cycles p50 / p90 (thread 0, all blocks, 20 launches) | "
           "graph us a launch p50 (of 5 graphs) |\n| --- | --- | --- | --- |\n");
    for (int mode = 0; mode < 4; mode++)
        for (int ns = 2; ns <= 16; ns *= 2) {
            /* check: every block's output against the mode's plain value */
            launch(mode, ns, out, cyc, s);
            CK(cudaStreamSynchronize(s));
            float h[BLOCKS * 32];
            CK(cudaMemcpy(h, out, sizeof h, cudaMemcpyDeviceToHost));
            for (int b = 0; b < BLOCKS; b++)
                for (int l = 0; l < 32; l++) {
                    const int r = b % ns;
                    float want = (float)r + (mode == 1 ? 1.0f : 0.0f);
                    if (mode >= 2) {
                        want = 0.0f;
                        for (int u = 0; u < ns; u++) want += (float)(u * 32 + l);
                    }
                    if (h[b * 32 + l] != want) {
                        if (fails < 5)
                            printf("FAIL mode %d cluster %d block %d lane %d: %g, want %g\n", mode,
                                   ns, b, l, h[b * 32 + l], want);
                        fails++;
                    }
                }
            /* section cycles over 20 single launches */
            long long all[20 * BLOCKS];
            for (int i = 0; i < 20; i++) {
                launch(mode, ns, out, cyc, s);
                CK(cudaStreamSynchronize(s));
                CK(cudaMemcpy(all + i * BLOCKS, cyc, BLOCKS * sizeof(long long),
                              cudaMemcpyDeviceToHost));
            }
            qsort(all, 20 * BLOCKS, sizeof(long long), cmp_ll);
            /* graph of reps launches, 5 times */
            cudaGraph_t g;
            cudaGraphExec_t ge;
            CK(cudaStreamBeginCapture(s, cudaStreamCaptureModeGlobal));
            for (int i = 0; i < reps; i++) launch(mode, ns, out, cyc, s);
            CK(cudaStreamEndCapture(s, &g));
            CK(cudaGraphInstantiate(&ge, g, 0));
            CK(cudaGraphLaunch(ge, s)); /* warm-up */
            CK(cudaStreamSynchronize(s));
            float t[5];
            for (int i = 0; i < 5; i++) {
                CK(cudaEventRecord(e0, s));
                CK(cudaGraphLaunch(ge, s));
                CK(cudaEventRecord(e1, s));
                CK(cudaEventSynchronize(e1));
                CK(cudaEventElapsedTime(&t[i], e0, e1));
                t[i] = t[i] * 1000.0f / (float)reps;
            }
            qsort(t, 5, sizeof(float), cmp_f);
            CK(cudaGraphExecDestroy(ge));
            CK(cudaGraphDestroy(g));
            printf("| %s | %d | %lld / %lld | %.2f |\n", names[mode], ns, all[10 * BLOCKS],
                   all[(int)(0.9 * (20 * BLOCKS - 1))], t[2]);
        }
    printf("RESULT: %s (%d wrong outputs)\n", fails ? "FAIL" : "PASS", fails);
    return fails ? 1 : 0;
}
