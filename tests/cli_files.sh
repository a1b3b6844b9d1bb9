#!/usr/bin/env bash
# The commands' file plumbing, through the binary (issue #9, items 5, 6, 7, 13):
#   - an output that is the input (same file through a link, a hard link, another spelling,
#     stdin; an input inside an output directory) is refused with one line and exit 1, and the
#     input is left byte for byte as it was; an output that is a directory is refused;
#   - `init` / `export` that fail half-way (SR_TEST_FAIL_WRITE=<file>, as a full disk would)
#     leave the previous model directory whole: it still loads, tokenizes <bigmodel> as one id
#     and scores; no temp directory is left;
#   - SIGTERM / SIGHUP while an output is being written remove its temp file (the process still
#     dies of the signal); a dead process's temp files are swept by the next run, a live one's
#     are not;
#   - rows with two JSON values, a \u0000 in a string, or invalid UTF-8 are malformed rows
#     named by file:line in tokenize, score, annotate and prepare (skipped, or an error with
#     --strict).
. "$(dirname "$0")/shell_lib.sh" cli_files
# expect_error NAME RC PATTERN CMD...: exit status RC; last stderr line matches PATTERN
expect_error() { expect_exit "$@"; }
sum() { md5sum "$@" | awk '{print $1}' | tr '\n' ' '; }
dirsum() { (cd "$1" && md5sum $(ls) | md5sum | awk '{print $1}'); }

M="$T/model"
check '$BIN init --model-config configs/tiny_qwen2.json --tokenizer assets/qwen2_tokenizer --seed 3 --out $M 2>/dev/null'
OPEN=$(printf '{"text":"<bigmodel>"}\n' | $BIN tokenize --tokenizer $M --input - 2>/dev/null)
check '[ "$OPEN" = "[151665]" ]'
MSUM=$(dirsum $M)

# ---- item 6: output == input ------------------------------------------------------------
printf '%s\n' '{"text": "one", "response": "\\boxed{4}", "answer": "4"}' '{"text": "two", "response": "5", "answer": "5"}' >"$T/in.jsonl"
ln -s in.jsonl "$T/link.jsonl"
ln "$T/in.jsonl" "$T/hard.jsonl"
mkdir -p "$T/sub"
head -n 1 "$T/in.jsonl" >"$T/h_one.jsonl"
BEFORE=$(sum "$T/in.jsonl")
expect_error tok_same 1 "--output .*in.jsonl is the same file as --input" $BIN tokenize --tokenizer $M --input $T/in.jsonl --output $T/in.jsonl
expect_error tok_link 1 "--output .*link.jsonl is the same file as --input" $BIN tokenize --tokenizer $M --input $T/in.jsonl --output $T/link.jsonl
expect_error tok_hard 1 "same file" $BIN tokenize --tokenizer $M --input $T/hard.jsonl --output $T/in.jsonl
expect_error tok_spelled 1 "same file" $BIN tokenize --tokenizer $M --input $T/in.jsonl --output $T/sub/../in.jsonl
expect_error tok_stdin 1 "same file as --input \(stdin\)" $BIN tokenize --tokenizer $M --input - --output $T/in.jsonl <"$T/in.jsonl"
expect_error tok_dir 1 "--output .*sub: is a directory" $BIN tokenize --tokenizer $M --input $T/in.jsonl --output $T/sub
expect_error score_model 1 "--output .*config.json is a file of --model" $BIN score --model $M --input $T/in.jsonl --output $M/config.json
expect_error tok_tokenizer 1 "--output .*vocab.json is a file of --tokenizer" $BIN tokenize --tokenizer $M --input $T/in.jsonl --output $M/vocab.json
expect_error annotate_model 1 "--output .*merges.txt is a file of --small" $BIN annotate --method entropy --small $M --input $T/in.jsonl --output $M/merges.txt
expect_error score_same 1 "--output .*is the same file as --input" $BIN score --model $M --input $T/in.jsonl --output $T/link.jsonl
expect_error grade_same 1 "--output .*is the same file as --input" $BIN grade --input $T/in.jsonl --output $T/./in.jsonl
expect_error annotate_same 1 "--output .*is the same file as --input" $BIN annotate --method entropy --small $M --field text --select first --input $T/in.jsonl --output $T/in.jsonl --overwrite
expect_error annotate_summary 1 "--summary .*is the same file as --input" $BIN annotate --method entropy --small $M --field text --input $T/in.jsonl --output $T/ann.jsonl --summary $T/hard.jsonl
mkdir -p "$T/shards" && cp "$T/in.jsonl" "$T/shards/index.json"
expect_error prepare_inside 1 "--output .*shards contains --input" $BIN prepare --tokenizer $M --input $T/shards/index.json --output $T/shards
expect_error prepare_file 1 "--output .*exists and is not a directory" $BIN prepare --tokenizer $M --input $T/in.jsonl --output $T/hard.jsonl
check '[ "$(sum $T/in.jsonl)" = "$BEFORE" ] && [ "$(sum $T/shards/index.json)" = "$BEFORE" ]'
check '[ ! -e $T/ann.jsonl ]'
expect_error export_same 1 "--out .*model/ is the same directory as --checkpoint" $BIN export $M --out $T/model/
expect_error export_parent 1 "--out .* contains --checkpoint" $BIN export $M --out $T
expect_error init_same 1 "--out .* contains --tokenizer" $BIN init --model-config configs/tiny_qwen2.json --tokenizer $M/tokenizer.json --out $M
mkdir -p "$T/notes" && echo keep >"$T/notes/README"
expect_error export_foreign 1 "notes: exists and is not a model directory" $BIN export $M --out $T/notes
check '[ "$(dirsum $M)" = "$MSUM" ] && [ "$(cat $T/notes/README)" = keep ]'
# the output is written where asked when it is not the input
check '$BIN tokenize --tokenizer $M --input $T/in.jsonl --output $T/ids.jsonl 2>/dev/null && [ $(wc -l <$T/ids.jsonl) -eq 2 ]'
# a device or a process's descriptor is written as it is, never replaced by a renamed file
ln -s /proc/self/fd/1 "$T/stdout_link"
check '$BIN tokenize --tokenizer $M --input $T/in.jsonl --output $T/stdout_link >$T/captured.jsonl 2>/dev/null'
check '[ -L $T/stdout_link ] && [ $(wc -l <$T/captured.jsonl) -eq 2 ]'
check '$BIN tokenize --tokenizer $M --input $T/in.jsonl --output /dev/null 2>/dev/null && [ -c /dev/null ]'
# through a link to a file: the file is replaced, the link stays
ln -s ids.jsonl "$T/ids_link.jsonl"
check '$BIN tokenize --tokenizer $M --input $T/h_one.jsonl --output $T/ids_link.jsonl 2>/dev/null && [ -L $T/ids_link.jsonl ] && [ $(wc -l <$T/ids.jsonl) -eq 1 ]'

