/*
 * Benchmark loading for eval (see benchmarks.h): the shipped files and user FILEs through the
 * one JSONL reader, with errors naming the file and line.
 */
#include "benchmarks.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/jsonl.h"

static const char *const NAMED[] = {"aime24", "aime25", "math500", "amc23"};
#define N_NAMED ((int)(sizeof NAMED / sizeof NAMED[0]))

/* the field names the shipped files, OpenR1-Math and the usual eval sets use */
static const char *const PROBLEM_KEYS[] = {"problem", "question", "prompt"};
static const char *const ANSWER_KEYS[] = {"answer", "final_answer", "expected_answer"};
static const char *const ID_KEYS[] = {"id", "unique_id", "uuid"};

int eval_benchmark_is_named(const char *spec) {
    for (int i = 0; i < N_NAMED; i++)
        if (strcmp(spec, NAMED[i]) == 0) return 1;
    return 0;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

int eval_data_dir(char *out, size_t cap, SrError *err) {
    const char *env = getenv("SR_DATA");
    if (env && *env) {
        if (!is_dir(env)) return sr_fail(err, "SR_DATA=%s is not a directory", env);
        snprintf(out, cap, "%s", env);
        return 0;
    }
    /* relative to the binary: build/splitreason in a checkout next to shared/ */
    char exe[PATH_MAX], cand[3][PATH_MAX + 32];
    int nc = 0;
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n > 0) {
        exe[n] = '\0';
        char *slash = strrchr(exe, '/');
        if (slash) *slash = '\0';
        snprintf(cand[nc++], sizeof cand[0], "%s/../../shared/data", exe);
        snprintf(cand[nc++], sizeof cand[0], "%s/../shared/data", exe);
    }
    snprintf(cand[nc++], sizeof cand[0], "../shared/data");
    for (int i = 0; i < nc; i++) {
        if (is_dir(cand[i])) {
            char *real = realpath(cand[i], NULL);
            snprintf(out, cap, "%s", real ? real : cand[i]);
            free(real);
            return 0;
        }
    }
    return sr_fail(err, "no benchmark data folder: SR_DATA is unset and none of %s%s%s%s%s exists",
                   cand[0], nc > 1 ? ", " : "", nc > 1 ? cand[1] : "", nc > 2 ? ", " : "",
                   nc > 2 ? cand[2] : "");
}

static const cJSON *first_field(const cJSON *row, const char *const *keys, int n, const char **key) {
    for (int i = 0; i < n; i++) {
        const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, keys[i]);
        if (v && !cJSON_IsNull(v)) {
            *key = keys[i];
            return v;
        }
    }
    return NULL;
}

/* a number as the grader's reference and as an id: whole numbers plainly (AMC23's 27.0 is
 * "27", an id 60 is 60, not sr_buf_json_number's shortest "6e+01"), others in the shortest of
 * %.15g / %.16g / %.17g that reads back as the same double (cmd_grade's rule) */
char *eval_number_text(double v) {
    char buf[64];
    if (v == floor(v) && fabs(v) < 9007199254740992.0) {
        snprintf(buf, sizeof buf, "%.0f", v);
    } else {
        for (int prec = 15; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, v);
            if (strtod(buf, NULL) == v) break;
        }
    }
    return sr_strdup(buf);
}

char *eval_last_boxed(const char *text) {
    const char *at = NULL;
    for (const char *p = strstr(text, "\\boxed{"); p; p = strstr(p + 1, "\\boxed{")) at = p;
    if (!at) return NULL;
    const char *s = at + 7, *e = s;
    int depth = 1;
    for (; *e; e++) {
        if (*e == '{') depth++;
        else if (*e == '}' && --depth == 0) break;
    }
    if (depth != 0 || e == s) return NULL; /* unclosed or empty */
    char *out = sr_malloc((size_t)(e - s) + 1);
    memcpy(out, s, (size_t)(e - s));
    out[e - s] = '\0';
    return out;
}

void eval_benchmark_free(EvalBenchmark *b) {
    for (int i = 0; i < b->n; i++) {
        free(b->items[i].id);
        free(b->items[i].problem);
        free(b->items[i].answer);
    }
    free(b->items);
    free(b->name);
    free(b->path);
    memset(b, 0, sizeof *b);
}

