/*
 * The LaTeX parser's sets (latex2sympy2's PS.g4, see grade_latex.c):
 *
 *   elements      a, b; c, d: groups of elements, each a \pm b, a set atom or a relation,
 *                 turned into a FiniteSet of values or of Tuples (convert_elements_to_set_or_tuple)
 *   set atoms     intervals (a, b] (a Tuple when b <= a, as latex2sympy decides by value),
 *                 \mathbb{R} and the other literal sets, \emptyset / {}, ordered tuples,
 *                 finite sets {1, 2}
 *   set relation  x \in S, (x, y) \notin S, and \cup / \cap / \setminus of set groups
 */
#include <stdlib.h>
#include <string.h>

#include "grade_latex.h"

static int in_set(int t, const int *set) {
    for (; *set >= 0; set++)
        if (*set == t) return 1;
    return 0;
}

/* interval endpoints compared as latex2sympy does (right <= left, etc.); -1 = undecidable */
static int cmp_endpoints(GParser *p, GNode *l, GNode *r) {
    double a, b;
    if (!ge_real_value(p->c, l, &a) || !ge_real_value(p->c, r, &b)) return -2;
    return a < b ? -1 : a > b ? 1 : 0;
}

static GNode *make_interval(GParser *p, GNode *l, GNode *r, int lo, int ro) {
    /* (l, r) with r <= l, [l, r] with r < l: a Tuple (latex2sympy) */
    int c = cmp_endpoints(p, l, r);
    if (c != -2 && ((lo && ro && c >= 0) || (!lo && !ro && c > 0))) return gl_mk2(p, GN_TUPLE, l, r);
    if (c != -2) {
        if (c > 0) return gnode_new(p->c, GN_EMPTY, 0); /* sympy Interval(l > r) */
        if (c == 0) {
            if (lo || ro) return gnode_new(p->c, GN_EMPTY, 0);
            GNode *s = gnode_new(p->c, GN_FSET, 1);
            if (s) s->a[0] = l;
            return s;
        }
    }
    GNode *x = gl_mk2(p, GN_INTERVAL, l, r);
    if (!x) return NULL;
    /* sympy opens infinite ends */
    x->lo = lo || (l->k == GN_CONST && (!strcmp(l->s, "-oo") || !strcmp(l->s, "oo")));
    x->ro = ro || (r->k == GN_CONST && (!strcmp(r->s, "oo") || !strcmp(r->s, "-oo")));
    return x;
}

