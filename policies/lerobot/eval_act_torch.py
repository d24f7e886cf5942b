"""The PyTorch side of the LeRobot comparisons (ACT, Diffusion Policy): the
checkpoint run by LeRobot itself in a Python loop over `ganglion sim serve
--lockstep`, on the episodes `ganglion eval` runs (same profile, seed and
episode numbers, so the same scenes and initial poses). The policy class
comes from the checkpoint's `config.json` (`act` or `diffusion`).

By hand, in a LeRobot environment with `eclipse-zenoh` and `cyclonedds`
(docs/POLICIES.md, "The environment"; `pip install eclipse-zenoh==1.10.2
cyclonedds==11.0.1`):

    HF_HUB_OFFLINE=1 python policies/lerobot/eval_act_torch.py \\
        --checkpoint /tmp/act-reach/train/checkpoints/last/pretrained_model \\
        --profile launch/sim-one-target.toml --episodes 50 --seed 0 \\
        --report /tmp/act-torch.json

Per episode, one `ganglion sim serve --transport zenoh --lockstep` process
(the profile's `[transport.zenoh]` endpoint: this script listens, the plant
connects) advances the arm one control period per command, so the run does
not depend on how fast PyTorch is. The loop mirrors Ganglion's receding
horizon without its extras: every `--replan-ticks` control ticks (3 = 30 ms,
the profile's `replan_interval_ns`) the newest joint state and frame go
through LeRobot's pre-processor, the policy's `predict_action_chunk` and the
post-processor (Diffusion: its observation queues filled first, as its
`select_action` does; the policy is `reset()` at every episode start and
torch's generator seeded with `--seed` once, so the noise differs from
Ganglion's but the run repeats); the chunk's action i is the target `i / fps` after the
observation, linearly interpolated at the control rate (position and the
segment's velocity, as `hil-tests/baseline/loop.py` does). Each new chunk
replaces the plan, or with `--ensemble-decay 0.01` is blended into it as
Ganglion's executor does (`[executor] blend = { ensemble = { decay } }`:
linear knots here, Ganglion's are cubic). No shield, no latency
compensation (lockstep: the observation is never late). Success is the plant's own
verdict at the end (`sim serve --report`: tip within the success radius).

`--executor ganglion` plans as Ganglion's executor does
(runtime/src/control/executor.rs, `accept_inner`, `Plan::eval`) instead of
the linear knots: steps due before now + step/2 are skipped; a head knot at
now carries the old plan's position and velocity (C¹ plan switch; the first
plan starts from the measured joints at rest); the chunk is ensembled with
the same weights (or, without `--ensemble-decay`, replaces the plan); the
seam is slew-limited from one policy step before the first new knot to the
chunk's largest step per joint (floor: the profile's
`executor.min_seam_step`, default 0.005 rad); the knots are joined by cubic
Hermite splines with Catmull-Rom tangents. It does not mirror: the shield
(saturation of the command, velocity limits), the simulated inference
latency of `ganglion eval` (here the chunk is planned at its observation's
tick, `ganglion eval` applies it the bundle's expected latency later) and
latency compensation, the request timing learnt from latency (here a
fixed `--replan-ticks`), the position-limit refusal and the fallback.

Writes `--report` (JSON): episodes, successes, success_rate, per-episode
results, and the per-chunk inference time (pre + predict + post, `--threads`
torch threads) p50 / p99 / max in ms.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import tomllib
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import numpy as np  # noqa: E402
import torch  # noqa: E402
import zenoh  # noqa: E402
from lerobot.configs.policies import PreTrainedConfig  # noqa: E402
from lerobot.policies.factory import get_policy_class, make_pre_post_processors  # noqa: E402
from lerobot.policies.utils import populate_queues  # noqa: E402
from lerobot.utils.constants import ACTION, OBS_IMAGES  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "drivers" / "interop"))
import ros_msgs as m  # noqa: E402  (CDR types shared with the interop tests)


def pct(v: list[float]) -> dict:
    if not v:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    a = np.sort(np.array(v))
    at = lambda q: float(a[min(len(a), max(1, int(np.ceil(q * len(a))))) - 1])  # noqa: E731
    return {"p50": round(at(0.5), 3), "p99": round(at(0.99), 3), "max": round(float(a[-1]), 3)}


def plan_at(plan, t):
    """Position at tick `t` of a plan (knot ticks, positions, ...), linear
    between knots and held after the last, and the segment's slope per tick."""
    knots, q = plan[0], plan[1]
    j = int(np.clip(np.searchsorted(knots, t, side="right") - 1, 0, len(knots) - 2))
    slope = (q[j + 1] - q[j]) / (knots[j + 1] - knots[j])
    x = min(max(t, knots[0]), knots[-1])
    return q[j] + slope * (x - knots[j]), slope if t < knots[-1] else slope * 0


