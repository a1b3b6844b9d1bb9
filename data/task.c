/*
 * The reasoning task with known hard steps (see task.h).
 */
#include "task.h"

#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/rng.h"

/* how many candidates task_generate draws before it gives up (the held-out split takes 1 in
 * 8, so 4096 failures in a row cannot happen with a sane config) */
#define MAX_DRAWS 4096

void task_config_default(TaskConfig *c) {
    c->table_seed = 20261202;
    c->n_steps = 6;
    c->n_hard = 2;
    c->n_tables = 4;
}

int task_config_check(const TaskConfig *c, SrError *err) {
    if (c->n_steps < 1 || c->n_steps > TASK_MAX_STEPS)
        return sr_fail(err, "task: n_steps %d is not in 1..%d", c->n_steps, TASK_MAX_STEPS);
    if (c->n_hard < 0 || c->n_hard > c->n_steps)
        return sr_fail(err, "task: n_hard %d is not in 0..n_steps (%d)", c->n_hard, c->n_steps);
    if (c->n_tables < 1 || c->n_tables > TASK_MAX_TABLES)
        return sr_fail(err, "task: n_tables %d is not in 1..%d", c->n_tables, TASK_MAX_TABLES);
    return 0;
}

/* secret table t: a random cyclic permutation of 10..99 from table_seed (Sattolo's shuffle:
 * no fixed point, so f(x) is never a copy of x) */
static void make_table(const TaskConfig *c, int which, int *t) {
    uint64_t s = sr_rng_stream(c->table_seed, 0x7ab1e + (uint64_t)which);
    for (int i = 0; i < TASK_N_VALUES; i++) t[i] = TASK_MIN_VALUE + i;
    for (int i = TASK_N_VALUES - 1; i > 0; i--) {
        int j = (int)(sr_rng_u64(&s) % (uint64_t)i);
        int tmp = t[i];
        t[i] = t[j];
        t[j] = tmp;
    }
}

int task_table(const TaskConfig *c, int which, int x) {
    if (which < 0 || which >= TASK_MAX_TABLES || x < TASK_MIN_VALUE || x > TASK_MAX_VALUE) return -1;
    int t[TASK_N_VALUES];
    make_table(c, which, t);
    return t[x - TASK_MIN_VALUE];
}

uint64_t task_hash(const char *problem) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)problem; *p; p++) h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

TaskSplit task_split_of(uint64_t hash) { return hash % 8 == 0 ? TASK_HELDOUT : TASK_TRAIN; }

static int randint(uint64_t *s, int n) { return (int)(sr_rng_u64(s) % (uint64_t)n); }

/* one candidate problem from the stream s; op[i]: a table's letter (hard), '+', '-' or '='
 * (easy) */
static void draw(const TaskConfig *c, int (*table)[TASK_N_VALUES], uint64_t *s, TaskProblem *p) {
    char op[TASK_MAX_STEPS] = {0};
    int tab[TASK_MAX_STEPS];
    for (int placed = 0; placed < c->n_hard;) { /* n_hard distinct positions, a table each */
        int i = randint(s, c->n_steps);
        if (op[i]) continue;
        tab[i] = randint(s, c->n_tables);
        op[i] = TASK_TABLE_NAMES[tab[i]];
        placed++;
    }
    int v[TASK_MAX_STEPS + 1];
    v[0] = TASK_MIN_VALUE + randint(s, TASK_N_VALUES);
    for (int i = 0; i < c->n_steps; i++) {
        int x = v[i], u = x % 10;
        if (op[i]) {
            v[i + 1] = table[tab[i]][x - TASK_MIN_VALUE];
            continue;
        }
        /* the easy steps that keep a two-digit value and move no carry: + (add 1) when u <= 8,
         * - (subtract 1) when u >= 1, = (the same value) always; one at random */
        char cand[3];
        int n = 0;
        if (u <= 8) cand[n++] = '+';
        if (u >= 1) cand[n++] = '-';
        cand[n++] = '=';
        op[i] = cand[randint(s, n)];
        v[i + 1] = op[i] == '+' ? x + 1 : op[i] == '-' ? x - 1 : x;
    }

    /* the worksheet: every line has the same length in the problem and in the solution, so
     * a model finds what it copies (the step's operation, the previous value) at fixed
     * distances and only the results are to be worked out */
    SrBuf b = {0};
    sr_buf_str(&b, "Fill in the blanks.\n");
    for (int i = 0; i < c->n_steps; i++) sr_buf_printf(&b, "%c) %c __ -> __\n", 'A' + i, op[i]);
    sr_buf_printf(&b, "Start: %d", v[0]); /* last: the solution's first line copies it from close by */
    p->problem = sr_buf_take(&b);

    sr_buf_printf(&b, "<think>\nStart: %d\n", v[0]);
    p->n_hard = 0;
    for (int i = 0; i < c->n_steps; i++) {
        size_t start = b.n;
        sr_buf_printf(&b, "%c) %c %d -> %d\n", 'A' + i, op[i], v[i], v[i + 1]);
        if (strchr(TASK_TABLE_NAMES, op[i])) p->hard[p->n_hard++] = (TaskSpan){start, b.n};
    }
    sr_buf_printf(&b, "</think>\n\n\\boxed{%d}", v[c->n_steps]);
    p->solution = sr_buf_take(&b);
    sr_buf_printf(&b, "%d", v[c->n_steps]);
    p->answer = sr_buf_take(&b);
    p->hash = task_hash(p->problem);
}

int task_generate(const TaskConfig *c, uint64_t seed, TaskSplit split, uint64_t i, TaskProblem *p,
                  SrError *err) {
    memset(p, 0, sizeof *p);
    if (task_config_check(c, err)) return -1;
    int table[TASK_MAX_TABLES][TASK_N_VALUES];
    for (int t = 0; t < c->n_tables; t++) make_table(c, t, table[t]);
    /* the two splits draw from different streams; within a split, problem i from its own */
    uint64_t s = sr_rng_stream(seed, 2 * i + (uint64_t)split);
    for (int d = 0; d < MAX_DRAWS; d++) {
        draw(c, table, &s, p);
        if (task_split_of(p->hash) == split) return 0;
        task_problem_free(p);
    }
    return sr_fail(err, "task: no %s problem in %d draws (n_steps %d)", split == TASK_TRAIN ? "train" : "held-out",
                   MAX_DRAWS, c->n_steps);
}

void task_problem_free(TaskProblem *p) {
    free(p->problem);
    free(p->solution);
    free(p->answer);
    memset(p, 0, sizeof *p);
}
