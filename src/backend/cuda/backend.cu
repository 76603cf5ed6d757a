/* The CUDA backend: op table, device memory, weights, KV cache, batches.
 *
 * One device (0), one non-blocking stream; every op is a launch on that stream, and only
 * download_f32, sk_cuda_upload_f32, kv_new and destroy wait for it. Activations are fp32. Weights
 * are dequantized on the host (sk_dequant_row) to fp32 in chunks of SK_CUDA_UPLOAD_CHUNK
 * elements, rounded to the backend's half type (bf16 or fp16; fp16 clamps values beyond
 * +-65504, with a warning naming the tensor) into pinned staging and copied while the next
 * chunk is prepared; 1-D tensors (norm weights, biases) also get an fp32 copy. */
#include "backend/cuda/common.cuh"
#include "backend/cuda/cuda_backend.h"
#include "backend/cuda/w4.cuh"
#include "backend/cuda/profile.cuh"

#include <math.h>
#include <string.h>

int sk_cuda_sync_debug = 0;

/* ---- memory ------------------------------------------------------------------------------- */

/* cudaMalloc that returns NULL with SK_ERR_NOMEM set on failure (clearing CUDA's error). Other
 * errors are bugs and abort. */
static void *dev_alloc(size_t bytes, const char *what) {
    void *p = NULL;
    cudaError_t e = cudaMalloc(&p, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        sk_fail(SK_ERR_NOMEM, "cuda: cannot allocate %zu bytes of device memory for %s", bytes,
                what);
        return NULL;
    }
    CUDA_CHECK(e);
    return p;
}

static void *host_alloc_pinned(size_t bytes, const char *what) {
    void *p = NULL;
    cudaError_t e = cudaMallocHost(&p, bytes ? bytes : 1);
    if (e == cudaErrorMemoryAllocation) {
        (void)cudaGetLastError();
        sk_fail(SK_ERR_NOMEM, "cuda: cannot allocate %zu bytes of pinned host memory for %s",
                bytes, what);
        return NULL;
    }
    CUDA_CHECK(e);
    return p;
}

static void *cuda_alloc(sk_backend *be, size_t bytes) { return dev_alloc(bytes, "activations"); }

static void cuda_free(sk_backend *be, void *p) {
    if (!p) return;
    /* Pending kernels may still use p: cudaFree is not stream-ordered. */
    CUDA_CHECK(cudaStreamSynchronize(sk_cuda_ctx(be)->stream));
    CUDA_CHECK(cudaFree(p));
}

/* Activations are fp32: plain copies. A D2H copy into pageable memory returns once complete;
 * the stream sync orders it after pending kernels either way. */
