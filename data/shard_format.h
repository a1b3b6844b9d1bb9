/*
 * Internal to the shard writer (shards.c) and reader (shard_reader.c): the little-endian
 * fields of the format (shards.h) and a chunk table entry.
 */
#ifndef SR_DATA_SHARD_FORMAT_H
#define SR_DATA_SHARD_FORMAT_H

#include <stdint.h>

typedef struct ChunkEntry {
    uint64_t offset, comp, raw;
    uint32_t first_seq, n_seqs;
} ChunkEntry;

/* a sequence record: n_tokens, n_docs, doc_len[n_docs], tokens[n_tokens], mask[n_tokens] */
#define SHARD_RECORD_BYTES(n_tokens, n_docs) (8 + 4 * (uint64_t)(n_docs) + 5 * (uint64_t)(n_tokens))

static inline int shard_host_is_little_endian(void) {
    const uint16_t one = 1;
    return *(const uint8_t *)&one == 1;
}

static inline void shard_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline void shard_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static inline uint32_t shard_get_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t shard_get_u64(const uint8_t *p) {
    return (uint64_t)shard_get_u32(p) | (uint64_t)shard_get_u32(p + 4) << 32;
}

#endif
