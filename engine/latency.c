/*
 * The latency table (engine/latency.h): strict loading, lookups, T_split, and the JSON writer
 * bench latency uses. The layout is documented in configs/latency/README.md; every field is
 * required except note and settings, and an unknown key is refused (a typo must not silently
 * fall back to something else).
 */
#include "latency.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/config.h"
#include "../common/fileio.h"
#include "../common/json.h"

/* No figure of a table is a million seconds: the bound keeps every lookup and extrapolation
 * finite (slope <= 1e6 s per position times 2^31 positions), so T_split is never inf or NaN. */
#define LATENCY_MAX_S 1e6

void latency_table_free(LatencyTable *t) {
    if (!t) return;
    free(t->device);
    free(t->note);
    free(t->small.name);
    free(t->big.name);
    free(t->batches);
    free(t->contexts);
    free(t->deltas);
    free(t->tau_s);
    free(t->tau_b);
    free(t->pi_s);
    free(t->pi_b);
    free(t->settings);
    free(t);
}

/* ---- parsing ------------------------------------------------------------------------------ */

static const char *json_type_name(const cJSON *v) {
    if (cJSON_IsNumber(v)) return "a number";
    if (cJSON_IsString(v)) return "a string";
    if (cJSON_IsArray(v)) return "a list";
    if (cJSON_IsObject(v)) return "an object";
    if (cJSON_IsBool(v)) return "a boolean";
    return "null";
}

/* the keys obj may hold; anything else is refused, naming the key (cut to one line) */
static int check_keys(const cJSON *obj, const char *const *keys, const char *path, const char *where,
                      SrError *err) {
    for (const cJSON *it = obj->child; it; it = it->next) {
        int known = 0;
        for (int i = 0; keys[i]; i++) known |= !strcmp(it->string, keys[i]);
        if (!known) {
            char buf[72];
            return sr_fail(err, "%s: unknown field '%s%s'", path, where,
                           sr_oneline(it->string, buf, sizeof buf));
        }
    }
    return 0;
}

static const cJSON *need(const cJSON *obj, const char *key, const char *path, const char *where,
                         SrError *err) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, key);
    if (!v) sr_fail(err, "%s: missing field '%s%s'", path, where, key);
    return v;
}

static int get_number(const cJSON *v, const char *path, const char *name, double *out, SrError *err) {
    if (!cJSON_IsNumber(v))
        return sr_fail(err, "%s: %s: expected a number, got %s", path, name, json_type_name(v));
    if (!isfinite(v->valuedouble)) return sr_fail(err, "%s: %s: not a finite number", path, name);
    *out = v->valuedouble;
    return 0;
}

static int get_int(const cJSON *v, const char *path, const char *name, int *out, SrError *err) {
    double d;
    if (get_number(v, path, name, &d, err)) return -1;
    if (d != floor(d)) return sr_fail(err, "%s: %s: %g is not a whole number", path, name, d);
    if (d < -2147483648.0 || d > 2147483647.0)
        return sr_fail(err, "%s: %s: %g is out of range", path, name, d);
    *out = (int)d;
    return 0;
}

static int get_string(const cJSON *v, const char *path, const char *name, char **out, SrError *err) {
    if (!cJSON_IsString(v))
        return sr_fail(err, "%s: %s: expected a string, got %s", path, name, json_type_name(v));
    *out = sr_strdup(v->valuestring);
    return 0;
}

/* a non-empty list of numbers: *n entries into a new array (ints or doubles) */
static int get_list(const cJSON *v, const char *path, const char *name, int want, int **ints,
                    double **dbls, int *n, SrError *err) {
    if (!cJSON_IsArray(v))
        return sr_fail(err, "%s: %s: expected a list, got %s", path, name, json_type_name(v));
    int len = cJSON_GetArraySize(v);
    if (len == 0) return sr_fail(err, "%s: %s: the list is empty", path, name);
    if (want >= 0 && len != want) return -2; /* the caller names the mismatch */
    if (ints) *ints = sr_calloc((size_t)len, sizeof(int));
    if (dbls) *dbls = sr_calloc((size_t)len, sizeof(double));
    int i = 0;
    for (const cJSON *it = v->child; it; it = it->next, i++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s[%d]", name, i);
        if (ints ? get_int(it, path, nm, &(*ints)[i], err) : get_number(it, path, nm, &(*dbls)[i], err))
            return -1;
    }
    *n = len;
    return 0;
}

