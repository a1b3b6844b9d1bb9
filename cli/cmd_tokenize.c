/*
 * splitreason tokenize: JSONL text rows -> one JSON array of ids per row (or, with --decode,
 * arrays of ids -> one JSON string per row).
 */
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../data/tokenizer.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"tokenizer", SR_OPT_STR, "null", "tokenizer: a tokenizer.json, or a directory (model dir, or vocab.json + merges.txt + tokenizer_config.json)", SR_REQUIRED},
    {"input", SR_OPT_STR, "null", "JSONL input (- for stdin)", SR_REQUIRED},
    {"field", SR_OPT_STR, "\"text\"", "field of each row to tokenize (rows may also be bare JSON strings)", SR_REQUIRED},
    {"output", SR_OPT_STR, "null", "output file (default: stdout)"},
    {"decode", SR_OPT_BOOL, "false", "decode: each row is a JSON array of ids (or an object with 'ids'); print one JSON string per row"},
    {"add_bigmodel_tokens", SR_OPT_BOOL, "true", "add <bigmodel> and </bigmodel> if the tokenizer lacks them"},
};

/* the text of one row: a bare string, or row[field] */
static const cJSON *row_text(const cJSON *row, const char *field) {
    if (cJSON_IsString(row)) return row;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, field);
    return cJSON_IsString(v) ? v : NULL;
}

static int run(SrConfig *cfg, SrError *err) {
    const char *tok_path = sr_config_str(cfg, "tokenizer");
    const char *field = sr_config_str(cfg, "field");
    int decode = sr_config_bool(cfg, "decode");
    if (sr_check_output("--output", sr_config_str(cfg, "output"), 0, "--input", sr_config_str(cfg, "input"), err) ||
        sr_check_output("--output", sr_config_str(cfg, "output"), 0, "--tokenizer", tok_path, err))
        return -1;
    Tokenizer *tok = NULL;
    if (tokenizer_load(&tok, tok_path, err)) return -1;
    if (sr_config_bool(cfg, "add_bigmodel_tokens")) {
        int32_t a, b;
        if (tokenizer_add_bigmodel_tokens(tok, &a, &b, err)) {
            tokenizer_free(tok);
            return sr_fail_prefix(err, "%s", tok_path);
        }
    }
    JsonlReader in;
    if (jsonl_open(&in, sr_config_str(cfg, "input"), err)) {
        tokenizer_free(tok);
        return -1;
    }
    SrOutFile out;
    if (sr_out_open(&out, sr_config_str(cfg, "output"), err)) {
        jsonl_close(&in);
        tokenizer_free(tok);
        return -1;
    }
    int rc = 0, got;
    long rows = 0;
    int32_t *dec_ids = NULL;
    size_t dec_cap = 0;
    while ((got = jsonl_next(&in, err)) == 1) {
        cJSON *row = jsonl_parse_line(&in, err);
        if (!row) {
            rc = -1;
            break;
        }
        if (!decode) {
            const cJSON *t = row_text(row, field);
            if (!t) {
                rc = sr_fail(err, "%s:%ld: row has no string field '%s'", in.path, in.lineno, field);
                cJSON_Delete(row);
                break;
            }
            int32_t *ids = NULL;
            size_t n = 0;
            if (tokenizer_encode(tok, t->valuestring, strlen(t->valuestring), &ids, &n, err)) {
                sr_fail_prefix(err, "%s:%ld", in.path, in.lineno);
                rc = -1;
                cJSON_Delete(row);
                break;
            }
            fputc('[', out.f);
            for (size_t i = 0; i < n; i++) fprintf(out.f, i ? ", %d" : "%d", ids[i]);
            fputs("]\n", out.f);
            free(ids);
        } else {
            const cJSON *arr = cJSON_IsArray(row) ? row : cJSON_GetObjectItemCaseSensitive(row, "ids");
            if (!cJSON_IsArray(arr)) {
                rc = sr_fail(err, "%s:%ld: expected a JSON array of ids (or an object with 'ids')",
                             in.path, in.lineno);
                cJSON_Delete(row);
                break;
            }
            size_t n = (size_t)cJSON_GetArraySize(arr), i = 0;
            if (n > dec_cap) dec_ids = sr_realloc(dec_ids, (dec_cap = n) * sizeof(int32_t));
            const cJSON *it;
            cJSON_ArrayForEach(it, arr) {
                /* an id the tokenizer lacks decodes to nothing (as HF); a value that is no
                 * id at all (1.5, -1, 2^31, "x") is an error naming the element */
                if (!cJSON_IsNumber(it)) {
                    rc = sr_fail(err, "%s:%ld: element %zu of the ids is not a number", in.path, in.lineno, i);
                    break;
                }
                double d = it->valuedouble;
                if (!(d >= 0 && d < 2147483648.0) || d != (double)(int64_t)d) {
                    rc = sr_fail(err, "%s:%ld: element %zu of the ids (%.17g) is not a token id (an integer "
                                 "in [0, 2^31))", in.path, in.lineno, i, d);
                    break;
                }
                dec_ids[i++] = (int32_t)d;
            }
            if (rc) {
                cJSON_Delete(row);
                break;
            }
            char *text = NULL;
            size_t len = 0;
            if (tokenizer_decode(tok, dec_ids, n, &text, &len, err)) {
                sr_fail_prefix(err, "%s:%ld", in.path, in.lineno);
                rc = -1;
                cJSON_Delete(row);
                break;
            }
            sr_json_write_string(out.f, text, len);
            fputc('\n', out.f);
            free(text);
        }
        cJSON_Delete(row);
        rows++;
    }
    if (got < 0) rc = -1;
    free(dec_ids);
    jsonl_close(&in);
    if (rc) sr_out_abort(&out);
    else rc = sr_out_commit(&out, err);
    tokenizer_free(tok);
    if (!rc) fprintf(stderr, "[splitreason] tokenize: %ld rows\n", rows);
    return rc;
}

const SrCommand sr_cmd_tokenize = {
    "tokenize", "text <-> token ids with the Qwen2 tokenizer (HF-identical ids)",
    "splitreason tokenize --tokenizer DIR --input FILE.jsonl [--field text] [--decode] [--output FILE]",
    "Encodes the --field string of each JSONL row and prints one JSON array of ids per row.\n"
    "With --decode, each row is an array of ids and one JSON string is printed per row\n"
    "(bytes that are not valid UTF-8 print as U+FFFD; an id the tokenizer does not have, such\n"
    "as a padding row of the embedding, prints nothing, as in Hugging Face). '<\\bigmodel>' in\n"
    "text is read as the </bigmodel> token.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL,
};
