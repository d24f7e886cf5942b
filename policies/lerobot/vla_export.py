"""What export_smolvla.py and export_pi.py share (run by hand; CI needs none
of this): the fixtures' robot (SO-101 joints, one 64x64 camera), the
stand-in tokenizers' training lines, the three fixed observations, the ONNX
export of the split prefix/step graphs (with metadata stripped and tract's
rewrites), the bundle's tokenizer run as the runtime runs it, the Euler loop
on ONNX Runtime / tract, the goldens' common fields and the format-2
manifest (`policy.toml`) of a prefix + flow_euler step bundle.

Not a script: the two exporters import it (heavy modules are imported inside
the functions, so importing this file costs nothing).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

from export_diffusion import strip, toml_list

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
CAMERA = "front"
IMG = 64

# Instruction lines the stand-in tokenizers are trained on.
CORPUS = """reach the red target
reach the green target
reach the blue target
pick up the red cube
pick up the blue cube
pick up the green block and place it in the bowl
put the cube in the box
place the block on the plate
push the button
open the drawer
close the drawer
move the arm to the left
move the arm to the right
stack the blocks
grasp the handle
lift the cup
rotate the wrist
open the gripper
close the gripper
go to the home position
move 3 cm up then 12 cm forward
sort the objects by colour
the robot should slowly approach the yellow ball on the table
a small white mug next to a large black bottle
please hand me the tool from the shelf
"""

# The plain instructions of the goldens: plain; digits and non-ASCII; one
# over 48 tokens (truncated).
PLAIN_INSTRUCTIONS = [
    "reach the red target",
    "Move 3 cm up, then grasp the crème brûlée spoon!",
    "pick up the green block and place it in the bowl, then push the button, open the drawer, "
    "close the drawer, lift the cup, rotate the wrist, open the gripper and then go back to the home "
    "position slowly please",
]


def observations(seed: int, instructions: list[str]):
    """One observation per instruction: joints (radians, inside the state
    statistics), a 64x64 RGB u8 image (a coloured square on a noisy
    background) and the instruction. Returns `(joints, img, text)` tuples;
    the arrays are fresh (a caller may edit them)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    out = []
    for k, text in enumerate(instructions):
        img = rng.integers(0, 60, size=(IMG, IMG, 3), dtype=np.uint8)
        y, x = 8 + 14 * k, 40 - 12 * k
        img[y:y + 14, x:x + 14] = [(220, 30, 30), (30, 200, 40), (40, 60, 230)][k]
        joints = (np.array([0.0, -0.5, 0.6, 0.3, 0.0, 0.4]) + rng.normal(0, 0.3, 6)).astype(np.float32)
        out.append((joints, img, text))
    return out


def lerobot_batch(pre, image_key: str, joints, img, text):
    """One observation through LeRobot's pre-processor `pre` (the image as
    CHW f32 in [0, 1], as a LeRobot dataset hands it)."""
    import torch
    from lerobot.utils.constants import OBS_STATE

    return pre({
        OBS_STATE: torch.from_numpy(joints),
        image_key: torch.from_numpy(img).permute(2, 0, 1).float() / 255.0,
        "task": text,
    })


def graph_base():
    """The base class of the exporters' `Prefix` and `Step` modules: a torch
    module holding LeRobot's model as its submodule `m` (the graphs'
    initializers are named after LeRobot's parameters under `m.`). The
    subclass's `forward` must name the graph's inputs: the exporter writes
    its parameter names into the graph's metadata."""
    import torch

    class ModelGraph(torch.nn.Module):
        def __init__(self, m):
            super().__init__()
            self.m = m

    return ModelGraph


def prefix_outputs(pad_masks, cache) -> tuple:
    """The prefix graph's outputs: the pad mask, then each layer's keys, then
    each layer's values (DynamicCache's layout)."""
    keys = [layer.keys for layer in cache.layers]
    values = [layer.values for layer in cache.layers]
    return (pad_masks, *keys, *values)


