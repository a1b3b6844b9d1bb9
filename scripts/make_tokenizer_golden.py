#!/usr/bin/env python3
"""Makes the tokenizer parity fixtures (tests/fixtures/tokenizer/) with Hugging Face
`tokenizers`, offline, from the shipped Qwen2 vocab.json + merges.txt.

The reference tokenizer is the Qwen2 pipeline exactly as transformers' Qwen2Tokenizer builds it
(NFC; Split(Qwen2 regex, isolated) + ByteLevel(add_prefix_space=False, use_regex=False); BPE;
ByteLevel decoder), plus the DeepSeek-R1-Distill-Qwen added tokens at 151643..151664 (flags as
in that model's tokenizer.json) and <bigmodel> = 151665, </bigmodel> = 151666 (not special, not
normalized: what tokenizer_add_bigmodel_tokens adds). The script checks that transformers'
Qwen2Tokenizer gives the same ids on every text.

Outputs (all small):
  golden.jsonl.zst   line 1: meta; then one record per text. Texts from ../shared/data are
                     stored by reference (src, row, field, index); adversarial texts inline
                     ("text", or "hex" for bytes that are not clean UTF-8 / contain NUL).
                     "n": number of ids; "ids": the first K ids; "h": FNV-1a-64 (hex) of each
                     block of B ids after the first K (ids as little-endian int32 bytes);
                     inline records also carry "tiny": all ids under the tiny tokenizer.
  r1_distill_qwen/tokenizer_config.json   the shipped R1-distill config + its
                     added_tokens_decoder (ids 151643..151664), for the loader test.
  tiny/tokenizer.json   a small tokenizer.json written by HF (256 bytes + the first merges,
                     renumbered; added tokens with lstrip/rstrip/single_word/normalized flags)
                     to test the tokenizer.json reader and the added-token rules.

Invalid UTF-8: HF takes a str, so byte texts are decoded with errors='replace' first (each
maximal invalid subpart -> U+FFFD), the rule the C encoder documents. "<\\bigmodel>" is read as
"</bigmodel>" by the C encoder, so the reference text has it replaced before encoding.

Other modes:
  --check-unicode     compares, over every code point, HF's regex classes (\\p{L}, \\p{N}, \\s),
                      contraction case folding and NFC with the tables in data/tokenizer_text.c
                      (through utf8proc and the C source's range tables).
  --check-saved DIR   loads DIR (written by the C tokenizer_save, e.g.
                      build/test_tmp/test_tokenizer/saved) with AutoTokenizer.from_pretrained
                      and requires the reference ids on every fixture text.

Usage: /root/refenv/bin/python scripts/make_tokenizer_golden.py [--data ../shared/data]
Versions: scripts/requirements-ref.txt (tokenizers==0.23.3, transformers==5.24.0); the `zstd`
command compresses the fixture.
"""
import argparse
import json
import os
import random
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(HERE)
FIX = os.path.join(REPO, "tests", "fixtures", "tokenizer")

PAT = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# DeepSeek-R1-Distill-Qwen added tokens: (id, content, special); all lstrip/rstrip/single_word
# false and normalized false (its tokenizer.json / tokenizer_config.json).
R1_ADDED = [
    (151643, "<｜end▁of▁sentence｜>", True), (151644, "<｜User｜>", False),
    (151645, "<｜Assistant｜>", False), (151646, "<｜begin▁of▁sentence｜>", True),
    (151647, "<|EOT|>", False), (151648, "<think>", False), (151649, "</think>", False),
    (151650, "<|quad_start|>", True), (151651, "<|quad_end|>", True),
    (151652, "<|vision_start|>", True), (151653, "<|vision_end|>", True),
    (151654, "<|vision_pad|>", True), (151655, "<|image_pad|>", True),
    (151656, "<|video_pad|>", True), (151657, "<tool_call>", False), (151658, "</tool_call>", False),
    (151659, "<|fim_prefix|>", False), (151660, "<|fim_middle|>", False),
    (151661, "<|fim_suffix|>", False), (151662, "<|fim_pad|>", False),
    (151663, "<|repo_name|>", False), (151664, "<|file_sep|>", False),
]
BIGMODEL = [(151665, "<bigmodel>"), (151666, "</bigmodel>")]

