#!/usr/bin/env python3
"""Makes the math-grader agreement fixtures (tests/fixtures/grade/) with Hugging Face
Math-Verify (math-verify, latex2sympy2_extended, sympy: versions in
scripts/requirements-ref.txt), offline.

The peer is Math-Verify called the way the C grader is documented to behave (grade/grade.h):

  gold        parse("\\boxed{" + gold + "}")   (parse(gold) when gold already has a \\boxed)
  prediction  parse(text after the last </think>); parse(whole text) if that finds nothing
  verdict     verify(gold_parsed, pred_parsed)

in two configurations: "eval" (Math-Verify's parse() defaults: LaTeX + expression
extraction) and "reward" (SplitReason's accuracy_reward in training/open-r1/.../rewards.py:
boxed first, first match, no unanchored fallback, nits / malformed operators off, equations on).

Cases (ids are stable; the C test rebuilds every text from the same sources):
  real      shipped traces in ../shared/data, graded against their reference answer:
            r2a (R1-Distill-Qwen 1.5B/7B, Llama-8B greedy on MATH-500, 600 rows), dsr
            (DeepScaleR-1.5B on AIME24, 30), qwq (QwQ-32B on MATH-500, 400), ta (Thought Anchors
            R1-Distill traces, 40), openr1 (10 OpenR1-Math R1 traces; the dump has no answer
            field, so row 1 uses OpenR1's answer as its dataset card quotes it and rows 2-10 an
            answer transcribed by hand from the problem). Stored by reference (src, row).
  cross     each trace against another problem's gold (mostly incorrect: false positives).
  trunc     each trace cut at 3 pseudo-random points (unfinished outputs: the fallbacks).
  boxed     every distinct \\boxed{..} the traces wrote, against its problem's gold and itself.
  bench     every distinct MATH-500 / AIME24 / AIME25 / AMC23 reference answer against itself,
            equivalent rewritings (expect "correct") and near misses (expect "incorrect").
  hard      hand-written hard cases (expect set where the mathematics is clear).
  random    random expressions (a small grammar) against a re-rendering, a perturbation or
            another random expression, and random structured answers (tuples, intervals, sets,
            relations, percentages, units, unions, \\pm) in the usual wrappers: a
            differential test of the extraction and the LaTeX reading.

Output: tests/fixtures/grade/golden.jsonl.zst, one JSON object per line: line 1 meta
(versions, counts), then {"id", "set", "src"?, "row"?, "pred"?, "gold"?, "expect"?,
"mv": bool (eval config), "mvr": bool (reward config, real set only), "mv_pred", "mv_gold"
(str() of Math-Verify's parsed lists, for reading disagreements)}.

Usage: /root/refenv/bin/python scripts/make_grade_golden.py [--data ../shared/data]
       [--out tests/fixtures/grade] [--bench-out FILE [--bench-only]] (the benchmark input:
       the real traces as {"id", "pred", "gold"} lines)
"""
import argparse
import io
import json
import logging
import os
import re
import sys
import time

from latex2sympy2_extended import NormalizationConfig
from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

HERE = os.path.dirname(os.path.abspath(__file__))
# latex2sympy2 warns on every reward-config parse (equations=True is deprecated) and
# Math-Verify on each comparison timeout: keep the output readable
logging.getLogger("latex2sympy2_extended").setLevel(logging.ERROR)
logging.getLogger("math_verify").setLevel(logging.ERROR)

# ---- the peer ---------------------------------------------------------------------------------

REWARD_PRED_CONFIG = [
    LatexExtractionConfig(
        normalization_config=NormalizationConfig(
            nits=False, malformed_operators=False, basic_latex=True, equations=True,
            boxed="all", units=True),
        boxed_match_priority=0,
        try_extract_without_anchor=False,
    )
]


def gold_text(gold):
    return gold if ("\\boxed" in gold or "\\fbox" in gold) else "\\boxed{" + gold + "}"


def parse_gold(gold):
    return parse(gold_text(gold))


def parse_pred(text, reward=False):
    kw = dict(extraction_config=REWARD_PRED_CONFIG, extraction_mode="first_match") if reward else {}
    i = text.rfind("</think>")
    if i >= 0:
        p = parse(text[i + len("</think>"):], **kw)
        if p:
            return p
    return parse(text, **kw)


def mv_grade(pred, gold, reward=False):
    g = parse_gold(gold)
    p = parse_pred(pred, reward)
    return bool(verify(g, p)), g, p


def num_str(v):
    """the string the C side makes of a JSON number ('%.15g')"""
    if isinstance(v, str):
        return v
    return "%.15g" % v


# ---- real traces --------------------------------------------------------------------------------

OPENR1_GOLD = [
    # row 1: OpenR1-Math-220k `answer` (default/train row 0), as its dataset card quotes it
    "v_{R}=4\\mathrm{~}/\\mathrm{},v_{B}=10\\mathrm{~}/\\mathrm{}",
    # rows 2-10: transcribed by hand from the problems (the dump has no answer field)
    "180",
    "8",
    "D",
    "\\frac{1}{4}",
    "0",
    "-\\ln 2",
    "1, \\frac{1}{2}",
    "\\pm(10^{2014}+1), \\pm i(10^{2014}+1)",
    "11\\sqrt{3}",
]

REAL_SOURCES = {
    # src: (path, pred getter, gold getter)
    "r2a": ("r2a_math500_r1distill_greedy/df_attention_analysis_MATH500_greedy.jsonl",
            lambda r: r["response"], lambda r: r["answer"]),
    "dsr": ("deepscaler_1.5b_aime24_8k/8192t_test2024_qwen-instruct_t0.6_k1_s0_e30.jsonl",
            lambda r: r["generated_responses"][0], lambda r: r["gold_answer"]),
    "qwq": ("qwq32b_math500_semantic/h100_QwQ-32B_math-500_seed123.jsonl",
            lambda r: r["real_answer"], lambda r: r["answer"]),
    "ta": ("thought_anchors_math/thought_anchors_math_base_solutions.jsonl",
           lambda r: r["solution"], lambda r: r["gt_answer"]),
    "openr1": ("openr1_math_dump10/training_examples_math.jsonl",
               lambda r: r["response"], None),
}


