/* Paged KV cache layout and attention kernel parameters (shared by the decode and prefill
 * kernels, the backend and the workbench in dev/cuda/). Plain C: included by .c and .cu files.
 *
 * Pool layout, per layer, for K and for V separately (bf16):
 *     pool[n_pages][n_kv_heads][page_size][head_dim]
 * so one page of one KV head is a contiguous page_size*head_dim block (16-byte aligned rows:
 * head_dim*2 bytes is a multiple of 16 for head_dim 64/80/128), read with full 16-byte accesses.
 * Token t of a sequence lives in page indices[indptr[b] + t / page_size], row t % page_size.
 *
 * A batch of B sequences, FlashInfer-style CSR page tables:
 *     kv_indptr[B+1], kv_indices[kv_indptr[B]] : pages of each sequence, in order
 *     kv_len[B]                                 : tokens in the cache for each sequence
 *                                                 (including those of the current step)
 * Queries: q [n_q_rows][n_heads][head_dim] bf16; out [n_q_rows][n_heads][head_dim] bf16.
 * Decode: one query row per sequence (row b), at position kv_len[b]-1.
 * Prefill: qo_indptr[B+1]; sequence b's query rows are qo_indptr[b]..qo_indptr[b+1]-1, the last
 * q_len_b = qo_indptr[b+1]-qo_indptr[b] tokens of its kv (positions kv_len[b]-q_len_b ...);
 * query at position p attends to KV positions 0..p (causal).
 * Query head h reads KV head h / (n_heads / n_kv_heads). Scores are scaled by sm_scale
 * (1/sqrt(head_dim)); softmax in fp32. */
#ifndef SK_ATTN_PARAMS_H
#define SK_ATTN_PARAMS_H

#include <stdint.h>

typedef struct sk_paged_kv {
    const void *k;           /* bf16 pool of this layer */
    const void *v;           /* bf16 pool of this layer */
    const int32_t *indptr;   /* [batch+1] */
    const int32_t *indices;  /* page ids */
    const int32_t *kv_len;   /* [batch] */
    int page_size;           /* tokens per page: 16, 32, 64 or 128 */
    int n_kv_heads;
    int head_dim;
} sk_paged_kv;

/* Decode only (kernel 2 with its shared-memory ring, session 25): each sequence's new token
 * handed over as the QKV product's fp32 rows rather than already rotated into q and the cache.
 * The kernel then applies RoPE to q as it loads it, and the warp whose chunk holds the token
 * rotates k, writes the token's K/V row into its page (query block 0) and into its ring slot, in
 * place of what the copy found there: the separate RoPE + store launch is gone. q = NULL: off. */
typedef struct sk_attn_newtok {
    const float *q;        /* [batch] rows of n_heads * head_dim, stride q_stride floats */
    const float *k, *v;    /* [batch] rows of n_kv_heads * head_dim, stride kv_stride floats */
    int q_stride, kv_stride;
    const float *freq;     /* RoPE inverse frequencies, [rope_dim / 2] */
    int rope_dim;          /* rotated dims (even, <= head_dim); the rest pass through */
    int halves;            /* 1: pairs (i, i + rope_dim / 2); 0: (2i, 2i + 1) */
    void *k_pool, *v_pool; /* kv.k, kv.v as writable pointers */
} sk_attn_newtok;

typedef struct sk_attn_params {
    sk_paged_kv kv;
    const void *q;             /* bf16 [rows][n_heads][head_dim], row stride q_stride elements */
    int64_t q_stride;
    void *out;                 /* bf16 [rows][n_heads][head_dim], contiguous */
    const int32_t *qo_indptr;  /* prefill only: [batch+1] */
    int batch;
    int n_heads;
    float sm_scale;
    /* Split-KV (flash-decoding) scratch: partial outputs and log-sum-exps, sized by the
     * launcher's plan (see the kernel headers); NULL when not split. */
    float *part_out;
    float *part_lse;
    int n_splits;
    /* Decode only: 1 writes out as fp32 [rows][n_heads][head_dim] (the backend's activation
     * type, so no cast kernel follows), 0 as bf16. */
    int out_f32;
    /* Decode only: 1 when the page table and every cached token but the last of each sequence
     * were complete before the kernel launched just before this one (the fused RoPE + K/V store,
     * which writes the last): the decode kernel may then read the table and bring those tokens'
     * K/V into L2 before its griddepcontrol.wait (session 22; SAKER_ATTN_PREWAIT). 0: it waits
     * before reading anything. */
    int kv_prewait;
    sk_attn_newtok nt;
} sk_attn_params;

#endif
