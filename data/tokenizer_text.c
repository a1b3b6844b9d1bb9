/*
 * Text handling for the tokenizer: UTF-8 repair, NFC normalisation and the character classes
 * of the Qwen2 pre-tokenizer regex, each made to agree with Hugging Face `tokenizers` 0.23
 * code point by code point (scripts/make_tokenizer_golden.py --check-unicode verifies all of
 * them against the installed HF library over every code point).
 *
 * Invalid UTF-8: HF takes a Python str, so bytes must be decoded first. Our rule (the same as
 * Python's bytes.decode('utf-8', errors='replace')): each maximal invalid subpart (Unicode
 * 3.9, "U+FFFD substitution of maximal subparts") becomes one U+FFFD.
 *
 * NFC: utf8proc knows Unicode 15, but HF's normaliser (unicode-normalization-alignments)
 * carries Unicode 9.0 tables. They differ only where Unicode 10..15 added characters:
 * 108 new combining marks (ccc != 0 for utf8proc, unknown = ccc 0 to HF) and one new
 * composition (U+11935 U+11930 -> U+11938). To HF an unknown mark is an inert starter, so
 * NFC_HF(A m B) = NFC_HF(A) m NFC_HF(B): we cut the text at those marks (and between
 * U+11935 U+11930) and let utf8proc normalise the pieces.
 *
 * Classes: \p{L} and \p{N} come from utf8proc's general category, plus the letters and
 * numbers Unicode 16 added (HF's Oniguruma knows Unicode 16; utf8proc 2.8 calls them Cn);
 * \s is the White_Space property, as in Oniguruma.
 */
#include <stdlib.h>
#include <string.h>

#include <utf8proc.h>

#include "tokenizer_impl.h"

char *tok_utf8_sanitize(const char *text, size_t len, size_t *out_len) {
    const unsigned char *s = (const unsigned char *)text;
    char *out = NULL;
    size_t o = 0, i = 0, copied = 0; /* bytes [copied, i) are valid and not yet copied */
    while (i < len) {
        unsigned char b = s[i];
        if (b < 0x80) {
            i++;
            /* skip ASCII eight bytes at a time */
            while (i + 8 <= len) {
                uint64_t w;
                memcpy(&w, s + i, 8);
                if (w & 0x8080808080808080ull) break;
                i += 8;
            }
            continue;
        }
        int need;
        unsigned char lo = 0x80, hi = 0xBF; /* range of the second byte */
        if (b >= 0xC2 && b <= 0xDF) need = 1;
        else if (b == 0xE0) { need = 2; lo = 0xA0; }
        else if ((b >= 0xE1 && b <= 0xEC) || b == 0xEE || b == 0xEF) need = 2;
        else if (b == 0xED) { need = 2; hi = 0x9F; }
        else if (b == 0xF0) { need = 3; lo = 0x90; }
        else if (b >= 0xF1 && b <= 0xF3) need = 3;
        else if (b == 0xF4) { need = 3; hi = 0x8F; }
        else need = 0; /* 0x80..0xC1, 0xF5..0xFF: never valid */
        size_t k = 1; /* bytes of the (partial) sequence that are well-formed so far */
        if (need > 0) {
            for (; k <= (size_t)need && i + k < len; k++) {
                unsigned char c = s[i + k];
                unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
                if (c < l || c > h) break;
            }
            if (k == (size_t)need + 1) { i += k; continue; } /* complete and valid */
        }
        /* s[i .. i+k) is a maximal invalid subpart: one U+FFFD */
        if (!out) out = sr_malloc(len * 3 + 4); /* each bad byte becomes at most 3 bytes */
        memcpy(out + o, s + copied, i - copied);
        o += i - copied;
        memcpy(out + o, "\xEF\xBF\xBD", 3);
        o += 3;
        i += k;
        copied = i;
    }
    if (!out) return NULL;
    memcpy(out + o, s + copied, len - copied);
    o += len - copied;
    *out_len = o;
    return out;
}

int tok_utf8_put(int32_t cp, char *out) {
    unsigned char *o = (unsigned char *)out;
    if (cp < 0x80) { o[0] = (unsigned char)cp; return 1; }
    if (cp < 0x800) { o[0] = 0xC0 | (cp >> 6); o[1] = 0x80 | (cp & 0x3F); return 2; }
    if (cp < 0x10000) {
        o[0] = 0xE0 | (cp >> 12); o[1] = 0x80 | ((cp >> 6) & 0x3F); o[2] = 0x80 | (cp & 0x3F);
        return 3;
    }
    o[0] = 0xF0 | (cp >> 18); o[1] = 0x80 | ((cp >> 12) & 0x3F);
    o[2] = 0x80 | ((cp >> 6) & 0x3F); o[3] = 0x80 | (cp & 0x3F);
    return 4;
}

