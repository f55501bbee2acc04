//! Tests of the hollow nodes' pure core.

use super::*;
use navarch_bus::api::meta::parse_time;
use serde_json::json;

fn config(count: usize) -> HollowConfig {
    HollowConfig {
        count,
        ..Default::default()
    }
}

fn pod_json(uid: &str, phase: Option<&str>, deleting: bool) -> serde_json::Value {
    let mut o = json!({"metadata": {"name": format!("p-{uid}"), "namespace": "demo", "uid": uid},
        "spec": {"nodeName": "hollow-00001", "containers": [
            {"name": "main", "image": "busybox"}, {"name": "side", "image": "nginx"}]}});
    if let Some(phase) = phase {
        o["status"] = json!({"phase": phase});
    }
    if deleting {
        o["metadata"]["deletionTimestamp"] = json!("2026-11-27T12:00:00Z");
    }
    o
}

fn pod(uid: &str, phase: Option<&str>, deleting: bool) -> HollowPod {
    serde_json::from_value(pod_json(uid, phase, deleting)).unwrap()
}

fn report(uid: &str) -> PodAction {
    PodAction::ReportRunning {
        key: ObjectKey::new("demo", format!("p-{uid}")),
        uid: uid.into(),
    }
}

fn delete(uid: &str) -> PodAction {
    PodAction::Delete {
        key: ObjectKey::new("demo", format!("p-{uid}")),
        uid: uid.into(),
    }
}

#[test]
fn names_and_indices_round_trip_and_strangers_are_refused() {
    let c = config(20);
    assert_eq!(c.node_name(0), "hollow-00001");
    assert_eq!(c.node_name(19), "hollow-00020");
    assert_eq!(c.node_index("hollow-00001"), Some(0));
    assert_eq!(c.node_index("hollow-00020"), Some(19));
    for stranger in [
        "hollow-00021",
        "hollow-00000",
        "hollow-1",
        "hollow-000001",
        "hollowx-00001",
        "other-00001",
        "hollow-0000a",
        "node-1",
        "",
    ] {
        assert_eq!(c.node_index(stranger), None, "{stranger}");
    }
    let big = config(MAX_NODES);
    assert_eq!(
        big.node_index(&big.node_name(MAX_NODES - 1)),
        Some(MAX_NODES - 1)
    );
}

#[test]
fn validation_catches_bad_sizes_and_prefixes() {
    assert!(config(5).validate().is_ok());
    assert!(config(0).validate().is_err());
    assert!(config(MAX_NODES + 1).validate().is_err());
    for prefix in ["Hollow", "-x", "a_b", ""] {
        let c = HollowConfig {
            prefix: prefix.into(),
            ..config(3)
        };
        assert!(c.validate().is_err(), "{prefix:?} accepted");
    }
    let c = HollowConfig {
        heartbeat_interval: Duration::from_millis(10),
        ..config(3)
    };
    assert!(c.validate().is_err());
}

#[test]
fn nodes_spread_over_zones_with_their_own_addresses() {
    let c = config(2000);
    let zone = |i| c.node_facts(i).labels["topology.kubernetes.io/zone"].clone();
    assert_eq!(
        [zone(0), zone(1), zone(2), zone(3)],
        ["zone-0", "zone-1", "zone-2", "zone-0"]
    );
    let f = c.node_facts(299);
    assert_eq!(f.name, "hollow-00300");
    assert_eq!(f.labels[HOLLOW_LABEL], "true");
    assert_eq!(f.host.cpus, 8);
    assert_eq!(f.max_pods, 110);
    assert_eq!(f.pod_cidr.as_deref(), Some("10.1.43.0/24"));
    assert_eq!(f.host.ip.to_string(), "100.64.1.44");
    assert_eq!(pod_ip(299, 0).to_string(), "10.1.43.1");
    assert_eq!(pod_ip(299, 253).to_string(), "10.1.43.254");
    assert_eq!(pod_ip(299, 254).to_string(), "10.1.43.1");
    let node = serde_json::to_value(super::super::node::node_object(
        &f,
        Default::default(),
        parse_time("2026-11-27T12:00:00Z").unwrap(),
    ))
    .unwrap();
    assert_eq!(
        node["metadata"]["labels"]["kubernetes.io/hostname"],
        "hollow-00300"
    );
    assert_eq!(node["status"]["capacity"]["memory"], "33554432Ki");
    // Less the kubelet's 100Mi hard eviction threshold, as a real node's.
    assert_eq!(node["status"]["allocatable"]["memory"], "33452032Ki");
    assert_eq!(node["status"]["conditions"][3]["status"], "True");
}

