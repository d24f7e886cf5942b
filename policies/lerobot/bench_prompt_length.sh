#!/bin/bash
# The prompt padded to max_tokens against the prompt at its own length
# (docs/BENCHMARKS.md, "The prompt at its own length"), in one run:
# `ganglion policy bench` on the two SmolVLA fixtures (same weights;
# lerobot-smolvla pads to 48 tokens, lerobot-smolvla-longest does not) for
# the goldens' three instructions (5, 32 and 48 tokens), ONNX Runtime and
# tract, one thread. Prints markdown rows: bundle, backend, tokens the graphs
# ran at, chunk p50 / p99 ms, prefix graph p50 ms, one step p50 ms.
#
#   cargo build -p ganglion && N=200 policies/lerobot/bench_prompt_length.sh
set -euo pipefail
cd "$(dirname "$0")/../.." && source .ci/env
for ins in "reach the red target" "Move 3 cm up, then grasp the crème brûlée spoon!" "pick up the green block and place it in the bowl, then push the button, open the drawer, close the drawer, lift the cup, rotate the wrist, open the gripper and then go back to the home position slowly please"; do
for b in lerobot-smolvla lerobot-smolvla-longest; do for be in ort tract; do
target/debug/ganglion policy bench policies/fixtures/$b/bundle --key policies/fixtures/TEST-ONLY-signing.pub --backend $be --threads 1 --iterations ${N:-200} --instruction "$ins" 2>/dev/null | python3 -c "
import json,sys; r=json.load(sys.stdin); st=dict((n,s) for n,s in r['stages_ms'])
print('| $b | $be | %d | %.2f / %.2f | %.3f | %.3f |'%(r['prompt_tokens'], r['inference_ms']['p50'], r['inference_ms']['p99'], st['graph prefix']['p50'], st['step']['p50']))"
done; done; done
