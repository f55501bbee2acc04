//! Tests of the scores: exact values of the formulas, and the choices they lead to.

use super::filter_tests::{merged, node, on, pod};
use super::resources::{balanced_allocation, least_allocated, Amounts};
use super::tests::{bind, now, policy};
use super::*;
use serde_json::{json, Value};

fn requests(cpu: &str, memory: &str) -> Value {
    json!({"spec": {"containers": [{"name": "main", "image": "x",
        "resources": {"requests": {"cpu": cpu, "memory": memory}}}]}})
}

/// The node every seed picks (the test fails if seeds disagree: the choice must not be a tie).
fn chosen(pending: &Pod, nodes: &[&Node], bound: &[&Pod]) -> String {
    let mut picks = std::collections::BTreeSet::new();
    for seed in 0..8 {
        match schedule(
            &[pending],
            nodes,
            bound,
            &Namespaces::new(),
            now(),
            &policy(),
            seed,
        )
        .pop()
        {
            Some(Placement::Bind { node, .. }) => picks.insert(node),
            other => panic!("not bound: {other:?}"),
        };
    }
    assert_eq!(picks.len(), 1, "a tie: {picks:?}");
    picks.into_iter().next().unwrap_or_default()
}

#[test]
fn resource_scores_follow_kubernetes_formulas() {
    const GI: i128 = 1024 * 1024 * 1024 * 1000;
    let node = Amounts {
        cpu: 4000,
        memory: 4 * GI,
        pods: 110,
    };
    let used = Amounts {
        cpu: 1000,
        memory: 0,
        pods: 1,
    };
    let req = Amounts {
        cpu: 1000,
        memory: GI,
        pods: 1,
    };
    // Fractions 0.5 and 0.25: standard deviation 0.125.
    assert_eq!(balanced_allocation(node, used, req), Some(87));
    assert_eq!(balanced_allocation(node, used, Amounts::default()), None);
    // Free shares 50% and 75%.
    assert_eq!(least_allocated(node, used, req), 62);
    let over = Amounts { cpu: 5000, ..req };
    assert_eq!(least_allocated(node, used, over), 37);
    assert_eq!(balanced_allocation(node, used, over), Some(62));
}

#[test]
fn balanced_allocation_decides_between_equally_free_nodes() {
    // Both nodes are 25% free once the pod is on them; a is evenly used, b is CPU-heavy.
    let (a, b) = (node("a", json!({})), node("b", json!({})));
    let on_a = on(&pod("x", requests("2", "2Gi")), "a");
    let on_b = on(&pod("y", requests("3", "1Gi")), "b");
    let p = pod("p", requests("1", "1Gi"));
    assert_eq!(chosen(&p, &[&a, &b], &[&on_a, &on_b]), "a");
}

#[test]
fn preferred_node_affinity_outweighs_a_busier_node() {
    let a = node("a", json!({"metadata": {"labels": {"zone": "z1"}}}));
    let b = node("b", json!({"metadata": {"labels": {"zone": "z2"}}}));
    let busy = on(&pod("busy", requests("2", "0")), "a");
    let plain = pod("p", json!({}));
    assert_eq!(chosen(&plain, &[&a, &b], &[&busy]), "b");
    let prefers = pod(
        "p",
        json!({"spec": {"affinity": {"nodeAffinity": {"preferredDuringSchedulingIgnoredDuringExecution": [
            {"weight": 10, "preference": {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["z1"]}]}}
        ]}}}}),
    );
    assert_eq!(chosen(&prefers, &[&a, &b], &[&busy]), "a");
}

#[test]
fn prefer_no_schedule_taints_are_avoided_when_possible() {
    let soft = node(
        "a",
        json!({"spec": {"taints": [{"key": "spot", "value": "", "effect": "PreferNoSchedule"}]}}),
    );
    let b = node("b", json!({}));
    let busy = on(&pod("busy", requests("3", "3Gi")), "b");
    assert_eq!(chosen(&pod("p", json!({})), &[&soft, &b], &[&busy]), "b");
}

