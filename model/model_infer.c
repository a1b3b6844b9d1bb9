/*
 * Inference: full logits for a batch (qwen2_logits).
 *
 * It runs the layer stack of model.c on a separate workspace (model_internal.h InferActs), so
 * it never disturbs the activations a pending qwen2_backward needs. All layers share one set
 * of activation buffers there: nothing is kept for a backward. Decoding with a KV cache is the
 * engine's (engine/engine.h, through model_paged.h).
 */
#include "model_internal.h"
#include "model_stats.h"

/* the one path of full logits: the stack and the final norm, then the lm_head per chunk */
int qwen2_logits(Qwen2Model *m, const int32_t *ids, const int32_t *pos, int N, float *logits,
                 SrError *err) {
    if (qwen2_hidden_pass(m, ids, pos, N, "qwen2_logits", err)) return -1;
    return qwen2_hidden_logits(m, 0, N, logits, err);
}
