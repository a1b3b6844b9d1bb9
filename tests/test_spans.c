/*
 * Span selection on texts tokenized by the real Qwen2 tokenizer: edge kinds (line, sentence,
 * word, inside, and the invalid edges inside characters BPE split), smoothing against the naive
 * sum, selection of planted hard sentences, coverage near the target for random difficulty,
 * span ends on sentence/line ends, min/max span lengths, the merge gap, forced cuts of an
 * over-long sentence, the locked <think> markers, byte spans -> token spans (outward, never
 * inside a character), and the text helpers (annotate, strip tags, NFC).
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "../annotate/spans.h"
#include "../annotate/text.h"
#include "../common/rng.h"
#include "../data/tokenizer.h"
#include "harness.h"

static Tokenizer *tok;

static void build(TraceTokens *tt, const char *text) {
    SrError e = {{0}};
    if (trace_tokens_build(tt, tok, text, strlen(text), &e)) {
        fprintf(stderr, "trace_tokens_build: %s\n", e.msg);
        CHECK(0);
    }
}

/* the edge at byte offset b, or -1 */
static int edge_at(const TraceTokens *tt, size_t b) {
    for (int e = 0; e <= tt->n; e++)
        if (tt->off[e] == b) return e;
    return -1;
}

static void test_edges(void) {
    const char *t = "First sentence. Second one!\nNew line here? Pi is 3.14 and e.g. that (ok.) Fine";
    TraceTokens tt;
    build(&tt, t);
    CHECK(tt.off[tt.n] == strlen(t) && tt.edge[0] == EDGE_LINE && tt.edge[tt.n] == EDGE_LINE);
    int e1 = edge_at(&tt, strlen("First sentence."));
    CHECK(e1 > 0 && tt.edge[e1] == EDGE_SENTENCE);
    int e2 = edge_at(&tt, strlen("First sentence. Second one!\n"));
    CHECK(e2 > 0 && tt.edge[e2] == EDGE_LINE);
    int e3 = edge_at(&tt, strlen("First sentence. Second one!\nNew line here?"));
    CHECK(e3 > 0 && tt.edge[e3] == EDGE_SENTENCE);
    int e4 = edge_at(&tt, strlen("First sentence. Second"));
    CHECK(e4 > 0 && tt.edge[e4] == EDGE_WORD);
    int e5 = edge_at(&tt, strlen("First sentence. Second one!\nNew line here? Pi is 3."));
    CHECK(e5 < 0 || tt.edge[e5] != EDGE_SENTENCE); /* a decimal point */
    int e6 = edge_at(&tt, strlen("First sentence. Second one!\nNew line here? Pi is 3.14 and e.g. that (ok.)"));
    CHECK(e6 > 0 && tt.edge[e6] == EDGE_SENTENCE); /* after ".)" */
    int e7 = edge_at(&tt, strlen("Fir"));
    CHECK(e7 < 0 || tt.edge[e7] == EDGE_INSIDE);
    trace_tokens_free(&tt);

    /* rare characters: byte-level BPE splits them across tokens; such edges are invalid */
    const char *u = "Math: 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 and 鬱鬱 ok. ✓ done";
    build(&tt, u);
    int invalid = 0, ok = 1;
    for (int e = 0; e <= tt.n; e++) {
        int boundary = utf8_is_boundary(u, strlen(u), tt.off[e]);
        ok &= boundary == (tt.edge[e] != EDGE_INVALID);
        invalid += tt.edge[e] == EDGE_INVALID;
    }
    CHECK(ok && invalid > 0);
    /* char offsets: count code points */
    CHECK(tt.cp[tt.n] == utf8_count(u, strlen(u)));
    trace_tokens_free(&tt);
}