static GNode *gl_groups_flat_set(GParser *p, GGroups *g, GNodeKind k) {
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
GNode *gl_groups_to_set_or_tuple(GParser *p, GGroups *g) {
    if (g->ng == 1) {
        if (g->len[0] == 1) return g->el[0][0];
        return gl_groups_flat_set(p, g, GN_FSET);
    }
    int all1 = 1;
    for (int i = 0; i < g->ng; i++) all1 &= g->len[i] == 1;
    if (all1) return gl_groups_flat_set(p, g, GN_FSET);
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

static GNode *gl_set_atom(GParser *p) {
    ENTER();
    GMark m = mark(p);
    int t = peek(p);
    /* interval */
    if (t == TK_LBRACKET || t == TK_LPAREN || t == TK_LPAREN_VIS || t == TK_LBRACK || t == TK_LGROUP) {
        p->pos++;
        GNode *l = gl_expr(p);
        if (l && accept(p, TK_COMMA)) {
            GNode *r = gl_expr(p);
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
        LEAVE(gnode_leaf(p->c, GN_SETLIT, nm));
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
        GGroups g;
        if (gl_elements(p, 0, closers, &g) && accept(p, close)) {
            if (g.ng == 1 && g.len[0] == 1) LEAVE(g.el[0][0]);
            LEAVE(gl_groups_flat_set(p, &g, GN_TUPLE));
        }
        reset(p, m);
    }
    /* finite_set */
    if (t == TK_LBRACE || t == TK_LBRACE_VIS || (t == TK_BOXED && peek2(p) == TK_LBRACE)) {
        int close = t == TK_LBRACE_VIS ? TK_RBRACE_VIS : TK_RBRACE;
        int closers[] = {close, -1};
        p->pos += t == TK_BOXED ? 2 : 1;
        GGroups g;
        if (gl_elements(p, 0, closers, &g) && accept(p, close)) {
            if (t == TK_BOXED) LEAVE(gl_groups_to_set_or_tuple(p, &g));
            LEAVE(gl_groups_flat_set(p, &g, GN_FSET));
        }
        reset(p, m);
    }
    LEAVE(NULL);
}

/* element: plus_minus_expr | set_atom | relation (expr when no_relation); returns 1 or 2
 * values in out. The element must be followed by ',' ';' or a closer. */
static int gl_element(GParser *p, int no_relation, const int *closers, GNode **out) {
    if (!step(p)) return 0;
    GMark m = mark(p);
#define FOLLOW_OK() (peek(p) == TK_COMMA || peek(p) == TK_SEMICOLON || in_set(peek(p), closers))
    /* plus_minus_expr: expr \pm expr | \pm expr */
    if (accept(p, TK_PLUS_MINUS)) {
        GNode *x = gl_expr(p);
        if (x && FOLLOW_OK()) {
            out[0] = gl_neg(p, x);
            out[1] = x;
            return out[0] && out[1] ? 2 : 0;
        }
        reset(p, m);
    } else {
        GNode *l = gl_expr(p);
        if (l && accept(p, TK_PLUS_MINUS)) {
            GNode *r = gl_expr(p);
            if (r && FOLLOW_OK()) {
                GNode *a = gnode_new(p->c, GN_ADD, 2), *b = gnode_new(p->c, GN_ADD, 2);
                if (!a || !b) return 0;
                a->a[0] = l;
                a->a[1] = r;
                b->a[0] = l;
                b->a[1] = gl_neg(p, r);
                out[0] = a;
                out[1] = b;
                return b->a[1] ? 2 : 0;
            }
        }
        reset(p, m);
    }
    GNode *s = gl_set_atom(p);
    if (s && FOLLOW_OK()) {
        out[0] = s;
        return 1;
    }
    reset(p, m);
    GNode *r = no_relation ? gl_expr(p) : gl_relation(p);
    if (r && FOLLOW_OK()) {
        out[0] = r;
        return 1;
    }
    reset(p, m);
    return 0;
#undef FOLLOW_OK
}

int gl_elements(GParser *p, int no_relation, const int *closers, GGroups *g) {
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
            int k = gl_element(p, no_relation, closers, two);
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
GNode *gl_atom_expr_list(GParser *p) {
    GMark m = mark(p);
    if (accept(p, TK_LPAREN)) {
        GNode *xs[64];
        int n = 0;
        for (;;) {
            GNode *x = gl_atom_expr(p);
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
    return gl_atom_expr(p);
}

/* set_relation: atom_expr_list (\in | \notin | =) set_relation | minus_expr
 * (\subseteq / \supseteq are not supported: latex2sympy returns a bool there) */
static GNode *gl_minus_expr(GParser *p);

GNode *gl_set_relation(GParser *p) {
    ENTER();
    GMark m = mark(p);
    GNode *l = gl_atom_expr_list(p);
    if (l) {
        int t = peek(p);
        if (t == TK_IN || t == TK_NOTIN || t == TK_ASSIGN) {
            p->pos++;
            GNode *r = gl_set_relation(p);
            if (r) {
                GNode *eq = gl_mk2(p, GN_EQ, l, r);
                if (t == TK_NOTIN) eq = gl_mk1(p, GN_NOT, eq);
                if (peek(p) == TK_SUBSET || peek(p) == TK_SUPSET) LEAVE(NULL);
                LEAVE(eq);
            }
        }
    }
    reset(p, m);
    GNode *x = gl_minus_expr(p);
    if (x && (peek(p) == TK_SUBSET || peek(p) == TK_SUPSET)) LEAVE(NULL);
    LEAVE(x);
}

static GNode *gl_set_group(GParser *p) {
    ENTER();
    GMark m = mark(p);
    if (accept(p, TK_LPAREN)) {
        GNode *x = gl_minus_expr(p);
        if (x && accept(p, TK_RPAREN)) LEAVE(x);
        reset(p, m);
    }
    LEAVE(gl_set_atom(p));
}

static GNode *as_set(GParser *p, GNode *x) {
    if (x && x->k == GN_TUPLE) {
        GNode *s = gnode_new(p->c, GN_FSET, x->n);
        if (!s) return NULL;
        for (int i = 0; i < x->n; i++) s->a[i] = x->a[i];
        return s;
    }
    return x;
}

static GNode *gl_inter_expr(GParser *p) {
    ENTER();
    GNode *x = gl_set_group(p);
    while (x && peek(p) == TK_INTERSECTION) {
        GMark m = mark(p);
        p->pos++;
        GNode *y = gl_set_group(p);
        if (!y) {
            reset(p, m);
            break;
        }
        x = gl_mk2(p, GN_INTER, as_set(p, x), as_set(p, y));
    }
    LEAVE(x);
}

static GNode *gl_union_expr(GParser *p) {
    ENTER();
    GNode *x = gl_inter_expr(p);
    while (x && peek(p) == TK_UNION) {
        GMark m = mark(p);
        p->pos++;
        GNode *y = gl_inter_expr(p);
        if (!y) {
            reset(p, m);
            break;
        }
        x = gl_mk2(p, GN_UNION, as_set(p, x), as_set(p, y));
    }
    LEAVE(x);
}

static GNode *gl_minus_expr(GParser *p) {
    ENTER();
    GNode *x = gl_union_expr(p);
    while (x && peek(p) == TK_SET_MINUS) {
        GMark m = mark(p);
        p->pos++;
        GNode *y = gl_union_expr(p);
        if (!y) {
            reset(p, m);
            break;
        }
        x = gl_mk2(p, GN_COMPL, x, y);
    }
    LEAVE(x);
}
