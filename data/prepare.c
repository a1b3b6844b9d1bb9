/*
 * prepare: annotated JSONL -> chat template -> ids + loss mask -> BFD packing -> shards.
 * (see prepare.h). Rows are read in blocks; each block is tokenized in parallel (the
 * tokenizer is read-only while encoding) and then checked and stored in order, so the output
 * does not depend on the thread count. All documents stay in memory until packing (4 + 1
 * bytes per token).
 */
#include "prepare.h"

#include <cjson/cJSON.h>
#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "chat_template.h"
#include "../common/jsonl.h"
#include "../common/json.h"
#include "pack.h"
#include "shards.h"
#include "tokenizer.h"

#define BLOCK_ROWS 256
#define MAX_REPORTED 20

typedef struct Docs {
    int32_t *tok;
    uint8_t *mask;
    long long n_tok, cap_tok;
    long long *off;
    int *len;
    int n, cap;
} Docs;

static void docs_add(Docs *d, const int32_t *ids, const uint8_t *mask, int n) {
    if (d->n_tok + n > d->cap_tok) {
        d->cap_tok = 2 * (d->n_tok + n);
        d->tok = sr_realloc(d->tok, (size_t)d->cap_tok * sizeof(int32_t));
        d->mask = sr_realloc(d->mask, (size_t)d->cap_tok);
    }
    if (d->n == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 1024;
        d->off = sr_realloc(d->off, (size_t)d->cap * sizeof(long long));
        d->len = sr_realloc(d->len, (size_t)d->cap * sizeof(int));
    }
    memcpy(d->tok + d->n_tok, ids, (size_t)n * sizeof(int32_t));
    memcpy(d->mask + d->n_tok, mask, (size_t)n);
    d->off[d->n] = d->n_tok;
    d->len[d->n] = n;
    d->n++;
    d->n_tok += n;
}

static void docs_free(Docs *d) {
    free(d->tok);
    free(d->mask);
    free(d->off);
    free(d->len);
}

typedef struct RowJob {
    long lineno;
    char *prompt, *completion, *system;
    size_t completion_len;
    char err[256];       /* non-empty: malformed */
    int32_t *ids;
    size_t n, n_prompt;
} RowJob;

static void job_clear(RowJob *j) {
    free(j->prompt);
    free(j->completion);
    free(j->system);
    free(j->ids);
    memset(j, 0, sizeof *j);
}

/* parses one line into a job (strings copied; the cJSON row is freed) */
static void job_parse(RowJob *j, const PrepareOptions *o, const char *line, size_t len, long lineno) {
    j->lineno = lineno;
    SrError pe = {{0}};
    cJSON *row = sr_json_parse(line, len, &pe);
    if (!row || !cJSON_IsObject(row)) {
        snprintf(j->err, sizeof j->err, "%.200s", row ? "row is not a JSON object" : pe.msg);
        cJSON_Delete(row);
        return;
    }
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(row, o->prompt_field);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, o->completion_field);
    const cJSON *s = o->system_field ? cJSON_GetObjectItemCaseSensitive(row, o->system_field) : NULL;
    if (!cJSON_IsString(p)) snprintf(j->err, sizeof j->err, "row has no string field '%s'", o->prompt_field);
    else if (!cJSON_IsString(c)) snprintf(j->err, sizeof j->err, "row has no string field '%s'", o->completion_field);
    else {
        j->prompt = sr_strdup(p->valuestring);
        j->completion = sr_strdup(c->valuestring);
        j->completion_len = strlen(j->completion);
        if (cJSON_IsString(s)) j->system = sr_strdup(s->valuestring);
    }
    cJSON_Delete(row);
}

/* tags must alternate open, close, open, close and end closed */
static int check_tags(const int32_t *ids, size_t n, int32_t open, int32_t close, long *pairs,
                      char *msg, size_t msg_n) {
    int inside = 0;
    long k = 0;
    for (size_t i = 0; i < n; i++) {
        if (ids[i] == open) {
            if (inside) {
                snprintf(msg, msg_n, "<bigmodel> inside an open <bigmodel> span (token %zu)", i);
                return -1;
            }
            inside = 1;
        } else if (ids[i] == close) {
            if (!inside) {
                snprintf(msg, msg_n, "</bigmodel> without an open <bigmodel> (token %zu)", i);
                return -1;
            }
            inside = 0;
            k++;
        }
    }
    if (inside) {
        snprintf(msg, msg_n, "a <bigmodel> span is never closed");
        return -1;
    }
    *pairs = k;
    return 0;
}

