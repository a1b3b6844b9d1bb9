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
 * paged path a tile of cache rows at a time, on AVX-512 in registers), each score summed over
 * even d and odd d in order; exp is cpu_exp_v4 (ops_cpu.h) over the row; the softmax sum (8
 * partial sums) and the output (sum_j e_j v_j, keys in order) are the same everywhere.
 * On AVX-512 the loops take several queries per pass (up to ATT_QMAX: consecutive rows of one
 * document in the forward, those rows times the group's query heads in the backward, a
 * token's query heads in the paged path), so each key block and value row is loaded once for
 * all of them and their add chains run side by side; every query's operations and their order
 * stay those of the one-query loops, so the SSE, AVX2 and AVX-512 builds give the same bits.
 *
 * The backward recomputes P_ij = exp(s_ij - lse_i) instead of storing it:
 *   Dsum_i = dout_i . out_i,  dP_ij = dout_i . v_j,  dS_ij = P_ij (dP_ij - Dsum_i)
 *   dq_i += scale sum_j dS_ij k_j,  dk_j += scale sum_i dS_ij q_i,  dv_j += sum_i P_ij dout_i
 * in one pass per (KV head, segment), a segment being a run of rows that starts at a row with
 * pos 0 (no later row sees a key before it; dk_j and dv_j take their terms row by row, the
 * group's heads in order within a row): that task owns dq of its group's query heads on
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

/* The hot loops again for AVX-512 (16 lanes: one block of ATT_KB keys, one 16-float slice of
 * a head), chosen at run time: several queries per pass over a key block, so each load of a
 * key or value row serves them all and their add chains run side by side. The same operations
 * lane by lane as the SSE and AVX2 loops (the file is built with -ffp-contract=off: AVX-512
 * has fused multiply-add, which would change the bits), so every build gives the same bits
 * (checked by building with -DATT_NO_AVX512 and comparing bench_attention's hashes). */
#if ATT_AVX2 && !defined(ATT_NO_AVX512)
#define ATT_AVX512 1
#define ATT_TARGET_AVX512 __attribute__((target("avx512f,avx512vl,avx512dq")))
#include <immintrin.h>
static inline int att_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
           __builtin_cpu_supports("avx512dq");
}
#else
#define ATT_AVX512 0
#endif

#define ATT_QMAX 8 /* queries per pass of the multi-query loops */


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

#if ATT_AVX512
typedef float att_v16f __attribute__((vector_size(64)));
typedef int32_t att_v16i __attribute__((vector_size(64)));
typedef float att_v16u __attribute__((vector_size(64), aligned(4), may_alias));
#define V16_AT(p) (*(const att_v16u *)(p)) /* an unaligned load */
#define V16_ST(p, x) (*(att_v16u *)(p) = (x)) /* an unaligned store */

/* cpu_exp_v4's e^x on 16 lanes with the same bits in fewer instructions: the clamps as max
 * and min (max(lo, x) and min(hi, x) return x when it is NaN, as the masks do), and the
 * scaling by 2^n as one vscalefps: p * 2^(n >> 1) is exact (p is about 1, n >> 1 >= -75), so
 * the two multiplies round once, the exact p * 2^n, as vscalefps does (also where it
 * overflows or is subnormal; a NaN p comes out as itself either way). test_ops_cpu compares
 * the bits with cpu_exp_v4 over a sweep of [-104, 89] and the special values. */
static inline __attribute__((always_inline)) ATT_TARGET_AVX512 att_v16f att_exp_v16(att_v16f x) {
    const __m512 lo = _mm512_set1_ps(-104.0f), hi = _mm512_set1_ps(89.0f);
    att_v16f xc = (att_v16f)_mm512_min_ps(hi, _mm512_max_ps(lo, (__m512)x));
    att_v16f t = xc * 1.44269504088896341f + 12582912.0f; /* round(x / ln2) + 1.5 * 2^23 */
    att_v16f nf = t - 12582912.0f;
    att_v16f r = (xc - nf * 0.693359375f) - nf * -2.12194440e-4f;
    att_v16f p = r * (1.0f / 5040.0f) + 1.0f / 720.0f;
    p = p * r + 1.0f / 120.0f;
    p = p * r + 1.0f / 24.0f;
    p = p * r + 1.0f / 6.0f;
    p = p * r + 0.5f;
    p = p * r + 1.0f;
    p = p * r + 1.0f;
    return (att_v16f)_mm512_scalef_ps((__m512)p, (__m512)nf);
}

ATT_TARGET_AVX512 static void exp_array_v16(float *y, const float *x, int n) {
    int j = 0;
    att_v16f v;
    for (; j + 16 <= n; j += 16) {
        v = V16_AT(x + j);
        v = att_exp_v16(v);
        V16_ST(y + j, v);
    }
    if (j < n) {
        __mmask16 m = (__mmask16)((1u << (n - j)) - 1);
        v = (att_v16f)_mm512_maskz_loadu_ps(m, x + j);
        v = att_exp_v16(v);
        _mm512_mask_storeu_ps(y + j, m, (__m512)v);
    }
}
#endif

void sr_cpu_exp_array(float *y, const float *x, int n) {
#if ATT_AVX512
    if (att_avx512()) {
        exp_array_v16(y, x, n);
        return;
    }
#endif
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

/* y[0, n) += x[0, n) in blocks of 8 (as axpy_f32) */
static inline void add_f32(float *restrict y, const float *restrict x, int n) {
    int d = 0;
    for (; d + 8 <= n; d += 8)
        for (int l = 0; l < 8; l++) y[d + l] += x[d + l];
    for (; d < n; d++) y[d] += x[d];
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

/* ---- several queries at a time ----------------------------------------------------------
 * The same computations as attn_scores and attn_wsum for nq queries, query u's row of s or e
 * being s + u * lds: on AVX-512 up to ATT_QMAX of them share each load of a key block or a
 * value row, elsewhere they go one by one. Either way each query's numbers are those of the
 * one-query loops. */

#if ATT_AVX512
/* attn_scores_v8 for NQ queries on 16 lanes (one zmm per key block and d) */
static inline __attribute__((always_inline)) ATT_TARGET_AVX512 void
scores_v16_body(const int NQ, float *restrict s, size_t lds, const float *const *q,
                const float *restrict kt, size_t ld, int L, int D, float scale, const float *sub,
                const float *mul) {
    for (int j = 0; j < L; j += ATT_KB) {
        att_v16f a[ATT_QMAX], b[ATT_QMAX];
        #pragma GCC unroll 8
        for (int u = 0; u < NQ; u++) a[u] = b[u] = (att_v16f){0};
        const float *kd = kt + j;
        int d = 0;
        for (; d + 2 <= D; d += 2, kd += 2 * ld) {
            att_v16f k0 = V16_AT(kd), k1 = V16_AT(kd + ld);
            #pragma GCC unroll 8
            for (int u = 0; u < NQ; u++) {
                a[u] += q[u][d] * k0;
                b[u] += q[u][d + 1] * k1;
            }
        }
        if (d < D) {
            att_v16f k0 = V16_AT(kd);
            #pragma GCC unroll 8
            for (int u = 0; u < NQ; u++) a[u] += q[u][d] * k0;
        }
        __mmask16 m = L - j >= ATT_KB ? (__mmask16)0xffff : (__mmask16)((1u << (L - j)) - 1);
        #pragma GCC unroll 8
        for (int u = 0; u < NQ; u++) {
            att_v16f r = (a[u] + b[u]) * scale - (sub ? sub[u] : 0.0f);
            if (mul) r *= V16_AT(mul + u * lds + j);
            _mm512_mask_storeu_ps(s + u * lds + j, m, (__m512)r);
        }
    }
}

ATT_TARGET_AVX512 static void attn_scores_v16(float *s, size_t lds, int nq, const float *const *q,
                                              const float *kt, size_t ld, int L, int D,
                                              float scale, const float *sub, const float *mul) {
    for (; nq > 0; nq -= ATT_QMAX, s += ATT_QMAX * lds, q += ATT_QMAX,
                   sub = sub ? sub + ATT_QMAX : NULL, mul = mul ? mul + ATT_QMAX * lds : NULL) {
        switch (nq < ATT_QMAX ? nq : ATT_QMAX) {
#define ATT_CASE(n) \
    case n: scores_v16_body(n, s, lds, q, kt, ld, L, D, scale, sub, mul); break;
            ATT_CASE(1) ATT_CASE(2) ATT_CASE(3) ATT_CASE(4)
            ATT_CASE(5) ATT_CASE(6) ATT_CASE(7) ATT_CASE(8)
#undef ATT_CASE
        }
    }
}

/* attn_wsum for NQ queries, D a multiple of 16 */
static inline __attribute__((always_inline)) ATT_TARGET_AVX512 void
wsum_v16_body(const int NQ, float *const *out, const float *restrict e, size_t lde,
              const float *restrict x, size_t stride, int n, int D) {
    for (int d0 = 0; d0 < D; d0 += 16) {
        att_v16f a[ATT_QMAX];
        #pragma GCC unroll 8
        for (int u = 0; u < NQ; u++) a[u] = V16_AT(out[u] + d0);
        const float *xj = x + d0;
        for (int j = 0; j < n; j++, xj += stride) {
            att_v16f xv = V16_AT(xj);
            #pragma GCC unroll 8
            for (int u = 0; u < NQ; u++) a[u] += e[u * lde + j] * xv;
        }
        #pragma GCC unroll 8
        for (int u = 0; u < NQ; u++) V16_ST(out[u] + d0, a[u]);
    }
}

/* wsum_v16_body with query u's rows at x + xo[u] (the paged path: a token's query heads read
 * the value rows of their own KV head) */
static inline __attribute__((always_inline)) ATT_TARGET_AVX512 void
wsum_off_v16_body(const int NQ, float *const *out, const float *restrict e, size_t lde,
                  const float *restrict x, const size_t *xo, size_t stride, int n, int D) {
    for (int d0 = 0; d0 < D; d0 += 16) {
        att_v16f a[ATT_QMAX];
#pragma GCC unroll 8
        for (int u = 0; u < NQ; u++) a[u] = V16_AT(out[u] + d0);
        const float *xj = x + d0;
        for (int j = 0; j < n; j++, xj += stride) {
#pragma GCC unroll 8
            for (int u = 0; u < NQ; u++) a[u] += e[u * lde + j] * V16_AT(xj + xo[u]);
        }
#pragma GCC unroll 8
        for (int u = 0; u < NQ; u++) V16_ST(out[u] + d0, a[u]);
    }
}

ATT_TARGET_AVX512 static void attn_wsum_off_v16(float *const *out, int nq, const float *e,
                                                size_t lde, const float *x, const size_t *xo,
                                                size_t stride, int n, int D) {
    for (; nq > 0; nq -= ATT_QMAX, out += ATT_QMAX, e += ATT_QMAX * lde, xo += ATT_QMAX) {
        switch (nq < ATT_QMAX ? nq : ATT_QMAX) {
#define ATT_CASE(k) \
    case k: wsum_off_v16_body(k, out, e, lde, x, xo, stride, n, D); break;
            ATT_CASE(1) ATT_CASE(2) ATT_CASE(3) ATT_CASE(4)
            ATT_CASE(5) ATT_CASE(6) ATT_CASE(7) ATT_CASE(8)
#undef ATT_CASE
        }
    }
}

ATT_TARGET_AVX512 static void attn_wsum_v16(float *const *out, int nq, const float *e, size_t lde,
                                            const float *x, size_t stride, int n, int D) {
    for (; nq > 0; nq -= ATT_QMAX, out += ATT_QMAX, e += ATT_QMAX * lde) {
        switch (nq < ATT_QMAX ? nq : ATT_QMAX) {
#define ATT_CASE(k) \
    case k: wsum_v16_body(k, out, e, lde, x, stride, n, D); break;
            ATT_CASE(1) ATT_CASE(2) ATT_CASE(3) ATT_CASE(4)
            ATT_CASE(5) ATT_CASE(6) ATT_CASE(7) ATT_CASE(8)
#undef ATT_CASE
        }
    }
}
#endif

/* s + u * lds <- attn_scores(q[u], ..., sub ? sub[u] : 0, mul ? mul + u * lds : NULL) for the
 * nq queries (every row of s and mul padded to a multiple of ATT_KB readable floats) */
static void attn_scores_n(float *s, size_t lds, int nq, const float *const *q, const float *kt,
                          size_t ld, int L, int D, float scale, const float *sub,
                          const float *mul) {
#if ATT_AVX512
    if (att_avx512()) {
        attn_scores_v16(s, lds, nq, q, kt, ld, L, D, scale, sub, mul);
        return;
    }
#endif
    for (int u = 0; u < nq; u++)
        attn_scores(s + u * lds, q[u], kt, ld, L, D, scale, sub ? sub[u] : 0.0f,
                    mul ? mul + u * lds : NULL);
}

/* attn_wsum(out[u], e + u * lde, x, stride, n, D) for the nq queries */
static void attn_wsum_n(float *const *out, int nq, const float *e, size_t lde, const float *x,
                        size_t stride, int n, int D) {
#if ATT_AVX512
    if (D % 16 == 0 && att_avx512()) {
        attn_wsum_v16(out, nq, e, lde, x, stride, n, D);
        return;
    }
#endif
    for (int u = 0; u < nq; u++) attn_wsum(out[u], e + u * lde, x, stride, n, D);
}

#if ATT_AVX512
/* attn_softmax_row in one pass after the max: exp on 16 lanes, each half of a block added to
 * the same 8 partial sums in the same order (lane l takes keys l, l + 8, l + 16, ...) */
ATT_TARGET_AVX512 static float attn_softmax_row_v16(float *sc, int L, float *sum) {
    __m512 mv = _mm512_set1_ps(-INFINITY);
    for (int j = 0; j < L; j += 16) {
        __mmask16 k = L - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (L - j)) - 1);
        /* max(x, m) is x > m ? x : m, as in attn_softmax_row: a NaN score is never the max */
        mv = _mm512_mask_max_ps(mv, k, _mm512_maskz_loadu_ps(k, sc + j), mv);
    }
    /* the max is the same in any order (but for the sign of a zero max, which changes no
     * bits of the results: x - (+0) and x - (-0) differ only for x = -0, and e^(+-0) = 1) */
    float m = _mm512_reduce_max_ps(mv);
    /* lanes that hold no key leave the sums as they are (a masked add) */
    __m256 acc = _mm256_setzero_ps();
    for (int j = 0; j < L; j += 16) {
        __mmask16 k = L - j >= 16 ? (__mmask16)0xffff : (__mmask16)((1u << (L - j)) - 1);
        att_v16f v = (att_v16f)_mm512_maskz_loadu_ps(k, sc + j) - m;
        v = att_exp_v16(v);
        _mm512_mask_storeu_ps(sc + j, k, (__m512)v);
        acc = _mm256_mask_add_ps(acc, (__mmask8)k, acc, _mm512_castps512_ps256((__m512)v));
        acc = _mm256_mask_add_ps(acc, (__mmask8)(k >> 8), acc,
                                 _mm512_extractf32x8_ps((__m512)v, 1));
    }
    float a[8];
    _mm256_storeu_ps(a, acc);
    *sum = ((a[0] + a[4]) + (a[1] + a[5])) + ((a[2] + a[6]) + (a[3] + a[7]));
    return m;
}
#endif

/* attn_wsum(out[u], e + u * lde, x + xo[u], stride, n, D) for the nq queries */
static void attn_wsum_off_n(float *const *out, int nq, const float *e, size_t lde, const float *x,
                            const size_t *xo, size_t stride, int n, int D) {
#if ATT_AVX512
    if (D % 16 == 0 && att_avx512()) {
        attn_wsum_off_v16(out, nq, e, lde, x, xo, stride, n, D);
        return;
    }
#endif
    for (int u = 0; u < nq; u++) attn_wsum(out[u], e + u * lde, x + xo[u], stride, n, D);
}

/* sc[0, L) <- exp(sc - max); returns the max, *sum = sum of the exps (8 partial sums in a
 * fixed order) */
static float attn_softmax_row(float *sc, int L, float *sum) {
#if ATT_AVX512
    if (att_avx512()) return attn_softmax_row_v16(sc, L, sum);
#endif
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

/* out[0, D) holds sum_j e_j v_j: divides it by the sum of the exps; returns the lse */
static float attn_out_finish(float *out, int D, float m, float sum) {
    float inv = 1.0f / sum;
    for (int d = 0; d < D; d++) out[d] *= inv;
    return m + logf(sum);
}

#if ATT_AVX512
/* o[d] = (row[0][off + d], ..., row[15][off + d]) for d < 16, rows l >= nk read as zeros: a
 * 16 x 16 slice of keys transposed in registers */
static inline __attribute__((always_inline)) ATT_TARGET_AVX512 void
att_transpose16(__m512 o[16], const float *const *row, size_t off, int nk) {
    __m512 r[16], t[16];
#pragma GCC unroll 16
    for (int l = 0; l < 16; l++) r[l] = l < nk ? _mm512_loadu_ps(row[l] + off) : _mm512_setzero_ps();
    /* pairs of rows interleaved, then pairs of pairs: t[4g + c] holds, in each 128-bit lane,
     * elements c of rows 4g..4g+3 */
#pragma GCC unroll 4
    for (int g = 0; g < 4; g++) {
        __m512 u0 = _mm512_unpacklo_ps(r[4 * g], r[4 * g + 1]);
        __m512 u1 = _mm512_unpackhi_ps(r[4 * g], r[4 * g + 1]);
        __m512 u2 = _mm512_unpacklo_ps(r[4 * g + 2], r[4 * g + 3]);
        __m512 u3 = _mm512_unpackhi_ps(r[4 * g + 2], r[4 * g + 3]);
        t[4 * g] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u0), _mm512_castps_pd(u2)));
        t[4 * g + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u0), _mm512_castps_pd(u2)));
        t[4 * g + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(u1), _mm512_castps_pd(u3)));
        t[4 * g + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(u1), _mm512_castps_pd(u3)));
    }
    /* t[4g + c], 128-bit lane p: element 4p + c of rows 4g..4g+3. Gather lane p of the four g
     * into o[4p + c]. */
