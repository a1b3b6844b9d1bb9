/*
 * The LLM judge against a local mock server (tests/mock_judge.h, 127.0.0.1, started and
 * stopped here): reply parsing; a good server; one that quotes snippets not in the text; one
 * that answers slower than the timeout; one that fails with 500 / 429 / a non-JSON body before
 * answering; one that is down; a wrong API key (not retried, key never shown); no server at
 * all; several requests in flight. Then `splitreason annotate --method judge` end to end on
 * real DeepSeek-R1-Distill-Qwen-1.5B MATH-500 traces: tags, spans on token edges, offload near
 * the target, the key in no output, malformed rows reported and skipped (--strict stops), and
 * resume after kills at random moments (every trace exactly once, same rows as a clean run).
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../annotate/align.h"
#include "../annotate/judge.h"
#include "../data/tokenizer.h"
#include "annot_check.h"
#include "harness.h"
#include "mock_judge.h"
#include "proc_util.h"

#define KEY "sk-test-SECRET-4242-do-not-print"
#define R2A "r2a_math500_r1distill_greedy/df_attention_analysis_MATH500_greedy.jsonl"

static void test_parse(void) {
    char **s;
    int n;
    judge_parse_snippets("-----SNIPPET START-----\nfirst one\n-----SNIPPET END-----\n"
                         "junk\n---SNIPPET START---\nsecond\nline\n---SNIPPET END---",
                         &s, &n);
    CHECK(n == 2 && !strcmp(s[0], "first one") && !strcmp(s[1], "second\nline"));
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
    judge_parse_snippets("<think>I should pick...</think>\n-----SENTENCE START-----\nA.\n-----SENTENCE END-----", &s, &n);
    CHECK(n == 1 && !strcmp(s[0], "A."));
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
    judge_parse_snippets("```json\n[\"x = 2\", \"so y = \\\\frac{1}{2}\"]\n```", &s, &n);
    CHECK(n == 2 && !strcmp(s[1], "so y = \\frac{1}{2}"));
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
    judge_parse_snippets("{\"snippets\": [\"only\"]}", &s, &n);
    CHECK(n == 1 && !strcmp(s[0], "only"));
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);
    judge_parse_snippets("- \"first line\"\n\n* second line\n", &s, &n);
    CHECK(n == 2 && !strcmp(s[0], "first line") && !strcmp(s[1], "second line"));
    for (int i = 0; i < n; i++) free(s[i]);
    free(s);

    JudgeConfig c = {.model = "m1", .target_fraction = 0.25, .temperature = 0};
    JudgeRequest rq = {"What is 1+1?", "<think>\nOne plus one is two.\n</think>", 36};
    char *body = judge_build_body(&c, &rq);
    cJSON *j = cJSON_Parse(body);
    CHECK(j && !strcmp(cJSON_GetObjectItem(j, "model")->valuestring, "m1"));
    const cJSON *msgs = cJSON_GetObjectItem(j, "messages");
    CHECK(cJSON_GetArraySize(msgs) == 2);
    const char *sys = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 0), "content")->valuestring;
    const char *usr = cJSON_GetObjectItem(cJSON_GetArrayItem(msgs, 1), "content")->valuestring;
    CHECK(strstr(sys, "about 25%") && strstr(sys, "about 9 of its 36 characters") && !strstr(sys, "{percent}"));
    CHECK(strstr(usr, "What is 1+1?") && strstr(usr, "One plus one is two."));
    cJSON_Delete(j);
    free(body);
}

/* a few traces of real text (the shipped OpenR1 dump) */
static int load_traces(char **traces, int max) {
    JsonlReader r;
    SrError e = {{0}};
    if (jsonl_open(&r, sr_test_data("openr1_math_dump10/training_examples_math.jsonl"), &e)) return 0;
    int n = 0;
    while (n < max && jsonl_next(&r, &e) == 1) {
        cJSON *row = cJSON_Parse(r.line);
        const char *resp = cJSON_GetObjectItem(row, "response")->valuestring;
        size_t len = strlen(resp) < 6000 ? strlen(resp) : 6000; /* keep the requests small */
        while (len > 0 && ((unsigned char)resp[len] & 0xC0) == 0x80) len--;
        traces[n] = strndup(resp, len);
        n++;
        cJSON_Delete(row);
    }
    jsonl_close(&r);
    return n;
}

