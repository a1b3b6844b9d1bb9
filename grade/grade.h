/*
 * Math answer grading: is a model's final answer equal to the reference? The correctness
 * signal for GRPO's accuracy reward and for every benchmark number (MATH-500, AIME, AMC).
 *
 * It follows Hugging Face Math-Verify (the grader SplitReason's reward used) step by step and
 * is checked against it (tests/test_grade.c, scripts/make_grade_golden.py):
 *
 *   extraction     Math-Verify's prioritised patterns: the last \boxed{..} / \fbox{..}
 *                  (brace-matched; boxes joined by "and", "or" or commas kept together),
 *                  "final answer is ..", "answer: ..", then (unless turned off) any LaTeX
 *                  environment ($..$, \(..\), \[..\]) or the last number. Text after the last
 *                  </think> is searched first; the whole text only if nothing is found there.
 *   normalisation  latex2sympy2's normalize_latex: \left/\right, \dfrac, \!, \text{..}/\mathrm,
 *                  units, \%, thousands separators, \infty spellings, \frac12, \sqrt2, a/b, ..
 *   parsing        a recursive-descent reading of latex2sympy2's grammar (PS.g4) into an
 *                  expression tree: numbers, \frac, \sqrt, powers, \pi, e, functions, implicit
 *                  products, relations, tuples, sets, intervals, matrices, \pm, percentages.
 *   comparison     Math-Verify's order: string equality, numbers (exact rationals with GMP;
 *                  floats rounded to 6 decimals; percentages), expressions (exactly where
 *                  possible, else numerically, at random points when they have variables),
 *                  tuples, sets (order-free), intervals, matrices, equations and inequalities.
 *
 * Whatever it cannot decide is reported as SR_VERDICT_UNVERIFIABLE, never guessed: an answer
 * or a reference that does not parse, a comparison it cannot settle (unknown functions,
 * integrals, equations it cannot solve, values doubles cannot resolve), or an exceeded bound
 * (input size, expression size, recursion depth, big-integer size, parser and regex work).
 * A prediction with no answer at all is SR_VERDICT_INCORRECT (Math-Verify: False).
 *
 * Where Math-Verify is wrong the grader does not follow it (tests/fixtures/grade/
 * disagreements.txt argues each case): box{..} and "oxed {..}" are answers; "12\,345" and
 * "12 345" are 12345 (latex2sympy: 357); decimals are exact ("14/3." is 14/3, no float noise).
 *
 * Usage (one grader per thread; it owns compiled regexes and scratch memory):
 *   SrGrader *g = sr_grader_new(NULL);                   // NULL = sr_grade_options_default
 *   SrGradeResult r;
 *   sr_grader_grade(g, completion, "\\frac{1}{2}", &r);  // r.verdict, r.pred_extracted, ...
 *   sr_grade_result_free(&r);
 *   sr_grader_free(g);
 * The gold is a reference answer ("\\frac{14}{3}", "(3, \\frac{\\pi}{2})"); it is read as if
 * written inside \boxed{..} unless it already contains \boxed (then it is searched like a
 * solution text).
 */
#ifndef SR_GRADE_GRADE_H
#define SR_GRADE_GRADE_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    SR_VERDICT_CORRECT = 0,
    SR_VERDICT_INCORRECT = 1,
    SR_VERDICT_UNVERIFIABLE = 2,
} SrVerdict;

/* "correct" / "incorrect" / "unverifiable" */
const char *sr_verdict_name(SrVerdict v);

typedef enum {
    /* Math-Verify's defaults for evaluation: parse(pred) with LaTeX + plain-expression
     * extraction, any match, boxed after "final answer is". */
    SR_GRADE_EVAL = 0,
    /* SplitReason's accuracy_reward (open-r1 rewards.py): boxed first, only the first
     * candidate, no unanchored LaTeX/number fallback, no malformed-operator / nits fixes,
     * equations a = b = c reduced to c. */
    SR_GRADE_REWARD = 1,
} SrGradeMode;

