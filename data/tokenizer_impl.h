/*
 * Internals of the Qwen2 byte-level BPE tokenizer (data/tokenizer*.c only; the API is
 * data/tokenizer.h).
 *
 * Layout of a loaded tokenizer:
 *   - every id (0 .. n_ids-1) has a display string (the vocab.json key in its byte-level
 *     alphabet, or an added token's content) and the bytes it decodes to, both in blobs;
 *   - vocab_map: raw bytes -> id for the base vocabulary (a vocab token "Ġworld" is stored as
 *     the bytes " world"), so a pre-token's bytes are looked up without re-mapping;
 *   - merge_map: (left id, right id) -> (rank, merged id);
 *   - added tokens with HF's flags, and two matchers (tokens matched on the raw text, and
 *     tokens matched on the NFC-normalised text), each a first-byte index over the patterns
 *     sorted longest first, which gives Aho-Corasick's leftmost-longest matches.
 * Nothing here is mutated by encode except whole_ok, a per-id memo written with relaxed
 * atomics (every thread writes the same value), so one Tokenizer serves many threads.
 */
#ifndef SR_DATA_TOKENIZER_IMPL_H
#define SR_DATA_TOKENIZER_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include <cjson/cJSON.h>

#include "../common/buf.h"
#include "tokenizer.h"

/* ---- the string blobs: one SrBuf each, every entry followed by a NUL ---- */
uint32_t tok_blob_add(SrBuf *b, const void *p, size_t n); /* returns the offset */

/* ---- open-addressing map from byte strings (the raw bytes of an id, in a blob) to ids ---- */
typedef struct TokStrSlot {
    uint32_t hash;
    int32_t id;   /* -1: empty slot */
    uint32_t off, len; /* the key in Tokenizer.raw (a copy of raw_off/raw_len: one cache miss) */
} TokStrSlot;

typedef struct TokStrMap {
    uint32_t cap; /* power of two, 0 when empty */
    uint32_t count;
    TokStrSlot *slots;
} TokStrMap;

typedef struct TokMergeSlot {
    uint64_t key; /* (left << 32) | right; UINT64_MAX: empty */
    int32_t rank;
    int32_t id;
} TokMergeSlot;

typedef struct TokMergeMap {
    uint32_t cap;
    uint32_t count;
    TokMergeSlot *slots;
} TokMergeMap;

typedef struct TokAdded {
    char *content;    /* NUL-terminated, len bytes */
    size_t len;
    int32_t id;
    unsigned char special, normalized, lstrip, rstrip, single_word;
} TokAdded;

/* One pattern of a matcher: an added token's content (or its normalised form, or the
 * "<\bigmodel>" alias) and the index of the added token it stands for. */
typedef struct TokPattern {
    const char *s;
    size_t len;
    int added; /* index into Tokenizer.added */
} TokPattern;

typedef struct TokMatcher {
    TokPattern *pats; /* sorted by first byte, then longest first */
    int n_pats;
    int first[257];   /* pats[first[b] .. first[b+1]) start with byte b */
    char **owned;     /* normalised pattern strings owned by this matcher */
    int n_owned;
} TokMatcher;

struct Tokenizer {
    int32_t n_ids, cap_ids;
    uint32_t *str_off, *str_len; /* display string per id (in str) */
    uint32_t *raw_off, *raw_len; /* decoded bytes per id (in raw) */
    unsigned char *has_str;      /* 1 if the id has a token */
    int32_t *added_of;           /* index into added, -1 if none */
    unsigned char *whole_ok;     /* memo: 0 unknown, 1 BPE(bytes of id) == [id], 2 not */
    SrBuf str, raw;

    int32_t n_vocab;    /* entries of the base (BPE) vocabulary */
    TokStrMap vocab_map;  /* raw bytes -> id, base vocabulary */
    TokStrMap odd_map;    /* vocab tokens outside the byte-level alphabet (never produced by
                           * BPE; their raw bytes are their own string), for merges.txt look-ups */
    int64_t n_declared;   /* tokens the loaded files declare so far (vocab + added entries): the
                           * bound on file ids is 2 * n_declared + 1024 (see tok_id_limit) */
    TokMergeMap merges;
    int32_t n_merges;
    int32_t *merge_list;  /* (left, right) per rank, in file order (for save) */
    int32_t byte_id[256]; /* id of the single-byte token, -1 if the vocab lacks it */

