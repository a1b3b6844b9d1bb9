/*
 * CUDA ops, layer family: embedding, RMSNorm, RoPE, SwiGLU, add, KV cache store, and the
 * deterministic column sums shared with matmul's dbias.
 * Shapes: N tokens, C channels, H heads, D head dim. "act" buffers are bf16; arithmetic is
 * fp32, rounded to bf16 once per stored value. Backward ops accumulate (+=) into bf16:
 * read, add in fp32, round once.
 *
 * Determinism (no float atomics):
 *   - embedding backward: one block per token; the block of a token that is the FIRST
 *     occurrence of its id owns that vocabulary row and adds the gradient rows of all the
 *     token's occurrences, in token order (the CPU order); other blocks exit. Finding "first"
 *     and the occurrences scans the ids: O(N * distinct ids) reads of a small L2-resident
 *     array, and no vocabulary-sized scratch (the op is not told V).
 *   - column sums over tokens (RMSNorm dw, dbias): per-row-block partials, then one ordered
 *     pass over the partials.
 */
#include <string.h>

#include "ops_cuda.h"

/* ---- embedding ------------------------------------------------------------------------- */

/* out[i, :] = wte[ids[i], :]; grid (N), block 128 */
__global__ void embedding_forward_kernel(bf16 *out, const int32_t *ids, const bf16 *wte, int C) {
    int i = blockIdx.x;
    int id = ids[i];
    if (id < 0) __trap(); /* the model validates ids; a negative one here is a bug */
    const bf16 *src = wte + (size_t)id * C;
    bf16 *dst = out + (size_t)i * C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) dst[c] = src[c];
}

void cuda_embedding_forward(SrBackend *be, void *out, const int32_t *ids, const void *wte, int N,
                            int C) {
    CudaImpl *im = cuda_impl(be);
    if (N <= 0 || C <= 0) return;
    embedding_forward_kernel<<<N, 128, 0, im->stream>>>((bf16 *)out, ids, (const bf16 *)wte, C);
    cudaCheckLaunch();
}

#define EMB_THREADS 256
#define EMB_COLS 8 /* columns per thread per pass: a pass covers 2048 channels */

/* grid (N), block EMB_THREADS. See the file comment. */
__global__ void __launch_bounds__(EMB_THREADS)
    embedding_backward_kernel(bf16 *dwte, const bf16 *dout, const int32_t *ids, int N, int C) {
    __shared__ int match[EMB_THREADS];
    __shared__ int warp_count[EMB_THREADS / 32];
    int i = blockIdx.x, tid = threadIdx.x, lane = tid & 31, wid = tid >> 5;
    int id = ids[i];
    if (id < 0) __trap();
    /* 1. is token i the first occurrence of id? scan j < i backwards (a repeat of a common
     *    token usually finds its predecessor in the first tile) */
    for (int hi = i; hi > 0; hi -= EMB_THREADS) {
        int j = hi - 1 - tid;
        int dup = j >= 0 && ids[j] == id;
        if (__syncthreads_or(dup)) return; /* uniform: every thread sees the same answer */
    }
    /* 2. dwte[id, c] += dout[j, c] for the occurrences j >= i, in increasing j */
    for (int c0 = 0; c0 < C; c0 += EMB_THREADS * EMB_COLS) {
        float acc[EMB_COLS];
        const bf16 *row = dwte + (size_t)id * C;
#pragma unroll
        for (int t = 0; t < EMB_COLS; t++) {
            int c = c0 + t * EMB_THREADS + tid;
            acc[t] = c < C ? bf2f(row[c]) : 0.0f;
        }
        for (int j0 = i; j0 < N; j0 += EMB_THREADS) {
            int j = j0 + tid;
            int hit = j < N && ids[j] == id;
            unsigned ballot = __ballot_sync(0xffffffffu, hit);
            if (lane == 0) warp_count[wid] = __popc(ballot);
            __syncthreads();
            int before = 0, total = 0;
            for (int w = 0; w < EMB_THREADS / 32; w++) {
                if (w < wid) before += warp_count[w];
                total += warp_count[w];
            }
            if (hit) match[before + __popc(ballot & ((1u << lane) - 1u))] = j;
            __syncthreads();
            for (int m = 0; m < total; m++) {
                const bf16 *g = dout + (size_t)match[m] * C;
#pragma unroll
                for (int t = 0; t < EMB_COLS; t++) {
                    int c = c0 + t * EMB_THREADS + tid;
                    if (c < C) acc[t] += bf2f(g[c]);
                }
            }
            __syncthreads(); /* match / warp_count are rewritten by the next tile */
        }
        bf16 *wrow = dwte + (size_t)id * C;
#pragma unroll
        for (int t = 0; t < EMB_COLS; t++) {
            int c = c0 + t * EMB_THREADS + tid;
            if (c < C) wrow[c] = f2bf(acc[t]);
        }
    }
}

