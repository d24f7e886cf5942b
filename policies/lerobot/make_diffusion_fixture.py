"""Writes the LeRobot Diffusion Policy checkpoints the Diffusion tests use (run
by hand with the LeRobot venv of docs/POLICIES.md, plus `diffusers` — LeRobot's
`diffusion` extra; CI needs none of this):

    /work/lerobot-venv/bin/python policies/lerobot/make_diffusion_fixture.py \
        policies/fixtures/lerobot-diffusion/pretrained_model
    /work/lerobot-venv/bin/python policies/lerobot/make_diffusion_fixture.py --image \
        policies/fixtures/lerobot-diffusion/image-history/pretrained_model

A small `DiffusionPolicy` (random weights, seed 0) for the simulated 3-joint
arm, built from LeRobot's own `DiffusionConfig` and saved with
`save_pretrained` and the processors' `save_pretrained` (config.json,
model.safetensors, policy_preprocessor.json / policy_postprocessor.json and
their statistics).

- `n_obs_steps = 2` (LeRobot's default): the observation history.
- `horizon = 16`, `n_action_steps = 8`: the UNet denoises 16 actions and
  LeRobot keeps actions 1..9 (from the current observation on).
- UNet `down_dims = (32, 64)`, step embedding 32, FiLM scale modulation
  (LeRobot's default architecture, narrower).
- Scheduler: LeRobot's defaults (DDPM, 100 training timesteps,
  `squaredcos_cap_v2`, `epsilon`, `clip_sample` in ±1) with
  `num_inference_steps = 10`.
- Inputs: `observation.state` and `observation.environment_state`, both
  the joint state (MIN_MAX with the same statistics). LeRobot's Diffusion
  needs an image or an environment state, and any image brings a torchvision
  ResNet (resnet18 is the smallest torchvision has: 11 M parameters, ~45 MB
  of fp32 whatever the crop), too big to commit; so this one is state-only.
- Normalization: LeRobot's Diffusion defaults, MIN_MAX for state and action.

`--image`: the camera variant instead (image history): `observation.state`
and one 64×64 camera `observation.images.front` (centre crop 56×56), no
environment state, `n_obs_steps = 2`, DDIM with 4 inference steps, UNet
`down_dims = (16, 32)`, MEAN_STD state and action and ImageNet-like image
statistics, `use_group_norm`, no pretrained weights. The backbone is
`TINY_BACKBONE`: a torchvision `ResNet`-shaped module (conv1, bn1, relu,
maxpool, layer1..4 of one `BasicBlock` each, avgpool, fc; what LeRobot's
`DiffusionRgbEncoder` keeps of `children()[:-2]`) with widths 16/16/32/32,
65 k parameters instead of resnet18's 11 M, registered in
`torchvision.models` under a `resnet*` name (LeRobot's config accepts
ResNet variants by name) by `register_tiny_backbone()`, which anything
loading this checkpoint calls first (export_diffusion.py does).
"""

from __future__ import annotations

import argparse
from pathlib import Path

#: The tiny backbone's name in `torchvision.models` (config `vision_backbone`).
TINY_BACKBONE = "resnet_ganglion_tiny"