fn preferred_pod(kind: &str, app: &str) -> Value {
    json!({"spec": {"affinity": {kind: {"preferredDuringSchedulingIgnoredDuringExecution": [
        {"weight": 100, "podAffinityTerm": {"labelSelector": {"matchLabels": {"app": app}},
                                            "topologyKey": "kubernetes.io/hostname"}}]}}}})
}

#[test]
fn preferred_pod_affinity_and_anti_affinity_pull_and_push() {
    let (a, b) = (node("a", json!({})), node("b", json!({})));
    let db = on(
        &pod(
            "db",
            merged(
                requests("1", "1Gi"),
                json!({"metadata": {"labels": {"app": "db"}}}),
            ),
        ),
        "b",
    );
    assert_eq!(chosen(&pod("p", json!({})), &[&a, &b], &[&db]), "a");
    assert_eq!(
        chosen(
            &pod("p", preferred_pod("podAffinity", "db")),
            &[&a, &b],
            &[&db]
        ),
        "b"
    );
    // An existing pod's preference counts too: the db prefers to be away from web pods.
    let shy = on(
        &pod(
            "db",
            merged(
                preferred_pod("podAntiAffinity", "web"),
                json!({"metadata": {"labels": {"app": "db"}}}),
            ),
        ),
        "a",
    );
    let busy = on(&pod("busy", requests("1", "1Gi")), "b");
    let web = pod("web", json!({"metadata": {"labels": {"app": "web"}}}));
    assert_eq!(chosen(&web, &[&a, &b], &[&shy, &busy]), "b");
}

#[test]
fn schedule_anyway_spread_prefers_the_emptier_zone() {
    let zone = |z: &str| json!({"metadata": {"labels": {"topology.kubernetes.io/zone": z}}});
    let (a1, b1) = (node("a1", zone("a")), node("b1", zone("b")));
    let spread = json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"topologySpreadConstraints": [{"maxSkew": 1, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway", "labelSelector": {"matchLabels": {"app": "web"}}}]}
    });
    let w: Vec<Pod> = (0..2)
        .map(|i| on(&pod(&format!("w{i}"), spread.clone()), "a1"))
        .collect();
    // b1 is busier, yet it holds no web pod.
    let busy = on(&pod("busy", requests("2", "2Gi")), "b1");
    let p = pod("p", spread);
    assert_eq!(chosen(&p, &[&a1, &b1], &[&w[0], &w[1], &busy]), "b1");
}

fn owned_by(uid: &str) -> Value {
    json!({"metadata": {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "rs",
                                             "uid": uid, "controller": true}]}})
}

#[test]
fn a_controllers_pods_spread_across_nodes_by_default() {
    let (n1, n2, n3) = (
        node("n1", json!({})),
        node("n2", json!({})),
        node("n3", json!({})),
    );
    let sibling = |name: &str, at: &str| on(&pod(name, owned_by("rs-1")), at);
    let stranger = |name: &str| on(&pod(name, owned_by("rs-2")), "n3");
    let bound = [
        sibling("s1", "n1"),
        sibling("s2", "n1"),
        sibling("s3", "n2"),
        stranger("t1"),
        stranger("t2"),
    ];
    let bound: Vec<&Pod> = bound.iter().collect();
    assert_eq!(
        chosen(&pod("p", owned_by("rs-1")), &[&n1, &n2, &n3], &bound),
        "n3"
    );
    // Without an owner, only the resources count: n3 is as busy as n1, and n2 is the freest.
    assert_eq!(chosen(&pod("p", json!({})), &[&n1, &n2, &n3], &bound), "n2");
}

#[test]
fn scores_only_rank_nodes_that_passed_the_filters() {
    let (a, b) = (
        node("a", json!({})),
        node("b", json!({"spec": {"unschedulable": true}})),
    );
    let busy = on(&pod("busy", requests("3", "3Gi")), "a");
    assert_eq!(
        schedule(
            &[&pod("p", json!({}))],
            &[&a, &b],
            &[&busy],
            &Namespaces::new(),
            now(),
            &policy(),
            3
        ),
        vec![bind("p", "a")]
    );
}
