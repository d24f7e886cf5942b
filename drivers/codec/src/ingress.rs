//! Decoding straight into the loop's preallocated buffers, and encoding the
//! loop's commands, without allocating per message.
//!
//! Every decoder here reads borrowed slices of the payload and writes into a
//! caller-owned buffer only after the whole message checked out, so a
//! rejected payload leaves the buffer as it was.

use ganglion_core::{Command, ExternalHeartbeat, Frame, JointState, JointVec, Mode, PixelFormat, MAX_JOINTS};

use crate::cdr::{CdrReader, CdrWriter, F64s};
use crate::msg::{Message, Time};
use crate::{DecodeError, DecodeLimits};

/// How joint names in a message map onto the robot's joint order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JointMap {
    n: usize,
    names: Vec<String>,
}

impl JointMap {
    /// Map by name: every one of `names` (the profile's joint order) must be
    /// present in each message; extra joints in the message are ignored.
    /// Messages without names are taken positionally.
    pub fn by_name(mut names: Vec<String>) -> Self {
        names.truncate(MAX_JOINTS);
        JointMap { n: names.len(), names }
    }

    /// Positional: messages carry exactly `n` joints in robot order.
    pub fn positional(n: usize) -> Self {
        JointMap { n: n.min(MAX_JOINTS), names: Vec::new() }
    }

    /// The robot's joint count.
    pub fn len(&self) -> usize {
        self.n
    }

    /// Whether the robot has no joints.
    pub fn is_empty(&self) -> bool {
        self.n == 0
    }

    /// The profile's joint names (empty when positional).
    pub fn names(&self) -> &[String] {
        &self.names
    }
}

/// Fills `out` from optional array `src` (empty → zeros) using `index`.
fn gather(src: F64s<'_>, index: &[u8], n: usize, out: &mut JointVec) -> Result<(), DecodeError> {
    *out = JointVec::zeros(n);
    if src.is_empty() {
        return Ok(());
    }
    for (dst, &i) in out.iter_mut().zip(&index[..n]) {
        if usize::from(i) >= src.len() {
            return Err(DecodeError::JointMismatch);
        }
        *dst = src.get(usize::from(i));
    }
    Ok(())
}

/// Decodes a `sensor_msgs/JointState` into `out` (robot joint order);
/// returns the header stamp. `out` is untouched on error.
///
/// Position must have one value per message name (or exactly the robot's
/// joint count when the message has no names); velocity and effort may be
/// empty (zeros) or the same length as position.
pub fn decode_joint_state_into(
    bytes: &[u8],
    limits: &DecodeLimits,
    map: &JointMap,
    out: &mut JointState,
) -> Result<Time, DecodeError> {
    let max = limits.max_joints.min(MAX_JOINTS);
    let mut r = CdrReader::new(bytes, limits)?;
    let stamp = Time::read(&mut r)?;
    r.str()?; // frame_id
    let n_names = r.seq_len(max, 4)?;
    // index[k] = position of the robot's joint k within the message arrays.
    let mut index = [0u8; MAX_JOINTS];
    let mut found = 0u32;
    for m in 0..n_names {
        let name = r.str()?;
        if let Some(k) = map.names.iter().position(|p| p == name) {
            if found & (1 << k) == 0 {
                index[k] = m as u8;
                found |= 1 << k;
            }
        }
    }
    let position = r.f64_seq(max)?;
    let velocity = r.f64_seq(max)?;
    let effort = r.f64_seq(max)?;
    let n = map.n;
    if n_names == 0 || map.names.is_empty() {
        if position.len() != n {
            return Err(DecodeError::JointMismatch);
        }
        for (k, slot) in index.iter_mut().enumerate().take(n) {
            *slot = k as u8;
        }
    } else if found.count_ones() as usize != n || position.len() != n_names {
        return Err(DecodeError::JointMismatch);
    }
    for a in [velocity, effort] {
        if !a.is_empty() && a.len() != position.len() {
            return Err(DecodeError::JointMismatch);
        }
    }
    let mut js = JointState::zeros(n);
    gather(position, &index, n, &mut js.position)?;
    gather(velocity, &index, n, &mut js.velocity)?;
    gather(effort, &index, n, &mut js.effort)?;
    *out = js;
    Ok(stamp)
}

