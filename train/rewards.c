/*
 * GRPO's reward functions (train/rewards.h says what each computes and which quirk of the
 * SplitReason reference it keeps). Texts are bytes of UTF-8; the reference's Python counts
 * code points, so lengths here count the bytes that start a code point.
 */
#include "rewards.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

static const char *const KIND_NAMES[REWARD_N_KINDS] = {
    "accuracy", "format", "tag_count", "coverage", "latency", "offload_budget",
};

int reward_kind_from_name(const char *name) {
    for (int k = 0; name && k < REWARD_N_KINDS; k++)
        if (strcmp(name, KIND_NAMES[k]) == 0) return k;
    return -1;
}

const char *reward_kind_name(RewardKind k) {
    return k >= 0 && k < REWARD_N_KINDS ? KIND_NAMES[k] : "?";
}

static SrReward value(double v) { return (SrReward){v, 0}; }
static SrReward none(void) { return (SrReward){NAN, 1}; }

/* ---- text helpers: Python's str.find / str.count / len on UTF-8 bytes ----------------------- */

/* first occurrence of s at or after from, or -1 */
static long find(const char *t, size_t n, const char *s, size_t from) {
    size_t m = strlen(s);
    if (m == 0) return (long)from;
    for (size_t i = from; i + m <= n; i++)
        if (t[i] == s[0] && memcmp(t + i, s, m) == 0) return (long)i;
    return -1;
}

static int count(const char *t, size_t n, const char *s) {
    size_t m = strlen(s);
    int c = 0;
    for (long at = find(t, n, s, 0); at >= 0; at = find(t, n, s, (size_t)at + m)) c++;
    return c;
}

static size_t code_points(const char *t, size_t n) {
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += ((unsigned char)t[i] & 0xC0) != 0x80;
    return c;
}

static const char OPEN[] = "<bigmodel>", CLOSE[] = "</bigmodel>";

/* ---- accuracy ------------------------------------------------------------------------------ */

void reward_accuracy_grade_options(SrGradeOptions *opt) {
    sr_grade_options_default(opt);
    opt->mode = SR_GRADE_REWARD;
    opt->prefer_after_think = 0; /* open-r1's parse() reads the whole completion */
}

SrReward reward_accuracy(SrGrader *g, const char *text, size_t len, const char *gold,
                         size_t gold_len) {
    SrGradeResult r;
    sr_grader_grade_n(g, text, len, gold, gold_len, &r);
    SrReward out;
    if (r.verdict == SR_VERDICT_CORRECT) {
        out = value(1.0);
    } else if (r.verdict == SR_VERDICT_INCORRECT) {
        out = value(0.0);
    } else if (strcmp(r.reason, "answer does not parse") == 0 ||
               strcmp(r.reason, "prediction contains a NUL byte") == 0) {
        out = value(0.0); /* the completion's own answer is unusable: verify() is False */
    } else {
        out = none(); /* the gold is unusable, or the comparison cannot be decided */
    }
    sr_grade_result_free(&r);
    return out;
}

/* ---- format -------------------------------------------------------------------------------- */

/* _has_proper_bigmodel_nesting: only the openings are walked */
static int proper_nesting(const char *t, size_t n) {
    size_t pos = 0;
    for (;;) {
        long open = find(t, n, OPEN, pos);
        if (open < 0) return 1;
        long close = find(t, n, CLOSE, (size_t)open + sizeof OPEN - 1);
        if (close < 0) return 0;
        long next = find(t, n, OPEN, (size_t)open + sizeof OPEN - 1);
        if (next >= 0 && next < close) return 0;
        pos = (size_t)close + sizeof CLOSE - 1;
    }
}

/* re.match(r"^<think>\n.*?\n</think>\n<answer>\n.*?\n</answer>$", DOTALL | MULTILINE). The
 * earliest middle marker leaves the most room for the end, so it decides. */
static int scaffold(const char *t, size_t n) {
    static const char HEAD[] = "<think>\n", MID[] = "\n</think>\n<answer>\n", END[] = "\n</answer>";
    if (n < sizeof HEAD - 1 || memcmp(t, HEAD, sizeof HEAD - 1) != 0) return 0;
    long mid = find(t, n, MID, sizeof HEAD - 1);
    if (mid < 0) return 0;
    for (long e = find(t, n, END, (size_t)mid + sizeof MID - 1); e >= 0;
         e = find(t, n, END, (size_t)e + 1)) {
        size_t after = (size_t)e + sizeof END - 1;
        if (after == n || t[after] == '\n') return 1; /* MULTILINE $: end of a line */
    }
    return 0;
}

