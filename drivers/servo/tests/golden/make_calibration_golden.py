"""Writes calibration_golden.json: LeRobot 0.6.1's own `lerobot-calibrate`
procedure (`SOFollower` / `KochFollower`: `connect(calibrate=False)`,
`calibrate()`, `disconnect()`, as `lerobot/scripts/lerobot_calibrate.py`
runs them) on fixed register readings, for `tests/calibrate.rs` to compare
`ganglion_servo::calibrate` against: the calibration file byte for byte,
its path under the calibration root, the registers it leaves on the
servos, and the prompts.

Only the wire is faked: the bus's three raw register calls (`_read`,
`_write`, `_sync_read`) go to a dictionary of registers per servo id,
with `Present_Position` computed from a simulated encoder position and the
`Homing_Offset` register as each vendor documents it (Feetech: actual -
offset, wrapped to 0..4095; Dynamixel: actual + offset). Everything else
is LeRobot's code: the configure writes, `set_half_turn_homings`
(`reset_calibration`, `_get_half_turn_homings`, sign encodings),
`record_ranges_of_motion` (user input through `input()` and
`enter_pressed()`, patched to answer ENTER), `write_calibration` and
`_save_calibration` (draccus).

Needs LeRobot 0.6.1 with its `feetech`, `dynamixel` extras (Python >= 3.12;
torch is imported by LeRobot but unused). Not run in CI: the JSON is
committed. To regenerate:

    HF_HUB_OFFLINE=1 /work/lerobot-venv/bin/python \
        drivers/servo/tests/golden/make_calibration_golden.py > \
        drivers/servo/tests/golden/calibration_golden.json
"""

import builtins
import contextlib
import io
import json
import os
import sys
import tempfile
from pathlib import Path

# LeRobot reads the calibration root from the environment at import.
ROOT = Path(tempfile.mkdtemp(prefix="lerobot-calibration-"))
os.environ["HF_LEROBOT_CALIBRATION"] = str(ROOT)

import lerobot  # noqa: E402
import lerobot.motors.motors_bus as motors_bus  # noqa: E402
from lerobot.motors.encoding_utils import encode_sign_magnitude, encode_twos_complement  # noqa: E402
from lerobot.robots.koch_follower import KochFollower, KochFollowerConfig  # noqa: E402
from lerobot.robots.so_follower import SOFollower, SOFollowerRobotConfig  # noqa: E402

ROBOT_ID = "golden"

# What the hands do. `middle`: each encoder's position (Homing_Offset 0)
# when the user presses ENTER at "middle of its range"; `sweep`: the
# Present_Position readings, after homing, of every sync read while the
# ranges are recorded (the first is the arm still in the middle: 2047);
# `old`: a previous calibration on the servos, which LeRobot resets first.
CASES = {
    "so_follower": {
        "make": lambda: SOFollower(SOFollowerRobotConfig(port="/dev/ttyFAKE", id=ROBOT_ID)),
        "protocol": "feetech",
        "middle": [1800, 2300, 1050, 3000, 2600, 2100],
        "old": {"Homing_Offset": -300, "Min_Position_Limit": 700, "Max_Position_Limit": 3400},
        "sweep": [
            [2047, 2047, 2047, 2047, 2047, 2047],
            [1500, 2047, 2047, 2047, 2100, 2047],
            [3100, 2047, 2047, 2047, 1000, 2047],
            [2047, 900, 2047, 2047, 3900, 2047],
            [2047, 3200, 1111, 2047, 2047, 2047],
            [2047, 2047, 2999, 700, 2047, 2047],
            [2047, 2047, 2047, 3333, 2047, 1990],
            [2047, 2047, 2047, 2047, 2047, 3480],
            [1600, 2047, 2047, 2047, 2047, 2047],
        ],
        "registers": ["Homing_Offset", "Min_Position_Limit", "Max_Position_Limit", "Operating_Mode",
                      "Torque_Enable", "Lock"],
    },
    "koch_follower": {
        "make": lambda: KochFollower(KochFollowerConfig(port="/dev/ttyFAKE", id=ROBOT_ID)),
        "protocol": "dynamixel",
        "middle": [1500, 2900, 1200, 2047, 3500, 2600],
        "old": {"Homing_Offset": 250, "Min_Position_Limit": 100, "Max_Position_Limit": 4000},
        "sweep": [
            [2047, 2047, 2047, 2047, 2047, 2047],
            [100, 1400, 2047, 2047, 2047, 2047],
            [4000, 2800, 2047, 2047, 2047, 2047],
            [2047, 2047, 900, 2047, 2047, 2047],
            [2047, 2047, 3050, 1234, 2047, 2047],
            [2047, 2047, 2047, 2890, 10, 2047],
            [2047, 2047, 2047, 2047, 4090, 2010],
            [2047, 2047, 2047, 2047, 2047, 2950],
        ],
        "registers": ["Homing_Offset", "Min_Position_Limit", "Max_Position_Limit", "Operating_Mode",
                      "Torque_Enable", "Drive_Mode"],
    },
}


