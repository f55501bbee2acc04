//! The secret table: NAME TYPE DATA AGE.

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, name, Column, AGE, NAME};

/// Kubernetes' secret columns (`secretColumnDefinitions`; DATA is typed string there, its cells are integers).
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new(
        "Type",
        "Used to facilitate programmatic handling of secret data.",
    ),
    Column::new("Data", "Data contains the secret data."),
    AGE,
];

/// The number of keys the secret holds.
///
/// kube-apiserver merges `stringData` into `data` on write, so its DATA is `len(data)`; counting the union of
/// both maps gives the same number whether or not the stored object still carries `stringData`.
fn data_keys(secret: &Value) -> usize {
    let keys = |field: &str| {
        secret[field]
            .as_object()
            .into_iter()
            .flat_map(|m| m.keys().map(String::as_str))
    };
    let mut all: Vec<&str> = keys("data").chain(keys("stringData")).collect();
    all.sort_unstable();
    all.dedup();
    all.len()
}

/// The cells of one secret; TYPE reads as `Opaque` when unset, the API default.
pub fn cells(secret: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let kind = secret["type"]
        .as_str()
        .filter(|t| !t.is_empty())
        .unwrap_or("Opaque");
    vec![
        json!(name(secret)),
        json!(kind),
        json!(data_keys(secret)),
        json!(age_of(secret, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    #[test]
    fn secret_cells() {
        let s = json!({"apiVersion": "v1", "kind": "Secret",
                       "metadata": {"name": "tls-web", "namespace": "default",
                                    "creationTimestamp": "2026-01-01T00:00:00Z"},
                       "type": "kubernetes.io/tls",
                       "data": {"tls.crt": "LS0tLS1CRUdJTg==", "tls.key": "LS0tLS1CRUdJTg=="}});
        let now = parse_time("2026-01-09T00:00:00Z").unwrap();
        assert_eq!(
            cells(&s, now),
            vec![
                json!("tls-web"),
                json!("kubernetes.io/tls"),
                json!(2),
                json!("8d")
            ]
        );
    }

    #[test]
    fn string_data_and_defaults() {
        let now = parse_time("2026-01-01T00:00:00Z").unwrap();
        let s = json!({"metadata": {"name": "creds"},
                       "data": {"user": "YWRtaW4="}, "stringData": {"user": "root", "password": "hunter2"}});
        assert_eq!(
            cells(&s, now),
            vec![
                json!("creds"),
                json!("Opaque"),
                json!(2),
                json!("<unknown>")
            ]
        );
        assert_eq!(cells(&json!(null), now)[2], json!(0));
    }
}
