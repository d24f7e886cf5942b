//! `ganglion bench`: benchmarks.

use std::process::ExitCode;

/// Subcommands of `ganglion bench`.
#[derive(Debug, clap::Subcommand)]
pub enum BenchCommand {}

/// Runs `ganglion bench`.
pub fn run(cmd: BenchCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
