//! The reference of every robot-profile key: one table, [`KEYS`], from
//! which `docs/PROFILE.md` is generated ([`markdown`]).
//!
//! The tests below keep it true: every table lists exactly the keys the
//! parser accepts (probed through the parser's own unknown-key errors, so a
//! key added to a `serde` struct without a row here fails), the choices of
//! every enumerated key are the values the parser accepts, every default
//! written here is what an omitted key gives, and `docs/PROFILE.md` is what
//! [`markdown`] produces.
//!
//! Adding or changing a key: edit its struct, then its row here, then
//! regenerate the document with
//! `GANGLION_BLESS=1 cargo test -p ganglion --lib profile::reference`.

/// The type of a key's value as written in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ty {
    /// A table (`[section]` or an inline table).
    Table,
    /// An array of tables (`[[robot.joints]]`); its keys are listed as `path[].key`.
    Tables,
    /// `true` / `false`.
    Bool,
    /// An integer.
    Int,
    /// A number (integers are accepted where floats are).
    Float,
    /// A string.
    Str,
    /// A file or directory path (a string).
    FilePath,
    /// Three numbers, `[x, y, z]`.
    Vec3,
    /// Two numbers, `[min, max]`.
    Pair,
    /// An array of numbers.
    Floats,
    /// An array of integers.
    Ints,
    /// An array of strings.
    Strs,
    /// One of these strings.
    OneOf(&'static [&'static str]),
    /// An array of strings, each one of these.
    ListOf(&'static [&'static str]),
    /// An array of cause names (`ganglion_core::Cause`; the cause codes in
    /// docs/RECORDING.md).
    Causes,
}

