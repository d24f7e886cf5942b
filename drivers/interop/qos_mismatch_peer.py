"""A robot side whose QoS cannot match Ganglion's, written with Cyclone DDS.

The two mistakes docs/INTERFACES.md warns about, made on purpose:
  - the command subscriber asks for transient-local durability (Ganglion's
    command writer is volatile, so they never match);
  - the instruction publisher is best effort (Ganglion's instruction reader
    is reliable, so they never match).
It also subscribes to `rt/diagnostics` (compatible QoS) and keeps the last
`ganglion: transport` status. When stdin closes, or after --seconds at the
latest, it prints one JSON line:
{"commands": n, "instructions_sent": n, "diagnostics": n,
 "transport_status": {"level": l, "message": m, "values": {k: v}} | null}.
Loopback only, multicast off, as robot.py.
"""

import argparse
import json
import os
import sys
import threading
import time

import ros_msgs as m

p = argparse.ArgumentParser()
p.add_argument("--domain", type=int, required=True)
p.add_argument("--command-topic", default="command")
p.add_argument("--format", default="trajectory_msgs/msg/JointTrajectory")
p.add_argument("--instruction-topic", default="instruction")
p.add_argument("--seconds", type=float, default=60.0)
args = p.parse_args()

os.environ.setdefault(
    "CYCLONEDDS_URI",
    "<CycloneDDS><Domain><General><Interfaces><NetworkInterface address='127.0.0.1'/></Interfaces>"
    "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
    "<MaxAutoParticipantIndex>50</MaxAutoParticipantIndex>"
    "<Peers><Peer address='127.0.0.1'/></Peers></Discovery></Domain></CycloneDDS>",
)
from cyclonedds.core import Listener, Policy, Qos  # noqa: E402
from cyclonedds.domain import DomainParticipant  # noqa: E402
from cyclonedds.pub import DataWriter  # noqa: E402
from cyclonedds.sub import DataReader  # noqa: E402
from cyclonedds.topic import Topic  # noqa: E402
from cyclonedds.util import duration  # noqa: E402

lock = threading.Lock()
state = {"commands": 0, "instructions_sent": 0, "diagnostics": 0, "transport_status": None}


class OnCommand(Listener):
    def on_data_available(self, reader):
        n = len(reader.take(N=64))
        with lock:
            state["commands"] += n


class OnDiagnostics(Listener):
    def on_data_available(self, reader):
        for d in reader.take(N=16):
            if not isinstance(d, m.DiagnosticArray):
                continue
            with lock:
                state["diagnostics"] += 1
                for s in d.status:
                    if s.name == "ganglion: transport":
                        state["transport_status"] = {
                            "level": int(s.level),
                            "message": s.message,
                            "values": {kv.key: kv.value for kv in s.values},
                        }


dp = DomainParticipant(args.domain)
reliable = Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100))
cmd_qos = Qos(reliable, Policy.Durability.TransientLocal, Policy.History.KeepLast(32))
cmd_type = m.COMMAND_TYPES[args.format]
cmd_r = DataReader(dp, Topic(dp, f"rt/{args.command_topic}", cmd_type), qos=cmd_qos, listener=OnCommand())
instr_w = DataWriter(
    dp,
    Topic(dp, f"rt/{args.instruction_topic}", m.String),
    qos=Qos(Policy.Reliability.BestEffort, Policy.History.KeepLast(1)),
)
diag_r = DataReader(
    dp,
    Topic(dp, "rt/diagnostics", m.DiagnosticArray),
    qos=Qos(reliable, Policy.History.KeepLast(32)),
    listener=OnDiagnostics(),
)

stdin_closed = threading.Event()


def watch_stdin():
    sys.stdin.read()
    stdin_closed.set()


threading.Thread(target=watch_stdin, daemon=True).start()
deadline = time.time() + args.seconds
while time.time() < deadline and not stdin_closed.is_set():
    instr_w.write(m.String(data="pick up the cube"))
    with lock:
        state["instructions_sent"] += 1
    time.sleep(0.1)

with lock:
    print(json.dumps(state))
sys.stdout.flush()
os._exit(0)
