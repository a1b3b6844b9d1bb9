#!/usr/bin/env bash
# splitreason grpo-loss: the printed object against TRL's fixture (tests/fixtures/grpo, made by
# scripts/make_grpo_fixtures.py) for a --config file and --key overrides, the output contract
# (one strict JSON object: loss, advantages, kl, clip_ratio, grad_norm, grads by HF name), and
# one-line errors naming the file or option for bad batches and settings.
. "$(dirname "$0")/shell_lib.sh" cli_grpo_loss
cd "$(dirname "$0")/.."
FX=tests/fixtures/grpo

# a case's settings as a --config file, run, compare with TRL's numbers
compare() { # NAME CASE BATCH [extra args...]
  local name=$1 case=$2 batch=$3 cfgcase=${CFGCASE:-$2}; shift 3
  python3 -c '
import json, sys
c = [c for c in json.load(open(sys.argv[1]))["cases"] if c["name"] == sys.argv[2]][0]
cfg = {k: v for k, v in c["config"].items()}
json.dump(cfg, open(sys.argv[3], "w"))' "$FX/cases.json" "$cfgcase" "$T/$name.json"
  if ! "$BIN" grpo-loss --model $FX/model --batch "$FX/$batch" --config "$T/$name.json" "$@" \
      >"$T/$name.out" 2>"$T/$name.err"; then
    bad "$name: exit $? ($(tail -n 1 "$T/$name.err"))"; return
  fi
  if ! json_lines "$T/$name.out" 1; then bad "$name: not one strict JSON line"; return; fi
  if python3 -c '
import json, math, sys
out = json.load(open(sys.argv[1]))
c = [c for c in json.load(open(sys.argv[2]))["cases"] if c["name"] == sys.argv[3]][0]
errs = []
if abs(out["loss"] - c["loss"]) > 1e-5: errs.append("loss %r vs %r" % (out["loss"], c["loss"]))
if len(out["advantages"]) != len(c["advantages"]) or any(abs(a - b) > 1e-4 for a, b in zip(out["advantages"], c["advantages"])):
    errs.append("advantages")
if abs(out["kl"] - c["kl"]) > 1e-5: errs.append("kl")
if abs(out["clip_ratio"] - c["clip_ratio"]["region_mean"]) > 1e-6: errs.append("clip_ratio")
if set(out["grads"]) != set(c["grads"]): errs.append("grad names")
for k, v in c["grads"].items():
    if abs(out["grads"].get(k, -1) - v) > 1e-3 * v + 1e-9: errs.append("grad " + k)
if abs(out["grad_norm"] - c["grad_norm"]) > 1e-3 * c["grad_norm"]: errs.append("grad_norm")
for k in ("kl", "clip_ratio/low_mean", "clip_ratio/high_mean", "clip_ratio/region_mean", "reward", "num_items_in_batch"):
    if k not in out["metrics"]: errs.append("metric " + k)
print("; ".join(errs), file=sys.stderr)
sys.exit(1 if errs else 0)' "$T/$name.out" "$FX/cases.json" "$case" 2>"$T/$name.cmp"; then ok
  else bad "$name: $(cat "$T/$name.cmp")"; fi
}

compare grpo grpo_b0.04_group batch.jsonl
compare dr_grpo dr_grpo_b0.0_none batch.jsonl
compare dapo_batch dapo_b0.04_batch batch.jsonl
compare is_token is_token_truncate_dapo batch_is.jsonl
compare is_seq is_sequence_mask_dr_grpo batch_is.jsonl
compare mask mask_dapo_b0.04_batch batch_mask.jsonl --batch-tokens 10
# --key overrides win over the file: grpo's settings with --loss-type bnpo give TRL's bnpo
CFGCASE=grpo_b0.04_group compare override bnpo_b0.04_group batch.jsonl --loss-type bnpo
# the fixture's model has no tokenizer: none is needed; output to a file
"$BIN" grpo-loss --model $FX/model --batch $FX/batch.jsonl --output "$T/out.json" 2>/dev/null \
  && json_lines "$T/out.json" 1 && ok || bad "--output"

# --ref-model for rows without ref_logprobs: the policy itself as reference (at the same
# temperature, row for row) gives a KL of exactly 0, in one pass or in micro-batches
python3 -c '
import json
for l in open("'$FX'/batch.jsonl"):
    r = json.loads(l); del r["ref_logprobs"]; print(json.dumps(r))' >"$T/noref.jsonl"
