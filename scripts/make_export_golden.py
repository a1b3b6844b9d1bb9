#!/usr/bin/env python3
"""Golden for `splitreason export`: transformers loads an exported model and computes the same
log-probs as splitreason.

Runs (with the C build):
  build/splitreason init --model-config configs/tiny_qwen2.json --tokenizer assets/qwen2_tokenizer --seed 11 --out T/init
  build/splitreason export T/init --out T/export --dtype bf16
then loads T/export with transformers (AutoTokenizer, AutoModelForCausalLM, fp32 compute),
checks the tokenizer gives the same ids as `splitreason tokenize`, and writes
tests/fixtures/export/golden.json: the texts, their ids and transformers' per-token log-probs.
tests/cli_export.sh repeats the C side and compares.

Usage: ~/refenv/bin/python scripts/make_export_golden.py  (versions: scripts/requirements-ref.txt)
"""
import json
import os
import subprocess
import sys
import tempfile

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "build", "splitreason")
TEXTS = [
    "Let x = 2. <bigmodel>Then x^2 = 4.</bigmodel> So the answer is \\boxed{4}.",
    "<｜begin▁of▁sentence｜><｜User｜>What is 1+1?<｜Assistant｜><think>\nOkay, 1+1=2.\n</think>\n\n**2**",
    "Héllo wörld — 数学 😀\n\n\tend",
]


def run(*args):
    subprocess.run([BIN, *args], check=True, stderr=subprocess.DEVNULL, stdout=subprocess.PIPE)


def main():
    with tempfile.TemporaryDirectory() as t:
        run("init", "--model-config", os.path.join(ROOT, "configs/tiny_qwen2.json"), "--tokenizer",
            os.path.join(ROOT, "assets/qwen2_tokenizer"), "--seed", "11", "--out", f"{t}/init")
        run("export", f"{t}/init", "--out", f"{t}/export", "--dtype", "bf16")
        tok = AutoTokenizer.from_pretrained(f"{t}/export")
        model = AutoModelForCausalLM.from_pretrained(f"{t}/export", torch_dtype=torch.float32,
                                                     attn_implementation="eager")
        model.eval()
        assert model.config.vocab_size == 151936 and model.config.tie_word_embeddings
        src = f"{t}/in.jsonl"
        with open(src, "w") as f:
            for x in TEXTS:
                f.write(json.dumps({"text": x}, ensure_ascii=False) + "\n")
        c_ids = subprocess.run([BIN, "tokenize", "--tokenizer", f"{t}/export", "--input", src],
                               check=True, capture_output=True, text=True).stdout.splitlines()
        rows = []
        for x, c in zip(TEXTS, c_ids):
            ids = tok.encode(x, add_special_tokens=False)
            assert ids == json.loads(c), f"tokenizer mismatch on {x!r}"
            with torch.no_grad():
                logits = model(torch.tensor([ids])).logits[0].float()
            lp = torch.log_softmax(logits, -1)
            tlp = [lp[i, ids[i + 1]].item() for i in range(len(ids) - 1)]
            rows.append({"text": x, "ids": ids, "logprobs": tlp})
        out = os.path.join(ROOT, "tests/fixtures/export/golden.json")
        with open(out, "w") as f:
            json.dump({"made_by": "scripts/make_export_golden.py", "seed": 11, "dtype": "bf16",
                       "rows": rows}, f, ensure_ascii=False, indent=1)
        print(f"wrote {out}: {len(rows)} rows, transformers loaded the export "
              f"(vocab {model.config.vocab_size}, tied)")


if __name__ == "__main__":
    sys.exit(main())
