//! One camera end to end: negotiate the format with the device
//! ([`Camera::open`]), then a thread of its own that dequeues each buffer,
//! decodes and resizes it into the loop's frame slot with the kernel's
//! capture stamp and the driver's sequence number ([`Camera::spawn`]).
//!
//! What the loop sees when a camera fails: nothing new in its slot. The
//! loop's own checks then name it: `stale_camera` once the newest frame is
//! older than `[staleness] camera_max_age_ms`, `frozen_camera` for
//! repeated content, `blank_camera` for a covered lens. The thread itself
//! logs a stall (no frame for `stall_ms`) once per stall, naming the camera
//! and device, and ends — with the error logged, naming the device — when a
//! read fails (an unplugged camera: `ENODEV`) or when anything on it panics
//! (the panic is caught: the control loop keeps running and falls back).

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use ganglion_codec::TopicCounters;
use ganglion_core::{Clock, Frame, MonotonicClock, SlotWriter, Stamped};

use crate::decode::{CaptureFormat, CaptureGeometry, Decoder};
use crate::device::{fourcc_name, Device, FormatInfo, Stream};
use crate::error::CameraError;

/// One camera's settings (a `[[transport.cameras]]` entry in a profile).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CameraConfig {
    /// The camera's name: the profile's `robot.cameras` entry (and frame
    /// slot) this camera feeds.
    pub name: String,
    /// The device: a stable udev name such as
    /// `/dev/v4l/by-id/usb-…-video-index0`, or `/dev/videoN`.
    pub device: PathBuf,
    /// `mjpeg` or `yuyv`.
    pub format: CaptureFormat,
    /// Capture width; 0: the frame slot's width (the profile's camera).
    pub width: u32,
    /// Capture height; 0: the frame slot's height.
    pub height: u32,
    /// Frames per second asked of the camera (it must offer the rate at
    /// that format and size).
    pub fps: f64,
    /// mmap buffers cycling between the kernel and the capture thread (2..=16).
    pub buffers: u32,
    /// No frame for this long is a stall, logged with the camera's name
    /// (the loop's `stale_camera` judges on its own limit), ms; 0: three
    /// frame periods, at least 100 ms.
    pub stall_ms: u64,
}

impl Default for CameraConfig {
    fn default() -> Self {
        CameraConfig {
            name: String::new(),
            device: PathBuf::new(),
            format: CaptureFormat::Mjpeg,
            width: 0,
            height: 0,
            fps: 30.0,
            buffers: 4,
            stall_ms: 0,
        }
    }
}

impl CameraConfig {
    /// What this section needs on its own: `(key, expected)` of the first
    /// problem (the profile prefixes the key with its path).
    pub fn problem(&self) -> Option<(&'static str, String)> {
        if self.name.trim().is_empty() {
            return Some(("name", "the name of the robot.cameras entry this camera feeds".into()));
        }
        if self.device.as_os_str().is_empty() {
            return Some(("device", "the camera's V4L2 device, e.g. `/dev/v4l/by-id/usb-…-video-index0`".into()));
        }
        if (self.width == 0) != (self.height == 0) {
            return Some(("width", "width and height both set (the capture size) or both left out".into()));
        }
        if self.width > 8192 || self.height > 8192 || (self.format == CaptureFormat::Yuyv && self.width % 2 != 0) {
            return Some(("width", "a capture size up to 8192x8192 (an even width for yuyv)".into()));
        }
        if !(self.fps.is_finite() && self.fps > 0.0 && self.fps <= 1000.0) {
            return Some(("fps", "a frame rate in (0, 1000] the camera offers, e.g. 30".into()));
        }
        if !(2..=16).contains(&self.buffers) {
            return Some(("buffers", "2..=16 mmap buffers".into()));
        }
        if self.stall_ms > 60_000 {
            return Some(("stall_ms", "0..=60000 ms (0: three frame periods)".into()));
        }
        None
    }

    /// The capture size for a slot of `slot_w × slot_h`.
    pub fn capture_size(&self, slot_w: u32, slot_h: u32) -> (u32, u32) {
        if self.width == 0 {
            (slot_w, slot_h)
        } else {
            (self.width, self.height)
        }
    }