K_FULL = 512   # ids stored in full per text
B_HASH = 256   # block size of the hashed tail

# Texts from the shipped data: (file, fields). A list field takes its element 0.
SOURCES = [
    ("math500/test.jsonl", ["problem", "solution", "answer"]),
    ("aime24/test.jsonl", ["problem", "solution"]),
    ("aime25/test.jsonl", ["problem", "solution"]),
    ("amc23/test.jsonl", ["problem"]),
    ("openr1_math_dump10/training_examples_math.jsonl", ["system_prompt", "problem", "response"]),
    ("r2a_math500_r1distill_greedy/df_attention_analysis_MATH500_greedy.jsonl", ["problem", "response"]),
    ("deepscaler_1.5b_aime24_8k/8192t_test2024_qwen-instruct_t0.6_k1_s0_e30.jsonl",
     ["question", "generated_responses"]),
    ("thought_anchors_math/thought_anchors_math_base_solutions.jsonl", ["prompt", "solution"]),
    ("qwq32b_math500_semantic/h100_QwQ-32B_math-500_seed123.jsonl", ["real_answer"]),
]


def fnv64(ids):
    h = 0xCBF29CE484222325
    for i in ids:
        for b in int(i).to_bytes(4, "little", signed=True):
            h = ((h ^ b) * 0x100000001B3) & 0xFFFFFFFFFFFFFFFF
    return "%016x" % h


def reference_text(t):
    """What HF is given for a fixture text (str or bytes)."""
    if isinstance(t, bytes):
        t = t.decode("utf-8", errors="replace")
    return t.replace("<\\bigmodel>", "</bigmodel>")


def load_vocab_merges(data):
    d = os.path.join(data, "qwen2_tokenizer")
    vocab = json.load(open(os.path.join(d, "vocab.json"), encoding="utf-8"))
    merges = []
    with open(os.path.join(d, "merges.txt"), encoding="utf-8") as f:
        for line in f.read().split("\n"):
            if not line or line.startswith("#version"):
                continue
            a, b = line.split(" ")
            merges.append((a, b))
    return vocab, merges


def qwen2_pipeline(tk):
    from tokenizers import Regex, decoders, normalizers, pre_tokenizers
    tk.normalizer = normalizers.NFC()
    tk.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(PAT), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tk.decoder = decoders.ByteLevel()


def build_reference(data):
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.models import BPE
    vocab, merges = load_vocab_merges(data)
    tk = Tokenizer(BPE(vocab=vocab, merges=merges, dropout=None, unk_token=None,
                       continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False,
                       byte_fallback=False))
    qwen2_pipeline(tk)
    for i, content, special in R1_ADDED:
        tk.add_tokens([AddedToken(content, special=special, normalized=False, lstrip=False,
                                  rstrip=False, single_word=False)])
        assert tk.token_to_id(content) == i, (content, tk.token_to_id(content))
    for i, content in BIGMODEL:
        tk.add_tokens([AddedToken(content, special=False, normalized=False)])
        assert tk.token_to_id(content) == i
    return tk


def build_transformers(data):
    """The same tokenizer made through transformers' Qwen2Tokenizer (cross-check)."""
    from tokenizers import AddedToken
    from transformers import Qwen2Tokenizer
    vocab, merges = load_vocab_merges(data)
    eos = R1_ADDED[0][1]
    t = Qwen2Tokenizer(vocab=vocab, merges=merges, unk_token=None, bos_token=None,
                       eos_token=eos, pad_token=eos)
    for i, content, special in R1_ADDED[1:]:
        t.add_tokens([AddedToken(content, special=special, normalized=False)], special_tokens=special)
        assert t.convert_tokens_to_ids(content) == i
    for i, content in BIGMODEL:
        t.add_tokens([AddedToken(content, special=False, normalized=False)])
        assert t.convert_tokens_to_ids(content) == i
    return t


