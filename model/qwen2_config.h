/*
 * The Hugging Face Qwen2 config.json: the shapes and constants of a Qwen2ForCausalLM.
 * Unknown keys are kept (raw_json) and written back on save, so an exported model carries
 * everything the original config said.
 */
#ifndef SR_MODEL_QWEN2_CONFIG_H
#define SR_MODEL_QWEN2_CONFIG_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"

/* The largest sizes a config.json may ask for: far above any released Qwen2 (72B: hidden
 * 8192, intermediate 29568, 80 layers, vocab 152064), and small enough that no size computed
 * from them overflows. A file beyond them is refused naming the key and the bound. */
#define QWEN2_MAX_VOCAB (1 << 24) /* token ids are < 2^24 (the tokenizer's bound too) */
#define QWEN2_MAX_HIDDEN 65536
#define QWEN2_MAX_INTERMEDIATE (1 << 20)
#define QWEN2_MAX_LAYERS 1024
#define QWEN2_MAX_HEADS 1024
#define QWEN2_MAX_HEAD_DIM 1024
#define QWEN2_MAX_POSITIONS (1 << 24)

typedef struct Qwen2Config {
    int vocab_size;
    int hidden_size;          /* C */
    int num_hidden_layers;    /* L */
    int num_attention_heads;  /* Hq */
    int num_key_value_heads;  /* Hkv (defaults to Hq) */
    int head_dim;             /* D: config's head_dim if present, else hidden_size / Hq */
    int intermediate_size;    /* I */
    int max_position_embeddings;
    float rope_theta;
    float rms_norm_eps;
    float initializer_range;
    int tie_word_embeddings;
    int bos_token_id;         /* -1 if null/absent */
    int eos_token_id;         /* first one if a list; -1 if absent */
    char torch_dtype[16];     /* "float32", "bfloat16", "float16" */
    char *raw_json;           /* the whole file as read (NULL for a config made in code); read it
                               * with sr_json_parse, so a repeated key gives its last value */
} Qwen2Config;

/* Reads and validates (sizes positive and within the QWEN2_MAX_* bounds, Hq % Hkv == 0,
 * head_dim even, model_type qwen2 or architecture Qwen2ForCausalLM, hidden_act silu, no
 * sliding window in use). The text goes through the strict JSON layer (common/json.h): one
 * object, a repeated key keeps its last value (as Python's json), truncation is named.
 * Every later reader of raw_json (save, pad_token_id) parses it the same way. */
int qwen2_config_load(Qwen2Config *c, const char *path, SrError *err);
int qwen2_config_from_json(Qwen2Config *c, const char *json, const char *path_for_errors,
                           SrError *err);
/* The same from text[0, len) (need not be NUL-terminated): what qwen2_config_load calls. */
int qwen2_config_parse(Qwen2Config *c, const char *text, size_t len, const char *path_for_errors,
                       SrError *err);
/* Writes config.json (atomic): raw_json's keys updated with the struct's values. */
int qwen2_config_save(const Qwen2Config *c, const char *path, SrError *err);
void qwen2_config_free(Qwen2Config *c);
/* Number of parameters the config implies. */
long long qwen2_config_num_params(const Qwen2Config *c);

/* Bytes of training activations for `tokens` tokens per micro-batch at act_bytes per value:
 * every layer's saved activations (with checkpointing only each layer's input, plus one
 * layer's full set), the final norm, and the chunked lm_head's logits. An estimate from the
 * layout in model.c (within a small factor), to refuse what cannot fit, not to plan memory. */
uint64_t qwen2_config_train_act_bytes(const Qwen2Config *c, long long tokens, int checkpointing,
                                      int act_bytes);

/* 0 if bytes_per_param bytes per parameter plus `extra` bytes fit the memory this process
 * may use (common/sysmem.h), else -1 with err, e.g.
 *   "the model's 137439040192 parameters (fp32 weights): 549756160768 bytes (512.0 GiB)
 *    needed, more than this machine's memory (...)"
 * what says what is counted; the caller prefixes the file. */
int qwen2_config_check_memory(const Qwen2Config *c, double bytes_per_param, uint64_t extra,
                              const char *what, SrError *err);

#endif
