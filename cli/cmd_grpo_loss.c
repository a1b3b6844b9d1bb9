/*
 * splitreason grpo-loss: the GRPO loss and its gradient on one batch (train/grpo_loss.h), for
 * checks against TRL's GRPOTrainer from outside. Reads rows {"group", "prompt_ids",
 * "completion_ids", "reward", "truncated", "old_logprobs"?, "ref_logprobs"?,
 * "sampling_logprobs"?, "loss_mask"?} and prints ONE JSON object:
 *   {"loss", "advantages": [per row], "kl", "clip_ratio", "grad_norm",
 *    "grads": {HF name: L2 norm}, "metrics": {TRL's logged names: "kl", "entropy",
 *    "clip_ratio/...", "reward", "reward_std", "frac_reward_zero_std", "num_items_in_batch",
 *    "sampling/..."}}
 * clip_ratio is TRL's clip_ratio/region_mean. A number that is not one (NaN) is null.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "../train/grpo_loss.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"model", SR_OPT_STR, "null", "HF model directory: the policy", SR_REQUIRED},
    {"batch", SR_OPT_STR, "null", "JSONL rows (group, prompt_ids, completion_ids, reward, truncated, old/ref/sampling_logprobs)", SR_REQUIRED},
    {"ref_model", SR_OPT_STR, "null", "reference model directory for rows without ref_logprobs when beta != 0 (default: the policy itself, as TRL's reference before any update: KL 0)"},
    {"output", SR_OPT_STR, "null", "output file (default: stdout)"},
    {"device", SR_OPT_STR, "\"cpu\"", "cpu or cuda", SR_CHOICES("cpu", "cuda"), SR_REQUIRED},
    {"batch_tokens", SR_OPT_INT, "16384", "tokens per forward/backward pass (whole rows; the result does not depend on it)", SR_RANGE(1, 1073741824)},
    {"loss_type", SR_OPT_STR, "\"dapo\"", "loss aggregation", SR_CHOICES("grpo", "bnpo", "dr_grpo", "dapo"), SR_REQUIRED},
    {"scale_rewards", SR_OPT_JSON, "\"group\"", "advantage scaling: \"group\" std, \"batch\" std, or \"none\" (true = group, false = none)"},
    {"beta", SR_OPT_FLOAT, "0.0", "KL coefficient (0: no reference)", SR_RANGE(0, SR_INF)},
    GRPO_LOSS_CLIP_OPTIONS
    {"importance_sampling_level", SR_OPT_STR, "\"token\"", "policy ratio per token, or one per sequence (GSPO)", SR_CHOICES("token", "sequence"), SR_REQUIRED},
    {"use_bias_correction_kl", SR_OPT_BOOL, "true", "multiply the KL by the policy ratio (TRL's default)"},
    {"mask_truncated_completions", SR_OPT_BOOL, "false", "leave truncated completions out of the loss"},
    {"num_iterations", SR_OPT_INT, "1", "policy updates per batch; the rows' old_logprobs are used whenever given (else old = the policy's own)", SR_RANGE(1, 1000000)},
    {"temperature", SR_OPT_FLOAT, "1.0", "sampling temperature: log-probs are taken at it", SR_RANGE_X(0, 1000, 1, 0)},
    {"max_completion_length", SR_OPT_INT, "512", "dr_grpo's normaliser", SR_RANGE(1, 1048576)},
    {"use_vllm", SR_OPT_BOOL, "null", "false: no importance-sampling correction (TRL applies it only with vLLM)"},
    {"vllm_importance_sampling_correction", SR_OPT_BOOL, "true", "correct for the sampler's log-probs when the rows carry sampling_logprobs"},
    GRPO_LOSS_IS_OPTIONS
    {"num_generations", SR_OPT_INT, "null", "when set, every group must have this many rows", SR_RANGE(1, 1000000)},
    /* GRPOConfig keys a run's config file holds that do not change one whole step's loss: the
     * batch given is the step's whole batch, so accumulation only splits it */
    {"gradient_accumulation_steps", SR_OPT_INT, "null", "accepted from a GRPOConfig file; the batch is one whole step", SR_RANGE(1, 1000000)},
    {"steps_per_generation", SR_OPT_INT, "null", "accepted from a GRPOConfig file; the batch is one whole step", SR_RANGE(1, 1000000)},
    {"per_device_train_batch_size", SR_OPT_INT, "null", "accepted from a GRPOConfig file; no effect here", SR_RANGE(1, 1000000)},
    {"learning_rate", SR_OPT_FLOAT, "null", "accepted from a GRPOConfig file; no effect here", SR_RANGE(0, SR_INF)},
    {"seed", SR_OPT_INT, "null", "accepted from a GRPOConfig file; no effect here", SR_RANGE(0, SR_JSON_INT_MAX)},
    {"top_p", SR_OPT_FLOAT, "null", "accepted from a GRPOConfig file; no effect here", SR_RANGE(0, 1)},
    {"top_k", SR_OPT_INT, "null", "accepted from a GRPOConfig file; no effect here", SR_RANGE(-1, 1000000000)},
    {"max_prompt_length", SR_OPT_INT, "null", "accepted from a GRPOConfig file; no effect here", SR_RANGE(1, 1073741824)},
};

