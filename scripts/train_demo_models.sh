#!/usr/bin/env bash
# Trains the demo task's small and big model with splitreason itself, then measures the
# held-out accuracy of each (greedy `generate` + `grade`): what assets/demo_task/ ships.
#
#   task      train and held-out worksheets (data/task.h), --seed $SEED (disjoint by construction)
#   init      configs/demo_task/{small,big}_qwen2.json with the task's byte-level tokenizer
#   prepare   the PLAIN solutions (no tags) -> packed shards of 1024 tokens
#   sft       configs/sft/demo_task.json for both models, the small one for STEPS_SMALL optimizer
#             steps (one epoch), the big one for STEPS_BIG (three epochs): what makes it the
#             strong model is its size AND its training, as a 32B R1-distill is to a 1.5B one
#   export    the last checkpoint as a bf16 model directory
#   eval      greedy completions of the first $N_EVAL held-out problems, graded against the answer
#
# usage: scripts/train_demo_models.sh [OUT]        (OUT: runs/demo_task_models)
# env:   SR_BIN (build/splitreason), SEED (0), N_TRAIN (12000), N_EVAL (100), STEPS_SMALL
#        (3000), STEPS_BIG (9000), LR_SMALL, LR_BIG (0.005), MODELS ("small big"), INSTALL=1 copies the
#        bf16 models and the results into assets/demo_task/{small,big}/ and
#        assets/demo_task/results.json, SKIP_TRAIN=1 only evaluates the models already in OUT
# Timing: on a machine other jobs also use, run it with OMP_NUM_THREADS=1 (OpenMP threads that
# wait for each other on busy cores made a step 10-20x slower here) and nice.
set -euo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-runs/demo_task_models}
BIN=${SR_BIN:-build/splitreason}
SEED=${SEED:-0}
N_TRAIN=${N_TRAIN:-12000}
LR_SMALL=${LR_SMALL:-0.005}
LR_BIG=${LR_BIG:-0.005}
STEPS_SMALL=${STEPS_SMALL:-3000}
STEPS_BIG=${STEPS_BIG:-9000}
N_EVAL=${N_EVAL:-100}
MODELS=${MODELS:-small big}
RECIPE=configs/sft/demo_task.json
[ -x "$BIN" ] || { echo "train_demo_models.sh: $BIN not found (build first or set SR_BIN)" >&2; exit 2; }
mkdir -p "$OUT"
now() { date +%s.%N; }

"$BIN" task --out "$OUT/data" --n-train "$N_TRAIN" --n-heldout "$N_EVAL" --seed "$SEED" 2>/dev/null
for m in $MODELS; do
  "$BIN" init --model-config "configs/demo_task/${m}_qwen2.json" --tokenizer assets/demo_task/tokenizer \
    --seed "$SEED" --out "$OUT/$m/init" 2>&1 | grep 'init: wrote'
done
first=${MODELS%% *}
for split in train heldout; do
  "$BIN" prepare --tokenizer "$OUT/$first/init" --input "$OUT/data/$split.jsonl" --output "$OUT/data/${split}_plain" \
    --completion-field solution --max-length 1024 2>/dev/null | head -2
done

results="{"
for m in $MODELS; do
  lr=$LR_BIG steps=$STEPS_BIG
  [ "$m" = small ] && lr=$LR_SMALL steps=$STEPS_SMALL
  t0=$(now) t_train=0 ckpt="$OUT/$m/model"
  if [ "${SKIP_TRAIN:-0}" != 1 ]; then
  rm -rf "$OUT/$m/sft"
  "$BIN" sft --config "$RECIPE" --model-name-or-path "$OUT/$m/init" --dataset-path "$OUT/data/train_plain" \
    --eval-dataset-path "$OUT/data/heldout_plain" --output-dir "$OUT/$m/sft" --learning-rate "$lr" --max-steps "$steps" 2>&1 |
    grep -E 'sft: steps|eval' | tail -3
  t_train=$(echo "$(now) - $t0" | bc)
  ckpt=$(ls -d "$OUT/$m/sft"/checkpoint-* | sort -t- -k2 -n | tail -1)
  "$BIN" export "$ckpt" --out "$OUT/$m/model" --dtype bf16 2>/dev/null
  fi
  # greedy completions of the held-out problems, then the grader
  t0=$(now)
  # (the prompt goes to generate as an argument from Python: a shell $(...) would drop the
  # newline that ends "<think>\n")
  python3 - "$BIN" "$OUT/$m/model" "$OUT/data/heldout.jsonl" > "$OUT/$m/completions.jsonl" <<'PY'
