/*
 * splitreason export: a checkpoint (or any model directory) -> a Hugging Face model
 * directory that transformers and vLLM load unchanged: config.json (vocabulary size, tied or
 * untied), generation_config.json, the tokenizer files with <bigmodel>/</bigmodel> and the
 * chat template, and safetensors in the chosen dtype (sharded with an index above 5 GB).
 */
#include <string.h>

#include "../common/log.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"checkpoint", SR_OPT_STR, "null", "checkpoint or model directory to export (also the first bare argument)", SR_REQUIRED},
    {"out", SR_OPT_STR, "null", "output directory (created; files are replaced atomically)", SR_REQUIRED},
    {"dtype", SR_OPT_STR, "\"bf16\"", "weights dtype",
     SR_CHOICES("bf16", "fp32", "fp16", "bfloat16", "float32", "float16", "f32", "f16"), SR_REQUIRED},
    {"add_bigmodel_tokens", SR_OPT_BOOL, "true", "make sure <bigmodel> and </bigmodel> are in the tokenizer"},
};

static int run(SrConfig *cfg, SrError *err) {
    const char *ckpt = sr_config_str(cfg, "checkpoint");
    const char *out = sr_config_str(cfg, "out");
    if (!ckpt || !out) return sr_fail(err, "a checkpoint directory and --out are required");
    /* --out is replaced as a whole */
    if (sr_check_output("--out", out, 1, "--checkpoint", ckpt, err)) return -1;
    int st_dtype;
    if (sr_dtype_from_name(sr_config_str(cfg, "dtype"), &st_dtype, err)) return -1;
    SrBackend be;
    Qwen2Model m;
    Tokenizer *tok;
    if (sr_load_model_dir(ckpt, "cpu", &be, &m, &tok, err)) return -1;
    int rc = 0;
    if (sr_config_bool(cfg, "add_bigmodel_tokens")) {
        int32_t a, b;
        if (tokenizer_add_bigmodel_tokens(tok, &a, &b, err))
            rc = sr_fail_prefix(err, "%s", ckpt);
        else if (tokenizer_vocab_size(tok) > m.cfg.vocab_size)
            rc = sr_fail(err, "%s: adding <bigmodel> tokens needs %d ids but vocab_size is %d "
                              "(re-create the model with splitreason init)",
                         ckpt, tokenizer_vocab_size(tok), m.cfg.vocab_size);
    }
    if (!rc) rc = sr_save_model_dir(&m, tok, out, st_dtype, err);
    if (!rc) sr_log("export: wrote %s (%s, vocab %d, %s embeddings)", out, sr_config_str(cfg, "dtype"),
                    m.cfg.vocab_size, m.cfg.tie_word_embeddings ? "tied" : "untied");
    sr_unload_model_dir(&be, &m, tok);
    return rc;
}

const SrCommand sr_cmd_export = {
    "export", "write a checkpoint as a Hugging Face model directory",
    "splitreason export CHECKPOINT --out DIR [--dtype bf16|fp32]",
    "Loads CHECKPOINT (a checkpoint-<step>/ directory or any HF Qwen2 model directory) and\n"
    "writes config.json, generation_config.json, the tokenizer files (with the <bigmodel> tags\n"
    "and the chat template) and safetensors (one file, or shards + model.safetensors.index.json\n"
    "above 5 GB) into --out. transformers' from_pretrained and vLLM load the result as is.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, "checkpoint",
};
