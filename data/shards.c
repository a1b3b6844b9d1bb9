/*
 * Token shards: the writer (format in shards.h). The reader is shard_reader.c, the batch
 * loader with its seeded shuffle shard_loader.c.
 *
 * The writer fills one raw chunk buffer (sequences back to back), compresses it into a zstd
 * frame when it reaches chunk_tokens, and keeps the compressed frames of the current shard
 * in memory; when the shard reaches shard_tokens, the file is written atomically in one go
 * (header, chunk table, frames), so a shard file on disk is always complete.
 */
#include "shards.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "../common/buf.h"
#include "../common/fileio.h"
#include "shard_format.h"

#define put_u32 shard_put_u32
#define put_u64 shard_put_u64

/* ---- writer ----------------------------------------------------------------------------- */

typedef struct ShardInfo {
    char file[32];
    long long n_seqs, n_tokens, bytes;
} ShardInfo;

struct ShardWriter {
    SrAtomicDir out; /* the set is written into out.tmp and swapped in whole at the end */
    char *dir;       /* = out.tmp */
    ShardWriterOptions opt;
    ZSTD_CCtx *cctx;
    /* the open raw chunk */
    uint8_t *raw;
    size_t raw_len, raw_cap;
    long long raw_tokens;
    uint32_t raw_seqs;
    /* compressed frames of the current shard */
    uint8_t *frames;
    size_t frames_len, frames_cap;
    ChunkEntry *chunks;
    size_t n_chunks, cap_chunks;
    long long shard_seqs, shard_tokens;
    /* totals */
    ShardInfo *shards;
    size_t n_shards, cap_shards;
    long long n_seqs, n_tokens, n_loss, n_docs;
    long long max_id; /* -1: no token yet */
};

/* An existing output directory is replaced as a whole: only when it is empty or a shard set
 * (it has index.json), so that pointing --output at another folder cannot delete it. */
static int check_replaceable(const char *dir, SrError *err) {
    DIR *d = opendir(dir);
    if (!d) return errno == ENOENT ? 0 : sr_fail(err, "%s: cannot list (%s)", dir, strerror(errno));
    int entries = 0, has_index = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, "..")) continue;
        entries++;
        if (!strcmp(e->d_name, "index.json")) has_index = 1;
    }
    closedir(d);
    if (entries > 0 && !has_index)
        return sr_fail(err, "%s: exists and is not a shard set (no index.json): refusing to replace it", dir);
    return 0;
}

int shard_writer_open(ShardWriter **out, const char *dir, const ShardWriterOptions *opt, SrError *err) {
    *out = NULL;
    if (!shard_host_is_little_endian()) return sr_fail(err, "shards: big-endian hosts are not supported");
    if (opt->max_length < 2 || opt->max_length > SHARD_MAX_LENGTH)
        return sr_fail(err, "shards: max_length must be in [2, %d] (got %d)", SHARD_MAX_LENGTH, opt->max_length);
    if (opt->vocab_size < 1) return sr_fail(err, "shards: vocab_size must be >= 1 (got %d)", opt->vocab_size);
    if (check_replaceable(dir, err)) return -1;
    ShardWriter *w = sr_calloc(1, sizeof *w);
    if (sr_atomic_dir_open(&w->out, dir, err)) {
        free(w);
        return -1;
    }
    w->dir = sr_strdup(w->out.tmp);
    w->opt = *opt;
    w->max_id = -1;
    if (w->opt.shard_tokens <= 0) w->opt.shard_tokens = 64LL << 20;
    if (w->opt.chunk_tokens <= 0) w->opt.chunk_tokens = 256LL << 10;
    if (w->opt.zstd_level == 0) w->opt.zstd_level = 3;
    w->cctx = ZSTD_createCCtx();
    SR_ASSERT(w->cctx);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_compressionLevel, w->opt.zstd_level);
    ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_checksumFlag, 1);
    *out = w;
    return 0;
}

static void close_chunk(ShardWriter *w) {
    if (w->raw_seqs == 0) return;
    size_t bound = ZSTD_compressBound(w->raw_len);
    w->frames = sr_array_reserve(w->frames, &w->frames_cap, w->frames_len + bound, 1);
    size_t c = ZSTD_compress2(w->cctx, w->frames + w->frames_len, bound, w->raw, w->raw_len);
    SR_ASSERT(!ZSTD_isError(c));
    w->chunks = sr_array_reserve(w->chunks, &w->cap_chunks, w->n_chunks + 1, sizeof *w->chunks);
    w->chunks[w->n_chunks++] = (ChunkEntry){w->frames_len, c, w->raw_len,
                                            (uint32_t)(w->shard_seqs - w->raw_seqs), w->raw_seqs};
    w->frames_len += c;
    w->raw_len = 0;
    w->raw_tokens = 0;
    w->raw_seqs = 0;
}

