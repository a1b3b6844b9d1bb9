/*
 * splitreason eval: a benchmark decoded by the split decoder (engine/split.h) in one of its
 * modes, graded with `splitreason grade`'s reward settings, reported as pass@1 / pass@k,
 * tokens per model, offload share, switches, modelled latency and wall time.
 *
 * Prompts: the R1-distill chat template (data/chat_template.h: BOS, <｜User｜>, <｜Assistant｜>,
 * "<think>\n"), the user turn being the problem followed by "\n" and an instruction (R1's,
 * EVAL_R1_INSTRUCTION, by default; none: the problem alone, as the demo task's models were
 * trained); with system_prompt the reference implementation's GRPO system prompt
 * (EVAL_GRPO_SYSTEM_PROMPT) is the system turn instead and the user turn is the problem alone.
 * Both models share the tokenizer family (split_check_pair), so the big model's prompt is the
 * same ids (minus tag ids, which a prompt never holds).
 *
 * Output directory (optional):
 *   run.json       the settings of the run; --resume refuses other settings
 *   samples.jsonl  one row per (problem, sample), appended and fsync'd as each finishes
 *   summary.json   written atomically once every (problem, sample) is done
 * Resume: rows already in samples.jsonl are kept (a partial last line from a kill is cut
 * off), the missing (problem, sample) pairs are decoded; request (p, s) always draws from RNG
 * stream (p << 32 | s), so what a row holds does not depend on which run wrote it.
 */
#ifndef SR_EVAL_EVAL_H
#define SR_EVAL_EVAL_H

#include <stdio.h>

#include "../data/tokenizer.h"
#include "../engine/split.h"
#include "../model/model.h"

#define EVAL_R1_INSTRUCTION "Please reason step by step, and put your final answer within \\boxed{}."
/* the same as a JSON string's contents (an option's default) */
#define EVAL_R1_INSTRUCTION_JSON "Please reason step by step, and put your final answer within \\\\boxed{}."
/* SplitReason's GRPO recipe (training/open-r1/recipes/DeepSeek-R1-Distill-Qwen-1.5B/grpo/
 * config_demo.yaml, system_prompt), verbatim */
#define EVAL_GRPO_SYSTEM_PROMPT                                                                    \
    "You are a helpful AI Assistant that provides well-reasoned and detailed responses. You "      \
    "first think about the reasoning process as an internal monologue and then provide the user " \
    "with the answer. Respond in the following format: <think>\n...\n</think>\n<answer>\n...\n"   \
    "</answer>. \n Put your final answer within \\boxed{}. You always use <bigmodel>...</bigmodel> " \
    "to mark parts of the reasoning process that are important."

typedef struct EvalOptions {
    const char *small_dir, *big_dir; /* recorded in run.json */
    const char *benchmark;           /* aime24 | aime25 | math500 | amc23 | FILE */
    SplitConfig split;               /* mode, end rule, sampling, seed, ...; max_new_tokens 0:
                                        32768; clipped to the models' positions */
    int samples;                     /* K */
    int limit;                       /* the first N problems; 0: all */
    int system_prompt;
    const char *instruction;         /* after the problem; NULL or "": none (ignored with
                                        system_prompt) */
    const char *system;              /* a system turn of one's own (e.g. a GRPO run's
                                        system_prompt); NULL: none, or the GRPO one with
                                        system_prompt */
    const char *latency_table;       /* NULL: modelled latency is null */
    const char *output;              /* NULL: only the table on stdout */
    int resume;
    int batch;                       /* requests decoding at once (SplitConfig.max_batch) */
    double kv_cache_gb;              /* 0: the engine's default */
} EvalOptions;

/* small may be NULL in mode big, big NULL in mode small; tok is the small model's tokenizer
 * (the big model's in mode big). The table goes to out. */
int eval_run(const EvalOptions *o, Qwen2Model *small, Qwen2Model *big, const Tokenizer *tok,
             FILE *out, SrError *err);

/* The prompt ids of one problem (BOS + template; system: the system turn or NULL; instruction:
 * "\n" + it after the problem, NULL or "": none); *ids malloc'd. */
int eval_prompt_ids(const Tokenizer *tok, const char *problem, const char *system,
                    const char *instruction, int32_t **ids, int *n, SrError *err);

#endif
