/*
 * Token shards: writer and random-access reader (format in shards.h). The batch loader with
 * its seeded shuffle lives in shard_loader.c.
 *
 * The writer fills one raw chunk buffer (sequences back to back), compresses it into a zstd
 * frame when it reaches chunk_tokens, and keeps the compressed frames of the current shard
 * in memory; when the shard reaches shard_tokens, the file is written atomically in one go
 * (header, chunk table, frames), so a shard file on disk is always complete.
 * The reader reads each shard's header and table at open, and decompresses a chunk when a
 * sequence in it is asked for (a small cache of decompressed chunks serves neighbours).
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

#include "../common/fileio.h"

static int host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static void put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p) {
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

void shard_seq_free(ShardSeq *s) {
    free(s->tokens);
    free(s->mask);
    free(s->doc_lens);
    memset(s, 0, sizeof *s);
}

/* ---- writer ----------------------------------------------------------------------------- */

typedef struct ChunkEntry {
    uint64_t offset, comp, raw;
    uint32_t first_seq, n_seqs;
} ChunkEntry;

typedef struct ShardInfo {
    char file[32];
    long long n_seqs, n_tokens, bytes;
} ShardInfo;

struct ShardWriter {
    char *dir;
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
    int n_chunks, cap_chunks;
    long long shard_seqs, shard_tokens;
    /* totals */
    ShardInfo *shards;
    int n_shards, cap_shards;
    long long n_seqs, n_tokens, n_loss, n_docs;
};

static void grow(uint8_t **p, size_t *cap, size_t need) {
    if (need <= *cap) return;
    size_t c = *cap ? *cap : 1 << 16;
    while (c < need) c *= 2;
    *p = sr_realloc(*p, c);
    *cap = c;
}

/* removes index.json and shard_*.bin left by an earlier run */
static int clean_dir(const char *dir, SrError *err) {
    char *idx = sr_path_join(dir, "index.json");
    if (unlink(idx) != 0 && errno != ENOENT) {
        sr_fail(err, "%s: cannot remove (%s)", idx, strerror(errno));
        free(idx);
        return -1;
    }
    free(idx);
    DIR *d = opendir(dir);
    if (!d) return sr_fail(err, "%s: cannot list (%s)", dir, strerror(errno));
    struct dirent *e;
    int rc = 0;
    while ((e = readdir(d))) {
        size_t n = strlen(e->d_name);
        if (strncmp(e->d_name, "shard_", 6) == 0 && n > 4 && strcmp(e->d_name + n - 4, ".bin") == 0) {
            char *p = sr_path_join(dir, e->d_name);
            if (unlink(p) != 0) rc = sr_fail(err, "%s: cannot remove (%s)", p, strerror(errno));
            free(p);
        }
    }
    closedir(d);
    return rc;
}

int shard_writer_open(ShardWriter **out, const char *dir, const ShardWriterOptions *opt, SrError *err) {
    *out = NULL;
    if (!host_is_little_endian()) return sr_fail(err, "shards: big-endian hosts are not supported");
    if (opt->max_length < 2) return sr_fail(err, "shards: max_length must be >= 2 (got %d)", opt->max_length);
    if (sr_mkdir_p(dir, err) || clean_dir(dir, err)) return -1;
    ShardWriter *w = sr_calloc(1, sizeof *w);
    w->dir = sr_strdup(dir);
    w->opt = *opt;
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
    grow(&w->frames, &w->frames_cap, w->frames_len + bound);
    size_t c = ZSTD_compress2(w->cctx, w->frames + w->frames_len, bound, w->raw, w->raw_len);
    SR_ASSERT(!ZSTD_isError(c));
    if (w->n_chunks == w->cap_chunks) {
        w->cap_chunks = w->cap_chunks ? 2 * w->cap_chunks : 64;
        w->chunks = sr_realloc(w->chunks, (size_t)w->cap_chunks * sizeof(ChunkEntry));
    }
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
    for (int i = 0; i < w->n_chunks; i++) {
        uint8_t *e = h + SHARD_HEADER_BYTES + (size_t)i * SHARD_CHUNK_ENTRY_BYTES;
        put_u64(e, head + w->chunks[i].offset);
        put_u64(e + 8, w->chunks[i].comp);
        put_u64(e + 16, w->chunks[i].raw);
        put_u32(e + 24, w->chunks[i].first_seq);
        put_u32(e + 28, w->chunks[i].n_seqs);
    }
    if (w->n_shards == w->cap_shards) {
        w->cap_shards = w->cap_shards ? 2 * w->cap_shards : 8;
        w->shards = sr_realloc(w->shards, (size_t)w->cap_shards * sizeof(ShardInfo));
    }
    ShardInfo *si = &w->shards[w->n_shards];
    snprintf(si->file, sizeof si->file, "shard_%05d.bin", w->n_shards);
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
    size_t bytes = 8 + 4 * (size_t)n_docs + 5 * (size_t)n;
    grow(&w->raw, &w->raw_cap, w->raw_len + bytes);
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
    if (w->shard_tokens >= w->opt.shard_tokens) return close_shard(w, err);
    return 0;
}

