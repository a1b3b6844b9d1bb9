#!/usr/bin/env bash
# The SFT stage end to end through the command, on the real tokenizer and the shipped annotated
# sample: init (a micro Qwen2) -> prepare (train + held-out) -> sft (a few steps with evals,
# checkpoints, TensorBoard) -> export -> plot, and the errors sft must give (shards longer than
# max_length, a missing dataset, an unknown setting): non-zero exit, one line naming the problem.
. "$(dirname "$0")/shell_lib.sh" cli_sft
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
expect_error() { local name=$1 pat=$2; shift 2; expect_exit "$name" '[1-9][0-9]*' "$pat" "$@"; }

cat >"$T/micro.json" <<'JSON'
{"architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "hidden_act": "silu",
 "vocab_size": 151936, "hidden_size": 16, "intermediate_size": 32, "num_hidden_layers": 1,
 "num_attention_heads": 2, "num_key_value_heads": 1, "max_position_embeddings": 512,
 "rope_theta": 10000.0, "rms_norm_eps": 1e-06, "initializer_range": 0.02,
 "tie_word_embeddings": true, "bos_token_id": 151646, "eos_token_id": 151643, "torch_dtype": "float32"}
JSON
M="$T/model"
check '$BIN init --model-config $T/micro.json --tokenizer assets/qwen2_tokenizer --seed 1 --out $M 2>/dev/null'
check '$BIN prepare --tokenizer $M --input assets/demo/sft_train.jsonl.zst --output $T/train --max-length 128 >$T/prep.out 2>/dev/null'
check '$BIN prepare --tokenizer $M --input assets/demo/sft_eval.jsonl.zst --output $T/eval --max-length 128 >/dev/null 2>&1'
check 'grep -q "77 rows" $T/prep.out'

R="$T/run"
check '$BIN sft --config configs/sft/tiny_cpu.json --model-name-or-path $M --dataset-path $T/train \
  --eval-dataset-path $T/eval --output-dir $R --max-length 128 --max-steps 4 --save-steps 2 --eval-steps 2 \
  --logging-steps 1 --per-device-eval-batch-size 16 >$T/sft.out 2>$T/sft.err'
check '[ $(grep -c "\"loss\"" $R/metrics.jsonl) -eq 4 ]'
check '[ $(grep -c "\"eval_loss\"" $R/metrics.jsonl) -eq 3 ]'   # on start, at 2 and at 4
check 'grep -q "\"eval_bigmodel_open_precision\"" $R/metrics.jsonl'
check '[ -f $R/checkpoint-4/DONE ] && [ ! -e $R/checkpoint-2 ]'  # save_total_limit 1
check 'ls $R/runs/events.out.tfevents.* >/dev/null 2>&1'
check 'grep -q "held-out loss" $T/sft.out'
check 'grep -q "eval at step 4" $T/sft.err'
for f in config.json model.safetensors generation_config.json tokenizer.json tokenizer_config.json \
         optimizer-rank00000-of-00001.safetensors trainer_state.json; do
  check "[ -s $R/checkpoint-4/$f ]"
done
check 'grep -qE "\"global_step\":[[:space:]]*4," $R/checkpoint-4/trainer_state.json'

# export the trainer's checkpoint as an HF model directory
check '$BIN export $R/checkpoint-4 --out $T/export --dtype fp32 >/dev/null 2>&1'
for f in config.json generation_config.json model.safetensors tokenizer.json tokenizer_config.json; do
  check "[ -s $T/export/$f ]"
done
check '[ ! -e $T/export/optimizer-rank00000-of-00001.safetensors ]'
check 'grep -q "<bigmodel>" $T/export/tokenizer.json'

# plot
check '$BIN plot $R >/dev/null 2>&1 && grep -q "<polyline" $R/curves.svg && grep -q "</svg>" $R/curves.svg'

# errors
expect_error too_long "max_length 64" $BIN sft --model-name-or-path $M --dataset-path $T/train --output-dir $T/e1 --max-length 64
expect_error no_data "missing|cannot open|No such" $BIN sft --model-name-or-path $M --dataset-path $T/nope --output-dir $T/e2 --max-length 128
expect_error unknown_key "typo_key" $BIN sft --typo-key 1
# a max_length past what a shard can hold: refused before anything is allocated for it
expect_error prep_max_len "max-length: 1073741824 is out of range" \
  $BIN prepare --tokenizer $M --input assets/demo/sft_train.jsonl.zst --output $T/e3 --max-length 1073741824
# a trainer_state.json with global_step 1e12: the file and the field named
cp -r $R/checkpoint-4 $T/bad_state && sed -i -E 's/"global_step":[[:space:]]*4,/"global_step": 1e12,/' $T/bad_state/trainer_state.json
expect_error bad_state "bad_state/trainer_state.json: global_step must be an integer in \[0, 1000000000\]" \
  $BIN sft --config configs/sft/tiny_cpu.json --model-name-or-path $M --dataset-path $T/train --eval-dataset-path $T/eval \
  --output-dir $T/e4 --max-length 128 --max-steps 4 --resume-from-checkpoint $T/bad_state
expect_error plot_empty "metrics" $BIN plot $T/nope

cli_done
