/*
 * CPU ops, attention family: causal grouped-query attention over packed documents
 * (forward and backward), the KV cache store, and attention over a paged cache (any number of
 * new tokens of a sequence against its cache in one pass, the cache rows of a sequence found
 * through a block table).
 *
 * Layout: q, out [N, Hq*D]; k, v [N, Hkv*D]; query head h reads KV head h / (Hq/Hkv).
 * Token i attends to keys j in [start_i, i], start_i = i - pos[i] (its document's first token).
 * Scores s_ij = scale * q_i.k_j with scale = 1/sqrt(D); P = softmax_j(s) in fp32;
 * lse[h, i] = log sum_j exp(s_ij) is saved for the backward.
 *
 * The backward recomputes P_ij = exp(s_ij - lse_i) instead of storing it:
 *   Dsum_i = dout_i . out_i,  dP_ij = dout_i . v_j,  dS_ij = P_ij (dP_ij - Dsum_i)
 *   dq_i += scale sum_j dS_ij k_j       (pass 1: one thread per (head, query))
 *   dk_j += scale sum_i dS_ij q_i,  dv_j += sum_i P_ij dout_i
 *                                        (pass 2: one thread per (KV head, key), summing over
 *                                         the query heads of its group and the queries that
 *                                         see key j, in order)
 * Each output element has one owner, so results are the same for any thread count. Pass 2
 * recomputes the scores (twice the work of a stored-P backward) to stay race-free.
 */
#include "ops_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* dot product with 8 partial sums (vectorisable; a fixed order, so the same bits on every
 * thread count) */
static inline float dot_f32(const float *a, const float *b, int n) {
    float acc[8] = {0};
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int l = 0; l < 8; l++) acc[l] += a[d + l] * b[d + l];
    for (; d < n; d++) acc[d & 7] += a[d] * b[d];
    return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

/* y[0, n) += a * x[0, n) in blocks of 8 (vectorisable without a cost model) */
static inline void axpy_f32(float *restrict y, float a, const float *restrict x, int n) {
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int l = 0; l < 8; l++) y[d + l] += a * x[d + l];
    for (; d < n; d++) y[d] += a * x[d];
}

static inline float attn_scale(int D) {
    return (float)(1.0 / sqrt((double)D));
}

/* checks the packed-document contract and returns the longest window (max pos + 1) */
static int attn_check_pos(const int32_t *pos, int N) {
    int maxwin = 1, prev_start = 0;
    for (int i = 0; i < N; i++) {
        int start = i - pos[i];
        SR_ASSERT(pos[i] >= 0 && start >= 0);
        SR_ASSERT(start >= prev_start); /* documents are consecutive: starts never go back */
        prev_start = start;
        if (pos[i] + 1 > maxwin) maxwin = pos[i] + 1;
    }
    return maxwin;
}

/* softmax-weighted sum over keys [0, L) for one query:
 * out[D] = sum_j softmax(scale q.k_j) v_j; returns the log-sum-exp of the scaled scores.
 * Key j is row j of k and v (rows `stride` floats apart), or with a block table (paged
 * cache) row table[j / block] * block + j % block. The keys are visited in the same order
 * either way, so a paged row gives the bits of the contiguous one. sc is scratch of L floats. */
static float attn_row_paged(float *out, const float *qi, const float *k, const float *v,
                            size_t stride, int L, int D, float scale, float *sc,
                            const int32_t *table, int block) {
    float m = -INFINITY;
    for (int j0 = 0; j0 < L; j0 += block) {
        size_t r0 = table ? (size_t)table[j0 / block] * block : (size_t)j0;
        int nb = L - j0 < block ? L - j0 : block;
        const float *kb = k + r0 * stride;
        for (int j = 0; j < nb; j++) {
            float s = dot_f32(qi, kb + (size_t)j * stride, D) * scale;
            sc[j0 + j] = s;
            if (s > m) m = s;
        }
    }
    float sum = 0.0f;
    for (int j = 0; j < L; j++) {
        float e = expf(sc[j] - m);
        sc[j] = e;
        sum += e;
    }
    for (int d = 0; d < D; d++) out[d] = 0.0f;
    for (int j0 = 0; j0 < L; j0 += block) {
        size_t r0 = table ? (size_t)table[j0 / block] * block : (size_t)j0;
        int nb = L - j0 < block ? L - j0 : block;
        const float *vb = v + r0 * stride;
        for (int j = 0; j < nb; j++) axpy_f32(out, sc[j0 + j], vb + (size_t)j * stride, D);
    }
    float inv = 1.0f / sum;
    for (int d = 0; d < D; d++) out[d] *= inv;
    return m + logf(sum);
}

