"""PyTorch's side of the Diffusion timing in docs/POLICIES.md (by hand, LeRobot venv):

    /work/lerobot-venv/bin/python policies/lerobot/bench_diffusion.py \
        policies/fixtures/lerobot-diffusion [--threads 1]

Times, on the golden's first observation (same x_T, timestep 90 and
`global_cond` as `timing_on_tract` in policies/tests/lerobot_diffusion.rs):
one UNet call (the step graph's work) and one whole chunk through LeRobot's
`predict_action_chunk` (encoder, 10 UNet calls, DDPMScheduler steps with
fresh noise). Prints median and p99 in ms. Ganglion's numbers come from

    cargo nextest run -p ganglion-policies --test lerobot_diffusion timing_on_tract --no-capture
"""

import argparse
import json
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np
import torch
from lerobot.configs.policies import PreTrainedConfig
from lerobot.policies.diffusion.modeling_diffusion import DiffusionPolicy
from lerobot.policies.factory import make_pre_post_processors
from lerobot.utils.constants import OBS_ENV_STATE, OBS_STATE


def stats(ms):
    v = np.sort(np.asarray(ms))
    rank = lambda q: v[min(len(v) - 1, max(0, int(np.ceil(q * len(v))) - 1))]
    return rank(0.5), rank(0.99)


def timed(n, f):
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1e3)
    return out


ap = argparse.ArgumentParser()
ap.add_argument("fixture", type=Path)
ap.add_argument("--threads", type=int, default=1)
args = ap.parse_args()
torch.set_num_threads(args.threads)
ckpt = args.fixture / "pretrained_model"
cfg = PreTrainedConfig.from_pretrained(str(ckpt))
cfg.pretrained_backbone_weights = None
cfg.device = "cpu"
policy = DiffusionPolicy.from_pretrained(str(ckpt), config=cfg).eval()
pre, _ = make_pre_post_processors(cfg, pretrained_path=str(ckpt))
g = json.loads((args.fixture / "golden.json").read_text())
o = g["episodes"][0]["observations"][0]
H, n = cfg.horizon, cfg.action_feature.shape[0]
x = torch.tensor(o["noise"][0]).reshape(1, H, n)
cond = torch.tensor(o["global_cond"])[None]
t = torch.tensor([90])
unet = policy.diffusion.unet
j = torch.tensor(o["joints"])[None]
batch = pre({OBS_STATE: j, OBS_ENV_STATE: j})
hist = {k: torch.stack([batch[k]] * cfg.n_obs_steps, dim=1) for k in (OBS_STATE, OBS_ENV_STATE)}
with torch.no_grad():
    timed(20, lambda: unet(x, t, global_cond=cond))
    step = stats(timed(300, lambda: unet(x, t, global_cond=cond)))
    timed(5, lambda: policy.diffusion.generate_actions(hist))
    chunk = stats(timed(100, lambda: policy.diffusion.generate_actions(hist)))
print(
    f"pytorch {torch.__version__} ({args.threads} thread(s)): UNet step median {step[0]:.3f} ms, p99 {step[1]:.3f} ms; "
    f"whole chunk (generate_actions: encoder + {policy.diffusion.num_inference_steps} steps + DDPM) "
    f"median {chunk[0]:.3f} ms, p99 {chunk[1]:.3f} ms"
)
