//! The `navarch` binary: parses the command line, sets up logging and tracing, and runs the chosen role(s).
//!
//! # Layout
//! - `cli`: the command line.
//! - `run`: wiring roles to a bus, and their orderly shutdown on Ctrl-C or SIGTERM.
//! - `kubeconfig`: the kubeconfig written for kubectl.
//! - `telemetry`: logs and the OpenTelemetry tracer.

mod cli;
mod kubeconfig;
mod run;
mod telemetry;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    let system = actix::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime")
    });
    let result = system.block_on(async move {
        let _tracer = telemetry::init();
        run::run(cli.command).await
    });
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("navarch: error: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
