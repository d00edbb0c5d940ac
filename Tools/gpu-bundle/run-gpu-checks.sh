#!/usr/bin/env bash
# Runs Refit's device checks and benchmarks on this machine, from the bundle folder alone: no Swift, no source tree.
# It finds NVIDIA's OpenCL driver, points the bundled ICD loader at it, and writes one file per step into a results
# folder, with summary.txt (each step's exit code and seconds). A failing step is recorded and the run goes on.
#
#   bash run-gpu-checks.sh [RESULTS_DIR]        (default: ./results-HOST-UTCTIME)
#
# Environment (all optional):
#   REFIT_DATA              a DiffRec ML-1M split folder (train_list.npy …); default ./data/diffrec-ml-1m/clean beside
#                           this script; without one, the ML-1M steps run on the built-in data instead
#   REFIT_NVIDIA_OPENCL     the path of libnvidia-opencl.so.1, when the search below does not find it
#   REFIT_SYSTEM_ICD_DIR    where the system's ICD files are (default /etc/OpenCL/vendors)
#   OCL_ICD_VENDORS         when set, used as it is: the script writes no ICD file of its own
# Meant to take under 8 minutes on one GPU (not yet timed on one). Each step has a time limit, so a hung step cannot stop the run.
set -euo pipefail

bundle="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
refit="$bundle/refit"
host="$(hostname 2>/dev/null || echo host)"
results="${1:-$PWD/results-$host-$(date -u +%Y%m%dT%H%M%SZ)}"
mkdir -p "$results"
results="$(cd "$results" && pwd)"
summary="$results/summary.txt"
failures=0

say() { echo "$*" | tee -a "$summary"; }
now() { date +%s.%N; }

# step NAME LIMIT_SECONDS COMMAND…: stdout to NAME.txt (or NAME itself when it has an extension), stderr to NAME.err
# (removed when empty); one summary line.
step() {
  local name="$1" limit="$2"; shift 2
  local out="$results/$name" started rc=0
  [[ "$name" == *.* ]] || out="$out.txt"
  local err="${out%.*}.err"
  started="$(now)"
  if command -v timeout >/dev/null; then
    timeout --kill-after=10 "$limit" "$@" >"$out" 2>"$err" || rc=$?
  else
    "$@" >"$out" 2>"$err" || rc=$?
  fi
  [ -s "$err" ] || rm -f "$err"
  local seconds
  seconds="$(awk -v a="$started" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }')"
  local note=""
  [ "$rc" -eq 124 ] && note="  (stopped at the ${limit} s limit)"
  [ "$rc" -eq 0 ] || failures=$((failures + 1))
  say "$(printf '%-34s exit %-3s %8s s%s' "$name" "$rc" "$seconds" "$note")"
  return 0
}

: >"$summary"
say "refit GPU checks on $host, $(date -u +%Y-%m-%dT%H:%M:%SZ); bundle $bundle"

# --- The OpenCL loader and NVIDIA's driver -------------------------------------------------------------------------
# The bundled libOpenCL.so.1 (Debian's ICD loader) goes first on the library path. It reads the ICD files in
# /etc/OpenCL/vendors, each naming a vendor library, or those in $OCL_ICD_VENDORS when that is set. Container images
# with NVIDIA's driver often have the library but no nvidia.icd: then the script writes one into a private folder,
# beside copies of the system's ICD files (so that other devices, e.g. PoCL, stay visible).
export LD_LIBRARY_PATH="$bundle/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
system_icds="${REFIT_SYSTEM_ICD_DIR:-/etc/OpenCL/vendors}"

find_nvidia_opencl() {
  if [ -n "${REFIT_NVIDIA_OPENCL:-}" ]; then echo "$REFIT_NVIDIA_OPENCL"; return; fi
  # ldconfig lives in /sbin on most systems, which a bare PATH lacks.
  local ldconfig found dir candidate
  ldconfig="$(command -v ldconfig || true)"
  for candidate in /sbin/ldconfig /usr/sbin/ldconfig; do
    if [ -z "$ldconfig" ] && [ -x "$candidate" ]; then ldconfig="$candidate"; fi
  done
  if [ -n "$ldconfig" ]; then
    found="$("$ldconfig" -p 2>/dev/null | awk '$1 == "libnvidia-opencl.so.1" && /x86-64/ { print $NF; exit }')"
    if [ -n "$found" ]; then echo "$found"; return; fi
  fi
  for dir in /usr/lib/x86_64-linux-gnu /usr/lib64 /usr/local/nvidia/lib64 /usr/local/nvidia/lib /usr/lib /lib/x86_64-linux-gnu \
             /usr/local/cuda/lib64 /usr/local/cuda/compat /run/nvidia/driver/usr/lib/x86_64-linux-gnu; do
    if [ -e "$dir/libnvidia-opencl.so.1" ]; then echo "$dir/libnvidia-opencl.so.1"; return; fi
  done
}

nvidia_lib="$(find_nvidia_opencl || true)"
icd_note="system ICD files in $system_icds"
if [ -n "${OCL_ICD_VENDORS:-}" ]; then
  icd_note="OCL_ICD_VENDORS=$OCL_ICD_VENDORS, given by the caller"
