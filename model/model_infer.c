/*
 * Inference: full logits for a batch (qwen2_logits) and decoding with a KV cache.
 *
 * Both run the layer stack of model.c on a separate workspace (model_internal.h InferActs),
 * so they never disturb the activations a pending qwen2_backward needs. All layers share one
 * set of activation buffers there: nothing is kept for a backward.
 *
 * KV cache (per layer, K and V: [B * max_seq, KVD], sequence b owns rows
 * [b*max_seq, (b+1)*max_seq)). qwen2_kv_step feeds n[b] new tokens to each sequence in two
 * phases:
 *   1. sequences whose cache is EMPTY (a prefill): their tokens are packed as documents of
 *      one stream (positions 0..n[b]-1) and run in one pass with attention_forward, whose
 *      document boundaries keep the prompts apart; kv_store writes every token's k, v.
 *   2. sequences that already hold tokens: all their new tokens in ONE pass. Sequence b's
 *      n[b] tokens take positions len[b] .. len[b]+n[b]-1 and cache rows b*max_seq + position;
 *      kv_store writes their k, v first, then attention_extend lets each attend to its
 *      sequence's rows up to itself (a catch-up of Δ tokens after the big model wrote a span
 *      costs one pass, not Δ). When every such sequence takes one token (the usual decode
 *      step) attention_decode runs instead: the same rows and, on the CPU, the same bits,
 *      but its CUDA kernel splits long caches over many SMs.
 * Only each sequence's LAST new token goes through the final norm and the lm_head.
 */
#include "model_internal.h"
#include "model_stats.h"

#include <stdlib.h>
#include <string.h>

/* the one path of full logits: the stack and the final norm, then the lm_head per chunk */
int qwen2_logits(Qwen2Model *m, const int32_t *ids, const int32_t *pos, int N, float *logits,
                 SrError *err) {
    if (qwen2_hidden_pass(m, ids, pos, N, "qwen2_logits", err)) return -1;
    return qwen2_hidden_logits(m, 0, N, logits, err);
}

/* ---- KV cache --------------------------------------------------------------------------- */

size_t qwen2_kv_bytes(const Qwen2Model *m, int B, int max_seq) {
    size_t f[] = {2, (size_t)m->cfg.num_hidden_layers, (size_t)(B > 0 ? B : 0),
                  (size_t)(max_seq > 0 ? max_seq : 0), (size_t)m->cfg.num_key_value_heads,
                  (size_t)m->cfg.head_dim, sr_act_size(m->be)};
    size_t bytes = 1;
    for (size_t i = 0; i < sizeof f / sizeof f[0]; i++)
        if (__builtin_mul_overflow(bytes, f[i], &bytes)) return SIZE_MAX; /* saturates */
    return bytes;
}

int qwen2_kv_init(Qwen2KVCache *c, const Qwen2Model *m, int B, int max_seq, SrError *err) {
    memset(c, 0, sizeof *c);
    if (B <= 0 || max_seq <= 0)
        return sr_fail(err, "qwen2_kv_init: need B > 0 and max_seq > 0 (got %d, %d)", B, max_seq);
    c->B = B;
    c->max_seq = max_seq;
    c->n_layers = m->cfg.num_hidden_layers;
    c->kvd = m->cfg.num_key_value_heads * m->cfg.head_dim;
    size_t bytes = (size_t)B * max_seq * c->kvd * sr_act_size(m->be);
    c->k = sr_calloc((size_t)c->n_layers, sizeof(void *));
    c->v = sr_calloc((size_t)c->n_layers, sizeof(void *));
    for (int l = 0; l < c->n_layers; l++) {
        c->k[l] = m->be->ops->alloc(m->be, bytes);
        c->v[l] = m->be->ops->alloc(m->be, bytes);
    }
    c->len = sr_calloc((size_t)B, sizeof(int32_t));
    return 0;
}

