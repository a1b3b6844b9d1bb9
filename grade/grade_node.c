/*
 * The expression tree the parsers build and the comparison reads (GNode, grade_internal.h),
 * and sympy's numbers as nodes:
 *
 *   nodes     allocation in the call's arena (bounded by opt.max_nodes), leaves, kind
 *             predicates, structural equality (FiniteSet order-free, "0.50" == "0.5")
 *   numbers   Integer / Rational / Float as latex2sympy makes them: Rational(p, q) reduced to
 *             an Integer when q divides p (q == 0 is zoo), negation, sympy.Number(text),
 *             latex2sympy's parse_number (commas and digit-group spaces dropped), and the exact
 *             value of a decimal literal as a GMP rational
 *
 * This file needs only the arena (grade_util.c) and GMP: both parsers (grade_latex*.c,
 * grade_plain.c) and the evaluator (grade_eval.c) build on it, never the other way round.
 */
#include <gmp.h>
#include <stdlib.h>
#include <string.h>

#include "grade_internal.h"

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

GNode *gnode_leaf(GCtx *c, GNodeKind k, const char *s) {
    GNode *x = gnode_new(c, k, 0);
    if (x) x->s = s;
    return x;
}

GNode *gnode_int_str(GCtx *c, const char *digits) { return gnode_leaf(c, GN_INT, digits); }

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
            if (gnode_decimal_to_mpq(a, x->s) && gnode_decimal_to_mpq(b, y->s)) ok = mpq_equal(a, b);
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

const char *gnode_mpz_str(GCtx *c, const mpz_t z) {
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
GNode *gnode_rational(GCtx *c, const char *ps, const char *qs) {
    mpq_t q;
    mpq_init(q);
    GNode *x = NULL;
    mpz_set_str(mpq_numref(q), ps, 10);
    mpz_set_str(mpq_denref(q), qs, 10);
    if (mpz_sgn(mpq_denref(q)) == 0) {
        x = gnode_leaf(c, GN_CONST, "zoo");
    } else {
        mpq_canonicalize(q);
        if (bits_ok(c, mpq_numref(q)) && bits_ok(c, mpq_denref(q))) {
            if (mpz_cmp_ui(mpq_denref(q), 1) == 0) {
                x = gnode_leaf(c, GN_INT, gnode_mpz_str(c, mpq_numref(q)));
            } else {
                GStr b;
                gs_init(&b, c->a);
                gs_puts(&b, gnode_mpz_str(c, mpq_numref(q)));
                gs_putc(&b, '/');
                gs_puts(&b, gnode_mpz_str(c, mpq_denref(q)));
                x = gnode_leaf(c, GN_RAT, gs_cstr(&b));
            }
        }
    }
    mpq_clear(q);
    return x;
}

/* numerator / denominator strings of an INT or RAT node */
void gnode_rat_parts(GCtx *c, const GNode *x, const char **p, const char **q) {
    if (x->k == GN_INT) {
        *p = x->s;
        *q = "1";
        return;
    }
    const char *sl = strchr(x->s, '/');
    *p = ga_strndup(c->a, x->s, (size_t)(sl - x->s));
    *q = sl + 1;
}

int gnode_num_sign(const GNode *x) { /* INT/RAT: sign of the value */
    if (x->s[0] == '-') return -1;
    return strcmp(x->s, "0") == 0 ? 0 : 1;
}

GNode *gnode_negate(GCtx *c, const GNode *x) {
    if (x->k == GN_CONST) {
        if (strcmp(x->s, "oo") == 0) return gnode_leaf(c, GN_CONST, "-oo");
        if (strcmp(x->s, "-oo") == 0) return gnode_leaf(c, GN_CONST, "oo");
        return gnode_leaf(c, GN_CONST, x->s);
    }
    if (strcmp(x->s, "0") == 0) return gnode_leaf(c, x->k, x->s);
    if (x->s[0] == '-') return gnode_leaf(c, x->k, x->s + 1);
    GStr b;
    gs_init(&b, c->a);
    gs_putc(&b, '-');
    gs_puts(&b, x->s);
    return gnode_leaf(c, x->k, gs_cstr(&b));
}

/* sympy's Number class (Integer, Rational, Float, and oo / -oo / zoo) */
int gnode_is_sympy_number(const GNode *x) {
    return gnode_is_number(x) || (x && x->k == GN_CONST && (strcmp(x->s, "oo") == 0 ||
                                                          strcmp(x->s, "-oo") == 0 ||
                                                          strcmp(x->s, "zoo") == 0));
}

/* sympy.Number(text) of a digits / decimal / E-notation string */
GNode *gnode_number(GCtx *c, const char *s) {
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
    if (is_float) {
        /* the digit bound of Integers (below): a decimal's exact value is compared too, and a
         * longer one must not be read as a cut-off prefix of itself */
        size_t digits = 0;
        for (const char *q = p; *q && *q != 'E' && *q != 'e'; q++) digits += *q >= '0' && *q <= '9';
        if (digits > (size_t)c->opt->max_bits / 3 + 2) {
            gctx_limit(c, "number too large");
            return NULL;
        }
        return gnode_leaf(c, GN_FLOAT, s);
    }
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
        return gnode_leaf(c, GN_INT, gs_cstr(&b));
    }
    return gnode_leaf(c, GN_INT, p);
}

