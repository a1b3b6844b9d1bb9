/*
 * The GRPO loss on the host (see grpo_loss.h for the formulas and their source).
 *
 * Gradients are written out by hand, token by token, following torch's autograd for each
 * operation TRL uses: clamp passes the gradient inside [min, max] (bounds included), min()
 * splits it in halves on a tie (the on-policy case: c1 = c2 = 1), the importance-sampling
 * ratio and the old log-probs are constants (computed under no_grad / detached).
 */
#include "grpo_loss.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/jsonl.h"

static const char *const LOSS_NAMES[] = {"grpo", "bnpo", "dr_grpo", "dapo", NULL};
static const char *const SCALE_NAMES[] = {"group", "batch", "none", NULL};
static const char *const LEVEL_NAMES[] = {"token", "sequence", NULL};
static const char *const VIS_NAMES[] = {"token_truncate", "token_mask", "sequence_truncate",
                                        "sequence_mask", NULL};

static int name_index(const char *const *names, const char *s) {
    for (int i = 0; s && names[i]; i++)
        if (strcmp(names[i], s) == 0) return i;
    return -1;
}
int grpo_loss_type_from_name(const char *s) { return name_index(LOSS_NAMES, s); }
int grpo_scale_from_name(const char *s) { return name_index(SCALE_NAMES, s); }
int grpo_is_level_from_name(const char *s) { return name_index(LEVEL_NAMES, s); }
int grpo_vis_mode_from_name(const char *s) { return name_index(VIS_NAMES, s); }

void grpo_loss_config_default(GrpoLossConfig *c) {
    memset(c, 0, sizeof *c);
    c->loss_type = GRPO_LOSS_DAPO;
    c->scale_rewards = GRPO_SCALE_GROUP;
    c->beta = 0.0;
    c->epsilon = 0.2;
    c->epsilon_high = NAN;
    c->delta = NAN;
    c->importance_sampling_level = GRPO_IS_TOKEN;
    c->use_bias_correction_kl = 1;
    c->mask_truncated_completions = 0;
    c->max_completion_length = 512;
    c->temperature = 1.0;
    c->vllm_importance_sampling_correction = 1;
    c->vllm_importance_sampling_mode = GRPO_VIS_SEQUENCE_MASK;
    c->vllm_importance_sampling_clip_min = NAN;
    c->vllm_importance_sampling_clip_max = 3.0;
}

static int get_num(const cJSON *o, const char *key, int nullable, double *out, SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    if (nullable && cJSON_IsNull(v)) {
        *out = NAN;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble))
        return sr_fail(err, "%s: must be a finite number%s", key, nullable ? " or null" : "");
    *out = v->valuedouble;
    return 0;
}
static int get_bool(const cJSON *o, const char *key, int *out, SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) return sr_fail(err, "%s: must be true or false", key);
    *out = cJSON_IsTrue(v);
    return 0;
}
static int get_choice(const cJSON *o, const char *key, const char *const *names, int *out,
                      SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) return 0;
    int i = cJSON_IsString(v) ? name_index(names, v->valuestring) : -1;
    if (i < 0) {
        char list[200] = "";
        for (int k = 0; names[k]; k++)
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", k ? ", " : "", names[k]);
        return sr_fail(err, "%s: must be one of %s", key, list);
    }
    *out = i;
    return 0;
}

int grpo_loss_config_from_json(GrpoLossConfig *c, const cJSON *o, SrError *err) {
    int lt = (int)c->loss_type, sr = (int)c->scale_rewards, lv = (int)c->importance_sampling_level;
    int vm = (int)c->vllm_importance_sampling_mode;
    double mcl = c->max_completion_length;
    const cJSON *srv = cJSON_GetObjectItemCaseSensitive(o, "scale_rewards");
    if (cJSON_IsBool(srv)) /* GRPOConfig: True is "group", False is "none" */
        sr = cJSON_IsTrue(srv) ? GRPO_SCALE_GROUP : GRPO_SCALE_NONE;
    else if (get_choice(o, "scale_rewards", SCALE_NAMES, &sr, err))
        return sr_fail(err, "scale_rewards: must be one of group, batch, none (or true, false)");
    if (get_choice(o, "loss_type", LOSS_NAMES, &lt, err) ||
        get_choice(o, "importance_sampling_level", LEVEL_NAMES, &lv, err) ||
        get_choice(o, "vllm_importance_sampling_mode", VIS_NAMES, &vm, err) ||
        get_num(o, "beta", 0, &c->beta, err) || get_num(o, "epsilon", 0, &c->epsilon, err) ||
        get_num(o, "epsilon_high", 1, &c->epsilon_high, err) ||
        get_num(o, "delta", 1, &c->delta, err) ||
        get_num(o, "temperature", 0, &c->temperature, err) ||
        get_num(o, "max_completion_length", 0, &mcl, err) ||
        get_num(o, "vllm_importance_sampling_clip_min", 1, &c->vllm_importance_sampling_clip_min, err) ||
        get_num(o, "vllm_importance_sampling_clip_max", 1, &c->vllm_importance_sampling_clip_max, err) ||
        get_bool(o, "use_bias_correction_kl", &c->use_bias_correction_kl, err) ||
        get_bool(o, "mask_truncated_completions", &c->mask_truncated_completions, err) ||
        get_bool(o, "vllm_importance_sampling_correction", &c->vllm_importance_sampling_correction, err))
        return -1;
    /* TRL corrects for the sampler only with vLLM: use_vllm false turns the correction off */
    const cJSON *uv = cJSON_GetObjectItemCaseSensitive(o, "use_vllm");
    if (uv && !cJSON_IsNull(uv) && !cJSON_IsBool(uv)) return sr_fail(err, "use_vllm: must be true or false");
    if (cJSON_IsFalse(uv)) c->vllm_importance_sampling_correction = 0;
    if (!(c->temperature > 0)) return sr_fail(err, "temperature: must be > 0");
    if (mcl != floor(mcl) || mcl < 1 || mcl > 1e9)
        return sr_fail(err, "max_completion_length: must be a whole number >= 1");
    c->loss_type = (GrpoLossType)lt;
    c->scale_rewards = (GrpoScale)sr;
    c->importance_sampling_level = (GrpoIsLevel)lv;
    c->vllm_importance_sampling_mode = (GrpoVisMode)vm;
    c->max_completion_length = (int)mcl;
    return 0;
}

