/*
 * Fuzzy alignment of a quoted snippet back into the trace it was quoted from.
 *
 * A judge asked for verbatim snippets still changes them: whitespace, a dropped or added
 * character, LaTeX escapes, an ellipsis at an end. align_snippet finds the substring of the
 * trace with the smallest edit distance (Levenshtein over Unicode code points) to the snippet:
 *   0. whitespace and an ellipsis at either end are trimmed; a snippet of fewer than
 *      min_chars characters is not placed (a lone "x" would match anywhere);
 *   1. exact search (memmem) first: similarity 1;
 *   2. otherwise candidate places from shared k-grams (votes per diagonal, the densest few
 *      diagonals), and a semi-global edit-distance DP (Sellers: free start and end in the
 *      trace) in a window around each; short snippets, or no shared k-gram: the DP over the
 *      whole trace (bounded by max_cells);
 *   3. similarity = 1 - distance / max(len(snippet), len(match)); below min_similarity the
 *      snippet is reported as not found;
 *   4. boundary refinement: each end of the match is moved within +-radius characters to
 *      where the snippet's first (last) characters align best, preferring a word boundary
 *      on ties; surrounding whitespace is trimmed.
 * Offsets are bytes of the trace, always on character boundaries.
 */
#ifndef SR_ANNOTATE_ALIGN_H
#define SR_ANNOTATE_ALIGN_H

#include <stddef.h>
#include <stdint.h>

typedef struct AlignGram {
    uint64_t h;        /* hash of the ALIGN_K code points starting at pos */
    uint32_t pos;
} AlignGram;

#define ALIGN_K 6

typedef struct AlignIndex {
    const char *text;  /* not owned */
    size_t len;
    uint32_t *cp;      /* [n] code points */
    size_t *boff;      /* [n + 1] byte offset of each code point */
    size_t n;
    AlignGram *grams;  /* every k-gram of the trace, sorted by (h, pos) */
    size_t n_grams;
} AlignIndex;

typedef struct AlignParams {
    double min_similarity;  /* default 0.8 */
    int radius;             /* boundary refinement, characters (default 8) */
    long long max_cells;    /* DP budget per snippet (default 2e8) */
    int min_chars;          /* shorter snippets (after trimming) are not placed (default 4) */
} AlignParams;

typedef struct AlignResult {
    int found;
    size_t b0, b1;          /* bytes [b0, b1) of the trace */
    double similarity;
    int exact;
    long long dp_cells;     /* cells of the placement DP (snippet x trace window) it computed:
                               the work done, which tests bound instead of timing it */
} AlignResult;

void align_index_build(AlignIndex *ix, const char *text, size_t len);
void align_index_free(AlignIndex *ix);
AlignResult align_snippet(const AlignIndex *ix, const char *snippet, size_t n, const AlignParams *p);

/* Levenshtein distance over code points (for tests and diagnostics). */
int align_edit_distance(const uint32_t *a, size_t na, const uint32_t *b, size_t nb);

#endif
