//! `ganglion eval`: closed-loop evaluation of a bundle.

use std::process::ExitCode;

/// Arguments of `ganglion eval`.
#[derive(Debug, clap::Args)]
pub struct EvalArgs {}

/// Runs `ganglion eval`.
pub fn run(_args: EvalArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("ganglion eval is not built yet")
}
