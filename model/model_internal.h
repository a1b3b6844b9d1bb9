/*
 * Private to model/model*.c: the activation layout and the layer stack shared by training
 * (model.c) and inference (model_infer.c). Nothing outside model/model*.c includes this.
 *
 * Shapes: N tokens, C = hidden, QD = Hq*D, KVD = Hkv*D, I = intermediate, V = vocab.
 */
#ifndef SR_MODEL_MODEL_INTERNAL_H
#define SR_MODEL_MODEL_INTERNAL_H

#include "model.h"

/* One decoder layer's activations. In training every layer has its own set (what the
 * backward reads); in inference all layers share one set. */
typedef struct LayerActs {
    void *ln1;     /* [N, C]   input_layernorm out = input of q/k/v */
    float *rstd1;  /* [N]      (NULL in inference) */
    void *q;       /* [N, QD]  after bias and RoPE */
    void *k, *v;   /* [N, KVD] k after RoPE */
    void *att;     /* [N, QD]  attention out = input of o_proj */
    float *lse;    /* [Hq, N]  (NULL in inference) */
    void *res1;    /* [N, C]   residual after attention = input of post_attention_layernorm */
    void *ln2;     /* [N, C]   input of gate/up */
    float *rstd2;  /* [N]      (NULL in inference) */
    void *gate, *up; /* [N, I] */
    void *hmid;    /* [N, I]   silu(gate)*up = input of down_proj: scratch shared by all
                               layers (the backward recomputes it) */
    void *res2;    /* [N, C]   layer output (residual after the MLP) */
} LayerActs;

/* Training activations + backward scratch, one allocation, for `cap` tokens.
 * With gradient checkpointing (ckpt) only layers[l].res2 (each layer's output = the next
 * layer's input) is per layer; every other LayerActs field of every layer points into ONE
 * shared set, which the backward refills by re-running the layer forward. */
typedef struct TrainActs {
    int cap, chunk;     /* token capacity; lm_chunk the logits buffer was sized for */
    int ckpt;           /* the layout is the gradient-checkpointing one */
    void *mem;
    int32_t *ids, *pos, *targets; /* device [N] */
    float *weights, *logprob;     /* device [N] */
    void *emb;          /* [N, C] embedding out = input of layer 0 */
    LayerActs *layers;  /* L */
    void *lnf;          /* [N, C] final norm out = input of lm_head */
    float *rstdf;       /* [N] */
    void *hmid;         /* [N, I] silu(gate)*up: forward scratch, recomputed in the backward */
    void *logits;       /* [chunk, V] */
    /* backward scratch */
    void *dres, *dln;   /* [N, C] */
    void *dq, *datt;    /* [N, QD] */
    void *dk, *dv;      /* [N, KVD] */
    void *dh, *dgate, *dup; /* [N, I] */
    /* what the last forward saw */
    int head_done;   /* the forward already ran the lm_head backward (fused step) */
    int has_targets, has_weights, n_valid;
    float norm;      /* loss normaliser: n_valid, or the caller's (qwen2_forward_backward_norm) */
    float temp;      /* logit temperature the last forward used (1 = none) */
    void *norm_t, *dnorm_t; /* [C] each: norm weight / temp, and its gradient (temp != 1) */
} TrainActs;

/* Inference workspace (qwen2_logits, KV cache), one allocation, for `cap` tokens. */
typedef struct InferActs {
    int cap, chunk, B;  /* token capacity, logits rows, max sequences (len/run buffers) */
    void *mem;
    int32_t *ids, *pos, *slot; /* device [cap] */
    int32_t *len;       /* device [B] */
    void *emb;          /* [cap, C] */
    LayerActs layer;    /* shared by all layers */
    void *hmid;         /* [cap, I] */
    void *sel;          /* [cap, C] rows gathered for the lm_head */
    void *logits;       /* [chunk, V] */
} InferActs;

typedef struct ModelActs {
    size_t asz;         /* bytes per act element */
    TrainActs train;
    InferActs infer;
} ModelActs;

/* How a layer's attention runs. */
typedef enum {
    ATTN_PACKED = 0, /* attention_forward over packed documents (pos) */
    ATTN_DECODE,     /* one token per sequence against the cache (attention_decode) */
    ATTN_EXTEND,     /* any number of tokens per sequence against the cache (attention_extend:
                        pos = position in the sequence, slot = cache row) */
} AttnMode;

typedef struct AttnPlan {
    AttnMode mode;
    void *kcache, *vcache;  /* this layer's cache, or NULL (no cache) */
    const int32_t *slot;    /* device [N]: cache row of each token (when caching) */
    const int32_t *len;     /* device [B]: cache length incl. the new token (decode) */
    int max_seq;
    int n_runs;             /* decode: runs of consecutive sequences; token rows are packed */
    const int *run_b0, *run_n; /* in run order: first sequence and count of each run */
} AttnPlan;

static inline void *sr_act_at(const ModelActs *a, const void *p, size_t elems) {
    return (char *)p + elems * a->asz;
}

/* Runs one decoder layer: x [N, C] -> a->res2. pos: device [N]. */
void qwen2_layer_forward(Qwen2Model *m, const LayerParams *p, const LayerActs *a, const void *x,
                         int N, const int32_t *pos, const AttnPlan *plan);
/* Grows the inference workspace to at least n tokens / B sequences. */
void qwen2_infer_reserve(Qwen2Model *m, int n, int B);
/* Checks a host id array: every id in [0, V). */
int qwen2_check_ids(const Qwen2Model *m, const int32_t *ids, int N, const char *what,
                    SrError *err);

#endif
