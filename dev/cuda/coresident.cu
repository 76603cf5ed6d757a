/* Workbench (session 29): what a co-resident kernel's memory traffic does to decode kernel 2's
 * push merge (its DSMEM stores and cluster barrier). Session 28 measured that section at 0.72 us
 * alone (dev/cuda/cluster_sync.cu) against 6.2 us inside the 70B INT4 batch-1 step (3.5 at 7B),
 * with the blocks arriving within 0.26 us of each other; the SM clock under the power cap swings
 * 1,440-1,965 MHz (awq-speed.md session 23), which could explain 1.4x, not 5-9x. In the step the
 * next product (o) is launched by kernel 2's trigger (programmatic dependent launch) and its
 * blocks, on the same SMs, fill their rings before their griddepcontrol.wait: a burst of DRAM
 * reads issued from the same SMs while kernel 2 merges.
 *
 * The victim: 64 blocks of one warp in clusters of 8 (kernel 2 at a 70B batch-1 step); each
 * block spins SPIN cycles (its chunk loop's time), triggers the next launch (at its start or after
 * the spin), then runs the push merge's section: the wait of a barrier arrived at the start,
 * 8 float4 stores a lane into the peers' shared memory, one cluster barrier, a local read.
 * Thread 0 records the section's clock64 cycles and %globaltimer ns. Every output is checked.
 *
 * The aggressor (launched after each victim; with the programmatic-serialization attribute it
 * starts once every victim block has triggered, as o does after kernel 2), AGG_BLOCKS blocks an
 * SM of 256 threads, by mode:
 *   0  nothing before griddepcontrol.wait (residency only)
 *   1  cp.async: every thread copies D 16-byte pieces into shared memory before the wait (as the
 *      tq ring's fill: the default o at 70B batch 1), waits for them after it
 *   2  bulk copies: one thread issues D / 2 copies of 16 KB before the wait (the tb feed's way)
 *   3  ld.global: every thread loads D 16-byte pieces into registers before the wait
 *   4  mode 2 plus a producer that spins on an mbarrier (try_wait) until the other warps have
 *      passed the wait (the tb producer's ring refill)
 *   5  ~2,050 straight-line instructions before the wait (its code arriving cold)
 * Each aggressor launch reads fresh bytes of a 2 GB buffer (from DRAM, not L2).
 *
 * Variants: the victim alone; victim + aggressor without the attribute (serial, the same work);
 * victim + aggressor with it, per mode, triggers at start and after the spin; and with a global
 * store of 16 bytes a lane just before the section (every block, or rank 0 of each cluster:
 * kernel 2's new K/V row), which the barrier's release has to see performed; and with the
 * section `post` cycles after the trigger, so that it meets the aggressor's blocks as they start
 * (without it the section is over before they do). The icache rows: the victim with ~260
 * straight-line instructions after its barrier, every SM's instruction caches (and L2) cleared
 * of its code before each pair by 8 evictor kernels of ~32 KB of code (and a 256 MB read), alone
 * or with an aggressor (mode 5) that runs ~2,050 instructions of its own cold code before its
 * wait while the victim merges.
 *
 * Usage: dev_coresident [reps]   (no GPU: says so, exits 0) */
#include "backend/cuda/attn_decode.cuh" /* the cluster helpers kernel 2 uses */
#include "backend/cuda/mbar.cuh"

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

#define VBLOCKS 64
#define VCLUS 8
#define AGG_THREADS 256
#define AGG_D 8                           /* 16-byte pieces a thread (modes 1, 3) */
#define AGG_SMEM (AGG_THREADS * AGG_D * 16) /* 32 KB a block */
#define BIG_BYTES ((size_t)2 << 30)

static __device__ __forceinline__ unsigned cluster_rank(void) {
    unsigned r;
    asm volatile("mov.u32 %0, %%cluster_ctarank;" : "=r"(r));
    return r;
}
static __device__ __forceinline__ unsigned long long gtimer(void) {
    unsigned long long t;
    asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
    return t;
}

