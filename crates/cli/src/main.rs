//! The `fedids` binary: flags, wiring, output and exit codes.
//!
//! It owns no domain logic: parsing lives in `fedids-data`, learning and metrics in
//! `fedids-forest`. This crate turns arguments into typed configurations, opens files, draws
//! progress, prints reports, and maps errors to one message and a non-zero exit code.

mod args;
mod commands;
mod ui;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let service = matches!(
        cli.command,
        args::Command::Coordinator(_) | args::Command::Site(_) | args::Command::Node(_)
    );
    ui::init_logging(cli.quiet, service);
    if let Some(n) = cli.threads {
        if n == 0 {
            eprintln!("error: --threads must be at least 1");
            return ExitCode::from(2);
        }
        if let Err(e) = rayon::ThreadPoolBuilder::new()
            .num_threads(n)
            .build_global()
        {
            eprintln!("error: cannot start {n} worker threads: {e}");
            return ExitCode::FAILURE;
        }
    }
    // A misspelt kernel choice is an error here, not a silent fall-back in every predictor.
    if let Err(e) = fedids_forest::Kernel::from_env() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    match commands::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            // A closed pipe (`fedids predict ... | head`) is not a failure.
            if err
                .chain()
                .filter_map(|e| e.downcast_ref::<std::io::Error>())
                .any(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
            {
                return ExitCode::SUCCESS;
            }
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
