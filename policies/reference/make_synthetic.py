"""A small synthetic dataset with the keys and shapes of `ganglion sim record`.

Only for smoke-testing train.py / export_onnx.py / quantize.py without the
simulated arm (drivers/sim/README.md documents the real format). The scene is
crude: coloured target discs and a white dot whose position follows the
joints; the "expert" moves the joints linearly toward a per-target pose.

    .venv/bin/python make_synthetic.py --episodes 20 --out work/synthetic.npz
"""

from __future__ import annotations

import argparse

import numpy as np

COLOURS = {"red": (220, 40, 40), "green": (40, 200, 60), "blue": (50, 80, 230)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=20)
    ap.add_argument("--steps", type=int, default=40)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    rng = np.random.default_rng(a.seed)
    names = list(COLOURS)
    instructions = [f"reach the {c} target" for c in names]
    n, h = 3, 8
    imgs, qs, qds, acts, eps, tis, ins, tps = [], [], [], [], [], [], [], []
    yy, xx = np.mgrid[0:64, 0:64]
    for e in range(a.episodes):
        targets = rng.uniform(8, 56, (3, 2))
        goal_q = rng.uniform(-1, 1, (3, n)).astype(np.float32)
        ti = int(rng.integers(0, 3))
        q = rng.uniform(-0.3, 0.3, n).astype(np.float32)
        traj = [q]
        for _ in range(a.steps + h):
            q = q + 0.15 * (goal_q[ti] - q)
            traj.append(q.astype(np.float32))
        traj = np.array(traj)
        for t in range(a.steps):
            img = np.full((64, 64, 3), 90, np.uint8)
            for k, c in enumerate(names):
                m = (yy - targets[k, 1]) ** 2 + (xx - targets[k, 0]) ** 2 < 16
                img[m] = COLOURS[c]
            px = 32 + 20 * np.tanh(traj[t][:2])
            m = (yy - px[1]) ** 2 + (xx - px[0]) ** 2 < 9
            img[m] = 255
            imgs.append(img)
            qs.append(traj[t])
            qds.append(traj[t + 1] - traj[t])
            acts.append(traj[t + 1 : t + 1 + h])
            eps.append(e)
            tis.append(ti)
            ins.append(ti)
            tps.append(np.array([*targets[ti] / 100, 0.0], np.float32))
    np.savez(
        a.out,
        images=np.array(imgs, np.uint8),
        joint_pos=np.array(qs, np.float32),
        joint_vel=np.array(qds, np.float32),
        actions=np.array(acts, np.float32),
        episode=np.array(eps, np.int32),
        target_index=np.array(tis, np.int32),
        instruction=np.array(ins, np.int32),
        instructions=np.frombuffer("\n".join(instructions).encode(), np.uint8),
        target_pos=np.array(tps, np.float32),
        seed=np.array([a.seed], np.int64),
    )
    print(f"wrote {a.out}: {len(imgs)} frames, {a.episodes} episodes")


if __name__ == "__main__":
    main()
