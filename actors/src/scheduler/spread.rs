//! Pod topology spread (kube-scheduler's `PodTopologySpread`): `DoNotSchedule` constraints as a filter (a node is
//! refused when placing the pod there would make its domain exceed the least populated domain by more than
//! `maxSkew`), `ScheduleAnyway` constraints as a score (fewer matching pods in the node's domains is better). A pod
//! with no constraints that a controller owns is spread by Kubernetes' default constraints: across nodes (maxSkew
//! 3) and zones (maxSkew 5), counting the pods of the same controller. Pods are counted on the nodes each
//! constraint's `nodeAffinityPolicy` (default Honor: nodes the pod's node affinity allows) and `nodeTaintsPolicy`
//! (default Ignore; Honor: nodes whose taints the pod tolerates) include; `matchLabelKeys` narrow the selector to
//! pods sharing the pod's values for those labels.

use k8s_openapi::api::core::v1::{Pod, TopologySpreadConstraint};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::nodes::{node_matches, untolerated_taint};
use super::placement::NodeState;
use super::selectors::{namespace, pod_labels, selects, Domains, Labels};

pub const SPREAD: &str = "node(s) didn't match pod topology spread constraints";
pub const SPREAD_LABEL: &str =
    "node(s) didn't match pod topology spread constraints (missing required label)";

const HOSTNAME: &str = "kubernetes.io/hostname";
const ZONE: &str = "topology.kubernetes.io/zone";

/// Which pods a constraint counts (besides being in the pod's namespace and not being deleted).
enum Counted {
    /// Those its label selector matches; none without one.
    Labels(Option<LabelSelector>),
    /// Those of the controller with this uid (the default constraints). Kubernetes derives a label selector from
    /// the owning ReplicaSet or StatefulSet; the controller's uid picks the same pods without reading the owner.
    Owner(String),
}

struct Constraint {
    key: String,
    max_skew: i64,
    min_domains: i64,
    counted: Counted,
    /// Count only on nodes the pod's node affinity and nodeSelector allow (`nodeAffinityPolicy: Honor`).
    honor_affinity: bool,
    /// Count only on nodes whose NoSchedule and NoExecute taints the pod tolerates (`nodeTaintsPolicy: Honor`).
    honor_taints: bool,
}

impl Constraint {
    /// `c` as declared by `pod` (whose labels fill in `matchLabelKeys`).
    fn of(c: &TopologySpreadConstraint, pod: &Pod) -> Self {
        let labels = pod_labels(pod);
        let selector = c.label_selector.clone().map(|mut s| {
            let narrowed = c.match_label_keys.iter().flatten().filter_map(|key| {
                Some(LabelSelectorRequirement {
                    key: key.clone(),
                    operator: "In".into(),
                    values: Some(vec![labels.get(key)?.clone()]),
                })
            });
            s.match_expressions
                .get_or_insert_with(Vec::new)
                .extend(narrowed);
            s
        });
        Self {
            key: c.topology_key.clone(),
            max_skew: i64::from(c.max_skew),
            min_domains: i64::from(c.min_domains.unwrap_or(1)),
            counted: Counted::Labels(selector),
            honor_affinity: c.node_affinity_policy.as_deref() != Some("Ignore"),
            honor_taints: c.node_taints_policy.as_deref() == Some("Honor"),
        }
    }

    /// Whether pods on `node` count for `pod` under this constraint's node inclusion policies.
    fn includes(&self, pod: &Pod, node: &NodeState<'_>) -> bool {
        (!self.honor_affinity || node_matches(pod, node.node))
            && (!self.honor_taints
                || untolerated_taint(node.node, node.readiness.as_ref(), pod).is_none())
    }

    fn selects(&self, pod: &Pod) -> bool {
        match &self.counted {
            Counted::Labels(s) => s.as_ref().is_some_and(|s| selects(s, pod_labels(pod))),
            Counted::Owner(uid) => controller_uid(pod) == Some(uid.as_str()),
        }
    }

    /// The pods on `node` this constraint counts for a pod in namespace `ns`.
    fn count_on(&self, ns: &str, node: &NodeState<'_>) -> i64 {
        let n = node
            .pods
            .iter()
            .filter(|p| {
                namespace(p) == ns && p.metadata.deletion_timestamp.is_none() && self.selects(p)
            })
            .count();
        i64::try_from(n).unwrap_or(i64::MAX)
    }
}

fn controller_uid(pod: &Pod) -> Option<&str> {
    pod.metadata
        .owner_references
        .iter()
        .flatten()
        .find(|o| o.controller == Some(true))
        .map(|o| o.uid.as_str())
}

fn declared(pod: &Pod) -> &[TopologySpreadConstraint] {
    pod.spec
        .as_ref()
        .and_then(|s| s.topology_spread_constraints.as_deref())
        .unwrap_or_default()
}

fn has_keys(constraints: &[Constraint], labels: &Labels) -> bool {
    constraints.iter().all(|c| labels.contains_key(&c.key))
}

/// The `DoNotSchedule` constraints of one pod with the cluster counted, once per pod.
pub struct Hard<'p> {
    pod: &'p Pod,
    constraints: Vec<Constraint>,
    /// Per constraint, matching pods per domain, over the nodes the pod may go to by node affinity and that
    /// have every constraint's key (each such domain is present, if with 0).
    domains: Vec<Domains>,
    /// Per constraint, the count of the least populated domain.
    min: Vec<i64>,
}

