//! Owned ROS 2 message types with CDR encode / decode.
//!
//! Field order and types follow the `.msg` definitions of ROS 2 Humble's
//! `common_interfaces` exactly; the DDS type name of each is given by
//! [`Message::TYPE_NAME`]. These allocate (bounded by [`DecodeLimits`]) and
//! are meant for tools, tests, the simulated plant and the publisher
//! threads; the control path uses [`crate::ingress`] instead.

use crate::cdr::{CdrReader, CdrWriter};
use crate::{DecodeError, DecodeLimits};

/// A message with a CDR layout.
pub trait Message: Sized {
    /// DDS type name as ROS 2 registers it, e.g. `sensor_msgs::msg::dds_::Image_`.
    const TYPE_NAME: &'static str;

    /// Appends the body (no encapsulation header).
    fn write(&self, w: &mut CdrWriter<'_>);

    /// Reads the body; total and bounded by the reader's limits.
    fn read(r: &mut CdrReader<'_>) -> Result<Self, DecodeError>;

    /// The full payload (header + body) into `out` (cleared first).
    fn encode_into(&self, out: &mut Vec<u8>) {
        let mut w = CdrWriter::new(out);
        self.write(&mut w);
    }

    /// The full payload as a new vector.
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode_into(&mut out);
        out
    }

    /// Decodes a full payload.
    fn decode(bytes: &[u8], limits: &DecodeLimits) -> Result<Self, DecodeError> {
        let mut r = CdrReader::new(bytes, limits)?;
        Self::read(&mut r)
    }
}

/// Reads a sequence of `T` with at most `max` elements, each at least
/// `elem_min_bytes` on the wire (so the up-front allocation is bounded by
/// the payload size as well as by `max`).
fn read_seq<T>(
    r: &mut CdrReader<'_>,
    max: usize,
    elem_min_bytes: usize,
    mut read: impl FnMut(&mut CdrReader<'_>) -> Result<T, DecodeError>,
) -> Result<Vec<T>, DecodeError> {
    let n = r.seq_len(max, elem_min_bytes)?;
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(read(r)?);
    }
    Ok(v)
}

fn read_strings(r: &mut CdrReader<'_>, max: usize) -> Result<Vec<String>, DecodeError> {
    // A string is at least its 4-byte length.
    read_seq(r, max, 4, |r| r.str().map(str::to_owned))
}

fn read_f64s(r: &mut CdrReader<'_>, max: usize) -> Result<Vec<f64>, DecodeError> {
    Ok(r.f64_seq(max)?.iter().collect())
}

/// `builtin_interfaces/msg/Time` (and, with the same layout, `Duration`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Time {
    /// Seconds.
    pub sec: i32,
    /// Nanoseconds within the second.
    pub nanosec: u32,
}

impl Time {
    /// From nanoseconds (saturating at the `i32` seconds range).
    pub fn from_nanos(ns: u64) -> Self {
        let sec = (ns / 1_000_000_000).min(i32::MAX as u64) as i32;
        Time { sec, nanosec: (ns % 1_000_000_000) as u32 }
    }

    /// Nanoseconds, or `None` for negative times.
    pub fn as_nanos(self) -> Option<u64> {
        u64::try_from(self.sec).ok().map(|s| s * 1_000_000_000 + u64::from(self.nanosec))
    }

    /// The current wall-clock time (ROS time), the stamp ROS nodes expect.
    pub fn now_wall() -> Self {
        let ns = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        Time::from_nanos(ns)
    }
}

impl Message for Time {
    const TYPE_NAME: &'static str = "builtin_interfaces::msg::dds_::Time_";
    fn write(&self, w: &mut CdrWriter<'_>) {
        w.i32(self.sec);
        w.u32(self.nanosec);
    }
    fn read(r: &mut CdrReader<'_>) -> Result<Self, DecodeError> {
        Ok(Time { sec: r.i32()?, nanosec: r.u32()? })
    }
}

/// `builtin_interfaces/msg/Duration` (same layout as [`Time`]).
pub type Duration = Time;

/// `std_msgs/msg/Header`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Header {
    /// Capture / creation time.
    pub stamp: Time,
    /// Coordinate frame.
    pub frame_id: String,
}

impl Message for Header {
    const TYPE_NAME: &'static str = "std_msgs::msg::dds_::Header_";
    fn write(&self, w: &mut CdrWriter<'_>) {
        self.stamp.write(w);
        w.str(&self.frame_id);
    }
    fn read(r: &mut CdrReader<'_>) -> Result<Self, DecodeError> {
        Ok(Header { stamp: Time::read(r)?, frame_id: r.str()?.to_owned() })
    }
}

/// `sensor_msgs/msg/Image`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Image {
    /// Capture stamp and camera frame.
    pub header: Header,
    /// Rows.
    pub height: u32,
    /// Columns.
    pub width: u32,
    /// Pixel encoding (`rgb8`, `bgr8`, `mono8`, `yuv422_yuy2`, ...).
    pub encoding: String,
    /// Whether multi-byte pixel values are big-endian.
    pub is_bigendian: u8,
    /// Bytes per row (≥ width × pixel size; rows may be padded).
    pub step: u32,
    /// `step × height` bytes.
    pub data: Vec<u8>,
}

