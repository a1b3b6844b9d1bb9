/*
 * Answer extraction, a port of Math-Verify's parser.py (extract_target_from_pred):
 *
 *   patterns     LatexExtractionConfig: "final answer is $..$ I hope" (0), "final answer .. is
 *                $..$" (50), "answer: .. $..$" (100), "answer .. $..$" (200), any LaTeX
 *                environment (300, unanchored), environments holding \boxed{..} and a plain
 *                \boxed{..} (the boxed priority: 50, or 0 for the reward config).
 *                ExprExtractionConfig: the same anchors with a plain number or expression, and
 *                (300, unanchored) any number or expression.
 *   order        priority groups from 0 up; inside a group every match of every pattern,
 *                rightmost end first (then leftmost start, then pattern order: Python's
 *                stable sort); the first candidate that parses wins (any_match), or only the
 *                first candidate is tried (first_match, the reward config).
 *   fallback     the normalised string of the first candidate tried, which Math-Verify keeps
 *                next to the parsed answer and compares as a string.
 *
 * Environments chained by "and", "or" or commas are parsed one by one and, when all parse,
 * joined into one set (Math-Verify's "several boxed answers" rule).
 */
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "grade_internal.h"

static char *pat(const char *p) {
    char *s = sr_strdup(p);
    for (char *q = s; *q; q++)
        if (*q == '`') *q = '\\';
    return s;
}

/* a growable malloc'd string for building patterns at grader creation */
typedef struct PBuf {
    char *s;
    size_t n, cap;
} PBuf;

static void pb_add(PBuf *b, const char *s) {
    size_t k = strlen(s);
    if (b->n + k + 1 > b->cap) {
        b->cap = (b->n + k + 1) * 2;
        b->s = sr_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, k + 1);
    b->n += k;
}

static void pb_addf(PBuf *b, const char *fmt, const char *a1, const char *a2) {
    char tmp[8192];
    snprintf(tmp, sizeof tmp, fmt, a1, a2);
    pb_add(b, tmp);
}

static const char *const ENV_NAMES[6] = {"latexDisplayDollar", "latexDisplayBracket",
                                         "latexInlineDollar", "latexInlineParenthesis",
                                         "latexInlineBracket", "latexFraction"};

/* make_latex_env_pattern(prefix, context) */
static void env_pattern(PBuf *b, const char *prefix, int boxed) {
    const char *dd = "(?:[^$]|`$(?!`$))";
    const char *db = "(?:[^``]|``(?!`]))";
    const char *id = "(?:``[$]|[^`n$])";
    const char *ip = "(?:[^```n]|``(?!`)))";
    const char *ib = "[^`n`]`[]";
    char c[5][512];
    const char *base[5] = {dd, db, id, ip, ib};
    for (int i = 0; i < 5; i++) {
        if (boxed)
            snprintf(c[i], sizeof c[i], "%s*?``boxed{%s+?}%s*?", base[i], base[i], base[i]);
        else
            snprintf(c[i], sizeof c[i], "%s+?", base[i]);
    }
    char tmp[4096];
    pb_add(b, "(?:(?:");
    snprintf(tmp, sizeof tmp, "(?<!``)`$`$(?P<%s%s>%s)(?<!``)`$`$", prefix, ENV_NAMES[0], c[0]);
    pb_add(b, tmp);
    snprintf(tmp, sizeof tmp, "|(?<!``)```[(?P<%s%s>%s)(?<!``)```]", prefix, ENV_NAMES[1], c[1]);
    pb_add(b, tmp);
    snprintf(tmp, sizeof tmp, "|(?<!``|`d)`$(?P<%s%s>%s)(?<!``)`$", prefix, ENV_NAMES[2], c[2]);
    pb_add(b, tmp);
    snprintf(tmp, sizeof tmp, "|(?<!``)```((?P<%s%s>%s)(?<!``)```)", prefix, ENV_NAMES[3], c[3]);
    pb_add(b, tmp);
    snprintf(tmp, sizeof tmp, "|`s`[(?P<%s%s>%s)`]`s", prefix, ENV_NAMES[4], c[4]);
    pb_add(b, tmp);
    if (!boxed) {
        const char *num = "-?`d+(?:[.,]`d+)?";
        snprintf(tmp, sizeof tmp, "|(?P<%s%s>-?``frac{%s}{%s})", prefix, ENV_NAMES[5], num, num);
        pb_add(b, tmp);
    }
    snprintf(tmp, sizeof tmp, ")`s*(?P<%spercent>(?:``?%%|[Pp]ercent|[Pp]ercentage|[Pp]ct))?)",
             prefix);
    pb_add(b, tmp);
}

