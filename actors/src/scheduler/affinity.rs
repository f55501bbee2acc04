//! Inter-pod affinity and anti-affinity (kube-scheduler's `InterPodAffinity`): the required terms as a filter, in
//! both directions (the pod's own terms, and existing pods' anti-affinity against it), and the preferred terms as a
//! score. Pods count in the topology domain (`topologyKey`'s value) of the node they are on.

use k8s_openapi::api::core::v1::{Pod, PodAffinityTerm, WeightedPodAffinityTerm};

use super::placement::NodeState;
use super::selectors::{namespace, term_selects, Domains, Labels, Namespaces};

pub const AFFINITY: &str = "node(s) didn't match pod affinity rules";
pub const ANTI_AFFINITY: &str = "node(s) didn't match pod anti-affinity rules";
pub const EXISTING_ANTI_AFFINITY: &str = "node(s) didn't satisfy existing pods anti-affinity rules";

/// The weight kube-scheduler gives an existing pod's required affinity term that selects the incoming pod
/// (`hardPodAffinityWeight`, default 1).
const HARD_POD_AFFINITY_WEIGHT: i64 = 1;

fn affinity(pod: &Pod) -> Option<&k8s_openapi::api::core::v1::Affinity> {
    pod.spec.as_ref()?.affinity.as_ref()
}

fn required_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    affinity(pod)
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

fn required_anti_affinity(pod: &Pod) -> &[PodAffinityTerm] {
    affinity(pod)
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.required_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

fn preferred_affinity(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    affinity(pod)
        .and_then(|a| a.pod_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

fn preferred_anti_affinity(pod: &Pod) -> &[WeightedPodAffinityTerm] {
    affinity(pod)
        .and_then(|a| a.pod_anti_affinity.as_ref())
        .and_then(|a| {
            a.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        })
        .unwrap_or_default()
}

/// Whether `pod` has any inter-pod affinity or anti-affinity term. Only such pods can turn another pod away or
/// draw it, so a pod without terms of its own need only look at these (kube-scheduler keeps the same lists per
/// node: `PodsWithAffinity`).
pub fn has_terms(pod: &Pod) -> bool {
    affinity(pod).is_some_and(|a| a.pod_affinity.is_some() || a.pod_anti_affinity.is_some())
}

/// The pods of `node` that can matter to `pod`: all of them if `pod` has terms of its own, else those with terms.
fn relevant<'n, 'a>(pod: &Pod, node: &'n NodeState<'a>) -> &'n [&'a Pod] {
    if has_terms(pod) {
        &node.pods
    } else {
        &node.with_terms
    }
}

/// What the filter needs to know about the cluster for one pod, counted once per pod.
pub struct Required<'p> {
    pod: &'p Pod,
    namespaces: &'p Namespaces,
    /// Domains holding pods that match all of the pod's required affinity terms.
    affinity: Domains,
    /// Domains holding pods that one of the pod's required anti-affinity terms selects.
    anti_affinity: Domains,
    /// Domains from which an existing pod's required anti-affinity term turns the pod away.
    existing_anti_affinity: Domains,
}

impl<'p> Required<'p> {
    /// Counts what the pods on `nodes` mean for `pod`.
    pub fn count(pod: &'p Pod, nodes: &[NodeState<'_>], namespaces: &'p Namespaces) -> Self {
        let ns = namespace(pod);
        let terms = required_affinity(pod);
        let mut required = Self {
            pod,
            namespaces,
            affinity: Domains::default(),
            anti_affinity: Domains::default(),
            existing_anti_affinity: Domains::default(),
        };
        for node in nodes {
            for existing in relevant(pod, node) {
                let existing_ns = namespace(existing);
                for t in required_anti_affinity(existing) {
                    if term_selects(t, existing_ns, pod, namespaces) {
                        required
                            .existing_anti_affinity
                            .add_at(&t.topology_key, node.labels, 1);
                    }
                }
                if !terms.is_empty()
                    && terms
                        .iter()
                        .all(|t| term_selects(t, ns, existing, namespaces))
                {
                    for t in terms {
                        required.affinity.add_at(&t.topology_key, node.labels, 1);
                    }
                }
                for t in required_anti_affinity(pod) {
                    if term_selects(t, ns, existing, namespaces) {
                        required
                            .anti_affinity
                            .add_at(&t.topology_key, node.labels, 1);
                    }
                }
            }
        }
        required
    }

    /// Why the pod may not go to a node with `labels`, if it may not.
    pub fn filter(&self, labels: &Labels) -> Option<&'static str> {
        let terms = required_affinity(self.pod);
        let mut pods_exist = true;
        for t in terms {
            let Some(value) = labels.get(&t.topology_key) else {
                return Some(AFFINITY); // every topology key must be on the node
            };
            if self.affinity.get(&t.topology_key, value) <= 0 {
                pods_exist = false;
            }
        }
        // The first pod of a group with affinity to itself may go anywhere, or it would wait forever.
        let first_of_its_group = self.affinity.is_empty()
            && terms
                .iter()
                .all(|t| term_selects(t, namespace(self.pod), self.pod, self.namespaces));
        if !pods_exist && !first_of_its_group {
            return Some(AFFINITY);
        }
        let anti = required_anti_affinity(self.pod).iter().any(|t| {
            labels
                .get(&t.topology_key)
                .is_some_and(|v| self.anti_affinity.get(&t.topology_key, v) > 0)
        });
        if anti {
            return Some(ANTI_AFFINITY);
        }
        if labels
            .iter()
            .any(|(k, v)| self.existing_anti_affinity.get(k, v) > 0)
        {
            return Some(EXISTING_ANTI_AFFINITY);
        }
        None
    }
}

