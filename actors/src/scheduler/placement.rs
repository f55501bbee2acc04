//! Decides where pending pods go. Pure: `(pending pods, nodes, pods already bound, namespaces, now, seed) ->
//! placements`.
//!
//! As kube-scheduler: each pod in turn (higher `spec.priority` first, then older) goes through the filters in
//! kube-scheduler's order, a node failing at the first filter that refuses it: NodeUnschedulable (cordoned),
//! TaintToleration (with the taint a node that is not ready would carry, see `nodes`), NodeAffinity (`nodeSelector`
//! and required node affinity), NodePorts, NodeResourcesFit (CPU, memory, pod count against `status.allocatable`),
//! PodTopologySpread (`DoNotSchedule`), InterPodAffinity (required terms). Pods placed earlier in the round count
//! like bound ones. The nodes left are scored by each plugin, normalized to 0..=100 and summed with
//! kube-scheduler's default weights (`Weights`); the best wins, ties broken at random from `seed`. A pod with no
//! node left may preempt pods of lower priority (`preemption`); if it cannot, it gets Kubernetes' explanation, e.g.
//! `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) didn't match Pod's node affinity/selector. preemption:
//! 0/3 nodes are available: 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for
//! scheduling..` (the double period is kube-scheduler's).

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint};
use k8s_openapi::chrono::{DateTime, Utc};

use super::preemption::{self, Preemption};
use super::resources::{self, Amounts, HostPort};
pub use super::selectors::Namespaces;
use super::selectors::{node_labels, Labels};
use super::{affinity, nodes, spread};
use crate::informer::ObjectKey;

/// What the scheduler tells its core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Pods naming another `schedulerName` are left alone.
    pub scheduler_name: String,
    /// A node whose last heartbeat is at least this old is not ready.
    pub heartbeat_timeout: Duration,
    /// kube-scheduler's `percentageOfNodesToScore`: filtering stops once this share of the nodes was found
    /// feasible, and only those are scored (see [`feasible_nodes_to_find`]). 0: adaptive; 100: every node.
    pub percentage_of_nodes_to_score: u32,
}

/// Fewer nodes than this are always all looked at (kube-scheduler's `minFeasibleNodesToFind`).
const MIN_FEASIBLE_NODES_TO_FIND: usize = 100;
/// The adaptive percentage never goes below this (`minFeasibleNodesPercentageToFind`).
const MIN_FEASIBLE_NODES_PERCENTAGE: usize = 5;

/// How many feasible nodes to find before filtering stops, out of `all` (kube-scheduler's `numFeasibleNodesToFind`):
/// every node below 100 nodes; else `percentage` of them (0: adaptive, 50% falling by 1 point per 125 nodes to 5%
/// at 5,625 nodes and beyond), and never fewer than 100. Scores of a sample are good enough at scale while the
/// work per pod stops growing with the cluster.
pub fn feasible_nodes_to_find(all: usize, percentage: u32) -> usize {
    if all < MIN_FEASIBLE_NODES_TO_FIND || percentage >= 100 {
        return all;
    }
    let percentage = match usize::try_from(percentage).unwrap_or(100) {
        0 => 50usize
            .saturating_sub(all / 125)
            .max(MIN_FEASIBLE_NODES_PERCENTAGE),
        p => p,
    };
    (all * percentage / 100).max(MIN_FEASIBLE_NODES_TO_FIND)
}

/// The decision for one pending pod.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// Bind the pod to `node`.
    Bind {
        /// The pod.
        pod: ObjectKey,
        /// Its uid (the binding must not land on a new pod of the same name).
        uid: String,
        /// The chosen node.
        node: String,
    },
    /// No node fits the pod, but one would once `victims`, pods of lower priority, are gone: delete them and
    /// nominate the pod to `node` (`status.nominatedNodeName`).
    Preempt {
        /// The pod.
        pod: ObjectKey,
        /// Its uid.
        uid: String,
        /// The node it is nominated to.
        node: String,
        /// The pods to delete, with their uids.
        victims: Vec<(ObjectKey, String)>,
        /// Why no node fits now, as Kubernetes words it.
        message: String,
    },
    /// No node fits the pod now.
    Unschedulable {
        /// The pod.
        pod: ObjectKey,
        /// Its uid.
        uid: String,
        /// Why, as Kubernetes words it.
        message: String,
    },
}