def real_cases(data):
    out = []
    for src, (path, pg, gg) in REAL_SOURCES.items():
        with open(os.path.join(data, path)) as f:
            for row, line in enumerate(f):
                r = json.loads(line)
                gold = OPENR1_GOLD[row] if src == "openr1" else num_str(gg(r))
                out.append(dict(id=f"{src}:{row}", set="real", src=src, row=row, _pred=pg(r),
                                _gold=gold, **({"gold": gold} if src == "openr1" else {})))
    return out


# ---- benchmark answers and their rewritings ------------------------------------------------------

def bench_golds(data):
    golds = []
    for name in ["math500", "aime24", "aime25", "amc23"]:
        with open(os.path.join(data, name, "test.jsonl")) as f:
            for line in f:
                golds.append(num_str(json.loads(line)["answer"]))
    seen, uniq = set(), []
    for g in golds:
        if g not in seen:
            seen.add(g)
            uniq.append(g)
    return uniq


INT_RE = re.compile(r"\d+")


def bump_number(g, which):
    """near miss: the first / last integer literal + 1 (None if there is none). Subscripts
    (bases: Math-Verify ignores them), exponents of units and malformed \\frac12 are skipped."""
    if re.search(r"\\frac\d", g):
        return None
    ms = [m for m in INT_RE.finditer(g)
          if not re.search(r"[_^]\{?$", g[:m.start()])]
    if not ms:
        return None
    m = ms[0] if which == "first" else ms[-1]
    v = int(m.group()) + 1
    return g[:m.start()] + str(v) + g[m.end():]


def rewritings(g):
    """(pred, expect, kind) variants of reference answer g"""
    out = [("\\boxed{%s}" % g, "correct", "self"),
           ("The final answer is $\\boxed{%s}$." % g, "correct", "final answer sentence"),
           ("<think>\nmaybe it is 12345?\n</think>\nSo the answer is \\(\\boxed{%s}\\)." % g,
            "correct", "after think")]
    if "\\frac" in g:
        out.append(("\\boxed{%s}" % g.replace("\\frac", "\\dfrac"), "correct", "dfrac"))
    if "\\dfrac" in g:
        out.append(("\\boxed{%s}" % g.replace("\\dfrac", "\\frac"), "correct", "frac"))
    if " " in g:
        out.append(("\\boxed{%s}" % g.replace(" ", ""), "correct", "no spaces"))
    if re.fullmatch(r"-?\d+", g):
        n = int(g)
        out.append(("\\boxed{%d.0}" % n, "correct", "integer as float"))
        if abs(n) >= 1000:
            out.append(("\\boxed{%s}" % format(n, ","), "correct", "thousands separators"))
        out.append(("\\boxed{%d}" % (n + 1), "incorrect", "integer + 1"))
        if n != 0:
            out.append(("\\boxed{%d}" % (-n), "incorrect", "sign"))
        out.append(("The answer is %d." % n, "correct", "plain number"))
    m = re.fullmatch(r"(-?)\\frac\{(\d+)\}\{(\d+)\}", g)
    if m:
        s, a, b = m.group(1), int(m.group(2)), int(m.group(3))
        out.append(("\\boxed{%s%d/%d}" % (s, a, b), "correct", "a/b"))
        out.append(("\\boxed{%s\\frac{%d}{%d}}" % (s, 2 * a, 2 * b), "correct", "unreduced"))
        out.append(("\\boxed{%s\\frac{%d}{%d}}" % (s, a + 1, b), "incorrect", "numerator + 1"))
        if a != b:
            out.append(("\\boxed{%s\\frac{%d}{%d}}" % (s, b, a), "incorrect", "inverted"))
        d = b
        for p in (2, 5):
            while d % p == 0:
                d //= p
        if d == 1:
            val = a / b
            out.append(("\\boxed{%s%s}" % (s, repr(val)), "correct", "terminating decimal"))
    m = re.fullmatch(r"(\d+)\^\\circ", g)
    if m:
        out.append(("\\boxed{%s}" % m.group(1), "correct", "degrees dropped"))
        out.append(("\\boxed{%s^{\\circ}}" % m.group(1), "correct", "degrees braced"))
    m = re.fullmatch(r"\\text\{\((\w)\)\}", g)
    if m:
        L = m.group(1)
        out.append(("\\boxed{%s}" % L, "correct", "choice letter"))
        out.append(("\\boxed{(%s)}" % L, "correct", "choice letter in parens"))
        out.append(("\\boxed{\\textbf{(%s)}}" % L, "correct", "bold choice"))
        other = "A" if L != "A" else "B"
        out.append(("\\boxed{%s}" % other, "incorrect", "other letter"))
    if "\\left" in g:
        out.append(("\\boxed{%s}" % g.replace("\\left", "").replace("\\right", ""), "correct",
                    "no left/right"))
    if re.fullmatch(r"-?[\d,\s]+", g) and "," in g and not re.fullmatch(r"\d{1,3}(,\d{3})+", g):
        parts = [p.strip() for p in g.split(",")]
        out.append(("\\boxed{%s}" % ", ".join(reversed(parts)), "correct", "set reversed"))
        if len(parts) > 1:
            out.append(("\\boxed{%s}" % ", ".join(parts[:-1]), "incorrect", "element dropped"))
    m = re.fullmatch(r"(\d+)\s*\\sqrt\{(\d+)\}", g)
    if m:
        out.append(("\\boxed{\\sqrt{%d}}" % (int(m.group(1)) ** 2 * int(m.group(2))), "correct",
                    "sqrt folded"))
    m = re.fullmatch(r"(\d+)\s*\\pi", g)
    if m:
        out.append(("\\boxed{\\pi \\cdot %s}" % m.group(1), "correct", "pi first"))
    if re.fullmatch(r"-?\d+\.\d+", g):
        out.append(("\\boxed{%s0}" % g, "correct", "trailing zero"))
    m = re.fullmatch(r"\(([^,()]+),([^,()]+)\)", g.replace(" ", ""))
    if m and m.group(1) != m.group(2):
        out.append(("\\boxed{(%s,%s)}" % (m.group(2), m.group(1)), "incorrect", "pair swapped"))
    m = re.fullmatch(r"([\(\[])(.*)([\)\]])", g)
    if m and g.count(",") == 1 and "\\cup" not in g:
        flip = {"(": "[", "[": "(", ")": "]", "]": ")"}
        if "infty" not in m.group(2).split(",")[-1]:
            out.append(("\\boxed{%s%s%s}" % (m.group(1), m.group(2), flip[m.group(3)]),
                        "incorrect", "end open/closed flipped"))
    if re.fullmatch(r"[a-z]", g) is None and "=" not in g and "\\in" not in g and \
            not g.startswith("\\text") and "," not in g:
        out.append(("\\boxed{x = %s}" % g if "x" not in g else "\\boxed{y = %s}" % g, "correct",
                    "assignment"))
    for which in ("first", "last"):
        b = bump_number(g, which)
        if b is not None and b != g:
            out.append(("\\boxed{%s}" % b, "incorrect", "near miss: %s number + 1" % which))
    if g.startswith("-") and not g.startswith("-\\infty"):
        out.append(("\\boxed{%s}" % g[1:], "incorrect", "sign dropped"))
    # de-duplicate predictions
    seen, res = set(), []
    for p, e, k in out:
        if p not in seen:
            seen.add(p)
            res.append((p, e, k))
    return res


