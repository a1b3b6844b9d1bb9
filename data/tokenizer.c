/*
 * The Qwen2 byte-level BPE tokenizer: loading, the vocabulary and merge tables, added tokens,
 * look-ups and decoding. Encoding lives in tokenizer_encode.c, saving in tokenizer_save.c,
 * Unicode details in tokenizer_text.c; the internal layout is described in tokenizer_impl.h.
 *
 * Loading follows what Hugging Face does with the same files:
 *   tokenizer.json: model.vocab / model.merges (strings "a b" or pairs ["a", "b"]),
 *     added_tokens with their flags; only the Qwen2 pipeline is accepted (NFC or no
 *     normalizer, the Qwen2 Split regex + ByteLevel, BPE without dropout / byte fallback);
 *   vocab.json + merges.txt (a "#version" line is skipped; a merge is "left right");
 *   tokenizer_config.json: added_tokens_decoder (id -> token with flags); bos/eos/unk/pad/...
 *     tokens and additional_special_tokens that are not tokens yet are appended as special
 *     tokens, in HF's order, and when there is no tokenizer.json the Qwen2Tokenizer defaults
 *     apply (unk, eos and pad "<|endoftext|>" when the config does not name them).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/fileio.h"
#include "../common/json.h"
#include "tokenizer_impl.h"

#define QWEN2_SPLIT_REGEX                                                                   \
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|" \
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"

enum { KIND_VOCAB = 1, KIND_ADDED = 2 };

/* ---- blobs and hashing ---------------------------------------------------------------- */

uint32_t tok_blob_add(SrBuf *b, const void *p, size_t n) {
    /* offsets are 32-bit: tokenizer files are at most 1 GiB, so a blob stays below 4 GiB */
    SR_ASSERT(b->n + n + 1 <= UINT32_MAX);
    uint32_t off = (uint32_t)b->n;
    sr_buf_add(b, p, n);
    sr_buf_char(b, '\0'); /* every entry is NUL-terminated for callers of id_to_token */
    return off;
}

uint32_t tok_hash_bytes(const void *p, size_t n) {
    /* FNV-1a over 8-byte words, then a final mix: fast on the short keys of a vocabulary. */
    const unsigned char *s = p;
    uint64_t h = 0xcbf29ce484222325ull ^ n;
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, s, 8);
        h = (h ^ w) * 0x100000001b3ull;
        h ^= h >> 29;
        s += 8;
        n -= 8;
    }
    uint64_t w = 0;
    memcpy(&w, s, n);
    h = (h ^ w) * 0x100000001b3ull;
    h ^= h >> 32;
    h *= 0xd6e8feb86659fd93ull;
    h ^= h >> 32;
    return (uint32_t)h;
}

static void strmap_grow(TokStrMap *m);

static void strmap_insert(TokStrMap *m, TokStrSlot slot) {
    if ((m->count + 1) * 4 > m->cap * 3) strmap_grow(m); /* load factor <= 3/4 */
    uint32_t mask = m->cap - 1, i = slot.hash & mask;
    while (m->slots[i].id >= 0) i = (i + 1) & mask;
    m->slots[i] = slot;
    m->count++;
}

static void strmap_grow(TokStrMap *m) {
    TokStrMap old = *m;
    m->cap = old.cap ? old.cap * 2 : 1024;
    m->count = 0;
    m->slots = sr_malloc(m->cap * sizeof *m->slots);
    for (uint32_t i = 0; i < m->cap; i++) m->slots[i].id = -1;
    for (uint32_t i = 0; i < old.cap; i++)
        if (old.slots[i].id >= 0) strmap_insert(m, old.slots[i]);
    free(old.slots);
}

static void strmap_put(Tokenizer *tok, TokStrMap *m, int32_t id) {
    const char *key = tok->raw.p + tok->raw_off[id];
    TokStrSlot slot = {tok_hash_bytes(key, tok->raw_len[id]), id, tok->raw_off[id], tok->raw_len[id]};
    strmap_insert(m, slot);
}

static int32_t strmap_lookup(const Tokenizer *tok, const TokStrMap *m, const char *raw, size_t n) {
    if (!m->cap) return -1;
    uint32_t h = tok_hash_bytes(raw, n);
    uint32_t mask = m->cap - 1, i = h & mask;
    for (;;) {
        const TokStrSlot *s = &m->slots[i];
        if (s->id < 0) return -1;
        if (s->hash == h && s->len == n && memcmp(tok->raw.p + s->off, raw, n) == 0) return s->id;
        i = (i + 1) & mask;
    }
}

int32_t tok_vocab_lookup(const Tokenizer *tok, const char *raw, size_t n) {
    return strmap_lookup(tok, &tok->vocab_map, raw, n);
}

static inline uint64_t merge_key(int32_t l, int32_t r) {
    return ((uint64_t)(uint32_t)l << 32) | (uint32_t)r;
}

static inline uint32_t merge_slot(uint64_t key, uint32_t mask) {
    key ^= key >> 31;
    key *= 0x9e3779b97f4a7c15ull;
    return (uint32_t)(key >> 32) & mask;
}

static void merges_put(TokMergeMap *m, int32_t l, int32_t r, int32_t rank, int32_t id) {
    if ((m->count + 1) * 2 > m->cap) {
        TokMergeMap old = *m;
        m->cap = old.cap ? old.cap * 2 : 1024;
        m->count = 0;
        m->slots = sr_malloc(m->cap * sizeof *m->slots);
        for (uint32_t i = 0; i < m->cap; i++) m->slots[i].key = UINT64_MAX;
        for (uint32_t i = 0; i < old.cap; i++)
            if (old.slots[i].key != UINT64_MAX)
                merges_put(m, (int32_t)(old.slots[i].key >> 32), (int32_t)(uint32_t)old.slots[i].key,
                           old.slots[i].rank, old.slots[i].id);
        free(old.slots);
    }
    uint64_t key = merge_key(l, r);
    uint32_t mask = m->cap - 1, i = merge_slot(key, mask);
    while (m->slots[i].key != UINT64_MAX && m->slots[i].key != key) i = (i + 1) & mask;
    if (m->slots[i].key == UINT64_MAX) m->count++;
    /* a repeated pair takes the later rank, as HF's HashMap collect does */
    m->slots[i].key = key;
    m->slots[i].rank = rank;
    m->slots[i].id = id;
}

int tok_merge_lookup(const Tokenizer *tok, int32_t left, int32_t right, int32_t *rank,
                     int32_t *id) {
    const TokMergeMap *m = &tok->merges;
    if (!m->cap) return 0;
    uint64_t key = merge_key(left, right);
    uint32_t mask = m->cap - 1, i = merge_slot(key, mask);
    for (;;) {
        const TokMergeSlot *s = &m->slots[i];
        if (s->key == key) {
            *rank = s->rank;
            *id = s->id;
            return 1;
        }
        if (s->key == UINT64_MAX) return 0;
        i = (i + 1) & mask;
    }
}

