#!/usr/bin/env bash
# The test command (README, and exactly what .ci/run runs):
#   installs the dependencies (idempotent), builds twice -- Release in build/ (with the CUDA
#   backend compiled whenever nvcc exists) and ASan+UBSan in build-asan/ -- and runs ctest in
#   both. Tests labelled "gpu" report skipped where no GPU exists.
# Ends with one line: "N passed, N failed, N skipped" over both runs.
set -uo pipefail
cd "$(dirname "$0")/.."
JOBS=$(nproc 2>/dev/null || echo 2)

bash scripts/install_deps.sh || { echo "0 passed, 1 failed"; exit 1; }

passed=0; failed=0; skipped=0; status=0
run_suite() { # name, build dir, cmake args...
  local name=$1 dir=$2; shift 2
  echo "== $name: configure + build ($dir)"
  if ! cmake -S . -B "$dir" "$@" >"$dir.configure.log" 2>&1; then
    cat "$dir.configure.log"; failed=$((failed + 1)); status=1; return
  fi
  if ! cmake --build "$dir" -j"$JOBS" 2>&1 | tail -n 40; then :; fi
  if [ "${PIPESTATUS[0]}" -ne 0 ]; then
    echo "build failed: $dir"; failed=$((failed + 1)); status=1; return
  fi
  echo "== $name: ctest"
  local log="$dir/ctest.log"
  ctest --test-dir "$dir" --output-on-failure -j"$JOBS" 2>&1 | tee "$log"
  [ "${PIPESTATUS[0]}" -ne 0 ] && status=1
  # "N% tests passed, F tests failed out of T" and "The following tests did not run" (skipped)
  local line t f s
  line=$(grep -E "tests passed, [0-9]+ tests? failed out of [0-9]+" "$log" | tail -n 1)
  t=$(echo "$line" | sed -E 's/.*out of ([0-9]+).*/\1/')
  f=$(echo "$line" | sed -E 's/.*passed, ([0-9]+) tests? failed.*/\1/')
  s=$(grep -cE "\(Skipped\)$" "$log" || true)
  if [ -z "$line" ]; then failed=$((failed + 1)); status=1; return; fi
  passed=$((passed + t - f - s)); failed=$((failed + f)); skipped=$((skipped + s))
}

mkdir -p build build-asan
run_suite "release" build -DCMAKE_BUILD_TYPE=Release
run_suite "asan+ubsan" build-asan -DCMAKE_BUILD_TYPE=Release -DSR_SANITIZE=ON -DSR_CUDA=OFF

echo "$passed passed, $failed failed, $skipped skipped"
exit $status
