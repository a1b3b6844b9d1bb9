/*
 * prepare: annotated JSONL -> token shards for SFT.
 *
 * Per row: prompt (prompt_field, default "problem") and completion (completion_field, default
 * "annotated", i.e. what `annotate` writes) go through the R1-Distill chat template
 * (data/chat_template.h), are tokenized (<bigmodel> / </bigmodel> are single ids; the
 * misspelled <\bigmodel> reads as </bigmodel>), and get a loss mask: the completion only
 * (default), or the whole sequence (completion_only_loss = false, as the paper's SFT ran);
 * the tag tokens and the end-of-sequence token are always inside the loss. A completion
 * whose tags do not pair up (open, close, open, close, ...) is a malformed row.
 * Documents are packed best-fit-decreasing (data/pack.h) into sequences of max_length tokens,
 * never split and never attending to each other; a document longer than max_length is
 * truncated (overlong = "truncate", TRL's behaviour) or dropped ("drop").
 * Malformed rows are counted and reported with their line number and skipped (strict: stop).
 */
#ifndef SR_DATA_PREPARE_H
#define SR_DATA_PREPARE_H

#include "../common/error.h"

typedef struct PrepareOptions {
    const char *tokenizer, *input, *output;
    int max_length;
    const char *prompt_field, *completion_field;
    const char *system_prompt;   /* NULL: none */
    const char *system_field;    /* NULL: none; a row's field overrides system_prompt */
    const char *think_prefix;    /* NULL: "<think>\n" */
    int add_bos;
    int completion_only_loss;
    int drop_overlong;           /* 0 truncate, 1 drop */
    long long shard_tokens, chunk_tokens;
    int strict;
    int threads;                 /* tokenizer threads (0: OpenMP default) */
} PrepareOptions;

typedef struct PrepareStats {
    long rows, documents, malformed, truncated, dropped, skipped_empty;
    long long tokens, loss_tokens, sequences, bytes_in, tag_pairs;
    double seconds;
} PrepareStats;

int prepare_run(const PrepareOptions *opt, PrepareStats *st, SrError *err);

#endif
