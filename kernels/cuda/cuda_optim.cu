/*
 * CUDA ops, optimizer family: AdamW and the sum of squares (for the global gradient norm).
 *
 * AdamW runs on the fp32 master weights and moments, element for element the CPU op's
 * arithmetic (kernels/cpu/cpu_optim.c: torch.optim.AdamW's single-tensor path, scalar
 * coefficients computed in double on the host and rounded to float), reading the bf16 grad
 * (times grad_scale) and writing the bf16 working copy of the parameter from the new master.
 *
 * sum_squares: pass 1, one block per fixed 8192-element chunk, fp32 per thread then an fp64
 * block tree; pass 2, one block adds the chunk sums in fp64 in a fixed tree. The grid depends
 * only on n, so the result is the same bits on every run.
 */
#include "ops_cuda.h"

struct AdamCoef {
    float decay, w1, b2, one_minus_b2, bc2_sqrt, neg_step, eps, grad_scale;
};

__global__ void adamw_kernel(bf16 *param, float *master, const bf16 *grad, float *m, float *v,
                             size_t n, AdamCoef k) {
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        float g = bf2f(grad[i]) * k.grad_scale;
        float p = master[i] * k.decay;
        float mi = m[i];
        mi = k.w1 < 0.5f ? mi + k.w1 * (g - mi) : g - (g - mi) * (1.0f - k.w1);
        float vi = v[i] * k.b2 + k.one_minus_b2 * g * g;
        float denom = sqrtf(vi) / k.bc2_sqrt + k.eps;
        p = p + k.neg_step * mi / denom;
        m[i] = mi;
        v[i] = vi;
        master[i] = p;
        if (param) param[i] = f2bf(p);
    }
}

void cuda_adamw(SrBackend *be, void *param, float *master, const void *grad, float *m, float *v,
                size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                float grad_scale, int step) {
    CudaImpl *im = cuda_impl(be);
    SR_ASSERT(step >= 1);
    if (!n) return;
    /* param is a bf16 buffer; on the CUDA backend it can never be the fp32 master itself */
    SR_ASSERT((void *)master != param);
    double bc1 = 1.0 - pow((double)beta1, (double)step);
    double bc2 = 1.0 - pow((double)beta2, (double)step);
    AdamCoef k;
    k.decay = (float)(1.0 - (double)lr * (double)weight_decay);
    k.w1 = (float)(1.0 - (double)beta1);
    k.b2 = beta2;
    k.one_minus_b2 = (float)(1.0 - (double)beta2);
    k.bc2_sqrt = (float)sqrt(bc2);
    k.neg_step = (float)(-(double)lr / bc1);
    k.eps = eps;
    k.grad_scale = grad_scale;
    adamw_kernel<<<grid_for(n, 256), 256, 0, im->stream>>>((bf16 *)param, master,
                                                           (const bf16 *)grad, m, v, n, k);
    cudaCheckLaunch();
}

#define SS_THREADS 256
#define SS_CHUNK 8192 /* elements per block of pass 1 */

__global__ void __launch_bounds__(SS_THREADS)
    sum_squares_partial_kernel(double *part, const bf16 *x, size_t n) {
    size_t i0 = (size_t)blockIdx.x * SS_CHUNK;
    size_t i1 = i0 + SS_CHUNK < n ? i0 + SS_CHUNK : n;
    float s = 0.0f;
    for (size_t i = i0 + threadIdx.x; i < i1; i += SS_THREADS) {
        float v = bf2f(x[i]);
        s += v * v;
    }
    double t = block_sum((double)s);
    if (threadIdx.x == 0) part[blockIdx.x] = t;
}

__global__ void __launch_bounds__(1024) sum_squares_final_kernel(double *out, const double *part,
                                                                 size_t nparts) {
    double s = 0.0;
    for (size_t i = threadIdx.x; i < nparts; i += blockDim.x) s += part[i];
    s = block_sum(s);
    if (threadIdx.x == 0) *out = s;
}

double cuda_sum_squares(SrBackend *be, const void *x, size_t n) {
    CudaImpl *im = cuda_impl(be);
    if (!n) return 0.0;
    size_t nparts = (n + SS_CHUNK - 1) / SS_CHUNK;
    SR_ASSERT(nparts < (1u << 31));
    double *part = (double *)cuda_scratch(im, (nparts + 1) * sizeof(double));
    sum_squares_partial_kernel<<<(unsigned)nparts, SS_THREADS, 0, im->stream>>>(
        part + 1, (const bf16 *)x, n);
    cudaCheckLaunch();
    sum_squares_final_kernel<<<1, 1024, 0, im->stream>>>(part, part + 1, nparts);
    cudaCheckLaunch();
    double r = 0.0;
    cudaCheck(cudaMemcpyAsync(&r, part, sizeof r, cudaMemcpyDeviceToHost, im->stream));
    cudaCheck(cudaStreamSynchronize(im->stream));
    return r;
}
