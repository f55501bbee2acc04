//! Decisions: bindings and their scope, subjects, rules, missing roles, the privileged group.

use super::super::{attributes, Decision, Policy};
use super::*;

const SA_ROBOT: &str = "system:serviceaccount:a:robot";

/// The headline case: a service account token bound to a Role in namespace `a`.
fn robot_policy() -> Policy {
    Policy::new(
        vec![],
        vec![],
        vec![
            role(
                "a",
                "pod-reader",
                vec![rule(&["get", "list", "watch"], &[""], &["pods"])],
            ),
            // The same Role name elsewhere must not leak into `a`, nor `a`'s into `b`.
            role("b", "other", vec![rule(&["*"], &["*"], &["*"])]),
        ],
        vec![binding(
            "a",
            "read-pods",
            "Role",
            "pod-reader",
            vec![subject("ServiceAccount", "robot", None)],
        )],
    )
}

#[test]
fn a_role_binding_grants_exactly_its_role_in_its_namespace_only() {
    let policy = robot_policy();
    let robot = user(
        SA_ROBOT,
        &["system:serviceaccounts", "system:serviceaccounts:a"],
    );
    for allowed in [
        "/api/v1/namespaces/a/pods",
        "/api/v1/namespaces/a/pods?watch=true",
        "/api/v1/namespaces/a/pods/p",
    ] {
        assert!(can(&policy, &robot, "GET", allowed), "{allowed}");
    }
    let decision = policy.authorize(
        &robot,
        &attributes("GET", "/api/v1/namespaces/a/pods", None),
    );
    assert_eq!(
        decision.reason,
        r#"RBAC: allowed by RoleBinding "read-pods/a" of Role "pod-reader" to ServiceAccount "robot/a""#
    );
    for (method, denied) in [
        ("POST", "/api/v1/namespaces/a/pods"),
        ("DELETE", "/api/v1/namespaces/a/pods/p"),
        ("GET", "/api/v1/namespaces/a/pods/p/log"),
        ("GET", "/api/v1/namespaces/a/configmaps"),
        ("GET", "/apis/apps/v1/namespaces/a/deployments"),
        ("GET", "/api/v1/namespaces/b/pods"),
        ("GET", "/api/v1/namespaces/b/pods/p"),
        ("GET", "/api/v1/pods"),
        ("GET", "/api/v1/namespaces/a"),
        ("GET", "/api/v1/nodes"),
        ("GET", "/version"),
    ] {
        assert!(!can(&policy, &robot, method, denied), "{method} {denied}");
    }
    // Someone else, even with the same short name in another namespace, gets nothing.
    let other = user("system:serviceaccount:b:robot", &[]);
    assert!(!can(&policy, &other, "GET", "/api/v1/namespaces/a/pods"));
    assert_eq!(
        policy.authorize(
            &other,
            &attributes("GET", "/api/v1/namespaces/a/pods", None)
        ),
        Decision::default()
    );
}

#[test]
fn a_cluster_role_bound_in_a_namespace_applies_to_that_namespace() {
    let policy = Policy::new(
        vec![cluster_role(
            "reader",
            vec![
                rule(&["get", "list"], &["", "apps"], &["pods", "deployments"]),
                url_rule(&["get"], &["*"]),
            ],
        )],
        vec![],
        vec![],
        vec![binding(
            "a",
            "alice-reads",
            "ClusterRole",
            "reader",
            vec![user_subject("alice")],
        )],
    );
    let alice = user("alice", &[]);
    assert!(can(&policy, &alice, "GET", "/api/v1/namespaces/a/pods"));
    assert!(can(
        &policy,
        &alice,
        "GET",
        "/apis/apps/v1/namespaces/a/deployments/d"
    ));
    assert!(!can(&policy, &alice, "GET", "/api/v1/namespaces/b/pods"));
    assert!(!can(&policy, &alice, "GET", "/api/v1/pods"));
    // A non-resource request has no namespace, so the RoleBinding does not reach it.
    assert!(!can(&policy, &alice, "GET", "/version"));
}

#[test]
fn cluster_role_bindings_grant_everywhere_and_match_groups() {
    let policy = Policy::new(
        vec![cluster_role(
            "pod-reader",
            vec![rule(&["list"], &[""], &["pods", "nodes"])],
        )],
        vec![cluster_binding(
            "devs-read",
            "pod-reader",
            vec![group_subject("devs")],
        )],
        vec![],
        vec![],
    );
    let dev = user("bob", &["devs"]);
    for path in [
        "/api/v1/namespaces/a/pods",
        "/api/v1/namespaces/z/pods",
        "/api/v1/pods",
        "/api/v1/nodes",
    ] {
        assert!(can(&policy, &dev, "GET", path), "{path}");
    }
    assert_eq!(
        policy
            .authorize(&dev, &attributes("GET", "/api/v1/pods", None))
            .reason,
        r#"RBAC: allowed by ClusterRoleBinding "devs-read" of ClusterRole "pod-reader" to Group "devs""#
    );
    assert!(!can(
        &policy,
        &user("carol", &["ops"]),
        "GET",
        "/api/v1/pods"
    ));
    // A user named like the group is not in it.
    assert!(!can(&policy, &user("devs", &[]), "GET", "/api/v1/pods"));
}