/// What an omitted key means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Omitted {
    /// The key must be given.
    Required,
    /// Omitted means "not set" (an `Option`); the meaning says what that does.
    Unset,
    /// Omitted is the same as this TOML value (checked by a test).
    Value(&'static str),
    /// A default too long for the table, in words (not checked).
    Note(&'static str),
}

/// One key of the profile.
#[derive(Debug, Clone, Copy)]
pub struct Key {
    /// Dotted path; `[]` stands for every element of an array of tables
    /// (`robot.joints[].name`).
    pub path: &'static str,
    /// Value type.
    pub ty: Ty,
    /// Unit, empty when none.
    pub unit: &'static str,
    /// Default.
    pub default: Omitted,
    /// What it does, including the accepted range.
    pub meaning: &'static str,
}

const fn k(path: &'static str, ty: Ty, unit: &'static str, default: Omitted, meaning: &'static str) -> Key {
    Key { path, ty, unit, default, meaning }
}

use Omitted::{Note, Required, Unset, Value};
use Ty::*;

/// `ganglion check` items (`realtime.required`).
pub const CHECK_ITEMS: &[&str] = &[
    "sched_fifo",
    "mlockall",
    "cpu_affinity",
    "isolated_cores",
    "cpu_governor",
    "preempt_rt",
    "jetson_power_mode",
    "jetson_clocks",
    "clock_source",
    "timer_slack",
];

/// One line per section, in document order.
pub const SECTIONS: &[(&str, &str)] = &[
    ("robot", "What the robot is: joints and their limits, kinematics, cameras."),
    ("control", "The control loop's rate and budgets."),
    ("staleness", "When an input is too old, from the future, frozen, or the external heartbeat is missing."),
    ("supervisor", "Which causes engage the fallback, degrade, or latch SafeStop, and when control returns."),
    ("executor", "How action chunks are merged, timed and requested."),
    ("shield", "The last check on every command: limits, speed, workspace."),
    ("fallback", "The CPU-only controller that takes over when the policy may not drive."),
    ("policy", "Which bundle runs, on which backend, signed by whom."),
    ("sim", "The simulated arm (`ganglion-sim`), when this profile drives one."),
    (
        "transport",
        "zenoh, ROS 2 or the servo bus: command type, stamps, queue, heartbeat; key expressions and topics are in docs/INTERFACES.md.",
    ),
    ("recording", "The flight recorder (docs/RECORDING.md)."),
    ("realtime", "Scheduling, CPU pinning and memory locking of the control and inference threads (`ganglion check`)."),
];

/// Every key the profile parser accepts.
pub const KEYS: &[Key] = &[
    // [robot]
    k("robot", Table, "", Required, "The robot. Validation needs at least its joints and home pose."),
    k("robot.name", Str, "", Required, "Robot name: the default zenoh key prefix is `ganglion/<name>`; the diagnostics' `hardware_id`. Non-empty."),
    k("robot.joints", Tables, "", Required, "Joints in command order, 1 to 16. Joint states are matched to them by name; commands carry them in this order."),
    k("robot.joints[].name", Str, "", Required, "Joint name as in the robot's `sensor_msgs/JointState` messages; unique, non-empty."),
    k("robot.joints[].limit", Table, "", Required, "Limits the shield enforces and the fallback respects."),
    k("robot.joints[].limit.position_min", Float, "rad", Required, "Lowest allowed position; finite, below `position_max`."),
    k("robot.joints[].limit.position_max", Float, "rad", Required, "Highest allowed position; finite."),
    k("robot.joints[].limit.velocity", Float, "rad/s", Required, "Largest speed; finite, > 0."),
    k("robot.joints[].limit.acceleration", Float, "rad/s²", Required, "Largest acceleration magnitude; finite, > 0."),
    k("robot.joints[].limit.jerk", Float, "rad/s³", Required, "Largest jerk magnitude; finite, > 0."),
    k("robot.arm", Table, "", Unset, "Forward kinematics (revolute joints, base outwards), one arm joint per robot joint; required by `shield.workspace`."),
    k("robot.arm.joints", Tables, "", Required, "Arm joints from the base outwards."),
    k("robot.arm.joints[].offset", Vec3, "m", Required, "Translation from the previous joint's frame (after its rotation) to this joint; finite."),
    k("robot.arm.joints[].axis", OneOf(&["x", "y", "z"]), "", Required, "Rotation axis in the joint's own frame."),
    k("robot.arm.tool", Vec3, "m", Required, "Tool point in the last joint's frame; finite."),
    k("robot.home", Floats, "rad", Required, "A safe pose, one value per joint, inside the limits. Validated only: the `home` fallback moves to `fallback.home`, not to this."),
    k("robot.cameras", Tables, "", Value("[]"), "Cameras in the order the policy consumes them."),
    k("robot.cameras[].name", Str, "", Required, "Camera name, unique, non-empty: zenoh key `<prefix>/camera/<name>`, ROS 2 topic `camera/<name>/image_raw`."),
    k("robot.cameras[].width", Int, "px", Required, "Expected width, 1..=8192. Frames wider than the widest configured camera are decode errors."),
    k("robot.cameras[].height", Int, "px", Required, "Expected height, 1..=8192. Frames taller than the tallest configured camera are decode errors."),
    k("robot.cameras[].format", OneOf(&["rgb8", "bgr8", "mono8", "yuyv"]), "", Required, "Expected pixel layout (ROS encodings `rgb8`, `bgr8`, `mono8`, `yuv422_yuy2`)."),
    // [control]
    k("control", Table, "", Value("{}"), "The control loop."),
    k("control.rate_hz", Float, "Hz", Value("100.0"), "Control rate, 30..=1000; one tick and at most one command per period. A trajectory command's `time_from_start` is one period."),
    k("control.budget_us", Float, "µs", Value("0.0"), "Tick budget, 0 (one full period) or up to one period: a tick that starts or ends later than this after its scheduled start is an overrun (`tick_overrun`)."),
    k("control.inference_timeout_ms", Float, "ms", Value("0.0"), "A request in flight longer than this is late (`inference_late`); 0 leaves lateness to the executor running out of actions. ≥ 0."),
    k("control.surprise_chunks", Int, "chunks", Value("3"), "Consecutive surprising chunks (world-model surprise above the bundle's threshold) before `world_model_surprise` triggers; ≥ 1."),
    k("control.surprise_calm_chunks", Int, "chunks", Value("3"), "Consecutive chunks whose surprise was compared and stayed within the threshold that release a triggered `world_model_surprise` (recovery: policies/README.md); ≥ 1."),
    k("control.telemetry_capacity", Int, "records", Value("4096"), "Validated (1..=1048576) but not read: `ganglion run` sizes its tick-record ring itself (two seconds of ticks), the recorder by `recording.tick_ring`."),
    // [staleness]
    k("staleness", Table, "", Value("{}"), "Input freshness."),
    k("staleness.joint_max_age_ms", Float, "ms", Value("50.0"), "Oldest acceptable joint state, capture stamp to tick start; older, or none yet: `stale_joint_state`. > 0."),
    k("staleness.camera_max_age_ms", Float, "ms", Value("100.0"), "Oldest acceptable frame of each camera; older, or none yet: `stale_camera`. > 0."),
    k("staleness.frozen_identical_frames", Int, "frames", Value("10"), "New frames with identical pixels this many times in a row: `frozen_camera`. 0 turns the content check off (a repeated sequence number is still caught)."),
    k("staleness.max_future_ms", Float, "ms", Value("2.0"), "How far a capture stamp may lie ahead of the sample's own receive stamp before it is `bad_timestamp` (clock mapping slack, sender clock skew). ≥ 0."),
    k("staleness.blank_frame_spread", Int, "levels", Value("4"), "A new frame whose ~1,000 sampled bytes all lie within fewer than this many levels is blank (black, white, flat: a covered lens, a dead sensor): `blank_camera`. 0 turns the check off; 0..=255."),
    k("staleness.heartbeat_timeout_ms", Float, "ms", Value("0.0"), "When > 0, an external heartbeat must have been received within this long (receive time), else `heartbeat_lost`. 0: none required; a `stop` heartbeat still raises `operator_stop`."),
    // [supervisor]
    k("supervisor", Table, "", Value("{}"), "The supervisor."),
    k("supervisor.recover_after_ticks", Int, "ticks", Value("10"), "Ticks every hard trigger must stay clear, with a policy action available, before Fallback hands control back to the policy; ≥ 1."),
    k("supervisor.safe_stop_clear_ticks", Int, "ticks", Value("30"), "Ticks every trigger must stay clear before a re-arm may leave SafeStop (`ControlLoop::rearm`; `ganglion run` has no re-arm command, so SafeStop lasts until restart)."),
    k("supervisor.latch", Causes, "", Value("[\"operator_stop\", \"heartbeat_lost\"]"), "Causes that latch SafeStop at once."),
    k("supervisor.degrade_on", Causes, "", Value("[]"), "Causes that only degrade (the policy keeps driving, mode `degraded`); every other cause not in `latch` engages the fallback. None may also be in `latch`."),
    k("supervisor.escalate_after_ticks", Int, "ticks", Value("0"), "Consecutive ticks in Fallback after which SafeStop latches; 0 never escalates."),
    // [executor]
    k("executor", Table, "", Value("{}"), "The chunk executor."),
    k("executor.blend", OneOf(&["ensemble", "frozen_prefix", "replace"]), "", Value("{ ensemble = { decay = 0.01 } }"), "How a new chunk is merged with the plan executing: `{ ensemble = { decay = D } }` temporal ensembling (ACT), `{ frozen_prefix = { steps = N } }` the next N planned steps are kept, `\"replace\"` the new chunk replaces the plan."),
    k("executor.blend.ensemble", Table, "", Required, "Temporal ensembling: all predictions for one time are averaged, the i-th oldest weighted exp(−decay·i)."),
    k("executor.blend.ensemble.decay", Float, "", Required, "Weight decay per newer prediction (ACT's k); 0 averages equally. Finite, ≥ 0."),
    k("executor.blend.frozen_prefix", Table, "", Required, "Real-time-chunking style: the robot is committed to the first steps of the current plan."),
    k("executor.blend.frozen_prefix.steps", Int, "policy steps", Required, "Upcoming policy steps kept from the current plan."),
    k("executor.latency_margin_ns", Int, "ns", Value("5000000"), "Safety margin added to the learned inference latency (p99) when deciding to request the next chunk."),
    k("executor.min_request_interval_ns", Int, "ns", Value("0"), "Least time between two requests; 0: whenever the plan's horizon runs short."),
    k("executor.replan_interval_ns", Int, "ns", Value("0"), "Request a fresh chunk once the last request is this old, even while the plan still covers the latency; 0: only when the horizon runs short."),
    k("executor.min_seam_step", Float, "rad per policy step", Value("0.005"), "Smallest per-step ramp when a new chunk starts away from the plan; finite, > 0."),
    // [shield]
    k("shield", Table, "", Value("{}"), "The safety shield."),
    k("shield.mode", OneOf(&["saturate", "reject"]), "", Value("\"saturate\""), "`saturate`: track the nearest command the limits allow; `reject`: refuse a command outside the position limits, too fast, or outside the workspace, and keep tracking the last accepted one."),
    k("shield.tolerance", Float, "rad", Value("0.05"), "A desired position beyond a position limit by more than this is a violation (`limit_violation`). Finite, ≥ 0."),
    k("shield.velocity_tolerance", Float, "fraction", Value("0.1"), "A desired command faster than velocity × (1 + this) is over speed on that tick. Finite, ≥ 0."),
    k("shield.violation_ticks", Int, "ticks", Value("5"), "Consecutive over-speed ticks that make a violation; ≥ 1."),
    k("shield.workspace_tolerance", Float, "m", Value("0.02"), "A desired tool point outside the workspace box by more than this is a violation. Finite, ≥ 0."),
    k("shield.workspace", Table, "", Unset, "Axis-aligned box, base frame, the tool point must stay in; needs `robot.arm`. Unset: no workspace check."),
    k("shield.workspace.min", Vec3, "m", Required, "Lower corner; finite, below `max` on every axis."),
    k("shield.workspace.max", Vec3, "m", Required, "Upper corner; finite."),
    k("shield.workspace_margin", Float, "m", Value("0.01"), "The shield plans against the box shrunk by this on every side; finite, ≥ 0, less than half the box's smallest side."),
    // [fallback]
    k("fallback", Table, "", Value("{}"), "The fallback controller."),
    k("fallback.kind", OneOf(&["hold", "decelerate", "home"]), "", Value("\"decelerate\""), "`hold`: keep the last commanded position (the shield bleeds off speed); `decelerate`: to standstill within the acceleration limits, then hold; `home`: stop, then move to `fallback.home` and hold there."),
    k("fallback.home", Floats, "rad", Unset, "Home pose, one value per joint, inside the limits; required when `kind = \"home\"`."),
    // [policy]
    k("policy", Table, "", Value("{}"), "The policy bundle."),
    k("policy.bundle", FilePath, "", Unset, "Bundle directory or archive, relative to the profile's directory. Unset: `ganglion run` uses the simulated arm's scripted expert (needs `[sim]`)."),
    k("policy.backend", OneOf(&["tract", "ort", "auto"]), "", Value("\"auto\""), "`tract` (pure Rust, CPU), `ort` (ONNX Runtime, loaded dynamically, with `execution_provider`), `auto` (ONNX Runtime with CUDA when the library loads, was built with CUDA and an NVIDIA GPU exists, else tract; `execution_provider` is not read). The same names as `--backend` of `eval`, `replay` and `policy bench`."),
    k("policy.trusted_keys", FilePath, "", Unset, "The signers this robot trusts: an ed25519 public key file (as `ganglion policy keygen` writes) or a directory of `*.pub` files, relative to the profile's directory. `ganglion run --key` overrides it; with neither, a signed bundle is refused unless `allow_unsigned`."),
    k("policy.allow_unsigned", Bool, "", Value("false"), "Run an unsigned bundle (development only)."),
    k("policy.noise_seed", Int, "", Unset, "Seed of an iterative head's noise (diffusion, flow matching), 0..=2^64-1. Unset: drawn from the OS at start. Logged and written into the recording's metadata (`noise_seed`), so `ganglion replay --reinfer` re-creates every chunk bit for bit. With `[policy.remote]` the server's seed is recorded instead (`ganglion serve --noise-seed`, sent with the spec)."),
    k("policy.execution_provider", OneOf(&["cpu", "cuda", "tensorrt"]), "", Value("\"cpu\""), "ONNX Runtime execution provider (tract ignores it). Unavailable: ONNX Runtime on CPU with a warning, or `run --strict` refuses to arm."),
    k("policy.remote", Table, "", Unset, "The policy runs on a policy server (`ganglion serve`, docs/REMOTE.md): observations go there over zenoh, chunks come back; the loop, its deadlines and the fallback stay here. Chosen when no `bundle` is set (or with `run --policy remote`)."),
    k("policy.remote.name", Str, "", Required, "The served policy's name (`ganglion serve --name`). No `/*$?#`."),
    k("policy.remote.prefix", Str, "", Note("`\"ganglion/policy\"`"), "Key prefix of the policy servers: keys `<prefix>/<name>/spec` and `<prefix>/<name>/infer`."),
    k("policy.remote.connect", Strs, "", Note("`[]`"), "Endpoints of the server or of a router, e.g. `tcp/10.0.0.2:7460`; required unless `config_file`."),
    k("policy.remote.config_file", FilePath, "", Unset, "A zenoh json5 config for the session to the server (mTLS, a router's unix socket), relative to the profile's directory; the whole session config, not next to `connect`."),
    k("policy.remote.timeout_ms", Int, "ms", Note("`500`"), "How long one request may wait for its chunk before it is given up (no cause by itself: the plan in hand drives on and the next request goes out; `inference_late` when the plan runs out). 1 to 60000."),
    k("policy.remote.connect_wait_ms", Int, "ms", Note("`5000`"), "How long `run` waits at start for the server to answer its spec query before refusing to start."),
    k("policy.remote.frames", Str, "", Note("`\"raw\"`"), "How frames travel to the server: `\"raw\"` (pixels as they are) or `\"jpeg\"` (compressed on the robot's inference worker, decoded by the server; lossy, ~10-20x fewer bytes)."),
    k("policy.remote.jpeg_quality", Int, "", Note("`90`"), "JPEG quality for `frames = \"jpeg\"`, 1..=100."),
    k("policy.remote.split", Bool, "", Note("`false`"), "Split the world model: the server runs the bundle's encoder (its `encode` key), this robot the dynamics and action head of `policy.bundle` (the same bundle, verified with `policy.trusted_keys`), rolling the latent over the actions committed during the round trip as it really was. Needs a format-1 bundle with an `action_head` (docs/REMOTE.md, \"Split world model\")."),
    // [sim]
    k("sim", Table, "", Unset, "The simulated arm, for `demo`, `eval`, `sim serve` and `run --policy expert`. Every key has a default: `[sim]` alone is the 3-DoF arm with a 64×64 camera. Its joints must match `robot.joints` in number."),
    k("sim.arm", Table, "", Note("the 3-DoF arm of launch/sim.toml"), "Kinematics of the simulated arm (as `robot.arm`)."),
    k("sim.arm.joints", Tables, "", Required, "Arm joints from the base outwards, 1 to 16."),
    k("sim.arm.joints[].offset", Vec3, "m", Required, "As `robot.arm.joints[].offset`."),
    k("sim.arm.joints[].axis", OneOf(&["x", "y", "z"]), "", Required, "As `robot.arm.joints[].axis`."),
    k("sim.arm.tool", Vec3, "m", Required, "As `robot.arm.tool`."),
    k("sim.limits", Tables, "", Note("the limits of launch/sim.toml's three joints"), "Per-joint limits, one per arm joint; positions are the simulated joints' hard stops."),
    k("sim.limits[].position_min", Float, "rad", Required, "As `robot.joints[].limit.position_min`."),
    k("sim.limits[].position_max", Float, "rad", Required, "As `robot.joints[].limit.position_max`."),
    k("sim.limits[].velocity", Float, "rad/s", Required, "As `robot.joints[].limit.velocity`."),
    k("sim.limits[].acceleration", Float, "rad/s²", Required, "As `robot.joints[].limit.acceleration`."),
    k("sim.limits[].jerk", Float, "rad/s³", Required, "As `robot.joints[].limit.jerk`."),
    k("sim.camera_name", Str, "", Value("\"front\""), "Camera the frames are written under (the first camera slot when no slot has this name)."),
    k("sim.camera_width", Int, "px", Value("64"), "Rendered width, 8..=1024."),
    k("sim.camera_height", Int, "px", Value("64"), "Rendered height, 8..=1024."),
    k("sim.camera_position", Vec3, "m", Value("[0.9, 0.0, 0.9]"), "Camera centre, base frame."),
    k("sim.camera_look_at", Vec3, "m", Value("[0.25, 0.0, 0.12]"), "Point the camera looks at (not straight above or below it); the image's up is world +z."),
    k("sim.camera_fov_deg", Float, "deg", Value("55.0"), "Vertical field of view, between 1 and 170."),
    k("sim.joint_rate_hz", Float, "Hz", Value("100.0"), "Joint-state publication rate, (0, 1e6]."),
    k("sim.camera_rate_hz", Float, "Hz", Value("30.0"), "Frame rate, (0, 1e6]."),
    k("sim.camera_noise_pixels", Int, "pixels", Value("16"), "Sensor noise: pixels of each rendered frame whose lowest bit flips (seeded). With noise a frozen camera is detectable by content while the arm rests (keep `staleness.frozen_identical_frames` on); 0 renders noise-free frames."),
    k("sim.physics_dt_ns", Int, "ns", Value("1000000"), "Physics substep, 1..=10000000."),
    k("sim.actuator_omega_rad_s", Float, "rad/s", Value("25.0"), "Natural frequency of each joint's position servo; > 0."),
    k("sim.actuator_damping", Float, "", Value("1.0"), "Damping ratio of the position servo (1 = critically damped); > 0."),
    k("sim.max_velocity_rad_s", Float, "rad/s", Value("2.5"), "Velocity saturation of every joint; > 0."),
    k("sim.max_effort_nm", Float, "N·m", Value("1.0"), "Effort saturation of every joint; > 0."),
    k("sim.joint_inertia_kg_m2", Float, "kg·m²", Value("0.05"), "Inertia seen by each joint (acceleration = effort / inertia); > 0."),
    k("sim.n_targets", Int, "", Value("3"), "Targets in the scene, 1 to 3 (distinct colours; 1 for policies without a language input)."),
    k("sim.success_radius_m", Float, "m", Value("0.03"), "The tip is on the target within this distance; > 0."),
    k("sim.target_radius_m", Float, "m", Value("0.04"), "Radius of the target spheres; > 0."),
    k("sim.target_height_m", Float, "m", Value("0.05"), "Height of every target centre above the floor."),
    k("sim.target_distance_m", Pair, "m", Value("[0.25, 0.45]"), "Horizontal distance of targets from the base axis, 0 < min ≤ max."),
    k("sim.target_bearing_rad", Pair, "rad", Value("[-0.8, 0.8]"), "Bearing of targets around the base axis (0 = +x), min ≤ max."),
    k("sim.target_separation_m", Float, "m", Value("0.12"), "Smallest distance between two target centres; ≥ 0."),
    k("sim.initial_pose_min", Floats, "rad", Value("[-0.6, -1.3, 0.6]"), "Lowest initial joint positions of an episode, one per joint, within the limits."),
    k("sim.initial_pose_max", Floats, "rad", Value("[0.6, -0.5, 1.6]"), "Highest initial joint positions of an episode, one per joint, ≥ `initial_pose_min`."),
    // [transport]
    k("transport", Table, "", Value("{}"), "The transport."),
    k("transport.kind", OneOf(&["none", "zenoh", "ros2", "servo"]), "", Value("\"none\""), "`none`: in-process only (`demo`, `eval`, `bench loop`; `run` refuses it); `zenoh`; `ros2` (DDS); `servo`: the robot's serial servo bus driven in-process (`[transport.servo]`; cameras from `[[transport.cameras]]`)."),
    k("transport.command_type", OneOf(&["trajectory_msgs/msg/JointTrajectory", "std_msgs/msg/Float64MultiArray", "sensor_msgs/msg/JointState"]), "", Value("\"trajectory_msgs/msg/JointTrajectory\""), "Command message type (docs/INTERFACES.md says what each carries); `/msg/` may be left out."),
    k("transport.capture_stamp", OneOf(&["header", "receive"]), "", Value("\"header\""), "Capture time of an input: `header`: its header stamp (the sender's wall time) mapped onto the loop clock; `receive`: when it arrived (senders without synchronised clocks)."),
    k("transport.queue_capacity", Int, "commands", Value("64"), "Commands the queue between the control thread and the publisher holds; when full, a new command is dropped and counted (`commands_dropped`). ≥ 1."),
    k("transport.heartbeat_period_ms", Int, "ms", Value("100"), "Least time between two of Ganglion's heartbeats; one is sent after a command once this has passed (none while no commands go out); 0: after every command."),
    k("transport.wait_for_subscriber_ms", Int, "ms", Value("0"), "At start, wait up to this long for a command subscriber to match before the loop starts; when none did, `run` warns and starts anyway, `run --strict` refuses to arm. 0: do not wait."),
    k("transport.zenoh", Table, "", Value("{}"), "The zenoh session (`kind = \"zenoh\"`)."),
    k("transport.zenoh.prefix", Str, "", Value("\"\""), "Key prefix of every key expression; empty: `ganglion/<robot.name>`."),
    k("transport.zenoh.mode", OneOf(&["peer", "client"]), "", Note("`\"peer\"`"), "zenoh session mode. Not allowed next to `config_file` (as the four keys below)."),
    k("transport.zenoh.listen", Strs, "", Note("no listener"), "Endpoints to listen on, e.g. `tcp/127.0.0.1:7447`. Absent or empty: Ganglion listens nowhere (never zenoh's default of every interface). A listener on an address other than loopback or a unix socket is stated at start and by `ganglion check`."),
    k("transport.zenoh.connect", Strs, "", Note("`[]`"), "Endpoints to connect to, e.g. a router's."),
    k("transport.zenoh.multicast_scouting", Bool, "", Note("`false`"), "zenoh multicast scouting (peer discovery)."),
    k("transport.zenoh.shared_memory", Bool, "", Note("`false`"), "zenoh shared memory: large payloads go through `/dev/shm` when both ends enable it."),
    k("transport.zenoh.config_file", FilePath, "", Unset, "A zenoh json5 config (TLS/mTLS, access control, a router's unix socket, e.g. `zenoh-secure/runtime.json5`): the whole session config. A profile that also sets `mode`, `listen`, `connect`, `multicast_scouting` or `shared_memory` is refused at load, naming the key. A file without `listen` listens nowhere. When the file asks for TLS and the session is not TLS (this build has no TLS link), `ganglion run` refuses to arm. Relative to the profile's directory."),
    k("transport.ros2", Table, "", Value("{}"), "The ROS 2 node (`kind = \"ros2\"`)."),
    k("transport.ros2.domain_id", Int, "", Value("0"), "DDS domain, 0..=232. The `ROS_DOMAIN_ID` environment variable is not read."),
    k("transport.ros2.node_name", Str, "", Value("\"ganglion\""), "Node name (`sim serve` uses `<node_name>_plant`)."),
    k("transport.ros2.namespace", Str, "", Value("\"/\""), "Node namespace; relative topic names resolve under it."),
    k("transport.ros2.command_topic", Str, "", Value("\"command\""), "Command topic, e.g. `joint_trajectory_controller/joint_trajectory`; relative names resolve under the namespace."),
    k("transport.ros2.instruction_topic", Str, "", Value("\"instruction\""), "Instruction topic."),
    k("transport.ros2.loopback_only", Bool, "", Value("false"), "Restrict DDS to 127.0.0.1 (one-machine setups, tests)."),
    k("transport.cameras", Tables, "", Value("[]"), "USB (V4L2) cameras read in-process beside the servo bus (`kind = \"servo\"` only; drivers/camera/README.md): one entry per `robot.cameras` camera, each on a thread of its own that captures, decodes (MJPEG or YUYV) and resizes into the camera's frame slot (`robot.cameras[]` geometry, `rgb8`) with the kernel's capture stamp. Every camera is opened and its format, size and rate checked before the arm is armed; a stalled, unplugged or failing camera ends up as `stale_camera`."),
    k("transport.cameras[].name", Str, "", Required, "The `robot.cameras` entry this camera feeds; every robot camera needs one with `kind = \"servo\"`."),
    k("transport.cameras[].device", FilePath, "", Required, "The V4L2 capture device: a stable name under `/dev/v4l/by-id/` (`…-video-index0`, the capture node) or `/dev/videoN`. One camera per device."),
    k("transport.cameras[].format", OneOf(&["mjpeg", "yuyv"]), "", Note("`\"mjpeg\"`"), "What the camera sends: `mjpeg` (what USB cameras offer at full rate above 640x480) or `yuyv` (uncompressed 4:2:2, BT.601). The camera must offer it at the capture size and rate (`ganglion check` lists what each camera offers)."),
    k("transport.cameras[].width", Int, "px", Note("the robot camera's width"), "Capture width (with `height`); frames are resized (bilinear) to the `robot.cameras[]` geometry when it differs. 0 or omitted: capture at that geometry."),
    k("transport.cameras[].height", Int, "px", Note("the robot camera's height"), "Capture height (with `width`)."),
    k("transport.cameras[].fps", Float, "frames/s", Note("`30`"), "Frame rate asked of the camera (`VIDIOC_S_PARM`); it must offer it at that format and size (within 1 %), in (0, 1000]."),
    k("transport.cameras[].buffers", Int, "buffers", Note("`4`"), "mmap buffers between the kernel and the capture thread, 2..=16."),
    k("transport.cameras[].stall_ms", Int, "ms", Note("three frame periods, at least 100 ms"), "No frame for this long is logged once as a stall naming the camera and device (the loop's `stale_camera` judges by `staleness.camera_max_age_ms`). 0..=60000; 0: the default."),
    k("transport.servo", Table, "", Value("{}"), "The serial servo bus (`kind = \"servo\"`; drivers/servo/README.md): a thread of its own reads the present positions once per control period (one sync read) into the joint state, in radians through the LeRobot calibration, and writes each command as one sync write of goal positions. At start, before torque goes on: the calibration is checked against the joints and ids, every id is pinged, LeRobot's set-up is written, the registers are checked against the calibration; each refusal names the port, servo or motor and register. Only with `kind = \"servo\"` are the keys below required."),
    k("transport.servo.port", FilePath, "", Value("\"\""), "Serial port of the bus, e.g. `/dev/ttyACM0` or a udev name (`/dev/so101_follower`). Required with `kind = \"servo\"`."),
    k("transport.servo.protocol", OneOf(&["feetech", "dynamixel"]), "", Value("\"feetech\""), "`feetech`: STS/SMS servos, protocol 0 (SO-100/SO-101), LeRobot's SO-101 set-up; `dynamixel`: X series, protocol 2.0 (Koch), LeRobot's Koch set-up."),
    k("transport.servo.baud", Int, "bit/s", Value("1000000"), "The servos' baud rate, 9600..=4500000 (LeRobot: 1000000)."),
    k("transport.servo.calibration", FilePath, "", Unset, "LeRobot's calibration file of this arm: LeRobot 0.6.1 keeps it at `~/.cache/huggingface/lerobot/calibration/robots/so_follower/<id>.json` for an SO-100 or SO-101 and `…/robots/koch_follower/<id>.json` for a Koch arm (`<id>`: its `--robot.id`; `ganglion calibrate` writes the same file): one entry per joint, named as `robot.joints[].name`, with the id below; nothing else. Read and checked against the servos' registers when `run` starts. Relative to the profile's directory. Required with `kind = \"servo\"`."),
    k("transport.servo.ids", Ints, "", Value("[]"), "The servo id of each robot joint, in joint order, unique, 0..=252. Required with `kind = \"servo\"`: one per joint."),
    k("transport.servo.exit_hold_ms", Int, "ms", Value("500"), "At a clean shutdown the servos hold the final command (the hold at the last commanded position) with torque this long, then torque goes off (an unsupported arm then falls: park it first). 0..=60000. A dropped runtime or a panic switches torque off at once."),
    k("transport.servo.max_failed_reads", Int, "reads", Value("0"), "Sync reads in a row that may fail (each after the driver's 2 retries) before `bus_fault` hands the arm to the fallback, naming the servo that did not answer; 0: the first failed read. The joint state also goes stale (`stale_joint_state`)."),
    k("transport.servo.max_checksum_errors_per_s", Int, "errors/s", Value("10"), "Checksum errors within one second beyond which `bus_fault` is raised (noise on the bus, a failing cable); it clears after a second within the budget."),
    k("transport.servo.timeout_margin_ms", Int, "ms", Value("3"), "Added to each exchange's wire time to make its timeout (an exchange is retried twice): the USB adapter's and the computer's latency, 0..=1000. Twice an FTDI adapter's latency timer is added on top. A failing read takes up to 3 × (wire time + margin)."),
    k("transport.servo.bus_watchdog_ms", Int, "ms", Value("100"), "Dynamixel only: each servo's `Bus_Watchdog`, set at arming (rounded up to 20 ms units, 0..=2540; 0: off): a servo that hears no instruction packet this long stops where it is by itself (a killed process, a cut cable) and refuses goals until the next arming clears it. Keep it above a few control periods. Feetech servos have no such register."),
    k("transport.servo.torque_limit", Float, "", Value("1.0"), "Fraction of each servo's own torque limit it may use, in (0, 1], written at arming with the set-up: Feetech `Torque_Limit` := this × `Max_Torque_Limit` (LeRobot's SO-101 gripper: 500, the others 1000; 0.3 → 300 = 30 %), Dynamixel `Goal_PWM` := this × `PWM_Limit` (in the position modes `Goal_PWM` bounds the output: ROBOTIS's force limit). 1.0: the servos' own limits (their power-up values, which also undoes a lower limit of an earlier run). Start a new arm at 0.3 (drivers/servo/README.md, \"On a real arm\"); the run report's `servo.torque_limit_registers` has what was written."),
    // [recording]
    k("recording", Table, "", Value("{}"), "The flight recorder."),
    k("recording.dir", FilePath, "", Unset, "Directory for recordings (a relative path is taken from the working directory); unset: recording off. `--record-dir` overrides it."),
    k("recording.on_trigger", Bool, "", Value("true"), "Write a window file on every supervisor trigger."),
    k("recording.pre_trigger_s", Float, "s", Value("5.0"), "History before a trigger that its file holds, 0..=3600."),
    k("recording.post_trigger_s", Float, "s", Value("2.0"), "Time after a trigger that its file holds, 0..=3600."),
    k("recording.max_window_bytes", Int, "bytes", Value("268435456"), "Memory bound of the window (256 MiB); oldest messages go first. > 0."),
    k("recording.max_trigger_files", Int, "files", Value("32"), "Trigger files per run; later triggers are counted, not written."),
    k("recording.continuous", Bool, "", Value("false"), "Record everything into rolling segment files."),
    k("recording.segment_max_bytes", Int, "bytes", Value("67108864"), "A segment is closed at this size (64 MiB). > 0."),
    k("recording.segment_max_s", Float, "s", Value("60.0"), "A segment is closed when it spans this much loop time, 0..=3600."),
    k("recording.max_total_bytes", Int, "bytes", Value("1073741824"), "Oldest segments are deleted while all together exceed this (1 GiB; the newest stays); ≥ `segment_max_bytes`."),
    k("recording.poll_ms", Int, "ms", Value("10"), "Drain period of the recorder thread; > 0."),
    k("recording.tick_ring", Int, "records", Value("4096"), "Tick records the ring holds; > 0."),
    k("recording.input_ring", Int, "snapshots", Value("128"), "Per-tick input snapshots (joint state, new frames, instruction, heartbeat, inference answer) the loop holds for the recorder; when all are held, a tick's inputs are dropped and counted. Each holds a full frame per camera, allocated at start: > 0, and at most 256 MiB of frames in all."),
    // [realtime]
    k("realtime", Table, "", Value("{}"), "Real-time settings."),
    k("realtime.enabled", Bool, "", Value("true"), "Apply the settings below at start; `false` runs every thread with the default scheduler (laptops, CI)."),
    k("realtime.control_priority", Int, "", Value("80"), "SCHED_FIFO priority of the control thread, 1..=99."),
    k("realtime.inference_priority", Int, "", Value("70"), "SCHED_FIFO priority of the inference worker, 1..=99, different from the control thread's (normally lower)."),
    k("realtime.control_cpus", Ints, "", Value("[]"), "CPUs the control thread may run on (best an isolated core); empty: unpinned. Each below 1024."),
    k("realtime.inference_cpus", Ints, "", Value("[]"), "CPUs the inference worker may run on; empty: unpinned. Each below 1024."),
    k("realtime.mlockall", Bool, "", Value("true"), "Lock all current and future pages in RAM."),
    k("realtime.timer_slack_ns", Int, "ns", Value("1"), "Timer slack of the real-time threads, ≥ 1."),
    k("realtime.jetson_power_mode", Int, "", Unset, "Expected Jetson `nvpmodel` mode id (0 is MAXN on every Orin); unset accepts any."),
    k("realtime.required", ListOf(CHECK_ITEMS), "", Value("[\"sched_fifo\", \"mlockall\"]"), "Items that must pass under `--strict` (`ganglion check --strict`, `ganglion run --strict`); not applicable counts as failing."),
];

fn ty_text(ty: Ty) -> String {
    let list = |c: &[&str]| c.iter().map(|s| format!("`{s}`")).collect::<Vec<_>>().join(", ");
    match ty {
        Table => "table".into(),
        Tables => "array of tables".into(),
        Bool => "bool".into(),
        Int => "integer".into(),
        Float => "number".into(),
        Str => "string".into(),
        FilePath => "path".into(),
        Vec3 => "[x, y, z]".into(),
        Pair => "[min, max]".into(),
        Floats => "array of numbers".into(),
        Ints => "array of integers".into(),
        Strs => "array of strings".into(),
        OneOf(c) => format!("one of {}", list(c)),
        ListOf(c) => format!("array, each one of {}", list(c)),
        Causes => "array of cause names (the cause codes in RECORDING.md)".into(),
    }
}

fn default_text(d: Omitted) -> String {
    match d {
        Required => "required".into(),
        Unset => "unset".into(),
        Value(v) => format!("`{v}`"),
        Note(n) => n.into(),
    }
}

/// `docs/PROFILE.md`.
pub fn markdown() -> String {
    let cell = |s: &str| s.replace('|', "\\|");
    let mut out = String::from(
        "# Robot profile reference\n\n\
         <!-- Generated from runtime/src/profile/reference.rs: edit the rows there, then run\n     \
         GANGLION_BLESS=1 cargo test -p ganglion --lib profile::reference\n     \
         (that test fails while this file and the code disagree). -->\n\n\
         A robot profile is one TOML file (`launch/*.toml`; `ganglion run --config FILE`). Every section\n\
         is optional except `[robot]`; an omitted key takes its default. The file is validated before\n\
         anything starts, and an error names the file, the key path (e.g.\n\
         `robot.joints[2].limit.velocity`) and what was expected; an unknown key is an error.\n\
         `[realtime]` values are checked by the commands that use them (`run`, `check`),\n\
         `[recording]` values when recording starts.\n\n\
         In a key path, `[]` means every element of an array of tables (`[[robot.joints]]`).\n\
         Types are TOML types; a number may be written as an integer. Defaults are TOML values.\n\
         The wire side of `[transport]` (keys, topics, message types, QoS) is in\n\
         [INTERFACES.md](INTERFACES.md).\n\n",
    );
    out.push_str("Sections: ");
    let names: Vec<String> = SECTIONS.iter().map(|(s, _)| format!("[`[{s}]`](#{s})")).collect();
    out.push_str(&names.join(", "));
    out.push_str(".\n");
    for (section, about) in SECTIONS {
        out.push_str(&format!("\n## {section}\n\n{about}\n\n"));
        out.push_str("| key | type | unit | default | meaning |\n|---|---|---|---|---|\n");
        let prefix = format!("{section}.");
        for key in KEYS.iter().filter(|k| k.path == *section || k.path.starts_with(&prefix)) {
            out.push_str(&format!(
                "| `{}` | {} | {} | {} | {} |\n",
                key.path,
                cell(&ty_text(key.ty)),
                cell(key.unit),
                cell(&default_text(key.default)),
                cell(key.meaning)
            ));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;
    use std::path::Path;

    use super::*;
    use crate::profile::{Profile, ProfileError};

    /// A small valid profile: three joints (the simulated arm's count, so
    /// `[sim]` defaults validate), nothing else.
    const BASE: &str = r#"
[robot]
name = "t"
home = [0.0, 0.0, 0.0]
[[robot.joints]]
name = "a"
limit = { position_min = -2.6, position_max = 2.6, velocity = 2.5, acceleration = 20.0, jerk = 400.0 }
[[robot.joints]]
name = "b"
limit = { position_min = -2.6, position_max = 2.6, velocity = 2.5, acceleration = 20.0, jerk = 400.0 }
[[robot.joints]]
name = "c"
limit = { position_min = -2.6, position_max = 2.6, velocity = 2.5, acceleration = 20.0, jerk = 400.0 }
"#;

    const PROBE: &str = "__probe";

    fn base() -> toml::Table {
        BASE.parse().expect("BASE is TOML")
    }

    fn value(literal: &str) -> toml::Value {
        let mut t: toml::Table = format!("v = {literal}").parse().unwrap_or_else(|e| panic!("{literal}: {e}"));
        t.remove("v").expect("v")
    }

    /// The table at `path` (segments; `x[]` is the first element of array
    /// `x`), created empty where missing.
    fn table_at<'a>(mut t: &'a mut toml::Table, path: &str) -> &'a mut toml::Table {
        for seg in path.split('.').filter(|s| !s.is_empty()) {
            let (name, array) = match seg.strip_suffix("[]") {
                Some(n) => (n, true),
                None => (seg, false),
            };
            let entry = t.entry(name.to_string());
            let v = if array {
                let arr = entry.or_insert_with(|| toml::Value::Array(Vec::new()));
                let toml::Value::Array(items) = arr else { panic!("{path}: {name} is not an array") };
                if items.is_empty() {
                    items.push(toml::Value::Table(toml::Table::new()));
                }
                &mut items[0]
            } else {
                entry.or_insert_with(|| toml::Value::Table(toml::Table::new()))
            };
            let toml::Value::Table(inner) = v else { panic!("{path}: {name} is not a table") };
            t = inner;
        }
        t
    }

    fn parent_and_name(path: &str) -> (&str, &str) {
        path.rsplit_once('.').unwrap_or(("", path))
    }

    /// `base` with `path` set to `v` (its tables created where missing).
    fn with(mut t: toml::Table, path: &str, v: toml::Value) -> String {
        let (parent, name) = parent_and_name(path);
        table_at(&mut t, parent).insert(name.to_string(), v);
        toml::to_string(&t).expect("serializes")
    }

    fn parse(text: &str) -> Result<Profile, ProfileError> {
        Profile::parse(text, Path::new("probe.toml"))
    }

    /// The names the parser says it expected instead of `__probe` (serde's
    /// "unknown field/variant `__probe`, expected ..." or, for the fields of
    /// an enum's struct variant, toml's "unexpected keys in table: __probe,
    /// available keys: ...").
    fn expected_names(err: &ProfileError, what: &str) -> Option<BTreeSet<String>> {
        let msg = err.to_string();
        if let Some(line) = msg.lines().find(|l| l.contains(&format!("unknown {what} `{PROBE}`"))) {
            let rest = line.split_once("expected").map_or("", |(_, r)| r);
            return Some(rest.split('`').skip(1).step_by(2).map(String::from).collect());
        }
        let line =
            msg.lines().find(|l| what == "field" && l.starts_with("unexpected keys in table") && l.contains(PROBE))?;
        let rest = line.split_once("available keys:")?.1;
        Some(rest.split(',').map(|s| s.trim().to_string()).filter(|s| !s.is_empty()).collect())
    }

    /// Table paths: the root, every `Table` key, every `Tables` key + `[]`.
    fn tables() -> Vec<String> {
        let mut v = vec![String::new()];
        for key in KEYS {
            match key.ty {
                Table => v.push(key.path.to_string()),
                Tables => v.push(format!("{}[]", key.path)),
                _ => {}
            }
        }
        v
    }

    #[test]
    fn profile_md_is_current() {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/PROFILE.md");
        let want = markdown();
        if std::env::var_os("GANGLION_BLESS").is_some() {
            std::fs::write(&file, &want).expect("write docs/PROFILE.md");
            return;
        }
        let have = std::fs::read_to_string(&file).unwrap_or_default();
        if have != want {
            let line = have
                .lines()
                .zip(want.lines())
                .position(|(a, b)| a != b)
                .map_or_else(|| have.lines().count().min(want.lines().count()) + 1, |i| i + 1);
            panic!(
                "docs/PROFILE.md differs from runtime/src/profile/reference.rs (first at line {line}:\n  file: {:?}\n  code: {:?});\n\
                 regenerate it: GANGLION_BLESS=1 cargo test -p ganglion --lib profile::reference",
                have.lines().nth(line - 1).unwrap_or(""),
                want.lines().nth(line - 1).unwrap_or("")
            );
        }
    }

    #[test]
    fn every_key_is_unique_described_and_inside_a_listed_table() {
        let tables = tables();
        let mut seen = BTreeSet::new();
        for key in KEYS {
            assert!(seen.insert(key.path), "{} is listed twice", key.path);
            assert!(!key.meaning.trim().is_empty(), "{} has no meaning", key.path);
            let (parent, _) = parent_and_name(key.path);
            let variant_of = KEYS.iter().any(|p| p.path == parent && matches!(p.ty, OneOf(_)));
            assert!(tables.iter().any(|t| t == parent) || variant_of, "{}: no table {parent:?} listed", key.path);
        }
        for key in KEYS.iter().filter(|k| !k.path.contains('.')) {
            assert!(SECTIONS.iter().any(|(s, _)| *s == key.path), "section {} has no SECTIONS line", key.path);
        }
    }

    /// Both directions at once: a key in a struct but not here, and a row
    /// here the parser does not know, fail. Needs `deny_unknown_fields` on
    /// every struct (a table that swallows unknown keys fails too).
    #[test]
    fn every_table_lists_exactly_the_keys_the_parser_accepts() {
        parse(BASE).unwrap_or_else(|e| panic!("BASE: {e}"));
        let mut problems = Vec::new();
        for table in tables() {
            let mut t = base();
            table_at(&mut t, &table).insert(PROBE.into(), toml::Value::Integer(1));
            let err = match parse(&toml::to_string(&t).expect("serializes")) {
                Ok(_) => {
                    problems
                        .push(format!("[{table}] accepts unknown keys: give its struct #[serde(deny_unknown_fields)]"));
                    continue;
                }
                Err(e) => e,
            };
            let Some(parser) = expected_names(&err, "field") else {
                problems.push(format!("[{table}]: unexpected error {err}"));
                continue;
            };
            let listed: BTreeSet<String> = KEYS
                .iter()
                .filter(|k| parent_and_name(k.path).0 == table)
                .map(|k| parent_and_name(k.path).1.to_string())
                .collect();
            let missing: Vec<_> = parser.difference(&listed).collect();
            let unknown: Vec<_> = listed.difference(&parser).collect();
            if !missing.is_empty() || !unknown.is_empty() {
                problems.push(format!(
                    "[{table}]: accepted but not listed {missing:?}, listed but not accepted {unknown:?}"
                ));
            }
        }
        assert!(problems.is_empty(), "rows of runtime/src/profile/reference.rs:\n{}", problems.join("\n"));
    }

    #[test]
    fn documented_choices_are_the_accepted_values() {
        let causes: Vec<&str> = ganglion_core::Cause::ALL.iter().map(|c| c.name()).collect();
        let mut problems = Vec::new();
        for key in KEYS {
            let (choices, list) = match key.ty {
                OneOf(c) => (c, false),
                ListOf(c) => (c, true),
                Causes => (causes.as_slice(), true),
                _ => continue,
            };
            let probe = if list { toml::Value::Array(vec![PROBE.into()]) } else { toml::Value::String(PROBE.into()) };
            let parsed = parse(&with(base(), key.path, probe));
            if let Some(parser) = parsed.as_ref().err().and_then(|e| expected_names(e, "variant")) {
                let listed: BTreeSet<String> = choices.iter().map(|s| s.to_string()).collect();
                if listed != parser {
                    problems.push(format!("{}: choices listed {listed:?}, the parser's {parser:?}", key.path));
                }
                continue;
            }
            // Every enumerated key is parsed into its enum, so the parser
            // itself must name the choices.
            match parsed {
                Ok(_) => problems.push(format!("{}: {PROBE:?} is accepted", key.path)),
                Err(e) => problems.push(format!("{}: {PROBE:?} refused without naming the choices: {e}", key.path)),
            }
        }
        assert!(problems.is_empty(), "choices in runtime/src/profile/reference.rs:\n{}", problems.join("\n"));
    }

    #[test]
    fn documented_defaults_are_the_defaults() {
        let mut problems = Vec::new();
        for key in KEYS {
            let Value(literal) = key.default else { continue };
            assert!(!key.path.contains("[]"), "{}: array elements have no defaults", key.path);
            // Omitted (its parent table present) vs written out.
            let mut omitted = base();
            table_at(&mut omitted, parent_and_name(key.path).0);
            let omitted = parse(&toml::to_string(&omitted).expect("serializes"))
                .unwrap_or_else(|e| panic!("{} omitted: {e}", key.path));
            match parse(&with(base(), key.path, value(literal))) {
                Ok(written) if format!("{written:?}") == format!("{omitted:?}") => {}
                Ok(_) => problems.push(format!("{}: omitting it is not the same as `{literal}`", key.path)),
                Err(e) => problems.push(format!("{} = {literal} is refused: {e}", key.path)),
            }
        }
        assert!(problems.is_empty(), "defaults in runtime/src/profile/reference.rs:\n{}", problems.join("\n"));
    }
}
