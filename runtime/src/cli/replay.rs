//! `ganglion replay`: re-run a recording.

use std::process::ExitCode;

/// Arguments of `ganglion replay`.
#[derive(Debug, clap::Args)]
pub struct ReplayArgs {}

/// Runs `ganglion replay`.
pub fn run(_args: ReplayArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("ganglion replay is not built yet")
}
