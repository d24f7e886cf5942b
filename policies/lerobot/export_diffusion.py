"""Export a LeRobot Diffusion Policy checkpoint as a Ganglion format-2 bundle
(by hand; `ganglion policy import` does not take Diffusion yet), with PyTorch
goldens drawn by LeRobot's own sampling loop.

    /work/lerobot-venv/bin/python policies/lerobot/export_diffusion.py \
        --checkpoint policies/fixtures/lerobot-diffusion/pretrained_model \
        --out policies/fixtures/lerobot-diffusion/bundle \
        --golden policies/fixtures/lerobot-diffusion/golden.json
    ganglion policy sign policies/fixtures/lerobot-diffusion/bundle \
        --key policies/fixtures/TEST-ONLY-signing.key

A checkpoint with a camera (`lerobot-train` on a `ganglion sim record
--format lerobot` dataset; policies/fixtures/lerobot-diffusion/reach):

    /work/lerobot-venv/bin/python policies/lerobot/export_diffusion.py \
        --checkpoint CKPT/pretrained_model --out DIR/bundle --golden DIR/golden.json \
        --weights int8 --name diffusion-reach-lerobot

Needs LeRobot 0.6 with its `diffusion` extra (diffusers), onnx, onnxruntime.
The checkpoint is loaded from the local folder (`DiffusionPolicy.from_pretrained`,
`make_pre_post_processors(pretrained_path=...)`, no Hub access).

Writes into `--out` (created; must not exist or be empty):

- `encoder.onnx`: LeRobot's `DiffusionModel._prepare_global_conditioning`
  on normalized inputs: `observation.state` and
  `observation.environment_state`, each `[1, n_obs_steps, n]` f32 (oldest
  first) -> `global_cond` `[1, n_obs_steps * 2n]`. The environment state is
  the joint state (same shape, same normalization statistics: checked).
  With a camera (`observation.images.<camera>`, one camera) the encoder
  takes `observation.state` (and the environment state when the checkpoint
  has one) and the image `observation.images.<camera>` as Ganglion's
  `obs.image.<camera>` wire delivers it: `[1, 3, H, W]` f32 when
  `n_obs_steps` is 1, else `[1, n_obs_steps, 3, H, W]` (the wire keeps
  `history = n_obs_steps` frames, oldest first, like the state wires; every
  frame goes through the same ResNet, as `_prepare_global_conditioning`
  folds the steps into the batch): each frame whole, `(v / 255 -
  mean) / std` with the processor's VISUAL statistics in `[[cameras]]`
  (LeRobot's pre-processor does the same to the dataset's [0, 1] image).
  What LeRobot's `DiffusionRgbEncoder` does after that is in the graph: its
  eval-time centre crop (`crop_shape`) as a plain slice with torchvision's
  offsets (`CenterCrop` itself breaks the legacy exporter), the ResNet, the
  spatial softmax. `resize_shape` is refused (torchvision's antialiased
  resize is not Ganglion's bilinear one).
- `step.onnx`: the UNet, `sample` `[1, horizon, n]` f32, `timestep` `[1]`
  i64, `global_cond` -> `eps` (or x0 for `prediction_type = "sample"`).
  No noise, no schedule inside.
- `policy.toml` (format 2, unsigned: `ganglion policy sign` fills the
  digests): both `obs.state` wires carry `history = n_obs_steps`; the head
  runs `num_inference_steps` steps of LeRobot's scheduler (its config keys,
  copied) and keeps actions `n_obs_steps - 1 ..` of the horizon
  (`chunk_offset`), as `generate_actions` does; joints and action
  normalization from the processors' statistics (MIN_MAX -> centre and half
  range, MEAN_STD -> mean and std + eps for inputs, IDENTITY -> 0 and 1).
  `--weights int8`: every float initializer of >= 1024 elements stored as
  int8 with a per-output-channel scale (export_act.py's `int8_weights`,
  docs/POLICIES.md "Weight-only INT8"); fp32 arithmetic, a quarter of the
  size (the ResNet-18 alone is 45 MB of fp32).

And `--golden`: for `--episodes` episodes of `--steps` observations each
(joints along a smooth path inside the state statistics, policy reset at
every episode start), the joint positions, every noise tensor LeRobot's loop
drew (x_T, then the scheduler's noise at every step with t > 0, in order,
from a `torch.Generator` seeded with `--seed`) and the actions of LeRobot's
`select_action` path (pre-processor, observation queues, `generate_actions`,
post-processor), in robot units. With a camera the observations are frames
of the training dataset instead (`--dataset`, default the one named in the
checkpoint's `train_config.json`): episodes 0.. and every `--frame-stride`-th
frame, the joints from `observation.state` (or, `--synthetic-frames`, for a
checkpoint without a dataset: the state-only path's joints and seeded
frames, a disc moving over a gradient plus noise, different at every
observation), the image as base64 of its HWC
rgb8 bytes (`image_rgb8_b64`, `image_shape`, as the VLA goldens), and
`bundle_max_abs`: the exported graphs on ONNX Runtime driven by LeRobot's
scheduler with the recorded noise against those actions (the int8
rounding, when `--weights int8`). Plus the final normalized sample (the whole
horizon) and `global_cond`, for diagnosis; for the first observation the
scheduler's trajectory (each step's timestep, UNet output and resulting
sample, as `DDPMScheduler.step` computed them), and the scheduler's betas,
`alphas_cumprod` and timesteps.
"""