#[test]
fn service_account_subjects() {
    let everything = cluster_role("all", vec![rule(&["*"], &["*"], &["*"])]);
    let policy = Policy::new(
        vec![everything],
        vec![
            // Without a namespace a ServiceAccount subject of a ClusterRoleBinding names nobody.
            cluster_binding(
                "nobody",
                "all",
                vec![subject("ServiceAccount", "robot", None)],
            ),
            cluster_binding(
                "ci",
                "all",
                vec![subject("ServiceAccount", "ci", Some("tools"))],
            ),
        ],
        vec![],
        vec![binding(
            "a",
            "from-b",
            "ClusterRole",
            "all",
            vec![subject("ServiceAccount", "deployer", Some("b"))],
        )],
    );
    assert!(!can(
        &policy,
        &user(SA_ROBOT, &[]),
        "GET",
        "/api/v1/namespaces/a/pods"
    ));
    let ci = user("system:serviceaccount:tools:ci", &[]);
    assert!(can(&policy, &ci, "DELETE", "/api/v1/namespaces/x/pods/p"));
    assert!(!can(
        &policy,
        &user("system:serviceaccount:x:ci", &[]),
        "GET",
        "/api/v1/pods"
    ));
    assert!(!can(&policy, &user("ci", &[]), "GET", "/api/v1/pods"));
    let deployer = user("system:serviceaccount:b:deployer", &[]);
    assert!(can(&policy, &deployer, "POST", "/api/v1/namespaces/a/pods"));
    assert!(!can(
        &policy,
        &deployer,
        "POST",
        "/api/v1/namespaces/b/pods"
    ));
    assert_eq!(
        policy
            .authorize(
                &deployer,
                &attributes("POST", "/api/v1/namespaces/a/pods", None)
            )
            .reason,
        r#"RBAC: allowed by RoleBinding "from-b/a" of ClusterRole "all" to ServiceAccount "deployer/b""#
    );
}

fn single_role_policy(rules: Vec<PolicyRule>) -> Policy {
    Policy::new(
        vec![cluster_role("r", rules)],
        vec![cluster_binding("r", "r", vec![user_subject("alice")])],
        vec![],
        vec![],
    )
}

#[test]
fn resource_names_cover_only_requests_for_those_names() {
    let policy = single_role_policy(vec![named(
        rule(
            &["get", "update", "list", "watch", "delete"],
            &[""],
            &["configmaps"],
        ),
        &["cfg"],
    )]);
    let alice = user("alice", &[]);
    assert!(can(
        &policy,
        &alice,
        "GET",
        "/api/v1/namespaces/a/configmaps/cfg"
    ));
    assert!(can(
        &policy,
        &alice,
        "PUT",
        "/api/v1/namespaces/a/configmaps/cfg"
    ));
    assert!(!can(
        &policy,
        &alice,
        "GET",
        "/api/v1/namespaces/a/configmaps/other"
    ));
    // Requests without a name may reach any object: a named rule never covers them.
    assert!(!can(
        &policy,
        &alice,
        "GET",
        "/api/v1/namespaces/a/configmaps"
    ));
    assert!(!can(
        &policy,
        &alice,
        "POST",
        "/api/v1/namespaces/a/configmaps"
    ));
    assert!(!can(
        &policy,
        &alice,
        "DELETE",
        "/api/v1/namespaces/a/configmaps"
    ));
    // ...unless narrowed to the one name by a field selector.
    assert!(can(
        &policy,
        &alice,
        "GET",
        "/api/v1/namespaces/a/configmaps?watch=1&fieldSelector=metadata.name%3Dcfg"
    ));
    assert!(!can(
        &policy,
        &alice,
        "GET",
        "/api/v1/namespaces/a/configmaps?fieldSelector=metadata.name%3Dx"
    ));
}

