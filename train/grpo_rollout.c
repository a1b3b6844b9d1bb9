/*
 * GRPO's rollouts (see grpo_rollout.h): decoding a generation through split_generate, the
 * accounting and rewards of each completion, the loss's rows, the rollout log lines.
 */
#include "grpo_rollout.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/rng.h"

/* ---- reward functions ---------------------------------------------------------------------- */

int grpo_reward_spec_init(GrpoRewardSpec *s, const cJSON *funcs, const cJSON *weights, SrError *err) {
    memset(s, 0, sizeof *s);
    if (cJSON_IsString(funcs)) {
        s->n = 1;
    } else if (cJSON_IsArray(funcs)) {
        s->n = cJSON_GetArraySize(funcs);
    } else {
        return sr_fail(err, "reward_funcs: a reward name or a list of them");
    }
    if (s->n < 1 || s->n > GRPO_MAX_REWARDS)
        return sr_fail(err, "reward_funcs: 1 to %d functions (got %d)", GRPO_MAX_REWARDS, s->n);
    for (int i = 0; i < s->n; i++) {
        const cJSON *f = cJSON_IsString(funcs) ? funcs : cJSON_GetArrayItem(funcs, i);
        int k = cJSON_IsString(f) ? reward_kind_from_name(f->valuestring) : -1;
        if (k < 0)
            return sr_fail(err, "reward_funcs[%d]: not one of accuracy, format, tag_count, coverage, latency, "
                           "offload_budget", i);
        for (int j = 0; j < i; j++)
            if (s->kinds[j] == (RewardKind)k)
                return sr_fail(err, "reward_funcs: %s is listed twice", f->valuestring);
        s->kinds[i] = (RewardKind)k;
        s->weights[i] = 1.0;
    }
    if (weights && !cJSON_IsNull(weights)) {
        if (!cJSON_IsArray(weights) || cJSON_GetArraySize(weights) != s->n)
            return sr_fail(err, "reward_weights: a list of %d numbers (one per reward_funcs entry)", s->n);
        for (int i = 0; i < s->n; i++) {
            const cJSON *w = cJSON_GetArrayItem(weights, i);
            if (!cJSON_IsNumber(w) || !isfinite(w->valuedouble))
                return sr_fail(err, "reward_weights[%d]: a finite number", i);
            s->weights[i] = w->valuedouble;
        }
    }
    if (grpo_reward_spec_has(s, REWARD_ACCURACY)) {
        SrGradeOptions go;
        reward_accuracy_grade_options(&go);
        s->grader = sr_grader_new(&go);
    }
    return 0;
}

void grpo_reward_spec_free(GrpoRewardSpec *s) {
    if (s->grader) sr_grader_free(s->grader);
    s->grader = NULL;
}

int grpo_reward_spec_has(const GrpoRewardSpec *s, RewardKind k) {
    for (int i = 0; i < s->n; i++)
        if (s->kinds[i] == k) return 1;
    return 0;
}

/* ---- one completion ------------------------------------------------------------------------- */

uint64_t grpo_rollout_seed(uint64_t seed, long long generation) {
    /* a stream family apart from the data order's (sr_rng_stream(seed, epoch)) */
    return sr_rng_stream(seed ^ 0x6772706f726f6c6cULL, (uint64_t)generation);
}

void grpo_rollout_account(GrpoRollout *ro, SplitMode mode, int32_t open_id, int32_t close_id,
                          const LatencyTable *lat, int latency_batch) {
    RolloutAccount *a = &ro->acc;
    const SplitResult *r = &ro->r;
    if (mode == SPLIT_MODE_SPLIT) {
        memset(a, 0, sizeof *a);
        a->small_tokens = r->small_tokens;
        a->big_tokens = r->big_tokens;
        a->switches = r->switches;
        a->ctx = ro->n_prompt + r->n;
        if (r->switches > 0) {
            a->delta_big = sr_malloc((size_t)r->switches * sizeof(int));
            a->delta_small = sr_malloc((size_t)r->switches * sizeof(int));
            memcpy(a->delta_big, r->delta_big, (size_t)r->switches * sizeof(int));
            memcpy(a->delta_small, r->delta_small, (size_t)r->switches * sizeof(int));
        }
    } else {
        rollout_account_from_ids(a, ro->prompt_ids, ro->n_prompt, r->ids, r->n, open_id, close_id);
    }
    ro->offload_share = rollout_offload_share(a);
    ro->latency = lat ? latency_t_split(lat, latency_batch, a->ctx, a->small_tokens, a->big_tokens,
                                        a->switches, a->delta_big, a->delta_small)
                      : 0.0;
}

