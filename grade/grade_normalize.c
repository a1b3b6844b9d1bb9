/*
 * LaTeX normalisation, a line-by-line port of latex2sympy2_extended's math_normalization.py
 * (the version pinned in scripts/requirements-ref.txt): extract_boxed_content, then
 * basic_latex (\left/\right, \mathrm -> \text, \dfrac -> \frac, $, quotes, \!, "and"/"or" ->
 * commas, \infty spellings, percent words), equations, units (trailing \text{..} and unit
 * words), nits (leading '.', 0.5 -> \frac{1}{2}) and malformed operators (\frac12, \sqrt2,
 * sqrt(..), ^(..), a/b -> \frac{a}{b}).
 *
 * Patterns are written with '`' standing for a backslash so they read exactly like the Python
 * raw strings they come from (pat() turns them into PCRE2 syntax).
 */
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "grade_internal.h"

/* '`' -> '\' (malloc'd) */
static char *pat(const char *p) {
    char *s = sr_strdup(p);
    for (char *q = s; *q; q++)
        if (*q == '`') *q = '\\';
    return s;
}

static pcre2_code *compile_pat(const char *p, uint32_t flags) {
    char *s = pat(p);
    pcre2_code *re = gre_compile(s, flags);
    free(s);
    return re;
}

/* units list of math_normalization.py, in its order ("integer" "point" is one entry there:
 * Python concatenates adjacent string literals) */
static const char *const UNITS[] = {
    "integerpoint", "feet", "sue", "digit", "pound", "meal", "edge", "student",
    "children ticket", "multiple", "east", "degree", "mph", "kmph", "ft", "m square", " m east",
    "sq m", "deg", "mile", "q .", "monkey", "prime", "ratio", "profit of rs", "rd", "o", "gm",
    "p . m", "lb", "tile", "per", "dm", "lt", "gain", "ab", "way", "west", "a .", "b .", "c .",
    "d .", "e .", "f .", "g .", "h .", "t", "h", "no change", "men", "soldier", "pie", "bc",
    "excess", "st", "inches", "noon", "cent", "by", "gal", "kmh", "c", "acre", "rise", "a . m",
    "th", "\xcf\x80 r 2", "sq", "mark", "l", "toy", "coin", "sq . m", "gallon", "\xc2\xb0 f",
    "profit", "minw", "yr", "women", "am", "pm", "hr", "cu cm", "square",
    "v \xc3\xa2 \xe2\x82\xac \xe2\x84\xa2", "are", "rupee", "rounds", "cubic", "cc", "mtr", "s",
    "ohm", "number", "kmph", "day", "hour", "minute", "min", "second", "man", "woman", "sec",
    "cube", "mt", "sq inch", "mp", "\xe2\x88\x8f cm \xc2\xb3", "hectare", "more", "sec", "unit",
    "cu . m", "cm 2", "rs .", "rs", "kg", "g", "month", "km", "m", "cm", "mm", "apple", "liter",
    "loss", "yard", "pure", "year", "increase", "decrease", "d", "less", "Surface", "litre",
    "pi sq m", "s .", "metre", "meter", "inch",
};

/* to_replace_patterns: (name, pattern, replacement), tried in this order */
static const char *const REPL[][3] = {
    {"math", "``math(?:rm|it|bf)", "\\text"},
    {"text", "``text(?:normal|bf|it|rm)", "\\text"},
    {"frac", "``(?:d|t|c)frac", "\\frac"},
    {"decimal_space", "`s`.", " 0."},
    {"decimal_brace", "`{`.", "{0."},
    {"approx", "`~`=", "\\approx"},
    {"comma", "`s*`{`s*,`s*`}", ","},
    {"and_or", "(?<![a-zA-Z])(,?`s*(?:and|or))(?![a-zA-Z])", ","},
    {"and_or_text", "(,?`s*``text{`s*(?:and|or)`s*})", ","},
    {"backslash_space", "(?<!``)```s", " "},
    {"infinity", "infinity", "\\infty"},
    {"dot", ",?(``ldots)", " "},
    {"percentage", "`s*`bpercentage`b", "\\%"},
    {"percentage_in_text", "``text{percentage}", "%"},
    {"percent", "`s*`bpercent`b", "\\%"},
    {"percent_in_text", "``text{percent}", "%"},
    {"pct", "`s*`bpct`b", "\\%"},
    {"pct_in_text", "``text{pct}", "%"},
    {"inf", "((?<!``)inf(?!inity))", "\\infty"},
    {"sqrt", " sqrt", "\\sqrt"},
};
#define N_REPL ((int)(sizeof REPL / sizeof REPL[0]))

