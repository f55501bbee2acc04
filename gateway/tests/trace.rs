//! An HTTP request carrying a W3C `traceparent` is handled in a span of that trace, and the store requests the
//! gateway sends on the bus carry the same trace id.

use std::time::Duration;

use navarch_bus::{trace, Bus};
use navarch_gateway::GatewayConfig;
use opentelemetry::trace::TracerProvider as _;
use tracing_subscriber::layer::SubscriberExt;

const TRACE_ID: &str = "4bf92f3577b34da6a3ce929d0e0e4736";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_requests_continue_the_http_trace() -> anyhow::Result<()> {
    // reqwest has TLS without a provider of its own (tests/tls.rs); a client cannot be built before one is set.
    let _ = tokio_rustls::rustls::crypto::ring::default_provider().install_default();
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder().build();
    let subscriber = tracing_subscriber::registry()
        .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
    // The only test in this binary: the global subscriber is ours.
    tracing::subscriber::set_global_default(subscriber)?;

    let bus = Bus::embedded("trace").await?;
    let mut store_rpc = bus.subscribe(&bus.subjects().store_rpc()).await?;
    let gateway = navarch_gateway::start(
        bus,
        GatewayConfig {
            listen: "127.0.0.1:0".parse()?,
            authentication: navarch_gateway::auth::Authentication::default().with_token(
                "admin",
                "admin",
                &["system:masters"],
            ),
            ..Default::default()
        },
    )
    .await?;
    let url = format!("http://{}/api/v1/namespaces/default/pods", gateway.addr());
    // Nobody answers the store request: the point is what it carries, not the reply.
    let request = tokio::spawn(
        reqwest::Client::new()
            .get(url)
            .header("traceparent", format!("00-{TRACE_ID}-00f067aa0ba902b7-01"))
            .bearer_auth("admin")
            .send(),
    );
    let found = tokio::time::timeout(Duration::from_secs(10), async {
        // Bootstrap requests (their own traces) arrive too; wait for the one of our trace.
        while let Some(message) = store_rpc.next().await {
            if trace::trace_id(&message.headers).as_deref() == Some(TRACE_ID) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(
        found,
        Ok(true),
        "no store request carried the HTTP request's trace"
    );
    request.abort();
    gateway.shutdown().await?;
    Ok(())
}
