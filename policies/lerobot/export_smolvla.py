"""LeRobot 0.6.1's SmolVLA, small and with random weights, as a split Ganglion
format-2 bundle with PyTorch goldens (run by hand; CI needs none of this):

    HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python policies/lerobot/export_smolvla.py \
        --out policies/fixtures/lerobot-smolvla

Needs LeRobot 0.6.1 with its `smolvla` extra (transformers 5.4-5.5, num2words),
onnx, onnxruntime, onnxscript (the `dynamo=True` exporter). No Hub access: the
VLM backbone (`SmolVLMForConditionalGeneration`) is built from a tiny SmolVLM
config written into a local folder, with a small stand-in tokenizer trained
here, and `vlm_model_name` points at that folder (`load_vlm_weights=False`),
so LeRobot's own processor pipeline (`NewLineTaskProcessorStep`,
`TokenizerProcessorStep`) loads that tokenizer like it would SmolVLM2's.

Writes under `--out` (bundle/ must not exist or be empty):

- `bundle/prefix.onnx`: LeRobot's `embed_prefix` + the VLM forward that fills
  the KV cache (`sample_actions` up to the Euler loop): `image` [1, 3, 64, 64]
  f32 in [-1, 1] (after SmolVLA's `* 2 - 1`), `lang_tokens` [1, 48] i64,
  `lang_masks` [1, 48] bool, `state` [1, 32] f32 (normalized, zero-padded) ->
  `prefix_pad_masks` [1, P] bool, `past_key_<i>`, `past_value_<i>`
  [1, kv_heads, P, head_dim] f32 for each VLM layer i (DynamicCache's layout).
- `bundle/step.onnx`: LeRobot's `denoise_step` on a cache rebuilt from those
  tensors: `x_t` [1, 50, 32] f32, `timestep` [1] f32, `prefix_pad_masks`,
  `past_*` -> `v_t` [1, 50, 32] f32.
- `bundle/tokenizer.json`, `bundle/policy.toml` (format 2, digests empty:
  `ganglion policy sign` fills them).
- `golden.json`: per observation the inputs (joints in radians, the 64x64 RGB
  image as base64 of its HWC u8 bytes, the instruction, the noise
  [1, 50, 32]), what LeRobot's pre-processor made of them (tokens, mask, the
  normalized padded state), and the de-normalized chunk [50, 6] from
  pre-processor -> `predict_action_chunk(batch, noise=...)` -> post-processor.
- `vlm/`: the tiny SmolVLM config, processor and tokenizer the policy was
  built from (kept for reproducing; small).
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from export_diffusion import affine, strip, toml_list  # noqa: E402

JOINTS = ["shoulder_pan", "shoulder_lift", "elbow_flex", "wrist_flex", "wrist_roll", "gripper"]
CAMERA = "front"
IMG = 64
# SmolVLM2's special tokens (its tokenizer_config.json): bos, pad, eos, unk and
# the image tokens LeRobot's SmolVLA asks the tokenizer for.
BOS, PAD, EOS, UNK = "<|im_start|>", "<|im_end|>", "<end_of_utterance>", "<|endoftext|>"
IMAGE_TOKENS = {
    "fake_image_token": "<fake_token_around_image>",
    "image_token": "<image>",
    "global_image_token": "<global-img>",
    "end_of_utterance_token": EOS,
}
SPECIALS = [UNK, BOS, PAD, "<fake_token_around_image>", "<image>", "<global-img>", EOS]

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


def fail(msg: str) -> None:
    print(f"export_smolvla.py: {msg}", file=sys.stderr)
    sys.exit(2)


def make_tokenizer(vocab_size: int):
    """A byte-level BPE like SmolVLM2's (SmolLM2's): individual digits, GPT-2
    byte-level pre-tokenization without a prefix space, no normalizer, and a
    byte-level post-processor that adds nothing (SmolVLM2 adds no BOS/EOS when
    called with add_special_tokens=True)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIALS,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    lines = [s for s in CORPUS.splitlines() if s]
    tok.train_from_iterator(lines * 4, trainer)
    return tok


