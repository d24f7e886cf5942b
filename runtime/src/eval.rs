//! `ganglion eval`: closed-loop evaluation of a policy bundle on the
//! simulated arm.
//!
//! Every episode runs the real [`ControlLoop`] (sampler, executor,
//! supervisor, shield, fallback) on a [`SimClock`], with the bundle's policy
//! behind the deterministic [`SimLatencyExecutor`]: inference is computed
//! when its result is due, after a simulated latency, so a seed gives the
//! same command stream on every machine. The scene, initial
//! pose and instructed target (a random instruction per episode) come from
//! `(seed, episode)`. Inference wall time is still measured (that is the
//! `inference_ms` of the report); it does not influence the run.
//!
//! World-model measurements: `--latency-ms` injects a simulated inference
//! latency, `--latency-compensation off` hides the committed actions from
//! the policy (so it cannot roll its latent forward), `--fault KIND@SECONDS`
//! starts one of the simulated arm's faults (or `late-persistent`, a
//! simulated inference delay) that far into every episode (the grammar of
//! [`crate::faults`]),
//! and the report always carries the surprise monitor's statistics.
//! `--link-*` puts the policy behind a modelled network link (a policy
//! server), and `--split` splits a world model across it
//! ([`evaluate_split`]: the encoder behind the link, the dynamics and head
//! on the robot, rolling over the round trip as it was).
//! `--dump-frames FILE.npz` writes every observation the policy saw
//! (calibration data for INT8 quantization, same keys as `ganglion sim
//! record`).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

use anyhow::{bail, Context};
use ganglion_core::{ActionChunk, Cause, Mode, Observation, Policy, PolicyError, PolicySpec, SimClock, Stamp};
use ganglion_policies::{
    load_policy, load_trusted_keys, BackendKind, BundlePolicy, LoadOptions, SplitPolicy, WorldModelTail,
};
use ganglion_sim::SimConfig;

use crate::control::control_loop::LoopConfig;
use crate::control::inference::{copy_observation, LatencyModel, NetworkLink};
use crate::faults::{FaultAt, InjectKind};
use crate::plant::SimHarness;
use crate::profile::Profile;

/// A file Ganglion ships: where it sits in the source tree, and where the
/// `.deb` installs it (`cross/package`). The defaults of `demo` and `eval`
/// are found in either place, so the same commands work in a checkout and
/// on a robot with the package installed (`cross/test-install` runs the
/// demo from the installed layout).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shipped {
    /// Relative to the workspace root.
    pub workspace: &'static str,
    /// Absolute path in the installed package.
    pub installed: &'static str,
}

/// The default bundle.
pub const DEFAULT_BUNDLE: Shipped =
    Shipped { workspace: "policies/reference/reach-v1", installed: "/usr/share/ganglion/bundles/reach-v1" };
/// The development public key the reference bundles are signed with. Its
/// secret is committed, so only `demo` and `eval` default to it; `run`
/// trusts nothing it is not told to (`[policy] trusted_keys`, `--key`).
pub const DEV_PUBLIC_KEY: Shipped =
    Shipped { workspace: "policies/reference/dev-key.pub", installed: "/usr/share/ganglion/keys/dev-key.pub" };
/// The simulated arm's robot profile.
pub const SIM_PROFILE: Shipped = Shipped { workspace: "launch/sim.toml", installed: "/etc/ganglion/sim.toml" };

impl Shipped {
    /// The workspace copy (walking up from the current directory, then from
    /// the executable's), else the installed one; `None` if neither exists.
    pub fn find(&self) -> Option<PathBuf> {
        find_in_workspace(self.workspace).or_else(|| {
            let installed = PathBuf::from(self.installed);
            installed.exists().then_some(installed)
        })
    }
}

impl std::fmt::Display for Shipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} (installed: {})", self.workspace, self.installed)
    }
}

/// Finds `rel` under the workspace: walking up from the current directory,
/// then from the executable's directory (a `target/<profile>/ganglion`
/// binary sits two levels under the workspace root).
pub fn find_in_workspace(rel: &str) -> Option<PathBuf> {
    let starts =
        [std::env::current_dir().ok(), std::env::current_exe().ok().and_then(|p| p.parent().map(Path::to_path_buf))];
    for start in starts.into_iter().flatten() {
        for dir in start.ancestors() {
            let candidate = dir.join(rel);
            if candidate.exists() {
                return Some(candidate);
            }
        }
    }
    None
}

