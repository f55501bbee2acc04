//! The fjall log and state machine: openraft's conformance suite, persistence across reopening, snapshots.

use navarch_bus::store::{HistoryRequest, PutRequest, RangeRequest, StoreResponse};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::{log_id, StoreBuilder, Suite};
use openraft::{EntryPayload, RaftSnapshotBuilder};
use tempfile::TempDir;
use tokio::sync::mpsc;

use super::{LogStore, Notice, StateMachine, Storage};
use crate::mvcc::{self, Limits, Write};
use crate::types::{Entry, StorageError, TypeConfig};

struct Builder;

impl StoreBuilder<TypeConfig, LogStore, StateMachine, TempDir> for Builder {
    async fn build(&self) -> Result<(TempDir, LogStore, StateMachine), StorageError> {
        let dir = tempfile::tempdir().expect("temp dir");
        let storage = Storage::open(dir.path()).await.expect("open storage");
        let (notices, _) = mpsc::unbounded_channel();
        let log = LogStore::new(storage.clone());
        Ok((
            dir,
            log,
            StateMachine::new(storage, Limits::default(), notices),
        ))
    }
}

#[test]
fn passes_openraft_storage_suite() -> Result<(), StorageError> {
    Suite::test_all(Builder)
}

fn put_entry(index: u64, key: &str, value: &str) -> Entry {
    Entry {
        log_id: log_id(1, 1, index),
        payload: EntryPayload::Normal(Write::Put(PutRequest {
            key: key.into(),
            value: value.into(),
            ..Default::default()
        })),
    }
}

fn value_of(storage: &Storage, key: &str) -> Option<Vec<u8>> {
    let request = RangeRequest {
        key: key.into(),
        ..Default::default()
    };
    let response = mvcc::range(&storage.reader(), &request, &Limits::default()).expect("range");
    response.kvs.into_iter().next().map(|kv| kv.value)
}

#[tokio::test]
async fn applied_state_and_log_survive_reopening() {
    let dir = tempfile::tempdir().unwrap();
    {
        let storage = Storage::open(dir.path()).await.unwrap();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let mut sm = StateMachine::new(storage.clone(), Limits::default(), tx);
        let replies = sm
            .apply([
                put_entry(1, "/registry/pods/a", "1"),
                put_entry(2, "/registry/pods/a", "2"),
            ])
            .await
            .unwrap();
        let Some(Ok(StoreResponse::Put(second))) = &replies[1].0 else {
            panic!("{replies:?}")
        };
        assert_eq!(second.header.revision, 3);
        let Some(Notice::Changes(first)) = rx.recv().await else {
            panic!()
        };
        assert_eq!(
            (first[0].revision, first[0].prev, first[0].stream.as_str()),
            (2, 0, "pods")
        );
        let Some(Notice::Changes(next)) = rx.recv().await else {
            panic!()
        };
        assert_eq!((next[0].revision, next[0].prev), (3, 2));
        let mut log = LogStore::new(storage.clone());
        let mut vote = openraft::Vote::new(3, 1);
        vote.commit();
        log.save_vote(&vote).await.unwrap();
        storage.sync().unwrap();
    }
    let storage = Storage::open(dir.path()).await.unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut sm = StateMachine::new(storage.clone(), Limits::default(), tx);
    let (applied, _) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 2)));
    assert_eq!(value_of(&storage, "/registry/pods/a"), Some(b"2".to_vec()));
    assert_eq!(storage.reader().stream_last("pods").unwrap(), 3);
    let mut log = LogStore::new(storage);
    assert_eq!(
        log.read_vote().await.unwrap().map(|v| v.leader_id().term),
        Some(3)
    );
}