    fn stall(&self) -> Duration {
        if self.stall_ms > 0 {
            Duration::from_millis(self.stall_ms)
        } else {
            Duration::from_secs_f64(3.0 / self.fps).max(Duration::from_millis(100))
        }
    }
}

/// What a camera turned out to be, for logs and the run report.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct CameraFacts {
    /// The profile's name for it.
    pub name: String,
    /// The device path.
    pub device: String,
    /// The device's name (`VIDIOC_QUERYCAP` card).
    pub card: String,
    /// Its kernel driver.
    pub driver: String,
    /// Where it is attached.
    pub bus_info: String,
    /// What it sends, e.g. `MJPEG 640x480`.
    pub capture: String,
    /// The frame rate it applied; `None` when the driver cannot set one.
    pub fps: Option<f64>,
    /// What the loop gets, e.g. `224x224 rgb8`.
    pub output: String,
    /// mmap buffers granted.
    pub buffers: u32,
}

/// One frame as a source hands it over.
#[derive(Debug, Clone, Copy)]
pub struct RawFrame<'a> {
    /// The buffer's bytes.
    pub data: &'a [u8],
    /// The driver's frame counter.
    pub sequence: u32,
    /// The capture time on `CLOCK_MONOTONIC`, ns, when the driver stamps
    /// buffers on that clock (`V4L2_BUF_FLAG_TIMESTAMP_MONOTONIC`).
    pub monotonic_ns: Option<u64>,
    /// The driver flagged the data as corrupted (`V4L2_BUF_FLAG_ERROR`).
    pub corrupted: bool,
}

