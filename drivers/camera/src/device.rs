//! A V4L2 capture device through direct ioctls: open by path, query its
//! capabilities, list what it offers (formats, frame sizes, frame rates),
//! set the format and frame rate, and stream through mmap buffers.

use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::abi::{self, *};
use crate::error::CameraError;

/// `ioctl(fd, request, arg)`, retried on EINTR.
fn xioctl<T>(fd: RawFd, request: u64, arg: &mut T) -> io::Result<()> {
    loop {
        // SAFETY: `arg` is a live, exclusively borrowed `#[repr(C)]` struct
        // whose size is the one encoded in `request` (abi.rs builds each
        // request from the struct it is used with, and the tests compare
        // both with the kernel header).
        let rc = unsafe { libc::ioctl(fd, request as _, arg as *mut T) };
        if rc != -1 {
            return Ok(());
        }
        let e = io::Error::last_os_error();
        if e.kind() != io::ErrorKind::Interrupted {
            return Err(e);
        }
    }
}

/// A NUL-terminated byte field as text.
fn text(bytes: &[u8]) -> String {
    let end = bytes.iter().position(|b| *b == 0).unwrap_or(bytes.len());
    String::from_utf8_lossy(&bytes[..end]).trim().to_string()
}

/// A fourcc as its four characters (`MJPG`, `YUYV`).
pub fn fourcc_name(code: u32) -> String {
    code.to_le_bytes().iter().map(|b| if b.is_ascii_graphic() { *b as char } else { '?' }).collect()
}

fn fourcc_as_name<S: serde::Serializer>(code: &u32, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&fourcc_name(*code))
}

/// The `/dev/video*` nodes present, in numeric order.
pub fn list_devices() -> Vec<PathBuf> {
    let Ok(dir) = std::fs::read_dir("/dev") else { return Vec::new() };
    let mut found: Vec<(u32, PathBuf)> = dir
        .filter_map(|e| e.ok())
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let n = name.strip_prefix("video")?.parse::<u32>().ok()?;
            Some((n, e.path()))
        })
        .collect();
    found.sort();
    found.into_iter().map(|(_, p)| p).collect()
}

/// The frame sizes a format offers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameSizes {
    /// A list of sizes, each with the frame rates offered at it.
    Discrete(Vec<SizeRates>),
    /// Any size in a range (continuous: steps of 1).
    Stepwise {
        /// Smallest width.
        min_width: u32,
        /// Largest width.
        max_width: u32,
        /// Width step.
        step_width: u32,
        /// Smallest height.
        min_height: u32,
        /// Largest height.
        max_height: u32,
        /// Height step.
        step_height: u32,
    },
}

/// The frame rates offered at one size.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FrameRates {
    /// These rates, fps.
    Discrete(Vec<f64>),
    /// Any rate in this range, fps.
    Range {
        /// Slowest.
        min_fps: f64,
        /// Fastest.
        max_fps: f64,
    },
    /// The driver does not enumerate them.
    Unknown,
}

impl FrameRates {
    /// Whether `fps` is offered (within 1 %; 29.97 counts as 30).
    pub fn offers(&self, fps: f64) -> bool {
        let close = |r: f64| (r - fps).abs() <= 0.01 * fps;
        match self {
            FrameRates::Discrete(v) => v.iter().any(|r| close(*r)),
            FrameRates::Range { min_fps, max_fps } => fps >= min_fps * 0.99 && fps <= max_fps * 1.01,
            FrameRates::Unknown => true,
        }
    }
}

impl std::fmt::Display for FrameRates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FrameRates::Discrete(v) => {
                let list: Vec<String> = v.iter().map(|r| format!("{}", (r * 100.0).round() / 100.0)).collect();
                write!(f, "{} fps", list.join(", "))
            }
            FrameRates::Range { min_fps, max_fps } => write!(f, "{min_fps:.2}..{max_fps:.2} fps"),
            FrameRates::Unknown => write!(f, "fps not listed"),
        }
    }
}