/* keys [0, L) are rows 0 .. L-1 */
static inline float attn_row(float *out, const float *qi, const float *k, const float *v,
                             size_t stride, int L, int D, float scale, float *sc) {
    return attn_row_paged(out, qi, k, v, stride, L, D, scale, sc, NULL, L);
}

void sr_cpu_attention_forward(SrBackend *be, void *out_, float *lse, const void *q_, const void *k_,
                              const void *v_, const int32_t *pos, int N, int Hq, int Hkv, int D) {
    float *out = out_;
    const float *q = q_, *k = k_, *v = v_;
    SR_ASSERT(Hkv > 0 && Hq % Hkv == 0);
    int group = Hq / Hkv;
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D;
    float scale = attn_scale(D);
    int maxwin = attn_check_pos(pos, N);
    long total = (long)Hq * N;
    double work = 4.0 * total * D * maxwin; /* an upper bound: windows average less */
#pragma omp parallel num_threads(cpu_threads_for(be, work))
    {
        float *sc = malloc((size_t)maxwin * sizeof(float));
        SR_ASSERT(sc);
#pragma omp for schedule(dynamic, 8)
        for (long t = 0; t < total; t++) {
            int h = (int)(t / N), i = (int)(t % N);
            int kvh = h / group, start = i - pos[i];
            float l = attn_row(out + i * qs + (size_t)h * D, q + i * qs + (size_t)h * D,
                               k + start * ks + (size_t)kvh * D, v + start * ks + (size_t)kvh * D,
                               ks, i - start + 1, D, scale, sc);
            if (lse) lse[(size_t)h * N + i] = l;
        }
        free(sc);
    }
}

void sr_cpu_attention_backward(SrBackend *be, void *dq_, void *dk_, void *dv_, const void *dout_,
                               const void *q_, const void *k_, const void *v_, const void *out_,
                               const float *lse, const int32_t *pos, int N, int Hq, int Hkv,
                               int D) {
    float *dq = dq_, *dk = dk_, *dv = dv_;
    const float *dout = dout_, *q = q_, *k = k_, *v = v_, *out = out_;
    SR_ASSERT(lse);
    SR_ASSERT(Hkv > 0 && Hq % Hkv == 0);
    int group = Hq / Hkv;
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D;
    float scale = attn_scale(D);
    int maxwin = attn_check_pos(pos, N);
    int nt = cpu_threads_for(be, 8.0 * Hq * N * D * maxwin);
    float *dsum = malloc(((size_t)Hq * N + 1) * sizeof(float)); /* [Hq, N] */
    SR_ASSERT(dsum);

    /* pass 1: Dsum and dq, one (head, query) per iteration */
    long total = (long)Hq * N;
#pragma omp parallel num_threads(nt)
    {
        float *acc = malloc((size_t)D * sizeof(float) + 1);
        SR_ASSERT(acc);
#pragma omp for schedule(dynamic, 8)
        for (long t = 0; t < total; t++) {
            int h = (int)(t / N), i = (int)(t % N);
            int kvh = h / group, start = i - pos[i];
            const float *qi = q + i * qs + (size_t)h * D, *gi = dout + i * qs + (size_t)h * D;
            float di = dot_f32(gi, out + i * qs + (size_t)h * D, D);
            float l = lse[(size_t)h * N + i];
            dsum[(size_t)h * N + i] = di;
            if (!dq) continue;
            for (int d = 0; d < D; d++) acc[d] = 0.0f;
            for (int j = start; j <= i; j++) {
                const float *kj = k + j * ks + (size_t)kvh * D, *vj = v + j * ks + (size_t)kvh * D;
                float p = expf(dot_f32(qi, kj, D) * scale - l);
                float ds = p * (dot_f32(gi, vj, D) - di);
                axpy_f32(acc, ds, kj, D);
            }
            float *dqi = dq + i * qs + (size_t)h * D;
            for (int d = 0; d < D; d++) dqi[d] += scale * acc[d];
        }
        free(acc);
    }

    /* pass 2: dk and dv, one (KV head, key) per iteration; queries i >= j of the same document */
    if (dk || dv) {
        long total_kv = (long)Hkv * N;
#pragma omp parallel num_threads(nt)
        {
            float *acc = malloc(2 * (size_t)D * sizeof(float) + 1);
            SR_ASSERT(acc);
            float *dk_acc = acc, *dv_acc = acc + D;
#pragma omp for schedule(dynamic, 8)
            for (long t = 0; t < total_kv; t++) {
                int kvh = (int)(t / N), j = (int)(t % N);
                const float *kj = k + j * ks + (size_t)kvh * D, *vj = v + j * ks + (size_t)kvh * D;
                for (int d = 0; d < 2 * D; d++) acc[d] = 0.0f;
                for (int h = kvh * group; h < (kvh + 1) * group; h++) {
                    for (int i = j; i < N && i - pos[i] <= j; i++) {
                        const float *qi = q + i * qs + (size_t)h * D;
                        const float *gi = dout + i * qs + (size_t)h * D;
                        float p = expf(dot_f32(qi, kj, D) * scale - lse[(size_t)h * N + i]);
                        axpy_f32(dv_acc, p, gi, D);
                        if (dk) {
                            float ds = p * (dot_f32(gi, vj, D) - dsum[(size_t)h * N + i]);
                            axpy_f32(dk_acc, ds, qi, D);
                        }
                    }
                }
                if (dk) {
                    float *dkj = dk + j * ks + (size_t)kvh * D;
                    for (int d = 0; d < D; d++) dkj[d] += scale * dk_acc[d];
                }
                if (dv) {
                    float *dvj = dv + j * ks + (size_t)kvh * D;
                    for (int d = 0; d < D; d++) dvj[d] += dv_acc[d];
                }
            }
            free(acc);
        }
    }
    free(dsum);
}

