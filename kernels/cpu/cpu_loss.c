/*
 * CPU ops, output family: the fused log-softmax / cross-entropy / token log-prob op, and
 * sampling.
 *
 * cross_entropy, per row i of logits [N, V] (one thread per row):
 *   lse = max + log(sum_j exp(x_j - max))  (exp in fp32, the sum in double)
 *   logprob[i] = x[t] - lse  (0 when t = targets[i] < 0)
 *   entropy[i] = log(sum) - (sum_j exp(x_j - max) (x_j - max)) / sum  (fp64 sums; 0 when t < 0)
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

void sr_cpu_cross_entropy(SrBackend *be, float *logprob, float *entropy, void *logits_,
                          const int32_t *targets, const float *weights, float grad_scale, int N,
                          int V) {
    float *logits = logits_;
#pragma omp parallel for num_threads(cpu_threads_for(be, 4.0 * N * V)) schedule(dynamic, 1)
    for (int i = 0; i < N; i++) {
        float *x = logits + (size_t)i * V;
        int t = targets[i];
        SR_ASSERT(t < V);
        if (t < 0) {
            if (logprob) logprob[i] = 0.0f;
            if (entropy) entropy[i] = 0.0f;
            if (grad_scale != 0.0f) memset(x, 0, (size_t)V * sizeof(float));
            continue;
        }
        float m = -INFINITY;
        for (int j = 0; j < V; j++)
            if (x[j] > m) m = x[j];
        double sum = 0.0, ex = 0.0; /* ex = sum_j exp(x_j - m) (x_j - m), for the entropy */
        float xt = x[t];
        if (grad_scale != 0.0f) {
            /* keep exp(x - m) in place: the gradient pass then needs no second expf */
            for (int j = 0; j < V; j++) {
                float d = x[j] - m;
                x[j] = expf(d);
                sum += x[j];
                if (entropy) ex += (double)x[j] * d;
            }
        } else {
            for (int j = 0; j < V; j++) {
                float d = x[j] - m, e = expf(d);
                sum += e;
                if (entropy) ex += (double)e * d;
            }
        }
        double lse = (double)m + log(sum);
        if (logprob) logprob[i] = (float)((double)xt - lse);
        /* H = -sum_j p_j log p_j = log(sum) - sum_j e_j (x_j - m) / sum */
        if (entropy) entropy[i] = (float)(log(sum) - ex / sum);
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

/* Top-k and top-p both look for a cut in the (z desc, id asc) order. Sorting or selecting
 * over every token made the cost grow with the nucleus (a near-uniform row keeps most of
 * V = 151936 ids at p = 0.95), so the row is first cut into SAMPLE_BINS bins of equal width in
 * z, counting tokens and summing their mass per bin in the pass that computes e: the cut lies
 * in one bin, found by a scan over the bins, and only that bin's tokens (a few dozen on any
 * realistic row) are selected exactly. The bin is a non-increasing function of z, so whole
 * bins above the cut are kept and below it dropped, as the rule says. */
#define SAMPLE_BINS 4096

typedef struct {
    float *z;       /* [V] scaled logits */
    float *e;       /* [V] exp(z - max z) */
    float *tmp;     /* [V] quickselect scratch */
    ScoredId *cand; /* [V] the tokens of the bin holding a cut */
    uint16_t *bin;  /* [V] z_bin of each token */
    int *hcount;    /* [SAMPLE_BINS] tokens per bin */
    double *hmass;  /* [SAMPLE_BINS] their mass */
} SampleScratch;

/* bin of z: 0 for the max m, SAMPLE_BINS - 1 for the smallest finite z and -inf (a NaN d,
 * from inf * 0, lands there too: still non-increasing in z) */
static inline int z_bin(float zj, float m, float scale) {
    float d = (m - zj) * scale;
    return d < (float)(SAMPLE_BINS - 1) ? (int)d : SAMPLE_BINS - 1;
}

