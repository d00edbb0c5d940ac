#!/usr/bin/env bash
# Builds a release binary and times DiffRec pre-training's two costs with `refit bench diffrec`: one training
# epoch and one full evaluation (all users, T reverse steps), after a warm-up, with GFLOP/s (matrix products).
#
#   Tools/bench-diffrec.sh                                                   # built-in data, demo preset
#   Tools/bench-diffrec.sh --data ../shared/data/diffrec-ml-1m/clean --preset ml-1m-clean --repeats 2
#
# For scale, DiffRec's PyTorch code on a 2-core CPU of this machine kind: about 1–1.5 s per ML-1M epoch and
# about 10 s per split's evaluation (1.7 TFLOP); the aim is under 0.8 s and under 8 s through PoCL.
set -euo pipefail
cd "$(dirname "$0")/.."
Tools/setup.sh
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$PWD/.build/pocl-cache}"
mkdir -p "$POCL_CACHE_DIR"
swift build -c release --product refit >&2
"$(swift build -c release --show-bin-path)/refit" bench diffrec "$@"
