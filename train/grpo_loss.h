/*
 * The GRPO loss, as TRL 1.16's GRPOTrainer computes it (_generate_and_score_completions for the
 * advantages and the importance-sampling ratio, _compute_loss for the loss and its metrics).
 *
 * The loss is a function of the per-token log-probs of the completions only, so it is computed
 * here on the host, in double: the loss and d loss / d logprob_t for every completion token.
 * The model's gradient is then ONE weighted cross-entropy backward (qwen2_backward_weights with
 * weights -d loss / d logprob_t and n_norm 1). grpo_loss_backward does the whole step on a
 * model; grpo_loss is the arithmetic alone (what the unit tests and a trainer call).
 *
 * Per completion b (advantage A_b, mask m_b = 0 for a truncated completion when
 * mask_truncated_completions, else 1) and token t, lp = the policy's log-prob at the sampling
 * temperature, old = old_logp (num_iterations > 1) or lp detached, ref = the reference's:
 *   log_ratio  = lp - old;  w = log_ratio (token level) or its masked mean over b (sequence)
 *   c1 = exp(w);  c2 = clamp(c1, 1 - epsilon, 1 + epsilon_high);  c1 = min(c1, delta) if set
 *   policy     = -min(c1 A, c2 A)            (torch.min: a tie splits the gradient in halves)
 *              * is_ratio                      (sampler vs trainer, when sampling_logp given)
 *   kl         = exp(ref - lp) - (ref - lp) - 1   (k3), * exp(w) when use_bias_correction_kl
 *   L_t        = policy + beta * kl
 * aggregated with the mask m_bt = m_b * mask_bt (GrpoSeq.mask: the tokens the policy wrote)
 * (n_b = sum_t m_bt):
 *   grpo:    mean over b of (sum_t L / max(1, n_b))      (every row counts in the mean)
 *   bnpo:    sum L / max(1, sum n_b)
 *   dr_grpo: sum L / (B * max_completion_length)
 *   dapo:    sum L / max(1, num_items_in_batch)          (= sum n_b over the batch)
 * The batch given is one optimizer step's whole batch on one process (TRL with
 * gradient_accumulation_steps = steps_per_generation = 1); a trainer that splits it into
 * micro-batches scales each part's loss as TRL does.
 */
#ifndef SR_TRAIN_GRPO_LOSS_H
#define SR_TRAIN_GRPO_LOSS_H

#include <stdint.h>

#include "../common/error.h"
#include "../model/model.h"

typedef enum { GRPO_LOSS_GRPO = 0, GRPO_LOSS_BNPO, GRPO_LOSS_DR_GRPO, GRPO_LOSS_DAPO } GrpoLossType;
typedef enum { GRPO_SCALE_GROUP = 0, GRPO_SCALE_BATCH, GRPO_SCALE_NONE } GrpoScale;
typedef enum { GRPO_IS_TOKEN = 0, GRPO_IS_SEQUENCE } GrpoIsLevel;
/* vllm_importance_sampling_mode */
typedef enum {
    GRPO_VIS_TOKEN_TRUNCATE = 0,
    GRPO_VIS_TOKEN_MASK,
    GRPO_VIS_SEQUENCE_TRUNCATE,
    GRPO_VIS_SEQUENCE_MASK,
} GrpoVisMode;

/* TRL GRPOConfig names and defaults (grpo_loss_config_default). */
typedef struct GrpoLossConfig {
    GrpoLossType loss_type;       /* loss_type: "dapo" */
    GrpoScale scale_rewards;      /* scale_rewards: "group" */
    double beta;                  /* 0 */
    double epsilon;               /* 0.2 (TRL's epsilon_low) */
    double epsilon_high;          /* NAN = epsilon */
    double delta;                 /* NAN = none (two-sided clipping off) */
    GrpoIsLevel importance_sampling_level; /* "token" */
    int use_bias_correction_kl;   /* 1 */
    int mask_truncated_completions; /* 0 */
    int max_completion_length;    /* 512 (dr_grpo's constant) */
    double temperature;           /* 1: log-probs are taken at it (the model does it) */
    /* importance sampling between the sampler's log-probs and the trainer's; applies only
     * when the batch carries sampling log-probs (TRL: only with vLLM) */
    int vllm_importance_sampling_correction; /* 1 */
    GrpoVisMode vllm_importance_sampling_mode; /* "sequence_mask" */
    double vllm_importance_sampling_clip_min; /* NAN = none */
    double vllm_importance_sampling_clip_max; /* 3; NAN = none */
} GrpoLossConfig;

