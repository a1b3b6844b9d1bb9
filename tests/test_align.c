/*
 * Fuzzy alignment of judge snippets into a real trace (the first OpenR1 trace, ~7 kB, and a
 * 50 kB one for the work bound): exact quotes; quotes with changed, dropped and inserted characters,
 * whitespace changes, an ellipsis, doubled LaTeX backslashes, a missing first word; a quote of
 * text that is not there (not found, however similar the words); a repeated passage; Unicode;
 * the edit distance itself against a brute-force reference; and the DP work (cells, not
 * seconds) for 30 snippets in the longest trace.
 */
#define _GNU_SOURCE
#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "../annotate/align.h"
#include "../annotate/text.h"
#include "../common/rng.h"
#include "../common/jsonl.h"
#include "harness.h"
#include "proc_util.h"

static char *trace_n(int which) {
    JsonlReader r;
    SrError e = {{0}};
    jsonl_open(&r, sr_test_data("openr1_math_dump10/training_examples_math.jsonl"), &e);
    char *out = NULL;
    for (int i = 0; i <= which && jsonl_next(&r, &e) == 1; i++) {
        if (i < which) continue;
        cJSON *row = cJSON_Parse(r.line);
        out = strdup(cJSON_GetObjectItem(row, "response")->valuestring);
        cJSON_Delete(row);
    }
    jsonl_close(&r);
    return out;
}

/* a copy of t[a, b) with edits */
static char *edited(const char *t, size_t a, size_t b, const char *how) {
    size_t n = b - a;
    char *s = malloc(2 * n + 16);
    memcpy(s, t + a, n);
    s[n] = '\0';
    if (!strcmp(how, "change")) s[n / 3] = s[n / 3] == 'q' ? 'z' : 'q', s[2 * n / 3] = '#';
    if (!strcmp(how, "drop")) memmove(s + n / 2, s + n / 2 + 2, n - n / 2 - 1);
    if (!strcmp(how, "insert")) memmove(s + n / 2 + 3, s + n / 2, n - n / 2 + 1), memcpy(s + n / 2, "abc", 3);
    if (!strcmp(how, "ellipsis")) strcpy(s + n - 10, "...");
    if (!strcmp(how, "spaces")) { /* every newline becomes a space, a space doubled */
        for (size_t i = 0; i < n; i++) if (s[i] == '\n') s[i] = ' ';
        char *sp = strchr(s + 5, ' ');
        if (sp) memmove(sp + 1, sp, strlen(sp) + 1);
    }
    if (!strcmp(how, "backslash")) { /* \ -> \\ as a JSON-minded judge writes */
        char *d = malloc(2 * n + 16);
        size_t k = 0;
        for (size_t i = 0; i < n; i++) {
            if (s[i] == '\\') d[k++] = '\\';
            d[k++] = s[i];
        }
        d[k] = '\0';
        free(s);
        return d;
    }
    if (!strcmp(how, "no_first_word")) {
        char *sp = strchr(s, ' ');
        if (sp) memmove(s, sp + 1, strlen(sp + 1) + 1);
    }
    return s;
}

/* a passage of the trace: from the start of the line holding offset a, ~len bytes, to a
 * sentence end */
static void passage(const char *t, size_t at, size_t len, size_t *a, size_t *b) {
    size_t n = strlen(t), s = at;
    while (s > 0 && t[s - 1] != '\n') s--;
    size_t e = s + len;
    while (e < n && !(t[e - 1] == '.' && (t[e] == ' ' || t[e] == '\n'))) e++;
    *a = s;
    *b = e;
}