def register_tiny_backbone() -> None:
    """Makes `torchvision.models.<TINY_BACKBONE>` exist (idempotent)."""
    import torch.nn as nn
    import torchvision
    from torchvision.models.resnet import BasicBlock

    if hasattr(torchvision.models, TINY_BACKBONE):
        return

    class TinyResNet(nn.Module):
        """torchvision's ResNet layout (same children, same order) at widths
        16/16/32/32, one BasicBlock per stage."""

        def __init__(self, widths=(16, 16, 32, 32)):
            super().__init__()
            self.conv1 = nn.Conv2d(3, widths[0], kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1 = nn.BatchNorm2d(widths[0])
            self.relu = nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            cin = widths[0]
            for i, (w, s) in enumerate(zip(widths, (1, 2, 2, 2))):
                down = None
                if s != 1 or cin != w:
                    down = nn.Sequential(nn.Conv2d(cin, w, 1, stride=s, bias=False), nn.BatchNorm2d(w))
                setattr(self, f"layer{i + 1}", nn.Sequential(BasicBlock(cin, w, s, down)))
                cin = w
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(cin, 10)

    def tiny(weights=None):
        if weights is not None:
            raise ValueError(f"{TINY_BACKBONE} has no pretrained weights")
        return TinyResNet()

    setattr(torchvision.models, TINY_BACKBONE, tiny)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("out", type=Path)
    ap.add_argument("--image", action="store_true", help="the camera + image-history variant")
    args = ap.parse_args()

    import torch
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
    from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
    from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
    from lerobot.policies.factory import make_pre_post_processors

    out = args.out
    N = 3
    torch.manual_seed(0)
    # The simulated arm's joint limits (launch/sim.toml), a little inside.
    lo = torch.tensor([-2.4, -2.0, -2.4])
    hi = torch.tensor([2.4, 1.0, 2.4])
    if not args.image:
        cfg = DiffusionConfig(
            input_features={
                "observation.state": PolicyFeature(FeatureType.STATE, (N,)),
                "observation.environment_state": PolicyFeature(FeatureType.ENV, (N,)),
            },
            output_features={"action": PolicyFeature(FeatureType.ACTION, (N,))},
            normalization_mapping={
                "VISUAL": NormalizationMode.MEAN_STD,
                "STATE": NormalizationMode.MIN_MAX,
                "ENV": NormalizationMode.MIN_MAX,
                "ACTION": NormalizationMode.MIN_MAX,
            },
            n_obs_steps=2,
            horizon=16,
            n_action_steps=8,
            down_dims=(32, 64),
            diffusion_step_embed_dim=32,
            num_inference_steps=10,
            pretrained_backbone_weights=None,
            device="cpu",
            push_to_hub=False,
        )
        stats = {
            "observation.state": {"min": lo, "max": hi},
            "observation.environment_state": {"min": lo, "max": hi},
            "action": {"min": lo + 0.1, "max": hi - 0.2},
        }
    else:
        register_tiny_backbone()
        cfg = DiffusionConfig(
            input_features={
                "observation.state": PolicyFeature(FeatureType.STATE, (N,)),
                "observation.images.front": PolicyFeature(FeatureType.VISUAL, (3, 64, 64)),
            },
            output_features={"action": PolicyFeature(FeatureType.ACTION, (N,))},
            normalization_mapping={
                "VISUAL": NormalizationMode.MEAN_STD,
                "STATE": NormalizationMode.MEAN_STD,
                "ACTION": NormalizationMode.MEAN_STD,
            },
            n_obs_steps=2,
            horizon=16,
            n_action_steps=8,
            vision_backbone=TINY_BACKBONE,
            pretrained_backbone_weights=None,
            use_group_norm=True,
            crop_shape=(56, 56),
            crop_is_random=False,
            spatial_softmax_num_keypoints=16,
            down_dims=(16, 32),
            diffusion_step_embed_dim=16,
            noise_scheduler_type="DDIM",
            num_inference_steps=4,
            device="cpu",
            push_to_hub=False,
        )
        # Dataset-like statistics: joints spread over the arm's range, the
        # image's per-channel mean/std of a [0, 1] dataset ([3, 1, 1], as
        # LeRobot's compute_stats writes them).
        mid, half = (lo + hi) / 2, (hi - lo) / 2
        stats = {
            "observation.state": {"mean": mid, "std": half * 0.5, "min": lo, "max": hi},
            "action": {"mean": mid + 0.05, "std": half * 0.45, "min": lo, "max": hi},
            "observation.images.front": {
                "mean": torch.tensor([0.485, 0.456, 0.406]).reshape(3, 1, 1),
                "std": torch.tensor([0.229, 0.224, 0.225]).reshape(3, 1, 1),
                "min": torch.zeros(3, 1, 1),
                "max": torch.ones(3, 1, 1),
            },
        }
    policy = DiffusionPolicy(cfg)
    out.mkdir(parents=True, exist_ok=True)
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    policy.save_pretrained(out)
    pre.save_pretrained(out)
    post.save_pretrained(out)
    params = sum(p.numel() for p in policy.parameters())
    print(f"wrote {out}: {params} parameters")


if __name__ == "__main__":
    main()
