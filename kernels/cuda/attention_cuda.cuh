/*
 * Private to the attention files of the CUDA backend: the tiled (tensor-core, flash-style)
 * kernels of cuda_attention_tiled.cu, called by cuda_attention.cu. Each returns false when it
 * does not handle the case (head dim, alignment), and the caller runs the simple kernels.
 */
#ifndef SR_KERNELS_CUDA_ATTENTION_CUH
#define SR_KERNELS_CUDA_ATTENTION_CUH

#include "ops_cuda.h"

#define ATTN_MAX_D 256 /* largest head dim any attention kernel takes */

bool attn_tiled_forward(CudaImpl *im, bf16 *out, float *lse, const bf16 *q, const bf16 *k,
                        const bf16 *v, const int32_t *pos, int N, int Hq, int Hkv, int D,
                        float scale);
/* dsum: scratch of Hq*N floats */
bool attn_tiled_backward(CudaImpl *im, bf16 *dq, bf16 *dk, bf16 *dv, float *dsum,
                         const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                         const bf16 *out, const float *lse, const int32_t *pos, int N, int Hq,
                         int Hkv, int D, float scale);

#endif
