//! `ganglion replay`: read a recording back and re-run it.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;

use ganglion::recorder::export::{export_lerobot, ExportOptions};
use ganglion::recorder::read::{InputSample, Recording};
use ganglion::recorder::replay;

/// Arguments of `ganglion replay`.
#[derive(Debug, clap::Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct ReplayArgs {
    /// `export`: write recordings in another format instead of replaying.
    #[command(subcommand)]
    pub action: Option<ReplayAction>,
    /// The `.mcap` recording.
    #[arg(required = true)]
    pub recording: Option<PathBuf>,
    /// Re-run the loop on the recorded inputs and results and require every
    /// decision and command to match bit for bit.
    #[arg(long)]
    pub check: bool,
    /// Re-run the policy on the recorded observations and report the drift
    /// of its actions against the recorded ones.
    #[arg(long)]
    pub reinfer: bool,
    /// Backend for `--reinfer`.
    #[arg(long, value_enum, default_value_t = ganglion_policies::BackendKind::Tract)]
    pub backend: ganglion_policies::BackendKind,
    /// Bundle for `--reinfer` (default: the `bundle` recorded in the file's
    /// metadata). A different bundle of the same spec compares precisions
    /// (fp32 vs int8).
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Trusted public key for `--reinfer` (default: the workspace's development key).
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// `--reinfer`: exit 1 when the largest action difference exceeds this.
    #[arg(long)]
    pub max_drift: Option<f64>,
    /// Write a JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// What `ganglion replay` can do besides replaying.
#[derive(Debug, clap::Subcommand)]
pub enum ReplayAction {
    /// Write recordings of runs as a training dataset (one episode per
    /// recording; docs/RECORDING.md "Back to training").
    Export(ExportArgs),
}

/// Dataset formats `replay export` writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// LeRobotDataset v3 (LeRobot 0.6).
    Lerobot,
}

/// Arguments of `ganglion replay export`.
#[derive(Debug, clap::Args)]
pub struct ExportArgs {
    /// The `.mcap` recordings, in episode order.
    #[arg(required = true)]
    pub recordings: Vec<PathBuf>,
    /// Dataset format.
    #[arg(long, value_enum)]
    pub format: ExportFormat,
    /// The dataset directory to create (must not exist).
    #[arg(long)]
    pub out: PathBuf,
    /// Task text of ticks that saw no instruction.
    #[arg(long, default_value = "")]
    pub task: String,
    /// `robot_type` in the dataset's info.json (default: the profile's file stem).
    #[arg(long)]
    pub robot_type: Option<String>,
}

/// Runs `ganglion replay`.
pub fn run(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    if let Some(ReplayAction::Export(export)) = &args.action {
        return export_dataset(export);
    }
    let path = args.recording.clone().context("a recording to replay")?;
    let rec = Recording::open(&path)?;
    let summary = rec.summary(&path.display().to_string());
    let frames = rec.inputs.iter().filter(|i| matches!(i.sample, InputSample::Frame(..))).count();
    println!(
        "{}: {} ticks {:?}, {} inputs ({} frames), {} inference results ({} errors), {} malformed",
        summary.file,
        summary.ticks,
        summary.tick_range,
        summary.inputs,
        frames,
        summary.results,
        summary.result_errors,
        summary.malformed
    );
    for t in &summary.triggers {
        println!("  trigger at tick {t}");
    }
    if let Some(path) = args.report.as_ref().filter(|_| !args.reinfer) {
        ganglion::report::write_report(path, &summary).context("writing the replay report")?;
    }
    if args.reinfer {
        return reinfer(&args, &path, &rec);
    }
    if args.check {
        return check(&path, &rec);
    }
    Ok(ExitCode::SUCCESS)
}

/// `replay export`: the recordings as one dataset.
fn export_dataset(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let ExportFormat::Lerobot = args.format;
    let opts = ExportOptions { task: args.task.clone(), robot_type: args.robot_type.clone() };
    let written = export_lerobot(&args.recordings, &args.out, &opts)?;
    println!(
        "{}: LeRobotDataset v3, {} episodes, {} frames, {} tasks, {} bytes",
        args.out.display(),
        written.episodes,
        written.frames,
        written.tasks,
        written.bytes
    );
    Ok(ExitCode::SUCCESS)
}

