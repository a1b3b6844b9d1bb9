#!/usr/bin/env bash
# splitreason eval end to end on FORCED models (tests/forced_model.h, written by sr_forced_model):
# a small model that writes "The answer is \boxed{42}.", one that writes "The answer is
# \boxed{4|7}2}." (4 or 7 a fair coin), a big one that writes "The answer is \boxed{72}.", on a
# FILE whose answers are 42, 72 and \frac{84}{2}:
#   - greedy: pass@1 and pass@k are exactly 2/3 (small) and 1/3 (big), the grader's equivalence
#     (84/2 = 42) counts; samples.jsonl has the issue's fields, owner per id, EOS last;
#   - sampling (K = 8): summary.json's pass@1 / pass@8 equal what the rows give (unbiased
#     pass@k recomputed here), and the coin lands both ways;
#   - --resume after a kill (samples.jsonl cut mid-line, summary.json gone): every
#     (problem, sample) once, the same rows and the same summary;
#   - the refusals: an output holding a run, a resume with other settings, --mode split without
#     --big, --resume without --output, missing and bad benchmark files, no data folder.
. "$(dirname "$0")/shell_lib.sh" cli_eval
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
command -v python3 >/dev/null || { echo "python3 is needed to check the JSON"; exit 1; }
FM="$(dirname "$BIN")/sr_forced_model"
[ -x "$FM" ] || { echo "no $FM (cmake --build build --target sr_forced_model)"; exit 1; }
expect_error() { local name=$1 pat=$2; shift 2; expect_exit "$name" 1 "$pat" "$@"; }
expect_usage() { local name=$1 pat=$2; shift 2; expect_exit "$name" 2 "$pat" "$@"; }

S="$T/small" B="$T/big"
check '$FM --tokenizer assets/qwen2_tokenizer --out $S "text:The answer is \\boxed{" "coin:4|7" "text:2}." eos 2>$T/fm.err'
check '$FM --tokenizer assets/qwen2_tokenizer --out $B "text:The answer is \\boxed{" "text:72}." eos 2>>$T/fm.err'
# greedy runs use a chain without the coin: an exact tie's winner is the engine's business
G="$T/greedy"
check '$FM --tokenizer assets/qwen2_tokenizer --out $G "text:The answer is \\boxed{42}." eos 2>>$T/fm.err'
printf '%s\n' '{"id": "a", "problem": "Six times seven?", "answer": "42"}' \
              '{"problem": "Seventy-two?", "answer": 72}' \
              '{"problem": "Half of 84?", "answer": "\\frac{84}{2}"}' >"$T/p.jsonl"

# summary FIELD DIR: a summary.json number
summary() { python3 -c "import json,sys; print(json.load(open(sys.argv[2] + '/summary.json'))[sys.argv[1]])" "$1" "$2"; }
near() { python3 -c "import sys; sys.exit(0 if abs(float(sys.argv[1]) - float(sys.argv[2])) < 1e-9 else 1)" "$1" "$2"; }

# ---- greedy: exact pass@1 / pass@k ---------------------------------------------------------
check '$BIN eval --small $G --benchmark $T/p.jsonl --mode small --samples 3 --temperature 0 --output $T/g >$T/g.out 2>$T/g.err'
check 'near $(summary pass@1 $T/g) 0.6666666666666666 && near $(summary pass@k $T/g) 0.6666666666666666'
check '[ "$(summary offload_share $T/g)" = 0 ] && [ "$(summary switches_per_sample $T/g)" = 0 ]'
check '[ "$(summary modelled_latency $T/g)" = None ] && [ "$(summary speedup_vs_small $T/g)" = None ]'
check 'grep -qE "^pass@3 +0.6667" $T/g.out'
check 'json_lines $T/g/samples.jsonl 9'
check 'python3 - $T/g/samples.jsonl <<EOF
import json, sys
want = ["problem_id", "sample", "completion", "prompt_ids", "ids", "owner", "answer", "correct",
        "small_tokens", "big_tokens", "switches", "modelled_latency", "wall_time_s"]
