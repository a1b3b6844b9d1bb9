/*
 * Values of parsed answers, for the comparison:
 *
 *   exact     Integer / Rational / decimal literals, + - * /, integer powers and exact roots
 *             (\sqrt{16}, 8^{1/3}), |x|, floor, ceil, n!, binomials, gcd / lcm, mod, max /
 *             min, percentages: GMP rationals, sizes bounded by opt.max_bits.
 *   numeric   everything else (\pi, e, \sqrt{2}, logs, trig, ...): complex doubles. Two
 *             constants are equal when they agree to ~1e-10 (relative), which is what sympy's
 *             15-digit evalf / simplify decides for the answers seen in practice; values too
 *             large for doubles that are not exact give "unknown".
 *   variables evaluated at four pseudo-random real points (both signs, seeded): equal iff
 *             equal at every point where both are defined (at least two such points), the
 *             numeric stand-in for simplify(a - b) == 0 with real symbols.
 *   real sets unions / intersections / differences of intervals and finite sets of constants
 *             reduced to sorted disjoint intervals, so (1,2] U (2,3) equals (1,3).
 */
#include <complex.h>
#include <gmp.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grade_internal.h"

static int int_to_mpq(mpq_t q, const char *s) {
    if (mpz_set_str(mpq_numref(q), s[0] == '+' ? s + 1 : s, 10) != 0) return 0;
    mpz_set_ui(mpq_denref(q), 1);
    return 1;
}

static int rat_to_mpq(mpq_t q, const char *s) {
    if (mpq_set_str(q, s, 10) != 0) return 0;
    mpq_canonicalize(q);
    return 1;
}

/* ---- values ------------------------------------------------------------------------------- */

typedef struct GV {
    int ok;       /* has a value */
    int exact;    /* q is the exact value */
    mpq_t q;
    double complex z;
    double m; /* error scale: rounding errors of z are ~1e-16 * m (sums of |terms|, ...) */
} GV;

typedef struct GEnv {
    int n;
    const char **names;
    double *vals;
} GEnv;

static void gv_init(GV *v) {
    v->ok = 0;
    v->exact = 0;
    mpq_init(v->q);
    v->z = 0;
    v->m = 0;
}
static void gv_clear(GV *v) { mpq_clear(v->q); }

static void gv_set_exact(GV *v) {
    v->ok = 1;
    v->exact = 1;
    v->z = mpq_get_d(v->q);
    v->m = cabs(v->z);
}

static int too_big(GCtx *c, const mpq_t q) {
    size_t bits = mpz_sizeinbase(mpq_numref(q), 2) + mpz_sizeinbase(mpq_denref(q), 2);
    if (bits > (size_t)c->opt->max_bits) {
        gctx_limit(c, "number too large");
        return 1;
    }
    return 0;
}

static int finite_z(double complex z) { return isfinite(creal(z)) && isfinite(cimag(z)); }

static void eval(GCtx *c, const GNode *x, const GEnv *env, GV *out, int depth);

static double symbol_value(const GEnv *env, const char *name, int *found) {
    for (int i = 0; env && i < env->n; i++)
        if (strcmp(env->names[i], name) == 0) {
            *found = 1;
            return env->vals[i];
        }
    *found = 0;
    return 0;
}

static int is_real_z(double complex z) {
    return fabs(cimag(z)) <= 1e-12 * (1.0 + fabs(creal(z)));
}

/* exact q-th root of a nonnegative rational, if there is one */
static int exact_root(mpq_t r, const mpq_t a, unsigned long k) {
    if (mpq_sgn(a) < 0) return 0;
    mpz_t n, d;
    mpz_inits(n, d, NULL);
    int ok = mpz_root(n, mpq_numref(a), k) && mpz_root(d, mpq_denref(a), k);
    if (ok) {
        mpz_set(mpq_numref(r), n);
        mpz_set(mpq_denref(r), d);
        mpq_canonicalize(r);
    }
    mpz_clears(n, d, NULL);
    return ok;
}

/* a^e for exact a and exact e (integer, or p/q with small q) */
static int pow_exact(GCtx *c, mpq_t r, const mpq_t a, const mpq_t e) {
    if (mpz_cmp_ui(mpq_denref(e), 1) == 0) {
        if (!mpz_fits_slong_p(mpq_numref(e))) return 0;
        long k = mpz_get_si(mpq_numref(e));
        if (mpq_sgn(a) == 0 && k < 0) return 0; /* zoo */
        if (mpq_sgn(a) == 0 || (mpz_cmpabs_ui(mpq_numref(a), 1) == 0 && mpz_cmp_ui(mpq_denref(a), 1) == 0)) {
            /* 0, 1, -1 to any power */
            mpq_set(r, a);
            if (mpq_sgn(a) < 0 && k % 2 == 0) mpq_neg(r, r);
            if (mpq_sgn(a) == 0 && k == 0) mpq_set_ui(r, 1, 1);
            return 1;
        }
        size_t bits = mpz_sizeinbase(mpq_numref(a), 2) + mpz_sizeinbase(mpq_denref(a), 2);
        if ((double)bits * (double)labs(k) > (double)c->opt->max_bits) {
            gctx_limit(c, "number too large");
            return 0;
        }
        unsigned long uk = (unsigned long)labs(k);
        mpz_pow_ui(mpq_numref(r), mpq_numref(a), uk);
        mpz_pow_ui(mpq_denref(r), mpq_denref(a), uk);
        mpq_canonicalize(r);
        if (k < 0) mpq_inv(r, r);
        return 1;
    }
    /* rational exponent p/q: exact only when a is a perfect q-th power */
    if (!mpz_fits_slong_p(mpq_numref(e)) || mpz_cmp_ui(mpq_denref(e), 64) > 0) return 0;
    unsigned long q = mpz_get_ui(mpq_denref(e));
    mpq_t root, pe;
    mpq_inits(root, pe, NULL);
    int ok = exact_root(root, a, q);
    if (ok) {
        mpq_set_si(pe, mpz_get_si(mpq_numref(e)), 1);
        ok = pow_exact(c, r, root, pe);
    }
    mpq_clears(root, pe, NULL);
    return ok;
}

