"""Assemble a reach-v1 bundle directory (unsigned) and its golden pairs.

Writes `policy.toml` in the format of policies/README.md (digests left empty
for `ganglion policy sign` to fill), `vocab.txt` and the four graphs, then a
golden file for the runtime's parity tests: raw camera frames, joint
positions and instruction texts with the de-normalized 8-step chunk that
onnxruntime computes through the same pipeline the runtime runs (text
encoder -> encoder -> action head; no committed actions).

The surprise threshold is derived from the data: the RMS distance between
the encoder's latent of frame t+k and the dynamics' prediction rolled from
frame t over the expert chunk (k = 1..7, as the runtime rolls as many steps
as elapsed between requests), over the dataset; threshold = --surprise-margin
times its 99.9th percentile.

    .venv/bin/python make_bundle.py --onnx work/onnx --params work/params.npz --data work/reach.npz \
        --precision fp32 --out reach-v1 --golden golden/reach-v1.json
    ../../target/debug/ganglion policy sign reach-v1 --key DEV-KEY-NOT-FOR-PRODUCTION.secret
"""

from __future__ import annotations

import argparse
import json
import os
import shutil

import numpy as np

import export_onnx as E
import model as M

JOINT_NAMES = ["base_yaw", "shoulder_pitch", "elbow_pitch"]
CAMERA = "front"


def tensor(name, shape, dtype="f32"):
    return {"name": name, "shape": list(shape), "dtype": dtype}


