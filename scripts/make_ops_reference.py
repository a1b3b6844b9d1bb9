"""Reference numbers pasted as constants into tests/test_ops_cpu.c.

Run:  /root/refenv/bin/python scripts/make_ops_reference.py
(versions pinned in scripts/requirements-ref.txt; CPU only, no network)

1. AdamW: two steps of torch.optim.AdamW on a 6-element fp32 tensor (default single-tensor
   CPU path). The test feeds the same grads through the CPU op with grad_scale = 0.5 (so torch
   sees grad * 0.5) and compares master, m, v after each step.
2. RoPE inv_freq: HF Qwen2RotaryEmbedding's float32 inv_freq for head_dim 128, theta 10000,
   as float32 bit patterns (the CPU op must reproduce them exactly).
"""
import struct

import torch


def f32hex(x):
    return "0x%08x" % struct.unpack("<I", struct.pack("<f", float(x)))[0]


def fmt(name, t):
    vals = ", ".join("%.9ef" % float(x) for x in t.flatten())
    return "static const float %s[] = {%s};" % (name, vals)


torch.manual_seed(0)
p0 = torch.tensor([0.5, -1.25, 2.0, 0.0, -0.03125, 3.5], dtype=torch.float32)
g1 = torch.tensor([0.2, -0.4, 1.5, -2.0, 0.0, 0.01], dtype=torch.float32)
g2 = torch.tensor([-0.1, 0.3, 1.0, 2.5, -0.7, 0.02], dtype=torch.float32)
lr, betas, eps, wd, scale = 0.01, (0.9, 0.95), 1e-8, 0.1, 0.5

p = p0.clone().requires_grad_(True)
opt = torch.optim.AdamW([p], lr=lr, betas=betas, eps=eps, weight_decay=wd)
print("/* AdamW lr=%g betas=(%g,%g) eps=%g wd=%g, grads scaled by %g */"
      % (lr, *betas, eps, wd, scale))
print(fmt("ADAMW_P0", p0))
print(fmt("ADAMW_G1", g1))
print(fmt("ADAMW_G2", g2))
for step, g in ((1, g1), (2, g2)):
    p.grad = (g * scale).clone()
    opt.step()
    st = opt.state[p]
    print(fmt("ADAMW_P%d" % step, p.detach()))
    print(fmt("ADAMW_M%d" % step, st["exp_avg"]))
    print(fmt("ADAMW_V%d" % step, st["exp_avg_sq"]))

D, theta = 128, 10000.0
inv_freq = 1.0 / (theta ** (torch.arange(0, D, 2, dtype=torch.int64).to(dtype=torch.float) / D))
print("/* HF inv_freq, head_dim 128, theta 10000, float32 bits */")
print("static const uint32_t ROPE_INV_FREQ_128[64] = {%s};"
      % ", ".join(f32hex(x) for x in inv_freq))