/* The last token top-p keeps among c[0, n), the tokens of one bin (every token ranked before
 * them is kept and weighs `before`): in the (z desc, id asc) order of c, the last one whose
 * mass strictly before it is < target (the first one overall always). A quickselect on that
 * order (expected O(n)): each round partitions the open range around a pivot and keeps the
 * side the cut lies in, carrying the mass of what is known to be kept before it. */
static ScoredId top_p_last(ScoredId *c, int n, const float *e, double before, double target) {
    int lo = 0, hi = n;
    /* invariant: c[lo] is kept (before < target, or it is the overall first token) */
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
        if (r > lo && cum >= target) break;
        last = c[r];
        cum += e[c[r].id];
    }
    return last;
}

/* keep test: z_j > zthr, or z_j == zthr and j <= jthr (without branches: on a row where
 * top-p keeps a random half of the ids a branch here mispredicts at every other token) */
static inline int kept(float zj, int j, float zthr, int jthr) {
    return (zj > zthr) | ((zj == zthr) & (j <= jthr));
}

/* The top-k / top-p cut of a row as a keep test (zthr, jthr). z, e: the row, full = sum of e;
 * sc->bin, hcount, hmass: the row's bins. */
static void sample_cut(float *zthr_out, int *jthr_out, const float *z, const float *e, int V,
                       const SrSampling *s, double full, SampleScratch *sc) {
    float zthr = -INFINITY;
    int jthr = V; /* keep everything */
    int kb = SAMPLE_BINS; /* top-k drops the bins after kb (none when kb = SAMPLE_BINS) */
    int nk = 0;           /* the tokens of bin kb, in sc->cand */
    if (s->top_k > 0 && s->top_k < V) {
        int above = 0;
        for (kb = 0; above + sc->hcount[kb] < s->top_k; kb++) above += sc->hcount[kb];
        for (int j = 0; j < V; j++)
            if (sc->bin[j] == kb) {
                sc->tmp[nk] = z[j];
                sc->cand[nk++] = (ScoredId){z[j], j};
            }
        zthr = select_kth_largest(sc->tmp, nk, s->top_k - above);
    }
    if (s->top_p < 1.0f) {
        double p = s->top_p > 0.0f ? (double)s->top_p : 0.0; /* p < 0 acts as p = 0 */
        double mass = full, kbmass = 0.0; /* kept mass; that of bin kb's kept tokens */
        if (kb < SAMPLE_BINS) {
            int nkept = 0;
            for (int i = 0; i < nk; i++)
                if (sc->cand[i].z >= zthr) {
                    kbmass += e[sc->cand[i].id];
                    sc->cand[nkept++] = sc->cand[i];
                }
            nk = nkept;
            mass = kbmass;
            for (int b = 0; b < kb; b++) mass += sc->hmass[b];
        }
        double target = p * mass, before = 0.0;
        /* the bin holding the cut: the first whose mass takes the running sum to the target
         * (kb at the latest; bin 0 holds the max, so p = 0 gives bin 0 and its first token) */
        int cb = 0;
        for (;; cb++) {
            double bm = cb == kb ? kbmass : sc->hmass[cb];
            if (before + bm >= target || cb == kb || cb == SAMPLE_BINS - 1) break;
            before += bm;
        }
        int nc = nk;
        if (cb != kb) {
            nc = 0;
            for (int j = 0; j < V; j++)
                if (sc->bin[j] == cb) sc->cand[nc++] = (ScoredId){z[j], j};
        }
        SR_ASSERT(nc > 0);
        ScoredId last = top_p_last(sc->cand, nc, e, before, target);
        zthr = last.z;
        jthr = last.id;
    }
    *zthr_out = zthr;
    *jthr_out = jthr;
}

