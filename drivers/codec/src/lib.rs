//! ROS 2 `common_interfaces` messages as CDR: bounded, total decoders and
//! encoders shared by every transport.
//!
//! The same bytes travel over zenoh and over DDS: a CDR encapsulation header
//! (`00 01 00 00`, little-endian plain CDR) followed by the message body laid
//! out exactly as ROS 2's rosidl typesupport lays it out, so any ROS tool can
//! decode a zenoh payload and any ROS node can talk to Ganglion.
//!
//! - [`cdr`]: the bounded reader and the writer.
//! - [`msg`]: owned message types (`sensor_msgs/Image`, `JointState`,
//!   `trajectory_msgs/JointTrajectory`, `std_msgs/Float64MultiArray`,
//!   `diagnostic_msgs/DiagnosticArray`, `std_msgs/String`, the heartbeat) with
//!   `encode` / `decode`, for tools, tests and non-real-time paths.
//! - [`ingest`]: per-topic decoding into the loop's slots with stamps,
//!   sequence numbers and counters, and the bounded command queue.
//! - [`corpus`]: the malformed-input corpus every decoder must reject.
//! - [`ingress`]: decoding straight into the loop's preallocated buffers
//!   (frames, joint states, instructions, heartbeats) and encoding commands.
//!
//! Decoding is total: every input yields a value or a [`DecodeError`], never
//! a panic, and nothing is allocated beyond what [`DecodeLimits`] allows.

#![warn(missing_docs)]

pub mod cdr;
pub mod corpus;
pub mod ingest;
pub mod ingress;
pub mod msg;
pub mod remote;

pub use cdr::{CdrReader, CdrWriter, CDR_BE_HEADER, CDR_LE_HEADER};
pub use ingest::{command_queue, CaptureStamp, IngestConfig, Inputs, Outbox, QueueSink, TopicCounters, TopicStats};
pub use ingress::{
    decode_command, decode_heartbeat_into, decode_image_into, decode_instruction, decode_joint_state_into,
    encode_command, encode_heartbeat, CommandFormat, CommandTargets, JointMap,
};

/// Why a payload was rejected. Every variant is counted as a decode error
/// by the drivers and the payload is dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum DecodeError {
    /// The payload ends before the message does (including a sequence
    /// length larger than the bytes left).
    #[error("payload truncated")]
    Truncated,
    /// The first two bytes are not a plain-CDR encapsulation (LE or BE).
    #[error("not a plain CDR encapsulation")]
    BadEncapsulation,
    /// A string, sequence or the whole payload exceeds its [`DecodeLimits`] cap.
    #[error("field longer than the configured limit")]
    TooLong,
    /// A string lacks its NUL terminator or is not UTF-8.
    #[error("malformed string")]
    BadString,
    /// The image encoding string is not one the runtime accepts.
    #[error("unsupported image encoding")]
    BadEncoding,
    /// Image width or height is zero or beyond the configured maximum, or
    /// does not fit the preallocated frame.
    #[error("image dimensions out of range")]
    BadDimensions,
    /// Image `step` or data length disagrees with width × height × pixel size.
    #[error("image step or data length inconsistent with its geometry")]
    BadGeometry,
    /// Joint arrays disagree in length with the names or with the robot's
    /// joint count, or a configured joint name is missing.
    #[error("joint arrays do not match the robot's joints")]
    JointMismatch,
}

/// Caps every decoder enforces before reading or allocating.
///
/// Defaults suit a 1080p camera and a 16-joint arm; profiles tighten them
/// (e.g. image size to the camera's configured size).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeLimits {
    /// Largest accepted image width, pixels.
    pub max_width: u32,
    /// Largest accepted image height, pixels.
    pub max_height: u32,
    /// Largest accepted joint count (names and value arrays).
    pub max_joints: usize,
    /// Longest accepted string, bytes (without the NUL).
    pub max_string_len: usize,
    /// Longest accepted sequence of non-byte elements (trajectory points,
    /// diagnostic statuses, key-values, array data, dimensions).
    pub max_array_len: usize,
    /// Largest accepted payload, bytes.
    pub max_message_bytes: usize,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_width: 1920,
            max_height: 1080,
            max_joints: ganglion_core::MAX_JOINTS,
            max_string_len: 1024,
            max_array_len: 4096,
            max_message_bytes: 1920 * 1080 * 4 + 4096,
        }
    }
}
