//! Tests of the node lifecycle core: liveness by observation, health, the taints and conditions written, and the
//! taint manager's eviction times.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::meta::parse_time;
use serde_json::json;
use tokio::time::Instant;

use super::*;

fn time(seconds: i64) -> DateTime<Utc> {
    parse_time("2026-11-27T12:00:00Z").unwrap() + k8s_openapi::chrono::Duration::seconds(seconds)
}

fn node(ready: &str, heartbeat: i64, taints: serde_json::Value) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": "n1", "uid": "u1"},
        "spec": {"taints": taints},
        "status": {"conditions": [
            {"type": "MemoryPressure", "status": "False", "reason": "KubeletHasSufficientMemory",
             "lastHeartbeatTime": time(heartbeat), "lastTransitionTime": time(-100)},
            {"type": "Ready", "status": ready, "reason": "KubeletReady",
             "lastHeartbeatTime": time(heartbeat), "lastTransitionTime": time(-100)},
        ]}
    }))
    .unwrap()
}

fn lease(renewed: i64) -> Lease {
    serde_json::from_value(json!({
        "metadata": {"name": "n1", "namespace": "kube-node-lease"},
        "spec": {"holderIdentity": "n1", "renewTime": format!("2026-11-27T12:00:{:02}.000000Z", renewed)}
    }))
    .unwrap()
}

#[test]
fn a_node_is_stale_after_the_grace_period_without_a_change_seen_by_the_controller() {
    let grace = Duration::from_secs(50);
    let t0 = Instant::now();
    let at = |s: u64| t0 + Duration::from_secs(s);
    let n = node("True", 0, json!(null));
    // Timestamps long past by the controller's clock do not count: only changes it sees do.
    let p = observe(None, &n, Some(&lease(0)), t0);
    assert!(!p.is_stale(at(49), grace));
    assert!(p.is_stale(at(50), grace));
    // A lease renewal resets the wait; so does a status heartbeat.
    let p = observe(Some(&p), &n, Some(&lease(10)), at(40));
    assert_eq!(p.seen_at, at(40));
    assert!(!p.is_stale(at(89), grace));
    let p2 = observe(
        Some(&p),
        &node("True", 20, json!(null)),
        Some(&lease(10)),
        at(60),
    );
    assert_eq!(p2.seen_at, at(60));
    // Nothing new: the time of the last change stays.
    let p3 = observe(
        Some(&p2),
        &node("True", 20, json!(null)),
        Some(&lease(10)),
        at(100),
    );
    assert_eq!(p3.seen_at, at(60));
    assert!(p3.is_stale(at(110), grace));
}

#[test]
fn health_follows_staleness_then_the_ready_condition() {
    assert_eq!(health(&node("True", 0, json!(null)), false), Health::Ready);
    assert_eq!(health(&node("True", 0, json!(null)), true), Health::Unknown);
    assert_eq!(
        health(&node("False", 0, json!(null)), false),
        Health::NotReady
    );
    assert_eq!(
        health(&node("Unknown", 0, json!(null)), false),
        Health::Unknown
    );
    let unreported: Node = serde_json::from_value(json!({"metadata": {"name": "n1"}})).unwrap();
    assert_eq!(health(&unreported, false), Health::Ready);
    assert_eq!(health(&unreported, true), Health::Unknown);
}

