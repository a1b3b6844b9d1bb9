/*
 * splitreason: the command-line entry point. `splitreason --help` lists the commands,
 * `splitreason CMD --help` documents one, `splitreason --version` prints the version, the
 * backends compiled in and the GPUs found at run time.
 */
#include <stdio.h>
#include <string.h>

#include "../kernels/ops.h"
#include "cli.h"

static const SrCommand *const COMMANDS[] = {
    &sr_cmd_demo, &sr_cmd_init, &sr_cmd_tokenize, &sr_cmd_score, &sr_cmd_generate,
    &sr_cmd_eval,
    &sr_cmd_annotate, &sr_cmd_prepare, &sr_cmd_sft, &sr_cmd_export, &sr_cmd_plot,
    &sr_cmd_grade, &sr_cmd_bench, &sr_cmd_grpo, &sr_cmd_grpo_loss, &sr_cmd_task, &sr_cmd_sweep,
};
#define N_COMMANDS ((int)(sizeof COMMANDS / sizeof COMMANDS[0]))

static void print_help(FILE *f) {
    fprintf(f,
            "splitreason %s: train a small reasoning model to offload its hard spans to a big one\n"
            "(SplitReason: annotate -> SFT -> GRPO -> split decoding), Qwen2 architecture, CPU + CUDA.\n\n"
            "usage: splitreason COMMAND [--key value ...] [--config FILE]\n"
            "       splitreason COMMAND --help\n"
            "       splitreason --version\n\ncommands:\n",
            SR_VERSION);
    for (int i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-10s %s\n", COMMANDS[i]->name, COMMANDS[i]->summary);
    fprintf(f, "\nSettings come from --config FILE (JSON) and --key value overrides; the effective\n"
               "config is printed to stderr at start. Data goes to stdout or --output.\n");
}

static void print_version(void) {
    printf("splitreason %s\n", SR_VERSION);
    printf("backends: %s\n", sr_backends_compiled());
    int n = sr_cuda_device_count();
    if (strstr(sr_backends_compiled(), "cuda")) {
        printf("gpus: %d\n", n);
        for (int i = 0; i < n; i++) {
            char name[256];
            sr_cuda_device_name(i, name, sizeof name);
            printf("  cuda:%d %s\n", i, name);
        }
    }
}

int main(int argc, char **argv) {
    sr_cleanup_on_signals(); /* SIGINT / SIGTERM remove the temp files of outputs being written */
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 ||
        strcmp(argv[1], "help") == 0) {
        print_help(stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "--version") == 0 || strcmp(argv[1], "version") == 0) {
        print_version();
        return 0;
    }
    for (int i = 0; i < N_COMMANDS; i++)
        if (strcmp(argv[1], COMMANDS[i]->name) == 0)
            return sr_cli_dispatch(COMMANDS[i], argc - 2, argv + 2);
    fprintf(stderr, "splitreason: unknown command '%s' (see splitreason --help)\n", argv[1]);
    return 2;
}
