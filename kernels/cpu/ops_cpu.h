/*
 * Private header of the CPU backend (the files of kernels/cpu/): the functions that fill
 * sr_cpu_ops, grouped by file, and the small helpers they share. Not part of the public API: the
 * model reaches these ops only through the SrOps table (kernels/ops.h).
 *
 * Every "act" buffer on the CPU is float (be->act_dtype == SR_F32).
 *
 * Determinism: every op gives the same bits for any OpenMP thread count. Reductions that
 * cross the parallel dimension are either split so that one thread owns each output
 * (column blocks for dbias/dwte/dw, key rows for dk/dv) or summed over fixed-size chunks whose
 * partial sums are then added in a fixed order. Only the BLAS calls in matmul depend on
 * OpenBLAS's own threading.
 */
#ifndef SR_KERNELS_CPU_OPS_CPU_H
#define SR_KERNELS_CPU_OPS_CPU_H

#include <omp.h>

#include "../ops.h"

/* number of OpenMP threads for this backend (be->n_threads, 0 = OpenMP default) */
static inline int cpu_threads(const SrBackend *be) {
    return (be && be->n_threads > 0) ? be->n_threads : omp_get_max_threads();
}

/* threads for a loop of about `work` floating-point operations: small loops run on one
 * thread, since waking a team costs more than they do (results do not depend on it) */
#define CPU_PAR_MIN_WORK 32768.0
static inline int cpu_threads_for(const SrBackend *be, double work) {
    return work < CPU_PAR_MIN_WORK ? 1 : cpu_threads(be);
}

/* ops_cpu.c: the CPU backend's state (a cache of freed large blocks), made by sr_backend_init
 * and released by sr_backend_free */
void sr_cpu_backend_init(SrBackend *be);
void sr_cpu_backend_free(SrBackend *be);

/* e^x in float, four lanes at a time (GNU vector extensions: SSE on x86, NEON on ARM, plain
 * code elsewhere; the same +, *, shifts on every target, so the same bits): x = n ln2 + r with
 * round-to-nearest n and a Cody-Waite split of ln2, e^r from its degree-7 Taylor polynomial
 * (|r| <= ln2/2: truncation 6e-9 relative), times 2^n in two halves so that results in the
 * subnormal range come out right. Inputs are clamped to [-104, 89] (below, e^x rounds to 0;
 * -inf gives 0); NaN stays NaN. Masks instead of ?: because gcc does not if-convert a float
 * compare under -ftrapping-math. Max relative error against exp() in double, over every float
 * in [-104, 0] and a sweep of [0, 88.7], is asserted by test_ops_cpu (see there). */
typedef float cpu_v4f __attribute__((vector_size(16)));
typedef int32_t cpu_v4i __attribute__((vector_size(16)));
typedef float cpu_v8f __attribute__((vector_size(32)));
typedef int32_t cpu_v8i __attribute__((vector_size(32)));

/* The body for a vector type VF with its int type VI, written once for 4 and 8 lanes. The
 * 8-lane one goes through pointers: passing a 32-byte vector by value warns (-Wpsabi) on a
 * build without AVX. */
#define CPU_EXP_BODY(VF, VI, x, out)                                                          \
    do {                                                                                       \
        const VF zero = {0}, lo = zero - 104.0f, hi = zero + 89.0f; /* e^89 overflows */      \
        const VF magic = zero + 12582912.0f;                        /* 1.5 * 2^23 */          \
        VI below = (x) < lo, above = (x) > hi; /* false for NaN: it goes through unclamped */ \
        VF xc = (VF)(((VI)(x) & ~below) | ((VI)lo & below));                                 \
        xc = (VF)(((VI)xc & ~above) | ((VI)hi & above));                                     \
        VF t = xc * 1.44269504088896341f + magic; /* round(x / ln2) in the low bits */       \
        VF nf = t - magic;                                                                    \
        VF r = (xc - nf * 0.693359375f) - nf * -2.12194440e-4f; /* 0.693359375 - 2.12e-4 */  \
        VF p = r * (1.0f / 5040.0f) + 1.0f / 720.0f;                                          \
        p = p * r + 1.0f / 120.0f;                                                            \
        p = p * r + 1.0f / 24.0f;                                                             \
        p = p * r + 1.0f / 6.0f;                                                              \
        p = p * r + 0.5f;                                                                     \
        p = p * r + 1.0f;                                                                     \
        p = p * r + 1.0f;                                                                     \
        VI n = (VI)t - 0x4B400000; /* n in [-150, 128] */                                     \
        VI n1 = n >> 1, n2 = n - n1;                                                          \
        (out) = p * (VF)((n1 + 127) << 23) * (VF)((n2 + 127) << 23);                          \
    } while (0)