impl<'p> Hard<'p> {
    /// Counts the pods on `nodes` for `pod`'s constraints.
    pub fn count(pod: &'p Pod, nodes: &[NodeState<'_>]) -> Self {
        let constraints: Vec<Constraint> = declared(pod)
            .iter()
            .filter(|c| c.when_unsatisfiable == "DoNotSchedule")
            .map(|c| Constraint::of(c, pod))
            .collect();
        let ns = namespace(pod);
        let mut domains = vec![Domains::default(); constraints.len()];
        for node in nodes {
            if constraints.is_empty() || !has_keys(&constraints, node.labels) {
                continue;
            }
            for (c, d) in constraints.iter().zip(&mut domains) {
                if c.includes(pod, node) {
                    d.add_at(&c.key, node.labels, c.count_on(ns, node));
                }
            }
        }
        let min = constraints
            .iter()
            .zip(&domains)
            .map(|(c, d)| {
                let counts: Vec<i64> = d.values(&c.key).map(|(_, n)| *n).collect();
                if i64::try_from(counts.len()).unwrap_or(i64::MAX) < c.min_domains {
                    0
                } else {
                    counts.into_iter().min().unwrap_or(i64::MAX)
                }
            })
            .collect();
        Self {
            pod,
            constraints,
            domains,
            min,
        }
    }

    /// Why the pod may not go to a node with `labels`, if it may not.
    pub fn filter(&self, labels: &Labels) -> Option<&'static str> {
        for ((c, d), min) in self.constraints.iter().zip(&self.domains).zip(&self.min) {
            let Some(value) = labels.get(&c.key) else {
                return Some(SPREAD_LABEL);
            };
            let own = i64::from(c.selects(self.pod));
            if d.get(&c.key, value)
                .saturating_add(own)
                .saturating_sub(*min)
                > c.max_skew
            {
                return Some(SPREAD);
            }
        }
        None
    }
}

/// The soft constraints of `pod` and whether they are Kubernetes' defaults.
fn soft(pod: &Pod) -> (Vec<Constraint>, bool) {
    let declared = declared(pod);
    if !declared.is_empty() {
        let soft = declared
            .iter()
            .filter(|c| c.when_unsatisfiable == "ScheduleAnyway")
            .map(|c| Constraint::of(c, pod))
            .collect();
        return (soft, false);
    }
    let Some(uid) = controller_uid(pod) else {
        return (Vec::new(), true);
    };
    let default = |key: &str, max_skew| Constraint {
        key: key.into(),
        max_skew,
        min_domains: 1,
        counted: Counted::Owner(uid.to_string()),
        honor_affinity: true,
        honor_taints: false,
    };
    (vec![default(HOSTNAME, 3), default(ZONE, 5)], true)
}

/// The spreading score of each node in `feasible` (indices into `nodes`), 0..=100, or None when the pod has
/// nothing to spread by. kube-scheduler's formula: per constraint, matching pods in the node's domain times
/// ln(number of domains + 2), plus maxSkew - 1; then reversed against the highest so the emptiest scores most.
pub fn scores(pod: &Pod, nodes: &[NodeState<'_>], feasible: &[usize]) -> Option<Vec<i64>> {
    let (constraints, defaulted) = soft(pod);
    if constraints.is_empty() {
        return None;
    }
    let ns = namespace(pod);
    // With declared constraints a node lacking one of their keys is left out; the defaults ask for no key.
    let ignored = |labels: &Labels| !defaulted && !has_keys(&constraints, labels);
    let counted: Vec<&NodeState<'_>> = feasible
        .iter()
        .map(|&i| &nodes[i])
        .filter(|n| !ignored(n.labels))
        .collect();
    let mut domains = vec![Domains::default(); constraints.len()];
    for (c, d) in constraints.iter().zip(&mut domains) {
        if c.key != HOSTNAME {
            for n in &counted {
                d.add_at(&c.key, n.labels, 0);
            }
        }
    }
    let weights: Vec<f64> = constraints
        .iter()
        .zip(&domains)
        .map(|(c, d)| {
            let size = if c.key == HOSTNAME {
                counted.len()
            } else {
                d.values(&c.key).count()
            };
            (size as f64 + 2.0).ln()
        })
        .collect();
    for node in nodes {
        if ignored(node.labels) {
            continue;
        }
        for (c, d) in constraints.iter().zip(&mut domains) {
            let Some(value) = node.labels.get(&c.key) else {
                continue;
            };
            if c.key != HOSTNAME && d.has(&c.key, value) && c.includes(pod, node) {
                d.add(&c.key, value, c.count_on(ns, node));
            }
        }
    }
    let raw: Vec<Option<i64>> = feasible
        .iter()
        .map(|&i| {
            let node = &nodes[i];
            if ignored(node.labels) {
                return None;
            }
            let mut score = 0.0;
            for ((c, d), w) in constraints.iter().zip(&domains).zip(&weights) {
                let Some(value) = node.labels.get(&c.key) else {
                    continue;
                };
                let count = if c.key == HOSTNAME {
                    c.count_on(ns, node)
                } else {
                    d.get(&c.key, value)
                };
                score += count as f64 * w + (c.max_skew - 1) as f64;
            }
            Some(score.round() as i64)
        })
        .collect();
    let min = raw.iter().flatten().copied().min().unwrap_or(0);
    let max = raw.iter().flatten().copied().max().unwrap_or(0).max(0);
    Some(
        raw.iter()
            .map(|s| match *s {
                None => 0,
                Some(_) if max == 0 => 100,
                Some(s) => 100 * (max + min - s) / max,
            })
            .collect(),
    )
}
