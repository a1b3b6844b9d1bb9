#!/usr/bin/env python3
"""Golden fixtures for the file-format code (common/safetensors.c, common/dtype.c,
model/qwen2_config.c), made with the reference libraries (versions pinned in
scripts/requirements-ref.txt). CI never runs this: the C tests read what it wrote into
tests/fixtures/formats/.

  make (default)    writes the fixtures:
    golden.safetensors         F32/BF16/F16 (odd shapes, scalars [], zero-size, specials) and one
                               tensor of every other dtype, written by safetensors.torch.save_file
    golden_expected.json       per tensor: dtype, shape, the fp32 bit patterns torch's .float()
                               gives (float dtypes) or the raw bytes as hex (others)
    conv.safetensors           conv_src (F32, values chosen to hit every rounding case) and
                               torch's conversions of it: conv_f16 (F16), conv_bf16 (BF16)
    tiny_llama_expected.json   /work/shared/data/tiny_llama_verl/model.safetensors read with
                               safetensors: names in header order, dtypes, shapes, 4 sample
                               values (fp32 bits) and the float64 sum of each tensor
    qwen2_tf5_config.json      a Qwen2Config saved by transformers 5 (dtype, rope_parameters,
                               layer_types, explicit head_dim, tied, eos list)
    qwen2_expected.json        for that config and the shipped R1-Distill config: the parsed
                               values and the parameter count of Qwen2ForCausalLM built on the
                               meta device
  verify-config DIR checks the configs tests/test_qwen2_config.c saved into DIR
                    (build/test_tmp/test_qwen2_config) with transformers' Qwen2Config.
  verify-c DIR      checks files the C test (tests/test_safetensors.c) wrote into DIR
                    (build/test_tmp/test_safetensors) with safetensors.safe_open, torch and
                    transformers; prints what it checked and exits non-zero on a mismatch.
"""
import json
import os
import struct
import sys

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "..", "tests", "fixtures", "formats")
DATA = os.environ.get("SR_DATA", os.path.join(HERE, "..", "..", "shared", "data"))

ST_NAME = {torch.float32: "F32", torch.bfloat16: "BF16", torch.float16: "F16", torch.float64: "F64",
           torch.int64: "I64", torch.int32: "I32", torch.int16: "I16", torch.int8: "I8",
           torch.uint8: "U8", torch.bool: "BOOL"}


def f32_bits(t):
    return [int(x) for x in t.detach().float().contiguous().view(torch.int32).flatten().tolist()]


def raw_hex(t):
    return t.contiguous().flatten().view(torch.uint8).numpy().tobytes().hex() if t.numel() else ""


def golden_tensors():
    g = torch.Generator().manual_seed(1234)
    inf, nan = float("inf"), float("nan")
    t = {}
    t["f32_mat"] = torch.randn(3, 5, generator=g)
    t["f32_specials"] = torch.tensor([0.0, -0.0, inf, -inf, nan, 1.4e-45, 3.4028235e38, -1.5, 1e-40, 65504.0],
                                     dtype=torch.float32)
    t["bf16_odd"] = torch.randn(2, 3, 7, generator=g).to(torch.bfloat16)
    t["bf16_specials"] = torch.tensor([0.0, -0.0, inf, -inf, nan, 1e-40, -3.0e38], dtype=torch.float32).to(torch.bfloat16)
    t["f16_odd"] = (torch.randn(7, 1, 3, generator=g) * 100).to(torch.float16)
    t["f16_specials"] = torch.tensor([0.0, -0.0, inf, -inf, nan, 6e-8, 6.1e-5, 65504.0, -65504.0, 1e-5, 0.1, -2.5],
                                     dtype=torch.float32).to(torch.float16)
    t["scalar_f32"] = torch.tensor(3.25, dtype=torch.float32)
    t["scalar_bf16"] = torch.tensor(-0.5, dtype=torch.bfloat16)
    t["scalar_f16"] = torch.tensor(1.0 / 3.0, dtype=torch.float16)
    t["empty_f16"] = torch.zeros(0, 4, dtype=torch.float16)
    t["empty_f32"] = torch.zeros(0, dtype=torch.float32)
    t["empty_bf16"] = torch.zeros(4, 0, 2, dtype=torch.bfloat16)
    t["f64_vals"] = torch.tensor([1.0 / 3.0, -2.0], dtype=torch.float64)
    t["i64_vals"] = torch.tensor([-1, 0, 2**40], dtype=torch.int64)
    t["i32_vals"] = torch.tensor([-7, 2**31 - 1], dtype=torch.int32)
    t["i16_vals"] = torch.tensor([-300, 300], dtype=torch.int16)
    t["i8_vals"] = torch.tensor([-128, 0, 127], dtype=torch.int8)
    t["u8_vals"] = torch.tensor([0, 1, 127, 128, 255], dtype=torch.uint8)
    t["bool_vals"] = torch.tensor([True, False, False, True])
    return t


