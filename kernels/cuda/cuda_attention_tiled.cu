/*
 * Tiled attention on the tensor cores (WMMA bf16 16x16x16, fp32 accumulate), flash-style:
 * scores and probabilities live only in on-chip tiles, never in device memory. Head dims 64 and
 * 128 (others go to the simple kernels). Packed documents and causality are a per-element mask
 * (key j is visible to query i iff i - pos[i] <= j <= i); a block's key range is
 * [start of its first query's document, its last query], which covers every visible key.
 *
 * Tiles: 64 queries x 64 keys per step, 4 warps; warp w owns 16 rows (queries in the forward
 * and dq kernels, keys in the dk/dv kernel). The WMMA fragment layout is opaque, so the
 * elementwise steps (mask, online softmax, dS) go through shared memory: the warp stores its
 * 16 x 64 score tile, two lanes per row read it (row max / sum via one shuffle), and write the
 * bf16 P (or dS) tile that the next product reads. The output accumulator of the forward stays
 * in shared memory too, so each row can be rescaled by its lane pair when the max moves.
 *
 *   forward:  S = Q K^T; online softmax (m, l per row, in registers); O += P V;
 *             out = O / l, lse = m + log l.  (P is rounded to bf16 for the product; l sums the
 *             fp32 P, so lse is as exact as the CPU's and the backward's P = exp(S - lse) is
 *             the true softmax.)
 *   backward: Dsum = rowsum(dout * out) (a small kernel), then two kernels, so that every
 *             output has one writer (no atomics; deterministic):
 *     dq:    per query tile: S = Q K^T, dP = dO V^T, dS = P (dP - Dsum); dq += scale dS K
 *     dk/dv: per key tile, over the query heads of its KV head and the query tiles that see
 *            it: S^T = K Q^T, dP^T = V dO^T; dv += P^T dO;  dk += scale dS^T Q
 *   (the dk/dv kernel recomputes what dq computed: 7 products instead of 5, for determinism).
 *
 * Shared memory per block (D = 128): forward 95 KB, dq 79 KB, dk/dv 121 KB.
 * Kept simple on purpose (no cp.async pipelining, no register-resident softmax); see the
 * simple kernels in cuda_attention.cu for the reference the tests compare against.
 */
#include <mma.h>

#include "attention_cuda.cuh"

using namespace nvcuda;

#define TQ 64          /* queries per tile */
#define TK 64          /* keys per tile */
#define TT 128         /* threads per block (4 warps x 16 rows) */
#define SLD (TK + 4)   /* fp32 score tile leading dim (TQ == TK, so it serves S^T too) */
#define PLD (TK + 8)   /* bf16 P / dS tile leading dim */
#define FULL 0xffffffffu

typedef wmma::fragment<wmma::matrix_a, 16, 16, 16, bf16, wmma::row_major> FragA;
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::row_major> FragB;
/* B given as the rows of its transpose (K rows for Q K^T) */
typedef wmma::fragment<wmma::matrix_b, 16, 16, 16, bf16, wmma::col_major> FragBT;
typedef wmma::fragment<wmma::accumulator, 16, 16, 16, float> FragC;

static constexpr size_t cmax(size_t a, size_t b) { return a > b ? a : b; }

/* shared memory layouts (byte offsets; every region a multiple of 128 bytes) */
template <int D>
struct FwdLayout {
    static constexpr int LD = D + 8, OLD = D + 4;
    static constexpr size_t U = cmax((size_t)TQ * LD * 2, (size_t)TQ * SLD * 4); /* Q, then S */
    static constexpr size_t K = U, V = K + (size_t)TK * LD * 2, P = V + (size_t)TK * LD * 2;
    static constexpr size_t O = P + (size_t)TQ * PLD * 2, BYTES = O + (size_t)TQ * OLD * 4;
};

template <int D>
struct DqLayout {
    static constexpr int LD = D + 8, OLD = D + 4;
    /* Q, dO at the start, then S, dP over them; at the end the dq staging tile */
    static constexpr size_t U = cmax((size_t)2 * TQ * LD * 2, (size_t)2 * TQ * SLD * 4);
    static constexpr size_t K = U, V = K + (size_t)TK * LD * 2, DS = V + (size_t)TK * LD * 2;
    static constexpr size_t BYTES = DS + (size_t)TQ * PLD * 2;
};