#[test]
fn an_unknown_node_gets_the_unreachable_taints_and_loses_them_when_healthy() {
    let healthy = node(
        "True",
        0,
        json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}]),
    );
    assert!(!taints_differ(&healthy, Health::Ready));
    assert!(taints_differ(&healthy, Health::Unknown));
    let stored = serde_json::to_value(&healthy).unwrap();
    let tainted = with_taints(stored, Health::Unknown, time(60)).unwrap();
    assert_eq!(
        tainted["spec"]["taints"],
        json!([
            {"key": "dedicated", "value": "infra", "effect": "NoSchedule"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoExecute", "timeAdded": "2026-11-27T12:01:00Z"},
            {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"},
        ])
    );
    let tainted_node: Node = serde_json::from_value(tainted.clone()).unwrap();
    assert!(!taints_differ(&tainted_node, Health::Unknown));
    assert_eq!(
        transition_event(&healthy, Health::Unknown),
        Some((
            "NodeNotReady",
            "Node n1 status is now: NodeNotReady".to_string()
        ))
    );
    assert_eq!(transition_event(&tainted_node, Health::Unknown), None);
    // Writing the same health again keeps the first timeAdded (the eviction clock does not restart).
    let again = with_taints(tainted.clone(), Health::Unknown, time(90)).unwrap();
    assert_eq!(again, tainted);
    // Ready=False instead: the not-ready taints replace the unreachable ones.
    let not_ready = with_taints(tainted.clone(), Health::NotReady, time(120)).unwrap();
    let keys: Vec<(&str, &str)> = not_ready["spec"]["taints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| (t["key"].as_str().unwrap(), t["effect"].as_str().unwrap()))
        .collect();
    assert_eq!(
        keys,
        [
            ("dedicated", "NoSchedule"),
            ("node.kubernetes.io/not-ready", "NoExecute"),
            ("node.kubernetes.io/not-ready", "NoSchedule")
        ]
    );
    // Healthy again: only the other taint is left.
    let back = with_taints(tainted, Health::Ready, time(150)).unwrap();
    assert_eq!(
        back["spec"]["taints"],
        json!([{"key": "dedicated", "value": "infra", "effect": "NoSchedule"}])
    );
    assert_eq!(
        transition_event(&tainted_node, Health::Ready),
        Some(("NodeReady", "Node n1 status is now: NodeReady".to_string()))
    );
}

#[test]
fn conditions_turn_unknown_keeping_their_heartbeats() {
    let n = node("True", 5, json!(null));
    assert!(needs_unknown(&n));
    let marked = mark_unknown(serde_json::to_value(&n).unwrap(), time(60)).unwrap();
    for c in marked["status"]["conditions"].as_array().unwrap() {
        assert_eq!(c["status"], "Unknown");
        assert_eq!(c["reason"], "NodeStatusUnknown");
        assert_eq!(c["message"], "Kubelet stopped posting node status.");
        assert_eq!(c["lastHeartbeatTime"], "2026-11-27T12:00:05Z");
        assert_eq!(c["lastTransitionTime"], "2026-11-27T12:01:00Z");
    }
    let marked_node: Node = serde_json::from_value(marked.clone()).unwrap();
    assert!(!needs_unknown(&marked_node));
    // Marking again changes nothing (so the read-modify-write writes nothing).
    assert_eq!(mark_unknown(marked.clone(), time(90)).unwrap(), marked);
    // A node that never reported gets a Ready condition saying so.
    let bare = mark_unknown(json!({"metadata": {"name": "n2"}}), time(60)).unwrap();
    assert_eq!(bare["status"]["conditions"][0]["type"], "Ready");
    assert_eq!(
        bare["status"]["conditions"][0]["reason"],
        "NodeStatusNeverUpdated"
    );
}

fn pod(tolerations: serde_json::Value) -> Pod {
    serde_json::from_value(json!({
        "metadata": {"name": "p", "namespace": "demo", "uid": "pu"},
        "spec": {"nodeName": "n1", "containers": [{"name": "c"}], "tolerations": tolerations}
    }))
    .unwrap()
}

fn unreachable(added: Option<i64>) -> Taint {
    Taint {
        key: UNREACHABLE_TAINT.into(),
        effect: "NoExecute".into(),
        time_added: added.map(|s| k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(time(s))),
        value: None,
    }
}

#[test]
fn eviction_follows_the_tolerations_from_the_taints_time() {
    let never = |_: &Taint| time(0);
    let taints = [unreachable(Some(100))];
    // No toleration: at once.
    assert_eq!(
        eviction(&pod(json!(null)), &taints, time(100), never),
        Eviction::Now
    );
    // The default 300 s toleration: from the taint's timeAdded.
    let default = pod(
        json!([{"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
    );
    assert_eq!(
        eviction(&default, &taints, time(150), never),
        Eviction::At(time(400))
    );
    assert_eq!(eviction(&default, &taints, time(400), never), Eviction::Now);
    // Tolerated for good.
    let forever = pod(json!([{"operator": "Exists"}]));
    assert_eq!(
        eviction(&forever, &taints, time(10_000), never),
        Eviction::Keep
    );
    // A toleration for another taint does not help; NoSchedule taints do not evict.
    let other = pod(
        json!([{"key": NOT_READY_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}]),
    );
    assert_eq!(eviction(&other, &taints, time(100), never), Eviction::Now);
    let no_schedule = [Taint {
        key: "x".into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    }];
    assert_eq!(
        eviction(&pod(json!(null)), &no_schedule, time(100), never),
        Eviction::Keep
    );
    // Two taints: the earliest end wins; negative seconds mean none.
    let two = [
        unreachable(Some(100)),
        Taint {
            key: "maintenance".into(),
            effect: "NoExecute".into(),
            time_added: Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(time(
                120,
            ))),
            value: None,
        },
    ];
    let both = pod(json!([
        {"key": UNREACHABLE_TAINT, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300},
        {"key": "maintenance", "operator": "Exists", "tolerationSeconds": 5},
    ]));
    assert_eq!(
        eviction(&both, &two, time(110), never),
        Eviction::At(time(125))
    );
    let negative =
        pod(json!([{"key": UNREACHABLE_TAINT, "operator": "Exists", "tolerationSeconds": -5}]));
    assert_eq!(
        eviction(&negative, &taints, time(100), never),
        Eviction::Now
    );
    // A taint without timeAdded counts from when the controller first saw it.
    let seen = |_: &Taint| time(200);
    assert_eq!(
        eviction(&default, &[unreachable(None)], time(250), seen),
        Eviction::At(time(500))
    );
}

#[test]
fn only_bound_pods_not_being_deleted_are_evicted() {
    assert!(evictable(&pod(json!(null))));
    let mut deleting = pod(json!(null));
    deleting.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(time(0)),
    );
    assert!(!evictable(&deleting));
    let mut pending = pod(json!(null));
    pending.spec.as_mut().unwrap().node_name = None;
    assert!(!evictable(&pending));
}

#[test]
fn the_monitor_period_is_a_fifth_of_the_grace_within_bounds() {
    assert_eq!(
        actor::monitor_period(Duration::from_secs(50)),
        Duration::from_secs(5)
    );
    assert_eq!(
        actor::monitor_period(Duration::from_secs(3)),
        Duration::from_millis(600)
    );
    assert_eq!(
        actor::monitor_period(Duration::from_millis(100)),
        Duration::from_millis(100)
    );
    assert_eq!(
        actor::monitor_period(Duration::from_secs(3600)),
        Duration::from_secs(5)
    );
}
