//! What can go wrong with a camera. Every error names the device path and
//! what was expected of it.

use std::path::PathBuf;

/// A camera that could not be opened, set up or read.
#[derive(Debug, thiserror::Error)]
pub enum CameraError {
    /// The path does not exist.
    #[error("the camera {} does not exist; expected a V4L2 capture device (cameras found: {found})", path.display())]
    NotFound {
        /// The device path.
        path: PathBuf,
        /// The `/dev/video*` nodes present, or `none`.
        found: String,
    },
    /// The path exists but could not be opened.
    #[error("cannot open the camera {}: {source}; expected a readable V4L2 capture device (is the user in the `video` group?)", path.display())]
    Open {
        /// The device path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// `VIDIOC_QUERYCAP` failed: not a V4L2 device.
    #[error("{} is not a V4L2 device (VIDIOC_QUERYCAP: {source}); expected a video capture device such as /dev/video0", path.display())]
    NotV4l2 {
        /// The device path.
        path: PathBuf,
        /// The OS error (usually ENOTTY).
        source: std::io::Error,
    },
    /// A V4L2 device that cannot capture video with streaming I/O.
    #[error(
        "the camera {} ({card}) {missing}; expected a video capture node with streaming I/O (a UVC camera's \
         second node is its metadata node: use the first, `…-video-index0` under /dev/v4l/by-id)",
        path.display()
    )]
    NotCapture {
        /// The device path.
        path: PathBuf,
        /// The driver's name for the device.
        card: String,
        /// What it lacks.
        missing: &'static str,
    },
    /// The device does not offer the pixel format, size or frame rate asked for.
    #[error("the camera {} does not offer {wanted}; it offers: {offered}", path.display())]
    NotOffered {
        /// The device path.
        path: PathBuf,
        /// What was asked for, e.g. `MJPEG 640x480 at 30 fps`.
        wanted: String,
        /// What it offers (formats, sizes, frame rates).
        offered: String,
    },
    /// The driver accepted a setting but applied another.
    #[error("the camera {} was set to {wanted} but applied {applied}", path.display())]
    Refused {
        /// The device path.
        path: PathBuf,
        /// What was asked for.
        wanted: String,
        /// What the driver reports it uses.
        applied: String,
    },
    /// An ioctl or mmap failed.
    #[error("the camera {}: {what} failed: {source}", path.display())]
    Io {
        /// The device path.
        path: PathBuf,
        /// The request, e.g. `VIDIOC_DQBUF`.
        what: &'static str,
        /// The OS error (ENODEV: unplugged).
        source: std::io::Error,
    },
    /// No frame arrived within the time asked.
    #[error("the camera {} delivered no frame within {ms} ms", path.display())]
    Timeout {
        /// The device path.
        path: PathBuf,
        /// How long was waited.
        ms: u64,
    },
    /// The capture thread could not be started.
    #[error("starting the capture thread of the camera {}: {source}", path.display())]
    Thread {
        /// The device path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A frame that could not be decoded (the capture thread counts these and
/// goes on with the next frame).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DecodeError {
    /// The JPEG decoder refused the data.
    #[error("MJPEG frame does not decode: {0}")]
    Jpeg(String),
    /// The decoded image is not the negotiated size or colour layout.
    #[error("decoded {what}, expected {expected}")]
    Geometry {
        /// What came out.
        what: String,
        /// What the format negotiation promised.
        expected: String,
    },
    /// The buffer holds fewer bytes than the format needs.
    #[error("frame of {len} bytes, expected at least {needed}")]
    Short {
        /// Bytes delivered.
        len: usize,
        /// Bytes needed.
        needed: usize,
    },
}