def toml_value(v) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, (float, np.floating)):
        return repr(float(v))
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{k} = {toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(type(v))


def manifest(arch: M.Arch, norm: dict, precision: str, latency_ms: float, tol: float, threshold: float) -> str:
    a = arch
    graphs = {
        "text_encoder": ([tensor("tokens", [1, a.max_tokens], "i64")], [tensor("instruction", [1, a.embed])]),
        "encoder": (
            [tensor("image", [1, 3, a.image, a.image]), tensor("joints", [1, a.n_joints]),
             tensor("instruction", [1, a.embed])],
            [tensor("latent", [1, a.latent])],
        ),
        "dynamics": ([tensor("latent", [1, a.latent]), tensor("action", [1, a.n_joints])],
                     [tensor("next_latent", [1, a.latent])]),
        "action_head": ([tensor("latent", [1, a.latent]), tensor("instruction", [1, a.embed])],
                        [tensor("actions", [1, a.horizon, a.n_joints])]),
    }
    r = lambda xs: [round(float(x), 6) for x in xs]  # noqa: E731
    lines = [
        "format = 1",
        'name = "reach-v1"',
        'version = "1.0.0"',
        f'precision = "{precision}"',
        f"expected_latency_ms = {latency_ms}",
        f"parity_tolerance = {tol}",
        f"surprise_threshold = {round(threshold, 5)}",
        'vocab = "vocab.txt"',
        "",
    ]
    for g, (ins, outs) in graphs.items():
        lines += [f"[graphs.{g}]", f'file = "{g}.onnx"', f"inputs = {toml_value(ins)}", f"outputs = {toml_value(outs)}",
                  ""]
    lines += [
        "[joints]",
        f"names = {toml_value(JOINT_NAMES[: a.n_joints])}",
        f"mean = {toml_value(r(norm['q_mean']))}",
        f"std = {toml_value(r(norm['q_std']))}",
        "",
        "[action]",
        'kind = "absolute"',
        f"chunk_len = {a.horizon}",
        "rate_hz = 10.0",
        f"mean = {toml_value(r(norm['a_mean']))}",
        f"std = {toml_value(r(norm['a_std']))}",
        "",
        "[[cameras]]",
        f'name = "{CAMERA}"',
        f"width = {a.image}",
        f"height = {a.image}",
        'format = "rgb8"',
        f"resize = [{a.image}, {a.image}]",
        f"mean = {toml_value(r(norm['img_mean']))}",
        f"std = {toml_value(r(norm['img_std']))}",
        "",
    ]
    for f in ["vocab.txt", *(f"{g}.onnx" for g in graphs)]:
        lines += ["[[files]]", f'path = "{f}"', 'sha256 = ""', ""]
    return "\n".join(lines)


def rounded_norm(norm: dict) -> dict:
    """The normalization exactly as the manifest states it (6 decimals)."""
    return {k: np.round(v.astype(np.float64), 6).astype(np.float32) for k, v in norm.items()}


def surprise_stats(sessions: dict, norm: dict, vocab: list[str], data: str, arch: M.Arch, count: int) -> np.ndarray:
    """RMS latent prediction errors over dataset rollouts of 1..7 steps."""
    # Materialize the arrays once: indexing an NpzFile re-reads the member.
    z = dict(np.load(data))
    raw = z["instructions"]
    texts = bytes(raw.tobytes()).decode().split("\n")
    ep = z["episode"]
    T = len(ep)
    rng = np.random.default_rng(3)
    errs = []
    cache = {}

    def latent(i):
        if i not in cache:
            tok = M.token_ids(texts[int(z["instruction"][i])], vocab, arch.max_tokens)
            instr = sessions["text_encoder"].run(None, {"tokens": tok})[0]
            img = E.preprocess(z["images"][i : i + 1], norm)
            q = ((z["joint_pos"][i : i + 1] - norm["q_mean"]) / norm["q_std"]).astype(np.float32)
            cache[i] = sessions["encoder"].run(None, {"image": img, "joints": q, "instruction": instr})[0]
        return cache[i]

    for t in rng.choice(T - 8, count, replace=False):
        k = int(rng.integers(1, min(8, arch.horizon)))
        if ep[t + k] != ep[t]:
            continue
        zr = latent(t)
        for j in range(1, k + 1):
            a = ((z["actions"][t, j][None] - norm["a_mean"]) / norm["a_std"]).astype(np.float32)
            zr = sessions["dynamics"].run(None, {"latent": zr, "action": a})[0]
        errs.append(float(np.sqrt(np.mean((zr - latent(t + k)) ** 2))))
    return np.array(errs)


def main() -> None:
    ap = argparse.ArgumentParser(description="assemble an unsigned reach-v1 bundle and its golden pairs")
    ap.add_argument("--onnx", required=True)
    ap.add_argument("--params", required=True)
    ap.add_argument("--data", required=True, help="dataset .npz (golden frames, surprise statistics)")
    ap.add_argument("--precision", default="fp32", choices=["fp32", "int8"])
    ap.add_argument("--latency-ms", type=float, default=5.0)
    ap.add_argument("--parity-tolerance", type=float, default=1e-3)
    ap.add_argument("--surprise-threshold", type=float, help="default: derived from --data")
    ap.add_argument("--surprise-margin", type=float, default=1.75,
                    help="threshold = margin x the 99.9th percentile of the dataset rollout errors")
    ap.add_argument("--surprise-count", type=int, default=400, help="dataset rollouts for the surprise statistics")
    ap.add_argument("--out", required=True)
    ap.add_argument("--golden", required=True)
    ap.add_argument("--golden-count", type=int, default=4)
    a = ap.parse_args()

    _, arch, norm, vocab, meta = M.load_params(a.params)
    # The runtime normalizes with the manifest's rounded statistics; use the
    # same ones here so golden outputs are what the runtime must reproduce.
    norm = rounded_norm(norm)
    sessions = E.ort_sessions(a.onnx)
    if a.surprise_threshold is None:
        errs = surprise_stats(sessions, norm, vocab, a.data, arch, a.surprise_count)
        p999 = float(np.quantile(errs, 0.999))
        threshold = a.surprise_margin * p999
        print(f"surprise on {len(errs)} dataset rollouts: median {np.median(errs):.4f} p99 "
              f"{np.quantile(errs, 0.99):.4f} p99.9 {p999:.4f} max {errs.max():.4f} -> threshold {threshold:.4f}")
    else:
        threshold = a.surprise_threshold

    if os.path.exists(a.out):
        shutil.rmtree(a.out)
    os.makedirs(a.out)
    for g in E.GRAPHS:
        shutil.copyfile(os.path.join(a.onnx, f"{g}.onnx"), os.path.join(a.out, f"{g}.onnx"))
    with open(os.path.join(a.out, "vocab.txt"), "w") as f:
        f.write("\n".join(M.vocab_file_lines(vocab)) + "\n")
    with open(os.path.join(a.out, "policy.toml"), "w") as f:
        f.write(manifest(arch, norm, a.precision, a.latency_ms, a.parity_tolerance, threshold))

    # Golden pairs through the bundle's own graphs.
    z = dict(np.load(a.data))
    idx = np.sort(np.random.default_rng(7).choice(len(z["episode"]), a.golden_count, replace=False))
    texts = bytes(z["instructions"].tobytes()).decode().split("\n")
    cases = []
    for n, i in enumerate(idx):
        text = texts[(int(z["instruction"][i]) + n) % len(texts)]  # vary instructions across cases
        img = z["images"][i]
        q = z["joint_pos"][i].astype(np.float32)
        s = dict(
            tokens=M.token_ids(text, vocab, arch.max_tokens),
            image=E.preprocess(img[None], norm),
            joints=((q[None] - norm["q_mean"]) / norm["q_std"]).astype(np.float32),
            action=np.zeros((1, arch.n_joints), np.float32),
        )
        out = E.run_graphs(sessions, s)
        actions = out["actions"][0] * norm["a_std"] + norm["a_mean"]
        cases.append(
            dict(
                instruction=text,
                width=int(img.shape[1]),
                height=int(img.shape[0]),
                rgb8=[int(v) for v in img.reshape(-1)],
                joint_positions=[float(v) for v in q],
                actions=[[float(v) for v in row] for row in actions],
            )
        )
    os.makedirs(os.path.dirname(a.golden) or ".", exist_ok=True)
    with open(a.golden, "w") as f:
        json.dump({"bundle": os.path.basename(os.path.normpath(a.out)), "source": "onnxruntime CPU, "
                   "text_encoder -> encoder -> action_head, no committed actions", "cases": cases}, f)
    print(f"wrote {a.out}/ ({sum(os.path.getsize(os.path.join(a.out, x)) for x in os.listdir(a.out)) / 1024:.0f} KiB) "
          f"and {a.golden} ({len(cases)} cases); meta {meta}")


if __name__ == "__main__":
    main()
