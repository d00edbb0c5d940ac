#!/usr/bin/env bash
# Builds a release binary and times the linear layer (forward, dX, dW) at DiffRec's ML-1M shapes and 1024³:
# GFLOP/s on the chosen device beside the CPU reference and OpenBLAS (when installed).
# Arguments go to `refit bench linear`, e.g.  Tools/bench-linear.sh --device opencl:0:0 --repeats 50
# SCRATCH_PATH=dir builds there instead of .build.
set -euo pipefail
cd "$(dirname "$0")/.."
Tools/setup.sh
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$PWD/.build/pocl-cache}"
mkdir -p "$POCL_CACHE_DIR"
scratch=()
[ -n "${SCRATCH_PATH:-}" ] && scratch=(--scratch-path "$SCRATCH_PATH")
swift build -c release --product refit "${scratch[@]}"
bin="$(swift build -c release --show-bin-path "${scratch[@]}")"
"$bin/refit" bench linear "$@"