def conv_source():
    """fp32 values that exercise every rounding path of fp32 -> f16 and fp32 -> bf16."""
    vals = []
    f16 = np.arange(0, 0x7c00, dtype=np.uint16).view(np.float16).astype(np.float32)  # all finite halves >= 0
    # halfway points between neighbouring halves (ties), and one fp32 ulp either side of them
    rng = np.random.default_rng(7)
    pick = np.sort(rng.choice(len(f16) - 1, 600, replace=False))
    pick = np.concatenate([pick, np.arange(0, 40), np.arange(1000, 1040), np.arange(0x7bc0, 0x7bff)])
    for i in pick:
        mid = (np.float64(f16[i]) + np.float64(f16[i + 1])) / 2
        m32 = np.float32(mid)
        vals += [m32, np.nextafter(m32, np.float32(0)), np.nextafter(m32, np.float32(np.inf)), f16[i]]
    # the overflow boundary, the smallest subnormal and below
    vals += [65504, 65519, 65519.996, 65520, 65536, 1e9, 3.4028235e38, 2.0**-24, 2.0**-25,
             np.nextafter(np.float32(2.0**-25), np.float32(1)), np.nextafter(np.float32(2.0**-25), np.float32(0)),
             2.0**-26, 1.5 * 2.0**-24, 2.5 * 2.0**-24, 2.0**-14, np.nextafter(np.float32(2.0**-14), np.float32(0)),
             1e-45, 0.0, float("inf"), float("nan")]
    # random fp32 across the whole exponent range (bit patterns), and bf16 tie cases
    bits = rng.integers(0, 2**31, 1500, dtype=np.uint32)
    bits = bits[(bits & 0x7f800000) != 0x7f800000]  # finite only (NaN payloads are compared separately)
    vals += list(bits.view(np.float32))
    ties = (rng.integers(0, 0xff00, 200, dtype=np.uint32) << 16) | 0x8000  # exactly halfway for bf16
    ties = ties[(ties & 0x7f800000) != 0x7f800000]
    vals += list(ties.view(np.float32))
    v = np.array(vals, dtype=np.float32)
    v = np.concatenate([v, -v])
    return torch.from_numpy(v)


