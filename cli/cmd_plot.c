/*
 * splitreason plot RUN_DIR: the curves of a training run (RUN_DIR/metrics.jsonl, what `sft`
 * or `grpo` writes) drawn as one SVG a browser opens. SFT: training and held-out loss,
 * learning rate, gradient norm, and the held-out tag metrics (precision / recall of
 * <bigmodel> and </bigmodel>, offload share). GRPO (a run that logs "reward"): reward and
 * accuracy, offload share, modelled latency, KL / entropy / gradient norm. Written by hand: polylines, axes with round ticks, legends.
 */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../common/log.h"
#include "../common/json.h"
#include "cli.h"

static const SrOption OPTS[] = {
    {"run_dir", SR_OPT_STR, "null", "the run's output_dir (holds metrics.jsonl; also the first bare argument)", SR_REQUIRED},
    {"out", SR_OPT_STR, "null", "SVG file to write (default: RUN_DIR/curves.svg)"},
    {"title", SR_OPT_STR, "null", "title above the panels (default: RUN_DIR)"},
};

/* ---- series ---------------------------------------------------------------------------------- */

typedef struct Series {
    const char *key, *label, *color;
    int dashed;
    int n, cap;
    double *x, *y;
} Series;

static void series_add(Series *s, double x, double y) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->x = sr_realloc(s->x, (size_t)s->cap * sizeof(double));
        s->y = sr_realloc(s->y, (size_t)s->cap * sizeof(double));
    }
    s->x[s->n] = x;
    s->y[s->n] = y;
    s->n++;
}

enum {
    S_LOSS, S_EVAL_LOSS, S_LR, S_GN, S_OP, S_OR, S_CP, S_CR, S_OFF, S_OFF_REF, S_TPS,
    S_REWARD, S_ACC, S_OFFLOAD, S_LATENCY, S_KL, S_ENTROPY, S_N
};

static const Series SERIES_INIT[S_N] = {
    {.key = "loss", .label = "train loss", .color = "#1f77b4", .dashed = 0},
    {.key = "eval_loss", .label = "held-out loss", .color = "#d62728", .dashed = 0},
    {.key = "learning_rate", .label = "learning rate", .color = "#2ca02c", .dashed = 0},
    {.key = "grad_norm", .label = "gradient norm", .color = "#9467bd", .dashed = 0},
    {.key = "eval_bigmodel_open_precision", .label = "<bigmodel> precision", .color = "#1f77b4", .dashed = 0},
    {.key = "eval_bigmodel_open_recall", .label = "<bigmodel> recall", .color = "#1f77b4", .dashed = 1},
    {.key = "eval_bigmodel_close_precision", .label = "</bigmodel> precision", .color = "#ff7f0e", .dashed = 0},
    {.key = "eval_bigmodel_close_recall", .label = "</bigmodel> recall", .color = "#ff7f0e", .dashed = 1},
    {.key = "eval_offload_share", .label = "offload share", .color = "#2ca02c", .dashed = 0},
    {.key = "eval_offload_share_ref", .label = "offload share (reference)", .color = "#2ca02c", .dashed = 1},
    {.key = "tokens_per_second", .label = "tokens/s", .color = "#8c564b", .dashed = 0},
    /* a GRPO run's (train/grpo.h) */
    {.key = "reward", .label = "reward", .color = "#1f77b4", .dashed = 0},
    {.key = "accuracy", .label = "accuracy", .color = "#d62728", .dashed = 0},
    {.key = "offload_share", .label = "offload share", .color = "#2ca02c", .dashed = 0},
    {.key = "modelled_latency", .label = "modelled latency (s)", .color = "#8c564b", .dashed = 0},
    {.key = "kl", .label = "KL to the reference", .color = "#d62728", .dashed = 0},
    {.key = "entropy", .label = "entropy (nats)", .color = "#ff7f0e", .dashed = 0},
};

/* ---- drawing ----------------------------------------------------------------------------------- */

/* a round tick step for a range: 1, 2 or 5 times a power of ten, about n ticks */
static double nice_step(double range, int n) {
    if (!(range > 0)) return 1;
    double raw = range / n, p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
}

static void xml_text(FILE *f, const char *s) {
    for (; *s; s++) {
        if (*s == '<') fputs("&lt;", f);
        else if (*s == '>') fputs("&gt;", f);
        else if (*s == '&') fputs("&amp;", f);
        else fputc(*s, f);
    }
}

typedef struct Panel {
    double x0, y0, w, h; /* the plot area in SVG units */
    double xmin, xmax, ymin, ymax;
} Panel;

