#!/usr/bin/env bash
# Hostile input through the command, end to end: every reproducer of the hardening issue (#9)
# that a shell can make, each of which must give a non-zero exit and one error line naming the
# file or option (or, where the input is valid, the right result), never a crash, a hang, a
# sanitizer report or a destroyed input. The unit tests check the same bugs at the library
# level; this checks what a user sees.
. "$(dirname "$0")/shell_lib.sh" cli_hostile


M="$T/model"
check '$BIN init --model-config configs/tiny_qwen2.json --tokenizer assets/qwen2_tokenizer --seed 3 --out $M 2>/dev/null'

# ---- 1, 2: token ids that overflow, sparse tables, a use-after-free in an error message ---------
mk_tok() { # DIR VOCAB_JSON [MERGES] [TOKENIZER_CONFIG]
  mkdir -p "$1"; printf '%s' "$2" >"$1/vocab.json"; printf '#version: 0.2\n%s' "${3:-}" >"$1/merges.txt"
  [ -n "${4:-}" ] && printf '%s' "$4" >"$1/tokenizer_config.json"; true
}
echo '{"text": "ab"}' >"$T/ab.jsonl"
mk_tok "$T/tok_big" '{"a":0,"b":2147483643}'
expect_exit tok_big 1 'vocab.json' $BIN tokenize --tokenizer "$T/tok_big" --input "$T/ab.jsonl"
mk_tok "$T/tok_sparse" '{"a":0,"b":1,"ab":67108864}' 'a b'
expect_exit tok_sparse 1 'vocab.json' $BIN tokenize --tokenizer "$T/tok_sparse" --input "$T/ab.jsonl"
mk_tok "$T/tok_neg" '{"a":0,"b":-1}'
expect_exit tok_neg 1 'vocab.json' $BIN tokenize --tokenizer "$T/tok_neg" --input "$T/ab.jsonl"
mk_tok "$T/tok_dec" '{"a":0,"b":1}' '' '{"added_tokens_decoder":{"2147483600":{"content":"<x>"}}}'
expect_exit tok_added_big 1 'tokenizer_config.json' $BIN tokenize --tokenizer "$T/tok_dec" --input "$T/ab.jsonl"
for key in abc -5 12345678901234567890; do
  mk_tok "$T/tok_key$key" '{"a":0,"b":1}' '' "{\"added_tokens_decoder\":{\"$key\":{\"content\":\"<x>\"}}}"
  expect_exit "tok_key$key" 1 "tokenizer_config.json.*$key" $BIN tokenize --tokenizer "$T/tok_key$key" --input "$T/ab.jsonl"
done
python3 - "$M/tokenizer.json" "$T/tokjson" <<'EOF'
import json, os, sys
src, out = sys.argv[1], sys.argv[2]
t = json.load(open(src, encoding="utf-8"))
for name, mutate in [("vocab_max", lambda t: t["model"]["vocab"].__setitem__("Ġthe", 2147483647)),
                     ("added_max", lambda t: t["added_tokens"].append(dict(t["added_tokens"][0], id=2147483646, content="<zz>")))]:
    u = json.loads(json.dumps(t)); mutate(u)
    os.makedirs(f"{out}_{name}", exist_ok=True)
    json.dump(u, open(f"{out}_{name}/tokenizer.json", "w", encoding="utf-8"), ensure_ascii=False)
EOF
expect_exit tokjson_vocab_max 1 'tokenizer.json' $BIN tokenize --tokenizer "$T/tokjson_vocab_max/tokenizer.json" --input "$T/ab.jsonl"
expect_exit tokjson_added_max 1 'tokenizer.json' $BIN tokenize --tokenizer "$T/tokjson_added_max/tokenizer.json" --input "$T/ab.jsonl"
expect_exit init_vocab_max 1 'tokenizer.json' $BIN init --model-config configs/tiny_qwen2.json --tokenizer "$T/tokjson_vocab_max/tokenizer.json" --out "$T/m_bad"
check '[ ! -e $T/m_bad ]'

