/*
 * splitreason sweep: GRPO over latency penalties, then the accuracy-versus-cost picture
 * (RL4E's Pareto curve). For each lambda of --latency-penalties:
 *
 *   OUT/lambda-<l>/           a `splitreason grpo` run of the config with latency_penalty = l
 *                             (its settings in sweep_config.json; resumed from its latest
 *                             checkpoint when interrupted; skipped once DONE names its model)
 *   OUT/eval/lambda-<l>/      `eval` of its last checkpoint in split mode on --eval-benchmark
 *                             (resumed when interrupted; skipped once it has summary.json)
 * and, unless --eval-references false, the reference points decoded the same way:
 *   OUT/eval/small_only/      model_name_or_path alone
 *   OUT/eval/big_only/        big_model_name_or_path alone
 *   OUT/eval/split_initial/   model_name_or_path + the big model, before RL
 *   OUT/eval/random_switch/   model_name_or_path + the big model with random hand-overs at
 *                             split_initial's offload share and mean span length
 * then OUT/sweep.json, OUT/pareto.svg (accuracy against modelled latency and against offload
 * share) and a table on stdout. OUT is the config's output_dir.
 *
 * The options are grpo's (GRPO_OPTIONS: `--config FILE` holds a grpo config, `--key value`
 * overrides any key for every run) plus the sweep's own (SWEEP_OWN). Eval prompts are built as
 * grpo builds its rollouts' (the problem alone as the user turn, system_prompt as the system
 * turn), with latency_table for the modelled latency.
 *
 * sweep.json: {"benchmark", "samples", "runs": [{"latency_penalty", "accuracy", "offload_share",
 *   "modelled_latency", "wall_time_s", "switches_per_sample", "model", "eval_dir",
 *   "grpo_seconds"}], "reference": {"small_only" | "big_only" | "split_initial" |
 *   "random_switch": {"accuracy", "offload_share", "modelled_latency", "wall_time_s", ...}}}
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/json.h"
#include "../common/log.h"
#include "../eval/pareto.h"
#include "../eval/report.h"
#include "../train/checkpoint.h"
#include "../train/grpo.h"
#include "cli.h"

#define MAX_LAMBDAS 64

static const SrOption SWEEP_OWN[] = {
    {"latency_penalties", SR_OPT_JSON, "null", "the lambdas, one GRPO run each: a comma list (0,0.25,1,4) or a JSON list", SR_REQUIRED},
    {"eval_benchmark", SR_OPT_STR, "\"math500\"", "what each run is evaluated on: aime24, aime25, math500, amc23 or a JSONL FILE"},
    {"eval_samples", SR_OPT_INT, "1", "samples per problem (pass@1 is their mean)", SR_RANGE(1, 1000000)},
    {"eval_temperature", SR_OPT_FLOAT, "0", "eval's sampling temperature (0: greedy)", SR_RANGE(0, 1e6)},
    {"eval_top_p", SR_OPT_FLOAT, "1", "eval's nucleus mass", SR_RANGE_X(0, 1, 1, 0)},
    {"eval_max_new_tokens", SR_OPT_INT, "null", "eval's token budget (default: max_completion_length)", SR_RANGE(1, 1048576)},
    {"eval_limit", SR_OPT_INT, "0", "only the first N problems (0: all)", SR_RANGE(0, 1e9)},
    {"eval_batch", SR_OPT_INT, "64", "requests decoding at once in eval", SR_RANGE(1, 65536)},
    {"eval_random_model", SR_OPT_STR, "null", "the small model of the random-switch reference (default: model_name_or_path; give one that never tags for pure random hand-overs)"},
    {"eval_references", SR_OPT_BOOL, "true", "also evaluate small-only, big-only, the initial split model and random switch"},
};
#define N_OWN ((int)(sizeof SWEEP_OWN / sizeof SWEEP_OWN[0]))

/* The command's table is the sweep's keys followed by grpo's. C cannot join two arrays of
 * another file at compile time, so they are copied in before main runs. */
static SrOption OPTS[N_OWN + GRPO_N_OPTIONS];
__attribute__((constructor)) static void sweep_options_init(void) {
    memcpy(OPTS, SWEEP_OWN, sizeof SWEEP_OWN);
    memcpy(OPTS + N_OWN, GRPO_OPTIONS, sizeof GRPO_OPTIONS);
}

