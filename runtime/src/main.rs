//! `ganglion`: the command-line entry point. Each subcommand is a private
//! module under `cli/` that parses, calls the `ganglion` library, prints.

use clap::Parser;

mod cli;

// Counts allocations so `ganglion bench loop` can prove a tick allocates nothing.
#[global_allocator]
static ALLOC: ganglion::control::alloc_count::CountingAlloc = ganglion::control::alloc_count::CountingAlloc;

fn main() -> std::process::ExitCode {
    cli::init_tracing();
    let cli = cli::Cli::parse();
    match cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
