/*
 * LaTeX -> expression tree, following latex2sympy2_extended (PS.g4 + latex2sympy2.py):
 *
 *   math      set_elements_relation ("x = 1, 2") | set_elements ("1, 2"; "(1,2)") |
 *             set_relation ("(0,1) \cup (2,3)"), the first that reads the whole input
 *   element   a \pm b | set atom (interval, tuple, {set}) | relation (a = b < c)
 *   expr      + - over * / : \times \cdot \div \mod over unary +- over implicit products of
 *             postfix terms (!, ', ^\circ) over powers over components (groups, |x|, \frac,
 *             \binom, \sqrt, functions, atoms, matrices)
 *
 * Where ANTLR picks between alternatives the parser takes the first one (in grammar order)
 * that parses and is followed by something the enclosing rule accepts (a sound stand-in for
 * ANTLR's full-context prediction on these inputs). The tree keeps latex2sympy's shapes where
 * they matter to the comparison: Integer / Rational / Float, unevaluated Add / Mul (written
 * order), the mixed-fraction rule (2 \frac{1}{2} = 5/2, and "2 3" = 5), lowercased symbols,
 * percentages as x * (1/100), (a, b) as an open interval unless b <= a.
 *
 * Conversion errors of latex2sympy (\partial, \in inside a relation, a norm of a scalar, ...)
 * fail the whole parse, as the exception does there. Things latex2sympy parses but this grader
 * does not evaluate (integrals, limits, sums, derivatives, matrix operators) become
 * GN_OPAQUE, so extraction still picks the same answer and the comparison says "unknown".
 */
#include <gmp.h>
#include <stdlib.h>
#include <string.h>

#include "grade_internal.h"
#include "grade_lex.h"

/* ---- nodes -------------------------------------------------------------------------------- */

GNode *gnode_new(GCtx *c, GNodeKind k, int n) {
    if (++c->nodes > c->opt->max_nodes) {
        gctx_limit(c, "expression too large");
        return NULL;
    }
    GNode *x = ga_alloc(c->a, sizeof(GNode));
    if (!x) {
        gctx_limit(c, "memory limit exceeded");
        return NULL;
    }
    x->k = k;
    x->n = n;
    if (n > 0) {
        x->a = ga_alloc(c->a, sizeof(GNode *) * (size_t)n);
        if (!x->a) {
            gctx_limit(c, "memory limit exceeded");
            return NULL;
        }
    }
    return x;
}

static GNode *leaf(GCtx *c, GNodeKind k, const char *s) {
    GNode *x = gnode_new(c, k, 0);
    if (x) x->s = s;
    return x;
}

GNode *gnode_int_str(GCtx *c, const char *digits) { return leaf(c, GN_INT, digits); }

int gnode_is_number(const GNode *x) {
    return x && (x->k == GN_INT || x->k == GN_RAT || x->k == GN_FLOAT);
}
int gnode_is_relational(const GNode *x) { return x && x->k >= GN_EQ && x->k <= GN_GE; }
int gnode_is_set(const GNode *x) {
    return x && (x->k == GN_FSET || x->k == GN_INTERVAL || x->k == GN_UNION || x->k == GN_INTER ||
                 x->k == GN_COMPL || x->k == GN_SETLIT || x->k == GN_EMPTY);
}

int gnode_struct_eq(const GNode *x, const GNode *y) {
    if (x == y) return 1;
    if (!x || !y || x->k != y->k || x->n != y->n) return 0;
    if (x->k == GN_INTERVAL && (x->lo != y->lo || x->ro != y->ro)) return 0;
    if (x->k == GN_MATRIX && (x->rows != y->rows || x->cols != y->cols)) return 0;
    if ((x->s || y->s) && (!x->s || !y->s || strcmp(x->s, y->s) != 0)) {
        if (x->k == GN_FLOAT) { /* same value, different spelling ("0.50" vs "0.5") */
            mpq_t a, b;
            mpq_inits(a, b, NULL);
            int ok = 0;
            if (ge_decimal_to_mpq(a, x->s) && ge_decimal_to_mpq(b, y->s)) ok = mpq_equal(a, b);
            mpq_clears(a, b, NULL);
            return ok;
        }
        return 0;
    }
    if (x->k == GN_FSET) { /* sympy FiniteSet equality does not depend on order */
        for (int i = 0; i < x->n; i++) {
            int f = 0;
            for (int j = 0; j < y->n && !f; j++) f = gnode_struct_eq(x->a[i], y->a[j]);
            if (!f) return 0;
        }
        for (int j = 0; j < y->n; j++) {
            int f = 0;
            for (int i = 0; i < x->n && !f; i++) f = gnode_struct_eq(x->a[i], y->a[j]);
            if (!f) return 0;
        }
        return 1;
    }
    for (int i = 0; i < x->n; i++)
        if (!gnode_struct_eq(x->a[i], y->a[i])) return 0;
    return 1;
}

/* ---- numbers ------------------------------------------------------------------------------ */

static const char *mpz_str(GCtx *c, const mpz_t z) {
    size_t n = mpz_sizeinbase(z, 10) + 2;
    char *s = ga_alloc(c->a, n);
    if (!s) return "0";
    mpz_get_str(s, 10, z);
    return s;
}

static int bits_ok(GCtx *c, const mpz_t z) {
    if (mpz_sizeinbase(z, 2) > (size_t)c->opt->max_bits) {
        gctx_limit(c, "number too large");
        return 0;
    }
    return 1;
}

/* Rational(p, q) of two integer strings: an Integer when q divides p; q == 0 -> zoo */
static GNode *make_rational(GCtx *c, const char *ps, const char *qs) {
    mpq_t q;
    mpq_init(q);
    GNode *x = NULL;
    mpz_set_str(mpq_numref(q), ps, 10);
    mpz_set_str(mpq_denref(q), qs, 10);
    if (mpz_sgn(mpq_denref(q)) == 0) {
        x = leaf(c, GN_CONST, "zoo");
    } else {
        mpq_canonicalize(q);
        if (bits_ok(c, mpq_numref(q)) && bits_ok(c, mpq_denref(q))) {
            if (mpz_cmp_ui(mpq_denref(q), 1) == 0) {
                x = leaf(c, GN_INT, mpz_str(c, mpq_numref(q)));
            } else {
                GStr b;
                gs_init(&b, c->a);
                gs_puts(&b, mpz_str(c, mpq_numref(q)));
                gs_putc(&b, '/');
                gs_puts(&b, mpz_str(c, mpq_denref(q)));
                x = leaf(c, GN_RAT, gs_cstr(&b));
            }
        }
    }
    mpq_clear(q);
    return x;
}

/* numerator / denominator strings of an INT or RAT node */
static void rat_parts(GCtx *c, const GNode *x, const char **p, const char **q) {
    if (x->k == GN_INT) {
        *p = x->s;
        *q = "1";
        return;
    }
    const char *sl = strchr(x->s, '/');
    *p = ga_strndup(c->a, x->s, (size_t)(sl - x->s));
    *q = sl + 1;
}

static int num_sign(const GNode *x) { /* INT/RAT: sign of the value */
    if (x->s[0] == '-') return -1;
    return strcmp(x->s, "0") == 0 ? 0 : 1;
}

static GNode *negate_number(GCtx *c, const GNode *x) {
    if (x->k == GN_CONST) {
        if (strcmp(x->s, "oo") == 0) return leaf(c, GN_CONST, "-oo");
        if (strcmp(x->s, "-oo") == 0) return leaf(c, GN_CONST, "oo");
        return leaf(c, GN_CONST, x->s);
    }
    if (strcmp(x->s, "0") == 0) return leaf(c, x->k, x->s);
    if (x->s[0] == '-') return leaf(c, x->k, x->s + 1);
    GStr b;
    gs_init(&b, c->a);
    gs_putc(&b, '-');
    gs_puts(&b, x->s);
    return leaf(c, x->k, gs_cstr(&b));
}

/* sympy's Number class (Integer, Rational, Float, and oo / -oo / zoo) */
static int is_sympy_number(const GNode *x) {
    return gnode_is_number(x) || (x && x->k == GN_CONST && (strcmp(x->s, "oo") == 0 ||
                                                          strcmp(x->s, "-oo") == 0 ||
                                                          strcmp(x->s, "zoo") == 0));
}

/* sympy.Number(text) of a digits / decimal / E-notation string */
GNode *gp_number(GCtx *c, const char *s) {
    const char *p = s;
    int neg = 0;
    if (*p == '-') neg = 1, p++;
    else if (*p == '+') p++;
    int is_float = strchr(p, '.') || strchr(p, 'E') || strchr(p, 'e');
    for (const char *q = p; *q; q++)
        if (!((*q >= '0' && *q <= '9') || *q == '.' || *q == 'E' || *q == 'e' || *q == '-' ||
              *q == '+'))
            return NULL;
    if (!*p) return NULL;
    if (is_float) return leaf(c, GN_FLOAT, s);
    while (*p == '0' && p[1]) p++;
    if (strlen(p) > (size_t)c->opt->max_bits / 3 + 2) {
        gctx_limit(c, "number too large");
        return NULL;
    }
    if (neg && strcmp(p, "0") != 0) {
        GStr b;
        gs_init(&b, c->a);
        gs_putc(&b, '-');
        gs_puts(&b, p);
        return leaf(c, GN_INT, gs_cstr(&b));
    }
    return leaf(c, GN_INT, p);
}

/* latex2sympy's parse_number: commas dropped, leading zeros of digit strings dropped (and
 * the thin spaces / spaces of grouped digits, see grade_lex.c) */
static GNode *parse_number_text(GCtx *c, const char *s, size_t n) {
    GStr b;
    gs_init(&b, c->a);
    for (size_t i = 0; i < n; i++)
        if (s[i] != ',' && s[i] != '\\' && s[i] != ' ') gs_putc(&b, s[i]);
    return gp_number(c, gs_cstr(&b));
}