def build_tiny(data, n_merges=3000):
    """A small byte-level BPE (ids renumbered) with added tokens exercising every flag."""
    from tokenizers import AddedToken, Tokenizer
    from tokenizers.models import BPE
    vocab, merges = load_vocab_merges(data)
    inv = sorted(vocab.items(), key=lambda kv: kv[1])
    small = {}
    for tokstr, i in inv[:256]:
        small[tokstr] = len(small)
    mm = []
    for a, b in merges[:n_merges]:
        if a + b not in small:
            small[a + b] = len(small)
        mm.append((a, b))
    tk = Tokenizer(BPE(vocab=small, merges=mm, dropout=None, unk_token=None,
                       continuing_subword_prefix="", end_of_word_suffix="", fuse_unk=False,
                       byte_fallback=False))
    qwen2_pipeline(tk)
    tk.add_tokens([
        AddedToken("<|endoftext|>", special=True, normalized=False),
        AddedToken("<|im_start|>", special=True, normalized=False),
        AddedToken("<|im_end|>", special=True, normalized=False),
        AddedToken("<mask>", special=True, normalized=False, lstrip=True, rstrip=True),
        AddedToken("café", special=False, normalized=True),          # matched after NFC
        AddedToken("ony", special=False, normalized=False, single_word=True),
        AddedToken("<bigmodel>", special=False, normalized=False),
        AddedToken("</bigmodel>", special=False, normalized=False),
        AddedToken("the", special=False, normalized=True),            # a vocab token
    ])
    return tk


