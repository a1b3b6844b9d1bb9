/*
 * CPU ops, layer family: embedding, RMSNorm, linear (OpenBLAS), RoPE, SwiGLU, add.
 * All buffers are float. Shapes: N tokens, C channels, OC output channels, H heads, D head dim.
 *
 * Backward ops accumulate (+=). Sums over tokens (dwte, dw of RMSNorm, dbias) are parallelised
 * over blocks of columns, each block owned by one thread and summed over tokens in order, so
 * the result has the same bits for any thread count.
 */
#include "ops_cpu.h"

#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#define COL_BLOCK 64 /* columns per thread-owned block in token reductions */

/* ---- embedding ------------------------------------------------------------------------ */

/* out[N,C] = wte[ids[i], :] */
void sr_cpu_embedding_forward(SrBackend *be, void *out_, const int32_t *ids, const void *wte_,
                              int N, int C) {
    float *out = out_;
    const float *wte = wte_;
#pragma omp parallel for num_threads(cpu_threads_for(be, (double)N *C)) schedule(static)
    for (int i = 0; i < N; i++) {
        SR_ASSERT(ids[i] >= 0);
        memcpy(out + (size_t)i * C, wte + (size_t)ids[i] * C, (size_t)C * sizeof(float));
    }
}

/* dwte[ids[i], :] += dout[i, :]; each thread owns a block of columns, tokens in order */
void sr_cpu_embedding_backward(SrBackend *be, void *dwte_, const void *dout_, const int32_t *ids,
                               int N, int C) {
    float *dwte = dwte_;
    const float *dout = dout_;
    int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for num_threads(cpu_threads_for(be, (double)N *C)) schedule(static)
    for (int b = 0; b < nblocks; b++) {
        int c0 = b * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
        for (int i = 0; i < N; i++) {
            float *drow = dwte + (size_t)ids[i] * C;
            const float *g = dout + (size_t)i * C;
            for (int c = c0; c < c1; c++) drow[c] += g[c];
        }
    }
}

/* ---- RMSNorm (HF Qwen2RMSNorm) -------------------------------------------------------------
 * var = mean(x^2) (summed in double, rounded to float), rstd = 1/sqrt(var + eps) in float,
 * out = w * (x * rstd). */
void sr_cpu_rmsnorm_forward(SrBackend *be, void *out_, float *rstd, const void *x_, const void *w_,
                            int N, int C, float eps) {
    float *out = out_;
    const float *x = x_, *w = w_;
#pragma omp parallel for num_threads(cpu_threads_for(be, 3.0 * N * C)) schedule(static)
    for (int i = 0; i < N; i++) {
        const float *xi = x + (size_t)i * C;
        float *oi = out + (size_t)i * C;
        double ss = 0.0;
        for (int c = 0; c < C; c++) ss += (double)xi[c] * xi[c];
        float var = (float)(ss / C);
        float r = 1.0f / sqrtf(var + eps);
        for (int c = 0; c < C; c++) {
            float n = xi[c] * r; /* to_act: a no-op in fp32 */
            oi[c] = w[c] * n;
        }
        if (rstd) rstd[i] = r;
    }
}

/* With n = x * rstd:  dw[c] += sum_i dout[i,c] n[i,c];
 * dx = rstd * (dn - n * mean(dn * n)),  dn = dout * w. */
void sr_cpu_rmsnorm_backward(SrBackend *be, void *dx_, void *dw_, const void *dout_, const void *x_,
                             const void *w_, const float *rstd, int N, int C) {
    float *dx = dx_, *dw = dw_;
    const float *dout = dout_, *x = x_, *w = w_;
    int nt = cpu_threads_for(be, 6.0 * N * C);
    if (dx) {
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int i = 0; i < N; i++) {
            const float *xi = x + (size_t)i * C, *gi = dout + (size_t)i * C;
            float *dxi = dx + (size_t)i * C;
            float r = rstd[i];
            double dot = 0.0; /* sum_c dn_c * n_c */
            for (int c = 0; c < C; c++) dot += (double)(gi[c] * w[c]) * (double)(xi[c] * r);
            float mean = (float)(dot / C);
            for (int c = 0; c < C; c++) {
                float n = xi[c] * r;
                dxi[c] += r * (gi[c] * w[c] - n * mean);
            }
        }
    }
    if (dw) {
        int nblocks = (C + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for num_threads(nt) schedule(static)
        for (int b = 0; b < nblocks; b++) {
            int c0 = b * COL_BLOCK, c1 = c0 + COL_BLOCK < C ? c0 + COL_BLOCK : C;
            double acc[COL_BLOCK] = {0};
            for (int i = 0; i < N; i++) {
                const float *xi = x + (size_t)i * C, *gi = dout + (size_t)i * C;
                float r = rstd[i];
                for (int c = c0; c < c1; c++) acc[c - c0] += (double)gi[c] * (double)(xi[c] * r);
            }
            for (int c = c0; c < c1; c++) dw[c] += (float)acc[c - c0];
        }
    }
}

