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
 * Each file is written atomically (common/fileio.h: temp file, fsync, rename, fsync of dir).
 */
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/fileio.h"
#include "tokenizer_impl.h"

/* one file of the directory, written atomically (common/fileio.h) */
static int write_atomic(const char *dir, const char *name, const char *data, size_t n,
                        SrError *err) {
    char *path = sr_path_join(dir, name);
    int rc = sr_write_file_atomic(path, data, n, err);
    free(path);
    return rc;
}

static const char *tok_str(const Tokenizer *tok, int32_t id, size_t *n) {
    *n = tok->str_len[id];
    return tok->str.p + tok->str_off[id];
}

static void put_vocab(const Tokenizer *tok, SrBuf *s) {
    sr_buf_str(s, "{");
    int first = 1;
    for (int32_t id = 0; id < tok->n_ids; id++) {
        if (!(tok->has_str[id] & 1)) continue;
        size_t n;
        const char *p = tok_str(tok, id, &n);
        if (!first) sr_buf_str(s, ",");
        first = 0;
        sr_buf_json_string(s, p, n);
        sr_buf_printf(s, ":%ld", (long)id);
    }
    sr_buf_str(s, "}");
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

static void put_tokenizer_json(const Tokenizer *tok, SrBuf *s) {
    sr_buf_str(s, "{\n  \"version\": \"1.0\",\n  \"truncation\": null,\n  \"padding\": null,\n  \"added_tokens\": [");
    const TokAdded **v = sorted_added(tok);
    for (int a = 0; a < tok->n_added; a++) {
        const TokAdded *t = v[a];
        sr_buf_str(s, a ? ",\n    {" : "\n    {");
        sr_buf_printf(s, "\"id\": %ld, \"content\": ", (long)t->id);
        sr_buf_json_string(s, t->content, t->len);
        char b[200];
        snprintf(b, sizeof b,
                 ", \"single_word\": %s, \"lstrip\": %s, \"rstrip\": %s, \"normalized\": %s, \"special\": %s}",
                 BOOL(t->single_word), BOOL(t->lstrip), BOOL(t->rstrip), BOOL(t->normalized),
                 BOOL(t->special));
        sr_buf_str(s, b);
    }
    free(v);
    sr_buf_str(s, "\n  ],\n  \"normalizer\": ");
    sr_buf_str(s, tok->do_nfc ? "{\"type\": \"NFC\"}" : "null");
    sr_buf_str(s, ",\n  \"pre_tokenizer\": {\"type\": \"Sequence\", \"pretokenizers\": [{\"type\": \"Split\", "
               "\"pattern\": {\"Regex\": ");
    static const char re[] = "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                             "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
    sr_buf_json_string(s, re, strlen(re));
    sr_buf_str(s, "}, \"behavior\": \"Isolated\", \"invert\": false}, {\"type\": \"ByteLevel\", "
               "\"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}]},\n");
    sr_buf_str(s, "  \"post_processor\": ");
    if (tok->post_processor) {
        char *pp = cJSON_PrintUnformatted(tok->post_processor);
        sr_buf_str(s, pp);
        free(pp);
    } else {
        sr_buf_str(s, "{\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, \"use_regex\": false}");
    }
    sr_buf_str(s, ",\n  \"decoder\": {\"type\": \"ByteLevel\", \"add_prefix_space\": false, \"trim_offsets\": false, "
               "\"use_regex\": false},\n");
    sr_buf_str(s, "  \"model\": {\"type\": \"BPE\", \"dropout\": null, \"unk_token\": null, "
               "\"continuing_subword_prefix\": \"\", \"end_of_word_suffix\": \"\", \"fuse_unk\": false, "
               "\"byte_fallback\": false, \"ignore_merges\": ");
    sr_buf_str(s, BOOL(tok->ignore_merges));
    sr_buf_str(s, ",\n    \"vocab\": ");
    put_vocab(tok, s);
    sr_buf_str(s, ",\n    \"merges\": [");
    for (int32_t r = 0; r < tok->n_merges; r++) {
        size_t na, nb;
        const char *a = tok_str(tok, tok->merge_list[2 * r], &na);
        const char *b = tok_str(tok, tok->merge_list[2 * r + 1], &nb);
        sr_buf_str(s, r ? ",[" : "[");
        sr_buf_json_string(s, a, na);
        sr_buf_str(s, ",");
        sr_buf_json_string(s, b, nb);
        sr_buf_str(s, "]");
    }
    sr_buf_str(s, "]\n  }\n}\n");
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
    if (sr_mkdir_p(dir, err)) return -1;
    SrBuf s = {0};
    put_vocab(tok, &s);
    sr_buf_str(&s, "\n");
    int rc = write_atomic(dir, "vocab.json", s.p, s.n, err);
    sr_buf_clear(&s);
    if (rc == 0) {
        sr_buf_str(&s, "#version: 0.2\n");
        for (int32_t r = 0; r < tok->n_merges; r++) {
            size_t na, nb;
            const char *a = tok_str(tok, tok->merge_list[2 * r], &na);
            const char *b = tok_str(tok, tok->merge_list[2 * r + 1], &nb);
            sr_buf_add(&s, a, na);
            sr_buf_add(&s, " ", 1);
            sr_buf_add(&s, b, nb);
            sr_buf_add(&s, "\n", 1);
        }
        rc = write_atomic(dir, "merges.txt", s.p ? s.p : "", s.n, err);
    }
    sr_buf_clear(&s);
    if (rc == 0) {
        put_tokenizer_json(tok, &s);
        rc = write_atomic(dir, "tokenizer.json", s.p, s.n, err);
    }
    if (rc == 0) {
        char *cfg = config_json(tok);
        rc = write_atomic(dir, "tokenizer_config.json", cfg, strlen(cfg), err);
        free(cfg);
    }
    sr_buf_free(&s);
    return rc;
}
