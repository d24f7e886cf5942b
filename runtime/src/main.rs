//! `ganglion`: the command-line entry point. Each subcommand lives in
//! `ganglion::cli::<name>`.

use clap::Parser;

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
