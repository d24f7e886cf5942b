"""LeRobot 0.6.1's π0 and π0.5, small and with random weights, as split Ganglion
format-2 bundles with PyTorch goldens (run by hand; CI needs none of this):

    HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python policies/lerobot/export_pi.py \
        --family pi0 --out policies/fixtures/lerobot-pi0
    HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python policies/lerobot/export_pi.py \
        --family pi05 --out policies/fixtures/lerobot-pi05

Needs LeRobot 0.6.1 with its `pi` extra (transformers 5.5), onnx,
onnxruntime, onnxscript (the `dynamo=True` exporter), `sentencepiece` (to
train the stand-in tokenizer); optional `tract` (PyPI bindings) for the
tract figure. No Hub access:

- **Size.** `PI0Config` / `PI05Config` accept only the `gemma_300m` and
  `gemma_2b` variants, and `PaliGemmaWithExpertModel` builds its PaliGemma
  from `CONFIG_MAPPING["paligemma"]()` (SigLIP-So400m) and then sets the
  projector to 2048, the SigLIP MLP to 4304 and the vocabulary to 257152.
  Only configuration is patched, never model code: the policy module's
  `get_gemma_config` (variant name -> width/depth/heads) returns tiny
  numbers, and its `CONFIG_MAPPING["paligemma"]` returns a `PaliGemmaConfig`
  whose SigLIP and Gemma sub-configs keep tiny values for those three
  fields when LeRobot assigns the full-size ones (`Pinned` below).
- **Tokenizer.** PaliGemma's is a SentencePiece BPE (byte fallback, digits
  split, no dummy prefix, `<pad>` 0, `<eos>` 1, `<bos>` 2, `<unk>` 3, BOS
  added). A tiny one is trained here with the `sentencepiece` trainer and
  served as `google/paligemma-3b-pt-224` from a throw-away Hugging Face
  cache, so LeRobot's own `TokenizerProcessorStep` loads it by that name
  (transformers converts the `.model` to its fast tokenizer; that
  conversion, saved, is the bundle's `tokenizer.json`).

Writes under `--out` (bundle/ must not exist or be empty): `bundle/`
(prefix.onnx, step.onnx, tokenizer.json, policy.toml with empty digests),
`golden.json`, `tokenizer/` (the SentencePiece model and config LeRobot
loaded; small). See the fixture READMEs for the tensors.
"""

from __future__ import annotations

import argparse
import base64
import io
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# LeRobot asks for "google/paligemma-3b-pt-224" by name: a private cache
# answers, set before huggingface_hub reads its constants.
_HF_CACHE = tempfile.mkdtemp(prefix="ganglion-pi-hf-")
os.environ["HF_HUB_CACHE"] = _HF_CACHE
sys.path.insert(0, str(Path(__file__).resolve().parent))

from export_diffusion import affine, strip, toml_list  # noqa: E402
from export_smolvla import CAMERA, CORPUS, IMG, JOINTS, tract_friendly  # noqa: E402

PALIGEMMA = "google/paligemma-3b-pt-224"
PAD, EOS, BOS, UNK, MASK = "<pad>", "<eos>", "<bos>", "<unk>", "<mask>"


def fail(msg: str) -> None:
    print(f"export_pi.py: {msg}", file=sys.stderr)
    sys.exit(2)


def make_tokenizer(dst: Path, vocab: int) -> None:
    """A tiny SentencePiece BPE with Gemma's trainer settings and special ids,
    trained on instruction lines, π0.5 prompts and the numbers 0-255, plus a
    `tokenizer_config.json` naming transformers' `GemmaTokenizer`."""
    import sentencepiece as spm

    lines = [s for s in CORPUS.splitlines() if s]
    prompts = [f"Task: {s}, State: 12 128 255 0 7 64 -1;\nAction: " for s in lines]
    numbers = [" ".join(str(i) for i in range(k, 256, 7)) for k in range(7)]
    model = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter((lines + prompts + numbers) * 4), model_writer=model, model_type="bpe",
        vocab_size=vocab, hard_vocab_limit=False, byte_fallback=True, split_digits=True,
        add_dummy_prefix=False, normalization_rule_name="identity", remove_extra_whitespaces=False,
        allow_whitespace_only_pieces=True, character_coverage=1.0, num_threads=1, seed_sentencepiece_size=100000,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece=PAD, eos_piece=EOS, bos_piece=BOS, unk_piece=UNK,
        user_defined_symbols=[MASK], minloglevel=2)
    dst.mkdir(parents=True, exist_ok=True)
    (dst / "tokenizer.model").write_bytes(model.getvalue())
    cfg = {"tokenizer_class": "GemmaTokenizer", "add_bos_token": True, "add_eos_token": False,
           "bos_token": BOS, "eos_token": EOS, "pad_token": PAD, "unk_token": UNK, "mask_token": MASK,
           "model_max_length": 1000000}
    (dst / "tokenizer_config.json").write_text(json.dumps(cfg, indent=1) + "\n")


