/*
 * Qwen2ForCausalLM on the op table: parameters, forward, backward.
 *
 * Everything here calls kernels/ops.h only, so the same code runs on every backend.
 * The stack (embedding, then every layer) is qwen2_stack_forward, the one loop every path
 * runs. One layer, as Hugging Face computes it (x [N, C] is the residual stream):
 *
 *   ln1  = rmsnorm(x) * w_ln1                    (fp32 norm, cast before the weight multiply)
 *   q    = rope(ln1 Wq^T + bq)   k = rope(ln1 Wk^T + bk)   v = ln1 Wv^T + bv
 *   att  = softmax(q k^T / sqrt(D), causal inside each document) v     (GQA: h -> h/(Hq/Hkv))
 *   res1 = x + att Wo^T
 *   ln2  = rmsnorm(res1) * w_ln2
 *   res2 = res1 + (silu(ln2 Wg^T) * (ln2 Wu^T)) Wd^T
 *
 * then lnf = rmsnorm(res2_last) * w_norm and logits = lnf lm_head^T (lm_head = embed when tied).
 *
 * Memory: parameters in one allocation (m->params), gradients in a second of the same
 * layout (m->grads); each parameter starts at a multiple of SR_PARAM_ALIGN elements (the
 * padding stays zero), so total_numel can exceed the parameter count slightly.
 * Activations: one allocation for act_capacity tokens, llm.c-style pointers laid into it
 * (model_internal.h); it grows when a longer batch comes and goes back to the backend with
 * qwen2_release_workspace (the inference workspace likewise). The lm_head and the cross-entropy
 * run on chunks of m->lm_chunk tokens, so the full [N, V] logits never exist: the forward
 * keeps only log p(target) per token, the backward recomputes each chunk's logits and turns
 * them into dlogits in place (cross_entropy with grad_scale = 1 / #targets).
 * RoPE runs in place on q and k, so the saved q, k are the rotated ones (what the attention
 * backward needs); rope_backward maps dq, dk back through the rotation.
 * Gradient checkpointing (m->grad_checkpointing): the forward keeps only each layer's output
 * (the next layer's input) and every layer writes its other activations into one shared
 * set; the backward re-runs each layer's forward from its saved input just before that
 * layer's backward. Saved activations drop from ~(4C + 2QD + 2KVD + 2I) to C values per
 * token and layer, for one extra forward of the layer stack; the gradients are the same.
 * Prefix sharing (qwen2_forward_shared, GRPO's G completions of a prompt): the batch holds a
 * shared prompt once, so everything but the attention runs once per row; the attention gathers
 * q, k, v into the unshared stream (embedding_forward is a row gather), runs there, and each
 * row takes its first copy's output. The backward routes d(out) to that copy and sums d q, k, v
 * of every copy back into the row (embedding_backward is a deterministic scatter-add); lse is
 * kept per unshared token.
 */
#include "model_internal.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "../common/json.h"
#include "../common/rng.h"

#define SR_PARAM_ALIGN 64 /* elements */
#define SR_MEM_ALIGN 256  /* bytes, for every activation buffer */

/* ---- parameters ------------------------------------------------------------------------- */

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static void add_param(Qwen2Model *m, int *cap, size_t *off, const char *name, int64_t d0,
                      int64_t d1) {
    if (m->n_params == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        m->info = sr_realloc(m->info, (size_t)*cap * sizeof(ParamInfo));
    }
    ParamInfo *p = &m->info[m->n_params++];
    memset(p, 0, sizeof *p);
    snprintf(p->name, sizeof p->name, "%s", name);
    p->ndim = d1 > 0 ? 2 : 1;
    p->shape[0] = d0;
    p->shape[1] = d1 > 0 ? d1 : 0;
    p->numel = (size_t)d0 * (size_t)(d1 > 0 ? d1 : 1);
    p->offset = *off;
    *off = align_up(*off + p->numel, SR_PARAM_ALIGN);
}

/* The parameter named fmt (with layer l) inside base (params or grads). Every view must exist:
 * a missing name is a bug of qwen2_build, so it aborts with the name. */
static void *view(const Qwen2Model *m, void *base, const char *fmt, int l) {
    char name[96];
    snprintf(name, sizeof name, fmt, l);
    const ParamInfo *p = qwen2_param(m, name);
    if (!p) fprintf(stderr, "splitreason: internal error: no parameter %s\n", name);
    SR_ASSERT(p != NULL);
    return (char *)base + p->offset * sr_act_size(m->be);
}

/* Points the named views (embed, layers[l].q_w, ...) into base (params or grads), each by its
 * HF name, so the order of the parameter table is free. */
static void set_views(const Qwen2Model *m, void *base, void **embed, void **norm_w,
                      void **lm_head, LayerParams *layers) {
    int L = m->cfg.num_hidden_layers;
    *embed = view(m, base, "model.embed_tokens.weight", 0);
    for (int l = 0; l < L; l++) {
        LayerParams *p = &layers[l];
        p->q_w = view(m, base, "model.layers.%d.self_attn.q_proj.weight", l);
        p->q_b = view(m, base, "model.layers.%d.self_attn.q_proj.bias", l);
        p->k_w = view(m, base, "model.layers.%d.self_attn.k_proj.weight", l);
        p->k_b = view(m, base, "model.layers.%d.self_attn.k_proj.bias", l);
        p->v_w = view(m, base, "model.layers.%d.self_attn.v_proj.weight", l);
        p->v_b = view(m, base, "model.layers.%d.self_attn.v_proj.bias", l);
        p->o_w = view(m, base, "model.layers.%d.self_attn.o_proj.weight", l);
        p->gate_w = view(m, base, "model.layers.%d.mlp.gate_proj.weight", l);
        p->up_w = view(m, base, "model.layers.%d.mlp.up_proj.weight", l);
        p->down_w = view(m, base, "model.layers.%d.mlp.down_proj.weight", l);
        p->ln1_w = view(m, base, "model.layers.%d.input_layernorm.weight", l);
        p->ln2_w = view(m, base, "model.layers.%d.post_attention_layernorm.weight", l);
    }
    *norm_w = view(m, base, "model.norm.weight", 0);
    *lm_head = m->cfg.tie_word_embeddings ? *embed : view(m, base, "lm_head.weight", 0);
    /* every parameter has exactly one view: one added to the table needs one here */
    SR_ASSERT(m->n_params == 2 + 12 * L + !m->cfg.tie_word_embeddings);
}

