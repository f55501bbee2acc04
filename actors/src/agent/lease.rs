//! The node's Lease in `kube-node-lease`, the kubelet's cheap heartbeat: renewed every [`RENEW_INTERVAL`], owned by
//! the Node so that it goes when the Node does. Pure: the Node's uid and the time are passed in.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta, OwnerReference};
use k8s_openapi::chrono::{DateTime, SubsecRound, Utc};
use navarch_bus::api::ApiError;
use serde_json::Value;

/// The namespace node leases live in.
pub const NAMESPACE: &str = "kube-node-lease";
/// How long a lease holds without renewal (the kubelet's `nodeLeaseDurationSeconds`).
pub const DURATION_SECONDS: i32 = 40;
/// How often the lease is renewed: a quarter of its duration, as the kubelet does (10 s).
pub const RENEW_INTERVAL: Duration = Duration::from_secs(10);

/// The lease of node `node` (whose uid is `node_uid`) as first created at `now`.
pub fn lease_object(node: &str, node_uid: &str, now: DateTime<Utc>) -> Lease {
    Lease {
        metadata: ObjectMeta {
            name: Some(node.to_string()),
            namespace: Some(NAMESPACE.to_string()),
            owner_references: Some(vec![OwnerReference {
                api_version: "v1".into(),
                kind: "Node".into(),
                name: node.to_string(),
                uid: node_uid.to_string(),
                ..Default::default()
            }]),
            ..Default::default()
        },
        spec: Some(spec(node, now)),
    }
}

fn spec(node: &str, now: DateTime<Utc>) -> LeaseSpec {
    LeaseSpec {
        holder_identity: Some(node.to_string()),
        lease_duration_seconds: Some(DURATION_SECONDS),
        renew_time: Some(MicroTime(now.trunc_subsecs(6))),
        ..Default::default()
    }
}

/// `stored` (the lease) renewed at `now` by node `node`, for a read-modify-write; other fields stay.
pub fn renewed(stored: Value, node: &str, now: DateTime<Utc>) -> Result<Value, ApiError> {
    let mut lease: Lease = serde_json::from_value(stored).map_err(ApiError::internal)?;
    let mut next = spec(node, now);
    if let Some(old) = lease.spec.take() {
        next.acquire_time = old.acquire_time;
        next.lease_transitions = old.lease_transitions;
    }
    lease.spec = Some(next);
    serde_json::to_value(&lease).map_err(ApiError::internal)
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    #[test]
    fn the_lease_is_held_by_and_owned_by_the_node() {
        let now = parse_time("2026-11-27T12:00:00.123456789Z").unwrap();
        let lease = serde_json::to_value(lease_object("n1", "uid-1", now)).unwrap();
        assert_eq!(lease["metadata"]["name"], "n1");
        assert_eq!(lease["metadata"]["namespace"], "kube-node-lease");
        let owner = &lease["metadata"]["ownerReferences"][0];
        assert_eq!(owner["apiVersion"], "v1");
        assert_eq!(owner["kind"], "Node");
        assert_eq!(owner["name"], "n1");
        assert_eq!(owner["uid"], "uid-1");
        assert_eq!(lease["spec"]["holderIdentity"], "n1");
        assert_eq!(lease["spec"]["leaseDurationSeconds"], 40);
        assert_eq!(lease["spec"]["renewTime"], "2026-11-27T12:00:00.123456Z");
    }

    #[test]
    fn renewal_moves_the_renew_time_only() {
        let t1 = parse_time("2026-11-27T12:00:00Z").unwrap();
        let t2 = parse_time("2026-11-27T12:00:10.5Z").unwrap();
        let mut stored = serde_json::to_value(lease_object("n1", "uid-1", t1)).unwrap();
        stored["metadata"]["resourceVersion"] = "7".into();
        stored["spec"]["leaseTransitions"] = 2.into();
        let next = renewed(stored, "n1", t2).unwrap();
        assert_eq!(next["spec"]["renewTime"], "2026-11-27T12:00:10.500000Z");
        assert_eq!(next["spec"]["holderIdentity"], "n1");
        assert_eq!(next["spec"]["leaseTransitions"], 2);
        assert_eq!(next["metadata"]["resourceVersion"], "7");
        assert_eq!(next["metadata"]["ownerReferences"][0]["uid"], "uid-1");
        assert!(renewed(serde_json::json!({"spec": 5}), "n1", t2).is_err());
    }
}
