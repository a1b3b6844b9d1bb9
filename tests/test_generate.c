/*
 * Batched KV-cache generation (engine/generate.c):
 *   - greedy ids equal a naive loop of full recomputations (argmax of qwen2_logits), and each
 *     token's log-prob equals log_softmax of the full logits;
 *   - a batch of prompts of different lengths gives each sequence what it gets alone
 *     (greedy: every sequence; sampling: sequence 0, which uses the same RNG stream);
 *   - seeded sampling is reproducible, other seeds differ, top_k = 1 is greedy;
 *   - stop ids (kept in the output), max_new_tokens, and stop strings (with the real
 *     tokenizer) end sequences independently.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "harness.h"
#include "model_fixture.h"
#include "engine/generate.h"

static Qwen2Config tiny(int V) {
    Qwen2Config c = sr_test_qwen2_config(V, 32, 2, 4, 2, 8, 48);
    c.initializer_range = 0.5f; /* peaked distributions, so greedy is not a coin toss */
    return c;
}

static GenConfig greedy_cfg(int max_new) {
    GenConfig g;
    memset(&g, 0, sizeof g);
    g.max_new_tokens = max_new;
    g.sampling.temperature = 0.0f;
    g.sampling.top_k = 0;
    g.sampling.top_p = 1.0f;
    return g;
}

/* naive greedy: full recomputation per step */
static void naive_greedy(Qwen2Model *m, const int32_t *prompt, int n0, int steps, int32_t *out,
                         float *lp_out) {
    int V = m->cfg.vocab_size;
    int32_t *ids = malloc((size_t)(n0 + steps) * sizeof(int32_t));
    int32_t *pos = malloc((size_t)(n0 + steps) * sizeof(int32_t));
    float *logits = malloc((size_t)(n0 + steps) * V * sizeof(float));
    memcpy(ids, prompt, (size_t)n0 * sizeof(int32_t));
    int n = n0;
    SrError err;
    for (int s = 0; s < steps; s++) {
        for (int i = 0; i < n; i++) pos[i] = i;
        if (qwen2_logits(m, ids, pos, n, logits, &err)) {
            fprintf(stderr, "%s\n", err.msg);
            break;
        }
        const float *row = logits + (size_t)(n - 1) * V;
        int best = 0;
        double mx = row[0], sum = 0;
        for (int v = 1; v < V; v++)
            if (row[v] > row[best]) best = v;
        mx = row[best];
        for (int v = 0; v < V; v++) sum += exp((double)row[v] - mx);
        out[s] = best;
        lp_out[s] = (float)(-log(sum));
        ids[n++] = best;
    }
    free(logits);
    free(pos);
    free(ids);
}

typedef struct DoneLog {
    int n, fail_at;
    int seq[8], len[8], first[8];
} DoneLog;

static int log_done(void *user, int seq, const GenResult *r, SrError *err) {
    DoneLog *d = user;
    if (d->n < 8) {
        d->seq[d->n] = seq;
        d->len[d->n] = r->n;
        d->first[d->n] = r->n > 0 ? r->ids[0] : -1;
    }
    d->n++;
    if (d->fail_at && d->n == d->fail_at) return sr_fail(err, "disk full (test)");
    return 0;
}

