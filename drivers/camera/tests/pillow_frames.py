"""Camera frames from encoders we did not write, for tests/camera.rs.

Writes into OUT_DIR (argv[1]), for a W x H test pattern (argv[2], argv[3]):
  pattern.rgb             the RGB8 pattern itself
  q{Q}_{S}.jpg            Pillow (libjpeg-turbo) JPEGs at quality Q, chroma
                          subsampling S (444, 422, 420), standard Huffman tables
  q{Q}_{S}.rgb            Pillow's own decode of that JPEG (RGB8)
  pattern.yuyv            the pattern as YUYV 4:2:2, BT.601 limited range,
                          computed here with numpy from the ITU-R BT.601 formulas
                          (chroma of each pixel pair averaged)
  pattern_yuyv.rgb        that YUYV converted back with the BT.601 inverse in
                          float64, rounded (what a correct decoder must give)
"""

import sys

import numpy as np
from PIL import Image

out, w, h = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

# Smooth gradients (what JPEG keeps well) plus saturated blocks with sharp
# edges on even columns (chroma edges that 4:2:2 pairs do not straddle).
y, x = np.mgrid[0:h, 0:w].astype(np.float64)
rgb = np.stack(
    [
        255.0 * x / (w - 1),
        255.0 * y / (h - 1),
        127.5 + 100.0 * np.sin(2 * np.pi * (x + y) / w),
    ],
    axis=-1,
)
bw, bh = (w // 8) & ~1, h // 6
for i, colour in enumerate([(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)]):
    x0, y0 = (3 * i * bw // 2 + bw // 2) & ~1, bh + (i % 2) * 2 * bh
    rgb[y0 : y0 + bh, x0 : x0 + bw] = colour
pattern = np.clip(np.rint(rgb), 0, 255).astype(np.uint8)
pattern.tofile(f"{out}/pattern.rgb")

image = Image.fromarray(pattern, "RGB")
for quality, subsampling, code in [(95, 0, "444"), (90, 1, "422"), (75, 2, "420")]:
    path = f"{out}/q{quality}_{code}.jpg"
    # optimize=False: libjpeg's standard (Annex K) Huffman tables, as UVC
    # cameras use; the tests also strip them to mimic a camera's MJPEG.
    image.save(path, "JPEG", quality=quality, subsampling=subsampling, optimize=False)
    np.asarray(Image.open(path).convert("RGB"), dtype=np.uint8).tofile(f"{out}/q{quality}_{code}.rgb")

# RGB -> Y'CbCr, BT.601, limited range (ITU-R BT.601-7: Kr 0.299, Kb 0.114).
r, g, b = (pattern[..., c].astype(np.float64) / 255.0 for c in range(3))
luma = 0.299 * r + 0.587 * g + 0.114 * b
yy = 16.0 + 219.0 * luma
cb = 128.0 + 224.0 * (b - luma) / 1.772
cr = 128.0 + 224.0 * (r - luma) / 1.402
cb2 = (cb[:, 0::2] + cb[:, 1::2]) / 2.0
cr2 = (cr[:, 0::2] + cr[:, 1::2]) / 2.0
q = lambda v: np.clip(np.rint(v), 0, 255).astype(np.uint8)
yuyv = np.empty((h, w * 2), dtype=np.uint8)
yuyv[:, 0::4] = q(yy[:, 0::2])
yuyv[:, 1::4] = q(cb2)
yuyv[:, 2::4] = q(yy[:, 1::2])
yuyv[:, 3::4] = q(cr2)
yuyv.tofile(f"{out}/pattern.yuyv")

# The inverse, in float64 from the same definitions, on the quantized bytes.
Y = yuyv[:, 0::2].astype(np.float64)
U = np.repeat(yuyv[:, 1::4].astype(np.float64), 2, axis=1)
V = np.repeat(yuyv[:, 3::4].astype(np.float64), 2, axis=1)
L = (Y - 16.0) / 219.0
Pb = (U - 128.0) / 224.0
Pr = (V - 128.0) / 224.0
R = L + 1.402 * Pr
B = L + 1.772 * Pb
G = (L - 0.299 * R - 0.114 * B) / 0.587
back = np.stack([R, G, B], axis=-1) * 255.0
q(back).tofile(f"{out}/pattern_yuyv.rgb")
print("ok")
