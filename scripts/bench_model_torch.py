#!/usr/bin/env python3
"""
PyTorch reference for bench/bench_model.c: the same Qwen2 config and batch, fp32 on the CPU,
forward + backward tokens/s.

  config: 4 layers, hidden 256, 4 heads, 2 KV heads (head_dim 64), intermediate 1024,
          vocab 32000, untied; one document of N tokens (default 1024), every token a target
  threads: --threads (default 2, this machine's cores; match OMP_NUM_THREADS of the C bench)

Usage: /root/refenv/bin/python scripts/bench_model_torch.py [--n 1024] [--iters 5] [--attn sdpa]
"""
import argparse
import time

import torch
from transformers import Qwen2Config, Qwen2ForCausalLM


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--iters", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=32000, hidden_size=256, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=2, head_dim=64,
                      intermediate_size=1024, max_position_embeddings=4096,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                      rms_norm_eps=1e-6, tie_word_embeddings=False, use_sliding_window=False)
    cfg._attn_implementation = a.attn
    model = Qwen2ForCausalLM(cfg).float()
    model.train()
    ids = torch.randint(0, cfg.vocab_size, (1, a.n))
    labels = ids.clone()
    t_fwd = t_all = cpu_all = 0.0
    for it in range(-1, a.iters):  # -1: warm-up
        t0 = time.perf_counter()
        c0 = time.process_time()
        model.zero_grad(set_to_none=False)
        out = model(input_ids=ids, labels=labels, use_cache=False)
        t1 = time.perf_counter()
        out.loss.backward()
        t2 = time.perf_counter()
        if it >= 0:
            t_fwd += t1 - t0
            t_all += t2 - t0
            cpu_all += time.process_time() - c0
    n_params = sum(p.numel() for p in model.parameters())
    print(f"bench_model_torch (torch {torch.__version__}, {a.attn}, {a.threads} threads): "
          f"params={n_params / 1e6:.2f}M N={a.n} iters={a.iters}")
    print(f"  loss {out.loss.item():.4f}  forward {1e3 * t_fwd / a.iters:.1f} ms  "
          f"forward+backward {1e3 * t_all / a.iters:.1f} ms  ->  "
          f"{a.n * a.iters / t_all:.0f} tokens/s (forward only {a.n * a.iters / t_fwd:.0f} tokens/s)")
    print(f"  forward+backward CPU time {1e3 * cpu_all / a.iters:.1f} ms  ->  "
          f"{a.n * a.iters / cpu_all:.0f} tokens per CPU-second")


if __name__ == "__main__":
    main()
