/*
 * Readers of the data step: the JSONL reader (plain, zstd with several frames, CRLF, blank
 * lines, a last line without '\n', a 2 MB line, a truncated zstd file), trace selection from
 * OpenR1-Math-shaped rows (first/all correct, an index, correctness as bools, numbers or
 * absent, malformed shapes), every shipped trace file through its field mapping, and the
 * DeepSeek-R1-Distill chat template (exact text, ids, the think prefix not doubled).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "../data/chat_template.h"
#include "../common/jsonl.h"
#include "../data/tokenizer.h"
#include "../data/traces.h"
#include "harness.h"

static void write_zst(const char *path, const char *const *frames, int n) {
    FILE *f = fopen(path, "wb");
    for (int i = 0; i < n; i++) {
        size_t len = strlen(frames[i]), cap = ZSTD_compressBound(len);
        void *buf = malloc(cap);
        size_t c = ZSTD_compress(buf, cap, frames[i], len, 3);
        fwrite(buf, 1, c, f);
        free(buf);
    }
    fclose(f);
}

static void test_jsonl(const char *dir) {
    char p[512];
    SrError e = {{0}};
    JsonlReader r;
    /* plain: CRLF, blank lines, no final newline */
    snprintf(p, sizeof p, "%s/a.jsonl", dir);
    const char *txt = "{\"a\": 1}\r\n\n   \n{\"a\": 2}\n{\"a\": 3}";
    sr_test_write_file(p, txt, strlen(txt));
    CHECK(jsonl_open(&r, p, &e) == 0);
    CHECK(jsonl_next(&r, &e) == 1 && !strcmp(r.line, "{\"a\": 1}") && r.lineno == 1);
    CHECK(jsonl_next(&r, &e) == 1 && !strcmp(r.line, "{\"a\": 2}") && r.lineno == 4);
    CHECK(jsonl_next(&r, &e) == 1 && !strcmp(r.line, "{\"a\": 3}") && r.lineno == 5);
    CHECK(jsonl_next(&r, &e) == 0);
    CHECK(r.bytes_in == (long long)strlen(txt) && r.file_size == (long long)strlen(txt));
    jsonl_close(&r);
    CHECK(jsonl_count_lines(p, &e) == 3);

    /* a 2 MB line between two short ones */
    snprintf(p, sizeof p, "%s/long.jsonl", dir);
    size_t big = 2u << 20;
    char *buf = malloc(big + 64);
    size_t k = (size_t)sprintf(buf, "{\"x\": 0}\n{\"s\": \"");
    memset(buf + k, 'q', big);
    k += big;
    k += (size_t)sprintf(buf + k, "\"}\n{\"x\": 2}\n");
    sr_test_write_file(p, buf, k);
    CHECK(jsonl_open(&r, p, &e) == 0);
    CHECK(jsonl_next(&r, &e) == 1 && jsonl_next(&r, &e) == 1 && r.len == big + 9 && r.line[big + 7] == '"');
    CHECK(jsonl_next(&r, &e) == 1 && !strcmp(r.line, "{\"x\": 2}") && r.lineno == 3);
    jsonl_close(&r);

    /* zstd, two concatenated frames, the line split across them */
    snprintf(p, sizeof p, "%s/b.jsonl.zst", dir);
    const char *frames[] = {"{\"z\": 1}\n{\"z\": ", "2}\n{\"z\": 3}\n"};
    write_zst(p, frames, 2);
    CHECK(jsonl_open(&r, p, &e) == 0 && r.zstd);
    CHECK(jsonl_next(&r, &e) == 1 && !strcmp(r.line, "{\"z\": 1}"));
    CHECK(jsonl_next(&r, &e) == 1 && !strcmp(r.line, "{\"z\": 2}"));
    CHECK(jsonl_next(&r, &e) == 1 && !strcmp(r.line, "{\"z\": 3}") && r.lineno == 3);
    CHECK(jsonl_next(&r, &e) == 0);
    jsonl_close(&r);
    /* the big line compressed, then truncated: an error naming the file, not a short read */
    snprintf(p, sizeof p, "%s/c.jsonl.zst", dir);
    buf[k] = '\0';
    const char *one[] = {buf};
    write_zst(p, one, 1);
    size_t zl;
    char *z = sr_test_read_file(p, &zl);
    sr_test_write_file(p, z, zl / 2);
    free(z);
    CHECK(jsonl_open(&r, p, &e) == 0);
    int got;
    while ((got = jsonl_next(&r, &e)) == 1) {}
    CHECKF(got == -1 && strstr(e.msg, "c.jsonl.zst") && strstr(e.msg, "truncated"), "%s", e.msg);
    jsonl_close(&r);
    free(buf);
    CHECK(jsonl_open(&r, "/no/such/file.jsonl", &e) != 0 && strstr(e.msg, "/no/such/file.jsonl"));
}