static int get_model(const cJSON *root, const char *key, const char *path, LatencyModelInfo *m,
                     SrError *err) {
    const cJSON *o = need(root, key, path, "", err);
    if (!o) return -1;
    if (!cJSON_IsObject(o))
        return sr_fail(err, "%s: %s: expected an object, got %s", path, key, json_type_name(o));
    static const char *const KEYS[] = {"name", "hidden_size", "num_hidden_layers", "num_params", NULL};
    char where[32], nm[64];
    snprintf(where, sizeof where, "%s.", key);
    if (check_keys(o, KEYS, path, where, err)) return -1;
    const cJSON *v;
    if (!(v = need(o, "name", path, where, err))) return -1;
    snprintf(nm, sizeof nm, "%s.name", key);
    if (get_string(v, path, nm, &m->name, err)) return -1;
    if (!(v = need(o, "hidden_size", path, where, err))) return -1;
    snprintf(nm, sizeof nm, "%s.hidden_size", key);
    if (get_int(v, path, nm, &m->hidden_size, err)) return -1;
    if (!(v = need(o, "num_hidden_layers", path, where, err))) return -1;
    snprintf(nm, sizeof nm, "%s.num_hidden_layers", key);
    if (get_int(v, path, nm, &m->num_hidden_layers, err)) return -1;
    if (!(v = need(o, "num_params", path, where, err))) return -1;
    snprintf(nm, sizeof nm, "%s.num_params", key);
    if (get_number(v, path, nm, &m->num_params, err)) return -1;
    return 0;
}

/* tau_s / tau_b: one row per batch, one value per context */
static int get_grid(const cJSON *root, const char *key, const char *path, int nb, int nc,
                    double **out, SrError *err) {
    const cJSON *v = need(root, key, path, "", err);
    if (!v) return -1;
    if (!cJSON_IsArray(v))
        return sr_fail(err, "%s: %s: expected a list of rows (one per batch), got %s", path, key,
                       json_type_name(v));
    if (cJSON_GetArraySize(v) != nb)
        return sr_fail(err, "%s: %s: %d rows for %d batches", path, key, cJSON_GetArraySize(v), nb);
    *out = sr_calloc((size_t)nb * nc, sizeof(double));
    int b = 0;
    for (const cJSON *row = v->child; row; row = row->next, b++) {
        char nm[64];
        snprintf(nm, sizeof nm, "%s[%d]", key, b);
        if (!cJSON_IsArray(row))
            return sr_fail(err, "%s: %s: expected a list (one value per context), got %s", path, nm,
                           json_type_name(row));
        if (cJSON_GetArraySize(row) != nc)
            return sr_fail(err, "%s: %s: %d values for %d contexts", path, nm,
                           cJSON_GetArraySize(row), nc);
        int c = 0;
        for (const cJSON *it = row->child; it; it = it->next, c++) {
            snprintf(nm, sizeof nm, "%s[%d][%d]", key, b, c);
            if (get_number(it, path, nm, &(*out)[(size_t)b * nc + c], err)) return -1;
        }
    }
    return 0;
}

static int get_pi(const cJSON *root, const char *key, const char *path, int nd, double **out,
                  SrError *err) {
    const cJSON *v = need(root, key, path, "", err);
    if (!v) return -1;
    int n = 0, rc = get_list(v, path, key, nd, NULL, out, &n, err);
    if (rc == -2)
        return sr_fail(err, "%s: %s: %d values for %d deltas", path, key, cJSON_GetArraySize(v), nd);
    return rc;
}

static int get_axis(const cJSON *root, const char *key, const char *path, int **out, int *n,
                    SrError *err) {
    const cJSON *v = need(root, key, path, "", err);
    if (!v) return -1;
    return get_list(v, path, key, -1, out, NULL, n, err);
}