# ---- item 7: a model directory written half-way leaves the old one whole ------------------
for f in merges.txt model.safetensors tokenizer_config.json generation_config.json; do
  expect_error "init_fail_$f" 1 "$f: write failed: No space left on device" \
    env SR_TEST_FAIL_WRITE=$f $BIN init --model-config configs/tiny_qwen2.json --tokenizer assets/qwen2_tokenizer --seed 9 --out $M
  check '[ "$(dirsum $M)" = "$MSUM" ]'
done
check '[ -z "$(ls $T | grep "model\.\(tmp\|old\)")" ]'
OPEN=$(printf '{"text":"<bigmodel>"}\n' | $BIN tokenize --tokenizer $M --input - 2>/dev/null)
check '[ "$OPEN" = "[151665]" ]'
E="$T/export"
check '$BIN export $M --out $E --dtype fp32 2>/dev/null'
ESUM=$(dirsum $E)
for f in model.safetensors tokenizer.json config.json; do
  expect_error "export_fail_$f" 1 "$f: write failed" env SR_TEST_FAIL_WRITE=$f $BIN export $M --out $E --dtype bf16
  check '[ "$(dirsum $E)" = "$ESUM" ]'
done
check '$BIN score --model $E --input $T/in.jsonl --output $T/escore.jsonl 2>/dev/null && [ $(wc -l <$T/escore.jsonl) -eq 2 ]'
check '[ -z "$(ls $T | grep "export\.\(tmp\|old\)")" ]'
# a second complete export replaces the first (bf16 now), leaving no backup
check '$BIN export $M --out $E --dtype bf16 2>/dev/null && grep -q bfloat16 $E/config.json && [ -z "$(ls $T | grep "export\.")" ]'

# ---- item 13: signals and stale temp files --------------------------------------------------
# the run blocks reading a fifo while its output's temp file exists; then the signal. (The
# reader fills 64 kB blocks, so more than that is sent before it blocks for the rest.)
for sig in TERM HUP; do
  rm -f "$T/fifo" "$T/sig.jsonl"
  mkfifo "$T/fifo"
  $BIN tokenize --tokenizer $M --input $T/fifo --output $T/sig.jsonl 2>"$T/sig_$sig.err" &
  pid=$!
  exec 3>"$T/fifo"
  yes '{"text": "a row"}' | head -n 20000 >&3
  for i in $(seq 1 300); do ls $T | grep -q "sig.jsonl.tmp.$pid" && break; sleep 0.1; done
  check 'ls $T | grep -q "sig.jsonl.tmp.$pid"'
  kill -$sig $pid
  wait $pid; rc=$?
  exec 3>&-
  want=$((128 + $(kill -l $sig)))
  check '[ $rc -eq $want ]'
  check '[ -z "$(ls $T | grep sig.jsonl)" ]'
