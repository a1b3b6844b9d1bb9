/*
 * splitreason grade: JSONL rows with a model output and a reference answer -> one JSON object
 * per row with the extracted answer, the normalised forms and a verdict (correct / incorrect /
 * unverifiable), and a summary on stderr. The grading itself is grade/grade.h.
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../grade/grade.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"input", SR_OPT_STR, "null", "JSONL input (- for stdin)", SR_REQUIRED},
    {"pred_field", SR_OPT_STR, "\"response\"", "field with the model output (a path: \"generated_responses.0\")", SR_REQUIRED},
    {"gold_field", SR_OPT_STR, "\"answer\"", "field with the reference answer (string or number)", SR_REQUIRED},
    {"output", SR_OPT_STR, "null", "output file (default: stdout)"},
    {"mode", SR_OPT_STR, "\"eval\"", "eval (Math-Verify's defaults) or reward (SplitReason's accuracy_reward: boxed first, first match only)",
     SR_CHOICES("eval", "reward"), SR_REQUIRED},
    {"number_fallback", SR_OPT_BOOL, "true", "when no \\boxed / 'answer' is found, fall back to the last LaTeX environment or number"},
    {"think", SR_OPT_BOOL, "true", "search the text after the last </think> first"},
    {"keep_fields", SR_OPT_BOOL, "false", "copy the input row's fields into each output object"},
};

/* row[path], path = "a.b.0": object keys and array indices, NULL when there is no such value.
 * The path is read whole, however long; an index is decimal digits only and is never wrapped
 * ("gen.4294967296" is no element, not element 0). */
static const cJSON *get_path(const cJSON *row, const char *path) {
    const cJSON *v = row;
    for (const char *p = path;;) {
        const char *dot = strchr(p, '.');
        size_t n = dot ? (size_t)(dot - p) : strlen(p);
        if (cJSON_IsArray(v)) {
            if (n == 0 || n > 9 || strspn(p, "0123456789") < n) return NULL; /* < 10^9 */
            int idx = 0;
            for (size_t i = 0; i < n; i++) idx = idx * 10 + (p[i] - '0');
            v = cJSON_GetArrayItem(v, idx);
        } else if (cJSON_IsObject(v)) {
            const cJSON *it, *found = NULL;
            cJSON_ArrayForEach(it, v) {
                if (it->string && strlen(it->string) == n && memcmp(it->string, p, n) == 0) found = it;
            }
            v = found;
        } else {
            return NULL;
        }
        if (!v || !dot) return v;
        p = dot + 1;
    }
}

/* a JSON number as a reference answer: the shortest of %.15g / %.16g / %.17g that reads back
 * as the same double (27.0 -> "27", 0.1 -> "0.1", 1234567890123456 stays whole, where %.15g
 * alone gave "1.23456789012346e+15", a different answer) */
static void format_number(char *buf, size_t cap, double v) {
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(buf, cap, "%.*g", prec, v);
        if (strtod(buf, NULL) == v) return;
    }
}

static void put_field(FILE *f, const char *key, const char *value, int *first) {
    fprintf(f, "%s\"%s\": ", *first ? "" : ", ", key);
    sr_json_write_string(f, value, strlen(value));
    *first = 0;
}

