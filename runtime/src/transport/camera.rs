//! `[[transport.cameras]]`: USB (V4L2) cameras read in-process, beside the
//! serial servo bus (`kind = "servo"`): joints from the bus, frames from
//! the cameras, nothing else to run.
//!
//! Each entry names a `robot.cameras` camera (which gives the frame
//! geometry the loop and the policy expect) and the device that feeds it.
//! At start, before the servo bus is armed, every camera is opened and its
//! format, capture size and frame rate negotiated; a camera that is
//! missing, is not a capture device or does not offer what the profile
//! asks fails the start, naming the device, what was asked and what it
//! offers. Each camera then runs on a thread of its own
//! (`ganglion_camera`: decode and resize there, never on the control
//! thread) that writes the camera's frame slot; the loop's staleness checks
//! (`stale_camera`, `frozen_camera`, `blank_camera`) judge what arrives.
//! Why in-process and not a separate driver process:
//! drivers/camera/README.md.

use std::sync::Arc;

use ganglion_camera::{Camera, CameraError, CameraReport, CameraThread};
use ganglion_codec::TopicCounters;
use ganglion_core::{CameraSpec, CameraWriter, Clock, PixelFormat};

pub use ganglion_camera::CameraConfig as CameraSection;

use super::TransportKind;

/// A problem of `[[transport.cameras]]` alone (what `ganglion check` can
/// see without `[robot]`): `(key, expected)`.
pub fn section_problem(cameras: &[CameraSection], kind: TransportKind) -> Option<(String, String)> {
    if !cameras.is_empty() && kind != TransportKind::Servo {
        return Some((
            "transport.cameras".into(),
            "no [[transport.cameras]] unless transport.kind = \"servo\" (with zenoh or ros2 the frames arrive over \
             the wire)"
                .into(),
        ));
    }
    for (i, c) in cameras.iter().enumerate() {
        if let Some((key, expected)) = c.problem() {
            return Some((format!("transport.cameras[{i}].{key}"), expected));
        }
        if cameras[..i].iter().any(|o| o.name == c.name) {
            return Some((
                format!("transport.cameras[{i}].name"),
                format!("one entry per camera (`{}` twice)", c.name),
            ));
        }
        if cameras[..i].iter().any(|o| o.device == c.device) {
            return Some((
                format!("transport.cameras[{i}].device"),
                format!("one camera per device ({} twice)", c.device.display()),
            ));
        }
    }
    None
}

/// The cameras against the robot's (`Profile::load`): with the servo bus,
/// every `robot.cameras` entry is fed by a `[[transport.cameras]]` entry of
/// the same name (else its slot stays empty: `stale_camera` forever), and
/// in `rgb8` (what the decoder produces). `(key, expected)`.
pub fn robot_problem(cameras: &[CameraSection], kind: TransportKind, robot: &[CameraSpec]) -> Option<(String, String)> {
    if kind != TransportKind::Servo {
        return None;
    }
    for (i, c) in cameras.iter().enumerate() {
        if !robot.iter().any(|r| r.name == c.name) {
            let names: Vec<&str> = robot.iter().map(|r| r.name.as_str()).collect();
            return Some((
                format!("transport.cameras[{i}].name"),
                format!("the name of a robot.cameras entry ({names:?}), not `{}`", c.name),
            ));
        }
    }
    for (i, r) in robot.iter().enumerate() {
        if !cameras.iter().any(|c| c.name == r.name) {
            return Some((
                format!("robot.cameras[{i}].name"),
                format!(
                    "a [[transport.cameras]] entry named `{}` (its device, format, fps) with transport.kind = \"servo\": \
                     nothing else feeds a camera, and a camera nothing feeds keeps the loop in fallback (stale_camera)",
                    r.name
                ),
            ));
        }
        if r.format != PixelFormat::Rgb8 {
            return Some((
                format!("robot.cameras[{i}].format"),
                "\"rgb8\" for a V4L2 camera (its frames are decoded to RGB8)".into(),
            ));
        }
    }
    None
}

/// A camera that could not be started.
#[derive(Debug, thiserror::Error)]
#[error("transport.cameras: camera `{name}`: {source}")]
pub struct CameraStartError {
    /// The camera's name.
    pub name: String,
    /// The driver's error (names the device and what was expected).
    pub source: CameraError,
}

/// The running cameras (none for zenoh and ROS 2). Dropping them stops
/// their threads.
#[derive(Debug, Default)]
pub struct Cameras {
    threads: Vec<CameraThread>,
}

