//! The HPA's decisions for given pods and usage: exact replicas, conditions, status and events.

use std::collections::HashMap;
use std::time::Duration;

use k8s_openapi::api::autoscaling::v2::HorizontalPodAutoscaler;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::json;

use super::*;

fn at(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

/// A running, ready pod started long ago, with a CPU request (and a memory request of 100Mi).
fn pod(name: &str, cpu_request: Option<&str>) -> Pod {
    let mut requests = json!({"memory": "100Mi"});
    if let Some(cpu) = cpu_request {
        requests["cpu"] = json!(cpu);
    }
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "demo", "uid": format!("uid-{name}")},
        "spec": {"nodeName": "n1", "containers": [{"name": "main", "image": "x", "resources": {"requests": requests}}]},
        "status": {
            "phase": "Running",
            "startTime": "2027-01-15T07:00:00Z",
            "conditions": [{"type": "Ready", "status": "True", "lastTransitionTime": "2027-01-15T07:00:01Z"}],
        },
    }))
    .unwrap()
}

fn hpa(
    min: i32,
    max: i32,
    metrics: serde_json::Value,
    behavior: serde_json::Value,
) -> HorizontalPodAutoscaler {
    let mut spec = json!({
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
        "minReplicas": min, "maxReplicas": max, "metrics": metrics,
    });
    if !behavior.is_null() {
        spec["behavior"] = behavior;
    }
    serde_json::from_value(json!({
        "metadata": {"name": "web", "namespace": "demo", "uid": "hpa-uid", "generation": 1},
        "spec": spec,
    }))
    .unwrap()
}

fn cpu_target(percent: i32) -> serde_json::Value {
    json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": percent}}}])
}

fn usage(cpu: &[(&str, i64)], now: DateTime<Utc>) -> HashMap<String, Usage> {
    cpu.iter()
        .map(|(name, milli)| {
            let u = Usage {
                cpu_milli: *milli,
                memory_bytes: 50 * 1024 * 1024,
                timestamp: now,
                window: Duration::from_secs(5),
            };
            (name.to_string(), u)
        })
        .collect()
}

fn condition<'a>(d: &'a Decision, type_: &str) -> (&'a str, &'a str) {
    let c = d
        .status
        .conditions
        .iter()
        .flatten()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition"));
    (c.status.as_str(), c.reason.as_deref().unwrap_or_default())
}

fn reasons(d: &Decision) -> Vec<&'static str> {
    d.events.iter().map(|e| e.reason).collect()
}

#[test]
fn busy_pods_scale_up_by_usage_over_target_within_the_rate_limit() {
    let now = at(1000);
    let pods = [pod("a", Some("100m")), pod("b", Some("100m"))];
    let refs: Vec<&Pod> = pods.iter().collect();
    // 170% of the request against a 50% target: ceil(2 * 340 / 100) = 7 wanted.
    let u = usage(&[("a", 170), ("b", 170)], now);
    let mut history = History::default();
    let d = reconcile(
        &hpa(1, 10, cpu_target(50), json!(null)),
        Ok(Scale { replicas: 2 }),
        &refs,
        &u,
        &mut history,
        now,
    );
    // The default scale-up policy allows max(100% -> 4, +4 pods -> 6) per 15 s.
    assert_eq!(
        d.rescale,
        Some(Rescale {
            from: 2,
            to: 6,
            reason: "cpu resource utilization (percentage of request) above target".into()
        })
    );
    assert_eq!(d.status.desired_replicas, 6);
    assert_eq!(d.status.current_replicas, Some(2));
    assert_eq!(d.status.last_scale_time, Some(Time(now)));
    let current = &d.status.current_metrics.as_ref().unwrap()[0];
    let resource = current.resource.as_ref().unwrap();
    assert_eq!(resource.current.average_utilization, Some(170));
    assert_eq!(
        resource.current.average_value,
        Some(Quantity("170m".into()))
    );
    assert_eq!(condition(&d, "AbleToScale"), ("True", "SucceededRescale"));
    assert_eq!(condition(&d, "ScalingActive"), ("True", "ValidMetricFound"));
    assert_eq!(condition(&d, "ScalingLimited"), ("True", "ScaleUpLimit"));
    assert_eq!(reasons(&d), vec!["SuccessfulRescale"]);
    assert_eq!(
        d.events[0].message,
        "New size: 6; reason: cpu resource utilization (percentage of request) above target"
    );

    // Within the same period the policy counts the 4 added: start 2, so at most 6 still.
    history.record_scale(None, 2, 6, now);
    let six: Vec<Pod> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|n| pod(n, Some("100m")))
        .collect();
    let refs: Vec<&Pod> = six.iter().collect();
    let u = usage(
        &[
            ("a", 100),
            ("b", 100),
            ("c", 100),
            ("d", 100),
            ("e", 100),
            ("f", 100),
        ],
        now,
    );
    let d = reconcile(
        &hpa(1, 10, cpu_target(50), json!(null)),
        Ok(Scale { replicas: 6 }),
        &refs,
        &u,
        &mut history,
        at(1005),
    );
    assert_eq!(d.rescale, None);
    assert_eq!(d.status.desired_replicas, 6);
    // After the period, max caps it: 12 wanted, 10 allowed.
    let d = reconcile(
        &hpa(1, 10, cpu_target(50), json!(null)),
        Ok(Scale { replicas: 6 }),
        &refs,
        &u,
        &mut history,
        at(1030),
    );
    assert_eq!(d.rescale.as_ref().map(|r| r.to), Some(10));
    assert_eq!(condition(&d, "ScalingLimited"), ("True", "TooManyReplicas"));
}