/* ---- parser state ------------------------------------------------------------------------- */

typedef struct P {
    GCtx *c;
    GTok *t;
    int nt, pos;
    int conv_err; /* latex2sympy would raise while converting the chosen parse */
} P;

static int peek(P *p) { return p->t[p->pos].type; }
static int peek2(P *p) { return p->pos + 1 <= p->nt ? p->t[p->pos + 1].type : TK_EOF; }
static int accept(P *p, int type) {
    if (p->t[p->pos].type == type) {
        p->pos++;
        return 1;
    }
    return 0;
}

static int step(P *p) {
    if (p->c->limit_hit) return 0;
    if (++p->c->steps > 400000) {
        gctx_limit(p->c, "parser work limit exceeded");
        return 0;
    }
    return 1;
}

#define ENTER()                                                                                \
    do {                                                                                       \
        if (!step(p)) return NULL;                                                             \
        if (++p->c->depth > p->c->opt->max_depth) {                                            \
            p->c->depth--;                                                                     \
            gctx_limit(p->c, "expression nested too deeply");                                  \
            return NULL;                                                                       \
        }                                                                                      \
    } while (0)
#define LEAVE(v)                                                                               \
    do {                                                                                       \
        p->c->depth--;                                                                         \
        return (v);                                                                            \
    } while (0)

typedef struct Mark {
    int pos, conv_err;
} Mark;
static Mark mark(P *p) { return (Mark){p->pos, p->conv_err}; }
static void reset(P *p, Mark m) {
    p->pos = m.pos;
    p->conv_err = m.conv_err;
}

static const char *tok_text(P *p, int i) { return ga_strndup(p->c->a, p->t[i].s, p->t[i].n); }

/* getText() of tokens [from, to): token texts concatenated (whitespace is not a token) */
static const char *span_text(P *p, int from, int to) {
    GStr b;
    gs_init(&b, p->c->a);
    for (int i = from; i < to; i++) gs_putn(&b, p->t[i].s, p->t[i].n);
    return gs_cstr(&b);
}

/* ---- node builders (latex2sympy's conversions) -------------------------------------------- */

static GNode *mk2(P *p, GNodeKind k, GNode *x, GNode *y) {
    if (!x || !y) return NULL;
    GNode *r = gnode_new(p->c, k, 2);
    if (!r) return NULL;
    r->a[0] = x;
    r->a[1] = y;
    return r;
}

static GNode *mk1(P *p, GNodeKind k, GNode *x) {
    if (!x) return NULL;
    GNode *r = gnode_new(p->c, k, 1);
    if (!r) return NULL;
    r->a[0] = x;
    return r;
}

static GNode *func1(P *p, const char *name, GNode *x) {
    GNode *r = mk1(p, GN_FUNC, x);
    if (r) r->s = name;
    return r;
}

static GNode *opaque(P *p, const char *what) { return leaf(p->c, GN_OPAQUE, what); }

static GNode *flat(P *p, GNodeKind k, GNode *x, GNode *y) {
    if (!x || !y) return NULL;
    int nx = x->k == k ? x->n : 1, ny = y->k == k ? y->n : 1;
    GNode *r = gnode_new(p->c, k, nx + ny);
    if (!r) return NULL;
    int j = 0;
    if (x->k == k) for (int i = 0; i < x->n; i++) r->a[j++] = x->a[i];
    else r->a[j++] = x;
    if (y->k == k) for (int i = 0; i < y->n; i++) r->a[j++] = y->a[i];
    else r->a[j++] = y;
    return r;
}

static GNode *minus_one(P *p) { return leaf(p->c, GN_INT, "-1"); }

/* -x as latex2sympy writes it: numbers negated, else Mul(-1, x) flattened */
static GNode *neg(P *p, GNode *x) {
    if (!x) return NULL;
    if (is_sympy_number(x)) return negate_number(p->c, x);
    return flat(p, GN_MUL, minus_one(p), x);
}

static int is_matrix(const GNode *x) { return x && x->k == GN_MATRIX; }

static GNode *divide(P *p, GNode *x, GNode *y) {
    if (!x || !y) return NULL;
    if (is_matrix(x) || is_matrix(y)) return opaque(p, "MatMul");
    if (x->k == GN_INT && y->k == GN_INT) return make_rational(p->c, x->s, y->s);
    return mk2(p, GN_MUL, x, mk2(p, GN_POW, y, minus_one(p)));
}

/* get_symbol(text + subscript) with lowercase_symbols: Greek names, pi / gamma constants */
static const char *const GREEK_MAP[][2] = {
    {"\xce\xb1", "alpha"}, {"\xce\xb2", "beta"}, {"\xce\xb3", "gamma"}, {"\xce\x93", "Gamma"},
    {"\xce\xb4", "delta"}, {"\xce\x94", "Delta"}, {"\xce\xb5", "epsilon"}, {"\xcf\xb5", "varepsilon"},
    {"\xce\xb6", "zeta"}, {"\xce\xb7", "eta"}, {"\xce\xb8", "theta"}, {"\xce\x98", "Theta"},
    {"\xcf\x91", "vartheta"}, {"\xce\xb9", "iota"}, {"\xce\xba", "kappa"}, {"\xce\xbb", "lambda"},
    {"\xce\x9b", "Lambda"}, {"\xce\xbc", "mu"}, {"\xce\xbd", "nu"}, {"\xce\xbe", "xi"},
    {"\xce\x9e", "Xi"}, {"\xce\xbf", "omicron"}, {"\xcf\x80", "pi"}, {"\xce\xa0", "Pi"},
    {"\xcf\x96", "varpi"}, {"\xcf\x81", "rho"}, {"\xcf\xb1", "varrho"}, {"\xcf\x83", "sigma"},
    {"\xce\xa3", "Sigma"}, {"\xcf\x82", "varsigma"}, {"\xcf\x84", "tau"}, {"\xcf\x85", "upsilon"},
    {"\xce\xa5", "Upsilon"}, {"\xcf\x86", "phi"}, {"\xce\xa6", "Phi"}, {"\xcf\x95", "varphi"},
    {"\xcf\x87", "chi"}, {"\xcf\x88", "psi"}, {"\xce\xa8", "Psi"}, {"\xcf\x89", "omega"},
    {"\xce\xa9", "Omega"},
};

static GNode *get_symbol(P *p, const char *text) {
    size_t n;
    const char *s = gu_strip(text, strlen(text), &n);
    char *name = ga_strndup(p->c->a, s, n);
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof GREEK_MAP / sizeof GREEK_MAP[0]; i++)
        if (strcmp(name, GREEK_MAP[i][0]) == 0) name = (char *)GREEK_MAP[i][1];
    if (name[0] == '\\') name++;
    if (strcmp(name, "pi") == 0) return leaf(p->c, GN_CONST, "pi");
    if (strcmp(name, "gamma") == 0 || strcmp(name, "Gamma") == 0)
        return leaf(p->c, GN_CONST, "EulerGamma");
    char *low = ga_strndup(p->c->a, name, strlen(name));
    if (!low) return NULL;
    for (char *q = low; *q; q++)
        if (*q >= 'A' && *q <= 'Z') *q = (char)(*q - 'A' + 'a');
    if (strcmp(low, "pi") == 0) return leaf(p->c, GN_CONST, "pi");
    if (strcmp(low, "gamma") == 0) return leaf(p->c, GN_CONST, "EulerGamma");
    return leaf(p->c, GN_SYM, low);
}

/* ---- grammar ------------------------------------------------------------------------------ */

static GNode *p_expr(P *p);
static GNode *p_mp(P *p, int nofunc);
static GNode *p_unary(P *p, int nofunc);
static GNode *p_atom(P *p, const char **text);
static GNode *p_relation(P *p);
static GNode *p_set_atom(P *p);

typedef struct Groups { /* semicolon_elements: groups of comma elements */
    int ng;
    int *len;
    GNode ***el;
} Groups;

static int p_elements(P *p, int no_relation, const int *closers, Groups *g);

/* subexpr: '_' (atom | '{' (expr | args) '}'); returns the subscript text (getText) */
static int p_subexpr(P *p, const char **text) {
    Mark m = mark(p);
    if (!accept(p, TK_UNDERSCORE)) return 0;
    if (accept(p, TK_LBRACE)) {
        int from = p->pos;
        /* expr | args (expr ',' args): a comma-separated list of exprs */
        for (;;) {
            if (!p_expr(p)) {
                reset(p, m);
                return 0;
            }
            if (!accept(p, TK_COMMA)) break;
        }
        int to = p->pos;
        if (!accept(p, TK_RBRACE)) {
            reset(p, m);
            return 0;
        }
        if (text) *text = span_text(p, from, to);
        return 1;
    }
    int from = p->pos;
    if (!p_atom(p, NULL)) {
        reset(p, m);
        return 0;
    }
    if (text) *text = span_text(p, from, p->pos);
    return 1;
}

/* supexpr: '^' (atom | '{' expr '}') */
static GNode *p_supexpr(P *p) {
    Mark m = mark(p);
    if (!accept(p, TK_CARET)) return NULL;
    GNode *x;
    if (accept(p, TK_LBRACE)) {
        x = p_expr(p);
        if (!x || !accept(p, TK_RBRACE)) {
            reset(p, m);
            return NULL;
        }
        return x;
    }
    x = p_atom(p, NULL);
    if (!x) reset(p, m);
    return x;
}

/* the name part of atom_expr: LETTER | GREEK | OTHER_SYMBOL | ACCENT */
static int is_atom_expr_start(int t) {
    return t == TK_LETTER || t == TK_GREEK || t == TK_OTHER_SYMBOL || t == TK_ACCENT;
}