static int close_shard(ShardWriter *w, SrError *err) {
    close_chunk(w);
    if (w->n_chunks == 0) return 0;
    size_t table = (size_t)w->n_chunks * SHARD_CHUNK_ENTRY_BYTES;
    size_t head = SHARD_HEADER_BYTES + table;
    uint8_t *h = sr_calloc(1, head);
    memcpy(h, SHARD_MAGIC, 8);
    put_u32(h + 8, SHARD_VERSION);
    put_u32(h + 12, (uint32_t)w->opt.max_length);
    put_u32(h + 16, (uint32_t)w->opt.vocab_size);
    put_u32(h + 20, w->opt.completion_only_loss ? 1u : 0u);
    put_u64(h + 24, (uint64_t)w->shard_seqs);
    put_u64(h + 32, (uint64_t)w->shard_tokens);
    put_u32(h + 40, (uint32_t)w->n_chunks);
    for (size_t i = 0; i < w->n_chunks; i++) {
        uint8_t *e = h + SHARD_HEADER_BYTES + i * SHARD_CHUNK_ENTRY_BYTES;
        put_u64(e, head + w->chunks[i].offset);
        put_u64(e + 8, w->chunks[i].comp);
        put_u64(e + 16, w->chunks[i].raw);
        put_u32(e + 24, w->chunks[i].first_seq);
        put_u32(e + 28, w->chunks[i].n_seqs);
    }
    w->shards = sr_array_reserve(w->shards, &w->cap_shards, w->n_shards + 1, sizeof *w->shards);
    ShardInfo *si = &w->shards[w->n_shards];
    snprintf(si->file, sizeof si->file, "shard_%05zu.bin", w->n_shards);
    si->n_seqs = w->shard_seqs;
    si->n_tokens = w->shard_tokens;
    si->bytes = (long long)(head + w->frames_len);
    char *path = sr_path_join(w->dir, si->file);
    SrAtomicFile af;
    int rc = sr_atomic_open(&af, path, err);
    if (!rc) rc = sr_atomic_write(&af, h, head, err);
    if (!rc) rc = sr_atomic_write(&af, w->frames, w->frames_len, err);
    if (!rc) rc = sr_atomic_commit(&af, err);
    free(path);
    free(h);
    if (rc) return -1;
    w->n_shards++;
    w->n_chunks = 0;
    w->frames_len = 0;
    w->shard_seqs = w->shard_tokens = 0;
    return 0;
}

int shard_writer_add(ShardWriter *w, const int32_t *tokens, const uint8_t *mask, int n,
                     const int *doc_lens, int n_docs, SrError *err) {
    if (n < 1 || n > w->opt.max_length)
        return sr_fail(err, "shards: a sequence of %d tokens (max_length %d)", n, w->opt.max_length);
    long long sum = 0;
    for (int d = 0; d < n_docs; d++) {
        if (doc_lens[d] < 1) return sr_fail(err, "shards: empty document in a sequence");
        sum += doc_lens[d];
    }
    if (sum != n) return sr_fail(err, "shards: documents hold %lld tokens, the sequence %d", sum, n);
    for (int i = 0; i < n; i++)
        if (tokens[i] < 0 || tokens[i] >= w->opt.vocab_size)
            return sr_fail(err, "shards: token id %d out of range [0, %d)", tokens[i], w->opt.vocab_size);
    size_t bytes = SHARD_RECORD_BYTES(n, n_docs);
    /* a chunk stays within what the reader accepts (and its sequence count within uint32) */
    if (w->raw_seqs > 0 && (w->raw_len + bytes > SHARD_MAX_CHUNK_BYTES || w->raw_seqs == UINT32_MAX))
        close_chunk(w);
    w->raw = sr_array_reserve(w->raw, &w->raw_cap, w->raw_len + bytes, 1);
    uint8_t *p = w->raw + w->raw_len;
    put_u32(p, (uint32_t)n);
    put_u32(p + 4, (uint32_t)n_docs);
    p += 8;
    int off = 0;
    for (int d = 0; d < n_docs; d++, p += 4) {
        put_u32(p, (uint32_t)doc_lens[d]);
        /* the first token of a document has nothing to be predicted from */
        for (int i = off + 1; i < off + doc_lens[d]; i++) w->n_loss += mask[i] != 0;
        off += doc_lens[d];
    }
    memcpy(p, tokens, 4 * (size_t)n); /* little-endian host (checked at open) */
    for (int i = 0; i < n; i++)
        if (tokens[i] > w->max_id) w->max_id = tokens[i];
    p += 4 * (size_t)n;
    off = 0;
    for (int d = 0; d < n_docs; d++) {
        for (int i = 0; i < doc_lens[d]; i++) p[off + i] = (i > 0 && mask[off + i]) ? 1 : 0;
        off += doc_lens[d];
    }
    w->raw_len += bytes;
    w->raw_tokens += n;
    w->raw_seqs++;
    w->shard_seqs++;
    w->shard_tokens += n;
    w->n_seqs++;
    w->n_tokens += n;
    w->n_docs += n_docs;
    if (w->raw_tokens >= w->opt.chunk_tokens) close_chunk(w);
    /* the chunk table numbers sequences and chunks with uint32 */
    if (w->shard_tokens >= w->opt.shard_tokens || w->shard_seqs >= UINT32_MAX || w->n_chunks >= UINT32_MAX - 1)
        return close_shard(w, err);
    return 0;
}

