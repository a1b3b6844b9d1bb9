/*
 * Fuzzy snippet alignment (see align.h).
 */
#define _GNU_SOURCE /* memmem */
#include "align.h"

#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "text.h"

#define MAX_GRAM_HITS 64   /* k-grams occurring more often than this are too common to vote */
#define N_CANDIDATES 3

static uint64_t gram_hash(const uint32_t *c) {
    uint64_t h = 1469598103934665603ULL;
    for (int i = 0; i < ALIGN_K; i++) {
        h ^= c[i];
        h *= 1099511628211ULL;
    }
    return h;
}

static int cmp_gram(const void *a_, const void *b_) {
    const AlignGram *a = a_, *b = b_;
    if (a->h != b->h) return a->h < b->h ? -1 : 1;
    return (a->pos > b->pos) - (a->pos < b->pos);
}

void align_index_build(AlignIndex *ix, const char *text, size_t len) {
    memset(ix, 0, sizeof *ix);
    ix->text = text;
    ix->len = len;
    ix->n = utf8_decode(text, len, &ix->cp, &ix->boff);
    if (ix->n >= ALIGN_K) {
        ix->n_grams = ix->n - ALIGN_K + 1;
        ix->grams = sr_malloc(ix->n_grams * sizeof(AlignGram));
        for (size_t i = 0; i < ix->n_grams; i++) ix->grams[i] = (AlignGram){gram_hash(ix->cp + i), (uint32_t)i};
        qsort(ix->grams, ix->n_grams, sizeof(AlignGram), cmp_gram);
    }
}

void align_index_free(AlignIndex *ix) {
    free(ix->cp);
    free(ix->boff);
    free(ix->grams);
    memset(ix, 0, sizeof *ix);
}

int align_edit_distance(const uint32_t *a, size_t na, const uint32_t *b, size_t nb) {
    int *row = sr_malloc((nb + 1) * sizeof(int));
    for (size_t j = 0; j <= nb; j++) row[j] = (int)j;
    for (size_t i = 1; i <= na; i++) {
        int diag = row[0];
        row[0] = (int)i;
        for (size_t j = 1; j <= nb; j++) {
            int up = row[j];
            int v = diag + (a[i - 1] != b[j - 1]);
            if (up + 1 < v) v = up + 1;
            if (row[j - 1] + 1 < v) v = row[j - 1] + 1;
            row[j] = v;
            diag = up;
        }
    }
    int d = row[nb];
    free(row);
    return d;
}

/* Sellers DP: best substring T[s, e) of t[0, nt) for p[0, np); returns the distance. */
static int semi_global(const uint32_t *p, size_t np, const uint32_t *t, size_t nt, size_t *s_out,
                       size_t *e_out) {
    int *d = sr_malloc((nt + 1) * sizeof(int));
    size_t *st = sr_malloc((nt + 1) * sizeof(size_t));
    for (size_t j = 0; j <= nt; j++) d[j] = 0, st[j] = j;
    for (size_t i = 1; i <= np; i++) {
        int dg = d[0];
        size_t sg = st[0];
        d[0] = (int)i;
        st[0] = 0;
        for (size_t j = 1; j <= nt; j++) {
            int up = d[j];
            size_t sup = st[j];
            int v = dg + (p[i - 1] != t[j - 1]);
            size_t sv = sg;
            if (up + 1 < v) v = up + 1, sv = sup;          /* snippet char deleted */
            if (d[j - 1] + 1 < v) v = d[j - 1] + 1, sv = st[j - 1]; /* trace char inserted */
            d[j] = v;
            st[j] = sv;
            dg = up;
            sg = sup;
        }
    }
    int best = d[0];
    size_t be = 0;
    for (size_t j = 1; j <= nt; j++)
        if (d[j] < best) best = d[j], be = j;
    *s_out = st[be];
    *e_out = be;
    free(st);
    free(d);
    return best;
}

/* distance of p[0, np) against t starting exactly at 0 with a free end (prefix alignment) */
static int prefix_distance(const uint32_t *p, size_t np, const uint32_t *t, size_t nt) {
    int *d = sr_malloc((nt + 1) * sizeof(int));
    for (size_t j = 0; j <= nt; j++) d[j] = (int)j;
    for (size_t i = 1; i <= np; i++) {
        int dg = d[0];
        d[0] = (int)i;
        for (size_t j = 1; j <= nt; j++) {
            int up = d[j];
            int v = dg + (p[i - 1] != t[j - 1]);
            if (up + 1 < v) v = up + 1;
            if (d[j - 1] + 1 < v) v = d[j - 1] + 1;
            d[j] = v;
            dg = up;
        }
    }
    int best = d[0];
    for (size_t j = 1; j <= nt; j++)
        if (d[j] < best) best = d[j];
    free(d);
    return best;
}

