#!/usr/bin/env python3
"""
The peer of bench/bench_decode.sh: transformers `model.generate(do_sample=True, ...)` on the
same exported model, fp32 on the CPU, the same prompt and settings as `splitreason generate`.
EOS is switched off (eos_token_id=None) so every row writes exactly --max-new-tokens tokens;
top_k=0 so that only temperature and top-p act (generation_config's default top_k=50 would
otherwise cut the vocabulary on this side alone). One warm-up call first; the timed call is
generate() alone (prefill included, model loading not), as `splitreason generate` times it.

Prints one line: `peer B=<b> tokens=<n> seconds=<s> tok/s=<r> prompt_tokens=<p>`.
Usage: python bench/bench_decode_peer.py --model DIR --prompt TEXT --batch B
           [--max-new-tokens 128] [--temperature 1.0] [--top-p 1.0] [--threads 2] [--seed 0]
"""
import argparse
import time

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--prompt", required=True)
    ap.add_argument("--batch", type=int, required=True)
    ap.add_argument("--max-new-tokens", type=int, default=128)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(a.seed)
    tok = AutoTokenizer.from_pretrained(a.model)
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32).eval()
    ids = tok(a.prompt, return_tensors="pt", add_special_tokens=False).input_ids
    ids = ids.repeat(a.batch, 1)
    mask = torch.ones_like(ids)
    kw = dict(do_sample=True, temperature=a.temperature, top_p=a.top_p, top_k=0,
              eos_token_id=None, pad_token_id=0, attention_mask=mask)
    with torch.inference_mode():
        model.generate(ids, max_new_tokens=4, **kw)  # warm-up
        t0 = time.perf_counter()
        out = model.generate(ids, max_new_tokens=a.max_new_tokens, **kw)
        dt = time.perf_counter() - t0
    n = (out.shape[1] - ids.shape[1]) * a.batch
    print(f"peer B={a.batch} tokens={n} seconds={dt:.3f} tok/s={n / dt:.1f} "
          f"prompt_tokens={ids.shape[1]}", flush=True)


if __name__ == "__main__":
    main()
