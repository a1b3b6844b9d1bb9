#!/usr/bin/env bash
# The tokenizer's command-line reproducers of issue 9: hostile id tables fail with one line
# naming the file (tokenize and init), --decode prints the text of known ids and nothing for
# ids the tokenizer lacks (a fresh model's padding rows), a value that is no id names its
# element and line, and prepare with a tokenizer that has no BOS writes documents without one
# and says so once.
. "$(dirname "$0")/shell_lib.sh" cli_tokenize

# expect_error NAME RC PATTERN CMD...: exit code RC, one error line (after the config echo),
# the last, matching PATTERN
expect_error() {
  local name=$1 f0=$fail; expect_exit "$@"
  [ "$fail" -ne "$f0" ] && return
  local lines; lines=$(grep -vc '^config: {' "$T/$name.err")
  [ "$lines" -eq 1 ] || bad "$name: $lines error lines on stderr"
}

echo '{"text": "the cat"}' >"$T/in.jsonl"
PIPE='"normalizer": {"type": "NFC"}, "pre_tokenizer": {"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(?i:'"'"'s|'"'"'t|'"'"'re|'"'"'ve|'"'"'m|'"'"'ll|'"'"'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]}'
mkdir -p "$T/huge"
echo "{$PIPE, \"model\": {\"type\": \"BPE\", \"vocab\": {\"a\": 0, \"\\u0120the\": 2147483647}, \"merges\": []}}" >"$T/huge/tokenizer.json"
expect_error huge_tokenize 1 "huge/tokenizer.json: model.vocab: token \"Ġthe\" has no valid id \(2147483647 is too large: ids must be below 1028" \
  "$BIN" tokenize --tokenizer "$T/huge" --input "$T/in.jsonl"
expect_error huge_init 1 "huge/tokenizer.json: .*2147483647 is too large" \
  "$BIN" init --model-config configs/tiny_qwen2.json --tokenizer "$T/huge" --out "$T/model_huge"
check '[ ! -e "$T/model_huge/model.safetensors" ]'

mkdir -p "$T/sparse" "$T/rss" "$T/uaf" "$T/decoder"
echo '{"a":0,"b":2147483643}' >"$T/sparse/vocab.json"; : >"$T/sparse/merges.txt"
expect_error sparse 1 "sparse/vocab.json: token \"b\" has no valid id \(2147483643 is too large" \
  "$BIN" tokenize --tokenizer "$T/sparse" --input "$T/in.jsonl"
printf '{"a":0,"b":1,"ab":67108864}' >"$T/rss/vocab.json"; echo "a b" >"$T/rss/merges.txt"
expect_error rss 1 "rss/vocab.json: token \"ab\" has no valid id \(67108864 is too large: ids must be below 1030" \
  "$BIN" tokenize --tokenizer "$T/rss" --input "$T/in.jsonl"
cp "$T/rss/merges.txt" "$T/uaf/"; echo '{"a":0,"b":1,"ab":2}' >"$T/uaf/vocab.json"
for key in abc -5 12345678901234567890; do
  echo "{\"added_tokens_decoder\":{\"$key\":{\"content\":\"<x>\"}}}" >"$T/uaf/tokenizer_config.json"
  expect_error "uaf_$key" 1 "uaf/tokenizer_config.json: added_tokens_decoder key \"$key\" is not a valid id" \
    "$BIN" tokenize --tokenizer "$T/uaf" --input "$T/in.jsonl"
done
cp "$T/uaf/vocab.json" "$T/uaf/merges.txt" "$T/decoder/"
echo '{"added_tokens_decoder":{"2147483600":{"content":"<x>"}}}' >"$T/decoder/tokenizer_config.json"
expect_error decoder_key 1 "decoder/tokenizer_config.json: added_tokens_decoder key \"2147483600\" is not a valid id \(2147483600 is too large" \
  "$BIN" tokenize --tokenizer "$T/decoder" --input "$T/in.jsonl"

# --decode: ids the tokenizer lacks print nothing (151790: a padding row of R1-distill's
# 151936-row embedding); values that are no id name their element and line
TOK=assets/qwen2_tokenizer
printf '%s\n' '[785, 8251]' '[785, 151790, 8251, 151935]' '{"ids": [2147483647]}' >"$T/ids.jsonl"
check '"$BIN" tokenize --tokenizer $TOK --input "$T/ids.jsonl" --decode >"$T/dec.jsonl" 2>/dev/null'
check '[ "$(sed -n 1p "$T/dec.jsonl")" = "$(sed -n 2p "$T/dec.jsonl")" ]'
check '[ "$(sed -n 1p "$T/dec.jsonl")" = "\"The cat\"" ]'
check '[ "$(sed -n 3p "$T/dec.jsonl")" = "\"\"" ]'
printf '%s\n' '[785]' '[1.5]' >"$T/frac.jsonl"
expect_error decode_frac 1 "frac.jsonl:2: element 0 of the ids \(1.5\) is not a token id" \
  "$BIN" tokenize --tokenizer $TOK --input "$T/frac.jsonl" --decode
printf '%s\n' '[785, 4294967295]' >"$T/big.jsonl"
expect_error decode_big 1 "big.jsonl:1: element 1 of the ids \(4294967295\) is not a token id" \
  "$BIN" tokenize --tokenizer $TOK --input "$T/big.jsonl" --decode
printf '%s\n' '[785, "x"]' >"$T/str.jsonl"
expect_error decode_str 1 "str.jsonl:1: element 1 of the ids is not a number" \
  "$BIN" tokenize --tokenizer $TOK --input "$T/str.jsonl" --decode

# prepare with a tokenizer without BOS: no BOS written (as HF's template), said once
mkdir -p "$T/nobos"
cp $TOK/vocab.json $TOK/merges.txt "$T/nobos/"
echo '{"eos_token": "<|endoftext|>", "bos_token": null}' >"$T/nobos/tokenizer_config.json"
for i in 1 2 3 4 5; do echo "{\"problem\": \"What is $i+$i?\", \"annotated\": \"<think>\\nIt is <bigmodel>$((i + i))</bigmodel>.\\n</think>\\n\\\\boxed{$((i + i))}\"}"; done >"$T/rows.jsonl"
check '"$BIN" prepare --tokenizer "$T/nobos" --input "$T/rows.jsonl" --output "$T/shards" --max-length 256 2>"$T/prep.err"'
check '[ "$(grep -c "no BOS" "$T/prep.err")" -eq 1 ]'
check 'grep -q "\"bos_id\":[[:space:]]*-1" "$T/shards/index.json"'
check 'grep -q "\"add_bos\":[[:space:]]*false" "$T/shards/index.json"'

cli_done