/* out[block][lane] = sum over peers u of (u * 32 + lane); rec[launch][block] = {cycles, ns}. */
__global__ void __launch_bounds__(32) k_vic(float *out, long long *rec, int launch, int spin,
                                            int trig_after, int gst, float4 *gbuf, int post,
                                            int tail) {
    __shared__ float4 slot[VCLUS][32];
    __shared__ float4 mine[32];
    const int lane = threadIdx.x;
    const unsigned me = cluster_rank();
    sk_ad_cluster_arrive_relaxed();
    if (!trig_after) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    mine[lane] = make_float4((float)(me * 32 + lane), 0.f, 0.f, 0.f);
    const long long s0 = clock64();
    while (clock64() - s0 < spin) {
    }
    __syncwarp();
    if (trig_after) asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
    /* post: cycles between the trigger and the section, so that the section meets the
     * aggressor's blocks as they start (in the step o's first blocks start ~0.7 us after kernel
     * 2's trigger, while it merges) */
    const long long p0 = clock64();
    while (clock64() - p0 < post) {
    }
    /* gst: a global store before the section (kernel 2's new K/V row, stored by one block of a
     * cluster), which the barrier's release must see performed */
    if (gst == 1 || (gst == 2 && me == 0)) gbuf[(size_t)launch * VBLOCKS * 32 + blockIdx.x * 32 + lane] = mine[lane];
    const long long c0 = clock64();
    const unsigned long long g0 = gtimer();
    sk_ad_cluster_wait();
    const float4 x = mine[lane];
    for (int u = 0; u < VCLUS; u++) sk_ad_st_cl4(sk_ad_mapa(&slot[me][lane], (unsigned)u), x);
    sk_ad_cluster_sync();
    float v = 0.0f;
    for (int u = 0; u < VCLUS; u++) v += slot[u][lane].x;
    if (tail) { /* ~260 straight-line instructions after the barrier (kernel 2's merge code) */
        float t8[8];
#pragma unroll
        for (int k = 0; k < 8; k++) t8[k] = v + (float)k;
#pragma unroll
        for (int i = 0; i < 32; i++)
#pragma unroll
            for (int k = 0; k < 8; k++) t8[k] = fmaf(t8[k], 1.0f + (float)((i * 37 + k * 11) % 97) * (1.0f / 4096.0f), -0.25f);
        float z = 0.0f;
#pragma unroll
        for (int k = 0; k < 8; k++) z += t8[k];
        if (z == 12345.0f) out[blockIdx.x * 32 + lane] = z; /* practically never: keeps the code */
    }
    const long long c1 = clock64();
    const unsigned long long g1 = gtimer();
    __syncwarp();
    out[blockIdx.x * 32 + lane] = v;
    if (lane == 0) {
        rec[2 * ((size_t)launch * VBLOCKS + blockIdx.x)] = c1 - c0;
        rec[2 * ((size_t)launch * VBLOCKS + blockIdx.x) + 1] = (long long)(g1 - g0);
    }
}

/* The aggressor: what it brings before griddepcontrol.wait, by mode (the header says). acc keeps
 * the loads from being dropped. */
