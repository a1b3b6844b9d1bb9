/*
 * Crafting bad token shards for the tests: the writer refuses to write them, so a test writes
 * a valid set and then rewrites one shard file by hand. craft_edit_chunk decompresses one
 * chunk, lets the test change its records, recompresses it, lays the chunk table out again and
 * updates the file's "bytes" in index.json, so that only the edited content is wrong (the
 * index and header still agree with the file: a lying shard, as an attacker would make it).
 */
#ifndef SR_TESTS_SHARD_CRAFT_H
#define SR_TESTS_SHARD_CRAFT_H

#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "data/shards.h"
#include "harness.h"

static uint32_t craft_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t craft_u64(const uint8_t *p) { return craft_u32(p) | (uint64_t)craft_u32(p + 4) << 32; }
static void craft_put_u32(uint8_t *p, uint32_t v) {
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void craft_put_u64(uint8_t *p, uint64_t v) {
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

/* The record of sequence i of a decompressed chunk (NULL past the end). */
static uint8_t *craft_record(uint8_t *raw, size_t len, int i) {
    size_t off = 0;
    for (int k = 0; k < i; k++) {
        if (off + 8 > len) return NULL;
        off += 8 + 4 * (size_t)craft_u32(raw + off + 4) + 5 * (size_t)craft_u32(raw + off);
    }
    return off + 8 <= len ? raw + off : NULL;
}

/* Sets "bytes" of shards[file] in dir/index.json. */
static int craft_set_index_bytes(const char *dir, const char *file, long long bytes) {
    char path[1024];
    snprintf(path, sizeof path, "%s/index.json", dir);
    char *text = sr_test_read_file(path, NULL);
    cJSON *idx = text ? cJSON_Parse(text) : NULL;
    free(text);
    int found = 0;
    for (cJSON *e = cJSON_GetObjectItem(idx, "shards") ? cJSON_GetObjectItem(idx, "shards")->child : NULL; e;
         e = e->next)
        if (!strcmp(cJSON_GetObjectItem(e, "file")->valuestring, file)) {
            cJSON_ReplaceItemInObject(e, "bytes", cJSON_CreateNumber((double)bytes));
            found = 1;
        }
    char *out = found ? cJSON_Print(idx) : NULL;
    int rc = out ? sr_test_write_file(path, out, strlen(out)) : -1;
    free(out);
    cJSON_Delete(idx);
    return rc;
}

/* Rewrites dir/file with chunk `chunk` (-1: the last) edited by edit(raw, &len, cap, ctx)
 * (raw has room for cap bytes). 0 on success. */
static int craft_edit_chunk(const char *dir, const char *file, int chunk,
                            void (*edit)(uint8_t *raw, size_t *len, size_t cap, void *ctx), void *ctx) {
    char path[1024];
    snprintf(path, sizeof path, "%s/%s", dir, file);
    size_t n;
    uint8_t *d = (uint8_t *)sr_test_read_file(path, &n);
    if (!d) return -1;
    uint32_t nc = craft_u32(d + 40);
    size_t head = SHARD_HEADER_BYTES + (size_t)nc * SHARD_CHUNK_ENTRY_BYTES;
    if (chunk < 0) chunk = (int)nc - 1;
    uint8_t *out = malloc(n + (64u << 10)), *tab = out + SHARD_HEADER_BYTES;
    memcpy(out, d, head);
    size_t at = head;
    int rc = 0;
    for (uint32_t c = 0; c < nc && !rc; c++) {
        uint8_t *e = tab + (size_t)c * SHARD_CHUNK_ENTRY_BYTES;
        uint64_t off = craft_u64(e), comp = craft_u64(e + 8), raw_n = craft_u64(e + 16);
        if ((int)c != chunk) {
            memcpy(out + at, d + off, comp);
        } else {
            size_t cap = raw_n + 4096;
            uint8_t *raw = malloc(cap);
            size_t got = ZSTD_decompress(raw, cap, d + off, comp);
            rc = ZSTD_isError(got) ? -1 : 0;
            if (!rc) {
                edit(raw, &got, cap, ctx);
                comp = ZSTD_compress(out + at, ZSTD_compressBound(got), raw, got, 3);
                rc = ZSTD_isError(comp) ? -1 : 0;
                craft_put_u64(e + 16, got);
            }
            free(raw);
        }
        craft_put_u64(e, at);
        craft_put_u64(e + 8, comp);
        at += comp;
    }
    if (!rc) rc = sr_test_write_file(path, out, at);
    if (!rc) rc = craft_set_index_bytes(dir, file, (long long)at);
    free(out);
    free(d);
    return rc;
}

#endif
