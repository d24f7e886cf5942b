#!/usr/bin/env python3
"""The Python baseline: a policy deployed the way it is done today.

LeRobot / openpi style: ``onnxruntime`` + ``eclipse-zenoh`` + ``time.sleep``
pacing, one thread, the same bundle (policies/reference/reach-v1) with the
same preprocessing as Ganglion (image (x/255 - mean)/std per channel, joints
(q - mean)/std, word tokens from vocab.txt through the text encoder, actions
a*std + mean, absolute targets), against the same plant. No fallback, no
shield, no staleness checks, no latency compensation (the dynamics graph is
not used): what the policy says goes to the robot.

Loop (as LeRobot's control loop): every tick read the newest joint state and
frame, infer a new chunk synchronously when the current one is used up
(chunk_len actions at the policy rate, linearly interpolated to the control
rate), publish one JointTrajectory command, then ``time.sleep(period - dt)``
(relative pacing). ``--inject`` takes the same specs as ``ganglion run``:
late sleeps in the policy call, error/crash raise (the loop dies, as an
unhandled exception would), nan/out-of-range actions are sent as they are.

Writes ``--log`` (JSON lines: ``{"t":"tick","obs_stamp_ns","cmd_stamp_ns",
"late_ns"}``, obs/cmd stamps on ticks that ran inference; wall clock ns) and
``--report`` (JSON: ticks, rate_hz, jitter_us {p50,p99,max} of
|tick interval - period|, late_ticks (interval >= 2 periods), inference_ms,
commands_published, crashed, error).
"""

import argparse
import json
import os
import sys
import threading
import time
import tomllib

import numpy as np
import onnxruntime as ort
import zenoh

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "drivers", "interop"))
import ros_msgs as m  # noqa: E402  (CDR types shared with the interop tests)

p = argparse.ArgumentParser()
p.add_argument("--profile", required=True)
p.add_argument("--bundle", required=True)
p.add_argument("--seconds", type=float, required=True)
p.add_argument("--report", required=True)
p.add_argument("--log", required=True)
p.add_argument("--inject", action="append", default=[])
args = p.parse_args()

with open(args.profile, "rb") as f:
    profile = tomllib.load(f)
with open(os.path.join(args.bundle, "policy.toml"), "rb") as f:
    manifest = tomllib.load(f)

rate_hz = float(profile["control"]["rate_hz"])
period = 1.0 / rate_hz
zc = profile["transport"]["zenoh"]
prefix = zc.get("prefix") or f"ganglion/{profile['robot']['name']}"
joint_names = [j["name"] for j in profile["robot"]["joints"]]
camera = manifest["cameras"][0]
cam_mean = np.array(camera["mean"], np.float32).reshape(3, 1, 1)
cam_std = np.array(camera["std"], np.float32).reshape(3, 1, 1)
j_mean, j_std = np.array(manifest["joints"]["mean"], np.float32), np.array(manifest["joints"]["std"], np.float32)
a_mean, a_std = np.array(manifest["action"]["mean"], np.float32), np.array(manifest["action"]["std"], np.float32)
chunk_len = int(manifest["action"]["chunk_len"])
policy_dt = 1.0 / float(manifest["action"]["rate_hz"])
vocab = {w.strip(): i for i, w in enumerate(open(os.path.join(args.bundle, manifest["vocab"])).read().splitlines())}

opts = ort.SessionOptions()
opts.intra_op_num_threads = 1


def session(role):
    return ort.InferenceSession(os.path.join(args.bundle, manifest["graphs"][role]["file"]), opts)


text_enc, encoder, head = session("text_encoder"), session("encoder"), session("action_head")


def parse_injection(spec):
    kind, rest = spec.split("@", 1)
    at, _, arg = rest.partition(":")
    return {"kind": kind, "at": float(at), "arg": float(arg) if arg else None, "used": 0}


injections = [parse_injection(s) for s in args.inject]
first_infer = None


def due():
    now = time.monotonic() - first_infer
    for inj in injections:
        count = {"late": 1, "late-burst": int(inj["arg"] or 3), "late-persistent": 10**9, "crash": 1}.get(
            inj["kind"], int(inj["arg"] or 1)
        )
        if now >= inj["at"] and inj["used"] < count:
            inj["used"] += 1
            return inj
    return None


embedding_cache = {}


def policy(image, joints, instruction):
    """One chunk of absolute joint targets, [chunk_len, n]."""
    global first_infer
    if first_infer is None:
        first_infer = time.monotonic()
    fault = due()
    if fault and fault["kind"] in ("error", "crash"):
        raise RuntimeError(f"injected {fault['kind']} (--inject)")
    if instruction not in embedding_cache:
        words = [w for w in "".join(c if c.isalnum() else " " for c in instruction.lower()).split()]
        tokens = np.zeros((1, 8), np.int64)
        for i, w in enumerate(words[:8]):
            tokens[0, i] = vocab.get(w, 0)
        embedding_cache[instruction] = text_enc.run(None, {"tokens": tokens})[0]
    emb = embedding_cache[instruction]
    img = (image.astype(np.float32).transpose(2, 0, 1) / 255.0 - cam_mean) / cam_std
    q = ((joints - j_mean) / j_std).astype(np.float32)[None]
    latent = encoder.run(None, {"image": img[None], "joints": q, "instruction": emb})[0]
    actions = head.run(None, {"latent": latent, "instruction": emb})[0][0] * a_std + a_mean
    actions = actions.astype(np.float64)
    if fault:
        if fault["kind"].startswith("late"):
            time.sleep(fault["arg"] if fault["kind"] != "late-burst" and fault["arg"] else 1.5)
        elif fault["kind"] == "nan-action":
            actions[:] = np.nan
        elif fault["kind"] == "out-of-range-action":
            actions += np.where(np.arange(actions.size).reshape(actions.shape) % 2 == 0, 10.0, -10.0)
    return actions


