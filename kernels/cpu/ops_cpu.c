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
 *
 * Freed blocks of at least CPU_KEEP_MIN bytes are kept (the CPU_KEEP_SLOTS latest) and handed
 * out again, zeroed, to a request that fits and needs at least half of one: the trainers
 * release and re-create their workspaces around every generation, and mapping tens of MB
 * afresh each step (page faults, the kernel clearing pages, munmap) cost ~8 % of a tiny-model
 * GRPO step. The price: up to CPU_KEEP_SLOTS released blocks stay mapped until
 * sr_backend_free (or until a newer one evicts them). Each block carries its capacity in a
 * 64-byte header. A backend is used by one thread at a time (the cache has no lock).
 */
#include "ops_cpu.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define CPU_KEEP_MIN ((size_t)1 << 20)
#define CPU_KEEP_SLOTS 4
#define CPU_HDR 64 /* bytes before each block: its capacity (keeps the 64-byte alignment) */

typedef struct CpuBlockCache {
    char *raw[CPU_KEEP_SLOTS]; /* NULL: empty slot */
    size_t cap[CPU_KEEP_SLOTS];
    unsigned long long age[CPU_KEEP_SLOTS], clock;
} CpuBlockCache;

void sr_cpu_backend_init(SrBackend *be) {
    be->impl = calloc(1, sizeof(CpuBlockCache)); /* NULL: the backend runs without a cache */
}

void sr_cpu_backend_free(SrBackend *be) {
    CpuBlockCache *c = be->impl;
    if (!c) return;
    for (int i = 0; i < CPU_KEEP_SLOTS; i++) free(c->raw[i]);
    free(c);
    be->impl = NULL;
}

static void *cpu_alloc(SrBackend *be, size_t bytes) {
    /* aligned_alloc wants a multiple of the alignment; never ask for 0 bytes */
    size_t n = (bytes + 63) & ~(size_t)63;
    if (n == 0) n = 64;
    CpuBlockCache *c = be ? be->impl : NULL;
    if (c && n >= CPU_KEEP_MIN) { /* the smallest kept block that fits, if n needs half of it */
        int best = -1;
        for (int i = 0; i < CPU_KEEP_SLOTS; i++)
            if (c->raw[i] && c->cap[i] >= n && c->cap[i] / 2 <= n &&
                (best < 0 || c->cap[i] < c->cap[best]))
                best = i;
        if (best >= 0) {
            char *raw = c->raw[best];
            c->raw[best] = NULL;
            memset(raw + CPU_HDR, 0, n);
            return raw + CPU_HDR;
        }
    }
    char *raw = aligned_alloc(64, CPU_HDR + n);
    if (!raw) {
        fprintf(stderr, "splitreason: out of memory allocating %zu bytes (cpu backend)\n", bytes);
        abort();
    }
    memcpy(raw, &n, sizeof n);
    memset(raw + CPU_HDR, 0, n);
    return raw + CPU_HDR;
}

static void cpu_free(SrBackend *be, void *p) {
    if (!p) return;
    char *raw = (char *)p - CPU_HDR;
    size_t cap;
    memcpy(&cap, raw, sizeof cap);
    CpuBlockCache *c = be ? be->impl : NULL;
    if (!c || cap < CPU_KEEP_MIN) {
        free(raw);
        return;
    }
    int slot = 0; /* an empty slot, else the oldest kept block goes */
    for (int i = 0; i < CPU_KEEP_SLOTS; i++) {
        if (!c->raw[i]) {
            slot = i;
            break;
        }
        if (c->age[i] < c->age[slot]) slot = i;
    }
    free(c->raw[slot]);
    c->raw[slot] = raw;
    c->cap[slot] = cap;
    c->age[slot] = ++c->clock;
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