static const char *accent_text(P *p, const GTok *tk) {
    /* "\cmd{body}" (an optional space before '{') -> latex2sympy's atom text */
    const char *s = tk->s;
    size_t n = tk->n;
    size_t brace = 0;
    while (brace < n && s[brace] != '{') brace++;
    const char *name = s + 1;
    size_t name_n = brace - 1;
    while (name_n > 0 && (name[name_n - 1] == ' ' || name[name_n - 1] == '\t' ||
                          name[name_n - 1] == '\n' || name[name_n - 1] == '\r'))
        name_n--;
    GStr body;
    gs_init(&body, p->c->a);
    for (size_t i = brace + 1; i + 1 < n; i++)
        if (s[i] != ' ') gs_putc(&body, s[i]);
    char nm[32];
    if (name_n >= sizeof nm) name_n = sizeof nm - 1;
    memcpy(nm, name, name_n);
    nm[name_n] = '\0';
    const char *acc = nm;
    if (!strcmp(nm, "bar") || !strcmp(nm, "overline")) acc = "bar";
    else if (!strcmp(nm, "vec") || !strcmp(nm, "overrightarrow")) acc = "vec";
    else if (!strcmp(nm, "tilde") || !strcmp(nm, "widetilde")) acc = "tilde";
    else if (strstr(nm, "text") || strstr(nm, "mbox")) {
        GStr b;
        gs_init(&b, p->c->a);
        for (const char *q = gs_cstr(&body); *q; q++)
            if (*q != '(' && *q != ')') gs_putc(&b, *q);
        return gs_cstr(&b);
    } else if (strstr(nm, "math")) acc = "math";
    GStr b;
    gs_init(&b, p->c->a);
    gs_puts(&b, acc);
    gs_putc(&b, '{');
    gs_puts(&b, gs_cstr(&body));
    gs_putc(&b, '}');
    return gs_cstr(&b);
}

/* atom_expr: name (supexpr subexpr | subexpr supexpr | subexpr | supexpr)? */
static GNode *p_atom_expr(P *p) {
    ENTER();
    int t = peek(p);
    if (!is_atom_expr_start(t)) LEAVE(NULL);
    GTok tk = p->t[p->pos++];
    const char *name;
    int is_I = 0;
    if (t == TK_LETTER) {
        name = tok_text(p, p->pos - 1);
        is_I = tk.n == 1 && tk.s[0] == 'I';
    } else if (t == TK_ACCENT) {
        name = accent_text(p, &tk);
    } else {
        name = tok_text(p, p->pos - 1);
    }
    const char *sub = NULL;
    GNode *sup = NULL;
    if (peek(p) == TK_CARET) {
        sup = p_supexpr(p);
        if (sup) p_subexpr(p, &sub);
    } else if (peek(p) == TK_UNDERSCORE) {
        if (p_subexpr(p, &sub)) sup = p_supexpr(p);
    }
    if (is_I) LEAVE(leaf(p->c, GN_CONST, "I"));
    GStr b;
    gs_init(&b, p->c->a);
    size_t nn;
    const char *ns = gu_strip(name, strlen(name), &nn);
    gs_putn(&b, ns, nn);
    if (sub) {
        if (gu_count_cp(sub, strlen(sub)) > 1) {
            gs_puts(&b, "_{");
            gs_puts(&b, sub);
            gs_putc(&b, '}');
        } else {
            gs_putc(&b, '_');
            gs_puts(&b, sub);
        }
    }
    GNode *sym = get_symbol(p, gs_cstr(&b));
    if (sup) LEAVE(mk2(p, GN_POW, sym, sup));
    LEAVE(sym);
}

/* atom: atom_expr | SYMBOL | NUMBER subexpr? | PERCENT_NUMBER | E_NOTATION | 'E' |
 *       DIFFERENTIAL | FUNC_GAMMA */
static GNode *p_atom(P *p, const char **text) {
    ENTER();
    int t = peek(p), from = p->pos;
    GNode *x = NULL;
    if (is_atom_expr_start(t)) {
        x = p_atom_expr(p);
    } else if (t == TK_SYMBOL) {
        const GTok *tk = &p->t[p->pos++];
        if (tk->n >= 8 && memcmp(tk->s, "\\partial", 8) == 0) {
            p->conv_err = 1; /* "Unrecognized symbol" */
            x = leaf(p->c, GN_CONST, "oo");
        } else {
            x = leaf(p->c, GN_CONST, "oo");
        }
    } else if (t == TK_NUMBER) {
        const GTok *tk = &p->t[p->pos++];
        x = parse_number_text(p->c, tk->s, tk->n);
        if (peek(p) == TK_UNDERSCORE) p_subexpr(p, NULL); /* ignored */
    } else if (t == TK_PERCENT_NUMBER) {
        const GTok *tk = &p->t[p->pos++];
        GStr b;
        gs_init(&b, p->c->a);
        for (size_t i = 0; i < tk->n; i++) {
            char ch = tk->s[i];
            if ((ch >= '0' && ch <= '9') || ch == '.') gs_putc(&b, ch);
        }
        GNode *num = gp_number(p->c, gs_cstr(&b));
        x = mk1(p, GN_PCT, num);
    } else if (t == TK_E_NOTATION) {
        const GTok *tk = &p->t[p->pos++];
        GStr b;
        gs_init(&b, p->c->a);
        for (size_t i = 0; i < tk->n; i++) {
            /* unicode minus / plus signs of the lexer rule */
            if ((unsigned char)tk->s[i] == 0xE2 && i + 2 < tk->n) {
                gs_putc(&b, (unsigned char)tk->s[i + 2] == 0x92 || (unsigned char)tk->s[i + 2] == 0xB8 ? '-' : '+');
                i += 2;
            } else {
                gs_putc(&b, tk->s[i]);
            }
        }
        x = gp_number(p->c, gs_cstr(&b));
    } else if (t == TK_E_NOTATION_E) {
        p->pos++;
        x = leaf(p->c, GN_SYM, "e");
    } else if (t == TK_DIFFERENTIAL) {
        const GTok *tk = &p->t[p->pos++];
        size_t i = 1;
        while (i < tk->n && (tk->s[i] == ' ' || tk->s[i] == '\t' || tk->s[i] == '\n' || tk->s[i] == '\r')) i++;
        if (i < tk->n && tk->s[i] == '\\') i++;
        GStr b;
        gs_init(&b, p->c->a);
        gs_putc(&b, 'd');
        gs_putn(&b, tk->s + i, tk->n - i);
        x = leaf(p->c, GN_SYM, gs_cstr(&b));
    } else if (t == TK_FUNC_GAMMA) {
        p->pos++;
        x = leaf(p->c, GN_CONST, "EulerGamma");
    } else {
        LEAVE(NULL);
    }
    if (!x) {
        p->pos = from;
        LEAVE(NULL);
    }
    if (text) *text = span_text(p, from, p->pos);
    LEAVE(x);
}

/* closing token of a group opened by t (or -1) */
static int group_closer(int t) {
    switch (t) {
    case TK_LPAREN: return TK_RPAREN;
    case TK_LGROUP: return TK_RGROUP;
    case TK_LBRACE: return TK_RBRACE;
    case TK_LBRACKET: return TK_RBRACKET;
    case TK_LBRACE_VIS: return TK_RBRACE_VIS;
    case TK_LBRACE_CMD: return TK_RBRACE_CMD;
    case TK_LBRACK: return TK_RBRACK;
    default: return -1;
    }
}

/* open delimiter, expr, close delimiter */
static GNode *p_wrapped(P *p, int open, int close) {
    Mark m = mark(p);
    if (!accept(p, open)) return NULL;
    GNode *x = p_expr(p);
    if (!x || !accept(p, close)) {
        reset(p, m);
        return NULL;
    }
    return x;
}

/* '{' expr '}' */
static GNode *p_braced(P *p) { return p_wrapped(p, TK_LBRACE, TK_RBRACE); }

static GNode *p_func_arg_noparens(P *p) { return p_mp(p, 1); }