/// Decodes a `sensor_msgs/Image` into the preallocated `frame` (tightly
/// packed; row padding is dropped); returns the header stamp.
///
/// Accepted encodings are those of [`PixelFormat`]. The frame is untouched
/// when the message is rejected.
pub fn decode_image_into(bytes: &[u8], limits: &DecodeLimits, frame: &mut Frame) -> Result<Time, DecodeError> {
    let mut r = CdrReader::new(bytes, limits)?;
    let stamp = Time::read(&mut r)?;
    r.str()?; // frame_id
    let height = r.u32()?;
    let width = r.u32()?;
    if width == 0 || height == 0 || width > limits.max_width || height > limits.max_height {
        return Err(DecodeError::BadDimensions);
    }
    let format = PixelFormat::from_ros_encoding(r.str()?).ok_or(DecodeError::BadEncoding)?;
    r.u8()?; // is_bigendian: irrelevant for 8-bit channels
    let step = r.u32()? as usize;
    let row = width as usize * format.bytes_per_pixel();
    if step < row {
        return Err(DecodeError::BadGeometry);
    }
    let max_bytes = step.saturating_mul(height as usize);
    let data = r.bytes(max_bytes)?;
    if data.len() != max_bytes {
        return Err(DecodeError::BadGeometry);
    }
    frame
        .set_with(width, height, format, |buf| {
            for (dst, src) in buf.chunks_exact_mut(row).zip(data.chunks(step)) {
                dst.copy_from_slice(&src[..row]);
            }
        })
        .map_err(|_| DecodeError::BadDimensions)?;
    Ok(stamp)
}

/// Decodes a `std_msgs/String` instruction, borrowed; texts longer than
/// [`ganglion_core::MAX_INSTRUCTION_LEN`] are rejected rather than cut.
pub fn decode_instruction<'a>(bytes: &'a [u8], limits: &DecodeLimits) -> Result<&'a str, DecodeError> {
    let mut r = CdrReader::new(bytes, limits)?;
    let text = r.str()?;
    if text.len() > ganglion_core::MAX_INSTRUCTION_LEN {
        return Err(DecodeError::TooLong);
    }
    Ok(text)
}

/// Decodes an external heartbeat (a `std_msgs/Header`, see
/// [`crate::msg::Heartbeat`]): `frame_id == "stop"` asks for an operator stop.
pub fn decode_heartbeat_into(
    bytes: &[u8],
    limits: &DecodeLimits,
    out: &mut ExternalHeartbeat,
) -> Result<Time, DecodeError> {
    let mut r = CdrReader::new(bytes, limits)?;
    let stamp = Time::read(&mut r)?;
    let state = r.str()?;
    out.stop = state == "stop";
    Ok(stamp)
}

/// Encodes Ganglion's own heartbeat: the supervisor mode in `frame_id`.
pub fn encode_heartbeat(mode: Mode, stamp: Time, out: &mut Vec<u8>) {
    let mut w = CdrWriter::new(out);
    stamp.write(&mut w);
    w.str(mode.name());
}

/// The message type commands are published as (per profile), matching the
/// ros2_control controller that consumes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CommandFormat {
    /// `trajectory_msgs/JointTrajectory` with one point (positions,
    /// velocities, `time_from_start`): joint_trajectory_controller.
    #[default]
    JointTrajectory,
    /// `std_msgs/Float64MultiArray` of positions: forward_command_controller
    /// (position interface).
    Float64MultiArray,
    /// `sensor_msgs/JointState` with names, positions and velocities.
    JointState,
}

impl CommandFormat {
    /// All formats.
    pub const ALL: [CommandFormat; 3] =
        [CommandFormat::JointTrajectory, CommandFormat::Float64MultiArray, CommandFormat::JointState];

    /// ROS type string, e.g. `trajectory_msgs/msg/JointTrajectory`.
    pub const fn ros_type(self) -> &'static str {
        match self {
            CommandFormat::JointTrajectory => "trajectory_msgs/msg/JointTrajectory",
            CommandFormat::Float64MultiArray => "std_msgs/msg/Float64MultiArray",
            CommandFormat::JointState => "sensor_msgs/msg/JointState",
        }
    }

    /// DDS type name.
    pub const fn dds_type_name(self) -> &'static str {
        match self {
            CommandFormat::JointTrajectory => crate::msg::JointTrajectory::TYPE_NAME,
            CommandFormat::Float64MultiArray => crate::msg::Float64MultiArray::TYPE_NAME,
            CommandFormat::JointState => crate::msg::JointState::TYPE_NAME,
        }
    }

    /// Parses the ROS type string (with or without `/msg/`).
    pub fn from_ros_type(s: &str) -> Option<Self> {
        let s = s.replace("/msg/", "/");
        Self::ALL.into_iter().find(|f| f.ros_type().replace("/msg/", "/") == s)
    }
}