static void free_writer(ShardWriter *w) {
    if (w->cctx) ZSTD_freeCCtx(w->cctx);
    free(w->raw);
    free(w->frames);
    free(w->chunks);
    free(w->shards);
    free(w->dir);
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
    cJSON_AddBoolToObject(idx, "completion_only_loss", w->opt.completion_only_loss);
    cJSON *arr = cJSON_AddArrayToObject(idx, "shards");
    for (int i = 0; i < w->n_shards; i++) {
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
    int rc = sr_write_file_atomic(path, txt, n + 1, err);
    free(path);
    free(txt);
    free_writer(w);
    return rc;
}

/* ---- reader ------------------------------------------------------------------------------- */

typedef struct ShardFile {
    char *path;
    int fd;
    long long first_seq, n_seqs;
    int n_chunks;
    ChunkEntry *chunks;
} ShardFile;

#define CACHE_SLOTS 4

typedef struct CachedChunk {
    int shard, chunk;        /* -1: empty */
    uint8_t *data;
    size_t len, cap;
    size_t *seq_off;         /* byte offset of each sequence in data */
    int n_seqs, cap_seqs;
    unsigned long long used; /* LRU clock */
} CachedChunk;

struct ShardSet {
    char *dir;
    cJSON *index;
    int n_files;
    ShardFile *files;
    long long n_seqs;
    int max_length, vocab_size;
    ZSTD_DCtx *dctx;
    CachedChunk cache[CACHE_SLOTS];
    unsigned long long clock;
};

static int open_shard_file(ShardSet *s, ShardFile *f, const char *name, long long expect_seqs,
                           SrError *err) {
    f->path = sr_path_join(s->dir, name);
    f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
    if (f->fd < 0) return sr_fail(err, "%s: cannot open (%s)", f->path, strerror(errno));
    uint8_t h[SHARD_HEADER_BYTES];
    struct stat sb;
    if (fstat(f->fd, &sb) != 0) return sr_fail(err, "%s: cannot stat (%s)", f->path, strerror(errno));
    if (pread(f->fd, h, sizeof h, 0) != (ssize_t)sizeof h)
        return sr_fail(err, "%s: too short for a shard header", f->path);
    if (memcmp(h, SHARD_MAGIC, 8) != 0) return sr_fail(err, "%s: not a splitreason shard (bad magic)", f->path);
    if (get_u32(h + 8) != SHARD_VERSION)
        return sr_fail(err, "%s: shard version %u (this build reads %d)", f->path, get_u32(h + 8), SHARD_VERSION);
    if ((int)get_u32(h + 12) != s->max_length || (int)get_u32(h + 16) != s->vocab_size)
        return sr_fail(err, "%s: max_length/vocab_size (%u, %u) differ from index.json (%d, %d)",
                       f->path, get_u32(h + 12), get_u32(h + 16), s->max_length, s->vocab_size);
    f->n_seqs = (long long)get_u64(h + 24);
    f->n_chunks = (int)get_u32(h + 40);
    if (f->n_seqs != expect_seqs)
        return sr_fail(err, "%s: holds %lld sequences, index.json says %lld", f->path, f->n_seqs, expect_seqs);
    size_t tb = (size_t)f->n_chunks * SHARD_CHUNK_ENTRY_BYTES;
    if ((long long)(SHARD_HEADER_BYTES + tb) > (long long)sb.st_size)
        return sr_fail(err, "%s: chunk table exceeds the file", f->path);
    uint8_t *t = sr_malloc(tb ? tb : 1);
    if (tb && pread(f->fd, t, tb, SHARD_HEADER_BYTES) != (ssize_t)tb) {
        free(t);
        return sr_fail(err, "%s: cannot read the chunk table", f->path);
    }
    f->chunks = sr_calloc((size_t)(f->n_chunks ? f->n_chunks : 1), sizeof(ChunkEntry));
    long long seqs = 0;
    for (int i = 0; i < f->n_chunks; i++) {
        const uint8_t *e = t + (size_t)i * SHARD_CHUNK_ENTRY_BYTES;
        ChunkEntry c = {get_u64(e), get_u64(e + 8), get_u64(e + 16), get_u32(e + 24), get_u32(e + 28)};
        if (c.offset + c.comp > (uint64_t)sb.st_size || c.first_seq != seqs || c.n_seqs == 0) {
            free(t);
            return sr_fail(err, "%s: chunk %d: bad table entry (offset %llu, %llu bytes, first %u)",
                           f->path, i, (unsigned long long)c.offset, (unsigned long long)c.comp, c.first_seq);
        }
        seqs += c.n_seqs;
        f->chunks[i] = c;
    }
    free(t);
    if (seqs != f->n_seqs) return sr_fail(err, "%s: chunks hold %lld sequences, header says %lld", f->path, seqs, f->n_seqs);
    return 0;
}

int shardset_open(ShardSet **out, const char *dir, SrError *err) {
    *out = NULL;
    if (!host_is_little_endian()) return sr_fail(err, "shards: big-endian hosts are not supported");
    ShardSet *s = sr_calloc(1, sizeof *s);
    s->dir = sr_strdup(dir);
    for (int i = 0; i < CACHE_SLOTS; i++) s->cache[i].shard = -1;
    char *ipath = sr_path_join(dir, "index.json");
    char *txt = NULL;
    int rc = sr_read_file(ipath, &txt, NULL, err);
    if (!rc) {
        s->index = cJSON_Parse(txt);
        if (!s->index) rc = sr_fail(err, "%s: not valid JSON", ipath);
    }
    free(txt);
    const cJSON *fmt = rc ? NULL : cJSON_GetObjectItemCaseSensitive(s->index, "format");
    const cJSON *shards = rc ? NULL : cJSON_GetObjectItemCaseSensitive(s->index, "shards");
    const cJSON *ml = rc ? NULL : cJSON_GetObjectItemCaseSensitive(s->index, "max_length");
    const cJSON *vs = rc ? NULL : cJSON_GetObjectItemCaseSensitive(s->index, "vocab_size");
    if (!rc && (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "splitreason-shards") != 0 ||
                !cJSON_IsArray(shards) || !cJSON_IsNumber(ml) || !cJSON_IsNumber(vs)))
        rc = sr_fail(err, "%s: not a splitreason shard index (format, shards, max_length, vocab_size)", ipath);
    if (!rc) {
        s->max_length = ml->valueint;
        s->vocab_size = vs->valueint;
        s->n_files = cJSON_GetArraySize(shards);
        s->files = sr_calloc((size_t)(s->n_files ? s->n_files : 1), sizeof(ShardFile));
        for (int i = 0; i < s->n_files; i++) s->files[i].fd = -1;
        for (int i = 0; i < s->n_files && !rc; i++) {
            const cJSON *e = cJSON_GetArrayItem(shards, i);
            const cJSON *file = cJSON_GetObjectItemCaseSensitive(e, "file");
            const cJSON *ns = cJSON_GetObjectItemCaseSensitive(e, "n_sequences");
            if (!cJSON_IsString(file) || !cJSON_IsNumber(ns) || strchr(file->valuestring, '/')) {
                rc = sr_fail(err, "%s: shards[%d] needs a plain \"file\" name and \"n_sequences\"", ipath, i);
                break;
            }
            s->files[i].first_seq = s->n_seqs;
            rc = open_shard_file(s, &s->files[i], file->valuestring, (long long)ns->valuedouble, err);
            s->n_seqs += s->files[i].n_seqs;
        }
    }
    free(ipath);
    if (rc) {
        shardset_close(s);
        return -1;
    }
    s->dctx = ZSTD_createDCtx();
    SR_ASSERT(s->dctx);
    *out = s;
    return 0;
}

