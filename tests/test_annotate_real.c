/*
 * The annotator and prepare on real traces: the 8 shortest correct DeepSeek-R1-Distill-Qwen-1.5B
 * MATH-500 traces (r2a_math500_r1distill_greedy, whose response holds the prompt: read through
 * the field mapping), annotated with `gap` (two tiny random Qwen2 models made by
 * `splitreason init`, sharing the real tokenizer) and `entropy` (the first 6, killed at random
 * moments and resumed), then `prepare`d into shards. Checks: tags pair up, spans are where the tags are,
 * on token edges and on sentence/line ends, the offload share lands on the target, every trace
 * is in the output exactly once, and decoding the shards gives back the chat-templated prompt
 * and the annotated text, with the loss mask where it belongs.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../annotate/output.h"
#include "../data/chat_template.h"
#include "../data/shards.h"
#include "../data/tokenizer.h"
#include "annot_check.h"
#include "harness.h"
#include "proc_util.h"

#define R2A "r2a_math500_r1distill_greedy/df_attention_analysis_MATH500_greedy.jsonl"
#define N_TRACES 8
#define N_ENTROPY 6
#define N_ENTROPY_S "6"

typedef struct Line {
    char *raw;
    size_t len;
} Line;

static int by_len(const void *a, const void *b) {
    const Line *x = a, *y = b;
    return (x->len > y->len) - (x->len < y->len);
}

/* the N shortest correct 1.5B rows, raw, into path */
static int write_subset(const char *path) {
    JsonlReader r;
    SrError e = {{0}};
    if (jsonl_open(&r, sr_test_data(R2A), &e)) return -1;
    Line *ls = NULL;
    int n = 0, cap = 0;
    while (jsonl_next(&r, &e) == 1) {
        cJSON *row = cJSON_Parse(r.line);
        const cJSON *m = cJSON_GetObjectItem(row, "model"), *c = cJSON_GetObjectItem(row, "is_answer_correct");
        const cJSON *resp = cJSON_GetObjectItem(row, "response");
        if (!strcmp(m->valuestring, "qwen-1p5B-withR") && c->valueint == 1) {
            if (n == cap) ls = realloc(ls, (size_t)(cap = cap ? 2 * cap : 64) * sizeof(Line));
            ls[n++] = (Line){strdup(r.line), strlen(resp->valuestring)};
        }
        cJSON_Delete(row);
    }
    jsonl_close(&r);
    qsort(ls, (size_t)n, sizeof(Line), by_len);
    FILE *f = fopen(path, "w");
    for (int i = 0; i < N_TRACES && i < n; i++) fprintf(f, "%s\n", ls[i].raw);
    fclose(f);
    for (int i = 0; i < n; i++) free(ls[i].raw);
    free(ls);
    return n >= N_TRACES ? 0 : -1;
}

static int make_model(const char *dir, const char *seed) {
    char *argv[] = {(char *)sr_test_bin(), "init", "--model-config", "configs/tiny_qwen2.json", "--tokenizer",
                    "assets/qwen2_tokenizer", "--seed", (char *)seed, "--out", (char *)dir, NULL};
    return proc_run(argv, NULL, NULL, 120);
}

static void annotate_argv(char **argv, const char *method, const char *in, const char *out, const char *small,
                          const char *big) {
    int k = 0;
    argv[k++] = (char *)sr_test_bin();
    argv[k++] = "annotate";
    argv[k++] = "--method";
    argv[k++] = (char *)method;
    argv[k++] = "--input";
    argv[k++] = (char *)in;
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
    argv[k++] = "--small";
    argv[k++] = (char *)small;
    if (big) {
        argv[k++] = "--big";
        argv[k++] = (char *)big;
    }
    argv[k] = NULL;
}

static void check_share(const AnnotCheck *ac, const char *what) {
    double mean = ac->rows ? ac->share_sum / ac->rows : 0;
    CHECKF(fabs(mean - 0.2) < 0.01, "%s: mean offload share %.4f, target 0.2", what, mean);
    CHECKF(ac->share_min > 0.16 && ac->share_max < 0.24, "%s: shares in [%.3f, %.3f]", what, ac->share_min,
           ac->share_max);
}