#[test]
fn usage_within_the_tolerance_changes_nothing() {
    let now = at(1000);
    let pods = [pod("a", Some("100m")), pod("b", Some("100m"))];
    let refs: Vec<&Pod> = pods.iter().collect();
    for milli in [46, 54] {
        let mut history = History::default();
        let u = usage(&[("a", milli), ("b", milli)], now);
        let d = reconcile(
            &hpa(1, 10, cpu_target(50), json!(null)),
            Ok(Scale { replicas: 2 }),
            &refs,
            &u,
            &mut history,
            now,
        );
        assert_eq!(d.rescale, None, "{milli}m");
        assert_eq!(d.status.desired_replicas, 2);
        assert_eq!(condition(&d, "AbleToScale"), ("True", "ReadyForNewScale"));
        assert_eq!(
            condition(&d, "ScalingLimited"),
            ("False", "DesiredWithinRange")
        );
        assert!(d.events.is_empty());
    }
    // Just outside: 56% of 50% is a 12% change.
    let mut history = History::default();
    let u = usage(&[("a", 56), ("b", 56)], now);
    let d = reconcile(
        &hpa(1, 10, cpu_target(50), json!(null)),
        Ok(Scale { replicas: 2 }),
        &refs,
        &u,
        &mut history,
        now,
    );
    assert_eq!(d.rescale.as_ref().map(|r| r.to), Some(3));
}

#[test]
fn scale_down_waits_out_the_stabilization_window() {
    let behavior = json!({"scaleDown": {"stabilizationWindowSeconds": 60}});
    let h = hpa(1, 10, cpu_target(50), behavior);
    let pods: Vec<Pod> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| pod(n, Some("100m")))
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let idle = |now| usage(&[("a", 5), ("b", 5), ("c", 5), ("d", 5)], now);
    let mut history = History::default();
    // The first sync remembers 4 as a recommendation; 1 is wanted but 4 holds within 60 s.
    let d = reconcile(
        &h,
        Ok(Scale { replicas: 4 }),
        &refs,
        &idle(at(0)),
        &mut history,
        at(0),
    );
    assert_eq!(d.rescale, None);
    assert_eq!(
        condition(&d, "AbleToScale"),
        ("True", "ScaleDownStabilized")
    );
    let d = reconcile(
        &h,
        Ok(Scale { replicas: 4 }),
        &refs,
        &idle(at(30)),
        &mut history,
        at(30),
    );
    assert_eq!(d.rescale, None);
    // Past the window only the low recommendations are left.
    let d = reconcile(
        &h,
        Ok(Scale { replicas: 4 }),
        &refs,
        &idle(at(61)),
        &mut history,
        at(61),
    );
    assert_eq!(
        d.rescale,
        Some(Rescale {
            from: 4,
            to: 1,
            reason: "All metrics below target".into()
        })
    );
    assert_eq!(
        condition(&d, "ScalingLimited"),
        ("False", "DesiredWithinRange")
    );
}

#[test]
fn scale_down_stops_at_min_replicas() {
    let behavior = json!({"scaleDown": {"stabilizationWindowSeconds": 0}});
    let h = hpa(2, 10, cpu_target(50), behavior);
    let pods: Vec<Pod> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| pod(n, Some("100m")))
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    let mut history = History::default();
    let u = usage(&[("a", 0), ("b", 0), ("c", 0), ("d", 0)], at(0));
    let d = reconcile(
        &h,
        Ok(Scale { replicas: 4 }),
        &refs,
        &u,
        &mut history,
        at(0),
    );
    assert_eq!(d.rescale.as_ref().map(|r| r.to), Some(2));
    assert_eq!(condition(&d, "ScalingLimited"), ("True", "TooFewReplicas"));
}

