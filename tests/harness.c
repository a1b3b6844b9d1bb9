/* The test harness: see harness.h. */
#include "harness.h"

#include "../common/fileio.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

int sr_test_passed = 0, sr_test_failed = 0;

static char ring[8][4096];
static int ring_i = 0;

static const char *env_or(const char *name, const char *dflt) {
    const char *v = getenv(name);
    return (v && *v) ? v : dflt;
}

const char *sr_test_data(const char *rel) {
    char *b = ring[ring_i++ & 7];
    snprintf(b, 4096, "%s/%s", env_or("SR_DATA", "../shared/data"), rel);
    return b;
}

const char *sr_test_fixture(const char *rel) {
    char *b = ring[ring_i++ & 7];
    snprintf(b, 4096, "%s/%s", env_or("SR_FIXTURES", "tests/fixtures"), rel);
    return b;
}

const char *sr_test_bin(void) { return env_or("SR_BIN", "build/splitreason"); }

const char *sr_test_tmpdir(const char *name) {
    char *b = ring[ring_i++ & 7];
    const char *root = env_or("SR_TMP", "/tmp/splitreason_test");
    char cmd[8300];
    snprintf(b, 4096, "%s/%s", root, name);
    snprintf(cmd, sizeof cmd, "rm -rf '%s' && mkdir -p '%s'", b, b);
    if (system(cmd) != 0) {
        fprintf(stderr, "cannot make scratch dir %s\n", b);
        exit(1);
    }
    return b;
}

char *sr_test_read_file(const char *path, size_t *len) {
    char *data = NULL;
    SrError err;
    if (sr_read_file(path, &data, len, &err)) return NULL;
    return data;
}

int sr_test_write_file(const char *path, const void *data, size_t len) {
    FILE *f = fopen(path, "wb");
    if (!f) return -1;
    size_t w = fwrite(data, 1, len, f);
    fclose(f);
    return w == len ? 0 : -1;
}

double sr_rel_err(const float *a, const float *b, size_t n) {
    double num = 0, den = 0;
    for (size_t i = 0; i < n; i++) {
        if (isnan(a[i]) || isnan(b[i])) return INFINITY;
        double d = (double)a[i] - (double)b[i];
        num += d * d;
        den += (double)b[i] * (double)b[i];
    }
    if (den == 0) return num == 0 ? 0 : INFINITY;
    return sqrt(num / den);
}

int sr_test_done(void) {
    if (sr_test_passed + sr_test_failed == 0) { /* a test that checked nothing cannot pass */
        fprintf(stderr, "FAIL: the test made no check\n");
        sr_test_failed = 1;
    }
    printf("%d passed, %d failed\n", sr_test_passed, sr_test_failed);
    return sr_test_failed ? 1 : 0;
}
