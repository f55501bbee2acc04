//! Decides where pending pods go. Pure: `(pending pods, nodes, pods already bound, now) -> placements`.
//!
//! A node is eligible for a pod when it is schedulable, its Ready condition is True with a fresh heartbeat, its
//! labels match the pod's `nodeSelector`, and it has room for the pod's CPU and memory requests and one more pod
//! (against `status.allocatable`, minus the requests of pods already on it, including those placed earlier in the
//! same round). Among eligible nodes the least allocated wins (Kubernetes' `LeastAllocated` score, with its
//! defaults of 100m CPU / 200Mi memory for containers that request nothing, so that such pods spread too); ties go
//! to the first node by name. A pod with no eligible node gets Kubernetes' explanation, e.g.
//! `0/3 nodes are available: 1 Insufficient cpu, 2 node(s) were not ready.`

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Container, Node, Pod};
use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::quantity::Quantity;

use crate::informer::ObjectKey;

/// What the scheduler tells its core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// Pods naming another `schedulerName` are left alone.
    pub scheduler_name: String,
    /// A node whose last heartbeat is at least this old is not ready.
    pub heartbeat_timeout: Duration,
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

const NOT_READY: &str = "node(s) were not ready";
const UNSCHEDULABLE: &str = "node(s) were unschedulable";
const SELECTOR: &str = "node(s) didn't match Pod's node affinity/selector";
const INSUFFICIENT_CPU: &str = "Insufficient cpu";
const INSUFFICIENT_MEMORY: &str = "Insufficient memory";
const TOO_MANY_PODS: &str = "Too many pods";

/// Kubernetes' defaults for scoring a container that requests nothing (not for fitting).
const DEFAULT_CPU_MILLI: i128 = 100;
const DEFAULT_MEMORY_MILLI: i128 = 200 * 1024 * 1024 * 1000;

/// CPU (millicores), memory (milli-bytes) and a pod count.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Amounts {
    cpu: i128,
    memory: i128,
    pods: i128,
}

impl std::ops::AddAssign for Amounts {
    fn add_assign(&mut self, o: Self) {
        self.cpu += o.cpu;
        self.memory += o.memory;
        self.pods += o.pods;
    }
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

fn quantity(
    map: Option<&BTreeMap<String, k8s_openapi::apimachinery::pkg::api::resource::Quantity>>,
    key: &str,
) -> Option<i128> {
    map?.get(key)
        .and_then(|q| Quantity::parse(&q.0).ok())
        .map(|q| q.milli().max(0))
}

/// What a container requests (a limit stands for a missing request, as Kubernetes defaults it), and the same
/// with the scoring defaults for what it leaves unset.
fn container_requests(c: &Container) -> (Amounts, Amounts) {
    let res = c.resources.as_ref();
    let get = |key| {
        quantity(res.and_then(|r| r.requests.as_ref()), key)
            .or_else(|| quantity(res.and_then(|r| r.limits.as_ref()), key))
    };
    let (cpu, memory) = (get("cpu"), get("memory"));
    (
        Amounts {
            cpu: cpu.unwrap_or(0),
            memory: memory.unwrap_or(0),
            pods: 0,
        },
        Amounts {
            cpu: cpu.unwrap_or(DEFAULT_CPU_MILLI),
            memory: memory.unwrap_or(DEFAULT_MEMORY_MILLI),
            pods: 0,
        },
    )
}

/// A pod's requests (for fitting) and non-zero requests (for scoring): the sum over its containers, or the largest
/// init container if that is more, plus one pod.
fn pod_requests(pod: &Pod) -> (Amounts, Amounts) {
    let mut sum = (Amounts::default(), Amounts::default());
    let mut init_max = (Amounts::default(), Amounts::default());
    if let Some(spec) = &pod.spec {
        for c in &spec.containers {
            let (r, n) = container_requests(c);
            sum.0 += r;
            sum.1 += n;
        }
        for c in spec.init_containers.iter().flatten() {
            let (r, n) = container_requests(c);
            init_max.0.cpu = init_max.0.cpu.max(r.cpu);
            init_max.0.memory = init_max.0.memory.max(r.memory);
            init_max.1.cpu = init_max.1.cpu.max(n.cpu);
            init_max.1.memory = init_max.1.memory.max(n.memory);
        }
    }
    let max = |a: Amounts, b: Amounts| Amounts {
        cpu: a.cpu.max(b.cpu),
        memory: a.memory.max(b.memory),
        pods: 1,
    };
    (max(sum.0, init_max.0), max(sum.1, init_max.1))
}

struct Candidate<'a> {
    node: &'a Node,
    name: &'a str,
    allocatable: Amounts,
    used: Amounts,
    used_for_score: Amounts,
    /// Why no pod can go there, whatever it requests.
    unusable: Option<&'static str>,
}

