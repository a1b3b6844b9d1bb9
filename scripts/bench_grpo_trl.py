#!/usr/bin/env python3
"""
The peer for `splitreason grpo`'s CPU throughput: TRL's GRPOTrainer (transformers generation,
no vLLM) on the demo task, with the settings bench/bench_grpo.sh gives both sides.

- model: an HF model directory (assets/demo_task/small: a Qwen2 with the task's byte-level
  tokenizer and its chat template), fp32 on the CPU, `--threads` torch threads;
- data: the rows of `splitreason task` train.jsonl (problem, answer) as conversational prompts,
  one user turn holding the problem (no system prompt), as `splitreason grpo` builds them;
- reward: accuracy alone, a few lines of Python (the content of the last \\boxed{...} equals the
  answer), cheap so that the comparison is about the trainer;
- GRPO: num_generations G, per_device_train_batch_size B completions (B / G prompts) per
  optimizer step, gradient_accumulation_steps 1, num_iterations 1, beta 0 (no reference model),
  temperature 1.0, top_p 1, top_k 0, loss_type and scale_rewards as given (TRL 1.16's defaults:
  dapo, group), use_vllm False (so no importance-sampling correction), bf16 False,
  gradient_checkpointing False unless asked (GRPOConfig's default is True), report_to none, no
  checkpoints, logging every step.

TRL 1.16's GRPOConfig has no max_prompt_length (prompts are never truncated): the script checks
that every prompt of the data set fits in --max-prompt-length instead, so that a side that
would truncate is noticed.

Measured, after the first optimizer step (warm-up, not counted): wall seconds per optimizer step
(between consecutive on_step_end callbacks: generation, rewards, loss, backward, AdamW, logging)
and the seconds spent in GRPOTrainer._generate (chat template, transformers generate, decode)
and in _generate_and_score_completions (that plus rewards and advantages); also the process's
CPU seconds over the same steps (steadier than wall time on a shared machine: steps_per_cpu_s).
Prints one JSON line: steps_per_s, generation_share, rollout_share, steps_per_cpu_s, mean
completion length, the settings, versions.

Usage:
  /tmp/peervenv/bin/python scripts/bench_grpo_trl.py --model assets/demo_task/small \
      --dataset DIR/train.jsonl [--num-generations 4] [--per-device-train-batch-size 8] \
      [--max-completion-length 160] [--max-prompt-length 256] [--max-steps 12] [--threads 2]
"""
import argparse
import json
import os
import sys
import tempfile
import time
import warnings


def boxed_last(text):
    """Content of the last \\boxed{...} in text (braces balanced), or None."""
    i = text.rfind("\\boxed{")
    if i < 0:
        return None
    j, depth = i + len("\\boxed{"), 1
    for k in range(j, len(text)):
        if text[k] == "{":
            depth += 1
        elif text[k] == "}":
            depth -= 1
            if depth == 0:
                return text[j:k]
    return None


