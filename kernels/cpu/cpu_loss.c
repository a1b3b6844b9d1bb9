/*
 * CPU ops, output family: the fused log-softmax / cross-entropy / token log-prob op, and
 * sampling.
 *
 * cross_entropy, per row i of logits [N, V] (one thread per row):
 *   lse = max + log(sum_j exp(x_j - max))  (exp in fp32, the sum in double)
 *   logprob[i] = x[t] - lse  (0 when t = targets[i] < 0)
 *   if grad_scale != 0: x_j <- grad_scale * w_i * (softmax_j - [j == t]), rows with t < 0 -> 0.
 *
 * sample, per row b of logits [B, V] with the row's own parameters s[b] (T, k, p below) and
 * RNG state rng[b] (the exact rule a GPU backend must reproduce). Only the first n_valid
 * columns are read: the op sees a vocabulary of n_valid ids (V' below).
 *   z = x (greedy) or x / T, with NaN read as -inf; m = max z.
 *   m not finite (every z is -inf, or some is +inf): id = argmax (lowest id on ties), log-prob
 *     NaN, and a sampling row still takes its one draw. Otherwise:
 *   greedy (temperature <= 0): argmax, lowest id on ties; the RNG state is NOT advanced.
 *   otherwise, HF LogitsProcessor order:
 *     top-k (0 < k < V'): keep tokens with z >= the k-th largest z (ties at the edge kept, as HF);
 *     top-p (p < 1): order the kept tokens by z descending, lower id first on ties; keep a token
 *       iff the probability mass (renormalised over the kept set) strictly before it is < p,
 *       and always the first one (= HF: drop the ascending-order prefix whose cumsum <= 1 - p);
 *     draw: u = sr_rng_uniform(&rng[b]) (exactly one draw per row), and return the first kept
 *       token in ascending id order whose running sum of exp(z_j - max z) exceeds u * (kept sum).
 *   out_logprob[b] = log_softmax(z)[id] over the full (all V' ids), untruncated distribution.
 */
#include "ops_cpu.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../../common/rng.h"

/* ---- cross-entropy ----------------------------------------------------------------------- */

void sr_cpu_cross_entropy(SrBackend *be, float *logprob, void *logits_, const int32_t *targets,
                          const float *weights, float grad_scale, int N, int V) {
    float *logits = logits_;
#pragma omp parallel for num_threads(cpu_threads_for(be, 4.0 * N * V)) schedule(dynamic, 1)
    for (int i = 0; i < N; i++) {
        float *x = logits + (size_t)i * V;
        int t = targets[i];
        SR_ASSERT(t < V);
        if (t < 0) {
            if (logprob) logprob[i] = 0.0f;
            if (grad_scale != 0.0f) memset(x, 0, (size_t)V * sizeof(float));
            continue;
        }
        float m = -INFINITY;
        for (int j = 0; j < V; j++)
            if (x[j] > m) m = x[j];
        double sum = 0.0;
        float xt = x[t];
        if (grad_scale != 0.0f) {
            /* keep exp(x - m) in place: the gradient pass then needs no second expf */
            for (int j = 0; j < V; j++) {
                x[j] = expf(x[j] - m);
                sum += x[j];
            }
        } else {
            for (int j = 0; j < V; j++) sum += expf(x[j] - m);
        }
        double lse = (double)m + log(sum);
        if (logprob) logprob[i] = (float)((double)xt - lse);
        if (grad_scale != 0.0f) {
            float coef = grad_scale * (weights ? weights[i] : 1.0f);
            float inv = (float)(1.0 / sum);
            for (int j = 0; j < V; j++) {
                float p = x[j] * inv;
                x[j] = coef * (j == t ? p - 1.0f : p);
            }
        }
    }
}

/* ---- sampling ------------------------------------------------------------------------------ */

typedef struct {
    float z;
    int id;
} ScoredId;

/* z descending, id ascending on ties */
static int scored_cmp(const void *a_, const void *b_) {
    const ScoredId *a = a_, *b = b_;
    if (a->z > b->z) return -1;
    if (a->z < b->z) return 1;
    return (a->id > b->id) - (a->id < b->id);
}