static double complex gamma_z(double complex z, int *ok) {
    if (!is_real_z(z)) {
        *ok = 0;
        return 0;
    }
    return tgamma(creal(z));
}

static void eval_func(GCtx *c, const GNode *x, const GEnv *env, GV *out, int depth) {
    const char *f = x->s;
    if (!strncmp(f, "uf:", 3)) return; /* undefined function: no value */
    GV a[16];
    int n = x->n < 16 ? x->n : 16;
    for (int i = 0; i < n; i++) gv_init(&a[i]);
    int ok = n > 0;
    for (int i = 0; i < n && ok; i++) {
        eval(c, x->a[i], env, &a[i], depth + 1);
        ok = a[i].ok;
    }
    if (!ok) goto done;
    double complex z = a[0].z, r = 0;
    int exact = 0;
    if (!strcmp(f, "sin")) r = csin(z);
    else if (!strcmp(f, "cos")) r = ccos(z);
    else if (!strcmp(f, "tan")) r = ctan(z);
    else if (!strcmp(f, "csc")) r = 1.0 / csin(z);
    else if (!strcmp(f, "sec")) r = 1.0 / ccos(z);
    else if (!strcmp(f, "cot")) r = ccos(z) / csin(z);
    else if (!strcmp(f, "asin")) r = casin(z);
    else if (!strcmp(f, "acos")) r = cacos(z);
    else if (!strcmp(f, "atan")) r = catan(z);
    else if (!strcmp(f, "acsc")) r = casin(1.0 / z);
    else if (!strcmp(f, "asec")) r = cacos(1.0 / z);
    else if (!strcmp(f, "acot")) r = catan(1.0 / z);
    else if (!strcmp(f, "sinh")) r = csinh(z);
    else if (!strcmp(f, "cosh")) r = ccosh(z);
    else if (!strcmp(f, "tanh")) r = ctanh(z);
    else if (!strcmp(f, "asinh")) r = casinh(z);
    else if (!strcmp(f, "acosh")) r = cacosh(z);
    else if (!strcmp(f, "atanh")) r = catanh(z);
    else if (!strcmp(f, "exp")) r = cexp(z);
    else if (!strcmp(f, "log")) {
        if (n < 2 || z == 0 || a[1].z == 0 || a[1].z == 1) goto done;
        if (cabs(z) <= 1e-12 * a[0].m) goto done; /* log of a numerically-zero value */
        r = clog(z) / clog(a[1].z);
    } else if (!strcmp(f, "Abs")) {
        if (a[0].exact) {
            mpq_abs(out->q, a[0].q);
            exact = 1;
        } else r = cabs(z);
    } else if (!strcmp(f, "floor") || !strcmp(f, "ceiling")) {
        int fl = f[0] == 'f';
        if (a[0].exact) {
            mpz_t t;
            mpz_init(t);
            if (fl) mpz_fdiv_q(t, mpq_numref(a[0].q), mpq_denref(a[0].q));
            else mpz_cdiv_q(t, mpq_numref(a[0].q), mpq_denref(a[0].q));
            mpq_set_z(out->q, t);
            mpz_clear(t);
            exact = 1;
        } else {
            if (!is_real_z(z)) goto done;
            double v = creal(z), rv = fl ? floor(v) : ceil(v);
            if (fabs(v - rv) < 1e-9 * (1 + fabs(v)) || fabs(v - (fl ? rv + 1 : rv - 1)) < 1e-9 * (1 + fabs(v)))
                goto done; /* too close to an integer to decide numerically */
            r = rv;
        }
    } else if (!strcmp(f, "factorial") || !strcmp(f, "gamma")) {
        int fact = f[0] == 'f';
        if (a[0].exact && mpz_cmp_ui(mpq_denref(a[0].q), 1) == 0) {
            mpz_t t;
            mpz_init_set(t, mpq_numref(a[0].q));
            if (!fact) mpz_sub_ui(t, t, 1);
            if (mpz_sgn(t) >= 0 && mpz_cmp_ui(t, 5000) <= 0) {
                mpz_fac_ui(mpq_numref(out->q), mpz_get_ui(t));
                mpz_set_ui(mpq_denref(out->q), 1);
                exact = 1;
            }
            mpz_clear(t);
            if (!exact) goto done;
        } else {
            int gok = 1;
            r = gamma_z(fact ? z + 1.0 : z, &gok);
            if (!gok) goto done;
        }
    } else if (!strcmp(f, "binomial")) {
        if (n == 2 && a[0].exact && a[1].exact && mpz_cmp_ui(mpq_denref(a[0].q), 1) == 0 &&
            mpz_cmp_ui(mpq_denref(a[1].q), 1) == 0 && mpz_fits_ulong_p(mpq_numref(a[1].q)) &&
            mpz_cmp_ui(mpq_numref(a[1].q), 100000) <= 0) {
            mpz_bin_ui(mpq_numref(out->q), mpq_numref(a[0].q), mpz_get_ui(mpq_numref(a[1].q)));
            mpz_set_ui(mpq_denref(out->q), 1);
            exact = 1;
        } else if (n == 2 && is_real_z(a[0].z) && is_real_z(a[1].z)) {
            double nn = creal(a[0].z), kk = creal(a[1].z);
            r = tgamma(nn + 1) / (tgamma(kk + 1) * tgamma(nn - kk + 1));
        } else goto done;
    } else if (!strcmp(f, "Mod")) {
        if (n == 2 && a[0].exact && a[1].exact && mpq_sgn(a[1].q) != 0) {
            /* a - b*floor(a/b) */
            mpq_t t;
            mpq_init(t);
            mpq_div(t, a[0].q, a[1].q);
            mpz_t fl;
            mpz_init(fl);
            mpz_fdiv_q(fl, mpq_numref(t), mpq_denref(t));
            mpq_set_z(t, fl);
            mpq_mul(t, t, a[1].q);
            mpq_sub(out->q, a[0].q, t);
            mpq_clear(t);
            mpz_clear(fl);
            exact = 1;
        } else goto done;
    } else if (!strcmp(f, "gcd") || !strcmp(f, "lcm")) {
        mpz_t g;
        mpz_init(g);
        int allint = 1;
        for (int i = 0; i < n; i++)
            allint &= a[i].exact && mpz_cmp_ui(mpq_denref(a[i].q), 1) == 0;
        if (!allint) {
            mpz_clear(g);
            goto done;
        }
        mpz_set(g, mpq_numref(a[0].q));
        for (int i = 1; i < n; i++) {
            if (f[0] == 'g') mpz_gcd(g, g, mpq_numref(a[i].q));
            else mpz_lcm(g, g, mpq_numref(a[i].q));
        }
        if (n == 1) mpz_abs(g, g);
        mpq_set_z(out->q, g);
        mpz_clear(g);
        exact = 1;
    } else if (!strcmp(f, "max") || !strcmp(f, "min")) {
        int best = 0, allexact = 1;
        for (int i = 0; i < n; i++) {
            if (!is_real_z(a[i].z)) goto done;
            allexact &= a[i].exact;
        }
        for (int i = 1; i < n; i++) {
            int better;
            if (allexact) better = f[1] == 'a' ? mpq_cmp(a[i].q, a[best].q) > 0 : mpq_cmp(a[i].q, a[best].q) < 0;
            else better = f[1] == 'a' ? creal(a[i].z) > creal(a[best].z) : creal(a[i].z) < creal(a[best].z);
            if (better) best = i;
        }
        if (allexact) {
            mpq_set(out->q, a[best].q);
            exact = 1;
        } else r = a[best].z;
    } else {
        goto done; /* unknown function */
    }
    if (exact) {
        if (too_big(c, out->q)) goto done;
        gv_set_exact(out);
    } else {
        if (!finite_z(r)) goto done;
        out->ok = 1;
        out->exact = 0;
        out->z = r;
        /* error scale: |f'(x)| * (error scale of x), roughly */
        double mx = a[0].m, ar = cabs(r), az = cabs(a[0].z);
        if (!strcmp(f, "exp") || !strcmp(f, "gamma") || !strcmp(f, "factorial") ||
            !strcmp(f, "sinh") || !strcmp(f, "cosh"))
            out->m = ar * fmax(1.0, mx);
        else if (!strcmp(f, "log"))
            out->m = fmax(ar, az > 0 ? mx / az : mx) / fmax(1e-300, cabs(clog(a[1].z)));
        else
            out->m = fmax(ar, mx);
    }
done:
    for (int i = 0; i < n; i++) gv_clear(&a[i]);
}