static void cuda_download_f32(sk_backend *be, const void *src, float *dst, size_t n) {
    cuda_ctx *c = sk_cuda_ctx(be);
    if (n == 0) return;
    CUDA_CHECK(
        cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDeviceToHost, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

/* The sync lets the caller reuse src (an H2D copy from pageable memory may return before its
 * DMA ends). */
extern "C" void sk_cuda_upload_f32(sk_backend *be, void *dst, const float *src, size_t n) {
    SK_ASSERT(be && be->ops && strcmp(be->name, "cuda") == 0);
    cuda_ctx *c = sk_cuda_ctx(be);
    if (n == 0) return;
    CUDA_CHECK(
        cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyHostToDevice, c->stream));
    CUDA_CHECK(cudaStreamSynchronize(c->stream));
}

/* ---- weights ------------------------------------------------------------------------------ */

/* Uploads n elements of t's data (type t->type) as the half type to dst, in chunks through the
 * two pinned staging buffers: while chunk i is copied, chunk i+1 is dequantized on the host.
 * Chunks are multiples of the block size, and a tensor's rows are contiguous, so the data is one
 * stream of blocks. fp16: values beyond +-65504 are clamped to it (counted, one warning). */
static void upload_weight_half(cuda_ctx *c, const sk_tensor *t, int64_t n, uint16_t *dst) {
    const int blk = sk_dtype_block(t->type);
    const size_t bb = sk_dtype_block_bytes(t->type);
    const uint8_t *src = (const uint8_t *)t->data;
    int buf = 0;
    int64_t n_clamped = 0;
    float worst = 0.0f;
    for (int64_t off = 0; off < n; off += (int64_t)SK_CUDA_UPLOAD_CHUNK, buf ^= 1) {
        const int64_t chunk = (int64_t)SK_CUDA_UPLOAD_CHUNK;
        const int64_t m = n - off < chunk ? n - off : chunk;
        /* Staging buffer `buf` was last read by the copy two chunks ago (or never). */
        CUDA_CHECK(cudaEventSynchronize(c->stage_done[buf]));
        sk_dequant_row(t->type, src + (size_t)(off / blk) * bb, c->h_f32, m);
        uint16_t *st = c->h_stage[buf];
        if (c->dtype == SK_CUDA_F16) {
            for (int64_t i = 0; i < m; i++) {
                float v = c->h_f32[i];
                if (v > SK_F16_MAX || v < -SK_F16_MAX) {
                    n_clamped++;
                    if (fabsf(v) > worst) worst = fabsf(v);
                    v = v > 0 ? SK_F16_MAX : -SK_F16_MAX;
                }
                st[i] = sk_f32_to_f16(v);
            }
        } else {
            for (int64_t i = 0; i < m; i++) st[i] = sk_f32_to_bf16(c->h_f32[i]);
        }
        CUDA_CHECK(cudaMemcpyAsync(dst + off, st, (size_t)m * sizeof(uint16_t),
                                   cudaMemcpyHostToDevice, c->stream));
        CUDA_CHECK(cudaEventRecord(c->stage_done[buf], c->stream));
    }
    if (n_clamped)
        SK_LOGW("cuda: tensor '%s': %lld values beyond the fp16 range (largest magnitude %g) "
                "clamped to +-65504",
                t->name, (long long)n_clamped, (double)worst);
}

static void cuda_weight_free(sk_backend *be, sk_weight *w) {
    if (!w) return;
    CUDA_CHECK(cudaStreamSynchronize(sk_cuda_ctx(be)->stream));
    if (w->h) CUDA_CHECK(cudaFree(w->h));
    if (w->f32) CUDA_CHECK(cudaFree(w->f32));
    if (w->q4) CUDA_CHECK(cudaFree(w->q4));
    if (w->q4s) CUDA_CHECK(cudaFree(w->q4s));
    free(w);
}

/* Checks t's type and shape and sets *rows, *cols ([prod(outer dims), last dim]). */
static sk_status weight_shape(const sk_tensor *t, int64_t *rows, int64_t *cols) {
    if ((unsigned)t->type >= SK_DTYPE_COUNT || t->type == SK_I32)
        return sk_fail(SK_ERR_UNSUPPORTED,
                       "cuda: tensor '%s' has type %s, which is not a weight type", t->name,
                       sk_dtype_name(t->type));
    if (t->n_dims < 1 || t->n_dims > SK_MAX_DIMS)
        return sk_fail(SK_ERR_FORMAT, "cuda: tensor '%s' has %d dims", t->name, t->n_dims);
    int64_t c = t->shape[t->n_dims - 1], r = 1;
    for (int i = 0; i < t->n_dims - 1; i++) {
        if (t->shape[i] <= 0 || r > INT64_MAX / t->shape[i])
            return sk_fail(SK_ERR_FORMAT, "cuda: tensor '%s': bad shape", t->name);
        r *= t->shape[i];
    }
    if (c <= 0 || c % sk_dtype_block(t->type) != 0)
        return sk_fail(SK_ERR_FORMAT, "cuda: tensor '%s': bad shape for %s", t->name,
                       sk_dtype_name(t->type));
    if ((uint64_t)r > (SIZE_MAX / sizeof(float)) / (uint64_t)c)
        return sk_fail(SK_ERR_NOMEM, "cuda: tensor '%s' is too large", t->name);
    *rows = r;
    *cols = c;
    return SK_OK;
}

/* A weight of rows x cols with its device buffers allocated (the fp32 copy for 1-D tensors);
 * NULL with SK_ERR_NOMEM set when device memory runs out. */
static sk_weight *weight_alloc(sk_backend *be, const sk_tensor *t, int64_t rows, int64_t cols) {
    sk_weight *w = (sk_weight *)sk_xcalloc(1, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    w->h = dev_alloc((size_t)(rows * cols) * sizeof(uint16_t), t->name);
    if (w->h && t->n_dims == 1) w->f32 = (float *)dev_alloc((size_t)cols * sizeof(float), t->name);
    if (!w->h || (t->n_dims == 1 && !w->f32)) {
        cuda_weight_free(be, w);
        return NULL;
    }
    return w;
}

/* An INT4 weight (w4.cuh) of rows x cols, group g: device buffers allocated, NULL with
 * SK_ERR_NOMEM set when device memory runs out. */
static sk_weight *w4_alloc(sk_backend *be, const char *name, int64_t rows, int64_t cols, int g) {
    sk_weight *w = (sk_weight *)sk_xcalloc(1, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    w->q4_group = g;
    w->q4 = (uint32_t *)dev_alloc(sk_w4_words(rows, cols) * sizeof(uint32_t), name); /* tile-major */
    if (w->q4) w->q4s = (__half2 *)dev_alloc((size_t)(rows * (cols / g)) * sizeof(__half2), name);
    if (!w->q4 || !w->q4s) {
        cuda_weight_free(be, w);
        return NULL;
    }
    return w;
}

/* Q4G blocks (dtype.h) repacked on the host into the device layout (w4.cuh), a slab of rows at
 * a time through pageable buffers (synchronous copies: loading is not the hot path). */
static sk_status w4_load(sk_backend *be, const sk_tensor *t, int64_t rows, int64_t cols,
                         sk_weight **out) {
    const int g = sk_dtype_q4g_group(t->type);
    if (cols % g != 0 || cols % 32 != 0)
        return sk_fail(SK_ERR_FORMAT, "cuda: INT4 tensor '%s': %lld columns, not a multiple of its "
                       "group %d", t->name, (long long)cols, g);
    sk_weight *w = w4_alloc(be, t->name, rows, cols, g);
    if (!w) return SK_ERR_NOMEM;
    const size_t row_bytes = sk_dtype_row_bytes(t->type, cols);
    const int64_t slab = 1024;
    uint32_t *words = (uint32_t *)malloc((size_t)slab * (size_t)(cols / 8) * sizeof(uint32_t));
    uint32_t *tiles = (uint32_t *)malloc(sk_w4_words(slab, cols) * sizeof(uint32_t));
    uint16_t *sc = (uint16_t *)malloc((size_t)slab * (size_t)(cols / g) * 2 * sizeof(uint16_t));
    if (!words || !tiles || !sc) {
        free(words), free(tiles), free(sc);
        cuda_weight_free(be, w);
        return sk_fail(SK_ERR_NOMEM, "cuda: out of host memory repacking '%s'", t->name);
    }
    cuda_ctx *c = sk_cuda_ctx(be);
    for (int64_t r0 = 0; r0 < rows; r0 += slab) {
        const int64_t m = rows - r0 < slab ? rows - r0 : slab;
        for (int64_t r = 0; r < m; r++)
            sk_w4_repack_row((const uint8_t *)t->data + (size_t)(r0 + r) * row_bytes, g, (int)cols,
                             words + (size_t)r * (size_t)(cols / 8),
                             sc + (size_t)r * (size_t)(cols / g) * 2);
        sk_w4_tile_host(words, m, cols, tiles); /* slab % 16 == 0: r0 starts a tile */
        CUDA_CHECK(cudaMemcpyAsync(w->q4 + sk_w4_widx(r0, 0, cols), tiles,
                                   sk_w4_words(m, cols) * sizeof(uint32_t),
                                   cudaMemcpyHostToDevice, c->stream));
        CUDA_CHECK(cudaMemcpyAsync(w->q4s + (size_t)r0 * (size_t)(cols / g), sc,
                                   (size_t)m * (size_t)(cols / g) * sizeof(__half2),
                                   cudaMemcpyHostToDevice, c->stream));
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
    }
    free(words), free(tiles), free(sc);
    *out = w;
    return SK_OK;
}

static sk_status cuda_weight_load(sk_backend *be, const sk_tensor *t, sk_weight **out) {
    cuda_ctx *c = sk_cuda_ctx(be);
    *out = NULL;
    int64_t rows, cols;
    SK_TRY(weight_shape(t, &rows, &cols));
    const size_t row_bytes = sk_dtype_row_bytes(t->type, cols);
    if (!t->data || (uint64_t)rows > SIZE_MAX / row_bytes || (size_t)rows * row_bytes > t->nbytes)
        return sk_fail(SK_ERR_FORMAT,
                       "cuda: tensor '%s': %zu bytes of data, too few for its shape", t->name,
                       t->data ? t->nbytes : 0);
    if (sk_dtype_q4g_group(t->type) && t->n_dims == 2) return w4_load(be, t, rows, cols, out);
    sk_weight *w = weight_alloc(be, t, rows, cols);
    if (!w) return SK_ERR_NOMEM;
    upload_weight_half(c, t, rows * cols, (uint16_t *)w->h);
    if (t->n_dims == 1) {
        float *h = (float *)malloc((size_t)cols * sizeof(float));
        if (!h) {
            cuda_weight_free(be, w);
            return sk_fail(SK_ERR_NOMEM, "cuda: tensor '%s': out of host memory", t->name);
        }
        sk_dequant_row(t->type, t->data, h, cols);
        /* On the stream (a plain cudaMemcpy from pageable memory may return before its DMA
         * ends, unordered with our non-blocking stream); the sync lets h go. */
        CUDA_CHECK(cudaMemcpyAsync(w->f32, h, (size_t)cols * sizeof(float),
                                   cudaMemcpyHostToDevice, c->stream));
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        free(h);
    }
    *out = w;
    return SK_OK;
}

/* Weights written on the stream are complete before the op returns: the decode GEMVs are
 * launched with programmatic dependent launch and read their weights before
 * griddepcontrol.wait (pdl.cuh), so a GEMV queued right after a kernel that writes its weight
 * could otherwise read it unwritten (a test that draws a weight, then multiplies). */
static void weights_written(sk_backend *be) {
    CUDA_CHECK(cudaStreamSynchronize(sk_cuda_ctx(be)->stream));
}

/* Element i = mean + std * sqrt(3) * sk_rand_uniform(seed, i), computed on the device with the
 * same arithmetic as the CPU backend (see sk_cuda_fill_random), then stored as the weight's
 * half (and, 1-D, fp32) copy. */
static sk_status cuda_weight_random(sk_backend *be, const sk_tensor *t, float mean, float std,
                                    uint64_t seed, sk_weight **out) {
    *out = NULL;
    int64_t rows, cols;
    SK_TRY(weight_shape(t, &rows, &cols));
    if (sk_dtype_q4g_group(t->type) && t->n_dims == 2) {
        /* Synthetic INT4: random nibbles, zero points 7/8, d = std / 4.61 (std of q - z). */
        const int g = sk_dtype_q4g_group(t->type);
        if (cols % g != 0 || cols % 32 != 0)
            return sk_fail(SK_ERR_ARG, "cuda: INT4 tensor '%s': %lld columns, not a multiple of "
                           "its group %d", t->name, (long long)cols, g);
        sk_weight *w = w4_alloc(be, t->name, rows, cols, g);
        if (!w) return SK_ERR_NOMEM;
        sk_w4_random_kernel<<<4096, 256, 0, sk_cuda_ctx(be)->stream>>>(
            w->q4, w->q4s, g, rows, (int)cols, std / 4.61f, seed);
        CUDA_CHECK_LAUNCH();
        (void)mean;
        weights_written(be);
        *out = w;
        return SK_OK;
    }
    sk_weight *w = weight_alloc(be, t, rows, cols);
    if (!w) return SK_ERR_NOMEM;
    const float a = std * 1.7320508f; /* as the CPU backend computes it */
    sk_cuda_fill_random(sk_cuda_ctx(be), w->h, w->f32, (size_t)(rows * cols), mean, a, seed);
    weights_written(be);
    *out = w;
    return SK_OK;
}

/* weight_concat of INT4 weights: one group size and column count (else SK_ERR_ARG). */
static sk_status w4_concat(sk_backend *be, sk_weight *const *parts, int n, sk_weight **out) {
    int64_t rows = 0;
    const int64_t cols = parts[0]->cols;
    const int g = parts[0]->q4_group;
    for (int i = 0; i < n; i++) {
        if (!parts[i]->q4 || parts[i]->cols != cols || parts[i]->q4_group != g)
            return sk_fail(SK_ERR_ARG, "cuda: weight_concat of weights of different types, "
                           "groups or column counts");
        rows += parts[i]->rows;
    }
    sk_weight *w = w4_alloc(be, "a fused INT4 weight", rows, cols, g);
    if (!w) return SK_ERR_NOMEM;
    size_t os = 0;
    int64_t r0 = 0;
    cudaStream_t s = sk_cuda_ctx(be)->stream;
    for (int i = 0; i < n; i++) {
        /* q4 is tile-major (w4_layout.h): a part need not start a tile, so its rows are copied
         * word by word into their places */
        const size_t ns = (size_t)(parts[i]->rows * (cols / g));
        const int64_t nw = parts[i]->rows * (cols / 8);
        sk_w4_rows_copy_kernel<<<(unsigned)((nw + 255) / 256 < 65535 ? (nw + 255) / 256 : 65535), 256, 0, s>>>(
            w->q4, r0, parts[i]->q4, parts[i]->rows, cols);
        CUDA_CHECK_LAUNCH();
        CUDA_CHECK(cudaMemcpyAsync(w->q4s + os, parts[i]->q4s, ns * 4, cudaMemcpyDeviceToDevice, s));
        os += ns, r0 += parts[i]->rows;
    }
    weights_written(be);
    *out = w;
    return SK_OK;
}

/* Rows of parts[0..n-1] (2-D weights of one column count) one after the other in a new weight:
 * device-to-device copies on the stream. The parts stay valid (the caller frees them). */
static sk_status cuda_weight_concat(sk_backend *be, sk_weight *const *parts, int n,
                                    sk_weight **out) {
    *out = NULL;
    SK_ASSERT(n >= 1);
    if (parts[0]->q4) return w4_concat(be, parts, n, out);
    int64_t rows = 0;
    const int64_t cols = parts[0]->cols;
    for (int i = 0; i < n; i++) {
        SK_ASSERT(parts[i] && parts[i]->h && !parts[i]->f32);
        if (parts[i]->cols != cols)
            return sk_fail(SK_ERR_ARG, "cuda: weight_concat of weights with %lld and %lld columns",
                           (long long)cols, (long long)parts[i]->cols);
        rows += parts[i]->rows;
    }
    sk_weight *w = (sk_weight *)sk_xcalloc(1, sizeof *w);
    w->rows = rows;
    w->cols = cols;
    w->h = dev_alloc((size_t)(rows * cols) * sizeof(uint16_t), "a fused weight");
    if (!w->h) {
        free(w);
        return SK_ERR_NOMEM;
    }
    size_t off = 0;
    for (int i = 0; i < n; i++) {
        const size_t bytes = (size_t)(parts[i]->rows * cols) * sizeof(uint16_t);
        CUDA_CHECK(cudaMemcpyAsync((char *)w->h + off, parts[i]->h, bytes,
                                   cudaMemcpyDeviceToDevice, sk_cuda_ctx(be)->stream));
        off += bytes;
    }
    weights_written(be);
    *out = w;
    return SK_OK;
}

/* ---- KV cache ----------------------------------------------------------------------------- */

static void cuda_kv_free(sk_backend *be, sk_kv_cache *kv) {
    if (!kv) return;
    CUDA_CHECK(cudaStreamSynchronize(sk_cuda_ctx(be)->stream));
    void *bufs[] = {kv->k, kv->v, kv->d_indptr, kv->d_indices, kv->d_kv_len, kv->q_half,
                    kv->part_out, kv->part_lse};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++)
        if (bufs[i]) CUDA_CHECK(cudaFree(bufs[i]));
    free(kv);
}

static sk_status cuda_kv_new(sk_backend *be, int n_layers, int n_kv_heads, int head_dim, int n_ctx,
                             int n_seq, sk_kv_cache **out) {
    *out = NULL;
    if (n_layers <= 0 || n_kv_heads <= 0 || head_dim <= 0 || n_ctx <= 0 || n_seq <= 0)
        return sk_fail(SK_ERR_ARG, "cuda: KV cache with a non-positive size");
    const int ps = SK_CUDA_PAGE_SIZE, pps = (n_ctx + ps - 1) / ps;
    size_t le = (size_t)n_seq, total;
    if (__builtin_mul_overflow(le, (size_t)pps * (size_t)ps, &le) ||
        __builtin_mul_overflow(le, (size_t)n_kv_heads, &le) ||
        __builtin_mul_overflow(le, (size_t)head_dim, &le) ||
        __builtin_mul_overflow(le, (size_t)n_layers, &total) ||
        __builtin_mul_overflow(total, sizeof(uint16_t), &total))
        return sk_fail(SK_ERR_NOMEM, "cuda: KV cache size overflows");
    sk_kv_cache *kv = (sk_kv_cache *)sk_xcalloc(1, sizeof *kv);
    kv->n_layers = n_layers;
    kv->n_kv_heads = n_kv_heads;
    kv->head_dim = head_dim;
    kv->n_ctx = n_ctx;
    kv->n_seq = n_seq;
    kv->page_size = ps;
    kv->pages_per_seq = pps;
    kv->n_pages = n_seq * pps;
    kv->layer_elems = le;
    kv->k = dev_alloc(total, "the KV cache (K)");
    if (kv->k) kv->v = dev_alloc(total, "the KV cache (V)");
    if (kv->v) kv->d_indptr = (int32_t *)dev_alloc(sizeof(int32_t) * (size_t)(n_seq + 1), "page tables");
    if (kv->d_indptr)
        kv->d_indices = (int32_t *)dev_alloc(sizeof(int32_t) * (size_t)n_seq * (size_t)pps, "page tables");
    if (kv->d_indices) kv->d_kv_len = (int32_t *)dev_alloc(sizeof(int32_t) * (size_t)n_seq, "page tables");
    if (!kv->k || !kv->v || !kv->d_kv_len) {
        cuda_kv_free(be, kv);
        return SK_ERR_NOMEM;
    }
    /* Never read before written (attention reads positions <= the current one only), but a
     * defined value keeps a stray read reproducible. */
    CUDA_CHECK(cudaMemsetAsync(kv->k, 0, total, sk_cuda_ctx(be)->stream));
    CUDA_CHECK(cudaMemsetAsync(kv->v, 0, total, sk_cuda_ctx(be)->stream));
    *out = kv;
    return SK_OK;
}

/* A pool for page tables: no slot tables (n_seq 0); the decode plan is made for max_seq_len.
 * Page sizes: those of the decode and prefill kernels. */
static sk_status cuda_kv_pool_new(sk_backend *be, const sk_kv_desc *d, sk_kv_cache **out) {
    *out = NULL;
    if (!d || d->n_layers <= 0 || d->n_kv_heads <= 0 || d->head_dim <= 0 || d->n_pages <= 0 ||
        d->max_seq_len <= 0)
        return sk_fail(SK_ERR_ARG, "cuda: KV pool with a non-positive size");
    const int ps = d->page_size;
    if (ps != 16 && ps != 32 && ps != 64 && ps != 128)
        return sk_fail(SK_ERR_ARG, "cuda: KV page size %d is not one of 16, 32, 64, 128", ps);
    size_t le = (size_t)d->n_pages, total;
    if (__builtin_mul_overflow(le, (size_t)ps, &le) ||
        __builtin_mul_overflow(le, (size_t)d->n_kv_heads, &le) ||
        __builtin_mul_overflow(le, (size_t)d->head_dim, &le) ||
        __builtin_mul_overflow(le, (size_t)d->n_layers, &total) ||
        __builtin_mul_overflow(total, sizeof(uint16_t), &total))
        return sk_fail(SK_ERR_NOMEM, "cuda: KV pool size overflows");
    sk_kv_cache *kv = (sk_kv_cache *)sk_xcalloc(1, sizeof *kv);
    kv->n_layers = d->n_layers;
    kv->n_kv_heads = d->n_kv_heads;
    kv->head_dim = d->head_dim;
    kv->n_ctx = d->max_seq_len;
    kv->page_size = ps;
    kv->n_pages = d->n_pages;
    kv->layer_elems = le;
    kv->k = dev_alloc(total, "the KV pool (K)");
    if (kv->k) kv->v = dev_alloc(total, "the KV pool (V)");
    if (!kv->k || !kv->v) {
        cuda_kv_free(be, kv);
        return SK_ERR_NOMEM;
    }
    CUDA_CHECK(cudaMemsetAsync(kv->k, 0, total, sk_cuda_ctx(be)->stream));
    CUDA_CHECK(cudaMemsetAsync(kv->v, 0, total, sk_cuda_ctx(be)->stream));
    *out = kv;
    return SK_OK;
}

static void cuda_mem_info(sk_backend *be, size_t *free_bytes, size_t *total_bytes) {
    size_t f = 0, t = 0;
    CUDA_CHECK(cudaStreamSynchronize(sk_cuda_ctx(be)->stream));
    CUDA_CHECK(cudaMemGetInfo(&f, &t));
    if (free_bytes) *free_bytes = f;
    if (total_bytes) *total_bytes = t;
}

/* ---- batch -------------------------------------------------------------------------------- */

/* ---- graphs: decode steps replayed with one launch ---------------------------------- */

static sk_status cuda_capture_begin(sk_backend *be) {
    cudaError_t e = cudaStreamBeginCapture(sk_cuda_ctx(be)->stream, cudaStreamCaptureModeThreadLocal);
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        return sk_fail(SK_ERR_DEVICE, "cuda: cannot start a graph capture: %s", cudaGetErrorString(e));
    }
    return SK_OK;
}

static void *cuda_capture_end(sk_backend *be) {
    cudaGraph_t g = NULL;
    cudaGraphExec_t x = NULL;
    cudaError_t e = cudaStreamEndCapture(sk_cuda_ctx(be)->stream, &g);
    if (e == cudaSuccess) e = cudaGraphInstantiate(&x, g, 0);
    if (g) CUDA_CHECK(cudaGraphDestroy(g));
    if (e != cudaSuccess) {
        (void)cudaGetLastError();
        sk_fail(SK_ERR_DEVICE, "cuda: graph capture failed: %s", cudaGetErrorString(e));
        return NULL;
    }
    return (void *)x;
}

static void cuda_graph_launch(sk_backend *be, void *graph) {
    CUDA_CHECK(cudaGraphLaunch((cudaGraphExec_t)graph, sk_cuda_ctx(be)->stream));
}

static void cuda_graph_free(sk_backend *be, void *graph) {
    CUDA_CHECK(cudaStreamSynchronize(sk_cuda_ctx(be)->stream));
    CUDA_CHECK(cudaGraphExecDestroy((cudaGraphExec_t)graph));
}

/* Checks pt against b on the host (malformed tables are bad input, not bugs). */
static sk_status check_tables(const sk_batch *b, const sk_page_tables *pt) {
    if (pt->n_seqs <= 0 || !pt->indptr || !pt->ids || pt->indptr[0] != 0)
        return sk_fail(SK_ERR_ARG, "cuda: batch page tables: %d sequences, indptr[0] %d",
                       pt->n_seqs, pt->indptr ? pt->indptr[0] : -1);
    for (int s = 0; s < pt->n_seqs; s++)
        if (pt->indptr[s + 1] < pt->indptr[s])
            return sk_fail(SK_ERR_ARG, "cuda: batch page tables: indptr decreases at %d", s);
    for (int i = 0; i < b->n_tokens; i++)
        if (b->seq[i] < 0 || b->seq[i] >= pt->n_seqs ||
            pt->indptr[b->seq[i] + 1] == pt->indptr[b->seq[i]])
            return sk_fail(SK_ERR_ARG, "cuda: batch row %d: sequence %d is not in the %d "
                           "sequences of the page tables or has no pages", i, b->seq[i],
                           pt->n_seqs);
    return SK_OK;
}

/* pt == NULL: slot mode. */
static sk_status cuda_begin_paged(sk_backend *be, const sk_batch *b, const sk_page_tables *pt) {
    cuda_ctx *c = sk_cuda_ctx(be);
    if (!b || b->n_tokens <= 0 || !b->tokens || !b->pos || !b->seq)
        return sk_fail(SK_ERR_ARG, "cuda: empty batch");
    const int T = b->n_tokens;
    for (int i = 0; i < T; i++)
        if (b->pos[i] < 0 || b->seq[i] < 0)
            return sk_fail(SK_ERR_ARG, "cuda: batch row %d: position %d, sequence %d", i,
                           b->pos[i], b->seq[i]);
    if (pt) SK_TRY(check_tables(b, pt));
    const int n_ids = pt ? pt->indptr[pt->n_seqs] : 0;
    /* The previous batch's copy may still be reading the pinned buffer. */
    CUDA_CHECK(cudaEventSynchronize(c->batch_copied));
    if (T > c->cap || n_ids > c->ids_cap) {
        int cap = T > c->cap ? (T > 2 * c->cap ? T : 2 * c->cap) : c->cap;
        int ids_cap = n_ids > c->ids_cap ? (n_ids > 2 * c->ids_cap ? n_ids : 2 * c->ids_cap) : c->ids_cap;
        /* Captured decode graphs hold d_batch's addresses: sized once for any session chunk
         * (SK_SESSION_CHUNK = 512 tokens) and a large batch's tables, so it rarely moves. */
        if (cap < 1024) cap = 1024;
        if (ids_cap < 16384) ids_cap = 16384;
        const size_t n = 5 * (size_t)cap + (size_t)ids_cap;
        if (n > SIZE_MAX / sizeof(int32_t))
            return sk_fail(SK_ERR_NOMEM, "cuda: batch of %d tokens is too large", T);
        int32_t *h = (int32_t *)host_alloc_pinned(sizeof(int32_t) * n, "a batch");
        if (!h) return SK_ERR_NOMEM;
        int32_t *d = (int32_t *)dev_alloc(sizeof(int32_t) * n, "a batch");
        if (!d) {
            CUDA_CHECK(cudaFreeHost(h));
            return SK_ERR_NOMEM;
        }
        /* Kernels of the previous batch may still read d_batch. */
        CUDA_CHECK(cudaStreamSynchronize(c->stream));
        if (c->h_batch) CUDA_CHECK(cudaFreeHost(c->h_batch));
        if (c->d_batch) {
            CUDA_CHECK(cudaFree(c->d_batch));
            be->addr_epoch++; /* graphs recorded the old addresses */
        }
        c->h_batch = h;
        c->d_batch = d;
        c->cap = cap;
        c->ids_cap = ids_cap;
    }
    if (c->mm_tmp != c->seen_mm_tmp || c->w4_tmp != c->seen_w4_tmp) {
        /* matmul grew one of its buffers during the last batch: graphs may hold the old one. */
        c->seen_mm_tmp = c->mm_tmp;
        c->seen_w4_tmp = c->w4_tmp;
        be->addr_epoch++;
    }
    c->T = T;
    sk_carveout_rows() = T; /* (pdl.cuh: the launches' carveout preference) */
    c->paged = pt != NULL;
    c->batch_gen++;
    c->pn_hint = NULL, c->pn_x = NULL; /* nothing carried across steps */
    memcpy(c->h_batch, b->tokens, sizeof(int32_t) * (size_t)T);
    memcpy(c->h_batch + c->cap, b->pos, sizeof(int32_t) * (size_t)T);
    memcpy(c->h_batch + 2 * c->cap, b->seq, sizeof(int32_t) * (size_t)T);
    /* Rows each alone in their sequence (the decode kernel's steps): a mark per sequence. */
    int max_seq = 0;
    for (int i = 0; i < T; i++)
        if (b->seq[i] > max_seq) max_seq = b->seq[i];
    int need = max_seq + 1;
    if (pt && pt->n_seqs + 1 > need) need = pt->n_seqs + 1;
    if (need > c->indptr_cap) {
        c->indptr_cap = need > 2 * c->indptr_cap ? need : 2 * c->indptr_cap;
        free(c->h_indptr);
        c->h_indptr = (int32_t *)sk_xmalloc(sizeof(int32_t) * (size_t)c->indptr_cap);
    }
    /* h_indptr doubles as the mark array before it takes the tables. */
    for (int s = 0; s <= max_seq; s++) c->h_indptr[s] = 0;
    c->rows_distinct = true;
    for (int i = 0; i < T; i++) {
        if (c->h_indptr[b->seq[i]]) c->rows_distinct = false;
        c->h_indptr[b->seq[i]] = 1;
    }
    size_t n_copy = 3 * (size_t)c->cap;
    if (pt) {
        c->n_seqs = pt->n_seqs;
        memcpy(c->h_indptr, pt->indptr, sizeof(int32_t) * (size_t)(pt->n_seqs + 1));
        int32_t *row_pages = c->h_batch + 3 * c->cap, *kv_len = c->h_batch + 4 * c->cap;
        for (int i = 0; i < T; i++) {
            row_pages[i] = pt->indptr[b->seq[i]];
            kv_len[i] = b->pos[i] + 1;
        }
        memcpy(c->h_batch + 5 * c->cap, pt->ids, sizeof(int32_t) * (size_t)n_ids);
        n_copy = 5 * (size_t)c->cap + (size_t)n_ids;
    }
    /* One copy from the start of the block: the arrays' offsets never change. */
    CUDA_CHECK(cudaMemcpyAsync(c->d_batch, c->h_batch, sizeof(int32_t) * n_copy,
                               cudaMemcpyHostToDevice, c->stream));
    CUDA_CHECK(cudaEventRecord(c->batch_copied, c->stream));
    return SK_OK;
}

static sk_status cuda_begin(sk_backend *be, const sk_batch *b) {
    return cuda_begin_paged(be, b, NULL);
}

/* ---- lifecycle ---------------------------------------------------------------------------- */

#ifdef SAKER_TRACE
/* pdl.cuh's trace ring: a counter, three words of padding, SK_TRACE_CAP records of 4 words. */
static unsigned long long *g_trace;
unsigned long long *sk_trace_buffer(void) {
    if (!g_trace) {
        const size_t bytes = (4 + 4 * (size_t)SK_TRACE_CAP) * sizeof(unsigned long long);
        CUDA_CHECK(cudaMalloc((void **)&g_trace, bytes));
        CUDA_CHECK(cudaMemset(g_trace, 0, bytes));
        CUDA_CHECK(cudaDeviceSynchronize());
    }
    return g_trace;
}
/* Writes the ring (records in ring order; the counter says where it wrapped) to
 * $SAKER_TRACE_FILE as raw little-endian words: counter, then the records. */
static void trace_dump(void) {
    const char *path = getenv("SAKER_TRACE_FILE");
    if (!g_trace || !path) return;
    const size_t words = 4 + 4 * (size_t)SK_TRACE_CAP;
    unsigned long long *h = (unsigned long long *)malloc(words * sizeof *h);
    FILE *f = h ? fopen(path, "wb") : NULL;
    if (f && cudaMemcpy(h, g_trace, words * sizeof *h, cudaMemcpyDeviceToHost) == cudaSuccess &&
        fwrite(h, sizeof *h, words, f) == words)
        fprintf(stderr, "saker: trace: %llu records written to %s\n", h[0], path);
    else
        fprintf(stderr, "saker: trace: writing %s failed\n", path);
    if (f) fclose(f);
    free(h);
}
#endif

static void cuda_destroy(sk_backend *be) {
    if (!be) return;
    cuda_ctx *c = (cuda_ctx *)be->ctx;
    if (c) {
        if (c->stream) CUDA_CHECK(cudaStreamSynchronize(c->stream));
#ifdef SAKER_TRACE
        trace_dump();
#endif
        sk_cuda_mm_free(c->mm);
        if (c->h_batch) CUDA_CHECK(cudaFreeHost(c->h_batch));
        if (c->d_batch) CUDA_CHECK(cudaFree(c->d_batch));
        free(c->h_indptr);
        if (c->d_scratch) CUDA_CHECK(cudaFree(c->d_scratch));
        if (c->mm_tmp) CUDA_CHECK(cudaFree(c->mm_tmp));
        if (c->w4_tmp) CUDA_CHECK(cudaFree(c->w4_tmp));
        if (c->pn_xg) CUDA_CHECK(cudaFree(c->pn_xg));
        if (c->pn_ssq) CUDA_CHECK(cudaFree(c->pn_ssq));
        if (c->d_argmax) CUDA_CHECK(cudaFree(c->d_argmax));
        if (c->h_argmax) CUDA_CHECK(cudaFreeHost(c->h_argmax));
        if (c->d_sample) CUDA_CHECK(cudaFree(c->d_sample));
        if (c->h_sample) CUDA_CHECK(cudaFreeHost(c->h_sample));
        sk_cuda_pf_free(c->pf);
        if (c->d_rope_freq) CUDA_CHECK(cudaFree(c->d_rope_freq));
        for (int i = 0; i < 2; i++) {
            if (c->h_stage[i]) CUDA_CHECK(cudaFreeHost(c->h_stage[i]));
            if (c->stage_done[i]) CUDA_CHECK(cudaEventDestroy(c->stage_done[i]));
        }
        if (c->batch_copied) CUDA_CHECK(cudaEventDestroy(c->batch_copied));
        free(c->h_f32);
        if (c->stream) CUDA_CHECK(cudaStreamDestroy(c->stream));
        free(c);
    }
    free(be);
}

/* Filled by name (C++ has no designated initializers before C++20), so a reordered or extended
 * sk_backend_ops cannot silently shift the entries. */
static sk_backend_ops g_cuda_ops;

static void ops_init(void) {
    sk_backend_ops *o = &g_cuda_ops;
    memset(o, 0, sizeof *o);
    o->destroy = cuda_destroy;
    o->alloc = cuda_alloc;
    o->free = cuda_free;
    o->download_f32 = cuda_download_f32;
    o->upload_f32 = sk_cuda_upload_f32;
    o->weight_load = cuda_weight_load;
    o->weight_free = cuda_weight_free;
    o->weight_random = cuda_weight_random;
    o->weight_concat = cuda_weight_concat;
    o->kv_new = cuda_kv_new;
    o->kv_pool_new = cuda_kv_pool_new;
    o->kv_free = cuda_kv_free;
    o->mem_info = cuda_mem_info;
    o->begin = cuda_begin;
    o->begin_paged = cuda_begin_paged;
    o->capture_begin = cuda_capture_begin;
    o->capture_end = cuda_capture_end;
    o->graph_launch = cuda_graph_launch;
    o->graph_free = cuda_graph_free;
    o->embed = sk_cuda_embed;
    o->rmsnorm = sk_cuda_rmsnorm;
    o->layernorm = sk_cuda_layernorm;
    o->matmul = sk_cuda_matmul;
    o->matmul_add = sk_cuda_matmul_add;
    o->matmul_swiglu = sk_cuda_matmul_swiglu;
    o->rmsnorm_matmul = sk_cuda_rmsnorm_matmul;
    o->norm_next = sk_cuda_norm_next;
    o->rmsnorm_matmul_swiglu = sk_cuda_rmsnorm_matmul_swiglu;
    o->add = sk_cuda_add;
    o->swiglu = sk_cuda_swiglu;
    o->gelu = sk_cuda_gelu;
    o->gelu_matmul_add = sk_cuda_gelu_matmul_add;
    o->rope_attention = sk_cuda_rope_attention;
    o->argmax = sk_cuda_argmax;
    o->sample = sk_cuda_sample;
    o->rope = sk_cuda_rope;
    o->attention = sk_cuda_attention;
    sk_cuda_prof_init(o); /* SAKER_PROFILE=1: timed entries (profile.cuh) */
}

extern "C" sk_status sk_backend_cuda_new(const char *dtype, sk_backend **out) {
    *out = NULL;
    sk_cuda_dtype dt;
    if (!dtype || strcmp(dtype, "bf16") == 0)
        dt = SK_CUDA_BF16;
    else if (strcmp(dtype, "fp16") == 0)
        dt = SK_CUDA_F16;
    else
        return sk_fail(SK_ERR_ARG, "cuda: dtype '%s' is not one of bf16, fp16", dtype);
    int n_dev = 0;
    cudaError_t e = cudaGetDeviceCount(&n_dev);
    if (e != cudaSuccess || n_dev == 0) {
        (void)cudaGetLastError();
        return sk_fail(SK_ERR_DEVICE, "cuda: no usable CUDA device (%s)",
                       e != cudaSuccess ? cudaGetErrorString(e) : "device count is 0");
    }
    cudaDeviceProp prop;
    CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    /* The kernels are built for sm_90a only (CMAKE_CUDA_ARCHITECTURES 90a), which runs on
     * compute capability 9.0 alone. */
    if (prop.major != 9 || prop.minor != 0)
        return sk_fail(SK_ERR_DEVICE,
                       "cuda: device 0 (%s) has compute capability %d.%d; this build runs on "
                       "9.0 (Hopper) only",
                       prop.name, prop.major, prop.minor);
    const char *sync = getenv("SAKER_CUDA_SYNC");
    sk_cuda_sync_debug = sync && *sync && strcmp(sync, "0") != 0;

    cuda_ctx *c = (cuda_ctx *)sk_xcalloc(1, sizeof *c);
    sk_backend *be = (sk_backend *)sk_xcalloc(1, sizeof *be);
    ops_init();
    be->ops = &g_cuda_ops;
    be->name = "cuda";
    be->weight_elem_bytes = 2;
    be->act_bytes = sizeof(float);
    be->kv_page_size = SK_CUDA_PAGE_SIZE;
    be->kv_elem_bytes = 2;
    be->ctx = c;
    sk_status st = SK_ERR_NOMEM;

    c->device = 0;
    c->dtype = dt;
    CUDA_CHECK(cudaSetDevice(0));
    CUDA_CHECK(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
    CUDA_CHECK(cudaEventCreateWithFlags(&c->batch_copied, cudaEventDisableTiming));
    for (int i = 0; i < 2; i++) {
        CUDA_CHECK(cudaEventCreateWithFlags(&c->stage_done[i], cudaEventDisableTiming));
        c->h_stage[i] = (uint16_t *)host_alloc_pinned(SK_CUDA_UPLOAD_CHUNK * sizeof(uint16_t),
                                                      "weight upload staging");
        if (!c->h_stage[i]) goto fail;
    }
    c->h_f32 = (float *)malloc(SK_CUDA_UPLOAD_CHUNK * sizeof(float));
    if (!c->h_f32) {
        sk_fail(SK_ERR_NOMEM, "cuda: out of host memory for weight upload staging");
        goto fail;
    }
    c->d_scratch = (float *)dev_alloc(SK_CUDA_SCRATCH_FLOATS * sizeof(float), "scratch");
    if (!c->d_scratch) goto fail;
    c->d_rope_freq = (float *)dev_alloc(SK_CUDA_ROPE_MAX_HALF * sizeof(float), "RoPE");
    if (!c->d_rope_freq) goto fail;
    st = sk_cuda_mm_new(c, &c->mm);
    if (st != SK_OK) goto fail;
    SK_LOGI("cuda: %s, %d SMs, %.1f GiB, %s weights and KV cache, fp32 activations", prop.name,
            prop.multiProcessorCount, (double)prop.totalGlobalMem / (1024.0 * 1024.0 * 1024.0),
            dt == SK_CUDA_F16 ? "fp16" : "bf16");
    *out = be;
    return SK_OK;
fail:
    cuda_destroy(be);
    return st;
}
