#!/usr/bin/env bash
# Makes the demo's annotated sample, assets/demo/sft_{train,eval}.jsonl.zst, from real
# reasoning traces with the project's own tools (run from the repository root after a build):
#
#   bash scripts/make_demo_data.sh            # SR_BIN=build/splitreason SR_DATA=../shared/data
#
# Traces: the 93 correct DeepSeek-R1-Distill-Qwen-1.5B greedy MATH-500 traces of R2A
# (../shared/data/r2a_math500_r1distill_greedy, see its SOURCE.md; MIT). Annotation:
# `splitreason annotate --method gap` with two RANDOMLY initialised tiny Qwen2s (`init`,
# seeds 1 and 2) as the "small" and "big" model, spans snapped to whole lines, 20 % of each
# trace's tokens. The models know nothing, so the spans mark arbitrary lines: the sample
# exercises the pipeline (annotate -> prepare -> sft -> export) and gives the tiny SFT model a
# structure to learn (tags open and close at line starts, about a fifth of the text inside),
# not a judgement of difficulty. The judge method (an LLM) or two real models make
# meaningful spans; neither is reachable on the machines this sample was made on.
# Split: the first 77 annotated rows train, the last 16 are held out. Only the fields the
# pipeline reads are kept (problem, annotated, spans, offload, unique_id, level, subject).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${SR_BIN:-$ROOT/build/splitreason}
DATA=${SR_DATA:-$ROOT/../shared/data}
OUT=${OUT:-$ROOT/assets/demo}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

"$BIN" init --model-config "$ROOT/configs/tiny_qwen2.json" --tokenizer "$ROOT/assets/qwen2_tokenizer" \
    --seed 1 --out "$WORK/small"
jq '.hidden_size = 128 | .intermediate_size = 352 | .num_hidden_layers = 4' \
    "$ROOT/configs/tiny_qwen2.json" > "$WORK/big_config.json"
"$BIN" init --model-config "$WORK/big_config.json" --tokenizer "$ROOT/assets/qwen2_tokenizer" \
    --seed 2 --out "$WORK/big"

"$BIN" annotate --method gap --small "$WORK/small" --big "$WORK/big" \
    --input "$DATA/r2a_math500_r1distill_greedy/df_attention_analysis_MATH500_greedy.jsonl" \
    --field response --correct-field is_answer_correct --select first_correct \
    --trace-from "<think>" --trace-strip-suffix "<｜end▁of▁sentence｜>" \
    --where "model=qwen-1p5B-withR" --snap line --target-fraction 0.2 \
    --output "$WORK/annotated.jsonl"

jq -c '{unique_id, level, subject, problem, annotated, spans, offload}' "$WORK/annotated.jsonl" > "$WORK/slim.jsonl"
n=$(wc -l < "$WORK/slim.jsonl")
head -n $((n - 16)) "$WORK/slim.jsonl" | zstd -q -19 -f -o "$OUT/sft_train.jsonl.zst"
tail -n 16 "$WORK/slim.jsonl" | zstd -q -19 -f -o "$OUT/sft_eval.jsonl.zst"
jq '.' "$WORK/annotated.jsonl.summary.json" > "$OUT/sft_annotation_summary.json" 2>/dev/null || true
ls -l "$OUT"/sft_*
