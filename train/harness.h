/*
 * The trainer harness: everything a trainer (SFT today, GRPO next) does around its own step --
 * the policy + tokenizer + <bigmodel> tags loaded with their checks, schedule and AdamW,
 * the agreement of ranks on failure, checkpoints (pick, save, prune) and exact resume,
 * trainer_state.json, metrics.jsonl + TensorBoard through one writer, MFU, and the progress
 * line with its ETA. A trainer is then: harness setup, its own step, harness logging and
 * checkpointing. It embeds a TrainHarness h and calls, in this order (train/sft.c does):
 *
 *   options:  the trainer's option table takes the shared rows (HARNESS_OPTIMIZER_OPTIONS,
 *             HARNESS_OUTPUT_OPTIONS); harness_options_from_config reads the shared settings
 *             (with their TRL forms) into the trainer options' HarnessOptions harness
 *   harness_init(&h, &o->harness, comm, effective_config)  no I/O yet
 *   setup (harness_start does all of it, given the trainer's part as a callback), every
 *   failure agreed on by all ranks before any collective:
 *     rc = harness_pick_checkpoint(&h, err)              h.ckpt: "" (fresh) or the one to resume
 *     if (!rc) rc = harness_load(&h, err)                backend, communicator, policy, tokenizer
 *     if (!rc) rc = harness_check_fit(&h, "max_length", L, tokens_per_micro_batch, err)
 *     ... the trainer opens its data and sets h.n_sequences, h.global_micro_batch (its own
 *         models, e.g. GRPO's reference, go on h.be) ...
 *     if (!rc) rc = harness_total_steps(&h, units_per_epoch, steps_per_unit, err)  h.total_steps
 *     if (!rc) rc = harness_setup_optim(&h, err)         lr schedule + AdamW over h.total_steps
 *     rc = harness_agree(&h, rc, err, "setup")
 *     if (!rc && h.ckpt[0])                               optimizer, counters, log history,
 *         rc = harness_agree(&h, harness_resume(&h, seek, ctx, err), err, "resume")  data (seek)
 *     ... the trainer restores its own keys (e.g. RNG state) from h.resumed_state ...
 *     if (!rc) rc = harness_agree(&h, harness_open_outputs(&h, err), err, "opening the outputs")
 *     h.start_step = h.opt.step                           (for the ETA)
 *   each optimizer step (step = the one about to be taken):
 *     ... the trainer's micro-batches -> sr_train_step(&h.opt, &h.sched, ...) -> SrStepStats st;
 *         dt its seconds, keys the sum of (pos + 1) over its tokens ...
 *     if (st.nonfinite) { rc = harness_nonfinite(&h, step + 1, &st, err); stop }
 *     step++; h.data_epoch, h.data_cursor = the data position after it
 *     flops = harness_train_flops(&h, st.n_tokens, keys); harness_step_done(&h, &st, flops, dt)
 *     at a logging step: a record of the window (h.win_*, harness_mfu(&h, flops, dt),
 *       harness_epoch(&h)) -> harness_record + harness_scalar, harness_progress(&h, step, 1,
 *       ...), harness_window_reset(&h); in between harness_progress(&h, step, 0, ...)
 *     at a save step: harness_save(&h, step, trainer_keys, err) (trainer_keys: its RNG state)
 *   harness_free(&h)
 *
 * Only rank 0 (h.root) writes files and stderr lines; every call may be made on every rank,
 * and the collective ones (load, setup_optim, agree, resume, save) must be.
 */
#ifndef SR_TRAIN_HARNESS_H
#define SR_TRAIN_HARNESS_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "../common/config.h"
#include "../common/error.h"
#include "../common/tensorboard.h"
#include "../data/tokenizer.h"
#include "../model/model.h"
#include "dist.h"
#include "optim.h"
#include "train_step.h"

/* The settings every trainer shares (TRL TrainingArguments names), embedded in SftOptions and
 * GrpoOptions as .harness. Strings are borrowed. */
