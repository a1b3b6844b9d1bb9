#!/usr/bin/env bash
# End-to-end test of the splitreason command: --version/--help, init -> tokenize -> decode
# -> score -> generate on a tiny model with the shipped tokenizer, and bad inputs, each of
# which must fail with a non-zero exit and one error line naming the file and the problem.
. "$(dirname "$0")/shell_lib.sh" cli_commands
# expect_error NAME PATTERN CMD...: a failure whose last stderr line matches PATTERN
expect_error() { local name=$1 pat=$2; shift 2; expect_exit "$name" '[1-9][0-9]*' "$pat" "$@"; }

check '$BIN --version | grep -q "^splitreason [0-9]"'
check '$BIN --version | grep -q "^backends: cpu"'
check '$BIN --help | grep -q "generate"'
for c in demo init tokenize score generate; do
  check "$BIN $c --help | grep -q 'usage: splitreason $c'"
done

ASSETS=assets
M="$T/model"
check '$BIN init --model-config configs/tiny_qwen2.json --tokenizer $ASSETS/qwen2_tokenizer --seed 3 --out $M 2>$T/init.err'
for f in config.json generation_config.json model.safetensors tokenizer.json vocab.json merges.txt tokenizer_config.json; do
  check "[ -s $M/$f ]"
done
check 'grep -q "effective\|config: {" $T/init.err'

# tokenize / decode round trip, with the bigmodel tags as single ids
printf '%s\n' '{"text": "Let x = 2. <bigmodel>Then x^2 = 4.<\\bigmodel> Done"}' '"plain string row"' '{"text": "héllo wörld 😀"}' >"$T/in.jsonl"
check '$BIN tokenize --tokenizer $M --input $T/in.jsonl >$T/ids.jsonl 2>/dev/null'
check '[ $(wc -l <$T/ids.jsonl) -eq 3 ]'
OPEN=$(printf '{"text":"<bigmodel>"}\n' | $BIN tokenize --tokenizer $M --input - 2>/dev/null)
CLOSE=$(printf '{"text":"</bigmodel>"}\n' | $BIN tokenize --tokenizer $M --input - 2>/dev/null)
check '[ "$OPEN" = "[151665]" ]'
check '[ "$CLOSE" = "[151666]" ]'
check 'head -n 1 $T/ids.jsonl | grep -q "151665" && head -n 1 $T/ids.jsonl | grep -q "151666"'
check '$BIN tokenize --tokenizer $M --input $T/ids.jsonl --decode >$T/dec.jsonl 2>/dev/null'
check 'sed -n 1p $T/dec.jsonl | grep -qF "<bigmodel>Then x^2 = 4.</bigmodel> Done"'
check 'sed -n 3p $T/dec.jsonl | grep -qF "héllo wörld 😀"'

# score: one row per input, logprobs aligned with ids, first null
check '$BIN score --model $M --input $T/in.jsonl --output $T/scores.jsonl 2>/dev/null'
check '[ $(wc -l <$T/scores.jsonl) -eq 3 ]'
check 'head -n 1 $T/scores.jsonl | grep -q "\"logprobs\": \[null, -"'
# packing must not change a row's scores: score row 1 alone and compare
head -n 1 "$T/in.jsonl" >"$T/in1.jsonl"
$BIN score --model "$M" --input "$T/in1.jsonl" --output "$T/scores1.jsonl" 2>/dev/null
# (same ids; log-probs equal up to BLAS blocking differences, 1e-5 relative)
ids_of() { sed -E 's/.*"ids": \[([^]]*)\].*/\1/' "$1"; }
lps_of() { sed -E 's/.*"logprobs": \[null, ([^]]*)\].*/\1/' "$1" | tr -d ' ' | tr ',' '\n'; }
head -n 1 "$T/scores.jsonl" >"$T/scores_row1.jsonl"
check '[ "$(ids_of $T/scores_row1.jsonl)" = "$(ids_of $T/scores1.jsonl)" ]'
check 'paste <(lps_of $T/scores_row1.jsonl) <(lps_of $T/scores1.jsonl) | awk "{d=\$1-\$2; if (d<0) d=-d; a=\$2<0?-\$2:\$2; if (d > 1e-5*(1+a)) bad=1; n++} END {exit (bad || n < 5)}"'

