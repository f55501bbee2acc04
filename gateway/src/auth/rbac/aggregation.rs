//! ClusterRole aggregation: a ClusterRole with an `aggregationRule` holds the rules of every ClusterRole its
//! selectors pick, as Kubernetes' ClusterRoleAggregation controller writes them into it.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{ClusterRole, PolicyRule};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;

/// Replaces the rules of every ClusterRole that has an `aggregationRule` with the rules of the ClusterRoles its
/// selectors select, as the controller does (its own rules are overwritten, not kept).
///
/// The controller reconciles one role at a time from the others' current rules, so `admin` (aggregating `edit`,
/// which aggregates `view`) converges over several passes; this repeats passes in name order until nothing
/// changes. Each role sees the others' newest rules within a pass, like the controller, so mutual aggregation
/// settles instead of swapping rules back and forth; the pass count is bounded anyway.
pub fn aggregate(roles: &mut [ClusterRole]) {
    let mut order: Vec<usize> = (0..roles.len()).collect();
    order.sort_by(|&a, &b| name(&roles[a]).cmp(name(&roles[b])));
    for _ in 0..=roles.len() {
        let mut changed = false;
        for &i in &order {
            let Some(new_rules) = aggregated_rules(roles, i) else {
                continue;
            };
            if roles[i].rules.as_deref().unwrap_or_default() != new_rules.as_slice() {
                roles[i].rules = Some(new_rules);
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
}

/// The rules role `i` aggregates; None when it aggregates nothing, or when a selector is invalid (the controller
/// then fails the reconcile and leaves the role as it was).
fn aggregated_rules(roles: &[ClusterRole], i: usize) -> Option<Vec<PolicyRule>> {
    let selectors = roles[i]
        .aggregation_rule
        .as_ref()?
        .cluster_role_selectors
        .as_deref()
        .unwrap_or_default();
    let mut sources: Vec<&ClusterRole> = Vec::new();
    let mut rules: Vec<PolicyRule> = Vec::new();
    for selector in selectors {
        sources.clear();
        for (j, role) in roles.iter().enumerate() {
            let labels = role.metadata.labels.clone().unwrap_or_default();
            if j != i && selects(selector, &labels)? {
                sources.push(role);
            }
        }
        sources.sort_by(|a, b| name(a).cmp(name(b)));
        for rule in sources.iter().flat_map(|r| r.rules.iter().flatten()) {
            if !rules.contains(rule) {
                rules.push(rule.clone());
            }
        }
    }
    Some(rules)
}

fn name(role: &ClusterRole) -> &str {
    role.metadata.name.as_deref().unwrap_or_default()
}

/// Whether `selector` selects `labels`, as apimachinery's `LabelSelectorAsSelector` reads it: an empty selector
/// selects everything, terms are ANDed. None when the selector is invalid (unknown operator, In or NotIn without
/// values, Exists or DoesNotExist with values).
pub(super) fn selects(selector: &LabelSelector, labels: &BTreeMap<String, String>) -> Option<bool> {
    let mut all = true;
    for (key, value) in selector.match_labels.iter().flatten() {
        all &= labels.get(key) == Some(value);
    }
    for requirement in selector.match_expressions.iter().flatten() {
        let values = requirement.values.as_deref().unwrap_or_default();
        let present = labels.get(&requirement.key);
        let matched = match requirement.operator.as_str() {
            "In" if !values.is_empty() => present.is_some_and(|v| values.contains(v)),
            "NotIn" if !values.is_empty() => present.is_none_or(|v| !values.contains(v)),
            "Exists" if values.is_empty() => present.is_some(),
            "DoesNotExist" if values.is_empty() => present.is_none(),
            _ => return None,
        };
        all &= matched;
    }
    Some(all)
}
