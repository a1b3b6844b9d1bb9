#!/usr/bin/env bash
# generate / score / annotate on hostile models and requests (issue 9):
#   - a model whose embedding (151936 rows) is larger than its tokenizer: hot sampling never
#     gives an id the tokenizer lacks, and every --json line parses;
#   - a model whose weights are NaN: score and generate --json still write valid JSON (null
#     where a number is not finite), as Python's json.loads reads it;
#   - a batch that cannot fit (--num-samples, --batch-tokens) is refused before allocating,
#     with the option and the bytes named, exit 1;
#   - annotate with a model on a row without `problem` (UBSan: memcpy from NULL).
. "$(dirname "$0")/shell_lib.sh" cli_generate_score
# expect_error NAME PATTERN CMD...: exit 1; the last stderr line matches PATTERN
expect_error() { local name=$1 pat=$2; shift 2; expect_exit "$name" 1 "$pat" "$@"; }
command -v python3 >/dev/null || { echo "python3 is needed to check the JSON"; exit 1; }

M="$T/model"
check '$BIN init --model-config configs/tiny_qwen2.json --tokenizer assets/qwen2_tokenizer --seed 5 --out $M 2>/dev/null'
# the tokenizer's size: the tags are appended after its last id
CLOSE=$(printf '{"text":"</bigmodel>"}\n' | $BIN tokenize --tokenizer $M --input - 2>/dev/null | tr -d '[]')
NT=$((CLOSE + 1))
check '[ $NT -gt 151000 ] && [ $NT -lt 151936 ]'

# ---- padded vocabulary: temperature 1.5, top-p 1, 4 x 200 tokens, no id >= NT -------------
check '$BIN generate --model $M --prompt "1 + 1 =" --temperature 1.5 --top-p 1 --num-samples 4 --max-new-tokens 200 --seed 3 >$T/hot.jsonl 2>$T/hot.err'
check 'json_lines $T/hot.jsonl 4'
check 'python3 -c "import json,sys
ids = [i for l in open(sys.argv[1]) for i in json.loads(l)[\"ids\"]]
sys.exit(0 if len(ids) > 0 and max(ids) < int(sys.argv[2]) else 1)" $T/hot.jsonl $NT'
# greedy: the same, and the objects carry their sample index
check '$BIN generate --model $M --prompt "x" --temperature 0 --num-samples 2 --max-new-tokens 20 >$T/greedy.jsonl 2>/dev/null'
check 'json_lines $T/greedy.jsonl 2'
check '[ "$(python3 -c "import json,sys; print(sorted(json.loads(l)[\"sample\"] for l in open(sys.argv[1])))" $T/greedy.jsonl)" = "[0, 1]" ]'

# ---- NaN weights: valid JSON with null ---------------------------------------------------
cp -r "$M" "$T/nan"
python3 - "$T/nan/model.safetensors" <<'EOF'
import json, struct, sys
p = sys.argv[1]
d = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", d[:8])[0]
h = json.loads(d[8:8 + n])
nan = {"F32": struct.pack("<I", 0x7FC00000), "BF16": struct.pack("<H", 0x7FC0),
       "F16": struct.pack("<H", 0x7E00)}
for k, v in h.items():
    if k == "__metadata__":
        continue
    a, b = v["data_offsets"]
    s = nan[v["dtype"]]
    d[8 + n + a:8 + n + b] = s * ((b - a) // len(s))
open(p, "wb").write(d)
EOF
printf '%s\n' '{"text": "The answer is 4."}' '{"text": "x"}' >"$T/in.jsonl"
check '$BIN score --model $T/nan --input $T/in.jsonl --output $T/nan_scores.jsonl 2>$T/nan_score.err'
check 'json_lines $T/nan_scores.jsonl 2'
check 'grep -q "\"logprobs\": \[null, null" $T/nan_scores.jsonl && grep -q "\"sum_logprob\": null" $T/nan_scores.jsonl'
check '! grep -qiE "nan|inf" $T/nan_scores.jsonl'
check '$BIN generate --model $T/nan --prompt "x" --json --max-new-tokens 5 >$T/nan_gen.jsonl 2>$T/nan_gen.err'
check 'json_lines $T/nan_gen.jsonl 1'
check 'grep -q "\"logprobs\": \[null, null, null, null, null\]" $T/nan_gen.jsonl'
check '$BIN generate --model $T/nan --prompt "x" --num-samples 3 --max-new-tokens 4 >$T/nan_gen3.jsonl 2>/dev/null'
check 'json_lines $T/nan_gen3.jsonl 3'

# ---- a batch that cannot fit: refused before allocating, option and bytes named ----------
# (the option ranges refuse the absurd values first, exit 2; within them, the sizing refuses
# what this machine cannot hold, exit 1)
$BIN generate --model "$M" --prompt x --num-samples 100000000 >/dev/null 2>"$T/num_samples.err"
check '[ $? -eq 2 ] && tail -n 1 $T/num_samples.err | grep -q "num-samples: 100000000 is out of range"'
# a model with a long context (positions are not weights): 4096 samples of 1M tokens
cp -r "$M" "$T/long"
python3 -c "import json; p='$T/long/config.json'; c=json.load(open(p)); c['max_position_embeddings']=2000000; json.dump(c, open(p, 'w'))"
expect_error num_samples_kv "num.samples 4096 with --max-new-tokens 1000000: a batch of 4096 sequences .* needs [0-9]+ bytes .*more than " \
  $BIN generate --model "$T/long" --prompt x --num-samples 4096 --max-new-tokens 1000000
# (--batch-tokens' range, [1, 1048576], keeps a tiny model's forward within this machine, so
# its sizing check cannot be made to refuse here; the range refuses the absurd value)
$BIN score --model "$M" --input "$T/in.jsonl" --batch-tokens 2000000000 >/dev/null 2>"$T/batch_tokens.err"
check '[ $? -eq 2 ] && tail -n 1 $T/batch_tokens.err | grep -q "batch-tokens: 2000000000 is out of range"'
expect_error positions "max.new.tokens 5000: .*exceeds the model's max_position_embeddings 4096" \
  $BIN generate --model "$M" --prompt x --max-new-tokens 5000

# ---- annotate with a model, a row without `problem` (was memcpy from NULL) ----------------
printf '%s\n' '{"response": "<think>\nWe add 2 and 2. That gives 4, since 2 + 2 = 4.\n</think>\nThe answer is 4."}' >"$T/noproblem.jsonl"
check '$BIN annotate --method entropy --small $M --input $T/noproblem.jsonl --output $T/ann.jsonl --field response --min-span-tokens 1 2>$T/ann.err'
check 'json_lines $T/ann.jsonl 1'
check '! grep -q "runtime error" $T/ann.err'

cli_done