def adversarial():
    """~250 inline texts: scripts, digits, emoji, whitespace, contractions, special tokens,
    normalisation, invalid UTF-8, plus deterministic random mixes of tricky characters."""
    T = [
        "", " ", "\n", "a", "'", "''", "'s", " 's", "x's", "Hello world", "hello  world",
        # scripts
        "中文分词测试：我们今天去公园散步，天气很好。", "日本語のテキストとカタカナ、ひらがな。漢字も。",
        "한국어 텍스트입니다. 안녕하세요!", "مرحبا بالعالم، هذا اختبار للغة العربية.",
        "שלום עולם, זהו מבחן.", "नमस्ते दुनिया, यह एक परीक्षण है।", "বাংলা ভাষার পরীক্ষা।",
        "தமிழ் மொழி சோதனை.", "สวัสดีชาวโลกนี่คือการทดสอบภาษาไทย", "ສະບາຍດີ", "សួស្តីពិភពលោក",
        "မင်္ဂလာပါ", "Привет, мир! Это тест.", "Привіт, світе! Ґанок і їжак.",
        "Γειά σου Κόσμε! Ἀρχιμήδης ὁ Συρακούσιος.", "Բարև աշխարհ", "გამარჯობა მსოფლიო",
        "ሰላም ልዑል", "བཀྲ་ཤིས་བདེ་ལེགས།", "ᠮᠣᠩᠭᠣᠯ", "ᏣᎳᎩ", "Tiếng Việt có dấu: Hà Nội, Đà Nẵng.",
        "Ελληνικά και English mixed 混合 text 123 عربي",
        # digits of other scripts
        "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "１２３４５６７８９０", "০১২৩", "๐๑๒๓",
        "x²+y³=z⁴", "½ ⅓ ¼ ⅞", "①②③ ⑩", "Ⅻ ⅰⅱⅲ", "1,234,567.89", "3.14159265358979",
        "2024-01-01T12:34:56Z", "v1.2.3-rc4", "0x1F600 0b1010", "１２３abc",
        # emoji
        "😀", "😀😃😄", "👨‍👩‍👧‍👦 family", "🇺🇸🇯🇵🇩🇪 flags", "👍🏽👍🏿", "1️⃣2️⃣", "❤️ love", "🧌🪿",
        "text😀text", " 😀 ", "\u200d", "a\u200db",
        # whitespace
        "line1\r\nline2\r\n\r\nline3", "\r\r\n\n", "a\rb", "\r", "\r\n", "\ttab\t\tsep\t",
        "a\t\tb", "  leading", "trailing   ", " " * 100, "\n" * 50, " \n" * 30, "\n \n  \n   x",
        "a \n b", "x  \n\n  y", "\t\n\t", "\u00a0\u00a0nbsp", "\u3000ideographic\u3000space",
        "\u2028\u2029", "\u0085next", "\x0b\x0c", "\u2000\u2001\u200a word", "\u202f\u205f",
        "word\u00a0word", " \t \t x", "end with space ", "\n\n\nThree newlines first",
        # long runs
        "a" * 1000, "=" * 500, "." * 300, "ab" * 400, "1234567890" * 20, "é" * 300, "中" * 500,
        "-" * 64 + "\n" + "-" * 64, "!" * 257, "😀" * 50, "ﬁ" * 40, "'s" * 50, "\\" * 100,
        # contractions
        "DON'T", "He'S", "we'Re", "I'M", "they'LL", "she'D", "You'VE", "'s'S'ſ", "y'all",
        "o'clock", "rock 'n' roll", "''s", "'ſt", "It‘s curly ’s", "x'SS", "'Ll'lL", "don't!",
        "He's here. She'd go. We'll see. I'm in. You've won. They're out. It't", "'re're",
        # special tokens
        "a<|im_end|>b", "<bigmodel>x</bigmodel>", "  <|endoftext|>  ", "<|im_start|><|im_end|>",
        "<|im_start", "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n",
        "<think>\nreasoning\n</think>\n\nanswer", "<｜User｜>hi<｜Assistant｜>",
        "<｜begin▁of▁sentence｜><｜User｜>What is 1+1?<｜Assistant｜><think>\n",
        "<｜end▁of▁sentence｜>", "<bigmodel><bigmodel></bigmodel>", "<\\bigmodel>",
        "text<\\bigmodel>more", "<bigmodel>hard part<\\bigmodel> easy part",
        "<bigmodel>\u0338", "e<bigmodel>\u0301", "</bigmodel>\u0301", "<|endoftext|>\u0301",
        "<<bigmodel>>", "<big<bigmodel>model>", "<|im_end|", "</think></think>",
        "<tool_call>{\"a\": 1}</tool_call>", "<|fim_prefix|>def f():<|fim_suffix|>\n<|fim_middle|>",
        "<|vision_start|><|image_pad|><|vision_end|>", " <think> ", "\n<bigmodel>\n",
        "<\\bigmodel><\\bigmodel>", "<\\\\bigmodel>", "<\\bigmodel", "<|EOT|><|EOT|>",
        # normalisation
        "e\u0301", "cafe\u0301", "a\u0308", "A\u030a", "\u1100\u1161\u11a8", "\u212b", "\u2126",
        "\u0344", "q\u0307\u0323", "\u0958", "\ufb2c", "ﬁ ligature", "ａｂｃ fullwidth",
        "a\u08d3\u0334", "\U00011935\U00011930", "\U00011938", "\u1c89\u1c8a", "\U00010d40\U00010d41",
        "o\u0302\u0301", "\u00f4\u0301", "x\u0301\u0301\u0301", "\u0301 leading mark",
        "\u0338=", "=\u0338", "<\u0338", "Ǆ ǅ ǆ", "ſ", "\u0041\u030a\u0301", "ﷺ",
        # control characters, BOM, zero width
        "\x00", "a\x00b", "\x01\x02\x03", "\x7f", "\u200b zero width", "\ufeffBOM", "\ufffd",
        "\ufffe\uffff", "\U0010ffff", "\ue000 private use", "\U000e0001 tag",
        # math / LaTeX / code
        "$\\frac{1}{2}$", "\\[ x^2 + y^2 = z^2 \\]", "≤ ≥ ≠ ∑ ∫ √ π ∞", "α+β=γ",
        "\\boxed{42}", "$$\\sum_{k=1}^{n} k = \\frac{n(n+1)}{2}$$",
        "def f(x):\n    return x ** 2\n\n\nprint(f(3))\n", "{\"key\": [1, 2, 3], \"nested\": {\"a\": null}}",
        "if (a &&b || !c) { x += 1; }", "https://example.com/path?q=1&r=2#frag", "user@example.org",
        "Hello, 世界! 123 مرحبا", "naïve coöperate résumé", "C++ C# F# .NET", "@@@###$$$%%%^^^",
        # the tiny tokenizer's flagged added tokens (lstrip/rstrip <mask>, single_word "ony",
        # normalized "café", vocab token "the")
        "I saw a <mask> 😺", "Hi <mask> there\t<mask>\t<mask>\u2000", "<mask>, <mask>- \u25cc\u0330<mask>",
        "  <mask>  <mask>", "<mask><mask>", "a<mask>b", "money ony Tony ony. ony_x _ony ony\u0301 (ony)",
        "ony", " ony ", "café cafe\u0301 CAFÉ cafés", "the them other the", "\u00a0<mask>\u3000",
    ]
    B = [  # bytes: invalid UTF-8 and friends
        b"\xff", b"\xc0\x80", b"\xe2\x82", b"\xed\xa0\x80", b"\xf0\x9f\x98", b"\xf0\x9f\x98\x80",
        b"\x80\x80", b"\xf4\x90\x80\x80", b"\xe0\x80\x80", b"\xf5", b"\xfe\xff", b"a\xffb",
        b"\xc3\x28", b"\xe2\x28\xa1", b"<|im_end|>\xff", b"\xff<bigmodel>\xfe", b"abc\xe2\x82",
        b"\xc2", b"\xe1\x80", b"\xf1\x80\x80", b"\xf0\x80\x80\x80", b"\xef\xbf\xbd",
        b"caf\xc3\xa9 \xe9t\xe9", b"\xed\x9f\xbf\xed\xa0\x80", b"text \x00 nul", b"\x00\x00",
        b"e\xcc", b"e\xcc\x81", b"\xf4\x8f\xbf\xbf", b"\xa0\xa1", b"'\xc5\xbf'", b"\xe2\x80\xa8",
    ]
    rng = random.Random(20250417)
    alphabet = [" ", " ", " ", "\n", "\r", "\t", "'", "s", "S", "l", "L", "e", "é", "\u0301", "1",
                "٣", "!", ".", "中", "😀", "\u200d", "\u00a0", "<", "|", ">", "/", "\\", "b", "i",
                "g", "m", "o", "d", "e", "l", "\u0338", "ſ", "ﬆ", "\u1100", "\u1161", "ˇ", "’",
                "<bigmodel>", "</bigmodel>", "<\\bigmodel>", "<|im_end|>", "<think>", "x", "Y",
                "\u3000", "\u2028", "¹", "ǅ", "\x00"]
    for _ in range(70):
        T.append("".join(rng.choice(alphabet) for _ in range(rng.randint(1, 40))))
    for _ in range(10):
        b = bytes(rng.randint(0, 255) for _ in range(rng.randint(1, 24)))
        B.append(b)
    out = []
    for t in T:
        out.append(t)
    out.extend(B)
    return out


