use navarch_bus::store::{self, KeyValue};

use tonic::Code;

use super::*;

const STAMP: Stamp = Stamp {
    cluster_id: 42,
    member_id: 3,
};

fn kv(key: &str, value: &str, create: i64, modified: i64) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: value.into(),
        create_revision: create,
        mod_revision: modified,
        version: 1,
        lease: 0,
    }
}

fn answer(kvs: Vec<KeyValue>) -> store::RangeResponse {
    store::RangeResponse {
        header: store::ResponseHeader {
            revision: 9,
            raft_term: 2,
            member_id: 1,
        },
        count: i64::try_from(kvs.len()).unwrap_or_default(),
        kvs,
        more: false,
    }
}

fn keys(response: &pb::RangeResponse) -> Vec<&[u8]> {
    response.kvs.iter().map(|kv| kv.key.as_slice()).collect()
}

#[test]
fn headers_name_the_answering_member_and_cluster() {
    let header = STAMP
        .header(&store::ResponseHeader {
            revision: 7,
            raft_term: 4,
            member_id: 1,
        })
        .unwrap_or_default();
    assert_eq!(
        (
            header.cluster_id,
            header.member_id,
            header.revision,
            header.raft_term
        ),
        (42, 3, 7, 4)
    );
    assert_eq!(cluster_id("navarch.default"), cluster_id("navarch.default"));
    assert_ne!(cluster_id("navarch.default"), cluster_id("navarch.other"));
    assert_ne!(cluster_id(""), 0);
}

#[test]
fn plain_ranges_pass_through_and_inverted_ones_are_empty() {
    let request = pb::RangeRequest {
        key: b"a".to_vec(),
        range_end: b"z".to_vec(),
        limit: 2,
        revision: 4,
        keys_only: true,
        serializable: true,
        ..Default::default()
    };
    let (plan, store_request) = RangePlan::new(&request).expect("valid");
    assert_eq!(
        (
            store_request.limit,
            store_request.revision,
            store_request.keys_only,
            store_request.serializable
        ),
        (2, 4, true, true)
    );
    let mut store_answer = answer(vec![kv("a", "1", 2, 2), kv("b", "2", 3, 3)]);
    store_answer.count = 5;
    store_answer.more = true;
    let finished = plan.finish(store_answer, &STAMP);
    assert_eq!(
        (keys(&finished).len(), finished.more, finished.count),
        (2, true, 5)
    );

    let (_, inverted) = RangePlan::new(&pb::RangeRequest {
        key: b"m".to_vec(),
        range_end: b"a".to_vec(),
        ..Default::default()
    })
    .expect("valid");
    assert_eq!(inverted.range_end, b"m");
    let (_, from_key) = RangePlan::new(&pb::RangeRequest {
        key: b"m".to_vec(),
        range_end: vec![0],
        ..Default::default()
    })
    .expect("valid");
    assert_eq!(from_key.range_end, vec![0]);
    let empty = RangePlan::new(&pb::RangeRequest::default()).expect_err("empty key");
    assert_eq!(empty.message(), "etcdserver: key is not provided");
}

#[test]
fn sorting_and_filters_read_the_whole_range_then_limit() {
    let request = pb::RangeRequest {
        key: b"a".to_vec(),
        range_end: b"z".to_vec(),
        limit: 2,
        sort_order: SortOrder::Descend as i32,
        sort_target: SortTarget::Mod as i32,
        min_create_revision: 3,
        ..Default::default()
    };
    let (plan, store_request) = RangePlan::new(&request).expect("valid");
    assert_eq!(
        store_request.limit, 0,
        "the store must return the whole range"
    );
    let finished = plan.finish(
        answer(vec![
            kv("a", "x", 2, 9),
            kv("b", "x", 3, 4),
            kv("c", "x", 5, 6),
            kv("d", "x", 7, 8),
        ]),
        &STAMP,
    );
    assert_eq!(keys(&finished), [b"d", b"c"]);
    assert_eq!((finished.more, finished.count), (true, 4));

    // A target other than the key sorts ascending by default.
    let (plan, _) = RangePlan::new(&pb::RangeRequest {
        key: b"a".to_vec(),
        range_end: b"z".to_vec(),
        sort_target: SortTarget::Value as i32,
        ..Default::default()
    })
    .expect("valid");
    let finished = plan.finish(
        answer(vec![
            kv("a", "3", 2, 2),
            kv("b", "1", 3, 3),
            kv("c", "2", 4, 4),
        ]),
        &STAMP,
    );
    assert_eq!(keys(&finished), [b"b", b"c", b"a"]);
    assert!(!finished.more);
}

