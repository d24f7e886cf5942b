"""The issue-16 benchmark on a GPU machine, run by policies/gpu/run.sh (numpy
and a GPU build of onnxruntime; no torch, no LeRobot):

    python3 policies/lerobot/bench_cuda.py --ganglion BIN --iterations 50 \
        [--real-size DIR] --json OUT

For each committed family fixture (SmolVLA, π0, π0.5, Diffusion, ACT) it
times one action chunk, p50 and p99 in ms, in one run on one machine:

1. **bare ONNX Runtime in Python** on the CUDA provider (bare_ort.py: the
   bundle's graphs, the runtime's loop written out in numpy, TF32 off).
   SmolVLA / π0 / π0.5 run on their golden's first observation and are
   checked against its chunk (≤ 1e-4); Diffusion and ACT, whose graph inputs
   come out of LeRobot's pre-processor, on random inputs of the graphs'
   shapes (with the golden's noise for Diffusion): timing only. Their
   parity on CUDA is the Rust tests' and `ganglion policy check`'s.
2. **Ganglion ORT-CUDA**: `ganglion policy bench --backend ort --provider
   cuda` (the whole pipeline: tokenize, preprocess, graphs, postprocess).
3. **Ganglion ORT-CPU** (`--threads`) and 4. **Ganglion tract**, for scale,
   on this machine's CPU.

`--real-size DIR`: also `DIR/act/bundle` and `DIR/diffusion/bundle` (ACT and
Diffusion at LeRobot's real size, their weights drawn on the machine by
policies/gpu/weights.py and the bundles signed there with the dev key),
columns 1 and 2 only: on the CPU they take seconds a chunk (docs/BENCHMARKS.md
has those).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIX = ROOT / "policies" / "fixtures"
sys.path.insert(0, str(HERE))
from bare_ort import FAMILIES, LABEL, check, ddpm_loop, session, timed, vla_loop  # noqa: E402

TEST_KEY = FIX / "TEST-ONLY-signing.pub"
DEV_KEY = ROOT / "policies" / "reference" / "dev-key.pub"


def random_feeds(s: ort.InferenceSession, rng: np.random.Generator) -> dict:
    """Inputs of the graph's declared shapes: N(0, 1) floats, zero integers."""
    feeds = {}
    for i in s.get_inputs():
        shape = [d if isinstance(d, int) else 1 for d in i.shape]
        if i.type == "tensor(float)":
            feeds[i.name] = rng.standard_normal(shape).astype(np.float32)
        elif i.type == "tensor(int64)":
            feeds[i.name] = np.zeros(shape, dtype=np.int64)
        else:
            sys.exit(f"bench_cuda.py: input {i.name} of type {i.type}: no random feed for it")
    return feeds


def bare(family: str, bundle: Path, golden: Path | None, n: int, warmup: int, provider: str) -> dict:
    rng = np.random.default_rng(0)
    if family in ("smolvla", "pi0", "pi05"):
        chunk, want, stages = vla_loop(bundle, json.loads(golden.read_text()), 1, provider)
        err = check(f"{family}: bare ORT-CUDA chunk", chunk(), want)
        return {"bare_cuda": timed(n, warmup, chunk), "bare_cuda_stages": stages(n, warmup),
                "bare_cuda_vs_golden": err}
    if family == "diffusion":
        g = json.loads(golden.read_text())
        enc = session(bundle / "encoder.onnx", 1, provider)
        sample = next(i for i in session(bundle / "step.onnx", 1, provider).get_inputs() if i.name == "sample")
        drawn = np.asarray(g["episodes"][0]["observations"][0]["noise"], dtype=np.float32)
        chunk, stages = ddpm_loop(bundle, g, random_feeds(enc, rng), drawn.reshape(-1, *sample.shape), 1, provider)
        return {"bare_cuda": timed(n, warmup, chunk), "bare_cuda_stages": stages(n, warmup)}
    s = session(bundle / "policy.onnx", 1, provider)
    feeds = random_feeds(s, rng)
    name = s.get_outputs()[0].name
    return {"bare_cuda": timed(n, warmup, lambda: s.run([name], feeds))}