def iter_sources(data):
    for f, fields in SOURCES:
        with open(os.path.join(data, f), encoding="utf-8") as fh:
            for row, line in enumerate(fh):
                r = json.loads(line)
                for field in fields:
                    v = r.get(field)
                    index = None
                    if isinstance(v, list):
                        v, index = (v[0] if v else None), 0
                    if not isinstance(v, str) or not v:
                        continue
                    yield {"src": f, "row": row, "field": field, "index": index}, v


def zstd_write(path, text):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = path + ".tmp"
    p = subprocess.run(["zstd", "-19", "-q", "-f", "-o", tmp], input=text.encode("utf-8"))
    if p.returncode != 0:
        sys.exit("zstd failed")
    os.replace(tmp, path)


def zstd_read(path):
    return subprocess.run(["zstd", "-d", "-q", "-c", path], check=True,
                          capture_output=True).stdout.decode("utf-8")


def fixture_texts(data):
    """(record-without-ids, text) for every fixture text, in fixture order."""
    items = []
    for ref, text in iter_sources(data):
        items.append((ref, text))
    for t in adversarial():
        if isinstance(t, str) and "\x00" not in t:
            items.append(({"text": t}, t))
        else:
            b = t if isinstance(t, bytes) else t.encode("utf-8")
            items.append(({"hex": b.hex()}, t))
    return items


def write_r1_config(data):
    cfg = json.load(open(os.path.join(data, "r1_distill_qwen_tokenizer_config", "tokenizer_config.json"),
                         encoding="utf-8"))
    dec = {}
    for i, content, special in R1_ADDED:
        dec[str(i)] = {"content": content, "lstrip": False, "normalized": False, "rstrip": False,
                       "single_word": False, "special": special}
    out = {"added_tokens_decoder": dec}
    out.update(cfg)
    d = os.path.join(FIX, "r1_distill_qwen")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "tokenizer_config.json"), "w", encoding="utf-8") as f:
        json.dump(out, f, ensure_ascii=False, indent=2)
        f.write("\n")


