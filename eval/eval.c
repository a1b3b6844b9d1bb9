/*
 * splitreason eval (see eval.h): prompts, decoding through split_generate in chunks, grading
 * each finished sample, samples.jsonl rows appended as they finish (fsync), --resume, and the
 * summary.
 */
#include "eval.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../common/buf.h"
#include "../common/config.h"
#include "../common/fileio.h"
#include "../common/json.h"
#include "../common/jsonl.h"
#include "../common/log.h"
#include "../data/chat_template.h"
#include "../engine/engine.h"
#include "../engine/latency.h"
#include "../grade/grade.h"
#include "benchmarks.h"
#include "report.h"

#define EVAL_DEFAULT_MAX_NEW 32768

typedef struct Run {
    const EvalOptions *o;
    const Tokenizer *tok;
    EvalBenchmark bench;
    int K;
    int32_t **prompts;
    int *prompt_lens;
    SplitConfig cfg;
    int32_t stop_ids[2];
    LatencyTable *lat;
    int lat_batch;          /* the batch size the latency table is read at */
    SrGrader *grader;
    int fd;                 /* samples.jsonl (append), -1 without --output */
    char *samples_path;
    unsigned char *done;    /* [n_problems * K] */
    EvalRow *rows;
    int n_rows;
    size_t rows_cap;
    const int *req_problem, *req_sample; /* the chunk being decoded */
    SrBuf line;
    SrProgress prog;
    int n_new;
} Run;

int eval_prompt_ids(const Tokenizer *tok, const char *problem, const char *system,
                    const char *instruction, int32_t **ids, int *n, SrError *err) {
    ChatTemplate t = {system, R1_THINK_PREFIX, 1};
    SrBuf user = {0};
    if (instruction && instruction[0]) sr_buf_printf(&user, "%s\n%s", problem, instruction);
    else sr_buf_str(&user, problem);
    char *text = chat_prompt_text(&t, user.p);
    sr_buf_free(&user);
    int32_t *enc = NULL;
    size_t ne = 0;
    int rc = tokenizer_encode(tok, text, strlen(text), &enc, &ne, err);
    free(text);
    if (rc) return -1;
    int32_t bos = tokenizer_bos_id(tok);
    int nb = bos >= 0;
    *ids = sr_malloc((ne + 1) * sizeof(int32_t));
    if (nb) (*ids)[0] = bos;
    memcpy(*ids + nb, enc, ne * sizeof(int32_t));
    free(enc);
    *n = (int)ne + nb;
    return 0;
}

/* ---- run.json: the settings a resume must match ------------------------------------------ */

/* a float option as the user wrote it (0.6, not 0.600000023841858) */
static double fnum(float v) {
    char b[32];
    snprintf(b, sizeof b, "%.7g", (double)v);
    return strtod(b, NULL);
}

static cJSON *settings_json(const Run *R) {
    const EvalOptions *o = R->o;
    const SplitConfig *c = &R->cfg;
    cJSON *s = cJSON_CreateObject();
    cJSON_AddStringToObject(s, "small", o->small_dir ? o->small_dir : "");
    if (o->big_dir) cJSON_AddStringToObject(s, "big", o->big_dir);
    else cJSON_AddNullToObject(s, "big");
    cJSON_AddStringToObject(s, "benchmark", o->benchmark);
    cJSON_AddNumberToObject(s, "n_problems", R->bench.n);
    cJSON_AddStringToObject(s, "mode", split_mode_name(c->mode));
    cJSON_AddNumberToObject(s, "samples", R->K);
    cJSON_AddNumberToObject(s, "max_new_tokens", c->max_new_tokens);
    cJSON_AddNumberToObject(s, "temperature", fnum(c->sampling.temperature));
    cJSON_AddNumberToObject(s, "top_p", fnum(c->sampling.top_p));
    cJSON_AddNumberToObject(s, "seed", (double)c->seed);
    cJSON_AddBoolToObject(s, "system_prompt", o->system_prompt != 0);
    const char *instr = o->system_prompt ? NULL : o->instruction;
    cJSON_AddStringToObject(s, "instruction", instr ? instr : "");
    if (o->system) cJSON_AddStringToObject(s, "system", o->system);
    else cJSON_AddNullToObject(s, "system");
    cJSON_AddStringToObject(s, "end_rule", split_end_rule_name(c->end_rule));
    cJSON_AddNumberToObject(s, "close_threshold", fnum(c->close_threshold));
    cJSON_AddNumberToObject(s, "max_span_tokens", c->max_span_tokens);
    cJSON_AddNumberToObject(s, "random_share", c->random_share);
    cJSON_AddNumberToObject(s, "random_span", c->random_span);
    if (o->latency_table) cJSON_AddStringToObject(s, "latency_table", o->latency_table);
    else cJSON_AddNullToObject(s, "latency_table");
    /* the latency is read at the batch size the run decodes at: with a table, --batch is a
     * setting of the results; without one it is only speed, and a resume may change it */
    if (o->latency_table) cJSON_AddNumberToObject(s, "latency_batch", R->lat_batch);
    else cJSON_AddNullToObject(s, "latency_batch");
    return s;
}