void cuda_embedding_backward(SrBackend *be, void *dwte, const void *dout, const int32_t *ids,
                             int N, int C) {
    CudaImpl *im = cuda_impl(be);
    if (N <= 0 || C <= 0) return;
    embedding_backward_kernel<<<N, EMB_THREADS, 0, im->stream>>>((bf16 *)dwte, (const bf16 *)dout,
                                                                 ids, N, C);
    cudaCheckLaunch();
}

/* ---- column sums ------------------------------------------------------------------------- */

#define COLSUM_ROWS 64    /* rows per partial */
#define COLSUM_THREADS 256

/* grid (cdiv(C, 256), cdiv(N, COLSUM_ROWS)); thread = one column of one row block */
__global__ void colsum_partial_kernel(float *partial, const bf16 *g, const bf16 *x,
                                      const float *rstd, int N, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    int rb = blockIdx.y;
    if (c >= C) return;
    int i0 = rb * COLSUM_ROWS, i1 = min(N, i0 + COLSUM_ROWS);
    float s = 0.0f;
    for (int i = i0; i < i1; i++) {
        float v = bf2f(g[(size_t)i * C + c]);
        if (x) v *= bf2f(x[(size_t)i * C + c]) * rstd[i];
        s += v;
    }
    partial[(size_t)rb * C + c] = s;
}

__global__ void colsum_finish_kernel(bf16 *dst, const float *partial, int nrb, int C) {
    int c = blockIdx.x * blockDim.x + threadIdx.x;
    if (c >= C) return;
    double s = 0.0;
    for (int rb = 0; rb < nrb; rb++) s += partial[(size_t)rb * C + c];
    dst[c] = f2bf((float)((double)bf2f(dst[c]) + s));
}

void cuda_colsum_accumulate(CudaImpl *im, bf16 *dst, const bf16 *g, const bf16 *x,
                            const float *rstd, int N, int C) {
    if (N <= 0 || C <= 0) return;
    int nrb = (int)cdiv(N, COLSUM_ROWS);
    SR_ASSERT(nrb <= 65535); /* grid.y limit: N <= 4M tokens */
    float *partial = (float *)cuda_scratch(im, (size_t)nrb * C * sizeof(float));
    dim3 grid(cdiv(C, COLSUM_THREADS), nrb);
    colsum_partial_kernel<<<grid, COLSUM_THREADS, 0, im->stream>>>(partial, g, x, rstd, N, C);
    cudaCheckLaunch();
    colsum_finish_kernel<<<cdiv(C, COLSUM_THREADS), COLSUM_THREADS, 0, im->stream>>>(dst, partial,
                                                                                     nrb, C);
    cudaCheckLaunch();
}

/* ---- RMSNorm ------------------------------------------------------------------------------
 * rstd = 1/sqrt(mean(x^2) + eps) (fp32); out = w * to_act(x * rstd), one block per row. */

static int row_threads(int C) { return C >= 1024 ? 256 : C >= 256 ? 128 : 32; }

__global__ void rmsnorm_forward_kernel(bf16 *out, float *rstd, const bf16 *x, const bf16 *w, int C,
                                       float eps) {
    int i = blockIdx.x;
    const bf16 *xi = x + (size_t)i * C;
    bf16 *oi = out + (size_t)i * C;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float v = bf2f(xi[c]);
        ss += v * v;
    }
    ss = block_sum(ss);
    float var = ss / (float)C;
    float r = 1.0f / sqrtf(var + eps);
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float n = round_bf16(bf2f(xi[c]) * r);
        oi[c] = f2bf(bf2f(w[c]) * n);
    }
    if (rstd && threadIdx.x == 0) rstd[i] = r;
}

