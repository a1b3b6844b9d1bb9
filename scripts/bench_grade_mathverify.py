#!/usr/bin/env python3
"""Math grading throughput of Hugging Face Math-Verify (versions: scripts/requirements-ref.txt)
on the same JSONL of {"pred", "gold"} rows as bench/bench_grade.c, graded the way the C grader
is checked against it (scripts/make_grade_golden.py: gold wrapped in \\boxed{}, text after the
last </think> first, verify()). With --c-bin it runs the C benchmark in the same run on the same
file and prints both rates and their ratio.

  /root/refenv/bin/python scripts/make_grade_golden.py --bench-out build/grade_bench.jsonl
  /root/refenv/bin/python scripts/bench_grade_mathverify.py build/grade_bench.jsonl \\
      --c-bin build/bench_grade
"""
import argparse
import json
import os
import re
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from make_grade_golden import mv_grade  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("file")
    ap.add_argument("--c-bin", default=None, help="bench/bench_grade binary to run too")
    ap.add_argument("--reward", action="store_true", help="SplitReason's reward config")
    ap.add_argument("--min-seconds", type=float, default=3.0)
    args = ap.parse_args()
    rows = [json.loads(l) for l in open(args.file)]
    c_line = None
    if args.c_bin:
        cmd = [args.c_bin, args.file, str(args.min_seconds)] + (["reward"] if args.reward else [])
        c_line = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()
    counts = [0, 0]
    t0, c0 = time.perf_counter(), time.process_time()
    for r in rows:
        ok, _, _ = mv_grade(r["pred"], r["gold"], reward=args.reward)
        counts[ok] += 1
    t, c = time.perf_counter() - t0, time.process_time() - c0
    mv_rate = len(rows) / t
    print(f"bench_grade_mathverify (Math-Verify, {'reward' if args.reward else 'eval'} mode, "
          f"1 process): {len(rows)} rows in {t:.2f} s: {mv_rate:.0f} rows/s "
          f"({len(rows) / c:.0f} rows per CPU-second); {counts[1]} correct, {counts[0]} incorrect")
    if c_line:
        print(c_line)
        m = re.search(r": ([\d.]+) rows/s", c_line)
        if m:
            print(f"ratio C / Math-Verify: {float(m.group(1)) / mv_rate:.0f}x")


if __name__ == "__main__":
    main()
