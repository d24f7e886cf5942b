"""Export a LeRobot ACT checkpoint for `ganglion policy import`.

Run by `ganglion policy import` with a LeRobot environment (Python >= 3.12,
`pip install lerobot==0.6.*`; docs/POLICIES.md, "Importing a LeRobot
checkpoint"). It can be run by hand with the same arguments:

    python export_act.py --checkpoint CKPT/pretrained_model --out DIR \
        [--samples 8] [--seed 0] [--opset 17] [--environment-state-from-joints] \
        [--weights fp32|int8]

It loads the checkpoint with LeRobot's own classes from the local folder
(no Hub access), and writes into DIR (which must exist and be empty):

- `policy.onnx`: the ACT model on *normalized* inputs, batch 1, inputs in
  this order: every image feature (config order) as `[1, 3, H, W]` f32,
  then `observation.state` `[1, n]` f32; output `action` `[1, chunk, n]`
  f32, normalized. Ganglion normalizes the inputs and de-normalizes the
  chunk itself, from the statistics it reads out of the checkpoint's
  processor files (so they are visible in policy.toml). With
  `--environment-state-from-joints`, `observation.environment_state` is fed
  from the same normalized joints input (the importer checked that it is the
  joint state with the same normalization). With `--weights int8` every
  float initializer of at least INT8_MIN_ELEMENTS elements (conv and linear
  weights) is stored as int8 with a symmetric float scale per output channel
  and turned back into float by a `Cast` + `Mul` in front of its consumers
  (weight-only quantization: a quarter of the size, fp32 arithmetic; tract
  and ONNX Runtime fold it at load). Needed for image ACTs: the ResNet-18
  backbone alone is ~45 MB of fp32.
- `parity.json`: `samples` deterministic observations (joint positions and
  rgb8 frames, from `--seed`) and the actions the full PyTorch policy
  (LeRobot's pre-processor, `predict_action_chunk`, post-processor) returns
  for them, in robot units; plus the LeRobot, torch and ONNX opset versions.
  Ganglion runs the new bundle on the same observations and refuses to
  write it when the actions differ by more than the tolerance.

Exit status 0 on success; on failure a one-line reason on stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

# Never reach for the Hub: everything comes from the local checkpoint.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

PARITY_FORMAT = 1
# Keep in step with ganglion_policies::manifest::INT8_WEIGHT_MIN_ELEMENTS.
INT8_MIN_ELEMENTS = 1024
# Largest float constant tract folds at load (4 MiB of f32).
FOLD_ELEMENTS = 1 << 20


def fail(msg: str) -> None:
    print(f"export_act.py: {msg}", file=sys.stderr)
    sys.exit(2)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--environment-state-from-joints", action="store_true")
    ap.add_argument("--weights", choices=["fp32", "int8"], default="fp32")
    args = ap.parse_args()

    try:
        import numpy as np
        import onnx
        import torch
        import lerobot
        from lerobot.configs.policies import PreTrainedConfig
        from lerobot.policies.act.modeling_act import ACTPolicy
        from lerobot.policies.factory import make_pre_post_processors
    except ImportError as e:
        fail(
            f"{sys.executable} (Python {sys.version.split()[0]}) cannot import {e.name}: "
            "install LeRobot (Python >= 3.12, `pip install lerobot==0.6.* onnx`)"
        )

    if not args.out.is_dir() or any(args.out.iterdir()):
        fail(f"{args.out}: expected an existing empty directory")

    cfg = PreTrainedConfig.from_pretrained(str(args.checkpoint))
    if cfg.type != "act":
        fail(f"{args.checkpoint}/config.json: policy type {cfg.type!r}, this script exports `act` only")
    # The backbone's weights are in model.safetensors; asking torchvision for
    # its ImageNet weights would download them before they are overwritten.
    cfg.pretrained_backbone_weights = None
    cfg.device = "cpu"
    policy = ACTPolicy.from_pretrained(str(args.checkpoint), config=cfg)
    policy.eval()
    pre, post = make_pre_post_processors(cfg, pretrained_path=str(args.checkpoint))

    image_keys = list(cfg.image_features)
    state_key = "observation.state"
    env_key = "observation.environment_state"
    if cfg.robot_state_feature is None:
        fail("the checkpoint has no observation.state: not supported")
    n = cfg.robot_state_feature.shape[0]
    has_env = cfg.env_state_feature is not None
    if has_env and not args.environment_state_from_joints:
        fail(f"{env_key}: no source (pass --environment-state-from-joints if it is the joint state)")

    # Deterministic observations around the state statistics.
    stats = {}
    for step in pre.steps:
        if hasattr(step, "_tensor_stats"):
            stats = step._tensor_stats
    st = stats.get(state_key, {})
    mean = st["mean"].numpy().astype(np.float64) if "mean" in st else np.zeros(n)
    std = st["std"].numpy().astype(np.float64) if "std" in st else np.ones(n)
    rng = np.random.default_rng(args.seed)
    samples = []
    with torch.no_grad():
        for _ in range(args.samples):
            joints = (mean + std * rng.standard_normal(n)).astype(np.float32)
            frames = {}
            obs = {state_key: torch.from_numpy(joints)[None]}
            if has_env:
                obs[env_key] = torch.from_numpy(joints)[None]
            for k in image_keys:
                c, h, w = cfg.input_features[k].shape
                if c != 3:
                    fail(f"{k}: {c} channels, expected 3 (rgb)")
                hwc = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                frames[k] = hwc.tobytes().hex()
                obs[k] = torch.from_numpy(hwc).permute(2, 0, 1).float().div(255.0)[None]
            batch = pre(obs)
            chunk = policy.predict_action_chunk(batch)
            actions = post(chunk)
            samples.append(
                {
                    "joints": [float(v) for v in joints],
                    "frames": frames,
                    "actions": actions[0].double().tolist(),
                }
            )

    class Export(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, *inputs):
            images, joints = list(inputs[:-1]), inputs[-1]
            batch = {state_key: joints}
            if images:
                batch["observation.images"] = images
            if has_env:
                batch[env_key] = joints
            return self.model(batch)[0]

    export = Export(policy.model).eval()
    dummy = []
    for k in image_keys:
        c, h, w = cfg.input_features[k].shape
        dummy.append(torch.zeros(1, c, h, w))
    dummy.append(torch.zeros(1, n))
    onnx_path = args.out / "policy.onnx"
    torch.onnx.export(
        export,
        tuple(dummy),
        str(onnx_path),
        input_names=image_keys + [state_key],
        output_names=["action"],
        opset_version=args.opset,
        dynamo=False,
        do_constant_folding=True,
    )
    # No machine paths or stack traces in the bundle.
    model = onnx.load(str(onnx_path))
    model.producer_name = "ganglion export_act.py"
    model.doc_string = ""
    del model.metadata_props[:]
    for node in model.graph.node:
        node.doc_string = ""
        del node.metadata_props[:]
    if args.weights == "int8":
        int8_weights(model, onnx, np)
    onnx.save(model, str(onnx_path))

    ref = {
        "format": PARITY_FORMAT,
        "source": "lerobot",
        "policy_type": "act",
        "lerobot_version": lerobot.__version__,
        "torch_version": torch.__version__,
        "onnx_opset": args.opset,
        "seed": args.seed,
        "samples": samples,
    }
    (args.out / "parity.json").write_text(json.dumps(ref, indent=1) + "\n")
    print(
        f"exported {onnx_path.name} ({onnx_path.stat().st_size} bytes), {len(samples)} reference samples, "
        f"lerobot {lerobot.__version__}, torch {torch.__version__}, opset {args.opset}"
    )


def int8_weights(model, onnx, np) -> None:
    """Weight-only INT8 in place: each large float initializer W becomes
    int8 Q and a float scale S (symmetric, per output channel: axis 0, or
    the last axis for a MatMul's right operand), and `Mul(Cast(Q), S)`
    recomputes W under its old name in front of every node, so the
    consumers are unchanged."""
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    matmul_b = {n.input[1] for n in graph.node if n.op_type == "MatMul" and len(n.input) > 1}
    kept, added, nodes = [], [], []
    for init in graph.initializer:
        w = numpy_helper.to_array(init) if init.data_type == TensorProto.FLOAT else None
        if w is None or w.ndim < 2 or w.size < INT8_MIN_ELEMENTS:
            kept.append(init)
            continue
        axis = w.ndim - 1 if init.name in matmul_b else 0
        moved = np.moveaxis(w, axis, 0)
        amax = np.abs(moved.reshape(moved.shape[0], -1)).max(axis=1)
        scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
        shape = [1] * w.ndim
        shape[axis] = -1
        scale = scale.reshape(shape)
        q = np.clip(np.rint(w / scale), -127, 127).astype(np.int8)
        # tract folds a constant expression at load only while each result
        # stays within 4 MiB (tract-core's CONST_FOLD_MEM_BUDGET); a larger
        # weight would be dequantized at every inference (measured: 3-4x
        # slower). So large weights are dequantized in slices of at most
        # FOLD_ELEMENTS and concatenated (a concat of constants folds).
        step = max(1, FOLD_ELEMENTS // (w.size // w.shape[axis]))
        parts = []
        for k, start in enumerate(range(0, w.shape[axis], step)):
            idx = np.arange(start, min(start + step, w.shape[axis]))
            name = init.name if step >= w.shape[axis] else f"{init.name}.part{k}"
            added += [
                numpy_helper.from_array(np.take(q, idx, axis=axis), name + ".int8"),
                numpy_helper.from_array(np.take(scale, idx, axis=axis), name + ".scale"),
            ]
            nodes += [
                helper.make_node("Cast", [name + ".int8"], [name + ".f32"], to=TensorProto.FLOAT),
                helper.make_node("Mul", [name + ".f32", name + ".scale"], [name]),
            ]
            parts.append(name)
        if len(parts) > 1:
            nodes.append(helper.make_node("Concat", parts, [init.name], axis=axis))
    del graph.initializer[:]
    graph.initializer.extend(kept + added)
    rest = list(graph.node)
    del graph.node[:]
    graph.node.extend(nodes + rest)


if __name__ == "__main__":
    main()