#[test]
fn subresources_are_granted_separately() {
    let alice = user("alice", &[]);
    let pods_only = single_role_policy(vec![rule(&["get"], &[""], &["pods"])]);
    assert!(can(
        &pods_only,
        &alice,
        "GET",
        "/api/v1/namespaces/a/pods/p"
    ));
    assert!(!can(
        &pods_only,
        &alice,
        "GET",
        "/api/v1/namespaces/a/pods/p/log"
    ));
    let log_only = single_role_policy(vec![rule(&["get"], &[""], &["pods/log"])]);
    assert!(can(
        &log_only,
        &alice,
        "GET",
        "/api/v1/namespaces/a/pods/p/log"
    ));
    assert!(!can(
        &log_only,
        &alice,
        "GET",
        "/api/v1/namespaces/a/pods/p"
    ));
    assert!(!can(
        &log_only,
        &alice,
        "GET",
        "/api/v1/namespaces/a/pods/p/status"
    ));
    let any_scale = single_role_policy(vec![rule(&["get", "update"], &["apps"], &["*/scale"])]);
    assert!(can(
        &any_scale,
        &alice,
        "PUT",
        "/apis/apps/v1/namespaces/a/deployments/d/scale"
    ));
    assert!(can(
        &any_scale,
        &alice,
        "GET",
        "/apis/apps/v1/namespaces/a/replicasets/r/scale"
    ));
    assert!(!can(
        &any_scale,
        &alice,
        "GET",
        "/apis/apps/v1/namespaces/a/deployments/d"
    ));
    assert!(!can(
        &any_scale,
        &alice,
        "GET",
        "/apis/apps/v1/namespaces/a/deployments/d/status"
    ));
    assert!(!can(
        &any_scale,
        &alice,
        "GET",
        "/api/v1/namespaces/a/replicationcontrollers/r/scale"
    ));
    let star = single_role_policy(vec![rule(&["get"], &[""], &["*"])]);
    assert!(can(&star, &alice, "GET", "/api/v1/namespaces/a/pods/p/log"));
    assert!(!can(
        &star,
        &alice,
        "GET",
        "/apis/apps/v1/namespaces/a/deployments/d"
    ));
}

#[test]
fn non_resource_urls_exact_prefix_and_star() {
    let alice = user("alice", &[]);
    let policy = single_role_policy(vec![url_rule(&["get"], &["/version", "/apis/*", "/logs*"])]);
    for allowed in [
        "/version",
        "/apis/apps",
        "/apis/apps/v1",
        "/apis/",
        "/logs",
        "/logs/kubelet",
        "/logsx",
    ] {
        assert!(can(&policy, &alice, "GET", allowed), "{allowed}");
    }
    for denied in ["/version/", "/versions", "/apis", "/api", "/healthz", "/"] {
        assert!(!can(&policy, &alice, "GET", denied), "{denied}");
    }
    assert!(!can(&policy, &alice, "POST", "/version"));
    // A rule with URLs says nothing about resources.
    assert!(!can(
        &policy,
        &alice,
        "GET",
        "/apis/apps/v1/namespaces/a/deployments"
    ));
    let all = single_role_policy(vec![url_rule(&["*"], &["*"])]);
    assert!(can(&all, &alice, "DELETE", "/anything/at/all"));
    assert!(!can(&all, &alice, "GET", "/api/v1/pods"));
}

#[test]
fn a_binding_to_a_missing_role_grants_nothing_and_says_so() {
    let policy = Policy::new(
        vec![cluster_role("pods", vec![rule(&["get"], &[""], &["pods"])])],
        vec![
            cluster_binding("gone", "gone", vec![user_subject("alice")]),
            // A ClusterRoleBinding can only refer to a ClusterRole.
            ClusterRoleBinding {
                role_ref: role_ref("Role", "local"),
                ..cluster_binding("to-role", "x", vec![user_subject("alice")])
            },
        ],
        vec![role("a", "local", vec![rule(&["*"], &["*"], &["*"])])],
        vec![
            binding("a", "gone", "Role", "missing", vec![user_subject("alice")]),
            binding("a", "odd", "Group", "x", vec![user_subject("alice")]),
            binding(
                "a",
                "works",
                "ClusterRole",
                "pods",
                vec![user_subject("alice")],
            ),
        ],
    );
    let alice = user("alice", &[]);
    let decision = policy.authorize(
        &alice,
        &attributes("GET", "/api/v1/namespaces/a/secrets", None),
    );
    assert_eq!(
        decision,
        Decision {
            allowed: false,
            reason: concat!(
                r#"RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, "#,
                r#"role.rbac.authorization.k8s.io "local" not found, "#,
                r#"role.rbac.authorization.k8s.io "missing" not found, "#,
                r#"unsupported role reference kind: "Group"]"#
            )
            .to_string(),
        }
    );
    assert_eq!(
        policy
            .authorize(&alice, &attributes("GET", "/api/v1/nodes", None))
            .reason,
        r#"RBAC: [clusterrole.rbac.authorization.k8s.io "gone" not found, role.rbac.authorization.k8s.io "local" not found]"#
    );
    // The other bindings still grant.
    assert!(can(&policy, &alice, "GET", "/api/v1/namespaces/a/pods/p"));
    assert!(!can(&policy, &alice, "GET", "/api/v1/namespaces/b/pods/p"));
}

#[test]
fn system_masters_may_do_anything() {
    let policy = Policy::default();
    let root = user("root", &["system:masters"]);
    for (method, path) in [
        ("DELETE", "/api/v1/namespaces/kube-system"),
        ("GET", "/apis/example.com/v1/widgets"),
        ("POST", "/whatever"),
        ("BREW", "/api/v1/pods"),
    ] {
        assert_eq!(
            policy.authorize(&root, &attributes(method, path, None)),
            Decision {
                allowed: true,
                reason: String::new()
            }
        );
    }
    assert!(!can(&policy, &user("root", &[]), "GET", "/api/v1/pods"));
}