class Wire:
    """The servos behind a LeRobot bus: registers per id, raw as on the wire."""

    def __init__(self, bus, protocol, case):
        self.bus, self.protocol, self.case = bus, protocol, case
        self.model = next(iter(bus.motors.values())).model
        self.ids = [m.id for m in bus.motors.values()]
        self.regs = {i: {} for i in self.ids}
        self.actual = dict(zip(self.ids, case["middle"]))
        self.position_reads = 0
        for name, value in case["old"].items():
            for i in self.ids:
                self.put(i, name, value)

    def addr(self, name):
        return self.bus.model_ctrl_table[self.model][name]

    def encode(self, name, value):
        table = self.bus.model_encoding_table.get(self.model, {})
        if name not in table:
            return value
        if self.protocol == "feetech":
            return encode_sign_magnitude(value, table[name])
        return encode_twos_complement(value, table[name])

    def put(self, i, name, value):
        self.regs[i][self.addr(name)[0]] = self.encode(name, value)

    def decoded(self, i, name):
        return self.bus._decode_sign(name, {i: self.regs[i].get(self.addr(name)[0], 0)})[i]

    def present(self, i):
        offset = self.decoded(i, "Homing_Offset")
        if self.protocol == "feetech":
            return (self.actual[i] - offset) % 4096
        return self.actual[i] + offset

    def move_to_present(self, i, present):
        offset = self.decoded(i, "Homing_Offset")
        self.actual[i] = present + offset if self.protocol == "feetech" else present - offset

    # The bus's raw calls.
    def _read(self, address, length, motor_id, **_):
        return self.regs[motor_id].get(address, 0), self.bus._comm_success, 0

    def _write(self, addr, length, motor_id, value, **_):
        self.regs[motor_id][addr] = value
        return self.bus._comm_success, 0

    def _sync_read(self, addr, length, motor_ids, **_):
        if (addr, length) != self.addr("Present_Position"):
            # Koch's connect reads the calibration registers (is_calibrated).
            return {i: self.regs[i].get(addr, 0) for i in motor_ids}, self.bus._comm_success
        self.position_reads += 1
        # Read 1: set_half_turn_homings; reads 2..: the ranges (the sweep).
        k = self.position_reads - 2
        if k >= 0:
            reading = self.case["sweep"][min(k, len(self.case["sweep"]) - 1)]
            for i, p in zip(self.ids, reading):
                self.move_to_present(i, p)
        values = {i: self.encode("Present_Position", self.present(i)) for i in motor_ids}
        return values, self.bus._comm_success

    def done(self):
        return self.position_reads >= 1 + len(self.case["sweep"])


def run(name, case):
    robot = case["make"]()
    bus = robot.bus
    wire = Wire(bus, case["protocol"], case)
    bus._read, bus._write, bus._sync_read = wire._read, wire._write, wire._sync_read
    port = bus.port_handler

    def open_port():
        port.is_open = True
        return True

    port.openPort = open_port
    port.closePort = lambda: setattr(port, "is_open", False)
    port.clearPort = lambda: None
    bus._handshake = lambda: None

    prompts = []

    def fake_input(prompt=""):
        prompts.append(prompt)
        return ""

    motors_bus.enter_pressed = wire.done
    motors_bus.time.sleep = lambda s: None
    builtins.input = fake_input
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        # lerobot_calibrate.calibrate(): connect(calibrate=False), calibrate(), disconnect().
        robot.connect(calibrate=False)
        try:
            robot.calibrate()
        finally:
            robot.disconnect()
    path = robot.calibration_fpath
    text = path.read_text()
    table_starts = ("---", "NAME", "\x1b") + tuple(bus.motors)
    messages = [
        line.replace(str(path), "{path}")
        for line in out.getvalue().splitlines()
        if line and not line.startswith(table_starts)
    ]
    registers = {
        str(i): {r: wire.decoded(i, r) for r in case["registers"]} for i in wire.ids
    }
    return {
        "robot_id": ROBOT_ID,
        "class": type(robot).__name__,
        "motors": {m: bus.motors[m].id for m in bus.motors},
        "path": str(path.relative_to(ROOT)),
        "middle": case["middle"],
        "old": case["old"],
        "sweep": case["sweep"],
        "prompts": prompts,
        "messages": messages,
        "registers": registers,
        "calibration_json": text,
    }


def main():
    golden = {"lerobot_version": lerobot.__version__}
    for name, case in CASES.items():
        golden[name] = run(name, case)
    json.dump(golden, sys.stdout, indent=1)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