#pragma GCC unroll 4
    for (int c = 0; c < 4; c++) {
        __m512 x0 = _mm512_shuffle_f32x4(t[c], t[4 + c], 0x44);      /* lanes 0,1 of g0, g1 */
        __m512 x1 = _mm512_shuffle_f32x4(t[8 + c], t[12 + c], 0x44); /* lanes 0,1 of g2, g3 */
        __m512 x2 = _mm512_shuffle_f32x4(t[c], t[4 + c], 0xee);      /* lanes 2,3 of g0, g1 */
        __m512 x3 = _mm512_shuffle_f32x4(t[8 + c], t[12 + c], 0xee); /* lanes 2,3 of g2, g3 */
        o[c] = _mm512_shuffle_f32x4(x0, x1, 0x88);
        o[4 + c] = _mm512_shuffle_f32x4(x0, x1, 0xdd);
        o[8 + c] = _mm512_shuffle_f32x4(x2, x3, 0x88);
        o[12 + c] = _mm512_shuffle_f32x4(x2, x3, 0xdd);
    }
}

/* attn_tile_fill for D a multiple of 16 */
ATT_TARGET_AVX512 static void attn_tile_fill_v16(float *tile, size_t ld, const float *const *row,
                                                 int nk, int D) {
    __mmask16 m = (__mmask16)((1u << nk) - 1);
    for (int d0 = 0; d0 < D; d0 += 16) {
        __m512 o[16];
        att_transpose16(o, row, (size_t)d0, nk);
#pragma GCC unroll 16
        for (int d = 0; d < 16; d++) _mm512_mask_storeu_ps(tile + (size_t)(d0 + d) * ld, m, o[d]);
    }
}

