#!/usr/bin/env bash
# splitreason bench latency on two tiny models (made with `splitreason init`) and small grids:
# the table it writes loads back (through the engine's strict loader, via a second bench run
# refusing nothing and Python's json) with the grids asked for, non-negative figures and the
# models recorded; the printed table names both models; bad options exit 2 with one line.
. "$(dirname "$0")/shell_lib.sh" cli_bench_latency
ASSETS=${SR_ASSETS:-assets}

S=$T/small B=$T/big
sed 's/"num_hidden_layers": 2/"num_hidden_layers": 3/' configs/tiny_qwen2.json >"$T/big.json"
check '$BIN init --model-config configs/tiny_qwen2.json --tokenizer $ASSETS/qwen2_tokenizer --seed 1 --out $S 2>/dev/null'
check '$BIN init --model-config $T/big.json --tokenizer $ASSETS/qwen2_tokenizer --seed 2 --out $B 2>/dev/null'

G="--batches 1,2 --contexts 8,24 --deltas 1,4,6 --repeats 2"
check '$BIN bench latency --small $S --big $B $G --output $T/t.json --note "cli test" >$T/table.txt 2>$T/run.err'
check 'grep -q "^small: small .*big: big" $T/table.txt && grep -q "^sigma: " $T/table.txt'
check 'grep -q "bench latency: big catch-up of 6 tokens at context 24" $T/run.err'
check 'python3 - "$T/t.json" <<"EOF"
import json, sys
t = json.load(open(sys.argv[1]), parse_constant=lambda c: 1 / 0)
assert t["version"] == 1 and t["source"] == "measured" and t["note"] == "cli test", t
assert t["device"].startswith("cpu: ")
assert t["batches"] == [1, 2] and t["contexts"] == [8, 24] and t["deltas"] == [1, 4, 6]
assert t["pi_context"] == 24  # the middle context by default
for k in ("tau_s", "tau_b"):
    assert len(t[k]) == 2 and all(len(r) == 2 and all(v > 0 for v in r) for r in t[k]), k
for k in ("pi_s", "pi_b"):
    assert len(t[k]) == 3 and all(v > 0 for v in t[k]), k
assert t["sigma"] >= 0
assert t["small"] == {"name": "small", "hidden_size": 64, "num_hidden_layers": 2, "num_params": t["small"]["num_params"]}
assert t["big"]["num_hidden_layers"] == 3 and t["big"]["num_params"] > t["small"]["num_params"]
assert t["settings"]["repeats"] == 2 and t["settings"]["statistic"] == "median"
EOF'
# the C loader takes it back (test_latency checks the loader itself; here the file bench wrote)
if [ -x "$(dirname "$BIN")/test_latency" ]; then
  check 'SR_LATENCY_TABLE=$T/t.json $(dirname "$BIN")/test_latency >/dev/null 2>&1'
fi
# no --output: the JSON on stdout, the table on stderr; --pi-context and a JSON list grid
check '$BIN bench latency --small $S --big $B --batches "[1]" --contexts 16 --deltas 2 --pi-context 4 --repeats 1 >$T/t2.json 2>$T/run2.err'
check 'python3 -c "import json,sys; t=json.load(open(sys.argv[1])); assert t[\"pi_context\"] == 4 and t[\"batches\"] == [1]" $T/t2.json'
check 'grep -q "^latency table (measured)" $T/run2.err'

# the shipped roofline tables are what scripts/latency_roofline.py computes
check 'python3 scripts/latency_roofline.py --check'

# bad command lines: exit 2, one line naming the option
R="--small $S --big $B"
expect_exit no_sub 2 "what" $BIN bench --small $S --big $B
expect_exit bad_sub 2 "what" $BIN bench speed $R
expect_exit no_small 2 "small" $BIN bench latency --big $B
expect_exit bad_device 2 "device" $BIN bench latency $R --device tpu
expect_exit not_increasing 2 "^splitreason bench: --batches: the values must increase \(1 after 4\)" $BIN bench latency $R --batches 4,1
expect_exit zero_batch 2 "--batches: 0 is not a whole number in \[1, 65536\]" $BIN bench latency $R --batches 0,4
expect_exit frac_ctx 2 "--contexts: 1.5 is not a whole number" $BIN bench latency $R --contexts 1.5
expect_exit words 2 "--deltas: expected whole numbers separated by commas" $BIN bench latency $R --deltas 1,x
expect_exit trailing_comma 2 "--deltas: expected whole numbers separated by commas" $BIN bench latency $R --deltas 1,8,
expect_exit empty_list 2 "--deltas: no values" $BIN bench latency $R --deltas "[]"
expect_exit bool_grid 2 "--batches: expected a comma list" $BIN bench latency $R --batches true
expect_exit repeats0 2 "repeats" $BIN bench latency $R --repeats 0
expect_exit neg_pi 2 "pi-context|pi_context" $BIN bench latency $R --pi-context -1
# bad input: exit 1, one line
expect_exit past_positions 1 "--contexts: 4097 positions .* max_position_embeddings 4096" $BIN bench latency $R --contexts 4096 --repeats 1
expect_exit no_model 1 "--small" $BIN bench latency --small $T/nowhere --big $B
expect_exit clobber 1 "--output" $BIN bench latency $R --output $S/config.json
check '[ ! -e $T/nowhere ] && grep -q "hidden_size" $S/config.json'
cli_done
