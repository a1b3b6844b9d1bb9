#!/usr/bin/env python3
"""Parity fixtures for the GRPO loss: TRL's GRPOTrainer loss, advantages, metrics and gradients.

Pinned (a venv OUTSIDE the repository; see scripts/requirements-ref.txt):
    torch==2.15.0 transformers==5.24.0 trl==1.16.0   (CPU)
Run from the repository root:
    /tmp/peervenv/bin/python scripts/make_grpo_fixtures.py [--out tests/fixtures/grpo]

What it does, and why this way:
- A tiny Qwen2 (vocab 32, hidden 8, 2 layers, GQA 2:1, untied) made with transformers from a
  fixed seed, saved as an HF directory (model/), which `splitreason` loads.
- A GRPOTrainer per beta, with the generation replaced by fixed rows (trainer._generate
  returns our prompt and completion ids, and, for the importance-sampling cases, the sampler's
  log-probs) and a reward function that returns fixed rewards (one is None: "none"). The
  trainer's own _generate_and_score_completions then builds the masks, the truncation mask, the
  advantages and the old / reference log-probs exactly as in training, and _compute_loss gives
  the loss; loss.backward() the gradients.
- num_iterations 2: the old log-probs are set to the policy's plus noise (as after an update),
  the reference's likewise, and written into the rows ("old_logprobs", "ref_logprobs"), so
  clipping (epsilon 0.2, epsilon_high 0.28) and the KL are exercised.
- Importance sampling (TRL applies it only with vLLM): use_vllm is switched on after
  construction, so the ratio between the sampler's log-probs ("sampling_logprobs", one null)
  and the trainer's is computed by TRL's own code.
- A loss mask (TRL's tool_mask: in split rollouts the big model's tokens are context): three
  cases on the same rows with "loss_mask".
Writes batch.jsonl, batch_is.jsonl, batch_mask*.jsonl, cases.json (settings under TRL GRPOConfig names, loss,
advantages, kl, clip ratios, per-parameter gradient norms) and grads.safetensors (every
gradient, "CASE/param name").
"""
import argparse
import json
import math
import os
import random
import shutil
import tempfile

import torch
import transformers
import trl
from datasets import Dataset
from safetensors.torch import save_file
from tokenizers import Tokenizer, models
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM
from trl import GRPOConfig, GRPOTrainer

assert transformers.__version__ == "5.24.0", transformers.__version__
assert trl.__version__.startswith("1.16."), trl.__version__

V, PAD, EOS = 32, 0, 1
TEMPERATURE = 0.7
MAX_COMPLETION = 8
G = 4  # generations per prompt

# two prompts (groups) x 4 completions; row 1 is truncated (8 tokens, no eos); row 6 fills the
# length but ends with eos (not truncated); row 2's reward is "none"
PROMPTS = [[5, 9, 14, 3, 22], [7, 30, 11]]
COMPLETIONS = [
    [12, 4, 17, EOS],
    [3, 25, 8, 19, 6, 27, 10, 2],
    [20, 9, EOS],
    [14, 14, 5, 23, 31, EOS],
    [6, 18, 2, 29, EOS],
    [11, EOS],
    [4, 8, 15, 16, 23, 28, 13, EOS],
    [21, 3, 26, 7, 9, 24, EOS],
]
REWARDS = [1.0, 0.0, None, 0.5, 0.25, 1.0, 0.25, 0.0]
# the tokens the policy wrote (TRL's tool_mask; ours "loss_mask": in split rollouts the big
# model's spans are context, out of the loss)
LOSS_MASK = [
    [1, 0, 0, 1],
    [1] * 8,
    [1, 1, 1],
    [1, 1, 0, 0, 1, 1],
    [1, 0, 1, 1, 1],
    [1, 1],
    [1, 1, 1, 0, 0, 0, 1, 1],
    [1, 1, 1, 0, 0, 1, 1],
]


def make_model(out_dir):
    torch.manual_seed(1234)
    cfg = Qwen2Config(
        vocab_size=V, hidden_size=8, intermediate_size=16, num_hidden_layers=2,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=64,
        rms_norm_eps=1e-6, rope_theta=10000.0, tie_word_embeddings=False,
        initializer_range=0.5, bos_token_id=EOS, eos_token_id=EOS, pad_token_id=PAD,
    )
    model = Qwen2ForCausalLM(cfg).float()
    # biases are zero at init: give them values so their gradients mean something
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith(".bias") or "norm" in name:
                p.add_(0.1 * torch.randn_like(p))
    model.save_pretrained(out_dir, safe_serialization=True)
    return model


def make_tokenizer():
    vocab = {f"t{i}": i for i in range(V)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="t2"))
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="t0", eos_token="t1",
                                   unk_token="t2")


