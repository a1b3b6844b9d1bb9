/*
 * Summary of an annotated file (see summary.h).
 */
#include "summary.h"

#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "../common/fileio.h"
#include "../common/jsonl.h"
#include "../common/json.h"

#define SHARE_BINS 24      /* token share histogram: [0, 0.6) in steps of 0.025, last bin open */
#define SHARE_STEP 0.025
#define LEN_BINS 14        /* span tokens: [1,2), [2,4), ..., [4096, 8192), >= 8192 */
#define COUNT_BINS 21      /* spans per trace: 0..19, >= 20 */

typedef struct Vec {
    double *v;
    long n, cap;
} Vec;

static void vec_push(Vec *a, double x) {
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 256;
        a->v = sr_realloc(a->v, (size_t)a->cap * sizeof(double));
    }
    a->v[a->n++] = x;
}

static int cmp_d(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* linear-interpolated quantile of sorted v (numpy's default) */
static double quantile(const double *v, long n, double q) {
    if (n == 0) return 0;
    double pos = q * (double)(n - 1);
    long i = (long)floor(pos);
    if (i >= n - 1) return v[n - 1];
    return v[i] + (pos - (double)i) * (v[i + 1] - v[i]);
}

static cJSON *describe(Vec *a) {
    if (a->n > 0) qsort(a->v, (size_t)a->n, sizeof(double), cmp_d);
    double sum = 0;
    for (long i = 0; i < a->n; i++) sum += a->v[i];
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "count", (double)a->n);
    cJSON_AddNumberToObject(o, "mean", a->n ? sum / (double)a->n : 0.0);
    cJSON_AddNumberToObject(o, "median", quantile(a->v, a->n, 0.5));
    cJSON_AddNumberToObject(o, "p10", quantile(a->v, a->n, 0.1));
    cJSON_AddNumberToObject(o, "p25", quantile(a->v, a->n, 0.25));
    cJSON_AddNumberToObject(o, "p75", quantile(a->v, a->n, 0.75));
    cJSON_AddNumberToObject(o, "p90", quantile(a->v, a->n, 0.9));
    cJSON_AddNumberToObject(o, "min", a->n ? a->v[0] : 0.0);
    cJSON_AddNumberToObject(o, "max", a->n ? a->v[a->n - 1] : 0.0);
    return o;
}

static cJSON *histogram(const double *edges, int n_edges, const long *counts, int n_counts) {
    cJSON *h = cJSON_CreateObject();
    cJSON_AddItemToObject(h, "edges", cJSON_CreateDoubleArray(edges, n_edges));
    cJSON *c = cJSON_AddArrayToObject(h, "counts");
    for (int i = 0; i < n_counts; i++) cJSON_AddItemToArray(c, cJSON_CreateNumber((double)counts[i]));
    return h;
}

static double num(const cJSON *o, const char *k) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsNumber(v) ? v->valuedouble : 0.0;
}