/* latex2sympy's parse_number: commas dropped, leading zeros of digit strings dropped (and
 * the thin spaces / spaces of grouped digits, see grade_lex.c) */
GNode *gnode_number_text(GCtx *c, const char *s, size_t n) {
    GStr b;
    gs_init(&b, c->a);
    for (size_t i = 0; i < n; i++)
        if (s[i] != ',' && s[i] != '\\' && s[i] != ' ') gs_putc(&b, s[i]);
    return gnode_number(c, gs_cstr(&b));
}

/* ---- decimal literals -> exact rationals -------------------------------------------------- */

int gnode_decimal_to_mpq(mpq_t q, const char *s) {
    int neg = 0;
    if (*s == '-') neg = 1, s++;
    else if (*s == '+') s++;
    mpz_t num, den;
    mpz_inits(num, den, NULL);
    mpz_set_ui(num, 0);
    mpz_set_ui(den, 1);
    int any = 0, frac = 0;
    long exp10 = 0;
    for (; *s; s++) {
        if (*s >= '0' && *s <= '9') {
            mpz_mul_ui(num, num, 10);
            mpz_add_ui(num, num, (unsigned long)(*s - '0'));
            if (frac) mpz_mul_ui(den, den, 10);
            any = 1;
            if (mpz_sizeinbase(num, 2) > 200000) { /* never a truncated value: not exact here */
                mpz_clears(num, den, NULL);
                return 0;
            }
        } else if (*s == '.' && !frac) {
            frac = 1;
        } else if (*s == 'E' || *s == 'e') {
            char *end;
            exp10 = strtol(s + 1, &end, 10);
            if (*end || exp10 > 10000 || exp10 < -10000) {
                mpz_clears(num, den, NULL);
                return 0;
            }
            break;
        } else {
            mpz_clears(num, den, NULL);
            return 0;
        }
    }
    if (!any) {
        mpz_clears(num, den, NULL);
        return 0;
    }
    mpz_t p10;
    mpz_init(p10);
    mpz_ui_pow_ui(p10, 10, (unsigned long)labs(exp10));
    if (exp10 > 0) mpz_mul(num, num, p10);
    else if (exp10 < 0) mpz_mul(den, den, p10);
    mpz_clear(p10);
    if (neg) mpz_neg(num, num);
    mpz_set(mpq_numref(q), num);
    mpz_set(mpq_denref(q), den);
    mpq_canonicalize(q);
    mpz_clears(num, den, NULL);
    return 1;
}

/* latex2sympy's is_expr_of_only_symbols: symbols (and their reciprocals) combined by any
 * operation, no number anywhere */
int gnode_only_symbols(const GNode *x) {
    if (!x) return 0;
    if (x->k == GN_SYM) return 1;
    if (x->k == GN_POW && x->a[1]->k == GN_INT && !strcmp(x->a[1]->s, "-1") &&
        (x->a[0]->k == GN_SYM || (x->a[0]->n > 0 && gnode_only_symbols(x->a[0]))))
        return 1;
    if (x->k == GN_INT || x->k == GN_RAT || x->k == GN_FLOAT || x->k == GN_CONST) return 0;
    if (x->n > 0) {
        for (int i = 0; i < x->n; i++)
            if (!gnode_only_symbols(x->a[i])) return 0;
        return 1;
    }
    return 0;
}