/// Loads a bundle for evaluation or the demo: trusted keys from `key` or
/// the development key ([`DEV_PUBLIC_KEY`]).
pub fn load_bundle(
    bundle: Option<&Path>,
    backend: BackendKind,
    key: Option<&Path>,
    allow_unsigned: bool,
) -> anyhow::Result<(PathBuf, BundlePolicy)> {
    load_bundle_batched(bundle, backend, key, allow_unsigned, None)
}

/// [`load_bundle`] into a batching pool (a policy server's robots).
pub fn load_bundle_batched(
    bundle: Option<&Path>,
    backend: BackendKind,
    key: Option<&Path>,
    allow_unsigned: bool,
    batch: Option<std::sync::Arc<ganglion_policies::backend::batch::BatchPool>>,
) -> anyhow::Result<(PathBuf, BundlePolicy)> {
    let dir = match bundle {
        Some(b) => b.to_path_buf(),
        None => DEFAULT_BUNDLE.find().with_context(|| {
            format!(
                "the default bundle {DEFAULT_BUNDLE} was not found above the current directory, the executable, \
                 or installed; run from the Ganglion workspace or pass --bundle DIR"
            )
        })?,
    };
    let opts = LoadOptions { backend, batch, ..load_options(key, allow_unsigned)? };
    let policy = load_policy(&dir, &opts).with_context(|| format!("loading bundle {}", dir.display()))?;
    Ok((dir, policy))
}

/// How `demo` and `eval` load: keys from `key` or the development key
/// ([`DEV_PUBLIC_KEY`]).
fn load_options(key: Option<&Path>, allow_unsigned: bool) -> anyhow::Result<LoadOptions> {
    let key_path = match key {
        Some(k) => Some(k.to_path_buf()),
        None => DEV_PUBLIC_KEY.find(),
    };
    let trusted_keys = match &key_path {
        Some(k) => load_trusted_keys(k).with_context(|| format!("reading trusted key {}", k.display()))?,
        None if allow_unsigned => Vec::new(),
        None => bail!("no trusted key: pass --key FILE (the development key {DEV_PUBLIC_KEY} was not found)"),
    };
    Ok(LoadOptions { trusted_keys, allow_unsigned, ..LoadOptions::default() })
}

/// The dynamics and action head of the bundle at `dir` (the robot's half
/// of a split world model, [`evaluate_split`]), verified as
/// [`load_bundle`] verifies.
pub fn load_tail(dir: &Path, key: Option<&Path>, allow_unsigned: bool) -> anyhow::Result<WorldModelTail> {
    let opts = load_options(key, allow_unsigned)?;
    ganglion_policies::load_tail(dir, &opts)
        .with_context(|| format!("loading the world-model tail of {}", dir.display()))
}

/// What a [`Probe`] saw, shared with whoever reads it (off the control thread).
#[derive(Debug, Default)]
pub struct ProbeStats {
    /// Wall-clock time of every inference, ns.
    pub infer_ns: Vec<u64>,
    /// `(observation stamp, surprise)` of every chunk that carried one,
    /// except the first after [`new_episode`] (its "previous
    /// observation" belongs to another episode).
    pub surprise: Vec<(Stamp, f32)>,
    /// Failed inferences.
    pub errors: u64,
    /// Observations kept for `--dump-frames`.
    pub frames: Option<FrameDump>,
    skip_next_surprise: bool,
}

/// Observations the policy saw, in the dataset's layout.
#[derive(Debug, Default)]
pub struct FrameDump {
    /// rgb8 pixels, frame after frame.
    pub images: Vec<u8>,
    /// Frame width and height.
    pub size: (u32, u32),
    /// Joint positions, row after row.
    pub joint_pos: Vec<f32>,
    /// Index into `instructions` per frame.
    pub instruction: Vec<i32>,
    /// Instruction texts seen.
    pub instructions: Vec<String>,
    /// Episode per frame.
    pub episode: Vec<i32>,
    /// Current episode.
    pub current_episode: i32,
}

/// Shared handle to a [`Probe`]'s statistics.
pub type SharedStats = Arc<Mutex<ProbeStats>>;

