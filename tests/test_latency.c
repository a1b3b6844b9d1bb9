/*
 * The latency table (engine/latency.h): lookups, interpolation, extrapolation and T_split by
 * hand on a small table; the JSON writer reads back; every bad table is refused with one line
 * naming the file and the field; every table shipped in configs/latency loads.
 */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../engine/latency.h"
#include "harness.h"

/* batches [1, 4] x contexts [100, 400]; deltas [1, 11] */
static const char *GOOD =
    "{\"version\": 1, \"device\": \"test\", \"source\": \"measured\", \"note\": \"by hand\",\n"
    " \"small\": {\"name\": \"s\", \"hidden_size\": 64, \"num_hidden_layers\": 2, \"num_params\": 1000},\n"
    " \"big\": {\"name\": \"b\", \"hidden_size\": 128, \"num_hidden_layers\": 4, \"num_params\": 5000},\n"
    " \"batches\": [1, 4], \"contexts\": [100, 400],\n"
    " \"tau_s\": [[1, 2], [3, 4]], \"tau_b\": [[10, 20], [30, 40]],\n"
    " \"deltas\": [1, 11], \"pi_context\": 100, \"pi_s\": [0.5, 1.5], \"pi_b\": [2, 4],\n"
    " \"sigma\": 0.25, \"settings\": {\"repeats\": 3}}";

static int near(double a, double b) { return fabs(a - b) <= 1e-9 * (1 + fabs(b)); }

