"""One-run benchmark of LeRobot's policy families (issue 16), by hand, LeRobot venv:

    HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python policies/lerobot/bench_vla.py \
        --iterations 50 --threads 1

For each committed fixture (SmolVLA, π0, π0.5, Diffusion, ACT) it times one
action chunk, p50 and p99 in ms, four ways on the same machine in one run:

1. **PyTorch eager**: LeRobot's own policy, rebuilt as the export script built
   it (SmolVLA, π0, π0.5: same config, same seed, the scripts' helpers; the
   rebuilt policy must reproduce the golden's normalized chunk, else the run
   stops) or loaded from `pretrained_model/` (Diffusion, ACT),
   `predict_action_chunk` on the golden's first observation (already through
   LeRobot's pre-processor, which is not timed) under `torch.inference_mode()`,
   with the golden's noise where the API takes it.
2. **bare ONNX Runtime in Python**: the bundle's graphs in `onnxruntime`
   directly, same inputs (format 2: prefix/encoder once, then the head's step
   graph N times with the Euler / DDPM update in numpy; ACT: its one graph),
   `ORT_ENABLE_ALL`, `intra_op_num_threads = --threads`. This is the floor
   Ganglion-ORT is held to (within 5 %). Its chunk is checked against the
   golden too.
3. **Ganglion ORT** and 4. **Ganglion tract**: `target/debug/ganglion policy
   bench <bundle> --key policies/fixtures/TEST-ONLY-signing.pub --backend
   ort|tract --threads T --iterations N` as subprocesses, with the environment
   of `.ci/env` (ORT_DYLIB_PATH: the .venv's onnxruntime library). Their
   `inference_ms` is the whole pipeline (tokenize, preprocess, graphs,
   postprocess) on the runtime's synthetic observation; `--threads` sets ONNX
   Runtime's intra-op threads (tract runs on one thread). The warm-up is the
   runtime's own first inference at load.

Prints a markdown table (p50 / p99 per column, the two ratios on p50) and, for
the format-2 families, tract's stage split; `--json` also writes every number.
The fixtures are SMALL random-weight models: these are not real-size figures.

`--real-size WORKDIR`: ACT and Diffusion at LeRobot's real size instead
(make_real_size.py writes the checkpoints, bench-only profiles and, with
`--ganglion`, imports them under WORKDIR, keeping what is there; its docstring
says what they are). The same four columns, on the imported bundles (verified
with policies/reference/dev-key.pub): PyTorch on the ACT bundle's first parity
observation (joints and its 480x640 frame) and on the Diffusion golden's first
observation (frame and joints twice, 100 DDPM steps with the golden's noise).
Each column's wall time goes to stderr; the sizes and the import's parity
error head the table:

    nice -n 15 env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python \
        policies/lerobot/bench_vla.py --real-size /tmp/real-size --ganglion /work/bin/ganglion \
        --iterations 20 --threads 1 --json /tmp/real-size/bench.json
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
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
FIX = ROOT / "policies" / "fixtures"
sys.path.insert(0, str(HERE))

# export_pi points HF_HUB_CACHE at a private cache when imported: import it
# before anything imports huggingface_hub.
import export_pi  # noqa: E402
import vla_export  # noqa: E402
from bare_ort import FAMILIES, LABEL, check, ddpm_loop, golden_image, session, timed, vla_loop  # noqa: E402

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402

BUNDLE = {f: FIX / f"lerobot-{f}" / "bundle" for f in FAMILIES}
# ---------------------------------------------------------------- VLA families


def build_smolvla(rtc_config=None):
    """SmolVLA as export_smolvla.py's main() builds it (defaults; seed 0 right
    before the policy), on the fixture's own `vlm/` folder; `rtc_config`
    (LeRobot's `RTCConfig`) turns real-time chunking on."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.utils.constants import ACTION, OBS_STATE

    n, img = len(vla_export.JOINTS), vla_export.IMG
    cfg = SmolVLAConfig(
        input_features={
            OBS_STATE: PolicyFeature(FeatureType.STATE, (n,)),
            f"observation.images.{vla_export.CAMERA}": PolicyFeature(FeatureType.VISUAL, (3, img, img)),
        },
        output_features={ACTION: PolicyFeature(FeatureType.ACTION, (n,))},
        vlm_model_name=str((FIX / "lerobot-smolvla" / "vlm").resolve()),
        load_vlm_weights=False, resize_imgs_with_padding=(img, img), max_state_dim=32, max_action_dim=32,
        chunk_size=50, n_action_steps=50, num_steps=10, tokenizer_max_length=48, pad_language_to="max_length",
        num_vlm_layers=4, device="cpu", push_to_hub=False, rtc_config=rtc_config,
    )
    s_mean = torch.tensor([0.0, -0.5, 0.6, 0.3, 0.0, 0.4])
    s_std = torch.tensor([0.6, 0.5, 0.5, 0.5, 0.8, 0.3])
    stats_ = {OBS_STATE: {"mean": s_mean, "std": s_std}, ACTION: {"mean": s_mean + 0.05, "std": s_std * 1.1}}
    torch.manual_seed(0)
    policy = SmolVLAPolicy(cfg).eval()
    pre, _ = make_pre_post_processors(cfg, dataset_stats=stats_)
    return policy, pre


def pi_dataset_stats() -> dict:
    """The π0 / π0.5 fixtures' dataset statistics (export_pi.py's)."""
    from lerobot.utils.constants import ACTION, OBS_STATE

    s_mean = torch.tensor([0.0, -0.5, 0.6, 0.3, 0.0, 0.4])
    s_std = torch.tensor([0.6, 0.5, 0.5, 0.5, 0.8, 0.3])
    s_q01 = torch.tensor([-1.5, -1.6, -0.5, -0.9, -2.0, 0.0])
    s_q99 = torch.tensor([1.5, 0.7, 1.7, 1.4, 2.0, 1.2])
    return {
        OBS_STATE: {"mean": s_mean, "std": s_std, "q01": s_q01, "q99": s_q99},
        ACTION: {"mean": s_mean + 0.05, "std": s_std * 1.1, "q01": s_q01 - 0.05, "q99": s_q99 + 0.1},
    }


def build_pi(family: str):
    """π0 / π0.5 as export_pi.py's main() builds them (its defaults, its
    tiny_configs and serve_as_paligemma on the fixture's tokenizer, seed 0;
    π0.5's adaptive RMSNorms redrawn with seed 2)."""
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.utils.constants import ACTION, OBS_STATE
    from transformers import AutoTokenizer

    pi05 = family == "pi05"
    if pi05:
        from lerobot.policies.pi05 import modeling_pi05 as modeling
        from lerobot.policies.pi05.configuration_pi05 import PI05Config as Config
        from lerobot.policies.pi05.modeling_pi05 import PI05Policy as Policy
    else:
        from lerobot.policies.pi0 import modeling_pi0 as modeling
        from lerobot.policies.pi0.configuration_pi0 import PI0Config as Config
        from lerobot.policies.pi0.modeling_pi0 import PI0Policy as Policy

    fix = FIX / f"lerobot-{family}"
    args = SimpleNamespace(width=64, mlp=128, expert_width=32, expert_mlp=64, depth=2, heads=8, kv_heads=1,
                           head_dim=16, vision_width=32, vision_layers=2, patch=8)
    vocab = len(AutoTokenizer.from_pretrained(str(fix / "tokenizer")))
    export_pi.serve_as_paligemma(fix / "tokenizer", fix / "bundle" / "tokenizer.json")
    export_pi.tiny_configs(modeling, args, vocab)
    n, img = len(vla_export.JOINTS), vla_export.IMG
    cfg = Config(
        input_features={
            OBS_STATE: PolicyFeature(FeatureType.STATE, (n,)),
            f"observation.images.{vla_export.CAMERA}": PolicyFeature(FeatureType.VISUAL, (3, img, img)),
        },
        output_features={ACTION: PolicyFeature(FeatureType.ACTION, (n,))},
        image_resolution=(img, img), max_state_dim=32, max_action_dim=32, chunk_size=50, n_action_steps=50,
        num_inference_steps=10, dtype="float32", device="cpu", push_to_hub=False,
    )
    stats_ = pi_dataset_stats()
    torch.manual_seed(0)
    policy = Policy(cfg).eval()
    if pi05:
        from lerobot.policies.pi_gemma import PiGemmaRMSNorm

        torch.manual_seed(2)
        for m in policy.model.modules():
            if isinstance(m, PiGemmaRMSNorm) and m.dense is not None:
                m.dense.reset_parameters()
    pre, _ = make_pre_post_processors(cfg, dataset_stats=stats_)
    return policy, pre


def bench_vla(family: str, n: int, warmup: int, threads: int) -> dict:
    g = json.loads((FIX / f"lerobot-{family}" / "golden.json").read_text())
    o = g["observations"][0]
    H, D = g["chunk_size"], g["max_action_dim"]
    nj = len(o["joints"])
    noise = np.asarray(o["noise"], dtype=np.float32).reshape(1, H, D)
    want = np.asarray(o["actions_normalized"], dtype=np.float32)[None]
    img = golden_image(o)

    policy, pre = build_smolvla() if family == "smolvla" else build_pi(family)
    batch = vla_export.lerobot_batch(pre, f"observation.images.{vla_export.CAMERA}",
                                     np.asarray(o["joints"], dtype=np.float32), img.copy(), o["instruction"])
    noise_t = torch.from_numpy(noise)
    with torch.inference_mode():
        got = policy.predict_action_chunk(dict(batch), noise=noise_t.clone())
        torch_err = check(f"{family}: PyTorch predict_action_chunk", got.numpy(), want[:, :, :nj])
        torch_ms = timed(n, warmup, lambda: policy.predict_action_chunk(dict(batch), noise=noise_t))

    # Bare ONNX Runtime: the bundle's graphs on the golden's graph inputs.
    chunk, want, stages = vla_loop(BUNDLE[family], g, threads)
    ort_err = check(f"{family}: bare ORT chunk", chunk(), want)
    ort_ms = timed(n, warmup, chunk)
    stages = stages(n, warmup)
    return {"pytorch": torch_ms, "bare_ort": ort_ms, "bare_ort_stages": stages,
            "pytorch_vs_golden": torch_err, "bare_ort_vs_golden": ort_err}


# ---------------------------------------------------------------- Diffusion, ACT


def bench_diffusion(n: int, warmup: int, threads: int, fix: Path = FIX / "lerobot-diffusion",
                    golden: Path | None = None) -> dict:
    """`fix`: `pretrained_model/` and the imported `bundle/`; `golden`: the
    export's golden (default `fix/golden.json`). A camera checkpoint gets the
    golden's first frame (both history slots, as at an episode start)."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.utils.constants import OBS_ENV_STATE, OBS_STATE

    ckpt = fix / "pretrained_model"
    cfg = PreTrainedConfig.from_pretrained(str(ckpt))
    cfg.pretrained_backbone_weights = None
    cfg.device = "cpu"
    policy = DiffusionPolicy.from_pretrained(str(ckpt), config=cfg).eval()
    pre, _ = make_pre_post_processors(cfg, pretrained_path=str(ckpt))
    g = json.loads((golden or fix / "golden.json").read_text())
    o = g["episodes"][0]["observations"][0]
    H, nj = cfg.horizon, cfg.action_feature.shape[0]
    drawn = np.asarray(o["noise"], dtype=np.float32).reshape(-1, 1, H, nj)  # x_T, then each step's noise
    j = torch.tensor(o["joints"])[None]
    raw = {OBS_STATE: j, **({OBS_ENV_STATE: j} if cfg.env_state_feature is not None else {})}
    for k in cfg.image_features:  # as a dataset hands it: CHW f32 in [0, 1]
        raw[k] = torch.from_numpy(golden_image(o).copy()).permute(2, 0, 1).float().div(255.0)[None]
    b1 = pre(raw)
    # The golden's first observation of an episode: the history is it twice.
    hist = {k: torch.stack([b1[k]] * cfg.n_obs_steps, dim=1) for k in raw}
    x_T = torch.from_numpy(drawn[0])
    policy.reset()
    wall = time.perf_counter()
    with torch.inference_mode():
        torch_ms = timed(n, warmup, lambda: policy.predict_action_chunk(hist, noise=x_T))
    wall = {"pytorch": time.perf_counter() - wall}
    del policy

    t0 = time.perf_counter()
    b = fix / "bundle"
    feeds_e = {k: v.numpy() for k, v in hist.items()}  # the encoder's inputs are these keys
    chunk, stages = ddpm_loop(b, g, feeds_e, drawn, threads)
    ort_err = check("diffusion: bare ORT sample", chunk(), np.asarray(o["sample"]).reshape(1, H, nj))
    ort_ms = timed(n, warmup, chunk)
    stages = stages(n, warmup)
    wall["bare_ort"] = time.perf_counter() - t0
    return {"pytorch": torch_ms, "bare_ort": ort_ms, "bare_ort_stages": stages, "bare_ort_vs_golden": ort_err,
            "wall_s": wall}


def bench_act(n: int, warmup: int, threads: int, fix: Path = FIX / "lerobot-act") -> dict:
    """`fix`: `pretrained_model/` and the imported `bundle/`; the observation
    is the bundle's first parity sample (joints, and its frame per camera)."""
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.act.modeling_act import ACTPolicy
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.utils.constants import OBS_ENV_STATE, OBS_STATE

    ckpt = fix / "pretrained_model"
    cfg = PreTrainedConfig.from_pretrained(str(ckpt))
    cfg.pretrained_backbone_weights = None
    cfg.device = "cpu"
    policy = ACTPolicy.from_pretrained(str(ckpt), config=cfg).eval()
    pre, post = make_pre_post_processors(cfg, pretrained_path=str(ckpt))
    sample = json.loads((fix / "bundle" / "parity.json").read_text())["samples"][0]
    j = torch.tensor(sample["joints"], dtype=torch.float32)[None]
    # This checkpoint also reads observation.environment_state; the bundle was
    # exported with --environment-state-from-joints (the graph feeds it the state).
    raw = {OBS_STATE: j, **({OBS_ENV_STATE: j} if cfg.env_state_feature is not None else {})}
    for k in cfg.image_features:  # HWC rgb8 as hex, as export_act.py wrote it
        _, h, w = cfg.input_features[k].shape
        hwc = np.frombuffer(bytes.fromhex(sample["frames"][k]), dtype=np.uint8).reshape(h, w, 3)
        raw[k] = torch.from_numpy(hwc.copy()).permute(2, 0, 1).float().div(255.0)[None]
    batch = pre(raw)
    wall = time.perf_counter()
    with torch.inference_mode():
        torch_ms = timed(n, warmup, lambda: policy.predict_action_chunk(batch))
        want = post(policy.predict_action_chunk(batch)).numpy()
    wall = {"pytorch": time.perf_counter() - wall}
    del policy

    t0 = time.perf_counter()
    s = session(fix / "bundle" / "policy.onnx", threads)
    # The graph's inputs: the images (config order), then the state.
    feeds = {k: batch[k].numpy() for k in [*cfg.image_features, OBS_STATE]}
    name = s.get_outputs()[0].name
    out = s.run(None, feeds)[0]
    # The graph's output is normalized: compare through LeRobot's post-processor.
    ort_err = check("act: bare ORT chunk", post(torch.from_numpy(out)).numpy(), want)
    ort_ms = timed(n, warmup, lambda: s.run([name], feeds))
    wall["bare_ort"] = time.perf_counter() - t0
    return {"pytorch": torch_ms, "bare_ort": ort_ms, "bare_ort_vs_pytorch": ort_err, "wall_s": wall}


# ---------------------------------------------------------------- Ganglion


def ganglion_env() -> dict:
    """The environment `.ci/env` sets (ORT_DYLIB_PATH, GANGLION_PYTHON), read
    from the script itself rather than re-derived here."""
    out = subprocess.run(["bash", "-c", f"source {ROOT / '.ci' / 'env'} && env -0"], capture_output=True, check=True)
    env = dict(kv.split("=", 1) for kv in out.stdout.decode().split("\0") if "=" in kv)
    if not env.get("ORT_DYLIB_PATH"):
        sys.exit("bench_vla.py: .ci/env found no libonnxruntime.so under .venv (run .ci/setup)")
    return env


def ganglion(bundle: Path, backend: str, n: int, threads: int, env: dict,
             exe: Path = ROOT / "target" / "debug" / "ganglion", key: Path = FIX / "TEST-ONLY-signing.pub") -> dict:
    with tempfile.TemporaryDirectory() as d:
        report = Path(d) / "report.json"
        cmd = [str(exe), "policy", "bench", str(bundle), "--key", str(key),
               "--backend", backend, "--threads", str(threads), "--iterations", str(n), "--report", str(report)]
        r = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
        if r.returncode != 0:
            sys.exit(f"bench_vla.py: {' '.join(cmd)} failed ({r.returncode}):\n{r.stderr[-3000:]}")
        return json.loads(report.read_text())


# ---------------------------------------------------------------- table


def fmt(p) -> str:
    return f"{p[0]:.2f} / {p[1]:.2f}" if p else "–"


def ratio(a, b) -> str:
    return f"{a[0] / b[0]:.2f} / {a[1] / b[1]:.2f}" if a and b else "–"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=50)
    ap.add_argument("--warmup", type=int, default=5, help="untimed chunks before timing (PyTorch, bare ORT)")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--families", help=f"default: {','.join(FAMILIES)}; with --real-size: act,diffusion")
    ap.add_argument("--json", type=Path, help="write every number here")
    ap.add_argument("--ganglion", type=Path, default=ROOT / "target" / "debug" / "ganglion",
                    help="the ganglion binary (policy bench; with --real-size also policy import)")
    ap.add_argument("--real-size", type=Path, metavar="WORKDIR",
                    help="ACT and Diffusion at LeRobot's real size instead of the fixtures: make_real_size.py "
                    "writes and imports them under WORKDIR (kept when there), then the same four columns")
    args = ap.parse_args()
    real = args.real_size.resolve() if args.real_size else None
    known = ["act", "diffusion"] if real else FAMILIES
    fams = [f for f in (args.families or ",".join(known)).split(",") if f]
    unknown = set(fams) - set(known)
    if unknown:
        sys.exit(f"bench_vla.py: unknown families {sorted(unknown)}; known: {known}")
    exe = args.ganglion
    if not exe.exists():
        sys.exit(f"bench_vla.py: {exe} is missing (cargo build -p ganglion)")
    key = FIX / "TEST-ONLY-signing.pub"
    made = {}
    if real:
        # In its own process: its PyTorch models are gone before the timing.
        subprocess.run([sys.executable, str(HERE / "make_real_size.py"), str(real), "--ganglion", str(exe),
                        "--families", ",".join(fams)], check=True, stdout=subprocess.DEVNULL)
        made = json.loads((real / "make_real_size.json").read_text())
        key = ROOT / "policies" / "reference" / "dev-key.pub"
        for f in fams:
            BUNDLE[f] = real / f / "bundle"
    torch.set_num_threads(args.threads)
    env = ganglion_env()

    load0 = os.getloadavg()
    results = {}
    for f in fams:
        t0 = time.perf_counter()
        fix = {"fix": real / f} if real else {}
        if f in ("smolvla", "pi0", "pi05"):
            r = bench_vla(f, args.iterations, args.warmup, args.threads)
        elif f == "diffusion":
            r = bench_diffusion(args.iterations, args.warmup, args.threads, **fix,
                                **({"golden": BUNDLE[f] / "golden.json"} if real else {}))
        else:
            r = bench_act(args.iterations, args.warmup, args.threads, **fix)
        for backend in ("ort", "tract"):
            t1 = time.perf_counter()
            rep = ganglion(BUNDLE[f], backend, args.iterations, args.threads, env, exe, key)
            r.setdefault("wall_s", {})[f"ganglion_{backend}"] = time.perf_counter() - t1
            r[f"ganglion_{backend}"] = (rep["inference_ms"]["p50"], rep["inference_ms"]["p99"])
            r[f"ganglion_{backend}_report"] = rep
        results[f] = r
        walls = ", ".join(f"{k} {v:.0f} s" for k, v in r["wall_s"].items())
        print(f"{LABEL[f]}: done in {time.perf_counter() - t0:.0f} s ({walls})", file=sys.stderr)

    cpu = next((ln.split(":", 1)[1].strip() for ln in Path("/proc/cpuinfo").read_text().splitlines()
                if ln.startswith("model name")), "?")
    print(f"\n{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} CPUs ({cpu}); "
          f"load average at start {load0[0]:.2f}, at end {os.getloadavg()[0]:.2f}")
    print(f"{args.iterations} chunks timed per column, {args.threads} thread(s); "
          f"torch {torch.__version__}, onnxruntime {ort.__version__}; p50 / p99 in ms per chunk\n")
    for f in fams if real else []:
        m = made[f]
        print(f"{LABEL[f]} at real size ({real / f}): {m['parameters'] / 1e6:.1f} M parameters, graphs "
              + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in m["onnx_bytes"].items())
              + f"; import {m['import_s']:.0f} s, parity {m['import']['parity']['max_abs_error']:.2e} "
              f"over {m['import']['parity']['samples']} on tract")
    if real:
        print()
    print("| family | PyTorch eager | bare ORT (Python) | Ganglion ORT | Ganglion tract "
          "| Ganglion-ORT / bare ORT | tract / Ganglion-ORT |")
    print("|---|---|---|---|---|---|---|")
    for f, r in results.items():
        print(f"| {LABEL[f]} | {fmt(r['pytorch'])} | {fmt(r['bare_ort'])} | {fmt(r['ganglion_ort'])} "
              f"| {fmt(r['ganglion_tract'])} | {ratio(r['ganglion_ort'], r['bare_ort'])} "
              f"| {ratio(r['ganglion_tract'], r['ganglion_ort'])} |")

    print("\nStage split, p50 ms (`step`: one head step, × steps per chunk; Ganglion's heap allocations per "
          "inference on the inferring thread, p50):\n")
    print("| family | backend | tokenize | preprocess | graphs (once) | step × N | postprocess | allocations |")
    print("|---|---|---|---|---|---|---|---|")
    for f, r in results.items():
        if "bare_ort_stages" in r:
            st = r["bare_ort_stages"]
            graphs = ", ".join(f"{k[6:]} {v[0]:.2f}" for k, v in st.items() if k.startswith("graph "))
            print(f"| {LABEL[f]} | bare ORT (Python) | – | – | {graphs} | {st['step'][0]:.2f} | – | – |")
        for backend in ("tract", "ort"):
            rep = r[f"ganglion_{backend}_report"]
            st = dict((k, v) for k, v in rep.get("stages_ms", []))
            if not st:
                continue
            graphs = ", ".join(f"{k[6:]} {v['p50']:.2f}" for k, v in st.items() if k.startswith("graph "))
            step = st["step"]
            steps = step["count"] // max(1, rep["iterations"])
            al = rep.get("allocations_per_inference")
            allocs = f"{al['p50']:.0f}" if al else "–"
            print(f"| {LABEL[f]} | {backend} | {st['tokenize']['p50']:.3f} | {st['preprocess']['p50']:.3f} | {graphs} "
                  f"| {step['p50']:.2f} × {steps} | {st['postprocess']['p50']:.3f} | {allocs} |")
    if args.json:
        args.json.write_text(json.dumps({"iterations": args.iterations, "threads": args.threads,
                                         "torch": torch.__version__, "onnxruntime": ort.__version__,
                                         "real_size": made or None, "results": results},
                                        indent=1, default=str) + "\n")


if __name__ == "__main__":
    main()