/* ---- advantages -------------------------------------------------------------------------- */

/* torch.nanmean and TRL's nanstd (Bessel-corrected, NaN below two values) over x[idx[0..n)] */
static double nanmean_of(const double *x, const int *idx, int n) {
    double s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[idx[i]])) s += x[idx[i]], k++;
    return k ? s / k : NAN;
}
static double nanstd_of(const double *x, const int *idx, int n) {
    double mean = nanmean_of(x, idx, n), s = 0;
    int k = 0;
    for (int i = 0; i < n; i++)
        if (!isnan(x[idx[i]])) s += (x[idx[i]] - mean) * (x[idx[i]] - mean), k++;
    if (k <= 1) return NAN;
    return sqrt(s / k * ((double)k / (k - 1)));
}

void grpo_advantages(const double *rewards, const int *group, int n, GrpoScale scale,
                     double *adv, GrpoAdvStats *st) {
    int n_groups = 0;
    for (int i = 0; i < n; i++)
        if (group[i] + 1 > n_groups) n_groups = group[i] + 1;
    int *idx = sr_malloc((size_t)(n > 0 ? n : 1) * sizeof(int));
    double *mean = sr_calloc((size_t)n_groups + 1, sizeof(double));
    double *std = sr_calloc((size_t)n_groups + 1, sizeof(double));
    for (int g = 0; g < n_groups; g++) {
        int k = 0;
        for (int i = 0; i < n; i++)
            if (group[i] == g) idx[k++] = i;
        mean[g] = nanmean_of(rewards, idx, k);
        /* TRL: num_generations == 1 gives std 0, not nanstd's NaN */
        std[g] = k > 1 ? nanstd_of(rewards, idx, k) : 0.0;
    }
    for (int i = 0; i < n; i++) idx[i] = i;
    double batch_std = n > 1 ? nanstd_of(rewards, idx, n) : 0.0;
    int zero_std = 0;
    for (int i = 0; i < n; i++) {
        double s = scale == GRPO_SCALE_BATCH ? batch_std : std[group[i]];
        double a = rewards[i] - mean[group[i]];
        if (scale != GRPO_SCALE_NONE) a /= s + 1e-4;
        adv[i] = isnan(a) ? 0.0 : a; /* "none" rewards carry no signal */
        zero_std += fabs(s) <= 1e-8; /* torch.isclose(std, 0); NaN is not close */
    }
    if (st) {
        st->reward_mean = nanmean_of(rewards, idx, n);
        st->reward_std = nanstd_of(rewards, idx, n);
        st->frac_reward_zero_std = n ? (double)zero_std / n : 0.0;
    }
    free(idx);
    free(mean);
    free(std);
}

void grpo_combine_rewards(const double *per_func, const double *weights, int n, int k_funcs,
                          double *out) {
    for (int i = 0; i < n; i++) {
        double s = 0;
        int any = 0;
        for (int k = 0; k < k_funcs; k++) {
            double r = per_func[(size_t)i * k_funcs + k];
            if (isnan(r)) continue;
            s += weights[k] * r, any = 1;
        }
        out[i] = any ? s : NAN;
    }
}

/* ---- the loss ----------------------------------------------------------------------------- */

/* The importance-sampling ratio between the trainer's old log-probs and the sampler's, per
 * token (isr[t]) of one sequence; a constant of the loss. */
/* 1 if token t of a row is in the loss: the row is (not a masked truncated one) and the token
 * is the policy's own (TRL's completion_mask * tool_mask) */
static int tok_in(const GrpoSeq *s, int row_in, int t) {
    return row_in && (!s->mask || s->mask[t]);
}

static void is_ratio(const GrpoLossConfig *c, const GrpoSeq *s, int mask, double *isr) {
    int seq = c->vllm_importance_sampling_mode == GRPO_VIS_SEQUENCE_TRUNCATE ||
              c->vllm_importance_sampling_mode == GRPO_VIS_SEQUENCE_MASK;
    int trunc = c->vllm_importance_sampling_mode == GRPO_VIS_TOKEN_TRUNCATE ||
                c->vllm_importance_sampling_mode == GRPO_VIS_SEQUENCE_TRUNCATE;
    double lo = c->vllm_importance_sampling_clip_min, hi = c->vllm_importance_sampling_clip_max;
    double sum = 0;
    for (int t = 0; t < s->n; t++) {
        double old = s->old_logp ? s->old_logp[t] : s->logp[t];
        double d = (old - s->sampling_logp[t]) * tok_in(s, mask, t);
        isr[t] = isnan(d) ? 0.0 : d; /* an unknown sampler log-prob: no correction */
        sum += isr[t];
    }
    for (int t = 0; t < s->n; t++) {
        double r = exp(seq ? sum : isr[t]);
        if (trunc) {
            if (!isnan(lo) && r < lo) r = lo;
            if (!isnan(hi) && r > hi) r = hi;
        } else if ((!isnan(lo) && r < lo) || (!isnan(hi) && r > hi)) {
            r = 0.0;
        }
        isr[t] = r;
    }
}