static void latex_envs(PBuf *b, int boxed) {
    if (!boxed) pb_add(b, "(?:");
    env_pattern(b, "first_", boxed);
    for (int i = 1; i <= 5; i++) {
        char pre[16];
        snprintf(pre, sizeof pre, "next%d_", i);
        pb_add(b, boxed ? "`s*(?:`s*(?:,?and|,?or|,)`s*" : "(?:`s*(?:,?and|,?or|,)`s*");
        env_pattern(b, pre, boxed);
        pb_add(b, ")?");
    }
    if (!boxed) pb_add(b, ")");
}

static void fill_latex_groups(GPattern *p) {
    for (int k = 0; k < 6; k++)
        for (int e = 0; e < 7; e++) {
            char name[64];
            const char *pre = k == 0 ? "first_" : NULL;
            char prebuf[16];
            if (!pre) {
                snprintf(prebuf, sizeof prebuf, "next%d_", k);
                pre = prebuf;
            }
            snprintf(name, sizeof name, "%s%s", pre, e < 6 ? ENV_NAMES[e] : "percent");
            int g = pcre2_substring_number_from_name(p->re, (PCRE2_SPTR)name);
            p->env[k][e] = g > 0 ? g : -1;
        }
    int g = pcre2_substring_number_from_name(p->re, (PCRE2_SPTR) "first_latexBoxed");
    p->boxed_plain = g > 0 ? g : -1;
}

static void make_latex(GPattern *p, const char *pre, const char *post, int priority, int boxed,
                       int anchorless) {
    PBuf b = {0};
    pb_add(&b, pre);
    latex_envs(&b, boxed);
    pb_add(&b, post);
    char *s = pat(b.s);
    p->re = gre_compile(s, PCRE2_DOTALL);
    free(s);
    free(b.s);
    p->priority = priority;
    p->kind = GP_LATEX;
    p->anchorless = anchorless;
    fill_latex_groups(p);
}

static const char *const EX_NAMES[8] = {"expr",     "integer1", "integer2", "integer3",
                                        "decimal1", "decimal2", "decimal3", "percent"};

static void make_expr(GPattern *p, const char *body, int priority, int anchorless) {
    char *s = pat(body);
    p->re = gre_compile(s, PCRE2_USE_OFFSET_LIMIT);
    free(s);
    p->priority = priority;
    p->kind = GP_EXPR;
    p->anchorless = anchorless;
    for (int i = 0; i < 8; i++) {
        int g = pcre2_substring_number_from_name(p->re, (PCRE2_SPTR)EX_NAMES[i]);
        p->exg[i] = g > 0 ? g : -1;
    }
    for (int k = 0; k < 6; k++)
        for (int e = 0; e < 7; e++) p->env[k][e] = -1;
    p->boxed_plain = -1;
}

