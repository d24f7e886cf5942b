"""Concatenate `ganglion sim record` datasets into one .npz for train.py.

Episode numbers of each later file are shifted past those of the files
before it, so episodes stay distinct (train.py splits train/validation and
builds dynamics targets by episode). The instruction vocabulary, seed and
rate come from the first file; all files must share them.

    .venv/bin/python merge_datasets.py work/reach2.npz work/reach-a.npz work/reach-b.npz
"""

from __future__ import annotations

import sys

import numpy as np

SHARED = ("instructions", "seed", "rate_hz")


def main() -> None:
    if len(sys.argv) < 3:
        raise SystemExit("usage: merge_datasets.py OUT.npz IN.npz [IN.npz ...]")
    out, *paths = sys.argv[1:]
    data = [dict(np.load(p)) for p in paths]
    first = data[0]
    for p, d in zip(paths[1:], data[1:]):
        if set(d) != set(first):
            raise SystemExit(f"{p}: keys {sorted(d)} differ from {paths[0]}'s {sorted(first)}")
        if not np.array_equal(d["instructions"], first["instructions"]):
            raise SystemExit(f"{p}: instruction vocabulary differs from {paths[0]}'s")
    merged = {k: first[k] for k in SHARED}
    offset = 0
    episodes = []
    for d in data:
        episodes.append(d["episode"] + offset)
        offset = int(episodes[-1].max()) + 1
    merged["episode"] = np.concatenate(episodes)
    for k in first:
        if k not in SHARED and k != "episode":
            merged[k] = np.concatenate([d[k] for d in data])
    np.savez(out, **merged)
    print(f"wrote {out}: {len(merged['episode'])} frames, {offset} episodes from {len(paths)} files")


if __name__ == "__main__":
    main()