/* attn_scores_v16 of NQ queries against the nk <= 16 keys row[l] + off (not transposed), D a
 * multiple of 16: each slice of the keys transposed in registers and used there */
static inline __attribute__((always_inline)) ATT_TARGET_AVX512 void
rows_scores_v16_body(const int NQ, float *s, size_t lds, const float *const *q,
                     const float *const *row, size_t off, int nk, int D, float scale) {
    att_v16f a[ATT_QMAX], b[ATT_QMAX];
#pragma GCC unroll 8
    for (int u = 0; u < NQ; u++) a[u] = b[u] = (att_v16f){0};
    for (int d0 = 0; d0 < D; d0 += 16) {
        __m512 o[16];
        att_transpose16(o, row, off + (size_t)d0, nk);
#pragma GCC unroll 8
        for (int d = 0; d < 16; d += 2) {
#pragma GCC unroll 8
            for (int u = 0; u < NQ; u++) {
                a[u] += q[u][d0 + d] * (att_v16f)o[d];
                b[u] += q[u][d0 + d + 1] * (att_v16f)o[d + 1];
            }
        }
    }
    __mmask16 m = (__mmask16)((1u << nk) - 1);
#pragma GCC unroll 8
    for (int u = 0; u < NQ; u++)
        _mm512_mask_storeu_ps(s + u * lds, m, (__m512)((a[u] + b[u]) * scale - 0.0f));
}

