#!/usr/bin/env bash
# Times DiffRec pre-training's two costs in Refit and in PyTorch (CPU) in one run, on DiffRec's ML-1M clean split
# with its settings, and prints the ratios: one training epoch, one full evaluation (40 steps × all users, masked
# top-20), and the linear layer's products at the same shapes.
#
#   Tools/bench-vs-pytorch.sh                        # ../shared/data/diffrec-ml-1m/clean, 2 repeats
#   Tools/bench-vs-pytorch.sh --data DIR --repeats 3
#
# PyTorch goes into a throw-away virtual environment under .build/ (never a dependency of Refit): a CPU wheel from
# pip's find-links when one is there (this project's machines have /opt/wheels), else PyPI's torch. The PyTorch
# side (Tools/bench-vs-pytorch/diffrec_torch.py) is written for this comparison with the same shapes and work.
# Refit's evaluation is timed both ways it can run the reverse chain: factored (what `refit eval` does) and step
# by step in item space (the same T whole forward passes PyTorch runs).
set -euo pipefail
cd "$(dirname "$0")/.."
data=../shared/data/diffrec-ml-1m/clean
repeats=2
while (($#)); do
    case "$1" in
        --data) data="$2"; shift 2 ;;
        --repeats) repeats="$2"; shift 2 ;;
        *) echo "usage: $0 [--data DIR] [--repeats N]" >&2; exit 2 ;;
    esac
done
[[ -f "$data/train_list.npy" ]] || { echo "error: $data has no train_list.npy (a DiffRec split folder is needed)" >&2; exit 1; }

venv=.build/bench-torch-venv
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -c "import torch, numpy" 2>/dev/null; then
    echo "installing CPU PyTorch into $venv (once)" >&2
    python3 -m venv "$venv"
    wheel=$(ls /opt/wheels/torch-*+cpu-*.whl 2>/dev/null | sort -V | tail -1 || true)
    "$venv/bin/pip" install --quiet ${wheel:-torch} numpy >&2
fi

Tools/setup.sh >/dev/null
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$PWD/.build/pocl-cache}"
mkdir -p "$POCL_CACHE_DIR"
swift build -c release --product refit >&2
refit="$(swift build -c release --show-bin-path)/refit"

out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "timing Refit (refit bench diffrec, refit bench linear)" >&2
"$refit" bench diffrec --data "$data" --repeats "$repeats" --json > "$out/refit.json"
"$refit" bench linear --no-blas --json > "$out/linear.json"
echo "timing PyTorch $("$venv/bin/python" -c 'import torch; print(torch.__version__)')" >&2
"$venv/bin/python" Tools/bench-vs-pytorch/diffrec_torch.py --data "$data" --repeats "$repeats" > "$out/torch.json"
python3 Tools/bench-vs-pytorch/compare.py "$out/refit.json" "$out/linear.json" "$out/torch.json"
