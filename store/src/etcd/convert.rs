//! Pure mapping between etcd's messages and the store protocol: etcd requests become
//! [`StoreRequest`](navarch_bus::store::StoreRequest)s and store answers become etcd responses.
//!
//! What the store protocol cannot express is refused here with `InvalidArgument` and a message saying so, never
//! approximated: puts with `ignore_value` / `ignore_lease`, compares over a key range, nested transactions. Range options the store does not know (sorting, min/max revision filters) are applied here on the
//! store's answer, the way etcd applies them after its MVCC read.

use std::cmp::Ordering;

use navarch_bus::store::{self, CompareResult, CompareTarget, TxnOp, TxnOpResponse};
use tonic::Status;

use super::errors::unsupported;

use super::proto::etcdserverpb::{
    self as pb, compare, range_request::SortOrder, range_request::SortTarget, request_op,
    response_op,
};
use super::proto::mvccpb;

/// Who answers: the cluster and member every response header names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// The cluster's id (a hash of its bus prefix, the same on every member).
    pub cluster_id: u64,
    /// The answering member.
    pub member_id: u64,
}

impl Stamp {
    /// An etcd header for a store header: the answering member, whichever member the store forwarded to.
    pub fn header(&self, header: &store::ResponseHeader) -> Option<pb::ResponseHeader> {
        self.at(header.revision, header.raft_term)
    }

    /// An etcd header at `revision`.
    pub fn at(&self, revision: i64, raft_term: u64) -> Option<pb::ResponseHeader> {
        Some(pb::ResponseHeader {
            cluster_id: self.cluster_id,
            member_id: self.member_id,
            revision,
            raft_term,
        })
    }
}

/// The cluster id etcd clients see: FNV-1a of the cluster's subject prefix (`navarch.<cluster>`), never 0.
pub fn cluster_id(prefix: &str) -> u64 {
    let hash = prefix.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    hash.max(1)
}

/// etcd's key-value.
pub fn kv(kv: store::KeyValue) -> mvccpb::KeyValue {
    mvccpb::KeyValue {
        key: kv.key,
        create_revision: kv.create_revision,
        mod_revision: kv.mod_revision,
        version: kv.version,
        value: kv.value,
        lease: kv.lease,
    }
}

/// etcd's watch event; the previous key-value only when the watcher asked for it. A delete event holds the key and
/// the deletion's revision only, as etcd's does.
pub fn event(event: store::Event, with_prev: bool) -> mvccpb::Event {
    let (kind, kv) = match event.kind {
        store::EventKind::Put => (mvccpb::event::EventType::Put, kv(event.kv)),
        store::EventKind::Delete => (
            mvccpb::event::EventType::Delete,
            mvccpb::KeyValue {
                key: event.kv.key,
                mod_revision: event.kv.mod_revision,
                ..Default::default()
            },
        ),
    };
    mvccpb::Event {
        r#type: kind as i32,
        kv: Some(kv),
        prev_kv: event.prev_kv.filter(|_| with_prev).map(self::kv),
    }
}

/// etcd refuses an empty key in every request.
fn check_key(key: &[u8]) -> Result<(), Status> {
    if key.is_empty() {
        return Err(Status::invalid_argument("etcdserver: key is not provided"));
    }
    Ok(())
}

/// etcd reads a `range_end` that sorts before `key` as an empty range; the store refuses it, so send the store the
/// empty range `[key, key)` instead.
fn normalize_end(key: &[u8], range_end: &[u8]) -> Vec<u8> {
    if !range_end.is_empty() && range_end != [0] && range_end < key {
        key.to_vec()
    } else {
        range_end.to_vec()
    }
}

/// How to finish a range answer the way etcd does: filters and sorting the store does not apply, then the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangePlan {
    limit: i64,
    order: SortOrder,
    target: SortTarget,
    min_mod: i64,
    max_mod: i64,
    min_create: i64,
    max_create: i64,
}

impl RangePlan {
    /// The plan for `request`, and the store request to send: without a limit when etcd would sort or filter the
    /// whole range first.
    pub fn new(request: &pb::RangeRequest) -> Result<(Self, store::RangeRequest), Status> {
        check_key(&request.key)?;
        let target = request.sort_target();
        let mut order = request.sort_order();
        // etcd's rule: the store returns keys in ascending key order, so only another target sorts by default.
        if order == SortOrder::None && target != SortTarget::Key {
            order = SortOrder::Ascend;
        }
        let plan = Self {
            limit: request.limit,
            order,
            target,
            min_mod: request.min_mod_revision,
            max_mod: request.max_mod_revision,
            min_create: request.min_create_revision,
            max_create: request.max_create_revision,
        };
        let store_request = store::RangeRequest {
            key: request.key.clone(),
            range_end: normalize_end(&request.key, &request.range_end),
            limit: if plan.reorders() { 0 } else { request.limit },
            revision: request.revision.max(0),
            keys_only: request.keys_only,
            count_only: request.count_only,
            serializable: request.serializable,
        };
        Ok((plan, store_request))
    }