from __future__ import annotations

import argparse
import base64
import json
import math
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def fail(msg: str) -> None:
    print(f"export_diffusion.py: {msg}", file=sys.stderr)
    sys.exit(2)


def strip(path: Path, producer: str) -> None:
    import onnx

    model = onnx.load(str(path))
    model.producer_name = producer
    model.doc_string = ""
    del model.metadata_props[:]
    for node in model.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    onnx.save(model, str(path))


def affine(mode: str, st: dict, eps: float, n: int, output: bool) -> tuple[list[float], list[float]]:
    """A LeRobot normalization mode as Ganglion's `(x - mean) / std`."""
    import numpy as np

    def get(k):
        if k not in st:
            fail(f"normalization {mode} needs `{k}` statistics")
        return st[k].double().numpy().reshape(-1)

    if mode == "IDENTITY":
        return [0.0] * n, [1.0] * n
    if mode == "MEAN_STD":
        std = get("std")
        return get("mean").tolist(), (std if output else std + eps).tolist()
    if mode in ("MIN_MAX", "QUANTILES", "QUANTILE10"):
        lo_k, hi_k = {"MIN_MAX": ("min", "max"), "QUANTILES": ("q01", "q99"), "QUANTILE10": ("q10", "q90")}[mode]
        lo, hi = get(lo_k), get(hi_k)
        denom = np.where(hi - lo == 0, eps, hi - lo)
        return (lo + denom / 2).tolist(), (denom / 2).tolist()
    fail(f"normalization mode {mode} is not supported")
    raise AssertionError


def dataset_frames(args, cfg, image_key: str, np) -> list[list[tuple]]:
    """Golden observations of a camera checkpoint: per episode 0..
    `--episodes`, `--steps` frames `--frame-stride` apart of the training
    dataset, as `(frame index, joints f32, HWC u8 image)`."""
    import io

    import pyarrow.parquet as pq
    from PIL import Image

    root = args.dataset
    if root is None:
        tc = args.checkpoint / "train_config.json"
        if not tc.is_file():
            fail(f"{tc}: missing; name the dataset with --dataset")
        root = Path(json.loads(tc.read_text())["dataset"]["root"])
    files = sorted((root / "data").glob("*/*.parquet"))
    if not files:
        fail(f"{root}: no data/*/*.parquet (a LeRobotDataset v3 root)")
    cols = ["episode_index", "frame_index", "observation.state", image_key]
    table = pq.read_table(files[0], columns=cols).to_pydict()
    out = []
    for e in range(args.episodes):
        rows = {f: i for i, (ep, f) in enumerate(zip(table["episode_index"], table["frame_index"])) if ep == e}
        want = [k * args.frame_stride for k in range(args.steps)]
        if any(f not in rows for f in want):
            fail(f"{files[0]}: episode {e} lacks frames {want}")
        eps = []
        for f in want:
            img = np.asarray(Image.open(io.BytesIO(table[image_key][rows[f]]["bytes"])).convert("RGB"), np.uint8)
            if img.shape != (cfg.image_features[image_key].shape[1], cfg.image_features[image_key].shape[2], 3):
                fail(f"{image_key}: dataset frame {img.shape}, the policy takes {cfg.image_features[image_key].shape}")
            eps.append((f, np.asarray(table["observation.state"][rows[f]], np.float32), img))
        out.append(eps)
    return out


