/*
 * Comparison of a parsed prediction with a parsed gold, a port of Math-Verify's
 * sympy_expr_eq (grader.py) with three-valued answers:
 *
 *   1. assignments: x = 1 against 1 compares 1 with 1; x = 1 against y = 1 stays a relation;
 *      chains a = b = c keep their first left side and last right side
 *   2. a gold relation against a predicted set becomes a set (x > 2 -> (2, oo))
 *   3. structural equality
 *   4. relations: same kind and equal lhs - rhs, or flipped (a < b vs b > a), or the same
 *      solutions (proportional equations, one-variable linear (in)equalities)
 *   5. sets, tuples, intervals: intervals by ends and openness; sets order-free; real sets
 *      by their canonical form; an open interval (a, b) also matches the pair a, b
 *   6. symbols: case-insensitive names, "abc" written as a product of letters, e vs E
 *   7. scalars: Math-Verify's numeric rules (floats rounded to 6 decimals, integers and
 *      percentages), then value equality (exact, numeric, or at random points)
 *
 * GT_UNKNOWN means the answer depends on something this grader cannot evaluate (unknown
 * functions, integrals, nonlinear equations, symbolic interval ends): the verdict is then
 * "unverifiable" rather than a guess.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "grade_internal.h"

static int is_relation(const GNode *x) {
    if (gnode_is_relational(x)) return 1;
    if (x && x->k == GN_AND && x->n > 0) {
        for (int i = 0; i < x->n; i++)
            if (!gnode_is_relational(x->a[i])) return 0;
        return 1;
    }
    return 0;
}

static int is_equation(const GNode *x) {
    if (x && x->k == GN_EQ) return 1;
    if (x && x->k == GN_AND && x->n > 0) {
        for (int i = 0; i < x->n; i++)
            if (x->a[i]->k != GN_EQ) return 0;
        return 1;
    }
    return 0;
}

static int is_assignment(const GNode *x) {
    if (x && x->k == GN_EQ && gnode_only_symbols(x->a[0])) return 1;
    if (x && x->k == GN_AND && x->n > 0) {
        for (int i = 0; i < x->n; i++)
            if (x->a[i]->k != GN_EQ) return 0;
        return gnode_only_symbols(x->a[0]->a[0]);
    }
    return 0;
}

static const GNode *last_rel(const GNode *x) {
    while (x->k == GN_AND) x = x->a[x->n - 1];
    return x;
}
static const GNode *first_rel(const GNode *x) { return x->k == GN_AND ? x->a[0] : x; }

static int is_set_or_tuple(const GNode *x) { return gnode_is_set(x) || (x && x->k == GN_TUPLE); }

static int is_scalar(const GNode *x) {
    return x && !is_set_or_tuple(x) && !is_relation(x) && x->k != GN_AND && x->k != GN_NOT &&
           x->k != GN_MATRIX;
}

static GTri tri_and(GTri a, GTri b) {
    if (a == GT_FALSE || b == GT_FALSE) return GT_FALSE;
    if (a == GT_UNKNOWN || b == GT_UNKNOWN) return GT_UNKNOWN;
    return GT_TRUE;
}

static int has_opaque(const GNode *x) {
    if (!x) return 0;
    if (x->k == GN_OPAQUE) return 1;
    if (x->k == GN_FUNC && !strncmp(x->s, "uf:", 3)) return 1;
    if (x->k == GN_CONST && !strcmp(x->s, "zoo")) return 1;
    for (int i = 0; i < x->n; i++)
        if (has_opaque(x->a[i])) return 1;
    return 0;
}

/* ---- scalars ------------------------------------------------------------------------------ */

static const GNode *pct_inner(const GNode *x) { return x && x->k == GN_PCT ? x->a[0] : NULL; }

/* is_atomic_or_pct_atomic(x, kind) */
static int atomic_is(const GNode *x, GNodeKind k) {
    if (!x) return 0;
    if (x->k == k) return 1;
    const GNode *in = pct_inner(x);
    return in && in->k == k;
}

static int atomic_number(const GNode *x) {
    return atomic_is(x, GN_INT) || atomic_is(x, GN_RAT) || atomic_is(x, GN_FLOAT);
}

static GTri scalar_eq(GCtx *c, const GNode *g, const GNode *p);

static int is_zoo(const GNode *x) { return x->k == GN_CONST && !strcmp(x->s, "zoo"); }
static int is_inf(const GNode *x) {
    if (x->k == GN_CONST && (!strcmp(x->s, "oo") || !strcmp(x->s, "-oo"))) return 1;
    return x->k == GN_MUL && x->n == 2 && x->a[0]->k == GN_INT && !strcmp(x->a[0]->s, "-1") &&
           x->a[1]->k == GN_CONST && !strcmp(x->a[1]->s, "oo");
}

