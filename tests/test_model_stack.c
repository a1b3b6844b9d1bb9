/*
 * The model's one layer stack and what surrounds it (model/model_internal.h):
 *
 * 1. Every entry point checks a batch the same way (qwen2_check_batch): ids in the vocabulary,
 *    positions packed (0 at a document start, then +1), every position below
 *    max_position_embeddings, and the refusal names the entry point. A batch refused leaves
 *    the model as it was: the next good call gives the same bits as without the refusal.
 * 2. Parameter views are found by HF name: every view is the named tensor, and after the
 *    parameter table is reordered (and the views rebuilt by qwen2_reserve_flat) they still
 *    are, and the logits and gradients keep their bits.
 * 3. Workspaces: qwen2_release_workspace gives the training and inference activations back to
 *    the backend (counted by wrapping the CPU backend's alloc / free), either one alone or
 *    both, and the next calls re-create them with the same bits as before: forward + backward
 *    (with and without gradient checkpointing), full logits, hidden states, and the engine's
 *    decoding (engine/engine.h) continued across a release. A backward after releasing the
 *    training workspace is refused, not run on freed memory.
 * 4. Directional finite differences of the loss (packed documents, masked targets, per-token
 *    weights) along a random direction per parameter tensor, for a tied and an untied config,
 *    against the analytic gradient g . u.
 * 5. Prefix sharing (qwen2_forward_shared): completions that share a prompt, the prompt laid
 *    out once, give the log-probs, entropies and weighted-loss gradients of the same documents
 *    written out whole (with and without checkpointing, at a temperature); a bad share is
 *    refused with the entry point and the faulty index named; the entropy matches the
 *    distribution's own -sum p log p.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "engine/engine.h"
#include "harness.h"
#include "model_fixture.h"
#include "model/model.h"
#include "model/model_stats.h"

#define MAXPOS 48

static Qwen2Config tiny_config(int tied) {
    Qwen2Config c = sr_test_qwen2_config(61, 24, 3, 4, 2, 6, 40);
    c.max_position_embeddings = MAXPOS;
    c.tie_word_embeddings = tied;
    return c;
}

/* n tokens of packed documents: lengths from doc[] (cycled), random ids and targets */
static void make_batch(int n, const int *doc, int ndoc, uint64_t seed, int32_t *ids,
                       int32_t *pos, int32_t *tgt) {
    uint64_t r = sr_rng_stream(seed, 1);
    for (int i = 0, d = 0, p = 0; i < n; i++, p++) {
        if (p == doc[d % ndoc]) p = 0, d++;
        ids[i] = (int32_t)(sr_rng_u64(&r) % 61);
        pos[i] = p;
        tgt[i] = i % 4 == 3 ? -1 : (int32_t)(sr_rng_u64(&r) % 61);
    }
}

static int has(const SrError *err, const char *a, const char *b) {
    return strstr(err->msg, a) && (!b || strstr(err->msg, b));
}

/* ---- 1. one check of a batch ----------------------------------------------------------- */

