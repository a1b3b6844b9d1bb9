#!/usr/bin/env python3
"""Hugging Face `tokenizers` encode throughput on the parity fixture's texts, for comparison
with build/bench_tokenizer (same texts, same tokenizer: the shipped Qwen2 BPE + R1-distill
added tokens + <bigmodel>/</bigmodel>, built by scripts/make_tokenizer_golden.py).

Reports, in one process per thread setting (RAYON_NUM_THREADS is read once per process):
  encode  : Tokenizer.encode(text) one text at a time (single thread)
  batch-1 : Tokenizer.encode_batch(all texts) with RAYON_NUM_THREADS=1
  batch-N : Tokenizer.encode_batch(all texts) with all cores
Each figure is the best of --repeat passes; MB are UTF-8 bytes of the texts.

Usage: /root/refenv/bin/python scripts/bench_tokenizer_hf.py [--data ../shared/data] [--repeat 3]
"""
import argparse
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run(mode, args):
    sys.path.insert(0, HERE)
    import make_tokenizer_golden as g
    tk = g.build_reference(args.data)
    texts = [g.reference_text(t) for _, t in g.fixture_texts(args.data)]
    mb = sum(len(t.encode("utf-8")) for t in texts) / 1e6
    best, first, tokens = 1e30, None, 0
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        if mode == "encode":
            tokens = sum(len(tk.encode(t, add_special_tokens=False).ids) for t in texts)
        else:
            tokens = sum(len(e.ids) for e in tk.encode_batch(texts, add_special_tokens=False))
        dt = time.perf_counter() - t0
        first = dt if first is None else first
        best = min(best, dt)
    label = {"encode": "HF encode, 1 thread (one text at a time)",
             "batch": "HF encode_batch, RAYON_NUM_THREADS=%s" % os.environ.get("RAYON_NUM_THREADS", "all")}[mode]
    print("%s: %.3f s, %.2f MB/s, %.2f M tokens/s (%d texts, %.2f MB, %d tokens, best of %d; first pass %.2f MB/s)"
          % (label, best, mb / best, tokens / 1e6 / best, len(texts), mb, tokens, args.repeat, mb / first),
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(HERE, "..", "..", "shared", "data"))
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--mode", choices=["encode", "batch"])
    args = ap.parse_args()
    if args.mode:
        run(args.mode, args)
        return 0
    me = [sys.executable, os.path.abspath(__file__), "--data", args.data, "--repeat", str(args.repeat)]
    for mode, threads in (("encode", "1"), ("batch", "1"), ("batch", None)):
        env = dict(os.environ)
        if threads:
            env["RAYON_NUM_THREADS"] = threads
        else:
            env.pop("RAYON_NUM_THREADS", None)
        subprocess.run(me + ["--mode", mode], env=env, check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
