/*
 * libFuzzer harness for the Qwen2 config.json reader (model/qwen2_config.h): the input is a
 * config.json, parsed by qwen2_config_parse (what qwen2_config_load, hence `init` and every
 * model load, calls), then sized as `init` and `sft` size it before allocating
 * (qwen2_config_num_params, qwen2_config_train_act_bytes, qwen2_config_check_memory).
 * An accepted config must hold what the model code relies on: every size positive and within
 * the QWEN2_MAX_* bounds, heads divisible by KV heads, head_dim even, positive finite floats,
 * and sizes that do not overflow. A refused one must give one line naming the file.
 *
 * Build and run:  bash fuzz/run.sh model_config [seconds]   (replayed by ctest: fuzz_model_config)
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../model/qwen2_config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    Qwen2Config c;
    SrError err;
    if (qwen2_config_parse(&c, (const char *)data, size, "fuzz/config.json", &err) != 0) {
        if (strncmp(err.msg, "fuzz/config.json: ", 18) != 0 || strchr(err.msg, '\n')) abort();
        if (c.raw_json) abort();
        return 0;
    }
    if (c.vocab_size < 1 || c.vocab_size > QWEN2_MAX_VOCAB || c.hidden_size < 1 || c.hidden_size > QWEN2_MAX_HIDDEN ||
        c.intermediate_size < 1 || c.intermediate_size > QWEN2_MAX_INTERMEDIATE || c.num_hidden_layers < 1 ||
        c.num_hidden_layers > QWEN2_MAX_LAYERS || c.num_attention_heads < 1 || c.num_attention_heads > QWEN2_MAX_HEADS ||
        c.num_key_value_heads < 1 || c.num_attention_heads % c.num_key_value_heads != 0 || c.head_dim < 2 ||
        c.head_dim % 2 != 0 || c.head_dim > QWEN2_MAX_HEAD_DIM || c.max_position_embeddings < 1 ||
        c.max_position_embeddings > QWEN2_MAX_POSITIONS)
        abort();
    if (!(c.rope_theta > 0) || !isfinite(c.rope_theta) || !(c.rms_norm_eps > 0) || !isfinite(c.rms_norm_eps) ||
        !(c.initializer_range > 0) || !isfinite(c.initializer_range))
        abort();
    if (c.bos_token_id < -1 || c.bos_token_id >= QWEN2_MAX_VOCAB || c.eos_token_id < -1 || c.eos_token_id >= QWEN2_MAX_VOCAB)
        abort();
    if (!c.raw_json || strlen(c.raw_json) != size) abort(); /* the text as written */
    long long n = qwen2_config_num_params(&c);
    if (n <= 0 || n > (1LL << 52)) abort();
    uint64_t a0 = qwen2_config_train_act_bytes(&c, 16384, 0, 4), a1 = qwen2_config_train_act_bytes(&c, 16384, 1, 4);
    if (a0 == 0 || a1 == 0) abort();
    if (qwen2_config_check_memory(&c, 16.0, a0, "fuzz", &err) != 0 && strchr(err.msg, '\n')) abort();
    qwen2_config_free(&c);
    return 0;
}
