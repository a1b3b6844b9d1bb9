/*
 * pass@k and the summary of an eval run (see report.h).
 */
#include "report.h"

#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/json.h"

double eval_pass_at_k(int n, int c, int k) {
    if (k < 1 || k > n || c < 0 || c > n) return NAN;
    if (n - c < k) return 1.0; /* every k-subset holds a correct sample */
    double miss = 1.0;         /* C(n-c, k) / C(n, k) = prod_{i=n-c+1..n} (1 - k/i) */
    for (int i = n - c + 1; i <= n; i++) miss *= 1.0 - (double)k / (double)i;
    return 1.0 - miss;
}

void eval_summarize(const EvalRow *rows, int n_rows, int n_problems, int k, EvalSummary *s) {
    memset(s, 0, sizeof *s);
    s->n_problems = n_problems;
    s->k = k;
    s->n_samples = n_rows;
    int *c = calloc((size_t)(n_problems > 0 ? n_problems : 1), sizeof(int));
    long small = 0, big = 0, sw = 0;
    double lat = 0, lat_s = 0, lat_b = 0, wall = 0;
    s->has_latency = n_rows > 0;
    for (int i = 0; i < n_rows; i++) {
        const EvalRow *r = &rows[i];
        c[r->problem] += r->correct != 0;
        small += r->small_tokens;
        big += r->big_tokens;
        sw += r->switches;
        wall += r->wall_time_s;
        if (!r->has_latency) s->has_latency = 0;
        lat += r->latency;
        lat_s += r->latency_small;
        lat_b += r->latency_big;
    }
    double p1 = 0, pk = 0;
    for (int p = 0; p < n_problems; p++) {
        p1 += (double)c[p] / k;
        pk += eval_pass_at_k(k, c[p], k);
    }
    free(c);
    double np = n_problems > 0 ? n_problems : 1, ns = n_rows > 0 ? n_rows : 1;
    s->pass_at_1 = p1 / np;
    s->pass_at_k = pk / np;
    s->small_tokens_per_sample = (double)small / ns;
    s->big_tokens_per_sample = (double)big / ns;
    s->offload_share = small + big > 0 ? (double)big / (double)(small + big) : 0.0;
    s->switches_per_sample = (double)sw / ns;
    s->sample_wall_time_s = wall / ns;
    if (s->has_latency) {
        s->modelled_latency = lat / ns;
        s->speedup_vs_small = lat > 0 ? lat_s / lat : NAN;
        s->speedup_vs_big = lat > 0 ? lat_b / lat : NAN;
    }
}

/* whole numbers plainly (20, not sr_buf_json_number's shortest "2e+01") */
static void num(SrBuf *b, double v) {
    if (isfinite(v) && v == floor(v) && fabs(v) < 1e15) sr_buf_printf(b, "%.0f", v);
    else sr_buf_json_number(b, v); /* null when not finite */
}

static void num_or_null(SrBuf *b, int have, double v) {
    if (have) num(b, v);
    else sr_buf_str(b, "null");
}

void eval_summary_json(SrBuf *b, const EvalSummary *s, double wall_time_s) {
    sr_buf_printf(b, "\"n_problems\": %d, \"k\": %d, \"n_samples\": %d, \"pass@1\": ", s->n_problems,
                  s->k, s->n_samples);
    num(b, s->pass_at_1);
    sr_buf_str(b, ", \"pass@k\": ");
    num(b, s->pass_at_k);
    sr_buf_str(b, ", \"small_tokens_per_sample\": ");
    num(b, s->small_tokens_per_sample);
    sr_buf_str(b, ", \"big_tokens_per_sample\": ");
    num(b, s->big_tokens_per_sample);
    sr_buf_str(b, ", \"offload_share\": ");
    num(b, s->offload_share);
    sr_buf_str(b, ", \"switches_per_sample\": ");
    num(b, s->switches_per_sample);
    sr_buf_str(b, ", \"modelled_latency\": ");
    num_or_null(b, s->has_latency, s->modelled_latency);
    sr_buf_str(b, ", \"speedup_vs_small\": ");
    num_or_null(b, s->has_latency, s->speedup_vs_small);
    sr_buf_str(b, ", \"speedup_vs_big\": ");
    num_or_null(b, s->has_latency, s->speedup_vs_big);
    sr_buf_str(b, ", \"sample_wall_time_s\": ");
    num(b, s->sample_wall_time_s);
    sr_buf_str(b, ", \"wall_time_s\": ");
    num(b, wall_time_s);
}

