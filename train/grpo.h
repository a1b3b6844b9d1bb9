/*
 * GRPO with a latency-aware reward (SplitReason's RL stage, "RL4E"), as TRL's GRPOTrainer runs
 * it, on real split rollouts when asked. Settings carry TRL GRPOConfig's names (GRPO_OPTIONS;
 * `splitreason grpo --help` prints each with its default and range).
 *
 * Batches, as TRL: a generation batch holds per_device_train_batch_size x steps_per_generation
 * completions per process, i.e. that / num_generations prompts, each decoded num_generations
 * times (the engine shares the prompt's KV blocks). Process r of W takes prompt slots
 * [r P, (r+1) P) of the W P prompts drawn (data order: a seeded shuffle per epoch, as SFT's).
 * The batch is cut into steps_per_generation / gradient_accumulation_steps optimizer steps of
 * gradient_accumulation_steps micro-batches of per_device_train_batch_size completions, in
 * order (TRL shuffles it first; we do not), and the whole pass is made num_iterations times:
 * one generation serves W = steps_per_generation / gradient_accumulation_steps x num_iterations
 * optimizer steps (steps_per_generation must be a multiple of gradient_accumulation_steps;
 * null = gradient_accumulation_steps, TRL's default).
 *
 * One generation:
 *   1. rollouts (train/grpo_rollout.h): rollout_mode small (the policy alone; tags priced as
 *      if the big model wrote the spans) or split (big_model_name_or_path writes the tagged
 *      spans; its tokens are context, not in the loss), sampled at temperature / top_p /
 *      top_k, at most max_completion_length ids; prompts are the chat template with the
 *      problem as the user turn (system_prompt: the system turn), left-truncated to
 *      max_prompt_length as TRL does;
 *   2. rewards: reward_funcs weighted by reward_weights (train/rewards.h; latency reads
 *      latency_table and latency_penalty, offload_budget reads offload_budget and
 *      offload_lambda_share / offload_lambda_switch); "none" stays none;
 *   3. dynamic_sampling (DAPO): a group whose rewards are all equal (its advantages are all 0)
 *      is dropped and new prompts are drawn and decoded in further rounds, up to
 *      dynamic_sampling_max_rounds rounds in all; what is still missing then is filled with
 *      the dropped groups, oldest first, so that the batch keeps its size. Each process fills
 *      its own P prompts (so, unlike without it, 2 processes do not reproduce 1 process);
 *   4. the rewards of every process are gathered, then the advantages (grpo_advantages:
 *      scale_rewards group / batch / none);
 *   5. old log-probs (the policy's, at generation time) when W > 1; the reference's when
 *      beta != 0 (the ORIGINAL model_name_or_path, also after a resume); the sampler's
 *      log-probs (SplitResult.logprobs) for the importance-sampling correction
 *      (vllm_importance_sampling_correction / _mode / _clip_min / _clip_max);
 *   6. output_dir/rollouts/step-NNNNNN.jsonl.zst (NNNNNN: the first optimizer step that uses
 *      the generation; process r > 0 writes step-NNNNNN.rank-R.jsonl.zst): one line per
 *      completion (grpo_rollouts_jsonl).
 * One optimizer step: the loss of train/grpo_loss.h (loss_type, beta, epsilon, epsilon_high,
 * mask_truncated_completions, ...) over the step's global batch, log-probs at the sampling
 * temperature, normalised by the global batch's totals, gradients summed over micro-batches
 * and processes, then clipping and AdamW (train/train_step.h sr_train_step_apply). So a step is
 * the one big batch's loss however it is split: TRL's too for grpo, dr_grpo and dapo with equal
 * micro-batches (and steps_per_generation = gradient_accumulation_steps for dapo, whose
 * normaliser TRL takes over the whole generation); TRL's bnpo divides each micro-batch by its
 * own token count instead (the same only when the counts are equal).
 *
 * Logged every logging_steps (metrics.jsonl + TensorBoard through the harness; each value the
 * mean over the window's generations or steps): reward, reward_std, rewards/<name>/mean,
 * rewards/<name>/std, completions/{mean,min,max}_length, completions/clipped_ratio, kl,
 * entropy (mean token entropy of the policy at the temperature over the loss tokens of the
 * logging step's batch, at most entropy_max_tokens of them per process, computed by the
 * loss's own forward as TRL does), clip_ratio/{low,high,region}_mean,
 * frac_reward_zero_std, learning_rate, grad_norm, loss, num_tokens (prompt + completion
 * tokens trained on so far); ours: accuracy (share of completions whose answer is right,
 * graded as the accuracy reward whether or not it is one), offload_share,
 * spans_per_completion, switches_per_completion (hand-overs of control: into a span and,
 * unless the completion ended in it, back), modelled_latency (seconds, at latency_batch; 0
 * without a table), dynamic_sampling_rounds, and generation_seconds / training_seconds (the
 * window's wall seconds in rollouts + rewards + reference/old log-probs, and in the
 * optimizer steps); with the importance-sampling correction, TRL's
 * sampling/sampling_logp_difference/{mean,max} and sampling/importance_sampling_ratio/
 * {min,mean,max}. A metric with nothing in the window is null.
 *
 * Checkpoints (train/checkpoint.h) every save_steps, which must be a multiple of W (a
 * checkpoint inside a generation's window would need that generation's rollouts; so must
 * stop_after_steps), and at the end (inside a window when max_steps is not a multiple of W:
 * extending such a run decodes that generation again, with the weights of then). Resume (resume_from_checkpoint) is exact on the CPU: the data position, the rollout
 * streams (seed, generation, slot, g), the optimizer and the logging window come back, so the
 * weights and metrics.jsonl (wall-time fields aside) are those of the uninterrupted run.
 * A NaN/Inf loss or gradient norm stops the run naming the step and the tensor.
 */
