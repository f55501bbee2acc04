//! The HTTP server: the router, the per-request tracing span, and starting and stopping (plain or over TLS).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, RawQuery, Request};
use axum::http::{header, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use navarch_bus::api::Objects;
use navarch_bus::store::StoreClient;
use navarch_bus::Bus;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tracing::Instrument;

use crate::auth::{middleware as auth_check, reviews, AuthCache};
use crate::config::{ConfigError, GatewayConfig};
use crate::discovery::{self, aggregated, openapi};
use crate::error::{Error, Result};
use crate::limit::{retry_after_seconds, RateLimiter};
use crate::status::{self, method_not_allowed, path_not_found, Failure};
use crate::tls::TlsListener;
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
    /// Per-client request budget, when limited.
    pub limiter: Option<Arc<RateLimiter>>,
    /// The RBAC objects and service accounts, kept in memory for authorization.
    pub auth_cache: AuthCache,
    /// One store watch per kind, shared by every watch request.
    pub watch_cache: crate::watch::WatchCache,
    /// Turns true once the default namespaces and RBAC objects exist.
    pub bootstrapped: Arc<std::sync::atomic::AtomicBool>,
}

/// A running gateway. Dropping it leaves the server running until the runtime stops; call
/// [`RunningGateway::shutdown`] to stop it gracefully.
#[derive(Debug)]
pub struct RunningGateway {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    server: JoinHandle<()>,
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
            Ok(Ok(())) => Ok(()),
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

/// Starts the gateway on `bus`: binds `config.listen`, serves (HTTPS when `config.tls` is set, HTTP/1.1 and
/// HTTP/2) in the background, and makes sure the built-in namespaces exist (retrying in the background until the store answers).
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
    let tls = config
        .tls
        .as_ref()
        .map(|tls| tls.server_config())
        .transpose()
        .map_err(|e| ConfigError::Tls(e.to_string()))?;
    let server_tls = tls.is_some();
    let (stop, shutdown) = watch::channel(false);
    let objects = Objects::new(StoreClient::new(bus))
        .with_encryption(config.encryption.clone())
        .with_service_cidr(config.service_cidr);
    let gateway = Gateway {
        auth_cache: AuthCache::start(objects.clone(), shutdown.clone()),
        watch_cache: crate::watch::WatchCache::new(objects.clone(), shutdown.clone()),
        bootstrapped: Arc::default(),
        objects,
        limiter: config
            .rate_limit
            .map(|limit| Arc::new(RateLimiter::new(limit))),
        config: Arc::new(config),
        shutdown: shutdown.clone(),
    };
    let bootstrap = tokio::spawn(bootstrap::ensure_defaults(
        gateway.objects.clone(),
        addr,
        gateway.config.bootstrap_retry,
        shutdown.clone(),
        gateway.bootstrapped.clone(),
    ));
    tokio::spawn(repair_addresses(
        gateway.objects.clone(),
        gateway.config.address_repair_interval,
        shutdown.clone(),
    ));
    let app = router(gateway);
    let mut signal = shutdown;
    let stopped = async move {
        let _ = signal.wait_for(|stop| *stop).await;
    };
    let server = match tls {
        None => tokio::spawn(crate::serve::serve(listener, app, stopped)),
        Some(tls) => {
            let listener = TlsListener::new(listener, tls).map_err(Error::Serve)?;
            tokio::spawn(crate::serve::serve(listener, app, stopped))
        }
    };
    tracing::info!(%addr, tls = server_tls, "gateway listening");
    Ok(RunningGateway {
        addr,
        stop,
        server,
        bootstrap,
    })
}

/// Removes the keys of Service addresses no longer held, every `interval` until `shutdown`, as kube-apiserver's
/// repair loops do (allocation takes such keys over anyway; this keeps them from piling up in the store).
async fn repair_addresses(
    objects: Objects,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
        if let Err(e) = objects.release_unheld().await {
            tracing::debug!(error = %e, "cannot repair service addresses now; next time");
        }
    }
}