static GTri matrix_eq(GCtx *c, const GNode *g, const GNode *p) {
    if (g->rows != p->rows || g->cols != p->cols) return GT_FALSE;
    GTri r = GT_TRUE;
    for (int i = 0; i < g->n && r != GT_FALSE; i++) r = tri_and(r, scalar_eq(c, g->a[i], p->a[i]));
    return r;
}

static GTri scalar_eq(GCtx *c, const GNode *g, const GNode *p) {
    if (g->k == GN_MATRIX && p->k == GN_MATRIX) return matrix_eq(c, g, p);
    if (g->k == GN_MATRIX || p->k == GN_MATRIX) return GT_FALSE;
    if (!is_scalar(g) || !is_scalar(p)) return GT_FALSE;
    if (gnode_struct_eq(g, p)) return GT_TRUE;
    if (is_zoo(g) || is_zoo(p)) return GT_FALSE;
    if (is_inf(g) || is_inf(p)) {
        /* oo is a sympy Number: equal only to itself */
        const GNode *o = is_inf(g) ? p : g;
        return (is_inf(o) || ge_is_constant(o)) ? GT_FALSE : GT_UNKNOWN;
    }
    if (has_opaque(g) || has_opaque(p)) return GT_UNKNOWN;
    if (atomic_number(g) || atomic_number(p)) {
        if (atomic_is(g, GN_FLOAT) || atomic_is(p, GN_FLOAT)) {
            /* Math-Verify: a.round(6) == b.round(6) after doit (an Integer never equals a
             * Float there), then simplify(a - b).is_zero */
            GTri r = GT_FALSE;
            if (g->k != GN_INT && p->k != GN_INT) r = ge_rounded_equal(c, g, p, c->opt->float_rounding);
            if (r == GT_TRUE) return GT_TRUE;
            GTri v = ge_values_equal(c, g, p);
            if (v == GT_FALSE && r == GT_UNKNOWN) return GT_UNKNOWN;
            return v;
        }
        if (atomic_is(g, GN_INT) && atomic_is(p, GN_INT)) {
            const GNode *a = pct_inner(g) ? pct_inner(g) : g, *b = pct_inner(p) ? pct_inner(p) : p;
            if (!strcmp(a->s, b->s)) return GT_TRUE;
            return ge_values_equal(c, g, p);
        }
    }
    return ge_values_equal(c, g, p);
}

/* ---- symbols ------------------------------------------------------------------------------ */

static int is_E(const GNode *x) { return x && x->k == GN_CONST && !strcmp(x->s, "E"); }

static int lower_eq(const char *a, const char *b) {
    for (; *a && *b; a++, b++) {
        char x = *a, y = *b;
        if (x >= 'A' && x <= 'Z') x = (char)(x - 'A' + 'a');
        if (y >= 'A' && y <= 'Z') y = (char)(y - 'A' + 'a');
        if (x != y) return 0;
    }
    return *a == *b;
}

/* a Symbol against a product of symbols (and E), by concatenated names */
static int concat_matches(GCtx *c, const GNode *sym, const GNode *mul) {
    if (mul->k != GN_MUL) return -1;
    GStr b;
    gs_init(&b, c->a);
    for (int i = 0; i < mul->n; i++) {
        if (is_E(mul->a[i])) gs_putc(&b, 'e');
        else if (mul->a[i]->k == GN_SYM) gs_puts(&b, mul->a[i]->s);
        else return -1;
    }
    return lower_eq(sym->s, gs_cstr(&b));
}

static GTri compare_symbols(GCtx *c, const GNode *g, const GNode *p) {
    if ((g->k == GN_SYM && lower_eq(g->s, "e") && is_E(p)) || (p->k == GN_SYM && lower_eq(p->s, "e") && is_E(g)))
        return GT_TRUE;
    if (g->k == GN_SYM) {
        int m = concat_matches(c, g, p);
        if (m >= 0) return m ? GT_TRUE : GT_FALSE;
    }
    if (p->k == GN_SYM) {
        int m = concat_matches(c, p, g);
        if (m >= 0) return m ? GT_TRUE : GT_FALSE;
    }
    if (g->k == GN_SYM && p->k == GN_SYM) {
        /* names longer than one character compare case-insensitively (symbols are already
         * lowercased by the parser, except differentials like dX) */
        if (strlen(g->s) > 1 && strlen(p->s) > 1) return lower_eq(g->s, p->s) ? GT_TRUE : GT_FALSE;
        return strcmp(g->s, p->s) == 0 ? GT_TRUE : GT_FALSE;
    }
    return gnode_struct_eq(g, p) ? GT_TRUE : GT_FALSE;
}

