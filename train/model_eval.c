/*
 * Teacher-forced evaluation rows (see model_eval.h): per chunk of rows, the lm_head, then the
 * fused cross-entropy op with grad_scale 0 (target log-probs; the logits stay as they are) and
 * the sampling op in greedy mode (argmax), both on the device.
 */
#include "model_eval.h"

#include <stdlib.h>

#include "model_internal.h"

int qwen2_hidden_eval(Qwen2Model *m, int r0, int n, const int32_t *targets, float *logprob,
                      int32_t *argmax, SrError *err) {
    ModelActs *ma = m->acts;
    InferActs *w = ma ? &ma->infer : NULL;
    if (!w || !w->mem) return sr_fail(err, "qwen2_hidden_eval: no hidden states (call qwen2_hidden_forward first)");
    if (r0 < 0 || n < 0 || r0 + n > w->cap)
        return sr_fail(err, "qwen2_hidden_eval: rows [%d, %d) outside the kept states (%d)", r0, r0 + n, w->cap);
    int V = m->cfg.vocab_size, C = m->cfg.hidden_size;
    if (targets)
        for (int i = 0; i < n; i++)
            if (targets[i] >= V)
                return sr_fail(err, "qwen2_hidden_eval: target %d at row %d >= vocab_size %d", targets[i], r0 + i, V);
    if (n == 0) return 0;
    SrBackend *be = m->be;
    const SrOps *o = be->ops;
    int32_t *d_tgt = NULL;
    float *d_lp = NULL;
    if (logprob && targets) {
        d_tgt = o->alloc(be, (size_t)w->chunk * 4);
        d_lp = o->alloc(be, (size_t)w->chunk * 4);
    }
    SrSampling greedy = {0.0f, 0, 1.0f};
    for (int s = 0; s < n; s += w->chunk) {
        int k = n - s < w->chunk ? n - s : w->chunk;
        o->matmul_forward(be, w->logits, sr_act_at(ma, w->sel, (size_t)(r0 + s) * C), m->lm_head,
                          NULL, k, C, V);
        if (d_tgt) {
            o->upload(be, d_tgt, targets + s, (size_t)k * 4);
            o->cross_entropy(be, d_lp, w->logits, d_tgt, NULL, 0.0f, k, V);
            o->download(be, logprob + s, d_lp, (size_t)k * 4);
        } else if (logprob) {
            for (int i = 0; i < k; i++) logprob[s + i] = 0.0f;
        }
        if (argmax) o->sample(be, argmax + s, NULL, w->logits, k, V, &greedy, NULL);
    }
    if (d_tgt) {
        o->free(be, d_lp);
        o->free(be, d_tgt);
    }
    return 0;
}
