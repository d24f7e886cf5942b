//! `ganglion run`: the deployed main job.

use std::process::ExitCode;

/// Arguments of `ganglion run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {}

/// Runs `ganglion run`.
pub fn run(_args: RunArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("ganglion run is not built yet")
}