void grpo_loss_totals(const GrpoLossConfig *c, const GrpoSeq *seqs, int B, GrpoTotals *t) {
    t->n_seqs = B;
    t->num_items = 0;
    for (int b = 0; b < B; b++) {
        int row = !(c->mask_truncated_completions && seqs[b].truncated);
        for (int k = 0; k < seqs[b].n; k++) t->num_items += tok_in(&seqs[b], row, k);
    }
}

void grpo_loss_begin(GrpoLossResult *res) {
    memset(res, 0, sizeof *res);
    res->clip_low_min = res->clip_high_max = NAN;
    res->acc.is_min = INFINITY;
    res->acc.is_max = -INFINITY;
}

int grpo_loss_part(const GrpoLossConfig *c, const GrpoSeq *seqs, int B, const GrpoTotals *tot,
                   double *dloss, GrpoLossResult *res, SrError *err) {
    if (c->loss_type == GRPO_LOSS_DR_GRPO && c->max_completion_length <= 0)
        return sr_fail(err, "grpo_loss: dr_grpo needs max_completion_length > 0");
    if (tot->n_seqs <= 0) return sr_fail(err, "grpo_loss: empty batch");
    double eps_lo = c->epsilon;
    double eps_hi = isnan(c->epsilon_high) ? c->epsilon : c->epsilon_high;
    double lo = 1.0 - eps_lo, hi = 1.0 + eps_hi;
    int seq_level = c->importance_sampling_level == GRPO_IS_SEQUENCE;
    int use_is = c->vllm_importance_sampling_correction;
    for (int b = 0; b < B; b++) use_is = use_is && seqs[b].sampling_logp;
    res->has_is = use_is;
    double items = tot->num_items;
    res->num_items_in_batch = items;

    size_t n_tok = 0, max_n = 1;
    for (int b = 0; b < B; b++) {
        n_tok += (size_t)seqs[b].n;
        if ((size_t)seqs[b].n > max_n) max_n = (size_t)seqs[b].n;
    }
    memset(dloss, 0, n_tok * sizeof(double));
    double *isr = sr_malloc(max_n * sizeof(double));

    GrpoLossSums *a = &res->acc;
    double loss = 0, kl_sum = 0;
    double low_sum = 0, high_sum = 0, region_sum = 0, count = 0;
    double low_min = res->clip_low_min, high_max = res->clip_high_max;
    double is_min = a->is_min, is_max = a->is_max, is_sum = 0, is_n = 0;
    double diff_sum = 0, diff_max = a->diff_max, diff_n = 0;
    size_t off = 0;
    for (int b = 0; b < B; b++) {
        const GrpoSeq *s = &seqs[b];
        double *g = dloss + off;
        off += (size_t)s->n;
        int mask = !(c->mask_truncated_completions && s->truncated);
        double nb = 0;
        for (int t = 0; t < s->n; t++) nb += tok_in(s, mask, t);
        double nb1 = nb > 1 ? nb : 1;
        double A = s->advantage;

        /* the aggregation's weight of every token of this row */
        double w = 0;
        switch (c->loss_type) {
        case GRPO_LOSS_GRPO: w = 1.0 / nb1 / tot->n_seqs; break;
        case GRPO_LOSS_BNPO:
        case GRPO_LOSS_DAPO: w = 1.0 / (items > 1 ? items : 1); break;
        case GRPO_LOSS_DR_GRPO: w = 1.0 / ((double)tot->n_seqs * c->max_completion_length); break;
        }
        w *= mask;

        if (use_is) {
            is_ratio(c, s, mask, isr);
            int seq_is = c->vllm_importance_sampling_mode >= GRPO_VIS_SEQUENCE_TRUNCATE;
            for (int t = 0; t < s->n; t++) {
                int mt = tok_in(s, mask, t);
                if (mt) {
                    double old = s->old_logp ? s->old_logp[t] : s->logp[t];
                    double d = fabs(old - s->sampling_logp[t]);
                    if (!isnan(d)) {
                        diff_sum += d, diff_n++;
                        if (d > diff_max) diff_max = d;
                    }
                }
                if ((seq_is && t == 0) || (!seq_is && mt)) {
                    if (isr[t] < is_min) is_min = isr[t];
                    if (isr[t] > is_max) is_max = isr[t];
                    is_sum += isr[t], is_n++;
                }
            }
            if (seq_is && s->n == 0) { /* a (B, 1) ratio exists for an empty row too: exp(0) */
                double r = 1.0;
                if (c->vllm_importance_sampling_mode == GRPO_VIS_SEQUENCE_TRUNCATE) {
                    if (!isnan(c->vllm_importance_sampling_clip_min) &&
                        r < c->vllm_importance_sampling_clip_min)
                        r = c->vllm_importance_sampling_clip_min;
                    if (!isnan(c->vllm_importance_sampling_clip_max) &&
                        r > c->vllm_importance_sampling_clip_max)
                        r = c->vllm_importance_sampling_clip_max;
                } else if ((!isnan(c->vllm_importance_sampling_clip_min) &&
                            r < c->vllm_importance_sampling_clip_min) ||
                           (!isnan(c->vllm_importance_sampling_clip_max) &&
                            r > c->vllm_importance_sampling_clip_max)) {
                    r = 0.0;
                }
                if (r < is_min) is_min = r;
                if (r > is_max) is_max = r;
                is_sum += r, is_n++;
            }
        } else {
            for (int t = 0; t < s->n; t++) isr[t] = 1.0;
        }

        /* sequence level: one log-weight, the masked mean of the log-ratios */
        double lw_seq = 0;
        if (seq_level) {
            for (int t = 0; t < s->n; t++)
                lw_seq += (s->logp[t] - (s->old_logp ? s->old_logp[t] : s->logp[t])) * tok_in(s, mask, t);
            lw_seq /= nb1;
        }
        double dlw_seq = 0; /* d loss / d lw_seq, gathered over the row's tokens */
        double row_low = 0, row_high = 0;
        /* per token, or once for the row at sequence level (the row's clip flags) */
        for (int t = 0; t < s->n || (seq_level && t == 0); t++) {
            int tok = t < s->n;
            double mt = tok ? tok_in(s, mask, t) : 0;
            double lp = tok ? s->logp[t] : 0;
            double old = tok && s->old_logp ? s->old_logp[t] : lp;
            double lw = seq_level ? lw_seq : lp - old;
            double c1 = exp(lw);
            double c2 = c1 < lo ? lo : c1 > hi ? hi : c1;
            double in2 = c1 >= lo && c1 <= hi;
            double c1d = c1, dc1d = 1.0;
            if (!isnan(c->delta) && c1 > c->delta) c1d = c->delta, dc1d = 0.0;
            double l1 = c1d * A, l2 = c2 * A;
            double g1 = dc1d * A, g2 = in2 * A;
            double pol = -(l1 < l2 ? l1 : l2);
            double dpol_dc1 = -(l1 < l2 ? g1 : l2 < l1 ? g2 : 0.5 * (g1 + g2));
            int is_low = c1d < lo && A < 0, is_high = c1d > hi && A > 0;
            if (!seq_level) {
                low_sum += is_low * mt, high_sum += is_high * mt;
                region_sum += (is_low || is_high) * mt;
                row_low += is_low * mt, row_high += is_high * mt;
            } else if (t == 0) {
                low_sum += is_low, high_sum += is_high, region_sum += is_low || is_high;
                row_low = is_low, row_high = is_high;
            }
            if (!tok) break;

            double kl = 0, dkl = 0; /* k3 and d k3 / d lp; the reference itself gives 0, 0 */
            if (s->ref_logp && c->beta != 0.0) { /* beta 0: TRL has no reference at all */
                double d = s->ref_logp[t] - lp;
                kl = exp(d) - d - 1.0;
                dkl = 1.0 - exp(d);
            }
            double klv = kl, dkl_dlp = dkl, dkl_dc1 = 0;
            if (c->use_bias_correction_kl) klv = kl * c1, dkl_dlp = dkl * c1, dkl_dc1 = kl;
            kl_sum += klv * mt;

            double wt = w * mt;
            loss += wt * (pol * isr[t] + c->beta * klv);
            double dc1 = wt * (dpol_dc1 * isr[t] + c->beta * dkl_dc1); /* d loss / d c1 */
            g[t] += wt * c->beta * dkl_dlp;
            if (seq_level)
                dlw_seq += dc1 * c1;
            else
                g[t] += dc1 * c1;
        }
        if (seq_level)
            for (int t = 0; t < s->n; t++) g[t] += dlw_seq * tok_in(s, mask, t) / nb1;
        /* masked_seq_mean: per row; NaN for a row with no token in the loss */
        double rl = seq_level ? row_low : (nb > 0 ? row_low / nb : NAN);
        double rh = seq_level ? row_high : (nb > 0 ? row_high / nb : NAN);
        if (!isnan(rl) && (isnan(low_min) || rl < low_min)) low_min = rl;
        if (!isnan(rh) && (isnan(high_max) || rh > high_max)) high_max = rh;
        count += seq_level ? 1 : nb;
    }
    free(isr);
    res->loss += loss;
    a->kl_sum += kl_sum;
    a->low_sum += low_sum, a->high_sum += high_sum, a->region_sum += region_sum;
    a->count += count;
    res->clip_low_min = low_min;
    res->clip_high_max = high_max;
    a->is_min = is_min, a->is_max = is_max, a->is_sum += is_sum, a->is_n += is_n;
    a->diff_sum += diff_sum, a->diff_max = diff_max, a->diff_n += diff_n;
    return 0;
}

