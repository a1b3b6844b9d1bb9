/*
 * `splitreason grade` end to end: fields (paths into arrays, numeric golds), the per-row
 * output object, the summary, --mode reward, --number-fallback false, --keep-fields, and the
 * error messages for a bad row or a missing field (exit status 1, file:line in the message):
 * a NUL inside a string, two JSON values on a line, invalid UTF-8, an index that would wrap.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/json.h"

#include "harness.h"

static int run(const char *args, const char *out, const char *errf) {
    char cmd[4096];
    snprintf(cmd, sizeof cmd, "'%s' grade %s > '%s' 2> '%s'", sr_test_bin(), args, out, errf);
    int rc = system(cmd);
    return WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
}

/* the i-th output line parsed, or NULL */
static cJSON *line_json(const char *text, int i) {
    const char *p = text;
    for (int k = 0; k < i && p; k++) {
        p = strchr(p, '\n');
        if (p) p++;
    }
    if (!p || !*p) return NULL;
    const char *e = strchr(p, '\n');
    size_t n = e ? (size_t)(e - p) : strlen(p);
    char *buf = malloc(n + 1);
    memcpy(buf, p, n);
    buf[n] = '\0';
    SrError err;
    cJSON *j = sr_json_parse(buf, n, &err); /* strict: the output must be valid JSON */
    if (!j) fprintf(stderr, "output line %d: %s\n", i, err.msg);
    free(buf);
    return j;
}

static const char *str_of(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : "";
}