static void test_check_batch(SrBackend *be) {
    Qwen2Config c = tiny_config(0);
    Qwen2Model m;
    SrError err;
    CHECK(qwen2_build(&m, &c, be, &err) == 0);
    qwen2_init_random(&m, 11);
    enum { N = 60 };
    int32_t ids[N], pos[N], tgt[N];
    int docs[] = {MAXPOS, 12};
    make_batch(N, docs, 2, 5, ids, pos, tgt); /* a document of exactly MAXPOS tokens: fine */
    float loss0, loss;
    float *lg0 = malloc((size_t)N * 61 * sizeof(float)), *lg = malloc((size_t)N * 61 * sizeof(float));
    CHECKF(qwen2_forward(&m, ids, pos, tgt, NULL, N, &loss0, NULL, &err) == 0, "%s", err.msg);
    CHECKF(qwen2_logits(&m, ids, pos, N, lg0, &err) == 0, "%s", err.msg);

    /* a document one token longer than max_position_embeddings, everywhere */
    int32_t lpos[N], lids[N], ltgt[N];
    int long_docs[] = {MAXPOS + 1, 11};
    make_batch(N, long_docs, 2, 5, lids, lpos, ltgt);
    CHECK(lpos[MAXPOS] == MAXPOS);
    CHECK(qwen2_forward(&m, lids, lpos, ltgt, NULL, N, &loss, NULL, &err) == -1);
    CHECKF(has(&err, "qwen2_forward: pos[48] = 48", "max_position_embeddings 48"), "%s", err.msg);
    CHECK(qwen2_forward_backward(&m, lids, lpos, ltgt, NULL, N, &loss, NULL, &err) == -1);
    CHECKF(has(&err, "max_position_embeddings 48", NULL), "%s", err.msg);
    CHECK(qwen2_logits(&m, lids, lpos, N, lg, &err) == -1);
    CHECKF(has(&err, "qwen2_logits: pos[48]", "max_position_embeddings 48"), "%s", err.msg);
    CHECK(qwen2_hidden_forward(&m, lids, lpos, N, &err) == -1);
    CHECKF(has(&err, "qwen2_hidden_forward: pos[48]", "max_position_embeddings 48"), "%s", err.msg);

    /* positions that are not packed documents */
    int32_t bpos[N];
    memcpy(bpos, pos, sizeof bpos);
    bpos[20] = 5;
    CHECK(qwen2_forward(&m, ids, bpos, tgt, NULL, N, &loss, NULL, &err) == -1);
    CHECKF(has(&err, "qwen2_forward: pos[20] = 5", "restart at 0"), "%s", err.msg);
    CHECK(qwen2_logits(&m, ids, bpos, N, lg, &err) == -1);
    CHECKF(has(&err, "qwen2_logits: pos[20] = 5", "restart at 0"), "%s", err.msg);
    CHECK(qwen2_hidden_forward(&m, ids, bpos, N, &err) == -1);
    CHECKF(has(&err, "qwen2_hidden_forward: pos[20] = 5", "restart at 0"), "%s", err.msg);
    bpos[20] = pos[20];
    bpos[0] = 1; /* the first token must start a document */
    CHECK(qwen2_logits(&m, ids, bpos, N, lg, &err) == -1);
    CHECKF(has(&err, "pos[0] = 1", NULL), "%s", err.msg);

    /* ids outside the vocabulary, either side */
    int32_t bids[N];
    memcpy(bids, ids, sizeof bids);
    bids[33] = 61;
    CHECK(qwen2_forward(&m, bids, pos, tgt, NULL, N, &loss, NULL, &err) == -1);
    CHECKF(has(&err, "qwen2_forward: ids[33] = 61", "[0, 61)"), "%s", err.msg);
    bids[33] = -1;
    CHECK(qwen2_hidden_forward(&m, bids, pos, N, &err) == -1);
    CHECKF(has(&err, "qwen2_hidden_forward: ids[33] = -1", NULL), "%s", err.msg);
    CHECK(qwen2_logits(&m, bids, pos, N, lg, &err) == -1);
    CHECKF(has(&err, "qwen2_logits: ids[33]", NULL), "%s", err.msg);

    /* empty batches */
    CHECK(qwen2_forward(&m, ids, pos, tgt, NULL, 0, &loss, NULL, &err) == -1);
    CHECKF(has(&err, "empty batch", NULL), "%s", err.msg);
    CHECK(qwen2_logits(&m, ids, pos, 0, lg, &err) == -1);
    CHECKF(has(&err, "empty batch", NULL), "%s", err.msg);

    /* the refusals changed nothing */
    CHECK(qwen2_forward(&m, ids, pos, tgt, NULL, N, &loss, NULL, &err) == 0 && loss == loss0);
    CHECK(qwen2_logits(&m, ids, pos, N, lg, &err) == 0 &&
          memcmp(lg, lg0, (size_t)N * 61 * sizeof(float)) == 0);

    /* the engine: a sequence may not grow past max_position_embeddings either */
    EngineOptions eo = {.kv_bytes = 2 * (MAXPOS + 16) * engine_kv_bytes_per_token(&m),
                        .block_size = 8, .max_seqs = 2, .max_tokens = 64};
    Engine *e = NULL;
    CHECKF(engine_open(&e, &m, &eo, &err) == 0, "%s", err.msg);
    int seqs[2], n[2] = {MAXPOS, 3};
    for (int j = 0; j < 2; j++) seqs[j] = engine_seq_new(e);
    CHECKF(engine_forward(e, 2, seqs, n, ids, &err) == 0, "%s", err.msg);
    int n2[2] = {1, 1};
    char want[64];
    snprintf(want, sizeof want, "engine_forward: sequence %d", seqs[0]);
    CHECK(engine_forward(e, 2, seqs, n2, ids, &err) == -1);
    CHECKF(has(&err, want, "max_position_embeddings 48"), "%s", err.msg);
    /* refused before anything ran */
    CHECK(engine_seq_len(e, seqs[0]) == MAXPOS && engine_seq_len(e, seqs[1]) == 3);
    engine_close(e);
    free(lg0);
    free(lg);
    qwen2_free(&m);
}