int qwen2_build(Qwen2Model *m, const Qwen2Config *cfg, SrBackend *be, SrError *err) {
    memset(m, 0, sizeof *m);
    const Qwen2Config *c = cfg;
    if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->num_hidden_layers <= 0 ||
        c->num_attention_heads <= 0 || c->num_key_value_heads <= 0 || c->head_dim <= 0 ||
        c->intermediate_size <= 0)
        return sr_fail(err, "qwen2 config: sizes must be positive (vocab %d, hidden %d, layers %d,"
                       " heads %d, kv heads %d, head_dim %d, intermediate %d)", c->vocab_size,
                       c->hidden_size, c->num_hidden_layers, c->num_attention_heads,
                       c->num_key_value_heads, c->head_dim, c->intermediate_size);
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return sr_fail(err, "qwen2 config: num_attention_heads %d is not a multiple of "
                       "num_key_value_heads %d", c->num_attention_heads, c->num_key_value_heads);
    if (c->head_dim % 2 != 0)
        return sr_fail(err, "qwen2 config: head_dim %d must be even (RoPE)", c->head_dim);
    if (!(c->rms_norm_eps > 0) || !(c->rope_theta > 0))
        return sr_fail(err, "qwen2 config: rms_norm_eps and rope_theta must be positive");
    if (c->vocab_size > QWEN2_MAX_VOCAB || c->hidden_size > QWEN2_MAX_HIDDEN ||
        c->intermediate_size > QWEN2_MAX_INTERMEDIATE || c->num_hidden_layers > QWEN2_MAX_LAYERS ||
        c->num_attention_heads > QWEN2_MAX_HEADS || c->num_key_value_heads > QWEN2_MAX_HEADS ||
        c->head_dim > QWEN2_MAX_HEAD_DIM)
        return sr_fail(err, "qwen2 config: a size is beyond the supported bounds (vocab %d, hidden %d, layers %d,"
                       " heads %d, kv heads %d, head_dim %d, intermediate %d)", c->vocab_size, c->hidden_size,
                       c->num_hidden_layers, c->num_attention_heads, c->num_key_value_heads, c->head_dim,
                       c->intermediate_size);
    /* the parameters are one allocation: refuse what cannot fit before asking for it (the GPU
     * backend reports its own out-of-memory) */
    if (be->device == SR_DEVICE_CPU &&
        qwen2_config_check_memory(c, (double)sr_act_size(be), 0, "weights on the CPU", err))
        return -1;

    m->cfg = *cfg;
    m->cfg.raw_json = cfg->raw_json ? sr_strdup(cfg->raw_json) : NULL;
    m->be = be;
    m->lm_chunk = 256;

    int64_t V = c->vocab_size, C = c->hidden_size, I = c->intermediate_size;
    int64_t QD = (int64_t)c->num_attention_heads * c->head_dim;
    int64_t KVD = (int64_t)c->num_key_value_heads * c->head_dim;
    int cap = 0;
    size_t off = 0;
    char name[96];
    add_param(m, &cap, &off, "model.embed_tokens.weight", V, C);
    for (int l = 0; l < c->num_hidden_layers; l++) {
#define P(suffix, d0, d1)                                                     \
    snprintf(name, sizeof name, "model.layers.%d.%s", l, suffix);             \
    add_param(m, &cap, &off, name, d0, d1)
        P("self_attn.q_proj.weight", QD, C);
        P("self_attn.q_proj.bias", QD, 0);
        P("self_attn.k_proj.weight", KVD, C);
        P("self_attn.k_proj.bias", KVD, 0);
        P("self_attn.v_proj.weight", KVD, C);
        P("self_attn.v_proj.bias", KVD, 0);
        P("self_attn.o_proj.weight", C, QD);
        P("mlp.gate_proj.weight", I, C);
        P("mlp.up_proj.weight", I, C);
        P("mlp.down_proj.weight", C, I);
        P("input_layernorm.weight", C, 0);
        P("post_attention_layernorm.weight", C, 0);
#undef P
    }
    add_param(m, &cap, &off, "model.norm.weight", C, 0);
    if (!c->tie_word_embeddings) add_param(m, &cap, &off, "lm_head.weight", V, C);
    m->total_numel = off;
    m->alloc_numel = off;

    m->params = be->ops->alloc(be, m->alloc_numel * sr_act_size(be));
    m->layers = sr_calloc((size_t)c->num_hidden_layers, sizeof(LayerParams));
    m->d_layers = sr_calloc((size_t)c->num_hidden_layers, sizeof(LayerParams));
    set_views(m, m->params, &m->embed, &m->norm_w, &m->lm_head, m->layers);

    ModelActs *a = sr_calloc(1, sizeof(ModelActs));
    a->asz = sr_act_size(be);
    a->train.layers = sr_calloc((size_t)c->num_hidden_layers, sizeof(LayerActs));
    m->acts = a;
    return 0;
}

void qwen2_free(Qwen2Model *m) {
    if (!m->be) return;
    const SrOps *o = m->be->ops;
    ModelActs *a = m->acts;
    if (a) {
        if (a->train.mem) o->free(m->be, a->train.mem);
        if (a->train.norm_t) o->free(m->be, a->train.norm_t);
        if (a->train.dnorm_t) o->free(m->be, a->train.dnorm_t);
        if (a->infer.mem) o->free(m->be, a->infer.mem);
        free(a->train.layers);
        free(a);
    }
    if (m->params) o->free(m->be, m->params);
    if (m->grads) o->free(m->be, m->grads);
    free(m->layers);
    free(m->d_layers);
    free(m->info);
    free(m->cfg.raw_json);
    memset(m, 0, sizeof *m);
}

const ParamInfo *qwen2_param(const Qwen2Model *m, const char *name) {
    for (int i = 0; i < m->n_params; i++)
        if (strcmp(m->info[i].name, name) == 0) return &m->info[i];
    return NULL;
}

void *qwen2_param_ptr(const Qwen2Model *m, const char *name) {
    const ParamInfo *p = qwen2_param(m, name);
    return p ? (char *)m->params + p->offset * sr_act_size(m->be) : NULL;
}

