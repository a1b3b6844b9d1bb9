/*
 * Token shards: what `prepare` writes and SFT reads.
 *
 * A dataset is a directory: shard_00000.bin, shard_00001.bin, ... and index.json (written
 * last, atomically: its presence means the dataset is complete). A sequence is up to
 * max_length tokens of whole documents packed together; the documents never attend to each
 * other (their boundaries travel with the tokens).
 *
 * Shard file (little-endian):
 *   header, 64 bytes:
 *     char     magic[8] = "SRSHARD1"
 *     uint32   version = 1
 *     uint32   max_length
 *     uint32   vocab_size      (ids are < vocab_size)
 *     uint32   flags           (bit 0: completion_only_loss)
 *     uint64   n_sequences
 *     uint64   n_tokens
 *     uint32   n_chunks
 *     uint32   reserved[5] = 0
 *   chunk table, n_chunks x 32 bytes:
 *     uint64   offset (from the start of the file), uint64 compressed bytes,
 *     uint64   raw bytes, uint32 first sequence (within the shard), uint32 sequences
 *   chunks: each one zstd frame (with its content checksum) holding, per sequence,
 *     uint32 n_tokens, uint32 n_docs, uint32 doc_len[n_docs], uint32 tokens[n_tokens],
 *     uint8 loss_mask[n_tokens]
 *   loss_mask[i] = 1: token i is a target of the loss (predicted from the tokens before it in
 *   its document). The first token of a document is never a target.
 *
 * index.json: {"format": "splitreason-shards", "version": 1, "max_length", "vocab_size",
 *   "n_sequences", "n_tokens", "n_loss_tokens", "n_documents", "max_token_id",
 *   "completion_only_loss", "shards": [{"file", "n_sequences", "n_tokens", "bytes"}], ...the
 *   writer's extra keys (tokenizer ids, chat template, source, packing statistics)}.
 *   max_token_id is the largest id in the set (-1 if empty; absent in sets written before it;
 *   n_loss_tokens, n_documents and max_token_id are compared with the shards when present).
 *
 * Limits (what the writer can produce; the reader refuses more, before allocating anything):
 * max_length <= SHARD_MAX_LENGTH, a chunk's raw bytes <= SHARD_MAX_CHUNK_BYTES.
 *
 * Opening a set checks ALL of it before anything is read for training: index.json's fields
 * (types and ranges, each shard's counts and size), every header (against the index), every
 * chunk table entry (in the file, back to back, sequences numbered in order, raw size within
 * what its sequences can hold), and every chunk is decompressed once and every sequence
 * record checked (lengths, documents summing to the sequence, ids < vocab_size, masks 0/1 and
 * never on a document's first token), the totals compared with the header and the index. A
 * bad shard is one error naming the file (and the chunk and sequence), at open: a run never
 * trains for a while and then stops at the bad sequence. Chunks decoded later (random access)
 * are checked again the same way.
 */
#ifndef SR_DATA_SHARDS_H
#define SR_DATA_SHARDS_H

#include <cjson/cJSON.h>
#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"

#define SHARD_MAGIC "SRSHARD1"
#define SHARD_VERSION 1
#define SHARD_HEADER_BYTES 64
#define SHARD_CHUNK_ENTRY_BYTES 32
#define SHARD_MAX_LENGTH (1 << 22)          /* tokens in a sequence */
#define SHARD_MAX_CHUNK_BYTES (64u << 20)   /* raw (decompressed) bytes of one chunk */

/* One packed sequence. Arrays are owned by the struct (grown on demand; shard_seq_free). */
typedef struct ShardSeq {
    int n_tokens, n_docs;
    uint32_t *tokens;
    uint8_t *mask;
    uint32_t *doc_lens;
    size_t cap_tokens, cap_mask, cap_docs;
} ShardSeq;
void shard_seq_free(ShardSeq *s);

