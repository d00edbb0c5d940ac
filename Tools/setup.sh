#!/usr/bin/env bash
# Installs what Refit needs from Debian/Ubuntu packages when it is missing: the OpenCL headers and ICD loader,
# and PoCL (an OpenCL device on the CPU). Safe to run again.
set -euo pipefail
packages=(ocl-icd-opencl-dev opencl-headers pocl-opencl-icd)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${missing[@]}" >/dev/null
fi
