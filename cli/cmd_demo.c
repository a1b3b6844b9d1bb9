/*
 * splitreason demo: the main job on the embedded default, on a CPU, in a minute or two.
 * Until the training stages exist it runs what works end to end: init a tiny Qwen2 with the
 * real Qwen2 tokenizer (+ <bigmodel> tokens), tokenize shipped MATH-500 problems, score them
 * (teacher-forced log-probs; a random model should sit near ln(vocab) nats per token), and
 * generate a completion with the KV cache. Each step is the real command, run in-process.
 */
#include <cjson/cJSON.h>
#include <libgen.h>
#include <math.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../common/log.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"out", SR_OPT_STR, "\"runs/demo\"", "output directory"},
    {"assets", SR_OPT_STR, "null", "embedded data directory (default: assets/ next to the build folder)"},
    {"seed", SR_OPT_INT, "0", "seed for init and sampling"},
    {"max_new_tokens", SR_OPT_INT, "32", "tokens to generate"},
};

static int step(const SrCommand *cmd, char **argv, int argc, SrError *err) {
    fprintf(stderr, "\n[splitreason] demo: splitreason %s", cmd->name);
    for (int i = 0; i < argc; i++) fprintf(stderr, " %s", argv[i]);
    fprintf(stderr, "\n");
    if (sr_cli_dispatch(cmd, argc, argv)) return sr_fail(err, "demo step '%s' failed", cmd->name);
    return 0;
}

/* assets/ beside the folder of the binary (build/splitreason -> ./assets), else ./assets */
static void find_assets(char *buf, size_t n) {
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
    char assets[PATH_MAX], model[PATH_MAX + 16], cfgfile[PATH_MAX + 32], tok[PATH_MAX + 32];
    char problems[PATH_MAX + 48], tokens[PATH_MAX + 32], scores[PATH_MAX + 32];
    char seed[32], mnt[32];
    const char *out = sr_config_str(cfg, "out");
    if (sr_config_has(cfg, "assets")) snprintf(assets, sizeof assets, "%s", sr_config_str(cfg, "assets"));
    else find_assets(assets, sizeof assets);
    snprintf(model, sizeof model, "%s/model", out);
    snprintf(cfgfile, sizeof cfgfile, "%s/../configs/tiny_qwen2.json", assets);
    snprintf(tok, sizeof tok, "%s/qwen2_tokenizer", assets);
    snprintf(problems, sizeof problems, "%s/demo/math500_head12.jsonl", assets);
    snprintf(tokens, sizeof tokens, "%s/tokens.jsonl", out);
    snprintf(scores, sizeof scores, "%s/scores.jsonl", out);
    snprintf(seed, sizeof seed, "%lld", sr_config_int(cfg, "seed"));
    snprintf(mnt, sizeof mnt, "%lld", sr_config_int(cfg, "max_new_tokens"));
    if (sr_mkdir_p(out, err)) return -1;
    double t0 = sr_now();

    char *a1[] = {"--model-config", cfgfile, "--tokenizer", tok, "--seed", seed, "--out", model};
    if (step(&sr_cmd_init, a1, 8, err)) return -1;
    char *a2[] = {"--tokenizer", model, "--input", problems, "--field", "problem", "--output", tokens};
    if (step(&sr_cmd_tokenize, a2, 8, err)) return -1;
    char *a3[] = {"--model", model, "--input", problems, "--field", "problem", "--output", scores};
    if (step(&sr_cmd_score, a3, 8, err)) return -1;

    /* summary of the scores: a random init should be close to uniform, ln(V) nats */
    SrJsonlReader in;
    if (sr_jsonl_open(&in, scores, err)) return -1;
    double sum = 0;
    long n_tok = 0, rows = 0;
    int vocab = 0;
    while (sr_jsonl_next(&in, err) == 1) {
        cJSON *r = cJSON_Parse(in.line);
        cJSON *s = cJSON_GetObjectItemCaseSensitive(r, "sum_logprob");
        cJSON *n = cJSON_GetObjectItemCaseSensitive(r, "n_tokens");
        if (cJSON_IsNumber(s) && cJSON_IsNumber(n) && n->valueint > 1) {
            sum += s->valuedouble;
            n_tok += n->valueint - 1;
        }
        rows++;
        cJSON_Delete(r);
    }
    sr_jsonl_close(&in);
    {
        char cpath[PATH_MAX + 32];
        snprintf(cpath, sizeof cpath, "%s/config.json", model);
        Qwen2Config c;
        if (qwen2_config_load(&c, cpath, err)) return -1;
        vocab = c.vocab_size;
        qwen2_config_free(&c);
    }

    SrJsonlReader pin;
    if (sr_jsonl_open(&pin, problems, err)) return -1;
    char *prompt = NULL;
    if (sr_jsonl_next(&pin, err) == 1) {
        cJSON *r = cJSON_Parse(pin.line);
        cJSON *p = cJSON_GetObjectItemCaseSensitive(r, "problem");
        if (cJSON_IsString(p)) prompt = sr_strdup(p->valuestring);
        cJSON_Delete(r);
    }
    sr_jsonl_close(&pin);
    if (!prompt) return sr_fail(err, "%s: no 'problem' in the first row", problems);
    char *a4[] = {"--model", model, "--prompt", prompt, "--max-new-tokens", mnt, "--temperature",
                  "0.7", "--seed", seed};
    fflush(stdout);
    int rc = step(&sr_cmd_generate, a4, 10, err);
    free(prompt);
    if (rc) return -1;

    fprintf(stderr,
            "\n[splitreason] demo done in %.1fs\n"
            "  model:   %s (random init, vocab %d, with <bigmodel> tokens)\n"
            "  tokens:  %s (%ld rows)\n"
            "  scores:  %s: mean NLL %.3f nats/token over %ld tokens (uniform would be ln V = %.3f)\n",
            sr_now() - t0, model, vocab, tokens, rows, scores, n_tok ? -sum / n_tok : 0.0, n_tok,
            vocab > 0 ? log((double)vocab) : 0.0);
    return 0;
}

const SrCommand sr_cmd_demo = {
    "demo", "run the pipeline on the embedded default (CPU, minutes)",
    "splitreason demo [--out runs/demo]",
    "Runs init -> tokenize -> score -> generate on a tiny Qwen2 with the real Qwen2 tokenizer\n"
    "and shipped MATH-500 problems (assets/). Later milestones extend it to annotate, SFT, GRPO\n"
    "and split decoding.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL,
};