#[test]
fn renewals_cover_every_node_once_per_interval_evenly() {
    let r = Renewals::new(5000, Duration::from_secs(10));
    assert_eq!(r.slots(), 100);
    let mut seen = vec![0; 5000];
    for slot in 0..r.slots() {
        let nodes = r.nodes_in(slot);
        assert_eq!(nodes.len(), 50);
        for i in nodes {
            seen[i] += 1;
        }
    }
    assert!(seen.iter().all(|&n| n == 1));
    assert_eq!(r.nodes_in(100), r.nodes_in(0));
    // Fewer nodes than slots: each renews in exactly one slot, the other slots are empty.
    let few = Renewals::new(3, Duration::from_secs(10));
    let total: usize = (0..few.slots()).map(|s| few.nodes_in(s).len()).sum();
    assert_eq!(total, 3);
}

#[test]
fn a_bound_pod_is_reported_running_once() {
    let mut t = PodTracker::new();
    assert_eq!(t.observe(&pod("a", None, false)), Some(report("a")));
    assert_eq!(
        t.observe(&pod("a", Some("Pending"), false)),
        None,
        "write in flight"
    );
    t.written(&report("a"), true);
    assert_eq!(t.observe(&pod("a", Some("Running"), false)), None);
    assert_eq!(t.len(), 1);
}

#[test]
fn a_failed_write_is_issued_again_on_resync() {
    let mut t = PodTracker::new();
    assert_eq!(t.observe(&pod("a", None, false)), Some(report("a")));
    t.written(&report("a"), false);
    assert_eq!(t.resync([&pod("a", None, false)]), vec![report("a")]);
}

#[test]
fn pods_already_running_or_ended_need_nothing() {
    let mut t = PodTracker::new();
    assert_eq!(t.observe(&pod("a", Some("Running"), false)), None);
    assert_eq!(t.observe(&pod("b", Some("Succeeded"), false)), None);
    assert_eq!(t.observe(&pod("c", Some("Failed"), false)), None);
}

#[test]
fn a_deleted_pod_is_deleted_once_and_forgotten_when_gone() {
    let mut t = PodTracker::new();
    t.observe(&pod("a", None, false));
    t.written(&report("a"), true);
    assert_eq!(
        t.observe(&pod("a", Some("Running"), true)),
        Some(delete("a"))
    );
    assert_eq!(t.observe(&pod("a", Some("Running"), true)), None);
    // A failed delete is tried again.
    t.written(&delete("a"), false);
    assert_eq!(
        t.observe(&pod("a", Some("Running"), true)),
        Some(delete("a"))
    );
    t.written(&delete("a"), true);
    t.forget("a");
    assert!(t.is_empty());
    // Deleted while its Running status was still being written: the late write result changes nothing.
    t.observe(&pod("b", None, false));
    assert_eq!(t.observe(&pod("b", None, true)), Some(delete("b")));
    t.written(&report("b"), true);
    assert_eq!(t.observe(&pod("b", None, true)), None);
}

#[test]
fn resync_forgets_pods_that_are_gone() {
    let mut t = PodTracker::new();
    t.observe(&pod("a", None, false));
    t.observe(&pod("b", None, false));
    let actions = t.resync([&pod("b", None, false), &pod("c", None, false)]);
    assert_eq!(actions, vec![report("c")]);
    assert_eq!(t.len(), 2);
    assert_eq!(
        t.observe(&pod("a", None, false)),
        Some(report("a")),
        "a was forgotten"
    );
}

#[test]
fn the_running_status_has_every_container_running_and_ready() {
    let now = parse_time("2026-11-27T12:00:00Z").unwrap();
    let p = pod("a", None, false);
    let status = serde_json::to_value(running_status(&p, node_ip(0), pod_ip(0, 4), now)).unwrap();
    assert_eq!(status["phase"], "Running");
    assert_eq!(status["podIP"], "10.0.0.5");
    assert_eq!(status["hostIP"], "100.64.0.1");
    assert_eq!(status["startTime"], "2026-11-27T12:00:00Z");
    let conditions = status["conditions"].as_array().unwrap();
    assert_eq!(conditions.len(), 4);
    assert!(conditions.iter().all(|c| c["status"] == "True"));
    assert!(conditions.iter().any(|c| c["type"] == "Ready"));
    let containers = status["containerStatuses"].as_array().unwrap();
    assert_eq!(containers.len(), 2);
    assert_eq!(containers[1]["name"], "side");
    assert_eq!(containers[1]["image"], "nginx");
    assert_eq!(containers[1]["ready"], true);
    assert_eq!(containers[1]["containerID"], "hollow://a/side");
    assert_eq!(
        containers[0]["state"]["running"]["startedAt"],
        "2026-11-27T12:00:00Z"
    );
    // Merged into the stored pod as the real agent's status is.
    let stored = pod_json("a", None, false);
    let merged = super::super::status::merge(
        stored,
        "a",
        &running_status(&p, node_ip(0), pod_ip(0, 4), now),
    )
    .unwrap();
    assert_eq!(merged["status"]["phase"], "Running");
    assert!(
        super::super::status::merge(pod_json("a", None, false), "b", &PodStatus::default())
            .is_err()
    );
}
