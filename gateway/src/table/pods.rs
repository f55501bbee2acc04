//! The pod table: NAME READY STATUS RESTARTS AGE (+ IP NODE NOMINATED NODE READINESS GATES), STATUS computed as
//! kubectl's printer does.

use k8s_openapi::chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::{age, age_of, items, name, or_none, text, Column, AGE, NAME};

/// Kubernetes' pod columns.
pub const COLUMNS: &[Column] = &[
    NAME,
    Column::new("Ready", "The aggregate readiness state of this pod for accepting traffic."),
    Column::new("Status", "The aggregate status of the containers in this pod."),
    Column::new(
        "Restarts",
        "The number of times the containers in this pod have been restarted and when the last container in this pod has restarted.",
    ),
    AGE,
    Column::new("IP", "IP address allocated to the pod.").wide(),
    Column::new("Node", "NodeName indicates in which node this pod is scheduled.").wide(),
    Column::new("Nominated Node", "nominatedNodeName is set when this pod preempts other pods on the node.").wide(),
    Column::new("Readiness Gates", "If specified, all readiness gates will be evaluated for pod readiness.").wide(),
];

/// Why a terminated container stopped, as kubectl words it (`Completed`, `Error`, `Signal:9`, `ExitCode:2`).
fn terminated_reason(t: &Value, prefix: &str) -> String {
    let reason = text(&t["reason"]);
    if !reason.is_empty() {
        return format!("{prefix}{reason}");
    }
    match t["signal"].as_i64() {
        Some(s) if s != 0 => format!("{prefix}Signal:{s}"),
        _ => format!("{prefix}ExitCode:{}", t["exitCode"].as_i64().unwrap_or(0)),
    }
}

fn condition_true(status: &Value, kind: &str) -> bool {
    items(&status["conditions"])
        .iter()
        .any(|c| c["type"] == kind && c["status"] == "True")
}

/// STATUS, READY (ready/total) and RESTARTS of a pod, as kubectl's `printPod` computes them.
pub fn summary(pod: &Value, now: DateTime<Utc>) -> (String, String, String) {
    let spec = &pod["spec"];
    let status = &pod["status"];
    let total = items(&spec["containers"]).len();
    let mut reason = text(&status["phase"]).to_string();
    if !text(&status["reason"]).is_empty() {
        reason = text(&status["reason"]).to_string();
    }
    if items(&status["conditions"])
        .iter()
        .any(|c| c["type"] == "PodScheduled" && c["reason"] == "SchedulingGated")
    {
        reason = "SchedulingGated".into();
    }
    let mut restarts: i64 = 0;
    let mut last_restart: Option<String> = None;
    let mut ready = 0;
    let init_total = items(&spec["initContainers"]).len();
    let mut initializing = false;
    for (i, c) in items(&status["initContainerStatuses"]).iter().enumerate() {
        restarts += c["restartCount"].as_i64().unwrap_or(0);
        let state = &c["state"];
        if state["terminated"].is_object() && state["terminated"]["exitCode"].as_i64() == Some(0) {
            continue;
        }
        if state["terminated"].is_object() {
            reason = terminated_reason(&state["terminated"], "Init:");
        } else if !text(&state["waiting"]["reason"]).is_empty()
            && text(&state["waiting"]["reason"]) != "PodInitializing"
        {
            reason = format!("Init:{}", text(&state["waiting"]["reason"]));
        } else {
            reason = format!("Init:{i}/{init_total}");
        }
        initializing = true;
        break;
    }
    if !initializing || condition_true(status, "Initialized") {
        restarts = 0;
        let mut has_running = false;
        for c in items(&status["containerStatuses"]).iter().rev() {
            restarts += c["restartCount"].as_i64().unwrap_or(0);
            if let Some(finished) = c["lastState"]["terminated"]["finishedAt"].as_str() {
                if last_restart.as_deref().is_none_or(|l| l < finished) {
                    last_restart = Some(finished.to_string());
                }
            }
            let state = &c["state"];
            if !text(&state["waiting"]["reason"]).is_empty() {
                reason = text(&state["waiting"]["reason"]).to_string();
            } else if state["terminated"].is_object() {
                reason = terminated_reason(&state["terminated"], "");
            } else if c["ready"] == true && state["running"].is_object() {
                has_running = true;
                ready += 1;
            }
        }
        if reason == "Completed" && has_running {
            reason = if condition_true(status, "Ready") {
                "Running"
            } else {
                "NotReady"
            }
            .into();
        }
    }
    let phase = text(&status["phase"]);
    if pod["metadata"]["deletionTimestamp"].is_string() {
        if text(&status["reason"]) == "NodeLost" {
            reason = "Unknown".into();
        } else if phase != "Succeeded" && phase != "Failed" {
            reason = "Terminating".into();
        }
    }
    let restarts = match (&last_restart, restarts) {
        (Some(at), n) if n != 0 => format!("{n} ({} ago)", age(Some(at), now)),
        (_, n) => n.to_string(),
    };
    (reason, format!("{ready}/{total}"), restarts)
}