static void test_cases(void) {
    char *t = trace_n(0);
    size_t n = strlen(t);
    AlignIndex ix;
    align_index_build(&ix, t, n);
    AlignParams p = {0.8, 8, 0, 0};
    const char *hows[] = {"exact", "change", "drop", "insert", "ellipsis", "spaces", "backslash", "no_first_word"};
    int found = 0, exact_pos = 0, close = 0, total = 0;
    for (int k = 0; k < 8; k++) {
        for (int place = 0; place < 5; place++) {
            size_t a, b;
            passage(t, 200 + (size_t)place * (n - 400) / 5, 120 + 40 * (size_t)(place % 3), &a, &b);
            char *s = edited(t, a, b, hows[k]);
            AlignResult r = align_snippet(&ix, s, strlen(s), &p);
            total++;
            found += r.found;
            if (k == 0) exact_pos += r.found && r.exact && r.b0 == a && r.b1 == b;
            /* the match lies on the passage: ends within a few characters (the edits that drop
             * text at an end legitimately end earlier/later) */
            size_t slack = !strcmp(hows[k], "ellipsis") ? 12 : !strcmp(hows[k], "no_first_word") ? 16 : 3;
            long d0 = (long)r.b0 - (long)a, d1 = (long)r.b1 - (long)b;
            int ok = r.found && labs(d0) <= (long)slack && labs(d1) <= (long)slack &&
                     utf8_is_boundary(t, n, r.b0) && utf8_is_boundary(t, n, r.b1);
            close += ok;
            if (!ok)
                fprintf(stderr, "align %s at %zu: found %d [%zu, %zu) want [%zu, %zu) sim %.3f\n", hows[k], a, r.found,
                        r.b0, r.b1, a, b, r.similarity);
            free(s);
        }
    }
    CHECKF(found == total && exact_pos == 5 && close == total, "found %d exact %d close %d of %d", found, exact_pos,
           close, total);
    /* "change" drops the similarity below 1 but above the threshold */
    size_t a, b;
    passage(t, n / 2, 150, &a, &b);
    char *s = edited(t, a, b, "change");
    AlignResult r = align_snippet(&ix, s, strlen(s), &p);
    CHECK(r.found && !r.exact && r.similarity < 1 && r.similarity > 0.95);
    free(s);
    /* not in the text */
    const char *fakes[] = {"Quantum chromodynamics explains the confinement of quarks inside hadrons.",
                           "Therefore the speed of the river is 17 km/h and the ship moves at 3 km/h downstream.",
                           "x"};
    int none = 0;
    for (int k = 0; k < 3; k++) {
        r = align_snippet(&ix, fakes[k], strlen(fakes[k]), &p);
        none += !r.found;
        if (r.found) fprintf(stderr, "fake %d found at [%zu, %zu): %.*s\n", k, r.b0, r.b1, (int)(r.b1 - r.b0), t + r.b0);
    }
    CHECK(none == 3);
    /* a higher threshold rejects the edited quote */
    AlignParams strict = {0.999, 8, 0, 0};
    s = edited(t, a, b, "change");
    CHECK(!align_snippet(&ix, s, strlen(s), &strict).found);
    free(s);
    /* whitespace around the quote is not part of the match */
    char pad[4096];
    snprintf(pad, sizeof pad, "\n  %.*s \n", (int)(b - a), t + a);
    r = align_snippet(&ix, pad, strlen(pad), &p);
    CHECKF(r.found && r.exact && r.b0 == a && r.b1 == b, "padded: found %d exact %d [%zu, %zu) want [%zu, %zu)", r.found,
           r.exact, r.b0, r.b1, a, b);
    align_index_free(&ix);
    free(t);

    /* a repeated passage: the first place; Unicode: offsets on character boundaries */
    const char *u = "Étape 1: on pose x = 2. Puis on vérifie. Étape 1: on pose x = 2. Fin — très bien.";
    align_index_build(&ix, u, strlen(u));
    r = align_snippet(&ix, "Étape 1: on pose x = 2.", strlen("Étape 1: on pose x = 2."), &p);
    CHECK(r.found && r.b0 == 0);
    r = align_snippet(&ix, "Fin - tres bien.", strlen("Fin - tres bien."), &p);
    CHECK(r.found && !r.exact && utf8_is_boundary(u, strlen(u), r.b0) && utf8_is_boundary(u, strlen(u), r.b1) &&
          !strncmp(u + r.b0, "Fin", 3) && r.b1 == strlen(u));
    align_index_free(&ix);
}