static JudgeConfig config_for(int port, const char *key_env) {
    static char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", port);
    JudgeConfig c = {0};
    c.endpoint = url;
    c.model = "mock";
    c.api_key_env = key_env;
    c.timeout_s = 5;
    c.connect_timeout_s = 2;
    c.retries = 4;
    c.backoff_s = 0.02;
    c.backoff_max_s = 0.2;
    c.parallel = 3;
    c.target_fraction = 0.2;
    return c;
}

/* runs n traces against a server in `mode`; returns the replies (caller frees) */
static JudgeReply *run_mode(int mode, JudgeConfig *c, char **traces, int n, MockJudge *m, double *secs) {
    JudgeReply *rep = calloc((size_t)n, sizeof *rep);
    JudgeRequest *rq = calloc((size_t)n, sizeof *rq);
    for (int i = 0; i < n; i++) rq[i] = (JudgeRequest){NULL, traces[i], strlen(traces[i])};
    Judge *j;
    SrError e = {{0}};
    if (judge_open(&j, c, &e)) {
        fprintf(stderr, "judge_open: %s\n", e.msg);
        CHECK(0);
        free(rq);
        return rep;
    }
    double t0 = proc_now();
    CHECK(judge_run(j, rq, rep, n, NULL, NULL, &e) == 0);
    *secs = proc_now() - t0;
    judge_close(j);
    free(rq);
    (void)mode;
    (void)m;
    return rep;
}

static void free_replies(JudgeReply *rep, int n) {
    for (int i = 0; i < n; i++) judge_reply_free(&rep[i]);
    free(rep);
}

