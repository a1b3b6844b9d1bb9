/*
 * splitreason demo: what its two tasks share (cli/cmd_demo.c dispatches on --task).
 *   worksheets    (default, cli/demo_task.c) the synthetic task with known hard steps: annotate
 *                 between the shipped small and big models, SFT of the small one on the tags,
 *                 eval of small-only, big-only, split and random switch, summary.json + plot;
 *   real-traces   (cli/demo_real_traces.c) SFT of a tiny random Qwen2 on real R1-Distill traces
 *                 with the real Qwen2 tokenizer: the plumbing on real data.
 * Each step is the real command, run in-process through its option table (sr_cli_step), so what
 * the demo prints is what a user typing the same command would see.
 */
#ifndef SR_CLI_DEMO_H
#define SR_CLI_DEMO_H

#include "cli.h"

/* assets/ beside the folder of the binary (build/splitreason -> ./assets), else ./assets */
void demo_find_assets(char *buf, size_t n);

int demo_real_traces(SrConfig *cfg, const char *assets, SrError *err);
int demo_worksheets(SrConfig *cfg, const char *assets, SrError *err);

#endif
