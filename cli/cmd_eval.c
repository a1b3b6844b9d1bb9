/*
 * splitreason eval: a benchmark (AIME24/25, MATH-500, AMC23 or a FILE) decoded in one of the
 * split decoder's modes, graded, summarised (eval/eval.h does the work).
 */
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../eval/eval.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"small", SR_OPT_STR, "null", "the small model (HF directory); its tokenizer builds the prompts (mode big: the big model's)", SR_REQUIRED},
    {"big", SR_OPT_STR, "null", "the big model (HF directory); needed by --mode big, split, random_switch"},
    {"benchmark", SR_OPT_STR, "null", "aime24, aime25, math500, amc23 (the shipped files: $SR_DATA or ../shared/data) or a JSONL FILE with problem and answer fields", SR_REQUIRED},
    {"mode", SR_OPT_STR, "null", "small (small model alone), big (big model alone), split (SplitReason), random_switch (random offloading baseline)",
     SR_CHOICES("small", "big", "split", "random_switch"), SR_REQUIRED},
    {"samples", SR_OPT_INT, "1", "samples per problem (K): pass@1 is averaged over them, pass@K is unbiased", SR_RANGE(1, 4096)},
    {"max_new_tokens", SR_OPT_INT, "32768", "generated tokens per sample at most (tags included), clipped to the models' positions", SR_RANGE(1, 1048576)},
    {"temperature", SR_OPT_FLOAT, "0.6", "sampling temperature (R1's eval setting); 0 = greedy", SR_RANGE(0, 1e6)},
    {"top_p", SR_OPT_FLOAT, "0.95", "nucleus sampling mass (1 = off)", SR_RANGE_X(0, 1, 1, 0)},
    {"seed", SR_OPT_INT, "0", "RNG seed: problem p's sample s draws from stream (p << 32 | s)", SR_RANGE(0, SR_JSON_INT_MAX)},
    {"latency_table", SR_OPT_STR, "null", "latency table (JSON, splitreason bench latency) for the modelled latency and speed-ups"},
    {"output", SR_OPT_STR, "null", "output directory: run.json, samples.jsonl, summary.json (default: only the table on stdout)"},
    {"resume", SR_OPT_BOOL, "false", "continue the run in --output (same settings), each (problem, sample) exactly once"},
    {"system_prompt", SR_OPT_BOOL, "false", "use SplitReason's GRPO system prompt instead of R1's instruction after the problem"},
    {"system", SR_OPT_STR, "null", "a system turn of your own (e.g. a GRPO run's system_prompt; overrides --system-prompt's text)"},
    {"instruction", SR_OPT_STR, "\"" EVAL_R1_INSTRUCTION_JSON "\"", "text after the problem in the user turn (\"\": none, the problem alone)"},
    {"limit", SR_OPT_INT, "0", "only the first N problems (0 = all)", SR_RANGE(0, 1e9)},
    {"end_rule", SR_OPT_STR, "\"small_close\"", "how a big model's span ends (split, random_switch)", SR_CHOICES("small_close", "probe", "step")},
    {"close_threshold", SR_OPT_FLOAT, "0.5", "small_close: p(</bigmodel>) that ends a span", SR_RANGE_X(0, 1, 1, 0)},
    {"max_span_tokens", SR_OPT_INT, "512", "cap on one span of the big model", SR_RANGE(1, 1048576)},
    {"random_share", SR_OPT_FLOAT, "0.2", "random_switch: expected share of offloaded tokens", SR_RANGE_X(0, 1, 1, 1)},
    {"random_span", SR_OPT_FLOAT, "32", "random_switch: mean span length (tokens)", SR_RANGE(1, 1e6)},
    {"kv_cache_gb", SR_OPT_FLOAT, "0", "KV pool per model in GiB (0 = from the free memory)", SR_RANGE(0, 1e6)},
    {"device", SR_OPT_STR, "\"cpu\"", "cpu or cuda", SR_CHOICES("cpu", "cuda"), SR_REQUIRED},
    {"batch", SR_OPT_INT, "64", "requests decoding at once (the split decoder's max_batch)", SR_RANGE(1, 65536)},
};

static int check(const SrConfig *cfg, SrError *err) {
    const char *mode = sr_config_str(cfg, "mode");
    if (strcmp(mode, "small") != 0 && !sr_config_has(cfg, "big"))
        return sr_fail(err, "--mode %s needs --big DIR", mode);
    if (sr_config_bool(cfg, "resume") && !sr_config_has(cfg, "output"))
        return sr_fail(err, "--resume needs --output DIR (the run to continue)");
    return 0;
}

