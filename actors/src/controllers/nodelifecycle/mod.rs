//! The node lifecycle controller, as kube-controller-manager's: a node whose agent stops renewing its Lease (and
//! posting its status) for the grace period gets its conditions set to Unknown and the
//! `node.kubernetes.io/unreachable` taints; a node reporting Ready=False gets the `not-ready` ones; both go once the
//! node is healthy again. Pods on a node with a `NoExecute` taint they do not tolerate are deleted at once, those
//! tolerating it for `tolerationSeconds` that long after the taint's `timeAdded` (the taint manager). Their
//! controllers replace them elsewhere: a deleted pod of a node that is gone keeps a deletionTimestamp (its agent is
//! not there to confirm), and the deployment controller does not count such pods.
//!
//! This file is the pure core; [`NodeLifecycleController`] (in `actor`) watches and carries out.
//!
//! Liveness is judged as Kubernetes does: by when *this controller* saw the Lease's `renewTime` or the Ready
//! condition's `lastHeartbeatTime` last change, on its own clock ([`Probe`]), not by comparing those timestamps
//! with its clock, so clock skew between machines does not matter. A controller that starts (or a standby that takes
//! over) therefore gives every node a fresh grace period.

mod actor;
#[cfg(test)]
mod tests;

use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, NodeCondition, Pod, Taint, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::ApiError;
use serde_json::Value;
use tokio::time::Instant;

pub use actor::NodeLifecycleController;

/// The taint of a node whose Ready condition is False.
pub const NOT_READY_TAINT: &str = "node.kubernetes.io/not-ready";
/// The taint of a node whose status is Unknown (its agent stopped reporting).
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
/// The reason of the conditions of a node that stopped reporting.
pub const UNKNOWN_REASON: &str = "NodeStatusUnknown";
/// Their message (kube-controller-manager's words).
pub const UNKNOWN_MESSAGE: &str = "Kubelet stopped posting node status.";
/// The reason of the Ready condition of a node that never reported.
const NEVER_REASON: &str = "NodeStatusNeverUpdated";
const NEVER_MESSAGE: &str = "Kubelet never posted node status.";

/// What the controller last saw of a node's two liveness signals, and when it first saw them so (its own clock).
#[derive(Debug, Clone, PartialEq)]
pub struct Probe {
    heartbeat: Option<DateTime<Utc>>,
    renew: Option<DateTime<Utc>>,
    /// When either signal was last seen to change (or the node first seen).
    pub seen_at: Instant,
}

fn ready_condition(node: &Node) -> Option<&NodeCondition> {
    node.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"))
}

/// The probe after looking at `node` and its `lease` at `now`, given the `previous` one.
pub fn observe(
    previous: Option<&Probe>,
    node: &Node,
    lease: Option<&Lease>,
    now: Instant,
) -> Probe {
    let heartbeat = ready_condition(node).and_then(|c| c.last_heartbeat_time.as_ref().map(|t| t.0));
    let renew = lease
        .and_then(|l| l.spec.as_ref())
        .and_then(|s| s.renew_time.as_ref())
        .map(|t| t.0);
    let seen_at = match previous {
        Some(p) if p.heartbeat == heartbeat && p.renew == renew => p.seen_at,
        _ => now,
    };
    Probe {
        heartbeat,
        renew,
        seen_at,
    }
}

impl Probe {
    /// Whether neither signal changed for `grace` before `now`.
    pub fn is_stale(&self, now: Instant, grace: Duration) -> bool {
        now.saturating_duration_since(self.seen_at) >= grace
    }
}

/// How the controller judges a node.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Health {
    /// Reporting, and Ready.
    Ready,
    /// Reporting Ready=False.
    NotReady,
    /// Not reporting for the grace period, or reporting Ready=Unknown.
    Unknown,
}

/// The health of `node`, `stale` when its signals did not change for the grace period. A node that has not posted a
/// Ready condition yet is given the grace period to do so.
pub fn health(node: &Node, stale: bool) -> Health {
    if stale {
        return Health::Unknown;
    }
    match ready_condition(node).map(|c| c.status.as_str()) {
        Some("True") | None => Health::Ready,
        Some("False") => Health::NotReady,
        Some(_) => Health::Unknown,
    }
}