def serve_as_paligemma(src: Path, tokenizer_json: Path) -> None:
    """Puts `src`'s files and `tokenizer_json` into the private cache as the
    Hub repo PALIGEMMA."""
    repo = Path(_HF_CACHE) / ("models--" + PALIGEMMA.replace("/", "--"))
    rev = "0" * 40
    snap = repo / "snapshots" / rev
    snap.mkdir(parents=True, exist_ok=True)
    (repo / "refs").mkdir(exist_ok=True)
    (repo / "refs" / "main").write_text(rev)
    for f in src.iterdir():
        shutil.copyfile(f, snap / f.name)
    shutil.copyfile(tokenizer_json, snap / "tokenizer.json")
    # AutoTokenizer reads the repo's config.json first (only its model type).
    (snap / "config.json").write_text(json.dumps({"model_type": "paligemma"}) + "\n")


def tiny_configs(modeling, args, vocab: int) -> None:
    """Patches the policy module's configuration tables (not its code)."""
    from transformers import AutoModel, GemmaConfig, GemmaModel, PaliGemmaConfig, SiglipVisionConfig, SiglipVisionModel
    from transformers.models.auto import CONFIG_MAPPING

    def gemma(variant: str):
        vlm = variant == "gemma_2b"  # the configs' PaliGemma; gemma_300m is the action expert
        w, mlp = (args.width, args.mlp) if vlm else (args.expert_width, args.expert_mlp)
        return modeling.GemmaConfig(width=w, depth=args.depth, mlp_dim=mlp, num_heads=args.heads,
                                    num_kv_heads=args.kv_heads, head_dim=args.head_dim)

    def pinned(base, pins: dict):
        class Pinned(base):
            """Keeps `pins` when LeRobot assigns its full-size values."""

            def __setattr__(self, key, value):
                super().__setattr__(key, pins.get(key, value))

        # Same name as the base: transformers' Auto classes map configs to
        # models by class; `register` below adds these two to that table.
        Pinned.__name__ = Pinned.__qualname__ = base.__name__
        return Pinned

    vision_cls = pinned(SiglipVisionConfig, {"intermediate_size": 2 * args.vision_width, "projection_dim": args.width})
    text_cls = pinned(GemmaConfig, {"vocab_size": vocab})
    AutoModel.register(vision_cls, SiglipVisionModel, exist_ok=True)
    AutoModel.register(text_cls, GemmaModel, exist_ok=True)

    def paligemma():
        vision = vision_cls(hidden_size=args.vision_width, intermediate_size=2 * args.vision_width,
                            num_hidden_layers=args.vision_layers, num_attention_heads=2, patch_size=args.patch,
                            image_size=IMG, vision_use_head=False)
        text = text_cls(vocab_size=vocab, hidden_size=args.width, num_hidden_layers=args.depth,
                        intermediate_size=args.mlp, num_attention_heads=args.heads,
                        num_key_value_heads=args.kv_heads, head_dim=args.head_dim, pad_token_id=0)
        return PaliGemmaConfig(vision_config=vision, text_config=text, vocab_size=vocab,
                               projection_dim=args.width, hidden_size=args.width, image_token_index=vocab)

    class Mapping:
        def __getitem__(self, key):
            return paligemma if key == "paligemma" else CONFIG_MAPPING[key]

    modeling.get_gemma_config = gemma
    modeling.CONFIG_MAPPING = Mapping()


