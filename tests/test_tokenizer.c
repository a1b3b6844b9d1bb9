/*
 * Tokenizer tests: token-for-token parity with Hugging Face on ~3,700 texts (every MATH-500 /
 * AIME / AMC problem and solution, the shipped reasoning traces, ~320 adversarial strings;
 * golden ids from scripts/make_tokenizer_golden.py), decode round trips, streaming decode,
 * the "<\bigmodel>" alias, the tokenizer.json reader (a small tokenizer.json written by HF
 * with lstrip / rstrip / single_word / normalized added tokens), save + reload, and the
 * error messages for broken inputs.
 */
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <utf8proc.h>
#include "common/fileio.h"

#include "../data/tokenizer.h"
#include "harness.h"

/* ---- helpers ------------------------------------------------------------------------------ */

/* the fixture, decompressed (common/fileio.h) */
static char *zstd_read(const char *path, size_t *out_len) {
    char *d = NULL;
    SrError e;
    if (sr_read_file_zstd(path, &d, out_len, &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return NULL;
    }
    return d;
}

static uint64_t fnv64(const int32_t *ids, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t v = (uint32_t)ids[i];
        for (int b = 0; b < 4; b++) {
            h ^= (v >> (8 * b)) & 0xFF;
            h *= 0x100000001b3ull;
        }
    }
    return h;
}

static int hexval(char c) {
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

/* A source JSONL file of the shipped data, parsed once. */
typedef struct Source {
    char name[256];
    cJSON **rows;
    int n;
} Source;

static Source sources[16];
static int n_sources = 0;

static Source *source_get(const char *name) {
    for (int i = 0; i < n_sources; i++)
        if (strcmp(sources[i].name, name) == 0) return &sources[i];
    if (n_sources == 16) return NULL;
    Source *s = &sources[n_sources++];
    snprintf(s->name, sizeof s->name, "%s", name);
    size_t len;
    char *text = sr_test_read_file(sr_test_data(name), &len);
    s->rows = NULL;
    s->n = 0;
    if (!text) return s;
    int cap = 0;
    for (char *line = text; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        if (*line) {
            if (s->n == cap) {
                cap = cap ? cap * 2 : 256;
                s->rows = realloc(s->rows, cap * sizeof *s->rows);
            }
            s->rows[s->n++] = cJSON_Parse(line);
        }
        line = nl ? nl + 1 : NULL;
    }
    free(text);
    return s;
}

static void sources_free(void) {
    for (int i = 0; i < n_sources; i++) {
        for (int r = 0; r < sources[i].n; r++) cJSON_Delete(sources[i].rows[r]);
        free(sources[i].rows);
    }
    n_sources = 0;
}

/* The text of a golden record (malloc'd), NULL if it cannot be found. */
static char *record_text(const cJSON *rec, size_t *len, char *desc, size_t desc_n) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(rec, "text");
    const cJSON *hex = cJSON_GetObjectItemCaseSensitive(rec, "hex");
    if (cJSON_IsString(t)) {
        snprintf(desc, desc_n, "inline text \"%.40s\"", t->valuestring);
        *len = strlen(t->valuestring);
        return strdup(t->valuestring);
    }
    if (cJSON_IsString(hex)) {
        snprintf(desc, desc_n, "inline bytes %.40s", hex->valuestring);
        size_t n = strlen(hex->valuestring) / 2;
        char *b = malloc(n + 1);
        for (size_t i = 0; i < n; i++)
            b[i] = (char)(hexval(hex->valuestring[2 * i]) * 16 + hexval(hex->valuestring[2 * i + 1]));
        b[n] = '\0';
        *len = n;
        return b;
    }
    const cJSON *src = cJSON_GetObjectItemCaseSensitive(rec, "src");
    const cJSON *row = cJSON_GetObjectItemCaseSensitive(rec, "row");
    const cJSON *field = cJSON_GetObjectItemCaseSensitive(rec, "field");
    const cJSON *index = cJSON_GetObjectItemCaseSensitive(rec, "index");
    if (!cJSON_IsString(src) || !cJSON_IsNumber(row) || !cJSON_IsString(field)) return NULL;
    snprintf(desc, desc_n, "%s row %d field %s", src->valuestring, row->valueint, field->valuestring);
    Source *s = source_get(src->valuestring);
    if (!s || row->valueint >= s->n || !s->rows[row->valueint]) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(s->rows[row->valueint], field->valuestring);
    if (cJSON_IsNumber(index)) v = cJSON_GetArrayItem(v, index->valueint);
    if (!cJSON_IsString(v)) return NULL;
    *len = strlen(v->valuestring);
    return strdup(v->valuestring);
}

static void print_ids(const char *what, const int32_t *ids, size_t n, size_t from, size_t to) {
    fprintf(stderr, "    %s[%zu..%zu):", what, from, to < n ? to : n);
    for (size_t i = from; i < to && i < n; i++) fprintf(stderr, " %d", ids[i]);
    fprintf(stderr, "\n");
}

static void print_tokens(const Tokenizer *tok, const int32_t *ids, size_t n, size_t from, size_t to) {
    fprintf(stderr, "    C tokens:");
    for (size_t i = from; i < to && i < n; i++) {
        const char *s = tokenizer_id_to_token(tok, ids[i]);
        fprintf(stderr, " [%s]", s ? s : "?");
    }
    fprintf(stderr, "\n");
}

static int utf8_valid(const char *s, size_t n) {
    utf8proc_int32_t cp;
    for (size_t i = 0; i < n;) {
        utf8proc_ssize_t k = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        if (k <= 0) return 0;
        i += (size_t)k;
    }
    return 1;
}

static int is_nfc(const char *s, size_t n) {
    if (memchr(s, 0, n)) return 0; /* utf8proc_NFC takes a C string */
    utf8proc_uint8_t *d = utf8proc_NFC((const utf8proc_uint8_t *)s);
    int same = d && strlen((char *)d) == n && memcmp(d, s, n) == 0;
    free(d);
    return same;
}

/* Streams ids through tokenizer_stream_*; checks the pieces add up to the full decode and,
 * when that is valid UTF-8, that no piece splits a character. */
