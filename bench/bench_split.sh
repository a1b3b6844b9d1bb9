#!/usr/bin/env bash
# Split decoding's overhead and its latency model, on the CPU demo pair (random inits of
# configs/tiny_sft_qwen2.json as the small model and configs/tiny_big_qwen2.json as the big one,
# the pair configs/latency/cpu_demo.json was measured on), with `splitreason eval` on MATH-500
# prompts (--limit N), greedy, --max-new-tokens M:
#   1. overhead: the SAME model as small and big, random_switch at a 30 % share (every switch
#      pays a catch-up prefill on each side and the scheduler's bookkeeping) against small-only:
#      wall seconds per generated token, batch 1 and 16;
#   2. the latency model: small + big, random_switch, batch 1, one thread (as the table was
#      measured): the summed measured wall time of the samples against the summed modelled
#      T_split from the table.
#
#   bash bench/bench_split.sh          # env: SR_BIN N M
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SR_BIN:-build/splitreason}; N=${N:-8}; M=${M:-128}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
"$BIN" init --model-config configs/tiny_sft_qwen2.json --tokenizer assets/qwen2_tokenizer --seed 1 --out "$T/small" >/dev/null 2>&1
"$BIN" init --model-config configs/tiny_big_qwen2.json --tokenizer assets/qwen2_tokenizer --seed 2 --out "$T/big" >/dev/null 2>&1
run() { # NAME THREADS ARGS... -> writes $T/NAME/summary.json
  local name=$1 th=$2; shift 2
  OMP_NUM_THREADS=$th "$BIN" eval --benchmark math500 --limit "$N" --max-new-tokens "$M" \
    --temperature 0 --output "$T/$name" "$@" >/dev/null 2>"$T/$name.log" || { cat "$T/$name.log"; exit 1; }
}
stat() { # DIR -> "tokens wall_sum modelled_sum share"
  python3 - "$1" <<'EOF'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/samples.jsonl") if l.strip()]
tok = sum(r["small_tokens"] + r["big_tokens"] for r in rows)
wall = json.load(open(sys.argv[1] + "/summary.json"))["wall_time_s"]
mod = sum(r["modelled_latency"] or 0 for r in rows)
sw = sum(r["wall_time_s"] for r in rows)
share = sum(r["big_tokens"] for r in rows) / max(tok, 1)
print(tok, wall, mod, sw, share)
EOF
}
echo "$("$BIN" --version 2>&1 | head -n 1); MATH-500 first $N problems, greedy, $M new tokens"
echo "1. overhead of split decoding with identical models (wall s per generated token, 2 threads)"
printf '%-6s %14s %14s %9s %8s\n' batch small-only random_switch overhead share
for B in 1 16; do
  run s$B 2 --small "$T/small" --mode small --batch "$B"
  run r$B 2 --small "$T/small" --big "$T/small" --mode random_switch --random-share 0.3 --random-span 16 --batch "$B"
  read -r t1 w1 _ _ _ <<<"$(stat "$T/s$B")"; read -r t2 w2 _ _ sh <<<"$(stat "$T/r$B")"
  python3 -c "a=$w1/$t1; b=$w2/$t2; print('%-6s %14.5f %14.5f %8.2fx %8.3f' % ('$B', a, b, b/a, $sh))"
done
echo "2. measured against modelled latency (small + big, random_switch, batch 1, 1 thread, configs/latency/cpu_demo.json)"
run m 1 --small "$T/small" --big "$T/big" --mode random_switch --random-share 0.3 --random-span 16 --batch 1 \
  --latency-table configs/latency/cpu_demo.json
read -r t w mod sw sh <<<"$(stat "$T/m")"
python3 -c "print('tokens %d, offload share %.3f: measured %.2f s (per-sample sum), modelled %.2f s, measured/modelled %.2f' % ($t, $sh, $sw, $mod, $sw/$mod))"