def build_trainer(model_dir, tokenizer, beta, workdir):
    args = GRPOConfig(
        output_dir=workdir, per_device_train_batch_size=len(COMPLETIONS), num_generations=G,
        gradient_accumulation_steps=1, steps_per_generation=1, num_iterations=2, beta=beta,
        epsilon=0.2, epsilon_high=0.28, temperature=TEMPERATURE,
        max_completion_length=MAX_COMPLETION, report_to=[], use_cpu=True, bf16=False,
        logging_steps=1, seed=0, log_completions=False,
    )
    model = Qwen2ForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    ds = Dataset.from_list([{"prompt": f"p{i}"} for i in range(len(COMPLETIONS))])

    def reward_fixed(prompts, completions, **kw):
        return list(REWARDS)

    trainer = GRPOTrainer(model=model, reward_funcs=[reward_fixed], args=args, train_dataset=ds,
                          processing_class=tokenizer)
    trainer.model.train()
    trainer.current_gradient_accumulation_steps = 1
    return trainer


def set_generation(trainer, sampling=None, tool_mask=None):
    def fake_generate(prompts):
        prompt_ids = [list(PROMPTS[i // G]) for i in range(len(COMPLETIONS))]
        completion_ids = [list(c) for c in COMPLETIONS]
        return (prompt_ids, completion_ids, tool_mask, [""] * len(COMPLETIONS), sampling, {}, None, [])
    trainer._generate = fake_generate


def score(trainer):
    inputs = [{"prompt": f"p{i // G}"} for i in range(len(COMPLETIONS))]
    return trainer._generate_and_score_completions(inputs)


def padded(rows, mask_len):
    t = torch.zeros(len(rows), mask_len)
    for i, r in enumerate(rows):
        t[i, : len(r)] = torch.tensor(r)
    return t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="tests/fixtures/grpo")
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    model_dir = os.path.join(a.out, "model")
    if os.path.isdir(model_dir):
        shutil.rmtree(model_dir)
    make_model(model_dir)
    tokenizer = make_tokenizer()
    work = tempfile.mkdtemp(prefix="grpo_fixtures_")
    rng = random.Random(7)
    T = max(len(c) for c in COMPLETIONS)

    trainers = {b: build_trainer(model_dir, tokenizer, b, os.path.join(work, str(b))) for b in (0.0, 0.04)}

    # the policy's own log-probs at the temperature (TRL computes them as "old" here: num_iterations 2)
    tr0 = trainers[0.0]
    tr0.mask_truncated_completions = False
    set_generation(tr0)
    base = score(tr0)["old_per_token_logps"]
    pol = [base[i, : len(c)].tolist() for i, c in enumerate(COMPLETIONS)]

    def noisy(scale):
        return [[min(x + rng.uniform(-scale, scale), -1e-4) for x in r] for r in pol]

    old = noisy(0.35)
    ref = noisy(0.5)
    sampling = noisy(0.3)
    sampling[3][2] = None  # a token the sampler could not score

    rows, rows_is, rows_mask, rows_mask_is = [], [], [], []
    for i, c in enumerate(COMPLETIONS):
        row = {"group": i // G, "prompt_ids": PROMPTS[i // G], "completion_ids": c,
               "reward": REWARDS[i], "truncated": c[-1] != EOS}
        rows.append(dict(row, old_logprobs=old[i], ref_logprobs=ref[i]))
        rows_is.append(dict(row, ref_logprobs=ref[i], sampling_logprobs=sampling[i]))
        rows_mask.append(dict(rows[-1], loss_mask=LOSS_MASK[i]))
        rows_mask_is.append(dict(rows_is[-1], loss_mask=LOSS_MASK[i]))
    for name, rs in (("batch.jsonl", rows), ("batch_is.jsonl", rows_is),
                     ("batch_mask.jsonl", rows_mask), ("batch_mask_is.jsonl", rows_mask_is)):
        with open(os.path.join(a.out, name), "w") as f:
            for r in rs:
                f.write(json.dumps(r) + "\n")

    base_cfg = {"epsilon": 0.2, "epsilon_high": 0.28, "temperature": TEMPERATURE,
                "max_completion_length": MAX_COMPLETION, "num_iterations": 2,
                "mask_truncated_completions": True}
    cases = []
    for lt in ("grpo", "bnpo", "dr_grpo", "dapo"):
        for beta in (0.0, 0.04):
            for sr in ("group", "batch", "none"):
                cases.append((f"{lt}_b{beta}_{sr}", "batch.jsonl",
                              dict(base_cfg, loss_type=lt, beta=beta, scale_rewards=sr)))
    cases.append(("dapo_b0.04_group_keep_truncated", "batch.jsonl",
                  dict(base_cfg, loss_type="dapo", beta=0.04, scale_rewards="group",
                       mask_truncated_completions=False)))
    cases.append(("grpo_b0.04_group_sequence_level", "batch.jsonl",
                  dict(base_cfg, loss_type="grpo", beta=0.04, scale_rewards="group",
                       importance_sampling_level="sequence")))
    cases.append(("dapo_b0.04_group_delta", "batch.jsonl",
                  dict(base_cfg, loss_type="dapo", beta=0.04, scale_rewards="group", delta=1.25)))
    cases.append(("bnpo_b0.04_batch_no_bias_correction", "batch.jsonl",
                  dict(base_cfg, loss_type="bnpo", beta=0.04, scale_rewards="batch",
                       use_bias_correction_kl=False)))
    is_modes = [("token_truncate", 0.8, 1.2, "dapo"), ("token_mask", 0.8, 1.25, "grpo"),
                ("sequence_truncate", None, 1.5, "bnpo"), ("sequence_mask", 0.5, 3.0, "dr_grpo")]
    for mode, lo, hi, lt in is_modes:
        cfg = dict(base_cfg, loss_type=lt, beta=0.04, scale_rewards="group", num_iterations=1,
                   vllm_importance_sampling_correction=True, vllm_importance_sampling_mode=mode,
                   vllm_importance_sampling_clip_min=lo, vllm_importance_sampling_clip_max=hi)
        cases.append((f"is_{mode}_{lt}", "batch_is.jsonl", cfg))
    # a loss mask (TRL's tool_mask): the policy's own tokens only
    cases.append(("mask_grpo_b0.04_group_sequence_level", "batch_mask.jsonl",
                  dict(base_cfg, loss_type="grpo", beta=0.04, scale_rewards="group",
                       importance_sampling_level="sequence")))
    cases.append(("mask_dapo_b0.04_batch", "batch_mask.jsonl",
                  dict(base_cfg, loss_type="dapo", beta=0.04, scale_rewards="batch")))
    cases.append(("mask_is_token_mask_bnpo", "batch_mask_is.jsonl",
                  dict(base_cfg, loss_type="bnpo", beta=0.04, scale_rewards="group", num_iterations=1,
                       vllm_importance_sampling_correction=True,
                       vllm_importance_sampling_mode="token_mask",
                       vllm_importance_sampling_clip_min=0.8, vllm_importance_sampling_clip_max=1.25)))

    out_cases, grads_out = [], {}
    for name, batch, cfg in cases:
        tr = trainers[cfg["beta"]]
        tr.loss_type = cfg["loss_type"]
        tr.scale_rewards = cfg["scale_rewards"]
        tr.mask_truncated_completions = cfg["mask_truncated_completions"]
        tr.importance_sampling_level = cfg.get("importance_sampling_level", "token")
        tr.args.delta = cfg.get("delta")
        tr.args.use_bias_correction_kl = cfg.get("use_bias_correction_kl", True)
        use_is = cfg.get("vllm_importance_sampling_correction", False)
        tr.use_vllm = use_is
        tr.vllm_importance_sampling_correction = use_is
        tool_mask = [list(m) for m in LOSS_MASK] if batch.startswith("batch_mask") else None
        if use_is:
            tr.vllm_importance_sampling_mode = cfg["vllm_importance_sampling_mode"]
            tr.vllm_importance_sampling_clip_min = cfg["vllm_importance_sampling_clip_min"]
            tr.vllm_importance_sampling_clip_max = cfg["vllm_importance_sampling_clip_max"]
            samp = [[math.nan if x is None else x for x in r] for r in sampling]
            set_generation(tr, samp, tool_mask)
        else:
            set_generation(tr, None, tool_mask)
        inputs = score(tr)
        if not use_is:  # num_iterations 2: the old log-probs of the rows
            inputs["old_per_token_logps"] = padded(old, T)
        if cfg["beta"] != 0.0:
            inputs["ref_per_token_logps"] = padded(ref, T)
        tr.model.zero_grad(set_to_none=True)
        tr._metrics["train"].clear()
        loss = tr._compute_loss(tr.model, inputs)
        loss.backward()
        met = {k: v[-1] for k, v in tr._metrics["train"].items() if v}
        grads, norms, total = {}, {}, 0.0
        for pname, p in tr.model.named_parameters():
            g = p.grad.detach().clone() if p.grad is not None else torch.zeros_like(p)
            grads_out[f"{name}/{pname}"] = g.contiguous()
            norms[pname] = g.double().norm().item()
            total += norms[pname] ** 2
        out_cases.append({
            "name": name, "batch": batch, "config": cfg,
            "loss": loss.item(), "advantages": inputs["advantages"].tolist(),
            "kl": met.get("kl", 0.0),
            "clip_ratio": {k.split("/")[1]: met[k] for k in met if k.startswith("clip_ratio/")},
            "grad_norm": math.sqrt(total), "grads": norms,
        })
        print(f"{name}: loss {loss.item():.8g}")
    with open(os.path.join(a.out, "cases.json"), "w") as f:
        json.dump({"generator": "scripts/make_grpo_fixtures.py", "trl": trl.__version__,
                   "transformers": transformers.__version__, "torch": torch.__version__,
                   "model": "model", "cases": out_cases}, f, indent=1)
    save_file(grads_out, os.path.join(a.out, "grads.safetensors"))
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