/* func_normal_single_arg / multi_arg heads, the sub/sup part and the argument(s) */
static GNode *p_func_named(P *p) {
    Mark m = mark(p);
    int t = peek(p);
    const char *name = NULL;
    int multi = 0;
    if (t == TK_FUNC1 || t == TK_FUNC_GAMMA) {
        name = tok_text(p, p->pos) + 1;
        p->pos++;
    } else if (t == TK_FUNC_MULTI) {
        name = tok_text(p, p->pos) + 1;
        multi = 1;
        p->pos++;
    } else if (t == TK_OPERATORNAME && peek2(p) == TK_LBRACE) {
        p->pos += 2;
        int ot = peek(p);
        if (ot != TK_OPNAME1 && ot != TK_OPNAME_MULTI) {
            reset(p, m);
            return NULL;
        }
        multi = ot == TK_OPNAME_MULTI;
        const char *on = tok_text(p, p->pos);
        p->pos++;
        if (!accept(p, TK_RBRACE)) {
            reset(p, m);
            return NULL;
        }
        GStr b;
        gs_init(&b, p->c->a);
        gs_puts(&b, "operatorname:");
        gs_puts(&b, on);
        name = gs_cstr(&b);
    } else {
        return NULL;
    }
    /* (subexpr? supexpr? | supexpr? subexpr?) */
    const char *sub_text = NULL;
    GNode *sub_node = NULL, *sup = NULL;
    int sub_from = -1, sub_to = -1;
    for (int k = 0; k < 2; k++) {
        if (peek(p) == TK_UNDERSCORE && sub_from < 0) {
            Mark ms = mark(p);
            sub_from = p->pos + 1;
            if (!p_subexpr(p, &sub_text)) {
                reset(p, ms);
                sub_from = -1;
                break;
            }
            sub_to = p->pos;
        } else if (peek(p) == TK_CARET && !sup) {
            sup = p_supexpr(p);
            if (!sup) break;
        }
    }
    if (sub_from >= 0) {
        /* the base of a logarithm: atom or {expr} */
        P q = *p;
        q.pos = sub_from;
        if (q.t[q.pos].type == TK_LBRACE) {
            q.pos++;
            sub_node = p_expr(&q);
        } else {
            sub_node = p_atom(&q, NULL);
        }
        (void)sub_to;
    }
    GNode *args[16];
    int nargs = 0;
    if (peek(p) == TK_LPAREN) {
        Mark mp = mark(p);
        p->pos++;
        for (;;) {
            GNode *a = p_expr(p);
            if (!a || nargs >= 16) {
                nargs = -1;
                break;
            }
            args[nargs++] = a;
            if (!multi || !accept(p, TK_COMMA)) break;
        }
        if (nargs < 0 || !accept(p, TK_RPAREN)) {
            reset(p, mp);
            nargs = 0;
        }
    }
    if (nargs == 0) {
        GNode *a = p_func_arg_noparens(p);
        if (!a) {
            reset(p, m);
            return NULL;
        }
        args[nargs++] = a;
    }
    /* conversion (latex2sympy convert_func) */
    GNode *r = NULL;
    if (multi) {
        const char *fn = name;
        if (!strncmp(fn, "operatorname:", 13)) fn += 13;
        if (!strcmp(fn, "gcd") || !strcmp(fn, "lcm") || !strcmp(fn, "max") || !strcmp(fn, "min")) {
            r = gnode_new(p->c, GN_FUNC, nargs);
            if (!r) return NULL;
            r->s = fn;
            for (int i = 0; i < nargs; i++) r->a[i] = args[i];
        } else {
            r = opaque(p, fn);
        }
    } else {
        GNode *arg = args[0];
        const char *fn = name;
        if (!strncmp(fn, "operatorname:", 13)) {
            fn += 13;
            if (!strcmp(fn, "arsinh") || !strcmp(fn, "arcsinh")) fn = "asinh";
            else if (!strcmp(fn, "arcosh") || !strcmp(fn, "arccosh")) fn = "acosh";
            else if (!strcmp(fn, "artanh") || !strcmp(fn, "arctanh")) fn = "atanh";
            else if (!strcmp(fn, "floor") || !strcmp(fn, "ceil")) fn = !strcmp(fn, "ceil") ? "ceiling" : "floor";
            else {
                /* matrix operators (rank, trace, eye, ...): not evaluated here */
                r = opaque(p, fn);
            }
            if (!r) r = func1(p, fn, arg);
        } else if (!strncmp(fn, "arc", 3) && (!strcmp(fn + 3, "sin") || !strcmp(fn + 3, "cos") ||
                                              !strcmp(fn + 3, "tan") || !strcmp(fn + 3, "csc") ||
                                              !strcmp(fn + 3, "sec") || !strcmp(fn + 3, "cot"))) {
            GStr b;
            gs_init(&b, p->c->a);
            gs_putc(&b, 'a');
            gs_puts(&b, fn + 3);
            r = func1(p, gs_cstr(&b), arg);
        } else if (!strcmp(fn, "arsinh") || !strcmp(fn, "arcsinh")) r = func1(p, "asinh", arg);
        else if (!strcmp(fn, "arcosh") || !strcmp(fn, "arccosh")) r = func1(p, "acosh", arg);
        else if (!strcmp(fn, "artanh") || !strcmp(fn, "arctanh")) r = func1(p, "atanh", arg);
        else if (!strcmp(fn, "log") || !strcmp(fn, "ln")) {
            GNode *base = sub_node ? sub_node
                                   : (!strcmp(fn, "log") ? leaf(p->c, GN_INT, "10") : leaf(p->c, GN_CONST, "E"));
            r = mk2(p, GN_FUNC, arg, base);
            if (r) r->s = "log";
        } else if (!strcmp(fn, "exp")) r = func1(p, "exp", arg);
        else if (!strcmp(fn, "floor")) r = func1(p, "floor", arg);
        else if (!strcmp(fn, "ceil")) r = func1(p, "ceiling", arg);
        else if (!strcmp(fn, "det")) {
            if (arg->k == GN_MATRIX) r = opaque(p, "det");
            else p->conv_err = 1, r = arg;
        } else if (!strcmp(fn, "Gamma") || !strcmp(fn, "gamma")) r = func1(p, "gamma", arg);
        else {
            /* sin .. cot, sinh .. tanh: f^{-1} is the inverse */
            const char *f = fn;
            if (sup && sup->k == GN_INT && !strcmp(sup->s, "-1")) {
                GStr b;
                gs_init(&b, p->c->a);
                gs_putc(&b, 'a');
                gs_puts(&b, fn);
                f = gs_cstr(&b);
                sup = NULL;
            }
            r = func1(p, f, arg);
        }
    }
    if (r && sup && !(sup->k == GN_INT && !strcmp(sup->s, "0"))) r = mk2(p, GN_POW, r, sup);
    return r;
}

/* func_common_args: atom | expr ',' | expr ',' args */
static int p_common_args(P *p, int close, GNode **args, int *nargs) {
    Mark m = mark(p);
    GNode *a = p_atom(p, NULL);
    if (a && peek(p) == close) {
        args[0] = a;
        *nargs = 1;
        return 1;
    }
    reset(p, m);
    int n = 0;
    GNode *e = p_expr(p);
    if (!e || !accept(p, TK_COMMA)) {
        reset(p, m);
        return 0;
    }
    args[n++] = e;
    while (peek(p) != close) {
        GNode *x = p_expr(p);
        if (!x || n >= 16) {
            reset(p, m);
            return 0;
        }
        args[n++] = x;
        if (!accept(p, TK_COMMA)) break;
    }
    *nargs = n;
    return 1;
}

/* atom_expr_no_supexpr supexpr? ( '(' args ')' | '[' args ']' | '{(' args ')}' | '{[' args ']}' ) */
static GNode *p_func_user(P *p) {
    Mark m = mark(p);
    if (!is_atom_expr_start(peek(p))) return NULL;
    int from = p->pos;
    p->pos++;
    if (peek(p) == TK_UNDERSCORE && !p_subexpr(p, NULL)) {
        reset(p, m);
        return NULL;
    }
    const char *name = span_text(p, from, p->pos);
    GNode *sup = NULL;
    if (peek(p) == TK_CARET) {
        sup = p_supexpr(p);
        if (!sup) {
            reset(p, m);
            return NULL;
        }
    }
    int open = peek(p), inner = -1, close, close2 = -1;
    if (open == TK_LPAREN) close = TK_RPAREN;
    else if (open == TK_LBRACKET) close = TK_RBRACKET;
    else if (open == TK_LBRACE && (peek2(p) == TK_LPAREN || peek2(p) == TK_LBRACKET)) {
        inner = peek2(p);
        close = inner == TK_LPAREN ? TK_RPAREN : TK_RBRACKET;
        close2 = TK_RBRACE;
    } else {
        reset(p, m);
        return NULL;
    }
    p->pos += inner >= 0 ? 2 : 1;
    GNode *args[16];
    int nargs = 0;
    if (!p_common_args(p, close, args, &nargs) || !accept(p, close) ||
        (close2 >= 0 && !accept(p, close2))) {
        reset(p, m);
        return NULL;
    }
    GNode *r = gnode_new(p->c, GN_FUNC, nargs);
    if (!r) return NULL;
    GStr b;
    gs_init(&b, p->c->a);
    gs_puts(&b, "uf:");
    gs_puts(&b, name);
    r->s = gs_cstr(&b);
    for (int i = 0; i < nargs; i++) r->a[i] = args[i];
    if (sup) r = mk2(p, GN_POW, r, sup);
    return r;
}

/* equality: expr (EQUAL | ASSIGN) expr (sum/product lower bound) */
static int p_equality(P *p) {
    if (!p_expr(p)) return 0;
    if (!accept(p, TK_EQUAL) && !accept(p, TK_ASSIGN)) return 0;
    return p_expr(p) != NULL;
}

