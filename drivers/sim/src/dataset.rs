//! `ganglion sim record`: expert demonstrations on the simulated arm as an
//! `.npz` dataset (format documented in `drivers/sim/README.md`).
//!
//! Each episode resets the arm (scene, instruction and initial pose from
//! `(seed, episode)`), plans the scripted expert's minimum-jerk reach and
//! executes it at the control rate. At every policy step the camera frame,
//! the joint state and the expert's next `chunk` absolute joint targets are
//! recorded. On a share of episodes (DART) the *executed* targets carry
//! seeded, temporally correlated noise so the arm leaves the expert's path;
//! the recorded labels stay the clean expert targets, which teaches a policy
//! to steer back.

use std::fs::File;
use std::io::BufWriter;
use std::path::PathBuf;

use ganglion_core::{hold_command, ActionChunk, Frame, Mode, Stamp};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

use crate::config::SimConfig;
use crate::expert::{ExpertError, ScriptedExpert};
use crate::npy::{NpyError, NpzWriter};
use crate::plant::{gaussian, SimArm};
use crate::scene::TargetColor;
use crate::SimError;

/// Stream of the DART draws, apart from the scene and fault streams.
const DART_STREAM: u64 = 1 << 62;
/// Per-policy-step correlation of the DART noise (an AR(1) process).
const DART_CORRELATION: f64 = 0.7;

/// The on-disk format of a recording.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RecordFormat {
    /// One `.npz` file (the arrays in `drivers/sim/README.md`).
    #[default]
    Npz,
    /// A LeRobotDataset v3 directory (`drivers/sim/lerobot/README.md`):
    /// `observation.state` = joint positions, `action` = the chunk's first
    /// action, `observation.images.front` = the camera as PNG, the
    /// instruction as the task.
    LeRobot,
}

/// What to record.
#[derive(Debug, Clone, PartialEq)]
pub struct RecordOptions {
    /// The output format (`out` is a file for npz, a new directory for LeRobot).
    pub format: RecordFormat,
    /// Number of episodes (≥ 1).
    pub episodes: usize,
    /// Output `.npz` file.
    pub out: PathBuf,
    /// Seed of the scenes, poses and noise.
    pub seed: u64,
    /// Share of episodes with DART noise on the executed commands, 0..=1.
    pub dart_fraction: f64,
    /// Stationary standard deviation of the DART noise (rad).
    pub dart_std_rad: f64,
    /// Policy rate: frames, states and chunks are recorded at it (Hz).
    pub rate_hz: f64,
    /// Actions per recorded chunk.
    pub chunk: usize,
    /// Length of each episode (s).
    pub episode_s: f64,
    /// Rate at which commands are applied to the arm (Hz); a multiple of
    /// `rate_hz`.
    pub control_hz: f64,
    /// The simulated arm.
    pub sim: SimConfig,
}

impl Default for RecordOptions {
    fn default() -> Self {
        RecordOptions {
            format: RecordFormat::Npz,
            episodes: 100,
            out: PathBuf::from("reach.npz"),
            seed: 0,
            dart_fraction: 0.5,
            dart_std_rad: 0.05,
            rate_hz: 10.0,
            chunk: 8,
            episode_s: 3.0,
            control_hz: 100.0,
            sim: SimConfig::default(),
        }
    }
}

/// What was recorded.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Summary {
    /// The output file.
    pub out: PathBuf,
    /// Episodes recorded.
    pub episodes: usize,
    /// Episodes with DART noise.
    pub dart_episodes: usize,
    /// Frames (rows) recorded.
    pub frames: usize,
    /// Episodes whose tip ended within the success radius.
    pub successes: usize,
    /// Of those, episodes without DART noise (the noise is still on at the
    /// end of a DART episode, so its tip ends off target by design).
    pub clean_successes: usize,
    /// Mean final tip error (m).
    pub mean_final_error_m: f64,
    /// Size of the file, or of the LeRobot dataset's files (bytes).
    pub bytes: u64,
}

