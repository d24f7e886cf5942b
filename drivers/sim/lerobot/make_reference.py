"""Writes the reference LeRobotDataset v3 that CI compares Ganglion's writer against.

Run by hand (LeRobot and torch are too heavy for CI), from the repository root:

    HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python drivers/sim/lerobot/make_reference.py \
        drivers/sim/lerobot/reference

The environment: Python >= 3.12 with `pip install "lerobot[dataset]==0.6.1"`
(on Ubuntu 22.04 / JetPack 6, e.g. `uv venv -p 3.12 && uv pip install ...`).
The output directory must not exist. The dataset has the shape of what
`ganglion sim record --format lerobot` writes (3 joints, a 64x64 rgb camera
stored as LeRobot's `image` dtype, i.e. PNG bytes in the parquet, 10 fps) with
synthetic content: 2 episodes of 4 frames with two different tasks.
"""

import shutil
import sys
from pathlib import Path

import numpy as np
from lerobot.datasets.lerobot_dataset import LeRobotDataset

JOINTS = ["base_yaw", "shoulder_pitch", "elbow_pitch"]


def main() -> None:
    if len(sys.argv) != 2:
        sys.exit("usage: make_reference.py OUT_DIR")
    out = Path(sys.argv[1])
    if out.exists():
        sys.exit(f"{out}: exists; remove it first")
    features = {
        "observation.state": {"dtype": "float32", "shape": (3,), "names": JOINTS},
        "observation.images.front": {
            "dtype": "image",
            "shape": (64, 64, 3),
            "names": ["height", "width", "channels"],
        },
        "action": {"dtype": "float32", "shape": (3,), "names": JOINTS},
    }
    ds = LeRobotDataset.create(
        repo_id="ganglion/sim-reach-reference",
        fps=10,
        features=features,
        root=out,
        robot_type="ganglion_sim_arm",
        use_videos=False,
    )
    rng = np.random.default_rng(0)
    tasks = ["reach the red target", "reach the blue target"]
    for ep in range(2):
        for k in range(4):
            img = np.zeros((64, 64, 3), dtype=np.uint8)
            img[8 * k : 8 * k + 16, 10 + ep * 20 : 30 + ep * 20] = (200, 40 * ep, 30)
            ds.add_frame(
                {
                    "observation.state": rng.normal(size=3).astype(np.float32),
                    "observation.images.front": img,
                    "action": rng.normal(size=3).astype(np.float32),
                    "task": tasks[ep],
                }
            )
        ds.save_episode()
    ds.finalize()
    # Temporary PNGs of the image writer, if any are left, are not part of the format.
    shutil.rmtree(out / "images", ignore_errors=True)
    for p in sorted(out.rglob("*")):
        if p.is_file():
            print(f"{p.relative_to(out)}\t{p.stat().st_size}")


if __name__ == "__main__":
    main()
