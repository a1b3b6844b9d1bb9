/*
 * The forced model fixture (see forced_model.h).
 */
#include "forced_model.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/safetensors.h"
#include "model/model_dir.h"

void forced_chain_init(ForcedChain *c, int32_t start) {
    memset(c, 0, sizeof *c);
    c->tail[0] = start;
    c->n_tail = 1;
}

void forced_chain_free(ForcedChain *c) {
    free(c->e);
    memset(c, 0, sizeof *c);
}

static int add_edge(ForcedChain *c, int32_t from, int32_t to, int32_t alt, SrError *err) {
    for (int i = 0; i < c->n; i++)
        if (c->e[i].from == from)
            return sr_fail(err, "forced chain: token %d already leads to %d; it cannot also lead to %d "
                           "(the chain's tokens must be distinct)", from, c->e[i].to, to);
    c->e = sr_array_reserve(c->e, &c->cap, (size_t)c->n + 1, sizeof *c->e);
    c->e[c->n++] = (ForcedEdge){from, to, alt};
    return 0;
}

int forced_chain_ids(ForcedChain *c, const int32_t *ids, int n, SrError *err) {
    for (int i = 0; i < n; i++) {
        for (int t = 0; t < c->n_tail; t++)
            if (add_edge(c, c->tail[t], ids[i], -1, err)) return -1;
        c->tail[0] = ids[i];
        c->n_tail = 1;
    }
    return 0;
}

int forced_chain_text(ForcedChain *c, const Tokenizer *tok, const char *text, SrError *err) {
    int32_t *ids = NULL;
    size_t n = 0;
    if (tokenizer_encode(tok, text, strlen(text), &ids, &n, err)) return -1;
    int rc = forced_chain_ids(c, ids, (int)n, err);
    free(ids);
    return rc;
}

int forced_chain_coin(ForcedChain *c, int32_t a, int32_t b, SrError *err) {
    if (a == b) return sr_fail(err, "forced chain: a coin needs two different ids (%d)", a);
    for (int t = 0; t < c->n_tail; t++)
        if (add_edge(c, c->tail[t], a, b, err)) return -1;
    c->tail[0] = a;
    c->tail[1] = b;
    c->n_tail = 2;
    return 0;
}

int forced_model_build(Qwen2Model *m, SrBackend *be, const ForcedChain *c, int vocab_size,
                       int max_pos, int32_t bos, int32_t eos, SrError *err) {
    for (int i = 0; i < c->n; i++) {
        const ForcedEdge *e = &c->e[i];
        if (e->from < 0 || e->from >= vocab_size || e->to < 0 || e->to >= vocab_size || e->alt >= vocab_size)
            return sr_fail(err, "forced chain: edge %d -> %d is outside the vocabulary (%d)", e->from, e->to, vocab_size);
    }
    int H = 32;
    while (H < c->n) H += 32;
    Qwen2Config cfg = {0};
    cfg.vocab_size = vocab_size;
    cfg.hidden_size = H;
    cfg.num_hidden_layers = 1;
    cfg.num_attention_heads = 4;
    cfg.num_key_value_heads = 2;
    cfg.head_dim = H / 4;
    cfg.intermediate_size = 32;
    cfg.max_position_embeddings = max_pos;
    cfg.rope_theta = 10000.0f;
    cfg.rms_norm_eps = 1e-6f;
    cfg.initializer_range = 0.02f;
    cfg.tie_word_embeddings = 0;
    cfg.bos_token_id = bos;
    cfg.eos_token_id = eos;
    snprintf(cfg.torch_dtype, sizeof cfg.torch_dtype, "float32");
    if (qwen2_build(m, &cfg, be, err)) return -1; /* every weight zero */
    float *embed = qwen2_param_ptr(m, "model.embed_tokens.weight"); /* [V, H] */
    float *head = qwen2_param_ptr(m, "lm_head.weight");             /* [V, H] */
    float *norm = qwen2_param_ptr(m, "model.norm.weight");
    if (!embed || !head || !norm) {
        qwen2_free(m);
        return sr_fail(err, "forced model: a parameter is missing");
    }
    for (int i = 0; i < H; i++) norm[i] = 1.0f;
    /* the layer norms only scale what the zero projections then drop; 1 as HF initialises */
    for (int l = 0; l < cfg.num_hidden_layers; l++) {
        char name[96];
        snprintf(name, sizeof name, "model.layers.%d.input_layernorm.weight", l);
        float *w = qwen2_param_ptr(m, name);
        for (int i = 0; w && i < H; i++) w[i] = 1.0f;
        snprintf(name, sizeof name, "model.layers.%d.post_attention_layernorm.weight", l);
        w = qwen2_param_ptr(m, name);
        for (int i = 0; w && i < H; i++) w[i] = 1.0f;
    }
    float w = FORCED_LOGIT / sqrtf((float)H);
    for (int i = 0; i < c->n; i++) {
        const ForcedEdge *e = &c->e[i];
        embed[(size_t)e->from * H + i] = 1.0f;
        head[(size_t)e->to * H + i] = w;
        if (e->alt >= 0) head[(size_t)e->alt * H + i] = w;
    }
    return 0;
}

int forced_model_write(const char *dir, const Tokenizer *tok, const ForcedChain *c, int vocab_size,
                       SrError *err) {
    if (vocab_size <= 0) vocab_size = (tokenizer_vocab_size(tok) + 63) / 64 * 64;
    SrBackend be;
    if (sr_backend_init(&be, "cpu", 0, err)) return -1;
    Qwen2Model m = {0};
    int rc = forced_model_build(&m, &be, c, vocab_size, 4096, tokenizer_bos_id(tok),
                                tokenizer_eos_id(tok), err);
    if (!rc) {
        rc = model_dir_save(&m, tok, dir, ST_F32, err);
        qwen2_free(&m);
    }
    sr_backend_free(&be);
    return rc;
}
