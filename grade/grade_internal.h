/*
 * Internals of the math grader (grade/grade*.c), not part of the API (that is grade.h). The
 * files, each using only the ones listed above it (no cycles; the LaTeX parser's own files
 * share the private header grade_latex.h):
 *
 *   grade_util.c       per-call arena, string builder, UTF-8 helpers, PCRE2 wrappers
 *   grade_node.c       the expression tree (GNode) and sympy's numbers as nodes
 *   grade_eval.c       values: exact (GMP rationals) and numeric (complex double), sets on R
 *   grade_lex.c        the tokens of latex2sympy2's grammar (grade_lex.h; needs nothing else)
 *   grade_latex.c      the LaTeX parser: entry point and node builders; its grammar is in
 *     grade_latex_expr.c   expressions: atoms, powers, implicit products, + - * /, relations
 *     grade_latex_func.c   functions, \sqrt, sums / limits / integrals, \frac, \binom, matrices
 *     grade_latex_set.c    sets, intervals, tuples, \pm, set relations and operations
 *   grade_plain.c      the second parser: sympy parse_expr of plain expressions ("1/2", "3*4")
 *   grade_normalize.c  normalize_latex (latex2sympy2_extended) and extract_boxed_content
 *   grade_extract.c    Math-Verify's prioritised extraction patterns -> answer candidates
 *   grade_compare.c    Math-Verify's sympy_expr_eq, three-valued (true/false/unknown)
 *   grade.c            the API: options, grader, grade one pair
 *
 * The grader is a leaf of the toolkit: these files include nothing of the project outside
 * grade/ but common/ (tests/cli_grade_leaf.sh checks it).
 *
 * Everything a call allocates comes from its GArena (freed at the end of the call), so a
 * call's memory is bounded by opt.max_memory; GMP numbers live on the C stack/heap only
 * inside the functions that use them and are cleared before they return.
 */
#ifndef SR_GRADE_GRADE_INTERNAL_H
#define SR_GRADE_GRADE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <gmp.h>
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "grade.h"

/* ---- arena -------------------------------------------------------------------------------- */

typedef struct GArenaBlock {
    struct GArenaBlock *next;
    size_t cap, used;
    char data[];
} GArenaBlock;

typedef struct GArena {
    GArenaBlock *head;
    size_t total, limit;
    int oom; /* set when limit was exceeded: allocations return NULL from then on */
} GArena;

void *ga_alloc(GArena *a, size_t n);              /* zeroed; NULL (and a->oom) past the limit */
char *ga_strndup(GArena *a, const char *s, size_t n);
void ga_reset(GArena *a);                         /* frees all but the first block */
void ga_free(GArena *a);

/* growable string in the arena */
typedef struct GStr {
    GArena *a;
    char *s;
    size_t n, cap;
} GStr;
void gs_init(GStr *b, GArena *a);
void gs_putn(GStr *b, const char *s, size_t n);
void gs_puts(GStr *b, const char *s);
void gs_putc(GStr *b, char c);
const char *gs_cstr(GStr *b); /* never NULL ("" on oom) */

/* ---- per-call context --------------------------------------------------------------------- */

typedef struct GRegexes GRegexes;

typedef struct GCtx {
    GArena *a;
    const SrGradeOptions *opt;
    const GRegexes *re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    int limit_hit;            /* a bound was exceeded somewhere: the verdict is unverifiable */
    const char *limit_reason;
    long steps;               /* parser work counter (bounded) */
    SrGradeWork work;         /* the call's counted work (SrGradeResult.work) */
    int depth;
    int nodes;                /* nodes made by the current parse */
} GCtx;

void gctx_limit(GCtx *c, const char *reason); /* records the first exceeded bound */

/* ---- UTF-8 helpers ------------------------------------------------------------------------ */

/* copies s, replacing invalid UTF-8 with U+FFFD and NUL with a space */
char *gu_sanitize(GArena *a, const char *s, size_t n, size_t *out_n);
size_t gu_count_cp(const char *s, size_t n);            /* code points */
int gu_isspace_at(const char *s, size_t n, size_t i, size_t *len); /* Python str.isspace */
const char *gu_strip(const char *s, size_t n, size_t *out_n);      /* Python str.strip() */
const char *gu_lstrip(const char *s, size_t n, size_t *out_n);
/* finds needle in s[0..n) at the last position < end (byte offsets); -1 if none */
long gu_rfind(const char *s, size_t end, const char *needle);
int gu_contains(const char *s, size_t n, const char *needle);
char *gu_replace_all(GArena *a, const char *s, const char *from, const char *to);

/* ---- regexes ------------------------------------------------------------------------------ */

/* compiles pattern (UTF, UCP, + flags) or aborts (patterns are constants); JIT-compiled
 * unless flags has GRE_NO_JIT */