/* one row; x holds the row's V valid logits */
static void sample_row(int32_t *out_id, float *out_lp, const float *x, int V, const SrSampling *s,
                       uint64_t *rng, SampleScratch *sc) {
    int greedy = !s || s->temperature <= 0.0f;
    float *z = sc->z;
    float T = greedy ? 1.0f : s->temperature; /* x / 1 == x */
    int amax = 0;
    float m = -INFINITY, zmin = INFINITY; /* max z (first on ties); the smallest finite z */
    for (int j = 0; j < V; j++) {
        float v = x[j] / T;
        v = isnan(v) ? -INFINITY : v;
        z[j] = v;
        amax = v > m ? j : amax;
        m = v > m ? v : m;
        float vf = v == -INFINITY ? INFINITY : v;
        zmin = vf < zmin ? vf : zmin;
    }
    if (!isfinite(m)) { /* nothing to normalise: no finite mass, or an infinite one */
        if (!greedy) {
            SR_ASSERT(rng);
            (void)sr_rng_uniform(rng);
        }
        *out_id = amax;
        if (out_lp) *out_lp = NAN;
        return;
    }
    int cut = !greedy && ((s->top_k > 0 && s->top_k < V) || s->top_p < 1.0f);
    float *e = sc->e;
    double full = 0.0;
    float scale = 0.0f;
    if (cut) {
        /* equal-width bins over [zmin, m]; a width that overflows (huge logits) puts every
         * finite z in bin 0, which is still exact, only slower */
        scale = m > zmin ? (float)SAMPLE_BINS / (m - zmin) : 0.0f;
        if (!isfinite(scale)) scale = 0.0f;
        memset(sc->hcount, 0, SAMPLE_BINS * sizeof(int));
        memset(sc->hmass, 0, SAMPLE_BINS * sizeof(double));
        for (int j = 0; j < V; j++) {
            e[j] = expf(z[j] - m);
            full += e[j];
            int b = z_bin(z[j], m, scale);
            sc->bin[j] = (uint16_t)b;
            sc->hcount[b]++;
            sc->hmass[b] += e[j];
        }
    } else {
        for (int j = 0; j < V; j++) {
            e[j] = expf(z[j] - m);
            full += e[j];
        }
    }
    int id = amax;
    if (!greedy) {
        SR_ASSERT(rng);
        float zthr = -INFINITY;
        int jthr = V; /* keep everything */
        /* a dropped token adds an exact 0 (e * 0; e is finite) to the running sums: the same
         * sums as skipping it, without a branch on the keep test; with nothing dropped the
         * kept mass is `full`, the same sum in the same order */
        double total = full;
        int last_kept = amax;
        if (cut) {
            sample_cut(&zthr, &jthr, z, e, V, s, full, sc);
            total = 0.0;
            for (int j = 0; j < V; j++) total += (double)e[j] * (double)kept(z[j], j, zthr, jthr);
        }
        double r = (double)sr_rng_uniform(rng) * total, cum = 0.0;
        id = -1;
        for (int j = 0; j < V; j++) {
            int k = kept(z[j], j, zthr, jthr);
            last_kept = (k & (e[j] > 0.0f)) ? j : last_kept;
            cum += (double)e[j] * (double)k;
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
        sc.bin = malloc((size_t)n_valid * sizeof(uint16_t));
        sc.hcount = malloc(SAMPLE_BINS * sizeof(int));
        sc.hmass = malloc(SAMPLE_BINS * sizeof(double));
        SR_ASSERT(sc.z && sc.e && sc.tmp && sc.cand && sc.bin && sc.hcount && sc.hmass);
#pragma omp for schedule(dynamic, 1)
        for (int b = 0; b < B; b++)
            sample_row(out_ids + b, out_logprob ? out_logprob + b : NULL, logits + (size_t)b * V,
                       n_valid, s ? s + b : NULL, rng ? rng + b : NULL, &sc);
        free(sc.z);
        free(sc.e);
        free(sc.tmp);
        free(sc.cand);
        free(sc.bin);
        free(sc.hcount);
        free(sc.hmass);
    }
}
