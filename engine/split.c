/*
 * The split decoder and the scheduler both kinds of decoding run on. See split.h.
 *
 * Requests wait in arrival order and are admitted while a slot and the KV blocks of their prompt
 * are free (continuous batching: finished requests leave and waiting ones join at every step).
 * A step runs at most one pass per model:
 *   1. the big model's pass: rows in a span (or every row in mode big) take the tokens of their
 *      big view they have not fed yet (a catch-up of Δ tokens on entering a span, one token after),
 *      then sample;
 *   2. the small model's pass: rows outside a span take their pending tokens (the prompt, the
 *      tokens a span added, the </bigmodel> tag) and sample; under small_close, rows in a span
 *      are teacher-forced the big model's new token and read p(</bigmodel>).
 * Each pass is capped at the engine's token budget: a long prompt is fed in chunks over several
 * steps (chunked prefill), and a row samples only once all its pending tokens are in. When the
 * blocks run short a row waits; when no row at all can move, the request admitted last is
 * preempted (its blocks freed, restarted later from its prompt: its tokens depend only on its
 * prompt, the config and its RNG stream, so the restart gives the same ids).
 */
#include "split.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "../common/rng.h"

#define SPLIT_SWITCH_STREAM 0x9e3779b97f4a7c15ull /* the random_switch draws' own stream */

enum { REQ_WAITING = 0, REQ_RUNNING, REQ_DONE };
enum { PH_SMALL = 0, PH_BIG };

typedef struct IdVec {
    int32_t *p;
    size_t n, cap;
} IdVec;

static void idvec_push(IdVec *v, int32_t x) {
    v->p = sr_array_reserve(v->p, &v->cap, v->n + 1, sizeof *v->p);
    v->p[v->n++] = x;
}

typedef struct Req {
    int state, phase;
    int ss, bs;          /* engine sequences (small, big), -1 when none */
    uint64_t rng, sw_rng;
    IdVec sview, bview;  /* what each model reads: prompt + generated; the big one without tags */
    int s_fed, b_fed;    /* tokens of each view already in that model's cache */
    int prompt_n;        /* small prompt length */
    int cap_new;         /* ids the result can hold */
    size_t cap_sw;       /* switch arrays' capacity */
    /* the open span */
    int span_n;          /* big tokens written in it */
    int span_target;     /* random_switch: its drawn length (0: the end rule decides) */
    int probe_mark;      /* probe: span tokens already probed */
    int fresh_big;       /* the big model wrote a token this step (small_close reads it) */
    int sw_drawn_n;      /* random_switch: res->n when the last switch draw was made */
    int awaiting_fork;   /* admitted, to be forked from its leader's prompt once that is in */
    int view_prompt_n;   /* the prompt's length in the first model's view */
    double t0;
    TokenizerStream stream;
    SrBuf text;          /* tail of the decoded text (stop strings) */
    SrBuf span_text;     /* the open span's text (step rule) */
} Req;

typedef struct Split {
    Engine *small, *big;
    const Tokenizer *tok;
    const SplitConfig *cfg;
    const int32_t *const *prompts;
    const int *prompt_lens;
    const uint64_t *streams;
    int B;
    SplitResult *res;
    Req *req;
    int n_valid_small, n_valid_big;
    int big_masks_tags;  /* the tag ids lie past n_valid_big: the big model cannot sample them */
    double p_switch;     /* random_switch: a switch's probability before each small token */
    size_t keep;         /* stop strings: bytes of text a match can still end in */
    int *order;          /* running requests in admission order */
    int n_running;
    int next_wait;       /* requests [next_wait, B) not admitted yet, plus the preempted ones */
    int *requeue;        /* preempted requests (admitted again first) */
    int n_requeue;
    int batch_for_latency;
    int *leader;         /* leader[i]: the first request of the run of identical prompts holding i */
    /* pass scratch */
    int *rows, *seqs, *ns;
    int32_t *ids;
    size_t ids_cap;
    SrSampling *params, *greedy;
    uint64_t *rngs;
    int32_t *out_ids;
    float *out_lp;
    int32_t *tgt;
} Split;

void split_config_default(SplitConfig *c) {
    memset(c, 0, sizeof *c);
    c->mode = SPLIT_MODE_SPLIT;
    c->end_rule = SPLIT_END_SMALL_CLOSE;
    c->close_threshold = 0.5f;
    c->max_span_tokens = 512;
    c->probe_every = 64;
    c->probe_len = 8;
    c->random_share = 0.2;
    c->random_span = 32;
    c->max_new_tokens = 1024;
    c->sampling.temperature = 0.6f;
    c->sampling.top_p = 0.95f;
    c->open_id = c->close_id = -1;
}

static const char *const MODE_NAMES[] = {"small", "big", "split", "random_switch"};
static const char *const RULE_NAMES[] = {"small_close", "probe", "step"};

