/*
 * eval's pieces without a model: unbiased pass@k against hand-computed values (k = n, c = 0,
 * n - c < k, large n where binomials overflow a double's digits), the summary's arithmetic,
 * the benchmark loaders on the shipped files (30 / 30 / 500 / 40 problems, ids and answers as
 * the files have them) and on bad FILEs (one line naming the file and line), and the prompts.
 */
#include <stdlib.h>
#include <string.h>

#include "common/error.h"
#include "data/tokenizer.h"
#include "eval/benchmarks.h"
#include "eval/eval.h"
#include "eval/report.h"
#include "forced_model.h"
#include "harness.h"

#define NEAR(a, b) (fabs((a) - (b)) <= 1e-12 * (fabs(b) > 1 ? fabs(b) : 1))

static void test_pass_at_k(void) {
    /* n = 5, c = 2: 1 - C(3,k)/C(5,k) */
    CHECK(NEAR(eval_pass_at_k(5, 2, 1), 0.4));
    CHECK(NEAR(eval_pass_at_k(5, 2, 2), 0.7));  /* 1 - 3/10 */
    CHECK(NEAR(eval_pass_at_k(5, 2, 3), 0.9));  /* 1 - 1/10 */
    CHECK(eval_pass_at_k(5, 2, 4) == 1.0);      /* n - c < k: every 4-subset has a correct one */
    /* k = n: 1 if any sample is correct, else 0 */
    CHECK(eval_pass_at_k(5, 1, 5) == 1.0);
    CHECK(eval_pass_at_k(5, 0, 5) == 0.0);
    CHECK(eval_pass_at_k(1, 1, 1) == 1.0);
    CHECK(eval_pass_at_k(1, 0, 1) == 0.0);
    /* c = 0 never passes, c = n always does */
    CHECK(eval_pass_at_k(16, 0, 1) == 0.0 && eval_pass_at_k(16, 0, 8) == 0.0);
    CHECK(eval_pass_at_k(16, 16, 1) == 1.0);
    /* pass@1 is c / n */
    CHECK(NEAR(eval_pass_at_k(16, 3, 1), 3.0 / 16));
    /* large n: C(200, 100) ~ 9e58, the products stay exact enough (Python's exact fractions) */
    CHECKF(NEAR(eval_pass_at_k(200, 1, 100), 0.5), "%.17g", eval_pass_at_k(200, 1, 100));
    CHECKF(NEAR(eval_pass_at_k(64, 10, 32), 0.9995741013348244), "%.17g", eval_pass_at_k(64, 10, 32));
    CHECKF(NEAR(eval_pass_at_k(200, 10, 100), 0.9992289739372822), "%.17g", eval_pass_at_k(200, 10, 100));
    /* impossible arguments */
    CHECK(isnan(eval_pass_at_k(4, 1, 0)));
    CHECK(isnan(eval_pass_at_k(4, 1, 5)));
    CHECK(isnan(eval_pass_at_k(4, 5, 1)));
    CHECK(isnan(eval_pass_at_k(4, -1, 1)));
}

