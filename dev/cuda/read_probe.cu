/* Read-bandwidth probe (workbench, not the backend): how fast can the H200 READ, and how?
 *
 * Why: the decode bars are all "bytes read per second" against the 4.23 TB/s copy ceiling, and the
 * plain read probe of dev_gemv_w4 (16-byte loads, 4 in flight a thread) reads no faster than the
 * copy (4.21-4.25 TB/s). Yet torch's cuDNN decode attention reads K/V at up to 4.57 TB/s
 * (bench/results/decode.md, session 12), 1-1.5% more than our kernel 2 (16-byte cp.async into a
 * per-warp ring). So some access method reads faster than ours; this probe finds which, before
 * any kernel is rebuilt around it. Second question, for issue 5's batch-1 bar: what is the best a
 * kernel that only reads can do on a decode GEMV's weight sizes (35.7 MB o, 44.5 MB qkv, 124.8 MB
 * down, 249.6 MB gate/up), launched back to back in a CUDA graph with programmatic dependent
 * launch as the engine does? That bounds what any GEMV of that size can reach (the in-graph
 * GEMVs: o 70%, qkv 64% of copy).
 *
 * Methods (each reads every byte of the buffer exactly once a launch; checked: the XOR of all
 * words read must equal the host's):
 *   ld     16-byte ld.global.nc.L1::no_allocate, U loads in flight a thread, 256 threads a block;
 *          "il": grid-stride interleaved (consecutive threads on consecutive 16 B), "bk": each
 *          block its own contiguous slab
 *   cpa    per-warp shared-memory ring of R slots of S bytes filled with 16-byte cp.async.cg
 *          (kernel 2's ring), each slot read back through shared memory by the warp
 *   bulk   the same ring filled by one cp.async.bulk of S bytes a slot (the bulk-copy engine),
 *          completion on a per-slot mbarrier (expect_tx), read back through shared memory
 *   For cpa and bulk, each warp's chunks are a contiguous run ("bk") or every G-th chunk of the
 *   buffer ("il", G = warps in the grid).
 *
 * Usage: dev_read_probe [sweep|seq|all] (default all)
 *   sweep  2 GiB buffer, every method x configuration, median of 10 launches (after 2 warm-up)
 *   seq    per-launch time of the best configuration of each method on the GEMV weight sizes:
 *          NB distinct buffers (>= 2 GiB together, so nothing stays in L2) read by NB launches
 *          captured in one graph, with and without PDL (each block issues its first loads, then
 *          griddepcontrol.wait: what a GEMV can do before its x is ready); median of 10 replays
 * Prints "FAIL:" on a wrong checksum or a CUDA error. */
#include "bench_util.cuh"

#include <stdint.h>
#include <string.h>

