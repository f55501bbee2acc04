//! Tests of the scheduling core: exact placements and messages.

use super::*;
use navarch_bus::api::meta::parse_time;
use serde_json::{json, Value};

pub(super) fn now() -> DateTime<Utc> {
    parse_time("2026-11-27T12:00:00Z").unwrap()
}

pub(super) fn policy() -> Policy {
    Policy {
        scheduler_name: "default-scheduler".into(),
        heartbeat_timeout: Duration::from_secs(40),
        percentage_of_nodes_to_score: 0,
    }
}

pub(super) fn node_with(
    name: &str,
    cpu: &str,
    memory: &str,
    pods: &str,
    heartbeat: &str,
    ready: &str,
) -> Node {
    serde_json::from_value(json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "pods": pods},
            "conditions": [{"type": "Ready", "status": ready, "lastHeartbeatTime": heartbeat}]
        }
    }))
    .unwrap()
}

pub(super) fn node(name: &str, cpu: &str) -> Node {
    node_with(name, cpu, "4Gi", "110", "2026-11-27T11:59:50Z", "True")
}

pub(super) fn pod_value(name: &str, cpu: Option<&str>) -> Value {
    let resources = match cpu {
        Some(cpu) => json!({"requests": {"cpu": cpu}}),
        None => json!({}),
    };
    json!({
        "metadata": {"name": name, "namespace": "demo", "uid": format!("uid-{name}"),
                     "creationTimestamp": "2026-11-27T11:00:00Z"},
        "spec": {"schedulerName": "default-scheduler",
                 "containers": [{"name": "main", "image": "x", "resources": resources}]},
        "status": {"phase": "Pending"}
    })
}

pub(super) fn pod(name: &str, cpu: Option<&str>) -> Pod {
    serde_json::from_value(pod_value(name, cpu)).unwrap()
}

pub(super) fn bound(name: &str, cpu: Option<&str>, node: &str, phase: &str) -> Pod {
    let mut v = pod_value(name, cpu);
    v["spec"]["nodeName"] = json!(node);
    v["status"]["phase"] = json!(phase);
    serde_json::from_value(v).unwrap()
}

pub(super) fn bind(name: &str, node: &str) -> Placement {
    Placement::Bind {
        pod: ObjectKey::new("demo", name),
        uid: format!("uid-{name}"),
        node: node.into(),
    }
}

pub(super) fn unschedulable(name: &str, message: &str) -> Placement {
    Placement::Unschedulable {
        pod: ObjectKey::new("demo", name),
        uid: format!("uid-{name}"),
        message: message.into(),
    }
}

