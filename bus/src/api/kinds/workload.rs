//! ReplicaSet and HorizontalPodAutoscaler (autoscaling/v2): defaults and validation.

use k8s_openapi::api::apps::v1::ReplicaSet;
use k8s_openapi::api::autoscaling::v2::{
    HPAScalingPolicy, HPAScalingRules, HorizontalPodAutoscaler, MetricSpec, MetricTarget,
    ResourceMetricSource,
};

use super::non_negative;
use crate::api::validate::{self, Errors};

/// Defaults (replicas 1, the pod template's) and validates a ReplicaSet; its selector cannot change.
pub(crate) fn replica_set(rs: &mut ReplicaSet, old: Option<&ReplicaSet>, errors: &mut Errors) {
    let Some(spec) = rs.spec.as_mut() else {
        errors.required("spec", "");
        return;
    };
    spec.replicas.get_or_insert(1);
    if let Some(pod) = spec.template.as_mut().and_then(|t| t.spec.as_mut()) {
        crate::api::admission::default_pod_spec(pod);
    }
    non_negative(errors, "spec.replicas", spec.replicas);
    non_negative(errors, "spec.minReadySeconds", spec.min_ready_seconds);
    let selector_empty = validate::selector_is_empty(&spec.selector);
    if selector_empty {
        errors.invalid(
            "spec.selector",
            "",
            "empty selector is invalid for replicaset",
        );
    } else {
        validate::labels(
            errors,
            "spec.selector.matchLabels",
            spec.selector.match_labels.as_ref(),
        );
    }
    match &spec.template {
        Some(template) => validate::template(
            errors,
            "spec.template",
            template,
            (!selector_empty).then_some(&spec.selector),
        ),
        None if spec.replicas.unwrap_or(0) > 0 => errors.required("spec.template", ""),
        None => {}
    }
    if let Some(before) = old.and_then(|o| o.spec.as_ref()).map(|s| &s.selector) {
        if *before != spec.selector {
            errors.invalid("spec.selector", "", "field is immutable");
        }
    }
    if old.is_none() {
        rs.status = None;
    }
}

fn default_rules(up: bool) -> HPAScalingRules {
    let policy = |type_: &str, value| HPAScalingPolicy {
        type_: type_.into(),
        value,
        period_seconds: 15,
    };
    HPAScalingRules {
        // Scale up at once by 100% or 4 pods a quarter minute; scale down by up to 100% after 5 minutes of
        // stability (autoscaling/v2 defaults).
        stabilization_window_seconds: Some(if up { 0 } else { 300 }),
        select_policy: Some("Max".into()),
        policies: Some(if up {
            vec![policy("Percent", 100), policy("Pods", 4)]
        } else {
            vec![policy("Percent", 100)]
        }),
    }
}

fn fill_rules(rules: &mut Option<HPAScalingRules>, up: bool) {
    let defaults = default_rules(up);
    let rules = rules.get_or_insert_with(|| defaults.clone());
    if rules.stabilization_window_seconds.is_none() {
        rules.stabilization_window_seconds = defaults.stabilization_window_seconds;
    }
    if rules.select_policy.is_none() {
        rules.select_policy = defaults.select_policy;
    }
    if rules.policies.as_ref().is_none_or(Vec::is_empty) {
        rules.policies = defaults.policies;
    }
}

fn check_target(errors: &mut Errors, field: &str, target: &MetricTarget) {
    match target.type_.as_str() {
        "Utilization" => match target.average_utilization {
            Some(u) if u > 0 => {}
            Some(u) => errors.invalid(
                &format!("{field}.averageUtilization"),
                u,
                "must be greater than 0",
            ),
            None => errors.required(
                &format!("{field}.averageUtilization"),
                "must set averageUtilization when type is Utilization",
            ),
        },
        "AverageValue" => match &target.average_value {
            Some(q) => validate::quantity(errors, &format!("{field}.averageValue"), &q.0),
            None => errors.required(
                &format!("{field}.averageValue"),
                "must set averageValue when type is AverageValue",
            ),
        },
        "Value" => match &target.value {
            Some(q) => validate::quantity(errors, &format!("{field}.value"), &q.0),
            None => errors.required(
                &format!("{field}.value"),
                "must set value when type is Value",
            ),
        },
        "" => errors.required(&format!("{field}.type"), ""),
        other => errors.not_supported(
            &format!("{field}.type"),
            other,
            &["AverageValue", "Utilization", "Value"],
        ),
    }
}