void *qwen2_grad_ptr(const Qwen2Model *m, const char *name) {
    const ParamInfo *p = qwen2_param(m, name);
    return (p && m->grads) ? (char *)m->grads + p->offset * sr_act_size(m->be) : NULL;
}

static void ensure_grads(Qwen2Model *m) {
    if (m->grads) return;
    m->grads = m->be->ops->alloc(m->be, m->alloc_numel * sr_act_size(m->be)); /* zeroed */
    set_views(m, m->grads, &m->d_embed, &m->d_norm_w, &m->d_lm_head, m->d_layers);
}

void qwen2_zero_grad(Qwen2Model *m) {
    if (!m->grads) {
        ensure_grads(m);
        return;
    }
    m->be->ops->zero(m->be, m->grads, m->alloc_numel * sr_act_size(m->be));
}

void qwen2_reserve_flat(Qwen2Model *m, size_t n) {
    if (n <= m->alloc_numel) return;
    SrBackend *be = m->be;
    size_t asz = sr_act_size(be);
    void *p = be->ops->alloc(be, n * asz); /* zeroed: the new tail is padding */
    be->ops->copy(be, p, m->params, m->alloc_numel * asz);
    be->ops->free(be, m->params);
    m->params = p;
    set_views(m, m->params, &m->embed, &m->norm_w, &m->lm_head, m->layers);
    if (m->grads) {
        void *g = be->ops->alloc(be, n * asz);
        be->ops->copy(be, g, m->grads, m->alloc_numel * asz);
        be->ops->free(be, m->grads);
        m->grads = g;
        set_views(m, m->grads, &m->d_embed, &m->d_norm_w, &m->d_lm_head, m->d_layers);
    }
    m->alloc_numel = n;
}

/* pad_token_id from the raw config (HF zeroes that embedding row at init); -1 if none. */
static int pad_token_id(const Qwen2Config *c) {
    if (!c->raw_json) return -1;
    cJSON *j = sr_json_parse(c->raw_json, strlen(c->raw_json), NULL);
    int id = -1;
    if (j) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(j, "pad_token_id");
        if (cJSON_IsNumber(p) && p->valuedouble >= 0 && p->valuedouble < c->vocab_size)
            id = (int)p->valuedouble;
        cJSON_Delete(j);
    }
    return id;
}

void qwen2_init_random(Qwen2Model *m, uint64_t seed) {
    float std = m->cfg.initializer_range > 0 ? m->cfg.initializer_range : 0.02f;
    size_t maxn = 0;
    for (int i = 0; i < m->n_params; i++)
        if (m->info[i].numel > maxn) maxn = m->info[i].numel;
    float *buf = sr_malloc(maxn * sizeof(float));
    int pad = pad_token_id(&m->cfg);
    size_t asz = sr_act_size(m->be);
    for (int i = 0; i < m->n_params; i++) {
        const ParamInfo *p = &m->info[i];
        size_t len = strlen(p->name);
        int is_norm = strstr(p->name, "layernorm") || strcmp(p->name, "model.norm.weight") == 0;
        int is_bias = len > 5 && strcmp(p->name + len - 5, ".bias") == 0;
        /* one stream per tensor, by its index in the table: reordering qwen2_build's table
         * changes the draws (not which tensor is which) */
        uint64_t rng = sr_rng_stream(seed, (uint64_t)i);
        for (size_t j = 0; j < p->numel; j++)
            buf[j] = is_norm ? 1.0f : is_bias ? 0.0f : std * sr_rng_normal(&rng);
        if (pad >= 0 && strcmp(p->name, "model.embed_tokens.weight") == 0)
            memset(buf + (size_t)pad * p->shape[1], 0, p->shape[1] * 4);
        m->be->ops->upload_act(m->be, (char *)m->params + p->offset * asz, buf, p->numel);
    }
    free(buf);
}

/* ---- activations ------------------------------------------------------------------------ */

/* bump allocator over one block: with base == NULL it only measures */
typedef struct Bump {
    char *base;
    size_t off;
} Bump;

static void *take(Bump *b, size_t bytes) {
    void *p = b->base ? b->base + b->off : NULL;
    b->off += align_up(bytes, SR_MEM_ALIGN);
    return p;
}

static void layout_train(const Qwen2Model *m, TrainActs *t, Bump *b, size_t N) {
    const Qwen2Config *c = &m->cfg;
    size_t asz = sr_act_size(m->be), C = c->hidden_size, I = c->intermediate_size;
    size_t QD = (size_t)c->num_attention_heads * c->head_dim;
    size_t KVD = (size_t)c->num_key_value_heads * c->head_dim;
    t->ids = take(b, N * 4);
    t->pos = take(b, N * 4);
    t->targets = take(b, N * 4);
    t->weights = take(b, N * 4);
    t->logprob = take(b, N * 4);
    t->entropy = take(b, N * 4);
    t->emb = take(b, N * C * asz);
    size_t NA = (size_t)t->att_cap, NL = N > NA ? N : NA; /* lse rows: attention tokens */
    if (NA) {
        t->map = take(b, NA * 4);
        t->pos_att = take(b, NA * 4);
        t->inv = take(b, N * 4);
        t->qa = take(b, NA * QD * asz);
        t->oa = take(b, NA * QD * asz);
        t->dqa = take(b, NA * QD * asz);
        t->doa = take(b, NA * QD * asz);
        t->ka = take(b, NA * KVD * asz);
        t->va = take(b, NA * KVD * asz);
        t->dka = take(b, NA * KVD * asz);
        t->dva = take(b, NA * KVD * asz);
    }
    for (int l = 0; l < c->num_hidden_layers; l++) {
        LayerActs *a = &t->layers[l];
        if (t->ckpt && l > 0) { /* one shared set (taken for layer 0), a res2 per layer */
            *a = t->layers[0];
            a->res2 = take(b, N * C * asz);
            continue;
        }
        a->ln1 = take(b, N * C * asz);
        a->rstd1 = take(b, N * 4);
        a->q = take(b, N * QD * asz);
        a->k = take(b, N * KVD * asz);
        a->v = take(b, N * KVD * asz);
        a->att = take(b, N * QD * asz);
        a->lse = take(b, (size_t)c->num_attention_heads * NL * 4);
        a->res1 = take(b, N * C * asz);
        a->ln2 = take(b, N * C * asz);
        a->rstd2 = take(b, N * 4);
        a->gate = take(b, N * I * asz);
        a->up = take(b, N * I * asz);
        a->res2 = take(b, N * C * asz);
    }
    t->lnf = take(b, N * C * asz);
    t->rstdf = take(b, N * 4);
    t->hmid = take(b, N * I * asz);
    for (int l = 0; l < c->num_hidden_layers; l++) t->layers[l].hmid = t->hmid;
    t->logits = take(b, (size_t)t->chunk * c->vocab_size * asz);
    t->dres = take(b, N * C * asz);
    t->dln = take(b, N * C * asz);
    t->dq = take(b, N * QD * asz);
    t->datt = take(b, N * QD * asz);
    t->dk = take(b, N * KVD * asz);
    t->dv = take(b, N * KVD * asz);
    t->dh = take(b, N * I * asz);
    t->dgate = take(b, N * I * asz);
    t->dup = take(b, N * I * asz);
}

