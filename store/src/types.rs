//! The Raft type configuration: node ids, what the log carries ([`Request`]) and what applying it answers
//! ([`Response`]).

use std::io::Cursor;

use navarch_bus::store::StoreReply;
use serde::{Deserialize, Serialize};

use crate::mvcc::Write;

/// Store member ids.
pub type NodeId = u64;

/// What the cluster knows of a member besides its id. Members reach each other by id over the bus
/// (`subjects.raft(id)`), so the address is informational.
pub type Node = openraft::BasicNode;

/// What one log entry carries: one write.
pub type Request = Write;

/// What applying an entry answers: the store's reply to a client write; `None` for Raft's own entries (blank,
/// membership).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response(pub Option<StoreReply>);

openraft::declare_raft_types!(
    /// Navarch's store: u64 ids, [`Request`] entries, [`Response`] answers, snapshots in memory.
    pub TypeConfig:
        D = Request,
        R = Response,
        NodeId = NodeId,
        Node = Node,
        SnapshotData = Cursor<Vec<u8>>,
);

/// A Raft handle of the store.
pub type Raft = openraft::Raft<TypeConfig>;
/// A log entry.
pub type Entry = openraft::Entry<TypeConfig>;
/// A log position.
pub type LogId = openraft::LogId<NodeId>;
/// Membership as the state machine keeps it.
pub type StoredMembership = openraft::StoredMembership<NodeId, Node>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// What openraft's storage traits fail with.
pub type StorageError = openraft::StorageError<NodeId>;