/* ---- the byte-level alphabet (GPT-2 bytes_to_unicode) ---------------------------------- */

int32_t tok_byte_to_cp(unsigned char b) {
    if ((b >= 33 && b <= 126) || (b >= 161 && b <= 172) || b >= 174) return b;
    /* the other 68 bytes map to 256, 257, ... in byte order */
    int n = 0;
    for (int c = 0; c < b; c++)
        if (!((c >= 33 && c <= 126) || (c >= 161 && c <= 172) || c >= 174)) n++;
    return 256 + n;
}

int tok_cp_to_byte(int32_t cp) {
    static int table[324];
    static int ready = 0; /* written once with the same values by any thread: benign */
    if (!__atomic_load_n(&ready, __ATOMIC_ACQUIRE)) {
        int t[324];
        for (int i = 0; i < 324; i++) t[i] = -1;
        for (int b = 0; b < 256; b++) t[tok_byte_to_cp((unsigned char)b)] = b;
        for (int i = 0; i < 324; i++) __atomic_store_n(&table[i], t[i], __ATOMIC_RELAXED);
        __atomic_store_n(&ready, 1, __ATOMIC_RELEASE);
    }
    if (cp < 0 || cp >= 324) return -1;
    return __atomic_load_n(&table[cp], __ATOMIC_RELAXED);
}

long tok_bytelevel_to_raw(const char *s, size_t n, char *out) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0, o = 0;
    while (i < n) {
        int32_t cp;
        unsigned char b = u[i];
        int k;
        if (b < 0x80) { cp = b; k = 1; }
        else if ((b & 0xE0) == 0xC0 && i + 1 < n) { cp = ((b & 0x1F) << 6) | (u[i + 1] & 0x3F); k = 2; }
        else return -1; /* everything in the alphabet is below U+0800 */
        int byte = tok_cp_to_byte(cp);
        if (byte < 0) return -1;
        out[o++] = (char)byte;
        i += (size_t)k;
    }
    return (long)o;
}

/* ---- per-id tables --------------------------------------------------------------------- */

int32_t tok_id_limit(const Tokenizer *tok) {
    int64_t lim = 2 * tok->n_declared + 1024;
    return lim < TOK_MAX_IDS ? (int32_t)lim : TOK_MAX_IDS;
}

/* 1 (and why, e.g. "67108864 is too large: ids must be below 1030 (...)") if a file's id
 * is outside [0, tok_id_limit), else 0. (A double holds every int64 id a file can name.) */
static int id_out_of_bound(const Tokenizer *tok, double id, char *why, size_t n) {
    int32_t lim = tok_id_limit(tok);
    if (id >= 0 && id < lim) return 0;
    if (id < 0) snprintf(why, n, "%.17g is negative", id);
    else if (lim == TOK_MAX_IDS)
        snprintf(why, n, "%.17g is too large: ids must be below 2^24 = %d", id, lim);
    else
        snprintf(why, n, "%.17g is too large: ids must be below %d = 2 x %lld tokens + 1024, so a "
                 "sparse id table is refused", id, lim, (long long)tok->n_declared);
    return 1;
}

/* Makes ids [0, n) addressable; n <= TOK_MAX_IDS (the callers check ids against
 * tok_id_limit first, so n is never sized by a hostile file alone). */
static void ensure_ids(Tokenizer *tok, int32_t n) {
    SR_ASSERT(n >= 0 && n <= TOK_MAX_IDS);
    if (n <= tok->cap_ids) {
        if (n > tok->n_ids) tok->n_ids = n;
        return;
    }
    size_t cap = tok->cap_ids ? (size_t)tok->cap_ids : 1024;
    while (cap < (size_t)n) cap *= 2;
    tok->str_off = sr_realloc(tok->str_off, cap * sizeof(uint32_t));
    tok->str_len = sr_realloc(tok->str_len, cap * sizeof(uint32_t));
    tok->raw_off = sr_realloc(tok->raw_off, cap * sizeof(uint32_t));
    tok->raw_len = sr_realloc(tok->raw_len, cap * sizeof(uint32_t));
    tok->has_str = sr_realloc(tok->has_str, cap);
    tok->added_of = sr_realloc(tok->added_of, cap * sizeof(int32_t));
    tok->whole_ok = sr_realloc(tok->whole_ok, cap);
    for (size_t i = (size_t)tok->cap_ids; i < cap; i++) {
        tok->str_off[i] = tok->str_len[i] = tok->raw_off[i] = tok->raw_len[i] = 0;
        tok->has_str[i] = 0;
        tok->added_of[i] = -1;
        tok->whole_ok[i] = 0;
    }
    tok->cap_ids = (int32_t)cap;
    if (n > tok->n_ids) tok->n_ids = n;
}

/* A token string for a message: quoted, control characters escaped (the message stays one
 * line), cut to fit out (cap >= 16). Returns out. */
static const char *tok_quote(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    out[o++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (o + 8 >= cap) {
            while (o > 1 && ((unsigned char)out[o - 1] & 0xC0) == 0x80) o--; /* whole characters */
            if (o > 1 && (unsigned char)out[o - 1] >= 0xC0) o--;
            memcpy(out + o, "...", 3);
            o += 3;
            break;
        }
        if (c == '"' || c == '\\') o += (size_t)snprintf(out + o, cap - o, "\\%c", c);
        else if (c < 0x20 || c == 0x7F) o += (size_t)snprintf(out + o, cap - o, "\\x%02x", c);
        else out[o++] = (char)c;
    }
    out[o++] = '"';
    out[o] = '\0';
    return out;
}

/* The bytes a token string decodes to, as HF's ByteLevel decoder does: each character of the
 * alphabet becomes its byte; a string with any other character decodes to its own UTF-8. */
static void set_decoded(Tokenizer *tok, int32_t id, const char *s, size_t n) {
    char *raw = sr_malloc(n + 1);
    long m = tok_bytelevel_to_raw(s, n, raw);
    if (m >= 0) tok->raw_off[id] = tok_blob_add(&tok->raw, raw, (size_t)m);
    else tok->raw_off[id] = tok_blob_add(&tok->raw, s, n);
    tok->raw_len[id] = (uint32_t)(m >= 0 ? (size_t)m : n);
    free(raw);
}

/* Adds a base-vocabulary entry (a vocab.json key in the byte-level alphabet); the id has
 * been checked against tok_id_limit. */