def lerobot_chunk(policy, post, batch, noise):
    """LeRobot's own chunk for a pre-processed `batch` and `noise`: the
    normalized one (`predict_action_chunk`, after a reset) and the
    post-processor's."""
    policy.reset()
    actions_n = policy.predict_action_chunk(dict(batch), noise=noise.clone())
    return actions_n, post(actions_n)


def tokenizer_of(pre):
    """The Hugging Face tokenizer LeRobot's pre-processor `pre` loaded."""
    return next(s for s in pre.steps if type(s).__name__ == "TokenizerProcessorStep").input_tokenizer


def kv_cache(kv, n_layers: int):
    """A DynamicCache from the prefix graph's outputs: `kv` holds the
    `n_layers` keys, then the `n_layers` values."""
    from transformers import DynamicCache

    cache = DynamicCache()
    for i in range(n_layers):
        cache.update(kv[i], kv[n_layers + i], i)
    return cache


def kv_names(n_layers: int) -> list[str]:
    """The KV tensors' names on both graphs (keys, then values)."""
    return [f"past_key_{i}" for i in range(n_layers)] + [f"past_value_{i}" for i in range(n_layers)]


def export_graphs(bundle: Path, prefix, ex_prefix, prefix_inputs: list[str], step, ex_step,
                  step_inputs: list[str], kv: list[str], opset: int, producer: str,
                  dynamic: tuple | None = None) -> dict:
    """Exports `prefix` (-> prefix_pad_masks, KV) and `step` (-> v_t) with the
    dynamo exporter into `bundle`, strips the metadata (the files must not
    depend on where or when they were made), applies `tract_friendly` and
    checks each graph. `dynamic`: the `dynamic_shapes` of the prefix and of
    the step export (a prompt length that varies), or None (fixed shapes).
    Returns the rewrite counts per file."""
    import onnx
    import torch

    dyn_prefix, dyn_step = dynamic if dynamic is not None else (None, None)
    with torch.no_grad():
        torch.onnx.export(prefix, ex_prefix, str(bundle / "prefix.onnx"), dynamo=True, opset_version=opset,
                          input_names=prefix_inputs, output_names=["prefix_pad_masks", *kv],
                          external_data=False, dynamic_shapes=dyn_prefix)
        torch.onnx.export(step, ex_step, str(bundle / "step.onnx"), dynamo=True, opset_version=opset,
                          input_names=step_inputs, output_names=["v_t"], external_data=False,
                          dynamic_shapes=dyn_step)
    rewritten = {}
    for f in ("prefix.onnx", "step.onnx"):
        strip(bundle / f, producer)
        rewritten[f] = tract_friendly(bundle / f)
        onnx.checker.check_model(str(bundle / f))
    return rewritten