void grpo_loss_config_default(GrpoLossConfig *c);
/* Reads the loss settings present in a JSON object under their TRL GRPOConfig names
 * (loss_type, scale_rewards, beta, epsilon, epsilon_high, delta, importance_sampling_level,
 * use_bias_correction_kl, mask_truncated_completions, max_completion_length, temperature,
 * vllm_importance_sampling_{correction,mode,clip_min,clip_max}); absent keys keep c's values,
 * null sets the optional ones (epsilon_high, delta, clip_min, clip_max) to "none";
 * scale_rewards true / false mean "group" / "none" as in GRPOConfig, and use_vllm false turns
 * the importance-sampling correction off (TRL applies it only with vLLM). Other keys are
 * ignored (a command's own options). Errors name the key. */
struct cJSON;
int grpo_loss_config_from_json(GrpoLossConfig *c, const struct cJSON *o, SrError *err);

/* Option-table rows (common/config.h) of keys read above that `splitreason grpo` and
 * `splitreason grpo-loss` declare word for word (the others' help differs per command). */
/* the ratio's clipping */
#define GRPO_LOSS_CLIP_OPTIONS \
    {"epsilon", SR_OPT_FLOAT, "0.2", "lower clipping epsilon", SR_RANGE(0, 1)}, \
    {"epsilon_high", SR_OPT_FLOAT, "null", "upper clipping epsilon (default: epsilon)", SR_RANGE(0, SR_INF)}, \
    {"delta", SR_OPT_FLOAT, "null", "two-sided clipping: upper bound of the ratio (default: none)", SR_RANGE_X(0, SR_INF, 1, 0)},
/* the importance-sampling correction's mode and bounds */
#define GRPO_LOSS_IS_OPTIONS \
    {"vllm_importance_sampling_mode", SR_OPT_STR, "\"sequence_mask\"", "importance-sampling ratio per token or sequence, truncated or masked", \
     SR_CHOICES("token_truncate", "token_mask", "sequence_truncate", "sequence_mask"), SR_REQUIRED}, \
    {"vllm_importance_sampling_clip_min", SR_OPT_FLOAT, "null", "lower bound of the ratio (default: none)", SR_RANGE(0, SR_INF)}, \
    {"vllm_importance_sampling_clip_max", SR_OPT_FLOAT, "3.0", "upper bound of the ratio (null: none)", SR_RANGE(0, SR_INF)},
/* Names <-> values ("dapo", "group", "sequence", "token_truncate", ...); -1 if unknown. */
int grpo_loss_type_from_name(const char *s);
int grpo_scale_from_name(const char *s);
int grpo_is_level_from_name(const char *s);
int grpo_vis_mode_from_name(const char *s);

/* ---- advantages ---------------------------------------------------------------------------
 * rewards[i] (NAN = "none": the example could not be judged), group[i] = the group (prompt) of
 * row i, any non-negative ids in any order. As TRL: mean over the group's non-NaN rewards;
 * std the NaN-aware Bessel-corrected std of the group ("group", "none") or of the whole batch
 * ("batch"), NaN when fewer than two values; A = r - mean, divided by (std + 1e-4) unless
 * "none"; a NaN advantage (a "none" reward, or a NaN std) becomes 0. A group of one row has
 * std 0 (TRL's num_generations = 1 case). */
typedef struct GrpoAdvStats {
    double reward_mean, reward_std; /* over the non-NaN rewards ("reward", "reward_std") */
    double frac_reward_zero_std;    /* share of rows whose std is 0 ("frac_reward_zero_std") */
} GrpoAdvStats;
void grpo_advantages(const double *rewards, const int *group, int n, GrpoScale scale,
                     double *adv, GrpoAdvStats *st);
/* TRL's "sum_then_normalize" reward: row i = nansum_k weights[k] * per_func[i*k_funcs + k],
 * NaN when every function said "none" for the row. */