elif [ -n "$nvidia_lib" ] && ! grep -qs "libnvidia-opencl" "$system_icds"/*.icd; then
  private="$results/opencl-vendors"
  mkdir -p "$private"
  for f in "$system_icds"/*.icd; do [ -e "$f" ] && cp "$f" "$private/"; done
  echo "$nvidia_lib" >"$private/nvidia.icd"
  export OCL_ICD_VENDORS="$private"
  icd_note="no NVIDIA ICD file in $system_icds: wrote $private/nvidia.icd naming $nvidia_lib, OCL_ICD_VENDORS=$private"
fi
say "NVIDIA OpenCL driver: ${nvidia_lib:-not found}"
say "ICD files: $icd_note"

{
  echo "# uname -a"; uname -a
  echo; echo "# /etc/os-release"; cat /etc/os-release 2>/dev/null || true
  echo; echo "# glibc"; ldd --version 2>&1 | head -1 || true
  echo; echo "# CPUs and memory"; nproc 2>/dev/null || true; free -g 2>/dev/null || true
  echo; echo "# ldd refit (libOpenCL.so.1 should come from $bundle/lib)"; ldd "$refit" 2>&1 || true
  echo; echo "# LD_LIBRARY_PATH=$LD_LIBRARY_PATH"; echo "# OCL_ICD_VENDORS=${OCL_ICD_VENDORS:-}"
  echo "# NVIDIA OpenCL driver: ${nvidia_lib:-not found}"
  echo; echo "# ICD files used"
  for f in "${OCL_ICD_VENDORS:-$system_icds}"/*.icd; do [ -e "$f" ] && echo "$f: $(cat "$f")"; done
} >"$results/environment.txt" 2>&1

if command -v nvidia-smi >/dev/null; then
  step nvidia-smi 30 nvidia-smi
  step nvidia-smi-query 30 nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm --format=csv
else
  say "nvidia-smi: not found"
fi

# --- What the binary sees --------------------------------------------------------------------------------------------
step version 30 "$refit" --version
step devices 60 "$refit" devices

# GPU selectors from `refit devices`: a line "* opencl:P:D  NAME", then "    type           GPU, …".
mapfile -t gpus < <(awk '/^[* ] opencl:[0-9]+:[0-9]+ / { selector = $2 } /^ +type +GPU/ && selector != "" { print selector; selector = "" }' \
  "$results/devices.txt" 2>/dev/null || true)
if [ "${#gpus[@]}" -gt 0 ]; then
  devices=("${gpus[@]}")
  say "GPUs: ${gpus[*]}"
else
  first="$(awk '/^[* ] opencl:[0-9]+:[0-9]+ / { print $2; exit }' "$results/devices.txt" 2>/dev/null || true)"
  if [ -z "$first" ]; then
    say "NOTE: no OpenCL device at all (see devices.txt and environment.txt): nothing to check"
    say "failed steps: $((failures + 1))"
    exit 1
  fi
  devices=("$first")
  say "NOTE: no GPU found; checking the first OpenCL device instead ($first, a CPU device such as PoCL)"
fi
main="${devices[0]}"
tag() { echo "$1" | tr ':' '-'; }

# --- Correctness: every kernel and the whole models against the CPU reference (exit 1 when a row fails) ---------------
for d in "${devices[@]}"; do
  step "check-$(tag "$d").json" 240 "$refit" check --device "$d" --json
done

# --- Kernel parameters for the first device: refit tune writes its row into the results' own table, which every later
# step then loads (REFIT_TUNING), so the benchmarks below run what it chose ------------------------------------------
export REFIT_TUNING="$results/tuning.json"
step "tune-$(tag "$main").json" 240 "$refit" tune --device "$main" --quick --json --out "$REFIT_TUNING"
[ -e "$REFIT_TUNING" ] || unset REFIT_TUNING

# --- Speed, on the first device ----------------------------------------------------------------------------------------
step "bench-linear-$(tag "$main")" 180 "$refit" bench linear --device "$main"
step "bench-diffrec-builtin" 180 "$refit" bench diffrec --device "$main"

data="${REFIT_DATA:-$bundle/data/diffrec-ml-1m/clean}"
runs="$results/runs"
if [ -e "$data/train_list.npy" ]; then
  say "ML-1M split: $data"
  step "bench-diffrec-ml1m" 240 "$refit" bench diffrec --device "$main" --data "$data" --preset ml-1m-clean
  step "pretrain-ml1m" 420 "$refit" pretrain --device "$main" --data "$data" --preset ml-1m-clean --epochs 20 --out "$runs/ml1m"
  step "finetune-ml1m" 300 "$refit" finetune --device "$main" --from "$runs/ml1m" --epochs 2 --out "$runs/ml1m-refit"
else
  say "ML-1M split: none at $data (set REFIT_DATA); pre-training and fine-tuning on the built-in data"
  step "pretrain-builtin" 300 "$refit" pretrain --device "$main" --data builtin:demo --preset demo --epochs 20 --out "$runs/builtin"
  step "finetune-builtin" 300 "$refit" finetune --device "$main" --from "$runs/builtin" --preset demo --epochs 2 --out "$runs/builtin-refit"
fi
step demo 300 "$refit" demo --device "$main" --out "$runs/demo"

# --- What to send back: everything but the weights and the fine-tuning targets (megabytes, rebuilt from the data) --------
say "failed steps: $failures"
archive="$results.tar.gz"
tar -czf "$archive" --exclude='*.safetensors' --exclude='targets.tsv' -C "$(dirname "$results")" "$(basename "$results")" 2>/dev/null \
  && say "send back: $archive ($(du -h "$archive" | cut -f1))"
[ "$failures" -eq 0 ]