impl Message for Image {
    const TYPE_NAME: &'static str = "sensor_msgs::msg::dds_::Image_";
    fn write(&self, w: &mut CdrWriter<'_>) {
        self.header.write(w);
        w.u32(self.height);
        w.u32(self.width);
        w.str(&self.encoding);
        w.u8(self.is_bigendian);
        w.u32(self.step);
        w.bytes(&self.data);
    }
    fn read(r: &mut CdrReader<'_>) -> Result<Self, DecodeError> {
        let header = Header::read(r)?;
        let height = r.u32()?;
        let width = r.u32()?;
        let lim = *r.limits();
        if width > lim.max_width || height > lim.max_height {
            return Err(DecodeError::BadDimensions);
        }
        let encoding = r.str()?.to_owned();
        let is_bigendian = r.u8()?;
        let step = r.u32()?;
        // The largest sane row is 8 bytes a pixel (e.g. rgba16).
        let max_bytes = lim.max_width as usize * lim.max_height as usize * 8;
        let data = r.bytes(max_bytes)?.to_vec();
        Ok(Image { header, height, width, encoding, is_bigendian, step, data })
    }
}

/// `sensor_msgs/msg/JointState`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JointState {
    /// Measurement stamp.
    pub header: Header,
    /// Joint names.
    pub name: Vec<String>,
    /// Positions (rad or m).
    pub position: Vec<f64>,
    /// Velocities; may be empty.
    pub velocity: Vec<f64>,
    /// Efforts; may be empty.
    pub effort: Vec<f64>,
}

impl Message for JointState {
    const TYPE_NAME: &'static str = "sensor_msgs::msg::dds_::JointState_";
    fn write(&self, w: &mut CdrWriter<'_>) {
        self.header.write(w);
        w.str_seq(self.name.iter().map(String::as_str));
        w.f64_seq(self.position.iter().copied());
        w.f64_seq(self.velocity.iter().copied());
        w.f64_seq(self.effort.iter().copied());
    }
    fn read(r: &mut CdrReader<'_>) -> Result<Self, DecodeError> {
        let max = r.limits().max_joints;
        Ok(JointState {
            header: Header::read(r)?,
            name: read_strings(r, max)?,
            position: read_f64s(r, max)?,
            velocity: read_f64s(r, max)?,
            effort: read_f64s(r, max)?,
        })
    }
}

/// `trajectory_msgs/msg/JointTrajectoryPoint`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JointTrajectoryPoint {
    /// Positions.
    pub positions: Vec<f64>,
    /// Velocities; may be empty.
    pub velocities: Vec<f64>,
    /// Accelerations; may be empty.
    pub accelerations: Vec<f64>,
    /// Efforts; may be empty.
    pub effort: Vec<f64>,
    /// When to reach this point, from the trajectory's header stamp.
    pub time_from_start: Duration,
}

impl Message for JointTrajectoryPoint {
    const TYPE_NAME: &'static str = "trajectory_msgs::msg::dds_::JointTrajectoryPoint_";
    fn write(&self, w: &mut CdrWriter<'_>) {
        w.f64_seq(self.positions.iter().copied());
        w.f64_seq(self.velocities.iter().copied());
        w.f64_seq(self.accelerations.iter().copied());
        w.f64_seq(self.effort.iter().copied());
        self.time_from_start.write(w);
    }
    fn read(r: &mut CdrReader<'_>) -> Result<Self, DecodeError> {
        let max = r.limits().max_joints;
        Ok(JointTrajectoryPoint {
            positions: read_f64s(r, max)?,
            velocities: read_f64s(r, max)?,
            accelerations: read_f64s(r, max)?,
            effort: read_f64s(r, max)?,
            time_from_start: Duration::read(r)?,
        })
    }
}

/// `trajectory_msgs/msg/JointTrajectory`.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct JointTrajectory {
    /// Start time of the trajectory (zero: start now).
    pub header: Header,
    /// Joint names, the column order of every point.
    pub joint_names: Vec<String>,
    /// Points.
    pub points: Vec<JointTrajectoryPoint>,
}

impl Message for JointTrajectory {
    const TYPE_NAME: &'static str = "trajectory_msgs::msg::dds_::JointTrajectory_";
    fn write(&self, w: &mut CdrWriter<'_>) {
        self.header.write(w);
        w.str_seq(self.joint_names.iter().map(String::as_str));
        w.len(self.points.len());
        for p in &self.points {
            p.write(w);
        }
    }
    fn read(r: &mut CdrReader<'_>) -> Result<Self, DecodeError> {
        let lim = *r.limits();
        Ok(JointTrajectory {
            header: Header::read(r)?,
            joint_names: read_strings(r, lim.max_joints)?,
            // A point is at least four empty sequences and a duration.
            points: read_seq(r, lim.max_array_len, 24, JointTrajectoryPoint::read)?,
        })
    }
}