static void test_smooth(void) {
    float x[37], y[37];
    uint64_t r = 3;
    for (int i = 0; i < 37; i++) x[i] = sr_rng_uniform(&r);
    for (int w = 1; w <= 11; w += 2) {
        spans_smooth(x, 37, w, y);
        double worst = 0;
        for (int i = 0; i < 37; i++) {
            double s = 0;
            int c = 0;
            for (int j = i - w / 2; j <= i + w / 2; j++)
                if (j >= 0 && j < 37) s += x[j], c++;
            worst = fmax(worst, fabs(s / c - y[i]));
        }
        CHECK(worst < 1e-6);
    }
}

/* "S0 ... S{n-1}": sentences of about 10 tokens, with a paragraph break every 7 */
static char *make_text(int n, size_t *starts, size_t *ends) {
    size_t cap = (size_t)n * 80, k = 0;
    char *t = malloc(cap);
    for (int i = 0; i < n; i++) {
        if (i > 0) k += (size_t)sprintf(t + k, i % 7 == 0 ? "\n\n" : " ");
        starts[i] = k;
        k += (size_t)sprintf(t + k, "Sentence number %d says that x plus %d is big.", i, i * 3);
        ends[i] = k;
    }
    return t;
}

/* difficulty per token: value of the sentence holding it */
static float *difficulty_by_sentence(const TraceTokens *tt, const size_t *starts, int n, const float *val) {
    float *d = malloc((size_t)tt->n * sizeof(float));
    for (int t = 0; t < tt->n; t++) {
        int s = 0;
        while (s + 1 < n && tt->off[t] >= starts[s + 1] - 1) s++;
        d[t] = val[s];
    }
    return d;
}

static void test_select(void) {
    const int N = 40;
    size_t st[40], en[40];
    char *text = make_text(N, st, en);
    TraceTokens tt;
    build(&tt, text);
    float val[40] = {0};
    int hard[] = {5, 6, 20, 33};
    for (int k = 0; k < 4; k++) val[hard[k]] = 1.0f;
    float *d = difficulty_by_sentence(&tt, st, N, val);
    SpanParams p = {0.1, 1, EDGE_SENTENCE, 4, 512, 10};
    TokSpan *sp;
    int ns;
    spans_select(&tt, d, &p, &sp, &ns);
    /* 5 and 6 merge (adjacent); 20; 33 */
    CHECKF(ns == 3, "%d spans", ns);
    if (ns == 3) {
        /* the span holds the whole sentence (a leading space may ride along: it is part of the
         * first token) */
        size_t b0 = tt.off[sp[0].t0], b1 = tt.off[sp[0].t1];
        /* (a sentence before a paragraph break ends with the ".\n\n" token) */
#define END_OK(b, k) ((b) == en[k] || ((b) == en[k] + 2 && text[en[k]] == '\n'))
        CHECK(b0 <= st[5] && b0 + 1 >= st[5] && END_OK(b1, 6));
        CHECK(tt.off[sp[1].t0] + 1 >= st[20] && END_OK(tt.off[sp[1].t1], 20));
        CHECK(tt.off[sp[2].t0] + 1 >= st[33] && END_OK(tt.off[sp[2].t1], 33));
    }
    free(sp);

    /* random difficulty: coverage near the target, ends on sentence/line ends */
    uint64_t r = 77;
    for (int trial = 0; trial < 12; trial++) {
        for (int i = 0; i < tt.n; i++) d[i] = sr_rng_normal(&r);
        double target = 0.1 + 0.05 * (trial % 5);
        SpanParams q = {target, 1 + 2 * (trial % 4), EDGE_SENTENCE, 6, 40, 10};
        spans_select(&tt, d, &q, &sp, &ns);
        long cov = 0;
        int ends_ok = 1, len_ok = 1, order_ok = 1;
        for (int k = 0; k < ns; k++) {
            cov += sp[k].t1 - sp[k].t0;
            ends_ok &= tt.edge[sp[k].t0] >= EDGE_SENTENCE && tt.edge[sp[k].t1] >= EDGE_SENTENCE;
            len_ok &= sp[k].t1 - sp[k].t0 >= 6 && sp[k].t1 - sp[k].t0 <= 40;
            order_ok &= k == 0 || tt.cp[sp[k].t0] > tt.cp[sp[k - 1].t1] + 10;
        }
        double share = (double)cov / tt.n;
        /* within about one sentence (12 tokens) of the target */
        CHECKF(fabs(share - target) <= 13.0 / tt.n && ends_ok && len_ok && order_ok,
               "trial %d: share %.3f target %.2f ends %d len %d order %d", trial, share, target, ends_ok, len_ok, order_ok);
        free(sp);
    }
    /* max_span_tokens below two sentences: nothing merges past it */
    for (int k = 0; k < 4; k++) val[hard[k]] = 0;
    for (int i = 10; i < 20; i++) val[i] = 1; /* a run of 10 hard sentences */
    free(d);
    d = difficulty_by_sentence(&tt, st, N, val);
    SpanParams m = {0.25, 1, EDGE_SENTENCE, 4, 16, 10};
    spans_select(&tt, d, &m, &sp, &ns);
    int ok = ns > 1;
    for (int k = 0; k < ns; k++) ok &= sp[k].t1 - sp[k].t0 <= 16;
    CHECK(ok);
    free(sp);
    /* min_span_tokens above a sentence: lone sentences do not count, runs do */
    SpanParams mn = {0.1, 1, EDGE_SENTENCE, 25, 512, 10};
    spans_select(&tt, d, &mn, &sp, &ns);
    ok = ns >= 1;
    for (int k = 0; k < ns; k++) ok &= sp[k].t1 - sp[k].t0 >= 25;
    CHECK(ok);
    free(sp);
    free(d);
    trace_tokens_free(&tt);
    free(text);
}

