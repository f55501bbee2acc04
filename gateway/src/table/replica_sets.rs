//! The replica set table: NAME DESIRED CURRENT READY AGE (+ CONTAINERS IMAGES SELECTOR).

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, container_cells, name, or_none, selector_string, Column, AGE, NAME};

/// Kubernetes' replica set columns (`replicaSetColumnDefinitions`).
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Desired", "Replicas is the number of desired replicas.").integer(),
    Column::new(
        "Current",
        "Replicas is the most recently observed number of replicas.",
    )
    .integer(),
    Column::new(
        "Ready",
        "readyReplicas is the number of pods targeted by this ReplicaSet with a Ready Condition.",
    )
    .integer(),
    AGE,
    Column::new("Containers", "Names of each container in the template.").wide(),
    Column::new(
        "Images",
        "Images referenced by each container in the template.",
    )
    .wide(),
    Column::new(
        "Selector",
        "Selector is a label query over pods that should match the replica count.",
    )
    .wide(),
];

/// The cells of one replica set.
pub fn cells(rs: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let status = &rs["status"];
    let (containers, images) = container_cells(&rs["spec"]["template"]["spec"]);
    vec![
        json!(name(rs)),
        // apps/v1 defaults spec.replicas to 1, so kube-apiserver never prints a ReplicaSet without it.
        json!(rs["spec"]["replicas"].as_i64().unwrap_or(1)),
        json!(status["replicas"].as_i64().unwrap_or(0)),
        json!(status["readyReplicas"].as_i64().unwrap_or(0)),
        json!(age_of(rs, now)),
        json!(containers),
        json!(images),
        json!(or_none(selector_string(&rs["spec"]["selector"]))),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    #[test]
    fn replica_set_cells_read_like_kubectl() {
        let rs = json!({"apiVersion": "apps/v1", "kind": "ReplicaSet",
                        "metadata": {"name": "web-7d4b9c", "namespace": "default",
                                     "creationTimestamp": "2026-01-01T00:00:00Z",
                                     "labels": {"app": "web", "pod-template-hash": "7d4b9c"}},
                        "spec": {"replicas": 3,
                                 "selector": {"matchLabels": {"pod-template-hash": "7d4b9c", "app": "web"}},
                                 "template": {"metadata": {"labels": {"app": "web"}},
                                              "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27"},
                                                                      {"name": "sidecar", "image": "busybox:1.36"}]}}},
                        "status": {"replicas": 3, "readyReplicas": 2, "availableReplicas": 2}});
        let now = parse_time("2026-01-01T00:45:00Z").unwrap();
        assert_eq!(
            cells(&rs, now),
            vec![
                json!("web-7d4b9c"),
                json!(3),
                json!(3),
                json!(2),
                json!("45m"),
                json!("nginx,sidecar"),
                json!("nginx:1.27,busybox:1.36"),
                json!("app=web,pod-template-hash=7d4b9c")
            ]
        );
    }

    #[test]
    fn missing_fields_read_as_defaults() {
        let now = parse_time("2026-01-01T00:00:00Z").unwrap();
        let c = cells(&json!({"metadata": {"name": "bare"}}), now);
        assert_eq!(
            c,
            vec![
                json!("bare"),
                json!(1),
                json!(0),
                json!(0),
                json!("<unknown>"),
                json!(""),
                json!(""),
                json!("<none>")
            ]
        );
        // Scaled to zero is not the default.
        let zero = cells(&json!({"spec": {"replicas": 0}}), now);
        assert_eq!(zero[1], json!(0));
    }
}
