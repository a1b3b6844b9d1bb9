/*
 * The engine on CUDA (engine/engine.c over attention_paged's CUDA kernel) against the CPU
 * engine, the specification, on a tiny Qwen2 with head_dim 64 and the same (bf16-rounded)
 * weights:
 *   - prefills, decode steps and catch-ups of Δ = 2, 7, 33 mixed in one pass, a fork written
 *     after its source (copy-on-write): every row's logits within bf16 tolerance of the CPU's
 *     and the same greedy token where the CPU's top two are not a near tie;
 *   - the same passes with the blocks handed out in another order give the same bits (the
 *     kernels read the same keys in the same order whichever blocks hold them);
 *   - engine_sample greedy = argmax of engine_logits; engine_logprob_of = host log_softmax.
 * Without a GPU (or without CUDA compiled in) it prints "skipped" and exits 77.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "engine/engine.h"
#include "harness.h"

#if defined(__SANITIZE_ADDRESS__)
/* the CUDA driver maps memory where ASan keeps its shadow gap, and leaks on purpose */
const char *__asan_default_options(void);
const char *__asan_default_options(void) { return "protect_shadow_gap=0:detect_leaks=0"; }
#endif

static const char *CONFIG =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\", "
    "\"vocab_size\": 1000, \"hidden_size\": 128, \"intermediate_size\": 344, "
    "\"num_hidden_layers\": 2, \"num_attention_heads\": 2, \"num_key_value_heads\": 1, "
    "\"max_position_embeddings\": 512, \"rope_theta\": 10000.0, \"rms_norm_eps\": 1e-06, "
    "\"initializer_range\": 0.5, \"tie_word_embeddings\": false, \"hidden_act\": \"silu\"}";

/* logits of bf16 activations through two layers: rel err of the row against the CPU's */
#define TOL_LOGITS 3e-2

typedef struct Side {
    SrBackend be;
    Qwen2Model m;
    Engine *e;
} Side;

static Engine *open_engine(Qwen2Model *m, int n_blocks) {
    EngineOptions o = {.kv_bytes = (size_t)n_blocks * 16 * engine_kv_bytes_per_token(m),
                       .block_size = 16,
                       .max_seqs = 8,
                       .max_tokens = 512};
    Engine *e = NULL;
    SrError err = {{0}};
    CHECKF(engine_open(&e, m, &o, &err) == 0, "engine_open: %s", err.msg);
    SR_ASSERT(e);
    return e;
}

static float *pass(Engine *e, int nseq, const int *seqs, const int *n, const int32_t *ids) {
    int V = engine_model(e)->cfg.vocab_size;
    SrError err = {{0}};
    CHECKF(engine_forward(e, nseq, seqs, n, ids, &err) == 0, "engine_forward: %s", err.msg);
    float *lg = malloc((size_t)nseq * V * sizeof(float));
    CHECKF(engine_logits(e, nseq, lg, &err) == 0, "engine_logits: %s", err.msg);
    return lg;
}

static int argmax(const float *x, int n, float *gap) {
    int a = 0, b = -1;
    for (int i = 1; i < n; i++)
        if (x[i] > x[a]) b = a, a = i;
        else if (b < 0 || x[i] > x[b]) b = i;
    if (gap) *gap = x[a] - x[b];
    return a;
}

/* one pass on both engines; compares every row */
static void both(Side *g, Side *c, int nseq, const int *sg, const int *sc, const int *n,
                 const int32_t *ids, const char *what) {
    int V = g->m.cfg.vocab_size;
    float *lg = pass(g->e, nseq, sg, n, ids), *lc = pass(c->e, nseq, sc, n, ids);
    for (int r = 0; r < nseq; r++) {
        const float *rg = lg + (size_t)r * V, *rc = lc + (size_t)r * V;
        double err = sr_rel_err(rg, rc, (size_t)V);
        CHECKF(err < TOL_LOGITS, "%s: row %d (Δ %d): cuda vs cpu logits rel err %.3g", what, r,
               n[r], err);
        float gap;
        int ac = argmax(rc, V, &gap);
        if (gap > 0.1f) CHECKF(argmax(rg, V, NULL) == ac, "%s: row %d: greedy token differs", what, r);
        printf("  %s row %d: rel err %.3g\n", what, r, err);
    }
    free(lg);
    free(lc);
}

