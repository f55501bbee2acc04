//! [`StateMachine`]: applies committed entries through the MVCC core and persists each entry's effects (keys,
//! versions, change record, stream revisions, bookkeeping, last applied log id, membership) in one fjall batch.
//!
//! Applied state is not fsynced per entry: it shares the journal with the log, so a crash loses at most a suffix
//! of applied entries whose log entries are durable, and openraft applies them again. A snapshot fsyncs before
//! openraft may purge the log behind it.

use std::io::Cursor;

use fjall::OwnedWriteBatch;
use navarch_bus::store::{ChangeBatch, StoreError};
use openraft::storage::RaftStateMachine;
use openraft::{
    AnyError, EntryPayload, OptionalSend, RaftSnapshotBuilder, Snapshot, StorageIOError,
};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use super::{encode, snapshot, FjallReader, Storage};
use crate::mvcc::{
    self, attachments, encode_version, lease_key, revision_bytes, split_by_stream, Commit,
    LeaseChange, Limits, Reader, Revisions,
};
use crate::types::{
    Entry, LogId, Response, SnapshotMeta, StorageError, StoredMembership, TypeConfig,
};

/// Applying one entry longer than this is logged, as etcd's `--warning-apply-duration` (default 100 ms).
const SLOW_APPLY: std::time::Duration = std::time::Duration::from_millis(100);

/// The state machine's bookkeeping, stored under [`SmState::KEY`] in the `meta` keyspace.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct SmState {
    /// Revisions and key count.
    pub revisions: Revisions,
    /// The last log entry applied.
    pub last_applied: Option<LogId>,
    /// The last membership applied.
    pub membership: StoredMembership,
    /// Writes of the entry after `last_applied` that are applied already (0 between entries).
    pub applied_writes: u32,
}

impl SmState {
    /// Its key in the `meta` keyspace.
    pub const KEY: &'static str = "state";
    /// The key of the [`Ledger`](crate::mvcc::Ledger) in the `meta` keyspace.
    pub const LEDGER_KEY: &'static str = "ledger";
}

/// What the state machine tells the publisher, in apply order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// The changes of one revision, one batch per stream touched.
    Changes(Vec<ChangeBatch>),
    /// The whole state was replaced by a snapshot: the new revision and every stream's last revision.
    Reset {
        /// The revision after the install.
        revision: i64,
        /// Every stream and its last revision.
        streams: Vec<(String, i64)>,
    },
}

/// The store's Raft state machine. Its storage handle is shared with the read path, which reads through
/// [`Storage::reader`].
pub struct StateMachine {
    storage: Storage,
    limits: Limits,
    notices: mpsc::UnboundedSender<Notice>,
}

fn apply_error(log_id: LogId, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::apply(log_id, AnyError::new(&e)).into()
}

impl StateMachine {
    /// A state machine over `storage` answering with `limits` and telling `notices` what each entry changed.
    pub fn new(storage: Storage, limits: Limits, notices: mpsc::UnboundedSender<Notice>) -> Self {
        Self {
            storage,
            limits,
            notices,
        }
    }

    /// Applies one entry: each write of its batch in order, each committed in its own fjall batch with its
    /// revision, so the next write reads what the previous one wrote. The bookkeeping in each batch counts the
    /// entry's writes applied so far ([`SmState::applied_writes`]); after a crash inside an entry, applying it again
    /// resumes after them instead of applying a write twice.
    fn apply_entry(&self, entry: Entry) -> Result<Response, StorageError> {
        let log_id = entry.log_id;
        let failed = |e: mvcc::Error| apply_error(log_id, e);
        let mut state = self.storage.reader().state().map_err(failed)?;
        let writes = match entry.payload {
            EntryPayload::Blank => Vec::new(),
            EntryPayload::Membership(membership) => {
                state.membership = StoredMembership::new(Some(log_id), membership);
                Vec::new()
            }
            EntryPayload::Normal(batch) => batch.0,
        };
        let done = usize::try_from(state.applied_writes).unwrap_or(usize::MAX);
        let mut replies = Vec::with_capacity(writes.len());
        if writes.is_empty() {
            self.finish(&mut state, log_id, self.storage.db.batch())?;
        }
        let last = writes.len().saturating_sub(1);
        for (i, write) in writes.into_iter().enumerate() {
            if i < done {
                // Applied before this member restarted; its client was answered then or has given up.
                replies.push(Err(StoreError::Unavailable(
                    "applied before the store member restarted".into(),
                )));
                continue;
            }
            let reader = self.storage.reader();
            let mut batch = self.storage.db.batch();
            let mut changes = Vec::new();
            let reply = match mvcc::apply(&reader, &write, &self.limits) {
                Ok((response, commit)) => {
                    state.revisions = commit.revisions;
                    changes = self.stage(&mut batch, &reader, commit).map_err(failed)?;
                    Ok(response)
                }
                // Refusals are deterministic: every member answers the same and changes nothing.
                Err(mvcc::Error::Refused(e)) => Err(e),
                Err(e) => return Err(failed(e)),
            };
            if i == last {
                self.finish(&mut state, log_id, batch)?;
            } else {
                state.applied_writes = u32::try_from(i + 1).unwrap_or(u32::MAX);
                self.commit(&state, log_id, batch)?;
            }
            if !changes.is_empty() {
                // The publisher may be gone (shutting down, or a test without one); applying goes on regardless.
                let _ = self.notices.send(Notice::Changes(changes));
            }
            replies.push(reply);
        }
        Ok(Response(replies))
    }