#[test]
fn binds_to_the_ready_node_or_says_why_not() {
    let n = node("n1", "1");
    let fits = pod("small", Some("500m"));
    let too_big = pod("big", Some("2"));
    assert_eq!(
        schedule(
            &[&fits],
            &[&n],
            &[],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![bind("small", "n1")]
    );
    assert_eq!(
        schedule(
            &[&too_big],
            &[&n],
            &[],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![unschedulable(
            "big",
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
        )]
    );
}

#[test]
fn stale_heartbeats_and_not_ready_nodes_carry_kubernetes_readiness_taints() {
    let stale = node_with("old", "4", "4Gi", "110", "2026-11-27T11:59:20Z", "True");
    let not_ready = node_with("down", "4", "4Gi", "110", "2026-11-27T11:59:59Z", "False");
    let p = pod("p", None);
    assert_eq!(
        schedule(
            &[&p],
            &[&stale, &not_ready],
            &[],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![unschedulable(
            "p",
            "0/2 nodes are available: 1 node(s) had untolerated taint {node.kubernetes.io/not-ready: }, \
             1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }. \
             preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
        )]
    );
    // Pods that tolerate them (DaemonSet pods do) may go there.
    let mut tolerant = pod_value("p", None);
    tolerant["spec"]["tolerations"] = json!([
        {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoSchedule"}
    ]);
    let tolerant: Pod = serde_json::from_value(tolerant).unwrap();
    assert_eq!(
        schedule(
            &[&tolerant],
            &[&stale, &not_ready],
            &[],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![bind("p", "down")]
    );
    // 39 s old is still fresh.
    let recent = node_with("ok", "4", "4Gi", "110", "2026-11-27T11:59:21Z", "True");
    assert_eq!(
        schedule(
            &[&p],
            &[&recent],
            &[],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![bind("p", "ok")]
    );
}

#[test]
fn reasons_are_counted_and_sorted_like_kubernetes() {
    let small = node("a-small", "100m");
    let mut cordoned = node("b-cordoned", "8");
    cordoned.spec = Some(k8s_openapi::api::core::v1::NodeSpec {
        unschedulable: Some(true),
        ..Default::default()
    });
    let down = node_with(
        "c-down",
        "8",
        "4Gi",
        "110",
        "2026-11-27T11:59:59Z",
        "Unknown",
    );
    let p = pod("p", Some("1"));
    assert_eq!(
        schedule(&[&p], &[&small, &cordoned, &down], &[], &Namespaces::new(), now(), &policy(), 0),
        vec![unschedulable(
            "p",
            "0/3 nodes are available: 1 Insufficient cpu, \
             1 node(s) had untolerated taint {node.kubernetes.io/unreachable: }, 1 node(s) were unschedulable. \
             preemption: 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for scheduling.."
        )]
    );
    assert_eq!(
        schedule(&[&p], &[], &[], &Namespaces::new(), now(), &policy(), 0),
        vec![unschedulable("p", "no nodes available to schedule pods")]
    );
}

#[test]
fn pods_placed_earlier_in_the_round_count_against_the_node() {
    let n = node("n1", "1");
    let a = pod("a", Some("600m"));
    let b = pod("b", Some("600m"));
    assert_eq!(
        schedule(
            &[&a, &b],
            &[&n],
            &[],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![
            bind("a", "n1"),
            unschedulable("b", "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..")
        ]
    );
}

#[test]
fn bound_pods_hold_resources_until_they_finish() {
    let n = node("n1", "1");
    let running = bound("old", Some("800m"), "n1", "Running");
    let done = bound("done", Some("800m"), "n1", "Succeeded");
    let p = pod("p", Some("500m"));
    assert_eq!(
        schedule(
            &[&p],
            &[&n],
            &[&running],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![unschedulable(
            "p",
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
        )]
    );
    assert_eq!(
        schedule(
            &[&p],
            &[&n],
            &[&done],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![bind("p", "n1")]
    );
}

#[test]
fn the_pod_count_is_a_limit_too() {
    let n = node_with("n1", "4", "4Gi", "1", "2026-11-27T11:59:50Z", "True");
    let other = bound("other", None, "n1", "Running");
    let p = pod("p", None);
    assert_eq!(
        schedule(
            &[&p],
            &[&n],
            &[&other],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![unschedulable(
            "p",
            "0/1 nodes are available: 1 Too many pods. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
        )]
    );
}

#[test]
fn the_least_allocated_node_wins_and_pods_without_requests_spread() {
    let a = node("a", "2");
    let b = node("b", "2");
    let busy = bound("busy", Some("1"), "a", "Running");
    let p = pod("p", Some("100m"));
    assert_eq!(
        schedule(
            &[&p],
            &[&a, &b],
            &[&busy],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![bind("p", "b")]
    );
    // Equal nodes: the first pod goes to either, the second to the other, the third to either again.
    let (p1, p2, p3) = (pod("p1", None), pod("p2", None), pod("p3", None));
    let mut first = std::collections::BTreeSet::new();
    for seed in 0..16 {
        let placed = schedule(
            &[&p1, &p2, &p3],
            &[&a, &b],
            &[],
            &Namespaces::new(),
            now(),
            &policy(),
            seed,
        );
        let node = |i: usize| match &placed[i] {
            Placement::Bind { node, .. } => node.clone(),
            other => panic!("not bound: {other:?}"),
        };
        assert_ne!(node(0), node(1));
        first.insert(node(0));
        // The same seed, the same answer.
        assert_eq!(
            placed,
            schedule(
                &[&p1, &p2, &p3],
                &[&a, &b],
                &[],
                &Namespaces::new(),
                now(),
                &policy(),
                seed
            )
        );
    }
    assert_eq!(first.len(), 2, "ties are broken both ways over 16 seeds");
}

#[test]
fn higher_priority_and_older_pods_go_first() {
    let n = node("n1", "1");
    let mut young = pod_value("young", Some("1"));
    young["metadata"]["creationTimestamp"] = json!("2026-11-27T11:30:00Z");
    let young: Pod = serde_json::from_value(young).unwrap();
    let old = pod("old", Some("1"));
    let mut vip = pod_value("vip", Some("1"));
    vip["metadata"]["creationTimestamp"] = json!("2026-11-27T11:50:00Z");
    vip["spec"]["priority"] = json!(100);
    let vip: Pod = serde_json::from_value(vip).unwrap();
    let full = "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..";
    assert_eq!(
        schedule(
            &[&young, &old],
            &[&n],
            &[],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![bind("old", "n1"), unschedulable("young", full)]
    );
    assert_eq!(
        schedule(
            &[&young, &old, &vip],
            &[&n],
            &[],
            &Namespaces::new(),
            now(),
            &policy(),
            0
        ),
        vec![
            bind("vip", "n1"),
            unschedulable("old", full),
            unschedulable("young", full)
        ]
    );
}

#[test]
fn node_selectors_are_honoured() {
    let n = node("n1", "1");
    let mut v = pod_value("p", None);
    v["spec"]["nodeSelector"] = json!({"kubernetes.io/hostname": "n2"});
    let p: Pod = serde_json::from_value(v).unwrap();
    assert_eq!(
        schedule(&[&p], &[&n], &[], &Namespaces::new(), now(), &policy(), 0),
        vec![unschedulable(
            "p",
            "0/1 nodes are available: 1 node(s) didn't match Pod's node affinity/selector. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
        )]
    );
}

#[test]
fn garbage_quantities_do_not_panic() {
    let n = node_with("n1", "lots", "???", "many", "2026-11-27T11:59:50Z", "True");
    let p = pod("p", Some("1"));
    assert_eq!(
        schedule(&[&p], &[&n], &[], &Namespaces::new(), now(), &policy(), 0),
        vec![unschedulable(
            "p",
            "0/1 nodes are available: 1 Insufficient cpu, 1 Too many pods. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
        )]
    );
}

#[test]
fn only_unbound_live_pods_of_this_scheduler_are_pending() {
    assert!(is_pending(&pod("p", None), "default-scheduler"));
    assert!(!is_pending(&pod("p", None), "other-scheduler"));
    assert!(!is_pending(
        &bound("b", None, "n1", "Pending"),
        "default-scheduler"
    ));
    let mut deleting = pod_value("d", None);
    deleting["metadata"]["deletionTimestamp"] = json!("2026-11-27T11:00:00Z");
    let deleting: Pod = serde_json::from_value(deleting).unwrap();
    assert!(!is_pending(&deleting, "default-scheduler"));
    let mut failed = pod_value("f", None);
    failed["status"]["phase"] = json!("Failed");
    let failed: Pod = serde_json::from_value(failed).unwrap();
    assert!(!is_pending(&failed, "default-scheduler"));
    assert!(!is_pending(&Pod::default(), "default-scheduler"));
}
