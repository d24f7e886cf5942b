"""Talks to a Dynamixel protocol 2.0 bus with ROBOTIS's Python SDK
(`dynamixel_sdk`, PyPI `dynamixel-sdk`) and checks every answer; exits
non-zero on any mismatch. The Rust test `dynamixel_interop` runs it against
the X-series emulator's pty.

    python dynamixel_peer.py PORT --ids 1,2,3,4,5,6 --phase basic|alarm|silent

Register addresses are LeRobot's X_SERIES_CONTROL_TABLE.
"""

import argparse
import json
import sys
import time

import dynamixel_sdk as dxl

ID = 7
RETURN_DELAY_TIME = 9
DRIVE_MODE = 10
OPERATING_MODE = 11
HOMING_OFFSET = 20
MAX_POSITION_LIMIT = 48
MIN_POSITION_LIMIT = 52
TORQUE_ENABLE = 64
HARDWARE_ERROR_STATUS = 70
POSITION_P_GAIN = 84
GOAL_POSITION = 116
PRESENT_POSITION = 132
PRESENT_INPUT_VOLTAGE = 144
PRESENT_TEMPERATURE = 146
XL330_M288 = 1200

failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, expected {want!r}")
        print(f"MISMATCH {what}: got {got!r}, expected {want!r}", flush=True)


def ok(ph, what, comm, err):
    check(f"{what} comm", ph.getTxRxResult(comm), ph.getTxRxResult(dxl.COMM_SUCCESS))
    check(f"{what} error byte", err, 0)


def to_signed(value, size):
    bits = 8 * size
    return value - (1 << bits) if value & (1 << (bits - 1)) else value


def to_unsigned(value, size):
    return value & ((1 << (8 * size)) - 1)


def le4(value):
    v = to_unsigned(value, 4)
    return [dxl.DXL_LOBYTE(dxl.DXL_LOWORD(v)), dxl.DXL_HIBYTE(dxl.DXL_LOWORD(v)),
            dxl.DXL_LOBYTE(dxl.DXL_HIWORD(v)), dxl.DXL_HIBYTE(dxl.DXL_HIWORD(v))]


def sync_read(ph, port, ids, addr, size):
    group = dxl.GroupSyncRead(port, ph, addr, size)
    for sid in ids:
        check(f"GroupSyncRead.addParam({sid})", group.addParam(sid), True)
    comm = group.txRxPacket()
    check("GroupSyncRead comm", ph.getTxRxResult(comm), ph.getTxRxResult(dxl.COMM_SUCCESS))
    out = {}
    for sid in ids:
        check(f"GroupSyncRead.isAvailable({sid})", group.isAvailable(sid, addr, size), True)
        out[sid] = to_signed(group.getData(sid, addr, size), size)
    return out