void qwen2_kv_free(Qwen2KVCache *c, const Qwen2Model *m) {
    for (int l = 0; c->k && l < c->n_layers; l++) {
        m->be->ops->free(m->be, c->k[l]);
        m->be->ops->free(m->be, c->v[l]);
    }
    free(c->k);
    free(c->v);
    free(c->len);
    memset(c, 0, sizeof *c);
}

/* Final norm + lm_head for the nsel rows gathered in w->sel; row j's logits go to
 * logits[dest[j] * V ..]. */
static void logits_rows(Qwen2Model *m, int nsel, const int *dest, float *logits) {
    SrBackend *be = m->be;
    const SrOps *o = be->ops;
    ModelActs *ma = m->acts;
    InferActs *w = &ma->infer;
    int C = m->cfg.hidden_size, V = m->cfg.vocab_size;
    void *normed = w->layer.ln1; /* free scratch once the stack is done */
    o->rmsnorm_forward(be, normed, NULL, w->sel, m->norm_w, nsel, C, m->cfg.rms_norm_eps);
    for (int s = 0; s < nsel; s += w->chunk) {
        int n = nsel - s < w->chunk ? nsel - s : w->chunk;
        o->matmul_forward(be, w->logits, sr_act_at(ma, normed, (size_t)s * C), m->lm_head, NULL,
                          n, C, V);
        for (int j = 0; j < n; j++)
            o->download_act(be, logits + (size_t)dest[s + j] * V,
                            sr_act_at(ma, w->logits, (size_t)j * V), (size_t)V);
    }
}

/* copies row `row` of the stack output into row j of w->sel */
static void gather_row(Qwen2Model *m, int j, int row) {
    ModelActs *ma = m->acts;
    InferActs *w = &ma->infer;
    size_t C = (size_t)m->cfg.hidden_size;
    m->be->ops->copy(m->be, sr_act_at(ma, w->sel, j * C), sr_act_at(ma, w->layer.res2, row * C),
                     C * ma->asz);
}

static const void *run_stack(Qwen2Model *m, Qwen2KVCache *c, int N, const AttnPlan *plan) {
    InferActs *w = &((ModelActs *)m->acts)->infer;
    StackRun run = {.N = N, .ids = w->ids, .pos = w->pos, .emb = w->emb, .acts = &w->layer,
                    .plan = plan, .kcache = c->k, .vcache = c->v};
    return qwen2_stack_forward(m, &run);
}