ATT_TARGET_AVX512 static void attn_rows_scores_v16(float *s, size_t lds, int nq,
                                                   const float *const *q, const float *const *row,
                                                   size_t off, int nk, int D, float scale) {
    switch (nq) {
#define ATT_CASE(n) \
    case n: rows_scores_v16_body(n, s, lds, q, row, off, nk, D, scale); break;
        ATT_CASE(1) ATT_CASE(2) ATT_CASE(3) ATT_CASE(4)
        ATT_CASE(5) ATT_CASE(6) ATT_CASE(7) ATT_CASE(8)
#undef ATT_CASE
    }
}
#endif

/* tile[d * ld + l] = row[l][d], d < D, for the nk <= ATT_KB rows (the rest left alone): a
 * block of keys transposed */
static void attn_tile_fill(float *tile, size_t ld, const float *const *row, int nk, int D) {
#if ATT_AVX512
    if (D % 16 == 0 && att_avx512()) {
        attn_tile_fill_v16(tile, ld, row, nk, D);
        return;
    }
#endif
    for (int l = 0; l < nk; l++)
        for (int d = 0; d < D; d++) tile[d * ld + l] = row[l][d];
}

/* s + u * lds <- attn_scores(q[u], keys) for the nq queries against the nk <= ATT_KB keys
 * row[l] + off (not transposed), through `tile` ([D][ATT_KB]) where the keys are not
 * transposed in registers */