static void eval(GCtx *c, const GNode *x, const GEnv *env, GV *out, int depth) {
    out->ok = 0;
    out->exact = 0;
    if (!x || depth > c->opt->max_depth || c->limit_hit) {
        if (x && depth > c->opt->max_depth) gctx_limit(c, "expression nested too deeply");
        return;
    }
    switch (x->k) {
    case GN_INT:
        if (int_to_mpq(out->q, x->s) && !too_big(c, out->q)) gv_set_exact(out);
        return;
    case GN_RAT:
        if (rat_to_mpq(out->q, x->s) && !too_big(c, out->q)) gv_set_exact(out);
        return;
    case GN_FLOAT:
        if (gnode_decimal_to_mpq(out->q, x->s) && !too_big(c, out->q)) gv_set_exact(out);
        return;
    case GN_CONST:
        out->ok = 1;
        if (!strcmp(x->s, "pi")) out->z = M_PI;
        else if (!strcmp(x->s, "E")) out->z = M_E;
        else if (!strcmp(x->s, "EulerGamma")) out->z = 0.57721566490153286061;
        else if (!strcmp(x->s, "I")) out->z = I;
        else out->ok = 0; /* oo, zoo */
        out->m = cabs(out->z);
        return;
    case GN_SYM: {
        int found;
        double v = symbol_value(env, x->s, &found);
        if (found) {
            out->ok = 1;
            out->z = v;
            out->m = fabs(v);
        }
        return;
    }
    case GN_PCT: {
        eval(c, x->a[0], env, out, depth + 1);
        if (!out->ok) return;
        if (out->exact) {
            mpq_t h;
            mpq_init(h);
            mpq_set_ui(h, 1, 100);
            mpq_mul(out->q, out->q, h);
            mpq_clear(h);
            gv_set_exact(out);
        } else {
            out->z /= 100.0;
            out->m /= 100.0;
        }
        return;
    }
    case GN_ADD:
    case GN_MUL: {
        int add = x->k == GN_ADD;
        GV t;
        gv_init(&t);
        mpq_set_ui(out->q, add ? 0 : 1, 1);
        double complex acc = add ? 0 : 1;
        double macc = add ? 0 : 1;
        int exact = 1;
        for (int i = 0; i < x->n; i++) {
            eval(c, x->a[i], env, &t, depth + 1);
            if (!t.ok) {
                gv_clear(&t);
                out->ok = 0;
                return;
            }
            if (exact && t.exact) {
                if (add) mpq_add(out->q, out->q, t.q);
                else mpq_mul(out->q, out->q, t.q);
                if (too_big(c, out->q)) {
                    gv_clear(&t);
                    return;
                }
            } else {
                exact = 0;
            }
            acc = add ? acc + t.z : acc * t.z;
            macc = add ? macc + t.m : macc * t.m;
        }
        gv_clear(&t);
        if (exact) {
            gv_set_exact(out);
        } else {
            out->ok = finite_z(acc) && isfinite(macc);
            out->z = acc;
            out->m = macc;
        }
        return;
    }
    case GN_POW: {
        GV b, e;
        gv_init(&b);
        gv_init(&e);
        eval(c, x->a[0], env, &b, depth + 1);
        eval(c, x->a[1], env, &e, depth + 1);
        if (b.ok && e.ok) {
            if (b.exact && e.exact && pow_exact(c, out->q, b.q, e.q) && !too_big(c, out->q)) {
                gv_set_exact(out);
            } else if (!c->limit_hit) {
                double complex r;
                if (b.z == 0 && creal(e.z) <= 0) r = NAN;
                else if (creal(e.z) < 0 && cabs(b.z) <= 1e-12 * b.m) r = NAN; /* ~0 ^ negative */
                else if (e.exact && mpz_cmp_ui(mpq_denref(e.q), 1) == 0 && mpz_fits_slong_p(mpq_numref(e.q)) &&
                         labs(mpz_get_si(mpq_numref(e.q))) <= 64) {
                    long k = mpz_get_si(mpq_numref(e.q));
                    r = 1;
                    double complex bb = k < 0 ? 1.0 / b.z : b.z;
                    for (long i = 0; i < labs(k); i++) r *= bb;
                } else if (is_real_z(b.z) && creal(b.z) > 0 && is_real_z(e.z)) {
                    r = pow(creal(b.z), creal(e.z));
                } else {
                    r = cpow(b.z, e.z);
                }
                out->ok = finite_z(r);
                out->z = r;
                double ab = cabs(b.z);
                /* exact operands carry no error of their own */
                double bm = b.exact ? 0.0 : b.m, em = e.exact ? 0.0 : e.m;
                out->m = cabs(r) * fmax(1.0, (ab > 0 ? cabs(e.z) * bm / ab : 1.0) +
                                                  em * (ab > 0 ? fabs(log(ab)) : 0.0));
                if (!isfinite(out->m)) out->ok = 0;
            }
        }
        gv_clear(&b);
        gv_clear(&e);
        return;
    }
    case GN_FUNC:
        eval_func(c, x, env, out, depth);
        return;
    default:
        return; /* sets, relations, matrices, opaque: no scalar value */
    }
}

