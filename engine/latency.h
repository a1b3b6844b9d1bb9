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
 *
 * What the numbers mean (all seconds, all as ONE sequence sees them, since T_split is the
 * latency of one sequence):
 *   tau[b][c]  the wall time of one decode step of a batch of batches[b] sequences, each at
 *              context contexts[c]: the time a sequence waits for each of its tokens. It is
 *              NOT divided by the batch (that would be a throughput cost).
 *   pi[d]      the wall time of one catch-up pass of deltas[d] new tokens of one sequence
 *              against a cache of pi_context positions.
 *   sigma      what a switch costs beyond its two catch-up passes (bench latency measures
 *              pi(1) - tau(1, pi_context): the extra of a catch-up pass over a decode step,
 *              clamped at 0; the roofline tables state a launch/scheduling overhead).
 * Lookups:
 *   tau        bilinear in (log batch, log context) inside the grid; a batch outside the grid
 *              takes the nearest grid batch; a context below the grid takes the first column,
 *              one above it extrapolates linearly in the context from the last two columns
 *              (the KV bytes read grow linearly with it; the slope is clamped at >= 0).
 *   pi(Δ)      linear in Δ between grid points, linear extrapolation from the two nearest
 *              points beyond them (slope clamped at >= 0, result at >= 0); pi(Δ <= 0) = 0
 *              (no catch-up pass at all).
 */
#ifndef SR_ENGINE_LATENCY_H
#define SR_ENGINE_LATENCY_H

#include <stddef.h>

#include "../common/buf.h"
#include "../common/error.h"

/* one of the two models, as the table records it (to check a table against the models used) */
typedef struct LatencyModelInfo {
    char *name;            /* e.g. "DeepSeek-R1-Distill-Qwen-1.5B" or a model directory */
    int hidden_size, num_hidden_layers;
    double num_params;     /* a whole number */
} LatencyModelInfo;

typedef struct LatencyTable {
    char *device;          /* e.g. "NVIDIA H100 80GB HBM3", "cpu (2 cores)" */
    int measured;          /* 1: "measured" by bench latency; 0: "modelled" (roofline) */
    char *note;            /* free text, may be NULL */
    LatencyModelInfo small, big;
    int n_batches, n_contexts, n_deltas;
    int *batches, *contexts, *deltas;   /* each strictly increasing, >= 1 */
    double *tau_s, *tau_b;              /* [n_batches * n_contexts], row = batch */
    double *pi_s, *pi_b;                /* [n_deltas] */
    int pi_context;                     /* the cache length pi was measured against */
    double sigma;
    char *settings;                     /* the "settings" object as JSON text, or NULL */
} LatencyTable;

int latency_table_load(LatencyTable **out, const char *path, SrError *err);
void latency_table_free(LatencyTable *t);
/* T_split of one sequence decoded at batch size `batch`, ending at context length ctx:
 * small_tokens * tau_s + big_tokens * tau_b + sum_i (pi_b(delta_big[i]) + pi_s(delta_small[i]) + sigma)
 * tau is read at the mean context of the generated tokens, ctx - (small_tokens + big_tokens) / 2
 * (at least 1): exact when tau is linear in the context, as it is on the roofline.
 * delta_big / delta_small may be NULL when n_switches is 0. */
double latency_t_split(const LatencyTable *t, int batch, int ctx, int small_tokens, int big_tokens,
                       int n_switches, const int *delta_big, const int *delta_small);

/* ---- beyond the contract ------------------------------------------------------------------ */
/* Parses a table from text[0, len); errors are one line starting with "path: " and name the
 * field ("t.json: tau_s[1][2]: -0.5 is negative"). latency_table_load reads the file and calls it. */
int latency_table_parse(LatencyTable **out, const char *text, size_t len, const char *path,
                        SrError *err);
/* Checks a table built in memory (bench latency) as the parser checks a file: the same rules,
 * the messages prefixed by `what`. */
int latency_table_check(const LatencyTable *t, const char *what, SrError *err);
/* The table as JSON text (what the loader reads back), appended to b. */
void latency_table_to_json(const LatencyTable *t, SrBuf *b);

typedef enum { LATENCY_SMALL = 0, LATENCY_BIG = 1 } LatencyWhich;
double latency_tau(const LatencyTable *t, LatencyWhich w, int batch, int ctx);
double latency_pi(const LatencyTable *t, LatencyWhich w, int delta);
/* The same sequence's tokens all written by one model, no switches: n_tokens * tau at the mean
 * context, as latency_t_split reads it. T_small_only of the latency-aware reward is
 * latency_t_single(t, LATENCY_SMALL, batch, ctx, small_tokens + big_tokens). */
double latency_t_single(const LatencyTable *t, LatencyWhich w, int batch, int ctx, int n_tokens);

#endif