/* the first setting that differs, named with both values */
static int settings_match(const cJSON *old, const cJSON *now, const char *path, SrError *err) {
    const cJSON *it;
    cJSON_ArrayForEach(it, now) {
        const cJSON *was = cJSON_GetObjectItemCaseSensitive(old, it->string);
        if (was && cJSON_Compare(was, it, 1)) continue;
        char *a = was ? cJSON_PrintUnformatted(was) : sr_strdup("(missing)");
        char *b = cJSON_PrintUnformatted(it);
        char sa[72], sb[72];
        sr_fail(err, "--resume: %s was written with %s = %s, this run has %s (resume with the same settings, or choose another --output)",
                path, it->string, sr_oneline(a, sa, sizeof sa), sr_oneline(b, sb, sizeof sb));
        free(a);
        free(b);
        return -1;
    }
    return 0;
}

/* ---- samples.jsonl on resume ----------------------------------------------------------------- */

static int find_problem(const EvalBenchmark *b, const char *id) {
    for (int i = 0; i < b->n; i++)
        if (strcmp(b->items[i].id, id) == 0) return i;
    return -1;
}

static char *id_text(const cJSON *v) {
    if (cJSON_IsNumber(v)) return eval_number_text(v->valuedouble);
    return cJSON_PrintUnformatted(v);
}

static int get_int(const cJSON *row, const char *key, int lo, int hi, int *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return -1;
    *out = (int)v->valuedouble;
    return 0;
}

static int get_num(const cJSON *row, const char *key, int *have, double *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, key);
    if (cJSON_IsNull(v)) {
        *have = 0;
        *out = 0;
        return 0;
    }
    if (!cJSON_IsNumber(v)) return -1;
    *out = v->valuedouble;
    return 0;
}

static void add_row(Run *R, const EvalRow *r) {
    R->rows = sr_array_reserve(R->rows, &R->rows_cap, (size_t)R->n_rows + 1, sizeof *R->rows);
    R->rows[R->n_rows++] = *r;
    R->done[(size_t)r->problem * R->K + r->sample] = 1;
}

