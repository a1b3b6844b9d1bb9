/*
 * KV-cache decoding equals full recomputation, and the whole-model gradient equals finite
 * differences.
 *
 * 1. Three prompts of different lengths are prefilled in one qwen2_kv_step; then decode
 *    steps feed different numbers of tokens per sequence (1, several, or none: sequences
 *    drop out and come back), and one sequence is restarted with a new prompt while the
 *    others decode in the same call. After every step, each fed sequence's logits must equal
 *    the last row of qwen2_logits over its whole history (rel err < 1e-5). And Δ tokens fed to
 *    a non-empty cache in one step give the logits and cache that Δ single-token steps give.
 * 2. Directional finite differences of the loss (packed documents, masked targets, per-token
 *    weights) along a random direction per parameter tensor, for a tied and an untied config,
 *    against the analytic gradient g . u.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "harness.h"
#include "model/model.h"

static Qwen2Config tiny_config(int V, int C, int L, int Hq, int Hkv, int D, int I, int tied,
                               float theta) {
    Qwen2Config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = V;
    c.hidden_size = C;
    c.num_hidden_layers = L;
    c.num_attention_heads = Hq;
    c.num_key_value_heads = Hkv;
    c.head_dim = D;
    c.intermediate_size = I;
    c.max_position_embeddings = 256;
    c.rope_theta = theta;
    c.rms_norm_eps = 1e-6f;
    c.initializer_range = 0.2f;
    c.tie_word_embeddings = tied;
    c.bos_token_id = -1;
    c.eos_token_id = -1;
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
    return c;
}

/* HF init, then non-trivial biases and norm weights (so that bugs there would show) */
static void randomize(Qwen2Model *m, uint64_t seed) {
    qwen2_init_random(m, seed);
    uint64_t rng = sr_rng_stream(seed, 999);
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->info[i];
        int is_bias = strstr(p->name, ".bias") != NULL;
        int is_norm = strstr(p->name, "norm") != NULL;
        if (!is_bias && !is_norm) continue;
        float *x = malloc(p->numel * sizeof(float));
        for (size_t j = 0; j < p->numel; j++)
            x[j] = (is_norm ? 1.0f : 0.0f) + 0.2f * sr_rng_normal(&rng);
        m->be->ops->upload_act(m->be, (char *)m->params + p->offset * sizeof(float), x, p->numel);
        free(x);
    }
}

/* ---- 1. KV cache ---------------------------------------------------------------------- */

#define B 3
#define MAXSEQ 40

typedef struct Hist {
    int32_t ids[MAXSEQ];
    int n;
} Hist;

static double worst_kv = 0;

/* one qwen2_kv_step feeding n[b] tokens to each sequence; checks the logits */
static void step(Qwen2Model *m, Qwen2KVCache *c, Hist *h, const int *n, uint64_t *rng,
                 const char *what) {
    int V = m->cfg.vocab_size, total = 0;
    int32_t ids[B * MAXSEQ];
    for (int b = 0; b < B; b++)
        for (int i = 0; i < n[b]; i++) {
            ids[total] = (int32_t)(sr_rng_u64(rng) % (uint64_t)V);
            h[b].ids[h[b].n + i] = ids[total];
            total++;
        }
    float *logits = malloc((size_t)B * V * sizeof(float));
    for (size_t i = 0; i < (size_t)B * V; i++) logits[i] = -12345.0f;
    SrError err = {{0}};
    CHECKF(qwen2_kv_step(m, c, ids, n, logits, &err) == 0, "%s: %s", what, err.msg);
    for (int b = 0; b < B; b++) {
        h[b].n += n[b];
        CHECKF(c->len[b] == h[b].n, "%s: cache length %d, expected %d", what, c->len[b], h[b].n);
        if (n[b] == 0) {
            CHECKF(logits[(size_t)b * V] == -12345.0f, "%s: row %d written with n = 0", what, b);
            continue;
        }
        int T = h[b].n;
        int32_t pos[MAXSEQ];
        for (int i = 0; i < T; i++) pos[i] = i;
        float *full = malloc((size_t)T * V * sizeof(float));
        CHECK(qwen2_logits(m, h[b].ids, pos, T, full, &err) == 0);
        double e = sr_rel_err(logits + (size_t)b * V, full + (size_t)(T - 1) * V, (size_t)V);
        CHECKF(e < 1e-5, "%s: sequence %d (%d tokens): cache vs full logits rel err %.3g", what,
               b, T, e);
        if (e > worst_kv) worst_kv = e;
        free(full);
    }
    free(logits);
}

