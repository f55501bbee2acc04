//! The MVCC core against the in-memory reader: etcd's revision, version and transaction rules.

use navarch_bus::store::*;

use super::memory::Memory;
use super::{history, range, split_by_stream, Limits, Write};

fn put(key: &str, value: &str) -> Write {
    Write::Put(PutRequest {
        key: key.into(),
        value: value.into(),
        prev_kv: true,
        ..Default::default()
    })
}

fn del(key: &str, end: &[u8]) -> Write {
    Write::Delete(DeleteRequest {
        key: key.into(),
        range_end: end.to_vec(),
        prev_kv: true,
    })
}

fn get(store: &Memory, key: &str, revision: i64) -> Result<Option<KeyValue>, StoreError> {
    let request = RangeRequest {
        key: key.into(),
        revision,
        ..Default::default()
    };
    Ok(range(store, &request, &Limits::default())?
        .kvs
        .into_iter()
        .next())
}

fn list(store: &Memory, prefix: &str, revision: i64) -> Result<Vec<(String, String)>, StoreError> {
    let request = RangeRequest {
        key: prefix.into(),
        range_end: prefix_end(prefix.as_bytes()),
        revision,
        ..Default::default()
    };
    Ok(range(store, &request, &Limits::default())?
        .kvs
        .into_iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(&kv.key).into(),
                String::from_utf8_lossy(&kv.value).into(),
            )
        })
        .collect())
}

fn txn(compare: Vec<Compare>, success: Vec<TxnOp>, failure: Vec<TxnOp>) -> Write {
    Write::Txn(TxnRequest {
        compare,
        success,
        failure,
    })
}

fn put_op(key: &str, value: &str) -> TxnOp {
    match put(key, value) {
        Write::Put(p) => TxnOp::Put(p),
        _ => unreachable!(),
    }
}

fn cmp(key: &str, result: CompareResult, target: CompareTarget) -> Compare {
    Compare {
        key: key.into(),
        result,
        target,
    }
}

#[test]
fn puts_bump_revision_version_and_keep_create_revision() {
    let mut s = Memory::default();
    assert_eq!(
        s.revisions.current, 1,
        "a fresh store is at revision 1, as etcd"
    );
    let Ok(StoreResponse::Put(first)) = s.write(put("/a", "1")) else {
        panic!()
    };
    assert_eq!(first.header.revision, 2);
    assert_eq!(first.prev_kv, None);
    let Ok(StoreResponse::Put(second)) = s.write(put("/a", "2")) else {
        panic!()
    };
    assert_eq!(second.header.revision, 3);
    assert_eq!(
        second.prev_kv.as_ref().map(|kv| kv.value.as_slice()),
        Some(&b"1"[..])
    );
    s.write(put("/b", "x")).unwrap();
    let a = get(&s, "/a", 0).unwrap().unwrap();
    assert_eq!((a.create_revision, a.mod_revision, a.version), (2, 3, 2));
    let b = get(&s, "/b", 0).unwrap().unwrap();
    assert_eq!((b.create_revision, b.mod_revision, b.version), (4, 4, 1));
    assert_eq!(s.revisions.keys, 2);
}

#[test]
fn deletes_bump_only_when_they_delete() {
    let mut s = Memory::default();
    s.write(put("/p/a", "1")).unwrap();
    s.write(put("/p/b", "2")).unwrap();
    s.write(put("/q", "3")).unwrap();
    let Ok(StoreResponse::Delete(missing)) = s.write(del("/nope", b"")) else {
        panic!()
    };
    assert_eq!((missing.deleted, missing.header.revision), (0, 4));
    assert_eq!(s.revisions.current, 4);
    let Ok(StoreResponse::Delete(d)) = s.write(del("/p/", &prefix_end(b"/p/"))) else {
        panic!()
    };
    assert_eq!((d.deleted, d.header.revision), (2, 5));
    assert_eq!(
        d.prev_kvs
            .iter()
            .map(|kv| kv.value.clone())
            .collect::<Vec<_>>(),
        vec![b"1".to_vec(), b"2".to_vec()]
    );
    assert_eq!(s.revisions.keys, 1);
    assert_eq!(get(&s, "/p/a", 0).unwrap(), None);
    // Re-creating starts a new life: version 1, new create revision.
    s.write(put("/p/a", "again")).unwrap();
    let a = get(&s, "/p/a", 0).unwrap().unwrap();
    assert_eq!((a.create_revision, a.version), (6, 1));
}