/// The taints (key, effect) the controller wants on a node of health `health`: both effects, `NoExecute` for the
/// taint manager and `NoSchedule` for the scheduler (kube-controller-manager's TaintNodesByCondition), since pods
/// tolerating the `NoExecute` one for a while (every pod, by default) must still not be scheduled there.
pub fn wanted_taints(health: Health) -> &'static [(&'static str, &'static str)] {
    match health {
        Health::Ready => &[],
        Health::NotReady => &[
            (NOT_READY_TAINT, "NoExecute"),
            (NOT_READY_TAINT, "NoSchedule"),
        ],
        Health::Unknown => &[
            (UNREACHABLE_TAINT, "NoExecute"),
            (UNREACHABLE_TAINT, "NoSchedule"),
        ],
    }
}

fn is_lifecycle_taint(t: &Taint) -> bool {
    (t.key == NOT_READY_TAINT || t.key == UNREACHABLE_TAINT)
        && (t.effect == "NoExecute" || t.effect == "NoSchedule")
}

fn taints(node: &Node) -> &[Taint] {
    node.spec
        .as_ref()
        .and_then(|s| s.taints.as_deref())
        .unwrap_or_default()
}

/// Whether `node`'s lifecycle taints differ from those `health` wants.
pub fn taints_differ(node: &Node, health: Health) -> bool {
    let wanted = wanted_taints(health);
    let present: Vec<(&str, &str)> = taints(node)
        .iter()
        .filter(|t| is_lifecycle_taint(t))
        .map(|t| (t.key.as_str(), t.effect.as_str()))
        .collect();
    present.len() != wanted.len() || wanted.iter().any(|w| !present.contains(w))
}

/// `stored` (the Node) with the lifecycle taints `health` wants, added at `now` (`timeAdded` on the `NoExecute`
/// ones, which the taint manager counts from), and without the others; other taints stay.
pub fn with_taints(stored: Value, health: Health, now: DateTime<Utc>) -> Result<Value, ApiError> {
    let mut node: Node = serde_json::from_value(stored).map_err(ApiError::internal)?;
    let spec = node.spec.get_or_insert_with(Default::default);
    let mut list = spec.taints.take().unwrap_or_default();
    let wanted = wanted_taints(health);
    list.retain(|t| {
        !is_lifecycle_taint(t) || wanted.contains(&(t.key.as_str(), t.effect.as_str()))
    });
    for (key, effect) in wanted {
        if !list.iter().any(|t| t.key == *key && t.effect == *effect) {
            list.push(Taint {
                key: (*key).into(),
                effect: (*effect).into(),
                time_added: (*effect == "NoExecute").then_some(Time(now)),
                value: None,
            });
        }
    }
    spec.taints = (!list.is_empty()).then_some(list);
    serde_json::to_value(&node).map_err(ApiError::internal)
}

/// Whether `node`'s conditions still need to be set to Unknown (some condition is not Unknown, or there is no Ready
/// condition).
pub fn needs_unknown(node: &Node) -> bool {
    let conditions = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_deref())
        .unwrap_or_default();
    ready_condition(node).is_none() || conditions.iter().any(|c| c.status != "Unknown")
}

/// `stored` (the Node) with every condition Unknown since `now` (reason `NodeStatusUnknown`, "Kubelet stopped
/// posting node status."), each keeping its `lastHeartbeatTime`; a Ready condition is added if there is none.
/// For the status part.
pub fn mark_unknown(stored: Value, now: DateTime<Utc>) -> Result<Value, ApiError> {
    let mut node: Node = serde_json::from_value(stored).map_err(ApiError::internal)?;
    let status = node.status.get_or_insert_with(Default::default);
    let conditions = status.conditions.get_or_insert_with(Vec::new);
    for c in conditions.iter_mut().filter(|c| c.status != "Unknown") {
        c.status = "Unknown".into();
        c.reason = Some(UNKNOWN_REASON.into());
        c.message = Some(UNKNOWN_MESSAGE.into());
        c.last_transition_time = Some(Time(now));
    }
    if !conditions.iter().any(|c| c.type_ == "Ready") {
        conditions.push(NodeCondition {
            type_: "Ready".into(),
            status: "Unknown".into(),
            reason: Some(NEVER_REASON.into()),
            message: Some(NEVER_MESSAGE.into()),
            last_heartbeat_time: None,
            last_transition_time: Some(Time(now)),
        });
    }
    serde_json::to_value(&node).map_err(ApiError::internal)
}

