/*
 * What the trainer tests (SFT, GRPO; single process and under mpirun) share: a run's settings
 * as base + extra "--key value" lists, the values of a metric in metrics.jsonl, the weights of
 * two runs' checkpoints compared, and the two-process test's start, runs and end.
 */
#ifndef SR_TESTS_TRAINER_FIXTURE_H
#define SR_TESTS_TRAINER_FIXTURE_H

#include "train/dist.h"

/* kv = base then extra (NULL-terminated lists; extra may be NULL), NULL-terminated; at most
 * cap entries with the NULL. Returns the number of pairs' strings, or -1 when they do not fit. */
int trainer_args(const char **kv, int cap, const char *const *base, const char *const *extra);

/* The values of `key` in the records of dir/metrics.jsonl that have it as a number, in order
 * (at most max); -1 when the file cannot be read. */
int trainer_read_metric(const char *dir, const char *key, double *v, int max);

/* Loads a/checkpoint-<step> and b/checkpoint-<step> and checks their weights: bit for bit when
 * wtol is 0, else a relative error below wtol (CHECKs named `what`). Returns the relative
 * error, or -1 when a checkpoint does not load (also a failed CHECK). */
double trainer_check_weights(const char *a, const char *b, int step, double wtol, const char *what);

/* The start of the mpirun mode: the communicator (2 processes, else a message and -1), the
 * world made by rank 0 (make_world) while the other waits. */
int trainer_dist_init(SrComm *comm, void (*make_world)(void));
/* A trainer run into output_dir out: the test's base settings plus extra (NULL-terminated). */
typedef int (*TrainerRunFn)(SrComm *comm, const char *out, const char *const *extra, SrError *err);
/* The mpirun mode's runs (the test's settings: 3 steps, a checkpoint each): on the 2 processes
 * with per_device_train_batch_size `batch`, a straight and c stopped after step 2 then resumed
 * (resume_from_checkpoint true); then on rank 0 alone b with `batch_alone` (the same global
 * batches). Checks that a's checkpoint-3 holds rank 1's optimizer slice. Returns 1 on rank 0,
 * where the caller goes on to compare the runs, else 0. */
int trainer_dist_runs(SrComm *comm, TrainerRunFn run, const char *batch, const char *batch_alone, const char *a,
                      const char *b, const char *c);
/* The end: waits for every process, frees comm; the exit code (sr_test_done on rank 0). */
int trainer_dist_done(SrComm *comm);

#endif
