/*
 * The accuracy-versus-cost picture of split decoding: labelled points (a model alone, a split
 * run, the random-switch baseline, a GRPO run at some latency penalty) on two panels, accuracy
 * against modelled latency and accuracy against offload share, as one SVG. What `demo` and
 * `sweep` draw; the reference points (small-only, big-only, random switch) are drawn hollow,
 * the runs filled, so the eye finds the frontier the method reaches between the two models.
 */
#ifndef SR_EVAL_PARETO_H
#define SR_EVAL_PARETO_H

#include "../common/error.h"

typedef struct ParetoPoint {
    const char *label;
    double accuracy;         /* 0..1 */
    double modelled_latency; /* seconds per sample (NaN: not drawn on that panel) */
    double offload_share;    /* 0..1 */
    int reference;           /* 1: a baseline (hollow marker), 0: a run (filled) */
} ParetoPoint;

/* Writes the SVG atomically to path; title heads it (e.g. the benchmark and the seeds). */
int pareto_svg(const char *path, const char *title, const ParetoPoint *pts, int n, SrError *err);

#endif
