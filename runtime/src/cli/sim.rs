//! `ganglion sim`: the simulated arm as a data source (`record`) and as an
//! external process behind a real transport (`serve`).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use ganglion_sim::dataset::{record, RecordFormat, RecordOptions};
use ganglion_sim::SimConfig;

/// Subcommands of `ganglion sim`.
#[derive(Debug, clap::Subcommand)]
pub enum SimCommand {
    /// Run the scripted expert and write a training dataset.
    Record(RecordArgs),
    /// Run the simulated arm as a separate process over zenoh or ROS 2.
    Serve(super::sim_serve::ServeArgs),
}

/// Arguments of `ganglion sim record` (format: `drivers/sim/README.md`).
#[derive(Debug, clap::Args)]
pub struct RecordArgs {
    /// Number of expert episodes.
    #[arg(long)]
    pub episodes: usize,
    /// Output: the `.npz` file, or for `--format lerobot` a directory that must not exist yet.
    #[arg(long)]
    pub out: PathBuf,
    /// `npz` (one file, drivers/sim/README.md) or `lerobot` (a LeRobotDataset v3 directory:
    /// parquet with PNG frames, meta/info.json, stats, tasks, episodes; drivers/sim/lerobot/README.md).
    #[arg(long, value_enum, default_value_t = FormatArg::Npz)]
    pub format: FormatArg,
    /// Seed of scenes, initial poses and noise.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Share of episodes whose executed commands carry DART noise (labels stay clean).
    #[arg(long, default_value_t = 0.5)]
    pub dart_fraction: f64,
    /// Standard deviation of the DART noise (rad).
    #[arg(long, default_value_t = 0.05)]
    pub dart_std: f64,
    /// Policy rate: frames, states and action chunks are recorded at it (Hz).
    #[arg(long, default_value_t = 10.0)]
    pub rate_hz: f64,
    /// Actions per recorded chunk.
    #[arg(long, default_value_t = 8)]
    pub chunk: usize,
    /// Length of each episode (s).
    #[arg(long, default_value_t = 3.0)]
    pub episode_seconds: f64,
    /// Simulator settings: a TOML file with `SimConfig` keys (defaults for the rest).
    #[arg(long)]
    pub sim_config: Option<PathBuf>,
    /// Also write the summary as JSON here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// `--format` of `ganglion sim record`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FormatArg {
    /// One `.npz` file.
    Npz,
    /// A LeRobotDataset v3 directory.
    Lerobot,
}

/// Reads a `SimConfig` TOML file; errors name the file and the key.
fn load_sim_config(path: &std::path::Path) -> anyhow::Result<SimConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let cfg: SimConfig =
        toml::from_str(&text).with_context(|| format!("{}: invalid simulator config", path.display()))?;
    cfg.validate().with_context(|| format!("{}: invalid simulator config", path.display()))?;
    Ok(cfg)
}

fn run_record(a: RecordArgs) -> anyhow::Result<ExitCode> {
    let sim = match &a.sim_config {
        Some(p) => load_sim_config(p)?,
        None => SimConfig::default(),
    };
    let opts = RecordOptions {
        format: match a.format {
            FormatArg::Npz => RecordFormat::Npz,
            FormatArg::Lerobot => RecordFormat::LeRobot,
        },
        episodes: a.episodes,
        out: a.out,
        seed: a.seed,
        dart_fraction: a.dart_fraction,
        dart_std_rad: a.dart_std,
        rate_hz: a.rate_hz,
        chunk: a.chunk,
        episode_s: a.episode_seconds,
        sim,
        ..RecordOptions::default()
    };
    let started = std::time::Instant::now();
    let summary = record(&opts).with_context(|| format!("recording {}", opts.out.display()))?;
    println!(
        "wrote {} ({} episodes, {} DART, {} frames, {} bytes) in {:.1} s; expert success {}/{} without DART noise, \
         {}/{} overall; mean final error {:.1} mm",
        summary.out.display(),
        summary.episodes,
        summary.dart_episodes,
        summary.frames,
        summary.bytes,
        started.elapsed().as_secs_f64(),
        summary.clean_successes,
        summary.episodes - summary.dart_episodes,
        summary.successes,
        summary.episodes,
        summary.mean_final_error_m * 1e3
    );
    if let Some(path) = &a.report {
        ganglion::report::write_report(path, &summary)?;
    }
    Ok(ExitCode::SUCCESS)
}

/// Runs `ganglion sim`.
pub fn run(cmd: SimCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SimCommand::Record(a) => run_record(a),
        SimCommand::Serve(a) => super::sim_serve::run(a),
    }
}
