//! The bootstrap roles and bindings.

use super::super::{bootstrap_policy, Policy};
use super::*;

/// The bootstrap policy, plus `view`, `edit` and `admin` bound in namespace `a` to users of those names.
fn policy() -> Policy {
    let (roles, bindings) = bootstrap_policy();
    let role_bindings = ["view", "edit", "admin"]
        .iter()
        .map(|r| binding("a", r, "ClusterRole", r, vec![user_subject(r)]))
        .collect();
    Policy::new(roles, bindings, vec![], role_bindings)
}

#[test]
fn view_reads_but_not_secrets_edit_reads_secrets_admin_grants() {
    let policy = policy();
    let (view, edit, admin) = (user("view", &[]), user("edit", &[]), user("admin", &[]));
    for path in [
        "/api/v1/namespaces/a/pods",
        "/api/v1/namespaces/a/pods/p/log",
        "/api/v1/namespaces/a/pods/p/status",
        "/api/v1/namespaces/a/configmaps/c",
        "/api/v1/namespaces/a/events?watch=1",
        "/api/v1/namespaces/a",
        "/apis/apps/v1/namespaces/a/deployments/d/scale",
        "/apis/apps/v1/namespaces/a/replicasets",
        "/apis/autoscaling/v2/namespaces/a/horizontalpodautoscalers",
    ] {
        for who in [&view, &edit, &admin] {
            assert!(can(&policy, who, "GET", path), "{} GET {path}", who.name);
        }
    }
    assert!(!can(&policy, &view, "GET", "/api/v1/namespaces/a/secrets"));
    assert!(!can(
        &policy,
        &view,
        "GET",
        "/api/v1/namespaces/a/secrets/s"
    ));
    assert!(can(&policy, &edit, "GET", "/api/v1/namespaces/a/secrets/s"));
    assert!(can(&policy, &edit, "POST", "/api/v1/namespaces/a/secrets"));
    assert!(!can(&policy, &view, "POST", "/api/v1/namespaces/a/pods"));
    assert!(!can(
        &policy,
        &view,
        "PUT",
        "/api/v1/namespaces/a/pods/p/status"
    ));
    assert!(can(&policy, &edit, "POST", "/api/v1/namespaces/a/pods"));
    assert!(can(
        &policy,
        &edit,
        "PATCH",
        "/apis/apps/v1/namespaces/a/deployments/d/scale"
    ));
    assert!(can(
        &policy,
        &edit,
        "POST",
        "/api/v1/namespaces/a/serviceaccounts/sa/token"
    ));
    assert!(can(
        &policy,
        &edit,
        "PUT",
        "/apis/coordination.k8s.io/v1/namespaces/a/leases/l"
    ));
    // Status belongs to the system, the namespace to the cluster admin.
    assert!(!can(
        &policy,
        &edit,
        "PUT",
        "/api/v1/namespaces/a/pods/p/status"
    ));
    assert!(!can(&policy, &admin, "DELETE", "/api/v1/namespaces/a"));
    // Only admin hands out permissions.
    assert!(!can(
        &policy,
        &edit,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings"
    ));
    assert!(can(
        &policy,
        &admin,
        "POST",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/a/rolebindings"
    ));
    assert!(can(
        &policy,
        &admin,
        "DELETE",
        "/apis/rbac.authorization.k8s.io/v1/namespaces/a/roles/r"
    ));
    assert!(can(
        &policy,
        &admin,
        "POST",
        "/apis/authorization.k8s.io/v1/namespaces/a/localsubjectaccessreviews"
    ));
    // All of it in `a` only.
    for who in [&view, &edit, &admin] {
        assert!(
            !can(&policy, who, "GET", "/api/v1/namespaces/b/pods"),
            "{}",
            who.name
        );
        assert!(!can(&policy, who, "GET", "/api/v1/pods"), "{}", who.name);
        assert!(
            !can(&policy, who, "GET", "/api/v1/namespaces"),
            "{}",
            who.name
        );
    }
}

