/*
 * Throughput of the data step:
 *   1. `gap` annotation: traces/s and tokens/s with a small/big model pair (random weights of
 *      a given config, default configs/tiny_qwen2.json for both; the real Qwen2 tokenizer),
 *      on the shortest correct DeepSeek-R1-Distill-Qwen-1.5B MATH-500 traces of the shipped
 *      r2a file (the prompt is in the response; read through the field mapping);
 *   2. `prepare`: MB/s of annotated JSONL in (the gap output repeated to --prepare-mb MB),
 *      through tokenization, masks, BFD packing and zstd shards.
 *
 * Usage: bench_annotate [--traces N] [--device cpu|cuda] [--model-config FILE]
 *                       [--big-config FILE] [--prepare-mb MB] [--out DIR]
 * Run from the repository root (it reads assets/, configs/ and ../shared/data or $SR_DATA).
 * It leaves in --out the traces, both models (HF directories small/ and big/), the gap output
 * and the prepare input, for the peer: scripts/bench_annotate_peer.py (PyTorch +
 * transformers + tokenizers doing the same work).
 */
#include <cjson/cJSON.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "annotate/annotate.h"
#include "common/safetensors.h"
#include "common/fileio.h"
#include "common/log.h"
#include "common/jsonl.h"
#include "data/prepare.h"
#include "model/model.h"