# ---- 4, 12: absurd model sizes are refused before allocating, naming the file ---------------------
for kv in vocab_size=1073741824 hidden_size=1048576 intermediate_size=2147483647 num_hidden_layers=100000 vocab_size=1099511627776; do
  k=${kv%=*}; v=${kv#*=}
  python3 -c "import json,sys; c=json.load(open('configs/tiny_qwen2.json')); c['$k']=$v; json.dump(c, open('$T/cfg_$k$v.json','w'))"
  expect_exit "size_$k$v" 1 "cfg_$k$v.json" $BIN init --model-config "$T/cfg_$k$v.json" --tokenizer assets/qwen2_tokenizer --out "$T/m_size"
done
check '! grep -q "must be a positive integer" $T/size_vocab_size1099511627776.err'
expect_exit gen_samples 2 'num-samples|num_samples' $BIN generate --model "$M" --prompt hi --num-samples 100000000 --max-new-tokens 4

# ---- 5: NUL inside strings, two values on a line, invalid UTF-8 ----------------------------------
printf '%s\n' '{"response": "\\boxed{4}\u0000 wait, actually \\boxed{5}", "answer": "4"}' >"$T/nul.jsonl"
expect_exit grade_nul 1 'nul.jsonl:1:.*NUL' $BIN grade --input "$T/nul.jsonl"
check '! grep -q "\"correct\"" $T/grade_nul.out'
printf '%s\n' '{"text":"a"}{"text":"b"}' >"$T/two.jsonl"
expect_exit tokenize_two 1 'two.jsonl:1:.*trailing' $BIN tokenize --tokenizer "$M" --input "$T/two.jsonl"
printf '{"text":"caf\xe9"}\n' >"$T/latin1.jsonl"
expect_exit tokenize_utf8 1 'latin1.jsonl:1:.*UTF-8' $BIN tokenize --tokenizer "$M" --input "$T/latin1.jsonl"

# ---- 6: the output is the input -----------------------------------------------------------------
printf '%s\n' '{"text": "one two"}' '{"text": "three"}' >"$T/same.jsonl"
sum0=$(cksum <"$T/same.jsonl")
expect_exit same_score 1 'same.jsonl' $BIN score --model "$M" --input "$T/same.jsonl" --output "$T/same.jsonl"
expect_exit same_tokenize 1 'same.jsonl' $BIN tokenize --tokenizer "$M" --input "$T/same.jsonl" --output "$T/./same.jsonl"
ln -sf "$T/same.jsonl" "$T/link.jsonl"
expect_exit same_grade 1 'same.jsonl|link.jsonl' $BIN grade --input "$T/same.jsonl" --output "$T/link.jsonl"
expect_exit same_annotate 1 'same.jsonl' $BIN annotate --method entropy --small "$M" --field text --input "$T/same.jsonl" --output "$T/same.jsonl" --overwrite
check '[ "$(cksum <$T/same.jsonl)" = "$sum0" ]'

# ---- 7: prepare replaces its output directory as a whole, or not at all ------------------------
printf '%s\n' '{"problem": "What is 2+2?", "annotated": "<think>\n2+2=4\n</think>\n\\boxed{4}"}' >"$T/sft.jsonl"
check '$BIN prepare --tokenizer $M --input $T/sft.jsonl --output $T/shards --max-length 128 >/dev/null 2>&1'
idx0=$(cksum <"$T/shards/index.json")
expect_exit prep_fail 1 'index.json.*write failed' env SR_TEST_FAIL_WRITE=index.json $BIN prepare --tokenizer "$M" --input "$T/sft.jsonl" --output "$T/shards" --max-length 64
check '[ "$(cksum <$T/shards/index.json)" = "$idx0" ] && ls $T/shards/shard_00000.bin >/dev/null && [ -z "$(ls $T | grep shards.tmp)" ]'
mkdir -p "$T/notes" && echo keep >"$T/notes/todo.txt"
expect_exit prep_foreign 1 'notes: exists and is not a shard set' $BIN prepare --tokenizer "$M" --input "$T/sft.jsonl" --output "$T/notes" --max-length 128
check '[ "$(cat $T/notes/todo.txt)" = keep ]'

# ---- 8: a fresh model (embedding larger than the tokenizer) samples only real ids ---------------
check '$BIN generate --model $M --prompt "Let x" --temperature 1.5 --top-p 1 --num-samples 4 --json --max-new-tokens 200 --seed 5 >$T/gen.jsonl 2>$T/gen.err'
check 'json_lines $T/gen.jsonl && [ $(wc -l <$T/gen.jsonl) -eq 4 ]'
check 'python3 -c "import json,sys; ids=[i for l in open(\"$T/gen.jsonl\") for i in json.loads(l)[\"ids\"]]; sys.exit(0 if ids and max(ids) < 151667 else 1)"'
echo '[5, 151800, 6]' >"$T/unknown_ids.jsonl"
check '$BIN tokenize --tokenizer $M --decode --input $T/unknown_ids.jsonl >$T/unknown_dec.jsonl 2>/dev/null && json_lines $T/unknown_dec.jsonl'
echo '[1.5]' >"$T/frac_ids.jsonl"
expect_exit decode_frac 1 'frac_ids.jsonl:1:.*element 0' $BIN tokenize --tokenizer "$M" --decode --input "$T/frac_ids.jsonl"

# ---- 9: NaN weights give JSON null, never nan ---------------------------------------------------
NAN="$T/nan_model"; cp -r "$M" "$NAN"
python3 - "$NAN/model.safetensors" <<'EOF'
import json, struct, sys
p = sys.argv[1]; b = bytearray(open(p, "rb").read())
n = struct.unpack("<Q", b[:8])[0]; h = json.loads(b[8:8 + n])
for k, v in h.items():
    if k != "__metadata__" and v["dtype"] == "F32" and "norm" in k:   # NaN every norm weight
        s, e = v["data_offsets"]
        b[8 + n + s: 8 + n + e] = struct.pack("<f", float("nan")) * ((e - s) // 4)
open(p, "wb").write(b)
EOF
$BIN score --model "$NAN" --input "$T/same.jsonl" --output "$T/nan_score.jsonl" 2>"$T/nan_score.err"; rc=$?
check '[ $rc -eq 0 ] && json_lines $T/nan_score.jsonl || grep -qi nan $T/nan_score.err'
$BIN generate --model "$NAN" --prompt "hi" --json --max-new-tokens 3 --temperature 0 >"$T/nan_gen.jsonl" 2>"$T/nan_gen.err"; rc=$?
check '[ $rc -eq 0 ] && json_lines $T/nan_gen.jsonl || grep -qi nan $T/nan_gen.err'

# ---- 10: numeric options parse the whole string and are range-checked -----------------------------
G=(generate --model "$M" --prompt hi)
for v in 2147483648 4294967299 3abc 0x3 -5 1.5; do
  expect_exit "maxnew_$v" 2 'max.new.tokens' $BIN "${G[@]}" --max-new-tokens "$v"
done
expect_exit temp_neg 2 'temperature' $BIN "${G[@]}" --temperature -1
expect_exit top_p_2 2 'top.p' $BIN "${G[@]}" --top-p 2
expect_exit top_k_neg 2 'top.k' $BIN "${G[@]}" --top-k -1
expect_exit batch_tokens_junk 2 'batch.tokens' $BIN score --model "$M" --input "$T/same.jsonl" --batch-tokens=12abc
expect_exit sft_batch 2 'per.device.train.batch.size' $BIN sft --config configs/sft/tiny_cpu.json --per_device_train_batch_size 2147483648
expect_exit sft_warmup 2 'warmup.ratio' $BIN sft --config configs/sft/tiny_cpu.json --warmup_ratio 2
expect_exit sft_report 2 'report.to' $BIN sft --config configs/sft/tiny_cpu.json --report_to bogus

# ---- 12: messages that say what is wrong ----------------------------------------------------------
expect_exit input_dir 1 'directory' $BIN score --model "$M" --input "$T"
printf '{"text": "not compressed"}\n' >"$T/fake.jsonl.zst"
expect_exit fake_zst 1 'fake.jsonl.zst.*zstd' $BIN tokenize --tokenizer "$M" --input "$T/fake.jsonl.zst"
printf '{"prompt": "hi", "max_new_' >"$T/trunc.json"
expect_exit trunc_config 2 'trunc.json.*(truncated|ends)' $BIN generate --model "$M" --config "$T/trunc.json"
expect_exit missing_required 2 'input' $BIN tokenize --tokenizer "$M"

# ---- 13: a signal removes the temp file; a dead process's temp file is swept ---------------------
python3 -c "
import json
with open('$T/many.jsonl', 'w') as f:
    for i in range(4000): f.write(json.dumps({'text': 'row %d ' % i + 'lorem ipsum dolor sit amet ' * 40}) + '\n')"
touch "$T/scores_sig.jsonl.tmp.999999999"
$BIN score --model "$M" --input "$T/many.jsonl" --output "$T/scores_sig.jsonl" 2>/dev/null &
pid=$!
for _ in $(seq 1 100); do ls "$T"/scores_sig.jsonl.tmp.$pid* >/dev/null 2>&1 && break; sleep 0.1; done
sleep 0.5; kill -TERM $pid 2>/dev/null; wait $pid
check '[ -z "$(ls $T | grep scores_sig.jsonl.tmp)" ]'

# ---- 14: duplicated keys keep the last value, as Python's json does -------------------------------
python3 -c "
t = open('configs/tiny_qwen2.json').read().rstrip().rstrip('}')
open('$T/dup.json', 'w').write(t + ', \"num_hidden_layers\": 1}')"
check '$BIN init --model-config $T/dup.json --tokenizer assets/qwen2_tokenizer --out $T/m_dup 2>/dev/null'
check 'python3 -c "import json,sys; sys.exit(0 if json.load(open(\"$T/m_dup/config.json\"))[\"num_hidden_layers\"] == 1 else 1)"'

cli_done
