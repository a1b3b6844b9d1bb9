/*
 * eval/pareto.h: the SVG the demo and the sweep draw. Every point on both panels (a NaN latency
 * only on the share panel), labels escaped, coinciding points' labels kept apart, accuracy 1 and
 * 0 inside the frame, and the file replaced atomically.
 */
#include <stdlib.h>
#include <string.h>

#include "../common/fileio.h"
#include "../eval/pareto.h"
#include "harness.h"

static int count(const char *s, const char *what) {
    int n = 0;
    for (const char *p = s; (p = strstr(p, what)); p += strlen(what)) n++;
    return n;
}

/* the y of the first <text> whose content is label, after the offset `from` */
static double label_y(const char *s, const char *label, const char **from) {
    char want[128];
    snprintf(want, sizeof want, ">%s</text>", label);
    const char *p = strstr(*from, want);
    if (!p) return NAN;
    *from = p + 1;
    while (p > s && strncmp(p, "<text", 5)) p--;
    const char *y = strstr(p, " y=\"");
    return y ? atof(y + 4) : NAN;
}

int main(void) {
    ParetoPoint pts[] = {
        {"small only", 0.0, 0.26, 0.0, 1},   {"big only", 1.0, 1.8, 1.0, 1},
        {"split (SFT)", 1.0, 0.70, 0.25, 0}, {"GRPO lambda 0.1", 1.0, 0.70, 0.25, 0},
        {"GRPO lambda 2", 0.0, 0.26, 0.0, 0}, {"a <b> & \"c\"", 0.5, NAN, 0.5, 0},
    };
    int n = (int)(sizeof pts / sizeof pts[0]);
    char path[4096];
    snprintf(path, sizeof path, "%s/pareto.svg", sr_test_tmpdir("test_pareto"));
    SrError err;
    CHECKF(pareto_svg(path, "title <&>", pts, n, &err) == 0, "%s", err.msg);
    char *s = NULL;
    size_t len = 0;
    CHECK(sr_read_file(path, &s, &len, &err) == 0);
    if (!s) return sr_test_done();
    CHECK(!strncmp(s, "<svg ", 5) && strstr(s, "</svg>\n") == s + len - 7);
    CHECK(count(s, "<circle") == 2 * n - 1); /* the NaN latency is left off one panel */
    CHECK(strstr(s, "title &lt;&amp;&gt;") != NULL);
    CHECK(strstr(s, "a &lt;b&gt; &amp; &quot;c&quot;") != NULL && !strstr(s, "a <b>"));
    /* hollow baselines, filled runs */
    CHECK(count(s, "fill=\"white\" stroke=") == 2 * 2);
    /* coinciding points: their labels at different heights, on both panels */
    const char *from = s;
    for (int panel = 0; panel < 2; panel++) {
        const char *f1 = from, *f2 = from;
        double y1 = label_y(s, "split (SFT)", &f1), y2 = label_y(s, "GRPO lambda 0.1", &f2);
        CHECKF(isfinite(y1) && isfinite(y2) && fabs(y1 - y2) >= 12, "panel %d: %g %g", panel, y1, y2);
        f1 = from, f2 = from;
        y1 = label_y(s, "small only", &f1), y2 = label_y(s, "GRPO lambda 2", &f2);
        CHECKF(isfinite(y1) && isfinite(y2) && fabs(y1 - y2) >= 12, "panel %d: %g %g", panel, y1, y2);
        from = f1 > f2 ? f1 : f2;
    }
    /* a failed write leaves nothing half-written and says where */
    CHECK(pareto_svg("/nonexistent-dir/p.svg", "t", pts, n, &err) != 0 && strstr(err.msg, "/nonexistent-dir/p.svg"));
    free(s);
    return sr_test_done();
}
