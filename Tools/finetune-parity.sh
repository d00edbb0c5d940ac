#!/usr/bin/env bash
# Runs one fixed set of pre-training and fine-tuning commands on the built-in data with two refit binaries and
# compares what they print, digit for digit, with the timings taken out: the check that a refactoring left every
# measured number as it was. Exits 1 on any difference. About 6 minutes per binary on 2 cores through PoCL.
# Usage: Tools/finetune-parity.sh BEFORE_BINARY AFTER_BINARY [OUT_DIR]
# (build the "before" binary from the older commit, e.g. in a worktree: swift build -c release --product refit)
set -uo pipefail
[ $# -ge 2 ] || { echo "usage: $0 BEFORE_BINARY AFTER_BINARY [OUT_DIR]" >&2; exit 2; }
before=$(realpath "$1"); after=$(realpath "$2"); out=${3:-.build/finetune-parity}
mkdir -p "$out"; out=$(realpath "$out")
export POCL_CACHE_DIR="${POCL_CACHE_DIR:-$out/pocl-cache}"

capture() {  # capture NAME BINARY
  local dir="$out/$1" bin=$2 r="$out/$1/runs"
  rm -rf "$dir"; mkdir -p "$r"
  run() { local name=$1; shift; "$bin" "$@" > "$dir/$name.out" 2> "$dir/$name.err"; echo "exit $?" >> "$dir/$name.out"; }
  run pre-diffrec pretrain --data builtin:demo --out "$r/diffrec" --quiet
  run ft-default finetune --from "$r/diffrec" --out "$r/ft-default" --epochs 3
  run ft-design finetune --from "$r/diffrec" --out "$r/ft-design" --preset design --epochs 2
  run ft-lift finetune --from "$r/diffrec" --out "$r/ft-lift" --preset ease-lift --epochs 2
  run ft-ppo finetune --from "$r/diffrec" --out "$r/ft-ppo" --preset design --ppo-epochs 2 --kl-coef 0.1 --explore targets --epochs 1 --user-fraction 0.3
  run ft-ndcg finetune --from "$r/diffrec" --out "$r/ft-ndcg" --preset design --reward collab-ndcg --neighbors item-graph --rollouts 1 --epochs 1 --user-fraction 0.3
  run ft-mixed finetune --from "$r/diffrec" --out "$r/ft-mixed" --preset design --reward mixed --estimator pathwise --anchor 0.5 --anchor-unseen-only --epochs 1 --user-fraction 0.3
  run ft-layers finetune --from "$r/diffrec" --out "$r/ft-layers" --train-layers output --neighbors user-knn --epochs 2
  run ft-resume finetune --from "$r/diffrec" --out "$r/ft-default" --epochs 4 --resume
  run baselines baselines --from "$r/diffrec"
  run pre-sasrec pretrain --model sasrec --data builtin:demo --preset demo-seq --out "$r/sasrec" --quiet
  run pre-dreamrec pretrain --model dreamrec --encoder-from "$r/sasrec" --preset demo-seq --out "$r/dreamrec" --quiet
  run ft-seq finetune --from "$r/dreamrec" --out "$r/ft-seq" --epochs 2
  run ft-seq-ppo finetune --from "$r/dreamrec" --out "$r/ft-seq-ppo" --reward seq-collab --ppo-epochs 2 --kl-coef 0.05 --epochs 1
  run ablate ablate --from "$r/diffrec" --out "$r/ablate" --rewards collab-loglik,self-loglik --seeds 1 --epochs 1 --user-fraction 0.2 --quiet
  run demo demo --out "$r/demo" --quiet
}

# Paths, seconds and throughput differ between runs; the pathwise estimator's divergence column was once printed as
# "KL … clip 0.000" and is now "anchor distance …".
normalise() {
  sed -E "s#$out/(before|after)#RUN#g; s/[0-9.]+ s\b/T s/g; s/[0-9]+ users\/s/U users\/s/g; s/KL ([-0-9.e+]+)  clip 0\.000/anchor distance \1/" "$1"
}

capture before "$before"
capture after "$after"
status=0
for file in "$out"/before/*.out "$out"/before/*.err; do
  name=$(basename "$file")
  if diff <(normalise "$file") <(normalise "$out/after/$name") > "$out/$name.diff"; then
    echo "same      $name"
  else
    echo "DIFFERENT $name (see $out/$name.diff)"; status=1
  fi
done
exit $status
