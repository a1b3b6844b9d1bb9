/*
 * Model construction and the API's edges: parameter table (HF names, shapes, offsets,
 * tied / untied), qwen2_init_random (HF's _init_weights: N(0, initializer_range) weights,
 * zero biases, unit norms, zero padding row; deterministic per seed), and the errors the
 * forward / backward / build report instead of crashing.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "model/model.h"

static const char *CFG_JSON =
    "{\"architectures\": [\"Qwen2ForCausalLM\"], \"model_type\": \"qwen2\","
    " \"vocab_size\": 50, \"hidden_size\": 24, \"intermediate_size\": 40,"
    " \"num_hidden_layers\": 2, \"num_attention_heads\": 6, \"num_key_value_heads\": 2,"
    " \"max_position_embeddings\": 64, \"rms_norm_eps\": 1e-6, \"rope_theta\": 10000,"
    " \"initializer_range\": 0.05, \"tie_word_embeddings\": %s, \"hidden_act\": \"silu\","
    " \"pad_token_id\": 7, \"use_sliding_window\": false}";

static int load_cfg(Qwen2Config *c, int tied) {
    char json[1024];
    snprintf(json, sizeof json, CFG_JSON, tied ? "true" : "false");
    SrError err;
    int rc = qwen2_config_from_json(c, json, "test.json", &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    return rc;
}

static float *params_host(const Qwen2Model *m) {
    float *x = malloc(m->total_numel * sizeof(float));
    m->be->ops->download_act(m->be, x, m->params, m->total_numel);
    return x;
}

static void test_table(SrBackend *be, int tied) {
    Qwen2Config c;
    CHECK(load_cfg(&c, tied) == 0);
    Qwen2Model m;
    SrError err;
    CHECK(qwen2_build(&m, &c, be, &err) == 0);
    qwen2_config_free(&c);
    CHECK(m.n_params == 1 + 12 * 2 + 1 + !tied);
    long long count = 0;
    for (int i = 0; i < m.n_params; i++) {
        count += (long long)m.info[i].numel;
        if (i > 0) CHECK(m.info[i].offset >= m.info[i - 1].offset + m.info[i - 1].numel);
        CHECK(m.info[i].offset + m.info[i].numel <= m.total_numel);
    }
    CHECK(count == qwen2_config_num_params(&m.cfg));
    const ParamInfo *q = qwen2_param(&m, "model.layers.1.self_attn.q_proj.weight");
    CHECK(q && q->ndim == 2 && q->shape[0] == 6 * 4 && q->shape[1] == 24);
    const ParamInfo *k = qwen2_param(&m, "model.layers.0.self_attn.k_proj.bias");
    CHECK(k && k->ndim == 1 && k->shape[0] == 2 * 4);
    const ParamInfo *d = qwen2_param(&m, "model.layers.0.mlp.down_proj.weight");
    CHECK(d && d->shape[0] == 24 && d->shape[1] == 40);
    CHECK((qwen2_param(&m, "lm_head.weight") != NULL) == !tied);
    CHECK(qwen2_param(&m, "model.layers.2.mlp.up_proj.weight") == NULL);
    CHECK(tied ? m.lm_head == m.embed : m.lm_head != m.embed);
    CHECK(qwen2_param_ptr(&m, "model.layers.1.self_attn.q_proj.weight") == m.layers[1].q_w);
    CHECK(qwen2_param_ptr(&m, "model.norm.weight") == m.norm_w);
    CHECK(qwen2_grad_ptr(&m, "model.norm.weight") == NULL); /* no grads yet */
    qwen2_zero_grad(&m);
    CHECK(m.grads != NULL && qwen2_grad_ptr(&m, "model.norm.weight") == m.d_norm_w);
    CHECK(qwen2_grad_ptr(&m, "model.layers.0.mlp.up_proj.weight") == m.d_layers[0].up_w);
    CHECK(tied ? m.d_lm_head == m.d_embed : m.d_lm_head != m.d_embed);

    /* init: deterministic, per-kind values, std ~ initializer_range, padding row zero */
    qwen2_init_random(&m, 123);
    float *a = params_host(&m);
    qwen2_init_random(&m, 123);
    float *b = params_host(&m);
    CHECK(memcmp(a, b, m.total_numel * sizeof(float)) == 0);
    qwen2_init_random(&m, 124);
    float *c2 = params_host(&m);
    CHECK(memcmp(a, c2, m.total_numel * sizeof(float)) != 0);
    double s2 = 0;
    size_t n = 0;
    for (int i = 0; i < m.n_params; i++) {
        const ParamInfo *p = &m.info[i];
        const float *x = a + p->offset;
        if (strstr(p->name, "norm")) {
            for (size_t j = 0; j < p->numel; j++) CHECK(x[j] == 1.0f);
        } else if (strstr(p->name, ".bias")) {
            for (size_t j = 0; j < p->numel; j++) CHECK(x[j] == 0.0f);
        } else {
            for (size_t j = 0; j < p->numel; j++) {
                s2 += (double)x[j] * x[j];
                n++;
            }
        }
    }
    double std = sqrt(s2 / (double)n);
    CHECKF(fabs(std - 0.05) < 0.05 * 0.05, "init std %.5f, expected 0.05", std);
    for (int j = 0; j < 24; j++) CHECK(a[7 * 24 + j] == 0.0f);       /* pad_token_id row */
    CHECK(a[6 * 24] != 0.0f && a[8 * 24] != 0.0f);
    /* two tensors of the same shape get different streams */
    const ParamInfo *g0 = qwen2_param(&m, "model.layers.0.mlp.gate_proj.weight");
    const ParamInfo *u0 = qwen2_param(&m, "model.layers.0.mlp.up_proj.weight");
    CHECK(memcmp(a + g0->offset, a + u0->offset, g0->numel * sizeof(float)) != 0);
    free(a);
    free(b);
    free(c2);

    /* bad calls report one-line errors */
    int32_t ids[4] = {1, 2, 3, 4}, pos[4] = {0, 1, 2, 3}, tg[4] = {2, 3, 4, -1};
    float loss;
    CHECK(qwen2_backward(&m, &err) == -1 && strstr(err.msg, "forward"));
    int32_t bad_ids[4] = {1, 50, 3, 4};
    CHECK(qwen2_forward(&m, bad_ids, pos, tg, NULL, 4, &loss, NULL, &err) == -1);
    CHECK(strstr(err.msg, "ids[1] = 50") != NULL);
    int32_t bad_pos[4] = {0, 1, 3, 4};
    CHECK(qwen2_forward(&m, ids, bad_pos, tg, NULL, 4, &loss, NULL, &err) == -1);
    CHECK(strstr(err.msg, "pos[2]") != NULL);
    int32_t bad_tg[4] = {2, 3, 99, -1};
    CHECK(qwen2_forward(&m, ids, pos, bad_tg, NULL, 4, &loss, NULL, &err) == -1);
    CHECK(strstr(err.msg, "targets[2]") != NULL);
    CHECK(qwen2_forward(&m, ids, pos, tg, NULL, 0, &loss, NULL, &err) == -1);
    /* no targets: forward works, backward refuses */
    CHECK(qwen2_forward(&m, ids, pos, NULL, NULL, 4, &loss, NULL, &err) == 0 && loss == 0.0f);
    CHECK(qwen2_backward(&m, &err) == -1 && strstr(err.msg, "targets"));
    /* all targets masked: loss 0, gradient 0 */
    int32_t none[4] = {-1, -1, -1, -1};
    qwen2_zero_grad(&m);
    CHECK(qwen2_forward(&m, ids, pos, none, NULL, 4, &loss, NULL, &err) == 0 && loss == 0.0f);
    CHECK(qwen2_backward(&m, &err) == 0);
    CHECK(m.be->ops->sum_squares(m.be, m.grads, m.total_numel) == 0.0);
    /* a batch longer than the activations so far grows them */
    int32_t ids2[40], pos2[40], tg2[40];
    for (int i = 0; i < 40; i++) {
        ids2[i] = i % 50;
        pos2[i] = i % 20;
        tg2[i] = (i + 1) % 50;
    }
    CHECK(qwen2_forward(&m, ids2, pos2, tg2, NULL, 40, &loss, NULL, &err) == 0);
    CHECK(m.act_capacity >= 40 && loss > 0);
    CHECK(qwen2_backward(&m, &err) == 0);
    CHECK(m.be->ops->sum_squares(m.be, m.grads, m.total_numel) > 0.0);
    qwen2_free(&m);
}

int main(void) {
    SrBackend be;
    SrError err;
    if (sr_backend_init(&be, "cpu", 0, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        return 1;
    }
    test_table(&be, 1);
    test_table(&be, 0);

    Qwen2Config c;
    CHECK(load_cfg(&c, 0) == 0);
    Qwen2Model m;
    c.num_key_value_heads = 4; /* 6 % 4 != 0 */
    CHECK(qwen2_build(&m, &c, &be, &err) == -1 && strstr(err.msg, "num_key_value_heads"));
    c.num_key_value_heads = 2;
    c.head_dim = 5;
    CHECK(qwen2_build(&m, &c, &be, &err) == -1 && strstr(err.msg, "head_dim"));
    qwen2_config_free(&c);
    sr_backend_free(&be);
    return sr_test_done();
}