/* ---- 2. views by name ------------------------------------------------------------------- */

/* every view of base (params: grads = 0; grads: 1) is the tensor of its name */
static int views_match(const Qwen2Model *m, int grads) {
    void *(*ptr)(const Qwen2Model *, const char *) = grads ? qwen2_grad_ptr : qwen2_param_ptr;
    const LayerParams *L = grads ? m->d_layers : m->layers;
    int ok = (grads ? m->d_embed : m->embed) == ptr(m, "model.embed_tokens.weight") &&
             (grads ? m->d_norm_w : m->norm_w) == ptr(m, "model.norm.weight") &&
             (grads ? m->d_lm_head : m->lm_head) ==
                 ptr(m, m->cfg.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight");
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        const LayerParams *p = &L[l];
        struct { const void *v; const char *suffix; } v[] = {
            {p->q_w, "self_attn.q_proj.weight"}, {p->q_b, "self_attn.q_proj.bias"},
            {p->k_w, "self_attn.k_proj.weight"}, {p->k_b, "self_attn.k_proj.bias"},
            {p->v_w, "self_attn.v_proj.weight"}, {p->v_b, "self_attn.v_proj.bias"},
            {p->o_w, "self_attn.o_proj.weight"}, {p->gate_w, "mlp.gate_proj.weight"},
            {p->up_w, "mlp.up_proj.weight"}, {p->down_w, "mlp.down_proj.weight"},
            {p->ln1_w, "input_layernorm.weight"}, {p->ln2_w, "post_attention_layernorm.weight"}};
        for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
            char name[96];
            snprintf(name, sizeof name, "model.layers.%d.%s", l, v[i].suffix);
            if (v[i].v == NULL || v[i].v != ptr(m, name)) {
                fprintf(stderr, "view of %s is not that tensor\n", name);
                ok = 0;
            }
        }
    }
    return ok;
}

static void test_views_by_name(SrBackend *be, int tied) {
    Qwen2Config c = tiny_config(tied);
    Qwen2Model m;
    SrError err;
    CHECK(qwen2_build(&m, &c, be, &err) == 0);
    qwen2_init_random(&m, 21);
    enum { N = 30 };
    int32_t ids[N], pos[N], tgt[N];
    int docs[] = {17, 9};
    make_batch(N, docs, 2, 8, ids, pos, tgt);
    size_t V = 61, G = m.total_numel;
    float *lg0 = malloc(N * V * sizeof(float)), *lg = malloc(N * V * sizeof(float));
    float *g0 = malloc(G * sizeof(float)), *g = malloc(G * sizeof(float));
    float loss0, loss;
    qwen2_zero_grad(&m);
    CHECK(qwen2_forward_backward(&m, ids, pos, tgt, NULL, N, &loss0, NULL, &err) == 0);
    CHECK(qwen2_logits(&m, ids, pos, N, lg0, &err) == 0);
    be->ops->download_act(be, g0, m.grads, G);
    CHECK(views_match(&m, 0) && views_match(&m, 1));

    /* reverse the table (each entry keeps its name, shape and offset), rebuild the views */
    for (int i = 0, j = m.n_params - 1; i < j; i++, j--) {
        ParamInfo t = m.info[i];
        m.info[i] = m.info[j];
        m.info[j] = t;
    }
    CHECK(strcmp(m.info[0].name, "model.embed_tokens.weight") != 0);
    qwen2_reserve_flat(&m, m.alloc_numel + 64);
    CHECK(views_match(&m, 0) && views_match(&m, 1));
    qwen2_zero_grad(&m);
    CHECK(qwen2_forward_backward(&m, ids, pos, tgt, NULL, N, &loss, NULL, &err) == 0);
    CHECK(qwen2_logits(&m, ids, pos, N, lg, &err) == 0);
    be->ops->download_act(be, g, m.grads, G);
    CHECKF(loss == loss0 && memcmp(lg, lg0, N * V * sizeof(float)) == 0 &&
           memcmp(g, g0, G * sizeof(float)) == 0, "tied %d: loss %.9g vs %.9g", tied, loss, loss0);
    free(lg0);
    free(lg);
    free(g0);
    free(g);
    qwen2_free(&m);
}

