"""Writes lerobot_normalize.json: LeRobot's own `MotorsBus._normalize` /
`_unnormalize` (with `apply_drive_mode` True as on Feetech, False as on
Dynamixel) and its sign-magnitude and two's complement helpers, run on a
grid of calibrations and values, for `tests/lerobot_golden.rs` to compare
against bit for bit.

LeRobot itself needs torch to install, so this imports only the two files
it needs, `src/lerobot/motors/motors_bus.py` and `encoding_utils.py`, from a
LeRobot checkout, with the few modules they import at the top stubbed (tqdm,
lerobot.utils.*: none is used by the functions called). Not run in CI: the
JSON is committed. LeRobot's source needs Python >= 3.12. To regenerate:

    git clone https://github.com/huggingface/lerobot /tmp/lerobot
    python3.12 drivers/servo/tests/golden/make_lerobot_golden.py /tmp/lerobot > \
        drivers/servo/tests/golden/lerobot_normalize.json
"""

import importlib.util
import json
import struct
import subprocess
import sys
import types
from pathlib import Path


def stub(name, **attrs):
    m = types.ModuleType(name)
    m.__dict__.update(attrs)
    sys.modules[name] = m
    return m


def load(name, path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def bits(x):
    return struct.unpack("<Q", struct.pack("<d", x))[0]


def main():
    root = Path(sys.argv[1])
    motors = root / "src" / "lerobot" / "motors"
    stub("tqdm", tqdm=lambda it, **k: it)
    stub("lerobot", __path__=[str(root / "src" / "lerobot")])
    stub("lerobot.utils", __path__=[])
    stub(
        "lerobot.utils.import_utils",
        _deepdiff_available=False,
        _serial_available=False,
        require_package=lambda *a, **k: None,
    )
    stub("lerobot.utils.decorators", check_if_already_connected=lambda f: f, check_if_not_connected=lambda f: f)
    stub("lerobot.utils.utils", enter_pressed=lambda: True, move_cursor_up=lambda n: None)
    stub("lerobot.motors", __path__=[str(motors)])
    bus_mod = load("lerobot.motors.motors_bus", motors / "motors_bus.py")
    enc = load("lerobot.motors.encoding_utils", motors / "encoding_utils.py")
    Mode = bus_mod.MotorNormMode

    calibrations = [
        # (drive_mode, range_min, range_max): SO-101-like ranges, an
        # inverted joint, a full-turn wrist, odd and even sums (mid .5).
        (0, 800, 3300),
        (1, 800, 3300),
        (0, 2020, 3500),
        (1, 2020, 3501),
        (0, 0, 4095),
        (0, 1500, 1501),
    ]
    raws = [-5, 0, 1, 799, 800, 801, 1234, 2047, 2048, 2049, 2760, 3299, 3300, 3301, 3500, 3501, 4095, 4096]
    values = {
        "range_m100_100": [-150.0, -100.0, -99.99, -33.3333, -0.5, 0.0, 0.1, 12.345678, 50.0, 99.999, 100.0, 120.0],
        "range_0_100": [-10.0, 0.0, 0.001, 25.5, 33.333333, 50.0, 66.6, 99.5, 100.0, 250.0],
        "degrees": [-200.0, -180.0, -90.5, -45.123, -0.01, 0.0, 0.01, 1.0, 33.3, 90.0, 179.99, 180.0, 360.0],
    }
    cases = []
    modes = [("range_m100_100", Mode.RANGE_M100_100), ("range_0_100", Mode.RANGE_0_100), ("degrees", Mode.DEGREES)]
    # apply_drive_mode: True for Feetech, False for Dynamixel (the servo inverts).
    grid = [(m, dm, lo, hi, apply) for apply in (True, False) for m in modes for dm, lo, hi in calibrations]
    for (mode_name, mode), drive_mode, lo, hi, apply in grid:
        if not apply and drive_mode == 0:
            continue  # the same numbers as with apply
        cal = bus_mod.MotorCalibration(id=1, drive_mode=drive_mode, homing_offset=0, range_min=lo, range_max=hi)
        fake = types.SimpleNamespace(
            calibration={"m": cal},
            motors={"m": bus_mod.Motor(1, "sts3215", mode)},
            apply_drive_mode=apply,
            model_resolution_table={"sts3215": 4096},
            _id_to_name=lambda i: "m",
            _id_to_model=lambda i: "sts3215",
        )
        norm = []
        for r in raws:
            x = bus_mod.MotorsBus._normalize(fake, {1: r})[1]
            norm.append({"raw": r, "value": x, "bits": bits(x)})
        unnorm = [
            {"value": v, "value_bits": bits(v), "raw": bus_mod.MotorsBus._unnormalize(fake, {1: v})[1]}
            for v in values[mode_name]
        ]
        cases.append(
            {
                "mode": mode_name,
                "drive_mode": drive_mode,
                "apply_drive_mode": apply,
                "range_min": lo,
                "range_max": hi,
                "normalize": norm,
                "unnormalize": unnorm,
            }
        )
    sign = []
    for value, bit in [(0, 11), (5, 11), (-5, 11), (2047, 11), (-2047, 11), (-1234, 11), (300, 15), (-300, 15), (-1, 10)]:
        encoded = enc.encode_sign_magnitude(value, bit)
        sign.append({"value": value, "bit": bit, "encoded": encoded, "decoded": enc.decode_sign_magnitude(encoded, bit)})
    twos = []
    for value, n_bytes in [(0, 4), (-1, 4), (-123, 4), (-131073, 4), (1048575, 4), (-1, 2), (300, 2), (-32768, 2)]:
        encoded = enc.encode_twos_complement(value, n_bytes)
        twos.append({"value": value, "bytes": n_bytes, "encoded": encoded, "decoded": enc.decode_twos_complement(encoded, n_bytes)})
    try:
        commit = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        commit = "unknown"
    out = {
        "source": "huggingface/lerobot src/lerobot/motors/motors_bus.py and encoding_utils.py",
        "lerobot_commit": commit or "unknown",
        "python": sys.version.split()[0],
        "cases": cases,
        "sign_magnitude": sign,
        "twos_complement": twos,
    }
    json.dump(out, sys.stdout, indent=0)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
