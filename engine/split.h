/*
 * Split decoding (SplitReason): the small model writes; when it samples <bigmodel> the big
 * model writes the span until an end rule fires; </bigmodel> goes into the small model's
 * context and the small model continues. Both models keep their own KV caches (two engines,
 * engine/engine.h); each catches up on what the other wrote in ONE prefill-against-cache pass.
 *
 * The big model's view of a sequence is the small model's with every <bigmodel> / </bigmodel>
 * id removed: its prompt is the small prompt minus tag ids, and during a span it sees the text
 * the small model wrote before the tag, then its own tokens. The engine asserts that no tag id
 * ever reaches the big model.
 *
 * Modes:
 *   small          the small model alone (a tag it samples is an ordinary token it writes on);
 *   big            the big model alone, from the big prompt (tags never appear);
 *   split          SplitReason;
 *   random_switch  the small model's own tags are honoured, AND before each small token a switch
 *                  is drawn with a probability chosen so that on average `random_share` of the
 *                  tokens are offloaded in spans of mean length `random_span` (geometric):
 *                  the baseline that tells whether a model learned WHERE to offload.
 * End rules of a span (always capped at max_span_tokens):
 *   small_close    the small model, kept in step by teacher-forcing the big model's tokens,
 *                  gives </bigmodel> a probability >= close_threshold (default);
 *   probe          the reference implementation's rule: every probe_every big tokens, probe
 *                  the small model greedily for probe_len tokens over each prefix and cut at the
 *                  latest prefix where it closes;
 *   step           a blank line ("\n\n" in the decoded span) ends it.
 * EOS (a stop id) inside a span ends the sequence; a span still open at the token budget is
 * reported as truncated.
 *
 * Per sequence the result records every generated id with its owner ('s' or 'b'), small and big
 * tokens, switches, each catch-up Δ per model, span lengths, the modelled latency T_split from a
 * latency table (engine/latency.h) and the measured wall time. Tokens are counted as generated
 * tokens: the tags are small tokens (the small model samples <bigmodel>; </bigmodel> is
 * appended by the decoder and counted as small since the small model reads it).
 */
#ifndef SR_ENGINE_SPLIT_H
#define SR_ENGINE_SPLIT_H

#include <stdint.h>

#include "../data/tokenizer.h"
#include "engine.h"
#include "generate.h"
#include "latency.h"

typedef enum { SPLIT_MODE_SMALL = 0, SPLIT_MODE_BIG, SPLIT_MODE_SPLIT, SPLIT_MODE_RANDOM } SplitMode;
typedef enum { SPLIT_END_SMALL_CLOSE = 0, SPLIT_END_PROBE, SPLIT_END_STEP } SplitEndRule;

typedef struct SplitConfig {
    SplitMode mode;
    SplitEndRule end_rule;
    float close_threshold;   /* small_close: 0.5 */
    int max_span_tokens;     /* cap on one span: 512 */
    int probe_every, probe_len; /* probe: 64, 8 */
    double random_share;     /* random_switch: expected offloaded share (0.2) */
    double random_span;      /* random_switch: mean span length (32) */
    int max_new_tokens;      /* every generated id counts, tags included */
    SrSampling sampling;     /* both models */
    uint64_t seed;           /* sequence i draws from sr_rng_stream(seed, streams[i]) */
    int32_t open_id, close_id; /* <bigmodel>, </bigmodel> */
    const int32_t *stop_ids; /* e.g. eos: kept in the output, ends the sequence */
    int n_stop_ids;
    int32_t vocab_limit;     /* ids >= this are never sampled (the tokenizer's size) */
    const LatencyTable *latency; /* NULL: modelled_latency is 0 */
    int max_batch;           /* requests decoding at once; 0: as many as the pools and slots take */
    const char *const *stop_strings; /* end a request when its decoded text contains one (needs tok) */
    int n_stop_strings;
    /* called with each request's newly releasable UTF-8 bytes (needs tok); may be NULL */
    void (*text)(void *user, int req, const char *bytes, size_t n);
    void *text_user;
} SplitConfig;

/* defaults above; mode split, rule small_close */
void split_config_default(SplitConfig *c);

typedef struct SplitResult {
    int32_t *ids;       /* every generated id, tags included (malloc'd) */
    char *owner;        /* n + 1 bytes: 's' or 'b' per id, NUL-terminated */
    float *logprobs;    /* log-prob of each id under the model that wrote it (NAN for an
                           appended </bigmodel>) */
    int n;
    int small_tokens, big_tokens, switches;
    int *delta_big, *delta_small; /* per switch: the big model's catch-up Δ on entering the span,
                                     the small model's on leaving it */
    int *span_len;      /* per switch: tokens the big model wrote */
    int truncated;      /* a span was still open at the budget */
    SrFinish finish;
    double modelled_latency; /* T_split (seconds) from cfg->latency, 0 without a table */
    double wall_time_s;      /* from admission to finish */
} SplitResult;

/* Called once per request as soon as it is finished; non-zero (err set) stops split_generate. */
typedef int (*SplitDoneFn)(void *user, int req, const SplitResult *r, SrError *err);

/* Decodes B requests (prompts: the small model's prompt ids; streams[i]: request i's RNG stream
 * index, so a request's ids depend only on its prompt, the config and its stream) with
 * continuous batching over both engines (big may be NULL in mode small; small may be NULL in
 * mode big). The two models must share the vocabulary (split_check_pair). results[B] are filled
 * (free with split_result_free); done (may be NULL) is called as each finishes. */
int split_generate(Engine *small, Engine *big, const Tokenizer *tok, const int32_t *const *prompts,
                   const int *prompt_lens, const uint64_t *streams, int B, const SplitConfig *cfg,
                   SplitResult *results, SplitDoneFn done, void *user, SrError *err);
/* The pair can be decoded together: the same vocabulary (vocab_size up to padding, and the same
 * tokenizer ids for the tags); else -1 with a one-line error naming both. */
int split_check_pair(const Qwen2Model *small, const Qwen2Model *big, const Tokenizer *tok,
                     SrError *err);
void split_result_free(SplitResult *r);
const char *split_mode_name(SplitMode m);
int split_mode_parse(const char *s, SplitMode *m);
const char *split_end_rule_name(SplitEndRule r);
int split_end_rule_parse(const char *s, SplitEndRule *r);

#endif