def ensemble(old, knots, actions, decay):
    """Ganglion's temporal ensembling (runtime/src/control/executor.rs,
    `BlendMode::Ensemble`): each new knot that the old plan covers becomes
    the weighted mean of the old plan there (weight = the sum so far) and the
    new action (weight exp(-decay * predictions so far))."""
    q, w, c = actions.copy(), np.ones(len(knots)), np.ones(len(knots), np.int64)
    for i, t in enumerate(knots):
        if old[0][0] <= t <= old[0][-1]:
            j = int(np.searchsorted(old[0], t, side="right") - 1)
            w_old, c_old = old[2][j], old[3][j]
            w_new = np.exp(-decay * c_old)
            q[i] = (w_old * plan_at(old, t)[0] + w_new * actions[i]) / (w_old + w_new)
            w[i], c[i] = w_old + w_new, c_old + 1
    return knots, q, w, c


class HermitePlan:
    """Ganglion's plan (executor.rs `Plan`): knot ticks `t` (t[0] the head),
    positions `q`, Catmull-Rom tangents `v` (rad per tick), and per knot the
    ensemble weight sum and prediction count (the head's are the next knot's)."""

    def __init__(self, t, q, v0, w, c):
        self.t, self.q, self.w, self.c = t, q, w, c
        self.v = np.empty_like(q)
        self.v[0] = v0
        for j in range(1, len(t)):  # one-sided at the end
            a, b = j - 1, min(j + 1, len(t) - 1)
            self.v[j] = (q[b] - q[a]) / (t[b] - t[a])

    def seg(self, t):
        return int(np.clip(np.searchsorted(self.t, t, side="right") - 1, 0, len(self.t) - 2))

    def at(self, t):
        """Position and velocity (per tick) at `t`; held at rest after the end."""
        if t >= self.t[-1]:
            return self.q[-1], self.v[-1] if t == self.t[-1] else np.zeros_like(self.q[-1])
        t = max(t, self.t[0])
        j = self.seg(t)
        h = self.t[j + 1] - self.t[j]
        s = (t - self.t[j]) / h
        q0, q1, v0, v1 = self.q[j], self.q[j + 1], self.v[j] * h, self.v[j + 1] * h
        pos = ((2 * s**3 - 3 * s**2 + 1) * q0 + (s**3 - 2 * s**2 + s) * v0
               + (-2 * s**3 + 3 * s**2) * q1 + (s**3 - s**2) * v1)
        vel = ((6 * s**2 - 6 * s) * (q0 - q1) + (3 * s**2 - 4 * s + 1) * v0 + (3 * s**2 - 2 * s) * v1) / h
        return pos, vel

    def weight_at(self, t):
        if t > self.t[-1]:
            return 0.0, 0
        j = max(1, self.seg(t))
        return self.w[j], self.c[j]


