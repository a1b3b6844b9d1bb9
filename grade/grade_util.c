/*
 * Grader plumbing: the per-call arena (all of a call's memory, bounded by max_memory), a
 * string builder, UTF-8 helpers that follow Python's str methods (the reference is Python),
 * and PCRE2 wrappers that behave like Python's re (finditer / sub) for the patterns used.
 */
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "grade_internal.h"

/* ---- arena -------------------------------------------------------------------------------- */

void *ga_alloc(GArena *a, size_t n) {
    if (a->oom) return NULL;
    n = (n + 15) & ~(size_t)15;
    GArenaBlock *b = a->head;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > 60000 ? n : 60000;
        if (a->total + cap > a->limit) {
            a->oom = 1;
            return NULL;
        }
        b = sr_malloc(sizeof(GArenaBlock) + cap);
        b->cap = cap;
        b->used = 0;
        b->next = a->head;
        a->head = b;
        a->total += cap;
    }
    void *p = b->data + b->used;
    b->used += n;
    memset(p, 0, n);
    return p;
}

char *ga_strndup(GArena *a, const char *s, size_t n) {
    char *p = ga_alloc(a, n + 1);
    if (!p) return NULL;
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}

void ga_reset(GArena *a) {
    GArenaBlock *b = a->head;
    while (b && b->next) {
        GArenaBlock *n = b->next;
        a->total -= b->cap;
        free(b);
        b = n;
    }
    a->head = b;
    if (b) b->used = 0;
    a->oom = 0;
}

void ga_free(GArena *a) {
    GArenaBlock *b = a->head;
    while (b) {
        GArenaBlock *n = b->next;
        free(b);
        b = n;
    }
    a->head = NULL;
    a->total = 0;
}

void gs_init(GStr *b, GArena *a) {
    b->a = a;
    b->s = NULL;
    b->n = b->cap = 0;
}

void gs_putn(GStr *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        while (cap < b->n + n + 1) cap *= 2;
        char *p = ga_alloc(b->a, cap);
        if (!p) return; /* oom: the caller sees a->oom */
        if (b->n) memcpy(p, b->s, b->n);
        b->s = p;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

void gs_puts(GStr *b, const char *s) { gs_putn(b, s, strlen(s)); }
void gs_putc(GStr *b, char ch) { gs_putn(b, &ch, 1); }
const char *gs_cstr(GStr *b) { return b->s ? b->s : ""; }

void gctx_limit(GCtx *c, const char *reason) {
    if (!c->limit_hit) {
        c->limit_hit = 1;
        c->limit_reason = reason;
    }
}

/* ---- UTF-8 -------------------------------------------------------------------------------- */

/* decodes one code point at s[i]; returns its length (0 if invalid) */
static int utf8_decode(const unsigned char *s, size_t n, size_t i, uint32_t *cp) {
    unsigned c = s[i];
    if (c < 0x80) {
        *cp = c;
        return 1;
    }
    int len;
    uint32_t v, min;
    if ((c & 0xE0) == 0xC0) len = 2, v = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) len = 3, v = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) len = 4, v = c & 0x07, min = 0x10000;
    else return 0;
    if (i + (size_t)len > n) return 0;
    for (int k = 1; k < len; k++) {
        if ((s[i + k] & 0xC0) != 0x80) return 0;
        v = (v << 6) | (s[i + k] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

char *gu_sanitize(GArena *a, const char *s, size_t n, size_t *out_n) {
    GStr b;
    gs_init(&b, a);
    size_t i = 0;
    while (i < n) {
        uint32_t cp;
        int len = utf8_decode((const unsigned char *)s, n, i, &cp);
        if (len == 0) {
            gs_putn(&b, "\xEF\xBF\xBD", 3);
            i++;
        } else if (cp == 0) {
            gs_putc(&b, ' ');
            i++;
        } else {
            gs_putn(&b, s + i, (size_t)len);
            i += (size_t)len;
        }
    }
    if (out_n) *out_n = b.n;
    return (char *)gs_cstr(&b);
}

size_t gu_count_cp(const char *s, size_t n) {
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        if (((unsigned char)s[i] & 0xC0) != 0x80) k++;
    return k;
}

static int py_space_cp(uint32_t cp) {
    return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 ||
           cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 ||
           cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

int gu_isspace_at(const char *s, size_t n, size_t i, size_t *len) {
    uint32_t cp;
    int l = utf8_decode((const unsigned char *)s, n, i, &cp);
    if (l == 0) {
        if (len) *len = 1;
        return 0;
    }
    if (len) *len = (size_t)l;
    return py_space_cp(cp);
}

const char *gu_lstrip(const char *s, size_t n, size_t *out_n) {
    size_t i = 0, l;
    while (i < n && gu_isspace_at(s, n, i, &l)) i += l;
    *out_n = n - i;
    return s + i;
}

const char *gu_strip(const char *s, size_t n, size_t *out_n) {
    size_t m;
    s = gu_lstrip(s, n, &m);
    /* strip from the right: walk back over whole code points */
    while (m > 0) {
        size_t st = m - 1;
        while (st > 0 && ((unsigned char)s[st] & 0xC0) == 0x80) st--;
        size_t l;
        if (gu_isspace_at(s, m, st, &l) && st + l == m) m = st;
        else break;
    }
    *out_n = m;
    return s;
}

long gu_rfind(const char *s, size_t end, const char *needle) {
    size_t k = strlen(needle);
    if (k > end) return -1;
    for (size_t i = end - k + 1; i-- > 0;)
        if (memcmp(s + i, needle, k) == 0) return (long)i;
    return -1;
}

int gu_contains(const char *s, size_t n, const char *needle) {
    size_t k = strlen(needle);
    if (k == 0) return 1;
    for (size_t i = 0; i + k <= n; i++)
        if (memcmp(s + i, needle, k) == 0) return 1;
    return 0;
}

char *gu_replace_all(GArena *a, const char *s, const char *from, const char *to) {
    size_t fl = strlen(from), tl = strlen(to);
    const char *p = strstr(s, from);
    if (!p) return (char *)s;
    GStr b;
    gs_init(&b, a);
    while (p) {
        gs_putn(&b, s, (size_t)(p - s));
        gs_putn(&b, to, tl);
        s = p + fl;
        p = strstr(s, from);
    }
    gs_puts(&b, s);
    return (char *)gs_cstr(&b);
}

/* ---- regexes ------------------------------------------------------------------------------ */

pcre2_code *gre_compile(const char *pattern, uint32_t flags) {
    int errcode;
    PCRE2_SIZE erroff;
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK | (flags & ~GRE_NO_JIT), &errcode,
                                   &erroff, cc);
    pcre2_compile_context_free(cc);
    if (!re) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(errcode, msg, sizeof msg);
        fprintf(stderr, "grade: regex does not compile at %zu: %s\n  %s\n", (size_t)erroff,
                (char *)msg, pattern);
        SR_ASSERT(re != NULL);
    }
    if (!(flags & GRE_NO_JIT)) pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* else interpreter */
    return re;
}

/* counts one match call on s[off..n) that returned rc (SrGradeWork) */
static void count_match(GCtx *c, size_t n, size_t off, int rc) {
    c->work.regex_calls++;
    size_t end = n;
    if (rc >= 0) {
        size_t me = pcre2_get_ovector_pointer(c->md)[1];
        if (me >= off && me <= n) end = me;
    }
    c->work.regex_bytes += end - off;
}

int gre_match(GCtx *c, const pcre2_code *re, const char *s, size_t n, size_t off) {
    if (off > n) return 0;
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK, c->md, c->mctx);
    count_match(c, n, off, rc);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    gctx_limit(c, "regex work limit exceeded");
    return -1;
}