#[test]
fn every_authenticated_user_may_discover_and_ask_about_itself() {
    let policy = policy();
    let nobody = user("nobody", &[]);
    for path in [
        "/api",
        "/api/v1",
        "/apis",
        "/apis/apps/v1",
        "/version",
        "/healthz",
        "/openapi/v3",
        "/openapi/v2",
    ] {
        assert!(can(&policy, &nobody, "GET", path), "{path}");
        assert!(can(&policy, &nobody, "HEAD", path), "{path}");
    }
    assert!(!can(&policy, &nobody, "POST", "/version"));
    for review in [
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews",
        "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews",
        "/apis/authentication.k8s.io/v1/selfsubjectreviews",
    ] {
        assert!(can(&policy, &nobody, "POST", review), "{review}");
    }
    assert!(!can(
        &policy,
        &nobody,
        "POST",
        "/apis/authorization.k8s.io/v1/subjectaccessreviews"
    ));
    assert!(!can(&policy, &nobody, "GET", "/api/v1/namespaces/a/pods"));
    assert!(!can(&policy, &nobody, "GET", "/api/v1/namespaces"));
    // The unauthenticated see health and version, nothing of the API.
    let anonymous = UserInfo {
        name: "system:anonymous".to_string(),
        uid: String::new(),
        groups: strings(&["system:unauthenticated"]),
    };
    assert!(can(&policy, &anonymous, "GET", "/healthz"));
    assert!(can(&policy, &anonymous, "GET", "/version"));
    assert!(!can(&policy, &anonymous, "GET", "/api"));
    assert!(!can(&policy, &anonymous, "GET", "/apis/apps/v1"));
}

#[test]
fn cluster_admin_may_do_anything_through_its_binding() {
    let (roles, mut bindings) = bootstrap_policy();
    bindings.push(cluster_binding(
        "ops",
        "cluster-admin",
        vec![user_subject("ops")],
    ));
    let policy = Policy::new(roles, bindings, vec![], vec![]);
    let ops = user("ops", &[]);
    assert!(can(
        &policy,
        &ops,
        "DELETE",
        "/api/v1/namespaces/kube-system"
    ));
    assert!(can(&policy, &ops, "GET", "/api/v1/secrets"));
    assert!(can(&policy, &ops, "POST", "/anything"));
    assert!(!can(&policy, &user("dev", &[]), "GET", "/api/v1/secrets"));
}

#[test]
fn bootstrap_objects_are_labelled_and_survive_a_json_round_trip() {
    let (roles, bindings) = bootstrap_policy();
    let names: Vec<&str> = roles
        .iter()
        .filter_map(|r| r.metadata.name.as_deref())
        .collect();
    for expected in [
        "cluster-admin",
        "admin",
        "edit",
        "view",
        "system:discovery",
        "system:public-info-viewer",
        "system:basic-user",
    ] {
        assert!(names.contains(&expected), "{expected}");
    }
    let binding_names: Vec<&str> = bindings
        .iter()
        .filter_map(|b| b.metadata.name.as_deref())
        .collect();
    assert_eq!(
        binding_names,
        [
            "cluster-admin",
            "system:discovery",
            "system:basic-user",
            "system:public-info-viewer"
        ]
    );
    let metas = roles
        .iter()
        .map(|r| &r.metadata)
        .chain(bindings.iter().map(|b| &b.metadata));
    for meta in metas {
        let label = meta
            .labels
            .as_ref()
            .and_then(|l| l.get("kubernetes.io/bootstrapping"));
        assert_eq!(
            label.map(String::as_str),
            Some("rbac-defaults"),
            "{:?}",
            meta.name
        );
        let annotation = meta
            .annotations
            .as_ref()
            .and_then(|a| a.get("rbac.authorization.kubernetes.io/autoupdate"));
        assert_eq!(
            annotation.map(String::as_str),
            Some("true"),
            "{:?}",
            meta.name
        );
    }
    // The aggregated roles come with their rules written in, as the aggregation controller leaves them.
    let view = roles
        .iter()
        .find(|r| r.metadata.name.as_deref() == Some("view"))
        .unwrap();
    assert!(view.aggregation_rule.is_some());
    assert!(!view.rules.as_deref().unwrap_or_default().is_empty());
    for role in &roles {
        let json = serde_json::to_value(role).unwrap();
        assert_eq!(json["apiVersion"], "rbac.authorization.k8s.io/v1");
        assert_eq!(json["kind"], "ClusterRole");
        assert_eq!(&serde_json::from_value::<ClusterRole>(json).unwrap(), role);
    }
    for binding in &bindings {
        let json = serde_json::to_string(binding).unwrap();
        assert_eq!(
            &serde_json::from_str::<ClusterRoleBinding>(&json).unwrap(),
            binding
        );
    }
}