static int vocab_add(Tokenizer *tok, const char *s, int32_t id, const char *file, SrError *err) {
    size_t n = strlen(s);
    ensure_ids(tok, id + 1);
    char q1[100], q2[100];
    if (tok->has_str[id] & KIND_VOCAB)
        return sr_fail(err, "%s: id %d is used by two tokens (%s and %s)", file, id,
                       tok_quote(tok->str.p + tok->str_off[id], tok->str_len[id], q1, sizeof q1),
                       tok_quote(s, n, q2, sizeof q2));
    tok->str_off[id] = tok_blob_add(&tok->str, s, n);
    tok->str_len[id] = (uint32_t)n;
    tok->has_str[id] |= KIND_VOCAB;
    char *raw = sr_malloc(n + 1);
    long m = tok_bytelevel_to_raw(s, n, raw);
    free(raw);
    set_decoded(tok, id, s, n);
    /* (the JSON layer keeps one value per key, so a token cannot come twice; the check
     * stays for callers that add by hand) */
    TokStrMap *map = m >= 0 ? &tok->vocab_map : &tok->odd_map;
    if (strmap_lookup(tok, map, tok->raw.p + tok->raw_off[id], tok->raw_len[id]) >= 0)
        return sr_fail(err, "%s: token %s appears twice", file, tok_quote(s, n, q1, sizeof q1));
    strmap_put(tok, map, id);
    if (m >= 0 && tok->raw_len[id] == 1) tok->byte_id[(unsigned char)tok->raw.p[tok->raw_off[id]]] = id;
    tok->n_vocab++;
    return 0;
}

/* id of a vocab token given in its byte-level form, -1 if none */
static int32_t vocab_id_of_string(const Tokenizer *tok, const char *s, size_t n) {
    char stack[256];
    char *raw = n <= sizeof stack ? stack : sr_malloc(n);
    long m = tok_bytelevel_to_raw(s, n, raw);
    /* an odd token's raw bytes are its own string (set_decoded) */
    int32_t id = m >= 0 ? tok_vocab_lookup(tok, raw, (size_t)m) : strmap_lookup(tok, &tok->odd_map, s, n);
    if (raw != stack) free(raw);
    return id;
}

/* Adds the merge "a b" of the given rank; where names the place for messages. */
static int merge_add(Tokenizer *tok, const char *a, size_t na, const char *b, size_t nb,
                     const char *where, SrError *err) {
    int32_t l = vocab_id_of_string(tok, a, na), r = vocab_id_of_string(tok, b, nb);
    char q[100];
    if (l < 0) return sr_fail(err, "%s: merge token %s is not in the vocabulary", where, tok_quote(a, na, q, sizeof q));
    if (r < 0) return sr_fail(err, "%s: merge token %s is not in the vocabulary", where, tok_quote(b, nb, q, sizeof q));
    char stack[512];
    size_t n = na + nb;
    char *cat = n <= sizeof stack ? stack : sr_malloc(n);
    memcpy(cat, a, na);
    memcpy(cat + na, b, nb);
    int32_t id = vocab_id_of_string(tok, cat, n);
    if (id < 0) tok_quote(cat, n, q, sizeof q);
    if (cat != stack) free(cat);
    if (id < 0)
        return sr_fail(err, "%s: merged token %s is not in the vocabulary", where, q);
    int32_t nm = tok->n_merges;
    if ((nm & (nm - 1)) == 0) /* 0, 1, 2, 4, ...: double the room */
        tok->merge_list = sr_realloc(tok->merge_list, (size_t)(nm ? 2 * nm : 1) * 2 * sizeof(int32_t));
    tok->merge_list[2 * tok->n_merges] = l;
    tok->merge_list[2 * tok->n_merges + 1] = r;
    merges_put(&tok->merges, l, r, tok->n_merges++, id);
    return 0;
}

/* ---- added tokens ---------------------------------------------------------------------- */

static int pattern_cmp(const void *x, const void *y) {
    const TokPattern *a = x, *b = y;
    unsigned char ca = (unsigned char)a->s[0], cb = (unsigned char)b->s[0];
    if (ca != cb) return ca < cb ? -1 : 1;
    if (a->len != b->len) return a->len > b->len ? -1 : 1;
    return a->added - b->added;
}

static void matcher_free(TokMatcher *m) {
    for (int i = 0; i < m->n_owned; i++) free(m->owned[i]);
    free(m->owned);
    free(m->pats);
    memset(m, 0, sizeof *m);
}

static void matcher_add(TokMatcher *m, const char *s, size_t len, int added, int owned) {
    if (len == 0) {
        if (owned) free((char *)s);
        return;
    }
    m->pats = sr_realloc(m->pats, (m->n_pats + 1) * sizeof *m->pats);
    m->pats[m->n_pats++] = (TokPattern){s, len, added};
    if (owned) {
        m->owned = sr_realloc(m->owned, (m->n_owned + 1) * sizeof *m->owned);
        m->owned[m->n_owned++] = (char *)s;
    }
}

static void matcher_index(TokMatcher *m) {
    if (m->n_pats) qsort(m->pats, m->n_pats, sizeof *m->pats, pattern_cmp);
    int j = 0;
    for (int b = 0; b <= 256; b++) {
        while (j < m->n_pats && (unsigned char)m->pats[j].s[0] < b) j++;
        m->first[b] = j;
    }
}

/* Adds a pattern for added token a, normalised when it belongs to the NFC-text matcher. */
static void matcher_add_token(Tokenizer *tok, TokMatcher *m, const char *s, size_t len, int a,
                              int normalize) {
    if (normalize && tok->do_nfc) {
        char *nfc = NULL;
        long n = tok_nfc(s, len, &nfc);
        if (n >= 0) {
            matcher_add(m, nfc, (size_t)n, a, 1);
            return;
        }
    }
    matcher_add(m, s, len, a, 0);
}

void tok_rebuild_matchers(Tokenizer *tok) {
    matcher_free(&tok->match_raw);
    matcher_free(&tok->match_norm);
    for (int a = 0; a < tok->n_added; a++) {
        TokAdded *t = &tok->added[a];
        TokMatcher *m = t->normalized ? &tok->match_norm : &tok->match_raw;
        matcher_add_token(tok, m, t->content, t->len, a, t->normalized);
        /* the SplitReason data's misspelled closing tag reads as </bigmodel> */
        if (strcmp(t->content, SR_BIGMODEL_CLOSE) == 0)
            matcher_add_token(tok, m, SR_BIGMODEL_CLOSE_ALT, strlen(SR_BIGMODEL_CLOSE_ALT), a,
                              t->normalized);
    }
    matcher_index(&tok->match_raw);
    matcher_index(&tok->match_norm);
}

