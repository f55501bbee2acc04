//! Label selectors, node selector terms and pod affinity terms, matched the way Kubernetes matches them.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{NodeSelectorRequirement, NodeSelectorTerm, Pod, PodAffinityTerm};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// An object's labels.
pub type Labels = BTreeMap<String, String>;

/// The labels of every namespace, by name (what a pod affinity term's `namespaceSelector` matches).
pub type Namespaces = BTreeMap<String, Labels>;

static NO_LABELS: Labels = BTreeMap::new();

/// A pod's labels (none if it has none).
pub fn pod_labels(pod: &Pod) -> &Labels {
    pod.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

/// A node's labels (none if it has none).
pub fn node_labels(node: &k8s_openapi::api::core::v1::Node) -> &Labels {
    node.metadata.labels.as_ref().unwrap_or(&NO_LABELS)
}

/// A pod's namespace (`default` if unset, as the API server defaults it).
pub fn namespace(pod: &Pod) -> &str {
    pod.metadata.namespace.as_deref().unwrap_or("default")
}

/// Whether `labels` match `selector`: every `matchLabels` pair and every `matchExpressions` requirement (ANDed).
/// An empty selector matches everything; an unknown operator matches nothing.
pub fn selects(selector: &LabelSelector, labels: &Labels) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    by_labels
        && selector.match_expressions.iter().flatten().all(|e| {
            let values = e.values.as_deref().unwrap_or_default();
            let value = labels.get(&e.key);
            match e.operator.as_str() {
                "In" => value.is_some_and(|v| values.contains(v)),
                "NotIn" => value.is_none_or(|v| !values.contains(v)),
                "Exists" => value.is_some(),
                "DoesNotExist" => value.is_none(),
                _ => false,
            }
        })
}

fn is_empty(selector: &LabelSelector) -> bool {
    selector
        .match_labels
        .as_ref()
        .is_none_or(BTreeMap::is_empty)
        && selector
            .match_expressions
            .as_ref()
            .is_none_or(Vec::is_empty)
}

/// Whether a node's `value` for the requirement's key (None: the node has no such label) satisfies it. `Gt` and
/// `Lt` compare integers and take exactly one value.
fn requirement_holds(r: &NodeSelectorRequirement, value: Option<&str>) -> bool {
    let values = r.values.as_deref().unwrap_or_default();
    let listed = |v: &str| values.iter().any(|x| x == v);
    match r.operator.as_str() {
        "In" => value.is_some_and(listed),
        "NotIn" => value.is_none_or(|v| !listed(v)),
        "Exists" => value.is_some(),
        "DoesNotExist" => value.is_none(),
        op @ ("Gt" | "Lt") => {
            let (Some(v), [bound]) = (value, values) else {
                return false;
            };
            let (Ok(v), Ok(bound)) = (v.parse::<i64>(), bound.parse::<i64>()) else {
                return false;
            };
            if op == "Gt" {
                v > bound
            } else {
                v < bound
            }
        }
        _ => false,
    }
}

/// Whether a node matches one node selector term: all its `matchExpressions` on labels and all its `matchFields`
/// (only `metadata.name` with `In`/`NotIn` exists). A term with neither matches no node.
pub fn term_matches(term: &NodeSelectorTerm, node_name: &str, labels: &Labels) -> bool {
    let expressions = term.match_expressions.as_deref().unwrap_or_default();
    let fields = term.match_fields.as_deref().unwrap_or_default();
    if expressions.is_empty() && fields.is_empty() {
        return false;
    }
    expressions
        .iter()
        .all(|r| requirement_holds(r, labels.get(&r.key).map(String::as_str)))
        && fields.iter().all(|r| {
            r.key == "metadata.name"
                && matches!(r.operator.as_str(), "In" | "NotIn")
                && requirement_holds(r, Some(node_name))
        })
}

/// Whether the pod affinity `term` of a pod in namespace `owner` selects `pod`: the pod is in one of the term's
/// `namespaces` or in a namespace its `namespaceSelector` matches (an empty one matches every namespace); with
/// neither, in `owner`. A missing `labelSelector` selects nothing.
pub fn term_selects(
    term: &PodAffinityTerm,
    owner: &str,
    pod: &Pod,
    namespaces: &Namespaces,
) -> bool {
    let Some(selector) = &term.label_selector else {
        return false;
    };
    let ns = namespace(pod);
    let listed = term.namespaces.as_deref().unwrap_or_default();
    let in_namespace = listed.iter().any(|n| n == ns)
        || match &term.namespace_selector {
            None => listed.is_empty() && ns == owner,
            Some(s) => is_empty(s) || namespaces.get(ns).is_some_and(|labels| selects(s, labels)),
        };
    in_namespace && selects(selector, pod_labels(pod))
}

/// Counts per topology domain: topology key, then the key's value on the node.
#[derive(Debug, Default, Clone)]
pub struct Domains(BTreeMap<String, BTreeMap<String, i64>>);

impl Domains {
    /// Adds `n` to the domain `key=value`.
    pub fn add(&mut self, key: &str, value: &str, n: i64) {
        *self
            .0
            .entry(key.to_string())
            .or_default()
            .entry(value.to_string())
            .or_default() += n;
    }

    /// Adds `n` to the domain of `key` that `labels` (a node's) are in, if they have the key.
    pub fn add_at(&mut self, key: &str, labels: &Labels, n: i64) {
        if let Some(value) = labels.get(key) {
            self.add(key, value, n);
        }
    }

    /// The count of `key=value` (0 if none was added).
    pub fn get(&self, key: &str, value: &str) -> i64 {
        self.0
            .get(key)
            .and_then(|values| values.get(value))
            .copied()
            .unwrap_or(0)
    }

    /// Whether some domain of `key` was added to.
    pub fn has(&self, key: &str, value: &str) -> bool {
        self.0
            .get(key)
            .is_some_and(|values| values.contains_key(value))
    }

    /// The values of `key` that were added to.
    pub fn values(&self, key: &str) -> impl Iterator<Item = (&String, &i64)> {
        self.0.get(key).into_iter().flatten()
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}
