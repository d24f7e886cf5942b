"""Checks the committed zenoh-secure configs with real zenoh sessions.

Starts the router from router.json5 and clients from runtime.json5,
drivers.json5 and operator.json5, changing only endpoints and certificate
paths (so the access-control rules under test are the committed ones), then
checks: only the runtime's commands reach a command subscriber; drivers'
sensor data and the operator's instructions are delivered; a client without
a certificate cannot connect.

Usage: python test_acl.py CERT_DIR WORK_DIR   (certificates from gen-certs.sh)
Exit status 0 on success; prints SKIP and exits 0 if zenoh is not installed.
"""

import json
import os
import socket
import sys
import time

try:
    import zenoh
except ImportError as e:  # the test's caller decides whether that is acceptable
    print(f"SKIP: python zenoh not installed ({e})")
    sys.exit(0)

HERE = os.path.dirname(os.path.abspath(__file__))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def config(name, **overrides):
    conf = zenoh.Config.from_file(os.path.join(HERE, f"{name}.json5"))
    for key, value in overrides.items():
        conf.insert_json5(key, json.dumps(value))
    return conf


def tls_paths(certs, who, side):
    return {
        "transport/link/tls/root_ca_certificate": os.path.join(certs, "ca.pem"),
        f"transport/link/tls/{side}_certificate": os.path.join(certs, f"{who}.pem"),
        f"transport/link/tls/{side}_private_key": os.path.join(certs, f"{who}.key"),
    }


def main():
    certs, work = sys.argv[1], sys.argv[2]
    port = free_port()
    sock = os.path.join(work, "zenoh.sock")
    tls = f"tls/localhost:{port}"

    router = zenoh.open(
        config(
            "router",
            **{"listen/endpoints": [f"tls/127.0.0.1:{port}", f"unixsock-stream/{sock}"]},
            **tls_paths(certs, "router", "listen"),
        )
    )
    time.sleep(0.3)
    runtime = zenoh.open(config("runtime", **{"connect/endpoints": [f"unixsock-stream/{sock}"]}))
    drivers = zenoh.open(config("drivers", **{"connect/endpoints": [tls]}, **tls_paths(certs, "drivers", "connect")))
    operator = zenoh.open(
        config("operator", **{"connect/endpoints": [tls]}, **tls_paths(certs, "operator", "connect"))
    )

    # Receivers are separate sessions: zenoh delivers a session's own puts to
    # its own subscribers locally, without passing the router's checks.
    motor = zenoh.open(config("drivers", **{"connect/endpoints": [tls]}, **tls_paths(certs, "drivers", "connect")))
    viewer = zenoh.open(config("operator", **{"connect/endpoints": [tls]}, **tls_paths(certs, "operator", "connect")))
    got = {"motor": [], "runtime": [], "viewer": []}

    def collect(who):
        return lambda sample: got[who].append(sample.payload.to_string())

    subs = [
        motor.declare_subscriber("so101/command", collect("motor")),
        runtime.declare_subscriber("so101/joint_states", collect("runtime")),
        runtime.declare_subscriber("so101/instruction", collect("runtime")),
        runtime.declare_subscriber("so101/heartbeat_in", collect("runtime")),
        viewer.declare_subscriber("so101/**", collect("viewer")),
    ]
    time.sleep(0.5)
    runtime.put("so101/command", "command from runtime")
    drivers.put("so101/command", "command from drivers")
    operator.put("so101/command", "command from operator")
    drivers.put("so101/joint_states", "joints from drivers")
    operator.put("so101/instruction", "instruction from operator")
    operator.put("so101/joint_states", "joints from operator")
    operator.put("so101/heartbeat_in", "heartbeat from operator")
    drivers.put("so101/heartbeat_in", "heartbeat from drivers")
    time.sleep(1.0)

    failures = []

    def expect(who, want):
        if sorted(got[who]) != sorted(want):
            failures.append(f"{who} received {sorted(got[who])}, expected {sorted(want)}")

    expect("motor", ["command from runtime"])
    expect("runtime", ["joints from drivers", "instruction from operator", "heartbeat from operator"])
    expect("viewer", ["command from runtime", "joints from drivers", "instruction from operator", "heartbeat from operator"])

    # mTLS: a client without a certificate must not get a session.
    anonymous = config("operator", **{"connect/endpoints": [tls]})
    anonymous.insert_json5("transport/link/tls/root_ca_certificate", json.dumps(os.path.join(certs, "ca.pem")))
    anonymous.insert_json5("transport/link/tls/connect_certificate", "null")
    anonymous.insert_json5("transport/link/tls/connect_private_key", "null")
    anonymous.insert_json5("connect/timeout_ms", "2000")
    try:
        s = zenoh.open(anonymous)
        s.close()
        failures.append("a client without a certificate opened a session")
    except Exception as e:  # zenoh raises ZError; any error is the expected refusal
        print(f"client without certificate refused: {e}")

    for s in subs:
        s.undeclare()
    for s in (viewer, motor, operator, drivers, runtime, router):
        s.close()
    if failures:
        print("FAIL: " + "; ".join(failures))
        return 1
    print("zenoh-secure ACL ok: " + json.dumps(got))
    return 0


if __name__ == "__main__":
    sys.exit(main())
