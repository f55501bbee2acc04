//! The Role and ClusterRole table: NAME CREATED AT.
//!
//! kube-apiserver has no printer for roles: it answers with the default table of `k8s.io/apiserver` (rest
//! `defaultTableConvertor`), whose second column is the creation time in RFC 3339 rather than an age.

use k8s_openapi::chrono::{DateTime, Utc};
use navarch_bus::api::meta::parse_time;
use serde_json::{json, Value};

use super::{name, Column, NAME};

/// The default table's columns.
pub const COLUMNS: &[Column] = &[
    NAME,
    Column {
        name: "Created At",
        kind: "date",
        format: "",
        description: "CreationTimestamp is a timestamp representing the server time when this object was created.",
        priority: 0,
    },
];

/// CREATED AT: `creationTimestamp` in UTC, formatted as Go's `time.RFC3339` (whole seconds, `Z`); Go's zero time
/// when there is none, as Kubernetes prints it.
fn created_at(object: &Value) -> String {
    object["metadata"]["creationTimestamp"]
        .as_str()
        .and_then(parse_time)
        .map_or_else(
            || "0001-01-01T00:00:00Z".into(),
            |t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        )
}

/// The cells of one Role or ClusterRole (`now` is unused: the column is a date, not an age).
pub fn cells(role: &Value, _now: DateTime<Utc>) -> Vec<Value> {
    vec![json!(name(role)), json!(created_at(role))]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_show_their_creation_time() {
        let now = parse_time("2026-03-01T00:00:00Z").unwrap();
        let role = json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
                          "metadata": {"name": "pod-reader", "namespace": "default",
                                       "creationTimestamp": "2026-01-15T09:30:00Z"},
                          "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"]}]});
        assert_eq!(
            cells(&role, now),
            vec![json!("pod-reader"), json!("2026-01-15T09:30:00Z")]
        );
        // Offsets and fractions normalise to UTC whole seconds.
        let offset = json!({"metadata": {"name": "admin", "creationTimestamp": "2026-01-15T10:30:00.250+01:00"}});
        assert_eq!(cells(&offset, now)[1], json!("2026-01-15T09:30:00Z"));
        assert_eq!(
            cells(&json!({}), now),
            vec![json!(""), json!("0001-01-01T00:00:00Z")]
        );
    }
}
