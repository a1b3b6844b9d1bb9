/*
 * Split decoding (engine/split.c) on two tiny random Qwen2 models that share a vocabulary:
 *   - greedy split decoding checked token by token against full recomputation: every token is
 *     the argmax of the model that wrote it, computed from scratch (qwen2_logits) on that model's
 *     own view of the context (the big model's view has no tags), across switches, catch-ups and
 *     a batch; every appended </bigmodel> is where small_close says (p >= threshold) or the cap;
 *   - the accounting adds up (small + big = generated, switches = <bigmodel> count, spans, Δs);
 *   - a request's ids do not depend on the batch (alone, all at once, admitted mid-run, a tiny
 *     KV pool that forces waiting and preemption), greedy and sampled;
 *   - mode small == generate(); mode big == the big model alone; random_switch offloads spans;
 *   - EOS inside a span, the span cap, an unclosed span at the budget, the step and probe rules.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "engine/split.h"
#include "forced_model.h"
#include "harness.h"
#include "model_fixture.h"

static Qwen2Config tiny(int V, int C, int L) {
    Qwen2Config c = sr_test_qwen2_config(V, C, L, 4, 2, 8, 48);
    c.initializer_range = 0.5f; /* peaked distributions: greedy is not a coin toss */
    return c;
}

enum { V = 40, NREQ = 5 };

typedef struct Pair {
    SrBackend be;
    Qwen2Model small, big;
    Engine *es, *eb;
} Pair;

static int32_t P0[] = {5, 17, 22, 7, 9, 3}, P1[] = {11}, P2[] = {8, 8, 8, 30}, P3[] = {1, 2},
               P4[] = {33, 12, 4, 4, 19, 20, 21, 6, 2};
static const int32_t *PROMPTS[NREQ] = {P0, P1, P2, P3, P4};
static const int LENS[NREQ] = {6, 1, 4, 2, 9};
static const uint64_t STREAMS[NREQ] = {0, 1, 2, 3, 4};

static Engine *open_engine(Qwen2Model *m, size_t kv_bytes, int block) {
    EngineOptions o = {.kv_bytes = kv_bytes, .block_size = block, .max_seqs = 64, .max_tokens = 256};
    Engine *e = NULL;
    SrError err;
    if (engine_open(&e, m, &o, &err)) {
        fprintf(stderr, "engine_open: %s\n", err.msg);
        exit(1);
    }
    return e;
}

