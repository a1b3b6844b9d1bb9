/*
 * Token shards: the random-access reader (format and what is checked in shards.h).
 *
 * Opening a set parses index.json strictly, reads each shard's header and chunk table, and
 * then decodes every chunk once, so that a shard that lies anywhere (a header count, a table
 * entry, a document length, an id past the vocabulary deep inside the last chunk) is refused
 * before training starts, in one line naming the file. Every size read from a file is checked
 * against what the file (or the limits of shards.h) can hold BEFORE it sizes an allocation:
 * 64-bit arithmetic throughout, no cast to int of a value that was not range-checked first.
 *
 * After the open, a sequence is read by decompressing its chunk into one of a few cache slots
 * (neighbours are served from there); a chunk decoded again is checked again.
 * A shard's bytes come from a file (pread) or from memory (shardset_open_mem: the same code,
 * for tests and the fuzzers).
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "../common/buf.h"
#include "../common/fileio.h"
#include "../common/json.h"
#include "shard_format.h"
#include "shards.h"

#define get_u32 shard_get_u32
#define get_u64 shard_get_u64

void shard_seq_free(ShardSeq *s) {
    free(s->tokens);
    free(s->mask);
    free(s->doc_lens);
    memset(s, 0, sizeof *s);
}

typedef struct ShardFile {
    const char *name;       /* the index's "file" (a string of s->index) */
    char *path;             /* for messages */
    int fd;                 /* -1 when the bytes are in memory (or not open) */
    const uint8_t *mem;
    uint64_t size;
    long long first_seq, n_seqs, n_tokens;
    uint32_t n_chunks;
    ChunkEntry *chunks;
} ShardFile;

#define CACHE_SLOTS 4

typedef struct CachedChunk {
    int shard;               /* -1: empty */
    uint32_t chunk;
    uint8_t *data;
    size_t len, cap;
    size_t *seq_off;         /* byte offset of each sequence in data */
    size_t cap_seqs;
    unsigned long long used; /* LRU clock */
} CachedChunk;

/* what the records of a chunk hold (the open compares the sums with headers and index) */
typedef struct ChunkStats {
    uint64_t tokens, docs, loss;
    long long max_id;
} ChunkStats;

struct ShardSet {
    char *dir;              /* the directory (or the label of an in-memory set) */
    char *index_path;
    cJSON *index;
    int n_files;
    ShardFile *files;
    long long n_seqs;
    int max_length, vocab_size, completion_only_loss;
    ZSTD_DCtx *dctx;
    uint8_t *comp;          /* a chunk's compressed bytes (files only) */
    size_t cap_comp;
    CachedChunk cache[CACHE_SLOTS];
    unsigned long long clock;
};

/* ---- bytes of a shard ---------------------------------------------------------------------- */

/* reads n bytes at off (the caller checked off + n <= size) */
static int shard_pread(const ShardFile *f, void *buf, size_t n, uint64_t off, SrError *err) {
    if (f->mem) {
        memcpy(buf, f->mem + off, n);
        return 0;
    }
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(f->fd, (uint8_t *)buf + got, n - got, (off_t)(off + got));
        if (r < 0 && errno == EINTR) continue;
        if (r <= 0) return sr_fail(err, "%s: read error at byte %llu (%s)", f->path,
                                   (unsigned long long)(off + got), r < 0 ? strerror(errno) : "the file shrank");
        got += (size_t)r;
    }
    return 0;
}

/* ---- index.json ------------------------------------------------------------------------------ */

/* obj[key] as an integer in [lo, hi]; absent is an error unless *out holds a default and
 * optional is set */
static int json_int(const cJSON *obj, const char *key, const char *what, long long lo, long long hi,
                    int optional, long long *out, const char *path, SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v && optional) return 0;
    if (!v) return sr_fail(err, "%s: %s%s is missing", path, what, key);
    double d = cJSON_IsNumber(v) ? v->valuedouble : NAN;
    if (!(d >= (double)lo && d <= (double)hi) || d != floor(d)) {
        char *s = cJSON_PrintUnformatted(v);
        sr_fail(err, "%s: %s%s must be an integer in [%lld, %lld] (got %.40s)", path, what, key, lo, hi,
                s ? s : "?");
        free(s);
        return -1;
    }
    *out = (long long)d;
    return 0;
}

