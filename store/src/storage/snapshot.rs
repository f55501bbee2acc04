//! Snapshots of the state machine. A snapshot point ([`build`]) only fsyncs and records its meta; the bytes sent
//! to a member that needs a snapshot are every state keyspace read from one consistent fjall view when asked
//! ([`current`]), and installed in one atomic batch. openraft sends them in chunks of `snapshot_max_chunk_size`
//! so each fits a bus message.

use std::collections::HashSet;
use std::io::Cursor;

use fjall::{PersistMode, Readable};
use openraft::{AnyError, ErrorSubject, ErrorVerb, Snapshot, StorageIOError};
use serde::{Deserialize, Serialize};

use super::{decode, encode, SmState, Storage};
use crate::types::{LogId, SnapshotMeta, StorageError, TypeConfig};

/// Every `(key, value)` of one keyspace, in key order.
type Pairs = Vec<(Vec<u8>, Vec<u8>)>;

/// The bytes of a snapshot: each state keyspace by name with all its pairs.
#[derive(Serialize, Deserialize)]
struct Body {
    keyspaces: Vec<(String, Pairs)>,
}

fn snapshot_error(verb: ErrorVerb, e: impl std::error::Error + 'static) -> StorageError {
    StorageIOError::new(ErrorSubject::Snapshot(None), verb, AnyError::new(&e)).into()
}

fn read<E: std::error::Error + 'static>(e: E) -> StorageError {
    snapshot_error(ErrorVerb::Read, e)
}

fn write<E: std::error::Error + 'static>(e: E) -> StorageError {
    snapshot_error(ErrorVerb::Write, e)
}

/// The key, in the `raft_state` keyspace, of the meta of the last snapshot built or installed.
const SNAPSHOT_KEY: &str = "snapshot";

/// The snapshot id of the state at `last_applied`: the same on every member, since equal logs make equal states.
fn snapshot_id(last_applied: Option<&LogId>) -> String {
    match last_applied {
        Some(log_id) => format!(
            "{}-{}-{}",
            log_id.leader_id.term, log_id.leader_id.node_id, log_id.index
        ),
        None => "0-0-0".to_string(),
    }
}

/// The meta of the state in `view`.
fn meta_of(storage: &Storage, view: &fjall::Snapshot) -> Result<SnapshotMeta, StorageError> {
    let state: SmState = match view.get(&storage.meta, SmState::KEY).map_err(read)? {
        Some(bytes) => decode("state machine state", &bytes).map_err(read)?,
        None => SmState::default(),
    };
    Ok(SnapshotMeta {
        snapshot_id: snapshot_id(state.last_applied.as_ref()),
        last_log_id: state.last_applied,
        last_membership: state.membership,
    })
}

/// Takes a snapshot point: makes the applied state durable and records its meta, so that openraft may purge the
/// log behind it. No bytes are copied here, like etcd, whose snapshot is its database file: the data is read
/// from the live state when a member needs it ([`current`]), so the cost of a snapshot point does not grow with
/// the key space and its history. The returned data is empty; openraft only keeps the meta of a built snapshot.
pub(super) fn build(storage: &Storage) -> Result<Snapshot<TypeConfig>, StorageError> {
    let meta = meta_of(storage, &storage.db.snapshot())?;
    // openraft purges the log behind a snapshot: the state it covers must be durable first. The fsync covers
    // every write made before the view above, and the meta's record with it.
    storage
        .raft
        .insert(SNAPSHOT_KEY, encode(&meta).map_err(write)?)
        .map_err(write)?;
    storage.sync().map_err(write)?;
    Ok(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(Vec::new())),
    })
}

/// Replaces the whole state with `data` (a snapshot built by [`build`]) in one atomic, fsynced batch, and keeps
/// it as the current snapshot.
pub(super) fn install(
    storage: &Storage,
    meta: &SnapshotMeta,
    data: &[u8],
) -> Result<(), StorageError> {
    let body: Body = decode("snapshot", data).map_err(read)?;
    let mut batch = storage.db.batch().durability(Some(PersistMode::SyncAll));
    for (name, keyspace) in storage.state_keyspaces() {
        let pairs = body
            .keyspaces
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, pairs)| pairs.as_slice())
            .unwrap_or_default();
        // A removal and an insertion of one key in one batch share a sequence number, so only keys the snapshot
        // lacks are removed.
        let kept: HashSet<&[u8]> = pairs.iter().map(|(k, _)| k.as_slice()).collect();
        for guard in keyspace.iter() {
            let key = guard.key().map_err(write)?;
            if !kept.contains(&*key) {
                batch.remove(keyspace, key);
            }
        }
        for (key, value) in pairs {
            batch.insert(keyspace, key.as_slice(), value.as_slice());
        }
    }
    // The snapshot's own bookkeeping must agree with the meta openraft installs it under.
    let mut state: SmState = body
        .keyspaces
        .iter()
        .find(|(n, _)| n == "meta")
        .and_then(|(_, pairs)| pairs.iter().find(|(k, _)| k == SmState::KEY.as_bytes()))
        .map(|(_, v)| decode("state machine state", v))
        .transpose()
        .map_err(write)?
        .unwrap_or_default();
    state.last_applied = meta.last_log_id;
    state.membership = meta.last_membership.clone();
    batch.insert(&storage.meta, SmState::KEY, encode(&state).map_err(write)?);
    batch.insert(&storage.raft, SNAPSHOT_KEY, encode(meta).map_err(write)?);
    batch.commit().map_err(write)
}

/// The current snapshot: `None` until one was built or installed, then every state keyspace read from one
/// consistent view of the live state, under that view's meta (at or past the last snapshot point, so never
/// behind the log's purged prefix).
pub(super) fn current(storage: &Storage) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
    if storage.raft.get(SNAPSHOT_KEY).map_err(read)?.is_none() {
        return Ok(None);
    }
    let view = storage.db.snapshot();
    let meta = meta_of(storage, &view)?;
    let mut keyspaces = Vec::new();
    for (name, keyspace) in storage.state_keyspaces() {
        let mut pairs = Vec::new();
        for guard in view.iter(keyspace) {
            let (key, value) = guard.into_inner().map_err(read)?;
            pairs.push((key.to_vec(), value.to_vec()));
        }
        keyspaces.push((name.to_string(), pairs));
    }
    let data = encode(&Body { keyspaces }).map_err(read)?;
    Ok(Some(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(data)),
    }))
}
