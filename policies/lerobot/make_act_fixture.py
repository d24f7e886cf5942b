"""Writes the LeRobot checkpoints the importer's tests use (run by hand with
the LeRobot venv of docs/POLICIES.md; CI needs none of this):

    /work/lerobot-venv/bin/python policies/lerobot/make_act_fixture.py policies/fixtures/lerobot-act

- `pretrained_model/`: a small ACT (random weights, seed 0) for the simulated
  3-joint arm, built from LeRobot's `ACTConfig` and saved with
  `save_pretrained` (config.json, model.safetensors, processor files). LeRobot's
  ACT needs an image or `observation.environment_state`, and any image
  brings the fixed ResNet-18 backbone (11 M parameters, 45 MB); so this one
  is state-only: `observation.environment_state` is the joint state again,
  normalized like `observation.state` (imported with
  `--environment-state-from-joints`).
- `image/pretrained_model/`: an ACT with the simulated arm's 64x64 `front`
  camera, config and processor files only (its 45 MB of weights are not
  committed; pass `--with-image-weights` to write them for a by-hand import).
- `minmax/pretrained_model/`: the state-only ACT again with `MIN_MAX`
  state and `QUANTILES` action normalization (the affine conversions of the
  importer against LeRobot's own).
- `unsupported/config.json`: a Diffusion Policy config with its `type`
  set to `vqbet` (a policy type `ganglion policy import` does not export).
"""

import sys
from pathlib import Path

import torch
from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
from lerobot.policies.act.configuration_act import ACTConfig
from lerobot.policies.act.modeling_act import ACTPolicy
from lerobot.policies.diffusion.configuration_diffusion import DiffusionConfig
from lerobot.policies.factory import make_pre_post_processors

out = Path(sys.argv[1])
with_image_weights = "--with-image-weights" in sys.argv
N = 3
mean = torch.tensor([0.0, -0.9, 1.1])
std = torch.tensor([0.6, 0.5, 0.7])
small = dict(
    chunk_size=8, n_action_steps=8, dim_model=32, n_heads=2, dim_feedforward=64,
    n_encoder_layers=1, n_decoder_layers=1, n_vae_encoder_layers=1, latent_dim=8,
    pretrained_backbone_weights=None, device="cpu", push_to_hub=False,
)


def save(policy, cfg, stats, dest, weights=True):
    dest.mkdir(parents=True, exist_ok=True)
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    if weights:
        policy.save_pretrained(dest)
    else:
        cfg._save_pretrained(dest)
    pre.save_pretrained(dest)
    post.save_pretrained(dest)


torch.manual_seed(0)
cfg = ACTConfig(
    input_features={
        "observation.state": PolicyFeature(FeatureType.STATE, (N,)),
        "observation.environment_state": PolicyFeature(FeatureType.ENV, (N,)),
    },
    output_features={"action": PolicyFeature(FeatureType.ACTION, (N,))},
    normalization_mapping={
        "VISUAL": NormalizationMode.MEAN_STD,
        "STATE": NormalizationMode.MEAN_STD,
        "ENV": NormalizationMode.MEAN_STD,
        "ACTION": NormalizationMode.MEAN_STD,
    },
    **small,
)
stats = {
    "observation.state": {"mean": mean, "std": std},
    "observation.environment_state": {"mean": mean, "std": std},
    "action": {"mean": mean + 0.05, "std": std * 1.1},
}
save(ACTPolicy(cfg), cfg, stats, out / "pretrained_model")

torch.manual_seed(2)
mcfg = ACTConfig(
    input_features=cfg.input_features,
    output_features=cfg.output_features,
    normalization_mapping={
        "VISUAL": NormalizationMode.MEAN_STD,
        "STATE": NormalizationMode.MIN_MAX,
        "ENV": NormalizationMode.MIN_MAX,
        "ACTION": NormalizationMode.QUANTILES,
    },
    **small,
)
lo, hi = mean - 2 * std, mean + 2 * std
mstats = {
    "observation.state": {"min": lo, "max": hi},
    "observation.environment_state": {"min": lo, "max": hi},
    "action": {"q01": lo + 0.1, "q99": hi - 0.1},
}
save(ACTPolicy(mcfg), mcfg, mstats, out / "minmax" / "pretrained_model")

torch.manual_seed(1)
icfg = ACTConfig(
    input_features={
        "observation.images.front": PolicyFeature(FeatureType.VISUAL, (3, 64, 64)),
        "observation.state": PolicyFeature(FeatureType.STATE, (N,)),
    },
    output_features={"action": PolicyFeature(FeatureType.ACTION, (N,))},
    **small,
)
istats = {
    "observation.images.front": {
        "mean": torch.tensor([0.485, 0.456, 0.406]).reshape(3, 1, 1),
        "std": torch.tensor([0.229, 0.224, 0.225]).reshape(3, 1, 1),
    },
    "observation.state": {"mean": mean, "std": std},
    "action": {"mean": mean, "std": std},
}
dest = out / "image" / "pretrained_model"
save(ACTPolicy(icfg) if with_image_weights else None, icfg, istats, dest, weights=with_image_weights)

dcfg = DiffusionConfig(
    input_features={
        "observation.images.front": PolicyFeature(FeatureType.VISUAL, (3, 64, 64)),
        "observation.state": PolicyFeature(FeatureType.STATE, (N,)),
    },
    output_features={"action": PolicyFeature(FeatureType.ACTION, (N,))},
    device="cpu", push_to_hub=False,
)
(out / "unsupported").mkdir(parents=True, exist_ok=True)
dcfg._save_pretrained(out / "unsupported")
# Diffusion is imported now: the refusal needs a type that is not.
cfg_path = out / "unsupported" / "config.json"
cfg_path.write_text(cfg_path.read_text().replace('"type": "diffusion"', '"type": "vqbet"', 1))
print("wrote", out)
