/*
 * Private to model/model*.c: the activation layout and the one layer stack
 * (qwen2_stack_forward, in model.c) that training (model.c), full logits and hidden states
 * (model_infer.c, model_stats.c) and cached decoding (model_infer.c) all run. Nothing outside
 * model/model*.c includes this.
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
    void *mem;          /* NULL: not created yet, or released (qwen2_release_workspace) */
    size_t bytes;       /* of mem */
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
    int h0, h1;      /* the rows the lm_head ran on: the first target's to after the last's */
    int has_targets, has_weights, n_valid;
    float norm;      /* loss normaliser: n_valid, or the caller's (qwen2_forward_backward_norm) */
    float temp;      /* logit temperature the last forward used (1 = none) */
    void *norm_t, *dnorm_t; /* [C] each: norm weight / temp, and its gradient (temp != 1) */
    float *entropy;  /* device [N]: the entropy of each target row's distribution */
    /* Prefix sharing (qwen2_forward_shared): the N rows are the deduplicated stream (a prompt
     * shared by several documents appears once); the attention runs on the unshared stream of
     * n_att tokens, token f being row map[f] at position pos_att[f], and each row reads back
     * the output of its first copy inv[r]. Layers' lse are [Hq, max(cap, att_cap)]. */
    int att_cap;        /* unshared tokens the buffers below hold (0: none) */
    int n_att;          /* the last forward's unshared tokens (0: it did not share) */
    int32_t *map, *pos_att; /* device [n_att] */
    int32_t *inv;       /* device [N] */
    void *qa, *oa, *dqa, *doa; /* [n_att, QD] the rows gathered into the unshared layout */
    void *ka, *va, *dka, *dva; /* [n_att, KVD] */
} TrainActs;

/* Inference workspace (qwen2_logits, hidden states, the engine's passes), one allocation, for
 * `cap` tokens. */
typedef struct InferActs {
    int cap, chunk;     /* token capacity, logits rows */
    void *mem;          /* NULL: not created yet, or released */
    size_t bytes;       /* of mem */
    int32_t *ids, *pos; /* device [cap] */
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
    ATTN_PAGED,      /* any number of tokens per sequence against a paged cache (attention_paged:
                        pos = position in the sequence, seq = the token's sequence, whose
                        positions are found through its block table) */
    ATTN_SHARED,     /* attention_forward over the unshared stream of a prefix-shared batch
                        (TrainActs.map / inv / pos_att): gather, attend, gather back */
} AttnMode;

/* How one layer's attention runs (qwen2_layer_forward). A pass of the stack shares one plan
 * and sets kcache, vcache to each layer's cache in turn (StackRun.kcache[l]). */
typedef struct AttnPlan {
    AttnMode mode;
    void *kcache, *vcache;  /* this layer's cache, or NULL (no cache) */
    const int32_t *slot;    /* device [N]: cache row of each token (when caching) */
    const int32_t *seq;     /* paged: device [N], each token's sequence */
    const int32_t *table;   /* paged: device [sequences, max_blocks] block tables */
    int max_blocks, block;  /* paged: table row length, positions per block */
    const TrainActs *share; /* shared: the map, positions and gather buffers */
} AttnPlan;

static inline void *sr_act_at(const ModelActs *a, const void *p, size_t elems) {
    return (char *)p + elems * a->asz;
}

/* Runs one decoder layer: x [N, C] -> a->res2. pos: device [N]. */
void qwen2_layer_forward(Qwen2Model *m, const LayerParams *p, const LayerActs *a, const void *x,
                         int N, const int32_t *pos, const AttnPlan *plan);

/* One pass of the layer stack over N tokens: the embedding, then every decoder layer. Every
 * path runs it: training (a LayerActs set per layer, kept for the backward), full logits and
 * hidden states (one set shared by all layers, no cache), decoding against a cache (the same
 * shared set, a plan and each layer's K, V cache). ids, pos: device [N]. */
typedef struct StackRun {
    int N;
    const int32_t *ids, *pos;
    void *emb;                /* [N, C] embedding out = layer 0's input */
    const LayerActs *acts;    /* per_layer ? acts[l] for layer l : acts[0] for every layer */
    int per_layer;
    const AttnPlan *plan;     /* NULL: packed documents (pos), no cache */
    void *const *kcache, *const *vcache; /* per layer [L], with a plan that caches; else NULL */
} StackRun;

/* Returns the last layer's output [N, C] (its acts' res2). */
const void *qwen2_stack_forward(Qwen2Model *m, const StackRun *r);
/* qwen2_hidden_forward (model_stats.c) with `what` naming the caller in a refusal: the stack
 * and the final norm on the inference workspace (rows in InferActs.sel). */
int qwen2_hidden_pass(Qwen2Model *m, const int32_t *ids, const int32_t *pos, int N,
                      const char *what, SrError *err);
/* Grows the inference workspace to at least n tokens. */
void qwen2_infer_reserve(Qwen2Model *m, int n);
/* Checks a host id array: every id in [0, V). what names the caller in the message. */
int qwen2_check_ids(const Qwen2Model *m, const int32_t *ids, int N, const char *what,
                    SrError *err);
/* Checks a batch of packed documents (host arrays), what every pass without a cache needs:
 * N > 0, ids in the vocabulary, positions 0 at a document start and then +1, and every
 * position below max_position_embeddings. what names the caller in the message. */
int qwen2_check_batch(const Qwen2Model *m, const int32_t *ids, const int32_t *pos, int N,
                      const char *what, SrError *err);

#endif
