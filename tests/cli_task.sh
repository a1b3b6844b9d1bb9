#!/usr/bin/env bash
# splitreason task: the files and fields the rest of the toolkit reads (OpenR1 rows + hard_spans
# + annotated), determinism, disjoint splits, bad options, and prepare taking the rows unchanged
# (tagged by default, plain with --completion-field solution).
. "$(dirname "$0")/shell_lib.sh" cli_task

"$BIN" task --out "$T/a" --n-train 300 --n-heldout 60 --seed 3 2>"$T/a.err"
check '[ $? -eq 0 ]'
check 'json_lines "$T/a/train.jsonl" 300'
check 'json_lines "$T/a/heldout.jsonl" 60'
check 'json_lines "$T/a/task.json" 1'
# the problems of a split are distinct (eval refuses repeated ids); 2000 held-out draws repeated
# some before the generator skipped repeats
"$BIN" task --out "$T/u" --n-train 1 --n-heldout 2000 --seed 1 2>/dev/null
check 'python3 -c "import json,sys; u=[json.loads(l)[\"uuid\"] for l in open(sys.argv[1])]; sys.exit(len(u) != 2000 or len(set(u)) != 2000)" "$T/u/heldout.jsonl"'
"$BIN" task --out "$T/b" --n-train 300 --n-heldout 60 --seed 3 2>/dev/null
check 'cmp -s "$T/a/train.jsonl" "$T/b/train.jsonl" && cmp -s "$T/a/heldout.jsonl" "$T/b/heldout.jsonl"'
"$BIN" task --out "$T/c" --n-train 300 --n-heldout 60 --seed 4 2>/dev/null
check '! cmp -s "$T/a/train.jsonl" "$T/c/train.jsonl"'

# every row: the fields, the spans on the f-lines, annotated = solution with the spans tagged,
# the answer boxed; no held-out problem in either train set
python3 - "$T/a" "$T/c" >"$T/rows.out" 2>&1 <<'EOF'
import json, re, sys
a, c = sys.argv[1], sys.argv[2]
rows = {s: [json.loads(l) for l in open("%s/%s.jsonl" % (a, s))] for s in ("train", "heldout")}
train_c = {json.loads(l)["problem"] for l in open(c + "/train.jsonl")}
bad = []
for split, rs in rows.items():
    for r in rs:
        sol = r["solution"]
        if r["generations"] != [sol] or r["correctness_math_verify"] != [True]: bad.append("generations")
        if not r["uuid"].startswith("task-") or not sol.endswith("\\boxed{%s}" % r["answer"]): bad.append("uuid/answer")
        spans = r["hard_spans"]
        lines = [m.span() for m in re.finditer(r"[A-Z]\) [fghk] \d+ -> \d+\n", sol)]
        if [tuple(s) for s in spans] != lines or len(spans) != 2: bad.append("spans %s %s" % (spans, lines))
        ann = r["annotated"]
        if ann.replace("<bigmodel>", "").replace("</bigmodel>", "") != sol: bad.append("annotated text")
        # each tagged part is one or more whole hard lines
        for part in re.findall(r"<bigmodel>(.*?)</bigmodel>", ann, re.S):
            if not re.fullmatch(r"([A-Z]\) [fghk] \d+ -> \d+\n)+", part): bad.append("tagged " + part)
        if ann.count("<bigmodel>") != len(spans) - sum(spans[i][0] == spans[i - 1][1] for i in range(1, len(spans))):
            bad.append("tag count")
train = {r["problem"] for r in rows["train"]} | train_c
shared = [r["problem"] for r in rows["heldout"] if r["problem"] in train]
print("rows", sum(map(len, rows.values())), "bad", len(bad), bad[:3], "shared", len(shared))
sys.exit(1 if bad or shared else 0)
EOF
check '[ $? -eq 0 ] || { cat "$T/rows.out" >&2; false; }'

# prepare reads the rows unchanged: the tags by default, the plain solution on request
"$BIN" init --model-config configs/demo_task/small_qwen2.json --tokenizer assets/demo_task/tokenizer --out "$T/m" 2>/dev/null
check '[ -f "$T/m/model.safetensors" ]'
"$BIN" prepare --tokenizer "$T/m" --input "$T/a/train.jsonl" --output "$T/tagged" --max-length 1024 --strict >"$T/tagged.out" 2>/dev/null
check 'grep -q "300 rows -> 300 documents (0 malformed" "$T/tagged.out"'
pairs=$(python3 -c 'import json,sys; print(sum(json.loads(l)["annotated"].count("<bigmodel>") for l in open(sys.argv[1])))' "$T/a/train.jsonl")
check 'grep -q " $pairs tag pairs" "$T/tagged.out"'
"$BIN" prepare --tokenizer "$T/m" --input "$T/a/train.jsonl" --output "$T/plain" --completion-field solution --max-length 1024 --strict >"$T/plain.out" 2>/dev/null
check 'grep -q "300 rows -> 300 documents (0 malformed, 0 truncated, 0 dropped), 0 tag pairs" "$T/plain.out"'

# bad command lines: one line naming the option, exit 2
expect_exit hard_gt_steps 2 "--hard-steps 5 is more than --steps 3" "$BIN" task --out "$T/x" --steps 3 --hard-steps 5
expect_exit steps_range 2 "--steps" "$BIN" task --out "$T/x" --steps 27
expect_exit no_out 2 "out" "$BIN" task
cli_done
