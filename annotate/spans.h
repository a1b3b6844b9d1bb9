/*
 * Span selection: which token ranges of a trace get <bigmodel>...</bigmodel>.
 *
 * A trace is tokenized once (TraceTokens); each token edge e (between token e-1 and e;
 * 0..n) gets a kind: LINE (after a newline, or the trace's ends), SENTENCE (after . ! ? that
 * is followed by whitespace), WORD (next to whitespace), INSIDE (inside a word), or INVALID
 * (inside a UTF-8 character that byte-level BPE split across tokens). Spans only ever start
 * and end on token edges that are character boundaries, so they never split a token or a
 * character.
 *
 * From per-token difficulty (gap / entropy scorers), spans_select:
 *   1. smooths it (centred moving average of smooth_window tokens);
 *   2. cuts the trace into units at the edges of kind >= snap (default SENTENCE: sentences
 *      and lines); a unit longer than max_tokens is cut further at its strongest inner
 *      edges (those cuts are "forced" and counted);
 *   3. ranks units by mean smoothed difficulty and adds them greedily, best first, while the
 *      covered tokens are below target_fraction * n; selected units closer than
 *      merge_gap_chars characters join into one span (the gap goes inside); a unit whose span
 *      would exceed max_tokens is passed over; spans shorter than min_tokens do not count and
 *      are not emitted;
 *   4. stops at the unit count whose coverage is closest to the target.
 * Whitespace-only units never seed a span (they only join one from inside). Tokens of the
 * thinking markers "<think>" and "</think>" are locked: no span contains them (the big model
 * writes reasoning, not the structure around it), and no merge crosses them.
 */
#ifndef SR_ANNOTATE_SPANS_H
#define SR_ANNOTATE_SPANS_H

#include <stddef.h>
#include <stdint.h>

#include "../common/error.h"
#include "../data/tokenizer.h"
#include "text.h"

enum { EDGE_INVALID = -1, EDGE_INSIDE = 0, EDGE_WORD = 1, EDGE_SENTENCE = 2, EDGE_LINE = 3 };

typedef struct TraceTokens {
    const char *text;  /* not owned */
    size_t len;
    int n;             /* tokens */
    int32_t *ids;      /* [n] */
    size_t *off;       /* [n+1] byte offset of each edge */
    size_t *cp;        /* [n+1] character offset of each edge */
    int8_t *edge;      /* [n+1] kind of each edge */
    uint8_t *locked;   /* [n] 1: never inside a span (tokens of "<think>" / "</think>") */
} TraceTokens;

/* Tokenizes text (no special handling: tags must already be removed) and checks that the
 * tokens decode to exactly the text. */
int trace_tokens_build(TraceTokens *tt, const Tokenizer *tok, const char *text, size_t len,
                       SrError *err);
void trace_tokens_free(TraceTokens *tt);
/* edge kinds for given byte offsets of token edges (off[0] = 0, off[n] = len) */
void spans_edge_kinds(const char *text, size_t len, const size_t *off, int n, int8_t *edge);

/* "line" | "sentence" | "word" | "token" -> EDGE_LINE ... EDGE_INSIDE; -1 if unknown */
int spans_snap_from_name(const char *name);
const char *spans_snap_name(int snap);

typedef struct SpanParams {
    double target_fraction;
    int smooth_window;     /* tokens; <= 1: no smoothing */
    int snap;              /* minimum edge kind of span ends */
    int min_tokens, max_tokens;
    int merge_gap_chars;
} SpanParams;

typedef struct TokSpan {
    int t0, t1;            /* token edges: tokens [t0, t1) */
    int forced;            /* an end sits on a cut below the snap kind (a unit > max_tokens) */
} TokSpan;

/* y[i] = mean of x[j] over |j - i| <= window/2 (truncated at the ends) */
void spans_smooth(const float *x, int n, int window, float *y);

/* Spans from per-token difficulty (n = tt->n values). *out malloc'd (may be 0 spans). */
int spans_select(const TraceTokens *tt, const float *difficulty, const SpanParams *p,
                 TokSpan **out, int *n_out);

/* Byte spans (e.g. aligned judge snippets) -> token spans: each end moves outward to the
 * nearest valid token edge; overlapping spans and spans closer than merge_gap_chars merge;
 * locked tokens are cut out (a span around one becomes two). */
int spans_from_bytes(const TraceTokens *tt, const ByteSpan *in, int n_in, int merge_gap_chars,
                     TokSpan **out, int *n_out);

#endif