/// Why recording failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// An option is out of range.
    #[error("option `{key}`: expected {expected}")]
    InvalidOption {
        /// The option.
        key: &'static str,
        /// What was expected.
        expected: &'static str,
    },
    /// The simulator configuration is invalid.
    #[error(transparent)]
    Sim(#[from] SimError),
    /// The expert cannot reach an episode's target (a scene configuration
    /// outside the arm's workspace).
    #[error("episode {episode}: {source}")]
    Expert {
        /// The episode.
        episode: u64,
        /// The expert's reason.
        source: ExpertError,
    },
    /// Creating or writing the file failed.
    #[error("writing {path}: {source}")]
    Write {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: NpyError,
    },
    /// Writing the LeRobot dataset failed (nothing is left behind).
    #[error(transparent)]
    LeRobot(#[from] crate::lerobot::LeRobotError),
}

/// Column buffers of the dataset.
#[derive(Default)]
struct Columns {
    images: Vec<u8>,
    joint_pos: Vec<f32>,
    joint_vel: Vec<f32>,
    actions: Vec<f32>,
    episode: Vec<i32>,
    step: Vec<i32>,
    time_s: Vec<f32>,
    target_index: Vec<i32>,
    instruction: Vec<i32>,
    target_pos: Vec<f32>,
    dart: Vec<u8>,
    rows: usize,
}

fn check(ok: bool, key: &'static str, expected: &'static str) -> Result<(), RecordError> {
    if ok {
        Ok(())
    } else {
        Err(RecordError::InvalidOption { key, expected })
    }
}

/// The instruction vocabulary: `instruction[t]` indexes this list, which is
/// stored newline-joined as the `instructions` array.
pub fn instruction_vocabulary() -> [&'static str; 3] {
    TargetColor::ALL.map(TargetColor::instruction)
}

/// Records `opts.episodes` expert episodes into `opts.out`.
pub fn record(opts: &RecordOptions) -> Result<Summary, RecordError> {
    check(opts.episodes >= 1, "episodes", "at least 1")?;
    check((0.0..=1.0).contains(&opts.dart_fraction), "dart_fraction", "a share between 0 and 1")?;
    check(opts.dart_std_rad.is_finite() && opts.dart_std_rad >= 0.0, "dart_std", "a non-negative number")?;
    check(opts.rate_hz.is_finite() && opts.rate_hz > 0.0 && opts.rate_hz <= 1000.0, "rate_hz", "0 < rate <= 1000")?;
    check((1..=256).contains(&opts.chunk), "chunk", "1..=256 actions")?;
    if opts.format == RecordFormat::LeRobot {
        check(opts.rate_hz.fract() == 0.0, "rate_hz", "a whole number of frames per second for a LeRobot dataset")?;
        if opts.out.exists() {
            return Err(crate::lerobot::LeRobotError::Exists(opts.out.clone()).into());
        }
    }
    check(opts.episode_s.is_finite() && opts.episode_s > 0.0, "episode_s", "a positive duration")?;
    let sub = opts.control_hz / opts.rate_hz;
    check(
        opts.control_hz.is_finite() && sub >= 1.0 && (sub - sub.round()).abs() < 1e-9,
        "control_hz",
        "a whole multiple of rate_hz",
    )?;
    let sub = sub.round() as usize;
    let step_ns = (1e9 / opts.rate_hz).round() as u64;
    let control_ns = step_ns / sub as u64;
    let steps = (opts.episode_s * opts.rate_hz).round().max(1.0) as usize;

    let mut arm = SimArm::new(&opts.sim, opts.seed)?;
    let mut expert = ScriptedExpert::new(&opts.sim).map_err(SimError::from)?;
    let n = opts.sim.arm.dof();
    let mut frame = Frame::with_capacity(opts.sim.camera_width, opts.sim.camera_height);
    let mut chunk = ActionChunk::with_capacity(opts.chunk, n);
    let mut cols = Columns::default();
    let (mut successes, mut clean_successes, mut dart_episodes, mut error_sum) = (0usize, 0usize, 0usize, 0.0);
    let mut noise = vec![0.0; n];

    for ep in 0..opts.episodes as u64 {
        arm.reset_episode(ep);
        let mut rng = ChaCha8Rng::seed_from_u64(opts.seed);
        rng.set_stream(DART_STREAM | ep);
        let dart = rng.random::<f64>() < opts.dart_fraction;
        dart_episodes += usize::from(dart);
        noise.fill(0.0);
        let t0 = arm.time();
        let q0 = arm.joint_state().position;
        expert.plan(&q0, arm.target_position(), t0).map_err(|source| RecordError::Expert { episode: ep, source })?;
        let color = arm.scene().instructed().color;
        for k in 0..steps {
            let t = arm.time();
            record_row(&mut cols, &mut arm, &mut frame, &expert, &mut chunk, t, step_ns)?;
            cols.episode.push(ep as i32);
            cols.step.push(k as i32);
            cols.time_s.push((t.saturating_since(t0) as f64 * 1e-9) as f32);
            cols.target_index.push(color.index() as i32);
            cols.instruction.push(color.index() as i32);
            cols.target_pos.extend(arm.target_position().map(|v| v as f32));
            cols.dart.push(u8::from(dart));
            if dart {
                let innovation = (1.0 - DART_CORRELATION * DART_CORRELATION).sqrt() * opts.dart_std_rad;
                for v in noise.iter_mut() {
                    *v = DART_CORRELATION * *v + innovation * gaussian(&mut rng);
                }
            }
            for _ in 0..sub {
                if let Some((mut q, v)) = expert.sample(arm.time()) {
                    for (qi, ni) in q.iter_mut().zip(&noise) {
                        *qi += ni;
                    }
                    let mut cmd = hold_command(0, arm.time(), Mode::Nominal, q);
                    cmd.velocity = v;
                    arm.apply_command(&cmd);
                }
                arm.step(control_ns);
            }
        }
        let err = arm.tip_error_m();
        error_sum += err;
        successes += usize::from(arm.success());
        clean_successes += usize::from(arm.success() && !dart);
    }
    let frames = cols.rows;
    let bytes = match opts.format {
        RecordFormat::Npz => {
            write(opts, &cols, n)?;
            std::fs::metadata(&opts.out).map(|m| m.len()).unwrap_or(0)
        }
        RecordFormat::LeRobot => write_lerobot(opts, cols, n)?.bytes,
    };
    Ok(Summary {
        out: opts.out.clone(),
        episodes: opts.episodes,
        dart_episodes,
        frames,
        successes,
        clean_successes,
        mean_final_error_m: error_sum / opts.episodes as f64,
        bytes,
    })
}

fn record_row(
    cols: &mut Columns,
    arm: &mut SimArm,
    frame: &mut Frame,
    expert: &ScriptedExpert,
    chunk: &mut ActionChunk,
    t: Stamp,
    step_ns: u64,
) -> Result<(), RecordError> {
    arm.render_into(frame).map_err(|_| RecordError::InvalidOption {
        key: "camera_width",
        expected: "a camera size the frame buffer holds",
    })?;
    cols.images.extend_from_slice(frame.data());
    let js = arm.joint_state();
    cols.joint_pos.extend(js.position.iter().map(|v| *v as f32));
    cols.joint_vel.extend(js.velocity.iter().map(|v| *v as f32));
    expert.chunk_into(t, step_ns, chunk);
    cols.actions.extend(chunk.as_slice().iter().map(|v| *v as f32));
    cols.rows += 1;
    Ok(())
}

/// Names of the simulated arm's joints, as in `launch/sim.toml`
/// (`joint_<i>` for arms of another size).
pub fn joint_names(n: usize) -> Vec<String> {
    if n == 3 {
        ["base_yaw", "shoulder_pitch", "elbow_pitch"].map(String::from).to_vec()
    } else {
        (0..n).map(|i| format!("joint_{i}")).collect()
    }
}

fn write_lerobot(opts: &RecordOptions, c: Columns, n: usize) -> Result<crate::lerobot::Written, RecordError> {
    let vocab = instruction_vocabulary();
    let per_row = opts.chunk * n;
    let action: Vec<f32> = c.actions.chunks_exact(per_row).flat_map(|a| a[..n].iter().copied()).collect();
    let task = c
        .instruction
        .iter()
        .map(|&i| {
            vocab.get(i as usize).map(|s| s.to_string()).ok_or(RecordError::InvalidOption {
                key: "instruction",
                expected: "an index into the instruction vocabulary",
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let ds = crate::lerobot::Dataset {
        fps: opts.rate_hz as u32,
        robot_type: "ganglion_sim_arm".into(),
        joint_names: joint_names(n),
        state: c.joint_pos,
        action,
        cameras: vec![crate::lerobot::Camera {
            key: "observation.images.front".into(),
            width: opts.sim.camera_width as usize,
            height: opts.sim.camera_height as usize,
            rgb: c.images,
        }],
        episode: c.episode.iter().map(|&e| i64::from(e)).collect(),
        task,
        extra: Vec::new(),
    };
    Ok(crate::lerobot::write(&opts.out, &ds)?)
}

fn write(opts: &RecordOptions, c: &Columns, n: usize) -> Result<(), RecordError> {
    let wrap = |source: NpyError| RecordError::Write { path: opts.out.clone(), source };
    if let Some(dir) = opts.out.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| wrap(e.into()))?;
    }
    let file = File::create(&opts.out).map_err(|e| wrap(e.into()))?;
    let mut z = NpzWriter::new(BufWriter::new(file));
    let t = c.rows;
    let (w, h) = (opts.sim.camera_width as usize, opts.sim.camera_height as usize);
    let vocab = instruction_vocabulary().join("\n");
    let written = (|| {
        z.add("images", &[t, h, w, 3], &c.images)?;
        z.add("joint_pos", &[t, n], &c.joint_pos)?;
        z.add("joint_vel", &[t, n], &c.joint_vel)?;
        z.add("actions", &[t, opts.chunk, n], &c.actions)?;
        z.add("episode", &[t], &c.episode)?;
        z.add("step", &[t], &c.step)?;
        z.add("time_s", &[t], &c.time_s)?;
        z.add("target_index", &[t], &c.target_index)?;
        z.add("instruction", &[t], &c.instruction)?;
        z.add("instructions", &[vocab.len()], vocab.as_bytes())?;
        z.add("target_pos", &[t, 3], &c.target_pos)?;
        z.add("dart", &[t], &c.dart)?;
        z.add("seed", &[1], &[opts.seed as i64])?;
        z.add("rate_hz", &[1], &[opts.rate_hz])?;
        Ok::<_, NpyError>(())
    })();
    written.map_err(wrap)?;
    z.finish().map_err(wrap)?;
    Ok(())
}
