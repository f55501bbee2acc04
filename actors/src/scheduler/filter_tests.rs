//! Tests of the filters: exact placements and Kubernetes' messages.

use super::tests::{bind, now, pod_value, policy, unschedulable};
use super::*;
use serde_json::{json, Value};

/// `base` with `patch` merged in (objects merge key by key, anything else replaces).
pub(super) fn merged(mut base: Value, patch: Value) -> Value {
    match (&mut base, patch) {
        (Value::Object(b), Value::Object(p)) => {
            for (k, v) in p {
                let slot = b.remove(&k).unwrap_or(Value::Null);
                b.insert(k, merged(slot, v));
            }
            base
        }
        (_, p) => p,
    }
}

/// A ready node with 4 CPUs, 4Gi and room for 110 pods, its hostname label, and `patch` merged in.
pub(super) fn node(name: &str, patch: Value) -> Node {
    let base = json!({
        "metadata": {"name": name, "labels": {"kubernetes.io/hostname": name}},
        "status": {
            "allocatable": {"cpu": "4", "memory": "4Gi", "pods": "110"},
            "conditions": [{"type": "Ready", "status": "True", "lastHeartbeatTime": "2026-11-27T11:59:50Z"}]
        }
    });
    serde_json::from_value(merged(base, patch)).unwrap()
}

/// A pending pod in `demo` requesting nothing, with `patch` merged in.
pub(super) fn pod(name: &str, patch: Value) -> Pod {
    serde_json::from_value(merged(pod_value(name, None), patch)).unwrap()
}

/// The same pod bound to `node` and running.
pub(super) fn on(pod: &Pod, node: &str) -> Pod {
    let mut v = serde_json::to_value(pod).unwrap();
    v["spec"]["nodeName"] = json!(node);
    v["status"]["phase"] = json!("Running");
    serde_json::from_value(v).unwrap()
}

pub(super) fn run(pending: &[&Pod], nodes: &[&Node], bound: &[&Pod]) -> Vec<Placement> {
    schedule(
        pending,
        nodes,
        bound,
        &Namespaces::new(),
        now(),
        &policy(),
        7,
    )
}

pub(super) fn taint(key: &str, value: &str, effect: &str) -> Value {
    json!({"spec": {"taints": [{"key": key, "value": value, "effect": effect}]}})
}

fn tolerations(t: Value) -> Value {
    json!({"spec": {"tolerations": t}})
}

#[test]
fn taints_turn_away_pods_that_do_not_tolerate_them() {
    let gpu = node("gpu", taint("dedicated", "gpu", "NoSchedule"));
    let evicting = node("ev", taint("maintenance", "", "NoExecute"));
    let plain = pod("p", json!({}));
    assert_eq!(
        run(&[&plain], &[&gpu, &evicting], &[]),
        vec![unschedulable(
            "p",
            "0/2 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}, \
             1 node(s) had untolerated taint {maintenance: }. \
             preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
        )]
    );
    // Equal needs the same key and value; Exists any value; the effect, if given, must agree.
    let cases = [
        (json!([{"key": "dedicated", "value": "gpu"}]), true),
        (
            json!([{"key": "dedicated", "operator": "Equal", "value": "cpu"}]),
            false,
        ),
        (
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoSchedule"}]),
            true,
        ),
        (
            json!([{"key": "dedicated", "operator": "Exists", "effect": "NoExecute"}]),
            false,
        ),
        (json!([{"key": "other", "operator": "Exists"}]), false),
        (json!([{"operator": "Exists"}]), true),
    ];
    for (t, fits) in cases {
        let p = pod("p", tolerations(t.clone()));
        let expected = if fits {
            bind("p", "gpu")
        } else {
            unschedulable(
                "p",
                "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling..",
            )
        };
        assert_eq!(run(&[&p], &[&gpu], &[]), vec![expected], "{t}");
    }
    // PreferNoSchedule only scores.
    let soft = node("soft", taint("dedicated", "gpu", "PreferNoSchedule"));
    assert_eq!(run(&[&plain], &[&soft], &[]), vec![bind("p", "soft")]);
}

#[test]
fn cordoned_nodes_take_pods_that_tolerate_the_unschedulable_taint() {
    let cordoned = node("c", json!({"spec": {"unschedulable": true}}));
    let plain = pod("p", json!({}));
    assert_eq!(
        run(&[&plain], &[&cordoned], &[]),
        vec![unschedulable(
            "p",
            "0/1 nodes are available: 1 node(s) were unschedulable. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
        )]
    );
    let tolerant = pod(
        "p",
        tolerations(
            json!([{"key": "node.kubernetes.io/unschedulable", "operator": "Exists",
                             "effect": "NoSchedule"}]),
        ),
    );
    assert_eq!(run(&[&tolerant], &[&cordoned], &[]), vec![bind("p", "c")]);
}

fn required_node_affinity(terms: Value) -> Value {
    json!({"spec": {"affinity": {"nodeAffinity": {
        "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": terms}}}}})
}

