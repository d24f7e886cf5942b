"""The secure deployment of launch/zenoh-secure, end to end, as deployed.

A real zenoh router (the zenoh crate inside the PyPI eclipse-zenoh wheel,
opened in router mode from router.json5: mTLS listener, unix socket, access
control) with the committed rules; Ganglion itself (`ganglion run`, a client
over the router's unix socket, its zenoh config from runtime.json5); the
drivers and the operator as mTLS clients from drivers.json5 / operator.json5
with their certificates from gen-certs.sh. Only the endpoints (a loopback
port, a socket in WORK_DIR) and certificate paths are changed, so the access
rules under test are the shipped ones.

Checked, in this order:
  data path   joint states and frames reach Ganglion, many of them (each
              publisher, not just its first sample), commands reach the
              drivers, Ganglion's heartbeat reaches the operator;
  check       `ganglion check --profile` reports the session: client, no
              listener, a unix-socket link, no TLS asked for;
  refused     a client without a certificate and one with a rogue CA's
              certificate get no session; the drivers publishing commands
              or a stop, and the operator publishing joint states or
              commands, reach nobody (Ganglion's counters and the drivers'
              command subscriber prove it);
  allowed     the operator's stop does reach Ganglion (safe stop), so the
              refusals above are not a dead path;
  policy      `ganglion serve` behind the GPU server's router (mTLS as CN
              "policy-server") answers the runtime's identity; the operator
              gets no answer, and the drivers' forged replies (on the served
              key and on another) never reach the runtime.

Usage: python test_acl.py CERT_DIR ROGUE_CERT_DIR WORK_DIR GANGLION_BINARY
Exit status 0 on success (prints a JSON summary); 1 on a failed check;
2 (after printing SKIP) when the zenoh package is missing, which the
caller treats as a failure in CI.
"""

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

try:
    import zenoh
except ImportError as e:  # the test's caller decides whether that is acceptable
    print(f"SKIP: python zenoh not installed ({e})")
    sys.exit(2)

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "drivers", "interop"))
import ros_msgs as m  # noqa: E402  (Cyclone DDS's CDR serializer, not Ganglion's)

JOINTS = ["base_yaw", "shoulder_pitch", "elbow_pitch"]  # launch/sim-zenoh.toml
HOME = [0.0, -0.9, 1.1]
CAM = ("front", 64, 64)
ROGUE = b"ROGUE"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(name, **overrides):
    conf = zenoh.Config.from_file(os.path.join(HERE, f"{name}.json5"))
    for key, value in overrides.items():
        conf.insert_json5(key, json.dumps(value))
    return conf


def tls_paths(certs, who, side, ca=None):
    return {
        "transport/link/tls/root_ca_certificate": ca or os.path.join(certs, "ca.pem"),
        f"transport/link/tls/{side}_certificate": os.path.join(certs, f"{who}.pem"),
        f"transport/link/tls/{side}_private_key": os.path.join(certs, f"{who}.key"),
    }


def stamp():
    now = time.time_ns()
    return m.Time(sec=now // 10**9, nanosec=now % 10**9)


def heartbeat(state):
    return m.Header(stamp=stamp(), frame_id=state).serialize()


def wait_until(pred, timeout):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.02)
    return pred()


