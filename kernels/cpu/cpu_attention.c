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
 * How a row is computed (the forward, the paged attention and the backward share it, so the
 * three agree bit for bit): the scores of a query against a run of keys are computed many keys
 * at a time from the keys transposed ([D][keys], the forward transposes K once per call, the
 * paged path a tile of cache rows at a time), each score summed over even d and odd d in order;
 * exp is cpu_exp_v4 (ops_cpu.h) over the row; the softmax sum and the output
 * (sum_j e_j v_j, keys in order) are the same loops everywhere.
 *
 * The backward recomputes P_ij = exp(s_ij - lse_i) instead of storing it:
 *   Dsum_i = dout_i . out_i,  dP_ij = dout_i . v_j,  dS_ij = P_ij (dP_ij - Dsum_i)
 *   dq_i += scale sum_j dS_ij k_j,  dk_j += scale sum_i dS_ij q_i,  dv_j += sum_i P_ij dout_i
 * in one pass per (KV head, segment), a segment being a run of rows that starts at a row with
 * pos 0 (no later row sees a key before it): that task owns dq of its group's query heads on
 * its rows and dk, dv of its keys, so each output has one owner and the results are the same
 * for any thread count, and every score is computed once. (Parallelism: Hkv x segments tasks;
 * one long document runs on at most Hkv threads.)
 */
#include "ops_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define ATT_KB 16 /* keys per score block */

/* The score loop and exp are built twice on x86-64 with gcc: for SSE (any x86-64) and for
 * AVX2 (without FMA), att_avx2() choosing at run time. Both do the same operations lane by
 * lane with no fused multiply-add, so they give the same bits (checked by building with
 * -DATT_NO_AVX2 and comparing). Eight-lane vectors stay inside the AVX2 functions: gcc lowers
 * them badly for SSE. */
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__) && !defined(ATT_NO_AVX2)
#define ATT_AVX2 1
#define ATT_TARGET_AVX2 __attribute__((target("avx2")))
static inline int att_avx2(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2");
}
#else
#define ATT_AVX2 0
#endif


static void exp_array_v4(float *y, const float *x, int n) {
    int j = 0;
    cpu_v4f v;
    for (; j + 4 <= n; j += 4) {
        memcpy(&v, x + j, sizeof v);
        v = cpu_exp_v4(v);
        memcpy(y + j, &v, sizeof v);
    }
    if (j < n) { /* the last 1-3 through the same lanes */
        v = (cpu_v4f){0};
        memcpy(&v, x + j, (size_t)(n - j) * sizeof(float));
        v = cpu_exp_v4(v);
        memcpy(y + j, &v, (size_t)(n - j) * sizeof(float));
    }
}

#if ATT_AVX2
ATT_TARGET_AVX2 static void exp_array_v8(float *y, const float *x, int n) {
    int j = 0;
    cpu_v8f v;
    for (; j + 8 <= n; j += 8) {
        memcpy(&v, x + j, sizeof v);
        cpu_exp_v8(&v, &v);
        memcpy(y + j, &v, sizeof v);
    }
    if (j < n) {
        v = (cpu_v8f){0};
        memcpy(&v, x + j, (size_t)(n - j) * sizeof(float));
        cpu_exp_v8(&v, &v);
        memcpy(y + j, &v, (size_t)(n - j) * sizeof(float));
    }
}
#endif