void grpo_rollout_judge(const GrpoRewardSpec *s, GrpoRollout *ro, const char *gold) {
    for (int k = 0; k < s->n; k++) {
        SrReward v = {NAN, 1};
        switch (s->kinds[k]) {
        case REWARD_ACCURACY:
            v = reward_accuracy(s->grader, ro->text, ro->text_len, gold, strlen(gold));
            break;
        case REWARD_FORMAT: v = reward_format(ro->text, ro->text_len); break;
        case REWARD_TAG_COUNT: v = reward_tag_count(ro->text, ro->text_len); break;
        case REWARD_COVERAGE: v = reward_coverage(ro->text, ro->text_len); break;
        case REWARD_LATENCY:
            if (s->latency) v = reward_latency(s->latency, s->latency_batch, &ro->acc, s->latency_penalty);
            break;
        case REWARD_OFFLOAD_BUDGET:
            v = reward_offload_budget(&ro->acc, s->offload_budget, s->offload_lambda_share,
                                      s->offload_lambda_switch);
            break;
        default: break;
        }
        ro->rewards[k] = v.none ? NAN : v.value;
    }
    grpo_combine_rewards(ro->rewards, s->weights, 1, s->n, &ro->reward);
    ro->accuracy = NAN;
    for (int k = 0; k < s->n; k++)
        if (s->kinds[k] == REWARD_ACCURACY) ro->accuracy = ro->rewards[k];
    if (!grpo_reward_spec_has(s, REWARD_ACCURACY) && s->grader) {
        SrReward v = reward_accuracy(s->grader, ro->text, ro->text_len, gold, strlen(gold));
        ro->accuracy = v.none ? NAN : v.value;
    }
}

int grpo_group_flat(const GrpoRollout *group, int G) {
    int n = 0;
    double lo = INFINITY, hi = -INFINITY;
    for (int g = 0; g < G; g++) {
        double r = group[g].reward;
        if (isnan(r)) continue;
        n++;
        if (r < lo) lo = r;
        if (r > hi) hi = r;
    }
    return n < 2 || lo == hi;
}

void grpo_rollout_free(GrpoRollout *ro) {
    split_result_free(&ro->r);
    rollout_account_free(&ro->acc);
    free(ro->text);
    memset(ro, 0, sizeof *ro);
}

/* ---- a generation --------------------------------------------------------------------------- */

static int is_stop(const SplitConfig *c, int32_t id) {
    for (int i = 0; i < c->n_stop_ids; i++)
        if (c->stop_ids[i] == id) return 1;
    return 0;
}

int grpo_rollouts_generate(const GrpoGenerate *gen, long long generation, uint64_t seed,
                           int32_t *const *prompts, const int *prompt_lens, const int *slots,
                           const int *rows, int P, GrpoRollout *out, SrError *err) {
    int G = gen->num_generations, B = P * G;
    if (B == 0) return 0;
    SplitConfig cfg = gen->cfg;
    cfg.seed = grpo_rollout_seed(seed, generation);
    const int32_t **pp = sr_malloc((size_t)B * sizeof(int32_t *));
    int *lens = sr_malloc((size_t)B * sizeof(int));
    uint64_t *streams = sr_malloc((size_t)B * sizeof(uint64_t));
    for (int p = 0; p < P; p++)
        for (int g = 0; g < G; g++) {
            int i = p * G + g;
            pp[i] = prompts[p]; /* one pointer per prompt: its KV is prefilled once */
            lens[i] = prompt_lens[p];
            streams[i] = ((uint64_t)(uint32_t)slots[p] << 32) | (uint64_t)(uint32_t)g;
            memset(&out[i], 0, sizeof out[i]);
            out[i].slot = slots[p];
            out[i].prompt_index = rows[p];
            out[i].g = g;
            out[i].prompt_ids = prompts[p];
            out[i].n_prompt = prompt_lens[p];
            out[i].advantage = 0;
        }
    SplitResult *res = sr_calloc((size_t)B, sizeof(SplitResult));
    Engine *big = cfg.mode == SPLIT_MODE_SPLIT ? gen->big : NULL;
    int rc = split_generate(gen->small, big, gen->tok, pp, lens, streams, B, &cfg, res, NULL, NULL, err);
    for (int i = 0; i < B; i++) {
        GrpoRollout *ro = &out[i];
        ro->r = res[i];
        if (rc) continue;
        const SplitResult *r = &ro->r;
        int ends = r->n > 0 && r->finish == SR_FINISH_STOP_ID && is_stop(&cfg, r->ids[r->n - 1]);
        ro->truncated = !ends;
        if (!rc && tokenizer_decode(gen->tok, r->ids, (size_t)(r->n - ends), &ro->text, &ro->text_len, err))
            rc = -1;
        grpo_rollout_account(ro, cfg.mode, cfg.open_id, cfg.close_id, gen->latency, gen->latency_batch);
    }
    free(res);
    free(pp);
    free(lens);
    free(streams);
    return rc;
}