int main(void) {
    if (sr_cuda_device_count() == 0) {
        printf("skipped: no GPU\n");
        return 77;
    }
    SrError err;
    Qwen2Config cfg;
    if (qwen2_config_from_json(&cfg, CONFIG, "test config", &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    Side g, c;
    memset(&g, 0, sizeof g);
    memset(&c, 0, sizeof c);
    if (sr_backend_init(&g.be, "cuda", 0, &err) || qwen2_build(&g.m, &cfg, &g.be, &err) ||
        sr_backend_init(&c.be, "cpu", 0, &err) || qwen2_build(&c.m, &cfg, &c.be, &err)) {
        printf("skipped: %s\n", err.msg);
        return 77;
    }
    /* the same weights on both: random on the GPU (bf16), copied exactly to the CPU */
    qwen2_init_random(&g.m, 4321);
    float *p0 = malloc(g.m.total_numel * sizeof(float));
    g.be.ops->download_act(&g.be, p0, g.m.params, g.m.total_numel);
    c.be.ops->upload_act(&c.be, c.m.params, p0, g.m.total_numel);
    free(p0);
    g.e = open_engine(&g.m, 40);
    c.e = open_engine(&c.m, 40);
    int V = cfg.vocab_size, sg[4], sc[4];
    for (int i = 0; i < 3; i++) sg[i] = engine_seq_new(g.e), sc[i] = engine_seq_new(c.e);
    uint64_t rng = 17;
    int32_t ids[512];
    int rounds[][3] = {{70, 5, 33}, {1, 1, 1}, {2, 7, 33}, {1, 1, 1}};
    for (int r = 0; r < 4; r++) {
        int total = 0;
        for (int i = 0; i < 3; i++)
            for (int t = 0; t < rounds[r][i]; t++)
                ids[total++] = (int32_t)(sr_rng_u64(&rng) % (uint64_t)V);
        char what[32];
        snprintf(what, sizeof what, "round %d", r);
        both(&g, &c, 3, sg, sc, rounds[r], ids, what);
    }
    /* a fork of sequence 1 (its last block shared half full), then both written in one pass */
    sg[3] = engine_seq_fork(g.e, sg[1]);
    sc[3] = engine_seq_fork(c.e, sc[1]);
    int pair_g[2] = {sg[3], sg[1]}, pair_c[2] = {sc[3], sc[1]}, ones[2] = {1, 1};
    int32_t two[2] = {5, 6};
    both(&g, &c, 2, pair_g, pair_c, ones, two, "fork + source");
    both(&g, &c, 2, pair_g, pair_c, ones, two, "fork + source again");

    /* sampling and log-probs on the device rows of the last pass */
    float *lg = malloc((size_t)2 * V * sizeof(float));
    CHECK(engine_logits(g.e, 2, lg, &err) == 0);
    SrSampling greedy[2] = {{0, 0, 1}, {0, 0, 1}};
    uint64_t rs[2] = {1, 2};
    int32_t out[2], want[2] = {3, 999};
    float lp[2];
    CHECK(engine_sample(g.e, 2, greedy, rs, V, out, lp, &err) == 0);
    CHECK(engine_logprob_of(g.e, 2, want, V, lp, &err) == 0);
    for (int r = 0; r < 2; r++) {
        const float *row = lg + (size_t)r * V;
        CHECK(out[r] == argmax(row, V, NULL));
        double mx = row[0], s = 0;
        for (int i = 1; i < V; i++) mx = row[i] > mx ? row[i] : mx;
        for (int i = 0; i < V; i++) s += exp(row[i] - mx);
        double ref = row[want[r]] - mx - log(s);
        CHECKF(fabs(lp[r] - ref) < 1e-3, "logprob_of row %d: %g vs %g", r, lp[r], ref);
    }
    free(lg);

    /* block placement: the same tokens in a second CUDA engine whose blocks are handed out in
     * another order (stirred by a sequence that takes and gives back blocks) */
    Engine *e2 = open_engine(&g.m, 40);
    int junk = engine_seq_new(e2), nj = 40;
    free(pass(e2, 1, &junk, &nj, ids));
    int a1 = engine_seq_new(g.e), a2 = engine_seq_new(e2);
    engine_seq_free(e2, junk);
    int steps[] = {37, 1, 20, 1};
    for (int r = 0; r < 4; r++) {
        for (int i = 0; i < steps[r]; i++) ids[i] = (int32_t)(sr_rng_u64(&rng) % (uint64_t)V);
        float *l1 = pass(g.e, 1, &a1, &steps[r], ids), *l2 = pass(e2, 1, &a2, &steps[r], ids);
        CHECKF(memcmp(l1, l2, (size_t)V * sizeof(float)) == 0, "placement step %d: rel err %.3g",
               r, sr_rel_err(l1, l2, (size_t)V));
        free(l1);
        free(l2);
    }
    engine_close(e2);
    engine_close(g.e);
    engine_close(c.e);
    qwen2_free(&g.m);
    qwen2_free(&c.m);
    sr_backend_free(&g.be);
    sr_backend_free(&c.be);
    return sr_test_done();
}
