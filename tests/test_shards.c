/*
 * Packing and shards: best-fit-decreasing against a naive O(n * bins) reimplementation on
 * random instances (same bins, every bin within capacity, never more bins than first-fit);
 * shard write -> read round trip over several shard files and chunks; corrupt and truncated
 * shards are errors; the loader: batches are deterministic for a seed, each epoch visits every
 * sequence at most once (exactly once but the dropped tail), ranks split a global batch,
 * targets follow the loss mask and stop at document boundaries, and a loader seeked to a saved
 * position gives exactly the batches that followed it.
 */
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"
#include "../data/pack.h"
#include "../data/shards.h"
#include "harness.h"
#include "shard_craft.h"

/* best-fit-decreasing written the obvious way */
static int naive_bfd(const int *len, int n, int cap, int *bin_of) {
    int *idx = malloc((size_t)n * sizeof(int)), *room = malloc((size_t)n * sizeof(int)), nb = 0;
    int *stamp = malloc((size_t)n * sizeof(int)); /* when the bin's room last changed */
    for (int i = 0; i < n; i++) idx[i] = i;
    for (int i = 1; i < n; i++) /* insertion sort: length desc, index asc */
        for (int j = i; j > 0 && (len[idx[j]] > len[idx[j - 1]] ||
                                  (len[idx[j]] == len[idx[j - 1]] && idx[j] < idx[j - 1])); j--) {
            int t = idx[j];
            idx[j] = idx[j - 1];
            idx[j - 1] = t;
        }
    for (int k = 0; k < n; k++) {
        int d = idx[k], best = -1;
        for (int b = 0; b < nb; b++) /* least room that fits; ties: the bin that got there last */
            if (room[b] >= len[d] &&
                (best < 0 || room[b] < room[best] || (room[b] == room[best] && stamp[b] > stamp[best])))
                best = b;
        if (best < 0) best = nb, room[nb++] = cap;
        room[best] -= len[d];
        stamp[best] = k;
        bin_of[d] = best;
    }
    free(idx);
    free(room);
    free(stamp);
    return nb;
}

static void test_pack(void) {
    uint64_t rng = 42;
    for (int trial = 0; trial < 60; trial++) {
        int n = 1 + (int)(sr_rng_u64(&rng) % 300), cap = 16 + (int)(sr_rng_u64(&rng) % 2000);
        int *len = malloc((size_t)n * sizeof(int)), *a = malloc((size_t)n * sizeof(int)), *b = malloc((size_t)n * sizeof(int));
        int *order = malloc((size_t)n * sizeof(int));
        for (int i = 0; i < n; i++) {
            uint64_t r = sr_rng_u64(&rng);
            len[i] = 1 + (int)(r % (uint64_t)(trial % 3 == 0 ? cap : cap / 3 + 1)); /* some instances of small docs */
        }
        int na = pack_bfd(len, n, cap, a, order), nb = naive_bfd(len, n, cap, b);
        int same = na == nb;
        for (int i = 0; i < n && same; i++) same = a[i] == b[i];
        CHECKF(same, "trial %d: %d vs %d bins", trial, na, nb);
        long long *fill = calloc((size_t)na, sizeof(long long)), total = 0;
        for (int i = 0; i < n; i++) fill[a[i]] += len[i], total += len[i];
        int ok = 1;
        for (int k = 0; k < na; k++) ok &= fill[k] <= cap && fill[k] > 0;
        CHECK(ok && na >= (total + cap - 1) / cap);
        /* order is a permutation, longest first */
        int *seen = calloc((size_t)n, sizeof(int)), perm = 1;
        for (int k = 0; k < n; k++) perm &= !seen[order[k]]++, perm &= k == 0 || len[order[k]] <= len[order[k - 1]];
        CHECK(perm);
        free(seen);
        free(fill);
        free(order);
        free(len);
        free(a);
        free(b);
    }
    /* a hand case: 6,5,4,3,2,2 into 8 -> {6,2}, {5,3}, {4,2}  */
    int len[] = {2, 5, 4, 6, 3, 2}, bin[6];
    CHECK(pack_bfd(len, 6, 8, bin, NULL) == 3);
    CHECK(bin[3] == bin[0] && bin[1] == bin[4] && bin[2] == bin[5]);
}

typedef struct RefSeq {
    int n, nd;
    int32_t *tok;
    uint8_t *mask;
    int *docs;
} RefSeq;

