//! `ganglion check`: real-time readiness of this machine.

use std::process::ExitCode;

/// Arguments of `ganglion check`.
#[derive(Debug, clap::Args)]
pub struct CheckArgs {}

/// Runs `ganglion check`.
pub fn run(_args: CheckArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("ganglion check is not built yet")
}
