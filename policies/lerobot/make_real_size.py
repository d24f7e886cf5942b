"""Real-size LeRobot ACT and Diffusion Policy, imported, for the issue-16
benchmark (by hand, LeRobot venv; CI needs none of this; nothing goes into
the repository):

    nice -n 15 env OMP_NUM_THREADS=1 HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python \
        policies/lerobot/make_real_size.py [WORKDIR] [--ganglion /work/bin/ganglion]

`bench_vla.py --real-size WORKDIR` runs this first, then times the bundles.
Writes under WORKDIR (default /tmp/real-size; what exists is kept, so a
second run only benchmarks):

- `act/pretrained_model/`: LeRobot 0.6.1's `ACTConfig` with every
  architectural default (ResNet-18 backbone, dim_model 512, 8 heads,
  feed-forward 3200, 4 encoder / 1 decoder layers, the VAE's 4 layers,
  chunk_size 100, n_action_steps 100), random weights (seed 0), no
  pretrained backbone; ALOHA-like features: one 480x640 RGB camera
  `observation.images.top`, 14-dim state and action (MEAN_STD, LeRobot's
  default; ImageNet image statistics).
- `diffusion/pretrained_model/`: `DiffusionConfig` with every
  architectural default (ResNet-18, BatchNorm, 32 keypoints, UNet down_dims
  (512, 1024, 2048), kernel 5, step embedding 128, FiLM; DDPM, 100 training
  timesteps, `num_inference_steps` None = 100 steps), random weights (seed
  0), and PushT's features and horizon (lerobot/diffusion_pusht's values,
  not 0.6.1's bare defaults of horizon 64 / n_action_steps 32 / no crop):
  one 96x96 camera `observation.images.top` centre-cropped to 84x84, 2-dim
  state and action (MIN_MAX), n_obs_steps 2, horizon 16, n_action_steps 8.
- `act/profile.toml`, `diffusion/profile.toml`: bench-only robot profiles
  whose joints and camera are those features (14 joints + `top` 480x640; 2
  joints + `top` 96x96), because `ganglion policy import` maps the state and
  action onto the profile's joints and each image onto its camera.
- `diffusion/dataset/`: a LeRobotDataset-shaped parquet (2 episodes x 16
  frames: export_diffusion.py's synthetic frames and joints, PNG) for the
  Diffusion golden's observations (the import has no synthetic-frames flag).
- `act/bundle/`, `diffusion/bundle/`: `ganglion policy import` of each
  (fp32 weights, `--key policies/reference/DEV-KEY-NOT-FOR-PRODUCTION.secret`,
  the default parity gate: 8 observations, tolerance 1e-4; fps 50 and 10).
- `make_real_size.json`: parameters, file sizes, each stage's wall time and
  the parity errors the imports reported.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
KEY = ROOT / "policies" / "reference" / "DEV-KEY-NOT-FOR-PRODUCTION.secret"
CAMERA = "top"
# family -> (joints, camera height, width, policy fps)
SETUP = {"act": (14, 480, 640, 50.0), "diffusion": (2, 96, 96, 10.0)}


def profile_toml(n: int, h: int, w: int) -> str:
    """A bench-only profile: n joints of ±3 rad, one `top` camera."""
    joints = "".join(
        f'[[robot.joints]]\nname = "joint_{i}"\n'
        "limit = { position_min = -3.0, position_max = 3.0, velocity = 2.5, acceleration = 20.0, jerk = 400.0 }\n"
        for i in range(n)
    )
    return (f'# Written by policies/lerobot/make_real_size.py: the real-size benchmark\'s features.\n'
            f'[robot]\nname = "real-size-{n}dof"\nhome = {[0.0] * n}\n{joints}'
            f'[[robot.cameras]]\nname = "{CAMERA}"\nwidth = {w}\nheight = {h}\nformat = "rgb8"\n\n'
            "[control]\nrate_hz = 100\n")


def save(policy, cfg, stats, dest: Path) -> int:
    from lerobot.policies.factory import make_pre_post_processors

    dest.mkdir(parents=True, exist_ok=True)
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    policy.save_pretrained(dest)
    pre.save_pretrained(dest)
    post.save_pretrained(dest)
    return sum(p.numel() for p in policy.parameters())


def checkpoint(family: str, dest: Path) -> int:
    """Writes the real-size checkpoint; returns its parameter count."""
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature

    n, h, w, _ = SETUP[family]
    img = f"observation.images.{CAMERA}"
    feats = dict(
        input_features={img: PolicyFeature(FeatureType.VISUAL, (3, h, w)),
                        "observation.state": PolicyFeature(FeatureType.STATE, (n,))},
        output_features={"action": PolicyFeature(FeatureType.ACTION, (n,))},
    )
    image_stats = {"mean": torch.tensor([0.485, 0.456, 0.406]).reshape(3, 1, 1),
                   "std": torch.tensor([0.229, 0.224, 0.225]).reshape(3, 1, 1),
                   "min": torch.zeros(3, 1, 1), "max": torch.ones(3, 1, 1)}
    g = torch.Generator().manual_seed(1)
    mid = torch.rand(n, generator=g) - 0.5
    half = 0.5 + torch.rand(n, generator=g)
    stats = {img: image_stats,
             "observation.state": {"mean": mid, "std": half / 2, "min": mid - half, "max": mid + half},
             "action": {"mean": mid + 0.05, "std": half / 2, "min": mid - half, "max": mid + half}}
    torch.manual_seed(0)
    if family == "act":
        from lerobot.policies.act.configuration_act import ACTConfig
        from lerobot.policies.act.modeling_act import ACTPolicy

        cfg = ACTConfig(**feats, pretrained_backbone_weights=None, device="cpu", push_to_hub=False)
        policy = ACTPolicy(cfg)
    else:
        from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
        from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy

        cfg = DiffusionConfig(**feats, horizon=16, n_action_steps=8, crop_shape=(84, 84),
                              pretrained_backbone_weights=None, device="cpu", push_to_hub=False)
        policy = DiffusionPolicy(cfg)
    return save(policy, cfg, stats, dest)


def parameters(family: str, ckpt: Path) -> int:
    """Parameters of a saved checkpoint (LeRobot's own class, as saved)."""
    from lerobot.configs.policies import PreTrainedConfig

    if family == "act":
        from lerobot.policies.act.modeling_act import ACTPolicy as Policy
    else:
        from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy as Policy
    cfg = PreTrainedConfig.from_pretrained(str(ckpt))
    cfg.pretrained_backbone_weights, cfg.device = None, "cpu"
    return sum(p.numel() for p in Policy.from_pretrained(str(ckpt), config=cfg).parameters())


def dataset(dest: Path, n: int, h: int, w: int, stats_dir: Path) -> None:
    """2 episodes x 16 frames as export_diffusion.py's `dataset_frames` reads
    them (data/*/*.parquet: episode_index, frame_index, observation.state,
    the image as {bytes: PNG})."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq
    from PIL import Image
    from safetensors.torch import load_file

    import export_diffusion

    st = next(load_file(str(p)) for p in sorted(stats_dir.glob("policy_preprocessor*.safetensors")))
    lo, hi = st["observation.state.min"].numpy(), st["observation.state.max"].numpy()
    a = SimpleNamespace(seed=0, episodes=2, steps=16)
    frames = export_diffusion.synthetic_frames(a, h, w, lo + 0.1 * (hi - lo), hi - 0.1 * (hi - lo), n, np)
    rows = {"episode_index": [], "frame_index": [], "observation.state": [], f"observation.images.{CAMERA}": []}
    for e, eps in enumerate(frames):
        for k, joints, img in eps:
            buf = io.BytesIO()
            Image.fromarray(img).save(buf, format="PNG")
            rows["episode_index"].append(e)
            rows["frame_index"].append(k)
            rows["observation.state"].append(joints.tolist())
            rows[f"observation.images.{CAMERA}"].append({"bytes": buf.getvalue(), "path": None})
    (dest / "data" / "chunk-000").mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(rows), dest / "data" / "chunk-000" / "file-000.parquet")


def run_import(family: str, work: Path, ganglion: Path, python: str, samples: int) -> dict:
    fps = SETUP[family][3]
    cmd = [str(ganglion), "policy", "import", str(work / family / "pretrained_model"),
           "--out", str(work / family / "bundle"), "--key", str(KEY), "--profile", str(work / family / "profile.toml"),
           "--python", python, "--fps", str(fps), "--weights", "fp32", "--name", f"real-size-{family}",
           "--samples", str(samples), "--json"]
    if family == "diffusion":
        cmd += ["--dataset", str(work / family / "dataset")]
    print("+", " ".join(cmd), file=sys.stderr)
    # The import writes only export_act.py and export_diffusion.py to its
    # scratch folder, but export_diffusion.py imports make_diffusion_fixture
    # (ModuleNotFoundError): this folder on PYTHONPATH supplies it.
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(HERE), os.environ.get("PYTHONPATH")])))
    r = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    if r.returncode != 0:
        sys.exit(f"make_real_size.py: the {family} import failed ({r.returncode}):\n{r.stderr[-4000:]}")
    return json.loads(r.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("workdir", type=Path, nargs="?", default=Path("/tmp/real-size"))
    ap.add_argument("--ganglion", type=Path, default=Path("/work/bin/ganglion"))
    ap.add_argument("--python", default=sys.executable, help="the LeRobot interpreter the import runs")
    ap.add_argument("--families", default="act,diffusion")
    ap.add_argument("--samples", type=int, default=8,
                    help="the parity gate's observations (Diffusion: chunks of 100 DDPM steps, ~30 s each in PyTorch)")
    args = ap.parse_args()
    work = args.workdir.resolve()
    sys.path.insert(0, str(HERE))
    log_path = work / "make_real_size.json"
    log = json.loads(log_path.read_text()) if log_path.exists() else {}
    for family in [f for f in args.families.split(",") if f]:
        n, h, w, _ = SETUP[family]
        d = work / family
        entry = log.setdefault(family, {})
        ckpt = d / "pretrained_model"
        if not (ckpt / "model.safetensors").exists():
            t = time.perf_counter()
            entry["parameters"] = checkpoint(family, ckpt)
            entry["checkpoint_s"] = round(time.perf_counter() - t, 1)
            print(f"{family}: {entry['parameters']} parameters, {entry['checkpoint_s']} s", file=sys.stderr)
        if "parameters" not in entry:
            entry["parameters"] = parameters(family, ckpt)
        entry["safetensors_bytes"] = (ckpt / "model.safetensors").stat().st_size
        (d / "profile.toml").write_text(profile_toml(n, h, w))
        if family == "diffusion" and not (d / "dataset").exists():
            dataset(d / "dataset", n, h, w, ckpt)
        if not (d / "bundle" / "policy.toml").exists():
            t = time.perf_counter()
            rep = run_import(family, work, args.ganglion, args.python, args.samples)
            entry["import_s"] = round(time.perf_counter() - t, 1)
            entry["import"] = rep
            entry["onnx_bytes"] = {p.name: p.stat().st_size for p in sorted((d / "bundle").glob("*.onnx"))}
            print(f"{family}: imported in {entry['import_s']} s, parity max abs error "
                  f"{rep['parity']['max_abs_error']:.3e} (tolerance {rep['tolerance']:.1e}), "
                  f"graphs {entry['onnx_bytes']}", file=sys.stderr)
        log_path.write_text(json.dumps(log, indent=1) + "\n")
    print(json.dumps(log, indent=1))


if __name__ == "__main__":
    main()
