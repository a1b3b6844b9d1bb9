/*
 * Training checkpoints: one directory per optimizer step, laid out as TRL / transformers'
 * Trainer lays them out, so that the directory is itself a Hugging Face model directory.
 *
 *   output_dir/checkpoint-<step>/
 *     config.json, model.safetensors          the weights (HF names; fp32 on the CPU, bf16 on
 *                                             CUDA), what transformers / `export` read
 *     generation_config.json, tokenizer files (tokenizer.json, vocab.json, merges.txt,
 *                                             tokenizer_config.json with the <bigmodel> tags)
 *     optimizer-rank<r>-of-<n>.safetensors    each rank's ZeRO-1 slice: fp32 master, exp_avg,
 *                                             exp_avg_sq, step, layout (train/optim.h)
 *     trainer_state.json                      transformers' TrainerState keys (global_step,
 *                                             epoch, log_history, ...) plus "splitreason":
 *                                             data position, RNG, world size, effective config
 *     DONE                                    written last: the checkpoint is complete
 *
 * Atomicity: the one atomic directory writer (common/fileio.h SrAtomicDir): everything is
 * written into checkpoint-<step>.tmp-<pid>/ (pid of rank 0), then DONE, then every file and
 * the directory are fsync'd and it is swapped in as checkpoint-<step>/ (a checkpoint of the
 * same step is kept aside until then) and output_dir is fsync'd. A process killed at any
 * point leaves either a complete checkpoint-<step>/ or a temp directory that nothing reads (a
 * catchable signal removes it at once; after a SIGKILL the next save or prune removes it,
 * once that pid is gone). A directory without DONE is never resumed from. With several ranks
 * every rank writes its optimizer file into the same directory (a shared file system) and
 * rank 0 writes the rest, commits and prunes.
 *
 * Test hook: SR_TEST_KILL_IN_CHECKPOINT=<step> makes rank 0 raise SIGKILL in the middle of
 * writing checkpoint <step> (after model.safetensors, before trainer_state.json and DONE),
 * so a test can check that the previous checkpoint stays loadable and is the one resumed.
 */
#ifndef SR_TRAIN_CHECKPOINT_H
#define SR_TRAIN_CHECKPOINT_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "../common/error.h"
#include "../data/tokenizer.h"
#include "optim.h"

#define CHECKPOINT_PREFIX "checkpoint-"

/* What to write. trainer_state is only read on rank 0. */
typedef struct CheckpointSave {
    const char *output_dir;
    int step;
    SrOptimizer *opt;          /* model = opt->m, communicator = opt->comm */
    const Tokenizer *tok;
    const cJSON *trainer_state;
    int save_total_limit;      /* keep the last N complete checkpoints; <= 0: keep all */
} CheckpointSave;

/* Writes output_dir/checkpoint-<step>/ as above (replacing one of the same step), then
 * prunes to save_total_limit. Collective: every rank calls it; all succeed or all fail.
 * path (may be NULL) receives the checkpoint's path. */
int checkpoint_save(const CheckpointSave *cs, char *path, size_t path_size, SrError *err);

/* 1 if dir holds a DONE marker (a complete checkpoint). */
int checkpoint_is_complete(const char *dir);

/* The complete checkpoint of output_dir with the highest step: 1 and its path / step, 0
 * when there is none (or output_dir does not exist), -1 on a read error. */
int checkpoint_find_latest(const char *output_dir, char *path, size_t path_size, int *step,
                           SrError *err);

/* Removes the oldest complete checkpoints so that `keep` remain, and the temp directories
 * of processes that are gone. keep <= 0 keeps every complete checkpoint. */
int checkpoint_prune(const char *output_dir, int keep, SrError *err);

/* What a resume reads from trainer_state.json, every field range-checked (an error names the
 * file and the field, e.g. "ckpt/trainer_state.json: global_step must be an integer in
 * [0, 1000000000] (got 1e+12)"). Required: global_step, splitreason.world_size and
 * splitreason.data {n_sequences, global_micro_batch, epoch, cursor}; the rest defaults to 0 /
 * empty when absent (and is checked when present). */
typedef struct CheckpointState {
    cJSON *json;                  /* the whole file (owned) */
    int global_step;              /* [0, 1e9] */
    int world_size;               /* splitreason.world_size, [1, 2^20] */
    long long n_sequences;        /* splitreason.data.n_sequences: the run's training sequences */
    long long global_micro_batch; /* splitreason.data.global_micro_batch >= 1 */
    long long data_epoch, data_cursor; /* splitreason.data.epoch / cursor (cursor <= n_sequences) */
    double window_loss_sum;       /* splitreason.log_window.loss_sum (finite) */
    int window_steps;             /* splitreason.log_window.steps, [0, global_step] */
    double tokens_seen, total_flos, train_seconds; /* finite, >= 0 */
    const cJSON *log_history;     /* an array of objects (NULL when absent) */
    const cJSON *config;          /* splitreason.config, an object (NULL when absent) */
} CheckpointState;

/* Parses and checks trainer_state.json's text (path names it in errors). On success st owns
 * the parsed JSON (checkpoint_state_free). */
int checkpoint_parse_state(const char *text, size_t len, const char *path, CheckpointState *st, SrError *err);

/* Reads dir/trainer_state.json through checkpoint_parse_state (the checkpoint must be complete). */
int checkpoint_read_state(const char *dir, CheckpointState *st, SrError *err);
void checkpoint_state_free(CheckpointState *st);

#endif
