//! The rules review (`kubectl auth can-i --list`) and the access review (`kubectl auth can-i`).

use k8s_openapi::api::authorization::v1::{
    NonResourceAttributes, NonResourceRule, ResourceAttributes, ResourceRule,
};

use super::super::Policy;
use super::*;

#[test]
fn rules_review_lists_what_applies_in_the_namespace() {
    let policy = Policy::new(
        vec![
            cluster_role("discovery", vec![url_rule(&["get"], &["/api", "/api/*"])]),
            cluster_role(
                "mixed",
                vec![
                    rule(&["get"], &["apps"], &["deployments"]),
                    url_rule(&["get"], &["/metrics"]),
                ],
            ),
        ],
        vec![cluster_binding(
            "discovery",
            "discovery",
            vec![group_subject("system:authenticated")],
        )],
        vec![role(
            "a",
            "pods",
            vec![named(rule(&["get"], &[""], &["pods"]), &["p"])],
        )],
        vec![
            binding("a", "pods", "Role", "pods", vec![user_subject("alice")]),
            binding(
                "a",
                "mixed",
                "ClusterRole",
                "mixed",
                vec![user_subject("alice")],
            ),
            binding("b", "pods", "Role", "pods", vec![user_subject("alice")]),
        ],
    );
    let alice = user("alice", &[]);
    let discovery = NonResourceRule {
        verbs: strings(&["get"]),
        non_resource_urls: Some(strings(&["/api", "/api/*"])),
    };
    let (resources, non_resources) = policy.rules_for(&alice, "a");
    assert_eq!(
        resources,
        [
            // Bindings in name order: "mixed", then "pods".
            ResourceRule {
                verbs: strings(&["get"]),
                api_groups: Some(strings(&["apps"])),
                resources: Some(strings(&["deployments"])),
                resource_names: None,
            },
            ResourceRule {
                verbs: strings(&["get"]),
                api_groups: Some(strings(&[""])),
                resources: Some(strings(&["pods"])),
                resource_names: Some(strings(&["p"])),
            },
        ]
    );
    // `/metrics` comes through a RoleBinding, which grants no non-resource request.
    assert_eq!(non_resources, std::slice::from_ref(&discovery));
    // Role "pods" in b is another object: b's binding to it finds none there.
    assert_eq!(
        policy.rules_for(&alice, "b"),
        (vec![], vec![discovery.clone()])
    );
    assert_eq!(policy.rules_for(&alice, ""), (vec![], vec![discovery]));
    let (resources, non_resources) = policy.rules_for(&user("root", &["system:masters"]), "a");
    assert_eq!(resources[0].verbs, ["*"]);
    assert_eq!(resources[0].resources, Some(strings(&["*"])));
    assert_eq!(non_resources[0].non_resource_urls, Some(strings(&["*"])));
}

#[test]
fn access_reviews_map_onto_attributes() {
    let policy = Policy::new(
        vec![
            cluster_role(
                "scaler",
                vec![rule(&["update"], &["apps"], &["deployments/scale"])],
            ),
            cluster_role("health", vec![url_rule(&["get"], &["/healthz"])]),
        ],
        vec![cluster_binding(
            "health",
            "health",
            vec![user_subject("alice")],
        )],
        vec![],
        vec![binding(
            "a",
            "scaler",
            "ClusterRole",
            "scaler",
            vec![user_subject("alice")],
        )],
    );
    let alice = user("alice", &[]);
    let review = |namespace: &str, subresource: &str| ResourceAttributes {
        group: Some("apps".to_string()),
        resource: Some("deployments".to_string()),
        subresource: Some(subresource.to_string()),
        verb: Some("update".to_string()),
        namespace: Some(namespace.to_string()),
        name: Some("web".to_string()),
        ..ResourceAttributes::default()
    };
    assert!(
        policy
            .authorize_review(&alice, Some(&review("a", "scale")), None)
            .allowed
    );
    assert!(
        !policy
            .authorize_review(&alice, Some(&review("b", "scale")), None)
            .allowed
    );
    assert!(
        !policy
            .authorize_review(&alice, Some(&review("a", "")), None)
            .allowed
    );
    let path = |p: &str| NonResourceAttributes {
        path: Some(p.to_string()),
        verb: Some("get".to_string()),
    };
    assert!(
        policy
            .authorize_review(&alice, None, Some(&path("/healthz")))
            .allowed
    );
    assert!(
        !policy
            .authorize_review(&alice, None, Some(&path("/version")))
            .allowed
    );
    assert!(!policy.authorize_review(&alice, None, None).allowed);
    assert!(
        !policy
            .authorize_review(&alice, Some(&review("a", "scale")), Some(&path("/healthz")))
            .allowed
    );
}
