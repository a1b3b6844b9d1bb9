/*
 * The latency model of split decoding (DESIGN.md "Latency model"): a table measured once per
 * device and model pair by `splitreason bench latency` (or derived from the roofline until it is
 * measured), read by eval, GRPO's latency-aware reward and the demo.
 *
 *   T_split = sum small tokens * tau_s + sum big tokens * tau_b + sum_switches (pi_b(Δ_b) + pi_s(Δ_s) + sigma)
 *
 * tau_s, tau_b: per-token decode time (seconds) at a batch size and context length, interpolated
 * in the measured grid; pi_s(Δ), pi_b(Δ): the catch-up prefill of Δ tokens; sigma: the fixed cost
 * of a switch. The JSON layout is documented in configs/latency/README.md.
 */
#ifndef SR_ENGINE_LATENCY_H
#define SR_ENGINE_LATENCY_H

#include "../common/error.h"

typedef struct LatencyTable LatencyTable; /* defined in latency.c (filled in by its owner) */

int latency_table_load(LatencyTable **out, const char *path, SrError *err);
void latency_table_free(LatencyTable *t);
/* T_split of one sequence decoded at batch size `batch`, ending at context length ctx:
 * small_tokens * tau_s + big_tokens * tau_b + sum_i (pi_b(delta_big[i]) + pi_s(delta_small[i]) + sigma) */
double latency_t_split(const LatencyTable *t, int batch, int ctx, int small_tokens, int big_tokens,
                       int n_switches, const int *delta_big, const int *delta_small);
#endif