static void add_num(SrBuf *b, const char *key, double v, int first) {
    if (!first) sr_buf_str(b, ", ");
    sr_buf_json_string(b, key, strlen(key));
    sr_buf_str(b, ": ");
    sr_buf_json_number(b, v);
}

static void write_result(SrBuf *o, const Qwen2Model *m, const GrpoBatch *b,
                         const GrpoStepResult *r) {
    const GrpoLossResult *l = &r->loss;
    SrBackend *be = m->be;
    sr_buf_str(o, "{");
    add_num(o, "loss", l->loss, 1);
    sr_buf_str(o, ", \"advantages\": [");
    for (int i = 0; i < b->n_rows; i++) {
        if (i) sr_buf_str(o, ", ");
        sr_buf_json_number(o, r->advantages[i]);
    }
    sr_buf_str(o, "]");
    add_num(o, "kl", l->kl, 0);
    add_num(o, "clip_ratio", l->clip_region_mean, 0);
    double total = 0;
    double *norms = sr_malloc((size_t)m->n_params * sizeof(double));
    for (int p = 0; p < m->n_params; p++) {
        const ParamInfo *pi = &m->info[p];
        double ss = m->grads ? be->ops->sum_squares(be, (char *)m->grads + pi->offset * sr_act_size(be), pi->numel) : 0.0;
        norms[p] = sqrt(ss);
        total += ss;
    }
    add_num(o, "grad_norm", sqrt(total), 0);
    sr_buf_str(o, ", \"grads\": {");
    for (int p = 0; p < m->n_params; p++) add_num(o, m->info[p].name, norms[p], p == 0);
    free(norms);
    sr_buf_str(o, "}, \"metrics\": {");
    add_num(o, "kl", l->kl, 1);
    add_num(o, "entropy", l->entropy, 0);
    add_num(o, "clip_ratio/low_mean", l->clip_low_mean, 0);
    add_num(o, "clip_ratio/high_mean", l->clip_high_mean, 0);
    add_num(o, "clip_ratio/region_mean", l->clip_region_mean, 0);
    add_num(o, "clip_ratio/low_min", l->clip_low_min, 0);
    add_num(o, "clip_ratio/high_max", l->clip_high_max, 0);
    add_num(o, "reward", r->adv_stats.reward_mean, 0);
    add_num(o, "reward_std", r->adv_stats.reward_std, 0);
    add_num(o, "frac_reward_zero_std", r->adv_stats.frac_reward_zero_std, 0);
    add_num(o, "num_items_in_batch", l->num_items_in_batch, 0);
    if (l->has_is) {
        add_num(o, "sampling/sampling_logp_difference/mean", l->sampling_logp_diff_mean, 0);
        add_num(o, "sampling/sampling_logp_difference/max", l->sampling_logp_diff_max, 0);
        add_num(o, "sampling/importance_sampling_ratio/min", l->is_ratio_min, 0);
        add_num(o, "sampling/importance_sampling_ratio/mean", l->is_ratio_mean, 0);
        add_num(o, "sampling/importance_sampling_ratio/max", l->is_ratio_max, 0);
    }
    sr_buf_str(o, "}}\n");
}

/* every id inside the model's vocabulary, num_generations rows per group when given, and
 * sampling_logprobs on every row or none */
static int check_batch(const GrpoBatch *b, const Qwen2Model *m, const char *path,
                       int num_generations, SrError *err) {
    int with_sampling = 0;
    for (int i = 0; i < b->n_rows; i++) {
        const GrpoRow *r = &b->rows[i];
        for (int j = 0; j < r->n_prompt + r->n_completion; j++) {
            int32_t id = j < r->n_prompt ? r->prompt_ids[j] : r->completion_ids[j - r->n_prompt];
            if (id >= m->cfg.vocab_size)
                return sr_fail(err, "%s: row %d: token id %d is outside the model's vocabulary "
                               "(vocab_size %d)", path, i + 1, id, m->cfg.vocab_size);
        }
        with_sampling += r->sampling_logp != NULL;
    }
    if (num_generations > 0) {
        int *size = sr_calloc((size_t)b->n_groups, sizeof(int));
        for (int i = 0; i < b->n_rows; i++) size[b->rows[i].group]++;
        for (int g = 0; g < b->n_groups; g++)
            if (size[g] != num_generations) {
                int have = size[g];
                free(size);
                return sr_fail(err, "%s: group %d (in order of appearance) has %d rows, "
                               "num_generations is %d", path, g + 1, have, num_generations);
            }
        free(size);
    }
    if (with_sampling && with_sampling != b->n_rows)
        return sr_fail(err, "%s: sampling_logprobs must be given on every row or on none "
                       "(%d of %d rows have them)", path, with_sampling, b->n_rows);
    return 0;
}

