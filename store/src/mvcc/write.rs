//! Writes: validation, put / delete / transaction at one revision (lease, alarm and compaction writes are passed
//! on to their modules), and the split of a revision's changes into per-stream batches.

use std::collections::{BTreeMap, BTreeSet};

use navarch_bus::store::{
    stream_of, Alarm, AlarmKind, ChangeBatch, Compare, CompareResult, CompareTarget, DeleteRequest,
    DeleteResponse, Event, EventKind, KeyValue, PutRequest, PutResponse, RangeRequest, StoreError,
    StoreResponse, TxnOp, TxnOpResponse, TxnRequest, TxnResponse,
};
use serde::{Deserialize, Serialize};

use super::compact::compact;
use super::ledger::{self, version_bytes, Lease, LeaseChange};
use super::read::{header, range};
use super::{Commit, Error, KeyRange, Ledger, Limits, Reader, Revisions};

/// Most compares and most operations per branch of one transaction (etcd's `--max-txn-ops` default).
pub const MAX_TXN_OPS: usize = 128;

/// A write, as it travels through the Raft log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Write {
    /// Write one key.
    Put(PutRequest),
    /// Delete a key or a range.
    Delete(DeleteRequest),
    /// Compare, then write.
    Txn(TxnRequest),
    /// Drop history below a revision.
    Compact(i64),
    /// Grant a lease (id 0: the store picks it); the TTL is final (the proposer applied the minimum).
    LeaseGrant(Lease),
    /// Revoke a lease, deleting the keys attached to it.
    LeaseRevoke(i64),
    /// Raise an alarm on behalf of a member.
    AlarmRaise(Alarm),
    /// Clear every alarm of a kind.
    AlarmDisarm(AlarmKind),
}

/// Checks a write without reading the store: keys present, ranges in order, transactions within etcd's limits and
/// changing each key at most once.
pub fn validate(write: &Write) -> Result<(), StoreError> {
    match write {
        Write::Put(put) => validate_put(put),
        Write::Delete(delete) => KeyRange::new(&delete.key, &delete.range_end).map(drop),
        Write::Txn(txn) => validate_txn(txn),
        Write::Compact(revision) if *revision < 0 => Err(invalid("negative compact revision")),
        Write::Compact(_) => Ok(()),
        Write::LeaseGrant(lease) => ledger::validate_grant(lease),
        Write::LeaseRevoke(_) | Write::AlarmRaise(_) | Write::AlarmDisarm(_) => Ok(()),
    }
}

fn invalid(message: &str) -> StoreError {
    StoreError::InvalidArgument(message.into())
}

fn validate_put(put: &PutRequest) -> Result<(), StoreError> {
    if put.key.is_empty() {
        return Err(invalid("key is not provided"));
    }
    Ok(())
}

fn validate_range(request: &RangeRequest) -> Result<(), StoreError> {
    if request.limit < 0 || request.revision < 0 {
        return Err(invalid("negative limit or revision"));
    }
    KeyRange::new(&request.key, &request.range_end).map(drop)
}

fn validate_txn(txn: &TxnRequest) -> Result<(), StoreError> {
    if [txn.compare.len(), txn.success.len(), txn.failure.len()]
        .iter()
        .any(|n| *n > MAX_TXN_OPS)
    {
        return Err(invalid("too many operations in txn request"));
    }
    if txn.compare.iter().any(|c| c.key.is_empty()) {
        return Err(invalid("key is not provided"));
    }
    for branch in [&txn.success, &txn.failure] {
        let mut puts = BTreeSet::new();
        let mut deletes = Vec::new();
        for op in branch {
            match op {
                TxnOp::Range(r) => validate_range(r)?,
                TxnOp::Put(p) => {
                    validate_put(p)?;
                    if !puts.insert(p.key.as_slice()) {
                        return Err(invalid("duplicate key given in txn request"));
                    }
                }
                TxnOp::Delete(d) => deletes.push(KeyRange::new(&d.key, &d.range_end)?),
            }
        }
        // etcd refuses a put inside a deleted range of the same branch: each key changes at most once per revision.
        if deletes
            .iter()
            .any(|range| puts.iter().any(|key| range.contains(key)))
        {
            return Err(invalid("duplicate key given in txn request"));
        }
    }
    Ok(())
}