static double cpu_seconds(void) {
    struct timespec t;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static int build_model(Qwen2Model *m, SrBackend *be, const char *config, uint64_t seed, SrError *e) {
    Qwen2Config c;
    if (qwen2_config_load(&c, config, e)) return -1;
    int rc = qwen2_build(m, &c, be, e);
    qwen2_config_free(&c);
    if (!rc) qwen2_init_random(m, seed);
    return rc;
}

typedef struct Row {
    char *line;
    size_t len;
} Row;

static int by_len(const void *a, const void *b) {
    const Row *x = a, *y = b;
    return (x->len > y->len) - (x->len < y->len);
}

int main(int argc, char **argv) {
    int n_traces = 16;
    const char *device = "cpu", *cfg_small = "configs/tiny_qwen2.json", *cfg_big = NULL, *out = "/tmp/sr_bench_annotate";
    double prepare_mb = 50;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--traces")) n_traces = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--device")) device = argv[i + 1];
        else if (!strcmp(argv[i], "--model-config")) cfg_small = argv[i + 1];
        else if (!strcmp(argv[i], "--big-config")) cfg_big = argv[i + 1];
        else if (!strcmp(argv[i], "--prepare-mb")) prepare_mb = atof(argv[i + 1]);
        else if (!strcmp(argv[i], "--out")) out = argv[i + 1];
        else {
            fprintf(stderr, "unknown option %s\n", argv[i]);
            return 2;
        }
    }
    if (!cfg_big) cfg_big = cfg_small;
    SrError e = {{0}};
    if (sr_mkdir_p(out, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    /* the input: the shortest correct 1.5B traces */
    char data[4096], input[4096], annotated[4096], big_in[4096], shards[4096];
    const char *root = getenv("SR_DATA") ? getenv("SR_DATA") : "../shared/data";
    snprintf(data, sizeof data, "%s/r2a_math500_r1distill_greedy/df_attention_analysis_MATH500_greedy.jsonl", root);
    snprintf(input, sizeof input, "%s/traces.jsonl", out);
    snprintf(annotated, sizeof annotated, "%s/gap.jsonl", out);
    snprintf(big_in, sizeof big_in, "%s/prepare_in.jsonl", out);
    snprintf(shards, sizeof shards, "%s/shards", out);
    JsonlReader r;
    if (jsonl_open(&r, data, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    Row *rows = NULL;
    int n = 0, cap = 0;
    while (jsonl_next(&r, &e) == 1) {
        cJSON *row = jsonl_parse_line(&r, &e);
        if (!row) {
            fprintf(stderr, "%s\n", e.msg);
            return 1;
        }
        if (!strcmp(cJSON_GetObjectItem(row, "model")->valuestring, "qwen-1p5B-withR") &&
            cJSON_GetObjectItem(row, "is_answer_correct")->valueint == 1) {
            if (n == cap) rows = realloc(rows, (size_t)(cap = cap ? 2 * cap : 128) * sizeof(Row));
            rows[n++] = (Row){strdup(r.line), strlen(cJSON_GetObjectItem(row, "response")->valuestring)};
        }
        cJSON_Delete(row);
    }
    jsonl_close(&r);
    qsort(rows, (size_t)n, sizeof(Row), by_len);
    if (n_traces > n) n_traces = n;
    FILE *f = fopen(input, "w");
    for (int i = 0; i < n_traces; i++) fprintf(f, "%s\n", rows[i].line);
    fclose(f);
    for (int i = 0; i < n; i++) free(rows[i].line);
    free(rows);

    /* models and tokenizer */
    SrBackend be;
    Qwen2Model small, big;
    Tokenizer *tok;
    if (sr_backend_init(&be, device, 0, &e) || build_model(&small, &be, cfg_small, 0, &e) ||
        build_model(&big, &be, cfg_big, 1, &e) || tokenizer_load(&tok, "assets/qwen2_tokenizer", &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    char small_dir[4096], big_dir[4096];
    snprintf(small_dir, sizeof small_dir, "%s/small", out);
    snprintf(big_dir, sizeof big_dir, "%s/big", out);
    if (sr_mkdir_p(small_dir, &e) || sr_mkdir_p(big_dir, &e) || qwen2_save(&small, small_dir, ST_F32, &e) ||
        qwen2_save(&big, big_dir, ST_F32, &e) || tokenizer_save(tok, small_dir, &e) || tokenizer_save(tok, big_dir, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    SrConfig cfg = {cJSON_Parse("{\"field\": \"response\", \"problem_field\": \"problem\", \"correct_field\": "
                                "\"is_answer_correct\", \"select\": \"first_correct\", \"trace_from\": \"<think>\", "
                                "\"trace_strip_suffix\": \"<｜end▁of▁sentence｜>\", \"where\": null}")};
    AnnotateOptions o = {0};
    o.method = ANNOTATE_GAP;
    o.input = input;
    o.output = annotated;
    trace_spec_from_config(&o.trace, &cfg, &e);
    o.span = (SpanParams){0.2, 9, 2, 8, 512, 10};
    o.gap_score = GAP_LOGPROB;
    o.with_prompt = 1;
    o.window = 4096;
    o.context = 1024;
    o.overwrite = 1;
    o.small_path = cfg_small;
    o.big_path = cfg_big;
    o.tokenizer_path = "assets/qwen2_tokenizer";
    AnnotateModels models = {&small, &big, tok};
    AnnotateStats st;
    double c0 = cpu_seconds();
    if (annotate_run(&o, &models, &st, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    double cpu = cpu_seconds() - c0;
    printf("gap annotation (%s, %s + %s, %d threads): %ld traces, %lld tokens in %.2f s: %.3f traces/s, %.0f tokens/s "
           "(%.0f tokens per CPU-second)\n",
           device, cfg_small, cfg_big, omp_get_max_threads(), st.traces_done, st.tokens, st.seconds,
           st.traces_done / st.seconds, (double)st.tokens / st.seconds, (double)st.tokens / cpu);
    trace_spec_free(&o.trace);
    cJSON_Delete(cfg.root);
    qwen2_free(&small);
    qwen2_free(&big);
    sr_backend_free(&be);
    tokenizer_free(tok);

    /* prepare: the annotated rows repeated to prepare_mb */
    char *txt;
    size_t len;
    if (sr_read_file(annotated, &txt, &len, &e) || len == 0) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    f = fopen(big_in, "w");
    size_t written = 0;
    while ((double)written < prepare_mb * 1e6) {
        fwrite(txt, 1, len, f);
        written += len;
    }
    fclose(f);
    free(txt);
    PrepareOptions po = {0};
    po.tokenizer = "assets/qwen2_tokenizer";
    po.input = big_in;
    po.output = shards;
    po.max_length = 16384;
    po.prompt_field = "problem";
    po.completion_field = "annotated";
    po.add_bos = 1;
    po.completion_only_loss = 1;
    PrepareStats ps;
    c0 = cpu_seconds();
    if (prepare_run(&po, &ps, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    cpu = cpu_seconds() - c0;
    printf("prepare (%d threads): %.1f MB of JSONL, %ld documents, %lld tokens -> %lld sequences of <= 16384 in %.2f s: "
           "%.2f MB/s (%.2f MB per CPU-second), %.0f tokens/s\n",
           omp_get_max_threads(), (double)ps.bytes_in / 1e6, ps.documents, ps.tokens, ps.sequences, ps.seconds,
           (double)ps.bytes_in / 1e6 / ps.seconds, (double)ps.bytes_in / 1e6 / cpu, (double)ps.tokens / ps.seconds);
    return 0;
}