# generate: greedy is deterministic; sampling is reproducible with a seed
G1=$($BIN generate --model $M --prompt "1 + 1 =" --max-new-tokens 8 --temperature 0 2>/dev/null)
G2=$($BIN generate --model $M --prompt "1 + 1 =" --max-new-tokens 8 --temperature 0 2>/dev/null)
check '[ -n "$G1" ] && [ "$G1" = "$G2" ]'
S1=$($BIN generate --model $M --prompt "x" --max-new-tokens 8 --seed 7 --json 2>/dev/null)
S2=$($BIN generate --model $M --prompt "x" --max-new-tokens 8 --seed 7 --json 2>/dev/null)
check '[ -n "$S1" ] && [ "$S1" = "$S2" ]'
check 'echo "$S1" | grep -q "\"finish_reason\": \"length\""'
N3=$($BIN generate --model $M --prompt "x" --max-new-tokens 4 --num-samples 3 2>/dev/null | wc -l)
check '[ "$N3" -eq 3 ]'
# sample 0 of a batch equals the same seed's single sample
B0=$($BIN generate --model $M --prompt "x" --max-new-tokens 8 --seed 7 --num-samples 3 2>/dev/null | head -n 1)
check '[ "$B0" = "$S1" ]'

# ---- bad input: one line naming the file and the problem, non-zero exit ----------------
expect_error missing_model "nonexistent" $BIN score --model "$T/nonexistent" --input "$T/in.jsonl"
expect_error unknown_opt "unknown option 'bogus_flag'" $BIN generate --model "$M" --prompt x --bogus-flag 1
expect_error missing_req "--tokenizer" $BIN tokenize --input "$T/in.jsonl"
expect_error bad_type "--max-new-tokens: 'abc' is not an integer" $BIN generate --model "$M" --prompt x --max-new-tokens abc
printf '{"text": "ok"}\n{not json\n' >"$T/badrow.jsonl"
expect_error bad_row "badrow.jsonl:2" $BIN tokenize --tokenizer "$M" --input "$T/badrow.jsonl"
# (an id the tokenizer lacks, 99999999, decodes to nothing as in HF; -1 is no id at all)
printf '[1, 2, 99999999, -1]\n' >"$T/badids.jsonl"
expect_error bad_ids "badids.jsonl:1: element 3 of the ids \(-1\)" $BIN tokenize --tokenizer "$M" --input "$T/badids.jsonl" --decode

cp -r "$M" "$T/trunc" && head -c 1000 "$M/model.safetensors" >"$T/trunc/model.safetensors"
expect_error trunc_st "trunc/model.safetensors" $BIN score --model "$T/trunc" --input "$T/in.jsonl"
cp -r "$M" "$T/shape" && sed -i 's/"intermediate_size": *[0-9]*/"intermediate_size": 100/' "$T/shape/config.json"
expect_error shape_mismatch "shape/.*(mlp|shape)" $BIN score --model "$T/shape" --input "$T/in.jsonl"
cp -r "$M" "$T/badcfg" && echo '{"model_type": "qwen2",' >"$T/badcfg/config.json"
expect_error bad_config "badcfg/config.json" $BIN score --model "$T/badcfg" --input "$T/in.jsonl"
cp -r "$M" "$T/badtok" && head -c 5000 "$M/vocab.json" >"$T/badtok/vocab.json" && rm -f "$T/badtok/tokenizer.json"
expect_error bad_vocab "badtok/vocab.json" $BIN tokenize --tokenizer "$T/badtok" --input "$T/in.jsonl"
expect_error missing_input "nope.jsonl" $BIN tokenize --tokenizer "$M" --input "$T/nope.jsonl"
# a failed run leaves no partial output file
$BIN tokenize --tokenizer "$M" --input "$T/badrow.jsonl" --output "$T/partial.jsonl" 2>/dev/null
check '[ ! -e $T/partial.jsonl ] && [ -z "$(ls $T | grep partial.jsonl.tmp)" ]'

cli_done
