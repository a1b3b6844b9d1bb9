/*
 * eval/pareto.h: two scatter panels in plain SVG. The axes start at 0 (a share, a latency and an
 * accuracy are all read against 0), the latency axis ends a little past the largest point; each
 * point carries its label beside it and a <title> with its three numbers for a hover.
 */
#include "pareto.h"

#include <math.h>
#include <string.h>

#include "../common/buf.h"
#include "../common/fileio.h"

#define YMAX 1.08 /* room above an accuracy of 1 for its label */

static const char *COLORS[] = {"#4878d0", "#ee854a", "#6acc64", "#d65f5f", "#956cb4", "#8c613c",
                               "#dc7ec0", "#797979", "#d5bb67", "#82c6e2"};

static void xml_escaped(SrBuf *b, const char *s) {
    for (; *s; s++) {
        if (*s == '<') sr_buf_str(b, "&lt;");
        else if (*s == '>') sr_buf_str(b, "&gt;");
        else if (*s == '&') sr_buf_str(b, "&amp;");
        else if (*s == '"') sr_buf_str(b, "&quot;");
        else sr_buf_printf(b, "%c", *s);
    }
}

/* a round step giving about n ticks over [0, range] */
static double tick_step(double range, int n) {
    double raw = range / n, mag = pow(10, floor(log10(raw))), r = raw / mag;
    return (r <= 1 ? 1 : r <= 2 ? 2 : r <= 5 ? 5 : 10) * mag;
}

/* one panel at (x0, y0) of w x h: accuracy (y, 0..1) against x = latency (which 0) or share (1) */
static void panel(SrBuf *b, double x0, double y0, double w, double h, const ParetoPoint *pts, int n,
                  int which) {
    double xmax = 1;
    if (which == 0) {
        xmax = 0;
        for (int i = 0; i < n; i++)
            if (isfinite(pts[i].modelled_latency)) xmax = fmax(xmax, pts[i].modelled_latency);
        xmax = xmax > 0 ? xmax * 1.15 : 1;
    }
    double px = x0 + 52, py = y0 + 30, pw = w - 70, ph = h - 80;
    sr_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"13\" font-weight=\"bold\">accuracy vs %s</text>\n",
                  px, y0 + 18, which == 0 ? "modelled latency" : "offload share");
    double ys = 0.2, xs = which == 0 ? tick_step(xmax, 5) : 0.2;
    for (double v = 0; v <= 1 + 1e-9; v += ys) {
        double y = py + ph - v / YMAX * ph;
        sr_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", px, y, px + pw, y);
        sr_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"end\">%.1f</text>\n", px - 5, y + 3, v);
    }
    for (double v = 0; v <= xmax + 1e-9; v += xs) {
        double x = px + v / xmax * pw;
        sr_buf_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#e4e4e4\"/>\n", x, py, x, py + ph);
        sr_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"10\" text-anchor=\"middle\">%g</text>\n", x, py + ph + 14, v);
    }
    sr_buf_printf(b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" stroke=\"#333\"/>\n", px, py, pw, ph);
    sr_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\">%s</text>\n", px + pw / 2,
                  py + ph + 32, which == 0 ? "modelled latency per sample (s, latency table)" : "offload share (big-model tokens / all)");
    sr_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 %.1f %.1f)\">accuracy</text>\n",
                  px - 36, py + ph / 2, px - 36, py + ph / 2);
    /* labels stack downwards where they would overlap an earlier one (points often coincide:
     * a run that kept its starting point, a collapse onto small-only) */
    double lx[64], ly[64];
    int nlab = 0;
    for (int i = 0; i < n; i++) {
        double xv = which == 0 ? pts[i].modelled_latency : pts[i].offload_share;
        if (!isfinite(xv) || !isfinite(pts[i].accuracy)) continue;
        double x = px + xv / xmax * pw, y = py + ph - pts[i].accuracy / YMAX * ph;
        const char *c = COLORS[i % (int)(sizeof COLORS / sizeof COLORS[0])];
        sr_buf_printf(b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"6\" fill=\"%s\" stroke=\"%s\" stroke-width=\"2\"><title>",
                      x, y, pts[i].reference ? "white" : c, c);
        xml_escaped(b, pts[i].label);
        sr_buf_printf(b, ": accuracy %.3f, modelled latency %.3f s, offload share %.3f</title></circle>\n",
                      pts[i].accuracy, pts[i].modelled_latency, pts[i].offload_share);
        /* labels left of points near the right edge, above points in the lower half, below in
         * the upper half */
        int left = x > px + pw * 0.7, down = y < py + ph / 2;
        double tx = x + (left ? -10 : 10), ty = y + (down ? 16 : -8);
        for (int moved = 1; moved;) {
            moved = 0;
            for (int j = 0; j < nlab; j++)
                if (fabs(lx[j] - tx) < 90 && fabs(ly[j] - ty) < 12) {
                    ty += down ? 13 : -13;
                    moved = 1;
                }
        }
        if (nlab < 64) {
            lx[nlab] = tx;
            ly[nlab++] = ty;
        }
        sr_buf_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"11\" fill=\"%s\" text-anchor=\"%s\">", tx, ty, c,
                      left ? "end" : "start");
        xml_escaped(b, pts[i].label);
        sr_buf_str(b, "</text>\n");
    }
}

int pareto_svg(const char *path, const char *title, const ParetoPoint *pts, int n, SrError *err) {
    double W = 920, H = 400;
    SrBuf b = {0};
    sr_buf_printf(&b, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%.0f\" height=\"%.0f\" font-family=\"sans-serif\">\n", W, H);
    sr_buf_printf(&b, "<rect width=\"%.0f\" height=\"%.0f\" fill=\"white\"/>\n", W, H);
    sr_buf_str(&b, "<text x=\"16\" y=\"22\" font-size=\"14\" font-weight=\"bold\">");
    xml_escaped(&b, title);
    sr_buf_str(&b, "</text>\n<text x=\"16\" y=\"40\" font-size=\"11\" fill=\"#555\">hollow: baselines; filled: "
                   "runs; up and to the left is better</text>\n");
    panel(&b, 0, 50, W / 2, H - 50, pts, n, 0);
    panel(&b, W / 2, 50, W / 2, H - 50, pts, n, 1);
    sr_buf_str(&b, "</svg>\n");
    int rc = sr_write_file_atomic(path, b.p, b.n, err);
    sr_buf_free(&b);
    return rc;
}