/* n_att: the unshared tokens of a prefix-shared batch (0: none) */
static void train_reserve(Qwen2Model *m, int N, int n_att) {
    ModelActs *a = m->acts;
    TrainActs *t = &a->train;
    if (m->lm_chunk <= 0) m->lm_chunk = 256;
    int chunk = m->lm_chunk < N ? m->lm_chunk : N;
    int ckpt = m->grad_checkpointing != 0;
    if (t->mem && t->cap >= N && t->chunk >= chunk && t->ckpt == ckpt && t->att_cap >= n_att)
        return;
    if (t->mem) m->be->ops->free(m->be, t->mem);
    if (n_att > t->att_cap) t->att_cap = n_att;
    t->ckpt = ckpt;
    t->cap = N > m->act_capacity ? N : m->act_capacity;
    t->chunk = m->lm_chunk < t->cap ? m->lm_chunk : t->cap;
    Bump b = {NULL, 0};
    layout_train(m, t, &b, (size_t)t->cap);
    t->mem = m->be->ops->alloc(m->be, b.off);
    t->bytes = b.off;
    b = (Bump){t->mem, 0};
    layout_train(m, t, &b, (size_t)t->cap);
    m->act_capacity = t->cap;
}

size_t qwen2_train_act_bytes(const Qwen2Model *m, int N) {
    TrainActs t;
    memset(&t, 0, sizeof t);
    t.ckpt = m->grad_checkpointing != 0;
    int lm_chunk = m->lm_chunk > 0 ? m->lm_chunk : 256;
    t.chunk = lm_chunk < N ? lm_chunk : N;
    t.layers = sr_calloc((size_t)m->cfg.num_hidden_layers, sizeof(LayerActs));
    Bump b = {NULL, 0};
    layout_train(m, &t, &b, (size_t)N);
    free(t.layers);
    return b.off;
}

static void layout_infer(const Qwen2Model *m, InferActs *w, Bump *b) {
    const Qwen2Config *c = &m->cfg;
    size_t asz = sr_act_size(m->be), C = c->hidden_size, I = c->intermediate_size;
    size_t QD = (size_t)c->num_attention_heads * c->head_dim;
    size_t KVD = (size_t)c->num_key_value_heads * c->head_dim;
    size_t N = (size_t)w->cap;
    w->ids = take(b, N * 4);
    w->pos = take(b, N * 4);
    w->emb = take(b, N * C * asz);
    LayerActs *a = &w->layer;
    memset(a, 0, sizeof *a); /* rstd, lse stay NULL: nothing saved for a backward */
    a->ln1 = take(b, N * C * asz);
    a->q = take(b, N * QD * asz);
    a->k = take(b, N * KVD * asz);
    a->v = take(b, N * KVD * asz);
    a->att = take(b, N * QD * asz);
    a->res1 = take(b, N * C * asz);
    a->ln2 = take(b, N * C * asz);
    a->gate = take(b, N * I * asz);
    a->up = take(b, N * I * asz);
    a->res2 = take(b, N * C * asz);
    w->hmid = a->hmid = take(b, N * I * asz);
    w->sel = take(b, N * C * asz);
    w->logits = take(b, (size_t)w->chunk * c->vocab_size * asz);
}

void qwen2_infer_reserve(Qwen2Model *m, int n) {
    InferActs *w = &((ModelActs *)m->acts)->infer;
    if (m->lm_chunk <= 0) m->lm_chunk = 256;
    if (w->mem && w->cap >= n && w->chunk >= m->lm_chunk) return;
    if (w->mem) m->be->ops->free(m->be, w->mem);
    w->cap = n > w->cap ? n : w->cap;
    w->chunk = m->lm_chunk;
    Bump b = {NULL, 0};
    layout_infer(m, w, &b);
    w->mem = m->be->ops->alloc(m->be, b.off);
    w->bytes = b.off;
    b = (Bump){w->mem, 0};
    layout_infer(m, w, &b);
}

void qwen2_release_workspace(Qwen2Model *m, int which) {
    ModelActs *a = m->acts;
    if (!a) return;
    if ((which & QWEN2_WS_TRAIN) && a->train.mem) {
        TrainActs *t = &a->train;
        m->be->ops->free(m->be, t->mem);
        t->mem = NULL;
        t->bytes = 0;
        t->cap = t->chunk = t->att_cap = 0;
        m->act_capacity = 0; /* the next forward sizes it for its own batch */
        m->last_N = 0;       /* the saved forward is gone: no backward until the next one */
    }
    if ((which & QWEN2_WS_INFER) && a->infer.mem) {
        InferActs *w = &a->infer;
        m->be->ops->free(m->be, w->mem);
        w->mem = NULL;
        w->bytes = 0;
        w->cap = w->chunk = 0;
    }
}

size_t qwen2_workspace_bytes(const Qwen2Model *m, int which) {
    const ModelActs *a = m->acts;
    if (!a) return 0;
    return ((which & QWEN2_WS_TRAIN) ? a->train.bytes : 0) +
           ((which & QWEN2_WS_INFER) ? a->infer.bytes : 0);
}

size_t qwen2_infer_act_bytes(const Qwen2Model *m, int n) {
    InferActs w;
    memset(&w, 0, sizeof w);
    w.cap = n;
    w.chunk = m->lm_chunk > 0 ? m->lm_chunk : 256;
    Bump b = {NULL, 0};
    layout_infer(m, &w, &b);
    return b.off;
}

