//! `ganglion sim`: the simulated arm as a data source (`record`) and as an
//! external process behind a real transport (`serve`).

use std::process::ExitCode;

/// Subcommands of `ganglion sim`.
#[derive(Debug, clap::Subcommand)]
pub enum SimCommand {
    /// Run the scripted expert and write a training dataset.
    Record(RecordArgs),
    /// Run the simulated arm as a separate process over zenoh or ROS 2.
    Serve(super::sim_serve::ServeArgs),
}

/// Arguments of `ganglion sim record`.
#[derive(Debug, clap::Args)]
pub struct RecordArgs {}

/// Runs `ganglion sim`.
pub fn run(cmd: SimCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SimCommand::Record(_) => anyhow::bail!("ganglion sim record is not built yet"),
        SimCommand::Serve(a) => super::sim_serve::run(a),
    }
}
