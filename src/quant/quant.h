/* Weight quantization: group-wise asymmetric INT4 (the Q4G dtypes of core/dtype.h), round to
 * nearest (RTN) and activation-aware (AWQ, Lin et al. 2023), and the AutoAWQ GEMM checkpoint
 * layout.
 *
 * Conventions. A Linear weight W is [N, K] row-major (out x in, as in model_file.h); groups run
 * along K, so a row of W quantizes to K/G blocks of its Q4G type. Quantization of one group
 * follows AutoAWQ's pseudo_quantize_tensor (w_bit 4, zero_point):
 *   max = max(w), min = min(w); d = max(max - min, 1e-5) / 15; z = clamp(-round(min / d), 0, 15);
 *   q = clamp(round(w / d) + z, 0, 15); w' = (q - z) * d
 * except that d is rounded to f16 first and q, z are computed with that d, so that the stored
 * block dequantizes to exactly the values the search measured. */
#ifndef SK_QUANT_H
#define SK_QUANT_H

#include "core/dtype.h"
#include "model/model_file.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Quantizes row x[n] (n a multiple of g, g in 32/64/128) to n/g blocks of sk_dtype_q4g(g) at dst.
 * clip: NULL, or one value per group: the group is clamped to [-clip, clip] first (AWQ's
 * clipping search). */
void sk_q4g_quantize_row(const float *x, int64_t n, int g, const float *clip, void *dst);
/* Quantizes and dequantizes row x[n] in one step (out may equal x): the fp32 values the stored
 * blocks would give. Same arguments as sk_q4g_quantize_row. */
void sk_q4g_fake_quant_row(const float *x, int64_t n, int g, const float *clip, float *out);

/* AutoAWQ GEMM layout of one Linear [N, K] with group size g (N % 8 == 0, K % g == 0):
 *   qweight int32 [K, N/8]: word (k, c) holds q[n = 8c + o[i]][k] in bits 4i..4i+3, with
 *           o = {0, 2, 4, 6, 1, 3, 5, 7} (AutoAWQ's order_map)
 *   qzeros  int32 [K/g, N/8]: zero points packed the same way
 *   scales  f16   [K/g, N]
 * sk_awq_pack converts N rows of Q4G blocks (row-major, as sk_q4g_quantize_row writes them) to
 * the three arrays (caller-allocated); sk_awq_unpack converts back. Both are exact. */
void sk_awq_pack(const void *q4g, int64_t N, int64_t K, int g, int32_t *qweight, int32_t *qzeros,
                 uint16_t *scales);
void sk_awq_unpack(const int32_t *qweight, const int32_t *qzeros, const uint16_t *scales,
                   int64_t N, int64_t K, int g, void *q4g);

typedef enum sk_quant_method { SK_QUANT_RTN = 0, SK_QUANT_AWQ = 1 } sk_quant_method;
/* CPU: the fp32 reference (the default). CUDA: the same search on the GPU (an error when this
 * build or machine has none). AUTO: CUDA when usable, else the CPU. */
typedef enum sk_quant_device {
    SK_QUANT_DEV_CPU = 0,
    SK_QUANT_DEV_CUDA = 1,
    SK_QUANT_DEV_AUTO = 2
} sk_quant_device;

typedef struct sk_quant_params {
    const char *model;     /* -m: .gguf, llama2.c .bin (with tokenizer), or HF directory */
    const char *tokenizer; /* llama2.c tokenizer, or NULL */
    const char *out_dir;   /* the AutoAWQ-layout HF directory to write (created) */
    sk_quant_method method;
    int bits;              /* 4 (the only width supported) */
    int group;             /* 128, 64 or 32: the largest of these <= group that divides every
                              quantized K is used (one group size per checkpoint, as AutoAWQ) */
    const char *calib;     /* calibration text file */
    int calib_samples;     /* sequences */
    int calib_len;         /* tokens per sequence */
    int n_grid;            /* AWQ scale grid points in [0, 1) (20) */
    bool duo;              /* AWQ scale mean|x|^a / mean(|w|/max|w|)^(1-a) (AutoAWQ's default
                              duo_scaling) instead of the paper's mean|x|^a */
    int n_threads;         /* 0: all cores */
    bool progress;         /* per-layer progress on stderr */
    sk_quant_device device; /* where the AWQ search runs (RTN always runs on the CPU) */
    bool tf32;             /* CUDA: the search's matmuls on TF32 tensor cores instead of fp32 */
} sk_quant_params;

void sk_quant_params_default(sk_quant_params *p);

/* Loads p->model, quantizes every Linear of every layer (the embedding, output head and norms
 * stay f16), and writes p->out_dir. Returns a status with the message set on bad input. */
sk_status sk_quantize(const sk_quant_params *p);

/* Per-layer statistics of the last sk_quantize call, for tests and reports (layers < 1024): the
 * mean squared error of each layer's output (AWQ's search objective) with the weights
 * RTN-quantized and with the chosen AWQ scales; the grid index i (alpha = i / n_grid) each scale
 * search chose, in the order awq.c runs them (Llama: q/k/v, v -> o when searched, gate/up,
 * down; -1: none); seconds of the layer's search (AWQ) and of the whole layer (load, search,
 * statistics, packing). */
typedef struct sk_quant_stats {
    int n_layers;
    char device[8]; /* the backend the search ran on: "cpu" or "cuda" */
    double rtn_err[1024];
    double awq_err[1024];
    int n_search[1024];
    int grid_best[1024][4];
    double search_s[1024];
    double layer_s[1024];
} sk_quant_stats;
const sk_quant_stats *sk_quant_last_stats(void);

/* In-memory quantization of a loaded model file (fp32 or any dequantizable type): *out receives
 * a model file whose layer Linear weights are Q4G (those whose K is not a multiple of 32 stay
 * f16) and whose other tensors are f16, with hp.rope_pairing HALVES (Llama q/k rows are
 * permuted from ADJACENT when needed) and the vocabulary copied. tokens: calibration token ids,
 * n_samples x len (AWQ only; NULL for RTN). Sets *group_used. */
sk_status sk_quantize_model(const sk_model_file *src, const sk_quant_params *p,
                            const int32_t *tokens, int n_samples, int len, sk_model_file *out,
                            int *group_used);

/* Writes a quantized model file (as sk_quantize_model returns) as an AutoAWQ GEMM HF directory:
 * config.json (src_config: the source's config.json to extend, or NULL to write one from hp),
 * model.safetensors, tokenizer.json + tokenizer_config.json (copied from src_dir when it has
 * them, else written from the vocabulary). */
sk_status sk_awq_write_hf(const sk_model_file *q, int group, const char *src_dir,
                          const char *out_dir);

#ifdef __cplusplus
}
#endif

#endif
