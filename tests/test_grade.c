/*
 * Math grader tests (grade/grade.h):
 *
 *   agreement  every case of tests/fixtures/grade/golden.jsonl.zst (scripts/make_grade_golden.py:
 *              Math-Verify 0.9.0's verdicts on the shipped real traces, on every benchmark
 *              reference answer against itself, equivalent rewritings and near misses, and on
 *              hand-written hard cases) is graded; on the cases this grader decides it must
 *              agree with Math-Verify on >= 99%, and every disagreement must be listed, with
 *              its reason, in tests/fixtures/grade/disagreements.txt (and every listed one must
 *              still occur, so the list stays exact). Real traces are checked in both the eval
 *              and the reward (SplitReason accuracy_reward) configuration.
 *   expect     rewritings built to be equal must grade correct, near misses incorrect, and the
 *              hard cases with a clear answer must get it (exceptions listed with a reason).
 *   coverage   the grader must decide >= 95% of the real traces and benchmark cases.
 *   API        verdict names, extracted / normalised strings, options, bounds (long inputs,
 *              deep nesting, huge numbers give "unverifiable" within work linear in the input:
 *              counted in SrGradeWork, never timed), texts given with their lengths (a NUL is
 *              refused, not an end), no global state (two graders interleaved give the same
 *              answers).
 *
 * SR_GRADE_VERBOSE=1 prints every disagreement and undecided case.
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include "common/fileio.h"
#include "common/json.h"

#include "../grade/grade.h"
#include "harness.h"

/* the fixture, decompressed (common/fileio.h) */
static char *zstd_read(const char *path, size_t *out_len) {
    char *d = NULL;
    SrError e;
    if (sr_read_file_zstd(path, &d, out_len, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return NULL;
    }
    return d;
}

/* ---- shipped sources, as scripts/make_grade_golden.py reads them --------------------------- */

typedef struct Source {
    const char *name, *path, *pred_field, *gold_field;
    int pred_index; /* >= 0: the field is an array, take this element */
    cJSON **rows;
    int n;
} Source;

static Source SOURCES[] = {
    {"r2a", "r2a_math500_r1distill_greedy/df_attention_analysis_MATH500_greedy.jsonl", "response",
     "answer", -1, NULL, 0},
    {"dsr", "deepscaler_1.5b_aime24_8k/8192t_test2024_qwen-instruct_t0.6_k1_s0_e30.jsonl",
     "generated_responses", "gold_answer", 0, NULL, 0},
    {"qwq", "qwq32b_math500_semantic/h100_QwQ-32B_math-500_seed123.jsonl", "real_answer", "answer",
     -1, NULL, 0},
    {"ta", "thought_anchors_math/thought_anchors_math_base_solutions.jsonl", "solution",
     "gt_answer", -1, NULL, 0},
    {"openr1", "openr1_math_dump10/training_examples_math.jsonl", "response", NULL, -1, NULL, 0},
};
#define N_SOURCES ((int)(sizeof SOURCES / sizeof SOURCES[0]))

static int load_source(Source *s) {
    size_t n;
    char *text = sr_test_read_file(sr_test_data(s->path), &n);
    if (!text) return 0;
    int cap = 1024;
    s->rows = malloc(sizeof(cJSON *) * (size_t)cap);
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (s->n == cap) s->rows = realloc(s->rows, sizeof(cJSON *) * (size_t)(cap *= 2));
        SrError e;
        cJSON *row = sr_json_parse(line, strlen(line), &e); /* the strict reader commands use */
        CHECKF(row != NULL, "%s:%d: %s", s->path, s->n + 1, e.msg);
        s->rows[s->n++] = row;
    }
    free(text);
    return 1;
}

static Source *find_source(const char *name) {
    for (int i = 0; i < N_SOURCES; i++)
        if (!strcmp(SOURCES[i].name, name)) return &SOURCES[i];
    return NULL;
}

