#!/usr/bin/env bash
# The option layer through the real command (issue 9, items 4, 10, 12): a bad command line or
# --config file exits 2 with one line naming the option; bad input (a file) exits 1 naming the
# file; every number option of every command declares its range in --help.
. "$(dirname "$0")/shell_lib.sh" cli_options

# expect RC PATTERN CMD...: exit status RC; stderr's last line matches PATTERN (and is the only
# line after the effective config, if any)
n_expect=0
expect() { local want=$1 pat=$2; shift 2; n_expect=$((n_expect + 1)); expect_exit "expect$n_expect" "$want" "$pat" "$@"; }

# ---- every number option has its range, every table is valid (defaults pass their checks) ----
for c in init tokenize score generate demo annotate prepare sft export plot grade; do
  if ! $BIN $c --help >"$T/help_$c" 2>&1; then bad "$c --help failed"; continue; fi
  # "  --key N   help ..." lines of number options without a range or choices
  missing=$(grep -E '^  --[a-z0-9-]+ (N|X) ' "$T/help_$c" | grep -vE 'range [\[(]|one of: ' || true)
  if [ -n "$missing" ]; then bad "$c: number options without a range: $missing"; else ok; fi
done

# ---- the issue's reproducers: exit 2, the option named -----------------------------------------
G="$BIN generate --model $T/none --prompt x"
expect 2 "^splitreason generate: --max-new-tokens: 2147483648 is out of range \[1, 1048576\]$" $G --max-new-tokens 2147483648
expect 2 "--max-new-tokens: 4294967299 is out of range" $G --max-new-tokens 4294967299
expect 2 "--max-new-tokens: '3abc' is not an integer" $G --max-new-tokens 3abc
expect 2 "--max-new-tokens: '0x3' is not an integer" $G --max-new-tokens 0x3
expect 2 "--max-new-tokens: -5 is out of range" $G --max-new-tokens -5
expect 2 "--temperature: -1 is out of range" $G --temperature -1
expect 2 "--top-p: 2 is out of range \(0, 1\]" $G --top-p 2
expect 2 "--top-k: -1 is out of range" $G --top-k -1
expect 2 "--num-samples: 100000000 is out of range \[1, 4096\]" $G --num-samples 100000000
expect 2 "--stop must be a JSON list of strings" $G --stop '["a", 1]'
expect 2 "--batch-tokens: '12abc' is not an integer" $BIN score --model "$T/none" --input x --batch-tokens=12abc
S="$BIN sft --model-name-or-path m --dataset-path d --output-dir $T/o"
expect 2 "--per-device-train-batch-size: 2147483648 is out of range \[1, 65536\]" $S --per_device_train_batch_size 2147483648
expect 2 "--warmup-ratio: 2 is out of range \[0, 1\]" $S --warmup_ratio 2
expect 2 "--report-to: 'bogus' is not one of tensorboard, all, none" $S --report_to bogus
expect 2 "cosine_with_min_lr needs min_lr_rate" $S --lr-scheduler-type cosine_with_min_lr
printf '{"learning_rate": 3e-3, "warmup_ratio": 2}' >"$T/sft.json"
expect 2 "sft.json: warmup_ratio: 2 is out of range \[0, 1\]" $BIN sft --config "$T/sft.json" --dataset-path d --output-dir o
# a truncated --config is said to be truncated (not "not a JSON object")
printf '{"max_new_tokens": 5' >"$T/trunc.json"
expect 2 "trunc.json: the JSON text ends early" $G --config "$T/trunc.json"
# a missing required option is a bad command line: exit 2, as the README says
expect 2 "^splitreason tokenize: --tokenizer is required$" $BIN tokenize --input x
expect 2 "--input is required" $BIN grade
expect 2 "--checkpoint is required" $BIN export --out "$T/x"
expect 2 "--max-span-tokens \(5\) is less than --min-span-tokens \(10\)" \
  $BIN annotate --method entropy --input x --output y --small s --min-span-tokens 10 --max-span-tokens 5
expect 2 "--method gap needs --big DIR" $BIN annotate --method gap --input x --output y --small s
expect 2 "--snap: 'para' is not one of line, sentence, word, token" $BIN annotate --method judge --input x --output y --tokenizer t --snap para
expect 2 "--overlong: 'cut' is not one of truncate, drop" $BIN prepare --tokenizer t --input x --output y --overlong cut
expect 2 "--dtype: 'int8' is not one of" $BIN init --model-config c --tokenizer t --out o --dtype int8
# bad input (not the command line) still exits 1
expect 1 "none" $BIN score --model "$T/none" --input x

# ---- absurd model sizes: refused before anything is allocated, the file named -----------------
mkcfg() { sed -E "s/\"$1\": *[0-9]+/\"$1\": $2/" configs/tiny_qwen2.json >"$3"; }
TOK=assets/qwen2_tokenizer
mkcfg vocab_size 1099511627776 "$T/v40.json"
expect 1 "v40.json: key \"vocab_size\" is 1099511627776, more than the largest supported \(16777216\)" \
  $BIN init --model-config "$T/v40.json" --tokenizer $TOK --out "$T/m"
mkcfg vocab_size 1073741824 "$T/v30.json"
expect 1 "v30.json: key \"vocab_size\" is 1073741824, more than the largest supported" \
  $BIN init --model-config "$T/v30.json" --tokenizer $TOK --out "$T/m"
mkcfg num_hidden_layers 100000 "$T/layers.json"
expect 1 "layers.json: key \"num_hidden_layers\" is 100000" $BIN init --model-config "$T/layers.json" --tokenizer $TOK --out "$T/m"
mkcfg intermediate_size 2147483647 "$T/inter.json"
expect 1 "inter.json: key \"intermediate_size\" is 2147483647" $BIN init --model-config "$T/inter.json" --tokenizer $TOK --out "$T/m"
# inside every bound, but 2^24 x 65536 embeddings (untied: 2^41 parameters) fit no machine
sed -E 's/"vocab_size": *[0-9]+/"vocab_size": 16777216/; s/"hidden_size": *[0-9]+/"hidden_size": 65536/;
        s/"num_attention_heads": *[0-9]+/"num_attention_heads": 64/; s/"num_key_value_heads": *[0-9]+/"num_key_value_heads": 64/;
        s/"tie_word_embeddings": *true/"tie_word_embeddings": false/' configs/tiny_qwen2.json >"$T/huge.json"
expect 1 "huge.json: the model's [0-9]+ parameters \(.*\): [0-9]+ bytes \([0-9.]+ GiB\) needed, more than" \
  $BIN init --model-config "$T/huge.json" --tokenizer $TOK --out "$T/m"
[ ! -e "$T/m" ] && ok || bad "a refused init left $T/m"
# a repeated key in config.json keeps its last value, as Python's json does
sed -E 's/"num_hidden_layers": *[0-9]+,/"num_hidden_layers": 7, "num_hidden_layers": 1,/' configs/tiny_qwen2.json >"$T/dup.json"
if $BIN init --model-config "$T/dup.json" --tokenizer $TOK --out "$T/dup" 2>"$T/dup.err" &&
   grep -q "1 layers" "$T/dup.err"; then ok; else bad "dup.json: $(tail -n 1 $T/dup.err)"; fi

cli_done
