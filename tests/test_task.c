/*
 * The demo's reasoning task (data/task.h) and its tokenizer (assets/demo_task/tokenizer):
 *   - the secret table is a permutation of 10..99 without fixed points, fixed by table_seed;
 *   - problems are deterministic in (cfg, seed, split, i) and differ across i and seeds;
 *   - every solution re-derives from its problem text (each step checked, easy and hard), the
 *     answer is the last value and the grader marks the solution correct, while changing any
 *     one hard result changes the answer (the grader then says incorrect);
 *   - hard spans are exactly the f-lines, and no other line applies f;
 *   - train and held-out problems never coincide, and each lies in its hash's split;
 *   - the tokenizer gives Hugging Face's ids on the committed golden texts
 *     (scripts/make_task_tokenizer.py, tokenizers 0.23.3) and has the R1 tokens and the tags.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json.h"
#include "../common/jsonl.h"
#include "../data/task.h"
#include "../data/tokenizer.h"
#include "../grade/grade.h"
#include "harness.h"

static void test_table(void) {
    TaskConfig c;
    task_config_default(&c);
    TaskConfig c2 = c;
    c2.table_seed++;
    for (int t = 0; t < TASK_MAX_TABLES; t++) {
        int seen[TASK_MAX_VALUE + 1] = {0}, fixed = 0, same = 0, other = 0;
        for (int x = TASK_MIN_VALUE; x <= TASK_MAX_VALUE; x++) {
            int y = task_table(&c, t, x);
            CHECKF(y >= TASK_MIN_VALUE && y <= TASK_MAX_VALUE, "table %d at %d = %d", t, x, y);
            if (y >= TASK_MIN_VALUE && y <= TASK_MAX_VALUE) seen[y]++;
            fixed += y == x;
            same += task_table(&c2, t, x) == y;
            other += task_table(&c, (t + 1) % TASK_MAX_TABLES, x) == y;
        }
        int perm = 1;
        for (int y = TASK_MIN_VALUE; y <= TASK_MAX_VALUE; y++) perm &= seen[y] == 1;
        CHECK(perm);
        CHECK(fixed == 0);
        CHECKF(same < 10 && other < 10, "table %d: %d entries equal under another seed, %d in the next table", t, same, other);
    }
    CHECK(task_table(&c, 0, 9) == -1 && task_table(&c, 0, 100) == -1 && task_table(&c, 4, 50) == -1);
}

/* re-derives a solution from its problem: the ops, each line, the spans, the answer */
static int parse_ops(const char *problem, int *start, char *op, int n_steps) {
    const char *head = "Fill in the blanks.\n";
    if (strncmp(problem, head, strlen(head))) return -1;
    const char *p = problem + strlen(head);
    for (int i = 0; i < n_steps; i++) {
        char want[32];
        if (strlen(p) < 14 || p[0] != 'A' + i || !strchr("fghk+-=", p[3])) return -1;
        op[i] = p[3];
        snprintf(want, sizeof want, "%c) %c __ -> __\n", 'A' + i, op[i]);
        if (strncmp(p, want, 14)) return -1;
        p += 14;
    }
    char tail[32];
    if (sscanf(p, "Start: %d", start) != 1) return -1;
    snprintf(tail, sizeof tail, "Start: %d", *start);
    return strcmp(p, tail) ? -1 : 0;
}

static int is_hard(char op) { return op && strchr(TASK_TABLE_NAMES, op) != NULL; }

/* one step; a table outside 10..99 (a perturbed chain) is extended injectively */
static int apply(const TaskConfig *c, char op, int v) {
    if (is_hard(op)) {
        int t = (int)(strchr(TASK_TABLE_NAMES, op) - TASK_TABLE_NAMES);
        return v >= TASK_MIN_VALUE && v <= TASK_MAX_VALUE ? task_table(c, t, v) : 1000 * (t + 1) + v;
    }
    if (op == '=') return v;
    return op == '+' ? v + 1 : v - 1;
}