static int parse_row(Run *R, const cJSON *row, const char *path, long lineno, SrError *err) {
    const cJSON *pid = cJSON_GetObjectItemCaseSensitive(row, "problem_id");
    if (!cJSON_IsObject(row) || !(cJSON_IsNumber(pid) || cJSON_IsString(pid)))
        return sr_fail(err, "%s:%ld: row has no problem_id", path, lineno);
    char *id = id_text(pid);
    EvalRow r = {0};
    r.problem = find_problem(&R->bench, id);
    char sid[72];
    sr_oneline(id, sid, sizeof sid);
    free(id);
    if (r.problem < 0)
        return sr_fail(err, "%s:%ld: problem_id %s is not a problem of --benchmark %s (another run's file?)",
                       path, lineno, sid, R->o->benchmark);
    if (get_int(row, "sample", 0, R->K - 1, &r.sample))
        return sr_fail(err, "%s:%ld: sample must be a whole number in [0, %d]", path, lineno, R->K - 1);
    if (R->done[(size_t)r.problem * R->K + r.sample])
        return sr_fail(err, "%s:%ld: problem_id %s sample %d is already on an earlier line", path, lineno,
                       sid, r.sample);
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(row, "correct");
    if (!cJSON_IsBool(c)) return sr_fail(err, "%s:%ld: correct must be true or false", path, lineno);
    r.correct = cJSON_IsTrue(c);
    const char *bad = NULL;
    if (get_int(row, "small_tokens", 0, 1 << 30, &r.small_tokens)) bad = "small_tokens";
    else if (get_int(row, "big_tokens", 0, 1 << 30, &r.big_tokens)) bad = "big_tokens";
    else if (get_int(row, "switches", 0, 1 << 30, &r.switches)) bad = "switches";
    if (bad) return sr_fail(err, "%s:%ld: %s must be a whole number >= 0", path, lineno, bad);
    int have = 1, h2 = 1, h3 = 1, hw = 1;
    if (get_num(row, "modelled_latency", &have, &r.latency) ||
        get_num(row, "modelled_latency_small_only", &h2, &r.latency_small) ||
        get_num(row, "modelled_latency_big_only", &h3, &r.latency_big) ||
        get_num(row, "wall_time_s", &hw, &r.wall_time_s))
        return sr_fail(err, "%s:%ld: modelled_latency(_small_only, _big_only) and wall_time_s must be numbers or null",
                       path, lineno);
    r.has_latency = have && h2 && h3;
    if (r.has_latency != (R->lat != NULL))
        return sr_fail(err, "%s:%ld: modelled_latency is %s but this run %s a latency table", path, lineno,
                       have ? "a number" : "null", R->lat ? "has" : "has no");
    add_row(R, &r);
    return 0;
}

/* Cuts a partial last line (a kill mid-write), then reads the finished rows. */
static int load_samples(Run *R, SrError *err) {
    const char *path = R->samples_path;
    int fd = open(path, O_RDWR);
    if (fd < 0) {
        if (errno == ENOENT) return 0;
        return sr_fail(err, "%s: %s", path, strerror(errno));
    }
    struct stat st;
    if (fstat(fd, &st)) {
        close(fd);
        return sr_fail(err, "%s: %s", path, strerror(errno));
    }
    off_t end = st.st_size;
    char buf[4096];
    off_t keep = 0; /* bytes up to and including the last '\n' */
    for (off_t pos = end; pos > 0 && keep == 0;) {
        size_t n = (size_t)(pos > (off_t)sizeof buf ? (off_t)sizeof buf : pos);
        pos -= (off_t)n;
        if (pread(fd, buf, n, pos) != (ssize_t)n) {
            close(fd);
            return sr_fail(err, "%s: %s", path, strerror(errno));
        }
        for (size_t i = n; i > 0; i--)
            if (buf[i - 1] == '\n') {
                keep = pos + (off_t)i;
                break;
            }
    }
    if (keep < end) {
        sr_log("eval: %s: dropping a partial last line (%lld bytes) left by an interrupted run", path,
               (long long)(end - keep));
        if (ftruncate(fd, keep) || fsync(fd)) {
            close(fd);
            return sr_fail(err, "%s: cutting the partial last line: %s", path, strerror(errno));
        }
    }
    close(fd);
    JsonlReader r;
    if (jsonl_open(&r, path, err)) return -1;
    int got, rc = 0;
    while ((got = jsonl_next(&r, err)) == 1) {
        cJSON *row = jsonl_parse_line(&r, err);
        if (!row || parse_row(R, row, path, r.lineno, err)) rc = -1;
        cJSON_Delete(row);
        if (rc) break;
    }
    if (got < 0) rc = -1;
    jsonl_close(&r);
    return rc;
}