rows = [json.loads(l) for l in open(sys.argv[1])]
for r in rows:
    assert all(k in r for k in want), r.keys()
    assert r["completion"] == "The answer is \\\\boxed{42}.", r["completion"]
    assert len(r["owner"]) == len(r["ids"]) and set(r["owner"]) == {"s"}
    assert r["ids"][-1] == 151643 and r["prompt_ids"][0] == 151646      # EOS, BOS
    assert r["small_tokens"] == len(r["ids"]) and r["big_tokens"] == 0 and r["switches"] == 0
    assert r["modelled_latency"] is None and r["wall_time_s"] >= 0
ids = sorted({(json.dumps(r["problem_id"]), r["sample"]) for r in rows})
assert ids == sorted((p, s) for p in ["\"a\"", "1", "2"] for s in range(3)), ids
right = {json.dumps(r["problem_id"]): r["correct"] for r in rows}
assert right == {"\"a\"": True, "1": False, "2": True}, right    # 84/2 is 42 to the grader
EOF'

# the big model alone (mode big): its own answer, every token the big model's
check '$BIN eval --small $G --big $B --benchmark $T/p.jsonl --mode big --temperature 0 --output $T/bigrun >/dev/null 2>$T/bigrun.err'
check 'near $(summary pass@1 $T/bigrun) 0.3333333333333333 && [ "$(summary offload_share $T/bigrun)" = 1 ]'
check 'python3 -c "import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l); assert set(r[\"owner\"]) == {\"b\"} and r[\"small_tokens\"] == 0 and r[\"big_tokens\"] == len(r[\"ids\"])
" $T/bigrun/samples.jsonl'

# --system-prompt: another prompt, the same forced answers
check '$BIN eval --small $G --benchmark $T/p.jsonl --mode small --temperature 0 --system-prompt --output $T/sys >/dev/null 2>&1'
check 'near $(summary pass@1 $T/sys) 0.6666666666666666'
check '[ "$(head -1 $T/sys/samples.jsonl | python3 -c "import json,sys; print(len(json.load(sys.stdin)[\"prompt_ids\"]))")" -gt \
        "$(head -1 $T/g/samples.jsonl | python3 -c "import json,sys; print(len(json.load(sys.stdin)[\"prompt_ids\"]))")" ]'

# a shipped benchmark: the first 3 AIME 2024 problems, all wrong (42 is none of their answers)
check '$BIN eval --small $G --benchmark aime24 --limit 3 --mode small --temperature 0 --output $T/aime >/dev/null 2>&1'
check '[ "$(summary n_problems $T/aime)" = 3 ] && [ "$(summary pass@1 $T/aime)" = 0 ]'
check 'head -1 $T/aime/samples.jsonl | grep -q "^{\"problem_id\": 60, \"sample\": 0,"'

# ---- sampling: the summary is what the rows say ---------------------------------------------
check '$BIN eval --small $S --benchmark $T/p.jsonl --mode small --samples 8 --temperature 1 --seed 11 --batch 5 --output $T/s >$T/s.out 2>$T/s.err'
check 'python3 - $T/s <<EOF
import json, sys
from math import comb
d = sys.argv[1]
rows = [json.loads(l) for l in open(d + "/samples.jsonl")]
s = json.load(open(d + "/summary.json"))
assert len(rows) == 24 and len({(json.dumps(r["problem_id"]), r["sample"]) for r in rows}) == 24
c = {}
for r in rows:
    c[json.dumps(r["problem_id"])] = c.get(json.dumps(r["problem_id"]), 0) + r["correct"]
n, k = 8, 8
p1 = sum(v / n for v in c.values()) / 3
pk = sum(1 - comb(n - v, k) / comb(n, k) for v in c.values()) / 3
assert abs(s["pass@1"] - p1) < 1e-12 and abs(s["pass@k"] - pk) < 1e-12, (s, c)
assert 0 < c["\"a\""] < 8 and 0 < c["1"] < 8, c              # the coin lands both ways
assert all(r["correct"] == ("{42}" in r["completion"]) for r in rows if r["problem_id"] != 1)
assert s["k"] == 8 and s["n_problems"] == 3 and s["mode"] == "small" and s["settings"]["seed"] == 11
EOF'