def synthetic_frames(args, h: int, w: int, lo, hi, n: int, np) -> list[list[tuple]]:
    """Golden observations of a camera checkpoint without a dataset: per
    episode, `--steps` observations `(k, joints f32, HWC u8 image)`; the
    joints follow the state-only path, the image a disc moving over a
    gradient plus seeded noise, so consecutive frames differ."""
    rng = np.random.default_rng(args.seed)
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = []
    for e in range(args.episodes):
        phase = np.arange(n) * 1.3 + e * 0.7
        eps = []
        for k in range(args.steps):
            wgt = 0.5 + 0.5 * np.sin(phase + 0.6 * k)
            joints = (lo + (hi - lo) * wgt).astype(np.float32)
            cy, cx = h * (0.3 + 0.4 * wgt[0]), w * (0.3 + 0.4 * wgt[1 % n])
            disc = ((yy - cy) ** 2 + (xx - cx) ** 2) < (0.15 * min(h, w)) ** 2
            img = np.stack([xx / w * 200, yy / h * 200, np.full_like(xx, 60.0 + 40 * e)], axis=-1)
            img[disc] = [230.0, 40.0 + 50 * k, 30.0]
            img = np.clip(img + rng.normal(0, 12, img.shape), 0, 255).astype(np.uint8)
            eps.append((k, joints, img))
        out.append(eps)
    return out