def make(args):
    import tokenizers
    import transformers
    data = args.data
    tk = build_reference(data)
    tiny = build_tiny(data)
    items = fixture_texts(data)
    refs = [reference_text(t) for _, t in items]
    for (rec, t), r in zip(items, refs):
        if "src" in rec:  # must survive the C side's JSON reader unchanged
            assert "\x00" not in t, rec
            t.encode("utf-8")
    enc = tk.encode_batch(refs, add_special_tokens=False)
    ids = [e.ids for e in enc]
    # cross-check with transformers' Qwen2Tokenizer
    tt = build_transformers(data)
    ids2 = tt(refs, add_special_tokens=False)["input_ids"]
    bad = [i for i in range(len(refs)) if ids2[i] != ids[i]]
    if bad:
        sys.exit("transformers Qwen2Tokenizer disagrees with the tokenizers pipeline on %d texts "
                 "(first %r)" % (len(bad), items[bad[0]][0]))
    # decode check on the reference side (valid, NFC texts round-trip)
    import unicodedata
    n_rt = 0
    for (rec, t), i in zip(items, ids):
        if isinstance(t, str) and "<\\bigmodel>" not in t:
            dec = tk.decode(i, skip_special_tokens=False)
            if unicodedata.is_normalized("NFC", t):
                assert dec == t, rec
                n_rt += 1
    inline = [k for k, (rec, _) in enumerate(items) if "src" not in rec]
    tiny_ids = tiny.encode_batch([refs[k] for k in inline], add_special_tokens=False)
    tiny_of = {k: e.ids for k, e in zip(inline, tiny_ids)}
    lines = [json.dumps({"meta": {
        "what": "Qwen2 BPE (shared/data/qwen2_tokenizer) + R1-distill added tokens 151643..151664 "
                "+ <bigmodel> 151665, </bigmodel> 151666; encode(add_special_tokens=False)",
        "tokenizers": tokenizers.__version__, "transformers": transformers.__version__,
        "k_full": K_FULL, "b_hash": B_HASH, "hash": "fnv1a64 over int32 LE bytes, hex",
        "texts": len(items), "tokens": sum(len(i) for i in ids)}}, ensure_ascii=False)]
    for k, ((rec, _), i) in enumerate(zip(items, ids)):
        r = dict(rec)
        if r.get("index") is None:
            r.pop("index", None)
        r["n"] = len(i)
        r["ids"] = i[:K_FULL]
        tail = i[K_FULL:]
        if tail:
            r["h"] = [fnv64(tail[j:j + B_HASH]) for j in range(0, len(tail), B_HASH)]
        if k in tiny_of:
            r["tiny"] = tiny_of[k]
        lines.append(json.dumps(r, ensure_ascii=False, separators=(",", ":")))
    path = os.path.join(FIX, "golden.jsonl.zst")
    zstd_write(path, "\n".join(lines) + "\n")
    os.makedirs(os.path.join(FIX, "tiny"), exist_ok=True)
    tiny.save(os.path.join(FIX, "tiny", "tokenizer.json"))
    write_r1_config(data)
    print("wrote %s: %d texts (%d inline), %d tokens, %d bytes; %d round-trips checked" % (
        path, len(items), len(inline), sum(len(i) for i in ids), os.path.getsize(path), n_rt))


def check_saved(args):
    """AutoTokenizer on a directory the C tokenizer_save wrote must give the reference ids."""
    from transformers import AutoTokenizer
    t = AutoTokenizer.from_pretrained(args.check_saved)
    items = fixture_texts(args.data)
    refs = [reference_text(x) for _, x in items]
    want = [e.ids for e in build_reference(args.data).encode_batch(refs, add_special_tokens=False)]
    got = t(refs, add_special_tokens=False)["input_ids"]
    bad = [k for k in range(len(refs)) if got[k] != want[k]]
    print("%s: %s (%s), %d texts, %d mismatches" % (args.check_saved, type(t).__name__, len(t),
                                                    len(refs), len(bad)))
    for k in bad[:5]:
        print("  mismatch:", items[k][0])
    return 1 if bad else 0


def c_ranges(src, name):
    m = re.search(r"%s\[\]\[2\] = \{(.*?)\};" % name, src, re.S)
    return [(int(a, 16), int(b, 16)) for a, b in re.findall(r"\{0x([0-9A-Fa-f]+), 0x([0-9A-Fa-f]+)\}", m.group(1))]