/// Where a capture thread gets its frames: a V4L2 [`Stream`], or a test's
/// scripted source.
pub trait FrameSource: Send {
    /// The device path (for logs and errors).
    fn path(&self) -> &Path;
    /// Waits up to `timeout` for the next frame and passes it to `f`;
    /// `Ok(false)` when none came. An error ends the capture thread.
    fn next_frame(&mut self, timeout: Duration, f: &mut dyn FnMut(RawFrame<'_>)) -> Result<bool, CameraError>;
}

impl FrameSource for Stream {
    fn path(&self) -> &Path {
        self.device().path()
    }

    fn next_frame(&mut self, timeout: Duration, f: &mut dyn FnMut(RawFrame<'_>)) -> Result<bool, CameraError> {
        let Some(d) = self.dequeue(timeout)? else { return Ok(false) };
        f(RawFrame {
            data: self.data(&d),
            sequence: d.sequence,
            monotonic_ns: d.monotonic().then_some(d.timestamp_ns),
            corrupted: d.error(),
        });
        self.queue(d.index)?;
        Ok(true)
    }
}

/// An opened camera, streaming, with its decoder; not yet publishing.
pub struct Camera {
    name: String,
    stream: Stream,
    decoder: Decoder,
    facts: CameraFacts,
    stall: Duration,
}

impl std::fmt::Debug for Camera {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Camera").field("facts", &self.facts).finish()
    }
}

/// The formats a device offers, for an error message.
fn offered(formats: &[FormatInfo]) -> String {
    if formats.is_empty() {
        return "no capture formats".into();
    }
    formats.iter().map(|f| f.to_string()).collect::<Vec<_>>().join(" | ")
}

impl Camera {
    /// Opens `cfg.device` for the camera `cfg.name`, checks that it offers the format at the capture
    /// size and frame rate (an error names the device, what was asked and
    /// what it offers), sets them, maps the buffers and starts streaming.
    /// Frames will be `out_w × out_h` RGB8 (the loop's slot).
    pub fn open(cfg: &CameraConfig, out_w: u32, out_h: u32) -> Result<Camera, CameraError> {
        let name = cfg.name.as_str();
        let path = cfg.device.clone();
        let device = Device::open(&path)?;
        let info = device.info().clone();
        if !info.can_stream_video() {
            let missing = if info.caps & crate::abi::V4L2_CAP_VIDEO_CAPTURE == 0 {
                "is not a video capture device"
            } else {
                "does not support streaming I/O"
            };
            return Err(CameraError::NotCapture { path, card: info.card, missing });
        }
        let formats = device.formats()?;
        let (w, h) = cfg.capture_size(out_w, out_h);
        let wanted = format!("{} {w}x{h} at {} fps", cfg.format.name(), cfg.fps);
        let not_offered =
            || CameraError::NotOffered { path: path.clone(), wanted: wanted.clone(), offered: offered(&formats) };
        let fmt = formats.iter().find(|f| cfg.format.fourccs().contains(&f.fourcc)).ok_or_else(not_offered)?;
        if !fmt.offers_size(w, h) {
            return Err(not_offered());
        }
        if !device.rates(fmt.fourcc, w, h)?.offers(cfg.fps) {
            return Err(not_offered());
        }
        let applied = device.set_format(fmt.fourcc, w, h)?;
        if (applied.width, applied.height, applied.pixelformat) != (w, h, fmt.fourcc) {
            return Err(CameraError::Refused {
                path,
                wanted: format!("{} {w}x{h}", fourcc_name(fmt.fourcc)),
                applied: format!("{} {}x{}", fourcc_name(applied.pixelformat), applied.width, applied.height),
            });
        }
        let fps = device.set_frame_rate(cfg.fps)?;
        match fps {
            Some(got) if (got - cfg.fps).abs() > 0.01 * cfg.fps => {
                return Err(CameraError::Refused {
                    path,
                    wanted: format!("{} fps", cfg.fps),
                    applied: format!("{got:.2} fps"),
                })
            }
            Some(_) => {}
            None => tracing::warn!(
                camera = name,
                device = %path.display(),
                "the driver cannot set the frame rate; it runs at its own"
            ),
        }
        let geometry = CaptureGeometry {
            format: cfg.format,
            width: w,
            height: h,
            bytes_per_line: applied.bytesperline,
            max_bytes: applied.sizeimage as usize,
        };
        let stream = device.stream(cfg.buffers)?;
        let facts = CameraFacts {
            name: name.to_string(),
            device: path.display().to_string(),
            card: info.card,
            driver: info.driver,
            bus_info: info.bus_info,
            capture: format!("{} {w}x{h}", cfg.format.name()),
            fps,
            output: format!("{out_w}x{out_h} rgb8"),
            buffers: cfg.buffers,
        };
        Ok(Camera {
            name: name.to_string(),
            stream,
            decoder: Decoder::new(geometry, out_w, out_h),
            facts,
            stall: cfg.stall(),
        })
    }

    /// What the camera turned out to be.
    pub fn facts(&self) -> &CameraFacts {
        &self.facts
    }

    /// Starts the capture thread, which publishes into `slot` stamped on
    /// `clock` (the loop's).
    pub fn spawn(self, slot: SlotWriter<Stamped<Frame>>, clock: Arc<dyn Clock>) -> Result<CameraThread, CameraError> {
        let facts = self.facts;
        spawn_capture(self.name, self.stream, self.decoder, slot, clock, self.stall, facts)
    }
}

/// What a capture thread shares with its owner.
#[derive(Debug, Default)]
struct Shared {
    stop: AtomicBool,
    running: AtomicBool,
    stalls: AtomicU64,
    decode_ns_total: AtomicU64,
    decode_ns_max: AtomicU64,
    /// Why the thread ended early (an error or a panic), for the report.
    ended: Mutex<Option<String>>,
}

/// A camera's part of the run report.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CameraReport {
    /// What the camera was.
    pub facts: CameraFacts,
    /// Frames decoded and published to the loop.
    pub frames: u64,
    /// Frames the driver dropped (gaps in its sequence numbers) or flagged
    /// as corrupted.
    pub dropped: u64,
    /// Frames that did not decode.
    pub decode_errors: u64,
    /// Stretches of `stall_ms` or more without a frame.
    pub stalls: u64,
    /// Mean decode-and-resize time per published frame, ms.
    pub decode_ms_mean: f64,
    /// Longest decode-and-resize, ms.
    pub decode_ms_max: f64,
    /// Why the thread ended before it was stopped (the device's error, or
    /// a panic); `None` when it ran until stopped.
    pub ended: Option<String>,
}

/// A running capture thread. Dropping it stops the thread.
pub struct CameraThread {
    shared: Arc<Shared>,
    counters: Arc<TopicCounters>,
    facts: CameraFacts,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for CameraThread {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CameraThread").field("facts", &self.facts).finish()
    }
}

impl CameraThread {
    /// Frames published (`received`), dropped by the driver (`dropped`),
    /// failed to decode (`decode_errors`).
    pub fn counters(&self) -> Arc<TopicCounters> {
        self.counters.clone()
    }

