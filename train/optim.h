/*
 * AdamW over a Qwen2 model's parameters, ZeRO-1 sharded, and the learning-rate schedules.
 *
 * The optimizer owns this rank's slice [shard.lo, shard.lo + shard.shard_n) of the model's
 * flat parameter vector (dist.h, sr_shard_layout; one rank owns everything when the
 * communicator is single) and keeps, for that slice only, fp32 master weights and the fp32
 * moments m (exp_avg) and v (exp_avg_sq). On the CPU the parameters are fp32 already and the
 * master aliases them; on CUDA the parameters are the bf16 working copy and the master is a
 * separate buffer (AdamW writes both).
 *
 * Weight decay follows transformers' Trainer.get_decay_parameter_names (what TRL uses): no
 * decay for a parameter whose lower-cased name matches "bias", "layernorm", "rmsnorm",
 * "(^|.)norm(.|$)" or "_norm(.|$)" (biases, RMSNorm weights, model.norm.weight); decay for
 * everything else. The slice is cut into runs of equal decay, one ops->adamw call each.
 *
 * A step (train_step.h does the whole thing):
 *   gradients reduce-scattered to their owners  (sr_optim_reduce_grads)
 *   global grad norm over the full gradient     (sr_optim_grad_norm: shard sums allreduced)
 *   AdamW on the shard, grads times the clip    (sr_optim_update)
 *   parameters all-gathered                     (sr_optim_gather_params)
 *
 * Schedules reproduce transformers' get_scheduler (LambdaLR over the optimizer step count:
 * the k-th update, k = 0, 1, ..., uses lr * lambda(k)), formula for formula, in double.
 */
#ifndef SR_TRAIN_OPTIM_H
#define SR_TRAIN_OPTIM_H

#include <stddef.h>

#include "../common/error.h"
#include "dist.h"
#include "../model/model.h"

/* ---- learning-rate schedules ------------------------------------------------------------ */

typedef enum {
    SR_LR_CONSTANT = 0,          /* "constant" */
    SR_LR_CONSTANT_WITH_WARMUP,  /* "constant_with_warmup" */
    SR_LR_LINEAR,                /* "linear" */
    SR_LR_COSINE,                /* "cosine" */
    SR_LR_COSINE_WITH_MIN_LR     /* "cosine_with_min_lr" */
} SrLrKind;

typedef struct SrLrSchedule {
    SrLrKind kind;
    double lr;           /* learning_rate: the peak */
    int total_steps;     /* num_training_steps (optimizer steps) */
    int warmup_steps;    /* resolved (sr_lr_warmup_steps) */
    double num_cycles;   /* cosine waves: 0.5 = one half-cosine down (transformers' default) */
    double min_lr_rate;  /* cosine_with_min_lr: the floor as a fraction of lr */
} SrLrSchedule;

/* "constant", "constant_with_warmup", "linear", "cosine", "cosine_with_min_lr" */
int sr_lr_kind_parse(const char *name, SrLrKind *out, SrError *err);
const char *sr_lr_kind_name(SrLrKind k);
/* Warmup steps as transformers resolves them: warmup_steps >= 1 -> (int)warmup_steps;
 * 0 < warmup_steps < 1 -> ceil(total * warmup_steps) (transformers 5: a ratio); else
 * warmup_ratio > 0 -> ceil(total * warmup_ratio) (transformers 4 / TRL's warmup_ratio);
 * else 0. */
int sr_lr_warmup_steps(double warmup_steps, double warmup_ratio, int total_steps);
/* Fills s (num_cycles 0.5). Errors on an unknown name, total_steps < 1 for the decaying
 * schedules, lr < 0, or min_lr_rate outside [0, 1]. */
int sr_lr_schedule_init(SrLrSchedule *s, const char *name, double lr, int total_steps,
                        double warmup_steps, double warmup_ratio, double min_lr_rate,
                        SrError *err);
/* The learning rate of optimizer step `step` (0-based: the first update uses step 0). */
double sr_lr_at(const SrLrSchedule *s, int step);

/* ---- AdamW, ZeRO-1 ----------------------------------------------------------------------- */

