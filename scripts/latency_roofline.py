#!/usr/bin/env python3
"""Latency tables for split decoding derived from the roofline (stdlib only).

Writes configs/latency/{h100,h200}_r1_distill_1.5b_{7b,32b}.json, each marked "modelled" until
it is measured with `splitreason bench latency --device cuda`; `--check` recomputes them and
fails when a committed file differs. The layout is configs/latency/README.md's; every figure is
in seconds, as one sequence sees it (engine/latency.h).

The model of one pass of the layer stack over n new tokens (decode: n = 1 per sequence, batch B;
catch-up: n = Δ of one sequence), bf16 weights and KV cache:
  bytes  = weight bytes (every parameter but the embedding table, which is only gathered)
           + KV bytes read (each sequence's cache at its context, every layer, K and V)
           + KV bytes written (the new tokens')
  flops  = 2 * non-embedding params * tokens (the matmuls, lm_head included)
           + 4 * layers * hidden * (sum over new tokens of the positions they attend to)
  time   = max(bytes / (HBM bandwidth * BW_FRACTION), flops / (peak bf16 * MFU))
tau(B, C) is a decode step (B tokens, each attending to C + 1 positions); pi(Δ) is a catch-up
of Δ tokens of one sequence against PI_CONTEXT cached positions; sigma is a stated launch and
scheduling overhead per switch (the two catch-up passes are extra passes: their kernel
launches and the scheduler's bookkeeping, which the roofline does not see).
"""
import argparse
import json
import os
import sys

BW_FRACTION = 0.8   # achievable share of the HBM bandwidth in a decode GEMV (typical: 0.75-0.85)
MFU = 0.5           # achievable share of the bf16 peak in a prefill (typical: 0.4-0.6)
SIGMA_S = 200e-6    # per switch: 2 extra passes x ~100 us of launches and scheduling
BYTES = 2           # bf16

DEVICES = {
    # name, HBM bandwidth (B/s), dense bf16 peak (FLOP/s), memory (bytes)
    "h100": ("NVIDIA H100 SXM 80GB (roofline)", 3.35e12, 989e12, 80e9),
    "h200": ("NVIDIA H200 141GB (roofline)", 4.8e12, 989e12, 141e9),
}

# HF config.json values of the DeepSeek-R1-Distill-Qwen models (all untied)
MODELS = {
    "1.5b": dict(name="DeepSeek-R1-Distill-Qwen-1.5B", hidden=1536, layers=28, heads=12, kv_heads=2,
                 intermediate=8960, vocab=151936),
    "7b": dict(name="DeepSeek-R1-Distill-Qwen-7B", hidden=3584, layers=28, heads=28, kv_heads=4,
               intermediate=18944, vocab=152064),
    "32b": dict(name="DeepSeek-R1-Distill-Qwen-32B", hidden=5120, layers=64, heads=40, kv_heads=8,
                intermediate=27648, vocab=152064),
}
PAIRS = [("1.5b", "7b"), ("1.5b", "32b")]

BATCHES = [1, 4, 16, 64, 256]
CONTEXTS = [512, 2048, 8192, 32768]
DELTAS = [1, 8, 32, 128, 512, 2048]
PI_CONTEXT = 4096