def bench_cases(data):
    out = []
    for gi, g in enumerate(bench_golds(data)):
        for vi, (p, e, k) in enumerate(rewritings(g)):
            out.append(dict(id=f"bench:{gi}:{vi}", set="bench", pred=p, gold=g, expect=e, kind=k))
    return out


# ---- model-written boxed answers and crossed pairs ----------------------------------------------

def boxed_contents(text):
    """every \\boxed{...} content of text (brace-matched), in order"""
    out, i = [], 0
    while True:
        i = text.find("\\boxed{", i)
        if i < 0:
            return out
        j, depth = i + 7, 1
        while j < len(text) and depth:
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            j += 1
        if depth == 0:
            out.append(text[i + 7:j - 1])
        i += 7


def boxed_cases(real):
    """every distinct boxed answer the traces wrote (reasoning included), against the gold of
    its problem and against itself"""
    seen, out = set(), []
    for c in real:
        for b in boxed_contents(c["_pred"]):
            if b in seen or len(b) > 300 or not b.strip():
                continue
            seen.add(b)
            k = len(seen) - 1
            out.append(dict(id=f"boxed:{k}:gold", set="boxed", pred="\\boxed{%s}" % b, gold=c["_gold"]))
            out.append(dict(id=f"boxed:{k}:self", set="boxed", pred="\\boxed{%s}" % b, gold=b))
    return out


def trunc_cases(real, per_row=3, seed=7):
    """each trace cut at pseudo-random points (in its second half, counted in characters):
    unfinished outputs, where the last LaTeX environment / number fallback decides"""
    r = Rnd(seed)
    out = []
    for c in real:
        t = c["_pred"]
        for _ in range(per_row):
            cut = len(t) // 2 + r.next() % max(1, len(t) // 2)
            out.append(dict(id=f"trunc:{c['id']}:{cut}", set="trunc", src=c["src"], row=c["row"],
                            cut=cut, _pred=t[:cut], _gold=c["_gold"],
                            **({"gold": c["_gold"]} if c["src"] == "openr1" else {})))
    return out


def cross_cases(real):
    """each trace against the gold of another problem of the same source (mostly incorrect)"""
    by_src = {}
    for c in real:
        by_src.setdefault(c["src"], []).append(c)
    out = []
    for src, rows in by_src.items():
        n = len(rows)
        for i, c in enumerate(rows):
            o = rows[(i + 7) % n]
            out.append(dict(id=f"cross:{src}:{i}", set="cross", src=src, row=c["row"],
                            gold=o["_gold"], _pred=c["_pred"], _gold=o["_gold"]))
    return out


# ---- random expressions (differential test of the LaTeX reading) ------------------------------

class Rnd:
    """a small deterministic LCG, so the cases do not depend on Python's random module"""

    def __init__(self, seed):
        self.s = seed

    def next(self):
        self.s = (self.s * 6364136223846793005 + 1442695040888963407) % (1 << 64)
        return self.s >> 33

    def pick(self, xs):
        return xs[self.next() % len(xs)]

    def chance(self, p):
        return (self.next() % 1000) < p * 1000


def rand_tree(r, depth):
    """an expression tree: ('num', s) ('var', s) ('const', s) ('frac', a, b) ('sqrt', a)
    ('pow', a, k) ('add', a, b) ('sub', a, b) ('mul', a, b) ('neg', a) ('fn', name, a)"""
    if depth <= 0 or r.chance(0.3):
        k = r.next() % 10
        if k < 4:
            return ("num", str(r.next() % 20 + 1))
        if k < 5:
            return ("num", "%d.%d" % (r.next() % 10, r.next() % 100))
        if k < 8:
            return ("var", r.pick(["x", "y", "a", "n"]))
        return ("const", r.pick(["\\pi", "e"]))
    k = r.next() % 12
    if k < 2:
        return ("frac", rand_tree(r, depth - 1), rand_tree(r, depth - 1))
    if k < 3:
        return ("sqrt", rand_tree(r, depth - 1))
    if k < 4:
        return ("pow", rand_tree(r, depth - 1), str(r.next() % 3 + 2))
    if k < 6:
        return ("add", rand_tree(r, depth - 1), rand_tree(r, depth - 1))
    if k < 7:
        return ("sub", rand_tree(r, depth - 1), rand_tree(r, depth - 1))
    if k < 9:
        return ("mul", rand_tree(r, depth - 1), rand_tree(r, depth - 1))
    if k < 10:
        return ("neg", rand_tree(r, depth - 1))
    return ("fn", r.pick(["\\sin", "\\cos", "\\ln", "\\exp"]), rand_tree(r, depth - 1))