/// Locks the stats even if a panicking thread poisoned the lock (the data
/// are plain counters and samples).
pub fn lock(stats: &SharedStats) -> MutexGuard<'_, ProbeStats> {
    stats.lock().unwrap_or_else(|e| e.into_inner())
}

/// What [`Probe`] wraps: a bundle, or a split world model made of one.
pub trait EvalPolicy: Policy {
    /// Forgets the world model's history (`BundlePolicy::reset_history`).
    fn reset_history(&mut self);
    /// The next episode runs on `clock` (a split policy reads it when its
    /// latent arrives). Default: nothing to do.
    fn use_clock(&mut self, clock: &SimClock) {
        let _ = clock;
    }
}

impl EvalPolicy for BundlePolicy {
    fn reset_history(&mut self) {
        BundlePolicy::reset_history(self);
    }
}

impl EvalPolicy for SplitPolicy {
    fn reset_history(&mut self) {
        SplitPolicy::reset_history(self);
    }
    fn use_clock(&mut self, clock: &SimClock) {
        self.set_clock(Arc::new(clock.clone()));
    }
}

/// A [`Policy`] wrapper that times inference, collects surprise values,
/// optionally hides the committed actions (latency compensation off) and
/// optionally keeps the observations.
///
/// It runs on the inference side (worker thread, or the caller of the
/// simulated-latency executor), never on the control thread; its lock is
/// shared only with report readers.
pub struct Probe<P = BundlePolicy> {
    inner: Arc<Mutex<P>>,
    stats: SharedStats,
    compensate: bool,
    episode: u64,
    spec: PolicySpec,
    scratch: Observation,
}

impl<P: EvalPolicy> Probe<P> {
    /// Wraps `inner` (shared so one loaded bundle serves many episodes) for
    /// `episode`.
    pub fn new(inner: Arc<Mutex<P>>, stats: SharedStats, compensate: bool, episode: u64) -> anyhow::Result<Self> {
        let spec = {
            let mut p = inner.lock().map_err(|_| anyhow::anyhow!("policy lock poisoned"))?;
            // A new scene: nothing the world model saw before predicts it.
            EvalPolicy::reset_history(&mut *p);
            p.spec().clone()
        };
        let scratch = Observation::with_history(&spec);
        Ok(Self { inner, stats, compensate, episode, spec, scratch })
    }
}

/// Marks an episode boundary: the next surprise value compares latents
/// across two unrelated scenes and is not counted.
pub fn new_episode(stats: &SharedStats, episode: u64) {
    let mut s = lock(stats);
    s.skip_next_surprise = true;
    if let Some(f) = s.frames.as_mut() {
        f.current_episode = episode as i32;
    }
}

impl<P: EvalPolicy> Policy for Probe<P> {
    fn spec(&self) -> &PolicySpec {
        &self.spec
    }

    fn infer(&mut self, obs: &Observation, out: &mut ActionChunk) -> Result<(), PolicyError> {
        if !copy_observation(&mut self.scratch, obs) {
            return Err(PolicyError::BadObservation("observation does not fit the probe's buffer".into()));
        }
        // Each episode's simulated arm numbers its instructions from 1
        // again; make the sequence unique across episodes so the shared
        // policy re-encodes a new episode's instruction.
        self.scratch.instruction.seq = ((self.episode + 1) << 32) ^ obs.instruction.seq;
        if !self.compensate {
            self.scratch.committed.clear();
        }
        let obs = &self.scratch;
        let t0 = Instant::now();
        let result = self.inner.lock().map_err(|_| PolicyError::WorkerStopped)?.infer(obs, out);
        let dt = t0.elapsed().as_nanos() as u64;
        let mut s = lock(&self.stats);
        s.infer_ns.push(dt);
        match &result {
            Ok(()) => {
                if let Some(v) = out.surprise {
                    if s.skip_next_surprise {
                        s.skip_next_surprise = false;
                    } else {
                        s.surprise.push((obs.stamp, v));
                    }
                }
            }
            Err(_) => s.errors += 1,
        }
        if let (Some(f), Some(frame)) = (s.frames.as_mut(), obs.frames.first()) {
            let text = obs.instruction.text.as_str();
            let idx = match f.instructions.iter().position(|t| t == text) {
                Some(i) => i,
                None => {
                    f.instructions.push(text.to_string());
                    f.instructions.len() - 1
                }
            };
            f.size = (frame.width, frame.height);
            f.images.extend_from_slice(frame.data());
            f.joint_pos.extend(obs.joints.position.iter().map(|v| *v as f32));
            f.instruction.push(idx as i32);
            f.episode.push(f.current_episode);
        }
        result
    }
}