typedef struct HarnessOptions {
    const char *model_name_or_path; /* the policy to train (an HF model directory) */
    const char *output_dir;    /* checkpoints, metrics.jsonl */
    const char *logging_dir;   /* TensorBoard events; NULL: output_dir/runs */
    int report_tensorboard;    /* report_to contains "tensorboard" */
    const char *device;        /* "cpu" or "cuda" (the GPU of the local rank) */
    const char *resume_from_checkpoint; /* NULL: fresh; "latest": newest in output_dir; a path */
    int gradient_checkpointing, bf16;
    double learning_rate, weight_decay, adam_beta1, adam_beta2, adam_epsilon, max_grad_norm;
    const char *lr_scheduler_type;
    double min_lr_rate, warmup_ratio, warmup_steps;
    double peak_tflops;        /* per device, for MFU; 0: from the GPU's name (none on the CPU) */
    int save_total_limit;      /* keep the last N checkpoints; 0: all */
    const char *dataset_path;
    int logging_steps, save_steps;
    int eval_steps;            /* SFT's (0: only at the end; GRPO has none), for trainer_state.json */
    int per_device_train_batch_size;
    double num_train_epochs;
    long max_steps;            /* > 0: overrides num_train_epochs */
} HarnessOptions;

typedef struct TrainHarness {
    HarnessOptions o;
    SrComm *comm;
    int root;                  /* rank 0: the one that writes */
    const cJSON *config;       /* the effective settings (borrowed; may be NULL) */
    int total_steps;           /* optimizer steps of the whole run */
    int start_step;            /* the step this process started (or resumed) from */
    double t_start;            /* sr_now() at harness_init */
    char ckpt[4096];           /* the checkpoint resumed from; "" = a fresh run */
    cJSON *resumed_state;      /* after harness_resume: its trainer_state.json, where the trainer
                                  finds its own keys (splitreason.<key>); NULL on a fresh run */
    /* the policy */
    SrBackend be;
    int be_ready;
    Qwen2Model m;
    Tokenizer *tok;
    int32_t open_id, close_id; /* <bigmodel>, </bigmodel> */
    SrOptimizer opt;
    int opt_ready;
    SrLrSchedule sched;
    /* the data: its size and the position after the last step (set by the trainer) */
    long long n_sequences;        /* examples in one epoch */
    long long global_micro_batch; /* examples per micro-batch over all ranks */
    long long data_epoch, data_cursor;
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
    double peak_flops;         /* per device: peak_tflops, or from the GPU's name; 0 = unknown */
} TrainHarness;

/* ---- the shared settings, for a trainer's *_options_from_config ---- */

/* Option-table rows (common/config.h) that SFT and GRPO share word for word, default and help,
 * each run at the place it stands in both tables (so `--help` keeps its order). The shared keys
 * whose TRL default or help differs between SFTConfig and GRPOConfig (learning_rate,
 * num_train_epochs, per_device_train_batch_size, save_steps, seed, ...) stay in each table. */
/* the schedule, AdamW and clipping */
#define HARNESS_OPTIMIZER_OPTIONS \
    {"lr_scheduler_type", SR_OPT_STR, "\"linear\"", "the learning-rate schedule", \
     SR_CHOICES("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_min_lr"), SR_REQUIRED}, \
    {"min_lr_rate", SR_OPT_FLOAT, "null", "cosine_with_min_lr: the floor as a fraction of learning_rate", SR_RANGE(0, 1)}, \
    {"lr_scheduler_kwargs", SR_OPT_JSON, "null", "TRL form of the scheduler settings, e.g. {\"min_lr_rate\": 0.1}"}, \
    {"warmup_ratio", SR_OPT_FLOAT, "0", "linear warmup over this fraction of the steps", SR_RANGE(0, 1)}, \
    {"warmup_steps", SR_OPT_FLOAT, "0", "linear warmup steps (>= 1; overrides warmup_ratio; below 1: a fraction of the steps)", SR_RANGE(0, 1e9)}, \
    {"weight_decay", SR_OPT_FLOAT, "0", "AdamW decoupled weight decay (never on biases and norm weights)", SR_RANGE(0, 1)}, \
    {"adam_beta1", SR_OPT_FLOAT, "0.9", "AdamW beta1", SR_RANGE_X(0, 1, 0, 1)}, \
    {"adam_beta2", SR_OPT_FLOAT, "0.999", "AdamW beta2", SR_RANGE_X(0, 1, 0, 1)}, \
    {"adam_epsilon", SR_OPT_FLOAT, "1e-08", "AdamW epsilon", SR_RANGE_X(0, 1, 1, 0)}, \
    {"max_grad_norm", SR_OPT_FLOAT, "1.0", "clip the global gradient norm to this (0: no clipping)", SR_RANGE(0, 1e9)},
