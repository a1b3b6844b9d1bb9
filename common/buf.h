/*
 * The one growable byte buffer (text, JSON, binary records). Always NUL-terminated after the
 * last byte, so b.p can be used as a C string when the content is text. Growth aborts on
 * out-of-memory (sr_realloc), as every allocation of the library does; sizes that come from
 * user input are checked by the caller before they reach a buffer.
 *
 *   SrBuf b = {0};
 *   sr_buf_printf(&b, "%d rows", n);
 *   sr_buf_json_string(&b, text, len);
 *   use(b.p, b.n);
 *   sr_buf_free(&b);
 */
#ifndef SR_COMMON_BUF_H
#define SR_COMMON_BUF_H

#include <stddef.h>

typedef struct SrBuf {
    char *p;       /* the bytes, NUL after p[n] (NULL until the first append) */
    size_t n, cap; /* used, allocated */
} SrBuf;

/* makes room for extra more bytes (+ the NUL) */
void sr_buf_reserve(SrBuf *b, size_t extra);
void sr_buf_add(SrBuf *b, const void *data, size_t n);
void sr_buf_str(SrBuf *b, const char *s);
void sr_buf_char(SrBuf *b, char c);
void sr_buf_printf(SrBuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* a JSON string literal with quotes; bytes that are not valid UTF-8 become U+FFFD */
void sr_buf_json_string(SrBuf *b, const char *s, size_t n);
/* A JSON number. JSON has no NaN or infinity: a non-finite value is written as null (every
 * float the project prints into JSON goes through these two; cJSON_Print* writes null for them
 * too, which tests/test_json_number.c checks). A finite value is written in the shortest
 * decimal that reads back as the same double (at most 17 significant digits) / float (at
 * most 9), e.g. 0.1, -3.25, 1e-07. */
void sr_buf_json_number(SrBuf *b, double v);
void sr_buf_json_float(SrBuf *b, float v);
/* empties the buffer, keeps the allocation */
void sr_buf_clear(SrBuf *b);
/* hands the bytes over (caller frees; never NULL) and leaves the buffer empty */
char *sr_buf_take(SrBuf *b);
void sr_buf_free(SrBuf *b);

/* Typed arrays: grows the array p of *cap items of elem bytes so that it holds at least n items
 * (the capacity doubles, from 16) and returns it, maybe moved; *cap is updated. Aborts when
 * n * elem overflows (an internal invariant: sizes from user input are bounded first). Arrays
 * that grow together keep one capacity each:
 *
 *   b->ids = sr_array_reserve(b->ids, &b->cap_ids, n, sizeof *b->ids);
 */
void *sr_array_reserve(void *p, size_t *cap, size_t n, size_t elem);

#endif
