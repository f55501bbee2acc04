//! Tests of the filters that count pods by topology domain: inter-pod affinity and anti-affinity, and topology
//! spread constraints.

use super::filter_tests::{merged, node, on, pod, run, taint};
use super::tests::{bind, now, policy, unschedulable};
use super::*;
use serde_json::{json, Value};

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
            "0/3 nodes are available: 3 node(s) didn't match pod anti-affinity rules. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.."
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
            "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
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
            message: "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
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
            "0/2 nodes are available: 2 node(s) didn't match pod affinity rules. preemption: 0/2 nodes are available: 2 Preemption is not helpful for scheduling.."
        )]
    );
    // With no db anywhere it waits; the first pod of a group with affinity to itself does not.
    assert_eq!(
        run(&[&web], &[&a1], &[]),
        vec![unschedulable(
            "web",
            "0/1 nodes are available: 1 node(s) didn't match pod affinity rules. preemption: 0/1 nodes are available: 1 Preemption is not helpful for scheduling.."
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
             1 node(s) didn't match pod topology spread constraints (missing required label). \
             preemption: 0/3 nodes are available: 1 Preemption is not helpful for scheduling, 2 No preemption victims found for incoming pod.."
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
        "0/1 nodes are available: 1 node(s) didn't satisfy existing pods anti-affinity rules. preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod..";
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
                1 node(s) had untolerated taint {gpu: }. \
                preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling..";
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
             1 node(s) didn't match pod topology spread constraints. \
             preemption: 0/2 nodes are available: 1 No preemption victims found for incoming pod, 1 Preemption is not helpful for scheduling.."
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
