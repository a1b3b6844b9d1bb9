/*
 * Batched KV-cache generation (train/generate.c):
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
#include "train/generate.h"

static Qwen2Config tiny(int V) {
    Qwen2Config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = V;
    c.hidden_size = 32;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 8;
    c.intermediate_size = 48;
    c.max_position_embeddings = 512;
    c.rope_theta = 10000.0f;
    c.rms_norm_eps = 1e-6f;
    c.initializer_range = 0.5f; /* peaked distributions, so greedy is not a coin toss */
    c.tie_word_embeddings = 0;
    c.bos_token_id = -1;
    c.eos_token_id = -1;
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
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

static void test_greedy_and_batch(Qwen2Model *m) {
    const int V = m->cfg.vocab_size, STEPS = 12;
    int32_t p0[] = {5, 17, 42, 7, 99, 3, 250}, p1[] = {11}, p2[] = {8, 8, 8, 200};
    const int32_t *prompts[] = {p0, p1, p2};
    int lens[] = {7, 1, 4};
    GenConfig g = greedy_cfg(STEPS);
    GenResult batch[3];
    SrError err;
    CHECK(generate(m, NULL, prompts, lens, 3, &g, batch, NULL, NULL, &err) == 0);
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
        CHECK(generate(m, NULL, &prompts[b], &lens[b], 1, &g, &alone, NULL, NULL, &err) == 0);
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
    CHECK(generate(m, NULL, prompts, lens, 3, &gs, st, NULL, NULL, &err) == 0);
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
    CHECK(generate(m, NULL, &pp, &len, 1, &g, &a, NULL, NULL, &err) == 0);
    CHECK(generate(m, NULL, &pp, &len, 1, &g, &b, NULL, NULL, &err) == 0);
    CHECK(a.n == 16 && b.n == 16 && memcmp(a.ids, b.ids, 16 * sizeof(int32_t)) == 0);
    CHECK(memcmp(a.logprobs, b.logprobs, 16 * sizeof(float)) == 0);
    for (int i = 0; i < a.n; i++) CHECKF(a.logprobs[i] <= 0 && isfinite(a.logprobs[i]), "lp %g", a.logprobs[i]);
    g.seed = 999;
    CHECK(generate(m, NULL, &pp, &len, 1, &g, &c, NULL, NULL, &err) == 0);
    CHECK(c.n == 16 && memcmp(a.ids, c.ids, 16 * sizeof(int32_t)) != 0);
    /* in a batch, sequence 0 uses stream 0 like a lone sequence */
    g.seed = 1234;
    const int32_t *pb[4] = {p, p, p, p};
    int lb[4] = {5, 5, 3, 1};
    CHECK(generate(m, NULL, pb, lb, 4, &g, batch, NULL, NULL, &err) == 0);
    CHECK(batch[0].n == 16 && memcmp(batch[0].ids, a.ids, 16 * sizeof(int32_t)) == 0);
    CHECK(memcmp(batch[0].ids, batch[1].ids, 16 * sizeof(int32_t)) != 0); /* own streams */
    for (int i = 0; i < 4; i++) gen_result_free(&batch[i]);
    /* top_k = 1 is greedy whatever the temperature */
    GenConfig gk = greedy_cfg(16), gg = greedy_cfg(16);
    gk.sampling.temperature = 2.0f;
    gk.sampling.top_k = 1;
    gk.seed = 5;
    GenResult k1, gr;
    CHECK(generate(m, NULL, &pp, &len, 1, &gk, &k1, NULL, NULL, &err) == 0);
    CHECK(generate(m, NULL, &pp, &len, 1, &gg, &gr, NULL, NULL, &err) == 0);
    CHECK(k1.n == gr.n && memcmp(k1.ids, gr.ids, (size_t)gr.n * sizeof(int32_t)) == 0);
    gen_result_free(&a);
    gen_result_free(&b);
    gen_result_free(&c);
    gen_result_free(&k1);
    gen_result_free(&gr);
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
    CHECK(generate(&m, tok, &pp, &len, 1, &g, &full, collect, streamed, &err) == 0);
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
        CHECK(generate(&m, tok, &pp, &len, 1, &gs, &r, NULL, NULL, &err) == 0);
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
    qwen2_free(&m);
    sr_backend_free(&be);
    test_stop_strings();
    return sr_test_done();
}
