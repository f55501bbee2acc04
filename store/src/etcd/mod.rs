//! The etcd v3 gRPC API of a store member, so `etcdctl` and other etcd clients work against Navarch unmodified.
//!
//! Each unary call becomes one [`StoreRequest`] answered by the member's own [`Service`]: the same entry point as
//! `store.rpc`, without a bus hop or an encoding round-trip, and with forwarding to the leader, linearizable reads
//! and request timeouts already handled there. The gRPC layer only translates. Watches are served from the member's
//! own change stream and history, as etcd serves them from its local store: exact progress notifications, no bus
//! subscription per watch.
//!
//! # Layout
//! - [`proto`]: etcd's messages and services, generated from `store/proto/`.
//! - [`convert`]: pure mapping between etcd's messages and the store protocol.
//! - [`errors`]: store errors as etcd's gRPC statuses.
//! - [`authority`]: makes etcd 3.4 clients' HTTP/2 `:authority` acceptable to the HTTP/2 server.
//! - `kv`, `watch`, `lease`, `cluster`, `maintenance`: one module per etcd service.

pub mod authority;
pub mod convert;
pub mod errors;
pub mod proto;

mod cluster;
mod kv;
mod lease;
mod maintenance;
mod watch;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;

use navarch_bus::store::{StoreRequest, StoreResponse, MAX_REQUEST_BYTES};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tonic::Status;

use crate::member::Service;
use convert::Stamp;
use proto::etcdserverpb::{
    cluster_server::ClusterServer, kv_server::KvServer, lease_server::LeaseServer,
    maintenance_server::MaintenanceServer, watch_server::WatchServer,
};

/// The version `etcdctl endpoint status` shows: the etcd API generation served, marked as Navarch's.
pub const VERSION: &str = "3.4.0-navarch";

/// Room etcd leaves in a gRPC message above `--max-request-bytes` (its `grpcOverheadBytes`), so a request slightly
/// over the limit reaches the size check and gets etcd's "request is too large" rather than a transport error.
const GRPC_OVERHEAD_BYTES: usize = 512 * 1024;

/// How a member serves the etcd API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdConfig {
    /// Address to serve on (port 0: any free port); `None`: the API is not served.
    pub listen: Option<SocketAddr>,
    /// How often a watcher that asked for progress notifications and saw no events gets one (etcd's
    /// `--experimental-watch-progress-notify-interval`).
    pub progress_notify_interval: Duration,
}

impl Default for EtcdConfig {
    /// Not served; progress notifications every 10 minutes (etcd's default).
    fn default() -> Self {
        Self {
            listen: None,
            progress_notify_interval: Duration::from_secs(600),
        }
    }
}

/// The client URL a member serving the etcd API on `address` advertises in member lists: `host:port`, which etcd
/// clients accept as an endpoint, rather than `http://host:port`. etcd 3.4's client dials a member URL it got from
/// a member list (`etcdctl endpoint status --cluster`) with the whole URL as the HTTP/2 `:authority`, which etcd's
/// gRPC server tolerates but the HTTP/2 server here refuses as malformed.
pub fn client_url(address: SocketAddr) -> String {
    address.to_string()
}

/// What every etcd service of a member shares.
pub(crate) struct Api {
    service: Arc<Service>,
    stamp: Stamp,
    /// The URL clients reach this member's etcd API at.
    client_url: String,
    progress_notify_interval: Duration,
}

impl Api {
    /// Answers `request` on this member (followers pass writes and linearizable reads to the leader).
    async fn call(&self, request: StoreRequest) -> Result<StoreResponse, Status> {
        self.service
            .execute(request, false)
            .await
            .map_err(errors::status)
    }

    /// Refuses a request larger than the member's `max_request_bytes`, with etcd's error.
    fn check_size(&self, message: &impl prost::Message) -> Result<(), Status> {
        if message.encoded_len() > self.service.max_request {
            return Err(errors::too_large());
        }
        Ok(())
    }
}

/// Matches a store answer's variant, or fails with an internal error naming what came back.
macro_rules! expect_answer {
    ($answer:expr, $variant:ident) => {
        match $answer {
            navarch_bus::store::StoreResponse::$variant(r) => Ok(r),
            other => Err(tonic::Status::internal(format!(
                "etcdserver: the store answered a {} request with {:.80}",
                stringify!($variant),
                format!("{other:?}")
            ))),
        }
    };
}
pub(crate) use expect_answer;

/// Serves the etcd API on `listener` until the task is aborted (the member's shutdown aborts it).
pub(crate) fn spawn(
    listener: TcpListener,
    address: SocketAddr,
    service: Arc<Service>,
    config: &EtcdConfig,
) -> JoinHandle<()> {
    let api = Arc::new(Api {
        stamp: Stamp {
            cluster_id: convert::cluster_id(service.bus.subjects().prefix()),
            member_id: service.id,
        },
        client_url: client_url(address),
        progress_notify_interval: config.progress_notify_interval,
        service,
    });
    // Large enough for anything an etcd client sends (etcdctl's own cap is 2 MiB), so oversized requests reach
    // the size check.
    let max_message = api
        .service
        .max_request
        .max(MAX_REQUEST_BYTES)
        .saturating_add(GRPC_OVERHEAD_BYTES);
    let router = tonic::transport::Server::builder()
        .add_service(
            KvServer::new(kv::KvService(api.clone())).max_decoding_message_size(max_message),
        )
        .add_service(
            WatchServer::new(watch::WatchService(api.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            LeaseServer::new(lease::LeaseService(api.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            ClusterServer::new(cluster::ClusterService(api.clone()))
                .max_decoding_message_size(max_message),
        )
        .add_service(
            MaintenanceServer::new(maintenance::MaintenanceService(api))
                .max_decoding_message_size(max_message),
        );
    let incoming = tonic::transport::server::TcpIncoming::from(listener)
        .with_nodelay(Some(true))
        .map(|accepted| accepted.map(authority::Normalized::new));
    let task = tokio::spawn(async move {
        // Bad connections and malformed requests end that connection or that call only; this returns only if
        // the listener itself fails.
        if let Err(e) = router.serve_with_incoming(incoming).await {
            tracing::error!(error = %e, %address, "etcd API server stopped");
        }
    });
    tracing::info!(%address, "serving the etcd v3 API");
    task
}