#[test]
fn transactions_compare_like_etcd_including_absent_keys() {
    let mut s = Memory::default();
    // Absent key: version, create and mod revision are 0; a value compare never holds.
    for (compare, holds) in [
        (
            cmp("/k", CompareResult::Equal, CompareTarget::Version(0)),
            true,
        ),
        (
            cmp("/k", CompareResult::Equal, CompareTarget::CreateRevision(0)),
            true,
        ),
        (
            cmp("/k", CompareResult::Less, CompareTarget::ModRevision(1)),
            true,
        ),
        (
            cmp("/k", CompareResult::Equal, CompareTarget::Value(vec![])),
            false,
        ),
        (
            cmp("/k", CompareResult::Equal, CompareTarget::Lease(0)),
            true,
        ),
        (
            cmp(
                "/k",
                CompareResult::NotEqual,
                CompareTarget::Value(b"x".to_vec()),
            ),
            false,
        ),
    ] {
        let Ok(StoreResponse::Txn(r)) = s.write(txn(vec![compare.clone()], vec![], vec![])) else {
            panic!()
        };
        assert_eq!(r.succeeded, holds, "{compare:?}");
        assert_eq!(
            r.header.revision, 1,
            "a transaction that writes nothing keeps the revision"
        );
    }
    s.write(put("/k", "b")).unwrap(); // revision 2
    for (compare, holds) in [
        (
            cmp(
                "/k",
                CompareResult::Equal,
                CompareTarget::Value(b"b".to_vec()),
            ),
            true,
        ),
        (
            cmp(
                "/k",
                CompareResult::Greater,
                CompareTarget::Value(b"a".to_vec()),
            ),
            true,
        ),
        (
            cmp(
                "/k",
                CompareResult::Less,
                CompareTarget::Value(b"a".to_vec()),
            ),
            false,
        ),
        (
            cmp("/k", CompareResult::Equal, CompareTarget::ModRevision(2)),
            true,
        ),
        (
            cmp("/k", CompareResult::NotEqual, CompareTarget::Version(1)),
            false,
        ),
        (
            cmp("/k", CompareResult::Equal, CompareTarget::Lease(0)),
            true,
        ),
        (
            cmp("/k", CompareResult::Greater, CompareTarget::Lease(0)),
            false,
        ),
        (
            cmp(
                "/k",
                CompareResult::Greater,
                CompareTarget::CreateRevision(1),
            ),
            true,
        ),
    ] {
        let Ok(StoreResponse::Txn(r)) = s.write(txn(vec![compare.clone()], vec![], vec![])) else {
            panic!()
        };
        assert_eq!(r.succeeded, holds, "{compare:?}");
    }
}

#[test]
fn a_transaction_is_one_revision_and_sees_its_own_writes() {
    let mut s = Memory::default();
    s.write(put("/x/a", "old")).unwrap(); // 2
    let read_x = TxnOp::Range(RangeRequest {
        key: b"/x/".to_vec(),
        range_end: prefix_end(b"/x/"),
        ..Default::default()
    });
    let w = txn(
        vec![Compare::mod_revision("/x/a", 2)],
        vec![
            put_op("/x/a", "new"),
            put_op("/x/b", "b"),
            TxnOp::Delete(DeleteRequest {
                key: b"/x/c".to_vec(),
                ..Default::default()
            }),
            read_x,
        ],
        vec![],
    );
    let Ok(StoreResponse::Txn(r)) = s.write(w.clone()) else {
        panic!()
    };
    assert!(r.succeeded);
    assert_eq!(r.header.revision, 3);
    let TxnOpResponse::Range(seen) = &r.responses[3] else {
        panic!()
    };
    assert_eq!(seen.kvs.len(), 2);
    assert_eq!(seen.kvs[0].value, b"new");
    assert!(seen.kvs.iter().all(|kv| kv.mod_revision == 3));
    // The same CAS again fails (mod revision moved) and runs `failure`.
    let Ok(StoreResponse::Txn(again)) = s.write(w) else {
        panic!()
    };
    assert!(!again.succeeded && again.responses.is_empty());
    assert_eq!(s.revisions.current, 3);
}

