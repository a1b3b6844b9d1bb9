/*
 * annotate: the run loop (see annotate.h).
 *
 * Rows stream from the input; each row's traces (data/traces.h) are annotated unless the
 * output already holds them (resume). For gap/entropy a trace is scored and written before
 * the next is read. For the judge, traces are collected into batches that go to the endpoint
 * with several requests in flight; results are written in input order as soon as every
 * earlier trace of the batch is written, so a kill loses at most the requests in flight.
 */
#include "annotate.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../data/chat_template.h"
#include "../common/jsonl.h"
#include "../common/json.h"
#include "output.h"
#include "summary.h"
#include "text.h"

#define MAX_REPORTED 20

const char *annotate_method_name(AnnotateMethod m) {
    return m == ANNOTATE_GAP ? "gap" : m == ANNOTATE_ENTROPY ? "entropy" : "judge";
}

int annotate_method_from_name(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "gap")) return ANNOTATE_GAP;
    if (!strcmp(name, "entropy")) return ANNOTATE_ENTROPY;
    if (!strcmp(name, "judge")) return ANNOTATE_JUDGE;
    return -1;
}

static void add_str_or_null(cJSON *o, const char *k, const char *v) {
    if (v) cJSON_AddStringToObject(o, k, v);
    else cJSON_AddNullToObject(o, k);
}

cJSON *annotate_provenance(const AnnotateOptions *o) {
    cJSON *p = cJSON_CreateObject();
    cJSON_AddStringToObject(p, "method", annotate_method_name(o->method));
    cJSON_AddStringToObject(p, "version", SR_VERSION);
    add_str_or_null(p, "input", o->input);
    cJSON *t = cJSON_AddObjectToObject(p, "trace");
    cJSON_AddStringToObject(t, "field", o->trace.field);
    add_str_or_null(t, "problem_field", o->trace.problem_field);
    add_str_or_null(t, "correct_field", o->trace.correct_field);
    static const char *const sel[] = {"first_correct", "all_correct", "first", "all", "index"};
    cJSON_AddStringToObject(t, "select", sel[o->trace.select]);
    if (o->trace.select == TRACE_INDEX) cJSON_AddNumberToObject(t, "index", o->trace.index);
    add_str_or_null(t, "trace_from", o->trace.trace_from);
    add_str_or_null(t, "trace_strip_suffix", o->trace.trace_strip_suffix);
    /* (where and limit choose rows, they do not change how a row is annotated: a run may be
     * resumed with a larger limit) */
    add_str_or_null(p, "tokenizer", o->tokenizer_path);
    cJSON *s = cJSON_AddObjectToObject(p, "settings");
    if (o->method == ANNOTATE_JUDGE) {
        add_str_or_null(p, "judge_endpoint", o->judge.endpoint);
        add_str_or_null(p, "judge_model", o->judge.model);
        cJSON_AddNumberToObject(s, "target_fraction", o->judge.target_fraction);
        cJSON_AddNumberToObject(s, "temperature", o->judge.temperature);
        if (o->judge.max_tokens > 0) cJSON_AddNumberToObject(s, "max_tokens", o->judge.max_tokens);
        cJSON_AddBoolToObject(s, "custom_system_prompt", o->judge.system_prompt != NULL);
        cJSON_AddNumberToObject(s, "min_similarity", o->align.min_similarity);
        cJSON_AddNumberToObject(s, "refine_radius", o->align.radius);
        cJSON_AddNumberToObject(s, "merge_gap_chars", o->span.merge_gap_chars);
    } else {
        add_str_or_null(p, "small", o->small_path);
        if (o->method == ANNOTATE_GAP) add_str_or_null(p, "big", o->big_path);
        if (o->method == ANNOTATE_GAP) {
            static const char *const gs[] = {"logprob", "kl", "logprob+kl"};
            cJSON_AddStringToObject(s, "gap_score", gs[o->gap_score]);
        }
        cJSON_AddNumberToObject(s, "target_fraction", o->span.target_fraction);
        cJSON_AddNumberToObject(s, "smooth_window", o->span.smooth_window);
        cJSON_AddStringToObject(s, "snap", spans_snap_name(o->span.snap));
        cJSON_AddNumberToObject(s, "min_span_tokens", o->span.min_tokens);
        cJSON_AddNumberToObject(s, "max_span_tokens", o->span.max_tokens);
        cJSON_AddNumberToObject(s, "merge_gap_chars", o->span.merge_gap_chars);
        cJSON_AddBoolToObject(s, "with_prompt", o->with_prompt);
        if (o->with_prompt) add_str_or_null(s, "system_prompt", o->system_prompt);
        cJSON_AddNumberToObject(s, "window_tokens", o->window);
        cJSON_AddNumberToObject(s, "window_context", o->context);
    }
    return p;
}