#[test]
fn pages_continue_after_the_last_key_at_the_same_revision() {
    let request = store::RangeRequest {
        key: b"a".to_vec(),
        range_end: b"z".to_vec(),
        limit: 5,
        ..Default::default()
    };
    let mut cut = answer(vec![kv("a", "1", 2, 2), kv("b", "2", 3, 3)]);
    cut.more = true;
    let next = RangePlan::next_page(&request, &cut).expect("a next page");
    assert_eq!(
        (next.key.as_slice(), next.revision, next.limit),
        (&b"b\0"[..], 9, 3)
    );
    // Asked-for limit reached, or nothing more: no page.
    let full = store::RangeRequest {
        limit: 2,
        ..request.clone()
    };
    assert_eq!(RangePlan::next_page(&full, &cut), None);
    cut.more = false;
    assert_eq!(RangePlan::next_page(&request, &cut), None);
}

#[test]
fn transactions_map_compares_and_refuse_what_the_store_cannot_express() {
    let compare =
        |target: compare::CompareTarget, union: Option<compare::TargetUnion>| pb::Compare {
            result: compare::CompareResult::Greater as i32,
            target: target as i32,
            key: b"k".to_vec(),
            target_union: union,
            range_end: Vec::new(),
        };
    let request = pb::TxnRequest {
        compare: vec![
            compare(
                compare::CompareTarget::Mod,
                Some(compare::TargetUnion::ModRevision(4)),
            ),
            // A union member that does not match the target reads as zero, as in etcd.
            compare(
                compare::CompareTarget::Version,
                Some(compare::TargetUnion::ModRevision(4)),
            ),
            compare(
                compare::CompareTarget::Value,
                Some(compare::TargetUnion::Value(b"v".to_vec())),
            ),
            compare(
                compare::CompareTarget::Lease,
                Some(compare::TargetUnion::Lease(7)),
            ),
        ],
        success: vec![pb::RequestOp {
            request: Some(request_op::Request::RequestPut(pb::PutRequest {
                key: b"k".to_vec(),
                value: b"v".to_vec(),
                ..Default::default()
            })),
        }],
        failure: vec![pb::RequestOp {
            request: Some(request_op::Request::RequestRange(pb::RangeRequest {
                key: b"k".to_vec(),
                ..Default::default()
            })),
        }],
    };
    let (plan, store_txn) = txn(request.clone()).expect("valid");
    assert_eq!(
        store_txn
            .compare
            .iter()
            .map(|c| c.target.clone())
            .collect::<Vec<_>>(),
        [
            CompareTarget::ModRevision(4),
            CompareTarget::Version(0),
            CompareTarget::Value(b"v".to_vec()),
            CompareTarget::Lease(7)
        ]
    );
    assert!(store_txn
        .compare
        .iter()
        .all(|c| c.result == CompareResult::Greater));
    let finished = plan.finish(
        store::TxnResponse {
            header: store::ResponseHeader::default(),
            succeeded: false,
            responses: vec![TxnOpResponse::Range(answer(vec![kv("k", "v", 2, 2)]))],
        },
        &STAMP,
    );
    assert!(matches!(
        finished.responses[0].response,
        Some(response_op::Response::ResponseRange(ref r)) if r.kvs.len() == 1
    ));

    let mut ranged = request.clone();
    ranged.compare[0].range_end = b"z".to_vec();
    let mut nested = request;
    nested.success = vec![pb::RequestOp {
        request: Some(request_op::Request::RequestTxn(pb::TxnRequest::default())),
    }];
    for refused in [ranged, nested] {
        let status = txn(refused).expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("not supported"), "{status:?}");
    }
}

#[test]
fn delete_events_carry_only_the_key_and_revision() {
    let event = store::Event {
        kind: store::EventKind::Delete,
        kv: KeyValue {
            key: b"k".to_vec(),
            create_revision: 2,
            mod_revision: 5,
            version: 0,
            value: Vec::new(),
            lease: 0,
        },
        prev_kv: Some(kv("k", "old", 2, 3)),
    };
    let with_prev = super::event(event.clone(), true);
    assert_eq!(with_prev.r#type(), mvccpb::event::EventType::Delete);
    let kv = with_prev.kv.unwrap_or_default();
    assert_eq!((kv.create_revision, kv.mod_revision), (0, 5));
    assert_eq!(with_prev.prev_kv.map(|p| p.value), Some(b"old".to_vec()));
    assert!(super::event(event, false).prev_kv.is_none());
}