static void test_kv(SrBackend *be, int tied, int Hq, int Hkv) {
    Qwen2Config cfg = tiny_config(61, 32, 2, Hq, Hkv, 8, 40, tied, 10000.0f);
    Qwen2Model m;
    SrError err = {{0}};
    CHECK(qwen2_build(&m, &cfg, be, &err) == 0);
    randomize(&m, 7 + (uint64_t)tied);
    Qwen2KVCache c;
    CHECK(qwen2_kv_init(&c, &m, B, MAXSEQ, &err) == 0);
    Hist h[B];
    memset(h, 0, sizeof h);
    uint64_t rng = 42;

    int prefill[B] = {5, 11, 3};
    step(&m, &c, h, prefill, &rng, "prefill");
    int s1[B] = {1, 1, 1};
    step(&m, &c, h, s1, &rng, "decode all");
    int s2[B] = {2, 0, 1};
    step(&m, &c, h, s2, &rng, "two tokens / drop out");
    int s3[B] = {1, 0, 4};
    step(&m, &c, h, s3, &rng, "catch-up of 4");
    int s4[B] = {0, 1, 0};
    step(&m, &c, h, s4, &rng, "only the middle one");
    /* restart sequence 0 with a new prompt while 1 and 2 decode */
    c.len[0] = 0;
    h[0].n = 0;
    int s5[B] = {6, 1, 1};
    step(&m, &c, h, s5, &rng, "re-prefill + decode");
    int s6[B] = {1, 0, 1};
    step(&m, &c, h, s6, &rng, "decode after re-prefill");

    /* overflow is an error, not a write past the cache */
    int big[B] = {0, MAXSEQ, 0};
    int32_t ids[MAXSEQ] = {0};
    float *logits = malloc((size_t)B * cfg.vocab_size * sizeof(float));
    CHECK(qwen2_kv_step(&m, &c, ids, big, logits, &err) == -1);
    CHECK(strstr(err.msg, "max_seq") != NULL);
    free(logits);

    qwen2_kv_free(&c, &m);
    qwen2_free(&m);
}

/* Feeding Δ tokens to a non-empty cache in ONE qwen2_kv_step (attention_extend) gives the
 * same logits and the same cache as feeding them one per step (attention_decode): two caches
 * with the same prompts, then rounds of Δ per sequence (1, 2, 7, 33, and mixed batches with
 * Δ = 0), one pass on cache A, Δ steps on cache Bc. */
#define MAXSEQ2 64

static double cache_rel_err(const Qwen2Model *m, const Qwen2KVCache *a, const Qwen2KVCache *b) {
    size_t n = (size_t)B * a->max_seq * a->kvd; /* B: the macro, the caches' batch */
    float *x = malloc(n * sizeof(float)), *y = malloc(n * sizeof(float));
    double worst = 0;
    for (int l = 0; l < a->n_layers; l++)
        for (int kv = 0; kv < 2; kv++) {
            m->be->ops->download_act(m->be, x, kv ? a->v[l] : a->k[l], n);
            m->be->ops->download_act(m->be, y, kv ? b->v[l] : b->k[l], n);
            double e = sr_rel_err(x, y, n);
            if (!(e <= worst)) worst = e; /* NaN sticks */
        }
    free(x);
    free(y);
    return worst;
}