/* ---- the output directory ------------------------------------------------------------------ */

static int open_output(Run *R, const cJSON *settings, SrError *err) {
    const char *dir = R->o->output;
    struct stat st;
    if (stat(dir, &st) == 0 && !S_ISDIR(st.st_mode))
        return sr_fail(err, "--output %s exists and is not a directory", dir);
    char *run_path = sr_path_join(dir, "run.json");
    char *sum_path = sr_path_join(dir, "summary.json");
    R->samples_path = sr_path_join(dir, "samples.jsonl");
    int has_run = sr_file_exists(run_path), rc = 0;
    if (!R->o->resume && (has_run || sr_file_exists(R->samples_path) || sr_file_exists(sum_path))) {
        rc = sr_fail(err, "--output %s already holds a run (%s); add --resume to continue it, or choose another directory",
                     dir, has_run ? "run.json" : "samples.jsonl");
    } else if (R->o->resume && !has_run && sr_file_exists(R->samples_path)) {
        rc = sr_fail(err, "--resume: %s has samples.jsonl but no run.json: not a run this command wrote", dir);
    } else if (sr_mkdir_p(dir, err)) {
        rc = sr_fail_prefix(err, "--output");
    } else if (has_run) {
        cJSON *old = sr_json_read_object_file(run_path, err);
        const cJSON *os = old ? cJSON_GetObjectItemCaseSensitive(old, "settings") : NULL;
        if (!old) rc = -1;
        else if (!cJSON_IsObject(os)) rc = sr_fail(err, "%s: no \"settings\" object", run_path);
        else rc = settings_match(os, settings, run_path, err);
        cJSON_Delete(old);
        if (!rc) rc = load_samples(R, err);
        if (!rc && R->n_rows) sr_log("eval: resuming: %d of %d samples already in %s", R->n_rows,
                                     R->bench.n * R->K, R->samples_path);
    } else {
        SrBuf b = {0};
        char *s = cJSON_Print(settings);
        sr_buf_printf(&b, "{\"command\": \"eval\", \"version\": \"%s\", \"settings\": %s}\n", SR_VERSION, s);
        free(s);
        rc = sr_write_file_atomic(run_path, b.p, b.n, err);
        sr_buf_free(&b);
    }
    if (!rc) {
        R->fd = open(R->samples_path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (R->fd < 0) rc = sr_fail(err, "%s: %s", R->samples_path, strerror(errno));
    }
    free(run_path);
    free(sum_path);
    return rc;
}

/* ---- one finished request ------------------------------------------------------------------ */

static int is_stop(const Run *R, int32_t id) {
    for (int i = 0; i < R->cfg.n_stop_ids; i++)
        if (R->cfg.stop_ids[i] == id) return 1;
    return 0;
}

static void json_ints(SrBuf *b, const int32_t *v, int n) {
    sr_buf_char(b, '[');
    for (int i = 0; i < n; i++) sr_buf_printf(b, i ? ", %d" : "%d", v[i]);
    sr_buf_char(b, ']');
}

static void json_int_list(SrBuf *b, const int *v, int n) {
    sr_buf_char(b, '[');
    for (int i = 0; i < n; i++) sr_buf_printf(b, i ? ", %d" : "%d", v ? v[i] : 0);
    sr_buf_char(b, ']');
}

static void json_num_or_null(SrBuf *b, int have, double v) {
    if (have) sr_buf_json_number(b, v);
    else sr_buf_str(b, "null");
}

static int on_done(void *user, int req, const SplitResult *r, SrError *err) {
    Run *R = user;
    int p = R->req_problem[req], s = R->req_sample[req];
    const EvalProblem *pr = &R->bench.items[p];
    /* the completion: every id but a final stop id (the EOS is the finish, not text); the
     * graded text also leaves out the tags, as the reward does */
    int n = r->n;
    if (n > 0 && r->finish == SR_FINISH_STOP_ID && is_stop(R, r->ids[n - 1])) n--;
    int32_t *plain = sr_malloc((size_t)(n > 0 ? n : 1) * sizeof(int32_t));
    int np = 0;
    for (int i = 0; i < n; i++)
        if (r->ids[i] != R->cfg.open_id && r->ids[i] != R->cfg.close_id) plain[np++] = r->ids[i];
    char *text = NULL, *graded = NULL;
    size_t tl = 0, gl = 0;
    if (tokenizer_decode(R->tok, r->ids, (size_t)n, &text, &tl, err) ||
        tokenizer_decode(R->tok, plain, (size_t)np, &graded, &gl, err)) {
        free(plain);
        free(text);
        return sr_fail_prefix(err, "problem %s sample %d", pr->id, s);
    }
    free(plain);
    SrGradeResult g;
    sr_grader_grade_n(R->grader, graded, gl, pr->answer, strlen(pr->answer), &g);
    free(graded);

    EvalRow row = {.problem = p, .sample = s, .correct = g.verdict == SR_VERDICT_CORRECT,
                   .small_tokens = r->small_tokens, .big_tokens = r->big_tokens,
                   .switches = r->switches, .has_latency = R->lat != NULL,
                   .wall_time_s = r->wall_time_s};
    if (R->lat) {
        /* T_split and the same tokens all on one model, read at the same batch and final
         * context, so that the speed-ups compare like with like */
        int ctx = R->prompt_lens[p] + r->n, all = r->small_tokens + r->big_tokens;
        row.latency = latency_t_split(R->lat, R->lat_batch, ctx, r->small_tokens, r->big_tokens,
                                      r->switches, r->delta_big, r->delta_small);
        row.latency_small = latency_t_split(R->lat, R->lat_batch, ctx, all, 0, 0, NULL, NULL);
        row.latency_big = latency_t_split(R->lat, R->lat_batch, ctx, 0, all, 0, NULL, NULL);
    }

    SrBuf *b = &R->line;
    sr_buf_clear(b);
    sr_buf_printf(b, "{\"problem_id\": %s, \"sample\": %d, \"completion\": ", pr->id, s);
    sr_buf_json_string(b, text, tl);
    free(text);
    sr_buf_str(b, ", \"prompt_ids\": ");
    json_ints(b, R->prompts[p], R->prompt_lens[p]);
    sr_buf_str(b, ", \"ids\": ");
    json_ints(b, r->ids, r->n);
    sr_buf_str(b, ", \"owner\": [");
    for (int i = 0; i < r->n; i++) sr_buf_printf(b, i ? ", \"%c\"" : "\"%c\"", r->owner[i] == 'b' ? 'b' : 's');
    sr_buf_str(b, "], \"answer\": ");
    sr_buf_json_string(b, pr->answer, strlen(pr->answer));
    sr_buf_printf(b, ", \"correct\": %s, \"small_tokens\": %d, \"big_tokens\": %d, \"switches\": %d",
                  row.correct ? "true" : "false", row.small_tokens, row.big_tokens, row.switches);
    sr_buf_str(b, ", \"modelled_latency\": ");
    json_num_or_null(b, row.has_latency, row.latency);
    sr_buf_str(b, ", \"wall_time_s\": ");
    sr_buf_json_number(b, row.wall_time_s);
    /* extras: what the grader read, how the sample ended, the spans, the baselines */
    sr_buf_str(b, ", \"extracted\": ");
    sr_buf_json_string(b, g.pred_extracted, strlen(g.pred_extracted));
    sr_buf_printf(b, ", \"verdict\": \"%s\", \"finish\": \"%s\", \"truncated\": %s",
                  sr_verdict_name(g.verdict), gen_finish_name(r->finish), r->truncated ? "true" : "false");
    sr_buf_str(b, ", \"span_len\": ");
    json_int_list(b, r->span_len, r->switches);
    sr_buf_str(b, ", \"delta_big\": ");
    json_int_list(b, r->delta_big, r->switches);
    sr_buf_str(b, ", \"delta_small\": ");
    json_int_list(b, r->delta_small, r->switches);
    sr_buf_str(b, ", \"modelled_latency_small_only\": ");
    json_num_or_null(b, row.has_latency, row.latency_small);
    sr_buf_str(b, ", \"modelled_latency_big_only\": ");
    json_num_or_null(b, row.has_latency, row.latency_big);
    sr_buf_str(b, "}\n");
    sr_grade_result_free(&g);

    if (R->fd >= 0) {
        /* one write of the whole line, then fsync: a kill leaves at most a partial last line */
        size_t off = 0;
        while (off < b->n) {
            ssize_t w = write(R->fd, b->p + off, b->n - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) return sr_fail(err, "%s: %s", R->samples_path, strerror(errno));
            off += (size_t)w;
        }
        if (fsync(R->fd)) return sr_fail(err, "%s: fsync: %s", R->samples_path, strerror(errno));
    }
    add_row(R, &row);
    R->n_new++;
    sr_progress_update(&R->prog, (double)R->n_new);
    return 0;
}

/* ---- the run --------------------------------------------------------------------------------- */

static int prepare(Run *R, Qwen2Model *small, Qwen2Model *big, SrError *err) {
    const EvalOptions *o = R->o;
    if (eval_benchmark_load(&R->bench, o->benchmark, NULL, err)) return -1;
    if (o->limit > 0 && o->limit < R->bench.n) {
        for (int i = o->limit; i < R->bench.n; i++) {
            free(R->bench.items[i].id);
            free(R->bench.items[i].problem);
            free(R->bench.items[i].answer);
        }
        R->bench.n = o->limit;
    }
    int P = R->bench.n, max_prompt = 0;
    R->prompts = sr_calloc((size_t)P, sizeof(int32_t *));
    R->prompt_lens = sr_calloc((size_t)P, sizeof(int));
    for (int p = 0; p < P; p++) {
        if (eval_prompt_ids(R->tok, R->bench.items[p].problem,
                            o->system ? o->system : o->system_prompt ? EVAL_GRPO_SYSTEM_PROMPT : NULL,
                            o->system_prompt ? NULL : o->instruction, &R->prompts[p],
                            &R->prompt_lens[p], err))
            return sr_fail_prefix(err, "%s: problem %s", R->bench.path, R->bench.items[p].id);
        if (R->prompt_lens[p] > max_prompt) max_prompt = R->prompt_lens[p];
    }
    /* the token budget: --max-new-tokens clipped to what every model's positions allow */
    SplitConfig *c = &R->cfg;
    *c = o->split;
    if (c->max_new_tokens <= 0) c->max_new_tokens = EVAL_DEFAULT_MAX_NEW;
    Qwen2Model *ms[2] = {small, big};
    for (int i = 0; i < 2; i++) {
        if (!ms[i]) continue;
        int room = ms[i]->cfg.max_position_embeddings - max_prompt;
        if (room < 1)
            return sr_fail(err, "%s: the longest prompt has %d tokens, the %s model's max_position_embeddings is %d",
                           R->bench.path, max_prompt, i ? "big" : "small", ms[i]->cfg.max_position_embeddings);
        if (c->max_new_tokens > room) {
            sr_log("eval: --max-new-tokens %d clipped to %d (the %s model has %d positions, the longest prompt %d tokens)",
                   c->max_new_tokens, room, i ? "big" : "small", ms[i]->cfg.max_position_embeddings, max_prompt);
            c->max_new_tokens = room;
        }
    }
    int n_stop = 0;
    const Qwen2Model *m0 = small ? small : big;
    if (tokenizer_eos_id(R->tok) >= 0) R->stop_ids[n_stop++] = tokenizer_eos_id(R->tok);
    if (m0->cfg.eos_token_id >= 0 && m0->cfg.eos_token_id != tokenizer_eos_id(R->tok))
        R->stop_ids[n_stop++] = m0->cfg.eos_token_id;
    if (n_stop == 0) return sr_fail(err, "the tokenizer and the model have no EOS id: a sample could never end");
    c->stop_ids = R->stop_ids;
    c->n_stop_ids = n_stop;
    c->vocab_limit = tokenizer_vocab_size(R->tok);
    c->open_id = tokenizer_token_id(R->tok, "<bigmodel>");
    c->close_id = tokenizer_token_id(R->tok, "</bigmodel>");
    if ((c->mode == SPLIT_MODE_SPLIT || c->mode == SPLIT_MODE_RANDOM) && (c->open_id < 0 || c->close_id < 0))
        return sr_fail(err, "--mode %s: the tokenizer has no <bigmodel> / </bigmodel> tokens (splitreason init adds them)",
                       split_mode_name(c->mode));
    R->K = o->samples;
    R->lat_batch = o->batch < P * R->K ? o->batch : P * R->K;
    if (o->latency_table) {
        if (latency_table_load(&R->lat, o->latency_table, err)) return sr_fail_prefix(err, "--latency-table");
        c->latency = R->lat;
    } else {
        c->latency = NULL;
    }
    R->done = sr_calloc((size_t)P * R->K, 1);
    return 0;
}

static int decode_pending(Run *R, Engine *es, Engine *eb, SrError *err) {
    int P = R->bench.n, K = R->K, total = P * K;
    int *rp = sr_malloc((size_t)total * sizeof(int)), *rs = sr_malloc((size_t)total * sizeof(int));
    int n = 0;
    for (int p = 0; p < P; p++) /* problem-major: the samples of one prompt are neighbours */
        for (int s = 0; s < K; s++)
            if (!R->done[(size_t)p * K + s]) rp[n] = p, rs[n] = s, n++;
    /* chunks bound the results held at once; within one, batching is continuous */
    int chunk = R->o->batch * 16 > 64 ? R->o->batch * 16 : 64, rc = 0;
    const int32_t **prompts = sr_malloc((size_t)chunk * sizeof(int32_t *));
    int *lens = sr_malloc((size_t)chunk * sizeof(int));
    uint64_t *streams = sr_malloc((size_t)chunk * sizeof(uint64_t));
    SplitResult *res = sr_calloc((size_t)chunk, sizeof(SplitResult));
    sr_progress_start(&R->prog, "samples", (double)n);
    for (int at = 0; at < n && !rc; at += chunk) {
        int B = n - at < chunk ? n - at : chunk;
        for (int i = 0; i < B; i++) {
            int p = rp[at + i], s = rs[at + i];
            prompts[i] = R->prompts[p]; /* one pointer per prompt: the engine may share its KV */
            lens[i] = R->prompt_lens[p];
            streams[i] = ((uint64_t)p << 32) | (uint64_t)s;
        }
        R->req_problem = rp + at;
        R->req_sample = rs + at;
        memset(res, 0, (size_t)B * sizeof *res);
        rc = split_generate(es, eb, R->tok, prompts, lens, streams, B, &R->cfg, res, on_done, R, err);
        if (!rc)
            for (int i = 0; i < B; i++) split_result_free(&res[i]);
    }
    sr_progress_end(&R->prog);
    free(res);
    free(streams);
    free(lens);
    free(prompts);
    free(rs);
    free(rp);
    return rc;
}

static int finish(Run *R, const cJSON *settings, double wall, FILE *out, SrError *err) {
    int P = R->bench.n, K = R->K;
    if (R->n_rows != P * K)
        return sr_fail(err, "eval: %d of %d samples finished", R->n_rows, P * K);
    EvalSummary s;
    eval_summarize(R->rows, R->n_rows, P, K, &s);
    const char *mode = split_mode_name(R->cfg.mode);
    if (R->o->output) {
        SrBuf b = {0};
        sr_buf_str(&b, "{\"benchmark\": ");
        sr_buf_json_string(&b, R->bench.name, strlen(R->bench.name));
        sr_buf_str(&b, ", \"benchmark_file\": ");
        sr_buf_json_string(&b, R->bench.path, strlen(R->bench.path));
        sr_buf_printf(&b, ", \"mode\": \"%s\", ", mode);
        eval_summary_json(&b, &s, wall);
        char *st = cJSON_PrintUnformatted(settings);
        sr_buf_printf(&b, ", \"settings\": %s}\n", st);
        free(st);
        char *path = sr_path_join(R->o->output, "summary.json");
        int rc = sr_write_file_atomic(path, b.p, b.n, err);
        free(path);
        sr_buf_free(&b);
        if (rc) return -1;
    }
    eval_summary_print(out, &s, R->bench.name, mode, wall);
    fflush(out);
    return 0;
}

int eval_run(const EvalOptions *o, Qwen2Model *small, Qwen2Model *big, const Tokenizer *tok,
             FILE *out, SrError *err) {
    Run R = {.o = o, .tok = tok, .fd = -1};
    SplitMode mode = o->split.mode;
    int need_small = mode != SPLIT_MODE_BIG, need_big = mode != SPLIT_MODE_SMALL;
    if (need_small && !small) return sr_fail(err, "--mode %s needs --small", split_mode_name(mode));
    if (need_big && !big) return sr_fail(err, "--mode %s needs --big", split_mode_name(mode));
    if (o->resume && !o->output) return sr_fail(err, "--resume needs --output (the run to continue)");
    if (small && big && split_check_pair(small, big, tok, err)) return -1;
    Engine *es = NULL, *eb = NULL;
    cJSON *settings = NULL;
    int rc = prepare(&R, need_small ? small : NULL, need_big ? big : NULL, err);
    if (!rc) {
        settings = settings_json(&R);
        if (o->output) rc = open_output(&R, settings, err);
    }
    SrGradeOptions go;
    sr_grade_options_default(&go);
    go.mode = SR_GRADE_REWARD; /* splitreason grade --mode reward: what the reward uses */
    R.grader = sr_grader_new(&go);
    /* --batch caps the requests decoding at once (the split decoder's max_batch); the engines
     * keep their default sequence slots, which the span probes also use */
    R.cfg.max_batch = o->batch;
    /* the pools: --kv-cache-gb, else what --batch requests of the longest prompt + the budget
     * hold at once (capped by the engine's default share of the memory) */
    EngineOptions eo = {.kv_bytes = (size_t)(o->kv_cache_gb * 1024.0 * 1024.0 * 1024.0)};
    double positions = 0;
    if (!rc) {
        int max_prompt = 0;
        for (int p = 0; p < R.bench.n; p++)
            if (R.prompt_lens[p] > max_prompt) max_prompt = R.prompt_lens[p];
        positions = (double)o->batch * (max_prompt + R.cfg.max_new_tokens);
    }
    EngineOptions es_o = eo, eb_o = eo;
    if (eo.kv_bytes == 0 && need_small) es_o.kv_bytes = engine_kv_bytes_for(small, &eo, positions);
    if (eo.kv_bytes == 0 && need_big) eb_o.kv_bytes = engine_kv_bytes_for(big, &eo, positions);
    if (!rc && need_small && engine_open(&es, small, &es_o, err)) rc = sr_fail_prefix(err, "small model");
    if (!rc && need_big && engine_open(&eb, big, &eb_o, err)) rc = sr_fail_prefix(err, "big model");
    double t0 = sr_now();
    if (!rc) rc = decode_pending(&R, es, eb, err);
    double wall = sr_now() - t0;
    if (!rc) rc = finish(&R, settings, wall, out, err);
    if (es) engine_close(es);
    if (eb) engine_close(eb);
    if (R.fd >= 0) close(R.fd);
    cJSON_Delete(settings);
    sr_grader_free(R.grader);
    if (R.lat) latency_table_free(R.lat);
    for (int p = 0; R.prompts && p < R.bench.n; p++) free(R.prompts[p]);
    free(R.prompts);
    free(R.prompt_lens);
    free(R.done);
    free(R.rows);
    free(R.samples_path);
    sr_buf_free(&R.line);
    eval_benchmark_free(&R.bench);
    return rc;
}
