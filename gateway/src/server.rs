//! The HTTP server: the router, the per-request tracing span, and starting and stopping.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Request};
use axum::http::{Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use navarch_bus::api::Objects;
use navarch_bus::store::StoreClient;
use navarch_bus::Bus;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::config::GatewayConfig;
use crate::discovery::{self, openapi};
use crate::error::{Error, Result};
use crate::status::{self, method_not_allowed, path_not_found, Failure};
use crate::{bootstrap, handlers, health, request};

/// How long a graceful shutdown waits for requests in flight before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// What every handler shares. Cheap to clone.
#[derive(Clone)]
pub(crate) struct Gateway {
    /// API objects in the store, through the bus.
    pub objects: Objects,
    /// The configuration.
    pub config: Arc<GatewayConfig>,
    /// Turns true when the gateway stops; long requests (watches) end then.
    pub shutdown: watch::Receiver<bool>,
}

/// A running gateway. Dropping it leaves the server running until the runtime stops; call
/// [`RunningGateway::shutdown`] to stop it gracefully.
#[derive(Debug)]
pub struct RunningGateway {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<std::io::Result<()>>,
    bootstrap: JoinHandle<()>,
}

impl RunningGateway {
    /// The address the gateway listens on (the real port when the configuration asked for port 0).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting connections, ends open watches, waits up to 10 s for requests in flight, and returns once
    /// the server has stopped. An error tells the server had failed before.
    pub async fn shutdown(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.bootstrap.abort();
        let mut server = self.server;
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut server).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(e))) => Err(Error::Serve(e)),
            Ok(Err(join)) => Err(Error::Serve(std::io::Error::other(join))),
            Err(_) => {
                tracing::warn!(
                    "requests still running after the shutdown grace period; dropping them"
                );
                server.abort();
                Ok(())
            }
        }
    }
}

/// Starts the gateway on `bus`: binds `config.listen`, serves in the background, and makes sure the built-in
/// namespaces exist (retrying in the background until the store answers).
pub async fn start(bus: Bus, config: GatewayConfig) -> Result<RunningGateway> {
    config.validate()?;
    let listener = tokio::net::TcpListener::bind(config.listen)
        .await
        .map_err(|source| Error::Bind {
            addr: config.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| Error::Bind {
        addr: config.listen,
        source,
    })?;
    let (stop, shutdown) = watch::channel(false);
    let gateway = Gateway {
        objects: Objects::new(StoreClient::new(bus)).with_encryption(config.encryption.clone()),
        config: Arc::new(config),
        shutdown: shutdown.clone(),
    };
    let bootstrap = tokio::spawn(bootstrap::ensure_namespaces(
        gateway.objects.clone(),
        gateway.config.bootstrap_retry,
        shutdown.clone(),
    ));
    let app = router(gateway);
    let mut signal = shutdown;
    let server = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = signal.wait_for(|stop| *stop).await;
            })
            .await
    });
    tracing::info!(%addr, "gateway listening");
    Ok(RunningGateway {
        addr,
        stop,
        server,
        bootstrap,
    })
}

/// Every route. Resource paths and per-group discovery go to [`handlers::dispatch`].
pub(crate) fn router(gateway: Gateway) -> Router {
    Router::new()
        .route(
            "/version",
            get(|| async { status::json(StatusCode::OK, &discovery::version()) }),
        )
        .route(
            "/api",
            get(|| async { status::json(StatusCode::OK, &discovery::core_versions()) }),
        )
        .route(
            "/apis",
            get(|| async { status::json(StatusCode::OK, &discovery::groups()) }),
        )
        .route(
            "/openapi/v3",
            get(|| async { status::json(StatusCode::OK, &openapi::root()) }),
        )
        .route("/openapi/v3/{*gv}", get(openapi_group_version))
        .route("/openapi/v2", get(openapi_v2))
        .route("/livez", get(health::livez))
        .route("/healthz", get(health::livez))
        .route("/readyz", get(health::readyz))
        .fallback(handlers::dispatch)
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            Failure(method_not_allowed(method.as_str(), uri.path()))
        })
        .layer(middleware::from_fn(trace))
        // Defense in depth: a bug that panics in a handler answers 500 with a Status instead of dropping the
        // connection (and is logged), rather than taking the request's task down silently.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_status,
        ))
        .with_state(gateway)
}

fn panic_status(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = panic
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| panic.downcast_ref::<&str>().copied())
        .unwrap_or("a panic");
    tracing::error!(panic = what, "request handler panicked");
    Failure(navarch_bus::api::ApiError::internal(format!(
        "the gateway failed on this request: {what}"
    )))
    .into_response()
}

async fn openapi_v2(headers: axum::http::HeaderMap) -> Response {
    let accept = headers
        .get(axum::http::header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if accept.contains("protobuf") {
        (
            [(axum::http::header::CONTENT_TYPE, openapi::V2_PROTOBUF)],
            openapi::v2_protobuf(),
        )
            .into_response()
    } else {
        status::json(StatusCode::OK, &openapi::v2_json())
    }
}

async fn openapi_group_version(Path(gv): Path<String>) -> Response {
    match openapi::group_version(&gv) {
        Some(doc) => status::json(StatusCode::OK, &doc),
        None => Failure(path_not_found()).into_response(),
    }
}

/// The low-cardinality route of a path, for span names: `/api/v1/namespaces/{namespace}/pods/{name}`.
fn route_of(path: &str) -> String {
    match request::parse_resource_path(path) {
        Some(Ok(p)) => {
            let mut route = if p.info.group.is_empty() {
                format!("/api/{}", p.info.version)
            } else {
                format!("/apis/{}/{}", p.info.group, p.info.version)
            };
            if p.namespace.is_some() {
                route.push_str("/namespaces/{namespace}");
            }
            route.push('/');
            route.push_str(p.info.plural);
            if p.name.is_some() {
                route.push_str("/{name}");
            }
            if let Some(sub) = p.subresource {
                route.push('/');
                route.push_str(&sub);
            }
            route
        }
        Some(Err(_)) => "/{unknown}".into(),
        None => path.to_string(),
    }
}

/// Runs each request in a span named like OpenTelemetry's HTTP server spans, continuing the caller's trace
/// (`traceparent`); bus messages sent while handling carry the same trace.
async fn trace(request: Request, next: Next) -> Response {
    let method = request.method().clone();
    let path = request.uri().path().to_string();
    let span = tracing::info_span!(
        "http.server.request",
        otel.name = %format!("{method} {}", route_of(&path)),
        otel.kind = "server",
        http.request.method = %method,
        url.path = %path,
        http.response.status_code = tracing::field::Empty,
    );
    let mut headers = navarch_bus::Headers::new();
    for name in ["traceparent", "tracestate"] {
        if let Some(value) = request.headers().get(name).and_then(|v| v.to_str().ok()) {
            headers.insert(name, value);
        }
    }
    navarch_bus::trace::continue_from(&headers, &span);
    let response = next.run(request).instrument(span.clone()).await;
    span.record("http.response.status_code", response.status().as_u16());
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes_are_templates() {
        assert_eq!(
            route_of("/api/v1/namespaces/demo/pods/p1"),
            "/api/v1/namespaces/{namespace}/pods/{name}"
        );
        assert_eq!(
            route_of("/apis/apps/v1/namespaces/d/deployments/w/scale"),
            "/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"
        );
        assert_eq!(route_of("/api/v1/nodes"), "/api/v1/nodes");
        assert_eq!(route_of("/version"), "/version");
        assert_eq!(route_of("/api/v1/widgets/x"), "/{unknown}");
    }
}