int eval_summary_read(const char *path, EvalSummary *s, double *wall_time_s, SrError *err) {
    memset(s, 0, sizeof *s);
    cJSON *o = sr_json_read_object_file(path, err);
    if (!o) return -1;
    static const char *const keys[] = {"n_problems", "k", "n_samples", "pass@1", "pass@k",
                                       "small_tokens_per_sample", "big_tokens_per_sample", "offload_share",
                                       "switches_per_sample", "sample_wall_time_s", "wall_time_s"};
    double v[11];
    int rc = 0;
    for (int i = 0; i < 11 && !rc; i++) {
        const cJSON *x = cJSON_GetObjectItemCaseSensitive(o, keys[i]);
        if (!cJSON_IsNumber(x)) rc = sr_fail(err, "%s: \"%s\" is missing or not a number", path, keys[i]);
        else v[i] = x->valuedouble;
    }
    const cJSON *ml = cJSON_GetObjectItemCaseSensitive(o, "modelled_latency");
    const cJSON *vs = cJSON_GetObjectItemCaseSensitive(o, "speedup_vs_small");
    const cJSON *vb = cJSON_GetObjectItemCaseSensitive(o, "speedup_vs_big");
    if (!rc && !cJSON_IsNumber(ml) && !cJSON_IsNull(ml))
        rc = sr_fail(err, "%s: \"modelled_latency\" is missing or not a number", path);
    if (!rc) {
        s->n_problems = (int)v[0], s->k = (int)v[1], s->n_samples = (int)v[2];
        s->pass_at_1 = v[3], s->pass_at_k = v[4];
        s->small_tokens_per_sample = v[5], s->big_tokens_per_sample = v[6];
        s->offload_share = v[7], s->switches_per_sample = v[8], s->sample_wall_time_s = v[9];
        *wall_time_s = v[10];
        s->has_latency = cJSON_IsNumber(ml);
        s->modelled_latency = s->has_latency ? ml->valuedouble : NAN;
        s->speedup_vs_small = cJSON_IsNumber(vs) ? vs->valuedouble : NAN;
        s->speedup_vs_big = cJSON_IsNumber(vb) ? vb->valuedouble : NAN;
    }
    cJSON_Delete(o);
    return rc;
}

void eval_random_switch_args(double share, double switches, double big_tokens, char share_arg[32],
                             char span_arg[32]) {
    double span = switches > 0 ? big_tokens / switches : 16;
    snprintf(share_arg, 32, "%.6f", fmax(fmin(share, 0.95), 1e-6));
    snprintf(span_arg, 32, "%.3f", fmax(span, 1));
}

void eval_summary_print(FILE *f, const EvalSummary *s, const char *benchmark, const char *mode,
                        double wall_time_s) {
    fprintf(f, "%-24s %s\n", "benchmark", benchmark);
    fprintf(f, "%-24s %s\n", "mode", mode);
    fprintf(f, "%-24s %d x %d samples\n", "problems", s->n_problems, s->k);
    fprintf(f, "%-24s %.4f\n", "pass@1", s->pass_at_1);
    if (s->k > 1) {
        char key[32];
        snprintf(key, sizeof key, "pass@%d", s->k);
        fprintf(f, "%-24s %.4f\n", key, s->pass_at_k);
    }
    fprintf(f, "%-24s %.1f\n", "small tokens / sample", s->small_tokens_per_sample);
    fprintf(f, "%-24s %.1f\n", "big tokens / sample", s->big_tokens_per_sample);
    fprintf(f, "%-24s %.4f\n", "offload share", s->offload_share);
    fprintf(f, "%-24s %.3f\n", "switches / sample", s->switches_per_sample);
    if (s->has_latency) {
        fprintf(f, "%-24s %.4f s\n", "modelled latency", s->modelled_latency);
        fprintf(f, "%-24s %.3fx\n", "speed-up vs small-only", s->speedup_vs_small);
        fprintf(f, "%-24s %.3fx\n", "speed-up vs big-only", s->speedup_vs_big);
    } else {
        fprintf(f, "%-24s - (no --latency-table)\n", "modelled latency");
    }
    fprintf(f, "%-24s %.2f s\n", "wall time", wall_time_s);
}