typedef struct SrAdamWConfig {
    float beta1, beta2, eps;  /* adam_beta1, adam_beta2, adam_epsilon */
    float weight_decay;       /* applied to the decay group only */
    float max_grad_norm;      /* global-norm clipping; <= 0: none */
    int master_copy;          /* 1: a separate fp32 master even on the CPU (always on CUDA);
                                 exercises the GPU path's bookkeeping in CPU tests */
} SrAdamWConfig;

/* transformers' TrainingArguments defaults: betas (0.9, 0.999), eps 1e-8, weight_decay 0,
 * max_grad_norm 1.0 */
void sr_adamw_config_default(SrAdamWConfig *c);

/* 1 if the parameter gets weight decay (the rule above) */
int sr_param_decays(const char *name);

typedef struct SrOptRun {
    size_t off, n;   /* elements, relative to the shard start */
    int decay;
} SrOptRun;

typedef struct SrOptimizer {
    SrAdamWConfig cfg;
    Qwen2Model *m;
    SrComm *comm;
    SrShard shard;        /* this rank's slice of the flat vector */
    size_t n_own;         /* elements of the slice inside total_numel (the rest is padding) */
    float *master;        /* f32 [shard_n] on the backend; aliases params + lo on the CPU */
    float *exp_avg, *exp_avg_sq; /* f32 [shard_n] */
    int master_is_params;
    int n_runs;
    SrOptRun *runs;       /* the slice in runs of equal decay */
    int step;             /* updates taken (AdamW's t is step + 1 during an update) */
} SrOptimizer;

/* Shards the model's flat vector over comm (growing params/grads with zero padding to
 * size * shard_n, qwen2_reserve_flat), allocates the shard's state and copies the master
 * from the current parameters. comm must be attached to m's backend. Every rank must start
 * from the same weights (load the same checkpoint, or init with the same seed). On the CPU
 * the master points into m->params: do not reallocate them afterwards. */
int sr_optim_init(SrOptimizer *o, Qwen2Model *m, SrComm *comm, const SrAdamWConfig *cfg,
                  SrError *err);
void sr_optim_free(SrOptimizer *o);
/* Reloads the master from the model's parameters (after loading new weights). */
void sr_optim_sync_master(SrOptimizer *o);

/* Sums every rank's gradients; afterwards this rank's slice of m->grads holds the sum (the
 * rest of m->grads is undefined until the next qwen2_zero_grad). No-op on one process. */
void sr_optim_reduce_grads(SrOptimizer *o);
/* L2 norm of the full (reduced) gradient: this slice's sum of squares, summed over ranks. */
double sr_optim_grad_norm(SrOptimizer *o);
/* transformers / torch clip_grad_norm_: min(1, max_grad_norm / (norm + 1e-6)); 1 when
 * clipping is off */
float sr_optim_clip_coef(const SrAdamWConfig *cfg, double grad_norm);
/* One AdamW update of this slice: grads (times grad_scale) -> master, m, v -> params slice.
 * Advances o->step. */
void sr_optim_update(SrOptimizer *o, float lr, float grad_scale);
/* Sends every rank's parameter slice to every rank. No-op on one process. */
void sr_optim_gather_params(SrOptimizer *o);

/* The first parameter tensor with a non-finite value (in forward order, from the
 * embedding), or with a non-finite gradient (in backward order, from lm_head / the last
 * layer: where a NaN that propagates backwards started) -- over all ranks. name receives
 * the HF name or "" when none; returns 1 if one was found. grads: 0 values, 1 gradients
 * (after sr_optim_reduce_grads). Slow (one reduction per tensor): for diagnostics. */
int sr_optim_find_nonfinite(SrOptimizer *o, int grads, char *name, size_t name_size);

/* ---- checkpoints ---------------------------------------------------------------------------
 * dir/optimizer-rank<r>-of-<size>.safetensors (5-digit numbers): F32 "master", "exp_avg",
 * "exp_avg_sq" [shard_n], I64 "step" [1] and I64 "layout" [5] = {rank, size, total_numel,
 * lo, shard_n}. Load checks the layout (same world size and model) and restores the master,
 * the moments, the step, and the parameters (from the master, then all-gathered). */
int sr_optim_save(const SrOptimizer *o, const char *dir, SrError *err);
int sr_optim_load(SrOptimizer *o, const char *dir, SrError *err);

#endif