/* logits of the last token of ids[0, n) computed from scratch */
static void last_logits(Qwen2Model *m, const int32_t *ids, int n, float *row) {
    int32_t *pos = malloc((size_t)n * sizeof(int32_t));
    float *all = malloc((size_t)n * m->cfg.vocab_size * sizeof(float));
    for (int i = 0; i < n; i++) pos[i] = i;
    SrError err;
    if (qwen2_logits(m, ids, pos, n, all, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        exit(1);
    }
    memcpy(row, all + (size_t)(n - 1) * m->cfg.vocab_size, m->cfg.vocab_size * sizeof(float));
    free(all);
    free(pos);
}

static int is_max(const float *row, int n_valid, int id) { /* within fp32 noise of the max */
    float mx = row[0];
    for (int v = 1; v < n_valid; v++)
        if (row[v] > mx) mx = row[v];
    return id >= 0 && id < n_valid && row[id] >= mx - 1e-4f * (1.0f + fabsf(mx));
}

static double prob(const float *row, int n_valid, int id) {
    double mx = row[0], s = 0;
    for (int v = 1; v < n_valid; v++)
        if (row[v] > mx) mx = row[v];
    for (int v = 0; v < n_valid; v++) s += exp((double)row[v] - mx);
    return exp((double)row[id] - mx) / s;
}

static SplitConfig greedy_cfg(int32_t open, int32_t close) {
    SplitConfig c;
    split_config_default(&c);
    c.sampling.temperature = 0.0f;
    c.sampling.top_p = 1.0f;
    c.open_id = open;
    c.close_id = close;
    c.max_new_tokens = 40;
    c.max_span_tokens = 6;
    c.close_threshold = 0.05f;
    return c;
}

static int run(Pair *p, const SplitConfig *c, int B, SplitResult *r) {
    SrError err;
    int rc = split_generate(p->es, p->eb, NULL, PROMPTS, LENS, STREAMS, B, c, r, NULL, NULL, &err);
    if (rc) fprintf(stderr, "split_generate: %s\n", err.msg);
    return rc;
}

/* Replays request i's result against full recomputation and checks its accounting. */
static void check_replay(Pair *p, const SplitConfig *c, int i, const SplitResult *r) {
    int32_t sview[600], bview[600];
    int ns = 0, nb = 0;
    for (int k = 0; k < LENS[i]; k++) { /* the big model's view has no tags, the prompt's too */
        sview[ns++] = PROMPTS[i][k];
        if (PROMPTS[i][k] != c->open_id && PROMPTS[i][k] != c->close_id) bview[nb++] = PROMPTS[i][k];
    }
    float srow[V], brow[V];
    int nvb = V; /* tags that are the last ids are cut off the big model's sampler */
    while (nvb > 1 && (nvb - 1 == c->open_id || nvb - 1 == c->close_id)) nvb--;
    int in_span = 0, span = 0, sw = 0, small = 0, big = 0, bad = 0;
    for (int t = 0; t < r->n && !bad; t++) {
        int32_t id = r->ids[t];
        if (r->owner[t] == 'b') {
            CHECKF(in_span, "req %d token %d: a big token outside a span", i, t);
            last_logits(&p->big, bview, nb, brow);
            if (!is_max(brow, nvb, id)) {
                CHECKF(0, "req %d token %d (big): %d is not the big model's argmax", i, t, id);
                bad = 1;
            }
            CHECKF(id != c->open_id && id != c->close_id, "req %d: the big model wrote a tag", i);
            big++;
            span++;
            sview[ns++] = id;
            bview[nb++] = id;
            if (c->end_rule == SPLIT_END_SMALL_CLOSE && c->mode == SPLIT_MODE_SPLIT && span < c->max_span_tokens &&
                t + 1 < r->n && r->ids[t + 1] != c->close_id) {
                /* the span went on: the small model did not want to close here */
                last_logits(&p->small, sview, ns, srow);
                CHECKF(prob(srow, V, c->close_id) < c->close_threshold,
                       "req %d token %d: p(close) = %g >= threshold but the span went on", i, t,
                       prob(srow, V, c->close_id));
            }
            continue;
        }
        CHECKF(r->owner[t] == 's', "req %d token %d: owner '%c'", i, t, r->owner[t]);
        small++;
        if (in_span) { /* the appended </bigmodel> */
            CHECKF(id == c->close_id && isnan(r->logprobs[t]), "req %d token %d: a small token "
                   "inside a span that is not the appended close tag", i, t);
            /* a span also ends when the big model's argmax is a tag (not written) */
            last_logits(&p->big, bview, nb, brow);
            int big_tag = nvb == V && (is_max(brow, V, c->open_id) || is_max(brow, V, c->close_id));
            if (c->mode == SPLIT_MODE_SPLIT && c->end_rule == SPLIT_END_SMALL_CLOSE &&
                span < c->max_span_tokens && !big_tag) {
                last_logits(&p->small, sview, ns, srow);
                CHECKF(prob(srow, V, c->close_id) >= c->close_threshold,
                       "req %d token %d: the span closed with p(close) = %g", i, t,
                       prob(srow, V, c->close_id));
            }
            CHECKF((span >= 1 || big_tag) && span <= c->max_span_tokens, "req %d: span of %d", i, span);
            CHECKF(r->span_len[sw - 1] == span, "req %d: span_len %d, counted %d", i,
                   r->span_len[sw - 1], span);
            CHECKF(r->delta_small[sw - 1] == span + 2, "req %d: delta_small", i);
            in_span = 0;
            sview[ns++] = id;
            continue;
        }
        last_logits(&p->small, sview, ns, srow);
        if (!(c->mode == SPLIT_MODE_RANDOM && id == c->open_id && isnan(r->logprobs[t])) &&
            !is_max(srow, V, id)) {
            CHECKF(0, "req %d token %d (small): %d is not the small model's argmax", i, t, id);
            bad = 1;
        }
        sview[ns++] = id;
        if (id == c->open_id && c->mode != SPLIT_MODE_SMALL) {
            in_span = 1;
            span = 0;
            sw++;
            /* the big model catches up on everything it has not read: at the first switch the
             * prompt and the text so far, later what the small model wrote since */
            CHECKF(sw <= r->switches && r->delta_big[sw - 1] >= 1, "req %d: delta_big", i);
        } else if (c->mode != SPLIT_MODE_SMALL && id != c->close_id) {
            bview[nb++] = id;
        }
    }
    CHECKF(small == r->small_tokens && big == r->big_tokens && small + big == r->n,
           "req %d: small %d/%d big %d/%d n %d", i, small, r->small_tokens, big, r->big_tokens, r->n);
    CHECKF(sw == r->switches, "req %d: %d switches counted, %d reported", i, sw, r->switches);
    CHECKF(r->truncated == (in_span && r->finish == SR_FINISH_LENGTH), "req %d: truncated flag", i);
    int dsum = 0;
    for (int k = 0; k < r->switches; k++) dsum += r->delta_big[k];
    CHECKF(r->switches == 0 || dsum <= nb, "req %d: the big catch-ups add to %d > its view %d", i,
           dsum, nb);
}

static int same_ids(const SplitResult *a, const SplitResult *b) {
    return a->n == b->n && memcmp(a->ids, b->ids, (size_t)a->n * sizeof(int32_t)) == 0 &&
           memcmp(a->owner, b->owner, (size_t)a->n) == 0;
}

/* the id the small model writes most often alone: used as <bigmodel>, so that switches happen */
static int32_t frequent_small_id(Pair *p, int32_t *second) {
    SplitConfig c = greedy_cfg(-1, -1);
    c.mode = SPLIT_MODE_SMALL;
    SplitResult r[NREQ];
    int count[V] = {0};
    CHECK(run(p, &c, NREQ, r) == 0);
    for (int i = 0; i < NREQ; i++) {
        for (int t = 2; t < r[i].n; t++) count[r[i].ids[t]]++;
        split_result_free(&r[i]);
    }
    int best = 0, next = 1;
    for (int v = 0; v < V; v++)
        if (count[v] > count[best]) best = v;
    if (next == best) next = 2;
    for (int v = 0; v < V; v++)
        if (v != best && count[v] > count[next]) next = v;
    *second = next;
    return best;
}

static void test_greedy_replay(Pair *p, int32_t open, int32_t close) {
    SplitConfig c = greedy_cfg(open, close);
    SplitResult r[NREQ];
    CHECK(run(p, &c, NREQ, r) == 0);
    int switches = 0, big = 0;
    for (int i = 0; i < NREQ; i++) {
        check_replay(p, &c, i, &r[i]);
        switches += r[i].switches;
        big += r[i].big_tokens;
    }
    CHECKF(switches >= 3 && big >= 3, "the test needs switches: %d switches, %d big tokens",
           switches, big);
    /* alone, one at a time, two at a time (admitted mid-run), in a tiny pool (waiting and
     * preemption): the same ids */
    for (int variant = 0; variant < 3; variant++) {
        SplitConfig cv = c;
        Pair q = *p;
        if (variant == 0) cv.max_batch = 1;
        if (variant == 1) cv.max_batch = 2;
        if (variant == 2) { /* room for about two sequences in each pool */
            q.es = open_engine(&p->small, 2 * 60 * engine_kv_bytes_per_token(&p->small), 4);
            q.eb = open_engine(&p->big, 2 * 60 * engine_kv_bytes_per_token(&p->big), 4);
        }
        SplitResult rv[NREQ];
        CHECK(run(&q, &cv, NREQ, rv) == 0);
        for (int i = 0; i < NREQ; i++) {
            CHECKF(same_ids(&r[i], &rv[i]), "variant %d req %d: ids differ from the full batch",
                   variant, i);
            split_result_free(&rv[i]);
        }
        if (variant == 2) {
            CHECK(engine_free_blocks(q.es) > 0);
            engine_close(q.es);
            engine_close(q.eb);
        }
    }
    for (int i = 0; i < NREQ; i++) split_result_free(&r[i]);
}

static void test_sampled_batch_independent(Pair *p, int32_t open, int32_t close) {
    SplitConfig c = greedy_cfg(open, close);
    c.sampling.temperature = 1.0f;
    c.sampling.top_p = 0.9f;
    c.seed = 7;
    SplitResult all[NREQ], one[NREQ];
    CHECK(run(p, &c, NREQ, all) == 0);
    SplitConfig c1 = c;
    c1.max_batch = 1;
    CHECK(run(p, &c1, NREQ, one) == 0);
    for (int i = 0; i < NREQ; i++) {
        CHECKF(same_ids(&all[i], &one[i]), "sampled req %d: batch changes its ids", i);
        CHECK(all[i].small_tokens + all[i].big_tokens == all[i].n);
        split_result_free(&all[i]);
        split_result_free(&one[i]);
    }
}

/* K samples of one prompt fork its KV (one prefill); each equals the same request decoded alone */
static void test_forked_samples(Pair *p, int32_t open, int32_t close) {
    enum { K = 6 };
    const int32_t *prompts[K];
    int lens[K];
    uint64_t streams[K];
    for (int k = 0; k < K; k++) {
        prompts[k] = P4;
        lens[k] = LENS[4];
        streams[k] = 100 + (uint64_t)k;
    }
    SplitConfig c = greedy_cfg(open, close);
    c.sampling.temperature = 1.0f;
    c.sampling.top_p = 1.0f;
    c.seed = 5;
    SplitResult all[K];
    SrError err;
    CHECK(split_generate(p->es, p->eb, NULL, prompts, lens, streams, K, &c, all, NULL, NULL, &err) == 0);
    int distinct = 0;
    for (int k = 0; k < K; k++) {
        SplitResult one;
        CHECK(split_generate(p->es, p->eb, NULL, &prompts[k], &lens[k], &streams[k], 1, &c, &one,
                             NULL, NULL, &err) == 0);
        CHECKF(same_ids(&all[k], &one), "forked sample %d differs from its own prefill", k);
        distinct += k > 0 && !same_ids(&all[k], &all[0]);
        split_result_free(&one);
    }
    CHECKF(distinct > 0, "the samples of one prompt are all the same: the streams are not used");
    for (int k = 0; k < K; k++) split_result_free(&all[k]);
}

/* The determinism check: one request alone, in a batch of 64, and admitted mid-run (the
 * 41st of 64 with 8 decoding at once) gives the same ids, sampled, across switches. */
static void test_batch_of_64(Pair *p, int32_t open, int32_t close) {
    enum { NB = 64, AT = 40 };
    int32_t store[NB][8];
    const int32_t *prompts[NB];
    int lens[NB];
    uint64_t streams[NB];
    uint64_t rng = 99;
    for (int i = 0; i < NB; i++) {
        lens[i] = 1 + (int)(sr_rng_u64(&rng) % 8);
        for (int k = 0; k < lens[i]; k++) store[i][k] = (int32_t)(sr_rng_u64(&rng) % V);
        prompts[i] = store[i];
        streams[i] = 1000 + (uint64_t)i;
    }
    SplitConfig c = greedy_cfg(open, close);
    c.sampling.temperature = 1.0f;
    c.sampling.top_p = 0.95f;
    c.seed = 11;
    c.max_new_tokens = 24;
    SrError err;
    SplitResult alone, *all = calloc(NB, sizeof *all), *mid = calloc(NB, sizeof *mid);
    CHECK(split_generate(p->es, p->eb, NULL, &prompts[AT], &lens[AT], &streams[AT], 1, &c, &alone,
                         NULL, NULL, &err) == 0);
    CHECKF(split_generate(p->es, p->eb, NULL, prompts, lens, streams, NB, &c, all, NULL, NULL, &err) == 0,
           "%s", err.msg);
    SplitConfig cm = c;
    cm.max_batch = 8;
    CHECK(split_generate(p->es, p->eb, NULL, prompts, lens, streams, NB, &cm, mid, NULL, NULL, &err) == 0);
    CHECKF(same_ids(&alone, &all[AT]), "a request in a batch of 64 differs from alone");
    CHECKF(same_ids(&alone, &mid[AT]), "a request admitted mid-run differs from alone");
    int sw = 0, differ = 0;
    for (int i = 0; i < NB; i++) {
        differ += !same_ids(&all[i], &mid[i]);
        sw += all[i].switches;
        split_result_free(&all[i]);
        split_result_free(&mid[i]);
    }
    CHECKF(differ == 0, "%d of 64 requests differ between 64 at once and 8 at once", differ);
    CHECKF(sw > 0, "no switches in the batch of 64");
    split_result_free(&alone);
    free(all);
    free(mid);
}

static void test_modes(Pair *p, int32_t open, int32_t close) {
    /* small: == generate() on the small model */
    SplitConfig c = greedy_cfg(open, close);
    c.mode = SPLIT_MODE_SMALL;
    SplitResult r[NREQ];
    CHECK(run(p, &c, NREQ, r) == 0);
    GenConfig g;
    memset(&g, 0, sizeof g);
    g.max_new_tokens = c.max_new_tokens;
    g.sampling.top_p = 1.0f;
    GenResult gr[NREQ];
    SrError err;
    CHECK(generate(&p->small, NULL, PROMPTS, LENS, NREQ, &g, gr, NULL, &err) == 0);
    for (int i = 0; i < NREQ; i++) {
        CHECKF(r[i].n == gr[i].n && memcmp(r[i].ids, gr[i].ids, (size_t)r[i].n * 4) == 0,
               "mode small req %d differs from generate()", i);
        CHECKF(r[i].big_tokens == 0 && r[i].switches == 0, "mode small req %d offloaded", i);
        check_replay(p, &c, i, &r[i]);
        gen_result_free(&gr[i]);
        split_result_free(&r[i]);
    }
    /* big: every token the big model's argmax on the prompt and its own tokens */
    c.mode = SPLIT_MODE_BIG;
    CHECK(run(p, &c, NREQ, r) == 0);
    for (int i = 0; i < NREQ; i++) {
        int32_t view[600];
        int n = 0;
        for (int k = 0; k < LENS[i]; k++)
            if (PROMPTS[i][k] != c.open_id && PROMPTS[i][k] != c.close_id) view[n++] = PROMPTS[i][k];
        float row[V];
        int ok = r[i].big_tokens == r[i].n && r[i].small_tokens == 0;
        for (int t = 0; ok && t < r[i].n; t++) {
            last_logits(&p->big, view, n, row);
            ok = is_max(row, V, r[i].ids[t]) && r[i].owner[t] == 'b';
            view[n++] = r[i].ids[t];
        }
        CHECKF(ok, "mode big req %d is not the big model's greedy decoding", i);
        split_result_free(&r[i]);
    }
    /* random_switch: spans of the big model appear with no tag from the small model needed */
    c = greedy_cfg(V - 2, V - 1); /* ids the small model hardly writes */
    c.mode = SPLIT_MODE_RANDOM;
    c.random_share = 0.4;
    c.random_span = 3;
    c.max_span_tokens = 64;
    c.seed = 3;
    CHECK(run(p, &c, NREQ, r) == 0);
    int big = 0, all = 0;
    for (int i = 0; i < NREQ; i++) {
        check_replay(p, &c, i, &r[i]);
        big += r[i].big_tokens;
        all += r[i].n;
        split_result_free(&r[i]);
    }
    CHECKF(big > 0 && big < all, "random_switch offloaded %d of %d tokens", big, all);
    /* one request at a time, budgets that end on a drawn <bigmodel>: the last request finishing
     * in the switch draw itself is progress, not a stuck pool */
    int ended_on_tag = 0;
    for (int budget = 3; budget <= 14; budget++) {
        SplitConfig cb = c;
        cb.max_batch = 1;
        cb.max_new_tokens = budget;
        cb.random_share = 0.6;
        CHECKF(run(p, &cb, NREQ, r) == 0, "random_switch, budget %d, one at a time", budget);
        for (int i = 0; i < NREQ; i++) {
            ended_on_tag += r[i].n > 0 && r[i].ids[r[i].n - 1] == cb.open_id && r[i].truncated;
            split_result_free(&r[i]);
        }
    }
    CHECKF(ended_on_tag > 0, "no request ended on a drawn tag: the case is not exercised");
}

static void test_ends(Pair *p, int32_t open, int32_t close) {
    /* the cap: spans of at most 2 with a threshold nothing reaches */
    SplitConfig c = greedy_cfg(open, close);
    c.close_threshold = 1.5f;
    c.max_span_tokens = 2;
    SplitResult r[NREQ];
    CHECK(run(p, &c, NREQ, r) == 0);
    for (int i = 0; i < NREQ; i++) {
        for (int k = 0; k < r[i].switches; k++)
            CHECKF(r[i].span_len[k] <= 2, "req %d span %d: %d tokens past the cap", i, k,
                   r[i].span_len[k]);
        check_replay(p, &c, i, &r[i]);
    }
    /* an unclosed span at the budget: stop where request 0's first span is one token old */
    int t_open = -1;
    for (int t = 0; t < r[0].n && t_open < 0; t++)
        if (r[0].ids[t] == open) t_open = t;
    int32_t big_first = t_open >= 0 && t_open + 1 < r[0].n ? r[0].ids[t_open + 1] : -1;
    for (int i = 0; i < NREQ; i++) split_result_free(&r[i]);
    if (t_open < 0) {
        CHECKF(0, "request 0 never switches: the test cannot check the budget inside a span");
        return;
    }
    SplitConfig cb = c;
    cb.max_new_tokens = t_open + 2;
    CHECK(run(p, &cb, 1, r) == 0);
    CHECKF(r[0].truncated == 1 && r[0].finish == SR_FINISH_LENGTH && r[0].owner[r[0].n - 1] == 'b',
           "an open span at the budget: truncated %d finish %d", r[0].truncated, r[0].finish);
    split_result_free(&r[0]);
    /* EOS inside a span ends the request there, kept */
    SplitConfig ce = c;
    ce.stop_ids = &big_first;
    ce.n_stop_ids = 1;
    CHECK(run(p, &ce, 1, r) == 0);
    CHECKF(r[0].finish == SR_FINISH_STOP_ID && r[0].ids[r[0].n - 1] == big_first,
           "EOS in a span: finish %d", r[0].finish);
    int first_is_span = r[0].n == t_open + 2 && r[0].owner[r[0].n - 1] == 'b';
    CHECKF(first_is_span || r[0].n < t_open + 2, "EOS in a span ends it at the first occurrence");
    split_result_free(&r[0]);
}

static void test_probe(Pair *p, int32_t open, int32_t close) {
    SplitConfig c = greedy_cfg(open, close);
    c.end_rule = SPLIT_END_PROBE;
    c.probe_every = 3;
    c.probe_len = 4;
    c.max_span_tokens = 9;
    SplitResult r[NREQ];
    CHECK(run(p, &c, NREQ, r) == 0);
    for (int i = 0; i < NREQ; i++) {
        check_replay(p, &c, i, &r[i]);
        /* every span the probe cut (shorter than the cap): the small model, greedy from the
         * text through the span, writes </bigmodel> within probe_len tokens */
        int32_t sv[700];
        int ns = 0;
        for (int k = 0; k < LENS[i]; k++) sv[ns++] = PROMPTS[i][k];
        int sw = 0;
        for (int t = 0; t < r[i].n; t++) {
            if (r[i].owner[t] == 's' && r[i].ids[t] == close && t > 0 && r[i].owner[t - 1] == 'b' &&
                r[i].span_len[sw] < c.max_span_tokens) {
                int32_t probe[700];
                memcpy(probe, sv, (size_t)ns * sizeof(int32_t));
                int np = ns, closes = 0;
                float row[V];
                for (int s = 0; s < c.probe_len && !closes; s++) {
                    last_logits(&p->small, probe, np, row);
                    int best = 0;
                    for (int v = 1; v < V; v++)
                        if (row[v] > row[best]) best = v;
                    closes = best == close;
                    probe[np++] = best;
                }
                CHECKF(closes, "req %d: the probe cut span %d where the small model does not close", i, sw);
                sw++;
            } else if (r[i].ids[t] == close && r[i].owner[t] == 's' && t > 0 && r[i].owner[t - 1] == 'b') {
                sw++;
            }
            sv[ns++] = r[i].ids[t];
        }
        split_result_free(&r[i]);
    }
}

/* The step rule on forced models with the real Qwen2 tokenizer: the small model writes "A" then
 * <bigmodel>; the big model, from its tag-free view (…"A"), writes "x", a blank line, "yz"; the
 * span ends at the blank line; </bigmodel> follows and the small model writes " done" and EOS. */
static void test_step_rule(void) {
    SrError err;
    Tokenizer *tok = NULL;
    int32_t open = -1, close = -1;
    if (tokenizer_load(&tok, "assets/qwen2_tokenizer", &err) ||
        tokenizer_add_bigmodel_tokens(tok, &open, &close, &err)) {
        CHECKF(0, "tokenizer: %s", err.msg);
        return;
    }
    int32_t eos = tokenizer_eos_id(tok);
    int32_t *q = NULL, *a = NULL;
    size_t nq = 0, na = 0;
    CHECK(tokenizer_encode(tok, "Q:", 2, &q, &nq, &err) == 0 && nq >= 1);
    CHECK(tokenizer_encode(tok, "A", 1, &a, &na, &err) == 0 && na == 1);
    ForcedChain cs, cb;
    forced_chain_init(&cs, q[nq - 1]);
    CHECK(forced_chain_ids(&cs, a, 1, &err) == 0 && forced_chain_ids(&cs, &open, 1, &err) == 0);
    forced_chain_init(&cb, a[0]);
    int32_t after_close[1] = {close};
    CHECK(forced_chain_text(&cb, tok, "x\n\nyz", &err) == 0);
    /* after the span the small model reads </bigmodel>: from there it writes " done" and EOS */
    cs.tail[0] = after_close[0];
    cs.n_tail = 1;
    CHECK(forced_chain_text(&cs, tok, " done", &err) == 0 && forced_chain_ids(&cs, &eos, 1, &err) == 0);
    SrBackend be;
    CHECK(sr_backend_init(&be, "cpu", 0, &err) == 0);
    Qwen2Model ms, mb;
    int V = tokenizer_vocab_size(tok);
    V = (V + 63) / 64 * 64;
    if (forced_model_build(&ms, &be, &cs, V, 256, -1, eos, &err) ||
        forced_model_build(&mb, &be, &cb, V, 256, -1, eos, &err)) {
        CHECKF(0, "forced models: %s", err.msg);
        return;
    }
    Engine *es = open_engine(&ms, (size_t)8 << 20, 16), *eb = open_engine(&mb, (size_t)8 << 20, 16);
    SplitConfig c = greedy_cfg(open, close);
    c.end_rule = SPLIT_END_STEP;
    c.max_new_tokens = 20;
    c.max_span_tokens = 10;
    c.stop_ids = &eos;
    c.n_stop_ids = 1;
    SplitResult r;
    const int32_t *prompts[1] = {q};
    int lens[1] = {(int)nq};
    uint64_t stream = 0;
    CHECK(split_generate(es, eb, tok, prompts, lens, &stream, 1, &c, &r, NULL, NULL, &err) == 0);
    char *text = NULL;
    size_t text_n = 0;
    if (tokenizer_decode(tok, r.ids, (size_t)r.n, &text, &text_n, &err) == 0) {
        CHECKF(strcmp(text, "A<bigmodel>x\n\n</bigmodel> done<｜end▁of▁sentence｜>") == 0 ||
                   strstr(text, "A<bigmodel>x\n\n</bigmodel> done") == text,
               "step rule: got \"%s\"", text);
        free(text);
    }
    CHECKF(r.n > 4 && strncmp(r.owner, "ssbbs", 5) == 0 && r.switches == 1 && r.span_len[0] == 2 &&
               r.finish == SR_FINISH_STOP_ID,
           "step rule: owner %s, switches %d, finish %d", r.owner, r.switches, r.finish);
    split_result_free(&r);
    /* the cap without the rule: a span of at most 3 */
    c.end_rule = SPLIT_END_SMALL_CLOSE;
    c.close_threshold = 1.0f; /* the small model never closes itself */
    c.max_span_tokens = 1;
    CHECK(split_generate(es, eb, tok, prompts, lens, &stream, 1, &c, &r, NULL, NULL, &err) == 0);
    CHECKF(r.switches == 1 && r.span_len[0] == 1 && r.n > 3 && r.ids[3] == close,
           "cap 1: span_len %d", r.switches ? r.span_len[0] : -1);
    split_result_free(&r);
    engine_close(es);
    engine_close(eb);
    qwen2_free(&ms);
    qwen2_free(&mb);
    sr_backend_free(&be);
    forced_chain_free(&cs);
    forced_chain_free(&cb);
    free(q);
    free(a);
    tokenizer_free(tok);
}

static void test_refusals(Pair *p) {
    SplitConfig c = greedy_cfg(3, 4);
    SplitResult r[1];
    SrError err;
    c.max_new_tokens = 600; /* past max_position_embeddings */
    CHECK(split_generate(p->es, p->eb, NULL, PROMPTS, LENS, STREAMS, 1, &c, r, NULL, NULL, &err) == -1);
    CHECKF(strstr(err.msg, "max_position_embeddings") != NULL, "%s", err.msg);
    c = greedy_cfg(-1, -1);
    CHECK(split_generate(p->es, p->eb, NULL, PROMPTS, LENS, STREAMS, 1, &c, r, NULL, NULL, &err) == -1);
    CHECKF(strstr(err.msg, "<bigmodel>") != NULL, "%s", err.msg);
    c = greedy_cfg(3, 4);
    c.end_rule = SPLIT_END_STEP; /* needs a tokenizer */
    CHECK(split_generate(p->es, p->eb, NULL, PROMPTS, LENS, STREAMS, 1, &c, r, NULL, NULL, &err) == -1);
    /* a big model whose vocabulary does not cover the small one's */
    Qwen2Config bc = tiny(20, 48, 1);
    Qwen2Model b2;
    CHECK(qwen2_build(&b2, &bc, &p->be, &err) == 0);
    CHECK(split_check_pair(&p->small, &b2, NULL, &err) == -1);
    CHECKF(strstr(err.msg, "share a vocabulary") != NULL, "%s", err.msg);
    qwen2_free(&b2);
}

int main(void) {
    Pair p;
    SrError err;
    if (sr_backend_init(&p.be, "cpu", 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    Qwen2Config cs = tiny(V, 32, 2), cb = tiny(V, 48, 3);
    if (qwen2_build(&p.small, &cs, &p.be, &err) || qwen2_build(&p.big, &cb, &p.be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    qwen2_init_random(&p.small, 11);
    qwen2_init_random(&p.big, 12);
    p.es = open_engine(&p.small, (size_t)4 << 20, 16);
    p.eb = open_engine(&p.big, (size_t)4 << 20, 16);
    int32_t close;
    int32_t open = frequent_small_id(&p, &close);
    test_greedy_replay(&p, open, close);
    test_sampled_batch_independent(&p, open, close);
    test_forked_samples(&p, open, close);
    test_batch_of_64(&p, open, close);
    test_modes(&p, open, close);
    test_ends(&p, open, close);
    test_probe(&p, open, close);
    test_refusals(&p);
    test_step_rule();
    engine_close(p.es);
    engine_close(p.eb);
    qwen2_free(&p.small);
    qwen2_free(&p.big);
    sr_backend_free(&p.be);
    return sr_test_done();
}