def tract_friendly(path: Path) -> dict[str, int]:
    """Two rewrites that keep every value bit for bit and make the graph load
    and run in tract 0.23.9 (the Rust tests run both graphs there):

    - Each i64 `CumSum` runs on i32 (a `Cast` before, a `Cast` back to i64
      after): tract fails on the i64 one at run time ("Evaluating CumSum: TDim
      is not a number"). In SmolVLA's prefix graph that is the position ids,
      `cumsum(prefix_pad_masks) - 1`, at most the prefix length.
    - Each f32 `Expand` (constant shape) that feeds a `Concat` read
      by a `MatMul` becomes a `Mul` by ones of that shape (x * 1 = x, the same
      broadcast): tract fails in its declutter pass on the `Expand`
      ("concat-einsum": it splits the MatMul along the concatenated axis, then
      tries to substitute the 50x48 slice by the un-expanded 1x48 one). In
      SmolVLA's step graph that is `embed_suffix`'s time embedding expanded
      over the 50 actions and concatenated with the action embedding before
      `action_time_mlp_in`.

    Returns the count of each rewrite."""
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(path))
    g = model.graph
    inits = {i.name: i for i in g.initializer}
    dtypes = {v.name: v.type.tensor_type.elem_type for v in list(g.value_info) + list(g.input)}
    users: dict[str, list] = {}
    for node in g.node:
        for i in node.input:
            users.setdefault(i, []).append(node)
    counts = {"cumsum_i64_as_i32": 0, "expand_as_mul": 0}
    for node in list(g.node):
        if node.op_type != "CumSum" or dtypes.get(node.input[0]) != onnx.TensorProto.INT64:
            continue
        x, y = node.input[0], node.output[0]
        idx = list(g.node).index(node)
        g.node.remove(node)
        new = [
            helper.make_node("Cast", [x], [f"{x}_i32"], to=onnx.TensorProto.INT32, name=f"{node.name}_to_i32"),
            helper.make_node("CumSum", [f"{x}_i32", node.input[1]], [f"{y}_i32"], name=node.name,
                             exclusive=0, reverse=0),
            helper.make_node("Cast", [f"{y}_i32"], [y], to=onnx.TensorProto.INT64, name=f"{node.name}_to_i64"),
        ]
        for attr in node.attribute:  # keep the original exclusive/reverse
            for a in new[1].attribute:
                if a.name == attr.name:
                    a.i = attr.i
        for k, n_ in enumerate(new):
            g.node.insert(idx + k, n_)
        counts["cumsum_i64_as_i32"] += 1
    for node in list(g.node):
        if node.op_type != "Expand" or node.input[1] not in inits:
            continue
        if dtypes.get(node.input[0]) != onnx.TensorProto.FLOAT:
            continue
        concats = [u for u in users.get(node.output[0], []) if u.op_type == "Concat"]
        if not any(u.op_type == "MatMul" for c in concats for u in users.get(c.output[0], [])):
            continue
        shape = numpy_helper.to_array(inits[node.input[1]]).astype(np.int64)
        ones = numpy_helper.from_array(np.ones(shape, np.float32), f"{node.name}_ones")
        g.initializer.append(ones)
        idx = list(g.node).index(node)
        g.node.remove(node)
        g.node.insert(idx, helper.make_node("Mul", [node.input[0], ones.name], list(node.output), name=f"{node.name}_as_mul"))
        counts["expand_as_mul"] += 1
    used = {i for node in g.node for i in node.input}
    for init in [i for i in g.initializer if i.name not in used]:  # the Expands' shapes
        g.initializer.remove(init)
    onnx.save(model, str(path))
    return counts


def graph_ops(bundle: Path) -> tuple[dict, dict]:
    """Per graph: the op types, and those casting to f64 (with the count of
    f64 initializers), for the exporters' summary."""
    import onnx

    ops, f64 = {}, {}
    for f in ("prefix", "step"):
        m = onnx.load(str(bundle / f"{f}.onnx"))
        ops[f] = sorted({node.op_type for node in m.graph.node})
        f64[f] = sorted({node.op_type for node in m.graph.node
                         if any(a.name == "to" and a.i == onnx.TensorProto.DOUBLE for a in node.attribute)})
        f64[f + "_double_initializers"] = sum(1 for t in m.graph.initializer if t.data_type == onnx.TensorProto.DOUBLE)
    return ops, f64


def padded_tokens(raw, text: str, max_tokens: int, pad_id: int,
                  longest: bool = False) -> tuple[list[int], list[bool]]:
    """`text` through the bundle's tokenizer.json (`raw`, a `tokenizers.
    Tokenizer`) as the Rust `tokenizers` crate will run it: encode with
    special tokens, truncate, pad right with the pad token (to `max_tokens`,
    or with `longest` not at all: one prompt is its own longest). Returns the
    ids and the mask."""
    ids = raw.encode(text, add_special_tokens=True).ids[:max_tokens]
    n = len(ids)
    width = n if longest else max_tokens
    return ids + [pad_id] * (width - n), [True] * n + [False] * (width - n)


