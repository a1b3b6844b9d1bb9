#!/usr/bin/env bash
# GRPO optimizer steps/s on the CPU, `splitreason grpo` against TRL's GRPOTrainer
# (scripts/bench_grpo_trl.py: transformers generation, no vLLM), side by side in one run, on the
# demo task (`splitreason task` train.jsonl, seed 0) with the shipped small model
# (assets/demo_task/small, fp32), the same settings on both sides:
#   G completions per prompt, B completions (B / G prompts) per optimizer step,
#   gradient_accumulation_steps = steps_per_generation = num_iterations = 1, beta 0 (no
#   reference model), epsilon 0.2, temperature 1, top_p 1, top_k 0, max_completion_length L,
#   loss_type dapo, scale_rewards group, no importance-sampling correction (TRL applies it only
#   with vLLM), no gradient checkpointing (TRL 1.16 turns it on by default), fp32, the reward
#   accuracy alone, the recipe's learning rate at a constant schedule, AdamW without weight decay,
#   grad norm clipped at 1, THREADS threads on both sides (OMP_NUM_THREADS and
#   torch.set_num_threads), N optimizer steps of which the first is warm-up. G, B, L, the prompt
#   limit P and the learning rate default to the tiny recipe's (CONFIG). Prompts (at most ~120
#   tokens) are never truncated: TRL 1.16 has no max_prompt_length (the peer script refuses a
#   prompt over P instead).
# Ours runs the small rollout mode (the small model writes everything; the tags, if any, are
# only priced), which is what TRL does.
#
# Figures per side (alternated REPS times, best kept):
#   steps/s            (N - 1) / wall seconds of steps 2..N
#                      ours: the steps' seconds as metrics.jsonl records them (generation_seconds
#                      + training_seconds per step, --logging-steps 1), and as a cross-check the
#                      process wall time of an N-step run minus a 1-step run's, over N - 1;
#                      TRL: between on_step_end callbacks (everything: generation, rewards, loss,
#                      backward, AdamW, logging)
#   steps/CPU-s        the same steps over CPU seconds instead of wall seconds (ours: user + sys
#                      of the N-step process minus the 1-step one's; TRL: process_time between
#                      the callbacks): steadier than wall time on a shared machine
#   gen s, rest s      seconds per step generating, and the rest of the step (rewards, the
#                      loss's forward and backward, AdamW, logging)
#   generation share   seconds generating / seconds of the same steps
#                      ours: generation_seconds; TRL: GRPOTrainer._generate (chat template,
#                      transformers generate, decode)
#   mean length        mean completion length (tokens): the two sample from the same model, so
#                      their generation work should match; a large gap is worth a look
#
#   bash bench/bench_grpo.sh     # env: SR_BIN PY CONFIG MODEL G B L P N REPS THREADS LR N_TRAIN
#
# THREADS defaults to 1: on the shared 2-core machine, 2 torch threads next to another busy job
# made transformers' decode 10-50x slower (OpenMP threads waiting on a taken core), which would
# flatter the ratio for the wrong reason.
#
# The peer (pinned in scripts/requirements-ref.txt; a venv outside the repository):
#   python3 -m venv /tmp/peervenv
#   /tmp/peervenv/bin/pip install torch==2.15.0 transformers==5.24.0 trl==1.16.0 \
#     tokenizers==0.23.3 accelerate==1.16.0 datasets==5.2.0
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${SR_BIN:-build/splitreason}; PY=${PY:-/tmp/peervenv/bin/python}
CONFIG=${CONFIG:-configs/grpo/tiny_cpu.json}
# G, B, L, P and LR default to the tiny recipe's (CONFIG), else to 8, 16, 200, 128, 1e-6
recipe() { # KEY FALLBACK -> CONFIG's value of KEY, or FALLBACK
  python3 -c 'import json, sys
try: print(json.load(open(sys.argv[1])).get(sys.argv[2], sys.argv[3]))
except OSError: print(sys.argv[3])' "$CONFIG" "$1" "$2"
}
G=${G:-$(recipe num_generations 8)}; B=${B:-$(recipe per_device_train_batch_size 16)}
L=${L:-$(recipe max_completion_length 200)}; P=${P:-$(recipe max_prompt_length 128)}
LR=${LR:-$(recipe learning_rate 1e-6)}
N=${N:-20}; REPS=${REPS:-3}; THREADS=${THREADS:-1}; N_TRAIN=${N_TRAIN:-2000}
MODEL=${MODEL:-assets/demo_task/small}
T=$(mktemp -d); trap 'rm -rf "$T"' EXIT
export OMP_NUM_THREADS=$THREADS