static GNode *p_func(P *p) {
    ENTER();
    int t = peek(p);
    Mark m = mark(p);
    GNode *x = NULL;
    if (t == TK_FUNC1 || t == TK_FUNC_GAMMA || t == TK_FUNC_MULTI || t == TK_OPERATORNAME) {
        x = p_func_named(p);
        LEAVE(x);
    }
    if (is_atom_expr_start(t)) LEAVE(p_func_user(p));
    if (t == TK_SQRT) {
        p->pos++;
        GNode *root = NULL;
        if (peek(p) == TK_LBRACKET) {
            root = p_wrapped(p, TK_LBRACKET, TK_RBRACKET);
            if (!root) {
                reset(p, m);
                LEAVE(NULL);
            }
        }
        GNode *base = p_braced(p);
        if (!base) {
            reset(p, m);
            LEAVE(NULL);
        }
        GNode *e = root ? divide(p, leaf(p->c, GN_INT, "1"), root) : make_rational(p->c, "1", "2");
        LEAVE(mk2(p, GN_POW, base, e));
    }
    if (t == TK_SUM || t == TK_PROD) {
        p->pos++;
        /* (subeq supexpr | supexpr subeq) mp */
        int ok = 0;
        for (int order = 0; order < 2 && !ok; order++) {
            Mark mm = mark(p);
            int good = 1;
            for (int k = 0; k < 2 && good; k++) {
                if ((k == 0) == (order == 0)) {
                    good = accept(p, TK_UNDERSCORE) && accept(p, TK_LBRACE) && p_equality(p) &&
                           accept(p, TK_RBRACE);
                } else {
                    good = p_supexpr(p) != NULL;
                }
            }
            if (good && p_mp(p, 0)) ok = 1;
            else reset(p, mm);
        }
        if (!ok) {
            reset(p, m);
            LEAVE(NULL);
        }
        LEAVE(opaque(p, t == TK_SUM ? "Sum" : "Product"));
    }
    if (t == TK_LIM) {
        p->pos++;
        int ok = accept(p, TK_UNDERSCORE) && accept(p, TK_LBRACE);
        if (ok) {
            int v = peek(p);
            ok = (v == TK_LETTER || v == TK_GREEK || v == TK_OTHER_SYMBOL);
            if (ok) p->pos++;
        }
        ok = ok && accept(p, TK_LIM_APPROACH) && p_expr(p);
        if (ok && peek(p) == TK_CARET) {
            ok = accept(p, TK_CARET) && accept(p, TK_LBRACE) &&
                 (accept(p, TK_ADD) || accept(p, TK_SUB)) && accept(p, TK_RBRACE);
        }
        ok = ok && accept(p, TK_RBRACE) && p_mp(p, 0);
        if (!ok) {
            reset(p, m);
            LEAVE(NULL);
        }
        LEAVE(opaque(p, "Limit"));
    }
    if (t == TK_INT) {
        p->pos++;
        /* bounds (optional), then integrand: additive? DIFFERENTIAL | frac | additive */
        if (peek(p) == TK_UNDERSCORE || peek(p) == TK_CARET) {
            for (int k = 0; k < 2; k++) {
                if (peek(p) == TK_UNDERSCORE) {
                    if (peek2(p) == TK_LBRACE && p->t[p->pos + 2].type == TK_RBRACE) p->pos += 3;
                    else if (!p_subexpr(p, NULL)) {
                        reset(p, m);
                        LEAVE(NULL);
                    }
                } else if (peek(p) == TK_CARET) {
                    if (peek2(p) == TK_LBRACE && p->t[p->pos + 2].type == TK_RBRACE) p->pos += 3;
                    else if (!p_supexpr(p)) {
                        reset(p, m);
                        LEAVE(NULL);
                    }
                }
            }
        }
        Mark mi = mark(p);
        if (p_expr(p) && accept(p, TK_DIFFERENTIAL)) LEAVE(opaque(p, "Integral"));
        reset(p, mi);
        if (accept(p, TK_DIFFERENTIAL)) LEAVE(opaque(p, "Integral"));
        if (p_expr(p)) LEAVE(opaque(p, "Integral"));
        reset(p, m);
        LEAVE(NULL);
    }
    if (t == TK_EXP_E) {
        p->pos++;
        GNode *sup = NULL;
        if (peek(p) == TK_CARET) sup = p_supexpr(p);
        if (sup) LEAVE(func1(p, "exp", sup));
        LEAVE(leaf(p->c, GN_CONST, "E"));
    }
    LEAVE(NULL);
}

/* frac: \frac{expr}{expr} (derivatives d/dx -> opaque) */
static GNode *p_frac(P *p) {
    Mark m = mark(p);
    if (!accept(p, TK_FRAC)) return NULL;
    int up_from = p->pos + 1;
    GNode *top = p_braced(p);
    int up_to = p->pos - 1;
    if (!top) {
        reset(p, m);
        return NULL;
    }
    int lo_from = p->pos + 1;
    GNode *bot = p_braced(p);
    int lo_to = p->pos - 1;
    if (!bot) {
        reset(p, m);
        return NULL;
    }
    /* d/dx, \partial/\partial x */
    if (lo_to - lo_from == 1 && p->t[lo_from].type == TK_DIFFERENTIAL) return opaque(p, "Derivative");
    if (lo_to - lo_from == 2 && p->t[lo_from].type == TK_SYMBOL && p->t[lo_from].n >= 8 &&
        !memcmp(p->t[lo_from].s, "\\partial", 8))
        return opaque(p, "Derivative");
    (void)up_from;
    (void)up_to;
    return divide(p, top, bot);
}

static GNode *p_binom(P *p) {
    Mark m = mark(p);
    GNode *top, *bot;
    if (accept(p, TK_BINOM)) {
        top = p_braced(p);
        bot = top ? p_braced(p) : NULL;
    } else if (accept(p, TK_LBRACE)) {
        top = p_expr(p);
        bot = top && accept(p, TK_CHOOSE) ? p_expr(p) : NULL;
        if (bot && !accept(p, TK_RBRACE)) bot = NULL;
    } else {
        return NULL;
    }
    if (!top || !bot) {
        reset(p, m);
        return NULL;
    }
    GNode *r = mk2(p, GN_FUNC, top, bot);
    if (r) r->s = "binomial";
    return r;
}

/* matrix / det: rows of '&'-separated exprs */
static GNode *p_matrix(P *p) {
    Mark m = mark(p);
    int t = peek(p), end;
    if (t == TK_MATRIX_START) end = TK_MATRIX_END;
    else if (t == TK_ARRAY_START) end = TK_ARRAY_END;
    else if (t == TK_DET_START) end = TK_DET_END;
    else return NULL;
    p->pos++;
    GNode *cells[1024];
    int nc = 0, rows = 0, cols = -1;
    for (;;) {
        int rc = 0;
        for (;;) {
            GNode *x = p_expr(p);
            if (!x || nc >= 1024) {
                reset(p, m);
                return NULL;
            }
            cells[nc++] = x;
            rc++;
            if (!accept(p, TK_AMP)) break;
        }
        rows++;
        if (cols < 0) cols = rc;
        else if (cols != rc) p->conv_err = 1; /* sympy.Matrix of ragged rows raises */
        if (accept(p, TK_ROWSEP)) {
            if (peek(p) == end) break;
            continue;
        }
        break;
    }
    if (!accept(p, end)) {
        reset(p, m);
        return NULL;
    }
    if (peek(p) == TK_UNSUPPORTED) { /* \xrightarrow elementary transforms */
        reset(p, m);
        return NULL;
    }
    if (t == TK_DET_START) return opaque(p, "det");
    GNode *r = gnode_new(p->c, GN_MATRIX, nc);
    if (!r) return NULL;
    r->rows = rows;
    r->cols = cols;
    for (int i = 0; i < nc; i++) r->a[i] = cells[i];
    return r;
}

static GNode *p_comp(P *p, int nofunc) {
    ENTER();
    int t = peek(p);
    Mark m = mark(p);
    GNode *x;
    /* group */
    int close = group_closer(t);
    if (close >= 0) {
        x = p_wrapped(p, t, close);
        if (x) LEAVE(x);
    }
    /* formatting_group: \phantom{expr} | \boxed{expr} */
    if (t == TK_PHANTOM || t == TK_BOXED) {
        p->pos++;
        x = p_braced(p);
        if (x) LEAVE(x);
        reset(p, m);
    }
    if (t == TK_NORM) {
        x = p_wrapped(p, TK_NORM, TK_NORM);
        if (x) {
            p->conv_err = 1; /* .norm() of a scalar raises */
            LEAVE(x);
        }
    }
    if (t == TK_BAR || t == TK_LVERT || t == TK_VERT) {
        x = p_wrapped(p, t, t == TK_LVERT ? TK_RVERT : t);
        if (x) LEAVE(func1(p, "Abs", x));
    }
    if (t == TK_LANGLE) {
        x = p_wrapped(p, TK_LANGLE, TK_RANGLE);
        if (x) {
            p->conv_err = 1; /* latex2sympy has no conversion for it */
            LEAVE(x);
        }
    }
    if (t == TK_LFLOOR) {
        x = p_wrapped(p, TK_LFLOOR, TK_RFLOOR);
        if (x) LEAVE(func1(p, "floor", x));
    }
    if (t == TK_LCEIL) {
        x = p_wrapped(p, TK_LCEIL, TK_RCEIL);
        if (x) LEAVE(func1(p, "ceiling", x));
    }
    if (!nofunc) {
        x = p_func(p);
        if (x) LEAVE(x);
        reset(p, m);
    }
    x = p_atom(p, NULL);
    if (x) LEAVE(x);
    x = p_frac(p);
    if (x) LEAVE(x);
    x = p_binom(p);
    if (x) LEAVE(x);
    x = p_matrix(p);
    if (x) LEAVE(x);
    reset(p, m);
    LEAVE(NULL);
}

/* exp: comp (CARET (atom | '{' expr '}') subexpr?)* */
static GNode *p_exp(P *p, int nofunc) {
    ENTER();
    GNode *x = p_comp(p, nofunc);
    if (!x) LEAVE(NULL);
    while (peek(p) == TK_CARET) {
        Mark m = mark(p);
        GNode *e = p_supexpr(p);
        if (!e) {
            reset(p, m);
            break;
        }
        if (peek(p) == TK_UNDERSCORE) p_subexpr(p, NULL);
        if (is_matrix(x)) x = opaque(p, "MatPow");
        else x = mk2(p, GN_POW, x, e);
        if (!x) LEAVE(NULL);
    }
    LEAVE(x);
}

/* postfix: exp (BANG | transpose | degree)* */
static GNode *p_postfix(P *p, int nofunc) {
    ENTER();
    GNode *x = p_exp(p, nofunc);
    if (!x) LEAVE(NULL);
    for (;;) {
        int t = peek(p);
        if (t == TK_BANG) {
            p->pos++;
            x = func1(p, "factorial", x);
        } else if (t == TK_TRANSPOSE) {
            p->pos++;
            if (is_matrix(x)) x = opaque(p, "Transpose");
        } else if (t == TK_DEGREE) {
            p->pos++; /* convert_degrees=False: ignored */
        } else {
            break;
        }
        if (!x) LEAVE(NULL);
    }
    LEAVE(x);
}

