# Shared by the cross/ scripts: paths, the cross cargo, Python, and the
# aarch64 ONNX Runtime library. Source it; it does nothing by itself.
# shellcheck shell=bash

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
TARGET=aarch64-unknown-linux-gnu
# Own target dir: Debian's rustc 1.96 must never share artifacts with the
# host's rustup toolchain in target/.
CROSS_TARGET_DIR="${CROSS_TARGET_DIR:-$ROOT/target-aarch64}"

# Debian's cargo/rustc by absolute path (~/.cargo/bin stays first on PATH
# for host builds), with the cross configuration passed explicitly.
cross_cargo() {
    CARGO_TARGET_DIR="$CROSS_TARGET_DIR" \
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$ROOT/cross/qemu-runner" \
        /usr/bin/cargo --config "$ROOT/cross/aarch64.toml" "$@"
}

# The host Python the tests use (GANGLION_PYTHON, else the workspace .venv,
# else python3), as the tests themselves find it.
host_python() {
    if [ -n "${GANGLION_PYTHON:-}" ]; then
        echo "$GANGLION_PYTHON"
    elif [ -x "$ROOT/.venv/bin/python" ]; then
        echo "$ROOT/.venv/bin/python"
    else
        command -v python3
    fi
}

# The onnxruntime version CI pins for the host (requirements-ci.txt).
ort_version() {
    sed -n 's/^onnxruntime==\([0-9.]*\).*/\1/p' "$ROOT/requirements-ci.txt" | head -n1
}

# Prints the path of the aarch64 libonnxruntime, fetching it once from the
# PyPI manylinux aarch64 wheel (the wheel is a zip; only the .so is kept).
aarch64_ort_lib() {
    local version dir lib
    version="$(ort_version)"
    [ -n "$version" ] || { echo "cross: no onnxruntime==X pin in requirements-ci.txt" >&2; return 1; }
    dir="$CROSS_TARGET_DIR/onnxruntime-$version"
    lib="$(ls "$dir"/libonnxruntime.so.1.* 2>/dev/null | head -n1 || true)"
    if [ -z "$lib" ]; then
        mkdir -p "$dir/wheel"
        "$(host_python)" -m pip download --quiet --no-deps --only-binary=:all: \
            --platform manylinux_2_28_aarch64 --python-version 3.12 \
            -d "$dir/wheel" "onnxruntime==$version" >&2
        "$(host_python)" - "$dir" <<'PY'
import pathlib, sys, zipfile
out = pathlib.Path(sys.argv[1])
wheel = next((out / "wheel").glob("onnxruntime-*.whl"))
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = name.rsplit("/", 1)[-1]
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime.so.1."):
            (out / base).write_bytes(z.read(name))
PY
        lib="$(ls "$dir"/libonnxruntime.so.1.* 2>/dev/null | head -n1 || true)"
        [ -n "$lib" ] || { echo "cross: no libonnxruntime.so.1.* in the aarch64 wheel" >&2; return 1; }
    fi
    echo "$lib"
}

# Seconds since the script started, for the stage log.
stage() {
    echo "== cross: $* (${SECONDS}s)"
}
