"""Checks a LeRobotDataset Ganglion wrote against the reference LeRobot wrote.

    python check_dataset.py DATASET REFERENCE EPISODES FRAMES_PER_EPISODE

Needs pyarrow and numpy only (the CI venv, requirements-ci.txt); run by
drivers/sim/tests/lerobot.rs. Compares, file by file: the set of files, the
info.json keys and structure (features, dtypes, shape ranks, names, paths,
version), the parquet schemas (column names, arrow types after LeRobot's
features cast, nesting), the tasks pandas index, the episodes columns LeRobot
reads (`stats/*` per-episode columns excepted: Ganglion does not write them),
stats.json keys and shapes; then the content's consistency (indices,
timestamps, episode ranges, PNG frames that decode to the stated shape, stats
recomputed from the data).
"""

import io
import json
import sys
import zlib
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

DATA = "data/chunk-000/file-000.parquet"
EPISODES = "meta/episodes/chunk-000/file-000.parquet"


def fail(msg):
    raise SystemExit(f"FAIL: {msg}")


def expect(ok, msg):
    if not ok:
        fail(msg)


def files(root):
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def shape_of(feature):
    return [len(feature["shape"]), feature["dtype"]]


def decode_png(data):
    """Minimal PNG decoder for 8-bit rgb, non-interlaced (the only kind written)."""
    expect(data[:8] == b"\x89PNG\r\n\x1a\n", "PNG signature")
    pos, idat, w = 8, b"", None
    while pos < len(data):
        n = int.from_bytes(data[pos : pos + 4], "big")
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + n]
        crc = int.from_bytes(data[pos + 8 + n : pos + 12 + n], "big")
        expect(zlib.crc32(kind + body) == crc, f"PNG chunk {kind} CRC")
        if kind == b"IHDR":
            w, h = int.from_bytes(body[0:4], "big"), int.from_bytes(body[4:8], "big")
            expect(tuple(body[8:13]) == (8, 2, 0, 0, 0), "PNG: 8-bit rgb, no interlace")
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw = np.frombuffer(zlib.decompress(idat), np.uint8).reshape(h, 1 + 3 * w)
    out = np.zeros((h, 3 * w), np.int32)
    for y in range(h):
        f, row = raw[y, 0], raw[y, 1:].astype(np.int32)
        if f == 0:
            out[y] = row
        elif f == 2:
            out[y] = (row + (out[y - 1] if y else 0)) % 256
        else:
            fail(f"PNG filter {f} not expected")
    return out.reshape(h, w, 3).astype(np.uint8)


