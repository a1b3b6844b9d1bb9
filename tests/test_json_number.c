/*
 * Numbers in JSON output (common/buf.h sr_buf_json_number / sr_buf_json_float), the one way
 * the project writes a float into hand-built JSON:
 *   - NaN, +Inf, -Inf become null (JSON has none of them; Python's json.loads rejects the
 *     nan / -nan / inf that printf writes);
 *   - a finite value is the shortest decimal that reads back as the same double / float;
 *   - the JSON that cJSON prints (every other writer: metrics.jsonl, trainer_state.json,
 *     annotate rows and summaries, grade) also writes null for them: checked here, because
 *     an older cJSON printed "nan" and the writers rely on it.
 * Every output is parsed back with the strict reader (common/json.h).
 */
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/json.h"
#include "common/rng.h"
#include "harness.h"

static const char *num(double v) {
    static SrBuf b;
    sr_buf_clear(&b);
    sr_buf_json_number(&b, v);
    return b.p;
}

static const char *numf(float v) {
    static SrBuf b;
    sr_buf_clear(&b);
    sr_buf_json_float(&b, v);
    return b.p;
}

/* the text is exactly one JSON value for the strict parser; returns it (caller deletes) */
static cJSON *parses(const char *s) {
    SrError err;
    cJSON *j = sr_json_parse(s, strlen(s), &err);
    CHECKF(j != NULL, "'%s' does not parse: %s", s, j ? "" : err.msg);
    return j;
}

static void test_non_finite(void) {
    double bad[] = {NAN, -NAN, INFINITY, -INFINITY};
    for (int i = 0; i < 4; i++) {
        CHECKF(strcmp(num(bad[i]), "null") == 0, "%g -> %s", bad[i], num(bad[i]));
        CHECKF(strcmp(numf((float)bad[i]), "null") == 0, "%g -> %s (float)", bad[i],
               numf((float)bad[i]));
    }
    /* a whole array as score and generate write it */
    SrBuf b = {0};
    float lp[] = {-1.5f, NAN, -INFINITY, 0.25f};
    sr_buf_str(&b, "[");
    for (int i = 0; i < 4; i++) {
        if (i) sr_buf_str(&b, ", ");
        sr_buf_json_float(&b, lp[i]);
    }
    sr_buf_str(&b, "]");
    CHECKF(strcmp(b.p, "[-1.5, null, null, 0.25]") == 0, "%s", b.p);
    cJSON *j = parses(b.p);
    CHECK(j && cJSON_IsNull(cJSON_GetArrayItem(j, 1)) && cJSON_GetArrayItem(j, 3)->valuedouble == 0.25);
    cJSON_Delete(j);
    sr_buf_free(&b);
}

static void test_shortest(void) {
    struct {
        double v;
        const char *s;
    } d[] = {{0.1, "0.1"}, {-3.25, "-3.25"}, {1e-7, "1e-07"}, {0.0, "0"}, {-0.0, "-0"},
             {123456789.0, "123456789"}, {1.0 / 3.0, "0.3333333333333333"}, {1e300, "1e+300"},
             {DBL_MAX, "1.7976931348623157e+308"}, {5e-324, "5e-324"}};
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++)
        CHECKF(strcmp(num(d[i].v), d[i].s) == 0, "%.17g -> %s, expected %s", d[i].v, num(d[i].v),
               d[i].s);
    struct {
        float v;
        const char *s;
    } f[] = {{0.1f, "0.1"}, {-2.5f, "-2.5"}, {1.0f / 3.0f, "0.33333334"}, {FLT_MAX, "3.4028235e+38"},
             {-1e-20f, "-1e-20"}};
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        CHECKF(strcmp(numf(f[i].v), f[i].s) == 0, "%.9g -> %s, expected %s", (double)f[i].v,
               numf(f[i].v), f[i].s);
}

/* random bit patterns: every finite value reads back exactly and parses as JSON */
static void test_round_trip(void) {
    uint64_t st = 12345;
    int bad_d = 0, bad_f = 0, bad_json = 0;
    for (int i = 0; i < 20000; i++) {
        uint64_t u = sr_rng_u64(&st);
        double v;
        memcpy(&v, &u, sizeof v);
        uint32_t u32 = (uint32_t)(u >> 17);
        float f;
        memcpy(&f, &u32, sizeof f);
        const char *s = num(v);
        if (isfinite(v) ? strtod(s, NULL) != v : strcmp(s, "null") != 0) bad_d++;
        SrError err;
        cJSON *j = sr_json_parse(s, strlen(s), &err);
        if (!j) bad_json++;
        cJSON_Delete(j);
        s = numf(f);
        if (isfinite(f) ? strtof(s, NULL) != f : strcmp(s, "null") != 0) bad_f++;
    }
    CHECKF(bad_d == 0, "%d doubles did not read back", bad_d);
    CHECKF(bad_f == 0, "%d floats did not read back", bad_f);
    CHECKF(bad_json == 0, "%d outputs did not parse as JSON", bad_json);
}

/* the cJSON writers: NaN and infinities print as null */
static void test_cjson_writes_null(void) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "loss", NAN);
    cJSON_AddNumberToObject(o, "grad_norm", INFINITY);
    cJSON_AddNumberToObject(o, "x", -INFINITY);
    cJSON_AddNumberToObject(o, "lr", 5e-5);
    char *s = cJSON_PrintUnformatted(o);
    CHECKF(s && strcmp(s, "{\"loss\":null,\"grad_norm\":null,\"x\":null,\"lr\":5e-05}") == 0,
           "cJSON printed %s", s ? s : "(null)");
    cJSON *j = s ? parses(s) : NULL;
    cJSON_Delete(j);
    free(s);
    s = cJSON_Print(o);
    j = s ? parses(s) : NULL;
    CHECK(j && cJSON_IsNull(cJSON_GetObjectItemCaseSensitive(j, "loss")));
    cJSON_Delete(j);
    free(s);
    cJSON_Delete(o);
}

int main(void) {
    test_non_finite();
    test_shortest();
    test_round_trip();
    test_cjson_writes_null();
    return sr_test_done();
}
