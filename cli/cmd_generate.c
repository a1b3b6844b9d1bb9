/*
 * splitreason generate: complete a prompt with the KV-cache engine (engine/generate.c).
 * One sample streams its text to stdout as it is generated; --num-samples N > 1 (or --json)
 * prints one JSON object per sample instead, each as soon as that sample is finished (so in
 * the order they finish; "sample" says which), so a failure late in a long batch loses none
 * of the samples already done:
 *   {"sample": b, "text": ..., "ids": [...], "logprobs": [...], "finish_reason": "stop"}
 * A log-prob that is not a number (a model with NaN weights) is written as null. The batch
 * (KV cache, logits, results) is sized before anything is allocated and refused, naming
 * --num-samples and the memory bound, when it cannot fit.
 */
#include <cjson/cJSON.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/log.h"
#include "../engine/generate.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"model", SR_OPT_STR, "null", "HF model directory", SR_REQUIRED},
    {"prompt", SR_OPT_STR, "null", "prompt text (tokenized as is; add the chat template yourself)", SR_REQUIRED},
    {"max_new_tokens", SR_OPT_INT, "256", "tokens to generate at most", SR_RANGE(1, 1048576)},
    {"temperature", SR_OPT_FLOAT, "0.6", "sampling temperature; 0 = greedy", SR_RANGE(0, 1e6)},
    {"top_p", SR_OPT_FLOAT, "0.95", "nucleus sampling mass (1 = off)", SR_RANGE_X(0, 1, 1, 0)},
    {"top_k", SR_OPT_INT, "0", "keep the k most likely tokens (0 = off)", SR_RANGE(0, 16777216)},
    {"seed", SR_OPT_INT, "0", "RNG seed (sample b uses stream b)", SR_RANGE(0, SR_JSON_INT_MAX)},
    {"stop", SR_OPT_JSON, "[]", "stop strings, a JSON list (generation also stops at the EOS id)"},
    {"num_samples", SR_OPT_INT, "1", "independent samples of the same prompt, decoded as one batch", SR_RANGE(1, 4096)},
    {"add_bos", SR_OPT_BOOL, "false", "prepend the tokenizer's BOS token to the prompt"},
    {"json", SR_OPT_BOOL, "false", "print JSON objects (ids, log-probs, finish reason) instead of streaming text"},
    {"device", SR_OPT_STR, "\"cpu\"", "cpu or cuda", SR_CHOICES("cpu", "cuda"), SR_REQUIRED},
    {"kv_cache_gb", SR_OPT_FLOAT, "0", "KV cache budget in GiB (0 = a share of the free memory); sequences wait for room", SR_RANGE(0, 1e6)},
    {"batch", SR_OPT_INT, "0", "samples decoding at once (0 = as many as the KV cache holds)", SR_RANGE(0, 4096)},
};

/* --stop: a JSON list of strings (checked before the run: a bad one is a bad command line) */
static int check(const SrConfig *cfg, SrError *err) {
    const cJSON *stop = sr_config_get(cfg, "stop"), *s;
    if (!cJSON_IsArray(stop)) return sr_fail(err, "--stop must be a JSON list of strings");
    cJSON_ArrayForEach(s, stop) if (!cJSON_IsString(s)) return sr_fail(err, "--stop must be a JSON list of strings");
    return 0;
}

static void stream_stdout(void *user, int seq, const char *bytes, size_t n) {
    (void)user;
    (void)seq;
    fwrite(bytes, 1, n, stdout);
    fflush(stdout);
}

/* --json / --num-samples: each sample's object is printed as soon as it is finished */
typedef struct JsonOut {
    const Tokenizer *tok;
    SrBuf line;
} JsonOut;

static int print_sample(void *user, int b, const GenResult *r, SrError *err) {
    JsonOut *o = user;
    char *text = NULL;
    size_t len = 0;
    if (tokenizer_decode(o->tok, r->ids, (size_t)r->n, &text, &len, err))
        return sr_fail_prefix(err, "sample %d", b);
    SrBuf *l = &o->line;
    sr_buf_clear(l);
    sr_buf_printf(l, "{\"sample\": %d, \"text\": ", b);
    sr_buf_json_string(l, text, len);
    sr_buf_str(l, ", \"ids\": [");
    for (int i = 0; i < r->n; i++) sr_buf_printf(l, i ? ", %d" : "%d", r->ids[i]);
    sr_buf_str(l, "], \"logprobs\": [");
    for (int i = 0; i < r->n; i++) {
        if (i) sr_buf_str(l, ", ");
        sr_buf_json_float(l, r->logprobs[i]); /* null when not finite (NaN weights) */
    }
    sr_buf_printf(l, "], \"finish_reason\": \"%s\"}\n", gen_finish_name(r->finish));
    free(text);
    if (fwrite(l->p, 1, l->n, stdout) != l->n || fflush(stdout) != 0)
        return sr_fail(err, "writing sample %d to stdout: %s", b, strerror(errno));
    return 0;
}

