/*
 * The annotated JSONL output and its resume.
 *
 * Rows are appended one whole line at a time (flushed after each row, fsync'd every few
 * seconds and at the end), so a process killed at any moment leaves complete rows plus at most
 * one partial last line. On start, an existing output is scanned: the partial last line is cut
 * off, every row must carry the same "annotation" provenance as this run (else the run stops:
 * the settings changed; --overwrite starts afresh), and the (source_line, trace_index) of each
 * row is remembered so those traces are skipped. Every input trace thus appears in the output
 * exactly once, however often the run is killed and restarted.
 *
 * A row keeps the input row's text byte for byte and adds fields before its closing brace
 * (when the input already has one of the added keys, the row is re-serialised instead).
 */
#ifndef SR_ANNOTATE_OUTPUT_H
#define SR_ANNOTATE_OUTPUT_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "../common/error.h"

typedef struct AnnotateOut {
    char *path;
    FILE *f;
    long long *keys;    /* done (source_line, trace_index) keys, sorted */
    long n_keys, cap_keys;
    long n_resumed;     /* rows found in the output at start */
    double last_sync;
} AnnotateOut;

/* key of a trace: source line and trace index (-1 for a string field) */
static inline long long annotate_key(long line, int trace_index) {
    return ((long long)line << 20) | (long long)(trace_index + 1);
}

/* Opens path for appending after scanning it (see above). provenance: this run's "annotation"
 * object, compared with each existing row's. */
int annotate_out_open(AnnotateOut *o, const char *path, const cJSON *provenance, int overwrite,
                      SrError *err);
int annotate_out_has(const AnnotateOut *o, long line, int trace_index);
/* Writes one row: the input line's text (raw) with the fields of `add` (an object) added. */
int annotate_out_write(AnnotateOut *o, const char *raw, const cJSON *add, SrError *err);
int annotate_out_close(AnnotateOut *o, SrError *err); /* fsync + close */

#endif