static int run(SrConfig *cfg, SrError *err) {
    EvalOptions o = {0};
    const char *mode = sr_config_str(cfg, "mode");
    split_config_default(&o.split);
    if (split_mode_parse(mode, &o.split.mode) ||
        split_end_rule_parse(sr_config_str(cfg, "end_rule"), &o.split.end_rule))
        return sr_fail(err, "--mode %s / --end-rule %s: unknown", mode, sr_config_str(cfg, "end_rule"));
    o.small_dir = sr_config_str(cfg, "small");
    o.big_dir = o.split.mode == SPLIT_MODE_SMALL ? NULL : sr_config_str(cfg, "big");
    o.benchmark = sr_config_str(cfg, "benchmark");
    o.samples = (int)sr_config_int(cfg, "samples");
    o.split.max_new_tokens = (int)sr_config_int(cfg, "max_new_tokens");
    o.split.sampling.temperature = (float)sr_config_float(cfg, "temperature");
    o.split.sampling.top_k = 0;
    o.split.sampling.top_p = (float)sr_config_float(cfg, "top_p");
    o.split.seed = (uint64_t)sr_config_int(cfg, "seed");
    o.split.close_threshold = (float)sr_config_float(cfg, "close_threshold");
    o.split.max_span_tokens = (int)sr_config_int(cfg, "max_span_tokens");
    o.split.random_share = sr_config_float(cfg, "random_share");
    o.split.random_span = sr_config_float(cfg, "random_span");
    o.latency_table = sr_config_str(cfg, "latency_table");
    o.output = sr_config_str(cfg, "output");
    o.resume = sr_config_bool(cfg, "resume");
    o.system_prompt = sr_config_bool(cfg, "system_prompt");
    o.instruction = sr_config_str(cfg, "instruction");
    o.system = sr_config_str(cfg, "system");
    o.limit = (int)sr_config_int(cfg, "limit");
    o.kv_cache_gb = sr_config_float(cfg, "kv_cache_gb");
    o.batch = (int)sr_config_int(cfg, "batch");
    const char *device = sr_config_str(cfg, "device");
    if (o.output && sr_check_output("--output", o.output, 1, "--small", o.small_dir, err)) return -1;
    if (o.output && o.big_dir && sr_check_output("--output", o.output, 1, "--big", o.big_dir, err)) return -1;

    /* mode big decodes with the big model alone, its prompts built with its own tokenizer (the
     * same family: the same ids as the small model's prompt); --small is not loaded */
    SrBackend bs = {0}, bb = {0};
    Qwen2Model ms = {0}, mb = {0};
    Tokenizer *ts = NULL, *tb = NULL;
    int have_s = 0, have_b = 0, rc = 0;
    if (o.split.mode != SPLIT_MODE_BIG) {
        rc = sr_load_model_dir(o.small_dir, device, &bs, &ms, &ts, err);
        have_s = !rc;
    }
    if (!rc && o.big_dir) {
        rc = sr_load_model_dir(o.big_dir, device, &bb, &mb, &tb, err);
        have_b = !rc;
    }
    if (!rc) rc = eval_run(&o, have_s ? &ms : NULL, have_b ? &mb : NULL, have_s ? ts : tb, stdout, err);
    if (have_b) sr_unload_model_dir(&bb, &mb, tb);
    if (have_s) sr_unload_model_dir(&bs, &ms, ts);
    return rc;
}

const SrCommand sr_cmd_eval = {
    "eval", "pass@k, offload share and modelled latency on AIME24/25, MATH-500, AMC23 or a FILE",
    "splitreason eval --small DIR [--big DIR] --benchmark aime24|aime25|math500|amc23|FILE "
    "--mode small|big|split|random_switch [--samples K] [--max-new-tokens N] [--temperature T] "
    "[--top-p P] [--seed S] [--latency-table F] [--output DIR] [--resume] [--system-prompt] [--instruction TEXT]",
    "Builds each problem's prompt with the R1-distill chat template and R1's instruction (or\n"
    "SplitReason's GRPO system prompt), decodes K samples per problem with the split decoder in\n"
    "--mode, grades each completion (tags removed) as `splitreason grade --mode reward` does, and\n"
    "reports pass@1 (mean over the K samples), unbiased pass@K, tokens per model, offload share\n"
    "(big tokens / all generated tokens), switches per sample, the modelled latency with its\n"
    "speed-ups over small-only and big-only (--latency-table), and wall time. With --output, rows\n"
    "go to samples.jsonl as samples finish and summary.json is written at the end; --resume\n"
    "continues a killed run.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL, check,
};
