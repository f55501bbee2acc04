//! The deployment table: NAME READY UP-TO-DATE AVAILABLE AGE (+ CONTAINERS IMAGES SELECTOR).

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, container_cells, name, or_none, selector_string, Column, AGE, NAME};

/// Kubernetes' deployment columns.
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Ready", "Number of the pod with ready state"),
    Column::new("Up-to-date", "Total number of non-terminated pods targeted by this deployment that have the desired template spec."),
    Column::new("Available", "Total number of available pods (ready for at least minReadySeconds) targeted by this deployment."),
    AGE,
    Column::new("Containers", "Names of each container in the template.").wide(),
    Column::new("Images", "Images referenced by each container in the template.").wide(),
    Column::new("Selector", "Label selector for pods. Existing ReplicaSets whose pods are selected by this will be the ones affected by this deployment.").wide(),
];

/// The cells of one deployment.
pub fn cells(d: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let int = |v: &Value| v.as_i64().unwrap_or(0);
    let status = &d["status"];
    let (containers, images) = container_cells(&d["spec"]["template"]["spec"]);
    let selector = selector_string(&d["spec"]["selector"]);
    vec![
        json!(name(d)),
        json!(format!(
            "{}/{}",
            int(&status["readyReplicas"]),
            int(&d["spec"]["replicas"])
        )),
        json!(int(&status["updatedReplicas"])),
        json!(int(&status["availableReplicas"])),
        json!(age_of(d, now)),
        json!(containers),
        json!(images),
        json!(or_none(selector)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    #[test]
    fn deployment_cells_read_like_kubectl() {
        let d = json!({"metadata": {"name": "web", "creationTimestamp": "2026-01-01T00:00:00Z"},
                       "spec": {"replicas": 3, "selector": {"matchLabels": {"app": "web"},
                                  "matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                                       {"key": "canary", "operator": "DoesNotExist"}]},
                                "template": {"spec": {"containers": [{"name": "nginx", "image": "nginx:1.26"},
                                                                      {"name": "log", "image": "busybox"}]}}},
                       "status": {"readyReplicas": 2, "updatedReplicas": 3, "availableReplicas": 2}});
        let now = parse_time("2026-01-03T00:00:00Z").unwrap();
        assert_eq!(
            cells(&d, now),
            vec![
                json!("web"),
                json!("2/3"),
                json!(3),
                json!(2),
                json!("2d"),
                json!("nginx,log"),
                json!("nginx:1.26,busybox"),
                json!("app=web,!canary,tier in (a,b)")
            ]
        );
        let bare = cells(&json!({"metadata": {"name": "x"}}), now);
        assert_eq!(bare[1], json!("0/0"));
        assert_eq!(bare[7], json!("<none>"));
    }
}