__global__ void __launch_bounds__(AGG_THREADS) k_agg(const uint4 *big, size_t big_n, int mode,
                                                     size_t base, float *acc) {
    extern __shared__ __align__(128) uint4 sbuf[];
    __shared__ __align__(8) uint64_t mb_full, mb_empty;
    const int tid = threadIdx.x;
    const size_t blk0 = base + (size_t)blockIdx.x * (AGG_SMEM / 16);
    uint4 r[AGG_D] = {};
    if (tid == 0) {
        sk_mb_init((uint32_t)__cvta_generic_to_shared(&mb_full), 1);
        sk_mb_init((uint32_t)__cvta_generic_to_shared(&mb_empty), AGG_THREADS / 32 - 1);
        asm volatile("fence.mbarrier_init.release.cluster;" ::: "memory");
    }
    __syncthreads();
    if (mode == 1) {
#pragma unroll
        for (int d = 0; d < AGG_D; d++) {
            const size_t i = (blk0 + (size_t)d * AGG_THREADS + tid) % big_n;
            const uint32_t dst = (uint32_t)__cvta_generic_to_shared(&sbuf[d * AGG_THREADS + tid]);
            asm volatile("cp.async.cg.shared.global [%0], [%1], 16;" ::"r"(dst), "l"(big + i) : "memory");
        }
        asm volatile("cp.async.commit_group;" ::: "memory");
    } else if (mode == 2 || mode == 4) {
        if (tid == 0) {
            const uint32_t fb = (uint32_t)__cvta_generic_to_shared(&mb_full);
            sk_mb_expect_tx(fb, AGG_SMEM);
            for (int j = 0; j < AGG_SMEM / 16384; j++) {
                const size_t i = (blk0 + (size_t)j * 1024) % (big_n - 1024);
                sk_bulk_load((uint32_t)__cvta_generic_to_shared(&sbuf[j * 1024]), big + i, 16384, fb);
            }
        }
    } else if (mode == 3) {
#pragma unroll
        for (int d = 0; d < AGG_D; d++) {
            const size_t i = (blk0 + (size_t)d * AGG_THREADS + tid) % big_n;
            asm volatile("ld.global.nc.v4.u32 {%0, %1, %2, %3}, [%4];"
                         : "=r"(r[d].x), "=r"(r[d].y), "=r"(r[d].z), "=r"(r[d].w)
                         : "l"(big + i));
        }
    }
    if (mode == 5) { /* ~2,050 straight-line instructions before the wait (cold code landing) */
        float a8[8];
#pragma unroll
        for (int k = 0; k < 8; k++) a8[k] = (float)(tid + k) * (1.0f / 64.0f);
#pragma unroll
        for (int i = 0; i < 256; i++)
#pragma unroll
            for (int k = 0; k < 8; k++) a8[k] = fmaf(a8[k], 1.0f + (float)((i * 53 + k * 7) % 89) * (1.0f / 4096.0f), -0.5f / 64.0f);
        r[0].x = __float_as_uint(a8[0] + a8[1] + a8[2] + a8[3] + a8[4] + a8[5] + a8[6] + a8[7]);
    }
    if (mode == 4 && tid == 32 * (AGG_THREADS / 32 - 1)) {
        /* the producer: spins until the other warps have passed the wait */
        sk_mb_wait((uint32_t)__cvta_generic_to_shared(&mb_empty), 0);
        return;
    }
    asm volatile("griddepcontrol.wait;" ::: "memory");
    if (mode == 4 && tid % 32 == 0 && tid < 32 * (AGG_THREADS / 32 - 1))
        sk_mb_arrive((uint32_t)__cvta_generic_to_shared(&mb_empty));
    unsigned s = 0;
    if (mode == 1) {
        asm volatile("cp.async.wait_all;" ::: "memory");
        __syncthreads();
        for (int d = 0; d < AGG_D; d++) s ^= sbuf[d * AGG_THREADS + tid].x;
    } else if (mode == 2 || mode == 4) {
        sk_mb_wait((uint32_t)__cvta_generic_to_shared(&mb_full), 0);
        for (int d = 0; d < AGG_D; d++) s ^= sbuf[d * AGG_THREADS + tid].x;
    } else if (mode == 3) {
        for (int d = 0; d < AGG_D; d++) s ^= r[d].x ^ r[d].w;
    } else if (mode == 5) {
        s = r[0].x;
    }
    if (s == 0x12345678u) acc[tid] = (float)s; /* practically never: keeps the loads */
}