void shardset_close(ShardSet *s) {
    if (!s) return;
    for (int i = 0; i < s->n_files; i++) {
        if (s->files[i].fd >= 0) close(s->files[i].fd);
        free(s->files[i].path);
        free(s->files[i].chunks);
    }
    for (int i = 0; i < CACHE_SLOTS; i++) {
        free(s->cache[i].data);
        free(s->cache[i].seq_off);
    }
    if (s->dctx) ZSTD_freeDCtx(s->dctx);
    cJSON_Delete(s->index);
    free(s->files);
    free(s->dir);
    free(s);
}

long long shardset_num_sequences(const ShardSet *s) { return s->n_seqs; }
int shardset_max_length(const ShardSet *s) { return s->max_length; }
const cJSON *shardset_index(const ShardSet *s) { return s->index; }

/* decompresses (shard, chunk) into a cache slot, checking every sequence record fits */
static CachedChunk *load_chunk(ShardSet *s, int fi, int ci, SrError *err) {
    CachedChunk *slot = NULL;
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (s->cache[i].shard == fi && s->cache[i].chunk == ci) {
            s->cache[i].used = ++s->clock;
            return &s->cache[i];
        }
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (!slot || s->cache[i].used < slot->used) slot = &s->cache[i];
    ShardFile *f = &s->files[fi];
    const ChunkEntry *c = &f->chunks[ci];
    slot->shard = -1;
    uint8_t *comp = sr_malloc(c->comp ? c->comp : 1);
    if (pread(f->fd, comp, c->comp, (off_t)c->offset) != (ssize_t)c->comp) {
        free(comp);
        sr_fail(err, "%s: chunk %d: short read", f->path, ci);
        return NULL;
    }
    if (slot->cap < c->raw) {
        slot->data = sr_realloc(slot->data, c->raw ? c->raw : 1);
        slot->cap = c->raw;
    }
    size_t got = ZSTD_decompressDCtx(s->dctx, slot->data, c->raw, comp, c->comp);
    free(comp);
    if (ZSTD_isError(got) || got != c->raw) {
        sr_fail(err, "%s: chunk %d: %s", f->path, ci,
                ZSTD_isError(got) ? ZSTD_getErrorName(got) : "decompressed size differs from the table");
        return NULL;
    }
    slot->len = got;
    if (slot->cap_seqs < (int)c->n_seqs) {
        slot->cap_seqs = (int)c->n_seqs;
        slot->seq_off = sr_realloc(slot->seq_off, (size_t)slot->cap_seqs * sizeof(size_t));
    }
    size_t off = 0;
    for (uint32_t i = 0; i < c->n_seqs; i++) {
        if (off + 8 > got) goto bad;
        uint64_t n = get_u32(slot->data + off), nd = get_u32(slot->data + off + 4);
        uint64_t rec = 8 + 4 * nd + 5 * n;
        if (n == 0 || n > (uint64_t)s->max_length || nd == 0 || nd > n || off + rec > got) goto bad;
        slot->seq_off[i] = off;
        off += rec;
    }
    if (off != got) goto bad;
    slot->n_seqs = (int)c->n_seqs;
    slot->shard = fi;
    slot->chunk = ci;
    slot->used = ++s->clock;
    return slot;
bad:
    sr_fail(err, "%s: chunk %d: sequence records do not fit the chunk (corrupt shard)", f->path, ci);
    return NULL;
}

