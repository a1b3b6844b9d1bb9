/*
 * Batched KV-cache generation. See generate.h.
 *
 * Sampling runs on host fp32 logits with the CPU reference sampler (sr_cpu_ops.sample): the
 * logits of B rows are small next to a forward pass, and one sampler means one RNG
 * convention across backends.
 */
#include "generate.h"

#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"

typedef struct SeqState {
    int live;
    int cap;
    char *text;      /* decoded completion so far (only when stop strings are set) */
    size_t text_len, text_cap;
    TokenizerStream stream;
} SeqState;

const char *gen_finish_name(SrFinish f) {
    switch (f) {
    case SR_FINISH_STOP_ID: return "stop";
    case SR_FINISH_STOP_STRING: return "stop_string";
    default: return "length";
    }
}

void gen_result_free(GenResult *r) {
    free(r->ids);
    free(r->logprobs);
    memset(r, 0, sizeof *r);
}

static void text_append(SeqState *s, const char *b, size_t n) {
    if (s->text_len + n + 1 > s->text_cap) {
        s->text_cap = (s->text_len + n + 1) * 2;
        s->text = sr_realloc(s->text, s->text_cap);
    }
    memcpy(s->text + s->text_len, b, n);
    s->text_len += n;
    s->text[s->text_len] = '\0';
}

/* does a stop string end inside the newest n bytes of text? */
static int hits_stop_string(const SeqState *s, size_t n_new, const GenConfig *g) {
    for (int i = 0; i < g->n_stop_strings; i++) {
        size_t L = strlen(g->stop_strings[i]);
        if (L == 0 || L > s->text_len) continue;
        size_t from = s->text_len >= n_new + L - 1 ? s->text_len - (n_new + L - 1) : 0;
        for (size_t p = from; p + L <= s->text_len; p++)
            if (memcmp(s->text + p, g->stop_strings[i], L) == 0) return 1;
    }
    return 0;
}

