/*
 * GRPO's rollouts: the prompts of a generation batch decoded num_generations times each by the
 * split decoder (engine/split.h), each completion judged by the reward functions
 * (train/rewards.h) with its offload accounting, turned into the loss's rows
 * (train/grpo_loss.h GrpoRow), and logged as one zstd JSONL file per generation.
 *
 * Modes (rollout_mode):
 *   small  the small model writes everything (split_generate mode small: a <bigmodel> it
 *          samples is an ordinary token); the tags are priced as if the big model had written
 *          the spans (RolloutAccount, rollout_account_from_ids). Every token is the policy's.
 *   split  the big model really writes the tagged spans (split_generate mode split, the
 *          configured end rule); the loss mask (grpo_split_loss_mask) leaves the big model's
 *          tokens and the appended </bigmodel> out of the loss: they are context.
 * The accounting of both modes is the same RolloutAccount (small / big tokens, switches, the
 * catch-up deltas), so the latency and offload_budget rewards read one structure; the modelled
 * latency is latency_t_split at `latency_batch` (one sequence's latency, independent of how
 * many processes decode the batch).
 *
 * Randomness: completion g of global prompt slot s of generation k draws from the stream
 * sr_rng_stream(grpo_rollout_seed(seed, k), s << 32 | g): its ids depend only on (seed, k,
 * the prompt, g) and the weights, not on which process decoded it nor on a resume.
 *
 * The completion trained on is every generated id, the final EOS included (TRL's completion
 * mask runs through the first EOS); a completion that hit max_completion_length without an
 * EOS is truncated. The text judged is the decoded completion without the final EOS, tags
 * included (the reference's rewards read them).
 */
#ifndef SR_TRAIN_GRPO_ROLLOUT_H
#define SR_TRAIN_GRPO_ROLLOUT_H

#include <cjson/cJSON.h>
#include <stdint.h>

#include "../common/buf.h"
#include "../common/error.h"
#include "../engine/split.h"
#include "grpo_loss.h"
#include "rewards.h"

#define GRPO_MAX_REWARDS 8

/* The reward functions of a run and what they read. */
typedef struct GrpoRewardSpec {
    int n;
    RewardKind kinds[GRPO_MAX_REWARDS];
    double weights[GRPO_MAX_REWARDS];
    const LatencyTable *latency;   /* the latency reward's table (borrowed; NULL if unused) */
    int latency_batch;             /* decode batch the table is read at */
    double latency_penalty;        /* lambda of the latency reward */
    double offload_budget;         /* offload_budget's target share */
    double offload_lambda_share, offload_lambda_switch;
    SrGrader *grader;              /* accuracy (reward_accuracy_grade_options); owned */
} GrpoRewardSpec;

/* reward_funcs (a name or a list of names) and reward_weights (null: all 1; else a list of the
 * same length) into s, with their errors naming the key. The grader is made when accuracy is
 * asked for. */
int grpo_reward_spec_init(GrpoRewardSpec *s, const cJSON *funcs, const cJSON *weights, SrError *err);
void grpo_reward_spec_free(GrpoRewardSpec *s);
/* 1 if the spec has reward kind k */
int grpo_reward_spec_has(const GrpoRewardSpec *s, RewardKind k);

typedef struct GrpoRollout {
    int slot;                 /* the prompt's global slot in its generation (round * P + i) */
    int prompt_index;         /* the dataset row */
    int g;                    /* which of the group's num_generations */
    const int32_t *prompt_ids; /* borrowed: the group's shared prompt */
    int n_prompt;
    SplitResult r;            /* ids (EOS included), owner, sampler log-probs, accounting */
    int truncated;            /* no EOS within max_completion_length */
    char *text;               /* decoded completion, final EOS left out */
    size_t text_len;
    double rewards[GRPO_MAX_REWARDS]; /* per function; NAN = none */
    double reward;            /* weighted sum of the non-none ones; NAN when all are none */
    double accuracy;          /* the accuracy reward's verdict whether or not it is one (NAN: none) */
    double advantage;
    RolloutAccount acc;       /* small / big tokens, switches, deltas (as split decoding records) */
    double offload_share;     /* big tokens / generated tokens */
    double latency;           /* modelled T_split (seconds); 0 without a latency table */
} GrpoRollout;

/* What the decoding of one generation needs. */
typedef struct GrpoGenerate {
    Engine *small, *big;      /* big only in mode split */
    const Tokenizer *tok;
    SplitConfig cfg;          /* mode, sampling, stop ids, max_new_tokens (the completion budget),
                                 tag ids, vocab limit; seed set per generation */
    int num_generations;
    const LatencyTable *latency; /* modelled latency of each completion (NULL: 0) */
    int latency_batch;
} GrpoGenerate;

/* the base seed of generation k's streams */
uint64_t grpo_rollout_seed(uint64_t seed, long long generation);

/* Decodes prompts [P] (ids, lengths, global slots, dataset rows) num_generations times each
 * (out[p * G + g]; the G requests of a prompt share its ids, so the engine shares its KV),
 * fills the accounting, decodes the texts; the rewards are left to grpo_rollout_judge. */
int grpo_rollouts_generate(const GrpoGenerate *gen, long long generation, uint64_t seed,
                           int32_t *const *prompts, const int *prompt_lens, const int *slots,
                           const int *rows, int P, GrpoRollout *out, SrError *err);
/* Fills the accounting of a completion written in mode (small: tags priced as spans; split:
 * the decoder's own record) and, with a table, its modelled latency. */
void grpo_rollout_account(GrpoRollout *ro, SplitMode mode, int32_t open_id, int32_t close_id,
                          const LatencyTable *lat, int latency_batch);
/* Every reward function of s on one completion (gold: the problem's answer), their weighted
 * sum (grpo_combine_rewards), and the accuracy verdict (s->grader must be set). */
void grpo_rollout_judge(const GrpoRewardSpec *s, GrpoRollout *ro, const char *gold);
/* 1 when a group's rewards (G rows) cannot be told apart: fewer than two non-none values or
 * all of them equal (its advantages are all 0) -- what dynamic sampling drops. */
int grpo_group_flat(const GrpoRollout *group, int G);
void grpo_rollout_free(GrpoRollout *ro);

/* The loss's rows of n rollouts whose groups are consecutive runs of G (row i: group i / G):
 * prompt and completion ids (borrowed), truncated, the reward; with split_mask the loss mask of
 * split rollouts (allocated), with sampling the sampler's log-probs (allocated, as doubles). */
void grpo_rollouts_to_batch(GrpoRollout *ro, int n, int G, int split_mask, int sampling,
                            GrpoBatch *b);
/* Frees what grpo_rollouts_to_batch allocated (the masks, log-probs and the rows; not the ids). */
void grpo_rollout_batch_free(GrpoBatch *b);

/* One JSON line per rollout appended to out: {"step", "prompt_id", "slot", "g", "completion",
 * "rewards": {name: value or null}, "reward", "advantage", "truncated", "small_tokens",
 * "big_tokens", "switches", "offload_share", "modelled_latency"}. ids: the dataset's ids
 * (JSON text) by row. */
void grpo_rollouts_jsonl(SrBuf *out, const GrpoRewardSpec *s, const GrpoRollout *ro, int n,
                         int step, char *const *ids);

#endif
