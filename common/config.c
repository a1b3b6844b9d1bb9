/* Command settings: defaults, JSON config file, --key value overrides. See config.h. */
#include "config.h"
#include "fileio.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const SrOption *find_opt(const SrOption *opts, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(opts[i].key, key) == 0) return &opts[i];
    return NULL;
}

static const char *type_name(SrOptType t) {
    switch (t) {
    case SR_OPT_STR: return "a string";
    case SR_OPT_INT: return "an integer";
    case SR_OPT_FLOAT: return "a number";
    case SR_OPT_BOOL: return "true or false";
    default: return "JSON";
    }
}

/* Checks (and where harmless, coerces) a value against the option type. */
static int check_type(const SrOption *o, cJSON **val, const char *where, SrError *err) {
    cJSON *v = *val;
    if (cJSON_IsNull(v)) return 0;
    switch (o->type) {
    case SR_OPT_STR:
        if (cJSON_IsString(v)) return 0;
        if (cJSON_IsNumber(v) || cJSON_IsBool(v)) { /* "--prompt 42" is the string "42" */
            char *txt = cJSON_PrintUnformatted(v);
            cJSON *s = cJSON_CreateString(txt);
            free(txt);
            cJSON_Delete(v);
            *val = s;
            return 0;
        }
        break;
    case SR_OPT_INT:
        if (cJSON_IsNumber(v) && v->valuedouble == (double)(long long)v->valuedouble) return 0;
        break;
    case SR_OPT_FLOAT:
        if (cJSON_IsNumber(v)) return 0;
        break;
    case SR_OPT_BOOL:
        if (cJSON_IsBool(v)) return 0;
        break;
    case SR_OPT_JSON:
        return 0;
    }
    return sr_fail(err, "%s: '%s' must be %s", where, o->key, type_name(o->type));
}

static int set_key(SrConfig *cfg, const SrOption *opts, int n_opts, const char *key, cJSON *val,
                   const char *where, SrError *err) {
    const SrOption *o = find_opt(opts, n_opts, key);
    if (!o) {
        cJSON_Delete(val);
        return sr_fail(err, "%s: unknown option '%s' (see --help)", where, key);
    }
    if (check_type(o, &val, where, err)) {
        cJSON_Delete(val);
        return -1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(cfg->root, key);
    cJSON_AddItemToObject(cfg->root, key, val);
    return 0;
}

int sr_config_parse(SrConfig *cfg, const SrOption *opts, int n_opts, int argc, char **argv,
                    int *want_help, SrError *err) {
    cfg->root = cJSON_CreateObject();
    *want_help = 0;
    for (int i = 0; i < n_opts; i++) {
        cJSON *v = cJSON_Parse(opts[i].dflt ? opts[i].dflt : "null");
        SR_ASSERT(v != NULL); /* defaults are ours: a bad one is a bug */
        cJSON_AddItemToObject(cfg->root, opts[i].key, v);
    }
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            *want_help = 1;
            return 0;
        }
    /* the config file first, so that command-line overrides win wherever they appear */
    for (int i = 0; i < argc; i++) {
        if (strcmp(argv[i], "--config") != 0) continue;
        if (i + 1 >= argc) return sr_fail(err, "--config needs a file name");
        const char *path = argv[i + 1];
        size_t len;
        char *text = NULL;
        if (sr_read_file(path, &text, &len, err)) return -1;
        cJSON *root = cJSON_ParseWithLength(text, len);
        free(text);
        if (!root || !cJSON_IsObject(root)) {
            cJSON_Delete(root);
            return sr_fail(err, "%s: not a JSON object", path);
        }
        for (cJSON *it = root->child; it;) {
            cJSON *next = it->next;
            cJSON_DetachItemViaPointer(root, it);
            char *key = sr_strdup(it->string);
            if (set_key(cfg, opts, n_opts, key, it, path, err)) {
                free(key);
                cJSON_Delete(root);
                return -1;
            }
            free(key);
            it = next;
        }
        cJSON_Delete(root);
    }
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--config") == 0) {
            i++;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return sr_fail(err, "unexpected argument '%s' (options are --key value)", a);
        char key[128];
        const char *eq = strchr(a + 2, '=');
        size_t klen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (klen >= sizeof key) return sr_fail(err, "option '%s' is too long", a);
        for (size_t k = 0; k < klen; k++) key[k] = a[2 + k] == '-' ? '_' : a[2 + k];
        key[klen] = '\0';
        const SrOption *o = find_opt(opts, n_opts, key);
        const char *text = NULL;
        if (eq) {
            text = eq + 1;
        } else if (o && o->type == SR_OPT_BOOL &&
                   (i + 1 >= argc || (strcmp(argv[i + 1], "true") != 0 &&
                                      strcmp(argv[i + 1], "false") != 0))) {
            text = "true"; /* a bare flag */
        } else {
            if (i + 1 >= argc) return sr_fail(err, "option --%s needs a value", a + 2);
            text = argv[++i];
        }
        cJSON *val = NULL;
        if (!o || o->type != SR_OPT_STR) val = cJSON_Parse(text);
        if (!val) val = cJSON_CreateString(text);
        if (set_key(cfg, opts, n_opts, key, val, "command line", err)) return -1;
    }
    return 0;
}

