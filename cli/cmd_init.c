/*
 * splitreason init: a randomly initialised Qwen2 written as a Hugging Face model directory
 * (config.json, generation_config.json, tokenizer files with <bigmodel>/</bigmodel>,
 * model.safetensors), loadable by transformers and by every splitreason command.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/log.h"
#include "../common/safetensors.h"
#include "../data/tokenizer.h"
#include "../kernels/ops.h"
#include "../model/model.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"model_config", SR_OPT_STR, "null", "HF config.json of the Qwen2 to create", SR_REQUIRED},
    {"tokenizer", SR_OPT_STR, "null", "tokenizer directory or tokenizer.json", SR_REQUIRED},
    {"seed", SR_OPT_INT, "0", "RNG seed of the initialisation", SR_RANGE(0, SR_JSON_INT_MAX)},
    {"out", SR_OPT_STR, "null", "output model directory (created)", SR_REQUIRED},
    {"dtype", SR_OPT_STR, "\"float32\"", "weights dtype",
     SR_CHOICES("float32", "bfloat16", "float16", "fp32", "bf16", "fp16", "f32", "f16"), SR_REQUIRED},
    {"add_bigmodel_tokens", SR_OPT_BOOL, "true", "add <bigmodel> and </bigmodel> to the tokenizer (and grow the embedding if needed)"},
};

static int run(SrConfig *cfg, SrError *err) {
    const char *cfg_path = sr_config_str(cfg, "model_config");
    const char *tok_path = sr_config_str(cfg, "tokenizer");
    const char *out = sr_config_str(cfg, "out");
    /* --out is replaced as a whole */
    if (sr_check_output("--out", out, 1, "--tokenizer", tok_path, err) ||
        sr_check_output("--out", out, 1, "--model-config", cfg_path, err))
        return -1;
    int st_dtype;
    if (sr_dtype_from_name(sr_config_str(cfg, "dtype"), &st_dtype, err)) return -1;
    Qwen2Config c;
    if (qwen2_config_load(&c, cfg_path, err)) return -1;
    Tokenizer *tok = NULL;
    if (tokenizer_load(&tok, tok_path, err)) {
        qwen2_config_free(&c);
        return -1;
    }
    if (sr_config_bool(cfg, "add_bigmodel_tokens")) {
        int32_t a, b;
        if (tokenizer_add_bigmodel_tokens(tok, &a, &b, err)) {
            tokenizer_free(tok);
            qwen2_config_free(&c);
            return sr_fail_prefix(err, "%s", tok_path);
        }
        sr_log("init: <bigmodel> = %d, </bigmodel> = %d", a, b);
    }
    /* the embedding must cover every id; R1-distill pads to 151936 so usually no growth */
    int32_t need = tokenizer_vocab_size(tok);
    if (c.vocab_size < need) {
        sr_log("init: vocab_size %d < tokenizer size %d: growing the embedding", c.vocab_size, need);
        c.vocab_size = need;
    }
    /* what this will hold, before any of it is allocated: the fp32 weights, and the host copies
     * (fp32, plus the 16-bit one) that writing model.safetensors takes */
    double per_param = 4.0 + 4.0 + (st_dtype == ST_F32 ? 0.0 : 2.0);
    if (qwen2_config_check_memory(&c, per_param, 0, "fp32 weights and the copies that writing them takes", err)) {
        sr_fail_prefix(err, "%s", cfg_path);
        tokenizer_free(tok);
        qwen2_config_free(&c);
        return -1;
    }
    SrBackend be;
    int rc = sr_backend_init(&be, "cpu", 0, err);
    Qwen2Model m = {0};
    if (!rc && qwen2_build(&m, &c, &be, err)) rc = sr_fail_prefix(err, "%s", cfg_path);
    if (!rc) {
        qwen2_init_random(&m, (uint64_t)sr_config_int(cfg, "seed"));
        rc = sr_save_model_dir(&m, tok, out, st_dtype, err);
        if (!rc)
            sr_log("init: wrote %s (%lld parameters, vocab %d, %d layers, hidden %d)", out,
                   qwen2_config_num_params(&m.cfg), m.cfg.vocab_size, m.cfg.num_hidden_layers,
                   m.cfg.hidden_size);
        qwen2_free(&m);
    }
    sr_backend_free(&be);
    tokenizer_free(tok);
    qwen2_config_free(&c);
    return rc;
}

const SrCommand sr_cmd_init = {
    "init", "write a randomly initialised Qwen2 as an HF model directory",
    "splitreason init --model-config FILE --tokenizer DIR --seed N --out DIR [--dtype float32]",
    "Creates a Qwen2ForCausalLM with HF's initialisation (normal(0, initializer_range) weights,\n"
    "zero biases, unit norms) from --seed and writes config.json, generation_config.json, the\n"
    "tokenizer files (with <bigmodel> and </bigmodel> added) and model.safetensors into --out.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, NULL,
};
