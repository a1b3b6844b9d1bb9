/*
 * splitreason demo --task real-traces: the SFT plumbing on real data, on a CPU, in a few minutes.
 *
 *   init     a tiny Qwen2 (configs/tiny_sft_qwen2.json: untied, which learns far faster) with the real Qwen2 tokenizer + tags
 *   prepare  the shipped annotated sample (assets/demo/sft_{train,eval}.jsonl.zst: real
 *            R1-Distill-Qwen-1.5B traces with <bigmodel> spans, made by
 *            scripts/make_demo_data.sh) -> chat template, loss masks, packed shards
 *   sft      configs/sft/tiny_cpu.json: the paper's recipe scaled down (cosine with min lr,
 *            warmup, 3 epochs), held-out loss and tag precision/recall before and after
 *   export   the last checkpoint as a Hugging Face model directory
 *   plot     the curves as an SVG
 *   generate a greedy completion of a held-out problem with the fine-tuned model
 * Each step is the real command, run in-process; the summary compares before and after.
 */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "../common/json.h"
#include "../common/jsonl.h"
#include "../train/checkpoint.h"
#include "demo.h"

/* the eval records of metrics.jsonl: the first and the last */
typedef struct EvalRow {
    int step;
    double loss, op, orc, cp, cr, off, off_ref;
} EvalRow;

static int read_evals(const char *metrics, EvalRow *first, EvalRow *last, double *loss0, double *loss1,
                      SrError *err) {
    JsonlReader in;
    if (jsonl_open(&in, metrics, err)) return -1;
    int n = 0, nl = 0;
    while (jsonl_next(&in, err) == 1) {
        cJSON *r = sr_json_parse(in.line, in.len, NULL);
        const cJSON *el = cJSON_GetObjectItemCaseSensitive(r, "eval_loss");
        const cJSON *l = cJSON_GetObjectItemCaseSensitive(r, "loss");
        if (cJSON_IsNumber(l)) {
            if (nl++ == 0) *loss0 = l->valuedouble;
            *loss1 = l->valuedouble;
        }
        if (cJSON_IsNumber(el)) {
#define NUM(k) (cJSON_GetObjectItemCaseSensitive(r, k) ? cJSON_GetObjectItemCaseSensitive(r, k)->valuedouble : 0.0)
            EvalRow e = {(int)NUM("step"), el->valuedouble, NUM("eval_bigmodel_open_precision"),
                         NUM("eval_bigmodel_open_recall"), NUM("eval_bigmodel_close_precision"),
                         NUM("eval_bigmodel_close_recall"), NUM("eval_offload_share"), NUM("eval_offload_share_ref")};
#undef NUM
            if (n++ == 0) *first = e;
            *last = e;
        }
        cJSON_Delete(r);
    }
    jsonl_close(&in);
    if (n < 2) return sr_fail(err, "%s: fewer than two eval records", metrics);
    return 0;
}

/* the prompt of the first held-out row, through the R1 chat template (as prepare writes it) */
static char *heldout_prompt(const char *path, SrError *err) {
    JsonlReader r;
    if (jsonl_open(&r, path, err)) return NULL;
    char *prompt = NULL;
    cJSON *row = NULL;
    if (jsonl_next(&r, err) == 1 && (row = sr_json_parse(r.line, r.len, NULL))) {
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(row, "problem");
        if (cJSON_IsString(p)) {
            size_t n = strlen(p->valuestring) + 256;
            prompt = sr_malloc(n);
            snprintf(prompt, n, "<｜begin▁of▁sentence｜><｜User｜>%s<｜Assistant｜><think>\n", p->valuestring);
        }
    }
    cJSON_Delete(row);
    jsonl_close(&r);
    if (!prompt) sr_fail(err, "%s: no 'problem' in the first row", path);
    return prompt;
}