static cJSON *index_extra(const PrepareOptions *o, const Tokenizer *tok, int32_t open_id,
                          int32_t close_id, const PrepareStats *st, int max_len) {
    cJSON *x = cJSON_CreateObject();
    cJSON_AddStringToObject(x, "source", o->input);
    cJSON *t = cJSON_AddObjectToObject(x, "tokenizer");
    cJSON_AddStringToObject(t, "path", o->tokenizer);
    cJSON_AddNumberToObject(t, "vocab_size", tokenizer_vocab_size(tok));
    cJSON_AddNumberToObject(t, "bos_id", tokenizer_bos_id(tok));
    cJSON_AddNumberToObject(t, "eos_id", tokenizer_eos_id(tok));
    cJSON_AddNumberToObject(t, "bigmodel_open_id", open_id);
    cJSON_AddNumberToObject(t, "bigmodel_close_id", close_id);
    cJSON *c = cJSON_AddObjectToObject(x, "chat_template");
    cJSON_AddStringToObject(c, "name", "deepseek-r1-distill");
    if (o->system_prompt) cJSON_AddStringToObject(c, "system_prompt", o->system_prompt);
    else cJSON_AddNullToObject(c, "system_prompt");
    if (o->system_field) cJSON_AddStringToObject(c, "system_field", o->system_field);
    cJSON_AddStringToObject(c, "think_prefix", o->think_prefix ? o->think_prefix : R1_THINK_PREFIX);
    cJSON_AddBoolToObject(c, "add_bos", o->add_bos && tokenizer_bos_id(tok) >= 0); /* as written */
    cJSON_AddStringToObject(x, "prompt_field", o->prompt_field);
    cJSON_AddStringToObject(x, "completion_field", o->completion_field);
    cJSON_AddStringToObject(x, "overlong", o->drop_overlong ? "drop" : "truncate");
    cJSON *r = cJSON_AddObjectToObject(x, "rows");
    cJSON_AddNumberToObject(r, "read", st->rows);
    cJSON_AddNumberToObject(r, "documents", st->documents);
    cJSON_AddNumberToObject(r, "malformed", st->malformed);
    cJSON_AddNumberToObject(r, "truncated", st->truncated);
    cJSON_AddNumberToObject(r, "dropped", st->dropped);
    cJSON_AddNumberToObject(r, "tag_pairs", (double)st->tag_pairs);
    cJSON *p = cJSON_AddObjectToObject(x, "packing");
    cJSON_AddStringToObject(p, "algorithm", "best-fit-decreasing");
    cJSON_AddNumberToObject(p, "fill", st->sequences ? (double)st->tokens / ((double)st->sequences * max_len) : 0.0);
    return x;
}