static int parse_root(LatencyTable *t, const cJSON *root, const char *path, SrError *err) {
    static const char *const KEYS[] = {"version", "device", "source", "note", "small", "big",
                                       "batches", "contexts", "tau_s", "tau_b", "deltas",
                                       "pi_context", "pi_s", "pi_b", "sigma", "settings", NULL};
    if (check_keys(root, KEYS, path, "", err)) return -1;
    const cJSON *v;
    int version;
    if (!(v = need(root, "version", path, "", err)) || get_int(v, path, "version", &version, err))
        return -1;
    if (version != 1) return sr_fail(err, "%s: version: %d is not a version this reader knows (1)", path, version);
    if (!(v = need(root, "device", path, "", err)) || get_string(v, path, "device", &t->device, err))
        return -1;
    char *source = NULL;
    if (!(v = need(root, "source", path, "", err)) || get_string(v, path, "source", &source, err))
        return -1;
    t->measured = !strcmp(source, "measured");
    int known = t->measured || !strcmp(source, "modelled");
    free(source);
    if (!known) return sr_fail(err, "%s: source: expected \"measured\" or \"modelled\"", path);
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "note")) && !cJSON_IsNull(v) &&
        get_string(v, path, "note", &t->note, err))
        return -1;
    if ((v = cJSON_GetObjectItemCaseSensitive(root, "settings")) && !cJSON_IsNull(v)) {
        if (!cJSON_IsObject(v))
            return sr_fail(err, "%s: settings: expected an object, got %s", path, json_type_name(v));
        t->settings = cJSON_PrintUnformatted(v);
    }
    if (get_model(root, "small", path, &t->small, err) || get_model(root, "big", path, &t->big, err))
        return -1;
    if (get_axis(root, "batches", path, &t->batches, &t->n_batches, err) ||
        get_axis(root, "contexts", path, &t->contexts, &t->n_contexts, err) ||
        get_axis(root, "deltas", path, &t->deltas, &t->n_deltas, err))
        return -1;
    if (get_grid(root, "tau_s", path, t->n_batches, t->n_contexts, &t->tau_s, err) ||
        get_grid(root, "tau_b", path, t->n_batches, t->n_contexts, &t->tau_b, err) ||
        get_pi(root, "pi_s", path, t->n_deltas, &t->pi_s, err) ||
        get_pi(root, "pi_b", path, t->n_deltas, &t->pi_b, err))
        return -1;
    if (!(v = need(root, "pi_context", path, "", err)) ||
        get_int(v, path, "pi_context", &t->pi_context, err))
        return -1;
    if (!(v = need(root, "sigma", path, "", err)) || get_number(v, path, "sigma", &t->sigma, err))
        return -1;
    return latency_table_check(t, path, err);
}

/* ---- the rules a table must satisfy (a file and bench's own table alike) ------------------- */

static int check_axis(const int *x, int n, const char *what, const char *name, SrError *err) {
    for (int i = 0; i < n; i++) {
        if (x[i] < 1) return sr_fail(err, "%s: %s[%d]: %d is below 1", what, name, i, x[i]);
        if (i > 0 && x[i] <= x[i - 1])
            return sr_fail(err, "%s: %s[%d]: %d is not above %s[%d] = %d (the grid must be increasing)",
                           what, name, i, x[i], name, i - 1, x[i - 1]);
    }
    return 0;
}

static int check_values(const double *x, int n, int per_row, const char *what, const char *name,
                        SrError *err) {
    for (int i = 0; i < n; i++) {
        char nm[64];
        if (per_row) snprintf(nm, sizeof nm, "%s[%d][%d]", name, i / per_row, i % per_row);
        else snprintf(nm, sizeof nm, "%s[%d]", name, i);
        if (!isfinite(x[i])) return sr_fail(err, "%s: %s: not a finite number", what, nm);
        if (x[i] < 0) return sr_fail(err, "%s: %s: %g is negative", what, nm, x[i]);
        if (x[i] > LATENCY_MAX_S) return sr_fail(err, "%s: %s: %g is above %g s", what, nm, x[i], LATENCY_MAX_S);
    }
    return 0;
}

static int check_model(const LatencyModelInfo *m, const char *what, const char *key, SrError *err) {
    if (!m->name || !m->name[0]) return sr_fail(err, "%s: %s.name: empty", what, key);
    if (m->hidden_size < 1) return sr_fail(err, "%s: %s.hidden_size: %d is below 1", what, key, m->hidden_size);
    if (m->num_hidden_layers < 1)
        return sr_fail(err, "%s: %s.num_hidden_layers: %d is below 1", what, key, m->num_hidden_layers);
    if (!isfinite(m->num_params) || m->num_params < 1 || m->num_params != floor(m->num_params))
        return sr_fail(err, "%s: %s.num_params: %g is not a whole number >= 1", what, key, m->num_params);
    return 0;
}

