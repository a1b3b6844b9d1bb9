#!/usr/bin/env python3
"""Makes the byte-level tokenizer of the demo task (assets/demo_task/tokenizer/) with Hugging
Face `tokenizers`, and the parity fixture tests/fixtures/task_tokenizer/golden.jsonl that
tests/test_task.c checks data/tokenizer.c against.

The tokenizer: the Qwen2 pipeline (NFC; Split(Qwen2 regex, isolated) + ByteLevel; BPE; ByteLevel
decoder) over the 256 byte symbols with NO merges, id = byte value, then the R1 added tokens in
DeepSeek-R1-Distill-Qwen's order and flags, then the tags as tokenizer_add_bigmodel_tokens adds
them (not special, not normalized):
  256 <｜end▁of▁sentence｜> (special, eos, pad)  257 <｜User｜>  258 <｜Assistant｜>
  259 <｜begin▁of▁sentence｜> (special, bos)     260 <think>  261 </think>
  262 <bigmodel>  263 </bigmodel>
264 ids in all, so the models' embeddings are tiny. tokenizer_config.json names bos/eos/pad and
carries the R1-Distill chat template (user/assistant/system only) with the generation prompt
that opens the thinking block ("<｜Assistant｜><think>\\n", as data/chat_template.h writes it).

The fixture: one JSON object per text, {"text": ..., "ids": [...]}, ids from
Tokenizer.encode(text, add_special_tokens=False): task problems, solutions and annotated
solutions written by `splitreason task` (--bin), their chat-templated prompts, and adversarial
strings (non-ASCII, partial and repeated special tokens, the misspelled closing tag is left out:
the C reader maps it to </bigmodel> on purpose). The script also checks that transformers'
AutoTokenizer loads the directory with the same ids and that its chat template renders the
prompt data/chat_template.c writes.

Usage: /tmp/peervenv/bin/python scripts/make_task_tokenizer.py --bin build/splitreason
Versions (pinned, checked): tokenizers==0.23.3, transformers==5.24.0 (scripts/requirements-ref.txt).
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
OUT = os.path.join(REPO, "assets", "demo_task", "tokenizer")
FIX = os.path.join(REPO, "tests", "fixtures", "task_tokenizer")

PAT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

EOS, USER, ASSISTANT, BOS = "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜begin▁of▁sentence｜>"
ADDED = [  # (id, content, special), in R1-Distill-Qwen's order
    (256, EOS, True), (257, USER, False), (258, ASSISTANT, False), (259, BOS, True),
    (260, "<think>", False), (261, "</think>", False),
    (262, "<bigmodel>", False), (263, "</bigmodel>", False),
]

CHAT_TEMPLATE = (
    "{% if not add_generation_prompt is defined %}{% set add_generation_prompt = false %}{% endif %}"
    "{% set ns = namespace(system_prompt='') %}"
    "{%- for message in messages %}{%- if message['role'] == 'system' %}"
    "{% set ns.system_prompt = message['content'] %}{%- endif %}{%- endfor %}"
    "{{bos_token}}{{ns.system_prompt}}"
    "{%- for message in messages %}"
    "{%- if message['role'] == 'user' %}{{'" + USER + "' + message['content']}}"
    "{%- elif message['role'] == 'assistant' %}{% set content = message['content'] %}"
    "{% if '</think>' in content %}{% set content = content.split('</think>')[-1] %}{% endif %}"
    "{{'" + ASSISTANT + "' + content + '" + EOS + "'}}"
    "{%- endif %}{%- endfor %}"
    "{% if add_generation_prompt %}{{'" + ASSISTANT + "<think>\\n'}}{% endif %}"
)

ADVERSARIAL = [
    "", " ", "\n", "\n\n", "  \n \t x", "Start: 37\n", "f(37) = 52\n", "99 - 5 = 94",
    "héllo wörld", "Ünïcödé ñ", "e\u0301", "日本語のテキスト", "🙂 emoji 👍🏽", "\u00a0nbsp", "tab\there",
    "<think>\n", "</think>\n\n", "<thinking>", "<think", "think>", "<<think>>", "<think><think>",
    "<bigmodel>1) f(65) = 38\n</bigmodel>", "<bigmodel></bigmodel>", "<bigmodel", "bigmodel>",
    BOS + USER + "hi" + ASSISTANT + "<think>\n", EOS + EOS, "<｜User｜", "｜", "▁",
    "The answer is \\boxed{13}.", "$\\frac{1}{2}$", "it's we'll I'M", "CAPS and lower 123 4567",
    "\r\n\r\n", "a\u2028b", "\ufeffbom",
]


def byte_symbols():
    """GPT-2's bytes_to_unicode: the byte-level symbol of each byte value."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {b: chr(c) for b, c in zip(bs, cs)}