static RefSeq *write_random(const char *dir, int n_seqs, int max_length, int vocab, long long shard_tokens,
                            long long chunk_tokens, uint64_t seed) {
    RefSeq *ref = calloc((size_t)n_seqs, sizeof(RefSeq));
    ShardWriter *w;
    SrError e = {{0}};
    ShardWriterOptions o = {max_length, vocab, 1, shard_tokens, chunk_tokens, 0};
    CHECK(shard_writer_open(&w, dir, &o, &e) == 0);
    uint64_t rng = seed;
    for (int s = 0; s < n_seqs; s++) {
        RefSeq *q = &ref[s];
        q->n = 1 + (int)(sr_rng_u64(&rng) % (uint64_t)max_length);
        q->tok = malloc((size_t)q->n * 4);
        q->mask = malloc((size_t)q->n);
        q->docs = malloc((size_t)q->n * sizeof(int));
        int left = q->n;
        while (left > 0) {
            int d = 1 + (int)(sr_rng_u64(&rng) % (uint64_t)left);
            q->docs[q->nd++] = d;
            left -= d;
        }
        for (int i = 0; i < q->n; i++) {
            q->tok[i] = (int32_t)(sr_rng_u64(&rng) % (uint64_t)vocab);
            q->mask[i] = (uint8_t)(sr_rng_u64(&rng) & 1);
        }
        CHECK(shard_writer_add(w, q->tok, q->mask, q->n, q->docs, q->nd, &e) == 0);
        /* what the reader must give: the first token of each document out of the loss */
        for (int d = 0, off = 0; d < q->nd; off += q->docs[d++]) q->mask[off] = 0;
    }
    cJSON *extra = cJSON_Parse("{\"note\": \"test\", \"max_length\": 1}");
    CHECK(shard_writer_finish(w, extra, &e) == 0);
    cJSON_Delete(extra);
    return ref;
}

static void free_ref(RefSeq *ref, int n) {
    for (int i = 0; i < n; i++) free(ref[i].tok), free(ref[i].mask), free(ref[i].docs);
    free(ref);
}

