/*
 * One pass of the layer stack over a batch of sequences held in a PAGED KV cache (the engine's
 * pool, engine/engine.c): any number of new tokens per sequence, each attending to its own
 * sequence's cached positions and to the new ones before it (attention_paged). Every layer
 * writes the new tokens' K, V at their cache rows (kv_store), then the final norm and the
 * lm_head run on the requested token rows only; the logits stay on the device.
 *
 * The model does not own the cache or the block tables: the caller (the engine) builds them.
 */
#ifndef SR_MODEL_MODEL_PAGED_H
#define SR_MODEL_MODEL_PAGED_H

#include "model.h"

typedef struct Qwen2PagedPass {
    int N;                          /* tokens in the pass */
    const int32_t *ids, *pos;       /* device i32 [N]: token ids, positions in their sequence */
    const int32_t *seq, *slot;      /* device i32 [N]: the token's sequence (its table row) and
                                       the cache row its K, V are written to */
    const int32_t *table;           /* device i32 [sequences, max_blocks]: block tables */
    int max_blocks, block;          /* table row length; positions per block */
    void *const *kcache, *const *vcache; /* per layer: [rows, Hkv*D] act buffers */
    int n_out;                      /* rows whose logits are wanted */
    const int32_t *out_rows;        /* device i32 [n_out]: token rows (in [0, N)) */
    void *logits;                   /* act [n_out, V], overwritten */
} Qwen2PagedPass;

/* Takes the inference workspace for passes of up to n tokens now (engine_open), so that it is
 * not grown mid-run. */
void qwen2_paged_reserve(Qwen2Model *m, int n);
/* Runs the pass on the model's inference workspace (grown to N tokens if needed). */
void qwen2_paged_forward(Qwen2Model *m, const Qwen2PagedPass *p);

#endif