static int stream_matches(const Tokenizer *tok, const int32_t *ids, size_t n, const char *full,
                          size_t full_len) {
    TokenizerStream st;
    tokenizer_stream_init(&st);
    char *acc = malloc(full_len + 16);
    size_t a = 0;
    int ok = 1, valid = utf8_valid(full, full_len);
    for (size_t i = 0; i < n && ok; i++) {
        char *piece;
        size_t pn;
        SrError err;
        if (tokenizer_stream_put(tok, &st, ids[i], &piece, &pn, &err)) {
            ok = 0;
            break;
        }
        if (valid && !utf8_valid(piece, pn)) ok = 0;
        if (a + pn > full_len) ok = 0;
        else memcpy(acc + a, piece, pn);
        a += pn;
        free(piece);
    }
    char tail[8];
    size_t tn = tokenizer_stream_flush(&st, tail);
    if (ok && a + tn == full_len) memcpy(acc + a, tail, tn);
    ok = ok && a + tn == full_len && memcmp(acc, full, full_len) == 0;
    free(acc);
    return ok;
}

/* ---- the golden parity test ----------------------------------------------------------------- */

static void test_golden(const Tokenizer *tok, const Tokenizer *tiny) {
    size_t len;
    char *golden = zstd_read(sr_test_fixture("tokenizer/golden.jsonl.zst"), &len);
    CHECKF(golden != NULL, "cannot read tests/fixtures/tokenizer/golden.jsonl.zst");
    if (!golden) return;
    int k_full = 512, b_hash = 256;
    long n_texts = 0, n_bad = 0, n_missing = 0, n_rt = 0, n_rt_bad = 0, n_stream_bad = 0,
         n_tiny = 0, n_tiny_bad = 0, n_tokens = 0;
    size_t bytes = 0;
    char desc[512];
    for (char *line = golden; line && *line;) {
        char *nl = strchr(line, '\n');
        if (nl) *nl = '\0';
        cJSON *rec = cJSON_Parse(line);
        line = nl ? nl + 1 : NULL;
        if (!rec) continue;
        const cJSON *meta = cJSON_GetObjectItemCaseSensitive(rec, "meta");
        if (meta) {
            k_full = cJSON_GetObjectItemCaseSensitive(meta, "k_full")->valueint;
            b_hash = cJSON_GetObjectItemCaseSensitive(meta, "b_hash")->valueint;
            cJSON_Delete(rec);
            continue;
        }
        n_texts++;
        size_t tlen;
        char *text = record_text(rec, &tlen, desc, sizeof desc);
        if (!text) {
            n_missing++;
            cJSON_Delete(rec);
            continue;
        }
        bytes += tlen;
        int32_t *ids = NULL;
        size_t n = 0;
        SrError err;
        int rc = tokenizer_encode(tok, text, tlen, &ids, &n, &err);
        const cJSON *want = cJSON_GetObjectItemCaseSensitive(rec, "ids");
        const cJSON *hashes = cJSON_GetObjectItemCaseSensitive(rec, "h");
        size_t want_n = (size_t)cJSON_GetObjectItemCaseSensitive(rec, "n")->valuedouble;
        n_tokens += (long)want_n;
        /* first difference against the stored prefix, then against the hashed blocks */
        long diff = -1;
        size_t k = 0;
        for (const cJSON *it = want ? want->child : NULL; it; it = it->next, k++)
            if (diff < 0 && (k >= n || ids[k] != (int32_t)it->valuedouble)) diff = (long)k;
        int32_t *want_ids = malloc((k + 1) * sizeof *want_ids);
        k = 0;
        for (const cJSON *it = want ? want->child : NULL; it; it = it->next) want_ids[k++] = (int32_t)it->valuedouble;
        long bad_block = -1;
        if (diff < 0 && hashes) {
            size_t b = 0;
            for (const cJSON *h = hashes->child; h; h = h->next, b++) {
                size_t from = (size_t)k_full + b * (size_t)b_hash, to = from + (size_t)b_hash;
                if (to > n) to = n;
                char hx[20];
                snprintf(hx, sizeof hx, "%016llx",
                         from < n ? (unsigned long long)fnv64(ids + from, to - from) : 0ull);
                if (from >= n || strcmp(hx, h->valuestring) != 0) {
                    bad_block = (long)b;
                    break;
                }
            }
        }
        if (rc != 0 || diff >= 0 || bad_block >= 0 || n != want_n) {
            n_bad++;
            if (n_bad <= 5) {
                fprintf(stderr, "MISMATCH %s: C %zu ids, HF %zu ids\n", desc, n, want_n);
                if (rc) fprintf(stderr, "    encode failed: %s\n", err.msg);
                if (diff >= 0) {
                    size_t from = diff > 4 ? (size_t)diff - 4 : 0;
                    fprintf(stderr, "    first difference at id %ld\n", diff);
                    print_ids("HF", want_ids, k, from, (size_t)diff + 8);
                    print_ids("C ", ids, n, from, (size_t)diff + 8);
                    print_tokens(tok, ids, n, from, (size_t)diff + 8);
                } else if (bad_block >= 0) {
                    size_t from = (size_t)k_full + (size_t)bad_block * (size_t)b_hash;
                    fprintf(stderr, "    hashed block %ld (ids %zu..%zu) differs; C ids there:\n",
                            bad_block, from, from + (size_t)b_hash);
                    print_ids("C ", ids, n, from, from + 16);
                    print_tokens(tok, ids, n, from, from + 16);
                } else {
                    fprintf(stderr, "    the stored ids agree, the count differs\n");
                }
            }
        }
        free(want_ids);
        /* decode(encode(x)) == x for valid UTF-8 already in NFC ("<\bigmodel>" reads as
         * </bigmodel>, so those texts are left out) */
        if (rc == 0) {
            char *dec;
            size_t dn;
            if (tokenizer_decode(tok, ids, n, &dec, &dn, &err) == 0) {
                int alias = strstr(text, SR_BIGMODEL_CLOSE_ALT) != NULL;
                if (!alias && utf8_valid(text, tlen) && is_nfc(text, tlen)) {
                    n_rt++;
                    if (dn != tlen || memcmp(dec, text, tlen) != 0) {
                        n_rt_bad++;
                        if (n_rt_bad <= 3) fprintf(stderr, "ROUND TRIP differs: %s\n", desc);
                    }
                }
                if (!stream_matches(tok, ids, n, dec, dn)) {
                    n_stream_bad++;
                    if (n_stream_bad <= 3) fprintf(stderr, "STREAM decode differs: %s\n", desc);
                }
                free(dec);
            } else {
                n_rt_bad++;
            }
        }
        free(ids);
        /* the tiny HF-written tokenizer.json */
        const cJSON *tw = cJSON_GetObjectItemCaseSensitive(rec, "tiny");
        if (tw && tiny) {
            n_tiny++;
            int32_t *t_ids;
            size_t tn;
            int ok = tokenizer_encode(tiny, text, tlen, &t_ids, &tn, &err) == 0 &&
                     tn == (size_t)cJSON_GetArraySize(tw);
            size_t i = 0;
            for (const cJSON *it = tw->child; ok && it; it = it->next, i++)
                ok = t_ids[i] == (int32_t)it->valuedouble;
            if (!ok) {
                n_tiny_bad++;
                if (n_tiny_bad <= 3) {
                    fprintf(stderr, "TINY MISMATCH %s\n", desc);
                    int32_t hf[64];
                    size_t hn = 0;
                    for (const cJSON *it = tw->child; it && hn < 64; it = it->next) hf[hn++] = (int32_t)it->valuedouble;
                    print_ids("HF", hf, hn, 0, 24);
                    print_ids("C ", t_ids, tn, 0, 24);
                }
            }
            free(t_ids);
        }
        free(text);
        cJSON_Delete(rec);
    }
    free(golden);
    printf("golden: %ld texts, %zu bytes, %ld tokens: %ld mismatches, %ld missing; "
           "%ld round trips (%ld bad), %ld stream mismatches; tiny: %ld texts, %ld mismatches\n",
           n_texts, bytes, n_tokens, n_bad, n_missing, n_rt, n_rt_bad, n_stream_bad, n_tiny, n_tiny_bad);
    CHECK(n_texts >= 3000);
    CHECKF(n_bad == 0, "%ld of %ld texts tokenize differently from HF", n_bad, n_texts);
    CHECKF(n_missing == 0, "%ld texts not found in the shipped data", n_missing);
    CHECK(n_rt >= 3000);
    CHECKF(n_rt_bad == 0, "%ld texts do not round-trip", n_rt_bad);
    CHECKF(n_stream_bad == 0, "%ld texts stream-decode differently", n_stream_bad);
    CHECK(n_tiny >= 300);
    CHECKF(n_tiny_bad == 0, "%ld texts differ under the tiny tokenizer.json", n_tiny_bad);
}