/* The added tokens by content: a hash table of indices into tok->added, so that a config
 * with many added tokens loads in linear time. */
static int find_added(const Tokenizer *tok, const char *content, size_t len) {
    if (!tok->added_cap) return -1;
    uint32_t mask = tok->added_cap - 1, i = tok_hash_bytes(content, len) & mask;
    for (int a; (a = tok->added_slots[i]) >= 0; i = (i + 1) & mask)
        if (tok->added[a].len == len && memcmp(tok->added[a].content, content, len) == 0) return a;
    return -1;
}

static void added_slot_put(Tokenizer *tok, int a) {
    uint32_t mask = tok->added_cap - 1, i = tok_hash_bytes(tok->added[a].content, tok->added[a].len) & mask;
    while (tok->added_slots[i] >= 0) i = (i + 1) & mask;
    tok->added_slots[i] = a;
}

/* Indexes added token a (the newest); the table stays at most half full. */
static void added_index(Tokenizer *tok, int a) {
    if ((uint32_t)tok->n_added * 2 > tok->added_cap) {
        uint32_t cap = tok->added_cap ? tok->added_cap * 2 : 64;
        while ((uint32_t)tok->n_added * 2 > cap) cap *= 2;
        free(tok->added_slots);
        tok->added_cap = cap;
        tok->added_slots = sr_malloc(cap * sizeof *tok->added_slots);
        for (uint32_t i = 0; i < cap; i++) tok->added_slots[i] = -1;
        for (int b = 0; b < tok->n_added; b++)
            if (b != a) added_slot_put(tok, b);
    }
    added_slot_put(tok, a);
}

int32_t tokenizer_token_id(const Tokenizer *tok, const char *token) {
    size_t n = strlen(token);
    int a = find_added(tok, token, n);
    if (a >= 0) return tok->added[a].id;
    return vocab_id_of_string(tok, token, n);
}

/* Adds (or, with the same content, updates) an added token. id < 0: its vocab id if the
 * content is a vocab token, else the next free id. Returns the id, or -1 (message in err)
 * when the id belongs to another token or is out of tok_id_limit (the caller counted the
 * token in n_declared). */
static int32_t added_put(Tokenizer *tok, const char *content, size_t len, int64_t id,
                         const TokAdded *flags, int update_flags, SrError *err) {
    if (len == 0) {
        sr_fail(err, "added token with empty content");
        return -1;
    }
    char why[200], q[100], q2[100];
    tok_quote(content, len, q, sizeof q);
    if (id >= 0 && id_out_of_bound(tok, (double)id, why, sizeof why)) {
        sr_fail(err, "added token %s has no valid id (%s)", q, why);
        return -1;
    }
    int a = find_added(tok, content, len);
    if (a >= 0) {
        if (id >= 0 && id != tok->added[a].id) {
            sr_fail(err, "added token %s has id %d and %lld", q, tok->added[a].id, (long long)id);
            return -1;
        }
        if (update_flags) {
            TokAdded *t = &tok->added[a];
            t->special = flags->special;
            t->normalized = flags->normalized;
            t->lstrip = flags->lstrip;
            t->rstrip = flags->rstrip;
            t->single_word = flags->single_word;
        }
        return tok->added[a].id;
    }
    if (id < 0) {
        char *z = sr_malloc(len + 1);
        memcpy(z, content, len);
        z[len] = '\0';
        id = vocab_id_of_string(tok, z, len);
        free(z);
        if (id < 0) id = tok->n_ids;
        if (id >= TOK_MAX_IDS) {
            sr_fail(err, "added token %s: no id left below 2^24", q);
            return -1;
        }
    }
    ensure_ids(tok, (int32_t)id + 1);
    if (tok->added_of[id] >= 0) {
        const TokAdded *o = &tok->added[tok->added_of[id]];
        sr_fail(err, "id %lld is already the added token %s", (long long)id,
                tok_quote(o->content, o->len, q2, sizeof q2));
        return -1;
    }
    if ((tok->has_str[id] & KIND_VOCAB) &&
        (tok->str_len[id] != len || memcmp(tok->str.p + tok->str_off[id], content, len) != 0)) {
        sr_fail(err, "id %lld is already the vocab token %s", (long long)id,
                tok_quote(tok->str.p + tok->str_off[id], tok->str_len[id], q2, sizeof q2));
        return -1;
    }
    if (tok->n_added == tok->cap_added) {
        tok->cap_added = tok->cap_added ? tok->cap_added * 2 : 32;
        tok->added = sr_realloc(tok->added, tok->cap_added * sizeof *tok->added);
    }
    TokAdded *t = &tok->added[tok->n_added];
    *t = *flags;
    t->content = sr_malloc(len + 1);
    memcpy(t->content, content, len);
    t->content[len] = '\0';
    t->len = len;
    t->id = (int32_t)id;
    tok->added_of[id] = tok->n_added++;
    added_index(tok, tok->n_added - 1);
    if (!(tok->has_str[id] & KIND_VOCAB)) {
        tok->str_off[id] = tok_blob_add(&tok->str, content, len);
        tok->str_len[id] = (uint32_t)len;
        set_decoded(tok, id, content, len);
    }
    tok->has_str[id] |= KIND_ADDED;
    return (int32_t)id;
}

int32_t tokenizer_add_token(Tokenizer *tok, const char *content, int special, int32_t id) {
    TokAdded flags = {0};
    flags.special = special != 0;
    flags.normalized = !special; /* HF AddedToken(content, special) */
    tok->n_declared++;
    int32_t r = added_put(tok, content, strlen(content), id, &flags, 0, NULL);
    if (r >= 0) tok_rebuild_matchers(tok);
    return r;
}

int tokenizer_add_bigmodel_tokens(Tokenizer *tok, int32_t *open_id, int32_t *close_id,
                                  SrError *err) {
    /* Not special (so that text decoders that skip special tokens keep them, as the
     * SplitReason tooling searches the decoded text), not normalized (matched on the raw
     * text, so NFC can never merge them with what follows). */
    TokAdded flags = {0};
    tok->n_declared += 2;
    SrError e = {{0}};
    int32_t o = added_put(tok, SR_BIGMODEL_OPEN, strlen(SR_BIGMODEL_OPEN), -1, &flags, 0, &e);
    int32_t c = o < 0 ? -1 : added_put(tok, SR_BIGMODEL_CLOSE, strlen(SR_BIGMODEL_CLOSE), -1, &flags, 0, &e);
    tok_rebuild_matchers(tok);
    if (open_id) *open_id = o;
    if (close_id) *close_id = c;
    if (o < 0 || c < 0) return sr_fail(err, "cannot add the <bigmodel> tokens: %s", e.msg);
    return 0;
}

