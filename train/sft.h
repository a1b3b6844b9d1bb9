/*
 * Supervised fine-tuning: the paper's recipe (open-r1 / TRL SFTTrainer) on the shards that
 * `prepare` writes, with checkpoints, exact resume, metrics and held-out tag metrics.
 *
 * Settings carry TRL's names (SFT_OPTIONS below; `splitreason sft --help` prints them). The
 * loop, per optimizer step:
 *   1. gradient_accumulation_steps micro-batches of per_device_train_batch_size packed
 *      sequences each, from the ShardLoader (seeded shuffle per epoch; rank r of W takes its
 *      slice of every global micro-batch);
 *   2. sr_train_step: the loss is the mean over the target tokens (loss mask set) of the
 *      WHOLE global batch -- every micro-batch on every rank is normalised by the global
 *      target count -- so accumulation and data parallelism give the big batch's gradient;
 *      reduce-scatter, clip to max_grad_norm, AdamW (ZeRO-1; no weight decay on biases and
 *      norms), all-gather; lr from the schedule at this step;
 *   3. a NaN/Inf loss or gradient norm stops the run: the message names the step and the
 *      first tensor that went bad; nothing is saved over the last good checkpoint;
 *   4. every logging_steps: one JSONL object in output_dir/metrics.jsonl ("step", "loss"
 *      = mean of the window's step losses, "learning_rate", "grad_norm", "tokens_per_second",
 *      "mfu" when a peak is known, "epoch", ...) and the same scalars as TensorBoard events in
 *      logging_dir; a progress line on stderr;
 *   5. every eval_steps (and at the start with eval_on_start, and at the end): held-out loss
 *      on eval_dataset_path, and tag placement (see SftEval);
 *   6. every save_steps (and at the end): output_dir/checkpoint-<step>/ (train/checkpoint.h),
 *      keeping the last save_total_limit.
 * Resume (resume_from_checkpoint: a checkpoint path, or true for the latest complete one in
 * output_dir) restores the weights and the optimizer state from the fp32 master, the
 * optimizer step (hence the learning rate), the data position (epoch, cursor) and the log
 * history; metrics.jsonl is cut back to the resumed step. On the CPU a resumed run gives
 * bit-identical losses and weights to the uninterrupted run (same number of processes).
 *
 * The number of optimizer steps: max_steps if > 0, else
 *   ceil(num_train_epochs * max(1, floor(micro-batches per epoch / grad accumulation)))
 * with micro-batches per epoch = floor(sequences / (world * per_device_train_batch_size))
 * (the loader drops an epoch's incomplete last global micro-batch).
 */
#ifndef SR_TRAIN_SFT_H
#define SR_TRAIN_SFT_H

#include <stdint.h>

#include "../common/config.h"
#include "../common/error.h"
#include "dist.h"
#include "harness.h"

typedef struct SftOptions {
    HarnessOptions harness;    /* the settings every trainer shares (model, dataset_path, output,
                                  optimizer, schedule, logging, saving; harness.h) */
    const char *eval_dataset_path;
    int per_device_eval_batch_size, gradient_accumulation_steps;
    int max_length;
    uint64_t seed;
    int eval_on_start;
    long stop_after_steps;     /* > 0: stop after this step as if interrupted (schedule intact) */
    int threads;               /* CPU threads; 0: OpenMP default */
} SftOptions;

/* The command's settings (TRL names), for sr_config_parse and --help (SFT_N_OPTIONS entries;
 * a static assertion in sft.c keeps the count honest). */
#define SFT_N_OPTIONS 35
extern const SrOption SFT_OPTIONS[SFT_N_OPTIONS];

/* Reads the SFT_OPTIONS keys of cfg into o (strings point into cfg) and checks them. */
int sft_options_from_config(SftOptions *o, const SrConfig *cfg, SrError *err);

/* Held-out evaluation: teacher-forced, over every target token of the eval shards.
 * Tag placement: at each target position the model's argmax next token is compared with the
 * reference next token; for each tag (open "<bigmodel>", close "</bigmodel>")
 *   precision = #(predicted tag where the reference has it) / #(predicted tag)
 *   recall    = #(predicted tag where the reference has it) / #(reference tag)
 * offload_share: of the content target tokens (the tags themselves excluded), the share inside
 * a predicted span (opened where the model predicts <bigmodel>, closed where it predicts
 * </bigmodel> or at the document's end; teacher-forced, so the model reads the reference text
 * and its tags while predicting); offload_share_ref: the same for the reference spans. */
typedef struct SftEval {
    double loss;
    long long n_sequences, n_tokens, n_targets;
    long long pred_open, ref_open, hit_open, pred_close, ref_close, hit_close;
    long long offload_pred, offload_ref;
    double open_precision, open_recall, close_precision, close_recall;
    double offload_share, offload_share_ref;
    double seconds;
} SftEval;

typedef struct SftResult {
    int start_step, end_step;  /* optimizer steps: resumed from, reached */
    int total_steps;
    double first_loss, last_loss; /* of this run's first and last step */
    double seconds, train_seconds; /* wall time; time inside optimizer steps */
    double tokens;             /* tokens trained on in this run (global) */
    int has_eval_first, has_eval_last;
    SftEval eval_first, eval_last;
    char last_checkpoint[4096];
} SftResult;

/* Runs SFT as configured. comm: the communicator (sr_comm_init; single when not launched by
 * mpirun/srun), not yet attached. effective_config (may be NULL) is recorded in
 * trainer_state.json. Returns 0, or -1 with err (a non-finite step, bad data, I/O). */
int sft_run(const SftOptions *o, const cJSON *effective_config, SrComm *comm, SftResult *res,
            SrError *err);

#endif