/// kube-scheduler's default score weights (`KubeSchedulerConfiguration` v1 defaults).
struct Weights;

impl Weights {
    const TAINT_TOLERATION: i64 = 3;
    const NODE_AFFINITY: i64 = 2;
    const RESOURCES_FIT: i64 = 1;
    const TOPOLOGY_SPREAD: i64 = 2;
    const INTER_POD_AFFINITY: i64 = 2;
    const BALANCED_ALLOCATION: i64 = 1;
}

/// Whether `pod` waits for this scheduler: no node yet, our scheduler name, not being deleted, not finished.
pub fn is_pending(pod: &Pod, scheduler_name: &str) -> bool {
    let Some(spec) = &pod.spec else { return false };
    let unbound = spec.node_name.as_deref().is_none_or(str::is_empty);
    let ours = spec
        .scheduler_name
        .as_deref()
        .unwrap_or("default-scheduler")
        == scheduler_name;
    unbound && ours && pod.metadata.deletion_timestamp.is_none() && !is_finished(pod)
}

/// The node whose resources `pod` holds: the node it is bound to, unless it has finished.
pub fn occupied_node(pod: &Pod) -> Option<&str> {
    let node = pod.spec.as_ref()?.node_name.as_deref()?;
    (!node.is_empty() && !is_finished(pod)).then_some(node)
}

fn is_finished(pod: &Pod) -> bool {
    matches!(
        pod.status.as_ref().and_then(|s| s.phase.as_deref()),
        Some("Succeeded" | "Failed")
    )
}

/// A node as the round sees it, with the pods on it (bound, or placed earlier in the round).
#[derive(Clone)]
pub(super) struct NodeState<'a> {
    pub node: &'a Node,
    pub name: &'a str,
    pub labels: &'a Labels,
    /// The readiness taint the node would carry, if it is not ready.
    pub readiness: Option<Taint>,
    allocatable: Amounts,
    used: Amounts,
    used_for_score: Amounts,
    ports: Vec<HostPort>,
    pub pods: Vec<&'a Pod>,
    /// The pods of `pods` with inter-pod affinity or anti-affinity terms (see [`affinity::has_terms`]).
    pub with_terms: Vec<&'a Pod>,
}

impl<'a> NodeState<'a> {
    /// The same node with no pods on it.
    pub(super) fn emptied(&self) -> Self {
        Self {
            used: Amounts::default(),
            used_for_score: Amounts::default(),
            ports: Vec::new(),
            pods: Vec::new(),
            with_terms: Vec::new(),
            ..self.clone()
        }
    }

    /// Counts `pod` as on this node.
    pub(super) fn hold(&mut self, pod: &'a Pod) {
        let req = resources::pod_requests(pod);
        self.used += req.fit;
        self.used_for_score += req.score;
        self.ports.extend(resources::host_ports(pod));
        self.pods.push(pod);
        if affinity::has_terms(pod) {
            self.with_terms.push(pod);
        }
    }
}

/// A small seeded generator (SplitMix64): ties are broken at random, yet a test's seed gives one answer.
struct Rng(u64);

impl Rng {
    /// A number in `0..n` (`n` > 0).
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)) % n.max(1)
    }
}

/// Why `pod` may not go to `node`, from the first filter that refuses it (empty when it may).
fn refusals(
    node: &NodeState<'_>,
    pod: &Pod,
    req: Amounts,
    ports: &[HostPort],
    spread: &spread::Hard<'_>,
    affinity: &affinity::Required<'_>,
) -> Vec<String> {
    if nodes::cordoned_against(node.node, pod) {
        return vec![nodes::UNSCHEDULABLE.into()];
    }
    if let Some(taint) = nodes::untolerated_taint(node.node, node.readiness.as_ref(), pod) {
        return vec![taint];
    }
    if !nodes::required_affinity_matches(pod, node.name, node.labels) {
        return vec![nodes::SELECTOR.into()];
    }
    if resources::ports_clash(ports, &node.ports) {
        return vec![resources::PORTS.into()];
    }
    let misfits = resources::misfits(node.allocatable, node.used, req);
    if !misfits.is_empty() {
        return misfits.into_iter().map(String::from).collect();
    }
    spread
        .filter(node.labels)
        .or_else(|| affinity.filter(node.labels))
        .map(String::from)
        .into_iter()
        .collect()
}

