"""The bundle's graphs in ONNX Runtime directly, without Ganglion: the floor
Ganglion-ORT is held to in the benchmarks (bench_vla.py on this machine's
CPU, bench_cuda.py on a GPU machine). numpy and onnxruntime only: no torch,
no LeRobot, so it also runs where only those exist.

The loops are the runtime's, written out: format 2's prefix (or encoder)
once, then the head's step graph N times with the Euler (flow matching) or
DDPM update in numpy.
"""

from __future__ import annotations

import base64
import sys
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

# Tolerance for "this loop is the fixture's model".
PARITY_TOL = 1e-4

# The committed family fixtures (policies/fixtures/lerobot-<family>/) the
# benchmarks run, and their names in the tables.
FAMILIES = ["smolvla", "pi0", "pi05", "diffusion", "act"]
LABEL = {"smolvla": "SmolVLA", "pi0": "π0", "pi05": "π0.5", "diffusion": "Diffusion", "act": "ACT"}


def stats(ms: list[float]) -> tuple[float, float]:
    """p50, p99 by nearest rank (as ganglion_core::stats::Summary)."""
    v = np.sort(np.asarray(ms))
    rank = lambda q: float(v[min(len(v) - 1, max(0, int(np.ceil(q * len(v))) - 1))])  # noqa: E731
    return rank(0.5), rank(0.99)


def timed(n: int, warmup: int, f) -> tuple[float, float]:
    for _ in range(warmup):
        f()
    out = []
    for _ in range(n):
        t = time.perf_counter()
        f()
        out.append((time.perf_counter() - t) * 1e3)
    return stats(out)


def check(what: str, got, want) -> float:
    err = float(np.max(np.abs(np.asarray(got, dtype=np.float64) - np.asarray(want, dtype=np.float64))))
    if not err <= PARITY_TOL:
        sys.exit(f"{what} differs from the golden by {err:.2e} (> {PARITY_TOL}): not the fixture's model")
    return err


def session(path: Path, threads: int, provider: str = "cpu") -> ort.InferenceSession:
    """`ORT_ENABLE_ALL`, `threads` intra-op threads; `provider` "cuda" puts
    the graph on the GPU with TF32 off (as Ganglion does: fp32 parity) and
    fails when ONNX Runtime cannot, instead of quietly running on the CPU."""
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    providers = ["CPUExecutionProvider"]
    if provider == "cuda":
        providers = [("CUDAExecutionProvider", {"use_tf32": "0"}), *providers]
    s = ort.InferenceSession(str(path), sess_options=so, providers=providers)
    want = "CUDAExecutionProvider" if provider == "cuda" else "CPUExecutionProvider"
    if s.get_providers()[0] != want:
        sys.exit(f"{path}: ONNX Runtime runs it on {s.get_providers()}, not {provider}")
    return s


def golden_image(o: dict) -> np.ndarray:
    return np.frombuffer(base64.b64decode(o["image_rgb8_b64"]), dtype=np.uint8).reshape(o["image_shape"])