int shardset_read(ShardSet *s, long long i, ShardSeq *seq, SrError *err) {
    if (i < 0 || i >= s->n_seqs)
        return sr_fail(err, "%s: sequence %lld out of range (%lld sequences)", s->dir, i, s->n_seqs);
    int fi = 0;
    while (i >= s->files[fi].first_seq + s->files[fi].n_seqs) fi++;
    ShardFile *f = &s->files[fi];
    long long local = i - f->first_seq;
    int lo = 0, hi = f->n_chunks - 1; /* last chunk whose first_seq <= local */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if ((long long)f->chunks[mid].first_seq <= local) lo = mid;
        else hi = mid - 1;
    }
    CachedChunk *c = load_chunk(s, fi, lo, err);
    if (!c) return -1;
    const uint8_t *p = c->data + c->seq_off[local - f->chunks[lo].first_seq];
    int n = (int)get_u32(p), nd = (int)get_u32(p + 4);
    if (seq->cap_tokens < n) {
        seq->cap_tokens = n;
        seq->tokens = sr_realloc(seq->tokens, (size_t)n * 4);
        seq->mask = sr_realloc(seq->mask, (size_t)n);
    }
    if (seq->cap_docs < nd) {
        seq->cap_docs = nd;
        seq->doc_lens = sr_realloc(seq->doc_lens, (size_t)nd * 4);
    }
    p += 8;
    long long sum = 0;
    for (int d = 0; d < nd; d++, p += 4) sum += (seq->doc_lens[d] = get_u32(p));
    if (sum != n) return sr_fail(err, "%s: sequence %lld: documents hold %lld tokens, the sequence %d", f->path, i, sum, n);
    memcpy(seq->tokens, p, (size_t)n * 4);
    memcpy(seq->mask, p + (size_t)n * 4, (size_t)n);
    for (int k = 0; k < n; k++)
        if (seq->tokens[k] >= (uint32_t)s->vocab_size)
            return sr_fail(err, "%s: sequence %lld: token id %u >= vocab_size %d", f->path, i, seq->tokens[k], s->vocab_size);
    seq->n_tokens = n;
    seq->n_docs = nd;
    return 0;
}
