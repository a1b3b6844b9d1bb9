/*
 * CUDA ops, attention family: causal grouped-query attention over packed documents
 * (forward, backward), and attention over the engine's paged KV cache (any number of new
 * tokens of a sequence against its cache in one pass).
 *
 * Layout (as kernels/ops.h): q, out [N, Hq*D]; k, v [N, Hkv*D]; query head h reads KV head
 * h / (Hq/Hkv), so K/V are never repeated per query head. Token i attends to keys
 * j in [i - pos[i], i]; scale = 1/sqrt(D); softmax in fp32; lse [Hq, N].
 *
 * Two implementations of the training kernels:
 *   - "simple" (the reference, SR_CUDA_ATTN=simple): one warp per (query, head) row for the
 *     forward and dq, one warp per (key, KV head) for dk/dv. The row loops over its keys in
 *     tiles of 32: each lane scores one key (a full dot product over D), then the warp
 *     updates the online softmax and accumulates p * v with the lanes split over D.
 *     No shared state between warps, so it is easy to check; it reads K/V from L2 per row.
 *   - "tiled" (default, cuda_attention_tiled.cu): flash-style tiles on the tensor cores.
 * Both are deterministic: every output element has exactly one writer, sums in fixed order.
 *
 * Backward (both): with P_ij = exp(s_ij - lse_i) recomputed, Dsum_i = dout_i . out_i,
 *   dS_ij = P_ij (dout_i . v_j - Dsum_i);  dq_i += scale sum_j dS_ij k_j;
 *   dk_j += scale sum_i dS_ij q_i;  dv_j += sum_i P_ij dout_i   (i over queries that see j,
 *   over all query heads of j's group). Exactly the CPU op's two passes.
 *
 * Paged (the engine's block tables): the simple forward's loop with key j's row looked up
 * in the sequence's block table, one warp per (new token, head), no chunking: a catch-up has
 * Δ tokens times Hq rows to fill the GPU with, and it is kept obviously correct rather than
 * fast (no tensor cores).
 */
#include "attention_cuda.cuh"

/* ---- one query row, one warp (the simple forward and paged kernels) ------------------------- */

/* where key j of a row lives: row j (contiguous), or through a block table (paged cache) */
struct RowsContig {
    __device__ size_t operator()(int j) const { return (size_t)j; }
};
struct RowsPaged {
    const int32_t *table; /* the sequence's block table */
    int block;
    __device__ size_t operator()(int j) const {
        return (size_t)table[j / block] * block + j % block;
    }
};

/* One warp's attention of one query row (qrow, fp32 in shared memory) over keys 0..last of
 * kh / vh (key j at row rows(j), row stride ks), online softmax in fp32; writes the output row
 * oi and returns the log-sum-exp. Shared by the packed forward (keys = the document so far)
 * and the paged kernel (keys = the sequence's cache rows, through its block table). */
template <int DPL, class Rows = RowsContig>
__device__ float attn_warp_row(const float *qrow, const bf16 *kh, const bf16 *vh, size_t ks,
                               int last, int D, float scale, int lane, bf16 *oi,
                               Rows rows = Rows()) {
    float m = -INFINITY, l = 0.0f, acc[DPL];
#pragma unroll
    for (int t = 0; t < DPL; t++) acc[t] = 0.0f;
    for (int j0 = 0; j0 <= last; j0 += 32) {
        int j = j0 + lane;
        float s = -INFINITY;
        if (j <= last) {
            const bf16 *kj = kh + rows(j) * ks;
            float dot = 0.0f;
            for (int d = 0; d < D; d++) dot += qrow[d] * bf2f(kj[d]);
            s = dot * scale;
        }
        float mnew = fmaxf(m, warp_max(s)); /* finite: lane 0 always has a key */
        float corr = expf(m - mnew);
        float p = j <= last ? expf(s - mnew) : 0.0f;
        l = l * corr + warp_sum(p);
        int nj = min(32, last - j0 + 1);
#pragma unroll
        for (int t = 0; t < DPL; t++) acc[t] *= corr;
        for (int jj = 0; jj < nj; jj++) {
            float pj = __shfl_sync(0xffffffffu, p, jj);
            const bf16 *vj = vh + rows(j0 + jj) * ks;
#pragma unroll
            for (int t = 0; t < DPL; t++) {
                int d = lane + 32 * t;
                if (d < D) acc[t] += pj * bf2f(vj[d]);
            }
        }
        m = mnew;
    }
    float inv = 1.0f / l;
#pragma unroll
    for (int t = 0; t < DPL; t++) {
        int d = lane + 32 * t;
        if (d < D) oi[d] = f2bf(acc[t] * inv);
    }
    return m + logf(l);
}