void grpo_loss_finish(GrpoLossResult *res) {
    GrpoLossSums *a = &res->acc;
    double items1 = res->num_items_in_batch > 1 ? res->num_items_in_batch : 1;
    double count1 = a->count > 1 ? a->count : 1;
    res->kl = a->kl_sum / items1;
    res->clip_low_mean = a->low_sum / count1;
    res->clip_high_mean = a->high_sum / count1;
    res->clip_region_mean = a->region_sum / count1;
    res->entropy = a->ent_n ? a->ent_sum / a->ent_n : NAN;
    if (res->has_is) {
        res->is_ratio_min = a->is_n ? a->is_min : 0.0;
        res->is_ratio_max = a->is_n ? a->is_max : 0.0;
        res->is_ratio_mean = a->is_n ? a->is_sum / a->is_n : 0.0;
        res->sampling_logp_diff_mean = a->diff_n ? a->diff_sum / a->diff_n : 0.0;
        res->sampling_logp_diff_max = a->diff_n ? a->diff_max : 0.0;
    }
}

int grpo_loss(const GrpoLossConfig *c, const GrpoSeq *seqs, int B, double *dloss,
              GrpoLossResult *res, SrError *err) {
    grpo_loss_begin(res);
    if (B <= 0) return sr_fail(err, "grpo_loss: empty batch");
    GrpoTotals t;
    grpo_loss_totals(c, seqs, B, &t);
    if (grpo_loss_part(c, seqs, B, &t, dloss, res, err)) return -1;
    grpo_loss_finish(res);
    return 0;
}

