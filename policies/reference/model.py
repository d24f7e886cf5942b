"""The reach-v1 world model: architecture shared by training, export and tests.

Four graphs, matching the bundle wiring of policies/README.md:

- text_encoder(tokens[1,L] int64) -> instr[1,E]: a bag of words: the sum of
  the tokens' embeddings (id 0 is padding, embedded as zeros) -> small MLP.
  Training uses the equivalent count vector times the embedding table.
- encoder(image[1,3,64,64], joints[1,n], instr[1,E]) -> latent[1,D]:
  conv stack -> spatial softmax (one expected (x, y) keypoint per channel) ->
  concatenated with normalized joint positions and the instruction embedding
  -> MLP -> tanh (a bounded latent keeps the surprise measure well scaled).
- dynamics(latent[1,D], action[1,n]) -> next latent[1,D]: residual MLP; the
  action is the normalized absolute joint target for the next policy step.
- action_head(latent[1,D], instr[1,E]) -> chunk[1,H,n]: MLP to H normalized
  absolute joint targets.

Every layer is one ONNX operator (Conv, Relu, Gemm, Softmax, MatMul, Tanh,
Add, Concat, Reshape, Mul, Gather, ReduceSum), so export is a direct transcription of
`forward_*` below and INT8 quantization can pick layers by name.
"""

from __future__ import annotations

import dataclasses

import numpy as np

try:  # JAX is needed for training; export and tests run on numpy alone.
    import jax
    import jax.numpy as jnp
except ImportError:  # pragma: no cover
    jax = None
    jnp = None


@dataclasses.dataclass(frozen=True)
class Arch:
    """Sizes of the network (stored in the params file, so export matches)."""

    n_joints: int = 3
    vocab: int = 8
    horizon: int = 8
    max_tokens: int = 8  # token slots of the text encoder input
    image: int = 64
    c1: int = 16  # first conv: 5x5 stride 2 -> 32x32
    c2: int = 16  # second conv: 3x3 stride 1
    keypoints: int = 16  # third conv: 3x3 -> one heat map per keypoint
    embed: int = 16  # instruction embedding
    text_hidden: int = 32
    fuse_hidden: int = 96
    latent: int = 64
    dyn_hidden: int = 128
    head_hidden: int = 128

    @property
    def feat(self) -> int:
        """Side of the keypoint heat maps."""
        return self.image // 2


def init_params(arch: Arch, seed: int) -> dict[str, np.ndarray]:
    """He-initialized parameters, float32, keyed by layer name."""
    rng = np.random.default_rng(seed)

    def conv(cout, cin, k):
        return rng.normal(0, np.sqrt(2.0 / (cin * k * k)), (cout, cin, k, k)).astype(np.float32)

    def dense(nin, nout, gain=2.0):
        return rng.normal(0, np.sqrt(gain / nin), (nin, nout)).astype(np.float32)

    a = arch
    p = {
        "conv1_w": conv(a.c1, 3, 5),
        "conv1_b": np.zeros(a.c1, np.float32),
        "conv2_w": conv(a.c2, a.c1, 3),
        "conv2_b": np.zeros(a.c2, np.float32),
        "conv3_w": conv(a.keypoints, a.c2, 3),
        "conv3_b": np.zeros(a.keypoints, np.float32),
        # Softmax temperature, learned as a log so it stays positive.
        "kp_log_temp": np.array(np.log(4.0), np.float32),
        "fuse1_w": dense(2 * a.keypoints + a.n_joints + a.embed, a.fuse_hidden),
        "fuse1_b": np.zeros(a.fuse_hidden, np.float32),
        "fuse2_w": dense(a.fuse_hidden, a.latent, 1.0),
        "fuse2_b": np.zeros(a.latent, np.float32),
        "text_emb_w": dense(a.vocab, a.embed, 1.0),
        "text1_w": dense(a.embed, a.text_hidden),
        "text1_b": np.zeros(a.text_hidden, np.float32),
        "text2_w": dense(a.text_hidden, a.embed, 1.0),
        "text2_b": np.zeros(a.embed, np.float32),
        "dyn1_w": dense(a.latent + a.n_joints, a.dyn_hidden),
        "dyn1_b": np.zeros(a.dyn_hidden, np.float32),
        "dyn2_w": dense(a.dyn_hidden, a.latent, 0.1),
        "dyn2_b": np.zeros(a.latent, np.float32),
        "head1_w": dense(a.latent + a.embed, a.head_hidden),
        "head1_b": np.zeros(a.head_hidden, np.float32),
        "head2_w": dense(a.head_hidden, a.head_hidden),
        "head2_b": np.zeros(a.head_hidden, np.float32),
        "head3_w": dense(a.head_hidden, a.horizon * a.n_joints, 1.0),
        "head3_b": np.zeros(a.horizon * a.n_joints, np.float32),
    }
    return p


def keypoint_coords(side: int) -> np.ndarray:
    """[side*side, 2] pixel-centre coordinates in [-1, 1], (x, y), row-major."""
    c = (np.arange(side, dtype=np.float32) + 0.5) / side * 2.0 - 1.0
    ys, xs = np.meshgrid(c, c, indexing="ij")
    return np.stack([xs.reshape(-1), ys.reshape(-1)], axis=1).astype(np.float32)