void grpo_combine_rewards(const double *per_func, const double *weights, int n, int k_funcs,
                          double *out);

/* ---- the loss on given log-probs ----------------------------------------------------------- */
typedef struct GrpoSeq {
    int n;                      /* completion tokens */
    const double *logp;         /* [n] the policy's log-probs (the trainer's) */
    const double *old_logp;     /* [n] or NULL: logp detached (num_iterations = 1) */
    const double *ref_logp;     /* [n] or NULL: the policy itself (KL 0 and no KL gradient) */
    const double *sampling_logp; /* [n] or NULL: the sampler's; NaN = unknown token */
    double advantage;
    int truncated;
    const uint8_t *mask;        /* [n] or NULL (all 1): 1 = the policy's own token, in the loss;
                                   0 = context it did not write (TRL's tool_mask; in split
                                   rollouts the big model's span and the </bigmodel> after it) */
} GrpoSeq;

/* running sums of a loss computed in parts (grpo_loss_part); grpo_loss_finish turns them into
 * the means below */
typedef struct GrpoLossSums {
    double kl_sum, low_sum, high_sum, region_sum, count;
    double is_min, is_max, is_sum, is_n, diff_sum, diff_max, diff_n;
    double ent_sum, ent_n; /* the policy's token entropy over the loss tokens (at the temperature) */
} GrpoLossSums;

typedef struct GrpoLossResult {
    double loss;
    double num_items_in_batch;   /* completion tokens in the loss (after truncation masking) */
    double kl;                   /* masked mean of the (bias-corrected) k3 KL; 0 without ref
                                    or with beta 0 (TRL then has no reference and logs none) */
    double clip_low_mean, clip_high_mean, clip_region_mean; /* clip_ratio/{low,high,region}_mean */
    double clip_low_min, clip_high_max;    /* clip_ratio/low_min, clip_ratio/high_max (NaN: no row) */
    int has_is;                  /* the importance-sampling correction was applied */
    double is_ratio_min, is_ratio_mean, is_ratio_max;       /* sampling/importance_sampling_ratio/ */
    double sampling_logp_diff_mean, sampling_logp_diff_max; /* sampling/sampling_logp_difference/ */
    double entropy;              /* mean token entropy of the loss tokens (NaN: none counted) */
    GrpoLossSums acc;
} GrpoLossResult;

/* Loss and dloss[] = d loss / d logp for every token, seq after seq (sum of n entries; 0 for
 * masked tokens). Uses the sampling log-probs only if every seq has them and the correction
 * is on. Returns 0, or -1 with err (beta != 0 is fine without ref_logp: see GrpoSeq). */
int grpo_loss(const GrpoLossConfig *c, const GrpoSeq *seqs, int B, double *dloss,
              GrpoLossResult *res, SrError *err);

/* The same in parts (micro-batches of whole sequences, in any split): the aggregation divides
 * by batch-wide numbers (TRL takes them over the whole batch before splitting it), so each part
 * gives exactly its share of the loss and of d loss / d logp.
 *   grpo_loss_totals(c, all, B, &t); grpo_loss_begin(&res);
 *   for each part: grpo_loss_part(c, part, n, &t, dloss_part, &res, err);
 *   grpo_loss_finish(&res);   (res.loss is the sum of the parts; metrics over all of them) */
/* With gradients summed over micro-batches and data-parallel ranks, the totals are those of
 * the global batch (every rank's rows), as TRL's gathered num_items_in_batch. */
typedef struct GrpoTotals {
    int n_seqs;          /* B: grpo's mean and dr_grpo's B * max_completion_length */
    double num_items;    /* tokens in the loss: bnpo's and dapo's normaliser */
} GrpoTotals;
void grpo_loss_totals(const GrpoLossConfig *c, const GrpoSeq *seqs, int B, GrpoTotals *t);
void grpo_loss_begin(GrpoLossResult *res);
int grpo_loss_part(const GrpoLossConfig *c, const GrpoSeq *seqs, int B, const GrpoTotals *tot,
                   double *dloss, GrpoLossResult *res, SrError *err);
void grpo_loss_finish(GrpoLossResult *res);