static int can_start_postfix(int t) {
    switch (t) {
    case TK_LPAREN: case TK_LGROUP: case TK_LBRACE: case TK_LBRACKET: case TK_LBRACE_VIS:
    case TK_LBRACE_CMD: case TK_LBRACK: case TK_PHANTOM: case TK_BOXED: case TK_NORM:
    case TK_BAR: case TK_LVERT: case TK_VERT: case TK_LANGLE: case TK_LFLOOR: case TK_LCEIL:
    case TK_FUNC1: case TK_FUNC_GAMMA: case TK_FUNC_MULTI: case TK_OPERATORNAME: case TK_SQRT:
    case TK_SUM: case TK_PROD: case TK_LIM: case TK_INT: case TK_EXP_E: case TK_LETTER:
    case TK_GREEK: case TK_OTHER_SYMBOL: case TK_ACCENT: case TK_SYMBOL: case TK_NUMBER:
    case TK_PERCENT_NUMBER: case TK_E_NOTATION: case TK_E_NOTATION_E: case TK_DIFFERENTIAL:
    case TK_FRAC: case TK_BINOM: case TK_MATRIX_START: case TK_ARRAY_START: case TK_DET_START:
        return 1;
    default:
        return 0;
    }
}

/* convert_postfix_list: res * rest, with the mixed-fraction rule for Integer followed by a
 * positive Rational */
static GNode *postfix_list(P *p, GNode **xs, int n) {
    GNode *res = xs[0];
    if (n == 1 || !res) return res;
    GNode *rh = postfix_list(p, xs + 1, n - 1);
    if (!rh) return NULL;
    if (is_matrix(res) || is_matrix(rh)) return opaque(p, "MatMul");
    if (res->k == GN_INT && (rh->k == GN_INT || rh->k == GN_RAT) && num_sign(rh) > 0) {
        const char *rp, *rq;
        rat_parts(p->c, rh, &rp, &rq);
        mpz_t a, q, pp;
        mpz_inits(a, q, pp, NULL);
        mpz_set_str(a, res->s, 10);
        mpz_set_str(q, rq, 10);
        mpz_set_str(pp, rp, 10);
        mpz_mul(a, a, q);
        if (num_sign(res) < 0) mpz_sub(a, a, pp);
        else mpz_add(a, a, pp);
        const char *num = mpz_str(p->c, a);
        mpz_clears(a, q, pp, NULL);
        return make_rational(p->c, num, rq);
    }
    return flat(p, GN_MUL, res, rh);
}

/* unary: (+|-) unary | postfix+ ; unary_nofunc: (+|-) unary_nofunc | postfix postfix_nofunc* */
static GNode *p_unary(P *p, int nofunc) {
    ENTER();
    if (accept(p, TK_ADD)) LEAVE(p_unary(p, nofunc));
    if (accept(p, TK_SUB)) {
        GNode *x = p_unary(p, nofunc);
        if (!x) LEAVE(NULL);
        if (is_matrix(x)) LEAVE(opaque(p, "MatMul"));
        LEAVE(neg(p, x));
    }
    GNode *xs[256];
    int n = 0;
    GNode *first = p_postfix(p, 0);
    if (!first) LEAVE(NULL);
    xs[n++] = first;
    while (can_start_postfix(peek(p))) {
        Mark m = mark(p);
        GNode *x = p_postfix(p, nofunc);
        if (!x) {
            reset(p, m);
            break;
        }
        if (n >= 256) {
            gctx_limit(p->c, "expression too large");
            LEAVE(NULL);
        }
        xs[n++] = x;
    }
    LEAVE(postfix_list(p, xs, n));
}

/* mp: unary ((* | \times | \cdot | / | \div | : | \mod) unary)* */
static GNode *p_mp(P *p, int nofunc) {
    ENTER();
    GNode *x = p_unary(p, nofunc);
    if (!x) LEAVE(NULL);
    for (;;) {
        int t = peek(p);
        if (t != TK_MUL && t != TK_TIMES && t != TK_CDOT && t != TK_DIV && t != TK_CMD_DIV &&
            t != TK_COLON && t != TK_MOD)
            break;
        Mark m = mark(p);
        p->pos++;
        GNode *y = p_unary(p, nofunc);
        if (!y) {
            reset(p, m);
            break;
        }
        if (t == TK_MUL || t == TK_TIMES || t == TK_CDOT) {
            x = (is_matrix(x) || is_matrix(y)) ? opaque(p, "MatMul") : flat(p, GN_MUL, x, y);
        } else if (t == TK_MOD) {
            if (is_matrix(y)) p->conv_err = 1;
            x = mk2(p, GN_FUNC, x, y);
            if (x) x->s = "Mod";
        } else {
            x = divide(p, x, y);
        }
        if (!x) LEAVE(NULL);
    }
    LEAVE(x);
}

/* additive: mp ((+|-) mp)* */
static GNode *p_expr(P *p) {
    ENTER();
    GNode *x = p_mp(p, 0);
    if (!x) LEAVE(NULL);
    for (;;) {
        int t = peek(p);
        if (t != TK_ADD && t != TK_SUB) break;
        Mark m = mark(p);
        p->pos++;
        GNode *y = p_mp(p, 0);
        if (!y) {
            reset(p, m);
            break;
        }
        if (is_matrix(x) || is_matrix(y)) {
            x = opaque(p, "MatAdd");
        } else if (t == TK_ADD) {
            x = flat(p, GN_ADD, x, y);
        } else {
            x = flat(p, GN_ADD, x, is_sympy_number(y) ? negate_number(p->c, y) : flat(p, GN_MUL, minus_one(p), y));
        }
        if (!x) LEAVE(NULL);
    }
    LEAVE(x);
}

static int is_relop(int t) {
    return t == TK_IN || t == TK_ASSIGN || t == TK_EQUAL || t == TK_APPROX || t == TK_LT ||
           t == TK_LTE || t == TK_GT || t == TK_GTE || t == TK_UNEQUAL;
}

/* is_expr_of_only_symbols (latex2sympy) */
static int only_symbols(const GNode *x) {
    if (!x) return 0;
    if (x->k == GN_SYM) return 1;
    if (x->k == GN_POW && x->a[1]->k == GN_INT && !strcmp(x->a[1]->s, "-1") &&
        (x->a[0]->k == GN_SYM || (x->a[0]->n > 0 && only_symbols(x->a[0]))))
        return 1;
    if (x->k == GN_INT || x->k == GN_RAT || x->k == GN_FLOAT || x->k == GN_CONST) return 0;
    if (x->n > 0) {
        for (int i = 0; i < x->n; i++)
            if (!only_symbols(x->a[i])) return 0;
        return 1;
    }
    return 0;
}

static GNodeKind rel_kind(int t) {
    switch (t) {
    case TK_LT: return GN_LT;
    case TK_LTE: return GN_LE;
    case TK_GT: return GN_GT;
    case TK_GTE: return GN_GE;
    case TK_UNEQUAL: return GN_NE;
    default: return GN_EQ;
    }
}

/* relation: expr (relop expr)* with latex2sympy's chaining into And */
static GNode *p_relation(P *p) {
    ENTER();
    GNode *lh = p_expr(p);
    if (!lh) LEAVE(NULL);
    while (is_relop(peek(p))) {
        Mark m = mark(p);
        int t = peek(p);
        p->pos++;
        GNode *rh = p_expr(p);
        if (!rh) {
            reset(p, m);
            break;
        }
        if (t == TK_APPROX) {
            lh = only_symbols(lh) ? rh : lh;
            continue;
        }
        if (t == TK_IN) {
            p->conv_err = 1; /* 'Unrecognized relation' */
            continue;
        }
        GNodeKind k = rel_kind(t);
        if (lh->k == GN_AND) {
            GNode *last = lh->a[lh->n - 1];
            GNode *r = mk2(p, k, last->a[1], rh);
            GNode *a = gnode_new(p->c, GN_AND, lh->n + 1);
            if (!a || !r) LEAVE(NULL);
            for (int i = 0; i < lh->n; i++) a->a[i] = lh->a[i];
            a->a[lh->n] = r;
            lh = a;
        } else if (gnode_is_relational(lh)) {
            GNode *r = mk2(p, k, lh->a[1], rh);
            lh = mk2(p, GN_AND, lh, r);
        } else {
            lh = mk2(p, k, lh, rh);
        }
        if (!lh) LEAVE(NULL);
    }
    LEAVE(lh);
}

/* ---- sets --------------------------------------------------------------------------------- */

static int in_set(int t, const int *set) {
    for (; *set >= 0; set++)
        if (*set == t) return 1;
    return 0;
}

/* interval endpoints compared as latex2sympy does (right <= left, etc.); -1 = undecidable */
static int cmp_endpoints(P *p, GNode *l, GNode *r) {
    double a, b;
    if (!ge_real_value(p->c, l, &a) || !ge_real_value(p->c, r, &b)) return -2;
    return a < b ? -1 : a > b ? 1 : 0;
}

static GNode *make_interval(P *p, GNode *l, GNode *r, int lo, int ro) {
    /* (l, r) with r <= l, [l, r] with r < l: a Tuple (latex2sympy) */
    int c = cmp_endpoints(p, l, r);
    if (c != -2 && ((lo && ro && c >= 0) || (!lo && !ro && c > 0))) return mk2(p, GN_TUPLE, l, r);
    if (c != -2) {
        if (c > 0) return gnode_new(p->c, GN_EMPTY, 0); /* sympy Interval(l > r) */
        if (c == 0) {
            if (lo || ro) return gnode_new(p->c, GN_EMPTY, 0);
            GNode *s = gnode_new(p->c, GN_FSET, 1);
            if (s) s->a[0] = l;
            return s;
        }
    }
    GNode *x = mk2(p, GN_INTERVAL, l, r);
    if (!x) return NULL;
    /* sympy opens infinite ends */
    x->lo = lo || (l->k == GN_CONST && (!strcmp(l->s, "-oo") || !strcmp(l->s, "oo")));
    x->ro = ro || (r->k == GN_CONST && (!strcmp(r->s, "oo") || !strcmp(r->s, "-oo")));
    return x;
}

static GNode *groups_flat_set(P *p, Groups *g, GNodeKind k) {
    int total = 0;
    for (int i = 0; i < g->ng; i++) total += g->len[i];
    GNode *s = gnode_new(p->c, k, total);
    if (!s) return NULL;
    int j = 0;
    for (int i = 0; i < g->ng; i++)
        for (int e = 0; e < g->len[i]; e++) s->a[j++] = g->el[i][e];
    return s;
}