impl Cameras {
    /// Opens every camera of `sections` (all before any thread starts, so
    /// a bad one fails the start with nothing running), then starts one
    /// capture thread per camera writing its slot in `writers`. Returns
    /// the writers no section claimed. `geometry` is each robot camera's
    /// `(name, width, height)`.
    pub fn start(
        sections: &[CameraSection],
        geometry: &[(String, u32, u32)],
        writers: Vec<CameraWriter>,
        clock: Arc<dyn Clock>,
    ) -> Result<(Cameras, Vec<CameraWriter>), CameraStartError> {
        let mut opened = Vec::with_capacity(sections.len());
        for s in sections {
            let (_, w, h) = geometry.iter().find(|g| g.0 == s.name).cloned().unwrap_or((String::new(), 0, 0));
            let cam = Camera::open(s, w, h).map_err(|source| CameraStartError { name: s.name.clone(), source })?;
            let f = cam.facts();
            tracing::info!(
                camera = %f.name,
                device = %f.device,
                card = %f.card,
                capture = %f.capture,
                fps = ?f.fps,
                output = %f.output,
                "camera opened"
            );
            opened.push(cam);
        }
        let mut rest = Vec::new();
        let mut slots = Vec::new();
        for w in writers {
            if sections.iter().any(|s| s.name == w.name) {
                slots.push(w);
            } else {
                rest.push(w);
            }
        }
        let mut threads = Vec::with_capacity(opened.len());
        for cam in opened {
            let name = cam.facts().name.clone();
            let Some(i) = slots.iter().position(|w| w.name == name) else { continue };
            let slot = slots.swap_remove(i).slot;
            threads.push(cam.spawn(slot, clock.clone()).map_err(|source| CameraStartError { name, source })?);
        }
        Ok((Cameras { threads }, rest))
    }

    /// Per camera: `camera/<name>` and its counters (frames published,
    /// dropped by the driver, failed to decode).
    pub fn inputs(&self) -> Vec<(String, Arc<TopicCounters>)> {
        self.threads.iter().map(|t| (format!("camera/{}", t.facts().name), t.counters())).collect()
    }

