/*
 * HF Qwen2 config.json (model/qwen2_config.c).
 *   - the shipped DeepSeek-R1-Distill-Qwen-1.5B config (transformers 4 style) and a config
 *     saved by transformers 5 (dtype, rope_parameters, layer_types, explicit head_dim, tied,
 *     eos list): every field and the parameter count against tests/fixtures/formats/
 *     qwen2_expected.json, which scripts/make_formats_golden.py got from Qwen2Config and
 *     Qwen2ForCausalLM built on the meta device (R1-Distill-Qwen-1.5B: 1,777,088,000)
 *   - defaults for absent keys (transformers' Qwen2Config: tie_word_embeddings false, ...)
 *   - save: keys updated in place, unknown keys kept, floats written short, atomic; reload
 *   - bad configs: one line naming the file and the key
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>

#include "common/fileio.h"
#include "harness.h"
#include "model/qwen2_config.h"

static cJSON *load_json(const char *path) {
    char *text = sr_test_read_file(path, NULL);
    cJSON *j = text ? cJSON_Parse(text) : NULL;
    free(text);
    return j;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return v ? v->valuedouble : -12345;
}

/* every parsed field against transformers' values */
static void check_facts(const Qwen2Config *c, const cJSON *f, const char *what) {
    CHECKF(f != NULL, "%s: no facts", what);
    if (!f) return;
    CHECKF(c->vocab_size == num(f, "vocab_size"), "%s vocab_size", what);
    CHECKF(c->hidden_size == num(f, "hidden_size"), "%s hidden_size", what);
    CHECKF(c->num_hidden_layers == num(f, "num_hidden_layers"), "%s layers", what);
    CHECKF(c->num_attention_heads == num(f, "num_attention_heads"), "%s heads", what);
    CHECKF(c->num_key_value_heads == num(f, "num_key_value_heads"), "%s kv heads", what);
    CHECKF(c->head_dim == num(f, "head_dim"), "%s head_dim %d", what, c->head_dim);
    CHECKF(c->intermediate_size == num(f, "intermediate_size"), "%s intermediate", what);
    CHECKF(c->max_position_embeddings == num(f, "max_position_embeddings"), "%s max_pos", what);
    CHECKF(c->rope_theta == (float)num(f, "rope_theta"), "%s rope_theta %g", what, c->rope_theta);
    CHECKF(c->rms_norm_eps == (float)num(f, "rms_norm_eps"), "%s eps %g", what, c->rms_norm_eps);
    CHECKF(c->initializer_range == (float)num(f, "initializer_range"), "%s init", what);
    CHECKF(c->tie_word_embeddings == cJSON_IsTrue(cJSON_GetObjectItem(f, "tie_word_embeddings")), "%s tie", what);
    CHECKF(c->bos_token_id == num(f, "bos_token_id"), "%s bos %d", what, c->bos_token_id);
    CHECKF(c->eos_token_id == num(f, "eos_token_id"), "%s eos %d", what, c->eos_token_id);
    CHECKF(strcmp(c->torch_dtype, cJSON_GetObjectItem(f, "torch_dtype")->valuestring) == 0, "%s dtype %s", what, c->torch_dtype);
    CHECKF(qwen2_config_num_params(c) == (long long)num(f, "num_params"), "%s params %lld", what, qwen2_config_num_params(c));
}

/* base JSON with key set to value (JSON text) or removed (value NULL) */
static char *with_key(const char *base, const char *key, const char *value) {
    cJSON *root = cJSON_Parse(base);
    SR_ASSERT(root);
    cJSON_DeleteItemFromObjectCaseSensitive(root, key);
    if (value) {
        cJSON *v = cJSON_Parse(value);
        SR_ASSERT(v);
        cJSON_AddItemToObject(root, key, v);
    }
    char *s = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return s;
}