/* HINT: the L2 prefetch-size qualifier (0: none, 128, 256 bytes) */
template <int HINT = 0> static __device__ __forceinline__ uint4 rp_ld(const uint4 *p) {
    uint4 v;
    if (HINT == 256)
        asm volatile("ld.global.nc.L1::no_allocate.L2::256B.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                     : "l"(p));
    else if (HINT == 128)
        asm volatile("ld.global.nc.L1::no_allocate.L2::128B.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                     : "l"(p));
    else
        asm volatile("ld.global.nc.L1::no_allocate.v4.u32 {%0, %1, %2, %3}, [%4];"
                     : "=r"(v.x), "=r"(v.y), "=r"(v.z), "=r"(v.w)
                     : "l"(p));
    return v;
}
static __device__ __forceinline__ uint32_t rp_x(uint4 v) { return v.x ^ v.y ^ v.z ^ v.w; }
/* The warp's XOR of acc, stored by lane 0 at sink[global warp index] (plain stores: a few
 * thousand atomics on one word would cost microseconds at the seq test's kernel sizes). */
static __device__ __forceinline__ void rp_sink(uint32_t acc, uint32_t *sink) {
    for (int o = 16; o; o >>= 1) acc ^= __shfl_xor_sync(0xffffffffu, acc, o);
    if ((threadIdx.x & 31) == 0) sink[(size_t)blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)] = acc;
}
static __device__ __forceinline__ void rp_pdl_launch(void) {
    asm volatile("griddepcontrol.launch_dependents;" ::: "memory");
}
static __device__ __forceinline__ void rp_pdl_wait(void) {
    asm volatile("griddepcontrol.wait;" ::: "memory");
}

/* ---- ld ---- */
template <int U, int HINT = 0>
static __global__ void __launch_bounds__(256) rp_ld_kernel(const uint4 *p, size_t n, int blocked,
                                                           int pdl, uint32_t *sink) {
    if (pdl) rp_pdl_launch();
    size_t i, end, stride;
    if (blocked) {
        const size_t per = (n + gridDim.x - 1) / gridDim.x;
        i = (size_t)blockIdx.x * per + threadIdx.x;
        end = min(n, (size_t)(blockIdx.x + 1) * per);
        stride = blockDim.x;
    } else {
        i = (size_t)blockIdx.x * blockDim.x + threadIdx.x;
        end = n;
        stride = (size_t)gridDim.x * blockDim.x;
    }
    uint32_t acc = 0;
    bool waited = !pdl;
    for (; i + (U - 1) * stride < end; i += U * stride) {
        uint4 v[U];
#pragma unroll
        for (int u = 0; u < U; u++) v[u] = rp_ld<HINT>(p + i + u * stride);
        if (!waited) rp_pdl_wait(), waited = true;
#pragma unroll
        for (int u = 0; u < U; u++) acc ^= rp_x(v[u]);
    }
    for (; i < end; i += stride) acc ^= rp_x(rp_ld<HINT>(p + i));
    if (!waited) rp_pdl_wait();
    rp_sink(acc, sink);
}

/* ---- rings: per warp, R slots of S bytes, then R mbarriers (8 B each) ---- */
static __device__ __forceinline__ void rp_mb_init(uint32_t a) {
    asm volatile("mbarrier.init.shared::cta.b64 [%0], 1;\n" ::"r"(a) : "memory");
}
static __device__ __forceinline__ void rp_mb_expect(uint32_t a, uint32_t bytes) {
    asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(a), "r"(bytes)
                 : "memory");
}
static __device__ __forceinline__ void rp_mb_wait(uint32_t a, uint32_t parity) {
    uint32_t ok;
    do {
        asm volatile("{\n.reg .pred p;\nmbarrier.try_wait.parity.shared::cta.b64 p, [%1], %2;\n"
                     "selp.u32 %0, 1, 0, p;\n}\n"
                     : "=r"(ok)
                     : "r"(a), "r"(parity)
                     : "memory");
    } while (!ok);
}
static __device__ __forceinline__ void rp_bulk(uint32_t dst, const void *src, uint32_t bytes,
                                               uint32_t mb) {
    asm volatile("cp.async.bulk.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1], %2, "
                 "[%3];\n" ::"r"(dst),
                 "l"(src), "r"(bytes), "r"(mb)
                 : "memory");
}

/* chunk k of warp g (of G) among nch: blocked runs or interleaved; -1 past the warp's last */
static __device__ __forceinline__ long rp_chunk(long k, long g, long G, long nch, int blocked) {
    if (blocked) {
        const long per = (nch + G - 1) / G, c = g * per + k;
        return (k < per && c < nch) ? c : -1;
    }
    const long c = g + k * G;
    return c < nch ? c : -1;
}

/* Issues chunk k of warp g into its slot (k % R): one bulk copy by lane 0, or the warp's 16-byte
 * cp.async copies and a commit (an empty group when the warp has no chunk k, so that the
 * wait_group counts stay aligned). */
template <int BULK, int HINT = 0>
static __device__ __forceinline__ void rp_issue(long k, const uint8_t *p, long g, long G, long nch,
                                                int S, int R, int blocked, uint32_t ring_s,
                                                uint32_t mb_s, int lane) {
    const long c = rp_chunk(k, g, G, nch, blocked);
    const int s = (int)(k % R);
    if (BULK) {
        if (c >= 0 && lane == 0) {
            rp_mb_expect(mb_s + 8u * s, (uint32_t)S);
            rp_bulk(ring_s + (uint32_t)(s * S), p + (size_t)c * S, (uint32_t)S, mb_s + 8u * s);
        }
    } else {
        if (c >= 0)
            for (int o = lane * 16; o < S; o += 512) {
                const uint32_t d = ring_s + (uint32_t)(s * S + o);
                const uint8_t *q = p + (size_t)c * S + o;
                if (HINT == 256)
                    asm volatile("cp.async.cg.shared.global.L2::256B [%0], [%1], 16;\n" ::"r"(d), "l"(q) : "memory");
                else if (HINT == 128)
                    asm volatile("cp.async.cg.shared.global.L2::128B [%0], [%1], 16;\n" ::"r"(d), "l"(q) : "memory");
                else
                    asm volatile("cp.async.cg.shared.global [%0], [%1], 16;\n" ::"r"(d), "l"(q) : "memory");
            }
        asm volatile("cp.async.commit_group;\n" ::: "memory");
    }
}

