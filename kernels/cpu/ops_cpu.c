/*
 * The CPU backend: fp32 everywhere, OpenMP for the loops, OpenBLAS for matrix products.
 * It is the specification of every op in kernels/ops.h; the CUDA backend is tested against it.
 *
 * This file holds the memory ops and the op table. The ops themselves live by family in
 *   cpu_layers.c     embedding, RMSNorm, linear, RoPE, SwiGLU, add
 *   cpu_attention.c  packed causal GQA attention (fwd/bwd), KV cache store, decode, extend and
 *                    paged attention
 *   cpu_loss.c       fused log-softmax / cross-entropy / token log-prob, sampling
 *   cpu_optim.c      AdamW, sum of squares
 * "Device" memory is host memory: alloc is a 64-byte aligned, zero-filled block, and
 * upload/download are memcpy (act buffers are float, so no conversion either).
 */
#include "ops_cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *cpu_alloc(SrBackend *be, size_t bytes) {
    (void)be;
    /* aligned_alloc wants a multiple of the alignment; never ask for 0 bytes */
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    void *p = aligned_alloc(64, n);
    if (!p) {
        fprintf(stderr, "splitreason: out of memory allocating %zu bytes (cpu backend)\n", bytes);
        abort();
    }
    memset(p, 0, n);
    return p;
}

static void cpu_free(SrBackend *be, void *p) {
    (void)be;
    free(p);
}

static void cpu_zero(SrBackend *be, void *p, size_t bytes) {
    (void)be;
    if (bytes) memset(p, 0, bytes);
}

static void cpu_copy(SrBackend *be, void *dst, const void *src, size_t bytes) {
    (void)be;
    if (bytes && dst != src) memmove(dst, src, bytes);
}

static void cpu_upload_act(SrBackend *be, void *dst, const float *src, size_t n) {
    cpu_copy(be, dst, src, n * sizeof(float));
}

static void cpu_download_act(SrBackend *be, float *dst, const void *src, size_t n) {
    cpu_copy(be, dst, src, n * sizeof(float));
}

static void cpu_synchronize(SrBackend *be) {
    (void)be;
}

const SrOps sr_cpu_ops = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .free = cpu_free,
    .zero = cpu_zero,
    .copy = cpu_copy,
    .upload_act = cpu_upload_act,
    .download_act = cpu_download_act,
    .upload = cpu_copy,
    .download = cpu_copy,
    .synchronize = cpu_synchronize,
    .embedding_forward = sr_cpu_embedding_forward,
    .embedding_backward = sr_cpu_embedding_backward,
    .rmsnorm_forward = sr_cpu_rmsnorm_forward,
    .rmsnorm_backward = sr_cpu_rmsnorm_backward,
    .matmul_forward = sr_cpu_matmul_forward,
    .matmul_backward = sr_cpu_matmul_backward,
    .rope_forward = sr_cpu_rope_forward,
    .rope_backward = sr_cpu_rope_backward,
    .attention_forward = sr_cpu_attention_forward,
    .attention_backward = sr_cpu_attention_backward,
    .kv_store = sr_cpu_kv_store,
    .attention_paged = sr_cpu_attention_paged,
    .swiglu_forward = sr_cpu_swiglu_forward,
    .swiglu_backward = sr_cpu_swiglu_backward,
    .add = sr_cpu_add,
    .cross_entropy = sr_cpu_cross_entropy,
    .sample = sr_cpu_sample,
    .adamw = sr_cpu_adamw,
    .sum_squares = sr_cpu_sum_squares,
};