# ---- --resume after a kill --------------------------------------------------------------------
cp -r $T/s $T/r
head -c $(( $(head -5 $T/s/samples.jsonl | wc -c) + 40 )) $T/s/samples.jsonl >$T/r/samples.jsonl  # 5 rows + a cut one
rm $T/r/summary.json
check '$BIN eval --small $S --benchmark $T/p.jsonl --mode small --samples 8 --temperature 1 --seed 11 --batch 3 --output $T/r --resume >/dev/null 2>$T/r.err'
check 'grep -q "partial last line" $T/r.err && grep -q "resuming: 5 of 24" $T/r.err'
check 'json_lines $T/r/samples.jsonl 24'
same_runs() {
  python3 - "$1" "$2" <<'EOF'
import json, sys
def rows(d):
    out = {}
    for l in open(d + "/samples.jsonl"):
        r = json.loads(l); r.pop("wall_time_s")
        key = (json.dumps(r["problem_id"]), r["sample"])
        assert key not in out, key
        out[key] = r
    return out
a, b = rows(sys.argv[1]), rows(sys.argv[2])
assert a == b, "rows differ"
sa, sb = (json.load(open(d + "/summary.json")) for d in sys.argv[1:3])
for s in (sa, sb):
    s.pop("wall_time_s"); s.pop("sample_wall_time_s")
assert sa == sb, (sa, sb)
EOF
}
check 'same_runs $T/s $T/r'
# rows that are not this run's are refused, naming the line (never silently re-decoded)
R2="$BIN eval --small $S --benchmark $T/p.jsonl --mode small --samples 8 --temperature 1 --seed 11 --resume"
cp -r $T/s $T/r2 && head -3 $T/s/samples.jsonl >$T/r2/samples.jsonl && head -1 $T/s/samples.jsonl >>$T/r2/samples.jsonl
expect_error resume_dup "samples.jsonl:4: problem_id \"a\" sample 0 is already on an earlier line" $R2 --output $T/r2
cp -r $T/s $T/r3 && sed -i '2s/"problem_id": "a"/"problem_id": "zz"/' $T/r3/samples.jsonl
expect_error resume_alien 'samples.jsonl:2: problem_id "zz" is not a problem of --benchmark' $R2 --output $T/r3
cp -r $T/s $T/r4 && sed -i '3s/"correct": [a-z]*/"correct": 1/' $T/r4/samples.jsonl
expect_error resume_bad_row "samples.jsonl:3: correct must be true or false" $R2 --output $T/r4
# a finished run resumed: nothing to decode, the same summary
check '$BIN eval --small $S --benchmark $T/p.jsonl --mode small --samples 8 --temperature 1 --seed 11 --output $T/r --resume >/dev/null 2>&1'
check 'same_runs $T/s $T/r'

# ---- split mode: the small model hands "72" to the big one ------------------------------------
# small: The answer is \boxed{ <bigmodel> ; after a 2 (the big model's last token, teacher-forced)
# </bigmodel> with p ~ 1 (small_close ends the span there), then }. EOS. big: { -> 7 -> 2.
# Skipped while the build has no split decoder (engine/split_shim_TEMP.c refuses the mode).
check '$FM --tokenizer assets/qwen2_tokenizer --out $T/ss "text:The answer is \\boxed{" "text:<bigmodel>" "at:2" "text:</bigmodel>" "text:}." eos 2>>$T/fm.err'
check '$FM --tokenizer assets/qwen2_tokenizer --out $T/sb --start-text "{" "text:72}." eos 2>>$T/fm.err'
$BIN eval --small $T/ss --big $T/sb --benchmark $T/p.jsonl --mode split --temperature 0 --output $T/split >/dev/null 2>$T/split.err
if grep -q "not in this build" $T/split.err; then
  echo "note: --mode split not checked: this build has no split decoder yet"