#[test]
fn transactions_refuse_changing_a_key_twice() {
    let mut s = Memory::default();
    let twice = txn(vec![], vec![put_op("/a", "1"), put_op("/a", "2")], vec![]);
    assert!(matches!(
        s.write(twice),
        Err(StoreError::InvalidArgument(_))
    ));
    let in_deleted_range = txn(
        vec![],
        vec![
            TxnOp::Delete(DeleteRequest {
                key: b"/".to_vec(),
                range_end: vec![0],
                prev_kv: false,
            }),
            put_op("/a", "1"),
        ],
        vec![],
    );
    assert!(matches!(
        s.write(in_deleted_range),
        Err(StoreError::InvalidArgument(_))
    ));
    assert!(matches!(
        s.write(put("", "x")),
        Err(StoreError::InvalidArgument(_))
    ));
    assert_eq!(s.revisions.current, 1);
}

#[test]
fn ranges_at_past_revisions_are_exact() {
    let mut s = Memory::default();
    s.write(put("/r/a", "a1")).unwrap(); // 2
    s.write(put("/r/b", "b1")).unwrap(); // 3
    s.write(put("/r/a", "a2")).unwrap(); // 4
    s.write(del("/r/b", b"")).unwrap(); // 5
    s.write(put("/r/c", "c1")).unwrap(); // 6
    let at = |rev| list(&s, "/r/", rev).unwrap();
    let kv = |k: &str, v: &str| (k.to_string(), v.to_string());
    assert_eq!(at(1), vec![]);
    assert_eq!(at(2), vec![kv("/r/a", "a1")]);
    assert_eq!(at(3), vec![kv("/r/a", "a1"), kv("/r/b", "b1")]);
    assert_eq!(at(4), vec![kv("/r/a", "a2"), kv("/r/b", "b1")]);
    assert_eq!(at(5), vec![kv("/r/a", "a2")]);
    assert_eq!(at(6), vec![kv("/r/a", "a2"), kv("/r/c", "c1")]);
    assert_eq!(at(0), at(6));
    let old_b = get(&s, "/r/b", 4).unwrap().unwrap();
    assert_eq!(
        (old_b.create_revision, old_b.mod_revision, old_b.version),
        (3, 3, 1)
    );
    assert!(matches!(
        get(&s, "/r/a", 7),
        Err(StoreError::FutureRevision {
            requested: 7,
            current: 6
        })
    ));
}