SrReward reward_format(const char *text, size_t len) {
    return value((double)scaffold(text, len) + (double)proper_nesting(text, len));
}

/* ---- coverage and tag_count ------------------------------------------------------------------ */

double reward_coverage_ratio(const char *text, size_t len) {
    size_t total = code_points(text, len), inside = 0, pos = 0;
    if (total == 0) return 0.0;
    for (;;) { /* re.findall(r"<bigmodel>(.*?)</bigmodel>", DOTALL) */
        long open = find(text, len, OPEN, pos);
        if (open < 0) break;
        size_t from = (size_t)open + sizeof OPEN - 1;
        long close = find(text, len, CLOSE, from);
        if (close < 0) break; /* no later close: no later match either */
        inside += code_points(text + from, (size_t)close - from);
        pos = (size_t)close + sizeof CLOSE - 1;
    }
    return (double)inside / (double)total;
}

SrReward reward_coverage(const char *text, size_t len) {
    const double peak = 0.4;
    double r = reward_coverage_ratio(text, len);
    if (r <= 0) return value(0.0);
    if (r < peak) return value(r / peak);
    double slope = -2.0 / (1.0 - peak), intercept = 1.0 - slope * peak;
    double v = slope * r + intercept;
    return value(v < -1.0 ? -1.0 : v > 1.0 ? 1.0 : v);
}

SrReward reward_tag_count(const char *text, size_t len) {
    double r = 0;
    if (count(text, len, "<think>\n") == 1) r += 0.5;
    if (count(text, len, "\n</think>\n") == 1) r += 0.5;
    if (count(text, len, "\n<answer>\n") == 1) r += 0.25;
    if (count(text, len, "\n</answer>") == 1) r += 0.25;
    if (count(text, len, "\\boxed{") > 0) r += 0.5;
    int opens = count(text, len, OPEN), closes = count(text, len, CLOSE);
    double f = opens <= 8 ? 0.5 * opens : 4.0 - 0.5 * (opens - 8);
    r += floor(f / 2.0); /* the reference's `// 2` on a float */
    r += 2.0 * reward_coverage(text, len).value;
    if (opens != closes) r -= 2.0;
    return value(r);
}

/* ---- offload accounting ---------------------------------------------------------------------- */

void rollout_account_from_ids(RolloutAccount *a, const int32_t *prompt, int n_prompt,
                              const int32_t *ids, int n, int32_t open_id, int32_t close_id) {
    memset(a, 0, sizeof *a);
    a->ctx = n_prompt + n;
    int cap = 0;
    for (int i = 0; i < n; i++) cap += ids[i] == open_id;
    a->delta_big = sr_calloc((size_t)(cap ? cap : 1), sizeof(int));
    a->delta_small = sr_calloc((size_t)(cap ? cap : 1), sizeof(int));
    int bview = 0, b_fed = 0, in_span = 0, span = 0;
    for (int i = 0; i < n_prompt; i++) bview += prompt[i] != open_id && prompt[i] != close_id;
    for (int i = 0; i < n; i++) {
        int32_t id = ids[i];
        if (in_span && id != close_id) { /* the big model writes, reading each token it wrote */
            a->big_tokens++;
            if (id == open_id) continue; /* a nested tag: part of the span, never read by big */
            bview++;
            if (span > 0) b_fed++;
            span++;
            continue;
        }
        a->small_tokens++;
        if (id == open_id) {
            a->delta_big[a->switches] = bview - b_fed;
            a->delta_small[a->switches] = 0;
            a->switches++;
            b_fed = bview;
            in_span = 1;
            span = 0;
        } else if (id == close_id) {
            if (in_span) a->delta_small[a->switches - 1] = span + 2;
            in_span = 0;
        } else {
            bview++;
        }
    }
}

void rollout_account_free(RolloutAccount *a) {
    free(a->delta_big);
    free(a->delta_small);
    memset(a, 0, sizeof *a);
}

double rollout_offload_share(const RolloutAccount *a) {
    int n = a->small_tokens + a->big_tokens;
    return n > 0 ? (double)a->big_tokens / n : 0.0;
}

SrReward reward_latency_value(double t_split, double t_small_only, double lambda) {
    if (!(t_small_only > 0) || !isfinite(t_split)) return none();
    return value(-lambda * (t_split - t_small_only) / t_small_only);
}

SrReward reward_offload_budget(const RolloutAccount *a, double target, double lambda_share,
                               double lambda_switch) {
    double over = rollout_offload_share(a) - target;
    return value(-lambda_share * (over > 0 ? over : 0.0) - lambda_switch * a->switches);
}