/* ---- files ------------------------------------------------------------------------------ */

static cJSON *parse_json(const TokenizerText *f, SrError *err) {
    cJSON *j = sr_json_parse(f->data, f->len, err);
    if (!j) sr_fail_prefix(err, "%s", f->name);
    return j;
}

static int path_exists(const char *p) {
    struct stat st;
    return stat(p, &st) == 0;
}

static int json_bool(const cJSON *o, const char *key, int dflt) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v);
    return dflt;
}

/* A token id given as a number: a non-negative integer below tok_id_limit. Returns 0, or -1
 * with the reason in why ("1.5 is not an integer", "-3 is negative", "... is too large ..."). */
static int id_from_double(const Tokenizer *tok, double d, int32_t *id, char *why, size_t n) {
    if (d < 0 || !(d < 4e18)) { /* (also inf) never in bound */
        id_out_of_bound(tok, d, why, n);
        return -1;
    }
    if (d != (double)(int64_t)d) {
        snprintf(why, n, "%.17g is not an integer", d);
        return -1;
    }
    if (id_out_of_bound(tok, d, why, n)) return -1;
    *id = (int32_t)d;
    return 0;
}

static int json_id(const Tokenizer *tok, const cJSON *v, int32_t *id, char *why, size_t n) {
    if (!cJSON_IsNumber(v)) {
        snprintf(why, n, "%s", v ? "not a number" : "missing");
        return -1;
    }
    return id_from_double(tok, v->valuedouble, id, why, n);
}

/* An added_tokens_decoder key: a decimal integer ("151643"), as transformers' int(key). */
static int key_id(const Tokenizer *tok, const char *key, int32_t *id, char *why, size_t n) {
    const char *p = key + (key[0] == '-');
    size_t digits = strspn(p, "0123456789");
    if (digits == 0 || p[digits] != '\0') {
        snprintf(why, n, "not a decimal integer");
        return -1;
    }
    return id_from_double(tok, strtod(key, NULL), id, why, n);
}

static int load_vocab_object(Tokenizer *tok, const cJSON *vocab, const char *file, SrError *err) {
    if (!cJSON_IsObject(vocab)) return sr_fail(err, "%s: the vocabulary is not a JSON object", file);
    tok->n_declared += cJSON_GetArraySize(vocab);
    char why[200], q[100];
    for (const cJSON *it = vocab->child; it; it = it->next) {
        int32_t id;
        if (json_id(tok, it, &id, why, sizeof why))
            return sr_fail(err, "%s: token %s has no valid id (%s)", file,
                           tok_quote(it->string, strlen(it->string), q, sizeof q), why);
        if (vocab_add(tok, it->string, id, file, err)) return -1;
    }
    if (tok->n_vocab == 0) return sr_fail(err, "%s: the vocabulary is empty", file);
    return 0;
}

static int load_merges_txt(Tokenizer *tok, const TokenizerText *f, SrError *err) {
    const char *text = f->data;
    size_t n = f->len, bad;
    if (!sr_utf8_valid(text, n, &bad)) {
        size_t line = 1;
        for (size_t i = 0; i < bad; i++) line += text[i] == '\n';
        return sr_fail(err, "%s:%zu: invalid UTF-8 (byte %zu of the file)", f->name, line, bad);
    }
    size_t line_no = 0;
    char where[4200], q[100];
    for (size_t i = 0; i < n;) {
        size_t e = i;
        while (e < n && text[e] != '\n') e++;
        size_t le = e;
        if (le > i && text[le - 1] == '\r') le--;
        line_no++;
        const char *line = text + i;
        size_t len = le - i;
        i = e + 1;
        if (len >= 8 && memcmp(line, "#version", 8) == 0) continue;
        const char *sp = memchr(line, ' ', len);
        snprintf(where, sizeof where, "%s:%zu", f->name, line_no);
        if (!sp || sp == line || sp == line + len - 1 || memchr(sp + 1, ' ', (size_t)(line + len - sp - 1)))
            return sr_fail(err, "%s: expected \"left right\" (two tokens and one space), got %s", where,
                           tok_quote(line, len, q, sizeof q));
        if (merge_add(tok, line, (size_t)(sp - line), sp + 1, (size_t)(line + len - sp - 1), where, err))
            return -1;
    }
    return 0;
}

static int load_merges_json(Tokenizer *tok, const cJSON *merges, const char *file, SrError *err) {
    if (!cJSON_IsArray(merges)) return sr_fail(err, "%s: model.merges is not a JSON array", file);
    char where[4200], q[100];
    size_t k = 0;
    for (const cJSON *it = merges->child; it; it = it->next, k++) {
        snprintf(where, sizeof where, "%s: model.merges[%zu]", file, k);
        if (cJSON_IsString(it)) {
            const char *s = it->valuestring, *sp = strchr(s, ' ');
            size_t len = strlen(s);
            if (!sp || sp == s || sp == s + len - 1 || strchr(sp + 1, ' '))
                return sr_fail(err, "%s: expected \"left right\", got %s", where, tok_quote(s, len, q, sizeof q));
            if (merge_add(tok, s, (size_t)(sp - s), sp + 1, strlen(sp + 1), where, err)) return -1;
        } else if (cJSON_IsArray(it) && cJSON_GetArraySize(it) == 2 &&
                   cJSON_IsString(it->child) && cJSON_IsString(it->child->next)) {
            const char *a = it->child->valuestring, *b = it->child->next->valuestring;
            if (merge_add(tok, a, strlen(a), b, strlen(b), where, err)) return -1;
        } else {
            return sr_fail(err, "%s: expected a string \"left right\" or a pair [\"left\", \"right\"]", where);
        }
    }
    return 0;
}

/* One added token from a JSON object with content and flags (tokenizer.json added_tokens or
 * tokenizer_config.json added_tokens_decoder). */
static int load_added_entry(Tokenizer *tok, const cJSON *o, int32_t id, const char *where,
                            SrError *err) {
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(o, "content");
    if (!cJSON_IsString(c) || !c->valuestring[0])
        return sr_fail(err, "%s: added token %d has no content", where, id);
    TokAdded flags = {0};
    flags.special = json_bool(o, "special", 0);
    flags.normalized = json_bool(o, "normalized", !flags.special);
    flags.lstrip = json_bool(o, "lstrip", 0);
    flags.rstrip = json_bool(o, "rstrip", 0);
    flags.single_word = json_bool(o, "single_word", 0);
    SrError e;
    if (added_put(tok, c->valuestring, strlen(c->valuestring), id, &flags, 1, &e) < 0)
        return sr_fail(err, "%s: %s", where, e.msg);
    return 0;
}