/* ---- sets --------------------------------------------------------------------------------- */

/* deduplicated elements of a FiniteSet (structural equality, like sympy) */
static int dedup(GCtx *c, const GNode *s, const GNode ***out) {
    const GNode **el = ga_alloc(c->a, sizeof(GNode *) * (size_t)(s->n + 1));
    if (!el) return -1;
    int n = 0;
    for (int i = 0; i < s->n; i++) {
        int dup = 0;
        for (int j = 0; j < n && !dup; j++) dup = gnode_struct_eq(el[j], s->a[i]);
        if (!dup) el[n++] = s->a[i];
    }
    *out = el;
    return n;
}

typedef struct Keyed {
    const GNode *x;
    double key;
} Keyed;

static int keyed_cmp(const void *a, const void *b) {
    double x = ((const Keyed *)a)->key, y = ((const Keyed *)b)->key;
    return x < y ? -1 : x > y;
}

/* sort_key: numeric value of x (of the right side for assignments) */
static int sort_key(GCtx *c, const GNode *x, double *key) {
    if (is_assignment(x)) x = last_rel(x)->a[1];
    return is_scalar(x) && ge_is_constant(x) && ge_sort_key(c, x, key);
}

/* pairs gold and pred elements: by numeric order when every element has one, else by
 * matching (each gold element to an equal, unused pred element) */
static GTri pair_unordered(GCtx *c, const GNode **ge, const GNode **pe, int n) {
    Keyed *a = ga_alloc(c->a, sizeof(Keyed) * (size_t)(n + 1));
    Keyed *b = ga_alloc(c->a, sizeof(Keyed) * (size_t)(n + 1));
    if (!a || !b) return GT_UNKNOWN;
    int keyed = 1;
    for (int i = 0; i < n && keyed; i++) {
        a[i].x = ge[i];
        b[i].x = pe[i];
        keyed = sort_key(c, ge[i], &a[i].key) && sort_key(c, pe[i], &b[i].key);
    }
    if (keyed) {
        qsort(a, (size_t)n, sizeof(Keyed), keyed_cmp);
        qsort(b, (size_t)n, sizeof(Keyed), keyed_cmp);
        GTri r = GT_TRUE;
        for (int i = 0; i < n && r != GT_FALSE; i++) r = tri_and(r, gc_expr_eq(c, a[i].x, b[i].x));
        return r;
    }
    char *used = ga_alloc(c->a, (size_t)n + 1);
    if (!used) return GT_UNKNOWN;
    GTri r = GT_TRUE;
    for (int i = 0; i < n; i++) {
        int found = 0, unk = 0;
        for (int j = 0; j < n && !found; j++) {
            if (used[j]) continue;
            GTri e = gc_expr_eq(c, ge[i], pe[j]);
            if (e == GT_TRUE) {
                used[j] = 1;
                found = 1;
            } else if (e == GT_UNKNOWN) {
                unk = 1;
            }
        }
        if (!found) r = tri_and(r, unk ? GT_UNKNOWN : GT_FALSE);
        if (r == GT_FALSE) break;
    }
    return r;
}

/* sympy_deep_compare_set_and_tuple */
static GTri deep_compare(GCtx *c, const GNode *g, const GNode *p) {
    const GNode **ge, **pe;
    int gn, pn;
    if (g->k == GN_FSET) gn = dedup(c, g, &ge);
    else gn = g->n, ge = (const GNode **)g->a;
    if (p->k == GN_FSET) pn = dedup(c, p, &pe);
    else pn = p->n, pe = (const GNode **)p->a;
    if (gn < 0 || pn < 0) return GT_UNKNOWN;
    if (gn != pn) return GT_FALSE;
    if (g->k == GN_FSET) return pair_unordered(c, ge, pe, gn);
    if (p->k == GN_FSET) {
        /* gold tuple, pred set: the set in written order (duplicates included) */
        if (p->n != g->n) return GT_FALSE;
        pe = (const GNode **)p->a;
    }
    GTri r = GT_TRUE;
    for (int i = 0; i < gn && r != GT_FALSE; i++) r = tri_and(r, gc_expr_eq(c, ge[i], pe[i]));
    return r;
}

static GNode *singleton(GCtx *c, const GNode *x) {
    GNode *s = gnode_new(c, GN_FSET, 1);
    if (s) s->a[0] = (GNode *)x;
    return s;
}

