/*
 * Teacher-forced evaluation rows on the kept hidden states (model/model_stats.h's
 * qwen2_hidden_forward): per row, the log-prob of the target and the argmax of the
 * next-token distribution, a chunk of rows at a time on the device, without the [N, V]
 * logits existing at once. The SFT trainer's held-out loss and tag metrics use it.
 */
#ifndef SR_MODEL_MODEL_EVAL_H
#define SR_MODEL_MODEL_EVAL_H

#include <stdint.h>

#include "model.h"

/* Rows [r0, r0 + n) of the last qwen2_hidden_forward: logprob[i] = log p(targets[i]) (0 where
 * targets[i] < 0), argmax[i] = the most likely next id (lowest id on ties). Either output
 * may be NULL. */
int qwen2_hidden_eval(Qwen2Model *m, int r0, int n, const int32_t *targets, float *logprob,
                      int32_t *argmax, SrError *err);

#endif
