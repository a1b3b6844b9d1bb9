/*
 * splitreason score: teacher-forced log-probs. For each JSONL row, the --field text is
 * tokenized and every token's log p(token | tokens before it) under the model is written:
 *   {"row": 0, "ids": [...], "logprobs": [null, -3.2, ...], "n_tokens": n,
 *    "sum_logprob": s, "mean_nll": -s/(n-1)}
 * logprobs[i] belongs to ids[i]; the first token has no context and gets null, and so does a
 * value that is not a number (NaN weights: JSON has no NaN). With
 * --add-bos the tokenizer's BOS is prepended (then ids[0] is BOS). Rows are packed into
 * batches of up to --batch-tokens tokens as separate documents (no cross-attention).
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"model", SR_OPT_STR, "null", "HF model directory (config.json, safetensors, tokenizer)", SR_REQUIRED},
    {"input", SR_OPT_STR, "null", "JSONL input (- for stdin)", SR_REQUIRED},
    {"field", SR_OPT_STR, "\"text\"", "field of each row to score (rows may also be bare JSON strings)", SR_REQUIRED},
    {"output", SR_OPT_STR, "null", "JSONL output (default: stdout)"},
    {"add_bos", SR_OPT_BOOL, "false", "prepend the tokenizer's BOS token"},
    {"batch_tokens", SR_OPT_INT, "2048", "tokens per forward pass (rows are packed as documents)", SR_RANGE(1, 1048576)},
    {"device", SR_OPT_STR, "\"cpu\"", "cpu or cuda", SR_CHOICES("cpu", "cuda"), SR_REQUIRED},
};

typedef struct Row {
    long index;
    int32_t *ids;
    int n;
} Row;

/* one output row; a log-prob or sum that is not a number (NaN weights) is written as null */
static int write_row(FILE *f, SrBuf *l, const Row *r, const float *lp, SrError *err) {
    double sum = 0;
    sr_buf_clear(l);
    sr_buf_printf(l, "{\"row\": %ld, \"ids\": [", r->index);
    for (int i = 0; i < r->n; i++) sr_buf_printf(l, i ? ", %d" : "%d", r->ids[i]);
    sr_buf_str(l, "], \"logprobs\": [");
    for (int i = 0; i < r->n; i++) {
        if (i == 0) {
            sr_buf_str(l, "null");
            continue;
        }
        sr_buf_str(l, ", ");
        sr_buf_json_float(l, lp[i - 1]);
        sum += lp[i - 1];
    }
    sr_buf_printf(l, "], \"n_tokens\": %d, \"sum_logprob\": ", r->n);
    sr_buf_json_number(l, sum);
    sr_buf_str(l, ", \"mean_nll\": ");
    sr_buf_json_number(l, r->n > 1 ? -sum / (r->n - 1) : 0.0);
    sr_buf_str(l, "}\n");
    if (fwrite(l->p, 1, l->n, f) != l->n)
        return sr_fail(err, "writing row %ld: %s", r->index, strerror(errno));
    return 0;
}

/* What one forward over N tokens allocates (the model's workspace, the batch's arrays),
 * checked before it is allocated; `what` names the request. */
static int check_batch_memory(const Qwen2Model *m, long N, const char *what, SrError *err) {
    const char *bound = NULL;
    size_t lim = sr_backend_memory_limit(m->be, &bound);
    double need = N > INT_MAX ? 1e30 : (double)qwen2_train_act_bytes(m, (int)N);
    if (m->be->device == SR_DEVICE_CPU) need += (double)N * 16.0;
    if (need > (double)lim)
        return sr_fail(err, "%s: a forward over %ld tokens needs %.0f bytes (%.1f GiB), more than "
                            "%s (%.1f GiB)", what, N, need, need / 1073741824.0, bound,
                       (double)lim / 1073741824.0);
    return 0;
}

/* one forward over the packed rows; writes their results in order */
static int score_batch(Qwen2Model *m, Row *rows, int n_rows, FILE *out, SrBuf *line,
                       SrError *err) {
    int N = 0;
    for (int r = 0; r < n_rows; r++) N += rows[r].n;
    if (check_batch_memory(m, N, "a batch of rows", err)) return -1;
    int32_t *ids = sr_malloc((size_t)N * sizeof(int32_t));
    int32_t *pos = sr_malloc((size_t)N * sizeof(int32_t));
    int32_t *tgt = sr_malloc((size_t)N * sizeof(int32_t));
    float *lp = sr_malloc((size_t)N * sizeof(float));
    int off = 0;
    for (int r = 0; r < n_rows; r++) {
        for (int i = 0; i < rows[r].n; i++) {
            ids[off + i] = rows[r].ids[i];
            pos[off + i] = i;
            tgt[off + i] = i + 1 < rows[r].n ? rows[r].ids[i + 1] : -1;
        }
        off += rows[r].n;
    }
    /* empty texts still get their (empty) output row */
    int rc = N > 0 ? qwen2_forward(m, ids, pos, tgt, NULL, N, NULL, lp, err) : 0;
    if (!rc) {
        off = 0;
        for (int r = 0; !rc && r < n_rows; r++) {
            rc = write_row(out, line, &rows[r], lp + off, err);
            off += rows[r].n;
        }
    }
    free(lp);
    free(tgt);
    free(pos);
    free(ids);
    return rc;
}