static int check_pipeline(Tokenizer *tok, const cJSON *j, const char *file, SrError *err) {
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(j, "normalizer");
    tok->do_nfc = 0;
    if (norm && !cJSON_IsNull(norm)) {
        const cJSON *type = cJSON_GetObjectItemCaseSensitive(norm, "type");
        if (cJSON_IsString(type) && strcmp(type->valuestring, "NFC") == 0) {
            tok->do_nfc = 1;
        } else if (cJSON_IsString(type) && strcmp(type->valuestring, "Sequence") == 0) {
            const cJSON *list = cJSON_GetObjectItemCaseSensitive(norm, "normalizers");
            for (const cJSON *it = list ? list->child : NULL; it; it = it->next) {
                const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "type");
                if (!cJSON_IsString(t) || strcmp(t->valuestring, "NFC") != 0)
                    return sr_fail(err, "%s: unsupported normalizer (only NFC is implemented)", file);
                tok->do_nfc = 1;
            }
        } else {
            return sr_fail(err, "%s: unsupported normalizer (only NFC is implemented)", file);
        }
    }
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer");
    int split_ok = 0;
    const cJSON *list = cJSON_GetObjectItemCaseSensitive(pre, "pretokenizers");
    for (const cJSON *it = list ? list->child : NULL; it; it = it->next) {
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(it, "type");
        if (!cJSON_IsString(t)) continue;
        if (strcmp(t->valuestring, "Split") == 0) {
            const cJSON *pat = cJSON_GetObjectItemCaseSensitive(it, "pattern");
            const cJSON *re = cJSON_GetObjectItemCaseSensitive(pat, "Regex");
            const cJSON *beh = cJSON_GetObjectItemCaseSensitive(it, "behavior");
            if (cJSON_IsString(re) && strcmp(re->valuestring, QWEN2_SPLIT_REGEX) == 0 &&
                cJSON_IsString(beh) && strcmp(beh->valuestring, "Isolated") == 0 &&
                !json_bool(it, "invert", 0))
                split_ok = 1;
        } else if (strcmp(t->valuestring, "ByteLevel") == 0) {
            if (json_bool(it, "add_prefix_space", 0) || json_bool(it, "use_regex", 1)) split_ok = -1;
        }
    }
    if (split_ok != 1)
        return sr_fail(err, "%s: unsupported pre_tokenizer (only the Qwen2 Split regex followed by "
                       "ByteLevel without prefix space or regex is implemented)", file);
    return 0;
}


static int load_tokenizer_json(Tokenizer *tok, const TokenizerText *f, SrError *err) {
    const char *path = f->name;
    cJSON *j = parse_json(f, err);
    if (!j) return -1;
    int rc = -1;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!cJSON_IsObject(model)) {
        sr_fail(err, "%s: no \"model\" object", path);
        goto done;
    }
    const cJSON *type = cJSON_GetObjectItemCaseSensitive(model, "type");
    if (type && (!cJSON_IsString(type) || strcmp(type->valuestring, "BPE") != 0)) {
        sr_fail(err, "%s: model type is not BPE", path);
        goto done;
    }
    const cJSON *dropout = cJSON_GetObjectItemCaseSensitive(model, "dropout");
    const cJSON *cont = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
    const cJSON *eow = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
    if ((dropout && !cJSON_IsNull(dropout)) || json_bool(model, "byte_fallback", 0) ||
        (cJSON_IsString(cont) && cont->valuestring[0]) || (cJSON_IsString(eow) && eow->valuestring[0])) {
        sr_fail(err, "%s: unsupported BPE options (dropout, byte_fallback or subword affixes)", path);
        goto done;
    }
    tok->ignore_merges = json_bool(model, "ignore_merges", 0);
    if (check_pipeline(tok, j, path, err)) goto done;
    const cJSON *vocab = cJSON_GetObjectItemCaseSensitive(model, "vocab");
    if (!vocab) {
        sr_fail(err, "%s: model has no \"vocab\"", path);
        goto done;
    }
    char where[4200], why[200];
    snprintf(where, sizeof where, "%s: model.vocab", path);
    if (load_vocab_object(tok, vocab, where, err)) goto done;
    const cJSON *merges = cJSON_GetObjectItemCaseSensitive(model, "merges");
    if (!merges) {
        sr_fail(err, "%s: model has no \"merges\"", path);
        goto done;
    }
    if (load_merges_json(tok, merges, path, err)) goto done;
    const cJSON *added = cJSON_GetObjectItemCaseSensitive(j, "added_tokens");
    if (added && !cJSON_IsArray(added)) {
        sr_fail(err, "%s: added_tokens is not an array", path);
        goto done;
    }
    tok->n_declared += added ? cJSON_GetArraySize(added) : 0;
    size_t k = 0;
    for (const cJSON *it = added ? added->child : NULL; it; it = it->next, k++) {
        int32_t id;
        snprintf(where, sizeof where, "%s: added_tokens[%zu]", path, k);
        if (json_id(tok, cJSON_GetObjectItemCaseSensitive(it, "id"), &id, why, sizeof why)) {
            sr_fail(err, "%s: no valid id (%s)", where, why);
            goto done;
        }
        if (load_added_entry(tok, it, id, where, err)) goto done;
    }
    const cJSON *post = cJSON_GetObjectItemCaseSensitive(j, "post_processor");
    if (post && !cJSON_IsNull(post)) tok->post_processor = cJSON_Duplicate(post, 1);
    rc = 0;
done:
    cJSON_Delete(j);
    return rc;
}

/* The content of a special-token entry of tokenizer_config.json (a string, or an object with
 * "content"), NULL if absent or null. */
static const char *config_token(const cJSON *v) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsObject(v)) {
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(v, "content");
        if (cJSON_IsString(c)) return c->valuestring;
    }
    return NULL;
}

/* Makes content a special token (appending it if it is no token yet), as Qwen2Tokenizer's
 * add_tokens([AddedToken(t, special=True)]) does. */
static int32_t ensure_special(Tokenizer *tok, const char *content, const char *file, SrError *err) {
    if (!content || !content[0]) return -1;
    int a = find_added(tok, content, strlen(content));
    if (a >= 0) {
        tok->added[a].special = 1;
        return tok->added[a].id;
    }
    TokAdded flags = {0};
    flags.special = 1;
    SrError e;
    tok->n_declared++;
    int32_t id = added_put(tok, content, strlen(content), -1, &flags, 1, &e);
    if (id < 0) sr_fail(err, "%s: %s", file, e.msg);
    return id;
}

