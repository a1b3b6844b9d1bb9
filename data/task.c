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
    c->max_k = 2;
}

int task_config_check(const TaskConfig *c, SrError *err) {
    if (c->n_steps < 1 || c->n_steps > TASK_MAX_STEPS)
        return sr_fail(err, "task: n_steps %d is not in 1..%d", c->n_steps, TASK_MAX_STEPS);
    if (c->n_hard < 0 || c->n_hard > c->n_steps)
        return sr_fail(err, "task: n_hard %d is not in 0..n_steps (%d)", c->n_hard, c->n_steps);
    if (c->max_k < 1 || c->max_k > 9) return sr_fail(err, "task: max_k %d is not in 1..9", c->max_k);
    return 0;
}

/* the secret table: a random cyclic permutation of 10..99 from table_seed (Sattolo's shuffle:
 * no fixed point, so f(x) is never a copy of x) */
static void make_table(const TaskConfig *c, int *t) {
    uint64_t s = sr_rng_stream(c->table_seed, 0x7ab1e);
    for (int i = 0; i < TASK_N_VALUES; i++) t[i] = TASK_MIN_VALUE + i;
    for (int i = TASK_N_VALUES - 1; i > 0; i--) {
        int j = (int)(sr_rng_u64(&s) % (uint64_t)i);
        int tmp = t[i];
        t[i] = t[j];
        t[j] = tmp;
    }
}

int task_table(const TaskConfig *c, int x) {
    if (x < TASK_MIN_VALUE || x > TASK_MAX_VALUE) return -1;
    int t[TASK_N_VALUES];
    make_table(c, t);
    return t[x - TASK_MIN_VALUE];
}

uint64_t task_hash(const char *problem) {
    uint64_t h = 0xcbf29ce484222325ULL;
    for (const unsigned char *p = (const unsigned char *)problem; *p; p++) h = (h ^ *p) * 0x100000001b3ULL;
    return h;
}

TaskSplit task_split_of(uint64_t hash) { return hash % 8 == 0 ? TASK_HELDOUT : TASK_TRAIN; }

static int randint(uint64_t *s, int n) { return (int)(sr_rng_u64(s) % (uint64_t)n); }

/* step kinds: k[i] = 0 f, SWAP swap the digits, else add k[i] (negative: subtract) */
#define SWAP 100

/* one candidate problem from the stream s */
static void draw(const TaskConfig *c, const int *table, uint64_t *s, TaskProblem *p) {
    /* which steps are f: n_hard distinct positions */
    int hard[TASK_MAX_STEPS] = {0}, k[TASK_MAX_STEPS] = {0};
    for (int placed = 0; placed < c->n_hard;) {
        int i = randint(s, c->n_steps);
        if (!hard[i]) hard[i] = 1, placed++;
    }
    int v[TASK_MAX_STEPS + 1];
    v[0] = TASK_MIN_VALUE + randint(s, TASK_N_VALUES);
    for (int i = 0; i < c->n_steps; i++) {
        if (hard[i]) {
            v[i + 1] = table[v[i] - TASK_MIN_VALUE];
            continue;
        }
        /* the easy steps that keep a two-digit value and move no carry: +k with u + k <= 9,
         * -k with u - k >= 0, swap when the units digit is not 0; one of them at random */
        int u = v[i] % 10, cand[2 * 9 + 1], n = 0;
        for (int j = 1; j <= c->max_k; j++) {
            if (u + j <= 9) cand[n++] = j;
            if (u - j >= 0) cand[n++] = -j;
        }
        if (u != 0) cand[n++] = SWAP;
        k[i] = cand[randint(s, n)]; /* n >= 1: u + 1 <= 9 or u - 1 >= 0 */
        v[i + 1] = k[i] == SWAP ? u * 10 + v[i] / 10 : v[i] + k[i];
    }

    SrBuf b = {0};
    sr_buf_printf(&b, "Start: %d. Apply", v[0]);
    for (int i = 0; i < c->n_steps; i++) {
        if (hard[i]) sr_buf_printf(&b, " %c) f", 'A' + i);
        else if (k[i] == SWAP) sr_buf_printf(&b, " %c) swap", 'A' + i);
        else sr_buf_printf(&b, " %c) %+d", 'A' + i, k[i]);
    }
    sr_buf_str(&b, ".");
    p->problem = sr_buf_take(&b);

    sr_buf_printf(&b, "<think>\nStart: %d\n", v[0]);
    p->n_hard = 0;
    for (int i = 0; i < c->n_steps; i++) {
        size_t start = b.n;
        /* "X) op: in -> out": the label and the operation are copied from the problem as they
         * stand there, then the previous value, then the result */
        if (hard[i]) sr_buf_printf(&b, "%c) f: %d -> %d\n", 'A' + i, v[i], v[i + 1]);
        else if (k[i] == SWAP) sr_buf_printf(&b, "%c) swap: %d -> %d\n", 'A' + i, v[i], v[i + 1]);
        else sr_buf_printf(&b, "%c) %+d: %d -> %d\n", 'A' + i, k[i], v[i], v[i + 1]);
        if (hard[i]) p->hard[p->n_hard++] = (TaskSpan){start, b.n};
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
    int table[TASK_N_VALUES];
    make_table(c, table);
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
