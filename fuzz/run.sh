#!/usr/bin/env bash
# Fuzzes one parser with clang's libFuzzer + ASan + UBSan:
#   bash fuzz/run.sh NAME [SECONDS] [extra libFuzzer flags]     # NAME: fuzz/fuzz_NAME.c
#   bash fuzz/run.sh NAME merge [libFuzzer flags]               # fold new finds into fuzz/corpus/NAME
#     (-use_counters=0 keeps one input per new edge, not per hit-count bucket: a smaller corpus)
# Builds build-fuzz/ (cmake -DSR_FUZZ=ON, clang, no CUDA), starts from the committed corpus
# fuzz/corpus/NAME/ (new interesting inputs go to build-fuzz/corpus/NAME/, crashes to
# build-fuzz/crash-*), with fuzz/NAME.dict when there is one, a 2 s per-input timeout and a
# 2 GB RSS limit. `merge` minimises committed + new inputs (-merge=1) into fuzz/corpus/NAME/.
set -euo pipefail
cd "$(dirname "$0")/.."
NAME=${1:?usage: bash fuzz/run.sh NAME [SECONDS|merge] [libFuzzer flags]}
shift
MODE=${1:-300}
shift || true
[ -f "fuzz/fuzz_$NAME.c" ] || { echo "fuzz/run.sh: no harness fuzz/fuzz_$NAME.c" >&2; exit 2; }
cmake -S . -B build-fuzz -DCMAKE_C_COMPILER=clang -DSR_FUZZ=ON -DSR_CUDA=OFF \
  -DCMAKE_BUILD_TYPE=Release >build-fuzz.configure.log 2>&1 || { cat build-fuzz.configure.log; exit 1; }
cmake --build build-fuzz -j"$(nproc)" --target "fuzz_$NAME" >/dev/null
mkdir -p "build-fuzz/corpus/$NAME" "fuzz/corpus/$NAME"
DICT=()
[ -f "fuzz/$NAME.dict" ] && DICT=(-dict="fuzz/$NAME.dict")
if [ "$MODE" = merge ]; then
  rm -rf "build-fuzz/merged-$NAME" && mkdir -p "build-fuzz/merged-$NAME"
  "build-fuzz/fuzz_$NAME" -merge=1 -timeout=2 -rss_limit_mb=2048 "$@" "build-fuzz/merged-$NAME" \
    "fuzz/corpus/$NAME" "build-fuzz/corpus/$NAME"
  rm -rf "fuzz/corpus/$NAME" && mv "build-fuzz/merged-$NAME" "fuzz/corpus/$NAME"
  echo "fuzz/corpus/$NAME: $(ls "fuzz/corpus/$NAME" | wc -l) inputs"
  exit 0
fi
cd build-fuzz
"./fuzz_$NAME" -max_total_time="$MODE" -timeout=2 -rss_limit_mb=2048 -max_len=65536 \
  "${DICT[@]/-dict=/-dict=../}" "$@" "corpus/$NAME" "../fuzz/corpus/$NAME"