static void test_greedy_and_batch(Qwen2Model *m) {
    const int V = m->cfg.vocab_size, STEPS = 12;
    int32_t p0[] = {5, 17, 42, 7, 99, 3, 250}, p1[] = {11}, p2[] = {8, 8, 8, 200};
    const int32_t *prompts[] = {p0, p1, p2};
    int lens[] = {7, 1, 4};
    GenConfig g = greedy_cfg(STEPS);
    GenResult batch[3];
    SrError err;
    CHECK(generate(m, NULL, prompts, lens, 3, &g, batch, NULL, &err) == 0);
    for (int b = 0; b < 3; b++) {
        int32_t ref[32];
        float ref_lp[32];
        naive_greedy(m, prompts[b], lens[b], STEPS, ref, ref_lp);
        CHECKF(batch[b].n == STEPS, "seq %d: %d tokens", b, batch[b].n);
        CHECKF(batch[b].finish == SR_FINISH_LENGTH, "seq %d finish %d", b, batch[b].finish);
        int same = batch[b].n == STEPS;
        double worst = 0;
        for (int i = 0; same && i < STEPS; i++) {
            if (batch[b].ids[i] != ref[i]) same = 0;
            double d = fabs(batch[b].logprobs[i] - ref_lp[i]);
            if (d > worst) worst = d;
        }
        CHECKF(same, "seq %d: greedy ids differ from the naive full-recompute loop", b);
        CHECKF(worst < 1e-4, "seq %d: log-prob differs by %g", b, worst);
        GenResult alone;
        CHECK(generate(m, NULL, &prompts[b], &lens[b], 1, &g, &alone, NULL, &err) == 0);
        CHECKF(alone.n == batch[b].n &&
                   memcmp(alone.ids, batch[b].ids, (size_t)alone.n * sizeof(int32_t)) == 0,
               "seq %d: batched greedy differs from alone", b);
        gen_result_free(&alone);
    }
    /* stop id: the 4th greedy token of sequence 0 ends it there (and is kept);
     * the other sequences go on unless they produce it too */
    int32_t stop = batch[0].ids[3];
    int first_other[3];
    for (int b = 0; b < 3; b++) {
        first_other[b] = STEPS;
        for (int i = 0; i < batch[b].n; i++)
            if (batch[b].ids[i] == stop) {
                first_other[b] = i + 1;
                break;
            }
    }
    GenConfig gs = g;
    gs.stop_ids = &stop;
    gs.n_stop_ids = 1;
    GenResult st[3];
    DoneLog dl = {0};
    GenHooks hooks = {NULL, log_done, &dl};
    CHECK(generate(m, NULL, prompts, lens, 3, &gs, st, &hooks, &err) == 0);
    /* the done hook saw every sequence once, as it finished: in order of length, each with
     * its final result */
    CHECKF(dl.n == 3, "done hook called %d times for 3 sequences", dl.n);
    for (int k = 1; k < dl.n; k++)
        CHECKF(dl.len[k - 1] <= dl.len[k], "sequence %d (%d tokens) reported after sequence %d "
               "(%d tokens)", dl.seq[k - 1], dl.len[k - 1], dl.seq[k], dl.len[k]);
    for (int k = 0; k < dl.n; k++)
        CHECKF(dl.seq[k] >= 0 && dl.seq[k] < 3 && dl.len[k] == st[dl.seq[k]].n &&
                   dl.first[k] == st[dl.seq[k]].ids[0],
               "done hook %d: sequence %d with %d tokens", k, dl.seq[k], dl.len[k]);
    for (int b = 0; b < 3; b++) {
        CHECKF(st[b].n == first_other[b], "seq %d: stopped after %d tokens, expected %d", b,
               st[b].n, first_other[b]);
        if (first_other[b] < STEPS || (st[b].n > 0 && st[b].ids[st[b].n - 1] == stop))
            CHECKF(st[b].finish == SR_FINISH_STOP_ID && st[b].ids[st[b].n - 1] == stop,
                   "seq %d: finish %d", b, st[b].finish);
        gen_result_free(&st[b]);
    }
    for (int b = 0; b < 3; b++) gen_result_free(&batch[b]);
    (void)V;
}