def observations(seed: int, family: str, q01, q99):
    """Three fixed observations: joints (radians), a 64x64 RGB u8 image (a
    coloured square on a noisy background), an instruction. π0: plain; digits
    and non-ASCII; one over 48 tokens (truncated). π0.5: `_` and surrounding
    blanks (cleaned by LeRobot); digits and non-ASCII; one joint below q01
    and one above q99 (bins -1 and 255 in the prompt)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    if family == "pi0":
        instructions = [
            "reach the red target",
            "Move 3 cm up, then grasp the crème brûlée spoon!",
            "pick up the green block and place it in the bowl, then push the button, open the drawer, "
            "close the drawer, lift the cup, rotate the wrist, open the gripper and then go back to the home "
            "position slowly please",
        ]
    else:
        instructions = [
            "  pick_up the red_cube\n",
            "Move 3 cm up, then grasp the crème brûlée spoon!",
            "stack_the_blocks\nthen open the gripper",
        ]
    out = []
    for k, text in enumerate(instructions):
        img = rng.integers(0, 60, size=(IMG, IMG, 3), dtype=np.uint8)
        y, x = 8 + 14 * k, 40 - 12 * k
        img[y:y + 14, x:x + 14] = [(220, 30, 30), (30, 200, 40), (40, 60, 230)][k]
        joints = (np.array([0.0, -0.5, 0.6, 0.3, 0.0, 0.4]) + rng.normal(0, 0.3, 6)).astype(np.float32)
        if family == "pi05" and k == 2:
            joints[1] = np.float32(q01[1] - 0.2)
            joints[4] = np.float32(q99[4] + 0.3)
        out.append((joints, img, text))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--family", required=True, choices=["pi0", "pi05"])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--name", default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--vocab", type=int, default=400)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--mlp", type=int, default=128)
    ap.add_argument("--expert-width", type=int, default=32)
    ap.add_argument("--expert-mlp", type=int, default=64)
    ap.add_argument("--depth", type=int, default=2)
    ap.add_argument("--heads", type=int, default=8)  # compute_layer_complete (training) hard-codes 8 heads
    ap.add_argument("--kv-heads", type=int, default=1)
    ap.add_argument("--head-dim", type=int, default=16)
    ap.add_argument("--vision-width", type=int, default=32)
    ap.add_argument("--vision-layers", type=int, default=2)
    ap.add_argument("--patch", type=int, default=8)
    ap.add_argument("--max-tokens", type=int, default=None, help="default: the config's (48 for pi0, 200 for pi05)")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--opset", type=int, default=18)
    args = ap.parse_args()
    pi05 = args.family == "pi05"
    name = args.name or f"lerobot-{args.family}-fixture"

    import numpy as np
    import onnx
    import onnxruntime as ort
    import tokenizers
    import torch
    import transformers
    import lerobot
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
    from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.utils.constants import ACTION, OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS, OBS_STATE
    from transformers import AutoTokenizer, DynamicCache

    if pi05:
        from lerobot.policies.pi05 import modeling_pi05 as modeling
        from lerobot.policies.pi05.configuration_pi05 import PI05Config as Config
        from lerobot.policies.pi05.modeling_pi05 import PI05Policy as Policy
    else:
        from lerobot.policies.pi0 import modeling_pi0 as modeling
        from lerobot.policies.pi0.configuration_pi0 import PI0Config as Config
        from lerobot.policies.pi0.modeling_pi0 import PI0Policy as Policy

    bundle, tok_dir = args.out / "bundle", args.out / "tokenizer"
    if bundle.exists() and any(bundle.iterdir()):
        fail(f"{bundle}: exists and is not empty")
    bundle.mkdir(parents=True, exist_ok=True)
    if tok_dir.exists():
        shutil.rmtree(tok_dir)
    make_tokenizer(tok_dir, args.vocab)
    # transformers' conversion of the SentencePiece model (GemmaTokenizer from
    # tokenizer.model), saved before any call (a call leaves its padding and
    # truncation settings in the backend). The Hub repo LeRobot asks for then
    # holds tokenizer.json, tokenizer.model and tokenizer_config.json, as
    # PaliGemma's does; transformers loads tokenizer.json from it.
    converted = AutoTokenizer.from_pretrained(str(tok_dir))
    with tempfile.TemporaryDirectory() as d:
        converted.save_pretrained(d)
        shutil.copyfile(Path(d) / "tokenizer.json", bundle / "tokenizer.json")
    vocab = len(converted)
    if vocab <= 256 + 5:
        fail(f"the converted tokenizer has {vocab} tokens: the SentencePiece model was not read")
    serve_as_paligemma(tok_dir, bundle / "tokenizer.json")
    tiny_configs(modeling, args, vocab)

    n = len(JOINTS)
    image_key = f"observation.images.{CAMERA}"
    extra = {} if args.max_tokens is None else {"tokenizer_max_length": args.max_tokens}
    cfg = Config(
        input_features={
            OBS_STATE: PolicyFeature(FeatureType.STATE, (n,)),
            image_key: PolicyFeature(FeatureType.VISUAL, (3, IMG, IMG)),
        },
        output_features={ACTION: PolicyFeature(FeatureType.ACTION, (n,))},
        image_resolution=(IMG, IMG),  # identity at 64x64: no resize-with-pad
        max_state_dim=32,
        max_action_dim=32,
        chunk_size=50,
        n_action_steps=50,
        num_inference_steps=10,
        dtype="float32",
        device="cpu",
        push_to_hub=False,
        **extra,
    )
    # SO-101 joints in radians. π0: mean/std (its default MEAN_STD); π0.5:
    # 1st/99th percentiles (its default QUANTILES); the action a little off.
    s_mean = torch.tensor([0.0, -0.5, 0.6, 0.3, 0.0, 0.4])
    s_std = torch.tensor([0.6, 0.5, 0.5, 0.5, 0.8, 0.3])
    s_q01 = torch.tensor([-1.5, -1.6, -0.5, -0.9, -2.0, 0.0])
    s_q99 = torch.tensor([1.5, 0.7, 1.7, 1.4, 2.0, 1.2])
    stats = {
        OBS_STATE: {"mean": s_mean, "std": s_std, "q01": s_q01, "q99": s_q99},
        ACTION: {"mean": s_mean + 0.05, "std": s_std * 1.1, "q01": s_q01 - 0.05, "q99": s_q99 + 0.1},
    }
    mode = cfg.normalization_mapping
    state_mode, action_mode = mode["STATE"], mode["ACTION"]
    assert mode["VISUAL"] == NormalizationMode.IDENTITY
    assert state_mode == action_mode == (NormalizationMode.QUANTILES if pi05 else NormalizationMode.MEAN_STD)

    torch.manual_seed(args.seed)
    policy = Policy(cfg).eval()
    model = policy.model
    adarms = 0
    if pi05:
        # π0.5's adaptive RMSNorms (the timestep conditioning of the action
        # expert) start with zero weights (PiGemmaRMSNorm zero-inits
        # `dense.weight`), so a random π0.5 would ignore t and a golden could
        # not tell one timestep convention from another: draw them like any
        # nn.Linear (seeded). Weights only; the model code is LeRobot's.
        from lerobot.policies.pi_gemma import PiGemmaRMSNorm

        torch.manual_seed(args.seed + 2)
        for m in model.modules():
            if isinstance(m, PiGemmaRMSNorm) and m.dense is not None:
                m.dense.reset_parameters()
                adarms += 1
    pwe = model.paligemma_with_expert
    emb = pwe.paligemma.model.language_model.embed_tokens
    assert emb.num_embeddings == vocab, f"embedding table {emb.num_embeddings} rows, tokenizer {vocab}"
    pre, post = make_pre_post_processors(cfg, dataset_stats=stats)
    if len(next(s for s in pre.steps if type(s).__name__ == "TokenizerProcessorStep").input_tokenizer) != vocab:
        fail("LeRobot's processor loaded another tokenizer than the bundle's")
    norm = next(s for s in pre.steps if hasattr(s, "_tensor_stats"))
    eps = float(norm.eps)
    tok_step = next(s for s in pre.steps if type(s).__name__ == "TokenizerProcessorStep")
    hf_tok = tok_step.input_tokenizer
    pad_token = hf_tok.pad_token
    L, D, H = cfg.tokenizer_max_length, cfg.max_action_dim, cfg.chunk_size
    n_layers = args.depth

    class Prefix(torch.nn.Module):
        """`sample_actions` up to the Euler loop: the prefix and its KV cache."""

        def __init__(self, m):
            super().__init__()
            self.m = m

        def forward(self, image, lang_tokens, lang_masks):
            img_masks = [torch.ones(image.shape[0], dtype=torch.bool)]
            embs, pad_masks, att_masks = self.m.embed_prefix([image], img_masks, lang_tokens, lang_masks)
            att_4d = prepare_attention_masks_4d(make_att_2d_masks(pad_masks, att_masks))
            position_ids = torch.cumsum(pad_masks, dim=1) - 1
            self.m.paligemma_with_expert.paligemma.model.language_model.config._attn_implementation = "eager"
            _, cache = self.m.paligemma_with_expert.forward(attention_mask=att_4d, position_ids=position_ids,
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

        def forward(self, x_t, timestep, prefix_pad_masks, *rest):
            state, kv = (None, rest) if pi05 else (rest[0], rest[1:])
            cache = DynamicCache()
            for i in range(n_layers):
                cache.update(kv[i], kv[n_layers + i], i)
            if pi05:
                return self.m.denoise_step(prefix_pad_masks, cache, x_t, timestep)
            return self.m.denoise_step(state, prefix_pad_masks, cache, x_t, timestep)

    prefix, step = Prefix(model).eval(), Step(model).eval()
    kv_names = [f"past_key_{i}" for i in range(n_layers)] + [f"past_value_{i}" for i in range(n_layers)]
    state_in = [] if pi05 else ["state"]

    q01, q99 = s_q01.numpy(), s_q99.numpy()
    obs = observations(args.seed, args.family, q01, q99)

    def lerobot_batch(joints, img, text):
        return pre({
            OBS_STATE: torch.from_numpy(joints),
            image_key: torch.from_numpy(img).permute(2, 0, 1).float() / 255.0,
            "task": text,
        })

    def graph_inputs(batch):
        """(image in [-1, 1], tokens, mask, padded state or None) as the model consumes them."""
        images, _ = policy._preprocess_images(dict(batch))
        state = None if pi05 else policy.prepare_state(batch)
        return images[0], batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK], state

    def sample(inputs, noise):
        image, tokens, mask, state = inputs
        args_ = [[image], [torch.ones(1, dtype=torch.bool)], tokens, mask] + ([] if pi05 else [state])
        return model.sample_actions(*args_, noise=noise.clone())

    with torch.no_grad():
        ex = graph_inputs(lerobot_batch(*obs[0]))
        p_out = prefix(*ex[:3])
        P = p_out[0].shape[1]
        ex_step = (torch.randn(1, H, D), torch.tensor([1.0]), p_out[0], *([] if pi05 else [ex[3]]), *p_out[1:])
        v0 = step(*ex_step)
    assert v0.shape == (1, H, D)
    kv_shape = list(p_out[1].shape)

    with torch.no_grad():
        torch.onnx.export(prefix, ex[:3], str(bundle / "prefix.onnx"), dynamo=True, opset_version=args.opset,
                          input_names=["image", "lang_tokens", "lang_masks"],
                          output_names=["prefix_pad_masks", *kv_names], external_data=False)
        torch.onnx.export(step, ex_step, str(bundle / "step.onnx"), dynamo=True, opset_version=args.opset,
                          input_names=["x_t", "timestep", "prefix_pad_masks", *state_in, *kv_names],
                          output_names=["v_t"], external_data=False)
    rewritten = {}
    for f in ("prefix.onnx", "step.onnx"):
        strip(bundle / f, "ganglion export_pi.py")
        rewritten[f] = tract_friendly(bundle / f)
        onnx.checker.check_model(str(bundle / f))

    # The bundle's tokenizer.json, run as the Rust `tokenizers` crate will run
    # it (encode with special tokens, truncate, pad right with the pad token),
    # must give what LeRobot's processor gave.
    raw = tokenizers.Tokenizer.from_file(str(bundle / "tokenizer.json"))
    tj = json.loads((bundle / "tokenizer.json").read_text())
    if tj.get("padding") is not None or tj.get("truncation") is not None:
        fail("tokenizer.json carries padding/truncation settings")
    pad_id = raw.token_to_id(pad_token)
    template = "Task: {instruction}, State: {state};\nAction: " if pi05 else "{instruction}\n"
    bins = np.linspace(-1, 1, 256 + 1)[:-1]

    def prompt(text, state_norm):
        """The manifest's template as the runtime will fill it."""
        if not pi05:
            return text if text.endswith("\n") else template.format(instruction=text)
        clean = text.strip().replace("_", " ").replace("\n", " ")
        digits = np.digitize(state_norm, bins=bins) - 1
        return template.format(instruction=clean, state=" ".join(map(str, digits)))

    def raw_tokens(text):
        ids = raw.encode(text, add_special_tokens=True).ids[:L]
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

    steps = cfg.num_inference_steps

    def onnx_chunk(inputs, noise, trace=None, on_tract=False, t_f32_accumulated=False):
        """prefix once, then `steps` Euler steps as LeRobot's euler_integrate:
        t = 1 + k * dt (f64, then f32), x <- x + dt * v."""
        image, tokens, mask, state = (None if t is None else t.numpy() for t in inputs)
        if on_tract:
            outs = [t.to_numpy() for t in tract_p.run([image, tokens, mask])]
        else:
            outs = sess_p.run(None, {"image": image, "lang_tokens": tokens, "lang_masks": mask})
        x, dt = noise.copy(), -1.0 / steps
        t32 = np.float32(1.0)
        for k in range(steps):
            t = np.array([t32 if t_f32_accumulated else 1.0 + k * dt], dtype=np.float32)
            extra_in = [] if pi05 else [state]
            if on_tract:
                v = tract_s.run([x, t, outs[0], *extra_in, *outs[1:]])[0].to_numpy()
            else:
                feeds = {"x_t": x, "timestep": t, "prefix_pad_masks": outs[0], **dict(zip(kv_names, outs[1:]))}
                if not pi05:
                    feeds["state"] = state
                v = sess_s.run(None, feeds)[0]
            if trace is not None:
                trace.append({"timestep": float(t[0]), "v_t": v.reshape(-1).tolist()})
            x = (x + np.float32(dt) * v).astype(np.float32)
            t32 = np.float32(t32 + np.float32(dt))
        return x

    # The two timestep conventions (LeRobot: 1 + k*dt in f64 cast to f32;
    # f32 accumulation t += dt): the same f32 values or not.
    dt = -1.0 / steps
    t_lerobot = [float(np.float32(1.0 + k * dt)) for k in range(steps)]
    t_acc, t32 = [], np.float32(1.0)
    for _ in range(steps):
        t_acc.append(float(t32))
        t32 = np.float32(t32 + np.float32(dt))
    t_differ = [k for k in range(steps) if t_lerobot[k] != t_acc[k]]

    gen = torch.Generator().manual_seed(args.seed + 1)
    golden_obs, parity, parity_actions, parity_acc, tok_mismatch, prompt_mismatch = [], 0.0, 0.0, 0.0, [], []
    parity_tract = None if tract is None else 0.0
    bin_margin = None
    (a_center, a_half) = affine(action_mode.name, norm._tensor_stats[ACTION], eps, n, output=True)
    a_center, a_half = np.asarray(a_center, np.float32), np.asarray(a_half, np.float32)
    with torch.no_grad():
        for joints, img, text in obs:
            noise = torch.randn(1, H, D, generator=gen)
            batch = lerobot_batch(joints, img, text)
            policy.reset()
            actions_n = policy.predict_action_chunk(dict(batch), noise=noise.clone())
            actions = post(actions_n)
            inputs = graph_inputs(batch)
            full = sample(inputs, noise)
            assert torch.equal(full[:, :, :n], actions_n), "sample_actions differs from predict_action_chunk"
            trace = [] if not golden_obs else None
            x = onnx_chunk(inputs, noise.numpy(), trace)
            parity = max(parity, float(np.abs(x - full.numpy()).max()))
            parity_actions = max(parity_actions,
                                 float(np.abs(x[0, :, :n] * a_half + a_center - actions[0].numpy()).max()))
            xa = onnx_chunk(inputs, noise.numpy(), t_f32_accumulated=True)
            parity_acc = max(parity_acc, float(np.abs(xa - full.numpy()).max()))
            if tract is not None:
                xt = onnx_chunk(inputs, noise.numpy(), on_tract=True)
                parity_tract = max(parity_tract, float(np.abs(xt - full.numpy()).max()))
            tokens = batch[OBS_LANGUAGE_TOKENS][0].tolist()
            mask = batch[OBS_LANGUAGE_ATTENTION_MASK][0].tolist()
            # The normalized state LeRobot's processor saw (unpadded: LeRobot
            # pads in the model, after the prompt was written).
            state_norm = batch[OBS_STATE][0].numpy()
            assert state_norm.shape == (n,), state_norm.shape
            full_prompt = prompt(text, state_norm)
            if raw_tokens(full_prompt) != (tokens, mask):
                tok_mismatch.append(text)
            hf_ids = hf_tok(full_prompt, max_length=L, truncation=True, padding="max_length",
                            padding_side="right")["input_ids"]
            if hf_ids != tokens:
                prompt_mismatch.append(text)
            entry = {
                "instruction": text,
                "joints": [float(v) for v in joints],
                "image_rgb8_b64": base64.b64encode(np.ascontiguousarray(img).tobytes()).decode(),
                "image_shape": [IMG, IMG, 3],
                "noise": noise.reshape(-1).tolist(),
                "tokens": tokens,
                "token_mask": mask,
                "n_tokens": int(sum(mask)),
                "state_normalized": [float(v) for v in state_norm],
            }
            if pi05:
                edges = np.abs(state_norm.astype(np.float64)[:, None] - bins[None, :]).min()
                bin_margin = edges if bin_margin is None else min(bin_margin, edges)
                entry["prompt"] = full_prompt
                entry["state_bins"] = (np.digitize(state_norm, bins=bins) - 1).tolist()
            else:
                entry["state_normalized_padded"] = inputs[3][0].tolist()
            entry["actions_normalized"] = full[0].double().tolist()
            entry["actions"] = actions[0].double().tolist()
            if trace:
                entry["timesteps"] = [s["timestep"] for s in trace]
                entry["v_t_first_step_onnxruntime"] = trace[0]["v_t"]
            golden_obs.append(entry)
    if tok_mismatch:
        fail(f"the bundle's tokenizer.json differs from LeRobot's processor on {tok_mismatch}")
    if prompt_mismatch:
        fail(f"the manifest's template differs from LeRobot's prompt on {prompt_mismatch}")

    # How much the golden depends on each input (a test feeding one of them
    # wrongly must fail): the chunk's change when only that input changes.
    sens = {}
    with torch.no_grad():
        inputs = graph_inputs(lerobot_batch(*obs[0]))
        noise0 = torch.tensor(golden_obs[0]["noise"]).reshape(1, H, D)
        base = sample(inputs, noise0)

        def delta(i, new):
            args_ = list(inputs)
            args_[i] = new
            return float((sample(args_, noise0)[:, :, :n] - base[:, :, :n]).abs().max())

        other = graph_inputs(lerobot_batch(*obs[1]))
        sens["image"] = delta(0, other[0])
        sens["tokens"] = delta(1, other[1])
        sens["token_mask_one_more"] = delta(2, torch.cat([inputs[2][:, :1], inputs[2][:, :-1]], dim=1) | inputs[2])
        if not pi05:
            sens["state"] = delta(3, other[3])
        else:
            # One joint's bin off by one in the prompt (what a digitization
            # slip in the runtime would do).
            o0 = golden_obs[0]
            bins0 = list(o0["state_bins"])
            bins0[0] += 1
            text0 = template.format(instruction=o0["prompt"].split("Task: ")[1].split(", State: ")[0],
                                    state=" ".join(map(str, bins0)))
            ids, msk = raw_tokens(text0)
            sens["state_bin_plus_one"] = delta(1, torch.tensor([ids])) if sum(msk) == o0["n_tokens"] else None
        # The step graph's dependence on t (one Euler step, t = 1 vs 0.9).
        p0 = prefix(*inputs[:3])
        st = [] if pi05 else [inputs[3]]
        v1 = step(noise0, torch.tensor([1.0]), p0[0], *st, *p0[1:])
        v2 = step(noise0, torch.tensor([0.9]), p0[0], *st, *p0[1:])
        sens["timestep_v_t_1_vs_0.9"] = float((v1 - v2).abs().max())

    ops, f64 = {}, {}
    for f in ("prefix", "step"):
        m = onnx.load(str(bundle / f"{f}.onnx"))
        ops[f] = sorted({node.op_type for node in m.graph.node})
        f64[f] = sorted({node.op_type for node in m.graph.node
                         if any(a.name == "to" and a.i == onnx.TensorProto.DOUBLE for a in node.attribute)})
        f64[f + "_double_initializers"] = sum(1 for t in m.graph.initializer if t.data_type == onnx.TensorProto.DOUBLE)

    j_center, j_half = affine(state_mode.name, norm._tensor_stats[OBS_STATE], eps, n, output=False)
    if pi05:
        def stat_lines(key):
            st = norm._tensor_stats[key]
            return (f'normalization = "quantiles"\nq01 = {toml_list(st["q01"].double().tolist())}\n'
                    f'q99 = {toml_list(st["q99"].double().tolist())}')
        text_extra = ('state_bins = 256                  # np.digitize(state, linspace(-1, 1, 257)[:-1]) - 1, '
                      'the 6 normalized joints\nclean_instruction = true          # strip(), "_" and "\\n" -> " "')
        template_toml = 'template = "Task: {instruction}, State: {state};\\nAction: "'
        state_wire = ""
    else:
        def stat_lines(key):
            st = norm._tensor_stats[key]
            std = st["std"].double().numpy()
            return (f'mean = {toml_list(st["mean"].double().tolist())}\n'
                    f'std = {toml_list((std if key == ACTION else std + eps).tolist())}')
        text_extra = ""
        template_toml = ('template = "{instruction}\\n"    # Pi0NewLineProcessor appends a newline when the '
                         'task lacks one')
        state_wire = '    { from = "obs.state", to = "step.state" },\n'
    kv_decl = ",\n".join(f'    {{ name = "{k}", shape = {kv_shape}, dtype = "f32" }}' for k in kv_names)
    state_decl = "" if pi05 else f'    {{ name = "state", shape = [1, {cfg.max_state_dim}], dtype = "f32" }},\n'
    toml = f"""format = 2
name = "{name}"
version = "0.1.0"
precision = "fp32"
expected_latency_ms = 100.0
parity_tolerance = 0.0001

[text]
tokenizer = "tokenizer.json"
{template_toml}
max_tokens = {L}
pad_token = "{pad_token}"
add_special_tokens = true          # PaliGemma's <bos> first
{text_extra}

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
]
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
{state_decl}{kv_decl},
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
{stat_lines(OBS_STATE)}

[action]
kind = "absolute"
chunk_len = {cfg.n_action_steps}
rate_hz = {args.fps}
{stat_lines(ACTION)}

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
    (bundle / "policy.toml").write_text(toml.replace("\n\n\n", "\n\n"))

    sizes = {f: (bundle / f).stat().st_size for f in ("prefix.onnx", "step.onnx", "tokenizer.json")}
    params = sum(p.numel() for p in policy.parameters())
    golden = {
        "source": "lerobot",
        "policy_type": args.family,
        "lerobot_version": lerobot.__version__,
        "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "tokenizers_version": tokenizers.__version__,
        "onnx_opset": args.opset,
        "seed": args.seed,
        "parameters": params,
        "adarms_norms_redrawn": adarms,
        "num_steps": steps,
        "chunk_size": H,
        "max_action_dim": D,
        "max_state_dim": cfg.max_state_dim,
        "tokenizer_max_length": L,
        "template": template,
        "pad_token": pad_token,
        "pad_token_id": pad_id,
        "bos_token_id": raw.token_to_id(BOS),
        "prefix_len": P,
        "kv_shape": kv_shape,
        "joints": JOINTS,
        "normalization": state_mode.name,
        "state_affine_center": j_center,
        "state_affine_half_range_or_std": j_half,
        "action_affine_center": a_center.tolist(),
        "action_affine_half_range_or_std": a_half.tolist(),
        "timesteps_lerobot": t_lerobot,
        "timesteps_f32_accumulated_differ_at": t_differ,
        "onnxruntime_vs_torch_max_abs_normalized": parity,
        "onnxruntime_vs_torch_max_abs_actions": parity_actions,
        "onnxruntime_f32_accumulated_t_vs_torch_max_abs_normalized": parity_acc,
        "tract_version": None if tract is None else tract.version(),
        "tract_vs_torch_max_abs_normalized": parity_tract,
        "state_bin_edge_margin": bin_margin,
        "sensitivity_max_abs_normalized": sens,
        "observations": golden_obs,
    }
    if not pi05:
        del golden["state_bin_edge_margin"]
    (args.out / "golden.json").write_text(json.dumps(golden) + "\n")
    print(json.dumps({"sizes": sizes, "parameters": params, "prefix_len": P, "kv_shape": kv_shape, "vocab": vocab,
                      "pad_token": pad_token, "pad_id": pad_id, "parity_normalized": parity,
                      "parity_actions": parity_actions, "parity_f32_accumulated_t": parity_acc,
                      "t_differ": t_differ, "parity_tract_normalized": parity_tract, "sensitivity": sens,
                      "ops": ops, "float64": f64, "n_tokens": [o["n_tokens"] for o in golden_obs],
                      "prompts": [o.get("prompt") for o in golden_obs], "bin_margin": bin_margin,
                      "tract_rewrites": rewritten}, indent=1))
    print(f"onnxruntime (prefix + {steps} Euler steps) vs LeRobot sample_actions: max abs {parity:.2e} "
          f"(normalized), {parity_actions:.2e} rad (actions); tract "
          f"{'not installed' if parity_tract is None else f'{parity_tract:.2e} (normalized)'}")
    shutil.rmtree(_HF_CACHE, ignore_errors=True)


if __name__ == "__main__":
    main()
