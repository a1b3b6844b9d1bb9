#!/usr/bin/env bash
# GRPO end to end through the command on the demo task: split rollouts (a tagged small policy +
# the shipped big model) with the latency reward -> checkpoints, every metric name, the rollout
# logs, plot; kill -9 after a checkpoint then resume = the uninterrupted run bit for bit
# (weights and metrics.jsonl, wall-time fields aside); small rollouts with dynamic sampling
# (rounds used, batch refilled to its size); the errors grpo must give (missing dataset, bad
# loss_type, split without the big model, save_steps inside a generation's window): non-zero
# exit, one line naming the problem; a NaN step stops naming the step and the tensor.
. "$(dirname "$0")/shell_lib.sh" cli_grpo
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
expect_error() { local name=$1 pat=$2; shift 2; expect_exit "$name" '[1-9][0-9]*' "$pat" "$@"; }

check '$BIN task --out $T/task --n-train 64 --n-heldout 4 >/dev/null 2>&1'
D=$T/task/train.jsonl
POLICY=tests/fixtures/demo_task_small_tagged
# 6 steps of 2 prompts x 4 completions, split rollouts, a checkpoint every 2 steps
ARGS=(--config configs/grpo/tiny_cpu.json --model-name-or-path $POLICY --big-model-name-or-path assets/demo_task/big
      --dataset-path $D --max-steps 6 --save-steps 2 --save-total-limit 0 --num-generations 4
      --per-device-train-batch-size 8 --max-completion-length 120 --logging-steps 1)

R=$T/run
check '$BIN grpo "${ARGS[@]}" --output-dir $R >$T/run.out 2>$T/run.err'
check 'grep -q "grpo: steps 0 -> 6 of 6" $T/run.out'
check '[ -f $R/checkpoint-2/DONE ] && [ -f $R/checkpoint-4/DONE ] && [ -f $R/checkpoint-6/DONE ]'
check 'ls $R/runs/events.out.tfevents.* >/dev/null 2>&1'
check 'json_lines $R/metrics.jsonl 6'
for k in reward reward_std rewards/accuracy/mean rewards/accuracy/std rewards/format/mean rewards/latency/mean \
         rewards/latency/std completions/mean_length completions/min_length completions/max_length \
         completions/clipped_ratio kl entropy clip_ratio/low_mean clip_ratio/high_mean clip_ratio/region_mean \
         frac_reward_zero_std learning_rate grad_norm loss num_tokens accuracy offload_share \
         spans_per_completion switches_per_completion modelled_latency generation_seconds training_seconds \
         sampling/sampling_logp_difference/mean sampling/importance_sampling_ratio/mean; do
  check "grep -q '\"$k\":' $R/metrics.jsonl"