/// Loads the simulated arm's robot profile (`path`, or launch/sim.toml of
/// this workspace): the loop configuration and the arm.
pub fn sim_profile(path: Option<&Path>) -> anyhow::Result<(PathBuf, LoopConfig, SimConfig)> {
    let path = match path {
        Some(p) => p.to_path_buf(),
        None => SIM_PROFILE.find().with_context(|| {
            format!("the simulated arm's profile {SIM_PROFILE} was not found above the current directory or installed; pass --config FILE")
        })?,
    };
    let profile = Profile::load(&path).with_context(|| format!("loading robot profile {}", path.display()))?;
    let sim = profile.sim.clone().unwrap_or_default();
    Ok((path, profile.loop_config(), sim))
}

/// How one simulated episode went.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EpisodeReport {
    /// Episode number.
    pub episode: u64,
    /// The instruction of the episode.
    pub instruction: String,
    /// Tip within the success radius at the end.
    pub success: bool,
    /// Tip-to-target distance at the end (cm).
    pub final_error_cm: f64,
    /// Ticks in Fallback or SafeStop.
    pub fallback_ticks: u64,
    /// Ticks the policy drove without an action for the tick.
    pub starved_ticks: u64,
    /// Tick overruns (none expected on a simulated clock).
    pub overruns: u64,
    /// Causes seen, with the ticks each was active.
    pub causes: Vec<(Cause, u64)>,
    /// First tick (counted from the fault's start) in Fallback, if any.
    pub first_fallback_tick_after_fault: Option<u64>,
    /// The executor's seam jump of every chunk accepted onto an executing
    /// plan, rad (summarized in [`EvalReport::seam_jump_rad`]).
    #[serde(skip)]
    pub seam_jumps: Vec<f64>,
}

/// Everything an evaluation run needs besides the policy.
#[derive(Debug, Clone)]
pub struct SimEvalConfig {
    /// The loop (from the robot profile).
    pub loop_cfg: LoopConfig,
    /// The simulated arm.
    pub sim: SimConfig,
    /// Episode length (s).
    pub episode_seconds: f64,
    /// Simulated inference latency (ns): the policy's compute, on the
    /// robot or (with `link`) on the server.
    pub latency_ns: u64,
    /// The policy runs behind this network link (a remote policy server,
    /// modelled in simulated time), seeded per episode; `None`: on the robot.
    pub link: Option<NetworkLink>,
    /// A fault started this far into every episode: an arm fault, or
    /// `late-persistent` (simulated inference delay); see
    /// [`crate::faults::Consumer::Eval`].
    pub fault: Option<FaultAt>,
}