/* ---- writer ----------------------------------------------------------------------------- */
typedef struct ShardWriterOptions {
    int max_length;
    int vocab_size;
    int completion_only_loss;
    long long shard_tokens;  /* start a new shard file after this many tokens (0: 64M) */
    long long chunk_tokens;  /* close a zstd chunk after this many tokens (0: 256k) */
    int zstd_level;          /* 0: 3 */
} ShardWriterOptions;

typedef struct ShardWriter ShardWriter;

int shard_writer_open(ShardWriter **w, const char *dir, const ShardWriterOptions *opt, SrError *err);
/* Adds one sequence: n tokens (n <= max_length) of n_docs documents (doc_lens sum to n). */
int shard_writer_add(ShardWriter *w, const int32_t *tokens, const uint8_t *mask, int n,
                     const int *doc_lens, int n_docs, SrError *err);
/* Finishes the last shard and writes index.json with the extra keys of `extra` (an object,
 * may be NULL; the writer does not take ownership). Frees w. */
int shard_writer_finish(ShardWriter *w, const cJSON *extra, SrError *err);
/* Frees w; shard files written so far stay, index.json is not written. */
void shard_writer_abort(ShardWriter *w);

/* ---- random access ------------------------------------------------------------------------ */
typedef struct ShardSet ShardSet;

int shardset_open(ShardSet **s, const char *dir, SrError *err);
/* The same reader over a set held in memory (tests, fuzzing): index_json is index.json's text,
 * files[i] the bytes of the shard file named names[i] (the index's "file" entries are looked up
 * by name). label stands for the directory in messages. The bytes must outlive the set. */
typedef struct ShardMemFile {
    const char *name;
    const void *data;
    size_t size;
} ShardMemFile;
int shardset_open_mem(ShardSet **s, const char *label, const char *index_json, size_t index_len,
                      const ShardMemFile *files, int n_files, SrError *err);
void shardset_close(ShardSet *s);
long long shardset_num_sequences(const ShardSet *s);
int shardset_max_length(const ShardSet *s);
const cJSON *shardset_index(const ShardSet *s); /* the parsed index.json */
/* Reads sequence i (0 <= i < n) into *seq (a few decompressed chunks are cached). */
int shardset_read(ShardSet *s, long long i, ShardSeq *seq, SrError *err);

/* ---- batches for training ------------------------------------------------------------------
 * Each epoch visits the sequences in a seeded random order (Fisher-Yates with splitmix64,
 * stream = epoch); a global batch is world * batch_seqs consecutive entries of that order and
 * rank r takes its r-th slice. An epoch ends when fewer than a global batch remain (those are
 * dropped; the next epoch reshuffles). The position is (epoch, cursor), cursor = entries of the
 * epoch's order consumed; seeking to a saved position reproduces the same batches. */
typedef struct ShardBatch {
    int n_seqs;
    int N;              /* tokens in the batch (sum over its sequences) */
    int32_t *ids;       /* [N] */
    int32_t *pos;       /* [N] position inside the document (restarts at 0 per document) */
    int32_t *targets;   /* [N] next token where it is a loss target, else -1 */
    int *seq_start;     /* [n_seqs + 1] token offset of each sequence */
    long long n_targets;
    long long epoch, cursor;           /* position before this batch */
    long long next_epoch, next_cursor; /* position after it (what to save) */
    size_t cap_ids, cap_pos, cap_targets, cap_starts;
} ShardBatch;
void shard_batch_free(ShardBatch *b);

typedef struct ShardLoader {
    ShardSet *set;
    uint64_t seed;
    int rank, world, batch_seqs;
    long long n, epoch, cursor;
    long long *order;   /* this epoch's permutation */
    long long order_epoch;
    ShardSeq seq;
} ShardLoader;

int shard_loader_open(ShardLoader *l, const char *dir, int batch_seqs, uint64_t seed, int rank,
                      int world, SrError *err);
int shard_loader_seek(ShardLoader *l, long long epoch, long long cursor, SrError *err);
int shard_loader_next(ShardLoader *l, ShardBatch *b, SrError *err);
void shard_loader_close(ShardLoader *l);

#endif