/* ---- 3. workspaces ---------------------------------------------------------------------- */

/* the CPU ops with alloc / free counted: live bytes by pointer */
#define MAX_LIVE 256
static struct { void *p; size_t bytes; } live[MAX_LIVE];
static size_t live_bytes;
static SrOps counted_ops;

static void *counted_alloc(SrBackend *be, size_t bytes) {
    void *p = sr_cpu_ops.alloc(be, bytes);
    for (int i = 0; i < MAX_LIVE; i++)
        if (!live[i].p) {
            live[i].p = p;
            live[i].bytes = bytes;
            live_bytes += bytes;
            return p;
        }
    fprintf(stderr, "test: more than %d live allocations\n", MAX_LIVE);
    abort();
}

static void counted_free(SrBackend *be, void *p) {
    for (int i = 0; p && i < MAX_LIVE; i++)
        if (live[i].p == p) {
            live_bytes -= live[i].bytes;
            live[i].p = NULL;
        }
    sr_cpu_ops.free(be, p);
}

typedef struct Outputs {
    float loss, *lp, *grads, *logits, *hidden_lp, *kv;
} Outputs;

enum { WN = 40, WV = 61 };

static void outputs_alloc(Outputs *o, size_t G) {
    o->lp = malloc(WN * sizeof(float));
    o->grads = malloc(G * sizeof(float));
    o->logits = malloc((size_t)WN * WV * sizeof(float));
    o->hidden_lp = malloc(WN * sizeof(float));
    o->kv = malloc(3 * 2 * WV * sizeof(float));
}

static void outputs_free(Outputs *o) {
    free(o->lp);
    free(o->grads);
    free(o->logits);
    free(o->hidden_lp);
    free(o->kv);
}

static int outputs_same(const Outputs *a, const Outputs *b, size_t G) {
    return a->loss == b->loss && !memcmp(a->lp, b->lp, WN * sizeof(float)) &&
           !memcmp(a->grads, b->grads, G * sizeof(float)) &&
           !memcmp(a->logits, b->logits, (size_t)WN * WV * sizeof(float)) &&
           !memcmp(a->hidden_lp, b->hidden_lp, WN * sizeof(float)) &&
           !memcmp(a->kv, b->kv, 3 * 2 * WV * sizeof(float));
}

/* an engine of 3 sequences on m: passes of up to 32 tokens, so the inference workspace that
 * qwen2_logits made for WN tokens is big enough and the engine does not regrow it */
static Engine *release_engine(Qwen2Model *m) {
    EngineOptions o = {.kv_bytes = 3 * 32 * engine_kv_bytes_per_token(m), .block_size = 4,
                       .max_seqs = 3, .max_tokens = 32};
    Engine *e = NULL;
    SrError err;
    CHECKF(engine_open(&e, m, &o, &err) == 0, "%s", err.msg);
    SR_ASSERT(e);
    return e;
}