/* ---- symbols and random points ------------------------------------------------------------ */

static int collect_syms(const GNode *x, const char **names, int n, int max) {
    if (!x) return n;
    if (x->k == GN_SYM) {
        for (int i = 0; i < n; i++)
            if (!strcmp(names[i], x->s)) return n;
        if (n < max) names[n++] = x->s;
        return n;
    }
    for (int i = 0; i < x->n; i++) n = collect_syms(x->a[i], names, n, max);
    return n;
}

int ge_free_symbols(const GNode *x, const char **names, int max) {
    return collect_syms(x, names, 0, max);
}

int ge_is_constant(const GNode *x) {
    if (!x) return 0;
    if (x->k == GN_SYM || x->k == GN_OPAQUE) return 0;
    if (x->k == GN_FUNC && !strncmp(x->s, "uf:", 3)) return 0;
    for (int i = 0; i < x->n; i++)
        if (!ge_is_constant(x->a[i])) return 0;
    return 1;
}

static uint64_t splitmix(uint64_t *s) {
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t hash_str(const char *s) {
    uint64_t h = 1469598103934665603ull;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

#define NPTS 4
#define MAXSYM 32

static void make_env(GCtx *c, GEnv *env, const char **names, int n, int point, double *vals) {
    for (int i = 0; i < n; i++) {
        uint64_t s = c->opt->seed ^ hash_str(names[i]) ^ ((uint64_t)(point + 1) * 0xA24BAED4963EE407ull);
        uint64_t r = splitmix(&s);
        double u = (double)(r >> 11) / 9007199254740992.0;
        double v = 0.5 + 2.0 * u;
        if ((point + i) % 2 == 1) v = -v;
        vals[i] = v;
    }
    env->n = n;
    env->names = names;
    env->vals = vals;
}

/* equal up to rounding: |a - b| within rel times the larger error scale; unknown when that
 * scale dwarfs the values (e.g. an expression that cancels catastrophically) */
static GTri close_v(const GV *a, const GV *b, double rel) {
    double mag = fmax(cabs(a->z), cabs(b->z));
    double scale = fmax(fmax(a->m, b->m), mag);
    if (cabs(a->z - b->z) > rel * scale + 1e-300) return GT_FALSE;
    /* close: trustworthy only when doubles can resolve the values */
    if (mag > 1e15 || scale > 1e8 * fmax(1.0, mag)) return GT_UNKNOWN;
    return GT_TRUE;
}

static int close_z(double complex a, double complex b, double rel) {
    double scale = fmax(1.0, fmax(cabs(a), cabs(b)));
    return cabs(a - b) <= rel * scale;
}

GTri ge_values_equal(GCtx *c, const GNode *x, const GNode *y) {
    const char *names[MAXSYM];
    int n = collect_syms(x, names, 0, MAXSYM);
    n = collect_syms(y, names, n, MAXSYM);
    if (n >= MAXSYM) return GT_UNKNOWN;
    GTri res = GT_UNKNOWN;
    GV a, b;
    gv_init(&a);
    gv_init(&b);
    if (n == 0) {
        eval(c, x, NULL, &a, 0);
        eval(c, y, NULL, &b, 0);
        if (a.ok && b.ok) {
            if (a.exact && b.exact) res = mpq_equal(a.q, b.q) ? GT_TRUE : GT_FALSE;
            else res = close_v(&a, &b, 1e-12);
        }
    } else {
        int valid = 0, mismatch = 0;
        double vals[MAXSYM];
        for (int pt = 0; pt < NPTS && !mismatch; pt++) {
            GEnv env;
            make_env(c, &env, names, n, pt, vals);
            eval(c, x, &env, &a, 0);
            eval(c, y, &env, &b, 0);
            if (!a.ok || !b.ok) continue;
            valid++;
            GTri cv = close_v(&a, &b, 1e-12);
            if (cv == GT_FALSE) mismatch = 1;
            else if (cv == GT_UNKNOWN) valid--;
        }
        if (mismatch) res = GT_FALSE;
        else if (valid >= 2) res = GT_TRUE;
    }
    gv_clear(&a);
    gv_clear(&b);
    if (c->limit_hit) return GT_UNKNOWN;
    return res;
}

/* round half-even of an exact rational to `digits` decimals, as an integer (value * 10^d) */
static void round_exact(mpz_t out, const mpq_t q, int digits) {
    mpq_t t;
    mpq_init(t);
    mpz_t p10, fl, rem2;
    mpz_inits(p10, fl, rem2, NULL);
    mpz_ui_pow_ui(p10, 10, (unsigned long)digits);
    mpq_set_z(t, p10);
    mpq_mul(t, t, q);
    mpz_fdiv_q(fl, mpq_numref(t), mpq_denref(t));
    /* compare the fraction with 1/2: 2*(num - fl*den) vs den */
    mpz_mul(rem2, fl, mpq_denref(t));
    mpz_sub(rem2, mpq_numref(t), rem2);
    mpz_mul_ui(rem2, rem2, 2);
    int cmp = mpz_cmp(rem2, mpq_denref(t));
    if (cmp > 0 || (cmp == 0 && mpz_odd_p(fl))) mpz_add_ui(fl, fl, 1);
    mpz_set(out, fl);
    mpz_clears(p10, fl, rem2, NULL);
    mpq_clear(t);
}

GTri ge_rounded_equal(GCtx *c, const GNode *x, const GNode *y, int digits) {
    /* sympy's round() raises on expressions with symbols: Math-Verify then moves on */
    if (!ge_is_constant(x) || !ge_is_constant(y)) return GT_FALSE;
    GV a, b;
    gv_init(&a);
    gv_init(&b);
    eval(c, x, NULL, &a, 0);
    eval(c, y, NULL, &b, 0);
    GTri res = GT_UNKNOWN;
    if (a.ok && b.ok && is_real_z(a.z) != is_real_z(b.z)) res = GT_FALSE;
    if (a.ok && b.ok && is_real_z(a.z) && is_real_z(b.z)) {
        mpz_t ra, rb;
        mpz_inits(ra, rb, NULL);
        int ok = 1;
        GV *v[2] = {&a, &b};
        mpz_t *r[2] = {&ra, &rb};
        for (int k = 0; k < 2 && ok; k++) {
            if (v[k]->exact) {
                round_exact(*r[k], v[k]->q, digits);
            } else {
                double s = creal(v[k]->z) * pow(10.0, digits);
                if (!(fabs(s) < 1e15)) ok = 0;
                else {
                    double fl = floor(s), fr = s - fl;
                    if (fabs(fr - 0.5) < 1e-6) ok = 0; /* too close to a tie to round reliably */
                    else mpz_set_d(*r[k], fr > 0.5 ? fl + 1 : fl);
                }
            }
        }
        if (ok) res = mpz_cmp(ra, rb) == 0 ? GT_TRUE : GT_FALSE;
        mpz_clears(ra, rb, NULL);
    }
    gv_clear(&a);
    gv_clear(&b);
    return res;
}

int ge_real_value(GCtx *c, const GNode *x, double *out) {
    if (x && x->k == GN_CONST) {
        if (!strcmp(x->s, "oo")) {
            *out = INFINITY;
            return 1;
        }
        if (!strcmp(x->s, "-oo")) {
            *out = -INFINITY;
            return 1;
        }
    }
    if (x && x->k == GN_MUL && x->n == 2 && x->a[0]->k == GN_INT && !strcmp(x->a[0]->s, "-1") &&
        x->a[1]->k == GN_CONST && !strcmp(x->a[1]->s, "oo")) {
        *out = -INFINITY;
        return 1;
    }
    if (!ge_is_constant(x)) return 0;
    GV a;
    gv_init(&a);
    eval(c, x, NULL, &a, 0);
    int ok = a.ok && is_real_z(a.z);
    if (ok) *out = creal(a.z);
    gv_clear(&a);
    return ok;
}

int ge_sort_key(GCtx *c, const GNode *x, double *key) {
    GV a;
    gv_init(&a);
    eval(c, x, NULL, &a, 0);
    int ok = a.ok;
    if (ok) *key = creal(a.z);
    gv_clear(&a);
    return ok;
}

GNode *ge_sub(GCtx *c, GNode *x, GNode *y) {
    GNode *m = gnode_new(c, GN_MUL, 2);
    GNode *s = gnode_new(c, GN_ADD, 2);
    if (!m || !s) return NULL;
    m->a[0] = gnode_int_str(c, "-1");
    m->a[1] = y;
    s->a[0] = x;
    s->a[1] = m;
    return s;
}

/* ---- linear one-variable relations ---------------------------------------------------------- */

/* f(v) of expression x at v for variable name (other symbols: not allowed) */
static int eval_at(GCtx *c, const GNode *x, const char *name, double v, double complex *out) {
    GEnv env = {1, &name, &v};
    GV a;
    gv_init(&a);
    eval(c, x, &env, &a, 0);
    int ok = a.ok;
    *out = a.z;
    gv_clear(&a);
    return ok;
}

/* x linear in its only variable: f = k*v + b with k != 0 (checked at several points) */
static int linear_in(GCtx *c, const GNode *x, const char *name, double *k, double *b) {
    double complex f0, f1, f2, f3;
    if (!eval_at(c, x, name, 0.0, &f0) || !eval_at(c, x, name, 1.0, &f1) ||
        !eval_at(c, x, name, 2.5, &f2) || !eval_at(c, x, name, -1.75, &f3))
        return 0;
    if (!is_real_z(f0) || !is_real_z(f1) || !is_real_z(f2) || !is_real_z(f3)) return 0;
    double kk = creal(f1) - creal(f0), bb = creal(f0);
    if (fabs(kk) < 1e-12) return 0;
    if (fabs(kk * 2.5 + bb - creal(f2)) > 1e-9 * (1 + fabs(creal(f2))) ||
        fabs(kk * -1.75 + bb - creal(f3)) > 1e-9 * (1 + fabs(creal(f3))))
        return 0;
    *k = kk;
    *b = bb;
    return 1;
}

/* a real set as sorted disjoint pieces; a point is a closed piece with lo == hi */
typedef struct Piece {
    double lo, hi;
    int lo_open, hi_open;
} Piece;
typedef struct RSet {
    int n;
    Piece p[64];
} RSet;

static int feq(double a, double b) {
    if (isinf(a) || isinf(b)) return a == b;
    return fabs(a - b) <= 1e-10 * fmax(1.0, fmax(fabs(a), fabs(b)));
}

static int piece_empty(const Piece *p) {
    if (p->lo > p->hi && !feq(p->lo, p->hi)) return 1;
    if (feq(p->lo, p->hi)) return p->lo_open || p->hi_open || isinf(p->lo);
    return 0;
}

/* normalises: sort, merge overlapping/touching pieces */
static int rs_normalize(RSet *s) {
    int m = 0;
    for (int i = 0; i < s->n; i++)
        if (!piece_empty(&s->p[i])) s->p[m++] = s->p[i];
    s->n = m;
    for (int i = 1; i < s->n; i++) /* insertion sort by lo (closed first) */
        for (int j = i; j > 0; j--) {
            Piece *a = &s->p[j - 1], *b = &s->p[j];
            int swap = b->lo < a->lo && !feq(a->lo, b->lo);
            if (feq(a->lo, b->lo) && a->lo_open && !b->lo_open) swap = 1;
            if (!swap) break;
            Piece t = *a;
            *a = *b;
            *b = t;
        }
    m = 0;
    for (int i = 0; i < s->n; i++) {
        if (m > 0) {
            Piece *a = &s->p[m - 1], *b = &s->p[i];
            int touch = b->lo < a->hi && !feq(b->lo, a->hi);
            if (feq(b->lo, a->hi) && (!b->lo_open || !a->hi_open)) touch = 1;
            if (touch) {
                if (b->hi > a->hi && !feq(b->hi, a->hi)) {
                    a->hi = b->hi;
                    a->hi_open = b->hi_open;
                } else if (feq(b->hi, a->hi)) {
                    a->hi_open = a->hi_open && b->hi_open;
                }
                continue;
            }
        }
        s->p[m++] = s->p[i];
    }
    s->n = m;
    return 1;
}

static int rs_add(RSet *s, Piece p) {
    if (s->n >= 64) return 0;
    s->p[s->n++] = p;
    return 1;
}

/* complement of a normalised set within R */
static int rs_complement(const RSet *a, RSet *out) {
    out->n = 0;
    double lo = -INFINITY;
    int lo_open = 1;
    for (int i = 0; i < a->n; i++) {
        Piece p = {lo, a->p[i].lo, lo_open, !a->p[i].lo_open};
        if (!rs_add(out, p)) return 0;
        lo = a->p[i].hi;
        lo_open = !a->p[i].hi_open;
    }
    Piece last = {lo, INFINITY, lo_open, 1};
    if (!rs_add(out, last)) return 0;
    return rs_normalize(out);
}

static int rs_intersect(const RSet *a, const RSet *b, RSet *out) {
    out->n = 0;
    for (int i = 0; i < a->n; i++)
        for (int j = 0; j < b->n; j++) {
            Piece p;
            const Piece *x = &a->p[i], *y = &b->p[j];
            if (feq(x->lo, y->lo)) p.lo = x->lo, p.lo_open = x->lo_open || y->lo_open;
            else if (x->lo > y->lo) p.lo = x->lo, p.lo_open = x->lo_open;
            else p.lo = y->lo, p.lo_open = y->lo_open;
            if (feq(x->hi, y->hi)) p.hi = x->hi, p.hi_open = x->hi_open || y->hi_open;
            else if (x->hi < y->hi) p.hi = x->hi, p.hi_open = x->hi_open;
            else p.hi = y->hi, p.hi_open = y->hi_open;
            if (!piece_empty(&p) && !rs_add(out, p)) return 0;
        }
    return rs_normalize(out);
}

static int to_rset(GCtx *c, const GNode *x, RSet *s, int depth) {
    s->n = 0;
    if (!x || depth > 50) return 0;
    switch (x->k) {
    case GN_EMPTY:
        return 1;
    case GN_SETLIT:
        if (strcmp(x->s, "Reals") != 0) return 0;
        return rs_add(s, (Piece){-INFINITY, INFINITY, 1, 1});
    case GN_INTERVAL: {
        double lo, hi;
        if (!ge_real_value(c, x->a[0], &lo) || !ge_real_value(c, x->a[1], &hi)) return 0;
        if (!rs_add(s, (Piece){lo, hi, x->lo || isinf(lo), x->ro || isinf(hi)})) return 0;
        return rs_normalize(s);
    }
    case GN_FSET:
        for (int i = 0; i < x->n; i++) {
            double v;
            if (!ge_real_value(c, x->a[i], &v) || isinf(v)) return 0;
            if (!rs_add(s, (Piece){v, v, 0, 0})) return 0;
        }
        return rs_normalize(s);
    case GN_UNION: {
        RSet b;
        if (!to_rset(c, x->a[0], s, depth + 1) || !to_rset(c, x->a[1], &b, depth + 1)) return 0;
        for (int i = 0; i < b.n; i++)
            if (!rs_add(s, b.p[i])) return 0;
        return rs_normalize(s);
    }
    case GN_INTER: {
        RSet a, b;
        if (!to_rset(c, x->a[0], &a, depth + 1) || !to_rset(c, x->a[1], &b, depth + 1)) return 0;
        return rs_intersect(&a, &b, s);
    }
    case GN_COMPL: {
        RSet a, b, nb;
        if (!to_rset(c, x->a[0], &a, depth + 1) || !to_rset(c, x->a[1], &b, depth + 1)) return 0;
        if (!rs_complement(&b, &nb)) return 0;
        return rs_intersect(&a, &nb, s);
    }
    default:
        return 0;
    }
}

static int rs_equal(const RSet *a, const RSet *b) {
    if (a->n != b->n) return 0;
    for (int i = 0; i < a->n; i++) {
        const Piece *x = &a->p[i], *y = &b->p[i];
        if (!feq(x->lo, y->lo) || !feq(x->hi, y->hi)) return 0;
        if (!isinf(x->lo) && x->lo_open != y->lo_open) return 0;
        if (!isinf(x->hi) && x->hi_open != y->hi_open) return 0;
    }
    return 1;
}

GTri ge_sets_equal(GCtx *c, const GNode *x, const GNode *y) {
    RSet *a = ga_alloc(c->a, sizeof(RSet)), *b = ga_alloc(c->a, sizeof(RSet));
    if (!a || !b) return GT_UNKNOWN;
    if (!to_rset(c, x, a, 0) || !to_rset(c, y, b, 0)) return GT_UNKNOWN;
    return rs_equal(a, b) ? GT_TRUE : GT_FALSE;
}

/* one relation k*v + b (op) 0 -> set of v */
static int rel_to_rset(GCtx *c, const GNode *rel, const char *name, RSet *s) {
    GNode *d = ge_sub(c, rel->a[0], rel->a[1]);
    double k, b;
    if (!d || !linear_in(c, d, name, &k, &b)) return 0;
    double r = -b / k;
    int pos = k > 0; /* k*v + b > 0  <=>  v > r when k > 0 */
    s->n = 0;
    GNodeKind op = rel->k;
    if (!pos) { /* flip the inequality */
        if (op == GN_LT) op = GN_GT;
        else if (op == GN_LE) op = GN_GE;
        else if (op == GN_GT) op = GN_LT;
        else if (op == GN_GE) op = GN_LE;
    }
    switch (op) {
    case GN_EQ: rs_add(s, (Piece){r, r, 0, 0}); break;
    case GN_NE:
        rs_add(s, (Piece){-INFINITY, r, 1, 1});
        rs_add(s, (Piece){r, INFINITY, 1, 1});
        break;
    case GN_LT: rs_add(s, (Piece){-INFINITY, r, 1, 1}); break;
    case GN_LE: rs_add(s, (Piece){-INFINITY, r, 1, 0}); break;
    case GN_GT: rs_add(s, (Piece){r, INFINITY, 1, 1}); break;
    case GN_GE: rs_add(s, (Piece){r, INFINITY, 0, 1}); break;
    default: return 0;
    }
    return rs_normalize(s);
}

static int relation_rset(GCtx *c, const GNode *rel, const char **name_out, RSet *s) {
    const char *names[4];
    int n = ge_free_symbols(rel, names, 4);
    if (n != 1) return 0;
    *name_out = names[0];
    if (gnode_is_relational(rel)) return rel_to_rset(c, rel, names[0], s);
    if (rel->k == GN_AND) {
        RSet acc, one, tmp;
        if (!rel_to_rset(c, rel->a[0], names[0], &acc)) return 0;
        for (int i = 1; i < rel->n; i++) {
            if (!gnode_is_relational(rel->a[i]) || !rel_to_rset(c, rel->a[i], names[0], &one)) return 0;
            if (!rs_intersect(&acc, &one, &tmp)) return 0;
            acc = tmp;
        }
        *s = acc;
        return 1;
    }
    return 0;
}

/* builds a set node from an RSet (numbers as floats: only compared numerically) */
static GNode *num_node(GCtx *c, double v) {
    if (isinf(v)) {
        GNode *x = gnode_new(c, GN_CONST, 0);
        if (x) x->s = v > 0 ? "oo" : "-oo";
        return x;
    }
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v);
    if (!strchr(buf, '.') && !strchr(buf, 'e')) strcat(buf, ".0");
    for (char *q = buf; *q; q++)
        if (*q == 'e') *q = 'E';
    GNode *x = gnode_new(c, GN_FLOAT, 0);
    if (x) x->s = ga_strndup(c->a, buf, strlen(buf));
    return x;
}

GNode *ge_relation_as_set(GCtx *c, const GNode *rel) {
    RSet s;
    const char *name;
    if (!relation_rset(c, rel, &name, &s)) return NULL;
    if (s.n == 0) return gnode_new(c, GN_EMPTY, 0);
    GNode *acc = NULL;
    for (int i = 0; i < s.n; i++) {
        GNode *piece;
        if (feq(s.p[i].lo, s.p[i].hi)) {
            piece = gnode_new(c, GN_FSET, 1);
            if (!piece) return NULL;
            piece->a[0] = num_node(c, s.p[i].lo);
        } else {
            piece = gnode_new(c, GN_INTERVAL, 2);
            if (!piece) return NULL;
            piece->a[0] = num_node(c, s.p[i].lo);
            piece->a[1] = num_node(c, s.p[i].hi);
            piece->lo = s.p[i].lo_open;
            piece->ro = s.p[i].hi_open;
        }
        if (!acc) acc = piece;
        else {
            GNode *u = gnode_new(c, GN_UNION, 2);
            if (!u) return NULL;
            u->a[0] = acc;
            u->a[1] = piece;
            acc = u;
        }
    }
    return acc;
}

GTri ge_proportional(GCtx *c, const GNode *x, const GNode *y) {
    const char *nx[MAXSYM], *ny[MAXSYM];
    int a = ge_free_symbols(x, nx, MAXSYM), b = ge_free_symbols(y, ny, MAXSYM);
    if (a >= MAXSYM || b >= MAXSYM) return GT_UNKNOWN;
    if (a != b) return GT_FALSE;
    for (int i = 0; i < a; i++) {
        int f = 0;
        for (int j = 0; j < b && !f; j++) f = !strcmp(nx[i], ny[j]);
        if (!f) return GT_FALSE;
    }
    if (a == 0) return GT_UNKNOWN;
    double vals[MAXSYM];
    double complex ratio = 0;
    int have = 0, valid = 0;
    GV va, vb;
    gv_init(&va);
    gv_init(&vb);
    GTri res = GT_UNKNOWN;
    for (int pt = 0; pt < NPTS; pt++) {
        GEnv env;
        make_env(c, &env, nx, a, pt, vals);
        eval(c, x, &env, &va, 0);
        eval(c, y, &env, &vb, 0);
        if (!va.ok || !vb.ok || cabs(va.z) < 1e-9) continue;
        double complex r = vb.z / va.z;
        valid++;
        if (!have) {
            ratio = r;
            have = 1;
        } else if (!close_z(r, ratio, 1e-8)) {
            res = GT_FALSE;
            break;
        }
    }
    if (res == GT_UNKNOWN && valid >= 2 && cabs(ratio) > 1e-12) res = GT_TRUE;
    gv_clear(&va);
    gv_clear(&vb);
    return res;
}

GTri ge_relations_same_solutions(GCtx *c, const GNode *x, const GNode *y) {
    RSet a, b;
    const char *na, *nb;
    if (!relation_rset(c, x, &na, &a) || !relation_rset(c, y, &nb, &b)) return GT_UNKNOWN;
    if (strcmp(na, nb) != 0) return GT_FALSE;
    return rs_equal(&a, &b) ? GT_TRUE : GT_FALSE;
}
