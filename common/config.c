/* Command settings: defaults, JSON config file, --key value overrides. See config.h. */
#include "config.h"
#include "fileio.h"
#include "json.h"

#include <limits.h>
#include <math.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>


static const SrOption *find_opt(const SrOption *opts, int n, const char *key) {
    for (int i = 0; i < n; i++)
        if (strcmp(opts[i].key, key) == 0) return &opts[i];
    return NULL;
}

const char *sr_oneline(const char *s, char *buf, size_t n) {
    size_t i = 0;
    for (; s[i] && i + 4 < n; i++) buf[i] = (unsigned char)s[i] < 0x20 || s[i] == 0x7f ? '?' : s[i];
    if (s[i]) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

/* How a value is named in messages: "--max-new-tokens" (command line) or
 * "run.json: max_new_tokens" (a --config file). */
static void label(char *buf, size_t n, const char *file, const char *key) {
    char cut[512]; /* a path is shown whole (to a sane length), a value cut short */
    if (file) {
        snprintf(buf, n, "%s: %s", sr_oneline(file, cut, sizeof cut), key); /* keys are the table's */
        return;
    }
    size_t k = (size_t)snprintf(buf, n, "--");
    for (const char *p = key; *p && k + 1 < n; p++) buf[k++] = *p == '_' ? '-' : *p;
    buf[k < n ? k : n - 1] = '\0';
}

/* the shortest decimal that reads back as x ("0.1", "2147483648", "inf") */
static void fmt_num(char *buf, size_t n, double x) {
    if (isinf(x)) {
        snprintf(buf, n, "%sinf", x < 0 ? "-" : "");
        return;
    }
    if (x == floor(x) && fabs(x) <= SR_JSON_INT_MAX) { /* whole numbers as they are typed */
        snprintf(buf, n, "%.0f", x);
        return;
    }
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(buf, n, "%.*g", prec, x);
        if (strtod(buf, NULL) == x) return;
    }
}

/* a value as the message quotes it: numbers as numbers, strings in quotes, the rest as JSON
 * (cut to 60 bytes: the value may be a whole hostile object) */
static void fmt_value(char *buf, size_t n, const cJSON *v) {
    if (cJSON_IsNumber(v)) {
        fmt_num(buf, n, v->valuedouble);
        return;
    }
    char *txt = cJSON_IsString(v) ? NULL : cJSON_PrintUnformatted(v);
    const char *s = cJSON_IsString(v) ? v->valuestring : txt ? txt : "?";
    int q = cJSON_IsString(v);
    char cut[72];
    snprintf(buf, n, "%s%s%s", q ? "'" : "", sr_oneline(s, cut, sizeof cut), q ? "'" : "");
    free(txt);
}

static void fmt_range(char *buf, size_t n, const SrOption *o, double lo, double hi) {
    char a[40], b[40];
    fmt_num(a, sizeof a, lo);
    fmt_num(b, sizeof b, hi);
    snprintf(buf, n, "%c%s, %s%c", o->min_open ? '(' : '[', a, b, o->max_open || isinf(hi) ? ')' : ']');
}

static void fmt_choices(char *buf, size_t n, const SrOption *o) {
    size_t k = 0;
    buf[0] = '\0';
    for (int i = 0; o->choices[i] && k < n; i++)
        k += (size_t)snprintf(buf + k, n - k, "%s%s", i ? ", " : "", o->choices[i]);
    if (o->has_range && k < n) {
        char r[96];
        fmt_range(r, sizeof r, o, o->min, o->max);
        snprintf(buf + k, n - k, ", or a whole number in %s", r);
    }
}

/* the bounds an option's numbers must lie in: its range, else what an int holds (INT) */
static void bounds(const SrOption *o, double *lo, double *hi) {
    if (o->has_range) {
        *lo = o->min;
        *hi = o->max;
    } else if (o->type == SR_OPT_INT) {
        *lo = INT_MIN;
        *hi = INT_MAX;
    } else {
        *lo = -SR_INF;
        *hi = SR_INF;
    }
}

static int in_bounds(const SrOption *o, double x) {
    double lo, hi;
    bounds(o, &lo, &hi);
    return (o->min_open ? x > lo : x >= lo) && (o->max_open ? x < hi : x <= hi);
}