void cuda_rmsnorm_forward(SrBackend *be, void *out, float *rstd, const void *x, const void *w,
                          int N, int C, float eps) {
    CudaImpl *im = cuda_impl(be);
    if (N <= 0 || C <= 0) return;
    rmsnorm_forward_kernel<<<N, row_threads(C), 0, im->stream>>>(
        (bf16 *)out, rstd, (const bf16 *)x, (const bf16 *)w, C, eps);
    cudaCheckLaunch();
}

/* dx += rstd * (dn - n * mean(dn * n)), dn = dout * w, n = x * rstd; one block per row */
__global__ void rmsnorm_backward_dx_kernel(bf16 *dx, const bf16 *dout, const bf16 *x,
                                           const bf16 *w, const float *rstd, int C) {
    int i = blockIdx.x;
    const bf16 *xi = x + (size_t)i * C, *gi = dout + (size_t)i * C;
    bf16 *dxi = dx + (size_t)i * C;
    float r = rstd[i];
    float dot = 0.0f;
    for (int c = threadIdx.x; c < C; c += blockDim.x)
        dot += (bf2f(gi[c]) * bf2f(w[c])) * (bf2f(xi[c]) * r);
    dot = block_sum(dot);
    float mean = dot / (float)C;
    for (int c = threadIdx.x; c < C; c += blockDim.x) {
        float n = bf2f(xi[c]) * r;
        float d = r * (bf2f(gi[c]) * bf2f(w[c]) - n * mean);
        dxi[c] = f2bf(bf2f(dxi[c]) + d);
    }
}

void cuda_rmsnorm_backward(SrBackend *be, void *dx, void *dw, const void *dout, const void *x,
                           const void *w, const float *rstd, int N, int C) {
    CudaImpl *im = cuda_impl(be);
    if (N <= 0 || C <= 0) return;
    if (dx) {
        rmsnorm_backward_dx_kernel<<<N, row_threads(C), 0, im->stream>>>(
            (bf16 *)dx, (const bf16 *)dout, (const bf16 *)x, (const bf16 *)w, rstd, C);
        cudaCheckLaunch();
    }
    if (dw)
        cuda_colsum_accumulate(im, (bf16 *)dw, (const bf16 *)dout, (const bf16 *)x, rstd, N, C);
}

/* ---- RoPE (rotate_half) --------------------------------------------------------------------
 * inv_freq is computed on the host exactly as the CPU op does (float32 powf) and passed by
 * value; angle = (float)pos * inv_freq[f] in fp32, cosf/sinf (full precision) on the device. */

#define ROPE_MAX_HALF 128 /* D <= 256 */

struct RopeFreq {
    float inv[ROPE_MAX_HALF];
};

/* grid-stride over (i, f) pairs; each thread rotates that pair in all H heads */
__global__ void rope_kernel(bf16 *x, const int32_t *pos, int N, int H, int D, RopeFreq fr,
                            float sign) {
    int half = D / 2;
    size_t total = (size_t)N * half;
    for (size_t t = blockIdx.x * (size_t)blockDim.x + threadIdx.x; t < total;
         t += (size_t)gridDim.x * blockDim.x) {
        int i = (int)(t / half), f = (int)(t % half);
        float ang = (float)pos[i] * fr.inv[f];
        float c = cosf(ang), s = sign * sinf(ang);
        bf16 *xi = x + (size_t)i * H * D;
        for (int h = 0; h < H; h++) {
            bf16 *xh = xi + (size_t)h * D;
            float x1 = bf2f(xh[f]), x2 = bf2f(xh[f + half]);
            xh[f] = f2bf(x1 * c + (-x2) * s);
            xh[f + half] = f2bf(x2 * c + x1 * s);
        }
    }
}

static void rope_apply(SrBackend *be, void *x, const int32_t *pos, int N, int H, int D,
                       float theta, float sign) {
    CudaImpl *im = cuda_impl(be);
    SR_ASSERT(D % 2 == 0 && D / 2 <= ROPE_MAX_HALF);
    if (N <= 0 || H <= 0 || D <= 0) return;
    RopeFreq fr;
    memset(&fr, 0, sizeof fr);
    for (int f = 0; f < D / 2; f++) { /* = sr_cpu_rope_inv_freq */
        float e = (float)(2 * f) / (float)D;
        fr.inv[f] = 1.0f / powf(theta, e);
    }
    size_t total = (size_t)N * (D / 2);
    rope_kernel<<<grid_for(total, 256), 256, 0, im->stream>>>((bf16 *)x, pos, N, H, D, fr, sign);
    cudaCheckLaunch();
}