static inline cpu_v4f cpu_exp_v4(cpu_v4f x) {
    cpu_v4f y;
    CPU_EXP_BODY(cpu_v4f, cpu_v4i, x, y);
    return y;
}

static inline void cpu_exp_v8(cpu_v8f *y, const cpu_v8f *x) { CPU_EXP_BODY(cpu_v8f, cpu_v8i, *x, *y); }

/* cpu_attention.c: y[j] = e^x[j] by cpu_exp_v4 for j in [0, n) (y may be x) */
void sr_cpu_exp_array(float *y, const float *x, int n);

/* cpu_layers.c: embedding, RMSNorm, linear, RoPE, SwiGLU, add */
void sr_cpu_embedding_forward(SrBackend *be, void *out, const int32_t *ids, const void *wte, int N,
                              int C);
void sr_cpu_embedding_backward(SrBackend *be, void *dwte, const void *dout, const int32_t *ids,
                               int N, int C);
void sr_cpu_rmsnorm_forward(SrBackend *be, void *out, float *rstd, const void *x, const void *w,
                            int N, int C, float eps);
void sr_cpu_rmsnorm_backward(SrBackend *be, void *dx, void *dw, const void *dout, const void *x,
                             const void *w, const float *rstd, int N, int C);
void sr_cpu_matmul_forward(SrBackend *be, void *out, const void *inp, const void *w,
                           const void *bias, int N, int C, int OC);
void sr_cpu_matmul_backward(SrBackend *be, void *dinp, void *dw, void *dbias, const void *dout,
                            const void *inp, const void *w, int N, int C, int OC);
void sr_cpu_rope_forward(SrBackend *be, void *x, const int32_t *pos, int N, int H, int D,
                         float theta);
void sr_cpu_rope_backward(SrBackend *be, void *dx, const int32_t *pos, int N, int H, int D,
                          float theta);
void sr_cpu_swiglu_forward(SrBackend *be, void *out, const void *gate, const void *up, size_t n);
void sr_cpu_swiglu_backward(SrBackend *be, void *dgate, void *dup, const void *dout,
                            const void *gate, const void *up, size_t n);
void sr_cpu_add(SrBackend *be, void *out, const void *a, const void *b, size_t n);
/* inv_freq[f] for f < D/2, computed in float32 exactly as HF Qwen2RotaryEmbedding does */
void sr_cpu_rope_inv_freq(float *inv_freq, int D, float theta);

/* cpu_attention.c: packed causal attention, KV cache store, decode, extend and paged
 * attention */
void sr_cpu_attention_forward(SrBackend *be, void *out, float *lse, const void *q, const void *k,
                              const void *v, const int32_t *pos, int N, int Hq, int Hkv, int D);
void sr_cpu_attention_backward(SrBackend *be, void *dq, void *dk, void *dv, const void *dout,
                               const void *q, const void *k, const void *v, const void *out,
                               const float *lse, const int32_t *pos, int N, int Hq, int Hkv, int D);
void sr_cpu_kv_store(SrBackend *be, void *kcache, void *vcache, const void *k, const void *v,
                     const int32_t *slot, int N, int KVD);
void sr_cpu_attention_paged(SrBackend *be, void *out, const void *q, const void *kcache,
                            const void *vcache, const int32_t *pos, const int32_t *seq,
                            const int32_t *table, int max_blocks, int block, int N, int Hq,
                            int Hkv, int D);

/* cpu_loss.c: cross-entropy / token log-probs, sampling */
void sr_cpu_cross_entropy(SrBackend *be, float *logprob, float *entropy, void *logits,
                          const int32_t *targets, const float *weights, float grad_scale, int N,
                          int V);
void sr_cpu_sample(SrBackend *be, int32_t *out_ids, float *out_logprob, const void *logits, int B,
                   int V, int n_valid, const SrSampling *s, uint64_t *rng);

/* cpu_optim.c: AdamW, sum of squares */
void sr_cpu_adamw(SrBackend *be, void *param, float *master, const void *grad, float *m, float *v,
                  size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                  float grad_scale, int step);
double sr_cpu_sum_squares(SrBackend *be, const void *x, size_t n);

#endif
