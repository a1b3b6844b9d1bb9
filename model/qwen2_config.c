/*
 * Qwen2 config.json reader/writer: see qwen2_config.h.
 *
 * Defaults follow transformers' Qwen2Config (checked against transformers 5.24.0):
 *   num_key_value_heads = num_attention_heads, head_dim = hidden_size / num_attention_heads,
 *   max_position_embeddings 32768, rope_theta 10000, rms_norm_eps 1e-6, initializer_range 0.02,
 *   tie_word_embeddings false, hidden_act "silu", bos/eos absent.
 * The five size keys (vocab_size, hidden_size, intermediate_size, num_hidden_layers,
 * num_attention_heads) are required: HF's defaults for them describe a 7B model, which a file
 * that forgot them almost certainly is not.
 * transformers 4.x writes "torch_dtype" and a top-level "rope_theta"; 5.x writes "dtype",
 * "rope_parameters": {"rope_theta", "rope_type"} and "layer_types". Both are read; save
 * updates whichever the file used.
 * Rejected because the model does not implement them: sliding-window attention in use
 * (use_sliding_window true or a "sliding_attention" layer type), rope_scaling / a rope_type
 * other than "default", a hidden_act other than silu.
 */
#include "qwen2_config.h"

#include <cjson/cJSON.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/config.h"
#include "../common/fileio.h"
#include "../common/json.h"
#include "../common/sysmem.h"

/* ---- reading helpers (each returns 0, or -1 with err naming file and key) ------------------ */

static int is_present(const cJSON *v) { return v && !cJSON_IsNull(v); }

static int json_int(const cJSON *v, long long lo, long long hi, long long *out) {
    if (!cJSON_IsNumber(v)) return -1;
    double d = v->valuedouble;
    if (!isfinite(d) || d != floor(d) || d < (double)lo || d > (double)hi) return -1;
    *out = (long long)d;
    return 0;
}

/* a positive integer up to max ("too large" says the bound, so 2^40 is not "not positive") */
static int get_pos_int(const cJSON *root, const char *key, int required, int dflt, int max, int *out,
                       const char *path, SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!is_present(v)) {
        if (required) return sr_fail(err, "%s: missing required key \"%s\"", path, key);
        *out = dflt;
        return 0;
    }
    long long x;
    if (json_int(v, 1, LLONG_MAX / 2, &x) != 0)
        return sr_fail(err, "%s: key \"%s\" must be a positive integer", path, key);
    if (x > max)
        return sr_fail(err, "%s: key \"%s\" is %lld, more than the largest supported (%d)", path, key, x, max);
    *out = (int)x;
    return 0;
}

/* a positive, finite number up to max (read as a float: 1e300 would become inf) */
static int get_pos_float(const cJSON *root, const char *key, float dflt, double max, float *out,
                         const char *path, SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!is_present(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !(v->valuedouble > 0) || !isfinite(v->valuedouble))
        return sr_fail(err, "%s: key \"%s\" must be a positive number", path, key);
    if (v->valuedouble > max)
        return sr_fail(err, "%s: key \"%s\" is %g, more than the largest supported (%g)", path, key,
                       v->valuedouble, max);
    *out = (float)v->valuedouble;
    if (!(*out > 0)) return sr_fail(err, "%s: key \"%s\" (%g) is too small for a float", path, key, v->valuedouble);
    return 0;
}