"$BIN" task --out "$T/task" --n-train "$N_TRAIN" --n-heldout 10 --seed 0 >/dev/null 2>&1
DATA=$T/task/train.jsonl
HAVE_OURS=1
if ! "$BIN" grpo --help >/dev/null 2>&1; then
  HAVE_OURS=0; echo "note: $BIN has no grpo command; TRL's side only" >&2
fi
[ -f "$CONFIG" ] || { [ "$HAVE_OURS" = 0 ] || { echo "bench_grpo.sh: $CONFIG: not found" >&2; exit 1; }; }

ours_run() { # STEPS DIR -> runs ours; prints "wall_seconds cpu_seconds" of the process
  rm -rf "$2"  # a fresh run: metrics.jsonl is appended to
  /usr/bin/time -f "%e %U %S" -o "$2.time" "$BIN" grpo --config "$CONFIG" \
    --model-name-or-path "$MODEL" --dataset-path "$DATA" --output-dir "$2" --device cpu \
    --num-generations "$G" --max-completion-length "$L" --max-prompt-length "$P" \
    --per-device-train-batch-size "$B" --gradient-accumulation-steps 1 --steps-per-generation 1 \
    --num-iterations 1 --max-steps "$1" --beta 0 --epsilon 0.2 --temperature 1.0 --top-p 1.0 \
    --top-k 0 --rollout-mode small --reward-funcs '["accuracy"]' --reward-weights '[1.0]' \
    --loss-type dapo --scale-rewards group --mask-truncated-completions false \
    --vllm-importance-sampling-correction false --dynamic-sampling false \
    --learning-rate "$LR" --lr-scheduler-type constant --warmup-ratio 0 --weight-decay 0 \
    --max-grad-norm 1.0 --gradient-checkpointing false --bf16 false --seed 0 \
    --logging-steps 1 --save-steps 1000000 --report-to none >"$2.log" 2>&1 \
    || { echo "bench_grpo.sh: splitreason grpo failed:" >&2; tail -n 5 "$2.log" >&2; exit 1; }
  tail -n 1 "$2.time" | awk '{ print $1, $2 + $3 }'
}

ours() { # -> one JSON line
  local tn t1 wn cn w1 c1
  tn=$(ours_run "$N" "$T/ours_n"); t1=$(ours_run 1 "$T/ours_1")  # a failure stops the script
  read -r wn cn <<<"$tn"; read -r w1 c1 <<<"$t1"
  python3 - "$T/ours_n/metrics.jsonl" "$wn" "$cn" "$w1" "$c1" "$N" "$B" <<'EOF'
import json, sys
path, n, b = sys.argv[1], int(sys.argv[6]), int(sys.argv[7])
wn, cn, w1, c1 = map(float, sys.argv[2:6])
recs = [json.loads(l) for l in open(path) if l.strip()]
recs = [r for r in recs if "generation_seconds" in r]
assert len(recs) == n, f"{path}: {len(recs)} records with generation_seconds, {n} steps asked"
recs.sort(key=lambda r: r["step"])
timed = recs[1:]
gen = sum(r["generation_seconds"] for r in timed)
sec = sum(r["generation_seconds"] + r["training_seconds"] for r in timed)
lens = [r["completions/mean_length"] for r in timed if "completions/mean_length" in r]
mean_len = sum(lens) / len(lens) if lens else float("nan")
print(json.dumps({"side": "ours", "steps_per_s": (n - 1) / sec, "generation_share": gen / sec,
                  "gen_seconds_per_step": gen / (n - 1), "rest_seconds_per_step": (sec - gen) / (n - 1),
                  "steps_per_s_wall": (n - 1) / (wn - w1) if wn > w1 else float("nan"),
                  "steps_per_cpu_s": (n - 1) / (cn - c1) if cn > c1 else float("nan"),
                  "completion_mean_length": mean_len,
                  "generated_tokens_per_s": mean_len * b * (n - 1) / gen if gen > 0 else 0.0,
                  "reward_mean": sum(r.get("reward", 0.0) for r in timed) / len(timed)}))
EOF
}

