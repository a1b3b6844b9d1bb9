/*
 * The backend-neutral op table.
 *
 * The Qwen2 model (model/model.c) is written once against these ops. Each backend fills an
 * SrOps table:
 *   - CPU  (kernels/cpu/):  fp32 everywhere, OpenMP + BLAS. This is the specification.
 *   - CUDA (kernels/cuda/): bf16 activations and weights, fp32 master weights / optimizer
 *                           state / reductions. Must agree with the CPU op within a per-op
 *                           tolerance.
 *
 * Buffers are opaque `void *` that live on the backend's device. Their element type is the
 * backend's:
 *   "act"  buffers (activations, parameters, their gradients): be->act_dtype
 *          (SR_F32 on the CPU; SR_BF16 for the CUDA activations and working weights)
 *   "f32"  buffers: always float (rstd, lse, losses, log-probs, per-token weights, AdamW state,
 *          master weights)
 *   "i32"  buffers: always int32_t (token ids, positions, targets, cache lengths, slots)
 * Host <-> device traffic goes through alloc/upload/download only.
 *
 * Conventions (shapes in comments use N tokens, C channels, V vocab, H heads, D head dim):
 *   - Forward ops OVERWRITE their outputs.
 *   - Backward ops ACCUMULATE (+=) into every gradient they are given (parameter grads and
 *     input grads alike); a NULL gradient pointer means "not needed". The caller zeroes.
 *   - A batch is a flat stream of N tokens holding packed documents. pos[i] is the token's
 *     position inside its document (restarting at 0 at each document start), and token i
 *     attends to tokens j in [i - pos[i], i]: attention never crosses a document boundary.
 *     Several sequences of a batch are simply consecutive documents of the stream.
 *   - Linear layers follow torch: W is (OC, C) row-major, y = x W^T + b.
 *
 * No op keeps global state: everything lives in the SrBackend the caller passes.
 */
#ifndef SR_KERNELS_OPS_H
#define SR_KERNELS_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"

typedef enum { SR_DEVICE_CPU = 0, SR_DEVICE_CUDA = 1 } SrDevice;
typedef enum { SR_F32 = 0, SR_BF16 = 1, SR_F16 = 2, SR_I32 = 3 } SrDType;

typedef struct SrOps SrOps;

typedef struct SrBackend {
    const SrOps *ops;
    SrDevice device;
    SrDType act_dtype;  /* element type of "act" buffers */
    int device_index;   /* GPU ordinal (CUDA) */
    int n_threads;      /* CPU threads (0 = OpenMP default) */
    void *impl;         /* backend-private state: streams, cuBLASLt handle, workspaces */
} SrBackend;

/* Sampling parameters for one row of logits. temperature <= 0 means greedy (argmax).
 * top_k <= 0 disables top-k; top_p >= 1 disables top-p. */
typedef struct SrSampling {
    float temperature;
    int top_k;
    float top_p;
} SrSampling;

struct SrOps {
    const char *name; /* "cpu", "cuda" */

    /* ---- memory ---------------------------------------------------------------------- */
    void *(*alloc)(SrBackend *be, size_t bytes);            /* zero-filled; aborts on OOM */
    void (*free)(SrBackend *be, void *p);
    void (*zero)(SrBackend *be, void *p, size_t bytes);
    void (*copy)(SrBackend *be, void *dst, const void *src, size_t bytes); /* device->device */
    /* n elements between host float and an "act" buffer (converting to act_dtype) */
    void (*upload_act)(SrBackend *be, void *dst, const float *src, size_t n);
    void (*download_act)(SrBackend *be, float *dst, const void *src, size_t n);
    /* raw bytes host <-> device (f32 and i32 buffers) */
    void (*upload)(SrBackend *be, void *dst, const void *src, size_t bytes);
    void (*download)(SrBackend *be, void *dst, const void *src, size_t bytes);
    void (*synchronize)(SrBackend *be);

    /* ---- embedding ------------------------------------------------------------------- */
    /* out[N,C] = wte[ids[i], :] */
    void (*embedding_forward)(SrBackend *be, void *out, const int32_t *ids, const void *wte,
                              int N, int C);
    /* dwte[ids[i], :] += dout[i, :]   (deterministic: same result for any thread count) */
    void (*embedding_backward)(SrBackend *be, void *dwte, const void *dout, const int32_t *ids,
                               int N, int C);

    /* ---- RMSNorm (HF Qwen2RMSNorm) ------------------------------------------------------
     * rstd[i] = 1/sqrt(mean(x[i,:]^2) + eps)  computed in fp32;
     * out[i,c] = w[c] * to_act(x[i,c] * rstd[i])   (cast to act dtype BEFORE the weight multiply)
     * rstd (f32 [N]) is saved for the backward; it may be NULL when no backward follows. */
    void (*rmsnorm_forward)(SrBackend *be, void *out, float *rstd, const void *x, const void *w,
                            int N, int C, float eps);
    void (*rmsnorm_backward)(SrBackend *be, void *dx, void *dw, const void *dout, const void *x,
                             const void *w, const float *rstd, int N, int C);

