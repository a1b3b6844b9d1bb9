/*
 * One optimizer step over a global batch: the building block the SFT and GRPO trainers call.
 *
 * The global batch is every micro-batch of every data-parallel rank; this rank passes its
 * own micro-batches (gradient accumulation). The step:
 *   1. counts the target tokens of the global batch (allreduce), so every micro-batch's
 *      loss is normalised by the GLOBAL count (qwen2_forward_backward_norm): the summed
 *      gradient is the gradient of the global batch's mean loss, however it is split;
 *   2. forward + backward of each micro-batch, gradients accumulated in m->grads;
 *   3. gradients summed over ranks, each rank keeping its own ZeRO-1 slice (reduce-scatter);
 *   4. global gradient norm (slice sums of squares, allreduced) and the clip coefficient;
 *   5. AdamW on the slice with lr = schedule(o->step), the clip folded into grad_scale;
 *   6. parameters all-gathered.
 * If the loss or the gradient norm is NaN/Inf, steps 5-6 are skipped (o->step does not
 * advance), st->nonfinite is set and st->bad_param / st->bad_grad name the first tensor that
 * went non-finite; what to do then (stop, skip the batch) is the trainer's choice.
 */
#ifndef SR_TRAIN_TRAIN_STEP_H
#define SR_TRAIN_TRAIN_STEP_H

#include <stdint.h>

#include "../common/error.h"
#include "../model/model.h"
#include "optim.h"

/* One micro-batch: host arrays of N tokens, as qwen2_forward takes them. */
typedef struct SrMicroBatch {
    const int32_t *ids, *pos, *targets;
    const float *weights; /* NULL: every target weighs 1 */
    int N;
} SrMicroBatch;

typedef struct SrStepStats {
    double loss;         /* mean loss over the target tokens of the global batch */
    double grad_norm;    /* L2 norm of the full gradient, before clipping */
    double clip_coef;    /* what the gradient was multiplied by (1: not clipped) */
    double lr;           /* learning rate of this update */
    double n_tokens;     /* tokens in the global batch */
    double n_targets;    /* target tokens (targets >= 0) in the global batch */
    int nonfinite;       /* 1: NaN/Inf in loss or grad norm; no update was made */
    char bad_param[96];  /* first parameter tensor with a non-finite value ("" if none) */
    char bad_grad[96];   /* first gradient tensor (in backward order) non-finite ("" if none) */
} SrStepStats;

/* Runs one optimizer step (above) on this rank's n_micro micro-batches (n_micro may be 0 on
 * a rank that has no data this step; it still takes part in the collectives). Returns 0 (also
 * when the step was non-finite: see st->nonfinite), or -1 with err set when a micro-batch is
 * invalid on any rank (no update is made then, on any rank). */
int sr_train_step(SrOptimizer *o, const SrLrSchedule *sched, const SrMicroBatch *mb, int n_micro,
                  SrStepStats *st, SrError *err);

/* Steps 3-6 alone, for a trainer whose own loss filled m->grads (GRPO: grpo_loss.h): every
 * rank has accumulated its part of the global batch's gradient and set st->loss to the
 * global loss (and st->n_tokens, st->n_targets as it counts them); reduce, norm, clip, AdamW,
 * gather, with st->nonfinite as above. Collective. Returns 0. */
int sr_train_step_apply(SrOptimizer *o, const SrLrSchedule *sched, SrStepStats *st);

#endif
