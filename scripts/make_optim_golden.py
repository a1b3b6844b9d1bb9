#!/usr/bin/env python3
"""
Golden fixtures for the optimizer (tests/test_optim.c), made with torch.optim.AdamW,
torch.nn.utils.clip_grad_norm_ and transformers' get_scheduler, on the CPU in fp32.

Writes tests/fixtures/optim/:
  config.json, model.safetensors   a tiny untied Qwen2ForCausalLM with random weights (F32)
  golden.safetensors               K optimizer steps, as the HF Trainer does them:
      hparams                F64 [9]: lr, weight_decay, beta1, beta2, eps, max_grad_norm,
                                      warmup_steps, total_steps, min_lr_rate
      step<s>.input_ids      I32 [N]  (B sequences of T tokens, flattened: our packed stream)
      step<s>.position_ids   I32 [N]  (0..T-1 per sequence)
      step<s>.targets        I32 [N]  next token, -1 at each sequence end and where masked
      step<s>.loss           F64 [1]  mean cross-entropy over the targets of the batch
      step<s>.grad_norm      F64 [1]  what clip_grad_norm_ returned (before clipping)
      step<s>.lr             F64 [1]  the lr the optimizer used for this step
      step<s>.grad.<name>    F32      every parameter's gradient, before clipping
      final.<name>           F32      the parameters after the K steps
  schedules.json             lr per step for each schedule (constant, constant_with_warmup,
                             linear, cosine, cosine_with_min_lr) and warmup setting

The optimizer has TWO parameter groups, as transformers' Trainer / TRL build them:
decay = Trainer.get_decay_parameter_names(model) (everything but biases and norms) with
weight_decay, the rest with 0. The scheduler is cosine_with_min_lr with warmup 1, so step 0
runs with lr 0 (moments move, parameters do not) -- a case worth having.

Pinned versions: scripts/requirements-ref.txt (torch 2.15.0, transformers 5.24.0).
Usage:  /root/refenv/bin/python scripts/make_optim_golden.py [--out tests/fixtures/optim]
"""
import argparse
import json
import os
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from safetensors.torch import save_file
from transformers import Qwen2Config, Qwen2ForCausalLM, Trainer, TrainingArguments
from transformers.optimization import get_scheduler

SPEC = dict(vocab_size=96, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
            num_attention_heads=4, num_key_value_heads=2, rms_norm_eps=1e-6,
            tie_word_embeddings=False)
B, T, K = 2, 12, 3
# max_grad_norm sits between the step norms (4.13, 4.04, 3.97): step 0 is clipped, the rest not
HP = dict(lr=1e-2, weight_decay=0.1, beta1=0.9, beta2=0.95, eps=1e-8, max_grad_norm=4.08,
          warmup_steps=1, total_steps=K, min_lr_rate=0.1)


def make_model():
    cfg = Qwen2Config(**SPEC, max_position_embeddings=64,
                      rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
                      initializer_range=0.02, use_sliding_window=False, bos_token_id=1,
                      eos_token_id=2)
    cfg._attn_implementation = "eager"
    torch.manual_seed(0)
    model = Qwen2ForCausalLM(cfg).float()
    g = torch.Generator().manual_seed(777)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
    return model


def make_batch(step):
    g = torch.Generator().manual_seed(1000 + step)
    V = SPEC["vocab_size"]
    ids = torch.randint(0, V, (B, T), generator=g)
    targets = torch.full((B, T), -1, dtype=torch.long)
    targets[:, :-1] = ids[:, 1:]
    # a loss mask: a different number of masked tokens per sequence
    for b in range(B):
        for t in torch.randperm(T - 1, generator=g)[:2 + 2 * b].tolist():
            targets[b, t] = -1
    pos = torch.arange(T).repeat(B, 1)
    return ids, pos, targets