/* the mapping keys at their defaults (what the command's option table gives), overlaid */
static cJSON *cfg_json(SrConfig *cfg, const char *json) {
    cfg->root = cJSON_Parse("{\"field\": \"generations\", \"problem_field\": \"problem\", "
                            "\"correct_field\": \"correctness_math_verify\", \"select\": \"first_correct\", "
                            "\"trace_from\": null, \"trace_strip_suffix\": null, \"where\": null}");
    cJSON *over = cJSON_Parse(json);
    for (cJSON *e = over->child; e; e = e->next)
        cJSON_ReplaceItemInObjectCaseSensitive(cfg->root, e->string, cJSON_Duplicate(e, 1));
    cJSON_Delete(over);
    return cfg->root;
}

static int select_idx(const char *config, const char *row_json, int *idx, int max, char *err_out) {
    SrConfig cfg;
    cfg_json(&cfg, config);
    TraceSpec spec;
    SrError e = {{0}};
    int rc = trace_spec_from_config(&spec, &cfg, &e);
    cJSON *row = cJSON_Parse(row_json);
    Trace *t = NULL;
    int n = -1;
    if (!rc) rc = traces_from_row(&spec, row, &t, &n, &e);
    if (err_out) strcpy(err_out, rc ? e.msg : "");
    for (int i = 0; i < n && i < max; i++) idx[i] = t[i].index;
    free(t);
    cJSON_Delete(row);
    trace_spec_free(&spec);
    cJSON_Delete(cfg.root);
    return rc ? -1 : n;
}

#define BASE "\"field\": \"generations\", \"problem_field\": \"problem\", \"correct_field\": \"correctness_math_verify\""

static void test_selection(void) {
    const char *row = "{\"problem\": \"p\", \"generations\": [\"a\", \"b\", \"c\"], "
                      "\"correctness_math_verify\": [false, true, true]}";
    int idx[8], n;
    char msg[1024];
    n = select_idx("{" BASE ", \"select\": \"first_correct\"}", row, idx, 8, NULL);
    CHECK(n == 1 && idx[0] == 1);
    n = select_idx("{" BASE ", \"select\": \"all_correct\"}", row, idx, 8, NULL);
    CHECK(n == 2 && idx[0] == 1 && idx[1] == 2);
    n = select_idx("{" BASE ", \"select\": \"first\"}", row, idx, 8, NULL);
    CHECK(n == 1 && idx[0] == 0);
    n = select_idx("{" BASE ", \"select\": \"all\"}", row, idx, 8, NULL);
    CHECK(n == 3);
    n = select_idx("{" BASE ", \"select\": 2}", row, idx, 8, NULL);
    CHECK(n == 1 && idx[0] == 2);
    n = select_idx("{" BASE ", \"select\": \"0\"}", row, idx, 8, NULL);
    CHECK(n == 1 && idx[0] == 0);
    n = select_idx("{" BASE ", \"select\": 7}", row, idx, 8, msg);
    CHECK(n == -1 && strstr(msg, "only 3 traces"));
    n = select_idx("{" BASE ", \"select\": \"best\"}", row, idx, 8, msg);
    CHECK(n == -1 && strstr(msg, "--select 'best'"));
    /* no correct generation: nothing selected (not an error) */
    n = select_idx("{" BASE ", \"select\": \"first_correct\"}",
                   "{\"generations\": [\"a\"], \"correctness_math_verify\": [false]}", idx, 8, NULL);
    CHECK(n == 0);
    /* correctness absent: unknown counts as usable; numbers count as bools */
    n = select_idx("{" BASE ", \"select\": \"all_correct\"}", "{\"generations\": [\"a\", \"b\"]}", idx, 8, NULL);
    CHECK(n == 2);
    n = select_idx("{" BASE ", \"select\": \"all_correct\"}",
                   "{\"generations\": [\"a\", \"b\"], \"correctness_math_verify\": [0, 1]}", idx, 8, NULL);
    CHECK(n == 1 && idx[0] == 1);
    /* malformed shapes */
    n = select_idx("{" BASE ", \"select\": \"all\"}",
                   "{\"generations\": [\"a\", \"b\"], \"correctness_math_verify\": [true]}", idx, 8, msg);
    CHECK(n == -1 && strstr(msg, "has 1 entries"));
    n = select_idx("{" BASE ", \"select\": \"all\"}", "{\"generations\": 5}", idx, 8, msg);
    CHECK(n == -1 && strstr(msg, "neither a string nor an array"));
    n = select_idx("{" BASE ", \"select\": \"all\"}", "{\"other\": 5}", idx, 8, msg);
    CHECK(n == -1 && strstr(msg, "no field 'generations'"));
    n = select_idx("{" BASE ", \"select\": \"all\"}", "{\"generations\": [\"a\", 3]}", idx, 8, msg);
    CHECK(n == -1 && strstr(msg, "entry 1 is not a string"));
    n = select_idx("{" BASE ", \"select\": \"all\"}", "[1, 2]", idx, 8, msg);
    CHECK(n == -1 && strstr(msg, "not a JSON object"));
    /* trace_from / trace_strip_suffix */
    SrConfig cfg;
    cfg_json(&cfg, "{\"field\": \"r\", \"select\": \"all\", \"trace_from\": \"<think>\", \"trace_strip_suffix\": \"<END>\"}");
    TraceSpec spec;
    SrError e = {{0}};
    CHECK(trace_spec_from_config(&spec, &cfg, &e) == 0);
    cJSON *r1 = cJSON_Parse("{\"r\": \"PROMPT <think>\\nreasoning</think>answer<END>\"}");
    Trace *t;
    CHECK(traces_from_row(&spec, r1, &t, &n, &e) == 0 && n == 1 && t[0].index == -1);
    CHECK(t[0].len == strlen("<think>\nreasoning</think>answer") &&
          !strncmp(t[0].text, "<think>\nreasoning</think>answer", t[0].len));
    free(t);
    cJSON_Delete(r1);
    r1 = cJSON_Parse("{\"r\": \"no marker\"}");
    CHECK(traces_from_row(&spec, r1, &t, &n, &e) == -1 && strstr(e.msg, "no '<think>'"));
    cJSON_Delete(r1);
    trace_spec_free(&spec);
    cJSON_Delete(cfg.root);
    /* where */
    cfg_json(&cfg, "{\"field\": \"r\", \"where\": \"level=3\"}");
    CHECK(trace_spec_from_config(&spec, &cfg, &e) == 0);
    cJSON *a = cJSON_Parse("{\"level\": 3}"), *b = cJSON_Parse("{\"level\": \"3\"}"), *c = cJSON_Parse("{\"level\": 4}");
    CHECK(trace_row_matches(&spec, a) && trace_row_matches(&spec, b) && !trace_row_matches(&spec, c));
    cJSON_Delete(a);
    cJSON_Delete(b);
    cJSON_Delete(c);
    trace_spec_free(&spec);
    cJSON_Delete(cfg.root);
}