static void test_release(SrBackend *be, int ckpt) {
    Qwen2Config c = tiny_config(0);
    Qwen2Model m;
    SrError err;
    CHECK(qwen2_build(&m, &c, be, &err) == 0);
    qwen2_init_random(&m, 31);
    m.grad_checkpointing = ckpt;
    m.lm_chunk = 16; /* several lm_head chunks */
    int32_t ids[WN], pos[WN], tgt[WN];
    int docs[] = {23, 5, 12};
    make_batch(WN, docs, 3, 9, ids, pos, tgt);
    size_t G = m.total_numel;
    Outputs ref, out;
    outputs_alloc(&ref, G);
    outputs_alloc(&out, G);
    int kv_n1[3] = {7, 4, 9}, kv_n2[3] = {1, 1, 1};

    /* the reference: every path once, without a release */
    qwen2_zero_grad(&m);
    CHECK(qwen2_forward_backward(&m, ids, pos, tgt, NULL, WN, &ref.loss, ref.lp, &err) == 0);
    be->ops->download_act(be, ref.grads, m.grads, G);
    CHECK(qwen2_logits(&m, ids, pos, WN, ref.logits, &err) == 0);
    CHECK(qwen2_hidden_forward(&m, ids, pos, WN, &err) == 0);
    CHECK(qwen2_hidden_logprob(&m, 0, WN, tgt, ref.hidden_lp, &err) == 0);
    Engine *e = release_engine(&m);
    int seqs[3];
    for (int j = 0; j < 3; j++) seqs[j] = engine_seq_new(e);
    CHECK(engine_forward(e, 3, seqs, kv_n1, ids, &err) == 0 &&
          engine_logits(e, 3, ref.kv, &err) == 0);
    CHECK(engine_forward(e, 3, seqs, kv_n2, ids + 20, &err) == 0 &&
          engine_logits(e, 3, ref.kv + 3 * WV, &err) == 0);
    engine_close(e);

    size_t train = qwen2_workspace_bytes(&m, QWEN2_WS_TRAIN);
    size_t infer = qwen2_workspace_bytes(&m, QWEN2_WS_INFER);
    CHECK(train > 0 && infer > 0);
    CHECK(qwen2_workspace_bytes(&m, QWEN2_WS_TRAIN | QWEN2_WS_INFER) == train + infer);
    CHECK(train == qwen2_train_act_bytes(&m, WN));
    size_t held = live_bytes;

    /* both released: exactly their bytes come back; nothing can read them any more */
    qwen2_release_workspace(&m, QWEN2_WS_TRAIN | QWEN2_WS_INFER);
    CHECKF(live_bytes == held - train - infer, "live %zu, held %zu, train %zu, infer %zu",
           live_bytes, held, train, infer);
    CHECK(qwen2_workspace_bytes(&m, QWEN2_WS_TRAIN | QWEN2_WS_INFER) == 0);
    CHECK(qwen2_backward(&m, &err) == -1 && has(&err, "no forward pass saved", NULL));
    CHECK(qwen2_hidden_logprob(&m, 0, WN, tgt, out.hidden_lp, &err) == -1 &&
          has(&err, "no hidden states", NULL));
    qwen2_release_workspace(&m, QWEN2_WS_TRAIN | QWEN2_WS_INFER); /* twice: a no-op */
    CHECK(live_bytes == held - train - infer);

    /* re-created on demand, same bits; the engine decodes on across a release */
    qwen2_zero_grad(&m);
    CHECK(qwen2_forward_backward(&m, ids, pos, tgt, NULL, WN, &out.loss, out.lp, &err) == 0);
    be->ops->download_act(be, out.grads, m.grads, G);
    CHECK(qwen2_workspace_bytes(&m, QWEN2_WS_TRAIN) == train);
    CHECK(qwen2_logits(&m, ids, pos, WN, out.logits, &err) == 0);
    CHECK(qwen2_hidden_forward(&m, ids, pos, WN, &err) == 0);
    CHECK(qwen2_hidden_logprob(&m, 0, WN, tgt, out.hidden_lp, &err) == 0);
    e = release_engine(&m);
    for (int j = 0; j < 3; j++) seqs[j] = engine_seq_new(e);
    CHECK(engine_forward(e, 3, seqs, kv_n1, ids, &err) == 0 &&
          engine_logits(e, 3, out.kv, &err) == 0);
    qwen2_release_workspace(&m, QWEN2_WS_INFER);
    CHECK(engine_forward(e, 3, seqs, kv_n2, ids + 20, &err) == 0 &&
          engine_logits(e, 3, out.kv + 3 * WV, &err) == 0);
    engine_close(e);
    CHECKF(outputs_same(&out, &ref, G), "ckpt %d: loss %.9g vs %.9g", ckpt, out.loss, ref.loss);
    /* the decode step re-created the inference workspace for 3 tokens, smaller than before */
    CHECK(qwen2_workspace_bytes(&m, QWEN2_WS_INFER) == qwen2_infer_act_bytes(&m, 3));
    CHECK(live_bytes == held - infer + qwen2_infer_act_bytes(&m, 3));

    /* one at a time: the other keeps what it holds */
    qwen2_zero_grad(&m);
    CHECK(qwen2_forward(&m, ids, pos, tgt, NULL, WN, &out.loss, NULL, &err) == 0);
    CHECK(qwen2_hidden_forward(&m, ids, pos, WN, &err) == 0);
    infer = qwen2_workspace_bytes(&m, QWEN2_WS_INFER);
    CHECK(infer == qwen2_infer_act_bytes(&m, WN) && live_bytes == held);
    qwen2_release_workspace(&m, QWEN2_WS_INFER);
    CHECK(live_bytes == held - infer);
    CHECK(qwen2_backward(&m, &err) == 0); /* the saved forward is still there */
    be->ops->download_act(be, out.grads, m.grads, G);
    CHECK(!memcmp(out.grads, ref.grads, G * sizeof(float)));
    CHECK(qwen2_hidden_forward(&m, ids, pos, WN, &err) == 0);
    qwen2_release_workspace(&m, QWEN2_WS_TRAIN);
    CHECK(live_bytes == held - train);
    CHECK(qwen2_hidden_logprob(&m, 0, WN, tgt, out.hidden_lp, &err) == 0);
    CHECK(!memcmp(out.hidden_lp, ref.hidden_lp, WN * sizeof(float)));

    outputs_free(&ref);
    outputs_free(&out);
    qwen2_free(&m);
    CHECK(live_bytes == 0); /* the model gave back everything it took */
}