void gx_build_regexes(GRegexes *r) {
    /* LatexExtractionConfig, in lazy_latex_regex's order */
    make_latex(&r->lx[0], "(?i:final answer is)`:?`s*", "`.?`s?I hope", 0, 0, 0);
    make_latex(&r->lx[1], "(?i:final answer.{0,100}?)`s+is`:?`s*", "", 50, 0, 0);
    make_latex(&r->lx[2], "(?i:answer):.{0,50}?", "", 100, 0, 0);
    make_latex(&r->lx[3], "(?i:answer).{0,50}?", "", 200, 0, 0);
    make_latex(&r->lx[4], "", "", 300, 0, 1);
    make_latex(&r->lx[5], "", "", -1, 1, 0);
    {
        GPattern *p = &r->lx[6];
        /* Math-Verify's pattern is \\boxed{.+}; \\fbox{..} and "\\boxed {" are accepted too
         * (its own extract_boxed_content handles both, the pattern never reaches them) */
        char *s = pat("(?P<first_latexBoxed>``(?:boxed|fbox)`s*{.+})");
        p->re = gre_compile(s, PCRE2_DOTALL);
        free(s);
        p->priority = -1;
        p->kind = GP_LATEX;
        p->anchorless = 0;
        fill_latex_groups(p);
    }
    /* ExprExtractionConfig (lazy_expr_regex) */
    const char *number_re =
        "(?<!`d)(?:(?P<integer1>-?[1-9]`d{0,2}(?:[ ,]`d{3})+)(?P<decimal1>`.`d+)?|"
        "(?P<integer2>-?`d+)(?P<decimal2>[.,]`d+)|(?P<decimal3>`.`d+)|(?P<integer3>-?`d+))"
        "(?P<percent>`s*(?:%|[Pp]ercent|`s*[Pp]ercentage|`s*[Pp]ct))?";
    const char *ops = "`+`-`*`\xc3\x97`/`^`(`)`\xc3\xb7";
    char all_chars[256], expr_re[1024], prefix[128], suffix[128], currency[512];
    snprintf(all_chars, sizeof all_chars, "[`d`.`s%s]", ops);
    snprintf(expr_re, sizeof expr_re, "(?P<expr>-?`(?-?`d%s*[%s]%s+`)?)", all_chars, ops,
             all_chars);
    snprintf(prefix, sizeof prefix, "(?:^|`s|`=)(?:`*`*)?");
    snprintf(suffix, sizeof suffix, "(?:`*`*)?(?:`.|,|:|`s|`)|`$|$)");
    snprintf(currency, sizeof currency, "[`$%s]",
             "\xe2\x82\xac\xc2\xa3\xc2\xa5\xe2\x82\xb9\xe2\x82\xbd\xe2\x82\xaa\xe2\x82\xa9\xe2\x82"
             "\xab\xe0\xb8\xbf\xe2\x82\xa1\xe2\x82\xa2\xe2\x82\xa3\xe2\x82\xa4\xe2\x82\xa5\xe2\x82"
             "\xa6\xe2\x82\xa7\xe2\x82\xa8\xe2\x82\xa9\xe2\x82\xaa\xe2\x82\xab\xe2\x82\xad\xe2\x82"
             "\xae\xe2\x82\xaf\xe2\x82\xb0\xe2\x82\xb1\xe2\x82\xb2\xe2\x82\xb3\xe2\x82\xb4\xe2\x82"
             "\xb5\xe2\x82\xb6\xe2\x82\xb7\xe2\x82\xb8\xe2\x82\xb9\xe2\x82\xba\xe2\x82\xbb\xe2\x82"
             "\xbc\xe2\x82\xbd\xe2\x82\xbe\xe2\x82\xbf");
    PBuf ewa = {0}, nwa = {0}, eon = {0};
    pb_add(&ewa, "(?:");
    pb_add(&ewa, prefix);
    pb_add(&ewa, expr_re);
    pb_add(&ewa, suffix);
    pb_add(&ewa, ")");
    pb_add(&nwa, "(?:");
    pb_add(&nwa, prefix);
    pb_add(&nwa, currency);
    pb_add(&nwa, "?");
    pb_add(&nwa, number_re);
    pb_add(&nwa, ")");
    pb_addf(&eon, "(?:%s|%s)", ewa.s, nwa.s);
    PBuf t = {0};
    pb_addf(&t, "(?i:final answer is)`:?`s*%s`.?`s?I hope", eon.s, NULL);
    make_expr(&r->ex[0], t.s, 0, 0);
    t.n = 0;
    pb_addf(&t, "(?i:final answer.{0,100}?)`s+is`:?%s", eon.s, NULL);
    make_expr(&r->ex[1], t.s, 50, 0);
    t.n = 0;
    pb_addf(&t, "(?i:answer):(?:.{0,100}=`s*|.{0,50}?)%s(?!`s*=)", eon.s, NULL);
    make_expr(&r->ex[2], t.s, 100, 0);
    t.n = 0;
    pb_addf(&t, "(?i:answer)(?:.{0,100}=`s*|.{0,50}?)%s(?!`s*=)", eon.s, NULL);
    make_expr(&r->ex[3], t.s, 200, 0);
    make_expr(&r->ex[4], ewa.s, 300, 1);
    make_expr(&r->ex[5], nwa.s, 300, 1);
    free(t.s);
    free(ewa.s);
    free(nwa.s);
    free(eon.s);
}

/* ---- candidates --------------------------------------------------------------------------- */

typedef struct GCand {
    size_t start, end;
    long order;
    const GPattern *p;
    int n_env;
    const char *env[6];
    int env_boxed_plain[6];
    int env_pct[6];
    const char *expr, *integer, *decimal;
    int pct;
} GCand;

