#!/usr/bin/env bash
# The test command: install the OpenCL packages if missing, then run every test (kernels against the CPU
# reference through PoCL; real-data tests read ../shared/data and skip, saying so, when it is absent).
set -euo pipefail
cd "$(dirname "$0")/.."
Tools/setup.sh
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$PWD/.build/pocl-cache}"
mkdir -p "$POCL_CACHE_DIR"
swift test "$@"