def training_golden(outdir):
    model = make_model()
    model.save_pretrained(outdir, safe_serialization=True)
    gen = os.path.join(outdir, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)

    decay_names = set(Trainer.get_decay_parameter_names(None, model))
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if n in decay_names], "weight_decay": HP["weight_decay"]},
        {"params": [p for n, p in named if n not in decay_names], "weight_decay": 0.0},
    ]
    print("no decay:", sorted(n for n, _ in named if n not in decay_names))
    opt = torch.optim.AdamW(groups, lr=HP["lr"], betas=(HP["beta1"], HP["beta2"]),
                            eps=HP["eps"], foreach=False)
    sched = get_scheduler("cosine_with_min_lr", opt, num_warmup_steps=HP["warmup_steps"],
                          num_training_steps=HP["total_steps"],
                          scheduler_specific_kwargs={"min_lr_rate": HP["min_lr_rate"]})
    V = SPEC["vocab_size"]
    tensors = {"hparams": torch.tensor([HP["lr"], HP["weight_decay"], HP["beta1"], HP["beta2"],
                                        HP["eps"], HP["max_grad_norm"], HP["warmup_steps"],
                                        HP["total_steps"], HP["min_lr_rate"]],
                                       dtype=torch.float64)}
    model.train()
    for s in range(K):
        ids, pos, targets = make_batch(s)
        opt.zero_grad()
        logits = model(input_ids=ids, position_ids=pos).logits
        loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1), ignore_index=-1)
        loss.backward()
        grads = {f"step{s}.grad.{n}": p.grad.detach().clone().contiguous() for n, p in named}
        norm = torch.nn.utils.clip_grad_norm_(model.parameters(), HP["max_grad_norm"])
        lr = opt.param_groups[0]["lr"]
        opt.step()
        sched.step()
        print(f"step {s}: loss {loss.item():.6f} grad_norm {norm.item():.6f} lr {lr:.6g} "
              f"(clipped: {norm.item() > HP['max_grad_norm']})")
        tensors.update(grads)
        tensors[f"step{s}.input_ids"] = ids.reshape(-1).to(torch.int32)
        tensors[f"step{s}.position_ids"] = pos.reshape(-1).to(torch.int32)
        tensors[f"step{s}.targets"] = targets.reshape(-1).to(torch.int32)
        tensors[f"step{s}.loss"] = torch.tensor([loss.item()], dtype=torch.float64)
        tensors[f"step{s}.grad_norm"] = torch.tensor([norm.item()], dtype=torch.float64)
        tensors[f"step{s}.lr"] = torch.tensor([lr], dtype=torch.float64)
    for n, p in named:
        tensors[f"final.{n}"] = p.detach().clone().contiguous()
    save_file(tensors, os.path.join(outdir, "golden.safetensors"), metadata={
        "made_by": "scripts/make_optim_golden.py",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    })


def schedule_golden(outdir):
    cases = []
    # (name, lr, total, warmup_steps as TrainingArguments takes it, min_lr_rate)
    for name, lr, total, warmup, rate in [
        ("constant", 3e-4, 10, 0, 0.0),
        ("constant_with_warmup", 3e-4, 10, 4, 0.0),
        ("linear", 5e-5, 20, 3, 0.0),
        ("linear", 5e-5, 20, 0.1, 0.0),        # a ratio: ceil(20 * 0.1) = 2
        ("linear", 1e-3, 7, 0, 0.0),
        ("cosine", 1e-4, 25, 0.05, 0.0),       # ceil(1.25) = 2
        ("cosine", 2e-5, 13, 5, 0.0),
        ("cosine_with_min_lr", 5e-5, 40, 0.05, 0.1),  # the paper's SFT recipe, scaled down
        ("cosine_with_min_lr", 1e-6, 9, 1, 0.25),
        ("cosine_with_min_lr", 3e-4, 6, 0, 0.0),
    ]:
        # TrainingArguments' own resolution (an instance needs accelerate: call it unbound)
        W = TrainingArguments.get_warmup_steps(SimpleNamespace(warmup_steps=warmup), total)
        p = torch.zeros(1, requires_grad=True)
        opt = torch.optim.SGD([p], lr=lr)
        kw = {"min_lr_rate": rate} if name == "cosine_with_min_lr" else None
        sched = get_scheduler(name, opt, num_warmup_steps=W, num_training_steps=total,
                              scheduler_specific_kwargs=kw)
        lrs = []
        for _ in range(total + 3):  # a few past the end (linear stays 0, cosine turns up)
            lrs.append(opt.param_groups[0]["lr"])
            opt.step()
            sched.step()
        cases.append(dict(name=name, lr=lr, total_steps=total, warmup_steps=warmup,
                          resolved_warmup=W, min_lr_rate=rate, lrs=lrs))
    with open(os.path.join(outdir, "schedules.json"), "w") as f:
        json.dump({"made_by": "scripts/make_optim_golden.py",
                   "transformers": __import__("transformers").__version__,
                   "cases": cases}, f, indent=1)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/optim")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    training_golden(a.out)
    schedule_golden(a.out)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