/// One size and its frame rates.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct SizeRates {
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Frame rates at this size.
    pub rates: FrameRates,
}

/// One pixel format a device offers.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FormatInfo {
    /// The fourcc code (JSON: its four characters, e.g. `"MJPG"`).
    #[serde(serialize_with = "fourcc_as_name")]
    pub fourcc: u32,
    /// The driver's description, e.g. `Motion-JPEG`.
    pub description: String,
    /// A compressed format (MJPEG).
    pub compressed: bool,
    /// Converted in software by the driver or libv4l, not native.
    pub emulated: bool,
    /// The sizes it offers.
    pub sizes: FrameSizes,
}

impl FormatInfo {
    /// Whether `width × height` is offered.
    pub fn offers_size(&self, width: u32, height: u32) -> bool {
        match &self.sizes {
            FrameSizes::Discrete(v) => v.iter().any(|s| s.width == width && s.height == height),
            FrameSizes::Stepwise { min_width, max_width, step_width, min_height, max_height, step_height } => {
                let fits = |v: u32, lo: u32, hi: u32, step: u32| v >= lo && v <= hi && (v - lo) % step.max(1) == 0;
                fits(width, *min_width, *max_width, *step_width) && fits(height, *min_height, *max_height, *step_height)
            }
        }
    }
}

impl std::fmt::Display for FormatInfo {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} ({})", fourcc_name(self.fourcc), self.description)?;
        if self.emulated {
            write!(f, " [emulated]")?;
        }
        match &self.sizes {
            FrameSizes::Discrete(v) => {
                let list: Vec<String> = v.iter().map(|s| format!("{}x{} at {}", s.width, s.height, s.rates)).collect();
                write!(f, ": {}", list.join("; "))
            }
            FrameSizes::Stepwise { min_width, max_width, min_height, max_height, .. } => {
                write!(f, ": {min_width}x{min_height} to {max_width}x{max_height}")
            }
        }
    }
}

/// What `VIDIOC_QUERYCAP` says about a device.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct DeviceInfo {
    /// The device path.
    pub path: PathBuf,
    /// The kernel driver, e.g. `uvcvideo`.
    pub driver: String,
    /// The device's name, e.g. `HD Pro Webcam C920`.
    pub card: String,
    /// Where it is attached, e.g. `usb-0000:00:14.0-1`.
    pub bus_info: String,
    /// Capabilities of this node (`device_caps`, else `capabilities`).
    pub caps: u32,
}

impl DeviceInfo {
    /// A video capture node with streaming I/O.
    pub fn can_stream_video(&self) -> bool {
        self.caps & V4L2_CAP_VIDEO_CAPTURE != 0 && self.caps & V4L2_CAP_STREAMING != 0
    }
}

/// An open V4L2 device.
#[derive(Debug)]
pub struct Device {
    file: File,
    info: DeviceInfo,
}

