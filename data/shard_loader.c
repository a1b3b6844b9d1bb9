/*
 * Batches from token shards with a seeded shuffle and an exact, resumable position (see
 * shards.h). The order of epoch e is a Fisher-Yates permutation of 0..n-1 drawn from the
 * splitmix64 stream sr_rng_stream(seed, e); so (seed, epoch, cursor) pins every batch, and a
 * run restarted from a saved position reads exactly what it would have read.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/rng.h"
#include "shards.h"

void shard_batch_free(ShardBatch *b) {
    free(b->ids);
    free(b->pos);
    free(b->targets);
    free(b->seq_start);
    memset(b, 0, sizeof *b);
}

static void make_order(ShardLoader *l, long long epoch) {
    if (l->order_epoch == epoch) return;
    uint64_t st = sr_rng_stream(l->seed, (uint64_t)epoch);
    for (long long i = 0; i < l->n; i++) l->order[i] = i;
    for (long long i = l->n - 1; i > 0; i--) {
        long long j = (long long)(sr_rng_u64(&st) % (uint64_t)(i + 1));
        long long t = l->order[i];
        l->order[i] = l->order[j];
        l->order[j] = t;
    }
    l->order_epoch = epoch;
}

int shard_loader_open(ShardLoader *l, const char *dir, int batch_seqs, uint64_t seed, int rank,
                      int world, SrError *err) {
    memset(l, 0, sizeof *l);
    if (batch_seqs < 1 || world < 1 || rank < 0 || rank >= world)
        return sr_fail(err, "shard loader: need batch_seqs >= 1 and 0 <= rank < world (got %d, %d, %d)",
                       batch_seqs, rank, world);
    if (shardset_open(&l->set, dir, err)) return -1;
    l->n = shardset_num_sequences(l->set);
    /* a batch's token offsets are ints */
    if ((long long)batch_seqs * shardset_max_length(l->set) > INT32_MAX) {
        int ml = shardset_max_length(l->set);
        shardset_close(l->set);
        l->set = NULL;
        return sr_fail(err, "%s: %d sequences of up to %d tokens in one batch is more than 2^31 tokens", dir,
                       batch_seqs, ml);
    }
    if (l->n < (long long)batch_seqs * world) {
        long long n = l->n;
        shardset_close(l->set);
        l->set = NULL;
        return sr_fail(err, "%s: %lld sequences, fewer than one global batch (%d x %d)", dir, n,
                       world, batch_seqs);
    }
    l->seed = seed;
    l->rank = rank;
    l->world = world;
    l->batch_seqs = batch_seqs;
    l->order = sr_malloc((size_t)l->n * sizeof(long long));
    l->order_epoch = -1;
    return 0;
}

int shard_loader_seek(ShardLoader *l, long long epoch, long long cursor, SrError *err) {
    long long gb = (long long)l->batch_seqs * l->world;
    if (epoch < 0 || cursor < 0 || cursor % gb != 0 || cursor > l->n)
        return sr_fail(err, "shard loader: position (epoch %lld, cursor %lld) is not a batch boundary "
                       "(global batch %lld, %lld sequences)", epoch, cursor, gb, l->n);
    l->epoch = epoch;
    l->cursor = cursor;
    return 0;
}

int shard_loader_next(ShardLoader *l, ShardBatch *b, SrError *err) {
    long long gb = (long long)l->batch_seqs * l->world;
    if (l->cursor + gb > l->n) { /* drop the tail, start the next epoch */
        l->epoch++;
        l->cursor = 0;
    }
    make_order(l, l->epoch);
    b->epoch = l->epoch;
    b->cursor = l->cursor;
    b->n_seqs = l->batch_seqs;
    b->N = 0;
    b->n_targets = 0;
    b->seq_start = sr_array_reserve(b->seq_start, &b->cap_starts, (size_t)b->n_seqs + 1, sizeof *b->seq_start);
    long long base = l->cursor + (long long)l->rank * l->batch_seqs;
    for (int k = 0; k < b->n_seqs; k++) {
        ShardSeq *s = &l->seq;
        if (shardset_read(l->set, l->order[base + k], s, err)) return -1;
        size_t need = (size_t)b->N + (size_t)s->n_tokens; /* <= batch_seqs x max_length (checked at open) */
        b->ids = sr_array_reserve(b->ids, &b->cap_ids, need, sizeof *b->ids);
        b->pos = sr_array_reserve(b->pos, &b->cap_pos, need, sizeof *b->pos);
        b->targets = sr_array_reserve(b->targets, &b->cap_targets, need, sizeof *b->targets);
        b->seq_start[k] = b->N;
        int32_t *ids = b->ids + b->N, *pos = b->pos + b->N, *tg = b->targets + b->N;
        int off = 0;
        for (int d = 0; d < s->n_docs; d++) {
            int len = (int)s->doc_lens[d];
            for (int i = 0; i < len; i++) {
                int t = off + i;
                ids[t] = (int32_t)s->tokens[t];
                pos[t] = i;
                /* token t predicts t+1 when t+1 is in the same document and is a target */
                int next_ok = i + 1 < len && s->mask[t + 1];
                tg[t] = next_ok ? (int32_t)s->tokens[t + 1] : -1;
                b->n_targets += next_ok;
            }
            off += len;
        }
        b->N += s->n_tokens;
    }
    b->seq_start[b->n_seqs] = b->N;
    l->cursor += gb;
    b->next_epoch = l->epoch;
    b->next_cursor = l->cursor;
    return 0;
}

void shard_loader_close(ShardLoader *l) {
    shardset_close(l->set);
    shard_seq_free(&l->seq);
    free(l->order);
    memset(l, 0, sizeof *l);
}