    TokAdded *added;
    int n_added, cap_added;
    int *added_slots;      /* content hash -> index into added (-1: empty), open addressing */
    uint32_t added_cap;    /* slots, a power of two (0: none yet) */
    TokMatcher match_raw;  /* non-normalized added tokens, matched on the raw text */
    TokMatcher match_norm; /* normalized added tokens, matched on the NFC text */

    int do_nfc;        /* the normalizer is NFC (else none) */
    int ignore_merges; /* BPE "ignore_merges": a pre-token found in the vocab is one token */
    int32_t bos_id, eos_id, pad_id, unk_id;
    char *bos_tok, *eos_tok, *pad_tok, *unk_tok; /* as named by the config (may be NULL) */

    cJSON *config;         /* tokenizer_config.json as loaded (kept for save), or NULL */
    cJSON *post_processor; /* tokenizer.json post_processor as loaded, or NULL */
};

/* ---- limits ---- */
/* No id may reach 2^24 (16,777,216: 100x the Qwen2 vocabulary), so that the per-id tables
 * (about 25 bytes an id) stay small and no id arithmetic can overflow. */
#define TOK_MAX_IDS (1 << 24)
/* A tokenizer file larger than this is refused before it is read (the real Qwen2
 * tokenizer.json is 7 MB); it also keeps every blob offset below 2^32. */
#define TOK_MAX_FILE_BYTES ((size_t)1 << 30)
/* Ids a file may use: below 2 * (tokens declared) + 1024 and below TOK_MAX_IDS, so that a
 * table of n tokens costs O(n) memory whatever ids it names (a sparse table is refused). */
int32_t tok_id_limit(const Tokenizer *tok);

/* ---- shared helpers (tokenizer.c) ---- */
uint32_t tok_hash_bytes(const void *p, size_t n);
int32_t tok_vocab_lookup(const Tokenizer *tok, const char *raw, size_t n);
int tok_merge_lookup(const Tokenizer *tok, int32_t left, int32_t right, int32_t *rank,
                     int32_t *id);
/* byte-level alphabet (GPT-2 bytes_to_unicode): byte -> code point, code point -> byte */
int32_t tok_byte_to_cp(unsigned char b);
int tok_cp_to_byte(int32_t cp); /* -1 if cp is not in the alphabet */
/* Converts a byte-level string to raw bytes (out must hold n bytes); -1 if a character is
 * outside the alphabet. Returns the raw length. */
long tok_bytelevel_to_raw(const char *s, size_t n, char *out);
void tok_rebuild_matchers(Tokenizer *tok);

/* ---- text helpers (tokenizer_text.c) ---- */
/* Replaces each maximal invalid UTF-8 subpart by U+FFFD (Python's errors='replace').
 * Returns NULL when text is valid (use it as is), else a malloc'd copy (length in *out_len). */
char *tok_utf8_sanitize(const char *text, size_t len, size_t *out_len);
/* NFC as HF tokenizers computes it (Unicode 9.0 composition tables): writes a malloc'd
 * string into *out; returns its length, or -1 if utf8proc failed. */
long tok_nfc(const char *s, size_t n, char **out);
/* Pre-token classes of the Qwen2 split regex */
enum { TOK_CL_OTHER = 0, TOK_CL_LETTER = 1, TOK_CL_NUMBER = 2, TOK_CL_SPACE = 3, TOK_CL_NEWLINE = 4 };
int tok_cp_class(int32_t cp);
int tok_is_white_space(int32_t cp);
int tok_is_word_char(int32_t cp); /* Rust regex \w, for single_word added tokens */
/* Decodes one code point of valid UTF-8; returns its byte length (1..4). */
static inline int tok_utf8_next(const unsigned char *s, int32_t *cp) {
    unsigned char b = s[0];
    if (b < 0x80) { *cp = b; return 1; }
    if (b < 0xE0) { *cp = ((b & 0x1F) << 6) | (s[1] & 0x3F); return 2; }
    if (b < 0xF0) { *cp = ((b & 0x0F) << 12) | ((s[1] & 0x3F) << 6) | (s[2] & 0x3F); return 3; }
    *cp = ((b & 0x07) << 18) | ((s[1] & 0x3F) << 12) | ((s[2] & 0x3F) << 6) | (s[3] & 0x3F);
    return 4;
}
int tok_utf8_put(int32_t cp, char *out); /* returns bytes written (1..4) */

#endif