/// Runs episode `episode` of the arm seeded by `seed` under the real
/// control loop on a simulated clock ([`SimHarness`]); a fresh harness per
/// episode, so no plan, filter or mode carries over.
pub fn run_episode(
    cfg: &SimEvalConfig,
    seed: u64,
    episode: u64,
    policy: Box<dyn Policy>,
    clock: SimClock,
) -> anyhow::Result<EpisodeReport> {
    let latency = match cfg.link {
        Some(link) => LatencyModel::Network { compute_ns: cfg.latency_ns, link, seed: seed ^ (episode << 20) ^ 0x51ed },
        None => LatencyModel::Fixed { ns: cfg.latency_ns },
    };
    let mut h = SimHarness::new_on_clock(&cfg.loop_cfg, &cfg.sim, seed, policy, latency, clock)
        .context("building the simulated-arm harness")?;
    h.arm_mut().reset_episode(episode);
    let period = h.period_ns();
    let start = h.now();
    let fault_start = cfg.fault.map(|f| start.add_nanos((f.at_s * 1e9) as u64));
    // An arm fault goes on the arm's schedule; a persistent inference
    // delay on the simulated-latency executor once its time comes.
    let mut late_ns = None;
    if let Some(f) = cfg.fault {
        if !f.schedule(h.arm_mut().faults_mut(), start) {
            match f.injection().map(|i| i.kind) {
                Some(InjectKind::Late { delay, count: u64::MAX }) => late_ns = Some(delay.as_nanos() as u64),
                _ => bail!("fault {f}: eval --fault honours {}", crate::faults::Consumer::Eval.describe()),
            }
        }
    }
    let ticks = (cfg.episode_seconds * 1e9 / period as f64).round() as u64;
    let mut first_fallback = None;
    let mut seam_jumps = Vec::new();
    let mut accepted = 0;
    for _ in 0..ticks {
        let t = h.now();
        if let (Some(ns), Some(at)) = (late_ns, fault_start) {
            if t >= at {
                h.injected_delay().set(ns);
                late_ns = None;
            }
        }
        let mode = h.step().mode;
        let control = h.control();
        if control.counters().chunks_accepted != accepted {
            accepted = control.counters().chunks_accepted;
            seam_jumps.extend(control.last_accept().and_then(|a| a.seam_jump));
        }
        if let Some(at) = fault_start {
            if first_fallback.is_none() && t >= at && matches!(mode, Mode::Fallback | Mode::SafeStop) {
                first_fallback = Some(t.saturating_since(at) / period);
            }
        }
    }
    let control = h.control();
    let counters = *control.counters();
    let causes = Cause::ALL.iter().map(|c| (*c, control.cause_counts().ticks(*c))).filter(|(_, n)| *n > 0).collect();
    let arm = h.arm();
    Ok(EpisodeReport {
        episode,
        instruction: arm.instruction().to_string(),
        success: arm.success(),
        final_error_cm: arm.tip_error_m() * 100.0,
        fallback_ticks: counters.fallback_ticks,
        starved_ticks: counters.starved_ticks,
        overruns: counters.overruns,
        causes,
        first_fallback_tick_after_fault: first_fallback,
        seam_jumps,
    })
}

pub use crate::stats::Summary;

/// Surprise monitor statistics of a run.
#[derive(Debug, Clone, serde::Serialize)]
pub struct SurpriseReport {
    /// The bundle's threshold.
    pub threshold: Option<f32>,
    /// Surprise values of all chunks (first chunk of each episode excluded).
    pub values: Summary,
    /// Chunks whose surprise exceeded the threshold.
    pub chunks_over_threshold: usize,
    /// Episodes in which the supervisor raised `world_model_surprise`.
    pub episodes_triggered: u64,
    /// With a fault: per episode, ticks from the fault's start to the first
    /// chunk over the threshold (observation stamp), for the episodes where
    /// one came.
    pub detection_ticks_after_fault: Option<Summary>,
    /// With a fault: episodes in which a chunk over the threshold came after it.
    pub detected_episodes: Option<u64>,
}

/// The JSON report of `ganglion eval`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct EvalReport {
    /// Bundle directory.
    pub bundle: String,
    /// Policy name and version.
    pub policy: String,
    /// Backend used.
    pub backend: String,
    /// Execution provider in use.
    pub execution_provider: String,
    /// Episodes run.
    pub episodes: u64,
    /// Seed.
    pub seed: u64,
    /// Episode length (s).
    pub episode_seconds: f64,
    /// Control rate (Hz).
    pub control_rate_hz: f64,
    /// Simulated inference latency (ms).
    pub simulated_latency_ms: f64,
    /// The network link the policy ran behind (`--link-*`), if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub link: Option<NetworkLink>,
    /// Whether the policy saw committed actions.
    pub latency_compensation: bool,
    /// The world model was split across the link ([`evaluate_split`]).
    pub split: bool,
    /// The fault, if any (`KIND@SECONDS`).
    pub fault: Option<String>,
    /// Episodes whose tip ended within the success radius.
    pub successes: u64,
    /// `successes / episodes`.
    pub success_rate: f64,
    /// Final tip-to-target distance (cm).
    pub final_error_cm: Summary,
    /// Ticks without an action while the policy drove, all episodes.
    pub starved_ticks: u64,
    /// Ticks in Fallback or SafeStop, all episodes.
    pub fallback_ticks: u64,
    /// Tick overruns, all episodes.
    pub overruns: u64,
    /// Wall-clock inference time on this machine (ms).
    pub inference_ms: Summary,
    /// The jump at chunk boundaries, rad: per accepted chunk that replaced
    /// an executing plan, the largest per-joint distance between its first
    /// executed action and the old plan at that time (before blending and
    /// the seam ramp). Real-time chunking's figure of merit.
    pub seam_jump_rad: Summary,
    /// Failed inferences.
    pub inference_errors: u64,
    /// Cause name → ticks active, all episodes.
    pub causes: std::collections::BTreeMap<String, u64>,
    /// Surprise monitor.
    pub surprise: SurpriseReport,
    /// With a fault: ticks from its start to the first fallback tick.
    pub first_fallback_ticks_after_fault: Option<Summary>,
    /// Success per instruction text: (episodes, successes).
    pub per_instruction: std::collections::BTreeMap<String, (u64, u64)>,
    /// Wall time of the whole evaluation (s).
    pub wall_s: f64,
    /// Every episode.
    pub per_episode: Vec<EpisodeReport>,
}