#ifndef SR_TRAIN_GRPO_H
#define SR_TRAIN_GRPO_H

#include <stdint.h>

#include "../common/config.h"
#include "../common/error.h"
#include "../engine/split.h"
#include "dist.h"
#include "grpo_loss.h"
#include "harness.h"

typedef struct GrpoOptions {
    HarnessOptions harness;          /* the settings every trainer shares (model, dataset_path,
                                        output, optimizer, schedule, logging, saving; harness.h) */
    const char *big_model_name_or_path, *system_prompt, *latency_table;
    SplitMode rollout_mode;          /* small or split */
    SplitEndRule span_end_rule;      /* split mode's end rule (engine/split.h) */
    int max_span_tokens;
    int gradient_accumulation_steps, steps_per_generation;
    int num_iterations, num_generations, max_prompt_length, max_completion_length;
    double temperature, top_p;
    int top_k;
    uint64_t seed;
    long stop_after_steps;
    const cJSON *reward_funcs, *reward_weights; /* into the config */
    double latency_penalty, offload_budget, offload_lambda_share, offload_lambda_switch;
    int latency_batch;
    int dynamic_sampling, dynamic_sampling_max_rounds;
    double kv_cache_gb;
    long entropy_max_tokens;         /* the entropy metric's tokens per process (0: off) */
    GrpoLossConfig loss;             /* loss_type, beta, epsilon, ... (grpo_loss_config_from_json) */
} GrpoOptions;

#define GRPO_N_OPTIONS 68
extern const SrOption GRPO_OPTIONS[GRPO_N_OPTIONS];

/* Reads the GRPO_OPTIONS keys of cfg into o (strings and JSON point into cfg) and checks the
 * rules between them (errors name the key). */
int grpo_options_from_config(GrpoOptions *o, const SrConfig *cfg, SrError *err);

typedef struct GrpoResult {
    int start_step, end_step, total_steps;
    double first_reward, last_reward; /* the first and last generation's mean reward */
    double seconds, generation_seconds, training_seconds;
    char last_checkpoint[4096];
} GrpoResult;

/* Runs GRPO as configured (comm: single or MPI, not yet attached). effective_config (may be
 * NULL) is recorded in trainer_state.json. */
int grpo_run(const GrpoOptions *o, const cJSON *effective_config, SrComm *comm, GrpoResult *res,
             SrError *err);

#endif