/* ---- NFC ------------------------------------------------------------------------------ */

/* Combining marks (ccc != 0) added in Unicode 10.0 .. 15.0: unknown to HF's Unicode 9.0
 * normaliser, which therefore neither reorders nor composes them. Sorted ranges. */
static const int32_t hf_inert_marks[][2] = {
    {0x07FD, 0x07FD}, {0x0898, 0x089F}, {0x08CA, 0x08D3}, {0x09FE, 0x09FE},
    {0x0C3C, 0x0C3C}, {0x0D3B, 0x0D3C}, {0x0EBA, 0x0EBA}, {0x1715, 0x1715},
    {0x1ABF, 0x1ACE}, {0x1DF6, 0x1DFA}, {0xA82C, 0xA82C}, {0x10D24, 0x10D27},
    {0x10EAB, 0x10EAC}, {0x10EFD, 0x10EFF}, {0x10F46, 0x10F50}, {0x10F82, 0x10F85},
    {0x11070, 0x11070}, {0x1133B, 0x1133B}, {0x1145E, 0x1145E}, {0x11839, 0x1183A},
    {0x1193D, 0x1193E}, {0x11943, 0x11943}, {0x119E0, 0x119E0}, {0x11A34, 0x11A34},
    {0x11A47, 0x11A47}, {0x11A99, 0x11A99}, {0x11D42, 0x11D42}, {0x11D44, 0x11D45},
    {0x11D97, 0x11D97}, {0x11F41, 0x11F42}, {0x16FF0, 0x16FF1}, {0x1E08F, 0x1E08F},
    {0x1E130, 0x1E136}, {0x1E2AE, 0x1E2AE}, {0x1E2EC, 0x1E2EF}, {0x1E4EC, 0x1E4EF},
};

static int in_ranges(const int32_t (*r)[2], int n, int32_t cp) {
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2;
        if (cp < r[mid][0]) hi = mid - 1;
        else if (cp > r[mid][1]) lo = mid + 1;
        else return 1;
    }
    return 0;
}

static int is_hf_inert(int32_t cp) {
    return cp >= 0x07FD && in_ranges(hf_inert_marks, sizeof hf_inert_marks / sizeof *hf_inert_marks, cp);
}

/* Appends utf8proc's NFC of s[0..n) to the buffer at *out (capacity *cap, length *o). */
static int nfc_piece(const char *s, size_t n, char **out, size_t *o, size_t *cap) {
    if (n == 0) return 0;
    utf8proc_uint8_t *dst = NULL;
    utf8proc_ssize_t m = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &dst,
                                      UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (m < 0) return -1;
    if (*o + (size_t)m > *cap) {
        *cap = (*o + (size_t)m) * 2;
        *out = sr_realloc(*out, *cap);
    }
    memcpy(*out + *o, dst, (size_t)m);
    *o += (size_t)m;
    free(dst);
    return 0;
}

/* NFC of a piece that holds code points >= U+0300, cut at HF-inert marks (see the top). */
static int nfc_high(const char *s, size_t n, char **out, size_t *o, size_t *cap) {
    const unsigned char *u = (const unsigned char *)s;
    size_t start = 0; /* start of the pending sub-piece */
    int32_t prev = -1;
    for (size_t i = 0; i < n;) {
        int32_t cp;
        int k = tok_utf8_next(u + i, &cp);
        if (is_hf_inert(cp)) {
            if (nfc_piece(s + start, i - start, out, o, cap)) return -1;
            if (*o + 4 > *cap) { *cap = (*o + 4) * 2; *out = sr_realloc(*out, *cap); }
            memcpy(*out + *o, s + i, (size_t)k);
            *o += (size_t)k;
            start = i + (size_t)k;
        } else if (cp == 0x11930 && prev == 0x11935) {
            if (nfc_piece(s + start, i - start, out, o, cap)) return -1;
            start = i;
        }
        prev = cp;
        i += (size_t)k;
    }
    return nfc_piece(s + start, n - start, out, o, cap);
}

static void append(char **out, size_t *o, size_t *cap, const char *s, size_t n) {
    if (*o + n > *cap) { *cap = (*o + n) * 2; *out = sr_realloc(*out, *cap); }
    memcpy(*out + *o, s, n);
    *o += n;
}