/* token ids: an int, null/absent (-1), or (eos only) a list whose first entry is used */
static int get_token_id(const cJSON *root, const char *key, int allow_list, int *out,
                        const char *path, SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    *out = -1;
    if (!is_present(v)) return 0;
    if (allow_list && cJSON_IsArray(v)) {
        for (const cJSON *e = v->child; e; e = e->next) {
            long long x;
            if (json_int(e, 0, QWEN2_MAX_VOCAB - 1, &x) != 0)
                return sr_fail(err, "%s: key \"%s\" must be a list of token ids (integers in [0, %d])", path,
                               key, QWEN2_MAX_VOCAB - 1);
            if (e == v->child) *out = (int)x;
        }
        return 0;
    }
    long long x;
    if (json_int(v, 0, QWEN2_MAX_VOCAB - 1, &x) != 0)
        return sr_fail(err, "%s: key \"%s\" must be a token id (an integer in [0, %d])%s or null", path, key,
                       QWEN2_MAX_VOCAB - 1, allow_list ? ", a list of them" : "");
    *out = (int)x;
    return 0;
}

static int get_bool(const cJSON *root, const char *key, int dflt, int *out, const char *path,
                    SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!is_present(v)) {
        *out = dflt;
        return 0;
    }
    if (!cJSON_IsBool(v)) return sr_fail(err, "%s: key \"%s\" must be true or false", path, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

static int parse_config(Qwen2Config *c, const cJSON *root, const char *path, SrError *err) {
    if (!cJSON_IsObject(root)) return sr_fail(err, "%s: not a JSON object", path);

    /* which model is this? */
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *arch = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    int is_qwen2 = cJSON_IsString(mt) && strcmp(mt->valuestring, "qwen2") == 0;
    char shown[72];
    if (is_present(mt) && !is_qwen2)
        return sr_fail(err, "%s: key \"model_type\" is %s%s%s, expected \"qwen2\"", path,
                       cJSON_IsString(mt) ? "\"" : "",
                       cJSON_IsString(mt) ? sr_oneline(mt->valuestring, shown, sizeof shown) : "not a string",
                       cJSON_IsString(mt) ? "\"" : "");
    if (!is_qwen2 && cJSON_IsArray(arch))
        for (const cJSON *a = arch->child; a; a = a->next)
            if (cJSON_IsString(a) && strcmp(a->valuestring, "Qwen2ForCausalLM") == 0) is_qwen2 = 1;
    if (!is_qwen2)
        return sr_fail(err, "%s: no \"model_type\": \"qwen2\" or \"architectures\": [\"Qwen2ForCausalLM\"]", path);

    if (get_pos_int(root, "vocab_size", 1, 0, QWEN2_MAX_VOCAB, &c->vocab_size, path, err) ||
        get_pos_int(root, "hidden_size", 1, 0, QWEN2_MAX_HIDDEN, &c->hidden_size, path, err) ||
        get_pos_int(root, "intermediate_size", 1, 0, QWEN2_MAX_INTERMEDIATE, &c->intermediate_size, path, err) ||
        get_pos_int(root, "num_hidden_layers", 1, 0, QWEN2_MAX_LAYERS, &c->num_hidden_layers, path, err) ||
        get_pos_int(root, "num_attention_heads", 1, 0, QWEN2_MAX_HEADS, &c->num_attention_heads, path, err) ||
        get_pos_int(root, "num_key_value_heads", 0, c->num_attention_heads, QWEN2_MAX_HEADS, &c->num_key_value_heads,
                    path, err) ||
        get_pos_int(root, "max_position_embeddings", 0, 32768, QWEN2_MAX_POSITIONS, &c->max_position_embeddings,
                    path, err) ||
        get_pos_float(root, "rms_norm_eps", 1e-6f, 1.0, &c->rms_norm_eps, path, err) ||
        get_pos_float(root, "initializer_range", 0.02f, 10.0, &c->initializer_range, path, err) ||
        get_bool(root, "tie_word_embeddings", 0, &c->tie_word_embeddings, path, err) ||
        get_token_id(root, "bos_token_id", 0, &c->bos_token_id, path, err) ||
        get_token_id(root, "eos_token_id", 1, &c->eos_token_id, path, err))
        return -1;

    const cJSON *hd = cJSON_GetObjectItemCaseSensitive(root, "head_dim");
    if (is_present(hd)) {
        if (get_pos_int(root, "head_dim", 1, 0, QWEN2_MAX_HEAD_DIM, &c->head_dim, path, err)) return -1;
    } else {
        if (c->hidden_size % c->num_attention_heads != 0)
            return sr_fail(err, "%s: key \"hidden_size\" (%d) is not divisible by \"num_attention_heads\" (%d) and there is no \"head_dim\"",
                           path, c->hidden_size, c->num_attention_heads);
        c->head_dim = c->hidden_size / c->num_attention_heads;
        if (c->head_dim > QWEN2_MAX_HEAD_DIM)
            return sr_fail(err, "%s: head_dim (hidden_size / num_attention_heads) is %d, more than the largest "
                                "supported (%d)", path, c->head_dim, QWEN2_MAX_HEAD_DIM);
    }
    if (c->num_attention_heads % c->num_key_value_heads != 0)
        return sr_fail(err, "%s: key \"num_attention_heads\" (%d) is not divisible by \"num_key_value_heads\" (%d)",
                       path, c->num_attention_heads, c->num_key_value_heads);
    if (c->head_dim % 2 != 0)
        return sr_fail(err, "%s: key \"head_dim\" is %d; rotary embeddings need it even", path, c->head_dim);

    /* rope: top-level rope_theta (4.x) and/or rope_parameters (5.x) */
    const cJSON *rs = cJSON_GetObjectItemCaseSensitive(root, "rope_scaling");
    if (is_present(rs)) return sr_fail(err, "%s: key \"rope_scaling\" is set; RoPE scaling is not supported", path);
    if (get_pos_float(root, "rope_theta", 10000.0f, 1e30, &c->rope_theta, path, err)) return -1;
    const cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (is_present(rp)) {
        if (!cJSON_IsObject(rp)) return sr_fail(err, "%s: key \"rope_parameters\" must be an object", path);
        const cJSON *rt = cJSON_GetObjectItemCaseSensitive(rp, "rope_type");
        if (!is_present(rt)) rt = cJSON_GetObjectItemCaseSensitive(rp, "type");
        if (is_present(rt) && !(cJSON_IsString(rt) && strcmp(rt->valuestring, "default") == 0))
            return sr_fail(err, "%s: key \"rope_parameters.rope_type\" is not \"default\"; RoPE scaling is not supported", path);
        float theta = c->rope_theta;
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(rp, "rope_theta");
        if (is_present(t)) {
            if (!cJSON_IsNumber(t) || !(t->valuedouble > 0) || !(t->valuedouble <= 1e30))
                return sr_fail(err, "%s: key \"rope_parameters.rope_theta\" must be a positive number (at most 1e30)",
                               path);
            theta = (float)t->valuedouble;
        }
        const cJSON *top = cJSON_GetObjectItemCaseSensitive(root, "rope_theta");
        if (is_present(top) && theta != c->rope_theta)
            return sr_fail(err, "%s: key \"rope_theta\" (%g) disagrees with \"rope_parameters.rope_theta\" (%g)", path,
                           c->rope_theta, theta);
        c->rope_theta = theta;
    }

    /* attention variants we do not implement */
    const cJSON *act = cJSON_GetObjectItemCaseSensitive(root, "hidden_act");
    if (is_present(act) && !(cJSON_IsString(act) && strcmp(act->valuestring, "silu") == 0))
        return sr_fail(err, "%s: key \"hidden_act\" must be \"silu\"", path);
    int sliding;
    if (get_bool(root, "use_sliding_window", 0, &sliding, path, err)) return -1;
    if (sliding) return sr_fail(err, "%s: key \"use_sliding_window\" is true; sliding-window attention is not supported", path);
    const cJSON *lt = cJSON_GetObjectItemCaseSensitive(root, "layer_types");
    if (is_present(lt)) {
        if (!cJSON_IsArray(lt)) return sr_fail(err, "%s: key \"layer_types\" must be a list", path);
        for (const cJSON *e = lt->child; e; e = e->next)
            if (!(cJSON_IsString(e) && strcmp(e->valuestring, "full_attention") == 0))
                return sr_fail(err, "%s: key \"layer_types\" has a layer that is not \"full_attention\"; only full attention is supported", path);
    }

    /* dtype */
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(root, "dtype");
    const char *dkey = "dtype";
    if (!is_present(dt)) {
        dt = cJSON_GetObjectItemCaseSensitive(root, "torch_dtype");
        dkey = "torch_dtype";
    }
    strcpy(c->torch_dtype, "float32"); /* what transformers loads when none is given */
    if (is_present(dt)) {
        if (!cJSON_IsString(dt) || (strcmp(dt->valuestring, "float32") != 0 && strcmp(dt->valuestring, "bfloat16") != 0 &&
                                    strcmp(dt->valuestring, "float16") != 0))
            return sr_fail(err, "%s: key \"%s\" must be \"float32\", \"bfloat16\" or \"float16\"", path, dkey);
        strcpy(c->torch_dtype, dt->valuestring);
    }
    return 0;
}

int qwen2_config_from_json(Qwen2Config *c, const char *json, const char *path_for_errors,
                           SrError *err) {
    return qwen2_config_parse(c, json, strlen(json), path_for_errors, err);
}

int qwen2_config_parse(Qwen2Config *c, const char *text, size_t len, const char *path_for_errors,
                       SrError *err) {
    memset(c, 0, sizeof *c);
    const char *path = path_for_errors ? path_for_errors : "config.json";
    cJSON *root = sr_json_parse_object(text, len, err);
    if (!root) return sr_fail_prefix(err, "%s", path);
    int rc = parse_config(c, root, path, err);
    cJSON_Delete(root);
    if (rc == 0) { /* the text as written (no NUL: the parser refuses one) */
        c->raw_json = sr_malloc(len + 1);
        memcpy(c->raw_json, text, len);
        c->raw_json[len] = '\0';
    }
    if (rc != 0) {
        memset(c, 0, sizeof *c);
        return -1;
    }
    SR_ASSERT(c->raw_json != NULL);
    return 0;
}

int qwen2_config_load(Qwen2Config *c, const char *path, SrError *err) {
    memset(c, 0, sizeof *c);
    char *text;
    size_t len;
    if (sr_read_file(path, &text, &len, err) != 0) return -1;
    int rc = qwen2_config_parse(c, text, len, path, err); /* all len bytes: a NUL is an error */
    free(text);
    return rc;
}

void qwen2_config_free(Qwen2Config *c) {
    free(c->raw_json);
    c->raw_json = NULL;
}

long long qwen2_config_num_params(const Qwen2Config *c) {
    long long V = c->vocab_size, C = c->hidden_size, L = c->num_hidden_layers, I = c->intermediate_size;
    long long q = (long long)c->num_attention_heads * c->head_dim, kv = (long long)c->num_key_value_heads * c->head_dim;
    long long layer = C            /* input_layernorm */
                      + C * q + q  /* q_proj weight + bias */
                      + 2 * (C * kv + kv) /* k_proj, v_proj */
                      + q * C      /* o_proj (no bias) */
                      + C          /* post_attention_layernorm */
                      + 3 * C * I; /* gate, up, down */
    return V * C + L * layer + C + (c->tie_word_embeddings ? 0 : V * C);
}

uint64_t qwen2_config_train_act_bytes(const Qwen2Config *c, long long tokens, int checkpointing,
                                      int act_bytes) {
    uint64_t C = (uint64_t)c->hidden_size, I = (uint64_t)c->intermediate_size, L = (uint64_t)c->num_hidden_layers;
    uint64_t QD = (uint64_t)c->num_attention_heads * c->head_dim, KVD = (uint64_t)c->num_key_value_heads * c->head_dim;
    uint64_t layer = 4 * C + 2 * QD + 2 * KVD + 2 * I; /* per token: see model.c's header */
    uint64_t per_token = (checkpointing ? L * C + layer : L * layer) + 3 * C;
    uint64_t logits = 2 * 256 * (uint64_t)c->vocab_size; /* the lm_head chunk (m->lm_chunk) and its grad */
    return ((uint64_t)(tokens > 0 ? tokens : 0) * per_token + logits) * (uint64_t)act_bytes;
}

int qwen2_config_check_memory(const Qwen2Config *c, double bytes_per_param, uint64_t extra,
                              const char *what, SrError *err) {
    long long n = qwen2_config_num_params(c); /* < 2^50 within the QWEN2_MAX_* bounds */
    double need = (double)n * bytes_per_param + (double)extra;
    char desc[256];
    snprintf(desc, sizeof desc, "the model's %lld parameters (%s)", n, what);
    return sr_memory_check(need >= 1.8e19 ? UINT64_MAX : (uint64_t)need, desc, err);
}

/* ---- writing ------------------------------------------------------------------------------ */

static int has(const cJSON *obj, const char *key) { return cJSON_GetObjectItemCaseSensitive(obj, key) != NULL; }

/* Sets root[key] = value, replacing an existing entry in place (key order is kept). */
static void set_item(cJSON *obj, const char *key, cJSON *value) {
    if (has(obj, key)) cJSON_ReplaceItemInObjectCaseSensitive(obj, key, value);
    else cJSON_AddItemToObject(obj, key, value);
}

static void set_int(cJSON *obj, const char *key, int v) { set_item(obj, key, cJSON_CreateNumber(v)); }

/* A float as the shortest decimal that reads back as the same float (1e-06, not
 * 9.99999997e-07); an existing value that already reads back as v is left as written. */
static void set_float(cJSON *obj, const char *key, float v) {
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsNumber(old) && (float)old->valuedouble == v) return;
    char buf[32];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(buf, sizeof buf, "%.*g", prec, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    set_item(obj, key, cJSON_CreateNumber(strtod(buf, NULL)));
}

static void set_token(cJSON *obj, const char *key, int v) {
    const cJSON *old = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (cJSON_IsArray(old) && cJSON_IsNumber(old->child) && old->child->valuedouble == v) return; /* keep the list */
    set_item(obj, key, v < 0 ? cJSON_CreateNull() : cJSON_CreateNumber(v));
}

/* JSON with 2-space indents, like transformers' to_json_string (keys in file order). */
static void print_json(const cJSON *v, int depth, char **s, size_t *n, size_t *cap) {
#define PUT(str)                                                                  \
    do {                                                                          \
        const char *_p = (str);                                                   \
        size_t _k = strlen(_p);                                                   \
        if (*n + _k + 1 > *cap) {                                                 \
            *cap = (*n + _k + 1) * 2;                                             \
            *s = sr_realloc(*s, *cap);                                            \
        }                                                                         \
        memcpy(*s + *n, _p, _k + 1);                                              \
        *n += _k;                                                                 \
    } while (0)
    int obj = cJSON_IsObject(v);
    if ((obj || cJSON_IsArray(v)) && v->child) {
        PUT(obj ? "{\n" : "[\n");
        for (const cJSON *e = v->child; e; e = e->next) {
            for (int i = 0; i <= depth; i++) PUT("  ");
            if (obj) {
                cJSON *k = cJSON_CreateString(e->string);
                char *ks = cJSON_PrintUnformatted(k);
                PUT(ks);
                PUT(": ");
                cJSON_free(ks);
                cJSON_Delete(k);
            }
            print_json(e, depth + 1, s, n, cap);
            PUT(e->next ? ",\n" : "\n");
        }
        for (int i = 0; i < depth; i++) PUT("  ");
        PUT(obj ? "}" : "]");
    } else {
        char *leaf = cJSON_PrintUnformatted(v);
        PUT(leaf);
        cJSON_free(leaf);
    }
#undef PUT
}

int qwen2_config_save(const Qwen2Config *c, const char *path, SrError *err) {
    if (c->vocab_size <= 0 || c->hidden_size <= 0 || c->intermediate_size <= 0 || c->num_hidden_layers <= 0 ||
        c->num_attention_heads <= 0 || c->num_key_value_heads <= 0 || c->head_dim <= 0 || c->max_position_embeddings <= 0 ||
        c->num_attention_heads % c->num_key_value_heads != 0)
        return sr_fail(err, "%s: not saving an invalid config (sizes must be positive and heads divisible by kv heads)", path);
    if (c->torch_dtype[0] && strcmp(c->torch_dtype, "float32") != 0 && strcmp(c->torch_dtype, "bfloat16") != 0 &&
        strcmp(c->torch_dtype, "float16") != 0)
        return sr_fail(err, "%s: not saving torch_dtype \"%.16s\" (float32, bfloat16 or float16)", path, c->torch_dtype);
    cJSON *root;
    if (c->raw_json) {
        root = sr_json_parse(c->raw_json, strlen(c->raw_json), NULL);
        if (!root || !cJSON_IsObject(root)) {
            cJSON_Delete(root);
            return sr_fail(err, "%s: the config's raw_json is not a JSON object", path);
        }
    } else {
        root = cJSON_CreateObject();
        cJSON *arch = cJSON_AddArrayToObject(root, "architectures");
        cJSON_AddItemToArray(arch, cJSON_CreateString("Qwen2ForCausalLM"));
        cJSON_AddNumberToObject(root, "attention_dropout", 0.0);
        cJSON_AddStringToObject(root, "hidden_act", "silu");
        cJSON_AddStringToObject(root, "model_type", "qwen2");
        cJSON_AddBoolToObject(root, "use_cache", 1);
        cJSON_AddBoolToObject(root, "use_sliding_window", 0);
    }
    set_int(root, "vocab_size", c->vocab_size);
    set_int(root, "hidden_size", c->hidden_size);
    set_int(root, "intermediate_size", c->intermediate_size);
    set_int(root, "num_hidden_layers", c->num_hidden_layers);
    set_int(root, "num_attention_heads", c->num_attention_heads);
    set_int(root, "num_key_value_heads", c->num_key_value_heads);
    if (has(root, "head_dim") || c->head_dim * c->num_attention_heads != c->hidden_size)
        set_int(root, "head_dim", c->head_dim);
    set_int(root, "max_position_embeddings", c->max_position_embeddings);
    cJSON *rp = cJSON_GetObjectItemCaseSensitive(root, "rope_parameters");
    if (cJSON_IsObject(rp)) {
        set_float(rp, "rope_theta", c->rope_theta);
        if (has(root, "rope_theta")) set_float(root, "rope_theta", c->rope_theta);
    } else {
        set_float(root, "rope_theta", c->rope_theta);
    }
    set_float(root, "rms_norm_eps", c->rms_norm_eps);
    set_float(root, "initializer_range", c->initializer_range);
    set_item(root, "tie_word_embeddings", cJSON_CreateBool(c->tie_word_embeddings));
    set_token(root, "bos_token_id", c->bos_token_id);
    set_token(root, "eos_token_id", c->eos_token_id);
    if (c->torch_dtype[0])
        set_item(root, is_present(cJSON_GetObjectItemCaseSensitive(root, "dtype")) ? "dtype" : "torch_dtype",
                 cJSON_CreateString(c->torch_dtype));

    size_t n = 0, cap = 4096;
    char *text = sr_malloc(cap);
    text[0] = '\0';
    print_json(root, 0, &text, &n, &cap);
    cJSON_Delete(root);
    text = sr_realloc(text, n + 2);
    text[n++] = '\n';
    text[n] = '\0';
    int rc = sr_write_file_atomic(path, text, n, err);
    free(text);
    return rc;
}
