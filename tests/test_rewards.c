/*
 * GRPO's rewards (train/rewards.h). The format / tag_count / coverage values below were computed
 * by running the SplitReason reference functions (training/open-r1/src/open_r1/rewards.py,
 * last version) on the same texts with Python; each row pins a quirk: MULTILINE's $ after
 * </answer>, the two newlines "<think>\n\n</think>" needs, nested and stray tags, code points
 * (not bytes), the 0.4 peak and the slope after it, the floor division of the span-count term
 * (4 spans -> 1, 8 -> 2, 9 -> 1, 17 -> -1), the unmatched-tag penalty. Then accuracy through the
 * grader (none only where it cannot judge), the offload accounting, latency and budget terms.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "train/rewards.h"

typedef struct RefCase {
    const char *text;  /* or NULL: built from rep x unit + tail */
    const char *unit;
    int rep, tail;     /* tail: that many 't' after each unit (0 = none) */
    double format, tag_count, coverage;
} RefCase;

static const RefCase REF[] = {
    {"", NULL, 0, 0, 1.0, 0.0, 0.0},
    {"<think>\nreason\n</think>\n<answer>\n42\n</answer>", NULL, 0, 0, 2.0, 1.5, 0.0},
    {"<think>\nreason\n</think>\n<answer>\n42\n</answer>\ntrailing", NULL, 0, 0, 2.0, 1.5, 0.0},
    {"<think>\nreason\n</think>\n<answer>\n42\n</answer>trailing", NULL, 0, 0, 1.0, 1.5, 0.0},
    {"<think>\n</think>\n<answer>\n42\n</answer>", NULL, 0, 0, 1.0, 1.5, 0.0},
    {"<think>\n\n</think>\n<answer>\n\n</answer>", NULL, 0, 0, 2.0, 1.5, 0.0},
    {" <think>\nx\n</think>\n<answer>\ny\n</answer>", NULL, 0, 0, 1.0, 1.5, 0.0},
    {"<think>\na <bigmodel>hard part</bigmodel> b\n</think>\n<answer>\n\\boxed{3}\n</answer>", NULL,
     0, 0, 2.0, 2.5625, 0.28125},
    {"<bigmodel>a<bigmodel>b</bigmodel>c</bigmodel>", NULL, 0, 0, 0.0, 1.3333333333333333,
     0.6666666666666666},
    {"x</bigmodel>y", NULL, 0, 0, 1.0, -2.0, 0.0},
    {"<bigmodel>never closed", NULL, 0, 0, 0.0, -2.0, 0.0},
    {"<bigmodel>ab</bigmodel>zzzzzz", NULL, 0, 0, 1.0, 0.3448275862068965, 0.17241379310344826},
    {"<bigmodel>abcd</bigmodel>zz", NULL, 0, 0, 1.0, 0.7407407407407407, 0.37037037037037035},
    {"<bigmodel>\xc3\xa9\xe6\xbc\xa2\xe5\xad\x97</bigmodel>ok", NULL, 0, 0, 1.0,
     0.5769230769230769, 0.28846153846153844},
    {NULL, "<bigmodel>s</bigmodel>", 4, 1, 1.0, 1.2173913043478262, 0.10869565217391304},
    {NULL, "<bigmodel>s</bigmodel>", 8, 1, 1.0, 2.217391304347826, 0.10869565217391304},
    {NULL, "<bigmodel>s</bigmodel>", 9, 40, 1.0, 1.0806451612903225, 0.04032258064516129},
    {NULL, "<bigmodel>s</bigmodel>", 17, 40, 1.0, -0.9193548387096774, 0.04032258064516129},
    {"<think>\n<think>\nx\n</think>\n\\boxed{1}\\boxed{2}", NULL, 0, 0, 1.0, 1.0, 0.0},
    {"<bigmodel>x</bigmodel><bigmodel>y", NULL, 0, 0, 0.0, -1.8484848484848484,
     0.07575757575757576},
    {NULL, "<bigmodel>xxxxxxxxxxxxxxxxxxxxxxxxxxxxxx</bigmodel>", 1, 0, 1.0, 0.7450980392156863,
     0.37254901960784315},
};

static char *build(const RefCase *c) {
    if (c->text) return strdup(c->text);
    size_t n = (strlen(c->unit) + (size_t)c->tail) * (size_t)c->rep + 1;
    char *s = calloc(n, 1);
    for (int i = 0; i < c->rep; i++) {
        strcat(s, c->unit);
        for (int k = 0; k < c->tail; k++) strcat(s, "t");
    }
    return s;
}

