#!/usr/bin/env bash
# SFT data parallel across 2 MPI processes: runs tests/test_sft_dist.c under `mpirun -np 2`
# (3 SFT steps on 2 ranks x 1 sequence vs 1 process x 2 sequences; a 2-rank stop + resume vs the
# straight 2-rank run, bit for bit). Skipped (exit 77) when mpirun is not installed or the build
# has no MPI.
exec bash "$(dirname "$0")/mpi_run.sh" test_sft_dist
