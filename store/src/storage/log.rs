//! [`LogStore`]: the Raft log and vote in fjall.
//!
//! # To be correct (openraft's `RaftLogStorage` contract)
//! - No holes: entries are keyed by their index and only appended after the last one, truncated from an index on,
//!   or purged up to an index; `purged` and the removal of the purged entries commit in one batch.
//! - Writes are serialized: every write goes through the one fjall journal in call order, and an fsync makes every
//!   earlier write durable too.
//! - `append` reports completion only after an fsync that covers the entries; the vote is fsynced before
//!   `save_vote` returns.
//!
//! The fsync runs inline in `append`: openraft 0.9's core awaits the completion right after `append` returns, so a
//! separate fsync thread cannot overlap anything and only adds a hand-off (measured: several times slower). Many
//! concurrent writes still share one fsync, because openraft appends every entry queued meanwhile in one call.

use std::fmt::Debug;
use std::ops::{Bound, RangeBounds};

use fjall::PersistMode;
use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{AnyError, OptionalSend, RaftLogReader, StorageIOError, Vote};

use super::{decode, encode, Storage};
use crate::types::{Entry, LogId, NodeId, StorageError, TypeConfig};

const VOTE: &str = "vote";
const COMMITTED: &str = "committed";
const PURGED: &str = "purged";

/// The member's Raft log. Clones share the database.
#[derive(Clone)]
pub struct LogStore {
    storage: Storage,
}

fn index_key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn read_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::read_logs(AnyError::new(&e)).into()
}

fn write_error(e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::write_logs(AnyError::new(&e)).into()
}

impl LogStore {
    /// The log in `storage`.
    pub fn new(storage: Storage) -> Self {
        Self { storage }
    }

    fn read_state<T: serde::de::DeserializeOwned>(
        &self,
        key: &str,
    ) -> Result<Option<T>, StorageError> {
        match self.storage.raft.get(key).map_err(read_error)? {
            Some(bytes) => Ok(Some(decode("raft state", &bytes).map_err(read_error)?)),
            None => Ok(None),
        }
    }
}

impl RaftLogReader<TypeConfig> for LogStore {
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<Entry>, StorageError> {
        let start = match range.start_bound() {
            Bound::Included(i) => Bound::Included(index_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match range.end_bound() {
            Bound::Included(i) => Bound::Included(index_key(*i)),
            Bound::Excluded(i) => Bound::Excluded(index_key(*i)),
            Bound::Unbounded => Bound::Unbounded,
        };
        if let (Bound::Included(s), Bound::Excluded(e)) = (&start, &end) {
            if s >= e {
                return Ok(Vec::new());
            }
        }
        let mut entries = Vec::new();
        for guard in self.storage.log.range((start, end)) {
            let (_, bytes) = guard.into_inner().map_err(read_error)?;
            entries.push(decode::<Entry>("log entry", &bytes).map_err(read_error)?);
        }
        Ok(entries)
    }
}

impl RaftLogStorage<TypeConfig> for LogStore {
    type LogReader = LogStore;

    async fn get_log_state(&mut self) -> Result<LogState<TypeConfig>, StorageError> {
        let last_purged_log_id: Option<LogId> = self.read_state(PURGED)?;
        let last = match self.storage.log.last_key_value() {
            Some(guard) => {
                let (_, bytes) = guard.into_inner().map_err(read_error)?;
                Some(
                    decode::<Entry>("log entry", &bytes)
                        .map_err(read_error)?
                        .log_id,
                )
            }
            None => None,
        };
        Ok(LogState {
            last_log_id: last.or(last_purged_log_id),
            last_purged_log_id,
        })
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<NodeId>) -> Result<(), StorageError> {
        let bytes = encode(vote).map_err(|e| StorageIOError::write_vote(AnyError::new(&e)))?;
        let mut batch = self
            .storage
            .db
            .batch()
            .durability(Some(PersistMode::SyncAll));
        batch.insert(&self.storage.raft, VOTE, bytes);
        batch
            .commit()
            .map_err(|e| StorageIOError::write_vote(AnyError::new(&e)).into())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<NodeId>>, StorageError> {
        self.read_state(VOTE)
    }

    // Saved without fsync: on restart openraft re-applies entries up to here, and a lost update only means the
    // member waits for the leader to commit them again.
    async fn save_committed(&mut self, committed: Option<LogId>) -> Result<(), StorageError> {
        let bytes = encode(&committed).map_err(write_error)?;
        self.storage
            .raft
            .insert(COMMITTED, bytes)
            .map_err(write_error)
    }

    async fn read_committed(&mut self) -> Result<Option<LogId>, StorageError> {
        Ok(self.read_state::<Option<LogId>>(COMMITTED)?.flatten())
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<TypeConfig>,
    ) -> Result<(), StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut batch = self.storage.db.batch();
        for entry in entries {
            let bytes = encode(&entry).map_err(write_error)?;
            batch.insert(&self.storage.log, index_key(entry.log_id.index), bytes);
        }
        batch.commit().map_err(write_error)?;
        let synced = self
            .storage
            .sync()
            .map_err(|e| std::io::Error::other(e.to_string()));
        callback.log_io_completed(synced);
        Ok(())
    }

    async fn truncate(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = self.storage.db.batch();
        for guard in self.storage.log.range(index_key(log_id.index)..) {
            batch.remove(&self.storage.log, guard.key().map_err(write_error)?);
        }
        batch.commit().map_err(write_error)
    }

    async fn purge(&mut self, log_id: LogId) -> Result<(), StorageError> {
        let mut batch = self.storage.db.batch();
        batch.insert(
            &self.storage.raft,
            PURGED,
            encode(&log_id).map_err(write_error)?,
        );
        for guard in self.storage.log.range(..=index_key(log_id.index)) {
            batch.remove(&self.storage.log, guard.key().map_err(write_error)?);
        }
        batch.commit().map_err(write_error)
    }
}