/// The Event to record when a node's health changes from what its taints say (`NodeNotReady` when it loses its
/// health, `NodeReady` when it regains it), with kube-controller-manager's message.
pub fn transition_event(node: &Node, health: Health) -> Option<(&'static str, String)> {
    let name = node.metadata.name.as_deref().unwrap_or_default();
    let tainted = taints(node).iter().any(is_lifecycle_taint);
    match (tainted, health) {
        (false, Health::NotReady | Health::Unknown) => Some((
            "NodeNotReady",
            format!("Node {name} status is now: NodeNotReady"),
        )),
        (true, Health::Ready) => {
            Some(("NodeReady", format!("Node {name} status is now: NodeReady")))
        }
        _ => None,
    }
}

/// When a pod on a node with `NoExecute` taints is to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    /// It tolerates every such taint for good (or there is none).
    Keep,
    /// Now: it does not tolerate one, or its toleration ran out.
    Now,
    /// At this time, when its shortest toleration runs out.
    At(DateTime<Utc>),
}

/// Whether toleration `t` tolerates `taint` (Kubernetes' `ToleratesTaint`; the scheduler has its own copy).
fn tolerates(t: &Toleration, taint: &Taint) -> bool {
    let effect = t.effect.as_deref().unwrap_or_default();
    let key = t.key.as_deref().unwrap_or_default();
    if !effect.is_empty() && effect != taint.effect {
        return false;
    }
    if !key.is_empty() && key != taint.key {
        return false;
    }
    match t.operator.as_deref().unwrap_or("Equal") {
        "Exists" => true,
        "Equal" => {
            t.value.as_deref().unwrap_or_default() == taint.value.as_deref().unwrap_or_default()
        }
        _ => false,
    }
}

/// When `pod` is to be evicted at `now` from a node with `taints`, as kube-controller-manager's taint manager
/// decides: only `NoExecute` taints count; one no toleration tolerates means now; otherwise the first toleration
/// tolerating each taint allows `tolerationSeconds` (none: for good; negative: none) from the taint's `timeAdded`,
/// or from `added(taint)` for a taint without one (when this controller first saw it), and the earliest end wins.
pub fn eviction(
    pod: &Pod,
    taints: &[Taint],
    now: DateTime<Utc>,
    added: impl Fn(&Taint) -> DateTime<Utc>,
) -> Eviction {
    let tolerations = pod
        .spec
        .as_ref()
        .and_then(|s| s.tolerations.as_deref())
        .unwrap_or_default();
    let mut earliest: Option<DateTime<Utc>> = None;
    for taint in taints.iter().filter(|t| t.effect == "NoExecute") {
        let Some(toleration) = tolerations.iter().find(|t| tolerates(t, taint)) else {
            return Eviction::Now;
        };
        let Some(seconds) = toleration.toleration_seconds else {
            continue;
        };
        let since = taint
            .time_added
            .as_ref()
            .map_or_else(|| added(taint), |t| t.0);
        let end = since + k8s_openapi::chrono::Duration::seconds(seconds.max(0));
        earliest = Some(earliest.map_or(end, |e| e.min(end)));
    }
    match earliest {
        None => Eviction::Keep,
        Some(end) if end <= now => Eviction::Now,
        Some(end) => Eviction::At(end),
    }
}

/// Whether `pod` is one the taint manager looks at on its node: bound and not being deleted already.
pub fn evictable(pod: &Pod) -> bool {
    pod.metadata.deletion_timestamp.is_none()
        && pod
            .spec
            .as_ref()
            .and_then(|s| s.node_name.as_deref())
            .is_some_and(|n| !n.is_empty())
}
