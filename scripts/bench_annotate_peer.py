#!/usr/bin/env python3
"""
The peer of bench/bench_annotate.c: the same work with the Python stack people would use.

  gap:     the same traces, the same two models (the HF directories the C bench saved), the
           same prompt (BOS + "<｜User｜>{problem}<｜Assistant｜>" + the trace); transformers
           Qwen2ForCausalLM fp32 forward of each model over the whole sequence, log_softmax,
           gather -> per-token log-prob gap (what the C `gap` method computes before spans).
  prepare: the same annotated JSONL; json.loads, the R1-distill chat template, HF `tokenizers`
           encode_batch (all threads), loss masks, best-fit-decreasing packing into 16384,
           uint32 tokens + uint8 masks written raw (the C side also zstd-compresses).

Run bench/bench_annotate first (it leaves its inputs in --dir), then:
  /root/refenv/bin/python scripts/bench_annotate_peer.py --dir /tmp/sr_bench_annotate [--threads 2]
"""
import argparse
import bisect
import json
import os
import time

import numpy as np
import torch
from tokenizers import Tokenizer
from transformers import AutoModelForCausalLM

BOS, EOS = "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"


def bench_gap(d, threads):
    torch.set_num_threads(threads)
    tok = Tokenizer.from_file(os.path.join(d, "small", "tokenizer.json"))
    small = AutoModelForCausalLM.from_pretrained(os.path.join(d, "small"), dtype=torch.float32).eval()
    big = AutoModelForCausalLM.from_pretrained(os.path.join(d, "big"), dtype=torch.float32).eval()
    bos = tok.token_to_id(BOS)
    rows = [json.loads(l) for l in open(os.path.join(d, "traces.jsonl"))]
    n_tok = 0
    t0, c0 = time.perf_counter(), time.process_time()
    with torch.no_grad():
        for r in rows:
            resp = r["response"]
            trace = resp[resp.index("<think>"):]
            if trace.endswith(EOS):
                trace = trace[: -len(EOS)]
            p = [bos] + tok.encode("<｜User｜>" + r["problem"] + "<｜Assistant｜>", add_special_tokens=False).ids
            t = tok.encode(trace, add_special_tokens=False).ids
            ids = torch.tensor([p + t])
            tgt = ids[0, len(p):]
            lp = []
            for m in (small, big):
                logits = m(ids).logits[0, len(p) - 1: -1]
                lp.append(torch.log_softmax(logits.float(), -1).gather(1, tgt[:, None])[:, 0])
            gap = lp[1] - lp[0]
            assert gap.numel() == len(t)
            n_tok += len(t)
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(f"peer gap (transformers fp32, {threads} threads): {len(rows)} traces, {n_tok} tokens in {dt:.2f} s: "
          f"{len(rows) / dt:.3f} traces/s, {n_tok / dt:.0f} tokens/s ({n_tok / cpu:.0f} tokens per CPU-second)")


def bfd(lengths, cap):
    """best-fit-decreasing: returns the bin of each item"""
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    rooms, ids, bins, n_bins = [], [], [0] * len(lengths), 0  # rooms sorted, ids aligned
    for i in order:
        k = bisect.bisect_left(rooms, lengths[i])
        if k == len(rooms):
            b, room = n_bins, cap
            n_bins += 1
        else:
            b, room = ids.pop(k), rooms.pop(k)
        room -= lengths[i]
        bins[i] = b
        k = bisect.bisect_left(rooms, room)
        rooms.insert(k, room)
        ids.insert(k, b)
    return bins, n_bins


def bench_prepare(d, max_length=16384):
    tok = Tokenizer.from_file(os.path.join(d, "small", "tokenizer.json"))
    tok.add_tokens(["<bigmodel>", "</bigmodel>"])  # single ids, as prepare adds them
    bos, eos = tok.token_to_id(BOS), tok.token_to_id(EOS)
    path = os.path.join(d, "prepare_in.jsonl")
    size = os.path.getsize(path)
    t0, c0 = time.perf_counter(), time.process_time()
    prompts, comps = [], []
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        prompts.append("<｜User｜>" + r["problem"] + "<｜Assistant｜><think>\n")
        c = r["annotated"]
        comps.append(c[len("<think>\n"):] if c.startswith("<think>\n") else c)
    pe = tok.encode_batch(prompts, add_special_tokens=False)
    ce = tok.encode_batch(comps, add_special_tokens=False)
    docs, masks = [], []
    for p, c in zip(pe, ce):
        ids = np.array([bos] + p.ids + c.ids + [eos], dtype=np.uint32)[:max_length]
        m = np.zeros(len(ids), dtype=np.uint8)
        m[1 + len(p.ids):] = 1
        docs.append(ids)
        masks.append(m)
    bins, n_bins = bfd([len(x) for x in docs], max_length)
    seqs = [[] for _ in range(n_bins)]
    for i, b in enumerate(bins):
        seqs[b].append(i)
    with open(os.path.join(d, "peer_tokens.bin"), "wb") as f:
        for s in seqs:
            f.write(np.concatenate([docs[i] for i in s]).tobytes())
            f.write(np.concatenate([masks[i] for i in s]).tobytes())
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    n_tok = sum(len(x) for x in docs)
    print(f"peer prepare (json + HF tokenizers encode_batch + numpy + BFD): {size / 1e6:.1f} MB, {len(docs)} documents, "
          f"{n_tok} tokens -> {n_bins} sequences in {dt:.2f} s: {size / 1e6 / dt:.2f} MB/s "
          f"({size / 1e6 / cpu:.2f} MB per CPU-second), {n_tok / dt:.0f} tokens/s")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--dir", default="/tmp/sr_bench_annotate")
    ap.add_argument("--threads", type=int, default=2)
    a = ap.parse_args()
    bench_gap(a.dir, a.threads)
    bench_prepare(a.dir)


if __name__ == "__main__":
    main()
