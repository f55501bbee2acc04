//! The Raft type configuration: node ids, what the log carries ([`Request`]) and what applying it answers
//! ([`Response`]).

use std::io::Cursor;

use navarch_bus::store::StoreReply;
use serde::{Deserialize, Serialize};

use crate::mvcc::Write;

/// Store member ids.
pub type NodeId = u64;

/// What the Raft membership keeps of a member besides its id: how peers reach it, its name and where it serves
/// clients. Members reach each other by id over the bus (`subjects.raft(id)`), so every field is informational.
///
/// # Storage
/// A `Node` is stored (in membership log entries, the state machine and snapshots) as one string, exactly as
/// openraft's `BasicNode { addr }` was: a bare address when there is no name or client URL, else a JSON object
/// `{"addr":..,"name":..,"client_urls":[..]}`. Data written when `Node` was `BasicNode` therefore reads as is, and
/// a member of that version reads ours (seeing the JSON as its address, which it never uses).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(into = "String", from = "String")]
pub struct Node {
    /// How other members reach it: its Raft subject on the bus.
    pub addr: String,
    /// Its name (empty: `member-<id>`).
    pub name: String,
    /// Where it serves the etcd API, if it does.
    pub client_urls: Vec<String>,
}

/// [`Node`]'s fields as its JSON form spells them.
#[derive(Serialize, Deserialize, Default)]
struct NodeFields {
    addr: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    client_urls: Vec<String>,
}

impl Node {
    /// A member reached at `addr` and called `name`, serving no clients (yet).
    pub fn new(addr: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            addr: addr.into(),
            name: name.into(),
            client_urls: Vec::new(),
        }
    }

    /// Its name, or `member-<id>` when it has none.
    pub fn name_or_default(&self, id: NodeId) -> String {
        if self.name.is_empty() {
            default_name(id)
        } else {
            self.name.clone()
        }
    }
}

/// The name of a member added without one.
pub fn default_name(id: NodeId) -> String {
    format!("member-{id}")
}

impl From<Node> for String {
    fn from(node: Node) -> String {
        if node.name.is_empty() && node.client_urls.is_empty() && !node.addr.starts_with('{') {
            return node.addr;
        }
        let fields = NodeFields {
            addr: node.addr,
            name: node.name,
            client_urls: node.client_urls,
        };
        // Strings and lists of strings always serialize.
        serde_json::to_string(&fields).unwrap_or_default()
    }
}

impl From<String> for Node {
    fn from(text: String) -> Node {
        match serde_json::from_str::<NodeFields>(&text) {
            Ok(fields) if text.starts_with('{') => Node {
                addr: fields.addr,
                name: fields.name,
                client_urls: fields.client_urls,
            },
            // A bare address, as `BasicNode` stored it (or anything else: kept whole as the address).
            _ => Node {
                addr: text,
                ..Default::default()
            },
        }
    }
}

impl std::fmt::Display for Node {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", String::from(self.clone()))
    }
}

/// What one log entry carries: writes proposed together (group commit), applied in order, each at its own
/// revision as if proposed alone.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch(pub Vec<Write>);

impl std::fmt::Display for Batch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} write(s)", self.0.len())
    }
}

/// What one log entry carries.
pub type Request = Batch;

/// What applying an entry answers: the store's reply to each write of the batch, in order; empty for Raft's own
/// entries (blank, membership).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Response(pub Vec<StoreReply>);

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
/// A cluster configuration: voters (one set, or two while a change is in progress) and learners.
pub type Membership = openraft::Membership<NodeId, Node>;
/// Snapshot metadata.
pub type SnapshotMeta = openraft::SnapshotMeta<NodeId, Node>;
/// What openraft's storage traits fail with.
pub type StorageError = openraft::StorageError<NodeId>;

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::codec;

    #[test]
    fn a_node_is_stored_as_basic_node_was() -> Result<(), navarch_bus::Error> {
        // What the store wrote when `Node` was openraft's `BasicNode`.
        let old = codec::encode(&openraft::BasicNode::new("navarch.c.store.raft.1"))?;
        let node: Node = codec::decode(&old)?;
        assert_eq!(node, Node::new("navarch.c.store.raft.1", ""));
        assert_eq!(node.name_or_default(1), "member-1");
        // A node without extras is stored byte for byte as before.
        assert_eq!(codec::encode(&node)?, old);

        let full = Node {
            addr: "navarch.c.store.raft.4".into(),
            name: "east".into(),
            client_urls: vec!["http://127.0.0.1:2379".into()],
        };
        let bytes = codec::encode(&full)?;
        assert_eq!(codec::decode::<Node>(&bytes)?, full);
        // The older version reads it too, as an address it never uses.
        let seen_by_old: openraft::BasicNode = codec::decode(&bytes)?;
        assert!(seen_by_old.addr.contains("east"));
        Ok(())
    }

    #[test]
    fn odd_addresses_survive() {
        for addr in ["{", "{\"not\": \"a node\"}", ""] {
            let node = Node::new(addr, "");
            assert_eq!(Node::from(String::from(node.clone())), node);
        }
    }
}
