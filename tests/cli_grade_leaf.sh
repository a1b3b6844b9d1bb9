#!/usr/bin/env bash
# The math grader is a leaf of the toolkit (DESIGN.md "Layout"): a reward module in train/ and
# the evaluation in eval/ use it, so grade/ may include nothing of the project but common/, and
# common/ nothing of grade/. Inside grade/, no .c file includes another .c file, and the LaTeX
# parser's private header grade_latex.h stays private to grade_latex*.c. This test reads the
# #include lines; it fails naming each offending line.
. "$(dirname "$0")/shell_lib.sh" cli_grade_leaf
cd "$(dirname "$0")/.."

[ -f grade/grade.h ] && ok || bad "grade/grade.h is missing"
n_files=0
for f in grade/*.c grade/*.h; do
  n_files=$((n_files + 1))
  while IFS= read -r line; do
    inc=$(printf '%s\n' "$line" | sed -E 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"([^"]*)".*/\1/')
    case "$inc" in
      */*) # a path: only ../common/NAME.h
        if [[ "$inc" =~ ^\.\./common/[A-Za-z0-9_]+\.h$ ]] && [ -f "common/${inc#../common/}" ]; then ok
        else bad "$f: #include \"$inc\" reaches outside grade/ and common/"; fi ;;
      *.c) bad "$f: #include \"$inc\" includes a .c file" ;;
      grade_latex.h)
        case "$(basename "$f")" in
          grade_latex*.c) ok ;;
          *) bad "$f: includes grade_latex.h, private to the LaTeX parser (grade_latex*.c)" ;;
        esac ;;
      *) if [ -f "grade/$inc" ]; then ok; else bad "$f: #include \"$inc\" is not a file of grade/"; fi ;;
    esac
  done < <(grep -E '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$f")
done
[ "$n_files" -ge 10 ] && ok || bad "only $n_files files in grade/"
# common/ is below the grader: it never includes it
while IFS= read -r hit; do
  bad "common/ includes the grader: $hit"
done < <(grep -nE '^[[:space:]]*#[[:space:]]*include[[:space:]]*"[^"]*grade[^"]*"' common/*.c common/*.h 2>/dev/null)
# the grader lives in grade/ only: no second copy of its sources elsewhere
for d in eval cli data train annotate common; do
  for f in "$d"/grade*.c "$d"/grade*.h; do
    [ -e "$f" ] && bad "$f: the grader's sources live in grade/"
  done
done
ok
cli_done