/* ---- forward ---------------------------------------------------------------------------- */

void qwen2_layer_forward(Qwen2Model *m, const LayerParams *p, const LayerActs *a, const void *x,
                         int N, const int32_t *pos, const AttnPlan *plan) {
    SrBackend *be = m->be;
    const SrOps *o = be->ops;
    const Qwen2Config *c = &m->cfg;
    int C = c->hidden_size, I = c->intermediate_size, D = c->head_dim;
    int Hq = c->num_attention_heads, Hkv = c->num_key_value_heads;
    int QD = Hq * D, KVD = Hkv * D;

    /* attention block */
    o->rmsnorm_forward(be, a->ln1, a->rstd1, x, p->ln1_w, N, C, c->rms_norm_eps);
    o->matmul_forward(be, a->q, a->ln1, p->q_w, p->q_b, N, C, QD);
    o->matmul_forward(be, a->k, a->ln1, p->k_w, p->k_b, N, C, KVD);
    o->matmul_forward(be, a->v, a->ln1, p->v_w, p->v_b, N, C, KVD);
    o->rope_forward(be, a->q, pos, N, Hq, D, c->rope_theta);
    o->rope_forward(be, a->k, pos, N, Hkv, D, c->rope_theta);
    if (plan && plan->kcache) o->kv_store(be, plan->kcache, plan->vcache, a->k, a->v, plan->slot, N, KVD);
    if (plan && plan->mode == ATTN_PAGED) {
        o->attention_paged(be, a->att, a->q, plan->kcache, plan->vcache, pos, plan->seq,
                           plan->table, plan->max_blocks, plan->block, N, Hq, Hkv, D);
    } else if (plan && plan->mode == ATTN_SHARED) {
        /* the rows laid out as the unshared stream, attended, each row's first copy back */
        const TrainActs *t = plan->share;
        int NA = t->n_att;
        o->embedding_forward(be, t->qa, t->map, a->q, NA, QD);
        o->embedding_forward(be, t->ka, t->map, a->k, NA, KVD);
        o->embedding_forward(be, t->va, t->map, a->v, NA, KVD);
        o->attention_forward(be, t->oa, a->lse, t->qa, t->ka, t->va, t->pos_att, NA, Hq, Hkv, D);
        o->embedding_forward(be, a->att, t->inv, t->oa, N, QD);
    } else {
        o->attention_forward(be, a->att, a->lse, a->q, a->k, a->v, pos, N, Hq, Hkv, D);
    }
    o->matmul_forward(be, a->res1, a->att, p->o_w, NULL, N, QD, C);
    o->add(be, a->res1, a->res1, x, (size_t)N * C);

    /* MLP block */
    o->rmsnorm_forward(be, a->ln2, a->rstd2, a->res1, p->ln2_w, N, C, c->rms_norm_eps);
    o->matmul_forward(be, a->gate, a->ln2, p->gate_w, NULL, N, C, I);
    o->matmul_forward(be, a->up, a->ln2, p->up_w, NULL, N, C, I);
    o->swiglu_forward(be, a->hmid, a->gate, a->up, (size_t)N * I);
    o->matmul_forward(be, a->res2, a->hmid, p->down_w, NULL, N, I, C);
    o->add(be, a->res2, a->res2, a->res1, (size_t)N * C);
}

const void *qwen2_stack_forward(Qwen2Model *m, const StackRun *r) {
    m->be->ops->embedding_forward(m->be, r->emb, r->ids, m->embed, r->N, m->cfg.hidden_size);
    AttnPlan plan;
    if (r->plan) plan = *r->plan;
    const void *x = r->emb;
    for (int l = 0; l < m->cfg.num_hidden_layers; l++) {
        const LayerActs *a = r->per_layer ? &r->acts[l] : r->acts;
        if (r->plan && r->kcache) {
            plan.kcache = r->kcache[l];
            plan.vcache = r->vcache[l];
        }
        qwen2_layer_forward(m, &m->layers[l], a, x, r->N, r->pos, r->plan ? &plan : NULL);
        x = a->res2;
    }
    return x;
}

int qwen2_check_ids(const Qwen2Model *m, const int32_t *ids, int N, const char *what,
                    SrError *err) {
    for (int i = 0; i < N; i++)
        if (ids[i] < 0 || ids[i] >= m->cfg.vocab_size)
            return sr_fail(err, "%s: ids[%d] = %d is outside the vocabulary [0, %d)", what, i,
                           ids[i], m->cfg.vocab_size);
    return 0;
}

int qwen2_check_batch(const Qwen2Model *m, const int32_t *ids, const int32_t *pos, int N,
                      const char *what, SrError *err) {
    if (N <= 0) return sr_fail(err, "%s: empty batch (N = %d)", what, N);
    if (qwen2_check_ids(m, ids, N, what, err)) return -1;
    int P = m->cfg.max_position_embeddings;
    for (int i = 0; i < N; i++) {
        if (!(pos[i] == 0 || (i > 0 && pos[i] == pos[i - 1] + 1)))
            return sr_fail(err, "%s: pos[%d] = %d: positions must restart at 0 at each document "
                           "and then count up by one", what, i, pos[i]);
        /* RoPE would compute any position, but the model was never trained past P */
        if (pos[i] >= P)
            return sr_fail(err, "%s: pos[%d] = %d: a document longer than the model's "
                           "max_position_embeddings %d", what, i, pos[i], P);
    }
    return 0;
}

/* fused_head: the lm_head + cross-entropy backward runs inside the forward's chunk loop
 * (dlogits are at hand there), so a training step computes the [N, V] logits once, not twice. */
/* A prefix-shared batch (qwen2_forward_shared): the unshared stream must be packed documents,
 * each of its tokens a row at the same position, every row used; fills inv (host [N]) with
 * each row's first unshared token. */