/* a plain file name inside the directory: no '/', not "", "." or ".." */
static int plain_name(const char *s) {
    return s[0] && !strchr(s, '/') && strcmp(s, ".") != 0 && strcmp(s, "..") != 0 && strlen(s) < 256;
}

/* ---- a shard's header and chunk table -------------------------------------------------------- */

static int bad_entry(const ShardFile *f, uint32_t i, const char *what, SrError *err) {
    return sr_fail(err, "%s: chunk table entry %u: %s (corrupt shard)", f->path, i, what);
}

/* Reads and checks the header and chunk table of f (its size is known) against the index. */
static int open_shard_file(ShardSet *s, ShardFile *f, long long expect_seqs, long long expect_tokens,
                           SrError *err) {
    uint8_t h[SHARD_HEADER_BYTES];
    if (f->size < SHARD_HEADER_BYTES)
        return sr_fail(err, "%s: %llu bytes, too short for a shard header (%d)", f->path,
                       (unsigned long long)f->size, SHARD_HEADER_BYTES);
    if (shard_pread(f, h, sizeof h, 0, err)) return -1;
    if (memcmp(h, SHARD_MAGIC, 8) != 0) return sr_fail(err, "%s: not a splitreason shard (bad magic)", f->path);
    if (get_u32(h + 8) != SHARD_VERSION)
        return sr_fail(err, "%s: shard version %u (this build reads %d)", f->path, get_u32(h + 8), SHARD_VERSION);
    uint32_t ml = get_u32(h + 12), vs = get_u32(h + 16), flags = get_u32(h + 20);
    if (ml != (uint32_t)s->max_length || vs != (uint32_t)s->vocab_size)
        return sr_fail(err, "%s: max_length/vocab_size (%u, %u) differ from index.json (%d, %d)", f->path, ml, vs,
                       s->max_length, s->vocab_size);
    if (flags > 1) return sr_fail(err, "%s: unknown header flags 0x%x", f->path, flags);
    if ((int)flags != s->completion_only_loss)
        return sr_fail(err, "%s: completion_only_loss %s in the header, %s in index.json", f->path,
                       flags ? "true" : "false", s->completion_only_loss ? "true" : "false");
    for (int i = 44; i < SHARD_HEADER_BYTES; i++)
        if (h[i]) return sr_fail(err, "%s: reserved header bytes are not zero (corrupt shard)", f->path);
    uint64_t n_seqs = get_u64(h + 24), n_tokens = get_u64(h + 32);
    uint32_t n_chunks = get_u32(h + 40);
    if (n_seqs != (uint64_t)expect_seqs)
        return sr_fail(err, "%s: holds %llu sequences, index.json says %lld", f->path, (unsigned long long)n_seqs,
                       expect_seqs);
    if (n_tokens != (uint64_t)expect_tokens)
        return sr_fail(err, "%s: holds %llu tokens, index.json says %lld", f->path, (unsigned long long)n_tokens,
                       expect_tokens);
    /* each sequence holds 1..max_length tokens; each chunk at least one sequence */
    if (n_seqs == 0 || n_chunks == 0 || n_chunks > n_seqs || n_tokens < n_seqs ||
        n_tokens > n_seqs * (uint64_t)s->max_length) /* n_seqs < 2^32 (index), max_length <= 2^22 */
        return sr_fail(err, "%s: header counts do not fit together (%llu sequences, %llu tokens, %u chunks, "
                            "max_length %d)",
                       f->path, (unsigned long long)n_seqs, (unsigned long long)n_tokens, n_chunks, s->max_length);
    uint64_t room = (f->size - SHARD_HEADER_BYTES) / SHARD_CHUNK_ENTRY_BYTES;
    if (n_chunks > room)
        return sr_fail(err, "%s: a chunk table of %u entries does not fit the file (%llu bytes)", f->path, n_chunks,
                       (unsigned long long)f->size);
    size_t tb = (size_t)n_chunks * SHARD_CHUNK_ENTRY_BYTES; /* < file size */
    uint8_t *t = sr_malloc(tb);
    if (shard_pread(f, t, tb, SHARD_HEADER_BYTES, err)) {
        free(t);
        return -1;
    }
    f->chunks = sr_malloc((size_t)n_chunks * sizeof(ChunkEntry));
    f->n_chunks = n_chunks;
    f->n_seqs = (long long)n_seqs;
    f->n_tokens = (long long)n_tokens;
    /* chunks lie back to back from the end of the table to the end of the file */
    uint64_t at = SHARD_HEADER_BYTES + (uint64_t)tb, seqs = 0;
    int rc = 0;
    for (uint32_t i = 0; i < n_chunks && !rc; i++) {
        const uint8_t *e = t + (size_t)i * SHARD_CHUNK_ENTRY_BYTES;
        ChunkEntry c = {get_u64(e), get_u64(e + 8), get_u64(e + 16), get_u32(e + 24), get_u32(e + 28)};
        char what[160];
        if (c.offset != at) {
            snprintf(what, sizeof what, "offset %llu, expected %llu (the chunks lie back to back)",
                     (unsigned long long)c.offset, (unsigned long long)at);
            rc = bad_entry(f, i, what, err);
        } else if (c.comp == 0 || c.comp > f->size - at) {
            snprintf(what, sizeof what, "%llu compressed bytes at offset %llu exceed the file (%llu bytes)",
                     (unsigned long long)c.comp, (unsigned long long)c.offset, (unsigned long long)f->size);
            rc = bad_entry(f, i, what, err);
        } else if (c.first_seq != seqs || c.n_seqs == 0 || c.n_seqs > n_seqs - seqs) {
            snprintf(what, sizeof what, "sequences %u..+%u, expected the next from %llu of %llu", c.first_seq,
                     c.n_seqs, (unsigned long long)seqs, (unsigned long long)n_seqs);
            rc = bad_entry(f, i, what, err);
        } else if (c.raw > SHARD_MAX_CHUNK_BYTES || c.raw < SHARD_RECORD_BYTES(1, 1) * c.n_seqs ||
                   c.raw > SHARD_RECORD_BYTES(s->max_length, s->max_length) * c.n_seqs) {
            snprintf(what, sizeof what, "%llu raw bytes for %u sequences (at most %u bytes a chunk)",
                     (unsigned long long)c.raw, c.n_seqs, SHARD_MAX_CHUNK_BYTES);
            rc = bad_entry(f, i, what, err);
        } else {
            f->chunks[i] = c;
            at += c.comp;
            seqs += c.n_seqs;
        }
    }
    free(t);
    if (rc) return -1;
    if (seqs != n_seqs)
        return sr_fail(err, "%s: the chunks hold %llu sequences, the header says %llu", f->path,
                       (unsigned long long)seqs, (unsigned long long)n_seqs);
    if (at != f->size)
        return sr_fail(err, "%s: %llu bytes after the last chunk (corrupt shard)", f->path,
                       (unsigned long long)(f->size - at));
    return 0;
}