    /// What the camera is.
    pub fn facts(&self) -> &CameraFacts {
        &self.facts
    }

    /// Whether the thread still captures (false once a read error or a
    /// panic ended it).
    pub fn is_running(&self) -> bool {
        self.shared.running.load(Ordering::Acquire)
    }

    /// Stops the thread (it stops streaming and unmaps its buffers) and reports.
    pub fn stop(mut self) -> CameraReport {
        self.halt();
        self.report()
    }

    fn halt(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            // The body catches its own panics; a join error cannot carry one.
            let _ = t.join();
        }
    }

    fn report(&self) -> CameraReport {
        let c = self.counters.snapshot();
        let ns_total = self.shared.decode_ns_total.load(Ordering::Relaxed);
        CameraReport {
            facts: self.facts.clone(),
            frames: c.received,
            dropped: c.dropped,
            decode_errors: c.decode_errors,
            stalls: self.shared.stalls.load(Ordering::Relaxed),
            decode_ms_mean: if c.received == 0 { 0.0 } else { ns_total as f64 / c.received as f64 / 1e6 },
            decode_ms_max: self.shared.decode_ns_max.load(Ordering::Relaxed) as f64 / 1e6,
            ended: self.shared.ended.lock().ok().and_then(|e| e.clone()),
        }
    }
}

impl Drop for CameraThread {
    fn drop(&mut self) {
        self.halt();
    }
}

/// How long one wait for a frame lasts before the stop flag is looked at.
const POLL: Duration = Duration::from_millis(50);

/// Starts a capture thread named after the camera that takes frames from
/// `source`, decodes them with `decoder` and publishes them into `slot`.
/// [`Camera::spawn`] is this with the device's stream; tests pass a
/// scripted source.
pub fn spawn_capture<S: FrameSource + 'static>(
    name: String,
    source: S,
    decoder: Decoder,
    slot: SlotWriter<Stamped<Frame>>,
    clock: Arc<dyn Clock>,
    stall: Duration,
    facts: CameraFacts,
) -> Result<CameraThread, CameraError> {
    let shared = Arc::new(Shared::default());
    shared.running.store(true, Ordering::Release);
    let counters = Arc::new(TopicCounters::default());
    let path = source.path().to_path_buf();
    let mut worker = Worker {
        name: name.clone(),
        path: path.clone(),
        source,
        decoder,
        slot,
        clock,
        stall,
        shared: shared.clone(),
        counters: counters.clone(),
        last_sequence: None,
        wraps: 0,
    };
    let body_shared = shared.clone();
    let thread = std::thread::Builder::new()
        .name(format!("camera-{name}"))
        .spawn(move || {
            // A panic anywhere in capture or decoding ends this thread
            // only: the slot stops updating and the loop falls back on
            // `stale_camera`.
            let outcome = catch_unwind(AssertUnwindSafe(|| worker.run()));
            let ended = match outcome {
                Ok(Ok(())) => None,
                Ok(Err(e)) => {
                    tracing::error!(camera = %name, error = %e, "camera capture ended; the loop reports stale_camera");
                    Some(e.to_string())
                }
                Err(panic) => {
                    let what = panic
                        .downcast_ref::<&str>()
                        .map(|s| s.to_string())
                        .or_else(|| panic.downcast_ref::<String>().cloned())
                        .unwrap_or_else(|| "a panic".into());
                    let msg = format!("the capture thread of the camera {} panicked: {what}", path.display());
                    tracing::error!(camera = %name, "{msg}; the loop reports stale_camera");
                    Some(msg)
                }
            };
            if let Ok(mut e) = body_shared.ended.lock() {
                *e = ended;
            }
            body_shared.running.store(false, Ordering::Release);
        })
        .map_err(|source| CameraError::Thread { path: facts.device.clone().into(), source })?;
    Ok(CameraThread { shared, counters, facts, thread: Some(thread) })
}

