#!/usr/bin/env bash
# The quick start: install the OpenCL packages if missing, build a release binary, list devices, run the demo.
set -euo pipefail
cd "$(dirname "$0")/.."
Tools/setup.sh
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$PWD/.build/pocl-cache}"
swift build -c release --product refit
.build/release/refit devices
.build/release/refit demo "$@"