static int run(SrConfig *cfg, SrError *err) {
    const char *pred_field = sr_config_str(cfg, "pred_field");
    const char *gold_field = sr_config_str(cfg, "gold_field");
    const char *mode = sr_config_str(cfg, "mode");
    SrGradeOptions opt;
    sr_grade_options_default(&opt);
    opt.mode = strcmp(mode, "reward") == 0 ? SR_GRADE_REWARD : SR_GRADE_EVAL; /* SR_CHOICES */
    opt.allow_unanchored = sr_config_bool(cfg, "number_fallback");
    opt.prefer_after_think = sr_config_bool(cfg, "think");
    int keep = sr_config_bool(cfg, "keep_fields");

    if (sr_check_output("--output", sr_config_str(cfg, "output"), 0, "--input", sr_config_str(cfg, "input"), err))
        return -1;
    JsonlReader in;
    if (jsonl_open(&in, sr_config_str(cfg, "input"), err)) return -1;
    SrOutFile out;
    if (sr_out_open(&out, sr_config_str(cfg, "output"), err)) {
        jsonl_close(&in);
        return -1;
    }
    SrGrader *g = sr_grader_new(&opt);
    long rows = 0, counts[3] = {0, 0, 0};
    int rc = 0, got;
    SrProgress prog;
    sr_progress_start(&prog, "rows", 0);
    double t0 = sr_now();
    while ((got = jsonl_next(&in, err)) == 1) {
        cJSON *row = jsonl_parse_line(&in, err);
        if (!row) {
            rc = -1;
            break;
        }
        const cJSON *pv = get_path(row, pred_field), *gv = get_path(row, gold_field);
        char gbuf[64];
        const char *gold = NULL;
        if (cJSON_IsString(gv)) gold = gv->valuestring;
        else if (cJSON_IsNumber(gv)) {
            format_number(gbuf, sizeof gbuf, gv->valuedouble);
            gold = gbuf;
        }
        if (!cJSON_IsString(pv) || !gold) {
            rc = sr_fail(err, "%s:%ld: row has no string field '%s'", in.path, in.lineno,
                         !cJSON_IsString(pv) ? pred_field : gold_field);
            cJSON_Delete(row);
            break;
        }
        SrGradeResult r;
        sr_grader_grade(g, pv->valuestring, gold, &r);
        counts[r.verdict]++;
        FILE *f = out.f;
        int first = 1;
        fputc('{', f);
        if (keep && cJSON_IsObject(row)) {
            const cJSON *it;
            cJSON_ArrayForEach(it, row) {
                char *val = cJSON_PrintUnformatted(it);
                fprintf(f, "%s", first ? "" : ", ");
                sr_json_write_string(f, it->string, strlen(it->string));
                fprintf(f, ": %s", val);
                free(val);
                first = 0;
            }
        }
        fprintf(f, "%s\"row\": %ld", first ? "" : ", ", rows);
        first = 0;
        put_field(f, "verdict", sr_verdict_name(r.verdict), &first);
        put_field(f, "reason", r.reason, &first);
        put_field(f, "pred_extracted", r.pred_extracted, &first);
        put_field(f, "pred_normalized", r.pred_normalized, &first);
        put_field(f, "gold_extracted", r.gold_extracted, &first);
        put_field(f, "gold_normalized", r.gold_normalized, &first);
        fputs("}\n", f);
        sr_grade_result_free(&r);
        cJSON_Delete(row);
        rows++;
        sr_progress_update(&prog, (double)rows);
    }
    if (got < 0) rc = -1;
    sr_progress_end(&prog);
    double dt = sr_now() - t0;
    sr_grader_free(g);
    jsonl_close(&in);
    if (rc) sr_out_abort(&out);
    else rc = sr_out_commit(&out, err);
    if (!rc) {
        double n = rows ? (double)rows : 1.0;
        sr_log("grade: %ld rows: %ld correct (%.2f%%), %ld incorrect, %ld unverifiable; "
               "%.0f rows/s",
               rows, counts[SR_VERDICT_CORRECT], 100.0 * (double)counts[SR_VERDICT_CORRECT] / n,
               counts[SR_VERDICT_INCORRECT], counts[SR_VERDICT_UNVERIFIABLE],
               dt > 0 ? (double)rows / dt : 0.0);
    }
    return rc;
}

const SrCommand sr_cmd_grade = {
    "grade", "math answer grading: extracted answer, normalised forms, correct/incorrect/unverifiable",
    "splitreason grade --input FILE.jsonl [--pred-field F] [--gold-field F] [--output FILE]",
    "For each JSONL row, extracts the final answer of --pred-field (the last \\boxed{..} after\n"
    "</think>, else 'final answer is ..', else the last LaTeX environment or number), reads\n"
    "--gold-field as a reference answer, and compares them the way Hugging Face Math-Verify\n"
    "does (numbers exactly, floats to 6 decimals, expressions, tuples, sets, intervals,\n"
    "matrices, equations). Writes per row {row, verdict, reason, pred_extracted,\n"
    "pred_normalized, gold_extracted, gold_normalized}; verdict is correct, incorrect or\n"
    "unverifiable (never a guess). A summary goes to stderr.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL,
};