static void check_problem(const TaskConfig *c, const TaskProblem *p, SrGrader *g) {
    int start;
    char op[TASK_MAX_STEPS];
    CHECKF(parse_ops(p->problem, &start, op, c->n_steps) == 0, "problem: %s", p->problem);
    const char *s = p->solution;
    char line[64];
    int v = start, hard_seen = 0, vals[TASK_MAX_STEPS + 1];
    vals[0] = start;
    snprintf(line, sizeof line, "<think>\nStart: %d\n", start);
    size_t at = strlen(line);
    CHECK(strncmp(s, line, at) == 0);
    for (int i = 0; i < c->n_steps; i++) {
        int next = apply(c, op[i], v);
        snprintf(line, sizeof line, "%c) %c %d -> %d\n", 'A' + i, op[i], v, next);
        size_t n = strlen(line);
        CHECKF(n == 14 && strncmp(s + at, line, n) == 0, "step %c: want '%.*s' in %s", 'A' + i, (int)n - 1, line, s);
        /* easy steps move only the units digit */
        if (!is_hard(op[i])) CHECK(next / 10 == v / 10);
        else CHECK(strchr(TASK_TABLE_NAMES, op[i]) - TASK_TABLE_NAMES < c->n_tables);
        CHECK(next >= TASK_MIN_VALUE && next <= TASK_MAX_VALUE);
        if (is_hard(op[i])) {
            CHECKF(hard_seen < p->n_hard && p->hard[hard_seen].start == at && p->hard[hard_seen].end == at + n,
                   "hard span %d of %s", hard_seen, s);
            hard_seen++;
        }
        at += n;
        v = next;
        vals[i + 1] = v;
    }
    CHECK(hard_seen == p->n_hard && p->n_hard == c->n_hard);
    snprintf(line, sizeof line, "</think>\n\n\\boxed{%d}", v);
    CHECKF(strcmp(s + at, line) == 0, "ending '%s'", s + at);
    snprintf(line, sizeof line, "%d", v);
    CHECK(strcmp(p->answer, line) == 0);
    /* no text outside the spans applies f */
    size_t from = 0;
    for (int i = 0; i <= p->n_hard; i++) {
        size_t to = i < p->n_hard ? p->hard[i].start : strlen(s);
        for (size_t k = from; k + 3 <= to; k++) CHECK(!(s[k] == ')' && is_hard(s[k + 2])));
        if (i < p->n_hard) from = p->hard[i].end;
    }
    SrGradeResult r;
    sr_grader_grade(g, s, p->answer, &r);
    CHECKF(r.verdict == SR_VERDICT_CORRECT, "%s vs %s: %s", s, p->answer, sr_verdict_name(r.verdict));
    sr_grade_result_free(&r);
    /* a wrong hard result makes the final answer wrong: the later steps are bijections */
    for (int i = 0; i < c->n_steps; i++) {
        if (!is_hard(op[i])) continue;
        int w = vals[i + 1] == TASK_MAX_VALUE ? TASK_MIN_VALUE : vals[i + 1] + 1;
        for (int j = i + 1; j < c->n_steps; j++) w = apply(c, op[j], w);
        CHECK(w != v);
        char wrong[160];
        snprintf(wrong, sizeof wrong, "<think>\n...\n</think>\n\n\\boxed{%d}", w);
        sr_grader_grade(g, wrong, p->answer, &r);
        CHECK(r.verdict == SR_VERDICT_INCORRECT);
        sr_grade_result_free(&r);
    }
}