    /// Whether the whole range is needed before the limit applies.
    fn reorders(&self) -> bool {
        self.sorts()
            || self.min_mod != 0
            || self.max_mod != 0
            || self.min_create != 0
            || self.max_create != 0
    }

    fn sorts(&self) -> bool {
        !(self.order == SortOrder::None
            || (self.order == SortOrder::Ascend && self.target == SortTarget::Key))
    }

    /// The next page to ask for when the store cut its answer short of what `request` asked for (the store caps
    /// one answer's bytes; etcd does not): the rest of the range at the answer's revision.
    pub fn next_page(
        request: &store::RangeRequest,
        answer: &store::RangeResponse,
    ) -> Option<store::RangeRequest> {
        let have = i64::try_from(answer.kvs.len()).unwrap_or(i64::MAX);
        if !answer.more || request.count_only || (request.limit > 0 && have >= request.limit) {
            return None;
        }
        let mut key = answer.kvs.last()?.key.clone();
        key.push(0);
        Some(store::RangeRequest {
            key,
            revision: answer.header.revision,
            limit: if request.limit > 0 {
                request.limit.saturating_sub(have)
            } else {
                0
            },
            ..request.clone()
        })
    }

    /// etcd's answer from the store's: filtered, sorted and limited as etcd does, `count` the whole range's.
    pub fn finish(&self, answer: store::RangeResponse, stamp: &Stamp) -> pb::RangeResponse {
        let mut kvs = answer.kvs;
        let mut more = answer.more;
        if self.reorders() {
            kvs.retain(|kv| self.keeps(kv));
            if self.sorts() {
                let target = self.target;
                kvs.sort_by(|a, b| compare_by(target, a, b));
                if self.order == SortOrder::Descend {
                    kvs.reverse();
                }
            }
            more = false;
            if let Ok(limit) = usize::try_from(self.limit) {
                if limit > 0 && kvs.len() > limit {
                    kvs.truncate(limit);
                    more = true;
                }
            }
        }
        pb::RangeResponse {
            header: stamp.header(&answer.header),
            kvs: kvs.into_iter().map(kv).collect(),
            more,
            count: answer.count,
        }
    }

    /// etcd's min/max revision filters (0: no bound).
    fn keeps(&self, kv: &store::KeyValue) -> bool {
        let within = |value: i64, min: i64, max: i64| {
            (min == 0 || value >= min) && (max == 0 || value <= max)
        };
        within(kv.mod_revision, self.min_mod, self.max_mod)
            && within(kv.create_revision, self.min_create, self.max_create)
    }
}

fn compare_by(target: SortTarget, a: &store::KeyValue, b: &store::KeyValue) -> Ordering {
    match target {
        SortTarget::Key => a.key.cmp(&b.key),
        SortTarget::Version => a.version.cmp(&b.version),
        SortTarget::Create => a.create_revision.cmp(&b.create_revision),
        SortTarget::Mod => a.mod_revision.cmp(&b.mod_revision),
        SortTarget::Value => a.value.cmp(&b.value),
    }
}

/// The store's put for etcd's.
pub fn put(request: pb::PutRequest) -> Result<store::PutRequest, Status> {
    check_key(&request.key)?;
    if request.ignore_value || request.ignore_lease {
        return Err(unsupported("put with ignore_value or ignore_lease"));
    }
    Ok(store::PutRequest {
        key: request.key,
        value: request.value,
        lease: request.lease,
        prev_kv: request.prev_kv,
    })
}

/// etcd's put answer.
pub fn put_response(answer: store::PutResponse, stamp: &Stamp) -> pb::PutResponse {
    pb::PutResponse {
        header: stamp.header(&answer.header),
        prev_kv: answer.prev_kv.map(kv),
    }
}

/// The store's delete for etcd's.
pub fn delete(request: pb::DeleteRangeRequest) -> Result<store::DeleteRequest, Status> {
    check_key(&request.key)?;
    Ok(store::DeleteRequest {
        range_end: normalize_end(&request.key, &request.range_end),
        key: request.key,
        prev_kv: request.prev_kv,
    })
}

/// etcd's delete answer.
pub fn delete_response(answer: store::DeleteResponse, stamp: &Stamp) -> pb::DeleteRangeResponse {
    pb::DeleteRangeResponse {
        header: stamp.header(&answer.header),
        deleted: answer.deleted,
        prev_kvs: answer.prev_kvs.into_iter().map(kv).collect(),
    }
}

/// How to finish each operation's answer of a transaction branch.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TxnPlan {
    success: Vec<Option<RangePlan>>,
    failure: Vec<Option<RangePlan>>,
}

/// The store's transaction for etcd's, and how to finish its answer.
pub fn txn(request: pb::TxnRequest) -> Result<(TxnPlan, store::TxnRequest), Status> {
    let compare = request
        .compare
        .into_iter()
        .map(compare)
        .collect::<Result<Vec<_>, _>>()?;
    let (success_plan, success) = ops(request.success)?;
    let (failure_plan, failure) = ops(request.failure)?;
    Ok((
        TxnPlan {
            success: success_plan,
            failure: failure_plan,
        },
        store::TxnRequest {
            compare,
            success,
            failure,
        },
    ))
}

