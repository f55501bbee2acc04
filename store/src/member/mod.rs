//! [`StoreMember`]: the actor that runs one store member: it owns the Raft handle and the tasks that serve the bus.
//!
//! # Messages
//! Accepts [`Shutdown`], [`Execute`] (a [`StoreRequest`] answered by this member), [`GetMetrics`],
//! [`UntilRemoved`] and [`EtcdAddress`].
//!
//! # Subjects
//! - answers `store.rpc` in queue group `store` (one [`StoreReply`] per [`StoreRequest`]) once it is in the
//!   cluster's membership (a member joining an existing cluster waits until the leader has added it);
//! - answers and sends Raft messages on `store.raft.<id>` (see [`crate::network`]);
//! - publishes [`StreamMessage`](navarch_bus::store::StreamMessage)s on `store.events.<stream>` while leader;
//! - while leader, proposes the revoke of every expired lease and automatic compactions (see `duties`);
//! - serves the etcd v3 gRPC API (see [`crate::etcd`]) when configured to.
//!
//! # Layout
//! - `service`: answers one request (reads, writes, forwarding); `reads`: ReadIndex on followers; `lease`:
//!   leases, alarms and the quota check;
//! - `membership`: the pure core of membership changes; `cluster`: runs them on the leader;
//! - `serving`: the `store.rpc` queue group and what peers ask beyond Raft; `removal`: how a removed member
//!   stops; `publish`: the change streams; `duties`: the leader's duties.

mod cluster;
mod duties;
mod lease;
mod membership;
mod proposer;
mod publish;
mod reads;
mod removal;
mod service;
mod serving;

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use actix::prelude::*;
use navarch_bus::store::{StoreReply, StoreRequest};
use navarch_bus::Bus;
use openraft::error::{InitializeError, RaftError};
use tokio::net::TcpListener;
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

pub use publish::Published;
pub use removal::UntilRemoved;
pub use service::Service;

use crate::config::{ConfigError, StoreConfig, ENVELOPE_HEADROOM};
use crate::network::{self, Network};
use crate::storage::{self, LogStore, Notice, StateMachine, Storage};
use crate::types::{default_name, Node, NodeId, Raft};
use cluster::Cluster;

/// Queue group of the store members on `store.rpc`: each request reaches one member.
pub const QUEUE_GROUP: &str = "store";

/// Applied changes kept for local watchers that fall behind; past this they reread history. Small, because each
/// entry may hold values up to the request limit.
const CHANGES_BACKLOG: usize = 128;