impl Device {
    /// Opens `path` (non-blocking) and queries its capabilities; refuses a
    /// path that does not exist or is not a V4L2 device, naming it.
    pub fn open(path: &Path) -> Result<Device, CameraError> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
            .open(path)
            .map_err(|source| {
                if source.kind() == io::ErrorKind::NotFound {
                    let found: Vec<String> = list_devices().iter().map(|p| p.display().to_string()).collect();
                    let found = if found.is_empty() { "none".to_string() } else { found.join(", ") };
                    CameraError::NotFound { path: path.to_path_buf(), found }
                } else {
                    CameraError::Open { path: path.to_path_buf(), source }
                }
            })?;
        let mut cap: v4l2_capability = abi::zeroed();
        xioctl(file.as_raw_fd(), VIDIOC_QUERYCAP, &mut cap)
            .map_err(|source| CameraError::NotV4l2 { path: path.to_path_buf(), source })?;
        let caps = if cap.capabilities & V4L2_CAP_DEVICE_CAPS != 0 { cap.device_caps } else { cap.capabilities };
        let info = DeviceInfo {
            path: path.to_path_buf(),
            driver: text(&cap.driver),
            card: text(&cap.card),
            bus_info: text(&cap.bus_info),
            caps,
        };
        Ok(Device { file, info })
    }

    /// What the device said about itself.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }

    /// The device path.
    pub fn path(&self) -> &Path {
        &self.info.path
    }

    fn fd(&self) -> RawFd {
        self.file.as_raw_fd()
    }

    fn io(&self, what: &'static str) -> impl FnOnce(io::Error) -> CameraError + '_ {
        move |source| CameraError::Io { path: self.info.path.clone(), what, source }
    }

    /// Every capture format with its sizes and frame rates
    /// (`VIDIOC_ENUM_FMT`, `VIDIOC_ENUM_FRAMESIZES`, `VIDIOC_ENUM_FRAMEINTERVALS`).
    pub fn formats(&self) -> Result<Vec<FormatInfo>, CameraError> {
        let mut out = Vec::new();
        for index in 0.. {
            let mut d: v4l2_fmtdesc = abi::zeroed();
            d.index = index;
            d.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
            match xioctl(self.fd(), VIDIOC_ENUM_FMT, &mut d) {
                Ok(()) => {}
                Err(e) if e.raw_os_error() == Some(libc::EINVAL) => break,
                Err(e) => return Err(self.io("VIDIOC_ENUM_FMT")(e)),
            }
            out.push(FormatInfo {
                fourcc: d.pixelformat,
                description: text(&d.description),
                compressed: d.flags & V4L2_FMT_FLAG_COMPRESSED != 0,
                emulated: d.flags & V4L2_FMT_FLAG_EMULATED != 0,
                sizes: self.sizes(d.pixelformat)?,
            });
        }
        Ok(out)
    }

    fn sizes(&self, fourcc: u32) -> Result<FrameSizes, CameraError> {
        let mut list = Vec::new();
        for index in 0.. {
            let mut s: v4l2_frmsizeenum = abi::zeroed();
            s.index = index;
            s.pixel_format = fourcc;
            match xioctl(self.fd(), VIDIOC_ENUM_FRAMESIZES, &mut s) {
                Ok(()) => {}
                // End of the list, or a driver that does not enumerate.
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOTTY)) => break,
                Err(e) => return Err(self.io("VIDIOC_ENUM_FRAMESIZES")(e)),
            }
            if s.type_ == V4L2_FRMSIZE_TYPE_DISCRETE {
                // SAFETY: the kernel filled the `discrete` member (type says so).
                let d = unsafe { s.u.discrete };
                list.push(SizeRates {
                    width: d.width,
                    height: d.height,
                    rates: self.rates(fourcc, d.width, d.height)?,
                });
            } else {
                // SAFETY: continuous and stepwise both fill `stepwise`.
                let w = unsafe { s.u.stepwise };
                let continuous = s.type_ == V4L2_FRMSIZE_TYPE_CONTINUOUS;
                return Ok(FrameSizes::Stepwise {
                    min_width: w.min_width,
                    max_width: w.max_width,
                    step_width: if continuous { 1 } else { w.step_width },
                    min_height: w.min_height,
                    max_height: w.max_height,
                    step_height: if continuous { 1 } else { w.step_height },
                });
            }
        }
        Ok(FrameSizes::Discrete(list))
    }

    /// The frame rates offered for `fourcc` at `width × height`.
    pub fn rates(&self, fourcc: u32, width: u32, height: u32) -> Result<FrameRates, CameraError> {
        let fps =
            |f: v4l2_fract| if f.numerator == 0 { 0.0 } else { f64::from(f.denominator) / f64::from(f.numerator) };
        let mut list = Vec::new();
        for index in 0.. {
            let mut i: v4l2_frmivalenum = abi::zeroed();
            i.index = index;
            i.pixel_format = fourcc;
            i.width = width;
            i.height = height;
            match xioctl(self.fd(), VIDIOC_ENUM_FRAMEINTERVALS, &mut i) {
                Ok(()) => {}
                Err(e) if matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOTTY)) => break,
                Err(e) => return Err(self.io("VIDIOC_ENUM_FRAMEINTERVALS")(e)),
            }
            if i.type_ == V4L2_FRMIVAL_TYPE_DISCRETE {
                // SAFETY: the kernel filled the `discrete` member (type says so).
                list.push(fps(unsafe { i.u.discrete }));
            } else {
                // SAFETY: continuous and stepwise both fill `stepwise`.
                let s = unsafe { i.u.stepwise };
                // The longest interval is the slowest rate.
                return Ok(FrameRates::Range { min_fps: fps(s.max), max_fps: fps(s.min) });
            }
        }
        Ok(if list.is_empty() { FrameRates::Unknown } else { FrameRates::Discrete(list) })
    }

    /// `VIDIOC_S_FMT` for capture: the format the driver applied
    /// (it may differ from the request: the caller checks).
    pub fn set_format(&self, fourcc: u32, width: u32, height: u32) -> Result<v4l2_pix_format, CameraError> {
        let mut f: v4l2_format = abi::zeroed();
        f.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        // Writing a union member of plain data is safe: the whole union
        // becomes `pix` (the rest of the zeroed bytes stay zero).
        f.fmt.pix = v4l2_pix_format { width, height, pixelformat: fourcc, field: V4L2_FIELD_NONE, ..abi::zeroed() };
        xioctl(self.fd(), VIDIOC_S_FMT, &mut f).map_err(self.io("VIDIOC_S_FMT"))?;
        // SAFETY: the kernel fills `pix` for a video capture format.
        Ok(unsafe { f.fmt.pix })
    }

    /// `VIDIOC_S_PARM`: asks for `fps`; returns the rate applied, or
    /// `None` when the driver cannot set the rate (no `TIMEPERFRAME`).
    pub fn set_frame_rate(&self, fps: f64) -> Result<Option<f64>, CameraError> {
        let mut p: v4l2_streamparm = abi::zeroed();
        p.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        xioctl(self.fd(), VIDIOC_G_PARM, &mut p).map_err(self.io("VIDIOC_G_PARM"))?;
        // SAFETY: the kernel fills `capture` for a capture stream.
        if unsafe { p.parm.capture.capability } & V4L2_CAP_TIMEPERFRAME == 0 {
            return Ok(None);
        }
        // 1000 / (fps · 1000) seconds per frame keeps 29.97 exact enough.
        let tpf = v4l2_fract { numerator: 1000, denominator: (fps * 1000.0).round() as u32 };
        // SAFETY: reading the `capture` member G_PARM filled, to change one field.
        let mut capture = unsafe { p.parm.capture };
        capture.timeperframe = tpf;
        p.parm.capture = capture;
        xioctl(self.fd(), VIDIOC_S_PARM, &mut p).map_err(self.io("VIDIOC_S_PARM"))?;
        // SAFETY: as above.
        let t = unsafe { p.parm.capture.timeperframe };
        Ok(Some(if t.numerator == 0 { 0.0 } else { f64::from(t.denominator) / f64::from(t.numerator) }))
    }

    /// Requests `count` mmap buffers, maps and queues them all, and starts
    /// streaming.
    pub fn stream(self, count: u32) -> Result<Stream, CameraError> {
        let mut req: v4l2_requestbuffers = abi::zeroed();
        req.count = count;
        req.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        req.memory = V4L2_MEMORY_MMAP;
        xioctl(self.fd(), VIDIOC_REQBUFS, &mut req).map_err(self.io("VIDIOC_REQBUFS"))?;
        if req.count == 0 {
            return Err(CameraError::Refused {
                path: self.info.path.clone(),
                wanted: format!("{count} mmap buffers"),
                applied: "none (the device may be in use by another program)".into(),
            });
        }
        let mut stream = Stream { device: self, buffers: Vec::with_capacity(req.count as usize), streaming: false };
        for index in 0..req.count {
            let mut b: v4l2_buffer = abi::zeroed();
            b.index = index;
            b.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
            b.memory = V4L2_MEMORY_MMAP;
            xioctl(stream.device.fd(), VIDIOC_QUERYBUF, &mut b).map_err(stream.device.io("VIDIOC_QUERYBUF"))?;
            // SAFETY: for MMAP buffers the kernel fills `m.offset`.
            let offset = unsafe { b.m.offset };
            let len = b.length as usize;
            // SAFETY: mapping `len` bytes of the device at the offset the
            // kernel gave for this buffer; the result is checked below and
            // unmapped in `Drop`.
            let ptr = unsafe {
                libc::mmap(
                    std::ptr::null_mut(),
                    len,
                    libc::PROT_READ | libc::PROT_WRITE,
                    libc::MAP_SHARED,
                    stream.device.fd(),
                    offset as libc::off_t,
                )
            };
            if ptr == libc::MAP_FAILED {
                return Err(stream.device.io("mmap of a capture buffer")(io::Error::last_os_error()));
            }
            stream.buffers.push(Mapping { ptr: ptr.cast(), len });
            stream.queue(index)?;
        }
        let mut kind = V4L2_BUF_TYPE_VIDEO_CAPTURE as i32;
        xioctl(stream.device.fd(), VIDIOC_STREAMON, &mut kind).map_err(stream.device.io("VIDIOC_STREAMON"))?;
        stream.streaming = true;
        Ok(stream)
    }
}

