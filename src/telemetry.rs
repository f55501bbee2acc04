//! Logging and tracing: human-readable logs on stderr, and an OpenTelemetry tracer so every span has a trace id
//! that the bus carries in message headers. (Exporting spans over OTLP is a later issue.)

use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` overrides the default level (info for Navarch, warn for the rest).
pub fn init() -> opentelemetry_sdk::trace::SdkTracerProvider {
    const DEFAULT: &str =
        "warn,navarch=info,navarch_bus=info,navarch_store=info,navarch_gateway=info,navarch_actors=info";
    let directives = std::env::var("RUST_LOG")
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT.to_string());
    let filter = EnvFilter::try_new(&directives).unwrap_or_else(|e| {
        eprintln!("navarch: ignoring RUST_LOG={directives:?}: {e}");
        EnvFilter::new(DEFAULT)
    });
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let tracer = provider.tracer("navarch");
    tracing_subscriber::registry()
        .with(filter)
        .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
        .with(tracing_opentelemetry::layer().with_tracer(tracer))
        .init();
    provider
}