/* ---- KV cache --------------------------------------------------------------------------- */

/* kcache[slot[i], :] = k[i, :], vcache[slot[i], :] = v[i, :]   (rows of KVD floats) */
void sr_cpu_kv_store(SrBackend *be, void *kcache_, void *vcache_, const void *k_, const void *v_,
                     const int32_t *slot, int N, int KVD) {
    float *kc = kcache_, *vc = vcache_;
    const float *k = k_, *v = v_;
#pragma omp parallel for num_threads(cpu_threads_for(be, 2.0 * N * KVD)) schedule(static)
    for (int i = 0; i < N; i++) {
        SR_ASSERT(slot[i] >= 0);
        memcpy(kc + (size_t)slot[i] * KVD, k + (size_t)i * KVD, (size_t)KVD * sizeof(float));
        memcpy(vc + (size_t)slot[i] * KVD, v + (size_t)i * KVD, (size_t)KVD * sizeof(float));
    }
}

/* out[i, h*D:] = attention of q[i, h*D:] over positions 0..pos[i] of sequence seq[i], whose
 * position p is cache row table[seq[i] * max_blocks + p / block] * block + p % block (the
 * engine's paged pool): any number of new tokens of a sequence against its cache in one pass.
 * Row by row it is attention_forward's attn_row over the same keys in the same order, so a
 * fresh prompt gets attention_forward's bits, and Δ tokens at once those of Δ one by one. */
void sr_cpu_attention_paged(SrBackend *be, void *out_, const void *q_, const void *kcache_,
                            const void *vcache_, const int32_t *pos, const int32_t *seq,
                            const int32_t *table, int max_blocks, int block, int N, int Hq,
                            int Hkv, int D) {
    float *out = out_;
    const float *q = q_, *kc = kcache_, *vc = vcache_;
    SR_ASSERT(Hkv > 0 && Hq % Hkv == 0 && block > 0 && max_blocks > 0);
    int group = Hq / Hkv, maxwin = 1;
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D;
    float scale = attn_scale(D);
    for (int i = 0; i < N; i++) {
        SR_ASSERT(pos[i] >= 0 && seq[i] >= 0 && pos[i] / block < max_blocks);
        const int32_t *tab = table + (size_t)seq[i] * max_blocks;
        for (int b = 0; b <= pos[i] / block; b++) SR_ASSERT(tab[b] >= 0);
        if (pos[i] + 1 > maxwin) maxwin = pos[i] + 1;
    }
    long total = (long)N * Hq;
#pragma omp parallel num_threads(cpu_threads_for(be, 4.0 * total * D * maxwin))
    {
        float *sc = malloc((size_t)maxwin * sizeof(float));
        SR_ASSERT(sc);
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < total; t++) {
            int i = (int)(t / Hq), h = (int)(t % Hq), kvh = h / group;
            attn_row_paged(out + i * qs + (size_t)h * D, q + i * qs + (size_t)h * D,
                           kc + (size_t)kvh * D, vc + (size_t)kvh * D, ks, pos[i] + 1, D, scale,
                           sc, table + (size_t)seq[i] * max_blocks, block);
        }
        free(sc);
    }
}