    /* ---- linear ---------------------------------------------------------------------- */
    /* out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC]  (bias may be NULL) */
    void (*matmul_forward)(SrBackend *be, void *out, const void *inp, const void *w,
                           const void *bias, int N, int C, int OC);
    /* dinp[N,C] += dout @ w;  dw[OC,C] += dout^T @ inp;  dbias[OC] += sum_i dout[i,:] */
    void (*matmul_backward)(SrBackend *be, void *dinp, void *dw, void *dbias, const void *dout,
                            const void *inp, const void *w, int N, int C, int OC);

    /* ---- rotary embedding, rotate_half layout ---------------------------------------------
     * x is [N, H, D] (in place). inv_freq[f] = theta^(-2f/D) (f < D/2), angle = pos[i]*inv_freq[f],
     * for f < D/2:  x'[f] = x[f] cos - x[f+D/2] sin;  x'[f+D/2] = x[f+D/2] cos + x[f] sin.
     * The backward applies the transposed rotation to dx in place (accumulation is moot:
     * it maps the gradient of the rotated tensor to the gradient of the unrotated one). */
    void (*rope_forward)(SrBackend *be, void *x, const int32_t *pos, int N, int H, int D,
                         float theta);
    void (*rope_backward)(SrBackend *be, void *dx, const int32_t *pos, int N, int H, int D,
                          float theta);

    /* ---- attention over packed documents (causal, GQA) -----------------------------------
     * q [N, Hq*D], k/v [N, Hkv*D], out [N, Hq*D]. Query head h reads KV head h / (Hq/Hkv).
     * Token i attends to j in [i - pos[i], i]; scale = 1/sqrt(D); softmax in fp32.
     * lse (f32 [Hq, N]) receives the log-sum-exp of the scaled scores, for the backward;
     * it may be NULL when no backward follows. */
    void (*attention_forward)(SrBackend *be, void *out, float *lse, const void *q, const void *k,
                              const void *v, const int32_t *pos, int N, int Hq, int Hkv, int D);
    void (*attention_backward)(SrBackend *be, void *dq, void *dk, void *dv, const void *dout,
                               const void *q, const void *k, const void *v, const void *out,
                               const float *lse, const int32_t *pos, int N, int Hq, int Hkv,
                               int D);

    /* ---- KV cache -------------------------------------------------------------------------
     * A cache is [n_slots, KVD] per layer and per K/V, KVD = Hkv*D (the engine's paged pool:
     * its rows are found through block tables). kv_store writes k[i], v[i] to slot[i]. */
    void (*kv_store)(SrBackend *be, void *kcache, void *vcache, const void *k, const void *v,
                     const int32_t *slot, int N, int KVD);
    /* Attention over a PAGED cache (engine/engine.c), any number of new tokens per sequence
     * in one call (a prompt's prefill, a catch-up of Δ tokens, a decode step): token i (of N)
     * of sequence seq[i] sits at position pos[i] and attends causally to positions 0..pos[i]
     * of its sequence, position p of sequence s being cache row
     * table[s * max_blocks + p / block] * block + p % block (kcache, vcache [rows, Hkv*D]);
     * its own k, v are already stored there (kv_store). q, out [N, Hq*D]; pos, seq, table
     * device i32. Query head h reads KV head h / (Hq/Hkv); scale 1/sqrt(D). On the CPU a
     * fresh prompt (positions 0..n-1 all new) gets the bits of attention_forward over it. */
    void (*attention_paged)(SrBackend *be, void *out, const void *q, const void *kcache,
                            const void *vcache, const int32_t *pos, const int32_t *seq,
                            const int32_t *table, int max_blocks, int block, int N, int Hq,
                            int Hkv, int D);

    /* ---- elementwise ----------------------------------------------------------------------- */
    /* out = silu(gate) * up  over n elements */
    void (*swiglu_forward)(SrBackend *be, void *out, const void *gate, const void *up, size_t n);
    void (*swiglu_backward)(SrBackend *be, void *dgate, void *dup, const void *dout,
                            const void *gate, const void *up, size_t n);
    /* out = a + b over n elements (out may alias a or b) */
    void (*add)(SrBackend *be, void *out, const void *a, const void *b, size_t n);