void grpo_split_loss_mask(const char *owner, const float *logprobs, int n, uint8_t *mask) {
    for (int i = 0; i < n; i++) mask[i] = owner[i] == 's' && !isnan(logprobs[i]);
}

/* ---- a batch of rows ---------------------------------------------------------------------- */

void grpo_batch_free(GrpoBatch *b) {
    for (int i = 0; b->rows && i < b->n_rows; i++) {
        GrpoRow *r = &b->rows[i];
        free(r->prompt_ids);
        free(r->completion_ids);
        free(r->old_logp);
        free(r->ref_logp);
        free(r->sampling_logp);
        free(r->loss_mask);
    }
    free(b->rows);
    memset(b, 0, sizeof *b);
}

static int read_ids(const cJSON *a, const char *key, int32_t **out, int *n, SrError *err) {
    if (!cJSON_IsArray(a)) return sr_fail(err, "\"%s\" must be an array of token ids", key);
    int k = cJSON_GetArraySize(a);
    int32_t *v = sr_malloc((size_t)(k > 0 ? k : 1) * sizeof(int32_t));
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        double d = e->valuedouble;
        if (!cJSON_IsNumber(e) || d != floor(d) || d < 0 || d > 2147483647.0) {
            free(v);
            return sr_fail(err, "\"%s\"[%d] is not a token id (a whole number >= 0)", key, i);
        }
        v[i] = (int32_t)d;
    }
    *out = v;
    *n = k;
    return 0;
}

/* an optional per-completion-token array of log-probs; null entries only where allowed */
static int read_logps(const cJSON *row, const char *key, int n, int allow_null, double **out,
                      SrError *err) {
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(row, key);
    *out = NULL;
    if (!a || cJSON_IsNull(a)) return 0;
    if (!cJSON_IsArray(a) || cJSON_GetArraySize(a) != n)
        return sr_fail(err, "\"%s\" must be an array of %d numbers (one per completion token)",
                       key, n);
    double *v = sr_malloc((size_t)(n > 0 ? n : 1) * sizeof(double));
    int i = 0;
    for (const cJSON *e = a->child; e; e = e->next, i++) {
        if (allow_null && cJSON_IsNull(e)) {
            v[i] = NAN;
        } else if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble) || e->valuedouble > 0) {
            free(v);
            return sr_fail(err, "\"%s\"[%d] is not a log-prob (a finite number <= 0%s)", key, i,
                           allow_null ? ", or null" : "");
        } else {
            v[i] = e->valuedouble;
        }
    }
    *out = v;
    return 0;
}

static int parse_row(const cJSON *o, GrpoRow *r, char *gkey, size_t gkey_n, SrError *err) {
    const cJSON *g = cJSON_GetObjectItemCaseSensitive(o, "group");
    if (cJSON_IsNumber(g))
        snprintf(gkey, gkey_n, "n%.17g", g->valuedouble);
    else if (cJSON_IsString(g))
        snprintf(gkey, gkey_n, "s%s", g->valuestring);
    else
        return sr_fail(err, "\"group\" must be a number or a string");
    if (read_ids(cJSON_GetObjectItemCaseSensitive(o, "prompt_ids"), "prompt_ids", &r->prompt_ids,
                 &r->n_prompt, err) ||
        read_ids(cJSON_GetObjectItemCaseSensitive(o, "completion_ids"), "completion_ids",
                 &r->completion_ids, &r->n_completion, err))
        return -1;
    if (r->n_prompt == 0) return sr_fail(err, "\"prompt_ids\" is empty");
    const cJSON *rw = cJSON_GetObjectItemCaseSensitive(o, "reward");
    if (cJSON_IsNull(rw))
        r->reward = NAN;
    else if (cJSON_IsNumber(rw) && isfinite(rw->valuedouble))
        r->reward = rw->valuedouble;
    else
        return sr_fail(err, "\"reward\" must be a finite number or null");
    const cJSON *tr = cJSON_GetObjectItemCaseSensitive(o, "truncated");
    if (tr && !cJSON_IsBool(tr) && !cJSON_IsNull(tr))
        return sr_fail(err, "\"truncated\" must be true or false");
    r->truncated = cJSON_IsTrue(tr);
    if (read_logps(o, "old_logprobs", r->n_completion, 0, &r->old_logp, err) ||
        read_logps(o, "ref_logprobs", r->n_completion, 0, &r->ref_logp, err) ||
        read_logps(o, "sampling_logprobs", r->n_completion, 1, &r->sampling_logp, err))
        return -1;
    const cJSON *lm = cJSON_GetObjectItemCaseSensitive(o, "loss_mask");
    if (lm && !cJSON_IsNull(lm)) {
        if (!cJSON_IsArray(lm) || cJSON_GetArraySize(lm) != r->n_completion)
            return sr_fail(err, "\"loss_mask\" must be an array of %d zeros and ones (one per "
                           "completion token)", r->n_completion);
        r->loss_mask = sr_malloc((size_t)(r->n_completion ? r->n_completion : 1));
        int i = 0;
        for (const cJSON *e = lm->child; e; e = e->next, i++) {
            if (!cJSON_IsNumber(e) || (e->valuedouble != 0 && e->valuedouble != 1))
                return sr_fail(err, "\"loss_mask\"[%d] must be 0 or 1", i);
            r->loss_mask[i] = e->valuedouble != 0;
        }
    }
    return 0;
}