fn check_metric(errors: &mut Errors, field: &str, metric: &MetricSpec) {
    const TYPES: &[&str] = &[
        "ContainerResource",
        "External",
        "Object",
        "Pods",
        "Resource",
    ];
    match metric.type_.as_str() {
        "Resource" => match &metric.resource {
            Some(r) => {
                if r.name.is_empty() {
                    errors.required(&format!("{field}.resource.name"), "");
                }
                check_target(errors, &format!("{field}.resource.target"), &r.target);
            }
            None => errors.required(
                &format!("{field}.resource"),
                "must populate information for the given metric source",
            ),
        },
        "ContainerResource" => match &metric.container_resource {
            Some(r) => {
                if r.container.is_empty() {
                    errors.required(&format!("{field}.containerResource.container"), "");
                }
                check_target(
                    errors,
                    &format!("{field}.containerResource.target"),
                    &r.target,
                );
            }
            None => errors.required(
                &format!("{field}.containerResource"),
                "must populate information for the given metric source",
            ),
        },
        "Pods" => match &metric.pods {
            Some(p) => check_target(errors, &format!("{field}.pods.target"), &p.target),
            None => errors.required(&format!("{field}.pods"), ""),
        },
        "Object" => match &metric.object {
            Some(o) => check_target(errors, &format!("{field}.object.target"), &o.target),
            None => errors.required(&format!("{field}.object"), ""),
        },
        "External" => match &metric.external {
            Some(e) => check_target(errors, &format!("{field}.external.target"), &e.target),
            None => errors.required(&format!("{field}.external"), ""),
        },
        "" => errors.required(&format!("{field}.type"), ""),
        other => errors.not_supported(&format!("{field}.type"), other, TYPES),
    }
}