static void test_roundtrip(const char *dir) {
    const int N = 300, L = 64, V = 1000;
    RefSeq *ref = write_random(dir, N, L, V, 2000, 300, 5);
    ShardSet *s;
    SrError e = {{0}};
    CHECK(shardset_open(&s, dir, &e) == 0);
    const cJSON *idx = shardset_index(s);
    CHECK(shardset_num_sequences(s) == N && shardset_max_length(s) == L);
    CHECK(cJSON_GetArraySize(cJSON_GetObjectItem(idx, "shards")) > 3);
    CHECK(!strcmp(cJSON_GetObjectItem(idx, "note")->valuestring, "test"));
    CHECK(cJSON_GetObjectItem(idx, "max_length")->valueint == L); /* extra keys never override */
    ShardSeq q = {0};
    int ok = 1;
    /* random order, so chunks are evicted and reloaded */
    uint64_t rng = 9;
    for (int k = 0; k < 3 * N; k++) {
        int i = (int)(sr_rng_u64(&rng) % N);
        CHECK(shardset_read(s, i, &q, &e) == 0);
        RefSeq *r = &ref[i];
        ok &= q.n_tokens == r->n && q.n_docs == r->nd;
        for (int t = 0; ok && t < r->n; t++) ok &= (int32_t)q.tokens[t] == r->tok[t] && q.mask[t] == r->mask[t];
        for (int d = 0; ok && d < r->nd; d++) ok &= (int)q.doc_lens[d] == r->docs[d];
    }
    CHECK(ok);
    CHECK(shardset_read(s, N, &q, &e) != 0 && strstr(e.msg, "out of range"));
    shard_seq_free(&q);
    shardset_close(s);

    /* a bad sequence is refused by the writer */
    ShardWriter *w;
    char d2[700];
    snprintf(d2, sizeof d2, "%s/bad", dir);
    ShardWriterOptions o = {8, 10, 1, 0, 0, 0};
    CHECK(shard_writer_open(&w, d2, &o, &e) == 0);
    int32_t t[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    uint8_t m[9] = {0};
    int docs[] = {9}, docs2[] = {2, 2};
    CHECK(shard_writer_add(w, t, m, 9, docs, 1, &e) != 0 && strstr(e.msg, "max_length"));
    CHECK(shard_writer_add(w, t, m, 3, docs2, 2, &e) != 0 && strstr(e.msg, "documents hold 4"));
    t[0] = 10;
    CHECK(shard_writer_add(w, t, m, 2, docs2, 1, &e) != 0 && strstr(e.msg, "out of range"));
    shard_writer_abort(w);
    ShardWriterOptions big = {SHARD_MAX_LENGTH + 1, 10, 1, 0, 0, 0};
    CHECK(shard_writer_open(&w, d2, &big, &e) != 0 && strstr(e.msg, "max_length must be in [2, 4194304]"));

    /* corruption: a flipped byte inside a chunk fails its checksum, at open (every chunk is
     * decoded then); a cut file fails at open */
    char p[700];
    snprintf(p, sizeof p, "%s/shard_00000.bin", dir);
    size_t n;
    char *data = sr_test_read_file(p, &n);
    data[n - 10] ^= 0x5A;
    sr_test_write_file(p, data, n);
    CHECKF(shardset_open(&s, dir, &e) != 0 && strstr(e.msg, "shard_00000.bin") && strstr(e.msg, "chunk"), "%s",
           e.msg);
    sr_test_write_file(p, data, 40);
    CHECK(shardset_open(&s, dir, &e) != 0 && strstr(e.msg, "shard_00000.bin"));
    free(data);
    free_ref(ref, N);
}

/* ---- hostile shards (issue 9: items 3 and 11) ------------------------------------------------ */

/* open must fail with one line naming `name` and containing want (may be NULL) */
static int refused(const char *dir, const char *name, const char *want, SrError *e) {
    ShardSet *s = NULL;
    if (shardset_open(&s, dir, e) == 0) {
        shardset_close(s);
        snprintf(e->msg, sizeof e->msg, "(opened)");
        return 0;
    }
    return strstr(e->msg, name) && (!want || strstr(e->msg, want)) && !strchr(e->msg, '\n');
}

static void small_set(const char *dir) {
    free_ref(write_random(dir, 40, 32, 100, 250, 100, 3), 40); /* 3 shards of 2 or 3 chunks */
}

/* every header and chunk table field set to hostile values: an error naming the shard, never
 * an abort or an allocation sized by the value (ASan's allocator would report one) */
static void test_hostile_headers(const char *dir) {
    small_set(dir);
    char p[700];
    snprintf(p, sizeof p, "%s/shard_00000.bin", dir);
    size_t n;
    uint8_t *orig = (uint8_t *)sr_test_read_file(p, &n), *d = malloc(n);
    uint32_t nc = craft_u32(orig + 40);
    SrError e;
    /* the three reproducers of the issue */
    memcpy(d, orig, n);
    craft_put_u32(d + 40, 1u << 31); /* n_chunks 2^31: was negative through (int) */
    sr_test_write_file(p, d, n);
    CHECKF(refused(dir, "shard_00000.bin", "2147483648 chunks", &e), "%s", e.msg);
    memcpy(d, orig, n);
    craft_put_u64(d + SHARD_HEADER_BYTES + 8, UINT64_MAX - craft_u64(d + SHARD_HEADER_BYTES) + 2); /* offset + comp wraps */
    sr_test_write_file(p, d, n);
    CHECKF(refused(dir, "shard_00000.bin", "exceed the file", &e), "%s", e.msg);
    memcpy(d, orig, n);
    craft_put_u64(d + SHARD_HEADER_BYTES + 16, 1ULL << 40); /* raw 2^40 */
    sr_test_write_file(p, d, n);
    CHECKF(refused(dir, "shard_00000.bin", "1099511627776 raw bytes", &e), "%s", e.msg);
    fprintf(stderr, "  raw 2^40: %s\n", e.msg);

    /* every field, many values */
    static const uint64_t vals[] = {0, 1, 2, 31, 32, 64, 0x7fffffff, 0x80000000, 0xffffffff, 1ULL << 32, 1ULL << 40,
                                    1ULL << 63, UINT64_MAX};
    struct { size_t off; int width; } fields[64];
    int nf = 0;
    static const size_t hdr[][2] = {{8, 4}, {12, 4}, {16, 4}, {20, 4}, {24, 8}, {32, 8}, {40, 4}, {44, 4}, {60, 4}};
    for (size_t k = 0; k < sizeof hdr / sizeof hdr[0]; k++) fields[nf].off = hdr[k][0], fields[nf++].width = (int)hdr[k][1];
    uint32_t entries[2] = {0, nc - 1};
    for (int k = 0; k < 2; k++) {
        static const size_t ent[][2] = {{0, 8}, {8, 8}, {16, 8}, {24, 4}, {28, 4}};
        for (size_t j = 0; j < 5; j++) {
            fields[nf].off = SHARD_HEADER_BYTES + (size_t)entries[k] * SHARD_CHUNK_ENTRY_BYTES + ent[j][0];
            fields[nf++].width = (int)ent[j][1];
        }
    }
    int all = 1, tried = 0;
    for (int f = 0; f < nf; f++)
        for (int pass = 0; pass < 2; pass++)
            for (size_t v = 0; v < sizeof vals / sizeof vals[0] + 2; v++) {
                memcpy(d, orig, n);
                uint64_t was = fields[f].width == 4 ? craft_u32(d + fields[f].off) : craft_u64(d + fields[f].off);
                uint64_t x = v < sizeof vals / sizeof vals[0] ? vals[v] : was + (v % 2 ? 1 : -1);
                if (fields[f].width == 4) x &= 0xffffffffu, craft_put_u32(d + fields[f].off, (uint32_t)x);
                else craft_put_u64(d + fields[f].off, x);
                if (x == was) continue;
                /* pass 1: index.json's bytes still right, so only the header's own checks apply */
                sr_test_write_file(p, d, n);
                tried++;
                if (!refused(dir, "shard_00000.bin", NULL, &e)) {
                    all = 0;
                    fprintf(stderr, "  field at %zu = %llu: %s\n", fields[f].off, (unsigned long long)x, e.msg);
                }
                if (pass) break;
            }
    CHECKF(all && tried > 200, "%d mutations", tried);
    /* cut anywhere, with index.json's size following the cut: the header and table checks
     * (not the size in the index) must catch it */
    for (size_t cut = 0; cut < n; cut += cut < 200 ? 7 : 61) {
        sr_test_write_file(p, orig, cut);
        craft_set_index_bytes(dir, "shard_00000.bin", (long long)cut);
        if (!refused(dir, cut < SHARD_HEADER_BYTES ? "index.json: shards[0].bytes" : "shard_00000.bin", NULL, &e)) {
            all = 0;
            fprintf(stderr, "  cut at %zu: %s\n", cut, e.msg);
        }
    }
    /* trailing bytes after the last chunk */
    memcpy(d, orig, n);
    uint8_t *longer = malloc(n + 5);
    memcpy(longer, orig, n);
    memset(longer + n, 0, 5);
    sr_test_write_file(p, longer, n + 5);
    craft_set_index_bytes(dir, "shard_00000.bin", (long long)n + 5);
    CHECKF(refused(dir, "shard_00000.bin", "after the last chunk", &e), "%s", e.msg);
    CHECK(all);
    free(longer);
    free(d);
    free(orig);
}

/* crafted chunk contents: each edit is an error at open naming the shard, chunk and sequence */
typedef struct Edit {
    int seq;        /* the record to edit (-1: the last) */
    int what;       /* which field */
    uint32_t value;
} Edit;
enum { E_TOKEN_LAST, E_DOC0_PLUS1, E_MASK2, E_MASK_DOC_START, E_NTOK, E_NDOCS, E_APPEND, E_CUT };

static void apply_edit(uint8_t *raw, size_t *len, size_t cap, void *ctx) {
    const Edit *ed = ctx;
    int seq = ed->seq;
    if (seq < 0) /* count the records */
        for (seq = 0; craft_record(raw, *len, seq + 1); seq++) {}
    uint8_t *r = craft_record(raw, *len, seq);
    if (!r) return;
    uint32_t n = craft_u32(r), nd = craft_u32(r + 4);
    uint8_t *docs = r + 8, *tok = docs + 4 * (size_t)nd, *mask = tok + 4 * (size_t)n;
    switch (ed->what) {
    case E_TOKEN_LAST: craft_put_u32(tok + 4 * (size_t)(n - 1), ed->value); break;
    case E_DOC0_PLUS1: craft_put_u32(docs, craft_u32(docs) + 1); break;
    case E_MASK2: mask[n - 1] = 2; break;
    case E_MASK_DOC_START: mask[0] = 1; break;
    case E_NTOK: craft_put_u32(r, ed->value); break;
    case E_NDOCS: craft_put_u32(r + 4, ed->value); break;
    case E_APPEND: if (*len + 3 <= cap) memset(raw + *len, 0, 3), *len += 3; break;
    case E_CUT: *len -= 1; break;
    }
}

static void test_crafted_chunks(const char *dir) {
    struct { Edit ed; const char *want; } cases[] = {
        {{-1, E_TOKEN_LAST, 0xffffffffu}, "id 4294967295 is not below vocab_size 100"},
        {{-1, E_TOKEN_LAST, 100}, "id 100 is not below vocab_size 100"},
        {{0, E_DOC0_PLUS1, 0}, "documents hold"},
        {{-1, E_MASK2, 0}, "loss mask 2"},
        {{-1, E_MASK_DOC_START, 0}, "first token of document 0"},
        {{0, E_NTOK, 0}, "0 tokens"},
        {{0, E_NTOK, 33}, "33 tokens (max_length 32)"},
        {{0, E_NTOK, 0xffffffffu}, "4294967295 tokens"},
        {{0, E_NDOCS, 0}, "0 documents"},
        {{0, E_NDOCS, 0xffffffffu}, "4294967295 documents"},
        {{0, E_APPEND, 0}, "bytes after its"},
        {{-1, E_CUT, 0}, "sequence"},
    };
    for (size_t k = 0; k < sizeof cases / sizeof cases[0]; k++) {
        small_set(dir);
        /* the last shard's last chunk: deep inside, after many good sequences */
        int rc = craft_edit_chunk(dir, "shard_00002.bin", -1, apply_edit, &cases[k].ed);
        SrError e;
        CHECKF(rc == 0 && refused(dir, "shard_00002.bin: chunk", cases[k].want, &e), "case %zu: %s", k, e.msg);
        if (k == 0) fprintf(stderr, "  bad id: %s\n", e.msg);
    }
    /* the same set untouched opens, and index.json records the largest id */
    small_set(dir);
    ShardSet *s;
    SrError e;
    CHECK(shardset_open(&s, dir, &e) == 0);
    const cJSON *mx = cJSON_GetObjectItem(shardset_index(s), "max_token_id");
    CHECK(cJSON_IsNumber(mx) && mx->valueint > 90 && mx->valueint < 100);
    shardset_close(s);
}

/* index.json: every field, hostile values: an error naming index.json (and the field) */
static void test_hostile_index(const char *dir) {
    small_set(dir);
    char ip[700];
    snprintf(ip, sizeof ip, "%s/index.json", dir);
    char *orig = sr_test_read_file(ip, NULL);
    static const char *keys[] = {"format", "version", "max_length", "vocab_size", "n_sequences", "n_tokens",
                                 "n_loss_tokens", "n_documents", "max_token_id", "completion_only_loss", "shards"};
    static const char *vals[] = {"-1", "0", "1e300", "-1e300", "2.5", "4294967296", "9007199254740993", "\"x\"",
                                 "null", "true", "[]", "{}", "1"};
    int all = 1;
    SrError e;
    for (size_t k = 0; k < sizeof keys / sizeof keys[0]; k++)
        for (size_t v = 0; v < sizeof vals / sizeof vals[0]; v++) {
            cJSON *idx = cJSON_Parse(orig);
            const cJSON *was = cJSON_GetObjectItem(idx, keys[k]);
            cJSON *val = cJSON_Parse(vals[v]);
            if (cJSON_Compare(was, val, 1)) {
                cJSON_Delete(val), cJSON_Delete(idx);
                continue;
            }
            cJSON_ReplaceItemInObject(idx, keys[k], val);
            char *t = cJSON_Print(idx);
            sr_test_write_file(ip, t, strlen(t));
            free(t);
            cJSON_Delete(idx);
            if (!refused(dir, "index.json", NULL, &e) || !(strstr(e.msg, keys[k]) || strstr(e.msg, "shard_0"))) {
                all = 0;
                fprintf(stderr, "  %s = %s: %s\n", keys[k], vals[v], e.msg);
            }
        }
    /* a shard entry's fields */
    static const char *skeys[] = {"file", "n_sequences", "n_tokens", "bytes"};
    static const char *svals[] = {"-1", "0", "1e300", "2.5", "\"x\"", "null", "\"\"", "\"..\"", "\"../x\"",
                                  "\"shard_00001.bin\"", "\"index.json\""};
    for (size_t k = 0; k < 4; k++)
        for (size_t v = 0; v < sizeof svals / sizeof svals[0]; v++) {
            cJSON *idx = cJSON_Parse(orig);
            cJSON *e0 = cJSON_GetArrayItem(cJSON_GetObjectItem(idx, "shards"), 0);
            cJSON_ReplaceItemInObject(e0, skeys[k], cJSON_Parse(svals[v]));
            char *t = cJSON_Print(idx);
            sr_test_write_file(ip, t, strlen(t));
            free(t);
            cJSON_Delete(idx);
            if (!refused(dir, "/", NULL, &e) ||
                !(strstr(e.msg, "index.json") || strstr(e.msg, "shard_0") || strstr(e.msg, "cannot open"))) {
                all = 0;
                fprintf(stderr, "  shards[0].%s = %s: %s\n", skeys[k], svals[v], e.msg);
            }
        }
    CHECK(all);
    /* an index whose statistics lie */
    static const char *lies[][2] = {{"\"max_token_id\"", "max_token_id"}, {"\"n_documents\"", "n_documents"},
                                    {"\"n_loss_tokens\"", "n_loss_tokens"}};
    for (int k = 0; k < 3; k++) {
        cJSON *idx = cJSON_Parse(orig);
        cJSON *x = cJSON_GetObjectItem(idx, lies[k][1]);
        cJSON_SetNumberValue(x, x->valuedouble - 1);
        char *t = cJSON_Print(idx);
        sr_test_write_file(ip, t, strlen(t));
        free(t);
        cJSON_Delete(idx);
        CHECKF(refused(dir, "index.json", lies[k][1], &e), "%s", e.msg);
    }
    /* not JSON, two values, truncated */
    sr_test_write_file(ip, orig, strlen(orig) / 2);
    CHECKF(refused(dir, "index.json", NULL, &e), "%s", e.msg);
    free(orig);
}

static void test_loader(const char *dir) {
    const int N = 103, L = 40, V = 500, B = 4;
    RefSeq *ref = write_random(dir, N, L, V, 1500, 200, 17);
    SrError e = {{0}};
    ShardLoader a, b;
    CHECK(shard_loader_open(&a, dir, B, 1234, 0, 1, &e) == 0);
    CHECK(shard_loader_open(&b, dir, B, 1234, 0, 1, &e) == 0);
    ShardBatch ba = {0}, bb = {0};
    /* one epoch: 25 batches of 4 = 100 distinct sequences, 3 dropped */
    int *seen = calloc(N, sizeof(int)), same = 1, targets_ok = 1;
    for (int k = 0; k < 25; k++) {
        CHECK(shard_loader_next(&a, &ba, &e) == 0 && shard_loader_next(&b, &bb, &e) == 0);
        same &= ba.N == bb.N && !memcmp(ba.ids, bb.ids, (size_t)ba.N * 4) && ba.epoch == 0;
        for (int q = 0; q < B; q++) {
            /* find which sequence this is by content */
            int start = ba.seq_start[q], len = ba.seq_start[q + 1] - start, hit = -1;
            for (int i = 0; i < N && hit < 0; i++)
                if (ref[i].n == len && !memcmp(ref[i].tok, ba.ids + start, (size_t)len * 4)) hit = i;
            if (hit < 0) {
                targets_ok = 0;
                continue;
            }
            seen[hit]++;
            RefSeq *r = &ref[hit];
            for (int d = 0, off = 0; d < r->nd; off += r->docs[d++])
                for (int i = 0; i < r->docs[d]; i++) {
                    int t = start + off + i;
                    int want = i + 1 < r->docs[d] && r->mask[off + i + 1] ? r->tok[off + i + 1] : -1;
                    targets_ok &= ba.pos[t] == i && ba.targets[t] == want;
                }
        }
    }
    int once = 0, twice = 0;
    for (int i = 0; i < N; i++) once += seen[i] == 1, twice += seen[i] > 1;
    CHECK(same && targets_ok && once == 100 && twice == 0);
    /* the next batch starts epoch 1, in a different order */
    CHECK(shard_loader_next(&a, &ba, &e) == 0 && ba.epoch == 1 && ba.cursor == 0);
    /* resume: save the position after 3 batches of epoch 1, read 5 more; a fresh loader seeked
     * there reads the same 5 */
    for (int k = 0; k < 2; k++) shard_loader_next(&a, &ba, &e);
    long long ep = ba.next_epoch, cur = ba.next_cursor;
    int32_t *expect = malloc(5 * (size_t)B * L * 4);
    int exp_n[5];
    for (int k = 0; k < 5; k++) {
        shard_loader_next(&a, &ba, &e);
        exp_n[k] = ba.N;
        memcpy(expect + (size_t)k * B * L, ba.ids, (size_t)ba.N * 4);
    }
    ShardLoader c;
    CHECK(shard_loader_open(&c, dir, B, 1234, 0, 1, &e) == 0 && shard_loader_seek(&c, ep, cur, &e) == 0);
    int resumed = 1;
    for (int k = 0; k < 5; k++) {
        shard_loader_next(&c, &bb, &e);
        resumed &= bb.N == exp_n[k] && !memcmp(bb.ids, expect + (size_t)k * B * L, (size_t)bb.N * 4);
    }
    CHECK(resumed);
    CHECK(shard_loader_seek(&c, 0, 3, &e) != 0 && strstr(e.msg, "batch boundary"));
    shard_loader_close(&c);
    /* another seed: another order */
    ShardLoader d;
    CHECK(shard_loader_open(&d, dir, B, 99, 0, 1, &e) == 0);
    shard_loader_next(&d, &bb, &e);
    ShardLoader f;
    CHECK(shard_loader_open(&f, dir, B, 1234, 0, 1, &e) == 0);
    shard_loader_next(&f, &ba, &e);
    CHECK(ba.N != bb.N || memcmp(ba.ids, bb.ids, (size_t)ba.N * 4) != 0);
    shard_loader_close(&d);
    shard_loader_close(&f);
    /* two ranks: disjoint halves of the same global batch as one rank with 2B */
    ShardLoader r0, r1, all;
    CHECK(shard_loader_open(&r0, dir, B, 7, 0, 2, &e) == 0 && shard_loader_open(&r1, dir, B, 7, 1, 2, &e) == 0);
    CHECK(shard_loader_open(&all, dir, 2 * B, 7, 0, 1, &e) == 0);
    ShardBatch x = {0}, y = {0}, z = {0};
    shard_loader_next(&r0, &x, &e);
    shard_loader_next(&r1, &y, &e);
    shard_loader_next(&all, &z, &e);
    CHECK(x.N + y.N == z.N && !memcmp(z.ids, x.ids, (size_t)x.N * 4) && !memcmp(z.ids + x.N, y.ids, (size_t)y.N * 4));
    CHECK(x.next_cursor == 2 * B && y.next_cursor == 2 * B);
    shard_loader_close(&r0);
    shard_loader_close(&r1);
    shard_loader_close(&all);
    shard_batch_free(&x);
    shard_batch_free(&y);
    shard_batch_free(&z);
    CHECK(shard_loader_open(&c, dir, 60, 1, 0, 2, &e) != 0 && strstr(e.msg, "fewer than one global batch"));
    /* a batch whose token offsets would not fit an int */
    CHECKF(shard_loader_open(&c, dir, 100000000, 1, 0, 1, &e) != 0 && strstr(e.msg, "2^31 tokens"), "%s", e.msg);
    free(expect);
    free(seen);
    shard_batch_free(&ba);
    shard_batch_free(&bb);
    shard_loader_close(&a);
    shard_loader_close(&b);
    free_ref(ref, N);
}

int main(void) {
    const char *dir = sr_test_tmpdir("test_shards");
    char d1[600], d2[600], d3[600], d4[600], d5[600];
    snprintf(d1, sizeof d1, "%s/rt", dir);
    snprintf(d2, sizeof d2, "%s/loader", dir);
    snprintf(d3, sizeof d3, "%s/headers", dir);
    snprintf(d4, sizeof d4, "%s/chunks", dir);
    snprintf(d5, sizeof d5, "%s/index", dir);
    test_pack();
    test_roundtrip(d1);
    test_loader(d2);
    test_hostile_headers(d3);
    test_crafted_chunks(d4);
    test_hostile_index(d5);
    return sr_test_done();
}
