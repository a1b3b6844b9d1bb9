/*
 * Replays the committed fuzz corpus (fuzz/corpus/: seeds from the grader fixtures and real
 * traces, plus inputs libFuzzer found interesting, see fuzz/run.sh) through the fuzz harness
 * fuzz/fuzz_grade.c, as a plain regression test: no input may crash (under the ASan+UBSan
 * build: no sanitizer report either) or take longer than 2 s.
 */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "../fuzz/fuzz_grade.c"
#include "harness.h"

static double now_s(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

int main(void) {
    const char *dir = "fuzz/corpus";
    DIR *d = opendir(dir);
    CHECKF(d != NULL, "cannot open %s (run from the repository root)", dir);
    if (!d) return sr_test_done();
    int n = 0;
    double worst = 0, total = 0;
    char worst_name[256] = "";
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        size_t len;
        char *data = sr_test_read_file(path, &len);
        if (!data) continue;
        double t0 = now_s();
        LLVMFuzzerTestOneInput((const uint8_t *)data, len);
        double dt = now_s() - t0;
        total += dt;
        if (dt > worst) {
            worst = dt;
            snprintf(worst_name, sizeof worst_name, "%s", e->d_name);
        }
        free(data);
        n++;
    }
    closedir(d);
    fuzz_grade_cleanup();
    fprintf(stderr, "  %d corpus inputs in %.2f s (slowest %.3f s: %s)\n", n, total, worst, worst_name);
    CHECK(n >= 100);
    CHECKF(worst < 2.0, "%s took %.2f s", worst_name, worst);
    return sr_test_done();
}