static void attn_rows_scores(float *s, size_t lds, int nq, const float *const *q,
                             const float *const *row, size_t off, int nk, int D, float scale,
                             float *tile) {
#if ATT_AVX512
    if (D % 16 == 0 && nq <= ATT_QMAX && att_avx512()) {
        attn_rows_scores_v16(s, lds, nq, q, row, off, nk, D, scale);
        return;
    }
#endif
    const float *r[ATT_KB];
    for (int l = 0; l < nk; l++) r[l] = row[l] + off;
    attn_tile_fill(tile, ATT_KB, r, nk, D);
    attn_scores_n(s, lds, nq, q, tile, ATT_KB, nk, D, scale, NULL, NULL);
}

/* kt[(h * D + d) * N + j] = x[j, h * D + d] for the H heads: each head's keys transposed */
static void attn_transpose(float *kt, const float *x, int N, int H, int D) {
    size_t w = (size_t)H * D;
    for (int j0 = 0; j0 < N; j0 += ATT_KB) {
        int nk = N - j0 < ATT_KB ? N - j0 : ATT_KB;
        for (int h = 0; h < H; h++) {
            const float *row[ATT_KB];
            for (int l = 0; l < nk; l++) row[l] = x + (size_t)(j0 + l) * w + (size_t)h * D;
            attn_tile_fill(kt + (size_t)h * D * N + j0, N, row, nk, D);
        }
    }
}

/* rows [a, b) of query head h (b - a <= ATT_QMAX), consecutive rows of one document with
 * window start `start`: row a + u attends to keys [start, a + u]. The scores of all rows run
 * to the last row's window (a row's extra scores are not used); the weighted sums share the
 * first row's keys, then each row adds its own last keys, in order. */
