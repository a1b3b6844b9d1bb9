#!/usr/bin/env bash
# splitreason sweep on the demo task: two latency penalties, a couple of GRPO steps each, eval of
# each in split mode with the reference points; sweep.json and pareto.svg; a second call skips
# what is done; an interrupted run resumes; a run directory made with other settings is
# refused; bad --latency-penalties are a bad command line.
. "$(dirname "$0")/shell_lib.sh" cli_sweep
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

check '$BIN task --out $T/task --n-train 64 --n-heldout 8 --seed 5 2>/dev/null'
POLICY=tests/fixtures/demo_task_small_tagged
common=(--config configs/grpo/tiny_cpu.json --model-name-or-path $POLICY --big-model-name-or-path assets/demo_task/big
        --dataset-path $T/task/train.jsonl --latency-table configs/latency/cpu_demo_task.json
        --num-generations 4 --per-device-train-batch-size 8 --max-completion-length 140 --logging-steps 1
        --eval-benchmark $T/task/heldout.jsonl --eval-max-new-tokens 140)
S=$T/s
check '$BIN sweep "${common[@]}" --output-dir $S --latency-penalties 0,2 --max-steps 2 --save-steps 2 \
  --eval-random-model assets/demo_task/small >$T/s.out 2>$T/s.err'
python3 - "$S/sweep.json" >"$T/s.check" 2>&1 <<'PY'
import json, math, sys
s = json.load(open(sys.argv[1]))
bad = []
if [r["latency_penalty"] for r in s["runs"]] != [0, 2]: bad.append("lambdas")
for r in s["runs"] + list(s["reference"].values()):
    for f in ("accuracy", "offload_share", "modelled_latency", "wall_time_s"):
        if not (isinstance(r[f], (int, float)) and math.isfinite(r[f]) and r[f] >= 0): bad.append(f)
if sorted(s["reference"]) != ["big_only", "random_switch", "small_only", "split_initial"]: bad.append("references")
if s["reference"]["big_only"]["offload_share"] != 1 or s["reference"]["small_only"]["offload_share"] != 0: bad.append("shares")
if not s["runs"][1]["model"].endswith("lambda-2/checkpoint-2"): bad.append("model " + s["runs"][1]["model"])
print("\n".join(bad) or "ok")
PY
check 'grep -qx ok $T/s.check || { cat $T/s.check >&2; false; }'
check 'python3 -c "import xml.dom.minidom as m; m.parse(\"$S/pareto.svg\")" && grep -q "GRPO lambda 2" $S/pareto.svg'
check '[ -s $S/lambda-0/DONE ] && [ -s $S/lambda-2/metrics.jsonl ] && [ -s $S/eval/lambda-2/summary.json ]'
check 'grep -q "GRPO lambda 0 " $T/s.out'

# again: nothing to do
check '$BIN sweep "${common[@]}" --output-dir $S --latency-penalties 0,2 --max-steps 2 --save-steps 2 \
  --eval-random-model assets/demo_task/small >$T/s2.out 2>$T/s2.err'
check '[ $(grep -c "is done.*skipped" $T/s2.err) -eq 2 ] && ! grep -q "splitreason grpo" $T/s2.err'
check 'cmp -s <(grep "GRPO lambda" $T/s.out) <(grep "GRPO lambda" $T/s2.out)'

# an interrupted run (stop_after_steps) resumes from its checkpoint when called again
R=$T/r
expect_exit stopped 1 "stopped after step 2" $BIN sweep "${common[@]}" --output-dir $R --latency-penalties 1 \
  --max-steps 4 --save-steps 2 --eval-references false --stop-after-steps 2
check '$BIN sweep "${common[@]}" --output-dir $R --latency-penalties 1 --max-steps 4 --save-steps 2 \
  --eval-references false >$T/r.out 2>$T/r.err'
check 'grep -qi "resum" $T/r.err && [ -s $R/lambda-1/DONE ] && grep -q "checkpoint-4" $R/lambda-1/DONE'

# errors
expect_exit other_settings 1 "was run with max_steps = 4, now 3" $BIN sweep "${common[@]}" --output-dir $R \
  --latency-penalties 1 --max-steps 3 --save-steps 1 --eval-references false
expect_exit bad_list 2 "latency-penalties: expected numbers" $BIN sweep "${common[@]}" --output-dir $T/x --latency-penalties 0,a
expect_exit twice 2 "given twice" $BIN sweep "${common[@]}" --output-dir $T/x --latency-penalties 1,1
python3 -c 'import json, sys; c = json.load(open(sys.argv[1])); c.pop("big_model_name_or_path", None); c["rollout_mode"] = "small"
json.dump(c, open(sys.argv[2], "w"))' configs/grpo/tiny_cpu.json $T/no_big.json
expect_exit no_big 2 "big_model_name_or_path" $BIN sweep --config $T/no_big.json --model-name-or-path $POLICY \
  --dataset-path $T/task/train.jsonl --output-dir $T/x --latency-penalties 1
cli_done
