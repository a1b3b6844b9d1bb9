/*
 * Text helpers of the annotator (see text.h).
 */
#include "text.h"

#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

#include "../common/error.h"
#include "../data/tokenizer.h"

size_t utf8_count(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++) k += ((unsigned char)s[i] & 0xC0) != 0x80;
    return k;
}

size_t *utf8_char_offsets(const char *s, size_t n) {
    size_t *cp = sr_malloc((n + 1) * sizeof(size_t));
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        cp[i] = k;
        k += ((unsigned char)s[i] & 0xC0) != 0x80;
    }
    cp[n] = k;
    return cp;
}

size_t utf8_decode(const char *s, size_t n, uint32_t **cps, size_t **byte_off) {
    uint32_t *c = sr_malloc((n + 1) * sizeof(uint32_t));
    size_t *o = sr_malloc((n + 1) * sizeof(size_t));
    size_t k = 0, i = 0;
    while (i < n) {
        utf8proc_int32_t cp;
        utf8proc_ssize_t l = utf8proc_iterate((const utf8proc_uint8_t *)s + i, (utf8proc_ssize_t)(n - i), &cp);
        o[k] = i;
        if (l <= 0) {
            c[k++] = 0xFFFD;
            i++;
        } else {
            c[k++] = (uint32_t)cp;
            i += (size_t)l;
        }
    }
    o[k] = n;
    *cps = c;
    *byte_off = o;
    return k;
}

char *text_nfc_if_changed(const char *s, size_t n, size_t *out_n) {
    utf8proc_uint8_t *r = NULL;
    utf8proc_ssize_t len = utf8proc_map((const utf8proc_uint8_t *)s, (utf8proc_ssize_t)n, &r,
                                        UTF8PROC_STABLE | UTF8PROC_COMPOSE);
    if (len < 0) return NULL; /* invalid UTF-8: leave it to the tokenizer */
    if ((size_t)len == n && memcmp(r, s, n) == 0) {
        free(r);
        return NULL;
    }
    *out_n = (size_t)len;
    return (char *)r;
}

char *text_strip_tags(const char *s, size_t n, size_t *out_n) {
    static const char *const tags[] = {SR_BIGMODEL_OPEN, SR_BIGMODEL_CLOSE, SR_BIGMODEL_CLOSE_ALT};
    char *out = NULL;
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        size_t skip = 0;
        if (s[i] == '<')
            for (int t = 0; t < 3; t++) {
                size_t l = strlen(tags[t]);
                if (i + l <= n && memcmp(s + i, tags[t], l) == 0) skip = l;
            }
        if (skip) {
            if (!out) {
                out = sr_malloc(n + 1);
                memcpy(out, s, i);
                k = i;
            }
            i += skip;
            continue;
        }
        if (out) out[k++] = s[i];
        i++;
    }
    if (!out) return NULL;
    out[k] = '\0';
    *out_n = k;
    return out;
}

char *text_annotate(const char *s, size_t n, const ByteSpan *spans, int n_spans, size_t *out_n) {
    size_t lo = strlen(SR_BIGMODEL_OPEN), lc = strlen(SR_BIGMODEL_CLOSE);
    size_t total = n + (size_t)n_spans * (lo + lc);
    char *out = sr_malloc(total + 1);
    size_t k = 0, at = 0;
    for (int i = 0; i < n_spans; i++) {
        SR_ASSERT(spans[i].b0 >= at && spans[i].b0 < spans[i].b1 && spans[i].b1 <= n);
        memcpy(out + k, s + at, spans[i].b0 - at);
        k += spans[i].b0 - at;
        memcpy(out + k, SR_BIGMODEL_OPEN, lo);
        k += lo;
        memcpy(out + k, s + spans[i].b0, spans[i].b1 - spans[i].b0);
        k += spans[i].b1 - spans[i].b0;
        memcpy(out + k, SR_BIGMODEL_CLOSE, lc);
        k += lc;
        at = spans[i].b1;
    }
    memcpy(out + k, s + at, n - at);
    k += n - at;
    out[k] = '\0';
    *out_n = k;
    return out;
}