/* ---- per-trace pieces ---------------------------------------------------------------------- */

typedef struct Ctx {
    const AnnotateOptions *o;
    const AnnotateModels *m;
    AnnotateStats *st;
    AnnotateOut out;
    cJSON *prov;
    Scorer scorer;
    Judge *judge;
    SrProgress prog;
} Ctx;

/* a trace ready for annotation: text (tags removed, NFC) and its tokens */
typedef struct Prepared {
    char *own;
    const char *text;
    size_t len;
    int normalized, tags_removed;
    TraceTokens tt;
} Prepared;

static void prepared_free(Prepared *p) {
    trace_tokens_free(&p->tt);
    free(p->own);
    memset(p, 0, sizeof *p);
}

static int prepare_trace(Ctx *c, const Trace *t, int copy, Prepared *p, SrError *err) {
    memset(p, 0, sizeof *p);
    p->text = t->text;
    p->len = t->len;
    size_t n;
    char *s = text_strip_tags(p->text, p->len, &n);
    if (s) {
        p->own = s;
        p->text = s;
        p->len = n;
        p->tags_removed = 1;
    }
    char *nfc = text_nfc_if_changed(p->text, p->len, &n);
    if (nfc) {
        free(p->own);
        p->own = nfc;
        p->text = nfc;
        p->len = n;
        p->normalized = 1;
    }
    if (copy && !p->own) {
        p->own = sr_malloc(p->len + 1);
        memcpy(p->own, p->text, p->len);
        p->own[p->len] = '\0';
        p->text = p->own;
    }
    if (trace_tokens_build(&p->tt, c->m->tok, p->text, p->len, err)) {
        free(p->own);
        p->own = NULL;
        return -1;
    }
    return 0;
}

/* writes the output row of one trace */
static int emit(Ctx *c, const char *raw, long line, int trace_index, const Prepared *p,
                const TokSpan *sp, int n, cJSON *detail, SrError *err) {
    const TraceTokens *tt = &p->tt;
    ByteSpan *bs = sr_malloc((size_t)(n > 0 ? n : 1) * sizeof(ByteSpan));
    long tokens = 0, chars = 0;
    cJSON *add = cJSON_CreateObject();
    cJSON *spans = cJSON_CreateArray();
    for (int i = 0; i < n; i++) {
        bs[i] = (ByteSpan){tt->off[sp[i].t0], tt->off[sp[i].t1]};
        tokens += sp[i].t1 - sp[i].t0;
        chars += (long)(tt->cp[sp[i].t1] - tt->cp[sp[i].t0]);
        cJSON *pair = cJSON_CreateArray();
        cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)tt->cp[sp[i].t0]));
        cJSON_AddItemToArray(pair, cJSON_CreateNumber((double)tt->cp[sp[i].t1]));
        cJSON_AddItemToArray(spans, pair);
    }
    size_t an;
    char *annotated = text_annotate(p->text, p->len, bs, n, &an);
    free(bs);
    long total_chars = (long)tt->cp[tt->n];
    cJSON_AddStringToObject(add, "annotated", annotated);
    free(annotated);
    cJSON_AddItemToObject(add, "spans", spans);
    cJSON *off = cJSON_AddObjectToObject(add, "offload");
    cJSON_AddNumberToObject(off, "tokens", (double)tokens);
    cJSON_AddNumberToObject(off, "total_tokens", tt->n);
    cJSON_AddNumberToObject(off, "token_share", tt->n ? (double)tokens / tt->n : 0.0);
    cJSON_AddNumberToObject(off, "chars", (double)chars);
    cJSON_AddNumberToObject(off, "total_chars", (double)total_chars);
    cJSON_AddNumberToObject(off, "char_share", total_chars ? (double)chars / (double)total_chars : 0.0);
    cJSON_AddNumberToObject(off, "spans", n);
    cJSON *lens = cJSON_AddArrayToObject(off, "span_tokens");
    for (int i = 0; i < n; i++) cJSON_AddItemToArray(lens, cJSON_CreateNumber(sp[i].t1 - sp[i].t0));
    cJSON_AddItemToObject(add, "annotation", cJSON_Duplicate(c->prov, 1));
    if (p->normalized) cJSON_AddTrueToObject(detail, "trace_nfc_normalized");
    if (p->tags_removed) cJSON_AddTrueToObject(detail, "existing_tags_removed");
    cJSON_AddItemToObject(add, "annotation_detail", detail);
    cJSON_AddNumberToObject(add, "source_line", (double)line);
    cJSON_AddNumberToObject(add, "trace_index", trace_index);
    int rc = annotate_out_write(&c->out, raw, add, err);
    cJSON_Delete(add);
    if (!rc) {
        c->st->traces_done++;
        c->st->tokens += tt->n;
    }
    return rc;
}