done
# split rollouts offloaded something and paid for it: a positive share and a negative latency reward
check 'python3 -c "
import json, sys
rows = [json.loads(l) for l in open(\"$R/metrics.jsonl\")]
r = rows[0]
sys.exit(0 if r[\"offload_share\"] > 0 and r[\"rewards/latency/mean\"] < 0 and r[\"modelled_latency\"] > 0 else 1)"'
# the trainer's log-probs of the policy's own tokens (prompt + the completion with the big model's
# spans as context) are the sampler's: a context rebuilt wrongly would show here
check 'python3 -c "
import json, sys
rows = [json.loads(l) for l in open(\"$R/metrics.jsonl\")]
d = [r[\"sampling/sampling_logp_difference/max\"] for r in rows]
sys.exit(0 if all(x is not None and x < 1e-3 for x in d) else 1)"'
# one rollout file per generation, 8 lines each with the accounting
for s in 1 2 3 4 5 6; do check "[ -s $R/rollouts/step-00000$s.jsonl.zst ]"; done
check '[ "$(head -c 4 $R/rollouts/step-000001.jsonl.zst | od -An -tx1 | tr -d " ")" = 28b52ffd ]'
if command -v zstd >/dev/null 2>&1; then
  zstd -dcq $R/rollouts/step-000001.jsonl.zst >$T/roll1.jsonl
  check 'json_lines $T/roll1.jsonl 8'
  check 'python3 -c "
import json, sys
rows = [json.loads(l) for l in open(\"$T/roll1.jsonl\")]
keys = {\"prompt_id\", \"completion\", \"rewards\", \"advantage\", \"small_tokens\", \"big_tokens\", \"switches\",
        \"offload_share\", \"modelled_latency\"}
ok = all(keys <= set(r) for r in rows) and all(set(r[\"rewards\"]) == {\"accuracy\", \"format\", \"latency\"} for r in rows)
ok = ok and any(r[\"big_tokens\"] > 0 for r in rows) and abs(sum(r[\"advantage\"] for r in rows)) < 1e-9
sys.exit(0 if ok else 1)"'
fi
check '$BIN plot $R >/dev/null 2>&1 && grep -q "reward" $R/curves.svg && grep -q "<polyline" $R/curves.svg'

# kill -9 as soon as checkpoint-2 is complete, resume from the latest: the same weights and metrics
K=$T/killed
$BIN grpo "${ARGS[@]}" --output-dir $K >$T/k1.out 2>$T/k1.err &
pid=$!
for _ in $(seq 1 3000); do [ -f $K/checkpoint-2/DONE ] && break; kill -0 $pid 2>/dev/null || break; sleep 0.01; done
kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
check '[ -f $K/checkpoint-2/DONE ] && [ ! -f $K/checkpoint-6/DONE ]'
check '$BIN grpo "${ARGS[@]}" --output-dir $K --resume-from-checkpoint true >$T/k2.out 2>$T/k2.err'
check 'grep -qE "grpo: steps [24] -> 6 of 6" $T/k2.out'
check 'cmp -s $R/checkpoint-6/model.safetensors $K/checkpoint-6/model.safetensors'
same_metrics() {
  python3 -c '
import json, sys
def rows(p):
    out = []
    for line in open(p):
        r = json.loads(line)
        out.append({k: v for k, v in r.items() if not k.endswith("_seconds")})
    return out
sys.exit(0 if rows(sys.argv[1]) == rows(sys.argv[2]) else 1)' "$1" "$2"
}
check 'same_metrics $R/metrics.jsonl $K/metrics.jsonl'
# the same again with the kill inside the writing of checkpoint 4 (checkpoint-2 stays the latest)
K2=$T/killed2
(SR_TEST_KILL_IN_CHECKPOINT=4 timeout 120 $BIN grpo "${ARGS[@]}" --output-dir $K2 >/dev/null 2>&1; true) 2>/dev/null
check '[ -f $K2/checkpoint-2/DONE ] && [ ! -f $K2/checkpoint-4/DONE ]'
check '$BIN grpo "${ARGS[@]}" --output-dir $K2 --resume-from-checkpoint true >$T/k3.out 2>&1'
check 'cmp -s $R/checkpoint-6/model.safetensors $K2/checkpoint-6/model.safetensors'
check 'same_metrics $R/metrics.jsonl $K2/metrics.jsonl'
# a different seed gives different rollouts (the test above can fail)
check '$BIN grpo "${ARGS[@]}" --output-dir $T/seed2 --seed 7 --max-steps 2 --save-steps 2 --entropy-max-tokens 0 >/dev/null 2>&1'
check 'grep -q "\"entropy\":null" $T/seed2/metrics.jsonl && ! grep -q "\"entropy\":null" $R/metrics.jsonl'
check '! cmp -s $R/rollouts/step-000001.jsonl.zst $T/seed2/rollouts/step-000001.jsonl.zst'

# small rollouts, the accuracy reward alone (flat groups): dynamic sampling decodes its 3 rounds
# and still trains on a full batch; beta > 0 loads the reference
S=$T/small
check '$BIN grpo "${ARGS[@]}" --output-dir $S --rollout-mode small --reward-funcs "[\"accuracy\"]" --reward-weights null \
  --dynamic-sampling true --dynamic-sampling-max-rounds 3 --beta 0.04 --max-steps 2 --save-steps 2 >$T/small.out 2>$T/small.err'
check 'grep -q "\"dynamic_sampling_rounds\":3" $S/metrics.jsonl'
check 'grep -q "\"kl\":" $S/metrics.jsonl'
if command -v zstd >/dev/null 2>&1; then
  zstd -dcq $S/rollouts/step-000002.jsonl.zst >$T/roll_s.jsonl
  check 'json_lines $T/roll_s.jsonl 8'
  check '[ $(grep -c "\"big_tokens\": 0" $T/roll_s.jsonl) -lt 8 ] || ! grep -q "<bigmodel>" $T/roll_s.jsonl'
fi

# one generation reused: steps_per_generation 2 x num_iterations 2 = 4 steps on one rollout file,
# the later ones with old log-probs (the policy moved: some ratios leave the clip region)
I=$T/iter
check '$BIN grpo "${ARGS[@]}" --output-dir $I --per-device-train-batch-size 4 --steps-per-generation 2 \
  --num-iterations 2 --max-steps 4 --save-steps 4 --learning-rate 3e-3 >/dev/null 2>&1'
check '[ "$(ls $I/rollouts)" = step-000001.jsonl.zst ] && json_lines $I/metrics.jsonl 4'
check 'python3 -c "
import json, sys
rows = [json.loads(l) for l in open(\"$I/metrics.jsonl\")]
sys.exit(0 if rows[0][\"clip_ratio/region_mean\"] == 0 and max(r[\"clip_ratio/region_mean\"] for r in rows) > 0 else 1)"'

# errors: one line naming the problem
expect_error no_data "nope.jsonl" $BIN grpo "${ARGS[@]}" --output-dir $T/e1 --dataset-path $T/nope.jsonl
expect_error bad_loss "loss-type" $BIN grpo "${ARGS[@]}" --output-dir $T/e2 --loss-type ppo
expect_error no_big "big_model_name_or_path" $BIN grpo --config configs/grpo/tiny_cpu.json --model-name-or-path $POLICY \
  --big-model-name-or-path null --dataset-path $D --output-dir $T/e3
expect_error save_window "save_steps" $BIN grpo "${ARGS[@]}" --output-dir $T/e4 --num-iterations 2 --save-steps 3
expect_error bad_reward "reward-funcs" $BIN grpo "${ARGS[@]}" --output-dir $T/e5 --reward-funcs '["speed"]'
check '[ ! -e $T/e1 ] || [ -z "$(ls $T/e1)" ]'
# a step gone non-finite (a huge learning rate): stopped naming the step and the tensor
expect_error nonfinite "step [0-9]+: the loss is -?(nan|inf).*lm_head" $BIN grpo "${ARGS[@]}" --output-dir $T/e6 \
  --learning-rate 1e30 --max-grad-norm 0 --max-steps 3 --save-steps 1
check '[ -f $T/e6/checkpoint-1/DONE ] && grep -q "\"bad_gradient\"" $T/e6/metrics.jsonl'

cli_done
