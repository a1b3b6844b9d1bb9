/*
 * annotate: mark the difficult spans of reasoning traces with <bigmodel>...</bigmodel>.
 *
 * Methods:
 *   gap      small and big model teacher-force the trace; difficulty = how much better the big
 *            one predicts each token (annotate/scorers.h), spans by annotate/spans.h;
 *   entropy  the small model's predictive entropy, spans likewise;
 *   judge    an LLM quotes the difficult snippets (annotate/judge.h), aligned back into the
 *            trace by a fuzzy matcher (annotate/align.h), snapped to token edges and merged.
 *
 * Output row (JSONL; input fields kept as they were), added fields:
 *   "annotated":   the trace with the tags inserted
 *   "spans":       [[start, end], ...] character (code point) offsets into the trace (the
 *                  annotated text with the tags removed), sorted, disjoint
 *   "offload":     {"tokens", "total_tokens", "token_share", "chars", "total_chars",
 *                   "char_share", "spans"}
 *   "annotation":  provenance: method, models, tokenizer, trace mapping, settings, version
 *                  (the same object on every row of a run; resume checks it)
 *   "annotation_detail": per-row facts of the method (judge: snippets, aligned, similarity,
 *                  attempts, the unaligned snippets; gap/entropy: difficulty statistics)
 *   "source_line", "trace_index": where the trace came from (line of the input, index in its
 *                  trace array or -1)
 * Rows are appended and resumed (annotate/output.h); a summary (annotate/summary.h) is
 * printed and written next to the output at the end.
 */
#ifndef SR_ANNOTATE_ANNOTATE_H
#define SR_ANNOTATE_ANNOTATE_H

#include <cjson/cJSON.h>

#include "../common/error.h"
#include "../data/tokenizer.h"
#include "../data/traces.h"
#include "../model/model.h"
#include "align.h"
#include "judge.h"
#include "scorers.h"
#include "spans.h"

typedef enum { ANNOTATE_GAP = 0, ANNOTATE_ENTROPY = 1, ANNOTATE_JUDGE = 2 } AnnotateMethod;

typedef struct AnnotateOptions {
    AnnotateMethod method;
    const char *input, *output;
    TraceSpec trace;
    long limit;                 /* rows (after the where filter); 0 = all */
    SpanParams span;            /* judge uses merge_gap_chars only */
    GapScore gap_score;
    int with_prompt;            /* condition the scorers on the chat-templated problem */
    const char *system_prompt;  /* for that template */
    int window, context;
    JudgeConfig judge;
    AlignParams align;
    int judge_batch;            /* traces handed to the judge at once (0: 4 x parallel) */
    const char *summary_path, *plot_path; /* NULL: OUTPUT.summary.json / .svg */
    int strict, overwrite, count_rows;
    const char *small_path, *big_path, *tokenizer_path; /* for the provenance */
} AnnotateOptions;

typedef struct AnnotateModels {
    Qwen2Model *small, *big;
    const Tokenizer *tok;
} AnnotateModels;

typedef struct AnnotateStats {
    long rows, filtered, no_trace, malformed, failed;
    long traces_done, traces_resumed;
    long long tokens;
    double seconds;
} AnnotateStats;

const char *annotate_method_name(AnnotateMethod m);
int annotate_method_from_name(const char *name);

/* The "annotation" provenance object of a run (caller deletes). */
cJSON *annotate_provenance(const AnnotateOptions *o);

int annotate_run(const AnnotateOptions *o, const AnnotateModels *m, AnnotateStats *st, SrError *err);

#endif
