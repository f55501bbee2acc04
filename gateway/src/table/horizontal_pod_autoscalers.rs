//! The horizontal pod autoscaler table (autoscaling/v2): NAME REFERENCE TARGETS MINPODS MAXPODS REPLICAS AGE.
//!
//! kube-apiserver prints an HPA after its defaulting, so unset fields read as the API defaults: `minReplicas` 1
//! and, without metrics, 80% average CPU utilization. An autoscaling/v1 object (`targetCPUUtilizationPercentage`)
//! prints as its conversion to v2 would.

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age_of, items, name, text, Column, AGE, NAME};

/// Kubernetes' HPA columns (`horizontalPodAutoscalerColumnDefinitions`: all typed string, though MAXPODS and
/// REPLICAS cells are integers).
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Reference", "scaleTargetRef points to the target resource to scale, and is used to the pods for which metrics should be collected, as well as to actually change the replica count."),
    Column::new("Targets", "metrics contains the specifications for which to use to calculate the desired replica count (the maximum replica count across all metrics will be used)."),
    Column::new("MinPods", "minReplicas is the lower limit for the number of replicas to which the autoscaler can scale down."),
    Column::new("MaxPods", "maxReplicas is the upper limit for the number of replicas to which the autoscaler can scale up."),
    Column::new("Replicas", "currentReplicas is current number of replicas of pods managed by this autoscaler, as last seen by the autoscaler."),
    AGE,
];

/// How many metrics TARGETS lists before "+ N more...".
const SHOWN: usize = 2;

/// The CPU target autoscaling/v2 defaults to, in percent.
const DEFAULT_CPU_UTILIZATION: i64 = 80;

/// A quantity as Go's `(*Quantity).String()` prints it: `<nil>` when unset.
///
/// Quantities are printed as stored, without Go's canonicalisation (kube-apiserver stores them canonical).
fn quantity(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => "<nil>".into(),
    }
}

/// The spec's metrics, or the single CPU metric an autoscaling/v1 target or the v2 default amounts to.
fn spec_metrics(spec: &Value) -> Vec<Value> {
    let metrics = items(&spec["metrics"]);
    if !metrics.is_empty() {
        return metrics.to_vec();
    }
    let target = spec["targetCPUUtilizationPercentage"]
        .as_i64()
        .unwrap_or(DEFAULT_CPU_UTILIZATION);
    vec![json!({"type": "Resource", "resource": {"name": "cpu",
                "target": {"type": "Utilization", "averageUtilization": target}}})]
}

/// The status's current metrics, or the one an autoscaling/v1 `currentCPUUtilizationPercentage` amounts to.
fn status_metrics(status: &Value) -> Vec<Value> {
    if let Some(metrics) = status["currentMetrics"].as_array() {
        return metrics.clone();
    }
    match status["currentCPUUtilizationPercentage"].as_i64() {
        Some(current) => vec![json!({"type": "Resource", "resource": {"name": "cpu",
                                     "current": {"averageUtilization": current}}})],
        None => Vec::new(),
    }
}

/// One Resource or ContainerResource metric: `cpu: 50%/80%`, `memory: 300Mi/500Mi`.
fn resource_target(source: &Value, status: Option<&Value>) -> String {
    let target = &source["target"];
    let (current, target) = if target["averageValue"].is_null() {
        let current = status
            .and_then(|s| s["current"]["averageUtilization"].as_i64())
            .map_or_else(|| "<unknown>".into(), |u| format!("{u}%"));
        let target = target["averageUtilization"]
            .as_i64()
            .map_or_else(|| "<auto>".into(), |u| format!("{u}%"));
        (current, target)
    } else {
        let current = status.map_or_else(
            || "<unknown>".into(),
            |s| quantity(&s["current"]["averageValue"]),
        );
        (current, quantity(&target["averageValue"]))
    };
    format!("{}: {current}/{target}", text(&source["name"]))
}

