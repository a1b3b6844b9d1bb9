#!/usr/bin/env bash
# GRPO data parallel across 2 MPI processes: runs tests/test_grpo_dist.c under `mpirun -np 2`
# (3 GRPO steps with split rollouts on 2 processes x 1 prompt vs 1 process x 2 prompts: the same
# rewards, losses and weights; a 2-process stop + resume vs the straight run, bit for bit).
# Skipped (exit 77) when mpirun is not installed or the build has no MPI.
exec bash "$(dirname "$0")/mpi_run.sh" test_grpo_dist