/// Applies `write` to the state `reader` shows: the answer, and what to persist. A refused write
/// ([`Error::Refused`]) changes nothing.
pub fn apply(
    reader: &impl Reader,
    write: &Write,
    limits: &Limits,
) -> Result<(StoreResponse, Commit), Error> {
    validate(write)?;
    let mut txn = Txn::new(reader)?;
    // etcd's capped applier: once space ran out, every member refuses what would add data.
    if ledger::out_of_space(&txn.ledger) && ledger::adds_data(write) {
        return Err(StoreError::NoSpace.into());
    }
    let response = match write {
        Write::Compact(revision) => return compact(reader, *revision, txn.ledger),
        Write::LeaseGrant(lease) => return ledger::grant(reader, *lease, txn.ledger),
        Write::AlarmRaise(alarm) => return ledger::alarm(reader, Some(alarm), None, txn.ledger),
        Write::AlarmDisarm(kind) => return ledger::alarm(reader, None, Some(*kind), txn.ledger),
        Write::Put(put) => {
            txn.reads_follow = false;
            StoreResponse::Put(txn.put(put)?)
        }
        Write::Delete(delete) => {
            txn.reads_follow = false;
            StoreResponse::Delete(txn.delete(delete)?)
        }
        Write::Txn(request) => StoreResponse::Txn(txn.run(request, limits)?),
        Write::LeaseRevoke(id) => StoreResponse::LeaseRevoke(ledger::revoke(&mut txn, *id)?),
    };
    let revisions = txn.after();
    let response = with_revision(response, revisions.current);
    Ok((
        response,
        Commit {
            revisions,
            events: txn.events,
            compaction: None,
            ledger: txn.ledger,
            leases: txn.leases,
        },
    ))
}

/// Sets the revision of every header in `response` to the revision the write committed at.
fn with_revision(response: StoreResponse, revision: i64) -> StoreResponse {
    let stamp = |r: &mut navarch_bus::store::ResponseHeader| r.revision = revision;
    match response {
        StoreResponse::Put(mut r) => {
            stamp(&mut r.header);
            StoreResponse::Put(r)
        }
        StoreResponse::Delete(mut r) => {
            stamp(&mut r.header);
            StoreResponse::Delete(r)
        }
        StoreResponse::LeaseRevoke(mut h) => {
            stamp(&mut h);
            StoreResponse::LeaseRevoke(h)
        }
        StoreResponse::Txn(mut r) => {
            stamp(&mut r.header);
            for op in &mut r.responses {
                match op {
                    TxnOpResponse::Range(r) => stamp(&mut r.header),
                    TxnOpResponse::Put(r) => stamp(&mut r.header),
                    TxnOpResponse::Delete(r) => stamp(&mut r.header),
                }
            }
            StoreResponse::Txn(r)
        }
        other => other,
    }
}

/// One write in progress: the committed state plus the keys it changed so far, all at `base.current + 1`.
pub(super) struct Txn<'a, R> {
    pub(super) base: &'a R,
    start: Revisions,
    /// Keys changed so far (`None`: deleted), so later operations of the transaction see them.
    pending: BTreeMap<Vec<u8>, Option<KeyValue>>,
    /// Whether reads may follow the writes (a transaction): only then are writes recorded in `pending`, which for
    /// a delete of a large range costs more than the delete.
    reads_follow: bool,
    events: Vec<Event>,
    keys: u64,
    /// Bookkeeping as of now: bytes grow with every version written.
    pub(super) ledger: Ledger,
    /// Leases revoked by this write.
    pub(super) leases: Vec<LeaseChange>,
}

impl<'a, R: Reader> Txn<'a, R> {
    fn new(base: &'a R) -> Result<Self, Error> {
        let start = base.revisions()?;
        Ok(Self {
            base,
            start,
            pending: BTreeMap::new(),
            reads_follow: true,
            events: Vec::new(),
            keys: start.keys,
            ledger: base.ledger()?,
            leases: Vec::new(),
        })
    }

