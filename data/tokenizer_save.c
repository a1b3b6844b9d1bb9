/*
 * tokenizer_save: writes a Hugging Face tokenizer directory that transformers'
 * AutoTokenizer.from_pretrained loads with the same ids:
 *   vocab.json             base vocabulary, byte-level strings, in id order
 *   merges.txt             "#version: 0.2" then "left right" per rank
 *   tokenizer.json         the whole pipeline (NFC, Qwen2 Split + ByteLevel, BPE, ByteLevel
 *                          decoder), the added tokens with their flags, and the
 *                          post_processor of the tokenizer.json we loaded (if any)
 *   tokenizer_config.json  the loaded config (chat template etc. kept) with
 *                          added_tokens_decoder rewritten from the current added tokens and
 *                          tokenizer_class "Qwen2Tokenizer"
 * Each file is written atomically (common/fileio.h: temp file, fsync, rename, directory fsync).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/fileio.h"
#include "tokenizer_impl.h"

typedef struct Str {
    char *p;
    size_t n, cap;
} Str;

static void str_put(Str *s, const char *p, size_t n) {
    if (s->n + n + 1 > s->cap) {
        s->cap = (s->n + n + 1) * 2;
        s->p = sr_realloc(s->p, s->cap);
    }
    memcpy(s->p + s->n, p, n);
    s->n += n;
    s->p[s->n] = '\0';
}

static void str_cat(Str *s, const char *z) { str_put(s, z, strlen(z)); }

static void str_fmt(Str *s, const char *fmt, long v) {
    char b[64];
    int k = snprintf(b, sizeof b, fmt, v);
    str_put(s, b, (size_t)k);
}

/* A JSON string literal; UTF-8 is written as is (as HF does). */
static void str_json(Str *s, const char *p, size_t n) {
    str_put(s, "\"", 1);
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        str_put(s, p + run, i - run);
        run = i + 1;
        char esc[8];
        if (c == '"') str_put(s, "\\\"", 2);
        else if (c == '\\') str_put(s, "\\\\", 2);
        else if (c == '\n') str_put(s, "\\n", 2);
        else if (c == '\r') str_put(s, "\\r", 2);
        else if (c == '\t') str_put(s, "\\t", 2);
        else {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            str_put(s, esc, 6);
        }
    }
    str_put(s, p + run, n - run);
    str_put(s, "\"", 1);
}

/* dir/name through the one atomic writer (common/fileio.h) */
static int write_atomic(const char *dir, const char *name, const char *data, size_t n,
                        SrError *err) {
    char *path = sr_path_join(dir, name);
    int rc = sr_write_file_atomic(path, data, n, err);
    free(path);
    return rc;
}

static const char *tok_str(const Tokenizer *tok, int32_t id, size_t *n) {
    *n = tok->str_len[id];
    return tok->str.data + tok->str_off[id];
}

static void put_vocab(const Tokenizer *tok, Str *s) {
    str_cat(s, "{");
    int first = 1;
    for (int32_t id = 0; id < tok->n_ids; id++) {
        if (!(tok->has_str[id] & 1)) continue;
        size_t n;
        const char *p = tok_str(tok, id, &n);
        if (!first) str_cat(s, ",");
        first = 0;
        str_json(s, p, n);
        str_fmt(s, ":%ld", id);
    }
    str_cat(s, "}");
}

static int cmp_added_id(const void *a, const void *b) {
    const TokAdded *x = *(const TokAdded *const *)a, *y = *(const TokAdded *const *)b;
    return (x->id > y->id) - (x->id < y->id);
}

static const TokAdded **sorted_added(const Tokenizer *tok) {
    const TokAdded **v = sr_malloc((size_t)(tok->n_added + 1) * sizeof *v);
    for (int a = 0; a < tok->n_added; a++) v[a] = &tok->added[a];
    qsort(v, (size_t)tok->n_added, sizeof *v, cmp_added_id);
    return v;
}

#define BOOL(x) ((x) ? "true" : "false")