template <int D>
struct DkvLayout {
    static constexpr int LD = D + 8, OLD = D + 4;
    static constexpr size_t K = 0, V = (size_t)TK * LD * 2, Q = 2 * V, DO = Q + (size_t)TQ * LD * 2;
    static constexpr size_t ST = DO + (size_t)TQ * LD * 2, DPT = ST + (size_t)TK * SLD * 4;
    static constexpr size_t PT = DPT + (size_t)TK * SLD * 4, DST = PT + (size_t)TK * PLD * 2;
    static constexpr size_t ARR = DST + (size_t)TK * PLD * 2, BYTES = ARR + 3 * TQ * 4;
};

/* dst [64][D+8] <- rows r < nvalid of src (row r at src + r*stride), zeros for the others */
template <int D>
__device__ __forceinline__ void load_rows(bf16 *dst, const bf16 *src, size_t stride, int nvalid) {
    constexpr int CH = D / 8; /* 16-byte chunks per row */
    for (int t = threadIdx.x; t < 64 * CH; t += TT) {
        int r = t / CH, c = t % CH;
        uint4 val = make_uint4(0u, 0u, 0u, 0u);
        if (r < nvalid) val = *(const uint4 *)(src + (size_t)r * stride + c * 8);
        *(uint4 *)(dst + r * (D + 8) + c * 8) = val;
    }
}

/* ---- forward --------------------------------------------------------------------------------- */

