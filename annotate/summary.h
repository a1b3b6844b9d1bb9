/*
 * Summary of an annotated file: offload share per trace (tokens and characters: mean, median,
 * quantiles), span lengths (tokens, histogram in powers of two), spans per trace, and for the
 * judge how many snippets aligned. Computed from the output file itself, so a resumed run
 * summarises every row, not only those of its last piece. Printed as text, written as JSON,
 * and drawn as an SVG (three histograms; opens in any browser).
 */
#ifndef SR_ANNOTATE_SUMMARY_H
#define SR_ANNOTATE_SUMMARY_H

#include <cjson/cJSON.h>
#include <stdio.h>

#include "../common/error.h"

/* Reads the annotated JSONL and returns the summary object (caller deletes), or NULL with err.
 * run (may be NULL) is copied in as "run" (this run's counters). */
cJSON *annotate_summary(const char *path, const cJSON *run, SrError *err);
void annotate_summary_print(FILE *f, const cJSON *s);
int annotate_summary_svg(const cJSON *s, const char *path, SrError *err);

#endif
