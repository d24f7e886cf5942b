"""Talks to a Feetech bus with the vendor's Python SDK (`scservo_sdk`, PyPI
`feetech-servo-sdk`) and checks every answer; exits non-zero on the first
mismatch. The Rust test `sdk_interop` runs it against the emulator's pty.

    python scservo_peer.py PORT --ids 1,2,3,4,5,6 --phase basic|alarm|silent

Register addresses are LeRobot's STS_SMS_SERIES_CONTROL_TABLE.
"""

import argparse
import json
import sys
import time

import scservo_sdk as scs

MODEL_NUMBER = (3, 2)
ID = (5, 1)
RETURN_DELAY_TIME = (7, 1)
MIN_POSITION_LIMIT = (9, 2)
MAX_POSITION_LIMIT = (11, 2)
HOMING_OFFSET = (31, 2)
TORQUE_ENABLE = (40, 1)
GOAL_POSITION = (42, 2)
LOCK = (55, 1)
PRESENT_POSITION = (56, 2)
STATE_BLOCK = (56, 10)
STS3215 = 777

failures = []


def check(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, expected {want!r}")
        print(f"MISMATCH {what}: got {got!r}, expected {want!r}", flush=True)


def sign_magnitude(value, bit):
    return (1 << bit) | -value if value < 0 else value


def read(ph, port, sid, reg):
    addr, size = reg
    if size == 1:
        return ph.read1ByteTxRx(port, sid, addr)
    return ph.read2ByteTxRx(port, sid, addr)


def write(ph, port, sid, reg, value):
    addr, size = reg
    if size == 1:
        return ph.write1ByteTxRx(port, sid, addr, value)
    return ph.write2ByteTxRx(port, sid, addr, value)


def ok_read(ph, port, sid, reg, what):
    value, comm, err = read(ph, port, sid, reg)
    check(f"{what} comm", ph.getTxRxResult(comm), ph.getTxRxResult(scs.COMM_SUCCESS))
    check(f"{what} error byte", err, 0)
    return value


def ok_write(ph, port, sid, reg, value, what):
    comm, err = write(ph, port, sid, reg, value)
    check(f"{what} comm", ph.getTxRxResult(comm), ph.getTxRxResult(scs.COMM_SUCCESS))
    check(f"{what} error byte", err, 0)


def sync_read(ph, port, ids, reg):
    addr, size = reg
    group = scs.GroupSyncRead(port, ph, addr, size)
    for sid in ids:
        check(f"GroupSyncRead.addParam({sid})", group.addParam(sid), True)
    comm = group.txRxPacket()
    check("GroupSyncRead comm", ph.getTxRxResult(comm), ph.getTxRxResult(scs.COMM_SUCCESS))
    out = {}
    for sid in ids:
        check(f"GroupSyncRead.isAvailable({sid})", group.isAvailable(sid, addr, size), True)
        out[sid] = group.getData(sid, addr, size)
    return out, group


def basic(ph, port, ids):
    report = {}
    for sid in ids:
        model, comm, err = ph.ping(port, sid)
        check(f"ping {sid} comm", ph.getTxRxResult(comm), ph.getTxRxResult(scs.COMM_SUCCESS))
        check(f"ping {sid} model", model, STS3215)
        check(f"ping {sid} error", err, 0)
        check(f"ID of {sid}", ok_read(ph, port, sid, ID, f"read ID {sid}"), sid)
        check(f"Max_Position_Limit of {sid}", ok_read(ph, port, sid, MAX_POSITION_LIMIT, "read max"), 4095)
    # A servo that is not there does not answer.
    _, comm, _ = ph.ping(port, 200)
    check("ping 200 (absent)", ph.getTxRxResult(comm), ph.getTxRxResult(scs.COMM_RX_TIMEOUT))

    # EEPROM set-up as LeRobot does it: torque off and Lock 0 first.
    first = ids[0]
    for sid in ids:
        ok_write(ph, port, sid, TORQUE_ENABLE, 0, f"torque off {sid}")
        ok_write(ph, port, sid, LOCK, 0, f"lock 0 {sid}")
        ok_write(ph, port, sid, RETURN_DELAY_TIME, 0, f"return delay {sid}")
        ok_write(ph, port, sid, MIN_POSITION_LIMIT, 100 + sid, f"min limit {sid}")
        ok_write(ph, port, sid, MAX_POSITION_LIMIT, 4000 - sid, f"max limit {sid}")
        check(f"min limit {sid} read back", ok_read(ph, port, sid, MIN_POSITION_LIMIT, "read min"), 100 + sid)
    # Homing offset -123 (sign-magnitude, bit 11) on the first servo:
    # Present_Position = actual - Homing_Offset.
    before = ok_read(ph, port, first, PRESENT_POSITION, "present before offset")
    ok_write(ph, port, first, HOMING_OFFSET, sign_magnitude(-123, 11), "homing offset")
    raw = ok_read(ph, port, first, HOMING_OFFSET, "homing offset read back")
    check("homing offset raw", raw, (1 << 11) | 123)
    check("homing offset decoded", scs.SCS_TOHOST(raw, 11), -123)
    after = ok_read(ph, port, first, PRESENT_POSITION, "present after offset")
    check("present moves by the offset", after - before, 123)
    report["present_before_offset"] = before
    report["present_after_offset"] = after

    # A slower answer: Return_Delay_Time 50 (100 us) on the last servo.
    ok_write(ph, port, ids[-1], RETURN_DELAY_TIME, 50, "return delay 100 us")
    model, comm, _ = ph.ping(port, ids[-1])
    check("ping with return delay", (model, comm), (STS3215, scs.COMM_SUCCESS))

    # Sync read of every present position.
    positions, _ = sync_read(ph, port, ids, PRESENT_POSITION)
    report["positions"] = positions

    # Torque on (Torque_Enable 1, Lock 1), sync write goals, watch them arrive.
    for sid in ids:
        ok_write(ph, port, sid, TORQUE_ENABLE, 1, f"torque on {sid}")
        ok_write(ph, port, sid, LOCK, 1, f"lock 1 {sid}")
    goals = {sid: 1500 + 100 * i for i, sid in enumerate(ids)}
    group = scs.GroupSyncWrite(port, ph, GOAL_POSITION[0], GOAL_POSITION[1])
    for sid, g in goals.items():
        check(f"GroupSyncWrite.addParam({sid})", group.addParam(sid, [scs.SCS_LOBYTE(g), scs.SCS_HIBYTE(g)]), True)
    comm = group.txPacket()
    check("GroupSyncWrite comm", ph.getTxRxResult(comm), ph.getTxRxResult(scs.COMM_SUCCESS))
    deadline = time.monotonic() + 5.0
    while True:
        positions, _ = sync_read(ph, port, ids, PRESENT_POSITION)
        if positions == goals or time.monotonic() > deadline:
            break
        time.sleep(0.02)
    check("positions reach the sync-written goals", positions, goals)
    for sid in ids:
        check(f"Goal_Position of {sid}", ok_read(ph, port, sid, GOAL_POSITION, "read goal"), goals[sid])

    # The whole state block in one sync read: voltage 12.0 V, 32 C, no alarm.
    _, group = sync_read(ph, port, ids, STATE_BLOCK)
    for sid in ids:
        check(f"voltage of {sid}", group.getData(sid, 62, 1), 120)
        check(f"temperature of {sid}", group.getData(sid, 63, 1), 32)
        check(f"status of {sid}", group.getData(sid, 65, 1), 0)
        check(f"position in block of {sid}", group.getData(sid, 56, 2), goals[sid])
    report["goals"] = goals
    return report


def alarm(ph, port, ids, target):
    # The emulator raised overload on `target`: its status packets carry the
    # bit, torque is off (Unloading_Condition) and stays off.
    model, comm, err = ph.ping(port, target)
    check("ping overloaded comm", comm, scs.COMM_SUCCESS)
    check("overload bit in error byte", err & 0x20, 0x20)
    check("SDK names it", ph.getRxPacketError(err), "[RxPacketError] Overload error!")
    value, comm, err = ph.read1ByteTxRx(port, target, TORQUE_ENABLE[0])
    check("torque off after overload", (value, comm), (0, scs.COMM_SUCCESS))
    comm, err = ph.write1ByteTxRx(port, target, TORQUE_ENABLE[0], 1)
    value, comm, err = ph.read1ByteTxRx(port, target, TORQUE_ENABLE[0])
    check("torque stays off while overloaded", value, 0)
    status, comm, _ = ph.read1ByteTxRx(port, target, 65)
    check("Status register", status, 0x20)
    others = [sid for sid in ids if sid != target]
    if others:
        _, _, err = ph.ping(port, others[0])
        check("others have no alarm", err, 0)
    return {"overloaded": target}


def silent(ph, port, ids, target):
    # The emulator silenced `target`: pings time out, a sync read fails.
    _, comm, _ = ph.ping(port, target)
    check("ping silent servo", ph.getTxRxResult(comm), ph.getTxRxResult(scs.COMM_RX_TIMEOUT))
    group = scs.GroupSyncRead(port, ph, PRESENT_POSITION[0], PRESENT_POSITION[1])
    for sid in ids:
        group.addParam(sid)
    comm = group.txRxPacket()
    check("sync read with a silent servo fails", comm != scs.COMM_SUCCESS, True)
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
    scs.port_handler.LATENCY_TIMER = 250
    port = scs.PortHandler(args.port)
    if not port.openPort():
        print(f"cannot open {args.port}", file=sys.stderr)
        return 2
    if not port.setBaudRate(1_000_000):
        print("cannot set 1 Mbit/s", file=sys.stderr)
        return 2
    ph = scs.PacketHandler(0)
    if args.phase == "basic":
        report = basic(ph, port, ids)
    elif args.phase == "alarm":
        report = alarm(ph, port, ids, args.target)
    else:
        report = silent(ph, port, ids, args.target)
    port.closePort()
    report["failures"] = failures
    print(json.dumps({k: v for k, v in report.items()}, default=str), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