static GTri compare_sets(GCtx *c, const GNode *gold, const GNode *pred) {
    const GNode *a = is_set_or_tuple(gold) ? gold : singleton(c, gold);
    const GNode *b = is_set_or_tuple(pred) ? pred : singleton(c, pred);
    if (!a || !b) return GT_UNKNOWN;
    if (a->k == GN_INTERVAL && b->k == GN_INTERVAL) {
        if (a->lo != b->lo || a->ro != b->ro) return GT_FALSE;
        GTri r = gc_expr_eq(c, a->a[0], b->a[0]);
        if (r == GT_FALSE) return r;
        return tri_and(r, gc_expr_eq(c, a->a[1], b->a[1]));
    }
    if (gnode_struct_eq(a, b)) return GT_TRUE;
    /* sets on the real line by canonical form; sets with symbolic ends or elements sympy
     * cannot reduce either (symmetric_difference(..).is_empty is None there) */
    if (gnode_is_set(a) && gnode_is_set(b) && ge_sets_equal(c, a, b) == GT_TRUE) return GT_TRUE;
    if ((a->k == GN_FSET || a->k == GN_TUPLE) && (b->k == GN_FSET || b->k == GN_TUPLE))
        return deep_compare(c, a, b);
    if (a->k == GN_INTERVAL && (b->k == GN_FSET || b->k == GN_TUPLE)) {
        if (a->lo && a->ro) {
            int bn = b->n;
            if (b->k == GN_FSET) {
                const GNode **tmp;
                bn = dedup(c, b, &tmp);
            }
            if (bn == 2) {
                GNode *t = gnode_new(c, GN_TUPLE, 2);
                if (!t) return GT_UNKNOWN;
                t->a[0] = a->a[0];
                t->a[1] = a->a[1];
                return deep_compare(c, t, b);
            }
        }
    }
    if (b->k == GN_INTERVAL && (a->k == GN_FSET || a->k == GN_TUPLE)) {
        if (b->lo && b->ro) {
            int an = a->n;
            if (a->k == GN_FSET) {
                const GNode **tmp;
                an = dedup(c, a, &tmp);
            }
            if (an == 2) {
                GNode *t = gnode_new(c, GN_TUPLE, 2);
                if (!t) return GT_UNKNOWN;
                t->a[0] = b->a[0];
                t->a[1] = b->a[1];
                return deep_compare(c, a, t);
            }
        }
    }
    return GT_FALSE;
}

/* ---- relations ---------------------------------------------------------------------------- */

static int sides_scalar(const GNode *r) { return is_scalar(r->a[0]) && is_scalar(r->a[1]); }

static GNodeKind inverse_kind(GNodeKind k) {
    switch (k) {
    case GN_LT: return GN_GT;
    case GN_GT: return GN_LT;
    case GN_LE: return GN_GE;
    case GN_GE: return GN_LE;
    default: return k;
    }
}

/* affine in its variables, syntactically: no variable under a power or a function, no
 * product of two variable factors (then equations that are not proportional have different
 * solutions, and sympy's solve() says so) */
static int affine(GCtx *c, const GNode *d) {
    if (!d) return 0;
    switch (d->k) {
    case GN_SYM: case GN_INT: case GN_RAT: case GN_FLOAT: case GN_CONST: case GN_PCT:
        return 1;
    case GN_ADD:
        for (int i = 0; i < d->n; i++)
            if (!affine(c, d->a[i])) return 0;
        return 1;
    case GN_MUL: {
        int var = 0;
        for (int i = 0; i < d->n; i++) {
            if (ge_is_constant(d->a[i])) continue;
            if (var || !affine(c, d->a[i])) return 0;
            var = 1;
        }
        return 1;
    }
    case GN_POW:
        return ge_is_constant(d);
    default:
        return ge_is_constant(d);
    }
}

static GTri solve_and_compare(GCtx *c, const GNode *g, const GNode *p) {
    if (g->k == GN_EQ && p->k == GN_EQ) {
        if (!sides_scalar(g) || !sides_scalar(p)) return GT_FALSE;
        GNode *dg = ge_sub(c, g->a[0], g->a[1]), *dp = ge_sub(c, p->a[0], p->a[1]);
        GTri r = ge_proportional(c, dg, dp);
        if (r == GT_TRUE) return GT_TRUE;
        const char *names[4];
        int n = ge_free_symbols(dg, names, 4);
        if (n == 1) {
            GTri s = ge_relations_same_solutions(c, g, p);
            if (s != GT_UNKNOWN) return s;
        }
        if (r == GT_FALSE && affine(c, dg) && affine(c, dp)) return GT_FALSE;
        return GT_UNKNOWN;
    }
    if (g->k == GN_EQ || p->k == GN_EQ) return GT_FALSE;
    if (g->k == GN_NE || p->k == GN_NE) return GT_UNKNOWN;
    return ge_relations_same_solutions(c, g, p);
}

