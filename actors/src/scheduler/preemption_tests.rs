//! Tests of preemption: which pods of lower priority make room, and kube-scheduler's words when none can.

use super::filter_tests::{merged, node, on, pod, run};
use super::tests::unschedulable;
use super::*;
use serde_json::{json, Value};

fn wanting(cpu: &str, priority: i32) -> Value {
    json!({"spec": {"priority": priority, "containers": [{"name": "main", "image": "x",
        "resources": {"requests": {"cpu": cpu}}}]}})
}

fn one_cpu(name: &str) -> Node {
    node(name, json!({"status": {"allocatable": {"cpu": "1"}}}))
}

fn preempt(name: &str, node: &str, victims: &[&str], message: &str) -> Placement {
    Placement::Preempt {
        pod: ObjectKey::new("demo", name),
        uid: format!("uid-{name}"),
        node: node.into(),
        victims: victims
            .iter()
            .map(|v| (ObjectKey::new("demo", *v), format!("uid-{v}")))
            .collect(),
        message: message.into(),
    }
}

const NO_CPU: &str = "0/1 nodes are available: 1 Insufficient cpu.";

#[test]
fn only_as_many_lower_priority_pods_as_needed_are_evicted() {
    let n1 = one_cpu("n1");
    let low = on(&pod("low", wanting("600m", 0)), "n1");
    let mid = on(&pod("mid", wanting("300m", 5)), "n1");
    let vip = pod("vip", wanting("600m", 10));
    assert_eq!(
        run(&[&vip], &[&n1], &[&low, &mid]),
        vec![preempt("vip", "n1", &["low"], NO_CPU)]
    );
    // Equal or higher priority is never a victim.
    let peer = pod("peer", wanting("600m", 0));
    assert_eq!(
        run(&[&peer], &[&n1], &[&low, &mid]),
        vec![unschedulable(
            "peer",
            "0/1 nodes are available: 1 Insufficient cpu. \
             preemption: 0/1 nodes are available: 1 No preemption victims found for incoming pod.."
        )]
    );
}

#[test]
fn the_node_with_the_least_important_and_fewest_victims_is_chosen() {
    let (n1, n2) = (one_cpu("n1"), one_cpu("n2"));
    let vip = pod("vip", wanting("1", 10));
    let five = on(&pod("five", wanting("1", 5)), "n1");
    let one = on(&pod("one", wanting("1", 1)), "n2");
    let message = "0/2 nodes are available: 2 Insufficient cpu.";
    assert_eq!(
        run(&[&vip], &[&n1, &n2], &[&five, &one]),
        vec![preempt("vip", "n2", &["one"], message)]
    );
    let halves = [
        on(&pod("h1", wanting("500m", 0)), "n1"),
        on(&pod("h2", wanting("500m", 0)), "n1"),
    ];
    let whole = on(&pod("whole", wanting("1", 0)), "n2");
    assert_eq!(
        run(&[&vip], &[&n1, &n2], &[&halves[0], &halves[1], &whole]),
        vec![preempt("vip", "n2", &["whole"], message)]
    );
}

#[test]
fn anti_affinity_is_resolved_by_evicting_the_pod_in_the_way() {
    let n1 = node("n1", json!({}));
    let web = json!({"metadata": {"labels": {"app": "web"}}});
    let old = on(&pod("old", merged(web.clone(), wanting("100m", 0))), "n1");
    let mut vip = merged(web, wanting("100m", 10));
    vip["spec"]["affinity"] = json!({"podAntiAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": [
        {"labelSelector": {"matchLabels": {"app": "web"}}, "topologyKey": "kubernetes.io/hostname"}]}});
    let vip = pod("vip", vip);
    assert_eq!(
        run(&[&vip], &[&n1], &[&old]),
        vec![preempt(
            "vip",
            "n1",
            &["old"],
            "0/1 nodes are available: 1 node(s) didn't match pod anti-affinity rules."
        )]
    );
}

#[test]
fn kube_scheduler_says_why_preemption_does_not_help() {
    let n1 = one_cpu("n1");
    let low = on(&pod("low", wanting("500m", 0)), "n1");
    // Even without every lower-priority pod it would not fit: the reasons as they would then be.
    let huge = pod("huge", wanting("2", 10));
    assert_eq!(
        run(&[&huge], &[&n1], &[&low]),
        vec![unschedulable(
            "huge",
            "0/1 nodes are available: 1 Insufficient cpu. preemption: 0/1 nodes are available: 1 Insufficient cpu.."
        )]
    );
    let never = pod(
        "never",
        merged(
            wanting("1", 10),
            json!({"spec": {"preemptionPolicy": "Never"}}),
        ),
    );
    assert_eq!(
        run(&[&never], &[&n1], &[&low]),
        vec![unschedulable(
            "never",
            "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to preemptionPolicy=Never.."
        )]
    );
    // Already nominated, with a victim still terminating there: wait rather than evict more.
    let mut going = serde_json::to_value(&low).unwrap();
    going["metadata"]["deletionTimestamp"] = json!("2026-11-27T11:59:55Z");
    let going: Pod = serde_json::from_value(going).unwrap();
    let waiting = pod(
        "vip",
        merged(
            wanting("1", 10),
            json!({"status": {"nominatedNodeName": "n1"}}),
        ),
    );
    assert_eq!(
        run(&[&waiting], &[&n1], &[&going]),
        vec![unschedulable(
            "vip",
            "0/1 nodes are available: 1 Insufficient cpu. \
             preemption: not eligible due to a terminating pod on the nominated node.."
        )]
    );
}