/* grid (cdiv(N, TQ), Hq), block TT, dynamic smem FwdLayout<D>::BYTES */
template <int D>
__global__ void __launch_bounds__(TT)
    attn_fwd_tiled_kernel(bf16 *out, float *lse, const bf16 *q, const bf16 *k, const bf16 *v,
                          const int32_t *pos, int N, int Hq, int Hkv, float scale) {
    typedef FwdLayout<D> L;
    constexpr int LD = L::LD, OLD = L::OLD, KD = D / 16;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = (bf16 *)smem;
    float *Ss = (float *)smem; /* over Qs once the Q fragments are in registers */
    bf16 *Ks = (bf16 *)(smem + L::K), *Vs = (bf16 *)(smem + L::V), *Ps = (bf16 *)(smem + L::P);
    float *Os = (float *)(smem + L::O);

    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int i0 = blockIdx.x * TQ, h = blockIdx.y, kvh = h / (Hq / Hkv);
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D;
    int nq = min(TQ, N - i0);
    load_rows<D>(Qs, q + (size_t)i0 * qs + (size_t)h * D, qs, nq);
    for (int t = threadIdx.x; t < TQ * OLD; t += TT) Os[t] = 0.0f;

    /* the row this lane pair owns */
    int r = warp * 16 + (lane >> 1), half = lane & 1;
    int i = i0 + r;
    bool row_ok = i < N;
    int st = row_ok ? i - pos[i] : 0;
    if (st < 0 || pos[i0] < 0 || pos[i0] > i0) __trap(); /* the model validates positions */
    float m = -INFINITY, l = 0.0f;
    int kstart = i0 - pos[i0], ilast = i0 + nq - 1;
    __syncthreads();
    FragA qf[KD];
#pragma unroll
    for (int kd = 0; kd < KD; kd++) wmma::load_matrix_sync(qf[kd], Qs + warp * 16 * LD + kd * 16, LD);

    for (int j0 = kstart; j0 <= ilast; j0 += TK) {
        __syncthreads(); /* all warps are done with Qs (first step) or the previous K, V */
        int nk = min(TK, ilast - j0 + 1);
        load_rows<D>(Ks, k + (size_t)j0 * ks + (size_t)kvh * D, ks, nk);
        load_rows<D>(Vs, v + (size_t)j0 * ks + (size_t)kvh * D, ks, nk);
        __syncthreads();
        /* S (16 rows x 64 keys of this warp) = Q K^T */
#pragma unroll
        for (int nj = 0; nj < TK / 16; nj++) {
            FragC acc;
            wmma::fill_fragment(acc, 0.0f);
#pragma unroll
            for (int kd = 0; kd < KD; kd++) {
                FragBT kb;
                wmma::load_matrix_sync(kb, Ks + nj * 16 * LD + kd * 16, LD);
                wmma::mma_sync(acc, qf[kd], kb, acc);
            }
            wmma::store_matrix_sync(Ss + warp * 16 * SLD + nj * 16, acc, SLD, wmma::mem_row_major);
        }
        __syncwarp();
        /* online softmax of row r: this lane takes columns half, half+2, ... */
        float sv[TK / 2];
        float mx = -INFINITY;
#pragma unroll
        for (int cc = 0; cc < TK / 2; cc++) {
            int c = 2 * cc + half, j = j0 + c;
            bool valid = row_ok && j >= st && j <= i;
            sv[cc] = valid ? Ss[r * SLD + c] * scale : -INFINITY;
            mx = fmaxf(mx, sv[cc]);
        }
        mx = fmaxf(mx, __shfl_xor_sync(FULL, mx, 1));
        float mnew = fmaxf(m, mx), corr = 1.0f, psum = 0.0f;
        if (mnew == -INFINITY) { /* no visible key yet for this row */
#pragma unroll
            for (int cc = 0; cc < TK / 2; cc++) Ps[r * PLD + 2 * cc + half] = f2bf(0.0f);
        } else {
            corr = expf(m - mnew); /* 0 on the row's first visible keys */
#pragma unroll
            for (int cc = 0; cc < TK / 2; cc++) {
                float p = expf(sv[cc] - mnew);
                Ps[r * PLD + 2 * cc + half] = f2bf(p);
                psum += p;
            }
        }
        psum += __shfl_xor_sync(FULL, psum, 1);
        l = l * corr + psum;
        m = mnew;
        if (corr != 1.0f)
            for (int d = half; d < D; d += 2) Os[r * OLD + d] *= corr;
        __syncwarp();
        /* O (16 x D) += P (16 x 64) V (64 x D) */
#pragma unroll
        for (int nd = 0; nd < KD; nd++) {
            FragC acc;
            wmma::load_matrix_sync(acc, Os + warp * 16 * OLD + nd * 16, OLD, wmma::mem_row_major);
#pragma unroll
            for (int kj = 0; kj < TK / 16; kj++) {
                FragA pa;
                FragB vb;
                wmma::load_matrix_sync(pa, Ps + warp * 16 * PLD + kj * 16, PLD);
                wmma::load_matrix_sync(vb, Vs + kj * 16 * LD + nd * 16, LD);
                wmma::mma_sync(acc, pa, vb, acc);
            }
            wmma::store_matrix_sync(Os + warp * 16 * OLD + nd * 16, acc, OLD, wmma::mem_row_major);
        }
        __syncwarp();
    }
    if (row_ok) {
        float inv = 1.0f / l;
        bf16 *orow = out + (size_t)i * qs + (size_t)h * D;
        for (int d = half; d < D; d += 2) orow[d] = f2bf(Os[r * OLD + d] * inv);
        if (lse && half == 0) lse[(size_t)h * N + i] = m + logf(l);
    }
}

/* ---- backward ---------------------------------------------------------------------------------- */

/* dsum[h, i] = dout_i . out_i over head h; one warp per (i, h). grid (cdiv(N, 4), Hq), block 128 */
__global__ void attn_dsum_kernel(float *dsum, const bf16 *dout, const bf16 *out, int N, int Hq,
                                 int D) {
    int i = blockIdx.x * 4 + (threadIdx.x >> 5), h = blockIdx.y, lane = threadIdx.x & 31;
    if (i >= N) return;
    size_t off = (size_t)i * Hq * D + (size_t)h * D;
    float s = 0.0f;
    for (int d = lane; d < D; d += 32) s += bf2f(dout[off + d]) * bf2f(out[off + d]);
    s = warp_sum(s);
    if (lane == 0) dsum[(size_t)h * N + i] = s;
}