    /// Commits `batch` with the bookkeeping of a fully applied entry `log_id`.
    fn finish(
        &self,
        state: &mut SmState,
        log_id: LogId,
        batch: OwnedWriteBatch,
    ) -> Result<(), StorageError> {
        state.last_applied = Some(log_id);
        state.applied_writes = 0;
        self.commit(state, log_id, batch)
    }

    fn commit(
        &self,
        state: &SmState,
        log_id: LogId,
        mut batch: OwnedWriteBatch,
    ) -> Result<(), StorageError> {
        let state_bytes = encode(state).map_err(|e| apply_error(log_id, e))?;
        batch.insert(&self.storage.meta, SmState::KEY, state_bytes);
        batch.commit().map_err(|e| apply_error(log_id, e))
    }

    /// Adds a commit's writes to `batch`; returns its changes split per stream.
    fn stage(
        &self,
        batch: &mut OwnedWriteBatch,
        reader: &FjallReader,
        commit: Commit,
    ) -> Result<Vec<ChangeBatch>, mvcc::Error> {
        let s = &self.storage;
        let failed = |e: super::Error| mvcc::Error::Storage(e.to_string());
        let Commit {
            revisions,
            events,
            compaction,
            ledger,
            leases,
        } = commit;
        let revision = revisions.current;
        let mut changes = Vec::new();
        batch.insert(
            &s.meta,
            SmState::LEDGER_KEY,
            encode(&ledger).map_err(failed)?,
        );
        let (detach, attach) = attachments(&events);
        for (lease, key) in detach {
            batch.remove(&s.lease_keys, lease_key(lease, &key));
        }
        for (lease, key) in attach {
            batch.insert(&s.lease_keys, lease_key(lease, &key), []);
        }
        for change in &leases {
            match change {
                LeaseChange::Granted(lease) => {
                    batch.insert(
                        &s.leases,
                        lease.id.to_be_bytes(),
                        encode(lease).map_err(failed)?,
                    );
                }
                LeaseChange::Revoked(id) => batch.remove(&s.leases, id.to_be_bytes()),
            }
        }
        if let Some(compaction) = &compaction {
            for (key, revision) in &compaction.versions {
                batch.remove(&s.versions, encode_version(key, *revision));
            }
            reader.scan_changes(compaction.from, &mut |changed, _| {
                if changed >= compaction.to {
                    return false;
                }
                batch.remove(&s.changes, revision_bytes(changed));
                true
            })?;
        }
        if !events.is_empty() {
            let mut keys = Vec::with_capacity(events.len());
            for event in &events {
                let key = event.kv.key.as_slice();
                let bytes = encode(&event.kv).map_err(failed)?;
                if event.kv.version == 0 {
                    batch.remove(&s.kv, key);
                } else {
                    batch.insert(&s.kv, key, bytes.clone());
                }
                batch.insert(&s.versions, encode_version(key, revision), bytes);
                keys.push(event.kv.key.clone());
            }
            batch.insert(
                &s.changes,
                revision_bytes(revision),
                encode(&keys).map_err(failed)?,
            );
            let mut lookup_error = None;
            changes = split_by_stream(revision, events, |stream| {
                reader.stream_last(stream).unwrap_or_else(|e| {
                    lookup_error = Some(e);
                    0
                })
            });
            if let Some(e) = lookup_error {
                return Err(e);
            }
            for change in &changes {
                batch.insert(&s.streams, change.stream.as_str(), revision_bytes(revision));
            }
        }
        Ok(changes)
    }
}

impl RaftStateMachine<TypeConfig> for StateMachine {
    type SnapshotBuilder = SnapshotBuilder;

    async fn applied_state(&mut self) -> Result<(Option<LogId>, StoredMembership), StorageError> {
        let state = self
            .storage
            .reader()
            .state()
            .map_err(|e| StorageIOError::read_state_machine(AnyError::new(&e)))?;
        Ok((state.last_applied, state.membership))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<Response>, StorageError>
    where
        I: IntoIterator<Item = Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        entries
            .into_iter()
            .map(|entry| {
                let (index, started) = (entry.log_id.index, tokio::time::Instant::now());
                let writes = match &entry.payload {
                    EntryPayload::Normal(batch) => batch.0.len(),
                    _ => 0,
                };
                let response = self.apply_entry(entry);
                let took = started.elapsed();
                if took > SLOW_APPLY {
                    // etcd's "apply request took too long".
                    tracing::warn!(index, writes, ?took, "applying a log entry took too long");
                }
                response
            })
            .collect()
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        SnapshotBuilder {
            storage: self.storage.clone(),
        }
    }

    async fn begin_receiving_snapshot(&mut self) -> Result<Box<Cursor<Vec<u8>>>, StorageError> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError> {
        snapshot::install(&self.storage, meta, snapshot.get_ref())?;
        let reader = self.storage.reader();
        let read = |e: mvcc::Error| {
            StorageError::from(StorageIOError::read_state_machine(AnyError::new(&e)))
        };
        let revision = reader.state().map_err(read)?.revisions.current;
        let streams = reader.streams().map_err(read)?;
        let _ = self.notices.send(Notice::Reset { revision, streams });
        Ok(())
    }

    async fn get_current_snapshot(&mut self) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
        snapshot::current(&self.storage)
    }
}

/// Builds snapshots from a consistent view while the state machine keeps applying.
pub struct SnapshotBuilder {
    storage: Storage,
}

impl RaftSnapshotBuilder<TypeConfig> for SnapshotBuilder {
    async fn build_snapshot(&mut self) -> Result<Snapshot<TypeConfig>, StorageError> {
        snapshot::build(&self.storage)
    }
}
