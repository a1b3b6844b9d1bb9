/*
 * splitreason grpo: GRPO with a latency-aware reward on small or real split rollouts
 * (train/grpo.h). Thin: the settings (TRL GRPOConfig names) -> GrpoOptions -> communicator
 * (single, or MPI under mpirun/srun) -> grpo_run -> a summary line.
 */
#include <stdio.h>

#include "../common/log.h"
#include "../train/dist.h"
#include "../train/grpo.h"
#include "cli.h"

static int run(SrConfig *cfg, SrError *err) {
    GrpoOptions o;
    if (grpo_options_from_config(&o, cfg, err)) return -1;
    SrComm comm;
    if (sr_comm_init(&comm, err)) return -1;
    GrpoResult res;
    int rc = grpo_run(&o, cfg->root, &comm, &res, err);
    if (!rc && comm.rank == 0) {
        printf("grpo: steps %d -> %d of %d, reward %.4f -> %.4f, %.1fs (%.1fs generating, %.1fs training), "
               "checkpoint %s\n", res.start_step, res.end_step, res.total_steps, res.first_reward, res.last_reward,
               res.seconds, res.generation_seconds, res.training_seconds, res.last_checkpoint);
        fflush(stdout);
    }
    sr_comm_free(&comm);
    return rc;
}

/* the rules between settings (grpo_options_from_config): a broken one is a bad command line */
static int check(const SrConfig *cfg, SrError *err) {
    GrpoOptions o;
    return grpo_options_from_config(&o, cfg, err);
}

const SrCommand sr_cmd_grpo = {
    "grpo", "GRPO with a latency-aware reward on small or real split rollouts (TRL GRPOTrainer's recipe)",
    "splitreason grpo --config FILE [--key value ...]",
    "Trains model_name_or_path with GRPO on the problems of dataset_path (JSONL rows with problem and\n"
    "answer, or a solution whose last \\boxed{} is the gold). Each generation decodes\n"
    "per_device_train_batch_size x steps_per_generation completions per process (num_generations per\n"
    "prompt) with the policy alone (rollout_mode small: tags priced as if the big model wrote the\n"
    "spans) or with big_model_name_or_path writing the tagged spans (split: its tokens are context,\n"
    "not in the loss); judges them with reward_funcs x reward_weights (accuracy, format, tag_count,\n"
    "coverage, latency: -latency_penalty x the modelled slow-down from latency_table, offload_budget);\n"
    "optionally drops flat groups and decodes new prompts (dynamic_sampling); computes TRL 1.16's\n"
    "advantages and loss (loss_type, beta with the original model as reference, epsilon, ...) and\n"
    "takes AdamW steps (ZeRO-1 under mpirun). Writes output_dir/checkpoint-<step>/ (resume exactly\n"
    "with resume_from_checkpoint), metrics.jsonl + TensorBoard (reward, rewards/<name>/mean, kl,\n"
    "entropy, clip ratios, accuracy, offload_share, modelled_latency, generation_seconds,\n"
    "training_seconds, ...) and output_dir/rollouts/step-NNNNNN.jsonl.zst (every completion, its\n"
    "rewards, advantage and offload accounting). configs/grpo/ has the paper's 1.5B recipe and a CPU one.",
    GRPO_OPTIONS, GRPO_N_OPTIONS, run, NULL, check,
};