int prepare_run(const PrepareOptions *o, PrepareStats *st, SrError *err) {
    memset(st, 0, sizeof *st);
    double t0 = sr_now();
    if (o->max_length < 2 || o->max_length > SHARD_MAX_LENGTH)
        return sr_fail(err, "--max-length must be in [2, %d] (got %d)", SHARD_MAX_LENGTH, o->max_length);
    if (!o->output) return sr_fail(err, "--output (a directory) is required");
    if (!o->tokenizer) return sr_fail(err, "--tokenizer is required");
    Tokenizer *tok;
    if (tokenizer_load(&tok, o->tokenizer, err)) return -1;
    int32_t open_id, close_id;
    if (tokenizer_add_bigmodel_tokens(tok, &open_id, &close_id, err)) {
        tokenizer_free(tok);
        return sr_fail_prefix(err, "%s", o->tokenizer);
    }
    if (o->add_bos && tokenizer_bos_id(tok) < 0)
        sr_log("%s: the tokenizer has no BOS token: documents start without one (as HF's chat "
               "template renders an unset bos_token)", o->tokenizer);
    int32_t eos = tokenizer_eos_id(tok);
    if (eos < 0) {
        tokenizer_free(tok);
        return sr_fail(err, "%s: the tokenizer has no EOS token (tokenizer_config.json eos_token)", o->tokenizer);
    }
    JsonlReader in;
    if (jsonl_open(&in, o->input, err)) {
        tokenizer_free(tok);
        return -1;
    }
    ChatTemplate tmpl = {o->system_prompt, o->think_prefix, o->add_bos};
    Docs docs = {0};
    RowJob *jobs = sr_calloc(BLOCK_ROWS, sizeof(RowJob));
    uint8_t *mask = NULL;
    size_t mask_cap = 0;
    SrProgress prog;
    sr_progress_start(&prog, "kB", in.file_size > 0 ? (double)in.file_size / 1e3 : 0);
    int rc = 0, got = 1;
    while (!rc && got == 1) {
        int nj = 0;
        while (nj < BLOCK_ROWS && (got = jsonl_next(&in, err)) == 1) job_parse(&jobs[nj++], o, in.line, in.len, in.lineno);
        if (got < 0) {
            rc = -1;
            break;
        }
        int threads = o->threads > 0 ? o->threads : omp_get_max_threads();
#pragma omp parallel for schedule(dynamic, 1) num_threads(threads)
        for (int i = 0; i < nj; i++) {
            RowJob *j = &jobs[i];
            if (j->err[0]) continue;
            SrError e = {{0}};
            ChatTemplate t = tmpl;
            if (j->system) t.system = j->system;
            if (chat_encode(&t, tok, j->prompt, j->completion, j->completion_len, &j->ids, &j->n,
                            &j->n_prompt, &e))
                snprintf(j->err, sizeof j->err, "%.250s", e.msg);
        }
        for (int i = 0; i < nj && !rc; i++) {
            RowJob *j = &jobs[i];
            st->rows++;
            long pairs = 0;
            if (!j->err[0])
                check_tags(j->ids + j->n_prompt, j->n - j->n_prompt, open_id, close_id, &pairs,
                           j->err, sizeof j->err);
            if (j->err[0]) {
                st->malformed++;
                if (o->strict) rc = sr_fail(err, "%s:%ld: %s", o->input, j->lineno, j->err);
                else if (st->malformed <= MAX_REPORTED)
                    sr_log("%s:%ld: %s (row skipped)", o->input, j->lineno, j->err);
                continue;
            }
            int n = (int)(j->n > (size_t)o->max_length ? (size_t)o->max_length : j->n);
            if ((size_t)n < j->n) {
                if (o->drop_overlong) {
                    st->dropped++;
                    continue;
                }
                st->truncated++;
            }
            if ((size_t)n > mask_cap) {
                mask_cap = (size_t)n;
                mask = sr_realloc(mask, mask_cap);
            }
            for (int k = 0; k < n; k++) {
                int32_t id = j->ids[k];
                int in_loss = !o->completion_only_loss || (size_t)k >= j->n_prompt ||
                              id == open_id || id == close_id || id == eos;
                mask[k] = k > 0 && in_loss;
            }
            docs_add(&docs, j->ids, mask, n);
            st->documents++;
            st->tag_pairs += pairs;
            for (int k = 1; k < n; k++) st->loss_tokens += mask[k];
        }
        for (int i = 0; i < nj; i++) job_clear(&jobs[i]);
        sr_progress_update(&prog, (double)in.bytes_in / 1e3);
    }
    st->bytes_in = in.bytes_in;
    jsonl_close(&in);
    free(jobs);
    free(mask);
    if (st->malformed > MAX_REPORTED)
        sr_log("%ld malformed rows in all (the first %d are listed above)", st->malformed, MAX_REPORTED);

    if (!rc && docs.n == 0) rc = sr_fail(err, "%s: no usable rows (%ld read, %ld malformed)", o->input, st->rows, st->malformed);
    if (!rc) {
        /* pack, then write the bins in the order they were opened */
        int *bin_of = sr_malloc((size_t)docs.n * sizeof(int));
        int *order = sr_malloc((size_t)docs.n * sizeof(int));
        int n_bins = pack_bfd(docs.len, docs.n, o->max_length, bin_of, order);
        int *bin_start = sr_calloc((size_t)n_bins + 1, sizeof(int));
        int *bin_docs = sr_malloc((size_t)docs.n * sizeof(int));
        for (int d = 0; d < docs.n; d++) bin_start[bin_of[d] + 1]++;
        for (int b = 0; b < n_bins; b++) bin_start[b + 1] += bin_start[b];
        int *fill = sr_calloc((size_t)n_bins, sizeof(int));
        for (int k = 0; k < docs.n; k++) {
            int d = order[k], b = bin_of[d];
            bin_docs[bin_start[b] + fill[b]++] = d;
        }
        ShardWriterOptions wo = {o->max_length, tokenizer_vocab_size(tok), o->completion_only_loss,
                                 o->shard_tokens, o->chunk_tokens, 0};
        ShardWriter *w;
        rc = shard_writer_open(&w, o->output, &wo, err);
        int32_t *seq = sr_malloc((size_t)o->max_length * sizeof(int32_t));
        uint8_t *smask = sr_malloc((size_t)o->max_length);
        int *lens = sr_malloc((size_t)o->max_length * sizeof(int));
        for (int b = 0; b < n_bins && !rc; b++) {
            int n = 0, nd = 0;
            for (int k = bin_start[b]; k < bin_start[b + 1]; k++) {
                int d = bin_docs[k];
                memcpy(seq + n, docs.tok + docs.off[d], (size_t)docs.len[d] * sizeof(int32_t));
                memcpy(smask + n, docs.mask + docs.off[d], (size_t)docs.len[d]);
                n += docs.len[d];
                lens[nd++] = docs.len[d];
            }
            rc = shard_writer_add(w, seq, smask, n, lens, nd, err);
            st->tokens += n;
            st->sequences++;
        }
        if (!rc) {
            cJSON *extra = index_extra(o, tok, open_id, close_id, st, o->max_length);
            rc = shard_writer_finish(w, extra, err);
            cJSON_Delete(extra);
        } else if (w) {
            shard_writer_abort(w);
        }
        free(lens);
        free(smask);
        free(seq);
        free(fill);
        free(bin_docs);
        free(bin_start);
        free(order);
        free(bin_of);
    }
    docs_free(&docs);
    tokenizer_free(tok);
    st->seconds = sr_now() - t0;
    if (!rc) {
        prog.done = (double)st->bytes_in / 1e3;
        sr_progress_end(&prog);
    }
    return rc;
}