def tiny_llama_expected(path):
    with open(path, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
        header = json.loads(f.read(n))  # dicts keep the file's key order
    names = [k for k in header if k != "__metadata__"]
    out = {"file": "tiny_llama_verl/model.safetensors", "metadata": header.get("__metadata__"),
           "header_bytes": n, "tensors": []}
    with safe_open(path, framework="pt") as f:
        assert sorted(f.keys()) == sorted(names)
        for k in names:
            t = f.get_tensor(k)
            flat = t.float().flatten()
            idx = sorted(set([0, 1, flat.numel() // 2, flat.numel() - 1]))
            out["tensors"].append({
                "name": k, "dtype": ST_NAME[t.dtype], "shape": list(t.shape),
                "sample_index": idx, "sample_f32_bits": [f32_bits(flat[i:i + 1])[0] for i in idx],
                "sum_f64": float(flat.double().sum()),
            })
    return out


def qwen2_facts(cfg):
    from transformers import Qwen2ForCausalLM
    with torch.device("meta"):
        m = Qwen2ForCausalLM(cfg)
    n = sum(p.numel() for p in m.parameters())  # tied weights are one Parameter: counted once
    d = cfg.to_dict()
    eos = d.get("eos_token_id")
    return {
        "vocab_size": cfg.vocab_size, "hidden_size": cfg.hidden_size, "num_hidden_layers": cfg.num_hidden_layers,
        "num_attention_heads": cfg.num_attention_heads, "num_key_value_heads": cfg.num_key_value_heads,
        "head_dim": m.model.layers[0].self_attn.head_dim, "intermediate_size": cfg.intermediate_size,
        "max_position_embeddings": cfg.max_position_embeddings, "rope_theta": float(cfg.rope_parameters["rope_theta"]),
        "rms_norm_eps": cfg.rms_norm_eps, "initializer_range": cfg.initializer_range,
        "tie_word_embeddings": bool(cfg.tie_word_embeddings),
        "bos_token_id": -1 if d.get("bos_token_id") is None else d["bos_token_id"],
        "eos_token_id": -1 if eos is None else (eos[0] if isinstance(eos, list) else eos),
        "torch_dtype": str(cfg.dtype).replace("torch.", "") if cfg.dtype is not None else "float32",
        "num_params": int(n),
    }


def make():
    os.makedirs(OUT, exist_ok=True)
    g = golden_tensors()
    save_file(g, os.path.join(OUT, "golden.safetensors"), metadata={"format": "pt", "note": "splitreason golden"})
    exp = {}
    for k, t in g.items():
        e = {"dtype": ST_NAME[t.dtype], "shape": list(t.shape)}
        if t.dtype in (torch.float32, torch.bfloat16, torch.float16):
            e["f32_bits"] = f32_bits(t)
        e["raw_hex"] = raw_hex(t)
        exp[k] = e
    with open(os.path.join(OUT, "golden_expected.json"), "w") as f:
        json.dump({"metadata": {"format": "pt", "note": "splitreason golden"}, "tensors": exp}, f, indent=1)

    src = conv_source()
    save_file({"conv_src": src, "conv_f16": src.to(torch.float16), "conv_bf16": src.to(torch.bfloat16)},
              os.path.join(OUT, "conv.safetensors"))

    with open(os.path.join(OUT, "tiny_llama_expected.json"), "w") as f:
        json.dump(tiny_llama_expected(os.path.join(DATA, "tiny_llama_verl", "model.safetensors")), f, indent=1)

    from transformers import Qwen2Config
    small = Qwen2Config(vocab_size=1000, hidden_size=64, intermediate_size=176, num_hidden_layers=2,
                        num_attention_heads=4, num_key_value_heads=2, head_dim=32, tie_word_embeddings=True,
                        bos_token_id=None, eos_token_id=[5, 7], rms_norm_eps=1e-5, max_position_embeddings=4096,
                        rope_parameters={"rope_theta": 1000000.0, "rope_type": "default"}, dtype="bfloat16")
    tmp = os.path.join(OUT, "_tmp_cfg")
    small.save_pretrained(tmp)
    os.replace(os.path.join(tmp, "config.json"), os.path.join(OUT, "qwen2_tf5_config.json"))
    os.rmdir(tmp)
    small = Qwen2Config.from_json_file(os.path.join(OUT, "qwen2_tf5_config.json"))
    r1 = Qwen2Config.from_json_file(os.path.join(DATA, "r1_distill_qwen_1.5b_config", "config.json"))
    facts = {"qwen2_tf5_config.json": qwen2_facts(small), "r1_distill_qwen_1.5b_config/config.json": qwen2_facts(r1),
             "Qwen2Config_default_tie_word_embeddings": bool(Qwen2Config().tie_word_embeddings)}
    with open(os.path.join(OUT, "qwen2_expected.json"), "w") as f:
        json.dump(facts, f, indent=1)
    for name in sorted(os.listdir(OUT)):
        print(f"{name}: {os.path.getsize(os.path.join(OUT, name))} bytes")
    print("R1-Distill-Qwen-1.5B params:", facts["r1_distill_qwen_1.5b_config/config.json"]["num_params"])


# The tensors tests/test_safetensors.c writes (keep the two in step).
def c_written_expected():
    name_odd = 'name "quoted" \\ \u00fc'
    return {
        "w.f32": torch.tensor([(i - 5) * 0.375 for i in range(12)], dtype=torch.float32).reshape(3, 4),
        "w.bf16": torch.tensor([(i - 2) * 1.5 for i in range(5)], dtype=torch.float32).to(torch.bfloat16),
        "w.f16": torch.tensor([i / 8.0 - 0.25 for i in range(6)], dtype=torch.float32).to(torch.float16).reshape(2, 3),
        "w.scalar": torch.tensor(42.5, dtype=torch.float32),
        "w.empty": torch.zeros(0, 3, dtype=torch.float32),
        "w.i32": torch.tensor([-1, 0, 7, 2**31 - 1], dtype=torch.int32),
        "w.u8": torch.tensor([0, 128, 255], dtype=torch.uint8),
        name_odd: torch.tensor([1.0], dtype=torch.float32),
    }


def same(a, b):
    return a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)


def verify_c(d):
    ok = True

    def check(cond, what):
        nonlocal ok
        print(("ok   " if cond else "FAIL ") + what)
        ok = ok and bool(cond)

    exp = c_written_expected()
    # 1. a single file, read by safe_open (numpy and torch) and load_file
    p = os.path.join(d, "c_written.safetensors")
    with safe_open(p, framework="pt") as f:
        check(f.metadata() == {"format": "pt"}, f"{p}: metadata {f.metadata()}")
        check(list(f.keys()) == sorted(exp), f"{p}: keys")
        for k, t in exp.items():
            check(same(f.get_tensor(k), t), f"{p}: safe_open(pt) {k!r} {t.dtype} {list(t.shape)}")
    loaded = load_file(p)
    check(all(same(loaded[k], t) for k, t in exp.items()), f"{p}: safetensors.torch.load_file, all tensors equal")
    with open(p, "rb") as f:
        n = struct.unpack("<Q", f.read(8))[0]
    check(n % 8 == 0, f"{p}: header length {n} is a multiple of 8")
    # 2. the same tensors sharded: index + shards
    sd = os.path.join(d, "c_sharded")
    idx = json.load(open(os.path.join(sd, "model.safetensors.index.json")))
    shards = sorted(set(idx["weight_map"].values()))
    check(len(shards) > 1, f"{sd}: {len(shards)} shards")
    got = {}
    for s in shards:
        got.update(load_file(os.path.join(sd, s)))
    check(sorted(idx["weight_map"]) == sorted(exp) and all(same(got[k], t) for k, t in exp.items()),
          f"{sd}: every tensor in the shard the index names, equal")
    total = sum(t.numel() * t.element_size() for t in exp.values())
    check(idx["metadata"]["total_size"] == total, f"{sd}: metadata.total_size {idx['metadata']['total_size']} == {total}")
    # 3. the tiny Llama re-saved by C in shards: transformers loads it and gets the same weights
    from transformers import AutoModelForCausalLM
    orig = load_file(os.path.join(DATA, "tiny_llama_verl", "model.safetensors"))
    td = os.path.join(d, "c_tiny_llama_sharded")
    m = AutoModelForCausalLM.from_pretrained(td, dtype=torch.bfloat16)
    sdict = m.state_dict()
    check(all(same(sdict[k], v) for k, v in orig.items()),
          f"{td}: transformers from_pretrained (sharded, {len(set(json.load(open(os.path.join(td, 'model.safetensors.index.json')))['weight_map'].values()))} shards) == original")
    print("verify-c:", "ALL OK" if ok else "FAILED")
    return 0 if ok else 1


def verify_config(d):
    """Configs tests/test_qwen2_config.c saved (build/test_tmp/test_qwen2_config) load in
    transformers with the values the test set."""
    from transformers import Qwen2Config
    want = {
        "r1_saved.json": {"num_hidden_layers": 2, "rms_norm_eps": 1e-5, "eos_token_id": 7, "bos_token_id": -1,
                          "torch_dtype": "bfloat16", "hidden_size": 1536, "head_dim": 128},
        "tf5_saved.json": {"rope_theta": 5e5, "torch_dtype": "float32", "head_dim": 32, "tie_word_embeddings": True,
                           "eos_token_id": 5},
        "coded.json": {"vocab_size": 32, "num_key_value_heads": 1, "head_dim": 8, "tie_word_embeddings": True,
                       "eos_token_id": 3, "num_params": 32 * 16 + (16 + 272 + 272 + 256 + 16 + 1152) + 16},
    }
    ok = True
    for name, w in want.items():
        facts = qwen2_facts(Qwen2Config.from_json_file(os.path.join(d, name)))
        bad = {k: (facts[k], v) for k, v in w.items() if facts[k] != v}
        print(("ok   " if not bad else "FAIL ") + f"{name}: transformers reads {w}" + (f" but got {bad}" if bad else ""))
        ok = ok and not bad
    print("verify-config:", "ALL OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "verify-c":
        sys.exit(verify_c(sys.argv[2]))
    if len(sys.argv) >= 2 and sys.argv[1] == "verify-config":
        sys.exit(verify_config(sys.argv[2]))
    make()
