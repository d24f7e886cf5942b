//! V4L2 cameras for Ganglion.
//!
//! - [`device`]: a V4L2 capture device through direct ioctls (open by
//!   path, `QUERYCAP`, the formats / frame sizes / frame rates it offers,
//!   `S_FMT`, `S_PARM`, mmap buffers, `QBUF`/`DQBUF`, `STREAMON`/`OFF`).
//! - [`decode`]: MJPEG (zune-jpeg, pure Rust) and YUYV (BT.601 limited
//!   range) to RGB8, resized into the loop's frame geometry.
//! - [`capture`]: one camera end to end: [`Camera::open`] negotiates the
//!   profile's format, size and rate (or fails naming the device, what was
//!   asked and what it offers), [`Camera::spawn`] starts its thread, which
//!   publishes every decoded frame into the loop's frame slot with the
//!   kernel's capture stamp (CLOCK_MONOTONIC, carried over to the loop's
//!   clock) and the driver's sequence number.
//! - [`abi`]: the kernel structs and ioctl numbers, checked against
//!   `<linux/videodev2.h>` by the tests.
//!
//! Why in-process, on a thread per camera, rather than a driver process:
//! README.md.

#![warn(missing_docs)]

pub mod abi;
pub mod capture;
pub mod decode;
pub mod device;
pub mod error;

pub use capture::{
    spawn_capture, Camera, CameraConfig, CameraFacts, CameraReport, CameraThread, FrameSource, RawFrame,
};
pub use decode::{CaptureFormat, CaptureGeometry, Decoder};
pub use device::{list_devices, Device, DeviceInfo, FormatInfo, FrameRates, FrameSizes};
pub use error::{CameraError, DecodeError};

/// One `/dev/video*` node as [`survey`] found it: the device and the
/// capture formats it offers, or why it could not be read.
pub type Surveyed = (std::path::PathBuf, Result<(DeviceInfo, Vec<FormatInfo>), CameraError>);

/// Every `/dev/video*` node with what it offers, for `ganglion check`.
pub fn survey() -> Vec<Surveyed> {
    list_devices()
        .into_iter()
        .map(|p| {
            let r = Device::open(&p).and_then(|d| {
                // Metadata nodes of UVC cameras list no capture formats.
                let formats = if d.info().can_stream_video() { d.formats()? } else { Vec::new() };
                Ok((d.info().clone(), formats))
            });
            (p, r)
        })
        .collect()
}