def toml_list(v) -> str:
    return "[" + ", ".join(repr(float(x)) if isinstance(x, float) else str(x) for x in v) + "]"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--golden", required=True, type=Path)
    ap.add_argument("--name", default="lerobot-diffusion-fixture")
    ap.add_argument("--joints", default="base_yaw,shoulder_pitch,elbow_pitch")
    ap.add_argument("--fps", type=float, default=10.0)
    ap.add_argument("--episodes", type=int, default=2)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--weights", choices=["fp32", "int8"], default="fp32")
    ap.add_argument("--expected-latency-ms", type=float, default=50.0)
    ap.add_argument("--dataset", type=Path, default=None,
                    help="LeRobotDataset root for the golden frames (camera checkpoints); "
                    "default: the checkpoint's train_config.json dataset.root")
    ap.add_argument("--frame-stride", type=int, default=5)
    ap.add_argument("--synthetic-frames", action="store_true",
                    help="camera checkpoints without a dataset: seeded synthetic golden frames")
    args = ap.parse_args()

    import numpy as np
    import onnxruntime as ort
    import torch
    import diffusers
    import diffusers.schedulers.scheduling_ddim as sched_ddim
    import diffusers.schedulers.scheduling_ddpm as sched_ddpm
    import lerobot
    from lerobot.configs.policies import PreTrainedConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.utils.constants import ACTION, OBS_ENV_STATE, OBS_IMAGES, OBS_STATE

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from export_act import int8_weights

    if args.out.exists() and any(args.out.iterdir()):
        fail(f"{args.out}: exists and is not empty")
    args.out.mkdir(parents=True, exist_ok=True)

    cfg = PreTrainedConfig.from_pretrained(str(args.checkpoint))
    if getattr(cfg, "vision_backbone", None) == "resnet_ganglion_tiny":
        # The image-history fixture's backbone (make_diffusion_fixture.py);
        # real checkpoints use torchvision's and need no fixture module.
        from make_diffusion_fixture import register_tiny_backbone

        register_tiny_backbone()
    if cfg.type != "diffusion":
        fail(f"{args.checkpoint}/config.json: policy type {cfg.type!r}, this script exports `diffusion` only")
    cfg.pretrained_backbone_weights = None
    cfg.device = "cpu"
    cams = list(cfg.image_features)  # `observation.images.<camera>` keys
    has_env = cfg.env_state_feature is not None
    if cfg.robot_state_feature is None or not (has_env or cams):
        fail("expected observation.state and observation.environment_state or an image")
    n = cfg.robot_state_feature.shape[0]
    if (has_env and cfg.env_state_feature.shape[0] != n) or cfg.action_feature.shape[0] != n:
        fail("the environment state and the action must be the joint state's length")
    if cams:
        if len(cams) != 1:
            fail(f"image features {cams}: this export takes one camera")
        if cfg.resize_shape is not None:
            fail(f"resize_shape {cfg.resize_shape}: not supported (torchvision's resize is not Ganglion's)")
        if not cams[0].startswith("observation.images."):
            fail(f"{cams[0]}: expected observation.images.<camera>")
        if cfg.image_features[cams[0]].shape[0] != 3:
            fail(f"{cams[0]}: {cfg.image_features[cams[0]].shape[0]} channels, expected 3 (rgb8)")
    policy = DiffusionPolicy.from_pretrained(str(args.checkpoint), config=cfg)
    policy.eval()
    pre, post = make_pre_post_processors(cfg, pretrained_path=str(args.checkpoint))
    norm = next(s for s in pre.steps if hasattr(s, "_tensor_stats"))
    stats, eps = norm._tensor_stats, float(norm.eps)
    norm_map = {str(k.value if hasattr(k, "value") else k): str(v.value if hasattr(v, "value") else v)
                for k, v in cfg.normalization_mapping.items()}
    state_mode, env_mode, act_mode = norm_map.get("STATE", "IDENTITY"), norm_map.get("ENV", "IDENTITY"), norm_map.get("ACTION", "IDENTITY")
    if has_env and (env_mode != state_mode or any(
        not torch.equal(stats[OBS_STATE][k], stats[OBS_ENV_STATE][k]) for k in stats[OBS_STATE]
    )):
        fail("observation.environment_state is not normalized like observation.state: it cannot be the joint state")
    joints_mean, joints_std = affine(state_mode, stats[OBS_STATE], eps, n, output=False)
    action_mean, action_std = affine(act_mode, stats[ACTION], eps, n, output=True)
    if cams:
        image_key = cams[0]
        camera = image_key.removeprefix("observation.images.")
        _, img_h, img_w = cfg.image_features[image_key].shape
        if image_key not in stats and norm_map.get("VISUAL", "IDENTITY") != "IDENTITY":
            fail(f"{image_key}: no statistics in the processor files")
        img_mean, img_std = affine(norm_map.get("VISUAL", "IDENTITY"), stats.get(image_key, {}), eps, 3, output=False)

    S, H = cfg.n_obs_steps, cfg.horizon
    model = policy.diffusion
    steps = model.num_inference_steps
    sched = model.noise_scheduler
    sc = dict(sched.config)
    kind = {"DDPMScheduler": "ddpm", "DDIMScheduler": "ddim"}[type(sched).__name__]
    # What Ganglion implements (schedule.rs); anything else is refused here.
    expect = {"timestep_spacing": "leading", "thresholding": False, "trained_betas": None}
    if kind == "ddpm":
        expect["variance_type"] = "fixed_small"
    for k, v in expect.items():
        if sc.get(k) != v:
            fail(f"scheduler {k} = {sc.get(k)!r}: Ganglion implements {v!r}")
    if sc.get("prediction_type") not in ("epsilon", "sample"):
        fail(f"prediction_type {sc.get('prediction_type')!r} not supported")

    class Encoder(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, state, env):
            return self.m._prepare_global_conditioning({OBS_STATE: state, OBS_ENV_STATE: env})

    class Step(torch.nn.Module):
        def __init__(self, unet):
            super().__init__()
            self.unet = unet

        def forward(self, sample, timestep, global_cond):
            return self.unet(sample, timestep, global_cond=global_cond)

    class ImageEncoder(torch.nn.Module):
        """The state (and environment state), then the camera's normalized
        frame `[1, 3, H, W]` (`n_obs_steps` 1) or frames `[1, S, 3, H, W]`
        (oldest first) -> `global_cond`."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, state, *rest):
            batch = {OBS_STATE: state}
            if has_env:
                batch[OBS_ENV_STATE], rest = rest[0], rest[1:]
            if S == 1:
                batch[OBS_IMAGES] = torch.stack(list(rest), dim=1)[:, None]  # [B, S=1, cameras, C, H, W]
            else:
                batch[OBS_IMAGES] = rest[0][:, :, None]  # [B, S, cameras=1, C, H, W]
            return self.m._prepare_global_conditioning(batch)

    class SliceCrop(torch.nn.Module):
        """torchvision's `CenterCrop` (offsets `round((size - crop) / 2)`) as
        a slice, which the legacy exporter takes."""

        def __init__(self, h, w, ch, cw):
            super().__init__()
            self.top, self.left, self.ch, self.cw = int(round((h - ch) / 2.0)), int(round((w - cw) / 2.0)), ch, cw

        def forward(self, x):
            return x[..., self.top:self.top + self.ch, self.left:self.left + self.cw]

    encoder, step = (ImageEncoder(model) if cams else Encoder(model)).eval(), Step(model.unet).eval()
    z_state = torch.zeros(1, S, n)
    img_shape = None if not cams else (1, 3, img_h, img_w) if S == 1 else (1, S, 3, img_h, img_w)
    if cams:
        enc_names = [OBS_STATE] + ([OBS_ENV_STATE] if has_env else []) + [image_key]
        enc_dummy = (z_state,) + ((z_state,) if has_env else ()) + (torch.zeros(*img_shape),)
    else:
        enc_names, enc_dummy = [OBS_STATE, OBS_ENV_STATE], (z_state, z_state)
    rgb = [] if not cams else list(model.rgb_encoder) \
        if isinstance(model.rgb_encoder, torch.nn.ModuleList) else [model.rgb_encoder]
    crops = [e.center_crop for e in rgb if e.do_crop]
    for e in rgb:
        if e.do_crop:
            e.center_crop = SliceCrop(img_h, img_w, *cfg.crop_shape)
    cond_dim = encoder(*enc_dummy).shape[-1]
    export_kw = dict(opset_version=args.opset, dynamo=False, do_constant_folding=True)
    torch.onnx.export(encoder, enc_dummy, str(args.out / "encoder.onnx"),
                      input_names=enc_names, output_names=["global_cond"], **export_kw)
    torch.onnx.export(step, (torch.zeros(1, H, n), torch.zeros(1, dtype=torch.int64), torch.zeros(1, cond_dim)),
                      str(args.out / "step.onnx"), input_names=["sample", "timestep", "global_cond"],
                      output_names=["eps"], **export_kw)
    for f in ("encoder.onnx", "step.onnx"):
        strip(args.out / f, "ganglion export_diffusion.py")
        if args.weights == "int8":
            import onnx

            graph = onnx.load(str(args.out / f))
            int8_weights(graph, onnx, np)
            onnx.save(graph, str(args.out / f))

    # ONNX Runtime vs PyTorch on random inputs: the graphs are the modules.
    g = torch.Generator().manual_seed(123)
    st, x, cond = torch.randn(1, S, n, generator=g), torch.randn(1, H, n, generator=g), None
    enc_s = ort.InferenceSession(str(args.out / "encoder.onnx"))
    step_s = ort.InferenceSession(str(args.out / "step.onnx"))
    rand_in = (st, st) if not cams else \
        (st,) + ((st,) if has_env else ()) + (torch.randn(*img_shape, generator=g),)
    with torch.no_grad():
        cond = encoder(*rand_in)
        eps_t = step(x, torch.tensor([37]), cond)
    # The crop is LeRobot's own again for the goldens.
    for e, c in zip([e for e in rgb if e.do_crop], crops):
        e.center_crop = c
    cond_o = enc_s.run(None, {k: v.numpy() for k, v in zip(enc_names, rand_in)})[0]
    eps_o = step_s.run(None, {"sample": x.numpy(), "timestep": np.array([37]), "global_cond": cond.numpy()})[0]
    ort_err = max(float(np.abs(cond_o - cond.numpy()).max()), float(np.abs(eps_o - eps_t.numpy()).max()))

    off = S - 1
    sched_keys = ["num_train_timesteps", "beta_schedule", "beta_start", "beta_end", "prediction_type",
                  "clip_sample", "clip_sample_range", "steps_offset"]
    if kind == "ddim":
        sched_keys.append("set_alpha_to_one")
    names = args.joints.split(",")
    if len(names) != n:
        fail(f"--joints names {len(names)} joints, the policy has {n}")

    def tv(v):
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, str):
            return json.dumps(v)
        return repr(v)

    wires = [f'    {{ from = "obs.state", to = "encoder.{OBS_STATE}", history = {S} }},\n']
    enc_inputs = [f'    {{ name = "{OBS_STATE}", shape = [1, {S}, {n}], dtype = "f32" }},\n']
    if has_env:
        wires.append(f'    {{ from = "obs.state", to = "encoder.{OBS_ENV_STATE}", history = {S} }},\n')
        enc_inputs.append(f'    {{ name = "{OBS_ENV_STATE}", shape = [1, {S}, {n}], dtype = "f32" }},\n')
    cameras_toml = ""
    if cams:
        if S == 1:
            wires.append(f'    {{ from = "obs.image.{camera}", to = "encoder.{image_key}" }},\n')
        else:
            wires.append(f'    {{ from = "obs.image.{camera}", to = "encoder.{image_key}", history = {S} }},\n')
        enc_inputs.append(f'    {{ name = "{image_key}", shape = {list(img_shape)}, dtype = "f32" }},\n')
        cameras_toml = f"""
