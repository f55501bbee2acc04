//! etcd's MVCC key space as a pure core: reads and writes over a [`Reader`], producing a [`Commit`] that the storage
//! layer persists. No disk, no clock, no Raft in here.
//!
//! # Model
//! - One global revision; a fresh store is at revision 1 (as etcd), and every committed write that changes a key
//!   takes the next one. A transaction is one revision however many keys it changes; a request that changes
//!   nothing (a delete of a missing key, a failed compare with read-only `failure` ops) keeps the revision.
//! - Per key: `create_revision`, `mod_revision`, `version` (1 after the first put, 0 once deleted).
//! - Every version of every key is kept, keyed by `(key, revision)`, until compacted; a deletion is kept as a
//!   version with `version == 0`. `Compact(r)` drops what no read at revision `>= r` needs: of the versions below
//!   `r` only each key's latest one survives, and only if it is live.
//! - Revisions below the compaction point are gone: a range at `revision < compacted` and a history from
//!   `start_revision < compacted` are refused with [`StoreError::Compacted`] (etcd's rule). The compaction point
//!   itself stays readable, so a watch may resume from it.
//! - Leases (etcd's): a lease has an id and a TTL in seconds; a put may attach its key to a live lease, and
//!   revoking the lease deletes every key attached, at one revision. The core only records leases; when one
//!   expires is the leader's business ([`crate::lessor`]), which then proposes the revoke.
//! - The [`Ledger`] counts the bytes the space quota looks at and holds the alarms; while a NOSPACE alarm is
//!   active, writes that add data (puts, transactions with a put, lease grants) are refused with
//!   [`StoreError::NoSpace`] on every member, as etcd's capped applier does.

mod compact;
mod keys;
mod ledger;
mod read;
mod write;

#[cfg(test)]
mod ledger_tests;
#[cfg(test)]
pub(crate) mod memory;
#[cfg(test)]
mod tests;

use navarch_bus::store::{Alarm, Event, KeyValue, StoreError};
use serde::{Deserialize, Serialize};

pub use keys::{
    decode_version, encode_key, encode_version, revision_bytes, version_bounds, KeyRange,
};
pub use ledger::{
    adds_data, attachments, lease_key, write_cost, Attachments, Lease, LeaseChange, LEASE_BYTES,
    MAX_LEASE_TTL, VERSION_OVERHEAD,
};
pub use read::{history, range};
pub use write::{apply, split_by_stream, validate, Write};

/// The store's bookkeeping besides the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Revisions {
    /// The revision of the last committed write (1 in a fresh store, as etcd).
    pub current: i64,
    /// Revisions below this one are compacted (0: nothing compacted yet).
    pub compacted: i64,
    /// Number of live keys.
    pub keys: u64,
}

impl Default for Revisions {
    fn default() -> Self {
        Self {
            current: 1,
            compacted: 0,
            keys: 0,
        }
    }
}

/// Space and lease bookkeeping, kept beside [`Revisions`].
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Ledger {
    /// Bytes of kept data as the space quota counts them: every kept version (key + value +
    /// [`VERSION_OVERHEAD`], deletions included) and [`LEASE_BYTES`] per lease. A count, not the disk's size, so
    /// every member agrees on it and a compaction frees space at once.
    pub bytes: u64,
    /// The highest lease id ever granted; ids the store picks continue after it, so none is ever reused.
    pub last_lease: i64,
    /// Active alarms, in the order they were raised.
    pub alarms: Vec<Alarm>,
}

/// Caps on what one answer holds, so one request cannot make a member build an unbounded reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// A range answer stops adding keys once their keys and values exceed this many bytes (at least one key is
    /// returned; `more` tells the client to continue).
    pub range_bytes: usize,
    /// Most revisions one history answer holds when the request sets no limit.
    pub history_revisions: usize,
    /// A history answer stops once its events exceed this many bytes (at least one revision is returned).
    pub history_bytes: usize,
}