typedef struct SrGradeOptions {
    SrGradeMode mode;
    int prefer_after_think;   /* 1 (default): search after the last </think> first */
    int allow_unanchored;     /* 1 (default in EVAL): last LaTeX environment / last number
                                 fallback when nothing anchored is found; 0 turns it off */
    int float_rounding;       /* decimals floats are rounded to before comparing (6) */
    uint64_t seed;            /* random evaluation points for expressions with variables */
    /* bounds: exceeding any gives SR_VERDICT_UNVERIFIABLE (reason says which) */
    size_t max_input_bytes;   /* prediction / gold text (default 1 MiB) */
    int max_nodes;            /* expression nodes per parsed answer (default 4096) */
    int max_depth;            /* parser / evaluator recursion depth (default 200) */
    int max_bits;             /* big-integer size in bits (default 65536); number literals
                                 (integer or decimal) longer than max_bits / 3 + 2 digits too */
    int max_candidates;       /* answer candidates tried per text (default 400) */
    size_t max_memory;        /* scratch memory per call (default 64 MiB) */
    uint32_t max_regex_work;  /* PCRE2 match limit of one regex search (default 20,000,000):
                                 backtracking work, counted by PCRE2, not timed */
} SrGradeOptions;

void sr_grade_options_default(SrGradeOptions *opt);

/* The work one call did, counted (not timed), so tests can bound it whatever the machine's
 * speed: a grader that scans or parses quadratically often on some input shows it here
 * (backtracking inside one regex search is bounded by max_regex_work instead). */
typedef struct SrGradeWork {
    uint64_t parse_steps;  /* LaTeX parser rule entries (bounded: "parser work limit") */
    uint64_t regex_calls;  /* PCRE2 matches run */
    uint64_t regex_bytes;  /* subject bytes those matches scanned: from the start offset to
                              the end of the match, or to the end of the subject when none */
    uint64_t candidates;   /* answer candidates the extraction patterns found */
} SrGradeWork;

typedef struct SrGradeResult {
    SrVerdict verdict;
    /* malloc'd, NUL-terminated; "" when nothing was found */
    char *pred_extracted;   /* the text of the chosen answer (e.g. the \boxed content) */
    char *pred_normalized;  /* after normalisation (what was parsed) */
    char *gold_extracted;
    char *gold_normalized;
    const char *reason;     /* static string: why (e.g. "equal numbers", "no answer found") */
    SrGradeWork work;       /* what grading it took (both texts) */
} SrGradeResult;

typedef struct SrGrader SrGrader;

/* opt NULL = defaults. The options are copied. Never returns NULL (out of memory aborts). */
SrGrader *sr_grader_new(const SrGradeOptions *opt);
void sr_grader_free(SrGrader *g);

/* Grades one (prediction, gold) pair. Always fills *res (free it with sr_grade_result_free);
 * returns 0, or -1 only for NULL arguments. Bounded time and memory per call.
 * prediction and gold are C strings: each ends at its first NUL byte. A caller that holds a
 * text with its length (a decoded completion, a JSON string that may contain \u0000) must not
 * pass it here, where "\boxed{4}\0 wait, \boxed{5}" would be graded as its first 9 bytes (a
 * reward hack): it calls sr_grader_grade_n, which sees the whole text. */
int sr_grader_grade(SrGrader *g, const char *prediction, const char *gold, SrGradeResult *res);

/* The same for texts given as (pointer, length), e.g. GRPO's rewards over decoded tokens.
 * A text that holds a NUL byte is refused, never cut at the NUL: the verdict is
 * SR_VERDICT_UNVERIFIABLE (never correct) with reason "prediction contains a NUL byte" or
 * "reference contains a NUL byte", and it returns 0 (a model can emit the byte; that is its
 * answer being unusable, not a caller error). Returns -1 only for NULL arguments. */
int sr_grader_grade_n(SrGrader *g, const char *prediction, size_t prediction_len,
                      const char *gold, size_t gold_len, SrGradeResult *res);

/* One-shot convenience (builds and frees a grader: use SrGrader for many rows). */
SrGradeResult sr_grade(const char *prediction, const char *gold, const SrGradeOptions *opt);

void sr_grade_result_free(SrGradeResult *res);

/* Answer extraction alone (no comparison): the chosen answer of text (a C string, as for
 * sr_grader_grade) and its normalised form (malloc'd, "" when none). Returns 1 if an answer was
 * found and parsed, 0 if not. */
int sr_grader_extract(SrGrader *g, const char *text, char **extracted, char **normalized);

#endif
