/*
 * libFuzzer harness for the math grader (grade/grade.h): the input is split at its first
 * newline into a prediction and a gold answer (no newline: the whole input is both), and is
 * graded in the eval and the reward configurations, and extracted alone. Any crash, sanitizer
 * report, leak or run past the timeout is a bug; the verdict itself is not checked here.
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
    char *buf = malloc(size + 1);
    if (!buf) return 0;
    memcpy(buf, data, size);
    buf[size] = '\0'; /* an embedded NUL ends the text, as for any C string */
    char *pred = buf, *gold = buf;
    char *nl = memchr(buf, '\n', strlen(buf));
    if (nl) {
        *nl = '\0';
        gold = nl + 1;
        /* prediction first line, gold the rest: swap so long texts are predictions */
        char *t = pred;
        pred = gold;
        gold = t;
    }
    SrGradeResult r;
    sr_grader_grade(fuzz_eval, pred, gold, &r);
    if (r.verdict > SR_VERDICT_UNVERIFIABLE || !r.pred_extracted || !r.gold_normalized) abort();
    sr_grade_result_free(&r);
    sr_grader_grade(fuzz_reward, pred, gold, &r);
    sr_grade_result_free(&r);
    char *ex = NULL, *nm = NULL;
    sr_grader_extract(fuzz_eval, pred, &ex, &nm);
    free(ex);
    free(nm);
    free(buf);
    return 0;
}
