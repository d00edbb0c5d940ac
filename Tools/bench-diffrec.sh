#!/usr/bin/env bash
# Times DiffRec pre-training in a release build: one training epoch and one full evaluation of each split,
# after a warm-up (epoch 1 and its evaluations compile the kernels; epoch 2 is reported), with GFLOP/s
# estimates (matrix multiplications only, as Refit's PretrainBenchmark counts them).
#
#   Tools/bench-diffrec.sh                                              # built-in demo data, demo preset
#   Tools/bench-diffrec.sh --data ../shared/data/diffrec-ml-1m/clean --preset ml-1m-clean
#   Tools/bench-diffrec.sh --data ... --device cpu                      # any `refit pretrain` flag passes through
#
# DiffRec's PyTorch code on a 2-core CPU of this project's machine kind: about 1 s per ML-1M epoch and about
# 10 s per split's evaluation (1.7 TFLOP); the aim is under 0.8 s and under 8 s through PoCL.
set -euo pipefail
cd "$(dirname "$0")/.."
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$PWD/.build/pocl-cache}"
mkdir -p "$POCL_CACHE_DIR"
swift build -c release --product refit >&2
binary="$(swift build -c release --show-bin-path)/refit"
out="$(mktemp -d "${TMPDIR:-/tmp}/refit-bench-XXXXXX")"
trap 'rm -rf "$out"' EXIT

"$binary" pretrain "$@" --epochs 2 --eval-every 1 --patience 100 --out "$out/run" --force --quiet >/dev/null

python3 - "$out/run" <<'PY'
import json, sys
run = sys.argv[1]
config = json.load(open(f"{run}/config.json"))
lines = [json.loads(l) for l in open(f"{run}/metrics.jsonl") if l.strip()]
s = config["diffrec"]
items, emb, steps = config["dataStatistics"]["items"], s["embeddingSize"], s["steps"]
users = config["dataStatistics"]["users"]
# The layers of DiffRec's DNN: I+E → dims reversed … → dims … → I (see DiffRecArchitecture).
out_dims = s["dims"] + [items]
in_dims = out_dims[::-1]
layers = list(zip([in_dims[0] + emb] + in_dims[1:-1], in_dims[1:])) + list(zip(out_dims[:-1], out_dims[1:]))
forward = 2 * emb * emb + sum(2 * k * n for k, n in layers)
training = 2 * forward + sum(2 * k * n for k, n in layers[1:]) + 2 * layers[0][1] * emb
epoch = next(l for l in lines if l["kind"] == "epoch" and l["epoch"] == 2)
training_users = epoch["users_per_second"] * epoch["seconds"]
print(f"device      {config['device']}")
print(f"model       DiffRec {s['dims']}, {items} items, T={steps}, batch {s['batchSize']}")
print(f"epoch       {epoch['seconds']:.3f} s  ({epoch['users_per_second']:.0f} users/s, "
      f"{training_users * training / 1e9 / epoch['seconds']:.1f} GFLOP/s)")
for split in ("valid", "test"):
    e = next(l for l in lines if l["kind"] == "eval" and l["epoch"] == 2 and l["split"] == split)
    gflop = users * steps * forward / 1e9
    print(f"eval {split:<6} {e['seconds']:.3f} s  ({gflop:.1f} GFLOP, {gflop / e['seconds']:.1f} GFLOP/s; "
          f"Recall@20 {e['recall@20']:.4f})")
PY