/* k-th largest (k >= 1) of a[0, n), partially reordering a (Hoare quickselect) */
static float select_kth_largest(float *a, int n, int k) {
    int lo = 0, hi = n - 1, target = k - 1;
    while (lo < hi) {
        float pivot = a[lo + (hi - lo) / 2];
        int i = lo, j = hi;
        while (i <= j) {
            while (a[i] > pivot) i++;
            while (a[j] < pivot) j--;
            if (i <= j) {
                float tmp = a[i];
                a[i] = a[j];
                a[j] = tmp;
                i++;
                j--;
            }
        }
        if (target <= j)
            hi = j;
        else if (target >= i)
            lo = i;
        else
            return a[target];
    }
    return a[target];
}

typedef struct {
    float *z;       /* [V] scaled logits */
    float *e;       /* [V] exp(z - max z) */
    float *tmp;     /* [V] quickselect scratch */
    ScoredId *cand; /* [V] top-p candidates */
} SampleScratch;

/* The last token top-p keeps: in the (z desc, id asc) order of c[0, n), the last one whose
 * mass strictly before it is < target (the first one always). A quickselect on that order
 * (expected O(n); a near-uniform distribution keeps almost every candidate, and sorting all
 * of them dominated generation): each round partitions the open range around a pivot and
 * keeps the side the cut lies in, carrying the mass of what is known to be kept before it. */
static ScoredId top_p_last(ScoredId *c, int n, const float *e, double target) {
    int lo = 0, hi = n;
    double before = 0.0; /* mass of the (kept) tokens ranked before c[lo] */
    while (hi - lo > 16) {
        /* median of three as the pivot, moved to the end */
        int a = lo, b = lo + (hi - lo) / 2, d = hi - 1;
        if (scored_cmp(&c[b], &c[a]) < 0) { ScoredId t = c[a]; c[a] = c[b]; c[b] = t; }
        if (scored_cmp(&c[d], &c[a]) < 0) { ScoredId t = c[a]; c[a] = c[d]; c[d] = t; }
        if (scored_cmp(&c[d], &c[b]) < 0) { ScoredId t = c[b]; c[b] = c[d]; c[d] = t; }
        { ScoredId t = c[b]; c[b] = c[d]; c[d] = t; }
        ScoredId piv = c[d];
        int m = lo;
        double left = 0.0; /* mass of the tokens ranked before the pivot */
        for (int i = lo; i < d; i++)
            if (scored_cmp(&c[i], &piv) < 0) {
                left += e[c[i].id];
                ScoredId t = c[i]; c[i] = c[m]; c[m] = t;
                m++;
            }
        { ScoredId t = c[m]; c[m] = c[d]; c[d] = t; } /* the pivot at its rank m */
        if (m > lo && before + left >= target) { /* the pivot is dropped: the cut is before it */
            hi = m;
            continue;
        }
        before += left + e[piv.id]; /* the pivot is kept */
        if (before >= target || m + 1 == hi) return piv;
        lo = m + 1;
    }
    /* a short range: in order, as the rule reads */
    qsort(c + lo, (size_t)(hi - lo), sizeof(ScoredId), scored_cmp);
    ScoredId last = c[lo];
    double cum = before;
    for (int r = lo; r < hi; r++) {
        if (r > 0 && cum >= target) break;
        last = c[r];
        cum += e[c[r].id];
    }
    return last;
}

/* keep test: z_j > zthr, or z_j == zthr and j <= jthr */
static inline int kept(float zj, int j, float zthr, int jthr) {
    return zj > zthr || (zj == zthr && j <= jthr);
}