void sr_cpu_exp_array(float *y, const float *x, int n) {
#if ATT_AVX2
    if (att_avx2()) {
        exp_array_v8(y, x, n);
        return;
    }
#endif
    exp_array_v4(y, x, n);
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

static inline cpu_v4f v4_load(const float *p) {
    cpu_v4f v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void v4_store(float *p, cpu_v4f v) { memcpy(p, &v, sizeof v); }

/* an unaligned load of eight floats (the AVX2 functions) */
typedef float att_v8u __attribute__((vector_size(32), aligned(4), may_alias));
#define V8_AT(p) (*(const att_v8u *)(p)) /* an unaligned load */

/* s[j] = (scale * qk_j - sub) (* mul[j] when mul is given), qk_j = (sum over even d in order
 * of q[d] kt[d * ld + j]) + (the same over odd d)
 * for j in [0, L): a query against L keys stored transposed (row d of kt holds component d of
 * consecutive keys, ld apart), each operation rounded on its own (no fused multiply-add), so
 * the bits are those of the separate loops. Keys go ATT_KB at a time in four 4-lane
 * registers; the last block reads past L (the caller pads every row of kt to a multiple of
 * ATT_KB readable floats, and mul likewise) and stores only its first L - j lanes. */
static void attn_scores_v4(float *restrict s, const float *restrict q, const float *restrict kt,
                           size_t ld, int L, int D, float scale, float sub, const float *mul) {
    for (int j = 0; j < L; j += ATT_KB) {
        /* even d into a, odd d into b: eight chains of adds in flight instead of four */
        cpu_v4f a0 = {0}, a1 = {0}, a2 = {0}, a3 = {0}, b0 = {0}, b1 = {0}, b2 = {0}, b3 = {0};
        const float *kd = kt + j;
        int d = 0;
        for (; d + 2 <= D; d += 2, kd += 2 * ld) {
            cpu_v4f qd = {q[d], q[d], q[d], q[d]}, qe = {q[d + 1], q[d + 1], q[d + 1], q[d + 1]};
            a0 += qd * v4_load(kd);
            a1 += qd * v4_load(kd + 4);
            a2 += qd * v4_load(kd + 8);
            a3 += qd * v4_load(kd + 12);
            b0 += qe * v4_load(kd + ld);
            b1 += qe * v4_load(kd + ld + 4);
            b2 += qe * v4_load(kd + ld + 8);
            b3 += qe * v4_load(kd + ld + 12);
        }
        if (d < D) {
            cpu_v4f qd = {q[d], q[d], q[d], q[d]};
            a0 += qd * v4_load(kd);
            a1 += qd * v4_load(kd + 4);
            a2 += qd * v4_load(kd + 8);
            a3 += qd * v4_load(kd + 12);
        }
        a0 = (a0 + b0) * scale - sub;
        a1 = (a1 + b1) * scale - sub;
        a2 = (a2 + b2) * scale - sub;
        a3 = (a3 + b3) * scale - sub;
        if (mul) {
            a0 *= v4_load(mul + j);
            a1 *= v4_load(mul + j + 4);
            a2 *= v4_load(mul + j + 8);
            a3 *= v4_load(mul + j + 12);
        }
        float r[ATT_KB];
        v4_store(r, a0);
        v4_store(r + 4, a1);
        v4_store(r + 8, a2);
        v4_store(r + 12, a3);
        int n = L - j < ATT_KB ? L - j : ATT_KB;
        memcpy(s + j, r, (size_t)n * sizeof(float));
    }
}

#if ATT_AVX2
/* attn_scores_v4 on eight lanes: the same operations for every key */
ATT_TARGET_AVX2 static void attn_scores_v8(float *restrict s, const float *restrict q,
                                           const float *restrict kt, size_t ld, int L, int D,
                                           float scale, float sub, const float *mul) {
    for (int j = 0; j < L; j += ATT_KB) {
        cpu_v8f a0 = {0}, a1 = {0}, b0 = {0}, b1 = {0};
        const float *kd = kt + j;
        int d = 0;
        for (; d + 2 <= D; d += 2, kd += 2 * ld) {
            cpu_v8f qd = (cpu_v8f){0} + q[d], qe = (cpu_v8f){0} + q[d + 1];
            a0 += qd * V8_AT(kd);
            a1 += qd * V8_AT(kd + 8);
            b0 += qe * V8_AT(kd + ld);
            b1 += qe * V8_AT(kd + ld + 8);
        }
        if (d < D) {
            cpu_v8f qd = (cpu_v8f){0} + q[d];
            a0 += qd * V8_AT(kd);
            a1 += qd * V8_AT(kd + 8);
        }
        a0 = (a0 + b0) * scale - sub;
        a1 = (a1 + b1) * scale - sub;
        if (mul) {
            a0 *= V8_AT(mul + j);
            a1 *= V8_AT(mul + j + 8);
        }
        float r[ATT_KB];
        memcpy(r, &a0, sizeof a0);
        memcpy(r + 8, &a1, sizeof a1);
        int n = L - j < ATT_KB ? L - j : ATT_KB;
        memcpy(s + j, r, (size_t)n * sizeof(float));
    }
}
#endif

static void attn_scores(float *restrict s, const float *restrict q, const float *restrict kt,
                        size_t ld, int L, int D, float scale, float sub, const float *mul) {
#if ATT_AVX2
    if (att_avx2()) {
        attn_scores_v8(s, q, kt, ld, L, D, scale, sub, mul);
        return;
    }
#endif
    attn_scores_v4(s, q, kt, ld, L, D, scale, sub, mul);
}

/* out[0, D) += sum_{j in order} e[j] x_j over n rows x_j = x + j * stride; each out[d] is summed
 * key by key in order, so splitting the keys into runs (paged blocks) gives the same bits */
static void attn_wsum(float *restrict out, const float *restrict e, const float *restrict x,
                      size_t stride, int n, int D) {
    int d0 = 0;
    for (; d0 + 16 <= D; d0 += 16) {
        cpu_v4f a0 = v4_load(out + d0), a1 = v4_load(out + d0 + 4), a2 = v4_load(out + d0 + 8),
                a3 = v4_load(out + d0 + 12);
        const float *xj = x + d0;
        for (int j = 0; j < n; j++, xj += stride) {
            cpu_v4f ej = {e[j], e[j], e[j], e[j]};
            a0 += ej * v4_load(xj);
            a1 += ej * v4_load(xj + 4);
            a2 += ej * v4_load(xj + 8);
            a3 += ej * v4_load(xj + 12);
        }
        v4_store(out + d0, a0);
        v4_store(out + d0 + 4, a1);
        v4_store(out + d0 + 8, a2);
        v4_store(out + d0 + 12, a3);
    }
    for (; d0 < D; d0++) {
        float a = out[d0];
        for (int j = 0; j < n; j++) a += e[j] * x[(size_t)j * stride + d0];
        out[d0] = a;
    }
}

/* sc[0, L) <- exp(sc - max); returns the max, *sum = sum of the exps (8 partial sums in a
 * fixed order) */
static float attn_softmax_row(float *sc, int L, float *sum) {
    /* written with 4-lane vectors: gcc does not if-convert a float compare (-ftrapping-math),
     * so the plain loops stayed scalar; the lanes are the same 8 partial maxima and sums */
    cpu_v4f m0 = (cpu_v4f){0} - INFINITY, m1 = m0, a0 = {0}, a1 = {0};
    int j = 0;
    for (; j + 8 <= L; j += 8) {
        cpu_v4f x0 = v4_load(sc + j), x1 = v4_load(sc + j + 4);
        cpu_v4i g0 = x0 > m0, g1 = x1 > m1;
        m0 = (cpu_v4f)(((cpu_v4i)x0 & g0) | ((cpu_v4i)m0 & ~g0));
        m1 = (cpu_v4f)(((cpu_v4i)x1 & g1) | ((cpu_v4i)m1 & ~g1));
    }
    float mx[8];
    v4_store(mx, m0);
    v4_store(mx + 4, m1);
    for (; j < L; j++) mx[j & 7] = sc[j] > mx[j & 7] ? sc[j] : mx[j & 7];
    float m = mx[0];
    for (int l = 1; l < 8; l++) m = mx[l] > m ? mx[l] : m;
    for (j = 0; j + 4 <= L; j += 4) v4_store(sc + j, v4_load(sc + j) - m);
    for (; j < L; j++) sc[j] -= m;
    sr_cpu_exp_array(sc, sc, L);
    for (j = 0; j + 8 <= L; j += 8) {
        a0 += v4_load(sc + j);
        a1 += v4_load(sc + j + 4);
    }
    float acc[8];
    v4_store(acc, a0);
    v4_store(acc + 4, a1);
    for (; j < L; j++) acc[j & 7] += sc[j];
    *sum = ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
    return m;
}

/* out[D] = (sum_j e[j] v_j) / sum over keys [0, L), key j being row j of v (rows `stride`
 * apart) or, with a block table, row table[j / block] * block + j % block; returns the lse */
static float attn_out_row(float *out, const float *e, const float *v, size_t stride, int L, int D,
                          float m, float sum, const int32_t *table, int block) {
    for (int d = 0; d < D; d++) out[d] = 0.0f;
    for (int j0 = 0; j0 < L; j0 += block) {
        size_t r0 = table ? (size_t)table[j0 / block] * block : (size_t)j0;
        int nb = L - j0 < block ? L - j0 : block;
        const float *vb = v + r0 * stride;
        attn_wsum(out, e + j0, vb, stride, nb, D);
    }
    float inv = 1.0f / sum;
    for (int d = 0; d < D; d++) out[d] *= inv;
    return m + logf(sum);
}

/* kt[(h * D + d) * N + j] = x[j, h * D + d] for the H heads: each head's keys transposed */
static void attn_transpose(float *kt, const float *x, int N, int H, int D) {
    size_t w = (size_t)H * D;
    for (int j = 0; j < N; j++)
        for (size_t c = 0; c < w; c++) kt[c * N + j] = x[(size_t)j * w + c];
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
    /* [Hkv * D][N], then ATT_KB floats of padding (attn_scores reads past the last key) */
    float *kt = malloc(((size_t)N * ks + ATT_KB) * sizeof(float));
    SR_ASSERT(kt);
    attn_transpose(kt, k, N, Hkv, D);
    memset(kt + (size_t)N * ks, 0, ATT_KB * sizeof(float));
#pragma omp parallel num_threads(cpu_threads_for(be, work))
    {
        float *sc = malloc((size_t)maxwin * sizeof(float));
        SR_ASSERT(sc);
#pragma omp for schedule(dynamic, 8)
        for (long t = 0; t < total; t++) {
            int h = (int)(t / N), i = (int)(t % N);
            int kvh = h / group, start = i - pos[i], L = i - start + 1;
            float sum;
            attn_scores(sc, q + i * qs + (size_t)h * D, kt + (size_t)kvh * D * N + start, N, L, D,
                        scale, 0.0f, NULL);
            float m = attn_softmax_row(sc, L, &sum);
            float l = attn_out_row(out + i * qs + (size_t)h * D, sc,
                                   v + start * ks + (size_t)kvh * D, ks, L, D, m, sum, NULL, L);
            if (lse) lse[(size_t)h * N + i] = l;
        }
        free(sc);
    }
    free(kt);
}

/* y[0, n) = (y + a0 x0) + a1 x1, both products added one after the other (the bits of two
 * axpys) while y stays in registers: one load and one store of y for two queries */
static inline void axpy2_f32(float *restrict y, float a0, const float *restrict x0, float a1,
                             const float *restrict x1, int n) {
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int l = 0; l < 8; l++) y[d + l] = (y[d + l] + a0 * x0[d + l]) + a1 * x1[d + l];
    for (; d < n; d++) y[d] = (y[d] + a0 * x0[d]) + a1 * x1[d];
}

/* one (KV head, segment [a, b)) of the backward: see the head comment. Rows go query by
 * query, the query heads of the group two at a time (they share the query's window), so dk
 * and dv of a key take both heads' terms in one pass. */
typedef struct AttnBwdScratch {
    float *kt, *vt;     /* [D][S] the segment's keys and values transposed */
    float *dk, *dv;     /* [S][D] accumulators */
    float *p, *dp, *dq; /* [2][S], [2][S], [D] */
} AttnBwdScratch;

static void attn_backward_segment(AttnBwdScratch *w, float *dq, float *dk, float *dv,
                                  const float *dout, const float *q, const float *k,
                                  const float *v, const float *out, const float *lse,
                                  const int32_t *pos, int N, int a, int b, int kvh, int group,
                                  int Hq, int Hkv, int D, float scale) {
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D;
    int S = b - a;
    const float *kseg = k + (size_t)a * ks + (size_t)kvh * D, *vseg = v + (size_t)a * ks + (size_t)kvh * D;
    for (int j = 0; j < S; j++)
        for (int d = 0; d < D; d++) {
            w->kt[(size_t)d * S + j] = kseg[(size_t)j * ks + d];
            w->vt[(size_t)d * S + j] = vseg[(size_t)j * ks + d];
        }
    memset(w->dk, 0, (size_t)S * D * sizeof(float));
    memset(w->dv, 0, (size_t)S * D * sizeof(float));
    int need_ds = dq || dk;
    for (int i = a; i < b; i++) {
        int j0 = i - pos[i] - a, L = pos[i] + 1; /* keys [j0, j0 + L) of the segment */
        for (int h0 = kvh * group; h0 < (kvh + 1) * group; h0 += 2) {
            int nh = (kvh + 1) * group - h0 < 2 ? 1 : 2;
            const float *qh[2], *gh[2];
            float *p[2] = {w->p, w->p + S}, *ds[2] = {w->dp, w->dp + S};
            for (int u = 0; u < nh; u++) {
                int h = h0 + u;
                qh[u] = q + i * qs + (size_t)h * D;
                gh[u] = dout + i * qs + (size_t)h * D;
                attn_scores(p[u], qh[u], w->kt + j0, S, L, D, scale, lse[(size_t)h * N + i], NULL);
                sr_cpu_exp_array(p[u], p[u], L);
                if (!need_ds) continue;
                /* Dsum in the order of attn_scores' dP: a lone key (out = v) gives dS = 0 */
                const float *oi = out + i * qs + (size_t)h * D;
                float de = 0.0f, dd = 0.0f;
                for (int d = 0; d < D; d += 2) de += gh[u][d] * oi[d];
                for (int d = 1; d < D; d += 2) dd += gh[u][d] * oi[d];
                /* dS = P (dP - Dsum) */
                attn_scores(ds[u], gh[u], w->vt + j0, S, L, D, 1.0f, de + dd, p[u]);
                if (dq) {
                    for (int d = 0; d < D; d++) w->dq[d] = 0.0f;
                    attn_wsum(w->dq, ds[u], kseg + (size_t)j0 * ks, ks, L, D);
                    float *dqi = dq + i * qs + (size_t)h * D;
                    for (int d = 0; d < D; d++) dqi[d] += scale * w->dq[d];
                }
            }
            float *wdv = w->dv + (size_t)j0 * D, *wdk = w->dk + (size_t)j0 * D;
            if (nh == 2) {
                for (int j = 0; j < L && dv; j++)
                    axpy2_f32(wdv + (size_t)j * D, p[0][j], gh[0], p[1][j], gh[1], D);
                for (int j = 0; j < L && dk; j++)
                    axpy2_f32(wdk + (size_t)j * D, ds[0][j], qh[0], ds[1][j], qh[1], D);
            } else {
                for (int j = 0; j < L && dv; j++) axpy_f32(wdv + (size_t)j * D, p[0][j], gh[0], D);
                for (int j = 0; j < L && dk; j++) axpy_f32(wdk + (size_t)j * D, ds[0][j], qh[0], D);
            }
        }
    }
    for (int j = 0; j < S; j++) {
        size_t r = (size_t)(a + j) * ks + (size_t)kvh * D;
        if (dk)
            for (int d = 0; d < D; d++) dk[r + d] += scale * w->dk[(size_t)j * D + d];
        if (dv)
            for (int d = 0; d < D; d++) dv[r + d] += w->dv[(size_t)j * D + d];
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
    if (!dq && !dk && !dv) return;
    int group = Hq / Hkv;
    float scale = attn_scale(D);
    int maxwin = attn_check_pos(pos, N);
    /* segments: split before every row with pos 0 */
    int *seg = malloc(((size_t)N + 1) * sizeof(int)), nseg = 0, smax = 1;
    SR_ASSERT(seg);
    for (int i = 0; i < N; i++)
        if (pos[i] == 0) seg[nseg++] = i;
    seg[nseg] = N;
    for (int s = 0; s < nseg; s++)
        if (seg[s + 1] - seg[s] > smax) smax = seg[s + 1] - seg[s];
    long total = (long)Hkv * nseg;
    int nt = cpu_threads_for(be, 10.0 * Hq * N * D * maxwin);
#pragma omp parallel num_threads(nt)
    {
        size_t S = (size_t)smax;
        /* kt, vt, dk, dv, p, dp, dq: a row of kt or vt read past its end (attn_scores) lands in
         * the next array or the ATT_KB floats of padding at the end */
        float *mem = calloc(4 * S * D + 4 * S + D + ATT_KB, sizeof(float));
        SR_ASSERT(mem);
        AttnBwdScratch w = {mem, mem + S * D, mem + 2 * S * D, mem + 3 * S * D, mem + 4 * S * D,
                            mem + 4 * S * D + 2 * S, mem + 4 * S * D + 4 * S};
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < total; t++) {
            int kvh = (int)(t % Hkv), s = (int)(t / Hkv);
            attn_backward_segment(&w, dq, dk, dv, dout, q, k, v, out, lse, pos, N, seg[s],
                                  seg[s + 1], kvh, group, Hq, Hkv, D, scale);
        }
        free(mem);
    }
    free(seg);
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
 * Row by row it is attention_forward's computation over the same keys in the same order, so a
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
    /* one task per (token, KV head): its group's query heads share each transposed tile */
    long total = (long)N * Hkv;
#pragma omp parallel num_threads(cpu_threads_for(be, 4.0 * total * group * D * maxwin))
    {
        float *sc = malloc((size_t)group * maxwin * sizeof(float));
        float *tile = calloc((size_t)D * ATT_KB, sizeof(float));
        SR_ASSERT(sc && tile);
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < total; t++) {
            int i = (int)(t / Hkv), kvh = (int)(t % Hkv), L = pos[i] + 1;
            const int32_t *tab = table + (size_t)seq[i] * max_blocks;
            /* the scores ATT_KB cache rows at a time through a transposed tile: the loop of
             * attn_scores, so each score has the bits of the packed forward's */
            for (int j0 = 0; j0 < L; j0 += ATT_KB) {
                int nk = L - j0 < ATT_KB ? L - j0 : ATT_KB;
                for (int l = 0; l < nk; l++) {
                    int j = j0 + l;
                    const float *kr = kc + ((size_t)tab[j / block] * block + j % block) * ks +
                                      (size_t)kvh * D;
                    for (int d = 0; d < D; d++) tile[d * ATT_KB + l] = kr[d];
                }
                for (int u = 0; u < group; u++)
                    attn_scores(sc + (size_t)u * maxwin + j0,
                                q + i * qs + (size_t)(kvh * group + u) * D, tile, ATT_KB, nk, D,
                                scale, 0.0f, NULL);
            }
            for (int u = 0; u < group; u++) {
                float sum, *su = sc + (size_t)u * maxwin;
                float m = attn_softmax_row(su, L, &sum);
                attn_out_row(out + i * qs + (size_t)(kvh * group + u) * D, su,
                             vc + (size_t)kvh * D, ks, L, D, m, sum, tab, block);
            }
        }
        free(tile);
        free(sc);
    }
}
