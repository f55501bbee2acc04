//! Leases, alarms and the byte count in the MVCC core, against the in-memory reader.

use navarch_bus::store::*;

use super::memory::Memory;
use super::{attachments, write_cost, Lease, Reader, Write, LEASE_BYTES, VERSION_OVERHEAD};

fn grant(store: &mut Memory, id: i64, ttl: i64) -> Result<i64, StoreError> {
    match store.write(Write::LeaseGrant(Lease { id, ttl }))? {
        StoreResponse::Lease(r) => Ok(r.id),
        other => panic!("grant answered {other:?}"),
    }
}

fn put(key: &str, value: &str, lease: i64) -> Write {
    Write::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        lease,
        ..Default::default()
    })
}

fn put_op(key: &str, lease: i64) -> TxnOp {
    TxnOp::Put(PutRequest {
        key: key.into(),
        value: b"v".to_vec(),
        lease,
        ..Default::default()
    })
}

fn keys_of(store: &Memory, id: i64) -> Vec<String> {
    let mut keys = Vec::new();
    store
        .lease_keys(id, &mut |k| {
            keys.push(String::from_utf8_lossy(&k).into_owned());
            true
        })
        .unwrap();
    keys
}

#[test]
fn grants_pick_fresh_ids_that_are_never_reused() {
    let mut s = Memory::default();
    assert_eq!(grant(&mut s, 0, 10), Ok(1));
    assert_eq!(grant(&mut s, 0, 10), Ok(2));
    assert_eq!(grant(&mut s, 100, 10), Ok(100));
    assert_eq!(
        grant(&mut s, 100, 10),
        Err(StoreError::LeaseExists { id: 100 })
    );
    assert_eq!(grant(&mut s, 0, 10), Ok(101), "after every id granted");
    assert_eq!(
        s.write(Write::LeaseRevoke(101)),
        Ok(StoreResponse::LeaseRevoke(ResponseHeader {
            revision: 1,
            ..Default::default()
        }))
    );
    assert_eq!(grant(&mut s, 0, 10), Ok(102), "a revoked id is not reused");
    assert_eq!(s.revisions.current, 1, "leases do not move the revision");
    assert!(matches!(
        grant(&mut s, 0, 0),
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        grant(&mut s, -3, 10),
        Err(StoreError::InvalidArgument(_))
    ));
    assert_eq!(s.lease(2).unwrap(), Some(Lease { id: 2, ttl: 10 }));
}

#[test]
fn puts_attach_and_detach_keys_and_refuse_unknown_leases() {
    let mut s = Memory::default();
    let lease = grant(&mut s, 0, 10).unwrap();
    let other = grant(&mut s, 0, 10).unwrap();
    assert_eq!(
        s.write(put("/a", "1", 77)),
        Err(StoreError::LeaseNotFound { id: 77 })
    );
    assert_eq!(s.revisions.current, 1, "the refused put changed nothing");
    s.write(put("/a", "1", lease)).unwrap();
    s.write(put("/b", "1", lease)).unwrap();
    assert_eq!(keys_of(&s, lease), ["/a", "/b"]);
    assert_eq!(s.kv[&b"/a".to_vec()].lease, lease);
    s.write(put("/b", "2", 0)).unwrap();
    assert_eq!(keys_of(&s, lease), ["/a"], "a put without lease detaches");
    s.write(put("/a", "2", other)).unwrap();
    assert_eq!(keys_of(&s, lease), Vec::<String>::new());
    assert_eq!(keys_of(&s, other), ["/a"]);
    // A transaction with a put on an unknown lease is refused whole.
    let txn = Write::Txn(TxnRequest {
        success: vec![put_op("/c", other), put_op("/d", 99)],
        ..Default::default()
    });
    assert_eq!(s.write(txn), Err(StoreError::LeaseNotFound { id: 99 }));
    assert!(!s.kv.contains_key(b"/c".as_slice()));
    // Deleting a key detaches it.
    s.write(Write::Delete(DeleteRequest {
        key: b"/a".to_vec(),
        ..Default::default()
    }))
    .unwrap();
    assert_eq!(keys_of(&s, other), Vec::<String>::new());
}

#[test]
fn revoke_deletes_every_attached_key_at_one_revision() {
    let mut s = Memory::default();
    let lease = grant(&mut s, 0, 10).unwrap();
    for key in ["/x/1", "/x/2", "/y"] {
        s.write(put(key, "v", lease)).unwrap();
    }
    s.write(put("/free", "v", 0)).unwrap();
    let before = s.revisions.current;
    let Ok(StoreResponse::LeaseRevoke(header)) = s.write(Write::LeaseRevoke(lease)) else {
        panic!("revoke")
    };
    assert_eq!(header.revision, before + 1);
    assert_eq!(
        s.changes[&(before + 1)].len(),
        3,
        "one revision, three deletions"
    );
    assert_eq!(
        s.kv.keys().cloned().collect::<Vec<_>>(),
        vec![b"/free".to_vec()]
    );
    assert_eq!(s.lease(lease).unwrap(), None);
    assert_eq!(
        s.write(Write::LeaseRevoke(lease)),
        Err(StoreError::LeaseNotFound { id: lease })
    );
    // Revoking a lease without keys keeps the revision.
    let empty = grant(&mut s, 0, 10).unwrap();
    s.write(Write::LeaseRevoke(empty)).unwrap();
    assert_eq!(s.revisions.current, before + 1);
}