[[cameras]]
name = "{camera}"
width = {img_w}
height = {img_h}
format = "rgb8"
resize = [{img_w}, {img_h}]
mean = {toml_list(img_mean)}
std = {toml_list(img_std)}
"""
    toml = f"""format = 2
name = "{args.name}"
version = "0.1.0"
precision = "fp32"
expected_latency_ms = {args.expected_latency_ms}
parity_tolerance = {0.0001 if args.weights == "fp32" else 0.01}

[dataflow]
wires = [
{"".join(wires)}    {{ from = "encoder.global_cond", to = "step.global_cond" }},
]

[dataflow.graphs.encoder]
file = "encoder.onnx"
inputs = [
{"".join(enc_inputs)}]
outputs = [
    {{ name = "global_cond", shape = [1, {cond_dim}], dtype = "f32" }},
]

[dataflow.graphs.step]
file = "step.onnx"
inputs = [
    {{ name = "sample", shape = [1, {H}, {n}], dtype = "f32" }},
    {{ name = "timestep", shape = [1], dtype = "i64" }},
    {{ name = "global_cond", shape = [1, {cond_dim}], dtype = "f32" }},
]
outputs = [
    {{ name = "eps", shape = [1, {H}, {n}], dtype = "f32" }},
]

[dataflow.head]
graph = "step"
sample = "sample"
timestep = "timestep"
output = "eps"
steps = {steps}
chunk_offset = {off}