/* ---- simple forward ----------------------------------------------------------------------- */

#define AW 4 /* warps (rows) per block */

/* grid (cdiv(N, AW), Hq), block 32*AW, dynamic smem AW*D floats */
template <int DPL>
__global__ void __launch_bounds__(32 * AW)
    attn_fwd_simple_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                           const int32_t *pos, int N, int Hq, int Hkv, int D, float scale) {
    extern __shared__ float sh[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int i = blockIdx.x * AW + warp, h = blockIdx.y;
    if (i >= N) return; /* warp-uniform; no block barriers below */
    int kvh = h / (Hq / Hkv);
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D;
    float *qrow = sh + warp * D;
    const bf16 *qi = q + (size_t)i * qs + (size_t)h * D;
    for (int d = lane; d < D; d += 32) qrow[d] = bf2f(qi[d]);
    __syncwarp();
    if (pos[i] < 0 || pos[i] > i) __trap(); /* the model validates positions */
    /* the document's keys are rows i - pos[i] .. i */
    size_t start = (size_t)(i - pos[i]);
    const bf16 *kh = k + start * ks + (size_t)kvh * D, *vh = v + start * ks + (size_t)kvh * D;
    float lse_i = attn_warp_row<DPL>(qrow, kh, vh, ks, pos[i], D, scale, lane,
                                     out + (size_t)i * qs + (size_t)h * D);
    if (lse && lane == 0) lse[(size_t)h * N + i] = lse_i;
}

/* ---- simple backward ---------------------------------------------------------------------- */

/* pass 1, one warp per (query i, head h): dsum[h, i] = dout_i . out_i, and (if dq)
 * dq_i += scale sum_j dS_ij k_j. grid (cdiv(N, AW), Hq), dynamic smem 2*AW*D floats. */
template <int DPL>
__global__ void __launch_bounds__(32 * AW)
    attn_bwd_dq_simple_kernel(bf16 *dq, float *dsum, const bf16 *dout, const bf16 *q,
                              const bf16 *k, const bf16 *v, const bf16 *out, const float *lse,
                              const int32_t *pos, int N, int Hq, int Hkv, int D, float scale) {
    extern __shared__ float sh[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int i = blockIdx.x * AW + warp, h = blockIdx.y;
    if (i >= N) return;
    int kvh = h / (Hq / Hkv);
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D;
    size_t qoff = (size_t)i * qs + (size_t)h * D;
    float *qrow = sh + warp * 2 * D, *grow = qrow + D;
    float di = 0.0f;
    for (int d = lane; d < D; d += 32) {
        qrow[d] = bf2f(q[qoff + d]);
        float g = bf2f(dout[qoff + d]);
        grow[d] = g;
        di += g * bf2f(out[qoff + d]);
    }
    di = warp_sum(di);
    if (lane == 0) dsum[(size_t)h * N + i] = di;
    __syncwarp();
    if (!dq) return;
    float l = lse[(size_t)h * N + i];
    const bf16 *kh = k + (size_t)kvh * D, *vh = v + (size_t)kvh * D;
    if (pos[i] < 0 || pos[i] > i) __trap();
    int start = i - pos[i];
    float acc[DPL];
#pragma unroll
    for (int t = 0; t < DPL; t++) acc[t] = 0.0f;
    for (int j0 = start; j0 <= i; j0 += 32) {
        int j = j0 + lane;
        float ds = 0.0f;
        if (j <= i) {
            const bf16 *kj = kh + (size_t)j * ks, *vj = vh + (size_t)j * ks;
            float sdot = 0.0f, pdot = 0.0f;
            for (int d = 0; d < D; d++) {
                sdot += qrow[d] * bf2f(kj[d]);
                pdot += grow[d] * bf2f(vj[d]);
            }
            float p = expf(sdot * scale - l);
            ds = p * (pdot - di);
        }
        int nj = min(32, i - j0 + 1);
        for (int jj = 0; jj < nj; jj++) {
            float dsj = __shfl_sync(0xffffffffu, ds, jj);
            const bf16 *kj = kh + (size_t)(j0 + jj) * ks;
#pragma unroll
            for (int t = 0; t < DPL; t++) {
                int d = lane + 32 * t;
                if (d < D) acc[t] += dsj * bf2f(kj[d]);
            }
        }
    }
    bf16 *dqi = dq + qoff;
#pragma unroll
    for (int t = 0; t < DPL; t++) {
        int d = lane + 32 * t;
        if (d < D) dqi[d] = f2bf(bf2f(dqi[d]) + scale * acc[t]);
    }
}

/* pass 2, one warp per (key j, KV head): dk_j, dv_j summed over the query heads of the group
 * and the queries i >= j of j's document. grid (cdiv(N, AW), Hkv), smem 2*AW*D floats. */
template <int DPL>
__global__ void __launch_bounds__(32 * AW)
    attn_bwd_dkv_simple_kernel(bf16 *dk, bf16 *dv, const float *dsum, const bf16 *dout,
                               const bf16 *q, const bf16 *k, const bf16 *v, const float *lse,
                               const int32_t *pos, int N, int Hq, int Hkv, int D, float scale) {
    extern __shared__ float sh[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int j = blockIdx.x * AW + warp, kvh = blockIdx.y;
    if (j >= N) return;
    int group = Hq / Hkv;
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D;
    size_t koff = (size_t)j * ks + (size_t)kvh * D;
    float *krow = sh + warp * 2 * D, *vrow = krow + D;
    for (int d = lane; d < D; d += 32) {
        krow[d] = bf2f(k[koff + d]);
        vrow[d] = bf2f(v[koff + d]);
    }
    __syncwarp();
    float dk_acc[DPL], dv_acc[DPL];
#pragma unroll
    for (int t = 0; t < DPL; t++) dk_acc[t] = dv_acc[t] = 0.0f;
    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
        for (int i0 = j;; i0 += 32) {
            int i = i0 + lane;
            /* queries that see key j: i >= j, same document (i - pos[i] <= j); they form
             * one run [j, end of j's document), so the valid lanes are a prefix */
            bool valid = i < N && i - pos[i] <= j;
            unsigned ballot = __ballot_sync(0xffffffffu, valid);
            if (ballot == 0) break;
            float p = 0.0f, ds = 0.0f;
            if (valid) {
                const bf16 *qi = q + (size_t)i * qs + (size_t)h * D;
                const bf16 *gi = dout + (size_t)i * qs + (size_t)h * D;
                float sdot = 0.0f, pdot = 0.0f;
                for (int d = 0; d < D; d++) {
                    sdot += bf2f(qi[d]) * krow[d];
                    pdot += bf2f(gi[d]) * vrow[d];
                }
                p = expf(sdot * scale - lse[(size_t)h * N + i]);
                ds = p * (pdot - dsum[(size_t)h * N + i]);
            }
            int ni = __popc(ballot);
            for (int ii = 0; ii < ni; ii++) {
                float pi = __shfl_sync(0xffffffffu, p, ii);
                float dsi = __shfl_sync(0xffffffffu, ds, ii);
                const bf16 *qi = q + (size_t)(i0 + ii) * qs + (size_t)h * D;
                const bf16 *gi = dout + (size_t)(i0 + ii) * qs + (size_t)h * D;
#pragma unroll
                for (int t = 0; t < DPL; t++) {
                    int d = lane + 32 * t;
                    if (d < D) {
                        dv_acc[t] += pi * bf2f(gi[d]);
                        dk_acc[t] += dsi * bf2f(qi[d]);
                    }
                }
            }
            if (ni < 32) break; /* the run ended inside this tile */
        }
    }
#pragma unroll
    for (int t = 0; t < DPL; t++) {
        int d = lane + 32 * t;
        if (d < D) {
            if (dk) dk[koff + d] = f2bf(bf2f(dk[koff + d]) + scale * dk_acc[t]);
            if (dv) dv[koff + d] = f2bf(bf2f(dv[koff + d]) + dv_acc[t]);
        }
    }
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static void attn_check_args(int N, int Hq, int Hkv, int D) {
    SR_ASSERT(Hkv > 0 && Hq > 0 && Hq % Hkv == 0);
    SR_ASSERT(D > 0 && D <= ATTN_MAX_D);
    SR_ASSERT(Hq <= 65535 && N >= 0);
}

void cuda_attention_forward(SrBackend *be, void *out, float *lse, const void *q, const void *k,
                            const void *v, const int32_t *pos, int N, int Hq, int Hkv, int D) {
    CudaImpl *im = cuda_impl(be);
    attn_check_args(N, Hq, Hkv, D);
    if (N == 0) return;
    float scale = (float)(1.0 / sqrt((double)D));
    if (!im->attn_simple &&
        attn_tiled_forward(im, (bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k,
                           (const bf16 *)v, pos, N, Hq, Hkv, D, scale))
        return;
    dim3 grid(cdiv(N, AW), Hq);
    size_t smem = (size_t)AW * D * sizeof(float);
#define ARGS grid, 32 * AW, smem, im->stream
    if (D <= 64)
        attn_fwd_simple_kernel<2><<<ARGS>>>((bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k,
                                            (const bf16 *)v, pos, N, Hq, Hkv, D, scale);
    else if (D <= 128)
        attn_fwd_simple_kernel<4><<<ARGS>>>((bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k,
                                            (const bf16 *)v, pos, N, Hq, Hkv, D, scale);
    else
        attn_fwd_simple_kernel<8><<<ARGS>>>((bf16 *)out, lse, (const bf16 *)q, (const bf16 *)k,
                                            (const bf16 *)v, pos, N, Hq, Hkv, D, scale);
    cudaCheckLaunch();
}

void cuda_attention_backward(SrBackend *be, void *dq, void *dk, void *dv, const void *dout,
                             const void *q, const void *k, const void *v, const void *out,
                             const float *lse, const int32_t *pos, int N, int Hq, int Hkv,
                             int D) {
    CudaImpl *im = cuda_impl(be);
    attn_check_args(N, Hq, Hkv, D);
    SR_ASSERT(lse);
    if (N == 0 || (!dq && !dk && !dv)) return;
    float scale = (float)(1.0 / sqrt((double)D));
    float *dsum = (float *)cuda_scratch(im, (size_t)Hq * N * sizeof(float)); /* [Hq, N] */
    if (!im->attn_simple &&
        attn_tiled_backward(im, (bf16 *)dq, (bf16 *)dk, (bf16 *)dv, dsum, (const bf16 *)dout,
                            (const bf16 *)q, (const bf16 *)k, (const bf16 *)v, (const bf16 *)out,
                            lse, pos, N, Hq, Hkv, D, scale))
        return;
    size_t smem = (size_t)2 * AW * D * sizeof(float);
    dim3 grid1(cdiv(N, AW), Hq);
#undef ARGS
#define ARGS grid1, 32 * AW, smem, im->stream
    if (D <= 64)
        attn_bwd_dq_simple_kernel<2><<<ARGS>>>((bf16 *)dq, dsum, (const bf16 *)dout,
                                               (const bf16 *)q, (const bf16 *)k, (const bf16 *)v,
                                               (const bf16 *)out, lse, pos, N, Hq, Hkv, D, scale);
    else if (D <= 128)
        attn_bwd_dq_simple_kernel<4><<<ARGS>>>((bf16 *)dq, dsum, (const bf16 *)dout,
                                               (const bf16 *)q, (const bf16 *)k, (const bf16 *)v,
                                               (const bf16 *)out, lse, pos, N, Hq, Hkv, D, scale);
    else
        attn_bwd_dq_simple_kernel<8><<<ARGS>>>((bf16 *)dq, dsum, (const bf16 *)dout,
                                               (const bf16 *)q, (const bf16 *)k, (const bf16 *)v,
                                               (const bf16 *)out, lse, pos, N, Hq, Hkv, D, scale);
    cudaCheckLaunch();
    if (!dk && !dv) return;
    dim3 grid2(cdiv(N, AW), Hkv);
#undef ARGS
#define ARGS grid2, 32 * AW, smem, im->stream
    if (D <= 64)
        attn_bwd_dkv_simple_kernel<2><<<ARGS>>>((bf16 *)dk, (bf16 *)dv, dsum, (const bf16 *)dout,
                                                (const bf16 *)q, (const bf16 *)k, (const bf16 *)v,
                                                lse, pos, N, Hq, Hkv, D, scale);
    else if (D <= 128)
        attn_bwd_dkv_simple_kernel<4><<<ARGS>>>((bf16 *)dk, (bf16 *)dv, dsum, (const bf16 *)dout,
                                                (const bf16 *)q, (const bf16 *)k, (const bf16 *)v,
                                                lse, pos, N, Hq, Hkv, D, scale);
    else
        attn_bwd_dkv_simple_kernel<8><<<ARGS>>>((bf16 *)dk, (bf16 *)dv, dsum, (const bf16 *)dout,
                                                (const bf16 *)q, (const bf16 *)k, (const bf16 *)v,
                                                lse, pos, N, Hq, Hkv, D, scale);
    cudaCheckLaunch();
#undef ARGS
}

/* ---- paged (block tables) ------------------------------------------------------------------ */

/* one warp per (new token i, head h): keys are positions 0..pos[i] of sequence seq[i], found
 * through its block table. grid (cdiv(N, AW), Hq), dynamic smem AW*D floats. */
template <int DPL>
__global__ void __launch_bounds__(32 * AW)
    attn_paged_kernel(bf16 *out, const bf16 *q, const bf16 *kc, const bf16 *vc,
                      const int32_t *pos, const int32_t *seq, const int32_t *table,
                      int max_blocks, int block, int N, int Hq, int Hkv, int D, float scale) {
    extern __shared__ float sh[];
    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int i = blockIdx.x * AW + warp, h = blockIdx.y;
    if (i >= N) return; /* warp-uniform; no block barriers below */
    int kvh = h / (Hq / Hkv);
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D;
    if (pos[i] < 0 || seq[i] < 0 || pos[i] / block >= max_blocks) __trap(); /* the engine's */
    float *qrow = sh + warp * D;
    const bf16 *qi = q + (size_t)i * qs + (size_t)h * D;
    for (int d = lane; d < D; d += 32) qrow[d] = bf2f(qi[d]);
    __syncwarp();
    RowsPaged rows = {table + (size_t)seq[i] * max_blocks, block};
    attn_warp_row<DPL, RowsPaged>(qrow, kc + (size_t)kvh * D, vc + (size_t)kvh * D, ks, pos[i],
                                  D, scale, lane, out + (size_t)i * qs + (size_t)h * D, rows);
}

void cuda_attention_paged(SrBackend *be, void *out, const void *q, const void *kcache,
                          const void *vcache, const int32_t *pos, const int32_t *seq,
                          const int32_t *table, int max_blocks, int block, int N, int Hq,
                          int Hkv, int D) {
    CudaImpl *im = cuda_impl(be);
    attn_check_args(N, Hq, Hkv, D);
    SR_ASSERT(block > 0 && max_blocks > 0);
    if (N == 0) return;
    float scale = (float)(1.0 / sqrt((double)D));
    dim3 grid(cdiv(N, AW), Hq);
    size_t smem = (size_t)AW * D * sizeof(float);
#define ARGS grid, 32 * AW, smem, im->stream
#define PAGED_ARGS (bf16 *)out, (const bf16 *)q, (const bf16 *)kcache, (const bf16 *)vcache, pos, \
                   seq, table, max_blocks, block, N, Hq, Hkv, D, scale
    if (D <= 64)
        attn_paged_kernel<2><<<ARGS>>>(PAGED_ARGS);
    else if (D <= 128)
        attn_paged_kernel<4><<<ARGS>>>(PAGED_ARGS);
    else
        attn_paged_kernel<8><<<ARGS>>>(PAGED_ARGS);
#undef PAGED_ARGS
#undef ARGS
    cudaCheckLaunch();
}