/* BULK = 1: cp.async.bulk; 0: 16-byte cp.async. W warps a block. */
template <int BULK, int HINT = 0>
static __global__ void rp_ring_kernel(const uint8_t *p, size_t nbytes, int S, int R, int blocked,
                                      int pdl, uint32_t *sink) {
    extern __shared__ __align__(128) uint8_t sm[];
    if (pdl) rp_pdl_launch();
    const int lane = threadIdx.x & 31, wid = threadIdx.x >> 5, W = blockDim.x >> 5;
    const long g = (long)blockIdx.x * W + wid, G = (long)gridDim.x * W;
    const long nch = (long)(nbytes / (size_t)S);
    uint8_t *ring = sm + (size_t)wid * R * S;
    const uint32_t ring_s = (uint32_t)__cvta_generic_to_shared(ring);
    const uint32_t mb_s = (uint32_t)__cvta_generic_to_shared(sm + (size_t)W * R * S) + 8u * R * wid;
    if (BULK) {
        if (lane == 0) {
            for (int s = 0; s < R; s++) rp_mb_init(mb_s + 8u * s);
            asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
        }
        __syncwarp();
    }
    for (int k = 0; k < R - 1; k++) rp_issue<BULK, HINT>(k, p, g, G, nch, S, R, blocked, ring_s, mb_s, lane);
    if (pdl) rp_pdl_wait();
    uint32_t acc = 0;
    for (long k = 0;; k++) {
        if (rp_chunk(k, g, G, nch, blocked) < 0) break;
        rp_issue<BULK, HINT>(k + R - 1, p, g, G, nch, S, R, blocked, ring_s, mb_s, lane); /* into the slot read at k - 1 (already consumed below) */
        const int s = (int)(k % R);
        if (BULK) {
            rp_mb_wait(mb_s + 8u * s, (uint32_t)((k / R) & 1));
        } else {
            /* R - 1 newer groups may stay in flight */
            switch (R) {
            case 2: asm volatile("cp.async.wait_group 1;\n" ::: "memory"); break;
            case 4: asm volatile("cp.async.wait_group 3;\n" ::: "memory"); break;
            default: asm volatile("cp.async.wait_group 7;\n" ::: "memory"); break;
            }
            __syncwarp();
        }
        const uint4 *q = (const uint4 *)(ring + (size_t)s * S);
        for (int o = lane; o < S / 16; o += 32) acc ^= rp_x(q[o]);
        __syncwarp();
        if (BULK) asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
    }
    /* tail bytes past the last whole chunk (none for the sizes used here, but keep it exact) */
    if (g == 0)
        for (size_t o = (size_t)nch * S + lane * 16; o + 16 <= nbytes; o += 512)
            acc ^= rp_x(rp_ld<HINT>((const uint4 *)(p + o)));
    if (!BULK) asm volatile("cp.async.wait_group 0;\n" ::: "memory");
    rp_sink(acc, sink);
}

/* ---- host ---- */
struct rp_cfg {
    int method; /* 0 ld, 1 cpa, 2 bulk */
    int U;      /* ld: loads in flight a thread (4 or 8) */
    int S, R, W; /* rings: slot bytes, slots, warps a block */
    int bps;     /* blocks an SM */
    int blocked;
    int hint; /* ld / cpa: L2 prefetch size hint, 0 / 128 / 256 */
};
static const char *rp_mname[3] = {"ld", "cpa", "bulk"};

static int n_sm = 132;

