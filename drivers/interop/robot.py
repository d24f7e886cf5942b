"""A stand-in robot written with implementations Ganglion did not write.

Publishes `sensor_msgs/JointState` and `sensor_msgs/Image` (encoded by
Cyclone DDS's Python CDR serializer, see ros_msgs.py) and decodes the
commands Ganglion sends back, over either
  --transport zenoh : the eclipse-zenoh Python package, keys <prefix>/joint_states,
                      <prefix>/camera/<cam>, <prefix>/command
  --transport dds   : the cyclonedds Python package, ROS 2 topics rt/joint_states,
                      rt/camera/<cam>/image_raw, rt/<command topic>, loopback only,
                      multicast off.

It first publishes one malformed joint-state payload (zenoh only: DDS would
reject it before Ganglion sees it), then publishes state + frame every
--period seconds until it has received --commands commands or --timeout
passes. Joint state k carries positions [k, -k, 0.5] * 0.01 (names j0 j1 j2)
and the frame's pixel i is (k + i) % 256. Prints one JSON line:
{"published": n, "commands": [[positions...], ...], "stamps": [...]}.
"""

import argparse
import json
import os
import sys
import threading
import time

import ros_msgs as m

p = argparse.ArgumentParser()
p.add_argument("--transport", choices=["zenoh", "dds"], required=True)
p.add_argument("--endpoint", help="zenoh endpoint to connect to, e.g. tcp/127.0.0.1:7447")
p.add_argument("--prefix", default="ganglion")
p.add_argument("--domain", type=int, default=0)
p.add_argument("--camera", default="front")
p.add_argument("--command-topic", default="command")
p.add_argument("--format", default="trajectory_msgs/msg/JointTrajectory")
p.add_argument("--commands", type=int, default=5)
p.add_argument("--period", type=float, default=0.01)
p.add_argument("--timeout", type=float, default=20.0)
p.add_argument("--width", type=int, default=8)
p.add_argument("--height", type=int, default=6)
args = p.parse_args()

cmd_type = m.COMMAND_TYPES[args.format]
commands = []
stamps = []
lock = threading.Lock()
done = threading.Event()


def on_command(raw):
    msg = cmd_type.deserialize(bytes(raw))
    with lock:
        commands.append(m.command_positions(args.format, msg))
        header = getattr(msg, "header", None)
        stamps.append([header.stamp.sec, header.stamp.nanosec] if header else None)
        if len(commands) >= args.commands:
            done.set()


def joint_state(k):
    now = time.time_ns()
    return m.JointState(
        header=m.Header(stamp=m.Time(sec=now // 10**9, nanosec=now % 10**9), frame_id=""),
        name=["j0", "j1", "j2"],
        position=[k * 0.01, -k * 0.01, 0.5],
        velocity=[0.0, 0.0, 0.0],
        effort=[],
    )


def image(k):
    now = time.time_ns()
    n = args.width * args.height * 3
    return m.Image(
        header=m.Header(stamp=m.Time(sec=now // 10**9, nanosec=now % 10**9), frame_id=args.camera),
        height=args.height,
        width=args.width,
        encoding="rgb8",
        is_bigendian=0,
        step=args.width * 3,
        data=[(k + i) % 256 for i in range(n)],
    )


published = 0
deadline = time.time() + args.timeout

if args.transport == "zenoh":
    import zenoh

    conf = zenoh.Config()
    conf.insert_json5("mode", '"peer"')
    conf.insert_json5("connect/endpoints", json.dumps([args.endpoint]))
    conf.insert_json5("scouting/multicast/enabled", "false")
    session = zenoh.open(conf)
    js_pub = session.declare_publisher(f"{args.prefix}/joint_states")
    cam_pub = session.declare_publisher(f"{args.prefix}/camera/{args.camera}")
    sub = session.declare_subscriber(f"{args.prefix}/command", lambda s: on_command(s.payload.to_bytes()))
    time.sleep(0.3)  # let the session connect before the first put
    # Malformed: a joint state whose name count claims 2^32-1 entries.
    js_pub.put(bytes([0, 1, 0, 0]) + bytes(8) + bytes([1, 0, 0, 0, 0]) + bytes(3) + b"\xff\xff\xff\xff")

    def put(k):
        js_pub.put(joint_state(k).serialize())
        cam_pub.put(image(k).serialize())

else:
    os.environ.setdefault(
        "CYCLONEDDS_URI",
        "<CycloneDDS><Domain><General><Interfaces><NetworkInterface address='127.0.0.1'/></Interfaces>"
        "<AllowMulticast>false</AllowMulticast></General><Discovery><ParticipantIndex>auto</ParticipantIndex>"
        "<MaxAutoParticipantIndex>50</MaxAutoParticipantIndex>"
        "<Peers><Peer address='127.0.0.1'/></Peers></Discovery></Domain></CycloneDDS>",
    )
    from cyclonedds.core import Listener, Qos, Policy
    from cyclonedds.domain import DomainParticipant
    from cyclonedds.pub import DataWriter
    from cyclonedds.sub import DataReader
    from cyclonedds.topic import Topic
    from cyclonedds.util import duration

    dp = DomainParticipant(args.domain)
    best_effort = Qos(Policy.Reliability.BestEffort, Policy.History.KeepLast(1))
    reliable = Qos(Policy.Reliability.Reliable(max_blocking_time=duration(milliseconds=100)), Policy.History.KeepLast(1))
    js_w = DataWriter(dp, Topic(dp, "rt/joint_states", m.JointState), qos=best_effort)
    cam_w = DataWriter(dp, Topic(dp, f"rt/camera/{args.camera}/image_raw", m.Image), qos=best_effort)

    class OnData(Listener):
        def on_data_available(self, reader):
            for s in reader.take(N=64):
                if isinstance(s, cmd_type):
                    on_command(s.serialize())

    cmd_r = DataReader(dp, Topic(dp, f"rt/{args.command_topic}", cmd_type), qos=reliable, listener=OnData())

    def put(k):
        js_w.write(joint_state(k))
        cam_w.write(image(k))


k = 0
while not done.is_set() and time.time() < deadline:
    k += 1
    put(k)
    published += 1
    time.sleep(args.period)

with lock:
    print(json.dumps({"published": published, "commands": commands, "stamps": stamps}))
sys.stdout.flush()
os._exit(0 if done.is_set() else 1)
