#!/usr/bin/env python3
"""
The peer for `splitreason sft`'s CPU throughput: transformers' Qwen2ForCausalLM + a plain
PyTorch training loop doing what one SFT optimizer step does (forward with the loss, backward,
clip_grad_norm_, AdamW with transformers' decay groups, the cosine_with_min_lr schedule), fp32
on the CPU, on the same model directory (e.g. the demo's tiny model, loaded with
from_pretrained: the same weights and shapes) and the same batch shape (B sequences of T tokens).

Token ids are random (throughput does not depend on them); every token is a target, which
costs the same lm_head and cross-entropy work as splitreason's masked loss (it computes the
logits of every position too).

Usage:
  /root/refenv/bin/python scripts/bench_sft_torch.py --model runs/demo/model \
      [--steps 30] [--batch 1] [--seq 512] [--threads 2] [--grad-checkpointing]
"""
import argparse
import time

import torch
from transformers import Qwen2ForCausalLM, get_scheduler


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--steps", type=int, default=30)
    ap.add_argument("--warmup-iters", type=int, default=2, help="untimed steps first")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--seq", type=int, default=512)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--grad-checkpointing", action="store_true")
    ap.add_argument("--attn", default="sdpa", choices=["sdpa", "eager"])
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model = Qwen2ForCausalLM.from_pretrained(a.model, dtype=torch.float32, attn_implementation=a.attn)
    model.train()
    if a.grad_checkpointing:
        model.gradient_checkpointing_enable()
    decay = [p for n, p in model.named_parameters()
             if not any(k in n.lower() for k in ("bias", "norm"))]
    no_decay = [p for n, p in model.named_parameters()
                if any(k in n.lower() for k in ("bias", "norm"))]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": a.weight_decay},
                             {"params": no_decay, "weight_decay": 0.0}],
                            lr=a.lr, betas=(0.9, 0.999), eps=1e-8, foreach=True)
    total = a.steps + a.warmup_iters
    sched = get_scheduler("cosine_with_min_lr", opt, num_warmup_steps=max(1, total // 20),
                          num_training_steps=total, scheduler_specific_kwargs={"min_lr_rate": 0.1})
    V = model.config.vocab_size
    g = torch.Generator().manual_seed(1)
    t_all = cpu_all = 0.0
    for it in range(total):
        ids = torch.randint(0, min(V, 151643), (a.batch, a.seq), generator=g)
        t0, c0 = time.perf_counter(), time.process_time()
        out = model(input_ids=ids, labels=ids, use_cache=False)
        out.loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        if it >= a.warmup_iters:
            t_all += time.perf_counter() - t0
            cpu_all += time.process_time() - c0
    n_params = sum(p.numel() for p in model.parameters())
    tok = a.batch * a.seq * a.steps
    print(f"bench_sft_torch (torch {torch.__version__}, {a.attn}, {a.threads} threads, "
          f"grad checkpointing {a.grad_checkpointing}): {n_params / 1e6:.2f}M parameters, "
          f"{a.batch} x {a.seq} tokens per step, {a.steps} timed steps")
    print(f"  {a.steps / t_all:.3f} optimizer steps/s, {tok / t_all:.0f} tokens/s "
          f"({tok / cpu_all:.0f} tokens per CPU-second), last loss {out.loss.item():.4f}")


if __name__ == "__main__":
    main()