int demo_real_traces(SrConfig *cfg, const char *assets, SrError *err) {
    char root[PATH_MAX + 8];
    const char *out = sr_config_str(cfg, "out");
    snprintf(root, sizeof root, "%s/..", assets);
    char model[PATH_MAX + 16], model_cfg[PATH_MAX + 64], tok[PATH_MAX + 32], sft_cfg[PATH_MAX + 64];
    char train_in[PATH_MAX + 48], eval_in[PATH_MAX + 48], train[PATH_MAX + 32], evald[PATH_MAX + 32];
    char sft_out[PATH_MAX + 16], ckpt[PATH_MAX + 64], exp[PATH_MAX + 16], metrics[PATH_MAX + 48];
    char seed[32], mnt[32], steps[32];
    snprintf(model, sizeof model, "%s/model", out);
    snprintf(model_cfg, sizeof model_cfg, "%s/configs/tiny_sft_qwen2.json", root);
    snprintf(sft_cfg, sizeof sft_cfg, "%s/configs/sft/tiny_cpu.json", root);
    snprintf(tok, sizeof tok, "%s/qwen2_tokenizer", assets);
    snprintf(train_in, sizeof train_in, "%s/demo/sft_train.jsonl.zst", assets);
    snprintf(eval_in, sizeof eval_in, "%s/demo/sft_eval.jsonl.zst", assets);
    snprintf(train, sizeof train, "%s/data/train", out);
    snprintf(evald, sizeof evald, "%s/data/eval", out);
    snprintf(sft_out, sizeof sft_out, "%s/sft", out);
    snprintf(exp, sizeof exp, "%s/export", out);
    snprintf(metrics, sizeof metrics, "%s/metrics.jsonl", sft_out);
    snprintf(seed, sizeof seed, "%lld", sr_config_has(cfg, "seed") ? sr_config_int(cfg, "seed") : 0);
    snprintf(mnt, sizeof mnt, "%lld", sr_config_has(cfg, "max_new_tokens") ? sr_config_int(cfg, "max_new_tokens") : 48);
    if (sr_mkdir_p(out, err)) return -1;
    double t0 = sr_now();

    char *a1[] = {"--model-config", model_cfg, "--tokenizer", tok, "--seed", seed, "--out", model};
    if (sr_cli_step("demo", &sr_cmd_init, a1, 8, err)) return -1;
    char *a2[] = {"--tokenizer", model, "--input", train_in, "--output", train, "--max-length", "512"};
    if (sr_cli_step("demo", &sr_cmd_prepare, a2, 8, err)) return -1;
    char *a3[] = {"--tokenizer", model, "--input", eval_in, "--output", evald, "--max-length", "512"};
    if (sr_cli_step("demo", &sr_cmd_prepare, a3, 8, err)) return -1;

    /* a fresh run every time: the demo's output directory is its own */
    char *a4[16] = {"--config", sft_cfg, "--model-name-or-path", model, "--dataset-path", train,
                    "--eval-dataset-path", evald, "--output-dir", sft_out};
    int n4 = 10;
    if (sr_config_has(cfg, "max_steps")) {
        snprintf(steps, sizeof steps, "%lld", sr_config_int(cfg, "max_steps"));
        a4[n4++] = "--max-steps";
        a4[n4++] = steps;
    }
    if (sr_rmtree(sft_out, err)) return -1;
    double t_sft = sr_now();
    if (sr_cli_step("demo", &sr_cmd_sft, a4, n4, err)) return -1;
    t_sft = sr_now() - t_sft;

    EvalRow before = {0}, after = {0};
    double loss0 = 0, loss1 = 0;
    if (read_evals(metrics, &before, &after, &loss0, &loss1, err)) return -1;
    snprintf(ckpt, sizeof ckpt, "%s/checkpoint-%d", sft_out, after.step);
    char *a5[] = {ckpt, "--out", exp, "--dtype", "bf16"};
    if (sr_cli_step("demo", &sr_cmd_export, a5, 5, err)) return -1;
    char *a6[] = {sft_out};
    if (sr_cli_step("demo", &sr_cmd_plot, a6, 1, err)) return -1;

    char *prompt = heldout_prompt(eval_in, err);
    if (!prompt) return -1;
    char *a7[] = {"--model", ckpt, "--prompt", prompt, "--max-new-tokens", mnt, "--temperature", "0"};
    int rc = sr_cli_step("demo", &sr_cmd_generate, a7, 8, err);
    free(prompt);
    if (rc) return -1;
    printf("\n");
    fflush(stdout);

    fprintf(stderr,
            "\n[splitreason] demo done in %.1fs (sft %.1fs)\n"
            "  model:     %s (random init: configs/tiny_sft_qwen2.json, real Qwen2 tokenizer + <bigmodel> tags)\n"
            "  data:      %s, %s (shards of the shipped annotated traces)\n"
            "  sft:       %s: %d steps, training loss %.3f -> %.3f\n"
            "  held-out:  step %4d: loss %.3f | <bigmodel> P %.3f R %.3f | </bigmodel> P %.3f R %.3f | offload %.3f (reference %.3f)\n"
            "             step %4d: loss %.3f | <bigmodel> P %.3f R %.3f | </bigmodel> P %.3f R %.3f | offload %.3f (reference %.3f)\n"
            "  export:    %s (Hugging Face model directory, bf16)\n"
            "  curves:    %s/curves.svg\n",
            sr_now() - t0, t_sft, model, train, evald, sft_out, after.step, loss0, loss1, before.step, before.loss,
            before.op, before.orc, before.cp, before.cr, before.off, before.off_ref, after.step, after.loss, after.op,
            after.orc, after.cp, after.cr, after.off, after.off_ref, exp, sft_out);
    return 0;
}
