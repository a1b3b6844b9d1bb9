/*
 * Qwen2ForCausalLM, written once against the op table (kernels/ops.h).
 *
 * Parameters are found by their Hugging Face names (model.embed_tokens.weight,
 * model.layers.{l}.self_attn.q_proj.weight, ..., model.norm.weight, lm_head.weight) and live
 * in one allocation on the backend; gradients in a second one of the same layout.
 *
 * A batch is a flat stream of N tokens of packed documents (see ops.h): ids[N], pos[N]
 * (position inside the document), targets[N] (next-token id, or -1 where no loss is taken)
 * and optional per-token weights[N]. Loss = -sum_i w_i log p(targets[i]) / sum_i [targets[i]>=0]
 * i.e. the mean cross-entropy over the masked-in tokens (weights default to 1).
 *
 * Who owns what (all on the model's backend unless said otherwise):
 *   - the model: its parameters (params, for its whole life), their gradients (grads, from the
 *     first backward or qwen2_zero_grad on), and two workspaces, each created by the first call
 *     that needs it, grown when a larger call comes, and freed by qwen2_release_workspace or
 *     qwen2_free:
 *       QWEN2_WS_TRAIN  the activations qwen2_forward* saves for qwen2_backward, and the
 *                       backward's scratch (qwen2_train_act_bytes);
 *       QWEN2_WS_INFER  one activation set shared by all layers for qwen2_logits,
 *                       qwen2_hidden_* and the engine's passes (it holds the hidden states a
 *                       qwen2_hidden_forward keeps; qwen2_infer_act_bytes);
 *   - the caller: every host array it passes; KV caches are the engine's (engine/engine.h).
 * The two workspaces never share memory, so decoding does not disturb a pending backward.
 */
#ifndef SR_MODEL_MODEL_H
#define SR_MODEL_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../kernels/ops.h"
#include "qwen2_config.h"

typedef struct ParamInfo {
    char name[96];
    int ndim;
    int64_t shape[2];
    size_t numel;
    size_t offset; /* in elements, into params / grads */
} ParamInfo;

typedef struct LayerParams {
    void *ln1_w, *q_w, *q_b, *k_w, *k_b, *v_w, *v_b, *o_w, *ln2_w, *gate_w, *up_w, *down_w;
} LayerParams;

typedef struct Qwen2Model {
    Qwen2Config cfg;
    SrBackend *be;

    int n_params;
    ParamInfo *info;      /* n_params entries, in HF order */
    size_t total_numel;   /* >= the parameter count: each parameter starts at a multiple of
                             64 elements (aligned vector access); the padding stays zero */
    size_t alloc_numel;   /* elements allocated for params and grads: total_numel, or more
                             after qwen2_reserve_flat (zero padding past total_numel) */
    void *params;         /* act buffer, alloc_numel elements */
    void *grads;          /* act buffer, allocated on first backward (NULL before) */

    /* views into params / grads (lm_head aliases embed when tied) */
    void *embed, *norm_w, *lm_head;
    LayerParams *layers;
    void *d_embed, *d_norm_w, *d_lm_head;
    LayerParams *d_layers;

    /* activations of the last forward (for the backward), sized for act_capacity tokens
       (0 after qwen2_release_workspace(QWEN2_WS_TRAIN)) */
    int act_capacity;
    void *acts;           /* opaque: model/model.c owns the layout */
    int last_N;           /* tokens in the last forward; 0 = nothing saved */
    int lm_chunk;         /* tokens per lm_head/cross-entropy chunk (default 256) */
    int grad_checkpointing; /* 1: the forward keeps only each layer's input (the residual
                               stream) and the backward recomputes the layer's activations
                               before its backward (same gradients, far less memory) */
    float logit_temperature; /* qwen2_forward / backward divide the logits by it before the
                                log-softmax (GRPO takes log-probs at the sampling temperature,
                                as TRL does); 0 or 1 = none. Inference paths ignore it. */
} Qwen2Model;

/* Allocates parameters for cfg (zeroed). The model keeps a copy of cfg. */
int qwen2_build(Qwen2Model *m, const Qwen2Config *cfg, SrBackend *be, SrError *err);
void qwen2_free(Qwen2Model *m);
/* HF's _init_weights: Linear and Embedding weights ~ N(0, initializer_range), biases 0,
 * RMSNorm weights 1. Deterministic for a seed. */
void qwen2_init_random(Qwen2Model *m, uint64_t seed);
const ParamInfo *qwen2_param(const Qwen2Model *m, const char *name);
void *qwen2_param_ptr(const Qwen2Model *m, const char *name);   /* into params */
void *qwen2_grad_ptr(const Qwen2Model *m, const char *name);    /* into grads */
/* Grows the params and grads allocations to at least n elements (the tail is zero padding
 * the model never reads; parameter values are kept). Data-parallel sharding uses it so the
 * flat vector splits into equal, aligned shards. total_numel is unchanged. */
void qwen2_reserve_flat(Qwen2Model *m, size_t n);

/* Loads config.json + safetensors (single or sharded) from an HF model directory. Every
 * parameter must be present with the shape config.json implies (lm_head.weight may be absent
 * when tied); F32/BF16/F16 are converted. */
int qwen2_load(Qwen2Model *m, const char *dir, SrBackend *be, SrError *err);
/* Writes config.json + model.safetensors (dtype: ST_F32 / ST_BF16 / ST_F16 as int) into dir. */
int qwen2_save(const Qwen2Model *m, const char *dir, int st_dtype, SrError *err);