int latency_table_check(const LatencyTable *t, const char *what, SrError *err) {
    if (!t->device || !t->device[0]) return sr_fail(err, "%s: device: empty", what);
    if (check_model(&t->small, what, "small", err) || check_model(&t->big, what, "big", err)) return -1;
    if (t->n_batches < 1 || t->n_contexts < 1 || t->n_deltas < 1)
        return sr_fail(err, "%s: batches, contexts and deltas need at least one value each", what);
    if (check_axis(t->batches, t->n_batches, what, "batches", err) ||
        check_axis(t->contexts, t->n_contexts, what, "contexts", err) ||
        check_axis(t->deltas, t->n_deltas, what, "deltas", err))
        return -1;
    int cells = t->n_batches * t->n_contexts;
    if (check_values(t->tau_s, cells, t->n_contexts, what, "tau_s", err) ||
        check_values(t->tau_b, cells, t->n_contexts, what, "tau_b", err) ||
        check_values(t->pi_s, t->n_deltas, 0, what, "pi_s", err) ||
        check_values(t->pi_b, t->n_deltas, 0, what, "pi_b", err))
        return -1;
    if (t->pi_context < 0) return sr_fail(err, "%s: pi_context: %d is negative", what, t->pi_context);
    if (!isfinite(t->sigma)) return sr_fail(err, "%s: sigma: not a finite number", what);
    if (t->sigma < 0) return sr_fail(err, "%s: sigma: %g is negative", what, t->sigma);
    if (t->sigma > LATENCY_MAX_S) return sr_fail(err, "%s: sigma: %g is above %g s", what, t->sigma, LATENCY_MAX_S);
    return 0;
}