/* one row; x holds the row's V valid logits */
static void sample_row(int32_t *out_id, float *out_lp, const float *x, int V, const SrSampling *s,
                       uint64_t *rng, SampleScratch *sc) {
    int greedy = !s || s->temperature <= 0.0f;
    float *z = sc->z;
    for (int j = 0; j < V; j++) {
        float v = greedy ? x[j] : x[j] / s->temperature;
        z[j] = isnan(v) ? -INFINITY : v;
    }
    int amax = 0;
    for (int j = 1; j < V; j++)
        if (z[j] > z[amax]) amax = j;
    float m = z[amax];
    if (!isfinite(m)) { /* nothing to normalise: no finite mass, or an infinite one */
        if (!greedy) {
            SR_ASSERT(rng);
            (void)sr_rng_uniform(rng);
        }
        *out_id = amax;
        if (out_lp) *out_lp = NAN;
        return;
    }
    float *e = sc->e;
    double full = 0.0;
    for (int j = 0; j < V; j++) {
        e[j] = expf(z[j] - m);
        full += e[j];
    }
    int id = amax;
    if (!greedy) {
        SR_ASSERT(rng);
        float zthr = -INFINITY;
        int jthr = V; /* keep everything */
        if (s->top_k > 0 && s->top_k < V) {
            memcpy(sc->tmp, z, (size_t)V * sizeof(float));
            zthr = select_kth_largest(sc->tmp, V, s->top_k);
        }
        if (s->top_p < 1.0f) {
            double p = s->top_p > 0.0f ? (double)s->top_p : 0.0; /* p < 0 acts as p = 0 */
            double mass = 0.0;
            int nkept = 0;
            for (int j = 0; j < V; j++)
                if (kept(z[j], j, zthr, jthr)) {
                    mass += e[j];
                    nkept++;
                }
            /* tokens below this share can only lie in the dropped tail (their total mass is
             * under (1-p)/2), so only the others need sorting. The argmax is always kept
             * (mass >= e[amax] = 1), so there is at least one candidate. */
            double floor_e = 0.5 * (1.0 - p) * mass / nkept;
            int nc = 0;
            for (int j = 0; j < V; j++)
                if (kept(z[j], j, zthr, jthr) && e[j] >= floor_e)
                    sc->cand[nc++] = (ScoredId){z[j], j};
            SR_ASSERT(nc > 0);
            ScoredId last = top_p_last(sc->cand, nc, e, p * mass);
            zthr = last.z;
            jthr = last.id;
        }
        double total = 0.0;
        int last_kept = amax;
        for (int j = 0; j < V; j++)
            if (kept(z[j], j, zthr, jthr)) total += e[j];
        double r = (double)sr_rng_uniform(rng) * total, cum = 0.0;
        id = -1;
        for (int j = 0; j < V; j++) {
            if (!kept(z[j], j, zthr, jthr)) continue;
            if (e[j] > 0.0f) last_kept = j;
            cum += e[j];
            if (cum > r) {
                id = j;
                break;
            }
        }
        if (id < 0) id = last_kept; /* rounding: u * total reached the very end */
    }
    *out_id = id;
    if (out_lp) *out_lp = (float)((double)z[id] - (double)m - log(full));
}

void sr_cpu_sample(SrBackend *be, int32_t *out_ids, float *out_logprob, const void *logits_, int B,
                   int V, int n_valid, const SrSampling *s, uint64_t *rng) {
    const float *logits = logits_;
    SR_ASSERT(V > 0 && n_valid >= 1 && n_valid <= V);
    int nt = cpu_threads_for(be, 4.0 * B * n_valid);
    if (nt > B) nt = B > 0 ? B : 1;
#pragma omp parallel num_threads(nt)
    {
        SampleScratch sc;
        sc.z = malloc((size_t)n_valid * sizeof(float));
        sc.e = malloc((size_t)n_valid * sizeof(float));
        sc.tmp = malloc((size_t)n_valid * sizeof(float));
        sc.cand = malloc((size_t)n_valid * sizeof(ScoredId));
        SR_ASSERT(sc.z && sc.e && sc.tmp && sc.cand);
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            sample_row(out_ids + b, out_logprob ? out_logprob + b : NULL, logits + (size_t)b * V,
                       n_valid, s ? s + b : NULL, rng ? rng + b : NULL, &sc);
        free(sc.z);
        free(sc.e);
        free(sc.tmp);
        free(sc.cand);
    }
}