static const char *const MALFORMED[7][2] = {
    {"`^`s?`((.*?)`)", "^{\\1}"},
    {"sqrt`s?`((.*?)`)", "\\\\sqrt{\\1}"},
    {"``frac`s?(`d)`s?(`d+)", "\\\\frac{\\1}{\\2}"},
    {"``log_`s?(`d)`s?(`d+)", "\\\\log_{\\1}{\\2}"},
    {"``frac`s?{(.*?)}`s?(`d)", "\\\\frac{\\1}{\\2}"},
    {"``frac`s?(`d)`s?{(.*?)}", "\\\\frac{\\1}{\\2}"},
    {"``sqrt`s?(`d)", "\\\\sqrt{\\1}"},
};

void gn_build_regexes(GRegexes *r) {
    r->r_left = compile_pat("``m?left(```{|`{|```||`||`[|`(|``rbracl|``lgroup|``lbrace|``lbrack|"
                            "``vert|``lvert|``lceil|``lfloor|``vert|``lvert|``langle|``llcorner|"
                            "``ulcorner)", 0);
    r->r_right = compile_pat("``m?right(```}|`}|```||`||`]|`)|``rbrack|``rgroup|``rbrace|``rbrack|"
                             "``vert|``rvert|``rceil|``rfloor|``vert|``rvert|``rangle|``lrcorner|"
                             "``urcorner)", 0);
    r->permutation = compile_pat("`(([a-zA-Z0-9+`-*/`` ]+?)`)_{([a-zA-Z0-9+`-*/`` ]+?)}", 0);
    r->to_remove = compile_pat("``mathrm`{th`}|``!`s*|``text`s*`{`s*`}|``text`s*`{`s*`}|```$|`$|"
                               "(?<!``)[`\"`']|``displaystyle", 0);
    {
        size_t cap = 4096;
        char *p = sr_malloc(cap);
        p[0] = '\0';
        for (int i = 0; i < N_REPL; i++) {
            char *g = pat(REPL[i][1]);
            size_t need = strlen(p) + strlen(g) + strlen(REPL[i][0]) + 16;
            if (need > cap) p = sr_realloc(p, cap = need * 2);
            if (i) strcat(p, "|");
            strcat(p, "(?P<");
            strcat(p, REPL[i][0]);
            strcat(p, ">");
            strcat(p, g);
            strcat(p, ")");
            free(g);
        }
        r->to_replace = gre_compile(p, 0);
        free(p);
        for (int i = 0; i < N_REPL; i++)
            r->repl_group[i] =
                pcre2_substring_number_from_name(r->to_replace, (PCRE2_SPTR)REPL[i][0]);
    }
    r->command_slash_fix = compile_pat("````(?=[a-zA-Z])", 0);
    r->equation_split = compile_pat("(?<!``|`<|`!|`>)=", 0);
    r->unit_superscript = compile_pat("(``(?:text|mbox){.*?})(`^`d|`{`^`d`})?$", 0);
    {
        size_t cap = 16;
        for (size_t i = 0; i < sizeof UNITS / sizeof UNITS[0]; i++) cap += strlen(UNITS[i]) + 1;
        char *alt = sr_malloc(cap);
        alt[0] = '\0';
        for (size_t i = 0; i < sizeof UNITS / sizeof UNITS[0]; i++) {
            if (i) strcat(alt, "|");
            strcat(alt, UNITS[i]);
        }
        char *full = sr_malloc(cap + 64);
        snprintf(full, cap + 64, "(\\d|\\}|\\s)\\s*(?:(?:%s)(?:s|es)?)\\s*$", alt);
        r->units = gre_compile(full, 0);
        free(alt);
        free(full);
    }
    r->valid_separator = compile_pat("`b(and|or)`b|,|;", 0);
    for (int i = 0; i < 7; i++) r->malformed[i] = compile_pat(MALFORMED[i][0], 0);
    r->comma_number = compile_pat("^`s*-?`d{1,3}(,`d{3})+(`.`d+)?`s*$", 0);
    r->complex_pattern = compile_pat(
        "``mathbb`{C`}|``i`b|`bi`b|``text`{i`}|``mathrm`{i`}|``imath`b|``det|"
        "``operatorname`{tr`}|``operatorname`{rank`}|``text`{rank`}|``arg`{|``Re`{|``Im`{|"
        "``operatorname`{Re`}|``operatorname`{Im`}|``text`{Re`}|``text`{Im`}", 0);
}