/// `std_msgs/msg/MultiArrayDimension`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiArrayDimension {
    /// Dimension label.
    pub label: String,
    /// Size of the dimension.
    pub size: u32,
    /// Stride of the dimension.
    pub stride: u32,
}

/// `std_msgs/msg/MultiArrayLayout`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct MultiArrayLayout {
    /// Dimensions, outermost first.
    pub dim: Vec<MultiArrayDimension>,
    /// Padding elements at the front of `data`.
    pub data_offset: u32,
}

/// `std_msgs/msg/Float64MultiArray` (the message of ros2_control's
/// forward command controllers).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Float64MultiArray {
    /// Layout.
    pub layout: MultiArrayLayout,
    /// Values.
    pub data: Vec<f64>,
}

impl Message for Float64MultiArray {
    const TYPE_NAME: &'static str = "std_msgs::msg::dds_::Float64MultiArray_";
    fn write(&self, w: &mut CdrWriter<'_>) {
        w.len(self.layout.dim.len());
        for d in &self.layout.dim {
            w.str(&d.label);
            w.u32(d.size);
            w.u32(d.stride);
        }
        w.u32(self.layout.data_offset);
        w.f64_seq(self.data.iter().copied());
    }
    fn read(r: &mut CdrReader<'_>) -> Result<Self, DecodeError> {
        let max = r.limits().max_array_len;
        let dim = read_seq(r, max, 12, |r| {
            Ok(MultiArrayDimension { label: r.str()?.to_owned(), size: r.u32()?, stride: r.u32()? })
        })?;
        let data_offset = r.u32()?;
        Ok(Float64MultiArray { layout: MultiArrayLayout { dim, data_offset }, data: read_f64s(r, max)? })
    }
}

/// `diagnostic_msgs/msg/KeyValue`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct KeyValue {
    /// Key.
    pub key: String,
    /// Value.
    pub value: String,
}

/// `diagnostic_msgs/msg/DiagnosticStatus`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiagnosticStatus {
    /// 0 OK, 1 WARN, 2 ERROR, 3 STALE.
    pub level: u8,
    /// Component name.
    pub name: String,
    /// Human-readable summary.
    pub message: String,
    /// Hardware identifier.
    pub hardware_id: String,
    /// Key-value details.
    pub values: Vec<KeyValue>,
}

impl DiagnosticStatus {
    /// `level` OK.
    pub const OK: u8 = 0;
    /// `level` WARN.
    pub const WARN: u8 = 1;
    /// `level` ERROR.
    pub const ERROR: u8 = 2;
    /// `level` STALE.
    pub const STALE: u8 = 3;
}

/// `diagnostic_msgs/msg/DiagnosticArray`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DiagnosticArray {
    /// Stamp.
    pub header: Header,
    /// Statuses.
    pub status: Vec<DiagnosticStatus>,
}

impl Message for DiagnosticArray {
    const TYPE_NAME: &'static str = "diagnostic_msgs::msg::dds_::DiagnosticArray_";
    fn write(&self, w: &mut CdrWriter<'_>) {
        self.header.write(w);
        w.len(self.status.len());
        for s in &self.status {
            w.u8(s.level);
            w.str(&s.name);
            w.str(&s.message);
            w.str(&s.hardware_id);
            w.len(s.values.len());
            for kv in &s.values {
                w.str(&kv.key);
                w.str(&kv.value);
            }
        }
    }
    fn read(r: &mut CdrReader<'_>) -> Result<Self, DecodeError> {
        let max = r.limits().max_array_len;
        let header = Header::read(r)?;
        let status = read_seq(r, max, 17, |r| {
            Ok(DiagnosticStatus {
                level: r.u8()?,
                name: r.str()?.to_owned(),
                message: r.str()?.to_owned(),
                hardware_id: r.str()?.to_owned(),
                values: read_seq(r, max, 8, |r| Ok(KeyValue { key: r.str()?.to_owned(), value: r.str()?.to_owned() }))?,
            })
        })?;
        Ok(DiagnosticArray { header, status })
    }
}

/// `std_msgs/msg/String` (the language instruction).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StringMsg {
    /// The text.
    pub data: String,
}

impl Message for StringMsg {
    const TYPE_NAME: &'static str = "std_msgs::msg::dds_::String_";
    fn write(&self, w: &mut CdrWriter<'_>) {
        w.str(&self.data);
    }
    fn read(r: &mut CdrReader<'_>) -> Result<Self, DecodeError> {
        Ok(StringMsg { data: r.str()?.to_owned() })
    }
}

/// The heartbeat is a plain `std_msgs/msg/Header`: `stamp` is the sender's
/// wall time, `frame_id` its state. Ganglion publishes its supervisor mode
/// name there (`nominal`, `fallback`, ...); an external sender (operator,
/// safety layer) sends `ok`, or `stop` to request an operator stop.
pub type Heartbeat = Header;
