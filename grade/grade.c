/*
 * The grader API (grade/grade.h): options, the per-thread grader (compiled regexes, match
 * data, scratch arena), and grading one (prediction, gold) pair the way Math-Verify's
 * verify(parse(gold), parse(prediction)) does, with "unverifiable" where it cannot decide.
 *
 *   gold        read as "\boxed{gold}" (unless it has a \boxed already), parsed with
 *               Math-Verify's defaults (LaTeX + expression extraction)
 *   prediction  the text after the last </think> first (the whole text when nothing is found
 *               there); EVAL mode: Math-Verify's parse() defaults; REWARD mode: SplitReason's
 *               accuracy_reward config (boxed first, first match only, no unanchored
 *               fallback, equations, no nits / malformed-operator fixes)
 *   verdict     correct if the parsed answers are equal or their normalised strings are;
 *               incorrect if they are not and everything could be decided, or if the
 *               prediction has no answer at all; unverifiable otherwise
 */
#include <stdlib.h>
#include <string.h>

#include "../common/error.h"
#include "grade_internal.h"

const char *sr_verdict_name(SrVerdict v) {
    switch (v) {
    case SR_VERDICT_CORRECT: return "correct";
    case SR_VERDICT_INCORRECT: return "incorrect";
    default: return "unverifiable";
    }
}

void sr_grade_options_default(SrGradeOptions *opt) {
    memset(opt, 0, sizeof *opt);
    opt->mode = SR_GRADE_EVAL;
    opt->prefer_after_think = 1;
    opt->allow_unanchored = 1;
    opt->float_rounding = 6;
    opt->seed = 0x5eed5eedULL;
    opt->max_input_bytes = 1 << 20;
    opt->max_nodes = 4096;
    opt->max_depth = 200;
    opt->max_bits = 65536;
    opt->max_candidates = 400;
    opt->max_memory = 64u << 20;
    opt->max_regex_work = 20000000;
}

struct SrGrader {
    SrGradeOptions opt;
    GRegexes re;
    pcre2_match_data *md;
    pcre2_match_context *mctx;
    pcre2_jit_stack *jit;
    GArena arena;
};

SrGrader *sr_grader_new(const SrGradeOptions *opt) {
    SrGrader *g = sr_calloc(1, sizeof *g);
    if (opt) g->opt = *opt;
    else sr_grade_options_default(&g->opt);
    /* keep the bounds sane even for zeroed option structs */
    if (g->opt.max_input_bytes == 0) g->opt.max_input_bytes = 1 << 20;
    if (g->opt.max_nodes <= 0) g->opt.max_nodes = 4096;
    if (g->opt.max_depth <= 0) g->opt.max_depth = 200;
    if (g->opt.max_bits <= 0) g->opt.max_bits = 65536;
    if (g->opt.max_candidates <= 0) g->opt.max_candidates = 400;
    if (g->opt.max_memory == 0) g->opt.max_memory = 64u << 20;
    if (g->opt.max_regex_work == 0) g->opt.max_regex_work = 20000000;
    if (g->opt.float_rounding <= 0 || g->opt.float_rounding > 15) g->opt.float_rounding = 6;
    gn_build_regexes(&g->re);
    gx_build_regexes(&g->re);
    g->md = pcre2_match_data_create(400, NULL);
    g->mctx = pcre2_match_context_create(NULL);
    g->jit = pcre2_jit_stack_create(32 * 1024, 8 * 1024 * 1024, NULL);
    SR_ASSERT(g->md && g->mctx && g->jit);
    pcre2_jit_stack_assign(g->mctx, NULL, g->jit);
    pcre2_set_match_limit(g->mctx, g->opt.max_regex_work);
    pcre2_set_heap_limit(g->mctx, 64 * 1024); /* KiB, interpreter only */
    g->arena.limit = g->opt.max_memory;
    return g;
}

static void free_re(pcre2_code **p) {
    if (*p) pcre2_code_free(*p);
    *p = NULL;
}

void sr_grader_free(SrGrader *g) {
    if (!g) return;
    GRegexes *r = &g->re;
    pcre2_code **all[] = {&r->r_left, &r->r_right, &r->permutation, &r->to_remove,
                          &r->to_replace, &r->command_slash_fix, &r->equation_split,
                          &r->unit_superscript, &r->units, &r->valid_separator,
                          &r->comma_number, &r->complex_pattern};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free_re(all[i]);
    for (int i = 0; i < 7; i++) free_re(&r->malformed[i]);
    for (int i = 0; i < 7; i++) free_re(&r->lx[i].re);
    for (int i = 0; i < 6; i++) free_re(&r->ex[i].re);
    pcre2_match_data_free(g->md);
    pcre2_match_context_free(g->mctx);
    pcre2_jit_stack_free(g->jit);
    ga_free(&g->arena);
    free(g);
}