void cuda_rope_forward(SrBackend *be, void *x, const int32_t *pos, int N, int H, int D,
                       float theta) {
    rope_apply(be, x, pos, N, H, D, theta, 1.0f);
}

void cuda_rope_backward(SrBackend *be, void *dx, const int32_t *pos, int N, int H, int D,
                        float theta) {
    rope_apply(be, dx, pos, N, H, D, theta, -1.0f);
}

/* ---- SwiGLU and add -------------------------------------------------------------------------- */

#define GRID_STRIDE(i, n)                                                            \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < (n);          \
         i += (size_t)gridDim.x * blockDim.x)

__global__ void swiglu_forward_kernel(bf16 *out, const bf16 *gate, const bf16 *up, size_t n) {
    GRID_STRIDE(i, n) {
        float g = bf2f(gate[i]);
        float silu = g / (1.0f + expf(-g));
        out[i] = f2bf(silu * bf2f(up[i]));
    }
}

__global__ void swiglu_backward_kernel(bf16 *dgate, bf16 *dup, const bf16 *dout, const bf16 *gate,
                                       const bf16 *up, size_t n) {
    GRID_STRIDE(i, n) {
        float g = bf2f(gate[i]), u = bf2f(up[i]), d = bf2f(dout[i]);
        float sig = 1.0f / (1.0f + expf(-g));
        if (dgate) dgate[i] = f2bf(bf2f(dgate[i]) + d * u * sig * (1.0f + g * (1.0f - sig)));
        if (dup) dup[i] = f2bf(bf2f(dup[i]) + d * g * sig);
    }
}

__global__ void add_kernel(bf16 *out, const bf16 *a, const bf16 *b, size_t n) {
    GRID_STRIDE(i, n) { out[i] = f2bf(bf2f(a[i]) + bf2f(b[i])); }
}

void cuda_swiglu_forward(SrBackend *be, void *out, const void *gate, const void *up, size_t n) {
    CudaImpl *im = cuda_impl(be);
    if (!n) return;
    swiglu_forward_kernel<<<grid_for(n, 256), 256, 0, im->stream>>>(
        (bf16 *)out, (const bf16 *)gate, (const bf16 *)up, n);
    cudaCheckLaunch();
}

void cuda_swiglu_backward(SrBackend *be, void *dgate, void *dup, const void *dout,
                          const void *gate, const void *up, size_t n) {
    CudaImpl *im = cuda_impl(be);
    if (!n || (!dgate && !dup)) return;
    swiglu_backward_kernel<<<grid_for(n, 256), 256, 0, im->stream>>>(
        (bf16 *)dgate, (bf16 *)dup, (const bf16 *)dout, (const bf16 *)gate, (const bf16 *)up, n);
    cudaCheckLaunch();
}

void cuda_add(SrBackend *be, void *out, const void *a, const void *b, size_t n) {
    CudaImpl *im = cuda_impl(be);
    if (!n) return;
    add_kernel<<<grid_for(n, 256), 256, 0, im->stream>>>((bf16 *)out, (const bf16 *)a,
                                                         (const bf16 *)b, n);
    cudaCheckLaunch();
}

/* ---- KV cache store ------------------------------------------------------------------------- */

/* kcache[slot[i], :] = k[i, :], vcache likewise; grid (N, cdiv(KVD, 256)) */
__global__ void kv_store_kernel(bf16 *kc, bf16 *vc, const bf16 *k, const bf16 *v,
                                const int32_t *slot, int KVD) {
    int i = blockIdx.x, c = blockIdx.y * blockDim.x + threadIdx.x;
    if (c >= KVD) return;
    int s = slot[i];
    if (s < 0) __trap();
    kc[(size_t)s * KVD + c] = k[(size_t)i * KVD + c];
    vc[(size_t)s * KVD + c] = v[(size_t)i * KVD + c];
}

void cuda_kv_store(SrBackend *be, void *kcache, void *vcache, const void *k, const void *v,
                   const int32_t *slot, int N, int KVD) {
    CudaImpl *im = cuda_impl(be);
    if (N <= 0 || KVD <= 0) return;
    dim3 grid(N, cdiv(KVD, 256));
    kv_store_kernel<<<grid, 256, 0, im->stream>>>((bf16 *)kcache, (bf16 *)vcache, (const bf16 *)k,
                                                  (const bf16 *)v, slot, KVD);
    cudaCheckLaunch();
}