/// The cells of one pod.
pub fn cells(pod: &Value, now: DateTime<Utc>) -> Vec<Value> {
    let (status, ready, restarts) = summary(pod, now);
    let ip = items(&pod["status"]["podIPs"])
        .first()
        .map(|p| text(&p["ip"]).to_string())
        .filter(|ip| !ip.is_empty())
        .unwrap_or_else(|| text(&pod["status"]["podIP"]).to_string());
    let gates = items(&pod["spec"]["readinessGates"]);
    let gates = if gates.is_empty() {
        "<none>".to_string()
    } else {
        let met = gates
            .iter()
            .filter(|g| condition_true(&pod["status"], text(&g["conditionType"])))
            .count();
        format!("{met}/{}", gates.len())
    };
    vec![
        json!(name(pod)),
        json!(ready),
        json!(status),
        json!(restarts),
        json!(age_of(pod, now)),
        json!(or_none(ip.clone())),
        json!(or_none(text(&pod["spec"]["nodeName"]).to_string())),
        json!(or_none(
            text(&pod["status"]["nominatedNodeName"]).to_string()
        )),
        json!(gates),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;
    use navarch_bus::api::meta::parse_time;

    fn now() -> DateTime<Utc> {
        parse_time("2026-01-01T01:00:00Z").unwrap()
    }

    fn pod(status: Value) -> Value {
        json!({"metadata": {"name": "p", "creationTimestamp": "2026-01-01T00:00:00Z"},
               "spec": {"containers": [{"name": "a"}, {"name": "b"}], "nodeName": "n1"},
               "status": status})
    }

    fn status_of(p: &Value) -> String {
        summary(p, now()).0
    }

    #[test]
    fn running_pods_show_readiness_and_restarts() {
        let p = pod(
            json!({"phase": "Running", "podIP": "10.0.0.5", "containerStatuses": [
            {"name": "a", "ready": true, "restartCount": 1, "state": {"running": {}},
             "lastState": {"terminated": {"finishedAt": "2026-01-01T00:55:00Z"}}},
            {"name": "b", "ready": false, "restartCount": 0, "state": {"running": {}}}]}),
        );
        let c = cells(&p, now());
        assert_eq!(
            c,
            vec![
                json!("p"),
                json!("1/2"),
                json!("Running"),
                json!("1 (5m ago)"),
                json!("60m"),
                json!("10.0.0.5"),
                json!("n1"),
                json!("<none>"),
                json!("<none>")
            ]
        );
    }

    #[test]
    fn status_comes_from_container_states_then_phase() {
        assert_eq!(status_of(&pod(json!({"phase": "Pending"}))), "Pending");
        let waiting = pod(json!({"phase": "Pending", "containerStatuses": [
            {"name": "a", "state": {"waiting": {"reason": "ContainerCreating"}}}]}));
        assert_eq!(status_of(&waiting), "ContainerCreating");
        let crash = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "restartCount": 4, "state": {"waiting": {"reason": "CrashLoopBackOff"}}}]}));
        assert_eq!(
            summary(&crash, now()),
            ("CrashLoopBackOff".into(), "0/2".into(), "4".into())
        );
        let done = pod(json!({"phase": "Succeeded", "containerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 0, "reason": "Completed"}}}]}));
        assert_eq!(status_of(&done), "Completed");
        let killed = pod(json!({"phase": "Failed", "containerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 137, "signal": 9}}}]}));
        assert_eq!(status_of(&killed), "Signal:9");
        let exited = pod(json!({"phase": "Failed", "containerStatuses": [
            {"name": "a", "state": {"terminated": {"exitCode": 2}}}]}));
        assert_eq!(status_of(&exited), "ExitCode:2");
        let evicted = pod(json!({"phase": "Failed", "reason": "Evicted"}));
        assert_eq!(status_of(&evicted), "Evicted");
    }

    #[test]
    fn terminating_wins_unless_finished() {
        let mut p = pod(json!({"phase": "Running", "containerStatuses": [
            {"name": "a", "ready": true, "state": {"running": {}}}]}));
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:59:00Z");
        assert_eq!(status_of(&p), "Terminating");
        p["status"]["phase"] = json!("Succeeded");
        p["status"]["containerStatuses"] = json!([]);
        assert_eq!(status_of(&p), "Succeeded");
    }

    #[test]
    fn init_containers_show_progress() {
        let mut p = pod(json!({"phase": "Pending", "initContainerStatuses": [
            {"name": "i1", "state": {"terminated": {"exitCode": 0}}},
            {"name": "i2", "state": {"running": {}}}]}));
        p["spec"]["initContainers"] = json!([{"name": "i1"}, {"name": "i2"}]);
        assert_eq!(status_of(&p), "Init:1/2");
        p["status"]["initContainerStatuses"][1]["state"] =
            json!({"terminated": {"exitCode": 1, "reason": "Error"}});
        assert_eq!(status_of(&p), "Init:Error");
        p["status"]["initContainerStatuses"][1]["state"] =
            json!({"waiting": {"reason": "ImagePullBackOff"}});
        assert_eq!(status_of(&p), "Init:ImagePullBackOff");
    }

    #[test]
    fn garbage_does_not_panic() {
        for v in [
            json!(null),
            json!(7),
            json!({"status": {"containerStatuses": 3}}),
            json!({"spec": []}),
        ] {
            let c = cells(&v, now());
            assert_eq!(c.len(), COLUMNS.len());
        }
    }
}