def render(t, r, style):
    """LaTeX of tree t; style 0 is plain, other styles vary the notation (same value)"""
    k = t[0]
    alt = style and r.chance(0.5)
    if k in ("num", "var", "const"):
        return t[1]
    if k == "frac":
        a, b = render(t[1], r, style), render(t[2], r, style)
        return ("\\dfrac{%s}{%s}" if alt else "\\frac{%s}{%s}") % (a, b)
    if k == "sqrt":
        return "\\sqrt{%s}" % render(t[1], r, style)
    if k == "pow":
        base = render(t[1], r, style)
        return ("\\left(%s\\right)^{%s}" if alt else "(%s)^{%s}") % (base, t[2])
    if k in ("add", "sub"):
        a, b = render(t[1], r, style), render(t[2], r, style)
        if k == "add" and alt:
            a, b = b, a
        return "%s %s (%s)" % (a, "+" if k == "add" else "-", b)
    if k == "mul":
        a, b = render(t[1], r, style), render(t[2], r, style)
        op = r.pick([" \\cdot ", " \\times "]) if alt else " \\cdot "
        return "(%s)%s(%s)" % (a, op, b)
    if k == "neg":
        return "-(%s)" % render(t[1], r, style)
    return "%s\\left(%s\\right)" % (t[1], render(t[2], r, style)) if alt else \
        "%s(%s)" % (t[1], render(t[2], r, style))


PREC = {"add": 1, "sub": 1, "mul": 2, "neg": 3, "pow": 4}


def render_min(t, r):
    """LaTeX with as few parentheses as the precedence needs, and implicit products"""
    k = t[0]
    if k in ("num", "var", "const"):
        return t[1]
    if k == "frac":
        return "\\frac{%s}{%s}" % (render_min(t[1], r), render_min(t[2], r))
    if k == "sqrt":
        return "\\sqrt{%s}" % render_min(t[1], r)
    if k == "fn":
        return "%s(%s)" % (t[1], render_min(t[2], r))

    def sub(x, need):
        s_ = render_min(x, r)
        return "(%s)" % s_ if PREC.get(x[0], 9) < need else s_
    if k == "pow":
        return "%s^{%s}" % (sub(t[1], 5), t[2])
    if k == "neg":
        return "-%s" % sub(t[1], 3)
    if k == "add":
        return "%s + %s" % (sub(t[1], 1), sub(t[2], 2))
    if k == "sub":
        return "%s - %s" % (sub(t[1], 1), sub(t[2], 2))
    a, b = sub(t[1], 2), sub(t[2], 3)
    implicit = t[1][0] == "num" and t[2][0] in ("var", "const", "sqrt") and r.chance(0.6)
    return "%s%s%s" % (a, "" if implicit else r.pick([" \\cdot ", " \\times ", "*"]), b)


def perturb(t, r):
    """the same tree with one number changed"""
    if t[0] == "num":
        return ("num", str(int(float(t[1])) + 1 + r.next() % 3))
    if t[0] in ("var", "const"):
        return ("add", t, ("num", "1"))
    kids = list(t)
    idx = [i for i, x in enumerate(kids) if isinstance(x, tuple)]
    if not idx:
        return ("add", t, ("num", "1"))
    i = r.pick(idx)
    kids[i] = perturb(kids[i], r)
    return tuple(kids)


def random_cases(n=1200, seed=20250501):
    r = Rnd(seed)
    out = []
    for i in range(n):
        t = rand_tree(r, 1 + r.next() % 4)
        g = render(t, r, 0) if r.chance(0.5) else render_min(t, r)
        rend = (lambda x: render(x, r, 1)) if r.chance(0.5) else (lambda x: render_min(x, r))
        kind = r.next() % 3
        if kind == 0:
            p = rend(t)
        elif kind == 1:
            p = rend(perturb(t, r))
        else:
            p = rend(rand_tree(r, 1 + r.next() % 3))
        wrap = r.pick(["\\boxed{%s}", "The answer is $\\boxed{%s}$.", "$%s$", "\\[\n%s\n\\]"])
        out.append(dict(id=f"random:{i}", set="random", pred=wrap % p, gold=g))
    return out


def structured_cases(n=1500, seed=99):
    """random answers with structure: tuples, intervals, sets, relations, percentages, degrees,
    text, units, unions, \\pm; against themselves, a variant, or another random answer, in the
    usual wrappers ($..$, \\(\\boxed{..}\\), **Final Answer**: ...)"""
    r = Rnd(seed)

    def scalar(d=2):
        t = rand_tree(r, d)
        return render_min(t, r) if r.chance(0.6) else render(t, r, 1)

    def num():
        k = r.next() % 6
        if k == 0:
            return str(r.next() % 50)
        if k == 1:
            return "-%d" % (r.next() % 50)
        if k == 2:
            return "\\frac{%d}{%d}" % (r.next() % 9 + 1, r.next() % 9 + 1)
        if k == 3:
            return "%d.%d" % (r.next() % 9, r.next() % 99)
        if k == 4:
            return "\\sqrt{%d}" % (r.next() % 20)
        return "%d\\pi" % (r.next() % 5 + 1)

    def item():
        k = r.next() % 14
        a, b = num(), num()
        forms = [
            lambda: "(%s, %s)" % (a, b), lambda: "[%s, %s]" % (a, b), lambda: "(%s, %s]" % (a, b),
            lambda: "\\{%s, %s\\}" % (a, b), lambda: "%s, %s" % (a, b), lambda: "x = %s" % a,
            lambda: "x > %s" % a, lambda: "%s \\le x < %s" % (a, b), lambda: "%s\\%%" % a,
            lambda: "%s^\\circ" % a,
            lambda: "\\text{%s}" % r.pick(["yes", "no", "(A)", "(B)", "odd", "Even"]),
            lambda: "%s \\text{ %s}" % (a, r.pick(["cm", "units", "apples", "km/h", "dollars", "degrees"])),
            lambda: "(-\\infty, %s) \\cup (%s, \\infty)" % (a, b), lambda: "%s \\pm %s" % (a, b),
        ]
        return forms[k]() if k < len(forms) else scalar()

    out = []
    for i in range(n):
        g = item() if r.chance(0.8) else scalar()
        k = r.next() % 3
        p = g if k == 0 else (item() if k == 1 else g.replace("\\frac", "\\dfrac").replace(" ", ""))
        wrap = r.pick(["\\boxed{%s}", "The answer is $%s$.", "\\(\\boxed{%s}\\)", "$$%s$$",
                       "**Final Answer**: %s"])
        out.append(dict(id=f"struct:{i}", set="random", pred=wrap % p, gold=g))
    return out