def basic(ph, port, ids):
    report = {}
    for sid in ids:
        model, comm, err = ph.ping(port, sid)
        ok(ph, f"ping {sid}", comm, err)
        check(f"model of {sid}", model, XL330_M288)
        value, comm, err = ph.read1ByteTxRx(port, sid, ID)
        ok(ph, f"read ID {sid}", comm, err)
        check(f"ID of {sid}", value, sid)
    found, comm = ph.broadcastPing(port)
    check("broadcast ping comm", comm, dxl.COMM_SUCCESS)
    check("broadcast ping ids", sorted(found), sorted(ids))
    _, comm, _ = ph.ping(port, 200)
    check("ping 200 (absent)", ph.getTxRxResult(comm), ph.getTxRxResult(dxl.COMM_RX_TIMEOUT))

    # EEPROM with torque off: limits, offset (negative, two's complement), delay.
    for sid in ids:
        ok(ph, f"torque off {sid}", *ph.write1ByteTxRx(port, sid, TORQUE_ENABLE, 0))
        ok(ph, f"return delay {sid}", *ph.write1ByteTxRx(port, sid, RETURN_DELAY_TIME, 0))
        ok(ph, f"min limit {sid}", *ph.write4ByteTxRx(port, sid, MIN_POSITION_LIMIT, 100 + sid))
        ok(ph, f"max limit {sid}", *ph.write4ByteTxRx(port, sid, MAX_POSITION_LIMIT, 4000 - sid))
        value, comm, err = ph.read4ByteTxRx(port, sid, MIN_POSITION_LIMIT)
        ok(ph, f"read min {sid}", comm, err)
        check(f"min limit of {sid}", value, 100 + sid)
    first = ids[0]
    before, comm, err = ph.read4ByteTxRx(port, first, PRESENT_POSITION)
    ok(ph, "present before offset", comm, err)
    ok(ph, "homing offset", *ph.write4ByteTxRx(port, first, HOMING_OFFSET, to_unsigned(-123, 4)))
    raw, comm, err = ph.read4ByteTxRx(port, first, HOMING_OFFSET)
    check("homing offset read back", to_signed(raw, 4), -123)
    after, comm, err = ph.read4ByteTxRx(port, first, PRESENT_POSITION)
    # Dynamixel: Present_Position = actual + Homing_Offset.
    check("present moves by the offset", to_signed(after, 4) - to_signed(before, 4), -123)
    report["present_after_offset"] = to_signed(after, 4)

    # Refusals with the protocol's error numbers.
    ok(ph, "torque on (first)", *ph.write1ByteTxRx(port, first, TORQUE_ENABLE, 1))
    comm, err = ph.write1ByteTxRx(port, first, OPERATING_MODE, 4)
    check("EEPROM write with torque on", (comm, err & 0x7F), (dxl.COMM_SUCCESS, 7))
    check("SDK names it", ph.getRxPacketError(err), "[RxPacketError] Writing or Reading is not available to target address!")
    comm, err = ph.write4ByteTxRx(port, first, GOAL_POSITION, 4050)
    check("goal beyond the limit in position mode", (comm, err & 0x7F), (dxl.COMM_SUCCESS, 6))
    ok(ph, "torque off (first)", *ph.write1ByteTxRx(port, first, TORQUE_ENABLE, 0))

    # Extended position mode, torque on, sync write goals, watch them arrive.
    for sid in ids:
        ok(ph, f"extended mode {sid}", *ph.write1ByteTxRx(port, sid, OPERATING_MODE, 4))
        ok(ph, f"torque on {sid}", *ph.write1ByteTxRx(port, sid, TORQUE_ENABLE, 1))
    # -131073 is FF FF FD FF little-endian: the SDK stuffs it.
    goals = {sid: 1500 + 100 * i for i, sid in enumerate(ids)}
    goals[ids[-1]] = -131073
    group = dxl.GroupSyncWrite(port, ph, GOAL_POSITION, 4)
    for sid, g in goals.items():
        check(f"GroupSyncWrite.addParam({sid})", group.addParam(sid, le4(g)), True)
    comm = group.txPacket()
    check("GroupSyncWrite comm", ph.getTxRxResult(comm), ph.getTxRxResult(dxl.COMM_SUCCESS))
    deadline = time.monotonic() + 10.0
    while True:
        positions = sync_read(ph, port, ids, PRESENT_POSITION, 4)
        if positions == goals or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    check("positions reach the sync-written goals", positions, goals)
    goal_back, comm, err = ph.read4ByteTxRx(port, ids[-1], GOAL_POSITION)
    ok(ph, "read stuffed goal", comm, err)
    check("stuffed goal read back", to_signed(goal_back, 4), -131073)

    # Bulk read: a different register from each servo.
    bulk = dxl.GroupBulkRead(port, ph)
    plan = {}
    for i, sid in enumerate(ids):
        addr, size = [(PRESENT_POSITION, 4), (PRESENT_INPUT_VOLTAGE, 2), (PRESENT_TEMPERATURE, 1), (POSITION_P_GAIN, 2)][i % 4]
        plan[sid] = (addr, size)
        check(f"GroupBulkRead.addParam({sid})", bulk.addParam(sid, addr, size), True)
    comm = bulk.txRxPacket()
    check("GroupBulkRead comm", ph.getTxRxResult(comm), ph.getTxRxResult(dxl.COMM_SUCCESS))
    for sid, (addr, size) in plan.items():
        check(f"GroupBulkRead.isAvailable({sid})", bulk.isAvailable(sid, addr, size), True)
        value = to_signed(bulk.getData(sid, addr, size), size) if addr == PRESENT_POSITION else bulk.getData(sid, addr, size)
        want = {PRESENT_POSITION: goals[sid], PRESENT_INPUT_VOLTAGE: 50, PRESENT_TEMPERATURE: 30, POSITION_P_GAIN: 400}[addr]
        check(f"bulk read {sid} at {addr}", value, want)
    report["goals"] = goals
    return report