/* ---- chunks ---------------------------------------------------------------------------------- */

/* Checks the sequence record at p[0, avail) (sequence `seq` of chunk ci); its length to *len. */
static int check_record(const ShardSet *s, const ShardFile *f, uint32_t ci, uint64_t seq, const uint8_t *p,
                        size_t avail, size_t *len, ChunkStats *st, SrError *err) {
#define BAD(...) (sr_fail(err, __VA_ARGS__), sr_fail_prefix(err, "%s: chunk %u, sequence %llu", f->path, ci, \
                                                           (unsigned long long)seq))
    if (avail < 8) return BAD("the record is cut off (corrupt shard)");
    uint32_t n = get_u32(p), nd = get_u32(p + 4);
    if (n == 0 || n > (uint32_t)s->max_length) return BAD("%u tokens (max_length %d)", n, s->max_length);
    if (nd == 0 || nd > n) return BAD("%u documents for %u tokens", nd, n);
    uint64_t rec = SHARD_RECORD_BYTES(n, nd);
    if (rec > avail) return BAD("a record of %llu bytes, %zu left in the chunk (corrupt shard)",
                                (unsigned long long)rec, avail);
    const uint8_t *docs = p + 8, *tok = docs + 4 * (size_t)nd, *mask = tok + 4 * (size_t)n;
    uint64_t sum = 0; /* <= n */
    for (uint32_t d = 0; d < nd; d++) {
        uint32_t l = get_u32(docs + 4 * (size_t)d);
        if (l == 0) return BAD("document %u is empty", d);
        if (l > n - sum) return BAD("the documents hold more than the sequence's %u tokens", n);
        sum += l;
    }
    if (sum != n) return BAD("the documents hold %llu tokens, the sequence %u", (unsigned long long)sum, n);
    sum = 0;
    for (uint32_t d = 0; d < nd; sum += get_u32(docs + 4 * (size_t)d), d++)
        if (mask[sum] != 0)
            return BAD("the first token of document %u is in the loss (it has nothing to be predicted from)", d);
    for (uint32_t i = 0; i < n; i++) {
        uint32_t id = get_u32(tok + 4 * (size_t)i);
        if (id >= (uint32_t)s->vocab_size)
            return BAD("token %u: id %u is not below vocab_size %d", i, id, s->vocab_size);
        if ((long long)id > st->max_id) st->max_id = id;
        if (mask[i] > 1) return BAD("token %u: loss mask %u (0 or 1)", i, mask[i]);
        st->loss += mask[i];
    }
    st->tokens += n;
    st->docs += nd;
    *len = (size_t)rec;