/// One Object or External metric: `current/target`, or `current/target (avg)` for an average-value target.
fn value_target(source: &Value, status: Option<&Value>) -> String {
    let target = &source["target"];
    if target["averageValue"].is_null() {
        let current =
            status.map_or_else(|| "<unknown>".into(), |s| quantity(&s["current"]["value"]));
        format!("{current}/{}", quantity(&target["value"]))
    } else {
        let current = status
            .map(|s| &s["current"]["averageValue"])
            .filter(|v| !v.is_null())
            .map_or_else(|| "<unknown>".into(), quantity);
        format!("{current}/{} (avg)", quantity(&target["averageValue"]))
    }
}

/// TARGETS, as `formatHPAMetrics` computes it: each metric against the status at the same index, the first two
/// listed and the rest counted.
pub fn format_metrics(specs: &[Value], statuses: &[Value]) -> String {
    if specs.is_empty() {
        return "<none>".into();
    }
    let mut list: Vec<String> = specs
        .iter()
        .enumerate()
        .map(|(i, spec)| {
            // The status of the same type at the same index, as the Go code pairs them.
            let status = |key: &str| statuses.get(i).map(|s| &s[key]).filter(|s| s.is_object());
            match text(&spec["type"]) {
                "Resource" => resource_target(&spec["resource"], status("resource")),
                "ContainerResource" => {
                    resource_target(&spec["containerResource"], status("containerResource"))
                }
                "Pods" => {
                    let current = status("pods").map_or_else(
                        || "<unknown>".into(),
                        |s| quantity(&s["current"]["averageValue"]),
                    );
                    format!(
                        "{current}/{}",
                        quantity(&spec["pods"]["target"]["averageValue"])
                    )
                }
                "Object" => value_target(&spec["object"], status("object")),
                "External" => value_target(&spec["external"], status("external")),
                _ => "<unknown type>".into(),
            }
        })
        .collect();
    let more = list.len().saturating_sub(SHOWN);
    list.truncate(SHOWN);
    let shown = list.join(", ");
    if more > 0 {
        format!("{shown} + {more} more...")
    } else {
        shown
    }
}

