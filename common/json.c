/* Strict JSON input (see json.h): one value, UTF-8, no NUL in strings, last duplicate wins. */
#include "json.h"

#include <stdlib.h>
#include <string.h>

#include "fileio.h"

int sr_utf8_seq_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    int len;
    unsigned min;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) len = 2, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, min = 0x10000;
    else return 0;
    if ((size_t)len > n) return 0;
    unsigned cp = c & (0x7F >> len);
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return len;
}

int sr_utf8_valid(const char *str, size_t n, size_t *bad_at) {
    const unsigned char *s = (const unsigned char *)str;
    for (size_t i = 0; i < n;) {
        if (s[i] < 0x80) { /* ASCII runs are the common case */
            i++;
            continue;
        }
        int l = sr_utf8_seq_len(s + i, n - i);
        if (l == 0) {
            if (bad_at) *bad_at = i;
            return 0;
        }
        i += (size_t)l;
    }
    return 1;
}

static int is_ws(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }

/* Finds a NUL byte, or a "\u0000" escape inside a string; returns its offset or -1. */
static long find_nul(const char *t, size_t n) {
    const char *z = memchr(t, '\0', n);
    if (z) return (long)(z - t);
    int in_str = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (!in_str) {
            if (c == '"') in_str = 1;
            continue;
        }
        if (c == '"') {
            in_str = 0;
        } else if (c == '\\' && i + 1 < n) {
            if (t[i + 1] == 'u' && i + 5 < n && memcmp(t + i + 2, "0000", 4) == 0) return (long)i;
            i++; /* skip the escaped character ('\\"' does not end the string) */
        }
    }
    return -1;
}

/* 2 if the text ends inside a string, 1 if with a bracket left open, else 0 */
static int ends_open(const char *t, size_t n) {
    int in_str = 0;
    long depth = 0;
    for (size_t i = 0; i < n; i++) {
        char c = t[i];
        if (in_str) {
            if (c == '"') in_str = 0;
            else if (c == '\\') i++;
        } else if (c == '"') {
            in_str = 1;
        } else if (c == '{' || c == '[') {
            depth++;
        } else if (c == '}' || c == ']') {
            depth--;
        }
    }
    return in_str ? 2 : depth > 0;
}

typedef struct {
    const char *key;
    int index;
    cJSON *item;
} KeyRef;

static int keyref_cmp(const void *a, const void *b) {
    const KeyRef *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    return c ? c : (x->index > y->index) - (x->index < y->index);
}

/* In every object below v, removes all but the last of each repeated key (Python's rule);
 * with keep_top, v's own keys are left as they are. */
static void dedupe_keys(cJSON *v, int keep_top) {
    if (!cJSON_IsObject(v) && !cJSON_IsArray(v)) return;
    int n = 0;
    for (cJSON *c = v->child; c; c = c->next) {
        dedupe_keys(c, 0);
        n++;
    }
    if (!cJSON_IsObject(v) || n < 2 || keep_top) return;
    KeyRef *refs = sr_malloc((size_t)n * sizeof *refs);
    int i = 0;
    for (cJSON *c = v->child; c; c = c->next, i++) refs[i] = (KeyRef){c->string ? c->string : "", i, c};
    qsort(refs, (size_t)n, sizeof *refs, keyref_cmp);
    for (i = 0; i + 1 < n; i++)
        if (strcmp(refs[i].key, refs[i + 1].key) == 0) /* a later one with the same key exists */
            cJSON_Delete(cJSON_DetachItemViaPointer(v, refs[i].item));
    free(refs);
}

static cJSON *parse(const char *text, size_t len, int keep_top, SrError *err) {
    size_t bad;
    if (!text) text = "";
    if (!sr_utf8_valid(text, len, &bad))
        return sr_fail(err, "invalid UTF-8 at byte %zu", bad), NULL;
    long nul = find_nul(text, len);
    if (nul >= 0)
        return sr_fail(err, "a NUL character (\\u0000 or a 0 byte) at byte %ld: strings may not hold NUL", nul),
               NULL;
    size_t start = 0;
    while (start < len && is_ws(text[start])) start++;
    if (start == len) return sr_fail(err, "empty: no JSON value"), NULL;
    const char *end = NULL;
    cJSON *v = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!v) {
        size_t at = end && end >= text ? (size_t)(end - text) : 0;
        size_t last = len;
        while (last > 0 && is_ws(text[last - 1])) last--;
        int open = ends_open(text, len);
        if (open == 2 || (open == 1 && at + 1 >= last)) return sr_fail(err, "the JSON text ends early (truncated?)"), NULL;
        return sr_fail(err, "not valid JSON at byte %zu", at), NULL;
    }
    size_t at = (size_t)(end - text);
    while (at < len && is_ws(text[at])) at++;
    if (at < len) {
        cJSON_Delete(v);
        return sr_fail(err, "trailing data after the JSON value at byte %zu", at), NULL;
    }
    dedupe_keys(v, keep_top);
    return v;
}

cJSON *sr_json_parse(const char *text, size_t len, SrError *err) { return parse(text, len, 0, err); }

cJSON *sr_json_parse_object_all_keys(const char *text, size_t len, SrError *err) {
    cJSON *v = parse(text, len, 1, err);
    if (v && !cJSON_IsObject(v)) {
        cJSON_Delete(v);
        return sr_fail(err, "not a JSON object"), NULL;
    }
    return v;
}

cJSON *sr_json_parse_object(const char *text, size_t len, SrError *err) {
    cJSON *v = sr_json_parse(text, len, err);
    if (v && !cJSON_IsObject(v)) {
        cJSON_Delete(v);
        return sr_fail(err, "not a JSON object"), NULL;
    }
    return v;
}

cJSON *sr_json_read_object_file(const char *path, SrError *err) {
    char *text = NULL;
    size_t len = 0;
    if (sr_read_file(path, &text, &len, err)) return NULL;
    cJSON *v = sr_json_parse_object(text, len, err);
    free(text);
    if (!v) sr_fail_prefix(err, "%s", path);
    return v;
}