static void test_lookups(void) {
    LatencyTable *t;
    SrError err;
    int rc = latency_table_parse(&t, GOOD, strlen(GOOD), "t.json", &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(t->measured == 1 && !strcmp(t->device, "test") && !strcmp(t->note, "by hand"));
    CHECK(t->small.hidden_size == 64 && t->big.num_hidden_layers == 4 && t->big.num_params == 5000);
    CHECK(t->settings && strstr(t->settings, "repeats"));
    /* grid points */
    CHECK(near(latency_tau(t, LATENCY_SMALL, 1, 100), 1));
    CHECK(near(latency_tau(t, LATENCY_SMALL, 4, 400), 4));
    CHECK(near(latency_tau(t, LATENCY_BIG, 4, 100), 30));
    /* log-linear: batch 2 and context 200 are half-way between 1..4 and 100..400 */
    CHECK(near(latency_tau(t, LATENCY_SMALL, 2, 100), 2));
    CHECK(near(latency_tau(t, LATENCY_SMALL, 1, 200), 1.5));
    CHECK(near(latency_tau(t, LATENCY_BIG, 2, 200), 25));
    /* outside: batch clamped, context below clamped, above extrapolated linearly */
    CHECK(near(latency_tau(t, LATENCY_SMALL, 8, 100), 3));
    CHECK(near(latency_tau(t, LATENCY_SMALL, 0, 100), 1));
    CHECK(near(latency_tau(t, LATENCY_SMALL, 1, 50), 1));
    CHECK(near(latency_tau(t, LATENCY_SMALL, 1, 700), 3));   /* 2 + (1/300) * 300 */
    CHECK(near(latency_tau(t, LATENCY_BIG, 16, 1000), 60)); /* 40 + (10/300) * 600 */
    /* pi: 0 without a catch-up, linear inside, linear beyond */
    CHECK(latency_pi(t, LATENCY_SMALL, 0) == 0);
    CHECK(latency_pi(t, LATENCY_SMALL, -3) == 0);
    CHECK(near(latency_pi(t, LATENCY_SMALL, 1), 0.5));
    CHECK(near(latency_pi(t, LATENCY_SMALL, 6), 1.0));
    CHECK(near(latency_pi(t, LATENCY_SMALL, 11), 1.5));
    CHECK(near(latency_pi(t, LATENCY_SMALL, 21), 2.5));
    CHECK(near(latency_pi(t, LATENCY_BIG, 6), 3));
    CHECK(near(latency_pi(t, LATENCY_BIG, 111), 24));
    /* T_split by hand: 100 small + 100 big tokens ending at 300 -> mean context 200:
     * tau_s 1.5, tau_b 15; switches pi_b(6) + pi_s(1) + sigma, pi_b(11) + pi_s(21) + sigma */
    int db[2] = {6, 11}, ds[2] = {1, 21};
    double T = latency_t_split(t, 1, 300, 100, 100, 2, db, ds);
    CHECKF(near(T, 150 + 1500 + (3 + 0.5 + 0.25) + (4 + 2.5 + 0.25)), "T_split %g", T);
    CHECK(near(latency_t_split(t, 1, 300, 100, 100, 0, NULL, NULL), 1650));
    CHECK(near(latency_t_single(t, LATENCY_SMALL, 1, 300, 200), 300));
    CHECK(near(latency_t_single(t, LATENCY_BIG, 1, 300, 200), 3000));
    /* a short sequence's mean context is at least 1 (below the grid: the first column) */
    CHECK(near(latency_t_split(t, 4, 2, 2, 2, 0, NULL, NULL), 2 * 3 + 2 * 30));
    /* the writer reads back to the same table */
    SrBuf b = {0};
    latency_table_to_json(t, &b);
    LatencyTable *u;
    rc = latency_table_parse(&u, b.p, b.n, "back.json", &err);
    CHECKF(rc == 0, "%s\n%s", err.msg, b.p);
    if (!rc) {
        CHECK(u->n_batches == 2 && u->n_contexts == 2 && u->n_deltas == 2 && u->pi_context == 100);
        CHECK(!memcmp(u->tau_s, t->tau_s, 4 * sizeof(double)) && !memcmp(u->tau_b, t->tau_b, 4 * sizeof(double)));
        CHECK(!memcmp(u->pi_s, t->pi_s, 2 * sizeof(double)) && !memcmp(u->pi_b, t->pi_b, 2 * sizeof(double)));
        CHECK(u->sigma == t->sigma && u->measured && !strcmp(u->small.name, "s") && !strcmp(u->big.name, "b"));
        CHECK(u->settings && !strcmp(u->settings, t->settings) && !strcmp(u->note, "by hand"));
        latency_table_free(u);
    }
    sr_buf_free(&b);
    /* a file on disk */
    const char *dir = sr_test_tmpdir("test_latency");
    char path[1024];
    snprintf(path, sizeof path, "%s/t.json", dir);
    sr_test_write_file(path, GOOD, strlen(GOOD));
    LatencyTable *f;
    CHECK(latency_table_load(&f, path, &err) == 0);
    latency_table_free(f);
    snprintf(path, sizeof path, "%s/missing.json", dir);
    f = (LatencyTable *)1;
    CHECK(latency_table_load(&f, path, &err) == -1 && f == NULL && strstr(err.msg, path));
    latency_table_free(t);
}

/* extrapolation never goes below zero or downhill; one-point grids are constant */
static void test_edges(void) {
    const char *txt =
        "{\"version\": 1, \"device\": \"d\", \"source\": \"modelled\",\n"
        " \"small\": {\"name\": \"s\", \"hidden_size\": 1, \"num_hidden_layers\": 1, \"num_params\": 1},\n"
        " \"big\": {\"name\": \"b\", \"hidden_size\": 1, \"num_hidden_layers\": 1, \"num_params\": 1},\n"
        " \"batches\": [1], \"contexts\": [10, 20], \"tau_s\": [[5, 3]], \"tau_b\": [[7, 7]],\n"
        " \"deltas\": [2, 4, 8], \"pi_context\": 0, \"pi_s\": [1, 3, 2], \"pi_b\": [4, 1, 1], \"sigma\": 0}";
    LatencyTable *t;
    SrError err;
    int rc = latency_table_parse(&t, txt, strlen(txt), "e.json", &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(t->measured == 0 && t->note == NULL && t->settings == NULL);
    CHECK(near(latency_tau(t, LATENCY_SMALL, 64, 15), 5 - 2 * log(1.5) / log(2))); /* log-linear */
    CHECK(near(latency_tau(t, LATENCY_SMALL, 1, 1000), 3)); /* a falling last segment: held flat */
    CHECK(near(latency_pi(t, LATENCY_SMALL, 3), 2));
    CHECK(near(latency_pi(t, LATENCY_SMALL, 100), 2));      /* falling: flat beyond the grid */
    CHECK(near(latency_pi(t, LATENCY_SMALL, 1), 0));        /* 1 - 1 * 1: rising segment */
    CHECK(near(latency_pi(t, LATENCY_BIG, 1), 4));          /* falling below the grid: flat */
    CHECK(near(latency_pi(t, LATENCY_BIG, 6), 1));
    latency_table_free(t);
}

/* every bad table: refused, nothing returned, one line "bad.json: <field>: ..." */
typedef struct BadCase {
    const char *key;   /* top-level key to change ("small.name": inside small) */
    const char *value; /* JSON text, or NULL: delete the key */
    const char *want;  /* substring of the message */
} BadCase;

static void test_bad(void) {
    static const BadCase CASES[] = {
        {"sigma", NULL, "bad.json: missing field 'sigma'"},
        {"device", NULL, "bad.json: missing field 'device'"},
        {"tau_b", NULL, "bad.json: missing field 'tau_b'"},
        {"small.name", NULL, "bad.json: missing field 'small.name'"},
        {"sigma", "\"x\"", "bad.json: sigma: expected a number, got a string"},
        {"sigma", "-1", "bad.json: sigma: -1 is negative"},
        {"sigma", "null", "bad.json: sigma: expected a number, got null"},
        {"device", "3", "bad.json: device: expected a string, got a number"},
        {"source", "\"guessed\"", "bad.json: source: expected \"measured\" or \"modelled\""},
        {"version", "2", "bad.json: version: 2 is not a version"},
        {"batches", "[4, 1]", "bad.json: batches[1]: 1 is not above batches[0] = 4 (the grid must be increasing)"},
        {"contexts", "[100, 100]", "bad.json: contexts[1]: 100 is not above contexts[0] = 100"},
        {"batches", "[0, 4]", "bad.json: batches[0]: 0 is below 1"},
        {"batches", "[1.5, 4]", "bad.json: batches[0]: 1.5 is not a whole number"},
        {"batches", "[1, 1e12]", "bad.json: batches[1]: 1e+12 is out of range"},
        {"contexts", "\"128\"", "bad.json: contexts: expected a list, got a string"},
        {"deltas", "[]", "bad.json: deltas: the list is empty"},
        {"deltas", "[1, 11, 12]", "bad.json: pi_s: 2 values for 3 deltas"},
        {"tau_s", "[[1, 2], [3, 4], [5, 6]]", "bad.json: tau_s: 3 rows for 2 batches"},
        {"tau_s", "[[1, 2], [3, 4, 5]]", "bad.json: tau_s[1]: 3 values for 2 contexts"},
        {"tau_s", "[5, [3, 4]]", "bad.json: tau_s[0]: expected a list (one value per context), got a number"},
        {"tau_s", "{}", "bad.json: tau_s: expected a list of rows"},
        {"tau_b", "[[10, -0.5], [30, 40]]", "bad.json: tau_b[0][1]: -0.5 is negative"},
        {"tau_b", "[[10, true], [30, 40]]", "bad.json: tau_b[0][1]: expected a number, got a boolean"},
        {"pi_s", "[0.5, 1.5, 2.5]", "bad.json: pi_s: 3 values for 2 deltas"},
        {"pi_b", "[2, \"a\"]", "bad.json: pi_b[1]: expected a number, got a string"},
        {"pi_b", "[2, -4]", "bad.json: pi_b[1]: -4 is negative"},
        {"sigma", "2e6", "bad.json: sigma: 2e+06 is above 1e+06 s"},
        {"pi_s", "[1e300, 1]", "bad.json: pi_s[0]: 1e+300 is above 1e+06 s"},
        {"pi_context", "-1", "bad.json: pi_context: -1 is negative"},
        {"tau_x", "1", "bad.json: unknown field 'tau_x'"},
        {"small.extra", "1", "bad.json: unknown field 'small.extra'"},
        {"big.hidden_size", "0", "bad.json: big.hidden_size: 0 is below 1"},
        {"big.num_params", "0.5", "bad.json: big.num_params: 0.5 is not a whole number >= 1"},
        {"small", "[]", "bad.json: small: expected an object, got a list"},
        {"settings", "3", "bad.json: settings: expected an object, got a number"},
        {"note", "[]", "bad.json: note: expected a string, got a list"},
    };
    for (size_t i = 0; i < sizeof CASES / sizeof CASES[0]; i++) {
        const BadCase *c = &CASES[i];
        cJSON *root = cJSON_Parse(GOOD), *obj = root;
        char key[64];
        snprintf(key, sizeof key, "%s", c->key);
        char *dot = strchr(key, '.');
        if (dot) {
            *dot = '\0';
            obj = cJSON_GetObjectItemCaseSensitive(root, key);
            memmove(key, dot + 1, strlen(dot + 1) + 1);
        }
        cJSON_DeleteItemFromObjectCaseSensitive(obj, key);
        if (c->value) cJSON_AddItemToObject(obj, key, cJSON_Parse(c->value));
        char *text = cJSON_Print(root);
        LatencyTable *t = (LatencyTable *)1;
        SrError err = {{0}};
        int rc = latency_table_parse(&t, text, strlen(text), "bad.json", &err);
        CHECKF(rc == -1 && t == NULL, "case %s: accepted", c->key);
        CHECKF(strstr(err.msg, c->want) && !strchr(err.msg, '\n'), "case %s=%s: '%s' wanted '%s'",
               c->key, c->value ? c->value : "(deleted)", err.msg, c->want);
        if (!rc) latency_table_free(t);
        free(text);
        cJSON_Delete(root);
    }
    /* not JSON, not an object, trailing data: the file is named */
    const char *texts[] = {"", "{", "[1]", "{} {}", "{\"version\": 1"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        LatencyTable *t;
        SrError err = {{0}};
        CHECKF(latency_table_parse(&t, texts[i], strlen(texts[i]), "bad.json", &err) == -1 &&
                   !strncmp(err.msg, "bad.json: ", 10) && !strchr(err.msg, '\n'),
               "'%s': %s", texts[i], err.msg);
    }
}

/* a table bench latency builds in memory goes through the same rules */
static void test_check(void) {
    LatencyTable *t;
    SrError err;
    if (latency_table_parse(&t, GOOD, strlen(GOOD), "t.json", &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    CHECK(latency_table_check(t, "bench", &err) == 0);
    t->pi_s[1] = NAN;
    CHECK(latency_table_check(t, "bench", &err) == -1 && strstr(err.msg, "bench: pi_s[1]: not a finite number"));
    t->pi_s[1] = 1;
    t->batches[1] = 1;
    CHECK(latency_table_check(t, "bench", &err) == -1 && strstr(err.msg, "bench: batches[1]"));
    latency_table_free(t);
}

/* SR_LATENCY_TABLE=FILE: that file loads (tests/cli_bench_latency.sh, on what bench wrote) */
static void test_env_table(const char *path) {
    LatencyTable *t;
    SrError err;
    int rc = latency_table_load(&t, path, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(latency_tau(t, LATENCY_SMALL, 1, 100) > 0 && latency_tau(t, LATENCY_BIG, 1, 100) > 0);
    CHECK(latency_pi(t, LATENCY_BIG, 3) > 0);
    latency_table_free(t);
}

/* every table shipped in configs/latency loads; the GPU ones say they are modelled */
static void test_shipped(void) {
    DIR *d = opendir("configs/latency");
    CHECK(d != NULL);
    if (!d) return;
    int n = 0, n_modelled = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 5, ".json")) continue;
        char path[512];
        snprintf(path, sizeof path, "configs/latency/%s", de->d_name);
        LatencyTable *t;
        SrError err;
        int rc = latency_table_load(&t, path, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc) continue;
        n++;
        int gpu = !strncmp(de->d_name, "h100", 4) || !strncmp(de->d_name, "h200", 4);
        if (gpu) n_modelled += !t->measured;
        CHECKF(!gpu || !t->measured, "%s: a roofline table marked measured", path);
        /* decoding the big model costs more than the small one, and more context costs more */
        CHECKF(latency_tau(t, LATENCY_BIG, 1, 512) > latency_tau(t, LATENCY_SMALL, 1, 512), "%s", path);
        CHECKF(!gpu || latency_tau(t, LATENCY_BIG, 16, 32768) > latency_tau(t, LATENCY_BIG, 16, 512), "%s", path);
        latency_table_free(t);
    }
    closedir(d);
    CHECKF(n == 6 && n_modelled == 4, "%d tables, %d modelled", n, n_modelled); /* 2 measured on the CPU */
}

int main(void) {
    const char *env = getenv("SR_LATENCY_TABLE");
    if (env && *env) {
        test_env_table(env);
        return sr_test_done();
    }
    test_lookups();
    test_edges();
    test_bad();
    test_check();
    test_shipped();
    return sr_test_done();
}
