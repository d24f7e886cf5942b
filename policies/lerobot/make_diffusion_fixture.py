"""Writes the LeRobot Diffusion Policy checkpoint the Diffusion tests use (run
by hand with the LeRobot venv of docs/POLICIES.md, plus `diffusers` — LeRobot's
`diffusion` extra; CI needs none of this):

    /work/lerobot-venv/bin/python policies/lerobot/make_diffusion_fixture.py \
        policies/fixtures/lerobot-diffusion/pretrained_model

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
  ResNet (resnet18 is the smallest LeRobot accepts: 11 M parameters, ~45 MB
  of fp32 whatever the crop), too big to commit; so this one is state-only.
- Normalization: LeRobot's Diffusion defaults, MIN_MAX for state and action.
"""

import sys
from pathlib import Path

import torch
from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
from lerobot.policies.factory import make_pre_post_processors

out = Path(sys.argv[1])
N = 3
torch.manual_seed(0)
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
# The simulated arm's joint limits (launch/sim.toml), a little inside.
lo = torch.tensor([-2.4, -2.0, -2.4])
hi = torch.tensor([2.4, 1.0, 2.4])
stats = {
    "observation.state": {"min": lo, "max": hi},
    "observation.environment_state": {"min": lo, "max": hi},
    "action": {"min": lo + 0.1, "max": hi - 0.2},
}
policy = DiffusionPolicy(cfg)
out.mkdir(parents=True, exist_ok=True)
pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
policy.save_pretrained(out)
pre.save_pretrained(out)
post.save_pretrained(out)
params = sum(p.numel() for p in policy.parameters())
print(f"wrote {out}: {params} parameters")
