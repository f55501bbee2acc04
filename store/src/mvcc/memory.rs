//! An in-memory [`Reader`] that persists [`Commit`]s in maps: the reference the core's tests run against.

use std::collections::BTreeMap;

use navarch_bus::store::{KeyValue, StoreReply};

use super::{apply, Commit, Error, KeyRange, Limits, Reader, Revisions, Write};

/// The whole store in maps.
#[derive(Debug, Default)]
pub struct Memory {
    pub revisions: Revisions,
    pub kv: BTreeMap<Vec<u8>, KeyValue>,
    pub versions: BTreeMap<(Vec<u8>, i64), KeyValue>,
    pub changes: BTreeMap<i64, Vec<Vec<u8>>>,
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
}