static void attn_forward_rows(float *out, float *lse, float *sc, size_t lds, const float *q,
                              const float *kt, const float *v, int N, int a, int b, int start,
                              int h, int kvh, size_t qs, size_t ks, int D, float scale) {
    int nq = b - a, L0 = a - start + 1;
    const float *qp[ATT_QMAX];
    float *op[ATT_QMAX], m[ATT_QMAX], sum[ATT_QMAX];
    for (int u = 0; u < nq; u++) {
        qp[u] = q + (size_t)(a + u) * qs + (size_t)h * D;
        op[u] = out + (size_t)(a + u) * qs + (size_t)h * D;
    }
    attn_scores_n(sc, lds, nq, qp, kt + (size_t)kvh * D * N + start, N, L0 + nq - 1, D, scale,
                  NULL, NULL);
    for (int u = 0; u < nq; u++) {
        m[u] = attn_softmax_row(sc + u * lds, L0 + u, &sum[u]);
        memset(op[u], 0, (size_t)D * sizeof(float));
    }
    const float *vs = v + (size_t)start * ks + (size_t)kvh * D;
    attn_wsum_n(op, nq, sc, lds, vs, ks, L0, D);
    for (int u = 1; u < nq; u++)
        attn_wsum(op[u], sc + u * lds + L0, vs + (size_t)L0 * ks, ks, u, D);
    for (int u = 0; u < nq; u++) {
        float l = attn_out_finish(op[u], D, m[u], sum[u]);
        if (lse) lse[(size_t)h * N + a + u] = l;
    }
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
    /* tasks: (head, ATT_QMAX consecutive rows), the rows split where a document starts */
    long ngroups = (N + ATT_QMAX - 1) / ATT_QMAX, total = (long)Hq * ngroups;
    double work = 4.0 * Hq * N * D * maxwin; /* an upper bound: windows average less */
    /* [Hkv * D][N], then ATT_KB floats of padding (attn_scores reads past the last key) */
    float *kt = malloc(((size_t)N * ks + ATT_KB) * sizeof(float));
    SR_ASSERT(kt);
    attn_transpose(kt, k, N, Hkv, D);
    memset(kt + (size_t)N * ks, 0, ATT_KB * sizeof(float));
    size_t lds = (size_t)(maxwin + ATT_KB - 1) / ATT_KB * ATT_KB;
#pragma omp parallel num_threads(cpu_threads_for(be, work))
    {
        float *sc = malloc(ATT_QMAX * lds * sizeof(float));
        SR_ASSERT(sc);
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < total; t++) {
            int h = (int)(t / ngroups), i0 = (int)(t % ngroups) * ATT_QMAX;
            int i1 = i0 + ATT_QMAX < N ? i0 + ATT_QMAX : N;
            for (int a = i0, b; a < i1; a = b) {
                int start = a - pos[a];
                for (b = a + 1; b < i1 && b - pos[b] == start; b++) {}
                attn_forward_rows(out, lse, sc, lds, q, kt, v, N, a, b, start, h, h / group, qs,
                                  ks, D, scale);
            }
        }
        free(sc);
    }
    free(kt);
}

#if ATT_AVX512
/* attn_axpy_n's keys that take every query's term, NQ queries, D a multiple of 16 */
static inline __attribute__((always_inline)) ATT_TARGET_AVX512 void
axpy_v16_body(const int NQ, float *restrict y, int n, const float *restrict a, size_t lda,
              const float *const *x, int D) {
    for (int d0 = 0; d0 < D; d0 += 16) {
        att_v16f xv[ATT_QMAX];
        #pragma GCC unroll 8
        for (int u = 0; u < NQ; u++) xv[u] = V16_AT(x[u] + d0);
        float *yj = y + d0;
        for (int j = 0; j < n; j++, yj += D) {
            att_v16f acc = V16_AT(yj);
            #pragma GCC unroll 8
            for (int u = 0; u < NQ; u++) acc += a[u * lda + j] * xv[u];
            V16_ST(yj, acc);
        }
    }
}

ATT_TARGET_AVX512 static void attn_axpy_v16(float *y, int n, int nq, const float *a, size_t lda,
                                            const float *const *x, int D) {
    for (; nq > 0; nq -= ATT_QMAX, a += ATT_QMAX * lda, x += ATT_QMAX) {
        switch (nq < ATT_QMAX ? nq : ATT_QMAX) {
#define ATT_CASE(k) \
    case k: axpy_v16_body(k, y, n, a, lda, x, D); break;
            ATT_CASE(1) ATT_CASE(2) ATT_CASE(3) ATT_CASE(4)
            ATT_CASE(5) ATT_CASE(6) ATT_CASE(7) ATT_CASE(8)
#undef ATT_CASE
        }
    }
}
#endif

/* y_j += a[u * lda + j] x_u for keys j in [0, L0 + nr - 1) (y_j = y + j * D), the terms added
 * one after the other in the order of u = r * group + g, query u belonging to row r of nr:
 * key j takes the terms of rows r > j - L0 (row r sees L0 + r keys). Each y_j's sum is in
 * the order of the rows and heads, so the bits are those of one row at a time. */