/* ---- small helpers for the unit checks ----------------------------------------------------- */

static int enc_eq(const Tokenizer *tok, const char *text, const int32_t *want, size_t n_want) {
    int32_t *ids;
    size_t n;
    SrError err;
    if (tokenizer_encode(tok, text, strlen(text), &ids, &n, &err)) return 0;
    int ok = n == n_want && memcmp(ids, want, n * sizeof *ids) == 0;
    if (!ok) {
        fprintf(stderr, "  encode(\"%s\"):", text);
        for (size_t i = 0; i < n; i++) fprintf(stderr, " %d", ids[i]);
        fprintf(stderr, "\n");
    }
    free(ids);
    return ok;
}

static void copy_file(const char *from, const char *to) {
    size_t n;
    char *b = sr_test_read_file(from, &n);
    if (b) sr_test_write_file(to, b, n);
    free(b);
}

static char *path_join(const char *dir, const char *name) {
    static char buf[8][4096];
    static int k = 0;
    char *b = buf[k++ & 7];
    snprintf(b, 4096, "%s/%s", dir, name);
    return b;
}

/* A directory like a user's model dir: vocab.json + merges.txt (links to the shipped files)
 * and the R1-distill tokenizer_config.json with its added tokens. */
static const char *make_r1_dir(void) {
    const char *dir = sr_test_tmpdir("test_tokenizer/r1");
    char src[4096];
    if (!realpath(sr_test_data("qwen2_tokenizer/vocab.json"), src)) return dir;
    if (symlink(src, path_join(dir, "vocab.json"))) return dir;
    if (!realpath(sr_test_data("qwen2_tokenizer/merges.txt"), src)) return dir;
    if (symlink(src, path_join(dir, "merges.txt"))) return dir;
    copy_file(sr_test_fixture("tokenizer/r1_distill_qwen/tokenizer_config.json"),
              path_join(dir, "tokenizer_config.json"));
    return dir;
}

