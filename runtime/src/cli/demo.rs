//! `ganglion demo`: the embedded demo.

use std::process::ExitCode;

/// Arguments of `ganglion demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {}

/// Runs `ganglion demo`.
pub fn run(_args: DemoArgs) -> anyhow::Result<ExitCode> {
    anyhow::bail!("ganglion demo is not built yet")
}