static int cmp_u64(const void *a, const void *b) {
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static void test_problems(void) {
    SrError err;
    SrGrader *g = sr_grader_new(NULL);
    TaskConfig cfgs[3];
    task_config_default(&cfgs[0]);
    cfgs[1] = cfgs[0], cfgs[1].n_steps = 9, cfgs[1].n_hard = 4;
    cfgs[2] = cfgs[0], cfgs[2].n_steps = 1, cfgs[2].n_hard = 0; /* only easy: still well formed */
    cfgs[1].n_tables = 1;
    for (int ci = 0; ci < 3; ci++)
        for (int split = 0; split < 2; split++)
            for (uint64_t i = 0; i < 40; i++) {
                TaskProblem p;
                if (task_generate(&cfgs[ci], 5, (TaskSplit)split, i, &p, &err)) {
                    CHECKF(0, "%s", err.msg);
                    continue;
                }
                check_problem(&cfgs[ci], &p, g);
                CHECK(task_split_of(task_hash(p.problem)) == (TaskSplit)split && p.hash == task_hash(p.problem));
                task_problem_free(&p);
            }
    sr_grader_free(g);

    /* determinism: the same arguments give the same problem; i and seed change it */
    TaskProblem a, b, d, e;
    CHECK(task_generate(&cfgs[0], 1, TASK_TRAIN, 17, &a, &err) == 0);
    CHECK(task_generate(&cfgs[0], 1, TASK_TRAIN, 17, &b, &err) == 0);
    CHECK(task_generate(&cfgs[0], 1, TASK_TRAIN, 18, &d, &err) == 0);
    CHECK(task_generate(&cfgs[0], 2, TASK_TRAIN, 17, &e, &err) == 0);
    CHECK(!strcmp(a.problem, b.problem) && !strcmp(a.solution, b.solution) && !strcmp(a.answer, b.answer) &&
          a.n_hard == b.n_hard && !memcmp(a.hard, b.hard, sizeof a.hard));
    CHECK(strcmp(a.problem, d.problem) != 0 && strcmp(a.problem, e.problem) != 0);
    task_problem_free(&a);
    task_problem_free(&b);
    task_problem_free(&d);
    task_problem_free(&e);

    /* train and held-out are disjoint, also across seeds */
    enum { NT = 3000, NH = 400 };
    uint64_t *th = malloc(NT * sizeof *th);
    for (int i = 0; i < NT; i++) {
        CHECK(task_generate(&cfgs[0], 0, TASK_TRAIN, (uint64_t)i, &a, &err) == 0);
        th[i] = a.hash;
        task_problem_free(&a);
    }
    qsort(th, NT, sizeof *th, cmp_u64);
    int shared = 0, distinct = 1;
    for (int i = 1; i < NT; i++) distinct += th[i] != th[i - 1];
    for (int s = 0; s < 2; s++)
        for (int i = 0; i < NH; i++) {
            CHECK(task_generate(&cfgs[0], (uint64_t)s, TASK_HELDOUT, (uint64_t)i, &a, &err) == 0);
            shared += bsearch(&a.hash, th, NT, sizeof *th, cmp_u64) != NULL;
            task_problem_free(&a);
        }
    CHECK(shared == 0);
    CHECKF(distinct > NT * 95 / 100, "%d distinct of %d", distinct, NT); /* ~10^5 problems in all */
    free(th);

    /* a config out of range is refused, naming the field */
    TaskConfig bad = cfgs[0];
    bad.n_hard = 7;
    CHECK(task_generate(&bad, 0, TASK_TRAIN, 0, &a, &err) == -1 && strstr(err.msg, "n_hard"));
    bad = cfgs[0], bad.n_tables = 0;
    CHECK(task_config_check(&bad, &err) == -1 && strstr(err.msg, "n_tables"));
    bad = cfgs[0], bad.n_steps = TASK_MAX_STEPS + 1;
    CHECK(task_config_check(&bad, &err) == -1 && strstr(err.msg, "n_steps"));
}

static void test_tokenizer(void) {
    SrError err;
    Tokenizer *tok = NULL;
    if (tokenizer_load(&tok, "assets/demo_task/tokenizer", &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    CHECK(tokenizer_vocab_size(tok) == 264);
    CHECK(tokenizer_bos_id(tok) == 259 && tokenizer_eos_id(tok) == 256 && tokenizer_pad_id(tok) == 256);
    const char *names[] = {"<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜begin▁of▁sentence｜>",
                           "<think>", "</think>", "<bigmodel>", "</bigmodel>"};
    for (int i = 0; i < 8; i++) CHECKF(tokenizer_token_id(tok, names[i]) == 256 + i, "%s", names[i]);
    int32_t open_id, close_id;
    CHECK(tokenizer_add_bigmodel_tokens(tok, &open_id, &close_id, &err) == 0 && open_id == 262 && close_id == 263);
    CHECK(tokenizer_vocab_size(tok) == 264);
    /* byte-level: one id per byte, id = byte value */
    int32_t *ids = NULL;
    size_t n = 0;
    CHECK(tokenizer_encode(tok, "f(37) = 52\n", 11, &ids, &n, &err) == 0 && n == 11 && ids[0] == 'f' && ids[10] == '\n');
    free(ids);

    JsonlReader r;
    const char *path = sr_test_fixture("task_tokenizer/golden.jsonl");
    if (jsonl_open(&r, path, &err)) {
        CHECKF(0, "%s", err.msg);
        tokenizer_free(tok);
        return;
    }
    int rows = 0, same = 0, round = 0;
    while (jsonl_next(&r, &err) == 1) {
        cJSON *row = sr_json_parse(r.line, r.len, NULL);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(row, "text");
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(row, "ids");
        if (!cJSON_IsString(t) || !cJSON_IsArray(want)) {
            CHECKF(0, "%s:%ld: no text/ids", path, r.lineno);
            cJSON_Delete(row);
            continue;
        }
        rows++;
        size_t len = strlen(t->valuestring);
        int ok = tokenizer_encode(tok, t->valuestring, len, &ids, &n, &err) == 0 &&
                 (int)n == cJSON_GetArraySize(want);
        for (size_t i = 0; ok && i < n; i++) ok = ids[i] == (int32_t)cJSON_GetArrayItem(want, (int)i)->valuedouble;
        CHECKF(ok, "%s:%ld: ids differ from HF's", path, r.lineno);
        same += ok;
        char *text = NULL;
        size_t tl = 0;
        if (ok && tokenizer_decode(tok, ids, n, &text, &tl, &err) == 0) round += tl == len && !memcmp(text, t->valuestring, len);
        free(text);
        free(ids);
        cJSON_Delete(row);
    }
    jsonl_close(&r);
    CHECKF(rows >= 100 && same == rows, "%d of %d rows as HF", same, rows);
    CHECKF(round >= rows - 2, "%d of %d round trips", round, rows); /* the non-NFC texts come back NFC */
    tokenizer_free(tok);
}

int main(void) {
    test_table();
    test_problems();
    test_tokenizer();
    return sr_test_done();
}