for bt in 16384 9; do
  "$BIN" grpo-loss --model $FX/model --ref-model $FX/model --batch "$T/noref.jsonl" --beta 0.04 \
    --temperature 0.7 --batch-tokens $bt >"$T/ref$bt.out" 2>/dev/null
  check 'python3 -c "import json,sys; d=json.load(open(\"$T/ref$bt.out\")); sys.exit(0 if d[\"kl\"]==0 and d[\"grad_norm\"]>0 else 1)"'
done
# a reference that differs (lm_head scaled by 1.5): a positive KL, the same in micro-batches
mkdir -p "$T/ref" && cp $FX/model/config.json "$T/ref/" && python3 -c '
import array, json, struct, sys
raw = open(sys.argv[1], "rb").read()
n = struct.unpack("<Q", raw[:8])[0]
head = json.loads(raw[8:8 + n]); data = bytearray(raw[8 + n:])
a, b = head["lm_head.weight"]["data_offsets"]
w = array.array("f", bytes(data[a:b])); w = array.array("f", [x * 1.5 for x in w])
data[a:b] = w.tobytes()
open(sys.argv[2], "wb").write(raw[:8 + n] + bytes(data))' $FX/model/model.safetensors "$T/ref/model.safetensors"
for bt in 16384 9; do
  "$BIN" grpo-loss --model $FX/model --ref-model "$T/ref" --batch "$T/noref.jsonl" --beta 0.04 \
    --temperature 0.7 --batch-tokens $bt >"$T/refx$bt.out" 2>/dev/null
done
check 'python3 -c "import json,sys; a=json.load(open(\"$T/refx16384.out\")); b=json.load(open(\"$T/refx9.out\")); sys.exit(0 if a[\"kl\"]>1e-3 and abs(a[\"kl\"]-b[\"kl\"])<1e-6 and abs(a[\"loss\"]-b[\"loss\"])<1e-6 else 1)"'
# without either, the reference is the policy itself (TRL's before any update)
"$BIN" grpo-loss --model $FX/model --batch "$T/noref.jsonl" --beta 0.04 --temperature 0.7 >"$T/self.out" 2>/dev/null
check 'python3 -c "import json,sys; d=json.load(open(\"$T/self.out\")); sys.exit(0 if d[\"kl\"]==0 else 1)"'

# every "none" reward: no signal at all, loss 0 and no gradient
python3 -c '
import json
for l in open("'$FX'/batch.jsonl"):
    r = json.loads(l); r["reward"] = None; print(json.dumps(r))' >"$T/none.jsonl"
"$BIN" grpo-loss --model $FX/model --batch "$T/none.jsonl" >"$T/none.out" 2>/dev/null
check 'python3 -c "import json,sys; d=json.load(open(\"$T/none.out\")); sys.exit(0 if d[\"loss\"]==0 and all(a==0 for a in d[\"advantages\"]) and d[\"grad_norm\"]==0 else 1)"'