/* a bad row or trace: reported and skipped, or (strict) the end of the run */
static int bad_row(Ctx *c, long line, const char *what, SrError *err) {
    c->st->malformed++;
    if (c->o->strict) return sr_fail(err, "%s:%ld: %s", c->o->input, line, what);
    if (c->st->malformed <= MAX_REPORTED) sr_log("%s:%ld: %s (skipped)", c->o->input, line, what);
    return 0;
}

/* ---- gap / entropy ------------------------------------------------------------------------------ */

static int model_trace(Ctx *c, const char *raw, long line, const cJSON *row, const Trace *t,
                       SrError *err) {
    Prepared p;
    SrError e = {{0}};
    if (prepare_trace(c, t, 0, &p, &e)) return bad_row(c, line, e.msg, err);
    int32_t *prompt = NULL;
    size_t np = 0;
    const char *problem = trace_problem(&c->o->trace, row);
    if (c->o->with_prompt && problem) {
        /* the template up to <｜Assistant｜>: the trace itself usually opens with <think>\n */
        ChatTemplate tm = {c->o->system_prompt, "", tokenizer_bos_id(c->m->tok) >= 0};
        char *pt = chat_prompt_text(&tm, problem);
        int32_t *ids = NULL;
        size_t n = 0;
        int rc = tokenizer_encode(c->m->tok, pt, strlen(pt), &ids, &n, &e);
        free(pt);
        if (rc) {
            prepared_free(&p);
            return bad_row(c, line, e.msg, err);
        }
        prompt = sr_malloc((n + 1) * sizeof(int32_t));
        if (tm.add_bos) prompt[np++] = tokenizer_bos_id(c->m->tok);
        memcpy(prompt + np, ids, n * sizeof(int32_t));
        np += n;
        free(ids);
    }
    int n = p.tt.n;
    float *d = sr_malloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    int rc = scorer_run(&c->scorer, prompt, (int)np, p.tt.ids, n, d, err);
    free(prompt);
    if (rc) { /* a model failure is not the row's fault: stop */
        sr_fail_prefix(err, "%s:%ld", c->o->input, line);
        free(d);
        prepared_free(&p);
        return -1;
    }
    TokSpan *sp;
    int ns;
    spans_select(&p.tt, d, &c->o->span, &sp, &ns);
    cJSON *detail = cJSON_CreateObject();
    double mean = 0;
    for (int i = 0; i < n; i++) mean += d[i];
    cJSON_AddNumberToObject(detail, "difficulty_mean", n ? mean / n : 0.0);
    double in = 0;
    long in_n = 0, forced = 0;
    for (int s = 0; s < ns; s++) {
        for (int i = sp[s].t0; i < sp[s].t1; i++) in += d[i], in_n++;
        forced += sp[s].forced;
    }
    cJSON_AddNumberToObject(detail, "difficulty_mean_in_spans", in_n ? in / in_n : 0.0);
    cJSON_AddNumberToObject(detail, "forced_cuts", (double)forced);
    cJSON_AddNumberToObject(detail, "prompt_tokens", (double)np);
    rc = emit(c, raw, line, t->index, &p, sp, ns, detail, err);
    free(sp);
    free(d);
    prepared_free(&p);
    return rc;
}

/* ---- judge ----------------------------------------------------------------------------------- */

typedef struct JItem {
    char *raw, *problem;
    long line;
    int trace_index;
    Prepared prep;
    int done;
} JItem;

typedef struct JBatch {
    Ctx *c;
    JItem *items;
    JudgeRequest *req;
    JudgeReply *rep;
    int n, cap, next_write;
    int rc;
    SrError *err;
} JBatch;

