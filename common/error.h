/*
 * Error reporting for splitreason.
 *
 * Everything that touches files or user input returns an int (0 = ok, -1 = failure) and
 * fills an SrError with one line that names the file and what was wrong, e.g.
 *   "model/model.safetensors: tensor 'lm_head.weight' data offsets [0, 12) exceed the file (8 bytes)"
 * so that every stage can report and stop (or go on) cleanly. Internal invariants that only a
 * bug can break use SR_ASSERT, which aborts loudly with file and line.
 * There is no global error state: the caller owns the SrError.
 */
#ifndef SR_COMMON_ERROR_H
#define SR_COMMON_ERROR_H

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>

typedef struct SrError {
    char msg[1024];
} SrError;

/* Formats msg into err (err may be NULL) and returns -1, so `return sr_fail(err, ...)` works. */
int sr_fail(SrError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prepends "prefix: " to an existing message (for adding context on the way up). */
int sr_fail_prefix(SrError *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void sr_error_clear(SrError *err);

/* Allocation that aborts on out-of-memory (an internal invariant, not a user error). */
void *sr_malloc(size_t n);
void *sr_calloc(size_t n, size_t size);
void *sr_realloc(void *p, size_t n);
char *sr_strdup(const char *s);

#define SR_ASSERT(cond)                                                                     \
    do {                                                                                    \
        if (!(cond)) {                                                                      \
            fprintf(stderr, "splitreason: internal error at %s:%d: assertion '%s' failed\n", \
                    __FILE__, __LINE__, #cond);                                             \
            abort();                                                                        \
        }                                                                                   \
    } while (0)

#endif