static int check_share(const Qwen2Model *m, const int32_t *ids, const int32_t *pos, int N,
                       const Qwen2Share *sh, int32_t *inv, SrError *err) {
    int NA = sh->n_att;
    if (NA < N)
        return sr_fail(err, "qwen2_forward_shared: %d unshared tokens for %d rows (each row is "
                       "at least one token of the unshared stream)", NA, N);
    int32_t *ids_att = sr_malloc((size_t)NA * sizeof(int32_t));
    for (int r = 0; r < N; r++) inv[r] = -1;
    int rc = 0;
    for (int f = 0; f < NA && !rc; f++) {
        int r = sh->map[f];
        if (r < 0 || r >= N) {
            rc = sr_fail(err, "qwen2_forward_shared: map[%d] = %d is not a row in [0, %d)", f,
                         r, N);
        } else if (sh->pos_att[f] != pos[r]) {
            rc = sr_fail(err, "qwen2_forward_shared: unshared token %d is row %d at position %d, "
                         "but the row's position is %d", f, r, sh->pos_att[f], pos[r]);
        } else {
            ids_att[f] = ids[r];
            if (inv[r] < 0) inv[r] = f;
        }
    }
    for (int r = 0; r < N && !rc; r++)
        if (inv[r] < 0)
            rc = sr_fail(err, "qwen2_forward_shared: row %d is no token of the unshared stream", r);
    if (!rc) rc = qwen2_check_batch(m, ids_att, sh->pos_att, NA, "qwen2_forward_shared", err);
    free(ids_att);
    return rc;
}

static int forward_impl(Qwen2Model *m, const int32_t *ids, const int32_t *pos,
                        const int32_t *targets, const float *weights, int N,
                        const Qwen2Share *share, double n_norm, float *loss_out,
                        float *logprob_out, float *entropy_out, int fused_head, SrError *err) {
    SrBackend *be = m->be;
    const SrOps *o = be->ops;
    const Qwen2Config *c = &m->cfg;
    int C = c->hidden_size, V = c->vocab_size;
    m->last_N = 0;
    int32_t *inv = NULL;
    if (share) {
        if (N <= 0) return sr_fail(err, "qwen2_forward_shared: empty batch (N = %d)", N);
        if (qwen2_check_ids(m, ids, N, "qwen2_forward_shared", err)) return -1;
        inv = sr_malloc((size_t)N * sizeof(int32_t));
        if (check_share(m, ids, pos, N, share, inv, err)) {
            free(inv);
            return -1;
        }
    } else if (qwen2_check_batch(m, ids, pos, N, "qwen2_forward", err)) {
        return -1;
    }
    /* h0, h1: the rows from the first target to after the last (the lm_head runs on them) */
    int n_valid = 0, h0 = 0, h1 = 0;
    if (targets) {
        for (int i = 0; i < N; i++) {
            if (targets[i] >= V) {
                free(inv);
                return sr_fail(err, "qwen2: targets[%d] = %d is outside the vocabulary [0, %d)",
                               i, targets[i], V);
            }
            if (targets[i] < 0) continue;
            if (n_valid++ == 0) h0 = i;
            h1 = i + 1;
        }
    }
    /* the normaliser: this batch's own count, or the caller's (global batch) count */
    float norm = n_norm > 0 ? (float)n_norm : (float)n_valid;

    train_reserve(m, N, share ? share->n_att : 0);
    ModelActs *ma = m->acts;
    TrainActs *t = &ma->train;
    o->upload(be, t->ids, ids, (size_t)N * 4);
    o->upload(be, t->pos, pos, (size_t)N * 4);
    if (targets) o->upload(be, t->targets, targets, (size_t)N * 4);
    if (targets && weights) o->upload(be, t->weights, weights, (size_t)N * 4);
    t->n_att = share ? share->n_att : 0;
    AttnPlan plan = {.mode = ATTN_SHARED, .share = t};
    if (share) {
        o->upload(be, t->map, share->map, (size_t)t->n_att * 4);
        o->upload(be, t->pos_att, share->pos_att, (size_t)t->n_att * 4);
        o->upload(be, t->inv, inv, (size_t)N * 4);
        free(inv);
    }

    StackRun run = {.N = N, .ids = t->ids, .pos = t->pos, .emb = t->emb, .acts = t->layers,
                    .per_layer = 1, .plan = share ? &plan : NULL};
    const void *x = qwen2_stack_forward(m, &run);
    /* Temperature: logits / T = (lnf / T) lm_head^T, and lnf / T is the final norm with its
     * weight divided by T, so the head runs unchanged on a scaled copy of norm.weight (the
     * backward maps that copy's gradient back with one more 1/T). */
    float temp = m->logit_temperature > 0 ? m->logit_temperature : 1.0f;
    t->temp = temp;
    const void *norm_w = m->norm_w;
    if (temp != 1.0f) {
        size_t cb = (size_t)C * sr_act_size(be);
        if (!t->norm_t) t->norm_t = o->alloc(be, cb);
        if (!t->dnorm_t) t->dnorm_t = o->alloc(be, cb);
        float *h = sr_malloc((size_t)C * sizeof(float));
        o->download_act(be, h, m->norm_w, (size_t)C);
        for (int i = 0; i < C; i++) h[i] /= temp;
        o->upload_act(be, t->norm_t, h, (size_t)C);
        free(h);
        norm_w = t->norm_t;
    }
    o->rmsnorm_forward(be, t->lnf, t->rstdf, x, norm_w, N, C, c->rms_norm_eps);

    int chunk = m->lm_chunk > 0 && m->lm_chunk < t->chunk ? m->lm_chunk : t->chunk;
    t->has_targets = targets != NULL;
    t->has_weights = targets && weights;
    t->n_valid = n_valid;
    t->norm = norm;
    t->head_done = 0;
    fused_head = fused_head && targets && n_valid > 0;
    if (fused_head) {
        ensure_grads(m);
        o->zero(be, t->dln, (size_t)N * C * sr_act_size(be));
    }
    if (targets) {
        /* the head runs on the rows from the first target to the last (a prompt before them
         * has none); the rows outside get log-prob 0, entropy 0 and no gradient */
        float scale = fused_head ? 1.0f / norm : 0.0f;
        t->h0 = h0;
        t->h1 = h1;
        for (int s = h0; s < h1; s += chunk) {
            int n = h1 - s < chunk ? h1 - s : chunk;
            void *lnf = sr_act_at(ma, t->lnf, (size_t)s * C);
            o->matmul_forward(be, t->logits, lnf, m->lm_head, NULL, n, C, V);
            o->cross_entropy(be, t->logprob + s, entropy_out ? t->entropy + s : NULL, t->logits,
                             t->targets + s, weights ? t->weights + s : NULL, scale, n, V);
            if (fused_head) /* t->logits now holds dlogits */
                o->matmul_backward(be, sr_act_at(ma, t->dln, (size_t)s * C), m->d_lm_head, NULL,
                                   t->logits, lnf, m->lm_head, n, C, V);
        }
        t->head_done = fused_head;
        float *lp = logprob_out ? logprob_out : sr_malloc((size_t)N * sizeof(float));
        memset(lp, 0, (size_t)N * sizeof(float));
        if (h1 > h0) o->download(be, lp + h0, t->logprob + h0, (size_t)(h1 - h0) * 4);
        if (entropy_out) {
            memset(entropy_out, 0, (size_t)N * sizeof(float));
            if (h1 > h0)
                o->download(be, entropy_out + h0, t->entropy + h0, (size_t)(h1 - h0) * 4);
        }
        double sum = 0;
        for (int i = 0; i < N; i++)
            if (targets[i] >= 0) sum += (double)(weights ? weights[i] : 1.0f) * lp[i];
        if (loss_out) *loss_out = n_valid ? (float)(-sum / norm) : 0.0f;
        if (!logprob_out) free(lp);
    } else if (loss_out) {
        *loss_out = 0.0f;
    }
    m->last_N = N;
    return 0;
}