    /* ---- fused log-softmax / cross-entropy / token log-prob --------------------------------
     * logits [N, V] (act). For each row i with targets[i] >= 0:
     *   logprob[i] = log_softmax(logits[i])[targets[i]]   (fp32; 0 where targets[i] < 0)
     *   entropy[i] = -sum_j p_j log p_j of softmax(logits[i]) (fp32; 0 where targets[i] < 0;
     *                entropy may be NULL: not computed)
     * If grad_scale != 0, logits is overwritten IN PLACE with its gradient
     *   dlogits[i] = grad_scale * w_i * (softmax(logits[i]) - onehot(targets[i]))
     * with w_i = weights ? weights[i] : 1 (zero rows where targets[i] < 0), i.e. the gradient
     * of  -grad_scale * sum_i w_i logprob[i].  The model calls it on chunks of tokens so the
     * full [N, V] logits never exist at once. */
    void (*cross_entropy)(SrBackend *be, float *logprob, float *entropy, void *logits,
                          const int32_t *targets, const float *weights, float grad_scale, int N,
                          int V);

    /* ---- sampling ------------------------------------------------------------------------
     * logits [B, V] (act). For each row b: temperature / top-k / top-p sampling with the row's
     * own parameters s[b] (greedy when s[b].temperature <= 0; s == NULL: every row greedy), so
     * greedy rows and rows with different settings share one call, and the row's RNG state
     * rng[b] (splitmix64, common/rng.h), which is advanced. A row's result depends only on its
     * logits, s[b] and rng[b]: B rows in one call == each row alone, bit for bit. Only ids
     * < n_valid (1 <= n_valid <= V) exist for the op: the columns past it (an embedding
     * padded beyond the tokenizer's last id: R1-distill has 151936 rows for some 151.7k ids)
     * are never drawn and never the argmax, as if their logits were -inf.
     * A NaN logit counts as -inf too. out_ids[b] = sampled id; out_logprob[b] = log-prob of
     * that id under the temperature-scaled distribution over ids < n_valid
     * (log_softmax(logits[:n_valid]/T); plain log_softmax when greedy), before top-k/top-p
     * truncation. A row whose largest logit is not finite (all NaN / -inf, or a +inf) gives
     * its argmax (the lowest such id, 0 when every logit is NaN / -inf) and log-prob NaN.
     * out_ids, out_logprob, s and rng are HOST arrays (B entries each; rng may be NULL when
     * every row is greedy); greedy rows do not advance their RNG state, other rows take exactly
     * one draw (the exact rule is in kernels/cpu/cpu_loss.c). The cost of a row does not depend
     * on how many tokens top-k / top-p keep. */
    void (*sample)(SrBackend *be, int32_t *out_ids, float *out_logprob, const void *logits,
                   int B, int V, int n_valid, const SrSampling *s, uint64_t *rng);

    /* ---- optimizer ------------------------------------------------------------------------
     * AdamW on n elements (torch.optim.AdamW semantics, bias-corrected, decoupled decay):
     *   master -= lr * wd * master;  m = b1 m + (1-b1) g;  v = b2 v + (1-b2) g^2;
     *   master -= lr * (m / (1-b1^t)) / (sqrt(v / (1-b2^t)) + eps);  param = to_act(master)
     * grad is act; master, m, v are f32; param is act (param may equal master on the CPU).
     * grad is multiplied by grad_scale first (gradient clipping / averaging). */
    void (*adamw)(SrBackend *be, void *param, float *master, const void *grad, float *m, float *v,
                  size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                  float grad_scale, int step);
    /* returns sum of squares of an act buffer, accumulated in fp64 on the CPU / fp32 tree on GPU */
    double (*sum_squares)(SrBackend *be, const void *x, size_t n);
};

/* Backend registry. name: "cpu" or "cuda". Returns 0, or -1 with err set (e.g. CUDA not
 * compiled in, or no GPU found). */
int sr_backend_init(SrBackend *be, const char *name, int device_index, SrError *err);
void sr_backend_free(SrBackend *be);
/* Size in bytes of one element of the backend's act dtype. */
size_t sr_act_size(const SrBackend *be);
/* Which backends were compiled in, e.g. "cpu cuda" (for --version). */
const char *sr_backends_compiled(void);
/* Number of usable GPUs at run time (0 when CUDA is not compiled in or none is present). */
int sr_cuda_device_count(void);
/* Human-readable description of GPU i (name, memory, compute capability); "" if none. */
void sr_cuda_device_name(int i, char *buf, size_t n);

/* Memory bounds, for sizing a request before allocating it (a refusal then names the bound):
 * sr_host_memory_limit: the least of the physical memory, the address-space limit
 * (ulimit -v / -d) and the cgroup v2 memory limit (common/sysmem.h); sr_backend_memory_limit: where the backend's
 * buffers live (the host's limit for the CPU, the GPU's free memory for CUDA). *what (may be
 * NULL) receives a phrase naming the bound, e.g. "this machine's memory". SIZE_MAX: unknown. */
size_t sr_host_memory_limit(const char **what);
size_t sr_backend_memory_limit(SrBackend *be, const char **what);

/* Implemented by kernels/cpu/ops_cpu.c */
extern const SrOps sr_cpu_ops;

#endif