/* 1 if s is a whole JSON number: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
static int is_json_number(const char *s) {
    const char *p = s;
    if (*p == '-') p++;
    if (*p == '0') p++;
    else if (*p >= '1' && *p <= '9') while (*p >= '0' && *p <= '9') p++;
    else return 0;
    if (*p == '.') {
        p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    if (*p == 'e' || *p == 'E') {
        p++;
        if (*p == '+' || *p == '-') p++;
        if (!(*p >= '0' && *p <= '9')) return 0;
        while (*p >= '0' && *p <= '9') p++;
    }
    return *p == '\0';
}

static int is_choice(const SrOption *o, const char *s) {
    for (int i = 0; o->choices[i]; i++)
        if (strcmp(o->choices[i], s) == 0) return 1;
    /* with a range too: a whole number in it ("select": an index) */
    if (o->has_range && *s && strspn(s, "0123456789") == strlen(s) && strlen(s) < 16)
        return in_bounds(o, strtod(s, NULL));
    return 0;
}

static int fail_choice(const SrOption *o, const char *lbl, const cJSON *v, SrError *err) {
    char val[96], ch[512];
    fmt_value(val, sizeof val, v);
    fmt_choices(ch, sizeof ch, o);
    return sr_fail(err, "%s: %s is not one of %s", lbl, val, ch);
}