class Runners:
    """The bundle's two graphs on ONNX Runtime and, where the PyPI `tract`
    bindings (the version the runtime links) are installed, on tract
    (`self.tract` is then the module, else None)."""

    def __init__(self, bundle: Path):
        import onnxruntime as ort

        self.sess_p = ort.InferenceSession(str(bundle / "prefix.onnx"))
        self.sess_s = ort.InferenceSession(str(bundle / "step.onnx"))
        try:  # optional
            import tract
        except ImportError:
            tract = None
        self.tract = tract
        if tract is not None:
            self.tract_p = tract.onnx().load(str(bundle / "prefix.onnx")).into_model().into_runnable()
            self.tract_s = tract.onnx().load(str(bundle / "step.onnx")).into_model().into_runnable()


def euler(noise, steps: int, velocity, trace=None, t_f32_accumulated: bool = False):
    """`steps` Euler steps from `noise` as LeRobot's euler_integrate: t = 1 +
    k * dt (f64, then f32; or, with `t_f32_accumulated`, t += dt in f32),
    x <- x + dt * velocity(x, t). `trace` (a list) collects each step's
    timestep and flattened v_t."""
    import numpy as np

    x, dt = noise.copy(), -1.0 / steps
    t32 = np.float32(1.0)
    for k in range(steps):
        t = np.array([t32 if t_f32_accumulated else 1.0 + k * dt], dtype=np.float32)
        v = velocity(x, t)
        if trace is not None:
            trace.append({"timestep": float(t[0]), "v_t": v.reshape(-1).tolist()})
        x = (x + np.float32(dt) * v).astype(np.float32)
        t32 = np.float32(t32 + np.float32(dt))
    return x


def golden_observation(text: str, joints, img, noise, tokens: list[int], mask: list[bool]) -> dict:
    """A golden observation's inputs and LeRobot's tokens, in the goldens'
    key order (the exporter appends what it computed)."""
    import numpy as np

    return {
        "instruction": text,
        "joints": [float(v) for v in joints],
        "image_rgb8_b64": base64.b64encode(np.ascontiguousarray(img).tobytes()).decode(),
        "image_shape": [IMG, IMG, 3],
        "noise": noise.reshape(-1).tolist(),
        "tokens": tokens,
        "token_mask": mask,
        "n_tokens": int(sum(mask)),
    }


def input_sensitivity(delta, inputs, other) -> dict:
    """How much the golden depends on the image, the tokens and the mask (a
    test that feeds one of them wrongly must fail): `delta(i, new)` is the
    chunk's change when only graph input i becomes `new`; `other` holds
    another observation's inputs."""
    import torch

    return {
        "image": delta(0, other[0]),
        "tokens": delta(1, other[1]),
        "token_mask_one_more": delta(2, torch.cat([inputs[2][:, :1], inputs[2][:, :-1]], dim=1) | inputs[2]),
    }


def golden_header(policy_type: str, opset: int, seed: int, params: int) -> dict:
    """The goldens' first fields: where they come from (library versions)."""
    import lerobot
    import tokenizers
    import torch
    import transformers

    return {
        "source": "lerobot",
        "policy_type": policy_type,
        "lerobot_version": lerobot.__version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "onnx_opset": opset,
        "seed": seed,
        "parameters": params,
    }


def golden_text_fields(chunk: int, action_dim: int, max_state_dim: int, max_tokens: int, template: str,
                       pad_token: str, pad_id: int) -> dict:
    """The goldens' shape and prompt fields, in their key order."""
    return {
        "chunk_size": chunk,
        "max_action_dim": action_dim,
        "max_state_dim": max_state_dim,
        "tokenizer_max_length": max_tokens,
        "template": template,
        "pad_token": pad_token,
        "pad_token_id": pad_id,
    }


def mean_std_lines(mean, std) -> str:
    """A manifest's `mean` / `std` lines ([joints] or [action])."""
    return f"mean = {toml_list(mean)}\nstd = {toml_list(std)}"


