/* Logging, progress (rate + ETA) and JSONL metrics. See log.h. */
#include "log.h"

#include <errno.h>
#include <stdarg.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

void sr_log(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("[splitreason] ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

double sr_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void fmt_duration(char *buf, size_t n, double s) {
    if (s < 0 || s != s) s = 0;
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, n, "%ldh%02ldm", t / 3600, (t / 60) % 60);
    else
        snprintf(buf, n, "%ldm%02lds", t / 60, t % 60);
}

static void progress_print(SrProgress *p, int final) {
    double el = sr_now() - p->t_start;
    double rate = el > 0 ? p->done / el : 0;
    char eta[32] = "?", elapsed[32];
    fmt_duration(elapsed, sizeof elapsed, el);
    if (p->total > 0 && rate > 0) fmt_duration(eta, sizeof eta, (p->total - p->done) / rate);
    char line[256];
    if (p->total > 0)
        snprintf(line, sizeof line, "%s %.0f/%.0f (%.1f%%) %.1f %s/s elapsed %s eta %s", p->what,
                 p->done, p->total, 100.0 * p->done / p->total, rate, p->what, elapsed,
                 final ? "0m00s" : eta);
    else
        snprintf(line, sizeof line, "%s %.0f %.1f %s/s elapsed %s", p->what, p->done, rate,
                 p->what, elapsed);
    if (p->tty)
        fprintf(stderr, "\r\033[K[splitreason] %s%s", line, final ? "\n" : "");
    else
        fprintf(stderr, "[splitreason] %s\n", line);
    fflush(stderr);
}

void sr_progress_start(SrProgress *p, const char *what, double total) {
    p->what = what;
    p->total = total;
    p->done = 0;
    p->t_start = p->t_last = sr_now();
    p->tty = isatty(STDERR_FILENO);
}

void sr_progress_update(SrProgress *p, double done) {
    p->done = done;
    double t = sr_now();
    if (t - p->t_last < (p->tty ? 0.25 : 5.0)) return;
    p->t_last = t;
    progress_print(p, 0);
}

void sr_progress_end(SrProgress *p) { progress_print(p, 1); }

int sr_metrics_open(SrMetrics *m, const char *path, SrError *err) {
    m->f = fopen(path, "a");
    if (!m->f) return sr_fail(err, "%s: cannot open metrics file (%s)", path, strerror(errno));
    return 0;
}

void sr_metrics_write(SrMetrics *m, const char *fields) {
    if (!m->f) return;
    fprintf(m->f, "{%s}\n", fields);
    fflush(m->f);
}

void sr_metrics_close(SrMetrics *m) {
    if (m->f) fclose(m->f);
    m->f = NULL;
}
