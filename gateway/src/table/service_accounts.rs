//! The service account table: NAME SECRETS AGE.

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, items, name, Column, AGE, NAME};

/// Kubernetes' service account columns (`serviceAccountColumnDefinitions`; SECRETS is typed string there, its
/// cells are integers).
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Secrets", "Secrets is a list of the secrets in the same namespace that pods running using this ServiceAccount are allowed to use."),
    AGE,
];

/// The cells of one service account.
pub fn cells(sa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(sa)),
        json!(items(&sa["secrets"]).len()),
        json!(age_of(sa, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    #[test]
    fn service_account_cells() {
        let now = parse_time("2026-01-01T00:01:00Z").unwrap();
        let sa = json!({"apiVersion": "v1", "kind": "ServiceAccount",
                        "metadata": {"name": "builder", "namespace": "ci", "creationTimestamp": "2026-01-01T00:00:00Z"},
                        "secrets": [{"name": "builder-token"}, {"name": "registry"}]});
        assert_eq!(
            cells(&sa, now),
            vec![json!("builder"), json!(2), json!("60s")]
        );
        // Since 1.24 service accounts carry no token secrets.
        let default =
            json!({"metadata": {"name": "default", "creationTimestamp": "2026-01-01T00:00:00Z"}});
        assert_eq!(
            cells(&default, now),
            vec![json!("default"), json!(0), json!("60s")]
        );
    }
}
