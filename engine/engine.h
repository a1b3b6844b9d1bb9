/*
 * The decoding engine of one model: a paged KV pool of sequences and one forward pass over any
 * set of them, each taking any number of new tokens (a prompt's prefill, a catch-up of Δ tokens
 * after the other model wrote a span, a decode step), with the last token's logits left on the
 * device for the sampler. The scheduler (engine/scheduler.h) and the split decoder
 * (engine/split.h) are built on it; so are generate(), eval, GRPO rollouts and bench latency.
 *
 * KV pool: every layer's K and V live in one pool of n_blocks blocks of block_size positions;
 * a sequence owns a block table (position p is in row table[p / block_size] * block_size +
 * p % block_size of the pool). Blocks are taken as a sequence grows and given back when it is
 * freed or truncated, so memory follows the tokens actually held, not max_prompt + max_new per
 * row. fork() makes a sequence that shares the source's blocks (reference counted); the first
 * write into a shared block copies it (copy-on-write), so G samples of one prompt hold the
 * prompt's KV once and prefill it once.
 *
 * The pool is sized from a byte budget (EngineOptions.kv_bytes; 0: a fraction of the memory the
 * backend has free after the weights and the workspace, see engine_default_kv_bytes). When the
 * pool cannot take a request's tokens, engine_reserve says so and changes nothing: the caller
 * (the scheduler) keeps the request waiting.
 *
 * Determinism: a sequence's logits depend only on its own tokens, never on which blocks it was
 * given (bit for bit: attention reads the same keys in the same order wherever they are), and
 * on which other sequences share the pass only as far as the matmuls do: every other op
 * computes a row from that row's inputs alone, but OpenBLAS's sgemm (and cuBLAS) round a row
 * differently for different row counts (about 1e-7 relative in the logits on the CPU), so
 * the same greedy token except at near-ties. With a row-independent matmul the CPU engine is
 * bit for bit batch-invariant (checked once by swapping in a naive matmul).
 */
#ifndef SR_ENGINE_ENGINE_H
#define SR_ENGINE_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../model/model.h"

typedef struct EngineOptions {
    size_t kv_bytes;   /* KV pool budget in bytes; 0: engine_default_kv_bytes */
    int block_size;    /* positions per block; 0: 16 */
    int max_seqs;      /* sequences alive at once (slots); 0: 256 */
    int max_tokens;    /* tokens in one engine_forward pass (workspace); 0: 4096 */
} EngineOptions;

typedef struct Engine Engine;

/* Opens an engine on a loaded model (the model is borrowed, not owned). Fails with a one-line
 * error when the pool budget cannot hold one block per layer or is beyond the backend's memory. */
int engine_open(Engine **out, Qwen2Model *m, const EngineOptions *opt, SrError *err);
void engine_close(Engine *e);
Qwen2Model *engine_model(const Engine *e);

/* the default pool budget: 90 % of what sr_backend_memory_limit leaves after the weights and
 * a workspace of opt->max_tokens tokens (CPU: sr_host_memory_limit, capped at 25 % of it) */
size_t engine_default_kv_bytes(const Qwen2Model *m, const EngineOptions *opt);
/* the most tokens one engine_forward takes (EngineOptions.max_tokens) */
int engine_max_tokens(const Engine *e);
/* The pool budget for a job that holds at most `positions` KV positions at once (e.g.
 * B x (max_prompt + max_new) for a batch): that (plus one block per sequence slot of rounding),
 * capped at engine_default_kv_bytes. Callers that know their need use it, so a small job on a
 * big machine does not take (and, on the CPU, zero) a quarter of the memory. */
size_t engine_kv_bytes_for(const Qwen2Model *m, const EngineOptions *opt, double positions);
/* bytes of one KV position of this model (all layers, K and V) */
size_t engine_kv_bytes_per_token(const Qwen2Model *m);

/* ---- sequences ---------------------------------------------------------------------------
 * A sequence is a small integer handle in [0, max_seqs). */
int engine_seq_new(Engine *e);                 /* an empty sequence; -1 when every slot is used */
int engine_seq_fork(Engine *e, int src);       /* shares src's tokens; -1 when no slot is free */
void engine_seq_free(Engine *e, int seq);      /* gives back its blocks and its slot */
int engine_seq_len(const Engine *e, int seq);  /* positions held */
/* Drops the positions >= len (len <= engine_seq_len). */
void engine_seq_truncate(Engine *e, int seq, int len);

/* Can seqs[i] each take n[i] more tokens right now (blocks free, counting copy-on-write of a
 * shared last block)? 1 yes, 0 no. Nothing changes either way. */
int engine_can_take(const Engine *e, int nseq, const int *seqs, const int *n);
/* blocks free, and the number of blocks n more tokens of seq would take */
int engine_free_blocks(const Engine *e);
int engine_blocks_needed(const Engine *e, int seq, int n);

/* ---- one pass ------------------------------------------------------------------------------
 * Feeds n[i] >= 1 new tokens to each sequence seqs[i] (distinct), tokens concatenated in ids
 * (host), in ONE pass of the layer stack: every token attends to its own sequence's cached
 * positions and to the new ones before it. Appends their K, V to the pool. Afterwards row i of
 * the engine's device logits holds the logits of seqs[i]'s LAST new token (the rows are what
 * engine_sample / engine_logprob_of / engine_logits read). -1 with err when the pool cannot
 * take the tokens (nothing is changed: check engine_can_take first), an id is outside the
 * vocabulary, a position would pass max_position_embeddings, or the pass is longer than
 * max_tokens. */
int engine_forward(Engine *e, int nseq, const int *seqs, const int *n, const int32_t *ids,
                   SrError *err);

/* Samples row i of the last engine_forward with params[i] and rng[i] (splitmix64 state,
 * advanced as SrOps.sample says) over ids < n_valid: only ids and log-probs come back to the
 * host (ids[i], logprob[i]; logprob may be NULL). */
int engine_sample(Engine *e, int nrows, const SrSampling *params, uint64_t *rng, int n_valid,
                  int32_t *ids, float *logprob, SrError *err);
/* log p(id[i]) of row i under the plain softmax over ids < n_valid (temperature 1): the split
 * decoder's small_close end rule reads p(</bigmodel>) this way. */
int engine_logprob_of(Engine *e, int nrows, const int32_t *id, int n_valid, float *logprob,
                      SrError *err);
/* The host fp32 logits of rows [0, nrows) (tests, debugging): nrows x vocab_size floats. */
int engine_logits(Engine *e, int nrows, float *logits, SrError *err);

#endif