static void test_summary(void) {
    /* 2 problems x 2 samples: problem 0 right once, problem 1 never */
    EvalRow rows[4] = {
        {.problem = 0, .sample = 0, .correct = 1, .small_tokens = 90, .big_tokens = 10, .switches = 1,
         .has_latency = 1, .latency = 2.0, .latency_small = 1.0, .latency_big = 4.0, .wall_time_s = 1},
        {.problem = 0, .sample = 1, .correct = 0, .small_tokens = 100, .has_latency = 1, .latency = 1.0,
         .latency_small = 1.0, .latency_big = 4.0, .wall_time_s = 3},
        {.problem = 1, .sample = 1, .correct = 0, .small_tokens = 50, .big_tokens = 50, .switches = 3,
         .has_latency = 1, .latency = 3.0, .latency_small = 1.0, .latency_big = 4.0},
        {.problem = 1, .sample = 0, .correct = 0, .small_tokens = 100, .has_latency = 1, .latency = 2.0,
         .latency_small = 2.0, .latency_big = 8.0},
    };
    EvalSummary s;
    eval_summarize(rows, 4, 2, 2, &s);
    CHECK(NEAR(s.pass_at_1, 0.25));      /* (1/2 + 0) / 2 */
    CHECK(NEAR(s.pass_at_k, 0.5));       /* (1 + 0) / 2 */
    CHECK(NEAR(s.offload_share, 60.0 / 400.0));
    CHECK(NEAR(s.switches_per_sample, 1.0));
    CHECK(NEAR(s.small_tokens_per_sample, 85.0) && NEAR(s.big_tokens_per_sample, 15.0));
    CHECK(s.has_latency && NEAR(s.modelled_latency, 2.0));
    CHECK(NEAR(s.speedup_vs_small, 5.0 / 8.0) && NEAR(s.speedup_vs_big, 20.0 / 8.0));
    CHECK(NEAR(s.sample_wall_time_s, 1.0));
    SrBuf b = {0};
    eval_summary_json(&b, &s, 12.5);
    CHECKF(strstr(b.p, "\"pass@1\": 0.25") && strstr(b.p, "\"pass@k\": 0.5") &&
               strstr(b.p, "\"switches_per_sample\": 1,") && strstr(b.p, "\"wall_time_s\": 12.5"),
           "%s", b.p);
    /* without a table every latency field is null */
    for (int i = 0; i < 4; i++) rows[i].has_latency = 0;
    eval_summarize(rows, 4, 2, 2, &s);
    sr_buf_clear(&b);
    eval_summary_json(&b, &s, 1);
    CHECKF(strstr(b.p, "\"modelled_latency\": null, \"speedup_vs_small\": null, \"speedup_vs_big\": null"),
           "%s", b.p);
    sr_buf_free(&b);
}

static void test_shipped(void) {
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", sr_test_data(""));
    dir[strlen(dir) - 1] = '\0'; /* "DATA/" -> "DATA" */
    static const struct {
        const char *name;
        int n;
        const char *id0, *answer0, *id_last;
    } want[] = {
        {"aime24", 30, "60", "204", "89"},
        {"aime25", 30, "90", "70", "119"},
        {"math500", 500, "\"test/precalculus/807.json\"", "\\left( 3, \\frac{\\pi}{2} \\right)", NULL},
        {"amc23", 40, "0", "27", NULL},
    };
    for (int i = 0; i < 4; i++) {
        EvalBenchmark b;
        SrError err = {{0}};
        CHECK(eval_benchmark_is_named(want[i].name));
        int rc = eval_benchmark_load(&b, want[i].name, dir, &err);
        CHECKF(rc == 0, "%s: %s", want[i].name, err.msg);
        if (rc) continue;
        CHECKF(b.n == want[i].n, "%s: %d problems", want[i].name, b.n);
        CHECKF(!strcmp(b.items[0].id, want[i].id0), "%s: id %s", want[i].name, b.items[0].id);
        CHECKF(!strcmp(b.items[0].answer, want[i].answer0), "%s: answer %s", want[i].name, b.items[0].answer);
        if (want[i].id_last)
            CHECKF(!strcmp(b.items[b.n - 1].id, want[i].id_last), "%s: last id %s", want[i].name,
                   b.items[b.n - 1].id);
        int ok = 1;
        for (int j = 0; j < b.n; j++) ok &= b.items[j].problem[0] != '\0' && b.items[j].answer[0] != '\0';
        CHECK(ok);
        eval_benchmark_free(&b);
    }
    /* without a data_dir, SR_DATA (set by ctest) is where the files are found */
    EvalBenchmark b;
    SrError err;
    CHECK(eval_benchmark_load(&b, "amc23", NULL, &err) == 0 && b.n == 40);
    eval_benchmark_free(&b);
    CHECK(!eval_benchmark_is_named("aime") && !eval_benchmark_is_named("math500.jsonl"));
}

/* loads text as a FILE benchmark: 0, or -1 with the one-line error in err */
static int load_text(const char *dir, const char *text, EvalBenchmark *b, SrError *err) {
    char path[4200];
    snprintf(path, sizeof path, "%s/bench.jsonl", dir);
    sr_test_write_file(path, text, strlen(text));
    return eval_benchmark_load(b, path, NULL, err);
}

static void expect_bad(const char *dir, const char *text, const char *what) {
    EvalBenchmark b;
    SrError err = {{0}};
    int rc = load_text(dir, text, &b, &err);
    CHECKF(rc == -1, "accepted: %s", text);
    CHECKF(strstr(err.msg, "bench.jsonl") && strstr(err.msg, what) && !strchr(err.msg, '\n'),
           "'%s' !~ '%s'", err.msg, what);
    if (rc == 0) eval_benchmark_free(&b);
}

