#!/usr/bin/env python3
"""Writes the hand-made seeds of the two tokenizer fuzz harnesses (fuzz/fuzz_tokenizer_json.c,
fuzz/fuzz_tokenizer_files.c) into fuzz/corpus/tokenizer_json/ and fuzz/corpus/tokenizer_files/:
small tables (a few tokens, merges, added tokens with every flag), a slice of the real Qwen2
BPE (the 256 byte tokens and the first 120 merges, a few kB) and the hostile id tables of
issue 9. Run once from the repository root, then fuzz (bash fuzz/run.sh NAME) and merge."""
import hashlib, json, os, sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QWEN = os.path.join(ROOT, "..", "shared", "data", "qwen2_tokenizer")
if not os.path.isdir(QWEN):
    QWEN = "/work/shared/data/qwen2_tokenizer"
REGEX = ("(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
         "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+")
PIPE = {"normalizer": {"type": "NFC"},
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}]}}


def added(i, content, special=True, normalized=False, lstrip=False, rstrip=False, single_word=False):
    return {"id": i, "content": content, "single_word": single_word, "lstrip": lstrip,
            "rstrip": rstrip, "normalized": normalized, "special": special}


def tj(vocab, merges, added_tokens=(), **model):
    d = dict(PIPE)
    d["added_tokens"] = list(added_tokens)
    d["model"] = dict({"type": "BPE", "dropout": None, "vocab": vocab, "merges": merges}, **model)
    return json.dumps(d, ensure_ascii=False)


def real_slice(n_merges=120):
    vocab = json.load(open(os.path.join(QWEN, "vocab.json"), encoding="utf-8"))
    lines = open(os.path.join(QWEN, "merges.txt"), encoding="utf-8").read().split("\n")[1:n_merges + 1]
    keep = {k: v for k, v in vocab.items() if v < 256}
    merges = []
    for ln in lines:
        a, b = ln.split(" ")
        if a in keep and b in keep and a + b in vocab:
            keep[a + b] = vocab[a + b]
            merges.append(ln)
    # dense ids: the byte tokens keep theirs, merged tokens follow in merge order
    nxt = 256
    for ln in merges:
        a, b = ln.split(" ")
        if keep[a + b] >= 256 and keep[a + b] != nxt:
            keep[a + b] = nxt
        if keep[a + b] >= 256:
            nxt = max(nxt, keep[a + b] + 1)
    return keep, merges, nxt


def write(name, data):
    d = os.path.join(ROOT, "fuzz", "corpus", name)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode("utf-8")
    with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
        f.write(data)


SMALL = {"a": 0, "b": 1, "ab": 2, "Ġ": 3, "c": 4, "Ġc": 5, "é": 6, "Ã©": 7}
TEXT = "ab c <|x|> héllo <bigmodel>x</bigmodel> <\\bigmodel> 'll 12"


def main():
    # ---- tokenizer.json: first line the text, the rest the file
    J = "tokenizer_json"
    write(J, TEXT + "\n" + tj(SMALL, ["a b", ["Ġ", "c"]],
                              [added(8, "<|x|>"), added(9, "<s>", lstrip=True, rstrip=True),
                               added(10, "ab", special=False, normalized=True, single_word=True)]))
    write(J, "abc\n" + tj({"a": 0, "b": 1, "ab": 2, "c": 3, "abc": 4}, ["a b", ["ab", "c"]], ignore_merges=True))
    vocab, merges, nxt = real_slice()
    write(J, "The quick brown fox, 2024 — héllo\n\n" + tj(vocab, merges, [
        added(nxt, "<|endoftext|>"), added(nxt + 1, "<|im_start|>"), added(nxt + 2, "<think>", special=False)]))
    # hostile ids (issue 9): each must be a clean one-line error
    write(J, "the\n" + tj({"a": 0, "Ġthe": 2147483647}, []))
    write(J, "x\n" + tj({"a": 0, "b": 1, "ab": 67108864}, ["a b"]))
    write(J, "x\n" + tj({"a": 0}, [], [added(2147483646, "<x>")]))
    write(J, "x\n" + tj({"a": 0, "b": -3}, []))
    write(J, "x\n" + tj({"a": 0, "b": 1.5}, []))
    write(J, "x\n" + tj({"a": 0, "b": 0}, []))
    write(J, "x\n" + tj({"a": 0, "b": 1}, ["a q"]))
    write(J, "x\n" + tj({"中": 0, "文": 1, "中文": 2}, ["中 文"]))  # tokens outside the byte alphabet
    # ---- vocab.json @@ merges.txt @@ tokenizer_config.json
    F = "tokenizer_files"
    S = "\n@@\n"
    cfg = {"added_tokens_decoder": {"8": {"content": "<|x|>", "special": True, "normalized": False},
                                    "9": {"content": "<s>", "special": True, "lstrip": True}},
           "bos_token": "<s>", "eos_token": {"content": "</s>", "special": True}, "pad_token": None,
           "additional_special_tokens": ["<|y|>"]}
    write(F, TEXT + S + json.dumps(SMALL, ensure_ascii=False) + S + "#version: 0.2\na b\nĠ c\n" + S + json.dumps(cfg))
    write(F, "ab c" + S + json.dumps(SMALL, ensure_ascii=False) + S + "a b\n")
    r1 = json.load(open(os.path.join(QWEN, "..", "r1_distill_qwen_tokenizer_config", "tokenizer_config.json"), encoding="utf-8"))
    dec = {}
    for i, (c, sp) in enumerate([("<｜end▁of▁sentence｜>", True), ("<｜User｜>", False), ("<｜Assistant｜>", False),
                                 ("<｜begin▁of▁sentence｜>", True), ("<think>", False), ("</think>", False)]):
        dec[str(nxt + i)] = {"content": c, "lstrip": False, "normalized": not sp, "rstrip": False,
                             "single_word": False, "special": sp}
    small_r1 = {"added_tokens_decoder": dec, "bos_token": r1["bos_token"], "eos_token": r1["eos_token"],
                "pad_token": r1["pad_token"], "unk_token": None}
    write(F, "<｜User｜>What is 2+2?<｜Assistant｜><think>\nThe answer" + S + json.dumps(vocab, ensure_ascii=False) + S +
          "#version: 0.2\n" + "\n".join(merges) + "\n" + S + json.dumps(small_r1, ensure_ascii=False))
    write(F, "x" + S + '{"a":0,"b":2147483643}' + S)
    write(F, "x" + S + '{"a":0,"b":1,"ab":67108864}' + S + "a b\n")
    for key in ["abc", "-5", "12345678901234567890", "2147483600", "1.5", " 7"]:
        write(F, "x" + S + '{"a":0,"b":1}' + S + S + json.dumps({"added_tokens_decoder": {key: {"content": "<x>"}}}))
    write(F, b"x" + S.encode() + b'{"a":0,"b":1}' + S.encode() + b"a \xff\n")  # not UTF-8
    write(F, "ab" + S + '{"a":0,"b":1,"ab":2,"a":3}' + S + "a b\n")  # a repeated key keeps its last id


if __name__ == "__main__":
    main()