static int check_number(const SrOption *o, const cJSON *v, const char *lbl, SrError *err) {
    char val[96], r[96];
    fmt_value(val, sizeof val, v);
    double x = v->valuedouble;
    if (!isfinite(x)) return sr_fail(err, "%s: %s is not a finite number", lbl, val);
    if (o->type == SR_OPT_INT && x != floor(x)) return sr_fail(err, "%s: %s is not a whole number", lbl, val);
    if (in_bounds(o, x)) return 0;
    double lo, hi;
    bounds(o, &lo, &hi);
    fmt_range(r, sizeof r, o, lo, hi);
    return sr_fail(err, "%s: %s is out of range %s", lbl, val, r);
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

/* Checks a value against its option (type, range, choices), coercing a number or a bool for a
 * string option to its text ("select": 3 in a file is the index "3"). */
static int check_value(const SrOption *o, cJSON **val, const char *lbl, SrError *err) {
    cJSON *v = *val;
    char shown[96];
    if (cJSON_IsNull(v)) return 0;
    switch (o->type) {
    case SR_OPT_STR:
        if (cJSON_IsNumber(v) || cJSON_IsBool(v)) {
            if (cJSON_IsNumber(v) && !isfinite(v->valuedouble)) break;
            char txt[64];
            if (cJSON_IsBool(v)) snprintf(txt, sizeof txt, "%s", cJSON_IsTrue(v) ? "true" : "false");
            else fmt_num(txt, sizeof txt, v->valuedouble);
            cJSON *s = cJSON_CreateString(txt);
            cJSON_Delete(v);
            *val = v = s;
        }
        if (!cJSON_IsString(v)) break;
        if (o->choices && !is_choice(o, v->valuestring)) return fail_choice(o, lbl, v, err);
        return 0;
    case SR_OPT_INT:
    case SR_OPT_FLOAT:
        if (!cJSON_IsNumber(v)) break;
        return check_number(o, v, lbl, err);
    case SR_OPT_BOOL:
        if (cJSON_IsBool(v)) return 0;
        break;
    case SR_OPT_JSON:
        if (!o->choices) return 0;
        if (cJSON_IsString(v)) return is_choice(o, v->valuestring) ? 0 : fail_choice(o, lbl, v, err);
        if (cJSON_IsArray(v)) {
            for (const cJSON *e = v->child; e; e = e->next)
                if (!cJSON_IsString(e) || !is_choice(o, e->valuestring)) return fail_choice(o, lbl, e, err);
            return 0;
        }
        return fail_choice(o, lbl, v, err);
    }
    fmt_value(shown, sizeof shown, v);
    return sr_fail(err, "%s: %s is not %s", lbl, shown, type_name(o->type));
}

/* Sets key = val (owned) after checking it; file: the --config file, NULL for the command line. */
static int set_key(SrConfig *cfg, const SrOption *opts, int n_opts, const char *key, cJSON *val,
                   const char *file, SrError *err) {
    const SrOption *o = find_opt(opts, n_opts, key);
    if (!o) {
        cJSON_Delete(val);
        char k[72], f[512];
        return sr_fail(err, "%s: unknown option '%s' (see --help)", file ? sr_oneline(file, f, sizeof f) : "command line",
                       sr_oneline(key, k, sizeof k));
    }
    char lbl[640]; /* a --config path (up to 508 bytes) and a key */
    label(lbl, sizeof lbl, file, o->key);
    if (check_value(o, &val, lbl, err)) {
        cJSON_Delete(val);
        return -1;
    }
    cJSON_DeleteItemFromObjectCaseSensitive(cfg->root, key);
    cJSON_AddItemToObject(cfg->root, key, val);
    return 0;
}

/* A command-line value as the option's type reads it: numbers must be a whole JSON number,
 * booleans true/false, JSON options JSON (else the text as a string), strings as they are;
 * "null" unsets any option but a string. NULL with err when the text is not one. */
static cJSON *parse_arg(const SrOption *o, const char *text, const char *lbl, SrError *err) {
    if (!o || o->type == SR_OPT_STR) return cJSON_CreateString(text);
    if (strcmp(text, "null") == 0) return cJSON_CreateNull();
    switch (o->type) {
    case SR_OPT_INT:
    case SR_OPT_FLOAT:
        if (!is_json_number(text)) {
            char cut[72];
            sr_fail(err, "%s: '%s' is not %s", lbl, sr_oneline(text, cut, sizeof cut), type_name(o->type));
            return NULL;
        }
        return cJSON_CreateNumber(strtod(text, NULL));
    case SR_OPT_BOOL:
        if (strcmp(text, "true") == 0 || strcmp(text, "false") == 0) return cJSON_CreateBool(text[0] == 't');
        char cut[72];
        sr_fail(err, "%s: '%s' is not true or false", lbl, sr_oneline(text, cut, sizeof cut));
        return NULL;
    default: {
        cJSON *v = sr_json_parse(text, strlen(text), NULL);
        return v ? v : cJSON_CreateString(text);
    }
    }
}

static void set_defaults(SrConfig *cfg, const SrOption *opts, int n_opts) {
    cfg->root = cJSON_CreateObject();
    for (int i = 0; i < n_opts; i++) {
        const SrOption *o = &opts[i];
        SR_ASSERT(!o->has_range || o->min <= o->max);
        SR_ASSERT(!o->has_range || o->type == SR_OPT_INT || o->type == SR_OPT_FLOAT || o->choices);
        cJSON *v = cJSON_Parse(o->dflt ? o->dflt : "null");
        SR_ASSERT(v != NULL); /* defaults are ours: a bad one is a bug */
        SrError e;
        char lbl[640]; /* a --config path (up to 508 bytes) and a key */
        label(lbl, sizeof lbl, "default", o->key);
        if (check_value(o, &v, lbl, &e)) {
            fprintf(stderr, "splitreason: internal error: %s\n", e.msg);
            SR_ASSERT(!"an option's default passes its own checks");
        }
        cJSON_AddItemToObject(cfg->root, o->key, v);
    }
}

/* the keys of a --config file's text, over what cfg holds */
static int merge_json(SrConfig *cfg, const SrOption *opts, int n_opts, const char *text, size_t len,
                      const char *path, SrError *err) {
    cJSON *root = sr_json_parse_object(text, len, err);
    if (!root) return sr_fail_prefix(err, "%s", path);
    int rc = 0;
    for (cJSON *it = root->child; it && !rc;) {
        cJSON *next = it->next;
        cJSON_DetachItemViaPointer(root, it);
        char *key = sr_strdup(it->string);
        rc = set_key(cfg, opts, n_opts, key, it, path, err);
        free(key);
        it = next;
    }
    cJSON_Delete(root);
    return rc;
}

int sr_config_parse_json(SrConfig *cfg, const SrOption *opts, int n_opts, const char *text,
                         size_t len, const char *path, SrError *err) {
    set_defaults(cfg, opts, n_opts);
    return merge_json(cfg, opts, n_opts, text, len, path, err);
}

static int is_config_arg(const char *a) { return strcmp(a, "--config") == 0 || strncmp(a, "--config=", 9) == 0; }

int sr_config_parse(SrConfig *cfg, const SrOption *opts, int n_opts, int argc, char **argv,
                    int *want_help, SrError *err) {
    set_defaults(cfg, opts, n_opts);
    *want_help = 0;
    for (int i = 0; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            *want_help = 1;
            return 0;
        }
    /* the config files first, so that command-line overrides win wherever they appear */
    for (int i = 0; i < argc; i++) {
        if (!is_config_arg(argv[i])) continue;
        const char *path = argv[i][8] == '=' ? argv[i] + 9 : NULL;
        if (!path) {
            if (i + 1 >= argc) return sr_fail(err, "--config needs a file name");
            path = argv[++i];
        }
        if (!path[0]) return sr_fail(err, "--config needs a file name");
        size_t len;
        char *text = NULL;
        if (sr_read_file(path, &text, &len, err)) return -1;
        int rc = merge_json(cfg, opts, n_opts, text, len, path, err);
        free(text);
        if (rc) return -1;
    }
    char lbl_buf[72];
    for (int i = 0; i < argc; i++) {
        const char *a = argv[i];
        if (is_config_arg(a)) {
            if (a[8] != '=') i++;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0')
            return sr_fail(err, "unexpected argument '%s' (options are --key value)", sr_oneline(a, lbl_buf, sizeof lbl_buf));
        char key[128];
        const char *eq = strchr(a + 2, '=');
        size_t klen = eq ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        if (klen >= sizeof key) return sr_fail(err, "option '%s' is too long", sr_oneline(a, lbl_buf, sizeof lbl_buf));
        for (size_t k = 0; k < klen; k++) key[k] = a[2 + k] == '-' ? '_' : a[2 + k];
        key[klen] = '\0';
        const SrOption *o = find_opt(opts, n_opts, key);
        if (!o) return sr_fail(err, "command line: unknown option '%s' (see --help)", sr_oneline(key, lbl_buf, sizeof lbl_buf));
        char lbl[640]; /* a --config path (up to 508 bytes) and a key */
        label(lbl, sizeof lbl, NULL, key);
        const char *text = NULL;
        if (eq) {
            text = eq + 1;
        } else if (o->type == SR_OPT_BOOL &&
                   (i + 1 >= argc || (strcmp(argv[i + 1], "true") != 0 &&
                                      strcmp(argv[i + 1], "false") != 0))) {
            text = "true"; /* a bare flag */
        } else {
            if (i + 1 >= argc) return sr_fail(err, "%s needs a value", lbl);
            text = argv[++i];
        }
        cJSON *val = parse_arg(o, text, lbl, err);
        if (!val || set_key(cfg, opts, n_opts, key, val, NULL, err)) return -1;
    }
    for (int i = 0; i < n_opts; i++)
        if (opts[i].required && !sr_config_has(cfg, opts[i].key)) {
            char lbl[640]; /* a --config path (up to 508 bytes) and a key */
            label(lbl, sizeof lbl, NULL, opts[i].key);
            return sr_fail(err, "%s is required", lbl);
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
        /* (required; default: 64; one of: a, b; range [1, 1048576]) */
        const SrOption *o = &opts[i];
        const char *sep = " (";
        if (o->required && (!o->dflt || !strcmp(o->dflt, "null"))) fprintf(f, "%srequired", sep), sep = "; ";
        if (o->dflt && strcmp(o->dflt, "null") != 0) fprintf(f, "%sdefault: %s", sep, o->dflt), sep = "; ";
        char buf[512];
        if (o->choices) {
            fmt_choices(buf, sizeof buf, o);
            fprintf(f, "%sone of: %s", sep, buf), sep = "; ";
        } else if (o->has_range) {
            fmt_range(buf, sizeof buf, o, o->min, o->max);
            fprintf(f, "%srange %s", sep, buf), sep = "; ";
        }
        fprintf(f, "%s\n", sep[0] == ';' ? ")" : "");
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
