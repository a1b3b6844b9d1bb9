/*
 * The trainer harness: what every trainer (SFT today, GRPO next) does around its own step.
 *
 * A trainer embeds a TrainHarness and calls, in this order:
 *
 *   harness_init(&h, &ho, comm, effective_config)   settings, clock; no I/O
 *   ... the trainer's setup: model, data, steps ...
 *   harness_mfu_init(&h, &model_cfg, &be, peak_tflops)   FLOPs per token, the device's peak
 *   h.total_steps = ...; h.start_step = ...
 *   harness_restore_history(&h, history, err)       when resuming: log history + metrics.jsonl
 *   harness_open_outputs(&h, err)                    output_dir/metrics.jsonl, TensorBoard
 *   per step:
 *       ... the trainer's step -> SrStepStats st, its seconds dt ...
 *       harness_step_done(&h, &st, harness_train_flops(&h, st.n_tokens, keys), dt)
 *       at a logging step: harness_mfu(&h, flops, dt), the window (h.win_*), then
 *       harness_window_reset(&h)
 *       harness_record(&h, rec)                      one metrics.jsonl object (+ log_history)
 *       harness_scalar(&h, "train/loss", step, v)    one TensorBoard scalar
 *       harness_progress(&h, step, full, "loss %.4f | ...", ...)  the stderr line with ETA
 *   harness_free(&h)
 *
 * Only rank 0 (h.root) writes files and stderr lines; every call may be made on every rank.
 */
#ifndef SR_TRAIN_HARNESS_H
#define SR_TRAIN_HARNESS_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "../common/error.h"
#include "../common/tensorboard.h"
#include "../model/model.h"
#include "dist.h"
#include "train_step.h"

/* The settings every trainer shares (TRL TrainingArguments names). Strings are borrowed. */
typedef struct HarnessOptions {
    const char *output_dir;    /* checkpoints, metrics.jsonl */
    const char *logging_dir;   /* TensorBoard events; NULL: output_dir/runs */
    int report_tensorboard;    /* report_to contains "tensorboard" */
} HarnessOptions;

typedef struct TrainHarness {
    HarnessOptions o;
    SrComm *comm;
    int root;                  /* rank 0: the one that writes */
    const cJSON *config;       /* the effective settings (borrowed; may be NULL) */
    int total_steps;           /* optimizer steps of the whole run */
    int start_step;            /* the step this process started (or resumed) from */
    double t_start;            /* sr_now() at harness_init */
    /* the metrics writer */
    FILE *metrics;             /* output_dir/metrics.jsonl, appended */
    SrTBWriter tb;
    int tb_ready, tty;
    cJSON *log_history;        /* every record of the run (trainer_state.json's log_history) */
    /* counters of the whole run (saved in trainer_state.json) */
    double tokens_seen, total_flos, train_seconds;
    /* the logging window: steps since the last logged one */
    double win_loss, win_tokens, win_time;
    int win_steps;
    /* MFU */
    double flops_per_token;    /* 6 x the matmul weights: every token's forward + backward */
    double flops_per_key;      /* attention scores and values, forward + backward, per attended key */
    double peak_flops;         /* per device; 0 = unknown */
} TrainHarness;

void harness_init(TrainHarness *h, const HarnessOptions *o, SrComm *comm, const cJSON *effective_config);
void harness_free(TrainHarness *h);

/* ---- the metrics writer ---- */

/* Opens output_dir/metrics.jsonl (appending) and, with report_tensorboard, an event file in
 * logging_dir (default output_dir/runs). Rank 0 only; a no-op elsewhere. */
int harness_open_outputs(TrainHarness *h, SrError *err);
/* One record: a line of metrics.jsonl and an entry of log_history. Takes ownership of rec. */
void harness_record(TrainHarness *h, cJSON *rec);
/* One TensorBoard scalar (skipped when not finite); a write error stops TensorBoard logging
 * with a warning, the run goes on. */
void harness_scalar(TrainHarness *h, const char *tag, int step, double v);
/* Replaces the log history with a copy of history (a resumed run's) and rewrites
 * output_dir/metrics.jsonl to hold exactly it: what a killed run logged after its checkpoint
 * is dropped, as it will be logged again. Call before harness_open_outputs. */
int harness_restore_history(TrainHarness *h, const cJSON *history, SrError *err);

/* ---- counters and MFU ---- */

/* FLOPs per token of the model's matmuls and attention, and the peak of one device:
 * peak_tflops when > 0, else from the GPU's name (H100/H200, A100, ...; none on the CPU). */
void harness_mfu_init(TrainHarness *h, const Qwen2Config *c, const SrBackend *be, double peak_tflops);
/* FLOPs of a training step (forward + backward) over n_tokens whose attended keys (pos + 1
 * of each token) sum to attended_keys; the embedding lookup is not counted. */
double harness_train_flops(const TrainHarness *h, double n_tokens, double attended_keys);
/* Model FLOPs utilisation of a step of flops (global) in dt seconds over comm->size devices;
 * -1 when the peak is unknown. */
double harness_mfu(const TrainHarness *h, double flops, double dt);
/* Adds an optimizer step to the run's counters and the logging window. */
void harness_step_done(TrainHarness *h, const SrStepStats *st, double flops, double dt);
void harness_window_reset(TrainHarness *h);

/* ---- stderr ---- */

/* "[splitreason] step S/T (P%) | <fields> | eta ..." on rank 0: a full line when full, else a
 * line redrawn in place on a terminal (nothing when stderr is not a terminal). The ETA comes
 * from the time per step since start_step. */
void harness_progress(const TrainHarness *h, int step, int full, const char *fields_fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* Clears a redrawn progress line before a log line (rank 0, terminal only). */
void harness_clear_line(const TrainHarness *h);

#endif