/* tokenizer_config.json (f->data NULL: none). The parsed config belongs to tok from the start
 * (kept for tokenizer_save), so an error path never touches freed JSON. */
static int load_config(Tokenizer *tok, const TokenizerText *f, int qwen2_defaults, SrError *err) {
    const char *path = f->name ? f->name : "tokenizer_config.json";
    cJSON *cfg = NULL;
    if (f->data) {
        cfg = parse_json(f, err);
        if (!cfg) return -1;
        if (!cJSON_IsObject(cfg)) {
            cJSON_Delete(cfg);
            return sr_fail(err, "%s: not a JSON object", path);
        }
        tok->config = cfg;
        const cJSON *dec = cJSON_GetObjectItemCaseSensitive(cfg, "added_tokens_decoder");
        if (dec && !cJSON_IsObject(dec))
            return sr_fail(err, "%s: added_tokens_decoder is not an object", path);
        tok->n_declared += dec ? cJSON_GetArraySize(dec) : 0;
        char where[4200], why[200], q[100];
        for (const cJSON *it = dec ? dec->child : NULL; it; it = it->next) {
            int32_t id;
            tok_quote(it->string, strlen(it->string), q, sizeof q);
            if (key_id(tok, it->string, &id, why, sizeof why))
                return sr_fail(err, "%s: added_tokens_decoder key %s is not a valid id (%s)", path, q, why);
            snprintf(where, sizeof where, "%s: added_tokens_decoder[%s]", path, q);
            if (load_added_entry(tok, it, id, where, err)) return -1;
        }
    }
    /* HF's order: bos, eos, unk, sep, pad, cls, mask, then additional_special_tokens */
    static const char *keys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                 "pad_token", "cls_token", "mask_token"};
    char **slots[] = {&tok->bos_tok, &tok->eos_tok, &tok->unk_tok, NULL, &tok->pad_tok, NULL, NULL};
    for (int k = 0; k < 7; k++) {
        const cJSON *v = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, keys[k]) : NULL;
        const char *content = config_token(v);
        if (!v && qwen2_defaults && (k == 1 || k == 2 || k == 4)) content = "<|endoftext|>";
        if (!content) continue;
        if (slots[k]) *slots[k] = sr_strdup(content);
        if (ensure_special(tok, content, path, err) < 0) return -1;
    }
    const cJSON *extra = cfg ? cJSON_GetObjectItemCaseSensitive(cfg, "additional_special_tokens") : NULL;
    for (const cJSON *it = cJSON_IsArray(extra) ? extra->child : NULL; it; it = it->next) {
        const char *content = config_token(it);
        if (content && ensure_special(tok, content, path, err) < 0) return -1;
    }
    return 0;
}

static int32_t id_or_none(const Tokenizer *tok, const char *s) {
    return s ? tokenizer_token_id(tok, s) : -1;
}

static Tokenizer *tokenizer_new(void) {
    Tokenizer *tok = sr_calloc(1, sizeof *tok);
    for (int b = 0; b < 256; b++) tok->byte_id[b] = -1;
    tok->do_nfc = 1;
    tok->bos_id = tok->eos_id = tok->pad_id = tok->unk_id = -1;
    return tok;
}

int tokenizer_load_texts(Tokenizer **out, const TokenizerTexts *t, SrError *err) {
    *out = NULL;
    const TokenizerText *all[] = {&t->tokenizer_json, &t->vocab_json, &t->merges_txt, &t->config_json};
    for (int i = 0; i < 4; i++)
        if (all[i]->data && all[i]->len > TOK_MAX_FILE_BYTES)
            return sr_fail(err, "%s: %zu bytes, more than a tokenizer file may have (1 GiB)",
                           all[i]->name, all[i]->len);
    Tokenizer *tok = tokenizer_new();
    int rc = -1;
    int from_json = t->tokenizer_json.data != NULL;
    if (from_json) {
        if (load_tokenizer_json(tok, &t->tokenizer_json, err)) goto done;
    } else {
        if (!t->vocab_json.data || !t->merges_txt.data) {
            sr_fail(err, "%s: missing", !t->vocab_json.data ? t->vocab_json.name : t->merges_txt.name);
            goto done;
        }
        cJSON *v = parse_json(&t->vocab_json, err);
        if (!v) goto done;
        int bad = load_vocab_object(tok, v, t->vocab_json.name, err);
        cJSON_Delete(v);
        if (bad || load_merges_txt(tok, &t->merges_txt, err)) goto done;
    }
    if (load_config(tok, &t->config_json, !from_json, err)) goto done;
    tok->bos_id = id_or_none(tok, tok->bos_tok);
    tok->eos_id = id_or_none(tok, tok->eos_tok);
    tok->pad_id = id_or_none(tok, tok->pad_tok);
    tok->unk_id = id_or_none(tok, tok->unk_tok);
    tok_rebuild_matchers(tok);
    rc = 0;
done:
    if (rc) tokenizer_free(tok);
    else *out = tok;
    return rc;
}

/* Reads one tokenizer file into f (data malloc'd), refusing a huge one before reading it. */
static int read_text(const char *path, TokenizerText *f, SrError *err) {
    struct stat st;
    if (stat(path, &st) == 0 && S_ISREG(st.st_mode) && (uint64_t)st.st_size > TOK_MAX_FILE_BYTES)
        return sr_fail(err, "%s: %lld bytes, more than a tokenizer file may have (1 GiB)", path,
                       (long long)st.st_size);
    char *data;
    size_t n;
    if (sr_read_file(path, &data, &n, err)) return -1;
    f->data = data;
    f->len = n;
    f->name = path;
    return 0;
}

