#!/usr/bin/env bash
# CPU decode throughput of `splitreason generate` against transformers `generate`, side by side
# in one run, on the demo's model: a random Qwen2 of configs/tiny_sft_qwen2.json's shape (the
# model `splitreason demo` trains: hidden 64, 2 layers, vocab 151936) made by `splitreason init`
# and exported as an HF directory (fp32) that both sides load. Batch 1/16/64 (one prompt, B
# samples), --max-new-tokens 128, with `--temperature 1.0 --top-p 1.0` (GRPO's default) and
# `--temperature 0.6 --top-p 0.95` (R1's eval setting); 2 threads on both sides. tokens/s =
# generated tokens / the time of the generate call (prefill included, model loading not);
# splitreason's count is checked against its JSON output. Best of REPS runs per side.
#
#   bash bench/bench_decode.sh            # env: SR_BIN PY MAX_NEW BATCHES REPS THREADS
#
# The peer (pinned; a venv outside the repository):
#   python3 -m venv /tmp/peervenv
#   /tmp/peervenv/bin/pip install torch==2.15.0 transformers==5.24.0
# (PyPI's torch wheel pulls CUDA libraries it does not use here; the CPU-only index, where
# reachable, is smaller: pip install torch==2.15.0 --index-url https://download.pytorch.org/whl/cpu)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SR_BIN:-build/splitreason}; PY=${PY:-/tmp/peervenv/bin/python}
MAX_NEW=${MAX_NEW:-128}; BATCHES=${BATCHES:-"1 16 64"}; REPS=${REPS:-1}; THREADS=${THREADS:-2}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$BIN" init --model-config configs/tiny_sft_qwen2.json --tokenizer assets/qwen2_tokenizer \
  --seed 0 --out "$T/init" >/dev/null 2>&1
"$BIN" export "$T/init" --out "$T/model" --dtype fp32 >/dev/null 2>&1
PROMPT='Find all real numbers x such that x^2 - 5x + 6 = 0. Please reason step by step, and put your final answer within \boxed{}.'
echo "$("$BIN" --version 2>&1 | head -n 1); $("$PY" -c 'import torch, transformers; print("torch", torch.__version__, "transformers", transformers.__version__)')"
echo "model: random init of configs/tiny_sft_qwen2.json, fp32; $MAX_NEW new tokens per row; $THREADS threads; best of $REPS"
printf '%-22s %4s %14s %14s %7s\n' setting B "splitreason" transformers ratio

ours() { # B TEMP TOP_P -> tok/s (best of REPS)
  local best=0 r
  for _ in $(seq "$REPS"); do
    OMP_NUM_THREADS=$THREADS "$BIN" generate --model "$T/model" --prompt "$PROMPT" \
      --max-new-tokens "$MAX_NEW" --temperature "$2" --top-p "$3" --num-samples "$1" --json \
      --seed 0 >"$T/out.jsonl" 2>"$T/err.log"
    r=$(python3 - "$T/out.jsonl" "$T/err.log" <<'EOF'
import json, re, sys
n = sum(len(json.loads(l)["ids"]) for l in open(sys.argv[1]) if l.strip())
m = re.search(r"(\d+) new tokens in [0-9.]+s \(([0-9.]+) tok/s\)", open(sys.argv[2]).read())
assert m and int(m.group(1)) == n, "token count of the log and of the JSON output differ"
print(m.group(2))
EOF
)
    best=$(python3 -c "print(max($best, $r))")
  done
  echo "$best"
}

peer() { # B TEMP TOP_P -> tok/s (best of REPS)
  local best=0 r
  for _ in $(seq "$REPS"); do
    r=$(OMP_NUM_THREADS=$THREADS "$PY" bench/bench_decode_peer.py --model "$T/model" \
      --prompt "$PROMPT" --batch "$1" --max-new-tokens "$MAX_NEW" --temperature "$2" --top-p "$3" \
      --threads "$THREADS" 2>/dev/null | sed -n 's/.*tok\/s=\([0-9.]*\).*/\1/p')
    best=$(python3 -c "print(max($best, $r))")
  done
  echo "$best"
}

for setting in "1.0 1.0" "0.6 0.95"; do
  set -- $setting
  for B in $BATCHES; do
    a=$(ours "$B" "$1" "$2"); b=$(peer "$B" "$1" "$2")
    printf '%-22s %4d %14.1f %14.1f %6.2fx\n' "T=$1 top_p=$2" "$B" "$a" "$b" \
      "$(python3 -c "print($a / $b)")"
  done
done
