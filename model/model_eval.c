/*
 * Teacher-forced evaluation rows (see model_eval.h): per chunk of rows, the lm_head, then the
 * fused cross-entropy op with grad_scale 0 (target log-probs; the logits stay as they are) on
 * the device, and the argmax (lowest id on ties) of the chunk's logits on the host.
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
    float *host = argmax ? sr_malloc((size_t)w->chunk * V * sizeof(float)) : NULL;
    for (int s = 0; s < n; s += w->chunk) {
        int k = n - s < w->chunk ? n - s : w->chunk;
        o->matmul_forward(be, w->logits, sr_act_at(ma, w->sel, (size_t)(r0 + s) * C), m->lm_head,
                          NULL, k, C, V);
        if (d_tgt) {
            o->upload(be, d_tgt, targets + s, (size_t)k * 4);
            o->cross_entropy(be, d_lp, NULL, w->logits, d_tgt, NULL, 0.0f, k, V);
            o->download(be, logprob + s, d_lp, (size_t)k * 4);
        } else if (logprob) {
            for (int i = 0; i < k; i++) logprob[s + i] = 0.0f;
        }
        if (argmax) {
            /* argmax on the host: the sampling op's greedy path also computes a softmax,
             * which costs as much as the cross-entropy again; a copy and a scan are cheaper
             * on the CPU (and a chunk's transfer is small next to the forward on a GPU) */
            o->download_act(be, host, w->logits, (size_t)k * V);
#pragma omp parallel for schedule(static)
            for (int i = 0; i < k; i++) {
                const float *x = host + (size_t)i * V;
                int best = 0;
                for (int j = 1; j < V; j++)
                    if (x[j] > x[best]) best = j;
                argmax[s + i] = best;
            }
        }
    }
    free(host);
    if (d_tgt) {
        o->free(be, d_lp);
        o->free(be, d_tgt);
    }
    return 0;
}
