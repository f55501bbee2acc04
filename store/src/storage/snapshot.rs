//! Snapshots of the state machine: every state keyspace copied from one fjall snapshot, kept as the member's
//! current snapshot in `snapshot/current`, and installed in one atomic batch. openraft sends them in chunks of
//! `snapshot_max_chunk_size` so each fits a bus message.

use std::collections::HashSet;
use std::io::{Cursor, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use fjall::{PersistMode, Readable};
use openraft::{AnyError, ErrorSubject, ErrorVerb, Snapshot, StorageIOError};
use serde::{Deserialize, Serialize};

use super::{decode, encode, Error, SmState, Storage};
use crate::types::{SnapshotMeta, StorageError, TypeConfig};

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

fn current_path(storage: &Storage) -> PathBuf {
    storage.dir().join("snapshot").join("current")
}

/// Builds a snapshot of the applied state and keeps it as the current one.
pub(super) fn build(storage: &Storage) -> Result<Snapshot<TypeConfig>, StorageError> {
    let view = storage.db.snapshot();
    let state: SmState = match view.get(&storage.meta, SmState::KEY).map_err(read)? {
        Some(bytes) => decode("state machine state", &bytes).map_err(read)?,
        None => SmState::default(),
    };
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
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let meta = SnapshotMeta {
        snapshot_id: match &state.last_applied {
            Some(log_id) => format!("{}-{}-{nanos}", log_id.leader_id.term, log_id.index),
            None => format!("0-0-{nanos}"),
        },
        last_log_id: state.last_applied,
        last_membership: state.membership,
    };
    // openraft purges the log behind a snapshot: the state it covers must be durable first.
    storage.sync().map_err(write)?;
    save_current(storage, &meta, &data)?;
    Ok(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(data)),
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
    batch.commit().map_err(write)?;
    save_current(storage, meta, data)
}

/// The current snapshot, if one was built or installed.
pub(super) fn load_current(
    storage: &Storage,
) -> Result<Option<Snapshot<TypeConfig>>, StorageError> {
    let path = current_path(storage);
    let bytes = match std::fs::read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(read(e)),
    };
    let (meta, data): (SnapshotMeta, Vec<u8>) = decode("snapshot file", &bytes).map_err(read)?;
    Ok(Some(Snapshot {
        meta,
        snapshot: Box::new(Cursor::new(data)),
    }))
}

/// Writes the current snapshot file atomically: a temporary file, fsynced, renamed over the old one.
fn save_current(storage: &Storage, meta: &SnapshotMeta, data: &[u8]) -> Result<(), StorageError> {
    let path = current_path(storage);
    let bytes = encode(&(meta, data)).map_err(write)?;
    write_atomically(&path, &bytes).map_err(write)
}

fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp).map_err(io)?;
    file.write_all(bytes).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(io)?;
    }
    Ok(())
}
