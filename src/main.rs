//! The `navarch` binary: parses the command line, sets up logging and tracing, and runs the chosen role(s).
//!
//! # Layout
//! - `cli`: the command line.
//! - `run`: wiring roles to a bus, and their orderly shutdown on Ctrl-C or SIGTERM.
//! - `store_tools`: `navarch store member|get|status`, tools for a running store cluster.
//! - `secrets_tools`: `navarch secrets reencrypt`, rewriting every Secret under the current encryption key.
//! - `kubeconfig`: the kubeconfig written for kubectl.
//! - `credentials`: the API's token file (with `navarch up`'s admin token) and service-account signing key.
//! - `telemetry`: logs and the OpenTelemetry tracer.

mod cli;
mod credentials;
mod kubeconfig;
mod run;
mod secrets_tools;
mod store_tools;
mod telemetry;

use clap::Parser;

/// mimalloc rather than glibc's malloc: the store allocates and frees many small buffers per write, where glibc
/// spent a fifth of a member's CPU and kept freed memory in fragmented arenas (see `docs/benchmarks.md`).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    // One process-wide rustls provider: reqwest is built without its own (it would be aws-lc-rs), and async-nats
    // panics on a TLS connect when it cannot tell which provider to use (STACK.md, "Two rustls crypto providers").
    let _ = rustls::crypto::ring::default_provider().install_default();
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
            eprintln!("navarch: error: {}", one_line(&e));
            std::process::ExitCode::FAILURE
        }
    }
}

/// The error and its causes on one line, skipping a cause its parent's message already quotes (many error types
/// both print their source and expose it as `source()`).
fn one_line(error: &anyhow::Error) -> String {
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace('\n', " ")
}
