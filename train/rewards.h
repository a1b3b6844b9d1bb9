/*
 * GRPO's reward functions, one module. Each judges one completion and returns a value or
 * "none" (SrReward.none = 1, value NAN) for an example it cannot judge; "none" is excluded from
 * the group statistics by grpo_advantages (train/grpo_loss.h), never turned into 0.
 *
 * The paper's proxy rewards are computed exactly as the SplitReason reference code computes
 * them (training/open-r1/src/open_r1/rewards.py of abdelfattah-lab/SplitReason, the last
 * version), quirks included; texts are the decoded completions, lengths in code points as
 * Python's len(), counts as Python's str.count (non-overlapping, left to right):
 *
 *   accuracy    the project's grader (grade/) with SplitReason's accuracy_reward settings
 *               (SR_GRADE_REWARD: the gold parsed with Math-Verify's defaults, the completion
 *               with LaTeX extraction, boxed first, first match only, no unanchored fallback),
 *               over the WHOLE completion as open-r1's parse() sees it (no </think>
 *               preference). 1 correct, 0 incorrect; 0 also when the completion's answer does
 *               not parse (Math-Verify's verify() is then False); "none" when the gold has no
 *               answer or does not parse (open-r1: None) or the grader cannot decide.
 *   format      +1 if re.match(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", DOTALL |
 *               MULTILINE): the text starts with "<think>\n", a later "\n</think>\n<answer>\n"
 *               follows, then a "\n</answer>" that ends a LINE (MULTILINE's $: text may follow
 *               after a newline); "<think>\n</think>" does not match (two newlines needed).
 *               +1 if the <bigmodel> tags "nest properly" as _has_proper_bigmodel_nesting
 *               checks: every <bigmodel> has a later </bigmodel> and no <bigmodel> comes before
 *               it; stray </bigmodel>s are NOT checked (text with no <bigmodel> passes).
 *               So 0, 1 or 2.
 *   coverage    r = code points inside <bigmodel>(.*?)</bigmodel> (regex findall: the FIRST
 *               close after each open, so a nested "<bigmodel>" counts as content) / all code
 *               points; 0 if r <= 0; r / 0.4 below the peak at 0.4 (the docstring says 0.15);
 *               then linearly down to -1 at r = 1. In [-1, 1]. The reference registers it only
 *               inside tag_count (times 2); it is offered alone too.
 *   tag_count   0.5 if "<think>\n" occurs once, 0.5 if "\n</think>\n" once, 0.25 if
 *               "\n<answer>\n" once, 0.25 if "\n</answer>" once, 0.5 if "\boxed{" occurs;
 *               + floor(f(n) / 2) for n = count("<bigmodel>"), f(n) = 0.5 n up to n = 8, then
 *               4 - 0.5 (n - 8) (Python's // on a float: floor, so 0 below 4 spans, 1 for 4..7,
 *               2 for 8, and negative from 17 on); + 2 * coverage; - 2 if the counts of
 *               "<bigmodel>" and "</bigmodel>" differ.
 *
 * Ours (DESIGN.md "Latency model"):
 *   latency         -lambda * (T_split - T_small_only) / T_small_only, T from the latency table
 *                   (engine/latency.h) and the rollout's accounting; "none" when
 *                   T_small_only <= 0 (nothing generated).
 *   offload_budget  -lambda1 * max(0, share - target) - lambda2 * switches, share = big
 *                   tokens / generated tokens.
 */
#ifndef SR_TRAIN_REWARDS_H
#define SR_TRAIN_REWARDS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../engine/latency.h"
#include "../grade/grade.h"

typedef struct SrReward {
    double value; /* NAN when none */
    int none;     /* the example could not be judged */
} SrReward;

typedef enum {
    REWARD_ACCURACY = 0,
    REWARD_FORMAT,
    REWARD_TAG_COUNT,
    REWARD_COVERAGE,
    REWARD_LATENCY,
    REWARD_OFFLOAD_BUDGET,
    REWARD_N_KINDS
} RewardKind;

/* "accuracy", "format", "tag_count", "coverage", "latency", "offload_budget"; -1 if unknown */
int reward_kind_from_name(const char *name);
const char *reward_kind_name(RewardKind k);

/* The grader settings of the accuracy reward (SR_GRADE_REWARD, whole text). */
void reward_accuracy_grade_options(SrGradeOptions *opt);
/* g: a grader made with reward_accuracy_grade_options. */
SrReward reward_accuracy(SrGrader *g, const char *text, size_t len, const char *gold,
                         size_t gold_len);
SrReward reward_format(const char *text, size_t len);
SrReward reward_tag_count(const char *text, size_t len);
SrReward reward_coverage(const char *text, size_t len);
/* The coverage ratio alone (code points inside spans / all code points; 0 for ""). */
double reward_coverage_ratio(const char *text, size_t len);

/* ---- offload accounting of a rollout ---------------------------------------------------------
 * What split decoding records per sequence (engine/split.h SplitResult), or what it would have
 * recorded had the big model written the tagged spans of a completion the small model wrote
 * alone (rollout_mode small): tags are small tokens; a span's tokens are big; at each
 * <bigmodel> the big model catches up on every tag-free token it has not read (the prompt
 * included at the first switch, and the last token of its previous span, which it wrote but
 * never read); leaving a span the small model reads <bigmodel>, the span and </bigmodel>
 * (span + 2; 0 when the completion ends inside the span). */
typedef struct RolloutAccount {
    int small_tokens, big_tokens, switches;
    int *delta_big, *delta_small; /* [switches], malloc'd */
    int ctx;                      /* prompt + generated tokens */
} RolloutAccount;

void rollout_account_from_ids(RolloutAccount *a, const int32_t *prompt, int n_prompt,
                              const int32_t *ids, int n, int32_t open_id, int32_t close_id);
void rollout_account_free(RolloutAccount *a);
/* big tokens / generated tokens (0 when nothing was generated) */
double rollout_offload_share(const RolloutAccount *a);

/* -lambda (t_split - t_small_only) / t_small_only; none when t_small_only <= 0 */
SrReward reward_latency_value(double t_split, double t_small_only, double lambda);
/* The same with both times from a latency table at decode batch `batch`: T_split of the
 * account, and T_small_only = every generated token decoded by the small model, no switch.
 * (train/rewards_latency.c: it needs engine/latency.c.) */
SrReward reward_latency(const LatencyTable *t, int batch, const RolloutAccount *a, double lambda);
SrReward reward_offload_budget(const RolloutAccount *a, double target, double lambda_share,
                               double lambda_switch);

#endif
