/* Error helpers: see error.h. */
#include "error.h"

#include <stdarg.h>
#include <string.h>

int sr_fail(SrError *err, const char *fmt, ...) {
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int sr_fail_prefix(SrError *err, const char *fmt, ...) {
    if (err) {
        char buf[2 * sizeof err->msg + 8];
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(buf, sizeof err->msg, fmt, ap);
        va_end(ap);
        if (n < 0) n = 0;
        if (n > (int)sizeof err->msg - 1) n = (int)sizeof err->msg - 1;
        buf[n++] = ':';
        buf[n++] = ' ';
        memcpy(buf + n, err->msg, sizeof err->msg);
        memcpy(err->msg, buf, sizeof err->msg);
        err->msg[sizeof err->msg - 1] = '\0';
    }
    return -1;
}

void sr_error_clear(SrError *err) {
    if (err) err->msg[0] = '\0';
}

static void oom(size_t n) {
    fprintf(stderr, "splitreason: out of memory allocating %zu bytes\n", n);
    abort();
}

void *sr_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) oom(n);
    return p;
}

void *sr_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) oom(n * size);
    return p;
}

void *sr_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) oom(n);
    return q;
}

char *sr_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    char *p = sr_malloc(n);
    memcpy(p, s, n);
    return p;
}
