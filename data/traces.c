/*
 * Trace selection through a field mapping (see traces.h).
 */
#include "traces.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int trace_spec_from_config(TraceSpec *spec, const SrConfig *cfg, SrError *err) {
    memset(spec, 0, sizeof *spec);
    spec->field = sr_config_str(cfg, "field");
    spec->problem_field = sr_config_str(cfg, "problem_field");
    spec->correct_field = sr_config_str(cfg, "correct_field");
    spec->trace_from = sr_config_str(cfg, "trace_from");
    spec->trace_strip_suffix = sr_config_str(cfg, "trace_strip_suffix");
    if (!spec->field || !spec->field[0]) return sr_fail(err, "--field must name the trace field");
    if (spec->trace_from && !spec->trace_from[0]) spec->trace_from = NULL;
    if (spec->trace_strip_suffix && !spec->trace_strip_suffix[0]) spec->trace_strip_suffix = NULL;

    /* select: a name or an index (a number on the command line arrives as a JSON number) */
    cJSON *sel = sr_config_get(cfg, "select");
    const char *s = cJSON_IsString(sel) ? sel->valuestring : NULL;
    if (cJSON_IsNumber(sel)) {
        spec->select = TRACE_INDEX;
        spec->index = (int)sel->valuedouble;
        if (spec->index < 0 || (double)spec->index != sel->valuedouble)
            return sr_fail(err, "--select %g: an index must be a whole number >= 0", sel->valuedouble);
    } else if (!s || !strcmp(s, "first_correct")) {
        spec->select = TRACE_FIRST_CORRECT;
    } else if (!strcmp(s, "all_correct")) {
        spec->select = TRACE_ALL_CORRECT;
    } else if (!strcmp(s, "first")) {
        spec->select = TRACE_FIRST;
    } else if (!strcmp(s, "all")) {
        spec->select = TRACE_ALL;
    } else {
        char *end;
        long v = strtol(s, &end, 10);
        if (!*s || *end || v < 0 || v > 1000000)
            return sr_fail(err, "--select '%s': expected first_correct, all_correct, first, all or "
                           "an index", s);
        spec->select = TRACE_INDEX;
        spec->index = (int)v;
    }

    const char *w = sr_config_str(cfg, "where");
    if (w && w[0]) {
        const char *eq = strchr(w, '=');
        if (!eq || eq == w) return sr_fail(err, "--where '%s': expected key=value", w);
        spec->where_key = sr_malloc((size_t)(eq - w) + 1);
        memcpy(spec->where_key, w, (size_t)(eq - w));
        spec->where_key[eq - w] = '\0';
        spec->where_value = sr_strdup(eq + 1);
    }
    return 0;
}

void trace_spec_free(TraceSpec *spec) {
    free(spec->where_key);
    free(spec->where_value);
    spec->where_key = spec->where_value = NULL;
}

int trace_row_matches(const TraceSpec *spec, const cJSON *row) {
    if (!spec->where_key) return 1;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, spec->where_key);
    if (!v) return 0;
    if (cJSON_IsString(v)) return strcmp(v->valuestring, spec->where_value) == 0;
    char *txt = cJSON_PrintUnformatted(v);
    int ok = txt && strcmp(txt, spec->where_value) == 0;
    if (!ok && cJSON_IsNumber(v)) { /* "3" matches 3.0 */
        char *end;
        double d = strtod(spec->where_value, &end);
        ok = *spec->where_value && !*end && d == v->valuedouble;
    }
    cJSON_free(txt);
    return ok;
}

/* -1 unknown, 0 false, 1 true; -2 when the value has a type we do not understand */
static int truth(const cJSON *v) {
    if (!v || cJSON_IsNull(v)) return -1;
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? 1 : 0;
    if (cJSON_IsNumber(v)) return v->valuedouble != 0;
    if (cJSON_IsString(v)) {
        if (!strcmp(v->valuestring, "true") || !strcmp(v->valuestring, "True")) return 1;
        if (!strcmp(v->valuestring, "false") || !strcmp(v->valuestring, "False")) return 0;
    }
    return -2;
}