/// One mmap'ed capture buffer.
#[derive(Debug)]
struct Mapping {
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the mapping is owned by one `Stream` and only read through it.
unsafe impl Send for Mapping {}

/// A dequeued buffer: where it is and what the kernel said about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dequeued {
    /// Buffer index (give it back with [`Stream::queue`]).
    pub index: u32,
    /// Bytes of image data.
    pub bytesused: u32,
    /// `V4L2_BUF_FLAG_*`.
    pub flags: u32,
    /// The driver's frame counter (gaps: frames it dropped).
    pub sequence: u32,
    /// The kernel's timestamp, ns (its clock: see `flags`).
    pub timestamp_ns: u64,
}

impl Dequeued {
    /// The timestamp is on `CLOCK_MONOTONIC`.
    pub fn monotonic(&self) -> bool {
        self.flags & V4L2_BUF_FLAG_TIMESTAMP_MASK == V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC
    }

    /// The driver flagged the data as corrupted.
    pub fn error(&self) -> bool {
        self.flags & V4L2_BUF_FLAG_ERROR != 0
    }
}

/// A streaming device: mmap buffers cycling between the kernel and us.
#[derive(Debug)]
pub struct Stream {
    device: Device,
    buffers: Vec<Mapping>,
    streaming: bool,
}

