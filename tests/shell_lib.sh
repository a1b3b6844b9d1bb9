# The shell tests' common part, sourced by tests/cli_*.sh:  . "$(dirname "$0")/shell_lib.sh" NAME
# Sets BIN (the command) and T (a fresh scratch folder for NAME), counts checks, and ends with
# the summary line "N passed, N failed" (cli_done).
set -u
BIN=${SR_BIN:-build/splitreason}
T=${SR_TMP:-/tmp/splitreason_test}/$1
rm -rf "$T" && mkdir -p "$T"
pass=0; fail=0
ok()  { pass=$((pass + 1)); }
bad() { fail=$((fail + 1)); echo "FAIL: $*" >&2; }
check() { if eval "$1"; then ok; else bad "$1"; fi; }

# expect_exit NAME RC PATTERN CMD...: the command fails with an exit status matching RC (a regex:
# 1, 2, "1|2", or "[1-9][0-9]*" for any failure) within 120 s, with no crash or sanitizer report,
# and its last stderr line matches PATTERN. Its output is kept in $T/NAME.out and $T/NAME.err.
expect_exit() {
  local name=$1 want=$2 pat=$3; shift 3
  timeout 120 "$@" >"$T/$name.out" 2>"$T/$name.err"; local rc=$?
  local last; last=$(tail -n 1 "$T/$name.err")
  if ! [[ $rc =~ ^($want)$ ]]; then bad "$name: exit $rc, wanted $want ('$last')"; return; fi
  if grep -qE "internal error|AddressSanitizer|runtime error|LeakSanitizer" "$T/$name.err"; then
    bad "$name: crash or sanitizer report"; return
  fi
  if ! grep -qE -- "$pat" <<<"$last"; then bad "$name: '$last' !~ /$pat/"; return; fi
  ok
}

# json_lines FILE [N]: every line is strict JSON for Python's json (no NaN / Infinity / nan),
# and there are N lines (at least one when N is not given)
json_lines() {
  python3 -c '
import json, sys
def no_const(c): raise ValueError("non-finite number " + c)
n = 0
for line in open(sys.argv[1], encoding="utf-8"):
    json.loads(line, parse_constant=no_const); n += 1
want = int(sys.argv[2]) if len(sys.argv) > 2 else None
sys.exit(0 if (n == want if want is not None else n > 0) else 1)' "$@"
}

cli_done() {
  echo "$pass passed, $fail failed"
  [ "$fail" -eq 0 ]
}
