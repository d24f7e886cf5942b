//! `ganglion`: the command-line entry point. Each subcommand lives in
//! `ganglion::cli::<name>`.

use clap::Parser;

// Counts allocations so `ganglion bench loop` can prove a tick allocates nothing.
#[global_allocator]
static ALLOC: ganglion::control::alloc_count::CountingAlloc = ganglion::control::alloc_count::CountingAlloc;

fn main() -> std::process::ExitCode {
    ganglion::cli::init_tracing();
    let cli = ganglion::cli::Cli::parse();
    match ganglion::cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