/* convert_elements_to_set_or_tuple */
static GNode *groups_to_set_or_tuple(P *p, Groups *g) {
    if (g->ng == 1) {
        if (g->len[0] == 1) return g->el[0][0];
        return groups_flat_set(p, g, GN_FSET);
    }
    int all1 = 1;
    for (int i = 0; i < g->ng; i++) all1 &= g->len[i] == 1;
    if (all1) return groups_flat_set(p, g, GN_FSET);
    GNode *s = gnode_new(p->c, GN_FSET, g->ng);
    if (!s) return NULL;
    for (int i = 0; i < g->ng; i++) {
        GNode *t = gnode_new(p->c, GN_TUPLE, g->len[i]);
        if (!t) return NULL;
        for (int e = 0; e < g->len[i]; e++) t->a[e] = g->el[i][e];
        s->a[i] = t;
    }
    return s;
}

static GNode *p_set_atom(P *p) {
    ENTER();
    Mark m = mark(p);
    int t = peek(p);
    /* interval */
    if (t == TK_LBRACKET || t == TK_LPAREN || t == TK_LPAREN_VIS || t == TK_LBRACK || t == TK_LGROUP) {
        p->pos++;
        GNode *l = p_expr(p);
        if (l && accept(p, TK_COMMA)) {
            GNode *r = p_expr(p);
            int ct = peek(p);
            if (r && (ct == TK_RBRACKET || ct == TK_RPAREN || ct == TK_RPAREN_VIS || ct == TK_RBRACK ||
                      ct == TK_RGROUP)) {
                p->pos++;
                int lo = t == TK_LPAREN || t == TK_LGROUP || t == TK_LPAREN_VIS;
                int ro = ct == TK_RPAREN || ct == TK_RGROUP || ct == TK_RPAREN_VIS;
                LEAVE(make_interval(p, l, r, lo, ro));
            }
        }
        reset(p, m);
    }
    /* literal_set */
    if (t == TK_SETLIT) {
        const GTok *tk = &p->t[p->pos++];
        const char *nm = "Reals";
        if (gu_contains(tk->s, tk->n, "{N}") || gu_contains(tk->s, tk->n, "\xe2\x84\x95")) nm = "Naturals";
        else if (gu_contains(tk->s, tk->n, "{Z}") || gu_contains(tk->s, tk->n, "\xe2\x84\xa4")) nm = "Integers";
        else if (gu_contains(tk->s, tk->n, "{Q}") || gu_contains(tk->s, tk->n, "\xe2\x84\x9a")) nm = "Rationals";
        else if (gu_contains(tk->s, tk->n, "{C}") || gu_contains(tk->s, tk->n, "\xe2\x84\x82")) nm = "Complexes";
        else if (gu_contains(tk->s, tk->n, "{P}") || gu_contains(tk->s, tk->n, "\xe2\x84\x99")) {
            p->conv_err = 1; /* 'Unrecognized literal set' */
            nm = "Primes";
        }
        LEAVE(leaf(p->c, GN_SETLIT, nm));
    }
    if (t == TK_SET_EMPTY || (t == TK_LBRACE && peek2(p) == TK_RBRACE)) {
        p->pos += t == TK_SET_EMPTY ? 1 : 2;
        LEAVE(gnode_new(p->c, GN_EMPTY, 0));
    }
    /* ordered_tuple */
    if (t == TK_LPAREN || t == TK_LPAREN_VIS || t == TK_LBRACKET) {
        int close = t == TK_LPAREN ? TK_RPAREN : t == TK_LPAREN_VIS ? TK_RPAREN_VIS : TK_RBRACKET;
        int closers[] = {close, -1};
        p->pos++;
        Groups g;
        if (p_elements(p, 0, closers, &g) && accept(p, close)) {
            if (g.ng == 1 && g.len[0] == 1) LEAVE(g.el[0][0]);
            LEAVE(groups_flat_set(p, &g, GN_TUPLE));
        }
        reset(p, m);
    }
    /* finite_set */
    if (t == TK_LBRACE || t == TK_LBRACE_VIS || (t == TK_BOXED && peek2(p) == TK_LBRACE)) {
        int close = t == TK_LBRACE_VIS ? TK_RBRACE_VIS : TK_RBRACE;
        int closers[] = {close, -1};
        p->pos += t == TK_BOXED ? 2 : 1;
        Groups g;
        if (p_elements(p, 0, closers, &g) && accept(p, close)) {
            if (t == TK_BOXED) LEAVE(groups_to_set_or_tuple(p, &g));
            LEAVE(groups_flat_set(p, &g, GN_FSET));
        }
        reset(p, m);
    }
    LEAVE(NULL);
}

/* element: plus_minus_expr | set_atom | relation (expr when no_relation); returns 1 or 2
 * values in out. The element must be followed by ',' ';' or a closer. */
static int p_element(P *p, int no_relation, const int *closers, GNode **out) {
    if (!step(p)) return 0;
    Mark m = mark(p);
#define FOLLOW_OK() (peek(p) == TK_COMMA || peek(p) == TK_SEMICOLON || in_set(peek(p), closers))
    /* plus_minus_expr: expr \pm expr | \pm expr */
    if (accept(p, TK_PLUS_MINUS)) {
        GNode *x = p_expr(p);
        if (x && FOLLOW_OK()) {
            out[0] = neg(p, x);
            out[1] = x;
            return out[0] && out[1] ? 2 : 0;
        }
        reset(p, m);
    } else {
        GNode *l = p_expr(p);
        if (l && accept(p, TK_PLUS_MINUS)) {
            GNode *r = p_expr(p);
            if (r && FOLLOW_OK()) {
                GNode *a = gnode_new(p->c, GN_ADD, 2), *b = gnode_new(p->c, GN_ADD, 2);
                if (!a || !b) return 0;
                a->a[0] = l;
                a->a[1] = r;
                b->a[0] = l;
                b->a[1] = neg(p, r);
                out[0] = a;
                out[1] = b;
                return b->a[1] ? 2 : 0;
            }
        }
        reset(p, m);
    }
    GNode *s = p_set_atom(p);
    if (s && FOLLOW_OK()) {
        out[0] = s;
        return 1;
    }
    reset(p, m);
    GNode *r = no_relation ? p_expr(p) : p_relation(p);
    if (r && FOLLOW_OK()) {
        out[0] = r;
        return 1;
    }
    reset(p, m);
    return 0;
#undef FOLLOW_OK
}

static int p_elements(P *p, int no_relation, const int *closers, Groups *g) {
    int cap_g = 4;
    g->ng = 0;
    g->len = ga_alloc(p->c->a, sizeof(int) * (size_t)cap_g);
    g->el = ga_alloc(p->c->a, sizeof(GNode **) * (size_t)cap_g);
    if (!g->len || !g->el) return 0;
    for (;;) {
        int cap = 8, n = 0;
        GNode **el = ga_alloc(p->c->a, sizeof(GNode *) * (size_t)cap);
        if (!el) return 0;
        for (;;) {
            GNode *two[2];
            int k = p_element(p, no_relation, closers, two);
            if (k == 0) return 0;
            if (n + k > cap) {
                GNode **ne = ga_alloc(p->c->a, sizeof(GNode *) * (size_t)(cap *= 2));
                if (!ne) return 0;
                memcpy(ne, el, sizeof(GNode *) * (size_t)n);
                el = ne;
            }
            for (int i = 0; i < k; i++) el[n++] = two[i];
            if (!accept(p, TK_COMMA)) break;
        }
        if (g->ng == cap_g) {
            cap_g *= 2;
            int *nl = ga_alloc(p->c->a, sizeof(int) * (size_t)cap_g);
            GNode ***ne = ga_alloc(p->c->a, sizeof(GNode **) * (size_t)cap_g);
            if (!nl || !ne) return 0;
            memcpy(nl, g->len, sizeof(int) * (size_t)g->ng);
            memcpy(ne, g->el, sizeof(GNode **) * (size_t)g->ng);
            g->len = nl;
            g->el = ne;
        }
        g->len[g->ng] = n;
        g->el[g->ng++] = el;
        if (!accept(p, TK_SEMICOLON)) break;
    }
    return 1;
}

/* atom_expr_list: '(' atom_expr (',' atom_expr)* ')' | atom_expr */
static GNode *p_atom_expr_list(P *p) {
    Mark m = mark(p);
    if (accept(p, TK_LPAREN)) {
        GNode *xs[64];
        int n = 0;
        for (;;) {
            GNode *x = p_atom_expr(p);
            if (!x || n >= 64) {
                reset(p, m);
                return NULL;
            }
            xs[n++] = x;
            if (!accept(p, TK_COMMA)) break;
        }
        if (!accept(p, TK_RPAREN)) {
            reset(p, m);
            return NULL;
        }
        if (n == 1) return xs[0];
        GNode *t = gnode_new(p->c, GN_TUPLE, n);
        if (!t) return NULL;
        for (int i = 0; i < n; i++) t->a[i] = xs[i];
        return t;
    }
    return p_atom_expr(p);
}

/* set_relation: atom_expr_list (\in | \notin | =) set_relation | minus_expr
 * (\subseteq / \supseteq are not supported: latex2sympy returns a bool there) */
static GNode *p_minus_expr(P *p);

static GNode *p_set_relation(P *p) {
    ENTER();
    Mark m = mark(p);
    GNode *l = p_atom_expr_list(p);
    if (l) {
        int t = peek(p);
        if (t == TK_IN || t == TK_NOTIN || t == TK_ASSIGN) {
            p->pos++;
            GNode *r = p_set_relation(p);
            if (r) {
                GNode *eq = mk2(p, GN_EQ, l, r);
                if (t == TK_NOTIN) eq = mk1(p, GN_NOT, eq);
                if (peek(p) == TK_SUBSET || peek(p) == TK_SUPSET) LEAVE(NULL);
                LEAVE(eq);
            }
        }
    }
    reset(p, m);
    GNode *x = p_minus_expr(p);
    if (x && (peek(p) == TK_SUBSET || peek(p) == TK_SUPSET)) LEAVE(NULL);
    LEAVE(x);
}