/* applies trace_from / trace_strip_suffix; -1 when the marker is missing */
static int cut_trace(const TraceSpec *spec, Trace *t, SrError *err) {
    if (spec->trace_from) {
        const char *p = strstr(t->text, spec->trace_from);
        if (!p) return sr_fail(err, "trace %d has no '%s' (trace_from)", t->index, spec->trace_from);
        t->len -= (size_t)(p - t->text);
        t->text = p;
    }
    if (spec->trace_strip_suffix) {
        size_t k = strlen(spec->trace_strip_suffix);
        if (t->len >= k && memcmp(t->text + t->len - k, spec->trace_strip_suffix, k) == 0) t->len -= k;
    }
    return 0;
}

int traces_from_row(const TraceSpec *spec, const cJSON *row, Trace **out, int *n, SrError *err) {
    *out = NULL;
    *n = 0;
    if (!cJSON_IsObject(row)) return sr_fail(err, "row is not a JSON object");
    const cJSON *f = cJSON_GetObjectItemCaseSensitive(row, spec->field);
    if (!f) return sr_fail(err, "row has no field '%s'", spec->field);
    int n_all = cJSON_IsString(f) ? 1 : cJSON_IsArray(f) ? cJSON_GetArraySize(f) : -1;
    if (n_all < 0) return sr_fail(err, "field '%s' is neither a string nor an array", spec->field);
    const cJSON *c = spec->correct_field ? cJSON_GetObjectItemCaseSensitive(row, spec->correct_field) : NULL;
    if (c && cJSON_IsArray(c) && cJSON_IsArray(f) && cJSON_GetArraySize(c) != n_all)
        return sr_fail(err, "'%s' has %d entries but '%s' has %d", spec->correct_field,
                       cJSON_GetArraySize(c), spec->field, n_all);
    if (c && cJSON_IsArray(c) && !cJSON_IsArray(f) && cJSON_GetArraySize(c) != 1)
        return sr_fail(err, "'%s' is an array of %d but '%s' is one string", spec->correct_field,
                       cJSON_GetArraySize(c), spec->field);

    Trace *t = sr_calloc((size_t)(n_all > 0 ? n_all : 1), sizeof(Trace));
    int k = 0;
    for (int i = 0; i < n_all; i++) {
        const cJSON *s = cJSON_IsArray(f) ? cJSON_GetArrayItem(f, i) : f;
        const cJSON *cv = !c ? NULL : cJSON_IsArray(c) ? cJSON_GetArrayItem(c, i) : c;
        int ok = truth(cv);
        if (ok == -2) {
            free(t);
            return sr_fail(err, "'%s' entry %d is not a bool or a number", spec->correct_field, i);
        }
        int want;
        switch (spec->select) {
        case TRACE_FIRST_CORRECT: want = ok != 0 && k == 0; break;
        case TRACE_ALL_CORRECT: want = ok != 0; break;
        case TRACE_FIRST: want = i == 0; break;
        case TRACE_ALL: want = 1; break;
        default: want = i == spec->index; break;
        }
        if (!want) continue;
        if (!cJSON_IsString(s)) {
            free(t);
            return sr_fail(err, "'%s' entry %d is not a string", spec->field, i);
        }
        Trace tr = {cJSON_IsArray(f) ? i : -1, ok, s->valuestring, strlen(s->valuestring)};
        if (cut_trace(spec, &tr, err)) {
            free(t);
            return -1;
        }
        t[k++] = tr;
    }
    if (spec->select == TRACE_INDEX && k == 0 && spec->index >= n_all) {
        free(t);
        return sr_fail(err, "--select %d: '%s' has only %d traces", spec->index, spec->field, n_all);
    }
    *out = t;
    *n = k;
    return 0;
}

const char *trace_problem(const TraceSpec *spec, const cJSON *row) {
    if (!spec->problem_field) return NULL;
    const cJSON *p = cJSON_GetObjectItemCaseSensitive(row, spec->problem_field);
    return cJSON_IsString(p) ? p->valuestring : NULL;
}
