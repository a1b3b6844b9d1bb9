/*
 * splitreason task: the synthetic reasoning task of the embedded default (data/task.h) as
 * OpenR1-style JSONL, train.jsonl and heldout.jsonl in --out, plus task.json (the settings).
 * One row per problem:
 *   {"problem", "solution", "answer", "generations": [solution], "correctness_math_verify": [true],
 *    "uuid", "hard_spans": [[start, end], ...], "annotated"}
 * hard_spans are character offsets into the solution (the hard steps' lines), "annotated" is
 * the solution with each of them wrapped in <bigmodel>...</bigmodel> exactly as `annotate`
 * writes its "annotated" field, so `prepare` reads either file unchanged (the plain solutions
 * with --completion-field solution, the tagged ones by default). Hard steps on consecutive
 * lines are one tagged span, as annotate merges touching spans.
 * The problems of a split are distinct (a problem drawn again is skipped: the uuid, the
 * problem's hash, is a benchmark id), so a file holds problems 0, 1, ... of its split minus
 * the repeats.
 */
#include <stdlib.h>
#include <string.h>

#include "../annotate/text.h"
#include "../common/buf.h"
#include "../common/log.h"
#include "../data/task.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"out", SR_OPT_STR, "null", "output directory (created): train.jsonl, heldout.jsonl, task.json", SR_REQUIRED},
    {"n_train", SR_OPT_INT, "12000", "training problems", SR_RANGE(0, 100000000)},
    {"n_heldout", SR_OPT_INT, "200", "held-out problems (never in train)", SR_RANGE(0, 100000000)},
    {"seed", SR_OPT_INT, "0", "seed of the problems (the secret tables do not depend on it)", SR_RANGE(0, SR_JSON_INT_MAX)},
    {"steps", SR_OPT_INT, "6", "operations per problem", SR_RANGE(1, TASK_MAX_STEPS)},
    {"hard_steps", SR_OPT_INT, "2", "of which hard (a secret table: f, g, h or k)", SR_RANGE(0, TASK_MAX_STEPS)},
    {"tables", SR_OPT_INT, "4", "secret tables in use (f, g, h, k: 90 entries each)", SR_RANGE(1, TASK_MAX_TABLES)},
    {"table_seed", SR_OPT_INT, "20261202", "seed of the secret tables (models trained on one set know only that one)", SR_RANGE(0, SR_JSON_INT_MAX)},
};

static int check(const SrConfig *cfg, SrError *err) {
    if (sr_config_int(cfg, "hard_steps") > sr_config_int(cfg, "steps"))
        return sr_fail(err, "--hard-steps %lld is more than --steps %lld", sr_config_int(cfg, "hard_steps"),
                       sr_config_int(cfg, "steps"));
    return 0;
}

static void row_json(SrBuf *b, const TaskProblem *p) {
    size_t sl = strlen(p->solution);
    sr_buf_str(b, "{\"problem\": ");
    sr_buf_json_string(b, p->problem, strlen(p->problem));
    sr_buf_str(b, ", \"solution\": ");
    sr_buf_json_string(b, p->solution, sl);
    sr_buf_str(b, ", \"answer\": ");
    sr_buf_json_string(b, p->answer, strlen(p->answer));
    sr_buf_str(b, ", \"generations\": [");
    sr_buf_json_string(b, p->solution, sl);
    sr_buf_printf(b, "], \"correctness_math_verify\": [true], \"uuid\": \"task-%016llx\", \"hard_spans\": [",
                  (unsigned long long)p->hash);
    /* consecutive hard steps are one span in the tags, as annotate merges touching spans */
    ByteSpan bs[TASK_MAX_STEPS];
    int nb = 0;
    for (int i = 0; i < p->n_hard; i++) {
        sr_buf_printf(b, i ? ", [%zu, %zu]" : "[%zu, %zu]", p->hard[i].start, p->hard[i].end);
        if (nb > 0 && bs[nb - 1].b1 == p->hard[i].start) bs[nb - 1].b1 = p->hard[i].end;
        else bs[nb++] = (ByteSpan){p->hard[i].start, p->hard[i].end}; /* ASCII: characters are bytes */
    }
    size_t an;
    char *annotated = text_annotate(p->solution, sl, bs, nb, &an);
    sr_buf_str(b, "], \"annotated\": ");
    sr_buf_json_string(b, annotated, an);
    sr_buf_str(b, "}\n");
    free(annotated);
}

