#!/usr/bin/env bash
# CPU throughput of the tiny SFT recipe (configs/sft/tiny_cpu.json: the demo's model, 1 x 512
# tokens per optimizer step) against transformers + a plain PyTorch training loop doing the same
# step on the same model (scripts/bench_sft_torch.py), alternated REPS times in one session.
#   bash scripts/bench_sft.sh [RUN_DIR=runs/demo] [STEPS=40] [REPS=3]
# Needs a finished `splitreason demo` (RUN_DIR/model, RUN_DIR/data/train) and the reference
# venv (PY=/root/refenv/bin/python, see scripts/requirements-ref.txt).
set -euo pipefail
D=${1:-runs/demo}; STEPS=${2:-40}; REPS=${3:-3}
BIN=${SR_BIN:-build/splitreason}; PY=${PY:-/root/refenv/bin/python}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
for i in $(seq "$REPS"); do
  "$BIN" sft --config configs/sft/tiny_cpu.json --model-name-or-path "$D/model" \
    --dataset-path "$D/data/train" --eval-dataset-path "" --eval-on-start false --eval-steps 0 \
    --output-dir "$T/run$i" --max-steps "$STEPS" --save-steps 1000000 --logging-steps "$STEPS" \
    --report-to none 2>&1 | grep '\[splitreason\] sft: steps' | sed 's/^/splitreason: /'
  "$PY" scripts/bench_sft_torch.py --model "$D/model" --steps "$STEPS" --seq 512 --batch 1 --lr 3e-3 \
    2>/dev/null | tail -n 1 | sed 's/^/torch:      /'
done
