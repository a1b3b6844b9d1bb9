/*
 * GRPO's settings (see grpo.h): the option table under TRL GRPOConfig's names and defaults
 * (what `splitreason grpo --help` prints) and the rules between keys that the table cannot say.
 */
#include <string.h>

#include "grpo.h"
#include "grpo_rollout.h"
#include "harness.h"

/* Defaults are TRL GRPOConfig's where it has the key. */
const SrOption GRPO_OPTIONS[] = {
    {"model_name_or_path", SR_OPT_STR, "null", "the policy: HF model directory (also the reference model when beta != 0)", SR_REQUIRED},
    {"big_model_name_or_path", SR_OPT_STR, "null", "the big model that writes the tagged spans (rollout_mode split)"},
    {"dataset_path", SR_OPT_STR, "null", "JSONL (.zst) rows with problem and answer, or a solution whose last \\boxed{} is the gold", SR_REQUIRED},
    {"output_dir", SR_OPT_STR, "null", "checkpoints, metrics.jsonl, rollouts/ and TensorBoard events go here", SR_REQUIRED},
    {"device", SR_OPT_STR, "\"cpu\"", "cpu or cuda (one GPU per process: local rank)", SR_CHOICES("cpu", "cuda"), SR_REQUIRED},
    {"rollout_mode", SR_OPT_STR, "\"small\"", "small: the policy writes everything, tags priced as if the big model wrote the spans; split: the big model really writes them (not in the loss)",
     SR_CHOICES("small", "split"), SR_REQUIRED},
    {"span_end_rule", SR_OPT_STR, "\"small_close\"", "split mode: what ends a big-model span (engine/split.h)", SR_CHOICES("small_close", "probe", "step"), SR_REQUIRED},
    {"max_span_tokens", SR_OPT_INT, "512", "split mode: the longest span the big model writes", SR_RANGE(1, 1048576)},
    {"latency_table", SR_OPT_STR, "null", "latency table (configs/latency/*.json) for the latency reward and the modelled_latency metric"},
    {"latency_penalty", SR_OPT_FLOAT, "0.1", "lambda of the latency reward: -lambda (T_split - T_small_only) / T_small_only", SR_RANGE(0, 1e9)},
    {"latency_batch", SR_OPT_INT, "1", "decode batch size at which the latency table is read", SR_RANGE(1, 1048576)},
    {"offload_budget", SR_OPT_FLOAT, "0.2", "offload_budget reward: the target share of big-model tokens", SR_RANGE(0, 1)},
    {"offload_lambda_share", SR_OPT_FLOAT, "1.0", "offload_budget reward: penalty per unit of share above the target", SR_RANGE(0, 1e9)},
    {"offload_lambda_switch", SR_OPT_FLOAT, "0.0", "offload_budget reward: penalty per span", SR_RANGE(0, 1e9)},
    {"reward_funcs", SR_OPT_JSON, "[\"accuracy\", \"format\", \"tag_count\"]", "reward functions (train/rewards.h)",
     SR_CHOICES("accuracy", "format", "tag_count", "coverage", "latency", "offload_budget")},
    {"reward_weights", SR_OPT_JSON, "null", "one weight per reward function (default: all 1)"},
    {"system_prompt", SR_OPT_STR, "null", "system turn of every prompt (default: none; the user turn is the problem alone)"},
    {"num_generations", SR_OPT_INT, "8", "completions per prompt (the group)", SR_RANGE(1, 65536)},
    {"max_prompt_length", SR_OPT_INT, "512", "prompts longer than this keep their last tokens (TRL's left truncation)", SR_RANGE(1, 1048576)},
    {"max_completion_length", SR_OPT_INT, "256", "most ids a completion has (tags and the big model's span included)", SR_RANGE(1, 1048576)},
    {"temperature", SR_OPT_FLOAT, "1.0", "sampling temperature (the training log-probs are taken at it)", SR_RANGE_X(0, 1000, 1, 0)},
    {"top_p", SR_OPT_FLOAT, "1.0", "nucleus sampling", SR_RANGE_X(0, 1, 1, 0)},
    {"top_k", SR_OPT_INT, "0", "top-k sampling (0: off)", SR_RANGE(0, 1000000000)},
    {"learning_rate", SR_OPT_FLOAT, "1e-06", "peak learning rate (AdamW)", SR_RANGE(0, 1e30)},
    HARNESS_OPTIMIZER_OPTIONS
    {"per_device_train_batch_size", SR_OPT_INT, "8", "completions per micro-batch per process", SR_RANGE(1, 65536)},
    {"gradient_accumulation_steps", SR_OPT_INT, "1", "micro-batches per optimizer step", SR_RANGE(1, 65536)},
    {"steps_per_generation", SR_OPT_INT, "null", "micro-batches one generation covers (default: gradient_accumulation_steps; a multiple of it)", SR_RANGE(1, 65536)},
    {"num_iterations", SR_OPT_INT, "1", "passes over each generation (old log-probs taken when > 1)", SR_RANGE(1, 65536)},
    {"beta", SR_OPT_FLOAT, "0.0", "KL coefficient (0: no reference model)", SR_RANGE(0, SR_INF)},
    GRPO_LOSS_CLIP_OPTIONS
    {"loss_type", SR_OPT_STR, "\"dapo\"", "loss aggregation", SR_CHOICES("grpo", "bnpo", "dr_grpo", "dapo"), SR_REQUIRED},
    {"scale_rewards", SR_OPT_JSON, "\"group\"", "advantage scaling: \"group\" std, \"batch\" std, or \"none\" (true = group, false = none)"},
    {"importance_sampling_level", SR_OPT_STR, "\"token\"", "policy ratio per token, or one per sequence (GSPO)", SR_CHOICES("token", "sequence"), SR_REQUIRED},
    {"use_bias_correction_kl", SR_OPT_BOOL, "true", "multiply the KL by the policy ratio"},
    {"mask_truncated_completions", SR_OPT_BOOL, "false", "leave completions without an EOS out of the loss"},
    {"vllm_importance_sampling_correction", SR_OPT_BOOL, "true", "correct for the difference between the sampler's log-probs and the trainer's"},
    GRPO_LOSS_IS_OPTIONS
    {"dynamic_sampling", SR_OPT_BOOL, "false", "DAPO: drop groups whose rewards are all equal and decode new prompts instead"},
    {"dynamic_sampling_max_rounds", SR_OPT_INT, "4", "dynamic sampling: decoding rounds per generation at most (then the batch is filled with dropped groups)", SR_RANGE(1, 1000)},
    {"seed", SR_OPT_INT, "42", "seed of the data order and the rollout streams", SR_RANGE(0, SR_JSON_INT_MAX)},
    {"max_steps", SR_OPT_INT, "-1", "optimizer steps; > 0 overrides num_train_epochs", SR_RANGE(-1, 1e9)},
    {"num_train_epochs", SR_OPT_FLOAT, "1", "epochs over the prompts (when max_steps <= 0)", SR_RANGE(0, 1e6)},
    {"logging_steps", SR_OPT_INT, "10", "log (metrics.jsonl, TensorBoard, stderr) every N steps", SR_RANGE(1, 1e9)},
    {"save_steps", SR_OPT_INT, "500", "write checkpoint-<step>/ every N steps (a multiple of the steps one generation serves) and at the end", SR_RANGE(1, 1e9)},
    {"save_total_limit", SR_OPT_INT, "null", "keep only the last N checkpoints (default, or 0: all)", SR_RANGE(0, 1e9)},
    HARNESS_OUTPUT_OPTIONS
    {"gradient_checkpointing", SR_OPT_BOOL, "true", "recompute each layer in the backward (less memory, same gradients)"},
    {"bf16", SR_OPT_BOOL, "true", "bf16 weights/activations with fp32 master and optimizer state (CUDA; the CPU computes in fp32)"},
    {"stop_after_steps", SR_OPT_INT, "0", "stop (with a checkpoint) after this step as if interrupted; the schedule still runs to the end", SR_RANGE(0, 1e9)},
    {"peak_tflops", SR_OPT_FLOAT, "0", "peak dense TFLOP/s of one device for MFU (0: from the GPU's name)", SR_RANGE(0, 1e9)},
    {"entropy_max_tokens", SR_OPT_INT, "1000000000", "the entropy metric: over at most this many loss tokens per process on a logging step, from the loss's own forward (0: not computed)", SR_RANGE(0, 1e9)},
    {"kv_cache_gb", SR_OPT_FLOAT, "0", "KV pool of each engine in GiB (0: what one generation batch needs)", SR_RANGE(0, 1e6)},
};
_Static_assert(sizeof GRPO_OPTIONS / sizeof GRPO_OPTIONS[0] == GRPO_N_OPTIONS, "GRPO_N_OPTIONS");

