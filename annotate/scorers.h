/*
 * Per-token difficulty of a trace from local models, teacher-forced on [prompt ; trace]:
 *
 *   gap      d_i = log p_big(t_i | t_<i) - log p_small(t_i | t_<i)
 *            (how much better the big model predicts the token; gap_score "logprob"),
 *            or KL(p_big(. | t_<i) || p_small(. | t_<i)) ("kl"), or their sum ("logprob+kl")
 *   entropy  d_i = H(p_small(. | t_<i))  (nats)
 *
 * The models must share a tokenizer (same ids). Traces longer than `window` tokens are scored
 * in windows of `window` tokens; each window after the first starts `context` tokens before
 * the first token it scores, so every token is predicted from at least that much context.
 * A trace token with no context at all (the first, when there is no prompt) gets the median
 * difficulty. Logits are made a chunk of rows at a time (model/model_stats.h): the full
 * [N, V] never exists; log-probs are computed on the device, KL and entropy on the host.
 */
#ifndef SR_ANNOTATE_SCORERS_H
#define SR_ANNOTATE_SCORERS_H

#include <stdint.h>

#include "../common/error.h"
#include "../model/model.h"

typedef enum { SCORER_GAP = 0, SCORER_ENTROPY = 1 } ScorerMethod;
typedef enum { GAP_LOGPROB = 0, GAP_KL = 1, GAP_LOGPROB_KL = 2 } GapScore;

typedef struct Scorer {
    ScorerMethod method;
    GapScore gap_score;
    Qwen2Model *small, *big;   /* big: gap only */
    int window, context;
    /* scratch (host) */
    float *ls, *lb;            /* [chunk, V] logits of small / big */
    int32_t *tgt;
    float *lp_s, *lp_b, *stat;
    int cap;
} Scorer;

/* Checks the models agree (vocab) and clamps window to max_position_embeddings. */
int scorer_init(Scorer *s, ScorerMethod method, GapScore gap_score, Qwen2Model *small,
                Qwen2Model *big, int window, int context, SrError *err);
void scorer_free(Scorer *s);

/* difficulty[0..n) for trace ids[0..n) following prompt ids[0..np) (np may be 0). */
int scorer_run(Scorer *s, const int32_t *prompt, int np, const int32_t *ids, int n,
               float *difficulty, SrError *err);

#endif
