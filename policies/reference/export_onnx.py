"""Export trained reach-v1 params to four ONNX graphs (opset 17) and check them.

Graphs (batch 1, fixed shapes, so tract can optimize them once):

    text_encoder.onnx  tokens[1,L] int64                        -> instruction[1,E]
    encoder.onnx       image[1,3,64,64], joints[1,n], instruction[1,E] -> latent[1,D]
    dynamics.onnx      latent[1,D], action[1,n]                 -> next_latent[1,D]
    action_head.onnx   latent[1,D], instruction[1,E]            -> actions[1,H,n]

Each graph is a direct transcription of model.py's JAX forward pass, with
named nodes (conv1, kp_softmax, ...) so quantize.py can keep layers in float
by name. The export is checked against JAX with onnxruntime on real frames
(max abs diff printed; fails above --tol), and golden input/output pairs are
written for the runtime's parity tests.

    .venv/bin/python export_onnx.py --params work/params.npz --data work/reach.npz --out work/onnx
"""

from __future__ import annotations

import argparse
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

import model as M

OPSET = 17


def _graph(name, nodes, inputs, outputs, inits, shapes=None, int_inputs=()):
    """A checked opset-17 model; `inits` are float32, `shapes` int64 constants,
    inputs named in `int_inputs` are int64."""
    tensors = [numpy_helper.from_array(np.asarray(v, np.float32), k) for k, v in inits.items()]
    tensors += [numpy_helper.from_array(np.asarray(v, np.int64), k) for k, v in (shapes or {}).items()]
    g = helper.make_graph(
        nodes,
        name,
        [helper.make_tensor_value_info(n, TensorProto.INT64 if n in int_inputs else TensorProto.FLOAT, s)
         for n, s in inputs],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in outputs],
        tensors,
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="ganglion-reference")
    m.ir_version = 8
    onnx.checker.check_model(m, full_check=True)
    return m


def _dense(nodes, name, x, p, w, b, act=None):
    """Gemm (+ optional activation node); returns the output tensor name."""
    y = name
    nodes.append(helper.make_node("Gemm", [x, w, b], [y], name=name))
    if act:
        nodes.append(helper.make_node(act, [y], [f"{name}_{act.lower()}"], name=f"{name}_{act.lower()}"))
        y = f"{name}_{act.lower()}"
    return y


def text_encoder_graph(p, arch: M.Arch):
    # Sum of the tokens' embeddings = count vector x table; row 0 (padding)
    # embeds to zeros, so padded slots add nothing.
    table = np.concatenate([np.zeros((1, arch.embed), np.float32), p["text_emb_w"]])
    nodes = [
        helper.make_node("Gather", ["text_table", "tokens"], ["tok_emb"], name="text_gather", axis=0),
        helper.make_node("ReduceSum", ["tok_emb", "sum_axes"], ["text_emb"], name="text_sum", keepdims=0),
    ]
    h = _dense(nodes, "text1", "text_emb", p, "text1_w", "text1_b", "Relu")
    nodes.append(helper.make_node("Gemm", [h, "text2_w", "text2_b"], ["instruction"], name="text2"))
    inits = {k: p[k] for k in ["text1_w", "text1_b", "text2_w", "text2_b"]} | {"text_table": table}
    return _graph(
        "text_encoder",
        nodes,
        [("tokens", [1, arch.max_tokens])],
        [("instruction", [1, arch.embed])],
        inits,
        {"sum_axes": np.array([1], np.int64)},
        int_inputs=("tokens",),
    )


