/*
 * Batched KV-cache generation. See generate.h.
 *
 * Sampling runs on host fp32 logits with the CPU reference sampler (sr_cpu_ops.sample): the
 * logits of B rows are small next to a forward pass, and one sampler means one RNG
 * convention across backends. The sampler sees only the ids the tokenizer has (n_valid).
 *
 * Memory: the KV cache (B x max_seq positions), the workspace of one pass (the larger of a
 * prefill group and the B-token decode step), the host logits (B x V) and the results
 * (B x max_new_tokens ids and log-probs) are sized by generate_check_memory before the first
 * allocation. Stop strings keep only the tail of each text that a match can still end in.
 */
#include "generate.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/rng.h"

/* tokens per prefill pass (a longer prompt gets a pass of its own) */
#define GEN_PREFILL_TOKENS 4096

typedef struct SeqState {
    int live;
    int cap;
    SrBuf text;      /* the completion's last bytes (only when stop strings are set) */
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

static size_t max_stop_len(const GenConfig *g) {
    size_t L = 0;
    for (int i = 0; i < g->n_stop_strings; i++) {
        size_t l = strlen(g->stop_strings[i]);
        if (l > L) L = l;
    }
    return L;
}

/* does a stop string end inside the newest n bytes of text? */
static int hits_stop_string(const SrBuf *t, size_t n_new, const GenConfig *g) {
    for (int i = 0; i < g->n_stop_strings; i++) {
        size_t L = strlen(g->stop_strings[i]);
        if (L == 0 || L > t->n) continue;
        size_t from = t->n >= n_new + L - 1 ? t->n - (n_new + L - 1) : 0;
        for (size_t p = from; p + L <= t->n; p++)
            if (memcmp(t->p + p, g->stop_strings[i], L) == 0) return 1;
    }
    return 0;
}

/* keeps the last `keep` bytes: a later match can start no earlier */
static void keep_tail(SrBuf *t, size_t keep) {
    if (t->n <= keep) return;
    memmove(t->p, t->p + (t->n - keep), keep);
    t->n = keep;
    t->p[keep] = '\0';
}

static int prefill_budget(int max_prompt) {
    return max_prompt > GEN_PREFILL_TOKENS ? max_prompt : GEN_PREFILL_TOKENS;
}

static double gib(double bytes) { return bytes / (1024.0 * 1024.0 * 1024.0); }

int generate_check_memory(const Qwen2Model *m, int B, int max_prompt, const GenConfig *g,
                          SrError *err) {
    if (B <= 0 || max_prompt <= 0) return 0;
    long long max_new = g->max_new_tokens > 0 ? g->max_new_tokens : 0;
    long long max_seq = (long long)max_prompt + max_new;
    if (m->cfg.max_position_embeddings > 0 && max_seq > m->cfg.max_position_embeddings)
        return sr_fail(err, "a prompt of %d tokens + %lld new tokens exceeds the model's "
                            "max_position_embeddings %d", max_prompt, max_new,
                       m->cfg.max_position_embeddings);
    if (max_seq > INT_MAX)
        return sr_fail(err, "a prompt of %d tokens + %lld new tokens exceeds %d positions",
                       max_prompt, max_new, INT_MAX);
    const double V = (double)m->cfg.vocab_size, nB = (double)B;
    int n_pass = prefill_budget(max_prompt) > B ? prefill_budget(max_prompt) : B;
    /* on the backend */
    size_t kv_sz = qwen2_kv_bytes(m, B, (int)max_seq);
    double kv = kv_sz != SIZE_MAX ? (double)kv_sz
                                  : 2.0 * m->cfg.num_hidden_layers * nB * (double)max_seq *
                                        m->cfg.num_key_value_heads * m->cfg.head_dim *
                                        (double)sr_act_size(m->be);
    double work = (double)qwen2_infer_act_bytes(m, n_pass, B);
    /* on the host: logits, results (ids + log-probs), per-sequence state (ours, the
     * caller's arrays, the stop-string tails), the step's token lists */
    double logits = nB * V * 4.0;
    double results = nB * (double)(max_new + 1) * 8.0;
    double state = nB * (double)(sizeof(SeqState) + sizeof(GenResult) + 96 + 2 * max_stop_len(g));
    double lists = (double)n_pass * 16.0 + nB * 24.0;
    double host = logits + results + state + lists, device = kv + work;
    const char *hwhat = NULL, *dwhat = NULL;
    size_t hlim = sr_host_memory_limit(&hwhat);
    int on_cpu = m->be->device == SR_DEVICE_CPU;
    if (on_cpu) host += device;
    if (host > (double)hlim)
        return sr_fail(err, "a batch of %d sequences of up to %lld positions needs %.0f bytes "
                            "(%.1f GiB: %sKV cache %.1f GiB, workspace %.1f GiB, logits %.1f GiB, "
                            "results %.1f GiB), more than %s (%.1f GiB)",
                       B, max_seq, host, gib(host), on_cpu ? "" : "host part; ",
                       on_cpu ? gib(kv) : 0.0, on_cpu ? gib(work) : 0.0, gib(logits),
                       gib(results), hwhat, gib((double)hlim));
    if (!on_cpu) {
        size_t dlim = sr_backend_memory_limit(m->be, &dwhat);
        if (device > (double)dlim)
            return sr_fail(err, "a batch of %d sequences of up to %lld positions needs %.0f "
                                "bytes on the GPU (%.1f GiB: KV cache %.1f GiB, workspace %.1f GiB), "
                                "more than %s (%.1f GiB)",
                           B, max_seq, device, gib(device), gib(kv), gib(work), dwhat,
                           gib((double)dlim));
    }
    return 0;
}

int generate(Qwen2Model *m, const Tokenizer *tok, const int32_t *const *prompts,
             const int *prompt_lens, int B, const GenConfig *g, GenResult *results,
             const GenHooks *hooks, SrError *err) {
    if (B <= 0) return 0;
    GenStreamFn stream_fn = hooks ? hooks->text : NULL;
    GenDoneFn done_fn = hooks ? hooks->done : NULL;
    void *user = hooks ? hooks->user : NULL;
    if ((g->n_stop_strings > 0 || stream_fn) && !tok)
        return sr_fail(err, "generate: stop strings and streaming need a tokenizer");
    const int V = m->cfg.vocab_size;
    int n_valid = V;
    if (tok && tokenizer_vocab_size(tok) < n_valid) n_valid = tokenizer_vocab_size(tok);
    if (g->vocab_limit > 0 && g->vocab_limit < n_valid) n_valid = g->vocab_limit;
    if (n_valid < 1) return sr_fail(err, "generate: no token id can be generated");
    int max_prompt = 0;
    for (int b = 0; b < B; b++) {
        if (prompt_lens[b] < 1) return sr_fail(err, "generate: prompt %d is empty", b);
        for (int i = 0; i < prompt_lens[b]; i++)
            if (prompts[b][i] < 0 || prompts[b][i] >= V)
                return sr_fail(err, "generate: prompt %d token %d id %d is out of range [0, %d)",
                               b, i, prompts[b][i], V);
        if (prompt_lens[b] > max_prompt) max_prompt = prompt_lens[b];
    }
    int max_new = g->max_new_tokens > 0 ? g->max_new_tokens : 0;
    /* positions (max_position_embeddings) and memory, before anything is allocated */
    if (generate_check_memory(m, B, max_prompt, g, err)) return sr_fail_prefix(err, "generate");
    int max_seq = max_prompt + max_new;

    for (int b = 0; b < B; b++) memset(&results[b], 0, sizeof results[b]);
    if (max_new == 0) { /* nothing to generate: no pass at all */
        for (int b = 0; b < B; b++) {
            results[b].finish = SR_FINISH_LENGTH;
            if (done_fn && done_fn(user, b, &results[b], err)) {
                for (int i = 0; i < B; i++) gen_result_free(&results[i]);
                return -1;
            }
        }
        return 0;
    }

    const int budget = prefill_budget(max_prompt);
    const int n_ids = budget > B ? budget : B;
    const size_t keep = max_stop_len(g) > 0 ? max_stop_len(g) - 1 : 0;
    Qwen2KVCache kv;
    if (qwen2_kv_init(&kv, m, B, max_seq, err)) return -1;
    float *logits = sr_malloc((size_t)B * V * sizeof(float));
    int32_t *step_ids = sr_malloc((size_t)n_ids * sizeof(int32_t));
    int *n_new = sr_calloc((size_t)B, sizeof(int));
    uint64_t *rng = sr_malloc((size_t)B * sizeof(uint64_t));
    int32_t *sampled = sr_malloc((size_t)B * sizeof(int32_t));
    float *sampled_lp = sr_malloc((size_t)B * sizeof(float));
    SrSampling *samp = sr_malloc((size_t)B * sizeof(SrSampling)); /* the op takes one per row */
    for (int b = 0; b < B; b++) samp[b] = g->sampling;
    SeqState *st = sr_calloc((size_t)B, sizeof(SeqState));
    int rc = 0;

    for (int b = 0; b < B; b++) {
        st[b].cap = max_new;
        results[b].ids = sr_malloc((size_t)(st[b].cap + 1) * sizeof(int32_t));
        results[b].logprobs = sr_malloc((size_t)(st[b].cap + 1) * sizeof(float));
        rng[b] = sr_rng_stream(g->seed, (uint64_t)b);
        st[b].live = 1;
        if (tok) tokenizer_stream_init(&st[b].stream);
    }

    /* prefill: groups of whole prompts, up to `budget` tokens per pass */
    for (int b0 = 0; b0 < B;) {
        int b1 = b0, T = 0;
        while (b1 < B && (b1 == b0 || T + prompt_lens[b1] <= budget)) T += prompt_lens[b1++];
        memset(n_new, 0, (size_t)B * sizeof(int));
        size_t off = 0;
        for (int b = b0; b < b1; b++) {
            memcpy(step_ids + off, prompts[b], (size_t)prompt_lens[b] * sizeof(int32_t));
            off += (size_t)prompt_lens[b];
            n_new[b] = prompt_lens[b];
        }
        if (qwen2_kv_step(m, &kv, step_ids, n_new, logits, err)) {
            rc = -1;
            goto done;
        }
        b0 = b1;
    }

    for (;;) {
        /* sample one token for every live sequence, a run of consecutive live rows per call;
         * each row has its own RNG stream, so batch composition does not change the draw */
        for (int b = 0; b < B;) {
            if (!st[b].live) {
                b++;
                continue;
            }
            int e = b + 1;
            while (e < B && st[e].live) e++;
            sr_cpu_ops.sample(m->be, sampled + b, sampled_lp + b, logits + (size_t)b * V, e - b, V,
                              n_valid, samp + b, rng + b);
            b = e;
        }
        for (int b = 0; b < B; b++) n_new[b] = 0;
        int n_step = 0;
        for (int b = 0; b < B; b++) {
            if (!st[b].live) continue;
            int32_t id = sampled[b];
            GenResult *res = &results[b];
            res->ids[res->n] = id;
            res->logprobs[res->n] = sampled_lp[b];
            res->n++;
            if (tok && (stream_fn || g->n_stop_strings > 0)) {
                char *bytes = NULL;
                size_t nb = 0;
                if (tokenizer_stream_put(tok, &st[b].stream, id, &bytes, &nb, err)) {
                    rc = -1;
                    goto done;
                }
                if (nb && stream_fn) stream_fn(user, b, bytes, nb);
                if (g->n_stop_strings > 0 && nb) {
                    keep_tail(&st[b].text, keep);
                    sr_buf_add(&st[b].text, bytes, nb);
                    if (hits_stop_string(&st[b].text, nb, g)) {
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
                continue;
            }
            if (tok && stream_fn) {
                char tail[8];
                size_t nt = tokenizer_stream_flush(&st[b].stream, tail);
                if (nt) stream_fn(user, b, tail, nt);
            }
            if (done_fn && done_fn(user, b, res, err)) {
                rc = -1;
                goto done;
            }
        }
        if (n_step == 0) break;
        if (qwen2_kv_step(m, &kv, step_ids, n_new, logits, err)) {
            rc = -1;
            goto done;
        }
    }

done:
    for (int b = 0; b < B; b++) sr_buf_free(&st[b].text);
    if (rc)
        for (int b = 0; b < B; b++) gen_result_free(&results[b]);
    free(st);
    free(sampled_lp);
    free(samp);
    free(sampled);
    free(rng);
    free(n_new);
    free(step_ids);
    free(logits);
    qwen2_kv_free(&kv, m);
    return rc;
}