[dataflow.head.schedule]
kind = "{kind}"
""" + "".join(f"{k} = {tv(sc[k])}\n" for k in sched_keys) + f"""
[joints]
names = {json.dumps(names)}
mean = {toml_list(joints_mean)}
std = {toml_list(joints_std)}

[action]
kind = "absolute"
chunk_len = {cfg.n_action_steps}
rate_hz = {args.fps}
mean = {toml_list(action_mean)}
std = {toml_list(action_std)}
{cameras_toml}
[[files]]
path = "encoder.onnx"
sha256 = ""

[[files]]
path = "step.onnx"
sha256 = ""
"""
    (args.out / "policy.toml").write_text(toml)

    # Goldens: LeRobot's own select_action path with recorded noise.
    gen = torch.Generator().manual_seed(args.seed)
    drawn: list[torch.Tensor] = []
    originals = {m: m.randn_tensor for m in (sched_ddpm, sched_ddim)}

    def recording(shape, generator=None, device=None, dtype=None, layout=None):
        z = torch.randn(shape, generator=gen, dtype=dtype)
        drawn.append(z.clone())
        return z

    for m in originals:
        m.randn_tensor = recording
    lo = np.asarray(joints_mean) - 0.8 * np.asarray(joints_std)
    hi = np.asarray(joints_mean) + 0.8 * np.asarray(joints_std)
    if cams and args.synthetic_frames:
        frames = synthetic_frames(args, img_h, img_w, lo, hi, n, np)
    else:
        frames = dataset_frames(args, cfg, image_key, np) if cams else None
    obs_keys = [OBS_STATE] + ([OBS_ENV_STATE] if has_env else []) + ([OBS_IMAGES] if cams else [])

    def raw_obs(joints, img):
        """One observation as LeRobot's pre-processor takes it (the image as
        a dataset hands it: CHW f32 in [0, 1])."""
        j = torch.from_numpy(np.asarray(joints, np.float32))[None]
        obs = {OBS_STATE: j}
        if has_env:
            obs[OBS_ENV_STATE] = j
        if cams:
            obs[image_key] = torch.from_numpy(img).permute(2, 0, 1).float().div(255.0)[None]
        return obs

    def graphs_chunk(hist, noise):
        """The exported graphs on ONNX Runtime, with LeRobot's scheduler and
        the recorded noise replayed: the chunk in robot units."""
        feeds = {OBS_STATE: hist[OBS_STATE].numpy()}
        if has_env:
            feeds[OBS_ENV_STATE] = hist[OBS_ENV_STATE].numpy()
        if cams:
            feeds[image_key] = (hist[OBS_IMAGES][:, -1, 0] if S == 1 else hist[OBS_IMAGES][:, :, 0]).numpy()
        cond = enc_s.run(None, feeds)[0]
        sample, replay = noise[0].reshape(1, H, n), iter(noise[1:])
        for mod in originals:
            mod.randn_tensor = lambda shape, generator=None, device=None, dtype=None, layout=None: next(replay)
        try:
            sched.set_timesteps(steps)
            for t in sched.timesteps:
                e = step_s.run(None, {"sample": sample.numpy(), "timestep": np.array([int(t)]), "global_cond": cond})[0]
                sample = sched.step(torch.from_numpy(e), t, sample).prev_sample
        finally:
            for mod in originals:
                mod.randn_tensor = recording
        chunk = sample[0, off:off + cfg.n_action_steps].double().numpy()
        return chunk * np.asarray(action_std) + np.asarray(action_mean)

    bundle_err = 0.0
    episodes = []
    try:
        with torch.no_grad():
            for e in range(args.episodes):
                policy.reset()
                obs_list = []
                phase = np.arange(n) * 1.3 + e * 0.7
                for k in range(args.steps):
                    if cams:
                        frame, joints, img = frames[e][k]
                    else:
                        w = 0.5 + 0.5 * np.sin(phase + 0.6 * k)
                        joints, img = (lo + (hi - lo) * w).astype(np.float32), None
                    drawn.clear()
                    x_T = torch.randn(1, H, n, generator=gen)
                    drawn.append(x_T.clone())
                    batch = pre(raw_obs(joints, img))
                    # LeRobot's select_action, made to plan on every call (its
                    # action queue emptied): queues -> predict_action_chunk.
                    policy._queues[ACTION].clear()
                    first = policy.select_action(batch, noise=x_T)
                    chunk = torch.stack([first] + list(policy._queues[ACTION]), dim=1)
                    actions = post(chunk)
                    # Diagnosis: the same loop's conditioning and whole final sample.
                    hist = {key: torch.stack(list(policy._queues[key]), dim=1) for key in obs_keys}
                    cond = model._prepare_global_conditioning(hist)
                    entry = {
                        "joints": [float(v) for v in joints],
                        "noise": [d.reshape(-1).tolist() for d in drawn],
                        "global_cond": cond.reshape(-1).tolist(),
                        "actions": actions[0].double().tolist(),
                    }
                    if cams:
                        if not args.synthetic_frames:
                            entry.update({"dataset_episode": e, "dataset_frame": frame})
                        entry.update({
                            "image_rgb8_b64": base64.b64encode(np.ascontiguousarray(img).tobytes()).decode(),
                            "image_shape": list(img.shape),
                        })
                        ours = graphs_chunk(hist, [d.clone() for d in drawn])
                        bundle_err = max(bundle_err, float(np.abs(ours - actions[0].double().numpy()).max()))
                    obs_list.append(entry)
                episodes.append({"observations": obs_list})
            # The whole horizon once more for the first observation (the
            # slice LeRobot keeps is checked against it).
            policy.reset()
            first_obs = episodes[0]["observations"][0]
            noise = [torch.tensor(d).reshape(1, H, n) for d in first_obs["noise"]]
            replay = iter(noise[1:])
            for m in originals:
                m.randn_tensor = lambda shape, generator=None, device=None, dtype=None, layout=None: next(replay)
            b = pre(raw_obs(first_obs["joints"], frames[0][0][2] if cams else None))
            if cams:
                b[OBS_IMAGES] = torch.stack([b[key] for key in cams], dim=-4)
            hist = {key: torch.stack([b[key]] * S, dim=1) for key in obs_keys}
            # ...recording what the scheduler got and made at every step.
            trajectory = []
            plain_step = sched.step

            def recording_step(model_output, t, sample, generator=None, **kw):
                res = plain_step(model_output, t, sample, generator=generator, **kw)
                trajectory.append({"timestep": int(t), "model_output": model_output.reshape(-1).tolist(),
                                   "prev_sample": res.prev_sample.reshape(-1).tolist()})
                return res

            sched.step = recording_step
            try:
                full = model.conditional_sample(1, global_cond=model._prepare_global_conditioning(hist), noise=noise[0])
            finally:
                del sched.step
            first_obs["sample"] = full.reshape(-1).tolist()
            first_obs["trajectory"] = trajectory
    finally:
        for m, f in originals.items():
            m.randn_tensor = f

    golden = {
        "source": "lerobot",
        "policy_type": "diffusion",
        "lerobot_version": lerobot.__version__,
        "torch_version": torch.__version__,
        "diffusers_version": diffusers.__version__,
        "onnx_opset": args.opset,
        "seed": args.seed,
        "scheduler": type(sched).__name__,
        "scheduler_config": {k: sc[k] for k in sorted(sc) if not k.startswith("_")},
        "num_inference_steps": steps,
        # The scheduler's own tables (float32 tensors) after set_timesteps.
        "betas": sched.betas.double().tolist(),
        "alphas_cumprod": sched.alphas_cumprod.double().tolist(),
        "timesteps": [int(t) for t in sched.timesteps],
        "n_obs_steps": S,
        "horizon": H,
        "n_action_steps": cfg.n_action_steps,
        "onnxruntime_vs_torch_max_abs": ort_err,
        "episodes": episodes,
    }
    if cams:
        golden["camera"] = camera
        golden["weights"] = args.weights
        # The graphs (ONNX Runtime) + LeRobot's scheduler vs LeRobot's actions.
        golden["bundle_max_abs"] = bundle_err
    args.golden.write_text(json.dumps(golden) + "\n")
    sizes = {f: (args.out / f).stat().st_size for f in ("encoder.onnx", "step.onnx")}
    print(f"exported {sizes} ({kind}, {steps} steps, history {S}, chunk offset {off}); "
          f"onnxruntime vs torch {ort_err:.2e}; " + (f"graphs vs golden actions {bundle_err:.2e}; " if cams else "") +
          f"golden {args.golden} "
          f"({sum(len(e['observations']) for e in episodes)} chunks); lerobot {lerobot.__version__}, "
          f"torch {torch.__version__}, diffusers {diffusers.__version__}")


if __name__ == "__main__":
    main()
