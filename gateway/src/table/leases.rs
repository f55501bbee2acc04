//! The lease table (coordination.k8s.io/v1): NAME HOLDER AGE.

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, name, text, Column, AGE, NAME};

/// Kubernetes' lease columns (`leaseColumnDefinitions`).
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Holder",
        "holderIdentity contains the identity of the holder of a current lease.",
    ),
    AGE,
];

/// The cells of one lease; HOLDER is empty while nobody holds it.
pub fn cells(lease: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(lease)),
        json!(text(&lease["spec"]["holderIdentity"])),
        json!(age_of(lease, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    #[test]
    fn lease_cells() {
        let now = parse_time("2026-01-01T00:00:30Z").unwrap();
        let lease = json!({"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                           "metadata": {"name": "navarch-scheduler", "namespace": "kube-system",
                                        "creationTimestamp": "2026-01-01T00:00:00Z"},
                           "spec": {"holderIdentity": "node-a_5f1c", "leaseDurationSeconds": 15,
                                    "acquireTime": "2026-01-01T00:00:00.000000Z",
                                    "renewTime": "2026-01-01T00:00:28.000000Z", "leaseTransitions": 0}});
        assert_eq!(
            cells(&lease, now),
            vec![
                json!("navarch-scheduler"),
                json!("node-a_5f1c"),
                json!("30s")
            ]
        );
        let free = json!({"metadata": {"name": "n1"}, "spec": {}});
        assert_eq!(cells(&free, now)[1], json!(""));
    }
}