/* ---- extract_boxed_content ---------------------------------------------------------------- */

static int find_content_boundaries(const char *t, size_t open, size_t max_pos, size_t *close) {
    size_t i = open;
    int depth = 1;
    while (i + 1 < max_pos) {
        i++;
        if (t[i] == '{') depth++;
        else if (t[i] == '}') {
            depth--;
            if (depth == 0) {
                *close = i;
                return 1;
            }
        }
    }
    return 0;
}

char *gn_extract_boxed_content(GCtx *c, const char *text, int mode_all) {
    size_t n = strlen(text);
    const char **res = NULL;
    size_t *res_len = NULL;
    int nres = 0, cap = 0;
    size_t current = n, max_pos = n;
    long last_boxed_start = -1;
    /* the last occurrence before `current`; `current` only decreases, so a cached position
     * stays right while it is below it (keeps the loop linear for thousands of boxes) */
    long bi = -2, fi = -2;
    for (;;) {
        if (bi == -2 || bi + 6 > (long)current) bi = gu_rfind(text, current, "\\boxed");
        if (fi == -2 || fi + 5 > (long)current) fi = gu_rfind(text, current, "\\fbox");
        if (bi < 0 && fi < 0) break;
        long start = bi > fi ? bi : fi;
        size_t p = (size_t)start + (bi > fi ? 6 : 5), l;
        while (p < max_pos && gu_isspace_at(text, n, p, &l)) p += l;
        if (p >= max_pos) break;
        if (nres == cap) {
            cap = cap ? cap * 2 : 8;
            const char **nr = ga_alloc(c->a, sizeof(char *) * (size_t)cap);
            size_t *nl = ga_alloc(c->a, sizeof(size_t) * (size_t)cap);
            if (!nr || !nl) return (char *)text;
            if (nres) {
                memcpy(nr, res, sizeof(char *) * (size_t)nres);
                memcpy(nl, res_len, sizeof(size_t) * (size_t)nres);
            }
            res = nr;
            res_len = nl;
        }
        if (text[p] == '{') {
            size_t close;
            if (!find_content_boundaries(text, p, max_pos, &close)) {
                if (nres == 0) {
                    res[nres] = text + p;
                    res_len[nres++] = n - p;
                }
                break;
            }
            size_t cl;
            const char *content = gu_strip(text + p + 1, close - p - 1, &cl);
            if (!mode_all && last_boxed_start >= 0) {
                /* should_extract_boxed(text, content, results[-1], close, last_boxed_start) */
                size_t bs = close + 1, be = (size_t)last_boxed_start;
                size_t between = be > bs ? gu_count_cp(text + bs, be - bs) : 0;
                int ok = between < 10;
                if (!ok) {
                    const char *prev = nres ? res[nres - 1] : "";
                    size_t prevl = nres ? res_len[nres - 1] : 0;
                    int same = prevl == cl && memcmp(prev, content, cl) == 0;
                    if (!same && between < 70 && be > bs) {
                        char *bt = ga_strndup(c->a, text + bs, be - bs);
                        if (bt && gre_match(c, c->re->valid_separator, bt, be - bs, 0) == 1) ok = 1;
                    }
                }
                if (!ok) break;
            }
            if (nres == 0 || res_len[nres - 1] != cl || memcmp(res[nres - 1], content, cl) != 0) {
                res[nres] = content;
                res_len[nres++] = cl;
            }
            last_boxed_start = start;
            max_pos = (size_t)start;
        } else {
            if (nres == 0) {
                res[nres] = text + p;
                res_len[nres++] = n - p;
            }
            break;
        }
        current = (size_t)start;
    }
    if (nres == 0) return (char *)text;
    GStr b;
    gs_init(&b, c->a);
    for (int i = nres - 1; i >= 0; i--) {
        gs_putn(&b, res[i], res_len[i]);
        if (i) gs_putc(&b, ',');
    }
    return (char *)gs_cstr(&b);
}

