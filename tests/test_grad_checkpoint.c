/*
 * Gradient checkpointing (m->grad_checkpointing): the forward keeps only each layer's input,
 * the backward recomputes the layer. On the CPU the recomputation runs the same ops on the
 * same inputs, so everything must be BIT-identical to the plain path: loss, per-token
 * log-probs and every gradient, for the fused step and for forward + backward, with packed
 * documents, per-token weights, a small lm_head chunk, and the flag flipped between calls.
 * Then the memory: the training activation allocation for both settings, for the fixture
 * models and for DeepSeek-R1-Distill-Qwen-1.5B at the paper's 16384-token packing (sizes
 * only; nothing that large is allocated).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/safetensors.h"
#include "harness.h"
#include "model/model.h"

typedef struct Run {
    float loss;
    float *logprob, *grads;
} Run;

static int32_t *read_i32(const SafeTensors *st, const char *name, int *n) {
    const StTensor *t = safetensors_find(st, name);
    SR_ASSERT(t && t->dtype == ST_I32);
    int32_t *x = malloc(t->nbytes);
    memcpy(x, t->data, t->nbytes);
    *n = (int)t->numel;
    return x;
}

/* fused: qwen2_forward_backward; else qwen2_forward then qwen2_backward */
static Run run(Qwen2Model *m, int ckpt, int fused, const int32_t *ids, const int32_t *pos,
               const int32_t *targets, const float *w, int N) {
    SrError err;
    Run r;
    r.logprob = malloc(N * sizeof(float));
    r.grads = malloc(m->total_numel * sizeof(float));
    m->grad_checkpointing = ckpt;
    qwen2_zero_grad(m);
    if (fused) {
        CHECKF(qwen2_forward_backward(m, ids, pos, targets, w, N, &r.loss, r.logprob, &err) == 0,
               "%s", err.msg);
    } else {
        CHECKF(qwen2_forward(m, ids, pos, targets, w, N, &r.loss, r.logprob, &err) == 0, "%s",
               err.msg);
        CHECKF(qwen2_backward(m, &err) == 0, "%s", err.msg);
    }
    m->be->ops->download_act(m->be, r.grads, m->grads, m->total_numel);
    return r;
}

static void run_free(Run *r) {
    free(r->logprob);
    free(r->grads);
}

static int same(const Run *a, const Run *b, const Qwen2Model *m, int N) {
    return a->loss == b->loss && memcmp(a->logprob, b->logprob, N * sizeof(float)) == 0 &&
           memcmp(a->grads, b->grads, m->total_numel * sizeof(float)) == 0;
}

static void check_model(const char *name, SrBackend *be) {
    char dir[256], path[300];
    snprintf(dir, sizeof dir, "%s", sr_test_fixture(name));
    snprintf(path, sizeof path, "%s/golden.safetensors", dir);
    SrError err;
    Qwen2Model m;
    SafeTensors st;
    if (qwen2_load(&m, dir, be, &err) || safetensors_open(&st, path, &err)) {
        fprintf(stderr, "%s\n", err.msg);
        CHECK(0);
        return;
    }
    int N, n2, n3;
    int32_t *ids = read_i32(&st, "input_ids", &N);
    int32_t *pos = read_i32(&st, "position_ids", &n2);
    int32_t *targets = read_i32(&st, "targets", &n3);
    float *w = malloc(N * sizeof(float));
    for (int i = 0; i < N; i++) w[i] = 0.25f + (float)(i % 5) * 0.3f;

    for (int fused = 0; fused < 2; fused++) {
        for (int weighted = 0; weighted < 2; weighted++) {
            const float *wp = weighted ? w : NULL;
            Run a = run(&m, 0, fused, ids, pos, targets, wp, N);
            Run b = run(&m, 1, fused, ids, pos, targets, wp, N);
            CHECKF(same(&a, &b, &m, N), "%s %s%s: checkpointed differs from plain", name,
                   fused ? "fused" : "forward+backward", weighted ? " weighted" : "");
            /* and back again: the layout switches with the flag */
            Run c = run(&m, 0, fused, ids, pos, targets, wp, N);
            CHECK(same(&a, &c, &m, N));
            double gn = 0;
            for (size_t i = 0; i < m.total_numel; i++) gn += (double)a.grads[i] * a.grads[i];
            CHECK(gn > 0); /* the comparison was of something */
            run_free(&a);
            run_free(&b);
            run_free(&c);
        }
    }
    /* small lm_head chunks, twice the batch capacity growth */
    m.lm_chunk = 5;
    Run a = run(&m, 0, 1, ids, pos, targets, NULL, N);
    Run b = run(&m, 1, 1, ids, pos, targets, NULL, N);
    CHECK(same(&a, &b, &m, N));
    run_free(&a);
    run_free(&b);
    m.lm_chunk = 256;

    m.grad_checkpointing = 0;
    size_t plain = qwen2_train_act_bytes(&m, N);
    m.grad_checkpointing = 1;
    size_t ckpt = qwen2_train_act_bytes(&m, N);
    printf("  %s (N = %d, %d layers): bit-identical; training activations %zu -> %zu bytes\n",
           name, N, m.cfg.num_hidden_layers, plain, ckpt);
    CHECK(ckpt < plain);

    free(ids);
    free(pos);
    free(targets);
    free(w);
    safetensors_close(&st);
    qwen2_free(&m);
}

/* the 1.5B model's activation bytes (no allocation: the layout is only measured) */
static void report_1p5b(void) {
    Qwen2Config cfg;
    SrError err;
    if (qwen2_config_load(&cfg, sr_test_data("r1_distill_qwen_1.5b_config/config.json"), &err)) {
        printf("  (1.5B config not available: %s)\n", err.msg);
        return;
    }
    SrBackend bf16 = {0};
    bf16.act_dtype = SR_BF16; /* only the element size is read */
    Qwen2Model m;
    memset(&m, 0, sizeof m);
    m.cfg = cfg;
    m.be = &bf16;
    m.lm_chunk = 256;
    const int N = 16384;
    m.grad_checkpointing = 0;
    size_t plain = qwen2_train_act_bytes(&m, N);
    m.grad_checkpointing = 1;
    size_t ckpt = qwen2_train_act_bytes(&m, N);
    printf("  R1-Distill-Qwen-1.5B, N = %d, bf16: training activations %.2f GiB -> %.2f GiB "
           "(%.1fx less)\n", N, plain / 1073741824.0, ckpt / 1073741824.0,
           (double)plain / (double)ckpt);
    CHECK(ckpt * 4 < plain);
    qwen2_config_free(&cfg);
}

int main(void) {
    SrBackend be;
    SrError err;
    sr_backend_init(&be, "cpu", 0, &err);
    check_model("model/A", &be);
    check_model("model/B", &be);
    report_1p5b();
    sr_backend_free(&be);
    return sr_test_done();
}
