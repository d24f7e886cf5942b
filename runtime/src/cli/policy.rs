//! `ganglion policy`: policy bundle tools.

use std::process::ExitCode;

/// Subcommands of `ganglion policy`.
#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {}

/// Runs `ganglion policy`.
pub fn run(cmd: PolicyCommand) -> anyhow::Result<ExitCode> {
    match cmd {}
}