int main(void) {
    const char *dir = sr_test_tmpdir("test_grade_cli");
    char in[512], out[512], errf[512], args[2048];
    snprintf(in, sizeof in, "%s/in.jsonl", dir);
    snprintf(out, sizeof out, "%s/out.jsonl", dir);
    snprintf(errf, sizeof errf, "%s/err.txt", dir);
    const char *rows =
        "{\"id\": 1, \"gen\": [\"<think>so 3?</think> The answer is $\\\\boxed{\\\\dfrac{1}{2}}$.\"], \"gold\": \"0.5\"}\n"
        "{\"id\": 2, \"gen\": [\"\\\\boxed{28}\"], \"gold\": 27.0}\n"
        "{\"id\": 3, \"gen\": [\"we get 12 apples\"], \"gold\": \"12\"}\n"
        "{\"id\": 4, \"gen\": [\"\\\\boxed{\\\\int_0^1 x\\\\,dx}\"], \"gold\": \"\\\\frac12\"}\n";
    CHECK(sr_test_write_file(in, rows, strlen(rows)) == 0);

    snprintf(args, sizeof args, "--input '%s' --pred-field gen.0 --gold-field gold --output '%s'", in, out);
    CHECK(run(args, "/dev/null", errf) == 0);
    char *o = sr_test_read_file(out, NULL), *e = sr_test_read_file(errf, NULL);
    CHECK(o != NULL && e != NULL);
    if (o && e) {
        const char *want[4] = {"correct", "incorrect", "correct", "unverifiable"};
        for (int i = 0; i < 4; i++) {
            cJSON *j = line_json(o, i);
            CHECKF(j != NULL, "line %d", i);
            if (!j) continue;
            CHECKF(!strcmp(str_of(j, "verdict"), want[i]), "row %d: %s", i, str_of(j, "verdict"));
            CHECK(cJSON_GetObjectItem(j, "row")->valueint == i);
            CHECK(cJSON_GetObjectItem(j, "id") == NULL); /* no --keep-fields */
            if (i == 0) {
                CHECK(!strcmp(str_of(j, "pred_extracted"), "\\dfrac{1}{2}"));
                CHECK(!strcmp(str_of(j, "pred_normalized"), "\\frac{1}{2}"));
                CHECK(!strcmp(str_of(j, "gold_normalized"), "\\frac{1}{2}"));
            }
            if (i == 1) CHECK(!strcmp(str_of(j, "gold_extracted"), "27"));
            cJSON_Delete(j);
        }
        CHECK(line_json(o, 4) == NULL);
        CHECKF(strstr(e, "4 rows: 2 correct (50.00%), 1 incorrect, 1 unverifiable") != NULL, "%s", e);
    }
    free(o);
    free(e);

    /* no fallback, reward mode, keep fields */
    snprintf(args, sizeof args,
             "--input '%s' --pred-field gen.0 --gold-field gold --number-fallback false --keep-fields", in);
    CHECK(run(args, out, errf) == 0);
    o = sr_test_read_file(out, NULL);
    if (o) {
        cJSON *j = line_json(o, 2);
        CHECK(j && !strcmp(str_of(j, "verdict"), "incorrect") && !strcmp(str_of(j, "reason"), "no answer found"));
        CHECK(j && cJSON_GetObjectItem(j, "id") && cJSON_GetObjectItem(j, "id")->valueint == 3);
        cJSON_Delete(j);
    }
    free(o);
    snprintf(args, sizeof args, "--input '%s' --pred-field gen.0 --gold-field gold --mode reward", in);
    CHECK(run(args, out, errf) == 0);
    o = sr_test_read_file(out, NULL);
    if (o) {
        cJSON *j0 = line_json(o, 0), *j2 = line_json(o, 2);
        CHECK(j0 && !strcmp(str_of(j0, "verdict"), "correct"));
        CHECK(j2 && !strcmp(str_of(j2, "verdict"), "incorrect"));
        cJSON_Delete(j0);
        cJSON_Delete(j2);
    }
    free(o);

    /* errors: bad mode, missing field, bad JSON */
    snprintf(args, sizeof args, "--input '%s' --pred-field gen.0 --gold-field gold --mode exam", in);
    CHECK(run(args, out, errf) == 2); /* a bad command line */
    e = sr_test_read_file(errf, NULL);
    CHECK(e && strstr(e, "--mode: 'exam' is not one of eval, reward"));
    free(e);
    snprintf(args, sizeof args, "--input '%s' --pred-field generation --gold-field gold", in);
    CHECK(run(args, out, errf) == 1);
    e = sr_test_read_file(errf, NULL);
    CHECKF(e && strstr(e, "in.jsonl:1: row has no string field 'generation'"), "%s", e ? e : "");
    free(e);
    const char *bad = "{\"gen\": [\"\\\\boxed{1}\"], \"gold\": \"1\"}\n{not json\n";
    CHECK(sr_test_write_file(in, bad, strlen(bad)) == 0);
    snprintf(args, sizeof args, "--input '%s' --pred-field gen.0 --gold-field gold", in);
    CHECK(run(args, out, errf) == 1);
    e = sr_test_read_file(errf, NULL);
    CHECKF(e && strstr(e, "in.jsonl:2: not valid JSON"), "%s", e ? e : "");
    free(e);

    /* issue 9, item 5: a NUL inside the response is refused with the row named, never read as
     * the end of the text ("\boxed{4}" then "\boxed{5}" graded as 4 would be a reward hack) */
    const char *nul = "{\"response\": \"\\\\boxed{4}\\u0000 wait, actually \\\\boxed{5}\", \"answer\": \"4\"}\n";
    CHECK(sr_test_write_file(in, nul, strlen(nul)) == 0);
    snprintf(args, sizeof args, "--input '%s' --output '%s'", in, out);
    remove(out);
    CHECK(run(args, "/dev/null", errf) == 1);
    e = sr_test_read_file(errf, NULL);
    CHECKF(e && strstr(e, "in.jsonl:1: a NUL character"), "%s", e ? e : "");
    free(e);
    CHECK(sr_test_read_file(out, NULL) == NULL); /* no output file, so no "correct" anywhere */
    /* two JSON values on one line are a malformed row, not the first one */
    const char *two = "{\"response\": \"\\\\boxed{1}\", \"answer\": \"1\"}{\"response\": \"b\"}\n";
    CHECK(sr_test_write_file(in, two, strlen(two)) == 0);
    CHECK(run(args, "/dev/null", errf) == 1);
    e = sr_test_read_file(errf, NULL);
    CHECKF(e && strstr(e, "in.jsonl:1: trailing data after the JSON value"), "%s", e ? e : "");
    free(e);
    /* invalid UTF-8 in a text field is reported, not graded */
    const char *utf = "{\"response\": \"\xff\\\\boxed{1}\", \"answer\": \"1\"}\n";
    CHECK(sr_test_write_file(in, utf, strlen(utf)) == 0);
    CHECK(run(args, "/dev/null", errf) == 1);
    e = sr_test_read_file(errf, NULL);
    CHECKF(e && strstr(e, "in.jsonl:1: invalid UTF-8"), "%s", e ? e : "");
    free(e);

    /* field paths: an array index is never wrapped (4294967297 was read as element 1), and a
     * long path is read whole */
    const char *arr = "{\"gen\": [\"\\\\boxed{7}\", \"\\\\boxed{8}\"], \"gold\": \"8\"}\n";
    CHECK(sr_test_write_file(in, arr, strlen(arr)) == 0);
    snprintf(args, sizeof args, "--input '%s' --pred-field gen.1 --gold-field gold", in);
    CHECK(run(args, out, errf) == 0);
    o = sr_test_read_file(out, NULL);
    CHECKF(o && strstr(o, "\"verdict\": \"correct\""), "%s", o ? o : "");
    free(o);
    /* a numeric reference is read whole: a 16-digit integer is not rounded to 15 digits */
    const char *num = "{\"gen\": [\"\\\\boxed{1234567890123456}\"], \"gold\": 1234567890123456}\n";
    CHECK(sr_test_write_file(in, num, strlen(num)) == 0);
    snprintf(args, sizeof args, "--input '%s' --pred-field gen.0 --gold-field gold", in);
    CHECK(run(args, out, errf) == 0);
    o = sr_test_read_file(out, NULL);
    CHECKF(o && strstr(o, "\"verdict\": \"correct\"") && strstr(o, "\"gold_extracted\": \"1234567890123456\""),
           "%s", o ? o : "");
    free(o);
    CHECK(sr_test_write_file(in, arr, strlen(arr)) == 0);
    const char *badpaths[] = {"gen.4294967297", "gen.-1", "gen.+1", "gen.", "gen.1.0"};
    for (size_t i = 0; i < sizeof badpaths / sizeof badpaths[0]; i++) {
        snprintf(args, sizeof args, "--input '%s' --pred-field '%s' --gold-field gold", in, badpaths[i]);
        CHECKF(run(args, out, errf) == 1, "%s", badpaths[i]);
        e = sr_test_read_file(errf, NULL);
        char want[128];
        snprintf(want, sizeof want, "in.jsonl:1: row has no string field '%s'", badpaths[i]);
        CHECKF(e && strstr(e, want), "%s: %s", badpaths[i], e ? e : "");
        free(e);
    }
    char longpath[400];
    memset(longpath, 'k', sizeof longpath - 1);
    longpath[sizeof longpath - 1] = '\0';
    memcpy(longpath, "gen.1.", 6); /* longer than any fixed buffer: the tail is still read */
    snprintf(args, sizeof args, "--input '%s' --pred-field '%s' --gold-field gold", in, longpath);
    CHECK(run(args, out, errf) == 1);
    e = sr_test_read_file(errf, NULL);
    CHECKF(e && strstr(e, "row has no string field 'gen.1.kkk"), "%s", e ? e : "");
    free(e);
    return sr_test_done();
}