int qwen2_forward(Qwen2Model *m, const int32_t *ids, const int32_t *pos, const int32_t *targets,
                  const float *weights, int N, float *loss_out, float *logprob_out, SrError *err) {
    return forward_impl(m, ids, pos, targets, weights, N, NULL, 0.0, loss_out, logprob_out, NULL,
                        0, err);
}

int qwen2_forward_shared(Qwen2Model *m, const int32_t *ids, const int32_t *pos,
                         const int32_t *targets, int N, const Qwen2Share *share,
                         float *logprob_out, float *entropy_out, SrError *err) {
    return forward_impl(m, ids, pos, targets, NULL, N, share, 0.0, NULL, logprob_out,
                        entropy_out, 0, err);
}

/* ---- backward --------------------------------------------------------------------------- */

static void layer_backward(Qwen2Model *m, int l, const void *x) {
    SrBackend *be = m->be;
    const SrOps *o = be->ops;
    const Qwen2Config *c = &m->cfg;
    TrainActs *t = &((ModelActs *)m->acts)->train;
    const LayerActs *a = &t->layers[l];
    const LayerParams *p = &m->layers[l];
    const LayerParams *dp = &m->d_layers[l];
    int N = m->last_N, C = c->hidden_size, I = c->intermediate_size, D = c->head_dim;
    int Hq = c->num_attention_heads, Hkv = c->num_key_value_heads;
    int QD = Hq * D, KVD = Hkv * D;
    size_t asz = sr_act_size(be);
    size_t NC = (size_t)N * C, NI = (size_t)N * I;
    /* t->dres holds d(res2) on entry and d(x) on exit: the residual adds pass it through and
     * the norm backwards accumulate into it. */

    /* MLP: res2 = res1 + down(silu(gate) * up) */
    o->swiglu_forward(be, t->hmid, a->gate, a->up, NI); /* recompute the down_proj input */
    o->zero(be, t->dh, NI * asz);
    o->matmul_backward(be, t->dh, dp->down_w, NULL, t->dres, t->hmid, p->down_w, N, I, C);
    o->zero(be, t->dgate, NI * asz);
    o->zero(be, t->dup, NI * asz);
    o->swiglu_backward(be, t->dgate, t->dup, t->dh, a->gate, a->up, NI);
    o->zero(be, t->dln, NC * asz);
    o->matmul_backward(be, t->dln, dp->gate_w, NULL, t->dgate, a->ln2, p->gate_w, N, C, I);
    o->matmul_backward(be, t->dln, dp->up_w, NULL, t->dup, a->ln2, p->up_w, N, C, I);
    o->rmsnorm_backward(be, t->dres, dp->ln2_w, t->dln, a->res1, p->ln2_w, a->rstd2, N, C);

    /* attention: res1 = x + o_proj(attention(rope(q), rope(k), v)) */
    o->zero(be, t->datt, (size_t)N * QD * asz);
    o->matmul_backward(be, t->datt, dp->o_w, NULL, t->dres, a->att, p->o_w, N, QD, C);
    o->zero(be, t->dq, (size_t)N * QD * asz);
    o->zero(be, t->dk, (size_t)N * KVD * asz);
    o->zero(be, t->dv, (size_t)N * KVD * asz);
    if (t->n_att) {
        /* prefix sharing: the backward of the forward's gathers around the unshared stream's
         * attention. A row's output came from its first copy, so d(out) goes there (the other
         * copies get 0, hence add nothing); d q, k, v of every copy sum into the row. */
        int NA = t->n_att;
        o->embedding_forward(be, t->qa, t->map, a->q, NA, QD);
        o->embedding_forward(be, t->ka, t->map, a->k, NA, KVD);
        o->embedding_forward(be, t->va, t->map, a->v, NA, KVD);
        o->embedding_forward(be, t->oa, t->map, a->att, NA, QD);
        o->zero(be, t->doa, (size_t)NA * QD * asz);
        o->embedding_backward(be, t->doa, t->datt, t->inv, N, QD);
        o->zero(be, t->dqa, (size_t)NA * QD * asz);
        o->zero(be, t->dka, (size_t)NA * KVD * asz);
        o->zero(be, t->dva, (size_t)NA * KVD * asz);
        o->attention_backward(be, t->dqa, t->dka, t->dva, t->doa, t->qa, t->ka, t->va, t->oa,
                              a->lse, t->pos_att, NA, Hq, Hkv, D);
        o->embedding_backward(be, t->dq, t->dqa, t->map, NA, QD);
        o->embedding_backward(be, t->dk, t->dka, t->map, NA, KVD);
        o->embedding_backward(be, t->dv, t->dva, t->map, NA, KVD);
    } else {
        o->attention_backward(be, t->dq, t->dk, t->dv, t->datt, a->q, a->k, a->v, a->att,
                              a->lse, t->pos, N, Hq, Hkv, D);
    }
    o->rope_backward(be, t->dq, t->pos, N, Hq, D, c->rope_theta);
    o->rope_backward(be, t->dk, t->pos, N, Hkv, D, c->rope_theta);
    o->zero(be, t->dln, NC * asz);
    o->matmul_backward(be, t->dln, dp->q_w, dp->q_b, t->dq, a->ln1, p->q_w, N, C, QD);
    o->matmul_backward(be, t->dln, dp->k_w, dp->k_b, t->dk, a->ln1, p->k_w, N, C, KVD);
    o->matmul_backward(be, t->dln, dp->v_w, dp->v_b, t->dv, a->ln1, p->v_w, N, C, KVD);
    o->rmsnorm_backward(be, t->dres, dp->ln1_w, t->dln, x, p->ln1_w, a->rstd1, N, C);
}