#undef BAD
    return 0;
}

/* Decompresses exactly one zstd frame of comp_n bytes into slot->data, which must come to
 * exactly raw bytes. The buffer grows with what the frame really produces (never sized by the
 * table alone), up to raw + 1 (one byte more is how a longer frame is caught); zstd's own
 * window is bounded by SHARD_MAX_CHUNK_BYTES (ZSTD_d_windowLogMax, set at open). */
static int decompress(ShardSet *s, const ShardFile *f, uint32_t ci, const uint8_t *comp, size_t comp_n,
                      size_t raw, CachedChunk *slot, SrError *err) {
    ZSTD_DCtx_reset(s->dctx, ZSTD_reset_session_only);
    ZSTD_inBuffer in = {comp, comp_n, 0};
    size_t have = 0, limit = raw + 1;
    for (;;) {
        size_t room = slot->cap < limit ? slot->cap : limit;
        if (have == room) { /* full: grow (have < limit here, else have > raw failed below) */
            size_t want = have ? 2 * have : comp_n * 4 + 4096;
            slot->data = sr_array_reserve(slot->data, &slot->cap, want < limit ? want : limit, 1);
            room = slot->cap < limit ? slot->cap : limit;
        }
        ZSTD_outBuffer out = {slot->data, room, have};
        size_t in_before = in.pos;
        size_t r = ZSTD_decompressStream(s->dctx, &out, &in);
        if (ZSTD_isError(r))
            return sr_fail(err, "%s: chunk %u: %s (corrupt shard)", f->path, ci, ZSTD_getErrorName(r));
        int progress = out.pos != have || in.pos != in_before;
        have = out.pos;
        if (have > raw)
            return sr_fail(err, "%s: chunk %u decompresses to more than the table's %zu bytes (corrupt shard)",
                           f->path, ci, raw);
        if (r == 0) break; /* the frame is complete */
        if (!progress || (in.pos == in.size && out.pos < out.size))
            return sr_fail(err, "%s: chunk %u: the zstd frame is cut off (corrupt shard)", f->path, ci);
    }
    if (in.pos != comp_n)
        return sr_fail(err, "%s: chunk %u: %zu bytes after its zstd frame (corrupt shard)", f->path, ci,
                       comp_n - in.pos);
    if (have != raw)
        return sr_fail(err, "%s: chunk %u decompresses to %zu bytes, the table says %zu (corrupt shard)", f->path,
                       ci, have, raw);
    slot->len = have;
    return 0;
}

/* Decodes (shard fi, chunk ci) into a cache slot, checking every sequence record; st (may be
 * NULL) receives what the records hold. */