/// The cells of one horizontal pod autoscaler.
pub fn cells(hpa: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let spec = &hpa["spec"];
    let target = &spec["scaleTargetRef"];
    vec![
        json!(name(hpa)),
        json!(format!(
            "{}/{}",
            text(&target["kind"]),
            text(&target["name"])
        )),
        json!(format_metrics(
            &spec_metrics(spec),
            &status_metrics(&hpa["status"])
        )),
        // A string cell in Kubernetes too (it would be `<unset>` for an undefaulted object).
        json!(spec["minReplicas"].as_i64().unwrap_or(1).to_string()),
        json!(spec["maxReplicas"].as_i64().unwrap_or(0)),
        json!(hpa["status"]["currentReplicas"].as_i64().unwrap_or(0)),
        json!(age_of(hpa, now)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    fn now() -> DateTime<Utc> {
        parse_time("2026-01-01T00:10:00Z").unwrap()
    }

    fn cpu(target: i64) -> Value {
        json!({"type": "Resource",
               "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": target}}})
    }

    fn cpu_now(current: i64) -> Value {
        json!({"type": "Resource",
               "resource": {"name": "cpu", "current": {"averageUtilization": current, "averageValue": "250m"}}})
    }

    #[test]
    fn hpa_cells_read_like_kubectl() {
        let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
                         "metadata": {"name": "web", "namespace": "default",
                                      "creationTimestamp": "2026-01-01T00:00:00Z"},
                         "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                                  "minReplicas": 2, "maxReplicas": 10, "metrics": [cpu(80)]},
                         "status": {"currentReplicas": 3, "desiredReplicas": 3, "currentMetrics": [cpu_now(50)]}});
        assert_eq!(
            cells(&hpa, now()),
            vec![
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: 50%/80%"),
                json!("2"),
                json!(10),
                json!(3),
                json!("10m")
            ]
        );
    }

    #[test]
    fn defaults_apply_to_missing_fields() {
        let fresh = json!({"metadata": {"name": "web"},
                           "spec": {"scaleTargetRef": {"kind": "Deployment", "name": "web"}, "maxReplicas": 5}});
        assert_eq!(
            cells(&fresh, now()),
            vec![
                json!("web"),
                json!("Deployment/web"),
                json!("cpu: <unknown>/80%"),
                json!("1"),
                json!(5),
                json!(0),
                json!("<unknown>")
            ]
        );
        let v1 = json!({"apiVersion": "autoscaling/v1",
                        "spec": {"targetCPUUtilizationPercentage": 60, "minReplicas": 0},
                        "status": {"currentCPUUtilizationPercentage": 12}});
        let c = cells(&v1, now());
        assert_eq!((&c[2], &c[3]), (&json!("cpu: 12%/60%"), &json!("0")));
    }

    #[test]
    fn every_metric_type() {
        let specs = [
            json!({"type": "Resource", "resource": {"name": "memory",
                   "target": {"type": "AverageValue", "averageValue": "500Mi"}}}),
            json!({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                   "target": {"type": "Utilization", "averageUtilization": 70}}}),
            json!({"type": "Pods", "pods": {"metric": {"name": "packets-per-second"},
                   "target": {"type": "AverageValue", "averageValue": "1k"}}}),
            json!({"type": "Object", "object": {"metric": {"name": "requests-per-second"},
                   "describedObject": {"apiVersion": "networking.k8s.io/v1", "kind": "Ingress", "name": "main"},
                   "target": {"type": "Value", "value": "10k"}}}),
            json!({"type": "External", "external": {"metric": {"name": "queue_messages_ready"},
                   "target": {"type": "AverageValue", "averageValue": 30}}}),
            json!({"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}}),
            json!({"type": "Mystery"}),
        ];
        let statuses = [
            json!({"type": "Resource", "resource": {"name": "memory", "current": {"averageValue": "300Mi"}}}),
            json!({"type": "ContainerResource", "containerResource": {"name": "cpu", "container": "app",
                   "current": {"averageUtilization": 35}}}),
            json!({"type": "Pods", "pods": {"current": {"averageValue": "800"}}}),
            json!({"type": "Object", "object": {"current": {"value": "12k"}}}),
            json!({"type": "External", "external": {"current": {"averageValue": "6262500m"}}}),
        ];
        let one = |i: usize| format_metrics(&specs[i..=i], statuses.get(i..=i).unwrap_or(&[]));
        assert_eq!(one(0), "memory: 300Mi/500Mi");
        assert_eq!(one(1), "cpu: 35%/70%");
        assert_eq!(one(2), "800/1k");
        assert_eq!(one(3), "12k/10k");
        assert_eq!(one(4), "6262500m/30 (avg)");
        assert_eq!(one(5), "cpu: <unknown>/<auto>");
        assert_eq!(one(6), "<unknown type>");
        // Without statuses every current value is unknown.
        let unknown: Vec<String> = (0..5).map(|i| format_metrics(&specs[i..=i], &[])).collect();
        assert_eq!(
            unknown,
            [
                "memory: <unknown>/500Mi",
                "cpu: <unknown>/70%",
                "<unknown>/1k",
                "<unknown>/10k",
                "<unknown>/30 (avg)"
            ]
        );
        // Statuses pair by index: a status of another type at that index leaves the value unknown.
        assert_eq!(
            format_metrics(&specs[2..=2], &statuses[0..=0]),
            "<unknown>/1k"
        );
    }

    #[test]
    fn more_than_two_metrics_are_counted() {
        let specs = [cpu(80), cpu(70), cpu(60), cpu(50)];
        let statuses = [cpu_now(10), cpu_now(20)];
        assert_eq!(
            format_metrics(&specs[..2], &statuses),
            "cpu: 10%/80%, cpu: 20%/70%"
        );
        assert_eq!(
            format_metrics(&specs, &statuses),
            "cpu: 10%/80%, cpu: 20%/70% + 2 more..."
        );
        assert_eq!(format_metrics(&[], &[]), "<none>");
    }
}