def vla_loop(bundle: Path, g: dict, threads: int, provider: str = "cpu"):
    """SmolVLA / π0 / π0.5 (`prefix.onnx` + `step.onnx`, Euler from t = 1 to
    0) on the golden's first observation and noise: `(chunk, want, stages)`,
    `chunk()` the normalized chunk, `want` the golden's, `stages(n, warmup)`
    each graph alone."""
    o = g["observations"][0]
    H, D, steps = g["chunk_size"], g["max_action_dim"], g["num_steps"]
    noise = np.asarray(o["noise"], dtype=np.float32).reshape(1, H, D)
    want = np.asarray(o["actions_normalized"], dtype=np.float32)[None]
    sp, ss = session(bundle / "prefix.onnx", threads, provider), session(bundle / "step.onnx", threads, provider)
    img = golden_image(o)
    image = (img.transpose(2, 0, 1)[None].astype(np.float32) / 255.0 * 2.0 - 1.0).astype(np.float32)
    feeds_p = {"image": image, "lang_tokens": np.asarray(o["tokens"], dtype=np.int64)[None],
               "lang_masks": np.asarray(o["token_mask"], dtype=bool)[None]}
    pin = {i.name for i in sp.get_inputs()}
    sin = {i.name for i in ss.get_inputs()}
    state = np.asarray(o.get("state_normalized_padded", []), dtype=np.float32)[None]
    if "state" in pin:
        feeds_p["state"] = state
    p_names = [x.name for x in sp.get_outputs()]
    dt = -1.0 / steps
    ts = [np.array([1.0 + k * dt], dtype=np.float32) for k in range(steps)]

    def chunk():
        feeds = dict(zip(p_names, sp.run(None, feeds_p)))
        if "state" in sin:
            feeds["state"] = state
        x = noise.copy()
        for t in ts:
            feeds["x_t"], feeds["timestep"] = x, t
            v = ss.run(None, feeds)[0]
            x = x + np.float32(dt) * v
        return x

    def stages(n: int, warmup: int) -> dict:
        feeds = dict(zip(p_names, sp.run(None, feeds_p)), x_t=noise, timestep=ts[0])
        if "state" in sin:
            feeds["state"] = state
        return {"graph prefix": timed(n, warmup, lambda: sp.run(None, feeds_p)),
                "step": timed(n * steps, warmup, lambda: ss.run(None, feeds))}

    return chunk, want, stages


def ddpm_loop(bundle: Path, g: dict, feeds_e: dict, drawn: np.ndarray, threads: int, provider: str = "cpu"):
    """Diffusion Policy (`encoder.onnx` + `step.onnx`): diffusers'
    DDPMScheduler.step (epsilon, fixed_small variance, clipped sample) over
    the golden's timesteps, coefficients from its `alphas_cumprod`;
    `drawn` = x_T then each step's noise. `(chunk, stages)` as vla_loop's."""
    se, ss = session(bundle / "encoder.onnx", threads, provider), session(bundle / "step.onnx", threads, provider)
    ac = np.asarray(g["alphas_cumprod"], dtype=np.float64)
    sc = g["scheduler_config"]
    stride = sc["num_train_timesteps"] // g["num_inference_steps"]
    plan = []  # coefficients precomputed, as the runtime does at load
    for k, t in enumerate(g["timesteps"]):
        a_t = ac[t]
        a_prev = ac[t - stride] if t - stride >= 0 else 1.0
        cur_alpha = a_t / a_prev
        cur_beta = 1.0 - cur_alpha
        sigma = np.sqrt(max((1.0 - a_prev) / (1.0 - a_t) * cur_beta, 1e-20)) if t > 0 else 0.0
        plan.append((np.array([t], dtype=np.int64), np.float32(np.sqrt(1.0 - a_t)), np.float32(np.sqrt(a_t)),
                     np.float32(np.sqrt(a_prev) * cur_beta / (1.0 - a_t)),
                     np.float32(np.sqrt(cur_alpha) * (1.0 - a_prev) / (1.0 - a_t)), np.float32(sigma),
                     drawn[k + 1] if t > 0 else None))
    clip = float(sc["clip_sample_range"])

    def chunk():
        feeds = {"global_cond": se.run(None, feeds_e)[0]}
        x = drawn[0].copy()
        for t, sb, sa, c0, ct, sigma, z in plan:
            feeds["sample"], feeds["timestep"] = x, t
            eps = ss.run(None, feeds)[0]
            x0 = np.clip((x - sb * eps) / sa, -clip, clip)
            x = c0 * x0 + ct * x
            if z is not None:
                x = x + sigma * z
        return x

    def stages(n: int, warmup: int) -> dict:
        feeds = {"global_cond": se.run(None, feeds_e)[0], "sample": drawn[0], "timestep": plan[0][0]}
        return {"graph encoder": timed(n, warmup, lambda: se.run(None, feeds_e)),
                "step": timed(n * len(plan), warmup, lambda: ss.run(None, feeds))}

    return chunk, stages