/* decodes every document of the shards and matches it against the annotated rows */
static void check_shards(const char *dir, const char *annotated, const Tokenizer *tok, int completion_only,
                         int max_length) {
    ShardSet *s;
    SrError e = {{0}};
    if (shardset_open(&s, dir, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        CHECK(0);
        return;
    }
    /* the rows: prompt text of the template, annotated completion */
    char *prompts[N_TRACES], *comps[N_TRACES];
    int n_rows = 0, seen[N_TRACES] = {0};
    JsonlReader r;
    jsonl_open(&r, annotated, &e);
    ChatTemplate t = {NULL, NULL, 1};
    while (jsonl_next(&r, &e) == 1 && n_rows < N_TRACES) {
        cJSON *row = cJSON_Parse(r.line);
        char *p = chat_prompt_text(&t, cJSON_GetObjectItem(row, "problem")->valuestring);
        size_t n = strlen(p) + 64;
        prompts[n_rows] = malloc(n);
        snprintf(prompts[n_rows], n, "%s%s", R1_BOS_TEXT, p);
        free(p);
        const char *a = cJSON_GetObjectItem(row, "annotated")->valuestring;
        CHECK(!strncmp(a, "<think>\n", 8));
        n = strlen(a) + 64;
        comps[n_rows] = malloc(n);
        snprintf(comps[n_rows], n, "%s%s", a + 8, R1_EOS_TEXT); /* the template's <think>\n is the prompt's */
        n_rows++;
        free(p = NULL);
        cJSON_Delete(row);
    }
    jsonl_close(&r);
    const cJSON *idx = shardset_index(s);
    int32_t open_id = (int32_t)cJSON_GetObjectItem(cJSON_GetObjectItem(idx, "tokenizer"), "bigmodel_open_id")->valuedouble;
    int32_t close_id = (int32_t)cJSON_GetObjectItem(cJSON_GetObjectItem(idx, "tokenizer"), "bigmodel_close_id")->valuedouble;
    CHECK(open_id == tokenizer_token_id(tok, "<bigmodel>") && close_id == tokenizer_token_id(tok, "</bigmodel>"));
    ShardSeq q = {0};
    int docs = 0, decoded_ok = 0, masks_ok = 0, tags_in_loss = 1;
    for (long long i = 0; i < shardset_num_sequences(s); i++) {
        CHECK(shardset_read(s, i, &q, &e) == 0);
        CHECK(q.n_tokens <= max_length);
        int off = 0;
        for (int d = 0; d < q.n_docs; d++) {
            int len = (int)q.doc_lens[d];
            char *txt;
            size_t tl;
            tokenizer_decode(tok, (const int32_t *)q.tokens + off, (size_t)len, &txt, &tl, &e);
            docs++;
            for (int k = 0; k < n_rows; k++) {
                size_t pl = strlen(prompts[k]);
                if (tl < pl || strncmp(txt, prompts[k], pl) != 0) continue;
                seen[k]++;
                decoded_ok += strcmp(txt + pl, comps[k]) == 0;
                /* the mask: from the first completion token on (completion_only), else all but
                 * the document's first token; tags and EOS always in */
                int32_t *pids;
                size_t np;
                tokenizer_encode(tok, prompts[k], pl, &pids, &np, &e);
                int ok = 1;
                for (int j = 0; j < len; j++) {
                    int want = completion_only ? j >= (int)np : j > 0;
                    if (q.mask[off + j] != want) ok = 0;
                    int32_t id = (int32_t)q.tokens[off + j];
                    if ((id == open_id || id == close_id) && !q.mask[off + j]) tags_in_loss = 0;
                }
                if (!q.mask[off + len - 1] || (int32_t)q.tokens[off + len - 1] != tokenizer_eos_id(tok)) ok = 0;
                masks_ok += ok;
                free(pids);
            }
            free(txt);
            off += len;
        }
    }
    CHECKF(docs == n_rows && decoded_ok == n_rows && masks_ok == n_rows && tags_in_loss,
           "docs %d decoded %d masks %d of %d rows", docs, decoded_ok, masks_ok, n_rows);
    for (int k = 0; k < n_rows; k++) CHECK(seen[k] == 1);
    shard_seq_free(&q);
    shardset_close(s);
    for (int k = 0; k < n_rows; k++) free(prompts[k]), free(comps[k]);
}

/* an output killed in the middle of a row: the partial line is cut, complete rows count */
static void test_partial_line(const char *dir) {
    char path[512];
    snprintf(path, sizeof path, "%s/partial.jsonl", dir);
    cJSON *prov = cJSON_Parse("{\"method\": \"gap\"}");
    FILE *f = fopen(path, "w");
    fprintf(f, "{\"x\": 1, \"annotation\": {\"method\": \"gap\"}, \"source_line\": 1, \"trace_index\": -1}\n");
    fprintf(f, "{\"x\": 2, \"annotation\": {\"method\": \"gap\"}, \"source_line\": 2, \"trace_index\": -1}\n");
    fprintf(f, "{\"x\": 3, \"annotation\": {\"meth");
    fclose(f);
    AnnotateOut o;
    SrError e = {{0}};
    CHECK(annotate_out_open(&o, path, prov, 0, &e) == 0);
    CHECK(o.n_resumed == 2 && annotate_out_has(&o, 1, -1) && annotate_out_has(&o, 2, -1) && !annotate_out_has(&o, 3, -1));
    cJSON *add = cJSON_Parse("{\"annotation\": {\"method\": \"gap\"}, \"source_line\": 3, \"trace_index\": -1}");
    CHECK(annotate_out_write(&o, "{\"x\": 3}", add, &e) == 0);
    CHECK(annotate_out_close(&o, &e) == 0);
    CHECK(proc_count_lines(path) == 3 && proc_file_contains(path, "{\"x\": 3, \"annotation\""));
    /* another provenance cannot resume it */
    cJSON *other = cJSON_Parse("{\"method\": \"entropy\"}");
    CHECK(annotate_out_open(&o, path, other, 0, &e) != 0 && strstr(e.msg, "different settings"));
    cJSON_Delete(other);
    cJSON_Delete(add);
    cJSON_Delete(prov);
}

/* the commands document themselves and refuse bad settings with one line */
static void test_help(const char *dir) {
    char out[600], err[600];
    snprintf(out, sizeof out, "%s/help.out", dir);
    snprintf(err, sizeof err, "%s/help.err", dir);
    char *h1[] = {(char *)sr_test_bin(), "annotate", "--help", NULL};
    CHECK(proc_run(h1, out, err, 30) == 0 && proc_file_contains(out, "usage: splitreason annotate") &&
          proc_file_contains(out, "--judge-api-key-env") && proc_file_contains(out, "--target-fraction"));
    char *h2[] = {(char *)sr_test_bin(), "prepare", "--help", NULL};
    CHECK(proc_run(h2, out, err, 30) == 0 && proc_file_contains(out, "usage: splitreason prepare") &&
          proc_file_contains(out, "--max-length"));
    char *h3[] = {(char *)sr_test_bin(), "--help", NULL};
    CHECK(proc_run(h3, out, err, 30) == 0 && proc_file_contains(out, "annotate") && proc_file_contains(out, "prepare"));
    char *b1[] = {(char *)sr_test_bin(), "annotate", "--method", "magic", "--input", "x", "--output", "y", NULL};
    CHECK(proc_run(b1, out, err, 30) == 2 && proc_file_contains(err, "--method: 'magic' is not one of gap, entropy, judge"));
    char *b2[] = {(char *)sr_test_bin(), "annotate", "--method", "gap", "--input", "x", "--output", "y",
                  "--target-fraction", "1.5", NULL};
    CHECK(proc_run(b2, out, err, 30) == 2 && proc_file_contains(err, "--target-fraction: 1.5 is out of range (0, 1)"));
    char *b3[] = {(char *)sr_test_bin(), "annotate", "--method", "gap", "--input", "x", "--output", "y",
                  "--no-such-key", "1", NULL};
    CHECK(proc_run(b3, out, err, 30) == 2);
    char *b4[] = {(char *)sr_test_bin(), "prepare", "--tokenizer", "assets/qwen2_tokenizer", "--input",
                  "/no/such.jsonl", "--output", (char *)dir, NULL};
    CHECK(proc_run(b4, out, err, 30) == 1 && proc_file_contains(err, "/no/such.jsonl"));
}

int main(void) {
    const char *dir = sr_test_tmpdir("test_annotate_real");
    char in[512], small[512], big[512], gap[512], ent[512], shards[512], shards2[512], err_log[512];
    snprintf(in, sizeof in, "%s/traces.jsonl", dir);
    snprintf(small, sizeof small, "%s/small", dir);
    snprintf(big, sizeof big, "%s/big", dir);
    snprintf(gap, sizeof gap, "%s/gap.jsonl", dir);
    snprintf(ent, sizeof ent, "%s/entropy.jsonl", dir);
    snprintf(shards, sizeof shards, "%s/shards", dir);
    snprintf(shards2, sizeof shards2, "%s/shards_full", dir);
    snprintf(err_log, sizeof err_log, "%s/err.log", dir);
    test_partial_line(dir);
    test_help(dir);
    CHECK(write_subset(in) == 0);
    CHECK(make_model(small, "0") == 0 && make_model(big, "1") == 0);
    Tokenizer *tok;
    SrError e = {{0}};
    CHECK(tokenizer_load(&tok, small, &e) == 0);

    /* gap */
    char *argv[64];
    annotate_argv(argv, "gap", in, gap, small, big);
    double t0 = proc_now();
    int rc = proc_run(argv, NULL, err_log, 600);
    CHECKF(rc == 0, "annotate gap exited %d (%s)", rc, err_log);
    double gap_s = proc_now() - t0;
    fprintf(stderr, "gap: %d traces in %.1f s\n", N_TRACES, gap_s);
    AnnotCheck ac;
    CHECK(annot_check_file(gap, tok, 1, &ac) == 0);
    CHECKF(ac.rows == N_TRACES && ac.bad_rows == 0 && ac.off_token_edge == 0 && annot_keys_unique(&ac),
           "gap: rows %ld bad %ld off-edge %ld", ac.rows, ac.bad_rows, ac.off_token_edge);
    CHECKF(ac.off_boundary <= 2 * ac.forced, "gap: %ld span ends off sentence/line ends (%ld forced cuts)",
           ac.off_boundary, ac.forced);
    CHECK(ac.spans >= 5 * N_TRACES);
    check_share(&ac, "gap");
    char sj[600];
    snprintf(sj, sizeof sj, "%s.summary.json", gap);
    CHECK(proc_file_contains(sj, "\"span_tokens\"") && proc_file_contains(sj, "\"method\":\t\"gap\""));

    /* entropy on the first N_ENTROPY traces, killed at random moments and resumed (one model:
     * a trace costs about half what it does for gap) */
    annotate_argv(argv, "entropy", in, ent, small, NULL);
    int na = 0;
    while (argv[na]) na++;
    argv[na++] = "--limit";
    argv[na++] = N_ENTROPY_S;
    argv[na] = NULL;
    srand(11);
    /* once during start-up, then twice a random moment after the run wrote its next row */
    int kills = proc_run_and_kill(argv, NULL, NULL, 0.05 + 0.3 * rand() / (double)RAND_MAX);
    for (int k = 0; k < 2; k++)
        kills += proc_kill_after_rows(argv, NULL, ent, 1, 0.5 * rand() / (double)RAND_MAX, 300);
    long partial = proc_count_lines(ent);
    rc = proc_run(argv, NULL, err_log, 600);
    CHECKF(rc == 0 && kills == 3 && partial >= 2 && partial < N_ENTROPY, "entropy resume: rc %d kills %d rows before %ld",
           rc, kills, partial);
    CHECK(annot_check_file(ent, tok, 1, &ac) == 0);
    CHECKF(ac.rows == N_ENTROPY && ac.bad_rows == 0 && ac.off_token_edge == 0 && annot_keys_unique(&ac),
           "entropy: rows %ld bad %ld off-edge %ld", ac.rows, ac.bad_rows, ac.off_token_edge);
    CHECK(ac.off_boundary <= 2 * ac.forced);
    check_share(&ac, "entropy");

    /* prepare: completion-only loss, then the whole sequence */
    char *pa[] = {(char *)sr_test_bin(), "prepare", "--tokenizer", small, "--input", gap, "--output", shards,
                  "--max_length", "4096", NULL};
    CHECK(proc_run(pa, NULL, err_log, 120) == 0);
    check_shards(shards, gap, tok, 1, 4096);
    char *pb[] = {(char *)sr_test_bin(), "prepare", "--tokenizer", small, "--input", ent, "--output", shards2,
                  "--max-length", "8192", "--completion-only-loss", "false", NULL};
    CHECK(proc_run(pb, NULL, err_log, 120) == 0);
    check_shards(shards2, ent, tok, 0, 8192);

    tokenizer_free(tok);
    return sr_test_done();
}
