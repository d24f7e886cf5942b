//! `ganglion eval`: closed-loop success of a bundle on the simulated arm
//! (the library: [`ganglion::eval`]).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use ganglion::control::NetworkLink;
use ganglion::eval::{
    evaluate, evaluate_split, load_bundle, load_tail, lock, sim_profile, write_frames, SimEvalConfig,
};
use ganglion::faults::{Consumer, FaultAt};
use ganglion_core::Policy;
use ganglion_policies::BackendKind;

/// On or off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OnOff {
    /// Enabled.
    On,
    /// Disabled.
    Off,
}

/// Arguments of `ganglion eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {
    /// Bundle directory; default: policies/reference/reach-v1 of this
    /// workspace, else the installed /usr/share/ganglion/bundles/reach-v1.
    #[arg(long)]
    pub bundle: Option<PathBuf>,
    /// Inference backend (`ort` runs the CPU provider here).
    #[arg(long, value_enum, default_value_t = BackendKind::Tract)]
    pub backend: BackendKind,
    /// Number of episodes.
    #[arg(long, default_value_t = 100)]
    pub episodes: u64,
    /// Seed of scenes, initial poses and instructions.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Length of each episode (s).
    #[arg(long, default_value_t = 4.0)]
    pub episode_seconds: f64,
    /// Robot profile of the simulated arm; default: launch/sim.toml of this
    /// workspace, else the installed /etc/ganglion/sim.toml.
    #[arg(long)]
    pub config: Option<PathBuf>,
    /// Simulated inference latency (ms); default: the bundle's expected latency.
    #[arg(long)]
    pub latency_ms: Option<f64>,
    /// Whether the policy sees the committed actions (world-model latency
    /// compensation).
    #[arg(long, value_enum, default_value_t = OnOff::On)]
    pub latency_compensation: OnOff,
    /// Run the policy behind a network link of this one-way delay (ms), as a
    /// remote policy server would be: `--latency-ms` is then the server's
    /// compute, and the round trip adds two crossings (simulated time: what
    /// `tc netem` does to a real link).
    #[arg(long)]
    pub link_delay_ms: Option<f64>,
    /// Each crossing's delay varies uniformly within ± this (ms).
    #[arg(long, default_value_t = 0.0, requires = "link_delay_ms")]
    pub link_jitter_ms: f64,
    /// Chance that a crossing loses the message (%).
    #[arg(long, default_value_t = 0.0, requires = "link_delay_ms")]
    pub link_loss_pct: f64,
    /// How long the robot waits for a reply (ms; `[policy.remote] timeout_ms`).
    #[arg(long, default_value_t = 300.0, requires = "link_delay_ms")]
    pub link_timeout_ms: f64,
    /// Split the world model across the link: its encoder behind it, its
    /// dynamics and action head on the robot, rolling the latent over the
    /// round trip as it really was (what `[policy.remote] split = true`
    /// runs). Needs a bundle with an encoder, dynamics and an action head.
    #[arg(long, requires = "link_delay_ms")]
    pub split: bool,
    /// Start a fault this far into every episode, `KIND@SECONDS[:DURATION]`,
    /// e.g. black-frame@1.5: a simulated-arm fault, or late-persistent@S[:DELAY_S]
    /// (simulated inference delay).
    #[arg(long, value_parser = |s: &str| FaultAt::parse_for(s, Consumer::Eval))]
    pub fault: Option<FaultAt>,
    /// Trusted public key file or directory; default: the development key
    /// policies/reference/dev-key.pub of this workspace, else the installed
    /// /usr/share/ganglion/keys/dev-key.pub.
    #[arg(long)]
    pub key: Option<PathBuf>,
    /// Run an unsigned bundle (warns).
    #[arg(long)]
    pub allow_unsigned: bool,
    /// Write every observation the policy saw to this .npz (INT8 calibration).
    #[arg(long)]
    pub dump_frames: Option<PathBuf>,
    /// Write the JSON report here.
    #[arg(long)]
    pub report: Option<PathBuf>,
}

/// Runs `ganglion eval`.
pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    if args.episodes == 0 {
        bail!("--episodes: expected at least 1");
    }
    let (dir, policy) = load_bundle(args.bundle.as_deref(), args.backend, args.key.as_deref(), args.allow_unsigned)?;
    let latency_ms = args.latency_ms.unwrap_or(policy.spec().expected_latency_ns as f64 * 1e-6);
    if !(latency_ms.is_finite() && latency_ms >= 0.0) {
        bail!("--latency-ms: expected a non-negative number, got {latency_ms}");
    }
    let (_, loop_cfg, sim) = sim_profile(args.config.as_deref())?;
    let link = match args.link_delay_ms {
        None => None,
        Some(delay) => {
            let ms = |v: f64, flag: &str| -> anyhow::Result<u64> {
                if v.is_finite() && v >= 0.0 {
                    Ok((v * 1e6).round() as u64)
                } else {
                    bail!("{flag}: expected a non-negative number of ms, got {v}")
                }
            };
            if !(0.0..=100.0).contains(&args.link_loss_pct) {
                bail!("--link-loss-pct: expected 0..=100, got {}", args.link_loss_pct);
            }
            Some(NetworkLink {
                delay_ns: ms(delay, "--link-delay-ms")?,
                jitter_ns: ms(args.link_jitter_ms, "--link-jitter-ms")?,
                loss: args.link_loss_pct / 100.0,
                timeout_ns: ms(args.link_timeout_ms, "--link-timeout-ms")?,
            })
        }
    };
    let cfg = SimEvalConfig {
        loop_cfg,
        sim,
        episode_seconds: args.episode_seconds,
        latency_ns: (latency_ms * 1e6).round() as u64,
        link,
        fault: args.fault,
    };
    let compensate = args.latency_compensation == OnOff::On;
    let (mut report, stats) = if args.split {
        if args.dump_frames.is_some() {
            bail!("--dump-frames: not with --split (run without it to collect calibration frames)");
        }
        let tail = load_tail(&dir, args.key.as_deref(), args.allow_unsigned)?;
        evaluate_split(policy, tail, cfg, args.episodes, args.seed, compensate)?
    } else {
        evaluate(policy, cfg, args.episodes, args.seed, compensate, args.dump_frames.is_some())?
    };
    report.bundle = dir.display().to_string();
    if let Some(path) = &args.dump_frames {
        let s = lock(&stats);
        if let Some(dump) = &s.frames {
            write_frames(path, dump)?;
            eprintln!("wrote {} observations to {}", dump.instruction.len(), path.display());
        }
    }
    eprintln!(
        "{}: {} episodes on {} ({}), success {:.1} % ({}/{}), final error {:.2} cm mean / {:.2} cm median, \
         inference p50 {:.3} ms p99 {:.3} ms, seam jump p50 {:.4} p99 {:.4} rad, starved {} fallback {} ticks, \
         surprise max {:.3} (threshold {:?}), {:.1} s",
        report.policy,
        report.episodes,
        report.backend,
        report.execution_provider,
        report.success_rate * 100.0,
        report.successes,
        report.episodes,
        report.final_error_cm.mean,
        report.final_error_cm.median,
        report.inference_ms.p50,
        report.inference_ms.p99,
        report.seam_jump_rad.p50,
        report.seam_jump_rad.p99,
        report.starved_ticks,
        report.fallback_ticks,
        report.surprise.values.max,
        report.surprise.threshold,
        report.wall_s,
    );
    if let Some(path) = &args.report {
        ganglion::report::write_report(path, &report)?;
    }
    Ok(ExitCode::SUCCESS)
}