/// Why `pod` may not go to the node at `i` of `states` (empty when it may).
pub(super) fn refusals_on(
    pod: &Pod,
    states: &[NodeState<'_>],
    i: usize,
    namespaces: &Namespaces,
) -> Vec<String> {
    let req = resources::pod_requests(pod);
    let ports = resources::host_ports(pod);
    let spread = spread::Hard::count(pod, states);
    let affinity = affinity::Required::count(pod, states, namespaces);
    refusals(&states[i], pod, req.fit, &ports, &spread, &affinity)
}

/// Scales raw scores to 0..=100 against the highest (kube-scheduler's `DefaultNormalizeScore`); `reverse` makes
/// the lowest raw score the best.
fn normalize(raw: &[i64], reverse: bool) -> Vec<i64> {
    let max = raw.iter().copied().max().unwrap_or(0);
    raw.iter()
        .map(|&s| {
            let s = if max > 0 { s * 100 / max } else { 0 };
            if reverse {
                100 - s
            } else {
                s
            }
        })
        .collect()
}

/// The weighted sum of every score plugin for each node in `feasible` (indices into `nodes`).
fn total_scores(
    pod: &Pod,
    nodes: &[NodeState<'_>],
    feasible: &[usize],
    namespaces: &Namespaces,
) -> Vec<i64> {
    let req = resources::pod_requests(pod);
    let each = |f: &dyn Fn(&NodeState<'_>) -> i64| -> Vec<i64> {
        feasible.iter().map(|&i| f(&nodes[i])).collect()
    };
    let taints = normalize(
        &each(&|n| nodes::intolerable_preferences(n.node, pod)),
        true,
    );
    let node_affinity = normalize(
        &each(&|n| nodes::preferred_affinity(pod, n.name, n.labels)),
        false,
    );
    let least = each(&|n| resources::least_allocated(n.allocatable, n.used_for_score, req.score));
    let balanced =
        each(&|n| resources::balanced_allocation(n.allocatable, n.used, req.fit).unwrap_or(0));
    let spread = spread::scores(pod, nodes, feasible).unwrap_or_else(|| vec![0; feasible.len()]);
    let pod_affinity = affinity::scores(pod, nodes, feasible, namespaces);
    (0..feasible.len())
        .map(|j| {
            taints[j] * Weights::TAINT_TOLERATION
                + node_affinity[j] * Weights::NODE_AFFINITY
                + least[j] * Weights::RESOURCES_FIT
                + spread[j] * Weights::TOPOLOGY_SPREAD
                + pod_affinity[j] * Weights::INTER_POD_AFFINITY
                + balanced[j] * Weights::BALANCED_ALLOCATION
        })
        .collect()
}

/// The best of `feasible` by `scores`; among equals each has the same chance (kube-scheduler's reservoir sampling).
fn select(feasible: &[usize], scores: &[i64], rng: &mut Rng) -> Option<usize> {
    let mut best: Option<(usize, i64)> = None;
    let mut ties = 0;
    for (&i, &s) in feasible.iter().zip(scores) {
        match best {
            Some((_, b)) if s < b => {}
            Some((_, b)) if s == b => {
                ties += 1;
                if rng.below(ties) == 0 {
                    best = Some((i, s));
                }
            }
            _ => {
                ties = 1;
                best = Some((i, s));
            }
        }
    }
    best.map(|(i, _)| i)
}

/// Kubernetes' explanation of why no node fits.
pub(super) fn explain(total: usize, reasons: &BTreeMap<String, usize>) -> String {
    if total == 0 {
        return "no nodes available to schedule pods".to_string();
    }
    let mut parts: Vec<String> = reasons
        .iter()
        .map(|(why, n)| format!("{n} {why}"))
        .collect();
    parts.sort();
    format!("0/{total} nodes are available: {}.", parts.join(", "))
}

/// Places `pending` pods (in priority, then age order) on `nodes`, given the pods `bound` to nodes already
/// (finished ones are ignored) and the labels of the `namespaces` (for pod affinity terms' `namespaceSelector`).
/// Placements made earlier in the round count for later pods; `seed` breaks ties.
pub fn schedule(
    pending: &[&Pod],
    nodes: &[&Node],
    bound: &[&Pod],
    namespaces: &Namespaces,
    now: DateTime<Utc>,
    policy: &Policy,
    seed: u64,
) -> Vec<Placement> {
    let mut states: Vec<NodeState<'_>> = nodes
        .iter()
        .filter_map(|n| {
            Some(NodeState {
                node: n,
                name: n.metadata.name.as_deref().filter(|s| !s.is_empty())?,
                labels: node_labels(n),
                readiness: nodes::readiness_taint(n, now, policy.heartbeat_timeout),
                allocatable: resources::allocatable(n),
                used: Amounts::default(),
                used_for_score: Amounts::default(),
                ports: Vec::new(),
                pods: Vec::new(),
                with_terms: Vec::new(),
            })
        })
        .collect();
    states.sort_by(|a, b| a.name.cmp(b.name));
    let index: BTreeMap<&str, usize> = states
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name, i))
        .collect();
    for pod in bound {
        if let Some(&i) = occupied_node(pod).and_then(|n| index.get(n)) {
            states[i].hold(pod);
        }
    }

    let mut order: Vec<&Pod> = pending.to_vec();
    order.sort_by(|a, b| {
        let priority = |p: &Pod| p.spec.as_ref().and_then(|s| s.priority).unwrap_or(0);
        priority(b)
            .cmp(&priority(a))
            .then_with(|| {
                let created = |p: &Pod| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
                created(a).cmp(&created(b))
            })
            .then_with(|| ObjectKey::of(&a.metadata).cmp(&ObjectKey::of(&b.metadata)))
    });

    let mut rng = Rng(seed);
    let to_find = feasible_nodes_to_find(states.len(), policy.percentage_of_nodes_to_score);
    // Where the next pod's filtering starts: each pod goes on from where the last one stopped, as kube-scheduler's
    // `nextStartNodeIndex`, so a sample does not always favour the same nodes.
    let mut next_start = usize::try_from(seed % (states.len().max(1) as u64)).unwrap_or(0);
    let mut placements = Vec::with_capacity(order.len());
    for pod in order {
        let key = ObjectKey::of(&pod.metadata);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let req = resources::pod_requests(pod);
        let ports = resources::host_ports(pod);
        let spread = spread::Hard::count(pod, &states);
        let affinity = affinity::Required::count(pod, &states, namespaces);
        let mut feasible = Vec::new();
        let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
        let mut refused = vec![Vec::new(); states.len()];
        let mut visited = 0;
        for offset in 0..states.len() {
            if feasible.len() >= to_find {
                break;
            }
            let i = (next_start + offset) % states.len();
            visited += 1;
            let why = refusals(&states[i], pod, req.fit, &ports, &spread, &affinity);
            if why.is_empty() {
                feasible.push(i);
            }
            for w in &why {
                *reasons.entry(w.clone()).or_default() += 1;
            }
            refused[i] = why;
        }
        next_start = (next_start + visited) % states.len().max(1);
        let scores = total_scores(pod, &states, &feasible, namespaces);
        match select(&feasible, &scores, &mut rng) {
            Some(i) => {
                states[i].hold(pod);
                placements.push(Placement::Bind {
                    pod: key,
                    uid,
                    node: states[i].name.to_string(),
                });
            }
            None if states.is_empty() => placements.push(Placement::Unschedulable {
                pod: key,
                uid,
                message: explain(0, &reasons),
            }),
            None => {
                let message = explain(states.len(), &reasons);
                placements.push(
                    match preemption::preempt(pod, &states, &refused, namespaces) {
                        Preemption::Evict { node, victims } => Placement::Preempt {
                            pod: key,
                            uid,
                            node: states[node].name.to_string(),
                            victims: victims
                                .iter()
                                .map(|v| {
                                    let uid = v.metadata.uid.clone().unwrap_or_default();
                                    (ObjectKey::of(&v.metadata), uid)
                                })
                                .collect(),
                            message,
                        },
                        // kube-scheduler's FitError appends the PostFilter message the same way (" %v.").
                        Preemption::NotHelpful(why) => Placement::Unschedulable {
                            pod: key,
                            uid,
                            message: format!("{message} preemption: {why}."),
                        },
                    },
                )
            }
        }
    }
    placements
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "filter_tests.rs"]
mod filter_tests;

#[cfg(test)]
#[path = "topology_tests.rs"]
mod topology_tests;

#[cfg(test)]
#[path = "score_tests.rs"]
mod score_tests;

#[cfg(test)]
#[path = "preemption_tests.rs"]
mod preemption_tests;

#[cfg(test)]
#[path = "sample_tests.rs"]
mod sample_tests;
