/*
 * Math grader throughput: rows graded per second (grade/grade.h, eval mode, one thread) on a
 * JSONL file of {"pred", "gold"} rows. The same file feeds scripts/bench_grade_mathverify.py
 * (Hugging Face Math-Verify), which runs this binary too and prints the ratio.
 *
 * Make the input (the 1,080 shipped real traces: R1-Distill / DeepScaleR / QwQ / Thought
 * Anchors / OpenR1 outputs with their reference answers):
 *   /root/refenv/bin/python scripts/make_grade_golden.py --bench-out build/grade_bench.jsonl
 * Usage: bench_grade FILE [min_seconds (default 3)] [reward]
 * Prints: rows, passes, rows/s, rows per CPU-second, and the verdict counts of one pass.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "common/jsonl.h"
#include "grade/grade.h"

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double cpu(void) { return (double)clock() / CLOCKS_PER_SEC; }

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: bench_grade FILE.jsonl [min_seconds] [reward]\n");
        return 2;
    }
    double min_s = argc > 2 ? atof(argv[2]) : 3.0;
    JsonlReader in;
    SrError err;
    if (jsonl_open(&in, argv[1], &err)) {
        fprintf(stderr, "bench_grade: %s\n", err.msg);
        return 1;
    }
    int cap = 4096, n = 0, got;
    char **pred = malloc(sizeof(char *) * (size_t)cap), **gold = malloc(sizeof(char *) * (size_t)cap);
    while ((got = jsonl_next(&in, &err)) == 1) {
        cJSON *j = jsonl_parse_line(&in, &err);
        if (!j) {
            got = -1;
            break;
        }
        const cJSON *p = cJSON_GetObjectItem(j, "pred"), *g = cJSON_GetObjectItem(j, "gold");
        if (cJSON_IsString(p) && cJSON_IsString(g)) {
            if (n == cap) {
                pred = realloc(pred, sizeof(char *) * (size_t)(cap *= 2));
                gold = realloc(gold, sizeof(char *) * (size_t)cap);
            }
            pred[n] = strdup(p->valuestring);
            gold[n] = strdup(g->valuestring);
            n++;
        }
        cJSON_Delete(j);
    }
    jsonl_close(&in);
    if (got < 0) {
        fprintf(stderr, "bench_grade: %s\n", err.msg);
        return 1;
    }
    SrGradeOptions o;
    sr_grade_options_default(&o);
    if (argc > 3 && !strcmp(argv[3], "reward")) o.mode = SR_GRADE_REWARD;
    SrGrader *g = sr_grader_new(&o);
    long counts[3] = {0, 0, 0}, graded = 0;
    int passes = 0;
    double t0 = now(), c0 = cpu(), t;
    do {
        for (int i = 0; i < n; i++) {
            SrGradeResult r;
            sr_grader_grade(g, pred[i], gold[i], &r);
            if (passes == 0) counts[r.verdict]++;
            sr_grade_result_free(&r);
        }
        graded += n;
        passes++;
        t = now() - t0;
    } while (t < min_s);
    double c = cpu() - c0;
    printf("bench_grade (C, %s mode, 1 thread): %d rows x %d passes in %.2f s: %.0f rows/s "
           "(%.0f rows per CPU-second); one pass: %ld correct, %ld incorrect, %ld unverifiable\n",
           o.mode == SR_GRADE_REWARD ? "reward" : "eval", n, passes, t, (double)graded / t,
           (double)graded / c, counts[0], counts[1], counts[2]);
    sr_grader_free(g);
    for (int i = 0; i < n; i++) {
        free(pred[i]);
        free(gold[i]);
    }
    free(pred);
    free(gold);
    return 0;
}