def check_unicode(args):
    """Every code point: HF's classes, contractions and NFC vs the C tables + utf8proc."""
    import ctypes
    from tokenizers import Regex, normalizers, pre_tokenizers
    src = open(os.path.join(REPO, "data", "tokenizer_text.c"), encoding="utf-8").read()
    inert = c_ranges(src, "hf_inert_marks")
    letters, numbers = c_ranges(src, "u16_letters"), c_ranges(src, "u16_numbers")
    inr = lambda cp, rr: any(a <= cp <= b for a, b in rr)
    u = ctypes.CDLL("libutf8proc.so.2")
    u.utf8proc_NFC.restype = ctypes.c_void_p
    libc = ctypes.CDLL("libc.so.6")

    def nfc_piece(s):
        r = u.utf8proc_NFC(s.encode("utf-8") + b"\0")
        out = ctypes.string_at(r).decode("utf-8")
        libc.free(ctypes.c_void_p(r))
        return out

    def c_nfc(s):  # the C rule: cut at HF-inert marks and between U+11935 U+11930
        out, piece, prev = [], "", None
        for ch in s:
            cp = ord(ch)
            if inr(cp, inert):
                out.append(nfc_piece(piece) + ch)
                piece = ""
            elif cp == 0x11930 and prev == 0x11935:
                out.append(nfc_piece(piece))
                piece = ch
            else:
                piece += ch
            prev = cp
        out.append(nfc_piece(piece))
        return "".join(out)

    ws = {9, 10, 11, 12, 13, 32, 0x85, 0xA0, 0x1680, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000} | set(range(0x2000, 0x200B))

    def c_class(cp):
        if cp in ws:
            return "S"
        cat = u.utf8proc_category(cp)
        if 1 <= cat <= 5:
            return "L"
        if 9 <= cat <= 11:
            return "N"
        if cat == 0:
            return "L" if inr(cp, letters) else "N" if inr(cp, numbers) else "O"
        return "O"

    p = pre_tokenizers.Split(Regex(PAT), "isolated")
    nfc = normalizers.NFC()
    bad = 0
    for cp in range(0x110000):
        if 0xD800 <= cp < 0xE000 or cp in (10, 13):
            continue
        c = chr(cp)
        r = [x[0] for x in p.pre_tokenize_str(c + c + "a")]
        h = ("L" if r == [c + c + "a"] else "N" if r == [c, c, "a"] else
             "S" if r == [c, c + "a"] else "O" if r == [c + c, "a"] else "?")
        if h != c_class(cp):
            bad += 1
            if bad < 20:
                print("class U+%04X: HF %s, C %s" % (cp, h, c_class(cp)))
        if c.isalpha() and not (c.isascii() and c.lower() in "strevmld"):
            r = [x[0] for x in p.pre_tokenize_str("'" + c + "b")]
            if r == ["'" + c, "b"] and cp != 0x17F:
                bad += 1
                print("contraction: U+%04X folds into a contraction" % cp)
        if cp == 0:
            continue
        for s in (c, "a" + c + "\u0334", "a\u0345" + c, "a" + c + "\u0301", c + "\u0300",
                  "\u1100" + c, unicodedata_nfd(c)):
            if nfc.normalize_str(s) != c_nfc(s):
                bad += 1
                if bad < 20:
                    print("nfc U+%04X on %r" % (cp, s))
                break
    print("unicode check: %d differences" % bad)
    return 1 if bad else 0


def unicodedata_nfd(c):
    import ctypes
    u = ctypes.CDLL("libutf8proc.so.2")
    u.utf8proc_NFD.restype = ctypes.c_void_p
    r = u.utf8proc_NFD(c.encode("utf-8") + b"\0")
    out = ctypes.string_at(r).decode("utf-8")
    ctypes.CDLL("libc.so.6").free(ctypes.c_void_p(r))
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", default=os.path.join(REPO, "..", "shared", "data"))
    ap.add_argument("--check-unicode", action="store_true")
    ap.add_argument("--check-saved", metavar="DIR")
    args = ap.parse_args()
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    if args.check_unicode:
        return check_unicode(args)
    if args.check_saved:
        return check_saved(args)
    make(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