def num_params(m):
    """Qwen2ForCausalLM's parameters (q/k/v biases, untied lm_head), as splitreason counts them."""
    h, i, v = m["hidden"], m["intermediate"], m["vocab"]
    kvd = m["kv_heads"] * (h // m["heads"])
    layer = (h * h + h) + 2 * (h * kvd + kvd) + h * h + 3 * h * i + 2 * h
    return v * h + m["layers"] * layer + h + v * h


def kv_bytes_per_token(m):
    return m["layers"] * 2 * m["kv_heads"] * (m["hidden"] // m["heads"]) * BYTES


def pass_time(m, dev, n_tokens, kv_read_tokens, attended):
    """n_tokens new tokens in all, kv_read_tokens cached positions read, attended = sum over the
    new tokens of the positions each attends to."""
    _, bw, peak, _ = dev
    p = num_params(m)
    weights = (p - m["vocab"] * m["hidden"]) * BYTES
    nbytes = weights + (kv_read_tokens + n_tokens) * kv_bytes_per_token(m)
    flops = 2 * (p - m["vocab"] * m["hidden"]) * n_tokens + 4 * m["layers"] * m["hidden"] * attended
    return max(nbytes / (bw * BW_FRACTION), flops / (peak * MFU))


def tau(m, dev, b, c):
    return pass_time(m, dev, b, b * c, b * (c + 1))


def pi(m, dev, d):
    # token j of the Δ attends to PI_CONTEXT + j + 1 positions
    return pass_time(m, dev, d, PI_CONTEXT, d * PI_CONTEXT + d * (d + 1) // 2)


def rnd(x):
    return float(f"{x:.6g}")  # microsecond-and-below digits are noise of the model anyway


def table(dev_key, small_key, big_key):
    dev = DEVICES[dev_key]
    s, b = MODELS[small_key], MODELS[big_key]
    weights = (num_params(s) + num_params(b)) * BYTES
    no_fit = [[bb, c] for bb in BATCHES for c in CONTEXTS
              if weights + bb * (c + 1) * max(kv_bytes_per_token(s), kv_bytes_per_token(b)) > dev[3]]
    info = lambda m: {"name": m["name"], "hidden_size": m["hidden"], "num_hidden_layers": m["layers"],
                      "num_params": num_params(m)}
    return {
        "version": 1,
        "device": dev[0],
        "source": "modelled",
        "note": "derived from the roofline by scripts/latency_roofline.py, NOT measured: replace with "
                "`splitreason bench latency --device cuda` on the GPU",
        "small": info(s),
        "big": info(b),
        "batches": BATCHES,
        "contexts": CONTEXTS,
        "tau_s": [[rnd(tau(s, dev, bb, c)) for c in CONTEXTS] for bb in BATCHES],
        "tau_b": [[rnd(tau(b, dev, bb, c)) for c in CONTEXTS] for bb in BATCHES],
        "deltas": DELTAS,
        "pi_context": PI_CONTEXT,
        "pi_s": [rnd(pi(s, dev, d)) for d in DELTAS],
        "pi_b": [rnd(pi(b, dev, d)) for d in DELTAS],
        "sigma": SIGMA_S,
        "settings": {
            "hbm_bandwidth_bytes_per_s": dev[1], "bandwidth_fraction": BW_FRACTION,
            "peak_bf16_flops": dev[2], "mfu": MFU, "dtype": "bf16",
            "sigma": "stated: launch and scheduling overhead of the two catch-up passes",
            "device_memory_bytes": dev[3],
            "does_not_fit": no_fit,
            "script": "scripts/latency_roofline.py",
        },
    }


def dump(t):
    """The layout bench latency writes: one line per tau row."""
    out = []
    for k, v in t.items():
        if k in ("tau_s", "tau_b"):
            rows = ",\n".join("    " + json.dumps(r) for r in v)
            out.append(f'  "{k}": [\n{rows}\n  ]')
        else:
            out.append(f"  {json.dumps(k)}: {json.dumps(v)}")
    return "{\n" + ",\n".join(out) + "\n}\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "configs", "latency"))
    ap.add_argument("--check", action="store_true", help="compare with the files instead of writing them")
    a = ap.parse_args()
    bad = 0
    for dev_key in DEVICES:
        for small_key, big_key in PAIRS:
            path = os.path.join(a.out, f"{dev_key}_r1_distill_{small_key}_{big_key}.json")
            text = dump(table(dev_key, small_key, big_key))
            if a.check:
                try:
                    same = open(path, encoding="utf-8").read() == text
                except OSError:
                    same = False
                if not same:
                    print(f"{path}: differs from what the roofline gives", file=sys.stderr)
                    bad = 1
            else:
                with open(path + ".tmp", "w", encoding="utf-8") as f:
                    f.write(text)
                os.replace(path + ".tmp", path)
                print(path)
    return bad


if __name__ == "__main__":
    sys.exit(main())
