/*
 * Span selection (see spans.h).
 */
#define _GNU_SOURCE /* qsort_r, memmem */
#include "spans.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

/* ---- tokens and edges ---------------------------------------------------------------------- */

int trace_tokens_build(TraceTokens *tt, const Tokenizer *tok, const char *text, size_t len,
                       SrError *err) {
    memset(tt, 0, sizeof *tt);
    tt->text = text;
    tt->len = len;
    size_t n = 0;
    if (tokenizer_encode(tok, text, len, &tt->ids, &n, err)) return -1;
    tt->n = (int)n;
    tt->off = sr_malloc((n + 1) * sizeof(size_t));
    size_t at = 0;
    for (size_t i = 0; i < n; i++) {
        char *b = NULL;
        size_t bl = 0;
        if (tokenizer_decode(tok, &tt->ids[i], 1, &b, &bl, err)) {
            trace_tokens_free(tt);
            return -1;
        }
        int same = at + bl <= len && memcmp(text + at, b, bl) == 0;
        free(b);
        if (!same) {
            trace_tokens_free(tt);
            return sr_fail(err, "the tokens of the trace do not decode to its text (at byte %zu): "
                           "the text is not in the tokenizer's normal form", at);
        }
        tt->off[i] = at;
        at += bl;
    }
    tt->off[n] = at;
    if (at != len) {
        trace_tokens_free(tt);
        return sr_fail(err, "the tokens of the trace cover %zu of its %zu bytes", at, len);
    }
    size_t *cp = utf8_char_offsets(text, len);
    tt->cp = sr_malloc((n + 1) * sizeof(size_t));
    for (size_t i = 0; i <= n; i++) tt->cp[i] = cp[tt->off[i]];
    free(cp);
    tt->edge = sr_malloc(n + 1);
    spans_edge_kinds(text, len, tt->off, (int)n, tt->edge);
    /* lock the tokens overlapping "<think>" or "</think>" */
    tt->locked = sr_calloc(n > 0 ? n : 1, 1);
    static const char *const markers[] = {"<think>", "</think>"};
    for (int k = 0; k < 2; k++) {
        size_t ml = strlen(markers[k]);
        for (const char *p = text; (p = memmem(p, len - (size_t)(p - text), markers[k], ml)); p += ml) {
            size_t b0 = (size_t)(p - text), b1 = b0 + ml;
            for (size_t i = 0; i < n; i++)
                if (tt->off[i] < b1 && tt->off[i + 1] > b0) tt->locked[i] = 1;
        }
    }
    return 0;
}

