#!/usr/bin/env python3
"""
Golden fixtures for the Qwen2 model (tests/test_model_parity.c), made with Hugging Face
transformers' Qwen2ForCausalLM on the CPU in fp32 with eager attention.

For each tiny config it writes tests/fixtures/model/<name>/:
  config.json, model.safetensors   -- save_pretrained of random weights (what qwen2_load reads)
  golden.safetensors               -- input_ids, position_ids, targets (I32 [N]),
                                      logits (F32 [N, V]), logprob (F32 [N], log p(target),
                                      0 where target < 0), loss (F32 [1]),
                                      grad.<HF parameter name> (F32) for every parameter

Conventions (as model/model.h): one flat stream of N tokens; targets[i] is the label for
the prediction made AFTER token i (HF's labels shifted left), -1 where no loss is taken;
loss = mean cross-entropy over tokens with targets >= 0 (exactly HF's ForCausalLMLoss).

Configs:
  A  tied embeddings, Hq = Hkv = 4, head_dim = hidden / heads, theta 1e6, one document,
     F32 weights, some labels -100.
  B  untied, Hq = 8 = 4 * Hkv, explicit head_dim (12 != 48 / 8), theta 1e4, eps 1e-5,
     THREE PACKED documents: position_ids restart per document and an explicit 4D additive
     mask blocks cross-document attention (checked here against running the documents
     one by one); weights stored as BF16 (the fp32 reference uses the bf16-rounded values).

Weights are not HF's init (std 0.02, zero biases, unit norms would hide bias / norm bugs):
linear and embedding weights ~ N(0, 0.1), biases ~ N(0, 0.1), norm weights ~ 1 + N(0, 0.1).

Also:  --check-export DIR --golden FIXDIR
  loads a model directory written by qwen2_save (our C code) with transformers, runs the
  golden inputs of FIXDIR and compares the logits with FIXDIR/golden.safetensors (exit 1 if
  the relative error exceeds 1e-4, or if the weights do not load cleanly).

Pinned versions: scripts/requirements-ref.txt (torch 2.15.0, transformers 5.24.0).
Usage:  /root/refenv/bin/python scripts/make_model_golden.py [--out tests/fixtures/model]
"""
import argparse
import json
import os
import sys

import torch
from safetensors.torch import load_file, save_file
from transformers import Qwen2Config, Qwen2ForCausalLM

CONFIGS = {
    "A": dict(
        vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=4, rope_theta=1e6, rms_norm_eps=1e-6,
        tie_word_embeddings=True, docs=[24], bf16=False, seed=1234,
    ),
    "B": dict(
        vocab_size=257, hidden_size=48, intermediate_size=80, num_hidden_layers=2,
        num_attention_heads=8, num_key_value_heads=2, head_dim=12, rope_theta=1e4,
        rms_norm_eps=1e-5, tie_word_embeddings=False, docs=[9, 14, 7], bf16=True, seed=4321,
    ),
}


def make_config(spec):
    kw = {k: v for k, v in spec.items() if k not in ("docs", "bf16", "seed", "rope_theta")}
    cfg = Qwen2Config(
        **kw,
        max_position_embeddings=128,
        rope_parameters={"rope_type": "default", "rope_theta": spec["rope_theta"]},
        initializer_range=0.02,
        use_sliding_window=False,
        bos_token_id=1,
        eos_token_id=2,
    )
    cfg._attn_implementation = "eager"
    return cfg


def randomize(model, seed, bf16):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if name.endswith("norm.weight") or "layernorm" in name:
                p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            if bf16:
                p.copy_(p.to(torch.bfloat16).float())


def doc_mask(docs):
    """4D additive mask [1, 1, N, N]: causal inside each document, -inf across."""
    n = sum(docs)
    allowed = torch.zeros(n, n, dtype=torch.bool)
    s = 0
    for d in docs:
        allowed[s:s + d, s:s + d] = torch.tril(torch.ones(d, d, dtype=torch.bool))
        s += d
    m = torch.zeros(n, n)
    m[~allowed] = torch.finfo(torch.float32).min
    return m[None, None]


def build_inputs(spec, g):
    docs = spec["docs"]
    V = spec["vocab_size"]
    ids = torch.randint(0, V, (sum(docs),), generator=g)
    pos = torch.cat([torch.arange(d) for d in docs])
    labels = ids.clone()
    # labels[t] is what token t-1 should predict; never predict across a document start
    s = 0
    for d in docs:
        labels[s] = -100
        s += d
    # mask a few more positions (the loss mask of a prompt, say)
    for t in torch.randperm(sum(docs), generator=g)[:4].tolist():
        labels[t] = -100
    return ids, pos, labels


def run(model, ids, pos, labels, docs):
    mask = doc_mask(docs) if len(docs) > 1 else None
    out = model(input_ids=ids[None], position_ids=pos[None], attention_mask=mask,
                labels=labels[None])
    return out


