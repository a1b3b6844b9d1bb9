#!/usr/bin/env bash
# Builds fuzz/fuzz_grade.c with clang's libFuzzer + ASan + UBSan and fuzzes the grader for
# SECONDS (default 300), starting from fuzz/corpus/ (new interesting inputs are written to
# build-fuzz/corpus/, crashes to build-fuzz/). Each input must finish within 2 s.
#   bash fuzz/run.sh [SECONDS] [extra libFuzzer flags]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-300}
shift || true
mkdir -p build-fuzz/corpus
SRC="fuzz/fuzz_grade.c eval/grade.c eval/grade_util.c eval/grade_normalize.c eval/grade_extract.c
     eval/grade_lex.c eval/grade_parse.c eval/grade_eval.c eval/grade_compare.c common/error.c"
clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I. \
  $SRC -o build-fuzz/fuzz_grade $(pkg-config --cflags --libs libpcre2-8 gmp) -lm
cd build-fuzz
./fuzz_grade -max_total_time="$SECS" -timeout=2 -rss_limit_mb=2048 -max_len=4096 \
  -dict=../fuzz/grade.dict "$@" corpus ../fuzz/corpus
