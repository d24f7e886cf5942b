//! Recordings of real runs as a LeRobotDataset v3 (`ganglion replay export
//! --format lerobot`): data from the robot flows back into training.
//!
//! One episode per recording file, one dataset frame per recorded tick:
//!
//! | feature | from the recording |
//! |---|---|
//! | `observation.state` | positions of the newest joint state the tick sampled |
//! | `observation.images.<camera>` | the newest frame of each camera the tick sampled, as RGB8 |
//! | `action` | the command the tick sent (after the shield) |
//! | `ganglion.policy` | 1 when the policy's action drove the tick (`nominal`, `degraded`), else 0 |
//! | `ganglion.mode` | the tick's mode code (`startup` 0 … `safe_stop` 4, docs/RECORDING.md) |
//! | `ganglion.causes` | the tick's active causes as a bit mask (bit = cause code) |
//! | task | the instruction the tick saw, else `--task` |
//!
//! `action` is what the robot was told, whoever decided it: a training
//! script that wants only the policy's own behaviour filters on
//! `ganglion.policy == 1`; one that learns recoveries keeps the fallback's
//! ticks. Ticks before every input (the joint state and each camera) has
//! arrived once are not exported (there is no observation to pair with the
//! command). The frame rate is the loop's: the recorded ticks' scheduled
//! period, which must be a whole number of hertz (LeRobot stores `fps` as
//! an integer) and the same in every file.

use std::path::Path;

use ganglion_core::{Frame, Mode, Stamp};
use ganglion_sim::lerobot::{Camera, Dataset, IntFeature};

use super::read::{InputSample, Recording};

/// Why recordings could not be exported.
#[derive(Debug, thiserror::Error)]
pub enum ExportError {
    /// The recordings disagree with each other or with LeRobot's format.
    #[error("{file}: {message}")]
    Unfit {
        /// The recording.
        file: String,
        /// What is wrong.
        message: String,
    },
}

fn unfit(file: &str, message: impl Into<String>) -> ExportError {
    ExportError::Unfit { file: file.to_owned(), message: message.into() }
}

/// Settings of an export.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ExportOptions {
    /// Task text of ticks that saw no instruction.
    pub task: String,
    /// `robot_type` in `info.json` (default: the file stem of the
    /// recording's profile, else `ganglion`).
    pub robot_type: Option<String>,
}

/// The newest sample of each input a tick has seen so far.
struct Newest<'a> {
    joints: Option<&'a [f64]>,
    frames: Vec<Option<&'a Frame>>,
    instruction: Option<&'a str>,
}