/* a JSON string or number as the C side's gold string ("%.15g" for numbers) */
static const char *field_str(const cJSON *v, char *buf, size_t cap) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsNumber(v)) {
        snprintf(buf, cap, "%.15g", v->valuedouble);
        return buf;
    }
    return NULL;
}

/* ---- disagreement list --------------------------------------------------------------------- */

typedef struct Listed {
    char id[64], mode[16];
    int seen;
} Listed;

static Listed *listed;
static int n_listed;

static void load_listed(void) {
    size_t n;
    char *text = sr_test_read_file(sr_test_fixture("grade/disagreements.txt"), &n);
    if (!text) return;
    int cap = 256;
    listed = calloc((size_t)cap, sizeof(Listed));
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        if (line[0] == '#' || !line[0]) continue;
        char id[64], mode[16];
        if (sscanf(line, "%63s %15s", id, mode) != 2) continue;
        if (n_listed == cap) listed = realloc(listed, sizeof(Listed) * (size_t)(cap *= 2));
        memset(&listed[n_listed], 0, sizeof(Listed));
        strcpy(listed[n_listed].id, id);
        strcpy(listed[n_listed].mode, mode);
        n_listed++;
    }
    free(text);
}

static int is_listed(const char *id, const char *mode) {
    for (int i = 0; i < n_listed; i++)
        if (!strcmp(listed[i].id, id) && !strcmp(listed[i].mode, mode)) {
            listed[i].seen = 1;
            return 1;
        }
    return 0;
}

/* ---- agreement ----------------------------------------------------------------------------- */

typedef struct Tally {
    int total, decided, agree, unlisted;
} Tally;

static int verbose;

/* grows *buf to at least n bytes */
static char *cutbuf_len_guard(char **buf, size_t *cap, size_t n) {
    if (n > *cap) *buf = realloc(*buf, *cap = n * 2);
    return *buf;
}

static void check_case(SrGrader *g, const char *mode, const char *id, const char *pred,
                       const char *gold, int mv, const char *expect, Tally *t, Tally *te,
                       const cJSON *rec) {
    SrGradeResult r;
    sr_grader_grade(g, pred, gold, &r);
    t->total++;
    if (r.verdict != SR_VERDICT_UNVERIFIABLE) {
        t->decided++;
        int mine = r.verdict == SR_VERDICT_CORRECT;
        if (mine == mv) {
            t->agree++;
        } else if (!is_listed(id, mode)) {
            t->unlisted++;
            CHECKF(0, "%s [%s]: grader says %s (%s), Math-Verify %s; pred [%s] gold [%s]; MV pred %s",
                   id, mode, sr_verdict_name(r.verdict), r.reason, mv ? "correct" : "incorrect",
                   r.pred_normalized, r.gold_normalized,
                   rec ? cJSON_PrintUnformatted(cJSON_GetObjectItem(rec, "mv_pred")) : "");
        } else if (verbose) {
            fprintf(stderr, "listed %s [%s]: %s vs MV %d; pred [%s] gold [%s]\n", id, mode,
                    sr_verdict_name(r.verdict), mv, r.pred_normalized, r.gold_normalized);
        }
    } else if (verbose) {
        fprintf(stderr, "undecided %s [%s]: %s; pred [%s] gold [%s] MV %d\n", id, mode, r.reason,
                r.pred_normalized, r.gold_normalized, mv);
    }
    if (expect && te) {
        te->total++;
        int ok = strcmp(sr_verdict_name(r.verdict), expect) == 0;
        if (ok) te->agree++;
        else if (!is_listed(id, "expect")) {
            te->unlisted++;
            CHECKF(0, "%s: expected %s, grader says %s (%s); pred [%s] gold [%s]", id, expect,
                   sr_verdict_name(r.verdict), r.reason, r.pred_normalized, r.gold_normalized);
        }
    }
    sr_grade_result_free(&r);
}