/* The instruction-cache evictors (icache rows): instance S of ~2,050 straight-line FFMAs (~32 KB
 * of code, different immediates per instance), one warp on every SM; and a 256 MB read that
 * evicts code from L2. */
template <int S> __global__ void __launch_bounds__(32) k_evict(float *sink) {
    float a8[8];
#pragma unroll
    for (int k = 0; k < 8; k++) a8[k] = (float)(threadIdx.x + k) * (1.0f / 64.0f);
#pragma unroll
    for (int i = 0; i < 256; i++)
#pragma unroll
        for (int k = 0; k < 8; k++) a8[k] = fmaf(a8[k], 1.0f + (float)((i * 37 + S * 11 + k) % 97) * (1.0f / 4096.0f), -0.5f / 64.0f);
    const float z = a8[0] + a8[1] + a8[2] + a8[3] + a8[4] + a8[5] + a8[6] + a8[7];
    if (z == 12345.0f) sink[blockIdx.x] = z;
}
typedef void (*evfn)(float *);
static const evfn k_evicts[8] = {k_evict<0>, k_evict<1>, k_evict<2>, k_evict<3>,
                                 k_evict<4>, k_evict<5>, k_evict<6>, k_evict<7>};
__global__ void k_stream(const uint4 *p, size_t n, float *sink) {
    unsigned s = 0;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n; i += (size_t)gridDim.x * blockDim.x)
        s ^= p[i].x;
    if (s == 0x12345678u) sink[blockIdx.x] = (float)s;
}

