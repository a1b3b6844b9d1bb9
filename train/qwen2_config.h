/*
 * The Hugging Face Qwen2 config.json: the shapes and constants of a Qwen2ForCausalLM.
 * Unknown keys are kept (raw_json) and written back on save, so an exported model carries
 * everything the original config said.
 */
#ifndef SR_TRAIN_QWEN2_CONFIG_H
#define SR_TRAIN_QWEN2_CONFIG_H

#include "../common/error.h"

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
    char *raw_json;           /* the whole file as read (NULL for a config made in code) */
} Qwen2Config;

/* Reads and validates (positive sizes, Hq % Hkv == 0, head_dim even, model_type qwen2 or
 * architecture Qwen2ForCausalLM, hidden_act silu, no sliding window in use). */
int qwen2_config_load(Qwen2Config *c, const char *path, SrError *err);
int qwen2_config_from_json(Qwen2Config *c, const char *json, const char *path_for_errors,
                           SrError *err);
/* Writes config.json (atomic): raw_json's keys updated with the struct's values. */
int qwen2_config_save(const Qwen2Config *c, const char *path, SrError *err);
void qwen2_config_free(Qwen2Config *c);
/* Number of parameters the config implies. */
long long qwen2_config_num_params(const Qwen2Config *c);

#endif