/// The recordings `(file name, recording)` as one dataset, in order.
pub fn dataset(recordings: &[(String, Recording)], opts: &ExportOptions) -> Result<Dataset, ExportError> {
    let Some((first_file, first)) = recordings.first() else {
        return Err(unfit("(none)", "no recording to export"));
    };
    let joint_names = first.joint_names.clone();
    if joint_names.is_empty() {
        return Err(unfit(first_file, "no `joint_names` in the metadata; not a ganglion recording"));
    }
    let robot_type = opts
        .robot_type
        .clone()
        .or_else(|| {
            let profile = first.info.get("profile")?;
            Some(Path::new(profile).file_stem()?.to_string_lossy().into_owned()).filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| "ganglion".into());
    let mut ds = Dataset {
        robot_type,
        joint_names,
        extra: ["ganglion.policy", "ganglion.mode", "ganglion.causes"]
            .into_iter()
            .map(|key| IntFeature { key: key.into(), values: Vec::new() })
            .collect(),
        ..Dataset::default()
    };
    let mut sizes: Vec<(u32, u32)> = Vec::new();
    for (episode, (file, rec)) in recordings.iter().enumerate() {
        check_same_robot(file, rec, first, &ds.joint_names)?;
        let fps = loop_rate(file, rec)?;
        if ds.fps != 0 && ds.fps != fps {
            return Err(unfit(file, format!("loop rate {fps} Hz, but {first_file} ran at {} Hz", ds.fps)));
        }
        ds.fps = fps;
        let frames_before = ds.episode.len();
        export_episode(file, rec, episode as i64, opts, &mut ds, &mut sizes)?;
        if ds.episode.len() == frames_before {
            return Err(unfit(file, "no tick after every input (joint state and each camera) had arrived"));
        }
    }
    Ok(ds)
}

fn check_same_robot(file: &str, rec: &Recording, first: &Recording, joints: &[String]) -> Result<(), ExportError> {
    if rec.joint_names != joints {
        return Err(unfit(file, format!("joints {:?}, but the first recording has {joints:?}", rec.joint_names)));
    }
    if rec.cameras != first.cameras {
        return Err(unfit(file, format!("cameras {:?}, but the first recording has {:?}", rec.cameras, first.cameras)));
    }
    Ok(())
}

/// The loop rate in whole hertz, from the median scheduled tick period.
fn loop_rate(file: &str, rec: &Recording) -> Result<u32, ExportError> {
    let mut periods: Vec<u64> =
        rec.ticks.windows(2).map(|w| w[1].scheduled.0.saturating_sub(w[0].scheduled.0)).filter(|&p| p > 0).collect();
    if periods.is_empty() {
        return Err(unfit(file, "fewer than two ticks recorded"));
    }
    periods.sort_unstable();
    let period = periods[periods.len() / 2] as f64;
    let hz = 1e9 / period;
    let whole = hz.round();
    if (hz - whole).abs() > 1e-3 * whole || whole < 1.0 || whole > f64::from(u32::MAX) {
        return Err(unfit(file, format!("loop rate {hz:.4} Hz; LeRobot needs a whole number of frames per second")));
    }
    Ok(whole as u32)
}

fn export_episode(
    file: &str,
    rec: &Recording,
    episode: i64,
    opts: &ExportOptions,
    ds: &mut Dataset,
    sizes: &mut Vec<(u32, u32)>,
) -> Result<(), ExportError> {
    let n = ds.joint_names.len();
    let mut newest = Newest { joints: None, frames: vec![None; rec.cameras.len()], instruction: None };
    let mut inputs = rec.inputs.iter().peekable();
    for tick in &rec.ticks {
        while let Some(input) = inputs.next_if(|i| i.tick <= tick.scheduled) {
            match &input.sample {
                InputSample::Joints(s) => newest.joints = Some(&s.value.position[..]),
                InputSample::Frame(cam, s) => {
                    if let Some(slot) = newest.frames.get_mut(*cam) {
                        *slot = Some(&s.value);
                    }
                }
                InputSample::Instruction(s) => newest.instruction = Some(s.value.text.as_str()),
                InputSample::Heartbeat(_) => {}
            }
        }
        let Some(joints) = newest.joints else { continue };
        if newest.frames.iter().any(Option::is_none) {
            continue;
        }
        if joints.len() != n || tick.position.len() != n {
            return Err(unfit(file, format!("tick {}: {} joint values, expected {n}", tick.seq, joints.len())));
        }
        ds.state.extend(joints.iter().map(|&v| v as f32));
        ds.action.extend(tick.position.iter().map(|&v| v as f32));
        for (cam, frame) in newest.frames.iter().flatten().enumerate() {
            push_frame(file, &rec.cameras[cam], tick.scheduled, frame, cam, ds, sizes)?;
        }
        ds.episode.push(episode);
        ds.task.push(newest.instruction.filter(|t| !t.is_empty()).unwrap_or(&opts.task).to_owned());
        let policy = matches!(tick.mode, Mode::Nominal | Mode::Degraded);
        let values = [i64::from(policy), tick.mode as i64, i64::from(tick.causes.0)];
        for (feature, v) in ds.extra.iter_mut().zip(values) {
            feature.values.push(v);
        }
    }
    Ok(())
}

/// Appends `frame` as RGB8 to camera `cam` of `ds`; every frame of a camera
/// must have the size of its first one (LeRobot's `image` shape is fixed).
fn push_frame(
    file: &str,
    name: &str,
    at: Stamp,
    frame: &Frame,
    cam: usize,
    ds: &mut Dataset,
    sizes: &mut Vec<(u32, u32)>,
) -> Result<(), ExportError> {
    let (w, h) = (frame.width, frame.height);
    if cam == ds.cameras.len() {
        ds.cameras.push(Camera {
            key: format!("observation.images.{name}"),
            width: w as usize,
            height: h as usize,
            rgb: Vec::new(),
        });
        sizes.push((w, h));
    }
    if sizes[cam] != (w, h) {
        return Err(unfit(
            file,
            format!("camera `{name}` at {}: {w}×{h}, but its first frame was {}×{}", at.0, sizes[cam].0, sizes[cam].1),
        ));
    }
    let rgb = &mut ds.cameras[cam].rgb;
    let start = rgb.len();
    rgb.resize(start + w as usize * h as usize * 3, 0);
    let mut same_size = ganglion_core::image::Resampler::new(w as usize, h as usize);
    if !same_size.resize_to_rgb8(frame.data(), w, h, frame.format, &mut rgb[start..]) {
        return Err(unfit(file, format!("camera `{name}` at {}: the frame's bytes do not match {w}×{h}", at.0)));
    }
    Ok(())
}

/// Reads the recordings at `paths` and writes them as one LeRobotDataset
/// at `out` (which must not exist; nothing is left behind on failure).
pub fn export_lerobot(
    paths: &[impl AsRef<Path>],
    out: &Path,
    opts: &ExportOptions,
) -> anyhow::Result<ganglion_sim::lerobot::Written> {
    if out.exists() {
        anyhow::bail!("{}: exists; LeRobot datasets are written into a new directory", out.display());
    }
    let mut recordings = Vec::with_capacity(paths.len());
    for p in paths {
        let p = p.as_ref();
        recordings.push((p.display().to_string(), Recording::open(p)?));
    }
    let ds = dataset(&recordings, opts)?;
    Ok(ganglion_sim::lerobot::write(out, &ds)?)
}
