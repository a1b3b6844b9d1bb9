/*
 * A forced model: a tiny Qwen2 whose greedy output is a scripted chain of ids, for tests of
 * eval and split decoding (a small model that emits <bigmodel> at a known point, a big model
 * that writes a known span, a model that answers a benchmark right or wrong on purpose).
 *
 * Why it works: with every o_proj and down_proj weight zero, attention and MLP add nothing,
 * so the residual stream at a position is the embedding of that position's token and the
 * logits depend on the current token alone. Each "from" token gets its own one-hot embedding
 * row (dimension d); after the final RMSNorm that row is sqrt(H) * e_d, and lm_head rows give
 * the target (and an alternative) weight FORCED_LOGIT / sqrt(H) on dimension d, so
 *   logit(next = to | current = from) = FORCED_LOGIT, every other logit 0:
 * argmax(next | from) = to, with p(to) = 1 - V e^-FORCED_LOGIT (1 - 6e-13 for Qwen2's vocab).
 * A coin step gives two targets exactly equal logits: each has probability 1/2 at any
 * temperature > 0 (and under top-p >= 1/2); greedy takes the lower id where the two logits
 * come out bit-equal (a batched matmul may round them apart: test greedy on chains without a
 * coin). A token that is no
 * "from" (the prompt's other tokens) has a zero embedding: uniform logits, never used.
 *
 *   ForcedChain c;
 *   forced_chain_init(&c, start);                        // the prompt's last token
 *   forced_chain_text(&c, tok, "The answer is \\boxed{", &err);
 *   forced_chain_coin(&c, id_of_4, id_of_7, &err);        // 42 or 72, a fair coin
 *   forced_chain_text(&c, tok, "2}.", &err);
 *   forced_chain_ids(&c, &eos, 1, &err);
 *   forced_model_write(dir, tok, &c, vocab_size, &err);   // an HF model directory
 *   forced_chain_free(&c);
 * Every "from" token may lead to one place only (a repeated token in a chain is refused, with
 * the ids named): pick texts whose tokens are distinct.
 */
#ifndef SR_TESTS_FORCED_MODEL_H
#define SR_TESTS_FORCED_MODEL_H

#include <stdint.h>

#include "common/error.h"
#include "data/tokenizer.h"
#include "kernels/ops.h"
#include "model/model.h"

#define FORCED_LOGIT 40.0f

typedef struct ForcedEdge {
    int32_t from, to, alt; /* alt: -1, or a second target with the same logit (a coin) */
} ForcedEdge;

typedef struct ForcedChain {
    ForcedEdge *e;
    int n;
    size_t cap;
    int32_t tail[2]; /* the current end(s) of the chain: two after a coin */
    int n_tail;
} ForcedChain;

void forced_chain_init(ForcedChain *c, int32_t start);
void forced_chain_free(ForcedChain *c);
/* tail -> ids[0] -> ids[1] -> ... ; the tail becomes ids[n-1] */
int forced_chain_ids(ForcedChain *c, const int32_t *ids, int n, SrError *err);
/* the ids of text (tokenized as a whole) */
int forced_chain_text(ForcedChain *c, const Tokenizer *tok, const char *text, SrError *err);
/* tail -> a or b, equally likely; both become the tail */
int forced_chain_coin(ForcedChain *c, int32_t a, int32_t b, SrError *err);

/* The model (on be, which must be the CPU backend: the weights are written through host
 * pointers): vocab_size rows, 1 layer, hidden the smallest multiple of 32 that gives every
 * "from" token its own dimension, max_position_embeddings max_pos, untied lm_head. */
int forced_model_build(Qwen2Model *m, SrBackend *be, const ForcedChain *c, int vocab_size,
                       int max_pos, int32_t bos, int32_t eos, SrError *err);
/* forced_model_build + an HF model directory with tok's files (fp32), vocab_size 0: the
 * tokenizer's size rounded up to a multiple of 64 */
int forced_model_write(const char *dir, const Tokenizer *tok, const ForcedChain *c, int vocab_size,
                       SrError *err);

#endif