void trace_tokens_free(TraceTokens *tt) {
    free(tt->ids);
    free(tt->off);
    free(tt->cp);
    free(tt->edge);
    free(tt->locked);
    memset(tt, 0, sizeof *tt);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
static int is_terminator(char c) { return c == '.' || c == '!' || c == '?'; }

static int edge_kind(const char *s, size_t len, size_t b) {
    if (b == 0 || b >= len) return EDGE_LINE;
    if (!utf8_is_boundary(s, len, b)) return EDGE_INVALID;
    char prev = s[b - 1], next = s[b];
    if (prev == '\n') return EDGE_LINE;
    /* sentence end: [.!?] (+ an optional closing bracket or quote), then whitespace, where the
     * whitespace may sit before the edge (". |Then") or after it (".| Then") */
    size_t p = b;
    int trailing_ws = 0;
    while (p > 0 && (s[p - 1] == ' ' || s[p - 1] == '\t')) p--, trailing_ws = 1;
    if (p > 0) {
        char c = s[p - 1];
        int term = is_terminator(c) ||
                   (p > 1 && (c == ')' || c == '"' || c == '\'') && is_terminator(s[p - 2]));
        if (term && (trailing_ws || is_space(next))) return EDGE_SENTENCE;
    }
    if (is_space(prev) || is_space(next)) return EDGE_WORD;
    return EDGE_INSIDE;
}

void spans_edge_kinds(const char *text, size_t len, const size_t *off, int n, int8_t *edge) {
    for (int e = 0; e <= n; e++) edge[e] = (int8_t)edge_kind(text, len, off[e]);
    edge[0] = edge[n] = EDGE_LINE;
}

int spans_snap_from_name(const char *name) {
    if (!name) return -1;
    if (!strcmp(name, "line")) return EDGE_LINE;
    if (!strcmp(name, "sentence")) return EDGE_SENTENCE;
    if (!strcmp(name, "word")) return EDGE_WORD;
    if (!strcmp(name, "token")) return EDGE_INSIDE;
    return -1;
}

const char *spans_snap_name(int snap) {
    switch (snap) {
    case EDGE_LINE: return "line";
    case EDGE_SENTENCE: return "sentence";
    case EDGE_WORD: return "word";
    default: return "token";
    }
}

void spans_smooth(const float *x, int n, int window, float *y) {
    int h = window > 1 ? window / 2 : 0;
    double acc = 0;
    int lo = 0, hi = -1; /* the running window [lo, hi] */
    for (int i = 0; i < n; i++) {
        int want_lo = i - h < 0 ? 0 : i - h, want_hi = i + h >= n ? n - 1 : i + h;
        while (hi < want_hi) acc += x[++hi];
        while (lo < want_lo) acc -= x[lo++];
        y[i] = (float)(acc / (hi - lo + 1));
    }
}

/* ---- units ------------------------------------------------------------------------------------ */

typedef struct Unit {
    int t0, t1;       /* tokens [t0, t1) */
    int forced0, forced1; /* its start / end is a forced cut */
    int locked;       /* holds a locked token: never in a span, no merge across it */
    double mean;      /* smoothed difficulty; -inf for whitespace-only and locked units */
} Unit;

typedef struct Units {
    Unit *u;
    int n, cap;
} Units;

static void units_push(Units *us, int t0, int t1, int f0, int f1) {
    if (us->n == us->cap) {
        us->cap = us->cap ? 2 * us->cap : 64;
        us->u = sr_realloc(us->u, (size_t)us->cap * sizeof(Unit));
    }
    us->u[us->n++] = (Unit){t0, t1, f0, f1, 0, 0.0};
}

/* splits tokens [t0, t1) into pieces of <= max tokens at its strongest valid inner edges,
 * preferring the one closest to the middle */
static void split_unit(const TraceTokens *tt, Units *us, int t0, int t1, int f0, int f1, int max) {
    if (t1 - t0 <= max) {
        units_push(us, t0, t1, f0, f1);
        return;
    }
    int best = -1, best_kind = EDGE_INVALID, mid = (t0 + t1) / 2, best_d = 0;
    for (int e = t0 + 1; e < t1; e++) {
        int k = tt->edge[e], d = abs(e - mid);
        if (k > best_kind || (k == best_kind && k != EDGE_INVALID && d < best_d)) {
            best = e;
            best_kind = k;
            best_d = d;
        }
    }
    if (best < 0 || best_kind == EDGE_INVALID) { /* one character of > max tokens: keep whole */
        units_push(us, t0, t1, f0, f1);
        return;
    }
    split_unit(tt, us, t0, best, f0, 1, max);
    split_unit(tt, us, best, t1, 1, f1, max);
}

static int all_space(const TraceTokens *tt, int t0, int t1) {
    for (size_t b = tt->off[t0]; b < tt->off[t1]; b++)
        if (!is_space(tt->text[b])) return 0;
    return 1;
}

/* ---- building spans from a set of selected units ------------------------------------------- */

typedef struct Built {
    TokSpan *s;
    int n, cap;
    long covered;     /* tokens in spans of >= min_tokens */
    int too_long;     /* some span exceeds max_tokens */
} Built;

static void build(const TraceTokens *tt, const Units *us, const unsigned char *sel,
                  const SpanParams *p, Built *b) {
    b->n = 0;
    b->covered = 0;
    b->too_long = 0;
    for (int i = 0; i < us->n;) {
        if (!sel[i]) {
            i++;
            continue;
        }
        int j = i;
        while (j + 1 < us->n && sel[j + 1]) j++;
        const Unit *a = &us->u[i], *z = &us->u[j];
        TokSpan s = {a->t0, z->t1, a->forced0 || z->forced1};
        /* merge with the previous span when the gap is short (in characters) and holds no
         * locked unit */
        if (b->n > 0) {
            TokSpan *prev = &b->s[b->n - 1];
            int crosses_lock = 0;
            for (int k = i - 1; k >= 0 && us->u[k].t1 > prev->t1; k--) crosses_lock |= us->u[k].locked;
            if (!crosses_lock && (long)(tt->cp[s.t0] - tt->cp[prev->t1]) <= p->merge_gap_chars) {
                prev->t1 = s.t1;
                prev->forced = prev->forced || s.forced;
                i = j + 1;
                continue;
            }
        }
        if (b->n == b->cap) {
            b->cap = b->cap ? 2 * b->cap : 32;
            b->s = sr_realloc(b->s, (size_t)b->cap * sizeof(TokSpan));
        }
        b->s[b->n++] = s;
        i = j + 1;
    }
    /* drop spans below min_tokens; note any above max_tokens */
    int k = 0;
    for (int i = 0; i < b->n; i++) {
        int len = b->s[i].t1 - b->s[i].t0;
        if (len > p->max_tokens) b->too_long = 1;
        if (len < p->min_tokens) continue;
        b->covered += len;
        b->s[k++] = b->s[i];
    }
    b->n = k;
}

static int by_mean_desc(const void *a_, const void *b_, void *ctx) {
    const Unit *u = ctx;
    int a = *(const int *)a_, b = *(const int *)b_;
    if (u[a].mean != u[b].mean) return u[a].mean > u[b].mean ? -1 : 1;
    return (a > b) - (a < b);
}

int spans_select(const TraceTokens *tt, const float *difficulty, const SpanParams *p,
                 TokSpan **out, int *n_out) {
    *out = NULL;
    *n_out = 0;
    int n = tt->n;
    if (n == 0 || p->target_fraction <= 0) return 0;
    float *sm = sr_malloc((size_t)n * sizeof(float));
    spans_smooth(difficulty, n, p->smooth_window, sm);

    /* units between edges of kind >= snap */
    Units us = {0};
    int max = p->max_tokens > 0 ? p->max_tokens : n;
    int start = 0;
    for (int e = 1; e <= n; e++)
        if (e == n || tt->edge[e] >= p->snap) {
            split_unit(tt, &us, start, e, 0, 0, max);
            start = e;
        }
    for (int i = 0; i < us.n; i++) {
        Unit *u = &us.u[i];
        for (int t = u->t0; t < u->t1; t++) u->locked |= tt->locked[t];
        if (u->locked || all_space(tt, u->t0, u->t1)) {
            u->mean = -INFINITY;
            continue;
        }
        double s = 0;
        for (int t = u->t0; t < u->t1; t++) s += sm[t];
        u->mean = s / (u->t1 - u->t0);
    }
    free(sm);

    int *rank = sr_malloc((size_t)us.n * sizeof(int));
    for (int i = 0; i < us.n; i++) rank[i] = i;
    qsort_r(rank, (size_t)us.n, sizeof(int), by_mean_desc, us.u);

    long target = lround(p->target_fraction * n);
    unsigned char *sel = sr_calloc((size_t)us.n, 1);
    Built b = {0};
    long covered = 0, prev_covered = 0;
    int last = -1;
    for (int r = 0; r < us.n && covered < target; r++) {
        int u = rank[r];
        if (us.u[u].mean == -INFINITY) break;
        sel[u] = 1;
        build(tt, &us, sel, p, &b);
        if (b.too_long) {
            sel[u] = 0;
            continue;
        }
        prev_covered = covered;
        covered = b.covered;
        last = u;
    }
    /* the last unit overshoots more than stopping short of it would undershoot: drop it */
    if (last >= 0 && covered > target && covered - target > target - prev_covered) sel[last] = 0;
    build(tt, &us, sel, p, &b);
    *out = b.s;
    *n_out = b.n;
    if (b.n == 0) {
        free(b.s);
        *out = NULL;
    }
    free(sel);
    free(rank);
    free(us.u);
    return 0;
}

/* ---- byte spans -> token spans -------------------------------------------------------------- */

static int cmp_tokspan(const void *a_, const void *b_) {
    const TokSpan *a = a_, *b = b_;
    if (a->t0 != b->t0) return a->t0 < b->t0 ? -1 : 1;
    return (a->t1 > b->t1) - (a->t1 < b->t1);
}

int spans_from_bytes(const TraceTokens *tt, const ByteSpan *in, int n_in, int merge_gap_chars,
                     TokSpan **out, int *n_out) {
    int cap = n_in > 0 ? 2 * n_in : 2;
    TokSpan *s = sr_malloc((size_t)cap * sizeof(TokSpan));
    int k = 0;
    for (int i = 0; i < n_in; i++) {
        if (in[i].b0 >= in[i].b1 || in[i].b1 > tt->len) continue;
        /* last valid edge at or before b0; first valid edge at or after b1 */
        int lo = 0, hi = tt->n;
        while (lo < hi) { /* first edge with off > b0 */
            int mid = (lo + hi) / 2;
            if (tt->off[mid] <= in[i].b0) lo = mid + 1;
            else hi = mid;
        }
        int t0 = lo - 1;
        while (t0 > 0 && tt->edge[t0] == EDGE_INVALID) t0--;
        lo = 0, hi = tt->n;
        while (lo < hi) { /* first edge with off >= b1 */
            int mid = (lo + hi) / 2;
            if (tt->off[mid] < in[i].b1) lo = mid + 1;
            else hi = mid;
        }
        int t1 = lo;
        while (t1 < tt->n && tt->edge[t1] == EDGE_INVALID) t1++;
        if (t0 < 0) t0 = 0;
        /* pieces between locked tokens */
        for (int a = t0; a < t1;) {
            while (a < t1 && tt->locked[a]) a++;
            int z = a;
            while (z < t1 && !tt->locked[z]) z++;
            if (z > a) {
                if (k == cap) s = sr_realloc(s, (size_t)(cap *= 2) * sizeof(TokSpan));
                s[k++] = (TokSpan){a, z, 0};
            }
            a = z;
        }
    }
    qsort(s, (size_t)k, sizeof(TokSpan), cmp_tokspan);
    int m = 0;
    for (int i = 0; i < k; i++) {
        int crosses_lock = 0;
        for (int t = m > 0 ? s[m - 1].t1 : 0; m > 0 && t < s[i].t0; t++) crosses_lock |= tt->locked[t];
        if (m > 0 && !crosses_lock && (long)tt->cp[s[i].t0] - (long)tt->cp[s[m - 1].t1] <= merge_gap_chars) {
            if (s[i].t1 > s[m - 1].t1) s[m - 1].t1 = s[i].t1;
            continue;
        }
        s[m++] = s[i];
    }
    *out = s;
    *n_out = m;
    return 0;
}