static void test_agreement(void) {
    size_t n;
    char *text = zstd_read(sr_test_fixture("grade/golden.jsonl.zst"), &n);
    CHECK(text != NULL);
    if (!text) return;
    for (int i = 0; i < N_SOURCES; i++) CHECKF(load_source(&SOURCES[i]), "%s", SOURCES[i].path);
    load_listed();
    SrGradeOptions ro;
    sr_grade_options_default(&ro);
    ro.mode = SR_GRADE_REWARD;
    SrGrader *ge = sr_grader_new(NULL), *gr = sr_grader_new(&ro);
    enum { NSETS = 7 };
    Tally eval_all = {0}, reward = {0}, expect = {0}, sets[NSETS] = {{0}};
    const char *set_names[NSETS] = {"real", "cross", "trunc", "boxed", "bench", "hard", "random"};
    double t0 = (double)clock() / CLOCKS_PER_SEC;
    int lines = 0;
    char *cutbuf = NULL;
    size_t cutcap = 0;
    for (char *line = strtok(text, "\n"); line; line = strtok(NULL, "\n")) {
        SrError e;
        cJSON *rec = sr_json_parse(line, strlen(line), &e);
        CHECKF(rec != NULL, "golden.jsonl:%d: %s", lines + 1, e.msg);
        if (!rec) continue;
        if (lines++ == 0) {
            cJSON_Delete(rec);
            continue;
        }
        const char *id = cJSON_GetObjectItem(rec, "id")->valuestring;
        const char *set = cJSON_GetObjectItem(rec, "set")->valuestring;
        const cJSON *pv = cJSON_GetObjectItem(rec, "pred"), *gv = cJSON_GetObjectItem(rec, "gold");
        const cJSON *ex = cJSON_GetObjectItem(rec, "expect");
        int mv = cJSON_IsTrue(cJSON_GetObjectItem(rec, "mv"));
        const char *pred = cJSON_IsString(pv) ? pv->valuestring : NULL;
        const char *gold = cJSON_IsString(gv) ? gv->valuestring : NULL;
        char gbuf[64];
        int by_ref = !strcmp(set, "real") || !strcmp(set, "cross") || !strcmp(set, "trunc");
        if (by_ref) {
            Source *s = find_source(cJSON_GetObjectItem(rec, "src")->valuestring);
            int row = cJSON_GetObjectItem(rec, "row")->valueint;
            if (!s || row >= s->n || !s->rows[row]) {
                CHECKF(0, "%s: no source row", id);
                cJSON_Delete(rec);
                continue;
            }
            const cJSON *p = cJSON_GetObjectItem(s->rows[row], s->pred_field);
            if (s->pred_index >= 0) p = cJSON_GetArrayItem(p, s->pred_index);
            pred = cJSON_IsString(p) ? p->valuestring : NULL;
            const cJSON *cut = cJSON_GetObjectItem(rec, "cut");
            if (pred && cJSON_IsNumber(cut)) {
                /* the first `cut` code points (Python's t[:cut]) */
                size_t k = 0;
                long cp = 0;
                while (pred[k] && cp < (long)cut->valuedouble) {
                    k++;
                    while (((unsigned char)pred[k] & 0xC0) == 0x80) k++;
                    cp++;
                }
                snprintf(cutbuf_len_guard(&cutbuf, &cutcap, k + 1), k + 1, "%.*s", (int)k, pred);
                pred = cutbuf;
            }
            if (!gold) gold = field_str(cJSON_GetObjectItem(s->rows[row], s->gold_field), gbuf, sizeof gbuf);
        }
        if (!pred || !gold) {
            CHECKF(0, "%s: missing pred or gold", id);
            cJSON_Delete(rec);
            continue;
        }
        int si = 0;
        while (si < NSETS - 1 && strcmp(set, set_names[si])) si++;
        Tally before = eval_all;
        check_case(ge, "eval", id, pred, gold, mv, cJSON_IsString(ex) ? ex->valuestring : NULL,
                   &eval_all, &expect, rec);
        sets[si].total += eval_all.total - before.total;
        sets[si].decided += eval_all.decided - before.decided;
        sets[si].agree += eval_all.agree - before.agree;
        if (by_ref && strcmp(set, "trunc") != 0)
            check_case(gr, "reward", id, pred, gold, cJSON_IsTrue(cJSON_GetObjectItem(rec, "mvr")),
                       NULL, &reward, NULL, rec);
        cJSON_Delete(rec);
    }
    double t1 = (double)clock() / CLOCKS_PER_SEC;
    free(text);
    free(cutbuf);
    for (int i = 0; i < NSETS; i++)
        fprintf(stderr, "  %-6s %5d cases, %5d decided (%.1f%%), agreement with Math-Verify %.2f%%\n",
                set_names[i], sets[i].total, sets[i].decided,
                100.0 * sets[i].decided / (sets[i].total ? sets[i].total : 1),
                100.0 * sets[i].agree / (sets[i].decided ? sets[i].decided : 1));
    fprintf(stderr, "  eval   %5d cases, %5d decided, %5d agree (%.2f%%)\n", eval_all.total,
            eval_all.decided, eval_all.agree, 100.0 * eval_all.agree / (eval_all.decided ? eval_all.decided : 1));
    fprintf(stderr, "  reward %5d cases, %5d decided, %5d agree (%.2f%%)\n", reward.total,
            reward.decided, reward.agree, 100.0 * reward.agree / (reward.decided ? reward.decided : 1));
    fprintf(stderr, "  expect %5d cases, %5d as expected\n", expect.total, expect.agree);
    fprintf(stderr, "  %.2f s for %d gradings\n", t1 - t0, eval_all.total + reward.total);
    CHECK(eval_all.total > 5000);
    CHECKF(eval_all.agree >= 0.99 * eval_all.decided, "eval agreement %d/%d", eval_all.agree, eval_all.decided);
    CHECKF(reward.agree >= 0.99 * reward.decided, "reward agreement %d/%d", reward.agree, reward.decided);
    CHECKF(sets[0].decided >= 0.95 * sets[0].total, "real traces decided %d/%d", sets[0].decided, sets[0].total);
    CHECKF(sets[1].decided >= 0.95 * sets[1].total, "crossed traces decided %d/%d", sets[1].decided, sets[1].total);
    CHECKF(sets[2].decided >= 0.95 * sets[2].total, "truncated traces decided %d/%d", sets[2].decided, sets[2].total);
    CHECKF(sets[3].decided >= 0.90 * sets[3].total, "model boxed answers decided %d/%d", sets[3].decided, sets[3].total);
    CHECKF(sets[4].decided >= 0.95 * sets[4].total, "bench cases decided %d/%d", sets[4].decided, sets[4].total);
    for (int i = 0; i < n_listed; i++)
        CHECKF(listed[i].seen, "listed disagreement %s [%s] no longer occurs: update disagreements.txt",
               listed[i].id, listed[i].mode);
    sr_grader_free(ge);
    sr_grader_free(gr);
    for (int i = 0; i < N_SOURCES; i++) {
        for (int k = 0; k < SOURCES[i].n; k++) cJSON_Delete(SOURCES[i].rows[k]);
        free(SOURCES[i].rows);
    }
    free(listed);
}