lock = threading.Lock()
latest = {"joints": None, "joint_stamp": 0, "image": None, "instruction": ""}


def stamp_ns(h):
    return h.stamp.sec * 10**9 + h.stamp.nanosec


def on_joints(s):
    try:
        msg = m.JointState.deserialize(s.payload.to_bytes())
        q = np.array(msg.position, np.float64)
    except Exception:  # a malformed payload: LeRobot-style code would not count it either
        return
    with lock:
        latest["joints"], latest["joint_stamp"] = q, stamp_ns(msg.header)


def on_image(s):
    try:
        msg = m.Image.deserialize(s.payload.to_bytes())
        img = np.frombuffer(bytes(msg.data), np.uint8).reshape(msg.height, msg.width, 3)
    except Exception:
        return
    with lock:
        latest["image"] = img


def on_instruction(s):
    try:
        text = m.String.deserialize(s.payload.to_bytes()).data
    except Exception:
        return
    with lock:
        latest["instruction"] = text


conf = zenoh.Config()
conf.insert_json5("mode", '"peer"')
conf.insert_json5("listen/endpoints", json.dumps(zc["listen"]))
conf.insert_json5("scouting/multicast/enabled", "false")
zs = zenoh.open(conf)
subs = [
    zs.declare_subscriber(f"{prefix}/joint_states", on_joints),
    zs.declare_subscriber(f"{prefix}/camera/{camera['name']}", on_image),
    zs.declare_subscriber(f"{prefix}/instruction", on_instruction),
]
cmd_pub = zs.declare_publisher(f"{prefix}/command")

# robot.connect(): wait for the first observation.
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    with lock:
        if latest["joints"] is not None and latest["image"] is not None and latest["instruction"]:
            break
    time.sleep(0.01)

log = open(args.log, "w")
intervals, infer_ms = [], []
published, crashed, error = 0, False, None
chunk, chunk_t0 = None, 0.0
t_end = time.monotonic() + args.seconds
last_start = None
tick_n = 0
try:
    while time.monotonic() < t_end:
        start = time.perf_counter()
        if last_start is not None:
            intervals.append(start - last_start)
        last_start = start
        tick_n += 1
        with lock:
            q, q_stamp, img, instr = latest["joints"], latest["joint_stamp"], latest["image"], latest["instruction"]
        now = time.monotonic()
        obs_stamp = None
        if chunk is None or now - chunk_t0 >= (chunk_len - 1) * policy_dt:
            t0 = time.perf_counter()
            chunk, chunk_t0 = policy(img, q, instr), time.monotonic()
            infer_ms.append((time.perf_counter() - t0) * 1e3)
            obs_stamp = q_stamp
            now = chunk_t0
        # Linear interpolation between the chunk's actions at the control rate.
        x = min((now - chunk_t0) / policy_dt, chunk_len - 1)
        i = min(int(x), chunk_len - 2)
        target = chunk[i] + (chunk[i + 1] - chunk[i]) * (x - i)
        vel = (chunk[i + 1] - chunk[i]) / policy_dt
        cmd_stamp = time.time_ns()
        msg = m.JointTrajectory(
            header=m.Header(stamp=m.Time(sec=cmd_stamp // 10**9, nanosec=cmd_stamp % 10**9), frame_id=""),
            joint_names=joint_names,
            points=[
                m.JointTrajectoryPoint(
                    positions=[float(v) for v in target],
                    velocities=[float(v) for v in vel],
                    accelerations=[],
                    effort=[],
                    time_from_start=m.Duration(sec=0, nanosec=int(period * 1e9)),
                )
            ],
        )
        cmd_pub.put(msg.serialize())
        published += 1
        late = intervals[-1] - period if intervals else 0.0
        rec = {"t": "tick", "late_ns": max(0, int(late * 1e9))}
        if obs_stamp is not None:
            rec.update({"obs_stamp_ns": obs_stamp, "cmd_stamp_ns": cmd_stamp})
        log.write(json.dumps(rec) + "\n")
        # LeRobot's busy_wait(1/fps - dt): a relative sleep.
        dt = time.perf_counter() - start
        if period - dt > 0:
            time.sleep(period - dt)
except Exception as e:  # noqa: BLE001  the loop dies like a deployed script would
    crashed, error = True, f"{type(e).__name__}: {e}"
    print(f"baseline loop crashed: {error}", file=sys.stderr)
log.close()


def pct(v, scale):
    if not v:
        return {"p50": 0.0, "p99": 0.0, "max": 0.0}
    a = np.sort(np.array(v)) * scale
    at = lambda q: float(a[min(len(a), max(1, int(np.ceil(q * len(a))))) - 1])  # noqa: E731
    return {"p50": round(at(0.5), 3), "p99": round(at(0.99), 3), "max": round(float(a[-1]), 3)}


report = {
    "ticks": tick_n,
    "rate_hz": rate_hz,
    "jitter_us": pct([abs(x - period) for x in intervals], 1e6),
    "late_ticks": sum(1 for x in intervals if x >= 2 * period),
    "inference_ms": pct(infer_ms, 1.0),
    "commands_published": published,
    "crashed": crashed,
    "error": error,
}
with open(args.report, "w") as f:
    json.dump(report, f, indent=2)
print(json.dumps(report))
sys.stdout.flush()
os._exit(1 if crashed else 0)