static void put_tokenizer_json(const Tokenizer *tok, Str *s) {
    str_cat(s, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [");
    const TokAdded **v = sorted_added(tok);
    for (int a = 0; a < tok->n_added; a++) {
        const TokAdded *t = v[a];
        str_cat(s, a ? ",\n    {" : "\n    {");
        str_fmt(s, "\"id\": %ld, \"content\": ", t->id);
        str_json(s, t->content, t->len);
        char b[200];
        snprintf(b, sizeof b,
                 ", \"single_word\": %s, \"lstrip\": %s, \"rstrip\": %s, \"normalized\": %s, \"special\": %s}",
                 BOOL(t->single_word), BOOL(t->lstrip), BOOL(t->rstrip), BOOL(t->normalized),
                 BOOL(t->special));
        str_cat(s, b);
    }
    free(v);
    str_cat(s, "\n  ],\n  \"normalizer\": ");
    str_cat(s, tok->do_nfc ? "{\"type\": \"NFC\"}" : "null");
    str_cat(s, ",\n  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
               "\"pattern\": {\"Regex\": ");
    static const char re[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                             "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    str_json(s, re, strlen(re));
    str_cat(s, "}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
               "\"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}]},\n");
    str_cat(s, "  \"post_processor\": ");
    if (tok->post_processor) {
        char *pp = cJSON_PrintUnformatted(tok->post_processor);
        str_cat(s, pp);
        free(pp);
    } else {
        str_cat(s, "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}");
    }
    str_cat(s, ",\n  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, "
               "\"use_regex\": false},\n");
    str_cat(s, "  \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
               "\"continuing_subword_prefix\": \"\", \"end_of_word_suffix\": \"\", \"fuse_unk\": false, "
               "\"byte_fallback\": false, \"ignore_merges\": ");
    str_cat(s, BOOL(tok->ignore_merges));
    str_cat(s, ",\n    \"vocab\": ");
    put_vocab(tok, s);
    str_cat(s, ",\n    \"merges\": [");
    for (int32_t r = 0; r < tok->n_merges; r++) {
        size_t na, nb;
        const char *a = tok_str(tok, tok->merge_list[2 * r], &na);
        const char *b = tok_str(tok, tok->merge_list[2 * r + 1], &nb);
        str_cat(s, r ? ",[" : "[");
        str_json(s, a, na);
        str_cat(s, ",");
        str_json(s, b, nb);
        str_cat(s, "]");
    }
    str_cat(s, "]\n  }\n}\n");
}

static char *config_json(const Tokenizer *tok) {
    cJSON *cfg = tok->config ? cJSON_Duplicate(tok->config, 1) : cJSON_CreateObject();
    cJSON *dec = cJSON_CreateObject();
    const TokAdded **v = sorted_added(tok);
    for (int a = 0; a < tok->n_added; a++) {
        const TokAdded *t = v[a];
        char key[16];
        snprintf(key, sizeof key, "%d", t->id);
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "content", t->content);
        cJSON_AddBoolToObject(o, "lstrip", t->lstrip);
        cJSON_AddBoolToObject(o, "normalized", t->normalized);
        cJSON_AddBoolToObject(o, "rstrip", t->rstrip);
        cJSON_AddBoolToObject(o, "single_word", t->single_word);
        cJSON_AddBoolToObject(o, "special", t->special);
        cJSON_AddItemToObject(dec, key, o);
    }
    free(v);
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "added_tokens_decoder");
    cJSON_AddItemToObject(cfg, "added_tokens_decoder", dec);
    /* special tokens as plain strings (an AddedToken dict would re-flag the token on load) */
    static const char *keys[] = {"bos_token", "eos_token", "unk_token", "sep_token",
                                 "pad_token", "cls_token", "mask_token"};
    for (int k = 0; k < 7; k++) {
        cJSON *it = cJSON_GetObjectItemCaseSensitive(cfg, keys[k]);
        if (cJSON_IsObject(it)) {
            cJSON *c = cJSON_GetObjectItemCaseSensitive(it, "content");
            cJSON *rep = cJSON_IsString(c) ? cJSON_CreateString(c->valuestring) : cJSON_CreateNull();
            cJSON_ReplaceItemInObjectCaseSensitive(cfg, keys[k], rep);
        }
    }
    if (!cJSON_GetObjectItemCaseSensitive(cfg, "eos_token") && tok->eos_tok)
        cJSON_AddStringToObject(cfg, "eos_token", tok->eos_tok);
    if (!cJSON_GetObjectItemCaseSensitive(cfg, "pad_token") && tok->pad_tok)
        cJSON_AddStringToObject(cfg, "pad_token", tok->pad_tok);
    /* bos/unk stay null unless named: Qwen2Tokenizer's defaults would otherwise add some */
    if (!cJSON_GetObjectItemCaseSensitive(cfg, "bos_token"))
        cJSON_AddItemToObject(cfg, "bos_token", tok->bos_tok ? cJSON_CreateString(tok->bos_tok) : cJSON_CreateNull());
    if (!cJSON_GetObjectItemCaseSensitive(cfg, "unk_token"))
        cJSON_AddItemToObject(cfg, "unk_token", tok->unk_tok ? cJSON_CreateString(tok->unk_tok) : cJSON_CreateNull());
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "tokenizer_class");
    cJSON_AddStringToObject(cfg, "tokenizer_class", "Qwen2Tokenizer");
    char *text = cJSON_Print(cfg);
    cJSON_Delete(cfg);
    return text;
}

int tokenizer_save(const Tokenizer *tok, const char *dir, SrError *err) {
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return sr_fail(err, "%s: cannot create directory (%s)", dir, strerror(errno));
    Str s = {0};
    put_vocab(tok, &s);
    str_cat(&s, "\n");
    int rc = write_atomic(dir, "vocab.json", s.p, s.n, err);
    s.n = 0;
    if (rc == 0) {
        str_cat(&s, "#version: 0.2\n");
        for (int32_t r = 0; r < tok->n_merges; r++) {
            size_t na, nb;
            const char *a = tok_str(tok, tok->merge_list[2 * r], &na);
            const char *b = tok_str(tok, tok->merge_list[2 * r + 1], &nb);
            str_put(&s, a, na);
            str_put(&s, " ", 1);
            str_put(&s, b, nb);
            str_put(&s, "\n", 1);
        }
        rc = write_atomic(dir, "merges.txt", s.p ? s.p : "", s.n, err);
    }
    s.n = 0;
    if (rc == 0) {
        put_tokenizer_json(tok, &s);
        rc = write_atomic(dir, "tokenizer.json", s.p, s.n, err);
    }
    if (rc == 0) {
        char *cfg = config_json(tok);
        rc = write_atomic(dir, "tokenizer_config.json", cfg, strlen(cfg), err);
        free(cfg);
    }
    free(s.p);
    return rc;
}
