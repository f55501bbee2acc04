//! ClusterRole aggregation and its label selectors.

use std::collections::BTreeMap;

use k8s_openapi::api::rbac::v1::{AggregationRule, ClusterRole};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};

use super::super::{aggregate, Policy};
use super::*;

fn labelled(name: &str, labels: &[(&str, &str)], rules: Vec<PolicyRule>) -> ClusterRole {
    let mut role = cluster_role(name, rules);
    role.metadata.labels = Some(
        labels
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    );
    role
}

fn aggregating(name: &str, labels: &[(&str, &str)], selectors: Vec<LabelSelector>) -> ClusterRole {
    let mut role = labelled(
        name,
        labels,
        vec![rule(&["*"], &["*"], &["own-rules-are-replaced"])],
    );
    role.aggregation_rule = Some(AggregationRule {
        cluster_role_selectors: Some(selectors),
    });
    role
}

fn match_labels(key: &str, value: &str) -> LabelSelector {
    LabelSelector {
        match_labels: Some(BTreeMap::from([(key.to_string(), value.to_string())])),
        match_expressions: None,
    }
}

fn expression(key: &str, operator: &str, values: &[&str]) -> LabelSelector {
    LabelSelector {
        match_labels: None,
        match_expressions: Some(vec![LabelSelectorRequirement {
            key: key.to_string(),
            operator: operator.to_string(),
            values: (!values.is_empty()).then(|| strings(values)),
        }]),
    }
}

fn rules_of<'a>(roles: &'a [ClusterRole], name: &str) -> Vec<&'a str> {
    let role = roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some(name))
        .unwrap();
    role.rules
        .iter()
        .flatten()
        .flat_map(|r| r.resources.iter().flatten().map(String::as_str))
        .collect()
}

#[test]
fn aggregation_collects_selected_roles_transitively() {
    let read = rule(&["get"], &[""], &["pods"]);
    let mut roles = vec![
        aggregating("top", &[], vec![match_labels("to-top", "true")]),
        aggregating(
            "middle",
            &[("to-top", "true")],
            vec![match_labels("to-middle", "true")],
        ),
        labelled("pods", &[("to-middle", "true")], vec![read.clone()]),
        // The same rule twice is kept once.
        labelled("pods-again", &[("to-middle", "true")], vec![read.clone()]),
        labelled(
            "secrets",
            &[("to-top", "true")],
            vec![rule(&["get"], &[""], &["secrets"])],
        ),
        labelled(
            "unrelated",
            &[("to-top", "false")],
            vec![rule(&["get"], &[""], &["nodes"])],
        ),
        aggregating("selects-none", &[], vec![match_labels("nothing", "here")]),
    ];
    aggregate(&mut roles);
    assert_eq!(rules_of(&roles, "top"), ["pods", "secrets"]);
    assert_eq!(rules_of(&roles, "middle"), ["pods"]);
    assert!(rules_of(&roles, "selects-none").is_empty());

    // Policy::new aggregates by itself.
    let policy = Policy::new(
        vec![
            aggregating("top", &[], vec![match_labels("to-top", "true")]),
            labelled("pods", &[("to-top", "true")], vec![read]),
        ],
        vec![cluster_binding("top", "top", vec![user_subject("alice")])],
        vec![],
        vec![],
    );
    assert!(can(
        &policy,
        &user("alice", &[]),
        "GET",
        "/api/v1/namespaces/a/pods/p"
    ));
}

/// The resources an aggregated role gets from three labelled roles through `selectors`.
fn selected(selectors: Vec<LabelSelector>) -> Vec<String> {
    let mut roles = vec![
        labelled(
            "r1",
            &[("env", "prod"), ("tier", "web")],
            vec![rule(&["get"], &[""], &["a"])],
        ),
        labelled("r2", &[("env", "dev")], vec![rule(&["get"], &[""], &["b"])]),
        labelled("r3", &[], vec![rule(&["get"], &[""], &["c"])]),
        aggregating("x", &[("env", "x"), ("tier", "x")], selectors),
    ];
    aggregate(&mut roles);
    rules_of(&roles, "x")
        .into_iter()
        .map(str::to_string)
        .collect()
}

#[test]
fn aggregation_selectors_read_as_label_selectors() {
    assert_eq!(selected(vec![match_labels("env", "dev")]), ["b"]);
    assert_eq!(
        selected(vec![expression("env", "In", &["prod", "qa"])]),
        ["a"]
    );
    // NotIn and DoesNotExist also select roles without the label.
    assert_eq!(
        selected(vec![expression("env", "NotIn", &["prod", "x"])]),
        ["b", "c"]
    );
    assert_eq!(selected(vec![expression("tier", "Exists", &[])]), ["a"]);
    assert_eq!(
        selected(vec![expression("env", "DoesNotExist", &[])]),
        ["c"]
    );
    // An empty selector selects every other role; a role never aggregates itself.
    assert_eq!(selected(vec![LabelSelector::default()]), ["a", "b", "c"]);
    // Within a selector terms are ANDed, selectors are ORed (in selector order).
    let mut both = match_labels("env", "prod");
    both.match_expressions = expression("tier", "DoesNotExist", &[]).match_expressions;
    assert!(selected(vec![both]).is_empty());
    assert_eq!(
        selected(vec![
            match_labels("env", "dev"),
            expression("tier", "Exists", &[])
        ]),
        ["b", "a"]
    );
    // An invalid selector fails the reconcile: the role keeps what it had.
    for invalid in [
        expression("env", "Exists", &["prod"]),
        expression("env", "In", &[]),
        expression("env", "Gt", &["1"]),
    ] {
        assert_eq!(selected(vec![invalid]), ["own-rules-are-replaced"]);
    }
}

#[test]
fn mutual_aggregation_settles() {
    let mut roles = vec![
        aggregating("a", &[("l", "a")], vec![match_labels("l", "b")]),
        aggregating("b", &[("l", "b")], vec![match_labels("l", "a")]),
    ];
    aggregate(&mut roles);
    let once = roles.clone();
    aggregate(&mut roles);
    assert_eq!(roles, once);
}