/// Defaults (minReplicas 1, CPU at 80% when no metric is given, the scaling behavior's unset rules) and
/// validates a HorizontalPodAutoscaler.
pub(crate) fn horizontal_pod_autoscaler(hpa: &mut HorizontalPodAutoscaler, errors: &mut Errors) {
    let Some(spec) = hpa.spec.as_mut() else {
        errors.required("spec", "");
        return;
    };
    let min = *spec.min_replicas.get_or_insert(1);
    if spec.metrics.as_ref().is_none_or(Vec::is_empty) {
        spec.metrics = Some(vec![MetricSpec {
            type_: "Resource".into(),
            resource: Some(ResourceMetricSource {
                name: "cpu".into(),
                target: MetricTarget {
                    type_: "Utilization".into(),
                    average_utilization: Some(80),
                    ..Default::default()
                },
            }),
            ..Default::default()
        }]);
    }
    if let Some(behavior) = spec.behavior.as_mut() {
        fill_rules(&mut behavior.scale_up, true);
        fill_rules(&mut behavior.scale_down, false);
    }
    let target = &spec.scale_target_ref;
    if target.kind.is_empty() {
        errors.required("spec.scaleTargetRef.kind", "");
    }
    if target.name.is_empty() {
        errors.required("spec.scaleTargetRef.name", "");
    } else if !validate::is_dns_subdomain(&target.name) {
        errors.invalid(
            "spec.scaleTargetRef.name",
            format!("\"{}\"", target.name),
            "must be a valid object name",
        );
    }
    if min < 1 {
        errors.invalid(
            "spec.minReplicas",
            min,
            "must be greater than or equal to 1",
        );
    }
    if spec.max_replicas < 1 {
        errors.invalid(
            "spec.maxReplicas",
            spec.max_replicas,
            "must be greater than 0",
        );
    } else if spec.max_replicas < min {
        errors.invalid(
            "spec.maxReplicas",
            spec.max_replicas,
            "must be greater than or equal to `minReplicas`",
        );
    }
    for (i, metric) in spec.metrics.iter().flatten().enumerate() {
        check_metric(errors, &format!("spec.metrics[{i}]"), metric);
    }
    for (name, rules) in spec
        .behavior
        .iter()
        .flat_map(|b| [("scaleUp", &b.scale_up), ("scaleDown", &b.scale_down)])
    {
        let Some(rules) = rules else { continue };
        let field = format!("spec.behavior.{name}");
        if let Some(w) = rules.stabilization_window_seconds {
            if !(0..=3600).contains(&w) {
                errors.invalid(
                    &format!("{field}.stabilizationWindowSeconds"),
                    w,
                    "must be less than or equal to 3600 and greater than or equal to 0",
                );
            }
        }
        if let Some(p) = &rules.select_policy {
            if !["Disabled", "Max", "Min"].contains(&p.as_str()) {
                errors.not_supported(
                    &format!("{field}.selectPolicy"),
                    p,
                    &["Disabled", "Max", "Min"],
                );
            }
        }
        for (j, policy) in rules.policies.iter().flatten().enumerate() {
            let f = format!("{field}.policies[{j}]");
            if !["Pods", "Percent"].contains(&policy.type_.as_str()) {
                errors.not_supported(&format!("{f}.type"), &policy.type_, &["Percent", "Pods"]);
            }
            if policy.value <= 0 {
                errors.invalid(
                    &format!("{f}.value"),
                    policy.value,
                    "must be greater than zero",
                );
            }
            if !(1..=1800).contains(&policy.period_seconds) {
                errors.invalid(
                    &format!("{f}.periodSeconds"),
                    policy.period_seconds,
                    "must be greater than zero and less than or equal to 1800",
                );
            }
        }
    }
    hpa.status.get_or_insert_with(Default::default);
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn admit(value: serde_json::Value) -> (HorizontalPodAutoscaler, Vec<String>) {
        let mut hpa: HorizontalPodAutoscaler = serde_json::from_value(value).unwrap();
        let mut errors = Errors::default();
        horizontal_pod_autoscaler(&mut hpa, &mut errors);
        (hpa, errors.0.into_iter().map(|c| c.field).collect())
    }

    #[test]
    fn hpa_defaults_cpu_at_80_percent_and_min_one() {
        let (hpa, errors) = admit(json!({"metadata": {"name": "web"}, "spec": {
            "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
            "maxReplicas": 5,
            "behavior": {"scaleDown": {"stabilizationWindowSeconds": 60}}
        }}));
        assert!(errors.is_empty(), "{errors:?}");
        let spec = hpa.spec.unwrap();
        assert_eq!(spec.min_replicas, Some(1));
        let metric = &spec.metrics.unwrap()[0];
        assert_eq!(metric.resource.as_ref().unwrap().name, "cpu");
        assert_eq!(
            metric.resource.as_ref().unwrap().target.average_utilization,
            Some(80)
        );
        let behavior = spec.behavior.unwrap();
        let down = behavior.scale_down.unwrap();
        assert_eq!(
            down.stabilization_window_seconds,
            Some(60),
            "set values are kept"
        );
        assert_eq!(down.select_policy.as_deref(), Some("Max"));
        assert_eq!(behavior.scale_up.unwrap().policies.unwrap().len(), 2);
    }

    #[test]
    fn hpa_bounds_and_metrics_are_checked() {
        let (_, errors) = admit(json!({"metadata": {"name": "web"}, "spec": {
            "scaleTargetRef": {"kind": "Deployment", "name": ""},
            "minReplicas": 3, "maxReplicas": 2,
            "metrics": [{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization"}}},
                        {"type": "Bogus"}]
        }}));
        assert_eq!(
            errors,
            vec![
                "spec.scaleTargetRef.name",
                "spec.maxReplicas",
                "spec.metrics[0].resource.target.averageUtilization",
                "spec.metrics[1].type"
            ]
        );
    }

    #[test]
    fn replica_set_selector_must_match_and_stay() {
        let value = json!({"metadata": {"name": "rs"}, "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {"metadata": {"labels": {"app": "other"}},
                         "spec": {"containers": [{"name": "c", "image": "busybox"}]}}
        }});
        let mut rs: ReplicaSet = serde_json::from_value(value).unwrap();
        let mut errors = Errors::default();
        replica_set(&mut rs, None, &mut errors);
        let fields: Vec<&str> = errors.0.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(fields, vec!["spec.template.metadata.labels"]);
        assert_eq!(rs.spec.as_ref().unwrap().replicas, Some(1));
    }
}
