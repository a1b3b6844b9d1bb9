/*
 * Generation with one model: a short loop over the engine (engine/engine.h) through the split
 * decoder's scheduler in mode small (engine/split.h): continuous batching over a paged KV pool,
 * prompts prefilled in chunks under the engine's token budget, sequences finishing
 * independently (a stop id, a stop string, or the token budget) and leaving the batch while
 * waiting ones join. Greedy, temperature, top-k and top-p sampling on the device, seeded:
 * sequence b draws from its own RNG stream sr_rng_stream(seed, b), so a sequence's text does
 * not depend on what else is in the batch. Each sampled token's log-prob is returned (see
 * SrOps.sample for which distribution). Only ids the tokenizer has are generated (an embedding
 * is often padded past them): the sampler masks the rest. Positions and the host memory of the
 * results are checked before anything is allocated (generate_check_memory); the KV pool is
 * sized from GenConfig.kv_bytes, and sequences wait for blocks instead of reserving
 * max_prompt + max_new positions each.
 */
#ifndef SR_ENGINE_GENERATE_H
#define SR_ENGINE_GENERATE_H

#include <stddef.h>
#include <stdint.h>

#include "../data/tokenizer.h"
#include "../model/model.h"

typedef enum { SR_FINISH_LENGTH = 0, SR_FINISH_STOP_ID = 1, SR_FINISH_STOP_STRING = 2 } SrFinish;

typedef struct GenConfig {
    int max_new_tokens;
    SrSampling sampling;
    uint64_t seed;
    const int32_t *stop_ids;     /* e.g. eos; the stop token is kept in the output */
    int n_stop_ids;
    const char *const *stop_strings; /* checked on the decoded completion; needs a tokenizer */
    int n_stop_strings;
    int32_t vocab_limit; /* ids >= this are never generated; 0: the tokenizer's size (or the
                            model's vocab_size without a tokenizer). Never above vocab_size. */
    size_t kv_bytes;     /* the KV pool's budget (engine/engine.h); 0: the engine's default */
    int max_batch;       /* sequences decoding at once; 0: as many as the pool takes */
} GenConfig;

typedef struct GenResult {
    int32_t *ids;      /* generated ids (malloc'd) */
    float *logprobs;   /* their log-probs */
    int n;
    SrFinish finish;
} GenResult;

/* Called with each sequence's newly releasable UTF-8 bytes (needs a tokenizer). */
typedef void (*GenStreamFn)(void *user, int seq, const char *bytes, size_t n);
/* Called once per sequence as soon as it is finished (its text already streamed), with its
 * complete result (owned by generate's results array): what is done can be written out
 * before the rest of the batch, so a failure later loses nothing that was finished.
 * A non-zero return (with err set) stops generate with that error. */
typedef int (*GenDoneFn)(void *user, int seq, const GenResult *r, SrError *err);

typedef struct GenHooks {
    GenStreamFn text; /* may be NULL */
    GenDoneFn done;   /* may be NULL */
    void *user;
} GenHooks;

/* prompts[b] has prompt_lens[b] >= 1 tokens. results[B] are filled (free with
 * gen_result_free); on failure they are freed (the done hook has seen the finished ones).
 * hooks may be NULL. tok may be NULL when there are no stop strings and no text hook. */
int generate(Qwen2Model *m, const Tokenizer *tok, const int32_t *const *prompts,
             const int *prompt_lens, int B, const GenConfig *g, GenResult *results,
             const GenHooks *hooks, SrError *err);
/* What generate would allocate for B sequences of prompts up to max_prompt tokens (KV cache,
 * workspace, logits, results), checked BEFORE allocating: 0 when the positions fit the model
 * (max_position_embeddings) and the bytes fit under the memory bound
 * (sr_backend_memory_limit / sr_host_memory_limit), else -1 with err naming the positions, or
 * the bytes needed and the bound. generate calls it itself; a caller that allocates per-sequence arrays
 * of its own calls it first. */
int generate_check_memory(const Qwen2Model *m, int B, int max_prompt, const GenConfig *g,
                          SrError *err);
void gen_result_free(GenResult *r);
const char *gen_finish_name(SrFinish f);

#endif