/// The preferred-affinity score of each node in `feasible` (indices into `nodes`), normalized to 0..=100 between
/// the lowest and the highest: the pod's preferred terms (anti-affinity counting negative) over the pods already in
/// each domain, plus existing pods' terms that select the pod.
pub fn scores(
    pod: &Pod,
    nodes: &[NodeState<'_>],
    feasible: &[usize],
    namespaces: &Namespaces,
) -> Vec<i64> {
    let ns = namespace(pod);
    let mut domains = Domains::default();
    for node in nodes {
        for existing in relevant(pod, node) {
            let existing_ns = namespace(existing);
            let mut add = |key: &str, weight: i64| domains.add_at(key, node.labels, weight);
            for w in preferred_affinity(pod) {
                if term_selects(&w.pod_affinity_term, ns, existing, namespaces) {
                    add(&w.pod_affinity_term.topology_key, i64::from(w.weight));
                }
            }
            for w in preferred_anti_affinity(pod) {
                if term_selects(&w.pod_affinity_term, ns, existing, namespaces) {
                    add(&w.pod_affinity_term.topology_key, -i64::from(w.weight));
                }
            }
            for t in required_affinity(existing) {
                if term_selects(t, existing_ns, pod, namespaces) {
                    add(&t.topology_key, HARD_POD_AFFINITY_WEIGHT);
                }
            }
            for w in preferred_affinity(existing) {
                if term_selects(&w.pod_affinity_term, existing_ns, pod, namespaces) {
                    add(&w.pod_affinity_term.topology_key, i64::from(w.weight));
                }
            }
            for w in preferred_anti_affinity(existing) {
                if term_selects(&w.pod_affinity_term, existing_ns, pod, namespaces) {
                    add(&w.pod_affinity_term.topology_key, -i64::from(w.weight));
                }
            }
        }
    }
    let raw: Vec<i64> = feasible
        .iter()
        .map(|&i| nodes[i].labels.iter().map(|(k, v)| domains.get(k, v)).sum())
        .collect();
    let (min, max) = (
        raw.iter().copied().min().unwrap_or(0),
        raw.iter().copied().max().unwrap_or(0),
    );
    raw.iter()
        .map(|&s| {
            if max > min {
                (100.0 * (s - min) as f64 / (max - min) as f64) as i64
            } else {
                0
            }
        })
        .collect()
}