def ganglion(exe: Path, bundle: Path, key: Path, n: int, backend: str, provider: str, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as d:
        report = Path(d) / "report.json"
        cmd = [str(exe), "policy", "bench", str(bundle), "--key", str(key), "--backend", backend,
               "--provider", provider, "--threads", str(threads), "--iterations", str(n), "--report", str(report)]
        r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
        if r.returncode != 0:
            sys.exit(f"bench_cuda.py: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
        rep = json.loads(report.read_text())
    want = {"cuda": "CUDAExecutionProvider", "cpu": "CPUExecutionProvider"}[provider]
    if backend == "ort" and rep["execution_provider"] != want:
        sys.exit(f"bench_cuda.py: {bundle} ran on {rep['execution_provider']}, not {want}")
    return rep


def p(rep: dict) -> tuple[float, float]:
    return rep["inference_ms"]["p50"], rep["inference_ms"]["p99"]


def fmt(v) -> str:
    return f"{v[0]:.2f} / {v[1]:.2f}" if v else "–"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--ganglion", type=Path, required=True)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1, help="ORT-CPU intra-op threads (column 3)")
    ap.add_argument("--real-size", type=Path, metavar="DIR")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--provider", default="cuda", choices=["cuda", "cpu"],
                    help="cpu: a dry run of this script on a machine without a GPU")
    args = ap.parse_args()
    rows = [(f, FIX / f"lerobot-{f}" / "bundle", FIX / f"lerobot-{f}" / "golden.json", TEST_KEY, True)
            for f in FAMILIES]
    if args.real_size:
        rows += [(f, args.real_size / f / "bundle", args.real_size / f / "bundle" / "golden.json", DEV_KEY, False)
                 for f in ("act", "diffusion")]
    results = []
    for family, bundle, golden, key, small in rows:
        t0 = time.perf_counter()
        r = {"family": family, "bundle": str(bundle), "small": small}
        r.update(bare(family, bundle, golden if golden.exists() else None, args.iterations, args.warmup, args.provider))
        r["ganglion_cuda"] = ganglion(args.ganglion, bundle, key, args.iterations, "ort", args.provider, 1)
        if small:
            r["ganglion_cpu"] = ganglion(args.ganglion, bundle, key, args.iterations, "ort", "cpu", args.threads)
            r["ganglion_tract"] = ganglion(args.ganglion, bundle, key, args.iterations, "tract", "cpu", 1)
        results.append(r)
        print(f"{LABEL[family]}{'' if small else ' (real size)'}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)

    try:
        gpu = subprocess.run(["nvidia-smi", "--query-gpu=name,driver_version", "--format=csv,noheader"],
                             capture_output=True, text=True).stdout.strip()
    except FileNotFoundError:
        gpu = "no nvidia-smi"
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {gpu}; {os.cpu_count()} CPUs; "
          f"onnxruntime {ort.__version__} ({args.provider} provider, TF32 off); {args.iterations} chunks per column; "
          f"p50 / p99 ms per chunk\n")
    P = args.provider.upper()
    print(f"| family | bare ORT-{P} (Python) | Ganglion ORT-{P} | Ganglion / bare | Ganglion ORT-CPU "
          f"({args.threads} thr) | Ganglion tract | allocations per chunk ({P}) |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        g = p(r["ganglion_cuda"])
        ratio = f"{g[0] / r['bare_cuda'][0]:.2f} / {g[1] / r['bare_cuda'][1]:.2f}"
        cpu = fmt(p(r["ganglion_cpu"])) if "ganglion_cpu" in r else "–"
        tract = fmt(p(r["ganglion_tract"])) if "ganglion_tract" in r else "–"
        allocs = r["ganglion_cuda"].get("allocations_per_inference")
        allocs = allocs.get("p50") if isinstance(allocs, dict) else allocs
        name = LABEL[r["family"]] + ("" if r["small"] else " real size")
        print(f"| {name} | {fmt(r['bare_cuda'])} | {fmt(g)} | {ratio} | {cpu} | {tract} | {allocs} |")
    print(f"\nStage split on {P}, p50 ms (Ganglion: its stage histograms; bare: each graph alone):\n")
    for r in results:
        st = dict((k, v["p50"]) for k, v in r["ganglion_cuda"].get("stages_ms", []))
        bs = {k: v[0] for k, v in r.get("bare_cuda_stages", {}).items()}
        print(f"- {LABEL[r['family']]}{'' if r['small'] else ' real size'}: Ganglion "
              + ", ".join(f"{k} {v:.3f}" for k, v in st.items())
              + ("; bare " + ", ".join(f"{k} {v:.3f}" for k, v in bs.items()) if bs else ""))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