import json, subprocess, sys
binary, model, heldout = sys.argv[1:4]
for line in open(heldout):
    row = json.loads(line)
    prompt = "<｜User｜>" + row["problem"] + "<｜Assistant｜><think>\n"
    out = subprocess.run([binary, "generate", "--model", model, "--prompt", prompt, "--add-bos", "--temperature", "0",
                          "--max-new-tokens", "160", "--json"], capture_output=True, text=True, check=True)
    gen = json.loads(out.stdout.splitlines()[0])
    print(json.dumps({"uuid": row["uuid"], "answer": row["answer"], "response": "<think>\n" + gen["text"]}), flush=True)
PY
  t_eval=$(echo "$(now) - $t0" | bc)
  "$BIN" grade --input "$OUT/$m/completions.jsonl" --pred-field response --gold-field answer \
    --output "$OUT/$m/graded.jsonl" 2>/dev/null
  # each step line judged on its own input (the tables as the training traces show them), so a
  # model that misses a table step and carries the wrong value on correctly gets its easy steps
  python3 - "$OUT/data/train.jsonl" "$OUT/data/heldout.jsonl" "$OUT/$m/completions.jsonl" > "$OUT/$m/steps.json" <<'PY'
import json, re, sys
table = {}
for l in open(sys.argv[1]):
    for t, a, b in re.findall(r"^[A-Z]\) ([fghk]) (\d+) -> (\d+)$", json.loads(l)["solution"], re.M):
        table[t, a] = b
n = {"table": [0, 0], "easy": [0, 0]}
for row, out in zip(map(json.loads, open(sys.argv[2])), map(json.loads, open(sys.argv[3]))):
    ops = re.findall(r"^([A-Z])\) (\S) __ -> __$", row["problem"], re.M)
    for label, op in ops:
        m = re.search(r"^%s\) %s (\d+) -> (\d+)$" % (label, re.escape(op)), out["response"], re.M)
        kind = "table" if op in "fghk" else "easy"
        n[kind][1] += 1
        if m:
            a, b = m.group(1), m.group(2)
            want = table.get((op, a)) if kind == "table" else str(int(a) + {"+": 1, "-": -1, "=": 0}[op])
            n[kind][0] += b == want
print(json.dumps({"table_steps_right": n["table"][0], "table_steps": n["table"][1],
                  "easy_steps_right": n["easy"][0], "easy_steps": n["easy"][1]}))
PY
  n=$(wc -l < "$OUT/$m/graded.jsonl")
  c=$(grep -c '"verdict": *"correct"' "$OUT/$m/graded.jsonl" || true)
  bytes=$(stat -c %s "$OUT/$m/model/model.safetensors")
  printf '%s: %d/%d held-out problems correct (%.1f %%), steps %s, sft %.0f s, eval %.0f s, %s (%d bytes bf16)\n' \
    "$m" "$c" "$n" "$(echo "100 * $c / $n" | bc -l)" "$(cat "$OUT/$m/steps.json")" "$t_train" "$t_eval" "$ckpt" "$bytes"
  results+="\"$m\": {\"correct\": $c, \"n\": $n, \"accuracy\": $(printf %.4f "$(echo "$c / $n" | bc -l)"), \"sft_seconds\": $(printf %.1f "$t_train"), \"learning_rate\": $lr, \"max_steps\": $steps, \"bf16_bytes\": $bytes, \"steps\": $(cat "$OUT/$m/steps.json")}, "
done
results+="\"seed\": $SEED, \"n_train\": $N_TRAIN, \"n_eval\": $N_EVAL}"
echo "$results" > "$OUT/results.json"
cat "$OUT/results.json"
if [ "${INSTALL:-0}" = 1 ]; then
  for m in $MODELS; do
    rm -rf "assets/demo_task/$m"
    mkdir -p "assets/demo_task/$m"
    cp -r "$OUT/$m/model/." "assets/demo_task/$m/"
  done
  cp "$OUT/results.json" assets/demo_task/results.json
fi
