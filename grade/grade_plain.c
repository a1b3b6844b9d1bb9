/*
 * The grader's second parser: sympy's parse_expr of the plain expressions Math-Verify's
 * expression regex finds in running text ("1/2", "3*4", "-2**3", "(1+2)/3"): numbers, + - * /
 * and ** with Python's precedence (** binds right, and tighter than a unary minus on its
 * left), parentheses, spaces and tabs. Anything else does not parse. Needs only grade_node.c.
 */
#include <stdlib.h>
#include <string.h>

#include "grade_internal.h"

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
    return gnode_number(e->c, num);
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
        if (gnode_is_number(x)) return gnode_negate(e->c, x);
        GNode *r = gnode_new(e->c, GN_MUL, 2);
        if (!r) return NULL;
        r->a[0] = gnode_leaf(e->c, GN_INT, "-1");
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
            inv->a[1] = gnode_leaf(e->c, GN_INT, "-1");
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
            if (gnode_is_number(y)) y = gnode_negate(e->c, y);
            else {
                GNode *m = gnode_new(e->c, GN_MUL, 2);
                if (!m) return NULL;
                m->a[0] = gnode_leaf(e->c, GN_INT, "-1");
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