static const char *group_dup(GCtx *c, const char *s, int g) {
    size_t st, en;
    if (g < 0 || !gre_group(c, g, &st, &en) || en == st) return NULL;
    return ga_strndup(c->a, s + st, en - st);
}

static int fill_cand(GCtx *c, const char *s, const GPattern *p, GCand *k) {
    size_t *ov = gre_ov(c);
    k->start = ov[0];
    k->end = ov[1];
    k->p = p;
    if (p->kind == GP_LATEX) {
        k->n_env = 0;
        for (int pre = 0; pre < 6; pre++) {
            const char *val = NULL;
            int boxed_plain = 0;
            if (pre == 0 && p->boxed_plain >= 0) {
                val = group_dup(c, s, p->boxed_plain);
                boxed_plain = val != NULL;
            }
            for (int e = 0; e < 6 && !val; e++) val = group_dup(c, s, p->env[pre][e]);
            if (!val) continue;
            int i = k->n_env++;
            k->env[i] = val;
            k->env_boxed_plain[i] = boxed_plain;
            k->env_pct[i] = group_dup(c, s, p->env[pre][6]) != NULL;
        }
        return k->n_env > 0;
    }
    k->expr = group_dup(c, s, p->exg[0]);
    k->integer = NULL;
    for (int i = 1; i <= 3 && !k->integer; i++) k->integer = group_dup(c, s, p->exg[i]);
    k->decimal = NULL;
    for (int i = 4; i <= 6 && !k->decimal; i++) k->decimal = group_dup(c, s, p->exg[i]);
    k->pct = group_dup(c, s, p->exg[7]) != NULL;
    return 1;
}

static int cand_cmp(const void *x, const void *y) {
    const GCand *a = x, *b = y;
    if (a->end != b->end) return a->end > b->end ? -1 : 1;
    if (a->start != b->start) return a->start < b->start ? -1 : 1;
    return a->order < b->order ? -1 : a->order > b->order;
}

/* ---- candidate -> answer ------------------------------------------------------------------ */

/* latex2sympy with Math-Verify's get_last_eq retry */
static GNode *parse_latex_cached(GCtx *c, const char *latex) {
    GNode *x = gp_parse_latex(c, latex, !gp_should_treat_as_complex(c, latex));
    if (x || c->limit_hit) return x;
    if (strchr(latex, ',') || strchr(latex, ';')) return NULL;
    size_t n = strlen(latex), pos = 0, last_start = 0;
    int parts = 1;
    while (pos <= n && gre_match(c, c->re->equation_split, latex, n, pos) == 1) {
        size_t *ov = gre_ov(c);
        parts++;
        last_start = ov[1];
        pos = ov[1] > ov[0] ? ov[1] : ov[1] + 1;
    }
    if (parts <= 2) return NULL;
    const char *last = latex + last_start;
    return gp_parse_latex(c, last, !gp_should_treat_as_complex(c, last));
}

static GNode *pct_wrap(GCtx *c, GNode *x) {
    GNode *p = gnode_new(c, GN_PCT, 1);
    if (!p) return NULL;
    p->a[0] = x;
    return p;
}

/* extract_latex: returns the parsed answer (or NULL) and the fallback string */
static GNode *extract_latex(GCtx *c, const GCand *k, const GExtractConfig *cfg,
                            const char **fallback, const char **raw) {
    GNode *ex[6];
    const char *strs[6];
    int all = 1;
    for (int i = 0; i < k->n_env; i++) {
        GNormConfig nc = cfg->norm;
        if (k->env_boxed_plain[i]) nc.boxed = 1;
        strs[i] = gn_normalize_latex(c, k->env[i], &nc);
        ex[i] = c->limit_hit ? NULL : parse_latex_cached(c, strs[i]);
        if (ex[i] && k->env_pct[i]) ex[i] = pct_wrap(c, ex[i]);
        if (!ex[i]) all = 0;
    }
    /* report the boxed content rather than the whole environment */
    *raw = strstr(k->env[0], "\\boxed") || strstr(k->env[0], "\\fbox")
               ? gn_extract_boxed_content(c, k->env[0], !k->env_boxed_plain[0])
               : k->env[0];
    if (k->n_env > 1 && all) {
        GStr b;
        gs_init(&b, c->a);
        int total = 0;
        for (int i = 0; i < k->n_env; i++) total += ex[i]->k == GN_FSET ? ex[i]->n : 1;
        GNode *set = gnode_new(c, GN_FSET, total);
        if (!set) return NULL;
        int j = 0;
        for (int i = 0; i < k->n_env; i++) {
            if (ex[i]->k == GN_FSET)
                for (int t = 0; t < ex[i]->n; t++) set->a[j++] = ex[i]->a[t];
            else set->a[j++] = ex[i];
            if (i) gs_puts(&b, " and ");
            gs_puts(&b, strs[i]);
        }
        *fallback = gs_cstr(&b);
        return set;
    }
    *fallback = strs[0];
    return ex[0];
}

