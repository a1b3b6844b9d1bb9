#!/usr/bin/env bash
# splitreason demo, shortened (few problems, few SFT and GRPO steps), end to end through both tasks:
# worksheets writes summary.json with the contract's fields (numbers in range), the plot, each
# mode's eval run; the shipped models keep their roles (big >> small) and the annotator finds the
# hard steps; --task real-traces still runs. The full-size effect (split recovering the gap) is
# the demo's own output, not asserted here: a few SFT steps cannot teach the tags.
. "$(dirname "$0")/shell_lib.sh" cli_demo
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}

D="$T/w"
check '$BIN demo --out $D --n-train 40 --n-heldout 12 --max-steps 12 --max-new-tokens 130 --grpo-steps 2 >$T/w.out 2>$T/w.err'
check 'json_lines $D/task/heldout.jsonl 12'
check 'python3 -c "import xml.dom.minidom as m; m.parse(\"$D/pareto.svg\")"'
check 'grep -q "<circle" $D/pareto.svg && grep -q "split (SFT)" $D/pareto.svg && grep -q "GRPO lambda 2" $D/pareto.svg'
check '[ -s $D/model/model.safetensors ] && [ -s $D/eval/split_sft/samples.jsonl ]'
check 'grep -q "random switch" $T/w.out && grep -q "annotate --method gap found the hard steps" $T/w.out'
python3 - "$D/summary.json" >"$T/summary.check" 2>&1 <<'PY'
import json, math, sys
s = json.load(open(sys.argv[1]))
bad = []
for k in ("small_only", "big_only", "split_sft", "random_switch"):
    m = s[k]
    for f in ("accuracy", "offload_share", "modelled_latency", "wall_time_s"):
        v = m[f]
        if not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0: bad.append("%s.%s=%r" % (k, f, v))
    if not (0 <= m["accuracy"] <= 1 and 0 <= m["offload_share"] <= 1): bad.append(k + " range")
a = s["annotation"]
if not (a["precision"] >= 0.9 and a["recall"] >= 0.9): bad.append("annotation %r" % a)
if not (s["big_only"]["accuracy"] >= 0.9 and s["small_only"]["accuracy"] <= 0.2): bad.append("models' roles")
if s["small_only"]["offload_share"] != 0 or s["big_only"]["offload_share"] != 1: bad.append("shares")
lat = [s[k]["modelled_latency"] for k in ("small_only", "split_sft", "big_only")]
if not (lat[0] > 0 and lat[0] <= lat[1] <= lat[2]): bad.append("latency order %r" % lat)
if not (isinstance(s["wall_time_s"], (int, float)) and s["wall_time_s"] > 0): bad.append("wall_time_s")
if s["seed"] != 1 or s["n_heldout"] != 12: bad.append("settings")
g = s["split_grpo"]
if [x["latency_penalty"] for x in g] != [0.1, 2]: bad.append("split_grpo lambdas")
for x in g:
    for f in ("accuracy", "offload_share", "modelled_latency", "wall_time_s"):
        if not (isinstance(x[f], (int, float)) and math.isfinite(x[f]) and x[f] >= 0): bad.append("split_grpo " + f)
print("\n".join(bad) or "ok")
PY
check 'grep -qx ok $T/summary.check || { cat $T/summary.check >&2; false; }'

# the real-traces demo (SFT on real R1-Distill traces): a couple of steps
check '$BIN demo --task real-traces --out $T/r --max-steps 2 --max-new-tokens 4 >$T/r.out 2>$T/r.err'
check 'grep -q "demo done" $T/r.err && [ -s $T/r/export/model.safetensors ]'

expect_exit bad_task 2 "task" $BIN demo --task nope --out $T/x
cli_done
