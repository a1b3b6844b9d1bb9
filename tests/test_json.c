/*
 * The strict JSON layer (common/json.h) every reader uses: one value per text, UTF-8 only,
 * no NUL inside strings, the last of repeated keys wins (Python's json), truncation named.
 */
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/json.h"
#include "../common/jsonl.h"
#include "harness.h"

static cJSON *parse(const char *s, SrError *e) {
    sr_error_clear(e);
    return sr_json_parse(s, strlen(s), e);
}

static int fails_with(const char *s, const char *needle) {
    SrError e;
    cJSON *v = parse(s, &e);
    if (v) {
        cJSON_Delete(v);
        return 0;
    }
    if (!strstr(e.msg, needle)) fprintf(stderr, "  '%s' -> '%s' (wanted '%s')\n", s, e.msg, needle);
    return strstr(e.msg, needle) != NULL;
}

int main(void) {
    SrError e;
    cJSON *v = parse("  {\"text\": \"a\"}  \r\n", &e);
    CHECK(cJSON_IsObject(v));
    cJSON_Delete(v);
    /* one value per text */
    CHECK(fails_with("{\"text\":\"a\"}{\"text\":\"b\"}", "trailing data after the JSON value at byte 12"));
    CHECK(fails_with("[1] x", "trailing data"));
    CHECK(fails_with("1 2", "trailing data"));
    /* NUL in strings: the reward hack "\boxed{4}\u0000 ... \boxed{5}" */
    CHECK(fails_with("{\"response\":\"\\\\boxed{4}\\u0000 wait, actually \\\\boxed{5}\"}", "NUL"));
    CHECK(fails_with("\"\\u0000\"", "NUL"));
    /* an escaped backslash followed by u0000 is the text "\u0000", not a NUL */
    v = parse("\"\\\\u0000\"", &e);
    CHECK(cJSON_IsString(v) && strcmp(v->valuestring, "\\u0000") == 0);
    cJSON_Delete(v);
    {
        const char raw[] = "{\"a\":\"x\0y\"}";
        CHECK(sr_json_parse(raw, sizeof raw - 1, &e) == NULL && strstr(e.msg, "NUL"));
    }
    /* UTF-8 */
    CHECK(fails_with("{\"a\":\"\xff\"}", "invalid UTF-8 at byte 6"));
    CHECK(fails_with("{\"a\":\"\xc0\xaf\"}", "invalid UTF-8")); /* overlong '/' */
    CHECK(fails_with("{\"a\":\"\xed\xa0\x80\"}", "invalid UTF-8")); /* a surrogate */
    v = parse("{\"a\":\"\xe2\x9c\x93 \xf0\x9f\x98\x80\"}", &e);
    CHECK(v != NULL);
    cJSON_Delete(v);
    /* duplicated keys: the last wins, at every depth */
    v = parse("{\"a\":1,\"b\":{\"c\":1,\"c\":2},\"a\":3}", &e);
    CHECK(v && cJSON_GetArraySize(v) == 2);
    CHECK(v && cJSON_GetObjectItem(v, "a")->valueint == 3);
    CHECK(v && cJSON_GetObjectItem(cJSON_GetObjectItem(v, "b"), "c")->valueint == 2);
    cJSON_Delete(v);
    /* truncation and emptiness are named */
    CHECK(fails_with("{\"learning_rate\": 1e-5, \"max_", "ends early"));
    CHECK(fails_with("{\"a\": [1, 2", "ends early"));
    CHECK(fails_with("   ", "empty"));
    CHECK(fails_with("{\"a\": tru}", "not valid JSON at byte"));
    CHECK(fails_with("[1]", "") == 0); /* valid */
    SrError oe;
    sr_error_clear(&oe);
    cJSON *arr = sr_json_parse_object("[1]", 3, &oe);
    CHECK(arr == NULL && strstr(oe.msg, "not a JSON object"));
    /* a JSONL row error names the file and the line */
    const char *dir = sr_test_tmpdir("json");
    char path[1024];
    snprintf(path, sizeof path, "%s/rows.jsonl", dir);
    const char *rows = "{\"text\":\"a\"}\n\n{\"text\":\"a\"}{\"text\":\"b\"}\n";
    sr_test_write_file(path, rows, strlen(rows));
    JsonlReader r;
    CHECK(jsonl_open(&r, path, &e) == 0);
    CHECK(jsonl_next(&r, &e) == 1);
    v = jsonl_parse_line(&r, &e);
    CHECK(v != NULL);
    cJSON_Delete(v);
    CHECK(jsonl_next(&r, &e) == 1);
    v = jsonl_parse_line(&r, &e);
    CHECK(v == NULL && strstr(e.msg, "rows.jsonl:3: trailing data"));
    jsonl_close(&r);
    /* a directory, and a .zst that is not zstd */
    CHECK(jsonl_open(&r, dir, &e) == -1 && strstr(e.msg, "is a directory"));
    snprintf(path, sizeof path, "%s/rows.jsonl.zst", dir);
    sr_test_write_file(path, rows, strlen(rows));
    CHECK(jsonl_open(&r, path, &e) == -1 && strstr(e.msg, "not zstd-compressed"));
    /* the one growable buffer */
    SrBuf b = {0};
    for (int i = 0; i < 1000; i++) sr_buf_printf(&b, "%d,", i);
    CHECK(b.n == 3890 && b.p[b.n] == '\0' && strncmp(b.p, "0,1,2,", 6) == 0);
    sr_buf_clear(&b);
    sr_buf_json_string(&b, "a\"\n\x01\xff\xe2\x9c\x93", 8);
    CHECK(strcmp(b.p, "\"a\\\"\\n\\u0001\xEF\xBF\xBD\xe2\x9c\x93\"") == 0);
    char *t = sr_buf_take(&b);
    CHECK(b.p == NULL && b.n == 0 && t[0] == '"');
    free(t);
    sr_buf_free(&b);
    return sr_test_done();
}