static int write_split(const char *dir, const char *name, const TaskConfig *tc, uint64_t seed, TaskSplit split,
                       long long n, SrError *err) {
    char *path = sr_path_join(dir, name);
    SrOutFile o;
    if (sr_out_open(&o, path, err)) {
        free(path);
        return -1;
    }
    SrBuf b = {0};
    int rc = 0;
    long long spans = 0, written = 0;
    /* the hashes seen, open addressing (0 marks a free slot; a hash of 0 is stored as 1) */
    size_t cap = 16;
    while (cap < 2 * (size_t)n) cap *= 2;
    uint64_t *seen = sr_calloc(cap, sizeof(uint64_t));
    long long max_draws = 20 * n + 1000;
    for (long long i = 0; written < n && !rc; i++) {
        if (i == max_draws) {
            rc = sr_fail(err, "%s: only %lld distinct problems in %lld draws (--steps/--hard-steps leave too few)",
                         path, written, max_draws);
            break;
        }
        TaskProblem p;
        if (task_generate(tc, seed, split, (uint64_t)i, &p, err)) {
            rc = -1;
            break;
        }
        uint64_t h = p.hash ? p.hash : 1;
        size_t k = (size_t)h & (cap - 1);
        while (seen[k] && seen[k] != h) k = (k + 1) & (cap - 1);
        if (seen[k] == h) { /* drawn before */
            task_problem_free(&p);
            continue;
        }
        seen[k] = h;
        written++;
        sr_buf_clear(&b);
        row_json(&b, &p);
        spans += p.n_hard;
        if (fwrite(b.p, 1, b.n, o.f) != b.n) rc = sr_fail(err, "%s: write failed", path);
        task_problem_free(&p);
    }
    sr_buf_free(&b);
    free(seen);
    if (rc) sr_out_abort(&o);
    else rc = sr_out_commit(&o, err);
    if (!rc) sr_log("task: %s: %lld problems, %lld hard steps", path, n, spans);
    free(path);
    return rc;
}

static int run(SrConfig *cfg, SrError *err) {
    const char *out = sr_config_str(cfg, "out");
    TaskConfig tc;
    task_config_default(&tc);
    tc.n_steps = (int)sr_config_int(cfg, "steps");
    tc.n_hard = (int)sr_config_int(cfg, "hard_steps");
    tc.n_tables = (int)sr_config_int(cfg, "tables");
    tc.table_seed = (uint64_t)sr_config_int(cfg, "table_seed");
    uint64_t seed = (uint64_t)sr_config_int(cfg, "seed");
    if (task_config_check(&tc, err) || sr_mkdir_p(out, err)) return -1;
    if (write_split(out, "train.jsonl", &tc, seed, TASK_TRAIN, sr_config_int(cfg, "n_train"), err) ||
        write_split(out, "heldout.jsonl", &tc, seed, TASK_HELDOUT, sr_config_int(cfg, "n_heldout"), err))
        return -1;
    /* the settings, so that a run directory says which task it holds */
    char *path = sr_path_join(out, "task.json");
    SrOutFile o;
    int rc = sr_out_open(&o, path, err);
    if (!rc) {
        fprintf(o.f,
                "{\"task\": \"secret_table_worksheet\", \"table_seed\": %llu, \"steps\": %d, \"hard_steps\": %d, "
                "\"tables\": %d, \"seed\": %llu, \"n_train\": %lld, \"n_heldout\": %lld}\n",
                (unsigned long long)tc.table_seed, tc.n_steps, tc.n_hard, tc.n_tables, (unsigned long long)seed,
                sr_config_int(cfg, "n_train"), sr_config_int(cfg, "n_heldout"));
        rc = sr_out_commit(&o, err);
    }
    free(path);
    return rc;
}

const SrCommand sr_cmd_task = {
    "task", "write the synthetic reasoning task (known hard steps) as train/held-out JSONL",
    "splitreason task --out DIR [--n-train N] [--n-heldout N] [--seed S]",
    "Generates worksheets of two-digit steps solved in the R1 format (data/task.h): easy steps\n"
    "add or subtract 1 or restate the value, hard steps apply one of the secret tables f, g, h, k\n"
    "(permutations of 10..99 that a model can only memorise). Writes DIR/train.jsonl and\n"
    "DIR/heldout.jsonl (OpenR1 fields, plus hard_spans: character offsets of the hard steps' lines\n"
    "in the solution, and annotated: the solution with them in <bigmodel>...</bigmodel>) and\n"
    "DIR/task.json. Held-out problems never appear in train, whatever the seeds.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL, check,
};
