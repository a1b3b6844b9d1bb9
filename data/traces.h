/*
 * Reasoning traces out of JSONL rows, through a field mapping.
 *
 * The default mapping reads OpenR1-Math-220k rows:
 *   {"uuid", "problem", "solution", "answer", "generations": [...],
 *    "correctness_math_verify": [true, false, ...], ...}
 * and picks the first generation that math-verify marked correct. Other trace files are read
 * by naming their fields, e.g. (the shipped ones, see their SOURCE.md):
 *   openr1_math_dump10       field=response
 *   r2a_math500_r1distill    field=response correct_field=is_answer_correct
 *                            trace_from="<think>" trace_strip_suffix="<｜end▁of▁sentence｜>"
 *                            where="model=qwen-1p5B-withR"   (the response holds the prompt)
 *   deepscaler_1.5b_aime24   field=generated_responses problem_field=question
 *                            correct_field=answers_correctness
 *   qwq32b_math500_semantic  field=real_answer problem_field=input_text
 *   thought_anchors_math     field=solution correct_field=is_correct
 *
 * field:         the trace: a string, or an array of strings (one per generation).
 * correct_field: a bool / 0-1 number, or an array of them aligned with the traces. A row
 *                without it counts every trace as correct (nothing says otherwise).
 * select:        "first_correct" (default), "all_correct", "first", "all", or an index "N".
 * trace_from:    keep the text from the first occurrence of this marker on (a trace whose
 *                text lacks the marker is rejected as malformed).
 * trace_strip_suffix: remove this text from the end when present.
 * where:         "key=value": only rows whose field `key` equals value (strings compared as
 *                text, numbers and bools by their JSON text) are used; others are skipped.
 */
#ifndef SR_DATA_TRACES_H
#define SR_DATA_TRACES_H

#include <cjson/cJSON.h>
#include <stddef.h>

#include "../common/config.h"
#include "../common/error.h"

typedef enum {
    TRACE_FIRST_CORRECT = 0,
    TRACE_ALL_CORRECT,
    TRACE_FIRST,
    TRACE_ALL,
    TRACE_INDEX,
} TraceSelect;

typedef struct TraceSpec {
    const char *field, *problem_field, *correct_field;
    TraceSelect select;
    int index;                   /* TRACE_INDEX */
    const char *trace_from, *trace_strip_suffix;
    char *where_key, *where_value; /* NULL = no filter (owned) */
} TraceSpec;

typedef struct Trace {
    int index;          /* position in the field's array, -1 when the field is a string */
    int correct;        /* 1 correct, 0 not, -1 unknown */
    const char *text;   /* points into the row (valid while the cJSON row lives) */
    size_t len;
} Trace;

/* The SrOption entries of the mapping, for a command's option table (see traces.c). */
#define TRACE_SPEC_OPTIONS(default_field)                                                          \
    {"field", SR_OPT_STR, default_field, "the trace field: a string or an array of strings", SR_REQUIRED},     \
    {"problem_field", SR_OPT_STR, "\"problem\"", "the problem (prompt) field"},                   \
    {"correct_field", SR_OPT_STR, "\"correctness_math_verify\"",                                  \
     "per-trace correctness (bool, 0/1, or an array aligned with the traces)"},                   \
    {"select", SR_OPT_STR, "\"first_correct\"",                                                   \
     "which traces of a row: first_correct, all_correct, first, all, or an index",            \
     SR_CHOICES("first_correct", "all_correct", "first", "all"), SR_RANGE(0, 1000000)},              \
    {"trace_from", SR_OPT_STR, "null", "keep each trace from the first occurrence of this marker"}, \
    {"trace_strip_suffix", SR_OPT_STR, "null", "remove this text from the end of each trace"},    \
    {"where", SR_OPT_STR, "null", "only rows whose field equals a value: \"key=value\""}

/* Fills spec from a config holding the TRACE_SPEC_OPTIONS keys (strings point into cfg). */
int trace_spec_from_config(TraceSpec *spec, const SrConfig *cfg, SrError *err);
void trace_spec_free(TraceSpec *spec);

/* 1 if the row passes the `where` filter (always 1 without one). */
int trace_row_matches(const TraceSpec *spec, const cJSON *row);

/* The traces of a row, as selected. *out is malloc'd (free it); *n may be 0 (nothing
 * selected: e.g. no correct generation). Returns -1 with err (no file/line prefix) when the
 * row does not have the shape the mapping expects. */
int traces_from_row(const TraceSpec *spec, const cJSON *row, Trace **out, int *n, SrError *err);

/* The problem text of a row (NULL when absent or not a string). */
const char *trace_problem(const TraceSpec *spec, const cJSON *row);

#endif
