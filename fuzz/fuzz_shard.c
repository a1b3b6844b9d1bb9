/*
 * libFuzzer harness for the token shard reader (data/shards.h): the input is the bytes of one
 * shard file (header, chunk table, zstd chunks). The harness writes the index.json that would
 * go with it (the counts the header claims, the input's size) and opens the pair with
 * shardset_open_mem, the reader `sft` uses (shardset_open is the same code over files): the
 * header, the table and every chunk are checked and decoded at open; when the open succeeds
 * every sequence is read, forwards and backwards (cache evictions), and checked against the
 * format's promises. Any crash, sanitizer report, leak, allocation past the RSS limit or run
 * past the timeout is a bug; an error is an ordinary outcome.
 *
 *   bash fuzz/run.sh shard [seconds]       (CI replays fuzz/corpus/shard/: ctest fuzz_shard)
 *
 * Seeds: shards that `splitreason prepare` wrote, and the same with their chunks re-encoded as
 * stored (uncompressed, checksum-free) zstd blocks, so that mutations reach the records.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../data/shards.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t le(const uint8_t *p, int n) {
    uint64_t v = 0;
    for (int i = n - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    /* header fields (shards.h) as the index would state them; defaults for a short input */
    unsigned long long ml = 16, vs = 300, flags = 1, ns = 1, nt = 1;
    if (size >= SHARD_HEADER_BYTES) {
        ml = le(data + 12, 4), vs = le(data + 16, 4), flags = le(data + 20, 4);
        ns = le(data + 24, 8), nt = le(data + 32, 8);
    }
    char index[1024];
    int n = snprintf(index, sizeof index,
                     "{\"format\": \"splitreason-shards\", \"version\": 1, \"max_length\": %llu, "
                     "\"vocab_size\": %llu, \"n_sequences\": %llu, \"n_tokens\": %llu, "
                     "\"completion_only_loss\": %s, \"shards\": [{\"file\": \"shard_00000.bin\", "
                     "\"n_sequences\": %llu, \"n_tokens\": %llu, \"bytes\": %zu}]}",
                     ml, vs, ns, nt, flags & 1 ? "true" : "false", ns, nt, size);
    ShardMemFile f = {"shard_00000.bin", data, size};
    ShardSet *s;
    SrError err;
    if (shardset_open_mem(&s, "/tmp/fuzz_shard", index, (size_t)n, &f, 1, &err) != 0) {
        if (!strstr(err.msg, "/tmp/fuzz_shard")) abort(); /* every error names the file */
        return 0;
    }
    long long total = shardset_num_sequences(s);
    int max_length = shardset_max_length(s);
    ShardSeq q = {0};
    for (int pass = 0; pass < 2; pass++)
        for (long long k = 0; k < total && k < 4096; k++) {
            long long i = pass ? total - 1 - k : k;
            if (shardset_read(s, i, &q, &err) != 0) abort(); /* it decoded at open */
            long long sum = 0;
            for (int d = 0; d < q.n_docs; d++) sum += q.doc_lens[d];
            if (q.n_tokens < 1 || q.n_tokens > max_length || sum != q.n_tokens) abort();
            for (int t = 0; t < q.n_tokens; t++)
                if (q.tokens[t] >= vs || q.mask[t] > 1) abort();
        }
    shard_seq_free(&q);
    shardset_close(s);
    return 0;
}
