/*
 * Difficulty scorers (see scorers.h).
 *
 * Shapes: a window holds W tokens w[0..W); row r of a model's output predicts w[r+1]. The
 * rows that count in a window are those predicting a position in [score_from, window end),
 * where score_from is the first position the previous window did not score (and at least the
 * first trace position).
 */
#include "scorers.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../model/model_stats.h"

#define HOST_CHUNK 64 /* rows of host logits at a time: 64 x V floats per model */

int scorer_init(Scorer *s, ScorerMethod method, GapScore gap_score, Qwen2Model *small,
                Qwen2Model *big, int window, int context, SrError *err) {
    memset(s, 0, sizeof *s);
    s->method = method;
    s->gap_score = gap_score;
    s->small = small;
    s->big = big;
    if (!small) return sr_fail(err, "the scorer needs the small model (--small)");
    if (method == SCORER_GAP) {
        if (!big) return sr_fail(err, "the gap scorer needs the big model (--big)");
        if (big->cfg.vocab_size != small->cfg.vocab_size)
            return sr_fail(err, "the small and big models have different vocab sizes (%d, %d): "
                           "they must share a tokenizer", small->cfg.vocab_size, big->cfg.vocab_size);
    }
    int maxpos = small->cfg.max_position_embeddings;
    if (big && method == SCORER_GAP && big->cfg.max_position_embeddings < maxpos)
        maxpos = big->cfg.max_position_embeddings;
    if (window <= 0 || window > maxpos) window = maxpos;
    if (window < 2) return sr_fail(err, "--window-tokens must be >= 2");
    if (context < 1) context = 1;
    if (context >= window) context = window / 2;
    s->window = window;
    s->context = context;
    return 0;
}

void scorer_free(Scorer *s) {
    free(s->ls);
    free(s->lb);
    free(s->tgt);
    free(s->lp_s);
    free(s->lp_b);
    free(s->stat);
    memset(s, 0, sizeof *s);
}

static void reserve(Scorer *s, int W) {
    if (W <= s->cap) return;
    s->cap = W;
    s->tgt = sr_realloc(s->tgt, (size_t)W * sizeof(int32_t));
    s->lp_s = sr_realloc(s->lp_s, (size_t)W * sizeof(float));
    s->lp_b = sr_realloc(s->lp_b, (size_t)W * sizeof(float));
    s->stat = sr_realloc(s->stat, (size_t)W * sizeof(float));
}

/* exp for x <= 0 (arguments here are logit - max), 4 lanes at a time with GCC vector
 * extensions (glibc's expf is scalar, and the host statistics are exp over V per token):
 * Cephes' expf polynomial on x = k ln2 + r, |r| <= ln2/2, times 2^k built in the exponent
 * bits; relative error ~2e-7. */
typedef float v4f __attribute__((vector_size(16)));  /* 4 lanes: SSE2, the x86-64 baseline */
typedef int32_t v4i __attribute__((vector_size(16)));

static inline v4f exp_neg4(v4f x) {
    const v4f lo = {-87, -87, -87, -87};
    v4i keep = x > lo;
    x = (v4f)(((v4i)x & keep) | ((v4i)lo & ~keep));
    /* k = round(x / ln2): x <= 0, so truncating x/ln2 - 0.5 rounds to nearest */
    v4i ki = __builtin_convertvector(x * 1.44269504088896341f - 0.5f, v4i);
    v4f k = __builtin_convertvector(ki, v4f);
    v4f r = x - k * 0.693359375f + k * 2.12194440e-4f;
    v4f p = r * 1.9875691500e-4f + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    p = p * r * r + r + 1.0f;
    return p * (v4f)((ki + 127) << 23);
}

static inline float hsum4(v4f v) {
    return (v[0] + v[1]) + (v[2] + v[3]);
}

/* an unaligned 16-byte load (a plain vector load: sanitizers check it inline) */
typedef float v4fu __attribute__((vector_size(16), aligned(4)));
static inline v4f load4(const float *p) { return *(const v4fu *)p; }

#define BLOCK 2048 /* float partial sums per block, blocks summed in double */

