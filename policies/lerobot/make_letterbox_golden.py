"""Goldens for Ganglion's letterbox resize (`[[cameras]] letterbox`):
LeRobot's own resize-with-pad functions on fixed frames.

- `centered`: `lerobot.policies.common.vla_utils.resize_with_pad_torch`
  (openpi's, used by pi0 / pi0.5 / pi0-FAST): centred, black padding;
- `bottom_right`: `lerobot.policies.common.vla_utils.resize_with_pad`
  (SmolVLA / xVLA): padding on the left and top, here with SmolVLA's
  `pad_value=0`.

Frames are rgb8, pixel (x, y, ch) = (29x + 53y + 71ch) mod 256, scaled to
[0, 1] as LeRobot's image features are; outputs are `[3, H, W]` floats in
[0, 1]. Writes policies/fixtures/lerobot-letterbox/golden.json (read by
policies/tests/preprocess.rs).

Also the anti-aliased resize (`[[cameras]] antialias`) on the same frames:
`torch.nn.functional.interpolate(mode="bilinear", antialias=True,
align_corners=False)` (torchvision's `Resize`), checked here against PIL's
`BILINEAR` on float ("F" mode) images, the same filter implemented
separately; written to policies/fixtures/lerobot-letterbox/antialias.json.
Run by hand:

    HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python policies/lerobot/make_letterbox_golden.py
"""

import json
import pathlib

import lerobot
import numpy as np
import PIL
import torch
from PIL import Image
from lerobot.policies.common.vla_utils import resize_with_pad, resize_with_pad_torch

OUT = pathlib.Path(__file__).resolve().parents[1] / "fixtures" / "lerobot-letterbox" / "golden.json"
# (source width, height) -> (input width, height)
CASES = [((40, 30), (16, 16)), ((30, 40), (16, 16)), ((20, 20), (16, 12)), ((13, 7), (16, 16)), ((64, 48), (24, 24))]


def frame(w, h):
    x, y, c = np.meshgrid(np.arange(w), np.arange(h), np.arange(3), indexing="xy")
    return ((29 * x + 53 * y + 71 * c) % 256).astype(np.uint8)  # [h, w, 3]


# (source width, height) -> (output width, height): 4x/3x, 10x/5x and
# non-integer shrinks, identity, an upscale.
AA_CASES = [((96, 72), (24, 24)), ((200, 100), (20, 20)), ((50, 30), (16, 12)), ((40, 40), (40, 40)),
            ((13, 7), (16, 16))]


def antialias():
    out = {"torch_version": torch.__version__, "pillow_version": PIL.__version__, "cases": []}
    for (sw, sh), (ow, oh) in AA_CASES:
        img = torch.from_numpy(frame(sw, sh)).permute(2, 0, 1)[None].float() / 255.0
        res = torch.nn.functional.interpolate(img, size=(oh, ow), mode="bilinear", antialias=True, align_corners=False)
        pil = np.stack([np.asarray(Image.fromarray(img[0, c].numpy(), mode="F").resize((ow, oh), Image.BILINEAR))
                        for c in range(3)])
        gap = float(np.abs(pil - res[0].numpy()).max())
        assert gap < 1e-5, ((sw, sh), (ow, oh), gap)
        out["cases"].append({"source": [sw, sh], "input": [ow, oh], "pil_gap": gap,
                             "pixels": [round(float(v), 7) for v in res[0].reshape(-1).numpy()]})
    path = OUT.parent / "antialias.json"
    path.write_text(json.dumps(out) + "\n")
    print(f"wrote {path} ({len(out['cases'])} cases)")


def main():
    out = {"lerobot_version": lerobot.__version__, "torch_version": torch.__version__, "cases": []}
    for (sw, sh), (ow, oh) in CASES:
        img = torch.from_numpy(frame(sw, sh)).permute(2, 0, 1)[None].float() / 255.0  # [1, 3, h, w]
        assert img.shape == (1, 3, sh, sw)
        centered = resize_with_pad_torch(img, oh, ow)
        bottom_right = resize_with_pad(img, oh, ow, pad_value=0)
        for mode, res in (("centered", centered), ("bottom_right", bottom_right)):
            assert tuple(res.shape) == (1, 3, oh, ow), (mode, res.shape)
            out["cases"].append({
                "mode": mode, "source": [sw, sh], "input": [ow, oh],
                "pixels": [round(float(v), 7) for v in res[0].reshape(-1).numpy()],
            })
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps(out) + "\n")
    print(f"wrote {OUT} ({len(out['cases'])} cases)")
    antialias()


if __name__ == "__main__":
    main()