#[test]
fn required_node_affinity_ors_terms_and_ands_expressions() {
    let a = node(
        "a",
        json!({"metadata": {"labels": {"zone": "z1", "disk": "ssd", "cores": "8"}}}),
    );
    let b = node(
        "b",
        json!({"metadata": {"labels": {"zone": "z2", "cores": "2"}}}),
    );
    let c = node(
        "c",
        json!({"metadata": {"labels": {"zone": "z3", "disk": "hdd"}}}),
    );
    let nodes = [&a, &b, &c];
    let expr = |key: &str, op: &str, values: &[&str]| json!({"key": key, "operator": op, "values": values});
    let only = |name: &str, terms: Value| {
        let p = pod("p", required_node_affinity(terms.clone()));
        let expected = match name {
            "" => unschedulable(
                "p",
                "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector. preemption: 0/3 nodes are available: 3 Preemption is not helpful for scheduling..",
            ),
            n => bind("p", n),
        };
        assert_eq!(run(&[&p], &nodes, &[]), vec![expected], "{terms}");
    };
    only(
        "a",
        json!([{"matchExpressions": [expr("zone", "In", &["z1", "z2"]), expr("disk", "Exists", &[])]}]),
    );
    only(
        "b",
        json!([{"matchExpressions": [expr("disk", "DoesNotExist", &[])]}]),
    );
    only(
        "b",
        json!([{"matchExpressions": [expr("zone", "NotIn", &["z1", "z3"])]}]),
    );
    only(
        "a",
        json!([{"matchExpressions": [expr("cores", "Gt", &["4"])]}]),
    );
    only(
        "b",
        json!([{"matchExpressions": [expr("cores", "Lt", &["4"])]}]),
    );
    only(
        "",
        json!([{"matchExpressions": [expr("cores", "Gt", &["many"])]}]),
    );
    only(
        "c",
        json!([{"matchFields": [expr("metadata.name", "In", &["c"])]}]),
    );
    only(
        "",
        json!([{"matchExpressions": [expr("zone", "In", &["z9"])]}, {}]),
    );
    // Terms are ORed: z2 or hdd leaves out only a.
    let p = pod(
        "p",
        merged(
            required_node_affinity(json!([
                {"matchExpressions": [expr("zone", "In", &["z2"])]},
                {"matchExpressions": [expr("disk", "In", &["hdd"])]}
            ])),
            json!({"spec": {"containers": [{"name": "main", "image": "x",
                                            "resources": {"requests": {"cpu": "3"}}}]}}),
        ),
    );
    let q = pod(
        "q",
        json!({"spec": {"containers": [{"name": "main", "image": "x",
        "resources": {"requests": {"cpu": "3"}}}]}}),
    );
    let copy = |name: &str| {
        let mut v = serde_json::to_value(&p).unwrap();
        v["metadata"]["name"] = json!(name);
        v["metadata"]["uid"] = json!(format!("uid-{name}"));
        serde_json::from_value::<Pod>(v).unwrap()
    };
    let (r, s) = (copy("r"), copy("s"));
    let placed = run(&[&p, &r, &s], &nodes, &[]);
    let node_of = |p: &Placement| match p {
        Placement::Bind { node, .. } => node.clone(),
        other => panic!("not bound: {other:?}"),
    };
    let mut used = [node_of(&placed[0]), node_of(&placed[1])];
    used.sort();
    assert_eq!(used, ["b", "c"]);
    assert_eq!(
        placed[2],
        unschedulable(
            "s",
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu. preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.."
        )
    );
    // The nodeSelector and the affinity must both hold.
    let both = pod(
        "p",
        merged(
            required_node_affinity(
                json!([{"matchExpressions": [expr("zone", "In", &["z1", "z2"])]}]),
            ),
            json!({"spec": {"nodeSelector": {"cores": "2"}}}),
        ),
    );
    assert_eq!(run(&[&both], &nodes, &[]), vec![bind("p", "b")]);
    assert_eq!(run(&[&q], &[&a], &[]), vec![bind("q", "a")]);
}

fn ports(list: Value) -> Value {
    json!({"spec": {"containers": [{"name": "main", "image": "x", "ports": list}]}})
}

#[test]
fn host_ports_clash_by_protocol_and_address() {
    let n = node("n1", json!({}));
    let web = pod(
        "web",
        ports(json!([{"containerPort": 80, "hostPort": 8080}])),
    );
    let held = on(&web, "n1");
    let full =
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..";
    let cases = [
        (json!([{"containerPort": 80, "hostPort": 8080}]), false),
        (
            json!([{"containerPort": 80, "hostPort": 8080, "hostIP": "10.0.0.1"}]),
            false,
        ),
        (
            json!([{"containerPort": 80, "hostPort": 8080, "protocol": "UDP"}]),
            true,
        ),
        (json!([{"containerPort": 80, "hostPort": 8081}]), true),
        (json!([{"containerPort": 8080}]), true),
    ];
    for (list, fits) in cases {
        let p = pod("p", ports(list.clone()));
        let expected = if fits {
            bind("p", "n1")
        } else {
            unschedulable("p", full)
        };
        assert_eq!(run(&[&p], &[&n], &[&held]), vec![expected], "{list}");
    }
    // Two specific addresses do not clash; a pod placed earlier in the round holds its port.
    let on_a = pod(
        "a",
        ports(json!([{"containerPort": 1, "hostPort": 53, "hostIP": "10.0.0.1"}])),
    );
    let on_b = pod(
        "b",
        ports(json!([{"containerPort": 1, "hostPort": 53, "hostIP": "10.0.0.2"}])),
    );
    let any = pod("c", ports(json!([{"containerPort": 1, "hostPort": 53}])));
    assert_eq!(
        run(&[&on_a, &on_b, &any], &[&n], &[]),
        vec![bind("a", "n1"), bind("b", "n1"), unschedulable("c", full)]
    );
}
