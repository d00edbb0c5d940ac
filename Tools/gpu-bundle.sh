#!/usr/bin/env bash
# Builds the GPU bundle: a folder that runs Refit's checks and benchmarks on a machine with a GPU and no Swift.
#
#   Tools/gpu-bundle.sh            → dist/refit-linux-x86_64/ (about 85 MB) and dist/refit-linux-x86_64.tar.gz
#
# The folder holds a release binary with the Swift runtime linked in (--static-swift-stdlib: it needs only glibc ≥ 2.35,
# libstdc++ and libOpenCL.so.1 from the system), Debian's OpenCL ICD loader in lib/ (the machine's driver supplies the
# rest), run-gpu-checks.sh and a README.txt. Copy it to the GPU machine, run `bash run-gpu-checks.sh` there and send
# back the results archive it names (docs/gpu.md).
set -euo pipefail
cd "$(dirname "$0")/.."
Tools/setup.sh >&2

dist=dist/refit-linux-x86_64
build=.build-static
swift build -c release --product refit --static-swift-stdlib --build-path "$build" >&2
binary="$(swift build -c release --product refit --static-swift-stdlib --build-path "$build" --show-bin-path)/refit"

# The loader Debian ships (package ocl-icd-libopencl1): the real file, not the symlink.
loader="$(readlink -f /usr/lib/x86_64-linux-gnu/libOpenCL.so.1)"
[ -f "$loader" ] || { echo "gpu-bundle: no /usr/lib/x86_64-linux-gnu/libOpenCL.so.1 (apt-get install ocl-icd-libopencl1)" >&2; exit 1; }

rm -rf "$dist"
mkdir -p "$dist/lib"
cp "$binary" "$dist/refit"
strip "$dist/refit" 2>/dev/null || true
cp "$loader" "$dist/lib/libOpenCL.so.1"
cp Tools/gpu-bundle/run-gpu-checks.sh "$dist/"
chmod +x "$dist/refit" "$dist/run-gpu-checks.sh"

version="$("$dist/refit" --version | head -1)"
cat >"$dist/README.txt" <<EOF
$version, built $(date -u +%Y-%m-%d) on $(. /etc/os-release && echo "$PRETTY_NAME").

Runs Refit's device checks and benchmarks on a Linux x86-64 machine with an NVIDIA GPU. Needs glibc 2.35 or newer,
libstdc++ (GCC 12 or newer) and NVIDIA's driver with its OpenCL library (libnvidia-opencl.so.1); no Swift.

    bash run-gpu-checks.sh                 # meant to take under 8 minutes on one GPU

It finds the driver, writes an ICD file for it when /etc/OpenCL/vendors has none (and points the bundled loader,
lib/libOpenCL.so.1, at it), then runs: refit --version, refit devices, refit check on every GPU, refit tune --quick, refit bench linear,
refit bench diffrec, a short pre-training and fine-tuning, and refit demo. Every step writes one file into
results-HOST-TIME/, and summary.txt lists each step's exit code and seconds.

For the ML-1M steps put DiffRec's split (train_list.npy, valid_list.npy, test_list.npy) in ./data/diffrec-ml-1m/clean
or give its folder in REFIT_DATA; without it those steps use the built-in synthetic data.

Send back: results-HOST-TIME.tar.gz (everything but the model weights).
Without a GPU it checks the first OpenCL device (e.g. PoCL) and says so in summary.txt.
EOF

tar -czf "$dist.tar.gz" -C dist "$(basename "$dist")"
echo "ldd $dist/refit:" >&2
ldd "$dist/refit" >&2 || true
du -sh "$dist" "$dist.tar.gz" >&2
echo "$dist"