def main():
    root, ref = Path(sys.argv[1]), Path(sys.argv[2])
    n_ep, per_ep = int(sys.argv[3]), int(sys.argv[4])
    expect(files(root) == files(ref), f"files {files(root)} != reference {files(ref)}")

    info, rinfo = (json.loads((r / "meta/info.json").read_text()) for r in (root, ref))
    expect(sorted(info) == sorted(rinfo), f"info.json keys {sorted(info)} != {sorted(rinfo)}")
    expect(info["codebase_version"] == rinfo["codebase_version"] == "v3.0", "codebase_version v3.0")
    for k in ["data_path", "video_path", "chunks_size", "data_files_size_in_mb", "video_files_size_in_mb"]:
        expect(info[k] == rinfo[k], f"info.json {k}: {info[k]!r} != {rinfo[k]!r}")
    expect(isinstance(info["fps"], int), "fps is an integer")
    expect(list(info["features"]) == list(rinfo["features"]),
           f"features {list(info['features'])} != {list(rinfo['features'])}")
    for k, f in info["features"].items():
        r = rinfo["features"][k]
        expect(sorted(f) == sorted(r), f"feature {k} keys")
        expect(shape_of(f) == shape_of(r), f"feature {k}: {f} vs {r}")
        expect((f["names"] is None) == (r["names"] is None), f"feature {k} names")
    expect(info["total_episodes"] == n_ep and info["total_frames"] == n_ep * per_ep, "totals")
    expect(info["splits"] == {"train": f"0:{n_ep}"}, f"splits {info['splits']}")

    # Parquet schemas: as pyarrow reads them, then cast to the reference's
    # arrow schema (what HF datasets does with LeRobot's features).
    for rel in [DATA, "meta/tasks.parquet", EPISODES]:
        t, r = pq.read_table(root / rel), pq.read_table(ref / rel)
        rcols = [c for c in r.schema.names if not c.startswith("stats/")]
        expect(t.schema.names == rcols, f"{rel}: columns {t.schema.names} != {rcols}")
        for name in rcols:
            a, b = t.schema.field(name).type, r.schema.field(name).type
            if pa.types.is_fixed_size_list(b):
                expect(pa.types.is_list(a) and a.value_type == b.value_type, f"{rel} {name}: {a} vs {b}")
            else:
                expect(a == b, f"{rel} {name}: {a} vs {b}")
        r_no_stats = r.select(rcols)
        t.cast(r_no_stats.schema.remove_metadata())  # raises if not castable
    hf, rhf = (json.loads(pq.read_metadata(r / DATA).metadata[b"huggingface"])["info"]["features"] for r in (root, ref))
    expect(hf == rhf, f"huggingface features {hf} != {rhf}")

    # pandas puts `task` in the index (LeRobot's load_tasks): the pandas metadata says so.
    tt = pq.read_table(root / "meta/tasks.parquet")
    for r in (root, ref):
        meta = json.loads(pq.read_metadata(r / "meta/tasks.parquet").metadata[b"pandas"])
        expect(meta["index_columns"] == ["task"], f"{r}: tasks pandas index_columns {meta['index_columns']}")
        expect([c["name"] for c in meta["columns"]] == ["task_index", "task"], f"{r}: tasks pandas columns")
    expect(tt.column("task_index").to_pylist() == list(range(tt.num_rows)), "task_index 0..")
    task_ids = dict(zip(tt.column("task").to_pylist(), tt.column("task_index").to_pylist()))
    expect(len(task_ids) == tt.num_rows, "tasks are distinct")

    stats, rstats = (json.loads((r / "meta/stats.json").read_text()) for r in (root, ref))
    expect(sorted(stats) == sorted(rstats), f"stats features {sorted(stats)} != {sorted(rstats)}")
    for k in stats:
        expect(sorted(stats[k]) == sorted(rstats[k]), f"stats {k} keys")
        for s in stats[k]:
            expect(np.array(stats[k][s]).ndim == np.array(rstats[k][s]).ndim, f"stats {k}/{s} rank")

    # Content.
    d = pq.read_table(root / DATA).to_pydict()
    T = n_ep * per_ep
    expect(d["index"] == list(range(T)), "index 0..T")
    expect(d["episode_index"] == [e for e in range(n_ep) for _ in range(per_ep)], "episode_index")
    expect(d["frame_index"] == list(range(per_ep)) * n_ep, "frame_index")
    ts = np.array(d["timestamp"], np.float32)
    expect(np.allclose(ts, np.array(d["frame_index"]) / info["fps"], atol=1e-6), "timestamp = frame_index / fps")
    ep = pq.read_table(root / EPISODES).to_pydict()
    expect(ep["dataset_from_index"] == [e * per_ep for e in range(n_ep)], "episode ranges")
    expect(ep["length"] == [per_ep] * n_ep, "episode lengths")
    for e in range(n_ep):
        idx = [task_ids[t] for t in ep["tasks"][e]]
        expect(set(d["task_index"][e * per_ep : (e + 1) * per_ep]) == set(idx), f"episode {e} tasks")
    state = np.array(d["observation.state"], np.float32)
    for k, arr in [("observation.state", state), ("action", np.array(d["action"], np.float32))]:
        expect(arr.shape == (T, info["features"][k]["shape"][0]), f"{k} shape {arr.shape}")
        expect(np.allclose(stats[k]["mean"], arr.mean(0), atol=1e-5), f"stats {k} mean")
        expect(np.allclose(stats[k]["std"], arr.std(0), atol=1e-5), f"stats {k} std")
        expect(np.allclose(stats[k]["q50"], np.quantile(arr, 0.5, axis=0), atol=1e-5), f"stats {k} q50")
        expect(stats[k]["count"] == [T], f"stats {k} count")
    for key, f in info["features"].items():
        if f["dtype"] != "image":
            continue
        imgs = np.stack([decode_png(x["bytes"]) for x in d[key]])
        expect(imgs.shape == (T, *f["shape"]), f"{key} decoded shape {imgs.shape}")
        expect(imgs.std() > 10, f"{key}: frames are not blank")
        mean = (imgs / 255.0).mean(axis=(0, 1, 2))
        expect(np.allclose(np.array(stats[key]["mean"]).ravel(), mean, atol=1e-6), f"stats {key} mean")
    print(f"ok: {T} frames, {n_ep} episodes, {len(task_ids)} tasks match the LeRobot reference layout")


if __name__ == "__main__":
    main()
