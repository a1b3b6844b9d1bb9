#!/usr/bin/env bash
# Data parallel with ZeRO-1 across 2 MPI processes on this machine: runs tests/test_dist.c
# under `mpirun -np 2` (its mpirun mode: several optimizer steps of a tiny Qwen2 on a global
# batch split over the ranks vs one process on the whole batch, bit-identical parameters on
# every rank, per-rank optimizer state save/load). Skipped (exit 77) when mpirun is not
# installed or the build has no MPI.
exec bash "$(dirname "$0")/mpi_run.sh" test_dist
