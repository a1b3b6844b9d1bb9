/*
 * Model directories for the commands: save (model/model_dir.h: model + tokenizer + generation
 * config, atomically) and load (backend, model, tokenizer) in one call.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "../common/fileio.h"
#include "../common/log.h"
#include "../common/safetensors.h"
#include "../data/tokenizer.h"
#include "../kernels/ops.h"
#include "../model/model.h"
#include "../model/model_dir.h"
#include "cli.h"

int sr_dtype_from_name(const char *name, int *st_dtype, SrError *err) {
    if (!strcmp(name, "float32") || !strcmp(name, "f32") || !strcmp(name, "fp32")) *st_dtype = ST_F32;
    else if (!strcmp(name, "bfloat16") || !strcmp(name, "bf16")) *st_dtype = ST_BF16;
    else if (!strcmp(name, "float16") || !strcmp(name, "f16") || !strcmp(name, "fp16")) *st_dtype = ST_F16;
    else return sr_fail(err, "--dtype %s: expected fp32, bf16 or fp16 (float32, bfloat16, float16)", name);
    return 0;
}

int sr_save_model_dir(const Qwen2Model *m, const Tokenizer *tok, const char *dir, int st_dtype,
                      SrError *err) {
    return model_dir_save(m, tok, dir, st_dtype, err);
}

int sr_load_model_dir(const char *dir, const char *device, SrBackend *be, Qwen2Model *m,
                      Tokenizer **tok, SrError *err) {
    memset(m, 0, sizeof *m);
    *tok = NULL;
    if (!dir) return sr_fail(err, "--model is required");
    if (sr_backend_init(be, device, 0, err)) return -1;
    if (qwen2_load(m, dir, be, err)) {
        sr_backend_free(be);
        return -1;
    }
    if (tokenizer_load(tok, dir, err)) {
        qwen2_free(m);
        sr_backend_free(be);
        return -1;
    }
    if (tokenizer_vocab_size(*tok) > m->cfg.vocab_size) {
        sr_fail(err, "%s: the tokenizer has %d ids but the model's vocab_size is %d", dir,
                tokenizer_vocab_size(*tok), m->cfg.vocab_size);
        tokenizer_free(*tok);
        *tok = NULL;
        qwen2_free(m);
        sr_backend_free(be);
        return -1;
    }
    sr_log("loaded %s: %lld parameters, %d layers, hidden %d, vocab %d, device %s", dir,
           qwen2_config_num_params(&m->cfg), m->cfg.num_hidden_layers, m->cfg.hidden_size,
           m->cfg.vocab_size, be->ops->name);
    return 0;
}

void sr_unload_model_dir(SrBackend *be, Qwen2Model *m, Tokenizer *tok) {
    tokenizer_free(tok);
    qwen2_free(m);
    sr_backend_free(be);
}
