/*
 * The LaTeX parser's functions and the other commands with arguments (latex2sympy2's PS.g4 and
 * its convert_func, see grade_latex.c):
 *
 *   named      \sin x, \log_2(8), \ln, \exp, \gcd(a, b), \max, \operatorname{floor}{..},
 *              f^{-1} as the inverse, powers of functions (\sin^2 x)
 *   user       f(x), g_1[x, y]: undefined functions, compared by name and arguments
 *   \sqrt      \sqrt{x}, \sqrt[n]{x}
 *   opaque     \sum, \prod, \lim, \int, d/dx: parsed so extraction picks the same answer,
 *              not evaluated (GN_OPAQUE)
 *   \frac      \frac{a}{b} (Integer / Integer is a Rational), \binom, {n \choose k}
 *   matrices   matrix / array / det environments, rows of '&'-separated expressions
 */
#include <stdlib.h>
#include <string.h>

#include "grade_latex.h"

static GNode *gl_func_arg_noparens(GParser *p) { return gl_mp(p, 1); }

/* func_normal_single_arg / multi_arg heads, the sub/sup part and the argument(s) */
static GNode *gl_func_named(GParser *p) {
    GMark m = mark(p);
    int t = peek(p);
    const char *name = NULL;
    int multi = 0;
    if (t == TK_FUNC1 || t == TK_FUNC_GAMMA) {
        name = gl_tok_text(p, p->pos) + 1;
        p->pos++;
    } else if (t == TK_FUNC_MULTI) {
        name = gl_tok_text(p, p->pos) + 1;
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
        const char *on = gl_tok_text(p, p->pos);
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
            GMark ms = mark(p);
            sub_from = p->pos + 1;
            if (!gl_subexpr(p, &sub_text)) {
                reset(p, ms);
                sub_from = -1;
                break;
            }
            sub_to = p->pos;
        } else if (peek(p) == TK_CARET && !sup) {
            sup = gl_supexpr(p);
            if (!sup) break;
        }
    }
    if (sub_from >= 0) {
        /* the base of a logarithm: atom or {expr} */
        GParser q = *p;
        q.pos = sub_from;
        if (q.t[q.pos].type == TK_LBRACE) {
            q.pos++;
            sub_node = gl_expr(&q);
        } else {
            sub_node = gl_atom(&q, NULL);
        }
        (void)sub_to;
    }
    GNode *args[16];
    int nargs = 0;
    if (peek(p) == TK_LPAREN) {
        GMark mp = mark(p);
        p->pos++;
        for (;;) {
            GNode *a = gl_expr(p);
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
        GNode *a = gl_func_arg_noparens(p);
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
            r = gl_opaque(p, fn);
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
                r = gl_opaque(p, fn);
            }
            if (!r) r = gl_func1(p, fn, arg);
        } else if (!strncmp(fn, "arc", 3) && (!strcmp(fn + 3, "sin") || !strcmp(fn + 3, "cos") ||
                                              !strcmp(fn + 3, "tan") || !strcmp(fn + 3, "csc") ||
                                              !strcmp(fn + 3, "sec") || !strcmp(fn + 3, "cot"))) {
            GStr b;
            gs_init(&b, p->c->a);
            gs_putc(&b, 'a');
            gs_puts(&b, fn + 3);
            r = gl_func1(p, gs_cstr(&b), arg);
        } else if (!strcmp(fn, "arsinh") || !strcmp(fn, "arcsinh")) r = gl_func1(p, "asinh", arg);
        else if (!strcmp(fn, "arcosh") || !strcmp(fn, "arccosh")) r = gl_func1(p, "acosh", arg);
        else if (!strcmp(fn, "artanh") || !strcmp(fn, "arctanh")) r = gl_func1(p, "atanh", arg);
        else if (!strcmp(fn, "log") || !strcmp(fn, "ln")) {
            GNode *base = sub_node ? sub_node
                                   : (!strcmp(fn, "log") ? gnode_leaf(p->c, GN_INT, "10") : gnode_leaf(p->c, GN_CONST, "E"));
            r = gl_mk2(p, GN_FUNC, arg, base);
            if (r) r->s = "log";
        } else if (!strcmp(fn, "exp")) r = gl_func1(p, "exp", arg);
        else if (!strcmp(fn, "floor")) r = gl_func1(p, "floor", arg);
        else if (!strcmp(fn, "ceil")) r = gl_func1(p, "ceiling", arg);
        else if (!strcmp(fn, "det")) {
            if (arg->k == GN_MATRIX) r = gl_opaque(p, "det");
            else p->conv_err = 1, r = arg;
        } else if (!strcmp(fn, "Gamma") || !strcmp(fn, "gamma")) r = gl_func1(p, "gamma", arg);
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
            r = gl_func1(p, f, arg);
        }
    }
    if (r && sup && !(sup->k == GN_INT && !strcmp(sup->s, "0"))) r = gl_mk2(p, GN_POW, r, sup);
    return r;
}