static float row_max(const float *x, int V) {
    v4f m4 = {-INFINITY, -INFINITY, -INFINITY, -INFINITY};
    int j = 0;
    for (; j + 4 <= V; j += 4) {
        v4f v = load4(x + j);
        v4i gt = v > m4;
        m4 = (v4f)(((v4i)v & gt) | ((v4i)m4 & ~gt));
    }
    float m = m4[0];
    for (int k = 1; k < 4; k++) m = m4[k] > m ? m4[k] : m;
    for (; j < V; j++) m = x[j] > m ? x[j] : m;
    return m;
}

/* entropy (nats) of softmax(x): with S = sum e^(x-m), T = sum e^(x-m) (x-m),
 * H = log S - T / S (one pass of exp) */
static double entropy_row(const float *x, int V) {
    float m = row_max(x, V);
    double S = 0, T = 0;
    int j = 0;
    for (int b = 0; b + 4 <= V; b += BLOCK) {
        int e = b + BLOCK < V ? b + BLOCK : V - (V - b) % 4;
        v4f s = {0}, t = {0};
        for (j = b; j < e; j += 4) {
            v4f d = load4(x + j) - m, p = exp_neg4(d);
            s += p;
            t += p * d;
        }
        S += hsum4(s);
        T += hsum4(t);
    }
    for (; j < V; j++) {
        double d = x[j] - m, p = exp(d);
        S += p;
        T += p * d;
    }
    return log(S) - T / S;
}

/* One pass over both models' logits of a row: lse_b, lse_s (lse = m + log S,
 * S = sum e^(x-m)) and KL(softmax(xb) || softmax(xs)) = sum pb (xb - xs) - lse_b + lse_s
 * with pb = e^(xb-mb) / Sb. The log-probs of target t follow: x[t] - lse. */
static void gap_row(const float *xb, const float *xs, int V, int t, float *lpb, float *lps, float *kl) {
    float mb = row_max(xb, V), ms = row_max(xs, V);
    double Sb = 0, Ss = 0, U = 0;
    int j = 0;
    for (int b = 0; b + 4 <= V; b += BLOCK) {
        int e = b + BLOCK < V ? b + BLOCK : V - (V - b) % 4;
        v4f sb = {0}, ss = {0}, u = {0};
        for (j = b; j < e; j += 4) {
            v4f a = load4(xb + j), c = load4(xs + j), pb = exp_neg4(a - mb);
            sb += pb;
            ss += exp_neg4(c - ms);
            u += pb * (a - c);
        }
        Sb += hsum4(sb);
        Ss += hsum4(ss);
        U += hsum4(u);
    }
    for (; j < V; j++) {
        double pb = exp((double)xb[j] - mb);
        Sb += pb;
        Ss += exp((double)xs[j] - ms);
        U += pb * ((double)xb[j] - xs[j]);
    }
    double lse_b = (double)mb + log(Sb), lse_s = (double)ms + log(Ss);
    double k = U / Sb - lse_b + lse_s;
    *kl = k > 0 ? (float)k : 0.0f;
    *lpb = (float)((double)xb[t] - lse_b);
    *lps = (float)((double)xs[t] - lse_s);
}

/* Host statistics for rows [r0, r0 + k) with valid[r] set: the small model's entropy
 * (s->stat), or, for the gap, both log-probs (s->lp_b, s->lp_s) and the KL (s->stat). */
static int host_stats(Scorer *s, int r0, int k, const unsigned char *valid, SrError *err) {
    int V = s->small->cfg.vocab_size;
    int gap = s->method == SCORER_GAP;
    if (qwen2_hidden_logits(s->small, r0, k, s->ls, err)) return -1;
    if (gap && qwen2_hidden_logits(s->big, r0, k, s->lb, err)) return -1;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < k; r++) {
        int i = r0 + r;
        if (!valid[i]) continue;
        const float *ls = s->ls + (size_t)r * V;
        if (gap) gap_row(s->lb + (size_t)r * V, ls, V, s->tgt[i], &s->lp_b[i], &s->lp_s[i], &s->stat[i]);
        else s->stat[i] = (float)entropy_row(ls, V);
    }
    return 0;
}