static void test_sampling(Qwen2Model *m) {
    int32_t p[] = {1, 2, 3, 4, 5};
    const int32_t *pp = p;
    int len = 5;
    SrError err;
    GenConfig g = greedy_cfg(16);
    g.sampling.temperature = 1.5f;
    g.seed = 1234;
    GenResult a, b, c, batch[4];
    CHECK(generate(m, NULL, &pp, &len, 1, &g, &a, NULL, &err) == 0);
    CHECK(generate(m, NULL, &pp, &len, 1, &g, &b, NULL, &err) == 0);
    CHECK(a.n == 16 && b.n == 16 && memcmp(a.ids, b.ids, 16 * sizeof(int32_t)) == 0);
    CHECK(memcmp(a.logprobs, b.logprobs, 16 * sizeof(float)) == 0);
    for (int i = 0; i < a.n; i++) CHECKF(a.logprobs[i] <= 0 && isfinite(a.logprobs[i]), "lp %g", a.logprobs[i]);
    g.seed = 999;
    CHECK(generate(m, NULL, &pp, &len, 1, &g, &c, NULL, &err) == 0);
    CHECK(c.n == 16 && memcmp(a.ids, c.ids, 16 * sizeof(int32_t)) != 0);
    /* in a batch, sequence 0 uses stream 0 like a lone sequence */
    g.seed = 1234;
    const int32_t *pb[4] = {p, p, p, p};
    int lb[4] = {5, 5, 3, 1};
    CHECK(generate(m, NULL, pb, lb, 4, &g, batch, NULL, &err) == 0);
    CHECK(batch[0].n == 16 && memcmp(batch[0].ids, a.ids, 16 * sizeof(int32_t)) == 0);
    CHECK(memcmp(batch[0].ids, batch[1].ids, 16 * sizeof(int32_t)) != 0); /* own streams */
    for (int i = 0; i < 4; i++) gen_result_free(&batch[i]);
    /* top_k = 1 is greedy whatever the temperature */
    GenConfig gk = greedy_cfg(16), gg = greedy_cfg(16);
    gk.sampling.temperature = 2.0f;
    gk.sampling.top_k = 1;
    gk.seed = 5;
    GenResult k1, gr;
    CHECK(generate(m, NULL, &pp, &len, 1, &gk, &k1, NULL, &err) == 0);
    CHECK(generate(m, NULL, &pp, &len, 1, &gg, &gr, NULL, &err) == 0);
    CHECK(k1.n == gr.n && memcmp(k1.ids, gr.ids, (size_t)gr.n * sizeof(int32_t)) == 0);
    gen_result_free(&a);
    gen_result_free(&b);
    gen_result_free(&c);
    gen_result_free(&k1);
    gen_result_free(&gr);
}

/* ids past the valid vocabulary (vocab_limit) are never generated, greedy or sampled; a
 * greedy run with a limit equals the argmax over the first ids */
static void test_vocab_limit(Qwen2Model *m) {
    int32_t p[] = {1, 2, 3, 4, 5};
    const int32_t *pb[4] = {p, p, p, p};
    int lb[4] = {5, 4, 3, 2};
    SrError err;
    GenConfig g = greedy_cfg(64);
    g.sampling.temperature = 1.5f;
    g.vocab_limit = 37;
    g.seed = 3;
    GenResult r[4];
    CHECK(generate(m, NULL, pb, lb, 4, &g, r, NULL, &err) == 0);
    int bad = 0, n = 0;
    for (int b = 0; b < 4; b++) {
        for (int i = 0; i < r[b].n; i++, n++) bad += r[b].ids[i] < 0 || r[b].ids[i] >= 37;
        gen_result_free(&r[b]);
    }
    CHECKF(n == 256 && bad == 0, "%d of %d ids >= vocab_limit 37", bad, n);
    GenConfig gg = greedy_cfg(8);
    gg.vocab_limit = 37;
    GenResult a;
    CHECK(generate(m, NULL, pb, lb, 1, &gg, &a, NULL, &err) == 0);
    int V = m->cfg.vocab_size;
    float *logits = malloc((size_t)(5 + 8) * V * sizeof(float));
    int32_t ids[13], pos[13];
    memcpy(ids, p, sizeof p);
    int same = a.n == 8;
    for (int s = 0; same && s < 8; s++) {
        for (int i = 0; i < 5 + s; i++) pos[i] = i;
        CHECK(qwen2_logits(m, ids, pos, 5 + s, logits, &err) == 0);
        const float *row = logits + (size_t)(4 + s) * V;
        int best = 0;
        for (int v = 1; v < 37; v++)
            if (row[v] > row[best]) best = v;
        same = a.ids[s] == best;
        ids[5 + s] = best;
    }
    CHECKF(same, "greedy with vocab_limit is not the argmax over the first 37 ids");
    free(logits);
    gen_result_free(&a);
}

