//! Persistence in fjall: one database per member holding the Raft log ([`LogStore`]) and the state machine
//! ([`StateMachine`]), so one journal orders every write of both.
//!
//! # Keyspaces
//! | keyspace | key | value |
//! |---|---|---|
//! | `raft_log` | log index, big-endian | entry |
//! | `raft_state` | `vote`, `committed`, `purged`, `snapshot` | vote / log id / meta of the last snapshot point |
//! | `kv` | user key | live [`KeyValue`](navarch_bus::store::KeyValue) |
//! | `versions` | [`encode_version`](crate::mvcc::encode_version)`(key, revision)` | the key at that revision (deleted: version 0) |
//! | `changes` | revision, big-endian | keys changed at that revision, in order |
//! | `streams` | stream name | last revision that changed the stream |
//! | `leases` | lease id, big-endian | [`Lease`](crate::mvcc::Lease): id and granted TTL |
//! | `lease_keys` | [`lease_key`](crate::mvcc::lease_key)`(id, key)` | empty: `key` is attached to lease `id` |
//! | `meta` | `state` | [`SmState`]: revisions, last applied log id, membership |
//! | `meta` | `ledger` | [`Ledger`](crate::mvcc::Ledger): counted bytes, last lease id, alarms |
//!
//! Values are encoded with the bus codec (bincode 2).

// openraft's storage traits fail with its `StorageError`, a large type; the helpers here return it as is
// because boxing it would only be undone at the trait boundary.
#![allow(clippy::result_large_err)]

mod log;
mod reader;
mod snapshot;
mod state_machine;

#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};
use std::time::Duration;

use fjall::{Database, Keyspace, KeyspaceCreateOptions};
use navarch_bus::codec;
use serde::{de::DeserializeOwned, Serialize};

pub use log::LogStore;
pub use reader::FjallReader;
pub use state_machine::{Notice, SmState, StateMachine};

/// Why opening or using the member's storage failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// fjall failed (I/O, corrupt files, a poisoned journal after a failed fsync). Not retryable: the disk or
    /// the data directory needs attention.
    #[error("fjall: {0}")]
    Fjall(#[from] fjall::Error),
    /// Another process (or a member not yet shut down) holds the data directory. Retryable once it is gone.
    #[error("data directory {0} is locked by another store member")]
    Locked(PathBuf),
    /// The data directory could not be created. Not retryable.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        #[source]
        source: std::io::Error,
    },
    /// Stored bytes do not decode: a bug or corruption. Not retryable.
    #[error("corrupt {what}: {reason}")]
    Corrupt {
        /// What was being read.
        what: &'static str,
        /// The decoder's complaint.
        reason: String,
    },
}

/// Result of a storage operation.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long [`Storage::open`] waits for a previous holder of the data directory (a member that is shutting down in
/// this process) to let go.
const LOCK_WAIT: Duration = Duration::from_secs(10);

/// The member's fjall database and its keyspaces. Cheap to clone: every field is a shared handle.
#[derive(Clone)]
pub struct Storage {
    pub(crate) db: Database,
    pub(crate) log: Keyspace,
    pub(crate) raft: Keyspace,
    pub(crate) kv: Keyspace,
    pub(crate) versions: Keyspace,
    pub(crate) changes: Keyspace,
    pub(crate) streams: Keyspace,
    pub(crate) leases: Keyspace,
    pub(crate) lease_keys: Keyspace,
    pub(crate) meta: Keyspace,
    dir: PathBuf,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Storage").field("dir", &self.dir).finish()
    }
}

impl Storage {
    /// Opens (or creates) the storage in `dir`: the database in `dir/db`. Waits up to 10 s for the directory's
    /// lock.
    pub async fn open(dir: &Path) -> Result<Self> {
        let io = |source| Error::Io {
            path: dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(dir).map_err(io)?;
        let deadline = tokio::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match Database::builder(dir.join("db")).open() {
                Ok(db) => break db,
                Err(fjall::Error::Locked) if tokio::time::Instant::now() < deadline => {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(fjall::Error::Locked) => return Err(Error::Locked(dir.to_path_buf())),
                Err(e) => return Err(e.into()),
            }
        };
        let keyspace = |name: &str| db.keyspace(name, KeyspaceCreateOptions::default);
        Ok(Self {
            log: keyspace("raft_log")?,
            raft: keyspace("raft_state")?,
            kv: keyspace("kv")?,
            versions: keyspace("versions")?,
            changes: keyspace("changes")?,
            streams: keyspace("streams")?,
            leases: keyspace("leases")?,
            lease_keys: keyspace("lease_keys")?,
            meta: keyspace("meta")?,
            db,
            dir: dir.to_path_buf(),
        })
    }

    /// The data directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The state machine's keyspaces, named, in a fixed order (what a snapshot holds).
    pub(crate) fn state_keyspaces(&self) -> [(&'static str, &Keyspace); 7] {
        [
            ("kv", &self.kv),
            ("versions", &self.versions),
            ("changes", &self.changes),
            ("streams", &self.streams),
            ("leases", &self.leases),
            ("lease_keys", &self.lease_keys),
            ("meta", &self.meta),
        ]
    }

    /// Bytes the database takes on disk.
    pub fn disk_space(&self) -> u64 {
        self.db.disk_space().unwrap_or_default()
    }

    /// Makes every write so far durable (fsync).
    pub fn sync(&self) -> Result<()> {
        Ok(self.db.persist(fjall::PersistMode::SyncAll)?)
    }

    /// A consistent read view of the state machine as of now.
    pub fn reader(&self) -> FjallReader {
        FjallReader::new(self.clone())
    }
}

/// Encodes a stored value.
pub(crate) fn encode<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>> {
    codec::encode(value).map_err(|e| Error::Corrupt {
        what: "value to store",
        reason: e.to_string(),
    })
}

/// Decodes a stored value.
pub(crate) fn decode<T: DeserializeOwned>(what: &'static str, bytes: &[u8]) -> Result<T> {
    codec::decode(bytes).map_err(|e| Error::Corrupt {
        what,
        reason: e.to_string(),
    })
}