static CachedChunk *load_chunk(ShardSet *s, int fi, uint32_t ci, ChunkStats *st, SrError *err) {
    CachedChunk *slot = NULL;
    for (int i = 0; i < CACHE_SLOTS && !st; i++)
        if (s->cache[i].shard == fi && s->cache[i].chunk == ci) {
            s->cache[i].used = ++s->clock;
            return &s->cache[i];
        }
    for (int i = 0; i < CACHE_SLOTS; i++)
        if (!slot || s->cache[i].used < slot->used) slot = &s->cache[i];
    ShardFile *f = &s->files[fi];
    const ChunkEntry *c = &f->chunks[ci];
    slot->shard = -1;
    /* comp <= the file's size (checked at open), raw <= SHARD_MAX_CHUNK_BYTES */
    const uint8_t *comp = f->mem ? f->mem + c->offset : NULL;
    if (!comp) {
        s->comp = sr_array_reserve(s->comp, &s->cap_comp, (size_t)c->comp, 1);
        if (shard_pread(f, s->comp, (size_t)c->comp, c->offset, err)) return NULL;
        comp = s->comp;
    }
    if (decompress(s, f, ci, comp, (size_t)c->comp, (size_t)c->raw, slot, err)) return NULL;
    slot->seq_off = sr_array_reserve(slot->seq_off, &slot->cap_seqs, c->n_seqs, sizeof *slot->seq_off);
    ChunkStats local = {0, 0, 0, -1};
    size_t off = 0;
    for (uint32_t i = 0; i < c->n_seqs; i++) {
        size_t len = 0;
        if (check_record(s, f, ci, (uint64_t)c->first_seq + i, slot->data + off, slot->len - off, &len, &local, err))
            return NULL;
        slot->seq_off[i] = off;
        off += len;
    }
    if (off != slot->len) {
        sr_fail(err, "%s: chunk %u: %zu bytes after its %u sequences (corrupt shard)", f->path, ci,
                slot->len - off, c->n_seqs);
        return NULL;
    }
    if (st) *st = local;
    slot->shard = fi;
    slot->chunk = ci;
    slot->used = ++s->clock;
    return slot;
}

/* Decodes every chunk of every shard once and compares what the records hold with the
 * headers and the index. */
static int verify_all(ShardSet *s, SrError *err) {
    uint64_t docs = 0, loss = 0;
    long long max_id = -1;
    for (int fi = 0; fi < s->n_files; fi++) {
        ShardFile *f = &s->files[fi];
        uint64_t ftok = 0;
        for (uint32_t ci = 0; ci < f->n_chunks; ci++) {
            ChunkStats st;
            if (!load_chunk(s, fi, ci, &st, err)) return -1;
            ftok += st.tokens;
            docs += st.docs;
            loss += st.loss;
            if (st.max_id > max_id) max_id = st.max_id;
        }
        if (ftok != (uint64_t)f->n_tokens)
            return sr_fail(err, "%s: the sequences hold %llu tokens, the header says %lld", f->path,
                           (unsigned long long)ftok, f->n_tokens);
    }
    /* the statistics are checked when present (the writer always writes them) */
    const cJSON *idx = s->index;
    long long want = (long long)docs;
    if (json_int(idx, "n_documents", "", 0, 1LL << 53, 1, &want, s->index_path, err)) return -1;
    if ((uint64_t)want != docs)
        return sr_fail(err, "%s: n_documents is %lld, the shards hold %llu", s->index_path, want,
                       (unsigned long long)docs);
    want = (long long)loss;
    if (json_int(idx, "n_loss_tokens", "", 0, 1LL << 53, 1, &want, s->index_path, err)) return -1;
    if ((uint64_t)want != loss)
        return sr_fail(err, "%s: n_loss_tokens is %lld, the shards hold %llu", s->index_path, want,
                       (unsigned long long)loss);
    want = max_id;
    if (json_int(idx, "max_token_id", "", -1, (long long)s->vocab_size - 1, 1, &want, s->index_path, err)) return -1;
    if (want != max_id)
        return sr_fail(err, "%s: max_token_id is %lld, the shards' largest id is %lld", s->index_path, want, max_id);
    return 0;
}

/* ---- opening a set --------------------------------------------------------------------------- */

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
    free(s->comp);
    free(s->files);
    free(s->index_path);
    free(s->dir);
    free(s);
}

/* Parses index.json's text, then opens and checks every shard it lists: from dir (files ==
 * NULL) or from the in-memory files. */