int grpo_options_from_config(GrpoOptions *o, const SrConfig *cfg, SrError *err) {
    memset(o, 0, sizeof *o);
    if (harness_options_from_config(&o->harness, cfg, err)) return -1;
    o->big_model_name_or_path = sr_config_str(cfg, "big_model_name_or_path");
    o->system_prompt = sr_config_str(cfg, "system_prompt");
    o->latency_table = sr_config_str(cfg, "latency_table");
    const char *mode = sr_config_str(cfg, "rollout_mode");
    o->rollout_mode = mode && !strcmp(mode, "split") ? SPLIT_MODE_SPLIT : SPLIT_MODE_SMALL;
    const char *rule = sr_config_str(cfg, "span_end_rule");
    if (split_end_rule_parse(rule ? rule : "small_close", &o->span_end_rule))
        return sr_fail(err, "span_end_rule: unknown rule");
    o->max_span_tokens = (int)sr_config_int(cfg, "max_span_tokens");
    o->gradient_accumulation_steps = (int)sr_config_int(cfg, "gradient_accumulation_steps");
    o->steps_per_generation = sr_config_has(cfg, "steps_per_generation") ? (int)sr_config_int(cfg, "steps_per_generation")
                                                                          : o->gradient_accumulation_steps;
    o->num_iterations = (int)sr_config_int(cfg, "num_iterations");
    o->num_generations = (int)sr_config_int(cfg, "num_generations");
    o->max_prompt_length = (int)sr_config_int(cfg, "max_prompt_length");
    o->max_completion_length = (int)sr_config_int(cfg, "max_completion_length");
    o->temperature = sr_config_float(cfg, "temperature");
    o->top_p = sr_config_float(cfg, "top_p");
    o->top_k = (int)sr_config_int(cfg, "top_k");
    o->seed = (uint64_t)sr_config_int(cfg, "seed");
    o->stop_after_steps = (long)sr_config_int(cfg, "stop_after_steps");
    o->reward_funcs = sr_config_get(cfg, "reward_funcs");
    o->reward_weights = sr_config_get(cfg, "reward_weights");
    o->latency_penalty = sr_config_float(cfg, "latency_penalty");
    o->latency_batch = (int)sr_config_int(cfg, "latency_batch");
    o->offload_budget = sr_config_float(cfg, "offload_budget");
    o->offload_lambda_share = sr_config_float(cfg, "offload_lambda_share");
    o->offload_lambda_switch = sr_config_float(cfg, "offload_lambda_switch");
    o->dynamic_sampling = sr_config_bool(cfg, "dynamic_sampling");
    o->dynamic_sampling_max_rounds = (int)sr_config_int(cfg, "dynamic_sampling_max_rounds");
    o->kv_cache_gb = sr_config_float(cfg, "kv_cache_gb");
    o->entropy_max_tokens = (long)sr_config_int(cfg, "entropy_max_tokens");
    grpo_loss_config_default(&o->loss);
    if (grpo_loss_config_from_json(&o->loss, cfg->root, err)) return -1;

    /* the rules between keys the harness does not know */
    if (o->steps_per_generation % o->gradient_accumulation_steps)
        return sr_fail(err, "steps_per_generation (%d) must be a multiple of gradient_accumulation_steps (%d)",
                       o->steps_per_generation, o->gradient_accumulation_steps);
    long long gen = (long long)o->harness.per_device_train_batch_size * o->steps_per_generation;
    if (gen % o->num_generations)
        return sr_fail(err, "per_device_train_batch_size x steps_per_generation (%lld) must be a multiple of "
                       "num_generations (%d): every process decodes whole groups", gen, o->num_generations);
    int window = o->steps_per_generation / o->gradient_accumulation_steps * o->num_iterations;
    if (o->harness.save_steps % window)
        return sr_fail(err, "save_steps (%d) must be a multiple of the %d optimizer steps one generation serves "
                       "(steps_per_generation / gradient_accumulation_steps x num_iterations)", o->harness.save_steps,
                       window);
    if (o->stop_after_steps % window)
        return sr_fail(err, "stop_after_steps (%ld) must be a multiple of the %d optimizer steps one generation serves",
                       o->stop_after_steps, window);
    if (o->rollout_mode == SPLIT_MODE_SPLIT && !o->big_model_name_or_path)
        return sr_fail(err, "rollout_mode split needs big_model_name_or_path (the model that writes the spans)");
    GrpoRewardSpec rs;
    if (grpo_reward_spec_init(&rs, o->reward_funcs, o->reward_weights, err)) return -1;
    int need_lat = grpo_reward_spec_has(&rs, REWARD_LATENCY);
    grpo_reward_spec_free(&rs);
    if (need_lat && !o->latency_table)
        return sr_fail(err, "reward_funcs has latency: set latency_table (configs/latency/*.json)");
    /* the loss reads these under the same names; keep one source */
    o->loss.temperature = o->temperature;
    o->loss.max_completion_length = o->max_completion_length;
    return 0;
}