/* --latency-penalties: "0,0.25,1,4", [0, 0.25, 1, 4] or one number */
static int parse_lambdas(const SrConfig *cfg, double *l, int *n, SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg->root, "latency_penalties");
    *n = 0;
    if (cJSON_IsNumber(v)) l[(*n)++] = v->valuedouble;
    else if (cJSON_IsArray(v)) {
        const cJSON *x;
        cJSON_ArrayForEach(x, v) {
            if (!cJSON_IsNumber(x)) return sr_fail(err, "--latency-penalties: the list holds a non-number");
            if (*n == MAX_LAMBDAS) return sr_fail(err, "--latency-penalties: more than %d values", MAX_LAMBDAS);
            l[(*n)++] = x->valuedouble;
        }
    } else if (cJSON_IsString(v)) {
        const char *s = v->valuestring;
        while (*s) {
            char *end;
            double d = strtod(s, &end);
            if (end == s || (*end && *end != ',')) return sr_fail(err, "--latency-penalties: expected numbers separated by commas, got '%s'", v->valuestring);
            if (*n == MAX_LAMBDAS) return sr_fail(err, "--latency-penalties: more than %d values", MAX_LAMBDAS);
            l[(*n)++] = d;
            s = *end ? end + 1 : end;
        }
    }
    if (*n == 0) return sr_fail(err, "--latency-penalties: no values");
    for (int i = 0; i < *n; i++) {
        if (!(l[i] >= 0 && l[i] <= 1e9)) return sr_fail(err, "--latency-penalties: %g is not in [0, 1e9]", l[i]);
        for (int j = 0; j < i; j++)
            if (l[j] == l[i]) return sr_fail(err, "--latency-penalties: %g is given twice", l[i]);
    }
    return 0;
}

static int check(const SrConfig *cfg, SrError *err) {
    double l[MAX_LAMBDAS];
    int n;
    if (parse_lambdas(cfg, l, &n, err)) return -1;
    GrpoOptions o;
    if (grpo_options_from_config(&o, cfg, err)) return -1;
    if (!o.big_model_name_or_path) return sr_fail(err, "big_model_name_or_path: the sweep evaluates in split mode and needs the big model");
    return 0;
}

typedef struct Point {
    double lambda, accuracy, offload_share, modelled_latency, wall_time_s, switches, big_tokens, grpo_seconds;
    char model[4096], eval_dir[4096];
} Point;

static double num(const cJSON *o, const char *key) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return cJSON_IsNumber(v) ? v->valuedouble : NAN;
}

/* the lambda as a directory name: 0.25 -> "lambda-0.25" */
static void lambda_name(double l, char *buf, size_t n) { snprintf(buf, n, "lambda-%g", l); }

typedef struct Sweep {
    const SrConfig *cfg;
    GrpoOptions o;
    const char *out;
    char max_new[32], samples[32], temp[32], top_p[32], limit[32], batch[32];
} Sweep;

/* eval of one model in one mode into p (skipped when its summary.json exists, resumed when its
 * directory holds an unfinished run) */
static int run_eval(Sweep *S, const char *name, const char *mode, const char *small, const Point *split_ref,
                    Point *p, SrError *err) {
    const GrpoOptions *o = &S->o;
    snprintf(p->eval_dir, sizeof p->eval_dir, "%s/eval/%s", S->out, name);
    char *summary = sr_path_join(p->eval_dir, "summary.json");
    int done = sr_file_exists(summary);
    if (!done) {
        char *run_json = sr_path_join(p->eval_dir, "run.json");
        int resume = sr_file_exists(run_json);
        free(run_json);
        char share[32], span[32];
        char *a[48] = {"--small", (char *)small, "--big", (char *)o->big_model_name_or_path,
                       "--benchmark", (char *)sr_config_str(S->cfg, "eval_benchmark"), "--mode", (char *)mode,
                       "--samples", S->samples, "--temperature", S->temp, "--top-p", S->top_p,
                       "--max-new-tokens", S->max_new, "--limit", S->limit, "--batch", S->batch,
                       "--instruction", "", "--output", p->eval_dir, "--device", (char *)o->harness.device,
                       "--seed", "0"};
        int n = 28;
        if (o->system_prompt) {
            a[n++] = "--system";
            a[n++] = (char *)o->system_prompt;
        }
        if (o->latency_table) {
            a[n++] = "--latency-table";
            a[n++] = (char *)o->latency_table;
        }
        if (resume) a[n++] = "--resume";
        if (split_ref) { /* random switch at the initial split run's share and mean span */
            eval_random_switch_args(split_ref->offload_share, split_ref->switches, split_ref->big_tokens, share, span);
            a[n++] = "--random-share";
            a[n++] = share;
            a[n++] = "--random-span";
            a[n++] = span;
        }
        if (sr_cli_step("sweep", &sr_cmd_eval, a, n, err)) {
            free(summary);
            return -1;
        }
    }
    EvalSummary es;
    int rc = eval_summary_read(summary, &es, &p->wall_time_s, err);
    free(summary);
    if (rc) return -1;
    snprintf(p->model, sizeof p->model, "%s", small);
    p->accuracy = es.pass_at_1;
    p->offload_share = es.offload_share;
    p->modelled_latency = es.modelled_latency;
    p->switches = es.switches_per_sample;
    p->big_tokens = es.big_tokens_per_sample;
    return 0;
}