#[test]
fn a_target_outside_min_and_max_is_brought_back_without_metrics() {
    let h = hpa(2, 3, cpu_target(50), json!(null));
    let mut history = History::default();
    let d = reconcile(
        &h,
        Ok(Scale { replicas: 7 }),
        &[],
        &HashMap::new(),
        &mut history,
        at(0),
    );
    assert_eq!(
        d.rescale,
        Some(Rescale {
            from: 7,
            to: 3,
            reason: "Current number of replicas above Spec.MaxReplicas".into()
        })
    );
    let d = reconcile(
        &h,
        Ok(Scale { replicas: 1 }),
        &[],
        &HashMap::new(),
        &mut history,
        at(0),
    );
    assert_eq!(d.rescale.as_ref().map(|r| r.to), Some(2));
    // A target scaled to zero by hand disables autoscaling.
    let d = reconcile(
        &h,
        Ok(Scale { replicas: 0 }),
        &[],
        &HashMap::new(),
        &mut history,
        at(0),
    );
    assert_eq!(d.rescale, None);
    assert_eq!(condition(&d, "ScalingActive"), ("False", "ScalingDisabled"));
}

#[test]
fn pods_without_a_request_make_scaling_inactive() {
    let pods = [pod("a", Some("100m")), pod("b", None)];
    let refs: Vec<&Pod> = pods.iter().collect();
    let u = usage(&[("a", 500), ("b", 500)], at(0));
    let mut history = History::default();
    let d = reconcile(
        &hpa(1, 10, cpu_target(50), json!(null)),
        Ok(Scale { replicas: 2 }),
        &refs,
        &u,
        &mut history,
        at(0),
    );
    assert_eq!(d.rescale, None);
    assert_eq!(
        condition(&d, "ScalingActive"),
        ("False", "FailedGetResourceMetric")
    );
    let message =
        "failed to get cpu utilization: missing request for cpu in container main of Pod b";
    let c = d
        .status
        .conditions
        .as_ref()
        .unwrap()
        .iter()
        .find(|c| c.type_ == "ScalingActive")
        .unwrap();
    assert_eq!(
        c.message.as_deref(),
        Some(format!("the HPA was unable to compute the replica count: {message}").as_str())
    );
    assert_eq!(
        reasons(&d),
        vec!["FailedGetResourceMetric", "FailedComputeMetricsReplicas"]
    );
    assert_eq!(d.events[0].message, message);
    assert_eq!(d.events[0].type_, EventType::Warning);
    assert_eq!(d.status.current_replicas, Some(2));
    assert_eq!(d.status.current_metrics, None);
}

#[test]
fn no_metrics_at_all_is_a_failed_metric() {
    let pods = [pod("a", Some("100m"))];
    let refs: Vec<&Pod> = pods.iter().collect();
    let mut history = History::default();
    let d = reconcile(
        &hpa(1, 10, cpu_target(50), json!(null)),
        Ok(Scale { replicas: 1 }),
        &refs,
        &HashMap::new(),
        &mut history,
        at(0),
    );
    assert_eq!(d.rescale, None);
    assert_eq!(
        condition(&d, "ScalingActive"),
        ("False", "FailedGetResourceMetric")
    );
    assert_eq!(
        d.events[0].message,
        "failed to get cpu utilization: did not receive metrics for any ready pods"
    );
    let d = reconcile(
        &hpa(1, 10, cpu_target(50), json!(null)),
        Ok(Scale { replicas: 1 }),
        &[],
        &HashMap::new(),
        &mut history,
        at(0),
    );
    assert_eq!(
        d.events[0].message,
        "failed to get cpu utilization: no pods returned by selector while calculating replica count"
    );
}

#[test]
fn unmeasured_pods_count_at_their_request_when_scaling_down() {
    let behavior = json!({"scaleDown": {"stabilizationWindowSeconds": 0}});
    let h = hpa(1, 10, cpu_target(50), behavior);
    let pods: Vec<Pod> = ["a", "b", "c", "d"]
        .iter()
        .map(|n| pod(n, Some("100m")))
        .collect();
    let refs: Vec<&Pod> = pods.iter().collect();
    // Two measured at 10%, two unmeasured: taken at 100% the average is 55%, above the target, so no scale-down.
    let u = usage(&[("a", 10), ("b", 10)], at(0));
    let mut history = History::default();
    let d = reconcile(
        &h,
        Ok(Scale { replicas: 4 }),
        &refs,
        &u,
        &mut history,
        at(0),
    );
    assert_eq!(d.rescale, None);
    // Measured at 20%: 4 pods averaging 20% of a 50% target would need 2; with the unmeasured at 100%, 60% ->
    // the direction flips, so nothing changes either. At 0%: (0+0+100+100)/4 = 50% -> within tolerance.
    // Only a clear case scales: one unmeasured of four, the others idle: (0+0+0+100)/4 = 25% -> ceil(0.5*4) = 2.
    let u = usage(&[("a", 0), ("b", 0), ("c", 0)], at(0));
    let d = reconcile(
        &h,
        Ok(Scale { replicas: 4 }),
        &refs,
        &u,
        &mut history,
        at(0),
    );
    assert_eq!(d.rescale.as_ref().map(|r| r.to), Some(2));
}

