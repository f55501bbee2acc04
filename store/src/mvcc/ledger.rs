//! The bookkeeping beside the keys: leases (grant, revoke, which keys are attached), alarms, and the byte count the
//! space quota reads.

use navarch_bus::store::{
    Alarm, AlarmKind, AlarmResponse, DeleteRequest, Event, LeaseResponse, ResponseHeader,
    StoreError, StoreResponse, TxnOp,
};
use serde::{Deserialize, Serialize};

use super::read::header;
use super::write::{Txn, Write};
use super::{Commit, Error, Ledger, Reader};

/// Bytes each kept version counts for besides its key and value: the version's key and bookkeeping, its change
/// record, its share of the live copy's overhead.
pub const VERSION_OVERHEAD: u64 = 64;

/// Bytes a lease counts for.
pub const LEASE_BYTES: u64 = 64;

/// Longest TTL a lease may have, in seconds (etcd's `MaxLeaseTTL`, about 285 years).
pub const MAX_LEASE_TTL: i64 = 9_000_000_000;

/// A live lease as the state machine keeps it; when it expires is the leader's business.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// Its id (positive).
    pub id: i64,
    /// The TTL it was granted with, in seconds.
    pub ttl: i64,
}

/// A change to the set of leases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseChange {
    /// A lease was granted.
    Granted(Lease),
    /// A lease was revoked (its keys are deleted by the same commit).
    Revoked(i64),
}

/// What a version of `key` with `value` counts for in [`Ledger::bytes`].
pub(super) fn version_bytes(key: &[u8], value: &[u8]) -> u64 {
    let len = key.len().saturating_add(value.len());
    u64::try_from(len)
        .unwrap_or(u64::MAX)
        .saturating_add(VERSION_OVERHEAD)
}

/// Whether the write adds data, and so is refused while the NOSPACE alarm is active (etcd's capped applier:
/// puts, transactions holding a put, lease grants).
pub fn adds_data(write: &Write) -> bool {
    write_cost(write) > 0
}

/// Bytes the write would add at most (etcd's quota cost): a put's version, the larger branch of a transaction,
/// a lease; 0 for writes that only delete or bookkeep.
pub fn write_cost(write: &Write) -> u64 {
    let put_cost = |ops: &[TxnOp]| {
        ops.iter()
            .map(|op| match op {
                TxnOp::Put(p) => version_bytes(&p.key, &p.value),
                _ => 0,
            })
            .fold(0u64, u64::saturating_add)
    };
    match write {
        Write::Put(put) => version_bytes(&put.key, &put.value),
        Write::Txn(txn) => put_cost(&txn.success).max(put_cost(&txn.failure)),
        Write::LeaseGrant(_) => LEASE_BYTES,
        _ => 0,
    }
}

/// The key of an attachment in the lease index: the lease id big-endian (ids are positive, so they sort), then
/// the key.
pub fn lease_key(id: i64, key: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + key.len());
    out.extend_from_slice(&id.to_be_bytes());
    out.extend_from_slice(key);
    out
}

/// `(lease, key)` pairs: keys attached to leases.
pub type Attachments = Vec<(i64, Vec<u8>)>;

/// Attachments a revision's events end and start, as `(lease, key)`: a key leaves the lease of its previous
/// version and joins the lease of its new one. Keys that stay on the same lease appear in neither list, so both
/// can be applied in one batch.
pub fn attachments(events: &[Event]) -> (Attachments, Attachments) {
    let mut detach = Vec::new();
    let mut attach = Vec::new();
    for event in events {
        let before = event.prev_kv.as_ref().map_or(0, |p| p.lease);
        let after = if event.kv.version > 0 {
            event.kv.lease
        } else {
            0
        };
        if before == after {
            continue;
        }
        if before != 0 {
            detach.push((before, event.kv.key.clone()));
        }
        if after != 0 {
            attach.push((after, event.kv.key.clone()));
        }
    }
    (detach, attach)
}

/// Checks a grant without reading the store: the TTL within bounds and the id not negative.
pub(super) fn validate_grant(lease: &Lease) -> Result<(), StoreError> {
    if lease.ttl < 1 || lease.ttl > MAX_LEASE_TTL {
        return Err(StoreError::InvalidArgument(format!(
            "lease TTL {} is outside 1..={MAX_LEASE_TTL} seconds",
            lease.ttl
        )));
    }
    if lease.id < 0 {
        return Err(StoreError::InvalidArgument("negative lease id".into()));
    }
    Ok(())
}

/// Grants `lease` (id 0: the next id after every id ever granted). The revision does not move.
pub(super) fn grant(
    reader: &impl Reader,
    lease: Lease,
    mut ledger: Ledger,
) -> Result<(StoreResponse, Commit), Error> {
    let id = match lease.id {
        0 => ledger.last_lease.checked_add(1).ok_or_else(|| {
            Error::Refused(StoreError::InvalidArgument(
                "lease ids are exhausted".into(),
            ))
        })?,
        id if reader.lease(id)?.is_some() => return Err(StoreError::LeaseExists { id }.into()),
        id => id,
    };
    ledger.last_lease = ledger.last_lease.max(id);
    ledger.bytes = ledger.bytes.saturating_add(LEASE_BYTES);
    let revisions = reader.revisions()?;
    let granted = Lease { id, ttl: lease.ttl };
    let response = StoreResponse::Lease(LeaseResponse {
        header: header(revisions.current),
        id,
        ttl: lease.ttl,
    });
    let commit = Commit {
        revisions,
        ledger,
        leases: vec![LeaseChange::Granted(granted)],
        ..Default::default()
    };
    Ok((response, commit))
}

/// Revokes lease `id` inside `txn`: every key still attached to it is deleted, at the write's one revision.
pub(super) fn revoke<R: Reader>(txn: &mut Txn<'_, R>, id: i64) -> Result<ResponseHeader, Error> {
    if txn.base.lease(id)?.is_none() {
        return Err(StoreError::LeaseNotFound { id }.into());
    }
    let mut keys = Vec::new();
    txn.base.lease_keys(id, &mut |key| {
        keys.push(key);
        true
    })?;
    for key in keys {
        if txn.get(&key)?.is_some_and(|kv| kv.lease == id) {
            txn.delete(&DeleteRequest {
                key,
                ..Default::default()
            })?;
        }
    }
    txn.ledger.bytes = txn.ledger.bytes.saturating_sub(LEASE_BYTES);
    txn.leases.push(LeaseChange::Revoked(id));
    Ok(header(0))
}

/// Raises `alarm` (once: raising an active alarm changes nothing) or clears every alarm of `disarm`'s kind.
/// Answers the alarms after the change; the revision does not move.
pub(super) fn alarm(
    reader: &impl Reader,
    raise: Option<&Alarm>,
    disarm: Option<AlarmKind>,
    mut ledger: Ledger,
) -> Result<(StoreResponse, Commit), Error> {
    if let Some(alarm) = raise {
        if !ledger.alarms.contains(alarm) {
            ledger.alarms.push(alarm.clone());
        }
    }
    if let Some(kind) = disarm {
        ledger.alarms.retain(|a| a.kind != kind);
    }
    let revisions = reader.revisions()?;
    let response = StoreResponse::Alarms(AlarmResponse {
        header: header(revisions.current),
        alarms: ledger.alarms.clone(),
    });
    let commit = Commit {
        revisions,
        ledger,
        ..Default::default()
    };
    Ok((response, commit))
}

/// Whether the NOSPACE alarm is active.
pub(super) fn out_of_space(ledger: &Ledger) -> bool {
    ledger.alarms.iter().any(|a| a.kind == AlarmKind::NoSpace)
}
