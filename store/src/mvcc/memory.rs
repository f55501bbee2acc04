//! An in-memory [`Reader`] that persists [`Commit`]s in maps: the reference the core's tests run against.

use std::collections::{BTreeMap, BTreeSet};

use navarch_bus::store::{KeyValue, StoreReply};

use super::{
    apply, attachments, Commit, Error, KeyRange, Lease, LeaseChange, Ledger, Limits, Reader,
    Revisions, Write,
};

/// The whole store in maps.
#[derive(Debug, Default)]
pub struct Memory {
    pub revisions: Revisions,
    pub kv: BTreeMap<Vec<u8>, KeyValue>,
    pub versions: BTreeMap<(Vec<u8>, i64), KeyValue>,
    pub changes: BTreeMap<i64, Vec<Vec<u8>>>,
    pub ledger: Ledger,
    pub leases: BTreeMap<i64, Lease>,
    pub lease_keys: BTreeSet<(i64, Vec<u8>)>,
}

impl Memory {
    /// Applies `write` like the state machine does: refusals change nothing.
    pub fn write(&mut self, write: Write) -> StoreReply {
        match apply(self, &write, &Limits::default()) {
            Ok((response, commit)) => {
                self.commit(commit);
                Ok(response)
            }
            Err(Error::Refused(e)) => Err(e),
            Err(e) => panic!("memory store failed: {e}"),
        }
    }

    pub fn commit(&mut self, commit: Commit) {
        let revision = commit.revisions.current;
        let (detach, attach) = attachments(&commit.events);
        for pair in detach {
            self.lease_keys.remove(&pair);
        }
        self.lease_keys.extend(attach);
        for change in &commit.leases {
            match change {
                LeaseChange::Granted(lease) => {
                    self.leases.insert(lease.id, *lease);
                }
                LeaseChange::Revoked(id) => {
                    self.leases.remove(id);
                }
            }
        }
        self.ledger = commit.ledger.clone();
        if !commit.events.is_empty() {
            let keys = commit.events.iter().map(|e| e.kv.key.clone()).collect();
            self.changes.insert(revision, keys);
        }
        for event in commit.events {
            let key = event.kv.key.clone();
            if event.kv.version == 0 {
                self.kv.remove(&key);
            } else {
                self.kv.insert(key.clone(), event.kv.clone());
            }
            self.versions.insert((key, revision), event.kv);
        }
        if let Some(compaction) = commit.compaction {
            for version in compaction.versions {
                self.versions.remove(&version);
            }
            self.changes
                .retain(|revision, _| *revision >= compaction.to);
        }
        self.revisions = commit.revisions;
    }
}

impl Reader for Memory {
    fn revisions(&self) -> Result<Revisions, Error> {
        Ok(self.revisions)
    }

    fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, Error> {
        Ok(self.kv.get(key).cloned())
    }

    fn scan(&self, range: &KeyRange, visit: &mut dyn FnMut(KeyValue) -> bool) -> Result<(), Error> {
        for kv in self.kv.values().filter(|kv| range.contains(&kv.key)) {
            if !visit(kv.clone()) {
                break;
            }
        }
        Ok(())
    }

    fn scan_versions(
        &self,
        range: &KeyRange,
        visit: &mut dyn FnMut(KeyValue) -> bool,
    ) -> Result<(), Error> {
        for ((key, _), kv) in &self.versions {
            if range.contains(key) && !visit(kv.clone()) {
                break;
            }
        }
        Ok(())
    }

    fn version_before(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, Error> {
        Ok(self
            .versions
            .range((key.to_vec(), 0)..(key.to_vec(), revision))
            .next_back()
            .map(|(_, kv)| kv.clone()))
    }

    fn scan_changes(
        &self,
        from: i64,
        visit: &mut dyn FnMut(i64, Vec<Vec<u8>>) -> bool,
    ) -> Result<(), Error> {
        for (revision, keys) in self.changes.range(from..) {
            if !visit(*revision, keys.clone()) {
                break;
            }
        }
        Ok(())
    }

    fn ledger(&self) -> Result<Ledger, Error> {
        Ok(self.ledger.clone())
    }

    fn lease(&self, id: i64) -> Result<Option<Lease>, Error> {
        Ok(self.leases.get(&id).copied())
    }

    fn leases(&self, visit: &mut dyn FnMut(Lease) -> bool) -> Result<(), Error> {
        for lease in self.leases.values() {
            if !visit(*lease) {
                break;
            }
        }
        Ok(())
    }

    fn lease_keys(&self, id: i64, visit: &mut dyn FnMut(Vec<u8>) -> bool) -> Result<(), Error> {
        for (_, key) in self
            .lease_keys
            .range((id, Vec::new())..)
            .take_while(|(l, _)| *l == id)
        {
            if !visit(key.clone()) {
                break;
            }
        }
        Ok(())
    }
}
