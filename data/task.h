/*
 * The embedded default's reasoning task: short chains of arithmetic steps whose hard steps
 * are known, so that "where should a small model offload?" has a ground truth.
 *
 * A problem is a worksheet: a two-digit start and a list of operations with blanks; the
 * solution fills them in:
 *
 *   problem   Fill in the blanks.          solution  <think>
 *             A) g __ -> __                          Start: 37
 *             B) + __ -> __                          A) g 37 -> 52      <- hard
 *             C) = __ -> __                          B) + 52 -> 53
 *             D) k __ -> __                          C) = 53 -> 53
 *             E) - __ -> __                          D) k 53 -> 11      <- hard
 *             F) + __ -> __                          E) - 11 -> 10
 *             Start: 37                              F) + 10 -> 11
 *                                                    </think>
 *
 *                                                    \boxed{11}
 *   answer    11
 *
 * Every value is a two-digit number (10..99). Two kinds of step:
 *   - HARD: f, g, h or k, four fixed random permutations of 10..99 without fixed points (the
 *     "secret tables", drawn once from TaskConfig.table_seed and stated nowhere). Nothing in
 *     the text reveals g(x): a model knows it only by memorising the 4 x 90 entries from
 *     training traces, which takes capacity and exposures. One 90-entry table was not
 *     enough: a 2-layer x 64 model memorised it in 1,500 steps. Four are: after one epoch of
 *     12,000 worksheets it gets 5 % of the table steps right (and 97 % of the easy ones), while
 *     a 4-layer x 128 model trained three epochs gets all of them (assets/demo_task/SOURCE.md).
 *   - EASY: + (add 1), - (subtract 1), = (restate the value), + and - only where they move
 *     no carry (+ when the units digit is <= 8, - when it is >= 1).
 *     The worksheet's lines have the same length in the problem and in the solution, so what a
 *     line copies (its letter and operation from the problem, the previous value from the line
 *     above, the start from the problem's last line) sits at fixed distances, and what is left
 *     is a tiny digit table: both models learn it fast.
 * The answer is the last value and every step is one-to-one, so a wrong step (hard or easy)
 * makes the answer wrong.
 *
 * Ground truth: hard[i] is the character range [start, end) in the solution of the i-th hard
 * step's whole line, from its letter through its newline ("A) f 37 -> 52\n"): the unit that
 * `annotate --snap line` selects, and what <bigmodel>...</bigmodel> should wrap. The texts are
 * ASCII, so character offsets are byte offsets.
 *
 * Splits: a problem belongs to the held-out split when the FNV-1a hash of its problem text is
 * 0 mod 8, else to train; task_generate draws (rejecting the other split's problems) until it
 * has one of the split asked for, so train and held-out never share a problem, whatever the
 * seeds and counts. Problem i of a split depends only on (cfg, seed, split, i).
 */
#ifndef SR_DATA_TASK_H
#define SR_DATA_TASK_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"

#define TASK_MIN_VALUE 10
#define TASK_MAX_VALUE 99
#define TASK_N_VALUES (TASK_MAX_VALUE - TASK_MIN_VALUE + 1)
#define TASK_MAX_STEPS 26 /* steps are labelled A..Z */
#define TASK_MAX_TABLES 4
#define TASK_TABLE_NAMES "fghk" /* the secret tables' operation letters */

typedef struct TaskConfig {
    uint64_t table_seed; /* the secret table f (the task itself: models trained on one table
                            know nothing of another) */
    int n_steps;         /* operations per problem (6) */
    int n_hard;          /* of which hard (2), at random positions, each with a random table */
    int n_tables;        /* secret tables f, g, h, k (4): 90 entries each to memorise */
} TaskConfig;

typedef enum { TASK_TRAIN = 0, TASK_HELDOUT = 1 } TaskSplit;

typedef struct TaskSpan {
    size_t start, end; /* [start, end) character offsets into the solution */
} TaskSpan;

typedef struct TaskProblem {
    char *problem;  /* the user prompt */
    char *solution; /* "<think>\n...\n</think>\n\n\boxed{N}" */
    char *answer;   /* "N" */
    TaskSpan hard[TASK_MAX_STEPS];
    int n_hard;
    uint64_t hash;  /* FNV-1a of the problem text (the split and the uuid come from it) */
} TaskProblem;

/* table_seed 20261202, 6 steps, 2 hard, 4 tables: the embedded default */
void task_config_default(TaskConfig *c);
/* n_steps in 1..TASK_MAX_STEPS, n_hard in 0..n_steps, n_tables in 1..4; else -1 naming the
 * field */
int task_config_check(const TaskConfig *c, SrError *err);

/* table `which` (0 = f, 1 = g, 2 = h, 3 = k) at x in 10..99 (each a permutation of 10..99
 * without fixed points); -1 outside */
int task_table(const TaskConfig *c, int which, int x);

/* Problem i of a split (see above). Fills *p (free with task_problem_free). */
int task_generate(const TaskConfig *c, uint64_t seed, TaskSplit split, uint64_t i, TaskProblem *p,
                  SrError *err);
void task_problem_free(TaskProblem *p);

/* FNV-1a 64 of a problem text, and the split it belongs to */
uint64_t task_hash(const char *problem);
TaskSplit task_split_of(uint64_t hash);

#endif