/* a reference model's log-probs for the rows that have none */
static int fill_ref(GrpoBatch *b, const char *dir, const char *device, double temperature,
                    int skip_truncated, int max_tokens, SrError *err) {
    SrBackend be;
    Qwen2Model ref = {0};
    if (sr_backend_init(&be, device, 0, err)) return -1;
    int rc = qwen2_load(&ref, dir, &be, err);
    if (!rc) {
        double **lp = sr_calloc((size_t)b->n_rows, sizeof(double *));
        rc = grpo_batch_logprobs(&ref, b, temperature, skip_truncated, max_tokens, lp, err);
        for (int i = 0; i < b->n_rows; i++) {
            if (!rc && !b->rows[i].ref_logp)
                b->rows[i].ref_logp = lp[i];
            else
                free(lp[i]);
        }
        free(lp);
        qwen2_free(&ref);
    }
    sr_backend_free(&be);
    return rc ? sr_fail_prefix(err, "--ref-model") : 0;
}

static int run(SrConfig *cfg, SrError *err) {
    GrpoLossConfig c;
    grpo_loss_config_default(&c);
    if (grpo_loss_config_from_json(&c, cfg->root, err)) return -1;
    const char *batch_path = sr_config_str(cfg, "batch");
    const char *device = sr_config_str(cfg, "device");
    int max_tokens = (int)sr_config_int(cfg, "batch_tokens");
    GrpoBatch b;
    if (grpo_batch_read(&b, batch_path, err)) return -1;
    SrBackend be;
    Qwen2Model m = {0};
    int rc = sr_backend_init(&be, device, 0, err);
    if (rc) {
        grpo_batch_free(&b);
        return -1;
    }
    rc = qwen2_load(&m, sr_config_str(cfg, "model"), &be, err);
    int loaded = !rc;
    int num_gen = sr_config_has(cfg, "num_generations") ? (int)sr_config_int(cfg, "num_generations") : 0;
    if (!rc) rc = check_batch(&b, &m, batch_path, num_gen, err);
    if (!rc && c.beta != 0.0 && sr_config_has(cfg, "ref_model"))
        rc = fill_ref(&b, sr_config_str(cfg, "ref_model"), device, c.temperature,
                      c.mask_truncated_completions, max_tokens, err);
    GrpoStepResult r = {0};
    if (!rc) {
        qwen2_zero_grad(&m);
        rc = grpo_loss_backward(&m, &b, &c, max_tokens, &r, err);
    }
    if (!rc) {
        SrBuf o = {0};
        write_result(&o, &m, &b, &r);
        SrOutFile out;
        rc = sr_out_open(&out, sr_config_str(cfg, "output"), err);
        if (!rc) {
            if (fwrite(o.p, 1, o.n, out.f) != o.n) {
                sr_out_abort(&out);
                rc = sr_fail(err, "writing the result failed");
            } else {
                rc = sr_out_commit(&out, err);
            }
        }
        sr_buf_free(&o);
        sr_log("grpo-loss: %d rows, %.0f tokens in the loss, loss %.6g", b.n_rows,
               r.loss.num_items_in_batch, r.loss.loss);
    }
    free(r.advantages);
    if (loaded) qwen2_free(&m);
    sr_backend_free(&be);
    grpo_batch_free(&b);
    return rc;
}

/* the loss settings' own rules (scale_rewards' values): a bad one is a bad command line */
static int check(const SrConfig *cfg, SrError *err) {
    GrpoLossConfig c;
    grpo_loss_config_default(&c);
    return grpo_loss_config_from_json(&c, cfg->root, err);
}

const SrCommand sr_cmd_grpo_loss = {
    "grpo-loss", "the GRPO loss and gradient of one batch, as TRL's GRPOTrainer computes them",
    "splitreason grpo-loss --model DIR --batch FILE.jsonl [--config FILE] [--key value ...]",
    "Reads rows {\"group\", \"prompt_ids\", \"completion_ids\", \"reward\" (number or null),\n"
    "\"truncated\", \"old_logprobs\"?, \"ref_logprobs\"?, \"sampling_logprobs\"?, \"loss_mask\"?}\n"
    "(one optimizer step's batch; loss_mask 0 marks context the policy did not write),\n"
    "computes the advantages (group mean and std, null rewards excluded), the policy's\n"
    "log-probs at the temperature, TRL 1.16's GRPO loss (settings under GRPOConfig names) and\n"
    "its gradient, and prints one JSON object: loss, advantages, kl, clip_ratio, grad_norm,\n"
    "grads (L2 norm per parameter, HF names) and metrics (TRL's logged names).\n"
    "Without old_logprobs a row's old log-probs are the policy's own (detached); without\n"
    "ref_logprobs the reference is --ref-model, or else the policy itself.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL, check,
};