#[test]
fn unready_pods_count_as_idle_when_scaling_up() {
    let now = at(0);
    let mut pods: Vec<Pod> = ["a", "b"].iter().map(|n| pod(n, Some("100m"))).collect();
    let mut pending = pod("c", Some("100m"));
    pending.status.as_mut().unwrap().phase = Some("Pending".into());
    pods.push(pending);
    let refs: Vec<&Pod> = pods.iter().collect();
    // Two ready at 100% of a 50% target: 4 wanted from 2 ready; with the pending one at 0: 200/3 = 66% -> ceil(1.33 * 3) = 4.
    let u = usage(&[("a", 100), ("b", 100)], now);
    let mut history = History::default();
    let d = reconcile(
        &hpa(1, 10, cpu_target(50), json!(null)),
        Ok(Scale { replicas: 3 }),
        &refs,
        &u,
        &mut history,
        now,
    );
    assert_eq!(d.rescale.as_ref().map(|r| r.to), Some(4));
}

#[test]
fn memory_average_value_targets_compare_bytes_per_pod() {
    let metrics = json!([{"type": "Resource", "resource": {"name": "memory", "target": {"type": "AverageValue", "averageValue": "25Mi"}}}]);
    let pods = [pod("a", None), pod("b", None)];
    let refs: Vec<&Pod> = pods.iter().collect();
    // 50Mi each against 25Mi: ratio 2 -> 4 pods; no requests needed for AverageValue.
    let u = usage(&[("a", 0), ("b", 0)], at(0));
    let mut history = History::default();
    let d = reconcile(
        &hpa(1, 10, metrics, json!(null)),
        Ok(Scale { replicas: 2 }),
        &refs,
        &u,
        &mut history,
        at(0),
    );
    assert_eq!(d.rescale.as_ref().map(|r| r.to), Some(4));
    let current = &d.status.current_metrics.as_ref().unwrap()[0];
    let resource = current.resource.as_ref().unwrap();
    assert_eq!(resource.name, "memory");
    assert_eq!(resource.current.average_utilization, None);
    assert_eq!(
        resource.current.average_value,
        Some(Quantity("52428800".into()))
    );
}

#[test]
fn an_unreadable_target_is_reported_and_a_failed_write_undone() {
    let mut history = History::default();
    let h = hpa(1, 10, cpu_target(50), json!(null));
    let d = reconcile(
        &h,
        Err("deployments.apps \"web\" not found".into()),
        &[],
        &HashMap::new(),
        &mut history,
        at(0),
    );
    assert_eq!(condition(&d, "AbleToScale"), ("False", "FailedGetScale"));
    assert_eq!(reasons(&d), vec!["FailedGetScale"]);

    let d = reconcile(
        &h,
        Ok(Scale { replicas: 12 }),
        &[],
        &HashMap::new(),
        &mut history,
        at(0),
    );
    let previous = HorizontalPodAutoscalerStatus::default();
    let d = failed_rescale(d, &previous, "conflict", at(0));
    assert_eq!(d.rescale, None);
    assert_eq!(condition(&d, "AbleToScale"), ("False", "FailedUpdateScale"));
    assert_eq!(reasons(&d), vec!["FailedRescale"]);
    assert_eq!(d.status.last_scale_time, None);
}

#[test]
fn conditions_keep_their_transition_time_while_their_status_holds() {
    let mut conditions = Vec::new();
    set_condition(&mut conditions, "AbleToScale", true, "A", "m".into(), at(0));
    set_condition(
        &mut conditions,
        "AbleToScale",
        true,
        "B",
        "n".into(),
        at(10),
    );
    assert_eq!(conditions[0].last_transition_time, Some(Time(at(0))));
    assert_eq!(conditions[0].reason.as_deref(), Some("B"));
    set_condition(
        &mut conditions,
        "AbleToScale",
        false,
        "C",
        "o".into(),
        at(20),
    );
    assert_eq!(conditions[0].last_transition_time, Some(Time(at(20))));
    assert_eq!(milli_quantity(1500), Quantity("1500m".into()));
    assert_eq!(milli_quantity(2000), Quantity("2".into()));
}