    /// The revision this write commits at.
    fn revision(&self) -> i64 {
        self.start.current + 1
    }

    /// Bookkeeping as of now: the revision moves only once something changed.
    fn after(&self) -> Revisions {
        Revisions {
            current: self.start.current + i64::from(!self.events.is_empty()),
            compacted: self.start.compacted,
            keys: self.keys,
        }
    }

    fn run(&mut self, request: &TxnRequest, limits: &Limits) -> Result<TxnResponse, Error> {
        let mut succeeded = true;
        for compare in &request.compare {
            if !self.compare(compare)? {
                succeeded = false;
                break;
            }
        }
        let ops = if succeeded {
            &request.success
        } else {
            &request.failure
        };
        let mut responses = Vec::with_capacity(ops.len());
        for op in ops {
            responses.push(match op {
                TxnOp::Range(r) => TxnOpResponse::Range(range(&*self, r, limits)?),
                TxnOp::Put(p) => TxnOpResponse::Put(self.put(p)?),
                TxnOp::Delete(d) => TxnOpResponse::Delete(self.delete(d)?),
            });
        }
        Ok(TxnResponse {
            header: header(0),
            succeeded,
            responses,
        })
    }

    /// etcd's compare: an absent key has version, create and mod revision 0, and never satisfies a value compare.
    fn compare(&self, compare: &Compare) -> Result<bool, Error> {
        let kv = self.get(&compare.key)?;
        let ordering = match (&compare.target, &kv) {
            (CompareTarget::Value(_), None) => return Ok(false),
            (CompareTarget::Value(want), Some(kv)) => kv.value.as_slice().cmp(want.as_slice()),
            (CompareTarget::Version(want), kv) => kv.as_ref().map_or(0, |kv| kv.version).cmp(want),
            (CompareTarget::CreateRevision(want), kv) => {
                kv.as_ref().map_or(0, |kv| kv.create_revision).cmp(want)
            }
            (CompareTarget::ModRevision(want), kv) => {
                kv.as_ref().map_or(0, |kv| kv.mod_revision).cmp(want)
            }
            (CompareTarget::Lease(want), kv) => kv.as_ref().map_or(0, |kv| kv.lease).cmp(want),
        };
        Ok(match compare.result {
            CompareResult::Equal => ordering.is_eq(),
            CompareResult::NotEqual => ordering.is_ne(),
            CompareResult::Greater => ordering.is_gt(),
            CompareResult::Less => ordering.is_lt(),
        })
    }

    fn put(&mut self, put: &PutRequest) -> Result<PutResponse, Error> {
        // etcd's "requested lease not found": the whole write is refused.
        if put.lease != 0 && self.base.lease(put.lease)?.is_none() {
            return Err(StoreError::LeaseNotFound { id: put.lease }.into());
        }
        let prev = self.get(&put.key)?;
        let revision = self.revision();
        let kv = KeyValue {
            key: put.key.clone(),
            create_revision: prev.as_ref().map_or(revision, |p| p.create_revision),
            mod_revision: revision,
            version: prev.as_ref().map_or(1, |p| p.version + 1),
            value: put.value.clone(),
            lease: put.lease,
        };
        if prev.is_none() {
            self.keys += 1;
        }
        self.ledger.bytes = self
            .ledger
            .bytes
            .saturating_add(version_bytes(&kv.key, &kv.value));
        if self.reads_follow {
            self.pending.insert(put.key.clone(), Some(kv.clone()));
        }
        self.events.push(Event {
            kind: EventKind::Put,
            kv,
            prev_kv: prev.clone(),
        });
        Ok(PutResponse {
            header: header(0),
            prev_kv: prev.filter(|_| put.prev_kv),
        })
    }