/* one GRPO run (skipped when DONE exists; else started, or resumed from its latest checkpoint) */
static int run_grpo(Sweep *S, double lambda, Point *p, SrError *err) {
    char name[64], dir[4096];
    lambda_name(lambda, name, sizeof name);
    snprintf(dir, sizeof dir, "%s/%s", S->out, name);
    char *done = sr_path_join(dir, "DONE");
    char *cfg_path = sr_path_join(dir, "sweep_config.json");
    /* this run's settings: the sweep's grpo keys with its lambda and directory */
    cJSON *c = cJSON_Duplicate(S->cfg->root, 1);
    for (int i = 0; i < N_OWN; i++) cJSON_DeleteItemFromObjectCaseSensitive(c, SWEEP_OWN[i].key);
    cJSON_ReplaceItemInObjectCaseSensitive(c, "latency_penalty", cJSON_CreateNumber(lambda));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "output_dir", cJSON_CreateString(dir));
    cJSON_ReplaceItemInObjectCaseSensitive(c, "resume_from_checkpoint", cJSON_CreateTrue());
    int rc = 0;
    if (sr_file_exists(cfg_path)) { /* a run of this sweep before: it must have had these settings */
        cJSON *old = sr_json_read_object_file(cfg_path, err);
        if (!old) rc = -1;
        const cJSON *k;
        cJSON_ArrayForEach(k, c) {
            if (rc) break;
            if (!strcmp(k->string, "stop_after_steps")) continue; /* an interruption, not a setting */
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(old, k->string);
            if (!v || !cJSON_Compare(v, k, 1)) {
                char *was = v ? cJSON_PrintUnformatted(v) : NULL, *now = cJSON_PrintUnformatted(k);
                rc = sr_fail(err, "%s: was run with %s = %.60s, now %.60s: use another output_dir, or remove it to start over",
                             cfg_path, k->string, was ? was : "(unset)", now);
                free(was);
                free(now);
            }
        }
        cJSON_Delete(old);
    }
    if (!rc && !sr_file_exists(done)) {
        double t0 = sr_now();
        rc = sr_mkdir_p(dir, err);
        char *text = cJSON_Print(c);
        if (!rc) rc = sr_write_file_atomic(cfg_path, text, strlen(text), err);
        free(text);
        char *a[] = {"--config", cfg_path};
        if (!rc) rc = sr_cli_step("sweep", &sr_cmd_grpo, a, 2, err);
        int step = 0;
        char ckpt[4096];
        if (!rc) {
            int found = checkpoint_find_latest(dir, ckpt, sizeof ckpt, &step, err);
            if (found < 0) rc = -1;
            else if (!found) rc = sr_fail(err, "%s: grpo left no checkpoint", dir);
        }
        if (!rc && sr_config_int(S->cfg, "stop_after_steps") > 0)
            rc = sr_fail(err, "%s: stopped after step %d as stop_after_steps asks; run the sweep again to go on", dir, step);
        if (!rc) {
            cJSON *rec = cJSON_CreateObject();
            cJSON_AddStringToObject(rec, "model", ckpt);
            cJSON_AddNumberToObject(rec, "grpo_seconds", sr_now() - t0);
            char *t = cJSON_PrintUnformatted(rec);
            cJSON_Delete(rec);
            rc = sr_write_file_atomic(done, t, strlen(t), err);
            free(t);
        }
    } else if (!rc)
        fprintf(stderr, "[splitreason] sweep: %s is done (%s): skipped\n", dir, done);
    cJSON_Delete(c);
    free(cfg_path);
    cJSON *d = rc ? NULL : sr_json_read_object_file(done, err);
    free(done);
    if (!d) return -1;
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(d, "model");
    if (!cJSON_IsString(m)) {
        cJSON_Delete(d);
        return sr_fail(err, "%s/DONE: no \"model\"", dir);
    }
    snprintf(p->model, sizeof p->model, "%s", m->valuestring);
    p->grpo_seconds = num(d, "grpo_seconds");
    cJSON_Delete(d);
    p->lambda = lambda;
    return 0;
}