def alarm(ph, port, ids, target):
    # The emulator raised overload (bit 5) on `target`: the alert bit is in
    # its status packets, Hardware_Error_Status says which, torque is off.
    _, comm, err = ph.ping(port, target)
    check("ping alerted comm", comm, dxl.COMM_SUCCESS)
    check("alert bit", err & 0x80, 0x80)
    check("SDK names it", ph.getRxPacketError(err), "[RxPacketError] Hardware error occurred. Check the error at Control Table (Hardware Error Status)!")
    value, comm, err = ph.read1ByteTxRx(port, target, HARDWARE_ERROR_STATUS)
    check("Hardware_Error_Status", (value, comm), (0x20, dxl.COMM_SUCCESS))
    value, comm, err = ph.read1ByteTxRx(port, target, TORQUE_ENABLE)
    check("torque off after overload", value, 0)
    comm, err = ph.write1ByteTxRx(port, target, TORQUE_ENABLE, 1)
    check("torque refused while overloaded", err & 0x7F, 1)
    others = [sid for sid in ids if sid != target]
    if others:
        _, _, err = ph.ping(port, others[0])
        check("others have no alert", err, 0)
    return {"alerted": target}


def silent(ph, port, ids, target):
    _, comm, _ = ph.ping(port, target)
    check("ping silent servo", ph.getTxRxResult(comm), ph.getTxRxResult(dxl.COMM_RX_TIMEOUT))
    group = dxl.GroupSyncRead(port, ph, PRESENT_POSITION, 4)
    for sid in ids:
        group.addParam(sid)
    comm = group.txRxPacket()
    check("sync read with a silent servo fails", comm != dxl.COMM_SUCCESS, True)
    return {"silent": target}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("port")
    ap.add_argument("--ids", default="1,2,3,4,5,6")
    ap.add_argument("--phase", choices=["basic", "alarm", "silent"], default="basic")
    ap.add_argument("--target", type=int, default=0)
    args = ap.parse_args()
    ids = [int(s) for s in args.ids.split(",")]
    # The SDK's packet timeout is the wire time + 2 x LATENCY_TIMER (16 ms,
    # a USB adapter's default) + 2 ms. A loaded CI machine can delay the
    # emulator's thread longer than that, and the SDK then reads every later
    # answer one packet late; a longer adapter latency keeps it in step.
    dxl.port_handler.LATENCY_TIMER = 250
    port = dxl.PortHandler(args.port)
    if not port.openPort():
        print(f"cannot open {args.port}", file=sys.stderr)
        return 2
    if not port.setBaudRate(1_000_000):
        print("cannot set 1 Mbit/s", file=sys.stderr)
        return 2
    ph = dxl.PacketHandler(2.0)
    if args.phase == "basic":
        report = basic(ph, port, ids)
    elif args.phase == "alarm":
        report = alarm(ph, port, ids, args.target)
    else:
        report = silent(ph, port, ids, args.target)
    port.closePort()
    report["failures"] = failures
    print(json.dumps(report, default=str), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