/* reads a shipped file through a mapping; counts rows, selected traces, and checks each trace
 * starts as it should */
static void shipped(const char *rel, const char *config, long want_rows, long want_traces, const char *starts,
                    const char *not_ends) {
    SrConfig cfg;
    cfg_json(&cfg, config);
    TraceSpec spec;
    SrError e = {{0}};
    CHECK(trace_spec_from_config(&spec, &cfg, &e) == 0);
    JsonlReader r;
    CHECK(jsonl_open(&r, sr_test_data(rel), &e) == 0);
    long rows = 0, traces = 0, bad = 0, shape = 0;
    while (jsonl_next(&r, &e) == 1) {
        cJSON *row = cJSON_Parse(r.line);
        if (!trace_row_matches(&spec, row)) {
            cJSON_Delete(row);
            continue;
        }
        rows++;
        Trace *t;
        int n;
        if (traces_from_row(&spec, row, &t, &n, &e)) {
            shape++;
            cJSON_Delete(row);
            continue;
        }
        for (int i = 0; i < n; i++) {
            traces++;
            if (starts && strncmp(t[i].text, starts, strlen(starts)) != 0) bad++;
            size_t k = not_ends ? strlen(not_ends) : 0;
            if (not_ends && t[i].len >= k && !memcmp(t[i].text + t[i].len - k, not_ends, k)) bad++;
            if (!trace_problem(&spec, row)) bad++;
        }
        free(t);
        cJSON_Delete(row);
    }
    jsonl_close(&r);
    CHECKF(rows == want_rows && traces == want_traces && bad == 0 && shape == 0,
           "%s: rows %ld traces %ld bad %ld malformed %ld", rel, rows, traces, bad, shape);
    trace_spec_free(&spec);
    cJSON_Delete(cfg.root);
}