    /// Stops every capture thread and reports each camera.
    pub fn stop(self) -> Vec<CameraReport> {
        self.threads.into_iter().map(CameraThread::stop).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(name: &str, format: PixelFormat) -> CameraSpec {
        CameraSpec { name: name.into(), width: 224, height: 224, format }
    }

    fn cam(name: &str, device: &str) -> CameraSection {
        CameraSection { name: name.into(), device: device.into(), ..CameraSection::default() }
    }

    #[test]
    fn problems_name_the_key() {
        let servo = TransportKind::Servo;
        let two = [cam("front", "/dev/video0"), cam("wrist", "/dev/video2")];
        let robot = [spec("front", PixelFormat::Rgb8), spec("wrist", PixelFormat::Rgb8)];
        assert_eq!(section_problem(&two, servo), None);
        assert_eq!(robot_problem(&two, servo, &robot), None);
        let key = |p: Option<(String, String)>| p.map(|p| p.0);
        assert_eq!(key(section_problem(&two, TransportKind::Zenoh)), Some("transport.cameras".into()));
        let dup = [cam("front", "/dev/video0"), cam("front", "/dev/video2")];
        assert_eq!(key(section_problem(&dup, servo)), Some("transport.cameras[1].name".into()));
        let same_dev = [cam("front", "/dev/video0"), cam("wrist", "/dev/video0")];
        assert_eq!(key(section_problem(&same_dev, servo)), Some("transport.cameras[1].device".into()));
        assert_eq!(key(section_problem(&[cam("front", "")], servo)), Some("transport.cameras[0].device".into()));
        assert_eq!(key(robot_problem(&two[..1], servo, &robot)), Some("robot.cameras[1].name".into()));
        let other = [cam("front", "/dev/video0"), cam("side", "/dev/video2")];
        assert_eq!(key(robot_problem(&other, servo, &robot)), Some("transport.cameras[1].name".into()));
        let bgr = [spec("front", PixelFormat::Rgb8), spec("wrist", PixelFormat::Bgr8)];
        assert_eq!(key(robot_problem(&two, servo, &bgr)), Some("robot.cameras[1].format".into()));
    }

    /// A YUYV source that delivers `frames` noisy frames, then fails as an
    /// unplugged camera does (ENODEV).
    struct Unplugged {
        path: std::path::PathBuf,
        frames: u32,
        sent: u32,
    }

    impl ganglion_camera::FrameSource for Unplugged {
        fn path(&self) -> &std::path::Path {
            &self.path
        }

        fn next_frame(
            &mut self,
            _timeout: std::time::Duration,
            f: &mut dyn FnMut(ganglion_camera::RawFrame<'_>),
        ) -> Result<bool, CameraError> {
            if self.sent == self.frames {
                return Err(CameraError::Io {
                    path: self.path.clone(),
                    what: "VIDIOC_DQBUF",
                    source: std::io::Error::from_raw_os_error(libc::ENODEV),
                });
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
            // Content that is neither blank nor repeated.
            let data: Vec<u8> = (0..8 * 8 * 2).map(|i| (i as u32 * 37 + self.sent * 11) as u8).collect();
            let now = ganglion_core::Clock::now(&ganglion_core::MonotonicClock).as_nanos();
            f(ganglion_camera::RawFrame {
                data: &data,
                sequence: self.sent,
                monotonic_ns: Some(now),
                corrupted: false,
            });
            self.sent += 1;
            Ok(true)
        }
    }

    /// The camera thread feeds the slot the loop samples: frames arrive
    /// fresh, and once the device fails the loop's own check raises
    /// `stale_camera` (and the thread's report names the device).
    #[test]
    fn an_unplugged_camera_becomes_stale_camera() {
        use crate::control::input::Sampler;
        use crate::control::StalenessConfig;
        use ganglion_camera::{CaptureFormat, CaptureGeometry, Decoder};
        use ganglion_core::{ActionKind, Cause, Clock, MonotonicClock, PolicySpec};

        let clock = MonotonicClock;
        let (mut writers, readers) = ganglion_core::input_slots(1, &[("front".into(), 8, 8)]);
        let spec = PolicySpec {
            name: "t".into(),
            n_joints: 1,
            chunk_len: 1,
            step_ns: 10_000_000,
            action_kind: ActionKind::AbsolutePosition,
            cameras: vec![CameraSpec { name: "front".into(), width: 8, height: 8, format: PixelFormat::Rgb8 }],
            expected_latency_ns: 0,
            surprise_threshold: None,
            history: 1,
            rolls_at_reply: false,
        };
        let cfg = StalenessConfig { camera_max_age_ms: 50.0, ..StalenessConfig::default() };
        let mut sampler = Sampler::new(readers, &spec, &cfg).expect("sampler");
        let geometry =
            CaptureGeometry { format: CaptureFormat::Yuyv, width: 8, height: 8, bytes_per_line: 16, max_bytes: 128 };
        let path = "/dev/v4l/by-id/usb-test-video-index0";
        let source = Unplugged { path: path.into(), frames: 20, sent: 0 };
        let facts = ganglion_camera::CameraFacts {
            name: "front".into(),
            device: path.into(),
            card: "test".into(),
            driver: "test".into(),
            bus_info: String::new(),
            capture: "YUYV 8x8".into(),
            fps: None,
            output: "8x8 rgb8".into(),
            buffers: 4,
        };
        let slot = writers.cameras.remove(0).slot;
        let stall = std::time::Duration::from_secs(1);
        let t = ganglion_camera::spawn_capture(
            "front".into(),
            source,
            Decoder::new(geometry, 8, 8),
            slot,
            Arc::new(clock),
            stall,
            facts,
        )
        .expect("spawn");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        let mut fresh = false;
        while t.is_running() && std::time::Instant::now() < deadline {
            let r = sampler.sample(clock.now());
            fresh |= r.new_frames & 1 == 1 && !r.causes.contains(Cause::StaleCamera);
            std::thread::sleep(std::time::Duration::from_millis(2));
        }
        assert!(fresh, "frames reached the loop fresh while the camera ran");
        assert!(!t.is_running(), "the thread ended on the device error");
        std::thread::sleep(std::time::Duration::from_millis(60));
        let r = sampler.sample(clock.now());
        assert!(r.causes.contains(Cause::StaleCamera), "{:?}", r.causes);
        let report = t.stop();
        assert_eq!(report.frames, 20);
        assert!(report.ended.is_some_and(|e| e.contains(path) && e.contains("VIDIOC_DQBUF")));
    }

    #[test]
    fn a_missing_camera_fails_the_start_naming_it() {
        let (writers, _readers) = ganglion_core::input_slots(1, &[("front".into(), 64, 64)]);
        let sections = [cam("front", "/dev/v4l/by-id/usb-none-video-index0")];
        let started = Cameras::start(
            &sections,
            &[("front".into(), 64, 64)],
            writers.cameras,
            Arc::new(ganglion_core::MonotonicClock),
        );
        let Err(e) = started else { panic!("no such camera, yet it started") };
        let msg = e.to_string();
        assert!(msg.contains("front") && msg.contains("/dev/v4l/by-id/usb-none-video-index0"), "{msg}");
    }
}
