"""Real-size bundles without their weights, so they travel to a GPU machine
(whose transfer limit is 64 MiB; ACT's graph is 138 MB and Diffusion's
1 GB), and the weights drawn again there. For timing only: the drawn
weights are not the model's, so nothing is compared with a golden.

    # here, after make_real_size.py (numpy, onnx):
    python3 policies/gpu/weights.py strip /tmp/real-size OUT
    # on the GPU machine (policies/gpu/run.sh), then `ganglion policy sign`:
    python3 policies/gpu/weights.py fill OUT

`strip` copies `act/bundle` and `diffusion/bundle` to OUT with every float
initializer of more than 1024 elements emptied and its shape, mean and
standard deviation recorded beside the graph (`NAME.onnx.weights.json`);
the rest (small tensors, integers: shapes, indices) stays as it was. Other
files over 4 MB (references made with the real weights) are replaced by a
note.
`fill` draws each emptied tensor from a normal distribution with the
recorded mean and deviation (seed 0): the same sizes and magnitudes, so the
same work for every kernel and finite activations (a deviation of 0, as in
a freshly initialized norm's scale of ones, gives the constant back).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

FLOATS = {onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.FLOAT16: np.float16}
SMALL = 1024
BIG = 4_000_000


def strip(src: Path, out: Path) -> None:
    for family in ("act", "diffusion"):
        b, o = src / family / "bundle", out / family / "bundle"
        shutil.rmtree(o, ignore_errors=True)
        o.mkdir(parents=True)
        for f in b.iterdir():
            if f.suffix != ".onnx" and f.stat().st_size > BIG:
                # A reference for the real weights (ACT's parity.json: 15 MB of
                # frames), wrong for the drawn ones; the manifest still lists it.
                (o / f.name).write_text('{"emptied": "weights.py strip: the weights were drawn again"}\n')
                continue
            if f.suffix != ".onnx":
                shutil.copy(f, o / f.name)
                continue
            m = onnx.load(str(f))
            record = []
            for t in m.graph.initializer:
                if t.data_type not in FLOATS or int(np.prod(t.dims)) <= SMALL:
                    continue
                a = numpy_helper.to_array(t).astype(np.float64)
                record.append({"name": t.name, "dims": list(t.dims), "type": t.data_type,
                               "mean": float(a.mean()), "std": float(a.std())})
                t.ClearField("raw_data")
                t.ClearField("float_data")
                t.ClearField("int32_data")
            onnx.save(m, str(o / f.name))
            (o / (f.name + ".weights.json")).write_text(json.dumps(record))
            print(f"{f}: {len(record)} tensors emptied, {f.stat().st_size / 1e6:.1f} -> "
                  f"{(o / f.name).stat().st_size / 1e6:.2f} MB", file=sys.stderr)


def fill(out: Path) -> None:
    rng = np.random.default_rng(0)
    for rec in sorted(out.glob("*/bundle/*.onnx.weights.json")):
        graph = rec.with_name(rec.name.removesuffix(".weights.json"))
        m = onnx.load(str(graph))
        want = {r["name"]: r for r in json.loads(rec.read_text())}
        for t in m.graph.initializer:
            r = want.pop(t.name, None)
            if r is None:
                continue
            a = (r["mean"] + r["std"] * rng.standard_normal(r["dims"])).astype(FLOATS[r["type"]])
            t.CopyFrom(numpy_helper.from_array(a, t.name))
        if want:
            sys.exit(f"{graph}: initializers {sorted(want)[:5]} recorded but not in the graph")
        onnx.save(m, str(graph))
        rec.unlink()
        print(f"{graph}: {graph.stat().st_size / 1e6:.1f} MB", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "strip":
        strip(Path(sys.argv[2]), Path(sys.argv[3]))
    elif len(sys.argv) == 3 and sys.argv[1] == "fill":
        fill(Path(sys.argv[2]))
    else:
        sys.exit(__doc__)