#define GRE_NO_JIT 0x80000000u
pcre2_code *gre_compile(const char *pattern, uint32_t flags);
/* match at/after offset; returns 1 and fills ov (2*n offsets) or 0; negative on error. */
int gre_match(GCtx *c, const pcre2_code *re, const char *s, size_t n, size_t off);
/* the same on s[0..n) where n may end before the text: noteol keeps '$' from matching there */
int gre_match_n(GCtx *c, const pcre2_code *re, const char *s, size_t n, size_t off, int noteol);
size_t *gre_ov(GCtx *c);
/* start/end of group i of the last match (-1 if unset) */
int gre_group(GCtx *c, int i, size_t *st, size_t *en);
/* re.sub with a fixed template: "\\1" inserts group 1, "\\\\" a backslash */
char *gre_sub(GCtx *c, const pcre2_code *re, const char *s, const char *tmpl);

typedef struct GPattern {
    pcre2_code *re;
    int priority;      /* -1: the boxed priority of the config */
    int kind;          /* GP_LATEX, GP_EXPR */
    int anchorless;    /* only with try_extract_without_anchor */
    int env[6][7];     /* latex: [first_, next1_..next5_][6 env kinds, percent] group numbers */
    int boxed_plain;   /* latex: group number of first_latexBoxed, or -1 */
    int exg[8];        /* expr: expr, integer1..3, decimal1..3, percent */
} GPattern;
enum { GP_LATEX = 0, GP_EXPR = 1 };

struct GRegexes {
    /* normalize_latex */
    pcre2_code *r_left, *r_right, *permutation, *to_remove, *to_replace, *command_slash_fix;
    pcre2_code *equation_split, *unit_superscript, *units, *valid_separator;
    int repl_group[32];         /* group number of each to_replace alternative */
    pcre2_code *malformed[7];
    /* parser helpers */
    pcre2_code *comma_number, *complex_pattern;
    /* extraction patterns of Math-Verify's LatexExtractionConfig and ExprExtractionConfig */
    GPattern lx[7], ex[6];
};

void gn_build_regexes(GRegexes *r); /* grade_normalize.c */
void gx_build_regexes(GRegexes *r); /* grade_extract.c */

/* ---- normalisation (grade_normalize.c) ---------------------------------------------------- */

typedef struct GNormConfig {
    int basic_latex, units, malformed_operators, nits, equations;
    int boxed; /* 0 none, 1 last, 2 all */
} GNormConfig;

char *gn_extract_boxed_content(GCtx *c, const char *text, int mode_all);
char *gn_normalize_latex(GCtx *c, const char *text, const GNormConfig *cfg);

/* ---- expression tree and numbers (grade_node.c) -------------------------------------------- */

typedef enum {
    GN_INT,      /* s: decimal integer "-12" */
    GN_RAT,      /* s: reduced "p/q", q > 1 */
    GN_FLOAT,    /* s: decimal literal "0.25", "1.5E3" (a sympy Float) */
    GN_SYM,      /* s: name (lowercased as latex2sympy does) */
    GN_CONST,    /* s: "E", "pi", "oo", "I", "EulerGamma" */
    GN_ADD,
    GN_MUL,
    GN_POW,      /* a[0] ^ a[1] */
    GN_PCT,      /* a[0] * UnevaluatedExpr(1/100) */
    GN_FUNC,     /* s: name; known ones evaluate (grade_eval.c) */
    GN_EQ, GN_NE, GN_LT, GN_LE, GN_GT, GN_GE, /* a[0] rel a[1] */
    GN_AND,      /* chain of relations */
    GN_NOT,
    GN_TUPLE,
    GN_FSET,     /* children in written order (duplicates kept, like _unsorted_args) */
    GN_INTERVAL, /* a[0], a[1]; lo/ro open flags */
    GN_UNION, GN_INTER, GN_COMPL,
    GN_SETLIT,   /* s: "Naturals", "Integers", "Rationals", "Reals", "Complexes" */
    GN_EMPTY,
    GN_MATRIX,   /* rows x cols children, row-major */
    GN_OPAQUE,   /* s: what (Integral, Limit, ...): parsed by latex2sympy, not evaluated here */
} GNodeKind;

typedef struct GNode {
    GNodeKind k;
    int n;
    struct GNode **a;
    const char *s;
    int rows, cols;
    int lo, ro;
} GNode;

GNode *gnode_new(GCtx *c, GNodeKind k, int n);          /* NULL (limit recorded) past max_nodes */
GNode *gnode_leaf(GCtx *c, GNodeKind k, const char *s); /* a childless node with text s */
GNode *gnode_int_str(GCtx *c, const char *digits);
int gnode_is_number(const GNode *x);      /* INT, RAT, FLOAT */
int gnode_is_sympy_number(const GNode *x); /* sympy's Number class: also oo, -oo, zoo */
int gnode_only_symbols(const GNode *x);    /* latex2sympy's is_expr_of_only_symbols */
int gnode_is_relational(const GNode *x);  /* EQ..GE */
int gnode_is_set(const GNode *x);         /* sympy Set: FSET, INTERVAL, UNION, ... */
int gnode_struct_eq(const GNode *x, const GNode *y);

