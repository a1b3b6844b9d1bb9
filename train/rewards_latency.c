/*
 * The latency reward from a latency table (train/rewards.h). Apart from rewards.c because it
 * needs engine/latency.c: a program that does not price latency does not link it.
 */
#include "rewards.h"

SrReward reward_latency(const LatencyTable *t, int batch, const RolloutAccount *a, double lambda) {
    double t_split = latency_t_split(t, batch, a->ctx, a->small_tokens, a->big_tokens,
                                     a->switches, a->delta_big, a->delta_small);
    /* the same tokens, all decoded by the small model: no span, no switch */
    double t_small = latency_t_split(t, batch, a->ctx, a->small_tokens + a->big_tokens, 0, 0,
                                     NULL, NULL);
    return reward_latency_value(t_split, t_small, lambda);
}