/// Every route. Resource paths and per-group discovery go to [`handlers::dispatch`].
pub(crate) fn router(gateway: Gateway) -> Router {
    Router::new()
        // kube-apiserver answers these with and without a trailing slash; client libraries use both (the Python
        // client asks `/version/`).
        .route(
            "/version",
            get(|| async { status::json(StatusCode::OK, &discovery::version()) }),
        )
        .route(
            "/version/",
            get(|| async { status::json(StatusCode::OK, &discovery::version()) }),
        )
        .route("/api", get(api_root))
        .route("/api/", get(api_root))
        .route("/apis", get(apis_root))
        .route("/apis/", get(apis_root))
        .route("/openapi/v3", get(openapi_root))
        .route("/openapi/v3/{*gv}", get(openapi_group_version))
        .route("/openapi/v2", get(openapi_v2))
        .route("/livez", get(health::livez))
        .route("/healthz", get(health::livez))
        .route("/readyz", get(health::readyz))
        .route(
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            post(reviews::self_subject),
        )
        .route(
            "/apis/authentication.k8s.io/v1/tokenreviews",
            post(reviews::token),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
            post(reviews::self_subject_access),
        )
        .route(
            "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
            post(reviews::self_subject_rules),
        )
        .route(
            "/apis/authorization.k8s.io/v1/subjectaccessreviews",
            post(reviews::subject_access),
        )
        .route(
            "/apis/authorization.k8s.io/v1/namespaces/{namespace}/localsubjectaccessreviews",
            post(reviews::local_subject_access),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/pods",
            get(handlers::metrics::all_pods),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods",
            get(handlers::metrics::namespace_pods),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/namespaces/{namespace}/pods/{name}",
            get(handlers::metrics::one_pod),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/nodes",
            get(handlers::metrics::all_nodes),
        )
        .route(
            "/apis/metrics.k8s.io/v1beta1/nodes/{name}",
            get(handlers::metrics::one_node),
        )
        .route(
            "/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers",
            get(handlers::hpa_v1::list).post(handlers::hpa_v1::create),
        )
        .route(
            "/apis/autoscaling/v1/namespaces/{namespace}/horizontalpodautoscalers/{name}",
            get(handlers::hpa_v1::get),
        )
        .fallback(handlers::dispatch)
        .method_not_allowed_fallback(|method: Method, uri: Uri| async move {
            Failure(method_not_allowed(method.as_str(), uri.path()))
        })
        // Layers run bottom-up: the rate limit first (a flood of bad tokens is limited too), then who and may they.
        .layer(middleware::from_fn_with_state(
            gateway.clone(),
            auth_check::check,
        ))
        .layer(middleware::from_fn_with_state(gateway.clone(), rate_limit))
        .layer(middleware::from_fn(trace))
        // Defense in depth: a bug that panics in a handler answers 500 with a Status instead of dropping the
        // connection (and is logged), rather than taking the request's task down silently.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_status,
        ))
        .with_state(gateway)
}

/// Refuses a request with 429 when its client has used up its budget. Health probes are never limited, and a
/// request without a peer address (served in-process, as in unit tests) is not either.
async fn rate_limit(
    axum::extract::State(gateway): axum::extract::State<Gateway>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    let probe = matches!(path, "/livez" | "/healthz" | "/readyz");
    let peer = request
        .extensions()
        .get::<axum::extract::ConnectInfo<SocketAddr>>()
        .map(|info| info.0.ip().to_string());
    if let (Some(limiter), Some(peer), false) = (&gateway.limiter, peer, probe) {
        if let Err(wait) = limiter.admit(&peer, tokio::time::Instant::now()) {
            let seconds = retry_after_seconds(wait);
            let mut response =
                Failure(navarch_bus::api::ApiError::too_many_requests(seconds)).into_response();
            response.headers_mut().insert(
                axum::http::header::RETRY_AFTER,
                axum::http::HeaderValue::from(seconds),
            );
            return response;
        }
    }
    next.run(request).await
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

/// `/api`: aggregated discovery when asked for, else the legacy version list.
async fn api_root(headers: axum::http::HeaderMap) -> Response {
    discovery_root(&headers, aggregated::core, discovery::core_versions)
}

/// `/apis`: aggregated discovery when asked for, else the legacy group list.
async fn apis_root(headers: axum::http::HeaderMap) -> Response {
    discovery_root(&headers, aggregated::groups, discovery::groups)
}

fn discovery_root(
    headers: &axum::http::HeaderMap,
    aggregated: fn() -> serde_json::Value,
    legacy: fn() -> serde_json::Value,
) -> Response {
    let vary = (axum::http::header::VARY, "Accept");
    if aggregated::wanted(headers) {
        let body = serde_json::to_vec(&aggregated()).unwrap_or_default();
        (
            StatusCode::OK,
            [
                (axum::http::header::CONTENT_TYPE, aggregated::CONTENT_TYPE),
                vary,
            ],
            body,
        )
            .into_response()
    } else {
        let mut response = status::json(StatusCode::OK, &legacy());
        response
            .headers_mut()
            .insert(vary.0, axum::http::HeaderValue::from_static(vary.1));
        response
    }
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

async fn openapi_root() -> Response {
    (
        [(header::CONTENT_TYPE, HeaderValue::from_static(status::JSON))],
        openapi::root(),
    )
        .into_response()
}

/// A group version's document. As kube-apiserver does, a request naming the current `?hash=` may be cached for
/// good (the URL changes with the content), and `If-None-Match` with the current `ETag` gets 304.
async fn openapi_group_version(
    Path(gv): Path<String>,
    RawQuery(query): RawQuery,
    headers: axum::http::HeaderMap,
) -> Response {
    let Some(doc) = openapi::group_version(&gv) else {
        return Failure(path_not_found()).into_response();
    };
    let etag = format!("\"{}\"", doc.hash);
    let mut response = if headers
        .get(header::IF_NONE_MATCH)
        .is_some_and(|v| v.as_bytes() == etag.as_bytes())
    {
        StatusCode::NOT_MODIFIED.into_response()
    } else {
        (
            [(header::CONTENT_TYPE, HeaderValue::from_static(status::JSON))],
            doc.body.clone(),
        )
            .into_response()
    };
    let h = response.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&etag) {
        h.insert(header::ETAG, v);
    }
    let current = form_urlencoded::parse(query.unwrap_or_default().as_bytes())
        .any(|(k, v)| k == "hash" && v == doc.hash.as_str());
    let cache = if current {
        "public, immutable"
    } else {
        "no-cache, private"
    };
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    response
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
