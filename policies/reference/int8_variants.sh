#!/bin/bash
# Closed-loop INT8 sensitivity: which layers kept in float matter on the real
# runtimes. Quantizes reach-v1 with different layer sets kept in float,
# bundles and signs each variant under work/, and evaluates 100 closed-loop
# episodes on tract and ONNX Runtime (README, "INT8"). Needs work/onnx
# (export_onnx.py), work/params.npz, work/reach.npz, work/calib.npz
# (`ganglion eval --dump-frames`) and a debug build of ganglion.
set -e
cd "$(dirname "$0")"
source ../../.ci/env # ORT_DYLIB_PATH for --backend ort
run() {
  name=$1; shift
  .venv/bin/python quantize.py --onnx work/onnx --params work/params.npz --calib work/calib.npz \
    --out work/q-$name --exclude "$@" 2>&1 | grep "mixed precision"
  .venv/bin/python make_bundle.py --onnx work/q-$name --params work/params.npz --data work/reach.npz \
    --precision int8 --surprise-threshold 0.3 --out work/bq-$name --golden work/g-$name.json > /dev/null 2>&1
  ../../target/debug/ganglion policy sign work/bq-$name --key DEV-KEY-NOT-FOR-PRODUCTION.secret > /dev/null 2>&1
  for b in tract ort; do
    ../../target/debug/ganglion eval --bundle work/bq-$name --backend $b --episodes 100 --seed 0 \
      --report work/cl-$name-$b.json 2>&1 | tail -1 | sed "s/^/$name $b: /"
  done
}
run all
run conv1 conv1
run kp kp_scale kp_softmax kp_matmul
run shipped conv1 kp_scale kp_softmax kp_matmul
run fuse1-head3 fuse1 head3
