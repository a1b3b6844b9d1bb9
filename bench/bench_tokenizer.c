/*
 * Tokenizer benchmark: encode throughput on the parity fixture's texts (every MATH-500 /
 * AIME / AMC problem and solution, the shipped reasoning traces, the adversarial strings:
 * the same texts scripts/bench_tokenizer_hf.py times with Hugging Face).
 *
 *   build/bench_tokenizer [--tokenizer DIR] [--data DIR] [--fixture F] [--repeat N]
 *                         [--threads N] [--verify]
 *
 * Prints load time, then single-thread encode MB/s and tokens/s (best of N passes, each text
 * encoded one at a time), then the same over N OpenMP threads (one Tokenizer shared).
 * --verify also compares every text with the fixture's golden ids (useful on a tokenizer
 * directory written by HF, e.g. save_pretrained output).
 * The default tokenizer is the shipped Qwen2 BPE plus the R1-distill added tokens (the
 * fixture's config) and <bigmodel>/</bigmodel>, as in the parity test.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <omp.h>
#include "../common/fileio.h"
#include "../common/json.h"

#include "../data/tokenizer.h"

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}


/* the fixture, decompressed (common/fileio.h) */
static char *zstd_read(const char *path, size_t *out_len) {
    char *d = NULL;
    SrError e;
    if (sr_read_file_zstd(path, &d, out_len, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return NULL;
    }
    return d;
}

typedef struct Text {
    char *s;
    size_t n;
    cJSON *rec; /* the golden record (ids, n, h) */
} Text;

typedef struct Source {
    char name[256];
    cJSON **rows;
    int n;
} Source;

static Source *source_get(Source *src, int *n_src, const char *data, const char *name) {
    for (int i = 0; i < *n_src; i++)
        if (strcmp(src[i].name, name) == 0) return &src[i];
    Source *s = &src[(*n_src)++];
    snprintf(s->name, sizeof s->name, "%s", name);
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", data, name);
    size_t len;
    char *text = NULL;
    SrError e;
    if (sr_read_file(path, &text, &len, &e)) fprintf(stderr, "%s\n", e.msg);
    s->rows = NULL;
    s->n = 0;
    int cap = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (*line) {
            if (s->n == cap) s->rows = realloc(s->rows, (cap = cap ? cap * 2 : 256) * sizeof *s->rows);
            s->rows[s->n++] = sr_json_parse(line, strlen(line), NULL);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return s;
}

static int hexval(char c) { return c >= '0' && c <= '9' ? c - '0' : c - 'a' + 10; }

static uint64_t fnv64(const int32_t *ids, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++)
        for (int b = 0; b < 4; b++) h = (h ^ (((uint32_t)ids[i] >> (8 * b)) & 0xFF)) * 0x100000001b3ull;
    return h;
}

static int matches_golden(const Text *t, const int32_t *ids, size_t n, int k_full, int b_hash) {
    if ((double)n != cJSON_GetObjectItemCaseSensitive(t->rec, "n")->valuedouble) return 0;
    size_t k = 0;
    for (const cJSON *it = cJSON_GetObjectItemCaseSensitive(t->rec, "ids")->child; it; it = it->next, k++)
        if (ids[k] != (int32_t)it->valuedouble) return 0;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(t->rec, "h");
    size_t b = 0;
    for (const cJSON *it = h ? h->child : NULL; it; it = it->next, b++) {
        size_t from = (size_t)k_full + b * (size_t)b_hash, to = from + (size_t)b_hash;
        if (to > n) to = n;
        char hx[20];
        snprintf(hx, sizeof hx, "%016llx", (unsigned long long)fnv64(ids + from, to - from));
        if (strcmp(hx, it->valuestring)) return 0;
    }
    return 1;
}

int main(int argc, char **argv) {
    const char *tok_path = NULL, *data = "../shared/data", *fixture = "tests/fixtures/tokenizer/golden.jsonl.zst";
    int repeat = 3, threads = (int)sysconf(_SC_NPROCESSORS_ONLN), verify = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--tokenizer") && i + 1 < argc) tok_path = argv[++i];
        else if (!strcmp(argv[i], "--data") && i + 1 < argc) data = argv[++i];
        else if (!strcmp(argv[i], "--fixture") && i + 1 < argc) fixture = argv[++i];
        else if (!strcmp(argv[i], "--repeat") && i + 1 < argc) repeat = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--threads") && i + 1 < argc) threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--verify")) verify = 1;
        else {
            fprintf(stderr, "usage: %s [--tokenizer DIR] [--data DIR] [--fixture F] [--repeat N] "
                            "[--threads N] [--verify]\n", argv[0]);
            return 2;
        }
    }
    /* the default tokenizer: shipped vocab/merges + the R1-distill config, in a temp dir */
    char tmpdir[] = "/tmp/bench_tokenizer_XXXXXX";
    if (!tok_path) {
        if (!mkdtemp(tmpdir)) return 1;
        char cmd[16384];
        snprintf(cmd, sizeof cmd,
                 "ln -s \"$(realpath '%s/qwen2_tokenizer/vocab.json')\" %s/vocab.json && "
                 "ln -s \"$(realpath '%s/qwen2_tokenizer/merges.txt')\" %s/merges.txt && "
                 "cp tests/fixtures/tokenizer/r1_distill_qwen/tokenizer_config.json %s/",
                 data, tmpdir, data, tmpdir, tmpdir);
        if (system(cmd) != 0) return 1;
        tok_path = tmpdir;
    }
    SrError err;
    Tokenizer *tok;
    double t0 = now();
    if (tokenizer_load(&tok, tok_path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    int32_t o, c;
    if (tokenizer_add_bigmodel_tokens(tok, &o, &c, &err)) {
        fprintf(stderr, "%s: %s\n", tok_path, err.msg);
        tokenizer_free(tok);
        return 1;
    }
    double t_load = now() - t0;
    if (tok_path == tmpdir) {
        char cmd[8192];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
        if (system(cmd) != 0) fprintf(stderr, "cannot remove %s\n", tmpdir);
    }

    size_t glen;
    char *golden = zstd_read(fixture, &glen);
    if (!golden) {
        fprintf(stderr, "%s: cannot read\n", fixture);
        return 1;
    }
    Text *texts = NULL;
    int n_texts = 0, cap = 0, k_full = 512, b_hash = 256;
    Source src[16];
    int n_src = 0;
    size_t total_bytes = 0;
    for (char *line = golden; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        cJSON *rec = sr_json_parse(line, strlen(line), NULL);
        line = nl ? nl + 1 : NULL;
        if (!rec) continue;
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(rec, "meta");
        if (meta) {
            k_full = cJSON_GetObjectItemCaseSensitive(meta, "k_full")->valueint;
            b_hash = cJSON_GetObjectItemCaseSensitive(meta, "b_hash")->valueint;
            cJSON_Delete(rec);
            continue;
        }
        Text t = {NULL, 0, rec};
        const cJSON *tx = cJSON_GetObjectItemCaseSensitive(rec, "text");
        const cJSON *hx = cJSON_GetObjectItemCaseSensitive(rec, "hex");
        if (cJSON_IsString(tx)) {
            t.s = strdup(tx->valuestring);
            t.n = strlen(t.s);
        } else if (cJSON_IsString(hx)) {
            t.n = strlen(hx->valuestring) / 2;
            t.s = malloc(t.n + 1);
            for (size_t i = 0; i < t.n; i++)
                t.s[i] = (char)(hexval(hx->valuestring[2 * i]) * 16 + hexval(hx->valuestring[2 * i + 1]));
        } else {
            Source *s = source_get(src, &n_src, data, cJSON_GetObjectItemCaseSensitive(rec, "src")->valuestring);
            int row = cJSON_GetObjectItemCaseSensitive(rec, "row")->valueint;
            const cJSON *v = row < s->n ? cJSON_GetObjectItemCaseSensitive(
                                              s->rows[row], cJSON_GetObjectItemCaseSensitive(rec, "field")->valuestring)
                                        : NULL;
            const cJSON *index = cJSON_GetObjectItemCaseSensitive(rec, "index");
            if (cJSON_IsNumber(index)) v = cJSON_GetArrayItem(v, index->valueint);
            if (!cJSON_IsString(v)) {
                fprintf(stderr, "missing text in %s\n", s->name);
                return 1;
            }
            t.s = strdup(v->valuestring);
            t.n = strlen(t.s);
        }
        total_bytes += t.n;
        if (n_texts == cap) texts = realloc(texts, (cap = cap ? cap * 2 : 1024) * sizeof *texts);
        texts[n_texts++] = t;
    }
    free(golden);
    for (int i = 0; i < n_src; i++) {
        for (int r = 0; r < src[i].n; r++) cJSON_Delete(src[i].rows[r]);
        free(src[i].rows);
    }
    printf("tokenizer: %s (%d ids), loaded in %.3f s\n", tok_path == tmpdir ? "qwen2 + R1-distill config" : tok_path,
           tokenizer_vocab_size(tok), t_load);
    printf("texts: %d, %.2f MB\n", n_texts, total_bytes / 1e6);

    /* single thread, one text at a time */
    double best = 1e30, first = 0;
    size_t tokens = 0;
    int bad = 0;
    for (int r = 0; r < repeat; r++) {
        tokens = 0;
        double t = now();
        for (int i = 0; i < n_texts; i++) {
            int32_t *ids;
            size_t n;
            if (tokenizer_encode(tok, texts[i].s, texts[i].n, &ids, &n, &err)) {
                fprintf(stderr, "%s\n", err.msg);
                return 1;
            }
            tokens += n;
            if (verify && r == 0 && !matches_golden(&texts[i], ids, n, k_full, b_hash)) bad++;
            free(ids);
        }
        t = now() - t;
        if (r == 0) first = t;
        if (t < best) best = t;
    }
    printf("C encode, 1 thread: %.3f s, %.2f MB/s, %.2f M tokens/s (%zu tokens, best of %d; "
           "first pass %.2f MB/s)\n", best, total_bytes / 1e6 / best, tokens / 1e6 / best, tokens,
           repeat, total_bytes / 1e6 / first);
    if (verify) printf("verify: %d of %d texts differ from the golden ids\n", bad, n_texts);

    if (threads > 1) {
        double bt = 1e30;
        for (int r = 0; r < repeat; r++) {
            double t = now();
#pragma omp parallel for schedule(dynamic, 4) num_threads(threads)
            for (int i = 0; i < n_texts; i++) {
                int32_t *ids;
                size_t n;
                SrError e;
                if (tokenizer_encode(tok, texts[i].s, texts[i].n, &ids, &n, &e) == 0) free(ids);
            }
            t = now() - t;
            if (t < bt) bt = t;
        }
        printf("C encode, %d threads: %.3f s, %.2f MB/s\n", threads, bt, total_bytes / 1e6 / bt);
    }
    for (int i = 0; i < n_texts; i++) {
        free(texts[i].s);
        cJSON_Delete(texts[i].rec);
    }
    free(texts);
    tokenizer_free(tok);
    return bad ? 1 : 0;
}