static int run(SrConfig *cfg, SrError *err) {
    const char *prompt = sr_config_str(cfg, "prompt");
    int B = (int)sr_config_int(cfg, "num_samples");
    cJSON *stop = sr_config_get(cfg, "stop");
    int n_stop = cJSON_GetArraySize(stop);
    const char **stops = sr_calloc((size_t)n_stop + 1, sizeof(char *));
    for (int i = 0; i < n_stop; i++) stops[i] = cJSON_GetArrayItem(stop, i)->valuestring;
    SrBackend be;
    Qwen2Model m;
    Tokenizer *tok;
    if (sr_load_model_dir(sr_config_str(cfg, "model"), sr_config_str(cfg, "device"), &be, &m, &tok,
                          err)) {
        free(stops);
        return -1;
    }
    int32_t *ids = NULL;
    size_t n = 0;
    int rc = tokenizer_encode(tok, prompt, strlen(prompt), &ids, &n, err);
    if (!rc && sr_config_bool(cfg, "add_bos")) {
        int32_t bos = tokenizer_bos_id(tok);
        if (bos < 0) {
            rc = sr_fail(err, "--add-bos: the tokenizer has no BOS token");
        } else {
            ids = sr_realloc(ids, (n + 1) * sizeof(int32_t));
            memmove(ids + 1, ids, n * sizeof(int32_t));
            ids[0] = bos;
            n++;
        }
    }
    if (!rc && n == 0) rc = sr_fail(err, "--prompt gives no tokens");
    int32_t stop_ids[2];
    int n_stop_ids = 0;
    if (tokenizer_eos_id(tok) >= 0) stop_ids[n_stop_ids++] = tokenizer_eos_id(tok);
    if (m.cfg.eos_token_id >= 0 && m.cfg.eos_token_id != tokenizer_eos_id(tok))
        stop_ids[n_stop_ids++] = m.cfg.eos_token_id;
    GenConfig g = {
        .max_new_tokens = (int)sr_config_int(cfg, "max_new_tokens"),
        .sampling = {(float)sr_config_float(cfg, "temperature"), (int)sr_config_int(cfg, "top_k"),
                     (float)sr_config_float(cfg, "top_p")},
        .seed = (uint64_t)sr_config_int(cfg, "seed"),
        .stop_ids = stop_ids, .n_stop_ids = n_stop_ids,
        .stop_strings = stops, .n_stop_strings = n_stop,
        .kv_bytes = (size_t)(sr_config_float(cfg, "kv_cache_gb") * 1073741824.0),
        .max_batch = (int)sr_config_int(cfg, "batch"),
    };
    /* size the whole batch before allocating any of it */
    if (!rc && generate_check_memory(&m, B, (int)n, &g, err))
        rc = sr_fail_prefix(err, "--num-samples %d with --max-new-tokens %d", B, g.max_new_tokens);
    if (rc) {
        free(ids);
        free(stops);
        sr_unload_model_dir(&be, &m, tok);
        return -1;
    }
    const int32_t **prompts = sr_malloc((size_t)B * sizeof(int32_t *));
    int *lens = sr_malloc((size_t)B * sizeof(int));
    for (int b = 0; b < B; b++) prompts[b] = ids, lens[b] = (int)n;
    GenResult *res = sr_calloc((size_t)B, sizeof(GenResult));
    int as_json = B > 1 || sr_config_bool(cfg, "json");
    JsonOut jo = {tok, {0}};
    GenHooks hooks = {as_json ? NULL : stream_stdout, as_json ? print_sample : NULL, &jo};
    double t0 = sr_now();
    rc = generate(&m, tok, prompts, lens, B, &g, res, &hooks, err);
    double dt = sr_now() - t0;
    if (!as_json) { /* end the streamed text's line, also when generation failed half-way */
        printf("\n");
        fflush(stdout);
    }
    if (!rc) {
        long total = 0;
        for (int b = 0; b < B; b++) total += res[b].n;
        sr_log("generate: %d prompt tokens, %ld new tokens in %.2fs (%.1f tok/s), finish: %s", (int)n,
               total, dt, dt > 0 ? (double)total / dt : 0.0, gen_finish_name(res[0].finish));
        for (int b = 0; b < B; b++) gen_result_free(&res[b]);
    }
    sr_buf_free(&jo.line);
    free(res);
    free(lens);
    free(prompts);
    free(ids);
    free(stops);
    sr_unload_model_dir(&be, &m, tok);
    return rc;
}

const SrCommand sr_cmd_generate = {
    "generate", "complete a prompt (KV cache; greedy, temperature, top-k, top-p)",
    "splitreason generate --model DIR --prompt TEXT [--max-new-tokens N] [--temperature T] "
    "[--top-p P] [--top-k K] [--seed S]",
    "Prefills the prompt, then decodes with a KV cache until the EOS id, a --stop string or\n"
    "--max-new-tokens. One sample streams to stdout; several (or --json) print JSON lines with\n"
    "ids, per-token log-probs (under the temperature-scaled distribution) and finish reason.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL, check,
};
