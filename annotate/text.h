/*
 * Text helpers of the annotator: UTF-8 character boundaries and counts, NFC, removing tags
 * already present, and inserting <bigmodel>...</bigmodel> around byte spans.
 *
 * Offsets: spans are computed in bytes (the tokenizer's unit) and reported in characters
 * (Unicode code points, what Python's str indexing counts): text[start:end] in Python is the
 * span. Both are always on character boundaries.
 */
#ifndef SR_ANNOTATE_TEXT_H
#define SR_ANNOTATE_TEXT_H

#include <stddef.h>
#include <stdint.h>

/* 1 if byte offset i of s (length n) starts a character (or is n) */
static inline int utf8_is_boundary(const char *s, size_t n, size_t i) {
    return i >= n || ((unsigned char)s[i] & 0xC0) != 0x80;
}

/* number of code points in s[0, n) (continuation bytes not counted) */
size_t utf8_count(const char *s, size_t n);

/* cp[i] for each byte offset i in [0, n]: code points before it. Malloc'd, n + 1 entries. */
size_t *utf8_char_offsets(const char *s, size_t n);

/* Decodes s into code points (invalid bytes become U+FFFD, one per byte); *byte_off receives
 * the byte offset of each code point plus one past the end (both malloc'd). Returns the count. */
size_t utf8_decode(const char *s, size_t n, uint32_t **cps, size_t **byte_off);

/* NFC of s (malloc'd, NUL-terminated) when it differs from s, else NULL. */
char *text_nfc_if_changed(const char *s, size_t n, size_t *out_n);

/* Removes "<bigmodel>", "</bigmodel>" and "<\bigmodel>" from s; returns a malloc'd copy, or
 * NULL when there were none. */
char *text_strip_tags(const char *s, size_t n, size_t *out_n);

typedef struct ByteSpan {
    size_t b0, b1;   /* [b0, b1) byte offsets, on character boundaries, b0 < b1 */
} ByteSpan;

/* text with <bigmodel> before each span and </bigmodel> after it (spans sorted, disjoint,
 * not touching). Malloc'd, NUL-terminated. */
char *text_annotate(const char *s, size_t n, const ByteSpan *spans, int n_spans, size_t *out_n);

#endif
