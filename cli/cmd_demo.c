/*
 * splitreason demo: the main job on the embedded default, on a CPU, in a few minutes. The
 * options and the dispatch on --task; the two demos live in cli/demo_task.c (worksheets, the
 * default) and cli/demo_real_traces.c (see cli/demo.h).
 */
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "demo.h"

static const SrOption OPTS[] = {
    {"task", SR_OPT_STR, "\"worksheets\"", "worksheets: the task with known hard steps (split decoding's effect); real-traces: SFT on real R1-Distill traces",
     SR_CHOICES("worksheets", "real-traces"), SR_REQUIRED},
    {"out", SR_OPT_STR, "\"runs/demo\"", "output directory", SR_REQUIRED},
    {"assets", SR_OPT_STR, "null", "embedded data directory (default: assets/ next to the build folder)"},
    {"seed", SR_OPT_INT, "null", "worksheets: seed of the problems (default 1; 0 was seen while designing the task); real-traces: the model's initialisation (default 0)", SR_RANGE(0, SR_JSON_INT_MAX)},
    {"n_train", SR_OPT_INT, "1000", "worksheets: training problems to annotate and fine-tune on", SR_RANGE(1, 10000000)},
    {"n_heldout", SR_OPT_INT, "200", "worksheets: held-out problems each mode is evaluated on", SR_RANGE(1, 10000000)},
    {"max_steps", SR_OPT_INT, "null", "SFT steps (default: the recipe's)", SR_RANGE(1, 1e9)},
    {"max_new_tokens", SR_OPT_INT, "null", "tokens to generate (worksheets: per problem, default 200; real-traces: the final sample, default 48)", SR_RANGE(1, 1048576)},
    {"latency_penalties", SR_OPT_STR, "\"0.1,2\"", "worksheets: the GRPO stage's latency penalties (one run each, from the SFT model)"},
    {"grpo_steps", SR_OPT_INT, "null", "worksheets: GRPO steps of each run (default: configs/grpo/demo_task.json's)", SR_RANGE(1, 1e9)},
    {"latency_table", SR_OPT_STR, "null", "worksheets: the latency table of the modelled latency (default: configs/latency/cpu_demo_task.json)"},
};

void demo_find_assets(char *buf, size_t n) {
    char exe[PATH_MAX];
    ssize_t len = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (len > 0) {
        exe[len] = '\0';
        char *dir = dirname(dirname(exe));
        snprintf(buf, n, "%s/assets", dir);
        if (access(buf, R_OK) == 0) return;
    }
    snprintf(buf, n, "assets");
}

static int run(SrConfig *cfg, SrError *err) {
    char assets[PATH_MAX];
    if (sr_config_has(cfg, "assets")) snprintf(assets, sizeof assets, "%s", sr_config_str(cfg, "assets"));
    else demo_find_assets(assets, sizeof assets);
    if (!strcmp(sr_config_str(cfg, "task"), "real-traces")) return demo_real_traces(cfg, assets, err);
    return demo_worksheets(cfg, assets, err);
}

const SrCommand sr_cmd_demo = {
    "demo", "run the method on the embedded default (CPU, a few minutes)",
    "splitreason demo [--out runs/demo] [--task worksheets|real-traces]",
    "worksheets (default): SplitReason in miniature on a task whose hard steps are known\n"
    "(data/task.h: worksheets of two-digit steps, two of six from secret tables only the big model\n"
    "knows). annotate --method gap between the shipped small and big models (precision/recall of\n"
    "the spans against the hard steps), prepare + sft of the small model on the tagged traces,\n"
    "then eval on held-out problems: small only, big only, split (the fine-tuned small model + the\n"
    "big one) and random switch (the small model offloading the same share at random). Prints a\n"
    "table; writes OUT/summary.json and OUT/pareto.svg (accuracy against modelled latency and\n"
    "offload share).\n"
    "real-traces: init -> prepare -> sft -> export -> plot -> generate on a tiny Qwen2 with the real\n"
    "Qwen2 tokenizer and the shipped annotated sample (assets/demo/sft_*.jsonl.zst: real\n"
    "R1-Distill-Qwen-1.5B MATH-500 traces with <bigmodel> spans), reporting the held-out loss and\n"
    "the precision/recall of the predicted tags before and after training.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL,
};