/* TensorBoard and resume */
#define HARNESS_OUTPUT_OPTIONS \
    {"logging_dir", SR_OPT_STR, "null", "TensorBoard event files (default: OUTPUT_DIR/runs)"}, \
    {"report_to", SR_OPT_JSON, "\"tensorboard\"", "\"tensorboard\", \"all\" (the same) or \"none\", or a list of them (metrics.jsonl is always written)", \
     SR_CHOICES("tensorboard", "all", "none")}, \
    {"resume_from_checkpoint", SR_OPT_JSON, "null", "a checkpoint directory, or true: the latest complete one in output_dir"},

/* Reads the shared keys of cfg (the rows of HARNESS_OPTIMIZER_OPTIONS, HARNESS_OUTPUT_OPTIONS
 * and those each trainer lists with its own default or help: model_name_or_path, dataset_path,
 * output_dir, device, learning_rate, num_train_epochs, max_steps, per_device_train_batch_size,
 * logging_steps, save_steps, save_total_limit, gradient_checkpointing, bf16, peak_tflops) into
 * o (strings point into cfg; eval_steps is left 0) and checks the rules between them: max_steps
 * or num_train_epochs, and min_lr_rate for cosine_with_min_lr. */
int harness_options_from_config(HarnessOptions *o, const SrConfig *cfg, SrError *err);

/* min_lr_rate from the key itself or TRL's lr_scheduler_kwargs {"min_lr_rate": x} (which wins);
 * -1 when neither sets it. Any other kwarg is refused. */
int harness_config_min_lr_rate(const SrConfig *cfg, double *min_lr_rate, SrError *err);
/* report_to: "tensorboard", "all", "none" or a list of them; 1 when TensorBoard is wanted. */
int harness_config_report_tensorboard(const SrConfig *cfg);
/* resume_from_checkpoint: null / false / "" -> NULL, true / "true" -> "latest", else the path
 * (pointing into cfg). */
int harness_config_resume(const SrConfig *cfg, const char **resume, SrError *err);

void harness_init(TrainHarness *h, const HarnessOptions *o, SrComm *comm, const cJSON *effective_config);
void harness_free(TrainHarness *h);

/* ---- setup ---- */

/* Which checkpoint to resume from, into h->ckpt: none (""), the given one (refused unless
 * complete), or with "latest" the newest complete one in output_dir ("" and a note when there
 * is none). */
int harness_pick_checkpoint(TrainHarness *h, SrError *err);
/* The backend (device), the communicator attached to it, the policy and its tokenizer with
 * the <bigmodel> tags added (from h->ckpt when resuming, else model_name_or_path), refused
 * when the tokenizer has more ids than the model embeds; MFU's FLOPs and peak. */
int harness_load(TrainHarness *h, SrError *err);
/* Refuses sequences of max_length (named `what` in the message) past the model's positions
 * and, on the CPU, a step of tokens_per_micro_batch tokens whose weights, gradients, this
 * rank's AdamW state and activations do not fit in memory. */
int harness_check_fit(TrainHarness *h, const char *what, int max_length, long long tokens_per_micro_batch,
                      SrError *err);
/* h->total_steps: max_steps when > 0, else ceil(num_train_epochs x units_per_epoch) x
 * steps_per_unit, with at least one unit per epoch (a unit: SFT's optimizer step, GRPO's
 * generation, which serves steps_per_unit steps). Refuses more than 1e9 steps. */