cJSON *annotate_summary(const char *path, const cJSON *run, SrError *err) {
    JsonlReader r;
    if (jsonl_open(&r, path, err)) return NULL;
    Vec tok_share = {0}, char_share = {0}, span_len = {0}, per_trace = {0};
    long share_hist[SHARE_BINS] = {0}, len_hist[LEN_BINS] = {0}, count_hist[COUNT_BINS] = {0};
    long snippets = 0, aligned = 0, tokens = 0, offload_tokens = 0;
    cJSON *method = NULL, *target = NULL;
    int got;
    while ((got = jsonl_next(&r, err)) == 1) {
        cJSON *row = sr_json_parse(r.line, r.len, NULL);
        const cJSON *off = row ? cJSON_GetObjectItemCaseSensitive(row, "offload") : NULL;
        if (!cJSON_IsObject(off)) {
            sr_fail(err, "%s:%ld: no \"offload\" object (not an annotate output row)", path, r.lineno);
            cJSON_Delete(row);
            got = -1;
            break;
        }
        if (!method) {
            const cJSON *a = cJSON_GetObjectItemCaseSensitive(row, "annotation");
            const cJSON *m = cJSON_GetObjectItemCaseSensitive(a, "method");
            const cJSON *s = cJSON_GetObjectItemCaseSensitive(a, "settings");
            const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "target_fraction");
            method = cJSON_IsString(m) ? cJSON_CreateString(m->valuestring) : cJSON_CreateNull();
            target = cJSON_IsNumber(t) ? cJSON_CreateNumber(t->valuedouble) : cJSON_CreateNull();
        }
        double ts = num(off, "token_share");
        vec_push(&tok_share, ts);
        vec_push(&char_share, num(off, "char_share"));
        tokens += (long)num(off, "total_tokens");
        offload_tokens += (long)num(off, "tokens");
        int b = (int)(ts / SHARE_STEP);
        share_hist[b < 0 ? 0 : b >= SHARE_BINS ? SHARE_BINS - 1 : b]++;
        int ns = (int)num(off, "spans");
        vec_push(&per_trace, ns);
        count_hist[ns >= COUNT_BINS - 1 ? COUNT_BINS - 1 : ns]++;
        const cJSON *lens = cJSON_GetObjectItemCaseSensitive(off, "span_tokens"), *e;
        cJSON_ArrayForEach(e, lens) {
            double l = e->valuedouble;
            vec_push(&span_len, l);
            int k = l < 1 ? 0 : (int)floor(log2(l));
            len_hist[k >= LEN_BINS ? LEN_BINS - 1 : k]++;
        }
        const cJSON *d = cJSON_GetObjectItemCaseSensitive(row, "annotation_detail");
        snippets += (long)num(d, "snippets");
        aligned += (long)num(d, "aligned");
        cJSON_Delete(row);
    }
    jsonl_close(&r);
    cJSON *s = NULL;
    if (got == 0) {
        s = cJSON_CreateObject();
        cJSON_AddStringToObject(s, "file", path);
        cJSON_AddItemToObject(s, "method", method ? method : cJSON_CreateNull());
        cJSON_AddItemToObject(s, "target_fraction", target ? target : cJSON_CreateNull());
        method = target = NULL;
        cJSON_AddNumberToObject(s, "traces", (double)tok_share.n);
        cJSON_AddNumberToObject(s, "tokens", (double)tokens);
        cJSON_AddNumberToObject(s, "offload_tokens", (double)offload_tokens);
        cJSON_AddNumberToObject(s, "pooled_token_share", tokens ? (double)offload_tokens / tokens : 0.0);
        cJSON_AddItemToObject(s, "token_share", describe(&tok_share));
        cJSON_AddItemToObject(s, "char_share", describe(&char_share));
        cJSON_AddItemToObject(s, "spans_per_trace", describe(&per_trace));
        cJSON_AddItemToObject(s, "span_tokens", describe(&span_len));
        double e1[SHARE_BINS + 1], e2[LEN_BINS + 1], e3[COUNT_BINS + 1];
        for (int i = 0; i <= SHARE_BINS; i++) e1[i] = i * SHARE_STEP;
        for (int i = 0; i <= LEN_BINS; i++) e2[i] = ldexp(1.0, i);
        for (int i = 0; i <= COUNT_BINS; i++) e3[i] = i;
        cJSON *h = cJSON_AddObjectToObject(s, "histograms");
        cJSON_AddItemToObject(h, "token_share", histogram(e1, SHARE_BINS + 1, share_hist, SHARE_BINS));
        cJSON_AddItemToObject(h, "span_tokens", histogram(e2, LEN_BINS + 1, len_hist, LEN_BINS));
        cJSON_AddItemToObject(h, "spans_per_trace", histogram(e3, COUNT_BINS + 1, count_hist, COUNT_BINS));
        if (snippets > 0) {
            cJSON *j = cJSON_AddObjectToObject(s, "judge");
            cJSON_AddNumberToObject(j, "snippets", (double)snippets);
            cJSON_AddNumberToObject(j, "aligned", (double)aligned);
            cJSON_AddNumberToObject(j, "aligned_share", (double)aligned / (double)snippets);
        }
        if (run) cJSON_AddItemToObject(s, "run", cJSON_Duplicate(run, 1));
    }
    cJSON_Delete(method);
    cJSON_Delete(target);
    free(tok_share.v);
    free(char_share.v);
    free(span_len.v);
    free(per_trace.v);
    return s;
}

