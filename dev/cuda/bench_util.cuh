/* Helpers shared by the kernel workbenches in dev/cuda/ (not the backend): checked CUDA and
 * cuBLASLt calls, the median of a sample, and the copy ceiling every timing run prints next to
 * its results (a 1 GiB device-to-device copy: bytes read + written over time, median of 20
 * after a warm-up). A failed call prints "FAIL: ..." (what the device scripts grep for) and
 * exits with status 2. */
#ifndef SK_DEV_BENCH_UTIL_CUH
#define SK_DEV_BENCH_UTIL_CUH

#include <cublasLt.h>
#include <cuda_runtime.h>
#include <stdio.h>
#include <stdlib.h>
#include <algorithm>
#include <vector>

#define CK(call)                                                                                   \
    do {                                                                                           \
        cudaError_t e_ = (call);                                                                   \
        if (e_ != cudaSuccess) {                                                                   \
            fprintf(stderr, "FAIL: CUDA error %s at %s:%d: %s\n", cudaGetErrorString(e_),          \
                    __FILE__, __LINE__, #call);                                                    \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)
#define CKB(call)                                                                                  \
    do {                                                                                           \
        cublasStatus_t s_ = (call);                                                                \
        if (s_ != CUBLAS_STATUS_SUCCESS) {                                                         \
            fprintf(stderr, "FAIL: cuBLASLt error %d at %s:%d: %s\n", (int)s_, __FILE__, __LINE__, \
                    #call);                                                                        \
            exit(2);                                                                               \
        }                                                                                          \
    } while (0)

/* The upper median of v (v[n / 2] once sorted); 0 when empty. */
static inline float median(std::vector<float> v) {
    if (v.empty()) return 0.0f;
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
}

/* The copy ceiling of this run (TB/s), printed. */
static inline double copy_ceiling_tbs(void) {
    cudaEvent_t e0, e1;
    CK(cudaEventCreate(&e0));
    CK(cudaEventCreate(&e1));
    const size_t bytes = (size_t)1 << 30;
    void *a, *b;
    CK(cudaMalloc(&a, bytes));
    CK(cudaMalloc(&b, bytes));
    CK(cudaMemset(a, 1, bytes));
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
    const double tbs = 2.0 * (double)bytes / (median(ts) * 1e-3) / 1e12;
    printf("copy ceiling: %.3f TB/s (1 GiB D2D, read + write, median of 20)\n", tbs);
    CK(cudaFree(a));
    CK(cudaFree(b));
    CK(cudaEventDestroy(e0));
    CK(cudaEventDestroy(e1));
    return tbs;
}

#endif