/* ---- API ----------------------------------------------------------------------------------- */

static SrVerdict grade1(SrGrader *g, const char *pred, const char *gold) {
    SrGradeResult r;
    sr_grader_grade(g, pred, gold, &r);
    SrVerdict v = r.verdict;
    sr_grade_result_free(&r);
    return v;
}

static void test_api(void) {
    CHECK(!strcmp(sr_verdict_name(SR_VERDICT_CORRECT), "correct"));
    CHECK(!strcmp(sr_verdict_name(SR_VERDICT_INCORRECT), "incorrect"));
    CHECK(!strcmp(sr_verdict_name(SR_VERDICT_UNVERIFIABLE), "unverifiable"));
    SrGrader *g = sr_grader_new(NULL);
    SrGradeResult r;
    CHECK(sr_grader_grade(g, "<think>maybe \\boxed{3}</think>The answer is $\\boxed{\\dfrac{1}{2}}$.",
                          "0.5", &r) == 0);
    CHECK(r.verdict == SR_VERDICT_CORRECT);
    CHECKF(!strcmp(r.pred_extracted, "\\dfrac{1}{2}"), "extracted [%s]", r.pred_extracted);
    CHECKF(!strcmp(r.pred_normalized, "\\frac{1}{2}"), "normalized [%s]", r.pred_normalized);
    CHECKF(!strcmp(r.gold_normalized, "\\frac{1}{2}"), "gold normalized [%s]", r.gold_normalized);
    sr_grade_result_free(&r);
    CHECK(sr_grader_grade(NULL, "a", "b", &r) == -1 && r.verdict == SR_VERDICT_UNVERIFIABLE);
    sr_grade_result_free(&r);
    CHECK(sr_grader_grade(g, "a", "b", NULL) == -1);

    /* the </think> preference and the no-answer rule */
    CHECK(grade1(g, "<think>\\boxed{4}</think> so it is \\boxed{5}", "5") == SR_VERDICT_CORRECT);
    CHECK(grade1(g, "<think>\\boxed{4}</think> so it is \\boxed{5}", "4") == SR_VERDICT_INCORRECT);
    CHECK(grade1(g, "<think>it must be \\boxed{4}</think>", "4") == SR_VERDICT_CORRECT);
    CHECK(grade1(g, "I have no idea.", "4") == SR_VERDICT_INCORRECT);
    CHECK(grade1(g, "\\boxed{4}", "\\frac{") == SR_VERDICT_UNVERIFIABLE);

    /* the last-number fallback can be switched off */
    SrGradeOptions o;
    sr_grade_options_default(&o);
    CHECK(grade1(g, "so we get 12 apples", "12") == SR_VERDICT_CORRECT);
    o.allow_unanchored = 0;
    SrGrader *g2 = sr_grader_new(&o);
    CHECK(grade1(g2, "so we get 12 apples", "12") == SR_VERDICT_INCORRECT);
    CHECK(grade1(g2, "so we get \\boxed{12} apples", "12") == SR_VERDICT_CORRECT);
    sr_grader_free(g2);

    /* reward mode: only the first candidate counts */
    o.allow_unanchored = 1;
    o.mode = SR_GRADE_REWARD;
    SrGrader *gr = sr_grader_new(&o);
    CHECK(grade1(gr, "\\boxed{7}", "7") == SR_VERDICT_CORRECT);
    CHECK(grade1(gr, "the answer is 7", "7") == SR_VERDICT_INCORRECT);
    sr_grader_free(gr);

    /* one-shot API and extraction */
    r = sr_grade("\\boxed{(1,2)}", "(1, 2)", NULL);
    CHECK(r.verdict == SR_VERDICT_CORRECT);
    sr_grade_result_free(&r);
    char *ex = NULL, *nm = NULL;
    CHECK(sr_grader_extract(g, "so \\boxed{\\tfrac{3}{4}} km", &ex, &nm) == 1);
    CHECKF(!strcmp(nm, "\\frac{3}{4}"), "[%s]", nm);
    free(ex);
    free(nm);
    CHECK(sr_grader_extract(g, "nothing", &ex, &nm) == 0 && !strcmp(ex, "") && !strcmp(nm, ""));
    free(ex);
    free(nm);
    sr_grader_free(g);
}