static double get(const cJSON *s, const char *a, const char *b) {
    return num(cJSON_GetObjectItemCaseSensitive(s, a), b);
}

void annotate_summary_print(FILE *f, const cJSON *s) {
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(s, "method");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "target_fraction");
    fprintf(f, "annotate summary: %s, %.0f traces, method %s", cJSON_GetObjectItemCaseSensitive(s, "file")->valuestring,
            num(s, "traces"), cJSON_IsString(m) ? m->valuestring : "?");
    if (cJSON_IsNumber(t)) fprintf(f, ", target %.1f%%", 100 * t->valuedouble);
    fprintf(f, "\n");
    static const char *const rows[][2] = {{"token_share", "offload share (tokens)"}, {"char_share", "offload share (chars) "}};
    for (int i = 0; i < 2; i++)
        fprintf(f, "  %s  mean %5.1f%%  median %5.1f%%  p10 %5.1f%%  p25 %5.1f%%  p75 %5.1f%%  p90 %5.1f%%  min %5.1f%%  max %5.1f%%\n",
                rows[i][1], 100 * get(s, rows[i][0], "mean"), 100 * get(s, rows[i][0], "median"),
                100 * get(s, rows[i][0], "p10"), 100 * get(s, rows[i][0], "p25"), 100 * get(s, rows[i][0], "p75"),
                100 * get(s, rows[i][0], "p90"), 100 * get(s, rows[i][0], "min"), 100 * get(s, rows[i][0], "max"));
    fprintf(f, "  pooled over all tokens  %.1f%% (%.0f of %.0f)\n", 100 * num(s, "pooled_token_share"),
            num(s, "offload_tokens"), num(s, "tokens"));
    fprintf(f, "  spans per trace         mean %.1f  median %.0f  min %.0f  max %.0f\n", get(s, "spans_per_trace", "mean"),
            get(s, "spans_per_trace", "median"), get(s, "spans_per_trace", "min"), get(s, "spans_per_trace", "max"));
    fprintf(f, "  span length (tokens)    mean %.1f  median %.0f  p90 %.0f  max %.0f  (%.0f spans)\n",
            get(s, "span_tokens", "mean"), get(s, "span_tokens", "median"), get(s, "span_tokens", "p90"),
            get(s, "span_tokens", "max"), get(s, "span_tokens", "count"));
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(s, "histograms"), "span_tokens");
    const cJSON *c = cJSON_GetObjectItemCaseSensitive(h, "counts");
    fprintf(f, "  span length histogram  ");
    for (int i = 0; i < cJSON_GetArraySize(c); i++) {
        long k = (long)cJSON_GetArrayItem(c, i)->valuedouble;
        if (k) fprintf(f, " [%g,%g):%ld", ldexp(1.0, i), ldexp(1.0, i + 1), k);
    }
    fprintf(f, "\n");
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(s, "judge");
    if (j) fprintf(f, "  judge snippets          %.0f, aligned %.0f (%.1f%%)\n", num(j, "snippets"), num(j, "aligned"),
                   100 * num(j, "aligned_share"));
}

/* ---- SVG ------------------------------------------------------------------------------------ */

typedef struct Svg {
    char *p;
    size_t n, cap;
} Svg;