# bad input: one line naming the file (exit 1) or the option (exit 2)
bad_row() { # NAME PYTHON-EXPR-ON-r PATTERN
  python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
r = rows[2]
exec(sys.argv[2])
for x in rows: print(json.dumps(x))' "$FX/batch.jsonl" "$2" >"$T/$1.jsonl"
  expect_exit "$1" 1 "$3" "$BIN" grpo-loss --model $FX/model --batch "$T/$1.jsonl"
}
bad_row id_range 'r["completion_ids"][0] = 99' 'id_range.jsonl: row 3: token id 99 is outside'
bad_row id_neg 'r["prompt_ids"][1] = -1' 'id_neg.jsonl:3: "prompt_ids"\[1\] is not a token id'
bad_row no_prompt 'r["prompt_ids"] = []' 'no_prompt.jsonl:3: "prompt_ids" is empty'
bad_row reward 'r["reward"] = "high"' 'reward.jsonl:3: "reward" must be a finite number or null'
bad_row group 'r["group"] = [1]' 'group.jsonl:3: "group" must be a number or a string'
bad_row old_len 'r["old_logprobs"] = r["old_logprobs"][:-1]' 'old_len.jsonl:3: "old_logprobs" must be an array of 3 numbers'
bad_row old_pos 'r["old_logprobs"][0] = 0.5' 'old_pos.jsonl:3: "old_logprobs"\[0\] is not a log-prob'
bad_row trunc 'r["truncated"] = "yes"' 'trunc.jsonl:3: "truncated" must be true or false'
bad_row mask_len 'r["loss_mask"] = [1]' 'mask_len.jsonl:3: "loss_mask" must be an array of 3 zeros and ones'
bad_row mask_val 'r["loss_mask"] = [1, 2, 1]' 'mask_val.jsonl:3: "loss_mask"\[1\] must be 0 or 1'
bad_row sampling 'r["sampling_logprobs"] = [-1.0] * len(r["completion_ids"])' 'sampling_logprobs must be given on every row or on none'
printf '{"group": 0, "prompt_ids": [1]\n' >"$T/trunc_json.jsonl"
expect_exit trunc_json 1 'trunc_json.jsonl:1' "$BIN" grpo-loss --model $FX/model --batch "$T/trunc_json.jsonl"
: >"$T/empty.jsonl"
expect_exit empty 1 'empty.jsonl: no rows' "$BIN" grpo-loss --model $FX/model --batch "$T/empty.jsonl"
expect_exit missing 1 'nope.jsonl' "$BIN" grpo-loss --model $FX/model --batch "$T/nope.jsonl"
expect_exit no_model 1 'nope' "$BIN" grpo-loss --model "$T/nope" --batch $FX/batch.jsonl
expect_exit loss_type 2 'loss_type|loss-type' "$BIN" grpo-loss --model $FX/model --batch $FX/batch.jsonl --loss-type ppo
expect_exit temperature 2 'temperature' "$BIN" grpo-loss --model $FX/model --batch $FX/batch.jsonl --temperature 0
expect_exit epsilon 2 'epsilon' "$BIN" grpo-loss --model $FX/model --batch $FX/batch.jsonl --epsilon -0.1
expect_exit unknown 2 'loss_typ|loss-typ' "$BIN" grpo-loss --model $FX/model --batch $FX/batch.jsonl --loss-typ grpo
# a run's GRPOConfig file is accepted as it is (keys that do not change one step's loss)
printf '{"loss_type": "grpo", "beta": 0.04, "epsilon_high": 0.28, "temperature": 0.7, "max_completion_length": 8, "mask_truncated_completions": true, "num_generations": 4, "learning_rate": 1e-6, "gradient_accumulation_steps": 4, "steps_per_generation": 4, "per_device_train_batch_size": 2, "seed": 42, "top_p": 1.0, "top_k": -1, "max_prompt_length": 512}' >"$T/run.json"
"$BIN" grpo-loss --model $FX/model --batch $FX/batch.jsonl --config "$T/run.json" >"$T/run.out" 2>/dev/null
check 'python3 -c "import json,sys; d=json.load(open(\"$T/run.out\")); c=[c for c in json.load(open(\"$FX/cases.json\"))[\"cases\"] if c[\"name\"]==\"grpo_b0.04_group\"][0]; sys.exit(0 if abs(d[\"loss\"]-c[\"loss\"])<1e-5 else 1)"'
expect_exit num_gen 1 'batch.jsonl: group 1 \(in order of appearance\) has 4 rows, num_generations is 3' "$BIN" grpo-loss --model $FX/model --batch $FX/batch.jsonl --num-generations 3
# GRPOConfig's boolean scale_rewards: true is group, false is none
"$BIN" grpo-loss --model $FX/model --batch $FX/batch.jsonl --config "$T/run.json" --scale-rewards false >"$T/srf.out" 2>/dev/null
check 'python3 -c "import json,sys; d=json.load(open(\"$T/srf.out\")); c=[c for c in json.load(open(\"$FX/cases.json\"))[\"cases\"] if c[\"name\"]==\"grpo_b0.04_none\"][0]; sys.exit(0 if abs(d[\"loss\"]-c[\"loss\"])<1e-5 else 1)"'
expect_exit scale 2 'scale_rewards: must be one of group, batch, none' "$BIN" grpo-loss --model $FX/model --batch $FX/batch.jsonl --scale-rewards 3
# use_vllm false: TRL makes no importance-sampling correction, so neither do we
"$BIN" grpo-loss --model $FX/model --batch $FX/batch_is.jsonl --use-vllm false >"$T/novllm.out" 2>/dev/null
check 'python3 -c "import json,sys; d=json.load(open(\"$T/novllm.out\")); sys.exit(0 if \"sampling/importance_sampling_ratio/mean\" not in d[\"metrics\"] else 1)"'
expect_exit need_batch 2 'batch' "$BIN" grpo-loss --model $FX/model
cli_done