/* ---- linear ----------------------------------------------------------------------------- */

/* out[N,OC] = inp[N,C] @ w[OC,C]^T + bias[OC] */
void sr_cpu_matmul_forward(SrBackend *be, void *out_, const void *inp, const void *w,
                           const void *bias_, int N, int C, int OC) {
    float *out = out_;
    const float *bias = bias_;
    if (N <= 0 || OC <= 0) return;
    if (C <= 0) {
        memset(out, 0, (size_t)N * OC * sizeof(float));
    } else {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, OC, C, 1.0f, inp, C, w, C, 0.0f,
                    out, OC);
    }
    if (bias) {
#pragma omp parallel for num_threads(cpu_threads_for(be, (double)N *OC)) schedule(static)
        for (int i = 0; i < N; i++) {
            float *oi = out + (size_t)i * OC;
            for (int o = 0; o < OC; o++) oi[o] += bias[o];
        }
    }
}

/* dinp[N,C] += dout[N,OC] @ w[OC,C];  dw[OC,C] += dout^T @ inp;  dbias[OC] += colsum(dout) */
void sr_cpu_matmul_backward(SrBackend *be, void *dinp, void *dw, void *dbias_, const void *dout_,
                            const void *inp, const void *w, int N, int C, int OC) {
    const float *dout = dout_;
    float *dbias = dbias_;
    if (N <= 0 || OC <= 0) return;
    if (dinp && C > 0)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, N, C, OC, 1.0f, dout, OC, w, C, 1.0f,
                    dinp, C);
    if (dw && C > 0)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, OC, C, N, 1.0f, dout, OC, inp, C, 1.0f,
                    dw, C);
    if (dbias) {
        int nblocks = (OC + COL_BLOCK - 1) / COL_BLOCK;
#pragma omp parallel for num_threads(cpu_threads_for(be, (double)N *OC)) schedule(static)
        for (int b = 0; b < nblocks; b++) {
            int o0 = b * COL_BLOCK, o1 = o0 + COL_BLOCK < OC ? o0 + COL_BLOCK : OC;
            double acc[COL_BLOCK] = {0};
            for (int i = 0; i < N; i++) {
                const float *gi = dout + (size_t)i * OC;
                for (int o = o0; o < o1; o++) acc[o - o0] += gi[o];
            }
            for (int o = o0; o < o1; o++) dbias[o] += (float)acc[o - o0];
        }
    }
}

/* ---- rotary embedding (rotate_half) -------------------------------------------------------
 * HF: inv_freq = 1.0 / (theta ** (arange(0, D, 2, int64).float() / D)), all in float32;
 * freqs = pos.float() * inv_freq (float32 product); cos/sin of that float32 angle.
 * (cosf/sinf and torch's vectorised cos/sin may differ in the last ulp.) */
void sr_cpu_rope_inv_freq(float *inv_freq, int D, float theta) {
    for (int f = 0; f < D / 2; f++) {
        float e = (float)(2 * f) / (float)D;
        inv_freq[f] = 1.0f / powf(theta, e);
    }
}

/* sign = +1: forward rotation; -1: the transposed (inverse) rotation for the backward */
static void rope_apply(SrBackend *be, float *x, const int32_t *pos, int N, int H, int D,
                       float theta, float sign) {
    SR_ASSERT(D % 2 == 0);
    int half = D / 2;
    float *inv_freq = malloc((size_t)(half > 0 ? half : 1) * sizeof(float));
    SR_ASSERT(inv_freq);
    sr_cpu_rope_inv_freq(inv_freq, D, theta);
#pragma omp parallel for num_threads(cpu_threads_for(be, 4.0 * N * H * D)) schedule(static)
    for (int i = 0; i < N; i++) {
        float p = (float)pos[i];
        float *xi = x + (size_t)i * H * D;
        for (int f = 0; f < half; f++) {
            float ang = p * inv_freq[f];
            float c = cosf(ang), s = sign * sinf(ang);
            for (int h = 0; h < H; h++) {
                float *xh = xi + (size_t)h * D;
                float x1 = xh[f], x2 = xh[f + half];
                /* q*cos + rotate_half(q)*sin,  rotate_half(q) = cat(-q2, q1) */
                xh[f] = x1 * c + (-x2) * s;
                xh[f + half] = x2 * c + x1 * s;
            }
        }
    }
    free(inv_freq);
}