/* Grades with g and checks the work the call counted (SrGradeWork) against bounds linear in
 * the input: regex scanning, match calls and parser steps each within a constant times the
 * bytes, and no single regex search over g's backtracking budget. g is built with a budget
 * 200x below the default, so a pattern that backtracks over a whole run at every start (the
 * quadratic number-run bug) exceeds it on these 200-500 kB inputs: operation counts, not
 * clock time, so the test means the same on any machine. */
static SrVerdict grade_bounded(SrGrader *g, const char *what, const char *pred, const char *gold) {
    SrGradeResult r;
    sr_grader_grade(g, pred, gold, &r);
    uint64_t n = strlen(pred) + strlen(gold);
    const SrGradeWork *w = &r.work;
    CHECKF(w->regex_bytes <= 64 * n + 4096, "%s: regex scanned %llu bytes for %llu input bytes",
           what, (unsigned long long)w->regex_bytes, (unsigned long long)n);
    CHECKF(w->regex_calls <= n + 1024, "%s: %llu regex calls for %llu input bytes", what,
           (unsigned long long)w->regex_calls, (unsigned long long)n);
    CHECKF(w->parse_steps <= 64 * n + 4096, "%s: %llu parser steps for %llu input bytes", what,
           (unsigned long long)w->parse_steps, (unsigned long long)n);
    CHECKF(strcmp(r.reason, "regex work limit exceeded") != 0, "%s: a regex search backtracked "
           "past %u steps", what, 100000u);
    SrVerdict v = r.verdict;
    sr_grade_result_free(&r);
    return v;
}

