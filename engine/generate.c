/*
 * Generation with one model over the engine. See generate.h.
 *
 * generate() is the split decoder in mode small (engine/split.c holds the scheduler both use):
 * one engine on the model, one request per prompt with RNG stream b, each split result handed
 * over as a GenResult as its sequence finishes.
 */
#include "generate.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "engine.h"
#include "split.h"

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
    /* the KV pool has a fixed budget (sequences wait for blocks); what grows with the batch is
     * on the host: the results (ids + log-probs + owners) and the per-sequence state */
    const double nB = (double)B;
    double results = nB * (double)(max_new + 1) * 9.0;
    double state = nB * (double)(sizeof(SplitResult) + sizeof(GenResult) + 256 + 2 * max_stop_len(g)) +
                   nB * (double)max_seq * 8.0; /* the two views of each sequence */
    double host = results + state;
    double kv = (double)g->kv_bytes;
    int on_cpu = m->be->device == SR_DEVICE_CPU;
    if (on_cpu) host += kv;
    const char *hwhat = NULL, *dwhat = NULL;
    size_t hlim = sr_host_memory_limit(&hwhat);
    if (host > (double)hlim)
        return sr_fail(err, "a batch of %d sequences of up to %lld positions needs %.0f bytes "
                            "(%.1f GiB: results %.1f GiB, state %.1f GiB%s), more than %s (%.1f GiB)",
                       B, max_seq, host, gib(host), gib(results), gib(state),
                       on_cpu && kv > 0 ? ", KV pool" : "", hwhat, gib((double)hlim));
    if (!on_cpu && kv > 0) {
        size_t dlim = sr_backend_memory_limit(m->be, &dwhat);
        if (kv > (double)dlim)
            return sr_fail(err, "a KV pool of %.1f GiB is more than %s (%.1f GiB)", gib(kv), dwhat,
                           gib((double)dlim));
    }
    return 0;
}

typedef struct Handover {
    GenResult *results;
    const GenHooks *hooks;
} Handover;

/* moves a finished split result into the caller's GenResult and calls their done hook */
static int hand_over(void *user, int req, const SplitResult *r, SrError *err) {
    Handover *h = user;
    SplitResult *sr = (SplitResult *)r; /* ours: the ids and log-probs move out */
    GenResult *g = &h->results[req];
    g->ids = sr->ids;
    g->logprobs = sr->logprobs;
    g->n = sr->n;
    g->finish = sr->finish;
    sr->ids = NULL;
    sr->logprobs = NULL;
    if (!g->ids) { /* nothing generated: still a valid (empty) result */
        g->ids = sr_malloc(sizeof(int32_t));
        g->logprobs = sr_malloc(sizeof(float));
    }
    split_result_free(sr);
    if (h->hooks && h->hooks->done) return h->hooks->done(h->hooks->user, req, g, err);
    return 0;
}

static void pass_text(void *user, int req, const char *bytes, size_t n) {
    const GenHooks *h = user;
    h->text(h->user, req, bytes, n);
}

int generate(Qwen2Model *m, const Tokenizer *tok, const int32_t *const *prompts,
             const int *prompt_lens, int B, const GenConfig *g, GenResult *results,
             const GenHooks *hooks, SrError *err) {
    if (B <= 0) return 0;
    GenStreamFn stream_fn = hooks ? hooks->text : NULL;
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
    if (generate_check_memory(m, B, max_prompt, g, err)) return sr_fail_prefix(err, "generate");

    EngineOptions eo = {0};
    long long total = 0; /* every position the batch can hold at once */
    for (int b = 0; b < B; b++) total += prompt_lens[b] + (g->max_new_tokens > 0 ? g->max_new_tokens : 0);
    eo.kv_bytes = g->kv_bytes ? g->kv_bytes : engine_kv_bytes_for(m, &eo, (double)total);
    Engine *e = NULL;
    if (engine_open(&e, m, &eo, err)) return sr_fail_prefix(err, "generate");
    SplitConfig sc;
    split_config_default(&sc);
    sc.mode = SPLIT_MODE_SMALL;
    sc.max_new_tokens = g->max_new_tokens > 0 ? g->max_new_tokens : 0;
    sc.sampling = g->sampling;
    sc.seed = g->seed;
    sc.stop_ids = g->stop_ids;
    sc.n_stop_ids = g->n_stop_ids;
    sc.stop_strings = g->stop_strings;
    sc.n_stop_strings = g->n_stop_strings;
    sc.vocab_limit = n_valid;
    sc.max_batch = g->max_batch;
    if (stream_fn) {
        sc.text = pass_text;
        sc.text_user = (void *)hooks;
    }
    uint64_t *streams = sr_malloc((size_t)B * sizeof(uint64_t));
    for (int b = 0; b < B; b++) streams[b] = (uint64_t)b;
    SplitResult *sr = sr_calloc((size_t)B, sizeof(SplitResult));
    memset(results, 0, (size_t)B * sizeof *results);
    Handover h = {results, hooks};
    int rc = split_generate(e, NULL, tok, prompts, prompt_lens, streams, B, &sc, sr, hand_over,
                            &h, err);
    if (rc)
        for (int b = 0; b < B; b++) gen_result_free(&results[b]);
    for (int b = 0; b < B; b++) split_result_free(&sr[b]);
    free(sr);
    free(streams);
    engine_close(e);
    return rc;
}
