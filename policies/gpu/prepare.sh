#!/usr/bin/env bash
# Here, on a machine without a GPU: everything policies/gpu/run.sh needs on
# the GPU machine, into .gpu/a and .gpu/b (ignored), each small enough for
# one transfer of the device tool (64 MiB with the working tree; docs/GPU.md
# says how the two are sent).
#
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#       --platform manylinux_2_28_x86_64 -d /work/gpuwheel onnxruntime-gpu==1.31.1
#   bash policies/gpu/prepare.sh /work/gpuwheel/onnxruntime_gpu-1.31.1-*.whl [REAL_SIZE_DIR]
#
# .gpu/a: ONNX Runtime's CUDA provider (code for the H200's sm_90 only:
#         keep_arch.py), xz.
# .gpu/b: ONNX Runtime's C library and the Python package of the same wheel
#         (bare ONNX Runtime), the dev-profile `ganglion` and the parity test
#         binaries, stripped, xz;
#         with REAL_SIZE_DIR (make_real_size.py's), the real-size ACT and
#         Diffusion bundles without their weights (weights.py strip).
# The test binaries find their fixtures under the path they were built at,
# written to .gpu/b/build-root for run.sh.
set -euo pipefail
cd "$(dirname "$0")/../.."
wheel=${1:?usage: prepare.sh ONNXRUNTIME_GPU_WHEEL [REAL_SIZE_DIR]}
real=${2:-}
arch=${GPU_SM:-90}
rm -rf .gpu
mkdir -p .gpu/a .gpu/b
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

unzip -q -o "$wheel" 'onnxruntime/*' -x 'onnxruntime/transformers/*' 'onnxruntime/quantization/*' \
    'onnxruntime/tools/*' 'onnxruntime/datasets/*' -d "$tmp"
capi=$tmp/onnxruntime/capi
python3 policies/gpu/keep_arch.py "$capi/libonnxruntime_providers_cuda.so" "$arch"
xz -9 -T2 -c "$capi/libonnxruntime_providers_cuda.so.sm$arch" >.gpu/a/libonnxruntime_providers_cuda.so.xz
lib=$(basename "$capi"/libonnxruntime.so.1.*)
xz -9 -T2 -c "$capi/$lib" >".gpu/b/$lib.xz"
rm "$capi"/libonnxruntime_providers_cuda.so* "$capi/$lib"
tar -C "$tmp" -cf - onnxruntime | xz -9 -T2 >.gpu/b/pyort.tar.xz

# shellcheck disable=SC1091
source .ci/env
cargo build -p ganglion
tests=$(cargo test -p ganglion-policies --test lerobot_vla --test lerobot_diffusion --no-run \
    --message-format=json 2>/dev/null | python3 -c '
import json, sys
for line in sys.stdin:
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m.get("executable") and m["target"]["kind"] == ["test"]:
        print(m["executable"])')
for exe in target/debug/ganglion $tests; do
    name=$(basename "$exe" | sed 's/-[0-9a-f]*$//')
    strip -o "$tmp/$name" "$exe"
    xz -9 -T2 -c "$tmp/$name" >".gpu/b/$name.xz"
done
pwd >.gpu/b/build-root

if [ -n "$real" ]; then
    .venv/bin/python policies/gpu/weights.py strip "$real" "$tmp/real"
    tar -C "$tmp/real" -cf - . | xz -9 -T2 >.gpu/b/real-size.tar.xz
fi
du -b .gpu/a .gpu/b