static double px(const Panel *p, double x) { return p->x0 + (x - p->xmin) / (p->xmax - p->xmin) * p->w; }
static double py(const Panel *p, double y) { return p->y0 + p->h - (y - p->ymin) / (p->ymax - p->ymin) * p->h; }

static void draw_panel(FILE *f, double ox, double oy, const char *title, Series **ss, int ns, double xmax_all) {
    Panel p = {ox + 62, oy + 34, 330, 220, 0, xmax_all > 0 ? xmax_all : 1, INFINITY, -INFINITY};
    int any = 0;
    for (int k = 0; k < ns; k++)
        for (int i = 0; i < ss[k]->n; i++) {
            any = 1;
            if (ss[k]->y[i] < p.ymin) p.ymin = ss[k]->y[i];
            if (ss[k]->y[i] > p.ymax) p.ymax = ss[k]->y[i];
        }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"14\" font-weight=\"bold\">", ox + 62, oy + 20);
    xml_text(f, title);
    fprintf(f, "</text>\n");
    fprintf(f, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#444\"/>\n", p.x0,
            p.y0, p.w, p.h);
    if (!any) {
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"12\" fill=\"#888\" text-anchor=\"middle\">no data</text>\n",
                p.x0 + p.w / 2, p.y0 + p.h / 2);
        return;
    }
    if (p.ymin > 0 && p.ymin < 0.5 * p.ymax) p.ymin = 0; /* start at zero when it is close */
    if (p.ymax - p.ymin < 1e-12 * (fabs(p.ymax) + 1e-30)) {
        double d = fabs(p.ymax) > 0 ? 0.1 * fabs(p.ymax) : 1;
        p.ymin -= d;
        p.ymax += d;
    }
    double ys = nice_step(p.ymax - p.ymin, 5);
    p.ymin = floor(p.ymin / ys) * ys;
    p.ymax = ceil(p.ymax / ys) * ys;
    double xs = nice_step(p.xmax - p.xmin, 6);
    /* grid and ticks */
    for (double y = p.ymin; y <= p.ymax + 0.5 * ys; y += ys) {
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", p.x0, py(&p, y),
                p.x0 + p.w, py(&p, y));
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"end\">%.3g</text>\n", p.x0 - 5,
                py(&p, y) + 4, fabs(y) < 1e-9 * ys ? 0.0 : y);
    }
    for (double x = 0; x <= p.xmax + 0.5 * xs; x += xs) {
        if (x > p.xmax) break;
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#eee\"/>\n", px(&p, x), p.y0,
                px(&p, x), p.y0 + p.h);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%.6g</text>\n", px(&p, x),
                p.y0 + p.h + 15, x);
    }
    fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">step</text>\n", p.x0 + p.w / 2,
            p.y0 + p.h + 30);
    /* curves (a single point gets a dot), legend */
    for (int k = 0, lk = 0; k < ns; k++) {
        Series *s = ss[k];
        if (s->n == 0) continue;
        const char *dash = s->dashed ? " stroke-dasharray=\"5,3\"" : "";
        if (s->n > 1) {
            fprintf(f, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\"%s points=\"", s->color, dash);
            for (int i = 0; i < s->n; i++) fprintf(f, "%.1f,%.1f ", px(&p, s->x[i]), py(&p, s->y[i]));
            fprintf(f, "\"/>\n");
        }
        if (s->n <= 60)
            for (int i = 0; i < s->n; i++)
                fprintf(f, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"2.5\" fill=\"%s\"/>\n", px(&p, s->x[i]),
                        py(&p, s->y[i]), s->color);
        double lx = p.x0 + p.w + 12, ly = p.y0 + 10 + 16 * lk++; /* legend right of the plot */
        fprintf(f, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" stroke-width=\"2\"%s/>\n", lx,
                ly - 4, lx + 18, ly - 4, s->color, dash);
        fprintf(f, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\">", lx + 22, ly);
        xml_text(f, s->label);
        fprintf(f, "</text>\n");
    }
}