static void test_server_modes(void) {
    char *traces[6];
    int n = load_traces(traces, 6);
    CHECK(n == 6);
    setenv("SR_TEST_JUDGE_KEY", KEY, 1);
    MockJudge m;
    double secs;

    /* good: every snippet aligns (fuzzy: the mock perturbs some), shares near the target */
    CHECK(mock_judge_start(&m, MOCK_GOOD, 0.2, KEY) == 0);
    JudgeConfig c = config_for(m.port, "SR_TEST_JUDGE_KEY");
    JudgeReply *rep = run_mode(MOCK_GOOD, &c, traces, n, &m, &secs);
    int aligned = 0, total = 0, fuzzy = 0;
    for (int i = 0; i < n; i++) {
        CHECKF(rep[i].ok && rep[i].attempts == 1, "trace %d: %s", i, rep[i].error);
        CHECK(rep[i].n_snippets >= 2 && rep[i].prompt_tokens == 1000 && rep[i].completion_tokens == 200);
        AlignIndex ix;
        align_index_build(&ix, traces[i], strlen(traces[i]));
        for (int k = 0; k < rep[i].n_snippets; k++) {
            AlignParams ap = {0.8, 8, 0, 0};
            AlignResult a = align_snippet(&ix, rep[i].snippets[k], strlen(rep[i].snippets[k]), &ap);
            total++;
            aligned += a.found;
            fuzzy += a.found && !a.exact;
        }
        align_index_free(&ix);
    }
    CHECKF(aligned == total && fuzzy > 0, "aligned %d of %d (%d fuzzy)", aligned, total, fuzzy);
    free_replies(rep, n);
    mock_judge_stop(&m);

    /* snippets that are not in the text are reported as unaligned */
    CHECK(mock_judge_start(&m, MOCK_NOISE, 0.2, KEY) == 0);
    c = config_for(m.port, "SR_TEST_JUDGE_KEY");
    rep = run_mode(MOCK_NOISE, &c, traces, 2, &m, &secs);
    for (int i = 0; i < 2; i++) {
        AlignIndex ix;
        align_index_build(&ix, traces[i], strlen(traces[i]));
        int missing = 0;
        for (int k = 0; k < rep[i].n_snippets; k++) {
            AlignParams ap = {0.8, 8, 0, 0};
            missing += !align_snippet(&ix, rep[i].snippets[k], strlen(rep[i].snippets[k]), &ap).found;
        }
        CHECKF(rep[i].ok && missing == 2, "trace %d: %d unaligned", i, missing);
        align_index_free(&ix);
    }
    free_replies(rep, 2);
    mock_judge_stop(&m);

    /* the first attempt is never answered in time (the server would take 60 s): the client
     * gives up after its timeout, hangs up (the server counts it) and retries. Counted, not
     * timed: attempts == 2 says the timeout fired, `abandoned` that the client hung up. */
    CHECK(mock_judge_start(&m, MOCK_SLOW, 0.2, KEY) == 0);
    m.slow_s = 60.0;
    c = config_for(m.port, "SR_TEST_JUDGE_KEY");
    c.timeout_s = 1.5; /* the retry is answered at once, but on a loaded machine (2 cores, ctest -j2,
                          ASan) 0.4 s did not always cover it: a third attempt */
    rep = run_mode(MOCK_SLOW, &c, traces, 3, &m, &secs);
    for (int i = 0; i < 3; i++) CHECKF(rep[i].ok && rep[i].attempts == 2, "slow %d: attempts %d %s", i, rep[i].attempts, rep[i].error);
    free_replies(rep, 3);
    mock_judge_stop(&m); /* waits for the handlers: `abandoned` is final */
    CHECKF(atomic_load(&m.abandoned) == 3, "the client hung up on %d of 3 slow first attempts",
           atomic_load(&m.abandoned));

    /* 500, 429 with Retry-After, a non-JSON 200, then the answer */
    CHECK(mock_judge_start(&m, MOCK_FLAKY, 0.2, KEY) == 0);
    c = config_for(m.port, "SR_TEST_JUDGE_KEY");
    rep = run_mode(MOCK_FLAKY, &c, traces, 4, &m, &secs);
    for (int i = 0; i < 4; i++)
        CHECKF(rep[i].ok && rep[i].attempts == 4 && rep[i].n_snippets > 0, "flaky %d: attempts %d %s", i,
               rep[i].attempts, rep[i].error);
    free_replies(rep, 4);
    /* too few retries for it: fails, reported */
    c.retries = 1;
    rep = run_mode(MOCK_FLAKY, &c, traces + 4, 1, &m, &secs);
    CHECKF(!rep[0].ok && rep[0].attempts == 2 && strstr(rep[0].error, "HTTP 429"), "%s", rep[0].error);
    free_replies(rep, 1);
    mock_judge_stop(&m);

    /* down: every attempt fails with 503 */
    CHECK(mock_judge_start(&m, MOCK_DOWN, 0.2, KEY) == 0);
    c = config_for(m.port, "SR_TEST_JUDGE_KEY");
    c.retries = 2;
    rep = run_mode(MOCK_DOWN, &c, traces, 2, &m, &secs);
    for (int i = 0; i < 2; i++)
        CHECKF(!rep[i].ok && rep[i].attempts == 3 && strstr(rep[i].error, "HTTP 503"), "%s", rep[i].error);
    free_replies(rep, 2);
    mock_judge_stop(&m);

    /* a wrong key: 401, not retried, and the key the server echoes back is masked */
    CHECK(mock_judge_start(&m, MOCK_GOOD, 0.2, "another-key") == 0);
    c = config_for(m.port, "SR_TEST_JUDGE_KEY");
    rep = run_mode(MOCK_GOOD, &c, traces, 1, &m, &secs);
    CHECKF(!rep[0].ok && rep[0].attempts == 1 && strstr(rep[0].error, "HTTP 401") &&
               !strstr(rep[0].error, KEY) && strstr(rep[0].error, "***"),
           "%s", rep[0].error);
    free_replies(rep, 1);
    int port_gone = m.port;
    mock_judge_stop(&m);

    /* nobody listening */
    c = config_for(port_gone, "SR_TEST_JUDGE_KEY");
    c.retries = 1;
    rep = run_mode(MOCK_GOOD, &c, traces, 1, &m, &secs);
    CHECKF(!rep[0].ok && rep[0].attempts == 2, "%s", rep[0].error);
    free_replies(rep, 1);

    /* several in flight: with --judge-parallel 3 the server sees 3 requests at once, never
     * more (each answer waits until 3 are in flight, so a client that sends one at a time is
     * caught by the count, not by a clock) */
    CHECK(mock_judge_start(&m, MOCK_GOOD, 0.2, KEY) == 0);
    m.gather = 3;
    c = config_for(m.port, "SR_TEST_JUDGE_KEY");
    rep = run_mode(MOCK_GOOD, &c, traces, 6, &m, &secs);
    for (int i = 0; i < 6; i++)
        CHECKF(rep[i].ok && rep[i].attempts == 1, "request %d: attempts %d %s", i, rep[i].attempts,
               rep[i].error);
    free_replies(rep, 6);
    mock_judge_stop(&m);
    CHECKF(atomic_load(&m.max_in_flight) == 3, "6 requests with parallel 3: %d in flight at most",
           atomic_load(&m.max_in_flight));

    /* a missing key variable is an error at open, naming the variable (not a value) */
    unsetenv("SR_TEST_NO_SUCH_KEY");
    c = config_for(1, "SR_TEST_NO_SUCH_KEY");
    Judge *j;
    SrError e = {{0}};
    CHECK(judge_open(&j, &c, &e) != 0 && strstr(e.msg, "SR_TEST_NO_SUCH_KEY"));
    for (int i = 0; i < n; i++) free(traces[i]);
}