static int open_set(ShardSet *s, const char *text, size_t len, const ShardMemFile *mem, int n_mem, SrError *err) {
    const char *ip = s->index_path;
    s->index = sr_json_parse_object(text, len, err);
    if (!s->index) return sr_fail_prefix(err, "%s", ip);
    const cJSON *idx = s->index;
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(idx, "format");
    if (!cJSON_IsString(fmt) || strcmp(fmt->valuestring, "splitreason-shards") != 0)
        return sr_fail(err, "%s: not a splitreason shard index (\"format\" is not \"splitreason-shards\")", ip);
    long long v, total_seqs, total_tokens;
    if (json_int(idx, "version", "", SHARD_VERSION, SHARD_VERSION, 0, &v, ip, err) ||
        json_int(idx, "max_length", "", 2, SHARD_MAX_LENGTH, 0, &v, ip, err))
        return -1;
    s->max_length = (int)v;
    if (json_int(idx, "vocab_size", "", 1, INT32_MAX, 0, &v, ip, err)) return -1;
    s->vocab_size = (int)v;
    if (json_int(idx, "n_sequences", "", 0, 1LL << 53, 0, &total_seqs, ip, err) ||
        json_int(idx, "n_tokens", "", 0, 1LL << 53, 0, &total_tokens, ip, err))
        return -1;
    const cJSON *col = cJSON_GetObjectItemCaseSensitive(idx, "completion_only_loss");
    if (!cJSON_IsBool(col)) return sr_fail(err, "%s: completion_only_loss must be true or false", ip);
    s->completion_only_loss = cJSON_IsTrue(col);
    const cJSON *shards = cJSON_GetObjectItemCaseSensitive(idx, "shards");
    if (!cJSON_IsArray(shards)) return sr_fail(err, "%s: \"shards\" must be an array", ip);
    int n = cJSON_GetArraySize(shards);
    s->files = sr_calloc((size_t)(n ? n : 1), sizeof(ShardFile));
    for (int i = 0; i < n; i++) s->files[i].fd = -1;
    s->n_files = n;
    long long sum_tokens = 0;
    int i = 0;
    for (const cJSON *e = shards->child; e; e = e->next, i++) {
        char what[48];
        snprintf(what, sizeof what, "shards[%d].", i);
        const cJSON *file = cJSON_GetObjectItemCaseSensitive(e, "file");
        if (!cJSON_IsObject(e) || !cJSON_IsString(file) || !plain_name(file->valuestring))
            return sr_fail(err, "%s: shards[%d] needs a plain \"file\" name (in the directory)", ip, i);
        for (int k = 0; k < i; k++)
            if (!strcmp(s->files[k].name, file->valuestring))
                return sr_fail(err, "%s: shards[%d] repeats \"%s\"", ip, i, file->valuestring);
        long long ns, nt, bytes;
        if (json_int(e, "n_sequences", what, 1, UINT32_MAX, 0, &ns, ip, err) ||
            json_int(e, "n_tokens", what, 1, 1LL << 53, 0, &nt, ip, err) ||
            json_int(e, "bytes", what, SHARD_HEADER_BYTES, 1LL << 53, 0, &bytes, ip, err))
            return -1;
        ShardFile *f = &s->files[i];
        f->name = file->valuestring;
        f->path = sr_path_join(s->dir, file->valuestring);
        if (mem) {
            int k = 0;
            while (k < n_mem && strcmp(mem[k].name, file->valuestring) != 0) k++;
            if (k == n_mem) return sr_fail(err, "%s: no such shard", f->path);
            f->mem = mem[k].data;
            f->size = mem[k].size;
        } else {
            f->fd = open(f->path, O_RDONLY | O_CLOEXEC);
            if (f->fd < 0) return sr_fail(err, "%s: cannot open (%s)", f->path, strerror(errno));
            struct stat sb;
            if (fstat(f->fd, &sb) != 0) return sr_fail(err, "%s: cannot stat (%s)", f->path, strerror(errno));
            if (!S_ISREG(sb.st_mode)) return sr_fail(err, "%s: not a regular file", f->path);
            f->size = (uint64_t)sb.st_size;
        }
        if (f->size != (uint64_t)bytes)
            return sr_fail(err, "%s: %llu bytes, index.json says %lld (truncated or replaced?)", f->path,
                           (unsigned long long)f->size, bytes);
        f->first_seq = s->n_seqs;
        if (open_shard_file(s, f, ns, nt, err)) return -1;
        s->n_seqs += f->n_seqs;
        sum_tokens += f->n_tokens;
    }
    if (s->n_seqs != total_seqs)
        return sr_fail(err, "%s: n_sequences is %lld, the shards hold %lld", ip, total_seqs, s->n_seqs);
    if (sum_tokens != total_tokens)
        return sr_fail(err, "%s: n_tokens is %lld, the shards hold %lld", ip, total_tokens, sum_tokens);
    s->dctx = ZSTD_createDCtx();
    SR_ASSERT(s->dctx);
    /* a frame may not ask for a window past the largest chunk (zstd allocates it) */
    ZSTD_DCtx_setParameter(s->dctx, ZSTD_d_windowLogMax, 26);
    _Static_assert(SHARD_MAX_CHUNK_BYTES == 1u << 26, "windowLogMax follows SHARD_MAX_CHUNK_BYTES");
    return verify_all(s, err);
}