static void test_shipped_qwen2(void) {
    Tokenizer *tok = NULL;
    SrError err;
    int rc = tokenizer_load(&tok, sr_test_data("qwen2_tokenizer"), &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    CHECK(tokenizer_vocab_size(tok) == 151646);
    int32_t want[] = {151644, 14990, 151645}; /* the rtp-llm test's expectation */
    CHECK(enc_eq(tok, "<|im_start|>hello<|im_end|>", want, 3));
    CHECK(tokenizer_eos_id(tok) == 151643);
    CHECK(tokenizer_pad_id(tok) == 151643);
    CHECK(tokenizer_bos_id(tok) == -1);
    CHECK(tokenizer_token_id(tok, "Ġworld") == 1879);
    CHECK(tokenizer_token_id(tok, "<|im_end|>") == 151645);
    CHECK(tokenizer_token_id(tok, "no such token at all") == -1);
    CHECK(strcmp(tokenizer_id_to_token(tok, 220), "Ġ") == 0);
    CHECK(strcmp(tokenizer_id_to_token(tok, 151644), "<|im_start|>") == 0);
    CHECK(tokenizer_id_to_token(tok, 151646) == NULL && tokenizer_id_to_token(tok, -1) == NULL);
    CHECK(tokenizer_is_special(tok, 151643) && !tokenizer_is_special(tok, 14990));
    /* without the bigmodel tokens "<\bigmodel>" is plain text */
    int32_t *ids;
    size_t n;
    CHECK(tokenizer_encode(tok, "<\\bigmodel>", 11, &ids, &n, &err) == 0 && n > 1);
    free(ids);
    int32_t o, c, o2, c2;
    CHECK(tokenizer_add_bigmodel_tokens(tok, &o, &c, &err) == 0 && o == 151646 && c == 151647);
    CHECK(tokenizer_add_bigmodel_tokens(tok, &o2, &c2, &err) == 0 && o2 == o && c2 == c);
    CHECK(tokenizer_vocab_size(tok) == 151648);
    int32_t alias[] = {87, 151647, 88}; /* "x", </bigmodel>, "y" */
    CHECK(enc_eq(tok, "x<\\bigmodel>y", alias, 3));
    int32_t both[] = {151646, 151647};
    CHECK(enc_eq(tok, "<bigmodel></bigmodel>", both, 2));
    CHECK(tokenizer_add_token(tok, "<extra>", 1, -1) == 151648);
    CHECK(tokenizer_add_token(tok, "<extra>", 1, -1) == 151648);
    CHECK(tokenizer_add_token(tok, "hello", 0, -1) == 14990); /* a vocab token keeps its id */
    CHECK(tokenizer_add_token(tok, "<clash>", 0, 151644) == -1); /* id taken */
    tokenizer_free(tok);
}

static void test_streaming(const Tokenizer *tok) {
    /* find a character that BPE splits inside its UTF-8 bytes, and check it is held back */
    static const char *cands[] = {"\xf0\x9f\xa7\x8c", "\xf0\x9f\xaa\xbf", "\xe1\xbd\xa8",
                                  "\xf0\x93\x80\x80", "\xf0\x9d\x95\xab", "\xe2\xbf\xb0"};
    int found = 0;
    for (size_t c = 0; c < sizeof cands / sizeof *cands && !found; c++) {
        int32_t *ids;
        size_t n;
        SrError err;
        if (tokenizer_encode(tok, cands[c], strlen(cands[c]), &ids, &n, &err)) continue;
        if (n >= 2) {
            found = 1;
            TokenizerStream st;
            tokenizer_stream_init(&st);
            char *p;
            size_t pn;
            CHECK(tokenizer_stream_put(tok, &st, ids[0], &p, &pn, &err) == 0);
            CHECK(pn == 0); /* an incomplete character is held back */
            free(p);
            size_t total = 0;
            for (size_t i = 1; i < n; i++) {
                CHECK(tokenizer_stream_put(tok, &st, ids[i], &p, &pn, &err) == 0);
                if (i + 1 < n) CHECK(pn == 0);
                total += pn;
                if (i + 1 == n) CHECK(pn == strlen(cands[c]) && memcmp(p, cands[c], pn) == 0);
                free(p);
            }
            char tail[8];
            CHECK(tokenizer_stream_flush(&st, tail) == 0);
            CHECK(total == strlen(cands[c]));
        }
        free(ids);
    }
    CHECKF(found, "no candidate character splits into several tokens");
    /* an invalid trailing byte is released by flush */
    int32_t ff = tokenizer_token_id(tok, "\xc3\xbf"); /* byte 0xFF: "ÿ" in the alphabet */
    TokenizerStream st;
    tokenizer_stream_init(&st);
    char *p, tail[8];
    size_t pn;
    SrError err;
    CHECK(ff >= 0 && tokenizer_stream_put(tok, &st, ff, &p, &pn, &err) == 0 && pn == 1);
    free(p);
    int32_t e2 = tokenizer_token_id(tok, "\xc3\xa2"); /* byte 0xE2, a lead byte */
    CHECK(e2 >= 0 && tokenizer_stream_put(tok, &st, e2, &p, &pn, &err) == 0 && pn == 0);
    free(p);
    CHECK(tokenizer_stream_flush(&st, tail) == 1 && (unsigned char)tail[0] == 0xE2);
    /* an id the tokenizer lacks adds nothing and keeps what is held back */
    CHECK(tokenizer_stream_put(tok, &st, e2, &p, &pn, &err) == 0 && pn == 0);
    free(p);
    CHECK(tokenizer_stream_put(tok, &st, -5, &p, &pn, &err) == 0 && pn == 0);
    free(p);
    CHECK(tokenizer_stream_put(tok, &st, tokenizer_vocab_size(tok) + 100, &p, &pn, &err) == 0 && pn == 0);
    free(p);
    CHECK(tokenizer_stream_flush(&st, tail) == 1 && (unsigned char)tail[0] == 0xE2);
}

static void test_save_reload(Tokenizer *tok) {
    const char *dir = sr_test_tmpdir("test_tokenizer/saved");
    SrError err;
    int rc = tokenizer_save(tok, dir, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc) return;
    struct stat st;
    CHECK(stat(path_join(dir, "vocab.json"), &st) == 0);
    CHECK(stat(path_join(dir, "merges.txt"), &st) == 0);
    CHECK(stat(path_join(dir, "tokenizer_config.json"), &st) == 0);
    CHECK(stat(path_join(dir, "tokenizer.json"), &st) == 0);
    /* the same directory without tokenizer.json: vocab.json + merges.txt + config */
    const char *dir2 = sr_test_tmpdir("test_tokenizer/saved_vm");
    copy_file(path_join(dir, "vocab.json"), path_join(dir2, "vocab.json"));
    copy_file(path_join(dir, "merges.txt"), path_join(dir2, "merges.txt"));
    copy_file(path_join(dir, "tokenizer_config.json"), path_join(dir2, "tokenizer_config.json"));
    Tokenizer *a = NULL, *b = NULL;
    rc = tokenizer_load(&a, dir, &err);
    CHECKF(rc == 0, "%s", err.msg);
    rc = tokenizer_load(&b, dir2, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (!a || !b) {
        tokenizer_free(a);
        tokenizer_free(b);
        return;
    }
    CHECK(tokenizer_vocab_size(a) == tokenizer_vocab_size(tok));
    CHECK(tokenizer_vocab_size(b) == tokenizer_vocab_size(tok));
    CHECK(tokenizer_eos_id(a) == tokenizer_eos_id(tok) && tokenizer_bos_id(a) == tokenizer_bos_id(tok));
    CHECK(tokenizer_eos_id(b) == tokenizer_eos_id(tok) && tokenizer_pad_id(b) == tokenizer_pad_id(tok));
    for (int32_t id = 151640; id < tokenizer_vocab_size(tok); id++) {
        CHECK(strcmp(tokenizer_id_to_token(a, id), tokenizer_id_to_token(tok, id)) == 0);
        CHECK(tokenizer_is_special(a, id) == tokenizer_is_special(tok, id));
        CHECK(tokenizer_is_special(b, id) == tokenizer_is_special(tok, id));
    }
    /* the same ids on a mixed text through all three */
    const char *text = "<｜begin▁of▁sentence｜><｜User｜>Find $x$ if $x^2=4$.<｜Assistant｜><think>\n"
                       "Okay, so x² = 4 <bigmodel>means x = ±2<\\bigmodel>.\n</think>\n\n\\boxed{2}"
                       "<｜end▁of▁sentence｜> 中文 😀 e\xcc\x81";
    int32_t *i0, *i1, *i2;
    size_t n0, n1, n2;
    CHECK(tokenizer_encode(tok, text, strlen(text), &i0, &n0, &err) == 0);
    CHECK(tokenizer_encode(a, text, strlen(text), &i1, &n1, &err) == 0);
    CHECK(tokenizer_encode(b, text, strlen(text), &i2, &n2, &err) == 0);
    CHECK(n0 == n1 && memcmp(i0, i1, n0 * 4) == 0);
    CHECK(n0 == n2 && memcmp(i0, i2, n0 * 4) == 0);
    free(i0);
    free(i1);
    free(i2);
    /* the config keeps the chat template and names the class */
    size_t cn;
    char *cfg = sr_test_read_file(path_join(dir, "tokenizer_config.json"), &cn);
    CHECK(cfg && strstr(cfg, "chat_template") && strstr(cfg, "\"Qwen2Tokenizer\"") &&
          strstr(cfg, "\"151666\""));
    free(cfg);
    /* saving over an existing directory replaces the files, leaving no temporaries */
    CHECK(tokenizer_save(a, dir, &err) == 0);
    char cmd[8300];
    snprintf(cmd, sizeof cmd, "test -z \"$(ls -A '%s' | grep tmp)\"", dir);
    CHECK(system(cmd) == 0);
    tokenizer_free(a);
    tokenizer_free(b);
}

/* ---- bad inputs ---------------------------------------------------------------------------- */

static void write_text(const char *path, const char *s) { sr_test_write_file(path, s, strlen(s)); }

/* load must fail with a message containing both needles */
static void expect_load_error(const char *path, const char *needle1, const char *needle2) {
    Tokenizer *tok = NULL;
    SrError err;
    err.msg[0] = '\0';
    int rc = tokenizer_load(&tok, path, &err);
    CHECKF(rc == -1 && tok == NULL, "loading %s should fail", path);
    CHECKF(strstr(err.msg, needle1) && (!needle2 || strstr(err.msg, needle2)) && !strchr(err.msg, '\n'),
           "message \"%s\" lacks \"%s\" / \"%s\"", err.msg, needle1, needle2 ? needle2 : "");
    tokenizer_free(tok);
}

static const char *small_vocab = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"Ġ\": 3, \"c\": 4}";

static const char *bad_dir(const char *name, const char *vocab, const char *merges) {
    char rel[256];
    snprintf(rel, sizeof rel, "test_tokenizer/bad_%s", name);
    const char *dir = sr_test_tmpdir(rel);
    if (vocab) write_text(path_join(dir, "vocab.json"), vocab);
    if (merges) write_text(path_join(dir, "merges.txt"), merges);
    return dir;
}

static void test_bad_inputs(void) {
    expect_load_error("/nonexistent/tokenizer/dir", "/nonexistent/tokenizer/dir", "cannot open");
    expect_load_error(bad_dir("empty", NULL, NULL), "bad_empty", "no tokenizer.json and no vocab.json");
    expect_load_error(bad_dir("nomerges", small_vocab, NULL), "merges.txt", "cannot open");
    expect_load_error(bad_dir("badjson", "{\"a\": 0, \"b\": ", "a b\n"), "vocab.json", "ends early");
    expect_load_error(bad_dir("badjson2", "{\"a\": 0, \"b\": x}", "a b\n"), "vocab.json", "not valid JSON");
    expect_load_error(bad_dir("trailing", "{\"a\": 0} {\"b\": 1}", "a b\n"), "vocab.json", "trailing data");
    expect_load_error(bad_dir("notobj", "[1, 2]", "a b\n"), "vocab.json", "not a JSON object");
    expect_load_error(bad_dir("badid", "{\"a\": 0, \"b\": \"one\"}", "a b\n"), "vocab.json", "\"b\" has no valid id");
    expect_load_error(bad_dir("negid", "{\"a\": 0, \"b\": -3}", "a b\n"), "vocab.json", "\"b\" has no valid id (-3 is negative)");
    expect_load_error(bad_dir("fracid", "{\"a\": 0, \"b\": 1.5}", "a b\n"), "vocab.json", "\"b\" has no valid id (1.5 is not an integer)");
    expect_load_error(bad_dir("dupid", "{\"a\": 0, \"b\": 0}", "a b\n"), "vocab.json", "id 0 is used by two tokens");
    expect_load_error(bad_dir("threeparts", small_vocab, "a b\na b c\n"), "merges.txt:2", "two tokens");
    expect_load_error(bad_dir("onepart", small_vocab, "ab\n"), "merges.txt:1", "two tokens");
    expect_load_error(bad_dir("emptyline", small_vocab, "a b\n\na b\n"), "merges.txt:2", "two tokens");
    expect_load_error(bad_dir("unknown", small_vocab, "#version: 0.2\na b\nzz qq\n"), "merges.txt:3",
                      "\"zz\" is not in the vocabulary");
    expect_load_error(bad_dir("result", small_vocab, "a c\n"), "merges.txt:1",
                      "merged token \"ac\" is not in the vocabulary");
    expect_load_error(bad_dir("badutf8", small_vocab, "a b\n\xff c\n"), "merges.txt:2", "invalid UTF-8");
    /* a token with a newline in it stays on one line in the message */
    expect_load_error(bad_dir("nlmsg", "{\"a\\nb\": 0, \"c\": 0}", ""), "vocab.json",
                      "id 0 is used by two tokens (\"a\\x0ab\" and \"c\")");
    /* a good small directory loads, and its config errors are reported */
    const char *ok = bad_dir("good", small_vocab, "#version: 0.2\na b\n");
    Tokenizer *tok = NULL;
    SrError err;
    CHECKF(tokenizer_load(&tok, ok, &err) == 0, "%s", err.msg);
    if (tok) {
        int32_t want[] = {2, 3, 4};
        CHECK(enc_eq(tok, "ab c", want, 3));
        /* Qwen2Tokenizer's defaults: <|endoftext|> becomes eos/pad at the next id */
        CHECK(tokenizer_eos_id(tok) == 5 && tokenizer_vocab_size(tok) == 6);
        char *out;
        size_t on;
        /* ids the tokenizer lacks decode to nothing, as HF's decode skips them */
        int32_t bad_ids[] = {0, 6, -1, 151790, 2147483647, 1};
        CHECK(tokenizer_decode(tok, bad_ids, 6, &out, &on, &err) == 0 && on == 2 && strcmp(out, "ab") == 0);
        free(out);
        int32_t only_bad[] = {-1, 6};
        CHECK(tokenizer_decode(tok, only_bad, 2, &out, &on, &err) == 0 && on == 0 && out && out[0] == '\0');
        free(out);
        int32_t good[] = {2, 3, 4, 5};
        CHECK(tokenizer_decode(tok, good, 4, &out, &on, &err) == 0 &&
              strcmp(out, "ab c<|endoftext|>") == 0 && on == 17);
        free(out);
        tokenizer_free(tok);
    }
    write_text(path_join(ok, "tokenizer_config.json"), "{\"eos_token\": ");
    expect_load_error(ok, "tokenizer_config.json", "ends early");
    write_text(path_join(ok, "tokenizer_config.json"), "{\"added_tokens_decoder\": {\"1\": {\"content\": \"<x>\"}}}");
    expect_load_error(ok, "tokenizer_config.json", "id 1 is already the vocab token \"b\"");
    /* tokenizer.json */
    const char *tj = sr_test_tmpdir("test_tokenizer/bad_tj");
    const char *p = path_join(tj, "tokenizer.json");
    write_text(p, "{\"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}");
    expect_load_error(p, "tokenizer.json", "ends early");
    write_text(p, "{\"version\": \"1.0\"}");
    expect_load_error(p, "tokenizer.json", "no \"model\"");
    write_text(p, "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
    expect_load_error(p, "tokenizer.json", "not BPE");
    write_text(p, "{\"normalizer\": {\"type\": \"NFC\"}, \"pre_tokenizer\": {\"type\": \"ByteLevel\", \"use_regex\": true},"
                  " \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    expect_load_error(p, "tokenizer.json", "unsupported pre_tokenizer");
    write_text(p, "{\"normalizer\": {\"type\": \"Lowercase\"}, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0}, \"merges\": []}}");
    expect_load_error(p, "tokenizer.json", "unsupported normalizer");
    /* a well-formed pipeline with a broken merge list */
    const char *pre = "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
                      "\"pattern\": {\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
                      "\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, "
                      "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
                      "\"add_prefix_space\": false, \"use_regex\": false}]}";
    char doc[2048];
    snprintf(doc, sizeof doc, "{%s, \"model\": {\"type\": \"BPE\", \"vocab\": %s, \"merges\": 7}}", pre, small_vocab);
    write_text(p, doc);
    expect_load_error(p, "tokenizer.json", "merges is not a JSON array");
    snprintf(doc, sizeof doc, "{%s, \"model\": {\"type\": \"BPE\", \"vocab\": %s, \"merges\": [[\"a\", \"q\"]]}}", pre, small_vocab);
    write_text(p, doc);
    expect_load_error(p, "model.merges[0]", "\"q\" is not in the vocabulary");
    snprintf(doc, sizeof doc, "{%s, \"model\": {\"type\": \"BPE\", \"vocab\": %s, \"merges\": [\"a b\", 5]}}", pre, small_vocab);
    write_text(p, doc);
    expect_load_error(p, "model.merges[1]", "expected");
    snprintf(doc, sizeof doc, "{%s, \"model\": {\"type\": \"BPE\", \"vocab\": %s, \"merges\": [\"a b\"]},"
             " \"added_tokens\": [{\"id\": 9, \"content\": \"\"}]}", pre, small_vocab);
    write_text(p, doc);
    expect_load_error(p, "added_tokens", "no content");
    snprintf(doc, sizeof doc, "{%s, \"model\": {\"type\": \"BPE\", \"vocab\": %s, \"merges\": [\"a b\", [\"ab\", \"c\"]]}}",
             pre, "{\"a\": 0, \"b\": 1, \"ab\": 2, \"c\": 3, \"abc\": 4}");
    write_text(p, doc);
    tok = NULL;
    CHECKF(tokenizer_load(&tok, p, &err) == 0, "%s", err.msg);
    if (tok) {
        int32_t want[] = {4};
        CHECK(enc_eq(tok, "abc", want, 1)); /* both merge formats are read */
        CHECK(tokenizer_eos_id(tok) == -1 && tokenizer_vocab_size(tok) == 5);
        tokenizer_free(tok);
    }
}

/* ---- hostile id tables (issue 9) ------------------------------------------------------- */

static const char *tj_pre =
    "\"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
    "\"pattern\": {\"Regex\": \"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\\\r\\\\n\\\\p{L}\\\\p{N}]?\\\\p{L}+|"
    "\\\\p{N}| ?[^\\\\s\\\\p{L}\\\\p{N}]+[\\\\r\\\\n]*|\\\\s*[\\\\r\\\\n]+|\\\\s+(?!\\\\S)|\\\\s+\"}, "
    "\"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
    "\"add_prefix_space\": false, \"use_regex\": false}]}";

/* a tokenizer.json with the Qwen2 pipeline, the given vocab, merges and added_tokens */
static const char *write_tj(const char *name, const char *vocab, const char *merges, const char *added) {
    char rel[256];
    snprintf(rel, sizeof rel, "test_tokenizer/ids_%s", name);
    const char *p = path_join(sr_test_tmpdir(rel), "tokenizer.json");
    char doc[4096];
    snprintf(doc, sizeof doc, "{%s, \"added_tokens\": %s, \"model\": {\"type\": \"BPE\", \"vocab\": %s, "
             "\"merges\": %s}}", tj_pre, added, vocab, merges);
    write_text(p, doc);
    return p;
}

/* a vocab.json + merges.txt (+ tokenizer_config.json) directory */
static const char *write_files(const char *name, const char *vocab, const char *merges, const char *config) {
    const char *dir = bad_dir(name, vocab, merges);
    if (config) write_text(path_join(dir, "tokenizer_config.json"), config);
    return dir;
}

static void test_hostile_ids(void) {
    /* the reproducers: each crashed, hung or took gigabytes before the id bound */
    expect_load_error(write_tj("huge", "{\"a\": 0, \"\u0120the\": 2147483647}", "[]", "[]"),
                      "tokenizer.json: model.vocab: token \"Ġthe\"", "2147483647 is too large: ids must be below 1028");
    expect_load_error(write_files("sparse2", "{\"a\":0,\"b\":2147483643}", "", NULL), "vocab.json: token \"b\"",
                      "2147483643 is too large: ids must be below 1028 = 2 x 2 tokens + 1024");
    expect_load_error(write_tj("added", "{\"a\": 0}", "[]", "[{\"id\": 2147483646, \"content\": \"<x>\"}]"),
                      "tokenizer.json: added_tokens[0]", "2147483646 is too large");
    expect_load_error(write_files("decoder", "{\"a\":0,\"b\":1}", "",
                                  "{\"added_tokens_decoder\": {\"2147483600\": {\"content\": \"<x>\"}}}"),
                      "tokenizer_config.json: added_tokens_decoder key \"2147483600\"", "too large");
    expect_load_error(write_files("rss", "{\"a\":0,\"b\":1,\"ab\":67108864}", "a b\n", NULL),
                      "vocab.json: token \"ab\"", "67108864 is too large: ids must be below 1030");
    /* use-after-free: the message names the key after the config was read */
    const char *keys[][2] = {{"abc", "not a decimal integer"}, {"-5", "-5 is negative"},
                             {"12345678901234567890", "12345678901234567" /* as %.17g */},
                             {"1.5", "not a decimal integer"}, {" 7", "not a decimal integer"}};
    for (int k = 0; k < 5; k++) {
        char cfg[256], want[128];
        snprintf(cfg, sizeof cfg, "{\"added_tokens_decoder\": {\"%s\": {\"content\": \"<x>\"}}}", keys[k][0]);
        snprintf(want, sizeof want, "added_tokens_decoder key \"%s\" is not a valid id", keys[k][0]);
        expect_load_error(write_files("uaf", "{\"a\":0,\"b\":1}", "", cfg), want, keys[k][1]);
    }
    /* the bound itself: 2 x 3 tokens + 1024 = 1030, so id 1029 is fine, holes decode to nothing */
    Tokenizer *tok = NULL;
    SrError err;
    const char *ok = write_files("bound", "{\"a\":0,\"b\":1,\"ab\":1029}", "a b\n", NULL);
    CHECKF(tokenizer_load(&tok, ok, &err) == 0, "%s", err.msg);
    if (tok) {
        int32_t want[] = {1029};
        CHECK(enc_eq(tok, "ab", want, 1));
        CHECK(tokenizer_vocab_size(tok) == 1031 && tokenizer_eos_id(tok) == 1030); /* <|endoftext|> appended */
        CHECK(tokenizer_id_to_token(tok, 500) == NULL);
        int32_t ids[] = {0, 500, 1029};
        char *out;
        size_t n;
        CHECK(tokenizer_decode(tok, ids, 3, &out, &n, &err) == 0 && strcmp(out, "aab") == 0);
        free(out);
        /* the programmatic API keeps the bound too */
        CHECK(tokenizer_add_token(tok, "<far>", 1, 100000000) == -1);
        CHECK(tokenizer_add_token(tok, "<near>", 1, 1035) == 1035); /* 2 x 6 declared + 1024 = 1036 */
        tokenizer_free(tok);
    }
    expect_load_error(write_files("bound1", "{\"a\":0,\"b\":1,\"ab\":1030}", "a b\n", NULL), "vocab.json",
                      "1030 is too large: ids must be below 1030");
    /* added tokens count too: 2 x (2 vocab + 1 added) + 1024 */
    tok = NULL;
    CHECKF(tokenizer_load(&tok, write_files("bound2", "{\"a\":0,\"b\":1}", "",
                                            "{\"added_tokens_decoder\": {\"1029\": {\"content\": \"<x>\"}}}"),
                          &err) == 0, "%s", err.msg);
    if (tok) CHECK(tokenizer_token_id(tok, "<x>") == 1029);
    tokenizer_free(tok);
    /* duplicate ids for two tokens: an error (HF silently keeps one); a repeated key keeps its
     * last value (Python's and HF's rule), so {"a":0,"b":1,"a":2} has "a" at 2 */
    expect_load_error(write_tj("dup", "{\"a\": 0, \"b\": 0}", "[]", "[]"), "model.vocab", "id 0 is used by two tokens");
    expect_load_error(write_tj("dupadded", "{\"a\": 0, \"b\": 1}", "[]", "[{\"id\": 1, \"content\": \"<x>\"}]"),
                      "added_tokens[0]", "id 1 is already the vocab token \"b\"");
    tok = NULL;
    CHECKF(tokenizer_load(&tok, write_files("lastkey", "{\"a\":0,\"b\":1,\"ab\":3,\"a\":2}", "a b\n", NULL), &err) == 0,
           "%s", err.msg);
    if (tok) {
        CHECK(tokenizer_token_id(tok, "a") == 2 && tokenizer_id_to_token(tok, 0) == NULL);
        int32_t want[] = {3};
        CHECK(enc_eq(tok, "ab", want, 1));
        tokenizer_free(tok);
    }
    /* merges naming tokens outside the vocabulary: an error, as HF's "Token `q` out of vocabulary" */
    expect_load_error(write_tj("merge_unknown", "{\"a\": 0, \"b\": 1}", "[\"a q\"]", "[]"), "model.merges[0]",
                      "merge token \"q\" is not in the vocabulary");
    /* tokens outside the byte-level alphabet: merges between them load (hash look-up) */
    tok = NULL;
    CHECKF(tokenizer_load(&tok, write_tj("odd", "{\"中\": 0, \"文\": 1, \"中文\": 2, \"a\": 3}", "[\"中 文\"]", "[]"),
                          &err) == 0, "%s", err.msg);
    if (tok) CHECK(tokenizer_token_id(tok, "中文") == 2);
    tokenizer_free(tok);
}

/* many added tokens (the content index grows several times): each is found by content */
static void test_many_added(void) {
    enum { N = 3000 };
    size_t cap = N * 64 + 64, o = 0;
    char *cfg = malloc(cap);
    o += (size_t)snprintf(cfg + o, cap - o, "{\"added_tokens_decoder\": {");
    for (int i = 0; i < N; i++)
        o += (size_t)snprintf(cfg + o, cap - o, "%s\"%d\": {\"content\": \"<t%d>\", \"special\": true}",
                              i ? ", " : "", 2 + i, i);
    snprintf(cfg + o, cap - o, "}}");
    Tokenizer *tok = NULL;
    SrError err;
    CHECKF(tokenizer_load(&tok, write_files("many", "{\"a\":0,\"b\":1}", "", cfg), &err) == 0, "%s", err.msg);
    free(cfg);
    if (!tok) return;
    int found = 0;
    char name[32];
    for (int i = 0; i < N; i++) {
        snprintf(name, sizeof name, "<t%d>", i);
        found += tokenizer_token_id(tok, name) == 2 + i;
    }
    CHECK(found == N);
    CHECK(tokenizer_token_id(tok, "<t3000>") == -1);
    int32_t want[] = {2 + 7, 0, 2 + 2999};
    CHECK(enc_eq(tok, "<t7>a<t2999>", want, 3));
    tokenizer_free(tok);
}

/* tokenizer_load_texts (from memory) gives what tokenizer_load gives for the same files */
static void test_from_memory(void) {
    const char *vocab = "{\"a\": 0, \"b\": 1, \"ab\": 2, \"\u0120\": 3, \"c\": 4}";
    const char *merges = "#version: 0.2\na b\n";
    const char *cfg = "{\"added_tokens_decoder\": {\"5\": {\"content\": \"<s>\", \"special\": true}}, \"bos_token\": \"<s>\"}";
    TokenizerTexts t = {{NULL, 0, "tokenizer.json"}, {vocab, strlen(vocab), "vocab.json"},
                        {merges, strlen(merges), "merges.txt"}, {cfg, strlen(cfg), "tokenizer_config.json"}};
    Tokenizer *a = NULL, *b = NULL;
    SrError err;
    CHECKF(tokenizer_load_texts(&a, &t, &err) == 0, "%s", err.msg);
    CHECKF(tokenizer_load(&b, write_files("memory", vocab, merges, cfg), &err) == 0, "%s", err.msg);
    if (a && b) {
        CHECK(tokenizer_vocab_size(a) == tokenizer_vocab_size(b) && tokenizer_vocab_size(a) == 7);
        CHECK(tokenizer_bos_id(a) == 5 && tokenizer_bos_id(b) == 5 && tokenizer_eos_id(a) == 6);
        int32_t want[] = {5, 2, 3, 4};
        CHECK(enc_eq(a, "<s>ab c", want, 4) && enc_eq(b, "<s>ab c", want, 4));
    }
    tokenizer_free(a);
    tokenizer_free(b);
    t.merges_txt.data = NULL;
    a = NULL;
    CHECK(tokenizer_load_texts(&a, &t, &err) == -1 && a == NULL && strstr(err.msg, "merges.txt"));
}

int main(void) {
    test_shipped_qwen2();
    test_bad_inputs();
    test_hostile_ids();
    test_many_added();
    test_from_memory();
    const char *r1 = make_r1_dir();
    Tokenizer *tok = NULL, *tiny = NULL;
    SrError err;
    int rc = tokenizer_load(&tok, r1, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(tokenizer_vocab_size(tok) == 151665);
        CHECK(tokenizer_bos_id(tok) == 151646 && tokenizer_eos_id(tok) == 151643 && tokenizer_pad_id(tok) == 151643);
        CHECK(tokenizer_token_id(tok, "<think>") == 151648 && !tokenizer_is_special(tok, 151648));
        CHECK(tokenizer_is_special(tok, 151646));
        int32_t o, c;
        CHECK(tokenizer_add_bigmodel_tokens(tok, &o, &c, &err) == 0 && o == 151665 && c == 151666);
        CHECK(!tokenizer_is_special(tok, o) && !tokenizer_is_special(tok, c));
        rc = tokenizer_load(&tiny, sr_test_fixture("tokenizer/tiny/tokenizer.json"), &err);
        CHECKF(rc == 0, "%s", err.msg);
        test_golden(tok, tiny);
        test_streaming(tok);
        test_save_reload(tok);
    }
    tokenizer_free(tok);
    tokenizer_free(tiny);
    sources_free();
    return sr_test_done();
}
