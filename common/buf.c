/* The growable byte buffer (see buf.h). */
#include "buf.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "json.h"

void sr_buf_reserve(SrBuf *b, size_t extra) {
    SR_ASSERT(extra < ((size_t)-1) / 2 - b->n);
    if (b->n + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < b->n + extra + 1) cap *= 2;
    b->p = sr_realloc(b->p, cap);
    b->cap = cap;
}

void sr_buf_add(SrBuf *b, const void *data, size_t n) {
    sr_buf_reserve(b, n);
    if (n) memcpy(b->p + b->n, data, n);
    b->n += n;
    b->p[b->n] = '\0';
}

void sr_buf_str(SrBuf *b, const char *s) { sr_buf_add(b, s, strlen(s)); }

void sr_buf_char(SrBuf *b, char c) { sr_buf_add(b, &c, 1); }

void sr_buf_printf(SrBuf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    SR_ASSERT(k >= 0);
    sr_buf_reserve(b, (size_t)k);
    va_start(ap, fmt);
    vsnprintf(b->p + b->n, (size_t)k + 1, fmt, ap);
    va_end(ap);
    b->n += (size_t)k;
}

void sr_buf_json_string(SrBuf *b, const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    sr_buf_char(b, '"');
    for (size_t i = 0; i < n;) {
        unsigned c = s[i];
        if (c == '"') sr_buf_add(b, "\\\"", 2), i++;
        else if (c == '\\') sr_buf_add(b, "\\\\", 2), i++;
        else if (c == '\n') sr_buf_add(b, "\\n", 2), i++;
        else if (c == '\r') sr_buf_add(b, "\\r", 2), i++;
        else if (c == '\t') sr_buf_add(b, "\\t", 2), i++;
        else if (c < 0x20) sr_buf_printf(b, "\\u%04x", c), i++;
        else {
            int l = sr_utf8_seq_len(s + i, n - i);
            if (l == 0) {
                sr_buf_add(b, "\xEF\xBF\xBD", 3); /* U+FFFD for a byte that is not UTF-8 */
                i++;
            } else {
                sr_buf_add(b, s + i, (size_t)l);
                i += (size_t)l;
            }
        }
    }
    sr_buf_char(b, '"');
}

void sr_buf_json_number(SrBuf *b, double v) {
    if (!isfinite(v)) {
        sr_buf_add(b, "null", 4);
        return;
    }
    char s[40];
    for (int prec = 1; prec <= 17; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, v);
        if (strtod(s, NULL) == v) break; /* %.17g always reads back */
    }
    sr_buf_str(b, s);
}

void sr_buf_json_float(SrBuf *b, float v) {
    if (!isfinite(v)) {
        sr_buf_add(b, "null", 4);
        return;
    }
    char s[40];
    for (int prec = 1; prec <= 9; prec++) {
        snprintf(s, sizeof s, "%.*g", prec, (double)v);
        if (strtof(s, NULL) == v) break; /* %.9g always reads back */
    }
    sr_buf_str(b, s);
}

void sr_buf_clear(SrBuf *b) {
    b->n = 0;
    if (b->p) b->p[0] = '\0';
}

char *sr_buf_take(SrBuf *b) {
    char *p = b->p ? b->p : sr_strdup("");
    memset(b, 0, sizeof *b);
    return p;
}

void sr_buf_free(SrBuf *b) {
    free(b->p);
    memset(b, 0, sizeof *b);
}

void *sr_array_reserve(void *p, size_t *cap, size_t n, size_t elem) {
    if (n <= *cap) return p;
    SR_ASSERT(elem > 0 && n <= ((size_t)-1) / 2 / elem);
    size_t c = *cap > 16 ? *cap : 16;
    while (c < n) c *= 2; /* no overflow: n * elem <= SIZE_MAX / 2 */
    p = sr_realloc(p, c * elem);
    *cap = c;
    return p;
}
