"""Train the reach-v1 world model (JAX on CPU, hand-written Adam).

Loss = behaviour cloning (MSE on the normalized 8-step chunk of absolute
joint targets) + latent consistency: the dynamics model, rolled from the
latent of frame t over the expert's next actions, must predict the encoder's
latent of frames t+1..t+K (targets under stop-gradient).

    .venv/bin/python train.py --data work/reach.npz --out work/params.npz \
        --steps 3000 --batch 64 --minutes 20

Progress goes to stdout every --log-every steps. The params file holds the
weights, the architecture, the normalization statistics and the vocabulary;
export_onnx.py turns it into the bundle's graphs.
"""

from __future__ import annotations

import argparse
import os
import time

import numpy as np

import model as M


def load_dataset(path: str) -> dict:
    z = np.load(path)
    d = {k: z[k] for k in z.files}
    raw = d["instructions"]
    if raw.dtype == np.uint8:
        texts = bytes(raw.tobytes()).decode("utf-8").split("\n")
    else:
        texts = [str(t) for t in raw]
    d["instruction_texts"] = [t for t in texts]
    return d


def build_vocab(texts: list[str]) -> list[str]:
    words = sorted({w for t in texts for w in M.tokenize(t)})
    return words


def main() -> None:
    ap = argparse.ArgumentParser(description="train the reach-v1 world model")
    ap.add_argument("--data", required=True, help="dataset .npz from `ganglion sim record`")
    ap.add_argument("--out", required=True, help="params .npz to write")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--rollout", type=int, default=7,
                    help="longest dynamics rollout K: each sample rolls k in 1..K steps (the runtime rolls as many "
                         "policy steps as elapsed between requests)")
    ap.add_argument("--dyn-weight", type=float, default=1.0)
    ap.add_argument("--minutes", type=float, default=20.0, help="stop (and save) after this much wall time")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--log-every", type=int, default=100)
    ap.add_argument("--init", help="continue from this params .npz (same architecture and normalization)")
    ap.add_argument("--val-fraction", type=float, default=0.05)
    a = ap.parse_args()

    import jax
    import jax.numpy as jnp

    t_start = time.time()
    d = load_dataset(a.data)
    images = d["images"]  # [T,64,64,3] uint8
    q = d["joint_pos"].astype(np.float32)
    actions = d["actions"].astype(np.float32)  # [T,H,n]
    episode = d["episode"].astype(np.int64)
    instr_idx = d["instruction"].astype(np.int64)
    texts = d["instruction_texts"]
    T, H, n = actions.shape
    vocab = build_vocab(texts)
    bows = np.stack([M.bag_of_words(t, vocab) for t in texts])  # [n_instr, V]
    arch = M.Arch(n_joints=n, vocab=len(vocab), horizon=H, image=images.shape[1])
    print(f"dataset {a.data}: {T} frames, {len(np.unique(episode))} episodes, {n} joints, H={H}, vocab={vocab}")

    # Normalization statistics (stored in the bundle manifest).
    img_mean = images.reshape(-1, 3).mean(0).astype(np.float32) / 255.0
    img_std = images.reshape(-1, 3).std(0).astype(np.float32) / 255.0 + 1e-3
    q_mean, q_std = q.mean(0), q.std(0) + 1e-3
    a_flat = actions.reshape(-1, n)
    a_mean, a_std = a_flat.mean(0), a_flat.std(0) + 1e-3
    norm = dict(img_mean=img_mean, img_std=img_std, q_mean=q_mean, q_std=q_std, a_mean=a_mean, a_std=a_std)

    # Split by episode.
    eps = np.unique(episode)
    rng = np.random.default_rng(a.seed)
    n_val = max(1, int(len(eps) * a.val_fraction))
    val_eps = set(rng.choice(eps, n_val, replace=False).tolist())
    is_val = np.array([e in val_eps for e in episode])
    # Each sample rolls the dynamics k in 1..K steps over its own chunk (the
    # targets for t+1..t+k are actions[t, 1..k]: action i is meant for t+i)
    # and is compared with the encoder's latent of frame t+k. Samples whose
    # frame t+k lies in another episode only train the BC loss.
    K = min(a.rollout, H - 1)
    assert K >= 1, "need a chunk of at least 2 actions for the dynamics loss"
    train_idx = np.flatnonzero(~is_val)
    val_idx = np.flatnonzero(is_val)

    qn = (q - q_mean) / q_std
    an = (actions - a_mean) / a_std

    def batch(idx):
        def img(i):
            x = images[i].astype(np.float32) / 255.0
            x = (x - img_mean) / img_std
            return np.ascontiguousarray(x.transpose(0, 3, 1, 2))

        k = rng.integers(1, K + 1, len(idx))
        j = np.minimum(idx + k, T - 1)
        return dict(
            img=img(idx),
            q=qn[idx],
            bow=bows[instr_idx[idx]],
            act=an[idx],
            k=k.astype(np.int32),
            next_img=img(j),
            next_q=qn[j],
            mask=(episode[j] == episode[idx]).astype(np.float32),
        )

    params = {k: jnp.asarray(v) for k, v in M.init_params(arch, a.seed).items()}
    if a.init:
        p0, arch0, norm0, vocab0, _ = M.load_params(a.init)
        assert arch0 == arch and vocab0 == vocab, "--init params have another architecture or vocabulary"
        params = {k: jnp.asarray(v) for k, v in p0.items()}
        norm = norm0  # keep the statistics the weights were trained with
    print(f"parameters: {M.param_count(params)}")

    def loss_fn(p, b):
        instr = M.text_encoder(p, b["bow"])
        z = M.encoder(p, arch, b["img"], b["q"], instr)
        pred = M.action_head(p, arch, z, instr)
        bc = jnp.mean((pred - b["act"]) ** 2)
        target = jax.lax.stop_gradient(M.encoder(p, arch, b["next_img"], b["next_q"], instr))
        zk = z
        pred_k = jnp.zeros_like(z)
        for k in range(1, K + 1):
            zk = M.dynamics(p, zk, b["act"][:, k, :])
            pred_k = jnp.where((b["k"] == k)[:, None], zk, pred_k)
        err = jnp.mean((pred_k - target) ** 2, axis=-1)
        dyn = jnp.sum(err * b["mask"]) / (jnp.sum(b["mask"]) + 1e-6)
        return bc + a.dyn_weight * dyn, (bc, dyn)

    b1, b2, eps_adam = 0.9, 0.999, 1e-8

    @jax.jit
    def step(p, m, v, t, lr, b):
        (loss, aux), g = jax.value_and_grad(loss_fn, has_aux=True)(p, b)
        m = jax.tree_util.tree_map(lambda m_, g_: b1 * m_ + (1 - b1) * g_, m, g)
        v = jax.tree_util.tree_map(lambda v_, g_: b2 * v_ + (1 - b2) * g_ * g_, v, g)
        mh = 1 - b1**t
        vh = 1 - b2**t
        p = jax.tree_util.tree_map(lambda p_, m_, v_: p_ - lr * (m_ / mh) / (jnp.sqrt(v_ / vh) + eps_adam), p, m, v)
        return p, m, v, loss, aux

    eval_loss = jax.jit(loss_fn)
    m = jax.tree_util.tree_map(jnp.zeros_like, params)
    v = jax.tree_util.tree_map(jnp.zeros_like, params)

    def val_losses(p):
        if len(val_idx) == 0:
            return float("nan"), float("nan")
        sel = val_idx[np.linspace(0, len(val_idx) - 1, min(256, len(val_idx))).astype(int)]
        tot_bc, tot_dyn = 0.0, 0.0
        chunks = np.array_split(sel, max(1, len(sel) // 64))
        for c in chunks:
            _, (bc, dyn) = eval_loss(p, {k: jnp.asarray(x) for k, x in batch(c).items()})
            tot_bc += float(bc)
            tot_dyn += float(dyn)
        return tot_bc / len(chunks), tot_dyn / len(chunks)

    t_train = time.time()
    done = 0
    for it in range(1, a.steps + 1):
        # Cosine decay to 5 % of the initial rate, with a short warm-up.
        frac = it / a.steps
        lr = a.lr * min(1.0, it / 100) * (0.05 + 0.95 * 0.5 * (1 + np.cos(np.pi * frac)))
        idx = rng.choice(train_idx, a.batch)
        b = {k: jnp.asarray(x) for k, x in batch(idx).items()}
        params, m, v, loss, (bc, dyn) = step(params, m, v, jnp.float32(it), jnp.float32(lr), b)
        done = it
        if it % a.log_every == 0 or it == 1:
            vbc, vdyn = val_losses(params)
            el = time.time() - t_train
            print(
                f"step {it:5d}/{a.steps}  loss {float(loss):.4f}  bc {float(bc):.4f}  dyn {float(dyn):.5f}  "
                f"val_bc {vbc:.4f}  val_dyn {vdyn:.5f}  lr {lr:.2e}  {el:6.0f}s",
                flush=True,
            )
        if (time.time() - t_start) / 60.0 > a.minutes:
            print(f"time budget of {a.minutes} min reached at step {it}", flush=True)
            break

    train_s = time.time() - t_train
    vbc, vdyn = val_losses(params)
    print(f"final val_bc {vbc:.4f} val_dyn {vdyn:.5f}; trained {done} steps in {train_s:.0f}s")
    meta = dict(
        dataset=os.path.basename(a.data),
        frames=T,
        steps=done,
        batch=a.batch,
        rollout=K,
        train_seconds=round(train_s, 1),
        total_seconds=round(time.time() - t_start, 1),
        val_bc=round(vbc, 5),
        val_dyn=round(vdyn, 6),
        seed=a.seed,
    )
    M.save_params(a.out, {k: np.asarray(x) for k, x in params.items()}, arch, norm, vocab, meta)
    print(f"wrote {a.out}")


if __name__ == "__main__":
    main()