/* bounds: inputs that would run away give "unverifiable" (or a decision) within linear work */
static void test_bounds(void) {
    SrGradeOptions o;
    sr_grade_options_default(&o);
    o.max_regex_work = 100000;
    SrGrader *g = sr_grader_new(&o);
    size_t big = 300000;
    char *s = malloc(big * 2 + 64);
    /* deep nesting */
    size_t k = 0;
    k += (size_t)sprintf(s, "\\boxed{");
    for (int i = 0; i < 20000; i++) s[k++] = '(';
    s[k++] = '1';
    for (int i = 0; i < 20000; i++) s[k++] = ')';
    strcpy(s + k, "}");
    CHECK(grade_bounded(g, "deep nesting", s, "1") == SR_VERDICT_UNVERIFIABLE);
    /* a long flat sum */
    k = (size_t)sprintf(s, "\\boxed{");
    for (int i = 0; i < 20000; i++) k += (size_t)sprintf(s + k, "1+");
    strcpy(s + k, "1}");
    CHECK(grade_bounded(g, "flat sum", s, "20001") != SR_VERDICT_INCORRECT);
    /* huge powers and numbers */
    CHECK(grade_bounded(g, "tower", "\\boxed{9^{9^{9^{9}}}}", "1") == SR_VERDICT_UNVERIFIABLE);
    CHECK(grade_bounded(g, "2^100", "\\boxed{2^{100}}", "1267650600228229401496703205376") == SR_VERDICT_CORRECT);
    /* a decimal too long to compare exactly is unverifiable, never read as a prefix of itself
     * (two 61000-digit decimals that differ in their last integer digit were "correct") */
    {
        size_t nd = 61000;
        char *a = malloc(nd + 32), *b = malloc(nd + 32);
        k = (size_t)sprintf(a, "\\boxed{");
        memset(a + k, '7', nd);
        strcpy(a + k + nd, "1.5}");
        memset(b, '7', nd);
        strcpy(b + nd, "2.5");
        CHECK(grade_bounded(g, "long decimals", a, b) == SR_VERDICT_UNVERIFIABLE);
        free(a);
        free(b);
    }
    /* many dollar signs and numbers with no boxed answer */
    k = 0;
    for (size_t i = 0; k + 8 < big; i++) k += (size_t)sprintf(s + k, "$%zu$ ", i % 997);
    s[k] = '\0';
    CHECK(grade_bounded(g, "dollars", s, "5") != SR_VERDICT_CORRECT);
    /* a long run of numbers without an operator (quadratic for a backtracking expression
     * pattern), one with operators, and thousands of boxes */
    k = 0;
    for (int i = 0; i < 40000; i++) k += (size_t)sprintf(s + k, "%d ", i);
    CHECK(grade_bounded(g, "number run", s, "5") == SR_VERDICT_INCORRECT);
    k = 0;
    for (int i = 0; i < 40000; i++) k += (size_t)sprintf(s + k, "%d + ", i);
    CHECK(grade_bounded(g, "sum run", s, "5") != SR_VERDICT_CORRECT);
    k = 0;
    for (int i = 0; i < 30000; i++) k += (size_t)sprintf(s + k, "\\boxed{1}");
    CHECK(grade_bounded(g, "30000 boxes", s, "1") == SR_VERDICT_CORRECT);
    /* unclosed openers and empty environments */
    k = 0;
    for (int i = 0; i < 40000; i++) k += (size_t)sprintf(s + k, "\\boxed{");
    CHECK(grade_bounded(g, "open boxes", s, "1") == SR_VERDICT_INCORRECT);
    k = 0;
    for (int i = 0; i < 20000; i++) k += (size_t)sprintf(s + k, "\\frac{1}{");
    CHECK(grade_bounded(g, "open fracs", s, "1") == SR_VERDICT_INCORRECT);
    k = 0;
    for (int i = 0; i < 40000; i++) k += (size_t)sprintf(s + k, "$$ ");
    CHECK(grade_bounded(g, "empty environments", s, "1") != SR_VERDICT_CORRECT);
    /* longer than max_input_bytes */
    char *huge = malloc((1 << 20) + 16);
    memset(huge, 'a', (1 << 20) + 8);
    huge[(1 << 20) + 8] = '\0';
    CHECK(grade_bounded(g, "huge", huge, "1") == SR_VERDICT_UNVERIFIABLE);
    free(huge);
    /* invalid UTF-8 is read as U+FFFD (no token): the number after it is the fallback */
    CHECK(grade_bounded(g, "bad utf-8", "\\boxed{\xff\xfe 3}", "3") == SR_VERDICT_CORRECT);
    CHECK(grade_bounded(g, "bad utf-8 only", "\\boxed{\xff\xfe}", "3") == SR_VERDICT_UNVERIFIABLE);
    free(s);
    sr_grader_free(g);
}