static GTri compare_relational(GCtx *c, const GNode *g, const GNode *p) {
    if (g->k == GN_AND && p->k == GN_AND) {
        if (g->n != p->n) return GT_FALSE;
        GTri r = GT_TRUE;
        for (int i = 0; i < g->n && r != GT_FALSE; i++)
            r = tri_and(r, compare_relational(c, g->a[i], p->a[i]));
        return r;
    }
    if (!gnode_is_relational(g) || !gnode_is_relational(p)) return GT_FALSE;
    GTri unknown = GT_FALSE;
    if (sides_scalar(g) && sides_scalar(p)) {
        GNode *dg = ge_sub(c, g->a[0], g->a[1]);
        if (g->k == p->k) {
            GTri r = gc_expr_eq(c, dg, ge_sub(c, p->a[0], p->a[1]));
            if (r == GT_TRUE) return GT_TRUE;
            if (r == GT_UNKNOWN) unknown = GT_UNKNOWN;
        }
        if (g->k == GN_NE) return unknown; /* INVERSE_RELATIONS has no Ne: KeyError -> False */
        if (inverse_kind(g->k) == p->k) {
            GTri r = gc_expr_eq(c, dg, ge_sub(c, p->a[1], p->a[0]));
            if (r == GT_TRUE) return GT_TRUE;
            if (r == GT_UNKNOWN) unknown = GT_UNKNOWN;
        }
    } else if (g->k == GN_NE) {
        return GT_FALSE;
    }
    GTri s = solve_and_compare(c, g, p);
    if (s == GT_TRUE) return GT_TRUE;
    if (s == GT_UNKNOWN) return GT_UNKNOWN;
    return unknown;
}

/* ---- sympy_expr_eq ------------------------------------------------------------------------ */

static GNode *eq_node(GCtx *c, const GNode *l, const GNode *r) {
    GNode *e = gnode_new(c, GN_EQ, 2);
    if (!e) return NULL;
    e->a[0] = (GNode *)l;
    e->a[1] = (GNode *)r;
    return e;
}

GTri gc_expr_eq(GCtx *c, const GNode *gold, const GNode *pred) {
    if (!gold || !pred || c->limit_hit) return GT_UNKNOWN;
    if (++c->depth > c->opt->max_depth) {
        c->depth--;
        gctx_limit(c, "comparison nested too deeply");
        return GT_UNKNOWN;
    }
    GTri res;
    int ga = is_assignment(gold), pa = is_assignment(pred);
    int geq = is_equation(gold), peq = is_equation(pred);
    if (ga) gold = eq_node(c, first_rel(gold)->a[0], last_rel(gold)->a[1]);
    if (pa) pred = eq_node(c, first_rel(pred)->a[0], last_rel(pred)->a[1]);
    if (!gold || !pred) {
        res = GT_UNKNOWN;
        goto out;
    }
    if (peq && !geq) pred = last_rel(pred)->a[1];
    else if (ga && !peq) gold = last_rel(gold)->a[1];
    int as_set_unsure = 0;
    if (is_relation(gold) && gnode_is_set(pred)) {
        GNode *s = ge_relation_as_set(c, gold);
        if (s) gold = s;
        else {
            const char *names[4];
            as_set_unsure = ge_free_symbols(gold, names, 4) == 1;
        }
    }
    /* sympy_str_eq raises on a nan / zoo gold: Math-Verify then says False */
    if (gold->k == GN_CONST && !strcmp(gold->s, "zoo")) {
        res = GT_FALSE;
        goto out;
    }
    if (gnode_struct_eq(gold, pred)) {
        res = GT_TRUE;
        goto out;
    }
    if (is_relation(gold) && is_relation(pred)) res = compare_relational(c, gold, pred);
    else if (is_set_or_tuple(gold) || is_set_or_tuple(pred)) res = compare_sets(c, gold, pred);
    else if (gold->k == GN_SYM || pred->k == GN_SYM) res = compare_symbols(c, gold, pred);
    else if (is_relation(gold) || is_relation(pred) || gold->k == GN_NOT || pred->k == GN_NOT)
        res = GT_FALSE;
    else res = scalar_eq(c, gold, pred);
    if (res == GT_FALSE && as_set_unsure) res = GT_UNKNOWN;
out:
    c->depth--;
    return res;
}