/// Why a member could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is unusable. Not retryable.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The data directory could not be opened, read or synced. Retryable only for [`storage::Error::Locked`].
    #[error(transparent)]
    Storage(#[from] storage::Error),
    /// Subscribing on the bus failed. Retryable when the bus error is.
    #[error(transparent)]
    Bus(#[from] navarch_bus::Error),
    /// openraft failed to start, initialize or stop the member (storage failure underneath). Not retryable.
    #[error("raft: {0}")]
    Raft(String),
    /// The etcd API's address could not be bound. Retryable once the address is free.
    #[error("cannot serve the etcd API on {address}: {source}")]
    EtcdListen {
        /// The address.
        address: SocketAddr,
        /// Why binding failed.
        #[source]
        source: std::io::Error,
    },
}

/// Result of starting or stopping a member.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One running store member. Start it with [`StoreMember::start`]; stop it with [`Shutdown`].
pub struct StoreMember {
    service: Arc<Service>,
    tasks: Vec<JoinHandle<()>>,
    /// Turns true once the member, removed from the cluster, has stopped serving.
    left: watch::Receiver<bool>,
    /// Where the etcd API is served, if it is.
    etcd_address: Option<SocketAddr>,
}

impl Actor for StoreMember {
    type Context = Context<Self>;

    fn stopped(&mut self, _: &mut Self::Context) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl StoreMember {
    /// Opens the data directory, starts Raft (initializing a fresh cluster of `config.members` on the very first
    /// start only, when `config.bootstrap`), and starts serving `store.rpc`, this member's Raft subject and the change streams. Must run
    /// inside an actix system.
    pub async fn start(bus: Bus, config: StoreConfig) -> Result<Addr<StoreMember>> {
        config.validate()?;
        if config.snapshot_chunk_bytes > bus.max_payload().saturating_sub(ENVELOPE_HEADROOM) {
            return Err(ConfigError::Invalid {
                field: "snapshot_chunk_bytes",
                reason: "a chunk must fit one bus message",
            }
            .into());
        }
        let storage = Storage::open(&config.data_dir).await?;
        let unreadable = |e: crate::mvcc::Error| storage::Error::Corrupt {
            what: "state machine",
            reason: e.to_string(),
        };
        let view = storage.reader();
        let published = Published {
            revision: view.state().map_err(unreadable)?.revisions.current,
            streams: view.streams().map_err(unreadable)?.into_iter().collect(),
        };
        drop(view);
        // Unbounded so applying never waits for the bus; the backlog is what the bus lags behind the disk.
        let (notices, notices_rx) = mpsc::unbounded_channel();
        let removed = Arc::new(watch::channel(false).0);
        let raft = Raft::new(
            config.id,
            Arc::new(config.raft_config()?),
            Network::new(bus.clone(), config.id, removed.clone()),
            LogStore::new(storage.clone()),
            StateMachine::new(storage.clone(), config.limits, notices),
        )
        .await
        .map_err(|e| Error::Raft(e.to_string()))?;
        let serving = Self::serve(
            bus,
            &config,
            storage,
            raft.clone(),
            published,
            notices_rx,
            removed,
        )
        .await;
        if serving.is_err() {
            // Nothing else holds this Raft: stop it rather than leave it running unserved.
            let _ = raft.shutdown().await;
        }
        serving
    }

    /// Starts the tasks that serve the bus, then joins the cluster.
    #[allow(clippy::too_many_arguments)]
    async fn serve(
        bus: Bus,
        config: &StoreConfig,
        storage: Storage,
        raft: Raft,
        published: Published,
        notices: mpsc::UnboundedReceiver<Notice>,
        removed: Arc<watch::Sender<bool>>,
    ) -> Result<Addr<StoreMember>> {
        let max_request = config.request_limit(bus.max_payload());
        let etcd_listener = match config.etcd.listen {
            Some(address) => {
                let failed = |source| Error::EtcdListen { address, source };
                let listener = TcpListener::bind(address).await.map_err(failed)?;
                let bound = listener.local_addr().map_err(failed)?;
                Some((listener, bound))
            }
            None => None,
        };
        // Subscribe before anything can need an answer: peers' votes first.
        let raft_subscription = bus.subscribe(&bus.subjects().raft(config.id)).await?;
        bus.flush().await?;

        let service = Arc::new(Service {
            id: config.id,
            raft: raft.clone(),
            storage,
            bus: bus.clone(),
            limits: config.limits,
            max_request,
            timeout: config.request_timeout,
            min_lease_ttl: config.min_lease_ttl(),
            quota_bytes: config.quota_bytes,
            leading: std::sync::Mutex::new(None),
            cluster: Cluster::new(removed.clone(), config.election_timeout),
            reads: reads::ReadRounds::new(),
            changes: broadcast::channel(CHANGES_BACKLOG).0,
            proposer: proposer::Proposer::spawn(raft.clone(), config.request_timeout),
        });
        let peers = service.clone();
        let (left_tx, left) = watch::channel(false);
        let mut tasks = vec![
            tokio::spawn(publish::run(
                bus.clone(),
                config.id,
                raft.metrics(),
                published,
                notices,
                service.changes.clone(),
                config.progress_interval,
            )),
            tokio::spawn(network::serve(
                bus.clone(),
                raft.clone(),
                raft_subscription,
                move |message| {
                    let service = peers.clone();
                    async move { serving::answer_peer(&service, message).await }
                },
                removed.subscribe(),
            )),
            tokio::spawn(removal::leave(
                service.clone(),
                removed.subscribe(),
                config.heartbeat_interval * 2,
                left_tx,
            )),
            tokio::spawn(removal::check_membership(
                service.clone(),
                config.election_timeout * 5,
            )),
            tokio::spawn(duties::run(
                service.clone(),
                config.auto_compaction_retention,
            )),
        ];
        let started = Self::join_cluster(&service, config).await;
        // Clients reach a member only once it is part of the cluster: a member waiting to be added would only
        // make them wait.
        let serving = match started {
            Ok(in_cluster) if in_cluster || serving::is_member(&service) => {
                serving::subscribe_rpc(&bus).await.map(|subscription| {
                    tokio::spawn(serving::serve_rpc(
                        bus.clone(),
                        service.clone(),
                        subscription,
                        removed.subscribe(),
                    ))
                })
            }
            Ok(_) => Ok(tokio::spawn(serving::serve_rpc_once_added(
                bus.clone(),
                service.clone(),
                removed.subscribe(),
            ))),
            Err(e) => Err(e),
        };
        match serving {
            Ok(task) => tasks.push(task),
            Err(e) => {
                for task in &tasks {
                    task.abort();
                }
                return Err(e);
            }
        }
        let etcd_address = etcd_listener.map(|(listener, address)| {
            tasks.push(crate::etcd::spawn(
                listener,
                address,
                service.clone(),
                &config.etcd,
            ));
            address
        });
        let client_urls = match (config.client_urls.is_empty(), etcd_address) {
            // Where it serves the etcd API, unless told what to advertise (see `etcd::client_url`).
            (true, Some(address)) => vec![crate::etcd::client_url(address)],
            _ => config.client_urls.clone(),
        };
        let own = Node {
            addr: bus.subjects().raft(config.id),
            name: String::new(),
            client_urls,
        };
        tasks.push(tokio::spawn(service.clone().publish_self(own)));
        Ok(StoreMember {
            service,
            tasks,
            left,
            etcd_address,
        }
        .start())
    }

    /// Initializes a fresh cluster, or hurries the election of a lone member after a restart. Returns whether the
    /// member is part of a cluster now (false: it waits for a leader to add it or to send it the log).
    async fn join_cluster(service: &Service, config: &StoreConfig) -> Result<bool> {
        let raft = &service.raft;
        let raft_error = |e: &dyn std::fmt::Display| Error::Raft(e.to_string());
        let alone = config.members == [config.id];
        let initialized = raft.is_initialized().await.map_err(|e| raft_error(&e))?;
        if !initialized && config.bootstrap {
            let subjects = service.bus.subjects();
            // Every initial member writes this same first entry (see `StoreConfig::bootstrap`): it must not
            // depend on which member writes it, so each member's client URLs are recorded later.
            let members: BTreeMap<NodeId, Node> = config
                .members
                .iter()
                .map(|id| (*id, Node::new(subjects.raft(*id), default_name(*id))))
                .collect();
            match raft.initialize(members).await {
                Ok(()) => {}
                // Another initial member formed the cluster first and reached this one (a vote request, the log)
                // before it initialized: it is part of that cluster already, as if it had waited to be contacted.
                Err(RaftError::APIError(InitializeError::NotAllowed(e))) => {
                    tracing::info!(id = config.id, reason = %e, "another initial member formed the cluster first");
                    return Ok(false);
                }
                Err(e) => return Err(raft_error(&e)),
            }
        } else if alone
            && raft
                .metrics()
                .borrow()
                .membership_config
                .voter_ids()
                .eq([config.id])
        {
            // Nobody else can vote: skip waiting out an election timeout.
            raft.trigger().elect().await.map_err(|e| raft_error(&e))?;
        }
        if alone && (initialized || config.bootstrap) {
            // A lone member elects itself at once; wait so the first requests need not.
            let _ = raft
                .wait(Some(config.request_timeout))
                .current_leader(config.id, "lone member leads")
                .await;
        }
        Ok(initialized || config.bootstrap)
    }
}

/// Stops the member: stops serving, shuts Raft down, and syncs the data directory. The actor stops afterwards.
#[derive(Debug, Message)]
#[rtype(result = "Result<()>")]
pub struct Shutdown;

impl Handler<Shutdown> for StoreMember {
    type Result = ResponseActFuture<Self, Result<()>>;

    fn handle(&mut self, _: Shutdown, _: &mut Self::Context) -> Self::Result {
        let tasks = std::mem::take(&mut self.tasks);
        let service = self.service.clone();
        // A removed member has shut its Raft down already.
        let left = *self.left.borrow();
        let stop = async move {
            for task in &tasks {
                task.abort();
            }
            // Aborted tasks hold handles on the data directory until they are gone.
            for task in tasks {
                let _ = task.await;
            }
            if !left {
                service
                    .raft
                    .shutdown()
                    .await
                    .map_err(|e| Error::Raft(e.to_string()))?;
            }
            service.storage.sync()?;
            Ok(())
        };
        Box::pin(stop.into_actor(self).map(|result, _, ctx| {
            ctx.stop();
            result
        }))
    }
}

/// Answers a request on this member, as if it came over `store.rpc` (writes and linearizable reads go to the
/// leader).
#[derive(Debug, Message)]
#[rtype(result = "StoreReply")]
pub struct Execute(pub StoreRequest);

impl Handler<Execute> for StoreMember {
    type Result = ResponseFuture<StoreReply>;

    fn handle(&mut self, Execute(request): Execute, _: &mut Self::Context) -> Self::Result {
        let service = self.service.clone();
        Box::pin(async move { service.execute(request, false).await })
    }
}

/// Asks where the member serves the etcd API (`None`: it does not).
#[derive(Debug, Message)]
#[rtype(result = "Option<SocketAddr>")]
pub struct EtcdAddress;

impl Handler<EtcdAddress> for StoreMember {
    type Result = Option<SocketAddr>;

    fn handle(&mut self, _: EtcdAddress, _: &mut Self::Context) -> Self::Result {
        self.etcd_address
    }
}

/// Asks for the member's Raft view.
#[derive(Debug, Message)]
#[rtype(result = "MemberMetrics")]
pub struct GetMetrics;

/// A member's Raft view.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberMetrics {
    /// The member.
    pub id: NodeId,
    /// The leader it knows of.
    pub leader: Option<NodeId>,
    /// Its current term.
    pub term: u64,
    /// Index of the last log entry it applied (0: none).
    pub applied_index: u64,
    /// Index of the last log entry its latest snapshot covers (0: none).
    pub snapshot_index: u64,
    /// Index of the last log entry it purged (0: none).
    pub purged_index: u64,
    /// Voters of the membership it knows.
    pub voters: Vec<NodeId>,
}

impl Handler<GetMetrics> for StoreMember {
    type Result = MessageResult<GetMetrics>;

    fn handle(&mut self, _: GetMetrics, _: &mut Self::Context) -> Self::Result {
        let m = self.service.raft.metrics().borrow().clone();
        MessageResult(MemberMetrics {
            id: self.service.id,
            leader: m.current_leader,
            term: m.current_term,
            applied_index: m.last_applied.map_or(0, |l| l.index),
            snapshot_index: m.snapshot.map_or(0, |l| l.index),
            purged_index: m.purged.map_or(0, |l| l.index),
            voters: m.membership_config.voter_ids().collect(),
        })
    }
}