static GNode *extract_expr(GCtx *c, const GCand *k, const char **fallback, const char **raw) {
    if (k->integer || k->decimal) {
        GStr b;
        gs_init(&b, c->a);
        if (k->integer) {
            /* translate(", " removed).lstrip("0"), "" -> "0" */
            GStr ib;
            gs_init(&ib, c->a);
            for (const char *q = k->integer; *q; q++)
                if (*q != ',' && *q != ' ') gs_putc(&ib, *q);
            const char *is = gs_cstr(&ib);
            while (*is == '0') is++;
            gs_puts(&b, *is ? is : "0");
        } else {
            gs_putc(&b, '0');
        }
        if (k->decimal)
            for (const char *q = k->decimal; *q; q++) gs_putc(&b, *q == ',' ? '.' : *q);
        const char *ns = gs_cstr(&b);
        *fallback = ns;
        *raw = ns;
        GNode *x = gnode_number(c, ns);
        if (x && k->pct) x = pct_wrap(c, x);
        return x;
    }
    *fallback = k->expr ? k->expr : "";
    *raw = *fallback;
    if (!k->expr) return NULL;
    /* parse_expr(expr.replace("\n", " ").replace("^", "**")) */
    char *e = gu_replace_all(c->a, k->expr, "\n", " ");
    e = gu_replace_all(c->a, e, "^", "**");
    return gp_parse_plain_expr(c, e);
}

/* characters of the expression pattern: digits, '.', whitespace and + - * x / ^ ( ) div */
static int expr_char(const char *s, size_t n, size_t i, size_t *len, int *is_op) {
    unsigned char ch = (unsigned char)s[i];
    *len = 1;
    *is_op = 0;
    if (ch == 0xC3 && i + 1 < n && ((unsigned char)s[i + 1] == 0x97 || (unsigned char)s[i + 1] == 0xB7)) {
        *len = 2; /* U+00D7 multiplication, U+00F7 division */
        *is_op = 1;
        return 1;
    }
    if (strchr("+-*/^()", ch) && ch) {
        *is_op = 1;
        return 1;
    }
    if ((ch >= '0' && ch <= '9') || ch == '.') return 1;
    return gu_isspace_at(s, n, i, len);
}

/* the next run of expression characters at or after pos that holds an operator: [start,
 * end) and the position of its last operator */
static int next_op_run(const char *s, size_t n, size_t pos, size_t *start, size_t *end,
                       size_t *last_op) {
    size_t i = pos;
    while (i < n) {
        size_t l;
        int op;
        if (!expr_char(s, n, i, &l, &op)) {
            i++;
            while (i < n && ((unsigned char)s[i] & 0xC0) == 0x80) i++;
            continue;
        }
        size_t st = i, lo = 0;
        int any = 0;
        while (i < n && expr_char(s, n, i, &l, &op)) {
            if (op) {
                lo = i;
                any = 1;
            }
            i += l;
        }
        if (any) {
            *start = st;
            *end = i;
            *last_op = lo;
            return 1;
        }
    }
    return 0;
}

static int pattern_active(const GPattern *p, const GExtractConfig *cfg) {
    if (p->kind == GP_LATEX && !cfg->latex) return 0;
    if (p->kind == GP_EXPR && !cfg->expr) return 0;
    if (p->anchorless && !cfg->unanchored) return 0;
    if (p->priority < 0 && cfg->boxed_priority < 0) return 0;
    return 1;
}

static int prio_of(const GPattern *p, const GExtractConfig *cfg) {
    return p->priority < 0 ? cfg->boxed_priority : p->priority;
}

