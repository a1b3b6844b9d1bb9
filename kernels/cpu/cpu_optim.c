/*
 * CPU ops, optimizer family: AdamW and the sum of squares (for the global gradient norm).
 *
 * AdamW follows torch.optim.AdamW's single-tensor CPU path operation by operation, in fp32
 * with the scalar coefficients computed in double and rounded to float as torch does:
 *   g = grad * grad_scale
 *   master *= 1 - lr * wd
 *   m = lerp(m, g, 1 - beta1)                (torch's lerp formula)
 *   v = v * beta2 + (1 - beta2) * g * g
 *   master += (-lr / (1 - beta1^t)) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
 *   param = master                           (param may be master itself)
 *
 * sum_squares sums fixed 4096-element chunks in double in parallel, then adds the chunk sums
 * in order: the same bits for any thread count.
 */
#include "ops_cpu.h"

#include <math.h>
#include <stdlib.h>

void sr_cpu_adamw(SrBackend *be, void *param_, float *master, const void *grad_, float *m, float *v,
                  size_t n, float lr, float beta1, float beta2, float eps, float weight_decay,
                  float grad_scale, int step) {
    float *param = param_;
    const float *grad = grad_;
    SR_ASSERT(step >= 1);
    double bc1 = 1.0 - pow((double)beta1, (double)step);
    double bc2 = 1.0 - pow((double)beta2, (double)step);
    float decay = (float)(1.0 - (double)lr * (double)weight_decay);
    float w1 = (float)(1.0 - (double)beta1); /* lerp weight */
    float b2 = beta2, one_minus_b2 = (float)(1.0 - (double)beta2);
    float bc2_sqrt = (float)sqrt(bc2);
    float neg_step = (float)(-(double)lr / bc1);
#pragma omp parallel for num_threads(cpu_threads_for(be, 12.0 * n)) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float g = grad[i] * grad_scale;
        float p = master[i] * decay;
        float mi = m[i];
        mi = w1 < 0.5f ? mi + w1 * (g - mi) : g - (g - mi) * (1.0f - w1);
        float vi = v[i] * b2 + one_minus_b2 * g * g;
        float denom = sqrtf(vi) / bc2_sqrt + eps;
        p = p + neg_step * mi / denom;
        m[i] = mi;
        v[i] = vi;
        master[i] = p;
        if (param && param != master) param[i] = p;
    }
}

#define SS_CHUNK 4096

double sr_cpu_sum_squares(SrBackend *be, const void *x_, size_t n) {
    const float *x = x_;
    size_t nchunks = (n + SS_CHUNK - 1) / SS_CHUNK;
    if (nchunks == 0) return 0.0;
    double *part = malloc(nchunks * sizeof(double));
    SR_ASSERT(part);
#pragma omp parallel for num_threads(cpu_threads_for(be, 2.0 * n)) schedule(static)
    for (size_t c = 0; c < nchunks; c++) {
        size_t i0 = c * SS_CHUNK, i1 = i0 + SS_CHUNK < n ? i0 + SS_CHUNK : n;
        double s = 0.0;
        for (size_t i = i0; i < i1; i++) s += (double)x[i] * x[i];
        part[c] = s;
    }
    double total = 0.0;
    for (size_t c = 0; c < nchunks; c++) total += part[c];
    free(part);
    return total;
}
