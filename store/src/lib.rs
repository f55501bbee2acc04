//! Navarch's consensus store: an etcd-like MVCC key space replicated with openraft, persisted in fjall, served
//! over the bus (`store.rpc`, `store.raft.<id>`, `store.events.<stream>`) to [`navarch_bus::store::StoreClient`].
//!
//! Start a member with [`StoreMember::start`] inside an actix system; stop it with [`Shutdown`]:
//!
//! ```no_run
//! # async fn run(bus: navarch_bus::Bus) -> Result<(), navarch_store::Error> {
//! use navarch_store::{Shutdown, StoreConfig, StoreMember};
//! let config = StoreConfig { data_dir: "/var/lib/navarch/store".into(), ..Default::default() };
//! let member = StoreMember::start(bus, config).await?;
//! // ... serve until asked to stop ...
//! member.send(Shutdown).await.map_err(|e| navarch_store::Error::Raft(e.to_string()))??;
//! # Ok(())
//! # }
//! ```
//!
//! # Layout
//! - [`config`]: [`StoreConfig`], its etcd-derived defaults and validation.
//! - [`mvcc`]: the pure core: revisions, versions, ranges at any revision, transactions, compaction, history,
//!   leases and their keys, alarms and the byte count the space quota reads.
//! - [`lessor`]: the leader's lease clock, pure: which leases expire when; a new leader gives each a full TTL.
//! - [`compactor`]: automatic compaction by retention, pure: the revision that was current `retention` ago.
//! - [`types`]: the Raft type configuration: what the log carries and what applying it answers.
//! - [`storage`]: fjall persistence: the Raft log, the state machine, snapshots.
//! - [`network`]: Raft messages between members over the bus, and forwarding to the leader.
//! - [`member`]: the [`StoreMember`] actor: serving `store.rpc` (leases, alarms and the quota check in
//!   `member/lease.rs`), publishing change streams, the leader's duties (revoking expired leases, automatic
//!   compaction), start and shutdown; membership changes, ReadIndex reads on followers, and how a removed member
//!   stops.
//! - [`etcd`]: the etcd v3 gRPC API a member serves so `etcdctl` and etcd clients work against it.

pub mod compactor;
pub mod config;
pub mod etcd;
pub mod lessor;
pub mod member;
pub mod mvcc;
pub mod network;
pub mod storage;
pub mod types;

pub use config::{ConfigError, StoreConfig};
pub use etcd::EtcdConfig;
pub use member::{
    Error, EtcdAddress, Execute, GetMetrics, MemberMetrics, Result, Shutdown, StoreMember,
    UntilRemoved,
};
pub use mvcc::Limits;