# ---- hand-written hard cases --------------------------------------------------------------------

# (prediction, gold, expected verdict or None when it is a convention question)
HARD = [
    # extraction
    # Math-Verify joins boxed answers separated by < 70 characters holding "and", "or", "," or
    # ";" into one set: {5, 6} here
    ("So $x = 3$ and then \\boxed{5}. Wait, actually \\boxed{6}.", "6", None),
    ("So \\boxed{5}. Hmm, wait. Let me recheck everything from the start once more: the answer is \\boxed{6}.", "6", "correct"),
    ("\\boxed{\\boxed{7}}", "7", "correct"),
    ("The answer is $\\boxed{2}$ and $\\boxed{3}$", "2, 3", "correct"),
    ("\\boxed{1}, \\boxed{2}, \\boxed{3}", "1,2,3", "correct"),
    ("\\fbox{42}", "42", "correct"),
    ("\\boxed {42}", "42", "correct"),
    ("final answer is 17", "17", "correct"),
    ("The final answer is $\\frac{1}{3}$. I hope it is correct.", "\\frac13", "correct"),
    ("Answer: 12", "12", "correct"),
    ("**Answer:** $-4$", "-4", "correct"),
    ("<think>the answer is \\boxed{3}</think> so \\boxed{4}", "4", "correct"),
    ("<think>the answer is \\boxed{3}</think> I am not sure.", "3", "correct"),
    ("<think>long reasoning, 3 + 4 = 7", "7", "correct"),
    ("no numbers here at all", "5", "incorrect"),
    ("\\boxed{}", "5", None),
    ("The answer is \\boxed{5", "5", None),
    ("$$x=\\boxed{10}$$", "10", "correct"),
    ("\\[ \\boxed{\\frac{3}{4}} \\]", "0.75", "correct"),
    ("We get $1,000$ apples.", "1000", "correct"),
    ("It costs \\$18.90 in total, so \\boxed{\\$18.90}", "18.90", "correct"),
    # normalisation
    ("\\boxed{\\left( 1, 2 \\right)}", "(1,2)", "correct"),
    ("\\boxed{\\tfrac{1}{2}}", "\\frac12", "correct"),
    ("\\boxed{\\frac12}", "0.5", "correct"),
    ("\\boxed{\\sqrt2}", "\\sqrt{2}", "correct"),
    ("\\boxed{10\\%}", "10", "correct"),
    ("\\boxed{10\\%}", "0.1", "correct"),
    ("\\boxed{10 \\text{ percent}}", "10\\%", "correct"),
    ("\\boxed{5 \\text{ cm}}", "5", "correct"),
    ("\\boxed{5\\text{ cm}^2}", "5", "correct"),
    ("\\boxed{12 \\mathrm{~km}}", "12", "correct"),
    ("\\boxed{3 \\text{ apples}}", "3", "correct"),
    ("\\boxed{45^\\circ}", "45", "correct"),
    ("\\boxed{45^{\\circ}}", "45^\\circ", "correct"),
    ("\\boxed{1,\\!000}", "1000", "correct"),
    ("\\boxed{10{,}000}", "10000", "correct"),
    ("\\boxed{x \\in [2, 5]}", "[2,5]", "correct"),
    ("\\boxed{\\infty}", "\\infty", "correct"),
    ("\\boxed{\\text{infinity}}", "\\infty", None),
    ("\\boxed{\\mathbf{B}}", "\\text{(B)}", "correct"),
    ("\\boxed{\\text{B}}", "B", "correct"),
    ("\\boxed{.5}", "\\frac{1}{2}", "correct"),
    ("\\boxed{0.5}", "\\frac{1}{2}", "correct"),
    ("\\boxed{1/3}", "\\frac{1}{3}", "correct"),
    ("\\boxed{\\dfrac{\\sqrt{3}}{2}}", "\\frac{\\sqrt3}{2}", "correct"),
    ("\\boxed{\\displaystyle\\frac{7}{8}}", "\\frac78", "correct"),
    ("\\boxed{2\\frac{1}{2}}", "\\frac{5}{2}", "correct"),
    ("\\boxed{y=2x+3}", "2x+3", "correct"),
    # numbers
    ("\\boxed{0.3333}", "\\frac13", "incorrect"),
    ("\\boxed{0.333333}", "\\frac13", "correct"),
    ("\\boxed{0.3333333333}", "\\frac13", "correct"),
    ("\\boxed{3.14}", "\\pi", "incorrect"),
    ("\\boxed{3.141593}", "\\pi", "correct"),
    ("\\boxed{2.0}", "2", "correct"),
    ("\\boxed{2.000001}", "2", "incorrect"),
    ("\\boxed{1e3}", "1000", None),
    ("\\boxed{1E3}", "1000", "correct"),
    ("\\boxed{123456789012345678901234567890}", "123456789012345678901234567890", "correct"),
    ("\\boxed{123456789012345678901234567891}", "123456789012345678901234567890", "incorrect"),
    ("\\boxed{2^{100}}", "1267650600228229401496703205376", "correct"),
    ("\\boxed{2^{100}+1}", "1267650600228229401496703205376", "incorrect"),
    ("\\boxed{\\frac{10^{30}+1}{10^{30}}}", "1", "incorrect"),
    ("\\boxed{-0}", "0", "correct"),
    ("\\boxed{007}", "7", "correct"),
    ("\\boxed{\\frac{6}{4}}", "\\frac{3}{2}", "correct"),
    ("\\boxed{1.5}", "\\frac{3}{2}", "correct"),
    ("\\boxed{\\frac{-3}{2}}", "-\\frac{3}{2}", "correct"),
    ("\\boxed{50\\%}", "\\frac{1}{2}", "correct"),
    # expressions
    ("\\boxed{\\frac{1}{\\sqrt{2}}}", "\\frac{\\sqrt{2}}{2}", "correct"),
    ("\\boxed{\\sqrt{8}}", "2\\sqrt{2}", "correct"),
    ("\\boxed{\\sqrt{12}}", "2\\sqrt{2}", "incorrect"),
    ("\\boxed{2\\sqrt{3}+1}", "1+2\\sqrt3", "correct"),
    ("\\boxed{\\pi r^2}", "r^2\\pi", "correct"),
    ("\\boxed{e^2}", "e^{2}", "correct"),
    ("\\boxed{e^{i\\pi}}", "-1", None),
    ("\\boxed{\\ln 8}", "3\\ln 2", "correct"),
    ("\\boxed{\\log_2 8}", "3", "correct"),
    ("\\boxed{\\sin\\frac{\\pi}{6}}", "\\frac12", "correct"),
    ("\\boxed{\\cos^2 x + \\sin^2 x}", "1", "correct"),
    ("\\boxed{(x+1)(x-1)}", "x^2-1", "correct"),
    ("\\boxed{(x+1)^2}", "x^2+1", "incorrect"),
    ("\\boxed{2(a+b)}", "2a+2b", "correct"),
    ("\\boxed{\\frac{x^2-1}{x-1}}", "x+1", "correct"),
    ("\\boxed{ab}", "ba", "correct"),
    ("\\boxed{a-b}", "b-a", "incorrect"),
    ("\\boxed{\\binom{5}{2}}", "10", "correct"),
    ("\\boxed{5!}", "120", "correct"),
    ("\\boxed{|{-3}|}", "3", "correct"),
    ("\\boxed{\\lfloor 3.7 \\rfloor}", "3", "correct"),
    ("\\boxed{\\frac{\\pi}{2}}", "90^\\circ", None),
    ("\\boxed{3\\cdot 4}", "12", "correct"),
    ("\\boxed{3 \\times 4}", "12", "correct"),
    ("\\boxed{6 \\div 3}", "2", "correct"),
    ("\\boxed{x^2+2x+1}", "(x+1)^2", "correct"),
    ("\\boxed{X^2}", "x^2", "correct"),
    ("\\boxed{1 + 2i}", "1+2i", "correct"),
    ("\\boxed{2i+1}", "1+2i", "correct"),
    ("\\boxed{1-2i}", "1+2i", "incorrect"),
    # tuples, sets, intervals, matrices
    ("\\boxed{(1, 2)}", "(1,2)", "correct"),
    ("\\boxed{(2, 1)}", "(1,2)", "incorrect"),
    ("\\boxed{(3, 1, 2)}", "(3,1,2)", "correct"),
    ("\\boxed{(3, 2, 1)}", "(3,1,2)", "incorrect"),
    ("\\boxed{\\{1, 2, 3\\}}", "\\{3,2,1\\}", "correct"),
    ("\\boxed{3, 2, 1}", "1,2,3", "correct"),
    ("\\boxed{1, 2}", "1,2,3", "incorrect"),
    ("\\boxed{[1, 2)}", "[1,2)", "correct"),
    ("\\boxed{[1, 2]}", "[1,2)", "incorrect"),
    ("\\boxed{(-\\infty, 3]}", "(-\\infty,3]", "correct"),
    ("\\boxed{(-\\infty, 3)}", "(-\\infty,3]", "incorrect"),
    ("\\boxed{(0,1) \\cup (1,2)}", "(0,1)\\cup(1,2)", "correct"),
    ("\\boxed{(1,2) \\cup (0,1)}", "(0,1)\\cup(1,2)", "correct"),
    ("\\boxed{(0,2)}", "(0,1]\\cup(1,2)", "correct"),
    ("\\boxed{(0,2)}", "(0,1)\\cup(1,2)", "incorrect"),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
     "correct"),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 3 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}",
     "incorrect"),
    ("\\boxed{\\begin{pmatrix} 0.5 & 1 \\\\ 2 & 3 \\end{pmatrix}}",
     "\\begin{pmatrix} \\frac12 & 1 \\\\ 2 & 3 \\end{pmatrix}", "correct"),
    ("\\boxed{1 \\pm \\sqrt{2}}", "1+\\sqrt2, 1-\\sqrt2", "correct"),
    ("\\boxed{x = \\pm 2}", "-2, 2", "correct"),
    ("\\boxed{x=1, y=2}", "(1,2)", None),
    ("\\boxed{\\emptyset}", "\\emptyset", "correct"),
    ("\\boxed{\\mathbb{R}}", "(-\\infty,\\infty)", "correct"),
    # equations and inequalities
    ("\\boxed{x = 3}", "3", "correct"),
    ("\\boxed{3}", "x=3", "correct"),
    ("\\boxed{x = 4}", "3", "incorrect"),
    ("\\boxed{y = 3}", "x=3", "incorrect"),
    ("\\boxed{3 = x}", "x=3", "correct"),
    ("\\boxed{2x + 3y = 6}", "3y + 2x = 6", "correct"),
    ("\\boxed{4x + 6y = 12}", "2x + 3y = 6", "correct"),
    ("\\boxed{2x + 3y = 7}", "2x + 3y = 6", "incorrect"),
    ("\\boxed{y = -2x + 5}", "2x + y = 5", None),
    ("\\boxed{x > 2}", "x>2", "correct"),
    ("\\boxed{2 < x}", "x>2", "correct"),
    ("\\boxed{x \\geq 2}", "x>2", "incorrect"),
    ("\\boxed{(2, \\infty)}", "x > 2", "correct"),
    ("\\boxed{[2, \\infty)}", "x > 2", "incorrect"),
    ("\\boxed{(1, 3)}", "1 < x < 3", "correct"),
    ("\\boxed{a = 2, b = 3}", "a=2, b=3", "correct"),
    ("\\boxed{b = 3, a = 2}", "a=2, b=3", "correct"),
    ("\\boxed{a = 3, b = 2}", "a=2, b=3", "incorrect"),
    # words and letters
    ("\\boxed{\\text{Evelyn}}", "\\text{Evelyn}", "correct"),
    ("\\boxed{Evelyn}", "\\text{Evelyn}", "correct"),
    ("\\boxed{\\text{evelyn}}", "\\text{Evelyn}", "correct"),
    ("\\boxed{\\text{Bob}}", "\\text{Evelyn}", "incorrect"),
    ("\\boxed{\\text{(C)}}", "\\text{(C)}", "correct"),
    ("\\boxed{C}", "\\text{(C)}", "correct"),
    ("\\boxed{D}", "\\text{(C)}", "incorrect"),
    ("\\boxed{\\text{even}}", "\\text{even}", "correct"),
    ("\\boxed{\\text{odd}}", "\\text{even}", "incorrect"),
    ("\\boxed{\\text{east}}", "\\text{east}", "correct"),
    # malformed and adversarial
    ("\\boxed{\\frac{1}{0}}", "1", "incorrect"),
    ("\\boxed{((((((((((1))))))))))}", "1", "correct"),
    ("\\boxed{" + "(" * 300 + "1" + ")" * 300 + "}", "1", None),
    ("\\boxed{" + "1+" * 3000 + "1}", "3001", None),
    ("\\boxed{9^{9^{9^{9}}}}", "1", None),
    ("\\boxed{10^{100000}}", "1", None),
    ("\\boxed{\\sqrt{-1}}", "i", None),
    ("\\boxed{\\int_0^1 x\\,dx}", "\\frac12", None),
    ("\\boxed{\\lim_{x \\to 0} x}", "0", None),
    ("\\boxed{\\sum_{k=1}^{10} k}", "55", None),
    ("\\boxed{f(x)}", "f(x)", "correct"),
    ("\\boxed{\\$ \\$ \\$}", "5", None),
    ("\\boxed{}}}}", "5", None),
    ("$$$$$$", "5", None),
    ("\\boxed{\\text{\\frac{1}{2}}}", "\\frac12", None),
    ("\\boxed{x^{-1}}", "\\frac{1}{x}", "correct"),
    ("\\boxed{2^-1}", "\\frac12", None),
    ("\\boxed{3 apples and 2 oranges}", "3", None),
    # "answer ... 3" is anchored (priority 200) and beats the later bare number
    ("The answer is 3.\n\nActually no, it's 4.", "4", None),
    # realistic model writing
    ("\\boxed{\\text{The answer is } 5}", "5", None),
    ("\\boxed{5 \\text{ and } 7}", "5, 7", "correct"),
    ("\\boxed{x = 2 \\text{ or } x = 3}", "2, 3", "correct"),
    ("\\boxed{2 \\text{ or } 3}", "2,3", "correct"),
    ("\\boxed{\\dfrac{a+b}{2}}", "\\frac{b+a}{2}", "correct"),
    ("\\boxed{x^{2}+1}", "x^2+1", "correct"),
    ("\\boxed{\\sqrt[3]{2}}", "2^{1/3}", "correct"),
    ("\\boxed{\\frac{1}{2}\\pi}", "\\frac{\\pi}{2}", "correct"),
    ("\\boxed{\\pi/2}", "\\frac{\\pi}{2}", "correct"),
    ("\\boxed{90}", "\\frac{\\pi}{2}", "incorrect"),
    ("\\boxed{-\\frac{1}{2}}", "-0.5", "correct"),
    ("\\boxed{1\\frac{1}{2}}", "1.5", "correct"),
    ("\\boxed{(1,2),(3,4)}", "(3,4),(1,2)", "correct"),
    ("\\boxed{\\{(1,2),(3,4)\\}}", "(1,2),(3,4)", "correct"),
    ("\\boxed{[0,1]}", "0 \\le x \\le 1", "correct"),
    ("\\boxed{x \\le 1}", "(-\\infty, 1]", None),
    ("\\boxed{k \\neq 2}", "k\\ne 2", "correct"),
    ("\\boxed{\\frac{3}{4} \\text{ hours}}", "0.75", "correct"),
    ("\\boxed{\\$1.50}", "1.5", "correct"),
    ("\\boxed{12\\,345}", "12345", "correct"),
    ("\\boxed{12 345}", "12345", "correct"),
    ("\\boxed{\\sqrt{3}/2}", "\\frac{\\sqrt3}{2}", "correct"),
    ("\\boxed{10!}", "3628800", "correct"),
    ("\\boxed{\\binom{10}{3}}", "120", "correct"),
    ("\\boxed{C(10,3)}", "120", None),
    ("\\boxed{\\log_{2}{8}}", "3", "correct"),
    ("\\boxed{\\ln(e^2)}", "2", "correct"),
    ("\\boxed{e^{\\ln 2}}", "2", "correct"),
    ("\\boxed{\\tan 45^\\circ}", "1", None),
    ("\\boxed{\\cos(\\pi)}", "-1", "correct"),
    ("\\boxed{\\frac{1+\\sqrt{5}}{2}}", "\\frac{\\sqrt5+1}{2}", "correct"),
    ("\\boxed{2+\\sqrt{3}}", "\\frac{1}{2-\\sqrt3}", "correct"),
    ("\\boxed{\\frac{x+1}{x}}", "1+\\frac1x", "correct"),
    ("\\boxed{x^2-5x+6}", "(x-2)(x-3)", "correct"),
    ("\\boxed{x^2-5x+6}", "(x-2)(x+3)", "incorrect"),
    ("\\boxed{a^2b}", "ba^2", "correct"),
    ("\\boxed{\\frac{4}{3}\\pi r^3}", "\\frac{4\\pi r^3}{3}", "correct"),
    ("\\boxed{6.0\\%}", "6\\%", "correct"),
    ("\\boxed{0.06}", "6\\%", "correct"),
    ("\\boxed{6}", "6\\%", "correct"),
    ("\\boxed{60\\%}", "6\\%", "incorrect"),
    ("\\boxed{\\text{yes}}", "\\text{Yes}", "correct"),
    ("\\boxed{\\text{No}}", "\\text{Yes}", "incorrect"),
    ("\\boxed{1.0E2}", "100", "correct"),
    ("\\boxed{3/4}", "0.75", "correct"),
    ("\\boxed{-3/4}", "-0.75", "correct"),
    ("Therefore, $\\boxed{5}$.", "5", "correct"),
    ("**Final Answer**\n\\[\n\\boxed{5}\n\\]", "5", "correct"),
    ("The answer is: $\\frac{7}{2}$", "3.5", "correct"),
    ("\\boxed{(-\\infty,-1)\\cup(1,\\infty)}", "x<-1 \\text{ or } x>1", None),
    ("\\boxed{\\pi}", "\u03c0", "correct"),
    ("\\boxed{2\u03c0}", "2\\pi", "correct"),
    ("\\boxed{\u22123}", "-3", "correct"),
    ("\\boxed{3\u00d74}", "12", "correct"),
    ("\\boxed{\u221a2}", "\\sqrt2", None),
    ("\\boxed{x\u00b2}", "x^2", None),
    ("\\boxed{\\frac{1}{2} \\text{ or } \\frac{1}{3}}", "\\frac13, \\frac12", "correct"),
    ("\\boxed{\\dots}", "5", None),
    ("\\boxed{1, 2, \\ldots, 10}", "10", None),
    ("\\boxed{\\text{trapezoid}}", "\\text{trapezoid}", "correct"),
    ("\\boxed{trapezoid}", "\\text{trapezoid}", None),
    ("\\boxed{\\overline{AB}}", "\\overline{AB}", "correct"),
    ("\\boxed{\\angle ABC}", "\\angle ABC", "correct"),
    ("\\boxed{\\vec{v}}", "\\vec{v}", "correct"),
    ("\\boxed{\\alpha + \\beta}", "\\beta+\\alpha", "correct"),
    ("\\boxed{\\theta = \\frac{\\pi}{3}}", "\\frac{\\pi}{3}", "correct"),
    ("\\boxed{f(x) = 2x + 1}", "2x+1", None),
    ("\\boxed{f^{-1}(x) = \\frac{x-1}{2}}", "\\frac{x-1}{2}", None),
    ("\\boxed{0.\\overline{3}}", "\\frac13", None),
    ("\\boxed{1 : 2}", "\\frac12", "correct"),
    ("\\boxed{\\frac{2}{4}}", "\\frac{1}{2}", "correct"),
    ("\\boxed{ \\frac{ 1 } { 2 } }", "\\frac12", "correct"),
    ("\\boxed{\\left\\{ 1, 2 \\right\\}}", "\\{1,2\\}", "correct"),
    ("\\boxed{\\mathrm{(B)}}", "\\text{(B)}", "correct"),
    ("\\boxed{\\textbf{(E)}}", "\\text{(E)}", "correct"),
    ("\\boxed{\\text{(E) } 12}", "\\text{(E)}", None),
    ("\\boxed{5\\sqrt{2}\\text{ units}}", "5\\sqrt2", "correct"),
    ("\\boxed{25\\pi \\text{ square units}}", "25\\pi", None),
    ("\\boxed{1 \\times 10^{6}}", "1000000", "correct"),
    ("\\boxed{1.2 \\times 10^{-3}}", "0.0012", "correct"),
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "0.707107", "correct"),
    ("\\boxed{\\frac{\\sqrt{2}}{2}}", "0.7071", "incorrect"),
    ("\\boxed{(2, 3]}", "2 < x \\le 3", "correct"),
    ("\\boxed{x < 2 \\text{ or } x > 3}", "(-\\infty,2)\\cup(3,\\infty)", None),
    ("\\boxed{y = \\frac{1}{2}x + 1}", "y = 0.5x + 1", "correct"),
    ("\\boxed{x + y = 1}", "y = 1 - x", None),
    ("\\boxed{\\frac{1}{2}, \\frac{1}{3}}", "\\left\\{\\frac13, \\frac12\\right\\}", "correct"),
]


