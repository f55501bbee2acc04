//! The RoleBinding and ClusterRoleBinding table: NAME ROLE AGE (+ USERS GROUPS SERVICEACCOUNTS).
//!
//! The two kinds print alike; only the wide columns' descriptions differ.

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, items, name, text, Column, AGE, NAME};

/// Kubernetes' role binding columns (`roleBindingsColumnDefinitions`).
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Role", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
    AGE,
    Column::new("Users", "Users in the roleBinding").wide(),
    Column::new("Groups", "Groups in the roleBinding").wide(),
    Column::new("ServiceAccounts", "ServiceAccounts in the roleBinding").wide(),
];

/// Kubernetes' cluster role binding columns (`clusterRoleBindingsColumnDefinitions`).
pub const CLUSTER_COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Role",
        "RoleRef can only reference a ClusterRole in the global namespace.",
    ),
    AGE,
    Column::new("Users", "Users in the clusterRoleBinding").wide(),
    Column::new("Groups", "Groups in the clusterRoleBinding").wide(),
    Column::new(
        "ServiceAccounts",
        "ServiceAccounts in the clusterRoleBinding",
    )
    .wide(),
];

/// USERS, GROUPS and SERVICEACCOUNTS (`namespace/name`), each joined with ", " as rbac's `SubjectsStrings` lists
/// them; subjects of other kinds are not shown.
fn subjects(binding: &Value) -> [String; 3] {
    let (mut users, mut groups, mut accounts) = (Vec::new(), Vec::new(), Vec::new());
    for s in items(&binding["subjects"]) {
        match text(&s["kind"]) {
            "User" => users.push(text(&s["name"]).to_string()),
            "Group" => groups.push(text(&s["name"]).to_string()),
            "ServiceAccount" => {
                accounts.push(format!("{}/{}", text(&s["namespace"]), text(&s["name"])))
            }
            _ => {}
        }
    }
    [users.join(", "), groups.join(", "), accounts.join(", ")]
}

/// The cells of one RoleBinding or ClusterRoleBinding.
pub fn cells(binding: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let role = &binding["roleRef"];
    let [users, groups, accounts] = subjects(binding);
    vec![
        json!(name(binding)),
        json!(format!("{}/{}", text(&role["kind"]), text(&role["name"]))),
        json!(age_of(binding, now)),
        json!(users),
        json!(groups),
        json!(accounts),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    #[test]
    fn role_binding_cells() {
        let now = parse_time("2026-01-01T02:00:00Z").unwrap();
        let rb = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
                        "metadata": {"name": "read-pods", "namespace": "dev",
                                     "creationTimestamp": "2026-01-01T00:00:00Z"},
                        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "reader"},
                        "subjects": [
                            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "jane"},
                            {"kind": "User", "apiGroup": "rbac.authorization.k8s.io", "name": "joe"},
                            {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "devs"},
                            {"kind": "ServiceAccount", "name": "ci", "namespace": "build"},
                            {"kind": "ServiceAccount", "name": "default", "namespace": "dev"},
                            {"kind": "Robot", "name": "r2"}]});
        assert_eq!(
            cells(&rb, now),
            vec![
                json!("read-pods"),
                json!("Role/reader"),
                json!("120m"),
                json!("jane, joe"),
                json!("devs"),
                json!("build/ci, dev/default")
            ]
        );
    }

    #[test]
    fn cluster_role_bindings_and_empty_subjects() {
        let now = parse_time("2026-01-01T00:00:00Z").unwrap();
        let crb = json!({"metadata": {"name": "cluster-admin", "creationTimestamp": "2026-01-01T00:00:00Z"},
                         "roleRef": {"kind": "ClusterRole", "name": "cluster-admin"},
                         "subjects": [{"kind": "Group", "name": "system:masters"}]});
        assert_eq!(
            cells(&crb, now),
            vec![
                json!("cluster-admin"),
                json!("ClusterRole/cluster-admin"),
                json!("0s"),
                json!(""),
                json!("system:masters"),
                json!("")
            ]
        );
        let bare = cells(&json!({"metadata": {"name": "x"}}), now);
        assert_eq!(bare[1], json!("/"));
        assert_eq!(bare[3..], [json!(""), json!(""), json!("")]);
    }
}