static int run(SrConfig *cfg, SrError *err) {
    SrBackend be;
    Qwen2Model m;
    Tokenizer *tok;
    const char *field = sr_config_str(cfg, "field");
    int batch_tokens = (int)sr_config_int(cfg, "batch_tokens");
    if (sr_check_output("--output", sr_config_str(cfg, "output"), 0, "--input", sr_config_str(cfg, "input"), err) ||
        sr_check_output("--output", sr_config_str(cfg, "output"), 0, "--model", sr_config_str(cfg, "model"), err))
        return -1;
    if (sr_load_model_dir(sr_config_str(cfg, "model"), sr_config_str(cfg, "device"), &be, &m, &tok,
                          err))
        return -1;
    /* a batch of --batch-tokens tokens must fit before the first row is read (a row longer
     * than that runs alone, up to max_position_embeddings, and is checked when it comes) */
    char what[64];
    snprintf(what, sizeof what, "--batch-tokens %d", batch_tokens);
    if (check_batch_memory(&m, batch_tokens, what, err)) {
        sr_unload_model_dir(&be, &m, tok);
        return -1;
    }
    int32_t bos = tokenizer_bos_id(tok);
    int add_bos = sr_config_bool(cfg, "add_bos");
    if (add_bos && bos < 0) {
        sr_unload_model_dir(&be, &m, tok);
        return sr_fail(err, "--add-bos: the tokenizer has no BOS token");
    }
    JsonlReader in;
    SrOutFile out;
    if (jsonl_open(&in, sr_config_str(cfg, "input"), err)) {
        sr_unload_model_dir(&be, &m, tok);
        return -1;
    }
    if (sr_out_open(&out, sr_config_str(cfg, "output"), err)) {
        jsonl_close(&in);
        sr_unload_model_dir(&be, &m, tok);
        return -1;
    }
    int cap = 16, n_rows = 0, batch_n = 0, rc = 0, got;
    SrBuf line = {0};
    long index = 0, total_tokens = 0;
    Row *rows = sr_malloc((size_t)cap * sizeof(Row));
    SrProgress prog;
    sr_progress_start(&prog, "tokens", 0);
    while ((got = jsonl_next(&in, err)) == 1) {
        cJSON *row = jsonl_parse_line(&in, err);
        if (!row) {
            rc = -1;
            break;
        }
        const cJSON *t = cJSON_IsString(row) ? row : cJSON_GetObjectItemCaseSensitive(row, field);
        if (!cJSON_IsString(t)) {
            rc = sr_fail(err, "%s:%ld: row has no string field '%s'", in.path, in.lineno, field);
            cJSON_Delete(row);
            break;
        }
        int32_t *ids = NULL;
        size_t n = 0;
        rc = tokenizer_encode(tok, t->valuestring, strlen(t->valuestring), &ids, &n, err);
        cJSON_Delete(row);
        if (rc) {
            sr_fail_prefix(err, "%s:%ld", in.path, in.lineno);
            break;
        }
        if (add_bos) {
            ids = sr_realloc(ids, (n + 1) * sizeof(int32_t));
            memmove(ids + 1, ids, n * sizeof(int32_t));
            ids[0] = bos;
            n++;
        }
        if ((long)n > m.cfg.max_position_embeddings) {
            free(ids);
            rc = sr_fail(err, "%s:%ld: %zu tokens exceed max_position_embeddings %d", in.path,
                         in.lineno, n, m.cfg.max_position_embeddings);
            break;
        }
        if (n_rows > 0 && batch_n + (int)n > batch_tokens) {
            rc = score_batch(&m, rows, n_rows, out.f, &line, err);
            for (int r = 0; r < n_rows; r++) free(rows[r].ids);
            n_rows = batch_n = 0;
            if (rc) {
                free(ids);
                break;
            }
            sr_progress_update(&prog, (double)total_tokens);
        }
        if (n_rows == cap) rows = sr_realloc(rows, (size_t)(cap *= 2) * sizeof(Row));
        rows[n_rows++] = (Row){index++, ids, (int)n};
        batch_n += (int)n;
        total_tokens += (long)n;
    }
    if (got < 0) rc = -1;
    if (!rc && n_rows > 0) rc = score_batch(&m, rows, n_rows, out.f, &line, err);
    for (int r = 0; r < n_rows; r++) free(rows[r].ids);
    free(rows);
    sr_buf_free(&line);
    if (!rc) {
        prog.done = (double)total_tokens;
        sr_progress_end(&prog);
    }
    jsonl_close(&in);
    if (rc) sr_out_abort(&out);
    else rc = sr_out_commit(&out, err);
    sr_unload_model_dir(&be, &m, tok);
    return rc;
}

const SrCommand sr_cmd_score = {
    "score", "teacher-forced log-prob of every token of each row",
    "splitreason score --model DIR --input FILE.jsonl [--field text] --output FILE.jsonl",
    "Writes, per input row, the token ids and each token's log-prob given the tokens before\n"
    "it: {\"row\", \"ids\", \"logprobs\" (null for the first token), \"n_tokens\", \"sum_logprob\",\n"
    "\"mean_nll\"}. Rows are scored independently (packed as separate documents).",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL,
};
