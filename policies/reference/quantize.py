"""Static INT8 (QDQ) quantization of reach-v1, with per-layer sensitivity.

Calibration uses frames from the policy's own closed-loop runs (`ganglion
eval --dump-frames FILE.npz`) or, failing that, dataset frames: --calib takes
either (same keys: images, joint_pos, instruction, instructions).

Mixed precision: the first conv and the spatial-softmax / keypoint layers
stay in float (`--exclude`), everything else (conv2, conv3, the Gemms of the
encoder, dynamics and action head) is INT8 with QuantizeLinear /
DequantizeLinear pairs, the form tract loads (QOperator graphs it does not).
The text encoder runs once per instruction and stays fp32.

Sensitivity: every quantizable layer is quantized alone (all others float)
and the action error of the full pipeline against fp32 is measured on
held-out frames, in mrad (de-normalized). `--sensitivity FILE.md` writes the
table.

    .venv/bin/python quantize.py --onnx work/onnx --params work/params.npz \
        --calib work/calib.npz --out work/onnx-int8 --sensitivity SENSITIVITY.md
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile

import numpy as np
import onnxruntime as ort
from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

import export_onnx as E
import model as M

# Layers kept in float in the shipped INT8 bundle, and why (SENSITIVITY.md
# has the measurements): the first conv sees raw pixels with a wide dynamic
# range; the softmax turns small logit errors into large keypoint shifts; the
# keypoint MatMul maps them to coordinates the whole policy depends on.
FLOAT_LAYERS = ["conv1", "kp_scale", "kp_softmax", "kp_matmul"]
QUANTIZED_GRAPHS = ["encoder", "dynamics", "action_head"]
# Candidate layers per graph for the one-at-a-time sensitivity sweep.
LAYERS = {
    "encoder": ["conv1", "conv2", "conv3", "kp_softmax", "kp_matmul", "fuse1", "fuse2"],
    "action_head": ["head1", "head2", "head3"],
    "dynamics": ["dyn1", "dyn2"],
}


class Reader(CalibrationDataReader):
    def __init__(self, feeds: list[dict]):
        self.feeds = iter(feeds)

    def get_next(self):
        return next(self.feeds, None)


def load_frames(path: str, vocab: list[str], count: int, seed: int):
    # Materialize once: indexing an NpzFile re-reads (and decompresses) the member.
    z = dict(np.load(path))
    raw = z["instructions"]
    texts = bytes(raw.tobytes()).decode().split("\n") if raw.dtype == np.uint8 else [str(t) for t in raw]
    n = len(z["joint_pos"])
    idx = np.sort(np.random.default_rng(seed).choice(n, min(count, n), replace=False))
    return [
        dict(image=z["images"][i], joints=z["joint_pos"][i].astype(np.float32), text=texts[int(z["instruction"][i])])
        for i in idx
    ]


def graph_feeds(sessions: dict, frames: list[dict], norm: dict, vocab: list[str]) -> dict[str, list[dict]]:
    """Inputs of every graph for each frame, intermediates from the fp32 graphs."""
    feeds = {g: [] for g in E.GRAPHS}
    for f in frames:
        tokens = M.token_ids(f["text"], vocab, sessions["text_encoder"].get_inputs()[0].shape[1])
        instr = sessions["text_encoder"].run(None, {"tokens": tokens})[0]
        image = E.preprocess(f["image"][None], norm)
        joints = ((f["joints"][None] - norm["q_mean"]) / norm["q_std"]).astype(np.float32)
        z = sessions["encoder"].run(None, {"image": image, "joints": joints, "instruction": instr})[0]
        chunk = sessions["action_head"].run(None, {"latent": z, "instruction": instr})[0]
        feeds["text_encoder"].append({"tokens": tokens})
        feeds["encoder"].append({"image": image, "joints": joints, "instruction": instr})
        feeds["action_head"].append({"latent": z, "instruction": instr})
        feeds["dynamics"].append({"latent": z, "action": chunk[:, 0, :]})
    return feeds


def quantize_graph(src: str, dst: str, feeds: list[dict], only=None, exclude=None, per_channel=False) -> None:
    quantize_static(
        src,
        dst,
        Reader(feeds),
        quant_format=QuantFormat.QDQ,
        per_channel=per_channel,
        activation_type=QuantType.QInt8,
        weight_type=QuantType.QInt8,
        nodes_to_quantize=only,
        nodes_to_exclude=exclude,
        # Symmetric activations as TensorRT's explicit quantization would use.
        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True},
    )
    rename_colliding_initializers(dst)


def rename_colliding_initializers(path: str) -> None:
    """The quantizer names a tensor's scale `<tensor>_scale`; where that is
    also a node's name (the keypoint tensor `kp` vs the node `kp_scale`),
    tract refuses the graph ("duplicate name for node ... Const"). ONNX keeps
    node and tensor names apart, tract does not: rename such initializers."""
    import onnx

    m = onnx.load(path)
    nodes = {n.name for n in m.graph.node}
    renames = {i.name: f"{i.name}_q" for i in m.graph.initializer if i.name in nodes}
    if not renames:
        return
    for i in m.graph.initializer:
        i.name = renames.get(i.name, i.name)
    for n in m.graph.node:
        for k, x in enumerate(n.input):
            if x in renames:
                n.input[k] = renames[x]
    onnx.save(m, path)


def pipeline_error(sess_ref: dict, sess_q: dict, feeds: dict, norm: dict) -> dict:
    """Action error (mrad) of the full pipeline and latent error of dynamics."""
    a_std = norm["a_std"]
    act_err, dyn_err = [], []
    for fe, fh, fd in zip(feeds["encoder"], feeds["action_head"], feeds["dynamics"]):
        instr = fe["instruction"]
        z_ref = sess_ref["encoder"].run(None, fe)[0]
        z_q = sess_q["encoder"].run(None, fe)[0]
        a_ref = sess_ref["action_head"].run(None, {"latent": z_ref, "instruction": instr})[0]
        a_q = sess_q["action_head"].run(None, {"latent": z_q, "instruction": instr})[0]
        act_err.append(np.abs((a_q - a_ref) * a_std).max() * 1000.0)
        n_ref = sess_ref["dynamics"].run(None, fd)[0]
        n_q = sess_q["dynamics"].run(None, fd)[0]
        dyn_err.append(np.abs(n_q - n_ref).max())
    return dict(
        action_mrad_mean=float(np.mean(act_err)),
        action_mrad_max=float(np.max(act_err)),
        latent_max=float(np.max(dyn_err)),
    )


def sessions_for(dir_: str, overrides: dict[str, str] | None = None, kernels: bool = False) -> dict:
    """onnxruntime sessions for the four graphs. `kernels=False` keeps the
    QDQ pairs as written (float arithmetic on quantized values: the
    quantization error alone); `kernels=True` lets onnxruntime fuse them into
    its INT8 kernels, as the runtime's ONNX Runtime backend does."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.graph_optimization_level = (
        ort.GraphOptimizationLevel.ORT_ENABLE_ALL if kernels else ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    )
    out = {}
    for g in E.GRAPHS:
        path = (overrides or {}).get(g, os.path.join(dir_, f"{g}.onnx"))
        out[g] = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description="static INT8 QDQ quantization of reach-v1")
    ap.add_argument("--onnx", required=True, help="directory with the fp32 graphs from export_onnx.py")
    ap.add_argument("--params", required=True, help="params .npz (normalization and vocabulary)")
    ap.add_argument("--calib", required=True, help="frames .npz (ganglion eval --dump-frames, or a dataset)")
    ap.add_argument("--calib-source", default="closed-loop frames", help="described in SENSITIVITY.md")
    ap.add_argument("--out", required=True, help="directory for the INT8 graphs")
    ap.add_argument("--calib-count", type=int, default=300)
    ap.add_argument("--eval-count", type=int, default=200)
    ap.add_argument("--per-channel", action="store_true")
    ap.add_argument("--exclude", nargs="*", default=FLOAT_LAYERS)
    ap.add_argument("--sensitivity", help="write the per-layer sensitivity table (Markdown) here")
    a = ap.parse_args()

    _, _, norm, vocab, _ = M.load_params(a.params)
    ref = sessions_for(a.onnx)
    frames = load_frames(a.calib, vocab, a.calib_count + a.eval_count, seed=0)
    calib = graph_feeds(ref, frames[: a.calib_count], norm, vocab)
    held = graph_feeds(ref, frames[a.calib_count :], norm, vocab)
    os.makedirs(a.out, exist_ok=True)

    rows = []
    if a.sensitivity:
        with tempfile.TemporaryDirectory() as tmp:
            for graph, layers in LAYERS.items():
                src = os.path.join(a.onnx, f"{graph}.onnx")
                for layer in layers:
                    dst = os.path.join(tmp, f"{graph}-{layer}.onnx")
                    quantize_graph(src, dst, calib[graph], only=[layer], per_channel=a.per_channel)
                    err = pipeline_error(ref, sessions_for(a.onnx, {graph: dst}), held, norm)
                    err_k = pipeline_error(ref, sessions_for(a.onnx, {graph: dst}, kernels=True), held, norm)
                    rows.append((graph, layer, err, err_k))
                    print(f"  {graph:12s} {layer:12s} action {err['action_mrad_mean']:8.2f} mrad mean "
                          f"{err['action_mrad_max']:8.2f} max, INT8 kernels {err_k['action_mrad_mean']:8.2f} mean  "
                          f"latent {err['latent_max']:.4f}", flush=True)
            # Everything in INT8 (no exclusions) vs the shipped mixed precision.
            full = {}
            for graph in QUANTIZED_GRAPHS:
                dst = os.path.join(tmp, f"{graph}-all.onnx")
                quantize_graph(os.path.join(a.onnx, f"{graph}.onnx"), dst, calib[graph], per_channel=a.per_channel)
                full[graph] = dst
            err_all = pipeline_error(ref, sessions_for(a.onnx, full), held, norm)
            err_all_k = pipeline_error(ref, sessions_for(a.onnx, full, kernels=True), held, norm)
            print(f"  all layers INT8: action {err_all['action_mrad_mean']:.2f} mrad mean", flush=True)

    for graph in E.GRAPHS:
        src = os.path.join(a.onnx, f"{graph}.onnx")
        dst = os.path.join(a.out, f"{graph}.onnx")
        if graph in QUANTIZED_GRAPHS:
            quantize_graph(src, dst, calib[graph], exclude=a.exclude, per_channel=a.per_channel)
        else:
            shutil.copyfile(src, dst)
    err_mixed = pipeline_error(ref, sessions_for(a.out), held, norm)
    err_mixed_k = pipeline_error(ref, sessions_for(a.out, kernels=True), held, norm)
    print(f"mixed precision (float: {', '.join(a.exclude)}): action {err_mixed['action_mrad_mean']:.2f} mrad mean, "
          f"{err_mixed['action_mrad_max']:.2f} max; dynamics latent {err_mixed['latent_max']:.4f}")
    for graph in E.GRAPHS:
        print(f"  {graph}.onnx  {os.path.getsize(os.path.join(a.out, graph + '.onnx')) / 1024:.1f} KiB")

    if a.sensitivity:
        with open(a.sensitivity, "w") as f:
            f.write(SENSITIVITY_HEAD.format(calib=a.calib_source, n_calib=a.calib_count, n_eval=a.eval_count,
                                            per_channel="per-channel" if a.per_channel else "per-tensor"))
            f.write("| graph | layer quantized alone | QDQ error mean (mrad) | QDQ max (mrad) | "
                    "INT8 kernels mean (mrad) | INT8 kernels max (mrad) | dynamics latent max |\n")
            f.write("|---|---|---:|---:|---:|---:|---:|\n")

            def cells(e, k):
                return (f"{e['action_mrad_mean']:.2f} | {e['action_mrad_max']:.2f} | {k['action_mrad_mean']:.2f} | "
                        f"{k['action_mrad_max']:.2f} | {e['latent_max']:.4f}")

            for graph, layer, err, err_k in rows:
                f.write(f"| {graph} | `{layer}` | {cells(err, err_k)} |\n")
            f.write(f"| all | every layer INT8 | {cells(err_all, err_all_k)} |\n")
            f.write(f"| shipped | float: {', '.join('`' + x + '`' for x in a.exclude)} | "
                    f"{cells(err_mixed, err_mixed_k)} |\n")
        print(f"wrote {a.sensitivity}")


SENSITIVITY_HEAD = """# reach-v1 INT8 per-layer sensitivity

Written by `quantize.py`. Static INT8, QDQ format, symmetric {per_channel}
weights and symmetric activations, min-max calibration on {n_calib} frames
({calib}); errors measured on {n_eval} other frames. Each row quantizes ONE
layer and keeps every other layer in float; the action error is the largest
absolute difference over the 8-step chunk and all joints between that
pipeline (text encoder -> encoder -> action head) and fp32, de-normalized to
joint angle (mrad). "QDQ" runs the quantized graph as written (float
arithmetic on quantized values); "INT8 kernels" lets onnxruntime fuse the
QDQ pairs into its integer kernels, as a runtime does. The dynamics column is the largest absolute difference of
the predicted next latent (latents lie in [-1, 1]); the dynamics graph feeds
latency compensation and the surprise monitor, not the actions of an
uncompensated chunk.

"""


if __name__ == "__main__":
    main()
