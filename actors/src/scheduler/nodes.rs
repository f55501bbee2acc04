//! What a node itself says about a pod: cordons (`NodeUnschedulable`), taints against the pod's tolerations
//! (`TaintToleration`), readiness, and its labels against the pod's `nodeSelector` and node affinity
//! (`NodeAffinity`), as filters and as scores.
//!
//! Readiness works as in Kubernetes, where the node lifecycle controller taints a node whose Ready condition is
//! False with `node.kubernetes.io/not-ready:NoSchedule`, and one whose Ready is Unknown (its heartbeats stopped)
//! with `node.kubernetes.io/unreachable:NoSchedule`: Navarch has no such controller, so the scheduler reads these
//! taints off the Ready condition itself. Pods that tolerate them (as DaemonSet pods do) still go there.

use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod, Taint, Toleration};
use k8s_openapi::chrono::{DateTime, Utc};

use super::selectors::{node_labels, term_matches, Labels};

pub const UNSCHEDULABLE: &str = "node(s) were unschedulable";
pub const SELECTOR: &str = "node(s) didn't match Pod's node affinity/selector";

/// The taint the node controller puts on cordoned nodes; a pod tolerating it may go to a cordoned node.
const UNSCHEDULABLE_TAINT: &str = "node.kubernetes.io/unschedulable";
const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";

/// The taint the node lifecycle controller would put on a node that is not ready at `now`: `not-ready` when its
/// Ready condition is False, `unreachable` when it is Unknown, missing, or its heartbeat is `timeout` old.
pub fn readiness_taint(node: &Node, now: DateTime<Utc>, timeout: Duration) -> Option<Taint> {
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    let fresh = ready
        .and_then(|c| c.last_heartbeat_time.as_ref())
        .is_some_and(|hb| {
            let age = now.signed_duration_since(hb.0);
            age.to_std().map_or(true, |age| age < timeout) // a heartbeat from the future (clock skew) is fresh
        });
    let key = match ready.map(|c| c.status.as_str()) {
        Some("True") if fresh => return None,
        Some("False") if fresh => NOT_READY_TAINT,
        _ => UNREACHABLE_TAINT,
    };
    let declared = node.spec.as_ref().and_then(|s| s.taints.as_deref());
    if declared
        .unwrap_or_default()
        .iter()
        .any(|t| t.key == key && t.effect == "NoSchedule")
    {
        return None; // already there
    }
    Some(Taint {
        key: key.into(),
        effect: "NoSchedule".into(),
        ..Default::default()
    })
}

fn tolerations(pod: &Pod) -> &[Toleration] {
    pod.spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default()
}

/// Whether `t` tolerates `taint`: same effect (or none given), same key (or none given, with `Exists`), and the
/// same value with `Equal` (the default operator) or any value with `Exists`.
fn tolerates(t: &Toleration, key: &str, value: &str, effect: &str) -> bool {
    let t_effect = t.effect.as_deref().unwrap_or_default();
    let t_key = t.key.as_deref().unwrap_or_default();
    if !t_effect.is_empty() && t_effect != effect {
        return false;
    }
    if !t_key.is_empty() && t_key != key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" => t.value.as_deref().unwrap_or_default() == value,
        _ => false,
    }
}

fn tolerated(pod: &Pod, taint: &Taint) -> bool {
    let value = taint.value.as_deref().unwrap_or_default();
    tolerations(pod)
        .iter()
        .any(|t| tolerates(t, &taint.key, value, &taint.effect))
}

/// Whether a cordoned node turns `pod` away (a pod tolerating the unschedulable taint is let through).
pub fn cordoned_against(node: &Node, pod: &Pod) -> bool {
    node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true)
        && !tolerations(pod)
            .iter()
            .any(|t| tolerates(t, UNSCHEDULABLE_TAINT, "", "NoSchedule"))
}

/// Kubernetes' reason for the first `NoSchedule` or `NoExecute` taint of `node` (then `implied`, the readiness
/// taint) that `pod` does not tolerate.
pub fn untolerated_taint(node: &Node, implied: Option<&Taint>, pod: &Pod) -> Option<String> {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref());
    let taint = taints
        .unwrap_or_default()
        .iter()
        .chain(implied)
        .filter(|t| matches!(t.effect.as_str(), "NoSchedule" | "NoExecute"))
        .find(|t| !tolerated(pod, t))?;
    Some(format!(
        "node(s) had untolerated taint {{{}: {}}}",
        taint.key,
        taint.value.as_deref().unwrap_or_default()
    ))
}

/// How many `PreferNoSchedule` taints of `node` the pod does not tolerate (fewer is better).
pub fn intolerable_preferences(node: &Node, pod: &Pod) -> i64 {
    let taints = node.spec.as_ref().and_then(|s| s.taints.as_deref());
    let count = taints
        .unwrap_or_default()
        .iter()
        .filter(|t| t.effect == "PreferNoSchedule" && !tolerated(pod, t))
        .count();
    i64::try_from(count).unwrap_or(i64::MAX)
}

/// Whether a node named `name` with `labels` satisfies the pod's `nodeSelector` and its required node affinity
/// (terms ORed; a pod without either goes anywhere).
pub fn required_affinity_matches(pod: &Pod, name: &str, labels: &Labels) -> bool {
    let Some(spec) = &pod.spec else { return true };
    let selector = spec
        .node_selector
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let required = spec
        .affinity
        .as_ref()
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.required_during_scheduling_ignored_during_execution
                .as_ref()
        });
    selector
        && required.is_none_or(|r| {
            r.node_selector_terms
                .iter()
                .any(|t| term_matches(t, name, labels))
        })
}

/// Whether `node` satisfies the pod's `nodeSelector` and required node affinity.
pub fn node_matches(pod: &Pod, node: &Node) -> bool {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    required_affinity_matches(pod, name, node_labels(node))
}

/// The sum of the weights of the pod's preferred node affinity terms that the node matches.
pub fn preferred_affinity(pod: &Pod, name: &str, labels: &Labels) -> i64 {
    let preferred = pod
        .spec
        .as_ref()
        .and_then(|s| s.affinity.as_ref())
        .and_then(|a| a.node_affinity.as_ref())
        .and_then(|n| {
            n.preferred_during_scheduling_ignored_during_execution
                .as_deref()
        });
    preferred
        .unwrap_or_default()
        .iter()
        .filter(|p| p.weight != 0 && term_matches(&p.preference, name, labels))
        .map(|p| i64::from(p.weight))
        .sum()
}
