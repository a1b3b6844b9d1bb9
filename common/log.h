/*
 * Logging, progress and metrics.
 *   sr_log:       one line to stderr ("[splitreason] ..."), data never goes there.
 *   SrProgress:   rate and ETA for long loops; redraws one line on a terminal, prints a line
 *                 every few seconds otherwise (so CI logs and `tee` stay readable).
 *   SrMetrics:    JSONL metrics file, one object per call, flushed each line.
 */
#ifndef SR_COMMON_LOG_H
#define SR_COMMON_LOG_H

#include <stdio.h>

#include "error.h"

void sr_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
double sr_now(void); /* monotonic seconds */

typedef struct SrProgress {
    const char *what;  /* "tokens", "rows", ... */
    double total;      /* 0 = unknown */
    double done;
    double t_start, t_last;
    int tty;
} SrProgress;

void sr_progress_start(SrProgress *p, const char *what, double total);
void sr_progress_update(SrProgress *p, double done); /* prints at most a few times a second */
void sr_progress_end(SrProgress *p);

typedef struct SrMetrics {
    FILE *f;
} SrMetrics;

int sr_metrics_open(SrMetrics *m, const char *path, SrError *err); /* appends */
/* fields: a JSON object text without braces, e.g. "\"step\": 3, \"loss\": 2.5" */
void sr_metrics_write(SrMetrics *m, const char *fields);
void sr_metrics_close(SrMetrics *m);

#endif
