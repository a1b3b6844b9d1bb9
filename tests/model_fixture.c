/* Tiny Qwen2 models for the tests. See model_fixture.h. */
#include "model_fixture.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/rng.h"

Qwen2Config sr_test_qwen2_config(int V, int C, int L, int Hq, int Hkv, int D, int I) {
    Qwen2Config c;
    memset(&c, 0, sizeof c);
    c.vocab_size = V;
    c.hidden_size = C;
    c.num_hidden_layers = L;
    c.num_attention_heads = Hq;
    c.num_key_value_heads = Hkv;
    c.head_dim = D;
    c.intermediate_size = I;
    c.max_position_embeddings = 512;
    c.rope_theta = 10000.0f;
    c.rms_norm_eps = 1e-6f;
    c.initializer_range = 0.2f;
    c.tie_word_embeddings = 0;
    c.bos_token_id = -1;
    c.eos_token_id = -1;
    snprintf(c.torch_dtype, sizeof c.torch_dtype, "float32");
    return c;
}

void sr_test_randomize(Qwen2Model *m, uint64_t seed) {
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