/* Forward pass. ids, pos, targets, weights are HOST arrays (copied to the device).
 * targets may be NULL (no loss; logprob not computed). If logprob_out != NULL it receives
 * log p(targets[i]) per token (0 where targets[i] < 0). *loss_out (may be NULL) receives the
 * mean loss. Saves what the backward needs. */
int qwen2_forward(Qwen2Model *m, const int32_t *ids, const int32_t *pos, const int32_t *targets,
                  const float *weights, int N, float *loss_out, float *logprob_out, SrError *err);
/* Prefix sharing: a batch whose documents share a prefix (GRPO's G completions of one
 * prompt) holds the shared rows once. The attention still sees each document whole: the
 * "unshared stream" of n_att tokens is packed documents as qwen2_forward takes them, token f
 * being row map[f] of the batch at position pos_att[f] (= pos[map[f]]); every row is at least
 * one token of it, and a row's attention output is its first token's. The norms, projections,
 * MLP and head run once per row, the attention on the unshared stream. */
typedef struct Qwen2Share {
    int n_att;
    const int32_t *map;     /* host [n_att] */
    const int32_t *pos_att; /* host [n_att] */
} Qwen2Share;
/* qwen2_forward of a prefix-shared batch (share may be NULL: plain packed documents; pos are
 * then document positions as qwen2_forward checks them), no loss weights: logprob_out
 * (may be NULL) as qwen2_forward's; entropy_out (host [N], may be NULL) receives the entropy
 * of the (temperature-scaled) distribution of each row with a target, 0 elsewhere. The
 * backward (qwen2_backward_weights) follows the sharing. */
int qwen2_forward_shared(Qwen2Model *m, const int32_t *ids, const int32_t *pos,
                         const int32_t *targets, int N, const Qwen2Share *share,
                         float *logprob_out, float *entropy_out, SrError *err);
/* Gradient of the last forward's loss w.r.t. every parameter, ACCUMULATED into m->grads
 * (call qwen2_zero_grad first for a fresh step). */
int qwen2_backward(Qwen2Model *m, SrError *err);
void qwen2_zero_grad(Qwen2Model *m);
/* A training step's forward + backward in one call (gradients ACCUMULATED as by
 * qwen2_backward). Same results as qwen2_forward then qwen2_backward, but the lm_head and
 * cross-entropy backward run inside the forward's chunk loop, so the [N, V] logits are
 * computed once instead of twice. */
int qwen2_forward_backward(Qwen2Model *m, const int32_t *ids, const int32_t *pos,
                           const int32_t *targets, const float *weights, int N, float *loss_out,
                           float *logprob_out, SrError *err);
/* qwen2_forward_backward with the loss normaliser given explicitly: loss_out receives
 * -sum_i w_i log p(targets[i]) / n_norm, and the gradient accumulated is that loss's.
 * qwen2_forward_backward is this with n_norm = this batch's own count of targets >= 0.
 * Pass n_norm = the count of targets >= 0 over the WHOLE global batch (every micro-batch of
 * gradient accumulation, on every data-parallel rank): the gradients of the pieces then sum
 * to the gradient of the global batch's mean loss, exactly as if it ran as one batch. */
int qwen2_forward_backward_norm(Qwen2Model *m, const int32_t *ids, const int32_t *pos,
                                const int32_t *targets, const float *weights, int N,
                                double n_norm, float *loss_out, float *logprob_out,
                                SrError *err);
/* Gradient of -sum_i weights[i] log p(targets[i]) / n_norm for the LAST forward's tokens and
 * targets, with weights given now (host [N]) rather than before the forward: a loss that is
 * a function of the log-probs (GRPO) runs qwen2_forward, computes d loss / d logprob_i on the
 * host, then passes weights[i] = -d loss / d logprob_i and n_norm = 1. ACCUMULATED into
 * m->grads like qwen2_backward. */
int qwen2_backward_weights(Qwen2Model *m, const float *weights, double n_norm, SrError *err);
/* Bytes of the training activation allocation (saved activations + backward scratch) for N
 * tokens under the model's current grad_checkpointing setting. */
size_t qwen2_train_act_bytes(const Qwen2Model *m, int N);
/* Bytes of the inference workspace (qwen2_logits, the engine's passes) for n tokens per pass. */
size_t qwen2_infer_act_bytes(const Qwen2Model *m, int n);
/* Workspaces (see "Who owns what" above). qwen2_release_workspace frees the named ones now,
 * so that rollouts and training can share a device without holding each other's memory (e.g.
 * release QWEN2_WS_TRAIN before decoding, QWEN2_WS_INFER before the next training step); the
 * next call that needs one re-creates it, and its results are the same bits. Releasing
 * QWEN2_WS_TRAIN forgets the saved forward (qwen2_backward fails until the next forward);
 * releasing QWEN2_WS_INFER forgets the hidden states. KV caches are the engine's and stay. */
enum { QWEN2_WS_TRAIN = 1, QWEN2_WS_INFER = 2 };
void qwen2_release_workspace(Qwen2Model *m, int which);
/* Bytes the named workspaces hold now (0 when not created or released). */
size_t qwen2_workspace_bytes(const Qwen2Model *m, int which);
/* Full logits [N, V] (host, fp32) for a batch; for tests, scoring small batches, generation. */
int qwen2_logits(Qwen2Model *m, const int32_t *ids, const int32_t *pos, int N, float *logits,
                 SrError *err);

#endif
