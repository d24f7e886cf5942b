#!/usr/bin/env bash
# On a GPU machine, from the repository root, with prepare.sh's .gpu/b here
# and .gpu/a's files in $GPU_STASH (default .gpu/a): the CUDA checks of
# issues 16 and 19 in one run. Every stage runs whatever the one before did,
# prints its wall time and exit status, and writes what it measured under
# $OUT (default /tmp/gpu-out; eight files at most, what the device tool
# brings back):
#
# 1. parity: the SmolVLA, π0, π0.5 and Diffusion fixtures on ONNX Runtime's
#    CUDA provider against their PyTorch goldens (the Rust tests, with
#    GANGLION_TEST_ORT_PROVIDER=cuda), and `ganglion policy check` of the
#    imported ACT (its signed parity observations);
# 2. bench_cuda.py: the five families (and, when .gpu/b has them, ACT and
#    Diffusion at real size), bare ONNX Runtime vs Ganglion on CUDA;
# 3. `ganglion bench remote` with the server on CUDA, one at a time and
#    batched (make_batch.py's heavy variant, drawn here).
#
# Needs there: python3 with numpy and onnx, the CUDA 13 libraries (cuBLAS,
# cuDNN 9, cuFFT, cuRAND, the runtime) where `import nvidia` finds them, and
# nvidia-smi. No network.
set -u
out=${OUT:-/tmp/gpu-out}
stash=${GPU_STASH:-.gpu/a}
g=/tmp/ganglion-gpu
mkdir -p "$out" "$g/lib" "$g/py" "$g/bin"
t0=$(date +%s)
stage() { echo "== $* (at $(($(date +%s) - t0)) s)"; }
status() { echo "== exit $1: $2"; }

# xz, or Python's lzma where the machine has no xz.
unxz() {
    if command -v xz >/dev/null; then xz -dc "$1"; else
        python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1"
    fi
}

stage unpack
for f in "$stash"/*.so*.xz .gpu/b/*.so*.xz; do unxz "$f" >"$g/lib/$(basename "$f" .xz)"; done
unxz .gpu/b/pyort.tar.xz | tar -xf - -C "$g/py"
cp "$g/py/onnxruntime/capi/libonnxruntime_providers_shared.so" "$g/lib/"
ln -sf "$g/lib/libonnxruntime_providers_cuda.so" "$g/py/onnxruntime/capi/"
for f in .gpu/b/*.xz; do
    case $f in *pyort* | *real-size* | *.so*) continue ;; esac
    unxz "$f" >"$g/bin/$(basename "$f" .xz)" && chmod +x "$g/bin/$(basename "$f" .xz)"
done
root=$(cat .gpu/b/build-root)
if [ "$root" != "$PWD" ] && [ ! -e "$root" ]; then
    mkdir -p "$(dirname "$root")" && ln -s "$PWD" "$root"
fi
nv=$(python3 -c "import nvidia; print(\" \".join(nvidia.__path__))" 2>/dev/null)
if [ -n "$nv" ]; then
    # shellcheck disable=SC2086 # one or more package folders
    LD_LIBRARY_PATH=$(find $nv -name 'lib*.so*' -printf '%h\n' | sort -u | paste -sd:):${LD_LIBRARY_PATH:-}
    export LD_LIBRARY_PATH
else
    echo "python3 finds no nvidia packages: the CUDA libraries must be on the library path already"
fi
export ORT_DYLIB_PATH=$(ls "$g"/lib/libonnxruntime.so.1.*)
export PYTHONPATH=$g/py
export RUST_LOG=warn CI=1
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv
python3 -c 'import onnxruntime as o; print("onnxruntime", o.__version__, o.get_available_providers())'

stage "parity: the families on CUDA against PyTorch"
for t in lerobot_vla:onnx_runtime_reproduces_lerobots_vla_chunks \
    lerobot_diffusion:onnx_runtime_reproduces_lerobots_actions_with_the_golden_noise; do
    GANGLION_TEST_ORT_PROVIDER=cuda timeout 120 "$g/bin/${t%%:*}" "${t#*:}" --exact --nocapture 2>&1 |
        tee -a "$out/parity.txt"
    status "${PIPESTATUS[0]}" "$t"
done
timeout 60 "$g/bin/ganglion" policy check policies/fixtures/lerobot-act/bundle --key policies/fixtures/TEST-ONLY-signing.pub \
    --backend ort --provider cuda 2>&1 | tee -a "$out/parity.txt"
status "${PIPESTATUS[0]}" "policy check lerobot-act on cuda"

real=()
if [ -f .gpu/b/real-size.tar.xz ]; then
    stage "real-size bundles: weights drawn, signed with the dev key"
    mkdir -p "$g/real" && unxz .gpu/b/real-size.tar.xz | tar -xf - -C "$g/real"
    python3 policies/gpu/weights.py fill "$g/real"
    status $? "weights.py fill"
    for b in "$g"/real/*/bundle; do
        "$g/bin/ganglion" policy sign --key policies/reference/DEV-KEY-NOT-FOR-PRODUCTION.secret "$b"
        status $? "sign $b"
    done
    real=(--real-size "$g/real")
fi

stage "bench_cuda.py"
timeout 300 python3 policies/lerobot/bench_cuda.py --ganglion "$g/bin/ganglion" --iterations "${ITERATIONS:-30}" \
    "${real[@]}" --json "$out/bench_cuda.json" 2>&1 | tee "$out/bench_cuda.md"
status "${PIPESTATUS[0]}" bench_cuda.py

stage "bench remote on CUDA, one at a time and batched"
python3 policies/fixtures/iterative/make_batch.py --out "$g/heavy" --hidden 2048 --layers 4 --max-batch 32 --unsigned &&
    "$g/bin/ganglion" policy sign --key policies/reference/DEV-KEY-NOT-FOR-PRODUCTION.secret "$g/heavy"
status $? "heavy batch bundle"
for mb in 1 32; do
    # The load reports say which provider `auto` chose (CUDA when it finds the GPU).
    RUST_LOG=ganglion_policies::policy=info timeout 90 "$g/bin/ganglion" bench remote --bundle "$g/heavy" --backend auto \
        --robots 1,4,16,32 --requests 30 --max-batch $mb --batch-window-ms 2 --report "$out/remote-$mb.json" \
        >"$out/remote-$mb.txt" 2>&1
    status $? "bench remote --max-batch $mb"
    grep -v "policy loaded\|auto backend" "$out/remote-$mb.txt" | tail -8
    grep -o 'execution_provider: "[^"]*"' "$out/remote-$mb.txt" | sort | uniq -c
done
stage done
