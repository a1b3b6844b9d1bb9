/*
 * Private header of the CUDA backend: the functions that fill the CUDA SrOps table, grouped
 * by file (the same families as the CPU backend, kernels/cpu/ops_cpu.h). C++ (nvcc) only.
 *
 *   backend_cuda.cu    device discovery, init/free, memory ops, the op table
 *   cuda_layers.cu     embedding, RMSNorm, RoPE, SwiGLU, add, KV store, column sums
 *   cuda_matmul.cu     linear layers through cuBLASLt
 *   cuda_attention.cu  packed causal GQA attention (fwd/bwd), decode, extend and paged attention
 *   cuda_loss.cu       fused cross-entropy / token log-prob, sampling
 *   cuda_optim.cu      AdamW, sum of squares
 *
 * "act" buffers are bf16 (__nv_bfloat16); f32 / i32 buffers as in kernels/ops.h.
 */
#ifndef SR_KERNELS_CUDA_OPS_CUDA_H
#define SR_KERNELS_CUDA_OPS_CUDA_H

#include "cuda_common.cuh"

/* cuda_layers.cu */
void cuda_embedding_forward(SrBackend *be, void *out, const int32_t *ids, const void *wte, int N,
                            int C);
void cuda_embedding_backward(SrBackend *be, void *dwte, const void *dout, const int32_t *ids,
                             int N, int C);
void cuda_rmsnorm_forward(SrBackend *be, void *out, float *rstd, const void *x, const void *w,
                          int N, int C, float eps);
void cuda_rmsnorm_backward(SrBackend *be, void *dx, void *dw, const void *dout, const void *x,
                           const void *w, const float *rstd, int N, int C);
void cuda_rope_forward(SrBackend *be, void *x, const int32_t *pos, int N, int H, int D,
                       float theta);
void cuda_rope_backward(SrBackend *be, void *dx, const int32_t *pos, int N, int H, int D,
                        float theta);
void cuda_swiglu_forward(SrBackend *be, void *out, const void *gate, const void *up, size_t n);
void cuda_swiglu_backward(SrBackend *be, void *dgate, void *dup, const void *dout,
                          const void *gate, const void *up, size_t n);
void cuda_add(SrBackend *be, void *out, const void *a, const void *b, size_t n);
void cuda_kv_store(SrBackend *be, void *kcache, void *vcache, const void *k, const void *v,
                   const int32_t *slot, int N, int KVD);

/* cuda_matmul.cu */
void cuda_matmul_forward(SrBackend *be, void *out, const void *inp, const void *w,
                         const void *bias, int N, int C, int OC);
void cuda_matmul_backward(SrBackend *be, void *dinp, void *dw, void *dbias, const void *dout,
                          const void *inp, const void *w, int N, int C, int OC);

/* cuda_attention.cu */
void cuda_attention_forward(SrBackend *be, void *out, float *lse, const void *q, const void *k,
                            const void *v, const int32_t *pos, int N, int Hq, int Hkv, int D);
void cuda_attention_backward(SrBackend *be, void *dq, void *dk, void *dv, const void *dout,
                             const void *q, const void *k, const void *v, const void *out,
                             const float *lse, const int32_t *pos, int N, int Hq, int Hkv,
                             int D);
void cuda_attention_paged(SrBackend *be, void *out, const void *q, const void *kcache,
                          const void *vcache, const int32_t *pos, const int32_t *seq,
                          const int32_t *table, int max_blocks, int block, int N, int Hq,
                          int Hkv, int D);

/* cuda_loss.cu */
void cuda_cross_entropy(SrBackend *be, float *logprob, float *entropy, void *logits,
                        const int32_t *targets, const float *weights, float grad_scale, int N,
                        int V);
void cuda_sample(SrBackend *be, int32_t *out_ids, float *out_logprob, const void *logits, int B,
                 int V, int n_valid, const SrSampling *s, uint64_t *rng);

/* cuda_optim.cu */
void cuda_adamw(SrBackend *be, void *param, float *master, const void *grad, float *m, float *v,
                size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                float grad_scale, int step);
double cuda_sum_squares(SrBackend *be, const void *x, size_t n);

#endif