def hard_cases():
    return [dict(id=f"hard:{i}", set="hard", pred=p, gold=g, **({"expect": e} if e else {}))
            for i, (p, g, e) in enumerate(HARD)]


# ---- main ---------------------------------------------------------------------------------------

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures", "grade"))
    ap.add_argument("--bench-out", default=None,
                    help="also write the benchmark input (pred/gold per line) to this jsonl")
    ap.add_argument("--bench-only", action="store_true", help="only write --bench-out")
    args = ap.parse_args()
    if args.bench_only:
        write_bench(args)
        return
    from importlib.metadata import version

    real = real_cases(args.data)
    cases = ([dict(c) for c in real] + cross_cases(real) + trunc_cases(real) + boxed_cases(real) +
             bench_cases(args.data) + hard_cases() + random_cases() + structured_cases())
    t0 = time.time()
    recs = []
    for k, c in enumerate(cases):
        pred = c.pop("_pred", None) or c.get("pred")
        gold = c.pop("_gold", None) or c.get("gold")
        ok, g, p = mv_grade(pred, gold)
        c["mv"] = ok
        if c["set"] in ("real", "cross"):
            c["mvr"] = mv_grade(pred, gold, reward=True)[0]
        c["mv_pred"] = [str(x)[:200] for x in p]
        c["mv_gold"] = [str(x)[:200] for x in g]
        recs.append(c)
        if (k + 1) % 500 == 0:
            print(f"{k + 1}/{len(cases)} {time.time() - t0:.1f}s", file=sys.stderr)
    meta = dict(meta=True, math_verify=version("math-verify"),
                latex2sympy2_extended=version("latex2sympy2_extended"), sympy=version("sympy"),
                n=len(recs), sets={s: sum(r["set"] == s for r in recs)
                                  for s in ("real", "cross", "trunc", "boxed", "bench", "hard", "random")})
    os.makedirs(args.out, exist_ok=True)
    buf = io.StringIO()
    buf.write(json.dumps(meta) + "\n")
    for r in recs:
        buf.write(json.dumps(r, ensure_ascii=False) + "\n")
    path = os.path.join(args.out, "golden.jsonl.zst")
    write_zst(path, buf.getvalue().encode())
    print(f"wrote {path}: {len(recs)} cases in {time.time() - t0:.1f}s "
          f"(Math-Verify {meta['math_verify']})", file=sys.stderr)
    if args.bench_out:
        write_bench(args)


def write_bench(args):
    if args.bench_out:
        with open(args.bench_out, "w") as f:
            for c in real_cases(args.data):
                f.write(json.dumps({"id": c["id"], "pred": c["_pred"], "gold": c["_gold"]},
                                   ensure_ascii=False) + "\n")


def write_zst(path, data):
    try:
        import zstandard
        with open(path, "wb") as f:
            f.write(zstandard.ZstdCompressor(level=19).compress(data))
    except ImportError:
        import subprocess
        subprocess.run(["zstd", "-19", "-q", "-f", "-o", path], input=data, check=True)


if __name__ == "__main__":
    main()