/* func_common_args: atom | expr ',' | expr ',' args */
static int gl_common_args(GParser *p, int close, GNode **args, int *nargs) {
    GMark m = mark(p);
    GNode *a = gl_atom(p, NULL);
    if (a && peek(p) == close) {
        args[0] = a;
        *nargs = 1;
        return 1;
    }
    reset(p, m);
    int n = 0;
    GNode *e = gl_expr(p);
    if (!e || !accept(p, TK_COMMA)) {
        reset(p, m);
        return 0;
    }
    args[n++] = e;
    while (peek(p) != close) {
        GNode *x = gl_expr(p);
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
static GNode *gl_func_user(GParser *p) {
    GMark m = mark(p);
    if (!gl_is_atom_expr_start(peek(p))) return NULL;
    int from = p->pos;
    p->pos++;
    if (peek(p) == TK_UNDERSCORE && !gl_subexpr(p, NULL)) {
        reset(p, m);
        return NULL;
    }
    const char *name = gl_span_text(p, from, p->pos);
    GNode *sup = NULL;
    if (peek(p) == TK_CARET) {
        sup = gl_supexpr(p);
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
    if (!gl_common_args(p, close, args, &nargs) || !accept(p, close) ||
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
    if (sup) r = gl_mk2(p, GN_POW, r, sup);
    return r;
}

/* equality: expr (EQUAL | ASSIGN) expr (sum/product lower bound) */
static int gl_equality(GParser *p) {
    if (!gl_expr(p)) return 0;
    if (!accept(p, TK_EQUAL) && !accept(p, TK_ASSIGN)) return 0;
    return gl_expr(p) != NULL;
}

GNode *gl_func(GParser *p) {
    ENTER();
    int t = peek(p);
    GMark m = mark(p);
    GNode *x = NULL;
    if (t == TK_FUNC1 || t == TK_FUNC_GAMMA || t == TK_FUNC_MULTI || t == TK_OPERATORNAME) {
        x = gl_func_named(p);
        LEAVE(x);
    }
    if (gl_is_atom_expr_start(t)) LEAVE(gl_func_user(p));
    if (t == TK_SQRT) {
        p->pos++;
        GNode *root = NULL;
        if (peek(p) == TK_LBRACKET) {
            root = gl_wrapped(p, TK_LBRACKET, TK_RBRACKET);
            if (!root) {
                reset(p, m);
                LEAVE(NULL);
            }
        }
        GNode *base = gl_braced(p);
        if (!base) {
            reset(p, m);
            LEAVE(NULL);
        }
        GNode *e = root ? gl_divide(p, gnode_leaf(p->c, GN_INT, "1"), root) : gnode_rational(p->c, "1", "2");
        LEAVE(gl_mk2(p, GN_POW, base, e));
    }
    if (t == TK_SUM || t == TK_PROD) {
        p->pos++;
        /* (subeq supexpr | supexpr subeq) mp */
        int ok = 0;
        for (int order = 0; order < 2 && !ok; order++) {
            GMark mm = mark(p);
            int good = 1;
            for (int k = 0; k < 2 && good; k++) {
                if ((k == 0) == (order == 0)) {
                    good = accept(p, TK_UNDERSCORE) && accept(p, TK_LBRACE) && gl_equality(p) &&
                           accept(p, TK_RBRACE);
                } else {
                    good = gl_supexpr(p) != NULL;
                }
            }
            if (good && gl_mp(p, 0)) ok = 1;
            else reset(p, mm);
        }
        if (!ok) {
            reset(p, m);
            LEAVE(NULL);
        }
        LEAVE(gl_opaque(p, t == TK_SUM ? "Sum" : "Product"));
    }
    if (t == TK_LIM) {
        p->pos++;
        int ok = accept(p, TK_UNDERSCORE) && accept(p, TK_LBRACE);
        if (ok) {
            int v = peek(p);
            ok = (v == TK_LETTER || v == TK_GREEK || v == TK_OTHER_SYMBOL);
            if (ok) p->pos++;
        }
        ok = ok && accept(p, TK_LIM_APPROACH) && gl_expr(p);
        if (ok && peek(p) == TK_CARET) {
            ok = accept(p, TK_CARET) && accept(p, TK_LBRACE) &&
                 (accept(p, TK_ADD) || accept(p, TK_SUB)) && accept(p, TK_RBRACE);
        }
        ok = ok && accept(p, TK_RBRACE) && gl_mp(p, 0);
        if (!ok) {
            reset(p, m);
            LEAVE(NULL);
        }
        LEAVE(gl_opaque(p, "Limit"));
    }
    if (t == TK_INT) {
        p->pos++;
        /* bounds (optional), then integrand: additive? DIFFERENTIAL | frac | additive */
        if (peek(p) == TK_UNDERSCORE || peek(p) == TK_CARET) {
            for (int k = 0; k < 2; k++) {
                if (peek(p) == TK_UNDERSCORE) {
                    if (peek2(p) == TK_LBRACE && p->t[p->pos + 2].type == TK_RBRACE) p->pos += 3;
                    else if (!gl_subexpr(p, NULL)) {
                        reset(p, m);
                        LEAVE(NULL);
                    }
                } else if (peek(p) == TK_CARET) {
                    if (peek2(p) == TK_LBRACE && p->t[p->pos + 2].type == TK_RBRACE) p->pos += 3;
                    else if (!gl_supexpr(p)) {
                        reset(p, m);
                        LEAVE(NULL);
                    }
                }
            }
        }
        GMark mi = mark(p);
        if (gl_expr(p) && accept(p, TK_DIFFERENTIAL)) LEAVE(gl_opaque(p, "Integral"));
        reset(p, mi);
        if (accept(p, TK_DIFFERENTIAL)) LEAVE(gl_opaque(p, "Integral"));
        if (gl_expr(p)) LEAVE(gl_opaque(p, "Integral"));
        reset(p, m);
        LEAVE(NULL);
    }
    if (t == TK_EXP_E) {
        p->pos++;
        GNode *sup = NULL;
        if (peek(p) == TK_CARET) sup = gl_supexpr(p);
        if (sup) LEAVE(gl_func1(p, "exp", sup));
        LEAVE(gnode_leaf(p->c, GN_CONST, "E"));
    }
    LEAVE(NULL);
}

/* frac: \frac{expr}{expr} (derivatives d/dx -> opaque) */
GNode *gl_frac(GParser *p) {
    GMark m = mark(p);
    if (!accept(p, TK_FRAC)) return NULL;
    int up_from = p->pos + 1;
    GNode *top = gl_braced(p);
    int up_to = p->pos - 1;
    if (!top) {
        reset(p, m);
        return NULL;
    }
    int lo_from = p->pos + 1;
    GNode *bot = gl_braced(p);
    int lo_to = p->pos - 1;
    if (!bot) {
        reset(p, m);
        return NULL;
    }
    /* d/dx, \partial/\partial x */
    if (lo_to - lo_from == 1 && p->t[lo_from].type == TK_DIFFERENTIAL) return gl_opaque(p, "Derivative");
    if (lo_to - lo_from == 2 && p->t[lo_from].type == TK_SYMBOL && p->t[lo_from].n >= 8 &&
        !memcmp(p->t[lo_from].s, "\\partial", 8))
        return gl_opaque(p, "Derivative");
    (void)up_from;
    (void)up_to;
    return gl_divide(p, top, bot);
}

GNode *gl_binom(GParser *p) {
    GMark m = mark(p);
    GNode *top, *bot;
    if (accept(p, TK_BINOM)) {
        top = gl_braced(p);
        bot = top ? gl_braced(p) : NULL;
    } else if (accept(p, TK_LBRACE)) {
        top = gl_expr(p);
        bot = top && accept(p, TK_CHOOSE) ? gl_expr(p) : NULL;
        if (bot && !accept(p, TK_RBRACE)) bot = NULL;
    } else {
        return NULL;
    }
    if (!top || !bot) {
        reset(p, m);
        return NULL;
    }
    GNode *r = gl_mk2(p, GN_FUNC, top, bot);
    if (r) r->s = "binomial";
    return r;
}

/* matrix / det: rows of '&'-separated exprs */
GNode *gl_matrix(GParser *p) {
    GMark m = mark(p);
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
            GNode *x = gl_expr(p);
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
    if (t == TK_DET_START) return gl_opaque(p, "det");
    GNode *r = gnode_new(p->c, GN_MATRIX, nc);
    if (!r) return NULL;
    r->rows = rows;
    r->cols = cols;
    for (int i = 0; i < nc; i++) r->a[i] = cells[i];
    return r;
}
