#!/usr/bin/env bash
# Runs one test executable (argument: its name in the build folder) under
# `mpirun -np 2` with the settings Open MPI needs here (and under ASan); shared by the
# tests/cli_*_mpi.sh tests. Exits 77 (skipped) without mpirun, the executable, or MPI.
set -u
BIN_DIR=$(dirname "${SR_BIN:-build/splitreason}")
EXE="$BIN_DIR/$1"
if ! command -v mpirun >/dev/null 2>&1; then echo "skipped: mpirun not installed"; exit 77; fi
if [ ! -x "$EXE" ]; then echo "skipped: $EXE not built"; exit 77; fi
export OMP_NUM_THREADS=1
# Open MPI under ASan: libmpi/libopen-pal/libopen-rte keep allocations alive at exit (their
# leaks, not ours); the suppressions name only Open MPI's libraries. Full (DWARF) unwinding,
# because Open MPI is built without frame pointers and its plugins are unloaded at
# MPI_Finalize: with the fast unwinder the stacks stop in "<unknown module>" and no
# library name can match. A leak of ours has no Open MPI frame and is still reported.
export LSAN_OPTIONS="suppressions=$(pwd)/tests/lsan_mpi.supp:print_suppressions=0:fast_unwind_on_malloc=0${LSAN_OPTIONS:+:$LSAN_OPTIONS}"
export ASAN_OPTIONS="fast_unwind_on_malloc=0${ASAN_OPTIONS:+:$ASAN_OPTIONS}"
MPIRUN=(mpirun --allow-run-as-root --oversubscribe -np 2)
# Open MPI's own transport probing is slow/noisy in containers: shared memory + self only
MPIRUN+=(--mca btl self,vader --mca pml ob1)
out=$(timeout 300 "${MPIRUN[@]}" "$EXE" 2>&1); rc=$?
echo "$out"
# a build without MPI says so from sr_comm_init: skipped, not failed
if echo "$out" | grep -q "built without MPI"; then echo "skipped: no MPI in this build"; exit 77; fi
exit $rc