/// Evaluates a loaded policy; the building block of the command and tests.
pub fn evaluate(
    policy: BundlePolicy,
    cfg: SimEvalConfig,
    episodes: u64,
    seed: u64,
    compensate: bool,
    dump_frames: bool,
) -> anyhow::Result<(EvalReport, SharedStats)> {
    let load = policy.load_report().clone();
    evaluate_with(policy, load, cfg, episodes, seed, compensate, dump_frames)
}

/// [`evaluate`] with the world model split across the link (`cfg.link`):
/// `policy`'s encoder behind it, `tail` (its dynamics and head) on the
/// robot, rolling the latent over as many committed actions as the round
/// trip really took ([`SplitPolicy`]).
pub fn evaluate_split(
    policy: BundlePolicy,
    tail: WorldModelTail,
    cfg: SimEvalConfig,
    episodes: u64,
    seed: u64,
    compensate: bool,
) -> anyhow::Result<(EvalReport, SharedStats)> {
    let load = policy.load_report().clone();
    let split = SplitPolicy::new(Box::new(policy), tail, Arc::new(SimClock::new(Stamp::ZERO)))?;
    let (mut report, stats) = evaluate_with(split, load, cfg, episodes, seed, compensate, false)?;
    report.split = true;
    Ok((report, stats))
}