/* ---- 4. the gradient against finite differences --------------------------------------- */

static Qwen2Config fd_config(int V, int C, int L, int Hq, int Hkv, int D, int I, int tied,
                               float theta) {
    Qwen2Config c = sr_test_qwen2_config(V, C, L, Hq, Hkv, D, I);
    c.max_position_embeddings = 256;
    c.rope_theta = theta;
    c.tie_word_embeddings = tied;
    return c;
}

static void randomize(Qwen2Model *m, uint64_t seed) { sr_test_randomize(m, seed); }

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
    Qwen2Config cfg = fd_config(23, 16, 2, 4, 2, 6, 20, tied, 100.0f);
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

/* ---- 5. prefix sharing ------------------------------------------------------------------ */

enum { SH_ROWS = 5 };
static const int SH_PROMPT[SH_ROWS] = {0, 0, 0, 1, 1}; /* the prompt of each completion */
static const int SH_PLEN[2] = {5, 3}, SH_CLEN[SH_ROWS] = {4, 2, 3, 3, 1};

typedef struct ShBatch {
    int32_t ids[64], pos[64], tgt[64]; /* the rows */
    int N;
    int32_t map[64], pos_att[64];      /* the unshared stream */
    int n_att;
    int start[SH_ROWS];                /* the row predicting each completion's first token */
} ShBatch;

/* shared: the prompts' first P - 1 tokens once, then per completion its prompt's last token and
 * its tokens but the last (GRPO's layout); not shared: each completion whole after its prompt */
static void sh_build(ShBatch *b, const int32_t prompt[2][8], const int32_t comp[SH_ROWS][8],
                     int shared) {
    memset(b, 0, sizeof *b);
    int pre[2] = {0, 0}, k = 0;
    if (shared)
        for (int p = 0; p < 2; p++) {
            pre[p] = k;
            for (int j = 0; j + 1 < SH_PLEN[p]; j++, k++)
                b->ids[k] = prompt[p][j], b->pos[k] = j, b->tgt[k] = -1;
        }
    for (int r = 0; r < SH_ROWS; r++) {
        int p = SH_PROMPT[r], P = SH_PLEN[p];
        if (!shared)
            for (int j = 0; j + 1 < P; j++, k++)
                b->ids[k] = prompt[p][j], b->pos[k] = j, b->tgt[k] = -1;
        b->start[r] = k;
        for (int t = 0; t < SH_CLEN[r]; t++, k++) {
            b->ids[k] = t == 0 ? prompt[p][P - 1] : comp[r][t - 1];
            b->pos[k] = P - 1 + t;
            b->tgt[k] = comp[r][t];
        }
    }
    b->N = k;
    if (!shared) return;
    int f = 0;
    for (int r = 0; r < SH_ROWS; r++) {
        int p = SH_PROMPT[r];
        for (int j = 0; j + 1 < SH_PLEN[p]; j++, f++) b->map[f] = pre[p] + j, b->pos_att[f] = j;
        for (int t = 0; t < SH_CLEN[r]; t++, f++)
            b->map[f] = b->start[r] + t, b->pos_att[f] = SH_PLEN[p] - 1 + t;
    }
    b->n_att = f;
}