/// The capture thread's state.
struct Worker<S: FrameSource> {
    name: String,
    path: PathBuf,
    source: S,
    decoder: Decoder,
    slot: SlotWriter<Stamped<Frame>>,
    clock: Arc<dyn Clock>,
    stall: Duration,
    shared: Arc<Shared>,
    counters: Arc<TopicCounters>,
    last_sequence: Option<u32>,
    wraps: u64,
}

impl<S: FrameSource> Worker<S> {
    fn run(&mut self) -> Result<(), CameraError> {
        let mut last_frame = Instant::now();
        let mut stalled = false;
        let mut decode_errors_logged = 0u32;
        while !self.shared.stop.load(Ordering::Acquire) {
            let Worker { source, decoder, slot, clock, counters, shared, .. } = self;
            let mut published = false;
            let mut failure = None;
            let mut sequence = None;
            let got = source.next_frame(POLL, &mut |raw| {
                sequence = Some(raw.sequence);
                if raw.corrupted {
                    counters.dropped.fetch_add(1, Ordering::Relaxed);
                    return;
                }
                let received = clock.now();
                // The kernel's stamp is on CLOCK_MONOTONIC: carry its age
                // over to the loop's clock (exact for the deployed loop,
                // which runs on CLOCK_MONOTONIC itself).
                let capture = match raw.monotonic_ns {
                    Some(ts) => {
                        let age = MonotonicClock.now().as_nanos().saturating_sub(ts);
                        ganglion_core::Stamp::from_nanos(received.as_nanos().saturating_sub(age))
                    }
                    None => received,
                };
                let t0 = Instant::now();
                let buf = slot.buffer_mut();
                match decoder.decode(raw.data, &mut buf.value) {
                    Ok(()) => {
                        let ns = t0.elapsed().as_nanos() as u64;
                        shared.decode_ns_total.fetch_add(ns, Ordering::Relaxed);
                        shared.decode_ns_max.fetch_max(ns, Ordering::Relaxed);
                        buf.capture = capture;
                        buf.receive = received;
                        published = true;
                    }
                    Err(e) => {
                        counters.decode_errors.fetch_add(1, Ordering::Relaxed);
                        failure = Some(e);
                    }
                }
            })?;
            if let Some(s) = sequence {
                let seq = self.extend_sequence(s);
                if published {
                    let b = self.slot.buffer_mut();
                    b.seq = seq;
                    self.slot.publish();
                    self.counters.received.fetch_add(1, Ordering::Relaxed);
                }
            }
            if let Some(e) = failure {
                // The first few, then every 100th: a camera sending garbage
                // must not flood the log.
                let n = self.counters.decode_errors.load(Ordering::Relaxed);
                if decode_errors_logged < 5 || n % 100 == 0 {
                    decode_errors_logged += 1;
                    tracing::warn!(camera = %self.name, device = %self.path.display(), error = %e, count = n,
                        "a camera frame did not decode; skipped");
                }
            }
            if got {
                if stalled {
                    tracing::info!(camera = %self.name, device = %self.path.display(), "camera delivers frames again");
                }
                last_frame = Instant::now();
                stalled = false;
            } else if !stalled && last_frame.elapsed() >= self.stall {
                stalled = true;
                self.shared.stalls.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    camera = %self.name,
                    device = %self.path.display(),
                    "no frame for {} ms; the loop reports stale_camera past camera_max_age_ms",
                    self.stall.as_millis()
                );
            }
        }
        Ok(())
    }

    /// The driver's 32-bit sequence as the slot's 64-bit one (from 1),
    /// counting the frames it skipped as dropped.
    fn extend_sequence(&mut self, s: u32) -> u64 {
        if let Some(last) = self.last_sequence {
            if s < last {
                self.wraps += 1;
            }
            let gap = s.wrapping_sub(last).wrapping_sub(1);
            // A driver restarting its count is not billions of drops.
            if gap > 0 && gap < 1 << 20 {
                self.counters.dropped.fetch_add(u64::from(gap), Ordering::Relaxed);
            }
        }
        self.last_sequence = Some(s);
        (self.wraps << 32 | u64::from(s)) + 1
    }
}
