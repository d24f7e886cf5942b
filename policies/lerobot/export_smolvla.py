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
import json
import os
import shutil
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))

from export_diffusion import affine  # noqa: E402
from vla_export import (CAMERA, CORPUS, IMG, JOINTS, PLAIN_INSTRUCTIONS, Runners, euler, export_graphs,  # noqa: E402
                        golden_header, golden_observation, golden_text_fields, graph_base, graph_ops,
                        input_sensitivity, kv_cache, kv_names, lerobot_batch, lerobot_chunk, manifest,
                        mean_std_lines, observations, padded_tokens, prefix_outputs, tokenizer_of)

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


def embed_prefix_any_length(m, image, lang_tokens, lang_masks, state):
    """LeRobot's `VLAFlowMatching.embed_prefix` for one camera without image
    special tokens or prefix padding (this fixture's config), written with
    tensor ops only: LeRobot's builds the attention mask as a Python list
    `[0] * num_lang_embs`, which makes `torch.export` fix the prompt's length
    at the example's. Same modules, same order, same values: `main` checks it
    against LeRobot's `embed_prefix` bit for bit before exporting."""
    import math

    import torch

    assert not m.add_image_special_tokens and m.prefix_length < 0
    img_emb = m.vlm_with_expert.embed_image(image)
    img_emb = img_emb * torch.tensor(img_emb.shape[-1] ** 0.5, dtype=img_emb.dtype, device=img_emb.device)
    lang_emb = m.vlm_with_expert.embed_language_tokens(lang_tokens)
    lang_emb = lang_emb * math.sqrt(lang_emb.shape[-1])
    state_emb = m.state_proj(state)
    state_emb = state_emb[:, None, :] if state_emb.ndim == 2 else state_emb
    bsize = state_emb.shape[0]
    img_mask = torch.ones(bsize, img_emb.shape[1], dtype=torch.bool)
    state_mask = torch.ones(bsize, state_emb.shape[1], dtype=torch.bool)
    embs = torch.cat([img_emb, lang_emb, state_emb], dim=1)
    pad_masks = torch.cat([img_mask, lang_masks, state_mask], dim=1)
    # 0 for the image and the prompt, 1 for the state: image and language do
    # not attend to the state or the actions.
    att_masks = torch.cat([torch.zeros_like(img_mask), torch.zeros_like(lang_masks), state_mask], dim=1)
    return embs, pad_masks, att_masks


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
    ap.add_argument("--pad-language", choices=["max_length", "longest"], default="max_length",
                    help="SmolVLA's pad_language_to: longest (LeRobot's default) exports graphs whose token "
                         "axis varies, and the manifest's [text] padding = \"longest\"")
    args = ap.parse_args()

    import numpy as np
    import tokenizers
    import torch
    from lerobot.configs.types import FeatureType, PolicyFeature
    from lerobot.policies.common.vla_utils import make_att_2d_masks
    from lerobot.policies.factory import make_pre_post_processors
    from lerobot.policies.smolvla.configuration_smolvla import SmolVLAConfig
    from lerobot.policies.smolvla.modeling_smolvla import SmolVLAPolicy
    from lerobot.utils.constants import ACTION, OBS_LANGUAGE_ATTENTION_MASK, OBS_LANGUAGE_TOKENS, OBS_STATE

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
        pad_language_to=args.pad_language,
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
    hf_tok = tokenizer_of(pre)
    pad_token = hf_tok.pad_token
    L, D, H = cfg.tokenizer_max_length, cfg.max_action_dim, cfg.chunk_size
    vwe = model.vlm_with_expert
    n_layers = vwe.num_vlm_layers

    class Prefix(graph_base()):
        """`sample_actions` up to the Euler loop: the prefix and its KV cache."""

        def forward(self, image, lang_tokens, lang_masks, state):
            if self.dynamic_tokens:
                embs, pad_masks, att_masks = embed_prefix_any_length(self.m, image, lang_tokens, lang_masks, state)
            else:
                img_masks = [torch.ones(image.shape[0], dtype=torch.bool)]
                embs, pad_masks, att_masks = self.m.embed_prefix([image], img_masks, lang_tokens, lang_masks,
                                                                 state=state)
            att_2d = make_att_2d_masks(pad_masks, att_masks)
            position_ids = torch.cumsum(pad_masks, dim=1) - 1
            _, cache = self.m.vlm_with_expert.forward(attention_mask=att_2d, position_ids=position_ids,
                                                      past_key_values=None, inputs_embeds=[embs, None],
                                                      use_cache=True)
            return prefix_outputs(pad_masks, cache)

    class Step(graph_base()):
        """`denoise_step` on a DynamicCache rebuilt from the prefix's tensors."""

        def forward(self, x_t, timestep, prefix_pad_masks, *kv):
            return self.m.denoise_step(prefix_pad_masks, kv_cache(kv, n_layers), x_t, timestep)

    prefix, step = Prefix(model).eval(), Step(model).eval()
    prefix.dynamic_tokens = args.pad_language == "longest"
    kv = kv_names(n_layers)

    # Example inputs: the first observation through LeRobot's pre-processor.
    obs = observations(args.seed, PLAIN_INSTRUCTIONS)

    def batch_of(joints, img, text):
        return lerobot_batch(pre, image_key, joints, img, text)

    def graph_inputs(batch):
        images, _ = policy.prepare_images(dict(batch))
        return (images[0], batch[OBS_LANGUAGE_TOKENS], batch[OBS_LANGUAGE_ATTENTION_MASK],
                policy.prepare_state(batch))

    with torch.no_grad():
        ex = graph_inputs(batch_of(*obs[0]))
        if prefix.dynamic_tokens:
            ours = embed_prefix_any_length(model, *ex)
            theirs = model.embed_prefix([ex[0]], [torch.ones(1, dtype=torch.bool)], *ex[1:3], state=ex[3])
            if not all(torch.equal(a, b.to(a.dtype)) for a, b in zip(ours, theirs)):
                fail("embed_prefix_any_length differs from LeRobot's embed_prefix")
        p_out = prefix(*ex)
        P = p_out[0].shape[1]
        ex_step = (torch.randn(1, H, D), torch.tensor([1.0]), p_out[0], *p_out[1:])
        v0 = step(*ex_step)
    assert v0.shape == (1, H, D)
    kv_shape = list(p_out[1].shape)
    longest = args.pad_language == "longest"
    dynamic = None
    if longest:
        # The prompt's length L varies (1 to 48 tokens); the prefix is
        # 16 image tokens + L + 1 state token, in the pad mask and the cache.
        from torch.export import Dim

        n_ex = ex[1].shape[1]
        tokens, prefix_dim = Dim("L", min=1, max=L), Dim("P", min=P - n_ex + 1, max=P - n_ex + L)
        dynamic = ((None, {1: tokens}, {1: tokens}, None),
                   (None, None, {1: prefix_dim}, tuple([{2: prefix_dim}] * len(kv))))
        P = P - n_ex + L
        kv_shape[2] = P

    rewritten = export_graphs(bundle, prefix, ex, ["image", "lang_tokens", "lang_masks", "state"], step, ex_step,
                              ["x_t", "timestep", "prefix_pad_masks", *kv], kv, args.opset,
                              "ganglion export_smolvla.py", dynamic)
    shutil.copyfile(vlm / "tokenizer.json", bundle / "tokenizer.json")

    # The bundle's tokenizer.json, run as the Rust `tokenizers` crate will run
    # it (encode with special tokens, truncate, pad right with the pad token),
    # must give what LeRobot's processor gave.
    raw = tokenizers.Tokenizer.from_file(str(bundle / "tokenizer.json"))
    pad_id = raw.token_to_id(pad_token)
    template = "{instruction}\n"

    def raw_tokens(text):
        return padded_tokens(raw, template.format(instruction=text), L, pad_id, longest)

    run = Runners(bundle)
    tract = run.tract

    def ort_chunk(inputs, noise, trace=None, on_tract=False):
        image, tokens, mask, state = (t.numpy() for t in inputs)
        if on_tract:
            outs = [t.to_numpy() for t in run.tract_p.run([image, tokens, mask, state])]
            return euler(noise, cfg.num_steps, lambda x, t: run.tract_s.run([x, t, *outs])[0].to_numpy())
        outs = run.sess_p.run(None, {"image": image, "lang_tokens": tokens, "lang_masks": mask, "state": state})
        feeds = {"prefix_pad_masks": outs[0], **dict(zip(kv, outs[1:]))}
        return euler(noise, cfg.num_steps, lambda x, t: run.sess_s.run(None, {"x_t": x, "timestep": t, **feeds})[0],
                     trace)

    gen = torch.Generator().manual_seed(args.seed + 1)
    golden_obs, parity, parity_actions, tok_mismatch = [], 0.0, 0.0, []
    parity_tract = None if tract is None else 0.0
    a_mean, a_std = np.asarray(action_mean, np.float32), np.asarray(action_std, np.float32)
    with torch.no_grad():
        for joints, img, text in obs:
            noise = torch.randn(1, H, D, generator=gen)
            batch = batch_of(joints, img, text)
            actions_n, actions = lerobot_chunk(policy, post, batch, noise)
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
                **golden_observation(text, joints, img, noise, tokens, mask),
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
    with torch.no_grad():
        inputs = graph_inputs(batch_of(*obs[0]))
        noise0 = torch.tensor(golden_obs[0]["noise"]).reshape(1, H, D)
        base = model.sample_actions([inputs[0]], [torch.ones(1, dtype=torch.bool)], *inputs[1:], noise=noise0.clone())

        def delta(i, new):
            args_ = list(inputs)
            args_[i] = new
            out = model.sample_actions([args_[0]], [torch.ones(1, dtype=torch.bool)], *args_[1:], noise=noise0.clone())
            return float((out[:, :, :n] - base[:, :, :n]).abs().max())

        other = graph_inputs(batch_of(*obs[1]))
        if prefix.dynamic_tokens:
            # No padding to move a mask position into: the tokens are the
            # other prompt's first ones, as many as this prompt has.
            n_tok = inputs[1].shape[1]
            sens = {"image": delta(0, other[0]), "tokens": delta(1, other[1][:, :n_tok])}
        else:
            sens = input_sensitivity(delta, inputs, other)
        sens["state"] = delta(3, other[3])

    ops, f64 = graph_ops(bundle)

    tokenizer_note = "SmolVLA's NewLineTaskProcessorStep appends a newline when the task lacks one"
    text_toml = (f'template = "{{instruction}}\\n"    # {tokenizer_note}\nmax_tokens = {L}\n'
                 f'pad_token = "{pad_token}"\nadd_special_tokens = true\n'
                 + ('padding = "longest"\n' if longest else ""))
    toml = manifest(name=args.name, text=text_toml, state_graph="prefix", max_state_dim=cfg.max_state_dim,
                    max_tokens=L, prefix_len=P, chunk=H, action_dim=D, kv=kv, kv_shape=kv_shape,
                    steps=cfg.num_steps, joints_stats=mean_std_lines(joints_mean, joints_std),
                    action_stats=mean_std_lines(action_mean, action_std), chunk_len=cfg.n_action_steps,
                    fps=args.fps, dynamic_tokens=longest)
    (bundle / "policy.toml").write_text(toml)

    sizes = {f: (bundle / f).stat().st_size for f in ("prefix.onnx", "step.onnx", "tokenizer.json")}
    params = sum(p.numel() for p in policy.parameters())
    golden = {
        **golden_header("smolvla", args.opset, args.seed, params),
        "num_steps": cfg.num_steps,
        **golden_text_fields(H, D, cfg.max_state_dim, L, template, pad_token, pad_id),
        "pad_language_to": args.pad_language,
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