#[tokio::test]
async fn snapshots_carry_keys_history_and_streams() {
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Storage::open(a_dir.path()).await.unwrap();
    let b = Storage::open(b_dir.path()).await.unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut sm_a = StateMachine::new(a.clone(), Limits::default(), tx);
    sm_a.apply(
        (1..=5).map(|i| put_entry(i, &format!("/registry/pods/p{}", i % 2), &i.to_string())),
    )
    .await
    .unwrap();
    let snapshot = sm_a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    assert_eq!(snapshot.meta.last_log_id, Some(log_id(1, 1, 5)));

    let (tx, mut rx) = mpsc::unbounded_channel();
    let mut sm_b = StateMachine::new(b.clone(), Limits::default(), tx);
    // Something to be replaced by the snapshot.
    sm_b.apply([put_entry(1, "/stale", "x")]).await.unwrap();
    let _ = rx.recv().await;
    sm_b.install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(
        rx.recv().await,
        Some(Notice::Reset {
            revision: 6,
            streams: vec![("pods".into(), 6)]
        })
    );
    assert_eq!(value_of(&b, "/stale"), None);
    assert_eq!(value_of(&b, "/registry/pods/p1"), Some(b"5".to_vec()));
    let history = HistoryRequest {
        key: b"/registry/".to_vec(),
        range_end: vec![0],
        start_revision: 2,
        limit: 0,
    };
    let history = mvcc::history(&b.reader(), &history, &Limits::default()).unwrap();
    assert_eq!(history.batches.len(), 5);
    assert_eq!(
        history.batches[4].events[0]
            .prev_kv
            .as_ref()
            .map(|kv| kv.value.clone()),
        Some(b"3".to_vec())
    );
    let current = sm_b
        .get_current_snapshot()
        .await
        .unwrap()
        .expect("current snapshot");
    assert_eq!(current.meta, snapshot_meta_of(&mut sm_a).await);
    assert_eq!(sm_b.applied_state().await.unwrap().0, Some(log_id(1, 1, 5)));
}

async fn snapshot_meta_of(sm: &mut StateMachine) -> crate::types::SnapshotMeta {
    sm.get_current_snapshot()
        .await
        .unwrap()
        .expect("current snapshot")
        .meta
}

#[tokio::test]
async fn leases_and_their_keys_persist_and_travel_in_snapshots() {
    use crate::mvcc::{Lease, Reader};
    let (a_dir, b_dir) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = Storage::open(a_dir.path()).await.unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut sm_a = StateMachine::new(a.clone(), Limits::default(), tx);
    let grant = Entry {
        log_id: log_id(1, 1, 1),
        payload: EntryPayload::Normal(Write::LeaseGrant(Lease { id: 0, ttl: 9 })),
    };
    let mut attached = put_entry(2, "/registry/pods/a", "1");
    if let EntryPayload::Normal(Write::Put(put)) = &mut attached.payload {
        put.lease = 1;
    }
    sm_a.apply([grant, attached]).await.unwrap();
    let keys_of = |storage: &Storage| {
        let mut keys = Vec::new();
        storage
            .reader()
            .lease_keys(1, &mut |k| {
                keys.push(k);
                true
            })
            .unwrap();
        keys
    };
    assert_eq!(a.reader().lease(1).unwrap(), Some(Lease { id: 1, ttl: 9 }));
    assert_eq!(keys_of(&a), vec![b"/registry/pods/a".to_vec()]);
    let bytes = a.reader().ledger().unwrap().bytes;
    assert!(bytes > 0);

    let snapshot = sm_a
        .get_snapshot_builder()
        .await
        .build_snapshot()
        .await
        .unwrap();
    let b = Storage::open(b_dir.path()).await.unwrap();
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut sm_b = StateMachine::new(b.clone(), Limits::default(), tx);
    sm_b.install_snapshot(&snapshot.meta, snapshot.snapshot)
        .await
        .unwrap();
    assert_eq!(b.reader().lease(1).unwrap(), Some(Lease { id: 1, ttl: 9 }));
    assert_eq!(keys_of(&b), vec![b"/registry/pods/a".to_vec()]);
    let ledger = b.reader().ledger().unwrap();
    assert_eq!((ledger.bytes, ledger.last_lease), (bytes, 1));
}