static void expect_bad(const char *base, const char *key, const char *value, const char *want) {
    char *json = with_key(base, key, value);
    Qwen2Config c;
    SrError err;
    strcpy(err.msg, "(none)");
    int rc = qwen2_config_from_json(&c, json, "dir/bad.json", &err);
    CHECKF(rc == -1, "%s=%s: accepted", key, value ? value : "(removed)");
    CHECKF(strncmp(err.msg, "dir/bad.json: ", 14) == 0 && strstr(err.msg, want) && !strchr(err.msg, '\n'),
           "%s=%s: message \"%s\" should name the file and contain \"%s\"", key, value ? value : "(removed)", err.msg, want);
    CHECK(c.raw_json == NULL);
    if (rc == 0) qwen2_config_free(&c);
    cJSON_free(json);
}

int main(void) {
    const char *tmp = sr_test_tmpdir("test_qwen2_config");
    cJSON *facts = load_json(sr_test_fixture("formats/qwen2_expected.json"));
    CHECK(facts != NULL);
    SrError err;
    Qwen2Config c;

    /* the shipped R1-Distill config */
    const char *r1 = sr_test_data("r1_distill_qwen_1.5b_config/config.json");
    int rc = qwen2_config_load(&c, r1, &err);
    CHECKF(rc == 0, "%s", err.msg);
    char *r1_text = sr_test_read_file(r1, NULL);
    if (rc == 0) {
        CHECK(c.hidden_size == 1536 && c.num_hidden_layers == 28 && c.num_attention_heads == 12 &&
              c.num_key_value_heads == 2 && c.head_dim == 128 && c.intermediate_size == 8960 && c.vocab_size == 151936);
        CHECK(c.rope_theta == 10000.0f && c.rms_norm_eps == 1e-6f && c.tie_word_embeddings == 0);
        CHECK(c.bos_token_id == 151643 && c.eos_token_id == 151643 && strcmp(c.torch_dtype, "float16") == 0);
        CHECK(qwen2_config_num_params(&c) == 1777088000LL); /* transformers, meta device */
        check_facts(&c, cJSON_GetObjectItem(facts, "r1_distill_qwen_1.5b_config/config.json"), "r1");
        CHECK(c.raw_json && r1_text && strcmp(c.raw_json, r1_text) == 0);

        /* save with changes; unknown keys survive, order is kept, the file reloads */
        char *out = sr_path_join(tmp, "r1_saved.json");
        c.rms_norm_eps = 1e-5f;
        c.num_hidden_layers = 2;
        c.eos_token_id = 7;
        c.bos_token_id = -1;
        strcpy(c.torch_dtype, "bfloat16");
        CHECK(qwen2_config_save(&c, out, &err) == 0);
        char *text = sr_test_read_file(out, NULL);
        CHECK(text && strncmp(text, "{\n  \"architectures\": [\n    \"Qwen2ForCausalLM\"\n  ],", 50) == 0);
        CHECK(text && strstr(text, "\"rms_norm_eps\": 1e-05,") && strstr(text, "\"auto_map\"") &&
              strstr(text, "\"sliding_window\": 4096") && strstr(text, "\"torch_dtype\": \"bfloat16\"") &&
              strstr(text, "\"bos_token_id\": null") && !strstr(text, "\"dtype\""));
        free(text);
        Qwen2Config d;
        rc = qwen2_config_load(&d, out, &err);
        CHECKF(rc == 0, "%s", err.msg);
        if (rc == 0) {
            CHECK(d.rms_norm_eps == 1e-5f && d.num_hidden_layers == 2 && d.eos_token_id == 7 && d.bos_token_id == -1);
            CHECK(d.hidden_size == 1536 && d.head_dim == 128 && strcmp(d.torch_dtype, "bfloat16") == 0);
            qwen2_config_free(&d);
        }
        /* the tmp file is gone after an atomic save */
        {
            char cmd[4300];
            snprintf(cmd, sizeof cmd, "ls '%s' | grep -q '\\.tmp\\.'", tmp);
            CHECK(system(cmd) != 0);
        }
        free(out);
        qwen2_config_free(&c);
        CHECK(c.raw_json == NULL);
    }

    /* saved by transformers 5 */
    const char *tf5 = sr_test_fixture("formats/qwen2_tf5_config.json");
    rc = qwen2_config_load(&c, tf5, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(c.head_dim == 32 && c.tie_word_embeddings == 1 && c.eos_token_id == 5 && c.bos_token_id == -1 &&
              c.rope_theta == 1e6f && strcmp(c.torch_dtype, "bfloat16") == 0);
        check_facts(&c, cJSON_GetObjectItem(facts, "qwen2_tf5_config.json"), "tf5");
        char *out = sr_path_join(tmp, "tf5_saved.json");
        c.rope_theta = 5e5f;
        strcpy(c.torch_dtype, "float32");
        CHECK(qwen2_config_save(&c, out, &err) == 0);
        cJSON *j = load_json(out);
        CHECK(j && num(cJSON_GetObjectItem(j, "rope_parameters"), "rope_theta") == 5e5 && !cJSON_GetObjectItem(j, "rope_theta"));
        CHECK(j && strcmp(cJSON_GetObjectItem(j, "dtype")->valuestring, "float32") == 0 && !cJSON_GetObjectItem(j, "torch_dtype"));
        CHECK(j && cJSON_GetArraySize(cJSON_GetObjectItem(j, "eos_token_id")) == 2); /* unchanged list kept */
        CHECK(j && num(j, "head_dim") == 32 && cJSON_IsNull(cJSON_GetObjectItem(j, "bos_token_id")));
        cJSON_Delete(j);
        Qwen2Config d;
        CHECK(qwen2_config_load(&d, out, &err) == 0 && d.rope_theta == 5e5f && d.head_dim == 32 && d.tie_word_embeddings);
        qwen2_config_free(&d);
        free(out);
        qwen2_config_free(&c);
    }

    /* defaults */
    const char *minimal = "{\"model_type\": \"qwen2\", \"vocab_size\": 100, \"hidden_size\": 64, \"intermediate_size\": 128,"
                          " \"num_hidden_layers\": 2, \"num_attention_heads\": 8}";
    rc = qwen2_config_from_json(&c, minimal, "min.json", &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(c.num_key_value_heads == 8 && c.head_dim == 8 && c.max_position_embeddings == 32768);
        CHECK(c.rope_theta == 10000.0f && c.rms_norm_eps == 1e-6f && c.initializer_range == 0.02f);
        CHECK(c.tie_word_embeddings == 0 && cJSON_IsFalse(cJSON_GetObjectItem(facts, "Qwen2Config_default_tie_word_embeddings")));
        CHECK(c.bos_token_id == -1 && c.eos_token_id == -1 && strcmp(c.torch_dtype, "float32") == 0);
        qwen2_config_free(&c);
    }
    const char *by_arch = "{\"architectures\": [\"Qwen2ForCausalLM\"], \"vocab_size\": 100, \"hidden_size\": 64,"
                          " \"intermediate_size\": 128, \"num_hidden_layers\": 2, \"num_attention_heads\": 8}";
    CHECK(qwen2_config_from_json(&c, by_arch, "arch.json", &err) == 0);
    qwen2_config_free(&c);

    /* a config made in code (no raw_json) */
    Qwen2Config k = {.vocab_size = 32, .hidden_size = 16, .num_hidden_layers = 1, .num_attention_heads = 2,
                     .num_key_value_heads = 1, .head_dim = 8, .intermediate_size = 24, .max_position_embeddings = 64,
                     .rope_theta = 10000.0f, .rms_norm_eps = 1e-6f, .initializer_range = 0.02f, .tie_word_embeddings = 1,
                     .bos_token_id = -1, .eos_token_id = 3, .torch_dtype = "float32", .raw_json = NULL};
    char *kout = sr_path_join(tmp, "coded.json");
    CHECK(qwen2_config_save(&k, kout, &err) == 0);
    rc = qwen2_config_load(&c, kout, &err);
    CHECKF(rc == 0, "%s", err.msg);
    if (rc == 0) {
        CHECK(c.vocab_size == 32 && c.hidden_size == 16 && c.num_key_value_heads == 1 && c.head_dim == 8 &&
              c.tie_word_embeddings == 1 && c.eos_token_id == 3 && c.bos_token_id == -1 && c.rms_norm_eps == 1e-6f);
        CHECK(qwen2_config_num_params(&c) == qwen2_config_num_params(&k));
        /* embed 32*16 + layer (16 + 16*16+16 + 2*(16*8+8) + 16*16 + 16 + 3*16*24) + norm 16, tied */
        CHECK(qwen2_config_num_params(&k) == 32 * 16 + (16 + 272 + 272 + 256 + 16 + 1152) + 16);
        qwen2_config_free(&c);
    }
    k.num_key_value_heads = 3;
    CHECK(qwen2_config_save(&k, kout, &err) == -1 && strstr(err.msg, kout) == err.msg);
    free(kout);

    /* bad configs */
    const char *base = r1_text ? r1_text : "{}";
    expect_bad(base, "hidden_size", NULL, "missing required key \"hidden_size\"");
    expect_bad(base, "vocab_size", NULL, "missing required key \"vocab_size\"");
    expect_bad(base, "num_hidden_layers", "null", "missing required key \"num_hidden_layers\"");
    expect_bad(base, "hidden_size", "\"1536\"", "key \"hidden_size\" must be a positive integer");
    expect_bad(base, "hidden_size", "1536.5", "key \"hidden_size\" must be a positive integer");
    expect_bad(base, "intermediate_size", "0", "key \"intermediate_size\" must be a positive integer");
    expect_bad(base, "num_attention_heads", "-12", "key \"num_attention_heads\" must be a positive integer");
    /* absurd sizes: refused with the key and the bound, not "not a positive integer" and not
     * an abort when the weights are allocated (issue 9, items 4 and 12) */
    expect_bad(base, "vocab_size", "3e10", "key \"vocab_size\" is 30000000000, more than the largest supported (16777216)");
    expect_bad(base, "vocab_size", "1099511627776", "key \"vocab_size\" is 1099511627776, more than the largest supported (16777216)");
    expect_bad(base, "vocab_size", "1073741824", "key \"vocab_size\" is 1073741824, more than the largest supported");
    expect_bad(base, "hidden_size", "1048576", "key \"hidden_size\" is 1048576, more than the largest supported (65536)");
    expect_bad(base, "intermediate_size", "2147483647", "key \"intermediate_size\" is 2147483647, more than the largest supported (1048576)");
    expect_bad(base, "num_hidden_layers", "100000", "key \"num_hidden_layers\" is 100000, more than the largest supported (1024)");
    expect_bad(base, "num_attention_heads", "4096", "key \"num_attention_heads\" is 4096, more than the largest supported (1024)");
    expect_bad(base, "head_dim", "4096", "key \"head_dim\" is 4096, more than the largest supported (1024)");
    expect_bad(base, "max_position_embeddings", "1e12", "key \"max_position_embeddings\" is 1000000000000, more than the largest");
    expect_bad(base, "rope_theta", "1e300", "key \"rope_theta\" is 1e+300, more than the largest supported");
    expect_bad(base, "rms_norm_eps", "1e-300", "key \"rms_norm_eps\" (1e-300) is too small for a float");
    expect_bad(base, "eos_token_id", "16777216", "key \"eos_token_id\" must be a token id");
    expect_bad(base, "num_key_value_heads", "5", "\"num_attention_heads\" (12) is not divisible by \"num_key_value_heads\" (5)");
    expect_bad(base, "num_attention_heads", "7", "\"hidden_size\" (1536) is not divisible by \"num_attention_heads\" (7)");
    expect_bad(base, "head_dim", "33", "key \"head_dim\" is 33");
    expect_bad(base, "model_type", "\"llama\"", "key \"model_type\" is \"llama\"");
    expect_bad(base, "model_type", "3", "key \"model_type\" is not a string");
    /* the file's text in a message stays one line (found by fuzz_model_config) */
    expect_bad(base, "model_type", "\"q{\\nn2\"", "key \"model_type\" is \"q{?n2\", expected \"qwen2\"");
    expect_bad(base, "use_sliding_window", "true", "key \"use_sliding_window\" is true");
    expect_bad(base, "use_sliding_window", "\"no\"", "key \"use_sliding_window\" must be true or false");
    expect_bad(base, "rope_scaling", "{\"type\": \"yarn\", \"factor\": 4.0}", "key \"rope_scaling\" is set");
    expect_bad(base, "rope_parameters", "{\"rope_theta\": 10000, \"rope_type\": \"yarn\"}", "rope_parameters.rope_type");
    expect_bad(base, "rope_parameters", "{\"rope_theta\": 20000, \"rope_type\": \"default\"}", "disagrees");
    expect_bad(base, "rope_parameters", "{\"rope_theta\": \"big\"}", "rope_parameters.rope_theta");
    expect_bad(base, "rope_theta", "-1", "key \"rope_theta\" must be a positive number");
    expect_bad(base, "layer_types", "[\"full_attention\", \"sliding_attention\"]", "key \"layer_types\"");
    expect_bad(base, "hidden_act", "\"gelu\"", "key \"hidden_act\" must be \"silu\"");
    expect_bad(base, "tie_word_embeddings", "\"yes\"", "key \"tie_word_embeddings\" must be true or false");
    expect_bad(base, "eos_token_id", "\"</s>\"", "key \"eos_token_id\"");
    expect_bad(base, "eos_token_id", "[1, \"x\"]", "key \"eos_token_id\" must be a list");
    expect_bad(base, "bos_token_id", "[1]", "key \"bos_token_id\" must be a token id (an integer in [0, 16777215]) or null");
    expect_bad(base, "torch_dtype", "\"int8\"", "key \"torch_dtype\" must be");
    expect_bad(base, "dtype", "\"float64\"", "key \"dtype\" must be");
    expect_bad(base, "rms_norm_eps", "-1e-6", "key \"rms_norm_eps\" must be a positive number");
    expect_bad(base, "rms_norm_eps", "\"1e-6\"", "key \"rms_norm_eps\" must be a positive number");
    {
        char *no_id = with_key(base, "model_type", NULL);
        expect_bad(no_id, "architectures", "[\"LlamaForCausalLM\"]", "no \"model_type\": \"qwen2\"");
        cJSON_free(no_id);
    }
    rc = qwen2_config_from_json(&c, "{\"model_type\": ", "x.json", &err);
    CHECKF(rc == -1 && strncmp(err.msg, "x.json: ", 8) == 0 && strstr(err.msg, "ends early") && c.raw_json == NULL,
           "%s", err.msg); /* a truncated file is said to be one */
    rc = qwen2_config_from_json(&c, "{\"model_type\": \"qwen2\"} {}", "x.json", &err);
    CHECKF(rc == -1 && strstr(err.msg, "x.json: ") == err.msg && strstr(err.msg, "trailing"), "%s", err.msg);
    /* a NUL byte in the file: the whole file is read, and refused */
    {
        char *p = sr_path_join(tmp, "nul.json");
        const char nul[] = "{\"model_type\": \"qwen2\"}\0garbage";
        sr_test_write_file(p, nul, sizeof nul - 1);
        CHECKF(qwen2_config_load(&c, p, &err) == -1 && strncmp(err.msg, p, strlen(p)) == 0, "%s", err.msg);
        free(p);
    }

    /* a repeated key keeps its LAST value, as Python's json (and transformers) read it, in the
     * config and in every later reader of raw_json (save) (issue 9, item 14) */
    {
        char *dup = with_key(minimal, "tie_word_embeddings", "true");
        /* append ', "vocab_size": 200, "tie_word_embeddings": false' before the closing brace */
        size_t n = strlen(dup);
        char *txt = malloc(n + 128);
        memcpy(txt, dup, n - 1);
        strcpy(txt + n - 1, ", \"vocab_size\": 200, \"tie_word_embeddings\": false}");
        rc = qwen2_config_from_json(&c, txt, "dup.json", &err);
        CHECKF(rc == 0 && c.vocab_size == 200 && c.tie_word_embeddings == 0, "%s", rc ? err.msg : "first value kept");
        if (rc == 0) {
            char *out = sr_path_join(tmp, "dup_saved.json");
            CHECK(qwen2_config_save(&c, out, &err) == 0);
            Qwen2Config d;
            CHECK(qwen2_config_load(&d, out, &err) == 0 && d.vocab_size == 200 && d.tie_word_embeddings == 0);
            qwen2_config_free(&d);
            free(out);
            qwen2_config_free(&c);
        }
        free(txt);
        cJSON_free(dup);
    }

    /* sizing before allocating: a config inside every bound whose weights cannot fit any
     * machine (2^24 x 65536 embeddings, untied: 2^41 parameters = 8 TiB in fp32) is refused
     * with the bytes it needs and the bound it exceeds; a small one passes */
    {
        Qwen2Config h = k;
        h.vocab_size = 1 << 24;
        h.hidden_size = 65536;
        h.num_attention_heads = 64;
        h.num_key_value_heads = 64;
        h.head_dim = 1024;
        h.tie_word_embeddings = 0;
        CHECK(qwen2_config_num_params(&h) > (2LL << 40));
        rc = qwen2_config_check_memory(&h, 4.0, 0, "fp32 weights", &err);
        CHECKF(rc == -1 && strstr(err.msg, "parameters (fp32 weights): ") && strstr(err.msg, " bytes (") &&
                   strstr(err.msg, "needed, more than "),
               "%s", err.msg);
        CHECKF(qwen2_config_check_memory(&k, 16.0, 1 << 20, "training", &err) == 0, "%s", err.msg);
        uint64_t a1 = qwen2_config_train_act_bytes(&k, 1024, 0, 4), a2 = qwen2_config_train_act_bytes(&k, 2048, 0, 4);
        Qwen2Config deep = k;
        deep.num_hidden_layers = 8; /* checkpointing saves memory once there are a few layers */
        CHECK(a1 > 0 && a2 > a1 &&
              qwen2_config_train_act_bytes(&deep, 2048, 1, 4) < qwen2_config_train_act_bytes(&deep, 2048, 0, 4));
        /* layer activations grow with tokens: at least (4C + 2I) values per token and layer */
        CHECK(a2 - a1 >= (uint64_t)1024 * 4 * (4 * 16 + 2 * 24));
    }
    rc = qwen2_config_from_json(&c, "[1]", "x.json", &err);
    CHECK(rc == -1 && strcmp(err.msg, "x.json: not a JSON object") == 0);
    /* from a file: the message names the file */
    char *missing = sr_path_join(tmp, "nope/config.json");
    CHECK(qwen2_config_load(&c, missing, &err) == -1 && strncmp(err.msg, missing, strlen(missing)) == 0 && strstr(err.msg, "cannot open"));
    free(missing);
    const char *llama = sr_test_data("tiny_llama_verl/config.json");
    CHECK(qwen2_config_load(&c, llama, &err) == -1 && strncmp(err.msg, llama, strlen(llama)) == 0 && strstr(err.msg, "\"llama\""));

    free(r1_text);
    cJSON_Delete(facts);
    return sr_test_done();
}
