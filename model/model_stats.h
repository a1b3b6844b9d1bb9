/*
 * Teacher-forced scoring without materialising the [N, V] logits: run the layer stack once,
 * keep the final hidden states, then produce logits (or target log-probs) a chunk of rows at a
 * time. Used by the annotator's scorers, which need two models' next-token distributions side
 * by side (log-prob gap, KL) or the entropy of one; each model keeps its own hidden states, so
 * the chunks of both can be interleaved.
 *
 *   qwen2_hidden_forward(m, ids, pos, N)        layers + final norm; states kept in m
 *   qwen2_hidden_logits(m, r0, n, logits)       host fp32 logits of rows [r0, r0+n)
 *   qwen2_hidden_logprob(m, r0, n, tgt, lp)     log p(tgt[i]) of rows [r0, r0+n), on the device
 *
 * The states live in the model's inference workspace: a qwen2_logits call or an engine pass
 * in between overwrites them (qwen2_forward/backward do not), and
 * qwen2_release_workspace(QWEN2_WS_INFER) drops them.
 */
#ifndef SR_MODEL_MODEL_STATS_H
#define SR_MODEL_MODEL_STATS_H

#include "model.h"

int qwen2_hidden_forward(Qwen2Model *m, const int32_t *ids, const int32_t *pos, int N, SrError *err);
/* rows per qwen2_hidden_logits call (the lm_head chunk) */
int qwen2_hidden_chunk(const Qwen2Model *m);
int qwen2_hidden_logits(Qwen2Model *m, int r0, int n, float *logits, SrError *err);
/* targets < 0 give 0. Any n (chunked inside). */
int qwen2_hidden_logprob(Qwen2Model *m, int r0, int n, const int32_t *targets, float *logprob,
                         SrError *err);

#endif