void sr_config_free(SrConfig *cfg) {
    cJSON_Delete(cfg->root);
    cfg->root = NULL;
}

void sr_config_print_help(FILE *f, const SrOption *opts, int n_opts) {
    for (int i = 0; i < n_opts; i++) {
        char flag[96];
        int n = snprintf(flag, sizeof flag, "--");
        for (const char *p = opts[i].key; *p && n < (int)sizeof flag - 1; p++)
            flag[n++] = *p == '_' ? '-' : *p;
        flag[n] = '\0';
        const char *meta = opts[i].type == SR_OPT_INT     ? " N"
                           : opts[i].type == SR_OPT_FLOAT ? " X"
                           : opts[i].type == SR_OPT_BOOL  ? ""
                           : opts[i].type == SR_OPT_JSON  ? " JSON"
                                                          : " S";
        char left[128];
        snprintf(left, sizeof left, "%s%s", flag, meta);
        fprintf(f, "  %-26s %s", left, opts[i].help);
        if (opts[i].dflt && strcmp(opts[i].dflt, "null") != 0)
            fprintf(f, " (default: %s)", opts[i].dflt);
        fprintf(f, "\n");
    }
    fprintf(f, "  %-26s %s\n", "--config FILE", "JSON file of settings; command-line options override it");
}

void sr_config_print(const SrConfig *cfg) {
    char *s = cJSON_PrintUnformatted(cfg->root);
    fprintf(stderr, "config: %s\n", s);
    free(s);
}

cJSON *sr_config_get(const SrConfig *cfg, const char *key) {
    cJSON *v = cJSON_GetObjectItemCaseSensitive(cfg->root, key);
    SR_ASSERT(v != NULL); /* asking for an undeclared key is a bug */
    return v;
}

int sr_config_has(const SrConfig *cfg, const char *key) {
    return !cJSON_IsNull(sr_config_get(cfg, key));
}

const char *sr_config_str(const SrConfig *cfg, const char *key) {
    cJSON *v = sr_config_get(cfg, key);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

long long sr_config_int(const SrConfig *cfg, const char *key) {
    cJSON *v = sr_config_get(cfg, key);
    return cJSON_IsNumber(v) ? (long long)v->valuedouble : 0;
}

double sr_config_float(const SrConfig *cfg, const char *key) {
    cJSON *v = sr_config_get(cfg, key);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

int sr_config_bool(const SrConfig *cfg, const char *key) {
    return cJSON_IsTrue(sr_config_get(cfg, key));
}
