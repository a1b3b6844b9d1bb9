/*
 * libFuzzer harness for JSONL rows: the input is a whole JSONL file (plain, or zstd when it
 * starts with the zstd magic) read through the one JSONL reader (common/jsonl.h: jsonl_open,
 * jsonl_next, jsonl_parse_line), and every row that parses goes through what the commands do
 * with a row:
 *   - annotate's trace field mapping (data/traces.h): the OpenR1-Math default (generations +
 *     correctness_math_verify, first correct), and a string field with trace_from /
 *     trace_strip_suffix / where, as the shipped r2a files are read;
 *   - prepare's chat template (data/chat_template.h): problem + annotated (and each selected
 *     trace) through chat_prompt_text / chat_completion_text / chat_encode with a small real
 *     byte-level BPE (tests/fixtures/tokenizer/tiny) and the <bigmodel> tags.
 * Any crash, sanitizer report, leak or run past the timeout is a bug; a malformed row is fine
 * (its error must name the file and line, which is checked).
 *
 * The reader takes a path, so the input is written to /tmp/fuzz_jsonl.<pid>.jsonl (removed by
 * fuzz_cleanup). The tokenizer is loaded once per process (the harness's own state).
 *
 * Build and run (clang with libFuzzer):  bash fuzz/run.sh jsonl [seconds]
 * CI replays fuzz/corpus/jsonl/ through fuzz/replay.c (ctest "fuzz_jsonl").
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/jsonl.h"
#include "../data/chat_template.h"
#include "../data/tokenizer.h"
#include "../data/traces.h"

static Tokenizer *fuzz_tok;
static char fuzz_path[64];

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

void fuzz_cleanup(void);
void fuzz_cleanup(void) {
    tokenizer_free(fuzz_tok);
    fuzz_tok = NULL;
    if (fuzz_path[0]) unlink(fuzz_path);
}

/* the fixture next to this source file (the fuzzer runs from build-fuzz/, the replay from the
 * source root) */
static void load_tokenizer(void) {
    char path[4096];
    const char *src = __FILE__, *slash = strrchr(src, '/');
    int dl = slash ? (int)(slash - src) : 1;
    snprintf(path, sizeof path, "%.*s/../tests/fixtures/tokenizer/tiny/tokenizer.json", dl,
             slash ? src : ".");
    SrError err = {{0}};
    int32_t a, b;
    if (tokenizer_load(&fuzz_tok, path, &err) || tokenizer_add_bigmodel_tokens(fuzz_tok, &a, &b, &err)) {
        fprintf(stderr, "fuzz_jsonl: %s\n", err.msg);
        abort();
    }
}

static void encode(const char *prompt, const char *completion, size_t len) {
    static const ChatTemplate tmpl[2] = {{NULL, NULL, 1}, {"You are helpful.", "", 0}};
    for (int k = 0; k < 2; k++) {
        char *p = chat_prompt_text(&tmpl[k], prompt);
        free(p);
        size_t cl = 0;
        const char *c = chat_completion_text(&tmpl[k], completion, len, &cl);
        if (cl > len || (cl > 0 && (c < completion || c + cl > completion + len))) abort();
        int32_t *ids = NULL;
        size_t n = 0, n_prompt = 0;
        SrError e = {{0}};
        if (chat_encode(&tmpl[k], fuzz_tok, prompt, completion, len, &ids, &n, &n_prompt, &e) == 0) {
            if (n_prompt > n) abort();
            for (size_t i = 0; i < n; i++)
                if (ids[i] < 0 || ids[i] >= tokenizer_vocab_size(fuzz_tok)) abort();
        }
        free(ids);
    }
}

static void traces(const TraceSpec *spec, const cJSON *row) {
    if (!trace_row_matches(spec, row)) return;
    Trace *tr = NULL;
    int nt = 0;
    SrError e = {{0}};
    if (traces_from_row(spec, row, &tr, &nt, &e) == 0) {
        const char *problem = trace_problem(spec, row);
        for (int k = 0; k < nt; k++) {
            if (!tr[k].text) abort();
            encode(problem ? problem : "", tr[k].text, tr[k].len);
        }
    } else if (!e.msg[0]) {
        abort(); /* an error must say what is wrong */
    }
    free(tr);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_tok) {
        load_tokenizer();
        snprintf(fuzz_path, sizeof fuzz_path, "/tmp/fuzz_jsonl.%d.jsonl", (int)getpid());
    }
    /* a plain write: the atomic writer's fsyncs would cost more than the parsing */
    FILE *f = fopen(fuzz_path, "wb");
    if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0) abort();
    SrError err = {{0}};
    TraceSpec openr1 = {"generations", "problem", "correctness_math_verify", TRACE_FIRST_CORRECT,
                        0, NULL, NULL, NULL, NULL};
    TraceSpec r2a = {"response", "problem", "is_answer_correct", TRACE_ALL, 0, "<think>",
                     R1_EOS_TEXT, NULL, NULL};
    TraceSpec indexed = {"generations", "question", "answers_correctness", TRACE_INDEX, 1, NULL,
                         NULL, sr_strdup("model"), sr_strdup("qwen-1p5B-withR")};
    JsonlReader r;
    if (jsonl_open(&r, fuzz_path, &err) == 0) {
        int got;
        while ((got = jsonl_next(&r, &err)) == 1) {
            cJSON *row = jsonl_parse_line(&r, &err);
            if (!row) {
                /* "PATH:LINE: ..." */
                if (strncmp(err.msg, fuzz_path, strlen(fuzz_path)) != 0) abort();
                continue;
            }
            traces(&openr1, row);
            traces(&r2a, row);
            traces(&indexed, row);
            /* prepare's mapping: problem + annotated */
            const cJSON *p = cJSON_GetObjectItemCaseSensitive(row, "problem");
            const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, "annotated");
            if (cJSON_IsString(p) && cJSON_IsString(c))
                encode(p->valuestring, c->valuestring, strlen(c->valuestring));
            cJSON_Delete(row);
        }
        jsonl_close(&r);
    }
    trace_spec_free(&indexed);
    return 0;
}