def accuracy(completions, answer, **kwargs):
    """1.0 when the completion's last boxed answer is the row's answer, else 0.0."""
    out = []
    for c, a in zip(completions, answer):
        text = c[-1]["content"] if isinstance(c, list) else c
        got = boxed_last(text)
        out.append(1.0 if got is not None and got.strip() == str(a).strip() else 0.0)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--dataset", required=True, help="train.jsonl of `splitreason task`")
    ap.add_argument("--num-generations", type=int, default=4)
    ap.add_argument("--per-device-train-batch-size", type=int, default=8)
    ap.add_argument("--max-completion-length", type=int, default=160)
    ap.add_argument("--max-prompt-length", type=int, default=256,
                    help="checked, not applied (TRL 1.16 has no such option)")
    ap.add_argument("--max-steps", type=int, default=12)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--learning-rate", type=float, default=1e-6)
    ap.add_argument("--lr-scheduler-type", default="linear")
    ap.add_argument("--warmup-ratio", type=float, default=0.0)
    ap.add_argument("--max-grad-norm", type=float, default=1.0)
    ap.add_argument("--weight-decay", type=float, default=0.0)
    ap.add_argument("--loss-type", default="dapo")
    ap.add_argument("--scale-rewards", default="group")
    ap.add_argument("--epsilon", type=float, default=0.2)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--gradient-checkpointing", action="store_true",
                    help="TRL 1.16's GRPOConfig default; off here unless asked (ours: false in the tiny recipe)")
    a = ap.parse_args()
    if a.max_steps < 2:
        sys.exit("bench_grpo_trl.py: --max-steps must be at least 2 (the first step is warm-up)")

    warnings.filterwarnings("ignore")
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    import torch
    import transformers
    import trl
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback
    from trl import GRPOConfig, GRPOTrainer

    transformers.logging.set_verbosity_error()
    torch.set_num_threads(a.threads)

    rows = [json.loads(l) for l in open(a.dataset) if l.strip()]
    data = Dataset.from_list([{"prompt": [{"role": "user", "content": r["problem"]}],
                               "answer": r["answer"]} for r in rows])
    tok = AutoTokenizer.from_pretrained(a.model)
    plen = [len(tok.apply_chat_template(p, add_generation_prompt=True, tokenize=True,
                                        return_dict=True)["input_ids"]) for p in data["prompt"]]
    if max(plen) > a.max_prompt_length:
        sys.exit(f"bench_grpo_trl.py: {a.dataset}: a prompt has {max(plen)} tokens, over "
                 f"--max-prompt-length {a.max_prompt_length} (TRL would not truncate it)")
    model = AutoModelForCausalLM.from_pretrained(a.model, dtype=torch.float32)

    timers = {"generate": 0.0, "rollout": 0.0}

    class TimedGRPOTrainer(GRPOTrainer):
        """GRPOTrainer whose generation and rollout calls add their seconds to `timers`."""

        def _generate(self, prompts):
            t0 = time.perf_counter()
            try:
                return super()._generate(prompts)
            finally:
                timers["generate"] += time.perf_counter() - t0

        def _generate_and_score_completions(self, inputs):
            t0 = time.perf_counter()
            try:
                return super()._generate_and_score_completions(inputs)
            finally:
                timers["rollout"] += time.perf_counter() - t0

    marks = []  # (perf_counter, process CPU seconds, generate s, rollout s) at each step's end

    class StepClock(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            marks.append((time.perf_counter(), time.process_time(), timers["generate"], timers["rollout"]))

    out_dir = tempfile.mkdtemp(prefix="bench_grpo_trl_")
    cfg = GRPOConfig(
        output_dir=out_dir, max_steps=a.max_steps, seed=a.seed, data_seed=a.seed,
        num_generations=a.num_generations, per_device_train_batch_size=a.per_device_train_batch_size,
        gradient_accumulation_steps=1, num_iterations=1, max_completion_length=a.max_completion_length,
        temperature=a.temperature, top_p=1.0, top_k=0, beta=0.0, epsilon=a.epsilon,
        loss_type=a.loss_type, scale_rewards=a.scale_rewards, learning_rate=a.learning_rate,
        lr_scheduler_type=a.lr_scheduler_type, warmup_steps=a.warmup_ratio,  # < 1: a ratio
        max_grad_norm=a.max_grad_norm, weight_decay=a.weight_decay, use_vllm=False, bf16=False,
        fp16=False, gradient_checkpointing=a.gradient_checkpointing, use_cpu=True, report_to="none",
        save_strategy="no", logging_steps=1, disable_tqdm=True, dataloader_num_workers=0, log_completions=False)
    trainer = TimedGRPOTrainer(model=model, reward_funcs=[accuracy], args=cfg, train_dataset=data,
                               processing_class=tok, callbacks=[StepClock()])
    trainer.train()

    if len(marks) != a.max_steps:
        sys.exit(f"bench_grpo_trl.py: {len(marks)} optimizer steps ran, {a.max_steps} asked")
    (t1, c1, g1, r1), (tn, cn, gn, rn) = marks[0], marks[-1]
    wall, cpu = tn - t1, cn - c1
    logs = [h for h in trainer.state.log_history if "completions/mean_length" in h][1:]
    mean_len = sum(h["completions/mean_length"] for h in logs) / max(1, len(logs))
    reward = sum(h.get("reward", 0.0) for h in logs) / max(1, len(logs))
    print(json.dumps({
        "side": "trl", "steps_per_s": (a.max_steps - 1) / wall,
        "seconds_per_step": wall / (a.max_steps - 1),
        "steps_per_cpu_s": (a.max_steps - 1) / cpu, "cpu_seconds_per_step": cpu / (a.max_steps - 1),
        "generation_share": (gn - g1) / wall, "rollout_share": (rn - r1) / wall,
        "generation_seconds": gn - g1, "timed_steps": a.max_steps - 1, "timed_seconds": wall,
        "completion_mean_length": mean_len, "reward_mean": reward,
        "generated_tokens_per_s": mean_len * a.per_device_train_batch_size * (a.max_steps - 1)
        / max(1e-9, gn - g1),
        "prompt_tokens_max": max(plen),
        "num_generations": a.num_generations,
        "per_device_train_batch_size": a.per_device_train_batch_size,
        "max_completion_length": a.max_completion_length, "max_prompt_length": a.max_prompt_length,
        "max_steps": a.max_steps, "threads": a.threads, "learning_rate": a.learning_rate,
        "lr_scheduler_type": a.lr_scheduler_type, "loss_type": a.loss_type,
        "scale_rewards": a.scale_rewards, "beta": 0.0, "temperature": a.temperature,
        "gradient_checkpointing": a.gradient_checkpointing,
        "torch": torch.__version__, "transformers": transformers.__version__,
        "trl": trl.__version__}))


if __name__ == "__main__":
    main()
