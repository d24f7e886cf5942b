//! `ganglion top`: live view of a running instance.

use std::process::ExitCode;

/// Arguments of `ganglion top`.
#[derive(Debug, clap::Args)]
pub struct TopArgs {}

/// Runs `ganglion top`.
pub fn run(_args: TopArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("ganglion top is not built yet")
}