static void test_shipped(void) {
    shipped("openr1_math_dump10/training_examples_math.jsonl", "{\"field\": \"response\", \"problem_field\": \"problem\"}",
            10, 10, "<think>\n", NULL);
    shipped("r2a_math500_r1distill_greedy/df_attention_analysis_MATH500_greedy.jsonl",
            "{\"field\": \"response\", \"problem_field\": \"problem\", \"correct_field\": \"is_answer_correct\","
            " \"trace_from\": \"<think>\", \"trace_strip_suffix\": \"<｜end▁of▁sentence｜>\","
            " \"where\": \"model=qwen-1p5B-withR\"}",
            100, 93, "<think>\n", "<｜end▁of▁sentence｜>");
    shipped("deepscaler_1.5b_aime24_8k/8192t_test2024_qwen-instruct_t0.6_k1_s0_e30.jsonl",
            "{\"field\": \"generated_responses\", \"problem_field\": \"question\", \"correct_field\": \"answers_correctness\"}",
            30, 9, "<think>", NULL);
    shipped("deepscaler_1.5b_aime24_8k/8192t_test2024_qwen-instruct_t0.6_k1_s0_e30.jsonl",
            "{\"field\": \"generated_responses\", \"problem_field\": \"question\", \"select\": \"all\"}", 30, 30, "<think>", NULL);
    shipped("qwq32b_math500_semantic/h100_QwQ-32B_math-500_seed123.jsonl",
            "{\"field\": \"real_answer\", \"problem_field\": \"input_text\", \"correct_field\": null}", 400, 400, NULL, NULL);
    shipped("thought_anchors_math/thought_anchors_math_base_solutions.jsonl",
            "{\"field\": \"solution\", \"problem_field\": \"problem\", \"correct_field\": \"is_correct\"}", 40, 20, NULL, NULL);
}

static void test_chat_template(void) {
    Tokenizer *tok;
    SrError e = {{0}};
    CHECK(tokenizer_load(&tok, "assets/qwen2_tokenizer", &e) == 0);
    ChatTemplate t = {NULL, NULL, 1};
    char *p = chat_prompt_text(&t, "What is 2+2?");
    CHECK(!strcmp(p, "<｜User｜>What is 2+2?<｜Assistant｜><think>\n"));
    free(p);
    ChatTemplate ts = {"You are helpful.", "", 1};
    p = chat_prompt_text(&ts, "Q");
    CHECK(!strcmp(p, "You are helpful.<｜User｜>Q<｜Assistant｜>"));
    free(p);
    const char *comp = "<think>\nTwo plus two. <bigmodel>It is 4.<\\bigmodel>\n</think>\n\n\\boxed{4}";
    int32_t *ids;
    size_t n, np;
    CHECK(chat_encode(&t, tok, "What is 2+2?", comp, strlen(comp), &ids, &n, &np, &e) == 0);
    CHECK(ids[0] == 151646 && ids[n - 1] == 151643 && ids[np - 1] != 151643);
    /* the prompt part decodes to the template, the rest to the completion without its think
     * prefix (the misspelled closing tag is read as </bigmodel> only when the tokenizer has it) */
    char *txt;
    size_t tl;
    tokenizer_decode(tok, ids, np, &txt, &tl, &e);
    CHECK(!strcmp(txt, "<｜begin▁of▁sentence｜><｜User｜>What is 2+2?<｜Assistant｜><think>\n"));
    free(txt);
    int has_user = 0, has_asst = 0;
    for (size_t i = 0; i < np; i++) has_user |= ids[i] == 151644, has_asst |= ids[i] == 151645;
    CHECK(has_user && has_asst);
    tokenizer_decode(tok, ids + np, n - np, &txt, &tl, &e);
    CHECK(!strcmp(txt, "Two plus two. <bigmodel>It is 4.<\\bigmodel>\n</think>\n\n\\boxed{4}<｜end▁of▁sentence｜>"));
    free(txt);
    free(ids);
    int32_t o, c;
    CHECK(tokenizer_add_bigmodel_tokens(tok, &o, &c, &e) == 0);
    CHECK(chat_encode(&t, tok, "Q", comp, strlen(comp), &ids, &n, &np, &e) == 0);
    int opens = 0, closes = 0;
    for (size_t i = np; i < n; i++) opens += ids[i] == o, closes += ids[i] == c;
    CHECK(opens == 1 && closes == 1);
    free(ids);
    /* a completion without the prefix is kept whole */
    size_t cl;
    const char *cc = chat_completion_text(&t, "plain", 5, &cl);
    CHECK(cl == 5 && !strncmp(cc, "plain", 5));
    tokenizer_free(tok);
}

int main(void) {
    const char *dir = sr_test_tmpdir("test_data_readers");
    test_jsonl(dir);
    test_selection();
    test_shipped();
    test_chat_template();
    return sr_test_done();
}