static int is_ws(uint32_t c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

static int word_edge(const uint32_t *t, size_t n, size_t i) {
    return i == 0 || i >= n || is_ws(t[i - 1]) || is_ws(t[i]);
}

/* moves the start s within +-radius to where the snippet's head aligns best */
static size_t refine_start(const AlignIndex *ix, const uint32_t *p, size_t np, size_t s, size_t e,
                           int radius) {
    size_t q = np < 24 ? np : 24;
    size_t lo = s > (size_t)radius ? s - (size_t)radius : 0;
    size_t hi = s + (size_t)radius < e ? s + (size_t)radius : (e > 0 ? e - 1 : 0);
    size_t best = s;
    int best_d = 1 << 30, best_w = 0;
    size_t best_gap = 0;
    for (size_t c = lo; c <= hi && c < ix->n; c++) {
        size_t avail = ix->n - c, w = q + (size_t)radius;
        int d = prefix_distance(p, q, ix->cp + c, w < avail ? w : avail);
        int we = word_edge(ix->cp, ix->n, c);
        size_t gap = c > s ? c - s : s - c;
        if (d < best_d || (d == best_d && (we > best_w || (we == best_w && gap < best_gap)))) {
            best = c, best_d = d, best_w = we, best_gap = gap;
        }
    }
    return best;
}

/* the same for the end, on reversed sequences */
static size_t refine_end(const AlignIndex *ix, const uint32_t *p, size_t np, size_t s, size_t e,
                         int radius) {
    size_t q = np < 24 ? np : 24;
    uint32_t *rp = sr_malloc(q * sizeof(uint32_t));
    for (size_t i = 0; i < q; i++) rp[i] = p[np - 1 - i];
    size_t w = q + (size_t)radius;
    uint32_t *rt = sr_malloc((w > 0 ? w : 1) * sizeof(uint32_t));
    size_t lo = e > s + (size_t)radius ? e - (size_t)radius : s + 1;
    size_t hi = e + (size_t)radius < ix->n ? e + (size_t)radius : ix->n;
    size_t best = e;
    int best_d = 1 << 30, best_w = 0;
    size_t best_gap = 0;
    for (size_t c = lo; c <= hi; c++) {
        size_t k = c < w ? c : w;
        for (size_t i = 0; i < k; i++) rt[i] = ix->cp[c - 1 - i];
        int d = prefix_distance(rp, q, rt, k);
        int we = word_edge(ix->cp, ix->n, c);
        size_t gap = c > e ? c - e : e - c;
        if (d < best_d || (d == best_d && (we > best_w || (we == best_w && gap < best_gap)))) {
            best = c, best_d = d, best_w = we, best_gap = gap;
        }
    }
    free(rt);
    free(rp);
    return best;
}

static int cmp_long(const void *a, const void *b) {
    long x = *(const long *)a, y = *(const long *)b;
    return (x > y) - (x < y);
}

/* up to N_CANDIDATES diagonals (trace start - snippet offset) with the most k-gram votes */
static int candidate_diagonals(const AlignIndex *ix, const uint32_t *p, size_t np, long *out) {
    if (np < ALIGN_K || ix->n_grams == 0) return 0;
    size_t cap = 1024, nd = 0;
    long *diag = sr_malloc(cap * sizeof(long));
    for (size_t j = 0; j + ALIGN_K <= np; j++) {
        AlignGram key = {gram_hash(p + j), 0};
        size_t lo = 0, hi = ix->n_grams;
        while (lo < hi) {
            size_t mid = (lo + hi) / 2;
            if (ix->grams[mid].h < key.h) lo = mid + 1;
            else hi = mid;
        }
        size_t end = lo;
        while (end < ix->n_grams && ix->grams[end].h == key.h) end++;
        if (end - lo > MAX_GRAM_HITS) continue;
        for (size_t k = lo; k < end; k++) {
            if (nd == cap) diag = sr_realloc(diag, (cap *= 2) * sizeof(long));
            diag[nd++] = (long)ix->grams[k].pos - (long)j;
        }
    }
    if (nd == 0) {
        free(diag);
        return 0;
    }
    qsort(diag, nd, sizeof(long), cmp_long);
    long band = (long)np / 8 + 8; /* insertions and deletions drift the diagonal */
    int n_out = 0;
    unsigned char *used = sr_calloc(nd, 1);
    size_t *pre = sr_malloc((nd + 1) * sizeof(size_t)); /* pre[k] = unused votes before k */
    while (n_out < N_CANDIDATES) {
        pre[0] = 0;
        for (size_t k = 0; k < nd; k++) pre[k + 1] = pre[k] + !used[k];
        size_t best_i = 0, best_c = 0, r = 0;
        for (size_t l = 0; l < nd; l++) { /* votes in [diag[l], diag[l] + band] */
            if (r < l) r = l;
            while (r < nd && diag[r] <= diag[l] + band) r++;
            size_t c = pre[r] - pre[l];
            if (c > best_c) best_c = c, best_i = l;
        }
        if (best_c == 0 || (best_c < 2 && n_out > 0)) break;
        out[n_out++] = diag[best_i];
        for (size_t k = best_i; k < nd && diag[k] <= diag[best_i] + band; k++) used[k] = 1;
    }
    free(pre);
    free(used);
    free(diag);
    return n_out;
}

AlignResult align_snippet(const AlignIndex *ix, const char *snip, size_t n, const AlignParams *prm) {
    AlignResult res = {0};
    AlignParams ap = *prm;
    if (ap.min_similarity <= 0) ap.min_similarity = 0.8;
    if (ap.radius <= 0) ap.radius = 8;
    if (ap.max_cells <= 0) ap.max_cells = 200000000LL;
    /* trim whitespace and an ellipsis at either end */
    for (;;) {
        size_t n0 = n;
        while (n > 0 && (snip[0] == ' ' || snip[0] == '\n' || snip[0] == '\t' || snip[0] == '\r')) snip++, n--;
        while (n > 0 && (snip[n - 1] == ' ' || snip[n - 1] == '\n' || snip[n - 1] == '\t' || snip[n - 1] == '\r')) n--;
        if (n >= 3 && memcmp(snip, "...", 3) == 0) snip += 3, n -= 3;
        if (n >= 3 && memcmp(snip + n - 3, "...", 3) == 0) n -= 3;
        if (n >= 3 && memcmp(snip, "\xE2\x80\xA6", 3) == 0) snip += 3, n -= 3;
        if (n >= 3 && memcmp(snip + n - 3, "\xE2\x80\xA6", 3) == 0) n -= 3;
        if (n == n0) break;
    }
    if (ap.min_chars <= 0) ap.min_chars = 4;
    if (n == 0 || ix->len == 0 || utf8_count(snip, n) < (size_t)ap.min_chars) return res;
    const char *hit = memmem(ix->text, ix->len, snip, n);
    if (hit && utf8_is_boundary(ix->text, ix->len, (size_t)(hit - ix->text)) &&
        utf8_is_boundary(ix->text, ix->len, (size_t)(hit - ix->text) + n)) {
        res.found = res.exact = 1;
        res.b0 = (size_t)(hit - ix->text);
        res.b1 = res.b0 + n;
        res.similarity = 1.0;
        return res;
    }
    uint32_t *p;
    size_t *poff;
    size_t np = utf8_decode(snip, n, &p, &poff);
    free(poff);
    long diags[N_CANDIDATES];
    int nc = candidate_diagonals(ix, p, np, diags);
    double best_sim = -1;
    size_t best_s = 0, best_e = 0;
    if (nc == 0) { /* nothing shared: the whole trace, if affordable */
        if ((long long)np * (long long)ix->n <= ap.max_cells) {
            size_t s, e;
            int d = semi_global(p, np, ix->cp, ix->n, &s, &e);
            res.dp_cells += (long long)np * (long long)ix->n;
            size_t ml = e - s > np ? e - s : np;
            best_sim = 1.0 - (double)d / (double)ml;
            best_s = s, best_e = e;
        }
    }
    for (int c = 0; c < nc; c++) {
        long pad = (long)np / 4 + 16;
        long lo = diags[c] - pad, hi = diags[c] + (long)np + pad;
        if (lo < 0) lo = 0;
        if (hi > (long)ix->n) hi = (long)ix->n;
        if (hi <= lo) continue;
        size_t s, e;
        int d = semi_global(p, np, ix->cp + lo, (size_t)(hi - lo), &s, &e);
        res.dp_cells += (long long)np * (hi - lo);
        size_t ml = e - s > np ? e - s : np;
        double sim = 1.0 - (double)d / (double)ml;
        if (sim > best_sim) best_sim = sim, best_s = (size_t)lo + s, best_e = (size_t)lo + e;
    }
    if (best_sim >= ap.min_similarity && best_e > best_s) {
        size_t s = refine_start(ix, p, np, best_s, best_e, ap.radius);
        size_t e = refine_end(ix, p, np, s, best_e, ap.radius);
        while (s < e && is_ws(ix->cp[s])) s++;
        while (e > s && is_ws(ix->cp[e - 1])) e--;
        if (e > s) {
            res.found = 1;
            res.b0 = ix->boff[s];
            res.b1 = ix->boff[e];
            res.similarity = best_sim;
        }
    } else if (best_sim > 0) {
        res.similarity = best_sim; /* what the best place reached, for the report */
    }
    free(p);
    return res;
}