/* dq += scale * dS K, one block per (query tile, head). grid (cdiv(N, TQ), Hq) */
template <int D>
__global__ void __launch_bounds__(TT)
    attn_bwd_dq_tiled_kernel(bf16 *dq, const float *dsum, const bf16 *dout, const bf16 *q,
                             const bf16 *k, const bf16 *v, const float *lse, const int32_t *pos,
                             int N, int Hq, int Hkv, float scale) {
    typedef DqLayout<D> L;
    constexpr int LD = L::LD, OLD = L::OLD, KD = D / 16;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Qs = (bf16 *)smem, *dOs = Qs + TQ * LD;
    float *Ss = (float *)smem, *dPs = Ss + TQ * SLD; /* over Qs, dOs after the fragment loads */
    float *stage = (float *)smem;                    /* [TQ][OLD], at the very end */
    bf16 *Ks = (bf16 *)(smem + L::K), *Vs = (bf16 *)(smem + L::V), *dSs = (bf16 *)(smem + L::DS);

    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int i0 = blockIdx.x * TQ, h = blockIdx.y, kvh = h / (Hq / Hkv);
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D;
    int nq = min(TQ, N - i0);
    load_rows<D>(Qs, q + (size_t)i0 * qs + (size_t)h * D, qs, nq);
    load_rows<D>(dOs, dout + (size_t)i0 * qs + (size_t)h * D, qs, nq);
    int r = warp * 16 + (lane >> 1), half = lane & 1;
    int i = i0 + r;
    bool row_ok = i < N;
    int st = row_ok ? i - pos[i] : 0;
    float lse_r = row_ok ? lse[(size_t)h * N + i] : 0.0f;
    float dsum_r = row_ok ? dsum[(size_t)h * N + i] : 0.0f;
    if (st < 0 || pos[i0] < 0 || pos[i0] > i0) __trap();
    int kstart = i0 - pos[i0], ilast = i0 + nq - 1;
    __syncthreads();
    FragA qf[KD], gf[KD];
    FragC dqa[KD];
#pragma unroll
    for (int kd = 0; kd < KD; kd++) {
        wmma::load_matrix_sync(qf[kd], Qs + warp * 16 * LD + kd * 16, LD);
        wmma::load_matrix_sync(gf[kd], dOs + warp * 16 * LD + kd * 16, LD);
        wmma::fill_fragment(dqa[kd], 0.0f);
    }

    for (int j0 = kstart; j0 <= ilast; j0 += TK) {
        __syncthreads();
        int nk = min(TK, ilast - j0 + 1);
        load_rows<D>(Ks, k + (size_t)j0 * ks + (size_t)kvh * D, ks, nk);
        load_rows<D>(Vs, v + (size_t)j0 * ks + (size_t)kvh * D, ks, nk);
        __syncthreads();
#pragma unroll
        for (int nj = 0; nj < TK / 16; nj++) {
            FragC sacc, pacc;
            wmma::fill_fragment(sacc, 0.0f);
            wmma::fill_fragment(pacc, 0.0f);
#pragma unroll
            for (int kd = 0; kd < KD; kd++) {
                FragBT kb, vb;
                wmma::load_matrix_sync(kb, Ks + nj * 16 * LD + kd * 16, LD);
                wmma::mma_sync(sacc, qf[kd], kb, sacc);
                wmma::load_matrix_sync(vb, Vs + nj * 16 * LD + kd * 16, LD);
                wmma::mma_sync(pacc, gf[kd], vb, pacc);
            }
            wmma::store_matrix_sync(Ss + warp * 16 * SLD + nj * 16, sacc, SLD, wmma::mem_row_major);
            wmma::store_matrix_sync(dPs + warp * 16 * SLD + nj * 16, pacc, SLD, wmma::mem_row_major);
        }
        __syncwarp();
#pragma unroll 4
        for (int cc = 0; cc < TK / 2; cc++) {
            int c = 2 * cc + half, j = j0 + c;
            bool valid = row_ok && j >= st && j <= i;
            float ds = 0.0f;
            if (valid) {
                float p = expf(Ss[r * SLD + c] * scale - lse_r);
                ds = p * (dPs[r * SLD + c] - dsum_r);
            }
            dSs[r * PLD + c] = f2bf(ds);
        }
        __syncwarp();
#pragma unroll
        for (int nd = 0; nd < KD; nd++) {
#pragma unroll
            for (int kj = 0; kj < TK / 16; kj++) {
                FragA da;
                FragB kb;
                wmma::load_matrix_sync(da, dSs + warp * 16 * PLD + kj * 16, PLD);
                wmma::load_matrix_sync(kb, Ks + kj * 16 * LD + nd * 16, LD);
                wmma::mma_sync(dqa[nd], da, kb, dqa[nd]);
            }
        }
    }
    __syncthreads(); /* the staging tile overlaps every warp's S / dP rows */
#pragma unroll
    for (int nd = 0; nd < KD; nd++)
        wmma::store_matrix_sync(stage + warp * 16 * OLD + nd * 16, dqa[nd], OLD, wmma::mem_row_major);
    __syncwarp();
    if (row_ok) {
        bf16 *g = dq + (size_t)i * qs + (size_t)h * D;
        for (int d = half; d < D; d += 2) g[d] = f2bf(bf2f(g[d]) + scale * stage[r * OLD + d]);
    }
}