def build():
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, normalizers, pre_tokenizers
    from tokenizers.models import BPE
    sym = byte_symbols()
    vocab = {sym[b]: b for b in range(256)}
    tk = Tokenizer(BPE(vocab=vocab, merges=[], dropout=None, unk_token=None, continuing_subword_prefix="",
                       end_of_word_suffix="", fuse_unk=False, byte_fallback=False))
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PAT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tk.decoder = decoders.ByteLevel()
    for i, content, special in ADDED:
        tk.add_tokens([AddedToken(content, special=special, normalized=False, lstrip=False, rstrip=False,
                                  single_word=False)])
        assert tk.token_to_id(content) == i, (content, tk.token_to_id(content))
    return tk


def config():
    def tok(c):
        return {"__type": "AddedToken", "content": c, "lstrip": False, "normalized": False, "rstrip": False,
                "single_word": False}
    return {
        "add_bos_token": True, "add_eos_token": False,
        "added_tokens_decoder": {str(i): {"content": c, "lstrip": False, "normalized": False, "rstrip": False,
                                          "single_word": False, "special": s} for i, c, s in ADDED},
        "bos_token": tok(BOS), "eos_token": tok(EOS), "pad_token": tok(EOS), "unk_token": None,
        "clean_up_tokenization_spaces": False, "model_max_length": 4096,
        "tokenizer_class": "PreTrainedTokenizerFast",
        "chat_template": CHAT_TEMPLATE,
    }


def task_texts(binary):
    with tempfile.TemporaryDirectory() as d:
        subprocess.run([binary, "task", "--out", d, "--n-train", "15", "--n-heldout", "5", "--seed", "7"],
                       check=True, stderr=subprocess.DEVNULL)
        rows = [json.loads(l) for f in ("train.jsonl", "heldout.jsonl") for l in open(os.path.join(d, f))]
    out = []
    for r in rows:
        out += [r["problem"], r["solution"], r["annotated"], USER + r["problem"] + ASSISTANT + "<think>\n"]
    return out, rows


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--bin", default=os.path.join(REPO, "build", "splitreason"))
    a = ap.parse_args()
    import tokenizers
    assert tokenizers.__version__ == "0.23.3", "pinned: tokenizers==0.23.3, found " + tokenizers.__version__
    tk = build()
    os.makedirs(OUT, exist_ok=True)
    tk.save(os.path.join(OUT, "tokenizer.json"))
    with open(os.path.join(OUT, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(config(), f, ensure_ascii=False, indent=2)
        f.write("\n")

    texts, rows = task_texts(a.bin)
    texts += ADVERSARIAL
    from tokenizers import Tokenizer
    tk = Tokenizer.from_file(os.path.join(OUT, "tokenizer.json"))  # what was written, read back
    ids = [e.ids for e in tk.encode_batch(texts, add_special_tokens=False)]
    for t, i in zip(texts, ids):  # byte-level: every text that is NFC decodes back to itself
        if "\u0301" not in t:
            assert tk.decode(i, skip_special_tokens=False) == t, t
    os.makedirs(FIX, exist_ok=True)
    with open(os.path.join(FIX, "golden.jsonl"), "w", encoding="utf-8") as f:
        for t, i in zip(texts, ids):
            f.write(json.dumps({"text": t, "ids": i}, ensure_ascii=False) + "\n")

    try:
        import transformers
        from transformers import AutoTokenizer
    except ImportError:
        print("transformers not installed: AutoTokenizer check skipped", file=sys.stderr)
        return
    assert transformers.__version__ == "5.24.0", "pinned: transformers==5.24.0, found " + transformers.__version__
    at = AutoTokenizer.from_pretrained(OUT)
    for t, i in zip(texts, ids):
        assert at.encode(t, add_special_tokens=False) == i, t
    assert at.bos_token_id == 259 and at.eos_token_id == 256 and at.pad_token_id == 256
    p = rows[0]["problem"]
    got = at.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
    assert got == BOS + USER + p + ASSISTANT + "<think>\n", got
    print("%d texts, %d ids; HF tokenizers and transformers agree; wrote %s and %s" %
          (len(texts), sum(map(len, ids)), OUT, os.path.join(FIX, "golden.jsonl")))


if __name__ == "__main__":
    main()