int qwen2_kv_step(Qwen2Model *m, Qwen2KVCache *c, const int32_t *ids, const int *n, float *logits,
                  SrError *err) {
    SrBackend *be = m->be;
    const SrOps *o = be->ops;
    int B = c->B, S = c->max_seq;
    int total = 0, t_fresh = 0, t_more = 0, max_more = 0;
    for (int b = 0; b < B; b++) {
        if (n[b] < 0) return sr_fail(err, "qwen2_kv_step: n[%d] = %d is negative", b, n[b]);
        if (c->len[b] + n[b] > S)
            return sr_fail(err, "qwen2_kv_step: sequence %d would hold %d tokens; the cache "
                           "holds %d per sequence (max_seq)", b, c->len[b] + n[b], S);
        if (c->len[b] + n[b] > m->cfg.max_position_embeddings)
            return sr_fail(err, "qwen2_kv_step: sequence %d would hold %d tokens, more than the "
                           "model's max_position_embeddings %d", b, c->len[b] + n[b],
                           m->cfg.max_position_embeddings);
        total += n[b];
        if (c->len[b] == 0) {
            t_fresh += n[b];
        } else {
            t_more += n[b];
            if (n[b] > max_more) max_more = n[b];
        }
    }
    if (total == 0) return 0;
    if (qwen2_check_ids(m, ids, total, "qwen2_kv_step", err)) return -1;
    int cap = t_fresh > t_more ? t_fresh : t_more;
    if (cap < B) cap = B;
    qwen2_infer_reserve(m, cap, B);
    InferActs *w = &((ModelActs *)m->acts)->infer;

    int *off = sr_malloc((size_t)B * sizeof(int));
    int32_t *len0 = sr_malloc((size_t)B * sizeof(int32_t));
    int32_t *h_ids = sr_malloc((size_t)cap * 4), *h_pos = sr_malloc((size_t)cap * 4);
    int32_t *h_slot = sr_malloc((size_t)cap * 4), *h_len = sr_malloc((size_t)B * 4);
    int *dest = sr_malloc((size_t)B * sizeof(int)), *run_b0 = sr_malloc((size_t)B * sizeof(int));
    int *run_n = sr_malloc((size_t)B * sizeof(int));
    for (int b = 0, acc = 0; b < B; b++) {
        off[b] = acc;
        acc += n[b];
        len0[b] = c->len[b];
    }

    /* phase 1: prefill of the sequences with an empty cache, as packed documents */
    if (t_fresh > 0) {
        int T = 0, nsel = 0;
        for (int b = 0; b < B; b++) {
            if (len0[b] != 0 || n[b] == 0) continue;
            for (int i = 0; i < n[b]; i++, T++) {
                h_ids[T] = ids[off[b] + i];
                h_pos[T] = i;
                h_slot[T] = b * S + i;
            }
            dest[nsel++] = b;
        }
        o->upload(be, w->ids, h_ids, (size_t)T * 4);
        o->upload(be, w->pos, h_pos, (size_t)T * 4);
        o->upload(be, w->slot, h_slot, (size_t)T * 4);
        AttnPlan plan = {.mode = ATTN_PACKED, .slot = w->slot, .max_seq = S};
        run_stack(m, c, T, &plan);
        for (int j = 0, row = 0; j < nsel; j++) {
            row += n[dest[j]];
            gather_row(m, j, row - 1);
        }
        logits_rows(m, nsel, dest, logits);
        for (int j = 0; j < nsel; j++) c->len[dest[j]] = n[dest[j]];
    }

    /* phase 2: every new token of the sequences that already had a cache, in one pass */
    if (t_more > 0) {
        int Na = 0, n_runs = 0, nsel = 0;
        for (int b = 0; b < B; b++) {
            h_len[b] = 1; /* rows of sequences without a token here are not read */
            if (len0[b] == 0 || n[b] == 0) continue;
            for (int i = 0; i < n[b]; i++, Na++) {
                h_ids[Na] = ids[off[b] + i];
                h_pos[Na] = len0[b] + i;
                h_slot[Na] = b * S + len0[b] + i;
            }
            /* decode only (n[b] = 1): the cache length includes the new token, stored before
             * attending; runs of consecutive sequences share one attention_decode call */
            h_len[b] = len0[b] + 1;
            if (n_runs > 0 && run_b0[n_runs - 1] + run_n[n_runs - 1] == b) {
                run_n[n_runs - 1]++;
            } else {
                run_b0[n_runs] = b;
                run_n[n_runs++] = 1;
            }
        }
        o->upload(be, w->ids, h_ids, (size_t)Na * 4);
        o->upload(be, w->pos, h_pos, (size_t)Na * 4);
        o->upload(be, w->slot, h_slot, (size_t)Na * 4);
        AttnPlan plan = {.mode = ATTN_EXTEND, .slot = w->slot, .max_seq = S};
        if (max_more == 1) {
            o->upload(be, w->len, h_len, (size_t)B * 4);
            plan = (AttnPlan){.mode = ATTN_DECODE, .slot = w->slot, .len = w->len, .max_seq = S,
                              .n_runs = n_runs, .run_b0 = run_b0, .run_n = run_n};
        }
        run_stack(m, c, Na, &plan);
        for (int b = 0, row = 0; b < B; b++) {
            if (len0[b] == 0 || n[b] == 0) continue;
            row += n[b];
            gather_row(m, nsel, row - 1); /* the sequence's last new token */
            dest[nsel++] = b;
            c->len[b] += n[b];
        }
        logits_rows(m, nsel, dest, logits);
    }

    free(off);
    free(len0);
    free(h_ids);
    free(h_pos);
    free(h_slot);
    free(h_len);
    free(dest);
    free(run_b0);
    free(run_n);
    return 0;
}