static void launch_vic(float *out, long long *rec, int launch, int spin, int trig_after, int gst,
                       float4 *gbuf, int post, int tail, cudaStream_t st) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(VBLOCKS);
    cfg.blockDim = dim3(32);
    cfg.stream = st;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeClusterDimension;
    at[0].val.clusterDim.x = VCLUS;
    at[0].val.clusterDim.y = 1;
    at[0].val.clusterDim.z = 1;
    cfg.attrs = at;
    cfg.numAttrs = 1;
    CK(cudaLaunchKernelEx(&cfg, k_vic, out, rec, launch, spin, trig_after, gst, gbuf, post, tail));
}
static void launch_agg(const uint4 *big, int mode, size_t base, float *acc, int blocks, int pdl,
                       cudaStream_t st) {
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = dim3(blocks);
    cfg.blockDim = dim3(AGG_THREADS);
    cfg.dynamicSmemBytes = AGG_SMEM;
    cfg.stream = st;
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    cfg.attrs = at;
    cfg.numAttrs = pdl ? 1 : 0;
    CK(cudaLaunchKernelEx(&cfg, k_agg, big, BIG_BYTES / 16, mode, base, acc));
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
        printf("dev_coresident: no GPU\n");
        return 0;
    }
    const int reps = argc > 1 ? atoi(argv[1]) : 200;
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, 0));
    const int nsm = prop.multiProcessorCount;
    CK(cudaFuncSetAttribute((const void *)k_agg, cudaFuncAttributeMaxDynamicSharedMemorySize, AGG_SMEM));
    float *out, *acc;
    long long *rec;
    uint4 *big;
    CK(cudaMalloc(&out, VBLOCKS * 32 * sizeof(float)));
    CK(cudaMalloc(&acc, AGG_THREADS * sizeof(float)));
    CK(cudaMalloc(&rec, (size_t)reps * VBLOCKS * 2 * sizeof(long long)));
    CK(cudaMalloc(&big, BIG_BYTES));
    float4 *gbuf;
    CK(cudaMalloc(&gbuf, (size_t)reps * VBLOCKS * 32 * sizeof(float4)));
    CK(cudaMemset(big, 0x5a, BIG_BYTES));
    cudaStream_t st;
    CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    printf("device: %s, %d SMs; victim %d one-warp blocks in clusters of %d; aggressor %d threads, "
           "%d KB a block before its wait; %d pairs a graph\n",
           prop.name, nsm, VBLOCKS, VCLUS, AGG_THREADS, AGG_SMEM / 1024, reps);
    static const char *mname[] = {"residency only", "cp.async 16 B", "bulk 16 KB", "ld.global 16 B",
                                  "bulk + spinning producer", "2,050 instructions of code"};
    printf("| aggressor | blocks an SM | launch | trigger | spin cycles | global store before | cycles trigger -> section | code cleared (1 SMs, 2 and L2) / victim tail | section cycles p50 / p90 | "
           "section ns p50 / p90 | cycles per ns | graph us a pair |\n"
           "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
    int fails = 0;
    /* rows: mode -1 = the victim alone */
    struct row { int mode, bps, pdl, trig_after, spin, gst, post, evict, tail; } rows[96];
    int nr = 0;
    const int spins[2] = {4000, 12000};
    for (int sp = 0; sp < 2; sp++) {
        rows[nr++] = (struct row){-1, 0, 0, 1, spins[sp], 0, 0, 0, 0};
        rows[nr++] = (struct row){1, 2, 0, 1, spins[sp], 0, 0, 0, 0};
        for (int mode = 0; mode <= 4; mode++)
            for (int ta = 1; ta >= 0; ta--) rows[nr++] = (struct row){mode, 2, 1, ta, spins[sp], 0, 0, 0, 0};
        rows[nr++] = (struct row){1, 1, 1, 1, spins[sp], 0, 0, 0, 0};
        rows[nr++] = (struct row){1, 4, 1, 1, spins[sp], 0, 0, 0, 0};
        for (int gst = 1; gst <= 2; gst++) {
            rows[nr++] = (struct row){-1, 0, 0, 1, spins[sp], gst, 0, 0, 0};
            rows[nr++] = (struct row){1, 2, 1, 1, spins[sp], gst, 0, 0, 0};
            rows[nr++] = (struct row){2, 2, 1, 1, spins[sp], gst, 0, 0, 0};
            rows[nr++] = (struct row){1, 4, 1, 1, spins[sp], gst, 0, 0, 0};
        }
    }
    /* the section after the trigger by `post` cycles: it meets the aggressor's blocks starting */
    const int posts[3] = {1000, 2000, 4000};
    for (int pi = 0; pi < 3; pi++) {
        rows[nr++] = (struct row){-1, 0, 0, 1, 4000, 0, posts[pi], 0, 0};
        for (int mode = 0; mode <= 4; mode++) rows[nr++] = (struct row){mode, 2, 1, 1, 4000, 0, posts[pi], 0, 0};
        rows[nr++] = (struct row){1, 4, 1, 1, 4000, 0, posts[pi], 0, 0};
    }
    /* icache rows: the victim with a code tail, every SM's instruction caches (1) and L2 (2)
     * cleared of its code before each pair, alone or with an aggressor whose own cold code lands
     * while the victim merges (mode 5) */
    for (int ev = 0; ev <= 2; ev++) {
        rows[nr++] = (struct row){-1, 0, 0, 1, 4000, 0, 2000, ev, 1};
        rows[nr++] = (struct row){1, 2, 1, 1, 4000, 0, 2000, ev, 1};
        rows[nr++] = (struct row){5, 2, 1, 1, 4000, 0, 2000, ev, 1};
        rows[nr++] = (struct row){5, 2, 1, 1, 4000, 0, 0, ev, 1};
    }
    rows[nr++] = (struct row){-1, 0, 0, 1, 4000, 0, 2000, 1, 0};
    rows[nr++] = (struct row){5, 2, 1, 1, 4000, 0, 2000, 1, 0};
    size_t base = 0;
    long long *h = (long long *)malloc((size_t)reps * VBLOCKS * 2 * sizeof(long long));
    long long *cy = (long long *)malloc((size_t)reps * VBLOCKS * sizeof(long long));
    long long *ns = (long long *)malloc((size_t)reps * VBLOCKS * sizeof(long long));
    for (int ri = 0; ri < nr; ri++) {
        const struct row R = rows[ri];
        cudaGraph_t g;
        cudaGraphExec_t ge;
        CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
        for (int i = 0; i < reps; i++) {
            if (R.evict >= 1)
                for (int k = 0; k < 8; k++) k_evicts[k]<<<nsm, 32, 0, st>>>(acc);
            if (R.evict >= 2) k_stream<<<nsm * 4, 512, 0, st>>>(big + (size_t)(i % 7) * (1u << 24), (size_t)1 << 24, acc);
            launch_vic(out, rec, i, R.spin, R.trig_after, R.gst, gbuf, R.post, R.tail, st);
            if (R.mode >= 0) {
                launch_agg(big, R.mode, base, acc, nsm * R.bps, R.pdl, st);
                base = (base + (size_t)nsm * R.bps * (AGG_SMEM / 16)) % (BIG_BYTES / 16 - (1u << 24));
            }
        }
        CK(cudaStreamEndCapture(st, &g));
        CK(cudaGraphInstantiate(&ge, g, 0));
        CK(cudaGraphLaunch(ge, st)); /* warm-up; then the checks and records of the timed ones */
        CK(cudaStreamSynchronize(st));
        float t[5];
        for (int i = 0; i < 5; i++) {
            CK(cudaEventRecord(e0, st));
            CK(cudaGraphLaunch(ge, st));
            CK(cudaEventRecord(e1, st));
            CK(cudaEventSynchronize(e1));
            CK(cudaEventElapsedTime(&t[i], e0, e1));
            t[i] = t[i] * 1000.0f / (float)reps;
        }
        qsort(t, 5, sizeof(float), cmp_f);
        float hv[VBLOCKS * 32];
        CK(cudaMemcpy(hv, out, sizeof hv, cudaMemcpyDeviceToHost));
        for (int b = 0; b < VBLOCKS; b++)
            for (int l = 0; l < 32; l++) {
                float want = 0.0f;
                for (int u = 0; u < VCLUS; u++) want += (float)(u * 32 + l);
                if (hv[b * 32 + l] != want) {
                    if (fails < 5) printf("FAIL row %d block %d lane %d: %g, want %g\n", ri, b, l, hv[b * 32 + l], want);
                    fails++;
                }
            }
        CK(cudaMemcpy(h, rec, (size_t)reps * VBLOCKS * 2 * sizeof(long long), cudaMemcpyDeviceToHost));
        const size_t n = (size_t)reps * VBLOCKS;
        double sum_c = 0, sum_n = 0;
        for (size_t i = 0; i < n; i++) {
            cy[i] = h[2 * i], ns[i] = h[2 * i + 1];
            sum_c += (double)cy[i], sum_n += (double)ns[i];
        }
        qsort(cy, n, sizeof(long long), cmp_ll);
        qsort(ns, n, sizeof(long long), cmp_ll);
        printf("| %s | %d | %s | %s | %d | %s | %d | %d / %d | %lld / %lld | %lld / %lld | %.2f | %.2f |\n",
               R.mode < 0 ? "none (victim alone)" : mname[R.mode], R.bps,
               R.mode < 0 ? "-" : (R.pdl ? "PDL" : "serial"), R.trig_after ? "after spin" : "at start",
               R.spin, R.gst == 0 ? "no" : (R.gst == 1 ? "every block" : "rank 0"), R.post, R.evict, R.tail, cy[n / 2], cy[(size_t)(0.9 * (n - 1))], ns[n / 2], ns[(size_t)(0.9 * (n - 1))],
               sum_n > 0 ? sum_c / sum_n : 0.0, t[2]);
        CK(cudaGraphExecDestroy(ge));
        CK(cudaGraphDestroy(g));
    }
    printf("RESULT: %s (%d wrong outputs)\n", fails ? "FAIL" : "PASS", fails);
    free(h), free(cy), free(ns);
    return fails ? 1 : 0;
}