#[test]
fn limit_count_and_keys_only() {
    let mut s = Memory::default();
    for k in ["/l/1", "/l/2", "/l/3", "/m"] {
        s.write(put(k, "value")).unwrap();
    }
    let base = RangeRequest {
        key: b"/l/".to_vec(),
        range_end: prefix_end(b"/l/"),
        ..Default::default()
    };
    let r = range(
        &s,
        &RangeRequest {
            limit: 2,
            keys_only: true,
            ..base.clone()
        },
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (2, 3, true));
    assert!(r.kvs.iter().all(|kv| kv.value.is_empty()));
    let r = range(
        &s,
        &RangeRequest {
            count_only: true,
            ..base.clone()
        },
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((r.kvs.len(), r.count, r.more), (0, 3, false));
    let tiny = Limits {
        range_bytes: 1,
        ..Limits::default()
    };
    let r = range(&s, &base, &tiny).unwrap();
    assert_eq!(
        (r.kvs.len(), r.count, r.more),
        (1, 3, true),
        "a byte cap still returns one key"
    );
    let all = RangeRequest {
        key: b"/".to_vec(),
        range_end: vec![0],
        ..Default::default()
    };
    assert_eq!(range(&s, &all, &Limits::default()).unwrap().count, 4);
}

#[test]
fn compaction_drops_history_below_its_revision() {
    let mut s = Memory::default();
    s.write(put("/c/a", "1")).unwrap(); // 2
    s.write(put("/c/a", "2")).unwrap(); // 3
    s.write(put("/c/b", "x")).unwrap(); // 4
    s.write(del("/c/b", b"")).unwrap(); // 5
    s.write(put("/c/a", "3")).unwrap(); // 6
    assert!(matches!(
        s.write(Write::Compact(7)),
        Err(StoreError::FutureRevision { .. })
    ));
    let Ok(StoreResponse::Compact(h)) = s.write(Write::Compact(5)) else {
        panic!()
    };
    assert_eq!(h.revision, 6);
    assert_eq!(s.revisions.current, 6, "compaction is not a revision");
    assert!(matches!(
        s.write(Write::Compact(5)),
        Err(StoreError::Compacted {
            requested: 5,
            compact_revision: 5
        })
    ));
    assert!(matches!(
        get(&s, "/c/a", 4),
        Err(StoreError::Compacted {
            requested: 4,
            compact_revision: 5
        })
    ));
    // The compaction point itself stays readable.
    assert_eq!(
        list(&s, "/c/", 5).unwrap(),
        vec![("/c/a".into(), "2".into())]
    );
    // Kept: /c/a@3 (its state at 5) and @6; /c/b@4 (the previous value of the deletion at 5, which a history
    // from 5 reports) and the deletion itself. Gone: /c/a@2.
    let kept: Vec<_> = s
        .versions
        .keys()
        .map(|(k, r)| (String::from_utf8_lossy(k).to_string(), *r))
        .collect();
    assert_eq!(
        kept,
        vec![
            ("/c/a".into(), 3),
            ("/c/a".into(), 6),
            ("/c/b".into(), 4),
            ("/c/b".into(), 5)
        ]
    );
    s.write(put("/c/z", "z")).unwrap(); // 7
    s.write(Write::Compact(7)).unwrap();
    let kept: Vec<_> = s
        .versions
        .keys()
        .map(|(k, r)| (String::from_utf8_lossy(k).to_string(), *r))
        .collect();
    assert_eq!(
        kept,
        vec![("/c/a".into(), 6), ("/c/z".into(), 7)],
        "a deleted key leaves nothing once compacted past"
    );
    let err = history(
        &s,
        &HistoryRequest {
            key: b"/c/".to_vec(),
            range_end: prefix_end(b"/c/"),
            start_revision: 4,
            limit: 0,
        },
        &Limits::default(),
    );
    assert!(matches!(
        err,
        Err(super::Error::Refused(StoreError::Compacted {
            requested: 4,
            ..
        }))
    ));
}

#[test]
fn history_has_every_change_with_prev_kv() {
    let mut s = Memory::default();
    s.write(put("/registry/pods/a", "1")).unwrap(); // 2
    s.write(put("/registry/nodes/n", "n")).unwrap(); // 3
    s.write(put("/registry/pods/a", "2")).unwrap(); // 4
    s.write(del("/registry/pods/a", b"")).unwrap(); // 5
    let pods = b"/registry/pods/";
    let request = HistoryRequest {
        key: pods.to_vec(),
        range_end: prefix_end(pods),
        start_revision: 2,
        limit: 0,
    };
    let h = history(&s, &request, &Limits::default()).unwrap();
    assert_eq!(h.header.revision, 5);
    assert!(!h.more);
    let revs: Vec<i64> = h.batches.iter().map(|b| b.revision).collect();
    assert_eq!(revs, vec![2, 4, 5]);
    assert!(h
        .batches
        .iter()
        .all(|b| b.stream == "pods" && b.events.len() == 1));
    let e = |i: usize| &h.batches[i].events[0];
    assert_eq!((e(0).kind, e(0).prev_kv.is_none()), (EventKind::Put, true));
    assert_eq!(e(1).prev_kv.as_ref().unwrap().value, b"1");
    assert_eq!(e(2).kind, EventKind::Delete);
    assert_eq!((e(2).kv.mod_revision, e(2).kv.version), (5, 0));
    assert_eq!(e(2).prev_kv.as_ref().unwrap().value, b"2");
    // Capped answers say `more`; the report-only form just gives the revision.
    let h = history(
        &s,
        &HistoryRequest {
            limit: 1,
            ..request.clone()
        },
        &Limits::default(),
    )
    .unwrap();
    assert_eq!((h.batches.len(), h.more), (1, true));
    let h = history(&s, &HistoryRequest::default(), &Limits::default()).unwrap();
    assert_eq!((h.header.revision, h.batches.len()), (5, 0));
}

#[test]
fn changes_split_per_stream_with_their_previous_revision() {
    let mut s = Memory::default();
    let w = txn(
        vec![],
        vec![
            put_op("/registry/pods/a", "1"),
            put_op("/registry/nodes/n", "n"),
            put_op("/registry/pods/b", "2"),
        ],
        vec![],
    );
    s.write(w).unwrap();
    let h = history(
        &s,
        &HistoryRequest {
            key: b"/".to_vec(),
            range_end: vec![0],
            start_revision: 1,
            limit: 0,
        },
        &Limits::default(),
    )
    .unwrap();
    let events = &h.batches[0].events;
    let batches = split_by_stream(
        2,
        events.to_vec(),
        |stream| if stream == "pods" { 1 } else { 0 },
    );
    let shape: Vec<_> = batches
        .iter()
        .map(|b| (b.stream.as_str(), b.prev, b.events.len()))
        .collect();
    assert_eq!(shape, vec![("pods", 1, 2), ("nodes", 0, 1)]);
}