impl Stream {
    /// The device.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Hands buffer `index` (back) to the driver.
    pub fn queue(&mut self, index: u32) -> Result<(), CameraError> {
        let mut b: v4l2_buffer = abi::zeroed();
        b.index = index;
        b.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.memory = V4L2_MEMORY_MMAP;
        xioctl(self.device.fd(), VIDIOC_QBUF, &mut b).map_err(self.device.io("VIDIOC_QBUF"))
    }

    /// Waits up to `timeout` for a filled buffer; `None` when none came.
    /// An unplugged camera fails here (ENODEV), naming the device.
    pub fn dequeue(&mut self, timeout: Duration) -> Result<Option<Dequeued>, CameraError> {
        let mut pfd = libc::pollfd { fd: self.device.fd(), events: libc::POLLIN, revents: 0 };
        let ms = timeout.as_millis().min(i32::MAX as u128) as i32;
        // SAFETY: one valid pollfd.
        let rc = unsafe { libc::poll(&mut pfd, 1, ms) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted { Ok(None) } else { Err(self.device.io("poll")(e)) };
        }
        if rc == 0 {
            return Ok(None);
        }
        let mut b: v4l2_buffer = abi::zeroed();
        b.type_ = V4L2_BUF_TYPE_VIDEO_CAPTURE;
        b.memory = V4L2_MEMORY_MMAP;
        match xioctl(self.device.fd(), VIDIOC_DQBUF, &mut b) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(None),
            Err(e) => return Err(self.device.io("VIDIOC_DQBUF")(e)),
        }
        let ts = b.timestamp;
        Ok(Some(Dequeued {
            index: b.index,
            bytesused: b.bytesused,
            flags: b.flags,
            sequence: b.sequence,
            timestamp_ns: (ts.tv_sec.max(0) as u64) * 1_000_000_000 + (ts.tv_usec.max(0) as u64) * 1_000,
        }))
    }

    /// The data of a dequeued buffer (empty for an index the driver never gave).
    pub fn data(&self, d: &Dequeued) -> &[u8] {
        match self.buffers.get(d.index as usize) {
            // SAFETY: the mapping is `len` bytes long and lives as long as
            // `self`; the driver does not write a buffer while it is
            // dequeued (until `queue` hands it back, which needs `&mut self`).
            Some(m) => unsafe { std::slice::from_raw_parts(m.ptr, (d.bytesused as usize).min(m.len)) },
            None => &[],
        }
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.streaming {
            let mut kind = V4L2_BUF_TYPE_VIDEO_CAPTURE as i32;
            let _ = xioctl(self.device.fd(), VIDIOC_STREAMOFF, &mut kind);
        }
        for m in &self.buffers {
            // SAFETY: each mapping came from mmap with this length and is
            // unmapped once, here.
            unsafe { libc::munmap(m.ptr.cast(), m.len) };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The JSON `ganglion check --json` prints for a camera's formats: the
    /// fourcc by its four characters, sizes and rates by kind.
    #[test]
    fn formats_serialize_as_check_prints_them() {
        let mjpg = u32::from_le_bytes(*b"MJPG");
        let f = FormatInfo {
            fourcc: mjpg,
            description: "Motion-JPEG".into(),
            compressed: true,
            emulated: false,
            sizes: FrameSizes::Discrete(vec![SizeRates {
                width: 640,
                height: 480,
                rates: FrameRates::Discrete(vec![30.0, 15.0]),
            }]),
        };
        let v = serde_json::to_value(&f).expect("serializes");
        assert_eq!(v["fourcc"], "MJPG");
        assert_eq!(v["sizes"]["discrete"][0]["width"], 640);
        assert_eq!(v["sizes"]["discrete"][0]["rates"]["discrete"][1], 15.0);
        let s = FormatInfo {
            fourcc: u32::from_le_bytes(*b"YUYV"),
            sizes: FrameSizes::Stepwise {
                min_width: 16,
                max_width: 1920,
                step_width: 16,
                min_height: 16,
                max_height: 1080,
                step_height: 8,
            },
            ..f
        };
        let v = serde_json::to_value(&s).expect("serializes");
        assert_eq!((v["fourcc"].as_str(), v["sizes"]["stepwise"]["max_height"].as_u64()), (Some("YUYV"), Some(1080)));
        assert_eq!(serde_json::to_value(FrameRates::Unknown).expect("serializes"), "unknown");
        assert_eq!(
            serde_json::to_value(FrameRates::Range { min_fps: 5.0, max_fps: 30.0 }).expect("serializes")["range"]
                ["max_fps"],
            30.0
        );
    }
}