int harness_total_steps(TrainHarness *h, long long units_per_epoch, int steps_per_unit, SrError *err);
/* The learning-rate schedule over h->total_steps and AdamW (ZeRO-1 over the ranks). */
int harness_setup_optim(TrainHarness *h, SrError *err);
/* Every rank learns whether any failed (rc of this rank), so none goes on into a collective
 * that the others will never reach: 0 when all succeeded, else -1 (with "<what> failed on
 * another process" in err on the ranks that did not fail). */
int harness_agree(TrainHarness *h, int rc, SrError *err, const char *what);

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

/* ---- checkpoints ---- */

/* The epoch as a fraction: data_epoch + data_cursor / n_sequences. */
double harness_epoch(const TrainHarness *h);
/* trainer_state.json of the run at step: transformers' TrainerState keys (global_step, epoch,
 * log_history, max_steps, total_flos, ...) plus "splitreason" {format_version, world_size,
 * optimizer_step, data {dataset_path, n_sequences, global_micro_batch, epoch, cursor}, the
 * trainer's own keys, log_window, train_seconds, config} (what checkpoint_parse_state reads
 * back). trainer_keys (owned, may be NULL): an object whose items go into "splitreason". */
cJSON *harness_trainer_state(const TrainHarness *h, int step, cJSON *trainer_keys);
/* Writes output_dir/checkpoint-<step>/ (weights, tokenizer, optimizer slices, trainer_state.json;
 * train/checkpoint.h) and prunes to save_total_limit. Collective. trainer_keys as above (owned;
 * only rank 0's is used). */
int harness_save(TrainHarness *h, int step, cJSON *trainer_keys, SrError *err);

/* Moves the trainer's data to (epoch, cursor): the next example it reads is the one after the
 * checkpoint's last step. */
typedef int (*HarnessSeekFn)(void *ctx, long long epoch, long long cursor, SrError *err);

/* Resumes from h->ckpt (a no-op when it is ""): reads its trainer_state.json, refuses another
 * world size, global micro-batch or data size (n_sequences), restores the optimizer (weights
 * from the fp32 master, AdamW state, step), the data position (then calls seek), the counters
 * and logging window, the log history (metrics.jsonl rewritten to it: harness_restore_history),
 * and warns about settings that differ from the checkpoint's run; h->resumed_state keeps the
 * file for the trainer's own keys. Call after harness_setup_optim, before harness_open_outputs. */
int harness_resume(TrainHarness *h, HarnessSeekFn seek, void *seek_ctx, SrError *err);

/* A trainer's own part of the setup, or of a resume (its keys from h->resumed_state). */
typedef int (*HarnessSetupFn)(void *ctx, SrError *err);
/* The setup sequence at the top of this file in one call, for a trainer that has called
 * harness_init: harness_pick_checkpoint, setup(ctx) (harness_load ... harness_setup_optim),
 * then on a resume harness_resume (seek) and restore(ctx) (may be NULL), then
 * harness_open_outputs, each agreed on by all ranks; h->start_step = the optimizer step.
 * Collective; returns 0, or -1 on every rank. */
int harness_start(TrainHarness *h, HarnessSetupFn setup, HarnessSeekFn seek, HarnessSetupFn restore, void *ctx,
                  SrError *err);

/* ---- counters and MFU ---- */

/* FLOPs of a training step (forward + backward) over n_tokens whose attended keys (pos + 1
 * of each token) sum to attended_keys; the embedding lookup is not counted. */
double harness_train_flops(const TrainHarness *h, double n_tokens, double attended_keys);
/* Model FLOPs utilisation of a step of flops (global) in dt seconds over comm->size devices;
 * -1 when the peak is unknown. */
double harness_mfu(const TrainHarness *h, double flops, double dt);
/* A step whose loss or gradient norm is NaN/Inf (st->nonfinite, no update made): records
 * {"step", "loss": null, "error", "bad_parameter", "bad_gradient"} and returns -1 with err naming
 * the step, the value and the first non-finite tensors; the last good checkpoint stays the
 * latest in output_dir. */
int harness_nonfinite(TrainHarness *h, int step, const SrStepStats *st, SrError *err);
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
