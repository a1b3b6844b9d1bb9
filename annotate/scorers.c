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

#include "../train/model_stats.h"

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

/* log-softmax of row x[V] in place; returns nothing, x becomes log p */
static void log_softmax_row(float *x, int V) {
    float m = -INFINITY;
    for (int j = 0; j < V; j++) m = x[j] > m ? x[j] : m;
    double sum = 0;
    for (int j = 0; j < V; j++) sum += expf(x[j] - m);
    float lse = m + (float)log(sum);
    for (int j = 0; j < V; j++) x[j] -= lse;
}

/* entropy (nats) of a log-prob row */
static double entropy_row(const float *lp, int V) {
    double h = 0;
    for (int j = 0; j < V; j++) h -= (double)expf(lp[j]) * lp[j];
    return h;
}

/* KL(p || q) of two log-prob rows */
static double kl_row(const float *lp, const float *lq, int V) {
    double k = 0;
    for (int j = 0; j < V; j++) k += (double)expf(lp[j]) * (lp[j] - lq[j]);
    return k > 0 ? k : 0;
}

/* the per-row statistic on the host (entropy of the small model, or the KL) for rows
 * [r0, r0 + k) with valid[r] set, into s->stat[r] */
static int host_stats(Scorer *s, int r0, int k, const unsigned char *valid, SrError *err) {
    int V = s->small->cfg.vocab_size;
    int need_big = s->method == SCORER_GAP;
    if (qwen2_hidden_logits(s->small, r0, k, s->ls, err)) return -1;
    if (need_big && qwen2_hidden_logits(s->big, r0, k, s->lb, err)) return -1;
#pragma omp parallel for schedule(static)
    for (int r = 0; r < k; r++) {
        if (!valid[r0 + r]) continue;
        float *ls = s->ls + (size_t)r * V;
        log_softmax_row(ls, V);
        if (!need_big) {
            s->stat[r0 + r] = (float)entropy_row(ls, V);
        } else {
            float *lb = s->lb + (size_t)r * V;
            log_softmax_row(lb, V);
            s->stat[r0 + r] = (float)kl_row(lb, ls, V);
        }
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
    memcpy(full, prompt, (size_t)np * sizeof(int32_t));
    memcpy(full + np, ids, (size_t)n * sizeof(int32_t));
    int32_t *pos = sr_malloc((size_t)W * sizeof(int32_t));
    for (int i = 0; i < W; i++) pos[i] = i;
    unsigned char *valid = sr_malloc((size_t)W);
    reserve(s, W);
    int V = s->small->cfg.vocab_size;
    int need_host = s->method == SCORER_ENTROPY || s->gap_score != GAP_LOGPROB;
    int need_lp = s->method == SCORER_GAP && s->gap_score != GAP_KL;
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