long tok_nfc(const char *s, size_t n, char **out) {
    const unsigned char *u = (const unsigned char *)s;
    /* A code point below U+0300 (lead byte < 0xCC) is a starter that is NFC-stable and never
     * the second of a composition, so NFC can be cut right before it: only the pieces that
     * hold a code point >= U+0300 need utf8proc. Text without one is already NFC. */
    size_t i = 0;
    while (i < n && u[i] < 0xCC) i++;
    size_t cap = n + 16, o = 0;
    *out = sr_malloc(cap);
    if (i == n) {
        memcpy(*out, s, n);
        return (long)n;
    }
    size_t copied = 0, piece = 0; /* [copied, piece) is copied as is when a piece is flushed */
    int high = 0;
    for (i = 0; i < n;) {
        int32_t cp;
        int k = tok_utf8_next(u + i, &cp);
        if (cp < 0x300) {
            if (high) {
                append(out, &o, &cap, s + copied, piece - copied);
                if (nfc_high(s + piece, i - piece, out, &o, &cap)) goto fail;
                copied = i;
            }
            piece = i;
            high = 0;
        } else {
            high = 1;
        }
        i += (size_t)k;
    }
    if (high) {
        append(out, &o, &cap, s + copied, piece - copied);
        if (nfc_high(s + piece, n - piece, out, &o, &cap)) goto fail;
        copied = n;
    }
    append(out, &o, &cap, s + copied, n - copied);
    return (long)o;
fail:
    free(*out);
    *out = NULL;
    return -1;
}

/* ---- character classes ---------------------------------------------------------------- */

/* Letters and numbers that Unicode 16.0 added (utf8proc 2.8 / Unicode 15 says Cn). */
static const int32_t u16_letters[][2] = {
    {0x1C89, 0x1C8A}, {0xA7CB, 0xA7CD}, {0xA7DA, 0xA7DC}, {0x105C0, 0x105F3},
    {0x10D4A, 0x10D65}, {0x10D6F, 0x10D85}, {0x10EC2, 0x10EC4}, {0x11380, 0x11389},
    {0x1138B, 0x1138B}, {0x1138E, 0x1138E}, {0x11390, 0x113B5}, {0x113B7, 0x113B7},
    {0x113D1, 0x113D1}, {0x113D3, 0x113D3}, {0x11BC0, 0x11BE0}, {0x13460, 0x143FA},
    {0x16100, 0x1611D}, {0x16D40, 0x16D6C}, {0x18CFF, 0x18CFF}, {0x1E5D0, 0x1E5ED},
    {0x1E5F0, 0x1E5F0}, {0x2EBF0, 0x2EE5D},
};
static const int32_t u16_numbers[][2] = {
    {0x10D40, 0x10D49}, {0x116D0, 0x116E3}, {0x11BF0, 0x11BF9}, {0x16130, 0x16139},
    {0x16D70, 0x16D79}, {0x1CCF0, 0x1CCF9}, {0x1E5F1, 0x1E5FA},
};

int tok_is_white_space(int32_t cp) {
    if (cp < 0x80) return (cp >= 9 && cp <= 13) || cp == 32;
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) ||
           cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

int tok_cp_class(int32_t cp) {
    if (cp == '\n' || cp == '\r') return TOK_CL_NEWLINE;
    if (tok_is_white_space(cp)) return TOK_CL_SPACE;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO:
        return TOK_CL_LETTER;
    case UTF8PROC_CATEGORY_ND: case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_NO:
        return TOK_CL_NUMBER;
    case UTF8PROC_CATEGORY_CN:
        if (in_ranges(u16_letters, sizeof u16_letters / sizeof *u16_letters, cp)) return TOK_CL_LETTER;
        if (in_ranges(u16_numbers, sizeof u16_numbers / sizeof *u16_numbers, cp)) return TOK_CL_NUMBER;
        return TOK_CL_OTHER;
    default:
        return TOK_CL_OTHER;
    }
}

int tok_is_word_char(int32_t cp) {
    if (cp == '_' || cp == 0x200C || cp == 0x200D) return 1;
    switch (utf8proc_category(cp)) {
    case UTF8PROC_CATEGORY_LU: case UTF8PROC_CATEGORY_LL: case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM: case UTF8PROC_CATEGORY_LO: case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC: case UTF8PROC_CATEGORY_ME: case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL: case UTF8PROC_CATEGORY_PC:
        return 1;
    default:
        return 0;
    }
}