/* Rational(p, q) of two integer strings: an Integer when q divides p; q == 0 -> zoo */
GNode *gnode_rational(GCtx *c, const char *ps, const char *qs);
/* numerator / denominator strings of an INT or RAT node */
void gnode_rat_parts(GCtx *c, const GNode *x, const char **p, const char **q);
int gnode_num_sign(const GNode *x);       /* INT / RAT: sign of the value */
GNode *gnode_negate(GCtx *c, const GNode *x); /* -x of a sympy Number */
const char *gnode_mpz_str(GCtx *c, const mpz_t z); /* decimal digits in the arena */
/* sympy Number(s) of a digits / decimal / E-notation string (Integer or Float) */
GNode *gnode_number(GCtx *c, const char *s);
/* latex2sympy's parse_number: commas, backslashes and spaces dropped, then gnode_number */
GNode *gnode_number_text(GCtx *c, const char *s, size_t n);
/* exact value of a decimal literal ("-1.50", "2E3"); 0 if it is not one */
int gnode_decimal_to_mpq(mpq_t q, const char *s);

/* ---- values (grade_eval.c) ---------------------------------------------------------------- */

typedef enum { GT_FALSE = 0, GT_TRUE = 1, GT_UNKNOWN = 2 } GTri;

/* value equality of two symbol-free or symbolic scalar expressions (not sets/relations):
 * exact when both reduce to rationals, else numeric (random points for variables).
 * Returns GT_UNKNOWN when it cannot tell (unknown functions, overflow, ...). */
GTri ge_values_equal(GCtx *c, const GNode *x, const GNode *y);
/* Math-Verify's float rule: round both to `digits` decimals and compare (GT_FALSE when a
 * side has variables or exactly one is complex; GT_UNKNOWN when a side has no value). */
GTri ge_rounded_equal(GCtx *c, const GNode *x, const GNode *y, int digits);
/* numeric real value of a constant expression (no symbols); 0 if not real/finite */
int ge_real_value(GCtx *c, const GNode *x, double *out);
/* symbols of x (names), deduplicated; returns count (<= max) */
int ge_free_symbols(const GNode *x, const char **names, int max);
/* x - y as a tree (no simplification) */
GNode *ge_sub(GCtx *c, GNode *x, GNode *y);
int ge_is_constant(const GNode *x); /* no free symbols, no undefined functions */
/* real sets: canonical comparison of unions/intersections/complements of intervals and
 * finite sets of real constants */
GTri ge_sets_equal(GCtx *c, const GNode *x, const GNode *y);
/* relation -> set (sympy as_set) for one-variable linear (in)equalities; NULL if not */
GNode *ge_relation_as_set(GCtx *c, const GNode *rel);
/* y == k * x for a constant k != 0 (same variables; checked at random points) */
GTri ge_proportional(GCtx *c, const GNode *x, const GNode *y);
/* equivalence of two one-variable relations by their solution sets */
GTri ge_relations_same_solutions(GCtx *c, const GNode *x, const GNode *y);
/* numeric sort key of a constant expression (real part); 0 if not constant */
int ge_sort_key(GCtx *c, const GNode *x, double *key);

/* ---- parsers (grade_latex*.c, grade_plain.c) ------------------------------------------------ */

/* latex2sympy(latex) with normalization_config=None; NULL when it does not parse */
GNode *gp_parse_latex(GCtx *c, const char *latex, int is_real);
int gp_should_treat_as_complex(GCtx *c, const char *latex);
/* sympy parse_expr of the plain expressions Math-Verify's expr regex finds ("1/2", "3*4") */
GNode *gp_parse_plain_expr(GCtx *c, const char *expr);

/* ---- comparison (grade_compare.c) --------------------------------------------------------- */

GTri gc_expr_eq(GCtx *c, const GNode *gold, const GNode *pred);

/* ---- extraction (grade_extract.c) --------------------------------------------------------- */

typedef struct GAnswer {
    int found;              /* a candidate matched */
    GNode *expr;            /* parsed answer, NULL if none parsed */
    const char *extracted;  /* raw text of the parsed (or first) candidate */
    const char *normalized; /* normalised text of the parsed candidate */
    const char *fallback;   /* Math-Verify's first_match fallback string ("" if none) */
} GAnswer;

typedef struct GExtractConfig {
    int latex, expr;           /* which extraction targets */
    int boxed_priority;        /* 50 (default) or 0 (reward) */
    int unanchored;            /* try_extract_without_anchor */
    int first_match_only;      /* extraction_mode="first_match" */
    GNormConfig norm;
} GExtractConfig;

void gx_extract(GCtx *c, const char *text, size_t n, const GExtractConfig *cfg, GAnswer *out);

#endif