/* the work counters count: a real grading does some of each kind */
static void test_work(void) {
    SrGrader *g = sr_grader_new(NULL);
    SrGradeResult r;
    sr_grader_grade(g, "<think>hmm</think> so $x = \\boxed{\\frac{3}{4}}$", "0.75", &r);
    CHECK(r.verdict == SR_VERDICT_CORRECT);
    CHECKF(r.work.parse_steps > 0 && r.work.regex_calls > 0 && r.work.regex_bytes > 0 &&
               r.work.candidates > 0,
           "work %llu %llu %llu %llu", (unsigned long long)r.work.parse_steps,
           (unsigned long long)r.work.regex_calls, (unsigned long long)r.work.regex_bytes,
           (unsigned long long)r.work.candidates);
    SrGradeWork small = r.work;
    sr_grade_result_free(&r);
    /* ten times the text: more work, but within ten times (plus the gold's share) */
    char *s = malloc(10 * 64 + 1);
    s[0] = '\0';
    for (int i = 0; i < 10; i++) strcat(s, "so $x = \\boxed{\\frac{3}{4}}$ ");
    sr_grader_grade(g, s, "0.75", &r);
    CHECK(r.work.regex_bytes > small.regex_bytes && r.work.regex_bytes <= 12 * small.regex_bytes);
    sr_grade_result_free(&r);
    free(s);
    sr_grader_free(g);
}

/* (text, length): a NUL inside a text is refused, never read as the end of it (issue 9,
 * item 5: "\boxed{4}\0 wait, actually \boxed{5}" graded as 4 would be a reward hack) */
