/*
 * Private to the LaTeX parser (grade_latex.c, grade_latex_expr.c, grade_latex_func.c,
 * grade_latex_set.c): the parser state over the token array, backtracking marks, the work and
 * depth bounds every rule enters through, the node builders of latex2sympy's conversions, and
 * the grammar rules one file calls in another (the grammar is recursive, so its files call
 * each other; nothing outside them includes this header).
 */
#ifndef SR_GRADE_GRADE_LATEX_H
#define SR_GRADE_GRADE_LATEX_H

#include "grade_internal.h"
#include "grade_lex.h"

/* ---- parser state ------------------------------------------------------------------------- */

typedef struct GParser {
    GCtx *c;
    GTok *t;      /* tokens, the last one TK_EOF */
    int nt, pos;
    int conv_err; /* latex2sympy would raise while converting the chosen parse */
} GParser;

static inline int peek(GParser *p) { return p->t[p->pos].type; }
static inline int peek2(GParser *p) { return p->pos + 1 <= p->nt ? p->t[p->pos + 1].type : TK_EOF; }
static inline int accept(GParser *p, int type) {
    if (p->t[p->pos].type == type) {
        p->pos++;
        return 1;
    }
    return 0;
}

/* one unit of parser work: 0 once the call's work bound (or any other bound) is exceeded */
static inline int step(GParser *p) {
    if (p->c->limit_hit) return 0;
    if (++p->c->steps > 400000) {
        gctx_limit(p->c, "parser work limit exceeded");
        return 0;
    }
    return 1;
}

/* every recursive rule starts with ENTER() and returns through LEAVE(value) */
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

/* backtracking: where to go back to, with the conversion-error flag of that point */
typedef struct GMark {
    int pos, conv_err;
} GMark;
static inline GMark mark(GParser *p) { return (GMark){p->pos, p->conv_err}; }
static inline void reset(GParser *p, GMark m) {
    p->pos = m.pos;
    p->conv_err = m.conv_err;
}

const char *gl_tok_text(GParser *p, int i);
/* getText() of tokens [from, to): token texts concatenated (whitespace is not a token) */
const char *gl_span_text(GParser *p, int from, int to);

/* ---- node builders (grade_latex.c) -------------------------------------------------------- */

GNode *gl_mk1(GParser *p, GNodeKind k, GNode *x);
GNode *gl_mk2(GParser *p, GNodeKind k, GNode *x, GNode *y);
GNode *gl_func1(GParser *p, const char *name, GNode *x);
GNode *gl_opaque(GParser *p, const char *what);
/* Add / Mul of x and y, flattening children of the same kind (sympy's evaluate=False shape) */
GNode *gl_flat(GParser *p, GNodeKind k, GNode *x, GNode *y);
/* -x as latex2sympy writes it: numbers negated, else Mul(-1, x) flattened */
GNode *gl_neg(GParser *p, GNode *x);
GNode *gl_divide(GParser *p, GNode *x, GNode *y);
/* get_symbol(text + subscript) with lowercase_symbols: Greek names, pi / gamma constants */
GNode *gl_get_symbol(GParser *p, const char *text);
static inline GNode *gl_minus_one(GParser *p) { return gnode_leaf(p->c, GN_INT, "-1"); }
static inline int gl_is_matrix(const GNode *x) { return x && x->k == GN_MATRIX; }

/* ---- grammar rules used across the parser's files ------------------------------------------ */

/* grade_latex_expr.c */
GNode *gl_expr(GParser *p);               /* additive: mp ((+|-) mp)* */
GNode *gl_mp(GParser *p, int nofunc);     /* mp: unary ((* | / | : | \mod ...) unary)* */
GNode *gl_relation(GParser *p);           /* expr (relop expr)*, chains into And */
GNode *gl_atom(GParser *p, const char **text);
GNode *gl_atom_expr(GParser *p);
int gl_subexpr(GParser *p, const char **text); /* '_' ...: 1 and the subscript text, or 0 */
GNode *gl_supexpr(GParser *p);            /* '^' (atom | '{' expr '}') */
GNode *gl_wrapped(GParser *p, int open, int close); /* open expr close */
GNode *gl_braced(GParser *p);             /* '{' expr '}' */
/* the name part of atom_expr: LETTER | GREEK | OTHER_SYMBOL | ACCENT */
static inline int gl_is_atom_expr_start(int t) {
    return t == TK_LETTER || t == TK_GREEK || t == TK_OTHER_SYMBOL || t == TK_ACCENT;
}

/* grade_latex_func.c */
GNode *gl_func(GParser *p);   /* named and user functions, \sqrt, \sum, \lim, \int, e^x */
GNode *gl_frac(GParser *p);
GNode *gl_binom(GParser *p);
GNode *gl_matrix(GParser *p);

/* grade_latex_set.c */
typedef struct GGroups { /* semicolon_elements: groups of comma elements */
    int ng;
    int *len;
    GNode ***el;
} GGroups;
/* semicolon-separated groups of comma-separated elements, each followed by ',' ';' or a
 * token of closers (a -1-terminated list); 1 if they parse */
int gl_elements(GParser *p, int no_relation, const int *closers, GGroups *g);
GNode *gl_groups_to_set_or_tuple(GParser *p, GGroups *g); /* convert_elements_to_set_or_tuple */
GNode *gl_atom_expr_list(GParser *p);   /* '(' atom_expr (',' atom_expr)* ')' | atom_expr */
GNode *gl_set_relation(GParser *p);     /* x \in S, x \notin S, or a set expression */

#endif