/* ---- the fixes ---------------------------------------------------------------------------- */

static size_t cp_len(const char *s) {
    unsigned char ch = (unsigned char)s[0];
    if (ch < 0x80) return 1;
    size_t l = 1;
    while (s[l] && ((unsigned char)s[l] & 0xC0) == 0x80) l++;
    return l;
}

static char *replace_in_latex(GCtx *c, const char *s) {
    size_t n = strlen(s), pos = 0, last = 0;
    GStr b;
    gs_init(&b, c->a);
    int any = 0;
    while (pos < n) {
        int m = gre_match(c, c->re->to_replace, s, n, pos);
        if (m <= 0) break;
        any = 1;
        size_t *ov = gre_ov(c);
        size_t ms = ov[0], me = ov[1];
        gs_putn(&b, s + last, ms - last);
        for (int i = 0; i < N_REPL; i++) {
            size_t gs, ge;
            if (gre_group(c, c->re->repl_group[i], &gs, &ge)) {
                gs_puts(&b, REPL[i][2]);
                break;
            }
        }
        last = me;
        pos = me > ms ? me : ms + cp_len(s + ms);
        if (me == ms && ms < n) {
            gs_putn(&b, s + ms, pos - ms);
            last = pos;
        }
    }
    if (!any) return (char *)s;
    gs_putn(&b, s + last, n - last);
    return (char *)gs_cstr(&b);
}

/* "\\sqrt3" -> "\\sqrt{3}" (hendrycks/math) */
static char *fix_sqrt(GCtx *c, const char *text) {
    if (!strstr(text, "\\sqrt")) return (char *)text;
    GStr b;
    gs_init(&b, c->a);
    const char *p = strstr(text, "\\sqrt");
    gs_putn(&b, text, (size_t)(p - text));
    while (p) {
        const char *seg = p + 5;
        const char *next = strstr(seg, "\\sqrt");
        size_t sl = next ? (size_t)(next - seg) : strlen(seg), l2;
        seg = gu_lstrip(seg, sl, &l2);
        if (l2 > 0 && seg[0] != '{' && seg[0] != '[') {
            size_t a = cp_len(seg);
            if (a > l2) a = l2;
            gs_puts(&b, "\\sqrt{");
            gs_putn(&b, seg, a);
            gs_putc(&b, '}');
            gs_putn(&b, seg + a, l2 - a);
        } else {
            gs_puts(&b, "\\sqrt");
            gs_putn(&b, seg, l2);
        }
        p = next;
    }
    return (char *)gs_cstr(&b);
}

/* "\\frac12" -> "\\frac{1}{2}", "\\frac1{2}" -> "\\frac{1}{2}" (hendrycks/math) */
static char *fix_fracs(GCtx *c, const char *text) {
    const char *p = strstr(text, "\\frac");
    if (!p) return (char *)text;
    GStr b;
    gs_init(&b, c->a);
    gs_putn(&b, text, (size_t)(p - text));
    while (p) {
        const char *seg = p + 5;
        const char *next = strstr(seg, "\\frac");
        size_t sl = next ? (size_t)(next - seg) : strlen(seg), l2;
        seg = gu_lstrip(seg, sl, &l2);
        gs_puts(&b, "\\frac");
        if (l2 > 0 && seg[0] == '{') {
            gs_putn(&b, seg, l2);
        } else if (gu_count_cp(seg, l2) < 2) {
            return (char *)text;
        } else {
            size_t la = cp_len(seg), lb = cp_len(seg + la);
            const char *a = seg, *bb = seg + la;
            if (!(lb == 1 && bb[0] == '{')) {
                gs_putc(&b, '{');
                gs_putn(&b, a, la);
                gs_puts(&b, "}{");
                gs_putn(&b, bb, lb);
                gs_putc(&b, '}');
                gs_putn(&b, seg + la + lb, l2 - la - lb);
            } else {
                gs_putc(&b, '{');
                gs_putn(&b, a, la);
                gs_putc(&b, '}');
                gs_putn(&b, bb, l2 - la);
            }
        }
        p = next;
    }
    return (char *)gs_cstr(&b);
}