static GNode *p_set_group(P *p) {
    ENTER();
    Mark m = mark(p);
    if (accept(p, TK_LPAREN)) {
        GNode *x = p_minus_expr(p);
        if (x && accept(p, TK_RPAREN)) LEAVE(x);
        reset(p, m);
    }
    LEAVE(p_set_atom(p));
}

static GNode *as_set(P *p, GNode *x) {
    if (x && x->k == GN_TUPLE) {
        GNode *s = gnode_new(p->c, GN_FSET, x->n);
        if (!s) return NULL;
        for (int i = 0; i < x->n; i++) s->a[i] = x->a[i];
        return s;
    }
    return x;
}

static GNode *p_inter_expr(P *p) {
    ENTER();
    GNode *x = p_set_group(p);
    while (x && peek(p) == TK_INTERSECTION) {
        Mark m = mark(p);
        p->pos++;
        GNode *y = p_set_group(p);
        if (!y) {
            reset(p, m);
            break;
        }
        x = mk2(p, GN_INTER, as_set(p, x), as_set(p, y));
    }
    LEAVE(x);
}

static GNode *p_union_expr(P *p) {
    ENTER();
    GNode *x = p_inter_expr(p);
    while (x && peek(p) == TK_UNION) {
        Mark m = mark(p);
        p->pos++;
        GNode *y = p_inter_expr(p);
        if (!y) {
            reset(p, m);
            break;
        }
        x = mk2(p, GN_UNION, as_set(p, x), as_set(p, y));
    }
    LEAVE(x);
}

static GNode *p_minus_expr(P *p) {
    ENTER();
    GNode *x = p_union_expr(p);
    while (x && peek(p) == TK_SET_MINUS) {
        Mark m = mark(p);
        p->pos++;
        GNode *y = p_union_expr(p);
        if (!y) {
            reset(p, m);
            break;
        }
        x = mk2(p, GN_COMPL, x, y);
    }
    LEAVE(x);
}

/* ---- entry points ------------------------------------------------------------------------- */

static GNode *finish(P *p, GNode *x) {
    if (!x || p->conv_err || peek(p) != TK_EOF) return NULL;
    return x;
}

GNode *gp_parse_latex(GCtx *c, const char *latex, int is_real) {
    (void)is_real;
    size_t n = strlen(latex);
    int maxt = (int)(n + 2);
    if (maxt > 100000) {
        gctx_limit(c, "answer too long");
        return NULL;
    }
    GTok *t = ga_alloc(c->a, sizeof(GTok) * (size_t)maxt);
    if (!t) {
        gctx_limit(c, "memory limit exceeded");
        return NULL;
    }
    int nt;
    if (glex(latex, n, t, maxt, &nt) != 0) return NULL;
    P p = {c, t, nt, 0, 0};
    c->nodes = 0;
    c->depth = 0;
    static const int top[] = {TK_EOF, -1};
    /* 1. set_elements_relation: atom_expr_list (\in | =) semicolon_elements_no_relation */
    {
        GNode *l = p_atom_expr_list(&p);
        if (l && (peek(&p) == TK_IN || peek(&p) == TK_ASSIGN)) {
            p.pos++;
            Groups g;
            if (p_elements(&p, 1, top, &g) && peek(&p) == TK_EOF) {
                GNode *set = groups_to_set_or_tuple(&p, &g);
                GNode *x = finish(&p, mk2(&p, GN_EQ, l, set));
                return x;
            }
        }
        if (c->limit_hit) return NULL;
        p.pos = 0;
        p.conv_err = 0;
    }
    /* 2. set_elements */
    {
        Groups g;
        if (p_elements(&p, 0, top, &g) && peek(&p) == TK_EOF) {
            /* "333,333" is a number, not a set (latex2sympy's comma_number_regex) */
            if (gre_match(c, c->re->comma_number, latex, n, 0) == 1) {
                if (p.conv_err) return NULL;
                return parse_number_text(c, latex, n) ? parse_number_text(c, gu_strip(latex, n, &n), n) : NULL;
            }
            return finish(&p, groups_to_set_or_tuple(&p, &g));
        }
        if (c->limit_hit) return NULL;
        p.pos = 0;
        p.conv_err = 0;
    }
    /* 3. set_relation */
    {
        GNode *x = p_set_relation(&p);
        if (x && peek(&p) == TK_EOF) return finish(&p, x);
    }
    return NULL;
}

/* ---- sympy parse_expr of the plain expressions the expr regex finds ----------------------- */

typedef struct PE {
    GCtx *c;
    const char *s;
    size_t i, n;
    int bad;
} PE;

static void pe_ws(PE *e) {
    while (e->i < e->n && (e->s[e->i] == ' ' || e->s[e->i] == '\t')) e->i++;
}

static GNode *pe_sum(PE *e, int depth);

static GNode *pe_atom(PE *e, int depth) {
    pe_ws(e);
    if (e->i >= e->n) return NULL;
    char ch = e->s[e->i];
    if (ch == '(') {
        e->i++;
        GNode *x = pe_sum(e, depth + 1);
        pe_ws(e);
        if (!x || e->i >= e->n || e->s[e->i] != ')') return NULL;
        e->i++;
        return x;
    }
    size_t st = e->i;
    while (e->i < e->n && ((e->s[e->i] >= '0' && e->s[e->i] <= '9') || e->s[e->i] == '.')) e->i++;
    if (e->i == st) return NULL;
    char *num = ga_strndup(e->c->a, e->s + st, e->i - st);
    if (!num || strchr(num, '.') != strrchr(num, '.') || !strcmp(num, ".")) return NULL;
    if (!strchr(num, '.') && num[0] == '0' && num[1]) return NULL; /* "05" is a Python syntax error */
    return gp_number(e->c, num);
}

/* power: atom ('**' unary)? (right-assoc); unary: ('-'|'+') unary | power */
static GNode *pe_unary(PE *e, int depth);
static GNode *pe_power(PE *e, int depth) {
    GNode *b = pe_atom(e, depth);
    if (!b) return NULL;
    pe_ws(e);
    if (e->i + 1 < e->n && e->s[e->i] == '*' && e->s[e->i + 1] == '*') {
        e->i += 2;
        GNode *x = pe_unary(e, depth + 1);
        if (!x) return NULL;
        GNode *r = gnode_new(e->c, GN_POW, 2);
        if (!r) return NULL;
        r->a[0] = b;
        r->a[1] = x;
        return r;
    }
    return b;
}

static GNode *pe_unary(PE *e, int depth) {
    if (depth > e->c->opt->max_depth) {
        gctx_limit(e->c, "expression nested too deeply");
        return NULL;
    }
    pe_ws(e);
    if (e->i < e->n && (e->s[e->i] == '-' || e->s[e->i] == '+')) {
        char op = e->s[e->i++];
        GNode *x = pe_unary(e, depth + 1);
        if (!x || op == '+') return x;
        if (gnode_is_number(x)) return negate_number(e->c, x);
        GNode *r = gnode_new(e->c, GN_MUL, 2);
        if (!r) return NULL;
        r->a[0] = leaf(e->c, GN_INT, "-1");
        r->a[1] = x;
        return r;
    }
    return pe_power(e, depth);
}

static GNode *pe_term(PE *e, int depth) {
    GNode *x = pe_unary(e, depth);
    for (;;) {
        if (!x) return NULL;
        pe_ws(e);
        if (e->i >= e->n) return x;
        char ch = e->s[e->i];
        if ((ch != '*' && ch != '/') || (ch == '*' && e->i + 1 < e->n && e->s[e->i + 1] == '*')) return x;
        e->i++;
        GNode *y = pe_unary(e, depth);
        if (!y) return NULL;
        GNode *r = gnode_new(e->c, GN_MUL, 2);
        if (!r) return NULL;
        r->a[0] = x;
        if (ch == '*') {
            r->a[1] = y;
        } else {
            GNode *inv = gnode_new(e->c, GN_POW, 2);
            if (!inv) return NULL;
            inv->a[0] = y;
            inv->a[1] = leaf(e->c, GN_INT, "-1");
            r->a[1] = inv;
        }
        x = r;
    }
}

static GNode *pe_sum(PE *e, int depth) {
    GNode *x = pe_term(e, depth);
    for (;;) {
        if (!x) return NULL;
        pe_ws(e);
        if (e->i >= e->n) return x;
        char ch = e->s[e->i];
        if (ch != '+' && ch != '-') return x;
        e->i++;
        GNode *y = pe_term(e, depth);
        if (!y) return NULL;
        if (ch == '-') {
            if (gnode_is_number(y)) y = negate_number(e->c, y);
            else {
                GNode *m = gnode_new(e->c, GN_MUL, 2);
                if (!m) return NULL;
                m->a[0] = leaf(e->c, GN_INT, "-1");
                m->a[1] = y;
                y = m;
            }
        }
        GNode *r = gnode_new(e->c, GN_ADD, 2);
        if (!r) return NULL;
        r->a[0] = x;
        r->a[1] = y;
        x = r;
    }
}

GNode *gp_parse_plain_expr(GCtx *c, const char *expr) {
    c->nodes = 0;
    PE e = {c, expr, 0, strlen(expr), 0};
    GNode *x = pe_sum(&e, 0);
    pe_ws(&e);
    if (!x || e.i != e.n) return NULL;
    return x;
}

int gp_should_treat_as_complex(GCtx *c, const char *latex) {
    return gre_match(c, c->re->complex_pattern, latex, strlen(latex), 0) == 1;
}