/* a done hook that fails stops the run with its error; the sequences it was shown were
 * complete */
static void test_done_hook_failure(Qwen2Model *m) {
    int32_t p0[] = {5, 17, 42}, p1[] = {11, 12};
    const int32_t *prompts[] = {p0, p1};
    int lens[] = {3, 2};
    GenConfig g = greedy_cfg(10);
    GenResult r[2];
    DoneLog dl = {0};
    dl.fail_at = 1;
    GenHooks hooks = {NULL, log_done, &dl};
    SrError err;
    sr_error_clear(&err);
    CHECK(generate(m, NULL, prompts, lens, 2, &g, r, &hooks, &err) == -1);
    CHECKF(strstr(err.msg, "disk full (test)") != NULL, "error: %s", err.msg);
    CHECK(dl.n == 1 && dl.len[0] == 10);
    CHECK(r[0].ids == NULL && r[1].ids == NULL); /* freed on failure */
}

/* prompts that do not fit one prefill pass (4096 tokens) are prefilled in groups: every
 * sequence still gets what it gets alone */
static void test_prefill_groups(Qwen2Model *m) {
    enum { NB = 40, L = 120 };
    int32_t *buf = malloc((size_t)NB * L * sizeof(int32_t));
    const int32_t *prompts[NB];
    int lens[NB];
    for (int b = 0; b < NB; b++) {
        for (int i = 0; i < L; i++) buf[b * L + i] = (b * 31 + i * 7) % m->cfg.vocab_size;
        prompts[b] = buf + b * L;
        lens[b] = L - (b % 5);
    }
    GenConfig g = greedy_cfg(4);
    GenResult r[NB];
    SrError err;
    CHECK(generate(m, NULL, prompts, lens, NB, &g, r, NULL, &err) == 0);
    int check_b[] = {0, 33, NB - 1};
    for (int k = 0; k < 3; k++) {
        int b = check_b[k];
        GenResult alone;
        CHECK(generate(m, NULL, &prompts[b], &lens[b], 1, &g, &alone, NULL, &err) == 0);
        CHECKF(alone.n == r[b].n && memcmp(alone.ids, r[b].ids, (size_t)alone.n * 4) == 0,
               "seq %d of a two-pass prefill differs from alone", b);
        gen_result_free(&alone);
    }
    for (int b = 0; b < NB; b++) gen_result_free(&r[b]);
    free(buf);
}

/* a batch that cannot fit is refused before anything is allocated, naming the bytes and the
 * bound */
static void test_memory_refusal(Qwen2Model *m) {
    GenConfig g = greedy_cfg(256);
    SrError err;
    sr_error_clear(&err);
    CHECK(generate_check_memory(m, 100000000, 8, &g, &err) == -1);
    CHECKF(strstr(err.msg, "100000000 sequences") && strstr(err.msg, "bytes") &&
               strstr(err.msg, "more than "),
           "message: %s", err.msg);
    g.max_new_tokens = 2147483647;
    sr_error_clear(&err);
    CHECK(generate_check_memory(m, 1, 8, &g, &err) == -1);
    CHECKF(strstr(err.msg, "max_position_embeddings 512") != NULL, "message: %s", err.msg);
    g.max_new_tokens = 16;
    CHECK(generate_check_memory(m, 4, 8, &g, &err) == 0);
}