void gx_extract(GCtx *c, const char *text, size_t n, const GExtractConfig *cfg, GAnswer *out) {
    memset(out, 0, sizeof *out);
    out->extracted = out->normalized = out->fallback = "";
    const GRegexes *re = c->re;
    /* patterns in Math-Verify's order: latex list, then expr list (stable-sorted by priority) */
    const GPattern *pats[13];
    int np = 0;
    for (int i = 0; i < 7; i++)
        if (pattern_active(&re->lx[i], cfg)) pats[np++] = &re->lx[i];
    for (int i = 0; i < 6; i++)
        if (pattern_active(&re->ex[i], cfg)) pats[np++] = &re->ex[i];
    int prios[] = {0, 50, 100, 200, 300};
    int tried = 0, have_fallback = 0;
    for (int pi = 0; pi < 5; pi++) {
        int prio = prios[pi];
        GCand *cands = NULL;
        size_t nc = 0, cap = 0;
        for (int k = 0; k < np; k++) {
            if (prio_of(pats[k], cfg) != prio) continue;
            size_t pos = 0;
            long mi = 0;
            /* The unanchored expression pattern (a digit, then digits / spaces / operators
             * with at least one operator) backtracks over a whole run of digits and spaces at
             * every start, quadratic on long runs (Python's re too: Math-Verify hits its 5 s
             * alarm). A match lies inside one run of those characters (plus the prefix and
             * suffix character) and needs an operator after its start, so the search is run
             * per run that holds an operator, with starts limited to before its last one. */
            int runwise = pats[k] == &re->ex[4];
            size_t run_end = 0, sub_n = n;
            while (pos <= n) {
                if (runwise && pos >= run_end) {
                    size_t rs, re_, last_op;
                    if (!next_op_run(text, n, pos, &rs, &re_, &last_op)) break;
                    pos = rs > 0 ? rs - 1 : 0;
                    if (pos < run_end) pos = run_end;
                    run_end = re_;
                    sub_n = re_ < n ? re_ + 1 : n;
                    pcre2_set_offset_limit(c->mctx, last_op);
                }
                int m = runwise ? gre_match_n(c, pats[k]->re, text, sub_n, pos, sub_n < n)
                                : gre_match(c, pats[k]->re, text, n, pos);
                if (runwise && m == 0) {
                    pos = run_end;
                    continue;
                }
                if (m <= 0) break;
                if (nc == cap) {
                    cap = cap ? cap * 2 : 64;
                    GCand *nw = ga_alloc(c->a, cap * sizeof(GCand));
                    if (!nw) {
                        gctx_limit(c, "memory limit exceeded");
                        return;
                    }
                    if (nc) memcpy(nw, cands, nc * sizeof(GCand));
                    cands = nw;
                }
                GCand *cd = &cands[nc];
                memset(cd, 0, sizeof *cd);
                size_t *ov = gre_ov(c);
                size_t ms = ov[0], me = ov[1];
                if (fill_cand(c, text, pats[k], cd)) {
                    cd->order = (long)k * 1000000L + mi++;
                    nc++;
                }
                if (nc > 100000) {
                    gctx_limit(c, "too many answer candidates");
                    return;
                }
                pos = me > ms ? me : me + 1;
                while (pos < n && ((unsigned char)text[pos] & 0xC0) == 0x80) pos++;
            }
            if (runwise) pcre2_set_offset_limit(c->mctx, PCRE2_UNSET);
            if (c->limit_hit) return;
        }
        c->work.candidates += nc;
        if (nc == 0) continue;
        qsort(cands, nc, sizeof(GCand), cand_cmp);
        for (size_t i = 0; i < nc; i++) {
            if (tried >= c->opt->max_candidates) {
                gctx_limit(c, "too many answer candidates tried");
                return;
            }
            tried++;
            const char *fb = "", *raw = "";
            GNode *x = cands[i].p->kind == GP_LATEX
                           ? extract_latex(c, &cands[i], cfg, &fb, &raw)
                           : extract_expr(c, &cands[i], &fb, &raw);
            if (c->limit_hit) return;
            if (x || (fb && fb[0])) out->found = 1;
            if (!have_fallback && fb && fb[0]) {
                out->fallback = fb;
                out->extracted = raw;
                out->normalized = fb;
                have_fallback = 1;
            }
            if (x) {
                out->expr = x;
                out->extracted = raw;
                out->normalized = fb;
                return;
            }
            if (cfg->first_match_only) return;
        }
        if (cfg->first_match_only) return;
    }
}