/* The loss mask of a split rollout (engine/split.h SplitResult: owner 's'/'b', logprobs): 1 for
 * the small model's own sampled tokens (<bigmodel> included: it chose to offload), 0 for the big
 * model's span and for the </bigmodel> the decoder appended after it (the only id with a NaN
 * log-prob: nobody sampled it). */
void grpo_split_loss_mask(const char *owner, const float *logprobs, int n, uint8_t *mask);

/* ---- a batch of rows and the whole step on a model ----------------------------------------- */
typedef struct GrpoRow {
    int group;                  /* dense group index (0..n_groups-1) */
    int32_t *prompt_ids, *completion_ids;
    int n_prompt, n_completion;
    double reward;              /* NAN = none */
    int truncated;
    double *old_logp, *ref_logp, *sampling_logp; /* [n_completion] or NULL */
    uint8_t *loss_mask;         /* [n_completion] or NULL: GrpoSeq.mask */
} GrpoRow;

typedef struct GrpoBatch {
    GrpoRow *rows;
    int n_rows, n_groups;
} GrpoBatch;

/* Reads rows {"group", "prompt_ids", "completion_ids", "reward" (number or null), "truncated",
 * "old_logprobs"?, "ref_logprobs"?, "sampling_logprobs"?, "loss_mask"?} from a JSONL (.zst)
 * file. "group" is any JSON number or string (rows with equal values form a group);
 * "loss_mask" is 0/1 per completion token (GrpoSeq.mask). Errors name the file and line. */
int grpo_batch_read(GrpoBatch *b, const char *path, SrError *err);
void grpo_batch_free(GrpoBatch *b);

/* The completions' log-probs under m at the temperature (micro-batches as grpo_loss_backward): out[i]
 * gets n_completion doubles (malloc'd; 0 for a row left out: truncated with skip_truncated).
 * What fills a row's ref_logp from a reference model, or its old_logp. */
int grpo_batch_logprobs(Qwen2Model *m, const GrpoBatch *b, double temperature,
                        int skip_truncated, int max_tokens, double **out, SrError *err);

typedef struct GrpoStepResult {
    GrpoLossResult loss;
    GrpoAdvStats adv_stats;
    double *advantages;          /* [n_rows], owned (free) */
} GrpoStepResult;

/* Advantages from the rows' rewards, the policy's log-probs at c->temperature (rows as packed
 * documents, prompt + completion, in micro-batches of whole rows of at most max_tokens tokens
 * each, one row alone when longer; max_tokens <= 0: one pass), the loss, and its gradient
 * ACCUMULATED into m->grads (call qwen2_zero_grad first): one forward and one weighted backward
 * per micro-batch, the same loss and gradient for any max_tokens. Ids must be inside the
 * vocabulary; a row's prompt must be non-empty. */
int grpo_loss_backward(Qwen2Model *m, const GrpoBatch *b, const GrpoLossConfig *c,
                       int max_tokens, GrpoStepResult *res, SrError *err);

/* The batch-wide normalisers of a batch's rows (grpo_loss_totals over them). A trainer whose
 * batch is spread over micro-batches and ranks sums these over all of them (n_seqs and
 * num_items add up) and passes the sum to every part. */
void grpo_batch_totals(const GrpoLossConfig *c, const GrpoBatch *b, GrpoTotals *t);
/* One part of a step spread over micro-batches and ranks (what grpo_loss_backward does for a
 * whole batch): the advantages given (advantages[i] of row i; the rows' rewards are not read),
 * tot the totals of the WHOLE global batch; loss, gradient (accumulated into m->grads) and
 * metric sums accumulate into res (grpo_loss_begin before the first part, grpo_loss_finish
 * after the last, once the sums of every rank are in). The policy's entropy comes from the
 * same forward: acc.ent_sum / ent_n over the loss tokens in row order, until ent_n reaches
 * entropy_max (0: not computed; INFINITY: every loss token). */
int grpo_loss_backward_part(Qwen2Model *m, const GrpoBatch *b, const GrpoLossConfig *c,
                            const double *advantages, const GrpoTotals *tot, int max_tokens,
                            double entropy_max, GrpoLossResult *res, SrError *err);

#endif