static int add_row(EvalBenchmark *b, size_t *cap, const cJSON *row, const JsonlReader *r, SrError *err) {
    if (!cJSON_IsObject(row)) return sr_fail(err, "%s:%ld: a row must be a JSON object", r->path, r->lineno);
    const char *k = NULL;
    const cJSON *p = first_field(row, PROBLEM_KEYS, 3, &k);
    if (!p) return sr_fail(err, "%s:%ld: row has no problem text (field problem, question or prompt)", r->path, r->lineno);
    if (!cJSON_IsString(p) || !p->valuestring[0])
        return sr_fail(err, "%s:%ld: field '%s' must be a non-empty string", r->path, r->lineno, k);
    const cJSON *a = first_field(row, ANSWER_KEYS, 3, &k);
    char *answer = NULL;
    if (!a) { /* GRPO data: the gold is the last \boxed{} of the solution */
        const cJSON *sol = cJSON_GetObjectItemCaseSensitive(row, "solution");
        if (cJSON_IsString(sol)) answer = eval_last_boxed(sol->valuestring);
        if (!answer)
            return sr_fail(err, "%s:%ld: row has no answer (field answer, final_answer or expected_answer, "
                           "or a solution with a \\boxed{} answer)", r->path, r->lineno);
    } else if (cJSON_IsString(a) && a->valuestring[0]) answer = sr_strdup(a->valuestring);
    else if (cJSON_IsNumber(a)) answer = eval_number_text(a->valuedouble);
    else return sr_fail(err, "%s:%ld: field '%s' must be a non-empty string or a number", r->path, r->lineno, k);
    const cJSON *id = first_field(row, ID_KEYS, 3, &k);
    char *idtext;
    if (!id) {
        idtext = eval_number_text((double)b->n);
    } else if (cJSON_IsString(id) || cJSON_IsNumber(id)) {
        idtext = cJSON_PrintUnformatted(id);
        if (cJSON_IsNumber(id)) { /* the shortest form, as every number we write */
            free(idtext);
            idtext = eval_number_text(id->valuedouble);
        }
    } else {
        free(answer);
        return sr_fail(err, "%s:%ld: field '%s' must be a string or a number", r->path, r->lineno, k);
    }
    for (int i = 0; i < b->n; i++) {
        if (strcmp(b->items[i].id, idtext) == 0) {
            sr_fail(err, "%s:%ld: %s %s repeats the id of the problem on an earlier line (ids must be unique)",
                    r->path, r->lineno, k, idtext);
            free(idtext);
            free(answer);
            return -1;
        }
    }
    b->items = sr_array_reserve(b->items, cap, (size_t)b->n + 1, sizeof *b->items);
    EvalProblem *e = &b->items[b->n++];
    e->id = idtext;
    e->problem = sr_strdup(p->valuestring);
    e->answer = answer;
    return 0;
}

int eval_benchmark_load(EvalBenchmark *b, const char *spec, const char *data_dir, SrError *err) {
    memset(b, 0, sizeof *b);
    char dir[PATH_MAX];
    char *path;
    if (eval_benchmark_is_named(spec)) {
        if (!data_dir) {
            if (eval_data_dir(dir, sizeof dir, err)) return sr_fail_prefix(err, "--benchmark %s", spec);
            data_dir = dir;
        }
        SrBuf p = {0};
        sr_buf_printf(&p, "%s/%s/test.jsonl", data_dir, spec);
        path = sr_buf_take(&p);
    } else {
        path = sr_strdup(spec);
    }
    b->name = sr_strdup(spec);
    b->path = path;
    JsonlReader r;
    if (jsonl_open(&r, path, err)) {
        eval_benchmark_free(b);
        return -1;
    }
    size_t cap = 0;
    int got, rc = 0;
    while ((got = jsonl_next(&r, err)) == 1) {
        cJSON *row = jsonl_parse_line(&r, err);
        if (!row || add_row(b, &cap, row, &r, err)) {
            cJSON_Delete(row);
            rc = -1;
            break;
        }
        cJSON_Delete(row);
    }
    if (got < 0) rc = -1;
    if (!rc && b->n == 0) rc = sr_fail(err, "%s: no problems in the file", path);
    jsonl_close(&r);
    if (rc) eval_benchmark_free(b);
    return rc;
}
