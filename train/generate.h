/*
 * Batched generation with a KV cache: prefill every prompt, then decode one token per live
 * sequence per step. Sequences finish independently (a stop id, a stop string, or the token
 * budget); finished ones drop out of the batch. Greedy, temperature, top-k and top-p
 * sampling, seeded: sequence b draws from its own RNG stream sr_rng_stream(seed, b), so a
 * sequence's text does not depend on what else is in the batch.
 * Each sampled token's log-prob is returned (see SrOps.sample for which distribution).
 */
#ifndef SR_TRAIN_GENERATE_H
#define SR_TRAIN_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "../data/tokenizer.h"
#include "model.h"

typedef enum { SR_FINISH_LENGTH = 0, SR_FINISH_STOP_ID = 1, SR_FINISH_STOP_STRING = 2 } SrFinish;

typedef struct GenConfig {
    int max_new_tokens;
    SrSampling sampling;
    uint64_t seed;
    const int32_t *stop_ids;     /* e.g. eos; the stop token is kept in the output */
    int n_stop_ids;
    const char *const *stop_strings; /* checked on the decoded completion; needs a tokenizer */
    int n_stop_strings;
} GenConfig;

typedef struct GenResult {
    int32_t *ids;      /* generated ids (malloc'd) */
    float *logprobs;   /* their log-probs */
    int n;
    SrFinish finish;
} GenResult;

/* Called with each sequence's newly releasable UTF-8 bytes (needs a tokenizer). */
typedef void (*GenStreamFn)(void *user, int seq, const char *bytes, size_t n);

/* prompts[b] has prompt_lens[b] >= 1 tokens. results[B] are filled (free with
 * gen_result_free). tok may be NULL when there are no stop strings and no stream callback. */
int generate(Qwen2Model *m, const Tokenizer *tok, const int32_t *const *prompts,
             const int *prompt_lens, int B, const GenConfig *g, GenResult *results,
             GenStreamFn stream, void *user, SrError *err);
void gen_result_free(GenResult *r);
const char *gen_finish_name(SrFinish f);

#endif