static cJSON *point_json(const Point *p, int with_lambda) {
    cJSON *o = cJSON_CreateObject();
    if (with_lambda) cJSON_AddNumberToObject(o, "latency_penalty", p->lambda);
    cJSON_AddNumberToObject(o, "accuracy", p->accuracy);
    cJSON_AddNumberToObject(o, "offload_share", p->offload_share);
    if (isfinite(p->modelled_latency)) cJSON_AddNumberToObject(o, "modelled_latency", p->modelled_latency);
    else cJSON_AddNullToObject(o, "modelled_latency"); /* no latency_table */
    cJSON_AddNumberToObject(o, "wall_time_s", p->wall_time_s);
    cJSON_AddNumberToObject(o, "switches_per_sample", p->switches);
    cJSON_AddStringToObject(o, "model", p->model);
    cJSON_AddStringToObject(o, "eval_dir", p->eval_dir);
    if (with_lambda) cJSON_AddNumberToObject(o, "grpo_seconds", isfinite(p->grpo_seconds) ? p->grpo_seconds : 0);
    return o;
}

enum { R_SMALL = 0, R_BIG, R_SPLIT, R_RANDOM, R_N };
static const char *REF_KEY[R_N] = {"small_only", "big_only", "split_initial", "random_switch"};
static const char *REF_LABEL[R_N] = {"small only", "big only", "split (before RL)", "random switch"};

