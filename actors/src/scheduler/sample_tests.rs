//! Tests of scoring a sample of the nodes (kube-scheduler's `percentageOfNodesToScore`).

use super::tests::{node, now, pod, policy};
use super::*;

#[test]
fn the_sample_size_follows_kube_schedulers_formula() {
    // (nodes, configured percentage) -> feasible nodes to find
    let cases = [
        (0, 0, 0),
        (50, 0, 50),
        (99, 0, 99),
        (100, 0, 100),    // 50% would be 50: at least 100
        (1000, 0, 420),   // 50 - 1000/125 = 42%
        (5000, 0, 500),   // 50 - 40 = 10%
        (6000, 0, 300),   // 50 - 48 = 2% -> 5%
        (20000, 0, 1000), // 5%
        (1000, 30, 300),
        (200, 10, 100), // 20 -> at least 100
        (1000, 100, 1000),
    ];
    for (all, percentage, expected) in cases {
        assert_eq!(
            feasible_nodes_to_find(all, percentage),
            expected,
            "{all} nodes at {percentage}%"
        );
    }
}

fn nodes(count: usize, cpu: impl Fn(usize) -> &'static str) -> Vec<Node> {
    (0..count)
        .map(|i| node(&format!("n{i:03}"), cpu(i)))
        .collect()
}

fn chosen(placements: &[Placement]) -> Vec<usize> {
    placements
        .iter()
        .map(|p| match p {
            Placement::Bind { node, .. } => node[1..].parse().unwrap(),
            other => panic!("not bound: {other:?}"),
        })
        .collect()
}

#[test]
fn each_pod_scores_the_next_window_of_nodes() {
    // 300 nodes: 48% of them, 144, are looked at per pod, each pod going on where the last one stopped.
    let all = nodes(300, |_| "4");
    let refs: Vec<&Node> = all.iter().collect();
    let (a, b) = (pod("a", Some("100m")), pod("b", Some("100m")));
    let placements = schedule(
        &[&a, &b],
        &refs,
        &[],
        &Namespaces::new(),
        now(),
        &policy(),
        0,
    );
    let nodes = chosen(&placements);
    assert!(nodes[0] < 144, "{nodes:?}");
    assert!((144..288).contains(&nodes[1]), "{nodes:?}");
    // Scoring every node instead: the second pod may pick any node but the first one's.
    let every = Policy {
        percentage_of_nodes_to_score: 100,
        ..policy()
    };
    let placements = schedule(&[&a, &b], &refs, &[], &Namespaces::new(), now(), &every, 0);
    let nodes = chosen(&placements);
    assert_ne!(nodes[0], nodes[1]);
}

#[test]
fn filtering_goes_on_past_the_window_until_a_node_fits() {
    // Only the last node has room, far outside the first window.
    let all = nodes(300, |i| if i == 299 { "4" } else { "100m" });
    let refs: Vec<&Node> = all.iter().collect();
    let big = pod("big", Some("1"));
    let placements = schedule(&[&big], &refs, &[], &Namespaces::new(), now(), &policy(), 0);
    assert_eq!(chosen(&placements), vec![299]);
}

#[test]
fn a_pod_that_fits_nowhere_is_told_about_every_node() {
    let all = nodes(300, |_| "100m");
    let refs: Vec<&Node> = all.iter().collect();
    let big = pod("big", Some("1"));
    let placements = schedule(&[&big], &refs, &[], &Namespaces::new(), now(), &policy(), 7);
    match &placements[..] {
        [Placement::Unschedulable { message, .. }] => assert!(
            message.starts_with("0/300 nodes are available: 300 Insufficient cpu."),
            "{message}"
        ),
        other => panic!("{other:?}"),
    }
}
