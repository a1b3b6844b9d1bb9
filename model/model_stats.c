/*
 * Chunked teacher-forced scoring on the inference workspace (see model_stats.h). The layer
 * pass is qwen2_stack_forward plus the final norm (qwen2_logits is this file's forward and
 * logits); the lm_head then runs per chunk of rows, and for log-probs the fused
 * cross_entropy op (grad_scale 0: logits untouched) works on the device.
 */
#include "model_stats.h"

#include <stdlib.h>
#include <string.h>

#include "model_internal.h"

/* The workspace does not record how many rows the last forward kept, so this only checks
 * the rows lie inside its capacity; asking for rows past the last N is the caller's bug. */
static int hidden_rows(const Qwen2Model *m, int r0, int n, SrError *err) {
    const InferActs *w = &((const ModelActs *)m->acts)->infer;
    if (!w->mem) return sr_fail(err, "qwen2_hidden: no hidden states (call qwen2_hidden_forward first)");
    if (r0 < 0 || n < 0 || r0 + n > w->cap)
        return sr_fail(err, "qwen2_hidden: rows [%d, %d) outside the kept states (%d)", r0, r0 + n, w->cap);
    return 0;
}

int qwen2_hidden_forward(Qwen2Model *m, const int32_t *ids, const int32_t *pos, int N, SrError *err) {
    return qwen2_hidden_pass(m, ids, pos, N, "qwen2_hidden_forward", err);
}

int qwen2_hidden_pass(Qwen2Model *m, const int32_t *ids, const int32_t *pos, int N,
                      const char *what, SrError *err) {
    SrBackend *be = m->be;
    const SrOps *o = be->ops;
    const Qwen2Config *c = &m->cfg;
    int C = c->hidden_size;
    if (qwen2_check_batch(m, ids, pos, N, what, err)) return -1;
    qwen2_infer_reserve(m, N);
    ModelActs *ma = m->acts;
    InferActs *w = &ma->infer;
    o->upload(be, w->ids, ids, (size_t)N * 4);
    o->upload(be, w->pos, pos, (size_t)N * 4);
    StackRun run = {.N = N, .ids = w->ids, .pos = w->pos, .emb = w->emb, .acts = &w->layer};
    const void *x = qwen2_stack_forward(m, &run);
    o->rmsnorm_forward(be, w->sel, NULL, x, m->norm_w, N, C, c->rms_norm_eps);
    return 0;
}

int qwen2_hidden_chunk(const Qwen2Model *m) {
    const InferActs *w = &((const ModelActs *)m->acts)->infer;
    return w->chunk > 0 ? w->chunk : (m->lm_chunk > 0 ? m->lm_chunk : 256);
}

int qwen2_hidden_logits(Qwen2Model *m, int r0, int n, float *logits, SrError *err) {
    if (hidden_rows(m, r0, n, err)) return -1;
    ModelActs *ma = m->acts;
    InferActs *w = &ma->infer;
    const SrOps *o = m->be->ops;
    int C = m->cfg.hidden_size, V = m->cfg.vocab_size;
    for (int s = 0; s < n; s += w->chunk) {
        int k = n - s < w->chunk ? n - s : w->chunk;
        o->matmul_forward(m->be, w->logits, sr_act_at(ma, w->sel, (size_t)(r0 + s) * C), m->lm_head,
                          NULL, k, C, V);
        o->download_act(m->be, logits + (size_t)s * V, w->logits, (size_t)k * V);
    }
    return 0;
}

int qwen2_hidden_logprob(Qwen2Model *m, int r0, int n, const int32_t *targets, float *logprob,
                         SrError *err) {
    if (hidden_rows(m, r0, n, err)) return -1;
    if (n == 0) return 0;
    int V = m->cfg.vocab_size;
    for (int i = 0; i < n; i++)
        if (targets[i] >= V)
            return sr_fail(err, "qwen2_hidden_logprob: target %d at row %d >= vocab_size %d", targets[i], r0 + i, V);
    ModelActs *ma = m->acts;
    InferActs *w = &ma->infer;
    SrBackend *be = m->be;
    const SrOps *o = be->ops;
    int C = m->cfg.hidden_size;
    int32_t *d_tgt = o->alloc(be, (size_t)w->chunk * 4);
    float *d_lp = o->alloc(be, (size_t)w->chunk * 4);
    for (int s = 0; s < n; s += w->chunk) {
        int k = n - s < w->chunk ? n - s : w->chunk;
        o->matmul_forward(be, w->logits, sr_act_at(ma, w->sel, (size_t)(r0 + s) * C), m->lm_head,
                          NULL, k, C, V);
        o->upload(be, d_tgt, targets + s, (size_t)k * 4);
        o->cross_entropy(be, d_lp, NULL, w->logits, d_tgt, NULL, 0.0f, k, V);
        o->download(be, logprob + s, d_lp, (size_t)k * 4);
    }
    o->free(be, d_lp);
    o->free(be, d_tgt);
    return 0;
}