static void svg(Svg *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void svg(Svg *s, const char *fmt, ...) {
    va_list ap;
    for (;;) {
        va_start(ap, fmt);
        int k = vsnprintf(s->p ? s->p + s->n : NULL, s->p ? s->cap - s->n : 0, fmt, ap);
        va_end(ap);
        if (s->p && (size_t)k < s->cap - s->n) {
            s->n += (size_t)k;
            return;
        }
        s->cap = (s->cap + (size_t)k + 1) * 2;
        s->p = sr_realloc(s->p, s->cap);
    }
}

/* one histogram panel at (x0, y0), w x h; labels[i] under bar i (NULL: none) */
static void panel(Svg *s, double x0, double y0, double w, double h, const char *title,
                  const cJSON *hist, const char *(*label)(int i, char *buf, size_t n), double marker,
                  const char *xlabel) {
    const cJSON *counts = cJSON_GetObjectItemCaseSensitive(hist, "counts");
    int nb = cJSON_GetArraySize(counts);
    double maxc = 1;
    for (int i = 0; i < nb; i++) maxc = fmax(maxc, cJSON_GetArrayItem(counts, i)->valuedouble);
    double px = x0 + 44, py = y0 + 28, pw = w - 56, ph = h - 78;
    svg(s, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" font-weight=\"bold\">%s</text>\n", x0 + 8, y0 + 18, title);
    svg(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", px, py + ph, px + pw, py + ph);
    svg(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#333\"/>\n", px, py, px, py + ph);
    for (int t = 0; t <= 4; t++) { /* y ticks */
        double v = maxc * t / 4, y = py + ph - ph * t / 4;
        svg(s, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.0f</text>\n", px - 4, y + 3, v);
        svg(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", px, y, px + pw, y);
    }
    double bw = pw / (nb > 0 ? nb : 1);
    char buf[32];
    for (int i = 0; i < nb; i++) {
        double c = cJSON_GetArrayItem(counts, i)->valuedouble, bh = ph * c / maxc;
        svg(s, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"#4878d0\"><title>%s: %.0f</title></rect>\n",
            px + i * bw + 1, py + ph - bh, bw - 2, bh, label(i, buf, sizeof buf), c);
        if (nb <= 14 || i % 4 == 0)
            svg(s, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"9\" text-anchor=\"middle\">%s</text>\n",
                px + i * bw + bw / 2, py + ph + 12, label(i, buf, sizeof buf));
    }
    if (marker >= 0) {
        double x = px + marker * pw;
        svg(s, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#d03030\" stroke-dasharray=\"4,3\"/>\n",
            x, py, x, py + ph);
        svg(s, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" fill=\"#d03030\">target</text>\n", x + 3, py + 10);
    }
    svg(s, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n", px + pw / 2, py + ph + 30, xlabel);
}

static const char *share_label(int i, char *b, size_t n) {
    snprintf(b, n, i == SHARE_BINS - 1 ? "%.0f%%+" : "%.1f%%", 100 * i * SHARE_STEP);
    return b;
}
static const char *len_label(int i, char *b, size_t n) {
    snprintf(b, n, i == LEN_BINS - 1 ? "%.0f+" : "%.0f", ldexp(1.0, i));
    return b;
}
static const char *count_label(int i, char *b, size_t n) {
    snprintf(b, n, i == COUNT_BINS - 1 ? "%d+" : "%d", i);
    return b;
}

int annotate_summary_svg(const cJSON *s, const char *path, SrError *err) {
    Svg g = {0};
    const double W = 1080, H = 360;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(s, "histograms");
    const cJSON *m = cJSON_GetObjectItemCaseSensitive(s, "method");
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(s, "target_fraction");
    svg(&g, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\">\n"
            "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n", W, H);
    svg(&g, "<text x=\"12\" y=\"22\" font-size=\"16\">splitreason annotate (%s): %.0f traces, offload share mean %.1f%%, "
            "median %.1f%%, %.1f spans per trace</text>\n",
        cJSON_IsString(m) ? m->valuestring : "?", num(s, "traces"), 100 * get(s, "token_share", "mean"),
        100 * get(s, "token_share", "median"), get(s, "spans_per_trace", "mean"));
    double marker = cJSON_IsNumber(t) ? t->valuedouble / (SHARE_BINS * SHARE_STEP) : -1;
    svg(&g, "<g transform=\"translate(0,30)\">\n");
    panel(&g, 0, 0, W / 3, H - 30, "Offload share per trace (tokens)",
          cJSON_GetObjectItemCaseSensitive(h, "token_share"), share_label, marker, "share of the trace's tokens");
    panel(&g, W / 3, 0, W / 3, H - 30, "Span length (tokens)",
          cJSON_GetObjectItemCaseSensitive(h, "span_tokens"), len_label, -1, "tokens (bins of powers of two)");
    panel(&g, 2 * W / 3, 0, W / 3, H - 30, "Spans per trace",
          cJSON_GetObjectItemCaseSensitive(h, "spans_per_trace"), count_label, -1, "spans");
    svg(&g, "</g>\n</svg>\n");
    int rc = sr_write_file_atomic(path, g.p, g.n, err);
    free(g.p);
    return rc;
}