/* a canonical Python int literal: str(int(x)) == x */
static int canonical_int(const char *s, size_t n) {
    size_t i = 0;
    if (i < n && s[i] == '-') i++;
    if (i == n) return 0;
    if (s[i] == '0') return i + 1 == n && i == 0; /* "0" only ("-0" is not canonical) */
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9') return 0;
    return 1;
}

static char *fix_a_slash_b(GCtx *c, const char *text) {
    const char *sl = strchr(text, '/');
    if (!sl || strchr(sl + 1, '/')) return (char *)text;
    size_t la = (size_t)(sl - text), lb = strlen(sl + 1);
    if (!canonical_int(text, la) || !canonical_int(sl + 1, lb)) return (char *)text;
    GStr b;
    gs_init(&b, c->a);
    gs_puts(&b, "\\frac{");
    gs_putn(&b, text, la);
    gs_puts(&b, "}{");
    gs_putn(&b, sl + 1, lb);
    gs_putc(&b, '}');
    return (char *)gs_cstr(&b);
}

static char *strip_dup(GCtx *c, const char *s) {
    size_t m;
    const char *p = gu_strip(s, strlen(s), &m);
    return ga_strndup(c->a, p, m);
}

char *gn_normalize_latex(GCtx *c, const char *text, const GNormConfig *cfg) {
    const GRegexes *re = c->re;
    char *t = (char *)text;
    if (cfg->boxed) t = gn_extract_boxed_content(c, t, cfg->boxed == 2);
    if (cfg->basic_latex) {
        t = gu_replace_all(c->a, t, "\\mathrm{T}", "T");
        t = gu_replace_all(c->a, t, "\\mathrm{d}", "d");
        t = gu_replace_all(c->a, t, "{\\rm d}", "d");
        t = gu_replace_all(c->a, t, "\\left[\\begin{matrix}", "\\begin{bmatrix}");
        t = gu_replace_all(c->a, t, "\\end{matrix}\\right]", "\\end{bmatrix}");
        t = gre_sub(c, re->r_left, t, "\\1");
        t = gre_sub(c, re->r_right, t, "\\1");
        t = gre_sub(c, re->permutation, t, "\\\\frac{(\\1)!}{((\\1)-(\\2))!}");
        t = gre_sub(c, re->to_remove, t, "");
        t = replace_in_latex(c, t);
        t = gu_replace_all(c->a, t, "\n", " ");
        t = gu_replace_all(c->a, t, "\t", " ");
        if (!strstr(t, "matrix")) t = gre_sub(c, re->command_slash_fix, t, "\\\\");
    }
    if (cfg->equations) {
        if (!strchr(t, ',') && !strchr(t, ';')) {
            /* eq_parts = equation_split_regex.split(text); keep the last if > 2 parts */
            size_t n = strlen(t), pos = 0, last_start = 0;
            int parts = 1;
            while (pos <= n && gre_match(c, re->equation_split, t, n, pos) == 1) {
                size_t *ov = gre_ov(c);
                parts++;
                last_start = ov[1];
                pos = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
            }
            if (parts > 2) t = t + last_start;
        }
    }
    if (cfg->units) {
        char *u = gre_sub(c, re->unit_superscript, t, "");
        u = strip_dup(c, u);
        if (u && u[0] && strcmp(u, t) != 0) t = u;
        for (int k = 0; k < 2; k++) {
            u = gre_sub(c, re->units, t, "\\1");
            if (u[0] && strcmp(u, t) != 0) t = u;
        }
    }
    if (cfg->nits) {
        if (t[0] == '.') {
            GStr b;
            gs_init(&b, c->a);
            gs_putc(&b, '0');
            gs_puts(&b, t);
            t = (char *)gs_cstr(&b);
        }
        if (strcmp(t, "0.5") == 0) t = "\\frac{1}{2}";
    }
    if (cfg->malformed_operators) {
        for (int i = 0; i < 7; i++) t = gre_sub(c, re->malformed[i], t, MALFORMED[i][1]);
        t = gu_replace_all(c->a, t, " sqrt", "\\sqrt");
        t = fix_sqrt(c, t);
        t = fix_fracs(c, t);
        t = fix_a_slash_b(c, t);
    }
    char *out = strip_dup(c, t);
    return out ? out : (char *)"";
}
