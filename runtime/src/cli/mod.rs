//! The `ganglion` command, private to the binary: one module per
//! subcommand, each parsing its arguments, calling the library (`ganglion`)
//! and printing. Domain logic belongs in the library, not here.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub mod bench;
pub mod bench_transport;
pub mod calibrate;
pub mod check;
pub mod demo;
pub mod eval;
pub mod log_noise;
pub mod policy;
pub mod replay;
pub mod run;
pub mod serve;
pub mod sim;
pub mod sim_serve;
#[cfg(feature = "tui")]
pub mod top;

/// Onboard runtime for learned robot policies.
#[derive(Debug, Parser)]
#[command(name = "ganglion", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Embedded default: simulated arm + reference policy on tract, real clock.
    Demo(demo::DemoArgs),
    /// The deployed main job: run the loop against a robot profile.
    Run(run::RunArgs),
    /// Closed-loop success of a bundle on the simulated arm.
    Eval(eval::EvalArgs),
    /// Measure loop overhead and jitter, policy inference, transports.
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Policy bundles: inspect, verify, sign, keygen, bench, build-engine.
    #[command(subcommand)]
    Policy(policy::PolicyCommand),
    /// The simulated arm: record datasets, serve it as an external process.
    #[command(subcommand)]
    Sim(sim::SimCommand),
    /// Re-run a recording; --check for bit-exact decisions.
    Replay(replay::ReplayArgs),
    /// Real-time readiness of this machine.
    Check(check::CheckArgs),
    /// Calibrate a follower arm as LeRobot's `lerobot-calibrate` does (same file).
    Calibrate(calibrate::CalibrateArgs),
    /// Serve a policy bundle to robots over zenoh (`[policy.remote]`).
    Serve(serve::ServeArgs),
    /// Live view of a running instance.
    #[cfg(feature = "tui")]
    Top(top::TopArgs),
    /// Live view of a running instance (not in this build: the `tui` feature).
    #[cfg(not(feature = "tui"))]
    Top {
        /// Ignored.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, hide = true)]
        args: Vec<String>,
    },
}

/// Runs the chosen subcommand; the exit code says pass/fail where the
/// subcommand checks something.
pub fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Demo(a) => demo::run(a),
        Command::Run(a) => run::run(a),
        Command::Eval(a) => eval::run(a),
        Command::Bench(c) => bench::run(c),
        Command::Policy(c) => policy::run(c),
        Command::Sim(c) => sim::run(c),
        Command::Replay(a) => replay::run(a),
        Command::Check(a) => check::run(a),
        Command::Calibrate(a) => calibrate::run(a),
        Command::Serve(a) => serve::run(a),
        #[cfg(feature = "tui")]
        Command::Top(a) => top::run(a),
        #[cfg(not(feature = "tui"))]
        Command::Top { .. } => {
            anyhow::bail!(
                "this build of ganglion has no `top` (built without the `tui` feature): rebuild with default features"
            )
        }
    }
}

/// Logs go to stderr through `tracing`; `RUST_LOG` filters (default
/// `info`, with RustDDS at `error`: at `info` it warns ~80 times a second
/// about its own participant's loopback locators and every large sample,
/// burying everything else; drivers/ros2/README.md; ros2-client at `warn`:
/// at `info` it announces every topic it creates).
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,rustdds=error,ros2_client=warn"));
    // Known harmless lines of dependencies are dropped by message (log_noise).
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(log_noise::DropKnownNoise)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .try_init();
}