/* log-probs, entropies (per completion token, in order) and the gradient of
 * -sum w logp (w per completion token) */
static void sh_run(Qwen2Model *m, const ShBatch *b, int shared, const float *w, float *lp,
                   float *ent, float *grad) {
    SrError err = {{0}};
    float rlp[64], rent[64], rw[64] = {0};
    Qwen2Share sh = {b->n_att, b->map, b->pos_att};
    CHECKF(qwen2_forward_shared(m, b->ids, b->pos, b->tgt, b->N, shared ? &sh : NULL, rlp, rent,
                                &err) == 0, "%s", err.msg);
    for (int r = 0, o = 0; r < SH_ROWS; r++)
        for (int t = 0; t < SH_CLEN[r]; t++, o++) {
            lp[o] = rlp[b->start[r] + t];
            ent[o] = rent[b->start[r] + t];
            rw[b->start[r] + t] = w[o];
        }
    qwen2_zero_grad(m);
    CHECKF(qwen2_backward_weights(m, rw, 1.0, &err) == 0, "%s", err.msg);
    m->be->ops->download_act(m->be, grad, m->grads, m->total_numel);
}

static double max_abs_diff(const float *a, const float *b, size_t n, double *scale) {
    double d = 0, s = 0;
    for (size_t i = 0; i < n; i++) {
        if (!isfinite(a[i]) || !isfinite(b[i])) return INFINITY;
        d = fmax(d, fabs((double)a[i] - b[i]));
        s = fmax(s, fabs((double)b[i]));
    }
    if (scale) *scale = s;
    return d;
}