static void check_reference(void) {
    for (size_t i = 0; i < sizeof REF / sizeof REF[0]; i++) {
        char *t = build(&REF[i]);
        size_t n = strlen(t);
        SrReward f = reward_format(t, n), tc = reward_tag_count(t, n), cv = reward_coverage(t, n);
        CHECKF(!f.none && f.value == REF[i].format, "case %zu: format %g, reference %g", i,
               f.value, REF[i].format);
        CHECKF(!tc.none && fabs(tc.value - REF[i].tag_count) < 1e-12,
               "case %zu: tag_count %.17g, reference %.17g", i, tc.value, REF[i].tag_count);
        CHECKF(!cv.none && fabs(cv.value - REF[i].coverage) < 1e-12,
               "case %zu: coverage %.17g, reference %.17g", i, cv.value, REF[i].coverage);
        free(t);
    }
    /* far past the peak: 300 of 321 code points inside -> -0.78 (the slope runs to -1 at 1) */
    char big[400] = "<bigmodel>";
    for (int i = 0; i < 300; i++) strcat(big, "x");
    strcat(big, "</bigmodel>");
    CHECK(fabs(reward_coverage(big, strlen(big)).value - -0.7819314641744546) < 1e-12);
    CHECK(fabs(reward_tag_count(big, strlen(big)).value - -1.5638629283489092) < 1e-12);
    /* the text is used whole: a NUL byte inside does not end it */
    const char nul[] = "<bigmodel>a\0b</bigmodel>";
    CHECK(fabs(reward_coverage_ratio(nul, sizeof nul - 1) - 3.0 / 24.0) < 1e-12);
}

static void check_accuracy(void) {
    SrGradeOptions o;
    reward_accuracy_grade_options(&o);
    CHECK(o.mode == SR_GRADE_REWARD && o.prefer_after_think == 0);
    SrGrader *g = sr_grader_new(&o);
    const char *right = "<think>\nhalf of it\n</think>\n<answer>\n\\boxed{\\frac{1}{2}}\n</answer>";
    SrReward r = reward_accuracy(g, right, strlen(right), "0.5", 3);
    CHECK(!r.none && r.value == 1.0);
    const char *wrong = "so \\boxed{3}";
    r = reward_accuracy(g, wrong, strlen(wrong), "4", 1);
    CHECK(!r.none && r.value == 0.0);
    const char *nothing = "I do not know";
    r = reward_accuracy(g, nothing, strlen(nothing), "4", 1);
    CHECK(!r.none && r.value == 0.0); /* no answer: incorrect, not none */
    r = reward_accuracy(g, wrong, strlen(wrong), "", 0);
    CHECK(r.none && isnan(r.value)); /* the gold has no answer: open-r1 returns None */
    /* a NUL in the completion: unusable answer, never correct, not "none" either */
    const char nul[] = "\\boxed{4}\0 \\boxed{5}";
    r = reward_accuracy(g, nul, sizeof nul - 1, "4", 1);
    CHECK(!r.none && r.value == 0.0);
    sr_grader_free(g);
}

static void check_account(void) {
    enum { O = 100, C = 101 };
    /* prompt 3 tokens (one a tag, which the big model never reads); completion:
     * a b <o> x y z </c> c <o> w </c> d <o> v      (ends inside the third span) */
    int32_t prompt[3] = {5, O, 6};
    int32_t ids[] = {1, 2, O, 10, 11, 12, C, 3, O, 13, C, 4, O, 14};
    int n = (int)(sizeof ids / sizeof ids[0]);
    RolloutAccount a;
    rollout_account_from_ids(&a, prompt, 3, ids, n, O, C);
    CHECK(a.switches == 3);
    CHECK(a.big_tokens == 5 && a.small_tokens == 9);
    CHECK(a.ctx == 3 + n);
    /* first switch: the tag-free prompt (2) + a, b; second: z (written, never read) + c;
     * third: w + d */
    CHECK(a.delta_big[0] == 4 && a.delta_big[1] == 2 && a.delta_big[2] == 2);
    /* leaving: <bigmodel> + span + </bigmodel>; the last span never returns */
    CHECK(a.delta_small[0] == 5 && a.delta_small[1] == 3 && a.delta_small[2] == 0);
    CHECK(fabs(rollout_offload_share(&a) - 5.0 / 14.0) < 1e-12);
    SrReward b = reward_offload_budget(&a, 0.2, 2.0, 0.1);
    CHECK(!b.none && fabs(b.value - (-2.0 * (5.0 / 14.0 - 0.2) - 0.3)) < 1e-12);
    b = reward_offload_budget(&a, 0.5, 2.0, 0.0); /* under the target: no share penalty */
    CHECK(!b.none && b.value == 0.0);
    rollout_account_free(&a);
    rollout_account_from_ids(&a, prompt, 3, NULL, 0, O, C);
    CHECK(a.switches == 0 && rollout_offload_share(&a) == 0.0);
    rollout_account_free(&a);

    SrReward l = reward_latency_value(1.5, 1.0, 0.25);
    CHECK(!l.none && fabs(l.value - -0.125) < 1e-15);
    l = reward_latency_value(0.8, 1.0, 1.0); /* faster than small-only: a bonus */
    CHECK(!l.none && fabs(l.value - 0.2) < 1e-15);
    l = reward_latency_value(0.0, 0.0, 1.0);
    CHECK(l.none && isnan(l.value));
}

static void check_names(void) {
    const char *names[] = {"accuracy", "format", "tag_count", "coverage", "latency", "offload_budget"};
    for (int k = 0; k < REWARD_N_KINDS; k++) {
        CHECK(reward_kind_from_name(names[k]) == k);
        CHECK(strcmp(reward_kind_name((RewardKind)k), names[k]) == 0);
    }
    CHECK(reward_kind_from_name("length") == -1 && reward_kind_from_name(NULL) == -1);
}

int main(void) {
    check_reference();
    check_accuracy();
    check_account();
    check_names();
    return sr_test_done();
}