def main():
    certs, rogue_certs, work, ganglion = sys.argv[1:5]
    t0 = time.monotonic()
    port = free_port()
    sock = os.path.join(work, "zenoh.sock")
    tls = f"tls/localhost:{port}"
    failures = []
    numbers = {}

    def check(ok, what):
        if not ok:
            failures.append(what)
        return ok

    router = zenoh.open(
        config(
            "router",
            **{"listen/endpoints": [f"tls/127.0.0.1:{port}", f"unixsock-stream/{sock}"]},
            **tls_paths(certs, "router", "listen"),
        )
    )

    def drivers_session():
        return zenoh.open(config("drivers", **{"connect/endpoints": [tls]}, **tls_paths(certs, "drivers", "connect")))

    def operator_session():
        return zenoh.open(
            config("operator", **{"connect/endpoints": [tls]}, **tls_paths(certs, "operator", "connect"))
        )

    # The drivers: one session senses (joint states, frames), one drives the
    # motors (command subscriber). Receivers are separate sessions from the
    # rogue publishers below: zenoh delivers a session's own puts to its own
    # subscribers locally, without passing the router's checks.
    sense, motor, operator = drivers_session(), drivers_session(), operator_session()
    lock = threading.Lock()
    commands = {"ok": 0, "rogue": 0, "other": 0}
    modes = []

    def on_command(sample):
        raw = sample.payload.to_bytes()
        with lock:
            if raw.startswith(ROGUE):
                commands["rogue"] += 1
                return
            try:
                m.JointTrajectory.deserialize(raw)
                commands["ok"] += 1
            except Exception:  # not a command Ganglion encoded
                commands["other"] += 1

    def on_heartbeat(sample):
        with lock:
            modes.append(m.Header.deserialize(sample.payload.to_bytes()).frame_id)

    subs = [
        motor.declare_subscriber("so101/command", on_command),
        operator.declare_subscriber("so101/heartbeat", on_heartbeat),
    ]

    # Ganglion: launch/sim-zenoh.toml with its zenoh session replaced by the
    # shipped runtime.json5 (socket path changed) under the so101 prefix.
    with open(os.path.join(HERE, "runtime.json5")) as f:
        runtime_json5 = f.read().replace("/run/ganglion/zenoh.sock", sock)
    with open(os.path.join(work, "runtime.json5"), "w") as f:
        f.write(runtime_json5)
    with open(os.path.join(ROOT, "launch", "sim-zenoh.toml")) as f:
        profile = f.read()
    # The section header on a line of its own (comments may name it too).
    head, _, rest = profile.partition("\n[transport.zenoh]\n")
    tail = rest.partition("\n[realtime]")[2]
    profile = head + '\n[transport.zenoh]\nprefix = "so101"\nconfig_file = "runtime.json5"\n\n[realtime]' + tail
    profile_path = os.path.join(work, "secure.toml")
    with open(profile_path, "w") as f:
        f.write(profile)
    report_path = os.path.join(work, "run.json")
    log = open(os.path.join(work, "ganglion.log"), "w")
    run = subprocess.Popen(
        [ganglion, "run", "--config", profile_path, "--policy", "expert", "--seconds", "40", "--report", report_path],
        stdout=log,
        stderr=subprocess.STDOUT,
    )

    stop_sensing = threading.Event()
    sensed = {"joint_states": 0, "frames": 0}

    def drive():
        js = sense.declare_publisher("so101/joint_states")
        cam = sense.declare_publisher(f"so101/camera/{CAM[0]}")
        k = 0
        while not stop_sensing.is_set():
            js.put(
                m.JointState(
                    header=m.Header(stamp=stamp()), name=JOINTS, position=HOME, velocity=[0.0] * 3, effort=[]
                ).serialize()
            )
            sensed["joint_states"] += 1
            if k % 3 == 0:
                frame_msg = frames[(k // 3) % len(frames)]
                frame_msg.header.stamp = stamp()
                cam.put(frame_msg.serialize())
                sensed["frames"] += 1
            k += 1
            time.sleep(0.01)

    frames = [
        m.Image(
            header=m.Header(stamp=stamp(), frame_id=CAM[0]),
            height=CAM[2],
            width=CAM[1],
            encoding="rgb8",
            step=CAM[1] * 3,
            data=[(j + i) % 256 for i in range(CAM[1] * CAM[2] * 3)],
        )
        for j in range(4)
    ]
    driver = threading.Thread(target=drive, daemon=True)
    driver.start()

    # 1. The data path through the router.
    flowing = wait_until(lambda: commands["ok"] >= 50 and len(modes) >= 5, 20.0)
    numbers["data_path_s"] = round(time.monotonic() - t0, 2)
    with lock:
        check(flowing, f"data path: drivers got {commands['ok']} commands, operator {len(modes)} heartbeats")
    operator.put("so101/instruction", m.String(data="reach the red target").serialize())

    # 2. What `ganglion check` says about the session.
    out = subprocess.run(
        [ganglion, "check", "--profile", profile_path, "--json"], capture_output=True, text=True, timeout=20
    )
    try:
        z = json.loads(out.stdout)["zenoh"]
        facts = z["facts"]
        numbers["check_zenoh"] = z
        check(z["probed"], f"check did not open the session: {z.get('error')}")
        check(facts["mode"] == "client", f"check: mode {facts['mode']}")
        check(facts["listen"] == [], f"check: listeners {facts['listen']}")
        check(facts["tls_requested"] == [] and not facts["tls_in_effect"], f"check: tls {facts}")
        links = facts.get("links") or []
        check(
            len(links) == 1 and links[0]["dst"].startswith("unixsock-stream/") and links[0]["whatami"] == "router",
            f"check: links {links}",
        )
    except (ValueError, KeyError, TypeError) as e:
        failures.append(f"ganglion check --json: {e}: {out.stdout} {out.stderr}")

    # 3. Forbidden flows.
    def refused(name, conf):
        conf.insert_json5("connect/timeout_ms", "2000")
        try:
            s = zenoh.open(conf)
        except Exception as e:  # zenoh raises ZError; any error is the expected refusal
            return str(e)
        try:  # got a session: try the worst it could do
            s.put("so101/heartbeat_in", heartbeat("stop"))
            s.put("so101/command", ROGUE + b" " + name.encode())
        finally:
            s.close()
        failures.append(f"{name} opened a session")
        return None

    anonymous = config("operator", **{"connect/endpoints": [tls]})
    anonymous.insert_json5("transport/link/tls/root_ca_certificate", json.dumps(os.path.join(certs, "ca.pem")))
    anonymous.insert_json5("transport/link/tls/connect_certificate", "null")
    anonymous.insert_json5("transport/link/tls/connect_private_key", "null")
    numbers["no_certificate"] = refused("a client without a certificate", anonymous)
    rogue = config(
        "drivers",
        **{"connect/endpoints": [tls]},
        # trusts the real CA (to talk to the router), presents a rogue CA's "so101-drivers"
        **tls_paths(rogue_certs, "drivers", "connect", ca=os.path.join(certs, "ca.pem")),
    )
    numbers["rogue_ca"] = refused("a client with a rogue CA's certificate", rogue)

    with lock:
        modes_before = len(modes)
    bad_drivers, bad_operator = drivers_session(), operator_session()
    time.sleep(0.3)
    cmd_pub = bad_drivers.declare_publisher("so101/command")
    js_pub = bad_operator.declare_publisher("so101/joint_states")
    for i in range(20):
        cmd_pub.put(ROGUE + b" drivers command")
        bad_drivers.put("so101/command", ROGUE + b" drivers command (put)")
        bad_drivers.put("so101/heartbeat_in", heartbeat("stop"))
        js_pub.put(ROGUE + b" operator joint state")
        bad_operator.put("so101/camera/front", ROGUE + b" operator frame")
        bad_operator.put("so101/command", ROGUE + b" operator command")
        time.sleep(0.02)
    time.sleep(1.0)
    with lock:
        check(commands["rogue"] == 0 and commands["other"] == 0, f"forbidden commands reached the drivers: {commands}")
        after = modes[modes_before:]
        check(len(after) >= 5, f"Ganglion's heartbeat stopped during the forbidden flows ({len(after)})")
        check("safe_stop" not in after, f"a forbidden stop reached Ganglion: modes {sorted(set(after))}")
    cmd_pub.undeclare()
    js_pub.undeclare()
    bad_drivers.close()
    bad_operator.close()

    # 4. The operator's stop is the one that works.
    operator.put("so101/heartbeat_in", heartbeat("stop"))
    stopped = wait_until(lambda: modes and modes[-1] == "safe_stop", 3.0)
    check(stopped, f"the operator's stop did not reach Ganglion (last mode {modes[-1] if modes else None})")

    run.send_signal(signal.SIGINT)
    try:
        run.wait(timeout=15)
    except subprocess.TimeoutExpired:
        run.kill()
        failures.append("ganglion run did not stop within 15 s of SIGINT")
    stop_sensing.set()
    driver.join(timeout=2)
    log.close()
    try:
        with open(report_path) as f:
            rep = json.load(f)
        topics = rep["topics"]
        numbers["ganglion_topics"] = topics
        numbers["commands_published"] = rep["commands_published"]
        numbers["sent_by_drivers"] = dict(sensed)
        js, fr = topics["joint_states"], topics[f"camera/{CAM[0]}"]
        check(js["received"] >= 100, f"joint states received by Ganglion: {js} of {sensed['joint_states']}")
        check(fr["received"] >= 20, f"frames received by Ganglion: {fr} of {sensed['frames']}")
        for name, t in topics.items():
            check(t["decode_errors"] == 0, f"{name}: {t['decode_errors']} foreign payloads reached Ganglion")
        check(topics["heartbeat"]["received"] == 1, f"heartbeat_in received {topics['heartbeat']} (only the operator's stop)")
        check(topics["instruction"]["received"] == 1, f"instruction received {topics['instruction']}")
        check(rep["commands_published"] >= 100, f"commands published {rep['commands_published']}")
        check(rep["final_mode"] == "safe_stop", f"final mode {rep['final_mode']}")
        zs = rep.get("zenoh_session") or {}
        check(zs.get("mode") == "client" and zs.get("listen") == [] and zs.get("routers") == 1, f"run's session {zs}")
    except (OSError, ValueError, KeyError) as e:
        with open(os.path.join(work, "ganglion.log")) as f:
            failures.append(f"run report: {e}; log: {f.read()[-3000:]}")
    with lock:
        numbers["commands_at_drivers"] = dict(commands)
        numbers["heartbeats_at_operator"] = len(modes)

    # 5. Remote inference (docs/REMOTE.md): `ganglion serve` behind the GPU
    # server's own router (policy-server.json5: mTLS to the robot's router as
    # CN "policy-server", a unix socket for `serve`, whose zenoh has no TLS);
    # the runtime's identity (the robot router's unix socket) asks.
    policy_sock = os.path.join(work, "policy.sock")
    server_router = zenoh.open(
        config(
            "policy-server",
            **{"connect/endpoints": [tls], "listen/endpoints": [f"unixsock-stream/{policy_sock}"]},
            **tls_paths(certs, "policy-server", "connect"),
        )
    )
    serve_json5 = os.path.join(work, "serve.json5")
    with open(serve_json5, "w") as f:
        f.write(
            '{ mode: "client", connect: { endpoints: ["unixsock-stream/%s"] }, '
            "scouting: { multicast: { enabled: false }, gossip: { enabled: false } } }" % policy_sock
        )
    serve_log = open(os.path.join(work, "serve.log"), "w")
    serve = subprocess.Popen(
        [
            ganglion, "serve", "--name", "reach", "--zenoh-config", serve_json5,
            "--bundle", os.path.join(ROOT, "policies", "reference", "reach-v1"),
            "--key", os.path.join(ROOT, "policies", "reference", "dev-key.pub"),
        ],
        stdout=serve_log,
        stderr=subprocess.STDOUT,
    )
    runtime_id = zenoh.open(config("runtime", **{"connect/endpoints": [f"unixsock-stream/{sock}"]}))

    def ask(session, key, timeout=1.0):
        out = []
        for reply in session.get(key, timeout=timeout):
            if reply.ok is not None:
                out.append(reply.ok.payload.to_bytes())
        return out

    spec_key = "ganglion/policy/reach/spec"
    specs = []
    end = time.monotonic() + 20.0
    while not specs and time.monotonic() < end and serve.poll() is None:
        specs = ask(runtime_id, spec_key)
    numbers["policy_spec_after_s"] = round(time.monotonic() - t0, 2)
    check(len(specs) == 1 and b"reach-v1" in specs[0], f"the runtime got no spec from ganglion serve: {specs}")
    check(ask(operator, spec_key) == [], "the operator obtained the policy's spec")
    # A split world model's encode key (the latent) is as closed: the
    # operator's query never reaches the server (so it refuses nothing).
    check(ask(operator, "ganglion/policy/reach/encode") == [], "the operator obtained a latent")
    # The drivers answering policy queries (a forged chunk): on the served
    # key and on a key nobody else serves; the runtime must hear only the
    # real server.
    forger = drivers_session()
    forged = [
        forger.declare_queryable(k, lambda q: q.reply(q.key_expr, ROGUE))
        for k in (spec_key, "ganglion/policy/forged/infer", "ganglion/policy/forged/encode")
    ]
    time.sleep(0.5)
    heard = (
        ask(runtime_id, spec_key)
        + ask(runtime_id, "ganglion/policy/forged/infer")
        + ask(runtime_id, "ganglion/policy/forged/encode")
    )
    check(not any(r.startswith(ROGUE) for r in heard), f"a forged policy reply reached the runtime: {heard}")
    check(len(heard) == 1 and b"reach-v1" in heard[0], f"the runtime's answers with a forger present: {heard}")
    for q in forged:
        q.undeclare()
    forger.close()
    serve.send_signal(signal.SIGINT)
    try:
        serve.wait(timeout=10)
    except subprocess.TimeoutExpired:
        serve.kill()
        failures.append("ganglion serve did not stop within 10 s of SIGINT")
    serve_log.close()
    with open(os.path.join(work, "serve.log")) as f:
        served = f.read()
    check('"refused":0' in served, f"ganglion serve's counters: {served[-500:]}")
    runtime_id.close()
    server_router.close()

    for s in subs:
        s.undeclare()
    for s in (operator, motor, sense, router):
        s.close()
    numbers["wall_s"] = round(time.monotonic() - t0, 2)
    print(json.dumps(numbers))
    if failures:
        print("FAIL: " + "\nFAIL: ".join(failures))
        return 1
    print("zenoh-secure deployment ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