fn evaluate_with<P: EvalPolicy + 'static>(
    policy: P,
    report_load: ganglion_policies::LoadReport,
    cfg: SimEvalConfig,
    episodes: u64,
    seed: u64,
    compensate: bool,
    dump_frames: bool,
) -> anyhow::Result<(EvalReport, SharedStats)> {
    let t0 = Instant::now();
    let name = policy.spec().name.clone();
    let threshold = policy.spec().surprise_threshold;
    let period_ns = cfg.loop_cfg.period_ns.max(1);
    let inner = Arc::new(Mutex::new(policy));
    let stats: SharedStats = Arc::new(Mutex::new(ProbeStats::default()));
    if dump_frames {
        lock(&stats).frames = Some(FrameDump::default());
    }
    let fault = cfg.fault;
    let latency_ms = cfg.latency_ns as f64 * 1e-6;
    let episode_seconds = cfg.episode_seconds;
    let rate_hz = 1e9 / period_ns as f64;
    if !(episode_seconds.is_finite() && episode_seconds > 0.0) {
        bail!("--episode-seconds: expected a positive duration, got {episode_seconds}");
    }
    let mut outcomes = Vec::with_capacity(episodes as usize);
    let mut detections = Vec::new();
    for ep in 0..episodes {
        new_episode(&stats, ep);
        let before = lock(&stats).surprise.len();
        let clock = SimClock::new(Stamp::ZERO);
        inner.lock().map_err(|_| anyhow::anyhow!("policy lock poisoned"))?.use_clock(&clock);
        let probe = Probe::new(inner.clone(), stats.clone(), compensate, ep)?;
        let out = run_episode(&cfg, seed, ep, Box::new(probe), clock).with_context(|| format!("episode {ep}"))?;
        if let (Some(f), Some(th)) = (fault, threshold) {
            // Every harness starts its simulated clock at zero.
            let at = Stamp::ZERO.add_nanos((f.at_s * 1e9) as u64);
            let s = lock(&stats);
            if let Some((stamp, _)) = s.surprise[before..].iter().find(|(st, v)| *st >= at && *v > th) {
                detections.push(stamp.saturating_since(at) as f64 / period_ns as f64);
            }
        }
        outcomes.push(out);
    }
    let s = lock(&stats);
    let successes = outcomes.iter().filter(|o| o.success).count() as u64;
    let mut causes = std::collections::BTreeMap::new();
    let mut per_instruction: std::collections::BTreeMap<String, (u64, u64)> = std::collections::BTreeMap::new();
    for o in &outcomes {
        for (c, n) in &o.causes {
            *causes.entry(c.name().to_string()).or_insert(0) += n;
        }
        let e = per_instruction.entry(o.instruction.clone()).or_insert((0, 0));
        e.0 += 1;
        e.1 += u64::from(o.success);
    }
    let surprise_values: Vec<f64> = s.surprise.iter().map(|(_, v)| f64::from(*v)).collect();
    let ffb: Vec<f64> = outcomes.iter().filter_map(|o| o.first_fallback_tick_after_fault.map(|t| t as f64)).collect();
    let report = EvalReport {
        bundle: String::new(),
        policy: name,
        backend: report_load.backend.as_str().to_string(),
        execution_provider: report_load.execution_provider.clone(),
        episodes,
        seed,
        episode_seconds,
        control_rate_hz: rate_hz,
        simulated_latency_ms: latency_ms,
        link: cfg.link,
        latency_compensation: compensate,
        split: false,
        fault: fault.map(|f| f.to_string()),
        successes,
        success_rate: if episodes > 0 { successes as f64 / episodes as f64 } else { 0.0 },
        final_error_cm: Summary::of(&outcomes.iter().map(|o| o.final_error_cm).collect::<Vec<_>>()),
        starved_ticks: outcomes.iter().map(|o| o.starved_ticks).sum(),
        fallback_ticks: outcomes.iter().map(|o| o.fallback_ticks).sum(),
        overruns: outcomes.iter().map(|o| o.overruns).sum(),
        inference_ms: Summary::of(&s.infer_ns.iter().map(|ns| *ns as f64 * 1e-6).collect::<Vec<_>>()),
        seam_jump_rad: Summary::of(&outcomes.iter().flat_map(|o| o.seam_jumps.iter().copied()).collect::<Vec<_>>()),
        inference_errors: s.errors,
        causes,
        surprise: SurpriseReport {
            threshold,
            values: Summary::of(&surprise_values),
            chunks_over_threshold: match threshold {
                Some(th) => s.surprise.iter().filter(|(_, v)| *v > th).count(),
                None => 0,
            },
            episodes_triggered: outcomes
                .iter()
                .filter(|o| o.causes.iter().any(|(c, _)| *c == Cause::WorldModelSurprise))
                .count() as u64,
            detection_ticks_after_fault: fault.map(|_| Summary::of(&detections)),
            detected_episodes: fault.map(|_| detections.len() as u64),
        },
        first_fallback_ticks_after_fault: fault.map(|_| Summary::of(&ffb)),
        per_instruction,
        wall_s: t0.elapsed().as_secs_f64(),
        per_episode: outcomes,
    };
    drop(s);
    Ok((report, stats))
}

/// Writes the observations a probe kept, in `ganglion sim record`'s layout.
pub fn write_frames(path: &Path, dump: &FrameDump) -> anyhow::Result<()> {
    use ganglion_sim::npy::NpzWriter;
    let file = std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?;
    let mut z = NpzWriter::new(std::io::BufWriter::new(file));
    let t = dump.instruction.len();
    let (w, h) = (dump.size.0 as usize, dump.size.1 as usize);
    let n = dump.joint_pos.len().checked_div(t).unwrap_or(0);
    let texts = dump.instructions.join("\n");
    z.add("images", &[t, h, w, 3], &dump.images).context("writing images")?;
    z.add("joint_pos", &[t, n], &dump.joint_pos).context("writing joint_pos")?;
    z.add("instruction", &[t], &dump.instruction).context("writing instruction")?;
    z.add("instructions", &[texts.len()], texts.as_bytes()).context("writing instructions")?;
    z.add("episode", &[t], &dump.episode).context("writing episode")?;
    z.finish().with_context(|| format!("finishing {}", path.display()))?;
    Ok(())
}
