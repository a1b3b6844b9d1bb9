/*
 * The LaTeX parser's expression grammar (latex2sympy2's PS.g4, see grade_latex.c):
 *
 *   relation   expr (relop expr)*, chained into And (a < b < c), \approx keeps one side
 *   expr       mp ((+|-) mp)*                       (unevaluated Add, written order)
 *   mp         unary ((* | \times | \cdot | / | \div | : | \mod) unary)*
 *   unary      (+|-) unary | postfix+               (implicit products, the mixed-fraction
 *                                                    rule: 2 \frac{1}{2} = 5/2)
 *   postfix    exp (! | ' | ^\circ)*
 *   exp        comp (^ (atom | {expr}) subexpr?)*
 *   comp       groups ( ) { } [ ], \boxed, |x|, \lfloor, \lceil, then functions
 *              (grade_latex_func.c), atoms, \frac, \binom, matrices
 *   atom       letters with sub/superscripts, Greek, accents, numbers, percentages,
 *              E-notation, differentials
 *
 * Rules take the first alternative (in grammar order) that parses, and go back (reset) when
 * the rest does not.
 */
#include <gmp.h>
#include <stdlib.h>
#include <string.h>

#include "grade_latex.h"

/* subexpr: '_' (atom | '{' (expr | args) '}'); returns the subscript text (getText) */
int gl_subexpr(GParser *p, const char **text) {
    GMark m = mark(p);
    if (!accept(p, TK_UNDERSCORE)) return 0;
    if (accept(p, TK_LBRACE)) {
        int from = p->pos;
        /* expr | args (expr ',' args): a comma-separated list of exprs */
        for (;;) {
            if (!gl_expr(p)) {
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
        if (text) *text = gl_span_text(p, from, to);
        return 1;
    }
    int from = p->pos;
    if (!gl_atom(p, NULL)) {
        reset(p, m);
        return 0;
    }
    if (text) *text = gl_span_text(p, from, p->pos);
    return 1;
}

/* supexpr: '^' (atom | '{' expr '}') */
GNode *gl_supexpr(GParser *p) {
    GMark m = mark(p);
    if (!accept(p, TK_CARET)) return NULL;
    GNode *x;
    if (accept(p, TK_LBRACE)) {
        x = gl_expr(p);
        if (!x || !accept(p, TK_RBRACE)) {
            reset(p, m);
            return NULL;
        }
        return x;
    }
    x = gl_atom(p, NULL);
    if (!x) reset(p, m);
    return x;
}

static const char *accent_text(GParser *p, const GTok *tk) {
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
GNode *gl_atom_expr(GParser *p) {
    ENTER();
    int t = peek(p);
    if (!gl_is_atom_expr_start(t)) LEAVE(NULL);
    GTok tk = p->t[p->pos++];
    const char *name;
    int is_I = 0;
    if (t == TK_LETTER) {
        name = gl_tok_text(p, p->pos - 1);
        is_I = tk.n == 1 && tk.s[0] == 'I';
    } else if (t == TK_ACCENT) {
        name = accent_text(p, &tk);
    } else {
        name = gl_tok_text(p, p->pos - 1);
    }
    const char *sub = NULL;
    GNode *sup = NULL;
    if (peek(p) == TK_CARET) {
        sup = gl_supexpr(p);
        if (sup) gl_subexpr(p, &sub);
    } else if (peek(p) == TK_UNDERSCORE) {
        if (gl_subexpr(p, &sub)) sup = gl_supexpr(p);
    }
    if (is_I) LEAVE(gnode_leaf(p->c, GN_CONST, "I"));
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
    GNode *sym = gl_get_symbol(p, gs_cstr(&b));
    if (sup) LEAVE(gl_mk2(p, GN_POW, sym, sup));
    LEAVE(sym);
}

/* atom: atom_expr | SYMBOL | NUMBER subexpr? | PERCENT_NUMBER | E_NOTATION | 'E' |
 *       DIFFERENTIAL | FUNC_GAMMA */
GNode *gl_atom(GParser *p, const char **text) {
    ENTER();
    int t = peek(p), from = p->pos;
    GNode *x = NULL;
    if (gl_is_atom_expr_start(t)) {
        x = gl_atom_expr(p);
    } else if (t == TK_SYMBOL) {
        const GTok *tk = &p->t[p->pos++];
        if (tk->n >= 8 && memcmp(tk->s, "\\partial", 8) == 0) {
            p->conv_err = 1; /* "Unrecognized symbol" */
            x = gnode_leaf(p->c, GN_CONST, "oo");
        } else {
            x = gnode_leaf(p->c, GN_CONST, "oo");
        }
    } else if (t == TK_NUMBER) {
        const GTok *tk = &p->t[p->pos++];
        x = gnode_number_text(p->c, tk->s, tk->n);
        if (peek(p) == TK_UNDERSCORE) gl_subexpr(p, NULL); /* ignored */
    } else if (t == TK_PERCENT_NUMBER) {
        const GTok *tk = &p->t[p->pos++];
        GStr b;
        gs_init(&b, p->c->a);
        for (size_t i = 0; i < tk->n; i++) {
            char ch = tk->s[i];
            if ((ch >= '0' && ch <= '9') || ch == '.') gs_putc(&b, ch);
        }
        GNode *num = gnode_number(p->c, gs_cstr(&b));
        x = gl_mk1(p, GN_PCT, num);
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
        x = gnode_number(p->c, gs_cstr(&b));
    } else if (t == TK_E_NOTATION_E) {
        p->pos++;
        x = gnode_leaf(p->c, GN_SYM, "e");
    } else if (t == TK_DIFFERENTIAL) {
        const GTok *tk = &p->t[p->pos++];
        size_t i = 1;
        while (i < tk->n && (tk->s[i] == ' ' || tk->s[i] == '\t' || tk->s[i] == '\n' || tk->s[i] == '\r')) i++;
        if (i < tk->n && tk->s[i] == '\\') i++;
        GStr b;
        gs_init(&b, p->c->a);
        gs_putc(&b, 'd');
        gs_putn(&b, tk->s + i, tk->n - i);
        x = gnode_leaf(p->c, GN_SYM, gs_cstr(&b));
    } else if (t == TK_FUNC_GAMMA) {
        p->pos++;
        x = gnode_leaf(p->c, GN_CONST, "EulerGamma");
    } else {
        LEAVE(NULL);
    }
    if (!x) {
        p->pos = from;
        LEAVE(NULL);
    }
    if (text) *text = gl_span_text(p, from, p->pos);
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
GNode *gl_wrapped(GParser *p, int open, int close) {
    GMark m = mark(p);
    if (!accept(p, open)) return NULL;
    GNode *x = gl_expr(p);
    if (!x || !accept(p, close)) {
        reset(p, m);
        return NULL;
    }
    return x;
}

/* '{' expr '}' */
GNode *gl_braced(GParser *p) { return gl_wrapped(p, TK_LBRACE, TK_RBRACE); }

static GNode *gl_comp(GParser *p, int nofunc) {
    ENTER();
    int t = peek(p);
    GMark m = mark(p);
    GNode *x;
    /* group */
    int close = group_closer(t);
    if (close >= 0) {
        x = gl_wrapped(p, t, close);
        if (x) LEAVE(x);
    }
    /* formatting_group: \phantom{expr} | \boxed{expr} */
    if (t == TK_PHANTOM || t == TK_BOXED) {
        p->pos++;
        x = gl_braced(p);
        if (x) LEAVE(x);
        reset(p, m);
    }
    if (t == TK_NORM) {
        x = gl_wrapped(p, TK_NORM, TK_NORM);
        if (x) {
            p->conv_err = 1; /* .norm() of a scalar raises */
            LEAVE(x);
        }
    }
    if (t == TK_BAR || t == TK_LVERT || t == TK_VERT) {
        x = gl_wrapped(p, t, t == TK_LVERT ? TK_RVERT : t);
        if (x) LEAVE(gl_func1(p, "Abs", x));
    }
    if (t == TK_LANGLE) {
        x = gl_wrapped(p, TK_LANGLE, TK_RANGLE);
        if (x) {
            p->conv_err = 1; /* latex2sympy has no conversion for it */
            LEAVE(x);
        }
    }
    if (t == TK_LFLOOR) {
        x = gl_wrapped(p, TK_LFLOOR, TK_RFLOOR);
        if (x) LEAVE(gl_func1(p, "floor", x));
    }
    if (t == TK_LCEIL) {
        x = gl_wrapped(p, TK_LCEIL, TK_RCEIL);
        if (x) LEAVE(gl_func1(p, "ceiling", x));
    }
    if (!nofunc) {
        x = gl_func(p);
        if (x) LEAVE(x);
        reset(p, m);
    }
    x = gl_atom(p, NULL);
    if (x) LEAVE(x);
    x = gl_frac(p);
    if (x) LEAVE(x);
    x = gl_binom(p);
    if (x) LEAVE(x);
    x = gl_matrix(p);
    if (x) LEAVE(x);
    reset(p, m);
    LEAVE(NULL);
}

/* exp: comp (CARET (atom | '{' expr '}') subexpr?)* */
static GNode *gl_exp(GParser *p, int nofunc) {
    ENTER();
    GNode *x = gl_comp(p, nofunc);
    if (!x) LEAVE(NULL);
    while (peek(p) == TK_CARET) {
        GMark m = mark(p);
        GNode *e = gl_supexpr(p);
        if (!e) {
            reset(p, m);
            break;
        }
        if (peek(p) == TK_UNDERSCORE) gl_subexpr(p, NULL);
        if (gl_is_matrix(x)) x = gl_opaque(p, "MatPow");
        else x = gl_mk2(p, GN_POW, x, e);
        if (!x) LEAVE(NULL);
    }
    LEAVE(x);
}

/* postfix: exp (BANG | transpose | degree)* */
static GNode *gl_postfix(GParser *p, int nofunc) {
    ENTER();
    GNode *x = gl_exp(p, nofunc);
    if (!x) LEAVE(NULL);
    for (;;) {
        int t = peek(p);
        if (t == TK_BANG) {
            p->pos++;
            x = gl_func1(p, "factorial", x);
        } else if (t == TK_TRANSPOSE) {
            p->pos++;
            if (gl_is_matrix(x)) x = gl_opaque(p, "Transpose");
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
static GNode *postfix_list(GParser *p, GNode **xs, int n) {
    GNode *res = xs[0];
    if (n == 1 || !res) return res;
    GNode *rh = postfix_list(p, xs + 1, n - 1);
    if (!rh) return NULL;
    if (gl_is_matrix(res) || gl_is_matrix(rh)) return gl_opaque(p, "MatMul");
    if (res->k == GN_INT && (rh->k == GN_INT || rh->k == GN_RAT) && gnode_num_sign(rh) > 0) {
        const char *rp, *rq;
        gnode_rat_parts(p->c, rh, &rp, &rq);
        mpz_t a, q, pp;
        mpz_inits(a, q, pp, NULL);
        mpz_set_str(a, res->s, 10);
        mpz_set_str(q, rq, 10);
        mpz_set_str(pp, rp, 10);
        mpz_mul(a, a, q);
        if (gnode_num_sign(res) < 0) mpz_sub(a, a, pp);
        else mpz_add(a, a, pp);
        const char *num = gnode_mpz_str(p->c, a);
        mpz_clears(a, q, pp, NULL);
        return gnode_rational(p->c, num, rq);
    }
    return gl_flat(p, GN_MUL, res, rh);
}

/* unary: (+|-) unary | postfix+ ; unary_nofunc: (+|-) unary_nofunc | postfix postfix_nofunc* */
static GNode *gl_unary(GParser *p, int nofunc) {
    ENTER();
    if (accept(p, TK_ADD)) LEAVE(gl_unary(p, nofunc));
    if (accept(p, TK_SUB)) {
        GNode *x = gl_unary(p, nofunc);
        if (!x) LEAVE(NULL);
        if (gl_is_matrix(x)) LEAVE(gl_opaque(p, "MatMul"));
        LEAVE(gl_neg(p, x));
    }
    GNode *xs[256];
    int n = 0;
    GNode *first = gl_postfix(p, 0);
    if (!first) LEAVE(NULL);
    xs[n++] = first;
    while (can_start_postfix(peek(p))) {
        GMark m = mark(p);
        GNode *x = gl_postfix(p, nofunc);
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
GNode *gl_mp(GParser *p, int nofunc) {
    ENTER();
    GNode *x = gl_unary(p, nofunc);
    if (!x) LEAVE(NULL);
    for (;;) {
        int t = peek(p);
        if (t != TK_MUL && t != TK_TIMES && t != TK_CDOT && t != TK_DIV && t != TK_CMD_DIV &&
            t != TK_COLON && t != TK_MOD)
            break;
        GMark m = mark(p);
        p->pos++;
        GNode *y = gl_unary(p, nofunc);
        if (!y) {
            reset(p, m);
            break;
        }
        if (t == TK_MUL || t == TK_TIMES || t == TK_CDOT) {
            x = (gl_is_matrix(x) || gl_is_matrix(y)) ? gl_opaque(p, "MatMul") : gl_flat(p, GN_MUL, x, y);
        } else if (t == TK_MOD) {
            if (gl_is_matrix(y)) p->conv_err = 1;
            x = gl_mk2(p, GN_FUNC, x, y);
            if (x) x->s = "Mod";
        } else {
            x = gl_divide(p, x, y);
        }
        if (!x) LEAVE(NULL);
    }
    LEAVE(x);
}

/* additive: mp ((+|-) mp)* */
GNode *gl_expr(GParser *p) {
    ENTER();
    GNode *x = gl_mp(p, 0);
    if (!x) LEAVE(NULL);
    for (;;) {
        int t = peek(p);
        if (t != TK_ADD && t != TK_SUB) break;
        GMark m = mark(p);
        p->pos++;
        GNode *y = gl_mp(p, 0);
        if (!y) {
            reset(p, m);
            break;
        }
        if (gl_is_matrix(x) || gl_is_matrix(y)) {
            x = gl_opaque(p, "MatAdd");
        } else if (t == TK_ADD) {
            x = gl_flat(p, GN_ADD, x, y);
        } else {
            x = gl_flat(p, GN_ADD, x, gnode_is_sympy_number(y) ? gnode_negate(p->c, y) : gl_flat(p, GN_MUL, gl_minus_one(p), y));
        }
        if (!x) LEAVE(NULL);
    }
    LEAVE(x);
}

static int is_relop(int t) {
    return t == TK_IN || t == TK_ASSIGN || t == TK_EQUAL || t == TK_APPROX || t == TK_LT ||
           t == TK_LTE || t == TK_GT || t == TK_GTE || t == TK_UNEQUAL;
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
GNode *gl_relation(GParser *p) {
    ENTER();
    GNode *lh = gl_expr(p);
    if (!lh) LEAVE(NULL);
    while (is_relop(peek(p))) {
        GMark m = mark(p);
        int t = peek(p);
        p->pos++;
        GNode *rh = gl_expr(p);
        if (!rh) {
            reset(p, m);
            break;
        }
        if (t == TK_APPROX) {
            lh = gnode_only_symbols(lh) ? rh : lh;
            continue;
        }
        if (t == TK_IN) {
            p->conv_err = 1; /* 'Unrecognized relation' */
            continue;
        }
        GNodeKind k = rel_kind(t);
        if (lh->k == GN_AND) {
            GNode *last = lh->a[lh->n - 1];
            GNode *r = gl_mk2(p, k, last->a[1], rh);
            GNode *a = gnode_new(p->c, GN_AND, lh->n + 1);
            if (!a || !r) LEAVE(NULL);
            for (int i = 0; i < lh->n; i++) a->a[i] = lh->a[i];
            a->a[lh->n] = r;
            lh = a;
        } else if (gnode_is_relational(lh)) {
            GNode *r = gl_mk2(p, k, lh->a[1], rh);
            lh = gl_mk2(p, GN_AND, lh, r);
        } else {
            lh = gl_mk2(p, k, lh, rh);
        }
        if (!lh) LEAVE(NULL);
    }
    LEAVE(lh);
}
