/*
 * The splitreason command: one entry point per subcommand. Each entry is thin: parse the
 * config (common/config.h), build what it needs, loop, log. Data goes to stdout or the
 * output file; logs, the effective config and progress go to stderr.
 */
#ifndef SR_CLI_H
#define SR_CLI_H

#include <stdio.h>

#include "../common/config.h"
#include "../common/fileio.h"
#include "../common/error.h"
#include "../common/jsonl.h"

typedef struct SrCommand {
    const char *name;
    const char *summary;
    const char *usage;       /* one usage line */
    const char *description; /* a paragraph for CMD --help */
    const SrOption *opts;
    int n_opts;
    int (*run)(SrConfig *cfg, SrError *err);
    const char *positional; /* key that a leading bare argument sets (e.g. "checkpoint"), or NULL */
    /* the rules between options that the table cannot say (e.g. min <= max), or NULL; a
     * failure is a bad command line (exit 2), like a value the table refuses */
    int (*check)(const SrConfig *cfg, SrError *err);
} SrCommand;

extern const SrCommand sr_cmd_init, sr_cmd_tokenize, sr_cmd_score, sr_cmd_generate, sr_cmd_demo;
extern const SrCommand sr_cmd_eval;
extern const SrCommand sr_cmd_annotate, sr_cmd_prepare;
extern const SrCommand sr_cmd_export, sr_cmd_sft, sr_cmd_plot;
extern const SrCommand sr_cmd_grade, sr_cmd_bench, sr_cmd_grpo_loss, sr_cmd_grpo;
extern const SrCommand sr_cmd_task, sr_cmd_sweep;

/* Parses argv for cmd (the table's checks, then cmd->check), prints help or the effective
 * config, runs it; returns the exit code: 0, 1 (the run failed: bad input, I/O), or 2 (a bad
 * command line or --config file: one line naming the option). */
int sr_cli_dispatch(const SrCommand *cmd, int argc, char **argv);
/* A command run in-process by another (demo, sweep): the command line is echoed to stderr
 * ("[splitreason] <who>: splitreason <cmd> <args>", an empty argument as ""), then dispatched;
 * -1 with err ("<who> step '<cmd>' failed") when it fails. */
int sr_cli_step(const char *who, const SrCommand *cmd, char **argv, int argc, SrError *err);

/* Output: stdout when path is NULL or "-", else a stdio stream over common/fileio.h's
 * SrAtomicFile (temp file next to path, fsync, rename, directory fsync on commit; removed on
 * abort or a catchable signal); an existing device or pipe is written directly. */
typedef struct SrOutFile {
    FILE *f;
    SrAtomicFile af;
    char *direct; /* a device or pipe (/dev/null, a fifo) written as it is: its path */
} SrOutFile;
int sr_out_open(SrOutFile *o, const char *path, SrError *err);
int sr_out_commit(SrOutFile *o, SrError *err); /* flush, commit; closes */
void sr_out_abort(SrOutFile *o);               /* removes the temp file; closes */

/* Writes s as a JSON string literal (with quotes) to f; invalid UTF-8 becomes U+FFFD. */
void sr_json_write_string(FILE *f, const char *s, size_t n);

/* model-directory helpers (cli/modeldir.c) */
#include "../data/tokenizer.h"
#include "../model/model.h"
int sr_dtype_from_name(const char *name, int *st_dtype, SrError *err);
int sr_save_model_dir(const Qwen2Model *m, const Tokenizer *tok, const char *dir, int st_dtype,
                      SrError *err);
/* backend (--device), model and tokenizer of an HF model directory */
int sr_load_model_dir(const char *dir, const char *device, SrBackend *be, Qwen2Model *m,
                      Tokenizer **tok, SrError *err);
void sr_unload_model_dir(SrBackend *be, Qwen2Model *m, Tokenizer *tok);

#endif
