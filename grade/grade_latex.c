/*
 * The LaTeX parser: LaTeX -> expression tree, following latex2sympy2_extended (PS.g4 +
 * latex2sympy2.py):
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
 *
 * This file holds the entry point (the three readings of "math" above), the node builders of
 * latex2sympy's conversions and the token-text helpers; the grammar is split by what it reads:
 * grade_latex_expr.c (expressions and relations), grade_latex_func.c (functions, \frac,
 * \binom, matrices) and grade_latex_set.c (sets, intervals, tuples, \pm, set operations).
 * They share grade_latex.h, private to them.
 */
#include <stdlib.h>
#include <string.h>

#include "grade_latex.h"

/* ---- token text --------------------------------------------------------------------------- */

const char *gl_tok_text(GParser *p, int i) { return ga_strndup(p->c->a, p->t[i].s, p->t[i].n); }

/* getText() of tokens [from, to): token texts concatenated (whitespace is not a token) */
const char *gl_span_text(GParser *p, int from, int to) {
    GStr b;
    gs_init(&b, p->c->a);
    for (int i = from; i < to; i++) gs_putn(&b, p->t[i].s, p->t[i].n);
    return gs_cstr(&b);
}

/* ---- node builders (latex2sympy's conversions) -------------------------------------------- */

GNode *gl_mk2(GParser *p, GNodeKind k, GNode *x, GNode *y) {
    if (!x || !y) return NULL;
    GNode *r = gnode_new(p->c, k, 2);
    if (!r) return NULL;
    r->a[0] = x;
    r->a[1] = y;
    return r;
}

GNode *gl_mk1(GParser *p, GNodeKind k, GNode *x) {
    if (!x) return NULL;
    GNode *r = gnode_new(p->c, k, 1);
    if (!r) return NULL;
    r->a[0] = x;
    return r;
}

GNode *gl_func1(GParser *p, const char *name, GNode *x) {
    GNode *r = gl_mk1(p, GN_FUNC, x);
    if (r) r->s = name;
    return r;
}

GNode *gl_opaque(GParser *p, const char *what) { return gnode_leaf(p->c, GN_OPAQUE, what); }

GNode *gl_flat(GParser *p, GNodeKind k, GNode *x, GNode *y) {
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

/* -x as latex2sympy writes it: numbers negated, else Mul(-1, x) flattened */
GNode *gl_neg(GParser *p, GNode *x) {
    if (!x) return NULL;
    if (gnode_is_sympy_number(x)) return gnode_negate(p->c, x);
    return gl_flat(p, GN_MUL, gl_minus_one(p), x);
}

GNode *gl_divide(GParser *p, GNode *x, GNode *y) {
    if (!x || !y) return NULL;
    if (gl_is_matrix(x) || gl_is_matrix(y)) return gl_opaque(p, "MatMul");
    if (x->k == GN_INT && y->k == GN_INT) return gnode_rational(p->c, x->s, y->s);
    return gl_mk2(p, GN_MUL, x, gl_mk2(p, GN_POW, y, gl_minus_one(p)));
}

/* gl_get_symbol(text + subscript) with lowercase_symbols: Greek names, pi / gamma constants */
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

GNode *gl_get_symbol(GParser *p, const char *text) {
    size_t n;
    const char *s = gu_strip(text, strlen(text), &n);
    char *name = ga_strndup(p->c->a, s, n);
    if (!name) return NULL;
    for (size_t i = 0; i < sizeof GREEK_MAP / sizeof GREEK_MAP[0]; i++)
        if (strcmp(name, GREEK_MAP[i][0]) == 0) name = (char *)GREEK_MAP[i][1];
    if (name[0] == '\\') name++;
    if (strcmp(name, "pi") == 0) return gnode_leaf(p->c, GN_CONST, "pi");
    if (strcmp(name, "gamma") == 0 || strcmp(name, "Gamma") == 0)
        return gnode_leaf(p->c, GN_CONST, "EulerGamma");
    char *low = ga_strndup(p->c->a, name, strlen(name));
    if (!low) return NULL;
    for (char *q = low; *q; q++)
        if (*q >= 'A' && *q <= 'Z') *q = (char)(*q - 'A' + 'a');
    if (strcmp(low, "pi") == 0) return gnode_leaf(p->c, GN_CONST, "pi");
    if (strcmp(low, "gamma") == 0) return gnode_leaf(p->c, GN_CONST, "EulerGamma");
    return gnode_leaf(p->c, GN_SYM, low);
}

/* ---- entry points ------------------------------------------------------------------------- */

static GNode *finish(GParser *p, GNode *x) {
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
    GParser p = {c, t, nt, 0, 0};
    c->nodes = 0;
    c->depth = 0;
    static const int top[] = {TK_EOF, -1};
    /* 1. set_elements_relation: atom_expr_list (\in | =) semicolon_elements_no_relation */
    {
        GNode *l = gl_atom_expr_list(&p);
        if (l && (peek(&p) == TK_IN || peek(&p) == TK_ASSIGN)) {
            p.pos++;
            GGroups g;
            if (gl_elements(&p, 1, top, &g) && peek(&p) == TK_EOF) {
                GNode *set = gl_groups_to_set_or_tuple(&p, &g);
                GNode *x = finish(&p, gl_mk2(&p, GN_EQ, l, set));
                return x;
            }
        }
        if (c->limit_hit) return NULL;
        p.pos = 0;
        p.conv_err = 0;
    }
    /* 2. set_elements */
    {
        GGroups g;
        if (gl_elements(&p, 0, top, &g) && peek(&p) == TK_EOF) {
            /* "333,333" is a number, not a set (latex2sympy's comma_number_regex) */
            if (gre_match(c, c->re->comma_number, latex, n, 0) == 1) {
                if (p.conv_err) return NULL;
                return gnode_number_text(c, latex, n) ? gnode_number_text(c, gu_strip(latex, n, &n), n) : NULL;
            }
            return finish(&p, gl_groups_to_set_or_tuple(&p, &g));
        }
        if (c->limit_hit) return NULL;
        p.pos = 0;
        p.conv_err = 0;
    }
    /* 3. set_relation */
    {
        GNode *x = gl_set_relation(&p);
        if (x && peek(&p) == TK_EOF) return finish(&p, x);
    }
    return NULL;
}


int gp_should_treat_as_complex(GCtx *c, const char *latex) {
    return gre_match(c, c->re->complex_pattern, latex, strlen(latex), 0) == 1;
}