static void attn_axpy_n(float *y, int L0, int nr, int group, const float *a, size_t lda,
                        const float *const *x, int D) {
    int nq = nr * group, j = 0;
#if ATT_AVX512
    if (D % 16 == 0 && att_avx512()) {
        attn_axpy_v16(y, L0, nq, a, lda, x, D);
        j = L0;
    }
#endif
    for (; j < L0 + nr - 1; j++) {
        float *yj = y + (size_t)j * D;
        int u0 = j < L0 ? 0 : (j - L0 + 1) * group;
        for (int u = u0; u < nq; u++) axpy_f32(yj, a[u * lda + j], x[u], D);
    }
}

/* one (KV head, segment [a, b)) of the backward: see the head comment. Rows go a few at a
 * time (consecutive rows with one window start, with all the group's query heads: up to
 * ATT_QMAX queries), so each key block and each row of dk and dv serves them all. */
typedef struct AttnBwdScratch {
    float *kt, *vt;     /* [D][S] the segment's keys and values transposed */
    float *dk, *dv;     /* [S][D] accumulators */
    float *p, *ds;      /* [nq][lds] probabilities, dS */
    float *dq;          /* [nq][D] */
    const float **qp, **gp; /* [nq] each query's q and dout */
    float **dqp;        /* [nq] */
    float *sub;         /* [nq] */
    size_t lds;
} AttnBwdScratch;