static void rp_name(const rp_cfg &c, char *buf, size_t n) {
    if (c.method == 0)
        snprintf(buf, n, "ld U%d %s %d/SM%s", c.U, c.blocked ? "bk" : "il", c.bps,
                 c.hint == 256 ? " L2::256B" : c.hint == 128 ? " L2::128B" : "");
    else
        snprintf(buf, n, "%s S%dK R%d W%d %s %d/SM%s", rp_mname[c.method], c.S / 1024, c.R, c.W,
                 c.blocked ? "bk" : "il", c.bps, c.hint == 256 ? " L2::256B" : c.hint == 128 ? " L2::128B" : "");
}
static size_t rp_smem(const rp_cfg &c) {
    return c.method == 0 ? 0 : (size_t)c.W * c.R * c.S + 8u * c.R * c.W;
}
/* 1 when the configuration fits bps blocks an SM */
static int rp_fits(const rp_cfg &c) {
    int occ = 0;
    const size_t sm = rp_smem(c);
    if (c.method == 0) {
        if (c.U == 4)
            CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, rp_ld_kernel<4>, 256, 0));
        else
            CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, rp_ld_kernel<8>, 256, 0));
    } else {
        if (sm > 227 * 1024) return 0;
        if (c.method == 1) {
            CK(cudaFuncSetAttribute(rp_ring_kernel<0, 128>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)sm));
            CK(cudaFuncSetAttribute(rp_ring_kernel<0, 256>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)sm));
            CK(cudaFuncSetAttribute(rp_ring_kernel<0>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)sm));
            CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, rp_ring_kernel<0>, 32 * c.W, sm));
        } else {
            CK(cudaFuncSetAttribute(rp_ring_kernel<1>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                    (int)sm));
            CK(cudaOccupancyMaxActiveBlocksPerMultiprocessor(&occ, rp_ring_kernel<1>, 32 * c.W, sm));
        }
    }
    return occ >= c.bps;
}