def accept_ganglion(old, now, obs, step, actions, decay, min_seam_step, rest):
    """Ganglion's `accept_inner` for absolute-position chunks, in ticks:
    align, head knot, ensemble (or replace when `decay` is None), seam slew
    limit, Catmull-Rom tangents. `rest`: the head without an old plan."""
    first = int(np.ceil((now - obs + step / 2) / step))
    if first >= len(actions):
        return old
    max_step = np.maximum(min_seam_step, np.abs(np.diff(actions, axis=0)).max(axis=0, initial=0.0))
    head_q, head_v = old.at(now) if old is not None else (rest, np.zeros_like(rest))
    seam_ref = old.at(obs + (first - 1) * step)[0] if old is not None else head_q
    t = np.concatenate([[now], obs + np.arange(first, len(actions)) * step])
    q = np.vstack([head_q, actions[first:]])
    w, c = np.zeros(len(t)), np.zeros(len(t), np.int64)
    w[1:], c[1:] = 1.0, 1
    for i in range(1, len(t)):
        if decay is not None and old is not None and t[i] <= old.t[-1]:
            w_old, c_old = old.weight_at(t[i])
            if w_old > 0:
                w_new = np.exp(-decay * c_old)
                q[i] = (w_old * old.at(t[i])[0] + w_new * q[i]) / (w_old + w_new)
                w[i], c[i] = w_old + w_new, c_old + 1
    prev = seam_ref
    for i in range(1, len(t)):
        q[i] = prev + np.clip(q[i] - prev, -max_step, max_step)
        prev = q[i]
    return HermitePlan(t, q, head_v, w, c)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--checkpoint", required=True, type=Path)
    ap.add_argument("--profile", default=str(ROOT / "launch" / "sim-one-target.toml"))
    ap.add_argument("--ganglion", default=str(ROOT / "target" / "release" / "ganglion"))
    ap.add_argument("--episodes", type=int, default=50)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--seconds", type=float, default=4.0, help="episode length (ganglion eval's default)")
    ap.add_argument("--replan-ticks", type=int, default=3)
    ap.add_argument("--fps", type=float, default=None, help="policy rate; default: the training dataset's fps")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--ensemble-decay", type=float, default=None,
        help="blend each new chunk into the plan as Ganglion's [executor] blend = ensemble { decay } does "
        "(launch/sim-one-target.toml: 0.01); default: replace the plan by each new chunk",
    )
    ap.add_argument(
        "--executor", choices=("linear", "ganglion"), default="linear",
        help="linear knots (default), or plan as Ganglion's executor does (cubic Hermite, C1 head, seam slew limit)",
    )
    ap.add_argument("--report", required=True, type=Path)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)

    with open(args.profile, "rb") as f:
        profile = tomllib.load(f)
    rate_hz = float(profile["control"]["rate_hz"])
    zc = profile["transport"]["zenoh"]
    prefix = zc.get("prefix") or f"ganglion/{profile['robot']['name']}"
    joint_names = [j["name"] for j in profile["robot"]["joints"]]
    camera = profile["robot"]["cameras"][0]["name"]
    min_seam_step = float(profile.get("executor", {}).get("min_seam_step", 0.005))

    cfg = PreTrainedConfig.from_pretrained(str(args.checkpoint))
    cfg.pretrained_backbone_weights = None
    cfg.device = "cpu"
    if cfg.type not in ("act", "diffusion"):
        sys.exit(f"{args.checkpoint}: policy type {cfg.type!r}; this loop runs act and diffusion")
    policy = get_policy_class(cfg.type).from_pretrained(str(args.checkpoint), config=cfg).eval()
    torch.manual_seed(args.seed)
    pre, post = make_pre_post_processors(cfg, pretrained_path=str(args.checkpoint))
    fps = args.fps
    if fps is None:  # the training dataset's rate
        train_cfg = json.loads((args.checkpoint / "train_config.json").read_text())
        fps = float(json.loads((Path(train_cfg["dataset"]["root"]) / "meta" / "info.json").read_text())["fps"])
    image_key = f"observation.images.{camera}"
    if image_key not in cfg.image_features:
        sys.exit(f"{args.checkpoint}: no {image_key} input (has {list(cfg.image_features)})")

    lock = threading.Lock()
    cond = threading.Condition(lock)
    latest = {"q": None, "n": 0, "img": None}

    def on_joints(s):
        msg = m.JointState.deserialize(s.payload.to_bytes())
        with cond:
            latest["q"] = np.array(msg.position, np.float64)
            latest["n"] += 1
            cond.notify_all()

    def on_image(s):
        msg = m.Image.deserialize(s.payload.to_bytes())
        img = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3).copy()
        with cond:
            latest["img"] = img

    conf = zenoh.Config()
    conf.insert_json5("mode", '"peer"')
    conf.insert_json5("listen/endpoints", json.dumps(zc["listen"]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    zs = zenoh.open(conf)
    subs = [  # noqa: F841  (kept alive)
        zs.declare_subscriber(f"{prefix}/joint_states", on_joints),
        zs.declare_subscriber(f"{prefix}/camera/{camera}", on_image),
    ]
    cmd_pub = zs.declare_publisher(f"{prefix}/command")

    def infer(q, img):
        obs = {
            "observation.state": torch.from_numpy(q.astype(np.float32))[None],
            image_key: torch.from_numpy(img).permute(2, 0, 1).float().div(255.0)[None],
        }
        with torch.no_grad():
            t0 = time.perf_counter()
            batch = pre(obs)
            if cfg.type == "diffusion":
                # What DiffusionPolicy.select_action does before planning:
                # no action key, the images stacked per camera, the
                # observation queues.
                batch = {k: v for k, v in batch.items() if k != ACTION}
                batch[OBS_IMAGES] = torch.stack([batch[k] for k in cfg.image_features], dim=-4)
                policy._queues = populate_queues(policy._queues, batch)
            chunk = post(policy.predict_action_chunk(batch))
            ms = (time.perf_counter() - t0) * 1e3
        return chunk[0].double().numpy(), ms

    def send(target, vel):
        stamp = time.time_ns()
        msg = m.JointTrajectory(
            header=m.Header(stamp=m.Time(sec=stamp // 10**9, nanosec=stamp % 10**9), frame_id=""),
            joint_names=joint_names,
            points=[
                m.JointTrajectoryPoint(
                    positions=[float(v) for v in target],
                    velocities=[float(v) for v in vel],
                    accelerations=[],
                    effort=[],
                    time_from_start=m.Duration(sec=0, nanosec=int(1e9 / rate_hz)),
                )
            ],
        )
        cmd_pub.put(msg.serialize())

    results, infer_ms = [], []
    work = Path(tempfile.mkdtemp(prefix="eval-act-torch-"))
    t_start = time.monotonic()
    for ep in range(args.episodes):
        with cond:
            latest.update(q=None, n=0, img=None)
        policy.reset()
        report = work / f"serve-{ep}.json"
        # timeout 1 s: the plant's first state can go out before the
        # subscription matched; after a second without a command the plant
        # steps once holding its pose and publishes again (one miss).
        proc = subprocess.Popen(
            [args.ganglion, "sim", "serve", "--transport", "zenoh", "--profile", args.profile, "--lockstep",
             "--seconds", str(args.seconds), "--timeout-ms", "1000", "--seed", str(args.seed),
             "--episode", str(ep), "--report", str(report)],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )
        seen, tick, chunk = 0, 0, None
        while True:
            with cond:
                cond.wait_for(lambda: latest["n"] > seen or proc.poll() is not None, timeout=0.5)
                if latest["n"] == seen:
                    if proc.poll() is not None:
                        break
                    continue
                seen = latest["n"]
            if tick % args.replan_ticks == 0:
                # A frame due at this step follows its joint state on the wire.
                time.sleep(0.003)
                with cond:
                    q, img = latest["q"], latest["img"]
                if img is None:
                    time.sleep(0.05)
                    with cond:
                        img = latest["img"]
                if img is not None:
                    actions, ms = infer(q, img)
                    infer_ms.append(ms)
                    knots = tick + np.arange(len(actions)) * (rate_hz / fps)
                    if args.executor == "ganglion":
                        chunk = accept_ganglion(chunk, tick, tick, rate_hz / fps, actions, args.ensemble_decay,
                                                min_seam_step, q)
                    elif chunk is None or args.ensemble_decay is None:
                        chunk = (knots, actions, np.ones(len(actions)), np.ones(len(actions), np.int64))
                    else:
                        chunk = ensemble(chunk, knots, actions, args.ensemble_decay)
            if chunk is None:
                with cond:
                    hold = latest["q"]
                send(hold, np.zeros_like(hold))
            else:
                target, vel = chunk.at(tick) if args.executor == "ganglion" else plan_at(chunk, tick)
                send(target, vel * rate_hz)
            tick += 1
        _, err = proc.communicate()
        if not report.is_file():
            sys.exit(f"episode {ep}: sim serve wrote no report:\n{err.decode()[-2000:]}")
        r = json.loads(report.read_text())
        results.append({"episode": ep, "success": bool(r["success"]), "tip_error_cm": r["tip_error_m"] * 100,
                        "commands": r["commands_received"], "misses": r["misses"]})
        print(f"episode {ep}: {'success' if r['success'] else 'FAIL'} tip error {r['tip_error_m'] * 100:.2f} cm "
              f"({r['commands_received']} commands, {r['misses']} misses)", flush=True)
    successes = sum(r["success"] for r in results)
    out = {
        "checkpoint": str(args.checkpoint),
        "policy_type": cfg.type,
        "profile": args.profile,
        "seed": args.seed,
        "episodes": len(results),
        "successes": successes,
        "success_rate": successes / max(1, len(results)),
        "replan_ticks": args.replan_ticks,
        "ensemble_decay": args.ensemble_decay,
        "executor": args.executor,
        "fps": fps,
        "torch_threads": args.threads,
        "torch_version": torch.__version__,
        "inference_ms": pct(infer_ms),
        "wall_s": round(time.monotonic() - t_start, 1),
        "results": results,
    }
    args.report.write_text(json.dumps(out, indent=1) + "\n")
    print(f"PyTorch: success {successes}/{len(results)} ({100 * out['success_rate']:.1f} %), "
          f"inference p50 {out['inference_ms']['p50']} ms p99 {out['inference_ms']['p99']} ms")
    zs.close()
    os._exit(0)


if __name__ == "__main__":
    main()
