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

fn run(pending: &[&Pod], nodes: &[&Node], bound: &[&Pod]) -> Vec<Placement> {
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

fn taint(key: &str, value: &str, effect: &str) -> Value {
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
             1 node(s) had untolerated taint {maintenance: }."
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
                "0/1 nodes are available: 1 node(s) had untolerated taint {dedicated: gpu}.",
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
            "0/1 nodes are available: 1 node(s) were unschedulable."
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
                "0/3 nodes are available: 3 node(s) didn't match Pod's node affinity/selector.",
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
            "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 Insufficient cpu."
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
        "0/1 nodes are available: 1 node(s) didn't have free ports for the requested pod ports.";
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

/// Labels `app: <app>` and a required pod (anti-)affinity term for `app: <app>` on `key`.
fn grouped(app: &str, kind: &str, key: &str) -> Value {
    json!({
        "metadata": {"labels": {"app": app}},
        "spec": {"affinity": {kind: {"requiredDuringSchedulingIgnoredDuringExecution": [
            {"labelSelector": {"matchLabels": {"app": app}}, "topologyKey": key}]}}}
    })
}

#[test]
fn required_anti_affinity_puts_one_pod_per_node_even_within_a_round() {
    let (n1, n2, n3) = (
        node("n1", json!({})),
        node("n2", json!({})),
        node("n3", json!({})),
    );
    let nodes = [&n1, &n2, &n3];
    let web: Vec<Pod> = (0..4)
        .map(|i| {
            pod(
                &format!("web-{i}"),
                grouped("web", "podAntiAffinity", "kubernetes.io/hostname"),
            )
        })
        .collect();
    let refs: Vec<&Pod> = web.iter().collect();
    let placed = run(&refs, &nodes, &[]);
    let mut used: Vec<String> = placed[..3]
        .iter()
        .map(|p| match p {
            Placement::Bind { node, .. } => node.clone(),
            other => panic!("not bound: {other:?}"),
        })
        .collect();
    used.sort();
    assert_eq!(used, ["n1", "n2", "n3"]);
    assert_eq!(
        placed[3],
        unschedulable(
            "web-3",
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules."
        )
    );
}

#[test]
fn existing_pods_anti_affinity_keeps_matching_pods_away() {
    let (n1, n2) = (node("n1", json!({})), node("n2", json!({})));
    let loner = on(
        &pod(
            "loner",
            grouped("web", "podAntiAffinity", "kubernetes.io/hostname"),
        ),
        "n1",
    );
    let web = pod("web", json!({"metadata": {"labels": {"app": "web"}}}));
    assert_eq!(
        run(&[&web], &[&n1, &n2], &[&loner]),
        vec![bind("web", "n2")]
    );
    assert_eq!(
        run(&[&web], &[&n1], &[&loner]),
        vec![unschedulable(
            "web",
            "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."
        )]
    );
    // Terms select in their pod's namespace unless they list others.
    let mut elsewhere = serde_json::to_value(&web).unwrap();
    elsewhere["metadata"]["namespace"] = json!("other");
    let elsewhere: Pod = serde_json::from_value(elsewhere).unwrap();
    assert_eq!(
        run(&[&elsewhere], &[&n1], &[&loner]),
        vec![Placement::Bind {
            pod: ObjectKey::new("other", "web"),
            uid: "uid-web".into(),
            node: "n1".into(),
        }]
    );
    let mut listing = grouped("web", "podAntiAffinity", "kubernetes.io/hostname");
    listing["spec"]["affinity"]["podAntiAffinity"]
        ["requiredDuringSchedulingIgnoredDuringExecution"][0]["namespaces"] = json!(["other"]);
    let listing = on(&pod("listing", listing), "n1");
    assert_eq!(
        run(&[&elsewhere], &[&n1], &[&listing]),
        vec![Placement::Unschedulable {
            pod: ObjectKey::new("other", "web"),
            uid: "uid-web".into(),
            message: "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules."
                .into(),
        }]
    );
}

#[test]
fn required_affinity_follows_the_pods_it_selects_by_topology() {
    let zone = |z: &str| json!({"metadata": {"labels": {"topology.kubernetes.io/zone": z}}});
    let (a1, b1, b2) = (
        node("a1", zone("a")),
        node("b1", zone("b")),
        node("b2", zone("b")),
    );
    let bare = node("bare", json!({}));
    let nodes = [&a1, &b1, &b2, &bare];
    let db = on(
        &pod("db", json!({"metadata": {"labels": {"app": "db"}}})),
        "b1",
    );
    let mut near = grouped("web", "podAffinity", "topology.kubernetes.io/zone");
    near["spec"]["affinity"]["podAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"][0]
        ["labelSelector"] =
        json!({"matchExpressions": [{"key": "app", "operator": "In", "values": ["db"]}]});
    let web = pod("web", near);
    // Zone b holds the db: b1 or b2; a1 is the wrong zone, bare has no zone at all.
    for seed in 0..8 {
        let placed = schedule(
            &[&web],
            &nodes,
            &[&db],
            &Namespaces::new(),
            now(),
            &policy(),
            seed,
        );
        assert!(matches!(&placed[0], Placement::Bind { node, .. } if node.starts_with('b')));
    }
    assert_eq!(
        run(&[&web], &[&a1, &bare], &[&db]),
        vec![unschedulable(
            "web",
            "0/2 nodes are available: 2 node(s) didn't match pod affinity rules."
        )]
    );
    // With no db anywhere it waits; the first pod of a group with affinity to itself does not.
    assert_eq!(
        run(&[&web], &[&a1], &[]),
        vec![unschedulable(
            "web",
            "0/1 nodes are available: 1 node(s) didn't match pod affinity rules."
        )]
    );
    let first = pod(
        "first",
        grouped("cache", "podAffinity", "topology.kubernetes.io/zone"),
    );
    let second = pod(
        "second",
        grouped("cache", "podAffinity", "topology.kubernetes.io/zone"),
    );
    let placed = run(&[&first, &second], &[&a1, &b1], &[]);
    let node_of = |p: &Placement| match p {
        Placement::Bind { node, .. } => node.clone(),
        other => panic!("not bound: {other:?}"),
    };
    assert_eq!(node_of(&placed[0]), node_of(&placed[1]));
}

fn spread_by_zone(when: &str, max_skew: i32) -> Value {
    json!({
        "metadata": {"labels": {"app": "web"}},
        "spec": {"topologySpreadConstraints": [{"maxSkew": max_skew, "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": when, "labelSelector": {"matchLabels": {"app": "web"}}}]}
    })
}

#[test]
fn do_not_schedule_spread_keeps_the_skew_within_max_skew() {
    let zone = |z: &str| json!({"metadata": {"labels": {"topology.kubernetes.io/zone": z}}});
    let a = node("a", zone("a"));
    let b = node(
        "b",
        merged(
            zone("b"),
            json!({"status": {"allocatable": {"cpu": "100m"}}}),
        ),
    );
    let bare = node("bare", json!({}));
    let placed_a = on(&pod("w0", spread_by_zone("DoNotSchedule", 1)), "a");
    let w1 = pod("w1", spread_by_zone("DoNotSchedule", 1));
    // a holds one, b none: another in a would make the skew 2.
    assert_eq!(
        run(&[&w1], &[&a, &b, &bare], &[&placed_a]),
        vec![bind("w1", "b")]
    );
    let mut big = merged(
        spread_by_zone("DoNotSchedule", 1),
        json!({"spec": {"containers": [{"name": "main", "image": "x", "resources": {"requests": {"cpu": "1"}}}]}}),
    );
    big["metadata"]["name"] = json!("big");
    let big = pod("big", big);
    assert_eq!(
        run(&[&big], &[&a, &b, &bare], &[&placed_a]),
        vec![unschedulable(
            "big",
            "0/3 nodes are available: 1 Insufficient cpu, 1 node(s) didn't match pod topology spread constraints, \
             1 node(s) didn't match pod topology spread constraints (missing required label)."
        )]
    );
    // maxSkew 2 allows it; ScheduleAnyway never refuses.
    let loose = pod("w1", spread_by_zone("DoNotSchedule", 2));
    assert_eq!(run(&[&loose], &[&a], &[&placed_a]), vec![bind("w1", "a")]);
    let soft = pod("w1", spread_by_zone("ScheduleAnyway", 1));
    assert_eq!(run(&[&soft], &[&a, &bare], &[&placed_a]).len(), 1);
}

#[test]
fn namespace_selectors_pick_namespaces_by_their_labels() {
    let n1 = node("n1", json!({}));
    let mut term = grouped("web", "podAntiAffinity", "kubernetes.io/hostname");
    term["spec"]["affinity"]["podAntiAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        [0]["namespaceSelector"] = json!({"matchLabels": {"team": "a"}});
    let loner = on(&pod("loner", term), "n1");
    let mut web = pod("web", json!({"metadata": {"labels": {"app": "web"}}}));
    web.metadata.namespace = Some("other".into());
    let key = ObjectKey::new("other", "web");
    let refused =
        "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules.";
    let run_with = |labels: Value| {
        let namespaces: Namespaces =
            serde_json::from_value(json!({"other": labels, "demo": {}})).unwrap();
        schedule(&[&web], &[&n1], &[&loner], &namespaces, now(), &policy(), 0)
    };
    assert_eq!(
        run_with(json!({"team": "a"})),
        vec![Placement::Unschedulable {
            pod: key.clone(),
            uid: "uid-web".into(),
            message: refused.into()
        }]
    );
    // Not the term's own namespace: a selector replaces the default.
    assert_eq!(
        run_with(json!({"team": "b"})),
        vec![Placement::Bind {
            pod: key,
            uid: "uid-web".into(),
            node: "n1".into()
        }]
    );
}

#[test]
fn spread_counts_where_the_node_inclusion_policies_say_and_by_match_label_keys() {
    let zone = |z: &str| json!({"metadata": {"labels": {"topology.kubernetes.io/zone": z}}});
    let a = node("a", zone("a"));
    let tainted = node("b", merged(zone("b"), taint("gpu", "", "NoSchedule")));
    let web = |name: &str, extra: Value| {
        let mut v = spread_by_zone("DoNotSchedule", 1);
        v["spec"]["topologySpreadConstraints"][0]
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        pod(name, v)
    };
    // Zone b (empty) counts by default though its node's taint turns the pod away: a is at skew 2, refused.
    let w0 = on(&web("w0", json!({})), "a");
    let both = "0/2 nodes are available: 1 node(s) didn't match pod topology spread constraints, \
                1 node(s) had untolerated taint {gpu: }.";
    assert_eq!(
        run(&[&web("w1", json!({}))], &[&a, &tainted], &[&w0]),
        vec![unschedulable("w1", both)]
    );
    // Honoring taints leaves zone b out: a is the only domain.
    let honoring = web("w1", json!({"nodeTaintsPolicy": "Honor"}));
    assert_eq!(
        run(&[&honoring], &[&a, &tainted], &[&w0]),
        vec![bind("w1", "a")]
    );
    // A nodeSelector for zone a leaves b out too, unless nodeAffinityPolicy is Ignore.
    let mut selecting = web("w1", json!({}));
    selecting.spec.as_mut().unwrap().node_selector =
        Some([("topology.kubernetes.io/zone".to_string(), "a".to_string())].into());
    let b = node("b", zone("b"));
    assert_eq!(run(&[&selecting], &[&a, &b], &[&w0]), vec![bind("w1", "a")]);
    let mut ignoring = web("w1", json!({"nodeAffinityPolicy": "Ignore"}));
    ignoring.spec.as_mut().unwrap().node_selector =
        selecting.spec.as_ref().unwrap().node_selector.clone();
    assert_eq!(
        run(&[&ignoring], &[&a, &b], &[&w0]),
        vec![unschedulable(
            "w1",
            "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, \
             1 node(s) didn't match pod topology spread constraints."
        )]
    );
    // matchLabelKeys: only pods of the same revision count, so w0 (another hash) does not.
    let revision = |name: &str, hash: &str| {
        let mut p = web(name, json!({"matchLabelKeys": ["pod-template-hash"]}));
        p.metadata
            .labels
            .get_or_insert_with(Default::default)
            .insert("pod-template-hash".into(), hash.into());
        p
    };
    let old = on(&revision("w0", "old"), "a");
    assert_eq!(
        run(&[&revision("w1", "new")], &[&a], &[&old]),
        vec![bind("w1", "a")]
    );
    assert_eq!(
        run(&[&revision("w1", "old")], &[&a, &tainted], &[&old]),
        vec![unschedulable("w1", both)]
    );
}