static void rp_launch(const rp_cfg &c, const void *p, size_t nbytes, int pdl, uint32_t *sink,
                      cudaStream_t st) {
    cudaLaunchConfig_t lc = {};
    cudaLaunchAttribute at[1];
    at[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    at[0].val.programmaticStreamSerializationAllowed = 1;
    lc.gridDim = dim3((unsigned)(n_sm * c.bps));
    lc.stream = st;
    lc.attrs = at;
    lc.numAttrs = pdl ? 1 : 0;
    if (c.method == 0) {
        lc.blockDim = dim3(256);
        const uint4 *q = (const uint4 *)p;
        const size_t n = nbytes / 16;
        if (c.U == 4 && c.hint == 0) CK(cudaLaunchKernelEx(&lc, rp_ld_kernel<4>, q, n, c.blocked, pdl, sink));
        if (c.U == 8 && c.hint == 0) CK(cudaLaunchKernelEx(&lc, rp_ld_kernel<8>, q, n, c.blocked, pdl, sink));
        if (c.U == 4 && c.hint == 128) CK(cudaLaunchKernelEx(&lc, rp_ld_kernel<4, 128>, q, n, c.blocked, pdl, sink));
        if (c.U == 8 && c.hint == 128) CK(cudaLaunchKernelEx(&lc, rp_ld_kernel<8, 128>, q, n, c.blocked, pdl, sink));
        if (c.U == 4 && c.hint == 256) CK(cudaLaunchKernelEx(&lc, rp_ld_kernel<4, 256>, q, n, c.blocked, pdl, sink));
        if (c.U == 8 && c.hint == 256) CK(cudaLaunchKernelEx(&lc, rp_ld_kernel<8, 256>, q, n, c.blocked, pdl, sink));
    } else {
        lc.blockDim = dim3(32 * c.W);
        lc.dynamicSmemBytes = rp_smem(c);
        const uint8_t *q = (const uint8_t *)p;
        if (c.method == 1 && c.hint == 0)
            CK(cudaLaunchKernelEx(&lc, rp_ring_kernel<0>, q, nbytes, c.S, c.R, c.blocked, pdl, sink));
        else if (c.method == 1 && c.hint == 128)
            CK(cudaLaunchKernelEx(&lc, rp_ring_kernel<0, 128>, q, nbytes, c.S, c.R, c.blocked, pdl, sink));
        else if (c.method == 1)
            CK(cudaLaunchKernelEx(&lc, rp_ring_kernel<0, 256>, q, nbytes, c.S, c.R, c.blocked, pdl, sink));
        else
            CK(cudaLaunchKernelEx(&lc, rp_ring_kernel<1>, q, nbytes, c.S, c.R, c.blocked, pdl, sink));
    }
}

static __global__ void rp_fill_kernel(uint32_t *p, size_t n, uint32_t seed) {
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t x = (uint32_t)i * 2654435761u ^ seed;
        x ^= x >> 15, x *= 2246822519u, x ^= x >> 13, x *= 3266489917u, x ^= x >> 16;
        p[i] = x;
    }
}
static __global__ void rp_xor_kernel(const uint32_t *p, size_t n, uint32_t *out) {
    uint32_t a = 0;
    for (size_t i = (size_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x)
        a ^= p[i];
    atomicXor(out, a);
}
static uint32_t rp_ref_xor(const void *p, size_t nbytes) {
    uint32_t *d, h = 0;
    CK(cudaMalloc(&d, 4));
    CK(cudaMemset(d, 0, 4));
    rp_xor_kernel<<<1024, 256>>>((const uint32_t *)p, nbytes / 4, d);
    CK(cudaMemcpy(&h, d, 4, cudaMemcpyDeviceToHost));
    CK(cudaFree(d));
    return h;
}

static int fails = 0;
#define RP_SINK 65536 /* words of the per-warp checksum array */

/* checks one launch of c over p against ref; returns 0 when right */
static int rp_check(const rp_cfg &c, const void *p, size_t nbytes, uint32_t ref, uint32_t *sink) {
    const size_t nw = (size_t)n_sm * c.bps * (c.method == 0 ? 8 : c.W);
    std::vector<uint32_t> hs(nw);
    CK(cudaMemset(sink, 0, RP_SINK * 4));
    rp_launch(c, p, nbytes, 0, sink, 0);
    CK(cudaGetLastError());
    CK(cudaMemcpy(hs.data(), sink, nw * 4, cudaMemcpyDeviceToHost));
    uint32_t h = 0;
    for (uint32_t x : hs) h ^= x;
    if (h != ref) {
        char nm[96];
        rp_name(c, nm, sizeof nm);
        printf("FAIL: %s: checksum %08x, expected %08x\n", nm, h, ref);
        fails++;
        return 1;
    }
    return 0;
}

static std::vector<rp_cfg> rp_configs(void) {
    std::vector<rp_cfg> v;
    const int bpsl[] = {1, 2, 4, 8, 16};
    for (int U : {4, 8})
        for (int bl = 0; bl < 2; bl++)
            for (int bps : {2, 4, 8})
                for (int h : {0, 128, 256})
                    v.push_back({0, U, 0, 0, 0, bps, bl, h});
    for (int m = 1; m <= 2; m++)
        for (int S : {4096, 8192, 16384, 32768})
            for (int R : {2, 4, 8})
                for (int W : {1, 4})
                    for (int bps : bpsl)
                        for (int bl = 0; bl < 2; bl++) {
                            rp_cfg c = {m, 0, S, R, W, bps, bl, 0};
                            const size_t inflight = (size_t)bps * W * R * S;
                            /* keep 32-200 KB an SM in flight; beyond, smem runs out anyway */
                            if (inflight < 32 * 1024 || W * bps > 32) continue;
                            if (m == 1 && S > 16384) continue; /* 32 cp.async a lane a slot */
                            v.push_back(c);
                            if (m == 1 && S <= 16384 && R == 2) /* the cp.async ring with hints */
                                for (int h : {128, 256}) c.hint = h, v.push_back(c);
                        }
    return v;
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "all";
    int dev = 0;
    CK(cudaGetDevice(&dev));
    CK(cudaDeviceGetAttribute(&n_sm, cudaDevAttrMultiProcessorCount, dev));
    cudaDeviceProp prop;
    CK(cudaGetDeviceProperties(&prop, dev));
    printf("device: %s, %d SMs\n", prop.name, n_sm);
    const double copy = copy_ceiling_tbs();
    uint32_t *sink;
    CK(cudaMalloc(&sink, RP_SINK * 4));
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));

    /* best configuration of each method (by the sweep; defaults if the sweep is not run) */
    rp_cfg best[3] = {{0, 4, 0, 0, 0, 4, 1, 0}, {1, 0, 8192, 4, 1, 8, 1, 0}, {2, 0, 16384, 4, 1, 2, 1, 0}};
    double best_tbs[3] = {0, 0, 0};

    if (!strcmp(mode, "sweep") || !strcmp(mode, "all")) {
        const size_t bytes = (size_t)2 << 30;
        uint8_t *p;
        CK(cudaMalloc(&p, bytes));
        rp_fill_kernel<<<4096, 256>>>((uint32_t *)p, bytes / 4, 12345u);
        const uint32_t ref = rp_ref_xor(p, bytes);
        printf("\n## sweep: 2 GiB, median of 10 launches, TB/s of bytes read (copy ceiling %.3f)\n\n",
               copy);
        printf("| method | config | us | TB/s | of copy |\n| --- | --- | --- | --- | --- |\n");
        for (const rp_cfg &c : rp_configs()) {
            if (!rp_fits(c)) continue;
            if (rp_check(c, p, bytes, ref, sink)) continue;
            std::vector<float> ts;
            for (int r = 0; r < 12; r++) {
                CK(cudaEventRecord(e0));
                rp_launch(c, p, bytes, 0, sink, 0);
                CK(cudaEventRecord(e1));
                CK(cudaEventSynchronize(e1));
                float ms;
                CK(cudaEventElapsedTime(&ms, e0, e1));
                if (r >= 2) ts.push_back(ms);
            }
            const double us = median(ts) * 1e3, tbs = bytes / (us * 1e-6) / 1e12;
            char nm[96];
            rp_name(c, nm, sizeof nm);
            printf("| %s | %s | %.1f | %.3f | %.1f%% |\n", rp_mname[c.method], nm, us, tbs,
                   100.0 * tbs / copy);
            if (tbs > best_tbs[c.method]) best_tbs[c.method] = tbs, best[c.method] = c;
        }
        printf("\nbest:\n");
        for (int m = 0; m < 3; m++) {
            char nm[96];
            rp_name(best[m], nm, sizeof nm);
            printf("  %-5s %s: %.3f TB/s (%.1f%% of copy)\n", rp_mname[m], nm, best_tbs[m],
                   100.0 * best_tbs[m] / copy);
        }
        CK(cudaFree(p));
    }

    if (!strcmp(mode, "seq") || !strcmp(mode, "all")) {
        struct {
            const char *name;
            size_t bytes;
        } sizes[] = {{"o 35.7 MB", 35700000},
                     {"qkv 44.5 MB", 44500000},
                     {"down 124.8 MB", 124800000},
                     {"gate/up 249.6 MB", 249600000}};
        printf("\n## seq: NB launches on NB distinct buffers in one graph, us a launch (median of 10 "
               "replays), TB/s, of copy\n\n");
        printf("| size | method | config | NB | no PDL us | TB/s | of copy | PDL us | TB/s | of copy "
               "|\n| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
        cudaStream_t st;
        CK(cudaStreamCreateWithFlags(&st, cudaStreamNonBlocking));
        for (auto &sz : sizes) {
            const size_t nb = (sz.bytes + 65535) / 65536 * 65536; /* whole chunks of every slot size */
            const int NB = (int)std::max<size_t>(8, ((size_t)2560 << 20) / nb);
            uint8_t *base;
            CK(cudaMalloc(&base, nb * NB));
            rp_fill_kernel<<<4096, 256>>>((uint32_t *)base, nb * NB / 4, 777u);
            const uint32_t ref0 = rp_ref_xor(base, nb);
            for (int m = 0; m < 3; m++) {
                const rp_cfg &c = best[m];
                if (!rp_fits(c)) continue;
                rp_check(c, base, nb, ref0, sink);
                double us_[2];
                for (int pdl = 0; pdl < 2; pdl++) {
                    cudaGraph_t g;
                    cudaGraphExec_t ge;
                    CK(cudaStreamBeginCapture(st, cudaStreamCaptureModeGlobal));
                    for (int i = 0; i < NB; i++) rp_launch(c, base + (size_t)i * nb, nb, pdl, sink, st);
                    CK(cudaStreamEndCapture(st, &g));
                    CK(cudaGraphInstantiate(&ge, g, 0));
                    std::vector<float> ts;
                    for (int r = 0; r < 12; r++) {
                        CK(cudaEventRecord(e0, st));
                        CK(cudaGraphLaunch(ge, st));
                        CK(cudaEventRecord(e1, st));
                        CK(cudaEventSynchronize(e1));
                        float ms;
                        CK(cudaEventElapsedTime(&ms, e0, e1));
                        if (r >= 2) ts.push_back(ms);
                    }
                    us_[pdl] = median(ts) * 1e3 / NB;
                    CK(cudaGraphExecDestroy(ge));
                    CK(cudaGraphDestroy(g));
                }
                char nm[96];
                rp_name(c, nm, sizeof nm);
                const double t0 = nb / (us_[0] * 1e-6) / 1e12, t1 = nb / (us_[1] * 1e-6) / 1e12;
                printf("| %s | %s | %s | %d | %.2f | %.3f | %.1f%% | %.2f | %.3f | %.1f%% |\n",
                       sz.name, rp_mname[m], nm, NB, us_[0], t0, 100 * t0 / copy, us_[1], t1,
                       100 * t1 / copy);
            }
            CK(cudaFree(base));
        }
        CK(cudaStreamDestroy(st));
    }
    printf("\nRESULT: %d failures\n", fails);
    return fails ? 1 : 0;
}
