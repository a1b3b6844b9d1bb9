#!/usr/bin/env bash
# Installs the Debian packages splitreason builds against. Idempotent: packages that are
# already installed are skipped, so running it again costs a second.
#   cJSON (config/JSON), zstd (shards), OpenBLAS (CPU matmul), utf8proc (NFC, Unicode classes),
#   PCRE2 (the Qwen2 pre-tokenizer regex), Open MPI (multi-process data parallel: mpirun and
#   the MPI library; NCCL comes with the CUDA toolkit), libcurl (the annotator's LLM judge over
#   HTTPS), GMP (exact big rationals in the math grader), cmake + a C compiler.
# CUDA is optional: when nvcc is on PATH (or in /usr/local/cuda/bin) the CUDA backend is built too.
set -euo pipefail
PKGS=(build-essential cmake pkg-config libcjson-dev libzstd-dev libopenblas-dev libopenblas-openmp-dev
      libutf8proc-dev libpcre2-dev libopenmpi-dev openmpi-bin libcurl4-openssl-dev
      libgmp-dev)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "install_deps: all packages present"
  exit 0
fi
SUDO=""
[ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "install_deps: installing ${missing[*]}"
$SUDO apt-get update -qq
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