static void test_lengths(void) {
    SrGradeOptions ro;
    sr_grade_options_default(&ro);
    ro.mode = SR_GRADE_REWARD;
    SrGrader *ge = sr_grader_new(NULL), *gr = sr_grader_new(&ro);
    SrGrader *gs[2] = {ge, gr};
    static const char hack[] = "\\boxed{4}\0 wait, actually \\boxed{5}";
    for (int k = 0; k < 2; k++) {
        SrGradeResult r;
        CHECK(sr_grader_grade_n(gs[k], hack, sizeof hack - 1, "4", 1, &r) == 0);
        CHECKF(r.verdict == SR_VERDICT_UNVERIFIABLE && !strcmp(r.reason, "prediction contains a NUL byte"),
               "%s (%s)", sr_verdict_name(r.verdict), r.reason);
        sr_grade_result_free(&r);
        CHECK(sr_grader_grade_n(gs[k], "\\boxed{4}", 9, "4\0" "5", 3, &r) == 0);
        CHECKF(r.verdict == SR_VERDICT_UNVERIFIABLE && !strcmp(r.reason, "reference contains a NUL byte"),
               "%s (%s)", sr_verdict_name(r.verdict), r.reason);
        sr_grade_result_free(&r);
        /* the length is the text: bytes after it are not read, and no NUL is needed */
        CHECK(sr_grader_grade_n(gs[k], "\\boxed{4}\\boxed{5}", 9, "45", 1, &r) == 0);
        CHECKF(r.verdict == SR_VERDICT_CORRECT, "%s (%s)", sr_verdict_name(r.verdict), r.reason);
        sr_grade_result_free(&r);
        CHECK(sr_grader_grade_n(gs[k], "\\boxed{4}\\boxed{5}", 18, "4", 1, &r) == 0);
        CHECK(r.verdict == SR_VERDICT_INCORRECT);
        sr_grade_result_free(&r);
    }
    /* the C-string entry point is the same grading up to the first NUL */
    SrGradeResult a, b;
    sr_grader_grade(ge, "\\boxed{\\frac{1}{2}}", "0.5", &a);
    sr_grader_grade_n(ge, "\\boxed{\\frac{1}{2}}", strlen("\\boxed{\\frac{1}{2}}"), "0.5", 3, &b);
    CHECK(a.verdict == SR_VERDICT_CORRECT && b.verdict == a.verdict && !strcmp(a.reason, b.reason) &&
          !strcmp(a.pred_normalized, b.pred_normalized));
    sr_grade_result_free(&a);
    sr_grade_result_free(&b);
    CHECK(sr_grader_grade_n(ge, NULL, 0, "1", 1, &a) == -1 && a.verdict == SR_VERDICT_UNVERIFIABLE);
    sr_grade_result_free(&a);
    sr_grader_free(ge);
    sr_grader_free(gr);
}

/* no global state: two graders interleaved agree with one grader alone */
static void test_independent(void) {
    const char *cases[][2] = {{"\\boxed{\\frac{1}{2}}", "0.5"}, {"\\boxed{x^2}", "x \\cdot x"},
                              {"\\boxed{3}", "4"}, {"\\boxed{(1,2)}", "[1,2]"}};
    SrGrader *a = sr_grader_new(NULL), *b = sr_grader_new(NULL);
    SrVerdict va[4], vb[4];
    for (int i = 0; i < 4; i++) {
        va[i] = grade1(a, cases[i][0], cases[i][1]);
        vb[i] = grade1(b, cases[3 - i][0], cases[3 - i][1]);
    }
    for (int i = 0; i < 4; i++) CHECK(va[i] == vb[3 - i]);
    sr_grader_free(a);
    sr_grader_free(b);
}

int main(void) {
    verbose = getenv("SR_GRADE_VERBOSE") != NULL;
    test_api();
    test_independent();
    test_bounds();
    test_work();
    test_lengths();
    test_agreement();
    return sr_test_done();
}
