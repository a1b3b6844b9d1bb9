/*
 * `splitreason export` gives a directory transformers loads with the same numbers: the
 * fixture (scripts/make_export_golden.py) holds transformers' per-token log-probs on a model
 * made by `init --seed 11` and exported as bf16. Here the same init + export + score run
 * through the command, and ids must be equal and log-probs within 2e-4.
 * Also: the export has every file an HF model directory needs, the tags, and bad input fails.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"

static int sh(const char *fmt, const char *a, const char *b) {
    char cmd[16384];
    snprintf(cmd, sizeof cmd, fmt, sr_test_bin(), a, b);
    return system(cmd);
}

int main(void) {
    const char *t = sr_test_tmpdir("export");
    char init[4200], exp[4200], in[4200], out[4200];
    snprintf(init, sizeof init, "%s/init", t);
    snprintf(exp, sizeof exp, "%s/export", t);
    snprintf(in, sizeof in, "%s/in.jsonl", t);
    snprintf(out, sizeof out, "%s/scores.jsonl", t);
    CHECK(sh("%s init --model-config configs/tiny_qwen2.json --tokenizer assets/qwen2_tokenizer "
             "--seed 11 --out %s 2>/dev/null%s", init, "") == 0);
    CHECK(sh("%s export %s --out %s --dtype bf16 2>/dev/null", init, exp) == 0);
    const char *files[] = {"config.json", "generation_config.json", "model.safetensors",
                           "tokenizer.json", "tokenizer_config.json", "vocab.json", "merges.txt"};
    for (int i = 0; i < 7; i++) {
        char p[8400];
        snprintf(p, sizeof p, "%s/%s", exp, files[i]);
        size_t n = 0;
        char *d = sr_test_read_file(p, &n);
        CHECKF(d && n > 0, "export lacks %s", files[i]);
        if (d && i == 0) CHECK(strstr(d, "\"torch_dtype\": \"bfloat16\"") || strstr(d, "\"dtype\": \"bfloat16\""));
        if (d && i == 4) CHECK(strstr(d, "<bigmodel>") && strstr(d, "chat_template"));
        free(d);
    }

    char *g = sr_test_read_file(sr_test_fixture("export/golden.json"), NULL);
    CHECK(g != NULL);
    cJSON *gold = g ? cJSON_Parse(g) : NULL;
    cJSON *rows = cJSON_GetObjectItem(gold, "rows");
    CHECK(cJSON_GetArraySize(rows) == 3);
    FILE *f = fopen(in, "w");
    cJSON *r;
    cJSON_ArrayForEach(r, rows) {
        char *txt = cJSON_PrintUnformatted(cJSON_GetObjectItem(r, "text"));
        fprintf(f, "{\"text\": %s}\n", txt);
        free(txt);
    }
    fclose(f);
    char cmd[13000];
    snprintf(cmd, sizeof cmd, "%s score --model %s --input %s --output %s 2>/dev/null",
             sr_test_bin(), exp, in, out);
    CHECK(system(cmd) == 0);
    char *s = sr_test_read_file(out, NULL);
    CHECK(s != NULL);
    char *line = s ? strtok(s, "\n") : NULL;
    double worst = 0;
    int compared = 0;
    cJSON_ArrayForEach(r, rows) {
        if (!line) {
            CHECK(0);
            break;
        }
        cJSON *c = cJSON_Parse(line);
        cJSON *gi = cJSON_GetObjectItem(r, "ids"), *ci = cJSON_GetObjectItem(c, "ids");
        cJSON *gl = cJSON_GetObjectItem(r, "logprobs"), *cl = cJSON_GetObjectItem(c, "logprobs");
        int n = cJSON_GetArraySize(gi);
        CHECK(cJSON_GetArraySize(ci) == n && cJSON_GetArraySize(cl) == n &&
              cJSON_GetArraySize(gl) == n - 1);
        for (int i = 0; i < n && i < cJSON_GetArraySize(ci); i++)
            CHECKF(cJSON_GetArrayItem(gi, i)->valueint == cJSON_GetArrayItem(ci, i)->valueint,
                   "token %d differs", i);
        for (int i = 1; i < n && i < cJSON_GetArraySize(cl); i++) {
            double a = cJSON_GetArrayItem(cl, i)->valuedouble;
            double b = cJSON_GetArrayItem(gl, i - 1)->valuedouble;
            double d = fabs(a - b);
            if (d > worst || isnan(d)) worst = isnan(d) ? INFINITY : d;
            compared++;
        }
        cJSON_Delete(c);
        line = strtok(NULL, "\n");
    }
    printf("export: %d log-probs compared with transformers, worst abs diff %.3g\n", compared, worst);
    CHECK(compared > 40);
    CHECKF(worst < 2e-4, "worst log-prob diff %.3g", worst);
    free(s);
    cJSON_Delete(gold);
    free(g);

    /* bad input: a missing checkpoint and a bad dtype fail with the path / the value named */
    char bad[8400];
    snprintf(bad, sizeof bad, "%s export %s/nope --out %s/x 2>&1 | tail -n 1 | grep -q 'nope'",
             sr_test_bin(), t, t);
    CHECK(system(bad) == 0);
    snprintf(bad, sizeof bad, "%s export %s --out %s/x --dtype int8 2>&1 | tail -n 1 | grep -q 'int8'",
             sr_test_bin(), init, t);
    CHECK(system(bad) == 0);
    return sr_test_done();
}