static int run(SrConfig *cfg, SrError *err) {
    const char *dir = sr_config_str(cfg, "run_dir");
    char *metrics = sr_path_join(dir, "metrics.jsonl");
    char *out = sr_config_has(cfg, "out") ? sr_strdup(sr_config_str(cfg, "out")) : sr_path_join(dir, "curves.svg");
    Series s[S_N];
    memcpy(s, SERIES_INIT, sizeof s);
    JsonlReader in;
    int rc = jsonl_open(&in, metrics, err);
    double xmax = 0;
    long rows = 0;
    while (!rc) {
        int r = jsonl_next(&in, err);
        if (r < 0) rc = -1;
        if (r <= 0) break;
        cJSON *row = sr_json_parse(in.line, in.len, NULL);
        const cJSON *st = cJSON_GetObjectItemCaseSensitive(row, "step");
        if (!cJSON_IsObject(row) || !cJSON_IsNumber(st)) {
            rc = sr_fail(err, "%s:%ld: not a metrics object with a \"step\"", metrics, in.lineno);
            cJSON_Delete(row);
            break;
        }
        rows++;
        if (st->valuedouble > xmax) xmax = st->valuedouble;
        for (int k = 0; k < S_N; k++) {
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(row, s[k].key);
            if (cJSON_IsNumber(v) && isfinite(v->valuedouble)) series_add(&s[k], st->valuedouble, v->valuedouble);
        }
        cJSON_Delete(row);
    }
    if (in.f) jsonl_close(&in);
    if (!rc && rows == 0) rc = sr_fail(err, "%s: no metrics yet", metrics);
    if (!rc) {
        SrOutFile o;
        rc = sr_check_output("--out", out, 0, "metrics", metrics, err);
        if (!rc) rc = sr_out_open(&o, out, err);
        if (!rc) {
            FILE *f = o.f;
            double W = 2 * 580, H = 2 * 300 + 40;
            fprintf(f, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" "
                       "viewBox=\"0 0 %.0f %.0f\" font-family=\"sans-serif\">\n", W, H, W, H);
            fprintf(f, "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n");
            fprintf(f, "<text x=\"20\" y=\"26\" font-size=\"16\">");
            xml_text(f, sr_config_has(cfg, "title") ? sr_config_str(cfg, "title") : dir);
            fprintf(f, "</text>\n");
            if (s[S_REWARD].n > 0) { /* a GRPO run */
                Series *p1[] = {&s[S_REWARD], &s[S_ACC]};
                Series *p2[] = {&s[S_OFFLOAD]};
                Series *p3[] = {&s[S_LATENCY]};
                Series *p4[] = {&s[S_KL], &s[S_ENTROPY], &s[S_GN]};
                draw_panel(f, 0, 40, "reward and accuracy (mean per completion)", p1, 2, xmax);
                draw_panel(f, 580, 40, "offload share (big-model tokens / generated)", p2, 1, xmax);
                draw_panel(f, 0, 340, "modelled latency per completion", p3, 1, xmax);
                draw_panel(f, 580, 340, "KL, entropy, gradient norm", p4, 3, xmax);
            } else {
                Series *p1[] = {&s[S_LOSS], &s[S_EVAL_LOSS]};
                Series *p2[] = {&s[S_LR]};
                Series *p3[] = {&s[S_GN]};
                Series *p4[] = {&s[S_OP], &s[S_OR], &s[S_CP], &s[S_CR], &s[S_OFF], &s[S_OFF_REF]};
                draw_panel(f, 0, 40, "loss (nats per target token)", p1, 2, xmax);
                draw_panel(f, 580, 40, "learning rate", p2, 1, xmax);
                draw_panel(f, 0, 340, "gradient norm (before clipping)", p3, 1, xmax);
                draw_panel(f, 580, 340, "held-out tags: precision / recall, offload share", p4, 6, xmax);
            }
            fprintf(f, "</svg>\n");
            rc = sr_out_commit(&o, err);
        }
    }
    if (!rc) {
        printf("plot: %s (%ld records, last step %.0f)\n", out, rows, xmax);
        fflush(stdout);
    }
    for (int k = 0; k < S_N; k++) {
        free(s[k].x);
        free(s[k].y);
    }
    free(metrics);
    free(out);
    return rc;
}

const SrCommand sr_cmd_plot = {
    "plot", "draw a run's curves (metrics.jsonl) as an SVG image",
    "splitreason plot RUN_DIR [--out FILE.svg]",
    "Reads RUN_DIR/metrics.jsonl (written by `splitreason sft` or `grpo`) and draws, for SFT, the\n"
    "training and held-out loss, the learning rate, the gradient norm and the held-out tag metrics\n"
    "(precision and recall of <bigmodel> / </bigmodel>, offload share); for GRPO, the reward and\n"
    "accuracy, the offload share, the modelled latency and KL / entropy / gradient norm; into\n"
    "RUN_DIR/curves.svg (or --out), which any browser or image viewer opens.",
    OPTS, (int)(sizeof OPTS / sizeof OPTS[0]), run, "run_dir",
};