fn compare(compare: pb::Compare) -> Result<store::Compare, Status> {
    check_key(&compare.key)?;
    if !compare.range_end.is_empty() {
        return Err(unsupported("a compare over a key range"));
    }
    let result = match compare.result() {
        compare::CompareResult::Equal => CompareResult::Equal,
        compare::CompareResult::Greater => CompareResult::Greater,
        compare::CompareResult::Less => CompareResult::Less,
        compare::CompareResult::NotEqual => CompareResult::NotEqual,
    };
    // etcd reads the union member matching the target, and the zero value when another member is set.
    let kind = compare.target();
    let union = compare.target_union;
    let number =
        |pick: fn(&compare::TargetUnion) -> Option<i64>| union.as_ref().and_then(pick).unwrap_or(0);
    let target = match kind {
        compare::CompareTarget::Version => CompareTarget::Version(number(|u| match u {
            compare::TargetUnion::Version(v) => Some(*v),
            _ => None,
        })),
        compare::CompareTarget::Create => CompareTarget::CreateRevision(number(|u| match u {
            compare::TargetUnion::CreateRevision(v) => Some(*v),
            _ => None,
        })),
        compare::CompareTarget::Mod => CompareTarget::ModRevision(number(|u| match u {
            compare::TargetUnion::ModRevision(v) => Some(*v),
            _ => None,
        })),
        compare::CompareTarget::Value => CompareTarget::Value(match union {
            Some(compare::TargetUnion::Value(v)) => v,
            _ => Vec::new(),
        }),
        compare::CompareTarget::Lease => CompareTarget::Lease(number(|u| match u {
            compare::TargetUnion::Lease(v) => Some(*v),
            _ => None,
        })),
    };
    Ok(store::Compare {
        key: compare.key,
        result,
        target,
    })
}

type Ops = (Vec<Option<RangePlan>>, Vec<TxnOp>);

fn ops(requests: Vec<pb::RequestOp>) -> Result<Ops, Status> {
    let mut plans = Vec::with_capacity(requests.len());
    let mut ops = Vec::with_capacity(requests.len());
    for op in requests {
        let (plan, op) = match op.request {
            Some(request_op::Request::RequestRange(range)) => {
                let (plan, request) = RangePlan::new(&range)?;
                (Some(plan), TxnOp::Range(request))
            }
            Some(request_op::Request::RequestPut(p)) => (None, TxnOp::Put(put(p)?)),
            Some(request_op::Request::RequestDeleteRange(d)) => (None, TxnOp::Delete(delete(d)?)),
            Some(request_op::Request::RequestTxn(_)) => {
                return Err(unsupported("a nested transaction"))
            }
            None => {
                return Err(Status::invalid_argument(
                    "etcdserver: a transaction operation names no request",
                ))
            }
        };
        plans.push(plan);
        ops.push(op);
    }
    Ok((plans, ops))
}

impl TxnPlan {
    /// etcd's transaction answer.
    pub fn finish(&self, answer: store::TxnResponse, stamp: &Stamp) -> pb::TxnResponse {
        let plans = if answer.succeeded {
            &self.success
        } else {
            &self.failure
        };
        let responses = answer
            .responses
            .into_iter()
            .zip(plans.iter().map(Some).chain(std::iter::repeat(None)))
            .map(|(response, plan)| {
                let response = match response {
                    TxnOpResponse::Range(r) => {
                        let plan = plan.and_then(Option::as_ref).cloned().unwrap_or_default();
                        response_op::Response::ResponseRange(plan.finish(r, stamp))
                    }
                    TxnOpResponse::Put(p) => {
                        response_op::Response::ResponsePut(put_response(p, stamp))
                    }
                    TxnOpResponse::Delete(d) => {
                        response_op::Response::ResponseDeleteRange(delete_response(d, stamp))
                    }
                };
                pb::ResponseOp {
                    response: Some(response),
                }
            })
            .collect();
        pb::TxnResponse {
            header: stamp.header(&answer.header),
            succeeded: answer.succeeded,
            responses,
        }
    }
}

impl Default for RangePlan {
    /// The plan that leaves a range answer as the store gave it.
    fn default() -> Self {
        Self {
            limit: 0,
            order: SortOrder::None,
            target: SortTarget::Key,
            min_mod: 0,
            max_mod: 0,
            min_create: 0,
            max_create: 0,
        }
    }
}

/// etcd's member.
pub fn member(member: store::Member) -> pb::Member {
    pb::Member {
        id: member.id,
        name: member.name,
        peer_ur_ls: member.peer_urls,
        client_ur_ls: member.client_urls,
        is_learner: member.is_learner,
    }
}

/// etcd's alarm.
pub fn alarm(alarm: store::Alarm) -> pb::AlarmMember {
    let kind = match alarm.kind {
        store::AlarmKind::NoSpace => pb::AlarmType::Nospace,
        store::AlarmKind::Corrupt => pb::AlarmType::Corrupt,
    };
    pb::AlarmMember {
        member_id: alarm.member_id,
        alarm: kind as i32,
    }
}

#[cfg(test)]
#[path = "convert_tests.rs"]
mod tests;