static void test_forced_and_locked(void) {
    /* one "sentence" of ~300 tokens, then normal text; max 64 forces cuts inside it */
    size_t cap = 8000, k = 0;
    char *t = malloc(cap);
    k += (size_t)sprintf(t + k, "<think>\nStart here. ");
    for (int i = 0; i < 150; i++) k += (size_t)sprintf(t + k, "term%d ", i);
    k += (size_t)sprintf(t + k, "end. Then more text follows here. And the end.\n</think>\n\nAnswer is 4.");
    TraceTokens tt;
    build(&tt, t);
    float *d = malloc((size_t)tt.n * sizeof(float));
    for (int i = 0; i < tt.n; i++) d[i] = 1.0f; /* everything hard, incl. the markers */
    SpanParams p = {0.9, 1, EDGE_SENTENCE, 1, 64, 10};
    TokSpan *sp;
    int ns;
    spans_select(&tt, d, &p, &sp, &ns);
    int forced = 0, ok = 1, locked_inside = 0;
    for (int s = 0; s < ns; s++) {
        forced += sp[s].forced;
        ok &= sp[s].t1 - sp[s].t0 <= 64 && tt.edge[sp[s].t0] != EDGE_INVALID && tt.edge[sp[s].t1] != EDGE_INVALID;
        for (int i = sp[s].t0; i < sp[s].t1; i++) locked_inside += tt.locked[i];
    }
    CHECK(forced > 0 && ok && locked_inside == 0 && ns > 3);
    /* the markers are locked */
    int n_locked = 0;
    for (int i = 0; i < tt.n; i++) n_locked += tt.locked[i];
    CHECK(n_locked >= 2);
    free(sp);

    /* byte spans -> token spans: outward, around the locked marker */
    const char *think_end = strstr(t, "</think>");
    ByteSpan in[3] = {{(size_t)(think_end - t) - 10, (size_t)(think_end - t) + 12}, /* across </think> */
                      {3, 5},                                                      /* inside "<think>" */
                      {(size_t)(strstr(t, "Answer") - t) + 1, strlen(t) - 1}};
    spans_from_bytes(&tt, in, 3, 0, &sp, &ns);
    ok = ns >= 2;
    for (int s = 0; s < ns; s++)
        for (int i = sp[s].t0; i < sp[s].t1; i++) ok &= !tt.locked[i];
    CHECK(ok);
    /* the last one widened to whole tokens: it starts at or before the "n" of "Answer" */
    CHECKF(tt.off[sp[ns - 1].t0] <= in[2].b0 && tt.off[sp[ns - 1].t1] >= in[2].b1, "last span [%zu, %zu) of %zu, asked [%zu, %zu)",
           tt.off[sp[ns - 1].t0], tt.off[sp[ns - 1].t1], strlen(t), in[2].b0, in[2].b1);
    free(sp);
    free(d);
    trace_tokens_free(&tt);
    free(t);

    /* mid-character byte offsets snap outward to character (and token) boundaries */
    const char *u = "Alpha 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 beta gamma";
    build(&tt, u);
    const char *g = strstr(u, "𝔫");
    ByteSpan mid = {(size_t)(g - u) + 1, (size_t)(g - u) + 6};
    spans_from_bytes(&tt, &mid, 1, 0, &sp, &ns);
    CHECK(ns == 1 && utf8_is_boundary(u, strlen(u), tt.off[sp[0].t0]) && utf8_is_boundary(u, strlen(u), tt.off[sp[0].t1]) &&
          tt.off[sp[0].t0] <= (size_t)(g - u) && tt.off[sp[0].t1] >= (size_t)(g - u) + 8);
    free(sp);
    /* two spans 3 characters apart merge with a gap of 10, not with 2 */
    size_t bb = (size_t)(strstr(u, "beta") - u);
    ByteSpan two[2] = {{0, 5}, {bb, bb + 4}}; /* "Alpha", "beta": 9 characters apart */
    spans_from_bytes(&tt, two, 2, 10, &sp, &ns);
    CHECK(ns == 1);
    free(sp);
    spans_from_bytes(&tt, two, 2, 2, &sp, &ns);
    CHECK(ns == 2);
    free(sp);
    trace_tokens_free(&tt);
}