#[test]
fn bytes_count_every_kept_version_and_compaction_frees_them() {
    let mut s = Memory::default();
    let version = |key: &str, value: &str| (key.len() + value.len()) as u64 + VERSION_OVERHEAD;
    s.write(put("/a", "1234", 0)).unwrap();
    s.write(put("/a", "56", 0)).unwrap();
    assert_eq!(s.ledger.bytes, version("/a", "1234") + version("/a", "56"));
    grant(&mut s, 0, 10).unwrap();
    assert_eq!(
        s.ledger.bytes,
        version("/a", "1234") + version("/a", "56") + LEASE_BYTES
    );
    s.write(Write::Delete(DeleteRequest {
        key: b"/a".to_vec(),
        ..Default::default()
    }))
    .unwrap();
    s.write(put("/b", "x", 0)).unwrap();
    let current = s.revisions.current;
    s.write(Write::Compact(current)).unwrap();
    // Below the compaction point only live versions survive: none of the deleted key's.
    assert_eq!(s.ledger.bytes, version("/b", "x") + LEASE_BYTES);
    assert_eq!(write_cost(&put("/b", "xy", 0)), version("/b", "xy"));
}

#[test]
fn nospace_refuses_what_adds_data_and_allows_the_rest() {
    let mut s = Memory::default();
    let lease = grant(&mut s, 0, 10).unwrap();
    s.write(put("/a", "1", lease)).unwrap();
    s.write(put("/b", "1", 0)).unwrap();
    let alarm = Alarm {
        member_id: 2,
        kind: AlarmKind::NoSpace,
    };
    let Ok(StoreResponse::Alarms(raised)) = s.write(Write::AlarmRaise(alarm.clone())) else {
        panic!("raise")
    };
    assert_eq!(raised.alarms, vec![alarm.clone()]);
    s.write(Write::AlarmRaise(alarm.clone())).unwrap();
    assert_eq!(s.ledger.alarms.len(), 1, "raised once");

    assert_eq!(s.write(put("/c", "1", 0)), Err(StoreError::NoSpace));
    assert_eq!(grant(&mut s, 0, 10), Err(StoreError::NoSpace));
    let txn_put = Write::Txn(TxnRequest {
        failure: vec![put_op("/c", 0)],
        ..Default::default()
    });
    assert_eq!(s.write(txn_put.clone()), Err(StoreError::NoSpace));
    let txn_delete = Write::Txn(TxnRequest {
        success: vec![TxnOp::Delete(DeleteRequest {
            key: b"/b".to_vec(),
            ..Default::default()
        })],
        ..Default::default()
    });
    s.write(txn_delete).unwrap();
    s.write(Write::LeaseRevoke(lease)).unwrap();
    s.write(Write::Compact(s.revisions.current)).unwrap();
    assert!(s.kv.is_empty());

    let Ok(StoreResponse::Alarms(cleared)) = s.write(Write::AlarmDisarm(AlarmKind::NoSpace)) else {
        panic!("disarm")
    };
    assert!(cleared.alarms.is_empty());
    s.write(txn_put).unwrap();
}

#[test]
fn attachments_follow_the_lease_of_each_version() {
    let kv = |key: &str, lease: i64, version: i64| KeyValue {
        key: key.into(),
        lease,
        version,
        ..Default::default()
    };
    let event = |kind, now: KeyValue, prev: Option<KeyValue>| Event {
        kind,
        kv: now,
        prev_kv: prev,
    };
    let events = [
        event(EventKind::Put, kv("/new", 1, 1), None),
        event(EventKind::Put, kv("/same", 1, 2), Some(kv("/same", 1, 1))),
        event(EventKind::Put, kv("/moved", 2, 2), Some(kv("/moved", 1, 1))),
        event(EventKind::Put, kv("/freed", 0, 2), Some(kv("/freed", 3, 1))),
        event(
            EventKind::Delete,
            kv("/gone", 0, 0),
            Some(kv("/gone", 4, 1)),
        ),
    ];
    let (detach, attach) = attachments(&events);
    let named = |pairs: Vec<(i64, Vec<u8>)>| {
        pairs
            .into_iter()
            .map(|(l, k)| (l, String::from_utf8_lossy(&k).into_owned()))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        named(detach),
        [
            (1, "/moved".into()),
            (3, "/freed".into()),
            (4, "/gone".into())
        ]
    );
    assert_eq!(named(attach), [(1, "/new".into()), (2, "/moved".into())]);
}