static void ctx_init(SrGrader *g, GCtx *c) {
    ga_reset(&g->arena);
    g->arena.limit = g->opt.max_memory;
    memset(c, 0, sizeof *c);
    c->a = &g->arena;
    c->opt = &g->opt;
    c->re = &g->re;
    c->md = g->md;
    c->mctx = g->mctx;
}

static GExtractConfig default_config(const SrGradeOptions *opt) {
    GExtractConfig k;
    memset(&k, 0, sizeof k);
    k.latex = 1;
    k.expr = 1;
    k.boxed_priority = 50;
    k.unanchored = 1;
    k.first_match_only = 0;
    k.norm.basic_latex = 1;
    k.norm.units = 1;
    k.norm.malformed_operators = 1;
    k.norm.nits = 1;
    k.norm.boxed = 2;
    k.norm.equations = 0;
    (void)opt;
    return k;
}

static GExtractConfig pred_config(const SrGradeOptions *opt) {
    GExtractConfig k = default_config(opt);
    if (opt->mode == SR_GRADE_REWARD) {
        k.expr = 0;
        k.boxed_priority = 0;
        k.unanchored = 0;
        k.first_match_only = 1;
        k.norm.nits = 0;
        k.norm.malformed_operators = 0;
        k.norm.equations = 1;
    } else {
        k.unanchored = opt->allow_unanchored != 0;
    }
    return k;
}

/* extraction of the prediction with the </think> preference */
static void extract_pred(GCtx *c, const char *text, size_t n, GAnswer *out) {
    GExtractConfig k = pred_config(c->opt);
    if (c->opt->prefer_after_think) {
        long at = gu_rfind(text, n, "</think>");
        if (at >= 0) {
            size_t off = (size_t)at + 8;
            gx_extract(c, text + off, n - off, &k, out);
            if (out->found || c->limit_hit) return;
        }
    }
    gx_extract(c, text, n, &k, out);
}

static void extract_gold(GCtx *c, const char *gold, size_t n, GAnswer *out) {
    GExtractConfig k = default_config(c->opt);
    if (gu_contains(gold, n, "\\boxed") || gu_contains(gold, n, "\\fbox")) {
        gx_extract(c, gold, n, &k, out);
        return;
    }
    GStr b;
    gs_init(&b, c->a);
    gs_puts(&b, "\\boxed{");
    gs_putn(&b, gold, n);
    gs_putc(&b, '}');
    gx_extract(c, gs_cstr(&b), b.n, &k, out);
}

static char *dup_or_empty(const char *s) { return sr_strdup(s ? s : ""); }

/* reported strings without surrounding whitespace */
static char *dup_stripped(const char *s) {
    if (!s) return sr_strdup("");
    size_t n;
    const char *p = gu_strip(s, strlen(s), &n);
    char *r = sr_malloc(n + 1);
    memcpy(r, p, n);
    r[n] = '\0';
    return r;
}

static int strings_equal(const char *a, const char *b) {
    size_t na, nb;
    a = gu_strip(a, strlen(a), &na);
    b = gu_strip(b, strlen(b), &nb);
    return na > 0 && nb > 0 && na == nb && memcmp(a, b, na) == 0;
}

int sr_grader_grade(SrGrader *g, const char *prediction, const char *gold, SrGradeResult *res) {
    return sr_grader_grade_n(g, prediction, prediction ? strlen(prediction) : 0, gold,
                             gold ? strlen(gold) : 0, res);
}