static void test_one_pass(SrBackend *be, int Hq, int Hkv) {
    Qwen2Config cfg = tiny_config(61, 32, 2, Hq, Hkv, 8, 40, 0, 10000.0f);
    Qwen2Model m;
    SrError err = {{0}};
    CHECK(qwen2_build(&m, &cfg, be, &err) == 0);
    randomize(&m, 21);
    int V = cfg.vocab_size;
    Qwen2KVCache ca, cb;
    CHECK(qwen2_kv_init(&ca, &m, B, MAXSEQ2, &err) == 0);
    CHECK(qwen2_kv_init(&cb, &m, B, MAXSEQ2, &err) == 0);
    uint64_t rng = 9;
    int32_t ids[B * MAXSEQ2];
    float *la = malloc((size_t)B * V * sizeof(float)), *lb = malloc((size_t)B * V * sizeof(float));
    float *lstep = malloc((size_t)B * V * sizeof(float));
    int rounds[][B] = {{5, 11, 3}, /* the prompts (phase 1) */
                       {1, 1, 1},  {2, 2, 2}, {7, 0, 7}, {33, 0, 0}, {0, 7, 2}, {1, 2, 0}};
    int nr = (int)(sizeof rounds / sizeof rounds[0]);
    for (int r = 0; r < nr; r++) {
        const int *d = rounds[r];
        int total = 0;
        for (int b = 0; b < B; b++)
            for (int i = 0; i < d[b]; i++)
                ids[total++] = (int32_t)(sr_rng_u64(&rng) % (uint64_t)V);
        CHECKF(qwen2_kv_step(&m, &ca, ids, d, la, &err) == 0, "one pass: %s", err.msg);
        /* the same tokens, one per sequence per step */
        int maxd = 0, off[B];
        for (int b = 0, acc = 0; b < B; b++) {
            off[b] = acc;
            acc += d[b];
            if (d[b] > maxd) maxd = d[b];
        }
        if (r == 0) maxd = 1; /* the prompts go in whole: same phase 1 on both caches */
        for (int t = 0; t < maxd; t++) {
            int n1[B];
            int32_t id1[B * MAXSEQ2];
            int k = 0;
            for (int b = 0; b < B; b++) {
                n1[b] = r == 0 ? d[b] : (t < d[b] ? 1 : 0);
                for (int i = 0; i < n1[b]; i++) id1[k++] = ids[off[b] + (r == 0 ? i : t)];
            }
            CHECKF(qwen2_kv_step(&m, &cb, id1, n1, lstep, &err) == 0, "per token: %s", err.msg);
            for (int b = 0; b < B; b++)
                if (n1[b] > 0 && (r == 0 || t == d[b] - 1))
                    memcpy(lb + (size_t)b * V, lstep + (size_t)b * V, (size_t)V * sizeof(float));
        }
        for (int b = 0; b < B; b++) {
            CHECKF(ca.len[b] == cb.len[b], "round %d: lengths %d vs %d", r, ca.len[b], cb.len[b]);
            if (d[b] == 0) continue;
            double e = sr_rel_err(la + (size_t)b * V, lb + (size_t)b * V, (size_t)V);
            CHECKF(e < 1e-5, "round %d (Hq=%d Hkv=%d): sequence %d, delta %d: one pass vs per "
                   "token logits rel err %.3g", r, Hq, Hkv, b, d[b], e);
        }
        double ec = cache_rel_err(&m, &ca, &cb);
        CHECKF(ec < 1e-5, "round %d (Hq=%d Hkv=%d): one pass vs per token cache rel err %.3g", r,
               Hq, Hkv, ec);
    }
    free(la);
    free(lb);
    free(lstep);
    qwen2_kv_free(&ca, &m);
    qwen2_kv_free(&cb, &m);
    qwen2_free(&m);
}

/* ---- 2. finite differences ------------------------------------------------------------ */

/* the loss, summed in double from the per-token log-probs (the float loss alone would
 * quantize the finite differences) */
static double loss_at(Qwen2Model *m, const int32_t *ids, const int32_t *pos, const int32_t *tg,
                      const float *w, int N) {
    float loss = 0, lp[64];
    SrError err;
    SR_ASSERT(N <= 64);
    SR_ASSERT(qwen2_forward(m, ids, pos, tg, w, N, &loss, lp, &err) == 0);
    double sum = 0;
    int n = 0;
    for (int i = 0; i < N; i++)
        if (tg[i] >= 0) {
            sum -= (double)w[i] * lp[i];
            n++;
        }
    SR_ASSERT(fabs(sum / n - loss) < 1e-5 * (1 + fabs(loss)));
    return sum / n;
}