else
  check 'near $(summary pass@1 $T/split) 0.3333333333333333 && near $(summary switches_per_sample $T/split) 1'
  check 'near $(summary offload_share $T/split) 0.16666666666666666'   # 2 of 12 generated ids
  check 'python3 -c "import json,sys
for l in open(sys.argv[1]):
    r = json.loads(l)
    assert r[\"completion\"] == \"The answer is \\\\boxed{<bigmodel>72</bigmodel>}.\", r[\"completion\"]
    assert \"\".join(r[\"owner\"]) == \"sssssssbbsss\", r[\"owner\"]
    assert r[\"small_tokens\"] == 10 and r[\"big_tokens\"] == 2 and r[\"switches\"] == 1
    assert r[\"correct\"] == (r[\"problem_id\"] == 1)
" $T/split/samples.jsonl'
fi

# ---- modelled latency: summary = rows (checked once engine/latency.c and a table are there) --------
LT=configs/latency/h200_r1_distill_1.5b_7b.json
if [ -f $LT ] && ! grep -q "not in this build" $T/split.err; then
  check '$BIN eval --small $T/ss --big $T/sb --benchmark $T/p.jsonl --mode split --temperature 0 --latency-table $LT --output $T/lat >/dev/null 2>&1'
  check 'python3 - $T/lat <<EOF
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1] + "/samples.jsonl")]
s = json.load(open(sys.argv[1] + "/summary.json"))
t = sum(r["modelled_latency"] for r in rows)
ts = sum(r["modelled_latency_small_only"] for r in rows)
tb = sum(r["modelled_latency_big_only"] for r in rows)
assert t > 0 and 0 < ts < tb, (t, ts, tb)
assert abs(s["modelled_latency"] - t / len(rows)) < 1e-12 * t
assert abs(s["speedup_vs_small"] - ts / t) < 1e-12 and abs(s["speedup_vs_big"] - tb / t) < 1e-12
assert s["settings"]["latency_batch"] == 3
EOF'
  # with a table the batch size the latency is read at is a setting of the results
  expect_error resume_batch "latency_batch = 3, this run has 2" $BIN eval --small $T/ss --big $T/sb \
    --benchmark $T/p.jsonl --mode split --temperature 0 --latency-table $LT --output $T/lat --resume --batch 2
else
  echo "note: --latency-table not checked: this build has no latency tables yet"
fi

# ---- refusals: one line, the option or file named ---------------------------------------------
# every number option declares its range (as tests/cli_options.sh checks for the other commands)
check '$BIN eval --help >$T/help 2>&1 && ! grep -E "^  --[a-z0-9-]+ (N|X) " $T/help | grep -vqE "range [\[(]|one of: "'
expect_error clobber "--output .*already holds a run \(run.json\); add --resume" \
  $BIN eval --small $S --benchmark $T/p.jsonl --mode small --output $T/g
expect_error resume_other "--resume: .*run.json was written with temperature = 1, this run has 0.6" \
  $BIN eval --small $S --benchmark $T/p.jsonl --mode small --samples 8 --seed 11 --output $T/r --resume
expect_usage split_no_big "--mode split needs --big" $BIN eval --small $S --benchmark $T/p.jsonl --mode split
expect_usage resume_no_output "--resume needs --output" $BIN eval --small $S --benchmark $T/p.jsonl --mode small --resume
expect_usage bad_mode "--mode" $BIN eval --small $S --benchmark $T/p.jsonl --mode medium
expect_usage zero_samples "--samples" $BIN eval --small $S --benchmark $T/p.jsonl --mode small --samples 0
expect_error no_file "$T/none.jsonl" $BIN eval --small $S --benchmark $T/none.jsonl --mode small
printf '%s\n' '{"problem": "P", "answer": "1"}' '{"problem": "Q"}' >"$T/bad.jsonl"
expect_error bad_file "bad.jsonl:2: row has no answer" $BIN eval --small $S --benchmark $T/bad.jsonl --mode small
expect_error no_data "SR_DATA=$T/nodata is not a directory" env SR_DATA=$T/nodata $BIN eval --small $S --benchmark aime24 --mode small
check '[ ! -e $T/nodata ]'
cli_done