int tokenizer_load(Tokenizer **out, const char *path, SrError *err) {
    *out = NULL;
    struct stat st;
    if (stat(path, &st) != 0) return sr_fail(err, "%s: cannot open (%s)", path, strerror(errno));
    int is_dir = S_ISDIR(st.st_mode);
    size_t plen = strlen(path);
    char *dir = sr_malloc(plen + 2);
    memcpy(dir, path, plen + 1);
    if (is_dir) {
        while (plen > 1 && dir[plen - 1] == '/') dir[--plen] = '\0';
    } else {
        char *slash = strrchr(dir, '/');
        if (slash) *(slash == dir ? slash + 1 : slash) = '\0';
        else strcpy(dir, ".");
    }
    char *tj = is_dir ? sr_path_join(dir, "tokenizer.json") : sr_strdup(path);
    char *vj = sr_path_join(dir, "vocab.json"), *mt = sr_path_join(dir, "merges.txt");
    char *cj = sr_path_join(dir, "tokenizer_config.json");
    TokenizerTexts t = {{NULL, 0, tj}, {NULL, 0, vj}, {NULL, 0, mt}, {NULL, 0, cj}};
    int rc = -1;
    if (!is_dir || path_exists(tj)) {
        if (read_text(tj, &t.tokenizer_json, err)) goto done;
    } else if (!path_exists(vj)) {
        sr_fail(err, "%s: no tokenizer.json and no vocab.json in this directory", dir);
        goto done;
    } else if (!path_exists(mt)) {
        sr_fail(err, "%s: cannot open (%s)", mt, strerror(ENOENT));
        goto done;
    } else if (read_text(vj, &t.vocab_json, err) || read_text(mt, &t.merges_txt, err)) {
        goto done;
    }
    /* the config beside a tokenizer.json (a file with another name stands alone) */
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    if ((is_dir || strcmp(base, "tokenizer.json") == 0) && path_exists(cj) &&
        read_text(cj, &t.config_json, err))
        goto done;
    rc = tokenizer_load_texts(out, &t, err);
done:
    free((char *)t.tokenizer_json.data);
    free((char *)t.vocab_json.data);
    free((char *)t.merges_txt.data);
    free((char *)t.config_json.data);
    free(dir);
    free(tj);
    free(vj);
    free(mt);
    free(cj);
    return rc;
}

void tokenizer_free(Tokenizer *tok) {
    if (!tok) return;
    free(tok->str_off);
    free(tok->str_len);
    free(tok->raw_off);
    free(tok->raw_len);
    free(tok->has_str);
    free(tok->added_of);
    free(tok->whole_ok);
    sr_buf_free(&tok->str);
    sr_buf_free(&tok->raw);
    free(tok->vocab_map.slots);
    free(tok->odd_map.slots);
    free(tok->merges.slots);
    free(tok->merge_list);
    for (int a = 0; a < tok->n_added; a++) free(tok->added[a].content);
    free(tok->added);
    free(tok->added_slots);
    matcher_free(&tok->match_raw);
    matcher_free(&tok->match_norm);
    free(tok->bos_tok);
    free(tok->eos_tok);
    free(tok->pad_tok);
    free(tok->unk_tok);
    cJSON_Delete(tok->config);
    cJSON_Delete(tok->post_processor);
    free(tok);
}

/* ---- look-ups ---------------------------------------------------------------------------- */

int32_t tokenizer_vocab_size(const Tokenizer *tok) { return tok->n_ids; }

const char *tokenizer_id_to_token(const Tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_ids || !tok->has_str[id]) return NULL;
    if (tok->added_of[id] >= 0) return tok->added[tok->added_of[id]].content;
    return tok->str.p + tok->str_off[id];
}

int tokenizer_is_special(const Tokenizer *tok, int32_t id) {
    if (id < 0 || id >= tok->n_ids || tok->added_of[id] < 0) return 0;
    return tok->added[tok->added_of[id]].special;
}

int32_t tokenizer_eos_id(const Tokenizer *tok) { return tok->eos_id; }
int32_t tokenizer_bos_id(const Tokenizer *tok) { return tok->bos_id; }
int32_t tokenizer_pad_id(const Tokenizer *tok) { return tok->pad_id; }

/* ---- decoding ----------------------------------------------------------------------------- */

/* 1 if the tokenizer has a token for id. An id it does not have decodes to nothing, as in
 * HF's decode (Tokenizer::decode filter_maps id_to_token): a model's embedding has padding
 * rows past the tokenizer's last id, and a sampled padding id must not stop the text. */
static int known_id(const Tokenizer *tok, int32_t id) {
    return id >= 0 && id < tok->n_ids && tok->has_str[id];
}

int tokenizer_decode(const Tokenizer *tok, const int32_t *ids, size_t n_ids, char **out,
                     size_t *out_len, SrError *err) {
    (void)err; /* decoding cannot fail; err is kept for the callers' error paths */
    *out = NULL;
    *out_len = 0;
    size_t n = 0;
    for (size_t i = 0; i < n_ids; i++)
        if (known_id(tok, ids[i])) n += tok->raw_len[ids[i]];
    char *buf = sr_malloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (!known_id(tok, ids[i])) continue;
        memcpy(buf + o, tok->raw.p + tok->raw_off[ids[i]], tok->raw_len[ids[i]]);
        o += tok->raw_len[ids[i]];
    }
    buf[o] = '\0';
    *out = buf;
    *out_len = o;
    return 0;
}

void tokenizer_stream_init(TokenizerStream *s) { memset(s, 0, sizeof *s); }

/* Length of the incomplete but so far well-formed UTF-8 sequence ending buf[0..n), 0 if none. */
static int incomplete_tail(const unsigned char *buf, size_t n) {
    for (int back = 1; back <= 3 && (size_t)back <= n; back++) {
        unsigned char b = buf[n - back];
        if (b >= 0x80 && b <= 0xBF) continue; /* a continuation byte: look further back */
        int need = b >= 0xC2 && b <= 0xDF ? 2 : b >= 0xE0 && b <= 0xEF ? 3 : b >= 0xF0 && b <= 0xF4 ? 4 : 0;
        if (need <= back) return 0; /* ASCII, invalid, or complete */
        /* the continuation bytes present must fit the lead byte's second-byte range */
        if (back >= 2) {
            unsigned char c = buf[n - back + 1];
            unsigned char lo = 0x80, hi = 0xBF;
            if (b == 0xE0) lo = 0xA0;
            else if (b == 0xED) hi = 0x9F;
            else if (b == 0xF0) lo = 0x90;
            else if (b == 0xF4) hi = 0x8F;
            if (c < lo || c > hi) return 0;
        }
        return back;
    }
    return 0;
}

int tokenizer_stream_put(const Tokenizer *tok, TokenizerStream *s, int32_t id, char **out,
                         size_t *out_len, SrError *err) {
    (void)err;
    *out = NULL;
    *out_len = 0;
    uint32_t len = known_id(tok, id) ? tok->raw_len[id] : 0;
    size_t n = (size_t)s->n_pending + len;
    unsigned char *buf = sr_malloc(n + 1);
    memcpy(buf, s->pending, (size_t)s->n_pending);
    if (len) memcpy(buf + s->n_pending, tok->raw.p + tok->raw_off[id], len);
    int hold = incomplete_tail(buf, n);
    memcpy(s->pending, buf + n - hold, (size_t)hold);
    s->n_pending = hold;
    buf[n - hold] = '\0';
    *out = (char *)buf;
    *out_len = n - hold;
    return 0;
}

size_t tokenizer_stream_flush(TokenizerStream *s, char *out) {
    size_t n = (size_t)s->n_pending;
    memcpy(out, s->pending, n);
    s->n_pending = 0;
    return n;
}