static void test_share(SrBackend *be, int ckpt, float temp) {
    Qwen2Config cfg = fd_config(23, 16, 2, 4, 2, 6, 20, 0, 100.0f);
    Qwen2Model m;
    SrError err = {{0}};
    CHECK(qwen2_build(&m, &cfg, be, &err) == 0);
    randomize(&m, 31);
    m.lm_chunk = 4;
    m.grad_checkpointing = ckpt;
    m.logit_temperature = temp;
    int32_t prompt[2][8], comp[SH_ROWS][8];
    uint64_t rng = 9;
    for (int p = 0; p < 2; p++)
        for (int j = 0; j < 8; j++) prompt[p][j] = (int32_t)(sr_rng_u64(&rng) % 23);
    for (int r = 0; r < SH_ROWS; r++)
        for (int j = 0; j < 8; j++) comp[r][j] = (int32_t)(sr_rng_u64(&rng) % 23);
    enum { T = 13 }; /* completion tokens: 4 + 2 + 3 + 3 + 1 */
    float w[T];
    for (int i = 0; i < T; i++) w[i] = sr_rng_uniform(&rng) - 0.3f;
    ShBatch sb, ub;
    sh_build(&sb, prompt, comp, 1);
    sh_build(&ub, prompt, comp, 0);
    CHECK(sb.N == 4 + 2 + T && ub.N == sb.n_att && ub.N == 3 * 4 + 2 * 2 + T);
    float lp[2][T], ent[2][T];
    size_t P = m.total_numel;
    float *g[2] = {malloc(P * sizeof(float)), malloc(P * sizeof(float))};
    sh_run(&m, &ub, 0, w, lp[0], ent[0], g[0]);
    sh_run(&m, &sb, 1, w, lp[1], ent[1], g[1]);
    double gs, dl = max_abs_diff(lp[1], lp[0], T, NULL), de = max_abs_diff(ent[1], ent[0], T, NULL);
    double dg = max_abs_diff(g[1], g[0], P, &gs);
    CHECKF(dl < 1e-5 && de < 1e-5 && dg < 1e-5 * gs,
           "shared vs whole (ckpt %d, T %g): logp %.3g entropy %.3g grad %.3g of %.3g", ckpt,
           temp, dl, de, dg, gs);
    /* the entropy is the (temperature-scaled) distribution's: against the full logits of a
     * plain forward of the first completion's document */
    {
        int n = SH_PLEN[0] + SH_CLEN[0] - 1;
        float *logits = malloc((size_t)n * 23 * sizeof(float));
        CHECK(qwen2_logits(&m, ub.ids, ub.pos, n, logits, &err) == 0);
        for (int t = 0; t < SH_CLEN[0]; t++) {
            const float *x = logits + (size_t)(SH_PLEN[0] - 1 + t) * 23;
            double mx = -INFINITY, z = 0, h = 0, tt = temp > 0 ? temp : 1.0;
            for (int v = 0; v < 23; v++) mx = fmax(mx, x[v] / tt);
            for (int v = 0; v < 23; v++) z += exp(x[v] / tt - mx);
            for (int v = 0; v < 23; v++) {
                double p = exp(x[v] / tt - mx) / z;
                h -= p * log(p);
            }
            CHECKF(fabs(h - ent[1][t]) < 1e-5, "entropy of token %d: %.8g vs %.8g", t,
                   ent[1][t], h);
        }
        free(logits);
    }
    /* refusals, each naming the entry point and what is wrong */
    Qwen2Share bad = {sb.n_att, sb.map, sb.pos_att};
    int32_t map2[64], pos2[64];
    memcpy(map2, sb.map, sizeof map2);
    memcpy(pos2, sb.pos_att, sizeof pos2);
    bad.map = map2;
    map2[3] = sb.N;
    CHECK(qwen2_forward_shared(&m, sb.ids, sb.pos, sb.tgt, sb.N, &bad, NULL, NULL, &err) != 0 &&
          has(&err, "qwen2_forward_shared", "map[3]"));
    map2[3] = sb.map[3] + 1; /* the next row: a different position */
    CHECK(qwen2_forward_shared(&m, sb.ids, sb.pos, sb.tgt, sb.N, &bad, NULL, NULL, &err) != 0 &&
          has(&err, "qwen2_forward_shared", "position"));
    memcpy(map2, sb.map, sizeof map2);
    bad.pos_att = pos2;
    pos2[0] = 1; /* a document that does not start at 0 */
    map2[0] = 1;
    CHECK(qwen2_forward_shared(&m, sb.ids, sb.pos, sb.tgt, sb.N, &bad, NULL, NULL, &err) != 0 &&
          has(&err, "qwen2_forward_shared", NULL));
    bad = (Qwen2Share){sb.n_att - SH_CLEN[4], sb.map, sb.pos_att}; /* the last row unused */
    CHECK(qwen2_forward_shared(&m, sb.ids, sb.pos, sb.tgt, sb.N, &bad, NULL, NULL, &err) != 0 &&
          has(&err, "qwen2_forward_shared", "row"));
    /* after the refusals the model gives the same bits */
    float lp3[T], ent3[T], *g3 = malloc(P * sizeof(float));
    sh_run(&m, &sb, 1, w, lp3, ent3, g3);
    CHECK(memcmp(lp3, lp[1], sizeof lp3) == 0 && memcmp(g3, g[1], P * sizeof(float)) == 0);
    printf("prefix sharing (ckpt %d, T %g): logp %.2g entropy %.2g grad %.2g (max |g| %.2g)\n",
           ckpt, temp, dl, de, dg, gs);
    free(g3);
    free(g[0]);
    free(g[1]);
    qwen2_free(&m);
}

int main(void) {
    SrBackend be;
    SrError err;
    if (sr_backend_init(&be, "cpu", 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_check_batch(&be);
    test_views_by_name(&be, 0);
    test_views_by_name(&be, 1);
    counted_ops = sr_cpu_ops;
    counted_ops.alloc = counted_alloc;
    counted_ops.free = counted_free;
    be.ops = &counted_ops;
    test_release(&be, 0);
    test_release(&be, 1);
    be.ops = &sr_cpu_ops;
    test_fd(&be, 1);
    test_fd(&be, 0);
    test_share(&be, 0, 1.0f);
    test_share(&be, 1, 0.7f);
    sr_backend_free(&be);
    return sr_test_done();
}