def manifest(*, name: str, text: str, state_graph: str, max_state_dim: int, max_tokens: int, prefix_len: int,
             chunk: int, action_dim: int, kv: list[str], kv_shape: list[int], steps: int, joints_stats: str,
             action_stats: str, chunk_len: int, fps: float, dynamic_tokens: bool = False) -> str:
    """The format-2 `policy.toml` of a prefix + step bundle with empty
    digests: `text` is the body of its [text] section (lines after
    `tokenizer = "tokenizer.json"`, each ending in a newline); obs.state
    goes into the input `state` of `state_graph` ("prefix" or "step", or
    nowhere when "" — pi0.5 has it in the prompt); `joints_stats` and
    `action_stats` are the statistics lines of [joints] and [action].
    `dynamic_tokens` (`[text] padding = "longest"`): the token axis is the
    symbol `L` (1 to `max_tokens`), the prefix `L + (prefix_len -
    max_tokens)` wherever it appears, in the KV cache too."""
    state_wire = f'    {{ from = "obs.state", to = "{state_graph}.state" }},\n' if state_graph else ""
    state_decl = f'    {{ name = "state", shape = [1, {max_state_dim}], dtype = "f32" }},\n'
    prefix_state = state_decl if state_graph == "prefix" else ""
    step_state = state_decl if state_graph == "step" else ""
    L, P, H, D = max_tokens, prefix_len, chunk, action_dim
    if dynamic_tokens:
        L, P = '"L"', f'"L + {prefix_len - max_tokens}"'
        kv_shape = "[" + ", ".join(P if d == prefix_len else str(d) for d in kv_shape) + "]"
    kv_decl = ",\n".join(f'    {{ name = "{k}", shape = {kv_shape}, dtype = "f32" }}' for k in kv)
    return f"""format = 2
name = "{name}"
version = "0.1.0"
precision = "fp32"
expected_latency_ms = 100.0
parity_tolerance = 0.0001

[text]
tokenizer = "tokenizer.json"
{text}
[dataflow]
wires = [
    {{ from = "obs.image.{CAMERA}", to = "prefix.image" }},
    {{ from = "obs.tokens", to = "prefix.lang_tokens" }},
    {{ from = "obs.token_mask", to = "prefix.lang_masks" }},
{state_wire}    {{ from = "prefix.prefix_pad_masks", to = "step.prefix_pad_masks" }},
    {{ from = "prefix.past_*", to = "step.past_*" }},
]

[dataflow.graphs.prefix]
file = "prefix.onnx"
inputs = [
    {{ name = "image", shape = [1, 3, {IMG}, {IMG}], dtype = "f32" }},
    {{ name = "lang_tokens", shape = [1, {L}], dtype = "i64" }},
    {{ name = "lang_masks", shape = [1, {L}], dtype = "bool" }},
{prefix_state}]
outputs = [
    {{ name = "prefix_pad_masks", shape = [1, {P}], dtype = "bool" }},
{kv_decl},
]

[dataflow.graphs.step]
file = "step.onnx"
inputs = [
    {{ name = "x_t", shape = [1, {H}, {D}], dtype = "f32" }},
    {{ name = "timestep", shape = [1], dtype = "f32" }},
    {{ name = "prefix_pad_masks", shape = [1, {P}], dtype = "bool" }},
{step_state}{kv_decl},
]
outputs = [
    {{ name = "v_t", shape = [1, {H}, {D}], dtype = "f32" }},
]

[dataflow.head]
graph = "step"
sample = "x_t"
timestep = "timestep"
output = "v_t"
steps = {steps}

[dataflow.head.schedule]
kind = "flow_euler"

[joints]
names = {json.dumps(JOINTS)}
{joints_stats}

[action]
kind = "absolute"
chunk_len = {chunk_len}
rate_hz = {fps}
{action_stats}

[[cameras]]
name = "{CAMERA}"
width = {IMG}
height = {IMG}
format = "rgb8"
resize = [{IMG}, {IMG}]
mean = [0.5, 0.5, 0.5]
std = [0.5, 0.5, 0.5]

[[files]]
path = "prefix.onnx"
sha256 = ""

[[files]]
path = "step.onnx"
sha256 = ""

[[files]]
path = "tokenizer.json"
sha256 = ""
"""