impl Default for Limits {
    /// 4 MiB per answer: a few messages under NATS's 1 MiB payload once chunked; 1,000 revisions per history read.
    fn default() -> Self {
        Self {
            range_bytes: 4 << 20,
            history_revisions: 1000,
            history_bytes: 4 << 20,
        }
    }
}

/// What a write changed, for the storage layer to persist atomically.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Commit {
    /// Bookkeeping after the write.
    pub revisions: Revisions,
    /// The changes at `revisions.current`, in the order the request made them (empty: nothing changed).
    pub events: Vec<Event>,
    /// Versions and change records that a compaction dropped.
    pub compaction: Option<Compaction>,
    /// Space and lease bookkeeping after the write.
    pub ledger: Ledger,
    /// Leases granted or revoked (key attachments follow from `events`: see [`attachments`]).
    pub leases: Vec<LeaseChange>,
}

/// What a compaction removes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compaction {
    /// The previous compaction point: change records of `[from, to)` go.
    pub from: i64,
    /// The new compaction point.
    pub to: i64,
    /// `(key, revision)` of every version that goes.
    pub versions: Vec<(Vec<u8>, i64)>,
    /// What those versions counted in [`Ledger::bytes`].
    pub freed_bytes: u64,
}

/// Read access to a consistent state of the store. Implementations: the fjall state machine, and an in-memory
/// map in tests.
///
/// # To be correct, an implementation must
/// - answer every method from one state (one snapshot), including [`Reader::revisions`];
/// - visit keys in byte order, and a key's versions by ascending revision;
/// - stop visiting as soon as `visit` returns false.
pub trait Reader {
    /// The store's bookkeeping.
    fn revisions(&self) -> Result<Revisions, Error>;

    /// The live value of `key`.
    fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, Error>;

    /// Every live key of `range`, in key order.
    fn scan(&self, range: &KeyRange, visit: &mut dyn FnMut(KeyValue) -> bool) -> Result<(), Error>;

    /// Every kept version of the keys of `range` (deletions with `version == 0`), by key then revision.
    fn scan_versions(
        &self,
        range: &KeyRange,
        visit: &mut dyn FnMut(KeyValue) -> bool,
    ) -> Result<(), Error>;

    /// The latest kept version of `key` with a revision below `revision` (possibly a deletion).
    fn version_before(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, Error>;

    /// The keys changed at each revision from `from` on, ascending, as recorded by the writes.
    fn scan_changes(
        &self,
        from: i64,
        visit: &mut dyn FnMut(i64, Vec<Vec<u8>>) -> bool,
    ) -> Result<(), Error>;

    /// Space and lease bookkeeping.
    fn ledger(&self) -> Result<Ledger, Error>;

    /// The lease `id`, if it is live.
    fn lease(&self, id: i64) -> Result<Option<Lease>, Error>;

    /// Every live lease, by id.
    fn leases(&self, visit: &mut dyn FnMut(Lease) -> bool) -> Result<(), Error>;

    /// The keys attached to lease `id`, in key order.
    fn lease_keys(&self, id: i64, visit: &mut dyn FnMut(Vec<u8>) -> bool) -> Result<(), Error>;
}

/// Why the core did not answer a request with a result.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request is refused (invalid argument, compacted or future revision...); the store's answer is this
    /// error and the store is unchanged. Deterministic: every member refuses the same write the same way. Whether
    /// the client may retry is [`StoreError::is_retryable`].
    #[error(transparent)]
    Refused(#[from] StoreError),
    /// Reading the store failed (disk failure or corrupt data). Not retryable on this member; a write that meets
    /// it must not be answered, since another member may apply it.
    #[error("store read failed: {0}")]
    Storage(String),
}

impl From<Error> for StoreError {
    fn from(e: Error) -> Self {
        match e {
            Error::Refused(e) => e,
            Error::Storage(message) => StoreError::Internal(message),
        }
    }
}

/// Bytes a key-value adds to an answer.
fn kv_size(kv: &KeyValue) -> usize {
    kv.key.len() + kv.value.len() + 32
}