def make_vlm_dir(vlm: Path, args) -> None:
    """The local stand-in for `HuggingFaceTB/SmolVLM2-500M-Video-Instruct`:
    config.json (a tiny SmolVLM), the processor and the tokenizer."""
    from transformers import PreTrainedTokenizerFast, SmolVLMConfig, SmolVLMProcessor
    from transformers.models.smolvlm.image_processing_smolvlm import SmolVLMImageProcessor
    from transformers.models.smolvlm.video_processing_smolvlm import SmolVLMVideoProcessor

    tok = make_tokenizer(args.vocab)
    hf_tok = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=PAD,
                                     unk_token=UNK, extra_special_tokens=IMAGE_TOKENS)
    vocab = tok.get_vocab_size()
    patches = (IMG // args.patch) ** 2
    image_seq_len = patches // (args.scale_factor ** 2)
    cfg = SmolVLMConfig(
        vision_config=dict(hidden_size=args.vision_hidden, intermediate_size=2 * args.vision_hidden,
                           num_hidden_layers=args.vision_layers, num_attention_heads=2, image_size=IMG,
                           patch_size=args.patch),
        text_config=dict(model_type="llama", vocab_size=vocab, hidden_size=args.hidden,
                         intermediate_size=2 * args.hidden, num_hidden_layers=args.layers,
                         num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
                         head_dim=args.hidden // args.heads, rms_norm_eps=1e-5, max_position_embeddings=512,
                         pad_token_id=tok.token_to_id(PAD), tie_word_embeddings=False),
        scale_factor=args.scale_factor,
        image_token_id=tok.token_to_id("<image>"),
        pad_token_id=tok.token_to_id(PAD),
    )
    size = {"longest_edge": IMG}
    proc = SmolVLMProcessor(
        image_processor=SmolVLMImageProcessor(size=size, max_image_size=size, do_image_splitting=False),
        tokenizer=hf_tok,
        video_processor=SmolVLMVideoProcessor(size=size, max_image_size=size),
        image_seq_len=image_seq_len,
    )
    vlm.mkdir(parents=True, exist_ok=True)
    cfg.save_pretrained(vlm)
    proc.save_pretrained(vlm)


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


def observations(seed: int):
    """Three fixed observations: joints (radians, inside the state statistics),
    a 64x64 RGB u8 image (a coloured square on a noisy background) and an
    instruction (plain; digits and non-ASCII; one over 48 tokens, truncated)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    instructions = [
        "reach the red target",
        "Move 3 cm up, then grasp the crème brûlée spoon!",
        "pick up the green block and place it in the bowl, then push the button, open the drawer, "
        "close the drawer, lift the cup, rotate the wrist, open the gripper and then go back to the home "
        "position slowly please",
    ]
    out = []
    for k, text in enumerate(instructions):
        img = rng.integers(0, 60, size=(IMG, IMG, 3), dtype=np.uint8)
        y, x = 8 + 14 * k, 40 - 12 * k
        img[y:y + 14, x:x + 14] = [(220, 30, 30), (30, 200, 40), (40, 60, 230)][k]
        joints = (np.array([0.0, -0.5, 0.6, 0.3, 0.0, 0.4]) + rng.normal(0, 0.3, 6)).astype(np.float32)
        out.append((joints, img, text))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--name", default="lerobot-smolvla-fixture")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--hidden", type=int, default=64)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--kv-heads", type=int, default=2)
    ap.add_argument("--layers", type=int, default=4)
    ap.add_argument("--vision-hidden", type=int, default=32)
    ap.add_argument("--vision-layers", type=int, default=2)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--scale-factor", type=int, default=2)
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--opset", type=int, default=18)
    args = ap.parse_args()

    import numpy as np
    import onnx
    import onnxruntime as ort
    import tokenizers
    import torch
    import transformers
    import lerobot
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.common.vla_utils import make_att_2d_masks
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.utils.constants import ACTION, OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS, OBS_STATE
    from transformers import DynamicCache

    bundle, vlm = args.out / "bundle", args.out / "vlm"
    if bundle.exists() and any(bundle.iterdir()):
        fail(f"{bundle}: exists and is not empty")
    bundle.mkdir(parents=True, exist_ok=True)
    if vlm.exists():
        shutil.rmtree(vlm)
    torch.manual_seed(args.seed)
    make_vlm_dir(vlm, args)

    n = len(JOINTS)
    image_key = f"observation.images.{CAMERA}"
    cfg = SmolVLAConfig(
        input_features={
            OBS_STATE: PolicyFeature(FeatureType.STATE, (n,)),
            image_key: PolicyFeature(FeatureType.VISUAL, (3, IMG, IMG)),
        },
        output_features={ACTION: PolicyFeature(FeatureType.ACTION, (n,))},
        vlm_model_name=str(vlm.resolve()),
        load_vlm_weights=False,
        resize_imgs_with_padding=(IMG, IMG),
        max_state_dim=32,
        max_action_dim=32,
        chunk_size=50,
        n_action_steps=50,
        num_steps=10,
        tokenizer_max_length=48,
        pad_language_to="max_length",
        num_vlm_layers=args.layers,
        device="cpu",
        push_to_hub=False,
    )
    # SO-101 joints in radians: plausible centres and spreads (the arm's
    # calibrated ranges), the action a little off the state.
    s_mean = torch.tensor([0.0, -0.5, 0.6, 0.3, 0.0, 0.4])
    s_std = torch.tensor([0.6, 0.5, 0.5, 0.5, 0.8, 0.3])
    stats = {
        OBS_STATE: {"mean": s_mean, "std": s_std},
        ACTION: {"mean": s_mean + 0.05, "std": s_std * 1.1},
    }
    torch.manual_seed(args.seed)
    policy = SmolVLAPolicy(cfg).eval()
    model = policy.model
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    norm = next(s for s in pre.steps if hasattr(s, "_tensor_stats"))
    eps = float(norm.eps)
    joints_mean, joints_std = affine("MEAN_STD", norm._tensor_stats[OBS_STATE], eps, n, output=False)
    action_mean, action_std = affine("MEAN_STD", norm._tensor_stats[ACTION], eps, n, output=True)
    tok_step = next(s for s in pre.steps if type(s).__name__ == "TokenizerProcessorStep")
    hf_tok = tok_step.input_tokenizer
    pad_token = hf_tok.pad_token
    L, D, H = cfg.tokenizer_max_length, cfg.max_action_dim, cfg.chunk_size
    vwe = model.vlm_with_expert
    n_layers = vwe.num_vlm_layers

    class Prefix(torch.nn.Module):
        """`sample_actions` up to the Euler loop: the prefix and its KV cache."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image, lang_tokens, lang_masks, state):
            img_masks = [torch.ones(image.shape[0], dtype=torch.bool)]
            embs, pad_masks, att_masks = self.m.embed_prefix([image], img_masks, lang_tokens, lang_masks, state=state)
            att_2d = make_att_2d_masks(pad_masks, att_masks)
            position_ids = torch.cumsum(pad_masks, dim=1) - 1
            _, cache = self.m.vlm_with_expert.forward(attention_mask=att_2d, position_ids=position_ids,
                                                      past_key_values=None, inputs_embeds=[embs, None],
                                                      use_cache=True)
            keys = [layer.keys for layer in cache.layers]
            values = [layer.values for layer in cache.layers]
            return (pad_masks, *keys, *values)

    class Step(torch.nn.Module):
        """`denoise_step` on a DynamicCache rebuilt from the prefix's tensors."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, x_t, timestep, prefix_pad_masks, *kv):
            cache = DynamicCache()
            for i in range(n_layers):
                cache.update(kv[i], kv[n_layers + i], i)
            return self.m.denoise_step(prefix_pad_masks, cache, x_t, timestep)

    prefix, step = Prefix(model).eval(), Step(model).eval()
    kv_names = [f"past_key_{i}" for i in range(n_layers)] + [f"past_value_{i}" for i in range(n_layers)]

    # Example inputs: the first observation through LeRobot's pre-processor.
    obs = observations(args.seed)

    def lerobot_batch(joints, img, text):
        return pre({
            OBS_STATE: torch.from_numpy(joints),
            image_key: torch.from_numpy(img).permute(2, 0, 1).float() / 255.0,
            "task": text,
        })

    def graph_inputs(batch):
        images, _ = policy.prepare_images(dict(batch))
        return (images[0], batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK],
                policy.prepare_state(batch))

    with torch.no_grad():
        ex = graph_inputs(lerobot_batch(*obs[0]))
        p_out = prefix(*ex)
        P = p_out[0].shape[1]
        ex_step = (torch.randn(1, H, D), torch.tensor([1.0]), p_out[0], *p_out[1:])
        v0 = step(*ex_step)
    assert v0.shape == (1, H, D)
    kv_shape = list(p_out[1].shape)

    with torch.no_grad():
        torch.onnx.export(prefix, ex, str(bundle / "prefix.onnx"), dynamo=True, opset_version=args.opset,
                          input_names=["image", "lang_tokens", "lang_masks", "state"],
                          output_names=["prefix_pad_masks", *kv_names], external_data=False)
        torch.onnx.export(step, ex_step, str(bundle / "step.onnx"), dynamo=True, opset_version=args.opset,
                          input_names=["x_t", "timestep", "prefix_pad_masks", *kv_names],
                          output_names=["v_t"], external_data=False)
    rewritten = {}
    for f in ("prefix.onnx", "step.onnx"):
        strip(bundle / f, "ganglion export_smolvla.py")
        rewritten[f] = tract_friendly(bundle / f)
        onnx.checker.check_model(str(bundle / f))
    shutil.copyfile(vlm / "tokenizer.json", bundle / "tokenizer.json")

    # The bundle's tokenizer.json, run as the Rust `tokenizers` crate will run
    # it (encode with special tokens, truncate, pad right with the pad token),
    # must give what LeRobot's processor gave.
    raw = tokenizers.Tokenizer.from_file(str(bundle / "tokenizer.json"))
    pad_id = raw.token_to_id(pad_token)
    template = "{instruction}\n"

    def raw_tokens(text):
        ids = raw.encode(template.format(instruction=text), add_special_tokens=True).ids[:L]
        return ids + [pad_id] * (L - len(ids)), [True] * len(ids) + [False] * (L - len(ids))

    sess_p = ort.InferenceSession(str(bundle / "prefix.onnx"))
    sess_s = ort.InferenceSession(str(bundle / "step.onnx"))

    try:  # optional: the PyPI `tract` bindings, the version the runtime links
        import tract
    except ImportError:
        tract = None
    if tract is not None:
        tract_p = tract.onnx().load(str(bundle / "prefix.onnx")).into_model().into_runnable()
        tract_s = tract.onnx().load(str(bundle / "step.onnx")).into_model().into_runnable()

    def ort_chunk(inputs, noise, trace=None, on_tract=False):
        image, tokens, mask, state = (t.numpy() for t in inputs)
        if on_tract:
            outs = [t.to_numpy() for t in tract_p.run([image, tokens, mask, state])]
            x, dt = noise.copy(), -1.0 / cfg.num_steps
            for k in range(cfg.num_steps):
                t = np.array([1.0 + k * dt], dtype=np.float32)
                v = tract_s.run([x, t, *outs])[0].to_numpy()
                x = (x + np.float32(dt) * v).astype(np.float32)
            return x
        outs = sess_p.run(None, {"image": image, "lang_tokens": tokens, "lang_masks": mask, "state": state})
        feeds = {"prefix_pad_masks": outs[0], **dict(zip(kv_names, outs[1:]))}
        x, dt = noise.copy(), -1.0 / cfg.num_steps
        for k in range(cfg.num_steps):
            t = np.array([1.0 + k * dt], dtype=np.float32)  # as euler_integrate
            v = sess_s.run(None, {"x_t": x, "timestep": t, **feeds})[0]
            if trace is not None:
                trace.append({"timestep": float(t[0]), "v_t": v.reshape(-1).tolist()})
            x = (x + np.float32(dt) * v).astype(np.float32)
        return x

    gen = torch.Generator().manual_seed(args.seed + 1)
    golden_obs, parity, parity_actions, tok_mismatch = [], 0.0, 0.0, []
    parity_tract = None if tract is None else 0.0
    a_mean, a_std = np.asarray(action_mean, np.float32), np.asarray(action_std, np.float32)
    with torch.no_grad():
        for joints, img, text in obs:
            noise = torch.randn(1, H, D, generator=gen)
            batch = lerobot_batch(joints, img, text)
            policy.reset()
            actions_n = policy.predict_action_chunk(dict(batch), noise=noise.clone())
            actions = post(actions_n)
            inputs = graph_inputs(batch)
            full = model.sample_actions(*([inputs[0]], [torch.ones(1, dtype=torch.bool)]), inputs[1], inputs[2],
                                        inputs[3], noise=noise.clone())
            assert torch.equal(full[:, :, :n], actions_n), "sample_actions differs from predict_action_chunk"
            trace = [] if not golden_obs else None
            x = ort_chunk(inputs, noise.numpy(), trace)
            parity = max(parity, float(np.abs(x - full.numpy()).max()))
            parity_actions = max(parity_actions, float(np.abs(x[0, :, :n] * a_std + a_mean - actions[0].numpy()).max()))
            if tract is not None:
                xt = ort_chunk(inputs, noise.numpy(), on_tract=True)
                parity_tract = max(parity_tract, float(np.abs(xt - full.numpy()).max()))
            tokens = batch[OBS_LANGUAGE_TOKENS][0].tolist()
            mask = batch[OBS_LANGUAGE_ATTENTION_MASK][0].tolist()
            if raw_tokens(text) != (tokens, mask):
                tok_mismatch.append(text)
            golden_obs.append({
                "instruction": text,
                "joints": [float(v) for v in joints],
                "image_rgb8_b64": base64.b64encode(np.ascontiguousarray(img).tobytes()).decode(),
                "image_shape": [IMG, IMG, 3],
                "noise": noise.reshape(-1).tolist(),
                "tokens": tokens,
                "token_mask": mask,
                "n_tokens": int(sum(mask)),
                "state_normalized_padded": inputs[3][0].tolist(),
                "actions_normalized": full[0].double().tolist(),
                "actions": actions[0].double().tolist(),
            })
            if trace:
                # Diagnosis (first observation): the step graph's first
                # velocity on ONNX Runtime, and every step's timestep.
                golden_obs[-1]["timesteps"] = [s["timestep"] for s in trace]
                golden_obs[-1]["v_t_first_step_onnxruntime"] = trace[0]["v_t"]
    if tok_mismatch:
        fail(f"the bundle's tokenizer.json differs from LeRobot's processor on {tok_mismatch}")

    # How much the golden depends on each input (a test that feeds one of them
    # wrongly must fail): the chunk's change when only that input changes.
    sens = {}
    with torch.no_grad():
        inputs = graph_inputs(lerobot_batch(*obs[0]))
        noise0 = torch.tensor(golden_obs[0]["noise"]).reshape(1, H, D)
        base = model.sample_actions([inputs[0]], [torch.ones(1, dtype=torch.bool)], *inputs[1:], noise=noise0.clone())

        def delta(i, new):
            args_ = list(inputs)
            args_[i] = new
            out = model.sample_actions([args_[0]], [torch.ones(1, dtype=torch.bool)], *args_[1:], noise=noise0.clone())
            return float((out[:, :, :n] - base[:, :, :n]).abs().max())

        other = graph_inputs(lerobot_batch(*obs[1]))
        sens["image"] = delta(0, other[0])
        sens["tokens"] = delta(1, other[1])
        sens["token_mask_one_more"] = delta(2, torch.cat([inputs[2][:, :1], inputs[2][:, :-1]], dim=1) | inputs[2])
        sens["state"] = delta(3, other[3])

    ops, f64 = {}, {}
    for f in ("prefix", "step"):
        m = onnx.load(str(bundle / f"{f}.onnx"))
        ops[f] = sorted({node.op_type for node in m.graph.node})
        f64[f] = sorted({node.op_type for node in m.graph.node
                         if any(a.name == "to" and a.i == onnx.TensorProto.DOUBLE for a in node.attribute)})
        f64[f + "_double_initializers"] = sum(1 for t in m.graph.initializer if t.data_type == onnx.TensorProto.DOUBLE)

    kv_in = ",\n".join(f'    {{ name = "{k}", shape = {kv_shape}, dtype = "f32" }}' for k in kv_names)
    tokenizer_note = "SmolVLA's NewLineTaskProcessorStep appends a newline when the task lacks one"
    toml = f"""format = 2
name = "{args.name}"
version = "0.1.0"
precision = "fp32"
expected_latency_ms = 100.0
parity_tolerance = 0.0001

[text]
tokenizer = "tokenizer.json"
template = "{{instruction}}\\n"    # {tokenizer_note}
max_tokens = {L}
pad_token = "{pad_token}"
add_special_tokens = true

[dataflow]
wires = [
    {{ from = "obs.image.{CAMERA}", to = "prefix.image" }},
    {{ from = "obs.tokens", to = "prefix.lang_tokens" }},
    {{ from = "obs.token_mask", to = "prefix.lang_masks" }},
    {{ from = "obs.state", to = "prefix.state" }},
    {{ from = "prefix.prefix_pad_masks", to = "step.prefix_pad_masks" }},
    {{ from = "prefix.past_*", to = "step.past_*" }},
]

[dataflow.graphs.prefix]
file = "prefix.onnx"
inputs = [
    {{ name = "image", shape = [1, 3, {IMG}, {IMG}], dtype = "f32" }},
    {{ name = "lang_tokens", shape = [1, {L}], dtype = "i64" }},
    {{ name = "lang_masks", shape = [1, {L}], dtype = "bool" }},
    {{ name = "state", shape = [1, {cfg.max_state_dim}], dtype = "f32" }},
]
outputs = [
    {{ name = "prefix_pad_masks", shape = [1, {P}], dtype = "bool" }},
{kv_in},
]

[dataflow.graphs.step]
file = "step.onnx"
inputs = [
    {{ name = "x_t", shape = [1, {H}, {D}], dtype = "f32" }},
    {{ name = "timestep", shape = [1], dtype = "f32" }},
    {{ name = "prefix_pad_masks", shape = [1, {P}], dtype = "bool" }},
{kv_in},
]
outputs = [
    {{ name = "v_t", shape = [1, {H}, {D}], dtype = "f32" }},
]

[dataflow.head]
graph = "step"
sample = "x_t"
timestep = "timestep"
output = "v_t"
steps = {cfg.num_steps}

[dataflow.head.schedule]
kind = "flow_euler"

[joints]
names = {json.dumps(JOINTS)}
mean = {toml_list(joints_mean)}
std = {toml_list(joints_std)}

[action]
kind = "absolute"
chunk_len = {cfg.n_action_steps}
rate_hz = {args.fps}
mean = {toml_list(action_mean)}
std = {toml_list(action_std)}

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
    (bundle / "policy.toml").write_text(toml)

    sizes = {f: (bundle / f).stat().st_size for f in ("prefix.onnx", "step.onnx", "tokenizer.json")}
    params = sum(p.numel() for p in policy.parameters())
    golden = {
        "source": "lerobot",
        "policy_type": "smolvla",
        "lerobot_version": lerobot.__version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "onnx_opset": args.opset,
        "seed": args.seed,
        "parameters": params,
        "num_steps": cfg.num_steps,
        "chunk_size": H,
        "max_action_dim": D,
        "max_state_dim": cfg.max_state_dim,
        "tokenizer_max_length": L,
        "template": template,
        "pad_token": pad_token,
        "pad_token_id": pad_id,
        "prefix_len": P,
        "kv_shape": kv_shape,
        "joints": JOINTS,
        "state_mean": joints_mean,
        "state_std": joints_std,
        "action_mean": action_mean,
        "action_std": action_std,
        "onnxruntime_vs_torch_max_abs_normalized": parity,
        "onnxruntime_vs_torch_max_abs_actions": parity_actions,
        "tract_version": None if tract is None else tract.version(),
        "tract_vs_torch_max_abs_normalized": parity_tract,
        "sensitivity_max_abs_normalized": sens,
        "observations": golden_obs,
    }
    (args.out / "golden.json").write_text(json.dumps(golden) + "\n")
    print(json.dumps({"sizes": sizes, "parameters": params, "prefix_len": P, "kv_shape": kv_shape,
                      "pad_token": pad_token, "pad_id": pad_id, "parity_normalized": parity,
                      "parity_actions_rad": parity_actions, "parity_tract_normalized": parity_tract, "sensitivity": sens, "ops": ops, "float64": f64,
                      "n_tokens": [o["n_tokens"] for o in golden_obs],
                      "tract_rewrites": rewritten}, indent=1))
    print(f"onnxruntime (prefix + {cfg.num_steps} Euler steps) vs LeRobot sample_actions: "
          f"max abs {parity:.2e} (normalized), {parity_actions:.2e} rad (actions); tract (Python bindings) "
          f"{'not installed' if parity_tract is None else f'{parity_tract:.2e} (normalized)'}")


if __name__ == "__main__":
    main()