void sr_cpu_rope_forward(SrBackend *be, void *x, const int32_t *pos, int N, int H, int D,
                         float theta) {
    rope_apply(be, x, pos, N, H, D, theta, 1.0f);
}

/* y1 = c x1 - s x2, y2 = s x1 + c x2  =>  dx1 = c dy1 + s dy2, dx2 = -s dy1 + c dy2 */
void sr_cpu_rope_backward(SrBackend *be, void *dx, const int32_t *pos, int N, int H, int D,
                          float theta) {
    rope_apply(be, dx, pos, N, H, D, theta, -1.0f);
}

/* ---- SwiGLU and add ------------------------------------------------------------------------ */

/* out = silu(g) * u, silu(g) = g / (1 + exp(-g)) as torch computes it */
/* silu and sigmoid four at a time with the attention's exp (cpu_exp_v4, ops_cpu.h): libm's
 * scalar expf was ~4 % of a tiny-model GRPO step. Lanes are independent, so the bits do not
 * depend on the thread count or on where the 4-blocks fall. n <= 4 values from p into a
 * vector (the rest 0) and back. */
static inline cpu_v4f v4_get(const float *p, size_t n) {
    cpu_v4f v = {0};
    if (n == 4) memcpy(&v, p, sizeof v); /* a constant size: one unaligned load */
    else memcpy(&v, p, n * sizeof(float));
    return v;
}

static inline void v4_put(float *p, cpu_v4f v, size_t n) {
    if (n == 4) memcpy(p, &v, sizeof v);
    else memcpy(p, &v, n * sizeof(float));
}

void sr_cpu_swiglu_forward(SrBackend *be, void *out_, const void *gate_, const void *up_,
                           size_t n) {
    float *out = out_;
    const float *g = gate_, *u = up_;
    size_t nb = (n + 3) / 4;
#pragma omp parallel for num_threads(cpu_threads_for(be, 8.0 * n)) schedule(static)
    for (size_t b = 0; b < nb; b++) {
        size_t i = 4 * b, m = n - i < 4 ? n - i : 4;
        cpu_v4f gv = v4_get(g + i, m), silu = gv / (1.0f + cpu_exp_v4(-gv));
        v4_put(out + i, silu * v4_get(u + i, m), m);
    }
}

/* d/dg silu(g) = sig(g) (1 + g (1 - sig(g)));  dup += dout silu(g);  dgate += dout u silu'(g) */
void sr_cpu_swiglu_backward(SrBackend *be, void *dgate_, void *dup_, const void *dout_,
                            const void *gate_, const void *up_, size_t n) {
    float *dg = dgate_, *du = dup_;
    const float *dout = dout_, *g = gate_, *u = up_;
    size_t nb = (n + 3) / 4;
#pragma omp parallel for num_threads(cpu_threads_for(be, 12.0 * n)) schedule(static)
    for (size_t b = 0; b < nb; b++) {
        size_t i = 4 * b, m = n - i < 4 ? n - i : 4;
        cpu_v4f gv = v4_get(g + i, m), ov = v4_get(dout + i, m);
        cpu_v4f sig = 1.0f / (1.0f + cpu_exp_v4(-gv));
        if (dg)
            v4_put(dg + i, v4_get(dg + i, m) + ov * v4_get(u + i, m) * sig * (1.0f + gv * (1.0f - sig)),
                   m);
        if (du) v4_put(du + i, v4_get(du + i, m) + ov * gv * sig, m);
    }
}

void sr_cpu_add(SrBackend *be, void *out_, const void *a_, const void *b_, size_t n) {
    float *out = out_;
    const float *a = a_, *b = b_;
#pragma omp parallel for num_threads(cpu_threads_for(be, (double)n)) schedule(static)
    for (size_t i = 0; i < n; i++) out[i] = a[i] + b[i];
}
