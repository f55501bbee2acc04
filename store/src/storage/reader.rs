//! [`FjallReader`]: the MVCC core's [`Reader`] over one fjall snapshot of the state machine's keyspaces.

use std::ops::Bound;

use fjall::{Readable, Snapshot};
use navarch_bus::store::KeyValue;

use super::{decode, state_machine::SmState, Storage};
use crate::mvcc::{
    self, encode_version, lease_key, revision_bytes, version_bounds, KeyRange, Lease, Ledger,
    Reader, Revisions,
};

/// A consistent view of the state machine: every read sees the same applied state, whatever commits meanwhile.
pub struct FjallReader {
    storage: Storage,
    snapshot: Snapshot,
}

fn failed(e: impl std::fmt::Display) -> mvcc::Error {
    mvcc::Error::Storage(e.to_string())
}

impl FjallReader {
    pub(super) fn new(storage: Storage) -> Self {
        let snapshot = storage.db.snapshot();
        Self { storage, snapshot }
    }

    /// The state machine's bookkeeping in this view.
    pub fn state(&self) -> Result<SmState, mvcc::Error> {
        match self
            .snapshot
            .get(&self.storage.meta, SmState::KEY)
            .map_err(failed)?
        {
            Some(bytes) => decode("state machine state", &bytes).map_err(failed),
            None => Ok(SmState::default()),
        }
    }

    /// The last revision that changed `stream` (0: none).
    pub fn stream_last(&self, stream: &str) -> Result<i64, mvcc::Error> {
        let bytes = self
            .snapshot
            .get(&self.storage.streams, stream)
            .map_err(failed)?;
        Ok(bytes.map_or(0, |b| revision_from(&b)))
    }

    /// Every stream with its last revision.
    pub fn streams(&self) -> Result<Vec<(String, i64)>, mvcc::Error> {
        let mut out = Vec::new();
        for guard in self.snapshot.iter(&self.storage.streams) {
            let (key, value) = guard.into_inner().map_err(failed)?;
            out.push((
                String::from_utf8_lossy(&key).into_owned(),
                revision_from(&value),
            ));
        }
        Ok(out)
    }

    /// Visits `(key, value)` pairs of `keyspace` within the bounds, decoding values as `T`.
    fn visit<T: serde::de::DeserializeOwned>(
        &self,
        keyspace: &fjall::Keyspace,
        what: &'static str,
        bounds: (Bound<Vec<u8>>, Bound<Vec<u8>>),
        visit: &mut dyn FnMut(&[u8], T) -> bool,
    ) -> Result<(), mvcc::Error> {
        if let (Bound::Included(start), Bound::Excluded(end)) = (&bounds.0, &bounds.1) {
            if start >= end {
                return Ok(());
            }
        }
        for guard in self.snapshot.range(keyspace, bounds) {
            let (key, value) = guard.into_inner().map_err(failed)?;
            let value = decode(what, &value).map_err(failed)?;
            if !visit(&key, value) {
                break;
            }
        }
        Ok(())
    }
}

/// Decodes a big-endian revision; a malformed one reads as 0, which no stored revision is.
fn revision_from(bytes: &[u8]) -> i64 {
    bytes.try_into().map(i64::from_be_bytes).unwrap_or_default()
}

fn upper(end: Option<Vec<u8>>) -> Bound<Vec<u8>> {
    end.map_or(Bound::Unbounded, Bound::Excluded)
}

impl Reader for FjallReader {
    fn revisions(&self) -> Result<Revisions, mvcc::Error> {
        Ok(self.state()?.revisions)
    }

    fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, mvcc::Error> {
        match self.snapshot.get(&self.storage.kv, key).map_err(failed)? {
            Some(bytes) => Ok(Some(decode("key-value", &bytes).map_err(failed)?)),
            None => Ok(None),
        }
    }

    fn scan(
        &self,
        range: &KeyRange,
        visit: &mut dyn FnMut(KeyValue) -> bool,
    ) -> Result<(), mvcc::Error> {
        let bounds = (Bound::Included(range.start().to_vec()), upper(range.end()));
        self.visit(&self.storage.kv, "key-value", bounds, &mut |_, kv| {
            visit(kv)
        })
    }

    fn scan_versions(
        &self,
        range: &KeyRange,
        visit: &mut dyn FnMut(KeyValue) -> bool,
    ) -> Result<(), mvcc::Error> {
        let (start, end) = version_bounds(range);
        let bounds = (Bound::Included(start), upper(end));
        self.visit(
            &self.storage.versions,
            "key version",
            bounds,
            &mut |_, kv| visit(kv),
        )
    }

    fn version_before(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, mvcc::Error> {
        if revision <= 0 {
            return Ok(None);
        }
        let range = encode_version(key, 0)..encode_version(key, revision);
        match self
            .snapshot
            .range(&self.storage.versions, range)
            .next_back()
        {
            Some(guard) => {
                let (_, value) = guard.into_inner().map_err(failed)?;
                Ok(Some(decode("key version", &value).map_err(failed)?))
            }
            None => Ok(None),
        }
    }

    fn scan_changes(
        &self,
        from: i64,
        visit: &mut dyn FnMut(i64, Vec<Vec<u8>>) -> bool,
    ) -> Result<(), mvcc::Error> {
        let bounds = (
            Bound::Included(revision_bytes(from.max(0)).to_vec()),
            Bound::Unbounded,
        );
        self.visit(
            &self.storage.changes,
            "change record",
            bounds,
            &mut |key, keys| visit(revision_from(key), keys),
        )
    }

    fn ledger(&self) -> Result<Ledger, mvcc::Error> {
        match self
            .snapshot
            .get(&self.storage.meta, SmState::LEDGER_KEY)
            .map_err(failed)?
        {
            Some(bytes) => decode("ledger", &bytes).map_err(failed),
            None => Ok(Ledger::default()),
        }
    }

    fn lease(&self, id: i64) -> Result<Option<Lease>, mvcc::Error> {
        match self
            .snapshot
            .get(&self.storage.leases, id.to_be_bytes())
            .map_err(failed)?
        {
            Some(bytes) => Ok(Some(decode("lease", &bytes).map_err(failed)?)),
            None => Ok(None),
        }
    }

    fn leases(&self, visit: &mut dyn FnMut(Lease) -> bool) -> Result<(), mvcc::Error> {
        let all = (Bound::Unbounded, Bound::Unbounded);
        self.visit(&self.storage.leases, "lease", all, &mut |_, lease| {
            visit(lease)
        })
    }

    fn lease_keys(
        &self,
        id: i64,
        visit: &mut dyn FnMut(Vec<u8>) -> bool,
    ) -> Result<(), mvcc::Error> {
        for guard in self
            .snapshot
            .prefix(&self.storage.lease_keys, lease_key(id, b""))
        {
            let key = guard.key().map_err(failed)?;
            let Some(user_key) = key.get(8..) else {
                continue;
            };
            if !visit(user_key.to_vec()) {
                break;
            }
        }
        Ok(())
    }
}