/* the index of s in names[0, n), or -1 */
static int name_index(const char *const *names, int n, const char *s) {
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

const char *split_mode_name(SplitMode m) {
    return (unsigned)m < 4 ? MODE_NAMES[m] : "?";
}
int split_mode_parse(const char *s, SplitMode *m) {
    int i = name_index(MODE_NAMES, 4, s);
    if (i >= 0) *m = (SplitMode)i;
    return i >= 0 ? 0 : -1;
}
const char *split_end_rule_name(SplitEndRule r) {
    return (unsigned)r < 3 ? RULE_NAMES[r] : "?";
}
int split_end_rule_parse(const char *s, SplitEndRule *r) {
    int i = name_index(RULE_NAMES, 3, s);
    if (i >= 0) *r = (SplitEndRule)i;
    return i >= 0 ? 0 : -1;
}

void split_result_free(SplitResult *r) {
    free(r->ids);
    free(r->owner);
    free(r->logprobs);
    free(r->delta_big);
    free(r->delta_small);
    free(r->span_len);
    memset(r, 0, sizeof *r);
}

int split_check_pair(const Qwen2Model *small, const Qwen2Model *big, const Tokenizer *tok,
                     SrError *err) {
    int n = tok ? tokenizer_vocab_size(tok) : small->cfg.vocab_size;
    if (small->cfg.vocab_size < n)
        return sr_fail(err, "split: the small model's vocabulary (%d ids) is smaller than its "
                       "tokenizer's (%d)", small->cfg.vocab_size, n);
    /* the big model must read every id the small model can write, tags aside (it never sees
     * them): R1-distill 1.5B pads to 151936, 7B/14B/32B to 152064, both past the 151665 ids */
    int32_t open = tok ? tokenizer_token_id(tok, "<bigmodel>") : -1;
    int32_t close = tok ? tokenizer_token_id(tok, "</bigmodel>") : -1;
    int need = n;
    while (need > 0 && (need - 1 == open || need - 1 == close)) need--;
    if (big->cfg.vocab_size < need)
        return sr_fail(err, "split: the big model's vocabulary (%d ids) does not cover the small "
                       "model's tokenizer (%d ids): the two models must share a vocabulary",
                       big->cfg.vocab_size, need);
    if (small->cfg.hidden_size == 0 || big->cfg.hidden_size == 0)
        return sr_fail(err, "split: a model is not loaded");
    return 0;
}

/* ---- per request ------------------------------------------------------------------------- */

static int is_tag(const Split *S, int32_t id) {
    return id == S->cfg->open_id || id == S->cfg->close_id;
}

static void req_reset(Split *S, int i) {
    Req *r = &S->req[i];
    SplitResult *res = &S->res[i];
    free(r->sview.p);
    free(r->bview.p);
    sr_buf_free(&r->text);
    sr_buf_free(&r->span_text);
    split_result_free(res);
    memset(r, 0, sizeof *r);
    r->ss = r->bs = -1;
    r->sw_drawn_n = -1;
}

/* the request's state at admission (also after a preemption) */
static void req_start(Split *S, int i) {
    Req *r = &S->req[i];
    const SplitConfig *c = S->cfg;
    SplitResult *res = &S->res[i];
    req_reset(S, i);
    r->state = REQ_RUNNING;
    r->phase = c->mode == SPLIT_MODE_BIG ? PH_BIG : PH_SMALL;
    r->rng = sr_rng_stream(c->seed, S->streams ? S->streams[i] : (uint64_t)i);
    r->sw_rng = sr_rng_stream(c->seed ^ SPLIT_SWITCH_STREAM, S->streams ? S->streams[i] : (uint64_t)i);
    r->prompt_n = S->prompt_lens[i];
    for (int k = 0; k < S->prompt_lens[i]; k++) {
        int32_t id = S->prompts[i][k];
        idvec_push(&r->sview, id);
        if (!is_tag(S, id)) idvec_push(&r->bview, id);
    }
    r->view_prompt_n = c->mode == SPLIT_MODE_BIG ? (int)r->bview.n : (int)r->sview.n;
    r->cap_new = c->max_new_tokens + 1;
    res->ids = sr_malloc((size_t)r->cap_new * sizeof(int32_t));
    res->logprobs = sr_malloc((size_t)r->cap_new * sizeof(float));
    res->owner = sr_calloc((size_t)r->cap_new + 1, 1);
    if (S->tok) tokenizer_stream_init(&r->stream);
    r->t0 = sr_now();
}

static void push_switch(Req *r, SplitResult *res, int dbig) {
    size_t n = (size_t)res->switches + 1;
    size_t cap = r->cap_sw;
    res->delta_big = sr_array_reserve(res->delta_big, &cap, n, sizeof(int));
    cap = r->cap_sw;
    res->delta_small = sr_array_reserve(res->delta_small, &cap, n, sizeof(int));
    cap = r->cap_sw;
    res->span_len = sr_array_reserve(res->span_len, &cap, n, sizeof(int));
    r->cap_sw = cap;
    res->delta_big[n - 1] = dbig;
    res->delta_small[n - 1] = 0;
    res->span_len[n - 1] = 0;
    res->switches = (int)n;
}

/* does a stop string end inside the newest n bytes of text? */
static int hits_stop_string(const SrBuf *t, size_t n_new, const SplitConfig *c) {
    for (int i = 0; i < c->n_stop_strings; i++) {
        size_t L = strlen(c->stop_strings[i]);
        if (L == 0 || L > t->n) continue;
        size_t from = t->n >= n_new + L - 1 ? t->n - (n_new + L - 1) : 0;
        for (size_t p = from; p + L <= t->n; p++)
            if (memcmp(t->p + p, c->stop_strings[i], L) == 0) return 1;
    }
    return 0;
}

/* Appends one generated id: the result, the views, the text. Returns 1 when the request is
 * finished by it (a stop id, a stop string, the budget), 0 if not, -1 on error. */
static int append_id(Split *S, int i, int32_t id, float lp, char owner, SrError *err) {
    Req *r = &S->req[i];
    SplitResult *res = &S->res[i];
    const SplitConfig *c = S->cfg;
    SR_ASSERT(res->n < r->cap_new);
    res->ids[res->n] = id;
    res->logprobs[res->n] = lp;
    res->owner[res->n] = owner;
    res->n++;
    if (owner == 'b') res->big_tokens++;
    else res->small_tokens++;
    idvec_push(&r->sview, id);
    if (c->mode == SPLIT_MODE_BIG || (c->mode != SPLIT_MODE_SMALL && !is_tag(S, id)))
        idvec_push(&r->bview, id);
    int finished = 0;
    if (S->tok && (c->text || c->n_stop_strings > 0 || (r->phase == PH_BIG &&
                                                         c->end_rule == SPLIT_END_STEP))) {
        char *bytes = NULL;
        size_t nb = 0;
        if (tokenizer_stream_put(S->tok, &r->stream, id, &bytes, &nb, err)) return -1;
        if (nb && c->text) c->text(c->text_user, i, bytes, nb);
        if (nb && c->n_stop_strings > 0) {
            if (r->text.n > S->keep) { /* keep the tail a match can still end in */
                memmove(r->text.p, r->text.p + (r->text.n - S->keep), S->keep);
                r->text.n = S->keep;
            }
            sr_buf_add(&r->text, bytes, nb);
            if (hits_stop_string(&r->text, nb, c)) {
                res->finish = SR_FINISH_STOP_STRING;
                finished = 1;
            }
        }
        if (nb && r->phase == PH_BIG && owner == 'b') sr_buf_add(&r->span_text, bytes, nb);
        free(bytes);
    }
    for (int k = 0; !finished && k < c->n_stop_ids; k++)
        if (id == c->stop_ids[k]) {
            res->finish = SR_FINISH_STOP_ID;
            finished = 1;
        }
    if (!finished && res->n >= c->max_new_tokens) {
        res->finish = SR_FINISH_LENGTH;
        finished = 1;
    }
    return finished;
}

static void open_span(Split *S, int i) {
    Req *r = &S->req[i];
    const SplitConfig *c = S->cfg;
    r->phase = PH_BIG;
    r->span_n = 0;
    r->probe_mark = 0;
    r->span_text.n = 0;
    r->span_target = 0;
    if (c->mode == SPLIT_MODE_RANDOM) { /* geometric length with the configured mean */
        double m = c->random_span > 1 ? c->random_span : 1;
        double u = sr_rng_uniform(&r->sw_rng);
        int len = 1 + (int)floor(log1p(-u) / log1p(-1.0 / m));
        r->span_target = len < 1 ? 1 : len;
    }
    /* the small model wrote nothing since the last span ("</bigmodel><bigmodel>"): the big model
     * has read its whole view, so it re-reads its last token for the logits it samples from */
    if (r->bs >= 0 && r->b_fed > 0 && r->b_fed == (int)r->bview.n) {
        r->b_fed--;
        engine_seq_truncate(S->big, r->bs, r->b_fed);
    }
    push_switch(r, &S->res[i], (int)r->bview.n - r->b_fed);
}

/* Closes the open span: </bigmodel> goes into the small model's context. Returns as append_id. */
static int close_span(Split *S, int i, SrError *err) {
    Req *r = &S->req[i];
    SplitResult *res = &S->res[i];
    res->span_len[res->switches - 1] = r->span_n;
    /* the small model's catch-up as a decoder without teacher forcing has it: the <bigmodel> it
     * sampled, the span, the </bigmodel> */
    res->delta_small[res->switches - 1] = r->span_n + 2;
    r->phase = PH_SMALL;
    return append_id(S, i, S->cfg->close_id, NAN, 's', err);
}

static void finish(Split *S, int i) {
    Req *r = &S->req[i];
    SplitResult *res = &S->res[i];
    const SplitConfig *c = S->cfg;
    if (r->phase == PH_BIG && c->mode != SPLIT_MODE_BIG) { /* ended inside a span */
        res->truncated = res->finish == SR_FINISH_LENGTH;
        res->span_len[res->switches - 1] = r->span_n;
        res->delta_small[res->switches - 1] = 0; /* control never came back */
    }
    if (S->tok && c->text) {
        char tail[8];
        size_t nt = tokenizer_stream_flush(&r->stream, tail);
        if (nt) c->text(c->text_user, i, tail, nt);
    }
    res->wall_time_s = sr_now() - r->t0;
    if (c->latency)
        res->modelled_latency = latency_t_split(c->latency, S->batch_for_latency,
                                                r->prompt_n + res->n, res->small_tokens,
                                                res->big_tokens, res->switches,
                                                res->delta_big, res->delta_small);
    if (r->ss >= 0) engine_seq_free(S->small, r->ss);
    if (r->bs >= 0) engine_seq_free(S->big, r->bs);
    r->ss = r->bs = -1;
    r->state = REQ_DONE;
    free(r->sview.p);
    free(r->bview.p);
    r->sview = r->bview = (IdVec){0};
    sr_buf_free(&r->text);
    sr_buf_free(&r->span_text);
    for (int k = 0; k < S->n_running; k++)
        if (S->order[k] == i) {
            memmove(S->order + k, S->order + k + 1, (size_t)(S->n_running - k - 1) * sizeof(int));
            S->n_running--;
            break;
        }
}

/* ---- passes ------------------------------------------------------------------------------ */

static void ensure_ids(Split *S, size_t n) {
    S->ids = sr_array_reserve(S->ids, &S->ids_cap, n, sizeof *S->ids);
}

/* The rows of one model's pass: for each candidate request (in admission order) the tokens of
 * its view it has not fed, as many as the token budget and the free blocks allow. full[k] says
 * whether row k fed everything (it may then sample). Returns the row count. */
static int plan_pass(Split *S, Engine *e, int which, const int *cand, int n_cand, int *full) {
    int max_tokens = engine_max_tokens(e);
    int nr = 0, used = 0;
    for (int k = 0; k < n_cand && used < max_tokens; k++) {
        Req *r = &S->req[cand[k]];
        IdVec *v = which ? &r->bview : &r->sview;
        int *fed = which ? &r->b_fed : &r->s_fed;
        int seq = which ? r->bs : r->ss;
        int pending = (int)v->n - *fed;
        if (pending <= 0 || seq < 0) continue;
        int take = pending < max_tokens - used ? pending : max_tokens - used;
        S->rows[nr] = cand[k];
        S->seqs[nr] = seq;
        S->ns[nr] = take;
        if (!engine_can_take(e, nr + 1, S->seqs, S->ns)) continue; /* waits for blocks */
        full[nr] = take == pending;
        ensure_ids(S, (size_t)used + take);
        memcpy(S->ids + used, v->p + *fed, (size_t)take * sizeof(int32_t));
        used += take;
        nr++;
    }
    return nr;
}

static int run_pass(Split *S, Engine *e, int which, int nr, SrError *err) {
    if (which && S->cfg->mode != SPLIT_MODE_BIG) { /* the big model never reads a tag */
        int total = 0;
        for (int k = 0; k < nr; k++) total += S->ns[k];
        for (int j = 0; j < total; j++) SR_ASSERT(!is_tag(S, S->ids[j]));
    }
    if (engine_forward(e, nr, S->seqs, S->ns, S->ids, err)) return -1;
    for (int k = 0; k < nr; k++) {
        Req *r = &S->req[S->rows[k]];
        if (which) r->b_fed += S->ns[k];
        else r->s_fed += S->ns[k];
    }
    return 0;
}

/* Samples every row of the pass (the sampler reads the logits rows in order); a row that fed only
 * part of its pending tokens (full[k] = 0) ignores its draw and keeps its RNG state. */
static int sample_rows(Split *S, Engine *e, int nr, const int *full, int n_valid, int greedy,
                       SrError *err) {
    for (int k = 0; k < nr; k++) {
        Req *r = &S->req[S->rows[k]];
        S->params[k] = greedy ? S->greedy[0] : S->cfg->sampling;
        S->rngs[k] = r->rng;
    }
    if (engine_sample(e, nr, S->params, S->rngs, n_valid, S->out_ids, S->out_lp, err)) return -1;
    for (int k = 0; k < nr; k++)
        if (full[k] && !greedy) S->req[S->rows[k]].rng = S->rngs[k];
    return 0;
}

/* ---- end rules ----------------------------------------------------------------------------- */

/* step rule: the span's text holds a blank line */
static int span_has_blank_line(const Req *r) {
    for (size_t p = 0; p + 1 < r->span_text.n; p++)
        if (r->span_text.p[p] == '\n' && r->span_text.p[p + 1] == '\n') return 1;
    return 0;
}

/* probe rule, for request i with span tokens at hand: the small model is teacher-forced the span
 * (its cache then holds the sview up to the span's last token), then for each prefix of the
 * unprobed part, latest first, a fork of it decodes probe_len tokens greedily; the latest prefix
 * whose probe writes </bigmodel> is where the span ends. Returns the prefix length to cut at
 * (1..span_n), 0 for none, -1 on error. */
static int probe(Split *S, int i, SrError *err) {
    Req *r = &S->req[i];
    const SplitConfig *c = S->cfg;
    Engine *e = S->small;
    /* teacher-force everything the small model has not read (the <bigmodel> tag and the span) */
    while (r->s_fed < (int)r->sview.n) {
        int full = 0;
        int cand = i;
        int nr = plan_pass(S, e, 0, &cand, 1, &full);
        if (nr == 0) return 0; /* no blocks: probe later */
        if (run_pass(S, e, 0, nr, err)) return -1;
    }
    int span_start = (int)r->sview.n - r->span_n; /* index in sview of the span's first token */
    int lo = r->probe_mark + 1, hi = r->span_n;
    int n_pref = hi - lo + 1;
    int *fork = sr_malloc((size_t)n_pref * sizeof(int));
    int *alive = sr_calloc((size_t)n_pref, sizeof(int));
    int32_t *last = sr_malloc((size_t)n_pref * sizeof(int32_t));
    int nf = 0, cut = 0, rc = 0;
    for (int j = hi; j >= lo; j--) { /* prefix of j span tokens */
        int f = engine_seq_fork(e, r->ss);
        if (f < 0) break;
        engine_seq_truncate(e, f, span_start + j - 1);
        fork[nf] = f;
        last[nf] = r->sview.p[span_start + j - 1];
        alive[nf] = 1;
        nf++;
    }
    for (int step = 0; step < c->probe_len && nf > 0; step++) {
        int nr = 0;
        for (int k = 0; k < nf; k++) {
            if (!alive[k]) continue;
            S->rows[nr] = i;
            S->seqs[nr] = fork[k];
            S->ns[nr] = 1;
            if (!engine_can_take(e, nr + 1, S->seqs, S->ns)) {
                alive[k] = 0; /* no blocks: this prefix is not probed */
                continue;
            }
            ensure_ids(S, (size_t)nr + 1);
            S->ids[nr] = last[k];
            S->tgt[nr] = k;
            nr++;
        }
        if (nr == 0) break;
        if (engine_forward(e, nr, S->seqs, S->ns, S->ids, err)) {
            rc = -1;
            break;
        }
        for (int k = 0; k < nr; k++) {
            S->params[k] = S->greedy[0];
            S->rngs[k] = 0;
        }
        if (engine_sample(e, nr, S->params, S->rngs, S->n_valid_small, S->out_ids, NULL, err)) {
            rc = -1;
            break;
        }
        for (int k = 0; k < nr; k++) {
            int f = S->tgt[k];
            int j = hi - f;
            if (S->out_ids[k] == c->close_id) {
                if (j > cut) cut = j;
                alive[f] = 0;
            } else {
                last[f] = S->out_ids[k];
                for (int s = 0; s < c->n_stop_ids; s++)
                    if (S->out_ids[k] == c->stop_ids[s]) alive[f] = 0;
            }
        }
        /* prefixes shorter than the best cut cannot win any more */
        for (int k = 0; k < nf; k++)
            if (hi - k <= cut) alive[k] = 0;
    }
    for (int k = 0; k < nf; k++) engine_seq_free(e, fork[k]);
    free(fork);
    free(alive);
    free(last);
    r->probe_mark = r->span_n;
    return rc ? -1 : cut;
}

/* Cuts the open span back to its first j tokens (probe): the result, both views and both caches. */
static void cut_span(Split *S, int i, int j) {
    Req *r = &S->req[i];
    SplitResult *res = &S->res[i];
    int drop = r->span_n - j;
    if (drop <= 0) return;
    res->n -= drop;
    res->big_tokens -= drop;
    r->sview.n -= (size_t)drop;
    r->bview.n -= (size_t)drop;
    if (r->s_fed > (int)r->sview.n) {
        r->s_fed = (int)r->sview.n;
        engine_seq_truncate(S->small, r->ss, r->s_fed);
    }
    if (r->b_fed > (int)r->bview.n) {
        r->b_fed = (int)r->bview.n;
        engine_seq_truncate(S->big, r->bs, r->b_fed);
    }
    r->span_n = j;
}

/* ---- admission and preemption -------------------------------------------------------------- */

static int max_running(const Split *S) {
    int m = S->cfg->max_batch > 0 ? S->cfg->max_batch : S->B;
    return m;
}

/* Admits request i if its first model has a slot and its prompt's blocks (plus one block of room
 * for each running request); returns 1 if admitted. */
static int try_admit(Split *S, int i) {
    const SplitConfig *c = S->cfg;
    Engine *e = c->mode == SPLIT_MODE_BIG ? S->big : S->small;
    int L = S->leader[i];
    if (L != i && S->req[L].state == REQ_RUNNING) { /* shares its leader's prompt: a fork later */
        req_start(S, i);
        S->req[i].awaiting_fork = 1;
        S->order[S->n_running++] = i;
        return 1;
    }
    int seq = engine_seq_new(e);
    if (seq < 0) return 0;
    int need = engine_blocks_needed(e, seq, S->prompt_lens[i]);
    if (need + S->n_running > engine_free_blocks(e) && S->n_running > 0) {
        engine_seq_free(e, seq);
        return 0;
    }
    req_start(S, i);
    if (c->mode == SPLIT_MODE_BIG) S->req[i].bs = seq;
    else S->req[i].ss = seq;
    S->order[S->n_running++] = i;
    return 1;
}

static void admit(Split *S) {
    while (S->n_running < max_running(S)) {
        int i;
        if (S->n_requeue > 0) i = S->requeue[0];
        else if (S->next_wait < S->B) i = S->next_wait;
        else return;
        if (!try_admit(S, i)) return;
        if (S->n_requeue > 0) memmove(S->requeue, S->requeue + 1, (size_t)--S->n_requeue * sizeof(int));
        else S->next_wait++;
    }
}

/* frees the request admitted last and queues it again (it restarts from its prompt) */
static void preempt(Split *S) {
    int i = S->order[S->n_running - 1];
    Req *r = &S->req[i];
    if (r->ss >= 0) engine_seq_free(S->small, r->ss);
    if (r->bs >= 0) engine_seq_free(S->big, r->bs);
    r->ss = r->bs = -1;
    r->state = REQ_WAITING;
    S->n_running--;
    memmove(S->requeue + 1, S->requeue, (size_t)S->n_requeue * sizeof(int));
    S->requeue[0] = i;
    S->n_requeue++;
}

/* ---- one step -------------------------------------------------------------------------------- */

/* A pass's rows and samples, copied out of the scratch that the end rules' own passes (probe)
 * reuse while the rows are handled. */
typedef struct PassOut {
    int *rows, *full;
    int32_t *ids;
    float *lp;
} PassOut;

static PassOut pass_out_take(const Split *S, int nr, const int *full) {
    PassOut o = {sr_malloc((size_t)nr * sizeof(int)), sr_malloc((size_t)nr * sizeof(int)),
                 sr_malloc((size_t)nr * sizeof(int32_t)), sr_malloc((size_t)nr * sizeof(float))};
    memcpy(o.rows, S->rows, (size_t)nr * sizeof(int));
    memcpy(o.full, full, (size_t)nr * sizeof(int));
    memcpy(o.ids, S->out_ids, (size_t)nr * sizeof(int32_t));
    memcpy(o.lp, S->out_lp, (size_t)nr * sizeof(float));
    return o;
}

static void pass_out_free(PassOut *o) {
    free(o->rows);
    free(o->full);
    free(o->ids);
    free(o->lp);
}

/* Requests admitted beside their leader (the same prompt: the G samples of one GRPO prompt, the K
 * samples of one eval problem) fork the leader's sequence once its prompt is in the cache: the
 * prompt's KV is held once and prefilled once. The fork keeps all but the prompt's last token,
 * which the follower feeds itself: that pass gives it the logits it samples its first token
 * from. A leader that finished or was preempted first leaves its followers a prefill of their own. */
static void resolve_forks(Split *S) {
    Engine *e = S->cfg->mode == SPLIT_MODE_BIG ? S->big : S->small;
    int big = S->cfg->mode == SPLIT_MODE_BIG;
    for (int k = 0; k < S->n_running; k++) {
        int i = S->order[k];
        Req *r = &S->req[i];
        if (!r->awaiting_fork) continue;
        Req *l = &S->req[S->leader[i]];
        int lseq = big ? l->bs : l->ss, lfed = big ? l->b_fed : l->s_fed;
        int pn = r->view_prompt_n;
        int seq = -1;
        if (l->state == REQ_RUNNING && lseq >= 0 && !l->awaiting_fork) {
            if (lfed < pn - 1) continue; /* the leader's prompt is not in yet */
            seq = engine_seq_fork(e, lseq);
            if (seq < 0) continue; /* no slot: waits */
            engine_seq_truncate(e, seq, pn - 1);
            if (big) r->b_fed = pn - 1;
            else r->s_fed = pn - 1;
        } else {
            seq = engine_seq_new(e);
            if (seq < 0) continue;
        }
        if (big) r->bs = seq;
        else r->ss = seq;
        r->awaiting_fork = 0;
    }
}

/* 1 if the step moved something, 0 if nothing could move, -1 on error */
static int step(Split *S, SrError *err) {
    const SplitConfig *c = S->cfg;
    int moved = 0;
    int nrun = S->n_running;
    int *cand = sr_malloc((size_t)(nrun > 0 ? nrun : 1) * sizeof(int));
    int *full = sr_malloc((size_t)(nrun > 0 ? nrun : 1) * sizeof(int));
    int *snap = sr_malloc((size_t)(nrun > 0 ? nrun : 1) * sizeof(int));
    resolve_forks(S);
    memcpy(snap, S->order, (size_t)nrun * sizeof(int));
    int rc = 0;

    /* random_switch: a row about to sample its next small token may switch first */
    if (c->mode == SPLIT_MODE_RANDOM)
        for (int k = 0; k < nrun; k++) {
            int i = snap[k];
            Req *r = &S->req[i];
            if (r->state != REQ_RUNNING || r->phase != PH_SMALL) continue;
            /* one draw before each small token after the first, never right after a tag: the
             * draws depend only on the request's own tokens, not on how its passes ran */
            const SplitResult *res = &S->res[i];
            if (r->awaiting_fork || res->n < 1 || r->sw_drawn_n == res->n) continue;
            if (is_tag(S, res->ids[res->n - 1])) continue;
            r->sw_drawn_n = S->res[i].n;
            if (sr_rng_uniform(&r->sw_rng) >= S->p_switch) continue;
            int fin = append_id(S, i, c->open_id, NAN, 's', err);
            if (fin < 0) goto fail;
            moved = 1;
            open_span(S, i); /* at the budget too: the span is then open and truncated */
            if (fin) finish(S, i);
        }

    /* 1. the big model */
    if (S->big) {
        int nc = 0;
        for (int k = 0; k < nrun; k++) {
            int i = snap[k];
            Req *r = &S->req[i];
            if (r->state != REQ_RUNNING || r->phase != PH_BIG) continue;
            if (r->fresh_big) continue; /* small_close has not judged its last token yet */
            if (r->bs < 0) {
                r->bs = engine_seq_new(S->big);
                if (r->bs < 0) continue; /* no slot: waits */
            }
            cand[nc++] = i;
        }
        int nr = plan_pass(S, S->big, 1, cand, nc, full);
        if (nr > 0) {
            if (run_pass(S, S->big, 1, nr, err)) goto fail;
            if (sample_rows(S, S->big, nr, full, S->n_valid_big, 0, err)) goto fail;
            moved = 1;
            PassOut po = pass_out_take(S, nr, full);
            const int *rows = po.rows, *fl = po.full;
            const int32_t *got = po.ids;
            const float *lp = po.lp;
            for (int k = 0; k < nr && rc == 0; k++) {
                if (!fl[k]) continue;
                int i = rows[k];
                Req *r = &S->req[i];
                int32_t id = got[k];
                if (c->mode != SPLIT_MODE_BIG && is_tag(S, id)) {
                    /* a big model that can sample a tag id (the tags are not its last ids):
                     * it ends the span, and the tag is not written */
                    int fin = close_span(S, i, err);
                    if (fin < 0) rc = -1;
                    else if (fin) finish(S, i);
                    continue;
                }
                int fin = append_id(S, i, id, lp[k], 'b', err);
                if (fin < 0) {
                    rc = -1;
                    break;
                }
                if (fin) {
                    finish(S, i);
                    continue;
                }
                if (c->mode == SPLIT_MODE_BIG) continue;
                r->span_n++;
                /* small_close judges this token in the small model's pass of this step */
                r->fresh_big = c->mode == SPLIT_MODE_SPLIT && c->end_rule == SPLIT_END_SMALL_CLOSE;
                int end = r->span_n >= c->max_span_tokens ||
                          (r->span_target > 0 && r->span_n >= r->span_target);
                if (!end && c->mode == SPLIT_MODE_SPLIT && c->end_rule == SPLIT_END_STEP)
                    end = span_has_blank_line(r);
                if (!end && c->mode == SPLIT_MODE_SPLIT && c->end_rule == SPLIT_END_PROBE &&
                    (r->span_n - r->probe_mark >= c->probe_every)) {
                    int cut = probe(S, i, err);
                    if (cut < 0) {
                        rc = -1;
                        break;
                    }
                    if (cut > 0) {
                        cut_span(S, i, cut);
                        end = 1;
                    }
                }
                if (end) {
                    r->fresh_big = 0;
                    int f2 = close_span(S, i, err);
                    if (f2 < 0) rc = -1;
                    else if (f2) finish(S, i);
                }
            }
            pass_out_free(&po);
            if (rc) goto fail;
        }
    }

    /* 2. the small model: rows outside a span sample; under small_close the rows in a span read
     * p(</bigmodel>) after the big model's newest token */
    if (S->small) {
        int nc = 0;
        int close_rule = c->mode == SPLIT_MODE_SPLIT && c->end_rule == SPLIT_END_SMALL_CLOSE;
        for (int k = 0; k < nrun; k++) {
            int i = snap[k];
            Req *r = &S->req[i];
            if (r->state != REQ_RUNNING) continue;
            if (r->phase == PH_SMALL || (close_rule && r->phase == PH_BIG && r->fresh_big))
                cand[nc++] = i;
        }
        int nr = plan_pass(S, S->small, 0, cand, nc, full);
        if (nr > 0) {
            if (run_pass(S, S->small, 0, nr, err)) goto fail;
            moved = 1;
            /* the rows in a span: p(</bigmodel>) */
            int n_in_span = 0;
            for (int k = 0; k < nr; k++) n_in_span += S->req[S->rows[k]].phase == PH_BIG;
            float *pclose = NULL;
            if (n_in_span > 0) {
                pclose = sr_malloc((size_t)nr * sizeof(float));
                for (int k = 0; k < nr; k++) S->tgt[k] = c->close_id;
                if (engine_logprob_of(S->small, nr, S->tgt, S->n_valid_small, pclose, err)) {
                    free(pclose);
                    goto fail;
                }
            }
            if (sample_rows(S, S->small, nr, full, S->n_valid_small, 0, err)) {
                free(pclose);
                goto fail;
            }
            PassOut po = pass_out_take(S, nr, full);
            const int *rows = po.rows, *fl = po.full;
            const int32_t *got = po.ids;
            const float *lp = po.lp;
            for (int k = 0; k < nr && rc == 0; k++) {
                if (!fl[k]) continue;
                int i = rows[k];
                Req *r = &S->req[i];
                if (r->phase == PH_BIG) { /* teacher-forced: does the small model close here? */
                    r->fresh_big = 0;
                    if (expf(pclose[k]) >= c->close_threshold) {
                        int fin = close_span(S, i, err);
                        if (fin < 0) rc = -1;
                        else if (fin) finish(S, i);
                    }
                    continue;
                }
                int32_t id = got[k];
                int fin = append_id(S, i, id, lp[k], 's', err);
                if (fin < 0) {
                    rc = -1;
                    break;
                }
                if (id == c->open_id && (c->mode == SPLIT_MODE_SPLIT || c->mode == SPLIT_MODE_RANDOM))
                    open_span(S, i); /* at the budget too: the span is then open and truncated */
                if (fin) finish(S, i);
            }
            pass_out_free(&po);
            free(pclose);
            if (rc) goto fail;
        }
    }
    free(cand);
    free(full);
    free(snap);
    return moved;
fail:
    free(cand);
    free(full);
    free(snap);
    return -1;
}

/* ---- the loop ------------------------------------------------------------------------------- */

static int call_done(Split *S, SplitDoneFn done, void *user, int *reported, SrError *err) {
    for (int i = 0; i < S->B; i++)
        if (S->req[i].state == REQ_DONE && !reported[i]) {
            reported[i] = 1;
            if (done && done(user, i, &S->res[i], err)) return -1;
        }
    return 0;
}

int split_generate(Engine *small, Engine *big, const Tokenizer *tok, const int32_t *const *prompts,
                   const int *prompt_lens, const uint64_t *streams, int B, const SplitConfig *cfg,
                   SplitResult *results, SplitDoneFn done, void *user, SrError *err) {
    const SplitConfig *c = cfg;
    if (B <= 0) return 0;
    int two = c->mode == SPLIT_MODE_SPLIT || c->mode == SPLIT_MODE_RANDOM;
    if ((c->mode != SPLIT_MODE_BIG && !small) || ((two || c->mode == SPLIT_MODE_BIG) && !big))
        return sr_fail(err, "split: mode %s needs %s", split_mode_name(c->mode),
                       c->mode == SPLIT_MODE_BIG ? "a big model" : two ? "a small and a big model"
                                                                       : "a small model");
    if (two && (c->open_id < 0 || c->close_id < 0))
        return sr_fail(err, "split: mode %s needs the <bigmodel> and </bigmodel> ids",
                       split_mode_name(c->mode));
    if ((c->n_stop_strings > 0 || c->text || (two && c->end_rule == SPLIT_END_STEP)) && !tok)
        return sr_fail(err, "split: stop strings, streaming and the step end rule need a tokenizer");
    if (c->max_new_tokens < 0)
        return sr_fail(err, "split: max_new_tokens %d is negative", c->max_new_tokens);
    if (two && c->mode == SPLIT_MODE_SPLIT && c->end_rule == SPLIT_END_PROBE &&
        (c->probe_every < 1 || c->probe_len < 1))
        return sr_fail(err, "split: the probe rule needs probe_every and probe_len >= 1");
    if (two && (c->max_span_tokens < 1))
        return sr_fail(err, "split: max_span_tokens must be >= 1");
    if (two && c->mode == SPLIT_MODE_RANDOM && !(c->random_share >= 0 && c->random_share < 1))
        return sr_fail(err, "split: random_share %g must be in [0, 1)", c->random_share);
    if (two && split_check_pair(engine_model(small), engine_model(big), tok, err)) return -1;

    Split S;
    memset(&S, 0, sizeof S);
    S.small = c->mode == SPLIT_MODE_BIG ? NULL : small;
    S.big = c->mode == SPLIT_MODE_SMALL ? NULL : big;
    S.tok = tok;
    S.cfg = c;
    S.prompts = prompts;
    S.prompt_lens = prompt_lens;
    S.streams = streams;
    S.B = B;
    S.res = results;
    int nv = tok ? tokenizer_vocab_size(tok) : 0;
    if (c->vocab_limit > 0 && (nv == 0 || c->vocab_limit < nv)) nv = c->vocab_limit;
    if (S.small) {
        int V = engine_model(S.small)->cfg.vocab_size;
        S.n_valid_small = nv > 0 && nv < V ? nv : V;
    }
    if (S.big) {
        int V = engine_model(S.big)->cfg.vocab_size;
        S.n_valid_big = nv > 0 && nv < V ? nv : V;
        /* the tags added after the tokenizer's last id are the last ids: cut them off */
        while (two && S.n_valid_big > 1 && is_tag(&S, S.n_valid_big - 1)) S.n_valid_big--;
        if (c->mode == SPLIT_MODE_BIG && c->open_id >= 0)
            while (S.n_valid_big > 1 && is_tag(&S, S.n_valid_big - 1)) S.n_valid_big--;
    }
    if (c->mode == SPLIT_MODE_RANDOM) { /* share s = q m / (1 + q (m + 2)) per small token */
        double s = c->random_share, m = c->random_span > 1 ? c->random_span : 1;
        double den = m - s * (m + 2);
        S.p_switch = s <= 0 ? 0 : den > 0 ? s / den : 1;
        if (S.p_switch > 1) S.p_switch = 1;
    }
    size_t L = 0;
    for (int k = 0; k < c->n_stop_strings; k++)
        if (strlen(c->stop_strings[k]) > L) L = strlen(c->stop_strings[k]);
    S.keep = L > 0 ? L - 1 : 0;
    for (int i = 0; i < B; i++) {
        if (prompt_lens[i] < 1) return sr_fail(err, "split: prompt %d is empty", i);
        for (int k = 0; k < 2; k++) {
            Engine *e = k ? S.big : S.small;
            if (!e) continue;
            const Qwen2Config *mc = &engine_model(e)->cfg;
            for (int j = 0; j < prompt_lens[i]; j++)
                if (prompts[i][j] < 0 || prompts[i][j] >= mc->vocab_size)
                    return sr_fail(err, "split: prompt %d token %d: id %d is outside the %s "
                                   "model's vocabulary [0, %d)", i, j, prompts[i][j],
                                   k ? "big" : "small", mc->vocab_size);
            if ((long long)prompt_lens[i] + c->max_new_tokens > mc->max_position_embeddings)
                return sr_fail(err, "split: prompt %d (%d tokens) + max_new_tokens %d is past the "
                               "%s model's max_position_embeddings %d", i, prompt_lens[i],
                               c->max_new_tokens, k ? "big" : "small", mc->max_position_embeddings);
        }
    }
    int mb = max_running(&S);
    S.batch_for_latency = mb < B ? mb : B;
    S.req = sr_calloc((size_t)B, sizeof(Req));
    for (int i = 0; i < B; i++) S.req[i].ss = S.req[i].bs = -1;
    memset(results, 0, (size_t)B * sizeof *results);
    S.order = sr_malloc((size_t)B * sizeof(int));
    S.leader = sr_malloc((size_t)B * sizeof(int));
    for (int i = 0; i < B; i++) {
        int same = i > 0 && prompt_lens[i] == prompt_lens[i - 1] &&
                   (prompts[i] == prompts[i - 1] ||
                    memcmp(prompts[i], prompts[i - 1], (size_t)prompt_lens[i] * sizeof(int32_t)) == 0);
        S.leader[i] = same ? S.leader[i - 1] : i;
    }
    S.requeue = sr_malloc((size_t)B * sizeof(int));
    int rowcap = 4096 > B ? 4096 : B; /* rows of a pass (probe forks included) */
    if (c->probe_every + 1 > rowcap) rowcap = c->probe_every + 1;
    S.rows = sr_malloc((size_t)rowcap * sizeof(int));
    S.seqs = sr_malloc((size_t)rowcap * sizeof(int));
    S.ns = sr_malloc((size_t)rowcap * sizeof(int));
    S.params = sr_malloc((size_t)rowcap * sizeof(SrSampling));
    S.greedy = sr_calloc(1, sizeof(SrSampling));
    S.rngs = sr_malloc((size_t)rowcap * sizeof(uint64_t));
    S.out_ids = sr_malloc((size_t)rowcap * sizeof(int32_t));
    S.out_lp = sr_malloc((size_t)rowcap * sizeof(float));
    S.tgt = sr_malloc((size_t)rowcap * sizeof(int32_t));
    int *reported = sr_calloc((size_t)B, sizeof(int));
    int rc = 0;

    if (c->max_new_tokens == 0) { /* nothing to generate */
        for (int i = 0; i < B && rc == 0; i++) {
            results[i].owner = sr_calloc(1, 1);
            results[i].finish = SR_FINISH_LENGTH;
            S.req[i].state = REQ_DONE;
        }
        rc = call_done(&S, done, user, reported, err);
        goto out;
    }
    for (;;) {
        admit(&S);
        if (S.n_running == 0) break;
        int moved = step(&S, err);
        if (moved < 0) {
            rc = -1;
            break;
        }
        if (call_done(&S, done, user, reported, err)) {
            rc = -1;
            break;
        }
        if (!moved && S.n_running > 0) {
            if (S.n_running == 1) {
                int i = S.order[0];
                rc = sr_fail(err, "split: the KV pool cannot hold request %d (%zu tokens): raise "
                             "the KV cache budget (--kv-cache-gb)", i, S.req[i].sview.n);
                break;
            }
            preempt(&S);
        }
    }
out:
    for (int i = 0; i < B; i++) {
        Req *r = &S.req[i];
        if (r->ss >= 0) engine_seq_free(S.small, r->ss);
        if (r->bs >= 0) engine_seq_free(S.big, r->bs);
        free(r->sview.p);
        free(r->bview.p);
        sr_buf_free(&r->text);
        sr_buf_free(&r->span_text);
        if (rc) split_result_free(&results[i]);
    }
    free(reported);
    free(S.req);
    free(S.order);
    free(S.leader);
    free(S.requeue);
    free(S.rows);
    free(S.seqs);
    free(S.ns);
    free(S.ids);
    free(S.params);
    free(S.greedy);
    free(S.rngs);
    free(S.out_ids);
    free(S.out_lp);
    free(S.tgt);
    return rc;
}
