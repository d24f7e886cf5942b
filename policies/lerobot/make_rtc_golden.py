"""LeRobot's real-time chunking (RTC, `lerobot.policies.rtc`) on the SmolVLA
fixture: the goldens of Ganglion's `dataflow.head.committed = "guided"` (run
by hand; CI needs no torch):

    HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python policies/lerobot/make_rtc_golden.py

SmolVLA is rebuilt as `export_smolvla.py` built it (`bench_vla.build_smolvla`,
the run stops unless it reproduces the fixture's golden chunk), with
LeRobot's `RTCConfig` (LINEAR prefix schedule, max guidance weight 10,
execution horizon 10). For the fixture golden's first observation (A) the
chunk is LeRobot's plain one (no chunk before it); then for the second
observation (B), taken `shift` policy steps after A, LeRobot's
`predict_action_chunk(batch, noise=..., inference_delay=d,
prev_chunk_left_over=A's chunk from action `shift` on, execution_horizon=10)`
gives the guided chunk, for several (shift, d).

It also records what LeRobot's guidance computes per step (its RTC debug
tracker): the correction it subtracts equals the weighted error itself,
`(prev - x1) * w`, because `RTCProcessor.denoise_step` evaluates the velocity
before `x_t.requires_grad_(True)`: the gradient of `x1 = x_t - t * v` with
respect to `x_t` is then the identity, not the model's Jacobian. The script
checks that (max |correction - err| over every step and case) and Ganglion
reproduces LeRobot's guidance as it is.

Writes `policies/fixtures/lerobot-smolvla/golden-rtc.json`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bench_vla  # noqa: E402
import vla_export  # noqa: E402

import numpy as np  # noqa: E402
import torch  # noqa: E402

FIX = HERE.parents[0] / "fixtures" / "lerobot-smolvla"
CASES = [(5, 1), (5, 3), (8, 5), (2, 12)]  # (shift, inference_delay)
HORIZON = 10
MAX_GUIDANCE = 10.0


def main() -> None:
    from lerobot.configs import RTCAttentionSchedule
    from lerobot.policies.rtc.configuration_rtc import RTCConfig

    g = json.loads((FIX / "golden.json").read_text())
    obs = g["observations"]
    H, D, n = g["chunk_size"], g["max_action_dim"], len(g["joints"])
    rtc = RTCConfig(enabled=True, prefix_attention_schedule=RTCAttentionSchedule.LINEAR,
                    max_guidance_weight=MAX_GUIDANCE, execution_horizon=HORIZON, debug=True, debug_maxlen=1000)
    policy, pre = bench_vla.build_smolvla(rtc)
    # LeRobot's post-processor un-normalizes with the golden's affine.
    a_mean, a_std = np.asarray(g["action_mean"]), np.asarray(g["action_std"])

    def batch(o):
        return vla_export.lerobot_batch(pre, f"observation.images.{vla_export.CAMERA}",
                                        np.asarray(o["joints"], dtype=np.float32), bench_vla.golden_image(o),
                                        o["instruction"])

    def noise(o):
        return torch.tensor(o["noise"], dtype=torch.float32).reshape(1, H, D)

    with torch.inference_mode():
        policy.reset()
        first = policy.predict_action_chunk(batch(obs[0]), noise=noise(obs[0]))
    want = np.asarray(obs[0]["actions_normalized"], dtype=np.float32)[:, :n]
    err_a = float(np.abs(first[0].numpy() - want).max())
    if err_a > 1e-5:
        sys.exit(f"make_rtc_golden.py: the rebuilt SmolVLA misses the fixture's golden by {err_a:.2e}")

    cases, jac = [], 0.0
    for shift, delay in CASES:
        left_over = first[:, shift:, :].clone()
        policy.rtc_processor.reset_tracker()
        with torch.no_grad():
            policy.reset()
            guided = policy.predict_action_chunk(batch(obs[1]), noise=noise(obs[1]), inference_delay=delay,
                                                 prev_chunk_left_over=left_over, execution_horizon=HORIZON)
        steps = [s for s in policy.rtc_processor.get_all_debug_steps() if s.correction is not None]
        assert len(steps) == policy.config.num_steps, len(steps)
        for s in steps:
            jac = max(jac, float((s.correction - s.err).abs().max()))
        actions = guided[0].double().numpy() * a_std + a_mean
        plain = np.asarray(obs[1]["actions_normalized"], dtype=np.float32)[:, :n]
        cases.append({
            "shift": shift,
            "inference_delay": delay,
            "execution_horizon": HORIZON,
            "weights": [float(w) for w in policy.rtc_processor.get_prefix_weights(delay, min(HORIZON, H - shift), H)],
            "guidance_weights": [float(s.guidance_weight) for s in steps],
            "actions_normalized": guided[0].double().tolist(),
            "actions": actions.tolist(),
            "guided_minus_plain_max_abs_normalized": float(np.abs(guided[0].numpy() - plain).max()),
        })
        print(f"shift {shift}, delay {delay}: guided differs from the plain chunk by "
              f"{cases[-1]['guided_minus_plain_max_abs_normalized']:.3f} (normalized)")
    if jac > 0.0:
        sys.exit(f"make_rtc_golden.py: LeRobot's correction differs from the weighted error by {jac:e}")
    out = {
        "lerobot_version": __import__("lerobot").__version__,
        "torch_version": torch.__version__,
        "rtc": {"prefix_attention_schedule": "linear", "max_guidance_weight": MAX_GUIDANCE,
                "execution_horizon": HORIZON},
        "first": {"observation": 0, "actions_normalized": first[0].double().tolist()},
        "second_observation": 1,
        "correction_minus_weighted_error_max_abs": jac,
        "cases": cases,
    }
    (FIX / "golden-rtc.json").write_text(json.dumps(out) + "\n")
    print(f"wrote {FIX / 'golden-rtc.json'}; correction - weighted error: {jac:e} (LeRobot's Jacobian is the identity)")


if __name__ == "__main__":
    main()
