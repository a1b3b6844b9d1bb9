/*
 * libFuzzer harness for the math grader (grade/grade.h): the input is split at its first
 * newline into a gold answer (the first line) and a prediction (the rest; no newline: the whole
 * input is both), given to sr_grader_grade_n as exactly those bytes (no terminating NUL, so an
 * over-read is an ASan report), and graded in the eval and the reward configurations; the
 * answer extraction runs alone on the prediction up to its first NUL (sr_grader_extract reads
 * C strings). Any crash, sanitizer report, leak or run past the timeout is a bug, and so is a
 * text with a NUL byte graded anything but unverifiable (it must be refused, never cut at the
 * NUL); the verdict itself is not checked otherwise.
 *
 * Build and run (clang with libFuzzer):  bash fuzz/run.sh grade [seconds]
 * CI replays fuzz/corpus/grade/ through fuzz/replay.c (ctest "fuzz_grade"), without fuzzing.
 *
 * The two graders live for the whole process (compiling the regexes per input would make the
 * fuzzer 100x slower); they are the harness's own, the library has no global state.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../grade/grade.h"

static SrGrader *fuzz_eval, *fuzz_reward;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* frees the harness's graders (the corpus replay calls it; libFuzzer never returns) */
void fuzz_cleanup(void);
void fuzz_cleanup(void) {
    sr_grader_free(fuzz_eval);
    sr_grader_free(fuzz_reward);
    fuzz_eval = fuzz_reward = NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_eval) {
        SrGradeOptions o;
        sr_grade_options_default(&o);
        fuzz_eval = sr_grader_new(&o);
        o.mode = SR_GRADE_REWARD;
        fuzz_reward = sr_grader_new(&o);
    }
    if (!data) data = (const uint8_t *)""; /* size 0 */
    const char *pred = (const char *)data, *gold = (const char *)data;
    size_t pn = size, gn = size;
    const uint8_t *nl = memchr(data, '\n', size);
    if (nl) {
        gn = (size_t)(nl - data);
        pred = (const char *)nl + 1;
        pn = size - gn - 1;
    }
    int has_nul = memchr(pred, '\0', pn) || memchr(gold, '\0', gn);
    SrGrader *graders[2] = {fuzz_eval, fuzz_reward};
    for (int k = 0; k < 2; k++) {
        SrGradeResult r;
        if (sr_grader_grade_n(graders[k], pred, pn, gold, gn, &r) != 0) abort();
        if (r.verdict > SR_VERDICT_UNVERIFIABLE || !r.reason || !r.pred_extracted ||
            !r.pred_normalized || !r.gold_extracted || !r.gold_normalized)
            abort();
        if (has_nul && r.verdict != SR_VERDICT_UNVERIFIABLE) abort(); /* cut at the NUL */
        sr_grade_result_free(&r);
    }
    char *buf = malloc(pn + 1);
    if (!buf) return 0;
    memcpy(buf, pred, pn);
    buf[pn] = '\0';
    char *ex = NULL, *nm = NULL;
    sr_grader_extract(fuzz_eval, buf, &ex, &nm);
    free(ex);
    free(nm);
    free(buf);
    return 0;
}