def encoder_graph(p, arch: M.Arch):
    a = arch
    k = a.keypoints
    nodes = [
        helper.make_node("Conv", ["image", "conv1_w", "conv1_b"], ["conv1"], name="conv1", kernel_shape=[5, 5],
                         strides=[2, 2], pads=[2, 2, 2, 2]),
        helper.make_node("Relu", ["conv1"], ["relu1"], name="relu1"),
        helper.make_node("Conv", ["relu1", "conv2_w", "conv2_b"], ["conv2"], name="conv2", kernel_shape=[3, 3],
                         strides=[1, 1], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv2"], ["relu2"], name="relu2"),
        helper.make_node("Conv", ["relu2", "conv3_w", "conv3_b"], ["conv3"], name="conv3", kernel_shape=[3, 3],
                         strides=[1, 1], pads=[1, 1, 1, 1]),
        # Spatial softmax: one distribution over the feature map per keypoint
        # channel, then its expected (x, y) position.
        helper.make_node("Reshape", ["conv3", "kp_shape"], ["kp_logits"], name="kp_reshape"),
        helper.make_node("Mul", ["kp_logits", "kp_temp"], ["kp_scaled"], name="kp_scale"),
        helper.make_node("Softmax", ["kp_scaled"], ["kp_attn"], name="kp_softmax", axis=-1),
        helper.make_node("MatMul", ["kp_attn", "kp_coords"], ["kp_xy"], name="kp_matmul"),
        helper.make_node("Reshape", ["kp_xy", "kp_flat_shape"], ["kp"], name="kp_flatten"),
        helper.make_node("Concat", ["kp", "joints", "instruction"], ["fuse_in"], name="fuse_concat", axis=1),
        helper.make_node("Gemm", ["fuse_in", "fuse1_w", "fuse1_b"], ["fuse1"], name="fuse1"),
        helper.make_node("Relu", ["fuse1"], ["fuse1_relu"], name="fuse1_relu"),
        helper.make_node("Gemm", ["fuse1_relu", "fuse2_w", "fuse2_b"], ["fuse2"], name="fuse2"),
        helper.make_node("Tanh", ["fuse2"], ["latent"], name="latent_tanh"),
    ]
    inits = {n: p[n] for n in ["conv1_w", "conv1_b", "conv2_w", "conv2_b", "conv3_w", "conv3_b", "fuse1_w",
                               "fuse1_b", "fuse2_w", "fuse2_b"]}
    inits["kp_temp"] = np.array(np.exp(p["kp_log_temp"]), np.float32)
    inits["kp_coords"] = M.keypoint_coords(a.feat)
    shapes = {"kp_shape": np.array([1, k, a.feat * a.feat], np.int64), "kp_flat_shape": np.array([1, 2 * k], np.int64)}
    return _graph(
        "encoder",
        nodes,
        [("image", [1, 3, a.image, a.image]), ("joints", [1, a.n_joints]), ("instruction", [1, a.embed])],
        [("latent", [1, a.latent])],
        inits,
        shapes,
    )


def dynamics_graph(p, arch: M.Arch):
    nodes = [
        helper.make_node("Concat", ["latent", "action"], ["dyn_in"], name="dyn_concat", axis=1),
        helper.make_node("Gemm", ["dyn_in", "dyn1_w", "dyn1_b"], ["dyn1"], name="dyn1"),
        helper.make_node("Relu", ["dyn1"], ["dyn1_relu"], name="dyn1_relu"),
        helper.make_node("Gemm", ["dyn1_relu", "dyn2_w", "dyn2_b"], ["dyn2"], name="dyn2"),
        helper.make_node("Add", ["latent", "dyn2"], ["dyn_res"], name="dyn_residual"),
        helper.make_node("Tanh", ["dyn_res"], ["next_latent"], name="dyn_tanh"),
    ]
    inits = {n: p[n] for n in ["dyn1_w", "dyn1_b", "dyn2_w", "dyn2_b"]}
    return _graph(
        "dynamics",
        nodes,
        [("latent", [1, arch.latent]), ("action", [1, arch.n_joints])],
        [("next_latent", [1, arch.latent])],
        inits,
    )


def action_head_graph(p, arch: M.Arch):
    shape = np.array([1, arch.horizon, arch.n_joints], np.int64)
    nodes = [
        helper.make_node("Concat", ["latent", "instruction"], ["head_in"], name="head_concat", axis=1),
        helper.make_node("Gemm", ["head_in", "head1_w", "head1_b"], ["head1"], name="head1"),
        helper.make_node("Relu", ["head1"], ["head1_relu"], name="head1_relu"),
        helper.make_node("Gemm", ["head1_relu", "head2_w", "head2_b"], ["head2"], name="head2"),
        helper.make_node("Relu", ["head2"], ["head2_relu"], name="head2_relu"),
        helper.make_node("Gemm", ["head2_relu", "head3_w", "head3_b"], ["head3"], name="head3"),
        helper.make_node("Reshape", ["head3", "head_shape"], ["actions"], name="head_reshape"),
    ]
    inits = {n: p[n] for n in ["head1_w", "head1_b", "head2_w", "head2_b", "head3_w", "head3_b"]}
    return _graph(
        "action_head",
        nodes,
        [("latent", [1, arch.latent]), ("instruction", [1, arch.embed])],
        [("actions", [1, arch.horizon, arch.n_joints])],
        inits,
        {"head_shape": shape},
    )


GRAPHS = {
    "text_encoder": text_encoder_graph,
    "encoder": encoder_graph,
    "dynamics": dynamics_graph,
    "action_head": action_head_graph,
}


def preprocess(images_u8: np.ndarray, norm: dict) -> np.ndarray:
    """[N,H,W,3] uint8 -> [N,3,H,W] float32 normalized as the bundle declares."""
    x = images_u8.astype(np.float32) / 255.0
    x = (x - norm["img_mean"]) / norm["img_std"]
    return np.ascontiguousarray(x.transpose(0, 3, 1, 2)).astype(np.float32)


def sample_inputs(arch: M.Arch, norm: dict, vocab: list[str], data: str | None, count: int, seed: int):
    """Per-sample graph inputs from real dataset frames (or random ones)."""
    rng = np.random.default_rng(seed)
    texts = [f"reach the {c} target" for c in ("red", "green", "blue") if c in vocab] or [" ".join(vocab)]
    if data:
        z = np.load(data)
        idx = rng.choice(len(z["joint_pos"]), count, replace=False)
        imgs = z["images"][np.sort(idx)]
        q = z["joint_pos"][np.sort(idx)].astype(np.float32)
        a = z["actions"][np.sort(idx), 0, :].astype(np.float32)
    else:
        imgs = rng.integers(0, 255, (count, arch.image, arch.image, 3), dtype=np.uint8)
        q = rng.normal(0, 1, (count, arch.n_joints)).astype(np.float32) * norm["q_std"] + norm["q_mean"]
        a = rng.normal(0, 1, (count, arch.n_joints)).astype(np.float32) * norm["a_std"] + norm["a_mean"]
    out = []
    for i in range(count):
        out.append(
            dict(
                bow=M.bag_of_words(texts[i % len(texts)], vocab)[None],
                tokens=M.token_ids(texts[i % len(texts)], vocab, arch.max_tokens),
                image=preprocess(imgs[i : i + 1], norm),
                joints=((q[i : i + 1] - norm["q_mean"]) / norm["q_std"]).astype(np.float32),
                action=((a[i : i + 1] - norm["a_mean"]) / norm["a_std"]).astype(np.float32),
                raw_image=imgs[i],
                raw_joints=q[i],
                text=texts[i % len(texts)],
            )
        )
    return out


def jax_reference(p, arch, s):
    """The four graphs' outputs computed by the JAX training code."""
    import jax.numpy as jnp

    pj = {k: jnp.asarray(v) for k, v in p.items()}
    instr = M.text_encoder(pj, jnp.asarray(s["bow"]))
    z = M.encoder(pj, arch, jnp.asarray(s["image"]), jnp.asarray(s["joints"]), instr)
    nz = M.dynamics(pj, z, jnp.asarray(s["action"]))
    act = M.action_head(pj, arch, z, instr)
    return {k: np.asarray(v) for k, v in dict(instruction=instr, latent=z, next_latent=nz, actions=act).items()}


def run_graphs(sessions: dict, s: dict) -> dict:
    """Run the four graphs in pipeline order with onnxruntime sessions."""
    instr = sessions["text_encoder"].run(None, {"tokens": s["tokens"]})[0]
    z = sessions["encoder"].run(None, {"image": s["image"], "joints": s["joints"], "instruction": instr})[0]
    nz = sessions["dynamics"].run(None, {"latent": z, "action": s["action"]})[0]
    act = sessions["action_head"].run(None, {"latent": z, "instruction": instr})[0]
    return dict(instruction=instr, latent=z, next_latent=nz, actions=act)


def ort_sessions(onnx_dir: str, suffix: str = "") -> dict:
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return {
        g: ort.InferenceSession(os.path.join(onnx_dir, f"{g}{suffix}.onnx"), so, providers=["CPUExecutionProvider"])
        for g in GRAPHS
    }


def write_golden(path: str, samples: list[dict], outputs: list[dict]) -> None:
    """Golden pairs: every graph input and output per sample, stacked on axis 0."""
    arrays = {}
    for key in ["tokens", "image", "joints", "action"]:
        arrays[f"in_{key}"] = np.concatenate([s[key] for s in samples])
    for key in ["instruction", "latent", "next_latent", "actions"]:
        arrays[f"out_{key}"] = np.concatenate([o[key] for o in outputs])
    np.savez(path, **arrays)


def main() -> None:
    ap = argparse.ArgumentParser(description="export reach-v1 to ONNX and check against JAX")
    ap.add_argument("--params", required=True)
    ap.add_argument("--out", required=True, help="directory for the .onnx files and golden.npz")
    ap.add_argument("--data", help="dataset .npz: check and golden pairs on real frames")
    ap.add_argument("--samples", type=int, default=8)
    ap.add_argument("--tol", type=float, default=1e-4)
    a = ap.parse_args()
    p, arch, norm, vocab, meta = M.load_params(a.params)
    os.makedirs(a.out, exist_ok=True)
    for name, build in GRAPHS.items():
        onnx.save(build(p, arch), os.path.join(a.out, f"{name}.onnx"))
    sessions = ort_sessions(a.out)
    samples = sample_inputs(arch, norm, vocab, a.data, a.samples, seed=1)
    worst = 0.0
    outputs = []
    for s in samples:
        got = run_graphs(sessions, s)
        ref = jax_reference(p, arch, s)
        for k in ref:
            worst = max(worst, float(np.max(np.abs(got[k] - ref[k]))))
        outputs.append(got)
    print(f"onnxruntime vs JAX over {len(samples)} samples, all graphs: max abs diff {worst:.2e}")
    if worst > a.tol:
        raise SystemExit(f"export mismatch {worst:.2e} > {a.tol}")
    write_golden(os.path.join(a.out, "golden.npz"), samples, outputs)
    for name in GRAPHS:
        size = os.path.getsize(os.path.join(a.out, f"{name}.onnx"))
        print(f"  {name}.onnx  {size / 1024:.1f} KiB")


if __name__ == "__main__":
    main()
