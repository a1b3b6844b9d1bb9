/*
 * libFuzzer harness for a shard set's index.json (data/shards.h): the input is index.json's
 * text, opened with shardset_open_mem (the reader `sft` uses; shardset_open is the same code
 * over files) against a small valid set of three shard files that the harness writes once with
 * the real writer (into a fresh directory under /tmp, read back into memory and removed). The
 * index is parsed strictly, every field range-checked and compared with the shards' headers and
 * contents; when the open succeeds every sequence is read. Any crash, sanitizer report, leak or
 * run past the timeout is a bug; an error must name the index or a shard.
 *
 *   bash fuzz/run.sh shard_index [seconds]    (CI replays fuzz/corpus/shard_index/)
 *
 * Seeds: the index.json the writer wrote for this set, and variants of it.
 */
#define _GNU_SOURCE /* mkdtemp */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/fileio.h"
#include "../data/shards.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
void fuzz_cleanup(void);

#define N_FILES 3
static ShardMemFile fuzz_files[N_FILES];
static char *fuzz_bytes[N_FILES];

static void die(const char *what, const SrError *err) {
    fprintf(stderr, "fuzz_shard_index: making the set: %s: %s\n", what, err ? err->msg : "");
    abort();
}

/* The set: 12 sequences of up to 24 tokens (ids < 50), 3 shard files of a few chunks. */
static void make_set(void) {
    char dir[] = "/tmp/fuzz_shard_index.XXXXXX";
    if (!mkdtemp(dir)) die(dir, NULL);
    ShardWriterOptions o = {24, 50, 1, 40, 20, 0};
    ShardWriter *w;
    SrError err;
    if (shard_writer_open(&w, dir, &o, &err)) die("open", &err);
    uint64_t r = 1;
    for (int s = 0; s < 12; s++) {
        int32_t tok[24];
        uint8_t mask[24];
        int n = 3 + s % 20, docs[2] = {1 + n / 3, n - 1 - n / 3};
        for (int i = 0; i < n; i++) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            tok[i] = (int32_t)(r >> 33) % 50;
            mask[i] = (uint8_t)(i % 3 != 0);
        }
        if (shard_writer_add(w, tok, mask, n, docs, 2, &err)) die("add", &err);
    }
    if (shard_writer_finish(w, NULL, &err)) die("finish", &err);
    for (int i = 0; i < N_FILES; i++) {
        char name[32], *path;
        snprintf(name, sizeof name, "shard_%05d.bin", i);
        path = sr_path_join(dir, name);
        size_t n;
        if (sr_read_file(path, &fuzz_bytes[i], &n, &err)) die("read", &err);
        unlink(path);
        free(path);
        fuzz_files[i] = (ShardMemFile){strdup(name), fuzz_bytes[i], n};
    }
    char *idx = sr_path_join(dir, "index.json");
    if (getenv("FUZZ_SHARD_INDEX_SEED")) { /* prints the seed: the index.json written */
        char *t;
        if (!sr_read_file(idx, &t, NULL, &err)) fputs(t, stdout), free(t);
    }
    unlink(idx);
    free(idx);
    rmdir(dir);
}

void fuzz_cleanup(void) {
    for (int i = 0; i < N_FILES; i++) {
        free((char *)fuzz_files[i].name);
        free(fuzz_bytes[i]);
    }
    memset(fuzz_files, 0, sizeof fuzz_files);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (!fuzz_files[0].data) make_set();
    ShardSet *s;
    SrError err;
    if (shardset_open_mem(&s, "/tmp/fuzz_set", (const char *)data, size, fuzz_files, N_FILES, &err) != 0) {
        if (!strstr(err.msg, "/tmp/fuzz_set/")) abort(); /* names the index or a shard */
        return 0;
    }
    ShardSeq q = {0};
    for (long long i = 0; i < shardset_num_sequences(s); i++)
        if (shardset_read(s, i, &q, &err) != 0) abort();
    shard_seq_free(&q);
    shardset_close(s);
    return 0;
}