/// Why a node takes no pods at all at `now`, if it does not.
fn node_unusable(node: &Node, now: DateTime<Utc>, timeout: Duration) -> Option<&'static str> {
    if node.spec.as_ref().and_then(|s| s.unschedulable) == Some(true) {
        return Some(UNSCHEDULABLE);
    }
    let ready = node
        .status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .and_then(|cs| cs.iter().find(|c| c.type_ == "Ready"));
    let Some(ready) = ready.filter(|c| c.status == "True") else {
        return Some(NOT_READY);
    };
    let fresh = ready.last_heartbeat_time.as_ref().is_some_and(|hb| {
        let age = now.signed_duration_since(hb.0);
        age.to_std().map_or(true, |age| age < timeout) // a heartbeat from the future (clock skew) counts as fresh
    });
    if !fresh {
        return Some(NOT_READY);
    }
    None
}

fn allocatable(node: &Node) -> Amounts {
    let status = node.status.as_ref();
    let get = |key| {
        quantity(status.and_then(|s| s.allocatable.as_ref()), key)
            .or_else(|| quantity(status.and_then(|s| s.capacity.as_ref()), key))
            .unwrap_or(0)
    };
    Amounts {
        cpu: get("cpu"),
        memory: get("memory"),
        pods: get("pods") / 1000,
    }
}

fn selector_matches(pod: &Pod, node: &Node) -> bool {
    let Some(selector) = pod.spec.as_ref().and_then(|s| s.node_selector.as_ref()) else {
        return true;
    };
    let labels = node.metadata.labels.as_ref();
    selector
        .iter()
        .all(|(k, v)| labels.and_then(|l| l.get(k)) == Some(v))
}

/// The reasons `pod` (requesting `req`) does not fit `c`; empty when it fits.
fn misfits(c: &Candidate<'_>, pod: &Pod, req: Amounts) -> Vec<&'static str> {
    if let Some(why) = c.unusable {
        return vec![why];
    }
    if !selector_matches(pod, c.node) {
        return vec![SELECTOR];
    }
    let mut why = Vec::new();
    if c.used.pods + 1 > c.allocatable.pods {
        why.push(TOO_MANY_PODS);
    }
    if req.cpu > 0 && c.used.cpu + req.cpu > c.allocatable.cpu {
        why.push(INSUFFICIENT_CPU);
    }
    if req.memory > 0 && c.used.memory + req.memory > c.allocatable.memory {
        why.push(INSUFFICIENT_MEMORY);
    }
    why
}

/// Kubernetes' LeastAllocated score (0..=100) of `c` once it also holds `req`.
fn score(c: &Candidate<'_>, req: Amounts) -> i128 {
    let part = |capacity: i128, requested: i128| {
        if capacity <= 0 || requested > capacity {
            0
        } else {
            (capacity - requested) * 100 / capacity
        }
    };
    let cpu = part(c.allocatable.cpu, c.used_for_score.cpu + req.cpu);
    let memory = part(c.allocatable.memory, c.used_for_score.memory + req.memory);
    (cpu + memory) / 2
}

/// Kubernetes' explanation of why no node fits.
fn explain(total: usize, reasons: &BTreeMap<&'static str, usize>) -> String {
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
/// (finished ones are ignored). Placements made earlier in the round count against the nodes for later pods.
pub fn schedule(
    pending: &[&Pod],
    nodes: &[&Node],
    bound: &[&Pod],
    now: DateTime<Utc>,
    policy: &Policy,
) -> Vec<Placement> {
    let mut candidates: Vec<Candidate<'_>> = nodes
        .iter()
        .filter_map(|n| {
            Some(Candidate {
                node: n,
                name: n.metadata.name.as_deref().filter(|s| !s.is_empty())?,
                allocatable: allocatable(n),
                used: Amounts::default(),
                used_for_score: Amounts::default(),
                unusable: node_unusable(n, now, policy.heartbeat_timeout),
            })
        })
        .collect();
    candidates.sort_by(|a, b| a.name.cmp(b.name));
    let index: BTreeMap<&str, usize> = candidates
        .iter()
        .enumerate()
        .map(|(i, c)| (c.name, i))
        .collect();
    for pod in bound {
        let Some(&i) = occupied_node(pod).and_then(|n| index.get(n)) else {
            continue;
        };
        let (req, for_score) = pod_requests(pod);
        candidates[i].used += req;
        candidates[i].used_for_score += for_score;
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

    let mut placements = Vec::with_capacity(order.len());
    for pod in order {
        let key = ObjectKey::of(&pod.metadata);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let (req, for_score) = pod_requests(pod);
        let mut best: Option<(usize, i128)> = None;
        let mut reasons: BTreeMap<&'static str, usize> = BTreeMap::new();
        for (i, c) in candidates.iter().enumerate() {
            let why = misfits(c, pod, req);
            if why.is_empty() {
                let s = score(c, for_score);
                if best.is_none_or(|(_, b)| s > b) {
                    best = Some((i, s));
                }
            } else {
                for w in why {
                    *reasons.entry(w).or_default() += 1;
                }
            }
        }
        match best {
            Some((i, _)) => {
                let chosen = &mut candidates[i];
                chosen.used += req;
                chosen.used_for_score += for_score;
                placements.push(Placement::Bind {
                    pod: key,
                    uid,
                    node: chosen.name.to_string(),
                });
            }
            None => placements.push(Placement::Unschedulable {
                pod: key,
                uid,
                message: explain(candidates.len(), &reasons),
            }),
        }
    }
    placements
}

#[cfg(test)]
#[path = "placement_tests.rs"]
mod tests;
