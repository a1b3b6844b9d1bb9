/*
 * The benchmarks `splitreason eval` runs on: AIME 2024 (30), AIME 2025 (30), MATH-500 (500)
 * and AMC 2023 (40), read from the shipped JSONL files (<data>/<name>/test.jsonl, see each
 * folder's SOURCE.md), or any JSONL FILE of problems with known answers.
 *
 * A row gives the problem text (field problem, else question, else prompt), the reference
 * answer (answer, else final_answer, else expected_answer; a string, or a number written in
 * the shortest form that reads back: AMC23's 27.0 is "27") and an id (id, else unique_id,
 * else uuid; else the row's index among the problems, from 0). The id is kept as its JSON
 * text (60, "test/precalculus/807.json"): it is samples.jsonl's problem_id, what --resume
 * matches rows by, so two rows with one id are refused.
 *
 * The data folder: $SR_DATA, else ../shared/data next to the checkout the binary was built
 * in (<binary dir>/../../shared/data, <binary dir>/../shared/data), else ./../shared/data.
 */
#ifndef SR_EVAL_BENCHMARKS_H
#define SR_EVAL_BENCHMARKS_H

#include "../common/error.h"

typedef struct EvalProblem {
    char *id;       /* JSON text of the id: 60, "test/algebra/1.json", or the index */
    char *problem;
    char *answer;
} EvalProblem;

typedef struct EvalBenchmark {
    char *name;     /* aime24, aime25, math500, amc23, or the FILE as given */
    char *path;     /* the file read */
    EvalProblem *items;
    int n;
} EvalBenchmark;

/* 1 when spec names a shipped benchmark (aime24, aime25, math500, amc23) */
int eval_benchmark_is_named(const char *spec);
/* The shipped data folder (see above) into out; -1 with one line naming where it looked. */
int eval_data_dir(char *out, size_t cap, SrError *err);
/* Loads a named benchmark from data_dir (NULL: eval_data_dir) or a FILE. Errors are one line
 * naming the file (and line). */
int eval_benchmark_load(EvalBenchmark *b, const char *spec, const char *data_dir, SrError *err);
void eval_benchmark_free(EvalBenchmark *b);
/* a JSON number as eval writes ids and reference answers: 27.0 -> "27" (malloc'd) */
char *eval_number_text(double v);
/* the content of the last \boxed{...} of text (braces balanced; malloc'd), NULL when there is
 * none, it is not closed, or it is empty */
char *eval_last_boxed(const char *text);

#endif