int grpo_batch_read(GrpoBatch *b, const char *path, SrError *err) {
    memset(b, 0, sizeof *b);
    JsonlReader jr;
    if (jsonl_open(&jr, path, err)) return -1;
    size_t cap = 0, kcap = 0;
    char **keys = NULL;
    int got, rc = 0;
    while ((got = jsonl_next(&jr, err)) == 1) {
        cJSON *o = jsonl_parse_line(&jr, err);
        if (!o) {
            rc = -1;
            break;
        }
        b->rows = sr_array_reserve(b->rows, &cap, (size_t)b->n_rows + 1, sizeof(GrpoRow));
        GrpoRow *r = &b->rows[b->n_rows];
        memset(r, 0, sizeof *r);
        b->n_rows++;
        char gkey[600];
        if (!cJSON_IsObject(o)) {
            rc = sr_fail(err, "%s:%ld: a row must be a JSON object", path, jr.lineno);
        } else if (parse_row(o, r, gkey, sizeof gkey, err)) {
            rc = sr_fail_prefix(err, "%s:%ld", path, jr.lineno);
        } else {
            int gi = 0;
            while (gi < b->n_groups && strcmp(keys[gi], gkey) != 0) gi++;
            if (gi == b->n_groups) {
                keys = sr_array_reserve(keys, &kcap, (size_t)b->n_groups + 1, sizeof(char *));
                keys[b->n_groups++] = sr_strdup(gkey);
            }
            r->group = gi;
        }
        cJSON_Delete(o);
        if (rc) break;
    }
    if (got < 0) rc = -1;
    jsonl_close(&jr);
    for (int i = 0; i < b->n_groups; i++) free(keys[i]);
    free(keys);
    if (!rc && b->n_rows == 0) rc = sr_fail(err, "%s: no rows", path);
    if (rc) grpo_batch_free(b);
    return rc;
}

/* ---- the step on a model -------------------------------------------------------------------- */

/* The token stream of rows [r0, r1) of a batch: each row in the loss is a document
 * prompt + completion[:-1] whose targets are the completion; rows out of it (no completion, or
 * truncated and masked) are left out. start[i - r0] = stream index whose target is
 * completion[0] ((size_t)-1 if out). */
/* A micro-batch as the model's input. Rows that share a prompt (a group's G completions)
 * share its first n_prompt - 1 tokens: those are laid out once (first, in order of first use),
 * then every row's last prompt token and completion (the rows that predict its tokens), and the
 * attention reads each row whole through the unshared stream (Qwen2Share): the projections, MLP
 * and norms of a prompt run once per group instead of once per completion. A micro-batch whose
 * prompts are all distinct is plain packed documents, and so is every batch off the CPU: in the
 * GPU recipe a prompt is a few % of a row (4,096-token completions), so sharing would save
 * little, while the CUDA embedding_backward that sums the copies' gradients scans back over all
 * earlier tokens for each distinct row (cheap for token ids, quadratic for the unshared stream). */
typedef struct Stream {
    int32_t *ids, *pos, *tgt;
    size_t *start;            /* [rows] the stream row predicting each row's first token */
    size_t N;
    int32_t *map, *pos_att;   /* the unshared stream (NULL: not shared) */
    size_t n_att;
} Stream;

static void stream_free(Stream *s) {
    free(s->ids);
    free(s->pos);
    free(s->tgt);
    free(s->start);
    free(s->map);
    free(s->pos_att);
}

static int row_in(const GrpoRow *r, int skip_truncated) {
    return r->n_completion > 0 && !(skip_truncated && r->truncated);
}

static size_t row_tokens(const GrpoRow *r, int skip_truncated) {
    return row_in(r, skip_truncated) ? (size_t)r->n_prompt + (size_t)r->n_completion - 1 : 0;
}

static int same_prompt(const GrpoRow *a, const GrpoRow *b) {
    return a->n_prompt == b->n_prompt &&
           memcmp(a->prompt_ids, b->prompt_ids, (size_t)a->n_prompt * sizeof(int32_t)) == 0;
}

