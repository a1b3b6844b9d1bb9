/*
 * splitreason prepare: annotated JSONL -> packed, zstd-compressed token shards for SFT
 * (data/prepare.h). Thin: options -> PrepareOptions -> prepare_run -> summary line.
 */
#include <string.h>

#include "../common/log.h"
#include "../data/prepare.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"tokenizer", SR_OPT_STR, "null", "tokenizer: a model directory or tokenizer.json (tags are added if missing)", SR_REQUIRED},
    {"input", SR_OPT_STR, "null", "JSONL or JSONL.zst input (what annotate writes; - for stdin)", SR_REQUIRED},
    {"output", SR_OPT_STR, "null", "output directory (shard_*.bin + index.json)", SR_REQUIRED},
    {"max_length", SR_OPT_INT, "16384", "tokens per packed sequence (the paper packed to 16384)", SR_RANGE(2, 1048576)},
    {"prompt_field", SR_OPT_STR, "\"problem\"", "field holding the user prompt", SR_REQUIRED},
    {"completion_field", SR_OPT_STR, "\"annotated\"", "field holding the (annotated) completion", SR_REQUIRED},
    {"system_prompt", SR_OPT_STR, "null", "system prompt placed after BOS (default: none)"},
    {"system_field", SR_OPT_STR, "null", "field holding a per-row system prompt (overrides --system-prompt)"},
    {"think_prefix", SR_OPT_STR, "\"<think>\\n\"", "text the template puts after <｜Assistant｜> (\"\" for the older template)"},
    {"add_bos", SR_OPT_BOOL, "true", "start each document with the BOS token <｜begin▁of▁sentence｜> (none if the tokenizer has no BOS, as HF)"},
    {"completion_only_loss", SR_OPT_BOOL, "true", "loss on the completion only (false: the whole sequence, as the paper's SFT)"},
    {"overlong", SR_OPT_STR, "\"truncate\"", "a document longer than max_length: truncate or drop", SR_CHOICES("truncate", "drop"), SR_REQUIRED},
    {"shard_tokens", SR_OPT_INT, "67108864", "tokens per shard file", SR_RANGE(1, 1073741824)},
    {"chunk_tokens", SR_OPT_INT, "262144", "tokens per zstd chunk (the unit of random access)", SR_RANGE(1, 16777216)},
    {"strict", SR_OPT_BOOL, "false", "stop at the first malformed row (default: report, skip, go on)"},
    {"threads", SR_OPT_INT, "0", "tokenizer threads (0: all cores)", SR_RANGE(0, 4096)},
};

static int run(SrConfig *cfg, SrError *err) {
    PrepareOptions o = {0};
    o.tokenizer = sr_config_str(cfg, "tokenizer");
    o.input = sr_config_str(cfg, "input");
    o.output = sr_config_str(cfg, "output");
    o.max_length = (int)sr_config_int(cfg, "max_length");
    o.prompt_field = sr_config_str(cfg, "prompt_field");
    o.completion_field = sr_config_str(cfg, "completion_field");
    o.system_prompt = sr_config_str(cfg, "system_prompt");
    o.system_field = sr_config_str(cfg, "system_field");
    o.think_prefix = sr_config_str(cfg, "think_prefix");
    if (!o.think_prefix) o.think_prefix = "";
    o.add_bos = sr_config_bool(cfg, "add_bos");
    o.completion_only_loss = sr_config_bool(cfg, "completion_only_loss");
    o.drop_overlong = strcmp(sr_config_str(cfg, "overlong"), "drop") == 0; /* SR_CHOICES */
    o.shard_tokens = sr_config_int(cfg, "shard_tokens");
    o.chunk_tokens = sr_config_int(cfg, "chunk_tokens");
    o.strict = sr_config_bool(cfg, "strict");
    o.threads = (int)sr_config_int(cfg, "threads");
    /* the shards and index.json in --output are replaced */
    if (sr_check_output("--output", o.output, 1, "--input", o.input, err)) return -1;
    if (!o.prompt_field || !o.completion_field) return sr_fail(err, "--prompt-field and --completion-field must be set");
    PrepareStats st;
    if (prepare_run(&o, &st, err)) return -1;
    double mb = (double)st.bytes_in / 1e6;
    printf("prepare: %ld rows -> %ld documents (%ld malformed, %ld truncated, %ld dropped), "
           "%lld tag pairs\n",
           st.rows, st.documents, st.malformed, st.truncated, st.dropped, st.tag_pairs);
    printf("prepare: %lld tokens (%lld in the loss) in %lld sequences of <= %d (fill %.1f%%) -> %s\n",
           st.tokens, st.loss_tokens, st.sequences, o.max_length,
           st.sequences ? 100.0 * (double)st.tokens / ((double)st.sequences * o.max_length) : 0.0, o.output);
    printf("prepare: %.2f MB of input file in %.2f s (%.2f MB/s)\n", mb, st.seconds,
           st.seconds > 0 ? mb / st.seconds : 0.0);
    return 0;
}

const SrCommand sr_cmd_prepare = {
    "prepare", "annotated JSONL -> chat template, loss masks, packed token shards",
    "splitreason prepare --tokenizer DIR --input FILE.jsonl --output DIR [--max-length N]",
    "Applies the DeepSeek-R1-Distill chat template (<｜begin▁of▁sentence｜>{system}<｜User｜>{problem}\n"
    "<｜Assistant｜><think>\\n{annotated}<｜end▁of▁sentence｜>) to each row, tokenizes it with the\n"
    "<bigmodel> tags as single ids, builds the loss mask (completion only by default; the tags and\n"
    "EOS always in), packs documents best-fit-decreasing into sequences of --max-length tokens\n"
    "(documents never split, boundaries kept), and writes zstd-compressed shards + index.json.\n"
    "Rows with a missing field or unbalanced tags are reported with their line number and skipped.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL,
};
