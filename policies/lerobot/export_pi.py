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

from export_diffusion import affine, toml_list  # noqa: E402
from vla_export import (CAMERA, CORPUS, IMG, JOINTS, PLAIN_INSTRUCTIONS, Runners, euler, export_graphs,  # noqa: E402
                        golden_header, golden_observation, golden_text_fields, graph_base, graph_ops,
                        input_sensitivity, kv_cache, kv_names, lerobot_batch, lerobot_chunk, manifest,
                        mean_std_lines, observations, padded_tokens, prefix_outputs, tokenizer_of)

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


def family_observations(seed: int, family: str, q01, q99):
    """The three observations of `vla_export.observations`. π0: the plain
    instructions (plain; digits and non-ASCII; one over 48 tokens,
    truncated). π0.5: `_` and surrounding blanks (cleaned by LeRobot); digits
    and non-ASCII; one joint below q01 and one above q99 (bins -1 and 255 in
    the prompt)."""
    import numpy as np

    if family == "pi0":
        return observations(seed, PLAIN_INSTRUCTIONS)
    out = observations(seed, [
        "  pick_up the red_cube\n",
        "Move 3 cm up, then grasp the crème brûlée spoon!",
        "stack_the_blocks\nthen open the gripper",
    ])
    joints = out[2][0]
    joints[1] = np.float32(q01[1] - 0.2)
    joints[4] = np.float32(q99[4] + 0.3)
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
    import tokenizers
    import torch
    from lerobot.configs.types import FeatureType, NormalizationMode, PolicyFeature
    from lerobot.policies.common.vla_utils import make_att_2d_masks, prepare_attention_masks_4d
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.utils.constants import ACTION, OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS, OBS_STATE
    from transformers import AutoTokenizer

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
    if len(tokenizer_of(pre)) != vocab:
        fail("LeRobot's processor loaded another tokenizer than the bundle's")
    norm = next(s for s in pre.steps if hasattr(s, "_tensor_stats"))
    eps = float(norm.eps)
    hf_tok = tokenizer_of(pre)
    pad_token = hf_tok.pad_token
    L, D, H = cfg.tokenizer_max_length, cfg.max_action_dim, cfg.chunk_size
    n_layers = args.depth

    class Prefix(graph_base()):
        """`sample_actions` up to the Euler loop: the prefix and its KV cache."""

        def forward(self, image, lang_tokens, lang_masks):
            img_masks = [torch.ones(image.shape[0], dtype=torch.bool)]
            embs, pad_masks, att_masks = self.m.embed_prefix([image], img_masks, lang_tokens, lang_masks)
            att_4d = prepare_attention_masks_4d(make_att_2d_masks(pad_masks, att_masks))
            position_ids = torch.cumsum(pad_masks, dim=1) - 1
            self.m.paligemma_with_expert.paligemma.model.language_model.config._attn_implementation = "eager"
            _, cache = self.m.paligemma_with_expert.forward(attention_mask=att_4d, position_ids=position_ids,
                                                            past_key_values=None, inputs_embeds=[embs, None],
                                                            use_cache=True)
            return prefix_outputs(pad_masks, cache)

    class Step(graph_base()):
        """`denoise_step` on a DynamicCache rebuilt from the prefix's tensors."""

        def forward(self, x_t, timestep, prefix_pad_masks, *rest):
            state, kv = (None, rest) if pi05 else (rest[0], rest[1:])
            cache = kv_cache(kv, n_layers)
            if pi05:
                return self.m.denoise_step(prefix_pad_masks, cache, x_t, timestep)
            return self.m.denoise_step(state, prefix_pad_masks, cache, x_t, timestep)

    prefix, step = Prefix(model).eval(), Step(model).eval()
    kv = kv_names(n_layers)
    state_in = [] if pi05 else ["state"]

    q01, q99 = s_q01.numpy(), s_q99.numpy()
    obs = family_observations(args.seed, args.family, q01, q99)

    def batch_of(joints, img, text):
        return lerobot_batch(pre, image_key, joints, img, text)

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
        ex = graph_inputs(batch_of(*obs[0]))
        p_out = prefix(*ex[:3])
        P = p_out[0].shape[1]
        ex_step = (torch.randn(1, H, D), torch.tensor([1.0]), p_out[0], *([] if pi05 else [ex[3]]), *p_out[1:])
        v0 = step(*ex_step)
    assert v0.shape == (1, H, D)
    kv_shape = list(p_out[1].shape)

    rewritten = export_graphs(bundle, prefix, ex[:3], ["image", "lang_tokens", "lang_masks"], step, ex_step,
                              ["x_t", "timestep", "prefix_pad_masks", *state_in, *kv], kv, args.opset,
                              "ganglion export_pi.py")

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
        return padded_tokens(raw, text, L, pad_id)

    run = Runners(bundle)
    tract = run.tract
    steps = cfg.num_inference_steps

    def onnx_chunk(inputs, noise, trace=None, on_tract=False, t_f32_accumulated=False):
        """prefix once, then `steps` Euler steps (`vla_export.euler`)."""
        image, tokens, mask, state = (None if t is None else t.numpy() for t in inputs)
        extra_in = [] if pi05 else [state]
        if on_tract:
            outs = [t.to_numpy() for t in run.tract_p.run([image, tokens, mask])]

            def velocity(x, t):
                return run.tract_s.run([x, t, outs[0], *extra_in, *outs[1:]])[0].to_numpy()
        else:
            outs = run.sess_p.run(None, {"image": image, "lang_tokens": tokens, "lang_masks": mask})

            def velocity(x, t):
                feeds = {"x_t": x, "timestep": t, "prefix_pad_masks": outs[0], **dict(zip(kv, outs[1:]))}
                if not pi05:
                    feeds["state"] = state
                return run.sess_s.run(None, feeds)[0]
        return euler(noise, steps, velocity, trace, t_f32_accumulated)

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
            batch = batch_of(joints, img, text)
            actions_n, actions = lerobot_chunk(policy, post, batch, noise)
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
            entry = golden_observation(text, joints, img, noise, tokens, mask)
            entry["state_normalized"] = [float(v) for v in state_norm]
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
    with torch.no_grad():
        inputs = graph_inputs(batch_of(*obs[0]))
        noise0 = torch.tensor(golden_obs[0]["noise"]).reshape(1, H, D)
        base = sample(inputs, noise0)

        def delta(i, new):
            args_ = list(inputs)
            args_[i] = new
            return float((sample(args_, noise0)[:, :, :n] - base[:, :, :n]).abs().max())

        other = graph_inputs(batch_of(*obs[1]))
        sens = input_sensitivity(delta, inputs, other)
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

    ops, f64 = graph_ops(bundle)

    j_center, j_half = affine(state_mode.name, norm._tensor_stats[OBS_STATE], eps, n, output=False)
    if pi05:
        def stat_lines(key):
            st = norm._tensor_stats[key]
            return (f'normalization = "quantiles"\nq01 = {toml_list(st["q01"].double().tolist())}\n'
                    f'q99 = {toml_list(st["q99"].double().tolist())}')
        text_extra = ('state_bins = 256                  # np.digitize(state, linspace(-1, 1, 257)[:-1]) - 1, '
                      'the 6 normalized joints\nclean_instruction = true          # strip(), "_" and "\\n" -> " "')
        template_toml = 'template = "Task: {instruction}, State: {state};\\nAction: "'
    else:
        def stat_lines(key):
            st = norm._tensor_stats[key]
            std = st["std"].double().numpy()
            return mean_std_lines(st["mean"].double().tolist(), (std if key == ACTION else std + eps).tolist())
        text_extra = ""
        template_toml = ('template = "{instruction}\\n"    # Pi0NewLineProcessor appends a newline when the '
                         'task lacks one')
    text_toml = (f'{template_toml}\nmax_tokens = {L}\npad_token = "{pad_token}"\n'
                 f"add_special_tokens = true          # PaliGemma's <bos> first\n"
                 + (text_extra + "\n" if text_extra else ""))
    toml = manifest(name=name, text=text_toml, state_graph="" if pi05 else "step", max_state_dim=cfg.max_state_dim,
                    max_tokens=L, prefix_len=P, chunk=H, action_dim=D, kv=kv, kv_shape=kv_shape, steps=steps,
                    joints_stats=stat_lines(OBS_STATE), action_stats=stat_lines(ACTION),
                    chunk_len=cfg.n_action_steps, fps=args.fps)
    (bundle / "policy.toml").write_text(toml)

    sizes = {f: (bundle / f).stat().st_size for f in ("prefix.onnx", "step.onnx", "tokenizer.json")}
    params = sum(p.numel() for p in policy.parameters())
    golden = {
        **golden_header(args.family, args.opset, args.seed, params),
        "adarms_norms_redrawn": adarms,
        "num_steps": steps,
        **golden_text_fields(H, D, cfg.max_state_dim, L, template, pad_token, pad_id),
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