static int cmp_float(const void *a, const void *b) {
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int scorer_run(Scorer *s, const int32_t *prompt, int np, const int32_t *ids, int n,
               float *difficulty, SrError *err) {
    int L = np + n, W = s->window;
    for (int i = 0; i < n; i++) difficulty[i] = NAN;
    if (n == 0) return 0;
    int32_t *full = sr_malloc((size_t)L * sizeof(int32_t));
    if (np > 0) memcpy(full, prompt, (size_t)np * sizeof(int32_t)); /* no prompt: NULL, 0 */
    memcpy(full + np, ids, (size_t)n * sizeof(int32_t));
    int32_t *pos = sr_malloc((size_t)W * sizeof(int32_t));
    for (int i = 0; i < W; i++) pos[i] = i;
    unsigned char *valid = sr_malloc((size_t)W);
    reserve(s, W);
    int V = s->small->cfg.vocab_size;
    /* the log-prob gap alone runs on the device (fused cross-entropy); anything else, and
     * everything on the CPU backend (where the logits are host memory anyway and the vector
     * exp above is faster than the op's scalar one), goes through host_stats */
    int on_cpu = s->small->be->device == SR_DEVICE_CPU;
    int need_host = s->method == SCORER_ENTROPY || s->gap_score != GAP_LOGPROB || on_cpu;
    int need_lp = s->method == SCORER_GAP && s->gap_score != GAP_KL && !need_host;
    int rc = 0;
    /* positions [score_from, end) are scored by the window [start, end): the first window
     * starts at 0, each later one `context` tokens before the first position it scores */
    int score_from = np > 0 ? np : 1, first_window = 1;
    while (score_from < L && !rc) {
        int start = first_window && score_from < W ? 0 : score_from - s->context;
        if (start < 0) start = 0;
        first_window = 0;
        int end = start + W < L ? start + W : L, Wn = end - start;
        const int32_t *w = full + start;
        for (int r = 0; r < Wn; r++) {
            int p = start + r + 1; /* position predicted by row r */
            valid[r] = r + 1 < Wn && p >= score_from;
            s->tgt[r] = valid[r] ? w[r + 1] : -1;
        }
        rc = qwen2_hidden_forward(s->small, w, pos, Wn, err);
        if (!rc && s->method == SCORER_GAP) rc = qwen2_hidden_forward(s->big, w, pos, Wn, err);
        if (!rc && need_lp) {
            rc = qwen2_hidden_logprob(s->small, 0, Wn, s->tgt, s->lp_s, err);
            if (!rc) rc = qwen2_hidden_logprob(s->big, 0, Wn, s->tgt, s->lp_b, err);
        }
        if (!rc && need_host) {
            int chunk = HOST_CHUNK;
            if (!s->ls) s->ls = sr_malloc((size_t)chunk * V * sizeof(float));
            if (!s->lb && s->method == SCORER_GAP) s->lb = sr_malloc((size_t)chunk * V * sizeof(float));
            /* only chunks holding valid rows */
            int first = 0;
            while (first < Wn && !valid[first]) first++;
            for (int r0 = first; r0 < Wn && !rc; r0 += chunk) {
                int k = Wn - r0 < chunk ? Wn - r0 : chunk;
                rc = host_stats(s, r0, k, valid, err);
            }
        }
        for (int r = 0; r < Wn && !rc; r++) {
            if (!valid[r]) continue;
            int i = start + r + 1 - np; /* trace token index */
            float d;
            if (s->method == SCORER_ENTROPY) d = s->stat[r];
            else if (s->gap_score == GAP_LOGPROB) d = s->lp_b[r] - s->lp_s[r];
            else if (s->gap_score == GAP_KL) d = s->stat[r];
            else d = s->lp_b[r] - s->lp_s[r] + s->stat[r];
            difficulty[i] = d;
        }
        score_from = end;
    }
    free(valid);
    free(pos);
    free(full);
    if (rc) return -1;
    /* tokens nothing predicted (the first, without a prompt): the median */
    float *tmp = sr_malloc((size_t)n * sizeof(float));
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(difficulty[i])) tmp[k++] = difficulty[i];
    float med = 0;
    if (k > 0) {
        qsort(tmp, (size_t)k, sizeof(float), cmp_float);
        med = tmp[k / 2];
    }
    for (int i = 0; i < n; i++)
        if (isnan(difficulty[i])) difficulty[i] = med;
    free(tmp);
    return 0;
}
