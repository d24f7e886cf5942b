"""Prints `<name> <hex>` lines: fixed sample messages serialized by Cyclone
DDS's Python CDR encoder. The Rust codec test builds the same samples and
must produce (and decode) exactly these bytes."""

import ros_msgs as m

STAMP = m.Time(sec=1700000000, nanosec=123456789)

SAMPLES = {
    "time": STAMP,
    "header": m.Header(stamp=STAMP, frame_id="cam0"),
    "image": m.Image(
        header=m.Header(stamp=STAMP, frame_id="cam0"),
        height=2,
        width=3,
        encoding="rgb8",
        is_bigendian=0,
        step=9,
        data=list(range(18)),
    ),
    "joint_state": m.JointState(
        header=m.Header(stamp=STAMP, frame_id=""),
        name=["shoulder", "elbow", "wrist"],
        position=[0.5, -1.25, 3.0],
        velocity=[0.1, 0.2, 0.3],
        effort=[],
    ),
    "joint_trajectory": m.JointTrajectory(
        header=m.Header(stamp=STAMP, frame_id="base"),
        joint_names=["a", "bb"],
        points=[
            m.JointTrajectoryPoint(
                positions=[1.0, 2.0],
                velocities=[0.5, -0.5],
                accelerations=[],
                effort=[],
                time_from_start=m.Duration(sec=0, nanosec=20000000),
            ),
            m.JointTrajectoryPoint(positions=[3.0, 4.0], time_from_start=m.Duration(sec=1, nanosec=0)),
        ],
    ),
    "float64_multi_array": m.Float64MultiArray(
        layout=m.MultiArrayLayout(dim=[m.MultiArrayDimension(label="position", size=3, stride=3)], data_offset=0),
        data=[1.5, -2.5, 1e-3],
    ),
    "diagnostic_array": m.DiagnosticArray(
        header=m.Header(stamp=STAMP, frame_id=""),
        status=[
            m.DiagnosticStatus(
                level=1,
                name="ganglion: loop",
                message="degraded",
                hardware_id="sim",
                values=[m.KeyValue(key="overruns", value="3"), m.KeyValue(key="mode", value="degraded")],
            ),
            m.DiagnosticStatus(level=0, name="x", message="", hardware_id="", values=[]),
        ],
    ),
    "string": m.String(data="reach the red target"),
}

if __name__ == "__main__":
    for name, msg in SAMPLES.items():
        print(name, msg.serialize().hex())