/* dk, dv for one key tile of one KV head. grid (cdiv(N, TK), Hkv) */
template <int D>
__global__ void __launch_bounds__(TT)
    attn_bwd_dkv_tiled_kernel(bf16 *dk, bf16 *dv, const float *dsum, const bf16 *dout,
                              const bf16 *q, const bf16 *k, const bf16 *v, const float *lse,
                              const int32_t *pos, int N, int Hq, int Hkv, float scale) {
    typedef DkvLayout<D> L;
    constexpr int LD = L::LD, OLD = L::OLD, KD = D / 16;
    extern __shared__ __align__(128) unsigned char smem[];
    bf16 *Ks = (bf16 *)(smem + L::K), *Vs = (bf16 *)(smem + L::V);
    bf16 *Qs = (bf16 *)(smem + L::Q), *dOs = (bf16 *)(smem + L::DO);
    float *STs = (float *)(smem + L::ST), *dPTs = (float *)(smem + L::DPT);
    bf16 *PTs = (bf16 *)(smem + L::PT), *dSTs = (bf16 *)(smem + L::DST);
    float *q_lse = (float *)(smem + L::ARR), *q_dsum = q_lse + TQ;
    int *q_start = (int *)(q_dsum + TQ);
    float *stage = (float *)(smem + L::Q); /* [TK][OLD] over Qs, dOs at the end */

    int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    int j0 = blockIdx.x * TK, kvh = blockIdx.y, group = Hq / Hkv;
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D;
    int nk = min(TK, N - j0), jlast = j0 + nk - 1;
    load_rows<D>(Ks, k + (size_t)j0 * ks + (size_t)kvh * D, ks, nk);
    load_rows<D>(Vs, v + (size_t)j0 * ks + (size_t)kvh * D, ks, nk);
    int r = warp * 16 + (lane >> 1), half = lane & 1; /* this lane pair's key row */
    int j = j0 + r;
    bool key_ok = j < N;
    FragC dka[KD], dva[KD];
#pragma unroll
    for (int kd = 0; kd < KD; kd++) {
        wmma::fill_fragment(dka[kd], 0.0f);
        wmma::fill_fragment(dva[kd], 0.0f);
    }

    for (int h = kvh * group; h < (kvh + 1) * group; h++) {
        /* queries that can see this tile: i >= j0, until a document starts after jlast */
        for (int i0 = j0; i0 < N && i0 - pos[i0] <= jlast; i0 += TQ) {
            __syncthreads(); /* previous users of Qs, dOs and the row arrays are done */
            int nq = min(TQ, N - i0);
            load_rows<D>(Qs, q + (size_t)i0 * qs + (size_t)h * D, qs, nq);
            load_rows<D>(dOs, dout + (size_t)i0 * qs + (size_t)h * D, qs, nq);
            for (int t = threadIdx.x; t < TQ; t += TT) {
                int i = i0 + t;
                bool ok = i < N;
                q_lse[t] = ok ? lse[(size_t)h * N + i] : 0.0f;
                q_dsum[t] = ok ? dsum[(size_t)h * N + i] : 0.0f;
                q_start[t] = ok ? i - pos[i] : 0x7fffffff;
            }
            __syncthreads();
            /* S^T (this warp's 16 keys x 64 queries) = K Q^T, dP^T = V dO^T */
#pragma unroll
            for (int ni = 0; ni < TQ / 16; ni++) {
                FragC sacc, pacc;
                wmma::fill_fragment(sacc, 0.0f);
                wmma::fill_fragment(pacc, 0.0f);
#pragma unroll
                for (int kd = 0; kd < KD; kd++) {
                    FragA ka, va;
                    FragBT qb, gb;
                    wmma::load_matrix_sync(ka, Ks + warp * 16 * LD + kd * 16, LD);
                    wmma::load_matrix_sync(qb, Qs + ni * 16 * LD + kd * 16, LD);
                    wmma::mma_sync(sacc, ka, qb, sacc);
                    wmma::load_matrix_sync(va, Vs + warp * 16 * LD + kd * 16, LD);
                    wmma::load_matrix_sync(gb, dOs + ni * 16 * LD + kd * 16, LD);
                    wmma::mma_sync(pacc, va, gb, pacc);
                }
                wmma::store_matrix_sync(STs + warp * 16 * SLD + ni * 16, sacc, SLD,
                                        wmma::mem_row_major);
                wmma::store_matrix_sync(dPTs + warp * 16 * SLD + ni * 16, pacc, SLD,
                                        wmma::mem_row_major);
            }
            __syncwarp();
#pragma unroll 4
            for (int cc = 0; cc < TQ / 2; cc++) {
                int c = 2 * cc + half, i = i0 + c;
                bool valid = key_ok && i < N && j <= i && q_start[c] <= j;
                float p = 0.0f, ds = 0.0f;
                if (valid) {
                    p = expf(STs[r * SLD + c] * scale - q_lse[c]);
                    ds = p * (dPTs[r * SLD + c] - q_dsum[c]);
                }
                PTs[r * PLD + c] = f2bf(p);
                dSTs[r * PLD + c] = f2bf(ds);
            }
            __syncwarp();
            /* dV (16 x D) += P^T (16 x 64) dO (64 x D);  dK += dS^T Q */
#pragma unroll
            for (int nd = 0; nd < KD; nd++) {
#pragma unroll
                for (int ki = 0; ki < TQ / 16; ki++) {
                    FragA pa, da;
                    FragB gb, qb;
                    wmma::load_matrix_sync(pa, PTs + warp * 16 * PLD + ki * 16, PLD);
                    wmma::load_matrix_sync(gb, dOs + ki * 16 * LD + nd * 16, LD);
                    wmma::mma_sync(dva[nd], pa, gb, dva[nd]);
                    wmma::load_matrix_sync(da, dSTs + warp * 16 * PLD + ki * 16, PLD);
                    wmma::load_matrix_sync(qb, Qs + ki * 16 * LD + nd * 16, LD);
                    wmma::mma_sync(dka[nd], da, qb, dka[nd]);
                }
            }
        }
    }
    __syncthreads(); /* the staging tile overlaps Qs / dOs, read by every warp */
    size_t koff = (size_t)j * ks + (size_t)kvh * D;
    if (dk) {
#pragma unroll
        for (int nd = 0; nd < KD; nd++)
            wmma::store_matrix_sync(stage + warp * 16 * OLD + nd * 16, dka[nd], OLD,
                                    wmma::mem_row_major);
        __syncwarp();
        if (key_ok) {
            bf16 *gk = dk + koff;
            for (int d = half; d < D; d += 2) gk[d] = f2bf(bf2f(gk[d]) + scale * stage[r * OLD + d]);
        }
        __syncwarp();
    }
    if (dv) {
#pragma unroll
        for (int nd = 0; nd < KD; nd++)
            wmma::store_matrix_sync(stage + warp * 16 * OLD + nd * 16, dva[nd], OLD,
                                    wmma::mem_row_major);
        __syncwarp();
        if (key_ok) {
            bf16 *gv = dv + koff;
            for (int d = half; d < D; d += 2) gv[d] = f2bf(bf2f(gv[d]) + stage[r * OLD + d]);
        }
    }
}