static void free_writer(ShardWriter *w) {
    if (w->cctx) ZSTD_freeCCtx(w->cctx);
    free(w->raw);
    free(w->frames);
    free(w->chunks);
    free(w->shards);
    free(w->dir);
    sr_atomic_dir_abort(&w->out); /* removes the unfinished set; only frees after a commit */
    free(w);
}

void shard_writer_abort(ShardWriter *w) {
    if (w) free_writer(w);
}

int shard_writer_finish(ShardWriter *w, const cJSON *extra, SrError *err) {
    if (close_shard(w, err)) {
        free_writer(w);
        return -1;
    }
    cJSON *idx = cJSON_CreateObject();
    cJSON_AddStringToObject(idx, "format", "splitreason-shards");
    cJSON_AddNumberToObject(idx, "version", SHARD_VERSION);
    cJSON_AddNumberToObject(idx, "max_length", w->opt.max_length);
    cJSON_AddNumberToObject(idx, "vocab_size", w->opt.vocab_size);
    cJSON_AddNumberToObject(idx, "n_sequences", (double)w->n_seqs);
    cJSON_AddNumberToObject(idx, "n_tokens", (double)w->n_tokens);
    cJSON_AddNumberToObject(idx, "n_loss_tokens", (double)w->n_loss);
    cJSON_AddNumberToObject(idx, "n_documents", (double)w->n_docs);
    cJSON_AddNumberToObject(idx, "max_token_id", (double)w->max_id);
    cJSON_AddBoolToObject(idx, "completion_only_loss", w->opt.completion_only_loss);
    cJSON *arr = cJSON_AddArrayToObject(idx, "shards");
    for (size_t i = 0; i < w->n_shards; i++) {
        cJSON *s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "file", w->shards[i].file);
        cJSON_AddNumberToObject(s, "n_sequences", (double)w->shards[i].n_seqs);
        cJSON_AddNumberToObject(s, "n_tokens", (double)w->shards[i].n_tokens);
        cJSON_AddNumberToObject(s, "bytes", (double)w->shards[i].bytes);
        cJSON_AddItemToArray(arr, s);
    }
    for (const cJSON *e = extra ? extra->child : NULL; e; e = e->next)
        if (!cJSON_GetObjectItemCaseSensitive(idx, e->string))
            cJSON_AddItemToObject(idx, e->string, cJSON_Duplicate(e, 1));
    char *txt = cJSON_Print(idx);
    cJSON_Delete(idx);
    char *path = sr_path_join(w->dir, "index.json");
    size_t n = strlen(txt);
    txt = sr_realloc(txt, n + 2);
    txt[n] = '\n';
    txt[n + 1] = '\0';
    /* index.json last, then the whole set replaces the old one (kept until the new is in) */
    int rc = sr_write_file_atomic(path, txt, n + 1, err);
    if (!rc) rc = sr_atomic_dir_commit(&w->out, err);
    free(path);
    free(txt);
    free_writer(w);
    return rc;
}

