//! The namespace table: NAME STATUS AGE.

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, name, Column, AGE, NAME};

/// Kubernetes' namespace columns.
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Status", "The status of the namespace"),
    AGE,
];

/// The cells of one namespace.
pub fn cells(ns: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(ns)),
        json!(ns["status"]["phase"].as_str().unwrap_or_default()),
        json!(age_of(ns, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    #[test]
    fn namespace_cells() {
        let ns = json!({"metadata": {"name": "demo", "creationTimestamp": "2026-01-01T00:00:00Z"},
                        "status": {"phase": "Active"}});
        let now = parse_time("2026-01-01T00:00:30Z").unwrap();
        assert_eq!(
            cells(&ns, now),
            vec![json!("demo"), json!("Active"), json!("30s")]
        );
    }
}
