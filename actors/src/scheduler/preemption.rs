//! Preemption (kube-scheduler's `DefaultPreemption`): when no node fits a pod, look for a node where deleting pods
//! of lower priority would make it fit, deleting as few and as unimportant ones as possible. Without such a node,
//! kube-scheduler's explanation of why preemption would not help, which it appends to the filters' message.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::chrono::{DateTime, Utc};

use super::placement::{explain, refusals_on, NodeState};
use super::selectors::Namespaces;
use super::{affinity, nodes, spread};

const NO_VICTIMS: &str = "No preemption victims found for incoming pod";
const NOT_HELPFUL: &str = "Preemption is not helpful for scheduling";

/// What preemption decides for a pod no node fits.
#[derive(Debug, PartialEq)]
pub enum Preemption<'a> {
    /// Delete `victims` (most important first) from the node at `node` (an index into the nodes); the pod is
    /// nominated to it and scheduled once they are gone.
    Evict { node: usize, victims: Vec<&'a Pod> },
    /// Nothing to do: why, as kube-scheduler words it after `preemption: `.
    NotHelpful(String),
}

/// A pod's priority (`spec.priority`, 0 if unset).
pub fn priority(pod: &Pod) -> i32 {
    pod.spec.as_ref().and_then(|s| s.priority).unwrap_or(0)
}

fn start_time(pod: &Pod) -> Option<DateTime<Utc>> {
    pod.status.as_ref()?.start_time.as_ref().map(|t| t.0)
}

/// Whether a node refused with `reasons` only for reasons removing pods could change (kube-scheduler's
/// `Unschedulable`, as opposed to `UnschedulableAndUnresolvable`: cordons, taints, node affinity, required pod
/// affinity, a missing topology label).
fn resolvable(reasons: &[String]) -> bool {
    !reasons.iter().any(|r| {
        r == nodes::UNSCHEDULABLE
            || r == nodes::SELECTOR
            || r == affinity::AFFINITY
            || r == spread::SPREAD_LABEL
            || r.starts_with("node(s) had untolerated taint")
    })
}

/// The node `state` holding only `pods`.
fn holding<'a>(state: &NodeState<'a>, pods: &[&'a Pod]) -> NodeState<'a> {
    let mut rebuilt = state.emptied();
    for p in pods {
        rebuilt.hold(p);
    }
    rebuilt
}

/// The victims on the node at `i` for `pod`, or why there are none: remove every pod of lower priority; if the
/// pod then fits, put back as many as it still fits with, the most important first (higher priority, then
/// earlier start).
fn victims_on<'a>(
    pod: &Pod,
    states: &[NodeState<'a>],
    i: usize,
    namespaces: &Namespaces,
) -> Result<Vec<&'a Pod>, Vec<String>> {
    let own = priority(pod);
    let (mut lower, kept): (Vec<&'a Pod>, Vec<&'a Pod>) =
        states[i].pods.iter().partition(|p| priority(p) < own);
    if lower.is_empty() {
        return Err(vec![NO_VICTIMS.into()]);
    }
    let mut trial: Vec<NodeState<'a>> = states.to_vec();
    trial[i] = holding(&states[i], &kept);
    let refused = refusals_on(pod, &trial, i, namespaces);
    if !refused.is_empty() {
        return Err(refused);
    }
    lower.sort_by(|a, b| {
        priority(b)
            .cmp(&priority(a))
            .then_with(|| start_time(a).cmp(&start_time(b)))
    });
    let mut staying = kept;
    let mut victims = Vec::new();
    for p in lower {
        staying.push(p);
        trial[i] = holding(&states[i], &staying);
        if !refusals_on(pod, &trial, i, namespaces).is_empty() {
            staying.pop();
            trial[i] = holding(&states[i], &staying);
            victims.push(p);
        }
    }
    Ok(victims)
}

/// How kube-scheduler ranks candidate nodes (lower is better): the highest victim priority, the sum of victim
/// priorities, the number of victims, then the latest start among the most important victims.
fn rank(victims: &[&Pod]) -> (i32, i64, usize, std::cmp::Reverse<Option<DateTime<Utc>>>) {
    let highest = victims.first().map_or(i32::MIN, |p| priority(p));
    let sum = victims
        .iter()
        .map(|p| i64::from(priority(p)) + i64::from(i32::MAX) + 1)
        .sum();
    let earliest = victims
        .iter()
        .filter(|p| priority(p) == highest)
        .map(|p| start_time(p).unwrap_or(DateTime::<Utc>::MAX_UTC))
        .min();
    (highest, sum, victims.len(), std::cmp::Reverse(earliest))
}

/// Preemption for `pod`, which every node refused (`refused[i]` says why node `i` did).
pub fn preempt<'a>(
    pod: &Pod,
    states: &[NodeState<'a>],
    refused: &[Vec<String>],
    namespaces: &Namespaces,
) -> Preemption<'a> {
    let spec = pod.spec.as_ref();
    if spec.and_then(|s| s.preemption_policy.as_deref()) == Some("Never") {
        return Preemption::NotHelpful("not eligible due to preemptionPolicy=Never.".into());
    }
    let nominated = pod
        .status
        .as_ref()
        .and_then(|s| s.nominated_node_name.as_deref());
    if let Some(i) = nominated.and_then(|n| states.iter().position(|s| s.name == n)) {
        let terminating = states[i]
            .pods
            .iter()
            .any(|p| p.metadata.deletion_timestamp.is_some() && priority(p) < priority(pod));
        if resolvable(&refused[i]) && terminating {
            return Preemption::NotHelpful(
                "not eligible due to a terminating pod on the nominated node.".into(),
            );
        }
    }
    let mut reasons: BTreeMap<String, usize> = BTreeMap::new();
    let mut best: Option<(usize, Vec<&'a Pod>)> = None;
    for (i, why) in refused.iter().enumerate() {
        if !resolvable(why) {
            *reasons.entry(NOT_HELPFUL.into()).or_default() += 1;
            continue;
        }
        match victims_on(pod, states, i, namespaces) {
            Ok(victims) if !victims.is_empty() => {
                if best.as_ref().is_none_or(|(_, b)| rank(&victims) < rank(b)) {
                    best = Some((i, victims));
                }
            }
            Ok(_) => *reasons.entry(NO_VICTIMS.into()).or_default() += 1,
            Err(why) => {
                for w in why {
                    *reasons.entry(w).or_default() += 1;
                }
            }
        }
    }
    match best {
        Some((node, victims)) => Preemption::Evict { node, victims },
        None => Preemption::NotHelpful(explain(states.len(), &reasons)),
    }
}