def param_count(p: dict[str, np.ndarray]) -> int:
    return int(sum(np.asarray(v).size for v in p.values()))


# --- JAX forward passes (training); export_onnx.py mirrors them op by op ---


def _conv(x, w, b, stride, pad):
    y = jax.lax.conv_general_dilated(
        x, w, (stride, stride), [(pad, pad), (pad, pad)], dimension_numbers=("NCHW", "OIHW", "NCHW")
    )
    return y + b[None, :, None, None]


def text_encoder(p, bow):
    e = bow @ p["text_emb_w"]
    h = jax.nn.relu(e @ p["text1_w"] + p["text1_b"])
    return h @ p["text2_w"] + p["text2_b"]


def keypoints(p, arch: Arch, image):
    """image [B,3,64,64] normalized -> [B, 2K] expected keypoint coordinates."""
    h = jax.nn.relu(_conv(image, p["conv1_w"], p["conv1_b"], 2, 2))
    h = jax.nn.relu(_conv(h, p["conv2_w"], p["conv2_b"], 1, 1))
    h = _conv(h, p["conv3_w"], p["conv3_b"], 1, p["conv3_w"].shape[-1] // 2)
    b = h.shape[0]
    logits = h.reshape(b, arch.keypoints, arch.feat * arch.feat) * jnp.exp(p["kp_log_temp"])
    attn = jax.nn.softmax(logits, axis=-1)
    kp = attn @ jnp.asarray(keypoint_coords(arch.feat))  # [B, K, 2]
    return kp.reshape(b, 2 * arch.keypoints)


def encoder(p, arch: Arch, image, joints, instr):
    f = jnp.concatenate([keypoints(p, arch, image), joints, instr], axis=-1)
    h = jax.nn.relu(f @ p["fuse1_w"] + p["fuse1_b"])
    return jnp.tanh(h @ p["fuse2_w"] + p["fuse2_b"])


def dynamics(p, latent, action):
    h = jax.nn.relu(jnp.concatenate([latent, action], axis=-1) @ p["dyn1_w"] + p["dyn1_b"])
    return jnp.tanh(latent + h @ p["dyn2_w"] + p["dyn2_b"])


def action_head(p, arch: Arch, latent, instr):
    h = jax.nn.relu(jnp.concatenate([latent, instr], axis=-1) @ p["head1_w"] + p["head1_b"])
    h = jax.nn.relu(h @ p["head2_w"] + p["head2_b"])
    y = h @ p["head3_w"] + p["head3_b"]
    return y.reshape(latent.shape[0], arch.horizon, arch.n_joints)


# --- the params file ---


def save_params(path: str, p: dict, arch: Arch, norm: dict, vocab: list[str], meta: dict) -> None:
    """One .npz: parameters, architecture, normalization, vocabulary, metadata."""
    out = {f"p/{k}": np.asarray(v, np.float32) for k, v in p.items()}
    out.update({f"norm/{k}": np.asarray(v, np.float32) for k, v in norm.items()})
    out["arch"] = np.array([f"{f.name}={getattr(arch, f.name)}" for f in dataclasses.fields(arch)])
    out["vocab"] = np.array(vocab)
    out["meta"] = np.array([f"{k}={v}" for k, v in meta.items()])
    np.savez(path, **out)


def load_params(path: str):
    z = np.load(path)
    p = {k[2:]: z[k] for k in z.files if k.startswith("p/")}
    norm = {k[5:]: z[k] for k in z.files if k.startswith("norm/")}
    arch = Arch(**{kv.split("=")[0]: int(kv.split("=")[1]) for kv in z["arch"]})
    vocab = [str(w) for w in z["vocab"]]
    meta = dict(kv.split("=", 1) for kv in z["meta"])
    return p, arch, norm, vocab, meta


PAD = "<pad>"


def tokenize(text: str) -> list[str]:
    """Lower-case words split on anything not a letter or digit, as the
    runtime's tokenizer (policies/src/tokenizer.rs) does."""
    cleaned = "".join(ch.lower() if ch.isalnum() else " " for ch in text)
    return cleaned.split()


def vocab_file_lines(vocab: list[str]) -> list[str]:
    """The bundle's vocab file: line number = token id, line 0 = padding."""
    return [PAD] + list(vocab)


def token_ids(text: str, vocab: list[str], max_tokens: int) -> np.ndarray:
    """[1, max_tokens] int64 ids as the runtime feeds the text encoder."""
    ids = np.zeros((1, max_tokens), np.int64)
    index = {w: i + 1 for i, w in enumerate(vocab)}
    words = tokenize(text)
    if len(words) > max_tokens:
        raise ValueError(f"{len(words)} words > {max_tokens} token slots")
    for j, w in enumerate(words):
        ids[0, j] = index[w]
    return ids


def bag_of_words(text: str, vocab: list[str]) -> np.ndarray:
    """Count vector over `vocab`; raises KeyError naming an unknown word."""
    v = np.zeros(len(vocab), np.float32)
    index = {w: i for i, w in enumerate(vocab)}
    for w in tokenize(text):
        if w not in index:
            raise KeyError(w)
        v[index[w]] += 1.0
    return v