/* ---- host side ------------------------------------------------------------------------------ */

static bool aligned16(const void *p) { return ((uintptr_t)p & 15u) == 0; }

template <typename K>
static void set_smem(K kernel, size_t bytes) {
    cudaCheck(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes));
}

template <int D>
static void fwd_launch(CudaImpl *im, bf16 *out, float *lse, const bf16 *q, const bf16 *k,
                       const bf16 *v, const int32_t *pos, int N, int Hq, int Hkv, float scale) {
    size_t smem = FwdLayout<D>::BYTES;
    set_smem(attn_fwd_tiled_kernel<D>, smem);
    dim3 grid(cdiv(N, TQ), Hq);
    attn_fwd_tiled_kernel<D><<<grid, TT, smem, im->stream>>>(out, lse, q, k, v, pos, N, Hq, Hkv,
                                                             scale);
    cudaCheckLaunch();
}

bool attn_tiled_forward(CudaImpl *im, bf16 *out, float *lse, const bf16 *q, const bf16 *k,
                        const bf16 *v, const int32_t *pos, int N, int Hq, int Hkv, int D,
                        float scale) {
    if ((D != 64 && D != 128) || !aligned16(q) || !aligned16(k) || !aligned16(v)) return false;
    if (D == 64) fwd_launch<64>(im, out, lse, q, k, v, pos, N, Hq, Hkv, scale);
    else fwd_launch<128>(im, out, lse, q, k, v, pos, N, Hq, Hkv, scale);
    return true;
}