    pub(super) fn delete(&mut self, delete: &DeleteRequest) -> Result<DeleteResponse, Error> {
        let range = KeyRange::new(&delete.key, &delete.range_end)?;
        let mut doomed = Vec::new();
        self.scan(&range, &mut |kv| {
            doomed.push(kv);
            true
        })?;
        let revision = self.revision();
        let deleted = doomed.len() as i64;
        let prev_kvs = if delete.prev_kv {
            doomed.clone()
        } else {
            Vec::new()
        };
        self.events.reserve(doomed.len());
        for prev in doomed {
            let tombstone = KeyValue {
                key: prev.key.clone(),
                mod_revision: revision,
                ..Default::default()
            };
            if self.reads_follow {
                self.pending.insert(prev.key.clone(), None);
            }
            self.keys = self.keys.saturating_sub(1);
            self.ledger.bytes = self
                .ledger
                .bytes
                .saturating_add(version_bytes(&prev.key, &[]));
            self.events.push(Event {
                kind: EventKind::Delete,
                kv: tombstone,
                prev_kv: Some(prev),
            });
        }
        Ok(DeleteResponse {
            header: header(0),
            deleted,
            prev_kvs,
        })
    }
}

/// Reads inside a write see the write's own changes (etcd's transactions do).
impl<R: Reader> Reader for Txn<'_, R> {
    fn revisions(&self) -> Result<Revisions, Error> {
        Ok(self.after())
    }

    fn get(&self, key: &[u8]) -> Result<Option<KeyValue>, Error> {
        match self.pending.get(key) {
            Some(kv) => Ok(kv.clone()),
            None => self.base.get(key),
        }
    }

    fn scan(&self, range: &KeyRange, visit: &mut dyn FnMut(KeyValue) -> bool) -> Result<(), Error> {
        let mut pending = self
            .pending
            .iter()
            .filter(|(key, _)| range.contains(key))
            .peekable();
        if pending.peek().is_none() {
            return self.base.scan(range, visit);
        }
        let mut open = true;
        self.base.scan(range, &mut |kv| {
            while let Some((key, changed)) =
                pending.next_if(|(key, _)| key.as_slice() <= kv.key.as_slice())
            {
                let replaces = *key == kv.key;
                if let Some(changed) = changed {
                    if !visit(changed.clone()) {
                        open = false;
                        return false;
                    }
                }
                if replaces {
                    return true;
                }
            }
            open = visit(kv);
            open
        })?;
        if open {
            for changed in pending.filter_map(|(_, kv)| kv.clone()) {
                if !visit(changed) {
                    break;
                }
            }
        }
        Ok(())
    }

    // Versions written by this transaction are at a revision no read inside it can ask for (it is not committed),
    // so the committed versions are the whole answer.
    fn scan_versions(
        &self,
        range: &KeyRange,
        visit: &mut dyn FnMut(KeyValue) -> bool,
    ) -> Result<(), Error> {
        self.base.scan_versions(range, visit)
    }

    fn version_before(&self, key: &[u8], revision: i64) -> Result<Option<KeyValue>, Error> {
        self.base.version_before(key, revision)
    }

    fn scan_changes(
        &self,
        from: i64,
        visit: &mut dyn FnMut(i64, Vec<Vec<u8>>) -> bool,
    ) -> Result<(), Error> {
        self.base.scan_changes(from, visit)
    }

    fn ledger(&self) -> Result<Ledger, Error> {
        Ok(self.ledger.clone())
    }

    fn lease(&self, id: i64) -> Result<Option<Lease>, Error> {
        self.base.lease(id)
    }

    fn leases(&self, visit: &mut dyn FnMut(Lease) -> bool) -> Result<(), Error> {
        self.base.leases(visit)
    }

    fn lease_keys(&self, id: i64, visit: &mut dyn FnMut(Vec<u8>) -> bool) -> Result<(), Error> {
        self.base.lease_keys(id, visit)
    }
}

/// Splits the changes of one revision into one batch per stream, in the order the streams first appear; `prev_of`
/// names each stream's previous revision.
pub fn split_by_stream(
    revision: i64,
    events: Vec<Event>,
    mut prev_of: impl FnMut(&str) -> i64,
) -> Vec<ChangeBatch> {
    let mut batches: Vec<ChangeBatch> = Vec::new();
    for event in events {
        let stream = stream_of(&event.kv.key);
        match batches.iter_mut().find(|b| b.stream == stream) {
            Some(batch) => batch.events.push(event),
            None => batches.push(ChangeBatch {
                revision,
                prev: prev_of(&stream),
                stream,
                events: vec![event],
            }),
        }
    }
    batches
}