int qwen2_backward(Qwen2Model *m, SrError *err) {
    SrBackend *be = m->be;
    const SrOps *o = be->ops;
    const Qwen2Config *c = &m->cfg;
    ModelActs *ma = m->acts;
    TrainActs *t = &ma->train;
    int N = m->last_N, C = c->hidden_size, V = c->vocab_size, L = c->num_hidden_layers;
    if (N <= 0) return sr_fail(err, "qwen2_backward: no forward pass saved (call qwen2_forward)");
    if (!t->has_targets)
        return sr_fail(err, "qwen2_backward: the last forward had no targets, so no loss");
    ensure_grads(m);
    size_t asz = sr_act_size(be), NC = (size_t)N * C;
    if (t->n_valid == 0) return 0; /* loss is 0 by definition: nothing to add */

    /* lm_head + cross-entropy, chunk by chunk: dlogits = (softmax - onehot) w / norm
     * (already done, into t->dln and d_lm_head, when the forward was fused) */
    float scale = 1.0f / t->norm;
    int chunk = m->lm_chunk > 0 && m->lm_chunk < t->chunk ? m->lm_chunk : t->chunk;
    if (!t->head_done) o->zero(be, t->dln, NC * asz);
    for (int s = t->h0; !t->head_done && s < t->h1; s += chunk) {
        int n = t->h1 - s < chunk ? t->h1 - s : chunk;
        void *lnf = sr_act_at(ma, t->lnf, (size_t)s * C);
        o->matmul_forward(be, t->logits, lnf, m->lm_head, NULL, n, C, V);
        o->cross_entropy(be, t->logprob + s, NULL, t->logits, t->targets + s,
                         t->has_weights ? t->weights + s : NULL, scale, n, V);
        /* tied: d_lm_head is d_embed, so this adds to the embedding_backward below */
        o->matmul_backward(be, sr_act_at(ma, t->dln, (size_t)s * C), m->d_lm_head, NULL,
                           t->logits, lnf, m->lm_head, n, C, V);
    }
    o->zero(be, t->dres, NC * asz);
    const void *xl = t->layers[L - 1].res2;
    if (t->temp != 1.0f) {
        /* d loss / d norm.weight = d loss / d (norm.weight / T) / T */
        o->zero(be, t->dnorm_t, (size_t)C * asz);
        o->rmsnorm_backward(be, t->dres, t->dnorm_t, t->dln, xl, t->norm_t, t->rstdf, N, C);
        float *h = sr_malloc((size_t)C * sizeof(float));
        o->download_act(be, h, t->dnorm_t, (size_t)C);
        for (int i = 0; i < C; i++) h[i] /= t->temp;
        o->upload_act(be, t->dnorm_t, h, (size_t)C);
        free(h);
        o->add(be, m->d_norm_w, m->d_norm_w, t->dnorm_t, (size_t)C);
    } else {
        o->rmsnorm_backward(be, t->dres, m->d_norm_w, t->dln, xl, m->norm_w, t->rstdf, N, C);
    }

    for (int l = L - 1; l >= 0; l--) {
        const void *x = l > 0 ? t->layers[l - 1].res2 : t->emb;
        /* checkpointing: refill the shared activation set with this layer's (the same ops on
         * the same input, so the same bits); it rewrites res2[l], which nothing reads now */
        AttnPlan plan = {.mode = ATTN_SHARED, .share = t};
        if (t->ckpt)
            qwen2_layer_forward(m, &m->layers[l], &t->layers[l], x, N, t->pos,
                                t->n_att ? &plan : NULL);
        layer_backward(m, l, x);
    }
    o->embedding_backward(be, m->d_embed, t->dres, t->ids, N, C);
    t->head_done = 0; /* a second backward of the same forward recomputes the head */
    return 0;
}

int qwen2_forward_backward(Qwen2Model *m, const int32_t *ids, const int32_t *pos,
                           const int32_t *targets, const float *weights, int N, float *loss_out,
                           float *logprob_out, SrError *err) {
    if (!targets) return sr_fail(err, "qwen2_forward_backward: targets are required");
    if (forward_impl(m, ids, pos, targets, weights, N, NULL, 0.0, loss_out, logprob_out, NULL, 1,
                     err))
        return -1;
    return qwen2_backward(m, err);
}

int qwen2_forward_backward_norm(Qwen2Model *m, const int32_t *ids, const int32_t *pos,
                                const int32_t *targets, const float *weights, int N,
                                double n_norm, float *loss_out, float *logprob_out,
                                SrError *err) {
    if (!targets) return sr_fail(err, "qwen2_forward_backward_norm: targets are required");
    if (!(n_norm > 0))
        return sr_fail(err, "qwen2_forward_backward_norm: the loss normaliser must be positive "
                       "(got %g)", n_norm);
    if (forward_impl(m, ids, pos, targets, weights, N, NULL, n_norm, loss_out, logprob_out, NULL,
                     1, err))
        return -1;
    return qwen2_backward(m, err);
}

int qwen2_backward_weights(Qwen2Model *m, const float *weights, double n_norm, SrError *err) {
    TrainActs *t = m->acts ? &((ModelActs *)m->acts)->train : NULL;
    if (!t || m->last_N <= 0 || !t->has_targets)
        return sr_fail(err, "qwen2_backward_weights: no forward pass with targets saved");
    if (!(n_norm > 0))
        return sr_fail(err, "qwen2_backward_weights: the loss normaliser must be positive "
                       "(got %g)", n_norm);
    m->be->ops->upload(m->be, t->weights, weights, (size_t)m->last_N * 4);
    t->has_weights = 1;
    t->norm = (float)n_norm;
    t->head_done = 0; /* the head's backward must use the new weights */
    return qwen2_backward(m, err);
}
