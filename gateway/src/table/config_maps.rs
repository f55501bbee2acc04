//! The config map table: NAME DATA AGE.

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, entries, name, Column, AGE, NAME};

/// Kubernetes' config map columns (`configMapColumnDefinitions`; DATA is typed string there, its cells are integers).
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Data", "Data contains the configuration data."),
    AGE,
];

/// The cells of one config map: DATA counts the keys of `data` and `binaryData`.
pub fn cells(cm: &Value, now: DateTime<Utc>) -> Vec<Value> {
    vec![
        json!(name(cm)),
        json!(entries(&cm["data"]) + entries(&cm["binaryData"])),
        json!(age_of(cm, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    #[test]
    fn data_counts_both_maps() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": "app-config", "namespace": "default",
                                     "creationTimestamp": "2026-01-01T00:00:00Z"},
                        "data": {"app.properties": "mode=prod\n", "LOG_LEVEL": "info"},
                        "binaryData": {"logo.png": "iVBORw0KGgo="}});
        let now = parse_time("2026-01-01T03:20:00Z").unwrap();
        assert_eq!(
            cells(&cm, now),
            vec![json!("app-config"), json!(3), json!("3h20m")]
        );
        let empty = json!({"metadata": {"name": "kube-root-ca.crt"}});
        assert_eq!(cells(&empty, now)[1], json!(0));
    }
}