int gre_match_n(GCtx *c, const pcre2_code *re, const char *s, size_t n, size_t off, int noteol) {
    if (off > n) return 0;
    int rc = pcre2_match(re, (PCRE2_SPTR)s, n, off, PCRE2_NO_UTF_CHECK | (noteol ? PCRE2_NOTEOL : 0),
                         c->md, c->mctx);
    count_match(c, n, off, rc);
    if (rc >= 0) return 1;
    if (rc == PCRE2_ERROR_NOMATCH) return 0;
    gctx_limit(c, "regex work limit exceeded");
    return -1;
}

size_t *gre_ov(GCtx *c) { return pcre2_get_ovector_pointer(c->md); }

int gre_group(GCtx *c, int i, size_t *st, size_t *en) {
    if (i < 0 || (uint32_t)i >= pcre2_get_ovector_count(c->md)) return 0;
    size_t *ov = gre_ov(c);
    if (ov[2 * i] == PCRE2_UNSET) return 0;
    *st = ov[2 * i];
    *en = ov[2 * i + 1];
    return 1;
}

/* advance one code point (for empty matches) */
static size_t next_cp(const char *s, size_t n, size_t i) {
    i++;
    while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
    return i;
}

char *gre_sub(GCtx *c, const pcre2_code *re, const char *s, const char *tmpl) {
    size_t n = strlen(s), pos = 0, last = 0;
    GStr b;
    gs_init(&b, c->a);
    int any = 0;
    while (pos <= n) {
        int m = gre_match(c, re, s, n, pos);
        if (m <= 0) break;
        any = 1;
        size_t *ov = gre_ov(c);
        size_t ms = ov[0], me = ov[1];
        gs_putn(&b, s + last, ms - last);
        for (const char *t = tmpl; *t; t++) {
            if (t[0] == '\\' && t[1] >= '0' && t[1] <= '9') {
                size_t gs, ge;
                if (gre_group(c, t[1] - '0', &gs, &ge)) gs_putn(&b, s + gs, ge - gs);
                t++;
            } else if (t[0] == '\\' && t[1] == '\\') {
                gs_putc(&b, '\\');
                t++;
            } else {
                gs_putc(&b, *t);
            }
        }
        last = me;
        if (me == ms) {
            if (me >= n) break;
            size_t nx = next_cp(s, n, me);
            gs_putn(&b, s + me, nx - me);
            last = pos = nx;
        } else {
            pos = me;
        }
    }
    if (!any) return (char *)s;
    gs_putn(&b, s + last, n - last);
    return (char *)gs_cstr(&b);
}
