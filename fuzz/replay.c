/*
 * Replays a committed fuzz corpus through one harness, as a plain ctest test (no libFuzzer
 * needed): `fuzz_replay_NAME fuzz/corpus/NAME MIN_INPUTS`. Every input is fed to
 * LLVMFuzzerTestOneInput; a crash, an abort or (in the ASan+UBSan build) a sanitizer report
 * fails the test. Fewer than MIN_INPUTS inputs fails too, so a lost corpus cannot pass empty.
 * How long inputs take is printed, never asserted (timings do not decide tests); libFuzzer's
 * own -timeout catches slow inputs while fuzzing.
 */
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/fileio.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
/* a harness that keeps state across inputs frees it here (optional) */
void fuzz_cleanup(void) __attribute__((weak));

static int cmp_str(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: %s CORPUS_DIR MIN_INPUTS\n", argv[0]);
        return 2;
    }
    const char *dir = argv[1];
    long min_inputs = strtol(argv[2], NULL, 10);
    DIR *d = opendir(dir);
    if (!d) {
        fprintf(stderr, "FAIL: cannot open the corpus %s (run from the repository root)\n", dir);
        printf("0 passed, 1 failed\n");
        return 1;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        if (n == cap) names = realloc(names, (cap = cap ? 2 * cap : 256) * sizeof *names);
        names[n++] = strdup(e->d_name);
    }
    closedir(d);
    qsort(names, n, sizeof *names, cmp_str); /* a fixed order, so a failure reproduces */
    size_t bytes = 0;
    long unreadable = 0;
    for (size_t i = 0; i < n; i++) {
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        char *buf = NULL;
        size_t got = 0;
        SrError err;
        free(names[i]);
        if (sr_read_file(path, &buf, &got, &err)) {
            fprintf(stderr, "FAIL: %s\n", err.msg);
            unreadable++;
            continue;
        }
        /* libFuzzer hands over exactly len bytes: so do we (no NUL after them) */
        uint8_t *exact = malloc(got ? got : 1);
        memcpy(exact, buf, got);
        free(buf);
        LLVMFuzzerTestOneInput(exact, got);
        free(exact);
        bytes += got;
    }
    free(names);
    if (fuzz_cleanup) fuzz_cleanup();
    int ok = (long)n >= min_inputs && unreadable == 0;
    fprintf(stderr, "  %zu corpus inputs (%zu bytes) from %s%s\n", n, bytes, dir,
            ok ? "" : ": fewer than expected, the corpus is missing");
    printf("%d passed, %d failed\n", ok ? 1 : 0, ok ? 0 : 1);
    return ok ? 0 : 1;
}
