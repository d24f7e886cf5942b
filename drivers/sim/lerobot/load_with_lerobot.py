"""By hand: LeRobot's own LeRobotDataset loads a dataset Ganglion wrote.

    ganglion sim record --format lerobot --episodes 20 --out /tmp/reach-lerobot
    HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python drivers/sim/lerobot/load_with_lerobot.py /tmp/reach-lerobot \
        [/tmp/reach.npz]   # optional: `sim record` of the same options as .npz, compared frame by frame

Environment: Python >= 3.12 with `pip install "lerobot[dataset]==0.6.1"`
(torch is too heavy for CI; CI checks the files with pyarrow instead,
drivers/sim/tests/lerobot.rs). Loads with `LeRobotDataset(repo_id, root=...)`,
checks a frame against the metadata, asks for action chunks through
`delta_timestamps` (as ACT/Diffusion training does), and iterates a torch
DataLoader batch.
"""

import sys
from pathlib import Path

import numpy as np
import torch
from lerobot.datasets.lerobot_dataset import LeRobotDataset


def main() -> None:
    root = Path(sys.argv[1])
    ds = LeRobotDataset("ganglion/sim-reach", root=root)
    m = ds.meta
    print(f"loaded {root}: codebase {m.info.codebase_version if hasattr(m.info, 'codebase_version') else m.info['codebase_version']}, "
          f"fps {ds.fps}, {ds.num_episodes} episodes, {ds.num_frames} frames, tasks {list(m.tasks.index)}")
    print("features:", {k: (v["dtype"], tuple(v["shape"])) for k, v in m.features.items()})
    print("stats keys:", {k: sorted(v) for k, v in m.stats.items() if k in ("observation.state", "observation.images.front")})
    item = ds[0]
    print("item 0:", {k: (tuple(v.shape), str(v.dtype)) if torch.is_tensor(v) else v for k, v in item.items()})
    img = item["observation.images.front"]
    assert img.shape == (3, 64, 64) and img.dtype == torch.float32 and 0 <= img.min() and img.max() <= 1, img.shape
    assert item["task"].startswith("reach the "), item["task"]

    chunk = 8
    dts = {"action": [i / ds.fps for i in range(chunk)]}
    dsc = LeRobotDataset("ganglion/sim-reach", root=root, delta_timestamps=dts)
    loader = torch.utils.data.DataLoader(dsc, batch_size=16, shuffle=True, num_workers=0)
    batch = next(iter(loader))
    print("batch:", {k: tuple(v.shape) if torch.is_tensor(v) else f"list[{len(v)}]" for k, v in batch.items()})
    assert batch["action"].shape == (16, chunk, 3)
    n = sum(1 for _ in loader)
    print(f"iterated {n} batches of 16 with action chunks of {chunk}: ok")

    if len(sys.argv) > 2:
        d = np.load(sys.argv[2])
        for i in range(ds.num_frames):
            it = ds[i]
            img = (it["observation.images.front"].permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
            assert (img == d["images"][i]).all(), f"frame {i}: image differs from the npz"
            assert (it["observation.state"].numpy() == d["joint_pos"][i]).all(), f"frame {i}: state"
            assert (it["action"].numpy() == d["actions"][i, 0]).all(), f"frame {i}: action"
            assert it["episode_index"].item() == d["episode"][i] and it["frame_index"].item() == d["step"][i]
        print(f"all {ds.num_frames} frames equal the npz recording (images through PIL, state, action 0, indices)")


if __name__ == "__main__":
    main()