static void test_files(void) {
    const char *dir = sr_test_tmpdir("test_eval");
    EvalBenchmark b;
    SrError err = {{0}};
    /* OpenR1-Math's fields (problem, answer, uuid), question/final_answer, no id: the index */
    int rc = load_text(dir,
                       "{\"problem\": \"P1\", \"answer\": \"\\\\frac{1}{2}\", \"uuid\": \"u-1\"}\n"
                       "\n"
                       "{\"question\": \"P2\", \"final_answer\": 3.5}\n"
                       "{\"prompt\": \"P3\", \"expected_answer\": 1e20, \"id\": 7}\n",
                       &b, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!rc) {
        CHECK(b.n == 3);
        CHECK(!strcmp(b.items[0].id, "\"u-1\"") && !strcmp(b.items[0].answer, "\\frac{1}{2}"));
        CHECK(!strcmp(b.items[1].id, "1") && !strcmp(b.items[1].answer, "3.5") && !strcmp(b.items[1].problem, "P2"));
        CHECKF(!strcmp(b.items[2].id, "7") && !strcmp(b.items[2].answer, "1e+20") /* as cmd_grade writes it */, "%s %s",
               b.items[2].id, b.items[2].answer);
        eval_benchmark_free(&b);
    }
    expect_bad(dir, "{\"problem\": \"P\", \"answer\": \"1\"}\n{\"problem\": \"Q\", \"answer\": \"2\"\n",
               "bench.jsonl:2:");
    expect_bad(dir, "{\"answer\": \"1\"}\n", "bench.jsonl:1: row has no problem text");
    expect_bad(dir, "{\"problem\": \"P\"}\n", "bench.jsonl:1: row has no answer");
    expect_bad(dir, "{\"problem\": \"P\", \"answer\": [1]}\n", "'answer' must be a non-empty string or a number");
    expect_bad(dir, "{\"problem\": \"P\", \"answer\": \"\"}\n", "'answer' must be a non-empty string or a number");
    expect_bad(dir, "{\"problem\": 5, \"answer\": \"1\"}\n", "'problem' must be a non-empty string");
    expect_bad(dir, "[1, 2]\n", "bench.jsonl:1: a row must be a JSON object");
    expect_bad(dir, "{\"problem\": \"P\", \"answer\": \"1\", \"id\": {}}\n", "'id' must be a string or a number");
    expect_bad(dir, "{\"problem\": \"P\", \"answer\": \"1\", \"id\": 3}\n{\"problem\": \"Q\", \"answer\": \"2\", \"id\": 3.0}\n",
               "bench.jsonl:2: id 3 repeats the id");
    expect_bad(dir, "\n\n", "no problems");
    /* a missing file: one line naming it */
    rc = eval_benchmark_load(&b, "/nonexistent/bench.jsonl", NULL, &err);
    CHECKF(rc == -1 && strstr(err.msg, "/nonexistent/bench.jsonl") && !strchr(err.msg, '\n'), "%s", err.msg);
}