static int stream_build(Stream *s, const GrpoBatch *b, int r0, int r1, int skip_truncated,
                        int may_share, SrError *err) {
    memset(s, 0, sizeof *s);
    int nr = r1 > r0 ? r1 - r0 : 1;
    /* owner[i]: the first row of the part with row i's prompt (-1: row left out) */
    int *owner = sr_malloc((size_t)nr * sizeof(int));
    size_t n_att = 0, N_shared = 0;
    int shares = 0, prompts_ok = 1;
    for (int i = r0; i < r1; i++) {
        const GrpoRow *r = &b->rows[i];
        owner[i - r0] = -1;
        if (!row_in(r, skip_truncated)) continue;
        n_att += row_tokens(r, skip_truncated);
        if (r->n_prompt < 1) prompts_ok = 0;
        int o = i;
        for (int j = r0; j < i && o == i; j++)
            if (owner[j - r0] == j && same_prompt(&b->rows[j], r)) o = j;
        owner[i - r0] = o;
        if (o != i) shares = 1;
        N_shared += (size_t)r->n_completion + (o == i ? (size_t)r->n_prompt - 1 : 0);
    }
    int share = may_share && shares && prompts_ok;
    size_t N = share ? N_shared : n_att;
    if (n_att > 2147483647u) {
        free(owner);
        return sr_fail(err, "grpo: the batch holds too many tokens (%zu)", n_att);
    }
    s->N = N;
    s->ids = sr_malloc((N ? N : 1) * sizeof(int32_t));
    s->pos = sr_malloc((N ? N : 1) * sizeof(int32_t));
    s->tgt = sr_malloc((N ? N : 1) * sizeof(int32_t));
    s->start = sr_malloc((size_t)nr * sizeof(size_t));
    size_t k = 0;
    if (!share) {
        for (int i = r0; i < r1; i++) {
            const GrpoRow *r = &b->rows[i];
            s->start[i - r0] = (size_t)-1;
            if (!row_in(r, skip_truncated)) continue;
            int len = r->n_prompt + r->n_completion - 1;
            for (int j = 0; j < len; j++) {
                s->ids[k + j] = j < r->n_prompt ? r->prompt_ids[j] : r->completion_ids[j - r->n_prompt];
                s->pos[k + j] = j;
                int t = j - (r->n_prompt - 1); /* the completion token this position predicts */
                s->tgt[k + j] = t >= 0 ? r->completion_ids[t] : -1;
            }
            s->start[i - r0] = k + (size_t)r->n_prompt - 1;
            k += (size_t)len;
        }
        free(owner);
        return 0;
    }
    /* the shared prefixes (tokens 0 .. n_prompt - 2 of each distinct prompt) */
    size_t *pre = sr_malloc((size_t)nr * sizeof(size_t));
    for (int i = r0; i < r1; i++) {
        const GrpoRow *r = &b->rows[i];
        if (owner[i - r0] != i) continue;
        pre[i - r0] = k;
        for (int j = 0; j + 1 < r->n_prompt; j++, k++) {
            s->ids[k] = r->prompt_ids[j];
            s->pos[k] = j;
            s->tgt[k] = -1;
        }
    }
    /* each row: its last prompt token, then its completion but the last token */
    for (int i = r0; i < r1; i++) {
        const GrpoRow *r = &b->rows[i];
        s->start[i - r0] = (size_t)-1;
        if (owner[i - r0] < 0) continue;
        s->start[i - r0] = k;
        for (int t = 0; t < r->n_completion; t++, k++) {
            s->ids[k] = t == 0 ? r->prompt_ids[r->n_prompt - 1] : r->completion_ids[t - 1];
            s->pos[k] = r->n_prompt - 1 + t;
            s->tgt[k] = r->completion_ids[t];
        }
    }
    /* the unshared stream: each row whole, its prefix read from its prompt's first row */
    s->n_att = n_att;
    s->map = sr_malloc((n_att ? n_att : 1) * sizeof(int32_t));
    s->pos_att = sr_malloc((n_att ? n_att : 1) * sizeof(int32_t));
    size_t f = 0;
    for (int i = r0; i < r1; i++) {
        const GrpoRow *r = &b->rows[i];
        int o = owner[i - r0];
        if (o < 0) continue;
        for (int j = 0; j + 1 < r->n_prompt; j++, f++) {
            s->map[f] = (int32_t)(pre[o - r0] + (size_t)j);
            s->pos_att[f] = j;
        }
        for (int t = 0; t < r->n_completion; t++, f++) {
            s->map[f] = (int32_t)(s->start[i - r0] + (size_t)t);
            s->pos_att[f] = r->n_prompt - 1 + t;
        }
    }
    free(pre);
    free(owner);
    return 0;
}

/* forward at the temperature; lp[N] = log p(target) (0 where none); ent[N] (may be NULL) the
 * entropy of each predicting row's distribution */
static int stream_forward(Qwen2Model *m, const Stream *s, double temperature, float *lp,
                          float *ent, SrError *err) {
    if (s->N == 0) return 0;
    float saved = m->logit_temperature;
    m->logit_temperature = (float)temperature;
    Qwen2Share sh = {(int)s->n_att, s->map, s->pos_att};
    int rc = qwen2_forward_shared(m, s->ids, s->pos, s->tgt, (int)s->N, s->map ? &sh : NULL, lp,
                                  ent, err);
    m->logit_temperature = saved;
    return rc;
}

/* the end of the micro-batch that starts at row r0: whole rows, up to max_tokens (at least one) */
static int part_end(const GrpoBatch *b, int r0, int max_tokens, int skip_truncated) {
    size_t used = 0;
    int r1 = r0;
    while (r1 < b->n_rows) {
        size_t t = row_tokens(&b->rows[r1], skip_truncated);
        if (r1 > r0 && max_tokens > 0 && used + t > (size_t)max_tokens) break;
        used += t;
        r1++;
    }
    return r1;
}

int grpo_batch_logprobs(Qwen2Model *m, const GrpoBatch *b, double temperature,
                        int skip_truncated, int max_tokens, double **out, SrError *err) {
    int rc = 0;
    for (int r0 = 0; !rc && r0 < b->n_rows;) {
        int r1 = part_end(b, r0, max_tokens, skip_truncated);
        Stream s;
        if (stream_build(&s, b, r0, r1, skip_truncated, m->be->device == SR_DEVICE_CPU, err))
            return -1;
        float *lp = sr_calloc(s.N ? s.N : 1, sizeof(float));
        rc = stream_forward(m, &s, temperature, lp, NULL, err);
        for (int i = r0; !rc && i < r1; i++) {
            const GrpoRow *r = &b->rows[i];
            size_t st = s.start[i - r0];
            out[i] = sr_calloc((size_t)(r->n_completion ? r->n_completion : 1), sizeof(double));
            for (int t = 0; t < r->n_completion && st != (size_t)-1; t++) out[i][t] = lp[st + t];
        }
        free(lp);
        stream_free(&s);
        r0 = r1;
    }
    return rc;
}