def make(name, spec, outdir):
    torch.manual_seed(0)
    cfg = make_config(spec)
    model = Qwen2ForCausalLM(cfg).float()
    model.config._attn_implementation = "eager"
    randomize(model, spec["seed"], spec["bf16"])
    model.train(False)

    g = torch.Generator().manual_seed(spec["seed"] + 1)
    ids, pos, labels = build_inputs(spec, g)
    out = run(model, ids, pos, labels, spec["docs"])
    logits = out.logits[0].detach()

    # the packed run must equal the documents run one by one
    if len(spec["docs"]) > 1:
        s = 0
        with torch.no_grad():
            for d in spec["docs"]:
                sep = model(input_ids=ids[None, s:s + d]).logits[0]
                err = (sep - logits[s:s + d]).abs().max().item()
                assert err < 1e-5, f"{name}: packed 4D-mask logits differ from separate run ({err})"
                s += d
        # and without the mask they must differ (the mask really was honoured)
        with torch.no_grad():
            nomask = model(input_ids=ids[None], position_ids=pos[None]).logits[0]

        # eager attention does not infer the documents from restarting position_ids (5.24:
        # the logits differ by ~3 without the mask), so the explicit 4D mask is what counts
        diff = (nomask - logits).abs().max().item()
        assert diff > 1e-2, f"{name}: the 4D mask made no difference ({diff})"
        print(f"{name}: packed: 4D mask == separate runs; without the mask logits move by {diff:.3g}")

    out.loss.backward()
    targets = torch.cat([labels[1:], torch.tensor([-100])])
    targets = torch.where(targets < 0, torch.full_like(targets, -1), targets)
    lp = torch.log_softmax(logits.double(), dim=-1)
    logprob = torch.where(targets >= 0, lp.gather(1, targets.clamp(min=0)[:, None])[:, 0],
                          torch.zeros(()).double()).float()
    n_valid = int((targets >= 0).sum())
    loss_check = -logprob.double().sum() / n_valid
    assert abs(loss_check.item() - out.loss.item()) < 1e-5, (loss_check.item(), out.loss.item())

    # take the gradients before saving: Module.to(dtype) converts .grad too
    grads = {"grad." + pname: p.grad.detach().float().clone().contiguous()
             for pname, p in model.named_parameters()}

    d = os.path.join(outdir, name)
    os.makedirs(d, exist_ok=True)
    if spec["bf16"]:
        model.to(torch.bfloat16).save_pretrained(d, safe_serialization=True)
        model.float()
    else:
        model.save_pretrained(d, safe_serialization=True)
    gen = os.path.join(d, "generation_config.json")
    if os.path.exists(gen):
        os.remove(gen)

    tensors = {
        "input_ids": ids.to(torch.int32),
        "position_ids": pos.to(torch.int32),
        "targets": targets.to(torch.int32),
        "logits": logits.float().contiguous(),
        "logprob": logprob.contiguous(),
        "loss": out.loss.detach().float().reshape(1),
    }
    tensors.update(grads)
    save_file(tensors, os.path.join(d, "golden.safetensors"), metadata={
        "docs": json.dumps(spec["docs"]),
        "made_by": "scripts/make_model_golden.py",
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    })
    print(f"{name}: N={len(ids)} loss={out.loss.item():.6f} -> {d}")


def check_export(export_dir, fixture_dir):
    g = load_file(os.path.join(fixture_dir, "golden.safetensors"))
    model, info = Qwen2ForCausalLM.from_pretrained(
        export_dir, attn_implementation="eager", dtype=torch.float32, output_loading_info=True)
    bad = {k: v for k, v in info.items() if v}  # missing / unexpected / mismatched keys
    if bad:
        print(f"check-export: {export_dir}: loading problems: {bad}")
        return 1
    ids = g["input_ids"].long()
    pos = g["position_ids"].long()
    starts = (pos == 0).nonzero()[:, 0].tolist() + [len(pos)]
    docs = [b - a for a, b in zip(starts[:-1], starts[1:])]
    with torch.no_grad():
        mask = doc_mask(docs) if len(docs) > 1 else None
        logits = model(input_ids=ids[None], position_ids=pos[None], attention_mask=mask).logits[0]
    ref = g["logits"]
    rel = ((logits - ref).norm() / ref.norm()).item()
    print(f"check-export: {export_dir}: tied={model.config.tie_word_embeddings} "
          f"logits rel err vs {fixture_dir} = {rel:.3g}")
    return 0 if rel < 1e-4 else 1


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[1])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "tests",
                                                  "fixtures", "model"))
    ap.add_argument("--check-export", metavar="DIR")
    ap.add_argument("--golden", metavar="FIXDIR", help="fixture dir for --check-export")
    a = ap.parse_args()
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)
    if a.check_export:
        if not a.golden:
            ap.error("--check-export needs --golden FIXDIR")
        sys.exit(check_export(a.check_export, a.golden))
    for name, spec in CONFIGS.items():
        make(name, spec, a.out)


if __name__ == "__main__":
    main()