typedef struct Collect {
    char buf[4096];
    size_t n;
} Collect;

static void collect(void *user, int seq, const char *bytes, size_t n) {
    Collect *c = (Collect *)user + seq;
    if (c->n + n < sizeof c->buf) {
        memcpy(c->buf + c->n, bytes, n);
        c->n += n;
    }
}

static void test_stop_strings(void) {
    Tokenizer *tok = NULL;
    SrError err;
    if (tokenizer_load(&tok, "assets/qwen2_tokenizer", &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    SrBackend be;
    sr_backend_init(&be, "cpu", 0, &err);
    Qwen2Config c = tiny(tokenizer_vocab_size(tok));
    c.hidden_size = 16;
    c.head_dim = 4;
    c.num_hidden_layers = 1;
    Qwen2Model m;
    CHECK(qwen2_build(&m, &c, &be, &err) == 0);
    qwen2_init_random(&m, 7);
    int32_t *prompt = NULL;
    size_t np = 0;
    CHECK(tokenizer_encode(tok, "The answer is", 13, &prompt, &np, &err) == 0);
    const int32_t *pp = prompt;
    int len = (int)np;
    GenConfig g = greedy_cfg(24);
    GenResult full;
    Collect streamed[1];
    memset(streamed, 0, sizeof streamed);
    GenHooks hooks = {collect, NULL, streamed};
    CHECK(generate(&m, tok, &pp, &len, 1, &g, &full, &hooks, &err) == 0);
    char *text = NULL;
    size_t tl = 0;
    CHECK(tokenizer_decode(tok, full.ids, (size_t)full.n, &text, &tl, &err) == 0);
    /* the streamed bytes are exactly the decoded completion */
    CHECKF(streamed[0].n == tl && memcmp(streamed[0].buf, text, tl) == 0,
           "streamed %zu bytes, decoded %zu", streamed[0].n, tl);
    /* stop at a string taken from the middle of the greedy completion */
    if (tl >= 12) {
        char stop[8];
        memcpy(stop, text + tl / 2, 3);
        stop[3] = '\0';
        const char *stops[] = {stop};
        GenConfig gs = g;
        gs.stop_strings = stops;
        gs.n_stop_strings = 1;
        GenResult r;
        CHECK(generate(&m, tok, &pp, &len, 1, &gs, &r, NULL, &err) == 0);
        CHECKF(r.finish == SR_FINISH_STOP_STRING, "finish %d", r.finish);
        CHECK(r.n <= full.n && memcmp(r.ids, full.ids, (size_t)r.n * sizeof(int32_t)) == 0);
        char *t2 = NULL;
        size_t l2 = 0;
        CHECK(tokenizer_decode(tok, r.ids, (size_t)r.n, &t2, &l2, &err) == 0);
        CHECKF(t2 && strstr(t2, stop) != NULL, "stop string '%s' not in the output", stop);
        /* and not already in the text one token earlier */
        if (r.n > 1) {
            char *t3 = NULL;
            size_t l3 = 0;
            CHECK(tokenizer_decode(tok, r.ids, (size_t)r.n - 1, &t3, &l3, &err) == 0);
            CHECK(t3 && strstr(t3, stop) == NULL);
            free(t3);
        }
        free(t2);
        gen_result_free(&r);
    } else {
        CHECKF(0, "greedy completion too short (%zu bytes) to pick a stop string", tl);
    }
    free(text);
    free(prompt);
    gen_result_free(&full);
    qwen2_free(&m);
    sr_backend_free(&be);
    tokenizer_free(tok);
}

/* a model whose embedding is larger than its tokenizer (R1-distill pads 151936 rows): hot
 * sampling of many tokens never yields an id the tokenizer does not have, and the decoded
 * text is what was streamed */
static void test_padded_vocab(void) {
    Tokenizer *tok = NULL;
    SrError err;
    if (tokenizer_load(&tok, "assets/qwen2_tokenizer", &err)) {
        CHECKF(0, "%s", err.msg);
        return;
    }
    int NT = tokenizer_vocab_size(tok);
    SrBackend be;
    sr_backend_init(&be, "cpu", 0, &err);
    Qwen2Config c = tiny(2 * NT); /* half the rows are padding: unmasked, half the draws */
    c.hidden_size = 16;
    c.head_dim = 4;
    c.num_hidden_layers = 1;
    c.max_position_embeddings = 1024;
    Qwen2Model m;
    CHECK(qwen2_build(&m, &c, &be, &err) == 0);
    qwen2_init_random(&m, 11);
    int32_t p[] = {40, 1000, 20};
    const int32_t *pb[4] = {p, p, p, p};
    int lb[4] = {3, 3, 3, 3};
    GenConfig g = greedy_cfg(150);
    g.sampling.temperature = 1.5f;
    g.sampling.top_p = 1.0f;
    g.seed = 77;
    GenResult r[4];
    Collect streamed[4];
    memset(streamed, 0, sizeof streamed);
    GenHooks hooks = {collect, NULL, streamed};
    CHECK(generate(&m, tok, pb, lb, 4, &g, r, &hooks, &err) == 0);
    int bad = 0, n = 0;
    for (int b = 0; b < 4; b++) {
        for (int i = 0; i < r[b].n; i++, n++) bad += r[b].ids[i] < 0 || r[b].ids[i] >= NT;
        char *text = NULL;
        size_t tl = 0;
        CHECKF(tokenizer_decode(tok, r[b].ids, (size_t)r[b].n, &text, &tl, &err) == 0, "%s",
               err.msg);
        free(text);
        gen_result_free(&r[b]);
    }
    CHECKF(n == 600 && bad == 0, "%d of %d sampled ids are >= the tokenizer's %d", bad, n, NT);
    /* greedy too: the padding rows are made the largest logits, and still never chosen */
    size_t Cn = (size_t)c.hidden_size;
    float *lm = qwen2_param_ptr(&m, "lm_head.weight");
    float *norm = qwen2_param_ptr(&m, "model.norm.weight");
    for (size_t j = 0; j < Cn; j++) norm[j] = 1.0f;
    for (size_t v = (size_t)NT; v < (size_t)c.vocab_size; v++)
        for (size_t j = 0; j < Cn; j++) lm[v * Cn + j] = 0.0f;
    /* a padding row of huge weights wins the argmax for any hidden state with positive mass
     * along it; put both signs in so one of them wins */
    for (size_t j = 0; j < Cn; j++) {
        lm[(size_t)NT * Cn + j] = 1e3f;
        lm[((size_t)NT + 1) * Cn + j] = -1e3f;
    }
    GenConfig gg = greedy_cfg(32);
    GenResult a;
    CHECK(generate(&m, tok, pb, lb, 1, &gg, &a, NULL, &err) == 0);
    bad = 0;
    for (int i = 0; i < a.n; i++) bad += a.ids[i] >= NT;
    CHECKF(a.n == 32 && bad == 0, "greedy chose %d padding ids", bad);
    gen_result_free(&a);
    qwen2_free(&m);
    sr_backend_free(&be);
    tokenizer_free(tok);
}

int main(void) {
    SrBackend be;
    SrError err;
    if (sr_backend_init(&be, "cpu", 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    Qwen2Config c = tiny(300);
    Qwen2Model m;
    if (qwen2_build(&m, &c, &be, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    qwen2_init_random(&m, 42);
    test_greedy_and_batch(&m);
    test_sampling(&m);
    test_vocab_limit(&m);
    test_done_hook_failure(&m);
    test_prefill_groups(&m);
    test_memory_refusal(&m);
    qwen2_free(&m);
    sr_backend_free(&be);
    test_stop_strings();
    test_padded_vocab();
    return sr_test_done();
}
