//! `ganglion sim serve`: the simulated arm as an external process.

use std::process::ExitCode;

/// Arguments of `ganglion sim serve`.
#[derive(Debug, clap::Args)]
pub struct ServeArgs {}

/// Runs `ganglion sim serve`.
pub fn run(_args: ServeArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("ganglion sim serve is not built yet")
}