/// The loop configuration and policy spec recorded in the file's metadata.
fn recorded_setup(
    file: &str,
    rec: &Recording,
) -> anyhow::Result<(ganglion::control::LoopConfig, ganglion_core::PolicySpec)> {
    let profile_text = rec.info.get("profile_toml").with_context(|| {
        format!("{file}: no `profile_toml` in the metadata; the recorder was started without replay info")
    })?;
    let spec_json = rec.info.get("policy_spec").with_context(|| {
        format!("{file}: no `policy_spec` in the metadata; the recorder was started without replay info")
    })?;
    let profile =
        ganglion::profile::Profile::parse(profile_text, std::path::Path::new(&format!("{file}#profile_toml")))?;
    let spec: ganglion_core::PolicySpec = serde_json::from_str::<replay::SpecRecord>(spec_json)
        .with_context(|| format!("{file}: metadata `policy_spec` is not a policy spec"))?
        .into();
    Ok((profile.loop_config(), spec))
}

/// What `--reinfer` measured.
#[derive(serde::Serialize)]
struct ReinferReport {
    file: String,
    bundle: String,
    backend: String,
    ticks: u64,
    divergence: Option<String>,
    drift: replay::Drift,
}

/// `--reinfer`: replay the loop on the recorded results and re-run the
/// bundle on every observation it submits; report the drift.
fn reinfer(args: &ReplayArgs, path: &std::path::Path, rec: &Recording) -> anyhow::Result<ExitCode> {
    let file = path.display().to_string();
    let (cfg, spec) = recorded_setup(&file, rec)?;
    let bundle = match (&args.bundle, rec.info.get("bundle")) {
        (Some(b), _) => b.clone(),
        (None, Some(b)) if !b.is_empty() => PathBuf::from(b),
        _ => anyhow::bail!("{file}: no `bundle` in the metadata (the run used no bundle?); pass --bundle DIR"),
    };
    let (dir, mut policy) = ganglion::eval::load_bundle(Some(&bundle), args.backend, args.key.as_deref(), false)?;
    // The run's noise: an iterative head re-draws the same noise per request.
    if let Some(seed) = ganglion::deploy::policy::recorded_seed(&rec.info).with_context(|| file.clone())? {
        policy.set_noise_seed(seed);
    }
    let shadow_spec = ganglion_core::Policy::spec(&policy);
    anyhow::ensure!(
        shadow_spec.n_joints == spec.n_joints && shadow_spec.chunk_len == spec.chunk_len,
        "{}: {} joints x {} steps, but the recording's policy has {} x {}",
        dir.display(),
        shadow_spec.n_joints,
        shadow_spec.chunk_len,
        spec.n_joints,
        spec.chunk_len
    );
    let build = move |readers, exec, sink| ganglion::control::ControlLoop::new(&cfg, readers, exec, sink);
    let (outcome, drift) =
        replay::reinfer(rec, &spec, Box::new(build), Box::new(policy)).with_context(|| format!("replaying {file}"))?;
    println!(
        "reinfer on {} ({}): {} chunks compared, max |Δ| {:.3e}, mean |Δ| {:.3e}, rms {:.3e} (worst request {}), \
         {} shadow errors, {} recorded errors, {} shape mismatches",
        dir.display(),
        args.backend.as_str(),
        drift.compared,
        drift.max_abs,
        drift.mean_abs,
        drift.rms,
        drift.worst_request,
        drift.shadow_errors,
        drift.recorded_errors,
        drift.shape_mismatches
    );
    let exceeded = args.max_drift.is_some_and(|m| drift.max_abs > m || drift.shadow_errors > 0);
    let report = ReinferReport {
        file,
        bundle: dir.display().to_string(),
        backend: args.backend.as_str().to_string(),
        ticks: outcome.ticks,
        divergence: outcome.divergence.map(|d| d.to_string()),
        drift,
    };
    if let Some(path) = &args.report {
        ganglion::report::write_report(path, &report).context("writing the reinfer report")?;
    }
    Ok(if exceeded { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// `--check`: rebuild the loop from the recorded profile and policy spec
/// and replay; exit 0 when every tick matches, 1 at the first divergence.
fn check(path: &std::path::Path, rec: &Recording) -> anyhow::Result<ExitCode> {
    let file = path.display().to_string();
    let (cfg, spec) = recorded_setup(&file, rec)?;
    let build = move |readers, exec, sink| ganglion::control::ControlLoop::new(&cfg, readers, exec, sink);
    let outcome = replay::check(rec, &spec, Box::new(build)).with_context(|| format!("replaying {file}"))?;
    match outcome.divergence {
        None => {
            println!("check: {} ticks replayed, every decision and command matches bit for bit", outcome.ticks);
            Ok(ExitCode::SUCCESS)
        }
        Some(d) => {
            println!("check: FIRST DIVERGENCE at {d}");
            Ok(ExitCode::FAILURE)
        }
    }
}