static int brute_ed(const uint32_t *a, int na, const uint32_t *b, int nb) {
    if (na == 0) return nb;
    if (nb == 0) return na;
    int c = brute_ed(a + 1, na - 1, b + 1, nb - 1) + (a[0] != b[0]);
    int d = brute_ed(a + 1, na - 1, b, nb) + 1, i = brute_ed(a, na, b + 1, nb - 1) + 1;
    return c < d ? (c < i ? c : i) : (d < i ? d : i);
}

static void test_edit_distance(void) {
    uint64_t rng = 5;
    int ok = 1;
    for (int t = 0; t < 200; t++) {
        uint32_t a[7], b[7];
        int na = (int)(sr_rng_u64(&rng) % 7), nb = (int)(sr_rng_u64(&rng) % 7);
        for (int i = 0; i < na; i++) a[i] = 'a' + (uint32_t)(sr_rng_u64(&rng) % 3);
        for (int i = 0; i < nb; i++) b[i] = 'a' + (uint32_t)(sr_rng_u64(&rng) % 3);
        ok &= align_edit_distance(a, (size_t)na, b, (size_t)nb) == brute_ed(a, na, b, nb);
    }
    CHECK(ok);
}

/* The k-gram seeding keeps the work small: on the longest OpenR1 trace (~50 kB), 30 edited
 * snippets of 300-1500 characters are each placed by a DP over a few windows around the
 * seeded diagonals, never over the whole trace. Counted in DP cells (AlignResult.dp_cells),
 * not timed: a count does not flake on a loaded machine. */
static void test_work_bound(void) {
    char *t = NULL;
    size_t best = 0;
    for (int i = 0; i < 10; i++) {
        char *c = trace_n(i);
        if (c && strlen(c) > best) {
            free(t);
            t = c;
            best = strlen(c);
        } else {
            free(c);
        }
    }
    CHECK(best > 40000);
    AlignIndex ix;
    double t0 = proc_now();
    align_index_build(&ix, t, best);
    AlignParams p = {0.8, 8, 0, 0};
    int found = 0, over = 0;
    long long cells = 0, full = 0;
    uint64_t rng = 1;
    const char *hows[] = {"change", "drop", "insert", "spaces"};
    for (int k = 0; k < 30; k++) {
        size_t a, b;
        passage(t, (size_t)(sr_rng_u64(&rng) % (best - 2000)), 300 + (size_t)(sr_rng_u64(&rng) % 1200), &a, &b);
        char *s = edited(t, a, b, hows[k % 4]);
        AlignResult r = align_snippet(&ix, s, strlen(s), &p);
        found += r.found && r.b0 + 20 >= a && r.b0 <= a + 20;
        /* at most 3 windows of the snippet's length + 2 x (np/4 + 16) (align.c), with np
         * bounded by the snippet's bytes */
        long long np = (long long)strlen(s);
        if (r.dp_cells > 3 * np * (np + 2 * (np / 4 + 16))) over++;
        cells += r.dp_cells;
        full += np * (long long)ix.n; /* what a DP over the whole trace would cost */
        free(s);
    }
    CHECKF(found == 30, "found %d of 30", found);
    CHECKF(over == 0, "%d snippets took more DP cells than their seeded windows allow", over);
    CHECKF(cells * 4 < full, "%lld DP cells, a quarter of the whole-trace DP is %lld", cells,
           full / 4);
    fprintf(stderr, "align: 30 snippets in a %zu-byte trace: %lld DP cells (whole-trace DP: %lld), "
                    "%.3f s\n", best, cells, full, proc_now() - t0);
    align_index_free(&ix);
    free(t);
}

int main(void) {
    test_cases();
    test_edit_distance();
    test_work_bound();
    return sr_test_done();
}