/* ---- the command ---------------------------------------------------------------------------- */

static void build_argv(char **argv, const char *out, const char *url, int limit, const char *input,
                       const char *extra1, const char *extra2) {
    static char lim[16];
    snprintf(lim, sizeof lim, "%d", limit);
    int k = 0;
    argv[k++] = (char *)sr_test_bin();
    argv[k++] = "annotate";
    argv[k++] = "--method";
    argv[k++] = "judge";
    argv[k++] = "--input";
    argv[k++] = (char *)input;
    argv[k++] = "--output";
    argv[k++] = (char *)out;
    argv[k++] = "--field";
    argv[k++] = "response";
    argv[k++] = "--correct-field";
    argv[k++] = "is_answer_correct";
    argv[k++] = "--trace-from";
    argv[k++] = "<think>";
    argv[k++] = "--trace-strip-suffix";
    argv[k++] = "<｜end▁of▁sentence｜>";
    argv[k++] = "--where";
    argv[k++] = "model=qwen-1p5B-withR";
    argv[k++] = "--limit";
    argv[k++] = lim;
    argv[k++] = "--tokenizer";
    argv[k++] = "assets/qwen2_tokenizer";
    argv[k++] = "--judge-endpoint";
    argv[k++] = (char *)url;
    argv[k++] = "--judge-model";
    argv[k++] = "mock-judge";
    argv[k++] = "--judge-api-key-env";
    argv[k++] = "SR_TEST_JUDGE_KEY";
    argv[k++] = "--judge-parallel";
    argv[k++] = "3";
    argv[k++] = "--judge-backoff";
    argv[k++] = "0.02";
    argv[k++] = "--judge-timeout";
    argv[k++] = "10";
    if (extra1) argv[k++] = (char *)extra1;
    if (extra2) argv[k++] = (char *)extra2;
    argv[k] = NULL;
}