done
# leftovers of a process that is gone are swept; a live process's are kept
sh -c 'exit 0' & dead=$!; wait $dead
echo stale >"$T/out.jsonl.tmp.$dead"
echo stale >"$T/out.jsonl.tmp.$dead.AbC123"
echo live >"$T/out.jsonl.tmp.$$"
echo other >"$T/other.jsonl.tmp.$dead"
check '$BIN tokenize --tokenizer $M --input $T/in.jsonl --output $T/out.jsonl 2>$T/sweep.err'
check '[ ! -e $T/out.jsonl.tmp.$dead ] && [ ! -e $T/out.jsonl.tmp.$dead.AbC123 ]'
check '[ -e $T/out.jsonl.tmp.$$ ] && [ -e $T/other.jsonl.tmp.$dead ] && [ $(wc -l <$T/out.jsonl) -eq 2 ]'
check 'grep -q "removed .*out.jsonl.tmp.$dead (left by process $dead, which is gone)" $T/sweep.err'
# a model directory swap that died between its two renames: the backup is put back
mv "$E" "$T/export.old-$dead"
check '$BIN export $M --out $T/e2 2>/dev/null && [ ! -e $E ]'  # another path: not touched
check '$BIN export $M --out $E --dtype fp32 2>$T/restore.err && grep -q "put back" $T/restore.err'
check '[ -z "$(ls $T | grep "export\.")" ] && grep -q float32 $E/config.json'

# ---- item 5: rows that are not exactly one valid JSON value are malformed -----------------
{
  printf '%s\n' '{"problem": "p0", "text": "fine", "generations": ["<think>\nok</think>"], "annotated": "ok"}'
  printf '%s\n' '{"problem": "p1", "text": "a", "generations": ["x"], "annotated": "a"}{"text": "b"}'
  printf '%s\n' '{"problem": "p2", "text": "x\u0000 wait", "generations": ["x\u0000y"], "annotated": "x\u0000y"}'
  printf '{"problem": "p3", "text": "bad \xff\xfe utf8", "generations": ["\xc3"], "annotated": "\xe2\x82"}\n'
} >"$T/hostile.jsonl"
for L in 2 3 4; do
  sed -n "1p;${L}p" "$T/hostile.jsonl" >"$T/h$L.jsonl"
  expect_error "tok_row$L" 1 "h$L.jsonl:2: " $BIN tokenize --tokenizer $M --input $T/h$L.jsonl
  expect_error "score_row$L" 1 "h$L.jsonl:2: " $BIN score --model $M --input $T/h$L.jsonl
  expect_error "annotate_strict$L" 1 "h$L.jsonl:2: " $BIN annotate --method entropy --small $M --select first --input $T/h$L.jsonl --output $T/a$L.jsonl --strict
  expect_error "prepare_strict$L" 1 "h$L.jsonl:2: " $BIN prepare --tokenizer $M --input $T/h$L.jsonl --output $T/p$L --strict
done
check 'grep -q "trailing\|after the" $T/tok_row2.err'
check 'grep -qi "nul\|u0000" $T/tok_row3.err'
check 'grep -qi "utf-8" $T/tok_row4.err'
# without --strict: each bad row is reported by file:line and skipped; the good row is used
check '$BIN annotate --method entropy --small $M --select first --input $T/hostile.jsonl --output $T/ann_all.jsonl --window-tokens 64 >$T/ann_all.out 2>$T/ann_all.err'
check 'grep -q "hostile.jsonl:2: .*(skipped)" $T/ann_all.err && grep -q "hostile.jsonl:3: .*(skipped)" $T/ann_all.err && grep -q "hostile.jsonl:4: .*(skipped)" $T/ann_all.err'
check '[ $(wc -l <$T/ann_all.jsonl) -eq 1 ] && grep -qE "\"malformed\":[[:space:]]*3" $T/ann_all.jsonl.summary.json'
check '$BIN prepare --tokenizer $M --input $T/hostile.jsonl --output $T/prep_all --max-length 64 >$T/prep_all.out 2>$T/prep_all.err'
check 'grep -q "hostile.jsonl:2: .*(row skipped)" $T/prep_all.err && grep -q "hostile.jsonl:3: .*(row skipped)" $T/prep_all.err && grep -q "hostile.jsonl:4: .*(row skipped)" $T/prep_all.err'
check 'grep -q "1 documents (3 malformed" $T/prep_all.out'

cli_done