void grpo_batch_totals(const GrpoLossConfig *c, const GrpoBatch *b, GrpoTotals *t) {
    GrpoSeq *seqs = sr_calloc((size_t)(b->n_rows ? b->n_rows : 1), sizeof(GrpoSeq));
    for (int i = 0; i < b->n_rows; i++)
        seqs[i] = (GrpoSeq){b->rows[i].n_completion, NULL, NULL, NULL, NULL, 0,
                            b->rows[i].truncated, b->rows[i].loss_mask};
    grpo_loss_totals(c, seqs, b->n_rows, t);
    free(seqs);
}

int grpo_loss_backward_part(Qwen2Model *m, const GrpoBatch *b, const GrpoLossConfig *c,
                            const double *advantages, const GrpoTotals *tot, int max_tokens,
                            double entropy_max, GrpoLossResult *res, SrError *err) {
    int n = b->n_rows;
    if (!(c->temperature > 0)) return sr_fail(err, "grpo: temperature must be > 0");
    /* micro-batches of whole rows: forward, the part's loss and d loss / d logprob, one
     * weighted backward (gradients accumulate) */
    GrpoSeq *seqs = sr_calloc((size_t)(n ? n : 1), sizeof(GrpoSeq));
    int rc = 0;
    for (int r0 = 0; !rc && r0 < n;) {
        int r1 = part_end(b, r0, max_tokens, c->mask_truncated_completions);
        Stream s;
        if (stream_build(&s, b, r0, r1, c->mask_truncated_completions,
                         m->be->device == SR_DEVICE_CPU, err)) {
            rc = -1;
            break;
        }
        size_t n_comp = 0;
        for (int i = r0; i < r1; i++) n_comp += (size_t)b->rows[i].n_completion;
        float *lp = sr_calloc(s.N ? s.N : 1, sizeof(float));
        float *wts = sr_calloc(s.N ? s.N : 1, sizeof(float));
        double *logp = sr_calloc(n_comp ? n_comp : 1, sizeof(double));
        double *dloss = sr_calloc(n_comp ? n_comp : 1, sizeof(double));
        float *ent = res->acc.ent_n < entropy_max ? sr_calloc(s.N ? s.N : 1, sizeof(float)) : NULL;
        rc = stream_forward(m, &s, c->temperature, lp, ent, err);
        for (int i = r0; !rc && ent && i < r1; i++) { /* the loss tokens' entropy, in order */
            const GrpoRow *r = &b->rows[i];
            size_t st = s.start[i - r0];
            for (int t = 0; t < r->n_completion && st != (size_t)-1; t++) {
                if (r->loss_mask && !r->loss_mask[t]) continue;
                if (res->acc.ent_n >= entropy_max) break;
                res->acc.ent_sum += ent[st + t];
                res->acc.ent_n += 1;
            }
        }
        free(ent);
        if (!rc) {
            size_t o = 0;
            for (int i = r0; i < r1; i++) {
                const GrpoRow *r = &b->rows[i];
                size_t st = s.start[i - r0];
                /* TRL scores a row out of the attention mask as log-prob 0 */
                for (int t = 0; t < r->n_completion && st != (size_t)-1; t++)
                    logp[o + t] = lp[st + t];
                seqs[i] = (GrpoSeq){r->n_completion, logp + o, r->old_logp, r->ref_logp,
                                    r->sampling_logp, advantages[i], r->truncated,
                                    r->loss_mask};
                o += (size_t)r->n_completion;
            }
            rc = grpo_loss_part(c, seqs + r0, r1 - r0, tot, dloss, res, err);
        }
        if (!rc && s.N > 0) {
            size_t o = 0;
            for (int i = r0; i < r1; i++) {
                const GrpoRow *r = &b->rows[i];
                size_t st = s.start[i - r0];
                for (int t = 0; t < r->n_completion && st != (size_t)-1; t++)
                    wts[st + t] = (float)-dloss[o + t];
                o += (size_t)r->n_completion;
            }
            rc = qwen2_backward_weights(m, wts, 1.0, err);
        }
        stream_free(&s);
        free(lp);
        free(wts);
        free(logp);
        free(dloss);
        r0 = r1;
    }
    free(seqs);
    return rc;
}

int grpo_loss_backward(Qwen2Model *m, const GrpoBatch *b, const GrpoLossConfig *c,
                       int max_tokens, GrpoStepResult *res, SrError *err) {
    memset(res, 0, sizeof *res);
    int n = b->n_rows;
    if (n <= 0) return sr_fail(err, "grpo: empty batch");
    if (!(c->temperature > 0)) return sr_fail(err, "grpo: temperature must be > 0");
    double *rewards = sr_malloc((size_t)n * sizeof(double));
    int *group = sr_malloc((size_t)n * sizeof(int));
    for (int i = 0; i < n; i++) rewards[i] = b->rows[i].reward, group[i] = b->rows[i].group;
    res->advantages = sr_malloc((size_t)n * sizeof(double));
    grpo_advantages(rewards, group, n, c->scale_rewards, res->advantages, &res->adv_stats);
    free(rewards);
    free(group);

    /* the batch-wide normalisers, then the rows in micro-batches */
    GrpoTotals tot;
    grpo_batch_totals(c, b, &tot);
    grpo_loss_begin(&res->loss);
    int rc = grpo_loss_backward_part(m, b, c, res->advantages, &tot, max_tokens, INFINITY,
                                     &res->loss, err);
    if (!rc) grpo_loss_finish(&res->loss);
    if (rc) {
        free(res->advantages);
        res->advantages = NULL;
    }
    return rc;
}
