"""LeRobot's relative actions on the π0.5 fixture (issue 16, "relative
(delta) actions added to the state"), by hand, LeRobot venv:

    HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python policies/lerobot/make_relative_golden.py

π0.5 rebuilt exactly as export_pi.py built the committed fixture
(bench_vla.build_pi: same config, seeds and tokenizer), but with LeRobot
0.6's `use_relative_actions = True`, `relative_exclude_joints = ["gripper"]`
and the fixture's joint names as `action_feature_names` (what LeRobot's
factory sets from the dataset): its post-processor then un-normalizes the
model's chunk and adds the observed state to every joint but the gripper
(`AbsoluteActionsProcessorStep`). The model and its graphs are unchanged
(at inference the relative step sees no action), so the committed bundle
with `[action] relative = true, relative_exclude = ["gripper"]` must
reproduce these chunks: policies/tests/lerobot_vla.rs,
`relative_actions_are_lerobots`.

Writes policies/fixtures/lerobot-pi05/golden-relative.json: per golden
observation its index and LeRobot's chunk (`predict_action_chunk` with the
golden's noise, then the post-processor), in rad. The observations,
instructions and noise are the committed golden.json's.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_vla  # noqa: E402  (its build_pi is the fixture's model)
import numpy as np  # noqa: E402
import torch  # noqa: E402
import vla_export  # noqa: E402
from bare_ort import golden_image  # noqa: E402

FIX = HERE.parents[1] / "policies" / "fixtures" / "lerobot-pi05"


def main() -> None:
    from lerobot.policies.factory import make_pre_post_processors

    g = json.loads((FIX / "golden.json").read_text())
    policy, _ = bench_vla.build_pi("pi05")
    cfg = policy.config
    cfg.use_relative_actions = True
    cfg.relative_exclude_joints = ["gripper"]
    cfg.action_feature_names = list(vla_export.JOINTS)
    stats = bench_vla.pi_dataset_stats()
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    out = []
    H, D = g["chunk_size"], g["max_action_dim"]
    for k, o in enumerate(g["observations"]):
        joints = np.asarray(o["joints"], dtype=np.float32)
        batch = vla_export.lerobot_batch(pre, f"observation.images.{vla_export.CAMERA}", joints,
                                         golden_image(o).copy(), o["instruction"])
        noise = torch.from_numpy(np.asarray(o["noise"], dtype=np.float32).reshape(1, H, D))
        with torch.inference_mode():
            chunk = post(policy.predict_action_chunk(dict(batch), noise=noise))
        # The golden's absolute chunk, for scale: the relative one differs from
        # it by the state on the first five joints.
        out.append({"observation": k, "actions": chunk[0].double().numpy().round(9).tolist()})
    doc = {"source": "make_relative_golden.py", "lerobot_use_relative_actions": True,
           "relative_exclude_joints": ["gripper"], "action_feature_names": list(vla_export.JOINTS),
           "observations": out}
    (FIX / "golden-relative.json").write_text(json.dumps(doc) + "\n")
    print(f"wrote {FIX / 'golden-relative.json'}: {len(out)} chunks", file=sys.stderr)


if __name__ == "__main__":
    main()