/// Encodes `cmd` as `format` into `out` (cleared first); `names` are the
/// robot's joint names (required by the trajectory and joint-state formats),
/// `stamp` goes into the header, `time_from_start_ns` into the trajectory
/// point.
pub fn encode_command(
    cmd: &Command,
    format: CommandFormat,
    names: &[String],
    stamp: Time,
    time_from_start_ns: u64,
    out: &mut Vec<u8>,
) {
    let mut w = CdrWriter::new(out);
    let n = cmd.position.len();
    match format {
        CommandFormat::JointTrajectory => {
            stamp.write(&mut w);
            w.str("");
            w.str_seq(names.iter().map(String::as_str));
            w.len(1);
            w.f64_seq(cmd.position.iter().copied());
            w.f64_seq(cmd.velocity.iter().copied());
            w.len(0); // accelerations
            w.len(0); // effort
            Time::from_nanos(time_from_start_ns).write(&mut w);
        }
        CommandFormat::Float64MultiArray => {
            w.len(1);
            w.str("position");
            w.u32(n as u32);
            w.u32(n as u32);
            w.u32(0);
            w.f64_seq(cmd.position.iter().copied());
        }
        CommandFormat::JointState => {
            stamp.write(&mut w);
            w.str("");
            w.str_seq(names.iter().map(String::as_str));
            w.f64_seq(cmd.position.iter().copied());
            w.f64_seq(cmd.velocity.iter().copied());
            w.len(0); // effort
        }
    }
}

/// Joint targets carried by a command message, as decoded by a plant.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CommandTargets {
    /// Header stamp, when the format has a header.
    pub stamp: Option<Time>,
    /// Position targets.
    pub position: JointVec,
    /// Velocity feed-forward (zeros when the message has none).
    pub velocity: JointVec,
}

/// Decodes a command of `format` (positional joint order; the first point of
/// a trajectory), for plants such as the simulated arm.
pub fn decode_command(
    bytes: &[u8],
    format: CommandFormat,
    limits: &DecodeLimits,
) -> Result<CommandTargets, DecodeError> {
    let max = limits.max_joints.min(MAX_JOINTS);
    let mut r = CdrReader::new(bytes, limits)?;
    let to_vec = |a: F64s<'_>| {
        let mut v = JointVec::zeros(a.len());
        for (i, d) in v.iter_mut().enumerate() {
            *d = a.get(i);
        }
        v
    };
    let (stamp, position, velocity) = match format {
        CommandFormat::JointTrajectory => {
            let stamp = Time::read(&mut r)?;
            r.str()?;
            let n_names = r.seq_len(max, 4)?;
            for _ in 0..n_names {
                r.str()?;
            }
            if r.seq_len(limits.max_array_len, 24)? == 0 {
                return Err(DecodeError::JointMismatch);
            }
            let p = r.f64_seq(max)?;
            let v = r.f64_seq(max)?;
            // The rest of the first point (accelerations, effort,
            // time_from_start) is not used but must be there: a payload cut
            // inside it is truncated, not a command.
            r.f64_seq(max)?;
            r.f64_seq(max)?;
            r.u32()?;
            r.u32()?;
            if n_names != 0 && p.len() != n_names {
                return Err(DecodeError::JointMismatch);
            }
            (Some(stamp), p, v)
        }
        CommandFormat::Float64MultiArray => {
            let n_dim = r.seq_len(limits.max_array_len, 12)?;
            for _ in 0..n_dim {
                r.str()?;
                r.u32()?;
                r.u32()?;
            }
            r.u32()?;
            let p = r.f64_seq(max)?;
            (None, p, F64s::EMPTY)
        }
        CommandFormat::JointState => {
            let stamp = Time::read(&mut r)?;
            r.str()?;
            let n_names = r.seq_len(max, 4)?;
            for _ in 0..n_names {
                r.str()?;
            }
            let p = r.f64_seq(max)?;
            let v = r.f64_seq(max)?;
            if n_names != 0 && p.len() != n_names {
                return Err(DecodeError::JointMismatch);
            }
            (Some(stamp), p, v)
        }
    };
    if !velocity.is_empty() && velocity.len() != position.len() {
        return Err(DecodeError::JointMismatch);
    }
    let position = to_vec(position);
    let velocity = if velocity.is_empty() { JointVec::zeros(position.len()) } else { to_vec(velocity) };
    Ok(CommandTargets { stamp, position, velocity })
}
