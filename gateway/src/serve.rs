//! The API port's connection loop: the router on hyper's HTTP/1.1 and HTTP/2 server, allowing kube-apiserver's
//! 1,000 concurrent streams per HTTP/2 connection. `axum::serve` keeps hyper's default of 200, so a client that
//! multiplexes more watches over one connection (client-go shares one connection per host) would have them wait.
//!
//! Shutdown is graceful, as with `axum::serve`: once `stopped` completes no connection is accepted, each open one
//! is asked to finish (HTTP/2 GOAWAY, HTTP/1.1 close after the response in flight), and `serve` returns when all
//! have ended.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::pin;

use axum::extract::connect_info::ConnectInfo;
use axum::extract::Request;
use axum::Router;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::sync::watch;
use tower::ServiceExt as _;

/// Concurrent streams one HTTP/2 connection may carry (kube-apiserver's `--http2-max-streams-per-connection`
/// default).
pub const MAX_STREAMS_PER_CONNECTION: u32 = 1000;

/// Serves `router` on every connection `listener` hands out until `stopped` completes, then waits for the open
/// connections to finish. Each request carries its peer's address as [`ConnectInfo`] (the rate limiter reads it).
pub(crate) async fn serve<L>(mut listener: L, router: Router, stopped: impl Future<Output = ()>)
where
    L: axum::serve::Listener<Addr = SocketAddr>,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http2()
        .max_concurrent_streams(MAX_STREAMS_PER_CONNECTION)
        .enable_connect_protocol();
    // Connections hold a receiver each: `closing` tells them to finish, and its sender sees when all are gone.
    let (closing, connections) = watch::channel(false);
    let mut stopped = pin!(stopped);
    loop {
        let (io, peer) = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut stopped => break,
        };
        let router = router.clone();
        let service =
            TowerToHyperService::new(router.map_request(move |request: Request<Incoming>| {
                let mut request = request.map(axum::body::Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            }));
        let (builder, mut closing) = (builder.clone(), connections.clone());
        tokio::spawn(async move {
            let mut connection =
                pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
            let mut asked = false;
            loop {
                tokio::select! {
                    result = connection.as_mut() => {
                        if let Err(error) = result {
                            tracing::trace!(%peer, %error, "connection ended with an error");
                        }
                        break;
                    }
                    _ = closing.wait_for(|closing| *closing), if !asked => {
                        asked = true;
                        connection.as_mut().graceful_shutdown();
                    }
                }
            }
            // `closing` drops here: the server's wait for its connections counts this one as ended.
        });
    }
    drop(listener);
    drop(connections);
    let _ = closing.send(true);
    closing.closed().await;
}