peer() { # -> one JSON line
  "$PY" scripts/bench_grpo_trl.py --model "$MODEL" --dataset "$DATA" --num-generations "$G" \
    --per-device-train-batch-size "$B" --max-completion-length "$L" --max-prompt-length "$P" \
    --max-steps "$N" --threads "$THREADS" --learning-rate "$LR" --lr-scheduler-type constant \
    --warmup-ratio 0 --weight-decay 0 --max-grad-norm 1.0 --epsilon 0.2 --loss-type dapo \
    --scale-rewards group --temperature 1.0 --seed 0 \
    2>"$T/trl.log" | tail -n 1 \
    || { echo "bench_grpo.sh: bench_grpo_trl.py failed:" >&2; tail -n 5 "$T/trl.log" >&2; exit 1; }
}

: >"$T/ours.jsonl"; : >"$T/trl.jsonl"
for _ in $(seq "$REPS"); do
  if [ "$HAVE_OURS" = 1 ]; then ours >>"$T/ours.jsonl"; fi
  peer >>"$T/trl.jsonl"
done

echo "$("$BIN" --version 2>&1 | head -n 1); $(tail -n 1 "$T/trl.jsonl" | python3 -c 'import json, sys
d = json.load(sys.stdin); print("torch", d["torch"], "transformers", d["transformers"], "trl", d["trl"])')"
echo "demo task, $MODEL fp32; G=$G B=$B (B/G prompts per step) L=$L beta=0 T=1.0 dapo/group;" \
     "accuracy reward; $N steps (first not timed); $THREADS thread(s); best of $REPS"
python3 - "$T/ours.jsonl" "$T/trl.jsonl" <<'EOF'
import json, sys
def rows(p):
    return [json.loads(l) for l in open(p) if l.strip()]
ours, trl = rows(sys.argv[1]), rows(sys.argv[2])
for r in trl:
    r["gen_seconds_per_step"] = r["generation_seconds"] / r["timed_steps"]
    r["rest_seconds_per_step"] = r["seconds_per_step"] - r["gen_seconds_per_step"]
fmt = "%-33s %8s %9s %8s %8s %10s %8s  %s"
print(fmt % ("side", "steps/s", "gen share", "gen s", "rest s", "gen tok/s", "mean len", "runs"))
def line(name, rs, key="steps_per_s"):
    best = max(rs, key=lambda r: r[key])
    main = key == "steps_per_s"  # the other rows repeat the run's share, rate and length
    print(fmt % (name, "%.3f" % best[key], "%.0f %%" % (100 * best["generation_share"]) if main else "-",
                 "%.3f" % best["gen_seconds_per_step"] if main else "-",
                 "%.3f" % best["rest_seconds_per_step"] if main else "-",
                 "%.0f" % best["generated_tokens_per_s"] if main else "-",
                 "%.1f" % best["completion_mean_length"] if main else "-",
                 ", ".join("%.3f" % r[key] for r in rs)))
    return best[key]
t = line("TRL GRPOTrainer", trl)
tc = line("TRL GRPOTrainer, per CPU second", trl, "steps_per_cpu_s")
if ours:
    o = line("splitreason grpo (metrics)", ours)
    w = line("splitreason grpo (process wall)", ours, "steps_per_s_wall")
    oc = line("splitreason grpo, per CPU second", ours, "steps_per_cpu_s")
    print("ratio ours / TRL: %.1fx (metrics), %.1fx (process wall), %.1fx (per CPU second); "
          "the issue's target: 3x" % (o / t, w / t, oc / tc))
EOF