static void test_prompts(void) {
    Tokenizer *tok = NULL;
    SrError err;
    if (tokenizer_load(&tok, "assets/qwen2_tokenizer", &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    int32_t *ids = NULL, *ids2 = NULL;
    int n = 0, n2 = 0;
    CHECK(eval_prompt_ids(tok, "What is 6*7?", NULL, EVAL_R1_INSTRUCTION, &ids, &n, &err) == 0);
    char *text = NULL;
    size_t len = 0;
    CHECK(tokenizer_decode(tok, ids, (size_t)n, &text, &len, &err) == 0);
    const char *want = "<｜begin▁of▁sentence｜><｜User｜>What is 6*7?\nPlease reason step by step, and put "
                       "your final answer within \\boxed{}.<｜Assistant｜><think>\n";
    CHECKF(text && !strcmp(text, want), "%s", text);
    CHECK(ids[0] == tokenizer_bos_id(tok));
    free(text);
    /* the GRPO system prompt replaces the instruction */
    CHECK(eval_prompt_ids(tok, "What is 6*7?", EVAL_GRPO_SYSTEM_PROMPT, NULL, &ids2, &n2, &err) == 0);
    CHECK(tokenizer_decode(tok, ids2, (size_t)n2, &text, &len, &err) == 0);
    CHECKF(text && !strncmp(text, "<｜begin▁of▁sentence｜>You are a helpful AI Assistant", strlen("<｜begin▁of▁sentence｜>You are a helpful AI Assistant")) &&
               strstr(text, "<｜User｜>What is 6*7?<｜Assistant｜><think>\n") && !strstr(text, "Please reason"),
           "%s", text);
    CHECK(ids2[n2 - 1] == ids[n - 1]); /* both end where the completion starts */
    free(text);
    /* no instruction: the problem alone (how the demo task's models were trained) */
    int32_t *ids3 = NULL;
    int n3 = 0;
    CHECK(eval_prompt_ids(tok, "What is 6*7?", NULL, "", &ids3, &n3, &err) == 0);
    CHECK(tokenizer_decode(tok, ids3, (size_t)n3, &text, &len, &err) == 0);
    CHECKF(text && !strcmp(text, "<｜begin▁of▁sentence｜><｜User｜>What is 6*7?<｜Assistant｜><think>\n"), "%s", text);
    free(text);
    free(ids3);
    free(ids);
    free(ids2);
    tokenizer_free(tok);
}

/* the fixture itself: every "from" token's logits put FORCED_LOGIT on its target (and its
 * coin's other side, exactly equal) and 0 elsewhere, whatever came before it */
static void test_forced_model(void) {
    SrError err;
    ForcedChain c;
    forced_chain_init(&c, 7);
    int32_t a[3] = {100, 101, 102}, b[2] = {200, 5};
    CHECK(forced_chain_ids(&c, a, 3, &err) == 0);      /* 7 -> 100 -> 101 -> 102 */
    CHECK(forced_chain_coin(&c, 150, 151, &err) == 0); /* 102 -> 150 | 151 */
    CHECK(forced_chain_ids(&c, b, 2, &err) == 0);      /* 150, 151 -> 200 -> 5 */
    int32_t again = 101;                                /* 5 -> 101: 101 already leads to 102 */
    CHECK(forced_chain_ids(&c, &again, 1, &err) == 0);
    CHECKF(forced_chain_ids(&c, &again, 1, &err) == -1 && strstr(err.msg, "token 101 already leads to 102"),
           "%s", err.msg);
    SrBackend be;
    Qwen2Model m = {0};
    if (sr_backend_init(&be, "cpu", 0, &err) || forced_model_build(&m, &be, &c, 320, 64, -1, 5, &err)) {
        CHECKF(0, "%s", err.msg);
        forced_chain_free(&c);
        return;
    }
    /* a context with noise before the chain's tokens: only the current token counts */
    int32_t ids[] = {3, 9, 7, 100, 101, 102, 150, 151, 200, 5};
    int32_t pos[10];
    for (int i = 0; i < 10; i++) pos[i] = i;
    int32_t want[] = {-1, -1, 100, 101, 102, 150, 200, 200, 5, 101};
    float *lg = malloc(sizeof(float) * 10 * 320);
    CHECK(qwen2_logits(&m, ids, pos, 10, lg, &err) == 0);
    for (int i = 2; i < 10; i++) {
        const float *l = lg + (size_t)i * 320;
        int arg = 0, others_zero = 1;
        for (int v = 1; v < 320; v++)
            if (l[v] > l[arg]) arg = v;
        for (int v = 0; v < 320; v++)
            if (v != want[i] && !(i == 5 && v == 151) && fabsf(l[v]) > 1e-4f) others_zero = 0;
        CHECKF(arg == want[i] && fabsf(l[arg] - FORCED_LOGIT) < 1e-3f && others_zero,
               "position %d: argmax %d (%g), want %d", i, arg, l[arg], want[i]);
    }
    CHECKF(lg[5 * 320 + 150] == lg[5 * 320 + 151], "the coin: %g vs %g", lg[5 * 320 + 150], lg[5 * 320 + 151]);
    free(lg);
    qwen2_free(&m);
    sr_backend_free(&be);
    forced_chain_free(&c);
}

int main(void) {
    test_forced_model();
    test_pass_at_k();
    test_summary();
    test_shipped();
    test_files();
    test_prompts();
    return sr_test_done();
}