static ShardSet *set_new(const char *dir) {
    ShardSet *s = sr_calloc(1, sizeof *s);
    s->dir = sr_strdup(dir);
    s->index_path = sr_path_join(dir, "index.json");
    for (int i = 0; i < CACHE_SLOTS; i++) s->cache[i].shard = -1;
    return s;
}

int shardset_open(ShardSet **out, const char *dir, SrError *err) {
    *out = NULL;
    if (!shard_host_is_little_endian()) return sr_fail(err, "shards: big-endian hosts are not supported");
    ShardSet *s = set_new(dir);
    char *txt = NULL;
    size_t len = 0;
    int rc = sr_read_file(s->index_path, &txt, &len, err);
    if (!rc) rc = open_set(s, txt, len, NULL, 0, err);
    free(txt);
    if (rc) {
        shardset_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

int shardset_open_mem(ShardSet **out, const char *label, const char *index_json, size_t index_len,
                      const ShardMemFile *files, int n_files, SrError *err) {
    *out = NULL;
    if (!shard_host_is_little_endian()) return sr_fail(err, "shards: big-endian hosts are not supported");
    ShardSet *s = set_new(label);
    if (open_set(s, index_json, index_len, files, n_files, err)) {
        shardset_close(s);
        return -1;
    }
    *out = s;
    return 0;
}

long long shardset_num_sequences(const ShardSet *s) { return s->n_seqs; }
int shardset_max_length(const ShardSet *s) { return s->max_length; }
const cJSON *shardset_index(const ShardSet *s) { return s->index; }

/* ---- reading a sequence ------------------------------------------------------------------------ */

int shardset_read(ShardSet *s, long long i, ShardSeq *seq, SrError *err) {
    if (i < 0 || i >= s->n_seqs)
        return sr_fail(err, "%s: sequence %lld out of range (%lld sequences)", s->dir, i, s->n_seqs);
    int fi = 0;
    while (i >= s->files[fi].first_seq + s->files[fi].n_seqs) fi++;
    ShardFile *f = &s->files[fi];
    long long local = i - f->first_seq;
    uint32_t lo = 0, hi = f->n_chunks - 1; /* the last chunk whose first_seq <= local */
    while (lo < hi) {
        uint32_t mid = lo + (hi - lo + 1) / 2;
        if ((long long)f->chunks[mid].first_seq <= local) lo = mid;
        else hi = mid - 1;
    }
    CachedChunk *c = load_chunk(s, fi, lo, NULL, err);
    if (!c) return -1;
    /* the record was checked when the chunk was decoded */
    const uint8_t *p = c->data + c->seq_off[local - f->chunks[lo].first_seq];
    uint32_t n = get_u32(p), nd = get_u32(p + 4);
    seq->tokens = sr_array_reserve(seq->tokens, &seq->cap_tokens, n, sizeof *seq->tokens);
    seq->mask = sr_array_reserve(seq->mask, &seq->cap_mask, n, 1);
    seq->doc_lens = sr_array_reserve(seq->doc_lens, &seq->cap_docs, nd, sizeof *seq->doc_lens);
    p += 8;
    for (uint32_t d = 0; d < nd; d++, p += 4) seq->doc_lens[d] = get_u32(p);
    memcpy(seq->tokens, p, (size_t)n * 4); /* little-endian host (checked at open) */
    memcpy(seq->mask, p + (size_t)n * 4, n);
    seq->n_tokens = (int)n;
    seq->n_docs = (int)nd;
    return 0;
}