/* ---- the loss's rows -------------------------------------------------------------------------- */

void grpo_rollouts_to_batch(GrpoRollout *ro, int n, int G, int split_mask, int sampling,
                            GrpoBatch *b) {
    memset(b, 0, sizeof *b);
    b->rows = sr_calloc((size_t)(n ? n : 1), sizeof(GrpoRow));
    b->n_rows = n;
    b->n_groups = G > 0 ? (n + G - 1) / G : 0;
    for (int i = 0; i < n; i++) {
        GrpoRow *w = &b->rows[i];
        const SplitResult *r = &ro[i].r;
        w->group = i / G;
        w->prompt_ids = (int32_t *)ro[i].prompt_ids;
        w->n_prompt = ro[i].n_prompt;
        w->completion_ids = r->ids;
        w->n_completion = r->n;
        w->reward = ro[i].reward;
        w->truncated = ro[i].truncated;
        if (split_mask && r->n > 0) {
            w->loss_mask = sr_malloc((size_t)r->n);
            grpo_split_loss_mask(r->owner, r->logprobs, r->n, w->loss_mask);
        }
        if (sampling && r->n > 0) {
            w->sampling_logp = sr_malloc((size_t)r->n * sizeof(double));
            for (int t = 0; t < r->n; t++) w->sampling_logp[t] = r->logprobs[t];
        }
    }
}

void grpo_rollout_batch_free(GrpoBatch *b) {
    for (int i = 0; i < b->n_rows; i++) {
        free(b->rows[i].loss_mask);
        free(b->rows[i].sampling_logp);
        free(b->rows[i].old_logp);
        free(b->rows[i].ref_logp);
    }
    free(b->rows);
    memset(b, 0, sizeof *b);
}

/* ---- the log ------------------------------------------------------------------------------------ */

void grpo_rollouts_jsonl(SrBuf *o, const GrpoRewardSpec *s, const GrpoRollout *ro, int n, int step,
                         char *const *ids) {
    for (int i = 0; i < n; i++) {
        const GrpoRollout *x = &ro[i];
        sr_buf_printf(o, "{\"step\": %d, \"prompt_id\": %s, \"slot\": %d, \"g\": %d, \"completion\": ", step,
                      ids[x->prompt_index], x->slot, x->g);
        sr_buf_json_string(o, x->text ? x->text : "", x->text_len);
        sr_buf_str(o, ", \"rewards\": {");
        for (int k = 0; k < s->n; k++) {
            const char *name = reward_kind_name(s->kinds[k]);
            sr_buf_str(o, k ? ", " : "");
            sr_buf_json_string(o, name, strlen(name));
            sr_buf_str(o, ": ");
            sr_buf_json_number(o, x->rewards[k]); /* NaN (none) is written as null */
        }
        sr_buf_str(o, "}, \"reward\": ");
        sr_buf_json_number(o, x->reward);
        sr_buf_str(o, ", \"advantage\": ");
        sr_buf_json_number(o, x->advantage);
        sr_buf_printf(o, ", \"truncated\": %s, \"completion_tokens\": %d, \"small_tokens\": %d, \"big_tokens\": %d, "
                         "\"switches\": %d, \"offload_share\": ",
                      x->truncated ? "true" : "false", x->r.n, x->acc.small_tokens, x->acc.big_tokens,
                      x->acc.switches);
        sr_buf_json_number(o, x->offload_share);
        sr_buf_str(o, ", \"modelled_latency\": ");
        sr_buf_json_number(o, x->latency);
        sr_buf_str(o, "}\n");
    }
}