template <int D>
static void bwd_launch(CudaImpl *im, bf16 *dq, bf16 *dk, bf16 *dv, const float *dsum,
                       const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                       const float *lse, const int32_t *pos, int N, int Hq, int Hkv, float scale) {
    if (dq) {
        size_t smem = DqLayout<D>::BYTES;
        set_smem(attn_bwd_dq_tiled_kernel<D>, smem);
        dim3 grid(cdiv(N, TQ), Hq);
        attn_bwd_dq_tiled_kernel<D><<<grid, TT, smem, im->stream>>>(dq, dsum, dout, q, k, v, lse,
                                                                    pos, N, Hq, Hkv, scale);
        cudaCheckLaunch();
    }
    if (dk || dv) {
        size_t smem = DkvLayout<D>::BYTES;
        set_smem(attn_bwd_dkv_tiled_kernel<D>, smem);
        dim3 grid(cdiv(N, TK), Hkv);
        attn_bwd_dkv_tiled_kernel<D><<<grid, TT, smem, im->stream>>>(dk, dv, dsum, dout, q, k, v,
                                                                     lse, pos, N, Hq, Hkv, scale);
        cudaCheckLaunch();
    }
}

bool attn_tiled_backward(CudaImpl *im, bf16 *dq, bf16 *dk, bf16 *dv, float *dsum,
                         const bf16 *dout, const bf16 *q, const bf16 *k, const bf16 *v,
                         const bf16 *out, const float *lse, const int32_t *pos, int N, int Hq,
                         int Hkv, int D, float scale) {
    if ((D != 64 && D != 128) || !aligned16(q) || !aligned16(k) || !aligned16(v) ||
        !aligned16(dout))
        return false;
    attn_dsum_kernel<<<dim3(cdiv(N, 4), Hq), 128, 0, im->stream>>>(dsum, dout, out, N, Hq, D);
    cudaCheckLaunch();
    if (D == 64) bwd_launch<64>(im, dq, dk, dv, dsum, dout, q, k, v, lse, pos, N, Hq, Hkv, scale);
    else bwd_launch<128>(im, dq, dk, dv, dsum, dout, q, k, v, lse, pos, N, Hq, Hkv, scale);
    return true;
}