static void test_command(void) {
    const char *dir = sr_test_tmpdir("test_judge");
    char out[512], err_log[512], out_log[512], url[64], clean[512];
    setenv("SR_TEST_JUDGE_KEY", KEY, 1);
    Tokenizer *tok;
    SrError e = {{0}};
    CHECK(tokenizer_load(&tok, "assets/qwen2_tokenizer", &e) == 0);
    MockJudge m;
    CHECK(mock_judge_start(&m, MOCK_GOOD, 0.2, KEY) == 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", m.port);
    const char *input = sr_test_data(R2A);
    char in_copy[4096];
    snprintf(in_copy, sizeof in_copy, "%s", input);

    /* a clean run over 12 real traces */
    snprintf(clean, sizeof clean, "%s/clean.jsonl", dir);
    snprintf(err_log, sizeof err_log, "%s/clean.err", dir);
    snprintf(out_log, sizeof out_log, "%s/clean.out", dir);
    char *argv[64];
    build_argv(argv, clean, url, 12, in_copy, NULL, NULL);
    m.delay_s = 0.5; /* slow answers: the run lasts long enough to be killed in the middle */
    int rc = proc_run(argv, out_log, err_log, 120);
    CHECKF(rc == 0, "annotate --method judge exited %d (see %s)", rc, err_log);
    AnnotCheck ac;
    CHECK(annot_check_file(clean, tok, -1, &ac) == 0);
    /* 12 rows of the 1.5B model, of which the incorrect ones have no selected trace */
    CHECKF(ac.rows >= 10 && ac.rows <= 12 && ac.bad_rows == 0 && ac.off_token_edge == 0,
           "rows %ld bad %ld off-edge %ld", ac.rows, ac.bad_rows, ac.off_token_edge);
    CHECK(annot_keys_unique(&ac));
    double mean = ac.rows ? ac.share_sum / ac.rows : 0;
    CHECKF(mean > 0.12 && mean < 0.30, "judge offload share mean %.3f (target 0.2)", mean);
    CHECK(!proc_file_contains(clean, KEY) && !proc_file_contains(err_log, KEY) && !proc_file_contains(out_log, KEY));
    CHECK(proc_file_contains(out_log, "offload share (tokens)"));
    char sj[600], sv[600];
    snprintf(sj, sizeof sj, "%s.summary.json", clean);
    snprintf(sv, sizeof sv, "%s.summary.svg", clean);
    CHECK(proc_file_contains(sj, "\"token_share\"") && proc_file_contains(sv, "<svg") && proc_file_contains(sv, "</svg>"));
    CHECK(!proc_file_contains(sj, KEY));
    long clean_rows = ac.rows;

    /* kills at random moments, then runs to the end: every trace exactly once, same rows */
    snprintf(out, sizeof out, "%s/resumed.jsonl", dir);
    build_argv(argv, out, url, 12, in_copy, NULL, NULL);
    srand(7);
    int kills = 0;
    /* once during start-up, then three times a random moment after the run wrote a row */
    kills += proc_run_and_kill(argv, NULL, NULL, 0.05 + 0.2 * rand() / (double)RAND_MAX);
    for (int round = 0; round < 3; round++) {
        char kerr[600];
        snprintf(kerr, sizeof kerr, "%s/killed%d.err", dir, round);
        kills += proc_kill_after_rows(argv, kerr, out, 1, 0.3 * rand() / (double)RAND_MAX, 120);
    }
    CHECKF(kills == 4, "only %d of 4 runs were killed before they finished", kills);
    long partial = proc_count_lines(out);
    CHECKF(partial < clean_rows, "killed runs already finished everything (%ld rows)", partial);
    char res_err[600];
    snprintf(res_err, sizeof res_err, "%s/resumed.err", dir);
    rc = proc_run(argv, NULL, res_err, 120);
    CHECKF(rc == 0, "resumed run exited %d (%s)", rc, res_err);
    CHECK(annot_check_file(out, tok, -1, &ac) == 0);
    CHECKF(ac.rows == clean_rows && ac.bad_rows == 0 && annot_keys_unique(&ac), "resumed rows %ld, clean %ld",
           ac.rows, clean_rows);
    /* same annotated rows as the clean run (the mock answers deterministically) */
    {
        JsonlReader a, b;
        int same = 1, na = 0;
        jsonl_open(&a, clean, &e);
        while (jsonl_next(&a, &e) == 1) {
            cJSON *ra = cJSON_Parse(a.line);
            int line = cJSON_GetObjectItem(ra, "source_line")->valueint, found = 0;
            jsonl_open(&b, out, &e);
            while (jsonl_next(&b, &e) == 1) {
                cJSON *rb = cJSON_Parse(b.line);
                if (cJSON_GetObjectItem(rb, "source_line")->valueint == line) {
                    found = 1;
                    same &= !strcmp(cJSON_GetObjectItem(ra, "annotated")->valuestring,
                                    cJSON_GetObjectItem(rb, "annotated")->valuestring);
                }
                cJSON_Delete(rb);
            }
            jsonl_close(&b);
            same &= found;
            na++;
            cJSON_Delete(ra);
        }
        jsonl_close(&a);
        CHECK(same && na == clean_rows);
    }
    /* rerunning a finished output changes nothing */
    long before = proc_count_lines(out);
    CHECK(proc_run(argv, NULL, NULL, 60) == 0 && proc_count_lines(out) == before);
    m.delay_s = 0;

    /* different settings cannot resume into the same output */
    build_argv(argv, out, url, 12, in_copy, "--target-fraction", "0.3");
    CHECK(proc_run(argv, NULL, err_log, 60) == 1 && proc_file_contains(err_log, "different settings"));

    /* malformed rows: reported with their line number, skipped; --strict stops */
    char bad_in[512];
    snprintf(bad_in, sizeof bad_in, "%s/bad.jsonl", dir);
    {
        FILE *f = fopen(bad_in, "w");
        fprintf(f, "{\"problem\": \"p\", \"response\": \"<think>\\nA fine trace. It has sentences that are long enough to quote here. And a third one that is also long enough.\", \"model\": \"qwen-1p5B-withR\"}\n");
        fprintf(f, "{not json\n");
        fprintf(f, "{\"problem\": \"p\", \"model\": \"qwen-1p5B-withR\"}\n");
        fprintf(f, "{\"problem\": \"p\", \"response\": \"no think marker here\", \"model\": \"qwen-1p5B-withR\"}\n");
        fclose(f);
    }
    snprintf(out, sizeof out, "%s/bad_out.jsonl", dir);
    build_argv(argv, out, url, 0, bad_in, NULL, NULL);
    rc = proc_run(argv, NULL, err_log, 60);
    CHECK(rc == 0 && proc_count_lines(out) == 1);
    CHECK(proc_file_contains(err_log, "bad.jsonl:2: not valid JSON"));
    CHECK(proc_file_contains(err_log, "bad.jsonl:3: row has no field 'response'"));
    CHECK(proc_file_contains(err_log, "bad.jsonl:4: trace -1 has no '<think>'"));
    build_argv(argv, out, url, 0, bad_in, "--strict", "--overwrite");
    rc = proc_run(argv, NULL, err_log, 60);
    CHECK(rc == 1 && proc_file_contains(err_log, "bad.jsonl:2: not valid JSON"));

    mock_judge_stop(&m);

    /* a server that is down: the traces fail, are listed, the exit status says so; --strict
     * stops at the first */
    CHECK(mock_judge_start(&m, MOCK_DOWN, 0.2, KEY) == 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", m.port);
    snprintf(out, sizeof out, "%s/down.jsonl", dir);
    build_argv(argv, out, url, 2, in_copy, "--judge-retries", "1");
    rc = proc_run(argv, NULL, err_log, 60);
    CHECK(rc == 1 && proc_count_lines(out) == 0 && proc_file_contains(err_log, "HTTP 503") &&
          proc_file_contains(err_log, "run the same command again"));
    mock_judge_stop(&m);

    /* a wrong key: the error shows the status, never the key */
    CHECK(mock_judge_start(&m, MOCK_GOOD, 0.2, "the-right-key") == 0);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/v1", m.port);
    build_argv(argv, out, url, 2, in_copy, "--overwrite", NULL);
    rc = proc_run(argv, out_log, err_log, 60);
    CHECK(rc == 1 && proc_file_contains(err_log, "HTTP 401") && !proc_file_contains(err_log, KEY) &&
          !proc_file_contains(out_log, KEY));
    mock_judge_stop(&m);
    tokenizer_free(tok);
}

int main(void) {
    test_parse();
    test_server_modes();
    test_command();
    return sr_test_done();
}