static int judge_emit(Ctx *c, JItem *it, JudgeReply *r, SrError *err) {
    if (!r->ok) {
        c->st->failed++;
        if (c->o->strict) return sr_fail(err, "%s:%ld: judge: %s", c->o->input, it->line, r->error);
        sr_log("%s:%ld: judge: %s (not written; a rerun retries it)", c->o->input, it->line, r->error);
        return 0;
    }
    AlignIndex ix;
    align_index_build(&ix, it->prep.text, it->prep.len);
    ByteSpan *bs = sr_malloc((size_t)(r->n_snippets > 0 ? r->n_snippets : 1) * sizeof(ByteSpan));
    int nb = 0;
    double sim_min = 1.0, sim_sum = 0;
    cJSON *detail = cJSON_CreateObject();
    cJSON *unaligned = cJSON_CreateArray();
    for (int i = 0; i < r->n_snippets; i++) {
        AlignResult a = align_snippet(&ix, r->snippets[i], strlen(r->snippets[i]), &c->o->align);
        if (!a.found) {
            cJSON *u = cJSON_CreateObject();
            cJSON_AddStringToObject(u, "text", r->snippets[i]);
            cJSON_AddNumberToObject(u, "best_similarity", a.similarity);
            cJSON_AddItemToArray(unaligned, u);
            continue;
        }
        bs[nb++] = (ByteSpan){a.b0, a.b1};
        sim_sum += a.similarity;
        if (a.similarity < sim_min) sim_min = a.similarity;
    }
    align_index_free(&ix);
    TokSpan *sp;
    int ns;
    spans_from_bytes(&it->prep.tt, bs, nb, c->o->span.merge_gap_chars, &sp, &ns);
    free(bs);
    cJSON_AddNumberToObject(detail, "snippets", r->n_snippets);
    cJSON_AddNumberToObject(detail, "aligned", nb);
    cJSON_AddNumberToObject(detail, "similarity_min", nb ? sim_min : 0.0);
    cJSON_AddNumberToObject(detail, "similarity_mean", nb ? sim_sum / nb : 0.0);
    cJSON_AddItemToObject(detail, "unaligned", unaligned);
    cJSON_AddNumberToObject(detail, "attempts", r->attempts);
    cJSON_AddNumberToObject(detail, "seconds", round(r->seconds * 1000) / 1000);
    if (r->prompt_tokens >= 0) cJSON_AddNumberToObject(detail, "judge_prompt_tokens", (double)r->prompt_tokens);
    if (r->completion_tokens >= 0) cJSON_AddNumberToObject(detail, "judge_completion_tokens", (double)r->completion_tokens);
    int rc = emit(c, it->raw, it->line, it->trace_index, &it->prep, sp, ns, detail, err);
    free(sp);
    return rc;
}

/* called by judge_run as each request finishes: write the finished prefix, in order */
static void on_judged(void *ctx, int i) {
    JBatch *b = ctx;
    b->items[i].done = 1;
    while (b->rc == 0 && b->next_write < b->n && b->items[b->next_write].done) {
        int k = b->next_write++;
        b->rc = judge_emit(b->c, &b->items[k], &b->rep[k], b->err);
        judge_reply_free(&b->rep[k]);
        prepared_free(&b->items[k].prep);
    }
}

static void jbatch_clear(JBatch *b) {
    for (int i = 0; i < b->n; i++) {
        free(b->items[i].raw);
        free(b->items[i].problem);
        prepared_free(&b->items[i].prep);
        judge_reply_free(&b->rep[i]);
    }
    b->n = 0;
    b->next_write = 0;
}

static int jbatch_run(JBatch *b, SrError *err) {
    if (b->n == 0) return 0;
    for (int i = 0; i < b->n; i++)
        b->req[i] = (JudgeRequest){b->items[i].problem, b->items[i].prep.text, b->items[i].prep.len};
    b->rc = 0;
    b->err = err;
    int rc = judge_run(b->c->judge, b->req, b->rep, b->n, on_judged, b, err);
    if (!rc) rc = b->rc;
    jbatch_clear(b);
    return rc;
}

static int judge_trace(Ctx *c, JBatch *b, const char *raw, long line, const cJSON *row,
                       const Trace *t, SrError *err) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 16;
        b->items = sr_realloc(b->items, (size_t)b->cap * sizeof(JItem));
        b->req = sr_realloc(b->req, (size_t)b->cap * sizeof(JudgeRequest));
        b->rep = sr_realloc(b->rep, (size_t)b->cap * sizeof(JudgeReply));
    }
    JItem *it = &b->items[b->n];
    memset(it, 0, sizeof *it);
    memset(&b->rep[b->n], 0, sizeof b->rep[b->n]);
    SrError e = {{0}};
    if (prepare_trace(c, t, 1, &it->prep, &e)) return bad_row(c, line, e.msg, err);
    it->raw = sr_strdup(raw);
    const char *problem = trace_problem(&c->o->trace, row);
    it->problem = problem ? sr_strdup(problem) : NULL;
    it->line = line;
    it->trace_index = t->index;
    b->n++;
    int want = c->o->judge_batch > 0 ? c->o->judge_batch : 4 * c->o->judge.parallel;
    return b->n >= want ? jbatch_run(b, err) : 0;
}

