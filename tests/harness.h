/*
 * A minimal test harness: CHECK records a failure (with file:line) and goes on, so one run
 * reports every broken expectation; sr_test_done() prints "N passed, N failed" and returns
 * the exit code. Helpers locate the shipped data (SR_DATA), the committed fixtures
 * (SR_FIXTURES) and a scratch folder (SR_TMP), all set by ctest.
 */
#ifndef SR_TESTS_HARNESS_H
#define SR_TESTS_HARNESS_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

extern int sr_test_passed, sr_test_failed;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) {                                                                    \
            sr_test_passed++;                                                          \
        } else {                                                                       \
            sr_test_failed++;                                                          \
            fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond);            \
        }                                                                              \
    } while (0)

#define CHECKF(cond, ...)                                                              \
    do {                                                                               \
        if (cond) {                                                                    \
            sr_test_passed++;                                                          \
        } else {                                                                       \
            sr_test_failed++;                                                          \
            fprintf(stderr, "FAIL %s:%d: %s: ", __FILE__, __LINE__, #cond);            \
            fprintf(stderr, __VA_ARGS__);                                              \
            fprintf(stderr, "\n");                                                     \
        }                                                                              \
    } while (0)

/* path of a file in the shipped data folder (../shared/data), in a static buffer ring */
const char *sr_test_data(const char *rel);
/* path of a committed fixture (tests/fixtures/...) */
const char *sr_test_fixture(const char *rel);
/* a fresh scratch directory for this test: $SR_TMP/<name> (created, emptied) */
const char *sr_test_tmpdir(const char *name);
/* path of the splitreason binary */
const char *sr_test_bin(void);
/* reads a whole file (malloc'd, NUL-terminated); NULL if missing */
char *sr_test_read_file(const char *path, size_t *len);
/* writes a file (for making bad inputs) */
int sr_test_write_file(const char *path, const void *data, size_t len);
/* ||a - b|| / ||b|| (returns 0 when both are 0; +inf if any NaN) */
double sr_rel_err(const float *a, const float *b, size_t n);

/* prints the summary line and returns the exit code (0 iff no failure and at least one check) */
int sr_test_done(void);

#endif