static void test_fd(SrBackend *be, int tied) {
    Qwen2Config cfg = tiny_config(23, 16, 2, 4, 2, 6, 20, tied, 100.0f);
    Qwen2Model m;
    SrError err = {{0}};
    CHECK(qwen2_build(&m, &cfg, be, &err) == 0);
    randomize(&m, 11 + (uint64_t)tied);
    m.lm_chunk = 4; /* several chunks */
    enum { N = 13 };
    int32_t ids[N], pos[N], tg[N];
    float w[N];
    uint64_t rng = 5;
    int docs[3] = {6, 4, 3};
    for (int d = 0, i = 0; d < 3; d++)
        for (int j = 0; j < docs[d]; j++, i++) {
            ids[i] = (int32_t)(sr_rng_u64(&rng) % 23);
            pos[i] = j;
        }
    for (int i = 0; i < N; i++) {
        tg[i] = (i + 1 < N && pos[i + 1] != 0) ? ids[i + 1] : -1;
        w[i] = 0.5f + sr_rng_uniform(&rng);
    }
    tg[2] = -1; /* a masked-out token inside a document */

    qwen2_zero_grad(&m);
    loss_at(&m, ids, pos, tg, w, N);
    CHECK(qwen2_backward(&m, &err) == 0);
    float *g = malloc(m.total_numel * sizeof(float));
    float *p0 = malloc(m.total_numel * sizeof(float));
    float *p = malloc(m.total_numel * sizeof(float));
    be->ops->download_act(be, g, m.grads, m.total_numel);
    be->ops->download_act(be, p0, m.params, m.total_numel);

    double worst = 0;
    for (int t = 0; t < m.n_params; t++) {
        const ParamInfo *pi = &m.info[t];
        float *u = malloc(pi->numel * sizeof(float));
        double gu = 0, unorm = 0;
        uint64_t r = sr_rng_stream(77, (uint64_t)t);
        for (size_t j = 0; j < pi->numel; j++) {
            u[j] = sr_rng_normal(&r);
            unorm += (double)u[j] * u[j];
        }
        unorm = sqrt(unorm);
        for (size_t j = 0; j < pi->numel; j++) {
            u[j] = (float)(u[j] / unorm);
            gu += (double)g[pi->offset + j] * u[j];
        }
        double eps = 1e-2, f[2];
        for (int s = 0; s < 2; s++) {
            memcpy(p, p0, m.total_numel * sizeof(float));
            for (size_t j = 0; j < pi->numel; j++)
                p[pi->offset + j] += (float)((s ? -eps : eps) * u[j]);
            be->ops->upload_act(be, m.params, p, m.total_numel);
            f[s] = loss_at(&m, ids, pos, tg, w, N);
        }
        double fd = (f[0] - f[1]) / (2 * eps);
        double e = fabs(fd - gu) / (fabs(gu) + 1e-3);
        if (e > worst) worst = e;
        if (getenv("FD_VERBOSE"))
            printf("  %-48s fd %+.6e  g.u %+.6e  rel %.2e\n", pi->name, fd, gu, e);
        CHECKF(e < 1e-2, "tied=%d %s: finite difference %.6g vs gradient %.6g (rel %.3g)", tied,
               pi->name, fd, gu, e);
        free(u);
    }
    be->ops->upload_act(be, m.params, p0, m.total_numel);
    printf("finite differences (tied=%d): %d tensors, worst rel err %.3g\n", tied, m.n_params,
           worst);
    free(g);
    free(p0);
    free(p);
    qwen2_free(&m);
}

int main(void) {
    SrBackend be;
    SrError err;
    if (sr_backend_init(&be, "cpu", 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_kv(&be, 1, 4, 4);
    test_kv(&be, 0, 4, 2);
    printf("kv cache vs full recomputation: worst rel err %.3g\n", worst_kv);
    test_one_pass(&be, 4, 4);
    test_one_pass(&be, 8, 2); /* GQA 4 */
    test_fd(&be, 1);
    test_fd(&be, 0);
    sr_backend_free(&be);
    return sr_test_done();
}