/* ---- the run ----------------------------------------------------------------------------------- */

int annotate_run(const AnnotateOptions *o, const AnnotateModels *m, AnnotateStats *st, SrError *err) {
    memset(st, 0, sizeof *st);
    double t0 = sr_now();
    Ctx c = {0};
    c.o = o;
    c.m = m;
    c.st = st;
    if (!m->tok) return sr_fail(err, "annotate: no tokenizer (--tokenizer, or --small)");
    if (o->method == ANNOTATE_JUDGE) {
        if (judge_open(&c.judge, &o->judge, err)) return -1;
        sr_log("judge: %s, model %s, %d in flight, timeout %.0f s, %d retries", judge_url(c.judge),
               o->judge.model, o->judge.parallel, o->judge.timeout_s, o->judge.retries);
    } else if (scorer_init(&c.scorer, o->method == ANNOTATE_GAP ? SCORER_GAP : SCORER_ENTROPY,
                           o->gap_score, m->small, m->big, o->window, o->context, err)) {
        return -1;
    }
    c.prov = annotate_provenance(o);
    int rc = annotate_out_open(&c.out, o->output, c.prov, o->overwrite, err);
    if (!rc && c.out.n_resumed > 0)
        sr_log("%s: resuming: %ld traces already annotated are skipped", o->output, c.out.n_resumed);
    JsonlReader in;
    int in_open = 0;
    if (!rc) {
        rc = jsonl_open(&in, o->input, err);
        in_open = !rc;
    }
    double total = 0;
    if (!rc && o->count_rows && in.file_size >= 0 && !o->trace.where_key) {
        long n = jsonl_count_lines(o->input, err);
        if (n < 0) rc = -1;
        total = o->limit > 0 && o->limit < n ? (double)o->limit : (double)n;
    }
    sr_progress_start(&c.prog, "rows", total);
    JBatch jb = {0};
    jb.c = &c;
    int got = 1;
    while (!rc && (got = jsonl_next(&in, err)) == 1) {
        st->rows++;
        SrError pe = {{0}};
        cJSON *row = sr_json_parse(in.line, in.len, &pe);
        if (!row) {
            rc = bad_row(&c, in.lineno, pe.msg, err);
            continue;
        }
        if (!trace_row_matches(&o->trace, row)) {
            st->filtered++;
            cJSON_Delete(row);
            continue;
        }
        Trace *tr;
        int nt;
        SrError e = {{0}};
        if (traces_from_row(&o->trace, row, &tr, &nt, &e)) {
            rc = bad_row(&c, in.lineno, e.msg, err);
            cJSON_Delete(row);
        } else {
            if (nt == 0) st->no_trace++;
            for (int k = 0; k < nt && !rc; k++) {
                if (annotate_out_has(&c.out, in.lineno, tr[k].index)) {
                    st->traces_resumed++;
                    continue;
                }
                rc = o->method == ANNOTATE_JUDGE ? judge_trace(&c, &jb, in.line, in.lineno, row, &tr[k], err)
                                                 : model_trace(&c, in.line, in.lineno, row, &tr[k], err);
            }
            free(tr);
            cJSON_Delete(row);
        }
        sr_progress_update(&c.prog, (double)(st->rows - st->filtered));
        if (o->limit > 0 && st->rows - st->filtered >= o->limit) break;
    }
    if (got < 0) rc = -1;
    if (!rc && o->method == ANNOTATE_JUDGE) rc = jbatch_run(&jb, err);
    jbatch_clear(&jb);
    free(jb.items);
    free(jb.req);
    free(jb.rep);
    if (in_open) jsonl_close(&in);
    if (c.out.f) {
        SrError e2 = {{0}};
        if (annotate_out_close(&c.out, rc ? &e2 : err) && !rc) rc = -1;
    }
    if (c.judge) judge_close(c.judge);
    scorer_free(&c.scorer);
    cJSON_Delete(c.prov);
    st->seconds = sr_now() - t0;
    if (!rc) {
        c.prog.done = (double)(st->rows - st->filtered);
        sr_progress_end(&c.prog);
    }
    if (st->malformed > MAX_REPORTED)
        sr_log("%ld malformed rows or traces in all (the first %d are listed above)", st->malformed, MAX_REPORTED);
    return rc;
}
