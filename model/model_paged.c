/*
 * The layer stack over a paged KV cache (model_paged.h): the cache rows are found through
 * block tables, and every kind of token runs in one pass: a prompt's prefill, a catch-up of Δ
 * tokens, a decode step. Attention is attention_paged throughout (on the CPU a fresh prompt
 * gets the bits of attention_forward over it as one document).
 *
 * The logits rows are gathered with embedding_forward (a row gather: out[i] = res2[rows[i]]),
 * so one op call replaces a copy per sequence.
 */
#include "model_internal.h"
#include "model_paged.h"

/* x [N, C] -> the last layer's output; the stack loop, kept small so that it can fold into
 * one qwen2_stack_forward with the other modes */
/* the one layer stack (qwen2_stack_forward) with a paged attention plan */
static const void *paged_stack(Qwen2Model *m, const Qwen2PagedPass *p, InferActs *w) {
    AttnPlan plan = {.mode = ATTN_PAGED, .slot = p->slot, .seq = p->seq, .table = p->table,
                     .max_blocks = p->max_blocks, .block = p->block};
    StackRun run = {.N = p->N, .ids = p->ids, .pos = p->pos, .emb = w->emb, .acts = &w->layer,
                    .per_layer = 0, .plan = &plan, .kcache = p->kcache, .vcache = p->vcache};
    return qwen2_stack_forward(m, &run);
}

void qwen2_paged_reserve(Qwen2Model *m, int n) {
    qwen2_infer_reserve(m, n);
}

void qwen2_paged_forward(Qwen2Model *m, const Qwen2PagedPass *p) {
    SrBackend *be = m->be;
    const SrOps *o = be->ops;
    int C = m->cfg.hidden_size, V = m->cfg.vocab_size;
    SR_ASSERT(p->N > 0 && p->n_out > 0 && p->n_out <= p->N);
    qwen2_infer_reserve(m, p->N);
    InferActs *w = &((ModelActs *)m->acts)->infer;
    const void *x = paged_stack(m, p, w);
    /* final norm + lm_head on the wanted rows only; ln1 is free scratch once the stack is done */
    o->embedding_forward(be, w->sel, p->out_rows, x, p->n_out, C);
    o->rmsnorm_forward(be, w->layer.ln1, NULL, w->sel, m->norm_w, p->n_out, C,
                       m->cfg.rms_norm_eps);
    o->matmul_forward(be, p->logits, w->layer.ln1, m->lm_head, NULL, p->n_out, C, V);
}