static int run(SrConfig *cfg, SrError *err) {
    Sweep S = {cfg};
    if (grpo_options_from_config(&S.o, cfg, err)) return -1;
    const GrpoOptions *o = &S.o;
    S.out = o->harness.output_dir;
    double lambdas[MAX_LAMBDAS];
    int nl = 0;
    if (parse_lambdas(cfg, lambdas, &nl, err)) return -1;
    snprintf(S.max_new, sizeof S.max_new, "%lld",
             sr_config_has(cfg, "eval_max_new_tokens") ? sr_config_int(cfg, "eval_max_new_tokens") : (long long)o->max_completion_length);
    snprintf(S.samples, sizeof S.samples, "%lld", sr_config_int(cfg, "eval_samples"));
    snprintf(S.temp, sizeof S.temp, "%.17g", sr_config_float(cfg, "eval_temperature"));
    snprintf(S.top_p, sizeof S.top_p, "%.17g", sr_config_float(cfg, "eval_top_p"));
    snprintf(S.limit, sizeof S.limit, "%lld", sr_config_int(cfg, "eval_limit"));
    snprintf(S.batch, sizeof S.batch, "%lld", sr_config_int(cfg, "eval_batch"));
    if (sr_mkdir_p(S.out, err)) return -1;
    double t0 = sr_now();

    Point runs[MAX_LAMBDAS], ref[R_N];
    memset(runs, 0, sizeof runs);
    memset(ref, 0, sizeof ref);
    for (int i = 0; i < nl; i++) {
        char name[64];
        lambda_name(lambdas[i], name, sizeof name);
        if (run_grpo(&S, lambdas[i], &runs[i], err)) return -1;
        char model[4096];
        snprintf(model, sizeof model, "%s", runs[i].model);
        if (run_eval(&S, name, "split", model, NULL, &runs[i], err)) return -1;
    }
    int refs = sr_config_bool(cfg, "eval_references");
    if (refs) {
        const char *init = o->harness.model_name_or_path;
        if (run_eval(&S, REF_KEY[R_SMALL], "small", init, NULL, &ref[R_SMALL], err) ||
            run_eval(&S, REF_KEY[R_BIG], "big", init, NULL, &ref[R_BIG], err) ||
            run_eval(&S, REF_KEY[R_SPLIT], "split", init, NULL, &ref[R_SPLIT], err) ||
            run_eval(&S, REF_KEY[R_RANDOM], "random_switch",
                     sr_config_has(cfg, "eval_random_model") ? sr_config_str(cfg, "eval_random_model") : init,
                     &ref[R_SPLIT], &ref[R_RANDOM], err))
            return -1;
        snprintf(ref[R_BIG].model, sizeof ref[R_BIG].model, "%s", o->big_model_name_or_path);
    }

    /* sweep.json */
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "benchmark", sr_config_str(cfg, "eval_benchmark"));
    cJSON_AddNumberToObject(s, "samples", (double)sr_config_int(cfg, "eval_samples"));
    if (o->latency_table) cJSON_AddStringToObject(s, "latency_table", o->latency_table);
    else cJSON_AddNullToObject(s, "latency_table");
    cJSON *ra = cJSON_AddArrayToObject(s, "runs");
    for (int i = 0; i < nl; i++) cJSON_AddItemToArray(ra, point_json(&runs[i], 1));
    cJSON *rf = cJSON_AddObjectToObject(s, "reference");
    for (int r = 0; refs && r < R_N; r++) cJSON_AddItemToObject(rf, REF_KEY[r], point_json(&ref[r], 0));
    cJSON_AddNumberToObject(s, "wall_time_s", sr_now() - t0);
    char *text = cJSON_Print(s);
    cJSON_Delete(s);
    char *path = sr_path_join(S.out, "sweep.json");
    int rc = sr_write_file_atomic(path, text, strlen(text), err);
    free(text);
    free(path);
    if (rc) return -1;

    /* the plot: the references hollow, the runs filled */
    ParetoPoint pts[MAX_LAMBDAS + R_N];
    char labels[MAX_LAMBDAS][48];
    int np = 0;
    for (int r = 0; refs && r < R_N; r++)
        pts[np++] = (ParetoPoint){REF_LABEL[r], ref[r].accuracy, ref[r].modelled_latency, ref[r].offload_share, 1};
    for (int i = 0; i < nl; i++) {
        snprintf(labels[i], sizeof labels[i], "GRPO lambda %g", lambdas[i]);
        pts[np++] = (ParetoPoint){labels[i], runs[i].accuracy, runs[i].modelled_latency, runs[i].offload_share, 0};
    }
    char title[512];
    snprintf(title, sizeof title, "sweep over latency penalties: %s, split mode", sr_config_str(cfg, "eval_benchmark"));
    path = sr_path_join(S.out, "pareto.svg");
    rc = pareto_svg(path, title, pts, np, err);
    free(path);
    if (rc) return -1;

    printf("\nsplitreason sweep: %s (%s samples per problem), split mode\n\n", sr_config_str(cfg, "eval_benchmark"), S.samples);
    printf("  %-20s %9s %14s %22s %12s\n", "", "accuracy", "offload share", "modelled latency (s)", "switches");
    for (int r = 0; refs && r < R_N; r++)
        printf("  %-20s %9.3f %14.3f %22.3f %12.2f\n", REF_LABEL[r], ref[r].accuracy, ref[r].offload_share,
               ref[r].modelled_latency, ref[r].switches);
    for (int i = 0; i < nl; i++)
        printf("  %-20s %9.3f %14.3f %22.3f %12.2f\n", labels[i], runs[i].accuracy, runs[i].offload_share,
               runs[i].modelled_latency, runs[i].switches);
    printf("\n  %s/sweep.json, %s/pareto.svg\n", S.out, S.out);
    fflush(stdout);
    return 0;
}

const SrCommand sr_cmd_sweep = {
    "sweep", "GRPO over latency penalties, each evaluated in split mode: the accuracy-vs-latency Pareto curve",
    "splitreason sweep --config FILE --latency-penalties 0,0.25,1,4 [--eval-benchmark B] [--eval-samples K] [--key value ...]",
    "Runs `splitreason grpo` with the config (a grpo config: every grpo key is accepted here and\n"
    "overrides it for all runs) once per latency penalty into output_dir/lambda-<l>/ (a run\n"
    "interrupted resumes from its latest checkpoint; a finished one, marked by DONE, is skipped),\n"
    "evaluates each last checkpoint with the big model in split mode on --eval-benchmark\n"
    "(output_dir/eval/lambda-<l>/, resumable), and, for reference, model_name_or_path alone, the big\n"
    "model alone, model_name_or_path in split mode before RL, and random switching at that run's\n"
    "offload share. Writes output_dir/sweep.json and output_dir/pareto.svg (accuracy against\n"
    "modelled latency from latency_table, and against offload share) and prints the table.",
    OPTS, N_OWN + GRPO_N_OPTIONS, run, NULL, check,
};