int latency_table_parse(LatencyTable **out, const char *text, size_t len, const char *path,
                        SrError *err) {
    *out = NULL;
    cJSON *root = sr_json_parse_object(text, len, err);
    if (!root) return sr_fail_prefix(err, "%s", path);
    LatencyTable *t = sr_calloc(1, sizeof *t);
    int rc = parse_root(t, root, path, err);
    cJSON_Delete(root);
    if (rc) {
        latency_table_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int latency_table_load(LatencyTable **out, const char *path, SrError *err) {
    *out = NULL;
    char *text = NULL;
    size_t len = 0;
    if (sr_read_file(path, &text, &len, err)) return -1;
    int rc = latency_table_parse(out, text, len, path, err);
    free(text);
    return rc;
}

/* ---- lookups ------------------------------------------------------------------------------ */

/* one batch row of tau at context c (a real number: T_split reads a mean context) */
static double tau_row(const double *row, const int *ctx, int n, double c) {
    if (n == 1 || c <= ctx[0]) return row[0];
    if (c >= ctx[n - 1]) {
        double slope = (row[n - 1] - row[n - 2]) / (ctx[n - 1] - ctx[n - 2]);
        return row[n - 1] + (slope > 0 ? slope : 0) * (c - ctx[n - 1]);
    }
    int i = 0;
    while (c >= ctx[i + 1]) i++; /* ctx[i] <= c < ctx[i+1] */
    double w = (log(c) - log(ctx[i])) / (log(ctx[i + 1]) - log(ctx[i]));
    return row[i] + w * (row[i + 1] - row[i]);
}

static double tau_at(const LatencyTable *t, LatencyWhich which, int batch, double c) {
    const double *g = which == LATENCY_BIG ? t->tau_b : t->tau_s;
    int nb = t->n_batches, nc = t->n_contexts;
    const int *b = t->batches;
    if (nb == 1 || batch <= b[0]) return tau_row(g, t->contexts, nc, c);
    if (batch >= b[nb - 1]) return tau_row(g + (size_t)(nb - 1) * nc, t->contexts, nc, c);
    int i = 0;
    while (batch >= b[i + 1]) i++;
    double w = (log(batch) - log(b[i])) / (log(b[i + 1]) - log(b[i]));
    double lo = tau_row(g + (size_t)i * nc, t->contexts, nc, c);
    double hi = tau_row(g + (size_t)(i + 1) * nc, t->contexts, nc, c);
    return lo + w * (hi - lo);
}

double latency_tau(const LatencyTable *t, LatencyWhich w, int batch, int ctx) {
    return tau_at(t, w, batch, ctx);
}

double latency_pi(const LatencyTable *t, LatencyWhich which, int delta) {
    if (delta <= 0) return 0;
    const double *p = which == LATENCY_BIG ? t->pi_b : t->pi_s;
    const int *d = t->deltas;
    int n = t->n_deltas;
    if (n == 1) return p[0];
    int i; /* the segment [d[i], d[i+1]] used, the nearest one outside the grid */
    if (delta <= d[0]) i = 0;
    else if (delta >= d[n - 1]) i = n - 2;
    else for (i = 0; delta >= d[i + 1]; i++) {}
    double slope = (p[i + 1] - p[i]) / (d[i + 1] - d[i]);
    int j = delta >= d[n - 1] ? n - 1 : i; /* extrapolate from the grid's end point */
    if ((delta < d[0] || delta > d[n - 1]) && slope < 0) slope = 0;
    double v = p[j] + slope * (delta - d[j]);
    return v > 0 ? v : 0;
}

static double mean_ctx(int ctx, double n_tokens) {
    double c = ctx - 0.5 * n_tokens;
    return c > 1 ? c : 1;
}

double latency_t_single(const LatencyTable *t, LatencyWhich w, int batch, int ctx, int n_tokens) {
    return n_tokens * tau_at(t, w, batch, mean_ctx(ctx, n_tokens));
}

double latency_t_split(const LatencyTable *t, int batch, int ctx, int small_tokens, int big_tokens,
                       int n_switches, const int *delta_big, const int *delta_small) {
    double c = mean_ctx(ctx, (double)small_tokens + big_tokens);
    double T = small_tokens * tau_at(t, LATENCY_SMALL, batch, c) +
               big_tokens * tau_at(t, LATENCY_BIG, batch, c);
    for (int i = 0; i < n_switches; i++)
        T += latency_pi(t, LATENCY_BIG, delta_big[i]) + latency_pi(t, LATENCY_SMALL, delta_small[i]) +
             t->sigma;
    return T;
}

/* ---- writing ------------------------------------------------------------------------------ */

static void put_ints(SrBuf *b, const int *x, int n) {
    sr_buf_char(b, '[');
    for (int i = 0; i < n; i++) sr_buf_printf(b, i ? ", %d" : "%d", x[i]);
    sr_buf_char(b, ']');
}

static void put_nums(SrBuf *b, const double *x, int n) {
    sr_buf_char(b, '[');
    for (int i = 0; i < n; i++) {
        if (i) sr_buf_str(b, ", ");
        sr_buf_json_number(b, x[i]);
    }
    sr_buf_char(b, ']');
}

static void put_model(SrBuf *b, const char *key, const LatencyModelInfo *m) {
    sr_buf_printf(b, "  \"%s\": {\"name\": ", key);
    sr_buf_json_string(b, m->name, strlen(m->name));
    sr_buf_printf(b, ", \"hidden_size\": %d, \"num_hidden_layers\": %d, \"num_params\": ",
                  m->hidden_size, m->num_hidden_layers);
    sr_buf_json_number(b, m->num_params);
    sr_buf_str(b, "},\n");
}

static void put_grid(SrBuf *b, const char *key, const double *g, int nb, int nc) {
    sr_buf_printf(b, "  \"%s\": [\n", key);
    for (int i = 0; i < nb; i++) {
        sr_buf_str(b, "    ");
        put_nums(b, g + (size_t)i * nc, nc);
        sr_buf_str(b, i + 1 < nb ? ",\n" : "\n");
    }
    sr_buf_str(b, "  ],\n");
}

void latency_table_to_json(const LatencyTable *t, SrBuf *b) {
    sr_buf_str(b, "{\n  \"version\": 1,\n  \"device\": ");
    sr_buf_json_string(b, t->device, strlen(t->device));
    sr_buf_printf(b, ",\n  \"source\": \"%s\",\n", t->measured ? "measured" : "modelled");
    if (t->note) {
        sr_buf_str(b, "  \"note\": ");
        sr_buf_json_string(b, t->note, strlen(t->note));
        sr_buf_str(b, ",\n");
    }
    put_model(b, "small", &t->small);
    put_model(b, "big", &t->big);
    sr_buf_str(b, "  \"batches\": ");
    put_ints(b, t->batches, t->n_batches);
    sr_buf_str(b, ",\n  \"contexts\": ");
    put_ints(b, t->contexts, t->n_contexts);
    sr_buf_str(b, ",\n");
    put_grid(b, "tau_s", t->tau_s, t->n_batches, t->n_contexts);
    put_grid(b, "tau_b", t->tau_b, t->n_batches, t->n_contexts);
    sr_buf_str(b, "  \"deltas\": ");
    put_ints(b, t->deltas, t->n_deltas);
    sr_buf_printf(b, ",\n  \"pi_context\": %d,\n  \"pi_s\": ", t->pi_context);
    put_nums(b, t->pi_s, t->n_deltas);
    sr_buf_str(b, ",\n  \"pi_b\": ");
    put_nums(b, t->pi_b, t->n_deltas);
    sr_buf_str(b, ",\n  \"sigma\": ");
    sr_buf_json_number(b, t->sigma);
    if (t->settings) {
        sr_buf_str(b, ",\n  \"settings\": ");
        sr_buf_str(b, t->settings);
    }
    sr_buf_str(b, "\n}\n");
}
