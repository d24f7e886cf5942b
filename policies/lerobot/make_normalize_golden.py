"""Goldens for Ganglion's LeRobot normalization modes and pi0.5's state bins.

Runs LeRobot's own NormalizerProcessorStep / UnnormalizerProcessorStep
(MEAN_STD, MIN_MAX, QUANTILES, IDENTITY) on fixed joint vectors, and the
np.digitize line of LeRobot's pi0.5 processor on the normalized states, and
writes policies/fixtures/lerobot-normalize/golden.json (read by
policies/tests/preprocess.rs). Run by hand:

    HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python policies/lerobot/make_normalize_golden.py
"""

import json
import pathlib

import lerobot
import numpy as np
import torch
from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
from lerobot.processor.normalize_processor import NormalizerProcessorStep, UnnormalizerProcessorStep

OUT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "lerobot-normalize" / "golden.json"
N = 6
STATS = {
    "mean": [0.1, -0.5, 0.6, 0.3, 0.0, 0.4],
    "std": [0.6, 0.5, 0.5, 0.5, 0.8, 0.3],
    # joint 4 has a zero range: LeRobot substitutes eps
    "min": [-1.9, -1.7, -1.6, -1.6, 0.25, -0.17],
    "max": [1.9, 1.7, 1.6, 1.6, 0.25, 1.7],
    "q01": [-1.5, -1.2, -1.0, -1.1, 0.25, 0.0],
    "q99": [1.4, 1.1, 1.3, 1.2, 0.25, 1.5],
}
MODES = {
    "mean_std": NormalizationMode.MEAN_STD,
    "min_max": NormalizationMode.MIN_MAX,
    "quantiles": NormalizationMode.QUANTILES,
    "identity": NormalizationMode.IDENTITY,
}


def main():
    rng = np.random.default_rng(7)
    states = [[0.0] * N, [0.25] * N, (rng.uniform(-2.2, 2.2, size=(5, N))).tolist()]
    states = [states[0], states[1], *states[2]]
    # exact bin edges and just around them, and out of range
    states.append([-1.5, -1.2 + 1e-7, 1.4, 1.2 - 1e-6, 0.3, 1.6])
    stats = {k: np.array(v, dtype=np.float32) for k, v in STATS.items()}
    out = {"lerobot_version": lerobot.__version__, "torch_version": torch.__version__, "stats": STATS, "cases": []}
    for name, mode in MODES.items():
        feats = {"observation.state": PolicyFeature(type=FeatureType.STATE, shape=(N,)),
                 "action": PolicyFeature(type=FeatureType.ACTION, shape=(N,))}
        norm_map = {FeatureType.STATE: mode, FeatureType.ACTION: mode}
        st = {"observation.state": stats, "action": stats}
        fwd = NormalizerProcessorStep(features=feats, norm_map=norm_map, stats=st)
        inv = UnnormalizerProcessorStep(features=feats, norm_map=norm_map, stats=st)
        for s in states:
            x = torch.tensor([s], dtype=torch.float32)
            normalized = fwd._apply_transform(x, "observation.state", FeatureType.STATE)
            back = inv._apply_transform(x, "action", FeatureType.ACTION, inverse=True)
            bins = np.digitize(normalized.numpy(), bins=np.linspace(-1, 1, 256 + 1)[:-1]) - 1
            out["cases"].append({
                "mode": name,
                "x": [float(v) for v in np.float32(s)],
                "normalized": normalized[0].tolist(),
                "unnormalized": back[0].tolist(),
                "bins256": bins[0].tolist(),
            })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {OUT} ({len(out['cases'])} cases)")


if __name__ == "__main__":
    main()
