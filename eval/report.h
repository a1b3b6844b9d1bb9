/*
 * What eval reports: unbiased pass@k, and the summary of a run's samples (accuracy, tokens
 * per model, offload share, switches, modelled latency and its speed-ups, wall time), written
 * as summary.json and printed as a table.
 *
 * pass@k (Chen et al. 2021, the Codex paper) of one problem with n samples of which c are
 * correct: 1 - C(n-c, k) / C(n, k), computed as 1 - prod_{i=n-c+1..n} (1 - k/i) so that no
 * binomial coefficient is formed (C(64, 32) already loses digits in a double). A benchmark's
 * pass@k is the mean over its problems; pass@1 is the mean fraction correct.
 */
#ifndef SR_EVAL_REPORT_H
#define SR_EVAL_REPORT_H

#include <stdio.h>

#include "../common/buf.h"
#include "../common/error.h"

/* NAN when the arguments are impossible (k < 1, k > n, c < 0, c > n) */
double eval_pass_at_k(int n, int c, int k);

/* One finished (problem, sample): what the summary needs of a samples.jsonl row. */
typedef struct EvalRow {
    int problem;          /* index into the benchmark's problems */
    int sample;           /* 0 .. K-1 */
    int correct;
    int small_tokens, big_tokens, switches;
    int has_latency;      /* a latency table was given */
    double latency;       /* modelled T_split (s) */
    double latency_small; /* the same tokens all on the small model */
    double latency_big;   /* ... all on the big model */
    double wall_time_s;
} EvalRow;

typedef struct EvalSummary {
    int n_problems, k, n_samples;
    double pass_at_1, pass_at_k;
    double small_tokens_per_sample, big_tokens_per_sample;
    double offload_share;       /* big tokens / all generated tokens, over all samples */
    double switches_per_sample;
    int has_latency;
    double modelled_latency;    /* mean per sample (s) */
    double speedup_vs_small;    /* sum T_small_only / sum T_split */
    double speedup_vs_big;      /* sum T_big_only / sum T_split */
    double sample_wall_time_s;  /* mean per sample */
} EvalSummary;

/* rows: every (problem, sample) of n_problems x k exactly once (checked by the caller). */
void eval_summarize(const EvalRow *rows, int n_rows, int n_problems, int k, EvalSummary *s);
/* summary.json's fields after "{" (the caller adds its own: benchmark, mode, settings) */
void eval_summary_json(SrBuf *b, const EvalSummary *s, double wall_time_s);
/* Reads a run's summary.json back (what eval_summary_json wrote, with its wall_time_s; a null
 * modelled latency leaves has_latency 0 and the latency fields NAN). -1 with err naming the file
 * and the field when one is missing or not a number. What demo and sweep read each run with. */
int eval_summary_read(const char *path, EvalSummary *s, double *wall_time_s, SrError *err);
/* The random_switch settings that match a split run of offload share `share` with `switches`
 * spans and `big_tokens` big tokens per sample: the same share (clamped into (0, 0.95]: eval
 * takes a share in (0, 1), and a run that never offloaded gets a vanishing one) in spans as long
 * as the run's on average (16 when it had none), as eval's --random-share / --random-span text. */
void eval_random_switch_args(double share, double switches, double big_tokens, char share_arg[32],
                             char span_arg[32]);
void eval_summary_print(FILE *f, const EvalSummary *s, const char *benchmark, const char *mode,
                        double wall_time_s);

#endif