int sr_grader_grade_n(SrGrader *g, const char *prediction, size_t pn, const char *gold, size_t gn,
                      SrGradeResult *res) {
    if (!res) return -1;
    memset(res, 0, sizeof *res);
    res->verdict = SR_VERDICT_UNVERIFIABLE;
    if (!g || !prediction || !gold) {
        res->reason = "missing argument";
        res->pred_extracted = dup_or_empty("");
        res->pred_normalized = dup_or_empty("");
        res->gold_extracted = dup_or_empty("");
        res->gold_normalized = dup_or_empty("");
        return -1;
    }
    GCtx c;
    ctx_init(g, &c);
    GAnswer pa, ga;
    memset(&pa, 0, sizeof pa);
    memset(&ga, 0, sizeof ga);
    pa.extracted = pa.normalized = pa.fallback = "";
    ga.extracted = ga.normalized = ga.fallback = "";
    const char *reason = NULL;
    SrVerdict v = SR_VERDICT_UNVERIFIABLE;
    if (pn > g->opt.max_input_bytes || gn > g->opt.max_input_bytes) {
        reason = "input too long";
        goto done;
    }
    /* a text is graded whole or not at all: never up to an embedded NUL (sr_grader_grade_n) */
    if (memchr(prediction, '\0', pn)) {
        reason = "prediction contains a NUL byte";
        goto done;
    }
    if (memchr(gold, '\0', gn)) {
        reason = "reference contains a NUL byte";
        goto done;
    }
    {
        size_t psn, gsn;
        char *ps = gu_sanitize(c.a, prediction, pn, &psn);
        char *gs = gu_sanitize(c.a, gold, gn, &gsn);
        if (c.a->oom) {
            reason = "memory limit exceeded";
            goto done;
        }
        extract_gold(&c, gs, gsn, &ga);
        if (!c.limit_hit) extract_pred(&c, ps, psn, &pa);
    }
    if (c.limit_hit) {
        reason = c.limit_reason;
        goto done;
    }
    if (!ga.found) {
        reason = "reference has no answer";
        goto done;
    }
    if (!pa.found) {
        v = SR_VERDICT_INCORRECT;
        reason = "no answer found";
        goto done;
    }
    {
        GTri r = GT_FALSE;
        if (ga.expr && pa.expr) {
            c.depth = 0;
            r = gc_expr_eq(&c, ga.expr, pa.expr);
        }
        if (r == GT_TRUE) {
            v = SR_VERDICT_CORRECT;
            reason = "equal";
        } else if (strings_equal(ga.fallback, pa.fallback)) {
            v = SR_VERDICT_CORRECT;
            reason = "same normalized string";
        } else if (c.limit_hit) {
            reason = c.limit_reason;
        } else if (!ga.expr) {
            reason = "reference does not parse";
        } else if (!pa.expr) {
            reason = "answer does not parse";
        } else if (r == GT_UNKNOWN) {
            reason = "cannot decide";
        } else {
            v = SR_VERDICT_INCORRECT;
            reason = "not equal";
        }
    }
done:
    res->verdict = v;
    res->reason = reason ? reason : "";
    res->pred_extracted = dup_stripped(pa.extracted);
    res->pred_normalized = dup_stripped(pa.expr ? pa.normalized : pa.fallback);
    res->gold_extracted = dup_stripped(ga.extracted);
    res->gold_normalized = dup_stripped(ga.expr ? ga.normalized : ga.fallback);
    res->work = c.work;
    res->work.parse_steps = (uint64_t)c.steps;
    ga_reset(&g->arena);
    return 0;
}

SrGradeResult sr_grade(const char *prediction, const char *gold, const SrGradeOptions *opt) {
    SrGrader *g = sr_grader_new(opt);
    SrGradeResult r;
    sr_grader_grade(g, prediction, gold, &r);
    sr_grader_free(g);
    return r;
}

void sr_grade_result_free(SrGradeResult *res) {
    if (!res) return;
    free(res->pred_extracted);
    free(res->pred_normalized);
    free(res->gold_extracted);
    free(res->gold_normalized);
    memset(res, 0, sizeof *res);
}

int sr_grader_extract(SrGrader *g, const char *text, char **extracted, char **normalized) {
    GCtx c;
    ctx_init(g, &c);
    GAnswer a;
    memset(&a, 0, sizeof a);
    a.extracted = a.normalized = a.fallback = "";
    size_t n = strlen(text), sn;
    int ok = 0;
    if (n <= g->opt.max_input_bytes) {
        char *s = gu_sanitize(c.a, text, n, &sn);
        if (!c.a->oom) extract_pred(&c, s, sn, &a);
        ok = a.expr != NULL && !c.limit_hit;
    }
    if (extracted) *extracted = dup_stripped(a.extracted);
    if (normalized) *normalized = dup_stripped(a.expr ? a.normalized : a.fallback);
    ga_reset(&g->arena);
    return ok;
}