int generate(Qwen2Model *m, const Tokenizer *tok, const int32_t *const *prompts,
             const int *prompt_lens, int B, const GenConfig *g, GenResult *results,
             GenStreamFn stream_fn, void *user, SrError *err) {
    if (B <= 0) return 0;
    if ((g->n_stop_strings > 0 || stream_fn) && !tok)
        return sr_fail(err, "generate: stop strings and streaming need a tokenizer");
    const int V = m->cfg.vocab_size;
    int max_prompt = 0;
    for (int b = 0; b < B; b++) {
        if (prompt_lens[b] < 1) return sr_fail(err, "generate: prompt %d is empty", b);
        for (int i = 0; i < prompt_lens[b]; i++)
            if (prompts[b][i] < 0 || prompts[b][i] >= V)
                return sr_fail(err, "generate: prompt %d token %d id %d is out of range [0, %d)",
                               b, i, prompts[b][i], V);
        if (prompt_lens[b] > max_prompt) max_prompt = prompt_lens[b];
    }
    int max_seq = max_prompt + (g->max_new_tokens > 0 ? g->max_new_tokens : 0);
    if (m->cfg.max_position_embeddings > 0 && max_seq > m->cfg.max_position_embeddings)
        return sr_fail(err, "generate: prompt + max_new_tokens = %d exceeds the model's "
                            "max_position_embeddings %d", max_seq, m->cfg.max_position_embeddings);

    Qwen2KVCache kv;
    if (qwen2_kv_init(&kv, m, B, max_seq, err)) return -1;
    float *logits = sr_malloc((size_t)B * V * sizeof(float));
    float *row_logits = sr_malloc((size_t)B * V * sizeof(float));
    int32_t *step_ids = sr_malloc((size_t)(B > max_prompt ? B : max_prompt) * B * sizeof(int32_t));
    int *n_new = sr_calloc((size_t)B, sizeof(int));
    uint64_t *rng = sr_malloc((size_t)B * sizeof(uint64_t));
    int32_t *sampled = sr_malloc((size_t)B * sizeof(int32_t));
    float *sampled_lp = sr_malloc((size_t)B * sizeof(float));
    int *rows = sr_malloc((size_t)B * sizeof(int));
    SeqState *st = sr_calloc((size_t)B, sizeof(SeqState));
    int rc = 0;

    for (int b = 0; b < B; b++) {
        memset(&results[b], 0, sizeof results[b]);
        st[b].cap = g->max_new_tokens > 0 ? g->max_new_tokens : 0;
        results[b].ids = sr_malloc((size_t)(st[b].cap + 1) * sizeof(int32_t));
        results[b].logprobs = sr_malloc((size_t)(st[b].cap + 1) * sizeof(float));
        rng[b] = sr_rng_stream(g->seed, (uint64_t)b);
        st[b].live = st[b].cap > 0;
        if (tok) tokenizer_stream_init(&st[b].stream);
    }

    /* prefill: all prompts in one step */
    size_t off = 0;
    for (int b = 0; b < B; b++) {
        memcpy(step_ids + off, prompts[b], (size_t)prompt_lens[b] * sizeof(int32_t));
        off += (size_t)prompt_lens[b];
        n_new[b] = prompt_lens[b];
    }
    if (qwen2_kv_step(m, &kv, step_ids, n_new, logits, err)) {
        rc = -1;
        goto done;
    }

    for (;;) {
        /* sample one token for every live sequence */
        int R = 0;
        for (int b = 0; b < B; b++)
            if (st[b].live) {
                memcpy(row_logits + (size_t)R * V, logits + (size_t)b * V, (size_t)V * sizeof(float));
                rows[R++] = b;
            }
        if (R == 0) break;
        for (int r = 0; r < R; r++) {
            /* each row its own RNG stream, so batch composition does not change the draw */
            int b = rows[r];
            sr_cpu_ops.sample(m->be, &sampled[r], &sampled_lp[r], row_logits + (size_t)r * V, 1,
                              V, &g->sampling, &rng[b]);
        }
        for (int b = 0; b < B; b++) n_new[b] = 0;
        int n_step = 0;
        for (int r = 0; r < R; r++) {
            int b = rows[r];
            int32_t id = sampled[r];
            GenResult *res = &results[b];
            res->ids[res->n] = id;
            res->logprobs[res->n] = sampled_lp[r];
            res->n++;
            if (tok && (stream_fn || g->n_stop_strings > 0)) {
                char *bytes = NULL;
                size_t nb = 0;
                if (tokenizer_stream_put(tok, &st[b].stream, id, &bytes, &nb, err)) {
                    rc = -1;
                    goto done;
                }
                if (nb && stream_fn) stream_fn(user, b, bytes, nb);
                if (g->n_stop_strings > 0) {
                    text_append(&st[b], bytes ? bytes : "", nb);
                    if (nb && hits_stop_string(&st[b], nb, g)) {
                        res->finish = SR_FINISH_STOP_STRING;
                        st[b].live = 0;
                    }
                }
                free(bytes);
            }
            for (int s = 0; st[b].live && s < g->n_stop_ids; s++)
                if (id == g->stop_ids[s]) {
                    res->finish = SR_FINISH_STOP_ID;
                    st[b].live = 0;
                }
            if (st[b].live && res->n >= st[b].cap) {
                res->finish = SR_FINISH_LENGTH;
                st[b].live = 0;
            }
            if (st[b].live) {
                step_ids[n_step++] = id;
                n_new[b] = 1;
            } else if (tok && stream_fn) {
                char tail[8];
                size_t nt = tokenizer_stream_flush(&st[b].stream, tail);
                if (nt) stream_fn(user, b, tail, nt);
            }
        }
        if (n_step == 0) break;
        if (qwen2_kv_step(m, &kv, step_ids, n_new, logits, err)) {
            rc = -1;
            goto done;
        }
    }

done:
    for (int b = 0; b < B; b++) free(st[b].text);
    if (rc)
        for (int b = 0; b < B; b++) gen_result_free(&results[b]);
    free(st);
    free(rows);
    free(sampled_lp);
    free(sampled);
    free(rng);
    free(n_new);
    free(step_ids);
    free(row_logits);
    free(logits);
    qwen2_kv_free(&kv, m);
    return rc;
}