static void test_text(void) {
    const char *s = "ab😀cd";
    ByteSpan sp[2] = {{0, 2}, {6, 7}};
    size_t n;
    char *a = text_annotate(s, strlen(s), sp, 2, &n);
    CHECK(!strcmp(a, "<bigmodel>ab</bigmodel>😀<bigmodel>c</bigmodel>d") && n == strlen(a));
    char *st = text_strip_tags(a, n, &n);
    CHECK(st && !strcmp(st, s));
    free(st);
    free(a);
    CHECK(text_strip_tags("no tags", 7, &n) == NULL);
    st = text_strip_tags("x<bigmodel>y<\\bigmodel>z", 24, &n);
    CHECK(st && !strcmp(st, "xyz"));
    free(st);
    const char *decomposed = "cafe\xCC\x81"; /* e + combining acute */
    char *nfc = text_nfc_if_changed(decomposed, strlen(decomposed), &n);
    CHECK(nfc && !strcmp(nfc, "caf\xC3\xA9"));
    free(nfc);
    CHECK(text_nfc_if_changed("plain", 5, &n) == NULL);
    size_t *cp = utf8_char_offsets(s, strlen(s));
    CHECK(cp[2] == 2 && cp[6] == 3 && cp[strlen(s)] == 5);
    free(cp);
    CHECK(spans_snap_from_name("sentence") == EDGE_SENTENCE && spans_snap_from_name("nope") == -1);
}

int main(void) {
    SrError e = {{0}};
    if (tokenizer_load(&tok, "assets/qwen2_tokenizer", &e)) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    test_edges();
    test_smooth();
    test_select();
    test_forced_and_locked();
    test_text();
    tokenizer_free(tok);
    return sr_test_done();
}
