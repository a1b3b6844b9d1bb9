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
 *    (with and without gradient checkpointing), full logits, hidden states, and KV-cache
 *    decoding continued across a release. A backward after releasing the training workspace
 *    is refused, not run on freed memory.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"
#include "harness.h"
#include "model/model.h"
#include "model/model_stats.h"

#define MAXPOS 48

static Qwen2Config tiny_config(int tied) {
    Qwen2Config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = 61;
    c.hidden_size = 24;
    c.num_hidden_layers = 3;
    c.num_attention_heads = 4;
    c.num_key_value_heads = 2;
    c.head_dim = 6;
    c.intermediate_size = 40;
    c.max_position_embeddings = MAXPOS;
    c.rope_theta = 10000.0f;
    c.rms_norm_eps = 1e-6f;
    c.initializer_range = 0.2f;
    c.tie_word_embeddings = tied;
    c.bos_token_id = -1;
    c.eos_token_id = -1;
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
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

    /* the KV cache: a sequence may not grow past max_position_embeddings either */
    Qwen2KVCache kc;
    CHECK(qwen2_kv_init(&kc, &m, 2, MAXPOS + 8, &err) == 0);
    int n[2] = {MAXPOS, 3};
    float *out = malloc(2 * 61 * sizeof(float));
    CHECKF(qwen2_kv_step(&m, &kc, ids, n, out, &err) == 0, "%s", err.msg);
    int n2[2] = {1, 1};
    CHECK(qwen2_kv_step(&m, &kc, ids, n2, out, &err) == -1);
    CHECKF(has(&err, "qwen2_kv_step: sequence 0", "max_position_embeddings 48"), "%s", err.msg);
    CHECK(kc.len[0] == MAXPOS && kc.len[1] == 3); /* refused before anything ran */
    qwen2_kv_free(&kc, &m);
    free(out);
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
    Qwen2KVCache kc;
    CHECK(qwen2_kv_init(&kc, &m, 3, 24, &err) == 0);
    CHECK(qwen2_kv_step(&m, &kc, ids, kv_n1, ref.kv, &err) == 0);
    CHECK(qwen2_kv_step(&m, &kc, ids + 20, kv_n2, ref.kv + 3 * WV, &err) == 0);
    qwen2_kv_free(&kc, &m);

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

    /* re-created on demand, same bits; a KV cache decodes on across a release */
    qwen2_zero_grad(&m);
    CHECK(qwen2_forward_backward(&m, ids, pos, tgt, NULL, WN, &out.loss, out.lp, &err) == 0);
    be->ops->download_act(be, out.grads, m.grads, G);
    CHECK(qwen2_workspace_bytes(&m, QWEN2_WS_TRAIN) == train);
    CHECK(qwen2_logits(&m, ids, pos, WN, out.logits, &err) == 0);
    CHECK(qwen2_hidden_forward(&m, ids, pos, WN, &err) == 0);
    CHECK(qwen2_hidden_logprob(&m, 0, WN, tgt, out.hidden_lp, &err) == 0);
    CHECK(qwen2_kv_init(&kc, &m, 3, 24, &err) == 0);
    CHECK(qwen2_kv_step(&m, &kc, ids, kv_n1, out.kv, &err) == 0);
    qwen2_release_workspace(&m, QWEN2_WS_INFER);
    CHECK(qwen2_kv_step(&m, &kc, ids + 20, kv_n2, out.kv + 3 * WV, &err) == 0);
    qwen2_kv_free(&kc, &m);
    CHECKF(outputs_same(&out, &ref, G), "ckpt %d: loss %.9g vs %.9g", ckpt, out.loss, ref.loss);
    /* the decode step re-created the inference workspace for 3 tokens, smaller than before */
    CHECK(qwen2_workspace_bytes(&m, QWEN2_WS_INFER) == qwen2_infer_act_bytes(&m, 3, 3));
    CHECK(live_bytes == held - infer + qwen2_infer_act_bytes(&m, 3, 3));

    /* one at a time: the other keeps what it holds */
    qwen2_zero_grad(&m);
    CHECK(qwen2_forward(&m, ids, pos, tgt, NULL, WN, &out.loss, NULL, &err) == 0);
    CHECK(qwen2_hidden_forward(&m, ids, pos, WN, &err) == 0);
    infer = qwen2_workspace_bytes(&m, QWEN2_WS_INFER);
    CHECK(infer == qwen2_infer_act_bytes(&m, WN, 3) && live_bytes == held);
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
    sr_backend_free(&be);
    return sr_test_done();
}