static void attn_backward_segment(AttnBwdScratch *w, float *dq, float *dk, float *dv,
                                  const float *dout, const float *q, const float *k,
                                  const float *v, const float *out, const float *lse,
                                  const int32_t *pos, int N, int a, int b, int kvh, int group,
                                  int Hq, int Hkv, int D, float scale) {
    size_t qs = (size_t)Hq * D, ks = (size_t)Hkv * D, lds = w->lds;
    int S = b - a, R = group >= ATT_QMAX ? 1 : ATT_QMAX / group;
    const float *kseg = k + (size_t)a * ks + (size_t)kvh * D, *vseg = v + (size_t)a * ks + (size_t)kvh * D;
    for (int j0 = 0; j0 < S; j0 += ATT_KB) {
        int nk = S - j0 < ATT_KB ? S - j0 : ATT_KB;
        const float *kr[ATT_KB], *vr[ATT_KB];
        for (int l = 0; l < nk; l++) {
            kr[l] = kseg + (size_t)(j0 + l) * ks;
            vr[l] = vseg + (size_t)(j0 + l) * ks;
        }
        attn_tile_fill(w->kt + j0, S, kr, nk, D);
        attn_tile_fill(w->vt + j0, S, vr, nk, D);
    }
    memset(w->dk, 0, (size_t)S * D * sizeof(float));
    memset(w->dv, 0, (size_t)S * D * sizeof(float));
    int need_ds = dq || dk;
    for (int i0 = a, i1; i0 < b; i0 = i1) {
        int start = i0 - pos[i0];
        for (i1 = i0 + 1; i1 < b && i1 - i0 < R && i1 - pos[i1] == start; i1++) {}
        /* rows [i0, i1), query u = r * group + g: row i0 + r, head kvh * group + g, keys
         * [j0, j0 + L0 + r) of the segment */
        int nr = i1 - i0, nq = nr * group, j0 = start - a, L0 = i0 - start + 1;
        int Lmax = L0 + nr - 1;
        for (int u = 0; u < nq; u++) {
            int i = i0 + u / group, h = kvh * group + u % group;
            w->qp[u] = q + i * qs + (size_t)h * D;
            w->gp[u] = dout + i * qs + (size_t)h * D;
            w->sub[u] = lse[(size_t)h * N + i];
        }
        attn_scores_n(w->p, lds, nq, w->qp, w->kt + j0, S, Lmax, D, scale, w->sub, NULL);
        for (int u = 0; u < nq; u++)
            sr_cpu_exp_array(w->p + u * lds, w->p + u * lds, L0 + u / group);
        if (need_ds) {
            for (int u = 0; u < nq; u++) {
                /* Dsum in the order of attn_scores' dP: a lone key (out = v) gives dS = 0 */
                const float *oi = out + (i0 + u / group) * qs + (size_t)(kvh * group + u % group) * D;
                float de = 0.0f, dd = 0.0f;
                for (int d = 0; d < D; d += 2) de += w->gp[u][d] * oi[d];
                for (int d = 1; d < D; d += 2) dd += w->gp[u][d] * oi[d];
                w->sub[u] = de + dd;
            }
            /* dS = P (dP - Dsum) */
            attn_scores_n(w->ds, lds, nq, w->gp, w->vt + j0, S, Lmax, D, 1.0f, w->sub, w->p);
            if (dq) {
                for (int u = 0; u < nq; u++) {
                    w->dqp[u] = w->dq + (size_t)u * D;
                    memset(w->dqp[u], 0, (size_t)D * sizeof(float));
                }
                const float *kj = kseg + (size_t)j0 * ks;
                attn_wsum_n(w->dqp, nq, w->ds, lds, kj, ks, L0, D);
                for (int u = group; u < nq; u++)
                    attn_wsum(w->dqp[u], w->ds + u * lds + L0, kj + (size_t)L0 * ks, ks, u / group, D);
                for (int u = 0; u < nq; u++) {
                    float *dqi = dq + (i0 + u / group) * qs + (size_t)(kvh * group + u % group) * D;
                    axpy_f32(dqi, scale, w->dqp[u], D);
                }
            }
        }
        if (dv) attn_axpy_n(w->dv + (size_t)j0 * D, L0, nr, group, w->p, lds, w->gp, D);
        if (dk) attn_axpy_n(w->dk + (size_t)j0 * D, L0, nr, group, w->ds, lds, w->qp, D);
    }
    for (int j = 0; j < S; j++) {
        size_t r = (size_t)(a + j) * ks + (size_t)kvh * D;
        if (dk) axpy_f32(dk + r, scale, w->dk + (size_t)j * D, D);
        if (dv) add_f32(dv + r, w->dv + (size_t)j * D, D);
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
        size_t S = (size_t)smax, lds = (S + ATT_KB - 1) / ATT_KB * ATT_KB;
        int nqmax = group >= ATT_QMAX ? group : ATT_QMAX / group * group;
        /* kt, vt, dk, dv, p, ds, dq: a row of kt or vt read past its end (attn_scores) lands
         * in the next array */
        float *mem = calloc(4 * S * D + (2 * lds + D + 1) * nqmax + ATT_KB, sizeof(float));
        void **ptrs = malloc(3 * (size_t)nqmax * sizeof(void *));
        SR_ASSERT(mem && ptrs);
        float *pm = mem + 4 * S * D;
        AttnBwdScratch w = {mem, mem + S * D, mem + 2 * S * D, mem + 3 * S * D, pm,
                            pm + lds * nqmax, pm + 2 * lds * nqmax, (const float **)ptrs,
                            (const float **)ptrs + nqmax, (float **)ptrs + 2 * nqmax,
                            pm + (2 * lds + D) * nqmax, lds};
#pragma omp for schedule(dynamic, 1)
        for (long t = 0; t < total; t++) {
            int kvh = (int)(t % Hkv), s = (int)(t / Hkv);
            attn_backward_segment(&w, dq, dk, dv, dout, q, k, v, out, lse, pos, N, seg[s],
                                  seg[s + 1], kvh, group, Hq, Hkv, D, scale);
        }
        free(ptrs);
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
    size_t lds = (size_t)(maxwin + ATT_KB - 1) / ATT_KB * ATT_KB;
    /* one task per token: each KV head's tile serves its group's query heads, the weighted
     * sums take all Hq heads in one pass over the value rows */
#pragma omp parallel num_threads(cpu_threads_for(be, 4.0 * N * Hq * D * maxwin))
    {
        float *sc = malloc((size_t)Hq * lds * sizeof(float));
        float *tile = calloc((size_t)D * ATT_KB, sizeof(float));
        const float **qp = malloc((size_t)Hq * sizeof *qp);
        float **op = malloc((size_t)Hq * sizeof *op), *ms = malloc(2 * (size_t)Hq * sizeof *ms);
        size_t *xo = malloc((size_t)Hq * sizeof *xo);
        SR_ASSERT(sc && tile && qp && op && ms && xo);
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < N; i++) {
            int L = pos[i] + 1;
            const int32_t *tab = table + (size_t)seq[i] * max_blocks;
            for (int u = 0; u < Hq; u++) {
                qp[u] = q + i * qs + (size_t)u * D;
                op[u] = out + i * qs + (size_t)u * D;
                xo[u] = (size_t)(u / group) * D;
            }
            /* the scores ATT_KB cache rows at a time through a transposed tile: the loop of
             * attn_scores, so each score has the bits of the packed forward's */
            for (int j0 = 0; j0 < L; j0 += ATT_KB) {
                int nk = L - j0 < ATT_KB ? L - j0 : ATT_KB;
                const float *kr[ATT_KB];
                for (int l = 0; l < nk; l++) {
                    int j = j0 + l;
                    kr[l] = kc + ((size_t)tab[j / block] * block + j % block) * ks;
                }
                for (int kvh = 0; kvh < Hkv; kvh++)
                    attn_rows_scores(sc + (size_t)kvh * group * lds + j0, lds, group,
                                     qp + kvh * group, kr, (size_t)kvh * D, nk, D, scale, tile);
            }
            for (int u = 0; u < Hq; u++) {
                ms[u] = attn_softmax_row(sc + u * lds, L, &ms[Hq + u]);
                memset(op[u], 0, (size_t)D * sizeof(float));
            }
            for (int j0 = 0; j0 < L; j0 += block) {
                int nb = L - j0 < block ? L - j0 : block;
                const float *vb = vc + (size_t)tab[j0 / block] * block * ks;
                attn_wsum_off_n(op, Hq, sc + j0, lds, vb, xo, ks, nb, D);
            }
            for (int u = 0; u < Hq; u++) attn_out_finish(op[u], D, ms[u], ms[Hq + u]);
        }
        free(xo);
        free(ms);
        free(op);
        free(qp);
        free(tile);
        free(sc);
    }
}
